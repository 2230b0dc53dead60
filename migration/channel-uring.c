/*
 * io_uring under file: channels (migration/channel-uring.h): asynchronous
 * writes of whole batches at explicit offsets, read-ahead, and the one
 * rule that makes both safe: no memory a request points to is reused or
 * freed before the request's completion has been reaped.
 *
 * Output. The engine owns MIG_URING_WRITE_DEPTH batches, each a small-field
 * buffer and an iovec array. QEMUFile takes one (mig_uring_batch_get),
 * fills it (fields copied into its buf, guest pages referenced in place),
 * and submits it whole: the batch gets the next range of stream offsets
 * and one IORING_OP_WRITEV. A batch is free again only when every byte of
 * it is written, so its buffer is never overwritten under the kernel; the
 * guest pages it references stay mapped for the VM's life and, in
 * precopy, may change before the kernel reads them — harmless, because a
 * page written after its dirty-log re-arm is logged and sent again later
 * in the stream, and the destination applies records in stream order.
 * Short writes resubmit the rest at the right offset; the first error is
 * sticky and names the file.
 *
 * Input. MIG_URING_READ_DEPTH buffers of MIG_URING_READ_SIZE bytes, each
 * read at consecutive offsets; the reader borrows them in order
 * (mig_uring_read_next), and a buffer given back is read again further on.
 * A short read is completed before the buffer counts as filled; a buffer
 * that ends short is the end of the file, and nothing after it is used.
 *
 * Shutdown (migrate_cancel, a destination quitting) is seen within
 * URING_TICK_NS by every wait: queued requests are cancelled and those the
 * kernel already runs are waited for (file I/O cannot be interrupted) —
 * only then may the caller close or free anything.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <liburing.h>
#include <string.h>
#include <unistd.h>

#include "channel-internal.h"
#include "channel-uring.h"

#define URING_ENTRIES 32                   /* > write or read depth */
#define URING_TICK_NS (50 * 1000 * 1000)   /* how often waits check shutdown */
#define URING_TAG_CANCEL UINT64_MAX        /* the cancel request itself */
#define URING_TAG_READ (UINT64_C(1) << 32) /* else a write; low bits: slot */
/*
 * URING_SQE_FLAGS: every read is IOSQE_ASYNC. Without it, a
 * buffered write that finds room in the page cache, or a read that finds
 * the data there, runs inline in io_uring_submit(): the kernel's copy
 * happens in the migration (incoming) thread exactly as with writev, and
 * nothing overlaps. Forced async, an io-wq worker copies while this thread
 * scans pages (parses records) — a profile of a restore from the page
 * cache moved the kernel's copy, a sixth of the thread's time, to the
 * worker.
 */
#define URING_SQE_FLAGS IOSQE_ASYNC
/*
 * Writes, though, go inline: buffered writes to one file serialise on its
 * inode, so a worker's copy overlaps nothing and its hand-off costs (save
 * of 2.9 GiB, scripts/bench file: 0.80 GB/s forced async, 0.91 inline,
 * 0.96-0.98 plain writev).
 */
#define URING_WRITE_SQE_FLAGS 0

typedef struct UringWrite {
    MigWriteBatch batch;
    struct iovec *left; /* what is still to be written (inside batch.iov) */
    int left_cnt;
    uint64_t off;        /* file offset of left's first byte */
    uint64_t left_bytes; /* bytes in left */
    bool busy;           /* handed out or in flight */
    bool in_flight;
} UringWrite;

typedef struct UringRead {
    uint8_t *buf;
    uint64_t off; /* file offset of buf[0] */
    size_t len;   /* bytes read so far */
    int err;      /* 0 or -errno */
    bool in_flight;
    bool filled; /* full, or short at the end of the file, or failed */
} UringRead;

struct MigUring {
    /* Set at creation. */
    struct io_uring ring;
    int fd;
    char *path;
    uint64_t start;        /* the stream's offset in the file */
    atomic_bool *shutdown; /* the channel's; set by any thread */

    /* Owned by the channel's thread. */
    unsigned in_flight; /* requests whose completion is not reaped */
    int err;            /* sticky: 0 or -errno */
    char *err_msg;

    /* Output. */
    UringWrite w[MIG_URING_WRITE_DEPTH];
    uint64_t next_off; /* where the next submitted batch goes */

    /* Input. */
    UringRead r[MIG_URING_READ_DEPTH];
    bool reading;       /* read-ahead started (lazily, by the reader) */
    unsigned r_head;    /* the next buffer to hand out */
    int r_lent;         /* the buffer lent to the reader, or -1 */
    uint64_t r_next;    /* file offset for the next buffer to read */
    bool eof;           /* a buffer ended short: no more data */
    const uint8_t *cur; /* readv: what is left of the lent buffer */
    size_t cur_len;
};

