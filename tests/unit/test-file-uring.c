/*
 * Unit tests for file: migration through io_uring (migration/channel-uring.c
 * and the QEMUFile paths that use it): streams of many small and large
 * fields and pages written and read back byte for byte, the same bytes as
 * the plain path, offset=N both ways, exact end of file and truncation,
 * short writes resubmitted (a fake completion, and a real one cut by
 * RLIMIT_FSIZE), errors that name the file, shutdown with writes in
 * flight, and the fallback (GODWIT_IO_URING, io_uring_setup refused by
 * seccomp). Exits 77 when this kernel has no io_uring at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <liburing.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../migration/channel-internal.h"
#include "../../migration/channel-uring.h"
#include "migration/channel.h"
#include "migration/qemu-file.h"

#define RAM_SIZE (16u << 20) /* the "guest RAM" pages are queued from */

static char *tmpdir;
static uint8_t *ram;

static char *tmp_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

static MigChannel *connect_file(const char *path, uint64_t offset,
                                GError **errp)
{
    g_autofree char *uri =
        g_strdup_printf("file:%s,offset=%" G_GUINT64_FORMAT, path, offset);
    MigUri u;
    MigChannel *c;

    assert_true(mig_uri_parse(uri, &u, NULL));
    c = mig_connect(&u, -1, errp);
    mig_uri_clear(&u);
    return c;
}

static QEMUFile *open_out(const char *path, uint64_t offset, bool uring)
{
    g_autoptr(GError) err = NULL;
    MigChannel *c = connect_file(path, offset, &err);

    assert_non_null(c);
    assert_int_equal(mig_channel_async_writes(c), uring);
    return qemu_file_new_output(c);
}

static QEMUFile *open_in(const char *path, uint64_t offset, bool uring)
{
    g_autofree char *uri =
        g_strdup_printf("file:%s,offset=%" G_GUINT64_FORMAT, path, offset);
    MigUri u;
    MigListener *l;
    MigChannel *c;

    assert_true(mig_uri_parse(uri, &u, NULL));
    l = mig_listen(&u, NULL);
    mig_uri_clear(&u);
    assert_non_null(l);
    c = mig_accept(l, NULL);
    mig_listener_close(l);
    assert_non_null(c);
    assert_int_equal(mig_channel_reads_ahead(c), uring);
    return qemu_file_new_input(c);
}

static void set_uring(bool on)
{
    if (on) {
        g_unsetenv(MIG_URING_ENV);
    } else {
        g_setenv(MIG_URING_ENV, "off", TRUE);
    }
}

/* ---- a random stream and what it must look like ------------------------ */

/*
 * Writes a stream of `ops` random operations (fields, copied buffers up to
 * 70 KB, single pages and runs of pages up to 2 MiB by reference, submits
 * and flushes) to `f`; returns the bytes it must produce.
 */
static GByteArray *write_stream(QEMUFile *f, guint32 seed, int ops)
{
    GRand *rnd = g_rand_new_with_seed(seed);
    GByteArray *want = g_byte_array_new();

    for (int i = 0; i < ops; i++) {
        int k = g_rand_int_range(rnd, 0, 1000);
        uint32_t v = g_rand_int(rnd);
        size_t off, len;

        if (k < 600) { /* a page by reference, as ram.c sends them */
            off = (size_t)g_rand_int_range(rnd, 0, RAM_SIZE / 4096) * 4096;
            qemu_put_be64(f, off | 8);
            qemu_put_buffer_async(f, ram + off, 4096);
            uint8_t hdr[8] = {0,
                              0,
                              0,
                              0,
                              (uint8_t)(off >> 24),
                              (uint8_t)(off >> 16),
                              (uint8_t)(off >> 8),
                              (uint8_t)(off | 8)};
            g_byte_array_append(want, hdr, 8);
            g_byte_array_append(want, ram + off, 4096);
            continue;
        }
        if (k < 900) {
            uint8_t b[4] = {v >> 24, v >> 16, v >> 8, v};
            qemu_put_be32(f, v);
            g_byte_array_append(want, b, 4);
            continue;
        }
        if (k < 995) { /* copied: 1 byte to 70 KB */
            len = (size_t)g_rand_int_range(rnd, 1, k < 980 ? 200 : 70000);
            off = (size_t)g_rand_int_range(rnd, 0, (gint32)(RAM_SIZE - len));
            qemu_put_buffer(f, ram + off, len);
            g_byte_array_append(want, ram + off, (guint)len);
            continue;
        }
        if (k < 998) { /* a run of RAM by reference, up to 2 MiB */
            len = (size_t)g_rand_int_range(rnd, 1, 2 << 20);
            off = (size_t)g_rand_int_range(rnd, 0, (gint32)(RAM_SIZE - len));
            qemu_put_buffer_async(f, ram + off, len);
            g_byte_array_append(want, ram + off, (guint)len);
            continue;
        }
        if (k < 999) {
            qemu_file_submit(f);
        } else {
            qemu_fflush(f);
        }
    }
    g_rand_free(rnd);
    return want;
}

