/*
 * Monitor transports: parses -qmp / -monitor specs, listens on unix and
 * tcp sockets, accepts any number of clients, and runs one protocol
 * session (QMP or HMP) per client, or one on stdin/stdout.
 *
 * All I/O is non-blocking and driven by GSources on the default
 * GMainContext (main loop thread). Output a client does not read is kept
 * in its buffer; past MONITOR_MAX_BACKLOG the client is dropped, so a
 * stuck client never blocks the VMM. A dropped or disconnected client is
 * freed from an idle callback, never under its own session's feet.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "monitor-internal.h"

typedef struct MonitorListener {
    const MonitorProtocol *proto;
    int fd;
    guint watch;
    char *unix_path; /* socket file we created, removed at cleanup */
    dev_t unix_dev;
    ino_t unix_ino;
} MonitorListener;

typedef struct MonitorClient {
    const MonitorProtocol *proto;
    void *session;
    int in_fd;     /* socket, or stdin */
    int out_fd;    /* socket, or stdout */
    bool is_stdio; /* blocking fds we must not close or change */
    guint in_watch;
    guint out_watch;
    GByteArray *outbuf; /* unwritten output from out_pos */
    size_t out_pos;
    bool input_done; /* EOF on input: drop once the output is out */
    bool closing;    /* dropped; the reaper frees it */
} MonitorClient;

static GList *listeners; /* MonitorListener * */
static GList *clients;   /* MonitorClient * */
static bool stdio_in_use;
static guint reap_source;

/* ---- clients ------------------------------------------------------------- */

static gboolean client_reap(gpointer opaque);
static gboolean client_writable(gint fd, GIOCondition cond, gpointer opaque);

static void client_drop(MonitorClient *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    g_clear_handle_id(&c->in_watch, g_source_remove);
    g_clear_handle_id(&c->out_watch, g_source_remove);
    if (!reap_source) {
        reap_source = g_idle_add(client_reap, NULL);
    }
}

static void client_free(MonitorClient *c)
{
    g_clear_handle_id(&c->in_watch, g_source_remove);
    g_clear_handle_id(&c->out_watch, g_source_remove);
    if (c->session) {
        c->proto->close(c->session);
    }
    if (c->is_stdio) {
        stdio_in_use = false;
    } else {
        close(c->in_fd);
    }
    g_byte_array_unref(c->outbuf);
    g_free(c);
}

static gboolean client_reap(gpointer opaque)
{
    GList *l = clients;

    reap_source = 0;
    while (l) {
        GList *next = l->next;
        MonitorClient *c = l->data;

        if (c->closing) {
            clients = g_list_delete_link(clients, l);
            client_free(c);
        }
        l = next;
    }
    return G_SOURCE_REMOVE;
}

/*
 * Writes one chunk without blocking. stdout keeps its blocking mode (it is
 * shared with the shell), so it is polled first and written at most
 * PIPE_BUF bytes at a time, which a writable pipe takes without blocking.
 */
static ssize_t client_write_some(MonitorClient *c, const guint8 *buf,
                                 size_t len)
{
    if (c->is_stdio) {
        struct pollfd pfd = {.fd = c->out_fd, .events = POLLOUT};

        if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & POLLOUT)) {
            errno = EAGAIN;
            return -1;
        }
        return write(c->out_fd, buf, MIN(len, (size_t)PIPE_BUF));
    }
    return send(c->out_fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Writes what it can; arms a G_IO_OUT watch for the rest. */
static void client_flush(MonitorClient *c)
{
    while (c->out_pos < c->outbuf->len) {
        ssize_t n = client_write_some(c, c->outbuf->data + c->out_pos,
                                      c->outbuf->len - c->out_pos);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n <= 0) {
            client_drop(c); /* EPIPE, ECONNRESET: the client is gone */
            return;
        }
        c->out_pos += (size_t)n;
    }
    if (c->out_pos == c->outbuf->len) {
        g_byte_array_set_size(c->outbuf, 0);
        c->out_pos = 0;
        g_clear_handle_id(&c->out_watch, g_source_remove);
        if (c->input_done) {
            client_drop(c);
        }
        return;
    }
    if (c->out_pos > 64 * 1024) {
        g_byte_array_remove_range(c->outbuf, 0, (guint)c->out_pos);
        c->out_pos = 0;
    }
    if (!c->out_watch) {
        c->out_watch =
            g_unix_fd_add(c->out_fd, G_IO_OUT | G_IO_ERR, client_writable, c);
    }
}

