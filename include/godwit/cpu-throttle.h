/*
 * vCPU throttling, QEMU's way: with a throttle of p %, every vCPU runs a
 * 10 ms time slice, then sleeps p/(100-p) x 10 ms, so it spends p % of
 * wall time asleep whatever the guest does (a timer kicks it out of the
 * guest). Auto-converge drives it; p = 0 removes it at once.
 *
 * The ticking lives in a thread of its own ("vcpu-throttle"); each vCPU
 * does its sleep in its own thread at a safe point (cpu_handle_pause),
 * where a pause or exit request still wakes it.
 *
 * dirty-limit throttles vCPUs one by one, and deeper: each vCPU also has a
 * run share, the millionths of wall time it may run (1000000 = all). At
 * 5 % or more it runs 10 ms slices, as above (periods of 200 ms at
 * most); below, periods stay CPU_THROTTLE_DEEP_PERIOD_NS (200 ms) and the
 * slice shrinks to share x 200 ms, so that a deep throttle stays smooth
 * over the controller's one-second period. The share stops at
 * CPU_THROTTLE_RUN_PPM_MIN (0.1 %: 200 µs per 200 ms), about what a kick
 * and a wake-up take; the real run time per round is that much more. A
 * vCPU with both settings gets the tighter one.
 */
#ifndef GODWIT_CPU_THROTTLE_H
#define GODWIT_CPU_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct Machine Machine;

#define CPU_THROTTLE_PCT_MIN 1
#define CPU_THROTTLE_PCT_MAX 99
#define CPU_THROTTLE_TIMESLICE_NS 10000000LL
#define CPU_THROTTLE_RUN_PPM_FULL 1000000
#define CPU_THROTTLE_RUN_PPM_MIN 1000
#define CPU_THROTTLE_DEEP_PERIOD_NS 200000000LL

/* Main thread, once the vCPUs exist. */
void cpu_throttle_init(Machine *m);
/* Stops the thread at exit. */
void cpu_throttle_cleanup(void);

/* Any thread. pct is clamped to 1..99; 0 stops throttling. */
void cpu_throttle_set(int pct);
void cpu_throttle_stop(void);
bool cpu_throttle_active(void);
int cpu_throttle_get_percentage(void);

/*
 * The guest's stall: the longest single sleep a throttle held any vCPU
 * out of the guest (from its safe point to its wake-up), the number of
 * sleeps and their total, since the last reset. cpus.c notes each sleep;
 * migration resets at its start and reports them in query-migrate.
 */
typedef struct CpuThrottleStall {
    int64_t max_us;
    int64_t total_us; /* all vCPUs added up */
    uint64_t sleeps;
} CpuThrottleStall;
void cpu_throttle_note_stall(int64_t us);
void cpu_throttle_stall_reset(void);
void cpu_throttle_stall_get(CpuThrottleStall *out);

/* Sleep per time slice for a percentage (exported for tests). */
int64_t cpu_throttle_sleep_ns(int pct);

/*
 * Any thread. vCPU `index` may run run_ppm millionths of wall time
 * (clamped to CPU_THROTTLE_RUN_PPM_MIN..CPU_THROTTLE_RUN_PPM_FULL; FULL
 * removes it). Easing it wakes a vCPU asleep under the old share.
 */
void cpu_throttle_set_vcpu_run_share(int index, uint32_t run_ppm);
uint32_t cpu_throttle_get_vcpu_run_share(int index);
/* The slice and sleep a run share gives (exported for tests). */
void cpu_throttle_run_share_slice(uint32_t run_ppm, int64_t *slice_ns,
                                  int64_t *sleep_ns);

#endif /* GODWIT_CPU_THROTTLE_H */
