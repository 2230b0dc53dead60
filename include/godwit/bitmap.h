/*
 * Bitmaps of unsigned longs, one bit per page: dirty logs, migration
 * bitmaps. Plain functions, no globals; atomic variants say so.
 */
#ifndef GODWIT_BITMAP_H
#define GODWIT_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

#define BITS_PER_LONG (8 * sizeof(unsigned long))
#define BITS_TO_LONGS(n) (((n) + BITS_PER_LONG - 1) / BITS_PER_LONG)

unsigned long *bitmap_new(uint64_t nbits);
void bitmap_free(unsigned long *map);

static inline bool test_bit(uint64_t nr, const unsigned long *map)
{
    return (map[nr / BITS_PER_LONG] >> (nr % BITS_PER_LONG)) & 1;
}

static inline void set_bit(uint64_t nr, unsigned long *map)
{
    map[nr / BITS_PER_LONG] |= 1ul << (nr % BITS_PER_LONG);
}

static inline void clear_bit(uint64_t nr, unsigned long *map)
{
    map[nr / BITS_PER_LONG] &= ~(1ul << (nr % BITS_PER_LONG));
}

/* Atomic set, from any thread. */
static inline void set_bit_atomic(uint64_t nr, unsigned long *map)
{
    __atomic_fetch_or(&map[nr / BITS_PER_LONG], 1ul << (nr % BITS_PER_LONG),
                      __ATOMIC_RELAXED);
}

/* Sets / clears bits [start, start + n). */
void bitmap_set_range(unsigned long *map, uint64_t start, uint64_t n);
void bitmap_clear_range(unsigned long *map, uint64_t start, uint64_t n);

/* Number of set bits among the first nbits. */
uint64_t bitmap_count(const unsigned long *map, uint64_t nbits);

/* Index of the first set (zero) bit >= from, or nbits if none. */
uint64_t bitmap_find_next(const unsigned long *map, uint64_t nbits,
                          uint64_t from);
uint64_t bitmap_find_next_zero(const unsigned long *map, uint64_t nbits,
                               uint64_t from);

/* dst |= src over nbits. */
void bitmap_or(unsigned long *dst, const unsigned long *src, uint64_t nbits);

#endif /* GODWIT_BITMAP_H */
