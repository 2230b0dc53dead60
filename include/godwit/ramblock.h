/*
 * RAM blocks: guest memory backed by a memfd, mapped shared.
 *
 * A RAMBlock is what migration moves: a named, contiguous range of host
 * memory ("pc.ram"), independent of where the guest sees it (the machine
 * maps slices of it at guest-physical addresses). Backing it by a memfd
 * lets the populated extents be found with SEEK_DATA/SEEK_HOLE without
 * touching a page, lets post-copy place pages with UFFDIO_COPY and
 * release-ram punch holes.
 */
#ifndef GODWIT_RAMBLOCK_H
#define GODWIT_RAMBLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "godwit/bitmap.h"
#include "godwit/error.h"

#define GW_PAGE_SHIFT 12
#define GW_PAGE_SIZE (1ull << GW_PAGE_SHIFT)
#define GW_PAGE_MASK (~(GW_PAGE_SIZE - 1))

#define RAMBLOCK_NAME_MAX 255

typedef struct RAMBlock {
    /* Set at creation, constant afterwards. */
    char idstr[RAMBLOCK_NAME_MAX + 1];
    uint64_t used_length; /* bytes, a multiple of GW_PAGE_SIZE */
    int fd;               /* memfd */
    uint8_t *host;        /* MAP_SHARED mapping of fd, used_length bytes */
    /*
     * Pages the VMM itself wrote (device writes into guest RAM, which the
     * accelerator's dirty log cannot see). Bits are set atomically by any
     * thread and taken by whoever tracks dirty pages.
     */
    unsigned long *host_dirty;
    /*
     * Every page populated by ram_block_prealloc() and none discarded
     * since: an incoming migration need not populate ahead of the pages
     * it writes. A hint only; nothing depends on it for correctness.
     */
    _Atomic bool preallocated;
} RAMBlock;

/*
 * Creates a zero-filled block of `size` bytes (rounded up to a page).
 * Nothing is populated: pages are allocated on first touch. Returns NULL
 * with *errp set when the memfd cannot be sized or mapped (e.g. more RAM
 * than the host can map).
 */
RAMBlock *ram_block_new(const char *name, uint64_t size, GError **errp);

/* Unmaps and closes the block; NULL is fine. */
void ram_block_free(RAMBlock *rb);

static inline uint64_t ram_block_pages(const RAMBlock *rb)
{
    return rb->used_length >> GW_PAGE_SHIFT;
}

/*
 * Populated extents. Finds the first populated extent at or after byte
 * `from`: on return 1, [*start, *end) is populated (page aligned, clamped to
 * the block); 0 when nothing populated is left; -errno on error. Uses
 * SEEK_DATA/SEEK_HOLE on the memfd and never touches guest pages, so it is
 * safe while vCPUs run (the answer may be stale by the time it returns).
 */
int ram_block_next_extent(const RAMBlock *rb, uint64_t from, uint64_t *start,
                          uint64_t *end);

/*
 * Marks [offset, offset + len) as written by the VMM (any thread). Call it
 * after every host-side write into guest RAM.
 */
void ram_block_set_dirty(RAMBlock *rb, uint64_t offset, uint64_t len);

/*
 * ORs the host-dirty pages into `bitmap` (ram_block_pages(rb) bits) and
 * clears them, atomically per word.
 */
void ram_block_take_host_dirty(RAMBlock *rb, unsigned long *bitmap);

/*
 * Gives [offset, offset + len) back to the host: the range reads as zero
 * and is unpopulated again (a hole). Returns false with errno kept.
 */
bool ram_block_discard_range(RAMBlock *rb, uint64_t offset, uint64_t len);

/*
 * Populates (allocates and zeroes) the whole block now, with `threads`
 * threads, as QEMU's -mem-prealloc. False with *errp set on failure (e.g.
 * not enough memory).
 */
bool ram_block_prealloc(RAMBlock *rb, int threads, GError **errp);

/*
 * Populates pages [first, first + n) ahead of writes to them
 * (MADV_POPULATE_WRITE): nothing when the block is preallocated. False
 * only when the kernel lacks the advice (the caller stops asking: plain
 * page faults then); other failures are left to those faults.
 */
bool ram_block_populate(RAMBlock *rb, uint64_t first, uint64_t n);

/* Bytes in populated extents (for statistics and tests). */
uint64_t ram_block_populated_bytes(const RAMBlock *rb);

#endif /* GODWIT_RAMBLOCK_H */
