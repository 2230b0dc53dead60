/*
 * Unit tests for system/options.c: QEMU-style command-line parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "godwit/options.h"

/* Parses a space-separated command line; returns the parse result. */
static bool parse(const char *cmdline, GwOptions *o, GError **errp)
{
    g_auto(GStrv) argv = NULL;
    g_autofree char *full = g_strconcat("godwit ", cmdline, NULL);
    int argc = 0;

    g_assert(g_shell_parse_argv(full, &argc, &argv, NULL));
    return gw_options_parse(argc, argv, o, errp);
}

static void test_defaults(void **state)
{
    GwOptions o;

    assert_true(parse("-kernel k.elf", &o, NULL));
    assert_int_equal(o.ram_size, 128ull << 20);
    assert_int_equal(o.smp, 1);
    assert_string_equal(o.kernel, "k.elf");
    assert_null(o.append);
    assert_false(o.start_paused);
    assert_null(o.qmp);
    gw_options_clear(&o);
}

static void test_full_command_line(void **state)
{
    GwOptions o;
    const char *cmd =
        "-name src -m 2G -smp 2 -kernel build/guest/stress.elf "
        "-append 'vm=2 vm-bytes=512M' -accel kvm -S -serial file:/tmp/s.log "
        "-qmp unix:/tmp/q.sock,server=on,wait=off "
        "-qmp tcp:127.0.0.1:4444,server=on,wait=off -monitor stdio "
        "-incoming defer -pidfile /tmp/p -nodefaults -display none";

    assert_true(parse(cmd, &o, NULL));
    assert_string_equal(o.name, "src");
    assert_int_equal(o.ram_size, 2ull << 30);
    assert_int_equal(o.smp, 2);
    assert_string_equal(o.append, "vm=2 vm-bytes=512M");
    assert_string_equal(o.accel, "kvm");
    assert_true(o.start_paused);
    assert_string_equal(o.serial, "file:/tmp/s.log");
    assert_int_equal(o.qmp->len, 2);
    assert_string_equal(g_ptr_array_index(o.qmp, 1),
                        "tcp:127.0.0.1:4444,server=on,wait=off");
    assert_int_equal(o.monitor->len, 1);
    assert_string_equal(o.incoming, "defer");
    assert_string_equal(o.pidfile, "/tmp/p");
    assert_true(o.nodefaults);
    gw_options_clear(&o);
}

typedef struct GoodCase {
    const char *cmd;
    uint64_t ram;
    int smp;
    const char *name;
} GoodCase;

static void test_variants(void **state)
{
    static const GoodCase cases[] = {
        {"-m 512", 512ull << 20, 1, NULL},
        {"-m size=1G", 1ull << 30, 1, NULL},
        {"--m 16G", 16ull << 30, 1, NULL},
        {"-m 1.5G", 3ull << 29, 1, NULL},
        {"-m 4097K", 4100ull << 10, 1, NULL}, /* rounded up to a page */
        {"-smp cpus=4", 128ull << 20, 4, NULL},
        {"-smp 2,maxcpus=2", 128ull << 20, 2, NULL},
        {"-smp 3,sockets=1,cores=1,threads=1", 128ull << 20, 3, NULL},
        {"-name guest=vm1", 128ull << 20, 1, "vm1"},
        {"-enable-kvm -accel kvm", 128ull << 20, 1, NULL},
        {"-display none -nographic", 128ull << 20, 1, NULL},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GwOptions o;
        g_autoptr(GError) err = NULL;
        if (!parse(cases[i].cmd, &o, &err)) {
            fail_msg("'%s': %s", cases[i].cmd, err->message);
        }
        assert_int_equal(o.ram_size, cases[i].ram);
        assert_int_equal(o.smp, cases[i].smp);
        if (cases[i].name) {
            assert_string_equal(o.name, cases[i].name);
        }
        gw_options_clear(&o);
    }
}

