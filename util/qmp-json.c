/*
 * QMP value helpers over json-glib (see include/godwit/qmp-json.h).
 */
#include <string.h>

#include "godwit/qmp-json.h"

JsonNode *qmp_empty(void)
{
    return qmp_object_take(json_object_new());
}

JsonNode *qmp_object_take(JsonObject *obj)
{
    JsonNode *n = json_node_alloc();

    json_node_init_object(n, obj);
    json_object_unref(obj);
    return n;
}

JsonNode *qmp_array_take(JsonArray *arr)
{
    JsonNode *n = json_node_alloc();

    json_node_init_array(n, arr);
    json_array_unref(arr);
    return n;
}

static JsonNode *member(JsonObject *args, const char *name, bool optional,
                        GError **errp, bool *found)
{
    JsonNode *n = args ? json_object_get_member(args, name) : NULL;

    *found = n != NULL;
    if (!n && !optional) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter '%s' is missing", name);
    }
    return n;
}

static bool bad_type(const char *name, const char *type, GError **errp)
{
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "Invalid parameter type for '%s', expected: %s", name, type);
    return false;
}

bool qmp_arg_str(JsonObject *args, const char *name, bool optional,
                 const char **out, GError **errp)
{
    bool found;
    JsonNode *n = member(args, name, optional, errp, &found);

    if (!found) {
        return optional;
    }
    if (JSON_NODE_HOLDS_VALUE(n) &&
        json_node_get_value_type(n) == G_TYPE_STRING) {
        *out = json_node_get_string(n);
        return true;
    }
    return bad_type(name, "string", errp);
}

bool qmp_arg_bool(JsonObject *args, const char *name, bool optional,
                  bool *out, GError **errp)
{
    bool found;
    JsonNode *n = member(args, name, optional, errp, &found);

    if (!found) {
        return optional;
    }
    if (JSON_NODE_HOLDS_VALUE(n) &&
        json_node_get_value_type(n) == G_TYPE_BOOLEAN) {
        *out = json_node_get_boolean(n);
        return true;
    }
    return bad_type(name, "boolean", errp);
}

bool qmp_arg_int(JsonObject *args, const char *name, bool optional,
                 int64_t *out, GError **errp)
{
    bool found;
    JsonNode *n = member(args, name, optional, errp, &found);

    if (!found) {
        return optional;
    }
    if (JSON_NODE_HOLDS_VALUE(n) &&
        json_node_get_value_type(n) == G_TYPE_INT64) {
        *out = json_node_get_int(n);
        return true;
    }
    return bad_type(name, "integer", errp);
}

bool qmp_args_check(JsonObject *args, const char *const *allowed,
                    GError **errp)
{
    g_autoptr(GList) names = args ? json_object_get_members(args) : NULL;

    for (GList *l = names; l; l = l->next) {
        bool ok = false;
        for (int i = 0; allowed && allowed[i]; i++) {
            ok |= !strcmp(allowed[i], l->data);
        }
        if (!ok) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Parameter '%s' is unexpected", (char *)l->data);
            return false;
        }
    }
    return true;
}
