/*
 * Fake QMP commands shared by the monitor unit tests (test-qmp.c,
 * test-chardev.c): echo, failures, lists, unicode, events, a 1 MiB reply
 * and a quit that ends a main loop.
 */
#include <string.h>

#include "qmp-test-cmds.h"

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

GMainLoop *quit_loop;

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

void qmp_test_register(void)
{
    monitor_set_version(1, 2, 3, "godwit-test");
    monitor_register_commands(test_cmds, G_N_ELEMENTS(test_cmds));
}
