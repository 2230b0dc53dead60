/*
 * Unit tests for the HMP side of the migration options:
 * migrate_set_parameter / migrate_set_capability parsing and errors as
 * QEMU 7.2 prints them, `info migrate_capabilities` / `info
 * migrate_parameters` text, and the help generated from the table.
 * main() is in test-migration-options.c.
 */
#include "migration-options-test.h"

void test_hmp_set(void **state)
{
    static const struct {
        const char *line, *out;
        uint64_t (*get)(void);
        uint64_t want;
    } cases[] = {
        /* max-bandwidth and avail-switchover-bandwidth: plain = MiB/s */
        {"migrate_set_parameter max-bandwidth 100", "", migrate_max_bandwidth,
         100 << 20},
        {"migrate_set_parameter max-bandwidth 1G", "", migrate_max_bandwidth,
         1 << 30},
        {"migrate_set_parameter max-bandwidth 1.5M", "", migrate_max_bandwidth,
         3 << 19},
        {"migrate_set_parameter max-bandwidth 100B", "", migrate_max_bandwidth,
         100},
        {"migrate_set_parameter max-bandwidth foo", "Error: Invalid size foo\n",
         migrate_max_bandwidth, 100},
        {"migrate_set_parameter max-bandwidth -1", "Error: Invalid size -1\n",
         migrate_max_bandwidth, 100},
        {"migrate_set_parameter max-bandwidth 17592186044415",
         "Error: Invalid size 17592186044415\n", migrate_max_bandwidth, 100},
        {"migrate_set_parameter avail-switchover-bandwidth 1", "",
         migrate_avail_switchover_bandwidth, 1 << 20},
        /* other sizes: plain = bytes */
        {"migrate_set_parameter downtime-limit 500", "", migrate_downtime_limit,
         500},
        {"migrate_set_parameter downtime-limit 1k", "", migrate_downtime_limit,
         1024},
        {"migrate_set_parameter downtime-limit 3000000",
         "Error: Parameter 'downtime_limit' expects an integer in the range "
         "of 0 to (2000 * 1000) ms\n",
         migrate_downtime_limit, 1024},
        {"migrate_set_parameter downtime-limit foo",
         "Error: Parameter 'downtime-limit' expects a non-negative number "
         "below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, "
         "giga-, tera-, peta-\nand exabytes, respectively.\n",
         migrate_downtime_limit, 1024},
        {"migrate_set_parameter xbzrle-cache-size 64M", "",
         migrate_xbzrle_cache_size, 64 << 20},
        {"migrate_set_parameter xbzrle-cache-size 1000",
         "Error: " XBZRLE_ERR "\n", migrate_xbzrle_cache_size, 64 << 20},
        {"migrate_set_parameter xbzrle-cache-size 0.5k",
         "Error: " XBZRLE_ERR "\n", migrate_xbzrle_cache_size, 64 << 20},
        {"migrate_set_parameter xbzrle-cache-size 128M", "",
         migrate_xbzrle_cache_size, 128 << 20},
        {"migrate_set_parameter xbzrle-cache-size 64M", "",
         migrate_xbzrle_cache_size, 64 << 20},
        {"migrate_set_parameter xbzrle-cache-size 8E",
         "Error: Invalid size 8E\n", migrate_xbzrle_cache_size, 64 << 20},
        {"migrate_set_parameter xbzrle-cache-size 16E",
         "Error: Value '16E' is out of range for parameter "
         "'xbzrle-cache-size'\n",
         migrate_xbzrle_cache_size, 64 << 20},
        /* hex, as QEMU reads sizes (and integers: 010 is octal there) */
        {"migrate_set_parameter max-bandwidth 0x10", "", migrate_max_bandwidth,
         16 << 20},
        {"migrate_set_parameter downtime-limit 0x10k", "",
         migrate_downtime_limit, 16384},
        {"migrate_set_parameter downtime-limit 0x1f", "",
         migrate_downtime_limit, 31},
        {"migrate_set_parameter downtime-limit 0x",
         "Error: Parameter "
         "'downtime-limit' expects a non-negative number below 2^64\nOptional "
         "suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
         "and exabytes, respectively.\n",
         migrate_downtime_limit, 31},
        {"migrate_set_parameter announce-rounds 010", "",
         migrate_announce_rounds, 10},
        {"migrate_set_parameter announce-rounds 7", "", migrate_announce_rounds,
         7},
        {"migrate_set_parameter announce-rounds 1.5k",
         "Error: Parameter 'announce_rounds' expects a value between 0 and "
         "1000\n",
         migrate_announce_rounds, 7},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        assert_hmp(cases[i].line, cases[i].out);
        assert_int_equal(cases[i].get(), cases[i].want);
    }
}