static void assert_file_is(const char *path, size_t head, uint8_t head_byte,
                           const GByteArray *want)
{
    g_autofree char *got = NULL;
    gsize len = 0;

    assert_true(g_file_get_contents(path, &got, &len, NULL));
    assert_int_equal(len, head + want->len);
    for (size_t i = 0; i < head; i++) {
        assert_int_equal((uint8_t)got[i], head_byte);
    }
    assert_memory_equal(got + head, want->data, want->len);
}

/* Writes the stream of `seed` to `path` at `offset`; returns its bytes. */
static GByteArray *save(const char *path, uint64_t offset, bool uring,
                        guint32 seed, int ops)
{
    g_autoptr(GError) err = NULL;
    QEMUFile *f;
    GByteArray *want;

    set_uring(uring);
    f = open_out(path, offset, uring);
    want = write_stream(f, seed, ops);
    assert_true(qemu_fclose(f, &err));
    set_uring(true);
    return want;
}

/* Reads `want` back in random pieces; then the stream must end there. */
static void restore(const char *path, uint64_t offset, bool uring,
                    const GByteArray *want, guint32 seed)
{
    GRand *rnd = g_rand_new_with_seed(seed);
    g_autofree uint8_t *buf = g_malloc(300000);
    QEMUFile *f;
    size_t pos = 0;

    set_uring(uring);
    f = open_in(path, offset, uring);
    while (pos < want->len) {
        gint32 most = g_rand_boolean(rnd) ? 9 : 300000;
        size_t n = (size_t)g_rand_int_range(rnd, 1, most);

        n = MIN(n, want->len - pos); /* MIN evaluates twice: no calls in it */
        qemu_get_buffer(f, buf, n);
        if (qemu_file_get_error(f)) {
            fail_msg("at %zu of %u: %s", pos, want->len,
                     qemu_file_error_message(f));
        }
        assert_memory_equal(buf, want->data + pos, n);
        pos += n;
    }
    assert_true(qemu_file_at_eof(f));
    assert_true(qemu_fclose(f, NULL));
    set_uring(true);
    g_rand_free(rnd);
}

/* ---- streams ----------------------------------------------------------- */

/* Many batches in flight; the file is what the plain path writes. */
static void test_same_bytes_as_plain(void **state)
{
    g_autofree char *a = tmp_path("uring.mig");
    g_autofree char *b = tmp_path("plain.mig");
    GByteArray *wa = save(a, 0, true, 7, 12000);
    GByteArray *wb = save(b, 0, false, 7, 12000);

    assert_true(wa->len > 32u << 20); /* dozens of batches */
    assert_int_equal(wa->len, wb->len);
    assert_memory_equal(wa->data, wb->data, wa->len);
    assert_file_is(a, 0, 0, wa);
    assert_file_is(b, 0, 0, wb);
    /* each path reads what either wrote */
    restore(a, 0, false, wa, 1);
    restore(b, 0, true, wb, 2);
    restore(a, 0, true, wa, 3);
    g_byte_array_unref(wa);
    g_byte_array_unref(wb);
    g_unlink(a);
    g_unlink(b);
}

/* offset=N: the first N bytes stay, the stream goes after them. */
static void test_offset(void **state)
{
    g_autofree char *path = tmp_path("offset.mig");
    g_autofree char *head = g_malloc(5000);
    GByteArray *want;

    memset(head, 'H', 5000);
    assert_true(g_file_set_contents(path, head, 5000, NULL));
    want = save(path, 5000, true, 11, 3000);
    assert_file_is(path, 5000, 'H', want);
    restore(path, 5000, true, want, 4);
    g_byte_array_unref(want);
    g_unlink(path);
}

