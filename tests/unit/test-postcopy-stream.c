/*
 * Unit tests for the post-copy stream layer.
 *
 * Source side (migration/savevm.c): every QEMU_VM_COMMAND record the source
 * writes, compared byte for byte with QEMU's layout written out by hand.
 *
 * Destination side: qemu_loadvm_state() fed crafted streams from a memory
 * channel, with mock LoadvmCommandOps that log their calls: the good
 * post-copy sequence (whose package starts the listen thread that reads the
 * rest of the main stream), every ordering error, malformed commands, a
 * stream cut at every byte offset, callbacks that fail; and the round trip
 * of what the source writers produce.
 *
 * Return path (migration/return-path.c) over a socketpair: the raw bytes of
 * each message, the reader thread's callbacks, two writer threads at once,
 * everything the reader refuses, a peer that goes away, stopping a blocked
 * reader, a page-request callback that fails. One case holds a writer
 * between the two critical sections of rp_send_req_pages: the test links
 * with -Wl,--wrap=g_mutex_lock and puts a gate there.
 *
 * Checks of known bugs in the code under test are compiled in only with
 * -DGODWIT_KNOWN_BUGS; each is marked BUG.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../migration/channel-internal.h"
#include "../../migration/return-path.h"
#include "../../migration/savevm.h"
#include "migration/channel.h"
#include "migration/qemu-file.h"

#define TIMEOUT_MS 5000 /* only ever reached when something is broken */

/* ---- helpers: bytes, streams, errors ------------------------------------- */

static void put_u8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

static void put_be16(GByteArray *b, uint16_t v)
{
    put_u8(b, v >> 8);
    put_u8(b, v);
}

static void put_be32(GByteArray *b, uint32_t v)
{
    put_be16(b, v >> 16);
    put_be16(b, v);
}

static void put_be64(GByteArray *b, uint64_t v)
{
    put_be32(b, v >> 32);
    put_be32(b, v);
}

static void put_bytes(GByteArray *b, const void *p, size_t n)
{
    g_byte_array_append(b, p, n);
}

static void put_counted(GByteArray *b, const char *s)
{
    put_u8(b, strlen(s));
    put_bytes(b, s, strlen(s));
}

/* QEMU: u8 QEMU_VM_COMMAND, be16 cmd, be16 len, data[len]. */
static void put_cmd(GByteArray *b, uint16_t cmd, uint16_t len, const void *data)
{
    put_u8(b, 0x08);
    put_be16(b, cmd);
    put_be16(b, len);
    put_bytes(b, data, len);
}

/* Magic "QEVM", version 3, configuration: be32 length, machine type. */
static void put_header(GByteArray *b)
{
    put_bytes(b, "QEVM", 4);
    put_be32(b, 3);
    put_u8(b, 0x07);
    put_be32(b, 9);
    put_bytes(b, "godwit-pc", 9);
}

/* POSTCOPY_RAM_DISCARD: u8 0, counted name, u8 0, be64 start/length pairs */
static void put_discard(GByteArray *b, const char *block, int n,
                        const uint64_t *start, const uint64_t *length)
{
    g_autoptr(GByteArray) d = g_byte_array_new();

    put_u8(d, 0);
    put_counted(d, block);
    put_u8(d, 0);
    for (int i = 0; i < n; i++) {
        put_be64(d, start[i]);
        put_be64(d, length[i]);
    }
    put_cmd(b, 6, d->len, d->data);
}

/* PACKAGED: be32 length as the command's data, then the raw bytes. */
static void put_packaged(GByteArray *b, const GByteArray *pkg)
{
    put_cmd(
        b, 7, 4,
        (uint8_t[]){pkg->len >> 24, pkg->len >> 16, pkg->len >> 8, pkg->len});
    put_bytes(b, pkg->data, pkg->len);
}

static void put_advise(GByteArray *b)
{
    put_cmd(b, 3, 16,
            (uint8_t[]){0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x10, 0});
}

/* START/FULL: u8 type, be32 id, counted idstr, be32 instance, be32 version */
static void put_section(GByteArray *b, uint8_t type, uint32_t id,
                        const char *idstr, uint32_t version, uint32_t body)
{
    put_u8(b, type);
    put_be32(b, id);
    if (type == 0x01 || type == 0x04) {
        put_counted(b, idstr);
        put_be32(b, 0);
        put_be32(b, version);
    }
    put_be32(b, body);
    put_u8(b, 0x7e);
    put_be32(b, id);
}

/* Fails with a hex dump around the first difference. */
static void assert_bytes(const GByteArray *got, const uint8_t *exp, size_t len,
                         const char *what)
{
    size_t i = 0;

    while (i < got->len && i < len && got->data[i] == exp[i]) {
        i++;
    }
    if (i == len && got->len == len) {
        return;
    }
    fail_msg("%s: %u bytes, expected %zu; first difference at %zu: got "
             "0x%02x, expected 0x%02x",
             what, got->len, len, i, i < got->len ? got->data[i] : 0,
             i < len ? exp[i] : 0);
}

static void assert_err(const GError *err, const char *substr)
{
    if (!err) {
        fail_msg("no error, expected \"%s\"", substr);
    } else if (!strstr(err->message, substr)) {
        fail_msg("error \"%s\", expected \"%s\"", err->message, substr);
    }
}

/* Runs `write` on a QEMUFile over a memory channel: the bytes it flushed. */
static GByteArray *capture(void (*write)(QEMUFile *f))
{
    g_autoptr(GError) err = NULL;
    MigChannel *mem = mig_channel_new_memory(&err);
    GByteArray *out = g_byte_array_new();
    QEMUFile *f;
    uint8_t buf[4096];
    off_t off = 0;
    ssize_t n;

    assert_non_null(mem);
    f = qemu_file_new_output(mem);
    write(f);
    qemu_fflush(f);
    assert_true(qemu_file_check(f, &err));
    while ((n = pread(mig_channel_fd(mem), buf, sizeof(buf), off)) > 0) {
        put_bytes(out, buf, n);
        off += n;
    }
    assert_int_equal(n, 0);
    assert_true(qemu_fclose(f, NULL));
    return out;
}

