/*
 * Migration channels, the part common to every transport: parsing of
 * migration URIs, the enum-indexed registry of MigChannelOps, and the
 * generic MigChannel / MigListener (non-blocking I/O, waits that a
 * cancel eventfd can interrupt from any thread, one-shot accept).
 * The transports themselves live in migration/channel-<scheme>.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "godwit/cutils.h"
#include "channel-internal.h"

/* ---- URI parsing --------------------------------------------------------- */

static const char *const mig_uri_schemes[MIG_URI__MAX] = {
    [MIG_URI_TCP] = "tcp",   [MIG_URI_UNIX] = "unix", [MIG_URI_EXEC] = "exec",
    [MIG_URI_FILE] = "file", [MIG_URI_FD] = "fd",
};

/* A port is a number 0..65535 or a service name for getaddrinfo. */
static bool mig_uri_valid_port(const char *port)
{
    uint64_t v;

    if (!*port) {
        return false;
    }
    if (strspn(port, "0123456789") == strlen(port)) {
        return gw_parse_uint(port, &v, NULL) && v <= 65535;
    }
    for (const char *p = port; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_') {
            return false;
        }
    }
    return true;
}

/* "HOST:PORT" or "[V6ADDR]:PORT"; HOST may be empty (all addresses). */
static bool mig_uri_parse_tcp(const char *uri, const char *rest, MigUri *out,
                              GError **errp)
{
    const char *colon;

    if (rest[0] == '[') {
        const char *close = strchr(rest, ']');

        if (!close || close[1] != ':') {
            goto bad;
        }
        out->host = g_strndup(rest + 1, (gsize)(close - rest - 1));
        colon = close + 1;
    } else {
        colon = strrchr(rest, ':');
        if (!colon || memchr(rest, ':', (size_t)(colon - rest))) {
            goto bad; /* no port, or an IPv6 address without brackets */
        }
        out->host = g_strndup(rest, (gsize)(colon - rest));
    }
    out->port = g_strdup(colon + 1);
    if (!mig_uri_valid_port(out->port)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "migration URI '%s': invalid port '%s' (expected 0 to "
                    "65535 or a service name)",
                    uri, out->port);
        return false;
    }
    return true;

bad:
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "migration URI '%s': expected tcp:HOST:PORT (IPv6 as "
                "tcp:[ADDR]:PORT)",
                uri);
    return false;
}

/* "PATH" or "PATH,offset=N" (N a size: bytes, or with a K/M/G suffix). */
static bool mig_uri_parse_file(const char *uri, const char *rest, MigUri *out,
                               GError **errp)
{
    const char *comma = strchr(rest, ',');
    g_autoptr(GError) err = NULL;

    out->path = comma ? g_strndup(rest, (gsize)(comma - rest)) : g_strdup(rest);
    if (!*out->path) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "migration URI '%s': empty file name", uri);
        return false;
    }
    if (!comma) {
        return true;
    }
    if (!g_str_has_prefix(comma + 1, "offset=")) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "migration URI '%s': unknown option '%s' (only offset=N)",
                    uri, comma + 1);
        return false;
    }
    if (!gw_parse_size(comma + 1 + strlen("offset="), 1, &out->offset, &err)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "migration URI '%s': invalid offset: %s", uri,
                    err->message);
        return false;
    }
    return true;
}

/* unix:, exec:, fd: take the rest as it is, which must not be empty. */
static bool mig_uri_parse_string(const char *uri, const char *rest,
                                 char **field, const char *what, GError **errp)
{
    if (!*rest) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "migration URI '%s': empty %s", uri, what);
        return false;
    }
    *field = g_strdup(rest);
    return true;
}

static bool mig_uri_parse_kind(const char *uri, const char *rest, MigUri *out,
                               GError **errp)
{
    switch (out->kind) {
    case MIG_URI_TCP:
        return mig_uri_parse_tcp(uri, rest, out, errp);
    case MIG_URI_UNIX:
        return mig_uri_parse_string(uri, rest, &out->path, "unix socket path",
                                    errp);
    case MIG_URI_EXEC:
        return mig_uri_parse_string(uri, rest, &out->command, "exec command",
                                    errp);
    case MIG_URI_FILE:
        return mig_uri_parse_file(uri, rest, out, errp);
    case MIG_URI_FD:
        return mig_uri_parse_string(uri, rest, &out->fdname,
                                    "file descriptor number or name", errp);
    case MIG_URI__MAX:
        break;
    }
    g_assert_not_reached();
}

