/*
 * Internal state of the KVM accelerator, shared by accel/kvm/ files only.
 */
#ifndef ACCEL_KVM_INT_H
#define ACCEL_KVM_INT_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "godwit/accel.h"
#include "godwit/cpus.h"
#include "godwit/machine.h"
#include "kvm-ring-core.h"

#define KVM_MAX_SLOTS MACHINE_MAX_SLICES
#define KVM_SIG_IPI SIGUSR1

typedef struct KVMSlot {
    /* Set at creation. */
    uint32_t id;
    uint64_t gpa;
    uint64_t size;
    uint8_t *host;
    RAMBlock *block;
    uint64_t block_page; /* first page of the slot within block */
    /*
     * Dirty logging, protected by KVMState.dirty_lock. KVM logs the slot
     * (KVM_MEM_LOG_DIRTY_PAGES in flags) while migration's log (dirty !=
     * NULL) or per-vCPU counting (KVMState.counting) wants it.
     */
    uint32_t flags;
    uint64_t *dirty;    /* pages dirty and not yet synced: migration's log */
    uint64_t *to_clear; /* bits fetched but not yet re-armed (manual) */
} KVMSlot;

typedef struct KVMState {
    /* Set at init. */
    int kvm_fd;
    int vm_fd;
    size_t run_size;
    bool manual_protect;
    uint32_t tsc_khz;
    uint32_t xsave_size; /* bytes of KVM_GET_XSAVE(2) */
    bool has_xsave2;
    bool has_xcrs;
    struct kvm_cpuid2 *cpuid;
    uint32_t msrs[GW_CPU_MAX_MSRS];
    uint32_t nmsrs;
    KVMSlot slots[KVM_MAX_SLOTS];
    int nr_slots;
    /* Dirty ring, set at init: 0 entries = bitmap dirty log. */
    uint32_t ring_size; /* entries per vCPU, a power of two */
    bool ring_acq_rel;  /* KVM_CAP_DIRTY_LOG_RING_ACQ_REL was enabled */
    /*
     * One lock for every harvest of the rings and the slots' logs: the
     * migration thread, the monitor, the dirty-rate thread and vCPU
     * threads on KVM_EXIT_DIRTY_RING_FULL.
     */
    GMutex dirty_lock;
    /* Protected by dirty_lock. */
    int counting;         /* vcpu_dirty_start calls not yet stopped */
    uint64_t *vcpu_dirty; /* [cpu index] pages harvested since start */
    /* Statistics, atomic. */
    uint64_t ring_full_exits;
} KVMState;

typedef struct KVMCPU {
    int fd;
    struct kvm_run *run;
    bool io_pending;   /* an I/O exit not yet completed by KVM_RUN */
    KVMDirtyRing ring; /* mapped when KVMState.ring_size; else gfns NULL */
} KVMCPU;

static inline KVMState *kvm_state(Machine *m)
{
    return m->accel_state;
}

/* kvm-cpu.c */
bool kvm_vcpu_create(Machine *m, CPUState *cpu, GError **errp);
void kvm_vcpu_destroy(CPUState *cpu);
void *kvm_vcpu_thread(void *opaque);
void kvm_vcpu_kick(CPUState *cpu);

/* kvm-state.c */
bool kvm_cpu_state_save(CPUState *cpu, GwCpuState *st, GError **errp);
bool kvm_cpu_state_load(CPUState *cpu, const GwCpuState *st, GError **errp);
bool kvm_cpu_start_ap(CPUState *ap, const GwCpuState *model, uint64_t rip,
                      uint64_t rsp, uint64_t rdi, uint64_t rsi, GError **errp);
bool kvm_cpu_set_boot_state(CPUState *cpu, uint32_t entry, uint32_t eax,
                            uint32_t ebx, GError **errp);
bool kvm_probe_msrs(KVMState *s, GError **errp);

/* kvm-dirty.c */
bool kvm_dirty_log_start(Machine *m, RAMBlock *rb, GError **errp);
bool kvm_dirty_log_sync(Machine *m, RAMBlock *rb, unsigned long *bitmap,
                        GError **errp);
bool kvm_dirty_log_clear(Machine *m, RAMBlock *rb, uint64_t first, uint64_t n,
                         GError **errp);
void kvm_dirty_log_stop(Machine *m, RAMBlock *rb);
bool kvm_dirty_log_manual(Machine *m);
bool kvm_set_slot(KVMState *s, KVMSlot *slot, uint32_t flags, GError **errp);
bool kvm_slot_update_log_locked(Machine *m, KVMSlot *slot, GError **errp);

/* kvm-all.c */
int kvm_check_extension(KVMState *s, int cap);

/* kvm-ring.c: KVM's dirty ring and per-vCPU dirty accounting */
bool kvm_ring_enable(Machine *m, KVMState *s, GError **errp);
bool kvm_ring_vcpu_map(KVMState *s, CPUState *cpu, GError **errp);
void kvm_ring_vcpu_unmap(KVMState *s, CPUState *cpu);
bool kvm_ring_harvest_locked(Machine *m, GError **errp);
void kvm_ring_full(CPUState *cpu);
bool kvm_vcpu_dirty_start(Machine *m, GError **errp);
void kvm_vcpu_dirty_pages(Machine *m, uint64_t *pages);
void kvm_vcpu_dirty_stop(Machine *m);

#endif /* ACCEL_KVM_INT_H */
