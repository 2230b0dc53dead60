/*
 * The return path's messages (QEMU's layout) and the source's reader
 * thread. See return-path.h.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "migration/qemu-file.h"
#include "return-path.h"

/* ---- destination: the writer -------------------------------------------- */

struct RPWriter {
    GMutex lock;
    QEMUFile *f;          /* protected by lock */
    char last_block[256]; /* block of the last page request */
    char *error;          /* first failure */
};

RPWriter *rp_writer_open(MigChannel *main_chan, GError **errp)
{
    MigChannel *c = mig_channel_dup(main_chan, errp);
    RPWriter *w;

    if (!c) {
        return NULL;
    }
    w = g_new0(RPWriter, 1);
    g_mutex_init(&w->lock);
    w->f = qemu_file_new_output(c);
    return w;
}

/* Lock held: header, body, flush; keeps the first failure. */
static bool rp_send_locked(RPWriter *w, uint16_t type, const uint8_t *data,
                           uint16_t len)
{
    g_autoptr(GError) err = NULL;
    bool ok;

    qemu_put_be16(w->f, type);
    qemu_put_be16(w->f, len);
    qemu_put_buffer(w->f, data, len);
    qemu_fflush(w->f);
    ok = qemu_file_check(w->f, &err);
    if (!ok && !w->error) {
        w->error = g_strdup_printf("return path: %s", err->message);
    }
    return ok;
}

