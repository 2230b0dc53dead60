/*
 * Zero-copy sends on a migration channel: sendmsg(MSG_ZEROCOPY) and the
 * completions the kernel queues on the socket's error queue.
 *
 * Each sendmsg(MSG_ZEROCOPY) that sends bytes gets the socket's next
 * 32-bit id; once the kernel has let go of its pages it queues a
 * sock_extended_err (origin SO_EE_ORIGIN_ZEROCOPY) naming a range of ids
 * [ee_info, ee_data], with SO_EE_CODE_ZEROCOPY_COPIED when it had to
 * copy after all (loopback always does: a local receiver cannot keep the
 * sender's pages). We count sends and completed ids; "flushed" is the two
 * being equal. Documentation/networking/msg_zerocopy.rst in Linux.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* after time.h: it needs struct timespec */
#include <linux/errqueue.h>

#include "channel-internal.h"
#include "channel-zerocopy.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

/* Waits for completions poll this often, to notice a dead socket. */
#define ZC_POLL_MS 100

struct MigZeroCopy {
    MigChannel *c;
    MigZeroCopyStats st;
    uint64_t copied_at_flush;    /* st.copied at the last flush */
    uint64_t completed_at_flush; /* st.completed at the last flush */
};

MigZeroCopy *mig_zerocopy_new(MigChannel *c, GError **errp)
{
    MigZeroCopy *z;
    int one = 1;

    if (c->layer) {
        /* the options' rule refuses TLS first; this is the safety net */
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zero-copy-send cannot send through TLS (it encrypts "
                    "into its own buffers)");
        return NULL;
    }
    if (!c->is_socket) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "zero-copy-send needs a TCP socket, and this %s: "
                    "channel is not one: migrate over tcp:",
                    c->ops->scheme);
        return NULL;
    }
    if (setsockopt(c->fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) < 0) {
        int e = errno;

        if (e == EOPNOTSUPP) {
            /* the socket's family has none (AF_UNIX): say what would work */
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Requested Zero Copy feature is not available: %s "
                        "(Linux has MSG_ZEROCOPY for TCP sockets only, not "
                        "for this %s: channel: migrate over tcp:)",
                        g_strerror(e), c->ops->scheme);
        } else {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Requested Zero Copy feature is not available: %s",
                        g_strerror(e));
        }
        return NULL;
    }
    z = g_new0(MigZeroCopy, 1);
    z->c = c;
    return z;
}

void mig_zerocopy_free(MigZeroCopy *z)
{
    g_free(z);
}

uint64_t mig_zerocopy_pending(MigZeroCopy *z)
{
    return z->st.queued - z->st.completed;
}

void mig_zerocopy_stats(MigZeroCopy *z, MigZeroCopyStats *st)
{
    *st = z->st;
}

/* One completion message: counts its ids. */
static bool zc_note(MigZeroCopy *z, struct msghdr *msg, GError **errp)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm;
         cm = CMSG_NXTHDR(msg, cm)) {
        struct sock_extended_err e;
        uint32_t n;

        if (!(cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) &&
            !(cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)) {
            continue;
        }
        memcpy(&e, CMSG_DATA(cm), sizeof(e));
        if (e.ee_errno || e.ee_origin != SO_EE_ORIGIN_ZEROCOPY) {
            return gw_error_errno(errp, e.ee_errno ? (int)e.ee_errno : EPROTO,
                                  "zero-copy: error on the socket (origin "
                                  "%u)",
                                  e.ee_origin);
        }
        n = e.ee_data - e.ee_info + 1; /* ids wrap at 2^32 */
        if (n > mig_zerocopy_pending(z)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "zero-copy: %u completions for %" G_GUINT64_FORMAT
                        " sends in flight",
                        n, mig_zerocopy_pending(z));
            return false;
        }
        z->st.completed += n;
        if (e.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) {
            z->st.copied += n;
        }
    }
    return true;
}

