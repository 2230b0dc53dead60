/*
 * The monitor commands of the migration options: migrate-set-capabilities,
 * query-migrate-capabilities, migrate-set-parameters,
 * query-migrate-parameters and their HMP forms (migrate_set_capability,
 * migrate_set_parameter, info migrate_capabilities, info
 * migrate_parameters), with QEMU's argument checks and error texts. They
 * parse into a copy of the live set and hand the whole copy to
 * mig_caps_commit() / mig_params_commit() (options.c).
 *
 * Main loop thread only, as every monitor handler.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "godwit/cutils.h"
#include "godwit/monitor.h"
#include "options-int.h"

static bool cmd_fail(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* g_set_error() that returns false, for `return cmd_fail(...)`. */
static bool cmd_fail(GError **errp, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_propagate_error(errp,
                      g_error_new_valist(GW_ERROR, GW_ERROR_GENERIC, fmt, ap));
    va_end(ap);
    return false;
}

static bool json_is(JsonNode *node, GType type)
{
    return JSON_NODE_HOLDS_VALUE(node) &&
           json_node_get_value_type(node) == type;
}

/* ---- capabilities -------------------------------------------------------- */

/*
 * Reads element `i` of "capabilities" into `caps`, with the texts of
 * QEMU's input visitor ("Parameter 'capabilities[0].state' is missing").
 */
static bool cap_status_parse(JsonNode *elem, guint i, bool *caps, GError **errp)
{
    g_autofree char *path = g_strdup_printf("capabilities[%u]", i);
    JsonObject *obj;
    JsonNode *name, *state;
    JsonObjectIter iter;
    const char *member;
    int cap;

    if (!JSON_NODE_HOLDS_OBJECT(elem)) {
        return cmd_fail(errp,
                        "Invalid parameter type for '%s', expected: "
                        "object",
                        path);
    }
    obj = json_node_get_object(elem);
    name = json_object_get_member(obj, "capability");
    state = json_object_get_member(obj, "state");
    if (!name) {
        return cmd_fail(errp, "Parameter '%s.capability' is missing", path);
    }
    if (!json_is(name, G_TYPE_STRING)) {
        return cmd_fail(errp,
                        "Invalid parameter type for '%s.capability', "
                        "expected: string",
                        path);
    }
    cap = migration_capability_lookup(json_node_get_string(name));
    if (cap < 0) {
        return cmd_fail(errp,
                        "Parameter 'capability' does not accept value "
                        "'%s'",
                        json_node_get_string(name));
    }
    if (!state) {
        return cmd_fail(errp, "Parameter '%s.state' is missing", path);
    }
    if (!json_is(state, G_TYPE_BOOLEAN)) {
        return cmd_fail(errp,
                        "Invalid parameter type for '%s.state', "
                        "expected: boolean",
                        path);
    }
    json_object_iter_init(&iter, obj);
    while (json_object_iter_next(&iter, &member, NULL)) {
        if (strcmp(member, "capability") && strcmp(member, "state")) {
            return cmd_fail(errp, "Parameter '%s.%s' is unexpected", path,
                            member);
        }
    }
    caps[cap] = json_node_get_boolean(state); /* the last one wins */
    return true;
}

static JsonNode *qmp_migrate_set_capabilities(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"capabilities", NULL};
    bool caps[MIGRATION_CAPABILITY__MAX];
    JsonNode *list = json_object_get_member(args, "capabilities");
    JsonArray *arr;

    if (!list) {
        cmd_fail(errp, "Parameter 'capabilities' is missing");
        return NULL;
    }
    if (!JSON_NODE_HOLDS_ARRAY(list)) {
        cmd_fail(errp, "Invalid parameter type for 'capabilities', "
                       "expected: array");
        return NULL;
    }
    /* the whole request is read before anything is checked */
    mig_caps_snapshot(caps);
    arr = json_node_get_array(list);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        if (!cap_status_parse(json_array_get_element(arr, i), i, caps, errp)) {
            return NULL;
        }
    }
    if (!qmp_args_check(args, allowed, errp)) {
        return NULL;
    }
    if (!mig_caps_commit(caps, errp)) {
        return NULL;
    }
    return qmp_return_empty();
}

