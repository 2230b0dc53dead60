/*
 * XBZRLE (Xor Based Zero Run Length Encoding, Svärd et al., VEE 2011), the
 * encoding QEMU puts in RAM_SAVE_FLAG_XBZRLE records. Written from the
 * format, not from QEMU's code.
 *
 * Grammar of one encoded page:
 *
 *   page   = zrun nzrun | zrun nzrun page
 *   zrun   = length                   bytes equal in the old and new page
 *   nzrun  = length byte{length}      the NEW bytes (copied, not XORed)
 *   length = ULEB128 of at most 2 bytes (0 .. 0x3fff), shortest form:
 *            n < 0x80:  n
 *            otherwise: 0x80 | (n & 0x7f), n >> 7
 *
 * Runs are maximal, so the encoding of a pair of pages is unique: a zrun
 * is 0 only first (the page starts with a change), an nzrun is never 0,
 * and the zero run that ends a page is not written. Identical pages encode
 * to nothing (the encoder returns 0 and nothing is sent).
 *
 * Encoders: the scalar one walks the page 8 bytes at a time (XOR, then
 * the first zero / non-zero byte of the word). The SIMD ones first build
 * a bitmap of the changed bytes, 64 bytes per step (AVX2: two 32-byte
 * compares; AVX-512BW: one compare into a mask register), then turn it
 * into runs with bit scans. Both yield the unique encoding; the length
 * checks are exact, so -1 happens for the same pages in every variant.
 */
#include <glib.h>
#include <immintrin.h>
#include <string.h>

#include "xbzrle.h"

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

/* Index of the first byte in memory order of a non-zero word. */
static inline int first_byte(uint64_t x)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_ctzll(x) >> 3;
#else
    return __builtin_clzll(x) >> 3;
#endif
}

/* 0x80 in each byte of x that is zero, exactly (no carry between bytes). */
static inline uint64_t zero_bytes(uint64_t x)
{
    return ~(((x & ~HIGHS) + ~HIGHS) | x) & HIGHS;
}

static inline int len_size(uint32_t n)
{
    return n < 0x80 ? 1 : 2;
}

static inline uint8_t *put_len(uint8_t *p, uint32_t n)
{
    if (n < 0x80) {
        *p++ = n;
    } else {
        *p++ = 0x80 | (n & 0x7f);
        *p++ = n >> 7;
    }
    return p;
}

/*
 * memcpy for the short runs that dominate: overlapping fixed-size moves,
 * never a byte outside [dst, dst + n).
 */
static inline void copy_run(uint8_t *dst, const uint8_t *src, uint32_t n)
{
    if (n > 32) {
        memcpy(dst, src, n);
    } else if (n >= 16) {
        uint8_t a[16], b[16];

        memcpy(a, src, 16);
        memcpy(b, src + n - 16, 16);
        memcpy(dst, a, 16);
        memcpy(dst + n - 16, b, 16);
    } else if (n >= 8) {
        uint64_t a = load64(src), b = load64(src + n - 8);

        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;

        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n) {
        dst[0] = src[0];
        dst[n >> 1] = src[n >> 1];
        dst[n - 1] = src[n - 1];
    }
}

/*
 * Appends one pair (a zrun of zlen, an nzrun of the nzlen bytes at nz) at
 * dst + d. Returns the new length, -1 if it does not fit in dlen or a
 * length does not fit in 14 bits.
 */
static inline int put_pair(uint8_t *dst, int d, int dlen, uint32_t zlen,
                           const uint8_t *nz, uint32_t nzlen)
{
    int need;
    uint8_t *p;

    if (zlen > XBZRLE_MAX_RUN || nzlen > XBZRLE_MAX_RUN) {
        return -1;
    }
    need = len_size(zlen) + len_size(nzlen) + (int)nzlen;
    if (need > dlen - d) {
        return -1;
    }
    p = put_len(dst + d, zlen);
    p = put_len(p, nzlen);
    copy_run(p, nz, nzlen);
    return d + need;
}

/* First i >= from where the pages differ, or slen. */
static inline int skip_equal(const uint8_t *a, const uint8_t *b, int i,
                             int slen)
{
    for (; i + 8 <= slen; i += 8) {
        uint64_t x = load64(a + i) ^ load64(b + i);

        if (x) {
            return i + first_byte(x);
        }
    }
    while (i < slen && a[i] == b[i]) {
        i++;
    }
    return i;
}

