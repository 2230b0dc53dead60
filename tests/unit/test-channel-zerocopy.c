/*
 * Unit tests for zero-copy sends (migration/channel-zerocopy.c) on real
 * TCP loopback connections: whole sends, partial sends resumed mid-iovec
 * (small buffers, a slow reader), completions reaped and counted as
 * copied (loopback always copies), a flush that waits for the last
 * completion, ENOBUFS from the locked-memory limit (waited out, or
 * refused when nothing is in flight), and the refusal on sockets without
 * MSG_ZEROCOPY. A reader thread checks the bytes; only the main thread
 * asserts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <glib.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "migration/channel-internal.h"
#include "migration/channel-zerocopy.h"

#define PAGE 4096

/* A loopback connection: `tx` wrapped in a MigChannel, `rx` a plain fd. */
typedef struct Pair {
    MigChannel *tx;
    int rx;
} Pair;

/* rcvbuf/sndbuf: 0 keeps the kernel's; set before connect (window scale). */
static Pair pair_new(int rcvbuf, int sndbuf)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    GError *err = NULL;
    Pair p;

    assert_true(l >= 0 && c >= 0);
    if (rcvbuf) {
        assert_int_equal(
            setsockopt(l, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    }
    if (sndbuf) {
        assert_int_equal(
            setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    }
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    p.rx = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(p.rx >= 0);
    close(l);
    p.tx = mig_channel_new(mig_channel_ops(MIG_URI_TCP), c, &err);
    assert_non_null(p.tx);
    return p;
}

static void pair_free(Pair *p)
{
    mig_channel_close(p->tx, NULL);
    close(p->rx);
}

/* `len` bytes of a pattern that differs at every offset and seed. */
static guint8 *pattern(size_t len, guint32 seed)
{
    guint8 *b = g_malloc(len);
    GRand *r = g_rand_new_with_seed(seed);

    for (size_t i = 0; i < len; i += 4) {
        guint32 v = g_rand_int(r);
        memcpy(b + i, &v, MIN(4, len - i));
    }
    g_rand_free(r);
    return b;
}

/* Cuts buf into iovecs of `piece` bytes (the last may be shorter). */
static struct iovec *iov_cut(guint8 *buf, size_t len, size_t piece, int *cnt)
{
    struct iovec *iov = g_new(struct iovec, len / piece + 1);

    *cnt = 0;
    for (size_t off = 0; off < len; off += piece) {
        iov[*cnt].iov_base = buf + off;
        iov[*cnt].iov_len = MIN(piece, len - off);
        (*cnt)++;
    }
    return iov;
}

/* ---- the reader thread --------------------------------------------------- */

typedef struct Reader {
    int fd;
    const guint8 *want;
    size_t len;
    size_t chunk;              /* bytes per read */
    int delay_us;              /* sleep between reads (slow reader) */
    int start_delay_ms;        /* sleep before the first read */
    _Atomic gint64 started_us; /* monotonic time of the first read */
    atomic_size_t got;
    char *error; /* NULL: all bytes read and equal */
    GThread *thread;
} Reader;

static gpointer reader_run(gpointer opaque)
{
    Reader *r = opaque;
    guint8 *buf = g_malloc(r->chunk);

    g_usleep((gulong)r->start_delay_ms * 1000);
    atomic_store(&r->started_us, g_get_monotonic_time());
    while (atomic_load(&r->got) < r->len) {
        size_t want = MIN(r->chunk, r->len - atomic_load(&r->got));
        ssize_t n = read(r->fd, buf, want);

        if (n <= 0) {
            r->error = g_strdup_printf("read: %zd (%s) after %zu bytes", n,
                                       g_strerror(errno), atomic_load(&r->got));
            break;
        }
        if (memcmp(buf, r->want + atomic_load(&r->got), (size_t)n)) {
            r->error =
                g_strdup_printf("bytes differ at %zu", atomic_load(&r->got));
            break;
        }
        atomic_fetch_add(&r->got, (size_t)n);
        if (r->delay_us) {
            g_usleep((gulong)r->delay_us);
        }
    }
    g_free(buf);
    return NULL;
}

static void reader_start(Reader *r)
{
    atomic_init(&r->got, 0);
    atomic_init(&r->started_us, 0);
    r->thread = g_thread_new("reader", reader_run, r);
}

static void reader_check(Reader *r)
{
    g_thread_join(r->thread);
    if (r->error) {
        fail_msg("reader: %s", r->error);
    }
    assert_int_equal(atomic_load(&r->got), r->len);
}

/* ---- cases --------------------------------------------------------------- */

/*
 * A whole send of pages (an iovec each), reaped and flushed: every send
 * completed, every completion copied (loopback), the flush says so once
 * and the next flush, with nothing sent, does not.
 */
static void test_whole_send(void **state)
{
    size_t len = 256 * PAGE;
    guint8 *buf = pattern(len, 1);
    Pair p = pair_new(0, 0);
    Reader r = {.fd = p.rx, .want = buf, .len = len, .chunk = 65536};
    GError *err = NULL;
    MigZeroCopy *z = mig_zerocopy_new(p.tx, &err);
    MigZeroCopyStats st;
    struct iovec *iov;
    int cnt;
    bool copied = false;

    assert_non_null(z);
    reader_start(&r);
    iov = iov_cut(buf, len, PAGE, &cnt);
    assert_true(mig_zerocopy_writev_all(z, iov, cnt, &err));
    assert_true(mig_zerocopy_flush(z, &copied, &err));
    mig_zerocopy_stats(z, &st);
    assert_true(st.queued >= 1);
    assert_int_equal(st.completed, st.queued);
    assert_int_equal(mig_zerocopy_pending(z), 0);
    /* loopback: the receiving side cannot keep the sender's pages */
    assert_int_equal(st.copied, st.completed);
    assert_true(copied);
    assert_true(mig_zerocopy_flush(z, &copied, &err));
    assert_false(copied);
    reader_check(&r);
    mig_zerocopy_free(z);
    pair_free(&p);
    g_free(iov);
    g_free(buf);
}

/*
 * Small socket buffers and a reader that takes 1000 bytes at a time with
 * a pause: sendmsg moves a little each time, ending inside an iovec
 * (iovecs of 3000 bytes, so ends rarely fall on a boundary). Every byte
 * arrives once, in order.
 */
static void test_partial_sends(void **state)
{
    size_t len = 1 << 20;
    guint8 *buf = pattern(len, 2);
    Pair p = pair_new(32768, 32768);
    Reader r = {
        .fd = p.rx, .want = buf, .len = len, .chunk = 1000, .delay_us = 20};
    GError *err = NULL;
    MigZeroCopy *z = mig_zerocopy_new(p.tx, &err);
    MigZeroCopyStats st;
    struct iovec *iov;
    int cnt;

    assert_non_null(z);
    reader_start(&r);
    iov = iov_cut(buf, len, 3000, &cnt);
    assert_true(mig_zerocopy_writev_all(z, iov, cnt, &err));
    assert_true(mig_zerocopy_flush(z, NULL, &err));
    mig_zerocopy_stats(z, &st);
    /* many sendmsg calls, each took an id and completed */
    assert_true(st.queued > 8);
    assert_int_equal(st.completed, st.queued);
    reader_check(&r);
    mig_zerocopy_free(z);
    pair_free(&p);
    g_free(iov);
    g_free(buf);
}

/*
 * The flush waits for the last completion: the reader sleeps 300 ms
 * before its first read, with a receive window smaller than the data,
 * so the sends cannot complete before it reads. The flush may only
 * return after that.
 */
static void test_flush_waits(void **state)
{
    size_t len = 2 << 20;
    guint8 *buf = pattern(len, 3);
    Pair p = pair_new(65536, 4 << 20);
    Reader r = {.fd = p.rx,
                .want = buf,
                .len = len,
                .chunk = 65536,
                .start_delay_ms = 300};
    GError *err = NULL;
    MigZeroCopy *z = mig_zerocopy_new(p.tx, &err);
    struct iovec *iov;
    gint64 done;
    int cnt;

    assert_non_null(z);
    reader_start(&r);
    iov = iov_cut(buf, len, PAGE, &cnt);
    assert_true(mig_zerocopy_writev_all(z, iov, cnt, &err));
    assert_true(mig_zerocopy_pending(z) > 0);
    assert_true(mig_zerocopy_flush(z, NULL, &err));
    done = g_get_monotonic_time();
    /* the reader had begun: a flush that did not wait fails here */
    assert_true(atomic_load(&r.started_us) > 0);
    assert_true(atomic_load(&r.started_us) <= done);
    assert_int_equal(mig_zerocopy_pending(z), 0);
    reader_check(&r);
    mig_zerocopy_free(z);
    pair_free(&p);
    g_free(iov);
    g_free(buf);
}

/* ---- ENOBUFS: the locked-memory limit ------------------------------------ */

/*
 * The kernel charges pages pinned by MSG_ZEROCOPY to RLIMIT_MEMLOCK
 * unless the thread has CAP_IPC_LOCK. Lower both for this thread and
 * process only (nothing system-wide); restored by limit_restore().
 */
typedef struct Limit {
    struct rlimit old;
    bool cap_dropped;
    struct __user_cap_data_struct caps[2];
} Limit;

static bool limit_set(Limit *l, rlim_t bytes)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct rlimit r = {bytes, bytes};

    assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &l->old), 0);
    assert_int_equal(syscall(SYS_capget, &h, l->caps), 0);
    l->cap_dropped = false;
    if (l->caps[0].effective & (1u << CAP_IPC_LOCK)) {
        struct __user_cap_data_struct d[2] = {l->caps[0], l->caps[1]};

        d[0].effective &= ~(1u << CAP_IPC_LOCK);
        if (syscall(SYS_capset, &h, d) < 0) {
            return false;
        }
        l->cap_dropped = true;
    }
    r.rlim_max = l->old.rlim_max; /* keep the way back up */
    return setrlimit(RLIMIT_MEMLOCK, &r) == 0;
}

