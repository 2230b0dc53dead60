/*
 * Unit tests for HMP (monitor/hmp.c, hmp-session.c): the argument parser,
 * dispatch to QMP handlers and printing, help, the console session, and
 * human-monitor-command.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "monitor/monitor-internal.h"

/* ---- fake commands ------------------------------------------------------- */

static JsonNode *qmp_echo(JsonObject *args, GError **errp)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_set_object(node, args);
    return node;
}

/* Prints the QMP result as JSON, to show what the handler got. */
static void hmp_print_json(GString *out, JsonNode *ret)
{
    monitor_json_append(out, ret);
    g_string_append_c(out, '\n');
}

static JsonNode *qmp_status(JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_object_set_string_member(o, "status", "running");
    json_object_set_boolean_member(o, "running", TRUE);
    json_node_take_object(node, o);
    return node;
}

static void hmp_print_status(GString *out, JsonNode *ret)
{
    g_string_append_printf(
        out, "VM status: %s\n",
        json_object_get_string_member(json_node_get_object(ret), "status"));
}

static JsonNode *qmp_fail(JsonObject *args, GError **errp)
{
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "it failed");
    return NULL;
}

static int hmp_only_runs;

static JsonNode *hmp_only(JsonObject *args, GError **errp)
{
    hmp_only_runs++;
    return json_node_init_string(json_node_alloc(), "hmp only ran\n");
}

static void hmp_print_str(GString *out, JsonNode *ret)
{
    g_string_append(out, json_node_get_string(ret));
}

/* HMP "setcap NAME on|off" -> QMP {"capabilities": [{...}]} */
static JsonObject *hmp_args_setcap(JsonObject *hmp_args, GError **errp)
{
    JsonObject *qmp = json_object_new();
    JsonObject *cap = json_object_new();
    JsonArray *caps = json_array_new();
    const char *name = json_object_get_string_member(hmp_args, "capability");

    if (!strcmp(name, "bogus")) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Invalid capability 'bogus'");
        json_object_unref(qmp);
        json_object_unref(cap);
        json_array_unref(caps);
        return NULL;
    }
    json_object_set_string_member(cap, "capability", name);
    json_object_set_boolean_member(
        cap, "state", json_object_get_boolean_member(hmp_args, "state"));
    json_array_add_object_element(caps, cap);
    json_object_set_array_member(qmp, "capabilities", caps);
    return qmp;
}

static const MonitorCommand test_cmds[] = {
    {
        .name = "test-args",
        .handler = qmp_echo,
        .hmp_name = "targs",
        .args_type = "detach:-d,resume:-r,uri:s,count:i?,size:o?,on:b?",
        .params = "[-d] [-r] uri [count [size [on|off]]]",
        .help = "echo the arguments",
        .hmp_print = hmp_print_json,
    },
    {
        .name = "test-say",
        .handler = qmp_echo,
        .hmp_name = "say",
        .args_type = "text:S",
        .params = "text",
        .help = "say something",
        .hmp_print = hmp_print_json,
    },
    {
        .name = "query-status",
        .handler = qmp_status,
        .hmp_name = "info status",
        .help = "show the current VM status",
        .hmp_print = hmp_print_status,
    },
    {
        .name = "test-fail",
        .handler = qmp_fail,
        .hmp_name = "fail",
        .help = "always fails",
    },
    {
        .name = "test-silent",
        .handler = qmp_status,
        .hmp_name = "silent",
        .help = "prints nothing",
    },
    {
        .hmp_name = "hmponly",
        .handler = hmp_only,
        .help = "an HMP-only command",
        .hmp_print = hmp_print_str,
    },
    {
        .name = "test-set-capabilities",
        .handler = qmp_echo,
        .hmp_name = "setcap",
        .args_type = "capability:s,state:b",
        .params = "capability state",
        .help = "set a capability",
        .hmp_args = hmp_args_setcap,
        .hmp_print = hmp_print_json,
    },
};

/* ---- argument parsing ---------------------------------------------------- */

typedef struct ParseCase {
    const char *args_type;
    const char *text;
    const char *json;  /* expected arguments, or NULL */
    const char *error; /* expected error (prefix), or NULL */
} ParseCase;

