/*
 * Unit tests for the migration capabilities and parameters
 * (migration/options*.c): QEMU 7.2's defaults, ranges, rules and texts
 * (captured from qemu-system-x86_64 7.2), whole-set validation, the busy
 * hooks, godwit's not-yet-supported refusals, and the QMP/HMP commands
 * driven through monitor_dispatch() and hmp_run_line().
 *
 * The expectations here are written out by hand, not derived from
 * options-table.h, so a wrong table row fails a test.
 *
 * This file has the defaults, ranges, busy hooks, whole sets, types and
 * threads cases and main(); the capability rules are in
 * test-migration-options-caps.c, the HMP cases in
 * test-migration-options-hmp.c, the helpers in migration-options-test.c.
 */
#include "migration-options-test.h"

/* ---- defaults and the query key sets ------------------------------------- */

/* QEMU 7.2's query-migrate-parameters, then godwit's four additions. */
static const struct {
    const char *name;
    const char *value; /* as JSON */
} qemu_defaults[] = {
    {"announce-initial", "50"},
    {"announce-max", "550"},
    {"announce-rounds", "5"},
    {"announce-step", "100"},
    {"compress-level", "1"},
    {"compress-threads", "8"},
    {"compress-wait-thread", "true"},
    {"decompress-threads", "2"},
    {"throttle-trigger-threshold", "50"},
    {"cpu-throttle-initial", "20"},
    {"cpu-throttle-increment", "10"},
    {"cpu-throttle-tailslow", "false"},
    {"max-cpu-throttle", "99"},
    {"tls-creds", "\"\""},
    {"tls-hostname", "\"\""},
    {"max-bandwidth", "134217728"},
    {"downtime-limit", "300"},
    {"x-checkpoint-delay", "20000"},
    {"block-incremental", "false"},
    {"multifd-channels", "2"},
    {"multifd-compression", "\"none\""},
    {"xbzrle-cache-size", "67108864"},
    {"max-postcopy-bandwidth", "0"},
    {"tls-authz", "\"\""},
    {"multifd-zlib-level", "1"},
    {"multifd-zstd-level", "1"},
    /* QEMU 8.1 / 8.2 */
    {"avail-switchover-bandwidth", "0"},
    {"x-vcpu-dirty-limit-period", "1000"},
    {"vcpu-dirty-limit", "1"},
    /* godwit's own */
    {"compress-method", "\"zlib\""},
    {"x-throttle-policy", "\"qemu\""},
};

static void test_param_defaults(void **state)
{
    g_autoptr(JsonNode) ret = query("query-migrate-parameters");
    JsonObject *o = json_node_get_object(ret);

    assert_int_equal(json_object_get_size(o), G_N_ELEMENTS(qemu_defaults));
    for (size_t i = 0; i < G_N_ELEMENTS(qemu_defaults); i++) {
        JsonNode *member = json_object_get_member(o, qemu_defaults[i].name);
        g_autoptr(JsonNode) want =
            json_from_string(qemu_defaults[i].value, NULL);

        if (!member || !json_node_equal(member, want)) {
            fail_msg("%s: wanted %s", qemu_defaults[i].name,
                     qemu_defaults[i].value);
        }
    }
    /* the accessors agree */
    assert_int_equal(migrate_max_bandwidth(), 134217728);
    assert_int_equal(migrate_downtime_limit(), 300);
    assert_int_equal(migrate_xbzrle_cache_size(), 64 << 20);
    assert_int_equal(migrate_max_cpu_throttle(), 99);
    assert_int_equal(migrate_throttle_trigger_threshold(), 50);
    assert_int_equal(migrate_compress_threads(), 8);
    assert_true(migrate_compress_wait_thread());
    assert_false(migrate_cpu_throttle_tailslow());
    assert_int_equal(migrate_multifd_compression(), MIG_COMPRESSION_NONE);
    assert_int_equal(migrate_compress_method(), MIG_COMPRESSION_ZLIB);
    assert_int_equal(migrate_vcpu_dirty_limit(), 1);
    g_autofree char *creds = migrate_tls_creds();
    assert_string_equal(creds, "");
}