void test_hmp_errors(void **state)
{
    static const struct {
        const char *line, *out;
    } cases[] = {
        {"migrate_set_parameter compress-level 10",
         "Error: Parameter 'compress_level' expects a value between 0 and 9\n"},
        {"migrate_set_parameter compress-level 300",
         "Error: Parameter 'compress-level' expects uint8_t\n"},
        {"migrate_set_parameter compress-level -1",
         "Error: Parameter 'compress-level' expects uint8_t\n"},
        {"migrate_set_parameter compress-level foo",
         "Error: Parameter 'compress-level' expects uint64\n"},
        {"migrate_set_parameter compress-level 5k",
         "Error: Parameter 'compress-level' expects uint64\n"},
        {"migrate_set_parameter x-checkpoint-delay -1",
         "Error: Parameter 'x-checkpoint-delay' expects uint32_t\n"},
        {"migrate_set_parameter multifd-channels 0",
         "Error: Parameter 'multifd_channels' expects a value between 1 and "
         "255\n"},
        {"migrate_set_parameter cpu-throttle-tailslow maybe",
         "Error: Parameter 'cpu-throttle-tailslow' expects 'on' or 'off'\n"},
        {"migrate_set_parameter cpu-throttle-tailslow ON",
         "Error: Parameter 'cpu-throttle-tailslow' expects 'on' or 'off'\n"},
        {"migrate_set_parameter cpu-throttle-tailslow n", ""},
        {"migrate_set_parameter compress-wait-thread yes", ""},
        {"migrate_set_parameter multifd-compression ZLIB",
         "Error: Parameter 'multifd-compression' does not accept value "
         "'ZLIB'\n"},
        {"migrate_set_parameter multifd-compression none", ""},
        {"migrate_set_parameter x-throttle-policy fast",
         "Error: Parameter 'x-throttle-policy' does not accept value "
         "'fast'\n"},
        {"migrate_set_parameter x-throttle-policy aim", ""},
        {"migrate_set_parameter x-throttle-policy qemu", ""},
        {"migrate_set_parameter tls-creds ''", ""},
        {"migrate_set_parameter tls-creds tls0", ""},
        {"migrate_set_parameter tls-creds ''", ""},
        {"migrate_set_parameter foo 1",
         "Error: invalid parameter value: foo\n"},
        {"migrate_set_parameter block-bitmap-mapping 1",
         "Error: Parameter 'block-bitmap-mapping' is not supported by godwit "
         "(godwit has no block devices)\n"},
        {"migrate_set_capability foo on",
         "Error: invalid parameter value: foo\n"},
        {"migrate_set_capability XBZRLE on",
         "Error: invalid parameter value: XBZRLE\n"},
        {"migrate_set_capability x-colo on",
         "Error: Capability 'x-colo' is not supported by godwit yet\n"},
        {"migrate_set_capability x-colo off", ""},
        {"migrate_set_capability postcopy-preempt on",
         "Error: Postcopy preempt requires postcopy-ram\n"},
        {"migrate_set_capability events on", ""},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        assert_hmp(cases[i].line, cases[i].out);
    }
    assert_true(migrate_cap(MIGRATION_CAPABILITY_EVENTS));
    fake_outgoing = true;
    assert_hmp("migrate_set_capability events off",
               "Error: There's a migration process in progress\n");
}

