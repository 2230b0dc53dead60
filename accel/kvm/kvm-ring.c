/*
 * KVM's dirty ring (-accel kvm,dirty-ring-size=N): enabling it on the VM,
 * mapping each vCPU's ring, harvesting every ring into the slots' logs and
 * the per-vCPU counters, the vCPU's KVM_EXIT_DIRTY_RING_FULL, and the
 * per-vCPU dirty accounting hooks (vcpu_dirty_*).
 *
 * With the ring KVM pushes one entry per page the first time a vCPU writes
 * it after it was (re-)protected, on the writing vCPU's ring, for slots
 * with KVM_MEM_LOG_DIRTY_PAGES; KVM_GET_DIRTY_LOG and KVM_CLEAR_DIRTY_LOG
 * are refused. A harvest takes every published entry of every ring and
 * then calls KVM_RESET_DIRTY_RINGS, which write-protects those pages
 * again. A write between taking an entry and the reset is not reported
 * again, but it landed before the harvest returned, so the page the
 * caller sends afterwards carries it; any later write traps and pushes a
 * new entry. The dirty log is therefore "non-manual" with the ring: sync
 * re-arms tracking, clear is a no-op (migration's dirty_log_manual false).
 *
 * A harvest does not kick the vCPUs: entries a running vCPU still holds
 * (Intel's PML buffer) reach its ring at its next exit, and the migration's
 * last sync runs with every vCPU stopped, so nothing is missed at the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm-int.h"

bool kvm_ring_enable(Machine *m, KVMState *s, GError **errp)
{
    uint32_t n = m->dirty_ring_size;
    int cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
    int max_bytes;

    if (!n) {
        return true;
    }
    /* As QEMU: the ordered flavour first, the plain one else. */
    max_bytes = kvm_check_extension(s, cap);
    if (max_bytes <= 0) {
        cap = KVM_CAP_DIRTY_LOG_RING;
        max_bytes = kvm_check_extension(s, cap);
    }
    if (max_bytes <= 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_KVM_MISSING_CAP,
                    "dirty-ring-size=%u: KVM dirty ring not available "
                    "(no KVM_CAP_DIRTY_LOG_RING_ACQ_REL or "
                    "KVM_CAP_DIRTY_LOG_RING)",
                    n);
        return false;
    }
    uint64_t max = (uint64_t)max_bytes / sizeof(struct kvm_dirty_gfn);
    if (n > max) {
        g_set_error(errp, GW_ERROR, GW_ERROR_KVM_MISSING_CAP,
                    "KVM dirty ring size %u too big (maximum is %" PRIu64
                    "). Please use a smaller value.",
                    n, max);
        return false;
    }
    struct kvm_enable_cap ec = {
        .cap = cap,
        .args = {(uint64_t)n * sizeof(struct kvm_dirty_gfn)},
    };
    if (ioctl(s->vm_fd, KVM_ENABLE_CAP, &ec) < 0) {
        /* The kernel wants at least a page and its reserved entries. */
        return gw_error_errno(errp, errno,
                              "dirty-ring-size=%u: KVM refused a ring of "
                              "%u bytes (it needs at least one page, 256 "
                              "entries)",
                              n, n * (uint32_t)sizeof(struct kvm_dirty_gfn));
    }
    s->ring_size = n;
    s->ring_acq_rel = cap == KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
    return true;
}

static size_t ring_bytes(const KVMState *s)
{
    return (size_t)s->ring_size * sizeof(struct kvm_dirty_gfn);
}