static JsonNode *qmp_query_migrate_capabilities(JsonObject *args, GError **errp)
{
    bool caps[MIGRATION_CAPABILITY__MAX];
    JsonArray *arr = json_array_new();

    if (!qmp_args_check(args, NULL, errp)) {
        json_array_unref(arr);
        return NULL;
    }
    mig_caps_snapshot(caps);
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "capability",
                                      migration_capability_name(i));
        json_object_set_boolean_member(o, "state", caps[i]);
        json_array_add_object_element(arr, o);
    }
    return qmp_return_array(arr);
}

/* HMP "migrate_set_capability NAME on|off" -> QMP's list of one. */
static JsonObject *hmp_args_set_capability(JsonObject *hmp, GError **errp)
{
    const char *name = json_object_get_string_member(hmp, "capability");
    JsonObject *cap, *qmp;
    JsonArray *caps;

    if (migration_capability_lookup(name) < 0) {
        cmd_fail(errp, "invalid parameter value: %s", name);
        return NULL;
    }
    cap = json_object_new();
    json_object_set_string_member(cap, "capability", name);
    json_object_set_boolean_member(
        cap, "state", json_object_get_boolean_member(hmp, "state"));
    caps = json_array_new();
    json_array_add_object_element(caps, cap);
    qmp = json_object_new();
    json_object_set_array_member(qmp, "capabilities", caps);
    return qmp;
}

static void hmp_print_capabilities(GString *out, JsonNode *ret)
{
    JsonArray *arr = json_node_get_array(ret);

    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonObject *o = json_array_get_object_element(arr, i);

        g_string_append_printf(
            out, "%s: %s\n", json_object_get_string_member(o, "capability"),
            json_object_get_boolean_member(o, "state") ? "on" : "off");
    }
}

/* ---- parameters: QMP ----------------------------------------------------- */

/*
 * QEMU 7.2 members godwit has no table row for, and why. Refused with a
 * reason instead of "is unexpected".
 */
static const char *const mig_param_absent[][2] = {
    {"block-bitmap-mapping", "godwit has no block devices"},
};

/* Reads one member of migrate-set-parameters into `p`, QEMU's texts. */
static bool param_from_json(MigParam id, JsonNode *node, MigrationParameters *p,
                            GError **errp)
{
    const MigParamInfo *info = &mig_param_info[id];
    const char *s;
    uint64_t v;
    int e;

    switch (info->type) {
    case MIG_PARAM_BOOL:
        if (!json_is(node, G_TYPE_BOOLEAN)) {
            return cmd_fail(errp,
                            "Invalid parameter type for '%s', "
                            "expected: boolean",
                            info->name);
        }
        mig_param_set_u64(p, id, json_node_get_boolean(node));
        return true;
    case MIG_PARAM_U8:
    case MIG_PARAM_U32:
    case MIG_PARAM_SIZE:
    case MIG_PARAM_MIBSIZE:
        if (!json_is(node, G_TYPE_INT64)) {
            return cmd_fail(errp, "Parameter '%s' expects uint64", info->name);
        }
        /* like QEMU, a negative number is read as its two's complement */
        v = (uint64_t)json_node_get_int(node);
        if (info->type == MIG_PARAM_U8 && v > UINT8_MAX) {
            return cmd_fail(errp, "Parameter '%s' expects uint8_t", info->name);
        }
        if (info->type == MIG_PARAM_U32 && v > UINT32_MAX) {
            return cmd_fail(errp, "Parameter '%s' expects uint32_t",
                            info->name);
        }
        mig_param_set_u64(p, id, v);
        return true;
    case MIG_PARAM_ENUM:
    case MIG_PARAM_POLICY:
        if (!json_is(node, G_TYPE_STRING)) {
            return cmd_fail(errp,
                            "Invalid parameter type for '%s', "
                            "expected: string",
                            info->name);
        }
        s = json_node_get_string(node);
        e = mig_param_enum_lookup(id, s);
        if (e < 0 || (uint64_t)e < info->min || (uint64_t)e > info->max) {
            return cmd_fail(errp, "Parameter '%s' does not accept value '%s'",
                            info->name, s);
        }
        mig_param_set_u64(p, id, (uint64_t)e);
        return true;
    case MIG_PARAM_STR:
        if (JSON_NODE_HOLDS_NULL(node)) {
            s = ""; /* StrOrNull: null resets */
        } else if (json_is(node, G_TYPE_STRING)) {
            s = json_node_get_string(node);
        } else {
            return cmd_fail(errp,
                            "Invalid parameter type for '%s', "
                            "expected: StrOrNull",
                            info->name);
        }
        mig_param_set_str(p, id, s);
        return true;
    }
    g_assert_not_reached();
}