/* -accel lists: QEMU's fallback syntax, in order, without repeats. */
static void test_accel(void **state)
{
    static const struct {
        const char *cmd;
        const char *accel; /* NULL: the default (kvm, else tcg) */
    } cases[] = {
        {"-m 64", NULL},
        {"-accel kvm", "kvm"},
        {"-accel tcg", "tcg"},
        {"-accel tcg,thread=single", "tcg"},
        {"-accel kvm:tcg", "kvm:tcg"},
        {"-accel kvm -accel tcg", "kvm:tcg"},
        {"-accel tcg -accel kvm", "tcg:kvm"},
        {"-enable-kvm -accel kvm", "kvm"},
        {"-enable-kvm -accel tcg", "kvm:tcg"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GwOptions o;
        g_autoptr(GError) err = NULL;
        if (!parse(cases[i].cmd, &o, &err)) {
            fail_msg("'%s': %s", cases[i].cmd, err->message);
        }
        if (g_strcmp0(o.accel, cases[i].accel)) {
            fail_msg("'%s': accel '%s', expected '%s'", cases[i].cmd,
                     o.accel ? o.accel : "(default)",
                     cases[i].accel ? cases[i].accel : "(default)");
        }
        gw_options_clear(&o);
    }
}

typedef struct BadCase {
    const char *cmd;
    const char *msg; /* substring of the error */
} BadCase;

static void test_errors(void **state)
{
    static const BadCase cases[] = {
        {"-bogus", "-bogus: invalid option"},
        {"-m", "-m: requires an argument"},
        {"-m 12Q", "invalid size '12Q'"},
        {"-m 1M", "too small"},
        {"-m -5", "invalid size"},
        {"-m 99999999999999999999", "too large"},
        {"-m size=1G,slots=2", "unsupported parameter 'slots'"},
        {"-smp 0", "must be a number from 1"},
        {"-smp 256", "must be a number from 1"},
        {"-smp two", "must be a number"},
        {"-smp 2,sockets=2", "not supported"},
        {"-smp 2,maxcpus=4", "maxcpus must equal cpus"},
        {"-accel hax", "accelerator 'hax' is not supported"},
        {"-accel kvm:whpx", "accelerator 'whpx' is not supported"},
        {"-accel tcg,thread=multi", "thread=single"},
        {"-accel kvm,thread=single", "kvm takes no option 'thread'"},
        {"-accel kvm,dirty-ring-size=1000", "must be a power of two"},
        {"-accel kvm,dirty-ring-size=4097", "must be a power of two"},
        {"-accel kvm,dirty-ring-size=-4096", "must be a number of ring"},
        {"-accel kvm,dirty-ring-size=4k", "must be a number of ring"},
        {"-accel kvm,dirty-ring-size=", "must be a number of ring"},
        {"-accel kvm,dirty-ring-size=8589934592", "must be a number of ring"},
        {"-accel tcg,dirty-ring-size=4096", "property of kvm alone"},
        {"-accel kvm:tcg,dirty-ring-size=4096", "property of kvm alone"},
        {"-accel kvm,dirty-ring=4096", "'dirty-ring=4096' is not supported"},
        {"-serial pty", "'pty' is not supported"},
        {"-serial file:", "needs a path"},
        {"-display gtk", "'gtk' is not supported"},
        {"-kernel a -kernel b", "given more than once"},
        {"stray", "unexpected argument 'stray'"},
        {"-", "unexpected argument"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GwOptions o;
        g_autoptr(GError) err = NULL;
        if (parse(cases[i].cmd, &o, &err)) {
            fail_msg("'%s' was accepted", cases[i].cmd);
        }
        if (!strstr(err->message, cases[i].msg)) {
            fail_msg("'%s': error '%s' lacks '%s'", cases[i].cmd, err->message,
                     cases[i].msg);
        }
        assert_null(strchr(err->message, '\n'));
        gw_options_clear(&o);
    }
}

/* -accel kvm,dirty-ring-size=N: ring entries per vCPU, a power of two. */
static void test_dirty_ring_size(void **state)
{
    static const struct {
        const char *cmd;
        uint32_t size;
    } cases[] = {
        {"-accel kvm", 0},
        {"-accel kvm,dirty-ring-size=0", 0},
        {"-accel kvm,dirty-ring-size=1", 1},
        {"-accel kvm,dirty-ring-size=1024", 1024},
        {"-accel kvm,dirty-ring-size=4096", 4096},
        {"-accel kvm,dirty-ring-size=0x10000", 65536},
        {"-accel kvm,dirty-ring-size=2147483648", 2147483648u},
        {"-accel kvm,dirty-ring-size=4096 -accel tcg", 4096},
        {"-enable-kvm -accel kvm,dirty-ring-size=256", 256},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GwOptions o;
        g_autoptr(GError) err = NULL;
        if (!parse(cases[i].cmd, &o, &err)) {
            fail_msg("'%s': %s", cases[i].cmd, err->message);
        }
        if (o.dirty_ring_size != cases[i].size) {
            fail_msg("'%s': dirty-ring-size %u, expected %u", cases[i].cmd,
                     o.dirty_ring_size, cases[i].size);
        }
        assert_non_null(strstr(o.accel, "kvm"));
        gw_options_clear(&o);
    }
}

static void test_flags(void **state)
{
    GwOptions o;

    assert_true(parse("-version", &o, NULL));
    assert_true(o.show_version);
    gw_options_clear(&o);
    assert_true(parse("-h", &o, NULL));
    assert_true(o.show_help);
    gw_options_clear(&o);
    assert_non_null(strstr(gw_options_usage(), "-incoming"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_dirty_ring_size),
        cmocka_unit_test(test_full_command_line),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_accel),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
