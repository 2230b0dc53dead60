/*
 * zstd.
 *
 * Page (godwit's own framing, for compress-method=zstd): the body is one
 * complete zstd frame (RFC 8878) whose header gives the content size,
 * 4096, and which ends with the 32-bit content checksum. Nothing may
 * follow the frame.
 *
 * Stream (QEMU's multifd zstd): one zstd frame per multifd channel,
 * started once (frame header in the first packet) and never ended. A
 * packet's payload is the compressor's output for its pages, the last one
 * compressed with ZSTD_e_flush, so the payload ends with a complete block
 * and the receiver's stream decodes all of it. No content size and no
 * checksum (the frame never ends).
 *
 * Levels 0 to 20, passed to libzstd as they are: 0 is zstd's default
 * level (3), not "no compression".
 *
 * Window: the receiver refuses a frame whose window is bigger than any
 * sender can need -- a page frame holds 4 KiB, and level 20, the highest
 * QEMU and godwit allow, uses a 2^25-byte (32 MiB) window. libzstd's own
 * limit is 2^27: the 6-byte header of a hostile stream could make every
 * multifd channel of a destination allocate 128 MiB (found by
 * fuzz-multifd-packet: 101 MB from 5 bytes).
 */
#include <glib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "compression.h"

#define PAGE MIG_COMPRESS_PAGE_SIZE

/* Largest windows a receiver accepts (log2 bytes); see above. */
#define ZSTD_PAGE_WINDOW_LOG_MAX 17
#define ZSTD_STREAM_WINDOW_LOG_MAX 25

/* RFC 8878 3.1.1.2: a block header is 3 bytes. */
#define ZSTD_BLOCK_HEADER_SIZE 3

typedef struct ZstdCtx {
    MigCompressCtx base;
    ZSTD_CCtx *cctx; /* SEND modes (a ZSTD_CStream is a ZSTD_CCtx) */
    ZSTD_DCtx *dctx; /* RECV modes (a ZSTD_DStream is a ZSTD_DCtx) */
    /*
     * PAGE_SEND: the page being compressed, copied first so that the
     * one-shot compressor never sees it change. (Stream mode buffers its
     * input inside libzstd already.)
     */
    uint8_t page[PAGE];
} ZstdCtx;

static ZstdCtx *zstd_ctx(MigCompressCtx *ctx)
{
    return (ZstdCtx *)ctx;
}

static size_t zstd_page_bound(void)
{
    return ZSTD_compressBound(PAGE);
}

/* Each flush ends a block (3-byte header); the first packet holds the
 * frame header (at most 18 bytes). */
static size_t zstd_stream_bound(size_t n_pages)
{
    return ZSTD_compressBound(n_pages * PAGE) + 64;
}

static bool zstd_param(ZstdCtx *z, ZSTD_cParameter param, int value,
                       GError **errp)
{
    size_t r = ZSTD_CCtx_setParameter(z->cctx, param, value);

    if (ZSTD_isError(r)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zstd: can't set parameter %d to %d: %s", (int)param, value,
                    ZSTD_getErrorName(r));
        return false;
    }
    return true;
}

static void zstd_cleanup(MigCompressCtx *ctx)
{
    ZstdCtx *z = zstd_ctx(ctx);

    ZSTD_freeCCtx(z->cctx);
    ZSTD_freeDCtx(z->dctx);
    g_free(z);
}

static MigCompressCtx *zstd_init(MigCompressMode mode, int level, GError **errp)
{
    ZstdCtx *z = g_new0(ZstdCtx, 1);
    bool page = mode == MIG_COMPRESS_PAGE_SEND;

    if (mode == MIG_COMPRESS_PAGE_RECV || mode == MIG_COMPRESS_STREAM_RECV) {
        int wlog = mode == MIG_COMPRESS_PAGE_RECV ? ZSTD_PAGE_WINDOW_LOG_MAX
                                                  : ZSTD_STREAM_WINDOW_LOG_MAX;
        size_t r;

        z->dctx = ZSTD_createDCtx();
        if (!z->dctx) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "zstd: out of memory for a decompression context");
            goto fail;
        }
        r = ZSTD_DCtx_setParameter(z->dctx, ZSTD_d_windowLogMax, wlog);
        if (ZSTD_isError(r)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "zstd: can't limit the window to 2^%d bytes: %s", wlog,
                        ZSTD_getErrorName(r));
            goto fail;
        }
        return &z->base;
    }
    z->cctx = ZSTD_createCCtx();
    if (!z->cctx) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zstd: out of memory for a compression context");
        goto fail;
    }
    if (!zstd_param(z, ZSTD_c_compressionLevel, level, errp) ||
        !zstd_param(z, ZSTD_c_checksumFlag, page, errp) ||
        !zstd_param(z, ZSTD_c_contentSizeFlag, page, errp)) {
        goto fail;
    }
    return &z->base;

fail:
    zstd_cleanup(&z->base);
    return NULL;
}

static ssize_t zstd_compress_page(MigCompressCtx *ctx, const uint8_t *page,
                                  uint8_t *out, size_t out_size, GError **errp)
{
    ZstdCtx *z = zstd_ctx(ctx);
    size_t r;

    memcpy(z->page, page, PAGE);
    r = ZSTD_compress2(z->cctx, out, out_size, z->page, PAGE);
    if (!ZSTD_isError(r)) {
        return r;
    }
    if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall) {
        return 0;
    }
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "zstd: compression failed: %s", ZSTD_getErrorName(r));
    return -1;
}

