/*
 * tcg vCPUs: one Unicorn engine each, its hooks, and the vCPU thread's
 * run loop with the exit switch.
 *
 * The engine leaves the guest only at points it reaches by itself:
 *   - the block hook, at every translated block, stops the engine when
 *     `leave` is set (a kick: pause, task, throttle, exit; or a waiter on
 *     the run lock whose slice is up). Stopping there is the only safe
 *     stop: Unicorn has just synced RIP to the block's start. A stop from
 *     another thread (uc_emu_stop, or uc_emu_start's timeout) can leave
 *     RIP stale and re-run or skip blocks;
 *   - hlt, which ends uc_emu_start by itself;
 *   - a guest exception (the interrupt hook) or a bad memory access.
 * Port I/O is handled inside its hook, with the run lock given up for the
 * time of the handler (the park and sleep hypercalls block there).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "godwit/ioport.h"
#include "godwit/runstate.h"
#include "tcg-int.h"

bool tcg_error(GError **errp, uc_err err, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *what = NULL;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "%s: %s", what,
                uc_strerror(err));
    return false;
}

/* ---- hooks (the vCPU's own thread, inside uc_emu_start) ----------------- */

static void tcg_hook_block(uc_engine *uc, uint64_t addr, uint32_t size,
                           void *opaque)
{
    TCGCPU *tc = tcg_cpu(opaque);

    if (atomic_load_explicit(&tc->leave, memory_order_relaxed)) {
        tc->stopped_by_hook = true;
        uc_emu_stop(uc);
    }
}

/* Port I/O runs without the run lock: a handler may block (park). */
static void tcg_io_begin(CPUState *cpu)
{
    tcg_sched_release(cpu);
}

static void tcg_io_end(CPUState *cpu)
{
    tcg_sched_acquire(cpu);
    if (cpu_should_leave(cpu)) {
        atomic_store(&tcg_cpu(cpu)->leave, true);
    }
}

static uint32_t tcg_hook_in(uc_engine *uc, uint32_t port, int size,
                            void *opaque)
{
    CPUState *cpu = opaque;
    uint32_t v;

    tcg_io_begin(cpu);
    v = ioport_read(cpu, (uint16_t)port, (unsigned)size);
    tcg_io_end(cpu);
    return v;
}

static void tcg_hook_out(uc_engine *uc, uint32_t port, int size, uint32_t value,
                         void *opaque)
{
    CPUState *cpu = opaque;

    tcg_io_begin(cpu);
    ioport_write(cpu, (uint16_t)port, (unsigned)size, value);
    tcg_io_end(cpu);
}

/*
 * Unicorn never delivers exceptions through the guest's IDT: it reports
 * them here. The payloads have no IDT, so on real hardware each of these
 * would be a triple fault; the run loop treats it as one.
 */
static void tcg_hook_intr(uc_engine *uc, uint32_t intno, void *opaque)
{
    TCGCPU *tc = tcg_cpu(opaque);

    tc->exception = (int)intno;
    uc_emu_stop(uc);
}

/* Unassigned guest-physical space reads as all ones, writes vanish (PC). */
static uint64_t tcg_unassigned_read(uc_engine *uc, uint64_t offset,
                                    unsigned size, void *opaque)
{
    static gint warned;

    if (g_atomic_int_compare_and_exchange(&warned, 0, 1)) {
        g_warning("tcg: read of unassigned address 0x%" PRIx64 " ignored",
                  (uint64_t)(uintptr_t)opaque + offset);
    }
    return UINT64_MAX;
}

static void tcg_unassigned_write(uc_engine *uc, uint64_t offset, unsigned size,
                                 uint64_t value, void *opaque)
{
    static gint warned;

    if (g_atomic_int_compare_and_exchange(&warned, 0, 1)) {
        g_warning("tcg: write to unassigned address 0x%" PRIx64 " ignored",
                  (uint64_t)(uintptr_t)opaque + offset);
    }
}

/* ---- engines ------------------------------------------------------------ */

