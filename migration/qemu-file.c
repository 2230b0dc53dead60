/*
 * QEMUFile: buffered, sticky-error migration stream over a MigChannel
 * (include/migration/qemu-file.h).
 *
 * Output goes one of two ways. Over most channels, f->buf and f->iov are
 * the file's own and a flush writes them synchronously (writev), so they
 * are free again when it returns. Over a channel with asynchronous writes
 * (file: through io_uring), f->buf and f->iov are those of a batch the
 * channel lent (MigWriteBatch): a flush submits the batch and takes a
 * fresh one, and the channel keeps the old one until the kernel has
 * written it. Either way the bytes queued are never touched again by this
 * file once flushed — that is the whole buffer-lifetime contract.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>

#include "migration/channel.h"
#include "migration/qemu-file.h"

#define IO_BUF_SIZE 32768        /* output: small fields between pages */
#define IN_BUF_SIZE (256 * 1024) /* input: fewer, larger reads */
#define MAX_IOV 256

struct QEMUFile {
    /* Set at creation. */
    MigChannel *chan;
    bool output;

    /* Owned by the thread using the file. */
    uint8_t *buf;      /* own_buf, or a lent batch's / read-ahead chunk */
    size_t buf_cap;    /* IO_BUF_SIZE, IN_BUF_SIZE or the batch's */
    size_t buf_index;  /* output: bytes used; input: next byte to read */
    size_t buf_size;   /* input: valid bytes in buf */
    struct iovec *iov; /* own_iov or the lent batch's */
    int iov_cap;
    int iovcnt;
    uint8_t *own_buf;
    struct iovec *own_iov;
    MigWriteBatch *batch; /* output with asynchronous writes: the lent one */
    bool borrow;          /* input: buf is the channel's read-ahead chunk */
    uint64_t queued;      /* output: bytes in iov */
    uint64_t transferred; /* bytes written / consumed */
    int error;            /* sticky: 0 or -errno */
    char *error_msg;
};

static void take_batch(QEMUFile *f)
{
    f->batch = mig_channel_batch_get(f->chan);
    f->buf = f->batch->buf;
    f->buf_cap = f->batch->buf_cap;
    f->iov = f->batch->iov;
    f->iov_cap = MIN(f->batch->iov_cap, IOV_MAX);
}

static QEMUFile *qemu_file_new(MigChannel *chan, bool output)
{
    QEMUFile *f = g_new0(QEMUFile, 1);

    f->chan = chan;
    f->output = output;
    if (output && mig_channel_async_writes(chan)) {
        take_batch(f);
        return f;
    }
    f->borrow = !output && mig_channel_reads_ahead(chan);
    f->buf_cap = output ? IO_BUF_SIZE : IN_BUF_SIZE;
    f->buf = f->own_buf = f->borrow ? NULL : g_malloc(f->buf_cap);
    f->iov = f->own_iov = output ? g_new(struct iovec, MAX_IOV) : NULL;
    f->iov_cap = MAX_IOV;
    return f;
}

QEMUFile *qemu_file_new_output(MigChannel *chan)
{
    return qemu_file_new(chan, true);
}

QEMUFile *qemu_file_new_input(MigChannel *chan)
{
    return qemu_file_new(chan, false);
}

MigChannel *qemu_file_channel(QEMUFile *f)
{
    return f->chan;
}

void qemu_file_set_error(QEMUFile *f, int err, const char *fmt, ...)
{
    va_list ap;

    if (f->error) {
        return;
    }
    f->error = err < 0 ? err : -EIO;
    va_start(ap, fmt);
    f->error_msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

int qemu_file_get_error(QEMUFile *f)
{
    return f->error;
}

const char *qemu_file_error_message(QEMUFile *f)
{
    return f->error ? f->error_msg : NULL;
}

bool qemu_file_check(QEMUFile *f, GError **errp)
{
    if (!f->error) {
        return true;
    }
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "%s", f->error_msg);
    return false;
}