static bool zstd_decompress_page(MigCompressCtx *ctx, const uint8_t *body,
                                 size_t len, uint8_t *page, GError **errp)
{
    ZstdCtx *z = zstd_ctx(ctx);
    size_t frame = ZSTD_findFrameCompressedSize(body, len);
    unsigned long long content = ZSTD_getFrameContentSize(body, len);
    size_t r;

    if (ZSTD_isError(frame) || frame != len) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zstd: page body of %zu bytes is not one zstd frame%s%s",
                    len, ZSTD_isError(frame) ? ": " : "",
                    ZSTD_isError(frame) ? ZSTD_getErrorName(frame) : "");
        return false;
    }
    if (content != PAGE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zstd: page body's frame does not say it holds %d bytes",
                    PAGE);
        return false;
    }
    r = ZSTD_decompressDCtx(z->dctx, page, PAGE, body, len);
    if (ZSTD_isError(r)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zstd: page body is corrupt: %s", ZSTD_getErrorName(r));
        return false;
    }
    if (r != PAGE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zstd: page body decodes to %zu bytes, not %d", r, PAGE);
        return false;
    }
    return true;
}

static ssize_t zstd_stream_compress_pages(MigCompressCtx *ctx,
                                          uint8_t *const *pages, size_t n_pages,
                                          uint8_t *out, size_t out_size,
                                          GError **errp)
{
    ZstdCtx *z = zstd_ctx(ctx);
    ZSTD_outBuffer o = {out, out_size, 0};

    for (size_t i = 0; i < n_pages; i++) {
        ZSTD_EndDirective end =
            i + 1 == n_pages ? ZSTD_e_flush : ZSTD_e_continue;
        ZSTD_inBuffer in = {pages[i], PAGE, 0};
        size_t left;

        do {
            size_t in_pos = in.pos, out_pos = o.pos;

            left = ZSTD_compressStream2(z->cctx, &o, &in, end);
            if (ZSTD_isError(left)) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "zstd: compression failed: %s",
                            ZSTD_getErrorName(left));
                return -1;
            }
            if (in.pos == in_pos && o.pos == out_pos) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "zstd: %zu bytes are too few for a packet of "
                            "%zu pages",
                            out_size, n_pages);
                return -1;
            }
            /* continue: until the page is taken; flush: until all is out */
        } while (in.pos < in.size || (end == ZSTD_e_flush && left));
    }
    return o.pos;
}

/*
 * Decodes into out[0..len) until it is full or the input is used up.
 * Returns the bytes decoded, or -1 on an error; *hint is libzstd's last
 * answer (the input it wants next).
 */
static ssize_t zstd_decompress_fill(ZstdCtx *z, ZSTD_inBuffer *in, uint8_t *out,
                                    size_t len, size_t *hint, GError **errp)
{
    ZSTD_outBuffer o = {out, len, 0};

    do {
        size_t in_pos = in->pos, out_pos = o.pos;

        *hint = ZSTD_decompressStream(z->dctx, &o, in);
        if (ZSTD_isError(*hint)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "zstd: packet payload is corrupt: %s",
                        ZSTD_getErrorName(*hint));
            return -1;
        }
        if (*hint == 0) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "zstd: the frame ends inside a packet");
            return -1;
        }
        if (in->pos == in_pos && o.pos == out_pos) {
            break;
        }
    } while (o.pos < o.size);
    return o.pos;
}

static bool zstd_stream_decompress_pages(MigCompressCtx *ctx,
                                         const uint8_t *payload, size_t len,
                                         uint8_t *const *pages, size_t n_pages,
                                         GError **errp)
{
    ZstdCtx *z = zstd_ctx(ctx);
    ZSTD_inBuffer in = {payload, len, 0};
    size_t hint;
    uint8_t extra;
    ssize_t r;

    if (!n_pages && !len) {
        return true;
    }
    for (size_t i = 0; i < n_pages; i++) {
        r = zstd_decompress_fill(z, &in, pages[i], PAGE, &hint, errp);
        if (r < 0) {
            return false;
        }
        if (r != PAGE) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "zstd: packet payload decodes to %zu bytes, not %zu "
                        "pages",
                        i * PAGE + r, n_pages);
            return false;
        }
    }
    /*
     * Nothing may follow the last page: no more output, no input left, and
     * the stream must rest between two blocks, where the flush left it.
     * There libzstd's hint is the size of the next block header, less any
     * part of it already taken in (a trailing byte or two of garbage);
     * test_stream_plain_library and test_stream_corrupt hold the installed
     * libzstd to that.
     */
    r = zstd_decompress_fill(z, &in, &extra, 1, &hint, errp);
    if (r < 0) {
        return false;
    }
    if (r || in.pos != in.size || hint != ZSTD_BLOCK_HEADER_SIZE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zstd: packet payload has data after %zu pages", n_pages);
        return false;
    }
    return true;
}

static const MigCompressOps zstd_ops = {
    .name = "zstd",
    .level_min = 0,
    .level_max = 20,
    .level_default = 1,
    .page_bound = zstd_page_bound,
    .stream_bound = zstd_stream_bound,
    .init = zstd_init,
    .cleanup = zstd_cleanup,
    .compress_page = zstd_compress_page,
    .decompress_page = zstd_decompress_page,
    .stream_compress_pages = zstd_stream_compress_pages,
    .stream_decompress_pages = zstd_stream_decompress_pages,
};

void mig_compress_zstd_register(void)
{
    mig_compress_register(MIG_COMPRESSION_ZSTD, &zstd_ops);
}
