/*
 * Unit tests for migration/xbzrle.c: every encoder variant the CPU has
 * against a byte-by-byte reference of the grammar (hand-checked vectors,
 * runs at every position and SIMD boundary, the 14-bit limits, random
 * pages, exact overflow, no read past the page), and every decoder variant
 * on the round trips and on a table of malformed encodings.
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

#include "../../migration/xbzrle.h"

#define PAGE 4096
#define CANARY 0xa5
#define SLACK 64

/* ---- the reference: the grammar, one byte at a time ---- */

static int ref_put_len(uint8_t *p, int n)
{
    if (n < 0x80) {
        p[0] = n;
        return 1;
    }
    p[0] = 0x80 | (n & 0x7f);
    p[1] = n >> 7;
    return 2;
}

/*
 * The full encoding into out (room for 2 * slen + 8), its length, or -1 if
 * a run does not fit in 14 bits. *covered: end of the last changed run.
 */
static int ref_encode(const uint8_t *old, const uint8_t *new, int slen,
                      uint8_t *out, int *covered)
{
    int d = 0, i = 0;

    *covered = 0;
    while (i < slen) {
        int z = i, nz;

        while (i < slen && old[i] == new[i]) {
            i++;
        }
        if (i == slen) {
            break;
        }
        nz = i;
        while (i < slen && old[i] != new[i]) {
            i++;
        }
        if (nz - z > XBZRLE_MAX_RUN || i - nz > XBZRLE_MAX_RUN) {
            return -1;
        }
        d += ref_put_len(out + d, nz - z);
        d += ref_put_len(out + d, i - nz);
        memcpy(out + d, new + nz, i - nz);
        d += i - nz;
        *covered = i;
    }
    return d;
}

/*
 * Every variant gives the reference's answer for dst of dlen bytes and
 * writes nothing past dlen; a successful encoding decodes back to new.
 * Returns the encoded length.
 */
static int check_pair(const uint8_t *old, const uint8_t *new, int slen,
                      int dlen)
{
    g_autofree uint8_t *want = g_malloc(2 * slen + 8);
    g_autofree uint8_t *dst = g_malloc(dlen + SLACK);
    g_autofree uint8_t *page = g_malloc(slen);
    int covered, full = ref_encode(old, new, slen, want, &covered);
    int expect = full > dlen ? -1 : full;

    for (int impl = 0; impl < XBZRLE__MAX; impl++) {
        if (!xbzrle_impl_available(impl)) {
            continue;
        }
        memset(dst, CANARY, dlen + SLACK);
        int got = xbzrle_encode_buffer_impl(impl, old, new, slen, dst, dlen);
        if (got != expect) {
            fail_msg("%s: %d, want %d (slen %d dlen %d)",
                     xbzrle_impl_name(impl), got, expect, slen, dlen);
        }
        if (got > 0 && memcmp(dst, want, got)) {
            fail_msg("%s: bytes differ from the reference",
                     xbzrle_impl_name(impl));
        }
        for (int k = dlen; k < dlen + SLACK; k++) {
            if (dst[k] != CANARY) {
                fail_msg("%s: wrote past dlen at %d", xbzrle_impl_name(impl),
                         k);
            }
        }
    }
    if (expect == 0) {
        assert_memory_equal(old, new, slen);
    }
    for (int impl = 0; expect > 0 && impl < XBZRLE__MAX; impl++) {
        if (!xbzrle_impl_available(impl)) {
            continue;
        }
        memcpy(page, old, slen);
        if (xbzrle_decode_buffer_impl(impl, want, expect, page, slen) !=
                covered ||
            memcmp(page, new, slen)) {
            fail_msg("%s: decoded wrong (slen %d)", xbzrle_impl_name(impl),
                     slen);
        }
    }
    return expect;
}

/* A changed byte: never the old value. */
static uint8_t flip(GRand *r, uint8_t v)
{
    return v ^ (uint8_t)g_rand_int_range(r, 1, 256);
}

/* ---- hand-checked encodings ---- */

