/*
 * Multiboot v1 kernel loading into guest RAM, the way QEMU's -kernel does
 * it: ELF32 segments (or the a.out-kludge load addresses), the memory map at
 * 0x9000, the info structure at 0x9500, command line and boot loader name
 * after the image. Pure over a byte buffer, so it is unit-tested alone.
 */
#include <elf.h>
#include <string.h>

#include "godwit/multiboot.h"

#define MB_FLAG_PAGE_ALIGN (1u << 0)
#define MB_FLAG_MEMORY_INFO (1u << 1)
#define MB_FLAG_VIDEO_MODE (1u << 2)
#define MB_FLAG_AOUT_KLUDGE (1u << 16)
#define MB_HEADER_MIN 12     /* magic, flags, checksum */
#define MB_HEADER_KLUDGE 32  /* + header/load/load_end/bss_end/entry */
#define MB_INFO_AREA_END (MULTIBOOT_MBI_ADDR + MBI_SIZE)
#define MB_LOADER_NAME "godwit"
#define PAGE_ALIGN_UP(x) (((x) + 4095u) & ~(uint64_t)4095u)

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = v;
    p[1] = v >> 8;
    p[2] = v >> 16;
    p[3] = v >> 24;
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

/* Finds the header: returns its offset or -1. */
static long find_header(const uint8_t *image, size_t size, uint32_t *flags)
{
    size_t limit = MIN(size, (size_t)MULTIBOOT_SEARCH);

    for (size_t i = 0; i + MB_HEADER_MIN <= limit; i += 4) {
        if (rd32(image + i) != MULTIBOOT_HEADER_MAGIC) {
            continue;
        }
        uint32_t f = rd32(image + i + 4);
        uint32_t sum = rd32(image + i + 8);
        if ((uint32_t)(MULTIBOOT_HEADER_MAGIC + f + sum) == 0) {
            *flags = f;
            return (long)i;
        }
    }
    return -1;
}

/* Whether [addr, addr + len) is RAM below 4 GiB and clear of the info area. */
static bool range_ok(const MultibootTarget *t, uint64_t addr, uint64_t len,
                     const char *what, GError **errp)
{
    if (addr + len < addr || addr + len > t->below_4g) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "%s at 0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER
                    "x is outside guest RAM (%" G_GUINT64_FORMAT
                    " MiB below 4G)",
                    what, addr, addr + len, t->below_4g >> 20);
        return false;
    }
    if (len && addr < MB_INFO_AREA_END && addr + len > MULTIBOOT_MMAP_ADDR) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "%s at 0x%" G_GINT64_MODIFIER
                    "x overlaps the Multiboot info area (0x9000-0x%x)",
                    what, addr, MB_INFO_AREA_END);
        return false;
    }
    return true;
}

