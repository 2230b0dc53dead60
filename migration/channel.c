/*
 * Migration channels, the part common to every transport: parsing of
 * migration URIs, the enum-indexed registry of MigChannelOps, and the
 * generic MigChannel (non-blocking I/O, waits that a cancel eventfd can
 * interrupt from any thread, layers such as TLS). Listeners are in
 * channel-listener.c, the transports in migration/channel-<scheme>.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "godwit/cutils.h"
#include "channel-internal.h"
#include "channel-uring.h"

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

const MigChannelOps *mig_channel_ops_checked(const MigUri *uri, GError **errp)
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

/*
 * Waits for `events` on `fd` or for `cancel_fd` to become readable, at most
 * `timeout_ms` (-1: forever). A poll() failure other than EINTR counts as
 * ready: the I/O that follows reports the real error.
 */
MigPollResult mig_poll(int fd, short events, int cancel_fd,
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
void mig_cancel_signal(int cancel_fd, atomic_bool *cancelled)
{
    uint64_t one = 1;

    atomic_store(cancelled, true);
    while (write(cancel_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
        /* retry; EAGAIN means the counter is already huge: readable */
    }
}

int mig_cancel_fd_new(GError **errp)
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
    if (c->uring) {
        return mig_uring_readv(c->uring, iov, iovcnt);
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
    if (c->uring) {
        return mig_uring_writev(c->uring, iov, iovcnt);
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

struct iovec *mig_iov_advance(struct iovec *iov, int *cnt, size_t n)
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
    iov = mig_iov_advance(iov, &iovcnt, 0);
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
        iov = mig_iov_advance(iov, &iovcnt, (size_t)n);
    }
    return 1;
}

int mig_channel_readv_all(MigChannel *c, struct iovec *iov, int iovcnt)
{
    bool any = false;

    iov = mig_iov_advance(iov, &iovcnt, 0);
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
        iov = mig_iov_advance(iov, &iovcnt, (size_t)n);
    }
    return 1;
}

/* ---- batches and read-ahead (file: through io_uring) ------------------- */

bool mig_channel_async_writes(MigChannel *c)
{
    return c->uring != NULL;
}

MigWriteBatch *mig_channel_batch_get(MigChannel *c)
{
    g_assert(c->uring);
    return mig_uring_batch_get(c->uring);
}

bool mig_channel_batch_submit(MigChannel *c, MigWriteBatch *b, int iovcnt,
                              GError **errp)
{
    g_assert(c->uring);
    return mig_uring_batch_submit(c->uring, b, iovcnt, errp);
}

bool mig_channel_drain(MigChannel *c, GError **errp)
{
    return !c->uring || mig_uring_drain(c->uring, errp);
}

bool mig_channel_reads_ahead(MigChannel *c)
{
    return c->uring != NULL;
}

ssize_t mig_channel_read_borrow(MigChannel *c, const uint8_t **data,
                                GError **errp)
{
    g_assert(c->uring);
    if (atomic_load(&c->shutdown)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "migration stream shut down");
        return -ECANCELED;
    }
    return mig_uring_read_next(c->uring, data, errp);
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
    if (n == 0 || (size_t)n == len) {
        return n == 0 ? 0 : 1;
    }
    /*
     * Part of it is there. A peer that closed after fewer than `len` bytes
     * never sends the rest: the peek would return the same part forever.
     */
    struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
        n = recv(c->fd, buf, len, MSG_PEEK);
        return (size_t)n == len ? 1 : -ENODATA;
    }
    return -EAGAIN;
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

bool mig_channel_is_socket(MigChannel *c)
{
    return c->is_socket;
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
