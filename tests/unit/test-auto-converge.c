/*
 * Unit tests for migration/auto-converge.c: QEMU's auto-converge policy
 * as a table of sync periods.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>

#include "../../migration/auto-converge.h"

#define MB (1000000ull)

typedef struct Period {
    uint64_t dirty, xfer;
    int want; /* throttle after this period */
} Period;

static void run(const AutoConvergeParams *p, const Period *periods, size_t n)
{
    AutoConvergeState st = {0};
    int pct = 0;

    for (size_t i = 0; i < n; i++) {
        pct = auto_converge_step(&st, p, pct, periods[i].dirty,
                                 periods[i].xfer);
        if (pct != periods[i].want) {
            fail_msg("period %zu: throttle %d, want %d", i, pct,
                     periods[i].want);
        }
    }
}

static const AutoConvergeParams qemu_defaults = {50, 20, 10, 99, false};

static void test_defaults_steps(void **state)
{
    /* dirtying 2x what is sent: 20, then +10 every second trigger */
    static const Period p[] = {
        {200 * MB, 100 * MB, 0},  {200 * MB, 100 * MB, 20},
        {200 * MB, 100 * MB, 20}, {200 * MB, 100 * MB, 30},
        {200 * MB, 100 * MB, 30}, {200 * MB, 100 * MB, 40},
    };
    run(&qemu_defaults, p, G_N_ELEMENTS(p));
}

static void test_threshold_edge(void **state)
{
    /* exactly 50 % is not above the threshold; 50 % + 1 byte is */
    static const Period p[] = {
        {50 * MB, 100 * MB, 0},     {50 * MB, 100 * MB, 0},
        {50 * MB + 1, 100 * MB, 0}, {50 * MB + 1, 100 * MB, 20},
    };
    run(&qemu_defaults, p, G_N_ELEMENTS(p));
}

static void test_calm_period_does_not_reset(void **state)
{
    /* as QEMU: high, calm, high triggers */
    static const Period p[] = {
        {200 * MB, 100 * MB, 0},
        {1 * MB, 100 * MB, 0},
        {200 * MB, 100 * MB, 20},
    };
    run(&qemu_defaults, p, G_N_ELEMENTS(p));
}

static void test_seed_scenarios(void **state)
{
    /* the seed blog's 30/15 and 50/20, capped at max 70 */
    static const AutoConvergeParams a = {50, 30, 15, 99, false};
    static const Period pa[] = {
        {9 * MB, 1 * MB, 0}, {9 * MB, 1 * MB, 30}, {9 * MB, 1 * MB, 30},
        {9 * MB, 1 * MB, 45}, {9 * MB, 1 * MB, 45}, {9 * MB, 1 * MB, 60},
    };
    static const AutoConvergeParams b = {50, 50, 20, 70, false};
    static const Period pb[] = {
        {9 * MB, 1 * MB, 0},  {9 * MB, 1 * MB, 50}, {9 * MB, 1 * MB, 50},
        {9 * MB, 1 * MB, 70}, {9 * MB, 1 * MB, 70}, {9 * MB, 1 * MB, 70},
    };
    run(&a, pa, G_N_ELEMENTS(pa));
    run(&b, pb, G_N_ELEMENTS(pb));
}

static void test_initial_above_max(void **state)
{
    static const AutoConvergeParams p = {50, 60, 10, 40, false};
    static const Period pp[] = {{9 * MB, 1 * MB, 0}, {9 * MB, 1 * MB, 40}};
    run(&p, pp, G_N_ELEMENTS(pp));
}

static void test_tailslow(void **state)
{
    /*
     * At 60 %: the guest has 40 % of the CPU; dirtying 120 MB where the
     * threshold is 100 MB (50 % of 200 MB) needs 40 * 100/120 = 33.3 %:
     * step 6 (not the increment 10).
     */
    static const AutoConvergeParams p = {50, 60, 10, 99, true};
    AutoConvergeState st = {.dirty_rate_high_cnt = 1};
    assert_int_equal(auto_converge_step(&st, &p, 60, 120 * MB, 200 * MB),
                     66);
    /* far above the threshold: the increment caps the step */
    st.dirty_rate_high_cnt = 1;
    assert_int_equal(auto_converge_step(&st, &p, 60, 900 * MB, 200 * MB),
                     70);
    /* the first trigger still jumps to the initial value */
    st.dirty_rate_high_cnt = 1;
    assert_int_equal(auto_converge_step(&st, &p, 0, 900 * MB, 200 * MB), 60);
}

static void test_nothing_sent(void **state)
{
    /* a stalled link (nothing transferred) with dirtying triggers */
    static const Period p[] = {{1, 0, 0}, {1, 0, 20}};
    run(&qemu_defaults, p, G_N_ELEMENTS(p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_steps),
        cmocka_unit_test(test_threshold_edge),
        cmocka_unit_test(test_calm_period_does_not_reset),
        cmocka_unit_test(test_seed_scenarios),
        cmocka_unit_test(test_initial_above_max),
        cmocka_unit_test(test_tailslow),
        cmocka_unit_test(test_nothing_sent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
