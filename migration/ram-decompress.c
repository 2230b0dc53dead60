/*
 * The compress capability, destination side: decompress-threads worker
 * threads place the pages of COMPRESS_PAGE records.
 *
 * The incoming thread reads each record's body into a worker's batch (up
 * to DECOMPRESS_BATCH bodies) and hands full batches out round-robin; the
 * worker decompresses straight into guest RAM. A page stays "in flight"
 * from the moment its body is read until the incoming thread has taken
 * its worker's batch back: any other record for that page first waits
 * for every worker (the stream's order is the order pages must land in),
 * and so does the end of every section. A body that does not decode to
 * exactly one page fails the migration, with the page and the method in
 * the error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "compression.h"
#include "migration/options.h"
#include "ram.h"

#define DECOMPRESS_BATCH 16

typedef struct DecompressWorker {
    pthread_t thread;
    bool thread_created;
    int index;
    MigCompressCtx *ctx;

    /* The batch: filled by the incoming thread while !busy. */
    int n;
    uint8_t *host[DECOMPRESS_BATCH];
    uint64_t page[DECOMPRESS_BATCH];
    uint32_t len[DECOMPRESS_BATCH];
    size_t at[DECOMPRESS_BATCH]; /* body offset in `in` */
    uint8_t *in;
    size_t used;
    GError *err;
    bool dispatched; /* incoming thread: handed out, not taken back */

    /* Protected by dp.lock. */
    bool busy;
    bool quit;
    GCond cond;
} DecompressWorker;

/* Owned by the incoming thread except where noted. */
static struct {
    GMutex lock;
    GCond done;
    DecompressWorker *w;
    int nr;
    int cur;
    MigCompression method;
    size_t bound; /* largest body accepted */
    unsigned long *inflight;
    bool active;
} dp;

static void *decompress_worker_thread(void *opaque)
{
    DecompressWorker *w = opaque;
    char name[16];

    snprintf(name, sizeof(name), "decompress/%d", w->index);
    pthread_setname_np(pthread_self(), name);
    g_mutex_lock(&dp.lock);
    for (;;) {
        while (!w->busy && !w->quit) {
            g_cond_wait(&w->cond, &dp.lock);
        }
        if (!w->busy) {
            break;
        }
        g_mutex_unlock(&dp.lock);
        for (int i = 0; i < w->n && !w->err; i++) {
            if (!mig_decompress_page(w->ctx, w->in + w->at[i], w->len[i],
                                     w->host[i], &w->err)) {
                g_prefix_error(&w->err,
                               "decompression of the %s page at 0x%" PRIx64
                               " failed (is compress-method %s on the "
                               "source too?): ",
                               mig_compression_name(dp.method),
                               w->page[i] << GW_PAGE_SHIFT,
                               mig_compression_name(dp.method));
            }
        }
        g_mutex_lock(&dp.lock);
        w->busy = false;
        g_cond_broadcast(&dp.done);
    }
    g_mutex_unlock(&dp.lock);
    return NULL;
}

static bool decompress_setup(RAMBlock *rb, GError **errp)
{
    int nr = migrate_decompress_threads();

    mig_compress_register_all();
    dp.method = migrate_compress_method();
    dp.bound = mig_compress_page_bound(dp.method);
    dp.inflight = bitmap_new(ram_block_pages(rb));
    dp.w = g_new0(DecompressWorker, nr);
    dp.nr = 0;
    dp.cur = 0;
    dp.active = true;
    for (int i = 0; i < nr; i++) {
        DecompressWorker *w = &dp.w[i];
        w->index = i;
        w->ctx = mig_compress_ctx_new(dp.method, MIG_COMPRESS_PAGE_RECV,
                                      mig_compress_ops(dp.method)
                                          ->level_default,
                                      errp);
        if (!w->ctx) {
            return false;
        }
        w->in = g_malloc(DECOMPRESS_BATCH * dp.bound);
        g_cond_init(&w->cond);
        dp.nr = i + 1;
        int r = pthread_create(&w->thread, NULL, decompress_worker_thread, w);
        if (r) {
            return gw_error_errno(errp, r, "cannot create a decompression "
                                           "thread");
        }
        w->thread_created = true;
    }
    return true;
}

