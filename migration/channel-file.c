/*
 * The file: migration transport (file:PATH[,offset=N]). Outgoing creates
 * the file, or with an offset keeps its first N bytes, cuts the rest and
 * writes from N on. Incoming opens it and reads from N. There is nothing
 * to wait for: the "accept" hands out the opened file.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "channel-internal.h"

static const MigChannelOps file_ops;

/* Positions `fd` at uri->offset (cutting the file there when writing). */
static bool file_seek(int fd, const MigUri *uri, bool truncate, GError **errp)
{
    if (uri->offset > (uint64_t)G_MAXINT64) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "file: offset %" G_GUINT64_FORMAT " is too large",
                    uri->offset);
        return false;
    }
    if (truncate && ftruncate(fd, (off_t)uri->offset) < 0) {
        return gw_error_errno(
            errp, errno,
            "file: cannot truncate '%s' at offset %" G_GUINT64_FORMAT,
            uri->path, uri->offset);
    }
    if (lseek(fd, (off_t)uri->offset, SEEK_SET) < 0) {
        return gw_error_errno(
            errp, errno, "file: cannot seek '%s' to offset %" G_GUINT64_FORMAT,
            uri->path, uri->offset);
    }
    return true;
}

static int file_open(const MigUri *uri, bool incoming, GError **errp)
{
    /* incoming must not block, even on a FIFO without a writer yet */
    int flags = incoming ? O_RDONLY | O_NONBLOCK : O_WRONLY | O_CREAT;
    int fd;

    if (!incoming && uri->offset == 0) {
        flags |= O_TRUNC;
    }
    do {
        fd = open(uri->path, flags | O_CLOEXEC, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        gw_error_errno(errp, errno, "file: cannot open '%s'", uri->path);
        return -1;
    }
    if (uri->offset && !file_seek(fd, uri, !incoming, errp)) {
        close(fd);
        return -1;
    }
    return fd;
}

static MigChannel *file_connect(const MigUri *uri, int cancel_fd,
                                GError **errp)
{
    int fd = file_open(uri, false, errp);

    return fd < 0 ? NULL : mig_channel_new(&file_ops, fd, errp);
}

static MigListener *file_listen(const MigUri *uri, GError **errp)
{
    int fd = file_open(uri, true, errp);
    MigChannel *c;

    if (fd < 0) {
        return NULL;
    }
    c = mig_channel_new(&file_ops, fd, errp);
    return c ? mig_listener_new_prepared(&file_ops, c, errp) : NULL;
}

static void file_listener_close(MigListener *l)
{
    /* nothing of its own: the generic code closes an unaccepted file */
}

static const MigChannelOps file_ops = {
    .scheme = "file",
    .connect = file_connect,
    .listen = file_listen,
    .accept = mig_listener_take_prepared,
    .listener_address = NULL,
    .listener_close = file_listener_close,
    .close = mig_channel_close_plain,
};

void mig_channel_file_register(void)
{
    mig_channel_register(MIG_URI_FILE, &file_ops);
}
