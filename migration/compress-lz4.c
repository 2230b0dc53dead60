/*
 * lz4, in godwit's own framing (QEMU has no lz4 method): every page is an
 * independent LZ4 block (the raw block format, no frame, no checksum).
 *
 * Page: the body is the LZ4 block of the page; it must decode to exactly
 * 4096 bytes and end where the block ends.
 *
 * Stream: the packet payload is, for each page in order, a 2-byte
 * big-endian length L followed by L bytes:
 *   1 <= L <= 4095: an LZ4 block that decodes to exactly one page;
 *   L == 4096:      the page stored as it is (it did not shrink);
 *   other L:        invalid.
 * Nothing follows the last page. Blocks do not refer to earlier pages, so
 * packets decode alone: the "stream" keeps no state between packets
 * beyond the compressor's reusable tables.
 *
 * Levels 0 to 12: 0 and 1 are LZ4's fast compressor (acceleration 1);
 * 2 to 12 are LZ4HC at that level (much slower, somewhat smaller).
 *
 * Pages are compressed from a private copy: LZ4's encoder, fed a page that
 * a running guest writes meanwhile, can emit a block that does not decode
 * (test-compression's test_page_changing caught it).
 */
#include <glib.h>
#include <limits.h>
#include <lz4.h>
#include <lz4hc.h>
#include <string.h>

#include "compression.h"

#define PAGE MIG_COMPRESS_PAGE_SIZE
#define LZ4_HC_LEVEL_MIN 2
#define LZ4_LEN_SIZE 2 /* stream: the length before each page */

typedef struct Lz4Ctx {
    MigCompressCtx base;
    LZ4_stream_t *fast; /* SEND, levels 0-1 */
    LZ4_streamHC_t *hc; /* SEND, levels 2-12 */
    uint8_t page[PAGE]; /* SEND: the page being compressed, copied */
} Lz4Ctx;

static Lz4Ctx *lz4_ctx(MigCompressCtx *ctx)
{
    return (Lz4Ctx *)ctx;
}

static size_t lz4_page_bound(void)
{
    return LZ4_COMPRESSBOUND(PAGE);
}

static size_t lz4_stream_bound(size_t n_pages)
{
    return n_pages * (LZ4_LEN_SIZE + PAGE);
}

static void lz4_cleanup(MigCompressCtx *ctx)
{
    Lz4Ctx *l = lz4_ctx(ctx);

    LZ4_freeStream(l->fast);
    LZ4_freeStreamHC(l->hc);
    g_free(l);
}

static MigCompressCtx *lz4_init(MigCompressMode mode, int level, GError **errp)
{
    Lz4Ctx *l = g_new0(Lz4Ctx, 1);

    if (mode == MIG_COMPRESS_PAGE_RECV || mode == MIG_COMPRESS_STREAM_RECV) {
        return &l->base; /* decoding needs no state */
    }
    if (level >= LZ4_HC_LEVEL_MIN) {
        l->hc = LZ4_createStreamHC();
    } else {
        l->fast = LZ4_createStream();
    }
    if (!l->hc && !l->fast) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "lz4: out of memory for a compression context");
        lz4_cleanup(&l->base);
        return NULL;
    }
    return &l->base;
}

/*
 * l->page into an independent block of at most `cap` bytes. Returns its
 * length, or 0 when it does not fit. The fast compressor starts from
 * cleared 16 KiB tables each time, which for a 4 KiB input (16-bit table
 * entries) measured faster than keeping them with LZ4_resetStream_fast;
 * LZ4HC's tables are 256 KiB, so those are kept and only reset fast.
 */
static int lz4_block(Lz4Ctx *l, uint8_t *out, int cap)
{
    if (l->hc) {
        LZ4_resetStreamHC_fast(l->hc, l->base.level);
        return LZ4_compress_HC_continue(l->hc, (const char *)l->page,
                                        (char *)out, PAGE, cap);
    }
    return LZ4_compress_fast_extState(l->fast, (const char *)l->page,
                                      (char *)out, PAGE, cap, 1);
}

