/*
 * The "ram" section: QEMU's RAM_SAVE_FLAG_* records, the migration bitmap
 * and its statistics. Internal to migration/.
 */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include <stdatomic.h>
#include <stdint.h>

#include "godwit/machine.h"
#include "migration/qemu-file.h"
#include "postcopy-ram.h"

#define RAM_SECTION_VERSION 4

#define RAM_SAVE_FLAG_FULL 0x01 /* obsolete, refused */
#define RAM_SAVE_FLAG_ZERO 0x02
#define RAM_SAVE_FLAG_MEM_SIZE 0x04
#define RAM_SAVE_FLAG_PAGE 0x08
#define RAM_SAVE_FLAG_EOS 0x10
#define RAM_SAVE_FLAG_CONTINUE 0x20
#define RAM_SAVE_FLAG_XBZRLE 0x40
#define RAM_SAVE_FLAG_HOOK 0x80
#define RAM_SAVE_FLAG_COMPRESS_PAGE 0x100
#define RAM_SAVE_FLAG_MULTIFD_FLUSH 0x200

/*
 * Chunk of pages whose dirty log is re-armed at once, just before the
 * first page of the chunk is sent (2^14 pages = 64 MiB).
 */
#define RAM_CLEAR_CHUNK_SHIFT 14

/*
 * Counters shown by query-migrate; written by the migration thread, read
 * by the main loop (atomics).
 */
typedef struct RAMStats {
    _Atomic uint64_t transferred; /* bytes of ram records on the wire */
    _Atomic uint64_t duplicate;   /* zero pages sent as ZERO records */
    _Atomic uint64_t normal;      /* pages sent whole */
    _Atomic uint64_t normal_bytes;
    _Atomic uint64_t skipped; /* never-populated pages not sent */
    _Atomic uint64_t dirty_sync_count;
    _Atomic uint64_t dirty_pages_rate; /* pages/s in the last sync period */
    _Atomic uint64_t remaining;        /* bytes dirty, not sent yet */
    _Atomic uint64_t precopy_bytes;    /* sent while the guest ran */
    _Atomic uint64_t downtime_bytes;   /* sent while it was stopped */
    _Atomic uint64_t last_sync_dirty;  /* pages found dirty at last sync */
    _Atomic uint64_t pages_per_second;
    _Atomic uint64_t postcopy_requests; /* page requests received */
    _Atomic uint64_t postcopy_bytes;    /* sent after post-copy began */
    /* multifd flushes in which a zero-copy send was copied after all */
    _Atomic uint64_t dirty_sync_missed_zero_copy;
} RAMStats;

extern RAMStats ram_stats;

/* XBZRLE counters (query-migrate's "xbzrle-cache"), same rules. */
typedef struct XbzrleStats {
    _Atomic uint64_t bytes; /* XBZRLE records, minus 8-byte headers */
    _Atomic uint64_t pages; /* pages sent as XBZRLE (or skipped: same) */
    _Atomic uint64_t cache_miss;
    _Atomic uint64_t overflow;            /* delta larger than the page */
    _Atomic uint64_t cache_miss_rate_ppm; /* last sync period */
    _Atomic uint64_t encoding_rate_x1000; /* raw bytes / encoded, period */
    _Atomic uint64_t cache_size;
} XbzrleStats;

extern XbzrleStats xbzrle_stats;

/* Compression counters (query-migrate's "compression"), same rules. */
typedef struct CompressionStats {
    _Atomic uint64_t pages;                  /* pages sent as COMPRESS_PAGE */
    _Atomic uint64_t busy;                   /* no free thread: sent normally */
    _Atomic uint64_t compressed_size;        /* bytes of those records, minus
                                                their 8-byte headers */
    _Atomic uint64_t busy_rate_ppm;          /* last sync period */
    _Atomic uint64_t compression_rate_x1000; /* raw / compressed, period */
} CompressionStats;

extern CompressionStats compression_stats;

void ram_stats_reset(void);