static void limit_restore(Limit *l)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};

    assert_int_equal(setrlimit(RLIMIT_MEMLOCK, &l->old), 0);
    if (l->cap_dropped) {
        assert_int_equal(syscall(SYS_capset, &h, l->caps), 0);
    }
}

/* Nothing in flight and no page may be locked: a clear error at once. */
static void test_enobufs_refused(void **state)
{
    size_t len = 32 * PAGE;
    guint8 *buf = pattern(len, 4);
    Pair p = pair_new(0, 0);
    GError *err = NULL;
    MigZeroCopy *z = mig_zerocopy_new(p.tx, &err);
    struct iovec *iov;
    Limit lim;
    int cnt;
    bool ok;

    assert_non_null(z);
    if (!limit_set(&lim, 0)) {
        limit_restore(&lim);
        skip();
    }
    iov = iov_cut(buf, len, PAGE, &cnt);
    ok = mig_zerocopy_writev_all(z, iov, cnt, &err);
    limit_restore(&lim);
    assert_false(ok);
    assert_non_null(strstr(err->message, "Process can't lock enough memory "
                                         "for using MSG_ZEROCOPY"));
    assert_non_null(strstr(err->message, "RLIMIT_MEMLOCK"));
    g_error_free(err);
    mig_zerocopy_free(z);
    pair_free(&p);
    g_free(iov);
    g_free(buf);
}

