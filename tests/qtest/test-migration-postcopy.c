/*
 * qtest: post-copy migration. The guest switches hosts before its RAM has
 * arrived; the destination pulls the pages its vCPUs touch (userfaultfd)
 * while the source pushes the rest.
 *
 * Proofs: with the destination paused (-S) every page arrives by the
 * background push and the RAM hashes are equal; with it running, the
 * verify guest checks every page it reads while pages arrive on demand
 * (requests counted on the source, blocktime on the destination), and a
 * stress guest that precopy cannot converge completes.
 */
#include <string.h>

#include "libgwtest.h"
#include "mig-proxy.h"
#include "migration-helpers.h"

#define MIG_TIMEOUT 120000

/* postcopy-ram on both sides, plus `extra` capabilities on both. */
static void postcopy_caps(MigPair *mp, const char *extra)
{
    GwProc *both[] = {mp->src, mp->dst};

    for (int i = 0; i < 2; i++) {
        mig_set_cap(both[i], "postcopy-ram", true);
        if (extra) {
            mig_set_cap(both[i], extra, true);
        }
    }
}

/* A pair whose destination listens on a unix socket (paused or not). */
static MigPair *pair_start(const char *mem, const char *payload,
                           const char *append, bool dst_paused, char **uri)
{
    MigPair *mp = g_new0(MigPair, 1);
    g_autofree char *elf = gwt_payload(payload);

    mp->dir = g_dir_make_tmp("gwpc-XXXXXX", NULL);
    g_autofree char *sock = mig_path(mp, "pc.sock");
    *uri = g_strdup_printf("unix:%s", sock);
    mp->dst = gwt_start("dst", "-m %s -smp 2 %s -incoming defer", mem,
                        dst_paused ? "-S" : "");
    mp->src = gwt_start("src", "-m %s -smp 2 -kernel %s -append '%s'", mem, elf,
                        append);
    g_assert_true(gwt_wait_serial(mp->src, "READY", 60000));
    return mp;
}

/* Waits for a MIGRATION event announcing `status` (events capability). */
static bool wait_mig_event(GwProc *p, const char *status, int timeout_ms)
{
    int64_t end = gwt_now_ms() + timeout_ms;

    while (gwt_now_ms() < end) {
        g_autoptr(JsonObject) ev = gwt_wait_event(p, "MIGRATION", 1000);
        if (ev &&
            !strcmp(gwt_get_str(gwt_get_obj(ev, "data"), "status"), status)) {
            return true;
        }
    }
    return false;
}

static void incoming(MigPair *mp, const char *uri)
{
    gwt_qmp_void(mp->dst,
                 "{'execute': 'migrate-incoming', 'arguments': "
                 "{'uri': '%s'}}",
                 uri);
}

/*
 * Right away or after the first precopy pass, destination paused: the
 * background push alone brings every page; hashes equal, verify ok.
 */
