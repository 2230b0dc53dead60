/*
 * The XBZRLE page cache on the source: the last copy of each hot page that
 * was sent, so that the next send can be a delta against what the
 * destination has. Sized by xbzrle-cache-size.
 *
 * Direct-mapped: slot = (addr / page_size) mod number of slots (a power
 * of two). Not a hash of the address on purpose: a contiguous run of
 * pages no larger than the cache never collides with itself, where a hash
 * would make about a third of the slots collide even when the working set
 * fits.
 *
 * Ages: every slot holds the dirty-sync count ("age") of its last insert
 * or hit. As QEMU's cache: a slot holding another address is taken over
 * only when that page is PAGE_CACHE_LIFETIME syncs old or older, so the
 * pages of the current and of the previous pass do not evict each other.
 *
 * Memory: two allocations made at init (slots, and one block for all the
 * page data, left to the kernel to fault in as pages are inserted), never
 * one per page.
 *
 * Threads: a PageCache is not locked and has no globals: only one thread
 * may use it at a time. In godwit the migration thread owns it from setup
 * to cleanup, resize included; a new xbzrle-cache-size set from the
 * monitor is applied by the migration thread at its next iteration (or
 * the caller serialises with a lock of its own).
 */
#ifndef MIGRATION_PAGE_CACHE_H
#define MIGRATION_PAGE_CACHE_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Syncs a page stays before another address may take its slot. */
#define PAGE_CACHE_LIFETIME 2

typedef struct PageCache PageCache;

/*
 * A cache of size_bytes / page_size slots. page_size must be a power of
 * two. Fails (NULL, errp set) if that gives no slot or a number of slots
 * that is not a power of two (options.c refuses such sizes first), or if
 * the memory cannot be had.
 */
PageCache *cache_init(uint64_t size_bytes, size_t page_size, GError **errp);

/* Frees the cache and all its pages. NULL is allowed. */
void cache_fini(PageCache *cache);

/*
 * True if the cache holds the page at addr. A hit also sets the slot's age
 * to current_age (as QEMU does), so a page that keeps being re-sent keeps
 * its slot; hence a non-const cache.
 */
bool cache_is_cached(PageCache *cache, uint64_t addr, uint64_t current_age);

/*
 * The cached copy of the page at addr (page_size bytes, owned by the
 * cache, valid until the next insert, resize or fini), or NULL if the
 * cache does not hold addr. The caller may write it (to update the copy
 * after an XBZRLE send).
 */
uint8_t *get_cached_data(const PageCache *cache, uint64_t addr);

/*
 * Copies the page_size bytes at pdata into the slot of addr, with age
 * current_age. Returns 0, or -1 if the slot holds another address younger
 * than PAGE_CACHE_LIFETIME syncs (the cache is unchanged). Inserting an
 * address already cached always succeeds. addr must not be UINT64_MAX.
 */
int cache_insert(PageCache *cache, uint64_t addr, const uint8_t *pdata,
                 uint64_t current_age);

/*
 * Changes the size in place (same rules as cache_init); the PageCache
 * pointer stays valid, earlier get_cached_data pointers do not. The pages
 * are moved into the new slots; where several map to one slot (when
 * shrinking), the one with the newest age stays, the first one met on a
 * tie. On failure (false, errp set) the cache is unchanged.
 */
bool cache_resize(PageCache *cache, uint64_t new_size_bytes, GError **errp);

/* Pages held, slots, slot size and total size in bytes (slots * size). */
uint64_t cache_num_items(const PageCache *cache);
uint64_t cache_num_slots(const PageCache *cache);
size_t cache_page_size(const PageCache *cache);
uint64_t cache_size_bytes(const PageCache *cache);

#endif /* MIGRATION_PAGE_CACHE_H */
