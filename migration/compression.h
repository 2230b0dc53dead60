/*
 * Page compression methods (zlib, zstd, lz4): an ops table per method,
 * one file each (migration/compress-*.c), registered into an array indexed
 * by MigCompression. Two jobs per method:
 *
 *   page:   one 4 KiB page <-> one self-contained body (the legacy
 *           `compress` capability's COMPRESS_PAGE records);
 *   stream: N pages <-> one packet payload on a stream that persists for
 *           the life of a multifd channel (zlib and zstd keep one
 *           compression stream per channel, as QEMU does).
 *
 * The wire format of each method is described in docs/devel/compression.md.
 *
 * Contexts: a MigCompressCtx does one job (MigCompressMode) for one owner
 * (a compression worker, a multifd channel) and holds all the state and
 * buffers that job needs; nothing is shared between contexts, so any
 * number of threads may work at once, each on its own context. A context
 * is used by one thread at a time; it may change hands through a queue.
 * The registry is written once by mig_compress_register_all() and only
 * read afterwards.
 *
 * Errors: a body or payload that does not decode to exactly the expected
 * number of whole pages fails with an error; nothing is read outside the
 * input or written outside the destination pages, whatever the input. On
 * failure the destination pages hold unspecified bytes. A stream context
 * that failed once refuses every later call (its stream is out of sync
 * with the peer's); the migration has to fail.
 */
#ifndef MIGRATION_COMPRESSION_H
#define MIGRATION_COMPRESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "godwit/error.h"
#include "migration/options.h"

/* Every method works on target pages of this size. */
#define MIG_COMPRESS_PAGE_SIZE 4096

typedef enum MigCompressMode {
    MIG_COMPRESS_PAGE_SEND,   /* compress_page */
    MIG_COMPRESS_PAGE_RECV,   /* decompress_page */
    MIG_COMPRESS_STREAM_SEND, /* stream_compress_pages */
    MIG_COMPRESS_STREAM_RECV, /* stream_decompress_pages */
    MIG_COMPRESS_MODE__MAX,
} MigCompressMode;

typedef struct MigCompressOps MigCompressOps;

/*
 * The part of a context every method shares. Each method's context embeds
 * it as its first member; callers only hold the pointer.
 */
typedef struct MigCompressCtx {
    const MigCompressOps *ops;
    MigCompressMode mode;
    int level;
    bool broken; /* stream contexts: an earlier call failed */
} MigCompressCtx;

/*
 * Every hook is mandatory. Hooks are called through the mig_compress_*
 * wrappers below, which check the mode, the level and the sticky error;
 * each hook runs in the thread that owns the context.
 */
struct MigCompressOps {
    const char *name; /* "zlib", "zstd", "lz4": QEMU's enum names */
    /* Accepted levels, inclusive; the default for callers without one. */
    int level_min;
    int level_max;
    int level_default;
    /*
     * Worst-case size of one page body, and of one packet payload of
     * n_pages pages. Pure; any thread. An output buffer of this size
     * never makes compress_page return 0 nor stream_compress_pages fail.
     */
    size_t (*page_bound)(void);
    size_t (*stream_bound)(size_t n_pages);
    /*
     * Allocates a context for `mode` at `level` (already checked against
     * level_min..level_max). Returns NULL with *errp set on failure.
     */
    MigCompressCtx *(*init)(MigCompressMode mode, int level, GError **errp);
    /* Frees everything init allocated, the context included. */
    void (*cleanup)(MigCompressCtx *ctx);
    /*
     * PAGE_SEND. Compresses one page into out[0..out_size). Returns the
     * body length (> 0), 0 when the body would not fit in out_size bytes
     * ("didn't shrink" when out_size is what the caller can afford; send
     * the page uncompressed), or -1 with *errp set. The page may change
     * while it is being compressed (a running guest writes it): the body
     * then decodes to some mix of old and new bytes, never to an error.
     */
    ssize_t (*compress_page)(MigCompressCtx *ctx, const uint8_t *page,
                             uint8_t *out, size_t out_size, GError **errp);
    /*
     * PAGE_RECV. Decodes `body` (len bytes) into one page. False with
     * *errp set unless the body decodes to exactly one page and nothing
     * is left over.
     */
    bool (*decompress_page)(MigCompressCtx *ctx, const uint8_t *body,
                            size_t len, uint8_t *page, GError **errp);
    /*
     * STREAM_SEND. Compresses pages[0..n_pages) into one packet payload
     * in out[0..out_size), flushed so that the peer can decode all of it.
     * Returns the payload length (0 for n_pages == 0), or -1 with *errp
     * set (also when out_size is too small: size out with stream_bound).
     */
    ssize_t (*stream_compress_pages)(MigCompressCtx *ctx, uint8_t *const *pages,
                                     size_t n_pages, uint8_t *out,
                                     size_t out_size, GError **errp);
    /*
     * STREAM_RECV. Decodes one packet payload (len bytes) into
     * pages[0..n_pages), 4 KiB each. False with *errp set unless the
     * payload decodes to exactly n_pages pages and ends where the
     * sender's flush ended it.
     */
    bool (*stream_decompress_pages)(MigCompressCtx *ctx, const uint8_t *payload,
                                    size_t len, uint8_t *const *pages,
                                    size_t n_pages, GError **errp);
};

/* ---- registry ------------------------------------------------------------ */

/* Registers every method; idempotent, any thread. Call before lookups. */
void mig_compress_register_all(void);
/* For the method files: asserts that every hook is set. */
void mig_compress_register(MigCompression method, const MigCompressOps *ops);
/*
 * For tests: puts `ops` in place of a method's registered ops (e.g. a
 * wrapper that delays or counts) and returns the ops it replaced, to be
 * put back the same way. Only while no context of the method exists.
 */
const MigCompressOps *mig_compress_replace(MigCompression method,
                                           const MigCompressOps *ops);
/*
 * The ops of a method, or NULL for MIG_COMPRESSION_NONE (multifd "none"
 * sends pages as they are, with no copy, so it has no compressor).
 */
const MigCompressOps *mig_compress_ops(MigCompression method);

void mig_compress_zlib_register(void);
void mig_compress_zstd_register(void);
void mig_compress_lz4_register(void);

/* ---- contexts and the calls (owning thread) ------------------------------ */

/*
 * A new context for `method` doing `mode` at `level`. Fails (NULL, *errp
 * set) for an unregistered method or a level out of the method's range.
 */
MigCompressCtx *mig_compress_ctx_new(MigCompression method,
                                     MigCompressMode mode, int level,
                                     GError **errp);
void mig_compress_ctx_free(MigCompressCtx *ctx);

/* Worst-case output sizes (see MigCompressOps); 0 for NONE. */
size_t mig_compress_page_bound(MigCompression method);
size_t mig_compress_stream_bound(MigCompression method, size_t n_pages);

/* The hooks, with the mode asserted and the sticky stream error kept. */
ssize_t mig_compress_page(MigCompressCtx *ctx, const uint8_t *page,
                          uint8_t *out, size_t out_size, GError **errp);
bool mig_decompress_page(MigCompressCtx *ctx, const uint8_t *body, size_t len,
                         uint8_t *page, GError **errp);
ssize_t mig_stream_compress_pages(MigCompressCtx *ctx, uint8_t *const *pages,
                                  size_t n_pages, uint8_t *out, size_t out_size,
                                  GError **errp);
bool mig_stream_decompress_pages(MigCompressCtx *ctx, const uint8_t *payload,
                                 size_t len, uint8_t *const *pages,
                                 size_t n_pages, GError **errp);

#endif /* MIGRATION_COMPRESSION_H */
