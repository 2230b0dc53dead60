/*
 * Dirty-page logging for the tcg accelerator: no per-store hooks in the
 * emulator; the kernel tracks the writes. The RAM block is registered
 * with userfaultfd in asynchronous write-protect mode (uffd-wp.c): a
 * write to a protected page is let through by the kernel and marks the
 * page written; PAGEMAP_SCAN reports the written pages.
 *
 * Like KVM's manual dirty-log protection: sync only reports, and a page
 * is protected again when clear re-arms it, which migration does just
 * before sending it. Only pages a sync handed out (`taken`) are re-armed,
 * so a write between a sync and a clear is never lost. Engines write
 * guest RAM directly (their softmmu maps the host pages), so every store
 * of every vCPU is seen, and so are the VMM's own writes (which also go
 * to host_dirty, harmlessly).
 *
 * A kernel without asynchronous write-protection (before Linux 6.7)
 * cannot track a running guest: starting the log is then refused with an
 * error naming the feature, so a migration fails cleanly at setup. A
 * stopped VM needs no tracking (a save to a file, say): the log starts
 * "blind", and should the VM run during the migration after all, every
 * page counts as dirty at the next sync, so nothing is ever missed.
 * GODWIT_X_TCG_NO_WP=1 makes godwit behave as on such a kernel (tests).
 *
 * Per-vCPU accounting (vcpu_dirty_*, for dirty-limit) shares the tracker:
 * the kernel does not say which thread wrote a page, but only one engine
 * runs at a time (tcg-sched.c), so whatever was written between two
 * passes of the run lock from one vCPU to another is the first one's.
 * At each such pass (never with one vCPU) a scan attributes the written
 * pages not yet attributed (`counted`) to the vCPU that held the lock;
 * vcpu_dirty_pages() scans once more and re-arms every written page, so a
 * page counts once per harvest, and again when written after it. Pages it
 * re-arms that the log has not reported go to `wp_pending`, which the next
 * sync reports: the log never loses a page to the count. (A page the log
 * handed out and has not re-armed yet is skipped: migration re-arms it
 * itself just before sending it.) The VMM's own writes into guest RAM
 * count for the last holder.
 */
#include <inttypes.h>
#include <string.h>

#include "tcg-int.h"
#include "uffd-wp.h"

static bool tcg_dirty_tracking_available(GError **errp)
{
    if (g_strcmp0(g_getenv("GODWIT_X_TCG_NO_WP"), "1") == 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "dirty tracking needs userfaultfd asynchronous "
                    "write-protection (UFFD_FEATURE_WP_ASYNC, Linux 6.7 or "
                    "later); this kernel does not offer it "
                    "(GODWIT_X_TCG_NO_WP=1)");
        return false;
    }
    return uffd_wp_probe(errp);
}

bool tcg_dirty_log_manual(Machine *m)
{
    return true;
}

/* dirty_lock held: the log's or the count's tracker, created once. */
static bool tcg_wp_get_locked(TCGState *s, RAMBlock *rb, GError **errp)
{
    if (s->wp) {
        return true;
    }
    s->wp = uffd_wp_new(rb->host, rb->used_length, errp);
    if (!s->wp || !uffd_wp_arm(s->wp, 0, rb->used_length, errp)) {
        g_clear_pointer(&s->wp, uffd_wp_free);
        return false;
    }
    return true;
}

/* dirty_lock held: the count's tracker is no longer needed by anyone. */
static void tcg_wp_put_locked(TCGState *s)
{
    if (!s->wp_log && !atomic_load(&s->count_on)) {
        g_clear_pointer(&s->wp, uffd_wp_free);
    }
}

/*
 * dirty_lock held, counting on. Attributes the pages of [first, end)
 * written since the last scan and not attributed yet to count_owner.
 * With rearm, also write-protects every written page in the same walk:
 * they count again once written again, and the log gets the ones it has
 * not handed out yet. On a failed re-arming scan some pages may have been
 * re-armed unreported: the log then reports every page at its next sync.
 */
