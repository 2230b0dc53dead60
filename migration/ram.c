/*
 * RAM migration, source side: the migration bitmap, dirty-log syncs
 * through AccelOps, and the "ram" section's records (QEMU's format).
 *
 * Bulk stage (first pass): every page is dirty, but pages in never-
 * populated extents of the memfd are not read at all (the destination's
 * RAM is zero already). Before the first page of each chunk is sent, the
 * chunk's dirty log is re-armed (KVM_CLEAR_DIRTY_LOG), and only then are
 * its extents looked up, so a page populated in between is both seen as
 * populated and logged if written again. Populated pages are checked for
 * zero (SIMD) and sent as ZERO records; the rest as PAGE records queued
 * by reference, written with writev straight from guest RAM.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "godwit/monitor.h"
#include "migration-int.h"
#include "migration/options.h"
#include "migration/register.h"
#include "multifd.h"
#include "ram-int.h"
#include "savevm.h"
#include "zero-page.h"

#define RAM_THROTTLE_PERIOD_US 1000000

RAMState ram_state;
RAMStats ram_stats;

void ram_stats_reset(void)
{
    memset(&ram_stats, 0, sizeof(ram_stats));
}

uint64_t ram_dirty_pages(void)
{
    return ram_state.dirty_pages;
}

static uint64_t chunks_of(uint64_t pages)
{
    return (pages + (1ull << RAM_CLEAR_CHUNK_SHIFT) - 1) >>
           RAM_CLEAR_CHUNK_SHIFT;
}

void ram_account(uint64_t bytes)
{
    atomic_fetch_add(&ram_stats.transferred, bytes);
    if (ram_state.postcopy) {
        atomic_fetch_add(&ram_stats.postcopy_bytes, bytes);
    } else if (migration_in_switchover()) {
        atomic_fetch_add(&ram_stats.downtime_bytes, bytes);
    } else {
        atomic_fetch_add(&ram_stats.precopy_bytes, bytes);
    }
}

void ram_update_remaining(RAMState *rs)
{
    atomic_store(&ram_stats.remaining, rs->dirty_pages * GW_PAGE_SIZE);
}

/* ---- bitmap sync --------------------------------------------------------- */

bool ram_bitmap_sync(GError **errp)
{
    RAMState *rs = &ram_state;
    const AccelOps *accel = rs->m->accel;
    uint64_t before = rs->dirty_pages, after = 0;
    int64_t now = g_get_monotonic_time();

    for (int i = 0; i < rs->nr_blocks; i++) {
        RAMBlockState *b = &rs->blocks[i];
        if (!accel->dirty_log_sync(rs->m, b->rb, b->bmap, errp)) {
            return false;
        }
        ram_block_take_host_dirty(b->rb, b->bmap);
        bitmap_set_range(b->clear_chunks, 0, chunks_of(b->pages));
        after += bitmap_count(b->bmap, b->pages);
    }
    rs->dirty_pages = after;
    ram_update_remaining(rs);

    uint64_t found = after - before;
    uint64_t count = atomic_fetch_add(&ram_stats.dirty_sync_count, 1) + 1;
    atomic_store(&ram_stats.last_sync_dirty, found);
    if (rs->last_sync_us && now > rs->last_sync_us) {
        atomic_store(&ram_stats.dirty_pages_rate,
                     found * 1000000 / (uint64_t)(now - rs->last_sync_us));
    }
    rs->last_sync_us = now;
    ram_xbzrle_sync_stats();
    ram_compress_sync_stats(atomic_load(&ram_stats.normal) +
                            atomic_load(&ram_stats.duplicate) +
                            atomic_load(&compression_stats.pages) +
                            atomic_load(&xbzrle_stats.pages));
    migration_pass_done(count, found * GW_PAGE_SIZE);

    rs->period_dirty_pages += found;
    if (now - rs->period_start_us >= RAM_THROTTLE_PERIOD_US) {
        uint64_t xfer = atomic_load(&ram_stats.transferred);
        migration_auto_converge_period(rs->period_dirty_pages * GW_PAGE_SIZE,
                                       xfer - rs->period_xfer_start,
                                       (uint64_t)(now - rs->period_start_us));
        rs->period_start_us = now;
        rs->period_dirty_pages = 0;
        rs->period_xfer_start = xfer;
    }
    return true;
}

/* ---- sending pages ------------------------------------------------------- */