bool mig_uring_wanted(bool *want, GError **errp)
{
    const char *v = g_getenv(MIG_URING_ENV);

    *want = true;
    if (!v || !strcmp(v, "on")) {
        return true;
    }
    if (!strcmp(v, "off")) {
        *want = false;
        return true;
    }
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "%s='%s': expected 'on' or 'off' (unset: on)", MIG_URING_ENV,
                v);
    return false;
}

/* ---- errors and waiting ------------------------------------------------ */

static void uring_set_error(MigUring *u, int err, const char *what,
                            uint64_t off)
{
    if (u->err) {
        return;
    }
    u->err = err;
    if (err == -ECANCELED) {
        u->err_msg = g_strdup("migration stream shut down");
    } else {
        u->err_msg = g_strdup_printf("file: %s '%s' at offset %" PRIu64 ": %s",
                                     what, u->path, off, g_strerror(-err));
    }
}

static bool uring_check(MigUring *u, GError **errp)
{
    if (u->err) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "%s", u->err_msg);
        return false;
    }
    return true;
}

static struct io_uring_sqe *uring_sqe(MigUring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

    if (!sqe) {
        /* cannot happen with URING_ENTRIES > depth; submit and retry */
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
        g_assert(sqe);
    }
    return sqe;
}

static void uring_submit_write(MigUring *u, UringWrite *w)
{
    struct io_uring_sqe *sqe = uring_sqe(u);
    unsigned cnt = (unsigned)MIN(w->left_cnt, IOV_MAX);

    io_uring_prep_writev(sqe, u->fd, w->left, cnt, w->off);
    io_uring_sqe_set_flags(sqe, URING_WRITE_SQE_FLAGS);
    io_uring_sqe_set_data64(sqe, (uint64_t)(w - u->w));
    w->in_flight = true;
    u->in_flight++;
    io_uring_submit(&u->ring);
}

static void uring_submit_read(MigUring *u, UringRead *r)
{
    struct io_uring_sqe *sqe = uring_sqe(u);

    io_uring_prep_read(sqe, u->fd, r->buf + r->len,
                       (unsigned)(MIG_URING_READ_SIZE - r->len),
                       r->off + r->len);
    io_uring_sqe_set_flags(sqe, URING_SQE_FLAGS);
    io_uring_sqe_set_data64(sqe, URING_TAG_READ | (uint64_t)(r - u->r));
    r->in_flight = true;
    u->in_flight++;
    io_uring_submit(&u->ring);
}

/* Drops `n` bytes from the front of what w has left to write. */
static void uring_write_advance(UringWrite *w, size_t n)
{
    w->off += n;
    w->left_bytes -= n;
    w->left = mig_iov_advance(w->left, &w->left_cnt, n);
}

/*
 * A write answered `res`: done, short (the rest goes again, at its own
 * offset), interrupted (again, whole), or failed (sticky error).
 */
static void uring_write_done(MigUring *u, UringWrite *w, int res)
{
    w->in_flight = false;
    if (res > 0) {
        uring_write_advance(w, (size_t)res);
    } else if (res == 0 && w->left_bytes > 0) {
        res = -EIO; /* no progress: never loop on it */
    }
    if (res < 0 && res != -EINTR && res != -EAGAIN) {
        uring_set_error(u, res, "writing", w->off);
    }
    if (w->left_bytes > 0 && atomic_load(u->shutdown)) {
        uring_set_error(u, -ECANCELED, "", 0); /* never a silent gap */
    }
    if (w->left_bytes > 0 && !u->err) {
        uring_submit_write(u, w);
        return;
    }
    w->busy = false;
}

/* A read answered `res`: more (a short read), end of file, or failure. */
static void uring_read_done(MigUring *u, UringRead *r, int res)
{
    r->in_flight = false;
    if (res > 0) {
        r->len += (size_t)res;
    } else if (res < 0 && res != -EINTR && res != -EAGAIN) {
        r->err = res;
    }
    if (res != 0 && !r->err && r->len < MIG_URING_READ_SIZE) {
        if (!atomic_load(u->shutdown)) {
            uring_submit_read(u, r);
            return;
        }
        r->err = -ECANCELED; /* not the end of the file */
    }
    r->filled = true;
}

