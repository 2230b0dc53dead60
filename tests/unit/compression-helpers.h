/*
 * Helpers of the compression unit test (test-compression.c,
 * test-compression-stream.c): page contents of every kind, guarded and
 * fenced buffers, and compression contexts that fail the test (cmocka)
 * when they cannot be made.
 */
#ifndef TESTS_UNIT_COMPRESSION_HELPERS_H
#define TESTS_UNIT_COMPRESSION_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include "../../migration/compression.h"

#define PAGE MIG_COMPRESS_PAGE_SIZE
#define GUARD 64
#define GUARD_BYTE 0xa5
#define POISON_BYTE 0x5a

/* The methods every test runs (a new method is one line there). */
extern const MigCompression methods[];
extern const size_t n_methods;
#define N_METHODS n_methods

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

uint64_t xorshift64(uint64_t *s);
uint64_t seed_state(uint64_t seed);
void fill_page(uint8_t *p, PageKind kind, uint64_t seed);

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

Pages pages_new(size_t n, uint64_t seed);
void pages_poison(Pages *p);
void pages_check_guards(const Pages *p);
void pages_free(Pages *p);

/* An output buffer of `size` bytes followed by guard bytes. */
uint8_t *out_new(size_t size);
void out_check_guard(const uint8_t *b, size_t size);

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

Fenced fenced_copy(const uint8_t *buf, size_t len);
void fenced_free(Fenced *f);

/* ---- contexts ------------------------------------------------------------ */

MigCompressCtx *ctx_new(MigCompression m, MigCompressMode mode, int level);

typedef struct StreamPair {
    MigCompressCtx *tx, *rx;
} StreamPair;

StreamPair pair_new(MigCompression m, int level);
void pair_free(StreamPair *p);
const MigCompressOps *ops_of(MigCompression m);
/* The levels worth testing: both edges, 1, the default, lz4's first HC. */
int levels_of(MigCompression m, int *out);
/* Compresses one page with a bound-sized buffer; returns a new body. */
uint8_t *compress_one(MigCompressCtx *tx, const uint8_t *page, size_t *len);
/*
 * Decodes body[0..len) from a fenced copy into a guarded page.
 * Returns whether it decoded; fills `page` (PAGE bytes) if non-NULL.
 */
bool decode_exact(MigCompressCtx *rx, const uint8_t *body, size_t len,
                  uint8_t *page, char **msg);
/* Fails the test unless rx refuses body[0..len), naming the method. */
void expect_page_refused(MigCompressCtx *rx, const uint8_t *body, size_t len,
                         const char *what);

/* ---- test-compression-stream.c ------------------------------------------- */

void test_stream_roundtrip(void **state);
void test_stream_persistent(void **state);
void test_stream_plain_library(void **state);
void test_stream_corrupt(void **state);
void test_stream_small_buffer(void **state);

#endif /* TESTS_UNIT_COMPRESSION_HELPERS_H */
