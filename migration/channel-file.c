/*
 * The file: migration transport (file:PATH[,offset=N]). Outgoing creates
 * the file, or with an offset keeps its first N bytes, cuts the rest and
 * writes from N on. Incoming opens it and reads from N. There is nothing
 * to wait for: the "accept" hands out the opened file.
 *
 * On a regular file the channel's I/O goes through io_uring
 * (channel-uring.c: writes in flight at explicit offsets, read-ahead);
 * when io_uring cannot be set up, one line on stderr says why and the
 * plain fd path is used. GODWIT_IO_URING=off forces the plain path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel-internal.h"
#include "channel-uring.h"

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

/*
 * Puts io_uring under `c` when it is a regular file (a FIFO or a device
 * has no offsets to write at) and not switched off. Failing to set up
 * io_uring is not an error: the migration goes on over the plain fd.
 */
static bool file_attach_uring(MigChannel *c, const MigUri *uri, GError **errp)
{
    g_autoptr(GError) why = NULL;
    struct stat st;
    bool want;
    int flags;

    if (!mig_uring_wanted(&want, errp)) {
        return false;
    }
    if (!want || fstat(c->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        return true;
    }
    c->uring = mig_uring_new(c->fd, uri->path, uri->offset, &c->shutdown, &why);
    if (!c->uring) {
        fprintf(stderr,
                "godwit: file: '%s': io_uring unavailable (%s), using plain "
                "reads and writes\n",
                uri->path, why->message);
        return true;
    }
    /* io_uring waits for the file itself: no EAGAIN from O_NONBLOCK */
    flags = fcntl(c->fd, F_GETFL);
    if (flags >= 0) {
        fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK);
    }
    return true;
}

static MigChannel *file_channel(const MigUri *uri, bool incoming, GError **errp)
{
    int fd = file_open(uri, incoming, errp);
    MigChannel *c;

    if (fd < 0) {
        return NULL;
    }
    c = mig_channel_new(&file_ops, fd, errp);
    if (c && !file_attach_uring(c, uri, errp)) {
        mig_channel_close(c, NULL);
        return NULL;
    }
    return c;
}

static MigChannel *file_connect(const MigUri *uri, int cancel_fd, GError **errp)
{
    return file_channel(uri, false, errp);
}

static MigListener *file_listen(const MigUri *uri, GError **errp)
{
    MigChannel *c = file_channel(uri, true, errp);

    return c ? mig_listener_new_prepared(&file_ops, c, errp) : NULL;
}

static void file_listener_close(MigListener *l)
{
    /* nothing of its own: the generic code closes an unaccepted file */
}

/*
 * Requests in flight point into the channel's batches and into guest RAM:
 * they are cancelled or completed before the fd closes. No fsync, as in
 * QEMU: the data is in the page cache when the migration completes.
 */
static bool file_close(MigChannel *c, GError **errp)
{
    mig_uring_free(c->uring);
    c->uring = NULL;
    mig_channel_close_fd(c);
    return true;
}

static const MigChannelOps file_ops = {
    .scheme = "file",
    .connect = file_connect,
    .listen = file_listen,
    .accept = mig_listener_take_prepared,
    .listener_address = NULL,
    .listener_close = file_listener_close,
    .close = file_close,
};

void mig_channel_file_register(void)
{
    mig_channel_register(MIG_URI_FILE, &file_ops);
}
