/*
 * qtest: multifd. A running verify guest migrates over 1, 2 and 4
 * channels with every multifd-compression (none, zlib, zstd, lz4), over
 * tcp and unix: RAM hashes equal, verify ok, the pages went over the
 * channels (multifd-bytes). A channel whose connection breaks in the
 * middle fails the migration cleanly: the source keeps running, intact,
 * and migrates afterwards to a new destination. zero-copy-send: the
 * same over tcp with 2 and 4 channels, its fallbacks counted (loopback
 * always copies); refused over unix: and with compression or TLS, the
 * source running on.
 */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration-helpers.h"

/* 32 MiB rewritten at 16 MiB/s; one 8-byte word in every 64 bytes */
#define APPEND "vm=1 vm-bytes=32M vm-stride=64 rate=16M"

static void set_multifd(GwProc *p, int channels, const char *comp)
{
    mig_set_cap(p, "multifd", true);
    gwt_qmp_void(p,
                 "{'execute': 'migrate-set-parameters', 'arguments': "
                 "{'multifd-channels': %d, 'multifd-compression': '%s'}}",
                 channels, comp);
}

/* A pair whose destination waits with -incoming defer, multifd set. */
static MigPair *multifd_pair(const char *mem, const char *append, int channels,
                             const char *comp, const char *listen, char **uri)
{
    MigPair *mp = mig_pair_start(mem, "verify", append, "defer");
    g_autofree char *l = g_strdup(listen);

    set_multifd(mp->src, channels, comp);
    set_multifd(mp->dst, channels, comp);
    if (strstr(l, "%d")) {
        g_auto(GStrv) parts = g_strsplit(l, "%d", -1);
        g_free(l);
        l = g_strjoinv(mp->dir, parts);
    }
    gwt_qmp_void(mp->dst,
                 "{'execute': 'migrate-incoming', 'arguments': "
                 "{'uri': '%s'}}",
                 l);
    *uri = mig_connect_uri(mp, l);
    return mp;
}

typedef struct MultifdCase {
    const char *path;
    int channels;
    const char *comp;
    const char *listen;
    bool zero_copy; /* zero-copy-send on the source */
} MultifdCase;

/*
 * dirty-sync-missed-zero-copy: a flush (per channel, at each sync point)
 * counts when the kernel copied a page sent since the previous one. On
 * loopback it always copies, so with zero-copy-send it counts (> 0), at
 * most once per page packet (<= normal pages); without it, never. HMP
 * prints the same figure, only when it is not 0.
 */
static void check_zero_copy_misses(MigPair *mp, const MultifdCase *c,
                                   JsonObject *ram)
{
    int64_t missed = gwt_get_int(ram, "dirty-sync-missed-zero-copy");
    g_autofree char *info = gwt_hmp(mp->src, "info migrate");
    g_autofree char *line = g_strdup_printf(
        "Zero-copy-send fallbacks happened: %" G_GINT64_FORMAT " times",
        missed);

    g_test_message("dirty-sync-missed-zero-copy: %" G_GINT64_FORMAT, missed);
    if (!c->zero_copy) {
        g_assert_cmpint(missed, ==, 0);
        g_assert_null(strstr(info, "Zero-copy-send fallbacks"));
        return;
    }
    g_assert_cmpint(missed, >, 0);
    g_assert_cmpint(missed, <=, gwt_get_int(ram, "normal"));
    if (!strstr(info, line)) {
        g_test_message("info migrate:\n%s", info);
    }
    g_assert_nonnull(strstr(info, line));
}

