/*
 * tcg vCPU state: the firmware region, the Multiboot boot state, and
 * save / load of the plain GwCpuState in the same format as the kvm
 * accelerator, so that a guest migrates between the two.
 *
 * Save reads the registers Unicorn exposes; what it does not expose (the
 * descriptor caches of CS/SS/DS/ES/FS/GS) is read back from the guest's
 * GDT, which is where the CPU loaded them from. Load starts from a fresh
 * engine (CPL 0, 64-bit), writes the control registers and the GDT
 * register, and runs the firmware's restore trampoline: it loads the data
 * segments and does an iretq to the saved RIP, CS, RFLAGS, RSP and SS, so
 * the CPU itself loads the descriptors and the CPL. Loading therefore
 * needs long mode (EFER.LMA) and the firmware page identity-mapped by the
 * guest's page tables; anything else is refused with an error.
 */
#include <inttypes.h>
#include <linux/kvm.h>
#include <string.h>

#include "tcg-int.h"

bool tcg_engine_reset(CPUState *cpu, GError **errp);

#define CR0_PE (1ull << 0)
#define CR0_ET (1ull << 4)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define MSR_EFER 0xc0000080u
#define MSR_KERNEL_GS_BASE 0xc0000102u
#define XSAVE_SIZE 4096 /* what KVM_GET_XSAVE returns */
#define XSAVE_HDR 512   /* XSTATE_BV, XCOMP_BV */
#define XSTATE_X87_SSE 0x3ull

/* MSRs saved besides EFER (the kvm accelerator's list, TSC left out). */
static const uint32_t tcg_msrs[] = {
    0x00000174, /* IA32_SYSENTER_CS */
    0x00000175, /* IA32_SYSENTER_ESP */
    0x00000176, /* IA32_SYSENTER_EIP */
    0x00000277, /* IA32_PAT */
    0xc0000081, /* STAR */
    0xc0000082, /* LSTAR */
    0xc0000083, /* CSTAR */
    0xc0000084, /* SYSCALL_MASK */
    0xc0000102, /* KERNEL_GS_BASE */
    0xc0000103, /* TSC_AUX */
};

/* ---- register access ---------------------------------------------------- */

static uint64_t reg_get(uc_engine *uc, int reg)
{
    uint64_t v = 0;

    uc_reg_read(uc, reg, &v);
    return v;
}

static bool reg_set(uc_engine *uc, int reg, uint64_t v, GError **errp)
{
    uc_err err = uc_reg_write(uc, reg, &v);

    return err ? tcg_error(errp, err, "writing register %d", reg) : true;
}

static uint64_t msr_get(uc_engine *uc, uint32_t index)
{
    uc_x86_msr msr = {.rid = index};

    uc_reg_read(uc, UC_X86_REG_MSR, &msr);
    return msr.value;
}

static bool msr_set(uc_engine *uc, uint32_t index, uint64_t v, GError **errp)
{
    uc_x86_msr msr = {.rid = index, .value = v};
    uc_err err = uc_reg_write(uc, UC_X86_REG_MSR, &msr);

    return err ? tcg_error(errp, err, "writing MSR 0x%x", index) : true;
}

static void *fw_scratch(CPUState *cpu)
{
    TCGState *s = tcg_state(cpu->machine);

    return s->fw + TCG_FW_SCRATCH + (size_t)cpu->index * TCG_FW_SCRATCH_SIZE;
}

static uint64_t fw_scratch_gpa(CPUState *cpu)
{
    return TCG_FW_BASE + TCG_FW_SCRATCH +
           (uint64_t)cpu->index * TCG_FW_SCRATCH_SIZE;
}

static void put64(void *base, size_t off, uint64_t v)
{
    memcpy((uint8_t *)base + off, &v, 8);
}

/* ---- the firmware region ------------------------------------------------ */

