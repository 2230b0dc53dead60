/*
 * Unit tests of the post-copy commands (migration/savevm.c,
 * migration/savevm-cmd.c), the streams the destination must refuse:
 * commands out of order, malformed commands, a stream or a package cut at
 * every byte offset, a listen thread that fails, hooks and sections that
 * fail, and commands whose hook is not set. Each load fails with an error
 * that says why; none crashes or hangs. The good sequences are in
 * test-postcopy-commands.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <string.h>

#include "postcopy-stream-helpers.h"

/* ---- table-driven streams -------------------------------------------------
 */

typedef struct StreamCase {
    const char *name;
    bool sections;              /* register "dev" and "iter" */
    const char *script;         /* after the header */
    void (*bad)(GByteArray *b); /* then this, then EOF */
    const char *error;          /* a substring of the load's error */
} StreamCase;

/* Loads header + script + bad + EOF; it must fail with c->error. */
static void run_stream_case(const StreamCase *c)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) b = g_byte_array_new();

    mock_reset();
    unregister_savevm_all();
    if (c->sections) {
        register_sections();
    }
    put_header(b);
    put_script(b, c->script);
    if (c->bad) {
        c->bad(b);
    }
    put_u8(b, 0x00);
    if (load_bytes(b->data, b->len, &err)) {
        fail_msg("%s: loaded, expected \"%s\"", c->name, c->error);
    }
    if (!err || !strstr(err->message, c->error)) {
        fail_msg("%s: error \"%s\", expected \"%s\"", c->name,
                 err ? err->message : "(none)", c->error);
    }
}

static const StreamCase order_cases[] = {
    {"DISCARD before ADVISE", false, "orp discard", NULL,
     "CMD_POSTCOPY_RAM_DISCARD in wrong postcopy state (none)"},
    {"LISTEN before ADVISE", false, "orp listen", NULL,
     "CMD_POSTCOPY_LISTEN in wrong postcopy state (none)"},
    {"LISTEN before ADVISE, packaged", false, "orp { listen run }", NULL,
     "CMD_POSTCOPY_LISTEN in wrong postcopy state (none)"},
    {"RUN before ADVISE", false, "orp run", NULL,
     "CMD_POSTCOPY_RUN in wrong postcopy state (none)"},
    {"ADVISE twice", false, "orp advise advise", NULL,
     "CMD_POSTCOPY_ADVISE in wrong postcopy state (advise)"},
    {"ADVISE after DISCARD", false, "orp advise discard advise", NULL,
     "CMD_POSTCOPY_ADVISE in wrong postcopy state (discard)"},
    {"ADVISE after LISTEN", false, "orp advise { listen advise run }", NULL,
     "CMD_POSTCOPY_ADVISE in wrong postcopy state (listen)"},
    {"RUN before LISTEN", false, "orp advise run", NULL,
     "CMD_POSTCOPY_RUN in wrong postcopy state (advise)"},
    {"RUN before LISTEN, packaged", false, "orp advise discard { run }", NULL,
     "CMD_POSTCOPY_RUN in wrong postcopy state (discard)"},
    {"DISCARD after LISTEN", false, "orp advise { listen discard run }", NULL,
     "CMD_POSTCOPY_RAM_DISCARD in wrong postcopy state (listen)"},
    {"LISTEN twice", false, "orp advise { listen listen run }", NULL,
     "CMD_POSTCOPY_LISTEN in wrong postcopy state (listen)"},
    /* read by the listen thread, after the package */
    {"RUN twice", false, "orp advise { listen run } run", NULL,
     "CMD_POSTCOPY_RUN in wrong postcopy state (running)"},
    {"LISTEN without OPEN_RETURN_PATH", false, "advise listen", NULL,
     "CMD_POSTCOPY_LISTEN without a return path"},
    {"LISTEN without OPEN_RETURN_PATH, packaged", false,
     "advise { listen run }", NULL,
     "CMD_POSTCOPY_LISTEN without a return path"},
    {"PING without return path", false, "ping", NULL,
     "CMD_PING (0x1) received with no return path"},
    {"PING without return path, after ADVISE", false, "advise ping", NULL,
     "CMD_PING (0x1) received with no return path"},
    /* QEMU only reports this and goes on; godwit refuses the stream */
    {"OPEN_RETURN_PATH twice", false, "orp orp", NULL,
     "CMD_OPEN_RETURN_PATH called when RP already open"},
    {"OPEN_RETURN_PATH twice, after LISTEN", false,
     "orp advise { listen orp run }", NULL,
     "CMD_OPEN_RETURN_PATH called when RP already open"},
    {"OPEN_RETURN_PATH on the listen thread's stream", false,
     "orp advise { listen run } orp", NULL,
     "CMD_OPEN_RETURN_PATH called when RP already open"},
    {"RUN before a device section", true, "orp advise start { listen run } end",
     NULL, "CMD_POSTCOPY_RUN before section 'dev' instance 0"},
    {"a RAM section inside a package", true,
     "orp advise start { listen part dev run } end", NULL,
     "RAM section inside a package"},
    {"a package inside a package", false, "orp advise { listen { run } run }",
     NULL, "CMD_PACKAGED inside a package"},
};

