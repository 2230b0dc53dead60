/*
 * Unit tests for the migration capabilities: QEMU 7.2's rules between
 * capabilities (the pure rules, then migrate-set-capabilities),
 * zero-copy-send against the parameters, the command's whole-set
 * behaviour, and the accelerator's say on dirty-limit.
 * main() is in test-migration-options.c.
 */
#include "migration-options-test.h"

/* ---- capability rules ---------------------------------------------------- */

#define ZERO_COPY_ERR                                                          \
    "Zero copy only available for non-compressed non-TLS multifd migration"

static const struct {
    const char *on;  /* capabilities turned on, comma separated */
    const char *err; /* NULL: the rules accept the set */
    bool incoming_started;
} cap_rules[] = {
    {"compress,xbzrle", NULL}, /* they work together (QEMU 7.2) */
    {"multifd,compress", "Multifd is not compatible with compress"},
    {"multifd,xbzrle", "Multifd is not compatible with xbzrle"},
    {"postcopy-preempt", "Postcopy preempt requires postcopy-ram"},
    {"postcopy-preempt,postcopy-ram", NULL},
    {"postcopy-preempt,postcopy-ram,compress",
     "Postcopy preempt not compatible with compress"},
    {"postcopy-ram,x-ignore-shared",
     "Postcopy is not compatible with ignore-shared"},
    {"postcopy-ram,multifd", "Postcopy is not yet compatible with multifd"},
    {"postcopy-ram,release-ram,postcopy-blocktime", NULL},
    {"background-snapshot", NULL},
    {"background-snapshot,events,x-ignore-shared,block,zero-blocks", NULL},
    {"background-snapshot,xbzrle,compress",
     "Background-snapshot is not compatible with compress"},
    {"background-snapshot,return-path,multifd",
     "Background-snapshot is not compatible with return-path"},
    {"zero-copy-send", ZERO_COPY_ERR},
    {"zero-copy-send,multifd", NULL},
    {"zero-copy-send,multifd,xbzrle", ZERO_COPY_ERR},
    {"zero-copy-send,multifd,compress", ZERO_COPY_ERR},
    {"switchover-ack", "Capability 'switchover-ack' requires capability "
                       "'return-path'"},
    {"switchover-ack,return-path", NULL},
    {"dirty-limit", NULL},
    {"dirty-limit,auto-converge", "dirty-limit conflicts with auto-converge "
                                  "either of then available currently"},
    {"events,pause-before-switchover", NULL},
    {"multifd", "Multifd must be set before incoming starts", true},
    {"postcopy-ram,postcopy-preempt",
     "Postcopy preempt must be set before incoming starts", true},
    {"events,postcopy-ram", NULL, true},
};

/* The capabilities QEMU refuses next to background-snapshot, its order. */
static const char *const bg_refuses[] = {
    "postcopy-ram",
    "dirty-bitmaps",
    "postcopy-blocktime",
    "late-block-activate",
    "return-path",
    "multifd",
    "pause-before-switchover",
    "auto-converge",
    "release-ram",
    "rdma-pin-all",
    "compress",
    "xbzrle",
    "x-colo",
    "validate-uuid",
    "zero-copy-send",
};

static char *caps_json(const char *on)
{
    g_auto(GStrv) names = g_strsplit(on, ",", -1);
    GString *json = g_string_new("{\"capabilities\": [");

    for (int i = 0; names[i]; i++) {
        g_string_append_printf(json,
                               "%s{\"capability\": \"%s\", "
                               "\"state\": true}",
                               i ? ", " : "", names[i]);
    }
    g_string_append(json, "]}");
    return g_string_free(json, FALSE);
}

