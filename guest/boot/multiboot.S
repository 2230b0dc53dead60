/*
 * Multiboot v1 header and the ring-0 boot stub shared by every payload.
 *
 * Entered as QEMU's (and godwit's) -kernel loader leaves a Multiboot
 * kernel: 32-bit flat protected mode, EAX = 0x2BADB002, EBX = physical
 * address of the Multiboot info, no usable GDT or stack. On this machine
 * ring-0 guest code is emulated (~0.3 M instructions/s), so the stub does as
 * little as possible: the page tables for the first 4 GiB (plus, with 1 GiB
 * pages, up to 64 GiB) are prebuilt in the image (pagetables.S), and the
 * map of RAM above 4 GiB for CPUs without 1 GiB pages is built later, in
 * ring 3 (lib/mem.c). About 55 instructions run in ring 0.
 *
 * The stub enters long mode, enables SSE, and drops to 64-bit ring 3 with
 * RFLAGS = 0x3002 (IOPL 3, IF 0) at rt_start(magic, mbi, pml4); under QEMU
 * TCG it calls rt_start in ring 0 instead (IF 0). The idle payload
 * (GUEST_IDLE) instead prints READY on COM1 and halts in ring 0.
 */
#include "boot.h"

    .section .multiboot, "a"
    .balign 4
multiboot_header:
    .long MB_HEADER_MAGIC
    .long MB_HEADER_FLAGS
    .long -(MB_HEADER_MAGIC + MB_HEADER_FLAGS)

    .section .text.boot, "ax"
    .code32
    .globl _start
_start:
    cli
    movl %eax, %edi                 /* Multiboot magic */
    movl %ebx, %esi                 /* Multiboot info */
    rdtsc
    movl %eax, boot_tsc
    movl %edx, boot_tsc + 4
    lgdt gdt_desc

    /* 1 GiB pages when CPUID says so, else 2 MiB pages. */
    movl $pml4_2m, %ebp
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb 1f
    movl $0x80000001, %eax
    cpuid
    testl $CPUID_80000001_EDX_PDPE1GB, %edx
    jz 1f
    movl $pml4_1g, %ebp
1:
    movl %ebp, %cr3
    movl %cr4, %eax
    orl $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
    movl %eax, %cr4
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    andl $~(CR0_CD | CR0_NW | CR0_EM | CR0_TS), %eax
    orl $(CR0_PG | CR0_MP | CR0_PE), %eax
    movl %eax, %cr0
    ljmp $SEL_KCODE, $long_mode

    .code64
long_mode:
    movl $SEL_KDATA, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $bsp_stack_top, %esp
    movl %edi, %edi                 /* upper halves are undefined here */
    movl %esi, %esi

#ifdef GUEST_IDLE
    /* Print READY on COM1 and halt; hlt costs the host nothing. */
    movl $ready_msg, %esi
2:
    movb (%rsi), %bl
    testb %bl, %bl
    jz 4f
3:
    movw $0x3fd, %dx
    inb %dx, %al
    testb $0x20, %al
    jz 3b
    movw $0x3f8, %dx
    movb %bl, %al
    outb %al, %dx
    incl %esi
    jmp 2b
4:
    cli
    hlt
    jmp 4b

    .section .rodata
ready_msg:
    .asciz "READY\n"
#else
    /*
     * godwit (its hypercall port answers): ring 3, parking by hypercall.
     */
    movw $BOOT_GW_HC_PORT, %dx
    inl %dx, %eax
    cmpl $BOOT_GW_HC_MAGIC, %eax
    je 2f
    /*
     * QEMU TCG (ring-0 CPUID leaf 0x40000000 says "TCGTCGTCGTCG"): stay in
     * ring 0, where the runtime parks with cli; hlt. Ring 3 would park by
     * an INIT IPI to itself, but TCG's INIT resets the CPU and makes CPU 0
     * the BSP again whatever IA32_APIC_BASE said, so it restarts in the
     * BIOS. (Ring 3 is there only because kvm_pvm emulates ring 0 slowly;
     * TCG emulates every ring alike.)
     */
    movl $CPUID_HV_LEAF, %eax
    cpuid
    cmpl $CPUID_TCG_EBX, %ebx
    jne 1f
    cmpl $CPUID_TCG_ECX, %ecx
    jne 1f
    cmpl $CPUID_TCG_EDX, %edx
    je 3f
1:
    /*
     * Otherwise (QEMU with KVM) clear the BSP flag in IA32_APIC_BASE: KVM
     * then treats an INIT IPI to this vCPU like one to an AP (wait for
     * SIPI, no host CPU) instead of resetting it to the BIOS. That is how
     * ring-3 code parks under QEMU with KVM.
     */
    movl $MSR_APIC_BASE, %ecx
    rdmsr
    andl $~APIC_BASE_BSP, %eax
    wrmsr
2:
    movl %ebp, %edx                 /* the page-table root we chose */
    pushq $SEL_UDATA
    pushq $bsp_stack_top
    pushq $RFLAGS_RING3
    pushq $SEL_UCODE
    pushq $payload_entry
    iretq
3:
    movl %ebp, %edx

    /* Ring 3 from here on (ring 0 under QEMU TCG). */
payload_entry:
    call rt_start                   /* (magic, mbi, pml4) */
    ud2

    /*
     * godwit's GW_HC_START_APS entry: 64-bit ring 3, RDI = vCPU index,
     * RSI = arg3 (unused), RSP = this vCPU's slot in ap_stacks.
     */
    .text
    .globl ap_entry
ap_entry:
    andq $-16, %rsp
    call rt_ap_start
    ud2
#endif

    .data
    .balign 8
    .globl boot_tsc
boot_tsc:
    .quad 0

    /* Stacks: not part of the file, zero at load. */
    .section .stack, "aw", @nobits
    .balign 4096
    .globl ap_stacks, ap_stacks_top
ap_stacks:
    .skip RT_AP_STACK_SIZE * (RT_MAX_CPUS - 1)
ap_stacks_top:
    .globl bsp_stack_top
    .skip RT_BSP_STACK_SIZE
bsp_stack_top:
