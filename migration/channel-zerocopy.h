/*
 * Zero-copy sends on a migration channel (Linux MSG_ZEROCOPY): the
 * kernel sends straight from the caller's pages and says on the socket's
 * error queue when it no longer needs them. Used by multifd's channel
 * threads for the pages of the `zero-copy-send` capability; see
 * docs/devel/multifd.md, "Zero copy". Internal to migration/.
 *
 * Every function is called by the one thread doing I/O on the channel
 * (multifd: the channel's thread), except mig_zerocopy_stats (any thread
 * that knows the channel is idle, e.g. a test).
 */
#ifndef MIGRATION_CHANNEL_ZEROCOPY_H
#define MIGRATION_CHANNEL_ZEROCOPY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "godwit/error.h"
#include "migration/channel.h"

typedef struct MigZeroCopy MigZeroCopy;

typedef struct MigZeroCopyStats {
    uint64_t queued;        /* sendmsg(MSG_ZEROCOPY) calls that sent bytes */
    uint64_t completed;     /* of those, completions read back */
    uint64_t copied;        /* completions the kernel had to copy for */
    uint64_t enobufs_waits; /* ENOBUFS cleared by waiting for completions */
} MigZeroCopyStats;

/*
 * Turns SO_ZEROCOPY on for c's socket; `c` must outlive the result. NULL
 * with *errp when c is not a socket, when its kind of socket has no
 * MSG_ZEROCOPY (unix sockets) or when the kernel lacks it.
 */
MigZeroCopy *mig_zerocopy_new(MigChannel *c, GError **errp);
void mig_zerocopy_free(MigZeroCopy *z);

/*
 * Writes all of iov[0..iovcnt) with MSG_ZEROCOPY (iov is consumed, a
 * partial send resumes mid-iovec). The memory must stay mapped until the
 * next mig_zerocopy_flush(); what is written to it before then may be
 * what is sent. Waits on the channel when the socket is full (a shutdown
 * ends the wait: -ECANCELED) and for completions when the kernel refuses
 * to pin more pages (ENOBUFS). Returns true, or false with *errp.
 */
bool mig_zerocopy_writev_all(MigZeroCopy *z, struct iovec *iov, int iovcnt,
                             GError **errp);

/*
 * Waits until every send made so far has completed, so the kernel holds
 * no reference to the memory any more. *copied (may be NULL) says whether
 * sends were made since the previous flush and every one completed as
 * "copied" (the kernel fell back to copying: always on loopback), QEMU's
 * condition for counting a missed zero copy. False with *errp on a
 * socket error or a shutdown.
 */
bool mig_zerocopy_flush(MigZeroCopy *z, bool *copied, GError **errp);

/* Sends not completed yet. */
uint64_t mig_zerocopy_pending(MigZeroCopy *z);
void mig_zerocopy_stats(MigZeroCopy *z, MigZeroCopyStats *st);

#endif /* MIGRATION_CHANNEL_ZEROCOPY_H */