void ram_put_page_header(QEMUFile *f, RAMBlock *rb, uint64_t offset,
                         uint64_t flags, uint64_t payload)
{
    RAMState *rs = &ram_state;
    uint64_t bytes = 8 + payload;

    if (rb == rs->last_sent) {
        flags |= RAM_SAVE_FLAG_CONTINUE;
    }
    qemu_put_be64(f, offset | flags);
    if (!(flags & RAM_SAVE_FLAG_CONTINUE)) {
        qemu_put_counted_string(f, rb->idstr);
        bytes += 1 + strlen(rb->idstr);
        rs->last_sent = rb;
    }
    ram_account(bytes);
}

void ram_put_normal_page(QEMUFile *f, RAMBlock *rb, uint64_t offset,
                         const uint8_t *data, bool by_reference)
{
    ram_put_page_header(f, rb, offset, RAM_SAVE_FLAG_PAGE, GW_PAGE_SIZE);
    if (by_reference) {
        qemu_put_buffer_async(f, data, GW_PAGE_SIZE);
    } else {
        qemu_put_buffer(f, data, GW_PAGE_SIZE);
    }
    atomic_fetch_add(&ram_stats.normal, 1);
    atomic_fetch_add(&ram_stats.normal_bytes, GW_PAGE_SIZE);
}

/*
 * One page: ZERO record, XBZRLE delta, or the whole page. The paths that
 * need the guest's page as it is now take a copy; a normal page goes by
 * reference, straight from guest RAM.
 */
void ram_save_page(RAMState *rs, QEMUFile *f, RAMBlockState *b, uint64_t page)
{
    uint64_t offset = page << GW_PAGE_SHIFT;
    const uint8_t *host = b->rb->host + offset;
    uint64_t age = atomic_load(&ram_stats.dirty_sync_count);

    if (rs->postcopy) {
        /* the destination places whole pages: no delta, no compression */
        if (buffer_is_zero(host, GW_PAGE_SIZE)) {
            ram_put_page_header(f, b->rb, offset, RAM_SAVE_FLAG_ZERO, 1);
            qemu_put_byte(f, 0);
            atomic_fetch_add(&ram_stats.duplicate, 1);
        } else {
            ram_put_normal_page(f, b->rb, offset, host, true);
        }
        return;
    }
    if (multifd_send_active()) {
        /* zero pages are found by the channel threads */
        multifd_queue_page(f, b->rb, offset);
        return;
    }
    if (buffer_is_zero(host, GW_PAGE_SIZE)) {
        ram_put_page_header(f, b->rb, offset, RAM_SAVE_FLAG_ZERO, 1);
        qemu_put_byte(f, 0);
        atomic_fetch_add(&ram_stats.duplicate, 1);
        ram_xbzrle_cache_zero_page(offset, age);
        return;
    }
    /* With XBZRLE, compression only does the bulk stage (as QEMU). */
    if (ram_compress_active() &&
        (rs->bulk_stage || !migrate_cap(MIGRATION_CAPABILITY_XBZRLE))) {
        const uint8_t *cached = ram_xbzrle_cache_page(offset, host, age);
        const uint8_t *src = cached ? cached : host;
        if (!ram_compress_save_page(f, b->rb, offset, src, cached != NULL)) {
            ram_put_normal_page(f, b->rb, offset, src, cached == NULL);
        }
        return;
    }
    if (ram_xbzrle_save_page(f, b->rb, offset, host, age, rs->bulk_stage)) {
        return;
    }
    ram_put_normal_page(f, b->rb, offset, host, true);
}

/* Drops never-populated pages of [first, end) from the bitmap. */
void ram_skip_holes(RAMState *rs, RAMBlockState *b, uint64_t first,
                    uint64_t end)
{
    uint64_t pos = first << GW_PAGE_SHIFT, stop = end << GW_PAGE_SHIFT;

    while (pos < stop) {
        uint64_t s = pos, e = b->data_end;
        int r = 1;
        if (pos < b->data_start || pos >= b->data_end) {
            r = ram_block_next_extent(b->rb, pos, &s, &e);
            if (r > 0) {
                b->data_start = s;
                b->data_end = e;
            }
        }
        uint64_t hole_end = r > 0 ? MIN(s, stop) : stop;
        if (r < 0) {
            return; /* can't tell: send everything, it stays correct */
        }
        if (hole_end > pos) {
            uint64_t p0 = pos >> GW_PAGE_SHIFT, p1 = hole_end >> GW_PAGE_SHIFT;
            for (uint64_t p = bitmap_find_next(b->bmap, p1, p0); p < p1;
                 p = bitmap_find_next(b->bmap, p1, p + 1)) {
                clear_bit(p, b->bmap);
                rs->dirty_pages--;
                atomic_fetch_add(&ram_stats.skipped, 1);
            }
        }
        if (r == 0) {
            return;
        }
        pos = e;
    }
}