/* Reads every completion queued now, without waiting. */
static bool zc_reap(MigZeroCopy *z, GError **errp)
{
    for (;;) {
        union {
            char buf[CMSG_SPACE(sizeof(struct sock_extended_err) +
                                sizeof(struct sockaddr_in6))];
            struct cmsghdr align;
        } u;
        struct msghdr msg = {.msg_control = u.buf,
                             .msg_controllen = sizeof(u.buf)};
        ssize_t r = recvmsg(z->c->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        if (r < 0) {
            return gw_error_errno(errp, errno,
                                  "zero-copy: reading the "
                                  "socket's error queue");
        }
        if (!zc_note(z, &msg, errp)) {
            return false;
        }
    }
}

/*
 * Waits until at least one more send completed. The error queue makes
 * the socket poll POLLERR; so does a socket error, which is then the
 * answer (a dead peer's skbs are freed, their completions come first).
 */
static bool zc_wait_completion(MigZeroCopy *z, GError **errp)
{
    uint64_t before = z->st.completed;

    for (;;) {
        MigPollResult pr;
        int soerr = 0;
        socklen_t len = sizeof(soerr);

        if (!zc_reap(z, errp)) {
            return false;
        }
        if (z->st.completed > before) {
            return true;
        }
        pr =
            mig_poll(z->c->fd, 0, z->c->cancel_fd, &z->c->shutdown, ZC_POLL_MS);
        if (pr == MIG_POLL_CANCELLED) {
            return gw_error_errno(errp, ECANCELED,
                                  "zero-copy: waiting for completions");
        }
        if (pr == MIG_POLL_READY && zc_reap(z, errp) &&
            z->st.completed == before) {
            /* ready with nothing queued: an error or a hang-up */
            if (getsockopt(z->c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 &&
                soerr) {
                return gw_error_errno(errp, soerr,
                                      "zero-copy: waiting for "
                                      "completions");
            }
            g_usleep(1000); /* a hang-up: completions are on their way */
        }
    }
}

/*
 * sendmsg said ENOBUFS: the kernel would not pin more pages (the
 * process's RLIMIT_MEMLOCK without CAP_IPC_LOCK) or allocate another
 * notification (net.core.optmem_max). Both are freed by completions:
 * reap or wait for one, then the caller retries. With nothing in flight
 * it can never work.
 */
static bool zc_make_room(MigZeroCopy *z, GError **errp)
{
    uint64_t before = z->st.completed;

    if (!zc_reap(z, errp)) {
        return false;
    }
    if (z->st.completed == before && !mig_zerocopy_pending(z)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Process can't lock enough memory for using "
                    "MSG_ZEROCOPY: %s (a send of pages needs them locked: "
                    "raise the locked-memory limit, ulimit -l / "
                    "RLIMIT_MEMLOCK, or give the process CAP_IPC_LOCK; "
                    "or raise net.core.optmem_max)",
                    g_strerror(ENOBUFS));
        return false;
    }
    if (z->st.completed == before && !zc_wait_completion(z, errp)) {
        return false;
    }
    z->st.enobufs_waits++;
    return true;
}

/* One sendmsg(MSG_ZEROCOPY): bytes sent or -errno. */
static ssize_t zc_sendmsg(MigZeroCopy *z, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {
        .msg_iov = (struct iovec *)iov,
        .msg_iovlen = (size_t)(iovcnt > IOV_MAX ? IOV_MAX : iovcnt),
    };
    ssize_t n;

    if (atomic_load(&z->c->shutdown)) {
        return -ECANCELED;
    }
    do {
        n = sendmsg(z->c->fd, &msg, MSG_ZEROCOPY | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return -errno;
    }
    /* a call that sent bytes took an id; a failed one gave it back */
    z->st.queued += n > 0;
    return n;
}

bool mig_zerocopy_writev_all(MigZeroCopy *z, struct iovec *iov, int iovcnt,
                             GError **errp)
{
    iov = mig_iov_advance(iov, &iovcnt, 0);
    while (iovcnt > 0) {
        ssize_t n = zc_sendmsg(z, iov, iovcnt);

        if (n == -EAGAIN) {
            /* drain first: a non-empty error queue makes the wait return */
            if (!zc_reap(z, errp)) {
                return false;
            }
            if (!mig_channel_wait(z->c, POLLOUT, -1)) {
                return gw_error_errno(errp, ECANCELED, "writing");
            }
            continue;
        }
        if (n == -ENOBUFS) {
            if (!zc_make_room(z, errp)) {
                return false;
            }
            continue;
        }
        if (n < 0) {
            return gw_error_errno(errp, (int)-n, "writing");
        }
        iov = mig_iov_advance(iov, &iovcnt, (size_t)n);
    }
    return true;
}

bool mig_zerocopy_flush(MigZeroCopy *z, bool *copied, GError **errp)
{
    while (mig_zerocopy_pending(z)) {
        if (!zc_wait_completion(z, errp)) {
            g_prefix_error(errp, "flushing: ");
            return false;
        }
    }
    if (copied) {
        /* QEMU's rule: something was sent, and none of it without a copy */
        uint64_t done = z->st.completed - z->completed_at_flush;
        *copied = done && z->st.copied - z->copied_at_flush == done;
    }
    z->copied_at_flush = z->st.copied;
    z->completed_at_flush = z->st.completed;
    return true;
}
