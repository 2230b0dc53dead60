/*
 * The hypercall port (include/godwit/hypercall-abi.h): guest payloads ask
 * godwit for machine facts and host time, park or sleep without burning a
 * host CPU, start their secondary vCPUs and report results.
 *
 * Requests are handled in the calling vCPU's thread. The request block is
 * copied in, handled, and the result copied back and marked dirty (the
 * accelerator's dirty log does not see VMM writes into guest RAM).
 */
#include <string.h>
#include <time.h>

#include "godwit/hw.h"
#include "godwit/ioport.h"
#include "godwit/machine.h"
#include "godwit/runstate.h"
#include "migration/register.h"
#include "migration/vmstate.h"

#define HC_SLEEP_MAX_NS (10ull * 1000 * 1000 * 1000)

static struct {
    GMutex lock; /* protects st */
    HypercallState st;
    Machine *m;
    Chardev *chr;
} hc;

static uint64_t realtime_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void hc_fill_clock(GwHcRequest *r)
{
    r->ret[0] = realtime_ns();
    g_mutex_lock(&hc.lock);
    r->ret[1] = hc.st.generation;
    r->ret[2] = hc.st.request;
    g_mutex_unlock(&hc.lock);
}

static void hc_park(CPUState *cpu, GwHcRequest *r)
{
    for (;;) {
        uint64_t seq = cpu_wake_seq(cpu);
        hc_fill_clock(r);
        if (r->ret[1] != r->arg[0] || r->ret[2] != r->arg[1]) {
            return;
        }
        if (cpu_should_leave(cpu)) {
            r->status = GW_HC_EINTR;
            return;
        }
        cpu_idle_wait(cpu, seq, INT64_MAX);
    }
}

static void hc_sleep(CPUState *cpu, GwHcRequest *r)
{
    int64_t deadline =
        g_get_monotonic_time() + (int64_t)(MIN(r->arg[0], HC_SLEEP_MAX_NS) /
                                           1000);

    for (;;) {
        uint64_t seq = cpu_wake_seq(cpu);
        if (g_get_monotonic_time() >= deadline) {
            return;
        }
        if (cpu_should_leave(cpu)) {
            r->status = GW_HC_EINTR;
            return;
        }
        cpu_idle_wait(cpu, seq, deadline);
    }
}

typedef struct StartApTask {
    const GwCpuState *model;
    uint64_t rip, rsp, rdi, rsi;
    bool ok;
} StartApTask;

static void start_ap_task(CPUState *ap, void *opaque)
{
    StartApTask *t = opaque;
    g_autoptr(GError) err = NULL;

    t->ok = ap->machine->accel->cpu_start_ap(ap, t->model, t->rip, t->rsp,
                                             t->rdi, t->rsi, &err);
    if (!t->ok) {
        g_warning("starting vCPU %d: %s", ap->index, err->message);
        return;
    }
    cpus_lock();
    ap->started = true;
    cpus_unlock();
}

static void hc_start_aps(CPUState *cpu, GwHcRequest *r)
{
    Machine *m = cpu->machine;
    g_autofree GwCpuState *model = g_new0(GwCpuState, 1);
    g_autoptr(GError) err = NULL;
    bool first;

    g_mutex_lock(&hc.lock);
    first = !hc.st.aps_started;
    hc.st.aps_started = 1;
    g_mutex_unlock(&hc.lock);
    if (!first || cpu->index != 0) {
        r->status = GW_HC_EINVAL;
        return;
    }
    /* The caller's own mode is the model: 64-bit ring 3, its page tables. */
    if (!m->accel->cpu_state_save(cpu, model, &err)) {
        g_warning("GW_HC_START_APS: %s", err->message);
        r->status = GW_HC_EINVAL;
        return;
    }
    for (int i = 1; i < m->smp; i++) {
        StartApTask t = {
            .model = model,
            .rip = r->arg[0],
            .rsp = r->arg[1] - (uint64_t)(i - 1) * r->arg[2],
            .rdi = (uint64_t)i,
            .rsi = r->arg[3],
        };
        run_on_cpu(m->cpus[i], start_ap_task, &t);
        if (!t.ok) {
            r->status = GW_HC_EINVAL;
            return;
        }
        cpu_kick(m->cpus[i]);
        r->ret[0]++;
    }
}

static void hc_report(GwHcRequest *r)
{
    uint64_t kind = r->arg[0];

    if (kind == 0 || kind >= GW_REPORT__MAX) {
        r->status = GW_HC_EINVAL;
        return;
    }
    g_mutex_lock(&hc.lock);
    HypercallReport *rep = &hc.st.report[kind];
    rep->count++;
    memcpy(rep->arg, &r->arg[1], sizeof(rep->arg));
    if (kind == GW_REPORT_PERF && r->arg[1] < HYPERCALL_MAX_WORKERS) {
        HypercallReport *p = &hc.st.perf[r->arg[1]];
        p->count++;
        memcpy(p->arg, &r->arg[1], sizeof(p->arg));
    }
    g_mutex_unlock(&hc.lock);
}

static void hc_puts(GwHcRequest *r)
{
    void *p;

    if (r->arg[1] > GW_HC_PUTS_MAX) {
        r->status = GW_HC_EINVAL;
        return;
    }
    p = machine_gpa_to_host(hc.m, r->arg[0], r->arg[1]);
    if (!p) {
        r->status = GW_HC_EINVAL;
        return;
    }
    chardev_write(hc.chr, p, r->arg[1]);
}