static const ParseCase parse_cases[] = {
    /* s: a word or a quoted string */
    {"uri:s", "tcp:1:2", "{\"uri\": \"tcp:1:2\"}", NULL},
    {"uri:s", "  \"exec:cat > vm.mig\"  ", "{\"uri\": \"exec:cat > vm.mig\"}",
     NULL},
    {"uri:s", "'it\\'s \"q\"'", "{\"uri\": \"it's \\\"q\\\"\"}", NULL},
    {"uri:s", "\"a\\\\b\\\"c\\n\\t\"", "{\"uri\": \"a\\\\b\\\"c\\n\\t\"}",
     NULL},
    {"uri:s", "", NULL, "missing argument 'uri'"},
    {"uri:s", "   ", NULL, "missing argument 'uri'"},
    {"uri:s", "a b", NULL, "too many arguments: 'b'"},
    {"uri:s", "\"abc", NULL, "unterminated string literal"},
    {"uri:s", "\"a\\qb\"", NULL, "unsupported escape code: '\\q'"},
    /* i: integers, decimal or hex, signed */
    {"n:i", "42", "{\"n\": 42}", NULL},
    {"n:i", "-7", "{\"n\": -7}", NULL},
    {"n:i", "0x10", "{\"n\": 16}", NULL},
    {"n:i", "12x", NULL, "invalid integer '12x'"},
    {"n:i", "99999999999999999999", NULL, "invalid integer"},
    /* o: sizes, bytes without a suffix */
    {"sz:o", "64M", "{\"sz\": 67108864}", NULL},
    {"sz:o", "4096", "{\"sz\": 4096}", NULL},
    {"sz:o", "1.5k", "{\"sz\": 1536}", NULL},
    {"sz:o", "12Q", NULL, "invalid size '12Q'"},
    {"sz:o", "16E", NULL, "size '16E' is too large"},
    {"sz:o", "8E", NULL, "size '8E' is too large"},
    /* b: on/off */
    {"on:b", "on", "{\"on\": true}", NULL},
    {"on:b", "off", "{\"on\": false}", NULL},
    {"on:b", "maybe", NULL, "'maybe' is not a boolean"},
    /* optional arguments */
    {"a:s,b:s?", "x", "{\"a\": \"x\"}", NULL},
    {"a:s,b:s?", "x y", "{\"a\": \"x\", \"b\": \"y\"}", NULL},
    {"a:s,b:s?", "x y z", NULL, "too many arguments: 'z'"},
    {"a:i?,b:i?", "", "{}", NULL},
    /* S: the rest of the line */
    {"text:S", "  hello   world  ", "{\"text\": \"hello   world\"}", NULL},
    {"name:s,text:S?", "n", "{\"name\": \"n\"}", NULL},
    {"name:s,text:S?", "n  a \"b\" c",
     "{\"name\": \"n\", \"text\": "
     "\"a \\\"b\\\" c\"}",
     NULL},
    {"text:S", "", NULL, "missing argument 'text'"},
    /* flags, before the positional arguments */
    {"detach:-d,resume:-r,uri:s", "-d -r u",
     "{\"detach\": true, \"resume\": true, \"uri\": \"u\"}", NULL},
    {"detach:-d,resume:-r,uri:s", "-rd u",
     "{\"resume\": true, \"detach\": true, \"uri\": \"u\"}", NULL},
    {"detach:-d,resume:-r,uri:s", "u", "{\"uri\": \"u\"}", NULL},
    {"detach:-d,resume:-r,uri:s", "-x u", NULL, "invalid option '-x'"},
    {"detach:-d,resume:-r,uri:s", "-d", NULL, "missing argument 'uri'"},
    {"detach:-d,uri:s", "u -d", NULL, "too many arguments: '-d'"},
    {"force:-f,n:i", "-f -5", "{\"force\": true, \"n\": -5}", NULL},
    {"n:i", "-5", "{\"n\": -5}", NULL},
    /* no arguments */
    {"", "", "{}", NULL},
    {NULL, "  ", "{}", NULL},
    {"", "extra", NULL, "too many arguments: 'extra'"},
};

static void test_parse_args(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(parse_cases); i++) {
        const ParseCase *t = &parse_cases[i];
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonObject) args =
            hmp_parse_args(t->args_type, t->text, &err);

        if (t->error) {
            if (args || !g_str_has_prefix(err->message, t->error)) {
                fail_msg("'%s' by '%s': expected error '%s', got '%s'", t->text,
                         t->args_type, t->error,
                         args ? "success" : err->message);
            }
            continue;
        }
        if (!args) {
            fail_msg("'%s' by '%s': %s", t->text, t->args_type, err->message);
        }
        {
            g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
            g_autofree char *json = NULL;

            json_node_set_object(node, args);
            json = monitor_json_to_string(node);
            if (strcmp(json, t->json)) {
                fail_msg("'%s' by '%s': got %s, want %s", t->text, t->args_type,
                         json, t->json);
            }
        }
    }
}