static void test_paused(gconstpointer data)
{
    bool after_pass = GPOINTER_TO_INT(data);
    g_autofree char *uri = NULL;
    MigPair *mp = pair_start("128M", "verify", "vm=2 vm-bytes=16M", true, &uri);

    postcopy_caps(mp, NULL);
    mig_set_cap(mp->src, "events", true);
    incoming(mp, uri);
    /* slow enough that precopy is still going when we switch */
    mig_set_speed(mp->src, 32 << 20, 1);
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': "
                 "{'uri': '%s'}}",
                 uri);
    /* pass 1 is the setup's sync; pass 2 ends the first pass over RAM */
    for (int64_t pass = 0; after_pass && pass < 2;) {
        g_autoptr(JsonObject) ev =
            gwt_wait_event(mp->src, "MIGRATION_PASS", 30000);
        g_assert_nonnull(ev);
        pass = gwt_get_int(gwt_get_obj(ev, "data"), "pass");
    }
    gwt_qmp_void(mp->src, "{'execute': 'migrate-start-postcopy'}");
    g_assert_true(mig_wait_status(mp->src, "postcopy-active", 30000));
    g_autofree char *st = mig_wait_end(mp->src, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    g_autoptr(JsonObject) q = mig_query(mp->src);
    JsonObject *ram = gwt_get_obj(q, "ram");
    g_test_message("total %" G_GINT64_FORMAT " ms, downtime %" G_GINT64_FORMAT
                   " ms, postcopy-bytes %" G_GINT64_FORMAT,
                   gwt_get_int(q, "total-time"), gwt_get_int(q, "downtime"),
                   gwt_get_int(ram, "postcopy-bytes"));
    g_assert_cmpint(gwt_get_int(ram, "postcopy-bytes"), >, 0);
    if (after_pass) {
        g_assert_cmpint(gwt_get_int(ram, "precopy-bytes"), >, 0);
    }
    g_assert_true(mig_wait_status(mp->dst, "completed", 30000));
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

/*
 * Destination running: its vCPUs fault on missing pages and get them on
 * request; the verify guest checks all it reads. HMP on both sides.
 */
static void test_running(gconstpointer data)
{
    bool preempt = GPOINTER_TO_INT(data);
    g_autofree char *uri = NULL;
    MigPair *mp =
        pair_start("128M", "verify", "vm=2 vm-bytes=16M", false, &uri);

    postcopy_caps(mp, "postcopy-blocktime");
    if (preempt) {
        postcopy_caps(mp, "postcopy-preempt");
    }
    incoming(mp, uri);
    /* the background push trickles: most pages come on request */
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate-set-parameters', "
                 "'arguments': {'max-postcopy-bandwidth': %d}}",
                 16 << 20);
    g_autofree char *out = gwt_hmp(mp->src, "migrate -d %s", uri);
    g_assert_cmpstr(out, ==, "");
    g_autofree char *out2 = gwt_hmp(mp->src, "migrate_start_postcopy");
    g_assert_cmpstr(out2, ==, "");
    g_assert_true(mig_wait_status(mp->src, "postcopy-active", 30000));
    /* cancelling now would lose the guest */
    g_autofree char *e = gwt_qmp_err(mp->src, "{'execute': 'migrate_cancel'}");
    g_assert_cmpstr(e, ==, "Postcopy migration in progress, cannot cancel.");

    /* the guest runs on the destination meanwhile */
    g_assert_true(gwt_wait_serial(mp->dst, "verify ok", 60000));
    gwt_qmp_void(mp->src, "{'execute': 'migrate-set-parameters', "
                          "'arguments': {'max-postcopy-bandwidth': 0}}");
    g_autofree char *st = mig_wait_end(mp->src, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    g_autoptr(JsonObject) q = mig_query(mp->src);
    int64_t reqs = gwt_get_int(gwt_get_obj(q, "ram"), "postcopy-requests");
    g_test_message("postcopy-requests %" G_GINT64_FORMAT, reqs);
    g_assert_cmpint(reqs, >, 0);
    g_autofree char *info = gwt_hmp(mp->src, "info migrate");
    g_assert_nonnull(strstr(info, "postcopy request count: "));
    g_assert_nonnull(strstr(info, "postcopy ram: "));

    g_assert_true(mig_wait_status(mp->dst, "completed", 30000));
    g_autoptr(JsonObject) dq = mig_query(mp->dst);
    JsonArray *vb = json_object_get_array_member(dq, "postcopy-vcpu-blocktime");
    g_assert_nonnull(vb);
    g_assert_cmpint(json_array_get_length(vb), ==, 2);
    int64_t all = gwt_get_int(dq, "postcopy-blocktime");
    for (guint i = 0; i < 2; i++) {
        int64_t v = json_array_get_int_element(vb, i);
        g_test_message("vcpu %u blocktime %" G_GINT64_FORMAT " ms", i, v);
        /* all-blocked time is within each vCPU's, and both are bounded */
        g_assert_cmpint(all, <=, v);
        g_assert_cmpint(v, <=, gwt_get_int(q, "total-time"));
    }
    /* with preempt, requested pages came on the second connection */
    JsonObject *lat = gwt_get_obj(dq, "x-postcopy-fault-latency");
    g_test_message(
        "faults %" G_GINT64_FORMAT " p50 %" G_GINT64_FORMAT
        " us p99 %" G_GINT64_FORMAT " us, preempt pages %" G_GINT64_FORMAT,
        gwt_get_int(lat, "faults"), gwt_get_int(lat, "p50-us"),
        gwt_get_int(lat, "p99-us"), gwt_get_int(lat, "preempt-pages"));
    if (preempt) {
        g_assert_cmpint(gwt_get_int(lat, "preempt-pages"), >, 0);
    } else {
        g_assert_cmpint(gwt_get_int(lat, "preempt-pages"), ==, 0);
    }
    g_autofree char *dinfo = gwt_hmp(mp->dst, "info migrate");
    g_assert_nonnull(strstr(dinfo, "postcopy vcpu blocktime: ["));
    g_autofree char *run = gwt_status(mp->src);
    g_assert_cmpstr(run, ==, "postmigrate");
    /* the guest checks itself on request too, never fails */
    gwt_qmp_void(mp->dst, "{'execute': 'x-guest-request'}");
    g_assert_true(gwt_wait_serial_count(mp->dst, "verify ok", 2, 30000));
    g_assert_cmpint(gwt_serial_count(mp->dst, "FAILED"), ==, 0);
    mig_pair_free(mp);
}

/*
 * A guest dirtying faster than max-bandwidth: precopy cannot converge
 * (still active after a while); post-copy completes, hashes equal.
 */
static void test_converges(void)
{
    g_autofree char *uri = NULL;
    MigPair *mp = pair_start("512M", "stress", "vm=2 vm-bytes=64M", true, &uri);

    postcopy_caps(mp, NULL);
    incoming(mp, uri);
    mig_set_speed(mp->src, 8 << 20, 100);
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': "
                 "{'uri': '%s'}}",
                 uri);
    gwt_sleep_ms(3000);
    g_autofree char *st0 = mig_status(mp->src);
    g_assert_cmpstr(st0, ==, "active");
    gwt_qmp_void(mp->src, "{'execute': 'migrate-start-postcopy'}");
    g_autofree char *st = mig_wait_end(mp->src, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    g_assert_true(mig_wait_status(mp->dst, "completed", 30000));
    mig_check_destination(mp, false);
    mig_pair_free(mp);
}

/* QEMU's refusals, and a destination without userfaultfd. */
static void test_refused(void)
{
    g_autofree char *elf = gwt_payload("idle");
    GwProc *p = gwt_start("src", "-m 64M -kernel %s", elf);

    g_autofree char *e1 =
        gwt_qmp_err(p, "{'execute': 'migrate-start-postcopy'}");
    g_assert_cmpstr(e1, ==,
                    "Enable postcopy with migrate_set_capability "
                    "before the start of migration");
    mig_set_cap(p, "postcopy-ram", true);
    g_autofree char *e2 =
        gwt_qmp_err(p, "{'execute': 'migrate-start-postcopy'}");
    g_assert_cmpstr(e2, ==,
                    "Postcopy must be started after migration has "
                    "been started");
    g_autofree char *e3 = gwt_qmp_err(
        p, "{'execute': 'migrate-set-capabilities', 'arguments': "
           "{'capabilities': [{'capability': 'multifd', 'state': true}]}}");
    g_assert_cmpstr(e3, ==, "Postcopy is not yet compatible with multifd");
    g_autofree char *e6 = gwt_qmp_err(p, "{'execute': 'migrate-pause'}");
    g_assert_cmpstr(e6, ==,
                    "migrate-pause is currently only supported "
                    "during postcopy-active state");
    g_autofree char *e7 = gwt_qmp_err(
        p, "{'execute': 'migrate-recover', 'arguments': {'uri': 'unix:/x'}}");
    g_assert_cmpstr(e7, ==,
                    "Migrate recover can only be run when postcopy "
                    "is paused.");
    /* exec: has no way back for page requests */
    gwt_qmp_void(p, "{'execute': 'migrate', 'arguments': "
                    "{'uri': 'exec:cat > /dev/null'}}");
    g_autofree char *st = mig_wait_end(p, 30000);
    g_assert_cmpstr(st, ==, "failed");
    g_autoptr(JsonObject) q = mig_query(p);
    const char *e4 = gwt_get_str(q, "error-desc");
    g_test_message("exec: %s", e4);
    g_assert_nonnull(strstr(e4, "return path"));
    g_autofree char *run = gwt_status(p);
    g_assert_cmpstr(run, ==, "running");
    gwt_free(p);

    g_setenv("GODWIT_X_NO_UFFD", "1", TRUE);
    GwProc *d = gwt_start("dst", "-m 64M -incoming defer");
    g_unsetenv("GODWIT_X_NO_UFFD");
    g_autofree char *e5 = gwt_qmp_err(
        d, "{'execute': 'migrate-set-capabilities', 'arguments': "
           "{'capabilities': [{'capability': 'postcopy-ram', 'state': "
           "true}]}}");
    g_test_message("no userfaultfd: %s", e5);
    g_assert_true(g_str_has_prefix(e5, "Postcopy is not supported: "));
    gwt_free(d);
}

/*
 * Recovery: the connection is cut through a proxy at `cuts` points of the
 * post-copy phase; each time both sides go to postcopy-paused keeping
 * everything, migrate-recover and migrate resume=true (through a new
 * proxy) resynchronise, and the migration completes: hashes equal with a
 * paused destination; with a running one, the guest verifies itself.
 */
static void test_recover(gconstpointer data)
{
    int mode = GPOINTER_TO_INT(data);
    bool running = mode & 1, preempt = mode & 2;
    const int cuts = 3;
    g_autofree char *dst_uri = NULL;
    MigPair *mp =
        pair_start("128M", "verify", "vm=2 vm-bytes=16M", !running, &dst_uri);
    MigProxy *proxy;
    char path[64];

    postcopy_caps(mp, preempt ? "postcopy-preempt" : NULL);
    mig_set_cap(mp->src, "events", true);
    mig_set_cap(mp->dst, "events", true);
    incoming(mp, dst_uri);
    /* slow enough that every cut falls inside post-copy */
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate-set-parameters', "
                 "'arguments': {'max-postcopy-bandwidth': %d}}",
                 16 << 20);
    g_snprintf(path, sizeof(path), "proxy0.sock");
    g_autofree char *p0 = mig_path(mp, path);
    proxy = mig_proxy_new(p0, dst_uri + strlen("unix:"));
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': "
                 "{'uri': 'unix:%s'}}",
                 p0);
    gwt_qmp_void(mp->src, "{'execute': 'migrate-start-postcopy'}");
    g_assert_true(wait_mig_event(mp->src, "postcopy-active", 30000));
    g_assert_true(wait_mig_event(mp->dst, "postcopy-active", 30000));
    for (int i = 1; i <= cuts; i++) {
        /* up to 4 MiB further into the post-copy stream each time */
        mig_proxy_cut_at(proxy, mig_proxy_bytes(proxy) +
                                    (uint64_t)g_test_rand_int_range(1, 16) *
                                        (256 << 10));
        g_assert_true(wait_mig_event(mp->src, "postcopy-paused", 30000));
        g_assert_true(wait_mig_event(mp->dst, "postcopy-paused", 30000));
        g_test_message("cut %d after %" G_GUINT64_FORMAT " bytes", i,
                       mig_proxy_bytes(proxy));
        mig_proxy_free(proxy);
        /* nothing is given up: the source stays stopped, not failed */
        g_autofree char *run = gwt_status(mp->src);
        g_assert_cmpstr(run, ==, "finish-migrate");
        g_autofree char *e = gwt_qmp_err(mp->src, "{'execute': "
                                                  "'migrate_cancel'}");
        g_assert_cmpstr(e, ==,
                        "Postcopy migration in progress, cannot "
                        "cancel.");

        g_snprintf(path, sizeof(path), "rec%d.sock", i);
        g_autofree char *rec = mig_path(mp, path);
        g_snprintf(path, sizeof(path), "proxy%d.sock", i);
        g_autofree char *pp = mig_path(mp, path);
        gwt_qmp_void(mp->dst,
                     "{'execute': 'migrate-recover', 'arguments': "
                     "{'uri': 'unix:%s'}}",
                     rec);
        proxy = mig_proxy_new(pp, rec);
        if (i % 2) {
            gwt_qmp_void(mp->src,
                         "{'execute': 'migrate', 'arguments': "
                         "{'uri': 'unix:%s', 'resume': true}}",
                         pp);
        } else {
            g_autofree char *out =
                gwt_hmp(mp->src, "migrate -d -r unix:%s", pp);
            g_assert_cmpstr(out, ==, "");
        }
        /* QEMU's sequence, announced on both sides */
        g_assert_true(wait_mig_event(mp->src, "postcopy-recover", 30000));
        g_assert_true(wait_mig_event(mp->src, "postcopy-active", 30000));
        g_assert_true(wait_mig_event(mp->dst, "postcopy-recover", 30000));
        g_assert_true(wait_mig_event(mp->dst, "postcopy-active", 30000));
    }
    gwt_qmp_void(mp->src, "{'execute': 'migrate-set-parameters', "
                          "'arguments': {'max-postcopy-bandwidth': 0}}");
    g_autofree char *st = mig_wait_end(mp->src, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    g_assert_true(mig_wait_status(mp->dst, "completed", 30000));
    mig_proxy_free(proxy);
    if (running) {
        gwt_qmp_void(mp->dst, "{'execute': 'x-guest-request'}");
        g_assert_true(gwt_wait_serial_count(mp->dst, "verify ok", 2, 30000));
        g_assert_cmpint(gwt_serial_count(mp->dst, "FAILED"), ==, 0);
    } else {
        mig_check_destination(mp, true);
    }
    mig_pair_free(mp);
}

