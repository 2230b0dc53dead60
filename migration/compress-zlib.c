/*
 * zlib, in QEMU's formats.
 *
 * Page: the body is one complete zlib stream (RFC 1950 header, deflate
 * data ended with Z_FINISH, Adler-32) of one page; the deflate stream is
 * reset for every page, so each body decodes alone.
 *
 * Stream: one zlib stream per multifd channel, started once (zlib header
 * in the first packet) and never finished. A packet's payload is the
 * deflate output for its pages, the last one deflated with Z_SYNC_FLUSH,
 * so the payload ends on a byte boundary with an empty stored block
 * (00 00 ff ff) and the receiver's stream decodes all of it.
 *
 * Levels 0 (stored) to 9.
 */
#define ZLIB_CONST
#include <glib.h>
#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "compression.h"

#define PAGE MIG_COMPRESS_PAGE_SIZE

typedef struct ZlibCtx {
    MigCompressCtx base;
    z_stream zs; /* deflate for SEND modes, inflate for RECV modes */
    bool deflating;
    /*
     * The page being compressed, copied first: deflate must not see its
     * input change under it (a running guest writes the pages).
     */
    uint8_t page[PAGE];
} ZlibCtx;

static ZlibCtx *zlib_ctx(MigCompressCtx *ctx)
{
    return (ZlibCtx *)ctx;
}

static size_t zlib_page_bound(void)
{
    return compressBound(PAGE);
}

/*
 * deflate's worst case is its stored blocks (5 bytes per block of at least
 * 16 KiB); add the zlib header of the first packet and the sync flush's
 * empty stored block, with room to spare.
 */
static size_t zlib_stream_bound(size_t n_pages)
{
    size_t len = n_pages * PAGE;

    return compressBound(len) + (len >> 10) + 64;
}

static const char *zlib_msg(const z_stream *zs, int ret)
{
    return zs->msg ? zs->msg : zError(ret);
}

static MigCompressCtx *zlib_init(MigCompressMode mode, int level, GError **errp)
{
    ZlibCtx *z = g_new0(ZlibCtx, 1);
    int ret;

    z->deflating =
        mode == MIG_COMPRESS_PAGE_SEND || mode == MIG_COMPRESS_STREAM_SEND;
    ret = z->deflating ? deflateInit(&z->zs, level) : inflateInit(&z->zs);
    if (ret != Z_OK) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "zlib: %s failed: %s",
                    z->deflating ? "deflateInit" : "inflateInit",
                    zlib_msg(&z->zs, ret));
        g_free(z);
        return NULL;
    }
    return &z->base;
}

static void zlib_cleanup(MigCompressCtx *ctx)
{
    ZlibCtx *z = zlib_ctx(ctx);

    if (z->deflating) {
        deflateEnd(&z->zs);
    } else {
        inflateEnd(&z->zs);
    }
    g_free(z);
}

static ssize_t zlib_compress_page(MigCompressCtx *ctx, const uint8_t *page,
                                  uint8_t *out, size_t out_size, GError **errp)
{
    ZlibCtx *z = zlib_ctx(ctx);
    int ret;

    memcpy(z->page, page, PAGE);
    deflateReset(&z->zs);
    z->zs.next_in = z->page;
    z->zs.avail_in = PAGE;
    z->zs.next_out = out;
    z->zs.avail_out = MIN(out_size, UINT_MAX);
    ret = deflate(&z->zs, Z_FINISH);
    if (ret == Z_STREAM_END) {
        return z->zs.total_out;
    }
    if (ret == Z_OK || ret == Z_BUF_ERROR) {
        return 0; /* out of room: the body would be >= out_size */
    }
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "zlib: deflate failed: %s",
                zlib_msg(&z->zs, ret));
    return -1;
}

static bool zlib_decompress_page(MigCompressCtx *ctx, const uint8_t *body,
                                 size_t len, uint8_t *page, GError **errp)
{
    ZlibCtx *z = zlib_ctx(ctx);
    int ret;

    if (len > UINT_MAX) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zlib: page body of %zu bytes is too long", len);
        return false;
    }
    inflateReset(&z->zs);
    z->zs.next_in = body;
    z->zs.avail_in = len;
    z->zs.next_out = page;
    z->zs.avail_out = PAGE;
    ret = inflate(&z->zs, Z_FINISH);
    if (ret == Z_STREAM_END && z->zs.avail_out == 0 && z->zs.avail_in == 0) {
        return true;
    }
    if (ret == Z_STREAM_END && z->zs.avail_out) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zlib: page body decodes to %lu bytes, not %d",
                    z->zs.total_out, PAGE);
    } else if (ret == Z_STREAM_END) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zlib: %u bytes after the end of the page body",
                    z->zs.avail_in);
    } else if (ret == Z_BUF_ERROR && z->zs.avail_out == 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zlib: page body decodes to more than %d bytes", PAGE);
    } else if (ret == Z_BUF_ERROR) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zlib: page body is truncated (%lu bytes decoded)",
                    z->zs.total_out);
    } else {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zlib: page body is corrupt: %s", zlib_msg(&z->zs, ret));
    }
    return false;
}