void tcg_fw_init(TCGState *s)
{
    uint64_t *pml4 = (uint64_t *)(s->fw + TCG_FW_PML4);
    uint64_t *pdpt = (uint64_t *)(s->fw + TCG_FW_PDPT);
    uint64_t *pd = (uint64_t *)(s->fw + TCG_FW_PD);
    uint64_t *gdt = (uint64_t *)(s->fw + TCG_FW_GDT);
    size_t blob = (size_t)(tcg_fw_blob_end - tcg_fw_blob);

    g_assert(blob <= TCG_FW_PML4);
    memcpy(s->fw, tcg_fw_blob, blob);
    /* identity map of the 2 MiB page holding the region (P | RW | PS) */
    pml4[0] = (TCG_FW_BASE + TCG_FW_PDPT) | 0x3;
    pdpt[TCG_FW_BASE >> 30] = (TCG_FW_BASE + TCG_FW_PD) | 0x3;
    pd[(TCG_FW_BASE >> 21) & 511] = (TCG_FW_BASE & ~0x1fffffull) | 0x83;
    gdt[0] = 0;
    gdt[TCG_FW_SEL_CODE64 >> 3] = 0x00af9b000000ffffull;
    gdt[TCG_FW_SEL_CODE32 >> 3] = 0x00cf9b000000ffffull;
    gdt[TCG_FW_SEL_DATA32 >> 3] = 0x00cf93000000ffffull;
}

/*
 * Runs a trampoline from the start of a fresh engine, with the run lock,
 * until the engine reaches `until`.
 */
static bool fw_run(CPUState *cpu, uint64_t entry, uint64_t until,
                   const char *what, GError **errp)
{
    TCGCPU *tc = tcg_cpu(cpu);
    uc_err err;
    uint64_t rip;

    tcg_sched_acquire(cpu);
    atomic_store(&tc->leave, false);
    err = tcg_vcpu_run(cpu, entry, until);
    tcg_sched_release(cpu);
    rip = reg_get(tc->uc, UC_X86_REG_RIP);
    if (err || tc->exception >= 0 || rip != until) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "%s: the firmware trampoline stopped at 0x%" PRIx64
                    " (%s, exception %d)",
                    what, rip, uc_strerror(err), tc->exception);
        return false;
    }
    return true;
}

/* ---- guest memory through the guest's page tables ----------------------- */

static bool gpa_read(uc_engine *uc, uint64_t gpa, void *buf, size_t len)
{
    return uc_mem_read(uc, gpa, buf, len) == UC_ERR_OK;
}

/*
 * Guest-physical address of linear `la` under 4-level paging rooted at
 * cr3 (the only paging a long-mode guest has), or UINT64_MAX.
 */
static uint64_t tcg_translate(uc_engine *uc, uint64_t cr3, uint64_t la)
{
    uint64_t table = cr3 & 0x000ffffffffff000ull;

    for (int level = 3; level >= 0; level--) {
        uint64_t e;
        int shift = 12 + 9 * level;
        if (!gpa_read(uc, table + ((la >> shift) & 511) * 8, &e, 8) ||
            !(e & 1)) {
            return UINT64_MAX;
        }
        if (level == 0 || (level <= 2 && (e & 0x80))) {
            uint64_t mask = (1ull << shift) - 1;
            return (e & 0x000ffffffffff000ull & ~mask) | (la & mask);
        }
        table = e & 0x000ffffffffff000ull;
    }
    return UINT64_MAX;
}

static uint64_t tcg_linear_to_gpa(uc_engine *uc, uint64_t cr0, uint64_t cr3,
                                  uint64_t la)
{
    return (cr0 & CR0_PG) ? tcg_translate(uc, cr3, la) : la;
}

/* ---- segments ----------------------------------------------------------- */

/*
 * The descriptor cache of a segment register as the CPU loaded it from
 * the GDT: a null selector is unusable (as KVM reports it).
 */
