/*
 * KVM's dirty ring, the pure part: walking one vCPU's ring of
 * struct kvm_dirty_gfn (collect what KVM published, mark it for reset,
 * advance the fetch index) and turning an entry's (slot, offset) into a
 * page of one of our memory slots. No ioctl, no global state: tested alone
 * over plain memory in tests/unit/test-kvm-ring.c.
 *
 * Protocol (Documentation/virt/kvm/api.rst, KVM_CAP_DIRTY_LOG_RING): KVM
 * writes an entry and then sets KVM_DIRTY_GFN_F_DIRTY in its flags (a
 * release store with _ACQ_REL); userspace reads the flags with acquire
 * ordering, takes the entry, sets the flags to KVM_DIRTY_GFN_F_RESET and
 * moves its own fetch index on; KVM_RESET_DIRTY_RINGS then re-protects the
 * reset entries' pages and frees their ring slots.
 */
#ifndef ACCEL_KVM_RING_CORE_H
#define ACCEL_KVM_RING_CORE_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

/* Debian 12's headers have these; older ones may not (kernel uapi values). */
#ifndef KVM_CAP_DIRTY_LOG_RING
#define KVM_CAP_DIRTY_LOG_RING 192
#endif
#ifndef KVM_CAP_DIRTY_LOG_RING_ACQ_REL
#define KVM_CAP_DIRTY_LOG_RING_ACQ_REL 223
#endif
#ifndef KVM_EXIT_DIRTY_RING_FULL
#define KVM_EXIT_DIRTY_RING_FULL 31
#endif
#ifndef KVM_RESET_DIRTY_RINGS
#define KVM_RESET_DIRTY_RINGS _IO(KVMIO, 0xc7)
#endif
#ifndef KVM_DIRTY_LOG_PAGE_OFFSET
#define KVM_DIRTY_LOG_PAGE_OFFSET 64 /* x86's, arch/x86/include/uapi */
#endif
#ifndef KVM_DIRTY_GFN_F_DIRTY
struct kvm_dirty_gfn {
    __u32 flags;
    __u32 slot; /* as_id << 16 | slot id */
    __u64 offset;
};
#define KVM_DIRTY_GFN_F_DIRTY (1u << 0)
#define KVM_DIRTY_GFN_F_RESET (1u << 1)
#endif

/* One vCPU's ring as the harvester sees it. */
typedef struct KVMDirtyRing {
    struct kvm_dirty_gfn *gfns; /* `size` entries, mmap'd from the vCPU */
    uint32_t size;              /* entries, a power of two */
    uint32_t fetch;             /* free-running index of the next entry */
} KVMDirtyRing;

/* Called once per harvested entry, with the entry's raw slot and offset. */
typedef void (*KVMDirtyGfnFn)(uint32_t slot, uint64_t offset, void *opaque);

/*
 * Takes every entry KVM has published from r->fetch on, in ring order
 * (the index wraps at r->size): calls fn, marks the entry
 * KVM_DIRTY_GFN_F_RESET (release) and advances r->fetch. Stops at the
 * first entry without KVM_DIRTY_GFN_F_DIRTY, or after one full ring.
 * Returns how many entries it took. The caller serialises harvests.
 */
uint32_t kvm_dirty_ring_collect(KVMDirtyRing *r, KVMDirtyGfnFn fn,
                                void *opaque);

/*
 * Where an entry points: slot id `*slot_id` (index into slot_pages) and
 * page `*page` within it. False for another address space, an unknown
 * slot, or an offset past the slot's `slot_pages[id]` pages.
 */
bool kvm_dirty_gfn_page(uint32_t slot, uint64_t offset,
                        const uint64_t *slot_pages, uint32_t nr_slots,
                        uint32_t *slot_id, uint64_t *page);

#endif /* ACCEL_KVM_RING_CORE_H */
