/*
 * Unit tests for util/bitmap.c, checked against a naive bool array over
 * random operations and at every word boundary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <string.h>

#include "godwit/bitmap.h"

#define NBITS 1000 /* not a multiple of 64 on purpose */

static void check_equal(const unsigned long *map, const bool *ref)
{
    uint64_t count = 0;

    for (uint64_t i = 0; i < NBITS; i++) {
        if (test_bit(i, map) != ref[i]) {
            fail_msg("bit %" G_GUINT64_FORMAT " differs", i);
        }
        count += ref[i];
    }
    assert_int_equal(bitmap_count(map, NBITS), count);
    /* find_next / find_next_zero agree with the reference from anywhere */
    for (uint64_t from = 0; from <= NBITS; from += 7) {
        uint64_t n = from, z = from;
        while (n < NBITS && !ref[n]) {
            n++;
        }
        while (z < NBITS && ref[z]) {
            z++;
        }
        assert_int_equal(bitmap_find_next(map, NBITS, from), n);
        assert_int_equal(bitmap_find_next_zero(map, NBITS, from), z);
    }
}

static void test_ranges_random(void **state)
{
    unsigned long *map = bitmap_new(NBITS);
    bool ref[NBITS] = {0};
    GRand *r = g_rand_new_with_seed(42);

    for (int op = 0; op < 2000; op++) {
        uint64_t start = g_rand_int_range(r, 0, NBITS);
        uint64_t n = g_rand_int_range(r, 0, NBITS - start + 1);
        bool set = g_rand_boolean(r);
        if (set) {
            bitmap_set_range(map, start, n);
        } else {
            bitmap_clear_range(map, start, n);
        }
        for (uint64_t i = start; i < start + n; i++) {
            ref[i] = set;
        }
        if (op % 50 == 0) {
            check_equal(map, ref);
        }
    }
    check_equal(map, ref);
    g_rand_free(r);
    bitmap_free(map);
}

static void test_word_boundaries(void **state)
{
    static const uint64_t edges[] = {0, 1, 62, 63, 64, 65, 127, 128, 129, 999};

    for (size_t i = 0; i < G_N_ELEMENTS(edges); i++) {
        for (size_t j = i; j < G_N_ELEMENTS(edges); j++) {
            unsigned long *map = bitmap_new(NBITS);
            bool ref[NBITS] = {0};
            uint64_t s = edges[i], n = edges[j] - edges[i] + 1;
            bitmap_set_range(map, s, n);
            for (uint64_t k = s; k < s + n; k++) {
                ref[k] = true;
            }
            check_equal(map, ref);
            bitmap_clear_range(map, s + 1 < s + n ? s + 1 : s, n > 1 ? n - 1 : 0);
            for (uint64_t k = s + 1; k < s + n; k++) {
                ref[k] = false;
            }
            check_equal(map, ref);
            bitmap_free(map);
        }
    }
}

static void test_single_bits_and_or(void **state)
{
    unsigned long *a = bitmap_new(NBITS), *b = bitmap_new(NBITS);

    set_bit(3, a);
    set_bit_atomic(64, a);
    set_bit(999, b);
    set_bit(3, b);
    bitmap_or(a, b, NBITS);
    assert_int_equal(bitmap_count(a, NBITS), 3);
    clear_bit(3, a);
    assert_false(test_bit(3, a));
    assert_true(test_bit(64, a) && test_bit(999, a));
    /* nothing beyond nbits is found */
    assert_int_equal(bitmap_find_next(a, 999, 65), 999);
    bitmap_free(a);
    bitmap_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranges_random),
        cmocka_unit_test(test_word_boundaries),
        cmocka_unit_test(test_single_bits_and_or),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
