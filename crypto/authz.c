/*
 * authz-simple and authz-list: the rule matching (a pure function) and
 * the two object types that build an Authz from their properties.
 */
#include <fnmatch.h>
#include <string.h>

#include "crypto/authz.h"
#include "godwit/object.h"

static const char *const authz_policy_names[] = {"deny", "allow", NULL};
static const char *const authz_format_names[] = {"exact", "glob", NULL};

static bool authz_rule_matches(const AuthzRule *r, const char *identity)
{
    if (r->format == AUTHZ_FORMAT_GLOB) {
        return fnmatch(r->match, identity, 0) == 0;
    }
    return strcmp(r->match, identity) == 0;
}

bool authz_is_allowed(const Authz *a, const char *identity)
{
    if (!identity) {
        return false; /* nothing proved about the peer */
    }
    for (unsigned i = 0; i < a->nrules; i++) {
        if (authz_rule_matches(&a->rules[i], identity)) {
            return a->rules[i].policy == AUTHZ_POLICY_ALLOW;
        }
    }
    return a->policy == AUTHZ_POLICY_ALLOW;
}

static void authz_free(void *state)
{
    Authz *a = state;

    for (unsigned i = 0; i < a->nrules; i++) {
        g_free(a->rules[i].match);
    }
    g_free(a->rules);
    g_free(a);
}

static void *authz_simple_create(const char *id, GwProps *props, GError **errp)
{
    g_autofree char *identity = gw_props_take_str(props, "identity");
    Authz *a;

    if (!identity) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "authz-simple '%s': property 'identity' is missing", id);
        return NULL;
    }
    a = g_new0(Authz, 1);
    a->policy = AUTHZ_POLICY_DENY;
    a->nrules = 1;
    a->rules = g_new0(AuthzRule, 1);
    a->rules[0].match = g_steal_pointer(&identity);
    a->rules[0].policy = AUTHZ_POLICY_ALLOW;
    a->rules[0].format = AUTHZ_FORMAT_EXACT;
    return a;
}

/* rules.N.match (required), rules.N.policy (deny), rules.N.format (exact). */
static bool authz_list_take_rule(GwProps *props, unsigned n, AuthzRule *r,
                                 GError **errp)
{
    g_autofree char *match = g_strdup_printf("rules.%u.match", n);
    g_autofree char *policy = g_strdup_printf("rules.%u.policy", n);
    g_autofree char *format = g_strdup_printf("rules.%u.format", n);
    int p, f;

    r->match = gw_props_take_str(props, match);
    if (!r->match) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter '%s' is missing", match);
        return false;
    }
    if (!gw_props_take_enum(props, policy, authz_policy_names,
                            AUTHZ_POLICY_DENY, &p, errp) ||
        !gw_props_take_enum(props, format, authz_format_names,
                            AUTHZ_FORMAT_EXACT, &f, errp)) {
        return false;
    }
    r->policy = (AuthzPolicy)p;
    r->format = (AuthzFormat)f;
    return true;
}

static bool authz_list_has_rule(GwProps *props, unsigned n)
{
    g_autofree char *prefix = g_strdup_printf("rules.%u.", n);
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, props);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        if (g_str_has_prefix(k, prefix)) {
            return true;
        }
    }
    return false;
}

static void *authz_list_create(const char *id, GwProps *props, GError **errp)
{
    Authz *a = g_new0(Authz, 1);
    int policy;

    if (!gw_props_take_enum(props, "policy", authz_policy_names,
                            AUTHZ_POLICY_DENY, &policy, errp)) {
        goto fail;
    }
    a->policy = (AuthzPolicy)policy;
    /* rules are numbered from 0 without gaps; a gap leaves a leftover */
    while (authz_list_has_rule(props, a->nrules)) {
        a->rules = g_renew(AuthzRule, a->rules, a->nrules + 1);
        memset(&a->rules[a->nrules], 0, sizeof(AuthzRule));
        a->nrules++;
        if (!authz_list_take_rule(props, a->nrules - 1,
                                  &a->rules[a->nrules - 1], errp)) {
            goto fail;
        }
    }
    return a;

fail:
    g_prefix_error(errp, "authz-list '%s': ", id);
    authz_free(a);
    return NULL;
}

static const char *const authz_simple_props[] = {"identity", NULL};
static const char *const authz_list_props[] = {"policy", "rules.", NULL};

static const GwObjectOps authz_simple_ops = {
    .type = "authz-simple",
    .props = authz_simple_props,
    .create = authz_simple_create,
    .free = authz_free,
};

static const GwObjectOps authz_list_ops = {
    .type = "authz-list",
    .props = authz_list_props,
    .create = authz_list_create,
    .free = authz_free,
};

void authz_register_types(void)
{
    object_type_register(&authz_simple_ops);
    object_type_register(&authz_list_ops);
}

bool authz_check_by_id(const char *id, const char *identity, GError **errp)
{
    GwObject *o = object_ref_by_id(id);
    bool ok;

    if (!o) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "No authorization object with id '%s'", id);
        return false;
    }
    if (!g_str_has_prefix(object_type_name(o), "authz-")) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Object '%s' is not an authorization object", id);
        object_unref(o);
        return false;
    }
    ok = authz_is_allowed(object_state(o), identity);
    object_unref(o);
    if (!ok) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "TLS authz check for '%s' is denied (%s)",
                    identity ? identity : "(no identity)", id);
    }
    return ok;
}