const char *const qemu_caps[MIGRATION_CAPABILITY__MAX] = {
    "xbzrle",
    "rdma-pin-all",
    "auto-converge",
    "zero-blocks",
    "compress",
    "events",
    "postcopy-ram",
    "x-colo",
    "release-ram",
    "block",
    "return-path",
    "pause-before-switchover",
    "multifd",
    "dirty-bitmaps",
    "postcopy-blocktime",
    "late-block-activate",
    "x-ignore-shared",
    "validate-uuid",
    "background-snapshot",
    "zero-copy-send",
    "postcopy-preempt",
    "switchover-ack",
    "dirty-limit",
};

static void test_query_capabilities(void **state)
{
    g_autoptr(JsonNode) ret = query("query-migrate-capabilities");
    JsonArray *arr = json_node_get_array(ret);

    assert_int_equal(json_array_get_length(arr), G_N_ELEMENTS(qemu_caps));
    assert_int_equal(MIGRATION_CAPABILITY__MAX, G_N_ELEMENTS(qemu_caps));
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonObject *o = json_array_get_object_element(arr, i);

        assert_int_equal(json_object_get_size(o), 2);
        assert_string_equal(json_object_get_string_member(o, "capability"),
                            qemu_caps[i]);
        assert_false(json_object_get_boolean_member(o, "state"));
        assert_string_equal(migration_capability_name(i), qemu_caps[i]);
        assert_int_equal(migration_capability_lookup(qemu_caps[i]), i);
    }
    assert_int_equal(migration_capability_lookup("foo"), -1);
    /* implemented today */
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        assert_int_equal(migrate_cap_implemented(i),
                         i == MIGRATION_CAPABILITY_EVENTS ||
                             i ==
                                 MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER ||
                             i == MIGRATION_CAPABILITY_AUTO_CONVERGE ||
                             i == MIGRATION_CAPABILITY_XBZRLE ||
                             i == MIGRATION_CAPABILITY_COMPRESS ||
                             i == MIGRATION_CAPABILITY_MULTIFD ||
                             i == MIGRATION_CAPABILITY_POSTCOPY_RAM ||
                             i == MIGRATION_CAPABILITY_RETURN_PATH ||
                             i == MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME ||
                             i == MIGRATION_CAPABILITY_POSTCOPY_PREEMPT ||
                             i == MIGRATION_CAPABILITY_RELEASE_RAM ||
                             i == MIGRATION_CAPABILITY_ZERO_COPY_SEND ||
                             i == MIGRATION_CAPABILITY_DIRTY_LIMIT);
    }
}

/* ---- ranges -------------------------------------------------------------- */

/*
 * Every numeric parameter: min and max pass the range rules (then they are
 * set, or refused as not supported yet unless equal to the default); one
 * below and one above are refused with QEMU's text.
 */
