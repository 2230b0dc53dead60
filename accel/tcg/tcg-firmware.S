/*
 * godwit's firmware for the tcg accelerator: the two trampolines that put
 * a Unicorn engine into a state the public API cannot set directly.
 *
 * Unicorn can only start an engine in 64-bit mode (one opened in 32-bit
 * mode never enters long mode), and writing CS/SS/DS/... through its API
 * sets the selector alone, not the descriptor cache (base, limit, DPL,
 * long-mode bit) nor the CPL. So the CPU loads them itself, from a GDT, as
 * real firmware would:
 *
 *   tcg_fw_boot64     64-bit, boot page tables and GDT of the firmware
 *                     region: far return to a 32-bit segment, paging and
 *                     long mode off, then the Multiboot entry state
 *                     (EAX = 0x2BADB002, EBX = MBI, flat 32-bit CS 0x10,
 *                     data 0x18, CR0 = PE|ET) and a far jump to the entry.
 *   tcg_fw_restore64  64-bit, CPL 0, the guest's control registers and
 *                     GDT: load DS/ES/FS/GS, then iretq to the saved
 *                     RIP/CS/RFLAGS/RSP/SS, which loads CS and SS (and the
 *                     CPL) from the guest's own GDT.
 *
 * Both read their operands from the vCPU's scratch area (tcg-int.h). The
 * blob is data in godwit: tcg-state.c copies it to TCG_FW_BASE, so the
 * code only uses RIP-relative or TCG_FW_BASE-based addresses.
 */
#include "tcg-int.h"

#define FW_ABS(label) (TCG_FW_BASE + ((label) - tcg_fw_blob))
#define SCR0(off) (TCG_FW_BASE + TCG_FW_SCRATCH + (off))

    .section .rodata
    .balign 16
    .globl tcg_fw_blob, tcg_fw_blob_end, tcg_fw_boot64, tcg_fw_restore64
tcg_fw_blob:

    .code64
tcg_fw_boot64:
    pushq $TCG_FW_SEL_CODE32
    leaq boot32(%rip), %rax
    pushq %rax
    lretq

    .code32
boot32:
    movl $TCG_FW_SEL_DATA32, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %fs
    movl %eax, %gs
    movl %eax, %ss
    movl %cr0, %eax                 /* leave long mode: paging off ... */
    andl $0x7fffffff, %eax
    movl %eax, %cr0
    movl $0xc0000080, %ecx          /* ... then EFER.LME */
    rdmsr
    andl $0xfffffeff, %eax
    wrmsr
    xorl %eax, %eax
    movl %eax, %cr4
    movl %eax, %cr3
    movl $0x11, %eax                /* PE | ET */
    movl %eax, %cr0
    movl SCR0(TCG_SCR_MBI), %ebx    /* boot runs on vCPU 0 */
    movl $0x2badb002, %eax
    ljmpl *SCR0(TCG_SCR_ENTRY)

    .code64
tcg_fw_restore64:                   /* RSP = the vCPU's scratch area */
    movw TCG_SCR_DS(%rsp), %ds
    movw TCG_SCR_ES(%rsp), %es
    movw TCG_SCR_FS(%rsp), %fs
    movw TCG_SCR_GS(%rsp), %gs
    iretq

tcg_fw_blob_end:
    .section .note.GNU-stack, "", @progbits
