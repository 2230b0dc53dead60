/*
 * Unit tests of the post-copy commands (migration/savevm.c,
 * migration/savevm-cmd.c), the stream that goes right.
 *
 * Source side: every QEMU_VM_COMMAND record the source writes, compared
 * byte for byte with QEMU's layout written out by hand.
 *
 * Destination side: qemu_loadvm_state() fed the good post-copy sequence
 * (whose package starts the listen thread that reads the rest of the main
 * stream), with and without sections, the largest package, and the round
 * trip of what the source's writers produce. The mistakes the parser must
 * refuse are in test-postcopy-parser-errors.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "migration/channel.h"
#include "postcopy-stream-helpers.h"

/* ---- the source's commands, byte for byte -------------------------------- */

static void w_header(QEMUFile *f)
{
    qemu_savevm_state_header(f);
}

static void w_orp(QEMUFile *f)
{
    qemu_savevm_send_open_return_path(f);
}

static void w_ping(QEMUFile *f)
{
    qemu_savevm_send_ping(f, 0x12345678);
}

static void w_ping_packaged(QEMUFile *f)
{
    qemu_savevm_send_ping(f, QEMU_VM_PING_PACKAGED_LOADED);
}

static void w_advise(QEMUFile *f)
{
    qemu_savevm_send_postcopy_advise(f);
}

static void w_listen(QEMUFile *f)
{
    qemu_savevm_send_postcopy_listen(f);
}

static void w_run(QEMUFile *f)
{
    qemu_savevm_send_postcopy_run(f);
}

static void w_discard1(QEMUFile *f)
{
    uint64_t s = 0x0000123456789000ull, l = 0x3000;

    qemu_savevm_send_postcopy_ram_discard(f, "pc.ram", 1, &s, &l);
}

static void w_discard12(QEMUFile *f)
{
    qemu_savevm_send_postcopy_ram_discard(f, "pc.ram", MIG_DISCARD_MAX_PAIRS,
                                          disc_start, disc_len);
}

static const uint8_t pkg_body[] = {
    0x08, 0x00, 0x04, 0x00, 0x00, /* LISTEN */
    0x08, 0x00, 0x05, 0x00, 0x00, /* RUN */
};

static void w_packaged(QEMUFile *f)
{
    qemu_savevm_send_packaged(f, pkg_body, sizeof(pkg_body));
}

static void w_packaged_empty(QEMUFile *f)
{
    qemu_savevm_send_packaged(f, NULL, 0);
}

static const uint8_t exp_header[] = {
    'Q',  'E',  'V',  'M',  0x00, 0x00, 0x00, 0x03, /* magic, version 3 */
    0x07, 0x00, 0x00, 0x00, 0x09,                   /* configuration, len */
    'g',  'o',  'd',  'w',  'i',  't',  '-',  'p',  'c',
};
static const uint8_t exp_orp[] = {0x08, 0x00, 0x01, 0x00, 0x00};
static const uint8_t exp_ping[] = {0x08, 0x00, 0x02, 0x00, 0x04,
                                   0x12, 0x34, 0x56, 0x78};
static const uint8_t exp_ping_packaged[] = {0x08, 0x00, 0x02, 0x00, 0x04,
                                            0x00, 0x00, 0x00, 0x42};
static const uint8_t exp_advise[] = {
    0x08, 0x00, 0x03, 0x00, 0x10,                   /* cmd 3, len 16 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, /* page sizes: 4K */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, /* target page: 4K */
};
static const uint8_t exp_listen[] = {0x08, 0x00, 0x04, 0x00, 0x00};
static const uint8_t exp_run[] = {0x08, 0x00, 0x05, 0x00, 0x00};
static const uint8_t exp_discard1[] = {
    0x08, 0x00, 0x06, 0x00, 0x19,                   /* cmd 6, len 25 */
    0x00,                                           /* version 0 */
    0x06, 'p',  'c',  '.',  'r',  'a',  'm',        /* counted name */
    0x00,                                           /* nul */
    0x00, 0x00, 0x12, 0x34, 0x56, 0x78, 0x90, 0x00, /* start */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x00, /* length */
};
static const uint8_t exp_packaged[] = {
    0x08, 0x00, 0x07, 0x00, 0x04, /* cmd 7, len 4 */
    0x00, 0x00, 0x00, 0x0a,       /* be32 10 */
    0x08, 0x00, 0x04, 0x00, 0x00, /* the raw bytes */
    0x08, 0x00, 0x05, 0x00, 0x00,
};
static const uint8_t exp_packaged_empty[] = {0x08, 0x00, 0x07, 0x00, 0x04,
                                             0x00, 0x00, 0x00, 0x00};

