/*
 * Transfer helpers for test-migration-channels.c (see the header).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <string.h>

#include "migration-channel-xfer.h"

guint8 *xfer_pattern;

void xfer_pattern_init(void)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(12345);

    xfer_pattern = g_malloc(XFER_LEN);
    for (size_t i = 0; i < XFER_LEN; i += 4) {
        guint32 v = g_rand_int(r);

        memcpy(xfer_pattern + i, &v, 4);
    }
}

void xfer_pattern_free(void)
{
    g_clear_pointer(&xfer_pattern, g_free);
}

MigChannel *connect_uri(const char *uri, GError **errp)
{
    MigUri u;
    MigChannel *c;

    if (!mig_uri_parse(uri, &u, errp)) {
        return NULL;
    }
    c = mig_connect(&u, -1, errp);
    mig_uri_clear(&u);
    return c;
}

MigListener *listen_uri(const char *uri, GError **errp)
{
    MigUri u;
    MigListener *l;

    if (!mig_uri_parse(uri, &u, errp)) {
        return NULL;
    }
    l = mig_listen(&u, errp);
    mig_uri_clear(&u);
    return l;
}

MigListener *listen_ok(const char *uri)
{
    g_autoptr(GError) err = NULL;
    MigListener *l = listen_uri(uri, &err);

    if (!l) {
        fail_msg("listen '%s': %s", uri, err->message);
    }
    return l;
}

/* Writes pattern[0, len) with writev in random pieces. NULL or an error. */
char *send_pattern(MigChannel *c, size_t len, guint32 seed)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(seed);
    size_t off = 0;

    while (off < len) {
        struct iovec iov[8];
        int cnt = 0;
        size_t pos = off;
        ssize_t n;

        for (int want = g_rand_int_range(r, 1, 9); cnt < want && pos < len;
             cnt++) {
            /* not inside MIN(), which would draw twice */
            size_t piece = (size_t)g_rand_int_range(r, 1, 100000);

            piece = MIN(piece, len - pos);
            iov[cnt] = (struct iovec){xfer_pattern + pos, piece};
            pos += piece;
        }
        n = mig_channel_writev(c, iov, cnt);
        if (n == -EAGAIN) {
            if (!mig_channel_wait(c, POLLOUT, 10000)) {
                return g_strdup_printf("writer: no progress at %zu", off);
            }
            continue;
        }
        if (n <= 0) {
            return g_strdup_printf("writer: writev at %zu: %s", off,
                                   g_strerror((int)-n));
        }
        off += (size_t)n;
    }
    return NULL;
}

/* Reads to end of stream with readv in random pieces; checks the bytes. */
char *recv_pattern(MigChannel *c, size_t len, guint32 seed)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(seed);
    g_autofree guint8 *buf = g_malloc(256 * 1024);
    size_t off = 0;

    for (;;) {
        struct iovec iov[4];
        int cnt = g_rand_int_range(r, 1, 5);
        ssize_t n;

        for (int i = 0; i < cnt; i++) {
            size_t piece = (size_t)g_rand_int_range(r, 1, 64 * 1024);
            iov[i] = (struct iovec){buf + i * 64 * 1024, piece};
        }
        n = mig_channel_readv(c, iov, cnt);
        if (n == -EAGAIN) {
            if (!mig_channel_wait(c, POLLIN, 10000)) {
                return g_strdup_printf("reader: no data at %zu", off);
            }
            continue;
        }
        if (n < 0) {
            return g_strdup_printf("reader: readv at %zu: %s", off,
                                   g_strerror((int)-n));
        }
        if (n == 0) {
            break;
        }
        if (off + (size_t)n > len) {
            return g_strdup_printf("reader: more than %zu bytes", len);
        }
        for (int i = 0; i < cnt && n > 0; i++) {
            size_t k = MIN(iov[i].iov_len, (size_t)n);

            if (memcmp(iov[i].iov_base, xfer_pattern + off, k)) {
                return g_strdup_printf("reader: data differs near %zu", off);
            }
            off += k;
            n -= (ssize_t)k;
        }
    }
    return off == len
               ? NULL
               : g_strdup_printf("reader: %zu bytes, expected %zu", off, len);
}

