/* The migration fault-injection proxy: see mig-proxy.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "mig-proxy.h"

#define PROXY_BUF 65536

struct MigProxy {
    /* set at creation */
    int lfd;
    int wake[2]; /* a byte on wake[1]: free() is waiting */
    char *target;
    pthread_t thread;
    /* the fault, set by the test thread, read by the proxy thread */
    _Atomic int fault;         /* MigFault */
    _Atomic int fault_conn;    /* MIG_PROXY_ALL or a connection */
    _Atomic uint64_t fault_at; /* UINT64_MAX: none */
    /* written by the proxy thread, read by the test thread */
    _Atomic uint64_t bytes; /* source -> destination, all connections */
    _Atomic uint64_t conn_bytes[MIG_PROXY_MAX_CONNS];
    atomic_int nconns;
    atomic_bool fired;
    atomic_bool stop;
    atomic_bool done;
};

/* A forwarded connection: [0] the source's end, [1] the destination's. */
typedef struct ProxyPair {
    int fd[2];
    bool eof[2]; /* that side sent its FIN, or the pair was cut */
} ProxyPair;

/* A send that blocks wakes every 100 ms, so that free() is seen. */
static void set_send_timeout(int fd)
{
    struct timeval tv = {.tv_usec = 100000};

    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int unix_socket(const char *path, bool listen_on)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert(fd >= 0 && strlen(path) < sizeof(a.sun_path));
    strcpy(a.sun_path, path);
    set_send_timeout(fd);
    if (listen_on) {
        unlink(path);
        g_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
        g_assert(listen(fd, MIG_PROXY_MAX_CONNS) == 0);
    } else if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool write_all(MigProxy *px, int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
            !atomic_load(&px->stop)) {
            /* a peer that does not read: keep trying until freed */
            continue;
        }
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

/* Closes both ends of a pair: each peer sees its connection break. */
static void cut_pair(ProxyPair *pp)
{
    for (int j = 0; j < 2; j++) {
        if (pp->fd[j] >= 0) {
            shutdown(pp->fd[j], SHUT_RDWR);
            close(pp->fd[j]);
            pp->fd[j] = -1;
        }
        pp->eof[j] = true;
    }
}

/* Bytes the fault's counter still allows on connection `i` before firing. */
static uint64_t fault_room(MigProxy *p, int i)
{
    int conn = atomic_load(&p->fault_conn);
    uint64_t at = atomic_load(&p->fault_at);
    uint64_t n;

    if (atomic_load(&p->fired) || at == UINT64_MAX ||
        (conn != MIG_PROXY_ALL && conn != i)) {
        return UINT64_MAX;
    }
    n = conn == MIG_PROXY_ALL ? atomic_load(&p->bytes)
                              : atomic_load(&p->conn_bytes[conn]);
    return at > n ? at - n : 0;
}

/*
 * Fires the fault when its counter has reached the offset. Returns false
 * when the whole proxy is to end (a cut of every connection).
 */
static bool fault_check(MigProxy *p, ProxyPair *pairs, int n)
{
    int conn = atomic_load(&p->fault_conn);

    if (atomic_load(&p->fired) ||
        fault_room(p, conn == MIG_PROXY_ALL ? 0 : conn) != 0) {
        return true;
    }
    atomic_store(&p->fired, true);
    if (atomic_load(&p->fault) == MIG_FAULT_STALL) {
        return true;
    }
    if (conn == MIG_PROXY_ALL) {
        return false;
    }
    if (conn < n) {
        cut_pair(&pairs[conn]);
    }
    return true;
}

/* Forwards what one side of pair `i` has; false on a broken connection. */
static bool forward(MigProxy *p, ProxyPair *pairs, int i, int from,
                    uint8_t *buf)
{
    ProxyPair *pp = &pairs[i];
    size_t want = PROXY_BUF;
    ssize_t r;

    if (from == 0 && fault_room(p, i) < want) {
        want = (size_t)fault_room(p, i);
    }
    if (want == 0) {
        return true;
    }
    r = read(pp->fd[from], buf, want);
    if (r < 0 && errno == EINTR) {
        return true;
    }
    if (r == 0) {
        /* a clean end passes through, the rest stays up */
        pp->eof[from] = true;
        shutdown(pp->fd[!from], SHUT_WR);
        return true;
    }
    if (r < 0 || !write_all(p, pp->fd[!from], buf, (size_t)r)) {
        return false;
    }
    if (from == 0) {
        atomic_fetch_add(&p->conn_bytes[i], (uint64_t)r);
        atomic_fetch_add(&p->bytes, (uint64_t)r);
    }
    return true;
}

static void accept_one(MigProxy *p, ProxyPair *pairs, int *n)
{
    int a = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
    int b = a >= 0 ? unix_socket(p->target, false) : -1;

    if (a >= 0 && b < 0) {
        close(a);
    } else if (a >= 0) {
        set_send_timeout(a);
        pairs[*n] = (ProxyPair){{a, b}, {false, false}};
        (*n)++;
        atomic_store(&p->nconns, *n);
    }
}

/*
 * Forwards every connection made to the listener to a new connection to
 * the target; 50 ms polls so that a new fault is seen (free() wakes it).
 */
static void *proxy_thread(void *opaque)
{
    MigProxy *p = opaque;
    g_autofree uint8_t *buf = g_malloc(PROXY_BUF);
    ProxyPair pairs[MIG_PROXY_MAX_CONNS];
    bool up = true;
    int n = 0;

    while (up && !atomic_load(&p->stop)) {
        struct pollfd pfd[2 + 2 * MIG_PROXY_MAX_CONNS];
        int nfd = 0;

        if (!fault_check(p, pairs, n)) {
            break;
        }
        if (atomic_load(&p->fired) &&
            atomic_load(&p->fault) == MIG_FAULT_STALL) {
            /* neither read nor write nor accept: a peer gone silent */
            struct pollfd w = {p->wake[0], POLLIN, 0};
            poll(&w, 1, 50);
            continue;
        }
        pfd[nfd++] =
            (struct pollfd){n < MIG_PROXY_MAX_CONNS ? p->lfd : -1, POLLIN, 0};
        pfd[nfd++] = (struct pollfd){p->wake[0], POLLIN, 0};
        for (int i = 0; i < n; i++) {
            /* a negative fd is ignored by poll(): a side that ended */
            for (int j = 0; j < 2; j++) {
                pfd[nfd++] = (struct pollfd){
                    pairs[i].eof[j] ? -1 : pairs[i].fd[j], POLLIN, 0};
            }
        }
        if (poll(pfd, nfd, 50) <= 0) {
            continue;
        }
        if (pfd[0].revents) {
            accept_one(p, pairs, &n);
        }
        for (int i = 0; up && i < (nfd - 2) / 2; i++) {
            for (int j = 0; up && j < 2; j++) {
                if (pfd[2 + 2 * i + j].revents && !pairs[i].eof[j]) {
                    up = forward(p, pairs, i, j, buf);
                }
            }
        }
    }
    for (int i = 0; i < n; i++) {
        cut_pair(&pairs[i]);
    }
    atomic_store(&p->done, true);
    return NULL;
}

MigProxy *mig_proxy_new(const char *listen_path, const char *target)
{
    MigProxy *p = g_new0(MigProxy, 1);

    p->lfd = unix_socket(listen_path, true);
    g_assert(pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) == 0);
    p->target = g_strdup(target);
    atomic_init(&p->fault_at, UINT64_MAX);
    atomic_init(&p->fault_conn, MIG_PROXY_ALL);
    g_assert(pthread_create(&p->thread, NULL, proxy_thread, p) == 0);
    return p;
}

