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
#include <sys/mman.h>
#include <unistd.h>
#define ZLIB_CONST
#include <zlib.h>
#include <zstd.h>

#include "../../migration/compression.h"

#define PAGE MIG_COMPRESS_PAGE_SIZE
#define GUARD 64
#define GUARD_BYTE 0xa5
#define POISON_BYTE 0x5a

static const MigCompression methods[] = {
    MIG_COMPRESSION_ZLIB,
    MIG_COMPRESSION_ZSTD,
    MIG_COMPRESSION_LZ4,
};
#define N_METHODS G_N_ELEMENTS(methods)

/* ---- page contents ------------------------------------------------------- */

typedef enum PageKind {
    KIND_ZERO,
    KIND_RANDOM,  /* xorshift64: incompressible */
    KIND_HALF,    /* 2 KiB random, 2 KiB of one repeated byte */
    KIND_TEXT,    /* English-like words */
    KIND_PATTERN, /* a short pattern repeated */
    KIND_SPARSE,  /* zero but for a few random bytes */
    KIND_ONES,    /* 0xff */
    KIND__MAX,
} PageKind;

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint64_t seed_state(uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;

    x ^= x >> 31;
    return x ? x : 1;
}

static const char *const words[] = {
    "the",   "of",    "and",   "to",     "in",    "is",      "that",  "it",
    "was",   "for",   "on",    "are",    "with",  "they",    "be",    "this",
    "from",  "have",  "or",    "by",     "one",   "had",     "not",   "but",
    "what",  "all",   "were",  "when",   "we",    "there",   "can",   "an",
    "your",  "which", "their", "said",   "if",    "do",      "will",  "each",
    "about", "how",   "up",    "out",    "them",  "then",    "she",   "many",
    "some",  "so",    "these", "would",  "other", "into",    "has",   "more",
    "water", "long",  "page",  "memory", "guest", "thought", "world",
};

static void fill_page(uint8_t *p, PageKind kind, uint64_t seed)
{
    uint64_t s = seed_state(seed);
    size_t i = 0;

    switch (kind) {
    case KIND_ZERO:
        memset(p, 0, PAGE);
        break;
    case KIND_RANDOM:
    case KIND_HALF:
        for (i = 0; i < PAGE; i += 8) {
            uint64_t v = xorshift64(&s);
            memcpy(p + i, &v, 8);
        }
        if (kind == KIND_HALF) {
            memset(p + PAGE / 2, (int)(s & 0xff), PAGE / 2);
        }
        break;
    case KIND_TEXT:
        while (i < PAGE) {
            uint64_t r = xorshift64(&s);
            const char *w = words[(r >> 8) % G_N_ELEMENTS(words)];

            for (size_t k = 0; w[k] && i < PAGE; k++) {
                p[i++] = w[k];
            }
            if (i < PAGE) {
                p[i++] = (r & 0xf) == 0 ? '.' : (r & 0x3f) == 1 ? '\n' : ' ';
            }
        }
        break;
    case KIND_PATTERN:
        for (i = 0; i < PAGE; i++) {
            p[i] = "godwit migrates pages\n"[(i + seed) % 22];
        }
        break;
    case KIND_SPARSE:
        memset(p, 0, PAGE);
        for (int k = 0; k < 8; k++) {
            uint64_t r = xorshift64(&s);
            p[r % PAGE] = (uint8_t)(r >> 32) | 1;
        }
        break;
    default:
        memset(p, 0xff, PAGE);
        break;
    }
}

/* ---- guarded buffers ----------------------------------------------------- */

/*
 * n pages, each with GUARD bytes before and after it, in a shuffled order
 * (so that a method that assumed contiguous destinations would fail).
 */
typedef struct Pages {
    uint8_t *base;
    size_t n;
    uint8_t **page;
} Pages;

static Pages pages_new(size_t n, uint64_t seed)
{
    Pages p = {g_malloc(n * (PAGE + GUARD) + GUARD), n,
               g_new(uint8_t *, n ? n : 1)};
    uint64_t s = seed_state(seed);

    memset(p.base, GUARD_BYTE, n * (PAGE + GUARD) + GUARD);
    for (size_t i = 0; i < n; i++) {
        p.page[i] = p.base + GUARD + i * (PAGE + GUARD);
    }
    for (size_t i = n; i > 1; i--) {
        size_t j = xorshift64(&s) % i;
        uint8_t *t = p.page[i - 1];
        p.page[i - 1] = p.page[j];
        p.page[j] = t;
    }
    return p;
}

static void pages_poison(Pages *p)
{
    for (size_t i = 0; i < p->n; i++) {
        memset(p->page[i], POISON_BYTE, PAGE);
    }
}

static void pages_check_guards(const Pages *p)
{
    for (size_t i = 0; i <= p->n; i++) {
        const uint8_t *g = p->base + i * (PAGE + GUARD);
        for (size_t k = 0; k < GUARD; k++) {
            if (g[k] != GUARD_BYTE) {
                fail_msg("guard byte %zu before page slot %zu overwritten", k,
                         i);
            }
        }
    }
}

static void pages_free(Pages *p)
{
    g_free(p->base);
    g_free(p->page);
}

