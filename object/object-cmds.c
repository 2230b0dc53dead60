/*
 * object-add / object-del in QMP and HMP. QMP's object-add is QEMU's flat
 * form: qom-type, id and the type's properties side by side; values are
 * flattened to the strings the command line would give (see object.h).
 */
#include <inttypes.h>

#include "godwit/monitor.h"
#include "godwit/object.h"

static bool props_flatten(GwProps *props, const char *prefix, JsonNode *node,
                          GError **errp);

/* A list of values or objects: "rules" -> "rules.0", "rules.1", ... */
static bool props_flatten_array(GwProps *props, const char *prefix,
                                JsonArray *a, GError **errp)
{
    for (guint i = 0; i < json_array_get_length(a); i++) {
        g_autofree char *key = g_strdup_printf("%s.%u", prefix, i);
        if (!props_flatten(props, key, json_array_get_element(a, i), errp)) {
            return false;
        }
    }
    return true;
}

static bool props_flatten_object(GwProps *props, const char *prefix,
                                 JsonObject *o, GError **errp)
{
    JsonObjectIter it;
    const char *name;
    JsonNode *member;

    json_object_iter_init_ordered(&it, o);
    while (json_object_iter_next_ordered(&it, &name, &member)) {
        g_autofree char *key =
            prefix ? g_strdup_printf("%s.%s", prefix, name) : g_strdup(name);
        if (!props_flatten(props, key, member, errp)) {
            return false;
        }
    }
    return true;
}

static bool props_flatten(GwProps *props, const char *prefix, JsonNode *node,
                          GError **errp)
{
    char *v;

    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT:
        return props_flatten_object(props, prefix, json_node_get_object(node),
                                    errp);
    case JSON_NODE_ARRAY:
        return props_flatten_array(props, prefix, json_node_get_array(node),
                                   errp);
    case JSON_NODE_NULL:
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Invalid parameter type for '%s', expected: value", prefix);
        return false;
    case JSON_NODE_VALUE:
        break;
    }
    switch (json_node_get_value_type(node)) {
    case G_TYPE_BOOLEAN:
        v = g_strdup(json_node_get_boolean(node) ? "on" : "off");
        break;
    case G_TYPE_INT64:
        v = g_strdup_printf("%" PRId64, json_node_get_int(node));
        break;
    case G_TYPE_DOUBLE:
        v = g_strdup_printf("%g", json_node_get_double(node));
        break;
    default:
        v = g_strdup(json_node_get_string(node));
        break;
    }
    g_hash_table_insert(props, g_strdup(prefix), v);
    return true;
}

static JsonNode *qmp_object_add(JsonObject *args, GError **errp)
{
    g_autoptr(GHashTable) props = gw_props_new();
    g_autofree char *type = NULL;
    g_autofree char *id = NULL;

    const char *unused;

    /* both strings, not objects flattened into "qom-type.x" keys */
    if (!qmp_arg_str(args, "qom-type", true, &unused, errp) ||
        !qmp_arg_str(args, "id", false, &unused, errp) ||
        !props_flatten_object(props, NULL, args, errp)) {
        return NULL;
    }
    type = gw_props_take_str(props, "qom-type");
    id = gw_props_take_str(props, "id");
    if (!object_add(type, id, props, errp)) {
        return NULL;
    }
    return qmp_return_empty();
}

static JsonNode *qmp_object_del(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"id", NULL};
    const char *id = NULL;

    if (!qmp_args_check(args, allowed, errp) ||
        !qmp_arg_str(args, "id", true, &id, errp) || !object_del(id, errp)) {
        return NULL;
    }
    return qmp_return_empty();
}

/* HMP: object_add TYPE,id=ID,... is the -object syntax. */
static JsonObject *hmp_object_add_args(JsonObject *hmp_args, GError **errp)
{
    const char *spec = json_object_get_string_member(hmp_args, "object");
    g_autoptr(GHashTable) props = gw_props_parse(spec, "qom-type", errp);
    g_autoptr(JsonObject) args = json_object_new();
    GHashTableIter it;
    gpointer k, v;

    if (!props) {
        return NULL;
    }
    g_hash_table_iter_init(&it, props);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        json_object_set_string_member(args, k, v);
    }
    return g_steal_pointer(&args);
}

static const MonitorCommand object_cmds[] = {
    {
        .name = "object-add",
        .handler = qmp_object_add,
        .hmp_name = "object_add",
        .args_type = "object:S",
        .params = "[qom-type=]type,id=str[,prop=value][,...]",
        .help = "create QOM object",
        .hmp_args = hmp_object_add_args,
    },
    {
        .name = "object-del",
        .handler = qmp_object_del,
        .hmp_name = "object_del",
        .args_type = "id:s",
        .params = "id",
        .help = "destroy QOM object",
    },
};

void object_register_commands(void)
{
    monitor_register_commands(object_cmds, G_N_ELEMENTS(object_cmds));
}