/* First i >= from where the pages are equal, or slen. */
static inline int skip_differ(const uint8_t *a, const uint8_t *b, int i,
                              int slen)
{
    for (; i + 8 <= slen; i += 8) {
        uint64_t z = zero_bytes(load64(a + i) ^ load64(b + i));

        if (z) {
            return i + first_byte(z);
        }
    }
    while (i < slen && a[i] != b[i]) {
        i++;
    }
    return i;
}

static int encode_scalar(const uint8_t *old_buf, const uint8_t *new_buf,
                         int slen, uint8_t *dst, int dlen)
{
    int d = 0, i = 0;

    while (i < slen) {
        int nz = skip_equal(old_buf, new_buf, i, slen);
        int end;

        if (nz == slen) {
            break; /* the trailing zero run is not encoded */
        }
        end = skip_differ(old_buf, new_buf, nz, slen);
        d = put_pair(dst, d, dlen, nz - i, new_buf + nz, end - nz);
        if (d < 0) {
            return -1;
        }
        i = end;
    }
    return d;
}

/*
 * The SIMD encoders: a bitmap with bit i set where byte i changed (bits
 * past slen clear), then runs from bit scans.
 */
#define BITMAP_WORDS (XBZRLE_MAX_PAGE / 64)

/* First bit >= pos that is set (want == 0) or clear (want == ~0). */
static inline int next_bit(const uint64_t *bm, int nwords, int pos,
                           uint64_t want)
{
    int w = pos >> 6;
    uint64_t m = (bm[w] ^ want) & (~0ULL << (pos & 63));

    while (!m) {
        if (++w == nwords) {
            return nwords * 64;
        }
        m = bm[w] ^ want;
    }
    return w * 64 + __builtin_ctzll(m);
}

static inline __attribute__((always_inline)) int
encode_bitmap(const uint64_t *bm, const uint8_t *new_buf, int slen,
              uint8_t *dst, int dlen)
{
    int nwords = (slen + 63) / 64;
    int d = 0, i = 0;

    while (i < slen) {
        int nz = next_bit(bm, nwords, i, 0);
        int end;

        if (nz >= slen) {
            break;
        }
        end = MIN(next_bit(bm, nwords, nz, ~0ULL), slen);
        d = put_pair(dst, d, dlen, nz - i, new_buf + nz, end - nz);
        if (d < 0) {
            return -1;
        }
        i = end;
    }
    return d;
}

/* The bits of the bytes past the last whole 64-byte block. */
static inline uint64_t tail_bits(const uint8_t *a, const uint8_t *b, int n)
{
    uint64_t m = 0;

    for (int k = 0; k < n; k++) {
        m |= (uint64_t)(a[k] != b[k]) << k;
    }
    return m;
}

__attribute__((target("avx2,bmi"))) static int
encode_avx2(const uint8_t *old_buf, const uint8_t *new_buf, int slen,
            uint8_t *dst, int dlen)
{
    uint64_t bm[BITMAP_WORDS];
    uint64_t any = 0;
    int w, full = slen / 64;

    for (w = 0; w < full; w++) {
        const uint8_t *a = old_buf + w * 64, *b = new_buf + w * 64;
        __m256i lo = _mm256_cmpeq_epi8(_mm256_loadu_si256((const void *)a),
                                       _mm256_loadu_si256((const void *)b));
        __m256i hi =
            _mm256_cmpeq_epi8(_mm256_loadu_si256((const void *)(a + 32)),
                              _mm256_loadu_si256((const void *)(b + 32)));
        uint64_t eq = (uint32_t)_mm256_movemask_epi8(lo) |
                      (uint64_t)(uint32_t)_mm256_movemask_epi8(hi) << 32;

        bm[w] = ~eq;
        any |= ~eq;
    }
    if (slen % 64) {
        bm[w] = tail_bits(old_buf + w * 64, new_buf + w * 64, slen % 64);
        any |= bm[w];
    }
    if (!any) {
        return 0;
    }
    return encode_bitmap(bm, new_buf, slen, dst, dlen);
}

