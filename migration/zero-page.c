/*
 * Zero-page detection with run-time choice of scalar, SSE2 or AVX2 code.
 * Every variant looks at the first word first (most non-zero pages differ
 * there) and then ORs the whole buffer, so the answer never depends on the
 * variant.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "zero-page.h"

static bool zero_scalar(const void *buf, size_t len)
{
    const uint64_t *p = buf;
    uint64_t acc = 0;

    if (p[0]) {
        return false;
    }
    for (size_t i = 0; i < len / 8; i += 8) {
        acc |= p[i] | p[i + 1] | p[i + 2] | p[i + 3] | p[i + 4] | p[i + 5] |
               p[i + 6] | p[i + 7];
    }
    return acc == 0;
}

__attribute__((target("sse2"))) static bool zero_sse2(const void *buf,
                                                       size_t len)
{
    const __m128i *p = buf;
    __m128i acc = _mm_setzero_si128();

    if (*(const uint64_t *)buf) {
        return false;
    }
    for (size_t i = 0; i < len / 16; i += 4) {
        acc = _mm_or_si128(acc, _mm_or_si128(_mm_loadu_si128(p + i),
                                             _mm_loadu_si128(p + i + 1)));
        acc = _mm_or_si128(acc, _mm_or_si128(_mm_loadu_si128(p + i + 2),
                                             _mm_loadu_si128(p + i + 3)));
    }
    return _mm_movemask_epi8(_mm_cmpeq_epi8(acc, _mm_setzero_si128())) ==
           0xffff;
}

__attribute__((target("avx2"))) static bool zero_avx2(const void *buf,
                                                       size_t len)
{
    const __m256i *p = buf;
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;

    if (*(const uint64_t *)buf) {
        return false;
    }
    /* 128 bytes per step, four independent chains */
    for (size_t i = 0; i < len / 32; i += 4) {
        a = _mm256_or_si256(a, _mm256_loadu_si256(p + i));
        b = _mm256_or_si256(b, _mm256_loadu_si256(p + i + 1));
        c = _mm256_or_si256(c, _mm256_loadu_si256(p + i + 2));
        d = _mm256_or_si256(d, _mm256_loadu_si256(p + i + 3));
    }
    a = _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
    return _mm256_testz_si256(a, a);
}

typedef bool (*ZeroFn)(const void *, size_t);

static const ZeroFn zero_fns[ZERO_PAGE__MAX] = {
    [ZERO_PAGE_SCALAR] = zero_scalar,
    [ZERO_PAGE_SSE2] = zero_sse2,
    [ZERO_PAGE_AVX2] = zero_avx2,
};

static const char *const zero_names[ZERO_PAGE__MAX] = {
    [ZERO_PAGE_SCALAR] = "scalar",
    [ZERO_PAGE_SSE2] = "sse2",
    [ZERO_PAGE_AVX2] = "avx2",
};

static ZeroFn zero_fn;
static ZeroPageImpl zero_impl;

bool zero_page_available(ZeroPageImpl impl)
{
    switch (impl) {
    case ZERO_PAGE_SCALAR:
        return true;
    case ZERO_PAGE_SSE2:
        return __builtin_cpu_supports("sse2");
    case ZERO_PAGE_AVX2:
        return __builtin_cpu_supports("avx2");
    default:
        return false;
    }
}

const char *zero_page_impl_name(ZeroPageImpl impl)
{
    return impl < ZERO_PAGE__MAX ? zero_names[impl] : "?";
}

bool zero_page_select(ZeroPageImpl impl)
{
    if (impl >= ZERO_PAGE__MAX || !zero_page_available(impl)) {
        return false;
    }
    zero_impl = impl;
    __atomic_store_n(&zero_fn, zero_fns[impl], __ATOMIC_RELEASE);
    return true;
}

static void zero_page_init(void)
{
    __builtin_cpu_init();
    for (int i = ZERO_PAGE__MAX - 1; i >= 0; i--) {
        if (zero_page_select(i)) {
            return;
        }
    }
}

ZeroPageImpl zero_page_selected(void)
{
    if (!__atomic_load_n(&zero_fn, __ATOMIC_ACQUIRE)) {
        zero_page_init();
    }
    return zero_impl;
}

bool buffer_is_zero_impl(ZeroPageImpl impl, const void *buf, size_t len)
{
    return zero_fns[impl](buf, len);
}

bool buffer_is_zero(const void *buf, size_t len)
{
    ZeroFn fn = __atomic_load_n(&zero_fn, __ATOMIC_ACQUIRE);

    if (!fn) {
        zero_page_init();
        fn = zero_fn;
    }
    return fn(buf, len);
}
