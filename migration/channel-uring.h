/*
 * io_uring under file: channels (migration/channel-uring.c): writes at
 * explicit file offsets with several in flight, and read-ahead into a ring
 * of buffers, so that the migration thread keeps producing (the incoming
 * thread keeps parsing) while the kernel moves the bytes. channel-file.c
 * attaches one to a channel on a regular file; channel.c routes the
 * channel's I/O through it. Not for use outside migration/channel*.c and
 * its tests.
 *
 * Everything here runs in the one thread that owns the channel (the
 * migration thread, or the incoming thread); only the shutdown flag is
 * written by other threads.
 */
#ifndef MIGRATION_CHANNEL_URING_H
#define MIGRATION_CHANNEL_URING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "migration/channel.h"

#define MIG_URING_WRITE_DEPTH 16      /* write batches: in flight + filling */
#define MIG_URING_BATCH_IOV 512       /* iovecs per batch: ~1 MiB of pages */
#define MIG_URING_BATCH_BUF 32768     /* small fields per batch */
#define MIG_URING_READ_DEPTH 8        /* read-ahead buffers */
#define MIG_URING_READ_SIZE (1 << 20) /* bytes per read-ahead buffer */

/* Forces the plain path when set to "off" (tests, benchmarks). */
#define MIG_URING_ENV "GODWIT_IO_URING"

typedef struct MigUring MigUring;

/*
 * Whether file: channels should try io_uring: true unless MIG_URING_ENV
 * says "off". Any value but "on" or "off" is an error (an option that is
 * not understood is not silently ignored).
 */
bool mig_uring_wanted(bool *want, GError **errp);

/*
 * An engine over `fd` (a regular file, which it does not own), reading or
 * writing from file offset `offset` on; `path` names the file in errors;
 * `shutdown` is the channel's flag. NULL with *errp when io_uring cannot
 * be set up (disabled, filtered, too old a kernel): the caller falls back
 * to plain I/O.
 */
MigUring *mig_uring_new(int fd, const char *path, uint64_t offset,
                        atomic_bool *shutdown, GError **errp);
/*
 * Cancels what can be cancelled, waits for every request still in flight
 * (their buffers and the guest pages they point to must outlive them),
 * then frees. The fd stays open.
 */
void mig_uring_free(MigUring *u);

/* ---- output ---- */
/*
 * A free batch for the caller to fill; waits for a write to complete when
 * all are busy. Never fails: after an error or a shutdown the batch is
 * simply never written (submit says why).
 */
MigWriteBatch *mig_uring_batch_get(MigUring *u);
/*
 * Writes b->iov[0..iovcnt) at the next stream offset, asynchronously: the
 * batch (its buf and everything its iovecs point to) belongs to the engine
 * until the write completes. False with *errp once the stream has failed
 * (the first error, sticky) or was shut down.
 */
bool mig_uring_batch_submit(MigUring *u, MigWriteBatch *b, int iovcnt,
                            GError **errp);
/* Waits until every submitted batch is written. False with *errp. */
bool mig_uring_drain(MigUring *u, GError **errp);
/* Plain writev semantics (drains, then writes synchronously). -errno. */
ssize_t mig_uring_writev(MigUring *u, const struct iovec *iov, int iovcnt);

/* ---- input ---- */
/*
 * The next chunk of the stream, lent until the next call or until free:
 * > 0 bytes at *data, 0 at end of file, -errno with *errp.
 */
ssize_t mig_uring_read_next(MigUring *u, const uint8_t **data, GError **errp);
/* Plain readv semantics over the same read-ahead (copies). -errno. */
ssize_t mig_uring_readv(MigUring *u, const struct iovec *iov, int iovcnt);

/* ---- for tests ---- */
/* Bytes submitted so far; the next write goes at offset + this. */
uint64_t mig_uring_written(MigUring *u);
/*
 * Runs `b`'s completion handling as if the kernel had answered `res` to
 * its write of iov[0..iovcnt) at the next stream offset: a short or
 * interrupted result must resubmit the rest for real. The test writes the
 * first `res` bytes itself.
 */
void mig_uring_fake_completion(MigUring *u, MigWriteBatch *b, int iovcnt,
                               int res);

#endif /* MIGRATION_CHANNEL_URING_H */
