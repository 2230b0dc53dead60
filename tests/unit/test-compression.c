/*
 * Unit tests for migration/compression.c and the methods in
 * migration/compress-*.c: every method round-trips every kind of page, one
 * page at a time and in packets of 1 to 128 pages on one persistent stream
 * pair; the zlib and zstd streams are the ones plain libz / libzstd
 * streams (QEMU's) read and write; levels are checked; and corrupt input
 * (flipped, truncated, lengthened, wrong-sized, garbage) fails with an
 * error without a byte read or written outside the buffers (inputs end at
 * an inaccessible page, outputs are followed by guard bytes; run under
 * -Db_sanitize=address too).
 *
 * This file has the registry, levels and page cases and main(); the
 * stream cases are in test-compression-stream.c, the helpers in
 * compression-helpers.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <limits.h>
#include <lz4.h>
#include <string.h>
#define ZLIB_CONST
#include <zlib.h>
#include <zstd.h>

#include "compression-helpers.h"

/* ---- registry and levels ------------------------------------------------- */

static void test_registry(void **state)
{
    static const char *const names[] = {"none", "zlib", "zstd", "lz4"};

    assert_null(mig_compress_ops(MIG_COMPRESSION_NONE));
    assert_int_equal(mig_compress_page_bound(MIG_COMPRESSION_NONE), 0);
    assert_int_equal(mig_compress_stream_bound(MIG_COMPRESSION_NONE, 8), 0);
    for (size_t i = 0; i < N_METHODS; i++) {
        const MigCompressOps *ops = ops_of(methods[i]);

        assert_string_equal(ops->name, names[methods[i]]);
        assert_true(ops->page_bound() >= PAGE);
        assert_int_equal(mig_compress_page_bound(methods[i]),
                         ops->page_bound());
        for (size_t n = 1; n <= 128; n *= 2) {
            assert_true(ops->stream_bound(n) >= n * PAGE);
        }
    }
}

static void test_levels(void **state)
{
    GError *err = NULL;

    assert_null(mig_compress_ctx_new(MIG_COMPRESSION_NONE,
                                     MIG_COMPRESS_STREAM_SEND, 1, &err));
    assert_non_null(err);
    g_clear_error(&err);
    for (size_t i = 0; i < N_METHODS; i++) {
        const MigCompressOps *ops = ops_of(methods[i]);
        int bad[] = {ops->level_min - 1, ops->level_max + 1, INT_MIN, INT_MAX};

        for (int mode = 0; mode < MIG_COMPRESS_MODE__MAX; mode++) {
            for (size_t k = 0; k < G_N_ELEMENTS(bad); k++) {
                assert_null(
                    mig_compress_ctx_new(methods[i], mode, bad[k], &err));
                assert_non_null(err);
                assert_non_null(strstr(err->message, "out of range"));
                g_clear_error(&err);
            }
            for (int l = ops->level_min; l <= ops->level_max; l++) {
                mig_compress_ctx_free(ctx_new(methods[i], mode, l));
            }
        }
    }
    /* QEMU's ranges fit: compress-level 0-9, multifd-zlib 0-9, zstd 0-20 */
    assert_int_equal(ops_of(MIG_COMPRESSION_ZLIB)->level_max, 9);
    assert_int_equal(ops_of(MIG_COMPRESSION_ZSTD)->level_max, 20);
    assert_true(ops_of(MIG_COMPRESSION_LZ4)->level_max >= 9);
    for (size_t i = 0; i < N_METHODS; i++) {
        assert_int_equal(ops_of(methods[i])->level_min, 0);
    }
}

/* ---- pages --------------------------------------------------------------- */