static bool rp_send(RPWriter *w, uint16_t type, const uint8_t *data,
                    uint16_t len)
{
    bool ok;

    g_mutex_lock(&w->lock);
    ok = rp_send_locked(w, type, data, len);
    g_mutex_unlock(&w->lock);
    return ok;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

bool rp_send_shut(RPWriter *w, uint32_t value)
{
    uint8_t buf[4];

    put_be32(buf, value);
    return rp_send(w, MIG_RP_MSG_SHUT, buf, sizeof(buf));
}

bool rp_send_pong(RPWriter *w, uint32_t value)
{
    uint8_t buf[4];

    put_be32(buf, value);
    return rp_send(w, MIG_RP_MSG_PONG, buf, sizeof(buf));
}

bool rp_send_req_pages(RPWriter *w, const char *block, uint64_t start,
                       uint32_t len)
{
    uint8_t buf[12 + 1 + 255];
    size_t n = strlen(block), msglen = 12;
    uint16_t type = MIG_RP_MSG_REQ_PAGES;

    g_assert(n <= 255);
    put_be32(buf, (uint32_t)(start >> 32));
    put_be32(buf + 4, (uint32_t)start);
    put_be32(buf + 8, len);
    /*
     * One lock over the choice and the send: a request for the same block
     * must never overtake the REQ_PAGES_ID that names it.
     */
    g_mutex_lock(&w->lock);
    if (strcmp(w->last_block, block)) {
        type = MIG_RP_MSG_REQ_PAGES_ID;
        buf[12] = (uint8_t)n;
        memcpy(buf + 13, block, n);
        msglen += 1 + n;
        memcpy(w->last_block, block, n + 1);
    }
    bool ok = rp_send_locked(w, type, buf, (uint16_t)msglen);
    g_mutex_unlock(&w->lock);
    return ok;
}

bool rp_send_recv_bitmap(RPWriter *w, const char *block,
                         const unsigned long *map, uint64_t nbits)
{
    g_autoptr(GError) err = NULL;
    size_t n = strlen(block);
    uint64_t size = ((nbits + 63) / 64) * 8;
    bool ok;

    g_assert(n <= 255);
    g_mutex_lock(&w->lock);
    qemu_put_be16(w->f, MIG_RP_MSG_RECV_BITMAP);
    qemu_put_be16(w->f, (uint16_t)(n + 1));
    qemu_put_byte(w->f, (uint8_t)n);
    qemu_put_buffer(w->f, block, n);
    qemu_put_be64(w->f, size);
    /* x86-64: unsigned long is a little-endian 64-bit word already */
    qemu_put_buffer(w->f, map, size);
    qemu_put_be64(w->f, RP_RECV_BITMAP_ENDING);
    qemu_fflush(w->f);
    ok = qemu_file_check(w->f, &err);
    if (!ok && !w->error) {
        w->error = g_strdup_printf("return path: %s", err->message);
    }
    g_mutex_unlock(&w->lock);
    return ok;
}

bool rp_send_resume_ack(RPWriter *w, uint32_t value)
{
    uint8_t buf[4];

    put_be32(buf, value);
    return rp_send(w, MIG_RP_MSG_RESUME_ACK, buf, sizeof(buf));
}

char *rp_writer_error(RPWriter *w)
{
    char *e;

    g_mutex_lock(&w->lock);
    e = g_strdup(w->error);
    g_mutex_unlock(&w->lock);
    return e;
}

void rp_writer_shutdown(RPWriter *w)
{
    /* the channel's shutdown is safe from any thread */
    qemu_file_shutdown(w->f);
}

void rp_writer_close(RPWriter *w)
{
    if (!w) {
        return;
    }
    qemu_fclose(w->f, NULL);
    g_free(w->error);
    g_mutex_clear(&w->lock);
    g_free(w);
}

/* ---- source: the reader thread ------------------------------------------ */

struct RPReader {
    QEMUFile *f;
    const RPReaderOps *ops;
    void *opaque;
    pthread_t thread;
    atomic_bool stopping; /* rp_reader_stop() shut the channel down */
    GMutex lock;
    GCond cond;
    bool done; /* protected by lock */
};

static const struct {
    const char *name;
    int len; /* -1: variable */
} rp_msgs[MIG_RP_MSG_MAX] = {
    [MIG_RP_MSG_SHUT] = {"SHUT", 4},
    [MIG_RP_MSG_PONG] = {"PONG", 4},
    [MIG_RP_MSG_REQ_PAGES_ID] = {"REQ_PAGES_ID", -1},
    [MIG_RP_MSG_REQ_PAGES] = {"REQ_PAGES", 12},
    [MIG_RP_MSG_RECV_BITMAP] = {"RECV_BITMAP", -1},
    [MIG_RP_MSG_RESUME_ACK] = {"RESUME_ACK", 4},
};

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* RECV_BITMAP's bitmap is read this many bytes at a time. */
#define RP_BITMAP_PIECE (1u << 20)

/* RECV_BITMAP's payload names the block; the bitmap follows it. */
static bool rp_read_recv_bitmap(RPReader *r, const uint8_t *buf, uint16_t len,
                                GError **errp)
{
    char block[256];
    g_autofree uint8_t *map = NULL;
    uint64_t size, end, cap;

    if (len < 1 || len != 1 + buf[0]) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Received 'RECV_BITMAP' message (0x%04x) with incorrect "
                    "length %d",
                    MIG_RP_MSG_RECV_BITMAP, len);
        return false;
    }
    memcpy(block, buf + 1, buf[0]);
    block[buf[0]] = '\0';
    size = qemu_get_be64(r->f);
    if (qemu_file_get_error(r->f)) {
        return qemu_file_check(r->f, errp);
    }
    if (size > RP_RECV_BITMAP_MAX || size % 8) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "ramblock '%s' received bitmap of %" G_GUINT64_FORMAT
                    " bytes is not valid",
                    block, size);
        return false;
    }
    /*
     * Grown as the bytes arrive, so that memory follows what was received
     * rather than the size claimed: 14 bytes of message made the source
     * allocate 64 MiB (tests/fuzz/regressions/fuzz-return-path/).
     */
    cap = MIN(size, RP_BITMAP_PIECE);
    map = g_malloc(cap + 1);
    for (uint64_t got = 0; got < size && !qemu_file_get_error(r->f);) {
        uint64_t n = MIN(size - got, RP_BITMAP_PIECE);
        if (got + n > cap) {
            cap = MIN(size, 2 * cap);
            map = g_realloc(map, cap);
        }
        qemu_get_buffer(r->f, map + got, n);
        got += n;
    }
    end = qemu_get_be64(r->f);
    if (qemu_file_get_error(r->f)) {
        return qemu_file_check(r->f, errp);
    }
    if (end != RP_RECV_BITMAP_ENDING) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "ram_dirty_bitmap_reload: ramblock '%s' end mark "
                    "incorrect: 0x%" G_GINT64_MODIFIER "x",
                    block, end);
        return false;
    }
    return r->ops->recv_bitmap(r->opaque, block, map, size, errp);
}

