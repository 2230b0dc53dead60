/*
 * vCPU threads and the protocol around them: pause/resume of all vCPUs,
 * tasks run in a vCPU's own thread, idle waits, kicks.
 *
 * One mutex (cpus_mutex) protects the "protected by the cpus lock" fields
 * of every CPUState. A vCPU thread only sleeps in cpu_handle_pause() (safe
 * point: stopped) or cpu_idle_wait() (inside an exit handler, not stopped).
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "godwit/cpu-throttle.h"
#include "godwit/cpus.h"
#include "godwit/machine.h"

static GMutex cpus_mutex;
static GCond pause_cond; /* a vCPU became stopped */
static GCond task_cond;  /* a task completed */
static __thread CPUState *tls_current_cpu;

void cpus_lock(void)
{
    g_mutex_lock(&cpus_mutex);
}

void cpus_unlock(void)
{
    g_mutex_unlock(&cpus_mutex);
}

CPUState *current_cpu(void)
{
    return tls_current_cpu;
}

void cpu_set_current(CPUState *cpu)
{
    tls_current_cpu = cpu;
}

CPUState **cpus_new(Machine *m, int n)
{
    CPUState **cpus = g_new0(CPUState *, n);

    for (int i = 0; i < n; i++) {
        CPUState *cpu = g_new0(CPUState, 1);
        cpu->machine = m;
        cpu->index = i;
        cpu->started = (i == 0);
        /* true only once its thread sits in cpu_handle_pause() */
        cpu->stopped = false;
        atomic_init(&cpu->stop, true);
        atomic_init(&cpu->exit, false);
        atomic_init(&cpu->thread_id, 0);
        atomic_init(&cpu->throttle_until, 0);
        g_cond_init(&cpu->cond);
        cpus[i] = cpu;
    }
    return cpus;
}

void cpus_free(CPUState **cpus, int n)
{
    if (!cpus) {
        return;
    }
    for (int i = 0; i < n; i++) {
        g_assert(!cpus[i]->thread_started);
        g_cond_clear(&cpus[i]->cond);
        g_free(cpus[i]);
    }
    g_free(cpus);
}

void cpu_kick(CPUState *cpu)
{
    const AccelOps *ops = cpu->machine->accel;

    if (ops && cpu->accel) {
        ops->kick(cpu);
    }
    cpus_lock();
    g_cond_broadcast(&cpu->cond);
    cpus_unlock();
}

bool cpus_start_threads(Machine *m, CPUThreadFunc fn, GError **errp)
{
    for (int i = 0; i < m->smp; i++) {
        CPUState *cpu = m->cpus[i];
        int err;

        atomic_store(&cpu->stop, true);
        atomic_store(&cpu->exit, false);
        err = pthread_create(&cpu->thread, NULL, fn, cpu);
        if (err) {
            gw_error_errno(errp, err, "cannot create the thread of vCPU %d",
                           i);
            cpus_join_threads(m);
            return false;
        }
        cpu->thread_started = true;
    }
    return true;
}

void cpus_join_threads(Machine *m)
{
    for (int i = 0; i < m->smp; i++) {
        CPUState *cpu = m->cpus[i];
        if (cpu->thread_started) {
            atomic_store(&cpu->exit, true);
            cpu_kick(cpu);
        }
    }
    for (int i = 0; i < m->smp; i++) {
        CPUState *cpu = m->cpus[i];
        if (cpu->thread_started) {
            pthread_join(cpu->thread, NULL);
            cpu->thread_started = false;
            atomic_store(&cpu->thread_id, 0);
        }
    }
}

bool all_vcpus_paused(Machine *m)
{
    bool all = true;

    cpus_lock();
    for (int i = 0; i < m->smp; i++) {
        all &= m->cpus[i]->stopped;
    }
    cpus_unlock();
    return all;
}

void pause_all_vcpus(Machine *m)
{
    g_assert(!current_cpu());
    for (int i = 0; i < m->smp; i++) {
        atomic_store(&m->cpus[i]->stop, true);
        cpu_kick(m->cpus[i]);
    }
    cpus_lock();
    for (;;) {
        bool all = true;
        for (int i = 0; i < m->smp; i++) {
            /* A vCPU whose thread ended counts as stopped. */
            all &= m->cpus[i]->stopped || !m->cpus[i]->thread_started;
        }
        if (all) {
            break;
        }
        g_cond_wait(&pause_cond, &cpus_mutex);
    }
    cpus_unlock();
}

void resume_all_vcpus(Machine *m)
{
    cpus_lock();
    for (int i = 0; i < m->smp; i++) {
        atomic_store(&m->cpus[i]->stop, false);
        g_cond_broadcast(&m->cpus[i]->cond);
    }
    cpus_unlock();
}