/* The stream ends exactly at a read-ahead buffer's end, or in the first. */
static void test_exact_end(void **state)
{
    static const size_t sizes[] = {0,
                                   1,
                                   MIG_URING_READ_SIZE - 1,
                                   MIG_URING_READ_SIZE,
                                   2 * MIG_URING_READ_SIZE,
                                   MIG_URING_READ_DEPTH * MIG_URING_READ_SIZE +
                                       1};
    g_autofree char *path = tmp_path("exact.mig");

    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        GByteArray *want = g_byte_array_new();

        g_byte_array_append(want, ram, (guint)sizes[i]);
        assert_true(
            g_file_set_contents(path, (char *)ram, (gssize)sizes[i], NULL));
        restore(path, 0, true, want, (guint32)i);
        g_byte_array_unref(want);
    }
    g_unlink(path);
}

/* A truncated file: the bytes that are there, then the usual error. */
static void test_truncated(void **state)
{
    g_autofree char *path = tmp_path("short.mig");
    size_t len = 3 * MIG_URING_READ_SIZE + 17;
    g_autofree uint8_t *buf = g_malloc(4u << 20);

    assert_true(g_file_set_contents(path, (char *)ram, (gssize)len, NULL));
    QEMUFile *f = open_in(path, 0, true);
    qemu_get_buffer(f, buf, len - 1);
    assert_int_equal(qemu_file_get_error(f), 0);
    assert_memory_equal(buf, ram, len - 1);
    qemu_get_buffer(f, buf, 2);
    assert_int_equal(qemu_file_get_error(f), -EIO);
    assert_string_equal(qemu_file_error_message(f),
                        "unexpected end of migration stream");
    assert_false(qemu_fclose(f, NULL));
    g_unlink(path);
}

/* ---- short writes, errors ---------------------------------------------- */

/* Fills a batch with three pieces: copied, a page, a run of RAM. */
static int fill_batch(MigWriteBatch *b, GByteArray *want)
{
    memcpy(b->buf, ram + 100, 10000);
    b->iov[0] = (struct iovec){b->buf, 10000};
    b->iov[1] = (struct iovec){ram + 8192, 4096};
    b->iov[2] = (struct iovec){ram + 65536, 70000};
    g_byte_array_append(want, ram + 100, 10000);
    g_byte_array_append(want, ram + 8192, 4096);
    g_byte_array_append(want, ram + 65536, 70000);
    return 3;
}

/*
 * The kernel answered a short count (inside an iovec, at an iovec's end)
 * or an interruption: the rest goes again at its own offset, and the file
 * ends up whole. The test writes the part the fake result claims.
 */
static void test_short_write_resubmits(void **state)
{
    static const int results[] = {1,     5000,  10000,  14096,
                                  50000, 83999, -EINTR, -EAGAIN};
    g_autofree char *path = tmp_path("short-write.mig");

    for (size_t i = 0; i < G_N_ELEMENTS(results); i++) {
        g_autoptr(GError) err = NULL;
        GByteArray *want = g_byte_array_new();
        MigChannel *c = connect_file(path, 0, NULL);
        MigWriteBatch *b = mig_channel_batch_get(c);
        int cnt = fill_batch(b, want);
        int res = results[i];

        if (res > 0) {
            assert_int_equal(
                pwrite(mig_channel_fd(c), want->data, (size_t)res, 0), res);
        }
        mig_uring_fake_completion(c->uring, b, cnt, res);
        assert_true(mig_channel_drain(c, &err));
        assert_int_equal(mig_uring_written(c->uring), want->len);
        assert_true(mig_channel_close(c, NULL));
        assert_file_is(path, 0, 0, want);
        g_byte_array_unref(want);
    }
    g_unlink(path);
}