static void test_golden(void **state)
{
    static const struct {
        const char *name;
        int from, len; /* bytes [from, from + len) set to 0x11, 0x12.. */
        int from2, len2;
        int dlen;
        int want_len;
        uint8_t want[6]; /* the first bytes of the encoding */
    } t[] = {
        /* clang-format off */
        {"no change", 0, 0, 0, 0, PAGE, 0, {0}},
        {"first byte", 0, 1, 0, 0, PAGE, 3, {0x00, 0x01, 0x11}},
        {"byte 5", 5, 1, 0, 0, PAGE, 3, {0x05, 0x01, 0x11}},
        {"zrun 127", 127, 1, 0, 0, PAGE, 3, {0x7f, 0x01, 0x11}},
        {"zrun 128", 128, 1, 0, 0, PAGE, 4, {0x80, 0x01, 0x01, 0x11}},
        {"zrun 200, nzrun 2", 200, 2, 0, 0, PAGE, 5,
         {0xc8, 0x01, 0x02, 0x11, 0x12}},
        {"last byte", 4095, 1, 0, 0, PAGE, 4, {0xff, 0x1f, 0x01, 0x11}},
        {"nzrun 130", 0, 130, 0, 0, PAGE, 133,
         {0x00, 0x82, 0x01, 0x11, 0x12, 0x13}},
        {"two runs", 1, 1, 3, 1, PAGE, 6,
         {0x01, 0x01, 0x11, 0x01, 0x01, 0x11}},
        {"whole page", 0, PAGE, 0, 0, PAGE + 3, PAGE + 3,
         {0x00, 0x80, 0x20, 0x11, 0x12, 0x13}},
        {"whole page, dlen = page", 0, PAGE, 0, 0, PAGE, -1, {0}},
        /* clang-format on */
    };
    uint8_t *old = g_malloc0(PAGE), *new = g_malloc(PAGE);
    uint8_t *dst = g_malloc(PAGE + 16);

    for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
        memset(new, 0, PAGE);
        for (int k = 0; k < t[i].len; k++) {
            new[t[i].from + k] = 0x11 + k % 200;
        }
        for (int k = 0; k < t[i].len2; k++) {
            new[t[i].from2 + k] = 0x11 + k % 200;
        }
        for (int impl = 0; impl < XBZRLE__MAX; impl++) {
            if (!xbzrle_impl_available(impl)) {
                continue;
            }
            int got =
                xbzrle_encode_buffer_impl(impl, old, new, PAGE, dst, t[i].dlen);
            if (got != t[i].want_len) {
                fail_msg("%s, %s: %d, want %d", t[i].name,
                         xbzrle_impl_name(impl), got, t[i].want_len);
            }
            if (got > 0) {
                assert_memory_equal(dst, t[i].want, MIN(got, 6));
            }
        }
        assert_int_equal(check_pair(old, new, PAGE, t[i].dlen), t[i].want_len);
    }
    g_free(old);
    g_free(new);
    g_free(dst);
}

/* ---- generated pages ---- */

static void test_one_byte(void **state)
{
    GRand *r = g_rand_new_with_seed(1);
    uint8_t *old = g_malloc(PAGE), *new = g_malloc(PAGE);

    for (int i = 0; i < PAGE; i++) {
        old[i] = g_rand_int(r);
    }
    for (int pos = 0; pos < PAGE; pos++) {
        memcpy(new, old, PAGE);
        new[pos] = flip(r, old[pos]);
        /* zrun length, nzrun length 1, the byte */
        assert_int_equal(check_pair(old, new, PAGE, PAGE),
                         (pos < 0x80 ? 1 : 2) + 2);
    }
    g_rand_free(r);
    g_free(old);
    g_free(new);
}

static void test_scattered_and_all(void **state)
{
    GRand *r = g_rand_new_with_seed(2);
    uint8_t *old = g_malloc(PAGE), *new = g_malloc(PAGE);

    for (int i = 0; i < PAGE; i++) {
        old[i] = g_rand_int(r);
    }
    /* every 2nd, 3rd, ... 70th byte changed */
    for (int stride = 2; stride <= 70; stride++) {
        memcpy(new, old, PAGE);
        for (int i = stride / 2; i < PAGE; i += stride) {
            new[i] = flip(r, old[i]);
        }
        check_pair(old, new, PAGE, PAGE);
        check_pair(old, new, PAGE, 2 * PAGE);
    }
    /* every byte changed: 3 bytes more than the page */
    for (int i = 0; i < PAGE; i++) {
        new[i] = flip(r, old[i]);
    }
    assert_int_equal(check_pair(old, new, PAGE, PAGE), -1);
    assert_int_equal(check_pair(old, new, PAGE, PAGE + 3), PAGE + 3);
    g_rand_free(r);
    g_free(old);
    g_free(new);
}

