/*
 * Zero-page detection: is a page all zero bytes? Scalar, SSE2 and AVX2
 * variants that give identical answers; the fastest the CPU supports is
 * chosen at run time.
 */
#ifndef MIGRATION_ZERO_PAGE_H
#define MIGRATION_ZERO_PAGE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum ZeroPageImpl {
    ZERO_PAGE_SCALAR,
    ZERO_PAGE_SSE2,
    ZERO_PAGE_AVX2,
    ZERO_PAGE__MAX,
} ZeroPageImpl;

/*
 * `len` must be a multiple of 128 and buf 8-byte aligned (pages are). The
 * variant in use is the best one available (zero_page_select changes it).
 */
bool buffer_is_zero(const void *buf, size_t len);

/* One variant directly; false if this CPU lacks it. */
bool zero_page_available(ZeroPageImpl impl);
bool buffer_is_zero_impl(ZeroPageImpl impl, const void *buf, size_t len);
const char *zero_page_impl_name(ZeroPageImpl impl);

/* Selects the variant buffer_is_zero uses (tests, benchmarks). */
bool zero_page_select(ZeroPageImpl impl);
ZeroPageImpl zero_page_selected(void);

#endif /* MIGRATION_ZERO_PAGE_H */
