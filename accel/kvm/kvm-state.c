/*
 * vCPU state through KVM: save into / load from the plain GwCpuState,
 * the Multiboot boot state, and starting secondary vCPUs in 64-bit mode.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm-int.h"

/* MSRs a 64-bit guest needs, saved when KVM lists and accepts them. */
static const uint32_t kvm_msr_candidates[] = {
    0x00000010, /* IA32_TSC */
    0x0000003b, /* IA32_TSC_ADJUST */
    0x00000174, /* IA32_SYSENTER_CS */
    0x00000175, /* IA32_SYSENTER_ESP */
    0x00000176, /* IA32_SYSENTER_EIP */
    0x000001a0, /* IA32_MISC_ENABLE */
    0x00000277, /* IA32_PAT */
    0xc0000081, /* STAR */
    0xc0000082, /* LSTAR */
    0xc0000083, /* CSTAR */
    0xc0000084, /* SYSCALL_MASK */
    0xc0000102, /* KERNEL_GS_BASE */
    0xc0000103, /* TSC_AUX */
};
#define MSR_IA32_TSC 0x10

/* A kvm_msrs with room for n entries (KVM's flexible array). */
static struct kvm_msrs *msr_buf_new(uint32_t n)
{
    struct kvm_msrs *m =
        g_malloc0(sizeof(*m) + n * sizeof(struct kvm_msr_entry));
    m->nmsrs = n;
    return m;
}

