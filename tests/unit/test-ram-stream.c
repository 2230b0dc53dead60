/*
 * Unit test of the RAM section end to end without KVM: a fake accelerator
 * hands out dirty pages the test chooses, the source side (ram.c, savevm.c)
 * writes a real stream to a file, the destination side (ram-load.c) loads
 * it into a second RAM block, and the two blocks must be byte-identical.
 * Checks the bulk stage (holes skipped, zero pages as ZERO records), dirty
 * pages re-sent after syncs, VMM-side writes (host_dirty) picked up, and
 * the dirty log re-armed before pages are sent; XBZRLE deltas; the
 * compress capability with every method (alone, with XBZRLE, without
 * waiting for threads) and what a destination refuses; a guest larger
 * than 4 GiB whose pages above 4 GiB go as long runs of normal pages
 * followed by ZERO, compressed and XBZRLE records.
 *
 * Each case owns its state: the fixture makes the temporary folder and
 * the RAM blocks, and the teardown frees them and resets the section
 * table, the compression pools and the options, even after a failure.
 *
 * This file has the plain and XBZRLE cases and main(); the compress and
 * larger-than-4-GiB cases are in test-ram-stream-compress.c, the doubles,
 * fake accelerator and fixture in ram-stream-helpers.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "ram-stream-helpers.h"

static void test_ram_stream(void **state)
{
    Fixture *fx = *state;
    Machine *src = &fx->src, *dst = &fx->dst;
    g_autoptr(GError) err = NULL;
    QEMUFile *f;

    fixture_ram(fx, PAGES);
    /* 100 data pages, 100 populated zero pages, holes, two lone pages */
    for (uint64_t p = 0; p < 100; p++) {
        fill_page(src->ram, p, (uint32_t)p + 1);
    }
    memset(src->ram->host + 100 * GW_PAGE_SIZE, 0, 100 * GW_PAGE_SIZE);
    fill_page(src->ram, 1000, 77);
    fill_page(src->ram, PAGES - 1, 78);
    uint64_t populated = ram_block_populated_bytes(src->ram) / GW_PAGE_SIZE;
    assert_int_equal(populated, 202);

    ram_register(src);
    ram_stats_reset();
    clears = 0;
    cleared_pages = 0;
    passes = 0;
    f = open_file(fx->path, true);
    qemu_savevm_state_header(f);
    assert_true(qemu_savevm_state_setup(f, &err));
    iterate_until_done(f);
    /* bulk stage: holes never read, zero pages as ZERO records */
    assert_int_equal(atomic_load(&ram_stats.skipped), PAGES - populated);
    assert_int_equal(atomic_load(&ram_stats.duplicate), 100);
    assert_int_equal(atomic_load(&ram_stats.normal), 102);
    /* the log was re-armed for the chunk before pages were sent */
    assert_true(clears >= 1 && cleared_pages >= PAGES);

    /* the guest keeps writing: a data page, a zero page, a hole */
    guest_write(src->ram, 5, 500);
    guest_write(src->ram, 150, 1500);
    guest_write(src->ram, 3000, 30000);
    /* the VMM itself writes into guest RAM (a device) */
    fill_page(src->ram, 42, 4242);
    ram_block_set_dirty(src->ram, 42 * GW_PAGE_SIZE, 16);
    assert_true(ram_bitmap_sync(&err));
    assert_int_equal(ram_dirty_pages(), 4);
    iterate_until_done(f);
    assert_int_equal(atomic_load(&ram_stats.normal), 106);

    /* the last writes before the switchover go in the END section */
    guest_write(src->ram, 7, 700);
    guest_write(src->ram, 100, 0); /* zero page written with data, ... */
    memset(src->ram->host + 100 * GW_PAGE_SIZE, 0, GW_PAGE_SIZE); /* zero */
    switchover = true;
    assert_true(qemu_savevm_state_complete(f, &err));
    switchover = false;
    qemu_savevm_state_cleanup();
    assert_false(log_on);
    assert_true(qemu_fclose(f, &err));
    assert_true(passes >= 3);

    /* destination */
    ram_load_init(dst);
    f = open_file(fx->path, false);
    if (!qemu_loadvm_state(f, &err)) {
        fail_msg("load: %s", err->message);
    }
    qemu_fclose(f, NULL);
    /*
     * (Checked before comparing: reading a shmem hole populates it.)
     * Holes stay holes on the destination (it populates at most a window
     * of 64 pages ahead of each page it receives).
     */
    uint64_t s, e;
    assert_int_equal(
        ram_block_next_extent(dst->ram, 2000 * GW_PAGE_SIZE, &s, &e), 1);
    if (s < 3000 * GW_PAGE_SIZE) {
        fail_msg("destination populated page %" G_GUINT64_FORMAT
                 "-%" G_GUINT64_FORMAT,
                 s / GW_PAGE_SIZE, e / GW_PAGE_SIZE);
    }
    assert_true(ram_block_populated_bytes(dst->ram) <=
                ram_block_populated_bytes(src->ram) + 5 * 64 * GW_PAGE_SIZE);

    assert_memory_equal(src->ram->host, dst->ram->host, PAGES * GW_PAGE_SIZE);
}

