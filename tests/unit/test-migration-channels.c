/*
 * Unit tests for the migration transports (migration/channel*.c): the URI
 * table, real transfers over every transport (tcp v4/v6/names, unix, exec
 * both ways, file with and without offset, fd), and the cancel model:
 * shutdown from another thread, listener shutdown, one-shot accept, exec
 * exit statuses. Only the main thread asserts; helper threads report a
 * message that the main thread checks after joining them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../migration/channel-internal.h"
#include "migration-channel-xfer.h"

#define CANCEL_MAX_US 100000 /* shutdown must unblock within 100 ms */

static char *tmpdir;

/* ---- URI parsing --------------------------------------------------------- */

typedef struct UriCase {
    const char *uri;
    const char *error; /* NULL: accepted; else a substring of the error */
    MigUriKind kind;
    const char *a; /* tcp host, unix/file path, exec command, fd name */
    const char *port;
    uint64_t offset;
} UriCase;

static const UriCase uri_cases[] = {
    {"tcp:127.0.0.1:4444", NULL, MIG_URI_TCP, "127.0.0.1", "4444"},
    {"tcp:[::1]:4444", NULL, MIG_URI_TCP, "::1", "4444"},
    {"tcp:localhost:0", NULL, MIG_URI_TCP, "localhost", "0"},
    {"tcp::4444", NULL, MIG_URI_TCP, "", "4444"},
    {"tcp:[fe80::1%eth0]:5", NULL, MIG_URI_TCP, "fe80::1%eth0", "5"},
    {"tcp:host:http", NULL, MIG_URI_TCP, "host", "http"},
    {"unix:/tmp/mig.sock", NULL, MIG_URI_UNIX, "/tmp/mig.sock"},
    {"unix:/tmp/a:b,c", NULL, MIG_URI_UNIX, "/tmp/a:b,c"},
    {"exec:cat > /tmp/x", NULL, MIG_URI_EXEC, "cat > /tmp/x"},
    {"exec:gzip -c | ssh h 'cat > f'", NULL, MIG_URI_EXEC,
     "gzip -c | ssh h 'cat > f'"},
    {"file:/tmp/mig", NULL, MIG_URI_FILE, "/tmp/mig", NULL, 0},
    {"file:/tmp/mig,offset=4096", NULL, MIG_URI_FILE, "/tmp/mig", NULL, 4096},
    {"file:/tmp/mig,offset=1M", NULL, MIG_URI_FILE, "/tmp/mig", NULL, 1 << 20},
    {"fd:3", NULL, MIG_URI_FD, "3"},
    {"fd:migfd", NULL, MIG_URI_FD, "migfd"},
    {"tcp:host", "expected tcp:HOST:PORT"},
    {"tcp:[::1]", "expected tcp:HOST:PORT"},
    {"tcp:[::1]4444", "expected tcp:HOST:PORT"},
    {"tcp:::1:4444", "expected tcp:HOST:PORT"},
    {"tcp:", "expected tcp:HOST:PORT"},
    {"tcp:host:", "invalid port ''"},
    {"tcp:host:70000", "invalid port '70000'"},
    {"tcp:host:4444,ipv4=on", "invalid port '4444,ipv4=on'"},
    {"unix:", "empty unix socket path"},
    {"exec:", "empty exec command"},
    {"file:", "empty file name"},
    {"file:,offset=5", "empty file name"},
    {"file:x,offset=abc", "invalid offset"},
    {"file:x,offset=", "invalid offset"},
    {"file:x,size=1", "unknown option 'size=1'"},
    {"fd:", "empty file descriptor"},
    {"rdma:host:4444", "unsupported scheme 'rdma'"},
    {"TCP:host:4444", "unsupported scheme 'TCP'"},
    {"", "expected SCHEME:ADDRESS"},
    {"tcp", "expected SCHEME:ADDRESS"},
};

static const char *uri_field(const MigUri *u)
{
    switch (u->kind) {
    case MIG_URI_TCP:
        return u->host;
    case MIG_URI_UNIX:
    case MIG_URI_FILE:
        return u->path;
    case MIG_URI_EXEC:
        return u->command;
    case MIG_URI_FD:
        return u->fdname;
    default:
        return NULL;
    }
}

