/*
 * Unit tests for the monitor transports (monitor/chardev-spec.c,
 * chardev.c): spec parsing, then QMP over real unix and tcp sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp-test-cmds.h"

/* ---- transports ---------------------------------------------------------- */

typedef struct SpecCase {
    const char *spec;
    MonitorSpecKind kind;
    const char *path_or_host; /* NULL: refused */
    const char *port;
    const char *error; /* substring of the error */
} SpecCase;

static const SpecCase spec_cases[] = {
    {"stdio", MONITOR_SPEC_STDIO, "", NULL, NULL},
    {"unix:/tmp/a.qmp,server=on,wait=off", MONITOR_SPEC_UNIX, "/tmp/a.qmp",
     NULL, NULL},
    {"unix:/tmp/a.qmp,server,nowait", MONITOR_SPEC_UNIX, "/tmp/a.qmp", NULL,
     NULL},
    {"unix:/tmp/a,,b,server=on,wait=off", MONITOR_SPEC_UNIX, "/tmp/a,b", NULL,
     NULL},
    {"tcp:127.0.0.1:4444,server=on,wait=off", MONITOR_SPEC_TCP, "127.0.0.1",
     "4444", NULL},
    {"tcp::4444,server,wait=off", MONITOR_SPEC_TCP, "", "4444", NULL},
    {"tcp:[::1]:5555,server=on,wait=off", MONITOR_SPEC_TCP, "::1", "5555",
     NULL},
    {"tcp:localhost:1,server=yes,wait=no", MONITOR_SPEC_TCP, "localhost", "1",
     NULL},
    {"unix:/tmp/a.qmp,server=on,wait=on", 0, NULL, NULL, "wait=on is not"},
    {"unix:/tmp/a.qmp,server=on", 0, NULL, NULL, "wait=on is not"},
    {"unix:/tmp/a.qmp,server=off,wait=off", 0, NULL, NULL, "only server=on"},
    {"unix:/tmp/a.qmp,wait=off", 0, NULL, NULL, "only server=on"},
    {"unix:/tmp/a.qmp,server=maybe,wait=off", 0, NULL, NULL,
     "invalid value for 'server'"},
    {"unix:/tmp/a.qmp,server=on,wait=off,telnet", 0, NULL, NULL,
     "unknown option 'telnet'"},
    {"unix:,server=on,wait=off", 0, NULL, NULL, "empty unix socket path"},
    {"tcp:4444,server=on,wait=off", 0, NULL, NULL, "expected tcp:HOST:PORT"},
    {"tcp:::1:4444,server=on,wait=off", 0, NULL, NULL,
     "expected tcp:HOST:PORT"},
    {"tcp:[::1]4444,server=on,wait=off", 0, NULL, NULL,
     "expected tcp:HOST:PORT"},
    {"tcp:host:70000,server=on,wait=off", 0, NULL, NULL,
     "invalid port '70000'"},
    {"tcp:host:0,server=on,wait=off", 0, NULL, NULL, "invalid port '0'"},
    {"tcp:host:http,server=on,wait=off", 0, NULL, NULL, "invalid port"},
    {"stdio,signal=off", 0, NULL, NULL, "unknown option 'signal=off'"},
    {"vc", 0, NULL, NULL, "unsupported backend"},
    {"", 0, NULL, NULL, "unsupported backend"},
};

static void test_spec_parse(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(spec_cases); i++) {
        const SpecCase *t = &spec_cases[i];
        MonitorSpec ms;
        g_autoptr(GError) err = NULL;
        bool ok = monitor_spec_parse(t->spec, &ms, &err);

        if (!t->path_or_host) {
            if (ok || !strstr(err->message, t->error)) {
                fail_msg("'%s': expected an error with '%s', got %s", t->spec,
                         t->error, ok ? "success" : err->message);
            }
            continue;
        }
        if (!ok) {
            fail_msg("'%s': %s", t->spec, err->message);
        }
        assert_int_equal(ms.kind, t->kind);
        if (t->kind == MONITOR_SPEC_UNIX) {
            assert_string_equal(ms.path, t->path_or_host);
        } else if (t->kind == MONITOR_SPEC_TCP) {
            assert_string_equal(ms.host, t->path_or_host);
            assert_string_equal(ms.port, t->port);
        }
        monitor_spec_clear(&ms);
    }
}

/* A socket client of the monitor; reads pump the main loop. */
typedef struct SockClient {
    int fd;
    GString *in;
    bool eof;
    size_t total; /* bytes received */
} SockClient;

static void sock_client_init(SockClient *sc, int fd)
{
    sc->fd = fd;
    sc->in = g_string_new(NULL);
    sc->eof = false;
    sc->total = 0;
}

static SockClient sock_connect_unix(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    SockClient sc;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    sock_client_init(&sc, fd);
    return sc;
}

