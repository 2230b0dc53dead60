/*
 * The run lock of the tcg accelerator: one engine runs guest code at a
 * time, and they take turns, like QEMU's single-threaded round-robin TCG.
 *
 * Why: Unicorn's locked instructions are atomic only within one engine;
 * two engines running at once can both win a guest spinlock. Holding this
 * lock while an engine runs makes every guest instruction atomic with
 * respect to the other vCPUs.
 *
 * Fairness: a ticket lock, so the lock goes to the longest waiter. A
 * vCPU gives the lock up whenever it leaves its engine (port I/O, hlt,
 * pause, throttle); one that runs on without leaving (a guest spinning on
 * a lock another vCPU holds) is asked to leave by a waiter once the waiter
 * has waited a time slice: the waiter sets the holder's `leave` flag,
 * which the holder's block hook sees at its next block boundary.
 */
#include "tcg-int.h"

/* How long a waiter lets the holder run before asking it to yield. */
#define TCG_SLICE_US 2000

static struct {
    GMutex lock;
    GCond cond;
    uint64_t next_ticket; /* the ticket the next arrival takes */
    uint64_t serving;     /* the ticket that may run */
    CPUState *holder;
    int last; /* index of the last holder, -1 none (+1 stored) */
} sched;

void tcg_sched_init(void)
{
    /* statically zeroed GMutex/GCond need no init; nothing to do */
}

void tcg_sched_acquire(CPUState *cpu)
{
    uint64_t ticket;
    int64_t deadline;

    g_mutex_lock(&sched.lock);
    ticket = sched.next_ticket++;
    deadline = g_get_monotonic_time() + TCG_SLICE_US;
    while (sched.serving != ticket) {
        if (!g_cond_wait_until(&sched.cond, &sched.lock, deadline)) {
            /* the holder had its slice: ask it to leave its engine */
            if (sched.holder) {
                atomic_store(&tcg_cpu(sched.holder)->leave, true);
            }
            deadline = g_get_monotonic_time() + TCG_SLICE_US;
        }
    }
    sched.holder = cpu;
    int prev = sched.last - 1;
    sched.last = cpu->index + 1;
    g_mutex_unlock(&sched.lock);
    if (prev != cpu->index) {
        /* no engine runs: what was written since is the previous one's */
        tcg_vcpu_dirty_switch(cpu);
    }
}

int tcg_sched_last_holder(void)
{
    int last;

    g_mutex_lock(&sched.lock);
    last = sched.last - 1;
    g_mutex_unlock(&sched.lock);
    return last;
}

void tcg_sched_release(CPUState *cpu)
{
    g_mutex_lock(&sched.lock);
    g_assert(sched.holder == cpu);
    sched.holder = NULL;
    sched.serving++;
    g_cond_broadcast(&sched.cond);
    g_mutex_unlock(&sched.lock);
}
