/*
 * KVM's dirty ring, the pure part (see kvm-ring-core.h).
 */
#include "kvm-ring-core.h"

uint32_t kvm_dirty_ring_collect(KVMDirtyRing *r, KVMDirtyGfnFn fn, void *opaque)
{
    uint32_t n = 0;

    while (n < r->size) {
        struct kvm_dirty_gfn *e = &r->gfns[r->fetch & (r->size - 1)];
        /* Acquire: the slot and offset KVM wrote before the flag. */
        uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
        if (!(flags & KVM_DIRTY_GFN_F_DIRTY)) {
            break;
        }
        fn(e->slot, e->offset, opaque);
        /* Release: done reading the entry before KVM may reuse it. */
        __atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
        r->fetch++;
        n++;
    }
    return n;
}

bool kvm_dirty_gfn_page(uint32_t slot, uint64_t offset,
                        const uint64_t *slot_pages, uint32_t nr_slots,
                        uint32_t *slot_id, uint64_t *page)
{
    uint32_t as_id = slot >> 16, id = slot & 0xffff;

    if (as_id != 0 || id >= nr_slots || offset >= slot_pages[id]) {
        return false;
    }
    *slot_id = id;
    *page = offset;
    return true;
}