static void test_args_type_valid(void **state)
{
    static const char *const good[] = {
        NULL,
        "",
        "uri:s",
        "detach:-d,uri:s",
        "a:s,b:i?,c:o?,d:b?",
        "name:s,rest:S?",
        "x:-x,y:-y",
    };
    static const char *const bad[] = {
        "uri", ":s",    "uri:z", "uri:s??", "a:s?,b:s", "a:S,b:s",
        "f:-", "f:-ab", "f:-d?", "a:s,",    "a:s,,b:s",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        if (!hmp_args_type_valid(good[i])) {
            fail_msg("'%s' should be valid", good[i]);
        }
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        if (hmp_args_type_valid(bad[i])) {
            fail_msg("'%s' should be refused", bad[i]);
        }
    }
}

/* ---- running lines ------------------------------------------------------- */

typedef struct RunCase {
    const char *line;
    const char *output;
} RunCase;

static const RunCase run_cases[] = {
    {"targs -d tcp:x 5 1K on",
     "{\"detach\": true, \"uri\": \"tcp:x\", \"count\": 5, \"size\": 1024, "
     "\"on\": true}\n"},
    {"  targs   'a b'  ", "{\"uri\": \"a b\"}\n"},
    {"say hello, world", "{\"text\": \"hello, world\"}\n"},
    {"info status", "VM status: running\n"},
    {"info   status  ", "VM status: running\n"},
    {"info nope", "unknown command: 'info nope'\n"},
    {"foo bar", "unknown command: 'foo'\n"},
    {"", ""},
    {"   ", ""},
    {"targs", "missing argument 'uri'\nTry \"help targs\" for more "
              "information\n"},
    {"targs x 1 12Q",
     "invalid size '12Q' (expected a number with an optional B/K/M/G/T/P/E "
     "suffix)\nTry \"help targs\" for more information\n"},
    {"info status now", "too many arguments: 'now'\nTry \"help info status\" "
                        "for more information\n"},
    {"fail", "Error: it failed\n"},
    {"silent", ""},
    {"hmponly", "hmp only ran\n"},
    {"setcap xbzrle on",
     "{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": true}]}\n"},
    {"setcap bogus on", "Error: Invalid capability 'bogus'\n"},
    {"setcap xbzrle perhaps",
     "'perhaps' is not a boolean (expected on or off)\nTry \"help setcap\" "
     "for more information\n"},
    {"help targs",
     "targs [-d] [-r] uri [count [size [on|off]]] -- echo the arguments\n"},
    {"help info status", "info status -- show the current VM status\n"},
    {"? say", "say text -- say something\n"},
    {"help nope", "unknown command: 'nope'\n"},
    {"help info", "info status -- show the current VM status\n"},
    {"info", "info status -- show the current VM status\n"},
};

static void test_run_lines(void **state)
{
    hmp_only_runs = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(run_cases); i++) {
        g_autofree char *out = hmp_run_line(run_cases[i].line);

        if (strcmp(out, run_cases[i].output)) {
            fail_msg("'%s': got '%s', want '%s'", run_cases[i].line, out,
                     run_cases[i].output);
        }
    }
    assert_int_equal(hmp_only_runs, 1);
}

static void test_help_list(void **state)
{
    g_autofree char *out = hmp_run_line("help");

    /* sorted, info in its place, info sub-commands not listed */
    assert_string_equal(
        out, "fail -- always fails\n"
             "help [cmd] -- show the help (also 'help info' for the info "
             "commands)\n"
             "hmponly -- an HMP-only command\n"
             "info [subcommand] -- show various information about the "
             "system state\n"
             "say text -- say something\n"
             "setcap capability state -- set a capability\n"
             "silent -- prints nothing\n"
             "targs [-d] [-r] uri [count [size [on|off]]] -- echo the "
             "arguments\n");
}

/* ---- human-monitor-command ----------------------------------------------- */

