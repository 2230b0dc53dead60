/*
 * qtest: migration over TLS (tls-creds, tls-hostname, tls-authz), after
 * QEMU's own TLS migration tests, and the incoming listener's defences.
 *
 * Each successful case ends with RAM hashes equal and the verify guest
 * agreeing; each refused one with the source still running, the reason
 * in its error, and the destination still waiting for a real source (the
 * x509 case runs its refusals against one destination, then succeeds).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "migration-helpers.h"
#include "tls-certs.h"
#include <glib/gstdio.h>

#define APPEND "vm=1 vm-bytes=16M"
#define MEM "64M"
#define MIG_TIMEOUT 60000

static char *tls_dir; /* credentials for every case, made once */

static char *cred_dir(const char *name)
{
    return g_build_filename(tls_dir, name, NULL);
}

/* object-add of tls-creds-TYPE `id` from cred_dir(`sub`). */
static void creds_add(GwProc *p, const char *type, const char *id,
                      const char *sub, const char *endpoint)
{
    g_autofree char *dir = cred_dir(sub);

    gwt_qmp_void(p,
                 "{'execute': 'object-add', 'arguments': {'qom-type': "
                 "'tls-creds-%s', 'id': '%s', 'dir': '%s', 'endpoint': "
                 "'%s'}}",
                 type, id, dir, endpoint);
}

static void set_param(GwProc *p, const char *name, const char *value)
{
    gwt_qmp_void(p,
                 "{'execute': 'migrate-set-parameters', 'arguments': "
                 "{'%s': '%s'}}",
                 name, value);
}

static void incoming(GwProc *dst, const char *uri)
{
    gwt_qmp_void(dst,
                 "{'execute': 'migrate-incoming', 'arguments': "
                 "{'uri': '%s'}}",
                 uri);
}

/* A pair, destination deferred; `listen` ("%d" = temp dir) started later. */
static MigPair *pair_defer(void)
{
    return mig_pair_start(MEM, "verify", APPEND, "defer");
}

static char *start_incoming(MigPair *mp, const char *listen)
{
    g_auto(GStrv) parts = g_strsplit(listen, "%d", -1);
    g_autofree char *l = g_strjoinv(mp->dir, parts);

    incoming(mp->dst, l);
    return mig_connect_uri(mp, l);
}

static void migrate_ok(MigPair *mp, const char *uri)
{
    g_autofree char *st = NULL;

    mig_set_speed(mp->src, 0, 300);
    st = mig_migrate_wait(mp->src, uri, MIG_TIMEOUT);
    if (strcmp(st, "completed")) {
        g_autoptr(JsonObject) q = mig_query(mp->src);
        g_error("migration %s: %s", st,
                json_object_has_member(q, "error-desc")
                    ? gwt_get_str(q, "error-desc")
                    : "?");
    }
    mig_check_destination(mp, true);
}

/* The source runs on, and its guest with it (its RAM keeps changing). */
static void source_alive(GwProc *src)
{
    g_autofree char *st = gwt_status(src);
    g_autofree char *h1 = mig_ram_hash(src);

    g_assert_cmpstr(st, ==, "running");
    for (int i = 0; i < 100; i++) {
        g_autofree char *h2 = NULL;
        gwt_sleep_ms(50);
        h2 = mig_ram_hash(src);
        if (strcmp(h1, h2)) {
            return;
        }
    }
    g_error("the source guest makes no progress after the failure");
}

/* The migration fails with `needle` in the source's error; it runs on. */
static void migrate_refused(MigPair *mp, const char *uri, const char *needle)
{
    g_autofree char *st = mig_migrate_wait(mp->src, uri, MIG_TIMEOUT);
    g_autoptr(JsonObject) q = mig_query(mp->src);
    const char *err = json_object_has_member(q, "error-desc")
                          ? gwt_get_str(q, "error-desc")
                          : "";

    g_test_message("source: %s: %s", st, err);
    g_assert_cmpstr(st, ==, "failed");
    if (needle && !strstr(err, needle)) {
        g_error("source error '%s' lacks '%s'", err, needle);
    }
    source_alive(mp->src);
}

