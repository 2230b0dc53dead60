/*
 * KVM vCPUs: creation, the vCPU thread's run loop and its exit switch,
 * and the kick that makes a vCPU leave the guest.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "godwit/ioport.h"
#include "godwit/runstate.h"
#include "kvm-int.h"

#define CPUID_1_ECX_X2APIC (1u << 21)
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)

/* The vCPU's own CPUID table: the host's supported one, with its APIC id. */
static bool kvm_vcpu_set_cpuid(KVMState *s, CPUState *cpu, int fd,
                               GError **errp)
{
    size_t sz = sizeof(*s->cpuid) +
                s->cpuid->nent * sizeof(struct kvm_cpuid_entry2);
    g_autofree struct kvm_cpuid2 *c = g_memdup2(s->cpuid, sz);

    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        switch (e->function) {
        case 1:
            e->ebx = (e->ebx & 0x00ffffffu) | ((uint32_t)cpu->index << 24);
            /* No in-kernel local APIC: don't advertise what needs one. */
            e->ecx &= ~(CPUID_1_ECX_X2APIC | CPUID_1_ECX_TSC_DEADLINE);
            break;
        case 0xb:
        case 0x1f:
            e->edx = cpu->index;
            break;
        }
    }
    if (ioctl(fd, KVM_SET_CPUID2, c) < 0) {
        return gw_error_errno(errp, errno, "KVM_SET_CPUID2 (vCPU %d)",
                              cpu->index);
    }
    return true;
}

bool kvm_vcpu_create(Machine *m, CPUState *cpu, GError **errp)
{
    KVMState *s = kvm_state(m);
    KVMCPU *kc;
    int fd = ioctl(s->vm_fd, KVM_CREATE_VCPU, cpu->index);

    if (fd < 0) {
        return gw_error_errno(errp, errno, "KVM_CREATE_VCPU %d", cpu->index);
    }
    void *run = mmap(NULL, s->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                     fd, 0);
    if (run == MAP_FAILED) {
        gw_error_errno(errp, errno, "mmap of vCPU %d run area", cpu->index);
        close(fd);
        return false;
    }
    kc = g_new0(KVMCPU, 1);
    kc->fd = fd;
    kc->run = run;
    cpu->accel = kc;
    if (!kvm_ring_vcpu_map(s, cpu, errp) ||
        !kvm_vcpu_set_cpuid(s, cpu, fd, errp)) {
        kvm_vcpu_destroy(cpu);
        return false;
    }
    return true;
}

void kvm_vcpu_destroy(CPUState *cpu)
{
    KVMCPU *kc = cpu->accel;
    KVMState *s = kvm_state(cpu->machine);

    if (!kc) {
        return;
    }
    kvm_ring_vcpu_unmap(s, cpu);
    munmap(kc->run, s->run_size);
    close(kc->fd);
    g_free(kc);
    cpu->accel = NULL;
}

