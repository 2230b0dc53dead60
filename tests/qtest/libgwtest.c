/*
 * libgwtest: spawn godwit, speak QMP over a unix socket, watch the serial
 * log (see libgwtest.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libgwtest.h"

#define QMP_CONNECT_TIMEOUT_MS 20000
#define QMP_REPLY_TIMEOUT_MS 60000

int64_t gwt_now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

void gwt_sleep_ms(int ms)
{
    g_usleep((gulong)ms * 1000);
}

static bool kvm_usable(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        return false;
    }
    close(fd);
    return true;
}

void gwt_require_kvm(void)
{
    if (!kvm_usable()) {
        fprintf(stderr, "SKIP: /dev/kvm is not available (%s)\n",
                g_strerror(errno));
        exit(GWT_SKIP);
    }
}

static const char *gwt_accel_name;

const char *gwt_accel(void)
{
    if (!gwt_accel_name) {
        const char *want = g_getenv("GODWIT_ACCEL");
        if (want && *want) {
            bool kvm = !strcmp(want, "kvm") ||
                       g_str_has_prefix(want, "kvm,dirty-ring-size=");
            if (!kvm && strcmp(want, "tcg")) {
                g_error("GODWIT_ACCEL=%s: expected kvm, "
                        "kvm,dirty-ring-size=N or tcg",
                        want);
            }
            if (kvm) {
                gwt_require_kvm();
            }
            gwt_accel_name = want;
        } else {
            gwt_accel_name = kvm_usable() ? "kvm" : "tcg";
        }
    }
    return gwt_accel_name;
}

const char *gwt_set_accel(const char *accel)
{
    const char *old = gwt_accel();

    gwt_accel_name = accel;
    return old;
}

bool gwt_kvm_present(void)
{
    return kvm_usable();
}

bool gwt_second_pass(void)
{
    return g_getenv("GODWIT_QTEST_SECOND_PASS") != NULL;
}

bool gwt_tcg(void)
{
    return !strcmp(gwt_accel(), "tcg");
}

static const char *env_or_die(const char *var)
{
    const char *v = g_getenv(var);

    if (!v || !*v) {
        g_error("environment variable %s is not set (run through meson "
                "test)",
                var);
    }
    return v;
}

char *gwt_payload(const char *name)
{
    char *path = g_strdup_printf("%s/%s.elf", env_or_die("GUEST_DIR"), name);

    g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));
    return path;
}

/*
 * In the child: die with the test, so an aborted test leaves no godwit;
 * stderr to the file `data` when given.
 */
static void child_setup(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (data) {
        int fd = open(data, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
}

static GPtrArray *split_args(const char *args)
{
    g_auto(GStrv) argv = NULL;
    g_autoptr(GError) err = NULL;
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    int argc = 0;

    g_ptr_array_add(a, g_strdup(env_or_die("GODWIT")));
    if (*args && !g_shell_parse_argv(args, &argc, &argv, &err)) {
        g_error("bad test command line '%s': %s", args, err->message);
    }
    for (int i = 0; i < argc; i++) {
        g_ptr_array_add(a, g_strdup(argv[i]));
    }
    return a;
}

int gwt_run(char **err_out, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *args = NULL;
    g_autoptr(GPtrArray) argv = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *out = NULL;
    int status = 0;

    va_start(ap, fmt);
    args = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    argv = split_args(args);
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT,
                      child_setup, NULL, &out, err_out, &status, &err)) {
        g_error("spawn: %s", err->message);
    }
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return 128 + WTERMSIG(status);
}

static int qmp_connect(GwProc *p)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int64_t deadline = gwt_now_ms() + QMP_CONNECT_TIMEOUT_MS;

    g_strlcpy(sa.sun_path, p->qmp_path, sizeof(sa.sun_path));
    while (gwt_now_ms() < deadline) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            return fd;
        }
        close(fd);
        if (gwt_wait_exit(p, 0)) {
            g_error("%s: godwit exited during start-up (status %d); "
                    "serial:\n%s",
                    p->name, p->status, gwt_serial(p));
        }
        gwt_sleep_ms(10);
    }
    g_error("%s: cannot connect to QMP at %s", p->name, p->qmp_path);
}

