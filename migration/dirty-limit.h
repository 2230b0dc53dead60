/*
 * dirty-limit: keep each limited vCPU's dirty rate at or under its limit
 * by throttling that vCPU alone (QEMU 7.1's set-vcpu-dirty-limit, and
 * QEMU 8.1's migration capability dirty-limit).
 *
 * The policy is a pure function, table-tested in
 * tests/unit/test-dirty-limit.c; the controller thread, the commands and
 * the migration hooks are in dirty-limit-ctl.c.
 */
#ifndef MIGRATION_DIRTY_LIMIT_H
#define MIGRATION_DIRTY_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* A run share of 1000000 millionths: the vCPU runs freely. */
#define DIRTY_LIMIT_RUN_FULL 1000000u
/* ... and the deepest one the vCPU throttle gives (0.1 %). */
#define DIRTY_LIMIT_RUN_MIN 1000u
/* The rate a decrease aims at, in % of the limit (room for noise). */
#define DIRTY_LIMIT_AIM_PCT 90
/* Under this % of the limit, a throttled vCPU is eased. */
#define DIRTY_LIMIT_EASE_PCT 70
/* The most a share grows in one period (factor): eased gently. */
#define DIRTY_LIMIT_EASE_MAX 2

/*
 * One controller period of one vCPU: from its run share (millionths of
 * wall time it may run), its limit (MB/s, 10^6 bytes; 0 = cancelled) and
 * the rate it dirtied memory at in the period (bytes/s), the run share for
 * the next period:
 *   - cancelled: DIRTY_LIMIT_RUN_FULL;
 *   - over the limit: scaled down in one step to aim at
 *     DIRTY_LIMIT_AIM_PCT % of the limit (a vCPU's dirty rate is about
 *     proportional to the time it runs);
 *   - under DIRTY_LIMIT_EASE_PCT % of the limit while throttled: scaled up
 *     towards the aim, by at most DIRTY_LIMIT_EASE_MAX x (x2 when it
 *     dirtied nothing: it may be idle, or asleep for the whole period);
 *   - in between: unchanged.
 * Always within DIRTY_LIMIT_RUN_MIN..DIRTY_LIMIT_RUN_FULL.
 */
uint32_t dirty_limit_step(uint32_t run_ppm, uint64_t limit_mbps,
                          uint64_t rate_bps);

/* MB/s (10^6 bytes/s) from `pages` 4 KiB pages dirtied in `us` µs. */
uint64_t dirty_limit_rate_bps(uint64_t pages, int64_t us);

#endif /* MIGRATION_DIRTY_LIMIT_H */
