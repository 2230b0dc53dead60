/*
 * TLS under a migration channel: a MigChannelLayerOps that sends and
 * receives through a GnuTLS session (crypto/tls-session.c), so that
 * qemu-file.c, multifd and the return path run unchanged over it, and the
 * blocking handshake that starts it (with a deadline, and cancelled by
 * mig_channel_shutdown()).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "channel-internal.h"
#include "migration/channel-tls.h"

#define MIG_TLS_PEEK_MAX 64

typedef struct MigTls {
    /* Set at creation. */
    TlsSession *session;
    int fd; /* the session's own copy of the socket: dups close apart */
    gint refs;

    /* Owned by the reading thread. */
    uint8_t ahead[MIG_TLS_PEEK_MAX]; /* peeked, not yet read */
    size_t ahead_len;

    /* Owned by the writing thread. */
    uint8_t *stage;   /* a copy of what a send that hit EAGAIN sends */
    size_t stage_len; /* > 0: repeat that send before anything else */
    size_t stage_size;
} MigTls;

static MigTls *mig_tls_of(MigChannel *c)
{
    return c->layer_state;
}

static ssize_t mig_tls_readv(MigChannel *c, const struct iovec *iov, int iovcnt)
{
    MigTls *t = mig_tls_of(c);

    while (iovcnt > 0 && iov->iov_len == 0) {
        iov++;
        iovcnt--;
    }
    if (iovcnt == 0) {
        return 0;
    }
    if (t->ahead_len) {
        size_t n = MIN(t->ahead_len, iov->iov_len);
        memcpy(iov->iov_base, t->ahead, n);
        memmove(t->ahead, t->ahead + n, t->ahead_len - n);
        t->ahead_len -= n;
        return (ssize_t)n;
    }
    /* one record at most per call: partial reads are in the contract */
    return tls_session_recv(t->session, iov->iov_base, iov->iov_len);
}

/*
 * GnuTLS wants a send that returned EAGAIN repeated with the same data.
 * The caller repeats its writev with the same iov (the contract of
 * writev: nothing moved), but a copy keeps that true whatever it does.
 */
static ssize_t mig_tls_writev(MigChannel *c, const struct iovec *iov,
                              int iovcnt)
{
    MigTls *t = mig_tls_of(c);
    ssize_t n;

    if (!t->stage_len) {
        size_t max = tls_session_record_size(t->session);
        if (t->stage_size < max) {
            t->stage = g_realloc(t->stage, max);
            t->stage_size = max;
        }
        for (int i = 0; i < iovcnt && t->stage_len < max; i++) {
            size_t k = MIN(iov[i].iov_len, max - t->stage_len);
            memcpy(t->stage + t->stage_len, iov[i].iov_base, k);
            t->stage_len += k;
        }
        if (!t->stage_len) {
            return 0;
        }
    }
    n = tls_session_send(t->session, t->stage, t->stage_len);
    if (n != -EAGAIN) {
        t->stage_len = 0;
    }
    return n;
}

static int mig_tls_peek(MigChannel *c, void *buf, size_t len)
{
    MigTls *t = mig_tls_of(c);

    g_assert(len <= MIG_TLS_PEEK_MAX);
    while (t->ahead_len < len) {
        ssize_t n = tls_session_recv(t->session, t->ahead + t->ahead_len,
                                     len - t->ahead_len);
        if (n <= 0) {
            return (int)n;
        }
        t->ahead_len += (size_t)n;
    }
    memcpy(buf, t->ahead, len);
    return 1;
}

static bool mig_tls_readable(MigChannel *c)
{
    MigTls *t = mig_tls_of(c);

    return t->ahead_len > 0 || tls_session_pending(t->session) > 0;
}

static void *mig_tls_ref(void *state)
{
    MigTls *t = state;

    g_atomic_int_inc(&t->refs);
    return t;
}

static void mig_tls_unref(void *state)
{
    MigTls *t = state;

    if (!g_atomic_int_dec_and_test(&t->refs)) {
        return;
    }
    tls_session_free(t->session);
    close(t->fd);
    g_free(t->stage);
    g_free(t);
}

static const MigChannelLayerOps mig_tls_layer = {
    .readv = mig_tls_readv,
    .writev = mig_tls_writev,
    .peek = mig_tls_peek,
    .readable = mig_tls_readable,
    .ref = mig_tls_ref,
    .unref = mig_tls_unref,
};

/* Steps the handshake until done, failed, past the deadline or shut down. */
static bool mig_tls_handshake(MigChannel *c, MigTls *t, int timeout_ms,
                              GError **errp)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        int r = tls_session_handshake(t->session, errp);
        int left_ms = -1;

        if (r != 0) {
            return r > 0;
        }
        if (timeout_ms >= 0) {
            gint64 left = deadline - g_get_monotonic_time();
            if (left <= 0) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "TLS handshake timed out after %d ms", timeout_ms);
                return false;
            }
            left_ms = (int)((left + 999) / 1000);
        }
        if (!mig_channel_wait(
                c, tls_session_wants_write(t->session) ? POLLOUT : POLLIN,
                left_ms) &&
            mig_channel_is_shutdown(c)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "TLS handshake cancelled");
            return false;
        }
    }
}

bool mig_channel_tls_start(MigChannel *c, TlsCreds *creds, const char *hostname,
                           const char *authz_id, int timeout_ms, GError **errp)
{
    MigTls *t;
    TlsSession *s;
    int fd;

    if (!c->is_socket) {
        tls_creds_put(creds);
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "TLS needs a socket (tcp:, unix: or a socket fd:), not "
                    "the %s: transport",
                    c->ops->scheme);
        return false;
    }
    fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        tls_creds_put(creds);
        return gw_error_errno(errp, errno, "TLS: cannot duplicate the socket");
    }
    s = tls_session_new(creds, fd, hostname, authz_id, errp);
    if (!s) {
        close(fd);
        return false;
    }
    t = g_new0(MigTls, 1);
    t->session = s;
    t->fd = fd;
    t->refs = 1;
    if (!mig_tls_handshake(c, t, timeout_ms, errp)) {
        mig_tls_unref(t);
        return false;
    }
    /*
     * Records are at most 16 KiB, far below loopback's MSS: with Nagle
     * each one would wait for the ACK of the one before. Harmless on
     * unix sockets, where it fails.
     */
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    mig_channel_set_layer(c, &mig_tls_layer, t);
    return true;
}
