/*
 * The object registry: types (an ops table each) and the named objects
 * created from them, with the property parsing every type shares.
 */
#include <string.h>

#include "godwit/object.h"

struct GwObject {
    /* Set at creation, read-only afterwards. */
    const GwObjectOps *ops;
    char *id;
    void *state;
    /* Any thread: the registry holds one reference, each user another. */
    gint refs;
};

static GPtrArray *object_types;  /* const GwObjectOps *, main loop only */
static GHashTable *object_table; /* id -> GwObject *, under object_lock */
static GMutex object_lock;

void object_type_register(const GwObjectOps *ops)
{
    g_assert(ops && ops->type && ops->props && ops->create && ops->free);
    if (!object_types) {
        object_types = g_ptr_array_new();
    }
    for (guint i = 0; i < object_types->len; i++) {
        const GwObjectOps *t = g_ptr_array_index(object_types, i);
        if (t == ops) {
            return; /* idempotent */
        }
        g_assert(strcmp(t->type, ops->type));
    }
    g_ptr_array_add(object_types, (gpointer)ops);
}

static const GwObjectOps *object_type_find(const char *type)
{
    for (guint i = 0; object_types && i < object_types->len; i++) {
        const GwObjectOps *t = g_ptr_array_index(object_types, i);
        if (!strcmp(t->type, type)) {
            return t;
        }
    }
    return NULL;
}

/* "tls-creds-anon, tls-creds-psk, ..." for the unknown-type error. */
static char *object_type_list(void)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; object_types && i < object_types->len; i++) {
        const GwObjectOps *t = g_ptr_array_index(object_types, i);
        g_string_append_printf(s, "%s%s", i ? ", " : "", t->type);
    }
    return g_string_free(s, FALSE);
}

/* QEMU's rule for ids: a letter, then letters, digits, '-', '.', '_'. */
static bool object_id_valid(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

static void object_free(GwObject *o)
{
    o->ops->free(o->state);
    g_free(o->id);
    g_free(o);
}

static bool object_prop_known(const GwObjectOps *ops, const char *name)
{
    for (int i = 0; ops->props[i]; i++) {
        const char *p = ops->props[i];
        if (g_str_has_suffix(p, ".") ? g_str_has_prefix(name, p)
                                     : !strcmp(name, p)) {
            return true;
        }
    }
    return false;
}

/* Refuses, in name order (stable), the first property `ops` lacks. */
static bool object_check_props(const GwObjectOps *ops, GwProps *props,
                               GError **errp)
{
    g_autofree const char **keys = NULL;
    guint n;

    keys = (const char **)g_hash_table_get_keys_as_array(props, &n);
    qsort(keys, n, sizeof(*keys),
          (int (*)(const void *, const void *))g_strcmp0);
    for (guint i = 0; i < n; i++) {
        if (!object_prop_known(ops, keys[i])) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Property '%s.%s' not found", ops->type, keys[i]);
            return false;
        }
    }
    return true;
}

/* The first property the type did not take, in name order (stable). */
static bool object_check_leftover(const char *type, GwProps *props,
                                  GError **errp)
{
    g_autofree const char **keys = NULL;
    guint n;

    keys = (const char **)g_hash_table_get_keys_as_array(props, &n);
    if (n == 0) {
        return true;
    }
    qsort(keys, n, sizeof(*keys),
          (int (*)(const void *, const void *))g_strcmp0);
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "Property '%s.%s' not found",
                type, keys[0]);
    return false;
}

bool object_add(const char *type, const char *id, GwProps *props, GError **errp)
{
    const GwObjectOps *ops = object_type_find(type);
    GwObject *o;
    void *state;
    bool dup;

    if (!ops) {
        g_autofree char *list = object_type_list();
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "invalid object type: %s (godwit has %s)", type, list);
        return false;
    }
    if (!id || !object_id_valid(id)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    id ? "Parameter 'id' expects an identifier"
                       : "Parameter 'id' is missing");
        return false;
    }
    g_mutex_lock(&object_lock);
    dup = object_table && g_hash_table_contains(object_table, id);
    g_mutex_unlock(&object_lock);
    if (dup) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "an object with id '%s' already exists", id);
        return false;
    }
    if (!object_check_props(ops, props, errp)) {
        return false;
    }
    state = ops->create(id, props, errp);
    if (!state) {
        return false;
    }
    if (!object_check_leftover(type, props, errp)) {
        ops->free(state);
        return false;
    }
    o = g_new0(GwObject, 1);
    o->ops = ops;
    o->id = g_strdup(id);
    o->state = state;
    o->refs = 1;
    g_mutex_lock(&object_lock);
    if (!object_table) {
        object_table = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_hash_table_insert(object_table, o->id, o);
    g_mutex_unlock(&object_lock);
    return true;
}

