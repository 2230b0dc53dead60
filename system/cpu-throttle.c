/*
 * vCPU throttling (include/godwit/cpu-throttle.h): the ticking thread.
 * Each tick hands every running vCPU the sleep of one time slice and kicks
 * it; the vCPU sleeps in cpus.c at its next safe point.
 */
#include <stdatomic.h>

#include "godwit/cpu-throttle.h"
#include "godwit/cpus.h"
#include "godwit/machine.h"

static struct {
    Machine *m;
    GThread *thread;
    GMutex lock; /* protects pct changes and quit, with cond */
    GCond cond;
    atomic_int pct;
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

static gpointer throttle_thread(gpointer opaque)
{
    int64_t next = 0; /* the next tick (monotonic µs), on a fixed grid */
    int last_pct = 0;

    g_mutex_lock(&throttle.lock);
    while (!throttle.quit) {
        int pct = atomic_load(&throttle.pct);
        if (pct == 0) {
            last_pct = 0;
            g_cond_wait(&throttle.cond, &throttle.lock);
            continue;
        }
        /* one period = a slice of running plus the sleep */
        int64_t sleep_us = cpu_throttle_sleep_ns(pct) / 1000;
        int64_t period_us = CPU_THROTTLE_TIMESLICE_NS / 1000 + sleep_us;
        int64_t now = g_get_monotonic_time();
        if (pct != last_pct || next < now - period_us) {
            /* a new setting, or a tick missed: a fresh grid */
            next = now + period_us;
            last_pct = pct;
        }
        if (g_cond_wait_until(&throttle.cond, &throttle.lock, next) ||
            throttle.quit || atomic_load(&throttle.pct) != pct) {
            continue; /* woken early: the setting changed */
        }
        int64_t tick = next;
        next += period_us;
        g_mutex_unlock(&throttle.lock);
        for (int i = 0; i < throttle.m->smp; i++) {
            CPUState *cpu = throttle.m->cpus[i];
            atomic_store(&cpu->throttle_until, tick + sleep_us);
            cpu_kick(cpu);
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
}

void cpu_throttle_set(int pct)
{
    pct = pct <= 0 ? 0 : CLAMP(pct, CPU_THROTTLE_PCT_MIN, CPU_THROTTLE_PCT_MAX);
    g_mutex_lock(&throttle.lock);
    atomic_store(&throttle.pct, pct);
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
