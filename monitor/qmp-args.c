/*
 * Helpers for QMP command handlers: argument checking with the error texts
 * QEMU's generated visitors use, so that a wrong argument reads the same
 * in godwit and in QEMU, and the empty return value.
 */
#include <string.h>

#include "godwit/monitor.h"

bool qmp_args_check(JsonObject *args, const char *const *allowed, GError **errp)
{
    JsonObjectIter iter;
    const char *name;
    JsonNode *member;

    json_object_iter_init_ordered(&iter, args);
    while (json_object_iter_next_ordered(&iter, &name, &member)) {
        bool known = false;

        for (size_t i = 0; allowed && allowed[i]; i++) {
            if (!strcmp(name, allowed[i])) {
                known = true;
                break;
            }
        }
        if (!known) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Parameter '%s' is unexpected", name);
            return false;
        }
    }
    return true;
}

/*
 * Finds argument `name` of JSON value type `type`. Returns false with
 * *errp set when it is missing but required or has another type; *node is
 * NULL when an optional argument is absent.
 */
static bool qmp_arg_find(JsonObject *args, const char *name, bool required,
                         GType type, const char *type_name, JsonNode **node,
                         GError **errp)
{
    JsonNode *member = json_object_get_member(args, name);

    *node = NULL;
    if (!member) {
        if (required) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Parameter '%s' is missing", name);
            return false;
        }
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(member) ||
        json_node_get_value_type(member) != type) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Invalid parameter type for '%s', expected: %s", name,
                    type_name);
        return false;
    }
    *node = member;
    return true;
}

bool qmp_arg_str(JsonObject *args, const char *name, bool required,
                 const char **out, GError **errp)
{
    JsonNode *node;

    if (!qmp_arg_find(args, name, required, G_TYPE_STRING, "string", &node,
                      errp)) {
        return false;
    }
    if (node) {
        *out = json_node_get_string(node);
    }
    return true;
}

bool qmp_arg_int(JsonObject *args, const char *name, bool required,
                 int64_t *out, GError **errp)
{
    JsonNode *node;

    if (!qmp_arg_find(args, name, required, G_TYPE_INT64, "integer", &node,
                      errp)) {
        return false;
    }
    if (node) {
        *out = json_node_get_int(node);
    }
    return true;
}

bool qmp_arg_bool(JsonObject *args, const char *name, bool required, bool *out,
                  GError **errp)
{
    JsonNode *node;

    if (!qmp_arg_find(args, name, required, G_TYPE_BOOLEAN, "boolean", &node,
                      errp)) {
        return false;
    }
    if (node) {
        *out = json_node_get_boolean(node);
    }
    return true;
}

JsonNode *qmp_return_empty(void)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(node, json_object_new());
    return node;
}

JsonNode *qmp_return_object(JsonObject *obj)
{
    JsonNode *n = json_node_alloc();

    json_node_init_object(n, obj);
    json_object_unref(obj);
    return n;
}

JsonNode *qmp_return_array(JsonArray *arr)
{
    JsonNode *n = json_node_alloc();

    json_node_init_array(n, arr);
    json_array_unref(arr);
    return n;
}