/* populated bytes of the guest's RAM (x-query-ram-hash) */
static int64_t ram_populated(GwProc *p)
{
    JsonNode *r = gwt_qmp_ok(p, "{'execute': 'x-query-ram-hash'}");
    JsonObject *b = json_array_get_object_element(json_node_get_array(r), 0);
    int64_t v = gwt_get_int(b, "populated");

    json_node_unref(r);
    return v;
}

/*
 * release-ram (source only): pages sent in post-copy are given back to
 * the host as they go; the destination's guest has all of them.
 */
static void test_release_ram(void)
{
    g_autofree char *uri = NULL;
    MigPair *mp =
        pair_start("128M", "verify", "vm=2 vm-bytes=16M", false, &uri);

    postcopy_caps(mp, NULL);
    mig_set_cap(mp->src, "release-ram", true);
    incoming(mp, uri);
    /* (almost) nothing goes in precopy: it is never released */
    mig_set_speed(mp->src, 1 << 20, 300);
    int64_t before = ram_populated(mp->src);
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': "
                 "{'uri': '%s'}}",
                 uri);
    gwt_qmp_void(mp->src, "{'execute': 'migrate-start-postcopy'}");
    g_autofree char *st = mig_wait_end(mp->src, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    g_assert_true(mig_wait_status(mp->dst, "completed", 30000));
    int64_t after = ram_populated(mp->src);
    g_test_message("source populated: %" G_GINT64_FORMAT " -> %" G_GINT64_FORMAT
                   " bytes",
                   before, after);
    /* every page sent after the switch was given back */
    g_autoptr(JsonObject) q = mig_query(mp->src);
    int64_t pc = gwt_get_int(gwt_get_obj(q, "ram"), "postcopy-bytes");
    g_test_message("postcopy-bytes %" G_GINT64_FORMAT, pc);
    g_assert_cmpint(before - after, >=, pc * 9 / 10);
    g_assert_cmpint(after, <, before / 4);
    gwt_qmp_void(mp->dst, "{'execute': 'x-guest-request'}");
    g_assert_true(gwt_wait_serial_count(mp->dst, "verify ok", 2, 30000));
    g_assert_cmpint(gwt_serial_count(mp->dst, "FAILED"), ==, 0);
    mig_pair_free(mp);
}