/*
 * Whole pages of alternating runs: nz changed bytes, then z equal bytes,
 * from an offset, for every pair of lengths up to past two 64-byte blocks.
 */
static void test_alternating(void **state)
{
    static const int extra[] = {127, 128, 129, 255, 256, 1000};
    static const int offsets[] = {0, 1, 15, 16, 31, 32, 63, 64};
    int lens[140 + G_N_ELEMENTS(extra)];
    int nlens = 0;
    uint8_t *old = g_malloc(PAGE), *new = g_malloc(PAGE);

    for (int i = 1; i <= 140; i++) {
        lens[nlens++] = i;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(extra); i++) {
        lens[nlens++] = extra[i];
    }
    memset(old, 0x5a, PAGE);
    for (int a = 0; a < nlens; a++) {
        for (int b = 0; b < nlens; b++) {
            for (size_t o = 0; o < G_N_ELEMENTS(offsets); o++) {
                int nz = lens[a], z = lens[b], i = offsets[o];

                if ((a > 70 || b > 70) && o % 3) {
                    continue; /* fewer offsets for the long ones */
                }
                memcpy(new, old, PAGE);
                while (i < PAGE) {
                    for (int k = 0; k < nz && i < PAGE; k++) {
                        new[i++] = 0xa5;
                    }
                    i += z;
                }
                check_pair(old, new, PAGE, PAGE);
            }
        }
    }
    g_free(old);
    g_free(new);
}

/* One changed run [from, from + len) at every start and length near the
 * 16/32/64-byte blocks and the page's end. */
static void test_one_run(void **state)
{
    uint8_t *old = g_malloc(PAGE), *new = g_malloc(PAGE);

    memset(old, 0, PAGE);
    for (int from = 0; from < 200; from++) {
        for (int len = 1; len <= 200; len++) {
            memcpy(new, old, PAGE);
            memset(new + from, 0xff, len);
            check_pair(old, new, PAGE, PAGE);
        }
    }
    for (int from = PAGE - 200; from < PAGE; from++) {
        memcpy(new, old, PAGE);
        memset(new + from, 0xff, PAGE - from);
        check_pair(old, new, PAGE, PAGE);
    }
    g_free(old);
    g_free(new);
}

/* The 14-bit limit: runs of exactly 0x3fff, and 0x4000 refused. */
static void test_max_runs(void **state)
{
    const int big = XBZRLE_MAX_PAGE;
    uint8_t *old = g_malloc0(big), *new = g_malloc0(big);
    uint8_t *dst = g_malloc(2 * big);
    static const uint8_t zrun_max[] = {0xff, 0x7f, 0x01, 0x77};

    /* a zero run of 0x3fff then the last byte */
    new[big - 1] = 0x77;
    assert_int_equal(check_pair(old, new, big, big), 4);
    assert_int_equal(xbzrle_encode_buffer(old, new, big, dst, big), 4);
    assert_memory_equal(dst, zrun_max, 4);

    /* a non-zero run of 0x3fff: fits only in a bigger dst */
    memset(new, 0x77, big);
    new[0] = 0;
    assert_int_equal(check_pair(old, new, big, big + 2), 3 + 0x3fff);
    assert_int_equal(check_pair(old, new, big, big + 1), -1);

    /* a non-zero run of 0x4000 cannot be written, whatever dlen */
    new[0] = 0x77;
    assert_int_equal(check_pair(old, new, big, 2 * big), -1);

    /* 4 KiB: unchanged, and one run of the whole page */
    assert_int_equal(check_pair(old, old, PAGE, PAGE), 0);
    assert_int_equal(check_pair(old, new, PAGE, PAGE + 3), PAGE + 3);

    /* decoding the 0x3fff zero run onto a page of 0x3fff bytes: past it */
    assert_int_equal(xbzrle_decode_buffer(zrun_max, 4, old, big - 1), -1);
    assert_int_equal(xbzrle_decode_buffer(zrun_max, 4, old, big), big);
    g_free(old);
    g_free(new);
    g_free(dst);
}

/*
 * Random pages: densities from 0.1 % to all bytes, changes in clusters
 * (as a guest writes) or uniform, odd sizes and alignments, dlen from 0
 * to twice the page.
 */
