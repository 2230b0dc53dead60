/*
 * Runtime core: the ring-3 entry points (rt_start on the boot vCPU,
 * rt_ap_start on vCPUs started by godwit), per-vCPU state, host clock
 * polling with guest-visible pause measurement, parking and waiting.
 */
#include "rt.h"

#define APIC_MMIO 0xfee00000ull
#define APIC_ID 0x020
#define APIC_ICR_LOW 0x300
#define APIC_ICR_HIGH 0x310
#define ICR_INIT_ASSERT 0x4500 /* INIT, level assert, physical dest. */

_Static_assert(BOOT_GW_HC_PORT == GW_HC_PORT, "boot.h: hypercall port");
_Static_assert(BOOT_GW_HC_MAGIC == GW_HC_MAGIC, "boot.h: hypercall magic");
_Static_assert(sizeof(GwHcRequest) == 72, "hypercall-abi.h: request");

Rt rt;
RtCpu rt_cpus[RT_MAX_CPUS];
static void (*ap_main_fn)(RtCpu *c);

void rt_start(uint32_t magic, uint32_t mbi, uint32_t pml4);
void rt_ap_start(uint64_t index, uint64_t arg);

uint64_t rt_cycles_to_ns(uint64_t cycles)
{
    return rt.tsc_khz ? muldiv64(cycles, 1000000, rt.tsc_khz) : cycles;
}

uint64_t rt_ns_to_cycles(uint64_t ns)
{
    return rt.tsc_khz ? muldiv64(ns, rt.tsc_khz, 1000000) : ns;
}

void rt_report(RtCpu *c, uint64_t kind, uint64_t a1, uint64_t a2, uint64_t a3)
{
    if (rt.godwit) {
        gw_call(&c->req, GW_HC_REPORT, kind, a1, a2, a3);
    }
}

/*
 * Guest-visible pause over the poll interval in which the generation
 * changed, from two estimates:
 *  - host wall time that passed without guest TSC time: a VMM that saves
 *    and restores the TSC freezes it during the switchover;
 *  - the longest TSC gap between two observations of the busy loop: where
 *    the guest TSC is the host's and cannot be restored (kvm_pvm, where
 *    ring-3 rdtsc is native), the switchover is a stretch of TSC time in
 *    which the loop did not run.
 * The pause is the larger of the two (each is ~0 when the other applies).
 */
static void report_pause(RtCpu *c, uint64_t wall, uint64_t tsc, uint64_t gap,
                         uint64_t gen)
{
    uint64_t wall_ns = wall - c->poll_wall;
    uint64_t tsc_ns = rt_cycles_to_ns(tsc - c->poll_tsc);
    uint64_t gap_ns = rt_cycles_to_ns(gap);
    uint64_t pause =
        wall > c->poll_wall && wall_ns > tsc_ns ? wall_ns - tsc_ns : 0;

    if (!rt.tsc_khz || !c->poll_wall) {
        return;
    }
    if (gap_ns > pause) {
        pause = gap_ns;
    }
    rt_printf("pause_ms=%lu.%03lu gen=%lu\n", pause / 1000000,
              pause / 1000 % 1000, gen);
    rt_report(c, GW_REPORT_PAUSE, pause, gen, 0);
}

static void note_gap(RtCpu *c, uint64_t now)
{
    if (now - c->obs_tsc > c->max_gap) {
        c->max_gap = now - c->obs_tsc;
    }
    c->obs_tsc = now;
}

unsigned rt_clock_poll(RtCpu *c)
{
    uint64_t t0, t1, t, wall, gen, reqs, call, gap;
    unsigned ev = 0;

    if (!rt.godwit) {
        return 0;
    }
    t0 = rdtsc();
    note_gap(c, t0);
    if (gw_call(&c->req, GW_HC_CLOCK, 0, 0, 0, 0) != GW_HC_OK) {
        c->next_poll = t0 + rt.poll_cycles;
        return 0;
    }
    t1 = rdtsc();
    t = t0 + (t1 - t0) / 2;
    wall = c->req.ret[0];
    gen = c->req.ret[1];
    reqs = c->req.ret[2];
    /*
     * A stop inside this call belongs to this interval if the call saw
     * the new generation, else to the next one: count it in both.
     */
    call = t1 - t0;
    gap = c->max_gap > call ? c->max_gap : call;
    if (gen != c->gen) {
        ev |= RT_EV_MIGRATED;
        if (c->index == 0) {
            report_pause(c, wall, t, gap, gen);
        }
    }
    if (reqs != c->reqs) {
        ev |= RT_EV_REQUEST;
    }
    c->gen = gen;
    c->reqs = reqs;
    c->poll_tsc = t;
    c->poll_wall = wall;
    c->max_gap = call;
    c->obs_tsc = rdtsc();
    c->next_poll = c->obs_tsc + rt.poll_cycles;
    return ev;
}