static void test_multifd(gconstpointer data)
{
    const MultifdCase *c = data;
    g_autofree char *uri = NULL;
    MigPair *mp =
        multifd_pair("128M", APPEND, c->channels, c->comp, c->listen, &uri);

    if (c->zero_copy) {
        mig_set_cap(mp->src, "zero-copy-send", true);
    }
    mig_set_speed(mp->src, 64 << 20, 300);
    gwt_sleep_ms(300);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, 120000);
    g_assert_cmpstr(st, ==, "completed");
    g_autoptr(JsonObject) q = mig_query(mp->src);
    JsonObject *ram = gwt_get_obj(q, "ram");
    int64_t mbytes = gwt_get_int(ram, "multifd-bytes");
    int64_t normal = gwt_get_int(ram, "normal");
    g_test_message("%d channels, %s: %" G_GINT64_FORMAT
                   " normal pages, %" G_GINT64_FORMAT " zero, %" G_GINT64_FORMAT
                   " multifd bytes of %" G_GINT64_FORMAT,
                   c->channels, c->comp, normal, gwt_get_int(ram, "duplicate"),
                   mbytes, gwt_get_int(ram, "transferred"));
    /* the region's pages all went over the channels */
    g_assert_cmpint(normal, >=, 8192);
    g_assert_cmpint(mbytes, >, 0);
    g_assert_cmpint(mbytes, <=, gwt_get_int(ram, "transferred"));
    if (strcmp(c->comp, "none")) {
        g_assert_cmpint(mbytes, <, normal * 4096 / 2);
    } else {
        g_assert_cmpint(mbytes, >=, normal * 4096);
    }
    g_autofree char *info = gwt_hmp(mp->src, "info migrate");
    g_assert_nonnull(strstr(info, "multifd bytes: "));
    check_zero_copy_misses(mp, c, ram);
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

/* One channel's connection breaks mid-stream. */
static void test_multifd_channel_killed(void)
{
    g_autofree char *uri = NULL;
    MigPair *mp =
        multifd_pair("128M", APPEND, 4, "none", "tcp:127.0.0.1:0", &uri);

    mig_set_speed(mp->src, 8 << 20, 300);
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': {'uri': "
                 "'%s'}}",
                 uri);
    g_assert_true(mig_wait_status(mp->src, "active", 30000));
    gwt_sleep_ms(1500);
    gwt_qmp_void(mp->src, "{'execute': 'x-multifd-fault', 'arguments': "
                          "{'channel': 2}}");
    g_assert_true(mig_wait_status(mp->src, "failed", 30000));
    g_autoptr(JsonObject) q = mig_query(mp->src);
    const char *why = gwt_get_str(q, "error-desc");
    g_test_message("source: %s", why);
    g_assert_nonnull(strstr(why, "multifd"));
    /* the destination gives up with an error */
    g_assert_true(gwt_wait_exit(mp->dst, 30000));
    g_autofree char *err = gwt_stderr(mp->dst);
    g_assert_nonnull(strstr(err, "load of migration failed"));

    /* the source runs on, its memory intact (verify checks every page) */
    g_autofree char *run = gwt_status(mp->src);
    g_assert_cmpstr(run, ==, "running");
    gwt_qmp_void(mp->src, "{'execute': 'x-guest-request'}");
    g_assert_true(gwt_wait_serial(mp->src, "verify ok", 30000));

    /* and it still migrates, to a new destination */
    gwt_free(mp->dst);
    mp->dst = gwt_start("dst2", "-m 128M -S -incoming defer");
    set_multifd(mp->dst, 4, "none");
    gwt_qmp_void(mp->dst, "{'execute': 'migrate-incoming', 'arguments': "
                          "{'uri': 'tcp:127.0.0.1:0'}}");
    g_free(uri);
    uri = mig_connect_uri(mp, "tcp:127.0.0.1:0");
    mig_set_speed(mp->src, 0, 300);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, 120000);
    g_assert_cmpstr(st, ==, "completed");
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

/* multifd needs the destination to expect it, over sockets. */
static void test_multifd_refused(void)
{
    MigPair *mp =
        mig_pair_start("64M", "verify", "vm=1 vm-bytes=8M rate=4M", "defer");
    g_autofree char *e1 = NULL, *e2 = NULL;

    set_multifd(mp->src, 2, "none");
    e1 = gwt_qmp_err(mp->src, "{'execute': 'migrate', 'arguments': "
                              "{'uri': 'exec:cat > /dev/null'}}");
    g_assert_nonnull(strstr(e1, "multifd needs a tcp: or unix:"));
    mig_set_cap(mp->dst, "multifd", true);
    gwt_qmp_void(mp->dst, "{'execute': 'migrate-incoming', 'arguments': "
                          "{'uri': 'tcp:127.0.0.1:0'}}");
    e2 = gwt_qmp_err(mp->dst, "{'execute': 'migrate-set-capabilities', "
                              "'arguments': {'capabilities': [{'capability': "
                              "'multifd', 'state': false}]}}");
    g_assert_nonnull(strstr(e2, "Multifd must be set before incoming "
                                "starts"));
    mig_pair_free(mp);
}

