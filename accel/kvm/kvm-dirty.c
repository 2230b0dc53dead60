/*
 * KVM memory slots and dirty-page logging per RAM block.
 *
 * With KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (manual protect + initially set),
 * KVM_GET_DIRTY_LOG only reports; a page is write-protected again when we
 * KVM_CLEAR_DIRTY_LOG it, which migration does just before sending it.
 * We only ever clear bits that a sync has handed to the caller (to_clear),
 * so a write that lands between a sync and a clear is never lost.
 *
 * With KVM's dirty ring (kvm-ring.c) the log is filled by harvesting the
 * rings instead, without manual protection: a sync harvests, which
 * re-protects what it took, and clear is a no-op.
 *
 * A slot is logged by KVM while migration's log or per-vCPU counting (the
 * ring only) wants it; either may start or stop first.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm-int.h"

#define BITS_PER_WORD 64

static uint64_t slot_pages(const KVMSlot *slot)
{
    return slot->size >> GW_PAGE_SHIFT;
}

static uint64_t slot_words(const KVMSlot *slot)
{
    return (slot_pages(slot) + BITS_PER_WORD - 1) / BITS_PER_WORD;
}

bool kvm_set_slot(KVMState *s, KVMSlot *slot, uint32_t flags, GError **errp)
{
    struct kvm_userspace_memory_region r = {
        .slot = slot->id,
        .flags = flags,
        .guest_phys_addr = slot->gpa,
        .memory_size = slot->size,
        .userspace_addr = (uintptr_t)slot->host,
    };

    if (ioctl(s->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
        return gw_error_errno(errp, errno,
                              "cannot map guest RAM at 0x%" G_GINT64_MODIFIER
                              "x (%" G_GUINT64_FORMAT " MiB) into KVM",
                              slot->gpa, slot->size >> 20);
    }
    slot->flags = flags;
    return true;
}

bool kvm_dirty_log_manual(Machine *m)
{
    return kvm_state(m)->manual_protect;
}

bool kvm_slot_update_log_locked(Machine *m, KVMSlot *slot, GError **errp)
{
    KVMState *s = kvm_state(m);
    bool want = slot->dirty || s->counting > 0;
    bool has = slot->flags & KVM_MEM_LOG_DIRTY_PAGES;

    if (want == has) {
        return true;
    }
    /* Leave no entry of a slot that stops being logged in the rings. */
    if (!want && !kvm_ring_harvest_locked(m, errp)) {
        return false;
    }
    return kvm_set_slot(s, slot, want ? KVM_MEM_LOG_DIRTY_PAGES : 0, errp);
}

bool kvm_dirty_log_start(Machine *m, RAMBlock *rb, GError **errp)
{
    KVMState *s = kvm_state(m);
    bool ok = true;

    g_mutex_lock(&s->dirty_lock);
    for (int i = 0; i < s->nr_slots && ok; i++) {
        KVMSlot *slot = &s->slots[i];
        if (slot->block != rb || slot->dirty) {
            continue;
        }
        g_assert(slot->block_page % BITS_PER_WORD == 0);
        slot->dirty = g_new0(uint64_t, slot_words(slot));
        if (s->manual_protect) {
            slot->to_clear = g_new0(uint64_t, slot_words(slot));
        } else {
            /*
             * Without "initially set" (or with the ring), KVM reports only
             * writes from now on; the contract says every page is dirty
             * once first.
             */
            memset(slot->dirty, 0xff, slot_words(slot) * 8);
        }
        ok = kvm_slot_update_log_locked(m, slot, errp);
        if (!ok) {
            g_clear_pointer(&slot->dirty, g_free);
            g_clear_pointer(&slot->to_clear, g_free);
        }
    }
    g_mutex_unlock(&s->dirty_lock);
    return ok;
}

/* Copies the slot's fresh bits into the block bitmap (word aligned). */
static void slot_merge(const KVMSlot *slot, unsigned long *bitmap,
                       const uint64_t *bits)
{
    uint64_t words = slot_words(slot);
    uint64_t *dst = (uint64_t *)bitmap + slot->block_page / BITS_PER_WORD;
    uint64_t tail = slot_pages(slot) % BITS_PER_WORD;

    G_STATIC_ASSERT(sizeof(unsigned long) == sizeof(uint64_t));
    for (uint64_t w = 0; w < words; w++) {
        uint64_t v = bits[w];
        if (tail && w == words - 1) {
            v &= (1ull << tail) - 1;
        }
        dst[w] |= v;
    }
}

