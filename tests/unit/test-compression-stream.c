/*
 * Unit tests of the compression streams (migration/compression.c and
 * migration/compress-*.c): packets of 1 to 128 pages round-trip on one
 * persistent stream pair per method and level; zlib and zstd streams are
 * the ones plain libz / libzstd streams (QEMU's) read and write; corrupt
 * packets fail with an error without a byte read or written outside the
 * buffers; a too small output buffer is refused. main() is in
 * test-compression.c.
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

/* ---- streams ------------------------------------------------------------- */

/* Packet `p`'s pages: every kind, some repeating packet p - 1's pages. */
static void fill_packet(Pages *src, uint64_t p)
{
    for (size_t i = 0; i < src->n; i++) {
        uint64_t seed = (i % 3 == 2 && p) ? (p - 1) * 1000 + i : p * 1000 + i;
        fill_page(src->page[i], (p + i) % KIND__MAX, seed);
    }
}

/* Compresses src into a new payload; fails the test on an error. */
static uint8_t *send_packet(MigCompressCtx *tx, Pages *src, size_t *len)
{
    size_t bound = tx->ops->stream_bound(src->n);
    uint8_t *out = out_new(bound);
    GError *err = NULL;
    ssize_t r =
        mig_stream_compress_pages(tx, src->page, src->n, out, bound, &err);

    if (r < 0) {
        fail_msg("%s: %s", tx->ops->name, err->message);
    }
    out_check_guard(out, bound);
    *len = r;
    return out;
}

/* Decodes a payload from a fenced copy into dst; *msg on failure. */
static bool recv_packet(MigCompressCtx *rx, const uint8_t *payload, size_t len,
                        Pages *dst, char **msg)
{
    Fenced copy = fenced_copy(payload, len);
    GError *err = NULL;
    bool ok;

    pages_poison(dst);
    ok = mig_stream_decompress_pages(rx, copy.data, len, dst->page, dst->n,
                                     &err);
    pages_check_guards(dst);
    assert_true(ok == !err);
    if (!ok && msg) {
        *msg = g_strdup(err->message);
    }
    g_clear_error(&err);
    fenced_free(&copy);
    return ok;
}

static void check_same(const Pages *a, const Pages *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        if (memcmp(a->page[i], b->page[i], PAGE)) {
            fail_msg("page %zu of %zu differs", i, a->n);
        }
    }
}

static void stream_roundtrip(MigCompression m, int level, int packets)
{
    static const size_t sizes[] = {1, 2, 64, 128, 3, 17, 128, 1};
    StreamPair sp = pair_new(m, level);
    size_t total_in = 0, total_out = 0;

    for (int p = 0; p < packets; p++) {
        size_t n = sizes[p % G_N_ELEMENTS(sizes)], len;
        Pages src = pages_new(n, p), dst = pages_new(n, p + 1000);
        uint8_t *payload;
        char *msg = NULL;

        fill_packet(&src, p);
        payload = send_packet(sp.tx, &src, &len);
        if (!recv_packet(sp.rx, payload, len, &dst, &msg)) {
            fail_msg("%s level %d packet %d (%zu pages): %s", sp.tx->ops->name,
                     level, p, n, msg);
        }
        check_same(&src, &dst);
        total_in += n * PAGE;
        total_out += len;
        g_free(payload);
        pages_free(&src);
        pages_free(&dst);
    }
    /* an empty packet is an empty payload, and the stream goes on */
    {
        Pages none = pages_new(0, 0);
        size_t len;
        uint8_t *payload = send_packet(sp.tx, &none, &len);

        assert_int_equal(len, 0);
        assert_true(recv_packet(sp.rx, payload, 0, &none, NULL));
        g_free(payload);
        pages_free(&none);
    }
    if (!(m == MIG_COMPRESSION_ZLIB && level == 0)) {
        assert_true(total_out < total_in * 3 / 4);
    }
    pair_free(&sp);
}

