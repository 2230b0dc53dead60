/*
 * multifd with compression (zlib, zstd, lz4): each channel keeps one
 * compression stream for its whole life, as QEMU does, and a packet's
 * payload is its normal pages compressed on that stream. The method's
 * own file (compress-zlib.c, compress-zstd.c, compress-lz4.c) owns the
 * format; this file only moves payloads.
 */
#include <errno.h>

#include "compression.h"
#include "multifd.h"

typedef struct MultiFDCompressData {
    MigCompressCtx *ctx;
    uint8_t *buf;
    size_t cap;
} MultiFDCompressData;

static MultiFDCompressData *compress_data_new(MigCompression c,
                                              MigCompressMode mode, int level,
                                              GError **errp)
{
    MultiFDCompressData *d = g_new0(MultiFDCompressData, 1);

    mig_compress_register_all();
    d->ctx = mig_compress_ctx_new(c, mode, level, errp);
    if (!d->ctx) {
        g_free(d);
        return NULL;
    }
    d->cap = mig_compress_stream_bound(c, MULTIFD_PACKET_PAGES);
    d->buf = g_malloc(d->cap);
    return d;
}

static void compress_data_free(void *opaque)
{
    MultiFDCompressData *d = opaque;

    if (d) {
        mig_compress_ctx_free(d->ctx);
        g_free(d->buf);
        g_free(d);
    }
}

static bool compress_send_setup(MultiFDSendParams *p, GError **errp)
{
    p->data = compress_data_new(p->compression, MIG_COMPRESS_STREAM_SEND,
                                p->level, errp);
    return p->data != NULL;
}

static void compress_send_cleanup(MultiFDSendParams *p)
{
    g_clear_pointer(&p->data, compress_data_free);
}

static bool compress_send_prepare(MultiFDSendParams *p, MultiFDPayload *pl,
                                  GError **errp)
{
    MultiFDCompressData *d = p->data;
    ssize_t len = mig_stream_compress_pages(d->ctx, pl->host, pl->n, d->buf,
                                            d->cap, errp);

    if (len < 0) {
        g_prefix_error(errp, "multifd: channel %d: ", p->id);
        return false;
    }
    pl->iov[0].iov_base = d->buf;
    pl->iov[0].iov_len = (size_t)len;
    pl->iovcnt = len ? 1 : 0;
    pl->payload_size = (uint32_t)len;
    return true;
}

static bool compress_recv_setup(MultiFDRecvParams *p, GError **errp)
{
    const MigCompressOps *ops;

    mig_compress_register_all();
    ops = mig_compress_ops(p->compression);
    p->data = compress_data_new(p->compression, MIG_COMPRESS_STREAM_RECV,
                                ops->level_default, errp);
    return p->data != NULL;
}

static void compress_recv_cleanup(MultiFDRecvParams *p)
{
    g_clear_pointer(&p->data, compress_data_free);
}

static bool compress_recv_pages(MultiFDRecvParams *p, MultiFDPayload *pl,
                                GError **errp)
{
    MultiFDCompressData *d = p->data;
    struct iovec iov = {d->buf, pl->payload_size};
    int r;

    if (pl->payload_size > d->cap) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: channel %d: a %s packet of %u bytes is larger "
                    "than %u pages can compress to",
                    p->id, mig_compression_name(p->compression),
                    pl->payload_size, pl->n);
        return false;
    }
    if (pl->payload_size) {
        r = mig_channel_readv_all(p->c, &iov, 1);
        if (r <= 0) {
            gw_error_errno(errp, r == 0 ? ENODATA : -r,
                           "multifd: channel %d: reading a packet", p->id);
            return false;
        }
    }
    if (!mig_stream_decompress_pages(d->ctx, d->buf, pl->payload_size,
                                     pl->host, pl->n, errp)) {
        g_prefix_error(errp, "multifd: channel %d: %s: ", p->id,
                       mig_compression_name(p->compression));
        return false;
    }
    return true;
}

const MultiFDMethods multifd_compress_ops = {
    .name = "compressed",
    .send_setup = compress_send_setup,
    .send_cleanup = compress_send_cleanup,
    .send_prepare = compress_send_prepare,
    .recv_setup = compress_recv_setup,
    .recv_cleanup = compress_recv_cleanup,
    .recv_pages = compress_recv_pages,
};