bool mig_uri_parse(const char *uri, MigUri *out, GError **errp)
{
    const char *colon = uri ? strchr(uri, ':') : NULL;
    g_autofree char *scheme = NULL;
    int kind;

    memset(out, 0, sizeof(*out));
    if (!colon) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "migration URI '%s': expected SCHEME:ADDRESS (tcp, unix, "
                    "exec, file or fd)",
                    uri ? uri : "");
        return false;
    }
    scheme = g_strndup(uri, (gsize)(colon - uri));
    for (kind = 0; kind < MIG_URI__MAX; kind++) {
        if (!strcmp(scheme, mig_uri_schemes[kind])) {
            break;
        }
    }
    if (kind == MIG_URI__MAX) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "migration URI '%s': unsupported scheme '%s' (godwit "
                    "supports tcp, unix, exec, file and fd)",
                    uri, scheme);
        return false;
    }
    out->kind = (MigUriKind)kind;
    if (!mig_uri_parse_kind(uri, colon + 1, out, errp)) {
        mig_uri_clear(out);
        return false;
    }
    return true;
}

void mig_uri_clear(MigUri *uri)
{
    g_clear_pointer(&uri->host, g_free);
    g_clear_pointer(&uri->port, g_free);
    g_clear_pointer(&uri->path, g_free);
    g_clear_pointer(&uri->command, g_free);
    g_clear_pointer(&uri->fdname, g_free);
    uri->offset = 0;
}

/* ---- registry ------------------------------------------------------------ */

static const MigChannelOps *mig_channel_table[MIG_URI__MAX];

void mig_channel_register(MigUriKind kind, const MigChannelOps *ops)
{
    g_assert(kind >= 0 && kind < MIG_URI__MAX);
    g_assert(ops && ops->scheme);
    g_assert(!strcmp(ops->scheme, mig_uri_schemes[kind]));
    /* Every hook is mandatory except listener_address (NULL: no address). */
    g_assert(ops->connect && ops->listen && ops->accept);
    g_assert(ops->listener_close && ops->close);
    g_assert(!mig_channel_table[kind] || mig_channel_table[kind] == ops);
    mig_channel_table[kind] = ops;
}

void migration_channels_init(void)
{
    static gsize done;

    if (g_once_init_enter(&done)) {
        mig_channel_tcp_register();
        mig_channel_unix_register();
        mig_channel_exec_register();
        mig_channel_file_register();
        mig_channel_fd_register();
        g_once_init_leave(&done, 1);
    }
}

const MigChannelOps *mig_channel_ops(MigUriKind kind)
{
    g_assert(kind >= 0 && kind < MIG_URI__MAX);
    return mig_channel_table[kind];
}

static const MigChannelOps *mig_channel_ops_checked(const MigUri *uri,
                                                    GError **errp)
{
    const MigChannelOps *ops = mig_channel_ops(uri->kind);

    if (!ops) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "migration transport '%s' is not registered (was "
                    "migration_channels_init() called?)",
                    mig_uri_schemes[uri->kind]);
    }
    return ops;
}

/* ---- waiting with a cancel eventfd --------------------------------------- */

typedef enum MigPollResult {
    MIG_POLL_READY,
    MIG_POLL_CANCELLED,
    MIG_POLL_TIMEOUT,
} MigPollResult;

/*
 * Waits for `events` on `fd` or for `cancel_fd` to become readable, at most
 * `timeout_ms` (-1: forever). A poll() failure other than EINTR counts as
 * ready: the I/O that follows reports the real error.
 */
static MigPollResult mig_poll(int fd, short events, int cancel_fd,
                              atomic_bool *cancelled, int timeout_ms)
{
    gint64 deadline = timeout_ms < 0
                          ? -1
                          : g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        struct pollfd pfd[2] = {
            {.fd = fd, .events = events},
            {.fd = cancel_fd, .events = POLLIN},
        };
        int wait_ms = -1;
        int n;

        if (atomic_load(cancelled)) {
            return MIG_POLL_CANCELLED;
        }
        if (deadline >= 0) {
            gint64 left = deadline - g_get_monotonic_time();

            wait_ms = left <= 0 ? 0 : (int)((left + 999) / 1000);
        }
        n = poll(pfd, 2, wait_ms);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return MIG_POLL_READY;
        }
        if (pfd[1].revents) {
            return MIG_POLL_CANCELLED;
        }
        if (pfd[0].revents) {
            return MIG_POLL_READY;
        }
        if (deadline >= 0 && g_get_monotonic_time() >= deadline) {
            return MIG_POLL_TIMEOUT;
        }
    }
}