/* The source runs on, its memory intact (verify checks every page). */
static void check_source_intact(MigPair *mp)
{
    g_autofree char *run = gwt_status(mp->src);

    g_assert_cmpstr(run, ==, "running");
    gwt_qmp_void(mp->src, "{'execute': 'x-guest-request'}");
    g_assert_true(gwt_wait_serial(mp->src, "verify ok", 30000));
}

#define ZC_RULE                                                                \
    "Zero copy only available for non-compressed non-TLS multifd migration"

/*
 * zero-copy-send where it cannot work: over unix: (Linux has no
 * MSG_ZEROCOPY for unix sockets) the migration fails at channel set-up;
 * with compression or TLS the setting is refused (both orders). The
 * source runs on.
 */
static void test_zero_copy_refused(void)
{
    g_autofree char *uri = NULL;
    MigPair *mp = multifd_pair("64M", "vm=1 vm-bytes=8M rate=4M", 2, "none",
                               "unix:%d/mf.sock", &uri);
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;

    mig_set_cap(mp->src, "zero-copy-send", true);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, 30000);
    g_assert_cmpstr(st, ==, "failed");
    g_autoptr(JsonObject) q = mig_query(mp->src);
    const char *why = gwt_get_str(q, "error-desc");
    g_test_message("source: %s", why);
    g_assert_nonnull(strstr(why, "Requested Zero Copy feature is not "
                                 "available"));
    g_assert_nonnull(strstr(why, "migrate over tcp:"));
    check_source_intact(mp);

    e1 = gwt_qmp_err(mp->src, "{'execute': 'migrate-set-parameters', "
                              "'arguments': {'multifd-compression': 'zlib'}}");
    g_assert_cmpstr(e1, ==, ZC_RULE);
    e2 = gwt_qmp_err(mp->src, "{'execute': 'migrate-set-parameters', "
                              "'arguments': {'tls-creds': 'tls0'}}");
    g_assert_cmpstr(e2, ==, ZC_RULE);
    mig_set_cap(mp->src, "zero-copy-send", false);
    gwt_qmp_void(mp->src, "{'execute': 'migrate-set-parameters', "
                          "'arguments': {'multifd-compression': 'zstd'}}");
    e3 = gwt_qmp_err(mp->src, "{'execute': 'migrate-set-capabilities', "
                              "'arguments': {'capabilities': [{'capability': "
                              "'zero-copy-send', 'state': true}]}}");
    g_assert_cmpstr(e3, ==, ZC_RULE);
    /* and without multifd at all */
    mig_set_cap(mp->src, "multifd", false);
    e4 = gwt_qmp_err(mp->src, "{'execute': 'migrate-set-capabilities', "
                              "'arguments': {'capabilities': [{'capability': "
                              "'zero-copy-send', 'state': true}]}}");
    g_assert_cmpstr(e4, ==, ZC_RULE);
    check_source_intact(mp);
    mig_pair_free(mp);
}