static void test_load_order_errors(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(order_cases); i++) {
        run_stream_case(&order_cases[i]);
    }
}

static void bad_orp_len(GByteArray *b)
{
    put_cmd(b, 1, 4, (uint8_t[]){0, 0, 0, 0});
}

static void bad_ping_len0(GByteArray *b)
{
    put_cmd(b, 2, 0, NULL);
}

static void bad_ping_len8(GByteArray *b)
{
    put_cmd(b, 2, 8, (uint8_t[]){0, 0, 0, 1, 0, 0, 0, 2});
}

static void bad_listen_len(GByteArray *b)
{
    put_cmd(b, 4, 1, (uint8_t[]){0});
}

static void bad_run_len(GByteArray *b)
{
    put_cmd(b, 5, 4, (uint8_t[]){0, 0, 0, 0});
}

static void bad_packaged_len(GByteArray *b)
{
    put_cmd(b, 7, 8, (uint8_t[]){0, 0, 0, 0, 0, 0, 0, 5});
}

static void bad_advise_len0(GByteArray *b)
{
    put_cmd(b, 3, 0, NULL);
}

static void bad_advise_len8(GByteArray *b)
{
    put_cmd(b, 3, 8, (uint8_t[]){0, 0, 0, 0, 0, 0, 0x10, 0});
}

static void bad_advise_len24(GByteArray *b)
{
    uint8_t d[24] = {0};

    put_cmd(b, 3, sizeof(d), d);
}

/* A DISCARD body: version, counted name, terminator, `pairs` pairs. */
static void put_discard_raw(GByteArray *b, uint16_t len, uint8_t version,
                            uint8_t namelen, const char *name, uint8_t nul,
                            int pairs, size_t extra)
{
    put_u8(b, 0x08);
    put_be16(b, 6);
    put_be16(b, len);
    put_u8(b, version);
    put_u8(b, namelen);
    put_bytes(b, name, strlen(name));
    put_u8(b, nul);
    for (int i = 0; i < pairs; i++) {
        put_be64(b, 0x1000 * i);
        put_be64(b, 0x1000);
    }
    for (size_t i = 0; i < extra; i++) {
        put_u8(b, 0);
    }
}

static void bad_discard_version(GByteArray *b)
{
    put_discard_raw(b, 25, 1, 6, "pc.ram", 0, 1, 0);
}

static void bad_discard_nul(GByteArray *b)
{
    put_discard_raw(b, 25, 0, 6, "pc.ram", 7, 1, 0);
}

static void bad_discard_len33(GByteArray *b)
{
    put_discard_raw(b, 33, 0, 6, "pc.ram", 0, 1, 8); /* 1.5 pairs */
}

static void bad_discard_len42(GByteArray *b)
{
    put_discard_raw(b, 42, 0, 6, "pc.ram", 0, 2, 1); /* one byte too many */
}

