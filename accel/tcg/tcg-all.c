/*
 * The tcg accelerator: software emulation for hosts without /dev/kvm,
 * on Unicorn (QEMU's TCG packaged as a library). The VM, the firmware
 * region, the TSC frequency, and the AccelOps table that the rest of
 * godwit uses. How it works and what it cannot do: docs/devel/tcg.md.
 */
#include <inttypes.h>
#include <sys/mman.h>
#include <time.h>
#include <x86intrin.h>

#include "tcg-int.h"

/*
 * Under Unicorn, rdtsc reads the host's TSC, so the guest's TSC frequency
 * is the host's. Measured against CLOCK_MONOTONIC_RAW over a few ms,
 * keeping the pair of readings that bracket each clock read most tightly.
 */
static uint64_t tcg_clock_pair(uint64_t *tsc)
{
    uint64_t best = UINT64_MAX, ns = 0;

    for (int i = 0; i < 5; i++) {
        struct timespec ts;
        uint64_t t0 = __rdtsc();
        clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
        uint64_t t1 = __rdtsc();
        if (t1 - t0 < best) {
            best = t1 - t0;
            *tsc = t0 + (t1 - t0) / 2;
            ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        }
    }
    return ns;
}

static uint32_t tcg_measure_tsc_khz(void)
{
    uint64_t tsc0, tsc1, ns0, ns1;

    ns0 = tcg_clock_pair(&tsc0);
    do {
        ns1 = tcg_clock_pair(&tsc1);
    } while (ns1 - ns0 < 5000000);
    return (uint32_t)((tsc1 - tsc0) * 1000000ull / (ns1 - ns0));
}

static void tcg_cleanup(Machine *m)
{
    TCGState *s = m->accel_state;

    if (!s) {
        return;
    }
    for (int i = 0; i < m->smp; i++) {
        if (m->cpus && m->cpus[i]->accel) {
            tcg_vcpu_destroy(m->cpus[i]);
        }
    }
    if (m->ram) {
        /* vCPU threads are joined: whoever still counts is done */
        s->count_users = MIN(s->count_users, 1);
        tcg_vcpu_dirty_stop(m);
        tcg_dirty_log_stop(m, m->ram);
    }
    if (s->fw) {
        munmap(s->fw, TCG_FW_SIZE);
    }
    g_mutex_clear(&s->dirty_lock);
    g_free(s);
    m->accel_state = NULL;
}

static bool tcg_init(Machine *m, GError **errp)
{
    TCGState *s = g_new0(TCGState, 1);

    g_mutex_init(&s->dirty_lock);
    s->count_owner = -1;
    m->accel_state = s;
    if (m->smp > (int)TCG_MAX_VCPUS) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "-smp %d: the tcg accelerator supports at most %d vCPUs",
                    m->smp, (int)TCG_MAX_VCPUS);
        goto fail;
    }
    s->fw = mmap(NULL, TCG_FW_SIZE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->fw == MAP_FAILED) {
        s->fw = NULL;
        gw_error_errno(errp, errno, "cannot allocate the firmware region");
        goto fail;
    }
    tcg_fw_init(s);
    for (int i = 0; i < m->smp; i++) {
        if (!tcg_vcpu_create(m, m->cpus[i], errp)) {
            goto fail;
        }
    }
    s->tsc_khz = tcg_measure_tsc_khz();
    /* a destination gets its vCPU state from the stream */
    if (m->kernel && !tcg_cpu_boot(m->cpus[0], (uint32_t)m->boot_entry,
                                   (uint32_t)m->boot_mbi, errp)) {
        goto fail;
    }
    return true;

fail:
    g_prefix_error(errp, "tcg: ");
    tcg_cleanup(m);
    return false;
}

static uint32_t tcg_tsc_khz(Machine *m)
{
    return tcg_state(m)->tsc_khz;
}

static const AccelOps tcg_accel_ops = {
    .name = "tcg",
    .init = tcg_init,
    .cleanup = tcg_cleanup,
    .vcpu_thread = tcg_vcpu_thread,
    .kick = tcg_vcpu_kick,
    .tsc_khz = tcg_tsc_khz,
    .dirty_log_start = tcg_dirty_log_start,
    .dirty_log_sync = tcg_dirty_log_sync,
    .dirty_log_clear = tcg_dirty_log_clear,
    .dirty_log_stop = tcg_dirty_log_stop,
    .dirty_log_manual = tcg_dirty_log_manual,
    .vcpu_dirty_start = tcg_vcpu_dirty_start,
    .vcpu_dirty_pages = tcg_vcpu_dirty_pages,
    .vcpu_dirty_stop = tcg_vcpu_dirty_stop,
    .cpu_state_save = tcg_cpu_state_save,
    .cpu_state_load = tcg_cpu_state_load,
    .cpu_start_ap = tcg_cpu_start_ap,
};

void tcg_accel_register(void)
{
    accel_register(ACCEL_TCG, &tcg_accel_ops);
}