static void test_ram_stream_xbzrle(void **state)
{
    Fixture *fx = *state;
    Machine *src = &fx->src, *dst = &fx->dst;
    g_autoptr(GError) err = NULL;
    QEMUFile *f;

    set_caps(true, false);
    fixture_ram(fx, PAGES);
    for (uint64_t p = 0; p < 64; p++) {
        fill_page(src->ram, p, (uint32_t)p + 9);
    }
    ram_register(src);
    ram_stats_reset();
    f = open_file(fx->path, true);
    qemu_savevm_state_header(f);
    assert_true(qemu_savevm_state_setup(f, &err));
    iterate_until_done(f);

    /* three passes, each changing a few bytes of every page */
    for (int pass = 0; pass < 3; pass++) {
        for (uint64_t p = 0; p < 64; p++) {
            guest_poke(src->ram, p, (size_t)(pass * 97 + p) % GW_PAGE_SIZE,
                       (uint8_t)(pass + 1));
        }
        /* a page that changes completely overflows the delta */
        guest_write(src->ram, 10, 1000 + pass);
        /* a page written with the same bytes costs nothing */
        set_bit(20, fake_dirty);
        assert_true(ram_bitmap_sync(&err));
        iterate_until_done(f);
    }
    switchover = true;
    assert_true(qemu_savevm_state_complete(f, &err));
    switchover = false;
    qemu_savevm_state_cleanup();
    assert_true(qemu_fclose(f, &err));
    assert_true(atomic_load(&xbzrle_stats.pages) >= 3 * 62);
    assert_true(atomic_load(&xbzrle_stats.overflow) >= 3);
    /* deltas are small: far below a page each */
    assert_true(atomic_load(&xbzrle_stats.bytes) <
                atomic_load(&xbzrle_stats.pages) * 64);

    ram_load_init(dst);
    f = open_file(fx->path, false);
    if (!qemu_loadvm_state(f, &err)) {
        fail_msg("load: %s", err->message);
    }
    qemu_fclose(f, NULL);
    assert_memory_equal(src->ram->host, dst->ram->host, 64 * GW_PAGE_SIZE);
}

/* Text-like content: compresses well, differs from page to page. */
#define CASE(fn)                                                               \
    cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(test_ram_stream),
        CASE(test_ram_stream_xbzrle),
        CASE(test_ram_stream_compress_zlib),
        CASE(test_ram_stream_compress_zstd),
        CASE(test_ram_stream_compress_lz4),
        CASE(test_ram_stream_compress_xbzrle),
        CASE(test_ram_stream_compress_nowait),
        CASE(test_ram_stream_compress_refused),
        CASE(test_ram_stream_big_plain),
        CASE(test_ram_stream_big_xbzrle),
        CASE(test_ram_stream_big_compress),
    };
    migration_channels_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