static void bad_discard_short(GByteArray *b)
{
    put_discard_raw(b, 19, 0, 0, "", 0, 1, 0); /* < 1 + 1 + 1 + 1 + 16 */
}

static void bad_discard_name_past_len(GByteArray *b)
{
    /* the name claims 20 bytes, more than the command holds */
    put_discard_raw(b, 20, 0, 20, "abcdefghijklmnopqrst", 0, 1, 0);
}

static void bad_packaged_too_big(GByteArray *b)
{
    put_cmd(b, 7, 4, (uint8_t[]){0x01, 0x00, 0x00, 0x01});
}

static void bad_packaged_short(GByteArray *b)
{
    put_cmd(b, 7, 4, (uint8_t[]){0, 0, 0, 100});
    put_cmd(b, 4, 0, NULL);
    put_cmd(b, 5, 0, NULL); /* 10 of 100 bytes, then EOF */
}

static void bad_cmd_0(GByteArray *b)
{
    put_cmd(b, 0, 0, NULL);
}

static void bad_cmd_colo(GByteArray *b)
{
    put_cmd(b, 8, 0, NULL);
}

static void bad_cmd_switchover(GByteArray *b)
{
    put_cmd(b, 11, 0, NULL);
}

static void bad_cmd_ffff(GByteArray *b)
{
    put_cmd(b, 0xffff, 0, NULL);
}

static void bad_section_type(GByteArray *b)
{
    put_u8(b, 0x09);
}

static const StreamCase malformed_cases[] = {
    {"OPEN_RETURN_PATH of 4 bytes", false, "", bad_orp_len,
     "command 1 received with bad length - expecting 0, received 4"},
    {"PING of 0 bytes", false, "orp", bad_ping_len0,
     "command 2 received with bad length - expecting 4, received 0"},
    {"PING of 8 bytes", false, "orp", bad_ping_len8,
     "command 2 received with bad length - expecting 4, received 8"},
    {"LISTEN of 1 byte", false, "orp advise", bad_listen_len,
     "command 4 received with bad length - expecting 0, received 1"},
    {"RUN of 4 bytes", false, "orp advise", bad_run_len,
     "command 5 received with bad length - expecting 0, received 4"},
    {"PACKAGED of 8 bytes", false, "orp advise", bad_packaged_len,
     "command 7 received with bad length - expecting 4, received 8"},
    {"ADVISE of 0 bytes", false, "orp", bad_advise_len0,
     "CMD_POSTCOPY_ADVISE invalid length (0)"},
    {"ADVISE of 8 bytes", false, "orp", bad_advise_len8,
     "CMD_POSTCOPY_ADVISE invalid length (8)"},
    {"ADVISE of 24 bytes", false, "orp", bad_advise_len24,
     "CMD_POSTCOPY_ADVISE invalid length (24)"},
    {"DISCARD version 1", false, "orp advise", bad_discard_version,
     "CMD_POSTCOPY_RAM_DISCARD invalid version (1)"},
    {"DISCARD without the nul", false, "orp advise", bad_discard_nul,
     "CMD_POSTCOPY_RAM_DISCARD missing nil (7)"},
    {"DISCARD of 1.5 pairs", false, "orp advise", bad_discard_len33,
     "CMD_POSTCOPY_RAM_DISCARD invalid length (33)"},
    {"DISCARD a byte too long", false, "orp advise", bad_discard_len42,
     "CMD_POSTCOPY_RAM_DISCARD invalid length (42)"},
    {"DISCARD too short for a pair", false, "orp advise", bad_discard_short,
     "CMD_POSTCOPY_RAM_DISCARD invalid length (19)"},
    {"DISCARD whose name runs past it", false, "orp advise",
     bad_discard_name_past_len, "CMD_POSTCOPY_RAM_DISCARD invalid length (20)"},
    {"PACKAGED over MIG_PACKAGED_MAX", false, "orp advise",
     bad_packaged_too_big, "Unreasonably large packaged state: 16777217"},
    {"PACKAGED cut short", false, "orp advise", bad_packaged_short,
     "reading a package of 100 bytes: unexpected end of migration stream"},
    {"a package without RUN", false, "orp advise { listen }", NULL,
     "the package ended without CMD_POSTCOPY_RUN"},
    {"an empty package", false, "orp advise { }", NULL,
     "the package ended without CMD_POSTCOPY_RUN"},
    {"EOF inside a package", false, "orp advise { listen eof run }", NULL,
     "EOF inside a package"},
    {"EOF inside a package, before LISTEN", false, "orp advise { eof }", NULL,
     "EOF inside a package"},
    {"command 0", false, "", bad_cmd_0,
     "migration command 0 is not supported by godwit (len 0)"},
    {"ENABLE_COLO", false, "orp", bad_cmd_colo,
     "migration command 8 is not supported by godwit"},
    {"SWITCHOVER_START", false, "orp", bad_cmd_switchover,
     "migration command 11 is not supported by godwit"},
    {"command 0xffff", false, "orp", bad_cmd_ffff,
     "migration command 65535 is not supported by godwit"},
    {"unknown section type", false, "orp advise", bad_section_type,
     "Unknown savevm section type 9"},
};