/* One message; false with *errp (the end: SHUT sets *shut). */
static bool rp_read_one(RPReader *r, char *block, bool *shut, GError **errp)
{
    uint16_t type = qemu_get_be16(r->f);
    uint16_t len = qemu_get_be16(r->f);
    uint8_t buf[65536];

    if (qemu_file_get_error(r->f)) {
        return qemu_file_check(r->f, errp);
    }
    if (type == MIG_RP_MSG_INVALID || type >= MIG_RP_MSG_MAX) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Received invalid message 0x%04x length 0x%04x", type, len);
        return false;
    }
    if (rp_msgs[type].len != -1 && rp_msgs[type].len != len) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Received '%s' message (0x%04x) with incorrect length "
                    "%d expecting %d",
                    rp_msgs[type].name, type, len, rp_msgs[type].len);
        return false;
    }
    qemu_get_buffer(r->f, buf, len);
    if (qemu_file_get_error(r->f)) {
        return qemu_file_check(r->f, errp);
    }
    switch (type) {
    case MIG_RP_MSG_SHUT:
        *shut = true;
        r->ops->shut(r->opaque, get_be32(buf));
        return true;
    case MIG_RP_MSG_PONG:
        r->ops->pong(r->opaque, get_be32(buf));
        return true;
    case MIG_RP_MSG_REQ_PAGES_ID:
        if (len < 13 || len != 13 + buf[12]) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Received '%s' message (0x%04x) with incorrect "
                        "length %d",
                        rp_msgs[type].name, type, len);
            return false;
        }
        memcpy(block, buf + 13, buf[12]);
        block[buf[12]] = '\0';
        /* fall through */
    case MIG_RP_MSG_REQ_PAGES:
        if (!block[0]) {
            g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                                "ram_save_queue_pages no previous block");
            return false;
        }
        return r->ops->req_pages(
            r->opaque, block, (uint64_t)get_be32(buf) << 32 | get_be32(buf + 4),
            get_be32(buf + 8), errp);
    case MIG_RP_MSG_RECV_BITMAP:
        return rp_read_recv_bitmap(r, buf, len, errp);
    case MIG_RP_MSG_RESUME_ACK:
        return r->ops->resume_ack(r->opaque, get_be32(buf), errp);
    default:
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "return path message '%s' is not supported by godwit "
                    "yet",
                    rp_msgs[type].name);
        return false;
    }
}

static void *rp_reader_thread(void *opaque)
{
    RPReader *r = opaque;
    char block[256] = "";
    bool shut = false;

    pthread_setname_np(pthread_self(), "mig/src/rp");
    while (!shut) {
        g_autoptr(GError) err = NULL;
        if (!rp_read_one(r, block, &shut, &err)) {
            if (!atomic_load(&r->stopping)) {
                g_autofree char *msg =
                    g_strdup_printf("return path: %s", err->message);
                r->ops->error(r->opaque, msg);
            }
            break;
        }
    }
    g_mutex_lock(&r->lock);
    r->done = true;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
    return NULL;
}

RPReader *rp_reader_start(MigChannel *main_chan, const RPReaderOps *ops,
                          void *opaque, GError **errp)
{
    MigChannel *c = mig_channel_dup(main_chan, errp);
    RPReader *r;
    int e;

    if (!c) {
        return NULL;
    }
    r = g_new0(RPReader, 1);
    r->f = qemu_file_new_input(c);
    r->ops = ops;
    r->opaque = opaque;
    atomic_init(&r->stopping, false);
    g_mutex_init(&r->lock);
    g_cond_init(&r->cond);
    e = pthread_create(&r->thread, NULL, rp_reader_thread, r);
    if (e) {
        qemu_fclose(r->f, NULL);
        g_free(r);
        gw_error_errno(errp, e, "cannot create the return path thread");
        return NULL;
    }
    return r;
}

bool rp_reader_wait(RPReader *r, int timeout_ms)
{
    int64_t end = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
    bool done;

    g_mutex_lock(&r->lock);
    while (!r->done && g_cond_wait_until(&r->cond, &r->lock, end)) {
    }
    done = r->done;
    g_mutex_unlock(&r->lock);
    return done;
}

void rp_reader_stop(RPReader *r)
{
    if (!r) {
        return;
    }
    atomic_store(&r->stopping, true);
    qemu_file_shutdown(r->f);
    pthread_join(r->thread, NULL);
    qemu_fclose(r->f, NULL);
    g_mutex_clear(&r->lock);
    g_cond_clear(&r->cond);
    g_free(r);
}
