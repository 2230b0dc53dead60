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

#include "../../migration/migration-int.h"
#include "../../migration/options-int.h"
#include "../../migration/compression.h"
#include "../../migration/ram.h"
#include "../../migration/savevm.h"
#include "../../migration/zero-page.h"
#include "godwit/machine.h"
#include "migration/channel.h"

#define PAGES 4096 /* 16 MiB */

/* ---- doubles for migration.c (the state machine is not under test) ---- */

static bool switchover;
static int passes;
/* zlib's own ops while a test wraps them (put back by the teardown) */
static const MigCompressOps *saved_zlib_ops;

bool migration_in_switchover(void)
{
    return switchover;
}

bool migration_rate_exceeded(QEMUFile *f)
{
    return false;
}

void migration_pass_done(uint64_t pass, uint64_t dirty_bytes)
{
    passes++;
}

void migration_auto_converge_period(uint64_t bytes_dirty, uint64_t bytes_xfer,
                                    uint64_t period_us)
{
}

/* ---- a fake accelerator with a dirty log the test controls ------------- */

static unsigned long *fake_dirty; /* pages "the guest" wrote */
static bool log_on, first_sync;
static int clears;
static uint64_t cleared_pages;

static bool fake_start(Machine *m, RAMBlock *rb, GError **errp)
{
    log_on = first_sync = true;
    return true;
}

static bool fake_sync(Machine *m, RAMBlock *rb, unsigned long *bitmap,
                      GError **errp)
{
    uint64_t n = ram_block_pages(rb);

    assert_true(log_on);
    if (first_sync) {
        bitmap_set_range(bitmap, 0, n);
        first_sync = false;
    }
    bitmap_or(bitmap, fake_dirty, n);
    bitmap_clear_range(fake_dirty, 0, n);
    return true;
}

static bool fake_clear(Machine *m, RAMBlock *rb, uint64_t first, uint64_t n,
                       GError **errp)
{
    clears++;
    cleared_pages += n;
    return true;
}

static void fake_stop(Machine *m, RAMBlock *rb)
{
    log_on = false;
}

static bool fake_manual(Machine *m)
{
    return true;
}

static const AccelOps fake_accel = {
    .name = "fake",
    .dirty_log_start = fake_start,
    .dirty_log_sync = fake_sync,
    .dirty_log_clear = fake_clear,
    .dirty_log_stop = fake_stop,
    .dirty_log_manual = fake_manual,
};

/* ---- helpers --------------------------------------------------------------
 */

static void fill_page(RAMBlock *rb, uint64_t page, uint32_t seed)
{
    uint32_t *p = (uint32_t *)(rb->host + page * GW_PAGE_SIZE);

    for (size_t i = 0; i < GW_PAGE_SIZE / 4; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = seed;
    }
}

/* The guest writes a page: content changes and the fake log sees it. */
static void guest_write(RAMBlock *rb, uint64_t page, uint32_t seed)
{
    fill_page(rb, page, seed);
    set_bit(page, fake_dirty);
}

static QEMUFile *open_file(const char *path, bool out)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    MigUri u;
    MigChannel *c;

    assert_true(mig_uri_parse(uri, &u, NULL));
    if (out) {
        c = mig_connect(&u, -1, NULL);
    } else {
        MigListener *l = mig_listen(&u, NULL);
        assert_non_null(l);
        c = mig_accept(l, NULL);
        mig_listener_close(l);
    }
    mig_uri_clear(&u);
    assert_non_null(c);
    return out ? qemu_file_new_output(c) : qemu_file_new_input(c);
}

/* ---- fixture: what each case creates, torn down even after a failure -- */

typedef struct Fixture {
    Machine src, dst;
    char *dir;  /* gwram-XXXXXX under the temp dir */
    char *path; /* the stream file in it */
} Fixture;

static int fixture_setup(void **state)
{
    Fixture *fx = g_new0(Fixture, 1);

    fx->src.accel = fx->dst.accel = &fake_accel;
    fx->dir = g_dir_make_tmp("gwram-XXXXXX", NULL);
    assert_non_null(fx->dir);
    fx->path = g_build_filename(fx->dir, "ram.mig", NULL);
    *state = fx;
    return 0;
}