static gboolean client_writable(gint fd, GIOCondition cond, gpointer opaque)
{
    MonitorClient *c = opaque;

    c->out_watch = 0;
    client_flush(c); /* re-arms the watch if needed */
    return G_SOURCE_REMOVE;
}

/* The session's output callback. */
static void client_output(void *opaque, const char *data, size_t len)
{
    MonitorClient *c = opaque;

    if (c->closing) {
        return;
    }
    g_byte_array_append(c->outbuf, (const guint8 *)data, (guint)len);
    if (c->outbuf->len - c->out_pos > MONITOR_MAX_BACKLOG) {
        g_warning("monitor: dropping a %s client that left more than %u "
                  "bytes unread",
                  c->proto->name, MONITOR_MAX_BACKLOG);
        client_drop(c);
        return;
    }
    client_flush(c);
}

static gboolean client_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    MonitorClient *c = opaque;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        /*
         * The client closed (or half-closed) its end: it may still read,
         * so let the replies already queued go out first.
         */
        c->in_watch = 0; /* removed by returning G_SOURCE_REMOVE */
        c->input_done = true;
        client_flush(c);
        return G_SOURCE_REMOVE;
    }
    c->proto->feed(c->session, buf, (size_t)n);
    if (c->closing) {
        c->in_watch = 0;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static MonitorClient *client_new(const MonitorProtocol *proto, int in_fd,
                                 int out_fd, bool is_stdio)
{
    MonitorClient *c = g_new0(MonitorClient, 1);

    c->proto = proto;
    c->in_fd = in_fd;
    c->out_fd = out_fd;
    c->is_stdio = is_stdio;
    c->outbuf = g_byte_array_new();
    clients = g_list_append(clients, c);
    c->in_watch =
        g_unix_fd_add(in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, client_readable, c);
    /* the greeting or banner goes out through client_output */
    c->session = proto->open(client_output, c);
    return c;
}

/* ---- listeners ----------------------------------------------------------- */

static gboolean listener_accept(gint fd, GIOCondition cond, gpointer opaque)
{
    MonitorListener *l = opaque;

    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int one = 1;

        if (cfd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                g_warning("monitor: accept failed: %s", g_strerror(errno));
            }
            return G_SOURCE_CONTINUE;
        }
        if (!l->unix_path) {
            /* replies are small and awaited: do not let Nagle hold them */
            setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        client_new(l->proto, cfd, cfd, false);
    }
}

static void listener_add(const MonitorProtocol *proto, int fd,
                         const char *unix_path)
{
    MonitorListener *l = g_new0(MonitorListener, 1);
    struct stat st;

    l->proto = proto;
    l->fd = fd;
    if (unix_path && stat(unix_path, &st) == 0) {
        l->unix_path = g_strdup(unix_path);
        l->unix_dev = st.st_dev;
        l->unix_ino = st.st_ino;
    }
    l->watch = g_unix_fd_add(fd, G_IO_IN, listener_accept, l);
    listeners = g_list_append(listeners, l);
}

static void listener_free(MonitorListener *l)
{
    struct stat st;

    g_clear_handle_id(&l->watch, g_source_remove);
    close(l->fd);
    /* remove the socket file only if it is still the one we bound */
    if (l->unix_path && stat(l->unix_path, &st) == 0 &&
        st.st_dev == l->unix_dev && st.st_ino == l->unix_ino) {
        unlink(l->unix_path);
    }
    g_free(l->unix_path);
    g_free(l);
}

static int listen_unix(const char *spec, const char *path, GError **errp)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct stat st;
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "monitor '%s': unix socket path is too long (at most "
                    "%zu bytes)",
                    spec, sizeof(addr.sun_path) - 1);
        return -1;
    }
    strcpy(addr.sun_path, path);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "monitor '%s': '%s' exists and is not a socket", spec,
                        path);
            return -1;
        }
        unlink(path); /* stale socket of an earlier run */
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        gw_error_errno(errp, errno, "monitor '%s': socket", spec);
        return -1;
    }
    /*
     * The monitor controls the VM: only its owner may connect. Linux gives
     * the socket file the mode of the socket's inode at bind (less the
     * umask), so this has no window in which the file is more open, and
     * no process-wide umask changes under other threads.
     */
    if (fchmod(fd, 0600) < 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, 16) < 0) {
        gw_error_errno(errp, errno, "monitor '%s': cannot listen on '%s'", spec,
                       path);
        close(fd);
        return -1;
    }
    return fd;
}