bool kvm_probe_msrs(KVMState *s, GError **errp)
{
    struct kvm_msr_list probe = {.nmsrs = 0};
    g_autofree struct kvm_msr_list *list = NULL;

    /* First call fails with E2BIG and tells the count. */
    if (ioctl(s->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 &&
        errno != E2BIG) {
        return gw_error_errno(errp, errno, "KVM_GET_MSR_INDEX_LIST");
    }
    list = g_malloc0(sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
    list->nmsrs = probe.nmsrs;
    if (ioctl(s->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
        return gw_error_errno(errp, errno, "KVM_GET_MSR_INDEX_LIST");
    }
    /*
     * Candidates in table order, IA32_TSC moved last: on load, the TSC is
     * written after everything else, TSC_ADJUST included.
     */
    s->nmsrs = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < G_N_ELEMENTS(kvm_msr_candidates); k++) {
            uint32_t want = kvm_msr_candidates[k];
            if ((want == MSR_IA32_TSC) != (pass == 1)) {
                continue;
            }
            for (uint32_t i = 0; i < list->nmsrs; i++) {
                if (list->indices[i] == want) {
                    s->msrs[s->nmsrs++] = want;
                    break;
                }
            }
        }
    }
    return true;
}

static void seg_from_kvm(GwSegment *d, const struct kvm_segment *s)
{
    d->base = s->base;
    d->limit = s->limit;
    d->selector = s->selector;
    d->type = s->type;
    d->present = s->present;
    d->dpl = s->dpl;
    d->db = s->db;
    d->s = s->s;
    d->l = s->l;
    d->g = s->g;
    d->avl = s->avl;
    d->unusable = s->unusable;
}

static void seg_to_kvm(struct kvm_segment *d, const GwSegment *s)
{
    memset(d, 0, sizeof(*d));
    d->base = s->base;
    d->limit = s->limit;
    d->selector = s->selector;
    d->type = s->type;
    d->present = s->present;
    d->dpl = s->dpl;
    d->db = s->db;
    d->s = s->s;
    d->l = s->l;
    d->g = s->g;
    d->avl = s->avl;
    d->unusable = s->unusable;
}

static void sregs_from_kvm(GwCpuState *st, const struct kvm_sregs *sr)
{
    seg_from_kvm(&st->cs, &sr->cs);
    seg_from_kvm(&st->ds, &sr->ds);
    seg_from_kvm(&st->es, &sr->es);
    seg_from_kvm(&st->fs, &sr->fs);
    seg_from_kvm(&st->gs, &sr->gs);
    seg_from_kvm(&st->ss, &sr->ss);
    seg_from_kvm(&st->tr, &sr->tr);
    seg_from_kvm(&st->ldt, &sr->ldt);
    st->gdt_base = sr->gdt.base;
    st->gdt_limit = sr->gdt.limit;
    st->idt_base = sr->idt.base;
    st->idt_limit = sr->idt.limit;
    st->cr0 = sr->cr0;
    st->cr2 = sr->cr2;
    st->cr3 = sr->cr3;
    st->cr4 = sr->cr4;
    st->cr8 = sr->cr8;
    st->efer = sr->efer;
    st->apic_base = sr->apic_base;
}

static void sregs_to_kvm(struct kvm_sregs *sr, const GwCpuState *st)
{
    memset(sr, 0, sizeof(*sr));
    seg_to_kvm(&sr->cs, &st->cs);
    seg_to_kvm(&sr->ds, &st->ds);
    seg_to_kvm(&sr->es, &st->es);
    seg_to_kvm(&sr->fs, &st->fs);
    seg_to_kvm(&sr->gs, &st->gs);
    seg_to_kvm(&sr->ss, &st->ss);
    seg_to_kvm(&sr->tr, &st->tr);
    seg_to_kvm(&sr->ldt, &st->ldt);
    sr->gdt.base = st->gdt_base;
    sr->gdt.limit = st->gdt_limit;
    sr->idt.base = st->idt_base;
    sr->idt.limit = st->idt_limit;
    sr->cr0 = st->cr0;
    sr->cr2 = st->cr2;
    sr->cr3 = st->cr3;
    sr->cr4 = st->cr4;
    sr->cr8 = st->cr8;
    sr->efer = st->efer;
    sr->apic_base = st->apic_base;
}

static void regs_from_kvm(GwCpuState *st, const struct kvm_regs *r)
{
    st->rax = r->rax, st->rbx = r->rbx, st->rcx = r->rcx, st->rdx = r->rdx;
    st->rsi = r->rsi, st->rdi = r->rdi, st->rsp = r->rsp, st->rbp = r->rbp;
    st->r8 = r->r8, st->r9 = r->r9, st->r10 = r->r10, st->r11 = r->r11;
    st->r12 = r->r12, st->r13 = r->r13, st->r14 = r->r14, st->r15 = r->r15;
    st->rip = r->rip, st->rflags = r->rflags;
}

static void regs_to_kvm(struct kvm_regs *r, const GwCpuState *st)
{
    r->rax = st->rax, r->rbx = st->rbx, r->rcx = st->rcx, r->rdx = st->rdx;
    r->rsi = st->rsi, r->rdi = st->rdi, r->rsp = st->rsp, r->rbp = st->rbp;
    r->r8 = st->r8, r->r9 = st->r9, r->r10 = st->r10, r->r11 = st->r11;
    r->r12 = st->r12, r->r13 = st->r13, r->r14 = st->r14, r->r15 = st->r15;
    r->rip = st->rip, r->rflags = st->rflags;
}

static bool kvm_save_xstate(KVMState *s, int fd, GwCpuState *st, GError **errp)
{
    unsigned long req = s->has_xsave2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;

    st->xsave_size = s->xsave_size;
    if (ioctl(fd, req, st->xsave) < 0) {
        return gw_error_errno(errp, errno, "KVM_GET_XSAVE");
    }
    st->xcr0 = 0;
    if (s->has_xcrs) {
        struct kvm_xcrs xcrs;
        if (ioctl(fd, KVM_GET_XCRS, &xcrs) < 0) {
            return gw_error_errno(errp, errno, "KVM_GET_XCRS");
        }
        for (uint32_t i = 0; i < xcrs.nr_xcrs; i++) {
            if (xcrs.xcrs[i].xcr == 0) {
                st->xcr0 = xcrs.xcrs[i].value;
            }
        }
    }
    return true;
}

/*
 * Whether every state component that XSTATE_BV says is in use lies within
 * the first `size` bytes of a standard-format XSAVE image (offsets and
 * sizes from CPUID leaf 0xD; x87 and SSE live in the legacy area).
 */
static bool kvm_xsave_fits(KVMState *s, const uint8_t *xsave, uint32_t size)
{
    uint64_t bv;

    memcpy(&bv, xsave + 512, 8);
    for (int i = 2; i < 64; i++) {
        bool found = false;
        if (!(bv & (1ull << i))) {
            continue;
        }
        for (uint32_t k = 0; k < s->cpuid->nent; k++) {
            const struct kvm_cpuid_entry2 *e = &s->cpuid->entries[k];
            if (e->function == 0xd && e->index == (uint32_t)i) {
                found = (uint64_t)e->ebx + e->eax <= size;
            }
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

static bool kvm_load_xstate(KVMState *s, int fd, const GwCpuState *st,
                            GError **errp)
{
    g_autofree uint8_t *image = NULL;
    const void *xsave = st->xsave;

    if (st->xsave_size != s->xsave_size) {
        /*
         * A smaller image (the tcg accelerator saves x87 and SSE only) is
         * padded with zeros, which leaves every later component in its
         * initial state, provided XSTATE_BV names none beyond it.
         */
        if (st->xsave_size > s->xsave_size || st->xsave_size < 576 ||
            !kvm_xsave_fits(s, st->xsave, st->xsave_size)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "XSAVE area is %u bytes here, %u in the saved "
                        "state",
                        s->xsave_size, st->xsave_size);
            return false;
        }
        image = g_malloc0(s->xsave_size);
        memcpy(image, st->xsave, st->xsave_size);
        xsave = image;
    }
    if (s->has_xcrs && st->xcr0) {
        struct kvm_xcrs xcrs = {.nr_xcrs = 1};
        xcrs.xcrs[0].xcr = 0;
        xcrs.xcrs[0].value = st->xcr0;
        if (ioctl(fd, KVM_SET_XCRS, &xcrs) < 0) {
            return gw_error_errno(errp, errno, "KVM_SET_XCRS");
        }
    }
    if (ioctl(fd, KVM_SET_XSAVE, xsave) < 0) {
        return gw_error_errno(errp, errno, "KVM_SET_XSAVE");
    }
    return true;
}

static bool kvm_save_msrs(KVMState *s, int fd, GwCpuState *st, GError **errp)
{
    g_autofree struct kvm_msrs *buf = msr_buf_new(s->nmsrs);

    for (uint32_t i = 0; i < s->nmsrs; i++) {
        buf->entries[i].index = s->msrs[i];
    }
    int n = ioctl(fd, KVM_GET_MSRS, buf);
    if (n < 0) {
        return gw_error_errno(errp, errno, "KVM_GET_MSRS");
    }
    /* KVM stops at the first MSR it refuses: keep those it returned. */
    st->nmsrs = n;
    for (int i = 0; i < n; i++) {
        st->msrs[i].index = buf->entries[i].index;
        st->msrs[i].value = buf->entries[i].data;
    }
    return true;
}

static bool kvm_load_msrs(int fd, const GwCpuState *st, GError **errp)
{
    g_autofree struct kvm_msrs *buf = NULL;

    if (st->nmsrs > GW_CPU_MAX_MSRS) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "too many MSRs");
        return false;
    }
    buf = msr_buf_new(st->nmsrs);
    for (uint32_t i = 0; i < st->nmsrs; i++) {
        buf->entries[i].index = st->msrs[i].index;
        buf->entries[i].data = st->msrs[i].value;
    }
    int n = ioctl(fd, KVM_SET_MSRS, buf);
    if (n < 0) {
        return gw_error_errno(errp, errno, "KVM_SET_MSRS");
    }
    if ((uint32_t)n != st->nmsrs) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "KVM refused MSR 0x%x",
                    st->msrs[n].index);
        return false;
    }
    return true;
}