/* Source and destination blocks of `pages` pages; a fake log for them. */
static void fixture_ram(Fixture *fx, uint64_t pages)
{
    fx->src.ram = ram_block_new("pc.ram", pages * GW_PAGE_SIZE, NULL);
    fx->dst.ram = ram_block_new("pc.ram", pages * GW_PAGE_SIZE, NULL);
    assert_non_null(fx->src.ram);
    assert_non_null(fx->dst.ram);
    fake_dirty = bitmap_new(pages);
}

/*
 * Everything a case may have left behind: running compression workers and
 * the source's RAM state (save cleanup), the destination's load state and
 * decompression workers, the section table, the capabilities and
 * parameters, the stream file and its folder.
 */
static int fixture_teardown(void **state)
{
    Fixture *fx = *state;

    switchover = false;
    qemu_savevm_state_cleanup();
    ram_load_cleanup(NULL);
    unregister_savevm_all();
    migration_options_reset();
    if (saved_zlib_ops) {
        mig_compress_replace(MIG_COMPRESSION_ZLIB, saved_zlib_ops);
        saved_zlib_ops = NULL;
    }
    g_unlink(fx->path);
    g_rmdir(fx->dir);
    g_free(fx->path);
    g_free(fx->dir);
    g_clear_pointer(&fake_dirty, bitmap_free);
    ram_block_free(fx->src.ram);
    ram_block_free(fx->dst.ram);
    g_free(fx);
    return 0;
}

/*
 * Compares two blocks wherever either is populated (reading a shmem hole
 * would populate it: a 4 GiB block is compared without touching holes).
 */
static void assert_blocks_equal(RAMBlock *a, RAMBlock *b)
{
    g_autoptr(GArray) ranges = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    RAMBlock *blocks[2] = {a, b};

    assert_int_equal(a->used_length, b->used_length);
    for (int i = 0; i < 2; i++) {
        uint64_t pos = 0, s, e;
        while (ram_block_next_extent(blocks[i], pos, &s, &e) > 0) {
            g_array_append_val(ranges, s);
            g_array_append_val(ranges, e);
            pos = e;
        }
    }
    for (guint i = 0; i < ranges->len; i += 2) {
        uint64_t s = g_array_index(ranges, uint64_t, i);
        uint64_t e = g_array_index(ranges, uint64_t, i + 1);
        for (uint64_t p = s; p < e; p += GW_PAGE_SIZE) {
            if (memcmp(a->host + p, b->host + p, GW_PAGE_SIZE)) {
                fail_msg("page %" G_GUINT64_FORMAT " differs",
                         p / GW_PAGE_SIZE);
            }
        }
    }
}

static void iterate_until_done(QEMUFile *f)
{
    int r;

    do {
        r = qemu_savevm_state_iterate(f);
        assert_true(r >= 0);
    } while (r == 0);
}

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

/* Flips one byte of a page, as a guest that changes little per pass. */
static void guest_poke(RAMBlock *rb, uint64_t page, size_t at, uint8_t v)
{
    rb->host[page * GW_PAGE_SIZE + at] = v;
    set_bit(page, fake_dirty);
}