unsigned rt_poll(RtCpu *c)
{
    uint64_t now, gap;

    if (!rt.godwit) {
        return 0;
    }
    now = rdtsc();
    gap = now - c->obs_tsc;
    note_gap(c, now);
    /* A long gap: we were probably stopped; look at the clock at once. */
    if (now < c->next_poll && gap < 2 * rt.poll_cycles) {
        return 0;
    }
    return rt_clock_poll(c);
}

void rt_observe(RtCpu *c)
{
    if (rt.godwit) {
        note_gap(c, rdtsc());
    }
}

void rt_rebase(RtCpu *c)
{
    c->obs_tsc = rdtsc();
}

unsigned rt_wait_until(RtCpu *c, uint64_t until)
{
    unsigned ev = 0;

    for (;;) {
        uint64_t now = rdtsc();
        if (now >= until) {
            return ev;
        }
        if (rt.godwit) {
            /* Short sleeps: a stop inside one is measured to ~1 ms. */
            uint64_t want =
                until - now < rt.poll_cycles ? until - now : rt.poll_cycles;
            uint64_t after;
            note_gap(c, now);
            gw_call(&c->req, GW_HC_SLEEP, rt_cycles_to_ns(want), 0, 0, 0);
            after = rdtsc();
            if (after - now > want) {
                c->obs_tsc = now + want; /* the excess counts as a gap */
            } else {
                c->obs_tsc = after;
            }
            ev |= rt_poll(c);
        } else {
            cpu_relax();
        }
    }
}

/*
 * QEMU with KVM (ring 3): an INIT IPI to ourselves. The boot stub cleared
 * the BSP flag, so KVM leaves this vCPU waiting for a SIPI, using no host
 * CPU. (Not under QEMU TCG: its INIT makes CPU 0 the BSP again and starts
 * it in the BIOS; the stub keeps us in ring 0 there.)
 */
static NORETURN void park_init_ipi(void)
{
    uint32_t id = mmio_read32(APIC_MMIO + APIC_ID) >> 24;

    mmio_write32(APIC_MMIO + APIC_ICR_HIGH, id << 24);
    mmio_write32(APIC_MMIO + APIC_ICR_LOW, ICR_INIT_ASSERT);
    for (uint64_t i = 0;; i++) {
        cpu_relax();
        if (i == (1ull << 24)) {
            rt_printf("%s: INIT IPI did not park this vCPU; spinning\n",
                      payload_name);
        }
    }
}

unsigned rt_park(RtCpu *c)
{
    if (!rt.godwit) {
        if (rt.ring0) {
            halt_forever(); /* QEMU TCG: costs no host CPU */
        }
        park_init_ipi();
    }
    for (;;) {
        int32_t st = gw_call(&c->req, GW_HC_PARK, c->gen, c->reqs, 0, 0);
        unsigned ev = 0;

        if (st == GW_HC_EINTR) {
            continue;
        }
        if (st != GW_HC_OK) {
            /* No parking in this host: poll the clock at ~1 ms. */
            rt_wait_until(c, rdtsc() + rt.poll_cycles);
            ev = rt_clock_poll(c);
            if (ev) {
                return ev;
            }
            continue;
        }
        if (c->req.ret[1] != c->gen) {
            ev |= RT_EV_MIGRATED;
        }
        if (c->req.ret[2] != c->reqs) {
            ev |= RT_EV_REQUEST;
        }
        c->poll_tsc = rdtsc();
        c->obs_tsc = c->poll_tsc;
        c->max_gap = 0;
        c->poll_wall = c->req.ret[0];
        c->gen = c->req.ret[1];
        c->reqs = c->req.ret[2];
        c->next_poll = c->poll_tsc + rt.poll_cycles;
        if (ev) {
            return ev;
        }
    }
}

void rt_park_forever(RtCpu *c)
{
    for (;;) {
        rt_park(c);
    }
}

void rt_fail(RtCpu *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    rt_vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rt_printf("%s: %s\n", payload_name, msg);
    rt_park_forever(c);
}

/* Per-vCPU setup: baseline for the clock poll, without events. */
static void cpu_setup(RtCpu *c, unsigned index)
{
    c->index = index;
    if (rt.godwit && gw_call(&c->req, GW_HC_CLOCK, 0, 0, 0, 0) == GW_HC_OK) {
        c->poll_tsc = rdtsc();
        c->obs_tsc = c->poll_tsc;
        c->max_gap = 0;
        c->poll_wall = c->req.ret[0];
        c->gen = c->req.ret[1];
        c->reqs = c->req.ret[2];
    }
    c->obs_tsc = rdtsc();
    c->next_poll = c->obs_tsc + rt.poll_cycles;
}