static void test_page_roundtrip(void **state)
{
    uint8_t *page = g_malloc(PAGE), *back = g_malloc(PAGE);

    for (size_t i = 0; i < N_METHODS; i++) {
        int levels[8], nl = levels_of(methods[i], levels);

        for (int l = 0; l < nl; l++) {
            MigCompressCtx *tx =
                ctx_new(methods[i], MIG_COMPRESS_PAGE_SEND, levels[l]);
            MigCompressCtx *rx =
                ctx_new(methods[i], MIG_COMPRESS_PAGE_RECV, levels[l]);

            for (int kind = 0; kind < KIND__MAX; kind++) {
                for (uint64_t seed = 1; seed <= 3; seed++) {
                    size_t len;
                    uint8_t *body;

                    fill_page(page, kind, seed * 77 + kind);
                    body = compress_one(tx, page, &len);
                    if (!decode_exact(rx, body, len, back, NULL)) {
                        fail_msg("%s level %d kind %d: own body refused",
                                 tx->ops->name, levels[l], kind);
                    }
                    assert_memory_equal(back, page, PAGE);
                    g_free(body);
                }
            }
            mig_compress_ctx_free(tx);
            mig_compress_ctx_free(rx);
        }
    }
    g_free(page);
    g_free(back);
}

/* Bodies are small when the page compresses, and 0 means "didn't fit". */
static void test_page_sizes(void **state)
{
    uint8_t *page = g_malloc(PAGE);

    for (size_t i = 0; i < N_METHODS; i++) {
        int levels[8], nl = levels_of(methods[i], levels);

        for (int l = 0; l < nl; l++) {
            MigCompressCtx *tx =
                ctx_new(methods[i], MIG_COMPRESS_PAGE_SEND, levels[l]);
            bool stored = methods[i] == MIG_COMPRESSION_ZLIB && !levels[l];
            size_t bound = tx->ops->page_bound();
            GError *err = NULL;
            uint8_t *out = out_new(bound);
            size_t len;
            uint8_t *body;

            /* random: never shrinks */
            fill_page(page, KIND_RANDOM, 5);
            assert_int_equal(mig_compress_page(tx, page, out, PAGE - 1, &err),
                             0);
            assert_null(err);
            out_check_guard(out, PAGE - 1);
            assert_int_equal(mig_compress_page(tx, page, out, 0, &err), 0);
            /* zero and text: shrink well (zlib level 0 stores) */
            fill_page(page, KIND_ZERO, 0);
            body = compress_one(tx, page, &len);
            assert_true(stored ? len < PAGE + 16 : len < 100);
            g_free(body);
            fill_page(page, KIND_TEXT, 9);
            body = compress_one(tx, page, &len);
            assert_true(stored || len < PAGE * 7 / 10);
            /* one byte less does not fit; a little more does (zstd
             * needs a few bytes of room beyond the body) */
            assert_int_equal(mig_compress_page(tx, page, out, len - 1, &err),
                             0);
            assert_int_equal(mig_compress_page(tx, page, out, len + 16, &err),
                             len);
            assert_memory_equal(out, body, len);
            out_check_guard(out, bound);
            g_free(body);
            g_free(out);
            mig_compress_ctx_free(tx);
        }
    }
    g_free(page);
}

/* A page written while it is compressed still gives a valid body. */
typedef struct Scribbler {
    uint8_t *page;
    gint stop;
} Scribbler;

static gpointer scribble(gpointer opaque)
{
    Scribbler *s = opaque;
    uint64_t r = 99;

    while (!g_atomic_int_get(&s->stop)) {
        uint64_t v = xorshift64(&r);
        volatile uint8_t *p = s->page;
        p[v % PAGE] = (uint8_t)(v >> 32);
        if ((v >> 40) % 64 == 0) {
            memset(s->page + (v >> 20) % (PAGE / 2), (int)(v & 7), 512);
        }
    }
    return NULL;
}

/*
 * Each method for a while on a page that another thread keeps writing:
 * pages one at a time, then packets of 8 pointers to that page. (LZ4's
 * encoder, fed such a page directly, emits a bad block about once in a
 * thousand pages.)
 */