/* A failed or empty answer is the stream's error, naming the file. */
static void test_write_error_names_file(void **state)
{
    static const struct {
        int res;
        const char *msg;
    } cases[] = {{-ENOSPC, "No space left on device"}, {0, "Input/output"}};
    g_autofree char *path = tmp_path("error.mig");

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        GByteArray *want = g_byte_array_new();
        MigChannel *c = connect_file(path, 0, NULL);
        MigWriteBatch *b = mig_channel_batch_get(c);
        int cnt = fill_batch(b, want);

        mig_uring_fake_completion(c->uring, b, cnt, cases[i].res);
        assert_false(mig_channel_drain(c, &err));
        assert_non_null(strstr(err->message, path));
        assert_non_null(strstr(err->message, cases[i].msg));
        /* sticky: the next batch is refused with the same error */
        g_clear_error(&err);
        b = mig_channel_batch_get(c);
        assert_false(mig_channel_batch_submit(c, b, fill_batch(b, want), &err));
        assert_non_null(strstr(err->message, cases[i].msg));
        assert_true(mig_channel_close(c, NULL));
        g_byte_array_unref(want);
    }
    g_unlink(path);
}

/* A real error from the kernel: EBADF from a file open for reading only. */
static void test_ebadf(void **state)
{
    g_autofree char *path = tmp_path("ebadf.mig");
    g_autoptr(GError) err = NULL;
    atomic_bool down = false;
    GByteArray *want = g_byte_array_new();

    assert_true(g_file_set_contents(path, "", 0, NULL));
    int fd = open(path, O_RDONLY);
    MigUring *u = mig_uring_new(fd, path, 0, &down, NULL);
    assert_non_null(u);
    MigWriteBatch *b = mig_uring_batch_get(u);
    assert_true(mig_uring_batch_submit(u, b, fill_batch(b, want), NULL));
    assert_false(mig_uring_drain(u, &err));
    assert_non_null(strstr(err->message, "Bad file descriptor"));
    assert_non_null(strstr(err->message, path));
    mig_uring_free(u);
    close(fd);
    g_byte_array_unref(want);
    g_unlink(path);
}

/*
 * A real short write: RLIMIT_FSIZE lets the kernel write up to the limit
 * and no further. The part below the limit lands, the rest is resubmitted
 * and fails with EFBIG, which QEMUFile reports with the file name.
 */
static void test_rlimit_short_write(void **state)
{
    g_autofree char *path = tmp_path("fsize.mig");
    struct rlimit old, lim;
    g_autoptr(GError) err = NULL;
    const size_t limit = 3 * 4096 + 100;
    struct stat st;

    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = (struct rlimit){limit, old.rlim_max};
    signal(SIGXFSZ, SIG_IGN);
    QEMUFile *f = open_out(path, 0, true);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    qemu_put_buffer_async(f, ram, 1 << 20);
    qemu_fflush(f);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(qemu_file_get_error(f), -EIO);
    assert_non_null(strstr(qemu_file_error_message(f), "File too large"));
    assert_non_null(strstr(qemu_file_error_message(f), path));
    assert_false(qemu_fclose(f, &err));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, limit);
    g_unlink(path);
}

/* ---- shutdown ---------------------------------------------------------- */

/*
 * migrate_cancel while batches are in flight: the flush fails with the
 * shutdown, close waits for (or cancels) what the kernel holds and
 * returns promptly.
 */
static void test_shutdown_in_flight(void **state)
{
    g_autofree char *path = tmp_path("cancel.mig");
    QEMUFile *f = open_out(path, 0, true);
    gint64 t0;

    for (int i = 0; i < 64; i++) { /* 64 MiB: more than the batches */
        qemu_put_buffer_async(f, ram + (i % 16) * (1 << 20), 1 << 20);
        qemu_file_submit(f);
    }
    t0 = g_get_monotonic_time();
    qemu_file_shutdown(f);
    qemu_put_buffer_async(f, ram, 4096);
    qemu_fflush(f);
    assert_int_equal(qemu_file_get_error(f), -ECANCELED);
    assert_false(qemu_fclose(f, NULL));
    assert_true(g_get_monotonic_time() - t0 < 5 * G_USEC_PER_SEC);
    g_unlink(path);
}

/* The destination quits while reading ahead. */
static void test_shutdown_reader(void **state)
{
    g_autofree char *path = tmp_path("cancel-in.mig");
    uint8_t buf[16];

    assert_true(g_file_set_contents(path, (char *)ram, 8 << 20, NULL));
    QEMUFile *f = open_in(path, 0, true);
    qemu_get_buffer(f, buf, sizeof(buf));
    assert_int_equal(qemu_file_get_error(f), 0);
    qemu_file_shutdown(f);
    for (int i = 0; i < 4 && !qemu_file_get_error(f); i++) {
        g_autofree uint8_t *big = g_malloc(1 << 20);
        qemu_get_buffer(f, big, 1 << 20);
    }
    assert_int_equal(qemu_file_get_error(f), -ECANCELED);
    assert_false(qemu_fclose(f, NULL));
    g_unlink(path);
}