static void test_random(void **state)
{
    static const double density[] = {0.001, 0.01, 0.05, 0.25, 0.5, 0.9, 1};
    GRand *r = g_rand_new_with_seed(3);
    uint8_t *a = g_malloc(PAGE + 64), *b = g_malloc(PAGE + 64);

    for (int n = 0; n < 6000; n++) {
        int slen = n % 4 ? PAGE : g_rand_int_range(r, 1, PAGE + 1);
        uint8_t *old = a + g_rand_int_range(r, 0, 64);
        uint8_t *new = b + g_rand_int_range(r, 0, 64);
        double p = density[g_rand_int_range(r, 0, G_N_ELEMENTS(density))];
        bool clustered = n % 2;
        int dlen;

        for (int i = 0; i < slen; i++) {
            old[i] = g_rand_int(r);
        }
        memcpy(new, old, slen);
        for (int i = 0; i < slen; i++) {
            if (g_rand_double(r) >= (clustered ? p / 8 : p)) {
                continue;
            }
            int len = clustered ? g_rand_int_range(r, 1, 16) : 1;
            for (int k = 0; k < len && i < slen; k++, i++) {
                new[i] = flip(r, old[i]);
            }
        }
        switch (n % 3) {
        case 0:
            dlen = slen;
            break;
        case 1:
            dlen = g_rand_int_range(r, 0, slen + 1);
            break;
        default:
            dlen = 2 * slen + 8;
            break;
        }
        check_pair(old, new, slen, dlen);
    }
    g_rand_free(r);
    g_free(a);
    g_free(b);
}

/* Overflow is exact: dlen = length works, one less is -1, no write past. */
static void test_overflow(void **state)
{
    GRand *r = g_rand_new_with_seed(4);
    uint8_t *old = g_malloc(PAGE), *new = g_malloc(PAGE);

    for (int round = 0; round < 4; round++) {
        int len;

        for (int i = 0; i < PAGE; i++) {
            old[i] = new[i] = g_rand_int(r);
        }
        for (int i = 0; i < PAGE; i += g_rand_int_range(r, 1, 40 << round)) {
            new[i] = flip(r, old[i]);
        }
        len = check_pair(old, new, PAGE, 2 * PAGE);
        assert_true(len > 0);
        for (int dlen = 0; dlen <= len + 1; dlen++) {
            assert_int_equal(check_pair(old, new, PAGE, dlen),
                             dlen >= len ? len : -1);
        }
    }
    g_rand_free(r);
    g_free(old);
    g_free(new);
}

/*
 * An area of `span` bytes followed by an unmapped page: a buffer placed at
 * its end faults on the first byte read or written past it.
 */
static uint8_t *guarded_end(size_t span)
{
    size_t ps = sysconf(_SC_PAGESIZE);
    uint8_t *m = mmap(NULL, span + ps, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + span, ps, PROT_NONE), 0);
    return m + span;
}

/* Encodes, then decodes every variant, with every buffer at its end. */
static void check_guarded(const uint8_t *old, const uint8_t *new, int slen,
                          uint8_t *enc_end, uint8_t *page_end)
{
    uint8_t *page = page_end - slen;
    int len = check_pair(old, new, slen, slen + 8);

    for (int impl = 0; len > 0 && impl < XBZRLE__MAX; impl++) {
        uint8_t *enc = enc_end - len;

        if (!xbzrle_impl_available(impl)) {
            continue;
        }
        assert_int_equal(
            xbzrle_encode_buffer_impl(impl, old, new, slen, enc, len), len);
        memcpy(page, old, slen);
        assert_true(xbzrle_decode_buffer_impl(impl, enc, len, page, slen) > 0);
        assert_memory_equal(page, new, slen);
    }
}

/* Buffers that end where an unmapped page starts: no variant goes past. */
static void test_no_overrun(void **state)
{
    size_t span = 4 * PAGE;
    uint8_t *end_a = guarded_end(span), *end_b = guarded_end(span);
    uint8_t *end_enc = guarded_end(span), *end_page = guarded_end(span);
    GRand *r = g_rand_new_with_seed(5);

    for (int slen = 1; slen <= PAGE; slen += slen < 300 ? 1 : 97) {
        uint8_t *old = end_a - slen, *new = end_b - slen;

        for (int i = 0; i < slen; i++) {
            old[i] = new[i] = g_rand_int(r);
        }
        check_guarded(old, new, slen, end_enc, end_page);
        new[slen - 1] ^= 1;
        check_guarded(old, new, slen, end_enc, end_page);
        new[0] ^= 1;
        check_guarded(old, new, slen, end_enc, end_page);
        for (int i = 0; i < slen; i += 3) {
            new[i] = ~old[i];
        }
        check_guarded(old, new, slen, end_enc, end_page);
    }
    g_rand_free(r);
    /* the mappings go with the process */
}