static void test_page_changing(void **state)
{
    /* static: the thread must not outlive it if an assertion fails */
    static Scribbler s;
    Pages dst = pages_new(8, 1);
    uint8_t *src[8], *back = g_malloc(PAGE);
    GThread *t;

    s.page = g_malloc(PAGE);
    s.stop = 0;
    fill_page(s.page, KIND_TEXT, 3);
    for (size_t k = 0; k < G_N_ELEMENTS(src); k++) {
        src[k] = s.page;
    }
    t = g_thread_new("scribble", scribble, &s);
    for (size_t i = 0; i < N_METHODS; i++) {
        MigCompressCtx *tx = ctx_new(methods[i], MIG_COMPRESS_PAGE_SEND, 1);
        MigCompressCtx *rx = ctx_new(methods[i], MIG_COMPRESS_PAGE_RECV, 1);
        StreamPair sp = pair_new(methods[i], 1);
        size_t bound = tx->ops->stream_bound(G_N_ELEMENTS(src));
        uint8_t *out = g_malloc(bound);
        gint64 now = g_get_monotonic_time();
        gint64 mid = now + 250 * 1000, end = mid + 250 * 1000;
        int pages = 0, packets = 0;
        GError *err = NULL;

        for (; g_get_monotonic_time() < mid; pages++) {
            ssize_t len = mig_compress_page(tx, s.page, out, bound, &err);

            assert_true(len > 0);
            if (!mig_decompress_page(rx, out, len, back, &err)) {
                fail_msg("%s: body of a changing page refused: %s",
                         tx->ops->name, err->message);
            }
        }
        for (; g_get_monotonic_time() < end; packets++) {
            ssize_t len = mig_stream_compress_pages(
                sp.tx, src, G_N_ELEMENTS(src), out, bound, &err);

            assert_true(len > 0);
            if (!mig_stream_decompress_pages(sp.rx, out, len, dst.page, dst.n,
                                             &err)) {
                fail_msg("%s: packet of changing pages refused: %s",
                         tx->ops->name, err->message);
            }
        }
        print_message("%s: %d pages, %d packets of a changing page\n",
                      tx->ops->name, pages, packets);
        g_free(out);
        pair_free(&sp);
        mig_compress_ctx_free(tx);
        mig_compress_ctx_free(rx);
    }
    g_atomic_int_set(&s.stop, 1);
    g_thread_join(t);
    g_free(s.page);
    g_free(back);
    pages_free(&dst);
}

/* Crafted bodies: another length, two frames, no length, garbage. */
static uint8_t *craft_body(MigCompression m, const uint8_t *src, size_t n,
                           size_t *len)
{
    size_t cap = n + 1024;
    uint8_t *out = g_malloc(cap);

    switch (m) {
    case MIG_COMPRESSION_ZLIB: {
        uLongf l = cap;
        assert_int_equal(compress2(out, &l, src, n, 1), Z_OK);
        *len = l;
        break;
    }
    case MIG_COMPRESSION_ZSTD: {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
        *len = ZSTD_compress2(c, out, cap, src, n);
        assert_false(ZSTD_isError(*len));
        ZSTD_freeCCtx(c);
        break;
    }
    default:
        *len = LZ4_compress_default((const char *)src, (char *)out, (int)n,
                                    (int)cap);
        assert_true(*len > 0);
        break;
    }
    return out;
}