static const struct {
    const char *name;
    void (*write)(QEMUFile *f);
    const uint8_t *exp;
    size_t len;
} layouts[] = {
#define LAYOUT(n, w, e)                                                        \
    {                                                                          \
        n, w, e, sizeof(e)                                                     \
    }
    LAYOUT("header", w_header, exp_header),
    LAYOUT("OPEN_RETURN_PATH", w_orp, exp_orp),
    LAYOUT("PING", w_ping, exp_ping),
    LAYOUT("PING packaged-loaded", w_ping_packaged, exp_ping_packaged),
    LAYOUT("POSTCOPY_ADVISE", w_advise, exp_advise),
    LAYOUT("POSTCOPY_LISTEN", w_listen, exp_listen),
    LAYOUT("POSTCOPY_RUN", w_run, exp_run),
    LAYOUT("POSTCOPY_RAM_DISCARD, 1 pair", w_discard1, exp_discard1),
    LAYOUT("PACKAGED", w_packaged, exp_packaged),
    LAYOUT("PACKAGED, empty", w_packaged_empty, exp_packaged_empty),
#undef LAYOUT
};

static void test_command_layout(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(layouts); i++) {
        g_autoptr(GByteArray) got = capture(layouts[i].write);
        assert_bytes(got, layouts[i].exp, layouts[i].len, layouts[i].name);
    }
}

/* 12 pairs: len 3 + 6 + 12 * 16 = 201, each pair be64 start, be64 length. */
static void test_command_layout_discard12(void **state)
{
    g_autoptr(GByteArray) got = capture(w_discard12);
    g_autoptr(GByteArray) exp = g_byte_array_new();
    static const uint8_t head[] = {0x08, 0x00, 0x06, 0x00, 0xc9, 0x00, 0x06,
                                   'p',  'c',  '.',  'r',  'a',  'm',  0x00};

    put_bytes(exp, head, sizeof(head));
    for (int i = 0; i < MIG_DISCARD_MAX_PAIRS; i++) {
        put_be64(exp, disc_start[i]);
        put_be64(exp, disc_len[i]);
    }
    assert_int_equal(exp->len, 5 + 201);
    assert_bytes(got, exp->data, exp->len, "POSTCOPY_RAM_DISCARD, 12 pairs");
    /* the builder the parser tests use writes the same bytes */
    g_byte_array_set_size(exp, 0);
    put_discard(exp, "pc.ram", MIG_DISCARD_MAX_PAIRS, disc_start, disc_len);
    assert_bytes(got, exp->data, exp->len, "put_discard");
}

/* ---- the destination loads the good sequences ---------------------------- */

static void test_load_good_sequence(void **state)
{
    g_autoptr(GError) err = NULL;
    size_t pkg_end;
    g_autoptr(GByteArray) b = good_stream(&pkg_end);

    register_sections();
    if (!load_bytes(b->data, b->len, &err)) {
        fail_msg("load failed: %s", err ? err->message : "(no error)");
    }
    assert_log(false, good_log);
    /* the main stream after the package: read by the listen thread */
    assert_log(true, "iter v1 0x1002; iter v1 0x1003");
    assert_int_equal(mock_aborts(), 0);
    assert_int_equal(mock_cleanups(), 1);
}

/* Without sections: the bare command sequence of the brief. */
static void test_load_good_sequence_no_sections(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_autoptr(GByteArray) pkg = g_byte_array_new();

    put_header(b);
    put_cmd(b, 1, 0, NULL);
    put_cmd(b, 2, 4, (uint8_t[]){0, 0, 0, 1});
    put_advise(b);
    put_discard(b, "pc.ram", 1, disc_start, disc_len);
    put_discard(b, "pc.ram", 1, disc_start + 1, disc_len + 1);
    put_cmd(pkg, 4, 0, NULL);
    put_cmd(pkg, 2, 4, (uint8_t[]){0, 0, 0, 0x42});
    put_cmd(pkg, 5, 0, NULL);
    put_packaged(b, pkg);
    put_u8(b, 0x00);
    if (!load_bytes(b->data, b->len, &err)) {
        fail_msg("load failed: %s", err ? err->message : "(no error)");
    }
    assert_log(false, "open_return_path; ping 0x1; advise 0x1000 0x1000; "
                      "discard pc.ram 0x0 0x1000; "
                      "discard pc.ram 0x2000 0x3000; listen; ping 0x42; run");
    assert_log(true, "");
    assert_int_equal(mock_aborts(), 0);
}