/* Decodes one block into a page; false unless it is exactly one page. */
static bool lz4_unblock(const uint8_t *block, size_t len, uint8_t *page,
                        const char *what, GError **errp)
{
    int r;

    if (!len || len > INT_MAX) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "lz4: %s of %zu bytes is invalid", what, len);
        return false;
    }
    r = LZ4_decompress_safe((const char *)block, (char *)page, (int)len, PAGE);
    if (r < 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "lz4: %s of %zu bytes is corrupt", what, len);
        return false;
    }
    if (r != PAGE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "lz4: %s decodes to %d bytes, not %d", what, r, PAGE);
        return false;
    }
    return true;
}

static ssize_t lz4_compress_page(MigCompressCtx *ctx, const uint8_t *page,
                                 uint8_t *out, size_t out_size, GError **errp)
{
    Lz4Ctx *l = lz4_ctx(ctx);

    memcpy(l->page, page, PAGE);
    return lz4_block(l, out, MIN(out_size, INT_MAX));
}

static bool lz4_decompress_page(MigCompressCtx *ctx, const uint8_t *body,
                                size_t len, uint8_t *page, GError **errp)
{
    return lz4_unblock(body, len, page, "page body", errp);
}

static ssize_t lz4_stream_compress_pages(MigCompressCtx *ctx,
                                         uint8_t *const *pages, size_t n_pages,
                                         uint8_t *out, size_t out_size,
                                         GError **errp)
{
    Lz4Ctx *l = lz4_ctx(ctx);
    size_t pos = 0;

    for (size_t i = 0; i < n_pages; i++) {
        size_t room = out_size - pos;
        int len = 0;

        memcpy(l->page, pages[i], PAGE);
        if (room > LZ4_LEN_SIZE) {
            len = lz4_block(l, out + pos + LZ4_LEN_SIZE,
                            MIN(room - LZ4_LEN_SIZE, PAGE - 1));
        }
        if (!len) {
            if (room < LZ4_LEN_SIZE + PAGE) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "lz4: %zu bytes are too few for a packet of %zu "
                            "pages",
                            out_size, n_pages);
                return -1;
            }
            memcpy(out + pos + LZ4_LEN_SIZE, l->page, PAGE);
            len = PAGE;
        }
        out[pos] = len >> 8;
        out[pos + 1] = len & 0xff;
        pos += LZ4_LEN_SIZE + len;
    }
    return pos;
}

static bool lz4_stream_decompress_pages(MigCompressCtx *ctx,
                                        const uint8_t *payload, size_t len,
                                        uint8_t *const *pages, size_t n_pages,
                                        GError **errp)
{
    size_t pos = 0;

    for (size_t i = 0; i < n_pages; i++) {
        size_t block;

        if (len - pos < LZ4_LEN_SIZE) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "lz4: packet payload of %zu bytes ends before page "
                        "%zu of %zu",
                        len, i + 1, n_pages);
            return false;
        }
        block = (size_t)payload[pos] << 8 | payload[pos + 1];
        pos += LZ4_LEN_SIZE;
        if (!block || block > PAGE) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "lz4: invalid length %zu for page %zu of %zu in a "
                        "packet",
                        block, i + 1, n_pages);
            return false;
        }
        if (block > len - pos) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "lz4: packet payload of %zu bytes is truncated in "
                        "page %zu of %zu",
                        len, i + 1, n_pages);
            return false;
        }
        if (block == PAGE) {
            memcpy(pages[i], payload + pos, PAGE);
        } else if (!lz4_unblock(payload + pos, block, pages[i], "packet block",
                                errp)) {
            return false;
        }
        pos += block;
    }
    if (pos != len) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "lz4: packet payload has %zu bytes after %zu pages",
                    len - pos, n_pages);
        return false;
    }
    return true;
}

static const MigCompressOps lz4_ops = {
    .name = "lz4",
    .level_min = 0,
    .level_max = LZ4HC_CLEVEL_MAX,
    .level_default = 1,
    .page_bound = lz4_page_bound,
    .stream_bound = lz4_stream_bound,
    .init = lz4_init,
    .cleanup = lz4_cleanup,
    .compress_page = lz4_compress_page,
    .decompress_page = lz4_decompress_page,
    .stream_compress_pages = lz4_stream_compress_pages,
    .stream_decompress_pages = lz4_stream_decompress_pages,
};

void mig_compress_lz4_register(void)
{
    mig_compress_register(MIG_COMPRESSION_LZ4, &lz4_ops);
}
