/*
 * Benchmark: four ways to send guest pages over one loopback TCP
 * connection, in the migration stream's layout (an 8-byte header before
 * every 4 KiB page), to a receiver that reads like godwit's destination
 * (one readv of 64 header + page pairs straight into its RAM).
 *
 *   bench-send-path [MiB] [runs]      (default 1024 MiB, 3 runs)
 *
 * writev:   what godwit sends: 128 header + page pairs per writev, the
 *           kernel copies each page into the socket.
 * splice:   the pages by reference: vmsplice into a 1 MiB pipe, splice
 *           from the pipe into the socket (no copy on the sending side).
 * zerocopy: sendmsg(MSG_ZEROCOPY) of the same iovecs, completions reaped
 *           from the error queue (multifd's zero-copy-send, one stream).
 * uring-zc: io_uring IORING_OP_SENDMSG_ZC of the same iovecs (MSG_WAITALL,
 *           one send in flight, the buffers' release notifications reaped
 *           as they come).
 *
 * The headers of the two by-reference ways sit in one array that is never
 * rewritten (the kernel may read them after the call returns), which
 * flatters them: a real sender would have to recycle header memory. The
 * runs alternate the ways. Per way: median GB/s and CPU seconds per GB of
 * pages: the receiving thread's, and the rest of the process's (the
 * sender with io_uring's workers; loopback's delivery work runs in the
 * sender's thread). Every run checks the received bytes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <linux/errqueue.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

#define PAGE 4096
#define SEND_PAGES 128
#define RECV_PAGES 64
#define PIPE_BYTES (1 << 20)
#define MAX_RUNS 15

enum { WAY_WRITEV, WAY_SPLICE, WAY_ZEROCOPY, WAY_URING_ZC, N_WAYS };
static const char *const way_name[N_WAYS] = {"writev", "splice", "zerocopy",
                                             "uring-zc"};

static size_t npages;
static uint8_t *src, *dst;
static uint64_t *hdr; /* hdr[i] = i, the header sent before page i */
static int listen_fd;
static struct sockaddr_in addr;
static double recv_cpu;

