/*
 * The GDT and the prebuilt identity page tables.
 *
 * Two page-table roots, chosen by the boot stub with one CPUID check:
 *   pml4_1g: one PDPT of 1 GiB pages mapping 0..64 GiB;
 *   pml4_2m: a PDPT whose first four entries point at four page
 *            directories of 2 MiB pages (0..4 GiB, the 3-4 GiB hole and the
 *            local APIC at 0xFEE00000 included). Entries 4..63 are filled
 *            from ring 3 at boot for RAM above 4 GiB (lib/mem.c), with the
 *            page directories in pd_high.
 * All entries are user-accessible and writable with Accessed/Dirty preset,
 * so the CPU never writes here.
 */
#include "boot.h"

    .section .rodata
    .balign 16
gdt:
    .quad 0
    .quad 0x00af9b000000ffff        /* 0x08: ring-0 code, 64-bit */
    .quad 0x00cf93000000ffff        /* 0x10: ring-0 data */
    .quad 0x00cff3000000ffff        /* 0x18: ring-3 data (selector 0x1b) */
    .quad 0x00affb000000ffff        /* 0x20: ring-3 code, 64-bit (0x23) */
gdt_end:
    .balign 8
    .globl gdt_desc
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt

    .section .pagetables, "aw"
    .balign 4096
    .globl pml4_1g, pml4_2m, pdpt_1g, pdpt_2m
pml4_1g:
    .quad pdpt_1g + PTE_TABLE
    .fill 511, 8, 0
pml4_2m:
    .quad pdpt_2m + PTE_TABLE
    .fill 511, 8, 0
pdpt_1g:
    .set gib, 0
    .rept RT_MAX_GIB
    .quad (gib << 30) + PTE_LEAF
    .set gib, gib + 1
    .endr
    .fill 512 - RT_MAX_GIB, 8, 0
pdpt_2m:
    .quad pd_low + 0 * 4096 + PTE_TABLE
    .quad pd_low + 1 * 4096 + PTE_TABLE
    .quad pd_low + 2 * 4096 + PTE_TABLE
    .quad pd_low + 3 * 4096 + PTE_TABLE
    .fill 508, 8, 0
pd_low:
    .set mib2, 0
    .rept 4 * 512
    .quad (mib2 << 21) + PTE_LEAF
    .set mib2, mib2 + 1
    .endr

    /* Page directories for 4..64 GiB (2 MiB pages only), zero at load. */
    .section .pagetables.high, "aw", @nobits
    .balign 4096
    .globl pd_high
pd_high:
    .skip 4096 * (RT_MAX_GIB - 4)