void test_stream_roundtrip(void **state)
{
    for (size_t i = 0; i < N_METHODS; i++) {
        int levels[8], nl = levels_of(methods[i], levels);

        for (int l = 0; l < nl; l++) {
            /* the slowest levels get fewer packets */
            bool slow = levels[l] > 9;
            stream_roundtrip(methods[i], levels[l], slow ? 5 : 24);
        }
    }
}

/*
 * zlib and zstd: one stream per channel, so a packet needs the ones
 * before it; lz4 packets decode alone.
 */
void test_stream_persistent(void **state)
{
    for (size_t i = 0; i < N_METHODS; i++) {
        StreamPair sp = pair_new(methods[i], 1);
        MigCompressCtx *fresh =
            ctx_new(methods[i], MIG_COMPRESS_STREAM_RECV, 1);
        Pages src = pages_new(4, 1), dst = pages_new(4, 2);
        size_t l1, l2;
        uint8_t *p1, *p2;
        bool alone;

        fill_packet(&src, 1);
        p1 = send_packet(sp.tx, &src, &l1);
        p2 = send_packet(sp.tx, &src, &l2); /* the same pages again */
        alone = recv_packet(fresh, p2, l2, &dst, NULL);
        if (methods[i] == MIG_COMPRESSION_LZ4) {
            assert_true(alone);
            check_same(&src, &dst);
            assert_int_equal(l1, l2);
        } else {
            assert_false(alone);
            assert_true(l2 < l1 / 4); /* refers back to packet 1 */
        }
        assert_true(recv_packet(sp.rx, p1, l1, &dst, NULL));
        assert_true(recv_packet(sp.rx, p2, l2, &dst, NULL));
        check_same(&src, &dst);
        g_free(p1);
        g_free(p2);
        pages_free(&src);
        pages_free(&dst);
        mig_compress_ctx_free(fresh);
        pair_free(&sp);
    }
}

/* QEMU's streams, written and read with libz / libzstd directly. */
void test_stream_plain_library(void **state)
{
    for (int level = 0; level <= 9; level += 9) {
        StreamPair zp = pair_new(MIG_COMPRESSION_ZLIB, level);
        StreamPair sp = pair_new(MIG_COMPRESSION_ZSTD, level);
        z_stream def = {0}, inf = {0};
        ZSTD_CStream *zc = ZSTD_createCStream();
        ZSTD_DStream *zd = ZSTD_createDStream();
        uint8_t *buf = g_malloc(ZSTD_compressBound(64 * PAGE) + 1024);
        uint8_t *flat = g_malloc(64 * PAGE);

        assert_int_equal(deflateInit(&def, level), Z_OK);
        assert_int_equal(inflateInit(&inf), Z_OK);
        ZSTD_CCtx_setParameter(zc, ZSTD_c_compressionLevel, level);
        for (int p = 0; p < 6; p++) {
            size_t n = p % 2 ? 64 : 5, len;
            Pages src = pages_new(n, p), dst = pages_new(n, p + 7);
            uint8_t *payload;

            fill_packet(&src, p);
            /* godwit's zlib payload: plain inflate reads it */
            payload = send_packet(zp.tx, &src, &len);
            if (p == 0) {
                assert_int_equal(payload[0], 0x78); /* zlib header */
            }
            assert_memory_equal(payload + len - 4, "\0\0\xff\xff", 4);
            inf.next_in = payload;
            inf.avail_in = len;
            inf.next_out = flat;
            inf.avail_out = n * PAGE;
            assert_int_equal(inflate(&inf, Z_SYNC_FLUSH), Z_OK);
            assert_int_equal(inf.avail_in, 0);
            assert_int_equal(inf.avail_out, 0);
            for (size_t i = 0; i < n; i++) {
                assert_memory_equal(flat + i * PAGE, src.page[i], PAGE);
            }
            g_free(payload);
            /* QEMU's way to write one: godwit reads it */
            def.next_out = buf;
            def.avail_out = ZSTD_compressBound(64 * PAGE);
            for (size_t i = 0; i < n; i++) {
                def.next_in = src.page[i];
                def.avail_in = PAGE;
                assert_int_equal(
                    deflate(&def, i + 1 == n ? Z_SYNC_FLUSH : Z_NO_FLUSH),
                    Z_OK);
            }
            assert_true(
                recv_packet(zp.rx, buf, def.next_out - buf, &dst, NULL));
            check_same(&src, &dst);

            /* the same with zstd */
            payload = send_packet(sp.tx, &src, &len);
            assert_true(p == 0 ? !memcmp(payload, "\x28\xb5\x2f\xfd", 4)
                               : !!memcmp(payload, "\x28\xb5\x2f\xfd", 4));
            {
                ZSTD_inBuffer in = {payload, len, 0};
                ZSTD_outBuffer out = {flat, n * PAGE, 0};
                while (in.pos < in.size) {
                    assert_false(
                        ZSTD_isError(ZSTD_decompressStream(zd, &out, &in)));
                }
                assert_int_equal(out.pos, n * PAGE);
                for (size_t i = 0; i < n; i++) {
                    assert_memory_equal(flat + i * PAGE, src.page[i], PAGE);
                }
            }
            g_free(payload);
            {
                ZSTD_outBuffer out = {buf, ZSTD_compressBound(64 * PAGE), 0};
                for (size_t i = 0; i < n; i++) {
                    ZSTD_inBuffer in = {src.page[i], PAGE, 0};
                    size_t left;
                    do {
                        left = ZSTD_compressStream2(
                            zc, &out, &in,
                            i + 1 == n ? ZSTD_e_flush : ZSTD_e_continue);
                        assert_false(ZSTD_isError(left));
                    } while (in.pos < in.size || (i + 1 == n && left));
                }
                assert_true(recv_packet(sp.rx, buf, out.pos, &dst, NULL));
                check_same(&src, &dst);
            }
            pages_free(&src);
            pages_free(&dst);
        }
        deflateEnd(&def);
        inflateEnd(&inf);
        ZSTD_freeCStream(zc);
        ZSTD_freeDStream(zd);
        g_free(buf);
        g_free(flat);
        pair_free(&zp);
        pair_free(&sp);
    }
}

