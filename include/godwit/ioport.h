/*
 * Port I/O dispatch: devices register port ranges; vCPU threads dispatch
 * KVM_EXIT_IO exits to them. Unclaimed ports read as all ones and ignore
 * writes, as on a PC.
 *
 * Handlers run in the vCPU thread that did the access, possibly in several
 * vCPU threads at once: a device protects its own state.
 */
#ifndef GODWIT_IOPORT_H
#define GODWIT_IOPORT_H

#include <stdint.h>

typedef struct CPUState CPUState;

typedef struct IOPortOps {
    const char *name;
    /* size is 1, 2 or 4; returns the value (low `size` bytes used) */
    uint32_t (*read)(void *opaque, CPUState *cpu, uint16_t port,
                     unsigned size);
    void (*write)(void *opaque, CPUState *cpu, uint16_t port, unsigned size,
                  uint32_t value);
} IOPortOps;

/* Registers [base, base + len); overlapping ranges are a programming error. */
void ioport_register(uint16_t base, uint16_t len, const IOPortOps *ops,
                     void *opaque);
void ioport_unregister_all(void);

uint32_t ioport_read(CPUState *cpu, uint16_t port, unsigned size);
void ioport_write(CPUState *cpu, uint16_t port, unsigned size, uint32_t value);

#endif /* GODWIT_IOPORT_H */
