/*
 * Unit tests for migration/page-cache.c: sizes refused, hits and misses,
 * eviction by age (PAGE_CACHE_LIFETIME), a hit refreshing the age, and
 * resize keeping what fits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <string.h>

#include "../../migration/page-cache.h"

#define PAGE 4096

/* A page whose every byte says which address it belongs to. */
static const uint8_t *page_for(uint64_t addr)
{
    static uint8_t buf[PAGE];

    memset(buf, (int)(addr / PAGE * 7 + 1), PAGE);
    return buf;
}

static void assert_holds(PageCache *c, uint64_t addr)
{
    uint8_t *data = get_cached_data(c, addr);

    assert_non_null(data);
    assert_memory_equal(data, page_for(addr), PAGE);
}

static void test_init_refused(void **state)
{
    static const struct {
        uint64_t size;
        const char *msg;
    } t[] = {
        {0, "smaller than one page"},
        {PAGE - 1, "smaller than one page"},
        {3 * PAGE, "not a power of two"},
        {5 * PAGE + 100, "not a power of two"},
        {1ULL << 62, "cannot allocate"}, /* the largest size QMP allows */
    };

    for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
        g_autoptr(GError) err = NULL;

        assert_null(cache_init(t[i].size, PAGE, &err));
        assert_non_null(err);
        if (!strstr(err->message, t[i].msg)) {
            fail_msg("size %" G_GUINT64_FORMAT ": '%s'", t[i].size,
                     err->message);
        }
    }
}

static void test_sizes(void **state)
{
    g_autoptr(GError) err = NULL;
    PageCache *c = cache_init(64 << 20, PAGE, &err); /* QEMU's default */

    assert_non_null(c);
    assert_null(err);
    assert_int_equal(cache_num_slots(c), 16384);
    assert_int_equal(cache_size_bytes(c), 64 << 20);
    assert_int_equal(cache_page_size(c), PAGE);
    assert_int_equal(cache_num_items(c), 0);
    cache_fini(c);

    /* the remainder of a size is not used */
    c = cache_init(PAGE + 100, PAGE, &err);
    assert_non_null(c);
    assert_int_equal(cache_num_slots(c), 1);
    assert_int_equal(cache_size_bytes(c), PAGE);
    cache_fini(c);
    cache_fini(NULL);
}

static void test_hit_miss(void **state)
{
    PageCache *c = cache_init(4 * PAGE, PAGE, NULL);
    uint8_t *data;

    assert_false(cache_is_cached(c, 0, 0));
    assert_null(get_cached_data(c, 0));
    /* the empty slots' marker is no address */
    assert_false(cache_is_cached(c, UINT64_MAX, 0));
    assert_null(get_cached_data(c, UINT64_MAX));
    for (uint64_t a = 0; a < 4 * PAGE; a += PAGE) {
        assert_int_equal(cache_insert(c, a, page_for(a), 1), 0);
    }
    assert_int_equal(cache_num_items(c), 4);
    for (uint64_t a = 0; a < 4 * PAGE; a += PAGE) {
        assert_true(cache_is_cached(c, a, 1));
        assert_holds(c, a);
        /* the address that shares the slot is not the one cached */
        assert_false(cache_is_cached(c, a + 4 * PAGE, 1));
        assert_null(get_cached_data(c, a + 4 * PAGE));
    }

    /* the data may be updated in place (after an XBZRLE send) */
    data = get_cached_data(c, PAGE);
    memset(data, 0xee, PAGE);
    assert_int_equal(get_cached_data(c, PAGE)[PAGE - 1], 0xee);

    /* re-inserting a cached address always works and replaces the data */
    assert_int_equal(cache_insert(c, PAGE, page_for(PAGE), 1), 0);
    assert_holds(c, PAGE);
    assert_int_equal(cache_num_items(c), 4);
    cache_fini(c);
}

/* Another address takes a slot only PAGE_CACHE_LIFETIME syncs later. */
static void test_eviction_by_age(void **state)
{
    PageCache *c = cache_init(4 * PAGE, PAGE, NULL);
    const uint64_t a = 2 * PAGE, b = a + 4 * PAGE, e = a + 8 * PAGE;

    assert_int_equal(PAGE_CACHE_LIFETIME, 2);
    assert_int_equal(cache_insert(c, a, page_for(a), 5), 0);
    /* same pass, next pass: a stays */
    assert_int_equal(cache_insert(c, b, page_for(b), 5), -1);
    assert_int_equal(cache_insert(c, b, page_for(b), 6), -1);
    assert_holds(c, a);
    assert_false(cache_is_cached(c, b, 6));
    /* two passes later: b takes the slot */
    assert_int_equal(cache_insert(c, b, page_for(b), 7), 0);
    assert_false(cache_is_cached(c, a, 7));
    assert_null(get_cached_data(c, a));
    assert_holds(c, b);
    assert_int_equal(cache_num_items(c), 1);

    /* a hit refreshes the age: b, hit at 9, stays until 11 */
    assert_true(cache_is_cached(c, b, 9));
    assert_int_equal(cache_insert(c, e, page_for(e), 9), -1);
    assert_int_equal(cache_insert(c, e, page_for(e), 10), -1);
    assert_int_equal(cache_insert(c, e, page_for(e), 11), 0);
    assert_holds(c, e);

    /* a miss does not touch the age of the slot's page */
    assert_false(cache_is_cached(c, a, 50));
    assert_int_equal(cache_insert(c, a, page_for(a), 13), 0);
    cache_fini(c);
}