static const struct {
    const char *name;
    const char *min, *max, *below, *above; /* JSON numbers */
    const char *below_err, *above_err;
    bool implemented;
} ranges[] = {
#define BETWEEN(n, lo, hi)                                                     \
    "Parameter '" n "' expects a value between " lo " and " hi
#define IN_RANGE(n, lo, hi)                                                    \
    "Parameter '" n "' expects an integer in the range of " lo " to " hi
#define U8(n) "Parameter '" n "' expects uint8_t"
#define I64MAX "9223372036854775807"
#define I64MAX_PLUS1 "9223372036854775808"
#define BW(n) IN_RANGE(n, "0", I64MAX " bytes/second")
    {"announce-initial", "0", "100000", "-1", "100001",
     BETWEEN("announce_initial", "0", "100000"),
     BETWEEN("announce_initial", "0", "100000"), true},
    {"announce-max", "0", "100000", "-1", "100001",
     BETWEEN("announce_max", "0", "100000"),
     BETWEEN("announce_max", "0", "100000"), true},
    {"announce-rounds", "0", "1000", "-1", "1001",
     BETWEEN("announce_rounds", "0", "1000"),
     BETWEEN("announce_rounds", "0", "1000"), true},
    /* QEMU's text says 0 although 0 is refused */
    {"announce-step", "1", "10000", "0", "10001",
     BETWEEN("announce_step", "0", "10000"),
     BETWEEN("announce_step", "0", "10000"), true},
    {"compress-level", "0", "9", "-1", "10", U8("compress-level"),
     BETWEEN("compress_level", "0", "9"), true},
    {"compress-threads", "1", "255", "0", "256",
     BETWEEN("compress_threads", "1", "255"), U8("compress-threads"), true},
    {"decompress-threads", "1", "255", "0", "256",
     BETWEEN("decompress_threads", "1", "255"), U8("decompress-threads"), true},
    {"throttle-trigger-threshold", "1", "100", "0", "101",
     IN_RANGE("throttle_trigger_threshold", "1", "100"),
     IN_RANGE("throttle_trigger_threshold", "1", "100"), true},
    {"cpu-throttle-initial", "1", "99", "0", "100",
     IN_RANGE("cpu_throttle_initial", "1", "99"),
     IN_RANGE("cpu_throttle_initial", "1", "99"), true},
    {"cpu-throttle-increment", "1", "99", "0", "100",
     IN_RANGE("cpu_throttle_increment", "1", "99"),
     IN_RANGE("cpu_throttle_increment", "1", "99"), true},
    /* min is cpu-throttle-initial (20 by default) */
    {"max-cpu-throttle", "20", "99", "19", "100",
     IN_RANGE("max_cpu_throttle", "cpu_throttle_initial", "99"),
     IN_RANGE("max_cpu_throttle", "cpu_throttle_initial", "99"), true},
    {"max-bandwidth", "0", I64MAX, "-1", I64MAX_PLUS1, BW("max_bandwidth"),
     BW("max_bandwidth"), true},
    {"downtime-limit", "0", "2000000", "-1", "2000001",
     IN_RANGE("downtime_limit", "0", "(2000 * 1000) ms"),
     IN_RANGE("downtime_limit", "0", "(2000 * 1000) ms"), true},
    {"x-checkpoint-delay", "0", "4294967295", "-1", "4294967296",
     "Parameter 'x-checkpoint-delay' expects uint32_t",
     "Parameter 'x-checkpoint-delay' expects uint32_t", false},
    {"multifd-channels", "1", "255", "0", "256",
     BETWEEN("multifd_channels", "1", "255"), U8("multifd-channels"), true},
    {"xbzrle-cache-size", "4096", "4611686018427387904", "2048", I64MAX_PLUS1,
     XBZRLE_ERR, XBZRLE_ERR, true},
    {"max-postcopy-bandwidth", "0", I64MAX, "-1", I64MAX_PLUS1,
     BW("max_postcopy_bandwidth"), BW("max_postcopy_bandwidth"), true},
    {"avail-switchover-bandwidth", "0", I64MAX, "-1", I64MAX_PLUS1,
     BW("avail_switchover_bandwidth"), BW("avail_switchover_bandwidth"), true},
    {"multifd-zlib-level", "0", "9", "-1", "10", U8("multifd-zlib-level"),
     BETWEEN("multifd_zlib_level", "0", "9"), true},
    {"multifd-zstd-level", "0", "20", "-1", "21", U8("multifd-zstd-level"),
     BETWEEN("multifd_zstd_level", "0", "20"), true},
    {"x-vcpu-dirty-limit-period", "1", "1000", "0", "1001",
     BETWEEN("x-vcpu-dirty-limit-period", "1", "1000"),
     BETWEEN("x-vcpu-dirty-limit-period", "1", "1000"), true},
    {"vcpu-dirty-limit", "1", I64MAX, "0", I64MAX_PLUS1,
     "Parameter 'vcpu_dirty_limit' expects is invalid, it must greater then "
     "1 MB/s",
     "Parameter 'vcpu_dirty_limit' expects is invalid, it must greater then "
     "1 MB/s",
     true},
};

static const char *default_of(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(qemu_defaults); i++) {
        if (!strcmp(qemu_defaults[i].name, name)) {
            return qemu_defaults[i].value;
        }
    }
    fail_msg("no default for %s", name);
    return NULL;
}

static void check_edge(const char *name, const char *value, bool impl)
{
    g_autofree char *json = g_strdup_printf("{\"%s\": %s}", name, value);
    g_autofree char *err = set_params(json);
    g_autoptr(JsonNode) ret = query("query-migrate-parameters");
    g_autoptr(JsonNode) want = json_from_string(value, NULL);
    JsonNode *now = json_object_get_member(json_node_get_object(ret), name);

    if (impl || !strcmp(value, default_of(name))) {
        if (err) {
            fail_msg("%s: %s", json, err);
        }
        assert_true(json_node_equal(now, want));
    } else {
        g_autofree char *nyi = g_strdup_printf(
            "Parameter '%s' is not supported by godwit yet", name);

        assert_non_null(err);
        assert_string_equal(err, nyi);
    }
}

