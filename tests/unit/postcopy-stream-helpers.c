/*
 * Helpers of the post-copy stream tests: see postcopy-stream-helpers.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "migration/channel.h"
#include "postcopy-stream-helpers.h"

/* ---- bytes ----------------------------------------------------------------
 */

void put_u8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

void put_be16(GByteArray *b, uint16_t v)
{
    put_u8(b, v >> 8);
    put_u8(b, v);
}

void put_be32(GByteArray *b, uint32_t v)
{
    put_be16(b, v >> 16);
    put_be16(b, v);
}

void put_be64(GByteArray *b, uint64_t v)
{
    put_be32(b, v >> 32);
    put_be32(b, v);
}

void put_bytes(GByteArray *b, const void *p, size_t n)
{
    g_byte_array_append(b, p, n);
}

void put_counted(GByteArray *b, const char *s)
{
    put_u8(b, strlen(s));
    put_bytes(b, s, strlen(s));
}

void put_cmd(GByteArray *b, uint16_t cmd, uint16_t len, const void *data)
{
    put_u8(b, 0x08);
    put_be16(b, cmd);
    put_be16(b, len);
    put_bytes(b, data, len);
}

void put_header(GByteArray *b)
{
    put_bytes(b, "QEVM", 4);
    put_be32(b, 3);
    put_u8(b, 0x07);
    put_be32(b, 9);
    put_bytes(b, "godwit-pc", 9);
}

/* POSTCOPY_RAM_DISCARD: u8 0, counted name, u8 0, be64 start/length pairs */
void put_discard(GByteArray *b, const char *block, int n, const uint64_t *start,
                 const uint64_t *length)
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

void put_packaged(GByteArray *b, const GByteArray *pkg)
{
    put_cmd(
        b, 7, 4,
        (uint8_t[]){pkg->len >> 24, pkg->len >> 16, pkg->len >> 8, pkg->len});
    put_bytes(b, pkg->data, pkg->len);
}

void put_advise(GByteArray *b)
{
    put_cmd(b, 3, 16,
            (uint8_t[]){0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x10, 0});
}

/* START/FULL: u8 type, be32 id, counted idstr, be32 instance, be32 version */
void put_section(GByteArray *b, uint8_t type, uint32_t id, const char *idstr,
                 uint32_t version, uint32_t body)
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

void put_script(GByteArray *out, const char *script)
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
        } else if (!strcmp(t, "resume")) {
            put_cmd(b, 9, 0, NULL);
        } else if (!strcmp(t, "recv_bitmap")) {
            put_cmd(b, 10, 7, (uint8_t[]){6, 'p', 'c', '.', 'r', 'a', 'm'});
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

const uint64_t disc_start[MIG_DISCARD_MAX_PAIRS] = {
    0x0,        0x2000,      0x10000,        0x7ffff000,
    0x12345000, 0xabcdef000, 0x100000000ull, 0x1fffff000ull,
    0x3000,     0x5000,      0x8000,         0xfffffffffffff000ull,
};
const uint64_t disc_len[MIG_DISCARD_MAX_PAIRS] = {
    0x1000, 0x3000,    0x1000,     0x1000, 0x100000, 0x1000,
    0x2000, 0x1000000, 0x40000000, 0x1000, 0x1000,   0x1000,
};

/* ---- checks ---------------------------------------------------------------
 */

void assert_bytes(const GByteArray *got, const uint8_t *exp, size_t len,
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

void assert_err(const GError *err, const char *substr)
{
    if (!err) {
        fail_msg("no error, expected \"%s\"", substr);
    } else if (!strstr(err->message, substr)) {
        fail_msg("error \"%s\", expected \"%s\"", err->message, substr);
    }
}

/* ---- streams --------------------------------------------------------------
 */

GByteArray *capture(void (*write)(QEMUFile *f))
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

bool load_bytes(const uint8_t *p, size_t n, GError **errp)
{
    QEMUFile *f = input_from(p, n);
    bool ok = qemu_loadvm_state(f, errp);

    qemu_fclose(f, NULL);
    return ok;
}

/* ---- mocks ----------------------------------------------------------------
 */

/* What the hooks and section loaders were asked, in order. */
typedef struct Mock {
    GMutex lock;
    pthread_t main_thread; /* entries from other threads are "[listen] " */
    GPtrArray *log;        /* protected by lock */
    int aborts;            /* protected by lock */
    int cleanups;          /* protected by lock */
    const char *fail;      /* protected by lock: the entry that fails */
    int fail_skip;         /* ... after this many that succeed: lock */
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

const LoadvmCommandOps mock_ops = {
    .open_return_path = mock_orp,
    .ping = mock_ping,
    .postcopy_advise = mock_advise,
    .postcopy_discard = mock_discard,
    .postcopy_listen = mock_listen,
    .postcopy_run = mock_run,
    .postcopy_abort = mock_abort,
};

char *mock_log(bool listen_thread)
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

void assert_log(bool listen_thread, const char *exp)
{
    g_autofree char *got = mock_log(listen_thread);

    if (strcmp(got, exp)) {
        fail_msg("%s log \"%s\", expected \"%s\"",
                 listen_thread ? "listen thread" : "incoming thread", got, exp);
    }
}

/* One of the counts, read under the lock: the threads may still write. */
static int mock_count(const int *count)
{
    int n;

    g_mutex_lock(&mock.lock);
    n = *count;
    g_mutex_unlock(&mock.lock);
    return n;
}

int mock_aborts(void)
{
    return mock_count(&mock.aborts);
}

void mock_fail_at(const char *name, int skip)
{
    g_mutex_lock(&mock.lock);
    mock.fail = name;
    mock.fail_skip = skip;
    g_mutex_unlock(&mock.lock);
}

int mock_cleanups(void)
{
    return mock_count(&mock.cleanups);
}

void mock_reset(void)
{
    g_mutex_lock(&mock.lock);
    g_ptr_array_set_size(mock.log, 0);
    mock.aborts = mock.cleanups = 0;
    mock.fail = NULL;
    mock.fail_skip = 0;
    g_mutex_unlock(&mock.lock);
}

/* "dev" and "iter": the sections' save hooks, and loaders that log. */

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

void register_sections(void)
{
    register_savevm(&dev_handler, 0, (void *)"dev");
    register_savevm(&iter_handler, 0, (void *)"iter");
}

int parser_setup(void **state)
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

int parser_teardown(void **state)
{
    unregister_savevm_all();
    qemu_loadvm_set_command_ops(NULL);
    g_ptr_array_unref(mock.log);
    mock.log = NULL;
    g_mutex_clear(&mock.lock);
    return 0;
}

GByteArray *good_stream(size_t *pkg_end)
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

const char good_log[] =
    "open_return_path; ping 0x1; advise 0x1000 0x1000; iter v1 0x1001; "
    "discard pc.ram 0x0 0x1000; discard pc.ram 0x10000 0x1000; "
    "discard pc.ram 0x7ffff000 0x1000; listen; dev v2 0xfeedc0de; run";