void qemu_file_shutdown(QEMUFile *f)
{
    mig_channel_shutdown(f->chan);
}

uint64_t qemu_file_transferred(QEMUFile *f)
{
    return f->transferred;
}

uint64_t qemu_file_pending(QEMUFile *f)
{
    return f->queued;
}

static void set_io_error(QEMUFile *f, ssize_t r, const char *what)
{
    if (mig_channel_is_shutdown(f->chan)) {
        qemu_file_set_error(f, -ECANCELED, "migration stream shut down");
    } else {
        qemu_file_set_error(f, (int)r, "%s migration stream: %s", what,
                            g_strerror((int)-r));
    }
}

/* An asynchronous channel's error, which names the file already. */
static void set_channel_error(QEMUFile *f, const GError *err)
{
    if (mig_channel_is_shutdown(f->chan)) {
        qemu_file_set_error(f, -ECANCELED, "migration stream shut down");
    } else {
        qemu_file_set_error(f, -EIO, "%s", err->message);
    }
}

/* ---- output -------------------------------------------------------------- */

/* Writes f->iov synchronously (every channel but asynchronous ones). */
static void flush_plain(QEMUFile *f)
{
    struct iovec *iov = f->iov;
    int cnt = f->iovcnt;

    while (!f->error && cnt > 0) {
        ssize_t n = mig_channel_writev(f->chan, iov, MIN(cnt, IOV_MAX));
        if (n == -EAGAIN) {
            if (!mig_channel_wait(f->chan, POLLOUT, -1)) {
                set_io_error(f, -ECANCELED, "writing");
            }
            continue;
        }
        if (n < 0) {
            set_io_error(f, n, "writing");
            break;
        }
        f->transferred += n;
        while (n > 0 && cnt > 0) {
            if ((size_t)n >= iov->iov_len) {
                n -= iov->iov_len;
                iov++;
                cnt--;
            } else {
                iov->iov_base = (uint8_t *)iov->iov_base + n;
                iov->iov_len -= n;
                n = 0;
            }
        }
    }
}

/*
 * Hands the lent batch to the channel, which writes it in the background
 * and owns it until then, and takes an empty one. `transferred` counts
 * bytes submitted: the stream's length so far, as the rate limit wants.
 */
static void flush_batch(QEMUFile *f)
{
    g_autoptr(GError) err = NULL;

    if (f->iovcnt == 0 || f->error) {
        return; /* after an error nothing is written: the batch is reused */
    }
    if (!mig_channel_batch_submit(f->chan, f->batch, f->iovcnt, &err)) {
        set_channel_error(f, err);
    } else {
        f->transferred += f->queued;
    }
    take_batch(f); /* the channel has the old one back either way */
}

/* Hands everything queued to the channel; f->buf and f->iov are free. */
static void flush_queued(QEMUFile *f)
{
    if (f->batch) {
        flush_batch(f);
    } else {
        flush_plain(f);
    }
    f->iovcnt = 0;
    f->buf_index = 0;
    f->queued = 0;
}

void qemu_file_submit(QEMUFile *f)
{
    flush_queued(f);
}

void qemu_fflush(QEMUFile *f)
{
    g_autoptr(GError) err = NULL;

    flush_queued(f);
    if (f->batch && !mig_channel_drain(f->chan, &err)) {
        set_channel_error(f, err);
    }
}

/*
 * Queues `len` bytes at `base`: either bytes just copied into f->buf by
 * qemu_put_buffer, or the caller's memory (qemu_put_buffer_async).
 *
 * The invariant that keeps queued bytes intact: every byte of
 * f->buf[0..buf_index) belongs to an entry of f->iov, and buf_index goes
 * back to 0 only in qemu_fflush, after every entry has been written. So
 * the entry is added first and the list flushed after it fills, never the
 * other way round: a flush before the add would reset buf_index while the
 * bytes being added (already copied in) still sit in f->buf, and the next
 * writes would overwrite them before they were sent.
 */