/* Reads one JSON object line; NULL on timeout. */
static JsonObject *qmp_read(GwProc *p, int timeout_ms)
{
    int64_t deadline = gwt_now_ms() + timeout_ms;

    for (;;) {
        char *nl = memchr(p->rbuf->str, '\n', p->rbuf->len);
        if (nl) {
            g_autofree char *line = g_strndup(p->rbuf->str, nl - p->rbuf->str);
            g_autoptr(JsonParser) parser = json_parser_new();
            g_autoptr(GError) err = NULL;
            g_string_erase(p->rbuf, 0, nl - p->rbuf->str + 1);
            if (!json_parser_load_from_data(parser, line, -1, &err)) {
                g_error("%s: bad QMP line '%s': %s", p->name, line,
                        err->message);
            }
            JsonNode *root = json_parser_get_root(parser);
            g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
            return json_object_ref(json_node_get_object(root));
        }
        int left = (int)(deadline - gwt_now_ms());
        if (left < 0) {
            return NULL;
        }
        struct pollfd pfd = {.fd = p->qmp_fd, .events = POLLIN};
        if (poll(&pfd, 1, left) <= 0) {
            continue;
        }
        char buf[65536];
        ssize_t n = read(p->qmp_fd, buf, sizeof(buf));
        if (n <= 0) {
            g_error("%s: QMP connection closed (godwit died?)", p->name);
        }
        g_string_append_len(p->rbuf, buf, n);
    }
}

static void qmp_send(GwProc *p, const char *text)
{
    size_t len = strlen(text), off = 0;

    while (off < len) {
        ssize_t n = write(p->qmp_fd, text + off, len - off);
        if (n <= 0) {
            g_error("%s: QMP write failed: %s", p->name, g_strerror(errno));
        }
        off += n;
    }
}

static JsonObject *qmp_vcommand(GwProc *p, const char *fmt, va_list ap)
{
    g_autofree char *cmd = g_strdup_vprintf(fmt, ap);

    qmp_send(p, cmd);
    for (;;) {
        JsonObject *o = qmp_read(p, QMP_REPLY_TIMEOUT_MS);
        if (!o) {
            g_error("%s: no QMP reply to %s", p->name, cmd);
        }
        if (json_object_has_member(o, "event")) {
            g_queue_push_tail(p->events, o);
            continue;
        }
        return o;
    }
}

JsonObject *gwt_qmp(GwProc *p, const char *fmt, ...)
{
    va_list ap;
    JsonObject *o;

    va_start(ap, fmt);
    o = qmp_vcommand(p, fmt, ap);
    va_end(ap);
    return o;
}

JsonNode *gwt_qmp_ok(GwProc *p, const char *fmt, ...)
{
    va_list ap;
    g_autoptr(JsonObject) o = NULL;

    va_start(ap, fmt);
    o = qmp_vcommand(p, fmt, ap);
    va_end(ap);
    if (!json_object_has_member(o, "return")) {
        g_autofree char *s =
            json_to_string(json_node_init_object(json_node_alloc(), o), false);
        g_error("%s: QMP command failed: %s", p->name, s);
    }
    return json_node_copy(json_object_get_member(o, "return"));
}

void gwt_qmp_void(GwProc *p, const char *fmt, ...)
{
    va_list ap;
    g_autoptr(JsonObject) o = NULL;

    va_start(ap, fmt);
    o = qmp_vcommand(p, fmt, ap);
    va_end(ap);
    if (!json_object_has_member(o, "return")) {
        g_error("%s: QMP command failed: %s", p->name,
                gwt_get_str(gwt_get_obj(o, "error"), "desc"));
    }
}