/* Closes `c`; returns NULL or the error. */
char *close_channel(MigChannel *c)
{
    g_autoptr(GError) err = NULL;

    return mig_channel_close(c, &err) ? NULL : g_strdup(err->message);
}

typedef struct Writer {
    char *uri;
    char *error;
} Writer;

static gpointer writer_thread(gpointer opaque)
{
    Writer *w = opaque;
    g_autoptr(GError) err = NULL;
    MigChannel *c = connect_uri(w->uri, &err);

    if (!c) {
        w->error = g_strdup_printf("connect '%s': %s", w->uri, err->message);
        return NULL;
    }
    w->error = send_pattern(c, XFER_LEN, 1);
    if (!w->error) {
        w->error = close_channel(c);
    } else {
        mig_channel_close(c, NULL);
    }
    return NULL;
}

/*
 * One transfer: a thread connects to `to` and writes, this thread accepts
 * from `l` (then closes it) and reads. Fails the test with both sides'
 * errors.
 */
void xfer_listener(MigListener *l, const char *to)
{
    g_autoptr(GError) err = NULL;
    Writer w = {.uri = g_strdup(to)};
    GThread *t = g_thread_new("writer", writer_thread, &w);
    MigChannel *c = mig_accept(l, &err);
    char *rerr = NULL;

    mig_listener_close(l);
    if (!c) {
        rerr = g_strdup_printf("accept: %s", err->message);
    } else {
        rerr = recv_pattern(c, XFER_LEN, 2);
        if (!rerr) {
            rerr = close_channel(c);
        } else {
            mig_channel_close(c, NULL);
        }
    }
    g_thread_join(t);
    if (w.error || rerr) {
        fail_msg("%s: %s / %s", to, w.error ? w.error : "ok",
                 rerr ? rerr : "ok");
    }
    g_free(w.uri);
}

/* Listens on `listen`; connects to `to` (NULL: the reported address). */
void xfer(const char *listen, const char *to)
{
    MigListener *l = listen_ok(listen);
    g_autofree char *addr = mig_listener_address(l);

    assert_true(to || addr);
    xfer_listener(l, to ? to : addr);
}

/* Sends over an outgoing channel alone (exec out, file out). */
void send_only(const char *uri)
{
    Writer w = {.uri = g_strdup(uri)};

    writer_thread(&w);
    if (w.error) {
        fail_msg("%s", w.error);
    }
    g_free(w.uri);
}

/* Receives from an incoming prepared stream alone (exec in, file in). */
void recv_only(const char *uri)
{
    g_autoptr(GError) err = NULL;
    MigListener *l = listen_ok(uri);
    MigChannel *c = mig_accept(l, &err);
    char *e;

    mig_listener_close(l);
    if (!c) {
        fail_msg("accept '%s': %s", uri, err->message);
    }
    e = recv_pattern(c, XFER_LEN, 3);
    if (!e) {
        e = close_channel(c);
    } else {
        mig_channel_close(c, NULL);
    }
    if (e) {
        fail_msg("%s: %s", uri, e);
    }
}

void check_file(const char *path, size_t head, char head_byte)
{
    g_autofree char *data = NULL;
    gsize len;

    assert_true(g_file_get_contents(path, &data, &len, NULL));
    assert_int_equal(len, head + XFER_LEN);
    for (size_t i = 0; i < head; i++) {
        assert_int_equal(data[i], head_byte);
    }
    assert_memory_equal(data + head, xfer_pattern, XFER_LEN);
}

/* A tcp pair over 127.0.0.1: `out` connected, `in` accepted. */
void tcp_pair(MigChannel **out, MigChannel **in)
{
    g_autoptr(GError) err = NULL;
    MigListener *l = listen_ok("tcp:127.0.0.1:0");
    g_autofree char *addr = mig_listener_address(l);

    *out = connect_uri(addr, &err);
    assert_non_null(*out);
    *in = mig_accept(l, &err);
    assert_non_null(*in);
    mig_listener_close(l);
}