static bool tcg_engine_map(Machine *m, uc_engine *uc, GError **errp)
{
    TCGState *s = tcg_state(m);
    uint64_t hole = m->below_4g;
    uc_err err;

    for (int i = 0; i < m->nr_slices; i++) {
        const GuestRamSlice *sl = &m->slices[i];
        err = uc_mem_map_ptr(uc, sl->gpa, sl->size, UC_PROT_ALL,
                             sl->block->host + sl->offset);
        if (err) {
            return tcg_error(errp, err, "mapping guest RAM at 0x%" PRIx64,
                             sl->gpa);
        }
    }
    err = uc_mem_map_ptr(uc, TCG_FW_BASE, TCG_FW_SIZE, UC_PROT_ALL, s->fw);
    if (err) {
        return tcg_error(errp, err, "mapping the firmware region");
    }
    /* the PCI hole (local APIC included): unassigned, as on a PC */
    if (hole < TCG_FW_BASE) {
        err = uc_mmio_map(uc, hole, TCG_FW_BASE - hole, tcg_unassigned_read,
                          (void *)(uintptr_t)hole, tcg_unassigned_write,
                          (void *)(uintptr_t)hole);
        if (err) {
            return tcg_error(errp, err, "mapping the PCI hole");
        }
    }
    return true;
}

static bool tcg_engine_hook(CPUState *cpu, int type, void *cb, int insn,
                            GError **errp)
{
    TCGCPU *tc = tcg_cpu(cpu);
    uc_err err;

    g_assert(tc->nr_hooks < (int)G_N_ELEMENTS(tc->hooks));
    if (type == UC_HOOK_INSN) {
        err = uc_hook_add(tc->uc, &tc->hooks[tc->nr_hooks], type, cb, cpu, 1, 0,
                          insn);
    } else {
        err =
            uc_hook_add(tc->uc, &tc->hooks[tc->nr_hooks], type, cb, cpu, 1, 0);
    }
    if (err) {
        return tcg_error(errp, err, "adding a hook");
    }
    tc->nr_hooks++;
    return true;
}

/*
 * A fresh engine for the vCPU (64-bit mode, CPL 0, nothing translated),
 * replacing the one it had. vCPU thread or before the thread starts.
 */
bool tcg_engine_reset(CPUState *cpu, GError **errp)
{
    TCGCPU *tc = tcg_cpu(cpu);
    uc_err err;

    if (tc->uc) {
        uc_close(tc->uc);
        tc->uc = NULL;
    }
    tc->nr_hooks = 0;
    err = uc_open(UC_ARCH_X86, UC_MODE_64, &tc->uc);
    if (err) {
        return tcg_error(errp, err, "cannot create the engine of vCPU %d",
                         cpu->index);
    }
    return tcg_engine_map(cpu->machine, tc->uc, errp) &&
           tcg_engine_hook(cpu, UC_HOOK_BLOCK, tcg_hook_block, 0, errp) &&
           tcg_engine_hook(cpu, UC_HOOK_INSN, tcg_hook_in, UC_X86_INS_IN,
                           errp) &&
           tcg_engine_hook(cpu, UC_HOOK_INSN, tcg_hook_out, UC_X86_INS_OUT,
                           errp) &&
           tcg_engine_hook(cpu, UC_HOOK_INTR, tcg_hook_intr, 0, errp);
}

bool tcg_vcpu_create(Machine *m, CPUState *cpu, GError **errp)
{
    TCGCPU *tc = g_new0(TCGCPU, 1);

    atomic_init(&tc->leave, false);
    tc->exception = -1;
    cpu->accel = tc;
    if (!tcg_engine_reset(cpu, errp)) {
        tcg_vcpu_destroy(cpu);
        return false;
    }
    return true;
}

void tcg_vcpu_destroy(CPUState *cpu)
{
    TCGCPU *tc = tcg_cpu(cpu);

    if (!tc) {
        return;
    }
    if (tc->uc) {
        uc_close(tc->uc);
    }
    g_free(tc);
    cpu->accel = NULL;
}

void tcg_vcpu_kick(CPUState *cpu)
{
    atomic_store(&tcg_cpu(cpu)->leave, true);
}

uc_err tcg_vcpu_run(CPUState *cpu, uint64_t rip, uint64_t until)
{
    TCGCPU *tc = tcg_cpu(cpu);

    tc->stopped_by_hook = false;
    tc->exception = -1;
    return uc_emu_start(tc->uc, rip, until, 0, 0);
}

