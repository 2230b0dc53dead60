/*
 * The architectural state of one x86-64 vCPU as a plain struct.
 *
 * Filled by AccelOps.cpu_state_save and consumed by cpu_state_load; the
 * migration stream serialises it field by field (never as raw memory), so
 * the layout here is free to change. Everything a 64-bit ring-3 payload
 * needs to continue where it was: registers, segments and control
 * registers, FPU/SSE/AVX state (XSAVE), XCR0, the MSRs KVM lets us save,
 * the TSC, and the run state (halted, not yet started).
 */
#ifndef GODWIT_VCPU_STATE_H
#define GODWIT_VCPU_STATE_H

#include <stdbool.h>
#include <stdint.h>

#define GW_CPU_MAX_MSRS 48
#define GW_CPU_XSAVE_MAX 16384

typedef struct GwSegment {
    uint64_t base;
    uint32_t limit;
    uint16_t selector;
    uint8_t type, present, dpl, db, s, l, g, avl, unusable;
} GwSegment;

typedef struct GwMsr {
    uint32_t index;
    uint64_t value;
} GwMsr;

typedef struct GwCpuState {
    /* General purpose registers, in KVM's order. */
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;

    /* Segments and descriptor tables. */
    GwSegment cs, ds, es, fs, gs, ss, tr, ldt;
    uint64_t gdt_base, idt_base;
    uint16_t gdt_limit, idt_limit;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;

    /* Extended state: the KVM_GET_XSAVE(2) image, xsave_size bytes. */
    uint32_t xsave_size;
    uint8_t xsave[GW_CPU_XSAVE_MAX];
    uint64_t xcr0;

    /* MSRs (includes IA32_TSC, so the guest TSC continues). */
    uint32_t nmsrs;
    GwMsr msrs[GW_CPU_MAX_MSRS];

    /* Run state. */
    bool halted;  /* in hlt, waiting (idle payload) */
    bool started; /* false for a secondary vCPU not started yet */
    /* Pending exception/interrupt/NMI state (kvm_vcpu_events), opaque. */
    uint8_t events[64];
} GwCpuState;

#endif /* GODWIT_VCPU_STATE_H */
