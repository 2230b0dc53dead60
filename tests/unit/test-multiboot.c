/*
 * Unit tests for system/multiboot.c: Multiboot v1 loading as QEMU does it,
 * and refusal of bad kernels.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <elf.h>
#include <string.h>

#include "godwit/multiboot.h"

#define RAM_SIZE (8u << 20)
#define LOAD_ADDR 0x100000u
#define HDR_OFF 0x100u /* file offset of the segment data */

typedef struct Image {
    uint8_t buf[16384];
    size_t size;
} Image;

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/*
 * An ELF32 with one PT_LOAD at LOAD_ADDR: 0x200 bytes of file data (a
 * Multiboot header first, then a pattern) and 0x1000 bytes of memory.
 */
static void make_elf(Image *im, uint32_t mb_flags)
{
    Elf32_Ehdr eh = {0};
    Elf32_Phdr ph = {0};

    memset(im, 0, sizeof(*im));
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS32;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_386;
    eh.e_version = EV_CURRENT;
    eh.e_entry = LOAD_ADDR + 0x40;
    eh.e_phoff = sizeof(eh);
    eh.e_ehsize = sizeof(eh);
    eh.e_phentsize = sizeof(ph);
    eh.e_phnum = 1;
    ph.p_type = PT_LOAD;
    ph.p_offset = HDR_OFF;
    ph.p_vaddr = ph.p_paddr = LOAD_ADDR;
    ph.p_filesz = 0x200;
    ph.p_memsz = 0x1000;
    memcpy(im->buf, &eh, sizeof(eh));
    memcpy(im->buf + sizeof(eh), &ph, sizeof(ph));
    put32(im->buf + HDR_OFF, MULTIBOOT_HEADER_MAGIC);
    put32(im->buf + HDR_OFF + 4, mb_flags);
    put32(im->buf + HDR_OFF + 8, -(MULTIBOOT_HEADER_MAGIC + mb_flags));
    for (int i = 0x40; i < 0x200; i++) {
        im->buf[HDR_OFF + i] = (uint8_t)i;
    }
    im->size = HDR_OFF + 0x200;
}

static Elf32_Phdr *phdr(Image *im)
{
    return (Elf32_Phdr *)(im->buf + sizeof(Elf32_Ehdr));
}

static uint8_t *new_ram(void)
{
    uint8_t *ram = g_malloc(RAM_SIZE);
    memset(ram, 0xaa, RAM_SIZE); /* so that zeroing is visible */
    return ram;
}

static bool load(Image *im, uint8_t *ram, MultibootInfo *info,
                 GError **errp)
{
    MultibootTarget t = {.host = ram, .below_4g = RAM_SIZE};
    return multiboot_load(im->buf, im->size, "/k.elf", "vm=2 rate=0", &t,
                          info, errp);
}

static void test_load_elf(void **state)
{
    Image im;
    MultibootInfo info;
    g_autofree uint8_t *ram = new_ram();
    g_autoptr(GError) err = NULL;

    make_elf(&im, 0x3);
    assert_true(load(&im, ram, &info, &err));
    assert_int_equal(info.entry, LOAD_ADDR + 0x40);
    assert_int_equal(info.mbi, MULTIBOOT_MBI_ADDR);
    assert_int_equal(info.load_low, LOAD_ADDR);
    assert_int_equal(info.load_high, LOAD_ADDR + 0x1000);
    /* file bytes copied, bss zeroed, nothing beyond touched */
    assert_memory_equal(ram + LOAD_ADDR, im.buf + HDR_OFF, 0x200);
    for (int i = 0x200; i < 0x1000; i++) {
        assert_int_equal(ram[LOAD_ADDR + i], 0);
    }

    const uint8_t *mbi = ram + MULTIBOOT_MBI_ADDR;
    uint32_t flags = get32(mbi + MBI_FLAGS);
    assert_true(flags & MBI_FLAG_MEMORY);
    assert_true(flags & MBI_FLAG_CMDLINE);
    assert_true(flags & MBI_FLAG_MMAP);
    assert_int_equal(get32(mbi + MBI_MEM_LOWER), 639);
    assert_int_equal(get32(mbi + MBI_MEM_UPPER), (RAM_SIZE - 0x100000) / 1024);
    /* the command line is "<kernel path> <append>", after the image */
    uint32_t cmd = get32(mbi + MBI_CMDLINE);
    assert_int_equal(cmd, LOAD_ADDR + 0x1000);
    assert_string_equal((char *)ram + cmd, "/k.elf vm=2 rate=0");
    assert_string_equal((char *)ram + get32(mbi + MBI_BOOT_LOADER_NAME),
                        "godwit");
    /* memory map: e820-style entries covering RAM */
    uint32_t len = get32(mbi + MBI_MMAP_LENGTH);
    uint32_t addr = get32(mbi + MBI_MMAP_ADDR);
    uint64_t usable = 0;
    assert_int_equal(len % 24, 0);
    for (uint32_t off = 0; off < len; off += 24) {
        uint64_t base, size;
        assert_int_equal(get32(ram + addr + off), 20);
        memcpy(&base, ram + addr + off + 4, 8);
        memcpy(&size, ram + addr + off + 12, 8);
        if (get32(ram + addr + off + 20) == 1) {
            usable += size;
        }
    }
    assert_int_equal(usable, RAM_SIZE - 0x400 - (0x100000 - 0xa0000));
}

