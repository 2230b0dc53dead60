/*
 * The return path: messages from the destination back to the source, on
 * a second channel over the same socket (QEMU's format: be16 type, be16
 * length, then the data). The destination writes them from two threads
 * (the incoming thread answers pings and says when it is done; the
 * post-copy fault thread asks for pages); the source reads them on a
 * thread of its own and hands each to the migration code.
 */
#ifndef MIGRATION_RETURN_PATH_H
#define MIGRATION_RETURN_PATH_H

#include <stdbool.h>
#include <stdint.h>

#include "godwit/error.h"
#include "migration/channel.h"

/* QEMU's enum mig_rp_message_type. */
enum {
    MIG_RP_MSG_INVALID = 0,
    MIG_RP_MSG_SHUT = 1,         /* be32: 0 = the destination is done */
    MIG_RP_MSG_PONG = 2,         /* be32: the PING's value */
    MIG_RP_MSG_REQ_PAGES_ID = 3, /* be64 start, be32 len, u8 n, block[n] */
    MIG_RP_MSG_REQ_PAGES = 4,    /* be64 start, be32 len: same block */
    MIG_RP_MSG_RECV_BITMAP = 5,
    MIG_RP_MSG_RESUME_ACK = 6,
    MIG_RP_MSG_MAX,
};

/* ---- destination: the writer -------------------------------------------- */

typedef struct RPWriter RPWriter;

/* Opens the way back on a duplicate of the main channel's socket. */
RPWriter *rp_writer_open(MigChannel *main_chan, GError **errp);
/*
 * Any thread (one message at a time, under the writer's lock); each
 * message is flushed at once. False once the channel failed (the first
 * failure is kept: rp_writer_error()).
 */
bool rp_send_shut(RPWriter *w, uint32_t value);
bool rp_send_pong(RPWriter *w, uint32_t value);
/* REQ_PAGES_ID when `block` differs from the last request's, else
 * REQ_PAGES. `start` and `len` in bytes. */
bool rp_send_req_pages(RPWriter *w, const char *block, uint64_t start,
                       uint32_t len);
/*
 * Post-copy recovery: RECV_BITMAP (u8 n, block[n]) followed on the stream
 * by be64 size (bytes, a multiple of 8), the bitmap of received pages
 * (little-endian longs) and be64 RP_RECV_BITMAP_ENDING; RESUME_ACK (be32).
 */
#define RP_RECV_BITMAP_ENDING 0x0123456789abcdefull
#define RP_RECV_BITMAP_MAX (64u << 20) /* bytes: 2 TiB of 4 KiB pages */
#define MIGRATION_RESUME_ACK_VALUE 1
bool rp_send_recv_bitmap(RPWriter *w, const char *block,
                         const unsigned long *map, uint64_t nbits);
bool rp_send_resume_ack(RPWriter *w, uint32_t value);
/* The first failure, or NULL (a copy). */
char *rp_writer_error(RPWriter *w);
/* Any thread: makes blocked and later sends fail. */
void rp_writer_shutdown(RPWriter *w);
/* Flushes (unless shut down) and closes. NULL is a no-op. */
void rp_writer_close(RPWriter *w);

/* ---- source: the reader thread ------------------------------------------ */

typedef struct RPReaderOps {
    /* A page request, validated by the callee: false with *errp ends the
     * return path with that error. */
    bool (*req_pages)(void *opaque, const char *block, uint64_t start,
                      uint32_t len, GError **errp);
    void (*pong)(void *opaque, uint32_t value);
    /* Recovery: the destination's received pages of `block` (`size`
     * bytes, little-endian bitmap); false with *errp ends the thread. */
    bool (*recv_bitmap)(void *opaque, const char *block, const uint8_t *map,
                        uint64_t size, GError **errp);
    bool (*resume_ack)(void *opaque, uint32_t value, GError **errp);
    /* The destination is done (value 0) or failed; the thread ends. */
    void (*shut)(void *opaque, uint32_t value);
    /* The return path failed or the stream was malformed; the thread ends.
     * Not called after shutdown by rp_reader_stop(). */
    void (*error)(void *opaque, const char *msg);
} RPReaderOps;

typedef struct RPReader RPReader;

/* Starts the thread ("mig/src/rp") on a duplicate of `main_chan`. */
RPReader *rp_reader_start(MigChannel *main_chan, const RPReaderOps *ops,
                          void *opaque, GError **errp);
/* Waits up to `timeout_ms` for the thread to end by itself (SHUT or an
 * error); true if it did. */
bool rp_reader_wait(RPReader *r, int timeout_ms);
/* Shuts the channel down, joins the thread, frees. NULL is a no-op. */
void rp_reader_stop(RPReader *r);

#endif /* MIGRATION_RETURN_PATH_H */
