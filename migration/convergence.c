/*
 * The switchover policy (see convergence.h).
 */
#include "convergence.h"

uint64_t migration_threshold_bytes(uint64_t bandwidth_bps,
                                   uint64_t avail_switchover_bps,
                                   uint64_t downtime_limit_ms)
{
    uint64_t bps = avail_switchover_bps ? avail_switchover_bps : bandwidth_bps;

    /* bps * ms / 1000, without overflow for any realistic figure */
    if (downtime_limit_ms && bps > UINT64_MAX / downtime_limit_ms) {
        return UINT64_MAX;
    }
    return bps * downtime_limit_ms / 1000;
}

bool migration_can_switchover(uint64_t pending_bytes, uint64_t threshold)
{
    return pending_bytes <= threshold;
}

int64_t migration_expected_downtime_ms(uint64_t pending_bytes,
                                       uint64_t bandwidth_bps)
{
    if (!bandwidth_bps) {
        return -1;
    }
    return (int64_t)(pending_bytes * 1000.0 / (double)bandwidth_bps);
}

uint64_t migration_bandwidth_bps(uint64_t bytes, int64_t window_us)
{
    if (window_us <= 0) {
        return 0;
    }
    return (uint64_t)(bytes * 1000000.0 / (double)window_us);
}