static double cpu_seconds(clockid_t clock)
{
    struct timespec t;

    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double thread_cpu(void)
{
    return cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Consumes n bytes of the iovec list *iov (*cnt entries). */
static void advance(struct iovec **iov, int *cnt, size_t n)
{
    while (n > 0) {
        if (n >= (*iov)->iov_len) {
            n -= (*iov)->iov_len;
            (*iov)++;
            (*cnt)--;
        } else {
            (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
            (*iov)->iov_len -= n;
            n = 0;
        }
    }
}

/* Header + page pairs [first, first + n) as iovecs; returns the count. */
static int pairs(struct iovec *iov, uint64_t *h, uint8_t *pages, size_t first,
                 size_t n)
{
    for (size_t i = 0; i < n; i++) {
        iov[2 * i] = (struct iovec){&h[first + i], 8};
        iov[2 * i + 1] = (struct iovec){pages + (first + i) * PAGE, PAGE};
    }
    return (int)(2 * n);
}

static void *receiver(void *arg)
{
    static uint64_t got[RECV_PAGES];
    struct iovec iov[2 * RECV_PAGES];
    int fd = accept(listen_fd, NULL, NULL);
    double c0 = thread_cpu();

    (void)arg;
    if (fd < 0) {
        die("accept");
    }
    for (size_t i = 0; i < npages; i += RECV_PAGES) {
        size_t n = MIN(RECV_PAGES, npages - i);
        int cnt = pairs(iov, got, dst, i, n);
        struct iovec *v = iov;

        for (size_t j = 0; j < n; j++) {
            iov[2 * j].iov_base = &got[j];
        }
        while (cnt > 0) {
            ssize_t r = readv(fd, v, cnt);
            if (r <= 0) {
                die("readv");
            }
            advance(&v, &cnt, (size_t)r);
        }
        for (size_t j = 0; j < n; j++) {
            if (got[j] != i + j) {
                fprintf(stderr, "page %zu: header %llu\n", i + j,
                        (unsigned long long)got[j]);
                exit(1);
            }
        }
    }
    recv_cpu = thread_cpu() - c0;
    close(fd);
    return NULL;
}

static void send_writev(int fd, struct iovec *v, int cnt)
{
    while (cnt > 0) {
        ssize_t n = writev(fd, v, cnt);
        if (n < 0) {
            die("writev");
        }
        advance(&v, &cnt, (size_t)n);
    }
}

static void send_splice(int fd, const int pipe_fd[2], struct iovec *v, int cnt)
{
    size_t in_pipe = 0;

    while (cnt > 0 || in_pipe > 0) {
        if (cnt > 0) {
            ssize_t n = vmsplice(pipe_fd[1], v, cnt, SPLICE_F_NONBLOCK);
            if (n < 0 && errno != EAGAIN) {
                die("vmsplice");
            }
            if (n > 0) {
                in_pipe += n;
                advance(&v, &cnt, (size_t)n);
            }
        }
        if (in_pipe > 0) {
            ssize_t n = splice(pipe_fd[0], NULL, fd, NULL, in_pipe,
                               SPLICE_F_MOVE | (cnt ? SPLICE_F_MORE : 0));
            if (n < 0) {
                die("splice");
            }
            in_pipe -= n;
        }
    }
}

/* Reads the completions queued so far; returns how many sends they end. */
static uint32_t reap(int fd)
{
    uint32_t done = 0;

    for (;;) {
        char control[128];
        struct msghdr msg = {.msg_control = control,
                             .msg_controllen = sizeof(control)};
        struct cmsghdr *cm;

        if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
            if (errno == EAGAIN) {
                return done;
            }
            die("recvmsg(MSG_ERRQUEUE)");
        }
        for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            struct sock_extended_err e;
            memcpy(&e, CMSG_DATA(cm), sizeof(e));
            if (e.ee_origin == SO_EE_ORIGIN_ZEROCOPY) {
                done += e.ee_data - e.ee_info + 1;
            }
        }
    }
}

static void send_zerocopy(int fd, struct iovec *v, int cnt, uint32_t *sends,
                          uint32_t *done)
{
    while (cnt > 0) {
        struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)cnt};
        ssize_t n = sendmsg(fd, &msg, MSG_ZEROCOPY | MSG_NOSIGNAL);
        if (n < 0 && errno != ENOBUFS) {
            die("sendmsg(MSG_ZEROCOPY)");
        }
        if (n > 0) {
            (*sends)++;
            advance(&v, &cnt, (size_t)n);
        }
        *done += reap(fd); /* ENOBUFS: too many completions unread */
    }
}

/*
 * One IORING_OP_SENDMSG_ZC of the whole list; MSG_WAITALL has io_uring
 * resend the rest of a partial send itself. The completion with
 * IORING_CQE_F_MORE is the send's; a second one (IORING_CQE_F_NOTIF)
 * comes when the kernel lets go of the pages. *notifs counts those owed.
 */
static void send_uring_zc(struct io_uring *ring, int fd, struct iovec *v,
                          int cnt, int *notifs)
{
    struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)cnt};
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    size_t want = 0;
    bool sent = false;

    for (int i = 0; i < cnt; i++) {
        want += v[i].iov_len;
    }
    io_uring_prep_sendmsg_zc(sqe, fd, &msg, MSG_WAITALL | MSG_NOSIGNAL);
    io_uring_submit(ring);
    while (!sent) {
        struct io_uring_cqe *cqe;
        int r = io_uring_wait_cqe(ring, &cqe);
        if (r < 0) {
            errno = -r;
            die("io_uring_wait_cqe");
        }
        if (cqe->flags & IORING_CQE_F_NOTIF) {
            (*notifs)--;
        } else {
            if (cqe->res < 0 || (size_t)cqe->res != want) {
                errno = cqe->res < 0 ? -cqe->res : EIO;
                die("IORING_OP_SENDMSG_ZC");
            }
            if (cqe->flags & IORING_CQE_F_MORE) {
                (*notifs)++;
            }
            sent = true;
        }
        io_uring_cqe_seen(ring, cqe);
    }
}

static void uring_wait_notifs(struct io_uring *ring, int *notifs)
{
    while (*notifs > 0) {
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe(ring, &cqe) < 0) {
            die("io_uring_wait_cqe");
        }
        if (cqe->flags & IORING_CQE_F_NOTIF) {
            (*notifs)--;
        }
        io_uring_cqe_seen(ring, cqe);
    }
}

