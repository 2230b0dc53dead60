/*
 * The auto-converge policy (see auto-converge.h). No state but the
 * caller's, no globals.
 */
#include <math.h>

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
        double cpu_ideal =
            cpu_now * ((double)dirty_threshold / (double)bytes_dirty_period);
        inc = min_int((int)(cpu_now - cpu_ideal), inc);
    }
    return min_int(current_pct + inc, (int)p->max);
}

/*
 * The measured exponent, or the last one when r hardly moved; before any
 * measurement, 1 or (for a censored rate) AIM_ALPHA_MIN.
 */
static double aim_alpha(AutoConvergeAim *st, double r, double rate,
                        bool censored)
{
    double prior = st->alpha > 0 ? st->alpha : (censored ? AIM_ALPHA_MIN : 1.0);
    double dr, alpha;

    if (!st->have_last || st->last_rate <= 0 || rate <= 0) {
        return prior;
    }
    dr = log(r / st->last_r);
    if (fabs(dr) < 0.05) {
        return prior;
    }
    /* a rate that moved against the throttle counts as "no effect" */
    alpha = log(rate / st->last_rate) / dr;
    st->alpha = fmin(fmax(alpha, AIM_ALPHA_MIN), 1.0);
    return st->alpha;
}

int auto_converge_aim(AutoConvergeAim *st, const AutoConvergeParams *p,
                      int current_pct, uint64_t bytes_dirty_period,
                      uint64_t bytes_xfer_period, uint64_t period_us)
{
    double r = 1.0 - (current_pct > 0 ? current_pct : 0) / 100.0;
    double rate = period_us ? bytes_dirty_period * 1e6 / period_us : 0;
    double aim = bytes_xfer_period * (p->threshold / 100.0) * AIM_MARGIN;
    bool censored =
        bytes_dirty_period >= AIM_CENSORED * bytes_xfer_period &&
        bytes_dirty_period * AIM_CENSORED <= bytes_xfer_period;
    double alpha = aim_alpha(st, r, rate, censored);
    double q, r_next;
    int pct;

    st->last_r = r;
    st->last_rate = rate;
    st->have_last = true;
    if (current_pct <= 0 &&
        bytes_dirty_period <= bytes_xfer_period * p->threshold / 100) {
        return 0; /* QEMU's trigger: not above the threshold */
    }
    if (aim <= 0) {
        /* nothing went out: nothing to aim at; keep what we have */
        return current_pct > 0 ? current_pct : 0;
    }
    q = bytes_dirty_period / aim;
    if (q > 1.0) {
        r_next = r * pow(q, -1.0 / alpha);
    } else if (q < AIM_RELEASE) {
        r_next = q > 0 ? r * pow(q, -1.0 / alpha) : 1.0;
        r_next = fmin(fmin(r_next, 2 * r), 1.0);
    } else {
        return current_pct > 0 ? current_pct : 0;
    }
    pct = (int)lround(100.0 * (1.0 - r_next));
    if (pct < 1) {
        return 0;
    }
    return min_int(pct, (int)p->max);
}
