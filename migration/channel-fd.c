/*
 * The fd: migration transport and the registry of named fds it reads.
 * fd:N takes the inherited fd N as it is (a socket, a pipe, a file);
 * fd:NAME takes the fd the getfd QMP command registered under NAME. The
 * channel owns the fd from then on and closes it. Incoming hands out the
 * fd at once: there is nothing to wait for.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "godwit/cutils.h"
#include "channel-internal.h"

static const MigChannelOps fd_ops;

/* ---- named fds (getfd) --------------------------------------------------- */

/* name -> fd + 1 (so that a missing key, NULL, is never a valid fd) */
static GHashTable *mig_fd_names;
static GMutex mig_fd_lock;

void mig_fd_register(const char *name, int fd)
{
    gpointer old;

    g_mutex_lock(&mig_fd_lock);
    if (!mig_fd_names) {
        mig_fd_names =
            g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    }
    if (g_hash_table_lookup_extended(mig_fd_names, name, NULL, &old)) {
        close(GPOINTER_TO_INT(old) - 1); /* as getfd: a new fd replaces */
    }
    g_hash_table_insert(mig_fd_names, g_strdup(name), GINT_TO_POINTER(fd + 1));
    g_mutex_unlock(&mig_fd_lock);
}

int mig_fd_take(const char *name)
{
    gpointer v = NULL;

    g_mutex_lock(&mig_fd_lock);
    if (mig_fd_names &&
        g_hash_table_lookup_extended(mig_fd_names, name, NULL, &v)) {
        g_hash_table_remove(mig_fd_names, name);
    }
    g_mutex_unlock(&mig_fd_lock);
    return v ? GPOINTER_TO_INT(v) - 1 : -1;
}

/* ---- the transport ------------------------------------------------------- */

/* A number: that fd, which must be open. Else a name registered by getfd. */
static int fd_resolve(const char *fdname, GError **errp)
{
    uint64_t n;
    int fd;

    if (strspn(fdname, "0123456789") == strlen(fdname)) {
        if (!gw_parse_uint(fdname, &n, NULL) || n > G_MAXINT) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "fd: '%s' is not a valid file descriptor", fdname);
            return -1;
        }
        fd = (int)n;
        if (fcntl(fd, F_GETFD) < 0) {
            gw_error_errno(errp, errno, "fd: file descriptor %d", fd);
            return -1;
        }
    } else {
        fd = mig_fd_take(fdname);
        if (fd < 0) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "fd '%s' was not passed with getfd", fdname);
            return -1;
        }
    }
    /* the stream is ours now: keep it out of exec children */
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

static MigChannel *fd_connect(const MigUri *uri, int cancel_fd,
                                GError **errp)
{
    int fd = fd_resolve(uri->fdname, errp);

    return fd < 0 ? NULL : mig_channel_new(&fd_ops, fd, errp);
}

static MigListener *fd_listen(const MigUri *uri, GError **errp)
{
    int fd = fd_resolve(uri->fdname, errp);
    MigChannel *c;

    if (fd < 0) {
        return NULL;
    }
    c = mig_channel_new(&fd_ops, fd, errp);
    return c ? mig_listener_new_prepared(&fd_ops, c, errp) : NULL;
}

static void fd_listener_close(MigListener *l)
{
    /* nothing of its own: the generic code closes an unaccepted fd */
}

static const MigChannelOps fd_ops = {
    .scheme = "fd",
    .connect = fd_connect,
    .listen = fd_listen,
    .accept = mig_listener_take_prepared,
    .listener_address = NULL,
    .listener_close = fd_listener_close,
    .close = mig_channel_close_plain,
};

void mig_channel_fd_register(void)
{
    mig_channel_register(MIG_URI_FD, &fd_ops);
}
