/*
 * The stress/guestperf pass: one 8-byte write of a pass-derived value per
 * stride slot, so every pass changes every written word.
 */
#ifndef GUEST_STRESS_WRITE_H
#define GUEST_STRESS_WRITE_H

#include "vm.h"

static inline uint64_t stress_value(uint64_t pass)
{
    return pass * 0x9e3779b97f4a7c15ull; /* odd: distinct for each pass */
}

static void stress_write(VmWorker *w, uint64_t off, uint64_t len)
{
    uint64_t v = stress_value(w->pass);
    uint64_t end = off + len;
    uint64_t stride = w->stride;
    char *base = (char *)(uintptr_t)w->base;

    for (uint64_t o = off; o < end; o += stride) {
        *(volatile uint64_t *)(base + o) = v;
    }
}

#endif /* GUEST_STRESS_WRITE_H */