/*
 * Before sending from a chunk: re-arm its dirty log, then (bulk stage)
 * drop its holes. Returns false on an accelerator error.
 */
static bool ram_prepare_chunk(RAMState *rs, RAMBlockState *b, uint64_t page,
                              GError **errp)
{
    uint64_t chunk = page >> RAM_CLEAR_CHUNK_SHIFT;
    uint64_t first = chunk << RAM_CLEAR_CHUNK_SHIFT;
    uint64_t end = MIN(first + (1ull << RAM_CLEAR_CHUNK_SHIFT), b->pages);

    if (!test_bit(chunk, b->clear_chunks)) {
        return true;
    }
    clear_bit(chunk, b->clear_chunks);
    if (!migration_in_switchover() &&
        !rs->m->accel->dirty_log_clear(rs->m, b->rb, first, end - first,
                                       errp)) {
        return false;
    }
    if (rs->bulk_stage) {
        ram_skip_holes(rs, b, first, end);
    }
    return true;
}

/*
 * Finds the next page to send from the scan position, wrapping around.
 * Returns false when nothing is dirty.
 */
static bool ram_find_dirty(RAMState *rs, RAMBlockState **bp, uint64_t *pagep,
                           GError **errp)
{
    while (rs->dirty_pages > 0) {
        RAMBlockState *b = &rs->blocks[rs->cur_block];
        uint64_t p = bitmap_find_next(b->bmap, b->pages, rs->cur_page);
        if (p >= b->pages) {
            rs->cur_block = (rs->cur_block + 1) % rs->nr_blocks;
            rs->cur_page = 0;
            continue;
        }
        rs->cur_page = p;
        if (test_bit(p >> RAM_CLEAR_CHUNK_SHIFT, b->clear_chunks)) {
            if (!ram_prepare_chunk(rs, b, p, errp)) {
                return false;
            }
            continue; /* the page may have been a hole */
        }
        *bp = b;
        *pagep = p;
        return true;
    }
    rs->cur_block = 0;
    rs->cur_page = 0;
    return false;
}

/* Sends one dirty page; 1 sent, 0 nothing dirty, < 0 error. */
int ram_save_one(RAMState *rs, QEMUFile *f)
{
    g_autoptr(GError) err = NULL;
    RAMBlockState *b;
    uint64_t page;

    if (!ram_find_dirty(rs, &b, &page, &err)) {
        if (err) {
            qemu_file_set_error(f, -EIO, "%s", err->message);
            return -EIO;
        }
        return 0;
    }
    clear_bit(page, b->bmap);
    rs->dirty_pages--;
    rs->cur_page = page + 1;
    if (rs->postcopy) {
        set_bit(page, b->postcopy_sent);
        ram_postcopy_mark_release(rs, b, page);
    }
    ram_save_page(rs, f, b, page);
    return 1;
}

/* ---- section handlers ---------------------------------------------------- */

static bool ram_save_setup(QEMUFile *f, void *opaque, GError **errp)
{
    RAMState *rs = opaque;
    uint64_t total = 0;

    rs->nr_blocks = 0;
    rs->blocks[rs->nr_blocks++].rb = rs->m->ram;
    rs->cur_block = 0;
    rs->cur_page = 0;
    rs->last_sent = NULL;
    rs->bulk_stage = true;
    rs->last_sync_us = 0;
    rs->dirty_pages = 0;
    rs->period_start_us = g_get_monotonic_time();
    rs->period_dirty_pages = 0;
    rs->period_xfer_start = 0;
    for (int i = 0; i < rs->nr_blocks; i++) {
        RAMBlockState *b = &rs->blocks[i];
        b->pages = ram_block_pages(b->rb);
        b->bmap = bitmap_new(b->pages);
        b->clear_chunks = bitmap_new(chunks_of(b->pages));
        b->data_start = b->data_end = 0;
        total += b->rb->used_length;
    }
    rs->active = true;
    if (!ram_xbzrle_setup(errp) || !ram_compress_setup(errp)) {
        return false;
    }
    for (int i = 0; i < rs->nr_blocks; i++) {
        if (!rs->m->accel->dirty_log_start(rs->m, rs->blocks[i].rb, errp)) {
            return false;
        }
    }
    /* The first sync reports every page: the bulk stage sends them all. */
    if (!ram_bitmap_sync(errp)) {
        return false;
    }
    qemu_put_be64(f, total | RAM_SAVE_FLAG_MEM_SIZE);
    for (int i = 0; i < rs->nr_blocks; i++) {
        qemu_put_counted_string(f, rs->blocks[i].rb->idstr);
        qemu_put_be64(f, rs->blocks[i].rb->used_length);
    }
    if (!multifd_send_sync_main(f)) {
        return qemu_file_check(f, errp);
    }
    qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
    return qemu_file_check(f, errp);
}

