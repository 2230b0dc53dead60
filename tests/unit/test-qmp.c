/*
 * Unit tests for the QMP server (monitor/qmp.c, monitor.c, json-writer.c,
 * qmp-args.c): sessions driven byte by byte without sockets, then the
 * transports (chardev-spec.c, chardev.c) over real unix and tcp sockets.
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

#include "monitor/monitor-internal.h"

/* ---- fake commands ------------------------------------------------------- */

/* Returns its arguments. */
static JsonNode *qmp_test_echo(JsonObject *args, GError **errp)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_set_object(node, args);
    return node;
}

static JsonNode *qmp_test_fail(JsonObject *args, GError **errp)
{
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "it failed");
    return NULL;
}

static JsonNode *qmp_test_no_device(JsonObject *args, GError **errp)
{
    g_set_error(errp, GW_ERROR, GW_ERROR_DEVICE_NOT_FOUND,
                "Device 'x' not found");
    return NULL;
}

static JsonNode *qmp_test_list(JsonObject *args, GError **errp)
{
    JsonArray *a = json_array_new();
    JsonNode *node = json_node_new(JSON_NODE_ARRAY);

    for (int i = 1; i <= 3; i++) {
        json_array_add_int_element(a, i);
    }
    json_node_take_array(node, a);
    return node;
}

static JsonNode *qmp_test_unicode(JsonObject *args, GError **errp)
{
    /* e acute, snowman, G clef (outside the BMP), a tab and a DEL */
    return json_node_init_string(
        json_node_alloc(), "h\xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e\t\x7f");
}

static JsonNode *qmp_test_emit(JsonObject *args, GError **errp)
{
    monitor_emit_event("TEST_SYNC", NULL);
    return qmp_return_empty();
}

static JsonNode *qmp_test_null(JsonObject *args, GError **errp)
{
    return NULL; /* breaks the contract on purpose */
}

static JsonNode *qmp_test_big(JsonObject *args, GError **errp)
{
    g_autofree char *s = g_malloc(1 << 20);
    JsonNode *node;

    memset(s, 'x', (1 << 20) - 1);
    s[(1 << 20) - 1] = '\0';
    node = json_node_init_string(json_node_alloc(), s);
    return node;
}

static GMainLoop *quit_loop;

/* The way the system's `quit` is meant to be written. */
static JsonNode *qmp_test_quit(JsonObject *args, GError **errp)
{
    g_main_loop_quit(quit_loop);
    return qmp_return_empty();
}

static const MonitorCommand test_cmds[] = {
    {.name = "test-quit", .handler = qmp_test_quit},
    {.name = "test-echo", .handler = qmp_test_echo},
    {.name = "test-fail", .handler = qmp_test_fail},
    {.name = "test-no-device", .handler = qmp_test_no_device},
    {.name = "test-list", .handler = qmp_test_list},
    {.name = "test-unicode", .handler = qmp_test_unicode},
    {.name = "test-emit", .handler = qmp_test_emit},
    {.name = "test-null", .handler = qmp_test_null},
    {.name = "test-big", .handler = qmp_test_big},
};

/* ---- a session without sockets ------------------------------------------- */

typedef struct Client {
    GString *out;
    QmpSession *s;
} Client;

static void client_out(void *opaque, const char *data, size_t len)
{
    g_string_append_len(((Client *)opaque)->out, data, (gssize)len);
}

static Client *client_new(void)
{
    Client *c = g_new0(Client, 1);

    c->out = g_string_new(NULL);
    c->s = qmp_session_new(client_out, c);
    return c;
}

static void client_free(Client *c)
{
    qmp_session_free(c->s);
    g_string_free(c->out, TRUE);
    g_free(c);
}

static void send_str(Client *c, const char *text)
{
    qmp_session_feed(c->s, text, strlen(text));
}

