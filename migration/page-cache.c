/*
 * The XBZRLE page cache (see page-cache.h): a direct-mapped table of page
 * copies with ages, allocated once.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "godwit/error.h"
#include "page-cache.h"

/* addr of an empty slot: never a page address */
#define NO_ADDR UINT64_MAX

typedef struct CacheSlot {
    uint64_t addr;
    uint64_t age;
} CacheSlot;

struct PageCache {
    CacheSlot *slots;   /* num_slots entries */
    uint8_t *data;      /* num_slots * page_size bytes, slot i at i * size */
    uint64_t num_slots; /* a power of two */
    uint64_t num_items; /* slots in use */
    size_t page_size;
    unsigned page_shift;
};

/*
 * The two arrays of a cache of size_bytes; the caller fills the rest.
 * False (errp set) if the size is unusable or memory is short.
 */
static bool cache_alloc(PageCache *c, uint64_t size_bytes, size_t page_size,
                        GError **errp)
{
    uint64_t n = size_bytes / page_size;
    void *data = NULL;

    if (n == 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "xbzrle cache size %" PRIu64
                    " is smaller than one page (%zu bytes)",
                    size_bytes, page_size);
        return false;
    }
    if (n & (n - 1)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "xbzrle cache size %" PRIu64
                    " is not a power of two number of pages",
                    size_bytes);
        return false;
    }
    /* g_try_new checks its product; n * page_size <= size_bytes */
    if (!(c->slots = g_try_new(CacheSlot, n)) ||
        posix_memalign(&data, MAX(page_size, 64), n * page_size)) {
        g_free(c->slots);
        c->slots = NULL;
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "cannot allocate an xbzrle cache of %" PRIu64 " bytes",
                    size_bytes);
        return false;
    }
    c->data = data;
    c->num_slots = n;
    c->num_items = 0;
    c->page_size = page_size;
    c->page_shift = __builtin_ctzll(page_size);
    for (uint64_t i = 0; i < n; i++) {
        c->slots[i].addr = NO_ADDR;
        c->slots[i].age = 0;
    }
    return true;
}

static inline uint64_t slot_of(const PageCache *c, uint64_t addr)
{
    return (addr >> c->page_shift) & (c->num_slots - 1);
}

static inline uint8_t *data_of(const PageCache *c, uint64_t slot)
{
    return c->data + slot * c->page_size;
}

PageCache *cache_init(uint64_t size_bytes, size_t page_size, GError **errp)
{
    PageCache *c;

    g_assert(page_size && !(page_size & (page_size - 1)));
    c = g_new0(PageCache, 1);
    if (!cache_alloc(c, size_bytes, page_size, errp)) {
        g_free(c);
        return NULL;
    }
    return c;
}

void cache_fini(PageCache *cache)
{
    if (!cache) {
        return;
    }
    free(cache->data);
    g_free(cache->slots);
    g_free(cache);
}

bool cache_is_cached(PageCache *cache, uint64_t addr, uint64_t current_age)
{
    CacheSlot *s = &cache->slots[slot_of(cache, addr)];

    if (s->addr != addr || addr == NO_ADDR) {
        return false;
    }
    s->age = current_age;
    return true;
}

uint8_t *get_cached_data(const PageCache *cache, uint64_t addr)
{
    uint64_t i = slot_of(cache, addr);

    if (cache->slots[i].addr != addr || addr == NO_ADDR) {
        return NULL;
    }
    return data_of(cache, i);
}

int cache_insert(PageCache *cache, uint64_t addr, const uint8_t *pdata,
                 uint64_t current_age)
{
    uint64_t i = slot_of(cache, addr);
    CacheSlot *s = &cache->slots[i];

    g_assert(addr != NO_ADDR);
    if (s->addr != addr && s->addr != NO_ADDR &&
        s->age + PAGE_CACHE_LIFETIME > current_age) {
        return -1; /* a page of this or the last pass: keep it */
    }
    if (s->addr == NO_ADDR) {
        cache->num_items++;
    }
    memcpy(data_of(cache, i), pdata, cache->page_size);
    s->addr = addr;
    s->age = current_age;
    return 0;
}

bool cache_resize(PageCache *cache, uint64_t new_size_bytes, GError **errp)
{
    PageCache old = *cache;
    PageCache *c = cache;

    if (new_size_bytes / old.page_size == old.num_slots) {
        return true;
    }
    if (!cache_alloc(c, new_size_bytes, old.page_size, errp)) {
        *c = old;
        return false;
    }
    for (uint64_t i = 0; i < old.num_slots; i++) {
        const CacheSlot *from = &old.slots[i];
        uint64_t j;

        if (from->addr == NO_ADDR) {
            continue;
        }
        j = slot_of(c, from->addr);
        if (c->slots[j].addr != NO_ADDR) {
            if (c->slots[j].age >= from->age) {
                continue; /* keep the newer (or first) page */
            }
        } else {
            c->num_items++;
        }
        c->slots[j] = *from;
        memcpy(data_of(c, j), data_of(&old, i), c->page_size);
    }
    free(old.data);
    g_free(old.slots);
    return true;
}

uint64_t cache_num_items(const PageCache *cache)
{
    return cache->num_items;
}

uint64_t cache_num_slots(const PageCache *cache)
{
    return cache->num_slots;
}

size_t cache_page_size(const PageCache *cache)
{
    return cache->page_size;
}

uint64_t cache_size_bytes(const PageCache *cache)
{
    return cache->num_slots * cache->page_size;
}