/*
 * A receiver that took one good packet, then gets `bad`: must it fail?
 * Returns whether it was refused; a refused stream refuses what follows.
 */
static bool bad_packet(MigCompression m, const uint8_t *good, size_t good_len,
                       const uint8_t *bad, size_t bad_len, size_t n, char **msg)
{
    MigCompressCtx *rx = ctx_new(m, MIG_COMPRESS_STREAM_RECV, 1);
    Pages dst = pages_new(n, bad_len);
    bool ok;

    if (good) {
        Pages first = pages_new(2, 0);
        assert_true(recv_packet(rx, good, good_len, &first, NULL));
        pages_free(&first);
    }
    ok = recv_packet(rx, bad, bad_len, &dst, msg);
    if (!ok) {
        char *again = NULL;
        assert_false(recv_packet(rx, bad, bad_len, &dst, &again));
        assert_non_null(strstr(again, "unusable"));
        g_free(again);
    }
    pages_free(&dst);
    mig_compress_ctx_free(rx);
    return !ok;
}

static void expect_packet_refused(MigCompression m, const uint8_t *good,
                                  size_t good_len, const uint8_t *bad,
                                  size_t bad_len, size_t n, const char *what)
{
    char *msg = NULL;

    if (!bad_packet(m, good, good_len, bad, bad_len, n, &msg)) {
        fail_msg("%s: %s (%zu bytes, %zu pages) was accepted", ops_of(m)->name,
                 what, bad_len, n);
    }
    assert_true(strstr(msg, ops_of(m)->name) == msg);
    g_free(msg);
}