/* `dual`: an IPv6 socket that accepts IPv4 too. */
static int listen_tcp_one(const struct addrinfo *ai, bool dual)
{
    int one = 1, zero = 0;
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
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/*
 * Binds the first address that works, as QEMU does. With no HOST, an IPv6
 * socket that also takes IPv4 is tried first, so "tcp::4444" serves both.
 */
static int listen_tcp(const char *spec, const char *host, const char *port,
                      GError **errp)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL;
    int fd = -1, err = 0;
    int rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);

    if (rc != 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "monitor '%s': cannot resolve '%s': %s", spec, host,
                    gai_strerror(rc));
        return -1;
    }
    for (int pass = *host ? 1 : 0; pass < 2 && fd < 0; pass++) {
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            if (pass == 0 && ai->ai_family != AF_INET6) {
                continue;
            }
            fd = listen_tcp_one(ai, pass == 0);
            err = fd < 0 ? errno : 0;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        gw_error_errno(errp, err, "monitor '%s': cannot listen on %s:%s", spec,
                       *host ? host : "*", port);
    }
    return fd;
}

bool monitor_addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a =
            &((const struct sockaddr_in6 *)sa)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* A tcp monitor anyone on the network can reach gets a warning. */
static void warn_if_exposed(const char *spec, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
        !monitor_addr_is_loopback((struct sockaddr *)&ss)) {
        g_warning("monitor '%s' listens on a non-loopback address: anyone "
                  "who can reach it controls this VM (the monitor has no "
                  "authentication); prefer a unix socket or 127.0.0.1",
                  spec);
    }
}

bool monitor_chardev_open(const char *spec, const MonitorProtocol *proto,
                          GError **errp)
{
    MonitorSpec ms = {0};
    int fd = -1;

    if (!monitor_spec_parse(spec, &ms, errp)) {
        return false;
    }
    switch (ms.kind) {
    case MONITOR_SPEC_STDIO:
        if (stdio_in_use) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "monitor 'stdio': stdio is already used by another "
                        "monitor");
            break;
        }
        stdio_in_use = true;
        client_new(proto, STDIN_FILENO, STDOUT_FILENO, true);
        monitor_spec_clear(&ms);
        return true;
    case MONITOR_SPEC_UNIX:
        fd = listen_unix(spec, ms.path, errp);
        break;
    case MONITOR_SPEC_TCP:
        fd = listen_tcp(spec, ms.host, ms.port, errp);
        if (fd >= 0) {
            warn_if_exposed(spec, fd);
        }
        break;
    }
    if (fd >= 0) {
        listener_add(proto, fd, ms.kind == MONITOR_SPEC_UNIX ? ms.path : NULL);
    }
    monitor_spec_clear(&ms);
    return fd >= 0;
}

/* Gives a client's unread output up to `deadline` (monotonic µs). */
static void client_flush_until(MonitorClient *c, gint64 deadline)
{
    while (!c->closing && c->out_pos < c->outbuf->len) {
        gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
        struct pollfd pfd = {.fd = c->out_fd, .events = POLLOUT};

        if (left_ms <= 0 || poll(&pfd, 1, (int)left_ms) <= 0) {
            return;
        }
        client_flush(c);
    }
}

void monitor_chardev_cleanup(void)
{
    gint64 deadline = g_get_monotonic_time() + G_USEC_PER_SEC;

    for (GList *l = clients; l; l = l->next) {
        client_flush_until(l->data, deadline);
    }
    g_list_free_full(g_steal_pointer(&clients), (GDestroyNotify)client_free);
    g_list_free_full(g_steal_pointer(&listeners),
                     (GDestroyNotify)listener_free);
    g_clear_handle_id(&reap_source, g_source_remove);
    stdio_in_use = false;
}