/* An input QEMUFile reading `n` bytes from a memory channel. */
static QEMUFile *input_from(const uint8_t *p, size_t n)
{
    MigChannel *mem = mig_channel_new_memory(NULL);
    struct iovec iov = {(void *)p, n};

    assert_non_null(mem);
    if (n) {
        assert_int_equal(mig_channel_writev_all(mem, &iov, 1), 1);
    }
    assert_true(mig_channel_rewind(mem, NULL));
    return qemu_file_new_input(mem);
}

static bool load_bytes(const uint8_t *p, size_t n, GError **errp)
{
    QEMUFile *f = input_from(p, n);
    bool ok = qemu_loadvm_state(f, errp);

    qemu_fclose(f, NULL);
    return ok;
}

/* ---- 1. the source's commands, byte for byte ----------------------------- */

static const uint64_t disc_start[MIG_DISCARD_MAX_PAIRS] = {
    0x0,        0x2000,      0x10000,        0x7ffff000,
    0x12345000, 0xabcdef000, 0x100000000ull, 0x1fffff000ull,
    0x3000,     0x5000,      0x8000,         0xfffffffffffff000ull,
};
static const uint64_t disc_len[MIG_DISCARD_MAX_PAIRS] = {
    0x1000, 0x3000,    0x1000,     0x1000, 0x100000, 0x1000,
    0x2000, 0x1000000, 0x40000000, 0x1000, 0x1000,   0x1000,
};

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

/* ---- 2. the destination's parser: mock command hooks and sections -------- */

/* What the hooks and section loaders were asked, in order. */
typedef struct Mock {
    GMutex lock;
    pthread_t main_thread; /* entries from other threads are "[listen] " */
    GPtrArray *log;        /* protected by lock */
    int aborts;            /* protected by lock */
    int cleanups;          /* protected by lock */
    const char *fail;      /* the entry that fails ("listen", "dev"...) */
    int fail_skip;         /* ... after this many calls that succeed */
} Mock;

static Mock mock;

/* Logs "name args"; fails when `name` is the one told to fail. */
static bool mock_call(GError **errp, const char *name, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static bool mock_call(GError **errp, const char *name, const char *fmt, ...)
{
    g_autofree char *args = NULL;
    bool fail = false;
    va_list ap;

    va_start(ap, fmt);
    args = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_mutex_lock(&mock.lock);
    g_ptr_array_add(
        mock.log,
        g_strdup_printf(
            "%s%s%s",
            pthread_equal(pthread_self(), mock.main_thread) ? "" : "[listen] ",
            name, args));
    if (mock.fail && !strcmp(mock.fail, name) && mock.fail_skip-- == 0) {
        fail = true;
    }
    g_mutex_unlock(&mock.lock);
    if (fail) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "mock %s refused", name);
    }
    return !fail;
}

static bool mock_orp(GError **errp)
{
    return mock_call(errp, "open_return_path", "%s", "");
}

static bool mock_ping(uint32_t value, GError **errp)
{
    return mock_call(errp, "ping", " 0x%x", value);
}

static bool mock_advise(uint64_t summary, uint64_t page_size, GError **errp)
{
    return mock_call(errp, "advise", " 0x%" PRIx64 " 0x%" PRIx64, summary,
                     page_size);
}

static bool mock_discard(const char *block, uint64_t start, uint64_t length,
                         GError **errp)
{
    return mock_call(errp, "discard", " %s 0x%" PRIx64 " 0x%" PRIx64, block,
                     start, length);
}

static bool mock_listen(GError **errp)
{
    return mock_call(errp, "listen", "%s", "");
}

static bool mock_run(GError **errp)
{
    return mock_call(errp, "run", "%s", "");
}

static void mock_abort(void)
{
    g_mutex_lock(&mock.lock);
    mock.aborts++;
    g_mutex_unlock(&mock.lock);
}

static const LoadvmCommandOps mock_ops = {
    .open_return_path = mock_orp,
    .ping = mock_ping,
    .postcopy_advise = mock_advise,
    .postcopy_discard = mock_discard,
    .postcopy_listen = mock_listen,
    .postcopy_run = mock_run,
    .postcopy_abort = mock_abort,
};

/* The log's entries joined with "; ", those of one thread only. */
static char *mock_log(bool listen_thread)
{
    GString *s = g_string_new(NULL);

    g_mutex_lock(&mock.lock);
    for (guint i = 0; i < mock.log->len; i++) {
        const char *e = mock.log->pdata[i];
        if (g_str_has_prefix(e, "[listen] ") != listen_thread) {
            continue;
        }
        g_string_append_printf(s, "%s%s", s->len ? "; " : "",
                               listen_thread ? e + 9 : e);
    }
    g_mutex_unlock(&mock.lock);
    return g_string_free(s, false);
}

static void assert_log(bool listen_thread, const char *exp)
{
    g_autofree char *got = mock_log(listen_thread);

    if (strcmp(got, exp)) {
        fail_msg("%s log \"%s\", expected \"%s\"",
                 listen_thread ? "listen thread" : "incoming thread", got, exp);
    }
}

static int mock_aborts(void)
{
    int n;

    g_mutex_lock(&mock.lock);
    n = mock.aborts;
    g_mutex_unlock(&mock.lock);
    return n;
}

static void mock_reset(void)
{
    g_mutex_lock(&mock.lock);
    g_ptr_array_set_size(mock.log, 0);
    mock.aborts = mock.cleanups = 0;
    mock.fail = NULL;
    mock.fail_skip = 0;
    g_mutex_unlock(&mock.lock);
}

/* "dev", a plain section (version 2): one be32 in a FULL section. */
#define DEV_ID 0
#define DEV_BODY 0xfeedc0de
/* "iter", an iterable section (version 1): one be32 per START/PART/END. */
#define ITER_ID 1

