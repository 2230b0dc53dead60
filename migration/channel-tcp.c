/*
 * The tcp: migration transport (tcp:HOST:PORT, IPv6 as tcp:[ADDR]:PORT).
 * Outgoing: resolves HOST with getaddrinfo and connects to the first
 * address that answers. Incoming: binds one listening socket (HOST empty:
 * a dual-stack IPv6 socket, else the first address that binds; PORT 0
 * picks an ephemeral port, reported by listener_address) and accepts one
 * connection.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel-internal.h"

static const MigChannelOps tcp_ops;

/* "host:port", "[v6addr]:port" for error messages and addresses. */
static char *tcp_hostport(const char *host, const char *port)
{
    if (strchr(host, ':')) {
        return g_strdup_printf("[%s]:%s", host, port);
    }
    return g_strdup_printf("%s:%s", *host ? host : "*", port);
}

static struct addrinfo *tcp_resolve(const MigUri *uri, int flags, GError **errp)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = flags,
    };
    struct addrinfo *res = NULL;
    int rc =
        getaddrinfo(*uri->host ? uri->host : NULL, uri->port, &hints, &res);

    if (rc != 0) {
        g_autofree char *hp = tcp_hostport(uri->host, uri->port);

        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "tcp: cannot resolve '%s': %s", hp,
                    rc == EAI_SYSTEM ? g_strerror(errno) : gai_strerror(rc));
        return NULL;
    }
    return res;
}

/*
 * Connects a non-blocking socket to `ai`, waiting for the handshake (so
 * an EINTR cannot leave it half done) or for `cancel_fd` to become
 * readable (ECANCELED). Returns the fd, or -1 with errno.
 */
static int tcp_connect_one(const struct addrinfo *ai, int cancel_fd)
{
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    int err = 0;
    socklen_t len = sizeof(err);

    if (fd < 0) {
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLOUT},
                                {.fd = cancel_fd, .events = POLLIN}};

        if (errno != EINPROGRESS && errno != EINTR) {
            goto fail;
        }
        while (poll(pfd, cancel_fd >= 0 ? 2 : 1, -1) < 0 && errno == EINTR) {
            /* retry */
        }
        if (cancel_fd >= 0 && (pfd[1].revents & POLLIN)) {
            errno = ECANCELED;
            goto fail;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
            goto fail;
        }
        if (err) {
            errno = err;
            goto fail;
        }
    }
    return fd;

fail:
    err = errno;
    close(fd);
    errno = err;
    return -1;
}

static MigChannel *tcp_connect(const MigUri *uri, int cancel_fd, GError **errp)
{
    g_autofree char *hp = tcp_hostport(uri->host, uri->port);
    struct addrinfo *res;
    int fd = -1, err = EADDRNOTAVAIL;

    if (!*uri->host || !strcmp(uri->port, "0")) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "tcp: cannot connect to '%s': a host and a non-zero "
                    "port are needed",
                    hp);
        return NULL;
    }
    res = tcp_resolve(uri, 0, errp);
    if (!res) {
        return NULL;
    }
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = tcp_connect_one(ai, cancel_fd);
        err = fd < 0 ? errno : 0;
        if (err == ECANCELED) {
            break;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        gw_error_errno(errp, err, "tcp: cannot connect to '%s'", hp);
        return NULL;
    }
    return mig_channel_new(&tcp_ops, fd, errp);
}

/* `dual`: an IPv6 socket that takes IPv4 connections too. */
static int tcp_listen_one(const struct addrinfo *ai, bool dual)
{
    int one = 1, zero = 0, err;
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);

    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (dual) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        listen(fd, MIG_LISTEN_BACKLOG) == 0) {
        return fd;
    }
    err = errno;
    close(fd);
    errno = err;
    return -1;
}

/* The bound address as a URI: "tcp:127.0.0.1:40123", "tcp:[::1]:40123". */
static char *tcp_bound_address(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[NI_MAXHOST], port[NI_MAXSERV];
    g_autofree char *hp = NULL;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port,
                    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        return NULL;
    }
    hp = tcp_hostport(host, port);
    return g_strconcat("tcp:", hp, NULL);
}

static MigListener *tcp_listen(const MigUri *uri, GError **errp)
{
    g_autofree char *hp = tcp_hostport(uri->host, uri->port);
    struct addrinfo *res = tcp_resolve(uri, AI_PASSIVE, errp);
    int fd = -1, err = EADDRNOTAVAIL;
    MigListener *l;

    if (!res) {
        return NULL;
    }
    /* No host: try a dual-stack IPv6 socket first, then anything. */
    for (int pass = *uri->host ? 1 : 0; pass < 2 && fd < 0; pass++) {
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            if (pass == 0 && ai->ai_family != AF_INET6) {
                continue;
            }
            fd = tcp_listen_one(ai, pass == 0);
            err = fd < 0 ? errno : 0;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        gw_error_errno(errp, err, "tcp: cannot listen on '%s'", hp);
        return NULL;
    }
    l = mig_listener_new(&tcp_ops, fd, errp);
    if (l) {
        l->address = tcp_bound_address(fd);
    }
    return l;
}

static MigChannel *tcp_accept(MigListener *l, GError **errp)
{
    int fd = mig_listener_accept_fd(l, errp);

    return fd < 0 ? NULL : mig_channel_new(&tcp_ops, fd, errp);
}

static void tcp_listener_close(MigListener *l)
{
    /* nothing of its own: the generic code closes the socket */
}

static const MigChannelOps tcp_ops = {
    .scheme = "tcp",
    .connect = tcp_connect,
    .listen = tcp_listen,
    .accept = tcp_accept,
    .listener_address = mig_listener_socket_address,
    .listener_close = tcp_listener_close,
    .close = mig_channel_close_plain,
};

void mig_channel_tcp_register(void)
{
    mig_channel_register(MIG_URI_TCP, &tcp_ops);
}