static void test_load_malformed(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(malformed_cases); i++) {
        run_stream_case(&malformed_cases[i]);
    }
}

/* ---- cut streams, failing threads and hooks ----------------------------- */

/*
 * The good stream cut at every byte offset fails cleanly with "unexpected
 * end": never a crash, a hang or a success. Cut after the package, the
 * listen thread is the one that finds the end, and frees the waiters.
 */
static void test_load_truncated(void **state)
{
    size_t pkg_end;
    g_autoptr(GByteArray) b = good_stream(&pkg_end);

    register_sections();
    for (size_t k = 0; k < b->len; k++) {
        g_autoptr(GError) err = NULL;
        g_autofree char *log = NULL;
        mock_reset();
        if (load_bytes(b->data, k, &err)) {
            fail_msg("a stream cut at %zu of %u bytes loaded", k, b->len);
        }
        if (!err || !strstr(err->message, "unexpected end of migration "
                                          "stream")) {
            fail_msg("cut at %zu: error \"%s\"", k,
                     err ? err->message : "(none)");
        }
        log = mock_log(false);
        if (k < pkg_end) {
            assert_null(strstr(log, "run"));
            assert_int_equal(mock_aborts(), 0);
        } else {
            assert_non_null(strstr(log, "; run"));
            assert_int_equal(mock_aborts(), 1);
        }
        assert_int_equal(mock_cleanups(), 1);
    }
}

/*
 * The package cut at every byte offset (its length says so; the main
 * stream after it is whole): fails, whether the listen thread was started
 * or not.
 */
static void test_load_truncated_package(void **state)
{
    g_autoptr(GByteArray) pkg = g_byte_array_new();

    register_sections();
    put_script(pkg, "listen dev run");
    for (size_t k = 0; k < pkg->len; k++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(GByteArray) b = g_byte_array_new();
        g_autoptr(GByteArray) cut = g_byte_array_new();
        mock_reset();
        put_bytes(cut, pkg->data, k);
        put_header(b);
        put_script(b, "orp advise start");
        put_packaged(b, cut);
        put_script(b, "part end eof");
        if (load_bytes(b->data, b->len, &err)) {
            fail_msg("a package cut at %zu of %u bytes loaded", k, pkg->len);
        }
        if (!err || (!strstr(err->message, "unexpected end of migration "
                                           "stream") &&
                     !strstr(err->message, "the package ended without "
                                           "CMD_POSTCOPY_RUN"))) {
            fail_msg("package cut at %zu: error \"%s\"", k,
                     err ? err->message : "(none)");
        }
    }
}

