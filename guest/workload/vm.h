/*
 * The "vm" workload engine shared by stress, guestperf and verify: N
 * workers, each rewriting its own region pass after pass, spread over the
 * vCPUs (worker w on vCPU w % ncpus; workers on one vCPU take turns pass
 * by pass), with optional rate limiting and a sleep after each pass.
 */
#ifndef GUEST_VM_H
#define GUEST_VM_H

#include "rt.h"

#define VM_MAX_WORKERS 64

typedef struct VmWorker {
    unsigned index;
    unsigned cpu;
    uint64_t base, size;    /* region [base, base + size), 2 MiB aligned */
    uint64_t stride;        /* one 8-byte write per stride */
    uint64_t chunk;         /* bytes written between clock polls */
    uint64_t pass_bytes;    /* writes per pass * stride */
    uint64_t rate;          /* bytes per second, 0 = unlimited */
    uint64_t hang_cycles;   /* sleep after each pass */
    uint64_t pass;          /* pass in progress, from 1 */
    uint64_t pos;           /* next offset in the region */
    uint64_t pass_tsc;      /* TSC when this pass started */
    uint64_t ready_tsc;     /* not runnable before this TSC */
    uint64_t rate_tsc;      /* rate limit: window start ... */
    uint64_t rate_bytes;    /* ... and bytes covered since */
    uint64_t aux, aux_size; /* the payload's own memory (verify) */
} VmWorker;

typedef struct VmOps {
    /* Chunks are multiples of this (0: the stride). */
    uint64_t gran;
    /* Bytes written between two looks at the clock (0: 1 MiB). */
    uint64_t chunk_max;
    /* Complete pass 1 on every worker before READY. */
    bool first_pass_before_ready;
    /* Boot vCPU, after all regions are allocated. May be NULL. */
    void (*setup)(RtCpu *c, VmWorker *w);
    /* Write [off, off + len) of pass w->pass; off is chunk aligned. */
    void (*write)(VmWorker *w, uint64_t off, uint64_t len);
    /* After each pass, on the worker's vCPU. May be NULL. */
    void (*pass_done)(RtCpu *c, VmWorker *w, uint64_t cycles);
    /* Migration/request seen by the worker's vCPU. May be NULL. */
    void (*event)(RtCpu *c, VmWorker *w, unsigned ev);
} VmOps;

typedef struct VmConfig {
    uint64_t workers; /* vm= */
    uint64_t bytes;   /* vm-bytes= */
    uint64_t stride;  /* vm-stride= */
    uint64_t hang;    /* vm-hang= (seconds) */
    uint64_t rate;    /* rate= (bytes per second per worker) */
} VmConfig;

/*
 * Parse vm=, vm-bytes=, vm-stride=, vm-hang=, rate= over @cfg's defaults,
 * and a payload's own keys @extra (NULL-key terminated; NULL for none).
 */
bool vm_args(VmConfig *cfg, const ArgSpec *extra, int argc, char **argv);
/* Allocate, print the worker lines, start the vCPUs, print READY, run. */
NORETURN void vm_run(const VmOps *ops, const VmConfig *cfg);

#endif /* GUEST_VM_H */
