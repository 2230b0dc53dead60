/*
 * Unit test: a zstd stream or page frame that asks for a bigger window
 * than any sender needs is refused before libzstd allocates it (a hostile
 * source could otherwise make each multifd channel of a destination
 * allocate up to 128 MiB), and every window a real sender uses still
 * decodes: level 20 streams (2^25) and pages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <string.h>
#include <zstd.h>

#include "../../migration/compression.h"

#define PAGE MIG_COMPRESS_PAGE_SIZE

/*
 * RFC 8878: magic, a frame header descriptor with no flags (so a window
 * descriptor follows: exponent << 3, window 2^(10 + exponent)), then one
 * raw block of `n` bytes (header: last = 0, type raw, size n).
 */
static size_t hostile_frame(uint8_t *buf, int window_log, size_t n)
{
    static const uint8_t magic[] = {0x28, 0xb5, 0x2f, 0xfd};
    uint32_t bh = (uint32_t)n << 3;
    size_t len = 0;

    memcpy(buf, magic, 4);
    len = 4;
    buf[len++] = 0x00;
    buf[len++] = (uint8_t)((window_log - 10) << 3);
    buf[len++] = bh & 0xff;
    buf[len++] = (bh >> 8) & 0xff;
    buf[len++] = (bh >> 16) & 0xff;
    memset(buf + len, 0xab, n);
    return len + n;
}

static void test_stream_window_refused(void **state)
{
    g_autofree uint8_t *page = g_malloc(PAGE);
    uint8_t *pages[1] = {page};
    uint8_t frame[64 + PAGE];

    mig_compress_register_all();
    for (int wlog = 26; wlog <= 31; wlog++) {
        g_autoptr(GError) err = NULL;
        MigCompressCtx *ctx = mig_compress_ctx_new(
            MIG_COMPRESSION_ZSTD, MIG_COMPRESS_STREAM_RECV, 1, &err);
        size_t len = hostile_frame(frame, wlog, PAGE);

        assert_non_null(ctx);
        assert_false(
            mig_stream_decompress_pages(ctx, frame, len, pages, 1, &err));
        assert_non_null(err);
        assert_non_null(strstr(err->message, "zstd: packet payload is "
                                             "corrupt"));
        mig_compress_ctx_free(ctx);
    }
    /* the largest window a level-20 sender uses still decodes */
    {
        g_autoptr(GError) err = NULL;
        MigCompressCtx *ctx = mig_compress_ctx_new(
            MIG_COMPRESSION_ZSTD, MIG_COMPRESS_STREAM_RECV, 1, &err);
        size_t len = hostile_frame(frame, 25, PAGE);

        assert_true(mig_stream_decompress_pages(ctx, frame, len, pages, 1,
                                                &err));
        assert_int_equal(page[PAGE - 1], 0xab);
        mig_compress_ctx_free(ctx);
    }
}

static void test_page_window_refused(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *page = g_malloc(PAGE);
    uint8_t frame[64 + PAGE];
    MigCompressCtx *ctx;
    size_t len = hostile_frame(frame, 27, PAGE);

    mig_compress_register_all();
    ctx = mig_compress_ctx_new(MIG_COMPRESSION_ZSTD, MIG_COMPRESS_PAGE_RECV, 1,
                               &err);
    assert_non_null(ctx);
    assert_false(mig_decompress_page(ctx, frame, len, page, &err));
    assert_non_null(err);
    mig_compress_ctx_free(ctx);
}

/* Senders at every level, page and stream, still get through. */
static void test_levels_roundtrip(void **state)
{
    g_autofree uint8_t *page = g_malloc(PAGE);
    g_autofree uint8_t *back = g_malloc(PAGE);
    uint8_t *pages[1] = {page};
    uint8_t *backs[1] = {back};
    size_t bound = mig_compress_stream_bound(MIG_COMPRESSION_ZSTD, 1);
    g_autofree uint8_t *out = g_malloc(bound);

    mig_compress_register_all();
    for (size_t i = 0; i < PAGE; i++) {
        page[i] = (uint8_t)(i * 7 + i / 64);
    }
    for (int level = 0; level <= 20; level++) {
        g_autoptr(GError) err = NULL;
        MigCompressCtx *tx = mig_compress_ctx_new(
            MIG_COMPRESSION_ZSTD, MIG_COMPRESS_STREAM_SEND, level, &err);
        MigCompressCtx *rx = mig_compress_ctx_new(
            MIG_COMPRESSION_ZSTD, MIG_COMPRESS_STREAM_RECV, level, &err);
        ssize_t n = mig_stream_compress_pages(tx, pages, 1, out, bound, &err);

        assert_true(n > 0);
        memset(back, 0, PAGE);
        assert_true(mig_stream_decompress_pages(rx, out, (size_t)n, backs, 1,
                                                &err));
        assert_memory_equal(page, back, PAGE);
        mig_compress_ctx_free(tx);
        mig_compress_ctx_free(rx);

        tx = mig_compress_ctx_new(MIG_COMPRESSION_ZSTD,
                                  MIG_COMPRESS_PAGE_SEND, level, &err);
        rx = mig_compress_ctx_new(MIG_COMPRESSION_ZSTD,
                                  MIG_COMPRESS_PAGE_RECV, level, &err);
        n = mig_compress_page(tx, page, out, bound, &err);
        assert_true(n > 0);
        memset(back, 0, PAGE);
        assert_true(mig_decompress_page(rx, out, (size_t)n, back, &err));
        assert_memory_equal(page, back, PAGE);
        mig_compress_ctx_free(tx);
        mig_compress_ctx_free(rx);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_window_refused),
        cmocka_unit_test(test_page_window_refused),
        cmocka_unit_test(test_levels_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