static bool dev_save(QEMUFile *f, void *opaque, GError **errp)
{
    qemu_put_be32(f, DEV_BODY);
    return true;
}

static void dev_describe(JsonBuilder *b, void *opaque)
{
}

static bool section_load(QEMUFile *f, void *opaque, uint32_t version,
                         GError **errp)
{
    uint32_t v = qemu_get_be32(f);

    if (!qemu_file_check(f, errp)) {
        return false;
    }
    return mock_call(errp, opaque, " v%u 0x%x", version, v);
}

static void section_load_cleanup(void *opaque)
{
    g_mutex_lock(&mock.lock);
    mock.cleanups++;
    g_mutex_unlock(&mock.lock);
}

static uint32_t iter_sent;

static bool iter_setup(QEMUFile *f, void *opaque, GError **errp)
{
    qemu_put_be32(f, 0x1000 + ++iter_sent);
    return true;
}

static int iter_iterate(QEMUFile *f, void *opaque)
{
    qemu_put_be32(f, 0x1000 + ++iter_sent);
    return 1;
}

static bool iter_complete(QEMUFile *f, void *opaque, GError **errp)
{
    qemu_put_be32(f, 0x1000 + ++iter_sent);
    return true;
}

static uint64_t iter_pending(void *opaque)
{
    return 0;
}

static const SaveStateHandler dev_handler = {
    .idstr = "dev",
    .version_id = 2,
    .save_state = dev_save,
    .describe = dev_describe,
    .load_state = section_load,
    .load_cleanup = section_load_cleanup,
};

static const SaveStateHandler iter_handler = {
    .idstr = "iter",
    .version_id = 1,
    .save_setup = iter_setup,
    .save_iterate = iter_iterate,
    .save_complete = iter_complete,
    .save_pending = iter_pending,
    .load_state = section_load,
};

/* Registers "dev" then "iter": their section ids are DEV_ID and ITER_ID. */
static void register_sections(void)
{
    register_savevm(&dev_handler, 0, (void *)"dev");
    register_savevm(&iter_handler, 0, (void *)"iter");
}

static int parser_setup(void **state)
{
    g_mutex_init(&mock.lock);
    mock.log = g_ptr_array_new_with_free_func(g_free);
    mock.main_thread = pthread_self();
    mock_reset();
    iter_sent = 0;
    unregister_savevm_all();
    qemu_loadvm_set_command_ops(&mock_ops);
    return 0;
}

static int parser_teardown(void **state)
{
    unregister_savevm_all();
    qemu_loadvm_set_command_ops(NULL);
    g_ptr_array_unref(mock.log);
    mock.log = NULL;
    g_mutex_clear(&mock.lock);
    return 0;
}

/*
 * The good post-copy stream, as QEMU's source sends it: OPEN_RETURN_PATH,
 * PING 1, ADVISE, the RAM START, DISCARD x2, PACKAGED {LISTEN, dev FULL,
 * RUN}, then the RAM PART and END that the listen thread reads, EOF.
 * *pkg_end: the offset just past the package.
 */
static GByteArray *good_stream(size_t *pkg_end)
{
    GByteArray *b = g_byte_array_new();
    g_autoptr(GByteArray) pkg = g_byte_array_new();

    put_header(b);
    put_cmd(b, 1, 0, NULL);
    put_cmd(b, 2, 4, (uint8_t[]){0, 0, 0, 1});
    put_advise(b);
    put_section(b, 0x01, ITER_ID, "iter", 1, 0x1001);
    put_discard(b, "pc.ram", 1, disc_start, disc_len);
    put_discard(b, "pc.ram", 2, disc_start + 2, disc_len + 2);
    put_cmd(pkg, 4, 0, NULL);
    put_section(pkg, 0x04, DEV_ID, "dev", 2, DEV_BODY);
    put_cmd(pkg, 5, 0, NULL);
    put_packaged(b, pkg);
    *pkg_end = b->len;
    put_section(b, 0x02, ITER_ID, NULL, 0, 0x1002);
    put_section(b, 0x03, ITER_ID, NULL, 0, 0x1003);
    put_u8(b, 0x00);
    return b;
}

static const char good_log[] =
    "open_return_path; ping 0x1; advise 0x1000 0x1000; iter v1 0x1001; "
    "discard pc.ram 0x0 0x1000; discard pc.ram 0x10000 0x1000; "
    "discard pc.ram 0x7ffff000 0x1000; listen; dev v2 0xfeedc0de; run";

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
    assert_int_equal(mock.cleanups, 1);
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

/*
 * A tiny script for streams: orp ping advise discard listen run eof,
 * "dev" (FULL), "start"/"part"/"end" (the iterable's sections), "{" and
 * "}" around a package.
 */
static void put_script(GByteArray *out, const char *script)
{
    g_auto(GStrv) tok = g_strsplit(script, " ", -1);
    GByteArray *stack[4] = {out};
    int depth = 0;

    for (int i = 0; tok[i]; i++) {
        GByteArray *b = stack[depth];
        const char *t = tok[i];
        if (!*t) {
            continue;
        } else if (!strcmp(t, "orp")) {
            put_cmd(b, 1, 0, NULL);
        } else if (!strcmp(t, "ping")) {
            put_cmd(b, 2, 4, (uint8_t[]){0, 0, 0, 1});
        } else if (!strcmp(t, "advise")) {
            put_advise(b);
        } else if (!strcmp(t, "discard")) {
            put_discard(b, "pc.ram", 1, disc_start, disc_len);
        } else if (!strcmp(t, "listen")) {
            put_cmd(b, 4, 0, NULL);
        } else if (!strcmp(t, "run")) {
            put_cmd(b, 5, 0, NULL);
        } else if (!strcmp(t, "eof")) {
            put_u8(b, 0x00);
        } else if (!strcmp(t, "dev")) {
            put_section(b, 0x04, DEV_ID, "dev", 2, DEV_BODY);
        } else if (!strcmp(t, "start")) {
            put_section(b, 0x01, ITER_ID, "iter", 1, 0x1001);
        } else if (!strcmp(t, "part")) {
            put_section(b, 0x02, ITER_ID, NULL, 0, 0x1002);
        } else if (!strcmp(t, "end")) {
            put_section(b, 0x03, ITER_ID, NULL, 0, 0x1003);
        } else if (!strcmp(t, "{")) {
            assert_true(depth < 3);
            stack[++depth] = g_byte_array_new();
        } else if (!strcmp(t, "}")) {
            assert_true(depth > 0);
            put_packaged(stack[depth - 1], stack[depth]);
            g_byte_array_unref(stack[depth--]);
        } else {
            fail_msg("bad script token \"%s\"", t);
        }
    }
    assert_int_equal(depth, 0);
}

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
        assert_int_equal(mock.cleanups, 1);
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
        mock.fail = c->fail;
        mock.fail_skip = c->skip;
        assert_false(load_bytes(b->data, b->len, &err));
        assert_err(err, c->error);
        assert_log(false, c->log);
        if (c->listen_log) {
            assert_log(true, c->listen_log);
        }
        if (c->aborts >= 0) {
            assert_int_equal(mock_aborts(), c->aborts);
        }
        assert_int_equal(mock.cleanups, 1);
    }
}