static void uring_complete(MigUring *u, uint64_t tag, int res)
{
    if (tag == URING_TAG_CANCEL) {
        return;
    }
    u->in_flight--;
    if (tag & URING_TAG_READ) {
        uring_read_done(u, &u->r[tag & ~URING_TAG_READ], res);
    } else {
        uring_write_done(u, &u->w[tag], res);
    }
}

/* Cancels every queued request; what the kernel already runs finishes. */
static void uring_cancel_all(MigUring *u)
{
    struct io_uring_sqe *sqe = uring_sqe(u);

    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, URING_TAG_CANCEL);
    io_uring_submit(&u->ring);
}

/*
 * Reaps one or more completions, waiting at most URING_TICK_NS (forever
 * when `forever`). Returns false when the channel was shut down: then
 * everything has been cancelled and reaped, and the error is set.
 */
static bool uring_wait(MigUring *u, bool forever)
{
    struct __kernel_timespec ts = {.tv_nsec = URING_TICK_NS};
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    int r;

    if (!forever && atomic_load(u->shutdown)) {
        uring_set_error(u, -ECANCELED, "", 0);
        uring_cancel_all(u);
        while (u->in_flight) {
            uring_wait(u, true);
        }
        return false;
    }
    r = forever ? io_uring_wait_cqe(&u->ring, &cqe)
                : io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN) {
        /* the ring itself failed: nothing will complete any more */
        uring_set_error(u, r, "waiting for I/O on", 0);
        u->in_flight = 0;
        return false;
    }
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        uring_complete(u, cqe->user_data, cqe->res);
        n++;
    }
    io_uring_cq_advance(&u->ring, n);
    return true;
}

MigUring *mig_uring_new(int fd, const char *path, uint64_t offset,
                        atomic_bool *shutdown, GError **errp)
{
    MigUring *u = g_new0(MigUring, 1);
    int r = io_uring_queue_init(URING_ENTRIES, &u->ring, 0);

    if (r < 0) {
        gw_error_errno(errp, -r, "io_uring_queue_init");
        g_free(u);
        return NULL;
    }
    u->fd = fd;
    u->path = g_strdup(path);
    u->start = u->next_off = u->r_next = offset;
    u->shutdown = shutdown;
    u->r_lent = -1;
    for (int i = 0; i < MIG_URING_WRITE_DEPTH; i++) {
        u->w[i].batch.buf_cap = MIG_URING_BATCH_BUF;
        u->w[i].batch.iov_cap = MIG_URING_BATCH_IOV;
    }
    return u;
}

void mig_uring_free(MigUring *u)
{
    if (!u) {
        return;
    }
    if (u->in_flight) {
        uring_cancel_all(u);
    }
    while (u->in_flight) {
        uring_wait(u, true);
    }
    io_uring_queue_exit(&u->ring);
    for (int i = 0; i < MIG_URING_WRITE_DEPTH; i++) {
        g_free(u->w[i].batch.buf);
        g_free(u->w[i].batch.iov);
    }
    for (int i = 0; i < MIG_URING_READ_DEPTH; i++) {
        g_free(u->r[i].buf);
    }
    g_free(u->err_msg);
    g_free(u->path);
    g_free(u);
}

/* ---- output ------------------------------------------------------------ */

MigWriteBatch *mig_uring_batch_get(MigUring *u)
{
    for (;;) {
        for (int i = 0; i < MIG_URING_WRITE_DEPTH; i++) {
            UringWrite *w = &u->w[i];

            if (!w->busy) {
                if (!w->batch.buf) { /* allocated on first use */
                    w->batch.buf = g_malloc(MIG_URING_BATCH_BUF);
                    w->batch.iov = g_new(struct iovec, MIG_URING_BATCH_IOV);
                }
                w->busy = true;
                return &w->batch;
            }
        }
        /* the caller holds at most one: the others are being written */
        g_assert(u->in_flight > 0);
        uring_wait(u, false); /* a shutdown frees them all */
    }
}

static UringWrite *uring_write_of(MigUring *u, MigWriteBatch *b)
{
    UringWrite *w = (UringWrite *)b; /* batch is the first member */

    g_assert(w >= u->w && w < u->w + MIG_URING_WRITE_DEPTH && w->busy &&
             !w->in_flight);
    return w;
}

/* Gives `w` the next `iovcnt` iovecs' worth of stream offsets. */
static void uring_write_start(MigUring *u, UringWrite *w, int iovcnt)
{
    w->left = w->batch.iov;
    w->left_cnt = iovcnt;
    w->off = u->next_off;
    w->left_bytes = 0;
    for (int i = 0; i < iovcnt; i++) {
        w->left_bytes += w->batch.iov[i].iov_len;
    }
    u->next_off += w->left_bytes;
}