static void sock_client_close(SockClient *sc)
{
    close(sc->fd);
    g_string_free(sc->in, TRUE);
}

/* Receives what is there without blocking. */
static void sock_poll(SockClient *sc)
{
    char buf[65536];

    while (!sc->eof) {
        ssize_t n = recv(sc->fd, buf, sizeof(buf), MSG_DONTWAIT);

        if (n > 0) {
            g_string_append_len(sc->in, buf, n);
            sc->total += (size_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            sc->eof = true;
        } else {
            break;
        }
    }
}

/* Next CRLF line, pumping the main loop; NULL on EOF or after 5 s. */
static char *sock_read_line(SockClient *sc)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    while (g_get_monotonic_time() < deadline) {
        const char *crlf = strstr(sc->in->str, "\r\n");

        if (crlf) {
            char *line = g_strndup(sc->in->str, crlf - sc->in->str);

            g_string_erase(sc->in, 0, crlf - sc->in->str + 2);
            return line;
        }
        if (sc->eof) {
            return NULL;
        }
        g_main_context_iteration(NULL, FALSE);
        sock_poll(sc);
        g_usleep(500);
    }
    return NULL;
}

static void sock_send(SockClient *sc, const char *text)
{
    assert_int_equal(send(sc->fd, text, strlen(text), MSG_NOSIGNAL),
                     (ssize_t)strlen(text));
}

static void sock_expect(SockClient *sc, const char *want)
{
    g_autofree char *line = sock_read_line(sc);

    assert_non_null(line);
    assert_string_equal(line, want);
}

static void sock_negotiate(SockClient *sc)
{
    g_autofree char *greeting = sock_read_line(sc);

    assert_non_null(greeting);
    assert_true(g_str_has_prefix(greeting, "{\"QMP\": "));
    sock_send(sc, "{\"execute\": \"qmp_capabilities\"}\r\n");
    sock_expect(sc, "{\"return\": {}}");
}