/* QEMU 7.2's `info migrate_capabilities` with 8.1's two at the end. */
static const char info_caps_default[] =
    "xbzrle: off\nrdma-pin-all: off\nauto-converge: off\nzero-blocks: off\n"
    "compress: off\nevents: off\npostcopy-ram: off\nx-colo: off\n"
    "release-ram: off\nblock: off\nreturn-path: off\n"
    "pause-before-switchover: off\nmultifd: off\ndirty-bitmaps: off\n"
    "postcopy-blocktime: off\nlate-block-activate: off\n"
    "x-ignore-shared: off\nvalidate-uuid: off\nbackground-snapshot: off\n"
    "zero-copy-send: off\npostcopy-preempt: off\nswitchover-ack: off\n"
    "dirty-limit: off\n";

/* QEMU 7.2's `info migrate_parameters` verbatim, then godwit's extras. */
static const char info_params_default[] =
    "announce-initial: 50 ms\nannounce-max: 550 ms\nannounce-rounds: 5\n"
    "announce-step: 100 ms\ncompress-level: 1\ncompress-threads: 8\n"
    "compress-wait-thread: on\ndecompress-threads: 2\n"
    "throttle-trigger-threshold: 50\ncpu-throttle-initial: 20\n"
    "cpu-throttle-increment: 10\ncpu-throttle-tailslow: off\n"
    "max-cpu-throttle: 99\ntls-creds: ''\ntls-hostname: ''\n"
    "max-bandwidth: 134217728 bytes/second\ndowntime-limit: 300 ms\n"
    "x-checkpoint-delay: 20000 ms\nblock-incremental: off\n"
    "multifd-channels: 2\nmultifd-compression: none\n"
    "xbzrle-cache-size: 67108864 bytes\nmax-postcopy-bandwidth: 0\n"
    "tls-authz: ''\n"
    /* godwit */
    "avail-switchover-bandwidth: 0 bytes/second\nmultifd-zlib-level: 1\n"
    "multifd-zstd-level: 1\nx-vcpu-dirty-limit-period: 1000 ms\n"
    "vcpu-dirty-limit: 1 MB/s\ncompress-method: zlib\nx-throttle-policy: qemu\n";

void test_hmp_info(void **state)
{
    g_autofree char *caps = NULL;
    g_autofree char *params = NULL;

    assert_hmp("info migrate_capabilities", info_caps_default);
    assert_hmp("info migrate_parameters", info_params_default);

    assert_hmp("migrate_set_capability pause-before-switchover on", "");
    assert_hmp("migrate_set_parameter max-bandwidth 100", "");
    assert_hmp("migrate_set_parameter downtime-limit 1000", "");
    caps = hmp_run_line("info migrate_capabilities");
    assert_non_null(strstr(caps, "\nevents: off\n"));
    assert_non_null(strstr(caps, "\npause-before-switchover: on\n"));
    params = hmp_run_line("info migrate_parameters");
    assert_non_null(strstr(params, "\nmax-bandwidth: 104857600 bytes/second\n"
                                   "downtime-limit: 1000 ms\n"));
}

void test_hmp_help(void **state)
{
    g_autofree char *set = hmp_run_line("help migrate_set_parameter");
    g_autofree char *cap = hmp_run_line("help migrate_set_capability");
    g_autofree char *info = hmp_run_line("help info migrate_parameters");

    assert_true(g_str_has_prefix(set, "migrate_set_parameter parameter value "
                                      "-- Set the parameter for migration\n"));
    assert_true(g_str_has_prefix(cap, "migrate_set_capability capability "
                                      "state -- Enable/Disable the usage of a "
                                      "capability for migration\n"));
    assert_string_equal(info, "info migrate_parameters -- show current "
                              "migration parameters\n");
    /* one line per table row */
    for (int i = 0; i < MIG_PARAM__MAX; i++) {
        g_autofree char *line =
            g_strdup_printf("\n\t\t\t %s: ", mig_param_info[i].name);
        assert_non_null(strstr(set, line));
    }
    for (size_t i = 0; i < G_N_ELEMENTS(qemu_caps); i++) {
        g_autofree char *line = g_strdup_printf("\n\t\t\t %s: ", qemu_caps[i]);
        assert_non_null(strstr(cap, line));
    }
}