__attribute__((target("avx512f,avx512bw,bmi"))) static int
encode_avx512(const uint8_t *old_buf, const uint8_t *new_buf, int slen,
              uint8_t *dst, int dlen)
{
    uint64_t bm[BITMAP_WORDS];
    uint64_t any = 0;
    int w, full = slen / 64;

    for (w = 0; w < full; w++) {
        bm[w] = _mm512_cmpneq_epu8_mask(
            _mm512_loadu_si512((const void *)(old_buf + w * 64)),
            _mm512_loadu_si512((const void *)(new_buf + w * 64)));
        any |= bm[w];
    }
    if (slen % 64) {
        bm[w] = tail_bits(old_buf + w * 64, new_buf + w * 64, slen % 64);
        any |= bm[w];
    }
    if (!any) {
        return 0;
    }
    return encode_bitmap(bm, new_buf, slen, dst, dlen);
}

typedef int (*XbzrleEncodeFn)(const uint8_t *, const uint8_t *, int,
                              uint8_t *, int);

static const XbzrleEncodeFn encode_fns[XBZRLE__MAX] = {
    [XBZRLE_SCALAR] = encode_scalar,
    [XBZRLE_AVX2] = encode_avx2,
    [XBZRLE_AVX512] = encode_avx512,
};

static const char *const impl_names[XBZRLE__MAX] = {
    [XBZRLE_SCALAR] = "scalar",
    [XBZRLE_AVX2] = "avx2",
    [XBZRLE_AVX512] = "avx512bw",
};

bool xbzrle_impl_available(XbzrleImpl impl)
{
    /*
     * __builtin_cpu_supports reads what a constructor filled in: cheap
     * enough to ask for every page, and no state of our own.
     */
    switch (impl) {
    case XBZRLE_SCALAR:
        return true;
    case XBZRLE_AVX2:
        return __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("bmi");
    case XBZRLE_AVX512:
        return __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("bmi");
    default:
        return false;
    }
}

const char *xbzrle_impl_name(XbzrleImpl impl)
{
    return impl < XBZRLE__MAX ? impl_names[impl] : "?";
}

XbzrleImpl xbzrle_best_impl(void)
{
    for (int i = XBZRLE__MAX - 1; i > XBZRLE_SCALAR; i--) {
        if (xbzrle_impl_available(i)) {
            return i;
        }
    }
    return XBZRLE_SCALAR;
}

int xbzrle_encode_buffer_impl(XbzrleImpl impl, const uint8_t *old_buf,
                              const uint8_t *new_buf, int slen, uint8_t *dst,
                              int dlen)
{
    g_assert(impl < XBZRLE__MAX);
    g_assert(slen > 0 && slen <= XBZRLE_MAX_PAGE && dlen >= 0);
    return encode_fns[impl](old_buf, new_buf, slen, dst, dlen);
}

int xbzrle_encode_buffer(const uint8_t *old_buf, const uint8_t *new_buf,
                         int slen, uint8_t *dst, int dlen)
{
    return xbzrle_encode_buffer_impl(xbzrle_best_impl(), old_buf, new_buf,
                                     slen, dst, dlen);
}

/*
 * Reads one length from p[0, avail). Returns its size in bytes, or -1 if
 * it is cut short, longer than 2 bytes, or not in its shortest form (QEMU
 * accepts the last but never writes it).
 */
static inline int get_len(const uint8_t *p, int avail, uint32_t *n)
{
    if (avail < 1) {
        return -1;
    }
    if (!(p[0] & 0x80)) {
        *n = p[0];
        return 1;
    }
    if (avail < 2 || (p[1] & 0x80) || p[1] == 0) {
        return -1;
    }
    *n = (p[0] & 0x7f) | (uint32_t)p[1] << 7;
    return 2;
}

int xbzrle_decode_buffer(const uint8_t *src, int slen, uint8_t *dst,
                         int dlen)
{
    int i = 0, d = 0;

    g_assert(slen >= 0 && dlen >= 0);
    while (i < slen) {
        uint32_t zlen, nzlen;
        int n = get_len(src + i, slen - i, &zlen);

        /* a zero-length zero run only starts a page */
        if (n < 0 || (zlen == 0 && i > 0) || zlen > (uint32_t)(dlen - d)) {
            return -1;
        }
        i += n;
        d += zlen;

        n = get_len(src + i, slen - i, &nzlen);
        if (n < 0 || nzlen == 0) {
            return -1;
        }
        i += n;
        if (nzlen > (uint32_t)(dlen - d) || nzlen > (uint32_t)(slen - i)) {
            return -1;
        }
        copy_run(dst + d, src + i, nzlen);
        d += nzlen;
        i += nzlen;
    }
    return d;
}