/*
 * The pinned pages are charged to the real uid, together with whatever
 * other processes of that uid have in flight. As root, this thread takes
 * a uid of its own for the test (real and effective; the saved uid stays
 * 0 to come back), which has nothing locked and, not being root, no
 * capabilities in effect. Only this thread: the raw syscall, not
 * glibc's, which would change every thread.
 */
static bool fresh_uid_enter(void)
{
    uid_t uid = 0x7f000000u | ((uid_t)getpid() & 0xffffff);

    return geteuid() == 0 && syscall(SYS_setresuid, uid, uid, 0) == 0;
}

static void fresh_uid_leave(void)
{
    assert_int_equal(syscall(SYS_setresuid, 0, 0, 0), 0);
}

/*
 * Not root: what the uid has locked already counts against the limit
 * too, and other processes of the same uid may hold some: find it. A one-page
 * send is charged 3 pages; the smallest limit under which it goes
 * through, less 3, is what is locked now. -1 if the limit cannot be set.
 */
static long locked_pages_now(Limit *lim)
{
    struct rlimit r;
    long lo = 0, hi; /* pages; lo fails, hi works */
    guint8 *page = pattern(PAGE, 6);
    Pair p = pair_new(0, 0);
    GError *err = NULL;
    MigZeroCopy *z = mig_zerocopy_new(p.tx, &err);

    assert_non_null(z);
    assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &r), 0);
    hi = r.rlim_max == RLIM_INFINITY ? 1 << 20 : (long)(r.rlim_max / PAGE);
    while (hi - lo > 1) {
        long mid = (lo + hi) / 2;
        struct iovec iov = {page, PAGE};
        char sink[PAGE];
        bool ok;

        if (!limit_set(lim, (rlim_t)mid * PAGE)) {
            limit_restore(lim);
            hi = -1;
            break;
        }
        ok = mig_zerocopy_writev_all(z, &iov, 1, &err);
        limit_restore(lim);
        g_clear_error(&err);
        if (ok) {
            assert_true(mig_zerocopy_flush(z, NULL, &err));
            assert_int_equal(recv(p.rx, sink, PAGE, MSG_WAITALL), PAGE);
            hi = mid;
        } else {
            lo = mid;
        }
    }
    mig_zerocopy_free(z);
    pair_free(&p);
    g_free(page);
    return hi < 0 ? -1 : hi - 3;
}

