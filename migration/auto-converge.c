/*
 * The auto-converge policy (see auto-converge.h). No state but the
 * caller's, no globals.
 */
#include "auto-converge.h"

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

int auto_converge_step(AutoConvergeState *st, const AutoConvergeParams *p,
                       int current_pct, uint64_t bytes_dirty_period,
                       uint64_t bytes_xfer_period)
{
    uint64_t dirty_threshold = bytes_xfer_period * p->threshold / 100;
    int inc;

    if (bytes_dirty_period <= dirty_threshold ||
        ++st->dirty_rate_high_cnt < 2) {
        return current_pct;
    }
    st->dirty_rate_high_cnt = 0;
    if (current_pct <= 0) {
        return min_int((int)p->initial, (int)p->max);
    }
    inc = (int)p->increment;
    if (p->tailslow) {
        /*
         * The share of CPU the guest would need to dirty no more than the
         * threshold: step at most that far.
         */
        double cpu_now = 100 - current_pct;
        double cpu_ideal = cpu_now * ((double)dirty_threshold /
                                      (double)bytes_dirty_period);
        inc = min_int((int)(cpu_now - cpu_ideal), inc);
    }
    return min_int(current_pct + inc, (int)p->max);
}