static void test_memory_map_above_4g(void **state)
{
    Image im;
    MultibootInfo info;
    g_autofree uint8_t *ram = new_ram();
    MultibootTarget t = {.host = ram, .below_4g = RAM_SIZE,
                         .above_4g = 1ull << 30};

    make_elf(&im, 0x3);
    assert_true(multiboot_load(im.buf, im.size, "k", NULL, &t, &info, NULL));
    uint32_t len = get32(ram + MULTIBOOT_MBI_ADDR + MBI_MMAP_LENGTH);
    const uint8_t *last = ram + MULTIBOOT_MMAP_ADDR + len - 24;
    uint64_t base, size;
    memcpy(&base, last + 4, 8);
    memcpy(&size, last + 12, 8);
    assert_int_equal(base, 1ull << 32);
    assert_int_equal(size, 1ull << 30);
    /* no -append: QEMU still writes "<path> " */
    assert_string_equal((char *)ram + get32(ram + MULTIBOOT_MBI_ADDR +
                                            MBI_CMDLINE),
                        "k ");
}

static void test_aout_kludge(void **state)
{
    Image im;
    MultibootInfo info;
    g_autofree uint8_t *ram = new_ram();
    uint8_t *h;
    uint32_t flags = 0x10003;

    /* A flat image: header at file offset 0, loaded at 2 MiB. */
    memset(&im, 0, sizeof(im));
    h = im.buf;
    put32(h, MULTIBOOT_HEADER_MAGIC);
    put32(h + 4, flags);
    put32(h + 8, -(MULTIBOOT_HEADER_MAGIC + flags));
    put32(h + 12, 0x200000);         /* header_addr */
    put32(h + 16, 0x200000);         /* load_addr */
    put32(h + 20, 0x200000 + 0x800); /* load_end_addr */
    put32(h + 24, 0x200000 + 0x2000); /* bss_end_addr */
    put32(h + 28, 0x200000 + 0x20);  /* entry */
    memset(im.buf + 32, 0x5c, 0x800 - 32);
    im.size = 0x900;
    assert_true(load(&im, ram, &info, NULL));
    assert_int_equal(info.entry, 0x200020);
    assert_int_equal(info.load_high, 0x202000);
    assert_int_equal(ram[0x200000 + 0x7ff], 0x5c);
    assert_int_equal(ram[0x200000 + 0x800], 0); /* bss */
}

typedef void (*Corrupt)(Image *im);

static void c_no_header(Image *im) { memset(im->buf + HDR_OFF, 0, 12); }
static void c_bad_checksum(Image *im) { im->buf[HDR_OFF + 8] ^= 1; }
static void c_elf64(Image *im) { im->buf[EI_CLASS] = ELFCLASS64; }
static void c_not_elf(Image *im) { im->buf[0] = 'X'; }
static void c_machine(Image *im) { im->buf[18] = EM_ARM; }
static void c_outside_ram(Image *im) { phdr(im)->p_paddr = RAM_SIZE - 0x800; }
static void c_info_area(Image *im) { phdr(im)->p_paddr = 0x9000; }
static void c_truncated(Image *im) { phdr(im)->p_filesz = 0x4000; phdr(im)->p_memsz = 0x4000; }
static void c_filesz(Image *im) { phdr(im)->p_filesz = 0x2000; }
static void c_entry(Image *im) { put32(im->buf + 24, 0x50000); }
static void c_phoff(Image *im) { put32(im->buf + 28, 0xffffff00); }
static void c_wrap(Image *im) { phdr(im)->p_paddr = 0xfffff000; }
static void c_short(Image *im) { im->size = 20; }

static void test_refusals(void **state)
{
    static const struct {
        Corrupt fn;
        const char *msg;
    } cases[] = {
        {c_no_header, "no Multiboot header"},
        {c_bad_checksum, "no Multiboot header"},
        {c_elf64, "64-bit"},
        {c_not_elf, "not an ELF"},
        {c_machine, "i386"},
        {c_outside_ram, "outside guest RAM"},
        {c_info_area, "overlaps the Multiboot info"},
        {c_truncated, "truncated"},
        {c_filesz, "truncated"},
        {c_entry, "entry point"},
        {c_phoff, "program headers"},
        {c_wrap, "outside guest RAM"},
        {c_short, "no Multiboot header"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        Image im;
        MultibootInfo info;
        g_autoptr(GError) err = NULL;
        g_autofree uint8_t *ram = new_ram();

        make_elf(&im, 0x3);
        cases[i].fn(&im);
        if (load(&im, ram, &info, &err)) {
            fail_msg("case %zu was accepted", i);
        }
        if (!strstr(err->message, cases[i].msg)) {
            fail_msg("case %zu: '%s' lacks '%s'", i, err->message,
                     cases[i].msg);
        }
        /* A refused kernel writes nothing into guest RAM. */
        for (uint32_t a = 0; a < RAM_SIZE; a += 4096) {
            if (ram[a] != 0xaa) {
                fail_msg("case %zu wrote RAM at 0x%x", i, a);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_elf),
        cmocka_unit_test(test_memory_map_above_4g),
        cmocka_unit_test(test_aout_kludge),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
