/*
 * Unit tests for util/cutils.c: size, integer and boolean parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "godwit/cutils.h"

typedef struct SizeCase {
    const char *str;
    uint64_t unit;
    bool ok;
    uint64_t value;
} SizeCase;

static const SizeCase size_cases[] = {
    {"0", 1, true, 0},
    {"4096", 1, true, 4096},
    {"128", 1 << 20, true, 128ull << 20},
    {"128M", 1 << 20, true, 128ull << 20},
    {"16G", 1 << 20, true, 16ull << 30},
    {"16g", 1 << 20, true, 16ull << 30},
    {"1.5G", 1, true, 3ull << 29},
    {"1.5", 1 << 20, true, 3ull << 19},
    {"64k", 1, true, 65536},
    {"512B", 1 << 20, true, 512},
    {"1T", 1, true, 1ull << 40},
    {"16E", 1, false, 0},
    {"", 1, false, 0},
    {"M", 1, false, 0},
    {"-1", 1, false, 0},
    {"12Q", 1, false, 0},
    {"12MB", 1, false, 0},
    {"1.5", 1, false, 0},
    {"0.5B", 1, false, 0},
    {" 5", 1, false, 0},
    {"18446744073709551615", 1, true, UINT64_MAX},
    {"18446744073709551616", 1, false, 0},
    {"99999999999999999999", 1, false, 0},
    {"1.0000000001K", 1, false, 0},
    /* the fraction sums to 1.0: 16E, too large, not 0 */
    {"15.99999999999999999999E", 1, false, 0},
    {"15.999999999999999999999999999999999E", 1, false, 0},
    {"15.5E", 1, true, 31ull << 59},
};

static void test_parse_size(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(size_cases); i++) {
        const SizeCase *c = &size_cases[i];
        g_autoptr(GError) err = NULL;
        uint64_t v = 0xdead;
        bool ok = gw_parse_size(c->str, c->unit, &v, &err);

        if (ok != c->ok) {
            fail_msg("'%s': expected %s", c->str, c->ok ? "ok" : "error");
        }
        if (ok) {
            assert_null(err);
            assert_int_equal(v, c->value);
        } else {
            assert_non_null(err);
            assert_int_equal(v, 0xdead); /* untouched on error */
        }
    }
}

static void test_parse_uint(void **state)
{
    uint64_t v;
    g_autoptr(GError) err = NULL;

    assert_true(gw_parse_uint("42", &v, NULL));
    assert_int_equal(v, 42);
    assert_true(gw_parse_uint("0x10", &v, NULL));
    assert_int_equal(v, 16);
    assert_false(gw_parse_uint("-1", &v, NULL));
    assert_false(gw_parse_uint("", &v, NULL));
    assert_false(gw_parse_uint("12a", &v, NULL));
    assert_false(gw_parse_uint("99999999999999999999999", &v, &err));
    assert_non_null(err);
}

static void test_parse_bool(void **state)
{
    bool b = false;

    assert_true(gw_parse_bool("on", &b, NULL));
    assert_true(b);
    assert_true(gw_parse_bool("off", &b, NULL));
    assert_false(b);
    assert_false(gw_parse_bool("maybe", &b, NULL));
    assert_false(gw_parse_bool(NULL, &b, NULL));
}

static void test_format_size(void **state)
{
    g_autofree char *a = gw_format_size(512);
    g_autofree char *b = gw_format_size(512ull << 20);
    g_autofree char *c = gw_format_size(3ull << 29);

    assert_string_equal(a, "512 B");
    assert_string_equal(b, "512 MiB");
    assert_string_equal(c, "1.5 GiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_format_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