static void one_run(int way, double *gbs, double *cpu_src, double *cpu_dst)
{
    struct iovec iov[2 * SEND_PAGES];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int pipe_fd[2] = {-1, -1};
    uint32_t sends = 0, done = 0;
    struct io_uring ring;
    int notifs = 0;
    int one = 1;
    pthread_t th;
    gint64 t0;
    double c0;

    memset(dst, 0, npages * PAGE);
    if (way == WAY_SPLICE) {
        if (pipe(pipe_fd) < 0) {
            die("pipe");
        }
        if (fcntl(pipe_fd[1], F_SETPIPE_SZ, PIPE_BYTES) < 0) {
            die("F_SETPIPE_SZ");
        }
    }
    if (way == WAY_ZEROCOPY &&
        setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) < 0) {
        die("SO_ZEROCOPY");
    }
    if (way == WAY_URING_ZC) {
        int r = io_uring_queue_init(64, &ring, 0);
        if (r < 0) {
            errno = -r;
            die("io_uring_queue_init");
        }
    }
    pthread_create(&th, NULL, receiver, NULL);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        die("connect");
    }
    t0 = g_get_monotonic_time();
    c0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
    for (size_t i = 0; i < npages; i += SEND_PAGES) {
        int cnt = pairs(iov, hdr, src, i, MIN(SEND_PAGES, npages - i));
        if (way == WAY_WRITEV) {
            send_writev(fd, iov, cnt);
        } else if (way == WAY_SPLICE) {
            send_splice(fd, pipe_fd, iov, cnt);
        } else if (way == WAY_ZEROCOPY) {
            send_zerocopy(fd, iov, cnt, &sends, &done);
        } else {
            send_uring_zc(&ring, fd, iov, cnt, &notifs);
        }
    }
    if (way == WAY_URING_ZC) {
        uring_wait_notifs(&ring, &notifs);
        io_uring_queue_exit(&ring);
    }
    while (done < sends) {
        struct pollfd p = {.fd = fd};
        poll(&p, 1, 100); /* the error queue shows as POLLERR */
        done += reap(fd);
    }
    shutdown(fd, SHUT_WR);
    pthread_join(th, NULL);
    /* The process less the receiver: the sender and io_uring's workers. */
    *cpu_src = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0 - recv_cpu;
    *gbs = npages * (double)(PAGE + 8) / ((g_get_monotonic_time() - t0) / 1e6) /
           1e9;
    *cpu_src /= npages * (double)PAGE / 1e9;
    *cpu_dst = recv_cpu / (npages * (double)PAGE / 1e9);
    if (memcmp(src, dst, npages * PAGE) != 0) {
        fprintf(stderr, "%s: the pages received differ\n", way_name[way]);
        exit(1);
    }
    close(fd);
    if (pipe_fd[0] >= 0) {
        close(pipe_fd[0]);
        close(pipe_fd[1]);
    }
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    double gbs[N_WAYS][MAX_RUNS], cs[N_WAYS][MAX_RUNS], cd[N_WAYS][MAX_RUNS];
    socklen_t len = sizeof(addr);
    uint64_t x = 0x9e3779b97f4a7c15ULL;

    if (mib == 0 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench-send-path [MiB] [runs 1..%d]\n",
                MAX_RUNS);
        return 2;
    }
    npages = mib * 256;
    /* Shared memory as guest RAM is; both populated (no faults timed). */
    src = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    dst = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    hdr = g_new(uint64_t, npages);
    if (src == MAP_FAILED || dst == MAP_FAILED) {
        die("mmap");
    }
    for (size_t i = 0; i < npages * PAGE / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((uint64_t *)src)[i] = x; /* incompressible, no zero pages */
    }
    for (size_t i = 0; i < npages; i++) {
        hdr[i] = i;
    }
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        getsockname(listen_fd, (struct sockaddr *)&addr, &len) < 0 ||
        listen(listen_fd, 1) < 0) {
        die("listen");
    }
    for (int r = 0; r < runs; r++) {
        for (int w = 0; w < N_WAYS; w++) {
            one_run(w, &gbs[w][r], &cs[w][r], &cd[w][r]);
        }
    }
    printf("| send path | GB/s | CPU src s/GB | CPU dst s/GB |\n");
    printf("|---|---:|---:|---:|\n");
    for (int w = 0; w < N_WAYS; w++) {
        printf("| %s | %.2f | %.3f | %.3f |\n", way_name[w],
               median(gbs[w], runs), median(cs[w], runs), median(cd[w], runs));
    }
    return 0;
}