static void add_to_iovec(QEMUFile *f, const void *base, size_t len)
{
    struct iovec *last = f->iovcnt ? &f->iov[f->iovcnt - 1] : NULL;

    f->queued += len;
    if (last && (const uint8_t *)last->iov_base + last->iov_len == base) {
        last->iov_len += len;
        return;
    }
    f->iov[f->iovcnt].iov_base = (void *)base;
    f->iov[f->iovcnt].iov_len = len;
    f->iovcnt++;
    if (f->iovcnt == f->iov_cap) {
        flush_queued(f);
    }
}

void qemu_put_buffer(QEMUFile *f, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len > 0 && !f->error) {
        size_t n = MIN(len, f->buf_cap - f->buf_index);
        uint8_t *dst = f->buf + f->buf_index;
        memcpy(dst, p, n);
        f->buf_index += n;
        add_to_iovec(f, dst, n);
        p += n;
        len -= n;
        if (f->buf_index == f->buf_cap) {
            flush_queued(f);
        }
    }
}

void qemu_put_buffer_async(QEMUFile *f, const void *buf, size_t len)
{
    if (!f->error) {
        add_to_iovec(f, buf, len);
    }
}

void qemu_put_byte(QEMUFile *f, uint8_t v)
{
    qemu_put_buffer(f, &v, 1);
}

void qemu_put_be16(QEMUFile *f, uint16_t v)
{
    uint8_t b[2] = {v >> 8, v};
    qemu_put_buffer(f, b, sizeof(b));
}

void qemu_put_be32(QEMUFile *f, uint32_t v)
{
    uint8_t b[4] = {v >> 24, v >> 16, v >> 8, v};
    qemu_put_buffer(f, b, sizeof(b));
}

void qemu_put_be64(QEMUFile *f, uint64_t v)
{
    uint8_t b[8];

    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    }
    qemu_put_buffer(f, b, sizeof(b));
}

void qemu_put_counted_string(QEMUFile *f, const char *s)
{
    size_t len = strlen(s);

    g_assert(len <= 255);
    qemu_put_byte(f, (uint8_t)len);
    qemu_put_buffer(f, s, len);
}

/* ---- input --------------------------------------------------------------- */

/*
 * The input hook for channels that read ahead (file: through io_uring):
 * rather than copying, the file reads straight from the channel's chunk,
 * lent until the next refill. Only called once buf is used up (every
 * caller refills at buf_index == buf_size), so nothing needs carrying over.
 */
static bool fill_buffer_borrowed(QEMUFile *f)
{
    g_autoptr(GError) err = NULL;
    const uint8_t *data = NULL;
    ssize_t n;

    g_assert(f->buf_index == f->buf_size);
    n = mig_channel_read_borrow(f->chan, &data, &err);
    f->buf_index = f->buf_size = 0;
    if (n < 0) {
        set_channel_error(f, err);
        return false;
    }
    f->buf = (uint8_t *)data; /* read only: the input side never writes */
    f->buf_size = (size_t)n;
    return n > 0;
}

/* Refills the buffer; returns false at end of stream or on error. */
static bool fill_buffer(QEMUFile *f)
{
    size_t pending = f->buf_size - f->buf_index;

    if (f->error) {
        return false;
    }
    if (f->borrow) {
        return fill_buffer_borrowed(f);
    }
    memmove(f->buf, f->buf + f->buf_index, pending);
    f->buf_index = 0;
    f->buf_size = pending;
    for (;;) {
        struct iovec iov = {f->buf + f->buf_size, f->buf_cap - f->buf_size};
        ssize_t n = mig_channel_readv(f->chan, &iov, 1);
        if (n == -EAGAIN) {
            if (!mig_channel_wait(f->chan, POLLIN, -1)) {
                set_io_error(f, -ECANCELED, "reading");
                return false;
            }
            continue;
        }
        if (n < 0) {
            set_io_error(f, n, "reading");
            return false;
        }
        f->buf_size += n;
        return n > 0;
    }
}