/* Next output line without its CRLF; checks CRLF and ASCII. NULL if none. */
static char *take_line(Client *c)
{
    const char *crlf = strstr(c->out->str, "\r\n");
    char *line;

    if (!crlf) {
        assert_int_equal(c->out->len, 0); /* no half line left behind */
        return NULL;
    }
    line = g_strndup(c->out->str, (gsize)(crlf - c->out->str));
    g_string_erase(c->out, 0, crlf - c->out->str + 2);
    for (const char *p = line; *p; p++) {
        assert_true(*p >= 0x20 && *p < 0x7f);
    }
    assert_null(strchr(line, '\n'));
    return line;
}

static void expect_line(Client *c, const char *want)
{
    g_autofree char *line = take_line(c);

    assert_non_null(line);
    assert_string_equal(line, want);
}

static void expect_nothing(Client *c)
{
    assert_int_equal(c->out->len, 0);
}

static void expect_error(Client *c, const char *cls, const char *desc)
{
    g_autofree char *want = g_strdup_printf(
        "{\"error\": {\"class\": \"%s\", \"desc\": \"%s\"}}", cls, desc);

    expect_line(c, want);
}

/* A session past its greeting, still negotiating. */
static Client *client_greeted(void)
{
    Client *c = client_new();
    char *greeting = take_line(c);

    assert_true(g_str_has_prefix(greeting, "{\"QMP\": {"));
    g_free(greeting);
    return c;
}

/* A session past the greeting and capabilities negotiation. */
static Client *client_ready(void)
{
    Client *c = client_greeted();

    send_str(c, "{\"execute\": \"qmp_capabilities\"}");
    expect_line(c, "{\"return\": {}}");
    assert_true(qmp_session_negotiated(c->s));
    return c;
}

/* ---- protocol tests ------------------------------------------------------ */

static void test_greeting(void **state)
{
    Client *c = client_new();

    /* the exact bytes: QEMU's shape, our version, no capabilities */
    assert_string_equal(c->out->str,
                        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 3, "
                        "\"minor\": 2, \"major\": 1}, \"package\": "
                        "\"godwit-test\"}, \"capabilities\": []}}\r\n");
    assert_false(qmp_session_negotiated(c->s));
    client_free(c);
}

static void test_negotiation(void **state)
{
    Client *c = client_greeted();

    send_str(c, "{\"execute\": \"test-list\"}");
    expect_error(c, "CommandNotFound",
                 "Expecting capabilities negotiation with "
                 "'qmp_capabilities'");
    send_str(c, "{\"execute\": \"no-such-command\", \"id\": 1}");
    expect_line(c, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
                   "\"Expecting capabilities negotiation with "
                   "'qmp_capabilities'\"}, \"id\": 1}");
    send_str(c, "{\"execute\": \"qmp_capabilities\", "
                "\"arguments\": {\"enable\": [\"oob\"]}}");
    expect_error(c, "GenericError", "Capability 'oob' not available");
    send_str(c, "{\"execute\": \"qmp_capabilities\", "
                "\"arguments\": {\"enable\": [\"x\"]}}");
    expect_error(c, "GenericError",
                 "Parameter 'enable[0]' does not accept value 'x'");
    send_str(c, "{\"execute\": \"qmp_capabilities\", "
                "\"arguments\": {\"bogus\": 1}}");
    expect_error(c, "GenericError", "Parameter 'bogus' is unexpected");
    assert_false(qmp_session_negotiated(c->s));

    send_str(c, "{\"execute\": \"qmp_capabilities\", "
                "\"arguments\": {\"enable\": []}, \"id\": \"neg\"}");
    expect_line(c, "{\"return\": {}, \"id\": \"neg\"}");
    assert_true(qmp_session_negotiated(c->s));
    send_str(c, "{\"execute\": \"qmp_capabilities\"}");
    expect_error(c, "CommandNotFound",
                 "Capabilities negotiation is already complete, command "
                 "ignored");
    send_str(c, "{\"execute\": \"test-list\"}");
    expect_line(c, "{\"return\": [1, 2, 3]}");
    client_free(c);
}

