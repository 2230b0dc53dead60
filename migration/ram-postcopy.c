/*
 * RAM migration, source side, after the switch to post-copy: the discard
 * commands, page requests queued by the return path thread and served
 * first (on the preempt channel when there is one), the background push
 * from the last requested address, release-ram, and the received bitmap
 * of a recovery. See docs/devel/postcopy.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "migration-int.h"
#include "migration/options.h"
#include "ram-int.h"
#include "savevm.h"

/* release-ram: remember a page sent in post-copy, to free once flushed. */
void ram_postcopy_mark_release(RAMState *rs, RAMBlockState *b, uint64_t page)
{
    if (rs->to_release) {
        uint64_t v = (uint64_t)(b - rs->blocks) << 48 | page;
        g_array_append_val(rs->to_release, v);
    }
}

/*
 * release-ram: gives back to the host the pages sent since the last call.
 * Only when every stream they went on has been flushed (pages go by
 * reference, read at flush time): at the start of each post-copy PART,
 * the loop having flushed the last one.
 */
static void ram_postcopy_release(RAMState *rs)
{
    GArray *a = rs->to_release;

    for (guint i = 0; a && i < a->len;) {
        uint64_t v = g_array_index(a, uint64_t, i);
        RAMBlockState *b = &rs->blocks[v >> 48];
        uint64_t p = v & ((1ull << 48) - 1), n = 1;
        /* runs of consecutive pages in one call */
        while (i + n < a->len && g_array_index(a, uint64_t, i + n) == v + n) {
            n++;
        }
        if (ram_block_discard_range(b->rb, p << GW_PAGE_SHIFT,
                                    n << GW_PAGE_SHIFT)) {
            bitmap_set_range(b->released, p, n);
        }
        i += n;
    }
    if (a) {
        g_array_set_size(a, 0);
    }
}

void ram_postcopy_release_sent(void)
{
    ram_postcopy_release(&ram_state);
}

/* ---- post-copy ----------------------------------------------------------- */

/* Sends the dirty bitmap's runs as POSTCOPY_RAM_DISCARD commands. */
static void ram_send_discards(QEMUFile *f, RAMBlockState *b)
{
    uint64_t start[MIG_DISCARD_MAX_PAIRS], len[MIG_DISCARD_MAX_PAIRS];
    int n = 0;

    for (uint64_t p = bitmap_find_next(b->bmap, b->pages, 0); p < b->pages;) {
        uint64_t e = bitmap_find_next_zero(b->bmap, b->pages, p);
        start[n] = p << GW_PAGE_SHIFT;
        len[n] = (e - p) << GW_PAGE_SHIFT;
        if (++n == MIG_DISCARD_MAX_PAIRS) {
            qemu_savevm_send_postcopy_ram_discard(f, b->rb->idstr, n, start,
                                                  len);
            n = 0;
        }
        p = e < b->pages ? bitmap_find_next(b->bmap, b->pages, e) : e;
    }
    if (n) {
        qemu_savevm_send_postcopy_ram_discard(f, b->rb->idstr, n, start, len);
    }
}

bool ram_postcopy_start(QEMUFile *f, GError **errp)
{
    RAMState *rs = &ram_state;

    /* the guest is stopped: this sync is the last */
    if (!ram_bitmap_sync(errp)) {
        return false;
    }
    for (int i = 0; i < rs->nr_blocks; i++) {
        RAMBlockState *b = &rs->blocks[i];
        ram_send_discards(f, b);
        b->postcopy_sent = bitmap_new(b->pages);
        if (migrate_cap(MIGRATION_CAPABILITY_RELEASE_RAM)) {
            b->released = bitmap_new(b->pages);
            rs->to_release = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        }
    }
    ram_compress_flush(f);
    rs->postcopy = true;
    return qemu_file_check(f, errp);
}

bool ram_postcopy_queue_request(const char *block, uint64_t start, uint32_t len,
                                GError **errp)
{
    RAMState *rs = &ram_state;
    RAMBlockState *b = NULL;
    RAMRequest *r;

    for (int i = 0; i < rs->nr_blocks; i++) {
        if (!strcmp(rs->blocks[i].rb->idstr, block)) {
            b = &rs->blocks[i];
        }
    }
    if (!b) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "ram_save_queue_pages no block '%s'", block);
        return false;
    }
    if (!len || (start | len) & (GW_PAGE_SIZE - 1) || start + len < start ||
        start + len > b->rb->used_length) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "ram_save_queue_pages request overrun, start=0x%" PRIx64
                    " len=0x%x blocklen=0x%" PRIx64,
                    start, len, b->rb->used_length);
        return false;
    }
    atomic_fetch_add(&ram_stats.postcopy_requests, 1);
    r = g_new(RAMRequest, 1);
    r->b = b;
    r->page = start >> GW_PAGE_SHIFT;
    r->npages = len >> GW_PAGE_SHIFT;
    g_mutex_lock(&rs->req_lock);
    g_queue_push_tail(&rs->requests, r);
    atomic_fetch_add(&rs->req_queued, 1);
    g_cond_broadcast(&rs->req_cond);
    g_mutex_unlock(&rs->req_lock);
    return true;
}