char *gwt_qmp_err(GwProc *p, const char *fmt, ...)
{
    va_list ap;
    g_autoptr(JsonObject) o = NULL;

    va_start(ap, fmt);
    o = qmp_vcommand(p, fmt, ap);
    va_end(ap);
    g_assert_true(json_object_has_member(o, "error"));
    return g_strdup(gwt_get_str(gwt_get_obj(o, "error"), "desc"));
}

char *gwt_hmp(GwProc *p, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *line = NULL;
    g_autoptr(JsonNode) ret = NULL;
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = NULL;
    g_autofree char *cmd = NULL;

    va_start(ap, fmt);
    line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "execute");
    json_builder_add_string_value(b, "human-monitor-command");
    json_builder_set_member_name(b, "arguments");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "command-line");
    json_builder_add_string_value(b, line);
    json_builder_end_object(b);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    cmd = json_generator_to_data(gen, NULL);
    ret = gwt_qmp_ok(p, "%s", cmd);
    return g_strdup(json_node_get_string(ret));
}

JsonObject *gwt_wait_event(GwProc *p, const char *event, int timeout_ms)
{
    int64_t deadline = gwt_now_ms() + timeout_ms;

    for (;;) {
        for (GList *l = p->events->head; l; l = l->next) {
            JsonObject *o = l->data;
            if (!strcmp(json_object_get_string_member(o, "event"), event)) {
                g_queue_delete_link(p->events, l);
                return o;
            }
        }
        int left = (int)(deadline - gwt_now_ms());
        if (left < 0) {
            return NULL;
        }
        JsonObject *o = qmp_read(p, left);
        if (!o) {
            return NULL;
        }
        g_assert_true(json_object_has_member(o, "event"));
        g_queue_push_tail(p->events, o);
    }
}

GwProc *gwt_start(const char *name, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *args = NULL;
    g_autofree char *full = NULL;
    g_autoptr(GPtrArray) argv = NULL;
    g_autoptr(GError) err = NULL;
    GwProc *p = g_new0(GwProc, 1);

    va_start(ap, fmt);
    args = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    p->name = g_strdup(name);
    p->dir = g_dir_make_tmp("gwtest-XXXXXX", &err);
    g_assert_no_error(err);
    p->qmp_path = g_build_filename(p->dir, "qmp.sock", NULL);
    p->serial_path = g_build_filename(p->dir, "serial.log", NULL);
    p->stderr_path = g_build_filename(p->dir, "stderr.log", NULL);
    p->rbuf = g_string_new(NULL);
    p->events = g_queue_new();
    full =
        g_strdup_printf("-name %s -accel %s "
                        "-qmp unix:%s,server=on,wait=off "
                        "-serial file:%s %s",
                        name, gwt_accel(), p->qmp_path, p->serial_path, args);
    argv = split_args(full);
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_async(NULL, (char **)argv->pdata, NULL,
                       G_SPAWN_DO_NOT_REAP_CHILD, child_setup, p->stderr_path,
                       &p->pid, &err)) {
        g_error("spawn godwit: %s", err->message);
    }
    p->qmp_fd = qmp_connect(p);

    g_autoptr(JsonObject) greeting = qmp_read(p, QMP_REPLY_TIMEOUT_MS);
    g_assert_nonnull(greeting);
    g_assert_true(json_object_has_member(greeting, "QMP"));
    gwt_qmp_void(p, "{\"execute\": "
                    "\"qmp_capabilities\"}");
    return p;
}

char *gwt_serial(GwProc *p)
{
    char *s = NULL;

    if (!g_file_get_contents(p->serial_path, &s, NULL, NULL)) {
        return g_strdup("");
    }
    return s;
}

int gwt_serial_count(GwProc *p, const char *needle)
{
    g_autofree char *s = gwt_serial(p);
    int n = 0;

    for (const char *q = strstr(s, needle); q;
         q = strstr(q + strlen(needle), needle)) {
        n++;
    }
    return n;
}

