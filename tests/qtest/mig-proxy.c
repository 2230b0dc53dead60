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

#define PROXY_MAX_PAIRS 4

/* Closes both ends of every pair: each peer sees its connection break. */
static void cut_all(int (*pairs)[2], int n)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 2; j++) {
            if (pairs[i][j] >= 0) {
                shutdown(pairs[i][j], SHUT_RDWR);
                close(pairs[i][j]);
                pairs[i][j] = -1;
            }
        }
    }
}

/*
 * Forwards every connection made to the listener (the main channel and
 * any other: post-copy's preempt channel) to a new connection to the
 * target; 100 ms polls so that free() can stop it.
 */
static void *proxy_thread(void *opaque)
{
    MigProxy *p = opaque;
    g_autofree uint8_t *buf = g_malloc(PROXY_BUF);
    int pairs[PROXY_MAX_PAIRS][2];
    bool eof[PROXY_MAX_PAIRS][2] = {{false}}; /* that side sent its FIN */
    int n = 0;
    bool up = true;

    while (up && !atomic_load(&p->stop)) {
        struct pollfd pfd[1 + 2 * PROXY_MAX_PAIRS];
        uint64_t cut = atomic_load(&p->cut_at);
        uint64_t sent = atomic_load(&p->bytes);
        int nfd = 0;

        if (sent >= cut) {
            break;
        }
        pfd[nfd++] = (struct pollfd){p->lfd, POLLIN, 0};
        for (int i = 0; i < n; i++) {
            /* a negative fd is ignored by poll(): a side that ended */
            pfd[nfd++] =
                (struct pollfd){eof[i][0] ? -1 : pairs[i][0], POLLIN, 0};
            pfd[nfd++] =
                (struct pollfd){eof[i][1] ? -1 : pairs[i][1], POLLIN, 0};
        }
        if (poll(pfd, nfd, 100) <= 0) {
            continue;
        }
        if (pfd[0].revents && n < PROXY_MAX_PAIRS) {
            int a = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
            int b = a >= 0 ? unix_socket(p->target, false) : -1;
            if (a >= 0 && b < 0) {
                close(a);
            } else if (a >= 0) {
                pairs[n][0] = a;
                pairs[n][1] = b;
                n++;
            }
        }
        for (int i = 0; up && i < (nfd - 1) / 2; i++) {
            /* source -> destination: counted, cut at the offset */
            if (pfd[1 + 2 * i].revents) {
                size_t want = PROXY_BUF;
                if (cut - sent < want) {
                    want = (size_t)(cut - sent);
                }
                ssize_t r = read(pairs[i][0], buf, want);
                if (r == 0) {
                    /* a clean end passes through, the rest stays up */
                    eof[i][0] = true;
                    shutdown(pairs[i][1], SHUT_WR);
                } else {
                    up = r > 0 && write_all(pairs[i][1], buf, (size_t)r);
                }
                if (up && r > 0) {
                    atomic_fetch_add(&p->bytes, (uint64_t)r);
                    sent += (uint64_t)r;
                }
            }
            if (up && pfd[2 + 2 * i].revents) {
                ssize_t r = read(pairs[i][1], buf, PROXY_BUF);
                if (r == 0) {
                    eof[i][1] = true;
                    shutdown(pairs[i][0], SHUT_WR);
                } else {
                    up = r > 0 && write_all(pairs[i][0], buf, (size_t)r);
                }
            }
        }
    }
    cut_all(pairs, n);
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