static int ram_save_iterate(QEMUFile *f, void *opaque)
{
    RAMState *rs = opaque;
    int64_t t0 = g_get_monotonic_time();
    int done = 0;

    rs->last_sent = NULL; /* every section names its first block */
    if (rs->postcopy) {
        return ram_save_iterate_postcopy(rs, f);
    }
    ram_xbzrle_apply_resize();
    for (uint64_t i = 1;; i++) {
        int r = ram_save_one(rs, f);
        if (r < 0) {
            return r;
        }
        if (r == 0) {
            done = 1;
            break;
        }
        if ((i & 63) == 0) {
            if (qemu_file_get_error(f) || migration_rate_exceeded(f) ||
                g_get_monotonic_time() - t0 > RAM_ITERATE_MAX_US) {
                break;
            }
        }
    }
    ram_compress_flush(f);
    multifd_send_sync_main(f);
    qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
    ram_account(8);
    ram_update_remaining(rs);
    if (done && rs->bulk_stage) {
        rs->bulk_stage = false;
    }
    return qemu_file_get_error(f) ? qemu_file_get_error(f) : done;
}

static bool ram_save_complete(QEMUFile *f, void *opaque, GError **errp)
{
    RAMState *rs = opaque;
    int r;

    /* post-copy synced for the last time when it began */
    if (!rs->postcopy && !ram_bitmap_sync(errp)) {
        return false;
    }
    rs->last_sent = NULL;
    while ((r = ram_save_one(rs, f)) > 0) {
    }
    ram_compress_flush(f);
    multifd_send_sync_main(f);
    qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
    ram_account(8);
    ram_update_remaining(rs);
    return r == 0 && qemu_file_check(f, errp);
}

static uint64_t ram_save_pending(void *opaque)
{
    RAMState *rs = opaque;

    return rs->dirty_pages * GW_PAGE_SIZE;
}

static void ram_save_cleanup(void *opaque)
{
    RAMState *rs = opaque;

    if (!rs->active) {
        return;
    }
    for (int i = 0; i < rs->nr_blocks; i++) {
        RAMBlockState *b = &rs->blocks[i];
        rs->m->accel->dirty_log_stop(rs->m, b->rb);
        g_clear_pointer(&b->bmap, bitmap_free);
        g_clear_pointer(&b->clear_chunks, bitmap_free);
        g_clear_pointer(&b->postcopy_sent, bitmap_free);
        g_clear_pointer(&b->released, bitmap_free);
    }
    g_mutex_lock(&rs->req_lock);
    g_queue_clear_full(&rs->requests, g_free);
    atomic_store(&rs->req_queued, 0);
    g_mutex_unlock(&rs->req_lock);
    if (rs->to_release) {
        g_array_free(rs->to_release, TRUE);
        rs->to_release = NULL;
    }
    rs->postcopy = false;
    rs->active = false;
    rs->dirty_pages = 0;
    ram_xbzrle_cleanup();
    ram_compress_cleanup();
}

static const SaveStateHandler ram_handler = {
    .idstr = "ram",
    .version_id = RAM_SECTION_VERSION,
    .save_setup = ram_save_setup,
    .save_iterate = ram_save_iterate,
    .save_complete = ram_save_complete,
    .save_pending = ram_save_pending,
    .save_cleanup = ram_save_cleanup,
    .load_state = ram_load,
    .load_cleanup = ram_load_cleanup,
};

void ram_register(Machine *m)
{
    ram_state.m = m;
    g_mutex_init(&ram_state.req_lock);
    g_cond_init(&ram_state.req_cond);
    g_queue_init(&ram_state.requests);
    ram_load_init(m);
    register_savevm(&ram_handler, 0, &ram_state);
}
