/*
 * AccelOps: what the VMM needs from an accelerator.
 *
 * One static const table per accelerator (accel/kvm/, accel/tcg/), registered by
 * accel_register() at start-up. The rest of the VMM, and migration in
 * particular, only ever reaches KVM through these hooks. Each hook says
 * which thread calls it.
 *
 * For the tcg accelerator "the guest" is an emulator engine: kick must
 * never stop it directly, only ask it to leave at its next safe point.
 */
#ifndef GODWIT_ACCEL_H
#define GODWIT_ACCEL_H

#include <stdbool.h>
#include <stdint.h>

#include "godwit/error.h"
#include "godwit/vcpu-state.h"

typedef struct Machine Machine;
typedef struct CPUState CPUState;
typedef struct RAMBlock RAMBlock;

typedef enum AccelType {
    ACCEL_KVM,
    ACCEL_TCG,
    ACCEL__MAX,
} AccelType;

typedef struct AccelOps {
    const char *name;

    /*
     * Main thread. Creates the VM over the machine's RAM layout and one
     * vCPU per CPUState (cpu->accel), but starts no thread. Returns false
     * with *errp set; on failure nothing is left allocated.
     */
    bool (*init)(Machine *m, GError **errp);
    /* Main thread, vCPU threads joined. Destroys the VM; RAM stays. */
    void (*cleanup)(Machine *m);
    /* The vCPU thread body (see cpus_start_threads). */
    void *(*vcpu_thread)(void *cpu);
    /* Any thread: make the vCPU leave the guest soon. */
    void (*kick)(CPUState *cpu);

    /* TSC frequency of the vCPUs in kHz. */
    uint32_t (*tsc_khz)(Machine *m);

    /*
     * Dirty logging, per RAM block, pages of GW_PAGE_SIZE. Main or
     * migration thread; vCPUs may run.
     *   start: begin tracking; every page counts as dirty once first (the
     *          first sync reports all of them).
     *   sync:  OR the pages dirtied since the last sync/clear into
     *          `bitmap` (ram_block_pages(rb) bits, host unsigned longs).
     *          Without manual protection, sync also re-arms tracking.
     *   clear: with manual protection (dirty_log_manual true), re-arm
     *          tracking for pages [first, first + n) whose bits the caller
     *          has taken; call it just before sending those pages. Without
     *          it, a no-op.
     *   stop:  end tracking.
     */
    bool (*dirty_log_start)(Machine *m, RAMBlock *rb, GError **errp);
    bool (*dirty_log_sync)(Machine *m, RAMBlock *rb, unsigned long *bitmap,
                           GError **errp);
    bool (*dirty_log_clear)(Machine *m, RAMBlock *rb, uint64_t first,
                            uint64_t n, GError **errp);
    void (*dirty_log_stop)(Machine *m, RAMBlock *rb);
    bool (*dirty_log_manual)(Machine *m);

    /*
     * Per-vCPU dirty accounting, for dirty-limit and calc-dirty-rate's
     * dirty-ring mode. Optional: NULL where the accelerator can never tell
     * which vCPU dirtied a page. Main, migration or dirty-limit thread.
     *   start: begin counting; false with *errp where this configuration
     *          cannot (KVM without dirty-ring-size, say), naming what is
     *          missing. Counting and dirty logging are independent: either
     *          may start or stop first, and neither loses the other's pages.
     *   pages: fills pages[cpu index] with the pages each vCPU has dirtied
     *          since start (cumulative; a page counts again once it was
     *          harvested and written again). May harvest to get there.
     *   stop:  end counting.
     */
    bool (*vcpu_dirty_start)(Machine *m, GError **errp);
    void (*vcpu_dirty_pages)(Machine *m, uint64_t *pages);
    void (*vcpu_dirty_stop)(Machine *m);

    /*
     * vCPU state. Called in the vCPU's own thread (through run_on_cpu)
     * while it is paused; the guest state is consistent there.
     */
    bool (*cpu_state_save)(CPUState *cpu, GwCpuState *st, GError **errp);
    bool (*cpu_state_load)(CPUState *cpu, const GwCpuState *st,
                           GError **errp);

    /*
     * godwit boot extension: start secondary vCPU `ap` in the mode of
     * `model` (a saved state of the calling vCPU) at rip with rsp, rdi,
     * rsi. Called in ap's thread through run_on_cpu.
     */
    bool (*cpu_start_ap)(CPUState *ap, const GwCpuState *model, uint64_t rip,
                         uint64_t rsp, uint64_t rdi, uint64_t rsi,
                         GError **errp);
} AccelOps;

/* Registers an ops table; asserts every mandatory hook is set. */
void accel_register(AccelType type, const AccelOps *ops);
const AccelOps *accel_find(const char *name);

/* Registration of the built-in accelerators (explicit, no constructors). */
void accel_register_all(void);
void kvm_accel_register(void);
void tcg_accel_register(void);

#endif /* GODWIT_ACCEL_H */