bool kvm_cpu_state_save(CPUState *cpu, GwCpuState *st, GError **errp)
{
    KVMState *s = kvm_state(cpu->machine);
    KVMCPU *kc = cpu->accel;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_vcpu_events ev;

    G_STATIC_ASSERT(sizeof(ev) <= sizeof(st->events));
    memset(st, 0, offsetof(GwCpuState, xsave));
    if (ioctl(kc->fd, KVM_GET_REGS, &regs) < 0) {
        return gw_error_errno(errp, errno, "KVM_GET_REGS");
    }
    if (ioctl(kc->fd, KVM_GET_SREGS, &sregs) < 0) {
        return gw_error_errno(errp, errno, "KVM_GET_SREGS");
    }
    regs_from_kvm(st, &regs);
    sregs_from_kvm(st, &sregs);
    if (!kvm_save_xstate(s, kc->fd, st, errp) ||
        !kvm_save_msrs(s, kc->fd, st, errp)) {
        return false;
    }
    if (ioctl(kc->fd, KVM_GET_VCPU_EVENTS, &ev) < 0) {
        return gw_error_errno(errp, errno, "KVM_GET_VCPU_EVENTS");
    }
    memcpy(st->events, &ev, sizeof(ev));
    cpus_lock();
    st->started = cpu->started;
    st->halted = cpu->halted;
    cpus_unlock();
    return true;
}

