/*
 * Internal state of the tcg accelerator (software emulation with Unicorn,
 * QEMU's TCG as a library), shared by accel/tcg/ files only.
 *
 * One Unicorn engine per vCPU, each mapping the same guest RAM, plus a
 * small firmware region of godwit's own (trampolines, boot page tables,
 * per-vCPU scratch) that is never part of guest RAM and never migrates.
 * Two constraints of Unicorn shape everything here (docs/devel/tcg.md):
 *   - an engine may only be stopped from its own thread, at a block
 *     boundary it reached by itself (the block hook);
 *   - locked instructions are not atomic across engines, so one engine
 *     runs at a time (tcg-sched.c), as QEMU's single-threaded TCG does.
 */
#ifndef ACCEL_TCG_INT_H
#define ACCEL_TCG_INT_H

/*
 * The firmware region: 64 KiB just below 4 GiB, where a PC has its BIOS.
 * Guest RAM never reaches it (below-4G RAM ends at 3.5 GiB at most).
 */
#define TCG_FW_BASE 0xffff0000
#define TCG_FW_SIZE 0x10000
#define TCG_FW_PML4 0x1000 /* boot page tables: map the region itself */
#define TCG_FW_PDPT 0x2000
#define TCG_FW_PD 0x3000
#define TCG_FW_GDT 0x4000     /* the boot GDT (selectors below) */
#define TCG_FW_SCRATCH 0x5000 /* per-vCPU scratch, TCG_FW_SCRATCH_SIZE each */
#define TCG_FW_SCRATCH_SIZE 0x100
#define TCG_MAX_VCPUS ((TCG_FW_SIZE - TCG_FW_SCRATCH) / TCG_FW_SCRATCH_SIZE)

/* Boot GDT selectors: Multiboot's flat 32-bit state, as the kvm path sets. */
#define TCG_FW_SEL_CODE64 0x08
#define TCG_FW_SEL_CODE32 0x10
#define TCG_FW_SEL_DATA32 0x18

/*
 * Scratch layout of one vCPU (offsets), read by the trampolines:
 * the iretq frame, then the data selectors, then the boot arguments.
 */
#define TCG_SCR_RIP 0x00
#define TCG_SCR_CS 0x08
#define TCG_SCR_RFLAGS 0x10
#define TCG_SCR_RSP 0x18
#define TCG_SCR_SS 0x20
#define TCG_SCR_DS 0x28
#define TCG_SCR_ES 0x30
#define TCG_SCR_FS 0x38
#define TCG_SCR_GS 0x40
#define TCG_SCR_ENTRY 0x48 /* boot: far pointer {u32 entry, u16 CS} */
#define TCG_SCR_MBI 0x50   /* boot: Multiboot info address */
#define TCG_SCR_STACK 0xf0 /* boot: top of the trampoline's stack */

#ifndef __ASSEMBLER__

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <unicorn/unicorn.h>

#include "godwit/accel.h"
#include "godwit/cpus.h"
#include "godwit/machine.h"

/* The trampolines (tcg-firmware.S), copied to the start of the region. */
extern const uint8_t tcg_fw_blob[], tcg_fw_blob_end[];
extern const uint8_t tcg_fw_boot64[], tcg_fw_restore64[];