/*
 * Without command hooks (qemu_loadvm_set_command_ops never called, as in
 * a plain precopy load) a post-copy command must fail with an error.
 */
static void test_load_without_command_ops(void **state)
{
    static const char *const scripts[] = {"orp", "advise"};

    qemu_loadvm_set_command_ops(NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(scripts); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(GByteArray) b = g_byte_array_new();
        put_header(b);
        put_script(b, scripts[i]);
        put_u8(b, 0x00);
        assert_false(load_bytes(b->data, b->len, &err));
#ifdef GODWIT_KNOWN_BUGS
        /*
         * BUG: savevm.c load_command (MIG_CMD_OPEN_RETURN_PATH) and
         * load_cmd_advise return false without setting *errp when no
         * command ops are set: the load fails with no error at all.
         */
        assert_non_null(err);
#endif
    }
    assert_log(false, "");
}

#ifdef GODWIT_KNOWN_BUGS
/* Loads `script` in a child whose hooks are `ops`: 0 if it failed cleanly. */
static int load_in_child(const LoadvmCommandOps *ops, const char *script)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    int status;
    pid_t pid;

    put_header(b);
    put_script(b, script);
    put_u8(b, 0x00);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        GError *err = NULL;
        signal(SIGSEGV, SIG_DFL); /* cmocka's handler would go on testing */
        qemu_loadvm_set_command_ops(ops);
        _exit(!load_bytes(b->data, b->len, &err) && err ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
#endif

/* "NULL hooks refuse their command" (savevm.h). */
static void test_load_null_hooks(void **state)
{
    static const LoadvmCommandOps orp_only = {.open_return_path = mock_orp};
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) b = g_byte_array_new();

    /* the hooks that are set work */
    qemu_loadvm_set_command_ops(&orp_only);
    put_header(b);
    put_script(b, "orp eof");
    assert_true(load_bytes(b->data, b->len, &err));
    assert_log(false, "open_return_path");
#ifdef GODWIT_KNOWN_BUGS
    /*
     * BUG: savevm.c calls command_ops->open_return_path, ->ping,
     * ->postcopy_advise, ->postcopy_discard, ->postcopy_listen and
     * ->postcopy_run without checking for NULL: a command whose hook is
     * NULL crashes the destination (SIGSEGV) instead of being refused.
     */
    assert_int_equal(load_in_child(&orp_only, "orp ping"), 0);
    assert_int_equal(load_in_child(&orp_only, "orp advise"), 0);
#endif
}

/* ---- 3. the return path over a socketpair -------------------------------- */

static const MigChannelOps pair_ops = {
    .scheme = "socketpair",
    .close = mig_channel_close_plain,
};

/* What the reader's callbacks were given. */
typedef struct RPLog {
    GMutex lock;
    GCond cond;
    GPtrArray *log;  /* protected by lock */
    int errors;      /* protected by lock */
    int fail_req_at; /* req_pages number that fails (1-based); 0: none */
    int reqs;        /* protected by lock */
} RPLog;

typedef struct RPFixture {
    MigChannel *dst; /* destination end: the writer's */
    MigChannel *src; /* source end: the reader's */
    RPWriter *w;
    RPReader *r;
    RPLog log;
} RPFixture;

static void rp_log_add(RPLog *l, char *entry)
{
    g_mutex_lock(&l->lock);
    g_ptr_array_add(l->log, entry);
    g_cond_broadcast(&l->cond);
    g_mutex_unlock(&l->lock);
}

static bool cb_req_pages(void *opaque, const char *block, uint64_t start,
                         uint32_t len, GError **errp)
{
    RPLog *l = opaque;
    int n;

    g_mutex_lock(&l->lock);
    n = ++l->reqs;
    g_mutex_unlock(&l->lock);
    rp_log_add(l,
               g_strdup_printf("req %s 0x%" PRIx64 " 0x%x", block, start, len));
    if (n == l->fail_req_at) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "mock req_pages refused");
        return false;
    }
    return true;
}

static void cb_pong(void *opaque, uint32_t value)
{
    rp_log_add(opaque, g_strdup_printf("pong 0x%x", value));
}

static void cb_shut(void *opaque, uint32_t value)
{
    rp_log_add(opaque, g_strdup_printf("shut 0x%x", value));
}

static void cb_error(void *opaque, const char *msg)
{
    RPLog *l = opaque;

    g_mutex_lock(&l->lock);
    l->errors++;
    g_mutex_unlock(&l->lock);
    rp_log_add(l, g_strdup_printf("error %s", msg));
}

static const RPReaderOps rp_ops = {
    .req_pages = cb_req_pages,
    .pong = cb_pong,
    .shut = cb_shut,
    .error = cb_error,
};