/*
 * Applies a migrate-set-parameters object to `p`: every member's type in
 * table order, then unknown members, as QEMU's visitor does.
 */
static bool params_from_json(JsonObject *args, MigrationParameters *p,
                             GError **errp)
{
    JsonObjectIter iter;
    const char *name;

    for (int i = 0; i < MIG_PARAM__MAX; i++) {
        JsonNode *node = json_object_get_member(args, mig_param_info[i].name);

        if (node && !param_from_json(i, node, p, errp)) {
            return false;
        }
    }
    json_object_iter_init_ordered(&iter, args);
    while (json_object_iter_next_ordered(&iter, &name, NULL)) {
        if (mig_param_lookup(name) >= 0) {
            continue;
        }
        for (size_t i = 0; i < G_N_ELEMENTS(mig_param_absent); i++) {
            if (!strcmp(name, mig_param_absent[i][0])) {
                return cmd_fail(errp,
                                "Parameter '%s' is not supported by "
                                "godwit (%s)",
                                name, mig_param_absent[i][1]);
            }
        }
        return cmd_fail(errp, "Parameter '%s' is unexpected", name);
    }
    return true;
}

static JsonNode *qmp_migrate_set_parameters(JsonObject *args, GError **errp)
{
    MigrationParameters p;
    bool ok;

    mig_params_snapshot(&p);
    ok = params_from_json(args, &p, errp) && mig_params_commit(&p, errp);
    mig_params_clear(&p);
    return ok ? qmp_return_empty() : NULL;
}

static JsonNode *qmp_query_migrate_parameters(JsonObject *args, GError **errp)
{
    MigrationParameters p;
    JsonObject *o;

    if (!qmp_args_check(args, NULL, errp)) {
        return NULL;
    }
    mig_params_snapshot(&p);
    o = json_object_new();
    for (int i = 0; i < MIG_PARAM__MAX; i++) {
        const MigParamInfo *info = &mig_param_info[i];
        uint64_t v = mig_param_get_u64(&p, i);

        switch (info->type) {
        case MIG_PARAM_BOOL:
            json_object_set_boolean_member(o, info->name, v != 0);
            break;
        case MIG_PARAM_ENUM:
        case MIG_PARAM_POLICY:
            json_object_set_string_member(o, info->name,
                                          mig_param_enum_name(i, v));
            break;
        case MIG_PARAM_STR:
            json_object_set_string_member(o, info->name,
                                          mig_param_get_str(&p, i));
            break;
        default:
            /* every value is <= INT64_MAX (table ranges) */
            json_object_set_int_member(o, info->name, (gint64)v);
            break;
        }
    }
    mig_params_clear(&p);
    return qmp_return_object(o);
}

/* ---- parameters: HMP ----------------------------------------------------- */

/* QEMU's HMP numbers: base 0, a leading '-' wraps around as in strtoull. */
static bool hmp_parse_u64(const char *s, uint64_t *out)
{
    bool neg = *s == '-';

    if (!gw_parse_uint(s + neg, out, NULL)) {
        return false;
    }
    *out = neg ? (uint64_t)0 - *out : *out;
    return true;
}