bool ram_postcopy_resume_bitmap(const char *block, const uint8_t *map,
                                uint64_t size, GError **errp)
{
    RAMState *rs = &ram_state;
    RAMBlockState *b = NULL;
    const unsigned long *recv = (const unsigned long *)map;

    for (int i = 0; i < rs->nr_blocks; i++) {
        if (!strcmp(rs->blocks[i].rb->idstr, block)) {
            b = &rs->blocks[i];
        }
    }
    if (!b || !b->postcopy_sent) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "ram_dirty_bitmap_reload: no post-copy block '%s'", block);
        return false;
    }
    if (size != ((b->pages + 63) / 64) * 8) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "ram_dirty_bitmap_reload: ramblock '%s' bitmap size "
                    "mismatch (0x%" PRIx64 " != 0x%" PRIx64 ")",
                    block, size, ((b->pages + 63) / 64) * 8);
        return false;
    }
    /*
     * What the destination lacks is sent again (pages in flight when the
     * connection broke are lost); what it has, never. Holes of our RAM
     * read as zero there without being sent.
     */
    /* pages lost with the connection and given back already: gone */
    if (rs->to_release) {
        g_array_set_size(rs->to_release, 0); /* never released: resent */
    }
    for (uint64_t p = 0; b->released && p < b->pages; p++) {
        if (!test_bit(p, recv) && test_bit(p, b->released)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "cannot resume: page 0x%" PRIx64 " of %s was freed "
                        "(release-ram) before the destination received it",
                        p << GW_PAGE_SHIFT, block);
            return false;
        }
    }
    rs->dirty_pages = 0;
    for (uint64_t p = 0; p < b->pages; p++) {
        if (test_bit(p, recv)) {
            clear_bit(p, b->bmap);
            set_bit(p, b->postcopy_sent);
        } else {
            set_bit(p, b->bmap);
            clear_bit(p, b->postcopy_sent);
            rs->dirty_pages++;
        }
    }
    ram_skip_holes(rs, b, 0, b->pages);
    g_mutex_lock(&rs->req_lock);
    g_queue_clear_full(&rs->requests, g_free);
    atomic_store(&rs->req_queued, 0);
    g_mutex_unlock(&rs->req_lock);
    rs->cur_block = 0;
    rs->cur_page = 0;
    rs->last_sent = NULL;
    ram_update_remaining(rs);
    return true;
}

void ram_postcopy_wait_request(int64_t until_us)
{
    RAMState *rs = &ram_state;

    g_mutex_lock(&rs->req_lock);
    while (!atomic_load(&rs->req_queued) &&
           g_cond_wait_until(&rs->req_cond, &rs->req_lock, until_us)) {
    }
    g_mutex_unlock(&rs->req_lock);
}

void ram_postcopy_kick(void)
{
    RAMState *rs = &ram_state;

    g_mutex_lock(&rs->req_lock);
    g_cond_broadcast(&rs->req_cond);
    g_mutex_unlock(&rs->req_lock);
}

static RAMRequest *ram_postcopy_next_request(RAMState *rs)
{
    RAMRequest *r = NULL;

    if (!atomic_load(&rs->req_queued)) {
        return NULL;
    }
    g_mutex_lock(&rs->req_lock);
    r = g_queue_pop_head(&rs->requests);
    if (r) {
        atomic_fetch_sub(&rs->req_queued, 1);
    }
    g_mutex_unlock(&rs->req_lock);
    return r;
}

/*
 * Sends the requested pages the destination does not have on the way
 * yet, then moves the background scan to just after them: the guest's
 * neighbourhood comes next (Yabusame's pre-caching). Returns pages sent.
 */
void ram_postcopy_set_preempt(QEMUFile *pf)
{
    ram_state.preempt = pf;
    ram_state.preempt_last_sent = NULL;
}

static uint64_t ram_postcopy_serve(RAMState *rs, QEMUFile *main_f)
{
    QEMUFile *f = rs->preempt ? rs->preempt : main_f;
    RAMBlock *main_last = rs->last_sent;
    uint64_t sent = 0;
    RAMRequest *r;

    if (rs->preempt) {
        rs->last_sent = rs->preempt_last_sent;
    }

    while ((r = ram_postcopy_next_request(rs))) {
        RAMBlockState *b = r->b;
        for (uint64_t p = r->page; p < r->page + r->npages; p++) {
            if (test_bit(p, b->postcopy_sent)) {
                continue; /* on its way already */
            }
            set_bit(p, b->postcopy_sent);
            ram_postcopy_mark_release(rs, b, p);
            if (test_bit(p, b->bmap)) {
                clear_bit(p, b->bmap);
                rs->dirty_pages--;
            }
            ram_save_page(rs, f, b, p);
            sent++;
        }
        rs->cur_block = (int)(b - rs->blocks);
        rs->cur_page = r->page + r->npages;
        g_free(r);
    }
    if (rs->preempt) {
        rs->preempt_last_sent = rs->last_sent;
        rs->last_sent = main_last;
        if (sent) {
            qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
            ram_account(8);
        }
    }
    if (sent) {
        qemu_fflush(f); /* a vCPU waits for these */
    }
    return sent;
}

/* One PART in post-copy: requests first, the background scan between. */
int ram_save_iterate_postcopy(RAMState *rs, QEMUFile *f)
{
    int64_t t0 = g_get_monotonic_time();
    int done = 0;

    ram_postcopy_release(rs);
    for (uint64_t i = 1;; i++) {
        ram_postcopy_serve(rs, f);
        if (rs->preempt && qemu_file_get_error(rs->preempt)) {
            qemu_file_set_error(f, -EIO, "postcopy-preempt channel: %s",
                                qemu_file_error_message(rs->preempt));
            return -EIO;
        }
        if (migration_rate_exceeded(f)) {
            break;
        }
        int r = ram_save_one(rs, f);
        if (r < 0) {
            return r;
        }
        if (r == 0) {
            done = 1;
            break;
        }
        if ((i & 63) == 0 &&
            (qemu_file_get_error(f) ||
             g_get_monotonic_time() - t0 > RAM_ITERATE_MAX_US)) {
            break;
        }
    }
    qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
    ram_account(8);
    ram_update_remaining(rs);
    return qemu_file_get_error(f) ? qemu_file_get_error(f) : done;
}