static bool load_elf32(const uint8_t *image, size_t size,
                       const MultibootTarget *t, MultibootInfo *out,
                       GError **errp)
{
    Elf32_Ehdr eh;
    uint64_t low = UINT64_MAX, high = 0;

    if (size < sizeof(Elf32_Ehdr) || memcmp(image, ELFMAG, SELFMAG)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "not an ELF file (and no a.out-kludge Multiboot header)");
        return false;
    }
    if (image[EI_CLASS] == ELFCLASS64) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "cannot load a 64-bit ELF as a Multiboot kernel, give a "
                    "32-bit one");
        return false;
    }
    memcpy(&eh, image, sizeof(eh));
    if (image[EI_CLASS] != ELFCLASS32 || image[EI_DATA] != ELFDATA2LSB ||
        eh.e_machine != EM_386 || eh.e_type != ET_EXEC) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "not a 32-bit little-endian i386 executable ELF");
        return false;
    }
    if (eh.e_phentsize != sizeof(Elf32_Phdr) || eh.e_phnum == 0 ||
        eh.e_phoff > size ||
        (uint64_t)eh.e_phnum * sizeof(Elf32_Phdr) > size - eh.e_phoff) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "ELF program headers are missing or truncated");
        return false;
    }
    /* Check every segment before writing anything. */
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf32_Phdr ph;
            memcpy(&ph, image + eh.e_phoff + i * sizeof(ph), sizeof(ph));
            if (ph.p_type != PT_LOAD || ph.p_memsz == 0) {
                continue;
            }
            if (pass == 0) {
                if (ph.p_filesz > ph.p_memsz || ph.p_offset > size ||
                    ph.p_filesz > size - ph.p_offset) {
                    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                                "ELF segment %u is truncated or malformed",
                                i);
                    return false;
                }
                if (!range_ok(t, ph.p_paddr, ph.p_memsz, "ELF segment",
                              errp)) {
                    return false;
                }
                low = MIN(low, ph.p_paddr);
                high = MAX(high, (uint64_t)ph.p_paddr + ph.p_memsz);
                continue;
            }
            memcpy(t->host + ph.p_paddr, image + ph.p_offset, ph.p_filesz);
            memset(t->host + ph.p_paddr + ph.p_filesz, 0,
                   ph.p_memsz - ph.p_filesz);
        }
        if (pass == 0 && low == UINT64_MAX) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "ELF has no loadable segment");
            return false;
        }
        if (pass == 0 && (eh.e_entry < low || eh.e_entry >= high)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "ELF entry point 0x%x is not in a loaded segment",
                        eh.e_entry);
            return false;
        }
    }
    out->entry = eh.e_entry;
    out->load_low = (uint32_t)low;
    out->load_high = (uint32_t)high;
    return true;
}

/* Multiboot header with load addresses (flag 16): a flat image. */
static bool load_kludge(const uint8_t *image, size_t size, long hdr,
                        const MultibootTarget *t, MultibootInfo *out,
                        GError **errp)
{
    const uint8_t *h = image + hdr;
    uint32_t header_addr, load_addr, load_end, bss_end, entry;
    uint64_t text_offset, load_size, mem_size;

    if ((size_t)hdr + MB_HEADER_KLUDGE > size) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Multiboot header is truncated");
        return false;
    }
    header_addr = rd32(h + 12);
    load_addr = rd32(h + 16);
    load_end = rd32(h + 20);
    bss_end = rd32(h + 24);
    entry = rd32(h + 28);
    if (header_addr < load_addr || header_addr - load_addr > (uint64_t)hdr) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "invalid Multiboot header_addr/load_addr");
        return false;
    }
    text_offset = (uint64_t)hdr - (header_addr - load_addr);
    if (load_end) {
        if (load_end < load_addr) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "invalid Multiboot load_end_addr");
            return false;
        }
        load_size = load_end - load_addr;
    } else {
        load_size = size - text_offset;
    }
    if (text_offset + load_size > size) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Multiboot image is shorter than its header says");
        return false;
    }
    mem_size = load_size;
    if (bss_end) {
        if (bss_end < load_addr + load_size) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "invalid Multiboot bss_end_addr");
            return false;
        }
        mem_size = bss_end - load_addr;
    }
    if (!range_ok(t, load_addr, mem_size, "Multiboot image", errp)) {
        return false;
    }
    if (entry < load_addr || entry >= load_addr + mem_size) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Multiboot entry 0x%x is outside the image", entry);
        return false;
    }
    memcpy(t->host + load_addr, image + text_offset, load_size);
    memset(t->host + load_addr + load_size, 0, mem_size - load_size);
    out->entry = entry;
    out->load_low = load_addr;
    out->load_high = (uint32_t)(load_addr + mem_size);
    return true;
}