/* Registers the "ram" section for the machine's RAM blocks (main thread). */
void ram_register(Machine *m);

/*
 * Source, migration thread: adds the pages dirtied since the last sync to
 * the migration bitmap (dirty-sync-count, MIGRATION_PASS, dirty rate).
 * Returns false with *errp set if the accelerator failed.
 */
bool ram_bitmap_sync(GError **errp);

/*
 * Post-copy, source. ram_postcopy_start (migration thread, guest stopped):
 * the last sync, the discard commands for every page dirty since it was
 * sent, and from then on whole pages only, requested ones first.
 * ram_postcopy_queue_request (return path thread): queues a request from
 * the destination, validated. ram_postcopy_wait_request (migration
 * thread): sleeps until a request is queued, a kick, or `until_us`
 * (monotonic).
 */
bool ram_postcopy_start(QEMUFile *f, GError **errp);
bool ram_postcopy_queue_request(const char *block, uint64_t start, uint32_t len,
                                GError **errp);
void ram_postcopy_wait_request(int64_t until_us);
/*
 * Recovery (migration thread): the destination's received bitmap for
 * `block` (QEMU's RECV_BITMAP: `size` bytes, little-endian): every page it
 * lacks is to be sent again.
 */
bool ram_postcopy_resume_bitmap(const char *block, const uint8_t *map,
                                uint64_t size, GError **errp);
void ram_postcopy_kick(void);
/* postcopy-preempt: requested pages go on `pf` from now (NULL: main). */
void ram_postcopy_set_preempt(QEMUFile *pf);
/* release-ram: frees the pages sent so far (every stream flushed). */
void ram_postcopy_release_sent(void);

/* Pages in the migration bitmap (dirty, not sent yet). */
uint64_t ram_dirty_pages(void);

/*
 * Record helpers shared by the ram*.c files (migration thread). The page
 * header names the block unless it is the one of the previous record.
 */
void ram_account(uint64_t bytes);
/*
 * A record's header; `payload`: the bytes of the record that follow it,
 * accounted together with the header (one ram_account per record).
 */
void ram_put_page_header(QEMUFile *f, RAMBlock *rb, uint64_t offset,
                         uint64_t flags, uint64_t payload);
/* A PAGE record; by reference = straight from `data` at flush time. */
void ram_put_normal_page(QEMUFile *f, RAMBlock *rb, uint64_t offset,
                         const uint8_t *data, bool by_reference);

/*
 * XBZRLE, source side (ram-xbzrle.c), migration thread. All are no-ops
 * when the capability is off.
 */
bool ram_xbzrle_setup(GError **errp);
void ram_xbzrle_cleanup(void);
/* Applies an xbzrle-cache-size changed during the migration. */
void ram_xbzrle_apply_resize(void);
/* Sends `host` as XBZRLE or as a page consistent with the cache. Returns
 * true when the page is dealt with, false to send it normally. */
bool ram_xbzrle_save_page(QEMUFile *f, RAMBlock *rb, uint64_t offset,
                          const uint8_t *host, uint64_t age, bool bulk_stage);
/* A page went as a ZERO record: the cache must agree. */
void ram_xbzrle_cache_zero_page(uint64_t offset, uint64_t age);
/* At each bitmap sync: cache-miss-rate and encoding-rate of the period. */
void ram_xbzrle_sync_stats(void);

/*
 * The compress capability, source side (ram-compress.c), migration
 * thread. ram_compress_save_page() queues a page for the compression
 * threads (copied at once when `copy`); false when none is free and
 * compress-wait-thread is off. ram_compress_flush() writes every pending
 * record; call it before a section's EOS.
 */
bool ram_compress_setup(GError **errp);
void ram_compress_cleanup(void);
bool ram_compress_active(void);
bool ram_compress_save_page(QEMUFile *f, RAMBlock *rb, uint64_t offset,
                            const uint8_t *src, bool copy);