static void test_uri_parse(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(uri_cases); i++) {
        const UriCase *t = &uri_cases[i];
        g_autoptr(GError) err = NULL;
        MigUri u;
        bool ok = mig_uri_parse(t->uri, &u, &err);

        if (t->error) {
            if (ok || !strstr(err->message, t->error) ||
                !strstr(err->message, t->uri)) {
                fail_msg("'%s': expected error '%s', got %s", t->uri, t->error,
                         ok ? "success" : err->message);
            }
            continue;
        }
        if (!ok) {
            fail_msg("'%s' refused: %s", t->uri, err->message);
        }
        assert_int_equal(u.kind, t->kind);
        assert_string_equal(uri_field(&u), t->a);
        if (t->kind == MIG_URI_TCP) {
            assert_string_equal(u.port, t->port);
        }
        assert_int_equal(u.offset, t->offset);
        mig_uri_clear(&u);
        assert_null(u.host);
        assert_null(u.path);
    }
}

static void test_registry(void **state)
{
    static const char *const names[] = {"tcp", "unix", "exec", "file", "fd"};

    migration_channels_init(); /* a second call is harmless */
    for (int k = 0; k < MIG_URI__MAX; k++) {
        const MigChannelOps *ops = mig_channel_ops((MigUriKind)k);

        assert_non_null(ops);
        assert_string_equal(ops->scheme, names[k]);
    }
}

/* ---- transfers ----------------------------------------------------------- */

static void test_tcp_ipv4(void **state)
{
    MigListener *l = listen_ok("tcp:127.0.0.1:0");
    g_autofree char *addr = mig_listener_address(l);

    assert_true(g_str_has_prefix(addr, "tcp:127.0.0.1:"));
    assert_string_not_equal(addr, "tcp:127.0.0.1:0");
    mig_listener_close(l);
    xfer("tcp:127.0.0.1:0", NULL);
}

static void test_tcp_ipv6(void **state)
{
    g_autoptr(GError) err = NULL;
    MigListener *l = listen_uri("tcp:[::1]:0", &err);
    g_autofree char *addr = NULL;

    if (!l) {
        print_message("skipping tcp:[::1]: %s\n", err->message);
        skip();
    }
    addr = mig_listener_address(l);
    assert_true(g_str_has_prefix(addr, "tcp:[::1]:"));
    mig_listener_close(l);
    xfer("tcp:[::1]:0", NULL);
}

/* A host name on both sides; no host (all addresses) reached by IPv4. */
static void test_tcp_names(void **state)
{
    const char *names[] = {"tcp:localhost:0", "tcp::0"};

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        MigListener *l = listen_ok(names[i]);
        g_autofree char *addr = mig_listener_address(l);
        g_autofree char *to =
            g_strdup_printf("tcp:%s:%s", i == 0 ? "localhost" : "127.0.0.1",
                            strrchr(addr, ':') + 1);

        xfer_listener(l, to);
    }
}