static void set_caps(bool xbzrle, bool compress)
{
    g_autoptr(GError) err = NULL;
    bool caps[MIGRATION_CAPABILITY__MAX];

    mig_caps_snapshot(caps);
    caps[MIGRATION_CAPABILITY_XBZRLE] = xbzrle;
    caps[MIGRATION_CAPABILITY_COMPRESS] = compress;
    if (!mig_caps_commit(caps, &err)) {
        fail_msg("caps: %s", err->message);
    }
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
static void fill_text(RAMBlock *rb, uint64_t page, uint32_t seed)
{
    char *p = (char *)(rb->host + page * GW_PAGE_SIZE);

    for (size_t i = 0; i < GW_PAGE_SIZE; i += 32) {
        char line[48];
        snprintf(line, sizeof(line), "%08x-%06x-the quick fox\n",
                 (unsigned)(seed + i) & 0xffffffffu,
                 (unsigned)page & 0xffffffu);
        memcpy(p + i, line, 32);
    }
}

static void set_compress(MigCompression method, bool xbzrle, bool wait,
                         int threads, int dthreads)
{
    g_autoptr(GError) err = NULL;
    MigrationParameters p;

    set_caps(xbzrle, threads > 0);
    mig_params_snapshot(&p);
    p.compress_method = method;
    p.compress_wait_thread = wait;
    p.compress_threads = (uint8_t)MAX(threads, 1);
    p.decompress_threads = (uint8_t)MAX(dthreads, 1);
    if (!mig_params_commit(&p, &err)) {
        fail_msg("params: %s", err->message);
    }
}

#define CPAGES 600

/* Source: bulk stage plus two passes, written to fx->path. */
static void compress_stream(Fixture *fx, bool xbzrle)
{
    Machine *src = &fx->src;
    g_autoptr(GError) err = NULL;
    QEMUFile *f;

    /* text pages, incompressible pages, zero pages, holes */
    for (uint64_t p = 0; p < CPAGES; p++) {
        switch (p % 4) {
        case 0:
        case 1:
            fill_text(src->ram, p, (uint32_t)p);
            break;
        case 2:
            fill_page(src->ram, p, (uint32_t)p + 5);
            break;
        default:
            memset(src->ram->host + p * GW_PAGE_SIZE, 0, GW_PAGE_SIZE);
        }
    }
    ram_register(src);
    ram_stats_reset();
    f = open_file(fx->path, true);
    qemu_savevm_state_header(f);
    if (!qemu_savevm_state_setup(f, &err)) {
        fail_msg("setup: %s", err->message);
    }
    iterate_until_done(f);
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t p = pass; p < CPAGES; p += 3) {
            if (xbzrle) {
                guest_poke(src->ram, p, (size_t)(p * 13) % GW_PAGE_SIZE,
                           (uint8_t)(pass + 7));
            } else {
                fill_text(src->ram, p, (uint32_t)(p * 7 + pass));
                set_bit(p, fake_dirty);
            }
        }
        assert_true(ram_bitmap_sync(&err));
        iterate_until_done(f);
    }
    guest_write(src->ram, 3, 3333); /* one last change in the END section */
    switchover = true;
    if (!qemu_savevm_state_complete(f, &err)) {
        fail_msg("complete: %s", err->message);
    }
    switchover = false;
    qemu_savevm_state_cleanup();
    assert_true(qemu_fclose(f, &err));
}

static bool load_stream(Machine *dst, const char *path, GError **errp)
{
    QEMUFile *f;
    bool ok;

    ram_load_init(dst);
    f = open_file(path, false);
    ok = qemu_loadvm_state(f, errp);
    qemu_fclose(f, NULL);
    return ok;
}

/*
 * zlib with a gate: the first page a worker compresses waits until the
 * migration thread has found that worker busy (compress-wait-thread off),
 * so the nowait path runs whatever the scheduler does. Gives up after
 * 10 s, and the case then fails on its busy count.
 */
static ssize_t gated_compress_page(MigCompressCtx *ctx, const uint8_t *page,
                                   uint8_t *out, size_t out_size, GError **errp)
{
    static _Atomic bool opened;

    for (int i = 0; i < 100000 && !atomic_load(&opened); i++) {
        if (atomic_load(&compression_stats.busy) > 0) {
            atomic_store(&opened, true);
            break;
        }
        g_usleep(100);
    }
    atomic_store(&opened, true);
    return saved_zlib_ops->compress_page(ctx, page, out, out_size, errp);
}

static MigCompressOps gated_zlib_ops;

static void gate_zlib(void)
{
    const MigCompressOps *zlib;

    mig_compress_register_all();
    zlib = mig_compress_ops(MIG_COMPRESSION_ZLIB);
    gated_zlib_ops = *zlib;
    gated_zlib_ops.compress_page = gated_compress_page;
    saved_zlib_ops =
        mig_compress_replace(MIG_COMPRESSION_ZLIB, &gated_zlib_ops);
}

static void compress_case(Fixture *fx, MigCompression method, bool xbzrle,
                          bool wait)
{
    g_autoptr(GError) err = NULL;

    /* without waiting: one worker, held until it has been found busy */
    set_compress(method, xbzrle, wait, wait ? 2 : 1, 3);
    fixture_ram(fx, PAGES);
    compress_stream(fx, xbzrle);

    /* text pages went compressed; random ones did not shrink */
    uint64_t cpages = atomic_load(&compression_stats.pages);
    uint64_t busy = atomic_load(&compression_stats.busy);
    if (wait) {
        assert_true(cpages >= CPAGES / 2);
        assert_int_equal(busy, 0);
    } else {
        /* the nowait path ran: pages went uncompressed, counted busy */
        if (busy == 0) {
            fail_msg("no page was found busy without waiting");
        }
        assert_true(cpages > 0);
    }
    assert_true(cpages + busy >= CPAGES / 2);
    assert_true(atomic_load(&compression_stats.compressed_size) <
                cpages * GW_PAGE_SIZE / 4);
    assert_true(atomic_load(&ram_stats.normal) >= CPAGES / 4);
    assert_true(atomic_load(&ram_stats.duplicate) >= CPAGES / 4);
    if (xbzrle) {
        assert_true(atomic_load(&xbzrle_stats.pages) > 0);
    }

    if (!load_stream(&fx->dst, fx->path, &err)) {
        fail_msg("load (%s): %s", mig_compression_name(method), err->message);
    }
    assert_memory_equal(fx->src.ram->host, fx->dst.ram->host,
                        CPAGES * GW_PAGE_SIZE);
}

