/*
 * vCPU throttling (include/godwit/cpu-throttle.h): the ticking thread.
 * Each tick hands a vCPU the sleep of one time slice and kicks it; the
 * vCPU sleeps in cpus.c at its next safe point.
 *
 * Each vCPU has a grid of its own (tick n at t0 + n x its period), so a
 * vCPU held back by dirty-limit ticks on its own schedule; with only the
 * global percentage set, every vCPU has the same sleep and the same grid,
 * and the thread behaves as when it had one grid for all.
 */
#include <stdatomic.h>

#include "godwit/cpu-throttle.h"
#include "godwit/cpus.h"
#include "godwit/machine.h"

static struct {
    Machine *m; /* set by init */
    GThread *thread;
    GMutex lock; /* protects changes, gen and quit, with cond */
    GCond cond;
    atomic_int pct; /* the global percentage (auto-converge) */
    /* per vCPU: share of wall time it may run, in millionths (dirty-limit) */
    _Atomic uint32_t *run_ppm;
    uint64_t gen; /* bumped by every change: the thread recomputes */
    bool quit;
    /* the stall figures, any thread */
    _Atomic int64_t stall_max_us;
    _Atomic int64_t stall_total_us;
    atomic_ullong stall_sleeps;
} throttle;

int64_t cpu_throttle_sleep_ns(int pct)
{
    if (pct <= 0) {
        return 0;
    }
    return CPU_THROTTLE_TIMESLICE_NS * pct / (100 - pct);
}

void cpu_throttle_run_share_slice(uint32_t run_ppm, int64_t *slice_ns,
                                  int64_t *sleep_ns)
{
    int64_t run =
        CLAMP(run_ppm, CPU_THROTTLE_RUN_PPM_MIN, CPU_THROTTLE_RUN_PPM_FULL);

    if (run >= CPU_THROTTLE_RUN_PPM_FULL) {
        *slice_ns = CPU_THROTTLE_TIMESLICE_NS;
        *sleep_ns = 0;
    } else if (run * CPU_THROTTLE_DEEP_PERIOD_NS >=
               CPU_THROTTLE_TIMESLICE_NS * CPU_THROTTLE_RUN_PPM_FULL) {
        /* QEMU's shape: a 10 ms slice, then the sleep (period <= DEEP) */
        *slice_ns = CPU_THROTTLE_TIMESLICE_NS;
        *sleep_ns =
            CPU_THROTTLE_TIMESLICE_NS * (CPU_THROTTLE_RUN_PPM_FULL - run) / run;
    } else {
        /* deeper: periods of DEEP_PERIOD, of which it runs run ppm */
        *slice_ns =
            CPU_THROTTLE_DEEP_PERIOD_NS * run / CPU_THROTTLE_RUN_PPM_FULL;
        *sleep_ns = CPU_THROTTLE_DEEP_PERIOD_NS - *slice_ns;
    }
}

/*
 * vCPU i's slice and sleep (µs): the tighter of the two settings. Returns
 * true when its own run share (dirty-limit) is the tighter one.
 */
static bool throttle_vcpu_period(int i, int pct, int64_t *slice_us,
                                 int64_t *sleep_us)
{
    uint32_t run = atomic_load(&throttle.run_ppm[i]);
    int64_t slice_ns = CPU_THROTTLE_TIMESLICE_NS, sleep_ns = 0;

    if (pct > 0) {
        sleep_ns = cpu_throttle_sleep_ns(pct);
    }
    if (run < CPU_THROTTLE_RUN_PPM_FULL &&
        (pct <= 0 ||
         run < (uint32_t)(100 - pct) * (CPU_THROTTLE_RUN_PPM_FULL / 100))) {
        cpu_throttle_run_share_slice(run, &slice_ns, &sleep_ns);
        *slice_us = slice_ns / 1000;
        *sleep_us = sleep_ns / 1000;
        return true;
    }
    *slice_us = slice_ns / 1000;
    *sleep_us = sleep_ns / 1000;
    return false;
}

/*
 * Sets each throttled vCPU's grid (a fresh one where its sleep changed or
 * a tick was missed) and returns the earliest tick, INT64_MAX for none.
 */
static int64_t throttle_plan(int64_t *next, int64_t *period, int64_t *sleep,
                             int64_t now)
{
    int pct = atomic_load(&throttle.pct);
    int64_t wake = INT64_MAX;

    for (int i = 0; i < throttle.m->smp; i++) {
        int64_t slice_us, sleep_us;
        bool own = throttle_vcpu_period(i, pct, &slice_us, &sleep_us);

        if (sleep_us == 0) {
            sleep[i] = 0;
            continue;
        }
        /*
         * One period = a slice of running plus the sleep. A fresh global
         * grid starts a whole period ahead (as it always did); a vCPU's
         * own one sleeps after its first slice, so that a deep limit,
         * adjusted every controller period, never lets it run free for
         * a long period in between.
         */
        if (sleep_us != sleep[i] || next[i] < now - (slice_us + sleep_us)) {
            next[i] = now + slice_us + (own ? 0 : sleep_us);
            sleep[i] = sleep_us;
        }
        period[i] = slice_us + sleep_us;
        wake = MIN(wake, next[i]);
    }
    return wake;
}