static void seg_from_gdt(uc_engine *uc, const GwCpuState *st, uint16_t sel,
                         GwSegment *seg)
{
    uint64_t d = 0, gpa;

    memset(seg, 0, sizeof(*seg));
    seg->selector = sel;
    if ((sel & ~3) == 0 || (sel & 4) || (sel | 7) > st->gdt_limit ||
        (gpa = tcg_linear_to_gpa(uc, st->cr0, st->cr3,
                                 st->gdt_base + (sel & ~7))) == UINT64_MAX ||
        !gpa_read(uc, gpa, &d, 8) || !(d & (1ull << 47))) {
        seg->unusable = 1;
        return;
    }
    seg->limit = (uint32_t)((d & 0xffff) | ((d >> 32) & 0xf0000));
    seg->base = ((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000);
    seg->type = (d >> 40) & 0xf;
    seg->s = (d >> 44) & 1;
    seg->dpl = (d >> 45) & 3;
    seg->present = 1;
    seg->avl = (d >> 52) & 1;
    seg->l = (d >> 53) & 1;
    seg->db = (d >> 54) & 1;
    seg->g = (d >> 55) & 1;
    if (seg->g) {
        seg->limit = (seg->limit << 12) | 0xfff;
    }
    seg->type |= 1; /* the CPU sets Accessed when it loads a segment */
}

static void mmr_to_seg(const uc_x86_mmr *r, GwSegment *seg)
{
    uint32_t f = r->flags; /* the descriptor's attribute bits 8..23 */

    memset(seg, 0, sizeof(*seg));
    seg->selector = r->selector;
    seg->base = r->base;
    seg->limit = r->limit;
    seg->type = (f >> 8) & 0xf;
    seg->s = (f >> 12) & 1;
    seg->dpl = (f >> 13) & 3;
    seg->present = (f >> 15) & 1;
    seg->avl = (f >> 20) & 1;
    seg->l = (f >> 21) & 1;
    seg->db = (f >> 22) & 1;
    seg->g = (f >> 23) & 1;
    seg->unusable = !seg->present;
}

static void seg_to_mmr(const GwSegment *seg, uc_x86_mmr *r)
{
    r->selector = seg->selector;
    r->base = seg->base;
    r->limit = seg->limit;
    r->flags = (uint32_t)seg->type << 8 | (uint32_t)seg->s << 12 |
               (uint32_t)seg->dpl << 13 |
               (uint32_t)(seg->present && !seg->unusable) << 15 |
               (uint32_t)seg->avl << 20 | (uint32_t)seg->l << 21 |
               (uint32_t)seg->db << 22 | (uint32_t)seg->g << 23;
}

/* ---- FPU / SSE as an XSAVE image (KVM_GET_XSAVE's standard format) ------ */

static void xsave_save(uc_engine *uc, GwCpuState *st)
{
    uint8_t *x = st->xsave;
    uint16_t fcw = (uint16_t)reg_get(uc, UC_X86_REG_FPCW);
    uint16_t fsw = (uint16_t)reg_get(uc, UC_X86_REG_FPSW);
    uint16_t ftw = (uint16_t)reg_get(uc, UC_X86_REG_FPTAG);
    uint16_t fop = (uint16_t)reg_get(uc, UC_X86_REG_FOP);
    uint32_t mxcsr = (uint32_t)reg_get(uc, UC_X86_REG_MXCSR);
    uint32_t mxcsr_mask = 0xffff;
    uint8_t abridged = 0;
    uint64_t bv = XSTATE_X87_SSE;

    st->xsave_size = XSAVE_SIZE;
    memset(x, 0, XSAVE_SIZE);
    for (int i = 0; i < 8; i++) {
        if (((ftw >> (2 * i)) & 3) != 3) {
            abridged |= 1u << i; /* not empty */
        }
    }
    memcpy(x + 0, &fcw, 2);
    memcpy(x + 2, &fsw, 2);
    x[4] = abridged;
    memcpy(x + 6, &fop, 2);
    put64(x, 8, reg_get(uc, UC_X86_REG_FIP));
    put64(x, 16, reg_get(uc, UC_X86_REG_FDP));
    memcpy(x + 24, &mxcsr, 4);
    memcpy(x + 28, &mxcsr_mask, 4);
    for (int i = 0; i < 8; i++) {
        uint8_t f[16] = {0}; /* Unicorn reads 10 bytes: mantissa, exponent */
        uc_reg_read(uc, UC_X86_REG_ST0 + i, f);
        memcpy(x + 32 + 16 * i, f, 10);
    }
    for (int i = 0; i < 16; i++) {
        uc_reg_read(uc, UC_X86_REG_XMM0 + i, x + 160 + 16 * i);
    }
    memcpy(x + XSAVE_HDR, &bv, 8);
}

/*
 * Loads an XSAVE image of any size (KVM's may be larger than 4 KiB):
 * x87 and SSE state are taken; a component beyond them that is in use
 * (non-zero) cannot be held by this CPU model and is refused.
 */
static bool xsave_load(uc_engine *uc, const GwCpuState *st, GError **errp)
{
    const uint8_t *x = st->xsave;
    uint16_t fcw, fsw, fop, ftw = 0;
    uint32_t mxcsr;
    uint64_t bv = 0, fip, fdp;

    if (st->xsave_size < XSAVE_HDR + 64 || st->xsave_size > GW_CPU_XSAVE_MAX) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "XSAVE area of %u bytes is too small", st->xsave_size);
        return false;
    }
    memcpy(&bv, x + XSAVE_HDR, 8);
    if (bv & ~XSTATE_X87_SSE) {
        for (uint32_t i = XSAVE_HDR + 64; i < st->xsave_size; i++) {
            if (x[i]) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "the vCPU uses extended state (XSTATE_BV "
                            "0x%" PRIx64 ", e.g. AVX) that the tcg "
                            "accelerator cannot hold",
                            bv);
                return false;
            }
        }
    }
    memcpy(&fcw, x + 0, 2);
    memcpy(&fsw, x + 2, 2);
    memcpy(&fop, x + 6, 2);
    memcpy(&fip, x + 8, 8);
    memcpy(&fdp, x + 16, 8);
    memcpy(&mxcsr, x + 24, 4);
    for (int i = 0; i < 8; i++) {
        if (!(x[4] & (1u << i))) {
            ftw |= 3u << (2 * i); /* empty; the rest "valid" */
        }
    }
    if (!(bv & 1)) {
        fcw = 0x37f, fsw = 0, ftw = 0xffff, fop = 0, fip = fdp = 0;
    }
    if (!(bv & 2)) {
        mxcsr = 0x1f80;
    }
    if (!reg_set(uc, UC_X86_REG_FPCW, fcw, errp) ||
        !reg_set(uc, UC_X86_REG_FPSW, fsw, errp) ||
        !reg_set(uc, UC_X86_REG_FPTAG, ftw, errp) ||
        !reg_set(uc, UC_X86_REG_MXCSR, mxcsr, errp)) {
        return false;
    }
    for (int i = 0; i < 8 && (bv & 1); i++) {
        uint8_t f[16] = {0};
        memcpy(f, x + 32 + 16 * i, 10);
        uc_reg_write(uc, UC_X86_REG_ST0 + i, f);
    }
    for (int i = 0; i < 16; i++) {
        uint8_t zero[16] = {0};
        uc_reg_write(uc, UC_X86_REG_XMM0 + i,
                     (bv & 2) ? x + 160 + 16 * i : zero);
    }
    return true;
}