static void test_id_echo(void **state)
{
    Client *c = client_ready();

    send_str(c, "{\"execute\": \"test-list\", \"id\": 42}");
    expect_line(c, "{\"return\": [1, 2, 3], \"id\": 42}");
    send_str(c, "{\"id\": \"abc\", \"execute\": \"test-fail\"}");
    expect_line(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                   "\"it failed\"}, \"id\": \"abc\"}");
    send_str(c, "{\"execute\": \"test-echo\", \"arguments\": {\"a\": true}, "
                "\"id\": {\"x\": [1, \"y\", null], \"z\": 1.5}}");
    expect_line(c, "{\"return\": {\"a\": true}, \"id\": {\"x\": [1, \"y\", "
                   "null], \"z\": 1.5}}");
    /* the id comes back even when the request itself is refused */
    send_str(c, "{\"execute\": \"nope\", \"id\": [7]}");
    expect_line(c, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
                   "\"The command nope has not been found\"}, \"id\": [7]}");
    client_free(c);
}

static void test_malformed_then_good(void **state)
{
    Client *c = client_ready();
    g_autofree char *line = NULL;

    send_str(c, "{\"execute\": }");
    line = take_line(c);
    assert_non_null(line);
    assert_true(g_str_has_prefix(line, "{\"error\": {\"class\": "
                                       "\"GenericError\", \"desc\": "
                                       "\"JSON parse error, "));
    assert_null(strstr(line, "\"id\""));
    send_str(c, "{'execute': 'test-list', 'id': 'single'}");
    expect_line(c, "{\"return\": [1, 2, 3], \"id\": \"single\"}");
    client_free(c);
}

static void test_oversized(void **state)
{
    Client *c = client_ready();
    GString *big = g_string_new("{\"execute\": \"test-echo\", "
                                "\"arguments\": {\"pad\": \"");

    while (big->len < (2u << 20)) {
        g_string_append(big, "0123456789{}[]");
    }
    g_string_append(big, "\"}, \"id\": 1}");
    qmp_session_feed(c->s, big->str, big->len);
    expect_error(c, "GenericError",
                 "JSON message size limit (1048576 bytes) exceeded");
    expect_nothing(c);
    send_str(c, "{\"execute\": \"test-list\", \"id\": 2}");
    expect_line(c, "{\"return\": [1, 2, 3], \"id\": 2}");
    g_string_free(big, TRUE);
    client_free(c);
}

static void test_too_deep(void **state)
{
    Client *c = client_ready();
    GString *deep = g_string_new("{\"execute\": \"test-echo\", "
                                 "\"arguments\": {\"a\": ");

    for (int i = 0; i < 80; i++) {
        g_string_append_c(deep, '[');
    }
    for (int i = 0; i < 80; i++) {
        g_string_append_c(deep, ']');
    }
    g_string_append(deep, "}}");
    send_str(c, deep->str);
    expect_error(c, "GenericError", "JSON nesting depth limit (64) exceeded");
    expect_nothing(c);
    send_str(c, "{\"execute\": \"test-list\"}");
    expect_line(c, "{\"return\": [1, 2, 3]}");
    g_string_free(deep, TRUE);
    client_free(c);
}

static void test_non_object(void **state)
{
    Client *c = client_ready();

    send_str(c, "[1, 2]");
    expect_error(c, "GenericError", "QMP input must be a JSON object");
    send_str(c, "42\n");
    expect_error(c, "GenericError", "QMP input must be a JSON object");
    send_str(c, "\"execute\"");
    expect_error(c, "GenericError", "QMP input must be a JSON object");
    client_free(c);
}