bool mig_uring_batch_submit(MigUring *u, MigWriteBatch *b, int iovcnt,
                            GError **errp)
{
    UringWrite *w = uring_write_of(u, b);

    g_assert(iovcnt >= 0 && iovcnt <= MIG_URING_BATCH_IOV);
    if (!u->err && atomic_load(u->shutdown)) {
        uring_wait(u, false); /* sets the error, cancels the rest */
    }
    uring_write_start(u, w, iovcnt);
    if (u->err || w->left_bytes == 0) {
        w->busy = false;
        return uring_check(u, errp);
    }
    uring_submit_write(u, w);
    return true;
}

bool mig_uring_drain(MigUring *u, GError **errp)
{
    if (!u->err && atomic_load(u->shutdown)) {
        uring_wait(u, false); /* a shut-down stream is never complete */
    }
    while (u->in_flight && uring_wait(u, false)) {
        /* reaping resubmits short writes: in_flight only ends at done */
    }
    return uring_check(u, errp);
}

ssize_t mig_uring_writev(MigUring *u, const struct iovec *iov, int iovcnt)
{
    ssize_t n;

    if (!mig_uring_drain(u, NULL)) {
        return u->err;
    }
    do {
        n = pwritev(u->fd, iov, MIN(iovcnt, IOV_MAX), (off_t)u->next_off);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return -errno;
    }
    u->next_off += (uint64_t)n;
    return n;
}

uint64_t mig_uring_written(MigUring *u)
{
    return u->next_off - u->start;
}

void mig_uring_fake_completion(MigUring *u, MigWriteBatch *b, int iovcnt,
                               int res)
{
    UringWrite *w = uring_write_of(u, b);

    uring_write_start(u, w, iovcnt);
    w->in_flight = true;
    u->in_flight++;
    uring_complete(u, (uint64_t)(w - u->w), res);
}

/* ---- input ------------------------------------------------------------- */

static void uring_read_issue(MigUring *u, UringRead *r)
{
    r->off = u->r_next;
    r->len = 0;
    r->err = 0;
    r->filled = false;
    u->r_next += MIG_URING_READ_SIZE;
    uring_submit_read(u, r);
}

/* The first read by the reader's thread fills the whole ring. */
static void uring_read_start(MigUring *u)
{
    u->reading = true;
    for (int i = 0; i < MIG_URING_READ_DEPTH; i++) {
        u->r[i].buf = g_malloc(MIG_URING_READ_SIZE);
        uring_read_issue(u, &u->r[i]);
    }
}

/* The reader is done with the buffer it had: read it again further on. */
static void uring_read_give_back(MigUring *u)
{
    if (u->r_lent < 0) {
        return;
    }
    if (!u->eof && !u->err) {
        uring_read_issue(u, &u->r[u->r_lent]);
    }
    u->r_lent = -1;
    u->cur_len = 0;
}

ssize_t mig_uring_read_next(MigUring *u, const uint8_t **data, GError **errp)
{
    UringRead *r;

    if (!u->reading) {
        uring_read_start(u);
    }
    uring_read_give_back(u);
    if (u->err || u->eof) {
        return u->err ? (uring_check(u, errp), u->err) : 0;
    }
    r = &u->r[u->r_head];
    while (!r->filled) {
        if (!uring_wait(u, false)) {
            uring_check(u, errp);
            return u->err;
        }
    }
    if (r->err) {
        uring_set_error(u, r->err, "reading", r->off + r->len);
        uring_check(u, errp);
        return u->err;
    }
    u->eof = r->len < MIG_URING_READ_SIZE; /* the file ends in this one */
    u->r_lent = (int)u->r_head;
    u->r_head = (u->r_head + 1) % MIG_URING_READ_DEPTH;
    *data = u->cur = r->buf;
    u->cur_len = r->len;
    return r->len ? (ssize_t)r->len : 0;
}

ssize_t mig_uring_readv(MigUring *u, const struct iovec *iov, int iovcnt)
{
    size_t total = 0;

    if (u->cur_len == 0) {
        const uint8_t *data;
        ssize_t n = mig_uring_read_next(u, &data, NULL);

        if (n <= 0) {
            return n;
        }
    }
    for (int i = 0; i < iovcnt && u->cur_len > 0; i++) {
        size_t n = MIN(iov[i].iov_len, u->cur_len);

        memcpy(iov[i].iov_base, u->cur, n);
        u->cur += n;
        u->cur_len -= n;
        total += n;
        if (n < iov[i].iov_len) {
            break;
        }
    }
    return (ssize_t)total;
}