/* A payload of `n` bytes' worth of input, with the library directly. */
static uint8_t *craft_payload(MigCompression m, const uint8_t *src, size_t n,
                              size_t *len)
{
    size_t cap = n + 1024;
    uint8_t *out = g_malloc(cap);

    if (m == MIG_COMPRESSION_ZLIB) {
        z_stream zs = {0};
        deflateInit(&zs, 1);
        zs.next_in = src;
        zs.avail_in = n;
        zs.next_out = out;
        zs.avail_out = cap;
        assert_int_equal(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
        *len = cap - zs.avail_out;
        deflateEnd(&zs);
    } else if (m == MIG_COMPRESSION_ZSTD) {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        ZSTD_inBuffer in = {src, n, 0};
        ZSTD_outBuffer o = {out, cap, 0};
        assert_int_equal(ZSTD_compressStream2(c, &o, &in, ZSTD_e_flush), 0);
        *len = o.pos;
        ZSTD_freeCCtx(c);
    } else {
        /* one entry, L = the block's length, whatever it decodes to */
        int l = LZ4_compress_default((const char *)src, (char *)out + 2, (int)n,
                                     (int)cap - 2);
        out[0] = l >> 8;
        out[1] = l & 0xff;
        *len = l + 2;
    }
    return out;
}

void test_stream_corrupt(void **state)
{
    uint64_t r = 777;
    uint8_t *flat = g_malloc(4 * PAGE);

    for (size_t i = 0; i < N_METHODS; i++) {
        MigCompression m = methods[i];
        StreamPair sp = pair_new(m, 1);
        Pages src1 = pages_new(2, 1), src2 = pages_new(4, 2);
        size_t l1, l2, caught = 0, flips = 0;
        uint8_t *p1, *p2, *longer;

        fill_packet(&src1, 3); /* text, pattern */
        fill_packet(&src2, 1); /* random, half, text, pattern */
        p1 = send_packet(sp.tx, &src1, &l1);
        p2 = send_packet(sp.tx, &src2, &l2);
        /* the good pair, as a baseline */
        assert_false(bad_packet(m, p1, l1, p2, l2, 4, NULL));
        /* every truncation, on a fresh stream and after a packet */
        for (size_t t = 0; t < l2; t += t < 64 || t > l2 - 64 ? 1 : 7) {
            expect_packet_refused(m, p1, l1, p2, t, 4, "truncated payload");
        }
        for (size_t t = 0; t < l1; t++) {
            expect_packet_refused(m, NULL, 0, p1, t, 2, "truncated payload");
        }
        /* any byte after the payload, or several */
        longer = g_malloc(l2 + 16);
        memcpy(longer, p2, l2);
        for (int b = 0; b < 256; b++) {
            longer[l2] = b;
            expect_packet_refused(m, p1, l1, longer, l2 + 1, 4,
                                  "longer payload");
        }
        for (int b = 0; b < 16; b++) {
            longer[l2 + b] = xorshift64(&r);
        }
        expect_packet_refused(m, p1, l1, longer, l2 + 16, 4, "longer payload");
        /* the wrong number of pages */
        expect_packet_refused(m, p1, l1, p2, l2, 3, "payload of 4 pages");
        expect_packet_refused(m, p1, l1, p2, l2, 5, "payload of 4 pages");
        expect_packet_refused(m, p1, l1, p2, l2, 0, "payload of 4 pages");
        expect_packet_refused(m, p1, l1, p2, 0, 4, "empty payload");
        /* flips: refused, or some pages; never out of bounds */
        for (size_t p = 0; p < l2; p += 1 + l2 / 512) {
            for (int x = 0; x < 2; x++) {
                p2[p] ^= x ? 0xff : 0x01;
                flips++;
                caught += bad_packet(m, p1, l1, p2, l2, 4, NULL);
                p2[p] ^= x ? 0xff : 0x01;
            }
        }
        print_message("%s: %zu of %zu flips in a %zu-byte payload refused\n",
                      ops_of(m)->name, caught, flips, l2);
        assert_true(caught > 0);
        /* payloads of the format that hold a byte too few or too many */
        fill_page(flat, KIND_TEXT, 1);
        fill_page(flat + PAGE, KIND_HALF, 1);
        for (size_t n = 2 * PAGE - 1; n <= 2 * PAGE + 1; n += 2) {
            size_t len;
            uint8_t *c = craft_payload(m, flat, n, &len);
            expect_packet_refused(m, NULL, 0, c, len, 2,
                                  n < 2 * PAGE ? "8191 bytes" : "8193 bytes");
            g_free(c);
        }
        if (m == MIG_COMPRESSION_ZLIB) {
            /* ends like a sync flush but stops inside a stored block's
             * header; a whole empty stored block is a valid no-op */
            memcpy(longer + l2, "\x00\x00\xff\xff", 4);
            expect_packet_refused(m, p1, l1, longer, l2 + 4, 4,
                                  "half a stored block");
            memcpy(longer + l2, "\x00\x00\x00\xff\xff", 5);
            assert_false(bad_packet(m, p1, l1, longer, l2 + 5, 4, NULL));
        }
        if (m == MIG_COMPRESSION_LZ4) {
            size_t len;
            uint8_t *c;

            /* a block longer than a page where the page is stored as is */
            fill_page(flat + 2 * PAGE, KIND_RANDOM, 1);
            c = craft_payload(m, flat + 2 * PAGE, PAGE, &len);
            assert_true(len > 2 + PAGE);
            expect_packet_refused(m, NULL, 0, c, len, 1, "block > 4096");
            g_free(c);
            /* such a page travels as 4096 bytes with L = 4096 */
            {
                Pages rnd = pages_new(1, 1);
                MigCompressCtx *tx = ctx_new(m, MIG_COMPRESS_STREAM_SEND, 1);
                fill_page(rnd.page[0], KIND_RANDOM, 1);
                c = send_packet(tx, &rnd, &len);
                assert_int_equal(len, 2 + PAGE);
                assert_int_equal(c[0] << 8 | c[1], PAGE);
                assert_memory_equal(c + 2, rnd.page[0], PAGE);
                g_free(c);
                pages_free(&rnd);
                mig_compress_ctx_free(tx);
            }
            c = craft_payload(m, flat, PAGE - 1, &len);
            expect_packet_refused(m, NULL, 0, c, len, 1, "4095-byte block");
            g_free(c);
            c = craft_payload(m, flat, PAGE + 1, &len);
            expect_packet_refused(m, NULL, 0, c, len, 1, "4097-byte block");
            g_free(c);
        }
        /* garbage, first or after a packet */
        for (size_t n = 1; n < 20000; n = n * 3 + 1) {
            uint8_t *junk = g_malloc(n);
            for (int rep = 0; rep < 4; rep++) {
                for (size_t b = 0; b < n; b++) {
                    junk[b] = rep == 0 ? 0 : xorshift64(&r);
                }
                expect_packet_refused(m, NULL, 0, junk, n, 2, "garbage");
                expect_packet_refused(m, p1, l1, junk, n, 2, "garbage");
            }
            g_free(junk);
        }
        g_free(longer);
        g_free(p1);
        g_free(p2);
        pages_free(&src1);
        pages_free(&src2);
        pair_free(&sp);
    }
    g_free(flat);
}

/* An output buffer too small: an error, nothing written past it. */
void test_stream_small_buffer(void **state)
{
    for (size_t i = 0; i < N_METHODS; i++) {
        MigCompressCtx *tx = ctx_new(methods[i], MIG_COMPRESS_STREAM_SEND, 1);
        Pages src = pages_new(8, 1);
        size_t size = 3 * PAGE;
        uint8_t *out = out_new(size);
        GError *err = NULL;

        for (size_t k = 0; k < src.n; k++) {
            fill_page(src.page[k], KIND_RANDOM, k);
        }
        assert_int_equal(
            mig_stream_compress_pages(tx, src.page, src.n, out, size, &err),
            -1);
        assert_non_null(strstr(err->message, "too few"));
        g_clear_error(&err);
        out_check_guard(out, size);
        /* the stream is out of step now: refused from here on */
        assert_int_equal(
            mig_stream_compress_pages(tx, src.page, 1, out, size, &err), -1);
        assert_non_null(strstr(err->message, "unusable"));
        g_clear_error(&err);
        g_free(out);
        pages_free(&src);
        mig_compress_ctx_free(tx);
    }
}