/* The destination logged the refusal, with the peer and `needle`. */
static void dst_logged(MigPair *mp, const char *needle)
{
    g_autofree char *log = NULL;

    for (int i = 0; i < 200; i++) {
        g_free(log);
        log = gwt_stderr(mp->dst);
        if (strstr(log, needle)) {
            break;
        }
        gwt_sleep_ms(25);
    }
    if (!strstr(log, needle) ||
        !strstr(log, "incoming migration: refused the connection from")) {
        g_error("destination log lacks '%s':\n%s", needle, log);
    }
}

static int tcp_connect(const char *uri)
{
    const char *colon = strrchr(uri, ':');
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(atoi(colon + 1))};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/*
 * PSK. The matching case first has a peer connect and stay silent: the
 * destination drops it after the handshake timeout (500 ms here) and
 * still takes the source; once the source is in, a second connection is
 * refused.
 */
static void test_psk(gconstpointer data)
{
    bool match = GPOINTER_TO_INT(data);
    MigPair *mp;
    g_autofree char *uri = NULL;
    int stall = -1;

    g_setenv("GODWIT_MIGRATION_HANDSHAKE_TIMEOUT_MS", "500", TRUE);
    mp = pair_defer();
    g_unsetenv("GODWIT_MIGRATION_HANDSHAKE_TIMEOUT_MS");
    creds_add(mp->dst, "psk", "tls0", "psk", "server");
    creds_add(mp->src, "psk", "tls0", match ? "psk" : "psk-bad", "client");
    set_param(mp->dst, "tls-creds", "tls0");
    set_param(mp->src, "tls-creds", "tls0");
    uri = start_incoming(mp, "tcp:127.0.0.1:0");
    if (match) {
        stall = tcp_connect(uri);
        g_assert_cmpint(stall, >=, 0);
        dst_logged(mp, "TLS handshake timed out after 500 ms");
        migrate_ok(mp, uri);
        g_assert_cmpint(tcp_connect(uri), ==, -ECONNREFUSED);
        close(stall);
    } else {
        migrate_refused(mp, uri, "TLS handshake failed");
        dst_logged(mp, "TLS handshake failed");
    }
    mig_pair_free(mp);
}

/*
 * One x509 destination (verify-peer, tls-authz) refuses a hostile client,
 * a client without certificate, a source that expects another host name
 * and an identity its authz denies, then takes the friendly client
 * (default host name: the URI's 127.0.0.1, in the certificate).
 */
static void test_x509(void)
{
    MigPair *mp = pair_defer();
    g_autofree char *uri = NULL;

    creds_add(mp->dst, "x509", "tls0", "server", "server");
    creds_add(mp->src, "x509", "friendly", "client", "client");
    creds_add(mp->src, "x509", "hostile", "hostile", "client");
    creds_add(mp->src, "x509", "anon", "anon", "client");
    gwt_qmp_void(mp->dst, "{'execute': 'object-add', 'arguments': "
                          "{'qom-type': 'authz-simple', 'id': 'deny0', "
                          "'identity': 'CN=someone.else'}}");
    gwt_qmp_void(mp->dst,
                 "{'execute': 'object-add', 'arguments': {'qom-type': "
                 "'authz-list', 'id': 'allow0', 'policy': 'deny', 'rules': "
                 "[{'match': 'O=Elsewhere*', 'policy': 'deny', 'format': "
                 "'glob'}, {'match': '*CN=client.test*', 'policy': 'allow', "
                 "'format': 'glob'}]}}");
    set_param(mp->dst, "tls-creds", "tls0");
    set_param(mp->dst, "tls-authz", "deny0");
    uri = start_incoming(mp, "tcp:127.0.0.1:0");

    set_param(mp->src, "tls-creds", "hostile");
    migrate_refused(mp, uri, NULL);
    dst_logged(mp, "The certificate is not trusted");

    set_param(mp->src, "tls-creds", "anon");
    migrate_refused(mp, uri, NULL);
    dst_logged(mp, "No certificate was found");

    set_param(mp->src, "tls-creds", "friendly");
    set_param(mp->src, "tls-hostname", "wrong.example");
    migrate_refused(mp, uri,
                    "Certificate does not match the hostname wrong.example");

    set_param(mp->src, "tls-hostname", "");
    migrate_refused(mp, uri, NULL);
    dst_logged(mp, "is denied");

    set_param(mp->dst, "tls-authz", "allow0");
    migrate_ok(mp, uri);
    mig_pair_free(mp);
}