bool object_add_keyval(const char *spec, GError **errp)
{
    g_autoptr(GHashTable) props = gw_props_parse(spec, "qom-type", errp);
    g_autofree char *type = NULL;
    g_autofree char *id = NULL;

    if (!props) {
        return false;
    }
    type = gw_props_take_str(props, "qom-type");
    id = gw_props_take_str(props, "id");
    if (!type) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter 'qom-type' is missing");
        return false;
    }
    return object_add(type, id, props, errp);
}

bool object_del(const char *id, GError **errp)
{
    GwObject *o = NULL;
    bool busy = false;

    g_mutex_lock(&object_lock);
    if (object_table) {
        o = g_hash_table_lookup(object_table, id);
    }
    /* a user (a migration) holds it: deleting would pull it from under it */
    busy = o && g_atomic_int_get(&o->refs) > 1;
    if (o && !busy) {
        g_hash_table_remove(object_table, id);
    }
    g_mutex_unlock(&object_lock);
    if (!o) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "object '%s' not found",
                    id);
        return false;
    }
    if (busy) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "object '%s' is in use, can not be deleted", id);
        return false;
    }
    object_unref(o);
    return true;
}

void object_del_all(void)
{
    g_autoptr(GHashTable) table = NULL;
    GHashTableIter it;
    gpointer v;

    g_mutex_lock(&object_lock);
    table = g_steal_pointer(&object_table);
    g_mutex_unlock(&object_lock);
    if (!table) {
        return;
    }
    g_hash_table_iter_init(&it, table);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        object_unref(v);
    }
}

GwObject *object_ref_by_id(const char *id)
{
    GwObject *o = NULL;

    g_mutex_lock(&object_lock);
    if (object_table && id) {
        o = g_hash_table_lookup(object_table, id);
    }
    if (o) {
        g_atomic_int_inc(&o->refs);
    }
    g_mutex_unlock(&object_lock);
    return o;
}

void object_unref(GwObject *o)
{
    if (o && g_atomic_int_dec_and_test(&o->refs)) {
        object_free(o);
    }
}

const char *object_type_name(GwObject *o)
{
    return o->ops->type;
}

const char *object_id(GwObject *o)
{
    return o->id;
}

void *object_state(GwObject *o)
{
    return o->state;
}

/* ---- properties ---------------------------------------------------------- */

GwProps *gw_props_new(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
}

/* One element up to an unescaped ',' (",," is a literal comma). */
static char *props_next(const char **pp)
{
    GString *s = g_string_new(NULL);
    const char *p = *pp;

    for (; *p; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(s, ',');
            p++;
        } else if (*p == ',') {
            p++;
            break;
        } else {
            g_string_append_c(s, *p);
        }
    }
    *pp = p;
    return g_string_free(s, FALSE);
}

GwProps *gw_props_parse(const char *text, const char *implied, GError **errp)
{
    g_autoptr(GHashTable) props = gw_props_new();
    const char *p = text;

    for (int i = 0; *p || i == 0; i++) {
        g_autofree char *elt = props_next(&p);
        char *eq = strchr(elt, '=');
        g_autofree char *key = NULL;

        if (!eq && (i > 0 || !implied || !*elt)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Expected '=' after parameter '%s'", elt);
            return NULL;
        }
        key = eq ? g_strndup(elt, eq - elt) : g_strdup(implied);
        if (!*key || g_hash_table_contains(props, key)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        *key ? "Parameter '%s' given twice"
                             : "Invalid parameter '%s'",
                        *key ? key : elt);
            return NULL;
        }
        g_hash_table_insert(props, g_steal_pointer(&key),
                            g_strdup(eq ? eq + 1 : elt));
    }
    return g_steal_pointer(&props);
}

char *gw_props_take_str(GwProps *p, const char *name)
{
    gpointer key = NULL;
    gpointer value = NULL;

    if (!g_hash_table_steal_extended(p, name, &key, &value)) {
        return NULL;
    }
    g_free(key);
    return value;
}

bool gw_props_take_bool(GwProps *p, const char *name, bool dflt, bool *out,
                        GError **errp)
{
    g_autofree char *v = gw_props_take_str(p, name);

    *out = dflt;
    if (!v) {
        return true;
    }
    if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true")) {
        *out = true;
    } else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false")) {
        *out = false;
    } else {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter '%s' expects 'on' or 'off'", name);
        return false;
    }
    return true;
}

bool gw_props_take_enum(GwProps *p, const char *name, const char *const *names,
                        int dflt, int *out, GError **errp)
{
    g_autofree char *v = gw_props_take_str(p, name);
    g_autofree char *list = NULL;

    *out = dflt;
    if (!v) {
        return true;
    }
    for (int i = 0; names[i]; i++) {
        if (!strcmp(v, names[i])) {
            *out = i;
            return true;
        }
    }
    list = g_strjoinv(", ", (char **)names);
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "Parameter '%s' does not accept value '%s' (%s)", name, v,
                list);
    return false;
}