static int rp_setup(void **state)
{
    RPFixture *fx = g_new0(RPFixture, 1);
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fx->dst = mig_channel_new(&pair_ops, sv[0], NULL);
    fx->src = mig_channel_new(&pair_ops, sv[1], NULL);
    assert_non_null(fx->dst);
    assert_non_null(fx->src);
    g_mutex_init(&fx->log.lock);
    g_cond_init(&fx->log.cond);
    fx->log.log = g_ptr_array_new_with_free_func(g_free);
    *state = fx;
    return 0;
}

static int rp_teardown(void **state)
{
    RPFixture *fx = *state;

    rp_reader_stop(fx->r);
    rp_writer_close(fx->w);
    mig_channel_close(fx->dst, NULL);
    mig_channel_close(fx->src, NULL);
    g_ptr_array_unref(fx->log.log);
    g_mutex_clear(&fx->log.lock);
    g_cond_clear(&fx->log.cond);
    g_free(fx);
    return 0;
}

static void rp_start(RPFixture *fx, bool writer, bool reader)
{
    g_autoptr(GError) err = NULL;

    if (writer) {
        fx->w = rp_writer_open(fx->dst, &err);
        assert_non_null(fx->w);
    }
    if (reader) {
        fx->r = rp_reader_start(fx->src, &rp_ops, &fx->log, &err);
        assert_non_null(fx->r);
    }
}

/* The destination end goes away: the originals and the writer's copy. */
static void rp_close_dst(RPFixture *fx)
{
    rp_writer_close(fx->w);
    fx->w = NULL;
    mig_channel_close(fx->dst, NULL);
    fx->dst = NULL;
}

/* Waits for the reader thread to end by itself. */
static void rp_wait_end(RPFixture *fx)
{
    if (!rp_reader_wait(fx->r, TIMEOUT_MS)) {
        fail_msg("the return path reader did not end");
    }
}

static char *rp_log_str(RPLog *l)
{
    GString *s = g_string_new(NULL);

    g_mutex_lock(&l->lock);
    for (guint i = 0; i < l->log->len; i++) {
        g_string_append_printf(s, "%s%s", s->len ? "; " : "",
                               (char *)l->log->pdata[i]);
    }
    g_mutex_unlock(&l->lock);
    return g_string_free(s, false);
}

static void assert_rp_log(RPLog *l, const char *exp)
{
    g_autofree char *got = rp_log_str(l);

    if (strcmp(got, exp)) {
        fail_msg("return path log \"%s\", expected \"%s\"", got, exp);
    }
}

/* Raw bytes from the test straight into the destination end. */
static void rp_write_raw(RPFixture *fx, const void *p, size_t n)
{
    struct iovec iov = {(void *)p, n};

    assert_int_equal(mig_channel_writev_all(fx->dst, &iov, 1), 1);
}

static void test_rp_shut_pong(void **state)
{
    RPFixture *fx = *state;

    rp_start(fx, true, true);
    assert_true(rp_send_pong(fx->w, 0x12345678));
    assert_true(rp_send_pong(fx->w, 0));
    assert_true(rp_send_pong(fx->w, 0xffffffff));
    assert_true(rp_send_shut(fx->w, 0));
    rp_wait_end(fx);
    assert_rp_log(&fx->log,
                  "pong 0x12345678; pong 0x0; pong 0xffffffff; shut 0x0");
    /* the reader ended at SHUT: what follows is not read */
    assert_true(rp_send_pong(fx->w, 7));
    assert_null(rp_writer_error(fx->w));
}

static void test_rp_shut_failed(void **state)
{
    RPFixture *fx = *state;

    rp_start(fx, true, true);
    assert_true(rp_send_shut(fx->w, 1));
    rp_wait_end(fx);
    assert_rp_log(&fx->log, "shut 0x1");
}

/* The wire, read raw: QEMU's be16 type, be16 len, data. */
static void test_rp_layout_raw(void **state)
{
    RPFixture *fx = *state;
    static const uint8_t exp[] = {
        /* REQ_PAGES_ID, len 19: be64 start, be32 len, counted name */
        0x00, 0x03, 0x00, 0x13, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78, 0x90,
        0x00, 0x00, 0x20, 0x00, 0x06, 'p', 'c', '.', 'r', 'a', 'm',
        /* REQ_PAGES, len 12: the same block */
        0x00, 0x04, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x00,
        0x00, 0x00, 0x10, 0x00,
        /* REQ_PAGES_ID for another block, len 18 */
        0x00, 0x03, 0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x10, 0x00, 0x05, 'o', 't', 'h', 'e', 'r',
        /* back to the first: REQ_PAGES_ID again */
        0x00, 0x03, 0x00, 0x13, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x00,
        0xff, 0xff, 0xf0, 0x00, 0x06, 'p', 'c', '.', 'r', 'a', 'm',
        /* PONG, SHUT */
        0x00, 0x02, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef, /**/
        0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, /**/
    };
    g_autoptr(GByteArray) got = g_byte_array_new();
    struct iovec iov;
    uint8_t extra;

    rp_start(fx, true, false);
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x1234567890ull, 0x2000));
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x5000, 0x1000));
    assert_true(rp_send_req_pages(fx->w, "other", 0, 0x1000));
    assert_true(
        rp_send_req_pages(fx->w, "pc.ram", 0xfffffffffffff000ull, 0xfffff000));
    assert_true(rp_send_pong(fx->w, 0xdeadbeef));
    assert_true(rp_send_shut(fx->w, 0));
    rp_close_dst(fx);
    g_byte_array_set_size(got, sizeof(exp));
    iov = (struct iovec){got->data, got->len};
    assert_int_equal(mig_channel_readv_all(fx->src, &iov, 1), 1);
    assert_bytes(got, exp, sizeof(exp), "return path messages");
    /* nothing more: each message was flushed whole, then the end */
    iov = (struct iovec){&extra, 1};
    assert_int_equal(mig_channel_readv_all(fx->src, &iov, 1), 0);
}

