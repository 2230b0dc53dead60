/*
 * The vCPUs' sections of the migration stream ("cpu", one instance per
 * vCPU): GwCpuState as a field table, saved and loaded through AccelOps in
 * each vCPU's own thread. godwit's own format, described in the stream's
 * JSON VM description.
 */
#include "godwit/machine.h"
#include "migration/register.h"
#include "migration/vmstate.h"

#define CPU_SECTION_VERSION 1

static const VMStateField segment_fields[] = {
    VMSTATE_UINT64("base", GwSegment, base),
    VMSTATE_UINT32("limit", GwSegment, limit),
    VMSTATE_UINT16("selector", GwSegment, selector),
    VMSTATE_UINT8("type", GwSegment, type),
    VMSTATE_UINT8("present", GwSegment, present),
    VMSTATE_UINT8("dpl", GwSegment, dpl),
    VMSTATE_UINT8("db", GwSegment, db),
    VMSTATE_UINT8("s", GwSegment, s),
    VMSTATE_UINT8("l", GwSegment, l),
    VMSTATE_UINT8("g", GwSegment, g),
    VMSTATE_UINT8("avl", GwSegment, avl),
    VMSTATE_UINT8("unusable", GwSegment, unusable),
    VMSTATE_END,
};

static const VMStateField msr_fields[] = {
    VMSTATE_UINT32("index", GwMsr, index),
    VMSTATE_UINT64("value", GwMsr, value),
    VMSTATE_END,
};

#define GPR(r) VMSTATE_UINT64(#r, GwCpuState, r)
#define SEG(s) VMSTATE_STRUCT(#s, GwCpuState, s, segment_fields)

static const VMStateField cpu_fields[] = {
    GPR(rax), GPR(rbx), GPR(rcx), GPR(rdx), GPR(rsi), GPR(rdi),
    GPR(rsp), GPR(rbp), GPR(r8), GPR(r9), GPR(r10), GPR(r11),
    GPR(r12), GPR(r13), GPR(r14), GPR(r15), GPR(rip), GPR(rflags),
    SEG(cs), SEG(ds), SEG(es), SEG(fs), SEG(gs), SEG(ss), SEG(tr), SEG(ldt),
    VMSTATE_UINT64("gdt_base", GwCpuState, gdt_base),
    VMSTATE_UINT64("idt_base", GwCpuState, idt_base),
    VMSTATE_UINT16("gdt_limit", GwCpuState, gdt_limit),
    VMSTATE_UINT16("idt_limit", GwCpuState, idt_limit),
    GPR(cr0), GPR(cr2), GPR(cr3), GPR(cr4), GPR(cr8), GPR(efer),
    GPR(apic_base),
    VMSTATE_UINT32("xsave_size", GwCpuState, xsave_size),
    VMSTATE_VBUFFER("xsave", GwCpuState, xsave, xsave_size),
    VMSTATE_UINT64("xcr0", GwCpuState, xcr0),
    VMSTATE_UINT32("nmsrs", GwCpuState, nmsrs),
    VMSTATE_VARRAY("msrs", GwCpuState, msrs, nmsrs, msr_fields),
    VMSTATE_BOOL("halted", GwCpuState, halted),
    VMSTATE_BOOL("started", GwCpuState, started),
    VMSTATE_BUFFER("events", GwCpuState, events),
    VMSTATE_END,
};

typedef struct CpuSection {
    Machine *m;
    int index;
    GwCpuState st; /* last saved state, for the description */
} CpuSection;

static bool cpu_save_state(QEMUFile *f, void *opaque, GError **errp)
{
    CpuSection *cs = opaque;

    if (!machine_cpu_state_save(cs->m, cs->index, &cs->st, errp)) {
        return false;
    }
    vmstate_save(f, cpu_fields, &cs->st);
    return qemu_file_check(f, errp);
}

static bool cpu_load_state(QEMUFile *f, void *opaque, uint32_t version_id,
                           GError **errp)
{
    CpuSection *cs = opaque;
    g_autofree GwCpuState *st = g_new0(GwCpuState, 1);

    if (!vmstate_load(f, cpu_fields, st, errp)) {
        return false;
    }
    /* KVM refuses what is architecturally wrong; the VMM checks the rest. */
    if (cs->index == 0 && !st->started) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "the boot vCPU is marked as never started");
        return false;
    }
    return machine_cpu_state_load(cs->m, cs->index, st, errp);
}

static void cpu_describe(JsonBuilder *b, void *opaque)
{
    CpuSection *cs = opaque;

    vmstate_describe(b, cpu_fields, &cs->st);
}

static const SaveStateHandler cpu_handler = {
    .idstr = "cpu",
    .version_id = CPU_SECTION_VERSION,
    .save_state = cpu_save_state,
    .load_state = cpu_load_state,
    .describe = cpu_describe,
};

void cpu_vmstate_register(Machine *m)
{
    for (int i = 0; i < m->smp; i++) {
        CpuSection *cs = g_new0(CpuSection, 1);
        cs->m = m;
        cs->index = i;
        register_savevm(&cpu_handler, i, cs);
    }
}
