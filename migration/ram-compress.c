/*
 * The compress capability, source side: compression worker threads turn
 * whole pages into COMPRESS_PAGE records (QEMU's format):
 *
 *   be64 offset|RAM_SAVE_FLAG_COMPRESS_PAGE [block name] be32 len body
 *
 * where the body is one page compressed with compress-method at
 * compress-level (docs/devel/compression.md has each method's format).
 *
 * The migration thread hands pages to the workers in batches of up to
 * COMPRESS_BATCH pages, round-robin, and writes each batch's records
 * itself when it comes back to that worker: the stream is only ever
 * written by the migration thread, so block headers (CONTINUE) and the
 * rate limit see the records in the order they are written. Every
 * section's pending batches are written before its EOS, so a page sent
 * compressed in one pass always reaches the destination before the same
 * page sent again (in any form) in a later pass: the "page sequence" rule.
 * Within a section a page is sent at most once.
 *
 * A worker that has not finished its previous batch when its turn comes
 * is waited for (compress-wait-thread on, QEMU's default), or the page
 * goes as a normal page and counts as "busy" (off).
 *
 * Zero pages never get here (the caller sends ZERO records). A page that
 * does not shrink below a normal record goes as a normal PAGE record.
 *
 * With XBZRLE the destination's copy of a page must equal the cache's
 * copy: the caller then passes the cache's copy and asks for it to be
 * copied at once (a later cache insert may reuse the slot).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "compression.h"
#include "migration-int.h"
#include "migration/options.h"
#include "ram.h"

#define COMPRESS_BATCH 16
/* A body worth sending: its record (len + body) is smaller than a page. */
#define COMPRESS_MAX_BODY (GW_PAGE_SIZE - 5)

CompressionStats compression_stats;

typedef struct CompressWorker {
    pthread_t thread;
    bool thread_created;
    int index;
    MigCompressCtx *ctx; /* the worker's own, for its whole life */

    /*
     * The batch. Filled by the migration thread while !busy; read by the
     * worker while busy; results read back by the migration thread.
     */
    int n;
    RAMBlock *rb[COMPRESS_BATCH];
    uint64_t offset[COMPRESS_BATCH];
    const uint8_t *src[COMPRESS_BATCH]; /* guest RAM or copies[] */
    bool copied[COMPRESS_BATCH];
    uint8_t *copies;             /* COMPRESS_BATCH pages */
    uint8_t *out;                /* COMPRESS_BATCH bodies */
    ssize_t len[COMPRESS_BATCH]; /* > 0 body, 0 did not shrink */
    GError *err;                 /* the first failure */
    bool dispatched; /* migration thread: handed out, not written yet */

    /* Protected by cp.lock. */
    bool busy; /* the worker owns the batch */
    bool quit;
    GCond cond;
} CompressWorker;

/* The pool; owned by the migration thread except where noted. */
static struct {
    GMutex lock;
    GCond done; /* a worker finished its batch */
    CompressWorker *w;
    int nr;
    int cur; /* worker whose batch is being filled */
    MigCompression method;
    bool active;
    /* per-sync rates */
    uint64_t prev_pages, prev_size, prev_busy, prev_sent;
} cp;

bool ram_compress_active(void)
{
    return cp.active;
}

static void *compress_worker_thread(void *opaque)
{
    CompressWorker *w = opaque;
    char name[16];

    snprintf(name, sizeof(name), "compress/%d", w->index);
    pthread_setname_np(pthread_self(), name);
    g_mutex_lock(&cp.lock);
    for (;;) {
        while (!w->busy && !w->quit) {
            g_cond_wait(&w->cond, &cp.lock);
        }
        if (!w->busy) {
            break; /* quit, nothing left to do */
        }
        g_mutex_unlock(&cp.lock);
        for (int i = 0; i < w->n && !w->err; i++) {
            w->len[i] = mig_compress_page(w->ctx, w->src[i],
                                          w->out + (size_t)i * GW_PAGE_SIZE,
                                          COMPRESS_MAX_BODY, &w->err);
        }
        g_mutex_lock(&cp.lock);
        w->busy = false;
        g_cond_broadcast(&cp.done);
    }
    g_mutex_unlock(&cp.lock);
    return NULL;
}