/* The listen thread's failure fails the load and frees the waiters. */
static void test_load_listen_thread_fails(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) b = g_byte_array_new();

    register_sections();
    put_header(b);
    put_script(b, "orp advise start { listen dev run } part");
    put_u8(b, 0x55);
    assert_false(load_bytes(b->data, b->len, &err));
    assert_err(err, "Unknown savevm section type 85");
    assert_log(false, "open_return_path; advise 0x1000 0x1000; "
                      "iter v1 0x1001; listen; dev v2 0xfeedc0de; run");
    assert_log(true, "iter v1 0x1002");
    assert_int_equal(mock_aborts(), 1);
}

/* A main stream whose END never came: the section is missing. */
static void test_load_listen_thread_missing_end(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) b = g_byte_array_new();

    register_sections();
    put_header(b);
    put_script(b, "orp advise start { listen dev run } part eof");
    assert_false(load_bytes(b->data, b->len, &err));
    assert_err(err, "section 'iter' instance 0 is missing from the migration "
                    "stream");
}

typedef struct FailCase {
    const char *fail; /* the hook or section that fails */
    int skip;         /* after this many calls that succeeded */
    const char *error;
    const char *log;        /* the incoming thread's log */
    const char *listen_log; /* the listen thread's */
    int aborts;             /* -1: either, as the threads race */
} FailCase;

static const FailCase fail_cases[] = {
    {"open_return_path", 0, "mock open_return_path refused", "open_return_path",
     "", 0},
    {"ping", 0, "mock ping refused", "open_return_path; ping 0x1", "", 0},
    {"advise", 0, "mock advise refused",
     "open_return_path; ping 0x1; advise 0x1000 0x1000", "", 0},
    {"iter", 0,
     "error while loading state for instance 0x0 of device 'iter': mock "
     "iter refused",
     "open_return_path; ping 0x1; advise 0x1000 0x1000; iter v1 0x1001", "", 0},
    {"discard", 1, "mock discard refused",
     "open_return_path; ping 0x1; advise 0x1000 0x1000; iter v1 0x1001; "
     "discard pc.ram 0x0 0x1000; discard pc.ram 0x10000 0x1000",
     "", 0},
    {"listen", 0, "mock listen refused",
     "open_return_path; ping 0x1; advise 0x1000 0x1000; iter v1 0x1001; "
     "discard pc.ram 0x0 0x1000; discard pc.ram 0x10000 0x1000; "
     "discard pc.ram 0x7ffff000 0x1000; listen",
     "", 0},
    /* the listen thread runs meanwhile: its log is not checked */
    {"dev", 0,
     "error while loading state for instance 0x0 of device 'dev': mock dev "
     "refused",
     "open_return_path; ping 0x1; advise 0x1000 0x1000; iter v1 0x1001; "
     "discard pc.ram 0x0 0x1000; discard pc.ram 0x10000 0x1000; "
     "discard pc.ram 0x7ffff000 0x1000; listen; dev v2 0xfeedc0de",
     NULL, -1},
    {"run", 0, "mock run refused", good_log, NULL, -1},
    /* the listen thread's PART */
    {"iter", 1,
     "error while loading state section id 1(iter): mock iter refused",
     good_log, "iter v1 0x1002", 1},
};

/* A hook or section that fails: the load fails with its error, at once. */
static void test_load_callback_fails(void **state)
{
    size_t pkg_end;
    g_autoptr(GByteArray) b = good_stream(&pkg_end);

    register_sections();
    for (size_t i = 0; i < G_N_ELEMENTS(fail_cases); i++) {
        const FailCase *c = &fail_cases[i];
        g_autoptr(GError) err = NULL;
        mock_reset();
        mock_fail_at(c->fail, c->skip);
        assert_false(load_bytes(b->data, b->len, &err));
        assert_err(err, c->error);
        assert_log(false, c->log);
        if (c->listen_log) {
            assert_log(true, c->listen_log);
        }
        if (c->aborts >= 0) {
            assert_int_equal(mock_aborts(), c->aborts);
        }
        assert_int_equal(mock_cleanups(), 1);
    }
}

/* The hooks of the commands below, but for the one each case clears. */
typedef enum MockHook {
    HOOK_NONE,
    HOOK_ORP,
    HOOK_PING,
    HOOK_ADVISE,
    HOOK_DISCARD,
    HOOK_LISTEN,
    HOOK_RUN,
} MockHook;