void kvm_vcpu_kick(CPUState *cpu)
{
    KVMCPU *kc = cpu->accel;

    /*
     * immediate_exit covers a kick that lands just before KVM_RUN; the
     * signal interrupts one already inside it.
     */
    __atomic_store_n(&kc->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (cpu->thread_started) {
        pthread_kill(cpu->thread, KVM_SIG_IPI);
    }
}

/*
 * Completes a pending I/O exit so that the register state is consistent
 * (KVM finishes an IN/OUT only on the next KVM_RUN).
 */
static void kvm_complete_io(CPUState *cpu)
{
    KVMCPU *kc = cpu->accel;

    if (!kc->io_pending) {
        return;
    }
    __atomic_store_n(&kc->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (ioctl(kc->fd, KVM_RUN, 0) < 0 && errno != EINTR) {
        g_warning("vCPU %d: completing I/O: %s", cpu->index,
                  g_strerror(errno));
    }
    kc->io_pending = false;
}

static void kvm_handle_io(CPUState *cpu, struct kvm_run *run)
{
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    unsigned size = run->io.size;

    for (uint32_t i = 0; i < run->io.count; i++, data += size) {
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            uint32_t v = 0;
            memcpy(&v, data, size);
            ioport_write(cpu, run->io.port, size, v);
        } else {
            uint32_t v = ioport_read(cpu, run->io.port, size);
            memcpy(data, &v, size);
        }
    }
}

static void kvm_handle_mmio(CPUState *cpu, struct kvm_run *run)
{
    static gint warned;

    /* Nothing is mapped outside RAM: reads float high, writes vanish. */
    if (!run->mmio.is_write) {
        memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
    }
    if (g_atomic_int_compare_and_exchange(&warned, 0, 1)) {
        g_warning("vCPU %d: access to unassigned address 0x%llx ignored",
                  cpu->index, (unsigned long long)run->mmio.phys_addr);
    }
}

static void kvm_report_fatal(CPUState *cpu, const char *what)
{
    struct kvm_regs regs;
    KVMCPU *kc = cpu->accel;

    if (ioctl(kc->fd, KVM_GET_REGS, &regs) == 0) {
        fprintf(stderr,
                "godwit: vCPU %d: %s (RIP=0x%llx RSP=0x%llx RFLAGS=0x%llx)\n",
                cpu->index, what, (unsigned long long)regs.rip,
                (unsigned long long)regs.rsp,
                (unsigned long long)regs.rflags);
    } else {
        fprintf(stderr, "godwit: vCPU %d: %s\n", cpu->index, what);
    }
}

/* Handles one exit; returns false if the vCPU cannot go on. */
static bool kvm_handle_exit(CPUState *cpu, struct kvm_run *run)
{
    KVMCPU *kc = cpu->accel;

    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        kc->io_pending = true;
        kvm_handle_io(cpu, run);
        return true;
    case KVM_EXIT_MMIO:
        kc->io_pending = true;
        kvm_handle_mmio(cpu, run);
        return true;
    case KVM_EXIT_HLT: {
        /* No interrupts exist here: sleep until told to leave. */
        uint64_t seq = cpu_wake_seq(cpu);
        cpus_lock();
        cpu->halted = true;
        cpus_unlock();
        cpu_idle_wait(cpu, seq, INT64_MAX);
        cpus_lock();
        cpu->halted = false;
        cpus_unlock();
        return true;
    }
    case KVM_EXIT_INTR:
        return true;
    case KVM_EXIT_DIRTY_RING_FULL:
        kvm_ring_full(cpu);
        return true;
    case KVM_EXIT_SHUTDOWN:
        kvm_report_fatal(cpu, "guest triple fault, shutting down");
        qemu_system_shutdown_request(true, "guest-reset");
        return false;
    case KVM_EXIT_FAIL_ENTRY:
        kvm_report_fatal(cpu, "KVM entry failed");
        return false;
    case KVM_EXIT_INTERNAL_ERROR:
        kvm_report_fatal(cpu, "KVM internal error");
        return false;
    default: {
        g_autofree char *what =
            g_strdup_printf("unhandled KVM exit %u", run->exit_reason);
        kvm_report_fatal(cpu, what);
        return false;
    }
    }
}

/* The vCPU cannot continue: stop the whole VM in internal-error. */
static void kvm_vcpu_fail(CPUState *cpu)
{
    atomic_store(&cpu->stop, true);
    if (!shutdown_requested()) {
        qemu_system_vmstop_request(RUN_STATE_INTERNAL_ERROR);
    }
}

void *kvm_vcpu_thread(void *opaque)
{
    CPUState *cpu = opaque;
    KVMCPU *kc = cpu->accel;
    sigset_t set;

    cpu_set_current(cpu);
    atomic_store(&cpu->thread_id, (int)gettid());
    sigemptyset(&set);
    sigaddset(&set, KVM_SIG_IPI);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    {
        g_autofree char *name = g_strdup_printf("CPU %d/KVM", cpu->index);
        pthread_setname_np(pthread_self(), name);
    }

    /*
     * Start at a safe point: a VM resumed before this thread got to run
     * must not find it marked stopped while it enters the guest.
     */
    bool run = cpu_handle_pause(cpu);
    while (run) {
        if (cpu_should_leave(cpu) || !cpu->started) {
            kvm_complete_io(cpu);
            if (!cpu_handle_pause(cpu)) {
                break;
            }
        }
        __atomic_store_n(&kc->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        if (cpu_should_leave(cpu)) {
            continue;
        }
        int r = ioctl(kc->fd, KVM_RUN, 0);
        kc->io_pending = false;
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            g_autofree char *what =
                g_strdup_printf("KVM_RUN failed: %s", g_strerror(errno));
            kvm_report_fatal(cpu, what);
            kvm_vcpu_fail(cpu);
            continue;
        }
        if (!kvm_handle_exit(cpu, kc->run)) {
            kvm_vcpu_fail(cpu);
        }
    }
    cpu_set_current(NULL);
    return NULL;
}
