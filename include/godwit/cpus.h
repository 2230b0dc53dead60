/*
 * vCPUs as the rest of the VMM sees them: one thread each, paused and
 * resumed together, with small tasks run in a vCPU's own thread.
 *
 * The accelerator owns the loop inside the thread (KVM_RUN and the exit
 * switch); this interface owns the protocol around it (system/cpus.c):
 *
 *   pause:  the requester sets cpu->stop and kicks; the vCPU thread, at its
 *           next safe point (guest state consistent, no I/O half done),
 *           marks itself stopped and sleeps until resumed.
 *   tasks:  run_on_cpu() queues a function for that vCPU's thread and kicks
 *           it; the vCPU runs it at its next safe point, even while paused.
 *   idle:   hlt, the park and sleep hypercalls wait in cpu_idle_wait(),
 *           which returns on a deadline, a wake-up, a pause request or exit.
 */
#ifndef GODWIT_CPUS_H
#define GODWIT_CPUS_H

#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct Machine Machine;
typedef struct CPUState CPUState;

typedef void (*CPUTaskFunc)(CPUState *cpu, void *data);

typedef struct CPUTask {
    CPUTaskFunc func;
    void *data;
    bool done; /* protected by the cpus lock */
    struct CPUTask *next;
} CPUTask;

struct CPUState {
    /* Set at creation. */
    Machine *machine;
    int index;
    pthread_t thread;
    bool thread_started;
    void *accel; /* the accelerator's per-vCPU state (e.g. KVMCPU) */

    /* Written by other threads, read by the vCPU thread. */
    atomic_bool stop;     /* pause requested */
    atomic_bool exit;     /* the thread must end */
    atomic_int thread_id; /* Linux TID, 0 until the thread runs */
    /* monotonic µs the throttle's sleep lasts until; 0 = none owed */
    _Atomic int64_t throttle_until;

    /* Protected by the cpus lock (cpus_lock()). */
    bool stopped;     /* the vCPU is at a safe point, not running */
    bool started;     /* secondary vCPUs start false (GW_HC_START_APS) */
    bool halted;      /* idle in hlt */
    uint64_t wake_seq; /* bumped by cpu_wake() */
    int64_t throttle_late_us; /* average oversleep of the throttle (µs) */
    CPUTask *tasks;   /* queue, oldest first */
    GCond cond;       /* signalled on wake-ups, tasks, resume */
};

/*
 * Creates `n` CPUState objects (index 0..n-1; only vCPU 0 starts `started`)
 * without threads. The accelerator fills cpu->accel.
 */
CPUState **cpus_new(Machine *m, int n);
void cpus_free(CPUState **cpus, int n);

/*
 * Starts the thread of every vCPU: each begins paused (stop = true) and
 * runs `fn(cpu)` (the accelerator's loop). Returns false with *errp set if a
 * thread cannot be created (threads already started are stopped again).
 */
typedef void *(*CPUThreadFunc)(void *cpu);
bool cpus_start_threads(Machine *m, CPUThreadFunc fn, GError **errp);

/* Tells every thread to end, kicks it and joins it. */
void cpus_join_threads(Machine *m);

/*
 * Pause / resume every vCPU. pause returns once all are stopped at a safe
 * point. Any thread but a vCPU thread.
 */
void pause_all_vcpus(Machine *m);
void resume_all_vcpus(Machine *m);
bool all_vcpus_paused(Machine *m);

/*
 * Runs func(cpu, data) in cpu's thread and waits for it (cpu's thread must
 * not be the caller). The task runs even if the vCPU is paused or not
 * started. Safe from the main loop and the migration thread.
 */
void run_on_cpu(CPUState *cpu, CPUTaskFunc func, void *data);

/* Lock protecting the fields marked above, and the wait conditions. */
void cpus_lock(void);
void cpus_unlock(void);

/* Wakes a vCPU waiting in cpu_idle_wait() (any thread). */
void cpu_wake(CPUState *cpu);
void cpus_wake_all(Machine *m);

/* Makes the vCPU leave the guest (accelerator kick) and wakes it. */
void cpu_kick(CPUState *cpu);

/*
 * Idle waits, called by the vCPU thread. Take `seq = cpu_wake_seq(cpu)`,
 * then check the condition being waited for, then call cpu_idle_wait(cpu,
 * seq, deadline): a cpu_wake() in between is not lost. Waits until
 * `deadline_us` (g_get_monotonic_time() clock; INT64_MAX = none), a
 * cpu_wake(), a pause request, a task or exit. Returns false when the
 * deadline passed, true otherwise.
 */
uint64_t cpu_wake_seq(CPUState *cpu);
bool cpu_idle_wait(CPUState *cpu, uint64_t seq, int64_t deadline_us);

/*
 * Called by the vCPU thread at a safe point: runs queued tasks, and while a
 * pause is requested or the vCPU is not started, sleeps (marked stopped).
 * Returns false when the thread must end.
 */
bool cpu_handle_pause(CPUState *cpu);

/* Whether the vCPU thread should leave the guest now (pause, task, exit). */
bool cpu_should_leave(CPUState *cpu);

/* The vCPU whose thread is the caller, or NULL. */
CPUState *current_cpu(void);
void cpu_set_current(CPUState *cpu);

#endif /* GODWIT_CPUS_H */