static bool hmp_parse_bool(const char *s, bool *out)
{
    static const char *const on[] = {"on", "yes", "true", "y"};
    static const char *const off[] = {"off", "no", "false", "n"};

    for (size_t i = 0; i < G_N_ELEMENTS(on); i++) {
        if (!strcmp(s, on[i]) || !strcmp(s, off[i])) {
            *out = !strcmp(s, on[i]);
            return true;
        }
    }
    return false;
}

/* QEMU's sizes may be hex, "0x10" or "0x10k"; gw_parse_size() has none. */
static bool hmp_parse_hex_size(const char *s, uint64_t unit, uint64_t *out,
                               GError **errp)
{
    g_autofree char *one_unit = NULL;
    char *end;
    uint64_t v;

    errno = 0;
    v = g_ascii_strtoull(s, &end, 16);
    if (errno || end == s + 1) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "invalid size");
        return false;
    }
    if (*end) {
        one_unit = g_strconcat("1", end, NULL);
        if (!gw_parse_size(one_unit, 1, &unit, errp)) {
            return false;
        }
    }
    if (v > UINT64_MAX / unit) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "size is too large");
        return false;
    }
    *out = v * unit;
    return true;
}

/* A size: plain = `unit` bytes; QEMU's messages for each way to fail. */
static bool hmp_parse_size(const MigParamInfo *info, const char *s,
                           uint64_t *out, GError **errp)
{
    bool mib = info->type == MIG_PARAM_MIBSIZE;
    uint64_t unit = mib ? 1u << 20 : 1;
    g_autoptr(GError) err = NULL;
    bool ok;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        ok = hmp_parse_hex_size(s, unit, out, &err);
    } else {
        ok = gw_parse_size(s, unit, out, &err);
    }
    if (!ok) {
        if (mib) {
            return cmd_fail(errp, "Invalid size %s", s);
        }
        if (strstr(err->message, "too large")) {
            return cmd_fail(errp,
                            "Value '%s' is out of range for parameter "
                            "'%s'",
                            s, info->name);
        }
        return cmd_fail(errp,
                        "Parameter '%s' expects a non-negative number "
                        "below 2^64\nOptional suffix k, M, G, T, P or E "
                        "means kilo-, mega-, giga-, tera-, peta-\nand "
                        "exabytes, respectively.",
                        info->name);
    }
    if ((mib || !strcmp(info->name, "xbzrle-cache-size")) && *out > INT64_MAX) {
        return cmd_fail(errp, "Invalid size %s", s);
    }
    return true;
}

/* Turns the HMP value text into the JSON member QMP would get. */
static bool hmp_param_value(const MigParamInfo *info, const char *s,
                            JsonObject *qmp, GError **errp)
{
    uint64_t v;
    bool b;
    int e;

    switch (info->type) {
    case MIG_PARAM_BOOL:
        if (!hmp_parse_bool(s, &b)) {
            return cmd_fail(errp, "Parameter '%s' expects 'on' or 'off'",
                            info->name);
        }
        json_object_set_boolean_member(qmp, info->name, b);
        return true;
    case MIG_PARAM_U8:
    case MIG_PARAM_U32:
        if (!hmp_parse_u64(s, &v)) {
            return cmd_fail(errp, "Parameter '%s' expects uint64", info->name);
        }
        json_object_set_int_member(qmp, info->name, (gint64)v);
        return true;
    case MIG_PARAM_SIZE:
    case MIG_PARAM_MIBSIZE:
        if (!hmp_parse_size(info, s, &v, errp)) {
            return false;
        }
        json_object_set_int_member(qmp, info->name, (gint64)v);
        return true;
    case MIG_PARAM_ENUM:
    case MIG_PARAM_POLICY:
        e = mig_param_enum_lookup((MigParam)(info - mig_param_info), s);
        if (e < 0 || (uint64_t)e < info->min || (uint64_t)e > info->max) {
            return cmd_fail(errp, "Parameter '%s' does not accept value '%s'",
                            info->name, s);
        }
        json_object_set_string_member(qmp, info->name, s);
        return true;
    case MIG_PARAM_STR:
        json_object_set_string_member(qmp, info->name, s);
        return true;
    }
    g_assert_not_reached();
}

