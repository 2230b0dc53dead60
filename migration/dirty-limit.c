/*
 * The dirty-limit policy (see dirty-limit.h). No state but the caller's,
 * no globals.
 */
#include "dirty-limit.h"

#include "godwit/ramblock.h"

static uint64_t clamp_run(uint64_t run)
{
    if (run < DIRTY_LIMIT_RUN_MIN) {
        return DIRTY_LIMIT_RUN_MIN;
    }
    return run > DIRTY_LIMIT_RUN_FULL ? DIRTY_LIMIT_RUN_FULL : run;
}

uint32_t dirty_limit_step(uint32_t run_ppm, uint64_t limit_mbps,
                          uint64_t rate_bps)
{
    uint64_t run = clamp_run(run_ppm);
    uint64_t limit_bps, aim_bps;

    if (limit_mbps == 0) {
        return DIRTY_LIMIT_RUN_FULL;
    }
    /* no overflow: a limit past 2^44 MB/s is no limit at all */
    if (limit_mbps > (UINT64_C(1) << 44)) {
        limit_mbps = UINT64_C(1) << 44;
    }
    limit_bps = limit_mbps * 1000000;
    aim_bps = limit_bps / 100 * DIRTY_LIMIT_AIM_PCT;
    if (rate_bps > limit_bps) {
        /* run * aim / rate, in 128 bits: run < 2^20, aim < 2^64 */
        return clamp_run(
            (uint64_t)((unsigned __int128)run * aim_bps / rate_bps));
    }
    if (run >= DIRTY_LIMIT_RUN_FULL ||
        rate_bps >= limit_bps / 100 * DIRTY_LIMIT_EASE_PCT) {
        return run;
    }
    if (rate_bps == 0 ||
        (unsigned __int128)rate_bps * DIRTY_LIMIT_EASE_MAX <= aim_bps) {
        return clamp_run(run * DIRTY_LIMIT_EASE_MAX);
    }
    return clamp_run((uint64_t)((unsigned __int128)run * aim_bps / rate_bps));
}

uint64_t dirty_limit_rate_bps(uint64_t pages, int64_t us)
{
    if (us <= 0) {
        return 0;
    }
    return (uint64_t)((unsigned __int128)pages * GW_PAGE_SIZE * 1000000 /
                      (uint64_t)us);
}
