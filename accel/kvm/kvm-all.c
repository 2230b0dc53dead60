/*
 * The KVM accelerator: the VM, its memory slots, CPUID, and the AccelOps
 * table that the rest of godwit uses.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm-int.h"

#define KVM_DEVICE "/dev/kvm"
#define KVM_TSS_ADDR 0xfffbd000
#define KVM_CPUID_MAX_ENTRIES 256

static void kvm_sig_ipi(int sig)
{
    /* Only there to interrupt KVM_RUN (EINTR). */
}

static void kvm_install_signal(void)
{
    static gsize done;

    if (g_once_init_enter(&done)) {
        struct sigaction sa = {.sa_handler = kvm_sig_ipi};
        sigemptyset(&sa.sa_mask);
        sigaction(KVM_SIG_IPI, &sa, NULL);
        g_once_init_leave(&done, 1);
    }
}

static struct kvm_cpuid2 *kvm_get_supported_cpuid(int kvm_fd, GError **errp)
{
    int n = KVM_CPUID_MAX_ENTRIES;

    for (;;) {
        struct kvm_cpuid2 *c =
            g_malloc0(sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
        c->nent = n;
        if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            return c;
        }
        int err = errno;
        g_free(c);
        if (err != E2BIG || n >= 4096) {
            gw_error_errno(errp, err, "KVM_GET_SUPPORTED_CPUID");
            return NULL;
        }
        n *= 2;
    }
}

