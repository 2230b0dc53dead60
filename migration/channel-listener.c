/*
 * Migration listeners, the part common to every transport: one-shot (or
 * n-shot) accept on a listening socket that a cancel eventfd interrupts,
 * prepared streams (exec, file, fd), and the vetted accept that refuses
 * and logs a connection failing the caller's check without giving up its
 * slot. Split from channel.c, which owns the channels themselves.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel-internal.h"

/* ---- listeners ----------------------------------------------------------- */

MigListener *mig_listener_new(const MigChannelOps *ops, int fd, GError **errp)
{
    MigListener *l;
    int cancel_fd = mig_cancel_fd_new(errp);

    if (cancel_fd < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    l = g_new0(MigListener, 1);
    l->ops = ops;
    l->fd = fd;
    l->accepts_left = 1;
    l->watch_fd = -1;
    l->cancel_fd = cancel_fd;
    atomic_init(&l->shutdown, false);
    return l;
}

MigListener *mig_listener_new_prepared(const MigChannelOps *ops, MigChannel *c,
                                       GError **errp)
{
    MigListener *l = mig_listener_new(ops, -1, errp);

    if (!l) {
        mig_channel_shutdown(c); /* an exec child is killed, not waited */
        mig_channel_close(c, NULL);
        return NULL;
    }
    l->prepared = c;
    return l;
}

void mig_listener_close_fd(MigListener *l)
{
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}

static bool mig_listener_cancelled(MigListener *l, GError **errp)
{
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "incoming migration (%s): cancelled while waiting for the "
                "connection",
                l->ops->scheme);
    return false;
}

static bool mig_accept_retry(int err)
{
    /* a peer that gave up before accept, or a spurious wakeup */
    return err == EINTR || err == EAGAIN || err == ECONNABORTED ||
           err == EPROTO;
}

bool mig_listener_wait(MigListener *l, int timeout_ms)
{
    return l->fd >= 0 && mig_poll(l->fd, POLLIN, l->cancel_fd, &l->shutdown,
                                  timeout_ms) == MIG_POLL_READY;
}

int mig_listener_accept_fd(MigListener *l, GError **errp)
{
    int fd;

    if (l->fd < 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "incoming migration (%s): the connection was already "
                    "accepted",
                    l->ops->scheme);
        return -1;
    }
    for (;;) {
        if (mig_poll(l->fd, POLLIN, l->cancel_fd, &l->shutdown,
                     l->watch_fd >= 0 ? 100 : -1) == MIG_POLL_CANCELLED) {
            mig_listener_cancelled(l, errp);
            return -1;
        }
        if (l->watch_fd >= 0) {
            struct pollfd w = {.fd = l->watch_fd, .events = POLLRDHUP};
            if (poll(&w, 1, 0) > 0 && w.revents) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "incoming migration (%s): the peer hung up "
                            "before all its connections arrived",
                            l->ops->scheme);
                return -1;
            }
        }
        fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            break;
        }
        if (!mig_accept_retry(errno)) {
            gw_error_errno(errp, errno, "incoming migration (%s): accept",
                           l->address ? l->address : l->ops->scheme);
            return -1;
        }
    }
    return fd; /* mig_accept_checked() counts it once it passes */
}

/* A connection passed its check: it takes one of the listener's slots. */
static void mig_listener_accepted(MigListener *l)
{
    if (l->fd >= 0 && --l->accepts_left == 0) {
        mig_listener_close_fd(l); /* no more connections than expected */
    }
}

MigChannel *mig_listener_take_prepared(MigListener *l, GError **errp)
{
    MigChannel *c = l->prepared;

    if (atomic_load(&l->shutdown)) {
        mig_listener_cancelled(l, errp);
        return NULL;
    }
    if (!c) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "incoming migration (%s): the stream was already taken",
                    l->ops->scheme);
        return NULL;
    }
    l->prepared = NULL;
    return c;
}

char *mig_listener_socket_address(MigListener *l)
{
    return g_strdup(l->address);
}

MigListener *mig_listen(const MigUri *uri, GError **errp)
{
    const MigChannelOps *ops = mig_channel_ops_checked(uri, errp);

    return ops ? ops->listen(uri, errp) : NULL;
}

char *mig_channel_peer_address(MigChannel *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    struct ucred cred;
    socklen_t clen = sizeof(cred);

    if (getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0) {
        return g_strdup_printf("%s stream", c->ops->scheme);
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        return g_strdup_printf("%s:%u", host, ntohs(in->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        return g_strdup_printf("[%s]:%u", host, ntohs(in6->sin6_port));
    }
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
        return g_strdup_printf("unix socket peer pid %d", (int)cred.pid);
    }
    return g_strdup("unix socket peer");
}

MigChannel *mig_accept_checked(MigListener *l, MigAcceptCheck check,
                               void *opaque, GError **errp)
{
    for (;;) {
        g_autoptr(GError) err = NULL;
        g_autofree char *peer = NULL;
        MigChannel *c = l->ops->accept(l, errp);

        if (!c || !check) {
            if (c) {
                mig_listener_accepted(l);
            }
            return c;
        }
        /* before the check: a peer that hung up has no address any more */
        peer = mig_channel_peer_address(c);
        if (check(c, opaque, &err)) {
            mig_listener_accepted(l);
            return c;
        }
        mig_channel_close(c, NULL);
        if (l->fd < 0) {
            /* exec, file, fd: there is no other connection to wait for */
            g_propagate_prefixed_error(
                errp, g_steal_pointer(&err),
                "incoming migration (%s): ", l->ops->scheme);
            return NULL;
        }
        /* a stray or hostile peer must not end the wait for the source */
        fprintf(stderr,
                "godwit: incoming migration: refused the connection from "
                "%s: %s\n",
                peer, err->message);
    }
}

MigChannel *mig_accept(MigListener *l, GError **errp)
{
    return mig_accept_checked(l, NULL, NULL, errp);
}

char *mig_listener_address(MigListener *l)
{
    return l->ops->listener_address ? l->ops->listener_address(l) : NULL;
}

void mig_listener_shutdown(MigListener *l)
{
    mig_cancel_signal(l->cancel_fd, &l->shutdown);
}

void mig_listener_close(MigListener *l)
{
    if (!l) {
        return;
    }
    l->ops->listener_close(l);
    mig_listener_close_fd(l);
    if (l->prepared) {
        /* never accepted: do not wait for an exec child, kill it */
        mig_channel_shutdown(l->prepared);
        mig_channel_close(l->prepared, NULL);
    }
    close(l->cancel_fd);
    g_free(l->address);
    g_free(l);
}

void mig_listener_watch_hangup(MigListener *l, MigChannel *c)
{
    l->watch_fd = c ? c->fd : -1;
}

bool mig_listener_set_connections(MigListener *l, unsigned n, GError **errp)
{
    if (n < 1 || l->fd < 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "%s: an incoming migration over several connections "
                    "(multifd) needs tcp or unix",
                    l->ops->scheme);
        return false;
    }
    l->accepts_left = n;
    return true;
}
