/*
 * The identity map above 4 GiB and the region allocator.
 *
 * The boot stub's prebuilt tables cover 0..4 GiB with 2 MiB pages, or
 * 0..64 GiB with 1 GiB pages. Without 1 GiB pages, RAM above 4 GiB is
 * mapped here, from ring 3 (the page tables are identity mapped and
 * user-writable): fill a page directory, then publish it in pdpt_2m. A
 * not-present entry is never cached by the TLB, so no flush is needed.
 *
 * The allocator hands out usable RAM above the image and the loader's data
 * (bootinfo.c), first fit over the sorted ranges; nothing is ever freed.
 */
#include "rt.h"

void mem_map_high(void)
{
    uint64_t top_gib = ALIGN_UP(rt.ram_top, GiB) / GiB;

    if (rt.page1g) {
        return;
    }
    for (uint64_t g = 4; g < top_gib && g < RT_MAX_GIB; g++) {
        uint64_t *pd = pd_high[g - 4];
        for (uint64_t i = 0; i < 512; i++) {
            pd[i] = (g * GiB + i * 2 * MiB) | PTE_LEAF;
        }
        barrier();
        *(volatile uint64_t *)&pdpt_2m[g] = (uintptr_t)pd | PTE_TABLE;
    }
}

uint64_t mem_alloc(uint64_t size, uint64_t align)
{
    for (unsigned i = 0; i < boot_info.nram; i++) {
        MemRange *r = &boot_info.ram[i];
        uint64_t a = ALIGN_UP(r->next, align);
        if (a >= r->next && a <= r->end && size <= r->end - a) {
            r->next = a + size;
            return a;
        }
    }
    return 0;
}