/* ---- fallback ---------------------------------------------------------- */

static void test_env_off_and_bad(void **state)
{
    g_autofree char *path = tmp_path("env.mig");
    g_autoptr(GError) err = NULL;

    g_setenv(MIG_URING_ENV, "off", TRUE);
    MigChannel *c = connect_file(path, 0, NULL);
    assert_non_null(c);
    assert_false(mig_channel_async_writes(c));
    assert_true(mig_channel_close(c, NULL));
    g_setenv(MIG_URING_ENV, "on", TRUE);
    c = connect_file(path, 0, NULL);
    assert_true(mig_channel_async_writes(c));
    assert_true(mig_channel_close(c, NULL));
    g_setenv(MIG_URING_ENV, "no", TRUE);
    assert_null(connect_file(path, 0, &err));
    assert_non_null(strstr(err->message, "GODWIT_IO_URING='no'"));
    g_unsetenv(MIG_URING_ENV);
    g_unlink(path);
}

/* Makes io_uring_setup fail with EPERM in this process (a child). */
static void refuse_io_uring(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {G_N_ELEMENTS(code), code};

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
        _exit(3);
    }
}

/*
 * io_uring refused (as a seccomp profile or kernel.io_uring_disabled
 * would): the migration goes on over the plain fd, with one line on
 * stderr that says why. Runs in a child, whose stderr is a file.
 */
static void test_fallback_when_refused(void **state)
{
    g_autofree char *path = tmp_path("fallback.mig");
    g_autofree char *errlog = tmp_path("fallback.err");
    g_autofree char *log = NULL;
    int status;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        refuse_io_uring();
        MigChannel *c = connect_file(path, 0, NULL);
        QEMUFile *f = c ? qemu_file_new_output(c) : NULL;
        if (!f || mig_channel_async_writes(c)) {
            _exit(1);
        }
        qemu_put_buffer_async(f, ram, 1 << 20);
        _exit(qemu_fclose(f, NULL) ? 0 : 2);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(g_file_get_contents(errlog, &log, NULL, NULL));
    assert_non_null(strstr(log, "io_uring unavailable (io_uring_queue_init: "
                                "Operation not permitted), using plain"));
    assert_int_equal(strchr(log, '\n') - log + 1, strlen(log)); /* one line */
    GByteArray *want = g_byte_array_new();
    g_byte_array_append(want, ram, 1 << 20);
    assert_file_is(path, 0, 0, want);
    g_byte_array_unref(want);
    g_unlink(path);
    g_unlink(errlog);
}

/* ---- main -------------------------------------------------------------- */

static bool kernel_has_io_uring(void)
{
    struct io_uring ring;

    if (io_uring_queue_init(4, &ring, 0) < 0) {
        return false;
    }
    io_uring_queue_exit(&ring);
    return true;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_as_plain),
        cmocka_unit_test(test_offset),
        cmocka_unit_test(test_exact_end),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_short_write_resubmits),
        cmocka_unit_test(test_write_error_names_file),
        cmocka_unit_test(test_ebadf),
        cmocka_unit_test(test_rlimit_short_write),
        cmocka_unit_test(test_shutdown_in_flight),
        cmocka_unit_test(test_shutdown_reader),
        cmocka_unit_test(test_env_off_and_bad),
        cmocka_unit_test(test_fallback_when_refused),
    };
    GRand *rnd;
    int r;

    if (!kernel_has_io_uring()) {
        fprintf(stderr, "SKIP: io_uring is not available here\n");
        return 77;
    }
    migration_channels_init();
    g_unsetenv(MIG_URING_ENV);
    tmpdir = g_dir_make_tmp("godwit-uring-XXXXXX", NULL);
    ram = g_malloc(RAM_SIZE);
    rnd = g_rand_new_with_seed(42);
    for (size_t i = 0; i < RAM_SIZE / 4; i++) {
        ((guint32 *)ram)[i] = g_rand_int(rnd);
    }
    g_rand_free(rnd);
    r = cmocka_run_group_tests(tests, NULL, NULL);
    g_rmdir(tmpdir);
    g_free(tmpdir);
    g_free(ram);
    return r;
}
