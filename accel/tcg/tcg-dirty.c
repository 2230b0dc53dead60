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

bool tcg_dirty_log_start(Machine *m, RAMBlock *rb, GError **errp)
{
    TCGState *s = tcg_state(m);
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
    if (!s->wp && !s->wp_blind) {
        s->wp = uffd_wp_new(rb->host, rb->used_length, errp);
        ok = s->wp && uffd_wp_arm(s->wp, 0, rb->used_length, errp);
        if (ok) {
            /* every page is dirty once first: the first sync says so */
            s->wp_taken = bitmap_new(ram_block_pages(rb));
            s->wp_first = true;
        } else {
            g_clear_pointer(&s->wp, uffd_wp_free);
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
    } else if (s->wp) {
        if (s->wp_first) {
            bitmap_set_range(fresh, 0, n);
            s->wp_first = false;
        }
        ok = uffd_wp_collect(s->wp, fresh, false, errp);
        if (ok) {
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
    if (s->wp) {
        /* re-arm each run of pages that a sync handed out */
        uint64_t p = bitmap_find_next(s->wp_taken, end, first);
        while (ok && p < end) {
            uint64_t e = bitmap_find_next_zero(s->wp_taken, end, p);
            ok = uffd_wp_arm(s->wp, p << GW_PAGE_SHIFT,
                             (e - p) << GW_PAGE_SHIFT, errp);
            bitmap_clear_range(s->wp_taken, p, e - p);
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
    g_clear_pointer(&s->wp, uffd_wp_free);
    g_clear_pointer(&s->wp_taken, bitmap_free);
    s->wp_blind = false;
    g_mutex_unlock(&s->dirty_lock);
}