static void test_param_ranges(void **state)
{
    int n_numeric = 0;

    for (size_t i = 0; i < G_N_ELEMENTS(ranges); i++) {
        g_autofree char *below =
            g_strdup_printf("{\"%s\": %s}", ranges[i].name, ranges[i].below);
        g_autofree char *above =
            g_strdup_printf("{\"%s\": %s}", ranges[i].name, ranges[i].above);

        check_edge(ranges[i].name, ranges[i].min, ranges[i].implemented);
        check_edge(ranges[i].name, ranges[i].max, ranges[i].implemented);
        setup(NULL);
        assert_qmp_err("migrate-set-parameters", below, ranges[i].below_err);
        assert_qmp_err("migrate-set-parameters", above, ranges[i].above_err);
        /* a refused value changes nothing */
        g_autoptr(JsonNode) ret = query("query-migrate-parameters");
        g_autoptr(JsonNode) def =
            json_from_string(default_of(ranges[i].name), NULL);
        assert_true(json_node_equal(
            json_object_get_member(json_node_get_object(ret), ranges[i].name),
            def));
    }
    /* every numeric parameter of the table is in `ranges` */
    for (int i = 0; i < MIG_PARAM__MAX; i++) {
        MigParamType t = mig_param_info[i].type;

        if (t == MIG_PARAM_U8 || t == MIG_PARAM_U32 || t == MIG_PARAM_SIZE ||
            t == MIG_PARAM_MIBSIZE) {
            n_numeric++;
        }
        /* 64-bit values must stay int64 for the JSON of the query */
        if (t == MIG_PARAM_SIZE || t == MIG_PARAM_MIBSIZE) {
            assert_non_null(mig_param_info[i].check);
            assert_true(mig_param_info[i].max <= INT64_MAX);
        }
    }
    assert_int_equal(n_numeric, G_N_ELEMENTS(ranges));
    /* the other xbzrle-cache-size rule: a power of two */
    assert_qmp_err("migrate-set-parameters", "{\"xbzrle-cache-size\": 6000}",
                   XBZRLE_ERR);
}

/* ---- busy hooks ---------------------------------------------------------- */

static void test_busy(void **state)
{
    static const char running[] = "There's a migration process in progress";

    fake_outgoing = true;
    /* the request is read (and refused for its errors) first */
    assert_qmp_err("migrate-set-capabilities",
                   "{\"capabilities\": [{\"capability\": \"foo\", "
                   "\"state\": true}]}",
                   "Parameter 'capability' does not accept value 'foo'");
    assert_qmp_err("migrate-set-capabilities",
                   "{\"capabilities\": [{\"capability\": \"events\", "
                   "\"state\": true}]}",
                   running);
    assert_qmp_err("migrate-set-capabilities", "{\"capabilities\": []}",
                   running);
    assert_qmp_err("migrate-set-parameters", "{\"multifd-channels\": 4}",
                   "Parameter 'multifd-channels' can't be changed while a "
                   "migration is in progress");
    assert_qmp_err("migrate-set-parameters",
                   "{\"downtime-limit\": 10, \"multifd-compression\": "
                   "\"zlib\"}",
                   "Parameter 'multifd-compression' can't be changed while a "
                   "migration is in progress");
    assert_int_equal(migrate_downtime_limit(), 300);
    /* the same value, and parameters read live, are fine */
    assert_qmp_ok("migrate-set-parameters",
                  "{\"multifd-channels\": 2, \"downtime-limit\": 10, "
                  "\"max-bandwidth\": 1000}");
    assert_int_equal(migrate_downtime_limit(), 10);
    assert_int_equal(migrate_max_bandwidth(), 1000);

    fake_outgoing = false;
    fake_incoming = true;
    assert_qmp_err("migrate-set-parameters", "{\"multifd-channels\": 4}",
                   "Parameter 'multifd-channels' must be set before incoming "
                   "starts");
    /* read when the source connects: may change until then */
    assert_qmp_ok("migrate-set-parameters", "{\"compress-method\": \"lz4\"}");
    fake_loading = true;
    assert_qmp_err("migrate-set-parameters", "{\"compress-method\": \"zlib\"}",
                   "Parameter 'compress-method' can't be changed while an "
                   "incoming migration is in progress");
    assert_qmp_err("migrate-set-parameters", "{\"multifd-channels\": 4}",
                   "Parameter 'multifd-channels' must be set before incoming "
                   "starts");
    fake_loading = false;
    assert_qmp_ok("migrate-set-capabilities",
                  "{\"capabilities\": [{\"capability\": \"events\", "
                  "\"state\": true}]}");
    assert_true(migrate_cap(MIGRATION_CAPABILITY_EVENTS));

    /* never initialised: never busy */
    migration_options_init(NULL, NULL, NULL);
    assert_qmp_ok("migrate-set-parameters", "{\"multifd-channels\": 4}");
}