bool gwt_wait_serial_count(GwProc *p, const char *needle, int count,
                           int timeout_ms)
{
    int64_t deadline = gwt_now_ms() + timeout_ms;

    do {
        if (gwt_serial_count(p, needle) >= count) {
            return true;
        }
        if (gwt_wait_exit(p, 0)) {
            return gwt_serial_count(p, needle) >= count;
        }
        gwt_sleep_ms(10);
    } while (gwt_now_ms() < deadline);
    return false;
}

char *gwt_status(GwProc *p)
{
    g_autoptr(JsonNode) r = gwt_qmp_ok(p, "{\"execute\": \"query-status\"}");

    return g_strdup(gwt_get_str(json_node_get_object(r), "status"));
}

bool gwt_wait_exit(GwProc *p, int timeout_ms)
{
    int64_t deadline = gwt_now_ms() + timeout_ms;

    while (!p->exited) {
        pid_t r = waitpid(p->pid, &p->status, WNOHANG);
        if (r == p->pid) {
            p->exited = true;
            break;
        }
        if (gwt_now_ms() >= deadline) {
            return false;
        }
        gwt_sleep_ms(5);
    }
    return true;
}

int gwt_quit(GwProc *p)
{
    g_autoptr(JsonObject) r = gwt_qmp(p, "{\"execute\": \"quit\"}");

    g_assert_true(json_object_has_member(r, "return"));
    if (!gwt_wait_exit(p, 30000)) {
        g_error("%s: did not exit after quit", p->name);
    }
    g_assert_true(WIFEXITED(p->status));
    return WEXITSTATUS(p->status);
}

void gwt_kill(GwProc *p)
{
    if (!p->exited) {
        kill(p->pid, SIGKILL);
        gwt_wait_exit(p, 30000);
    }
}

char *gwt_stderr(GwProc *p)
{
    char *s = NULL;

    if (!g_file_get_contents(p->stderr_path, &s, NULL, NULL)) {
        return g_strdup("");
    }
    return s;
}

void gwt_free(GwProc *p)
{
    if (!p) {
        return;
    }
    gwt_kill(p);
    if (p->qmp_fd > 0) {
        close(p->qmp_fd);
    }
    g_autofree char *err = gwt_stderr(p);
    if (*err) {
        g_test_message("%s stderr:\n%s", p->name, err);
    }
    unlink(p->stderr_path);
    g_free(p->stderr_path);
    g_queue_free_full(p->events, (GDestroyNotify)json_object_unref);
    g_string_free(p->rbuf, true);
    unlink(p->qmp_path);
    unlink(p->serial_path);
    rmdir(p->dir);
    g_free(p->dir);
    g_free(p->qmp_path);
    g_free(p->serial_path);
    g_free(p->name);
    g_free(p);
}

static JsonNode *member_or_die(JsonObject *o, const char *m)
{
    JsonNode *n = json_object_get_member(o, m);

    if (!n) {
        g_error("JSON member '%s' missing", m);
    }
    return n;
}

int64_t gwt_get_int(JsonObject *o, const char *member)
{
    JsonNode *n = member_or_die(o, member);

    g_assert_true(JSON_NODE_HOLDS_VALUE(n));
    return json_node_get_int(n);
}

const char *gwt_get_str(JsonObject *o, const char *member)
{
    JsonNode *n = member_or_die(o, member);

    g_assert_true(JSON_NODE_HOLDS_VALUE(n));
    return json_node_get_string(n);
}

bool gwt_get_bool(JsonObject *o, const char *member)
{
    JsonNode *n = member_or_die(o, member);

    g_assert_true(JSON_NODE_HOLDS_VALUE(n));
    return json_node_get_boolean(n);
}

JsonObject *gwt_get_obj(JsonObject *o, const char *member)
{
    JsonNode *n = member_or_die(o, member);

    g_assert_true(JSON_NODE_HOLDS_OBJECT(n));
    return json_node_get_object(n);
}