/* ---- the decoder on bad input ---- */

typedef struct BadCase {
    const char *name;
    uint8_t bytes[8];
    int nbytes;
    int pad;  /* then this many 0xee bytes */
    int dlen; /* the page */
    int want;
} BadCase;

static const BadCase decode_cases[] = {
    /* accepted, for contrast */
    {"first byte", {0x00, 0x01, 0xaa}, 3, 0, PAGE, 1},
    {"byte 5", {0x05, 0x01, 0xaa}, 3, 0, PAGE, 6},
    {"empty", {0}, 0, 0, PAGE, 0},
    {"empty, empty page", {0}, 0, 0, 0, 0},
    {"two pairs", {0x00, 0x01, 0xaa, 0x01, 0x01, 0xbb}, 6, 0, PAGE, 3},
    {"last byte", {0xff, 0x1f, 0x01, 0xaa}, 4, 0, PAGE, PAGE},
    {"whole page", {0x00, 0x80, 0x20}, 3, PAGE, PAGE, PAGE},
    {"2-byte nzrun", {0x00, 0x80, 0x01}, 3, 128, PAGE, 128},
    /* cut short */
    {"zrun alone", {0x00}, 1, 0, PAGE, -1},
    {"zrun 5 alone", {0x05}, 1, 0, PAGE, -1},
    {"half a zrun", {0x85}, 1, 0, PAGE, -1},
    {"half an nzrun", {0x05, 0x81}, 2, 0, PAGE, -1},
    {"no data", {0x05, 0x01}, 2, 0, PAGE, -1},
    {"data short", {0x05, 0x02, 0xaa}, 3, 0, PAGE, -1},
    {"page short by one", {0x00, 0x80, 0x20}, 3, PAGE - 1, PAGE, -1},
    /* zero lengths */
    {"nzrun 0", {0x05, 0x00}, 2, 0, PAGE, -1},
    {"nzrun 0 + data", {0x05, 0x00, 0xaa}, 3, 0, PAGE, -1},
    {"zrun 0 second", {0x00, 0x01, 0xaa, 0x00, 0x01, 0xbb}, 6, 0, PAGE, -1},
    /* lengths longer than 14 bits or not in their shortest form */
    {"3-byte zrun", {0x80, 0x80, 0x01, 0x01, 0xaa}, 5, 0, PAGE, -1},
    {"3-byte nzrun", {0x00, 0x81, 0x80, 0x01}, 4, 4, PAGE, -1},
    {"long 5", {0x85, 0x00, 0x01, 0xaa}, 4, 0, PAGE, -1},
    {"long 0", {0x80, 0x00, 0x01, 0xaa}, 4, 0, PAGE, -1},
    {"long nzrun 1", {0x00, 0x81, 0x00, 0xaa}, 4, 0, PAGE, -1},
    /* past the page */
    {"zrun = page", {0x80, 0x20, 0x01, 0xaa}, 4, 0, PAGE, -1},
    {"zrun > page", {0xff, 0x7f, 0x01, 0xaa}, 4, 0, PAGE, -1},
    {"nzrun past end", {0xff, 0x1f, 0x02, 0xaa, 0xbb}, 5, 0, PAGE, -1},
    {"whole page + 1", {0x01, 0x80, 0x20}, 3, PAGE, PAGE, -1},
    {"into empty page", {0x00, 0x01, 0xaa}, 3, 0, 0, -1},
    {"into 1-byte page", {0x01, 0x01, 0xaa}, 3, 0, 1, -1},
    /* trailing bytes that are not a whole pair */
    {"trailing byte", {0x00, 0x01, 0xaa, 0x01}, 4, 0, PAGE, -1},
    {"trailing zrun+len", {0x00, 0x01, 0xaa, 0x01, 0x01}, 5, 0, PAGE, -1},
    {"trailing nzrun 0", {0x00, 0x01, 0xaa, 0x01, 0x00}, 5, 0, PAGE, -1},
    {"trailing 0x80", {0x00, 0x01, 0xaa, 0x80}, 4, 0, PAGE, -1},
};