/* The same messages through the reader thread. */
static void test_rp_req_pages(void **state)
{
    RPFixture *fx = *state;

    rp_start(fx, true, true);
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x1234567890ull, 0x2000));
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x5000, 0x1000));
    assert_true(rp_send_req_pages(fx->w, "other", 0, 0x1000));
    assert_true(rp_send_req_pages(fx->w, "other", 0x1000, 0x1000));
    assert_true(
        rp_send_req_pages(fx->w, "pc.ram", 0xfffffffffffff000ull, 0xfffff000));
    assert_true(rp_send_pong(fx->w, 2));
    assert_true(rp_send_shut(fx->w, 0));
    rp_wait_end(fx);
    assert_rp_log(&fx->log, "req pc.ram 0x1234567890 0x2000; "
                            "req pc.ram 0x5000 0x1000; "
                            "req other 0x0 0x1000; req other 0x1000 0x1000; "
                            "req pc.ram 0xfffffffffffff000 0xfffff000; "
                            "pong 0x2; shut 0x0");
}

#define REQS_PER_THREAD 500

typedef struct Requester {
    RPWriter *w;
    const char *block;
    uint64_t id;
    gboolean ok;
} Requester;

/* Page i of thread `id` at (id << 40) + i pages. */
static gpointer requester(gpointer opaque)
{
    Requester *q = opaque;

    q->ok = true;
    for (uint64_t i = 0; i < REQS_PER_THREAD; i++) {
        q->ok &= rp_send_req_pages(q->w, q->block, (q->id << 40) + (i << 12),
                                   0x1000);
    }
    return NULL;
}

/*
 * Two requesters at once, then SHUT: every request arrives once, whole,
 * in each thread's order and, with `check_blocks`, for the block that
 * thread asked about.
 */
static void rp_concurrent(RPFixture *fx, const char *block0, const char *block1,
                          bool check_blocks)
{
    Requester q[2] = {
        {fx->w, block0, 1, false},
        {fx->w, block1, 2, false},
    };
    GThread *t[2];
    uint64_t next[2] = {0, 0};
    guint n;

    for (int i = 0; i < 2; i++) {
        t[i] = g_thread_new("requester", requester, &q[i]);
    }
    for (int i = 0; i < 2; i++) {
        g_thread_join(t[i]);
        assert_true(q[i].ok);
    }
    assert_true(rp_send_shut(fx->w, 0));
    rp_wait_end(fx);
    g_mutex_lock(&fx->log.lock);
    n = fx->log.log->len;
    g_mutex_unlock(&fx->log.lock);
    assert_int_equal(fx->log.errors, 0);
    assert_int_equal(n, 1 + 2 * REQS_PER_THREAD + 1);
    for (guint i = 1; i + 1 < n; i++) {
        const char *e = fx->log.log->pdata[i];
        char block[256];
        uint64_t start, id;
        unsigned len;
        if (sscanf(e, "req %255s 0x%" SCNx64 " 0x%x", block, &start, &len) !=
            3) {
            fail_msg("entry %u: \"%s\"", i, e);
        }
        id = start >> 40;
        assert_true(id == 1 || id == 2);
        if (check_blocks && strcmp(block, q[id - 1].block)) {
            fail_msg("entry %u: \"%s\": a request of thread %" PRIu64
                     " for the wrong block",
                     i, e, id);
        }
        assert_int_equal(start & ((1ull << 40) - 1), next[id - 1] << 12);
        next[id - 1]++;
        assert_int_equal(len, 0x1000);
    }
    assert_int_equal(next[0], REQS_PER_THREAD);
    assert_int_equal(next[1], REQS_PER_THREAD);
    assert_string_equal(fx->log.log->pdata[n - 1], "shut 0x0");
}

static void test_rp_concurrent_same_block(void **state)
{
    RPFixture *fx = *state;

    rp_start(fx, true, true);
    /* the block is known: every request from the threads is REQ_PAGES */
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0, 0x1000));
    rp_concurrent(fx, "pc.ram", "pc.ram", true);
}

/*
 * Each thread its own block: which block a request names can go wrong
 * (test_rp_req_pages_interleaved shows how, deterministically); here it
 * is checked only with GODWIT_KNOWN_BUGS, and the race is rarely lost.
 */
static void test_rp_concurrent_two_blocks(void **state)
{
    RPFixture *fx = *state;

    rp_start(fx, true, true);
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0, 0x1000));
#ifdef GODWIT_KNOWN_BUGS
    rp_concurrent(fx, "blk1", "blk2", true); /* BUG: see below */
#else
    rp_concurrent(fx, "blk1", "blk2", false);
#endif
}

/*
 * A gate in g_mutex_lock (the test links with -Wl,--wrap=g_mutex_lock,
 * so the calls of return-path.c come here): a thread that armed it stops
 * before its Nth lock from then on until the test opens the gate. This
 * holds a writer between two critical sections of rp_send_req_pages.
 */
void __real_g_mutex_lock(GMutex *m);
void __wrap_g_mutex_lock(GMutex *m);

static __thread int gate_at; /* 0: off; n: stop before the nth lock */

static struct {
    GMutex lock;
    GCond cond;
    bool stopped; /* a thread waits at the gate */
    bool done;    /* the gated thread finished without stopping */
    bool open;
} gate;

void __wrap_g_mutex_lock(GMutex *m)
{
    if (gate_at && --gate_at == 0) {
        __real_g_mutex_lock(&gate.lock);
        gate.stopped = true;
        g_cond_broadcast(&gate.cond);
        while (!gate.open) {
            g_cond_wait(&gate.cond, &gate.lock);
        }
        g_mutex_unlock(&gate.lock);
    }
    __real_g_mutex_lock(m);
}

typedef struct Gated {
    RPWriter *w;
    const char *block;
    uint64_t start;
} Gated;

/* A request whose second lock waits at the gate. */
static gpointer gated_request(gpointer opaque)
{
    Gated *g = opaque;

    gate_at = 2;
    assert_true(rp_send_req_pages(g->w, g->block, g->start, 0x1000));
    gate_at = 0;
    __real_g_mutex_lock(&gate.lock);
    gate.done = true;
    g_cond_broadcast(&gate.cond);
    g_mutex_unlock(&gate.lock);
    return NULL;
}