uint64_t mig_proxy_bytes(MigProxy *p)
{
    return atomic_load(&p->bytes);
}

uint64_t mig_proxy_conn_bytes(MigProxy *p, int conn)
{
    g_assert(conn >= 0 && conn < MIG_PROXY_MAX_CONNS);
    return atomic_load(&p->conn_bytes[conn]);
}

int mig_proxy_conns(MigProxy *p)
{
    return atomic_load(&p->nconns);
}

void mig_proxy_fault_at(MigProxy *p, MigFault fault, int conn, uint64_t offset)
{
    g_assert(conn == MIG_PROXY_ALL ||
             (conn >= 0 && conn < MIG_PROXY_MAX_CONNS));
    /* disarmed while the three fields change */
    atomic_store(&p->fault_at, UINT64_MAX);
    atomic_store(&p->fault, fault);
    atomic_store(&p->fault_conn, conn);
    atomic_store(&p->fault_at, offset);
}

void mig_proxy_cut_at(MigProxy *p, uint64_t offset)
{
    mig_proxy_fault_at(p, MIG_FAULT_CUT, MIG_PROXY_ALL, offset);
}

bool mig_proxy_fired(MigProxy *p)
{
    return atomic_load(&p->fired);
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
    g_assert(write(p->wake[1], "", 1) == 1);
    pthread_join(p->thread, NULL);
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    g_free(p->target);
    g_free(p);
}

GRand *mig_fault_rand(const char *test)
{
    const char *env = g_getenv("GODWIT_FAULT_SEED");
    guint32 seed = env ? (guint32)strtoul(env, NULL, 10) : g_random_int();

    g_test_message("%s: seed %u (rerun with GODWIT_FAULT_SEED=%u)", test, seed,
                   seed);
    fprintf(stderr, "# %s: GODWIT_FAULT_SEED=%u\n", test, seed);
    return g_rand_new_with_seed(seed);
}

uint64_t mig_fault_offset(GRand *r, uint64_t max)
{
    g_assert(max >= 1);
    if (g_rand_boolean(r)) {
        /* a power-of-two scale, then a point within it */
        int bits = 64 - __builtin_clzll(max);
        int b = g_rand_int_range(r, 0, bits);
        uint64_t lo = 1ull << b, v;
        v = lo + (uint64_t)(g_rand_double(r) * (double)lo);
        return v > max ? max : v;
    }
    return 1 + (uint64_t)(g_rand_double(r) * (double)(max - 1));
}
