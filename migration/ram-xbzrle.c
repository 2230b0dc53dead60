/*
 * XBZRLE in the RAM loop, source side: a page cache of what the
 * destination has, and XBZRLE records (delta of a re-sent page against
 * its cached copy) in QEMU's format:
 *
 *   be64 offset|RAM_SAVE_FLAG_XBZRLE [block name] u8 0x01 be16 len data
 *
 * The cache must always equal what the destination holds for a cached
 * page, or a later delta would be applied to different bytes. So whenever
 * a page goes into (or is refreshed in) the cache, what is sent is the
 * cache's copy, and a page is encoded from a private copy (the guest may
 * write while we read) that then becomes the cached copy.
 *
 * Bulk stage: pages are cached as they are first sent (from the cache
 * copy) but never encoded -- there is nothing to encode against. Later
 * passes: a hit is encoded (nothing is sent if the page did not change);
 * a miss or an overflow (delta not smaller than a page) sends the whole
 * page and refreshes the cache.
 *
 * Owned by the migration thread, which also applies a new
 * xbzrle-cache-size between sections.
 */
#include <string.h>

#include "migration-int.h"
#include "migration/options.h"
#include "page-cache.h"
#include "ram.h"
#include "xbzrle.h"

#define ENCODING_FLAG_XBZRLE 0x01

XbzrleStats xbzrle_stats;

static struct {
    PageCache *cache;
    uint8_t *current; /* private copy of the page being encoded */
    uint8_t *encoded; /* encoder output */
    uint8_t zero[GW_PAGE_SIZE];
    /* for the per-sync rates */
    uint64_t prev_miss, prev_pages, prev_bytes, prev_sent;
} xb;

bool ram_xbzrle_setup(GError **errp)
{
    if (!migrate_cap(MIGRATION_CAPABILITY_XBZRLE)) {
        return true;
    }
    memset(&xbzrle_stats, 0, sizeof(xbzrle_stats));
    xb.prev_miss = xb.prev_pages = xb.prev_bytes = xb.prev_sent = 0;
    xb.cache = cache_init(migrate_xbzrle_cache_size(), GW_PAGE_SIZE, errp);
    if (!xb.cache) {
        g_prefix_error(errp, "xbzrle: ");
        return false;
    }
    xb.current = g_malloc(GW_PAGE_SIZE);
    xb.encoded = g_malloc(GW_PAGE_SIZE);
    atomic_store(&xbzrle_stats.cache_size, cache_size_bytes(xb.cache));
    return true;
}

void ram_xbzrle_cleanup(void)
{
    g_clear_pointer(&xb.cache, cache_fini);
    g_clear_pointer(&xb.current, g_free);
    g_clear_pointer(&xb.encoded, g_free);
}

void ram_xbzrle_apply_resize(void)
{
    uint64_t size;
    g_autoptr(GError) err = NULL;

    if (!xb.cache) {
        return;
    }
    /* xbzrle-cache-size may change during a migration, as in QEMU */
    size = migrate_xbzrle_cache_size();
    if (size == cache_size_bytes(xb.cache)) {
        return;
    }
    if (!cache_resize(xb.cache, size, &err)) {
        /* the old cache stays: still correct, just another size */
        g_warning("xbzrle-cache-size %" G_GUINT64_FORMAT ": %s", size,
                  err->message);
        return;
    }
    atomic_store(&xbzrle_stats.cache_size, cache_size_bytes(xb.cache));
}

void ram_xbzrle_cache_zero_page(uint64_t offset, uint64_t age)
{
    if (xb.cache) {
        cache_insert(xb.cache, offset, xb.zero, age);
    }
}

const uint8_t *ram_xbzrle_cache_page(uint64_t offset, const uint8_t *host,
                                     uint64_t age)
{
    if (!xb.cache || cache_insert(xb.cache, offset, host, age) < 0) {
        return NULL;
    }
    return get_cached_data(xb.cache, offset);
}

/* The whole page, sent as the cache's copy if the cache takes it. */
static bool send_cached_copy(QEMUFile *f, RAMBlock *rb, uint64_t offset,
                             const uint8_t *page, uint64_t age)
{
    if (cache_insert(xb.cache, offset, page, age) < 0) {
        return false; /* slot busy with a younger page: send normally */
    }
    ram_put_normal_page(f, rb, offset, get_cached_data(xb.cache, offset),
                        false);
    return true;
}

bool ram_xbzrle_save_page(QEMUFile *f, RAMBlock *rb, uint64_t offset,
                          const uint8_t *host, uint64_t age, bool bulk_stage)
{
    uint8_t *cached;
    int len;

    if (!xb.cache) {
        return false;
    }
    if (bulk_stage) {
        return send_cached_copy(f, rb, offset, host, age);
    }
    if (!cache_is_cached(xb.cache, offset, age)) {
        atomic_fetch_add(&xbzrle_stats.cache_miss, 1);
        return send_cached_copy(f, rb, offset, host, age);
    }
    cached = get_cached_data(xb.cache, offset);
    memcpy(xb.current, host, GW_PAGE_SIZE);
    len = xbzrle_encode_buffer(cached, xb.current, GW_PAGE_SIZE, xb.encoded,
                               GW_PAGE_SIZE);
    /* from here the cache holds what the destination will have */
    memcpy(cached, xb.current, GW_PAGE_SIZE);
    if (len == 0) {
        atomic_fetch_add(&xbzrle_stats.pages, 1); /* unchanged: nothing */
        return true;
    }
    if (len < 0) {
        atomic_fetch_add(&xbzrle_stats.overflow, 1);
        ram_put_normal_page(f, rb, offset, cached, false);
        return true;
    }
    ram_put_page_header(f, rb, offset, RAM_SAVE_FLAG_XBZRLE,
                        1 + 2 + (uint64_t)len);
    qemu_put_byte(f, ENCODING_FLAG_XBZRLE);
    qemu_put_be16(f, (uint16_t)len);
    qemu_put_buffer(f, xb.encoded, (size_t)len);
    /* QEMU counts the record without its 8-byte header */
    atomic_fetch_add(&xbzrle_stats.bytes, 1 + 2 + (uint64_t)len);
    atomic_fetch_add(&xbzrle_stats.pages, 1);
    return true;
}

void ram_xbzrle_sync_stats(void)
{
    uint64_t miss, pages, bytes, sent;

    if (!xb.cache) {
        return;
    }
    miss = atomic_load(&xbzrle_stats.cache_miss);
    pages = atomic_load(&xbzrle_stats.pages);
    bytes = atomic_load(&xbzrle_stats.bytes);
    sent = atomic_load(&ram_stats.normal) + atomic_load(&ram_stats.duplicate) +
           pages;
    if (sent > xb.prev_sent) {
        atomic_store(&xbzrle_stats.cache_miss_rate_ppm,
                     (miss - xb.prev_miss) * 1000000 / (sent - xb.prev_sent));
    }
    if (bytes > xb.prev_bytes) {
        atomic_store(&xbzrle_stats.encoding_rate_x1000,
                     (pages - xb.prev_pages) * GW_PAGE_SIZE * 1000 /
                         (bytes - xb.prev_bytes));
    }
    xb.prev_miss = miss;
    xb.prev_pages = pages;
    xb.prev_bytes = bytes;
    xb.prev_sent = sent;
}