/* ---- save --------------------------------------------------------------- */

static const int tcg_gprs[] = {
    UC_X86_REG_RAX, UC_X86_REG_RBX,    UC_X86_REG_RCX, UC_X86_REG_RDX,
    UC_X86_REG_RSI, UC_X86_REG_RDI,    UC_X86_REG_RSP, UC_X86_REG_RBP,
    UC_X86_REG_R8,  UC_X86_REG_R9,     UC_X86_REG_R10, UC_X86_REG_R11,
    UC_X86_REG_R12, UC_X86_REG_R13,    UC_X86_REG_R14, UC_X86_REG_R15,
    UC_X86_REG_RIP, UC_X86_REG_RFLAGS,
};

/* GwCpuState's GPRs are 18 consecutive uint64_t in tcg_gprs' order. */
static uint64_t *gpr_slot(GwCpuState *st, int i)
{
    return &st->rax + i;
}

/*
 * A vCPU that never started holds the x86 reset state, as KVM reports it
 * (its engine has never run and holds nothing worth saving).
 */
static void tcg_reset_state(GwCpuState *st)
{
    const GwSegment data = {.limit = 0xffff, .type = 3, .present = 1, .s = 1};

    st->rip = 0xfff0;
    st->rflags = 0x2;
    st->cs = data;
    st->cs.selector = 0xf000;
    st->cs.base = 0xffff0000;
    st->cs.type = 0xb;
    st->ds = st->es = st->fs = st->gs = st->ss = data;
    st->tr = (GwSegment){.limit = 0xffff, .type = 0xb, .present = 1};
    st->ldt = (GwSegment){.limit = 0xffff, .type = 0x2, .present = 1};
    st->gdt_limit = st->idt_limit = 0xffff;
    st->cr0 = 0x60000010;
}