/* HMP "migrate_set_parameter NAME VALUE" -> {"NAME": value} */
static JsonObject *hmp_args_set_parameter(JsonObject *hmp, GError **errp)
{
    const char *name = json_object_get_string_member(hmp, "parameter");
    const char *value = json_object_get_string_member(hmp, "value");
    g_autoptr(JsonObject) qmp = json_object_new();
    int id = mig_param_lookup(name);

    if (id < 0) {
        for (size_t i = 0; i < G_N_ELEMENTS(mig_param_absent); i++) {
            if (!strcmp(name, mig_param_absent[i][0])) {
                cmd_fail(errp,
                         "Parameter '%s' is not supported by godwit "
                         "(%s)",
                         name, mig_param_absent[i][1]);
                return NULL;
            }
        }
        cmd_fail(errp, "invalid parameter value: %s", name);
        return NULL;
    }
    if (!hmp_param_value(&mig_param_info[id], value, qmp, errp)) {
        return NULL;
    }
    return g_steal_pointer(&qmp);
}

/* `info migrate_parameters`: QEMU 7.2's lines and order, then godwit's. */
static void hmp_print_parameters(GString *out, JsonNode *ret)
{
    JsonObject *o = json_node_get_object(ret);

    for (int i = 0; i < MIG_PARAM__MAX; i++) {
        const MigParamInfo *info = &mig_param_info[i];
        JsonNode *node = json_object_get_member(o, info->name);

        g_string_append_printf(out, "%s: ", info->name);
        switch (info->type) {
        case MIG_PARAM_BOOL:
            g_string_append(out, json_node_get_boolean(node) ? "on" : "off");
            break;
        case MIG_PARAM_ENUM:
        case MIG_PARAM_POLICY:
            g_string_append(out, json_node_get_string(node));
            break;
        case MIG_PARAM_STR:
            g_string_append_printf(out, "'%s'", json_node_get_string(node));
            break;
        default:
            g_string_append_printf(out, "%" PRIu64,
                                   (uint64_t)json_node_get_int(node));
            break;
        }
        g_string_append_printf(out, "%s\n", info->unit);
    }
}

/* ---- registration -------------------------------------------------------- */

/* `help migrate_set_...` lists the table, one "name: help" line each. */
#define MIG_CAP_HELP(id, name, impl, help) "\n\t\t\t " name ": " help
#define MIG_PARAM_HELP(field, name, type, def, min, max, flags, check,         \
                       expects, unit, help)                                    \
    "\n\t\t\t " name ": " help

static const MonitorCommand mig_options_cmds[] = {
    {
        .name = "migrate-set-capabilities",
        .handler = qmp_migrate_set_capabilities,
        .hmp_name = "migrate_set_capability",
        .args_type = "capability:s,state:b",
        .params = "capability state",
        .help = "Enable/Disable the usage of a capability for "
                "migration" MIG_CAPABILITY_TABLE(MIG_CAP_HELP),
        .hmp_args = hmp_args_set_capability,
    },
    {
        .name = "query-migrate-capabilities",
        .handler = qmp_query_migrate_capabilities,
        .hmp_name = "info migrate_capabilities",
        .help = "show current migration capabilities",
        .hmp_print = hmp_print_capabilities,
    },
    {
        .name = "migrate-set-parameters",
        .handler = qmp_migrate_set_parameters,
        .hmp_name = "migrate_set_parameter",
        .args_type = "parameter:s,value:s",
        .params = "parameter value",
        .help = "Set the parameter for migration" MIG_PARAMETER_TABLE(
            MIG_PARAM_HELP),
        .hmp_args = hmp_args_set_parameter,
    },
    {
        .name = "query-migrate-parameters",
        .handler = qmp_query_migrate_parameters,
        .hmp_name = "info migrate_parameters",
        .help = "show current migration parameters",
        .hmp_print = hmp_print_parameters,
    },
};

void migration_options_register_commands(void)
{
    monitor_register_commands(mig_options_cmds, G_N_ELEMENTS(mig_options_cmds));
}