void ram_decompress_cleanup(void)
{
    if (!dp.active) {
        return;
    }
    g_mutex_lock(&dp.lock);
    for (int i = 0; i < dp.nr; i++) {
        dp.w[i].quit = true;
        g_cond_signal(&dp.w[i].cond);
    }
    g_mutex_unlock(&dp.lock);
    for (int i = 0; i < dp.nr; i++) {
        DecompressWorker *w = &dp.w[i];
        if (w->thread_created) {
            pthread_join(w->thread, NULL);
        }
        mig_compress_ctx_free(w->ctx);
        g_free(w->in);
        g_clear_error(&w->err);
        g_cond_clear(&w->cond);
    }
    g_clear_pointer(&dp.w, g_free);
    g_clear_pointer(&dp.inflight, bitmap_free);
    dp.nr = 0;
    dp.active = false;
}

static void decompress_dispatch(DecompressWorker *w)
{
    w->dispatched = true;
    g_mutex_lock(&dp.lock);
    w->busy = true;
    g_cond_signal(&w->cond);
    g_mutex_unlock(&dp.lock);
}

/* Waits for a handed-out batch and takes it back; false on its failure. */
static bool decompress_collect(DecompressWorker *w, GError **errp)
{
    g_mutex_lock(&dp.lock);
    while (w->busy) {
        g_cond_wait(&dp.done, &dp.lock);
    }
    g_mutex_unlock(&dp.lock);
    for (int i = 0; i < w->n; i++) {
        clear_bit(w->page[i], dp.inflight);
    }
    w->n = 0;
    w->used = 0;
    w->dispatched = false;
    if (w->err) {
        g_propagate_error(errp, g_steal_pointer(&w->err));
        return false;
    }
    return true;
}

bool ram_decompress_pending(uint64_t page)
{
    return dp.active && test_bit(page, dp.inflight);
}

bool ram_decompress_wait(GError **errp)
{
    DecompressWorker *w;
    bool ok = true;

    if (!dp.active) {
        return true;
    }
    w = &dp.w[dp.cur];
    if (w->n && !w->dispatched) {
        decompress_dispatch(w);
    }
    for (int i = 0; i < dp.nr; i++) {
        w = &dp.w[i];
        if (w->dispatched && !decompress_collect(w, ok ? errp : NULL)) {
            ok = false;
        }
    }
    dp.cur = 0;
    return ok;
}

bool ram_decompress_page(QEMUFile *f, RAMBlock *rb, uint8_t *host,
                         uint64_t page, GError **errp)
{
    DecompressWorker *w;
    uint32_t len = qemu_get_be32(f);
    int i;

    if (!qemu_file_check(f, errp)) {
        return false;
    }
    if (!dp.active && !decompress_setup(rb, errp)) {
        return false;
    }
    if (len == 0 || len > dp.bound) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Invalid compressed data length: %u (page 0x%" PRIx64
                    ")",
                    len, page << GW_PAGE_SHIFT);
        return false;
    }
    if (test_bit(page, dp.inflight) && !ram_decompress_wait(errp)) {
        return false; /* the same page again, before the last one landed */
    }
    w = &dp.w[dp.cur];
    if (w->dispatched && !decompress_collect(w, errp)) {
        return false;
    }
    i = w->n;
    w->at[i] = w->used;
    w->len[i] = len;
    w->host[i] = host;
    w->page[i] = page;
    qemu_get_buffer(f, w->in + w->used, len);
    if (!qemu_file_check(f, errp)) {
        return false;
    }
    w->used += len;
    w->n++;
    set_bit(page, dp.inflight);
    if (w->n == DECOMPRESS_BATCH) {
        decompress_dispatch(w);
        dp.cur = (dp.cur + 1) % dp.nr;
    }
    return true;
}