static void test_ram_stream_compress_zlib(void **state)
{
    compress_case(*state, MIG_COMPRESSION_ZLIB, false, true);
}

static void test_ram_stream_compress_zstd(void **state)
{
    compress_case(*state, MIG_COMPRESSION_ZSTD, false, true);
}

static void test_ram_stream_compress_lz4(void **state)
{
    compress_case(*state, MIG_COMPRESSION_LZ4, false, true);
}

static void test_ram_stream_compress_xbzrle(void **state)
{
    compress_case(*state, MIG_COMPRESSION_LZ4, true, true);
}

static void test_ram_stream_compress_nowait(void **state)
{
    gate_zlib();
    compress_case(*state, MIG_COMPRESSION_ZLIB, false, false);
}

/*
 * The destination refuses what it cannot place: compressed pages with
 * the capability off, another method than the source's, a body cut short.
 */
static void test_ram_stream_compress_refused(void **state)
{
    Fixture *fx = *state;
    Machine *dst = &fx->dst;
    g_autoptr(GError) err = NULL;
    g_autofree char *data = NULL;
    gsize len;

    set_compress(MIG_COMPRESSION_ZLIB, false, true, 2, 2);
    fixture_ram(fx, PAGES);
    compress_stream(fx, false);
    unregister_savevm_all();
    ram_register(dst);

    set_compress(MIG_COMPRESSION_ZLIB, false, true, 0, 0);
    assert_false(load_stream(dst, fx->path, &err));
    assert_non_null(strstr(err->message, "unexpected compressed page"));
    g_clear_error(&err);
    ram_load_cleanup(NULL);

    set_compress(MIG_COMPRESSION_LZ4, false, true, 1, 2);
    assert_false(load_stream(dst, fx->path, &err));
    if (!strstr(err->message, "decompression of the lz4 page")) {
        fail_msg("unexpected error: %s", err->message);
    }
    g_clear_error(&err);
    ram_load_cleanup(NULL);

    /* a body with a byte changed in the middle of its deflate data */
    assert_true(g_file_get_contents(fx->path, &data, &len, NULL));
    gsize at = 0;
    for (gsize i = 0; i + 12 < len; i++) {
        /* be64 record header of a compressed page with CONTINUE */
        if ((uint8_t)data[i + 6] == 0x01 && (uint8_t)data[i + 7] == 0x20 &&
            data[i + 8] == 0 && data[i + 9] == 0) {
            at = i + 12 + 8; /* a few bytes into the body */
            break;
        }
    }
    assert_true(at > 0);
    data[at] ^= 0x55;
    data[at + 1] ^= 0xaa;
    assert_true(g_file_set_contents(fx->path, data, (gssize)len, NULL));
    set_compress(MIG_COMPRESSION_ZLIB, false, true, 1, 2);
    assert_false(load_stream(dst, fx->path, &err));
    if (!strstr(err->message, "decompression of the zlib page")) {
        fail_msg("unexpected error: %s", err->message);
    }
}

/* ---- a guest larger than 4 GiB ---------------------------------------- */

#define BIG_PAGES ((4ull << 30) / GW_PAGE_SIZE + 10240) /* 4 GiB + 40 MiB */
#define HIGH (BIG_PAGES - 9216) /* first page of the layout above 4 GiB */

typedef enum BigKind { BIG_ZERO, BIG_DATA, BIG_TEXT } BigKind;

/*
 * The layout, in stream order. Why this shape: the writer's iovec list
 * holds 256 entries and its buffer 32 KiB. A normal page takes two entries
 * (its buffered header, the page by reference); a run of ZERO records one
 * (consecutive buffered bytes merge). 4000 ZERO records fill the buffer,
 * which flushes it, so the next run of more than 128 normal pages fills
 * the list exactly when a buffered header is added; the long stretch of
 * ZERO records after it then wrote over that header before it was sent
 * (the old writer). Compressible text pages add compressed records, and
 * later passes XBZRLE deltas.
 */