static void test_unix(void **state)
{
    g_autofree char *path = g_build_filename(tmpdir, "mig.sock", NULL);
    g_autofree char *uri = g_strconcat("unix:", path, NULL);
    g_autofree char *addr = NULL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    g_autoptr(GError) err = NULL;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    MigListener *l;

    /* a stale socket of an earlier run is replaced */
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    l = listen_ok(uri);
    addr = mig_listener_address(l);
    assert_string_equal(addr, uri);
    /* only the owner may connect, whatever the umask */
    {
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
    mig_listener_close(l);
    assert_false(g_file_test(path, G_FILE_TEST_EXISTS)); /* removed */
    xfer(uri, NULL);
    assert_false(g_file_test(path, G_FILE_TEST_EXISTS));

    /* a file that is not a socket is left alone */
    assert_true(g_file_set_contents(path, "x", 1, NULL));
    assert_null(listen_uri(uri, &err));
    assert_non_null(strstr(err->message, "is not a socket"));
    g_clear_error(&err);
    g_unlink(path);
    assert_null(connect_uri(uri, &err));
    assert_non_null(strstr(err->message, g_strerror(ENOENT)));
}

static void test_exec_out(void **state)
{
    g_autofree char *path = g_build_filename(tmpdir, "exec out", NULL);
    g_autofree char *q = g_shell_quote(path);
    g_autofree char *uri = g_strdup_printf("exec:cat > %s", q);

    send_only(uri);
    check_file(path, 0, 0);
    g_unlink(path);
}

static void test_exec_in(void **state)
{
    g_autofree char *path = g_build_filename(tmpdir, "exec in", NULL);
    g_autofree char *q = g_shell_quote(path);
    g_autofree char *uri = g_strdup_printf("exec:cat %s", q);

    assert_true(
        g_file_set_contents(path, (char *)xfer_pattern, XFER_LEN, NULL));
    recv_only(uri);
    g_unlink(path);
}

static void test_file(void **state)
{
    g_autofree char *path = g_build_filename(tmpdir, "mig.file", NULL);
    g_autofree char *uri = g_strconcat("file:", path, NULL);
    g_autofree char *junk = g_strnfill(XFER_LEN + 4096, 'J');

    /* an existing longer file is truncated */
    assert_true(g_file_set_contents(path, junk, -1, NULL));
    send_only(uri);
    check_file(path, 0, 0);
    recv_only(uri);
    g_unlink(path);
}

static void test_file_offset(void **state)
{
    g_autofree char *path = g_build_filename(tmpdir, "mig.offset", NULL);
    g_autofree char *uri = g_strconcat("file:", path, ",offset=4K", NULL);
    g_autofree char *head = g_strnfill(4096 + XFER_LEN + 100, 'H');

    /* the first 4 KiB stay, what followed them is cut and replaced */
    assert_true(g_file_set_contents(path, head, -1, NULL));
    send_only(uri);
    check_file(path, 4096, 'H');
    recv_only(uri);
    g_unlink(path);
}

static void xfer_fd_pair(int wfd, int rfd)
{
    g_autofree char *to = g_strdup_printf("fd:%d", wfd);
    g_autofree char *from = g_strdup_printf("fd:%d", rfd);

    xfer(from, to);
    /* the channels own and closed the fds */
    assert_int_equal(fcntl(wfd, F_GETFD), -1);
    assert_int_equal(fcntl(rfd, F_GETFD), -1);
}

static void test_fd(void **state)
{
    int sv[2], p[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    xfer_fd_pair(sv[0], sv[1]);
    assert_int_equal(pipe(p), 0);
    xfer_fd_pair(p[1], p[0]);
}

static void test_fd_named(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *to = NULL;
    int p[2];

    assert_int_equal(pipe(p), 0);
    mig_fd_register("migin", p[0]);
    to = g_strdup_printf("fd:%d", p[1]);
    xfer("fd:migin", to);

    /* taken by the first use; never registered; not open */
    assert_null(listen_uri("fd:migin", &err));
    assert_string_equal(err->message, "fd 'migin' was not passed with getfd");
    g_clear_error(&err);
    assert_null(connect_uri("fd:nosuch", &err));
    assert_string_equal(err->message, "fd 'nosuch' was not passed with getfd");
    g_clear_error(&err);
    assert_null(connect_uri("fd:9999", &err));
    assert_non_null(strstr(err->message, g_strerror(EBADF)));
}

/*
 * A peek for the first bytes of a connection: all there (1), nothing
 * then the end (0), and a peer that closed after part of them: -ENODATA
 * at once (it used to peek the same byte forever, hanging a destination
 * whose multifd channel broke after its first byte).
 */
static void test_peek(void **state)
{
    static const char *sent[] = {"QEVM", "", "Q"};
    static const int want[] = {1, 0, -ENODATA};

    for (int i = 0; i < 3; i++) {
        g_autoptr(GError) err = NULL;
        g_autofree char *uri = NULL;
        uint8_t buf[4];
        MigChannel *c;
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        uri = g_strdup_printf("fd:%d", sv[0]);
        c = connect_uri(uri, &err);
        assert_non_null(c);
        assert_int_equal(write(sv[1], sent[i], strlen(sent[i])),
                         (ssize_t)strlen(sent[i]));
        close(sv[1]);
        assert_int_equal(mig_channel_peek(c, buf, 4), want[i]);
        mig_channel_close(c, NULL);
    }
}

/* ---- cancel, one-shot accept, errors ------------------------------------ */

typedef struct Blocked {
    MigChannel *c;
    MigListener *l;
    atomic_int waiting; /* set right before the thread blocks */
    bool result;
    gint64 woke_at;
    char *error;
} Blocked;

static gpointer wait_reader_thread(gpointer opaque)
{
    Blocked *b = opaque;

    atomic_store(&b->waiting, 1);
    b->result = mig_channel_wait(b->c, POLLIN, 5000);
    b->woke_at = g_get_monotonic_time();
    return NULL;
}

/* Fills the socket buffer, then blocks in wait(POLLOUT) until shut down. */
static gpointer wait_writer_thread(gpointer opaque)
{
    Blocked *b = opaque;
    static guint8 chunk[65536];
    struct iovec iov = {chunk, sizeof(chunk)};

    for (;;) {
        ssize_t n = mig_channel_writev(b->c, &iov, 1);

        if (n == -EAGAIN) {
            atomic_store(&b->waiting, 1);
            b->result = mig_channel_wait(b->c, POLLOUT, 5000);
            if (!b->result) {
                break;
            }
        } else if (n < 0) {
            b->error = g_strdup_printf("writev: %s", g_strerror((int)-n));
            break;
        }
    }
    b->woke_at = g_get_monotonic_time();
    return NULL;
}

static gpointer accept_thread(gpointer opaque)
{
    Blocked *b = opaque;
    g_autoptr(GError) err = NULL;

    atomic_store(&b->waiting, 1);
    b->c = mig_accept(b->l, &err);
    b->result = b->c != NULL;
    b->error = err ? g_strdup(err->message) : NULL;
    b->woke_at = g_get_monotonic_time();
    return NULL;
}

/* Runs `fn` until it blocks, shuts `b` down, checks it woke up quickly. */
static void shutdown_blocked(GThreadFunc fn, Blocked *b)
{
    GThread *t = g_thread_new("blocked", fn, b);
    gint64 shut_at;

    while (!atomic_load(&b->waiting)) {
        g_usleep(1000);
    }
    g_usleep(30000); /* let it get into poll() */
    shut_at = g_get_monotonic_time();
    if (b->l) {
        mig_listener_shutdown(b->l);
    } else {
        mig_channel_shutdown(b->c);
    }
    g_thread_join(t);
    assert_false(b->result);
    if (b->woke_at - shut_at > CANCEL_MAX_US) {
        fail_msg("woke %" G_GINT64_FORMAT " us after the shutdown",
                 b->woke_at - shut_at);
    }
}

static void test_shutdown_reader(void **state)
{
    MigChannel *out, *in;
    Blocked b = {0};
    guint8 byte;
    struct iovec iov = {&byte, 1};

    tcp_pair(&out, &in);
    b.c = in;
    shutdown_blocked(wait_reader_thread, &b);
    assert_true(mig_channel_is_shutdown(in));
    assert_false(mig_channel_wait(in, POLLIN, -1)); /* later waits too */
    assert_int_equal(mig_channel_readv(in, &iov, 1), -ECANCELED);
    assert_false(mig_channel_is_shutdown(out));
    mig_channel_close(in, NULL);
    mig_channel_close(out, NULL);
}

static void test_shutdown_writer(void **state)
{
    MigChannel *out, *in;
    Blocked b = {0};
    guint8 byte = 0;
    struct iovec iov = {&byte, 1};

    tcp_pair(&out, &in);
    b.c = out;
    shutdown_blocked(wait_writer_thread, &b);
    assert_null(b.error);
    assert_int_equal(mig_channel_writev(out, &iov, 1), -ECANCELED);
    mig_channel_close(in, NULL);
    mig_channel_close(out, NULL);
}

static void test_listener_shutdown(void **state)
{
    g_autofree char *path = g_build_filename(tmpdir, "prepared", NULL);
    g_autofree char *uri = g_strconcat("file:", path, NULL);
    g_autoptr(GError) err = NULL;
    Blocked b = {.l = listen_ok("tcp:127.0.0.1:0")};

    shutdown_blocked(accept_thread, &b);
    assert_non_null(strstr(b.error, "cancelled"));
    mig_listener_close(b.l);
    g_free(b.error);

    /* a prepared stream is not handed out after a shutdown either */
    assert_true(g_file_set_contents(path, "x", 1, NULL));
    b.l = listen_ok(uri);
    mig_listener_shutdown(b.l);
    assert_null(mig_accept(b.l, &err));
    assert_non_null(strstr(err->message, "cancelled"));
    mig_listener_close(b.l);
    g_unlink(path);
}

static void test_one_connection(void **state)
{
    g_autoptr(GError) err = NULL;
    MigListener *l = listen_ok("tcp:127.0.0.1:0");
    g_autofree char *addr = mig_listener_address(l);
    MigChannel *first = connect_uri(addr, &err);
    MigChannel *in = mig_accept(l, &err);

    assert_non_null(first);
    assert_non_null(in);
    assert_null(connect_uri(addr, &err)); /* the listener is closed */
    assert_non_null(strstr(err->message, g_strerror(ECONNREFUSED)));
    g_clear_error(&err);
    assert_null(mig_accept(l, &err));
    assert_non_null(strstr(err->message, "already accepted"));
    mig_listener_close(l);
    mig_channel_close(first, NULL);
    mig_channel_close(in, NULL);
}

/*
 * One migration's connections arrive at once (main, multifd channels,
 * preempt): the listener queues them all before the first accept. With a
 * backlog of 1 a dropped SYN cost multifd 1 s (TCP's retransmit).
 */
static void test_backlog(void **state)
{
    g_autofree char *path = g_build_filename(tmpdir, "backlog.sock", NULL);
    g_autofree char *uri = g_strconcat("unix:", path, NULL);
    MigListener *l = listen_ok("tcp:127.0.0.1:0");
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fds[6];

    /*
     * tcp: a listener's TCP_INFO gives its backlog in tcpi_sacked: room
     * for main + 255 multifd channels + preempt
     */
    assert_int_equal(getsockopt(l->fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
    assert_true(ti.tcpi_sacked >= 1 + 255 + 1);
    mig_listener_close(l);

    /* unix: a full backlog refuses a non-blocking connect (EAGAIN) */
    l = listen_ok(uri);
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    for (int i = 0; i < 6; i++) {
        fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(fds[i] >= 0);
        if (connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            fail_msg("connection %d of 6 before any accept: %s", i + 1,
                     g_strerror(errno));
        }
    }
    for (int i = 0; i < 6; i++) {
        close(fds[i]);
    }
    mig_listener_close(l);
}

static void test_connect_refused(void **state)
{
    g_autoptr(GError) err = NULL;
    MigListener *l = listen_ok("tcp:127.0.0.1:0");
    g_autofree char *addr = mig_listener_address(l);

    mig_listener_close(l); /* nobody listens there now */
    assert_null(connect_uri(addr, &err));
    if (!strstr(err->message, g_strerror(ECONNREFUSED)) ||
        !strstr(err->message, addr + strlen("tcp:"))) {
        fail_msg("unexpected error: %s", err->message);
    }
}

static void test_wait_timeout(void **state)
{
    MigChannel *out, *in;
    gint64 t0;

    tcp_pair(&out, &in);
    t0 = g_get_monotonic_time();
    assert_false(mig_channel_wait(in, POLLIN, 50));
    assert_true(g_get_monotonic_time() - t0 >= 49000);
    assert_false(mig_channel_is_shutdown(in));
    assert_true(mig_channel_wait(out, POLLOUT, 50));
    mig_channel_close(in, NULL);
    mig_channel_close(out, NULL);
}

/* Writes until the stream refuses; returns that error (-errno). */
static ssize_t write_until_error(MigChannel *c)
{
    static guint8 chunk[65536];
    struct iovec iov = {chunk, sizeof(chunk)};

    for (int i = 0; i < 10000; i++) {
        ssize_t n = mig_channel_writev(c, &iov, 1);

        if (n == -EAGAIN) {
            assert_true(mig_channel_wait(c, POLLOUT, 5000));
        } else if (n < 0) {
            return n;
        }
    }
    return 0;
}

/*
 * The reader went away: writes fail with an error, not SIGPIPE (sockets
 * use MSG_NOSIGNAL: checked with SIGPIPE at its default, which would kill
 * the test), and close still succeeds.
 */
static void test_peer_gone(void **state)
{
    g_autoptr(GError) err = NULL;
    MigChannel *out, *in;
    ssize_t n;

    tcp_pair(&out, &in);
    assert_true(mig_channel_close(in, &err));
    signal(SIGPIPE, SIG_DFL);
    n = write_until_error(out);
    signal(SIGPIPE, SIG_IGN);
    if (n != -EPIPE && n != -ECONNRESET) {
        fail_msg("writev after the peer closed: %zd", n);
    }
    assert_true(mig_channel_close(out, &err));

    /* a pipe to an exec command that exited: EPIPE (SIGPIPE is ignored) */
    out = connect_uri("exec:exit 0", &err);
    assert_non_null(out);
    assert_int_equal(write_until_error(out), -EPIPE);
    assert_true(mig_channel_close(out, &err));
}

static void expect_close_error(MigChannel *c, const char *msg)
{
    g_autoptr(GError) err = NULL;

    assert_non_null(c);
    assert_false(mig_channel_close(c, &err));
    assert_non_null(err);
    assert_string_equal(err->message, msg);
}

static void test_exec_status(void **state)
{
    g_autoptr(GError) err = NULL;
    MigListener *l;
    MigChannel *c;
    char buf[16];
    struct iovec iov = {buf, sizeof(buf)};
    ssize_t n;

    expect_close_error(connect_uri("exec:exit 1", &err),
                       "exec command 'exit 1' failed with status 1");
    expect_close_error(connect_uri("exec:/nonexistent/cmd 2>/dev/null", &err),
                       "exec command '/nonexistent/cmd 2>/dev/null' failed "
                       "with status 127");
    l = listen_ok("exec:echo hi; exit 3");
    c = mig_accept(l, &err);
    mig_listener_close(l);
    assert_non_null(c);
    while ((n = mig_channel_readv(c, &iov, 1)) == -EAGAIN) {
        assert_true(mig_channel_wait(c, POLLIN, 5000));
    }
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "hi\n", 3);
    expect_close_error(c,
                       "exec command 'echo hi; exit 3' failed with status 3");
}

/* A command still running when its channel is shut down is killed. */
static void test_exec_shutdown_kills(void **state)
{
    g_autoptr(GError) err = NULL;
    MigChannel *c = connect_uri("exec:sleep 30", &err);
    gint64 t0 = g_get_monotonic_time();

    assert_non_null(c);
    mig_channel_shutdown(c);
    expect_close_error(c, "exec command 'sleep 30' was killed: the migration "
                          "channel was shut down");
    assert_true(g_get_monotonic_time() - t0 < 5 * G_USEC_PER_SEC);

    /* an incoming one never accepted is killed by the listener's close */
    t0 = g_get_monotonic_time();
    mig_listener_close(listen_ok("exec:sleep 30"));
    assert_true(g_get_monotonic_time() - t0 < 5 * G_USEC_PER_SEC);
}

/* The child sees fds 0-2 only, even a godwit fd without FD_CLOEXEC. */
static void test_exec_no_inherited_fds(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *uri = NULL;
    int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */

    assert_true(fd > 2);
    uri = g_strdup_printf("exec:[ -e /proc/self/fd/2 ] || exit 8; "
                          "[ -e /proc/self/fd/%d ] && exit 7; exit 0",
                          fd);
    assert_true(mig_channel_close(connect_uri(uri, &err), &err));
    assert_null(err);
    close(fd);
}

static int group_setup(void **state)
{
    signal(SIGPIPE, SIG_IGN); /* as the VMM does */
    migration_channels_init();
    xfer_pattern_init();
    tmpdir = g_dir_make_tmp("gw-mig-channels-XXXXXX", NULL);
    return tmpdir ? 0 : -1;
}

static int group_teardown(void **state)
{
    g_autoptr(GDir) dir = g_dir_open(tmpdir, 0, NULL);
    const char *name;

    /* what a failed test left behind */
    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *path = g_build_filename(tmpdir, name, NULL);

        g_unlink(path);
    }
    g_rmdir(tmpdir);
    g_free(tmpdir);
    xfer_pattern_free();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_parse),
        cmocka_unit_test(test_backlog),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_tcp_ipv4),
        cmocka_unit_test(test_tcp_ipv6),
        cmocka_unit_test(test_tcp_names),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_exec_out),
        cmocka_unit_test(test_exec_in),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_file_offset),
        cmocka_unit_test(test_fd),
        cmocka_unit_test(test_fd_named),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_shutdown_reader),
        cmocka_unit_test(test_shutdown_writer),
        cmocka_unit_test(test_listener_shutdown),
        cmocka_unit_test(test_one_connection),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_wait_timeout),
        cmocka_unit_test(test_peer_gone),
        cmocka_unit_test(test_exec_status),
        cmocka_unit_test(test_exec_shutdown_kills),
        cmocka_unit_test(test_exec_no_inherited_fds),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
