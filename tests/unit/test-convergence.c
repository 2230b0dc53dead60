/*
 * Unit tests for migration/convergence.c: the switchover policy as a table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>

#include "../../migration/convergence.h"

static void test_threshold(void **state)
{
    static const struct {
        uint64_t bw, avail, limit_ms, want;
    } t[] = {
        {0, 0, 300, 0},                      /* nothing measured yet */
        {1000000000, 0, 300, 300000000},     /* 1 GB/s * 300 ms */
        {125000000, 0, 300, 37500000},       /* 1 Gbit/s */
        {1000000000, 100000000, 300, 30000000}, /* avail overrides */
        {1000000000, 0, 0, 0},               /* downtime-limit 0 */
        {UINT64_MAX, 0, 2000000, UINT64_MAX}, /* saturates */
    };

    for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
        assert_int_equal(migration_threshold_bytes(t[i].bw, t[i].avail,
                                                   t[i].limit_ms),
                         t[i].want);
    }
}

static void test_switchover(void **state)
{
    assert_true(migration_can_switchover(0, 0));
    assert_false(migration_can_switchover(4096, 0));
    assert_true(migration_can_switchover(1000, 1000));
    assert_false(migration_can_switchover(1001, 1000));
}

static void test_expected_downtime(void **state)
{
    assert_int_equal(migration_expected_downtime_ms(1000, 0), -1);
    assert_int_equal(migration_expected_downtime_ms(1000000000, 1000000000),
                     1000);
    assert_int_equal(migration_expected_downtime_ms(0, 5), 0);
    assert_int_equal(migration_expected_downtime_ms(125000000, 1250000000),
                     100);
}

static void test_bandwidth(void **state)
{
    assert_int_equal(migration_bandwidth_bps(1000, 0), 0);
    assert_int_equal(migration_bandwidth_bps(100000000, 100000),
                     1000000000);
    assert_int_equal(migration_bandwidth_bps(0, 100000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_switchover),
        cmocka_unit_test(test_expected_downtime),
        cmocka_unit_test(test_bandwidth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
