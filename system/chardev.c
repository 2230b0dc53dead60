/*
 * Output-only character devices behind -serial: a file (truncated, as
 * QEMU's file backend does), the process's stdout, or nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "godwit/chardev.h"

struct Chardev {
    GMutex lock;
    int fd; /* -1: discard */
    bool own_fd;
};

Chardev *chardev_open(const char *spec, GError **errp)
{
    Chardev *chr;
    int fd = -1;
    bool own = false;

    if (!strcmp(spec, "none") || !strcmp(spec, "null")) {
        fd = -1;
    } else if (!strcmp(spec, "stdio")) {
        fd = STDOUT_FILENO;
    } else if (g_str_has_prefix(spec, "file:") && spec[5]) {
        fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            gw_error_errno(errp, errno, "cannot open '%s'", spec + 5);
            return NULL;
        }
        own = true;
    } else {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "chardev '%s' is not supported (file:PATH, stdio, none)",
                    spec);
        return NULL;
    }
    chr = g_new0(Chardev, 1);
    g_mutex_init(&chr->lock);
    chr->fd = fd;
    chr->own_fd = own;
    return chr;
}

void chardev_write(Chardev *chr, const void *buf, size_t len)
{
    const char *p = buf;

    if (!chr || chr->fd < 0) {
        return;
    }
    g_mutex_lock(&chr->lock);
    while (len > 0) {
        ssize_t n = write(chr->fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break; /* a full disk or closed pipe loses output, not the VM */
        }
        p += n;
        len -= n;
    }
    g_mutex_unlock(&chr->lock);
}

void chardev_close(Chardev *chr)
{
    if (!chr) {
        return;
    }
    if (chr->own_fd) {
        close(chr->fd);
    }
    g_mutex_clear(&chr->lock);
    g_free(chr);
}
