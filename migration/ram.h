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
    _Atomic uint64_t transferred;   /* bytes of ram records on the wire */
    _Atomic uint64_t duplicate;     /* zero pages sent as ZERO records */
    _Atomic uint64_t normal;        /* pages sent whole */
    _Atomic uint64_t normal_bytes;
    _Atomic uint64_t skipped;       /* never-populated pages not sent */
    _Atomic uint64_t dirty_sync_count;
    _Atomic uint64_t dirty_pages_rate; /* pages/s in the last sync period */
    _Atomic uint64_t remaining;        /* bytes dirty, not sent yet */
    _Atomic uint64_t precopy_bytes;    /* sent while the guest ran */
    _Atomic uint64_t downtime_bytes;   /* sent while it was stopped */
    _Atomic uint64_t last_sync_dirty;  /* pages found dirty at last sync */
    _Atomic uint64_t pages_per_second;
} RAMStats;

extern RAMStats ram_stats;

void ram_stats_reset(void);

/* Registers the "ram" section for the machine's RAM blocks (main thread). */
void ram_register(Machine *m);

/*
 * Source, migration thread: adds the pages dirtied since the last sync to
 * the migration bitmap (dirty-sync-count, MIGRATION_PASS, dirty rate).
 * Returns false with *errp set if the accelerator failed.
 */
bool ram_bitmap_sync(GError **errp);

/* Pages in the migration bitmap (dirty, not sent yet). */
uint64_t ram_dirty_pages(void);

/* Destination (ram-load.c), incoming thread. */
void ram_load_init(Machine *m);
bool ram_load(QEMUFile *f, void *opaque, uint32_t version_id, GError **errp);
void ram_load_cleanup(void *opaque);

#endif /* MIGRATION_RAM_H */