/* The pure rules alone, then the command (rules first, then godwit's). */
static void check_cap_rule(const char *on, const char *want_err, bool incoming)
{
    bool old[MIGRATION_CAPABILITY__MAX] = {false};
    bool caps[MIGRATION_CAPABILITY__MAX] = {false};
    g_auto(GStrv) names = g_strsplit(on, ",", -1);
    g_autoptr(GError) err = NULL;
    g_autofree char *json = caps_json(on);
    g_autofree char *cmd_err = NULL;
    const char *first_nyi = NULL;
    MigrationParameters p;
    bool ok;

    for (int i = 0; names[i]; i++) {
        int cap = migration_capability_lookup(names[i]);

        assert_true(cap >= 0);
        caps[cap] = true;
    }
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        if (caps[i] && !migrate_cap_implemented(i) && !first_nyi) {
            first_nyi = migration_capability_name(i);
        }
    }
    mig_params_init_defaults(&p);
    ok = mig_caps_check(old, caps, &p, incoming, &err);
    mig_params_clear(&p);
    if (want_err) {
        assert_false(ok);
        assert_string_equal(err->message, want_err);
    } else if (!ok) {
        fail_msg("%s: %s", on, err->message);
    }

    setup(NULL);
    fake_incoming = incoming;
    cmd_err = set_caps(json);
    if (want_err) {
        assert_non_null(cmd_err);
        assert_string_equal(cmd_err, want_err);
    } else if (first_nyi) {
        g_autofree char *nyi = g_strdup_printf(
            "Capability '%s' is not supported by godwit yet", first_nyi);
        assert_non_null(cmd_err);
        assert_string_equal(cmd_err, nyi);
    } else {
        assert_null(cmd_err);
    }
    for (int i = 0; names[i]; i++) {
        int cap = migration_capability_lookup(names[i]);

        assert_int_equal(migrate_cap(cap), !want_err && !first_nyi);
    }
}

void test_cap_rules(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cap_rules); i++) {
        check_cap_rule(cap_rules[i].on, cap_rules[i].err,
                       cap_rules[i].incoming_started);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bg_refuses); i++) {
        g_autofree char *on =
            g_strdup_printf("background-snapshot,%s", bg_refuses[i]);
        g_autofree char *err = g_strdup_printf(
            "Background-snapshot is not compatible with %s", bg_refuses[i]);

        /* zero-copy-send alone breaks its own rule first */
        if (strcmp(bg_refuses[i], "zero-copy-send")) {
            check_cap_rule(on, err, false);
        }
    }
    /* two of them: QEMU names the first of its list, whatever the order */
    for (size_t i = 0; i + 1 < G_N_ELEMENTS(bg_refuses); i++) {
        g_autofree char *ab = g_strdup_printf("background-snapshot,%s,%s",
                                              bg_refuses[i], bg_refuses[i + 1]);
        g_autofree char *ba = g_strdup_printf("%s,background-snapshot,%s",
                                              bg_refuses[i + 1], bg_refuses[i]);
        g_autofree char *err = g_strdup_printf(
            "Background-snapshot is not compatible with %s", bg_refuses[i]);

        check_cap_rule(ab, err, false);
        check_cap_rule(ba, err, false);
    }
}

/* zero-copy-send also looks at parameters, both ways. */
void test_zero_copy_params(void **state)
{
    bool old[MIGRATION_CAPABILITY__MAX] = {false};
    bool caps[MIGRATION_CAPABILITY__MAX] = {false};
    g_autoptr(GError) err = NULL;
    g_autoptr(GError) err2 = NULL;
    MigrationParameters p;

    caps[MIGRATION_CAPABILITY_ZERO_COPY_SEND] = true;
    caps[MIGRATION_CAPABILITY_MULTIFD] = true;
    mig_params_init_defaults(&p);
    assert_true(mig_params_check(&p, caps, NULL));
    p.multifd_compression = MIG_COMPRESSION_ZSTD;
    assert_false(mig_caps_check(old, caps, &p, false, &err));
    assert_string_equal(err->message, ZERO_COPY_ERR);
    assert_false(mig_params_check(&p, caps, &err2));
    assert_string_equal(err2->message, ZERO_COPY_ERR);
    p.multifd_compression = MIG_COMPRESSION_NONE;
    mig_param_set_str(&p, MIG_PARAM_ID_tls_creds, "tls0");
    assert_false(mig_params_check(&p, caps, NULL));
    mig_params_clear(&p);
}

/* ---- migrate-set-capabilities -------------------------------------------- */