bool ram_compress_setup(GError **errp)
{
    int nr = migrate_compress_threads();

    memset(&compression_stats, 0, sizeof(compression_stats));
    cp.prev_pages = cp.prev_size = cp.prev_busy = cp.prev_sent = 0;
    if (!migrate_cap(MIGRATION_CAPABILITY_COMPRESS)) {
        return true;
    }
    mig_compress_register_all();
    cp.method = migrate_compress_method();
    cp.w = g_new0(CompressWorker, nr);
    cp.nr = 0;
    cp.cur = 0;
    for (int i = 0; i < nr; i++) {
        CompressWorker *w = &cp.w[i];
        w->index = i;
        w->ctx = mig_compress_ctx_new(cp.method, MIG_COMPRESS_PAGE_SEND,
                                      migrate_compress_level(), errp);
        if (!w->ctx) {
            g_prefix_error(errp, "compress: ");
            goto fail;
        }
        w->copies = g_malloc((size_t)COMPRESS_BATCH * GW_PAGE_SIZE);
        w->out = g_malloc((size_t)COMPRESS_BATCH * GW_PAGE_SIZE);
        g_cond_init(&w->cond);
        cp.nr = i + 1;
        int r = pthread_create(&w->thread, NULL, compress_worker_thread, w);
        if (r) {
            gw_error_errno(errp, r, "compress: cannot create a thread");
            goto fail;
        }
        w->thread_created = true;
    }
    cp.active = true;
    return true;

fail:
    cp.active = true; /* so that cleanup tears down what exists */
    ram_compress_cleanup();
    return false;
}

void ram_compress_cleanup(void)
{
    if (!cp.active) {
        return;
    }
    g_mutex_lock(&cp.lock);
    for (int i = 0; i < cp.nr; i++) {
        cp.w[i].quit = true;
        g_cond_signal(&cp.w[i].cond);
    }
    g_mutex_unlock(&cp.lock);
    for (int i = 0; i < cp.nr; i++) {
        CompressWorker *w = &cp.w[i];
        if (w->thread_created) {
            pthread_join(w->thread, NULL);
        }
        mig_compress_ctx_free(w->ctx);
        g_free(w->copies);
        g_free(w->out);
        g_clear_error(&w->err);
        g_cond_clear(&w->cond);
    }
    g_clear_pointer(&cp.w, g_free);
    cp.nr = 0;
    cp.active = false;
}

static void compress_wait(CompressWorker *w)
{
    g_mutex_lock(&cp.lock);
    while (w->busy) {
        g_cond_wait(&cp.done, &cp.lock);
    }
    g_mutex_unlock(&cp.lock);
}

static bool compress_is_busy(CompressWorker *w)
{
    bool busy;

    g_mutex_lock(&cp.lock);
    busy = w->busy;
    g_mutex_unlock(&cp.lock);
    return busy;
}

/*
 * Writes the records of a finished batch (the worker is idle) and empties
 * it. Sets the stream's error if the worker failed.
 */
static void compress_emit(QEMUFile *f, CompressWorker *w)
{
    if (w->err) {
        qemu_file_set_error(f, -EIO, "compress thread %d: %s", w->index,
                            w->err->message);
        g_clear_error(&w->err);
        w->n = 0;
        w->dispatched = false;
        return;
    }
    for (int i = 0; i < w->n; i++) {
        ssize_t len = w->len[i];
        if (len <= 0) {
            /* did not shrink: the page itself (the copy if there is one) */
            ram_put_normal_page(f, w->rb[i], w->offset[i], w->src[i],
                                !w->copied[i]);
            continue;
        }
        ram_put_page_header(f, w->rb[i], w->offset[i],
                            RAM_SAVE_FLAG_COMPRESS_PAGE, 4 + (uint64_t)len);
        qemu_put_be32(f, (uint32_t)len);
        qemu_put_buffer(f, w->out + (size_t)i * GW_PAGE_SIZE, (size_t)len);
        atomic_fetch_add(&compression_stats.pages, 1);
        atomic_fetch_add(&compression_stats.compressed_size, 4 + (uint64_t)len);
    }
    w->n = 0;
    w->dispatched = false;
}

