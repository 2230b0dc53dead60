/*
 * Port I/O dispatch table. Registration happens at machine set-up, before
 * any vCPU runs; lookups from vCPU threads afterwards need no lock.
 */
#include <glib.h>

#include "godwit/ioport.h"

#define IOPORT_MAX_RANGES 16

typedef struct IOPortRange {
    uint16_t base;
    uint16_t len;
    const IOPortOps *ops;
    void *opaque;
} IOPortRange;

static IOPortRange ranges[IOPORT_MAX_RANGES];
static int nr_ranges;

void ioport_register(uint16_t base, uint16_t len, const IOPortOps *ops,
                     void *opaque)
{
    g_assert(len > 0 && (uint32_t)base + len <= 0x10000);
    g_assert(nr_ranges < IOPORT_MAX_RANGES);
    g_assert(ops->read && ops->write);
    for (int i = 0; i < nr_ranges; i++) {
        g_assert(base + len <= ranges[i].base ||
                 base >= ranges[i].base + ranges[i].len);
    }
    ranges[nr_ranges++] = (IOPortRange){base, len, ops, opaque};
}

void ioport_unregister_all(void)
{
    nr_ranges = 0;
}

static const IOPortRange *ioport_find(uint16_t port)
{
    for (int i = 0; i < nr_ranges; i++) {
        if (port >= ranges[i].base && port - ranges[i].base < ranges[i].len) {
            return &ranges[i];
        }
    }
    return NULL;
}

uint32_t ioport_read(CPUState *cpu, uint16_t port, unsigned size)
{
    const IOPortRange *r = ioport_find(port);

    if (!r) {
        return 0xffffffffu; /* nothing there: the bus floats high */
    }
    return r->ops->read(r->opaque, cpu, port, size);
}

void ioport_write(CPUState *cpu, uint16_t port, unsigned size, uint32_t value)
{
    const IOPortRange *r = ioport_find(port);

    if (r) {
        r->ops->write(r->opaque, cpu, port, size, value);
    }
}