static bool tcg_count_scan_locked(TCGState *s, uint64_t first, uint64_t end,
                                  bool rearm, GError **errp)
{
    unsigned long *scan = s->count_scan;
    bool ok = uffd_wp_collect_range(s->wp, first << GW_PAGE_SHIFT,
                                    (end - first) << GW_PAGE_SHIFT, scan, rearm,
                                    errp);
    uint64_t fresh = 0;

    if (!ok && rearm && s->wp_log) {
        s->wp_first = true;
    }
    /*
     * Word by word: this runs at every pass of the run lock between
     * vCPUs, over every page written since the last re-arming.
     */
    for (uint64_t w = first / BITS_PER_LONG; w * BITS_PER_LONG < end; w++) {
        unsigned long mask = ~0UL;
        uint64_t lo = w * BITS_PER_LONG;

        if (lo < first) {
            mask &= ~0UL << (first - lo);
        }
        if (end - lo < BITS_PER_LONG) {
            mask &= ~0UL >> (BITS_PER_LONG - (end - lo));
        }
        unsigned long written = scan[w] & mask;
        if (!written) {
            continue;
        }
        fresh += __builtin_popcountl(written & ~s->counted[w]);
        if (rearm) {
            s->counted[w] &= ~written;
            if (s->wp_log) {
                s->wp_pending[w] |= written & ~s->wp_taken[w];
            }
        } else {
            s->counted[w] |= written;
        }
        scan[w] &= ~mask;
    }
    if (s->count_owner >= 0) {
        s->count[s->count_owner] += fresh;
    }
    return ok;
}

static uint64_t tcg_ram_pages(Machine *m)
{
    return ram_block_pages(m->ram);
}

bool tcg_dirty_log_start(Machine *m, RAMBlock *rb, GError **errp)
{
    TCGState *s = tcg_state(m);
    uint64_t n = ram_block_pages(rb);
    bool ok = true;

    g_assert(rb == m->ram);
    g_mutex_lock(&s->dirty_lock);
    if (!s->wp && !s->wp_blind && !tcg_dirty_tracking_available(errp)) {
        if (!all_vcpus_paused(m)) {
            g_prefix_error(errp, "cannot log dirty pages of a running guest: ");
            g_mutex_unlock(&s->dirty_lock);
            return false;
        }
        g_clear_error(errp);
        s->wp_blind = true;
        s->wp_first = true;
        s->wp_runs = atomic_load(&s->runs);
    }
    if (!s->wp_log && !s->wp_blind) {
        if (s->wp) {
            /* counting: attribute what it has not seen, then arm it all */
            ok = tcg_count_scan_locked(s, 0, n, false, errp) &&
                 uffd_wp_arm(s->wp, 0, rb->used_length, errp);
            if (ok) {
                bitmap_clear_range(s->counted, 0, n);
            }
        } else {
            ok = tcg_wp_get_locked(s, rb, errp);
        }
        if (ok) {
            /* every page is dirty once first: the first sync says so */
            s->wp_taken = bitmap_new(n);
            s->wp_pending = bitmap_new(n);
            s->wp_first = true;
            s->wp_log = true;
        } else {
            tcg_wp_put_locked(s);
            g_prefix_error(errp, "tcg dirty logging: ");
        }
    }
    g_mutex_unlock(&s->dirty_lock);
    return ok;
}

bool tcg_dirty_log_sync(Machine *m, RAMBlock *rb, unsigned long *bitmap,
                        GError **errp)
{
    TCGState *s = tcg_state(m);
    uint64_t n = ram_block_pages(rb);
    g_autofree unsigned long *fresh = bitmap_new(n);
    bool ok = true;

    g_mutex_lock(&s->dirty_lock);
    if (s->wp_blind) {
        uint64_t runs = atomic_load(&s->runs);
        /* a vCPU that runs now, or ran since, may have written anything */
        if (s->wp_first || runs != s->wp_runs || !all_vcpus_paused(m)) {
            bitmap_set_range(bitmap, 0, n);
        }
        s->wp_first = false;
        s->wp_runs = runs;
    } else if (s->wp_log) {
        if (s->wp_first) {
            bitmap_set_range(fresh, 0, n);
            s->wp_first = false;
        }
        ok = uffd_wp_collect(s->wp, fresh, false, errp);
        if (ok) {
            /* and what the count re-armed before the log saw it */
            bitmap_or(fresh, s->wp_pending, n);
            bitmap_clear_range(s->wp_pending, 0, n);
            bitmap_or(s->wp_taken, fresh, n);
            bitmap_or(bitmap, fresh, n);
        }
    }
    g_mutex_unlock(&s->dirty_lock);
    return ok;
}

bool tcg_dirty_log_clear(Machine *m, RAMBlock *rb, uint64_t first, uint64_t n,
                         GError **errp)
{
    TCGState *s = tcg_state(m);
    uint64_t end = MIN(first + n, ram_block_pages(rb));
    bool ok = true;

    g_mutex_lock(&s->dirty_lock);
    if (s->wp_log && first < end) {
        if (atomic_load(&s->count_on)) {
            /* re-arming forgets a write: attribute it first */
            ok = tcg_count_scan_locked(s, first, end, false, errp);
        }
        /* re-arm each run of pages that a sync handed out */
        uint64_t p = bitmap_find_next(s->wp_taken, end, first);
        while (ok && p < end) {
            uint64_t e = bitmap_find_next_zero(s->wp_taken, end, p);
            ok = uffd_wp_arm(s->wp, p << GW_PAGE_SHIFT,
                             (e - p) << GW_PAGE_SHIFT, errp);
            bitmap_clear_range(s->wp_taken, p, e - p);
            if (s->counted) {
                bitmap_clear_range(s->counted, p, e - p);
            }
            p = bitmap_find_next(s->wp_taken, end, e);
        }
    }
    g_mutex_unlock(&s->dirty_lock);
    return ok;
}