static gpointer throttle_thread(gpointer opaque)
{
    int n = throttle.m->smp;
    g_autofree int64_t *next = g_new0(int64_t, n);   /* monotonic µs */
    g_autofree int64_t *period = g_new0(int64_t, n); /* µs */
    g_autofree int64_t *sleep = g_new0(int64_t, n);  /* µs, 0 = none */
    g_autofree int64_t *until = g_new0(int64_t, n);  /* this tick's */

    g_mutex_lock(&throttle.lock);
    while (!throttle.quit) {
        uint64_t gen = throttle.gen;
        int64_t wake =
            throttle_plan(next, period, sleep, g_get_monotonic_time());

        if (wake == INT64_MAX) {
            g_cond_wait(&throttle.cond, &throttle.lock);
            continue;
        }
        if (g_cond_wait_until(&throttle.cond, &throttle.lock, wake) ||
            throttle.quit || throttle.gen != gen) {
            continue; /* woken early: a setting changed */
        }
        for (int i = 0; i < n; i++) {
            until[i] = 0;
            if (sleep[i] && next[i] <= wake) {
                until[i] = next[i] + sleep[i];
                next[i] += period[i];
            }
        }
        g_mutex_unlock(&throttle.lock);
        for (int i = 0; i < n; i++) {
            if (until[i]) {
                CPUState *cpu = throttle.m->cpus[i];
                atomic_store(&cpu->throttle_until, until[i]);
                cpu_kick(cpu);
            }
        }
        g_mutex_lock(&throttle.lock);
    }
    g_mutex_unlock(&throttle.lock);
    return NULL;
}

void cpu_throttle_init(Machine *m)
{
    throttle.m = m;
    throttle.quit = false;
    atomic_store(&throttle.pct, 0);
    throttle.run_ppm = g_new(_Atomic uint32_t, m->smp);
    for (int i = 0; i < m->smp; i++) {
        atomic_init(&throttle.run_ppm[i], CPU_THROTTLE_RUN_PPM_FULL);
    }
    throttle.thread = g_thread_new("vcpu-throttle", throttle_thread, NULL);
}

void cpu_throttle_cleanup(void)
{
    if (!throttle.thread) {
        return;
    }
    g_mutex_lock(&throttle.lock);
    throttle.quit = true;
    g_cond_broadcast(&throttle.cond);
    g_mutex_unlock(&throttle.lock);
    g_thread_join(throttle.thread);
    throttle.thread = NULL;
    g_clear_pointer(&throttle.run_ppm, g_free);
}

void cpu_throttle_set(int pct)
{
    pct = pct <= 0 ? 0 : CLAMP(pct, CPU_THROTTLE_PCT_MIN, CPU_THROTTLE_PCT_MAX);
    g_mutex_lock(&throttle.lock);
    atomic_store(&throttle.pct, pct);
    throttle.gen++;
    g_cond_broadcast(&throttle.cond);
    g_mutex_unlock(&throttle.lock);
    if (pct == 0 && throttle.m) {
        /* removed at once: a vCPU asleep for the throttle wakes up */
        for (int i = 0; i < throttle.m->smp; i++) {
            atomic_store(&throttle.m->cpus[i]->throttle_until, 0);
            cpu_wake(throttle.m->cpus[i]);
        }
    }
}

void cpu_throttle_set_vcpu_run_share(int index, uint32_t run_ppm)
{
    if (!throttle.m || index < 0 || index >= throttle.m->smp) {
        return;
    }
    run_ppm =
        CLAMP(run_ppm, CPU_THROTTLE_RUN_PPM_MIN, CPU_THROTTLE_RUN_PPM_FULL);
    g_mutex_lock(&throttle.lock);
    uint32_t old = atomic_exchange(&throttle.run_ppm[index], run_ppm);
    throttle.gen++;
    g_cond_broadcast(&throttle.cond);
    g_mutex_unlock(&throttle.lock);
    if (run_ppm > old && atomic_load(&throttle.pct) == 0) {
        /* eased or removed: a long sleep owed under the old share ends */
        atomic_store(&throttle.m->cpus[index]->throttle_until, 0);
        cpu_wake(throttle.m->cpus[index]);
    }
}

uint32_t cpu_throttle_get_vcpu_run_share(int index)
{
    if (!throttle.m || index < 0 || index >= throttle.m->smp) {
        return CPU_THROTTLE_RUN_PPM_FULL;
    }
    return atomic_load(&throttle.run_ppm[index]);
}

void cpu_throttle_stop(void)
{
    cpu_throttle_set(0);
}

bool cpu_throttle_active(void)
{
    return atomic_load(&throttle.pct) > 0;
}

int cpu_throttle_get_percentage(void)
{
    return atomic_load(&throttle.pct);
}

void cpu_throttle_note_stall(int64_t us)
{
    int64_t max = atomic_load(&throttle.stall_max_us);

    while (us > max &&
           !atomic_compare_exchange_weak(&throttle.stall_max_us, &max, us)) {
    }
    atomic_fetch_add(&throttle.stall_total_us, us);
    atomic_fetch_add(&throttle.stall_sleeps, 1);
}

void cpu_throttle_stall_reset(void)
{
    atomic_store(&throttle.stall_max_us, 0);
    atomic_store(&throttle.stall_total_us, 0);
    atomic_store(&throttle.stall_sleeps, 0);
}

void cpu_throttle_stall_get(CpuThrottleStall *out)
{
    out->max_us = atomic_load(&throttle.stall_max_us);
    out->total_us = atomic_load(&throttle.stall_total_us);
    out->sleeps = atomic_load(&throttle.stall_sleeps);
}