/*
 * Room for one send in flight: sends of 64 pages (66 charged) under a
 * limit 100 pages above what is locked already, to a reader that starts
 * late behind a window smaller than one send. The second send gets ENOBUFS
 * while the first is pinned; the writer waits for its completion and goes on;
 * every byte arrives.
 */
static void test_enobufs_waits(void **state)
{
    size_t piece = 64 * PAGE, len = 8 * piece;
    guint8 *buf = pattern(len, 5);
    Pair p = pair_new(65536, 4 << 20);
    Reader r = {.fd = p.rx,
                .want = buf,
                .len = len,
                .chunk = 65536,
                .start_delay_ms = 200};
    GError *err = NULL;
    MigZeroCopy *z = mig_zerocopy_new(p.tx, &err);
    MigZeroCopyStats st;
    Limit lim;
    bool fresh = geteuid() == 0;
    long base = fresh ? 0 : locked_pages_now(&lim);
    bool ok = true;

    assert_non_null(z);
    if (base < 0 || !limit_set(&lim, (rlim_t)(base + 100) * PAGE) ||
        (fresh && !fresh_uid_enter())) {
        limit_restore(&lim);
        pair_free(&p);
        skip();
    }
    reader_start(&r);
    for (size_t off = 0; ok && off < len; off += piece) {
        int cnt;
        struct iovec *iov = iov_cut(buf + off, piece, PAGE, &cnt);

        ok = mig_zerocopy_writev_all(z, iov, cnt, &err);
        g_free(iov);
    }
    ok = ok && mig_zerocopy_flush(z, NULL, &err);
    if (fresh) {
        fresh_uid_leave();
    }
    limit_restore(&lim);
    if (!ok) {
        fail_msg("%s (%ld pages locked before)", err->message, base);
    }
    mig_zerocopy_stats(z, &st);
    assert_true(st.enobufs_waits > 0);
    assert_int_equal(st.completed, st.queued);
    reader_check(&r);
    mig_zerocopy_free(z);
    pair_free(&p);
    g_free(buf);
}

/* ---- refusals ------------------------------------------------------------ */

/* Linux has MSG_ZEROCOPY for TCP only: a unix socket is refused, naming it. */
static void test_unix_refused(void **state)
{
    int sv[2];
    GError *err = NULL;
    MigChannel *c;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c = mig_channel_new(mig_channel_ops(MIG_URI_UNIX), sv[0], &err);
    assert_non_null(c);
    assert_null(mig_zerocopy_new(c, &err));
    assert_non_null(strstr(err->message, "Requested Zero Copy feature is not "
                                         "available: "));
    assert_non_null(strstr(err->message, g_strerror(EOPNOTSUPP)));
    assert_non_null(strstr(err->message, "unix:"));
    g_error_free(err);
    mig_channel_close(c, NULL);
    close(sv[1]);
}

/* Not a socket at all (an exec: pipe, a file): refused too. */
static void test_pipe_refused(void **state)
{
    int fds[2];
    GError *err = NULL;
    MigChannel *c;

    assert_int_equal(pipe(fds), 0);
    c = mig_channel_new(mig_channel_ops(MIG_URI_EXEC), fds[1], &err);
    assert_non_null(c);
    assert_null(mig_zerocopy_new(c, &err));
    assert_non_null(strstr(err->message, "needs a TCP socket"));
    g_error_free(err);
    c->ops = mig_channel_ops(MIG_URI_FD); /* no child to reap */
    mig_channel_close(c, NULL);
    close(fds[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_send),
        cmocka_unit_test(test_partial_sends),
        cmocka_unit_test(test_flush_waits),
        cmocka_unit_test(test_enobufs_refused),
        cmocka_unit_test(test_enobufs_waits),
        cmocka_unit_test(test_unix_refused),
        cmocka_unit_test(test_pipe_refused),
    };

    migration_channels_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