bool tcg_cpu_state_save(CPUState *cpu, GwCpuState *st, GError **errp)
{
    uc_engine *uc = tcg_cpu(cpu)->uc;
    uc_x86_mmr r;
    bool started;

    memset(st, 0, offsetof(GwCpuState, xsave));
    cpus_lock();
    started = cpu->started;
    cpus_unlock();
    if (!started) {
        tcg_reset_state(st);
        st->apic_base = 0xfee00800ull;
        st->xsave_size = XSAVE_SIZE;
        memset(st->xsave, 0, XSAVE_SIZE);
        st->xcr0 = 0;
        st->nmsrs = 0;
        st->halted = st->started = false;
        memset(st->events, 0, sizeof(st->events));
        return true;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(tcg_gprs); i++) {
        *gpr_slot(st, (int)i) = reg_get(uc, tcg_gprs[i]);
    }
    st->cr0 = reg_get(uc, UC_X86_REG_CR0);
    st->cr2 = reg_get(uc, UC_X86_REG_CR2);
    st->cr3 = reg_get(uc, UC_X86_REG_CR3);
    st->cr4 = reg_get(uc, UC_X86_REG_CR4);
    st->cr8 = 0; /* no local APIC: the TPR is always 0 */
    st->efer = msr_get(uc, MSR_EFER);
    /* no local APIC either: report the PC's default base, BSP on vCPU 0 */
    st->apic_base = 0xfee00800ull | (cpu->index == 0 ? 0x100 : 0);
    uc_reg_read(uc, UC_X86_REG_GDTR, &r);
    st->gdt_base = r.base;
    st->gdt_limit = (uint16_t)r.limit;
    uc_reg_read(uc, UC_X86_REG_IDTR, &r);
    st->idt_base = r.base;
    st->idt_limit = (uint16_t)r.limit;
    uc_reg_read(uc, UC_X86_REG_TR, &r);
    mmr_to_seg(&r, &st->tr);
    uc_reg_read(uc, UC_X86_REG_LDTR, &r);
    mmr_to_seg(&r, &st->ldt);
    seg_from_gdt(uc, st, (uint16_t)reg_get(uc, UC_X86_REG_CS), &st->cs);
    seg_from_gdt(uc, st, (uint16_t)reg_get(uc, UC_X86_REG_SS), &st->ss);
    seg_from_gdt(uc, st, (uint16_t)reg_get(uc, UC_X86_REG_DS), &st->ds);
    seg_from_gdt(uc, st, (uint16_t)reg_get(uc, UC_X86_REG_ES), &st->es);
    seg_from_gdt(uc, st, (uint16_t)reg_get(uc, UC_X86_REG_FS), &st->fs);
    seg_from_gdt(uc, st, (uint16_t)reg_get(uc, UC_X86_REG_GS), &st->gs);
    if (st->efer & EFER_LMA) {
        /* in long mode the bases live in MSRs, not in the GDT */
        st->fs.base = reg_get(uc, UC_X86_REG_FS_BASE);
        st->gs.base = reg_get(uc, UC_X86_REG_GS_BASE);
    }
    xsave_save(uc, st);
    st->xcr0 = 0; /* this CPU model has no XSAVE instruction */
    for (size_t i = 0; i < G_N_ELEMENTS(tcg_msrs); i++) {
        st->msrs[st->nmsrs].index = tcg_msrs[i];
        st->msrs[st->nmsrs].value = msr_get(uc, tcg_msrs[i]);
        st->nmsrs++;
    }
    G_STATIC_ASSERT(sizeof(struct kvm_vcpu_events) <= sizeof(st->events));
    /* nothing is ever pending: exceptions are fatal, interrupts absent */
    memset(st->events, 0, sizeof(st->events));
    cpus_lock();
    st->started = cpu->started;
    st->halted = cpu->halted;
    cpus_unlock();
    return true;
}

/* ---- load --------------------------------------------------------------- */

