/*
 * The machine: RAM layout, vCPUs, accelerator and boot, PC-like.
 *
 * Guest-physical layout follows QEMU's pc machine, so the same payload sees
 * the same memory under both: pc.ram from 0 up to below_4g, the rest from
 * 4 GiB up. below_4g is the whole RAM when it is under 3.5 GiB, else 3 GiB.
 */
#ifndef GODWIT_MACHINE_H
#define GODWIT_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

#include "godwit/accel.h"
#include "godwit/cpus.h"
#include "godwit/ramblock.h"

#define GW_4G (1ull << 32)

/* One guest-physical window onto a RAM block. */
typedef struct GuestRamSlice {
    uint64_t gpa;
    uint64_t size;
    RAMBlock *block;
    uint64_t offset; /* in block */
} GuestRamSlice;

#define MACHINE_MAX_SLICES 2

typedef struct MachineConfig {
    const char *name;   /* -name, may be NULL */
    uint64_t ram_size;  /* -m */
    int smp;            /* -smp */
    const char *kernel; /* -kernel */
    const char *append; /* -append, may be NULL */
    const char *accel;  /* accelerators to try, "kvm:tcg"; NULL = default */
    /* KVM dirty ring entries per vCPU; 0 = off (bitmap dirty log) */
    uint32_t dirty_ring_size;
    bool mem_prealloc;  /* populate all RAM at creation */
} MachineConfig;

struct Machine {
    /* Set at creation. */
    char *name;
    char *kernel;
    char *append;
    uint64_t ram_size;
    uint64_t below_4g, above_4g;
    int smp;
    RAMBlock *ram; /* "pc.ram" */
    GuestRamSlice slices[MACHINE_MAX_SLICES];
    int nr_slices;
    const AccelOps *accel;
    uint32_t dirty_ring_size; /* -accel kvm,dirty-ring-size=N; 0 = off */
    void *accel_state; /* e.g. KVMState */
    char *accel_note;  /* which accelerator the default chose, and why */
    CPUState **cpus;
    uint32_t tsc_khz;
    uint64_t boot_entry; /* guest-physical entry and multiboot info */
    uint64_t boot_mbi;
    bool mem_prealloc;
};

extern Machine *current_machine;

/*
 * Creates RAM, the accelerator VM and its vCPUs, loads the kernel and sets
 * the boot vCPU's registers. vCPU threads are started too, paused. Returns
 * NULL with *errp set; nothing is left behind on failure.
 */
Machine *machine_new(const MachineConfig *cfg, GError **errp);

/* Joins vCPU threads, destroys the VM and frees RAM. NULL is fine. */
void machine_free(Machine *m);

/*
 * Host pointer for guest-physical [gpa, gpa + len) if the whole range is
 * RAM within one slice, else NULL.
 */
void *machine_gpa_to_host(Machine *m, uint64_t gpa, uint64_t len);

/*
 * Saves / loads the state of vCPU `index` in its own thread (run_on_cpu);
 * the vCPU should be paused. False with *errp set on failure.
 */
bool machine_cpu_state_save(Machine *m, int index, GwCpuState *st,
                            GError **errp);
bool machine_cpu_state_load(Machine *m, int index, const GwCpuState *st,
                            GError **errp);

/*
 * Records that the VMM wrote guest-physical [gpa, gpa + len) (devices
 * writing into guest RAM), so that dirty tracking sees it.
 */
void machine_mark_dirty(Machine *m, uint64_t gpa, uint64_t len);

/*
 * Destroys the accelerator VM and creates a fresh one over the same RAM,
 * carrying every vCPU's state across through cpu_state_save/load. The VM
 * must be paused. Used by the x-reload-vcpus debug command to prove the
 * vCPU state is complete. Returns false with *errp set; on failure the VM
 * cannot run anymore.
 */
bool machine_reload_accel(Machine *m, GError **errp);

#endif /* GODWIT_MACHINE_H */