static void compress_dispatch(CompressWorker *w)
{
    w->dispatched = true;
    g_mutex_lock(&cp.lock);
    w->busy = true;
    g_cond_signal(&w->cond);
    g_mutex_unlock(&cp.lock);
}

/*
 * Queues one page. Returns false when no worker is free and
 * compress-wait-thread is off: send the page some other way.
 */
bool ram_compress_save_page(QEMUFile *f, RAMBlock *rb, uint64_t offset,
                            const uint8_t *src, bool copy)
{
    CompressWorker *w = &cp.w[cp.cur];
    int i;

    if (w->dispatched) {
        /* the worker's last batch: written once it is back */
        if (compress_is_busy(w)) {
            if (!migrate_compress_wait_thread()) {
                atomic_fetch_add(&compression_stats.busy, 1);
                return false;
            }
            compress_wait(w);
        }
        compress_emit(f, w);
    }
    i = w->n++;
    w->rb[i] = rb;
    w->offset[i] = offset;
    w->copied[i] = copy;
    if (copy) {
        uint8_t *dst = w->copies + (size_t)i * GW_PAGE_SIZE;
        memcpy(dst, src, GW_PAGE_SIZE);
        w->src[i] = dst;
    } else {
        w->src[i] = src;
    }
    if (w->n == COMPRESS_BATCH) {
        compress_dispatch(w);
        cp.cur = (cp.cur + 1) % cp.nr;
        /* the next worker's last batch, if it is back, goes out now */
        CompressWorker *next = &cp.w[cp.cur];
        if (next->dispatched && !compress_is_busy(next)) {
            compress_emit(f, next);
        }
    }
    return true;
}

/*
 * Before a section's EOS: the partial batch is compressed too, then every
 * batch's records are written, in the order the batches were handed out.
 */
void ram_compress_flush(QEMUFile *f)
{
    CompressWorker *w;

    if (!cp.active) {
        return;
    }
    w = &cp.w[cp.cur];
    if (w->n && !w->dispatched) {
        compress_dispatch(w);
        cp.cur = (cp.cur + 1) % cp.nr;
    }
    /* oldest first: the one after the last handed out */
    for (int k = 0; k < cp.nr; k++) {
        w = &cp.w[(cp.cur + k) % cp.nr];
        if (w->dispatched) {
            compress_wait(w);
            compress_emit(f, w);
        }
    }
    cp.cur = 0;
}

void ram_compress_sync_stats(uint64_t pages_sent)
{
    uint64_t pages, size, busy;

    if (!cp.active) {
        return;
    }
    pages = atomic_load(&compression_stats.pages);
    size = atomic_load(&compression_stats.compressed_size);
    busy = atomic_load(&compression_stats.busy);
    if (pages_sent > cp.prev_sent) {
        atomic_store(&compression_stats.busy_rate_ppm,
                     (busy - cp.prev_busy) * 1000000 /
                         (pages_sent - cp.prev_sent));
    }
    if (size > cp.prev_size) {
        atomic_store(&compression_stats.compression_rate_x1000,
                     (pages - cp.prev_pages) * GW_PAGE_SIZE * 1000 /
                         (size - cp.prev_size));
    }
    cp.prev_pages = pages;
    cp.prev_size = size;
    cp.prev_busy = busy;
    cp.prev_sent = pages_sent;
}
