/*
 * The auto-converge policy, QEMU's, as a pure function of one sync
 * period's figures (unit-tested with a table in test-auto-converge.c).
 *
 * At a bitmap sync that closes a period of at least one second: if the
 * bytes dirtied in the period exceed throttle-trigger-threshold % of the
 * bytes transferred in it, a counter goes up; when it reaches 2 (as in
 * QEMU, calm periods in between do not reset it) the counter resets and
 * the throttle moves: to cpu-throttle-initial if it was off, else up by
 * cpu-throttle-increment -- with cpu-throttle-tailslow, by no more than
 * what would bring the dirty rate down to the threshold -- and never above
 * max-cpu-throttle.
 */
#ifndef MIGRATION_AUTO_CONVERGE_H
#define MIGRATION_AUTO_CONVERGE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct AutoConvergeParams {
    unsigned threshold; /* throttle-trigger-threshold, % */
    unsigned initial;   /* cpu-throttle-initial, % */
    unsigned increment; /* cpu-throttle-increment, % */
    unsigned max;       /* max-cpu-throttle, % */
    bool tailslow;      /* cpu-throttle-tailslow */
} AutoConvergeParams;

typedef struct AutoConvergeState {
    unsigned dirty_rate_high_cnt;
} AutoConvergeState;

/*
 * One period: returns the throttle percentage to apply (current_pct when
 * nothing changes, 0 = off).
 */
int auto_converge_step(AutoConvergeState *st, const AutoConvergeParams *p,
                       int current_pct, uint64_t bytes_dirty_period,
                       uint64_t bytes_xfer_period);

#endif /* MIGRATION_AUTO_CONVERGE_H */
