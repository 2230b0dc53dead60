/*
 * Unit tests for the QMP server (monitor/qmp.c, monitor.c, json-writer.c,
 * qmp-args.c): sessions driven byte by byte without sockets. The
 * transports are tested in test-chardev.c.
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

/*
 * Numbers and strings are taken exactly or refused: json-glib alone wraps
 * an out-of-range integer (99999999999999999999 read as -1) and cuts a
 * string at \u0000.
 */
static void test_exact_numbers_and_strings(void **state)
{
    static const char *const refused[][2] = {
        {"99999999999999999999", "integer 99999999999999999999"},
        {"-99999999999999999999999", "integer -99999999999999999999999"},
        {"9223372036854775808", "integer 9223372036854775808"},
        {"-9223372036854775809", "integer -9223372036854775809"},
        {"[1, {\"b\": 18446744073709551616}]", "integer 18446744073709551616"},
    };
    Client *c = client_ready();
    g_autofree char *line = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(refused); i++) {
        g_autofree char *req = g_strdup_printf(
            "{\"execute\": \"test-echo\", \"arguments\": {\"v\": %s}, "
            "\"id\": 1}",
            refused[i][0]);
        g_autofree char *want = g_strdup_printf(
            "JSON parse error, %s is out of range (QMP integers are signed "
            "64-bit: -9223372036854775808 to 9223372036854775807)",
            refused[i][1]);

        send_str(c, req);
        expect_error(c, "GenericError", want);
    }
    /* the extremes themselves, floats and digits in strings are exact */
    send_str(c, "{\"execute\": \"test-echo\", \"arguments\": "
                "{\"a\": 9223372036854775807, \"b\": -9223372036854775808, "
                "\"c\": 1e30, \"d\": \"99999999999999999999\", "
                "\"e\": \"\\\\u0000\"}}");
    expect_line(c, "{\"return\": {\"a\": 9223372036854775807, "
                   "\"b\": -9223372036854775808, \"c\": 1e+30, "
                   "\"d\": \"99999999999999999999\", \"e\": \"\\\\u0000\"}}");
    send_str(c, "{\"execute\": \"test-echo\", \"arguments\": "
                "{\"s\": \"a\\u0000b\"}, \"id\": 2}");
    expect_error(c, "GenericError",
                 "JSON parse error, \\\\u0000 is not "
                 "supported");
    send_str(c, "{'execute': 'test-echo', 'arguments': {'s': 'a\\u0000'}}");
    expect_error(c, "GenericError",
                 "JSON parse error, \\\\u0000 is not "
                 "supported");
    /* the session goes on */
    send_str(c, "{\"execute\": \"test-list\", \"id\": 3}");
    line = take_line(c);
    assert_string_equal(line, "{\"return\": [1, 2, 3], \"id\": 3}");
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
        cmocka_unit_test(test_exact_numbers_and_strings),
    };

    qmp_test_register();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