/* TR and LDTR as KVM sets them at boot (and as no 64-bit payload changes). */
static bool tcg_set_tr_ldt(uc_engine *uc, const GwSegment *tr,
                           const GwSegment *ldt, GError **errp)
{
    GwSegment def_tr = {.limit = 0xffff, .type = 0xb, .present = 1};
    GwSegment def_ldt = {.limit = 0xffff, .type = 0x2, .present = 1};
    uc_x86_mmr r;

    seg_to_mmr(tr && tr->present ? tr : &def_tr, &r);
    if (uc_reg_write(uc, UC_X86_REG_TR, &r)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "cannot set TR");
        return false;
    }
    seg_to_mmr(ldt && ldt->present ? ldt : &def_ldt, &r);
    if (uc_reg_write(uc, UC_X86_REG_LDTR, &r)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "cannot set LDTR");
        return false;
    }
    return true;
}

/* Refuses states the restore trampoline cannot reach. */
static bool tcg_state_check(uc_engine *uc, const GwCpuState *st, GError **errp)
{
    const struct kvm_vcpu_events *ev = (const void *)st->events;
    uint64_t fw;

    if (!(st->efer & EFER_LMA) || !(st->cr0 & CR0_PG)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "the tcg accelerator can only load a vCPU in long mode "
                    "(EFER 0x%" PRIx64 ", CR0 0x%" PRIx64 ")",
                    st->efer, st->cr0);
        return false;
    }
    if (ev->exception.injected || ev->exception.pending ||
        ev->interrupt.injected || ev->nmi.injected || ev->nmi.pending) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "the vCPU has an exception or interrupt pending, which "
                    "the tcg accelerator cannot deliver");
        return false;
    }
    fw = tcg_translate(uc, st->cr3, TCG_FW_BASE);
    if (fw != TCG_FW_BASE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "the guest's page tables do not identity-map godwit's "
                    "firmware page at 0x%x, which the tcg accelerator "
                    "needs to load the vCPU's segments",
                    TCG_FW_BASE);
        return false;
    }
    return true;
}

/*
 * Puts `st` into a fresh engine: control registers and descriptor tables
 * by the API, segments and CPL through the restore trampoline, then the
 * registers it used, the FS/GS bases, MSRs and FPU/SSE state.
 */
static bool tcg_state_restore(CPUState *cpu, const GwCpuState *st,
                              GError **errp)
{
    uc_engine *uc;
    uint8_t *scr = fw_scratch(cpu);
    uc_x86_mmr gdtr = {.base = st->gdt_base, .limit = st->gdt_limit};
    uc_x86_mmr idtr = {.base = st->idt_base, .limit = st->idt_limit};

    if (!tcg_engine_reset(cpu, errp)) {
        return false;
    }
    uc = tcg_cpu(cpu)->uc;
    if (!reg_set(uc, UC_X86_REG_CR4, st->cr4, errp) ||
        !reg_set(uc, UC_X86_REG_CR3, st->cr3, errp) ||
        !msr_set(uc, MSR_EFER, st->efer, errp) ||
        !reg_set(uc, UC_X86_REG_CR0, st->cr0, errp) ||
        !reg_set(uc, UC_X86_REG_CR2, st->cr2, errp) ||
        uc_reg_write(uc, UC_X86_REG_GDTR, &gdtr) ||
        uc_reg_write(uc, UC_X86_REG_IDTR, &idtr) ||
        !tcg_set_tr_ldt(uc, &st->tr, &st->ldt, errp)) {
        g_prefix_error(errp, "control registers: ");
        if (errp && !*errp) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "cannot set the descriptor tables");
        }
        return false;
    }
    if (!tcg_state_check(uc, st, errp)) {
        return false;
    }
    put64(scr, TCG_SCR_RIP, st->rip);
    put64(scr, TCG_SCR_CS, st->cs.selector);
    put64(scr, TCG_SCR_RFLAGS, st->rflags);
    put64(scr, TCG_SCR_RSP, st->rsp);
    put64(scr, TCG_SCR_SS, st->ss.selector);
    put64(scr, TCG_SCR_DS, st->ds.unusable ? 0 : st->ds.selector);
    put64(scr, TCG_SCR_ES, st->es.unusable ? 0 : st->es.selector);
    put64(scr, TCG_SCR_FS, st->fs.unusable ? 0 : st->fs.selector);
    put64(scr, TCG_SCR_GS, st->gs.unusable ? 0 : st->gs.selector);
    if (!reg_set(uc, UC_X86_REG_RSP, fw_scratch_gpa(cpu), errp) ||
        !fw_run(cpu, TCG_FW_BASE + (tcg_fw_restore64 - tcg_fw_blob), st->rip,
                "loading the segments", errp)) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(tcg_gprs); i++) {
        if (!reg_set(uc, tcg_gprs[i], *gpr_slot((GwCpuState *)st, (int)i),
                     errp)) {
            return false;
        }
    }
    if (!reg_set(uc, UC_X86_REG_FS_BASE, st->fs.base, errp) ||
        !reg_set(uc, UC_X86_REG_GS_BASE, st->gs.base, errp)) {
        return false;
    }
    for (uint32_t i = 0; i < st->nmsrs && i < GW_CPU_MAX_MSRS; i++) {
        /* the TSC is the host's under Unicorn (as under KVM here) */
        if (st->msrs[i].index == 0x10 || st->msrs[i].index == 0x3b) {
            continue;
        }
        if (!msr_set(uc, st->msrs[i].index, st->msrs[i].value, errp)) {
            return false;
        }
    }
    return xsave_load(uc, st, errp);
}