typedef struct TCGState {
    /* Set at init. */
    uint8_t *fw; /* TCG_FW_SIZE bytes, mapped into every engine */
    uint32_t tsc_khz;
    struct UffdWp *wp; /* dirty tracking over pc.ram; NULL until started */
    unsigned long *wp_taken; /* pages reported but not yet re-armed */
    bool wp_first;           /* the next sync reports every page */
    /*
     * Logging without kernel tracking (a stopped VM on a kernel without
     * UFFD_FEATURE_WP_ASYNC): every page counts as dirty at a sync if any
     * vCPU ran since the previous one.
     */
    bool wp_blind;
    uint64_t wp_runs; /* `runs` at the last sync, blind mode */
    bool wp_log;      /* the dirty log uses `wp` (not blind) */
    /*
     * Pages the per-vCPU count re-armed that the log has not reported
     * yet; the next sync does (NULL while the log is off).
     */
    unsigned long *wp_pending;

    /*
     * Per-vCPU dirty accounting (vcpu_dirty_*; tcg-dirty.c). `counted`:
     * pages attributed since they were last re-armed; `count_owner`: the
     * vCPU whose writes are not attributed yet (the run lock's last
     * holder), -1 for none.
     */
    uint64_t *count; /* pages per vCPU, cumulative */
    unsigned long *counted;
    unsigned long *count_scan; /* scratch for one scan */
    int count_owner;
    int count_users;      /* starts not yet stopped: the count is shared */
    atomic_bool count_on; /* read without the lock by tcg-sched.c */
    GMutex dirty_lock;    /* protects the wp_ and count fields */

    /* Any thread (atomic): engine runs started, for the blind mode. */
    _Atomic uint64_t runs;
} TCGState;

typedef struct TCGCPU {
    /* Set at creation; used by the vCPU's own thread only. */
    uc_engine *uc;
    uc_hook hooks[6];
    int nr_hooks;

    /* Written by any thread (kick), read by the block hook. */
    atomic_bool leave; /* stop at the next block boundary */

    /* Owned by the vCPU thread. */
    bool stopped_by_hook; /* the last run ended in the block hook */
    int exception;        /* vector of a guest exception, or -1 */
    bool io_locked;       /* holds the run lock inside an I/O hook */
} TCGCPU;

static inline TCGState *tcg_state(Machine *m)
{
    return m->accel_state;
}

static inline TCGCPU *tcg_cpu(CPUState *cpu)
{
    return cpu->accel;
}

/* tcg-cpu.c */
bool tcg_vcpu_create(Machine *m, CPUState *cpu, GError **errp);
void tcg_vcpu_destroy(CPUState *cpu);
void *tcg_vcpu_thread(void *opaque);
void tcg_vcpu_kick(CPUState *cpu);
/* Runs the engine from `rip` until `until` (0: until stopped). */
uc_err tcg_vcpu_run(CPUState *cpu, uint64_t rip, uint64_t until);

/* tcg-sched.c: one engine runs at a time, round-robin. */
void tcg_sched_init(void);
void tcg_sched_acquire(CPUState *cpu);
void tcg_sched_release(CPUState *cpu);
/* The index of the vCPU that last took the run lock, -1 if none yet. */
int tcg_sched_last_holder(void);

/* tcg-state.c */
bool tcg_cpu_state_save(CPUState *cpu, GwCpuState *st, GError **errp);
bool tcg_cpu_state_load(CPUState *cpu, const GwCpuState *st, GError **errp);
bool tcg_cpu_start_ap(CPUState *ap, const GwCpuState *model, uint64_t rip,
                      uint64_t rsp, uint64_t rdi, uint64_t rsi, GError **errp);
bool tcg_cpu_boot(CPUState *cpu, uint32_t entry, uint32_t mbi, GError **errp);
void tcg_fw_init(TCGState *s);

/* tcg-dirty.c */
bool tcg_dirty_log_start(Machine *m, RAMBlock *rb, GError **errp);
bool tcg_dirty_log_sync(Machine *m, RAMBlock *rb, unsigned long *bitmap,
                        GError **errp);
bool tcg_dirty_log_clear(Machine *m, RAMBlock *rb, uint64_t first, uint64_t n,
                         GError **errp);
void tcg_dirty_log_stop(Machine *m, RAMBlock *rb);
bool tcg_vcpu_dirty_start(Machine *m, GError **errp);
void tcg_vcpu_dirty_pages(Machine *m, uint64_t *pages);
void tcg_vcpu_dirty_stop(Machine *m);
/* The run lock passed to `cpu`: its predecessor's writes are attributed. */
void tcg_vcpu_dirty_switch(CPUState *cpu);
bool tcg_dirty_log_manual(Machine *m);

/* An error from Unicorn, with context. Returns false. */
bool tcg_error(GError **errp, uc_err err, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

#endif /* __ASSEMBLER__ */
#endif /* ACCEL_TCG_INT_H */
