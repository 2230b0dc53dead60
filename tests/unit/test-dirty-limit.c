/*
 * Unit tests for migration/dirty-limit.c: the per-vCPU dirty-limit policy
 * as tables of controller periods, and a closed loop against a model
 * vCPU whose dirty rate is proportional to the time it runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>

#include "../../migration/dirty-limit.h"

#define MB (1000000ull)
#define FULL DIRTY_LIMIT_RUN_FULL

typedef struct Period {
    uint64_t limit_mbps; /* 0: cancelled */
    uint64_t rate_bps;   /* measured in the period */
    uint32_t want;       /* run share (ppm) after it */
} Period;

static void run(uint32_t start, const Period *p, size_t n)
{
    uint32_t share = start;

    for (size_t i = 0; i < n; i++) {
        share = dirty_limit_step(share, p[i].limit_mbps, p[i].rate_bps);
        if (share != p[i].want) {
            fail_msg("period %zu: share %u, want %u", i, share, p[i].want);
        }
    }
}

static void test_far_above(void **state)
{
    /* 1000 MB/s against 100: straight to 90 % of the limit's share */
    static const Period p[] = {
        {100, 1000 * MB, 90000},
        /* still 10x over at that share: down again, proportionally */
        {100, 1000 * MB, 8100},
        /* 1 MB/s against 4 GB/s native: stops at the floor */
        {1, 4000 * MB, DIRTY_LIMIT_RUN_MIN},
        {1, 4000 * MB, DIRTY_LIMIT_RUN_MIN},
    };
    run(FULL, p, G_N_ELEMENTS(p));
}

static void test_near_limit(void **state)
{
    /* between 70 % and 100 % of the limit: nothing moves */
    static const Period p[] = {
        {100, 100 * MB, 500000},
        {100, 95 * MB, 500000},
        {100, 70 * MB, 500000},
        {100, 90 * MB, 500000},
        /* 1 byte/s over: down, aiming at 90 % */
        {100, 100 * MB + 1, 449999},
    };
    run(500000, p, G_N_ELEMENTS(p));
}

static void test_unthrottled_under_limit(void **state)
{
    /* a free vCPU under its limit stays free, even at 0 */
    static const Period p[] = {
        {100, 10 * MB, FULL},
        {100, 0, FULL},
        {100, 99 * MB, FULL},
    };
    run(FULL, p, G_N_ELEMENTS(p));
}

static void test_overshoot_eases(void **state)
{
    /*
     * Far below the limit while asleep most of the time: eased, at most
     * x2 a period, and in proportion once that is enough.
     */
    static const Period p[] = {
        {100, 1 * MB, 20000},  /* x2 cap */
        {100, 0, 40000},       /* nothing dirtied: x2 */
        {100, 60 * MB, 60000}, /* 60 → aim 90: x1.5 */
        {100, 80 * MB, 60000}, /* near: holds */
        {100, 1 * MB, 120000}, {100, 1 * MB, 240000}, {100, 1 * MB, 480000},
        {100, 1 * MB, 960000}, {100, 1 * MB, FULL}, /* never past free */
    };
    run(10000, p, G_N_ELEMENTS(p));
}

static void test_rate_changes(void **state)
{
    /* the guest speeds up, then calms down, mid-way */
    static const Period p[] = {
        {50, 50 * MB, FULL},   {50, 200 * MB, 225000}, {50, 45 * MB, 225000},
        {50, 400 * MB, 25312}, {50, 45 * MB, 25312},   {50, 10 * MB, 50624},
        {50, 10 * MB, 101248}, {50, 30 * MB, 151872},  {50, 40 * MB, 151872},
    };
    run(FULL, p, G_N_ELEMENTS(p));
}

static void test_cancelled(void **state)
{
    static const Period p[] = {
        {100, 1000 * MB, 90000},
        {0, 1000 * MB, FULL}, /* cancelled: free at once */
        {0, 0, FULL},
    };
    run(FULL, p, G_N_ELEMENTS(p));
}

static void test_out_of_range_inputs(void **state)
{
    /* a share outside the range is taken as its nearest bound */
    assert_int_equal(dirty_limit_step(0, 100, 150 * MB), DIRTY_LIMIT_RUN_MIN);
    assert_int_equal(dirty_limit_step(0, 100, 50 * MB), 1800);
    assert_int_equal(dirty_limit_step(FULL * 2, 100, 80 * MB), FULL);
    /* huge limits and rates do not overflow */
    assert_int_equal(dirty_limit_step(FULL, UINT64_MAX, UINT64_MAX / 2), FULL);
    assert_int_equal(dirty_limit_step(500000, UINT64_MAX, UINT64_MAX), 429153);
    assert_int_equal(dirty_limit_step(FULL, 1, UINT64_MAX),
                     DIRTY_LIMIT_RUN_MIN);
}

static void test_rate(void **state)
{
    /* 250 pages of 4096 bytes in 1 s = 1.024 MB/s */
    assert_int_equal(dirty_limit_rate_bps(250, 1000000), 1024000);
    assert_int_equal(dirty_limit_rate_bps(250, 500000), 2048000);
    assert_int_equal(dirty_limit_rate_bps(250, 0), 0);
    assert_int_equal(dirty_limit_rate_bps(0, 1000000), 0);
}

/*
 * Closed loop: a vCPU that would dirty `native` bytes/s running freely,
 * capped by its working set per period; within 8 periods its rate is at
 * or under the limit and above half of it (or the share at the floor), and
 * stays there; a limit under the floor's rate holds the floor.
 */
static void test_closed_loop(void **state)
{
    static const struct {
        uint64_t native, cap, limit_mbps;
    } cases[] = {
        {32000 * MB, 512 * MB, 1}, /* tcg-like, deep: floor-bound */
        {4000 * MB, 4000 * MB, 1},
        {32000 * MB, 512 * MB, 50},
        {400 * MB, 400 * MB, 100},
        {100 * MB, 100 * MB, 100}, /* never over: never throttled */
    };

    for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
        uint32_t share = FULL;
        uint64_t limit = cases[c].limit_mbps * MB;
        uint64_t floor_rate = cases[c].native / (FULL / DIRTY_LIMIT_RUN_MIN);

        for (int i = 0; i < 40; i++) {
            uint64_t rate = MIN(cases[c].native / FULL * share, cases[c].cap);
            if (i >= 8 && share != DIRTY_LIMIT_RUN_MIN &&
                (rate > limit || rate < limit / 2)) {
                fail_msg("case %zu period %d: rate %" G_GUINT64_FORMAT
                         " at share %u for a limit of %" G_GUINT64_FORMAT,
                         c, i, rate, share, limit);
            }
            if (i >= 8 && floor_rate > limit && share != DIRTY_LIMIT_RUN_MIN) {
                fail_msg("case %zu period %d: share %u, want the floor", c, i,
                         share);
            }
            share = dirty_limit_step(share, cases[c].limit_mbps, rate);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_far_above),
        cmocka_unit_test(test_near_limit),
        cmocka_unit_test(test_unthrottled_under_limit),
        cmocka_unit_test(test_overshoot_eases),
        cmocka_unit_test(test_rate_changes),
        cmocka_unit_test(test_cancelled),
        cmocka_unit_test(test_out_of_range_inputs),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_closed_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