/* Growing keeps every page; shrinking keeps the newest per slot. */
static void test_resize(void **state)
{
    g_autoptr(GError) err = NULL;
    PageCache *c = cache_init(4 * PAGE, PAGE, NULL);

    /* pages 0..3, ages 10..13 */
    for (uint64_t i = 0; i < 4; i++) {
        assert_int_equal(cache_insert(c, i * PAGE, page_for(i * PAGE), 10 + i),
                         0);
    }
    assert_true(cache_resize(c, 16 * PAGE, &err));
    assert_null(err);
    assert_int_equal(cache_num_slots(c), 16);
    assert_int_equal(cache_num_items(c), 4);
    for (uint64_t i = 0; i < 4; i++) {
        assert_holds(c, i * PAGE);
    }
    /* pages 4..15 now have slots of their own */
    for (uint64_t i = 4; i < 16; i++) {
        assert_int_equal(cache_insert(c, i * PAGE, page_for(i * PAGE), 20), 0);
    }
    assert_int_equal(cache_num_items(c), 16);

    /* shrink to 2 slots: slot 0 gets 0,2,..,14, slot 1 gets 1,3,..,15 */
    assert_true(cache_is_cached(c, 6 * PAGE, 30)); /* newest, even */
    assert_true(cache_resize(c, 2 * PAGE, &err));
    assert_int_equal(cache_num_slots(c), 2);
    assert_int_equal(cache_num_items(c), 2);
    assert_holds(c, 6 * PAGE);
    /* odd pages 5..15 all have age 20: the first one met stays */
    assert_holds(c, 5 * PAGE);
    for (uint64_t i = 0; i < 16; i++) {
        assert_true(cache_is_cached(c, i * PAGE, 30) == (i == 5 || i == 6));
    }

    /* the same number of slots: nothing changes */
    assert_true(cache_resize(c, 2 * PAGE + 5, &err));
    assert_holds(c, 5 * PAGE);
    assert_int_equal(cache_num_items(c), 2);

    /* one slot: the newer of the two */
    assert_true(cache_is_cached(c, 5 * PAGE, 31));
    assert_true(cache_resize(c, PAGE, &err));
    assert_int_equal(cache_num_items(c), 1);
    assert_holds(c, 5 * PAGE);
    assert_null(get_cached_data(c, 6 * PAGE));
    cache_fini(c);
}

/* A refused resize leaves the cache as it was. */
static void test_resize_refused(void **state)
{
    static const uint64_t bad[] = {0, PAGE - 1, 3 * PAGE, 1ULL << 62};
    PageCache *c = cache_init(8 * PAGE, PAGE, NULL);

    for (uint64_t i = 0; i < 8; i++) {
        assert_int_equal(cache_insert(c, i * PAGE, page_for(i * PAGE), 1), 0);
    }
    for (size_t k = 0; k < G_N_ELEMENTS(bad); k++) {
        g_autoptr(GError) err = NULL;

        assert_false(cache_resize(c, bad[k], &err));
        assert_non_null(err);
        assert_int_equal(cache_num_slots(c), 8);
        assert_int_equal(cache_num_items(c), 8);
        for (uint64_t i = 0; i < 8; i++) {
            assert_holds(c, i * PAGE);
        }
    }
    cache_fini(c);
}

/* Other page sizes: the slot is the page number, not the byte address. */
static void test_page_size(void **state)
{
    PageCache *c = cache_init(1 << 20, 64 << 10, NULL);
    uint8_t page[64 << 10];

    assert_int_equal(cache_num_slots(c), 16);
    memset(page, 0x3c, sizeof(page));
    for (uint64_t i = 0; i < 16; i++) {
        assert_int_equal(cache_insert(c, i << 16, page, 0), 0);
    }
    assert_int_equal(cache_num_items(c), 16);
    assert_int_equal(cache_insert(c, 16 << 16, page, 1), -1);
    assert_memory_equal(get_cached_data(c, 15 << 16), page, sizeof(page));
    cache_fini(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_refused),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_hit_miss),
        cmocka_unit_test(test_eviction_by_age),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_resize_refused),
        cmocka_unit_test(test_page_size),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