/* Makes `cancel_fd` readable for good (the counter is never read back). */
static void mig_cancel_signal(int cancel_fd, atomic_bool *cancelled)
{
    uint64_t one = 1;

    atomic_store(cancelled, true);
    while (write(cancel_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
        /* retry; EAGAIN means the counter is already huge: readable */
    }
}

static int mig_cancel_fd_new(GError **errp)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    if (fd < 0) {
        gw_error_errno(errp, errno, "migration channel: eventfd");
    }
    return fd;
}

/* ---- channels ------------------------------------------------------------ */

MigChannel *mig_channel_new(const MigChannelOps *ops, int fd, GError **errp)
{
    MigChannel *c;
    struct stat st;
    int flags = fcntl(fd, F_GETFL);
    int cancel_fd;

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        gw_error_errno(errp, errno,
                       "%s channel: cannot make fd %d "
                       "non-blocking",
                       ops->scheme, fd);
        close(fd);
        return NULL;
    }
    cancel_fd = mig_cancel_fd_new(errp);
    if (cancel_fd < 0) {
        close(fd);
        return NULL;
    }
    c = g_new0(MigChannel, 1);
    c->ops = ops;
    c->fd = fd;
    c->cancel_fd = cancel_fd;
    c->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    atomic_init(&c->shutdown, false);
    return c;
}

void mig_channel_close_fd(MigChannel *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

bool mig_channel_close_plain(MigChannel *c, GError **errp)
{
    mig_channel_close_fd(c);
    return true;
}

/* The second direction of a socket and the memory file: nothing but an fd. */
static const MigChannelOps plain_ops = {
    .scheme = "socket",
    .close = mig_channel_close_plain,
};

MigChannel *mig_channel_dup(MigChannel *c, GError **errp)
{
    int fd;

    if (!c->is_socket) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "the %s: transport has no way back (a return path "
                    "needs a tcp: or unix: socket)",
                    c->ops->scheme);
        return NULL;
    }
    fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        gw_error_errno(errp, errno, "cannot duplicate the migration socket");
        return NULL;
    }
    /*
     * Page requests and the pages answering them are small writes that a
     * vCPU waits for: no Nagle delay (40 ms behind a delayed ACK). Fails
     * harmlessly on unix sockets.
     */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    MigChannel *d = mig_channel_new(&plain_ops, fd, errp);
    if (d && c->layer) {
        mig_channel_set_layer(d, c->layer, c->layer->ref(c->layer_state));
    }
    return d;
}

void mig_channel_set_layer(MigChannel *c, const MigChannelLayerOps *layer,
                           void *state)
{
    c->layer = layer;
    c->layer_state = state;
}

MigChannel *mig_channel_new_memory(GError **errp)
{
    int fd = memfd_create("godwit-mig-buffer", MFD_CLOEXEC);

    if (fd < 0) {
        gw_error_errno(errp, errno, "cannot create a memory file");
        return NULL;
    }
    return mig_channel_new(&plain_ops, fd, errp);
}

bool mig_channel_rewind(MigChannel *c, GError **errp)
{
    if (lseek(c->fd, 0, SEEK_SET) < 0) {
        return gw_error_errno(errp, errno, "cannot rewind a memory file");
    }
    return true;
}

static int mig_iovcnt_clamp(int iovcnt)
{
    return iovcnt > IOV_MAX ? IOV_MAX : iovcnt; /* a partial move is fine */
}