static void test_human_monitor_command(void **state)
{
    g_autoptr(JsonObject) args = json_object_new();
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) ret = NULL;

    json_object_set_string_member(args, "command-line", "info status");
    ret = monitor_dispatch("human-monitor-command", args, &err);
    assert_non_null(ret);
    /* CRLF line ends, as QEMU's monitor sends them */
    assert_string_equal(json_node_get_string(ret), "VM status: running\r\n");
    g_clear_pointer(&ret, json_node_unref);

    /* an HMP error is output, not a QMP error */
    json_object_set_string_member(args, "command-line", "fail");
    ret = monitor_dispatch("human-monitor-command", args, &err);
    assert_non_null(ret);
    assert_string_equal(json_node_get_string(ret), "Error: it failed\r\n");
    g_clear_pointer(&ret, json_node_unref);

    json_object_remove_member(args, "command-line");
    assert_null(monitor_dispatch("human-monitor-command", args, &err));
    assert_string_equal(err->message, "Parameter 'command-line' is missing");
    g_clear_error(&err);
    json_object_set_int_member(args, "command-line", 1);
    assert_null(monitor_dispatch("human-monitor-command", args, &err));
    assert_string_equal(err->message, "Invalid parameter type for "
                                      "'command-line', expected: string");
    g_clear_error(&err);
    json_object_set_string_member(args, "command-line", "info status");
    json_object_set_int_member(args, "cpu-index", 0);
    assert_null(monitor_dispatch("human-monitor-command", args, &err));
    assert_string_equal(err->message, "Parameter 'cpu-index' is unexpected");
}

static void collect(void *opaque, const char *data, size_t len)
{
    g_string_append_len(opaque, data, (gssize)len);
}

static void test_hmc_over_qmp(void **state)
{
    GString *out = g_string_new(NULL);
    QmpSession *s = qmp_session_new(collect, out);
    const char *req = "{\"execute\": \"qmp_capabilities\"}"
                      "{\"execute\": \"human-monitor-command\", \"arguments\": "
                      "{\"command-line\": \"say caf\xc3\xa9\"}, \"id\": 1}";

    g_string_truncate(out, 0); /* greeting */
    qmp_session_feed(s, req, strlen(req));
    assert_string_equal(out->str,
                        "{\"return\": {}}\r\n"
                        "{\"return\": \"{\\\"text\\\": \\\"caf\\\\u00e9\\\"}"
                        "\\r\\n\", \"id\": 1}\r\n");
    qmp_session_free(s);
    g_string_free(out, TRUE);
}

/* ---- the console session ------------------------------------------------- */

static void test_session(void **state)
{
    GString *out = g_string_new(NULL);
    HmpSession *s = hmp_session_new(collect, out);
    g_autofree char *banner = monitor_banner();
    g_autofree char *want = g_strdup_printf("%s\r\n(godwit) ", banner);
    GString *huge = g_string_new(NULL);

    assert_string_equal(banner, "godwit 7.8.9 monitor - type 'help' for more "
                                "information");
    assert_string_equal(out->str, want);
    g_string_truncate(out, 0);

    /* a line in pieces, CRLF-terminated, then two lines at once */
    hmp_session_feed(s, "info st", 7);
    assert_int_equal(out->len, 0);
    hmp_session_feed(s, "atus\r\nfail\n\n", 12);
    assert_string_equal(out->str, "VM status: running\r\n(godwit) "
                                  "Error: it failed\r\n(godwit) (godwit) ");
    g_string_truncate(out, 0);

    /* an overlong line is refused whole, and the next one works */
    while (huge->len <= HMP_MAX_LINE) {
        g_string_append(huge, "say xxxxxxxxxxxxxxxxxxxxxxxxxxxxx ");
    }
    hmp_session_feed(s, huge->str, huge->len);
    assert_int_equal(out->len, 0);
    hmp_session_feed(s, "\nsilent\n", 8);
    assert_string_equal(out->str, "line too long (more than 65536 bytes)\r\n"
                                  "(godwit) (godwit) ");
    g_string_free(huge, TRUE);
    hmp_session_free(s);
    g_string_free(out, TRUE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_args),
        cmocka_unit_test(test_args_type_valid),
        cmocka_unit_test(test_run_lines),
        cmocka_unit_test(test_help_list),
        cmocka_unit_test(test_human_monitor_command),
        cmocka_unit_test(test_hmc_over_qmp),
        cmocka_unit_test(test_session),
    };

    monitor_set_version(7, 8, 9, "");
    monitor_register_commands(test_cmds, G_N_ELEMENTS(test_cmds));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