static void check_decode_case(XbzrleImpl impl, const BadCase *c, uint8_t *src,
                              uint8_t *page)
{
    int n = c->nbytes + c->pad;
    int got;

    memcpy(src, c->bytes, c->nbytes);
    memset(src + c->nbytes, 0xee, c->pad);
    memset(page, CANARY, PAGE + SLACK);
    got = xbzrle_decode_buffer_impl(impl, src, n, page, c->dlen);
    if (got != c->want) {
        fail_msg("%s, %s: %d, want %d", c->name, xbzrle_impl_name(impl), got,
                 c->want);
    }
    for (int k = c->dlen; k < PAGE + SLACK; k++) {
        if (page[k] != CANARY) {
            fail_msg("%s, %s: wrote past dlen at %d", c->name,
                     xbzrle_impl_name(impl), k);
        }
    }
    /*
     * A proper prefix of a good encoding is refused, unless it ends where
     * a pair ends (byte 3 of "two pairs").
     */
    for (int cut = 1; c->want > 0 && cut < n; cut++) {
        bool pair_end = c->nbytes == 6 && cut == 3;

        if ((xbzrle_decode_buffer_impl(impl, src, cut, page, c->dlen) >= 0) !=
            pair_end) {
            fail_msg("%s, %s: prefix of %d bytes misjudged", c->name,
                     xbzrle_impl_name(impl), cut);
        }
    }
}

static void test_decode_malformed(void **state)
{
    uint8_t *src = g_malloc(8 + PAGE);
    uint8_t *page = g_malloc(PAGE + SLACK);

    for (int impl = 0; impl < XBZRLE__MAX; impl++) {
        if (!xbzrle_impl_available(impl)) {
            continue;
        }
        for (size_t i = 0; i < G_N_ELEMENTS(decode_cases); i++) {
            check_decode_case(impl, &decode_cases[i], src, page);
        }
    }
    g_free(src);
    g_free(page);
}

/* Decoding changes exactly the non-zero runs, in place. */
static void test_decode_in_place(void **state)
{
    static const uint8_t enc[] = {0x02, 0x01, 0xaa, 0x03, 0x02, 0xbb, 0xcc};
    uint8_t page[16];

    memset(page, 0x11, sizeof(page));
    assert_int_equal(xbzrle_decode_buffer(enc, sizeof(enc), page, 16), 8);
    static const uint8_t want[16] = {0x11, 0x11, 0xaa, 0x11, 0x11, 0x11,
                                     0xbb, 0xcc, 0x11, 0x11, 0x11, 0x11,
                                     0x11, 0x11, 0x11, 0x11};
    assert_memory_equal(page, want, 16);
    /* applying it again is harmless (a resent record) */
    assert_int_equal(xbzrle_decode_buffer(enc, sizeof(enc), page, 16), 8);
    assert_memory_equal(page, want, 16);
}

static void test_best(void **state)
{
    XbzrleImpl best = xbzrle_best_impl();
    uint8_t old[PAGE] = {0}, new[PAGE] = {0}, d1[PAGE], d2[PAGE];

    assert_true(xbzrle_impl_available(XBZRLE_SCALAR));
    assert_true(xbzrle_impl_available(best));
    assert_false(xbzrle_impl_available(XBZRLE__MAX));
    for (int i = best + 1; i < XBZRLE__MAX; i++) {
        assert_false(xbzrle_impl_available(i));
    }
    assert_string_equal(xbzrle_impl_name(XBZRLE__MAX), "?");
    print_message("encoder in use: %s\n", xbzrle_impl_name(best));
    new[100] = 1;
    new[3000] = 2;
    assert_int_equal(
        xbzrle_encode_buffer(old, new, PAGE, d1, PAGE),
        xbzrle_encode_buffer_impl(XBZRLE_SCALAR, old, new, PAGE, d2, PAGE));
    assert_memory_equal(d1, d2, 7);
    memset(new, 0, PAGE);
    assert_int_equal(xbzrle_decode_buffer(d1, 7, new, PAGE), 3001);
    assert_int_equal(new[100], 1);
    assert_int_equal(new[3000], 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_one_byte),
        cmocka_unit_test(test_scattered_and_all),
        cmocka_unit_test(test_alternating),
        cmocka_unit_test(test_one_run),
        cmocka_unit_test(test_max_runs),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_no_overrun),
        cmocka_unit_test(test_decode_malformed),
        cmocka_unit_test(test_decode_in_place),
        cmocka_unit_test(test_best),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
