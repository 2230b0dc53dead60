/*
 * Constants shared by the boot stub (assembly) and the guest runtime (C):
 * Multiboot magic numbers, the GDT selectors, paging bits and the sizes of
 * the statically reserved stacks and page tables.
 */
#ifndef GUEST_BOOT_H
#define GUEST_BOOT_H

/* Multiboot v1: header flags 0x3 = page-aligned modules + memory info. */
#define MB_HEADER_MAGIC 0x1BADB002
#define MB_HEADER_FLAGS 0x00000003
#define MB_BOOT_MAGIC 0x2BADB002

/* The image is linked (and identity mapped) at 1 MiB. */
#define IMAGE_BASE 0x100000

/* GDT selectors; ring-3 ones carry RPL 3. */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x1b
#define SEL_UCODE 0x23

/* Ring 3 with IOPL 3 (port I/O stays possible), IF = 0. */
#define RFLAGS_RING3 0x3002

#define CR0_PE (1 << 0)
#define CR0_MP (1 << 1)
#define CR0_EM (1 << 2)
#define CR0_TS (1 << 3)
#define CR0_NW (1 << 29)
#define CR0_CD (1 << 30)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define CR4_OSFXSR (1 << 9)
#define CR4_OSXMMEXCPT (1 << 10)
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)
#define MSR_APIC_BASE 0x1b
#define APIC_BASE_BSP (1 << 8)
#define CPUID_80000001_EDX_PDPE1GB (1 << 26)
/* Hypervisor leaf; QEMU's TCG signs it "TCGTCGTCGTCG" (EBX, ECX, EDX). */
#define CPUID_HV_LEAF 0x40000000
#define CPUID_TCG_EBX 0x54474354 /* "TCGT" */
#define CPUID_TCG_ECX 0x43544743 /* "CGTC" */
#define CPUID_TCG_EDX 0x47435447 /* "GTCG" */

/*
 * Paging entries. Every entry is user-accessible and writable, and the
 * Accessed (and, in leaves, Dirty) bits are preset so that the CPU never
 * writes to the page tables after boot.
 */
#define PTE_TABLE 0x27 /* P | RW | US | A */
#define PTE_LEAF 0xe7  /* P | RW | US | A | D | PS (2 MiB or 1 GiB page) */

/*
 * The hypercall port probe, for the assembly stub (the ABI header is C);
 * rt.c checks that these match include/godwit/hypercall-abi.h.
 */
#define BOOT_GW_HC_PORT 0x0ec0
#define BOOT_GW_HC_MAGIC 0x54574447

/* Identity map limit: RAM above this is ignored. */
#define RT_MAX_GIB 64

/* vCPUs the runtime supports (stacks and hypercall blocks are static). */
#define RT_MAX_CPUS 32
#define RT_BSP_STACK_SIZE 16384
#define RT_AP_STACK_SIZE 8192

#endif /* GUEST_BOOT_H */
