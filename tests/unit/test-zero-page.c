/*
 * Unit tests for migration/zero-page.c: every variant the CPU has gives
 * the same answer as a byte-by-byte reference, for a single non-zero byte
 * at every position of a page, random pages and all-zero pages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <string.h>

#include "../../migration/zero-page.h"

#define PAGE 4096

static bool reference(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

static void check_all(const uint8_t *p, size_t len)
{
    bool want = reference(p, len);

    for (int impl = 0; impl < ZERO_PAGE__MAX; impl++) {
        if (!zero_page_available(impl)) {
            continue;
        }
        if (buffer_is_zero_impl(impl, p, len) != want) {
            fail_msg("%s disagrees (want %d)", zero_page_impl_name(impl),
                     want);
        }
    }
    assert_int_equal(buffer_is_zero(p, len), want);
}

static void test_every_byte(void **state)
{
    uint8_t *page = g_aligned_alloc0(1, PAGE, 64);

    check_all(page, PAGE);
    for (size_t i = 0; i < PAGE; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            page[i] = (uint8_t)(1u << bit);
            check_all(page, PAGE);
            page[i] = 0;
        }
    }
    g_aligned_free(page);
}

static void test_random_pages(void **state)
{
    uint8_t *page = g_aligned_alloc0(1, PAGE, 64);
    GRand *r = g_rand_new_with_seed(7);

    for (int n = 0; n < 2000; n++) {
        memset(page, 0, PAGE);
        int k = g_rand_int_range(r, 0, 4); /* 0..3 non-zero bytes */
        for (int j = 0; j < k; j++) {
            page[g_rand_int_range(r, 0, PAGE)] = g_rand_int_range(r, 1, 256);
        }
        check_all(page, PAGE);
    }
    g_rand_free(r);
    g_aligned_free(page);
}

static void test_select(void **state)
{
    /* scalar always exists; the default is the best available */
    assert_true(zero_page_available(ZERO_PAGE_SCALAR));
    ZeroPageImpl best = zero_page_selected();
    for (int i = best + 1; i < ZERO_PAGE__MAX; i++) {
        assert_false(zero_page_available(i));
    }
    assert_true(zero_page_select(ZERO_PAGE_SCALAR));
    assert_int_equal(zero_page_selected(), ZERO_PAGE_SCALAR);
    assert_false(zero_page_select(ZERO_PAGE__MAX));
    assert_true(zero_page_select(best));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_random_pages),
        cmocka_unit_test(test_select),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