bool kvm_cpu_state_load(CPUState *cpu, const GwCpuState *st, GError **errp)
{
    KVMState *s = kvm_state(cpu->machine);
    KVMCPU *kc = cpu->accel;
    struct kvm_regs regs = {0};
    struct kvm_sregs sregs;
    struct kvm_vcpu_events ev;

    sregs_to_kvm(&sregs, st);
    regs_to_kvm(&regs, st);
    if (ioctl(kc->fd, KVM_SET_SREGS, &sregs) < 0) {
        return gw_error_errno(errp, errno, "KVM_SET_SREGS");
    }
    if (ioctl(kc->fd, KVM_SET_REGS, &regs) < 0) {
        return gw_error_errno(errp, errno, "KVM_SET_REGS");
    }
    if (!kvm_load_xstate(s, kc->fd, st, errp) ||
        !kvm_load_msrs(kc->fd, st, errp)) {
        return false;
    }
    memcpy(&ev, st->events, sizeof(ev));
    /* Only restore what was saved; leave the rest to KVM. */
    ev.flags = KVM_VCPUEVENT_VALID_SHADOW;
    if (ioctl(kc->fd, KVM_SET_VCPU_EVENTS, &ev) < 0) {
        return gw_error_errno(errp, errno, "KVM_SET_VCPU_EVENTS");
    }
    cpus_lock();
    cpu->started = st->started;
    cpus_unlock();
    return true;
}

static struct kvm_segment flat_segment(uint16_t sel, uint8_t type)
{
    struct kvm_segment seg = {
        .base = 0,
        .limit = 0xffffffff,
        .selector = sel,
        .type = type,
        .present = 1,
        .dpl = 0,
        .db = 1,
        .s = 1,
        .l = 0,
        .g = 1,
    };
    return seg;
}

bool kvm_cpu_set_boot_state(CPUState *cpu, uint32_t entry, uint32_t eax,
                            uint32_t ebx, GError **errp)
{
    KVMCPU *kc = cpu->accel;
    struct kvm_sregs sregs;
    struct kvm_regs regs = {0};

    if (ioctl(kc->fd, KVM_GET_SREGS, &sregs) < 0) {
        return gw_error_errno(errp, errno, "KVM_GET_SREGS");
    }
    /* Multiboot: 32-bit flat protected mode, paging off. */
    sregs.cs = flat_segment(0x10, 0xb);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss =
        flat_segment(0x18, 0x3);
    sregs.tr.base = 0;
    sregs.tr.limit = 0xffff;
    sregs.tr.type = 0xb;
    sregs.tr.present = 1;
    sregs.ldt.type = 0x2;
    sregs.ldt.present = 1;
    sregs.ldt.limit = 0xffff;
    sregs.gdt.base = 0;
    sregs.gdt.limit = 0;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = 0x11; /* PE | ET */
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
    if (ioctl(kc->fd, KVM_SET_SREGS, &sregs) < 0) {
        return gw_error_errno(errp, errno, "KVM_SET_SREGS");
    }
    regs.rip = entry;
    regs.rax = eax;
    regs.rbx = ebx;
    regs.rflags = 0x2;
    if (ioctl(kc->fd, KVM_SET_REGS, &regs) < 0) {
        return gw_error_errno(errp, errno, "KVM_SET_REGS");
    }
    return true;
}

bool kvm_cpu_start_ap(CPUState *ap, const GwCpuState *model, uint64_t rip,
                      uint64_t rsp, uint64_t rdi, uint64_t rsi, GError **errp)
{
    KVMCPU *kc = ap->accel;
    struct kvm_sregs sregs;
    struct kvm_regs regs = {0};

    /* The caller's mode: same segments, control registers, page tables. */
    sregs_to_kvm(&sregs, model);
    if (ioctl(kc->fd, KVM_SET_SREGS, &sregs) < 0) {
        return gw_error_errno(errp, errno, "KVM_SET_SREGS (vCPU %d)",
                              ap->index);
    }
    if (model->xcr0 && kvm_state(ap->machine)->has_xcrs) {
        struct kvm_xcrs xcrs = {.nr_xcrs = 1};
        xcrs.xcrs[0].value = model->xcr0;
        if (ioctl(kc->fd, KVM_SET_XCRS, &xcrs) < 0) {
            return gw_error_errno(errp, errno, "KVM_SET_XCRS (vCPU %d)",
                                  ap->index);
        }
    }
    regs.rip = rip;
    regs.rsp = rsp;
    regs.rdi = rdi;
    regs.rsi = rsi;
    regs.rflags = model->rflags;
    if (ioctl(kc->fd, KVM_SET_REGS, &regs) < 0) {
        return gw_error_errno(errp, errno, "KVM_SET_REGS (vCPU %d)", ap->index);
    }
    return true;
}