ssize_t mig_channel_readv(MigChannel *c, const struct iovec *iov, int iovcnt)
{
    ssize_t n;

    if (atomic_load(&c->shutdown)) {
        return -ECANCELED;
    }
    if (c->layer) {
        return c->layer->readv(c, iov, mig_iovcnt_clamp(iovcnt));
    }
    do {
        n = readv(c->fd, iov, mig_iovcnt_clamp(iovcnt));
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t mig_channel_writev(MigChannel *c, const struct iovec *iov, int iovcnt)
{
    ssize_t n;

    if (atomic_load(&c->shutdown)) {
        return -ECANCELED;
    }
    if (c->layer) {
        return c->layer->writev(c, iov, mig_iovcnt_clamp(iovcnt));
    }
    do {
        if (c->is_socket) {
            struct msghdr msg = {
                .msg_iov = (struct iovec *)iov,
                .msg_iovlen = (size_t)mig_iovcnt_clamp(iovcnt),
            };
            n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        } else {
            n = writev(c->fd, iov, mig_iovcnt_clamp(iovcnt));
        }
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

/* Drops `n` bytes from the front of iov[0..*cnt). */
static struct iovec *iov_advance(struct iovec *iov, int *cnt, size_t n)
{
    while (n > 0 && *cnt > 0) {
        if (n >= iov->iov_len) {
            n -= iov->iov_len;
            iov++;
            (*cnt)--;
        } else {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= n;
            n = 0;
        }
    }
    while (*cnt > 0 && iov->iov_len == 0) {
        iov++;
        (*cnt)--;
    }
    return iov;
}

int mig_channel_writev_all(MigChannel *c, struct iovec *iov, int iovcnt)
{
    iov = iov_advance(iov, &iovcnt, 0);
    while (iovcnt > 0) {
        ssize_t n = mig_channel_writev(c, iov, iovcnt);
        if (n == -EAGAIN) {
            if (!mig_channel_wait(c, POLLOUT, -1)) {
                return -ECANCELED;
            }
            continue;
        }
        if (n < 0) {
            return (int)n;
        }
        iov = iov_advance(iov, &iovcnt, (size_t)n);
    }
    return 1;
}

int mig_channel_readv_all(MigChannel *c, struct iovec *iov, int iovcnt)
{
    bool any = false;

    iov = iov_advance(iov, &iovcnt, 0);
    while (iovcnt > 0) {
        ssize_t n = mig_channel_readv(c, iov, iovcnt);
        if (n == -EAGAIN) {
            if (!mig_channel_wait(c, POLLIN, -1)) {
                return -ECANCELED;
            }
            continue;
        }
        if (n < 0) {
            return (int)n;
        }
        if (n == 0) {
            return any ? -ENODATA : 0;
        }
        any = true;
        iov = iov_advance(iov, &iovcnt, (size_t)n);
    }
    return 1;
}

/* One try: 1 all there, 0 EOF, -EAGAIN (some or none there), -errno. */
static int mig_channel_peek_once(MigChannel *c, void *buf, size_t len)
{
    ssize_t n;

    if (c->layer) {
        return c->layer->peek(c, buf, len);
    }
    do {
        n = recv(c->fd, buf, len, MSG_PEEK);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return -errno;
    }
    return n == 0 ? 0 : (size_t)n == len ? 1 : -EAGAIN;
}

int mig_channel_peek_timeout(MigChannel *c, void *buf, size_t len,
                             int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        int r;
        int left_ms = -1;

        if (atomic_load(&c->shutdown)) {
            return -ECANCELED;
        }
        r = mig_channel_peek_once(c, buf, len);
        if (r != -EAGAIN) {
            return r;
        }
        if (timeout_ms >= 0) {
            gint64 left = deadline - g_get_monotonic_time();
            if (left <= 0) {
                return -ETIMEDOUT;
            }
            left_ms = (int)((left + 999) / 1000);
        }
        /*
         * Part of it may be there already (poll says readable at once):
         * wait for the rest without spinning. The few bytes peeked for
         * come in one segment from any real source, so this is rare.
         */
        if (!mig_channel_wait(c, POLLIN, left_ms)) {
            if (mig_channel_is_shutdown(c)) {
                return -ECANCELED;
            }
            continue;
        }
        g_usleep(1000);
    }
}

int mig_channel_peek(MigChannel *c, void *buf, size_t len)
{
    return mig_channel_peek_timeout(c, buf, len, -1);
}

bool mig_channel_wait(MigChannel *c, short events, int timeout_ms)
{
    if ((events & POLLIN) && c->layer && c->layer->readable(c)) {
        return !atomic_load(&c->shutdown);
    }
    return mig_poll(c->fd, events, c->cancel_fd, &c->shutdown, timeout_ms) ==
           MIG_POLL_READY;
}

void mig_channel_shutdown(MigChannel *c)
{
    mig_cancel_signal(c->cancel_fd, &c->shutdown);
}

bool mig_channel_is_shutdown(MigChannel *c)
{
    return atomic_load(&c->shutdown);
}

int mig_channel_fd(MigChannel *c)
{
    return c->fd;
}

bool mig_channel_close(MigChannel *c, GError **errp)
{
    bool ok;

    if (!c) {
        return true;
    }
    if (c->layer) {
        c->layer->unref(c->layer_state);
    }
    ok = c->ops->close(c, errp);
    mig_channel_close_fd(c); /* in case the transport did not */
    close(c->cancel_fd);
    g_free(c);
    return ok;
}

MigChannel *mig_connect(const MigUri *uri, int cancel_fd, GError **errp)
{
    const MigChannelOps *ops = mig_channel_ops_checked(uri, errp);

    return ops ? ops->connect(uri, cancel_fd, errp) : NULL;
}

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