/* ---- migrate-set-parameters: whole sets and types ------------------------ */

static void test_params_whole_set(void **state)
{
    static const struct {
        const char *args, *err;
    } bad[] = {
        /* one bad member: the good ones don't change either */
        {"{\"downtime-limit\": 100, \"max-bandwidth\": 1000, "
         "\"cpu-throttle-initial\": 0}",
         "Parameter 'cpu_throttle_initial' expects an integer in the range "
         "of 1 to 99"},
        {"{\"downtime-limit\": 100, \"max-postcopy-bandwidth\": -1}",
         "Parameter 'max_postcopy_bandwidth' expects an integer in the range "
         "of 0 to 9223372036854775807 bytes/second"},
        {"{\"downtime-limit\": 100, \"foo\": 1}",
         "Parameter 'foo' is unexpected"},
        {"{\"downtime-limit\": 100, \"cpu-throttle-tailslow\": 1}",
         "Invalid parameter type for 'cpu-throttle-tailslow', expected: "
         "boolean"},
        {"{\"max-bandwidth\": 1000, \"downtime-limit\": 2000001}",
         "Parameter 'downtime_limit' expects an integer in the range of 0 to "
         "(2000 * 1000) ms"},
        /* rules across members, checked on the new whole set */
        {"{\"cpu-throttle-initial\": 50, \"max-cpu-throttle\": 40}",
         "Parameter 'max_cpu_throttle' expects an integer in the range of "
         "cpu_throttle_initial to 99"},
        {"{\"max-cpu-throttle\": 10}",
         "Parameter 'max_cpu_throttle' expects an integer in the range of "
         "cpu_throttle_initial to 99"},
        /* QEMU's order: every member's type, then unknown members */
        {"{\"foo\": 1, \"multifd-channels\": \"x\"}",
         "Parameter 'multifd-channels' expects uint64"},
        {"{\"multifd-channels\": 0, \"foo\": 2}",
         "Parameter 'foo' is unexpected"},
        /* then the ranges, in QEMU's order (not the request's) */
        {"{\"downtime-limit\": 3000000, \"compress-level\": 10}",
         "Parameter 'compress_level' expects a value between 0 and 9"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        assert_qmp_err("migrate-set-parameters", bad[i].args, bad[i].err);
        assert_int_equal(migrate_downtime_limit(), 300);
        assert_int_equal(migrate_max_bandwidth(), 128 << 20);
        assert_int_equal(migrate_cpu_throttle_initial(), 20);
    }
    /* a good set lands whole; unimplemented ones may repeat their value */
    assert_qmp_ok("migrate-set-parameters",
                  "{\"downtime-limit\": 100, \"max-bandwidth\": 1000, "
                  "\"announce-rounds\": 7, \"avail-switchover-bandwidth\": 5, "
                  "\"xbzrle-cache-size\": 67108864, \"tls-creds\": \"\", "
                  "\"compress-method\": \"zlib\", "
                  "\"x-throttle-policy\": \"aim\"}");
    assert_int_equal(migrate_x_throttle_policy(), MIG_THROTTLE_POLICY_AIM);
    assert_int_equal(migrate_downtime_limit(), 100);
    assert_int_equal(migrate_max_bandwidth(), 1000);
    assert_int_equal(migrate_announce_rounds(), 7);
    assert_int_equal(migrate_avail_switchover_bandwidth(), 5);
    assert_qmp_ok("migrate-set-parameters", "{}");
    assert_int_equal(migrate_downtime_limit(), 100);
}

static void test_param_types(void **state)
{
    static const struct {
        const char *args, *err;
    } cases[] = {
        {"{\"downtime-limit\": \"300\"}",
         "Parameter 'downtime-limit' expects uint64"},
        {"{\"downtime-limit\": 1.5}",
         "Parameter 'downtime-limit' expects uint64"},
        {"{\"downtime-limit\": true}",
         "Parameter 'downtime-limit' expects uint64"},
        {"{\"downtime-limit\": null}",
         "Parameter 'downtime-limit' expects uint64"},
        {"{\"compress-level\": \"x\"}",
         "Parameter 'compress-level' expects uint64"},
        {"{\"max-bandwidth\": 1.5}",
         "Parameter 'max-bandwidth' expects uint64"},
        {"{\"x-checkpoint-delay\": \"x\"}",
         "Parameter 'x-checkpoint-delay' expects uint64"},
        {"{\"cpu-throttle-tailslow\": null}",
         "Invalid parameter type for 'cpu-throttle-tailslow', expected: "
         "boolean"},
        {"{\"compress-wait-thread\": \"on\"}",
         "Invalid parameter type for 'compress-wait-thread', expected: "
         "boolean"},
        {"{\"tls-creds\": 1}",
         "Invalid parameter type for 'tls-creds', expected: StrOrNull"},
        {"{\"tls-authz\": []}",
         "Invalid parameter type for 'tls-authz', expected: StrOrNull"},
        {"{\"multifd-compression\": \"foo\"}",
         "Parameter 'multifd-compression' does not accept value 'foo'"},
        {"{\"multifd-compression\": 1}",
         "Invalid parameter type for 'multifd-compression', expected: string"},
        {"{\"multifd-compression\": null}",
         "Invalid parameter type for 'multifd-compression', expected: string"},
        {"{\"compress-method\": \"none\"}",
         "Parameter 'compress-method' does not accept value 'none'"},
        {"{\"compress-method\": \"brotli\"}",
         "Parameter 'compress-method' does not accept value 'brotli'"},
        {"{\"x-throttle-policy\": \"zlib\"}",
         "Parameter 'x-throttle-policy' does not accept value 'zlib'"},
        {"{\"x-throttle-policy\": 1}",
         "Invalid parameter type for 'x-throttle-policy', expected: string"},
        {"{\"block-bitmap-mapping\": []}",
         "Parameter 'block-bitmap-mapping' is not supported by godwit (godwit "
         "has no block devices)"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        assert_qmp_err("migrate-set-parameters", cases[i].args, cases[i].err);
    }
    /* an object id is checked when a migration uses it, as in QEMU */
    assert_qmp_ok("migrate-set-parameters",
                  "{\"tls-creds\": \"tls0\", \"tls-hostname\": \"dst\"}");
    /* StrOrNull: null and "" both mean no TLS */
    assert_qmp_ok("migrate-set-parameters",
                  "{\"tls-creds\": null, \"tls-hostname\": \"\", "
                  "\"tls-authz\": null}");
    assert_qmp_ok("migrate-set-parameters",
                  "{\"multifd-compression\": \"none\", "
                  "\"cpu-throttle-tailslow\": false}");
    /* queries take no arguments */
    assert_qmp_err("query-migrate-parameters", "{\"x\": 1}",
                   "Parameter 'x' is unexpected");
    assert_qmp_err("query-migrate-capabilities", "{\"x\": 1}",
                   "Parameter 'x' is unexpected");
}

/* ---- accessors from other threads ---------------------------------------- */

static gpointer reader(gpointer data)
{
    for (int i = 0; i < 20000; i++) {
        uint64_t d = migrate_downtime_limit();
        g_autofree char *creds = migrate_tls_creds();

        if ((d != 300 && d != 301) || *creds) {
            return GINT_TO_POINTER(1);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    GThread *t[4];
    bool stop = false;

    for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
        t[i] = g_thread_new("reader", reader, NULL);
    }
    for (int i = 0; i < 2000 && !stop; i++) {
        assert_qmp_ok("migrate-set-parameters",
                      i % 2 ? "{\"downtime-limit\": 300}"
                            : "{\"downtime-limit\": 301}");
    }
    for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
        assert_null(g_thread_join(t[i]));
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup(f, setup)
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        T(test_param_defaults),
        T(test_query_capabilities),
        T(test_param_ranges),
        T(test_cap_rules),
        T(test_zero_copy_params),
        T(test_set_capabilities),
        T(test_dirty_limit_check),
        T(test_busy),
        T(test_params_whole_set),
        T(test_param_types),
        T(test_hmp_set),
        T(test_hmp_errors),
        T(test_hmp_info),
        T(test_hmp_help),
        T(test_threads),
    };
    /* clang-format on */

    migration_options_register_commands();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