/* ---- the run loop ------------------------------------------------------- */

static void tcg_report_fatal(CPUState *cpu, const char *what)
{
    uc_engine *uc = tcg_cpu(cpu)->uc;
    uint64_t rip = 0, rsp = 0, rflags = 0;

    uc_reg_read(uc, UC_X86_REG_RIP, &rip);
    uc_reg_read(uc, UC_X86_REG_RSP, &rsp);
    uc_reg_read(uc, UC_X86_REG_RFLAGS, &rflags);
    fprintf(stderr,
            "godwit: vCPU %d: %s (RIP=0x%" PRIx64 " RSP=0x%" PRIx64
            " RFLAGS=0x%" PRIx64 ")\n",
            cpu->index, what, rip, rsp, rflags);
}

/* The vCPU cannot continue: stop the whole VM in internal-error. */
static void tcg_vcpu_fail(CPUState *cpu)
{
    atomic_store(&cpu->stop, true);
    if (!shutdown_requested()) {
        qemu_system_vmstop_request(RUN_STATE_INTERNAL_ERROR);
    }
}

/* hlt: no interrupts exist here, so sleep until told to leave. */
static void tcg_vcpu_halt(CPUState *cpu)
{
    uint64_t seq = cpu_wake_seq(cpu);

    cpus_lock();
    cpu->halted = true;
    cpus_unlock();
    cpu_idle_wait(cpu, seq, INT64_MAX);
    cpus_lock();
    cpu->halted = false;
    cpus_unlock();
}

/* Why uc_emu_start returned; false if the vCPU cannot go on. */
static bool tcg_handle_exit(CPUState *cpu, uc_err err)
{
    TCGCPU *tc = tcg_cpu(cpu);
    uint64_t rip = 0;

    if (tc->exception >= 0) {
        g_autofree char *what = g_strdup_printf(
            "guest exception %d with no way to deliver it (triple fault), "
            "shutting down",
            tc->exception);
        tcg_report_fatal(cpu, what);
        qemu_system_shutdown_request(true, "guest-reset");
        return false;
    }
    if (err != UC_ERR_OK) {
        g_autofree char *what =
            g_strdup_printf("emulation failed: %s", uc_strerror(err));
        tcg_report_fatal(cpu, what);
        return false;
    }
    if (tc->stopped_by_hook) {
        return true; /* asked to leave: the caller looks at why */
    }
    uc_reg_read(tc->uc, UC_X86_REG_RIP, &rip);
    if (rip == 0) {
        tcg_report_fatal(cpu, "guest jumped to address 0");
        return false;
    }
    tcg_vcpu_halt(cpu); /* the only other way out: hlt */
    return true;
}

void *tcg_vcpu_thread(void *opaque)
{
    CPUState *cpu = opaque;
    TCGCPU *tc = tcg_cpu(cpu);

    cpu_set_current(cpu);
    atomic_store(&cpu->thread_id, (int)gettid());
    {
        g_autofree char *name = g_strdup_printf("CPU %d/TCG", cpu->index);
        pthread_setname_np(pthread_self(), name);
    }

    /* Start at a safe point (see the kvm loop): paused until resumed. */
    bool run = cpu_handle_pause(cpu);
    while (run) {
        uint64_t rip;
        uc_err err;

        if (cpu_should_leave(cpu) || !cpu->started) {
            if (!cpu_handle_pause(cpu)) {
                break;
            }
            continue; /* a throttle sleep or a task may have ended it */
        }
        tcg_sched_acquire(cpu);
        /* a kick from now on stops the engine; one before is seen here */
        atomic_store(&tc->leave, false);
        if (cpu_should_leave(cpu)) {
            tcg_sched_release(cpu);
            continue;
        }
        uc_reg_read(tc->uc, UC_X86_REG_RIP, &rip);
        atomic_fetch_add(&tcg_state(cpu->machine)->runs, 1);
        err = tcg_vcpu_run(cpu, rip, 0);
        tcg_sched_release(cpu);
        if (!tcg_handle_exit(cpu, err)) {
            tcg_vcpu_fail(cpu);
        }
    }
    cpu_set_current(NULL);
    return NULL;
}