/* What the source's own writers produce, in migration.c's order. */
static void w_source(QEMUFile *f)
{
    g_autoptr(GByteArray) pkg = NULL;
    GError *err = NULL;
    MigChannel *mem;
    QEMUFile *pf;
    ssize_t n;

    qemu_savevm_state_header(f);
    qemu_savevm_send_open_return_path(f);
    qemu_savevm_send_ping(f, 1);
    qemu_savevm_send_postcopy_advise(f);
    assert_true(qemu_savevm_state_setup(f, &err));
    assert_int_equal(qemu_savevm_state_iterate(f), 1);
    qemu_savevm_send_postcopy_ram_discard(f, "pc.ram", MIG_DISCARD_MAX_PAIRS,
                                          disc_start, disc_len);
    qemu_savevm_send_postcopy_ram_discard(f, "pc.ram", 1, disc_start + 3,
                                          disc_len + 3);
    qemu_savevm_send_ping(f, 2);
    /* the package: LISTEN, the devices' FULL sections, RUN */
    mem = mig_channel_new_memory(NULL);
    assert_non_null(mem);
    pf = qemu_file_new_output(mem);
    qemu_savevm_send_postcopy_listen(pf);
    assert_true(qemu_savevm_state_complete_devices(pf, &err));
    qemu_savevm_send_postcopy_run(pf);
    qemu_fflush(pf);
    pkg = g_byte_array_new();
    g_byte_array_set_size(pkg, 4096);
    n = pread(mig_channel_fd(mem), pkg->data, pkg->len, 0);
    assert_true(n > 0 && n < 4096);
    g_byte_array_set_size(pkg, n);
    assert_true(qemu_fclose(pf, NULL));
    qemu_savevm_send_packaged(f, pkg->data, pkg->len);
    assert_true(qemu_savevm_state_complete_postcopy(f, &err));
}

static void test_load_source_round_trip(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) b = NULL;
    g_autoptr(GString) exp =
        g_string_new("open_return_path; ping 0x1; advise 0x1000 0x1000; "
                     "iter v1 0x1001; iter v1 0x1002");

    register_sections();
    b = capture(w_source);
    for (int i = 0; i < MIG_DISCARD_MAX_PAIRS; i++) {
        g_string_append_printf(exp, "; discard pc.ram 0x%" PRIx64 " 0x%" PRIx64,
                               disc_start[i], disc_len[i]);
    }
    g_string_append(exp, "; discard pc.ram 0x7ffff000 0x1000; ping 0x2; "
                         "listen; dev v2 0xfeedc0de; run");
    if (!load_bytes(b->data, b->len, &err)) {
        fail_msg("load failed: %s", err ? err->message : "(no error)");
    }
    assert_log(false, exp->str);
    assert_log(true, "iter v1 0x1003");
}

/* The largest package is accepted; what follows its RUN is not read. */
static void test_load_packaged_max(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_autoptr(GByteArray) pkg = g_byte_array_new();

    put_header(b);
    put_script(b, "orp advise");
    put_script(pkg, "listen run");
    g_byte_array_set_size(pkg, MIG_PACKAGED_MAX);
    memset(pkg->data + 10, 0xff, pkg->len - 10);
    put_packaged(b, pkg);
    put_u8(b, 0x00);
    if (!load_bytes(b->data, b->len, &err)) {
        fail_msg("load failed: %s", err ? err->message : "(no error)");
    }
    assert_log(false, "open_return_path; advise 0x1000 0x1000; listen; run");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_layout),
        cmocka_unit_test(test_command_layout_discard12),
#define PT(t) cmocka_unit_test_setup_teardown(t, parser_setup, parser_teardown)
        PT(test_load_good_sequence),
        PT(test_load_good_sequence_no_sections),
        PT(test_load_source_round_trip),
        PT(test_load_packaged_max),
#undef PT
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
