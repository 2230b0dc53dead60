/* The migration fault-injection proxy: see mig-proxy.h. */
#include <errno.h>
#include <glib.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mig-proxy.h"

#define PROXY_BUF 65536

struct MigProxy {
    int lfd;
    char *target;
    pthread_t thread;
    _Atomic uint64_t bytes;  /* source -> destination */
    _Atomic uint64_t cut_at; /* UINT64_MAX: never */
    atomic_bool stop;
    atomic_bool done;
};

static int unix_socket(const char *path, bool listen_on)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert(fd >= 0 && strlen(path) < sizeof(a.sun_path));
    strcpy(a.sun_path, path);
    if (listen_on) {
        unlink(path);
        g_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
        g_assert(listen(fd, 1) == 0);
    } else if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Waits for the connection; 100 ms polls so that free() can stop it. */
static int accept_one(MigProxy *p)
{
    while (!atomic_load(&p->stop)) {
        struct pollfd pfd = {p->lfd, POLLIN, 0};
        if (poll(&pfd, 1, 100) > 0) {
            return accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
        }
    }
    return -1;
}

static void *proxy_thread(void *opaque)
{
    MigProxy *p = opaque;
    g_autofree uint8_t *buf_src = g_malloc(PROXY_BUF);
    int a = accept_one(p), b = -1;

    if (a >= 0) {
        b = unix_socket(p->target, false);
    }
    while (a >= 0 && b >= 0 && !atomic_load(&p->stop)) {
        struct pollfd pfd[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        uint64_t cut = atomic_load(&p->cut_at);
        uint64_t sent = atomic_load(&p->bytes);
        if (sent >= cut) {
            break;
        }
        if (poll(pfd, 2, 100) <= 0) {
            continue;
        }
        if (pfd[0].revents) {
            size_t want = PROXY_BUF;
            if (cut - sent < want) {
                want = (size_t)(cut - sent);
            }
            ssize_t n = read(a, buf_src, want);
            if (n <= 0 || !write_all(b, buf_src, (size_t)n)) {
                break;
            }
            atomic_fetch_add(&p->bytes, (uint64_t)n);
        }
        if (pfd[1].revents) {
            uint8_t back[4096];
            ssize_t n = read(b, back, sizeof(back));
            if (n <= 0 || !write_all(a, back, (size_t)n)) {
                break;
            }
        }
    }
    /* the cut: both peers see the connection break */
    if (a >= 0) {
        shutdown(a, SHUT_RDWR);
        close(a);
    }
    if (b >= 0) {
        shutdown(b, SHUT_RDWR);
        close(b);
    }
    atomic_store(&p->done, true);
    return NULL;
}

MigProxy *mig_proxy_new(const char *listen_path, const char *target)
{
    MigProxy *p = g_new0(MigProxy, 1);

    p->lfd = unix_socket(listen_path, true);
    p->target = g_strdup(target);
    atomic_init(&p->cut_at, UINT64_MAX);
    g_assert(pthread_create(&p->thread, NULL, proxy_thread, p) == 0);
    return p;
}

uint64_t mig_proxy_bytes(MigProxy *p)
{
    return atomic_load(&p->bytes);
}

void mig_proxy_cut_at(MigProxy *p, uint64_t offset)
{
    atomic_store(&p->cut_at, offset);
}

bool mig_proxy_done(MigProxy *p)
{
    return atomic_load(&p->done);
}

void mig_proxy_free(MigProxy *p)
{
    if (!p) {
        return;
    }
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    close(p->lfd);
    g_free(p->target);
    g_free(p);
}