static ssize_t zlib_stream_compress_pages(MigCompressCtx *ctx,
                                          uint8_t *const *pages, size_t n_pages,
                                          uint8_t *out, size_t out_size,
                                          GError **errp)
{
    ZlibCtx *z = zlib_ctx(ctx);

    z->zs.next_out = out;
    z->zs.avail_out = MIN(out_size, UINT_MAX);
    for (size_t i = 0; i < n_pages; i++) {
        int flush = i + 1 == n_pages ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        int ret;

        memcpy(z->page, pages[i], PAGE);
        z->zs.next_in = z->page;
        z->zs.avail_in = PAGE;
        ret = deflate(&z->zs, flush);
        if (ret != Z_OK && ret != Z_BUF_ERROR) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "zlib: deflate failed: %s", zlib_msg(&z->zs, ret));
            return -1;
        }
        /* deflate stops early only when out is full. */
        if (z->zs.avail_in || (flush == Z_SYNC_FLUSH && !z->zs.avail_out)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "zlib: %zu bytes are too few for a packet of %zu "
                        "pages",
                        out_size, n_pages);
            return -1;
        }
    }
    return z->zs.next_out - out;
}

/* Inflates into out[0..len) until it is full; false on an error. */
static bool zlib_inflate_fill(ZlibCtx *z, uint8_t *out, unsigned len,
                              GError **errp)
{
    int ret;

    z->zs.next_out = out;
    z->zs.avail_out = len;
    do {
        unsigned in = z->zs.avail_in, left = z->zs.avail_out;

        ret = inflate(&z->zs, Z_SYNC_FLUSH);
        if (ret == Z_STREAM_END) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "zlib: the stream ends inside a packet");
            return false;
        }
        if (ret != Z_OK && ret != Z_BUF_ERROR) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "zlib: packet payload is corrupt: %s",
                        zlib_msg(&z->zs, ret));
            return false;
        }
        if (in == z->zs.avail_in && left == z->zs.avail_out) {
            return true; /* input used up: the caller sees the room left */
        }
    } while (z->zs.avail_out);
    return true;
}

static bool zlib_stream_decompress_pages(MigCompressCtx *ctx,
                                         const uint8_t *payload, size_t len,
                                         uint8_t *const *pages, size_t n_pages,
                                         GError **errp)
{
    static const uint8_t sync_flush_end[4] = {0x00, 0x00, 0xff, 0xff};
    ZlibCtx *z = zlib_ctx(ctx);
    uint8_t extra;

    if (!n_pages && !len) {
        return true;
    }
    if (len < sizeof(sync_flush_end) || len > UINT_MAX ||
        memcmp(payload + len - 4, sync_flush_end, 4)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zlib: packet payload of %zu bytes for %zu pages does "
                    "not end with a sync flush",
                    len, n_pages);
        return false;
    }
    z->zs.next_in = payload;
    z->zs.avail_in = len;
    for (size_t i = 0; i < n_pages; i++) {
        if (!zlib_inflate_fill(z, pages[i], PAGE, errp)) {
            return false;
        }
        if (z->zs.avail_out) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "zlib: packet payload decodes to %zu bytes, not %zu "
                        "pages",
                        i * PAGE + PAGE - z->zs.avail_out, n_pages);
            return false;
        }
    }
    /*
     * Nothing may follow the last page: no more output, no input left, and
     * the stream must rest at a byte boundary, where the sync flush left
     * it (inflate's data_type: unused bits + 64 for a final block).
     */
    if (!zlib_inflate_fill(z, &extra, 1, errp)) {
        return false;
    }
    if (!z->zs.avail_out || z->zs.avail_in || (z->zs.data_type & 127)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zlib: packet payload has data after %zu pages", n_pages);
        return false;
    }
    return true;
}

static const MigCompressOps zlib_ops = {
    .name = "zlib",
    .level_min = 0,
    .level_max = 9,
    .level_default = 1,
    .page_bound = zlib_page_bound,
    .stream_bound = zlib_stream_bound,
    .init = zlib_init,
    .cleanup = zlib_cleanup,
    .compress_page = zlib_compress_page,
    .decompress_page = zlib_decompress_page,
    .stream_compress_pages = zlib_stream_compress_pages,
    .stream_decompress_pages = zlib_stream_decompress_pages,
};

void mig_compress_zlib_register(void)
{
    mig_compress_register(MIG_COMPRESSION_ZLIB, &zlib_ops);
}