bool tcg_cpu_state_load(CPUState *cpu, const GwCpuState *st, GError **errp)
{
    /* a vCPU never started is started later by GW_HC_START_APS */
    if (st->started && !tcg_state_restore(cpu, st, errp)) {
        return false;
    }
    cpus_lock();
    cpu->started = st->started;
    cpus_unlock();
    return true;
}

bool tcg_cpu_start_ap(CPUState *ap, const GwCpuState *model, uint64_t rip,
                      uint64_t rsp, uint64_t rdi, uint64_t rsi, GError **errp)
{
    g_autofree GwCpuState *st = g_memdup2(model, sizeof(*model));

    /* the caller's mode, fresh registers: as the kvm accelerator does */
    memset(st, 0, offsetof(GwCpuState, cs));
    st->rip = rip;
    st->rsp = rsp;
    st->rdi = rdi;
    st->rsi = rsi;
    st->rflags = model->rflags;
    memset(st->events, 0, sizeof(st->events));
    st->nmsrs = 0;
    st->xsave_size = XSAVE_SIZE;
    memset(st->xsave, 0, XSAVE_SIZE);
    return tcg_state_restore(ap, st, errp);
}

/* ---- boot -------------------------------------------------------------- */

bool tcg_cpu_boot(CPUState *cpu, uint32_t entry, uint32_t mbi, GError **errp)
{
    uc_engine *uc = tcg_cpu(cpu)->uc;
    uint8_t *scr = fw_scratch(cpu);
    uc_x86_mmr gdtr = {.base = TCG_FW_BASE + TCG_FW_GDT, .limit = 4 * 8 - 1};
    uint16_t sel = TCG_FW_SEL_CODE32;

    g_assert(cpu->index == 0); /* the trampoline reads vCPU 0's scratch */
    memcpy(scr + TCG_SCR_ENTRY, &entry, 4);
    memcpy(scr + TCG_SCR_ENTRY + 4, &sel, 2);
    put64(scr, TCG_SCR_MBI, mbi);
    /* long mode on the firmware's own page tables and GDT */
    if (!reg_set(uc, UC_X86_REG_CR4, CR4_PAE, errp) ||
        !reg_set(uc, UC_X86_REG_CR3, TCG_FW_BASE + TCG_FW_PML4, errp) ||
        !msr_set(uc, MSR_EFER, EFER_LME | EFER_LMA, errp) ||
        !reg_set(uc, UC_X86_REG_CR0, CR0_PE | CR0_ET | CR0_PG, errp) ||
        !reg_set(uc, UC_X86_REG_RSP, fw_scratch_gpa(cpu) + TCG_SCR_STACK,
                 errp) ||
        !reg_set(uc, UC_X86_REG_RFLAGS, 0x2, errp)) {
        return false;
    }
    if (uc_reg_write(uc, UC_X86_REG_GDTR, &gdtr)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "cannot set the GDT");
        return false;
    }
    if (!tcg_set_tr_ldt(uc, NULL, NULL, errp)) {
        return false;
    }
    return fw_run(cpu, TCG_FW_BASE + (tcg_fw_boot64 - tcg_fw_blob), entry,
                  "boot", errp);
}
