/*
 * Bitmap helpers (see include/godwit/bitmap.h).
 */
#include <glib.h>

#include "godwit/bitmap.h"

unsigned long *bitmap_new(uint64_t nbits)
{
    return g_new0(unsigned long, BITS_TO_LONGS(nbits) ? BITS_TO_LONGS(nbits)
                                                      : 1);
}

void bitmap_free(unsigned long *map)
{
    g_free(map);
}

/* Mask of bits [lo, hi) within one word, 0 <= lo < hi <= BITS_PER_LONG. */
static unsigned long word_mask(unsigned lo, unsigned hi)
{
    unsigned long m = hi == BITS_PER_LONG ? ~0ul : (1ul << hi) - 1;
    return m & ~((1ul << lo) - 1);
}

void bitmap_set_range(unsigned long *map, uint64_t start, uint64_t n)
{
    while (n > 0) {
        uint64_t w = start / BITS_PER_LONG;
        unsigned lo = start % BITS_PER_LONG;
        unsigned hi = (unsigned)MIN((uint64_t)BITS_PER_LONG, lo + n);
        map[w] |= word_mask(lo, hi);
        n -= hi - lo;
        start += hi - lo;
    }
}

void bitmap_clear_range(unsigned long *map, uint64_t start, uint64_t n)
{
    while (n > 0) {
        uint64_t w = start / BITS_PER_LONG;
        unsigned lo = start % BITS_PER_LONG;
        unsigned hi = (unsigned)MIN((uint64_t)BITS_PER_LONG, lo + n);
        map[w] &= ~word_mask(lo, hi);
        n -= hi - lo;
        start += hi - lo;
    }
}

uint64_t bitmap_count(const unsigned long *map, uint64_t nbits)
{
    uint64_t full = nbits / BITS_PER_LONG, count = 0;

    for (uint64_t w = 0; w < full; w++) {
        count += __builtin_popcountl(map[w]);
    }
    if (nbits % BITS_PER_LONG) {
        count += __builtin_popcountl(map[full] &
                                     word_mask(0, nbits % BITS_PER_LONG));
    }
    return count;
}

static uint64_t find_next(const unsigned long *map, uint64_t nbits,
                          uint64_t from, unsigned long invert)
{
    while (from < nbits) {
        uint64_t w = from / BITS_PER_LONG;
        unsigned long v = (map[w] ^ invert) &
                          word_mask(from % BITS_PER_LONG, BITS_PER_LONG);
        if (v) {
            uint64_t bit = w * BITS_PER_LONG + __builtin_ctzl(v);
            return bit < nbits ? bit : nbits;
        }
        from = (w + 1) * BITS_PER_LONG;
    }
    return nbits;
}

uint64_t bitmap_find_next(const unsigned long *map, uint64_t nbits,
                          uint64_t from)
{
    return find_next(map, nbits, from, 0);
}

uint64_t bitmap_find_next_zero(const unsigned long *map, uint64_t nbits,
                               uint64_t from)
{
    return find_next(map, nbits, from, ~0ul);
}

void bitmap_or(unsigned long *dst, const unsigned long *src, uint64_t nbits)
{
    for (uint64_t w = 0; w < BITS_TO_LONGS(nbits); w++) {
        dst[w] |= src[w];
    }
}