/* An output buffer of `size` bytes followed by guard bytes. */
static uint8_t *out_new(size_t size)
{
    uint8_t *b = g_malloc(size + GUARD);

    memset(b, GUARD_BYTE, size + GUARD);
    return b;
}

static void out_check_guard(const uint8_t *b, size_t size)
{
    for (size_t k = 0; k < GUARD; k++) {
        if (b[size + k] != GUARD_BYTE) {
            fail_msg("wrote past the end of a %zu-byte output buffer", size);
        }
    }
}

/*
 * A copy of buf[0..len) that ends where an inaccessible page begins, so
 * that reading past its end faults, inside zlib, libzstd and liblz4 too
 * (AddressSanitizer sees only what godwit's own code reads).
 */
typedef struct Fenced {
    uint8_t *map;
    size_t map_len;
    uint8_t *data;
} Fenced;

static Fenced fenced_copy(const uint8_t *buf, size_t len)
{
    size_t ps = sysconf(_SC_PAGESIZE);
    Fenced f;

    f.map_len = (len + ps - 1) / ps * ps + ps;
    f.map = mmap(NULL, f.map_len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(f.map != MAP_FAILED);
    assert_int_equal(mprotect(f.map + f.map_len - ps, ps, PROT_NONE), 0);
    f.data = f.map + f.map_len - ps - len;
    memcpy(f.data, buf, len);
    return f;
}

static void fenced_free(Fenced *f)
{
    munmap(f->map, f->map_len);
}

/* ---- contexts ------------------------------------------------------------ */

static MigCompressCtx *ctx_new(MigCompression m, MigCompressMode mode,
                               int level)
{
    GError *err = NULL;
    MigCompressCtx *ctx = mig_compress_ctx_new(m, mode, level, &err);

    if (!ctx) {
        fail_msg("%s", err->message);
    }
    return ctx;
}

typedef struct StreamPair {
    MigCompressCtx *tx, *rx;
} StreamPair;

static StreamPair pair_new(MigCompression m, int level)
{
    return (StreamPair){ctx_new(m, MIG_COMPRESS_STREAM_SEND, level),
                        ctx_new(m, MIG_COMPRESS_STREAM_RECV, level)};
}

static void pair_free(StreamPair *p)
{
    mig_compress_ctx_free(p->tx);
    mig_compress_ctx_free(p->rx);
}

static const MigCompressOps *ops_of(MigCompression m)
{
    const MigCompressOps *ops = mig_compress_ops(m);

    assert_non_null(ops);
    return ops;
}

/* The levels worth testing: both edges, 1, the default, lz4's first HC. */
static int levels_of(MigCompression m, int *out)
{
    const MigCompressOps *ops = ops_of(m);
    int cand[] = {ops->level_min, 1, 2, ops->level_default, ops->level_max};
    int n = 0;

    for (size_t i = 0; i < G_N_ELEMENTS(cand); i++) {
        bool dup = cand[i] < ops->level_min || cand[i] > ops->level_max;
        for (int k = 0; k < n; k++) {
            dup |= out[k] == cand[i];
        }
        if (!dup) {
            out[n++] = cand[i];
        }
    }
    return n;
}

/* Compresses one page with a bound-sized buffer; returns a new body. */
static uint8_t *compress_one(MigCompressCtx *tx, const uint8_t *page,
                             size_t *len)
{
    size_t bound = tx->ops->page_bound();
    uint8_t *out = out_new(bound);
    GError *err = NULL;
    ssize_t r;

    r = mig_compress_page(tx, page, out, bound, &err);
    if (r <= 0) {
        fail_msg("%s: compress_page returned %zd: %s", tx->ops->name, r,
                 err ? err->message : "no error");
    }
    assert_true((size_t)r <= bound);
    out_check_guard(out, bound);
    *len = r;
    return out;
}

/*
 * Decodes body[0..len) from a fenced copy into a guarded page.
 * Returns whether it decoded; fills `page` (PAGE bytes) if non-NULL.
 */
static bool decode_exact(MigCompressCtx *rx, const uint8_t *body, size_t len,
                         uint8_t *page, char **msg)
{
    Fenced copy = fenced_copy(body, len);
    Pages dst = pages_new(1, len);
    GError *err = NULL;
    bool ok;

    pages_poison(&dst);
    ok = mig_decompress_page(rx, copy.data, len, dst.page[0], &err);
    pages_check_guards(&dst);
    assert_true(ok == !err);
    if (!ok && msg) {
        *msg = g_strdup(err->message);
    }
    if (ok && page) {
        memcpy(page, dst.page[0], PAGE);
    }
    g_clear_error(&err);
    pages_free(&dst);
    fenced_free(&copy);
    return ok;
}

static void expect_page_refused(MigCompressCtx *rx, const uint8_t *body,
                                size_t len, const char *what)
{
    char *msg = NULL;

    if (decode_exact(rx, body, len, NULL, &msg)) {
        fail_msg("%s: %s of %zu bytes was accepted", rx->ops->name, what, len);
    }
    assert_true(strstr(msg, rx->ops->name) == msg); /* says who refused */
    g_free(msg);
}

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

static void test_stream_roundtrip(void **state)
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
static void test_stream_persistent(void **state)
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
static void test_stream_plain_library(void **state)
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

static void test_stream_corrupt(void **state)
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
static void test_stream_small_buffer(void **state)
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