static void test_bad_members(void **state)
{
    Client *c = client_ready();

    send_str(c, "{\"execute\": \"test-echo\", \"arguments\": [1], "
                "\"id\": 3}");
    expect_line(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                   "\"QMP input member 'arguments' must be an object\"}, "
                   "\"id\": 3}");
    send_str(c, "{\"execute\": 1}");
    expect_error(c, "GenericError",
                 "QMP input member 'execute' must be a string");
    send_str(c, "{\"execute\": \"test-list\", \"foo\": 1}");
    expect_error(c, "GenericError", "QMP input member 'foo' is unexpected");
    send_str(c, "{\"exec-oob\": \"test-list\"}");
    expect_error(c, "GenericError",
                 "QMP input member 'exec-oob' is unexpected");
    send_str(c, "{\"arguments\": {}}");
    expect_error(c, "GenericError", "QMP input lacks member 'execute'");
    /* the same checks apply during negotiation */
    {
        Client *n = client_greeted();

        send_str(n, "{\"execute\": \"qmp_capabilities\", \"arguments\": 1}");
        expect_error(n, "GenericError",
                     "QMP input member 'arguments' must be an object");
        assert_false(qmp_session_negotiated(n->s));
        client_free(n);
    }
    client_free(c);
}

static void test_errors_and_classes(void **state)
{
    Client *c = client_ready();

    send_str(c, "{\"execute\": \"foo\"}");
    expect_error(c, "CommandNotFound", "The command foo has not been found");
    send_str(c, "{\"execute\": \"test-no-device\"}");
    expect_error(c, "DeviceNotFound", "Device 'x' not found");
    send_str(c, "{\"execute\": \"test-null\"}");
    expect_error(c, "GenericError",
                 "internal error: command test-null returned no result");
    client_free(c);
}

static void test_ascii_crlf(void **state)
{
    Client *c = client_ready();

    send_str(c, "{\"execute\": \"test-unicode\"}");
    /* take_line() checks that every byte is printable ASCII */
    expect_line(c, "{\"return\": \"h\\u00e9 \\u2603 \\ud834\\udd1e\\t"
                   "\\u007f\"}");
    /* non-ASCII input (UTF-8) comes back escaped */
    send_str(c, "{\"execute\": \"test-echo\", \"arguments\": "
                "{\"k\\u00e9y\": \"\xe2\x82\xac \\\"q\\\" \\\\\"}}");
    expect_line(c, "{\"return\": {\"k\\u00e9y\": \"\\u20ac \\\"q\\\" "
                   "\\\\\"}}");
    client_free(c);
}

static void test_split_and_batched(void **state)
{
    Client *c = client_ready();
    const char *msg = "{\"execute\": \"test-list\", \"id\": 1}"
                      "{\"execute\": \"test-echo\", \"id\": 2}\r\n";

    for (size_t i = 0; msg[i]; i++) {
        qmp_session_feed(c->s, msg + i, 1);
    }
    expect_line(c, "{\"return\": [1, 2, 3], \"id\": 1}");
    expect_line(c, "{\"return\": {}, \"id\": 2}");
    expect_nothing(c);
    client_free(c);
}

static void test_query_commands(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) ret = monitor_dispatch("query-commands", NULL, &err);
    g_autofree char *text = NULL;

    assert_non_null(ret);
    text = monitor_json_to_string(ret);
    /* sorted, QMP names only (HMP-only "help" is not listed) */
    assert_string_equal(
        text, "[{\"name\": \"human-monitor-command\"}, "
              "{\"name\": \"qmp_capabilities\"}, "
              "{\"name\": \"query-commands\"}, {\"name\": \"test-big\"}, "
              "{\"name\": \"test-echo\"}, {\"name\": \"test-emit\"}, "
              "{\"name\": \"test-fail\"}, {\"name\": \"test-list\"}, "
              "{\"name\": \"test-no-device\"}, {\"name\": \"test-null\"}, "
              "{\"name\": \"test-quit\"}, {\"name\": \"test-unicode\"}]");
    assert_non_null(monitor_find_qmp("test-echo"));
    assert_null(monitor_find_qmp("help"));
}