static void short_read(QEMUFile *f)
{
    qemu_file_set_error(f, -EIO, "unexpected end of migration stream");
}

void qemu_get_buffer(QEMUFile *f, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t want = len;

    while (len > 0) {
        size_t avail = f->buf_size - f->buf_index;
        if (f->error) {
            memset(buf, 0, want); /* never half a value */
            return;
        }
        if (avail == 0) {
            if (!fill_buffer(f)) {
                short_read(f);
            }
            continue;
        }
        size_t n = MIN(avail, len);
        memcpy(p, f->buf + f->buf_index, n);
        f->buf_index += n;
        f->transferred += n;
        p += n;
        len -= n;
    }
}

size_t qemu_get_buffered(QEMUFile *f, void *buf, size_t len)
{
    size_t n = MIN(len, f->buf_size - f->buf_index);

    if (f->error) {
        return 0;
    }
    memcpy(buf, f->buf + f->buf_index, n);
    f->buf_index += n;
    f->transferred += n;
    return n;
}

bool qemu_file_direct_ok(QEMUFile *f)
{
    return !f->output && mig_channel_is_socket(f->chan);
}

size_t qemu_get_direct(QEMUFile *f, const struct iovec *iov, int iovcnt)
{
    g_assert(f->buf_index == f->buf_size);
    f->buf_index = f->buf_size = 0;
    while (!f->error) {
        ssize_t n = mig_channel_readv(f->chan, iov, iovcnt);
        if (n == -EAGAIN) {
            if (!mig_channel_wait(f->chan, POLLIN, -1)) {
                set_io_error(f, -ECANCELED, "reading");
            }
            continue;
        }
        if (n < 0) {
            set_io_error(f, n, "reading");
        } else if (n == 0) {
            short_read(f);
        } else {
            f->transferred += n;
            return n;
        }
    }
    return 0;
}

void qemu_unget_direct(QEMUFile *f, const void *buf, size_t len)
{
    g_assert(f->buf_index == 0 && f->buf_size + len <= f->buf_cap);
    memcpy(f->buf + f->buf_size, buf, len);
    f->buf_size += len;
    f->transferred -= len;
}

uint8_t qemu_get_byte(QEMUFile *f)
{
    uint8_t v;

    qemu_get_buffer(f, &v, 1);
    return v;
}

uint16_t qemu_get_be16(QEMUFile *f)
{
    uint8_t b[2];

    qemu_get_buffer(f, b, sizeof(b));
    return (uint16_t)(b[0] << 8 | b[1]);
}

uint32_t qemu_get_be32(QEMUFile *f)
{
    uint8_t b[4];

    qemu_get_buffer(f, b, sizeof(b));
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
           b[3];
}

uint64_t qemu_get_be64(QEMUFile *f)
{
    uint64_t hi = qemu_get_be32(f);

    return hi << 32 | qemu_get_be32(f);
}

void qemu_get_counted_string(QEMUFile *f, char *buf)
{
    uint8_t len = qemu_get_byte(f);

    qemu_get_buffer(f, buf, len);
    buf[len] = '\0';
}

bool qemu_file_at_eof(QEMUFile *f)
{
    return f->buf_index == f->buf_size && !fill_buffer(f) && !f->error;
}

bool qemu_fclose(QEMUFile *f, GError **errp)
{
    g_autoptr(GError) close_err = NULL;
    bool ok;

    if (f->output) {
        qemu_fflush(f);
    }
    ok = mig_channel_close(f->chan, &close_err);
    if (f->error) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "%s", f->error_msg);
        ok = false;
    } else if (!ok) {
        g_propagate_error(errp, g_steal_pointer(&close_err));
    }
    g_free(f->error_msg);
    g_free(f->own_buf); /* a lent batch or chunk went with the channel */
    g_free(f->own_iov);
    g_free(f);
    return ok;
}