/*
 * unix: has no host name: x509 needs tls-hostname (refused without),
 * which overrides. The destination's objects come from -object.
 */
static void test_x509_override_host(void)
{
    MigPair *mp = g_new0(MigPair, 1);
    g_autofree char *elf = gwt_payload("verify");
    g_autofree char *srv = cred_dir("server");
    g_autofree char *sock = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *err = NULL;

    mp->dir = g_dir_make_tmp("gwtls-XXXXXX", NULL);
    sock = mig_path(mp, "mig.sock");
    uri = g_strdup_printf("unix:%s", sock);
    mp->dst = gwt_start("dst",
                        "-m %s -S -object tls-creds-x509,id=tls0,dir=%s,"
                        "endpoint=server,verify-peer=on -incoming defer",
                        MEM, srv);
    mp->src =
        gwt_start("src", "-m %s -kernel %s -append '%s'", MEM, elf, APPEND);
    g_assert_true(gwt_wait_serial(mp->src, "READY", 60000));
    creds_add(mp->src, "x509", "tls0", "client", "client");
    set_param(mp->dst, "tls-creds", "tls0");
    set_param(mp->src, "tls-creds", "tls0");
    incoming(mp->dst, uri);
    err = gwt_qmp_err(mp->src,
                      "{'execute': 'migrate', 'arguments': "
                      "{'uri': '%s'}}",
                      uri);
    g_assert_nonnull(strstr(err, "No hostname available for TLS"));
    /* HMP's object_add / object_del, and an object in use stays */
    g_autofree char *out =
        gwt_hmp(mp->src, "object_add authz-simple,id=a1,identity=CN=x,,O=y");
    g_assert_cmpstr(out, ==, "");
    g_free(out);
    out = gwt_hmp(mp->src, "object_add authz-simple,id=a1,identity=z");
    g_assert_nonnull(strstr(out, "an object with id 'a1' already exists"));
    g_free(out);
    out = gwt_hmp(mp->src, "object_del a1");
    g_assert_cmpstr(out, ==, "");
    g_free(err);
    err = gwt_qmp_err(mp->src, "{'execute': 'object-add', 'arguments': "
                               "{'qom-type': 'tls-creds-psk', 'id': 'p', "
                               "'dir': '/nonexistent', 'colour': 'red'}}");
    g_assert_nonnull(strstr(err, "Property 'tls-creds-psk.colour' not found"));
    set_param(mp->src, "tls-hostname", "localhost");
    migrate_ok(mp, uri);
    mig_pair_free(mp);
}

static void test_multifd(void)
{
    MigPair *mp = pair_defer();
    GwProc *both[] = {mp->src, mp->dst};
    g_autofree char *uri = NULL;

    creds_add(mp->dst, "psk", "tls0", "psk", "server");
    creds_add(mp->src, "psk", "tls0", "psk", "client");
    for (int i = 0; i < 2; i++) {
        mig_set_cap(both[i], "multifd", true);
        gwt_qmp_void(both[i], "{'execute': 'migrate-set-parameters', "
                              "'arguments': {'multifd-channels': 2, "
                              "'tls-creds': 'tls0'}}");
    }
    uri = start_incoming(mp, "tcp:127.0.0.1:0");
    migrate_ok(mp, uri);
    g_autoptr(JsonObject) q = mig_query(mp->src);
    g_assert_cmpint(gwt_get_int(gwt_get_obj(q, "ram"), "multifd-bytes"), >, 0);
    mig_pair_free(mp);
}

