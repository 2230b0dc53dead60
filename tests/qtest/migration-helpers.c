/*
 * Helpers for migration qtests (see migration-helpers.h).
 */
#include <string.h>
#include <unistd.h>

#include "migration-helpers.h"

char *mig_path(MigPair *mp, const char *name)
{
    return g_build_filename(mp->dir, name, NULL);
}

static char *expand(MigPair *mp, const char *s)
{
    g_auto(GStrv) parts = g_strsplit(s, "%d", -1);

    return g_strjoinv(mp->dir, parts);
}

MigPair *mig_pair_start(const char *mem, const char *payload,
                        const char *append, const char *listen)
{
    MigPair *mp = g_new0(MigPair, 1);
    g_autofree char *elf = gwt_payload(payload);

    mp->dir = g_dir_make_tmp("gwmig-XXXXXX", NULL);
    g_assert_nonnull(mp->dir);
    if (listen) {
        g_autofree char *l = expand(mp, listen);
        mp->dst = gwt_start("dst", "-m %s -S -incoming '%s'", mem, l);
    }
    mp->src =
        gwt_start("src", "-m %s -kernel %s -append '%s'", mem, elf, append);
    if (!gwt_wait_serial(mp->src, "READY", 60000)) {
        g_autofree char *log = gwt_serial(mp->src);
        g_error("source never became READY:\n%s", log);
    }
    return mp;
}

void mig_pair_free(MigPair *mp)
{
    g_autoptr(GDir) d = NULL;
    const char *name;

    gwt_free(mp->src);
    gwt_free(mp->dst);
    d = g_dir_open(mp->dir, 0, NULL);
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(mp->dir, name, NULL);
        unlink(p);
    }
    rmdir(mp->dir);
    g_free(mp->dir);
    g_free(mp->uri);
    g_free(mp);
}

void mig_set_speed(GwProc *p, uint64_t max_bandwidth, uint64_t downtime_ms)
{
    gwt_qmp_void(p,
                 "{'execute': 'migrate-set-parameters', 'arguments': "
                 "{'max-bandwidth': %" G_GUINT64_FORMAT
                 ", 'downtime-limit': %" G_GUINT64_FORMAT "}}",
                 max_bandwidth, downtime_ms);
}

void mig_set_cap(GwProc *p, const char *cap, bool on)
{
    gwt_qmp_void(p,
                 "{'execute': 'migrate-set-capabilities', 'arguments': "
                 "{'capabilities': [{'capability': '%s', 'state': %s}]}}",
                 cap, on ? "true" : "false");
}

JsonObject *mig_query(GwProc *p)
{
    JsonNode *r = gwt_qmp_ok(p, "{'execute': 'query-migrate'}");
    JsonObject *o = json_object_ref(json_node_get_object(r));

    json_node_unref(r);
    return o;
}

char *mig_status(GwProc *p)
{
    g_autoptr(JsonObject) o = mig_query(p);

    return json_object_has_member(o, "status")
               ? g_strdup(gwt_get_str(o, "status"))
               : g_strdup("none");
}

char *mig_connect_uri(MigPair *mp, const char *uri)
{
    g_autofree char *u = expand(mp, uri);

    if (g_str_has_prefix(u, "tcp:") && g_str_has_suffix(u, ":0")) {
        g_autoptr(JsonObject) q = mig_query(mp->dst);
        JsonArray *a = json_object_get_array_member(q, "socket-address");
        JsonObject *sa = json_array_get_object_element(a, 0);
        const char *host = gwt_get_str(sa, "host");
        return g_strdup_printf(strchr(host, ':') ? "tcp:[%s]:%s" : "tcp:%s:%s",
                               host, gwt_get_str(sa, "port"));
    }
    return g_steal_pointer(&u);
}

bool mig_wait_status(GwProc *p, const char *status, int timeout_ms)
{
    int64_t end = gwt_now_ms() + timeout_ms;

    do {
        g_autofree char *st = mig_status(p);
        if (!strcmp(st, status)) {
            return true;
        }
        gwt_sleep_ms(10);
    } while (gwt_now_ms() < end);
    return false;
}

char *mig_wait_end(GwProc *src, int timeout_ms)
{
    int64_t end = gwt_now_ms() + timeout_ms;

    for (;;) {
        char *st = mig_status(src);
        if (!strcmp(st, "completed") || !strcmp(st, "failed") ||
            !strcmp(st, "cancelled")) {
            return st;
        }
        if (gwt_now_ms() > end) {
            g_error("migration still %s after %d ms", st, timeout_ms);
        }
        g_free(st);
        gwt_sleep_ms(5);
    }
}

char *mig_migrate_wait(GwProc *src, const char *uri, int timeout_ms)
{
    gwt_qmp_void(src, "{'execute': 'migrate', 'arguments': {'uri': '%s'}}",
                 uri);
    return mig_wait_end(src, timeout_ms);
}

char *mig_ram_hash(GwProc *p)
{
    g_autoptr(JsonNode) r = gwt_qmp_ok(p, "{'execute': 'x-query-ram-hash'}");
    JsonObject *o = json_array_get_object_element(json_node_get_array(r), 0);

    g_assert_cmpstr(gwt_get_str(o, "block"), ==, "pc.ram");
    return g_strdup(gwt_get_str(o, "sha256"));
}

void mig_check_destination(MigPair *mp, bool verify_payload)
{
    g_autofree char *s1 = gwt_status(mp->src);
    g_autofree char *h1 = NULL, *h2 = NULL, *d1 = NULL, *d2 = NULL;

    g_assert_cmpstr(s1, ==, "postmigrate");
    g_assert_true(mig_wait_status(mp->dst, "completed", 30000));
    /* the destination was started with -S: it waits, paused */
    for (int i = 0; i < 500; i++) {
        g_free(d1);
        d1 = gwt_status(mp->dst);
        if (!strcmp(d1, "paused")) {
            break;
        }
        gwt_sleep_ms(10);
    }
    g_assert_cmpstr(d1, ==, "paused");
    h1 = mig_ram_hash(mp->src);
    h2 = mig_ram_hash(mp->dst);
    g_test_message("RAM sha256 src %s dst %s", h1, h2);
    g_assert_cmpstr(h1, ==, h2);

    gwt_qmp_void(mp->dst, "{'execute': 'cont'}");
    d2 = gwt_status(mp->dst);
    g_assert_cmpstr(d2, ==, "running");
    if (!verify_payload) {
        return;
    }
    /* verify checks itself after the migration, and again on request */
    g_assert_true(gwt_wait_serial(mp->dst, "verify ok", 30000));
    int n = gwt_serial_count(mp->dst, "verify ok");
    gwt_qmp_void(mp->dst, "{'execute': "
                          "'x-guest-request'}");
    g_assert_true(gwt_wait_serial_count(mp->dst, "verify ok", n + 1, 30000));
    g_assert_cmpint(gwt_serial_count(mp->dst, "FAILED"), ==, 0);
    g_autofree char *log = gwt_serial(mp->dst);
    const char *pause = strstr(log, "pause_ms=");
    if (pause) {
        g_test_message("guest-visible pause: %.*s", (int)strcspn(pause, "\n"),
                       pause);
    }
}

void mig_check_source_alive(GwProc *src, const char *needle)
{
    g_autofree char *st = gwt_status(src);
    int n = gwt_serial_count(src, needle);

    g_assert_cmpstr(st, ==, "running");
    if (!gwt_wait_serial_count(src, needle, n + 3, 30000)) {
        g_autofree char *log = gwt_serial(src);
        g_error("source guest makes no progress after the failure:\n%s", log);
    }
}