void ram_compress_flush(QEMUFile *f);
/* At each bitmap sync: busy-rate and compression-rate of the period. */
void ram_compress_sync_stats(uint64_t pages_sent);
/*
 * XBZRLE with compression (ram-xbzrle.c): caches `host` and returns the
 * cache's copy, which is what must be sent; NULL without XBZRLE or when
 * the cache refuses the page.
 */
const uint8_t *ram_xbzrle_cache_page(uint64_t offset, const uint8_t *host,
                                     uint64_t age);

/*
 * The compress capability, destination side (ram-decompress.c), incoming
 * thread. ram_decompress_page() reads a COMPRESS_PAGE record's length and
 * body and hands them to a decompression thread that writes `host`;
 * ram_decompress_pending() tells whether a page is still in a thread's
 * hands (wait with ram_decompress_wait() before writing it otherwise);
 * ram_decompress_wait() waits for every thread and reports the first
 * failure.
 */
bool ram_decompress_page(QEMUFile *f, RAMBlock *rb, uint8_t *host,
                         uint64_t page, GError **errp);
bool ram_decompress_pending(uint64_t page);
bool ram_decompress_wait(GError **errp);
void ram_decompress_cleanup(void);

/* Destination (ram-load.c), incoming thread. */
void ram_load_init(Machine *m);
bool ram_load(QEMUFile *f, void *opaque, uint32_t version_id, GError **errp);
/*
 * A PAGE record's payload for `page` of `rb`, read straight into guest RAM
 * (and the next pages' records with it when they follow in order; see
 * ram-load-direct.c). `touched`: the load's written pages (set here for
 * every page placed; only untouched, still-zero pages are guessed).
 * Precopy over a socket only (qemu_file_direct_ok), with no other thread
 * writing guest RAM (no multifd, no decompression threads). `populate`
 * (may be NULL) is called with each page a read starts at, before the read
 * lands in it and the pages after it. False: the file's sticky error is
 * set.
 */
/* Pages one read of ram_load_page_direct lands in, at most. */
#define RAM_DIRECT_READ_PAGES 63
/*
 * Makes sure pages [page, page + RAM_DIRECT_READ_PAGES) are populated
 * (ram_load_page_direct).
 */
typedef void RAMPopulateFn(void *opaque, RAMBlock *rb, uint64_t page);
bool ram_load_page_direct(QEMUFile *f, RAMBlock *rb, uint64_t page,
                          unsigned long *touched, RAMPopulateFn *populate,
                          void *opaque);
/* The load's bitmap of pages written (allocated on first use). */
unsigned long *ram_load_touched_map(void);
void ram_load_cleanup(void *opaque);

/*
 * Post-copy, destination (incoming thread): POSTCOPY_RAM_DISCARD's ranges
 * (bytes, validated); LISTEN: every page not received is emptied, the RAM
 * registered with userfaultfd and `req` called for each page a thread
 * faults on; from then on pages are placed atomically.
 * ram_load_postcopy_stats (any thread): false before LISTEN; after the
 * end, ram_load_postcopy_final keeps the last figures.
 */
bool ram_load_postcopy_discard(const char *block, uint64_t start,
                               uint64_t length, GError **errp);
bool ram_load_postcopy_listen(PostcopyRequestFn req, void *opaque,
                              GError **errp);
bool ram_load_postcopy_stats(PostcopyRamStats *st);
/* Recovery (listen thread): the received pages; ask again for the pages
 * threads wait on. */
const unsigned long *ram_load_postcopy_received_map(void);
/* Any thread after LISTEN (the preempt channel's): places one page. */
bool ram_load_postcopy_place(uint64_t addr, const void *data, GError **errp);
void ram_load_postcopy_rerequest(void);
/* The end (or abandon) of post-copy: uffd freed, waiters woken. */
void ram_load_postcopy_end(void);
extern PostcopyRamStats ram_load_postcopy_final;
extern bool ram_load_postcopy_final_valid;

#endif /* MIGRATION_RAM_H */