int kvm_check_extension(KVMState *s, int cap)
{
    int r =
        ioctl(s->vm_fd >= 0 ? s->vm_fd : s->kvm_fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

static bool kvm_open(KVMState *s, GError **errp)
{
    int ver;

    s->kvm_fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
    if (s->kvm_fd < 0) {
        return gw_error_errno(errp, errno, "cannot open " KVM_DEVICE);
    }
    ver = ioctl(s->kvm_fd, KVM_GET_API_VERSION, 0);
    if (ver != KVM_API_VERSION) {
        g_set_error(errp, GW_ERROR, GW_ERROR_KVM_MISSING_CAP,
                    "KVM API version %d, expected %d", ver, KVM_API_VERSION);
        return false;
    }
    s->vm_fd = -1;
    s->run_size = ioctl(s->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if ((long)s->run_size <= 0) {
        return gw_error_errno(errp, errno, "KVM_GET_VCPU_MMAP_SIZE");
    }
    for (;;) {
        s->vm_fd = ioctl(s->kvm_fd, KVM_CREATE_VM, 0);
        if (s->vm_fd >= 0 || errno != EINTR) {
            break;
        }
    }
    if (s->vm_fd < 0) {
        return gw_error_errno(errp, errno, "KVM_CREATE_VM");
    }
    return true;
}

static bool kvm_setup_vm(Machine *m, KVMState *s, GError **errp)
{
    /* Some hosts need a TSS area for real-mode emulation; harmless else. */
    if (ioctl(s->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0 &&
        errno != ENOTTY && errno != EINVAL) {
        return gw_error_errno(errp, errno, "KVM_SET_TSS_ADDR");
    }
    /* The ring before any vCPU exists; it replaces manual protection. */
    if (!kvm_ring_enable(m, s, errp)) {
        return false;
    }
    int mp = s->ring_size
                 ? 0
                 : kvm_check_extension(s, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
    uint64_t want =
        KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET;
    if (mp & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) {
        struct kvm_enable_cap cap = {
            .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
            .args = {mp & want},
        };
        if (ioctl(s->vm_fd, KVM_ENABLE_CAP, &cap) == 0) {
            s->manual_protect = true;
        }
    }
    s->has_xcrs = kvm_check_extension(s, KVM_CAP_XCRS);
    s->xsave_size = 4096;
    int x2 = kvm_check_extension(s, KVM_CAP_XSAVE2);
    if (x2 > 4096) {
        s->has_xsave2 = true;
        s->xsave_size = x2;
    }
    if (s->xsave_size > GW_CPU_XSAVE_MAX) {
        g_set_error(errp, GW_ERROR, GW_ERROR_KVM_MISSING_CAP,
                    "XSAVE area of %u bytes is larger than godwit supports",
                    s->xsave_size);
        return false;
    }
    s->cpuid = kvm_get_supported_cpuid(s->kvm_fd, errp);
    if (!s->cpuid) {
        return false;
    }
    if (!kvm_probe_msrs(s, errp)) {
        return false;
    }
    for (int i = 0; i < m->nr_slices; i++) {
        const GuestRamSlice *sl = &m->slices[i];
        KVMSlot *slot = &s->slots[s->nr_slots];
        slot->id = s->nr_slots;
        slot->gpa = sl->gpa;
        slot->size = sl->size;
        slot->block = sl->block;
        slot->host = sl->block->host + sl->offset;
        slot->block_page = sl->offset >> GW_PAGE_SHIFT;
        if (!kvm_set_slot(s, slot, 0, errp)) {
            return false;
        }
        s->nr_slots++;
    }
    return true;
}

static void kvm_cleanup(Machine *m)
{
    KVMState *s = m->accel_state;

    if (!s) {
        return;
    }
    for (int i = 0; i < m->smp; i++) {
        if (m->cpus && m->cpus[i]->accel) {
            kvm_vcpu_destroy(m->cpus[i]);
        }
    }
    for (int i = 0; i < s->nr_slots; i++) {
        g_free(s->slots[i].dirty);
        g_free(s->slots[i].to_clear);
    }
    g_free(s->vcpu_dirty);
    if (s->vm_fd >= 0) {
        close(s->vm_fd);
    }
    if (s->kvm_fd >= 0) {
        close(s->kvm_fd);
    }
    g_free(s->cpuid);
    g_mutex_clear(&s->dirty_lock);
    g_free(s);
    m->accel_state = NULL;
}

static bool kvm_init(Machine *m, GError **errp)
{
    KVMState *s = g_new0(KVMState, 1);

    s->kvm_fd = s->vm_fd = -1;
    g_mutex_init(&s->dirty_lock);
    m->accel_state = s;
    kvm_install_signal();

    if (!kvm_open(s, errp) || !kvm_setup_vm(m, s, errp)) {
        goto fail;
    }
    int max = kvm_check_extension(s, KVM_CAP_MAX_VCPUS);
    if (max <= 0) {
        max = kvm_check_extension(s, KVM_CAP_NR_VCPUS);
    }
    if (max > 0 && m->smp > max) {
        g_set_error(errp, GW_ERROR, GW_ERROR_KVM_MISSING_CAP,
                    "-smp %d: KVM supports at most %d vCPUs", m->smp, max);
        goto fail;
    }
    for (int i = 0; i < m->smp; i++) {
        if (!kvm_vcpu_create(m, m->cpus[i], errp)) {
            goto fail;
        }
    }
    int khz = ioctl(((KVMCPU *)m->cpus[0]->accel)->fd, KVM_GET_TSC_KHZ, 0);
    if (khz <= 0) {
        gw_error_errno(errp, errno, "KVM_GET_TSC_KHZ");
        goto fail;
    }
    s->tsc_khz = khz;
    if (!kvm_cpu_set_boot_state(m->cpus[0], (uint32_t)m->boot_entry,
                                0x2BADB002u, (uint32_t)m->boot_mbi, errp)) {
        goto fail;
    }
    return true;

fail:
    g_prefix_error(errp, "KVM: ");
    kvm_cleanup(m);
    return false;
}

static uint32_t kvm_tsc_khz(Machine *m)
{
    return kvm_state(m)->tsc_khz;
}

static const AccelOps kvm_accel_ops = {
    .name = "kvm",
    .init = kvm_init,
    .cleanup = kvm_cleanup,
    .vcpu_thread = kvm_vcpu_thread,
    .kick = kvm_vcpu_kick,
    .tsc_khz = kvm_tsc_khz,
    .dirty_log_start = kvm_dirty_log_start,
    .dirty_log_sync = kvm_dirty_log_sync,
    .dirty_log_clear = kvm_dirty_log_clear,
    .dirty_log_stop = kvm_dirty_log_stop,
    .dirty_log_manual = kvm_dirty_log_manual,
    .vcpu_dirty_start = kvm_vcpu_dirty_start,
    .vcpu_dirty_pages = kvm_vcpu_dirty_pages,
    .vcpu_dirty_stop = kvm_vcpu_dirty_stop,
    .cpu_state_save = kvm_cpu_state_save,
    .cpu_state_load = kvm_cpu_state_load,
    .cpu_start_ap = kvm_cpu_start_ap,
};

void kvm_accel_register(void)
{
    accel_register(ACCEL_KVM, &kvm_accel_ops);
}
