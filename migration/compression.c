/*
 * The registry of page compression methods and the calls that dispatch to
 * them: mode checks, level range checks, the sticky stream error.
 * The methods themselves are in compress-zlib.c, compress-zstd.c and
 * compress-lz4.c.
 */
#include <glib.h>

#include "compression.h"

static const MigCompressOps *mig_compress_table[MIG_COMPRESSION__MAX];

static void mig_compress_check_ops(MigCompression method,
                                   const MigCompressOps *ops)
{
    g_assert(method > MIG_COMPRESSION_NONE && method < MIG_COMPRESSION__MAX);
    g_assert(ops && ops->name);
    g_assert(ops->level_min >= 0 && ops->level_min <= ops->level_default &&
             ops->level_default <= ops->level_max);
    g_assert(ops->page_bound && ops->stream_bound);
    g_assert(ops->init && ops->cleanup);
    g_assert(ops->compress_page && ops->decompress_page);
    g_assert(ops->stream_compress_pages && ops->stream_decompress_pages);
}

void mig_compress_register(MigCompression method, const MigCompressOps *ops)
{
    mig_compress_check_ops(method, ops);
    g_assert(!mig_compress_table[method] || mig_compress_table[method] == ops);
    mig_compress_table[method] = ops;
}

const MigCompressOps *mig_compress_replace(MigCompression method,
                                           const MigCompressOps *ops)
{
    const MigCompressOps *old;

    mig_compress_register_all();
    mig_compress_check_ops(method, ops);
    old = mig_compress_table[method];
    mig_compress_table[method] = ops;
    return old;
}

void mig_compress_register_all(void)
{
    static gsize done;

    if (g_once_init_enter(&done)) {
        mig_compress_zlib_register();
        mig_compress_zstd_register();
        mig_compress_lz4_register();
        g_once_init_leave(&done, 1);
    }
}

const MigCompressOps *mig_compress_ops(MigCompression method)
{
    g_assert(method >= 0 && method < MIG_COMPRESSION__MAX);
    return mig_compress_table[method];
}

MigCompressCtx *mig_compress_ctx_new(MigCompression method,
                                     MigCompressMode mode, int level,
                                     GError **errp)
{
    const MigCompressOps *ops;
    MigCompressCtx *ctx;

    g_assert(mode >= 0 && mode < MIG_COMPRESS_MODE__MAX);
    if (method < 0 || method >= MIG_COMPRESSION__MAX ||
        !(ops = mig_compress_table[method])) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "compression method %d has no compressor (was "
                    "mig_compress_register_all() called?)",
                    (int)method);
        return NULL;
    }
    if (level < ops->level_min || level > ops->level_max) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "%s: compression level %d is out of range (%d-%d)",
                    ops->name, level, ops->level_min, ops->level_max);
        return NULL;
    }
    ctx = ops->init(mode, level, errp);
    if (!ctx) {
        return NULL;
    }
    ctx->ops = ops;
    ctx->mode = mode;
    ctx->level = level;
    ctx->broken = false;
    return ctx;
}

void mig_compress_ctx_free(MigCompressCtx *ctx)
{
    if (ctx) {
        ctx->ops->cleanup(ctx);
    }
}

size_t mig_compress_page_bound(MigCompression method)
{
    const MigCompressOps *ops = mig_compress_ops(method);

    return ops ? ops->page_bound() : 0;
}

size_t mig_compress_stream_bound(MigCompression method, size_t n_pages)
{
    const MigCompressOps *ops = mig_compress_ops(method);

    return ops ? ops->stream_bound(n_pages) : 0;
}

ssize_t mig_compress_page(MigCompressCtx *ctx, const uint8_t *page,
                          uint8_t *out, size_t out_size, GError **errp)
{
    g_assert(ctx->mode == MIG_COMPRESS_PAGE_SEND);
    return ctx->ops->compress_page(ctx, page, out, out_size, errp);
}

bool mig_decompress_page(MigCompressCtx *ctx, const uint8_t *body, size_t len,
                         uint8_t *page, GError **errp)
{
    g_assert(ctx->mode == MIG_COMPRESS_PAGE_RECV);
    return ctx->ops->decompress_page(ctx, body, len, page, errp);
}

static bool mig_compress_check_stream(MigCompressCtx *ctx, GError **errp)
{
    if (ctx->broken) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "%s: compression stream is unusable after an earlier "
                    "error",
                    ctx->ops->name);
        return false;
    }
    return true;
}

ssize_t mig_stream_compress_pages(MigCompressCtx *ctx, uint8_t *const *pages,
                                  size_t n_pages, uint8_t *out, size_t out_size,
                                  GError **errp)
{
    ssize_t ret;

    g_assert(ctx->mode == MIG_COMPRESS_STREAM_SEND);
    if (!mig_compress_check_stream(ctx, errp)) {
        return -1;
    }
    ret = ctx->ops->stream_compress_pages(ctx, pages, n_pages, out, out_size,
                                          errp);
    ctx->broken = ret < 0;
    return ret;
}

bool mig_stream_decompress_pages(MigCompressCtx *ctx, const uint8_t *payload,
                                 size_t len, uint8_t *const *pages,
                                 size_t n_pages, GError **errp)
{
    g_assert(ctx->mode == MIG_COMPRESS_STREAM_RECV);
    if (!mig_compress_check_stream(ctx, errp)) {
        return false;
    }
    ctx->broken = !ctx->ops->stream_decompress_pages(ctx, payload, len, pages,
                                                     n_pages, errp);
    return !ctx->broken;
}
