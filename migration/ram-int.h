/*
 * The source's RAM state, shared by ram.c (the bitmap, the precopy
 * passes, the section) and ram-postcopy.c (discards, requests, the
 * post-copy PARTs, release-ram, recovery). Internal to those two.
 */
#ifndef MIGRATION_RAM_INT_H
#define MIGRATION_RAM_INT_H

#include "ram.h"

#define RAM_MAX_BLOCKS 4
#define RAM_ITERATE_MAX_US 50000 /* one PART section at most ~50 ms */

typedef struct RAMBlockState {
    RAMBlock *rb;
    uint64_t pages;
    unsigned long *bmap;          /* pages to send */
    unsigned long *clear_chunks;  /* chunks whose dirty log to re-arm */
    unsigned long *postcopy_sent; /* pages sent since post-copy began */
    unsigned long *released;      /* release-ram: pages given back */
    /*
     * Bulk stage: the last populated extent found, [data_start, data_end)
     * in bytes. Populated memory stays populated, so later chunks inside
     * it need no new lookup (SEEK_HOLE walks the whole extent each time:
     * a third of the migration thread's time for 1 GiB of data). Holes
     * are never cached: one may fill before its chunk's log is re-armed.
     */
    uint64_t data_start, data_end;
} RAMBlockState;

/* A page request from the destination (post-copy), queued for sending. */
typedef struct RAMRequest {
    RAMBlockState *b;
    uint64_t page;
    uint64_t npages;
} RAMRequest;

/* Owned by the migration thread while a migration runs. */
typedef struct RAMState {
    Machine *m;
    RAMBlockState blocks[RAM_MAX_BLOCKS];
    int nr_blocks;
    int cur_block; /* scan position */
    uint64_t cur_page;
    RAMBlock *last_sent;  /* for RAM_SAVE_FLAG_CONTINUE */
    uint64_t dirty_pages; /* bits set in every bmap */
    bool bulk_stage;
    bool active;
    bool postcopy; /* the destination runs: pages go whole, on request */
    /* requests: queued by the return path thread, served by ours */
    GMutex req_lock;
    GCond req_cond;
    GQueue requests;        /* of RAMRequest, protected by req_lock */
    atomic_uint req_queued; /* requests in the queue */
    /* postcopy-preempt: requested pages go here, with their own CONTINUE
     * state (the block last named on this stream) */
    QEMUFile *preempt;
    RAMBlock *preempt_last_sent;
    /* release-ram: pages sent and not flushed yet (block << 48 | page) */
    GArray *to_release;
    int64_t last_sync_us;
    /* auto-converge periods: at least one second between checks */
    int64_t period_start_us;
    uint64_t period_dirty_pages;
    uint64_t period_xfer_start;
} RAMState;

/* Owned by the migration thread while a migration runs. */
extern RAMState ram_state;

void ram_update_remaining(RAMState *rs);
/* One page: ZERO record, delta, compressed, or whole. */
void ram_save_page(RAMState *rs, QEMUFile *f, RAMBlockState *b, uint64_t page);
/* Drops never-populated pages of [first, end) from the bitmap. */
void ram_skip_holes(RAMState *rs, RAMBlockState *b, uint64_t first,
                    uint64_t end);
/* Sends one dirty page; 1 sent, 0 nothing dirty, < 0 error. */
int ram_save_one(RAMState *rs, QEMUFile *f);

/* ram-postcopy.c */
void ram_postcopy_mark_release(RAMState *rs, RAMBlockState *b, uint64_t page);
/* One PART in post-copy: requests first, the background scan between. */
int ram_save_iterate_postcopy(RAMState *rs, QEMUFile *f);

#endif /* MIGRATION_RAM_INT_H */