void tcg_dirty_log_stop(Machine *m, RAMBlock *rb)
{
    TCGState *s = tcg_state(m);

    g_mutex_lock(&s->dirty_lock);
    s->wp_log = false;
    s->wp_blind = false;
    g_clear_pointer(&s->wp_taken, bitmap_free);
    g_clear_pointer(&s->wp_pending, bitmap_free);
    tcg_wp_put_locked(s);
    g_mutex_unlock(&s->dirty_lock);
}

/* ---- per-vCPU accounting ------------------------------------------------- */

bool tcg_vcpu_dirty_start(Machine *m, GError **errp)
{
    TCGState *s = tcg_state(m);
    uint64_t n = tcg_ram_pages(m);
    bool ok = true;

    g_mutex_lock(&s->dirty_lock);
    if (s->count_users > 0) {
        /* nested (dirty-limit and calc-dirty-rate): one count for all */
        s->count_users++;
        g_mutex_unlock(&s->dirty_lock);
        return true;
    }
    if (!s->wp && !tcg_dirty_tracking_available(errp)) {
        g_prefix_error(errp, "tcg cannot count dirty pages per vCPU: ");
        g_mutex_unlock(&s->dirty_lock);
        return false;
    }
    s->count = g_new0(uint64_t, m->smp);
    s->counted = bitmap_new(n);
    s->count_scan = bitmap_new(n);
    s->count_owner = tcg_sched_last_holder();
    if (s->wp) {
        /* the log's tracker: what is written now was written before */
        ok = uffd_wp_collect(s->wp, s->counted, false, errp);
    } else {
        ok = tcg_wp_get_locked(s, m->ram, errp);
    }
    if (ok) {
        s->count_users = 1;
        atomic_store(&s->count_on, true);
    } else {
        g_clear_pointer(&s->count, g_free);
        g_clear_pointer(&s->counted, bitmap_free);
        g_clear_pointer(&s->count_scan, bitmap_free);
        g_prefix_error(errp, "tcg per-vCPU dirty accounting: ");
    }
    g_mutex_unlock(&s->dirty_lock);
    return ok;
}

void tcg_vcpu_dirty_pages(Machine *m, uint64_t *pages)
{
    TCGState *s = tcg_state(m);
    g_autoptr(GError) err = NULL;

    g_mutex_lock(&s->dirty_lock);
    if (atomic_load(&s->count_on)) {
        if (!tcg_count_scan_locked(s, 0, tcg_ram_pages(m), true, &err)) {
            g_warning("tcg per-vCPU dirty accounting: %s", err->message);
        }
        memcpy(pages, s->count, m->smp * sizeof(*pages));
    } else {
        memset(pages, 0, m->smp * sizeof(*pages));
    }
    g_mutex_unlock(&s->dirty_lock);
}

void tcg_vcpu_dirty_stop(Machine *m)
{
    TCGState *s = tcg_state(m);

    g_mutex_lock(&s->dirty_lock);
    if (s->count_users > 1) {
        s->count_users--;
        g_mutex_unlock(&s->dirty_lock);
        return;
    }
    s->count_users = 0;
    atomic_store(&s->count_on, false);
    g_clear_pointer(&s->count, g_free);
    g_clear_pointer(&s->counted, bitmap_free);
    g_clear_pointer(&s->count_scan, bitmap_free);
    tcg_wp_put_locked(s);
    g_mutex_unlock(&s->dirty_lock);
}

void tcg_vcpu_dirty_switch(CPUState *cpu)
{
    TCGState *s = tcg_state(cpu->machine);
    g_autoptr(GError) err = NULL;

    if (!atomic_load(&s->count_on)) {
        return;
    }
    g_mutex_lock(&s->dirty_lock);
    if (atomic_load(&s->count_on) && s->count_owner != cpu->index) {
        if (s->count_owner >= 0 &&
            !tcg_count_scan_locked(s, 0, tcg_ram_pages(cpu->machine), false,
                                   &err)) {
            g_warning("tcg per-vCPU dirty accounting: %s", err->message);
        }
        s->count_owner = cpu->index;
    }
    g_mutex_unlock(&s->dirty_lock);
}
