/*
 * Multiboot v1 information: the command line (copied into the image) and
 * the usable RAM ranges above the image, for the allocator. Everything is
 * read here, before anything is allocated, so the loader's own data (the
 * MBI, command line, memory map; modules are not used) need not survive:
 * wherever the loader put it, allocations start right above the image.
 */
#include "rt.h"

/* Multiboot info flags and offsets. */
#define MBI_MEM (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MMAP (1u << 6)

typedef struct __attribute__((packed)) MbInfo {
    uint32_t flags;
    uint32_t mem_lower, mem_upper;
    uint32_t boot_device;
    uint32_t cmdline;
    uint32_t mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr;
    uint32_t drives_length, drives_addr;
    uint32_t config_table;
    uint32_t boot_loader_name;
} MbInfo;

typedef struct __attribute__((packed)) MbMmapEntry {
    uint32_t size;
    uint64_t addr, len;
    uint32_t type;
} MbMmapEntry;

#define MMAP_RAM 1

BootInfo boot_info;

static void add_ram(uint64_t start, uint64_t end)
{
    BootInfo *b = &boot_info;
    unsigned i;

    if (end > (uint64_t)RT_MAX_GIB * GiB) {
        end = (uint64_t)RT_MAX_GIB * GiB;
    }
    if (start < 1 * MiB) {
        start = 1 * MiB; /* leave low memory to the BIOS and the loader */
    }
    if (start >= end || b->nram == MEM_MAX_RANGES) {
        return;
    }
    /* Keep the table sorted by start (insertion). */
    for (i = b->nram; i > 0 && b->ram[i - 1].start > start; i--) {
        b->ram[i] = b->ram[i - 1];
    }
    b->ram[i] = (MemRange){.start = start, .end = end, .next = start};
    b->nram++;
}

static void cut_reserved(void)
{
    BootInfo *b = &boot_info;
    uint64_t limit = ALIGN_UP(b->reserved_end, PAGE_SIZE);

    for (unsigned i = 0; i < b->nram; i++) {
        MemRange *r = &b->ram[i];
        if (r->start < limit) {
            r->start = limit < r->end ? limit : r->end;
        }
        r->next = r->start;
    }
}

bool bootinfo_parse(uint32_t mbi, char *err, size_t errlen)
{
    const MbInfo *mb = (const MbInfo *)(uintptr_t)mbi;
    BootInfo *b = &boot_info;

    b->reserved_end = (uintptr_t)__image_end;
    if (mb->flags & MBI_CMDLINE) {
        const char *s = (const char *)(uintptr_t)mb->cmdline;
        size_t n = strlen(s);
        if (n >= sizeof(b->cmdline)) {
            rt_snprintf(err, errlen, "command line too long (%u bytes)",
                        (unsigned)n);
            return false;
        }
        memcpy(b->cmdline, s, n + 1);
    }
    if (mb->flags & MBI_MMAP) {
        uint64_t p = mb->mmap_addr, end = p + mb->mmap_length;
        while (p + sizeof(MbMmapEntry) <= end) {
            const MbMmapEntry *e = (const MbMmapEntry *)(uintptr_t)p;
            if (e->type == MMAP_RAM) {
                add_ram(e->addr, e->addr + e->len);
            }
            p += e->size + 4;
        }
    } else if (mb->flags & MBI_MEM) {
        add_ram(1 * MiB, 1 * MiB + (uint64_t)mb->mem_upper * KiB);
    }
    if (!b->nram) {
        rt_snprintf(err, errlen, "no usable RAM in the multiboot info");
        return false;
    }
    cut_reserved();
    return true;
}

int bootinfo_args(char **argv, int max)
{
    char *p = boot_info.cmdline;
    bool leading = true;
    int argc = 0;

    while (*p) {
        char *tok;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (!*p) {
            break;
        }
        tok = p;
        while (*p && *p != ' ' && *p != '\t') {
            p++;
        }
        if (*p) {
            *p++ = '\0';
        }
        /* The loader puts the kernel path (and maybe more) first. */
        if (leading) {
            bool has_eq = false;
            for (char *q = tok; *q; q++) {
                has_eq |= *q == '=';
            }
            if (!has_eq) {
                continue;
            }
            leading = false;
        }
        if (argc < max) {
            argv[argc] = tok;
        }
        argc++;
    }
    return argc;
}
