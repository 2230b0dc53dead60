/*
 * Multiboot v1 loading, as QEMU's -kernel does it.
 *
 * The image is an ELF32 (or a Multiboot "a.out kludge" image with load
 * addresses in its header) carrying a Multiboot header in its first 8 KiB.
 * Segments are copied into guest RAM below 4 GiB; the Multiboot info
 * structure goes where QEMU puts it (memory map at 0x9000, info at 0x9500),
 * the command line ("<kernel path> <append>") and boot loader name right
 * after the kernel image, page aligned. The boot vCPU then starts in 32-bit
 * flat protected mode at the entry with EAX = 0x2BADB002, EBX = info.
 */
#ifndef GODWIT_MULTIBOOT_H
#define GODWIT_MULTIBOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "godwit/error.h"

#define MULTIBOOT_HEADER_MAGIC 0x1BADB002u
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u
#define MULTIBOOT_SEARCH 8192
#define MULTIBOOT_MMAP_ADDR 0x9000u
#define MULTIBOOT_MBI_ADDR 0x9500u

/* Offsets in the Multiboot info structure (Multiboot v1 spec). */
enum {
    MBI_FLAGS = 0,
    MBI_MEM_LOWER = 4,
    MBI_MEM_UPPER = 8,
    MBI_BOOT_DEVICE = 12,
    MBI_CMDLINE = 16,
    MBI_MODS_COUNT = 20,
    MBI_MODS_ADDR = 24,
    MBI_MMAP_LENGTH = 44,
    MBI_MMAP_ADDR = 48,
    MBI_BOOT_LOADER_NAME = 64,
    MBI_SIZE = 88,
};

enum {
    MBI_FLAG_MEMORY = 1u << 0,
    MBI_FLAG_BOOT_DEVICE = 1u << 1,
    MBI_FLAG_CMDLINE = 1u << 2,
    MBI_FLAG_MODS = 1u << 3,
    MBI_FLAG_MMAP = 1u << 6,
    MBI_FLAG_BOOT_LOADER_NAME = 1u << 9,
};

/* The guest RAM the loader may write: [0, below_4g) at `host`. */
typedef struct MultibootTarget {
    uint8_t *host;
    uint64_t below_4g;
    uint64_t above_4g; /* RAM from 4 GiB up, for the memory map only */
} MultibootTarget;

typedef struct MultibootInfo {
    uint32_t entry;     /* 32-bit entry point */
    uint32_t mbi;       /* guest-physical address of the info structure */
    uint32_t load_low;  /* image extent in guest-physical memory */
    uint32_t load_high; /* exclusive, including bss */
    uint32_t header_flags;
} MultibootInfo;

/*
 * Loads `image` (size bytes) for `kernel_path` with command line `append`
 * (may be NULL). Refuses, with a message saying why: a file without a valid
 * Multiboot header, a 64-bit ELF ("give a 32-bit one", as QEMU), segments
 * outside RAM or over the info area, truncated headers or segments.
 */
bool multiboot_load(const uint8_t *image, size_t size,
                    const char *kernel_path, const char *append,
                    const MultibootTarget *t, MultibootInfo *out,
                    GError **errp);

#endif /* GODWIT_MULTIBOOT_H */
