/*
 * The fuzz targets' monitor commands: see fuzz-monitor-cmds.h.
 */
#include <string.h>

#include "../../migration/options-int.h"
#include "crypto/authz.h"
#include "godwit/object.h"
#include "../../monitor/monitor-internal.h"
#include "fuzz-monitor-cmds.h"

static JsonNode *qmp_echo(JsonObject *args, GError **errp)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_set_object(node, args);
    return node;
}

static void hmp_print_json(GString *out, JsonNode *ret)
{
    monitor_json_append(out, ret);
    g_string_append_c(out, '\n');
}

static JsonNode *qmp_fail(JsonObject *args, GError **errp)
{
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "it failed");
    return NULL;
}

static JsonNode *qmp_list(JsonObject *args, GError **errp)
{
    JsonArray *a = json_array_new();
    JsonNode *node = json_node_new(JSON_NODE_ARRAY);

    for (int i = 1; i <= 3; i++) {
        json_array_add_int_element(a, i);
    }
    json_node_take_array(node, a);
    return node;
}

static JsonNode *qmp_unicode(JsonObject *args, GError **errp)
{
    return json_node_init_string(
        json_node_alloc(), "h\xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e\t\x7f");
}

static JsonNode *qmp_status(JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_object_set_string_member(o, "status", "paused");
    json_object_set_boolean_member(o, "running", FALSE);
    json_node_take_object(node, o);
    return node;
}

static void hmp_print_status(GString *out, JsonNode *ret)
{
    g_string_append_printf(
        out, "VM status: %s\n",
        json_object_get_string_member(json_node_get_object(ret), "status"));
}

static const MonitorCommand fuzz_cmds[] = {
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
        .name = "test-fail",
        .handler = qmp_fail,
        .hmp_name = "fail",
        .help = "always fails",
    },
    {.name = "test-list", .handler = qmp_list},
    {.name = "test-unicode", .handler = qmp_unicode},
    {
        .name = "query-status",
        .handler = qmp_status,
        .hmp_name = "info status",
        .help = "show the current VM status",
        .hmp_print = hmp_print_status,
    },
};

static bool not_busy(void)
{
    return false;
}

void fuzz_monitor_register(void)
{
    static bool done;

    if (done) {
        return;
    }
    done = true;
    monitor_set_version(0, 1, 0, "godwit-fuzz");
    monitor_register_commands(fuzz_cmds, G_N_ELEMENTS(fuzz_cmds));
    migration_options_init(not_busy, not_busy, not_busy);
    migration_options_register_commands();
    /* objects, but only the types that read no files: the authz lists */
    authz_register_types();
    object_register_commands();
}

void fuzz_monitor_reset(void)
{
    migration_options_reset();
    object_del_all();
}