static void hc_dispatch(CPUState *cpu, GwHcRequest *r)
{
    switch (r->op) {
    case GW_HC_PROBE:
        r->ret[0] = GW_HC_VERSION;
        break;
    case GW_HC_PUTS:
        hc_puts(r);
        break;
    case GW_HC_INFO:
        r->ret[0] = hc.m->tsc_khz;
        r->ret[1] = hc.m->smp;
        r->ret[2] = cpu->index;
        r->ret[3] = hc.m->ram_size;
        break;
    case GW_HC_CLOCK:
        hc_fill_clock(r);
        break;
    case GW_HC_PARK:
        hc_park(cpu, r);
        break;
    case GW_HC_START_APS:
        hc_start_aps(cpu, r);
        break;
    case GW_HC_REPORT:
        hc_report(r);
        break;
    case GW_HC_EXIT:
        qemu_system_shutdown_request(true, "guest-shutdown");
        break;
    case GW_HC_SLEEP:
        hc_sleep(cpu, r);
        break;
    default:
        r->status = GW_HC_ENOSYS;
        break;
    }
}

static uint32_t hc_read(void *opaque, CPUState *cpu, uint16_t port,
                        unsigned size)
{
    return (port == GW_HC_PORT && size == 4) ? GW_HC_MAGIC : 0xffffffffu;
}

static void hc_write(void *opaque, CPUState *cpu, uint16_t port,
                     unsigned size, uint32_t value)
{
    GwHcRequest *guest, r;

    guest = (value & 7) ? NULL
                        : machine_gpa_to_host(hc.m, value, sizeof(r));
    if (port != GW_HC_PORT || size != 4 || !guest || !cpu) {
        g_mutex_lock(&hc.lock);
        hc.st.bad_requests++;
        g_mutex_unlock(&hc.lock);
        return;
    }
    memcpy(&r, guest, sizeof(r));
    r.status = GW_HC_OK;
    memset(r.ret, 0, sizeof(r.ret));
    hc_dispatch(cpu, &r);
    memcpy(&guest->status, &r.status, sizeof(r.status));
    memcpy(guest->ret, r.ret, sizeof(r.ret));
    machine_mark_dirty(hc.m, value, sizeof(r));
}

static const IOPortOps hypercall_ops = {
    .name = "hypercall",
    .read = hc_read,
    .write = hc_write,
};

void hypercall_init(Machine *m, Chardev *chr)
{
    hc.m = m;
    hc.chr = chr;
    memset(&hc.st, 0, sizeof(hc.st));
    ioport_register(GW_HC_PORT, 4, &hypercall_ops, NULL);
}

void hypercall_get_state(HypercallState *st)
{
    g_mutex_lock(&hc.lock);
    *st = hc.st;
    g_mutex_unlock(&hc.lock);
}

void hypercall_set_state(const HypercallState *st)
{
    g_mutex_lock(&hc.lock);
    hc.st = *st;
    g_mutex_unlock(&hc.lock);
}

void hypercall_bump_generation(void)
{
    g_mutex_lock(&hc.lock);
    hc.st.generation++;
    g_mutex_unlock(&hc.lock);
    cpus_wake_all(hc.m);
}

void hypercall_bump_request(void)
{
    g_mutex_lock(&hc.lock);
    hc.st.request++;
    g_mutex_unlock(&hc.lock);
    cpus_wake_all(hc.m);
}

/* ---- migration ----------------------------------------------------------- */

static const VMStateField report_fields[] = {
    VMSTATE_UINT64("count", HypercallReport, count),
    VMSTATE_UINT64("arg0", HypercallReport, arg[0]),
    VMSTATE_UINT64("arg1", HypercallReport, arg[1]),
    VMSTATE_UINT64("arg2", HypercallReport, arg[2]),
    VMSTATE_END,
};

static const VMStateField hypercall_fields[] = {
    VMSTATE_UINT64("generation", HypercallState, generation),
    VMSTATE_UINT64("request", HypercallState, request),
    VMSTATE_UINT64("bad_requests", HypercallState, bad_requests),
    VMSTATE_UINT8("aps_started", HypercallState, aps_started),
    VMSTATE_ARRAY("report", HypercallState, report, report_fields),
    VMSTATE_ARRAY("perf", HypercallState, perf, report_fields),
    VMSTATE_END,
};

static bool hypercall_save(QEMUFile *f, void *opaque, GError **errp)
{
    g_autofree HypercallState *st = g_new0(HypercallState, 1);

    hypercall_get_state(st);
    vmstate_save(f, hypercall_fields, st);
    return qemu_file_check(f, errp);
}

static bool hypercall_load(QEMUFile *f, void *opaque, uint32_t version_id,
                           GError **errp)
{
    g_autofree HypercallState *st = g_new0(HypercallState, 1);

    if (!vmstate_load(f, hypercall_fields, st, errp)) {
        return false;
    }
    if (st->aps_started > 1) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "aps_started must be 0 or 1, not %u", st->aps_started);
        return false;
    }
    hypercall_set_state(st);
    return true;
}

static void hypercall_describe(JsonBuilder *b, void *opaque)
{
    g_autofree HypercallState *st = g_new0(HypercallState, 1);

    hypercall_get_state(st);
    vmstate_describe(b, hypercall_fields, st);
}

static const SaveStateHandler hypercall_handler = {
    .idstr = "hypercall",
    .version_id = 1,
    .save_state = hypercall_save,
    .load_state = hypercall_load,
    .describe = hypercall_describe,
};

void hypercall_register_vmstate(void)
{
    register_savevm(&hypercall_handler, 0, NULL);
}