typedef struct HookCase {
    MockHook clear;
    const char *script; /* after the header, then EOF */
    const char *command;
    const char *log; /* the incoming thread's log */
} HookCase;

static const HookCase null_hook_cases[] = {
    {HOOK_ORP, "orp", "OPEN_RETURN_PATH", ""},
    {HOOK_PING, "orp ping", "PING", "open_return_path"},
    {HOOK_ADVISE, "orp advise", "POSTCOPY_ADVISE", "open_return_path"},
    {HOOK_DISCARD, "orp advise discard", "POSTCOPY_RAM_DISCARD",
     "open_return_path; advise 0x1000 0x1000"},
    {HOOK_LISTEN, "orp advise { listen run }", "POSTCOPY_LISTEN",
     "open_return_path; advise 0x1000 0x1000"},
    {HOOK_RUN, "orp advise { listen run }", "POSTCOPY_RUN",
     "open_return_path; advise 0x1000 0x1000; listen"},
    /* mock_ops has no hooks for these two */
    {HOOK_NONE, "orp resume", "POSTCOPY_RESUME", "open_return_path"},
    {HOOK_NONE, "orp recv_bitmap", "RECV_BITMAP", "open_return_path"},
};

static LoadvmCommandOps ops_without(MockHook clear)
{
    LoadvmCommandOps o = mock_ops;

    switch (clear) {
    case HOOK_NONE:
        break;
    case HOOK_ORP:
        o.open_return_path = NULL;
        break;
    case HOOK_PING:
        o.ping = NULL;
        break;
    case HOOK_ADVISE:
        o.postcopy_advise = NULL;
        break;
    case HOOK_DISCARD:
        o.postcopy_discard = NULL;
        break;
    case HOOK_LISTEN:
        o.postcopy_listen = NULL;
        break;
    case HOOK_RUN:
        o.postcopy_run = NULL;
        break;
    }
    return o;
}

/* Loads header + `script` + EOF: it must fail, naming `command`. */
static void assert_refused(const char *script, const char *command)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_autofree char *exp =
        g_strdup_printf("migration command %s is not accepted here", command);

    put_header(b);
    put_script(b, script);
    put_u8(b, 0x00);
    if (load_bytes(b->data, b->len, &err)) {
        fail_msg("\"%s\" loaded, expected \"%s\"", script, exp);
    }
    assert_err(err, exp);
}

/* "NULL hooks refuse their command" (savevm.h): never a call through NULL. */
static void test_load_null_hooks(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(null_hook_cases); i++) {
        const HookCase *c = &null_hook_cases[i];
        LoadvmCommandOps ops = ops_without(c->clear);
        mock_reset();
        qemu_loadvm_set_command_ops(&ops);
        assert_refused(c->script, c->command);
        assert_log(false, c->log);
    }
    qemu_loadvm_set_command_ops(&mock_ops);
}

/*
 * Without command hooks (qemu_loadvm_set_command_ops never called, as in
 * a plain precopy load) every post-copy command is refused by name.
 */
static void test_load_without_command_ops(void **state)
{
    qemu_loadvm_set_command_ops(NULL);
    assert_refused("orp", "OPEN_RETURN_PATH");
    assert_refused("ping", "PING");
    assert_refused("advise", "POSTCOPY_ADVISE");
    assert_refused("listen", "POSTCOPY_LISTEN");
    assert_refused("run", "POSTCOPY_RUN");
    assert_log(false, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define PT(t) cmocka_unit_test_setup_teardown(t, parser_setup, parser_teardown)
        PT(test_load_order_errors),
        PT(test_load_malformed),
        PT(test_load_truncated),
        PT(test_load_truncated_package),
        PT(test_load_listen_thread_fails),
        PT(test_load_listen_thread_missing_end),
        PT(test_load_callback_fails),
        PT(test_load_null_hooks),
        PT(test_load_without_command_ops),
#undef PT
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