/* The return-path capability alone: precopy ends on the destination's SHUT. */
static void test_return_path(void)
{
    g_autofree char *uri = NULL;
    MigPair *mp = pair_start("128M", "verify", "vm=1 vm-bytes=16M", true, &uri);

    mig_set_cap(mp->src, "return-path", true);
    incoming(mp, uri);
    mig_set_speed(mp->src, 0, 300);
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': "
                 "{'uri': '%s'}}",
                 uri);
    g_autofree char *st = mig_wait_end(mp->src, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    g_test_add_data_func("/migration/postcopy/paused/immediate",
                         GINT_TO_POINTER(0), test_paused);
    g_test_add_data_func("/migration/postcopy/paused/after-precopy-pass",
                         GINT_TO_POINTER(1), test_paused);
    g_test_add_data_func("/migration/postcopy/running", GINT_TO_POINTER(0),
                         test_running);
    g_test_add_data_func("/migration/postcopy/preempt/running",
                         GINT_TO_POINTER(1), test_running);
    g_test_add_func("/migration/postcopy/converges", test_converges);
    g_test_add_func("/migration/postcopy/refused", test_refused);
    g_test_add_func("/migration/postcopy/release-ram", test_release_ram);
    g_test_add_data_func("/migration/postcopy/recover/paused",
                         GINT_TO_POINTER(0), test_recover);
    g_test_add_data_func("/migration/postcopy/recover/running",
                         GINT_TO_POINTER(1), test_recover);
    g_test_add_data_func("/migration/postcopy/preempt/recover",
                         GINT_TO_POINTER(3), test_recover);
    g_test_add_func("/migration/return-path/precopy", test_return_path);
    return g_test_run();
}