/* The ring's sync: harvest, then hand over what the slots collected. */
static bool ring_sync_locked(Machine *m, RAMBlock *rb, unsigned long *bitmap,
                             GError **errp)
{
    KVMState *s = kvm_state(m);

    if (!kvm_ring_harvest_locked(m, errp)) {
        return false;
    }
    for (int i = 0; i < s->nr_slots; i++) {
        KVMSlot *slot = &s->slots[i];
        if (slot->block != rb || !slot->dirty) {
            continue;
        }
        slot_merge(slot, bitmap, slot->dirty);
        memset(slot->dirty, 0, slot_words(slot) * 8);
    }
    return true;
}

bool kvm_dirty_log_sync(Machine *m, RAMBlock *rb, unsigned long *bitmap,
                        GError **errp)
{
    KVMState *s = kvm_state(m);
    g_autofree uint64_t *fresh = NULL;
    bool ok = true;

    g_mutex_lock(&s->dirty_lock);
    if (s->ring_size) {
        ok = ring_sync_locked(m, rb, bitmap, errp);
        g_mutex_unlock(&s->dirty_lock);
        return ok;
    }
    for (int i = 0; i < s->nr_slots && ok; i++) {
        KVMSlot *slot = &s->slots[i];
        uint64_t words = slot_words(slot);
        if (slot->block != rb || !slot->dirty) {
            continue;
        }
        fresh = g_renew(uint64_t, fresh, words);
        struct kvm_dirty_log log = {.slot = slot->id, .dirty_bitmap = fresh};
        if (ioctl(s->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
            ok = gw_error_errno(errp, errno, "KVM_GET_DIRTY_LOG");
            break;
        }
        for (uint64_t w = 0; w < words; w++) {
            /* Pages reported since start without manual protect. */
            fresh[w] |= slot->dirty[w];
            slot->dirty[w] = 0;
            if (s->manual_protect) {
                slot->to_clear[w] |= fresh[w];
            }
        }
        slot_merge(slot, bitmap, fresh);
    }
    g_mutex_unlock(&s->dirty_lock);
    return ok;
}

/* Re-arms tracking for slot pages [first, end) that a sync handed out. */
static bool slot_clear(KVMState *s, KVMSlot *slot, uint64_t first,
                       uint64_t end, GError **errp)
{
    uint64_t npages = slot_pages(slot);
    uint64_t lo = first & ~(uint64_t)(BITS_PER_WORD - 1);
    uint64_t hi = MIN((end + BITS_PER_WORD - 1) &
                          ~(uint64_t)(BITS_PER_WORD - 1),
                      npages);
    uint64_t *mask = slot->to_clear + lo / BITS_PER_WORD;
    uint64_t nwords = (hi - lo + BITS_PER_WORD - 1) / BITS_PER_WORD;
    bool any = false;

    for (uint64_t w = 0; w < nwords; w++) {
        any |= mask[w] != 0;
    }
    if (!any) {
        return true;
    }
    struct kvm_clear_dirty_log c = {
        .slot = slot->id,
        .first_page = lo,
        .num_pages = (uint32_t)(hi - lo),
        .dirty_bitmap = mask,
    };
    if (ioctl(s->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0) {
        return gw_error_errno(errp, errno, "KVM_CLEAR_DIRTY_LOG");
    }
    memset(mask, 0, nwords * 8);
    return true;
}

bool kvm_dirty_log_clear(Machine *m, RAMBlock *rb, uint64_t first,
                         uint64_t n, GError **errp)
{
    KVMState *s = kvm_state(m);
    bool ok = true;

    if (!s->manual_protect) {
        return true;
    }
    g_mutex_lock(&s->dirty_lock);
    for (int i = 0; i < s->nr_slots && ok; i++) {
        KVMSlot *slot = &s->slots[i];
        uint64_t lo = slot->block_page, hi = lo + slot_pages(slot);
        if (slot->block != rb || !slot->to_clear || first >= hi ||
            first + n <= lo) {
            continue;
        }
        /* KVM takes at most 2^32 pages per call. */
        uint64_t from = MAX(first, lo) - lo, to = MIN(first + n, hi) - lo;
        for (uint64_t p = from; p < to && ok; p += 1ull << 30) {
            ok = slot_clear(s, slot, p, MIN(to, p + (1ull << 30)), errp);
        }
    }
    g_mutex_unlock(&s->dirty_lock);
    return ok;
}

void kvm_dirty_log_stop(Machine *m, RAMBlock *rb)
{
    KVMState *s = kvm_state(m);

    g_mutex_lock(&s->dirty_lock);
    for (int i = 0; i < s->nr_slots; i++) {
        KVMSlot *slot = &s->slots[i];
        g_autoptr(GError) err = NULL;
        if (slot->block != rb || !slot->dirty) {
            continue;
        }
        g_clear_pointer(&slot->dirty, g_free);
        g_clear_pointer(&slot->to_clear, g_free);
        if (!kvm_slot_update_log_locked(m, slot, &err)) {
            g_warning("stopping dirty logging: %s", err->message);
        }
    }
    g_mutex_unlock(&s->dirty_lock);
}
