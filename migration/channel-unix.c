/*
 * The unix: migration transport (unix:PATH, a stream socket). Incoming
 * removes a stale socket left at PATH by an earlier run, binds, and
 * removes the socket file again once the one connection is accepted or
 * the listener closes (only if PATH is still the socket it bound).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "channel-internal.h"

static const MigChannelOps unix_ops;

/* The socket file a listener bound, so that only that file is removed. */
typedef struct UnixListener {
    char *path;
    dev_t dev;
    ino_t ino;
    bool bound; /* cleared once the file is removed */
} UnixListener;

static bool unix_sockaddr(const char *path, struct sockaddr_un *addr,
                          GError **errp)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "unix: socket path '%s' is too long (at most %zu bytes)",
                    path, sizeof(addr->sun_path) - 1);
        return false;
    }
    strcpy(addr->sun_path, path);
    return true;
}

static MigChannel *unix_connect(const MigUri *uri, int cancel_fd, GError **errp)
{
    struct sockaddr_un addr;
    int fd;

    if (!unix_sockaddr(uri->path, &addr, errp)) {
        return NULL;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        gw_error_errno(errp, errno, "unix: socket");
        return NULL;
    }
    /* A full backlog answers EAGAIN: retry until cancelled. */
    while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if (errno == EAGAIN) {
            struct pollfd pfd = {.fd = cancel_fd, .events = POLLIN};
            if (poll(&pfd, cancel_fd >= 0 ? 1 : 0, 10) > 0) {
                errno = ECANCELED;
            } else {
                continue;
            }
        }
        if (errno != EINTR) {
            gw_error_errno(errp, errno, "unix: cannot connect to '%s'",
                           uri->path);
            close(fd);
            return NULL;
        }
    }
    return mig_channel_new(&unix_ops, fd, errp);
}

/* Removes a stale socket at `path`; anything else there is an error. */
static bool unix_remove_stale(const char *path, GError **errp)
{
    struct stat st;

    if (lstat(path, &st) < 0) {
        return true; /* nothing there (or we shall learn at bind) */
    }
    if (!S_ISSOCK(st.st_mode)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "unix: '%s' exists and is not a socket", path);
        return false;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        return gw_error_errno(errp, errno,
                              "unix: cannot remove stale socket '%s'", path);
    }
    return true;
}

static int unix_listen_fd(const char *path, GError **errp)
{
    struct sockaddr_un addr;
    int fd;

    if (!unix_sockaddr(path, &addr, errp) || !unix_remove_stale(path, errp)) {
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        gw_error_errno(errp, errno, "unix: socket");
        return -1;
    }
    /*
     * What connects here writes the guest's memory: only the owner may.
     * The socket file takes the inode's mode at bind (less the umask).
     */
    if (fchmod(fd, 0600) < 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, MIG_LISTEN_BACKLOG) < 0) {
        gw_error_errno(errp, errno, "unix: cannot listen on '%s'", path);
        close(fd);
        return -1;
    }
    return fd;
}

static void unix_unlink_bound(UnixListener *ul)
{
    struct stat st;

    if (ul->bound && lstat(ul->path, &st) == 0 && st.st_dev == ul->dev &&
        st.st_ino == ul->ino) {
        unlink(ul->path);
    }
    ul->bound = false;
}

static MigListener *unix_listen(const MigUri *uri, GError **errp)
{
    UnixListener *ul;
    MigListener *l;
    struct stat st;
    int fd = unix_listen_fd(uri->path, errp);

    if (fd < 0) {
        return NULL;
    }
    ul = g_new0(UnixListener, 1);
    ul->path = g_strdup(uri->path);
    if (lstat(ul->path, &st) == 0) {
        ul->dev = st.st_dev;
        ul->ino = st.st_ino;
        ul->bound = true;
    }
    l = mig_listener_new(&unix_ops, fd, errp);
    if (!l) {
        unix_unlink_bound(ul);
        g_free(ul->path);
        g_free(ul);
        return NULL;
    }
    l->opaque = ul;
    l->address = g_strconcat("unix:", uri->path, NULL);
    return l;
}

static MigChannel *unix_accept(MigListener *l, GError **errp)
{
    int fd = mig_listener_accept_fd(l, errp);

    if (fd < 0) {
        return NULL;
    }
    if (l->fd < 0) {
        unix_unlink_bound(l->opaque); /* the listening socket is gone */
    }
    return mig_channel_new(&unix_ops, fd, errp);
}

static void unix_listener_close(MigListener *l)
{
    UnixListener *ul = l->opaque;

    mig_listener_close_fd(l);
    unix_unlink_bound(ul);
    g_free(ul->path);
    g_free(ul);
    l->opaque = NULL;
}

static const MigChannelOps unix_ops = {
    .scheme = "unix",
    .connect = unix_connect,
    .listen = unix_listen,
    .accept = unix_accept,
    .listener_address = mig_listener_socket_address,
    .listener_close = unix_listener_close,
    .close = mig_channel_close_plain,
};

void mig_channel_unix_register(void)
{
    mig_channel_register(MIG_URI_UNIX, &unix_ops);
}
