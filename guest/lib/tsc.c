/*
 * TSC frequency: from godwit (GW_HC_INFO), else CPUID leaf 0x15 (crystal
 * ratio), else a measurement against PIT channel 2 (5 and 25 ms runs) (ports
 * 0x42, 0x43, 0x61; legal from ring 3 with IOPL 3), else CPUID leaf 0x16 (base
 * MHz). Zero when nothing works.
 */
#include "rt.h"

#define PIT_HZ 1193182ull
#define PIT_CH2 0x42
#define PIT_CMD 0x43
#define PORT_61 0x61
#define PIT_LATCH_SHORT (PIT_HZ / 200) /* 5 ms */
#define PIT_LATCH_LONG (PIT_HZ / 40)   /* 25 ms */

static uint64_t tsc_khz_cpuid15(void)
{
    uint32_t r[4];

    cpuid(0, 0, r);
    if (r[0] < 0x15) {
        return 0;
    }
    cpuid(0x15, 0, r);
    if (!r[0] || !r[1] || !r[2]) {
        return 0;
    }
    return muldiv64(r[2], r[1], r[0]) / 1000;
}

static uint64_t tsc_khz_cpuid16(void)
{
    uint32_t r[4];

    cpuid(0, 0, r);
    if (r[0] < 0x16) {
        return 0;
    }
    cpuid(0x16, 0, r);
    return (uint64_t)(r[0] & 0xffff) * 1000;
}

/* TSC cycles for @latch PIT ticks in mode 0; 0 if OUT never rises. */
static uint64_t tsc_pit_cycles(unsigned latch)
{
    uint64_t t0, t1;

    /* Gate high, speaker off; mode 0 counts down once and raises OUT. */
    outb(PORT_61, (inb(PORT_61) & ~0x02) | 0x01);
    outb(PIT_CMD, 0xb0); /* channel 2, lobyte/hibyte, mode 0, binary */
    outb(PIT_CH2, latch & 0xff);
    outb(PIT_CH2, latch >> 8);
    t0 = rdtsc();
    while (!(inb(PORT_61) & 0x20)) {
        if (rdtsc() - t0 > (1ull << 36)) {
            return 0; /* many seconds at any clock: no PIT */
        }
    }
    t1 = rdtsc();
    return t1 - t0;
}

/*
 * Two runs of different lengths: their difference cancels the constant
 * part of the error (the port I/O exits around each run).
 */
static uint64_t tsc_khz_pit(void)
{
    uint64_t short_run = tsc_pit_cycles(PIT_LATCH_SHORT);
    uint64_t long_run = tsc_pit_cycles(PIT_LATCH_LONG);

    if (!short_run || long_run <= short_run) {
        return 0;
    }
    return muldiv64(long_run - short_run, PIT_HZ,
                    (PIT_LATCH_LONG - PIT_LATCH_SHORT) * 1000ull);
}

void tsc_init(RtCpu *c)
{
    if (rt.godwit && gw_call(&c->req, GW_HC_INFO, 0, 0, 0, 0) == GW_HC_OK &&
        c->req.ret[0]) {
        rt.tsc_khz = c->req.ret[0];
        rt.tsc_source = "godwit";
    } else if ((rt.tsc_khz = tsc_khz_cpuid15())) {
        rt.tsc_source = "cpuid15";
    } else if ((rt.tsc_khz = tsc_khz_pit())) {
        rt.tsc_source = "pit";
    } else if ((rt.tsc_khz = tsc_khz_cpuid16())) {
        rt.tsc_source = "cpuid16";
    } else {
        rt.tsc_source = "none";
    }
    /* Poll the host clock every ~1 ms (assume 1 GHz when unknown). */
    rt.poll_cycles = rt.tsc_khz ? rt.tsc_khz : 1000000;
}