/* Post-copy with its preempt connection, all three connections in TLS. */
static void test_postcopy_preempt(void)
{
    MigPair *mp = pair_defer();
    GwProc *both[] = {mp->src, mp->dst};
    g_autofree char *uri = NULL;
    g_autofree char *st = NULL;
    g_autofree char *sock = mig_path(mp, "pc.sock");

    creds_add(mp->dst, "psk", "tls0", "psk", "server");
    creds_add(mp->src, "psk", "tls0", "psk", "client");
    for (int i = 0; i < 2; i++) {
        mig_set_cap(both[i], "postcopy-ram", true);
        mig_set_cap(both[i], "postcopy-preempt", true);
        set_param(both[i], "tls-creds", "tls0");
    }
    uri = g_strdup_printf("unix:%s", sock);
    incoming(mp->dst, uri);
    mig_set_speed(mp->src, 32 << 20, 1);
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': "
                 "{'uri': '%s'}}",
                 uri);
    g_assert_true(mig_wait_status(mp->src, "active", 30000));
    gwt_qmp_void(mp->src, "{'execute': 'migrate-start-postcopy'}");
    for (int i = 0; i < MIG_TIMEOUT / 20; i++) {
        g_free(st);
        st = mig_status(mp->src);
        if (!strcmp(st, "completed") || !strcmp(st, "failed")) {
            break;
        }
        gwt_sleep_ms(20);
    }
    g_assert_cmpstr(st, ==, "completed");
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

/*
 * Without TLS: a peer that speaks another protocol is dropped, one that
 * connects and says nothing is dropped after the timeout (500 ms here);
 * the source that comes next migrates; then a further connection is
 * refused.
 */
static void test_stalled_peer(void)
{
    MigPair *mp;
    g_autofree char *uri = NULL;
    int stall, stray;

    g_setenv("GODWIT_MIGRATION_HANDSHAKE_TIMEOUT_MS", "500", TRUE);
    mp = pair_defer();
    g_unsetenv("GODWIT_MIGRATION_HANDSHAKE_TIMEOUT_MS");
    uri = start_incoming(mp, "tcp:127.0.0.1:0");
    /* a stray client speaking something else is refused at once */
    stray = tcp_connect(uri);
    g_assert_cmpint(stray, >=, 0);
    g_assert_cmpint(write(stray, "GET / HTTP/1.0\r\n\r\n", 18), ==, 18);
    dst_logged(mp, "not a migration stream (first bytes 0x47455420)");
    close(stray);
    stall = tcp_connect(uri);
    g_assert_cmpint(stall, >=, 0);
    dst_logged(mp, "the peer sent nothing within 500 ms");
    migrate_ok(mp, uri);
    g_assert_cmpint(tcp_connect(uri), ==, -ECONNREFUSED);
    close(stall);
    mig_pair_free(mp);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    tls_dir = g_dir_make_tmp("gwtls-creds-XXXXXX", NULL);
    g_assert_nonnull(tls_dir);
    tls_test_x509_setup(tls_dir);
    {
        g_autofree char *psk = cred_dir("psk");
        g_autofree char *bad = cred_dir("psk-bad");
        tls_test_psk_setup(psk, 1);
        tls_test_psk_setup(bad, 2);
    }
    g_test_add_data_func("/migration/tls/psk/match-after-stalled-peer",
                         GINT_TO_POINTER(1), test_psk);
    /* credentials and refusals do not depend on the accelerator */
    if (!gwt_second_pass()) {
        g_test_add_data_func("/migration/tls/psk/mismatch", GINT_TO_POINTER(0),
                             test_psk);
        g_test_add_func("/migration/tls/x509/refusals-then-default-host",
                        test_x509);
        g_test_add_func("/migration/tls/x509/override-host",
                        test_x509_override_host);
    }
    g_test_add_func("/migration/tls/multifd", test_multifd);
    g_test_add_func("/migration/tls/postcopy-preempt", test_postcopy_preempt);
    if (!gwt_second_pass()) {
        g_test_add_func("/migration/incoming/stray-and-stalled-peers",
                        test_stalled_peer);
    }
    ret = g_test_run();
    tls_test_cleanup(tls_dir);
    g_rmdir(tls_dir);
    g_free(tls_dir);
    return ret;
}