void test_set_capabilities(void **state)
{
    static const struct {
        const char *args, *err;
    } bad[] = {
        {"{\"capabilities\": [{\"capability\": \"foo\", \"state\": true}]}",
         "Parameter 'capability' does not accept value 'foo'"},
        {"{\"capabilities\": [{\"capability\": \"events\", \"state\": true},"
         " {\"capability\": \"foo\", \"state\": false}]}",
         "Parameter 'capability' does not accept value 'foo'"},
        {"{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": 1}]}",
         "Invalid parameter type for 'capabilities[0].state', expected: "
         "boolean"},
        {"{\"capabilities\": [{\"capability\": \"xbzrle\"}]}",
         "Parameter 'capabilities[0].state' is missing"},
        {"{\"capabilities\": [{\"state\": true}]}",
         "Parameter 'capabilities[0].capability' is missing"},
        {"{\"capabilities\": [{\"capability\": 1, \"state\": true}]}",
         "Invalid parameter type for 'capabilities[0].capability', expected: "
         "string"},
        {"{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": true, "
         "\"x\": 1}]}",
         "Parameter 'capabilities[0].x' is unexpected"},
        {"{\"capabilities\": {}}",
         "Invalid parameter type for 'capabilities', expected: array"},
        {"{}", "Parameter 'capabilities' is missing"},
        {"{\"capabilities\": [1]}",
         "Invalid parameter type for 'capabilities[0]', expected: object"},
        {"{\"capabilities\": [], \"x\": 1}", "Parameter 'x' is unexpected"},
        {"{\"capabilities\": [{\"capability\": \"events\", \"state\": true},"
         " {\"capability\": \"x-colo\", \"state\": true}]}",
         "Capability 'x-colo' is not supported by godwit yet"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        assert_qmp_err("migrate-set-capabilities", bad[i].args, bad[i].err);
        assert_false(migrate_cap(MIGRATION_CAPABILITY_EVENTS));
    }
    assert_qmp_ok("migrate-set-capabilities", "{\"capabilities\": []}");
    /* turning an unimplemented one off is fine; the last entry wins */
    assert_qmp_ok("migrate-set-capabilities",
                  "{\"capabilities\": [{\"capability\": \"x-colo\", "
                  "\"state\": false}, {\"capability\": \"events\", "
                  "\"state\": false}, {\"capability\": \"events\", "
                  "\"state\": true}]}");
    assert_true(migrate_cap(MIGRATION_CAPABILITY_EVENTS));
    assert_false(migrate_cap(MIGRATION_CAPABILITY_X_COLO));
    /* capabilities not named keep their state */
    assert_qmp_ok("migrate-set-capabilities",
                  "{\"capabilities\": [{\"capability\": "
                  "\"pause-before-switchover\", \"state\": true}]}");
    assert_true(migrate_cap(MIGRATION_CAPABILITY_EVENTS));
    assert_true(migrate_cap(MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER));
}

/* ---- the accelerator's say on dirty-limit -------------------------------- */

static int dirty_limit_checks;

static bool dirty_limit_refused(GError **errp)
{
    dirty_limit_checks++;
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "dirty-limit requires KVM with accelerator property "
                "'dirty-ring-size' set");
    return false;
}

static bool dirty_limit_allowed(GError **errp)
{
    dirty_limit_checks++;
    return true;
}

void test_dirty_limit_check(void **state)
{
    static const char on[] = "{\"capabilities\": [{\"capability\": "
                             "\"dirty-limit\", \"state\": true}]}";
    static const char off[] = "{\"capabilities\": [{\"capability\": "
                              "\"dirty-limit\", \"state\": false}]}";
    static const char both[] =
        "{\"capabilities\": [{\"capability\": \"dirty-limit\", "
        "\"state\": true}, {\"capability\": \"auto-converge\", "
        "\"state\": true}]}";

    dirty_limit_checks = 0;
    migration_options_set_dirty_limit_check(dirty_limit_refused);
    assert_qmp_err("migrate-set-capabilities", on,
                   "dirty-limit requires KVM with accelerator property "
                   "'dirty-ring-size' set");
    assert_false(migrate_cap(MIGRATION_CAPABILITY_DIRTY_LIMIT));
    assert_int_equal(dirty_limit_checks, 1);
    /* QEMU's rule comes first; turning it off asks nobody */
    assert_qmp_err("migrate-set-capabilities", both,
                   "dirty-limit conflicts with auto-converge either of then "
                   "available currently");
    assert_qmp_ok("migrate-set-capabilities", off);
    assert_int_equal(dirty_limit_checks, 1);

    migration_options_set_dirty_limit_check(dirty_limit_allowed);
    assert_qmp_ok("migrate-set-capabilities", on);
    assert_true(migrate_cap(MIGRATION_CAPABILITY_DIRTY_LIMIT));
    /* asked when it turns on, not again while it stays on */
    assert_qmp_ok("migrate-set-capabilities", on);
    assert_int_equal(dirty_limit_checks, 2);
    /* and auto-converge is refused while it is on */
    assert_qmp_err("migrate-set-capabilities",
                   "{\"capabilities\": [{\"capability\": "
                   "\"auto-converge\", \"state\": true}]}",
                   "dirty-limit conflicts with auto-converge either of then "
                   "available currently");
    migration_options_set_dirty_limit_check(NULL);
}