static void test_two_sessions(void **state)
{
    Client *a = client_greeted();
    Client *b = client_greeted();

    send_str(a, "{\"execute\": \"qmp_capabilities\"}");
    expect_line(a, "{\"return\": {}}");
    expect_nothing(b);
    /* b is still negotiating, and holds half a message */
    send_str(b, "{\"execute\": \"test-li");
    send_str(a, "{\"execute\": \"test-list\"}");
    expect_line(a, "{\"return\": [1, 2, 3]}");
    expect_nothing(b);
    send_str(b, "st\"}");
    expect_error(b, "CommandNotFound",
                 "Expecting capabilities negotiation with "
                 "'qmp_capabilities'");
    expect_nothing(a);
    client_free(a);
    client_free(b);
}

/* ---- events -------------------------------------------------------------- */

/* Iterates the default main context until `c` has output or 5 s pass. */
static void pump_until_output(Client *c)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    while (c->out->len == 0 && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
}

static void test_event_after_negotiation(void **state)
{
    Client *ready = client_ready();
    Client *fresh = client_greeted();
    g_autofree char *line = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *ev, *ts;
    JsonObject *data = json_object_new();
    gint64 before = g_get_real_time() / G_USEC_PER_SEC;

    json_object_set_string_member(data, "status", "completed");
    /* outside the main loop: queued, delivered by the loop */
    monitor_emit_event("MIGRATION", data);
    expect_nothing(ready);
    pump_until_output(ready);
    line = take_line(ready);
    assert_non_null(line);
    expect_nothing(fresh);

    assert_true(json_parser_load_from_data(parser, line, -1, NULL));
    ev = json_node_get_object(json_parser_get_root(parser));
    assert_string_equal(json_object_get_string_member(ev, "event"),
                        "MIGRATION");
    assert_string_equal(
        json_object_get_string_member(json_object_get_object_member(ev, "data"),
                                      "status"),
        "completed");
    ts = json_object_get_object_member(ev, "timestamp");
    assert_true(json_object_get_int_member(ts, "seconds") >= before);
    assert_in_range(json_object_get_int_member(ts, "microseconds"), 0, 999999);
    assert_int_equal(json_object_get_size(ev), 3);

    /* without data there is no "data" member */
    monitor_emit_event("STOP", NULL);
    pump_until_output(ready);
    g_free(line);
    line = take_line(ready);
    assert_non_null(strstr(line, "\"event\": \"STOP\"}"));
    assert_null(strstr(line, "\"data\""));
    expect_nothing(fresh);
    client_free(ready);
    client_free(fresh);
}

static gpointer emit_many(gpointer opaque)
{
    for (int i = 0; i < 200; i++) {
        JsonObject *data = json_object_new();

        json_object_set_int_member(data, "pass", i);
        monitor_emit_event("MIGRATION_PASS", data);
    }
    return NULL;
}

static void test_events_from_thread_in_order(void **state)
{
    Client *c = client_ready();
    GThread *t = g_thread_new("emitter", emit_many, NULL);
    int next = 0;
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    while (next < 200 && g_get_monotonic_time() < deadline) {
        g_autofree char *line = NULL;

        g_main_context_iteration(NULL, FALSE);
        while ((line = take_line(c))) {
            g_autofree char *want = g_strdup_printf(
                "\"event\": \"MIGRATION_PASS\", \"data\": {\"pass\": %d}}",
                next);

            assert_true(g_str_has_suffix(line, want));
            next++;
            g_free(line);
        }
    }
    g_thread_join(t);
    assert_int_equal(next, 200);
    client_free(c);
}

static gboolean feed_emit_cb(gpointer opaque)
{
    send_str(opaque, "{\"execute\": \"test-emit\", \"id\": 9}");
    return G_SOURCE_REMOVE;
}