static void test_page_corrupt(void **state)
{
    uint8_t *src = g_malloc(2 * PAGE), *back = g_malloc(PAGE);
    uint64_t r = 12345;

    fill_page(src, KIND_TEXT, 1);
    fill_page(src + PAGE, KIND_HALF, 2);
    for (size_t i = 0; i < N_METHODS; i++) {
        MigCompression m = methods[i];
        MigCompressCtx *tx = ctx_new(m, MIG_COMPRESS_PAGE_SEND, 1);
        MigCompressCtx *rx = ctx_new(m, MIG_COMPRESS_PAGE_RECV, 1);
        bool checksum = m != MIG_COMPRESSION_LZ4;

        for (int k = 0; k < 2; k++) {
            const uint8_t *page = src + k * PAGE;
            size_t len, caught = 0, flips = 0;
            uint8_t *body = compress_one(tx, page, &len);
            uint8_t *longer = g_malloc(len + 16);

            /* every truncation */
            for (size_t t = 0; t < len; t++) {
                expect_page_refused(rx, body, t, "truncated body");
            }
            /* any byte after the body, or several */
            memcpy(longer, body, len);
            for (int b = 0; b < 256; b++) {
                longer[len] = b;
                expect_page_refused(rx, longer, len + 1, "longer body");
            }
            for (int b = 0; b < 16; b++) {
                longer[len + b] = xorshift64(&r);
            }
            expect_page_refused(rx, longer, len + 16, "longer body");
            /* every byte flipped, one bit and all bits */
            for (size_t p = 0; p < len; p++) {
                for (int x = 0; x < 2; x++) {
                    body[p] ^= x ? 0xff : 0x10;
                    flips++;
                    if (!decode_exact(rx, body, len, back, NULL)) {
                        caught++;
                    } else if (checksum) {
                        /* only harmless bits (zstd's unused header bit) */
                        assert_memory_equal(back, page, PAGE);
                    }
                    body[p] ^= x ? 0xff : 0x10;
                }
            }
            print_message("%s: %zu of %zu flips in a %zu-byte body refused\n",
                          rx->ops->name, caught, flips, len);
            assert_true(checksum ? caught * 100 >= flips * 99 : caught > 0);
            /* the body itself is still fine */
            assert_true(decode_exact(rx, body, len, back, NULL));
            assert_memory_equal(back, page, PAGE);
            g_free(longer);
            g_free(body);
        }

        /* bodies of the method's own format that hold the wrong length */
        for (size_t n = PAGE - 1; n <= PAGE + 1; n += 2) {
            size_t len;
            uint8_t *body = craft_body(m, src, n, &len);
            expect_page_refused(rx, body, len, n < PAGE ? "4095" : "4097");
            g_free(body);
        }
        if (m == MIG_COMPRESSION_ZSTD) {
            /* two frames of half a page; a frame without content size */
            size_t l1, l2;
            uint8_t *a = craft_body(m, src, PAGE / 2, &l1);
            uint8_t *b = craft_body(m, src + PAGE / 2, PAGE / 2, &l2);
            uint8_t *two = g_malloc(2 * PAGE);
            uint8_t *nosize = g_malloc(PAGE + 1024);
            ZSTD_CCtx *c = ZSTD_createCCtx();

            memcpy(two, a, l1);
            memcpy(two + l1, b, l2);
            expect_page_refused(rx, two, l1 + l2, "two frames");
            ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
            l1 = ZSTD_compress2(c, nosize, PAGE + 1024, src, PAGE);
            assert_false(ZSTD_isError(l1));
            expect_page_refused(rx, nosize, l1, "frame without size");
            /* the page's frame, then an empty frame or a skippable one */
            g_free(a);
            a = craft_body(m, src, PAGE, &l1);
            memcpy(two, a, l1);
            l2 = ZSTD_compress2(c, two + l1, 64, src, 0);
            assert_false(ZSTD_isError(l2));
            expect_page_refused(rx, two, l1 + l2, "page and empty frame");
            memcpy(two + l1, "\x50\x2a\x4d\x18\x01\x00\x00\x00\x00", 9);
            expect_page_refused(rx, two, l1 + 9, "page and skippable frame");
            ZSTD_freeCCtx(c);
            g_free(a);
            g_free(b);
            g_free(two);
            g_free(nosize);
        }
        /* garbage of many lengths */
        for (size_t n = 0; n < 9000; n = n * 3 + 1) {
            uint8_t *junk = g_malloc(n + 1);
            for (int rep = 0; rep < 8; rep++) {
                for (size_t b = 0; b < n; b++) {
                    junk[b] = rep == 0 ? 0 : xorshift64(&r);
                }
                expect_page_refused(rx, junk, n, "garbage");
            }
            g_free(junk);
        }
        mig_compress_ctx_free(tx);
        mig_compress_ctx_free(rx);
    }
    g_free(src);
    g_free(back);
}

static int setup(void **state)
{
    mig_compress_register_all();
    mig_compress_register_all(); /* idempotent */
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_page_roundtrip),
        cmocka_unit_test(test_page_sizes),
        cmocka_unit_test(test_page_changing),
        cmocka_unit_test(test_page_corrupt),
        cmocka_unit_test(test_stream_roundtrip),
        cmocka_unit_test(test_stream_persistent),
        cmocka_unit_test(test_stream_plain_library),
        cmocka_unit_test(test_stream_corrupt),
        cmocka_unit_test(test_stream_small_buffer),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
