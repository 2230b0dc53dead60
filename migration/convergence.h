/*
 * When to switch over: pure functions of the measured figures, so the
 * policy is documented in one place and unit-tested alone.
 *
 * As QEMU: the bandwidth of the last window (or avail-switchover-bandwidth
 * when the operator set it) times downtime-limit is the amount of data
 * that can be sent while the guest is stopped; once no more than that is
 * left, switch over. Before the first window is measured the threshold is
 * 0: only a migration with nothing left switches over.
 */
#ifndef MIGRATION_CONVERGENCE_H
#define MIGRATION_CONVERGENCE_H

#include <stdbool.h>
#include <stdint.h>

/* Bytes that fit in the allowed downtime. */
uint64_t migration_threshold_bytes(uint64_t bandwidth_bps,
                                   uint64_t avail_switchover_bps,
                                   uint64_t downtime_limit_ms);

/* Switch over when what is left fits in the threshold. */
bool migration_can_switchover(uint64_t pending_bytes, uint64_t threshold);

/* Expected downtime in ms for `pending` bytes, -1 while unknown. */
int64_t migration_expected_downtime_ms(uint64_t pending_bytes,
                                       uint64_t bandwidth_bps);

/* Bytes/s over a window; 0 if the window is empty. */
uint64_t migration_bandwidth_bps(uint64_t bytes, int64_t window_us);

#endif /* MIGRATION_CONVERGENCE_H */