bool kvm_ring_vcpu_map(KVMState *s, CPUState *cpu, GError **errp)
{
    KVMCPU *kc = cpu->accel;

    if (!s->ring_size) {
        return true;
    }
    void *p =
        mmap(NULL, ring_bytes(s), PROT_READ | PROT_WRITE, MAP_SHARED, kc->fd,
             (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * sysconf(_SC_PAGESIZE));
    if (p == MAP_FAILED) {
        return gw_error_errno(errp, errno, "mmap of vCPU %d dirty ring",
                              cpu->index);
    }
    kc->ring = (KVMDirtyRing){.gfns = p, .size = s->ring_size};
    return true;
}

void kvm_ring_vcpu_unmap(KVMState *s, CPUState *cpu)
{
    KVMCPU *kc = cpu->accel;

    if (kc->ring.gfns) {
        munmap(kc->ring.gfns, ring_bytes(s));
        kc->ring.gfns = NULL;
    }
}

typedef struct HarvestCtx {
    KVMState *s;
    uint64_t slot_pages[KVM_MAX_SLOTS];
    uint64_t *count; /* this vCPU's counter, or NULL when not counting */
} HarvestCtx;

static void harvest_one(uint32_t slot, uint64_t offset, void *opaque)
{
    HarvestCtx *h = opaque;
    uint32_t id;
    uint64_t page;
    static gint warned;

    if (!kvm_dirty_gfn_page(slot, offset, h->slot_pages, h->s->nr_slots, &id,
                            &page)) {
        if (g_atomic_int_compare_and_exchange(&warned, 0, 1)) {
            g_warning("KVM dirty ring: entry for slot 0x%x offset %" PRIu64
                      " outside guest RAM ignored",
                      slot, offset);
        }
        return;
    }
    uint64_t *dirty = h->s->slots[id].dirty;
    if (dirty) {
        dirty[page / 64] |= 1ull << (page % 64);
    }
    if (h->count) {
        (*h->count)++;
    }
}

/*
 * Harvests every vCPU's ring into the slots' logs and the counters, then
 * re-protects the harvested pages. Caller holds dirty_lock.
 */
bool kvm_ring_harvest_locked(Machine *m, GError **errp)
{
    KVMState *s = kvm_state(m);
    HarvestCtx h = {.s = s};
    uint64_t total = 0;

    if (!s->ring_size) {
        return true;
    }
    for (int i = 0; i < s->nr_slots; i++) {
        h.slot_pages[i] = s->slots[i].size >> GW_PAGE_SHIFT;
    }
    for (int i = 0; i < m->smp; i++) {
        KVMCPU *kc = m->cpus[i]->accel;
        h.count = s->counting ? &s->vcpu_dirty[i] : NULL;
        total += kvm_dirty_ring_collect(&kc->ring, harvest_one, &h);
    }
    if (total && ioctl(s->vm_fd, KVM_RESET_DIRTY_RINGS) < 0) {
        return gw_error_errno(errp, errno, "KVM_RESET_DIRTY_RINGS");
    }
    return true;
}

/*
 * vCPU thread, KVM_EXIT_DIRTY_RING_FULL: KVM stops the vCPU while its ring
 * is (softly) full; harvesting frees it, then the vCPU re-enters.
 */
void kvm_ring_full(CPUState *cpu)
{
    Machine *m = cpu->machine;
    KVMState *s = kvm_state(m);
    g_autoptr(GError) err = NULL;

    uint64_t n = __atomic_add_fetch(&s->ring_full_exits, 1, __ATOMIC_RELAXED);
    if (!(n & (n - 1))) {
        g_debug("vCPU %d: KVM dirty ring full (%" PRIu64 " such exits)",
                cpu->index, n);
    }
    g_mutex_lock(&s->dirty_lock);
    if (!kvm_ring_harvest_locked(m, &err)) {
        g_warning("vCPU %d: harvesting the dirty ring: %s", cpu->index,
                  err->message);
    }
    g_mutex_unlock(&s->dirty_lock);
}

/* ---- per-vCPU dirty accounting (AccelOps.vcpu_dirty_*) ------------------ */

bool kvm_vcpu_dirty_start(Machine *m, GError **errp)
{
    KVMState *s = kvm_state(m);
    bool ok = true;

    if (!s->ring_size) {
        g_set_error(errp, GW_ERROR, GW_ERROR_KVM_MISSING_CAP,
                    "per-vCPU dirty rates need KVM's dirty ring: "
                    "-accel kvm,dirty-ring-size=N");
        return false;
    }
    g_mutex_lock(&s->dirty_lock);
    if (s->counting++ == 0) {
        s->vcpu_dirty = g_new0(uint64_t, m->smp);
        for (int i = 0; i < s->nr_slots && ok; i++) {
            ok = kvm_slot_update_log_locked(m, &s->slots[i], errp);
        }
        if (!ok) {
            s->counting = 0;
            for (int i = 0; i < s->nr_slots; i++) {
                kvm_slot_update_log_locked(m, &s->slots[i], NULL);
            }
            g_clear_pointer(&s->vcpu_dirty, g_free);
        }
    }
    g_mutex_unlock(&s->dirty_lock);
    return ok;
}

void kvm_vcpu_dirty_pages(Machine *m, uint64_t *pages)
{
    KVMState *s = kvm_state(m);
    g_autoptr(GError) err = NULL;

    g_mutex_lock(&s->dirty_lock);
    g_assert(s->counting > 0);
    if (!kvm_ring_harvest_locked(m, &err)) {
        g_warning("harvesting the dirty rings: %s", err->message);
    }
    memcpy(pages, s->vcpu_dirty, m->smp * sizeof(*pages));
    g_mutex_unlock(&s->dirty_lock);
}

void kvm_vcpu_dirty_stop(Machine *m)
{
    KVMState *s = kvm_state(m);

    g_mutex_lock(&s->dirty_lock);
    g_assert(s->counting > 0);
    if (--s->counting == 0) {
        for (int i = 0; i < s->nr_slots; i++) {
            g_autoptr(GError) err = NULL;
            if (!kvm_slot_update_log_locked(m, &s->slots[i], &err)) {
                g_warning("stopping dirty logging: %s", err->message);
            }
        }
        g_clear_pointer(&s->vcpu_dirty, g_free);
    }
    g_mutex_unlock(&s->dirty_lock);
}