static void test_event_in_handler_before_reply(void **state)
{
    Client *c = client_ready();
    g_autofree char *line = NULL;

    /* in the main loop, as a real client's request is */
    g_idle_add(feed_emit_cb, c);
    pump_until_output(c);
    line = take_line(c);
    assert_non_null(strstr(line, "\"event\": \"TEST_SYNC\""));
    expect_line(c, "{\"return\": {}, \"id\": 9}");
    client_free(c);
}

/* ---- argument helpers ---------------------------------------------------- */

static void test_arg_helpers(void **state)
{
    static const char *const allowed[] = {"uri", "detach", "n", NULL};
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;
    JsonObject *args;
    const char *uri = NULL, *absent = "default";
    int64_t n = 0;
    bool detach = false;

    assert_true(json_parser_load_from_data(
        p, "{\"uri\": \"tcp:1:2\", \"detach\": true, \"n\": 5}", -1, NULL));
    args = json_node_get_object(json_parser_get_root(p));
    assert_true(qmp_args_check(args, allowed, &err));
    assert_true(qmp_arg_str(args, "uri", true, &uri, &err));
    assert_string_equal(uri, "tcp:1:2");
    assert_true(qmp_arg_bool(args, "detach", false, &detach, &err));
    assert_true(detach);
    assert_true(qmp_arg_int(args, "n", true, &n, &err));
    assert_int_equal(n, 5);
    assert_true(qmp_arg_str(args, "other", false, &absent, &err));
    assert_string_equal(absent, "default");

    assert_false(qmp_arg_str(args, "other", true, &absent, &err));
    assert_string_equal(err->message, "Parameter 'other' is missing");
    g_clear_error(&err);
    assert_false(qmp_arg_int(args, "uri", true, &n, &err));
    assert_string_equal(err->message,
                        "Invalid parameter type for 'uri', expected: integer");
    g_clear_error(&err);
    assert_false(qmp_arg_str(args, "n", true, &uri, &err));
    assert_string_equal(err->message,
                        "Invalid parameter type for 'n', expected: string");
    g_clear_error(&err);
    assert_false(qmp_arg_bool(args, "n", true, &detach, &err));
    g_clear_error(&err);
    assert_false(qmp_args_check(args, allowed + 1, &err));
    assert_string_equal(err->message, "Parameter 'uri' is unexpected");
}

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

    assert_int_equal(stat(path, &st), 0);
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

static void test_tcp_socket(void **state)
{
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting),
        cmocka_unit_test(test_negotiation),
        cmocka_unit_test(test_id_echo),
        cmocka_unit_test(test_malformed_then_good),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_too_deep),
        cmocka_unit_test(test_non_object),
        cmocka_unit_test(test_bad_members),
        cmocka_unit_test(test_errors_and_classes),
        cmocka_unit_test(test_ascii_crlf),
        cmocka_unit_test(test_split_and_batched),
        cmocka_unit_test(test_query_commands),
        cmocka_unit_test(test_two_sessions),
        cmocka_unit_test(test_event_after_negotiation),
        cmocka_unit_test(test_events_from_thread_in_order),
        cmocka_unit_test(test_event_in_handler_before_reply),
        cmocka_unit_test(test_arg_helpers),
        cmocka_unit_test(test_spec_parse),
        cmocka_unit_test(test_unix_socket_two_clients),
        cmocka_unit_test(test_unix_path_not_socket),
        cmocka_unit_test(test_slow_reader_dropped),
        cmocka_unit_test(test_half_close_gets_replies),
        cmocka_unit_test(test_quit_flushes_replies),
        cmocka_unit_test(test_tcp_socket),
    };

    monitor_set_version(1, 2, 3, "godwit-test");
    monitor_register_commands(test_cmds, G_N_ELEMENTS(test_cmds));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