/* The PC memory map QEMU's firmware reports, as Multiboot mmap entries. */
static uint32_t write_mmap(const MultibootTarget *t, uint8_t *p)
{
    const struct {
        uint64_t base, len;
        uint32_t type;
    } map[] = {
        {0, 0x9fc00, 1},
        {0x9fc00, 0x400, 2},
        {0xf0000, 0x10000, 2},
        {0x100000, t->below_4g - 0x100000, 1},
        {0xfffc0000, 0x40000, 2},
        {1ull << 32, t->above_4g, 1},
    };
    uint32_t n = 0;

    for (size_t i = 0; i < G_N_ELEMENTS(map); i++) {
        if (!map[i].len) {
            continue;
        }
        wr32(p + n * 24, 20);
        wr64(p + n * 24 + 4, map[i].base);
        wr64(p + n * 24 + 12, map[i].len);
        wr32(p + n * 24 + 20, map[i].type);
        n++;
    }
    return n * 24;
}

bool multiboot_load(const uint8_t *image, size_t size,
                    const char *kernel_path, const char *append,
                    const MultibootTarget *t, MultibootInfo *out,
                    GError **errp)
{
    uint32_t flags = 0;
    long hdr = find_header(image, size, &flags);
    g_autofree char *cmdline = NULL;
    uint64_t info_base, cmd_addr, name_addr, end;
    uint8_t *mbi;

    memset(out, 0, sizeof(*out));
    if (t->below_4g < 0x200000) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "a Multiboot kernel needs at least 2 MiB of RAM");
        return false;
    }
    if (hdr < 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "no Multiboot header in the first 8 KiB (not a "
                    "Multiboot v1 kernel)");
        return false;
    }
    if (flags & MB_FLAG_VIDEO_MODE) {
        g_warning("Multiboot kernel asks for a video mode; godwit has no "
                  "display and ignores the request, as QEMU does");
    }
    if (flags & MB_FLAG_AOUT_KLUDGE) {
        if (!load_kludge(image, size, hdr, t, out, errp)) {
            return false;
        }
    } else if (!load_elf32(image, size, t, out, errp)) {
        return false;
    }
    out->header_flags = flags;

    /* Command line and loader name after the image, page aligned. */
    cmdline = g_strdup_printf("%s %s", kernel_path, append ? append : "");
    info_base = out->load_low + PAGE_ALIGN_UP(out->load_high - out->load_low);
    cmd_addr = info_base;
    name_addr = cmd_addr + strlen(cmdline) + 1;
    end = name_addr + sizeof(MB_LOADER_NAME);
    if (end > t->below_4g || end > UINT32_MAX) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "no room for the Multiboot command line after the "
                    "kernel");
        return false;
    }
    memcpy(t->host + cmd_addr, cmdline, strlen(cmdline) + 1);
    memcpy(t->host + name_addr, MB_LOADER_NAME, sizeof(MB_LOADER_NAME));

    mbi = t->host + MULTIBOOT_MBI_ADDR;
    memset(mbi, 0, MBI_SIZE);
    wr32(mbi + MBI_FLAGS, MBI_FLAG_MEMORY | MBI_FLAG_BOOT_DEVICE |
                              MBI_FLAG_CMDLINE | MBI_FLAG_MODS |
                              MBI_FLAG_MMAP | MBI_FLAG_BOOT_LOADER_NAME);
    wr32(mbi + MBI_MEM_LOWER, 0x9fc00 / 1024);
    wr32(mbi + MBI_MEM_UPPER, (uint32_t)((t->below_4g - 0x100000) / 1024));
    wr32(mbi + MBI_BOOT_DEVICE, 0x8000ffff);
    wr32(mbi + MBI_CMDLINE, (uint32_t)cmd_addr);
    wr32(mbi + MBI_MODS_COUNT, 0);
    wr32(mbi + MBI_MODS_ADDR, (uint32_t)info_base);
    wr32(mbi + MBI_MMAP_LENGTH,
         write_mmap(t, t->host + MULTIBOOT_MMAP_ADDR));
    wr32(mbi + MBI_MMAP_ADDR, MULTIBOOT_MMAP_ADDR);
    wr32(mbi + MBI_BOOT_LOADER_NAME, (uint32_t)name_addr);
    out->mbi = MULTIBOOT_MBI_ADDR;
    return true;
}
