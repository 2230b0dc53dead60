/*
 * Helpers of the compression unit test (test-compression.c,
 * test-compression-stream.c): page contents of every kind, guarded and
 * fenced buffers, and compression contexts that fail the test when they
 * cannot be made: see compression-helpers.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compression-helpers.h"

const MigCompression methods[] = {
    MIG_COMPRESSION_ZLIB,
    MIG_COMPRESSION_ZSTD,
    MIG_COMPRESSION_LZ4,
};
const size_t n_methods = G_N_ELEMENTS(methods);

/* ---- page contents ------------------------------------------------------- */

uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

uint64_t seed_state(uint64_t seed)
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

void fill_page(uint8_t *p, PageKind kind, uint64_t seed)
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

Pages pages_new(size_t n, uint64_t seed)
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

void pages_poison(Pages *p)
{
    for (size_t i = 0; i < p->n; i++) {
        memset(p->page[i], POISON_BYTE, PAGE);
    }
}

void pages_check_guards(const Pages *p)
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

void pages_free(Pages *p)
{
    g_free(p->base);
    g_free(p->page);
}

/* An output buffer of `size` bytes followed by guard bytes. */
uint8_t *out_new(size_t size)
{
    uint8_t *b = g_malloc(size + GUARD);

    memset(b, GUARD_BYTE, size + GUARD);
    return b;
}

void out_check_guard(const uint8_t *b, size_t size)
{
    for (size_t k = 0; k < GUARD; k++) {
        if (b[size + k] != GUARD_BYTE) {
            fail_msg("wrote past the end of a %zu-byte output buffer", size);
        }
    }
}

Fenced fenced_copy(const uint8_t *buf, size_t len)
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

void fenced_free(Fenced *f)
{
    munmap(f->map, f->map_len);
}

/* ---- contexts ------------------------------------------------------------ */

MigCompressCtx *ctx_new(MigCompression m, MigCompressMode mode, int level)
{
    GError *err = NULL;
    MigCompressCtx *ctx = mig_compress_ctx_new(m, mode, level, &err);

    if (!ctx) {
        fail_msg("%s", err->message);
    }
    return ctx;
}

StreamPair pair_new(MigCompression m, int level)
{
    return (StreamPair){ctx_new(m, MIG_COMPRESS_STREAM_SEND, level),
                        ctx_new(m, MIG_COMPRESS_STREAM_RECV, level)};
}

void pair_free(StreamPair *p)
{
    mig_compress_ctx_free(p->tx);
    mig_compress_ctx_free(p->rx);
}

const MigCompressOps *ops_of(MigCompression m)
{
    const MigCompressOps *ops = mig_compress_ops(m);

    assert_non_null(ops);
    return ops;
}

/* The levels worth testing: both edges, 1, the default, lz4's first HC. */
int levels_of(MigCompression m, int *out)
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
uint8_t *compress_one(MigCompressCtx *tx, const uint8_t *page, size_t *len)
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
bool decode_exact(MigCompressCtx *rx, const uint8_t *body, size_t len,
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

void expect_page_refused(MigCompressCtx *rx, const uint8_t *body, size_t len,
                         const char *what)
{
    char *msg = NULL;

    if (decode_exact(rx, body, len, NULL, &msg)) {
        fail_msg("%s: %s of %zu bytes was accepted", rx->ops->name, what, len);
    }
    assert_true(strstr(msg, rx->ops->name) == msg); /* says who refused */
    g_free(msg);
}