/*
 * Thread A asks for a page of a new block; while A is between the
 * decision "REQ_PAGES_ID, the last block is now blk1" and its send, the
 * test's thread asks for another page of blk1. Whatever the order on the
 * wire, the source must read both as requests for blk1.
 */
static void test_rp_req_pages_interleaved(void **state)
{
    RPFixture *fx = *state;
    Gated a;
    GThread *t;

    rp_start(fx, true, true);
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0, 0x1000));
    a = (Gated){fx->w, "blk1", 0x1000};
    g_mutex_init(&gate.lock);
    g_cond_init(&gate.cond);
    gate.stopped = gate.done = gate.open = false;
    t = g_thread_new("gated", gated_request, &a);
    g_mutex_lock(&gate.lock);
    while (!gate.stopped && !gate.done) {
        g_cond_wait(&gate.cond, &gate.lock);
    }
    g_mutex_unlock(&gate.lock);
    assert_true(rp_send_req_pages(fx->w, "blk1", 0x2000, 0x1000));
    g_mutex_lock(&gate.lock);
    gate.open = true;
    g_cond_broadcast(&gate.cond);
    g_mutex_unlock(&gate.lock);
    g_thread_join(t);
    g_mutex_clear(&gate.lock);
    g_cond_clear(&gate.cond);
    assert_true(rp_send_shut(fx->w, 0));
    rp_wait_end(fx);
    assert_int_equal(fx->log.errors, 0);
    assert_int_equal(fx->log.log->len, 4);
    /*
     * BUG: return-path.c rp_send_req_pages picks REQ_PAGES or
     * REQ_PAGES_ID and updates last_block under the writer's lock, then
     * drops the lock and takes it again in rp_send(): another thread's
     * request can go out in between, so its REQ_PAGES (no name) precedes
     * the REQ_PAGES_ID that names the block, and the source reads it as a
     * request for the previous block ("req pc.ram 0x2000" here), or fails
     * with "no previous block" if there was none. QEMU's
     * migrate_send_rp_req_pages decides and sends under one hold of
     * rp_mutex.
     */
#ifdef GODWIT_KNOWN_BUGS
    assert_rp_log(&fx->log, gate.stopped ? "req pc.ram 0x0 0x1000; "
                                           "req blk1 0x2000 0x1000; "
                                           "req blk1 0x1000 0x1000; shut 0x0"
                                         : "req pc.ram 0x0 0x1000; "
                                           "req blk1 0x1000 0x1000; "
                                           "req blk1 0x2000 0x1000; shut 0x0");
#endif
}

typedef struct RPErrorCase {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    bool close; /* the destination end closes after the bytes */
    const char *error;
} RPErrorCase;

static const uint8_t rp_type0[] = {0x00, 0x00, 0x00, 0x00};
static const uint8_t rp_type7[] = {0x00, 0x07, 0x00, 0x00};
static const uint8_t rp_typeffff[] = {0xff, 0xff, 0x00, 0x04, 0, 0, 0, 0};
static const uint8_t rp_shut_len2[] = {0x00, 0x01, 0x00, 0x02, 0x00, 0x00};
static const uint8_t rp_pong_len8[] = {0x00, 0x02, 0x00, 0x08, 0, 0,
                                       0,    1,    0,    0,    0, 2};
static const uint8_t rp_req_len16[] = {
    0x00, 0x04, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t rp_resume_len0[] = {0x00, 0x06, 0x00, 0x00};
static const uint8_t rp_reqid_len12[] = {0x00, 0x03, 0x00, 0x0c, 0, 0, 0, 0,
                                         0,    0,    0,    0,    0, 0, 0, 0};
static const uint8_t rp_reqid_name_long[] = {
    0x00, 0x03, 0x00, 0x13, 0,    0,   0,   0,   0,   0,   0,  0,
    0,    0,    0x10, 0x00, 0x07, 'p', 'c', '.', 'r', 'a', 'm'}; /* name length
                                                                    7, 6 bytes
                                                                  */
static const uint8_t rp_req_first[] = {0x00, 0x04, 0x00, 0x0c, 0, 0, 0,    0,
                                       0,    0,    0,    0,    0, 0, 0x10, 0};
static const uint8_t rp_half_header[] = {0x00, 0x02, 0x00};
static const uint8_t rp_half_body[] = {0x00, 0x02, 0x00, 0x04, 0x00, 0x00};

static const RPErrorCase rp_error_cases[] = {
#define RPC(n, b, c, e)                                                        \
    {                                                                          \
        n, b, sizeof(b), c, e                                                  \
    }
    RPC("type 0", rp_type0, false,
        "return path: Received invalid message 0x0000 length 0x0000"),
    RPC("type 7", rp_type7, false,
        "return path: Received invalid message 0x0007 length 0x0000"),
    RPC("type 0xffff", rp_typeffff, false,
        "return path: Received invalid message 0xffff length 0x0004"),
    RPC("SHUT of 2 bytes", rp_shut_len2, false,
        "return path: Received 'SHUT' message (0x0001) with incorrect length "
        "2 expecting 4"),
    RPC("PONG of 8 bytes", rp_pong_len8, false,
        "return path: Received 'PONG' message (0x0002) with incorrect length "
        "8 expecting 4"),
    RPC("REQ_PAGES of 16 bytes", rp_req_len16, false,
        "return path: Received 'REQ_PAGES' message (0x0004) with incorrect "
        "length 16 expecting 12"),
    RPC("RESUME_ACK of 0 bytes", rp_resume_len0, false,
        "return path: Received 'RESUME_ACK' message (0x0006) with incorrect "
        "length 0 expecting 4"),
    RPC("REQ_PAGES_ID without a name", rp_reqid_len12, false,
        "return path: Received 'REQ_PAGES_ID' message (0x0003) with "
        "incorrect length 12"),
    RPC("REQ_PAGES_ID whose name is longer", rp_reqid_name_long, false,
        "return path: Received 'REQ_PAGES_ID' message (0x0003) with "
        "incorrect length 19"),
    RPC("REQ_PAGES with no previous block", rp_req_first, false,
        "return path: ram_save_queue_pages no previous block"),
    {"the peer closes", NULL, 0, true,
     "return path: unexpected end of migration stream"},
    RPC("the peer closes in a header", rp_half_header, true,
        "return path: unexpected end of migration stream"),
    RPC("the peer closes in a body", rp_half_body, true,
        "return path: unexpected end of migration stream"),
#undef RPC
};

/* Each malformed input ends the reader with one error callback only. */
static void test_rp_reader_errors(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(rp_error_cases); i++) {
        const RPErrorCase *c = &rp_error_cases[i];
        g_autofree char *exp = g_strdup_printf("error %s", c->error);
        g_autofree char *got = NULL;
        void *fx_state;
        RPFixture *fx;

        assert_int_equal(rp_setup(&fx_state), 0);
        fx = fx_state;
        rp_start(fx, false, true);
        if (c->len) {
            rp_write_raw(fx, c->bytes, c->len);
        }
        if (c->close) {
            rp_close_dst(fx);
        }
        if (!rp_reader_wait(fx->r, TIMEOUT_MS)) {
            fail_msg("%s: the return path reader did not end", c->name);
        }
        got = rp_log_str(&fx->log);
        if (!g_str_has_prefix(got, exp)) {
            fail_msg("%s: log \"%s\", expected \"%s\"", c->name, got, exp);
        }
        assert_int_equal(fx->log.errors, 1);
        assert_int_equal(fx->log.log->len, 1);
        assert_int_equal(rp_teardown(&fx_state), 0);
    }
}

