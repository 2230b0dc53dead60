/*
 * Unit tests for system/ramblock.c: memfd RAM blocks, the populated-extent
 * iterator (SEEK_DATA/SEEK_HOLE), preallocation and host-dirty tracking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

#include "godwit/ramblock.h"

#define MiB (1ull << 20)

/* Collects extents as [start, end) pairs. */
static int extents(RAMBlock *rb, uint64_t *out, int max)
{
    uint64_t pos = 0, s, e;
    int n = 0, r;

    while ((r = ram_block_next_extent(rb, pos, &s, &e)) > 0) {
        assert_true(n < max);
        assert_true(s >= pos && e > s && e <= rb->used_length);
        assert_int_equal(s % GW_PAGE_SIZE, 0);
        assert_int_equal(e % GW_PAGE_SIZE, 0);
        out[2 * n] = s;
        out[2 * n + 1] = e;
        n++;
        pos = e;
    }
    assert_true(r == 0);
    return n;
}

static void test_fresh_block_is_empty(void **state)
{
    g_autoptr(GError) err = NULL;
    RAMBlock *rb = ram_block_new("pc.ram", 64 * MiB, &err);
    uint64_t ex[8];

    assert_non_null(rb);
    assert_string_equal(rb->idstr, "pc.ram");
    assert_int_equal(rb->used_length, 64 * MiB);
    assert_int_equal(extents(rb, ex, 4), 0);
    assert_int_equal(ram_block_populated_bytes(rb), 0);
    ram_block_free(rb);
}

static void test_extents_follow_writes(void **state)
{
    RAMBlock *rb = ram_block_new("pc.ram", 64 * MiB, NULL);
    uint64_t ex[16];

    rb->host[0] = 1;                                 /* page 0 */
    memset(rb->host + 8 * MiB, 7, 3 * GW_PAGE_SIZE); /* 3 pages */
    rb->host[64 * MiB - 1] = 9;                      /* last page */

    int n = extents(rb, ex, 8);
    assert_int_equal(n, 3);
    assert_int_equal(ex[0], 0);
    assert_int_equal(ex[1], GW_PAGE_SIZE);
    assert_int_equal(ex[2], 8 * MiB);
    assert_int_equal(ex[3], 8 * MiB + 3 * GW_PAGE_SIZE);
    assert_int_equal(ex[4], 64 * MiB - GW_PAGE_SIZE);
    assert_int_equal(ex[5], 64 * MiB);
    assert_int_equal(ram_block_populated_bytes(rb), 5 * GW_PAGE_SIZE);

    /* Starting in the middle of an extent reports its rest. */
    uint64_t s, e;
    assert_int_equal(ram_block_next_extent(rb, 8 * MiB + GW_PAGE_SIZE, &s, &e),
                     1);
    assert_int_equal(s, 8 * MiB + GW_PAGE_SIZE);
    assert_int_equal(e, 8 * MiB + 3 * GW_PAGE_SIZE);
    /* Past the end: nothing. */
    assert_int_equal(ram_block_next_extent(rb, 64 * MiB, &s, &e), 0);
    ram_block_free(rb);
}

static void test_iterator_does_not_populate(void **state)
{
    RAMBlock *rb = ram_block_new("pc.ram", 32 * MiB, NULL);
    uint64_t ex[4];

    rb->host[5 * MiB] = 1;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(extents(rb, ex, 2), 1);
    }
    /* Walking extents must not have allocated anything else. */
    assert_int_equal(ram_block_populated_bytes(rb), GW_PAGE_SIZE);
    ram_block_free(rb);
}

static void test_punched_hole_disappears(void **state)
{
    RAMBlock *rb = ram_block_new("pc.ram", 16 * MiB, NULL);
    uint64_t ex[8];

    memset(rb->host, 1, 4 * MiB);
    assert_int_equal(extents(rb, ex, 4), 1);
    assert_int_equal(fallocate(rb->fd,
                               FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               1 * MiB, 1 * MiB),
                     0);
    assert_int_equal(extents(rb, ex, 4), 2);
    assert_int_equal(ex[1], 1 * MiB);
    assert_int_equal(ex[2], 2 * MiB);
    assert_int_equal(rb->host[1 * MiB], 0); /* reads as zero again */
    ram_block_free(rb);
}

/*
 * ram_block_prealloc populates every page and says so; a discard takes
 * that back (the incoming migration populates ahead again).
 */
static void test_prealloc_flag(void **state)
{
    g_autoptr(GError) err = NULL;
    RAMBlock *rb = ram_block_new("pc.ram", 16 * MiB, NULL);
    uint64_t ex[8];

    assert_false(rb->preallocated);
    assert_true(ram_block_prealloc(rb, 2, &err));
    assert_null(err);
    assert_true(rb->preallocated);
    assert_int_equal(extents(rb, ex, 4), 1);
    assert_int_equal(ex[0], 0);
    assert_int_equal(ex[1], 16 * MiB);
    assert_int_equal(ram_block_populated_bytes(rb), 16 * MiB);
    assert_true(ram_block_discard_range(rb, 1 * MiB, 1 * MiB));
    assert_false(rb->preallocated);
    assert_int_equal(extents(rb, ex, 4), 2);
    ram_block_free(rb);
}

static void test_host_dirty(void **state)
{
    RAMBlock *rb = ram_block_new("pc.ram", 4 * MiB, NULL);
    uint64_t pages = ram_block_pages(rb);
    unsigned long *map = bitmap_new(pages);

    ram_block_set_dirty(rb, 0, 1);
    ram_block_set_dirty(rb, GW_PAGE_SIZE - 1, 2); /* spans pages 0 and 1 */
    ram_block_set_dirty(rb, 100 * GW_PAGE_SIZE, 3 * GW_PAGE_SIZE);
    ram_block_set_dirty(rb, 4 * MiB, GW_PAGE_SIZE); /* outside: ignored */
    ram_block_take_host_dirty(rb, map);
    assert_int_equal(bitmap_count(map, pages), 5);
    assert_true(test_bit(0, map) && test_bit(1, map));
    assert_true(test_bit(100, map) && test_bit(102, map));
    assert_false(test_bit(103, map));
    /* Taken means cleared. */
    memset(map, 0, BITS_TO_LONGS(pages) * sizeof(long));
    ram_block_take_host_dirty(rb, map);
    assert_int_equal(bitmap_count(map, pages), 0);
    bitmap_free(map);
    ram_block_free(rb);
}

static void test_bad_sizes(void **state)
{
    g_autoptr(GError) err = NULL;

    assert_null(ram_block_new("pc.ram", 0, NULL));
    assert_null(ram_block_new("", MiB, NULL));
    /* An exabyte cannot be mapped: a clear error, not a crash. */
    assert_null(ram_block_new("pc.ram", 1ull << 60, &err));
    assert_non_null(err);
    assert_non_null(strstr(err->message, "guest RAM"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_block_is_empty),
        cmocka_unit_test(test_extents_follow_writes),
        cmocka_unit_test(test_iterator_does_not_populate),
        cmocka_unit_test(test_punched_hole_disappears),
        cmocka_unit_test(test_prealloc_flag),
        cmocka_unit_test(test_host_dirty),
        cmocka_unit_test(test_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