unsigned rt_start_aps(void (*fn)(RtCpu *c))
{
    RtCpu *c = &rt_cpus[0];

    if (!rt.godwit || rt.ncpus < 2) {
        return 0;
    }
    ap_main_fn = fn;
    barrier();
    if (gw_call(&c->req, GW_HC_START_APS, (uintptr_t)ap_entry,
                (uintptr_t)ap_stacks_top, RT_AP_STACK_SIZE, 0) != GW_HC_OK) {
        return 0;
    }
    return (unsigned)c->req.ret[0];
}

/* vCPU @index (1..) started by GW_HC_START_APS; its stack is set. */
void rt_ap_start(uint64_t index, uint64_t arg)
{
    RtCpu *c;

    (void)arg;
    if (index == 0 || index >= rt.ncpus) {
        for (;;) {
            cpu_relax(); /* cannot happen: ncpus <= RT_MAX_CPUS */
        }
    }
    c = &rt_cpus[index];
    cpu_setup(c, (unsigned)index);
    ap_main_fn(c);
    rt_park_forever(c);
}

static void machine_setup(RtCpu *c)
{
    rt.vcpus = 1;
    if (rt.godwit) {
        if (gw_call(&c->req, GW_HC_PROBE, 0, 0, 0, 0) == GW_HC_OK) {
            rt.gw_version = (uint32_t)c->req.ret[0];
        }
        if (gw_call(&c->req, GW_HC_INFO, 0, 0, 0, 0) == GW_HC_OK &&
            c->req.ret[1]) {
            rt.vcpus = (unsigned)c->req.ret[1];
        }
    }
    /* More vCPUs than we have stacks for: run on the boot vCPU only. */
    rt.ncpus = rt.vcpus <= RT_MAX_CPUS ? rt.vcpus : 1;
    for (unsigned i = 0; i < boot_info.nram; i++) {
        rt.ram_bytes += boot_info.ram[i].end - boot_info.ram[i].start;
        rt.ram_top = boot_info.ram[i].end;
    }
}

static void print_banner(void)
{
    uint64_t free = 0;

    if (boot_info.nram) {
        free = boot_info.ram[0].start;
    }
    rt_printf("%s: boot godwit=%d vcpus=%u tsc_khz=%lu tsc=%s pages=%s "
              "ram_mib=%lu stub_us=%lu ring=%u\n",
              payload_name, rt.godwit, rt.vcpus, rt.tsc_khz, rt.tsc_source,
              rt.page1g ? "1G" : "2M", rt.ram_bytes / MiB,
              rt_cycles_to_ns(rt.boot_cycles) / 1000, rt.ring0 ? 0 : 3);
    rt_printf("%s: layout image 0x%lx-0x%lx rw 0x%lx-0x%lx free 0x%lx\n",
              payload_name, (uintptr_t)__image_start, (uintptr_t)__image_end,
              (uintptr_t)__rw_start, (uintptr_t)__rw_end, free);
    if (rt.vcpus > RT_MAX_CPUS) {
        rt_printf("%s: %u vCPUs, at most %u supported: using vCPU 0 only\n",
                  payload_name, rt.vcpus, RT_MAX_CPUS);
    }
}

/*
 * Boot vCPU, ring 3 (ring 0 under QEMU TCG), from the stub: (magic, mbi)
 * as the loader gave them and the page-table root the stub chose. (The
 * stub's CPUID ran in ring 0; ring-3 CPUID may see other values on this
 * KVM, so we do not repeat it.)
 */
void rt_start(uint32_t magic, uint32_t mbi, uint32_t pml4)
{
    uint64_t entry = rdtsc();
    RtCpu *c = &rt_cpus[0];
    char err[160];
    char *argv[64];
    int argc;

    memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
    rt.boot_cycles = entry - boot_tsc;
    rt.poll_cycles = 1000000;
    rt.godwit = gw_probe();
    rt.ring0 = cpl() == 0;
    console_init(rt.godwit);
    if (magic != MB_BOOT_MAGIC) {
        rt_fail(c, "not started by a Multiboot loader (eax=0x%x)", magic);
    }
    if (!bootinfo_parse(mbi, err, sizeof(err))) {
        rt_fail(c, "%s", err);
    }
    machine_setup(c);
    rt.page1g = pml4 == (uintptr_t)pml4_1g;
    mem_map_high();
    tsc_init(c);
    cpu_setup(c, 0);
    print_banner();
    argc = bootinfo_args(argv, (int)ARRAY_SIZE(argv));
    if (argc > (int)ARRAY_SIZE(argv)) {
        rt_fail(c, "too many arguments (%d)", argc);
    }
    payload_main(argc, argv);
    rt_park_forever(c);
}
