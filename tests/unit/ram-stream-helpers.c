/*
 * Helpers of the RAM stream unit test (test-ram-stream*.c): doubles for
 * migration.c, a fake accelerator whose dirty log the test controls, the
 * per-case fixture and the page writers; see ram-stream-helpers.h.
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

/* ---- doubles for migration.c (the state machine is not under test) ---- */

bool switchover;
int passes;
/* zlib's own ops while a test wraps them (put back by the teardown) */
const MigCompressOps *saved_zlib_ops;

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

unsigned long *fake_dirty; /* pages "the guest" wrote */
bool log_on;
static bool first_sync;
int clears;
uint64_t cleared_pages;

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

void fill_page(RAMBlock *rb, uint64_t page, uint32_t seed)
{
    uint32_t *p = (uint32_t *)(rb->host + page * GW_PAGE_SIZE);

    for (size_t i = 0; i < GW_PAGE_SIZE / 4; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = seed;
    }
}

/* The guest writes a page: content changes and the fake log sees it. */
void guest_write(RAMBlock *rb, uint64_t page, uint32_t seed)
{
    fill_page(rb, page, seed);
    set_bit(page, fake_dirty);
}

QEMUFile *open_file(const char *path, bool out)
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

int fixture_setup(void **state)
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
void fixture_ram(Fixture *fx, uint64_t pages)
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
int fixture_teardown(void **state)
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
void assert_blocks_equal(RAMBlock *a, RAMBlock *b)
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

void iterate_until_done(QEMUFile *f)
{
    int r;

    do {
        r = qemu_savevm_state_iterate(f);
        assert_true(r >= 0);
    } while (r == 0);
}

/* Flips one byte of a page, as a guest that changes little per pass. */
void guest_poke(RAMBlock *rb, uint64_t page, size_t at, uint8_t v)
{
    rb->host[page * GW_PAGE_SIZE + at] = v;
    set_bit(page, fake_dirty);
}

void set_caps(bool xbzrle, bool compress)
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
