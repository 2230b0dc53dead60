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
 *
 * x-throttle-policy=aim (godwit's, opt-in) aims instead: see
 * auto_converge_aim() below.
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

/*
 * The aiming policy. At every period (no two-strike counter) it sets the
 * throttle that should bring the next period's dirtied bytes to
 * AIM_MARGIN of throttle-trigger-threshold % of the bytes sent.
 *
 * Model: the dirty rate goes as r^alpha, r = 1 - throttle/100 the share
 * of time the vCPUs run. alpha = 1 is a guest whose writes scale with its
 * run time. Less than 1 is the usual case while dirty logging: the first
 * write to each page after a sync faults, and a guest that rewrites its
 * working set within a period dirties all of it at any throttle short of
 * the last few %, so throttling helps far less than linearly. alpha is
 * measured from the last two periods (what the last setting actually
 * achieved: the change of dirty rate over the change of r), clamped to
 * [AIM_ALPHA_MIN, 1]. The first step assumes 1, unless the period
 * dirtied again what it sent, no more and no less (within AIM_CENSORED):
 * the signature of a guest that rewrites its working set, maybe many
 * times per period. Its rate is then only known to be at least that, and
 * the first step assumes AIM_ALPHA_MIN. (A guest dirtying more than was
 * sent shows its rate; one dirtying less is below it.)
 *
 * Then q = dirtied / aim, and:
 *   q > 1            r' = r * q^(-1/alpha)  (throttle harder)
 *   q < AIM_RELEASE  r' = min(r * q^(-1/alpha), 2r, 1): overshot, so the
 *                    throttle comes down, the run share at most doubling
 *                    per period (a lull in the guest is not trusted more)
 *   otherwise        unchanged (in the band: the migration converges)
 * The result is clamped to max-cpu-throttle; below 1 % the throttle is
 * off. cpu-throttle-initial, -increment and -tailslow are QEMU's steps,
 * which this policy does not take.
 */
#define AIM_MARGIN 0.8
#define AIM_RELEASE 0.5
#define AIM_ALPHA_MIN 0.25
#define AIM_CENSORED 0.95

typedef struct AutoConvergeAim {
    double alpha;     /* measured exponent; 0 = not measured yet */
    double last_r;    /* run share during the previous period */
    double last_rate; /* dirtied bytes/s in the previous period */
    bool have_last;   /* last_r and last_rate are valid */
} AutoConvergeAim;

/*
 * One period of period_us: returns the throttle percentage to apply
 * (current_pct when nothing changes, 0 = off).
 */
int auto_converge_aim(AutoConvergeAim *st, const AutoConvergeParams *p,
                      int current_pct, uint64_t bytes_dirty_period,
                      uint64_t bytes_xfer_period, uint64_t period_us);

#endif /* MIGRATION_AUTO_CONVERGE_H */