void run_on_cpu(CPUState *cpu, CPUTaskFunc func, void *data)
{
    CPUTask task = {.func = func, .data = data};
    CPUTask **tail;

    g_assert(current_cpu() != cpu);
    g_assert(cpu->thread_started);
    cpus_lock();
    for (tail = &cpu->tasks; *tail; tail = &(*tail)->next) {
    }
    *tail = &task;
    cpus_unlock();
    cpu_kick(cpu);

    cpus_lock();
    while (!task.done) {
        g_cond_wait(&task_cond, &cpus_mutex);
    }
    cpus_unlock();
}

/* Runs queued tasks; called with the lock held, drops it around each. */
static void run_tasks_locked(CPUState *cpu)
{
    while (cpu->tasks) {
        CPUTask *t = cpu->tasks;
        cpu->tasks = t->next;
        cpus_unlock();
        t->func(cpu, t->data);
        cpus_lock();
        t->done = true;
        g_cond_broadcast(&task_cond);
    }
}

bool cpu_should_leave(CPUState *cpu)
{
    /* Racy reads are fine: a kick follows every change. */
    return atomic_load(&cpu->stop) || atomic_load(&cpu->exit) ||
           __atomic_load_n(&cpu->tasks, __ATOMIC_ACQUIRE) != NULL ||
           atomic_load(&cpu->throttle_until) > 0;
}

/*
 * Sleeps until the time the throttle asked, with the lock held (dropped
 * while waiting); a pause, exit or task request cuts the sleep short.
 * The end is absolute (the tick's time plus the sleep), so the time taken
 * to leave the guest counts as sleep; and the wake-up comes early by the
 * average lateness of earlier wake-ups, which on a busy or nested host is
 * a sizeable part of a 10 ms slice.
 */
static void cpu_throttle_sleep_locked(CPUState *cpu)
{
    int64_t until = atomic_exchange(&cpu->throttle_until, 0);
    int64_t deadline = until - cpu->throttle_late_us;
    uint64_t seq = cpu->wake_seq; /* cpu_throttle_stop() wakes us */
    bool timed_out = false;
    int64_t start = g_get_monotonic_time();

    if (start >= deadline) {
        return; /* leaving the guest took the whole sleep */
    }
    while (until > 0 && !atomic_load(&cpu->stop) &&
           !atomic_load(&cpu->exit) && !cpu->tasks &&
           cpu->wake_seq == seq) {
        if (!g_cond_wait_until(&cpu->cond, &cpus_mutex, deadline)) {
            timed_out = true;
            break;
        }
    }
    if (timed_out) {
        /* lateness against the real end; an early wake-up counts < 0 */
        int64_t late = g_get_monotonic_time() - until;
        cpu->throttle_late_us = CLAMP(cpu->throttle_late_us + late / 8, 0,
                                      2000);
    }
    cpu_throttle_note_stall(g_get_monotonic_time() - start);
}

bool cpu_handle_pause(CPUState *cpu)
{
    cpus_lock();
    for (;;) {
        run_tasks_locked(cpu);
        if (atomic_load(&cpu->exit)) {
            cpu->stopped = true;
            g_cond_broadcast(&pause_cond);
            cpus_unlock();
            return false;
        }
        if (!atomic_load(&cpu->stop) && cpu->started) {
            if (atomic_load(&cpu->throttle_until) > 0) {
                cpu_throttle_sleep_locked(cpu);
                continue;
            }
            break;
        }
        if (!cpu->stopped) {
            cpu->stopped = true;
            g_cond_broadcast(&pause_cond);
        }
        g_cond_wait(&cpu->cond, &cpus_mutex);
    }
    cpu->stopped = false;
    cpus_unlock();
    return true;
}

uint64_t cpu_wake_seq(CPUState *cpu)
{
    uint64_t seq;

    cpus_lock();
    seq = cpu->wake_seq;
    cpus_unlock();
    return seq;
}

void cpu_wake(CPUState *cpu)
{
    cpus_lock();
    cpu->wake_seq++;
    g_cond_broadcast(&cpu->cond);
    cpus_unlock();
}

void cpus_wake_all(Machine *m)
{
    for (int i = 0; i < m->smp; i++) {
        cpu_wake(m->cpus[i]);
    }
}

bool cpu_idle_wait(CPUState *cpu, uint64_t seq, int64_t deadline_us)
{
    bool woken = true;

    cpus_lock();
    while (cpu->wake_seq == seq && !cpu_should_leave(cpu)) {
        if (deadline_us == INT64_MAX) {
            g_cond_wait(&cpu->cond, &cpus_mutex);
        } else if (!g_cond_wait_until(&cpu->cond, &cpus_mutex,
                                      deadline_us)) {
            woken = g_get_monotonic_time() < deadline_us;
            if (!woken) {
                break;
            }
        }
    }
    cpus_unlock();
    return woken;
}