static int connect_port(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    return fd;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/*
 * A destination fed by hand: the stream's header on the main channel, a
 * good initial packet on the channel, then `packet` (len bytes) on it.
 * The destination must fail with `want` in its error, and exit.
 */
static void bad_channel_case(const uint8_t *packet, size_t len,
                             const char *want, bool valid_init)
{
    GwProc *dst = gwt_start("dst", "-m 64M -S -incoming defer");
    static const uint8_t qevm[] = {'Q', 'E', 'V', 'M', 0, 0, 0, 3};
    uint8_t init[64] = {0};
    int mfd, cfd;

    set_multifd(dst, 1, "none");
    gwt_qmp_void(dst, "{'execute': 'migrate-incoming', 'arguments': "
                      "{'uri': 'tcp:127.0.0.1:0'}}");
    g_autoptr(JsonObject) q = mig_query(dst);
    JsonArray *a = json_object_get_array_member(q, "socket-address");
    int port = atoi(gwt_get_str(json_array_get_object_element(a, 0), "port"));

    mfd = connect_port(port);
    g_assert_cmpint(write(mfd, qevm, sizeof(qevm)), ==, sizeof(qevm));
    cfd = connect_port(port);
    put32(init, 0x11223344);
    put32(init + 4, valid_init ? 1 : 7);
    g_assert_cmpint(write(cfd, init, sizeof(init)), ==, sizeof(init));
    if (packet) {
        g_assert_cmpint(write(cfd, packet, len), ==, (ssize_t)len);
    }
    g_assert_true(gwt_wait_exit(dst, 30000));
    g_autofree char *err = gwt_stderr(dst);
    g_test_message("destination: %s", err);
    g_assert_nonnull(strstr(err, "load of migration failed"));
    g_assert_nonnull(strstr(err, want));
    close(mfd);
    close(cfd);
    gwt_free(dst);
}

/* What a destination refuses on a channel, with a clear error. */
static void test_multifd_bad_packets(void)
{
    uint8_t pkt[320 + 8] = {0};

    /* initial packet of another version */
    bad_channel_case(NULL, 0, "multifd: received packet version 7", false);
    /* a packet with the wrong magic */
    put32(pkt, 0xdeadbeef);
    bad_channel_case(pkt, 320, "received packet magic deadbeef", true);
    /* more pages than a packet holds */
    put32(pkt, 0x11223344);
    put32(pkt + 4, 1);
    put32(pkt + 12, 4096);
    bad_channel_case(pkt, 320, "received packet with 4096 pages", true);
    /* another compression than ours */
    put32(pkt + 8, 2 << 1);
    put32(pkt + 12, 128);
    bad_channel_case(pkt, 320, "multifd: packet flags 0x4, expected 0x0", true);
    /* a block we don't have (one page, at offset 0) */
    put32(pkt + 8, 0);
    put32(pkt + 16, 1);
    put32(pkt + 20, 4096);
    memcpy(pkt + 64, "nvram", 6);
    bad_channel_case(pkt, sizeof(pkt), "multifd: unknown ram block nvram",
                     true);
}

static const MultifdCase cases[] = {
    {"/migration/multifd/tcp/none/1", 1, "none", "tcp:127.0.0.1:0"},
    {"/migration/multifd/tcp/none/2", 2, "none", "tcp:127.0.0.1:0"},
    {"/migration/multifd/tcp/none/4", 4, "none", "tcp:127.0.0.1:0"},
    {"/migration/multifd/unix/none/2", 2, "none", "unix:%d/mf.sock"},
    {"/migration/multifd/tcp/zlib/1", 1, "zlib", "tcp:127.0.0.1:0"},
    {"/migration/multifd/tcp/zlib/2", 2, "zlib", "tcp:127.0.0.1:0"},
    {"/migration/multifd/tcp/zlib/4", 4, "zlib", "tcp:127.0.0.1:0"},
    {"/migration/multifd/tcp/zstd/1", 1, "zstd", "tcp:127.0.0.1:0"},
    {"/migration/multifd/tcp/zstd/2", 2, "zstd", "tcp:127.0.0.1:0"},
    {"/migration/multifd/tcp/zstd/4", 4, "zstd", "tcp:127.0.0.1:0"},
    {"/migration/multifd/tcp/lz4/1", 1, "lz4", "tcp:127.0.0.1:0"},
    {"/migration/multifd/tcp/lz4/2", 2, "lz4", "tcp:127.0.0.1:0"},
    {"/migration/multifd/unix/lz4/4", 4, "lz4", "unix:%d/mf.sock"},
    {"/migration/multifd/tcp/zero-copy/2", 2, "none", "tcp:127.0.0.1:0", true},
    {"/migration/multifd/tcp/zero-copy/4", 4, "none", "tcp:127.0.0.1:0", true},
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    /*
     * scripts/check's second pass (tcg where KVM exists) is there for the
     * accelerator: the methods are covered with 2 channels; the channel
     * counts already ran in the first pass.
     */
    bool second = gwt_second_pass();
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        if (!second || cases[i].channels == 2) {
            g_test_add_data_func(cases[i].path, &cases[i], test_multifd);
        }
    }
    g_test_add_func("/migration/multifd/channel-killed",
                    test_multifd_channel_killed);
    g_test_add_func("/migration/multifd/refused", test_multifd_refused);
    g_test_add_func("/migration/multifd/zero-copy-refused",
                    test_zero_copy_refused);
    g_test_add_func("/migration/multifd/bad-packets", test_multifd_bad_packets);
    return g_test_run();
}