static void test_unix_socket_two_clients(void **state)
{
    g_autofree char *dir = g_dir_make_tmp("godwit-qmp-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "qmp.sock", NULL);
    g_autofree char *spec =
        g_strdup_printf("%s%s%s", "unix:", path, ",server=on,wait=off");
    g_autoptr(GError) err = NULL;
    SockClient a, b;
    struct stat st;
    int stale;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};

    /* a stale socket file from an earlier run is replaced */
    stale = socket(AF_UNIX, SOCK_STREAM, 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    assert_int_equal(bind(stale, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(stale);

    if (!monitor_open_qmp(spec, &err)) {
        fail_msg("%s", err->message);
    }
    a = sock_connect_unix(path);
    b = sock_connect_unix(path);
    sock_negotiate(&a);
    /* b has not negotiated: a works meanwhile, b gets no events */
    {
        g_autofree char *greeting = sock_read_line(&b);
        assert_non_null(greeting);
    }
    sock_send(&a, "{\"execute\": \"test-li");
    sock_send(&b, "{\"execute\": \"test-list\", \"id\": \"b\"}");
    sock_expect(&b, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
                    "\"Expecting capabilities negotiation with "
                    "'qmp_capabilities'\"}, \"id\": \"b\"}");
    sock_send(&a, "st\", \"id\": \"a\"}");
    sock_expect(&a, "{\"return\": [1, 2, 3], \"id\": \"a\"}");
    monitor_emit_event("RESUME", NULL);
    {
        g_autofree char *ev = sock_read_line(&a);
        assert_non_null(strstr(ev, "\"event\": \"RESUME\""));
    }
    sock_send(&b, "{\"execute\": \"qmp_capabilities\"}");
    sock_expect(&b, "{\"return\": {}}");
    assert_int_equal(b.in->len, 0); /* RESUME was not queued for b */

    /* a disconnect frees that session only */
    sock_client_close(&a);
    sock_send(&b, "{\"execute\": \"test-list\"}");
    sock_expect(&b, "{\"return\": [1, 2, 3]}");
    sock_client_close(&b);

    /* a path that cannot be bound is an error */
    assert_false(monitor_open_qmp("unix:/nonexistent-dir/x.sock,server=on,"
                                  "wait=off",
                                  &err));
    assert_non_null(strstr(err->message, "cannot listen on"));
    g_clear_error(&err);

    /* only the owner may connect, whatever the umask */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    monitor_cleanup();
    /* cleanup removed the socket file */
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(rmdir(dir), 0);
}

static void test_unix_path_not_socket(void **state)
{
    g_autofree char *dir = g_dir_make_tmp("godwit-qmp-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "file", NULL);
    g_autofree char *spec = g_strdup_printf("unix:%s,server,nowait", path);
    g_autoptr(GError) err = NULL;

    assert_true(g_file_set_contents(path, "keep me", -1, NULL));
    assert_false(monitor_open_qmp(spec, &err));
    assert_non_null(strstr(err->message, "exists and is not a socket"));
    /* and the file was not touched */
    assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
    unlink(path);
    rmdir(dir);
}

static void test_slow_reader_dropped(void **state)
{
    g_autofree char *dir = g_dir_make_tmp("godwit-qmp-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "qmp.sock", NULL);
    g_autofree char *spec = g_strdup_printf("unix:%s,server,nowait", path);
    g_autoptr(GError) err = NULL;
    GString *many = g_string_new(NULL);
    SockClient slow, ok;
    gint64 deadline;

    assert_true(monitor_open_qmp(spec, &err));
    slow = sock_connect_unix(path);
    ok = sock_connect_unix(path);
    sock_negotiate(&slow);
    sock_negotiate(&ok);
    /* 16 MiB of replies that `slow` does not read */
    for (int i = 0; i < 16; i++) {
        g_string_append(many, "{\"execute\": \"test-big\"}");
    }
    sock_send(&slow, many->str);
    for (int i = 0; i < 200; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
    /* the VMM still answers others */
    sock_send(&ok, "{\"execute\": \"test-list\"}");
    sock_expect(&ok, "{\"return\": [1, 2, 3]}");
    /* and `slow` was dropped: reading on ends at EOF, short of 16 MiB */
    deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (!slow.eof && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        sock_poll(&slow);
    }
    assert_true(slow.eof);
    assert_true(slow.total < 16u << 20);
    sock_client_close(&slow);
    sock_client_close(&ok);
    g_string_free(many, TRUE);
    monitor_cleanup();
    rmdir(dir);
}

static void test_half_close_gets_replies(void **state)
{
    g_autofree char *dir = g_dir_make_tmp("godwit-qmp-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "qmp.sock", NULL);
    g_autofree char *spec = g_strdup_printf("unix:%s,server,nowait", path);
    g_autoptr(GError) err = NULL;
    SockClient c;
    char *line;

    assert_true(monitor_open_qmp(spec, &err));
    c = sock_connect_unix(path);
    /*
     * Like `echo ... | nc -U`: send everything, close our writing end. The
     * replies (3 MiB) outgrow the socket buffer, so some are still queued
     * in the monitor when it sees EOF: they must still arrive.
     */
    sock_send(&c, "{\"execute\": \"qmp_capabilities\"}"
                  "{\"execute\": \"test-big\"}{\"execute\": \"test-big\"}"
                  "{\"execute\": \"test-big\"}"
                  "{\"execute\": \"test-list\", \"id\": 1}");
    assert_int_equal(shutdown(c.fd, SHUT_WR), 0);
    line = sock_read_line(&c);
    assert_true(g_str_has_prefix(line, "{\"QMP\": "));
    g_free(line);
    sock_expect(&c, "{\"return\": {}}");
    for (int i = 0; i < 3; i++) {
        line = sock_read_line(&c);
        assert_non_null(line);
        assert_int_equal(strlen(line),
                         strlen("{\"return\": \"\"}") + (1 << 20) - 1);
        g_free(line);
    }
    sock_expect(&c, "{\"return\": [1, 2, 3], \"id\": 1}");
    /* then the monitor closes its end */
    assert_null(sock_read_line(&c));
    assert_true(c.eof);
    sock_client_close(&c);
    monitor_cleanup();
    rmdir(dir);
}

/* Reads everything until EOF, in a thread of its own. */
static gpointer read_all(gpointer opaque)
{
    SockClient *sc = opaque;
    char buf[65536];
    ssize_t n;

    while ((n = recv(sc->fd, buf, sizeof(buf), 0)) > 0) {
        g_string_append_len(sc->in, buf, n);
    }
    sc->eof = true;
    return NULL;
}

static void test_quit_flushes_replies(void **state)
{
    g_autofree char *dir = g_dir_make_tmp("godwit-qmp-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "qmp.sock", NULL);
    g_autofree char *spec = g_strdup_printf("unix:%s,server,nowait", path);
    g_autoptr(GError) err = NULL;
    const char *tail = "{\"return\": {}, \"id\": \"quit\"}\r\n";
    SockClient c;
    GThread *reader;

    assert_true(monitor_open_qmp(spec, &err));
    c = sock_connect_unix(path);
    sock_send(&c, "{\"execute\": \"qmp_capabilities\"}"
                  "{\"execute\": \"test-big\"}{\"execute\": \"test-big\"}"
                  "{\"execute\": \"test-quit\", \"id\": \"quit\"}");
    /* the client reads slowly: start only once the VMM is quitting */
    quit_loop = g_main_loop_new(NULL, FALSE);
    g_main_loop_run(quit_loop);
    reader = g_thread_new("reader", read_all, &c);
    monitor_cleanup();
    g_thread_join(reader);
    /* every reply arrived, the last one is quit's, then EOF */
    assert_true(c.eof);
    assert_true(c.in->len > 2u << 20);
    assert_true(g_str_has_suffix(c.in->str, tail));
    g_main_loop_unref(quit_loop);
    sock_client_close(&c);
    rmdir(dir);
}

static void test_loopback_addresses(void **state)
{
    static const struct {
        int family;
        const char *addr;
        bool loopback;
    } cases[] = {
        {AF_INET, "127.0.0.1", true},
        {AF_INET, "127.200.3.4", true},
        {AF_INET, "0.0.0.0", false},
        {AF_INET, "10.0.0.1", false},
        {AF_INET, "128.0.0.1", false},
        {AF_INET6, "::1", true},
        {AF_INET6, "::", false},
        {AF_INET6, "::ffff:127.0.0.1", true},
        {AF_INET6, "::ffff:10.1.2.3", false},
        {AF_INET6, "fe80::1", false},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        struct sockaddr_in in = {.sin_family = AF_INET};
        struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
        struct sockaddr *sa;

        if (cases[i].family == AF_INET) {
            assert_int_equal(inet_pton(AF_INET, cases[i].addr, &in.sin_addr),
                             1);
            sa = (struct sockaddr *)&in;
        } else {
            assert_int_equal(inet_pton(AF_INET6, cases[i].addr, &in6.sin6_addr),
                             1);
            sa = (struct sockaddr *)&in6;
        }
        if (monitor_addr_is_loopback(sa) != cases[i].loopback) {
            fail_msg("%s: expected loopback=%d", cases[i].addr,
                     cases[i].loopback);
        }
    }
}

/* Counts the warnings a tcp monitor gives (G_LOG_LEVEL_WARNING). */
static void count_warning(const gchar *domain, GLogLevelFlags level,
                          const gchar *message, gpointer opaque)
{
    if (strstr(message, "non-loopback address")) {
        (*(int *)opaque)++;
    }
}

static void test_tcp_socket(void **state)
{
    int warnings = 0;
    guint handler =
        g_log_set_handler(NULL, G_LOG_LEVEL_WARNING, count_warning, &warnings);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t len = sizeof(addr);
    g_autofree char *spec = NULL;
    g_autoptr(GError) err = NULL;
    SockClient c;
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    int fd;

    /* find a free port, then let the monitor listen on it */
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(probe, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(probe, (struct sockaddr *)&addr, &len), 0);
    close(probe);
    spec = g_strdup_printf("tcp:127.0.0.1:%u,server=on,wait=off",
                           ntohs(addr.sin_port));
    if (!monitor_open_qmp(spec, &err)) {
        fail_msg("%s", err->message);
    }
    assert_int_equal(warnings, 0); /* loopback: no warning */
    /* the port is taken now */
    assert_false(monitor_open_qmp(spec, &err));
    assert_non_null(strstr(err->message, "cannot listen on 127.0.0.1:"));

    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    sock_client_init(&c, fd);
    sock_negotiate(&c);
    sock_send(&c, "{\"execute\": \"query-commands\", \"id\": 1}");
    {
        g_autofree char *line = sock_read_line(&c);
        assert_true(g_str_has_prefix(line, "{\"return\": [{\"name\": "));
    }
    sock_client_close(&c);
    monitor_cleanup();

    /* no HOST: every interface, IPv4 and (where there is one) IPv6 */
    g_free(spec);
    spec = g_strdup_printf("tcp::%u,server,nowait", ntohs(addr.sin_port));
    assert_true(monitor_open_qmp(spec, &err));
    assert_int_equal(warnings, 1); /* every interface: warned */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    sock_client_init(&c, fd);
    sock_negotiate(&c);
    sock_client_close(&c);
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd >= 0) {
        struct sockaddr_in6 addr6 = {.sin6_family = AF_INET6,
                                     .sin6_port = addr.sin_port,
                                     .sin6_addr = IN6ADDR_LOOPBACK_INIT};

        if (connect(fd, (struct sockaddr *)&addr6, sizeof(addr6)) == 0) {
            sock_client_init(&c, fd);
            sock_negotiate(&c);
            sock_client_close(&c);
        } else {
            close(fd); /* no IPv6 loopback here */
        }
    }
    monitor_cleanup();
    g_log_remove_handler(NULL, handler);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_parse),
        cmocka_unit_test(test_unix_socket_two_clients),
        cmocka_unit_test(test_unix_path_not_socket),
        cmocka_unit_test(test_slow_reader_dropped),
        cmocka_unit_test(test_half_close_gets_replies),
        cmocka_unit_test(test_quit_flushes_replies),
        cmocka_unit_test(test_loopback_addresses),
        cmocka_unit_test(test_tcp_socket),
    };

    qmp_test_register();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