/* A page request the source refuses ends the reader with that error. */
static void test_rp_req_pages_refused(void **state)
{
    RPFixture *fx = *state;

    fx->log.fail_req_at = 2;
    rp_start(fx, true, true);
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x1000, 0x1000));
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x2000, 0x1000));
    assert_true(rp_send_pong(fx->w, 3));
    rp_wait_end(fx);
    assert_rp_log(&fx->log, "req pc.ram 0x1000 0x1000; "
                            "req pc.ram 0x2000 0x1000; "
                            "error return path: mock req_pages refused");
}

/* Stopping a reader blocked in read (or part-way through a message). */
static void test_rp_reader_stop_blocked(void **state)
{
    RPFixture *fx = *state;
    static const uint8_t part[] = {0x00, 0x02, 0x00, 0x04, 0x00};

    for (int i = 0; i < 2; i++) {
        int64_t t0;
        rp_start(fx, false, true);
        if (i) {
            rp_write_raw(fx, part, sizeof(part));
        }
        /* let it block (not needed for correctness: any moment will do) */
        g_usleep(20 * 1000);
        assert_false(rp_reader_wait(fx->r, 0));
        t0 = g_get_monotonic_time();
        rp_reader_stop(fx->r);
        fx->r = NULL;
        assert_true(g_get_monotonic_time() - t0 < 1000 * 1000);
        assert_rp_log(&fx->log, "");
    }
}

/* The writer after the source went away, and after a shutdown. */
static void test_rp_writer_errors(void **state)
{
    RPFixture *fx = *state;
    g_autofree char *e1 = NULL;
    g_autofree char *e2 = NULL;

    rp_start(fx, true, false);
    assert_true(rp_send_pong(fx->w, 1));
    mig_channel_close(fx->src, NULL);
    fx->src = NULL;
    /* the peer's receive queue was dropped: EPIPE or ECONNRESET */
    assert_false(rp_send_pong(fx->w, 2));
    e1 = rp_writer_error(fx->w);
    assert_non_null(e1);
    assert_true(g_str_has_prefix(e1, "return path: "));
    assert_false(rp_send_req_pages(fx->w, "pc.ram", 0, 0x1000));
    e2 = rp_writer_error(fx->w);
    assert_string_equal(e1, e2); /* the first failure is kept */
}

static void test_rp_writer_shutdown(void **state)
{
    RPFixture *fx = *state;
    g_autofree char *e = NULL;

    rp_start(fx, true, false);
    rp_writer_shutdown(fx->w);
    assert_false(rp_send_shut(fx->w, 0));
    e = rp_writer_error(fx->w);
    assert_non_null(e);
    assert_non_null(strstr(e, "shut down"));
}

/* The way back needs a socket: a memory channel has none. */
static void test_rp_needs_socket(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GError) err2 = NULL;
    MigChannel *mem = mig_channel_new_memory(NULL);

    assert_non_null(mem);
    assert_null(rp_writer_open(mem, &err));
    assert_err(err, "has no way back");
    assert_null(rp_reader_start(mem, &rp_ops, NULL, &err2));
    assert_err(err2, "has no way back");
    mig_channel_close(mem, NULL);
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
        PT(test_load_order_errors),
        PT(test_load_malformed),
        PT(test_load_packaged_max),
        PT(test_load_truncated),
        PT(test_load_truncated_package),
        PT(test_load_listen_thread_fails),
        PT(test_load_listen_thread_missing_end),
        PT(test_load_callback_fails),
        PT(test_load_without_command_ops),
        PT(test_load_null_hooks),
#undef PT
#define RT(t) cmocka_unit_test_setup_teardown(t, rp_setup, rp_teardown)
        RT(test_rp_shut_pong),
        RT(test_rp_shut_failed),
        RT(test_rp_layout_raw),
        RT(test_rp_req_pages),
        RT(test_rp_concurrent_same_block),
        RT(test_rp_concurrent_two_blocks),
        RT(test_rp_req_pages_interleaved),
        RT(test_rp_req_pages_refused),
        RT(test_rp_reader_stop_blocked),
        RT(test_rp_writer_errors),
        RT(test_rp_writer_shutdown),
#undef RT
        cmocka_unit_test(test_rp_reader_errors),
        cmocka_unit_test(test_rp_needs_socket),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