static const struct {
    BigKind kind;
    int pages;
} big_layout_table[] = {
    {BIG_ZERO, 4000}, {BIG_DATA, 168}, {BIG_ZERO, 4000}, {BIG_DATA, 300},
    {BIG_TEXT, 50},   {BIG_ZERO, 500}, {BIG_DATA, 64},
};

/*
 * Writes the layout above 4 GiB (a header with its high half overwritten
 * could name another valid page there) and 64 data pages just below.
 * Returns the number of pages after HIGH it spans; *normal, *zero and
 * *text count its data, zero and compressible pages.
 */
static uint64_t big_layout(RAMBlock *rb, uint64_t *normal, uint64_t *zero,
                           uint64_t *text)
{
    uint64_t p = HIGH;

    *normal = 64;
    *zero = *text = 0;
    for (uint64_t i = 0; i < 64; i++) {
        fill_page(rb, (4ull << 30) / GW_PAGE_SIZE - 64 + i, (uint32_t)i + 1);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(big_layout_table); i++) {
        uint64_t n = (uint64_t)big_layout_table[i].pages;
        switch (big_layout_table[i].kind) {
        case BIG_ZERO:
            memset(rb->host + p * GW_PAGE_SIZE, 0, n * GW_PAGE_SIZE);
            *zero += n;
            p += n;
            break;
        case BIG_DATA:
            for (uint64_t j = 0; j < n; j++, p++) {
                fill_page(rb, p, (uint32_t)(p * 3));
            }
            *normal += n;
            break;
        case BIG_TEXT:
            for (uint64_t j = 0; j < n; j++, p++) {
                fill_text(rb, p, (uint32_t)p);
            }
            *text += n;
            break;
        }
    }
    g_assert(p <= BIG_PAGES);
    return p - HIGH;
}

static void big_case(Fixture *fx, bool compress, bool xbzrle)
{
    Machine *src = &fx->src;
    g_autoptr(GError) err = NULL;
    QEMUFile *f;

    if (compress) {
        set_compress(MIG_COMPRESSION_LZ4, xbzrle, true, 2, 2);
    } else {
        set_caps(xbzrle, false);
    }
    fixture_ram(fx, BIG_PAGES);
    uint64_t normal, zero, text;
    uint64_t span = big_layout(src->ram, &normal, &zero, &text);
    ram_register(src);
    ram_stats_reset();
    f = open_file(fx->path, true);
    qemu_savevm_state_header(f);
    if (!qemu_savevm_state_setup(f, &err)) {
        fail_msg("setup: %s", err->message);
    }
    iterate_until_done(f);
    assert_int_equal(atomic_load(&ram_stats.normal),
                     normal + (compress ? 0 : text));
    /* two passes rewriting every data page above 4 GiB a little */
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t p = HIGH; p < HIGH + span; p++) {
            if (!buffer_is_zero(src->ram->host + p * GW_PAGE_SIZE,
                                GW_PAGE_SIZE)) {
                guest_poke(src->ram, p, (size_t)(p * 29 + pass) % GW_PAGE_SIZE,
                           (uint8_t)(0x80 + pass));
            }
        }
        assert_true(ram_bitmap_sync(&err));
        iterate_until_done(f);
    }
    switchover = true;
    if (!qemu_savevm_state_complete(f, &err)) {
        fail_msg("complete: %s", err->message);
    }
    switchover = false;
    qemu_savevm_state_cleanup();
    assert_true(qemu_fclose(f, &err));
    assert_int_equal(atomic_load(&ram_stats.duplicate), zero);
    if (xbzrle) {
        assert_true(atomic_load(&xbzrle_stats.pages) >= 2 * (normal - 64));
    }
    if (compress) {
        assert_true(atomic_load(&compression_stats.pages) >= text);
    }

    if (!load_stream(&fx->dst, fx->path, &err)) {
        fail_msg("load: %s", err->message);
    }
    assert_blocks_equal(src->ram, fx->dst.ram);
}

static void test_ram_stream_big_plain(void **state)
{
    big_case(*state, false, false);
}

static void test_ram_stream_big_xbzrle(void **state)
{
    big_case(*state, false, true);
}

static void test_ram_stream_big_compress(void **state)
{
    big_case(*state, true, false);
}

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
