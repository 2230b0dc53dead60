/*
 * qtest: dirty-limit. set/cancel/query-vcpu-dirty-limit over QMP and HMP
 * bring a vCPU's measured dirty rate down to its limit and back; the
 * migration capability dirty-limit converges a guest that dirties memory
 * faster than the link carries it, RAM byte-identical and verified, and
 * leaves no limit of its own behind.
 *
 * dirty-limit needs an accelerator that counts dirty pages per vCPU: tcg
 * does; kvm does only with its dirty ring. Under plain kvm (the default
 * pass where /dev/kvm exists) /dirty-limit/kvm/refused checks the
 * refusal; under `--setup ring` /dirty-limit/kvm-ring/accepted checks the
 * commands go through; in every pass the other cases run their godwits
 * under tcg (`--setup tcg`: everything under tcg).
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "migration-helpers.h"

#define QMP_NO_COUNT                                                           \
    "dirty page limit feature requires KVM with accelerator property "         \
    "'dirty-ring-size' set'"
#define CAP_NO_COUNT                                                           \
    "dirty-limit requires KVM with accelerator property 'dirty-ring-size' set"
#define CONFLICT                                                               \
    "dirty-limit conflicts with auto-converge either of then available "       \
    "currently"

/* query-vcpu-dirty-limit as a new array (unref). */
static JsonArray *limits(GwProc *p)
{
    JsonNode *r = gwt_qmp_ok(p, "{'execute': 'query-vcpu-dirty-limit'}");
    JsonArray *a = json_array_ref(json_node_get_array(r));

    json_node_unref(r);
    return a;
}

/* vCPU `cpu`'s entry: its current rate, or -1 when it has no limit. */
static int64_t current_rate(GwProc *p, int cpu, int64_t *limit)
{
    g_autoptr(JsonArray) a = limits(p);

    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *o = json_array_get_object_element(a, i);
        if (gwt_get_int(o, "cpu-index") == cpu) {
            if (limit) {
                *limit = gwt_get_int(o, "limit-rate");
            }
            return gwt_get_int(o, "current-rate");
        }
    }
    return -1;
}

static void assert_prefix(const char *s, const char *prefix)
{
    if (!g_str_has_prefix(s, prefix)) {
        g_error("'%s' does not start with '%s'", s, prefix);
    }
}

/* kvm without a dirty ring: every way in is refused, the guest runs on. */
static void test_kvm_refused(void)
{
    g_autofree char *elf = gwt_payload("stress");
    const char *old = gwt_set_accel("kvm");
    GwProc *p = gwt_start("src",
                          "-m 128M -kernel %s -append "
                          "'vm=1 vm-bytes=32M'",
                          elf);

    g_assert_true(gwt_wait_serial(p, "READY", 60000));
    g_autofree char *e1 =
        gwt_qmp_err(p, "{'execute': 'set-vcpu-dirty-limit', 'arguments': "
                       "{'dirty-rate': 100}}");
    g_test_message("refusal: %s", e1);
    assert_prefix(e1, QMP_NO_COUNT);
    g_autofree char *e2 =
        gwt_qmp_err(p, "{'execute': 'set-vcpu-dirty-limit', 'arguments': "
                       "{'dirty-rate': 100, 'cpu-index': 0}}");
    assert_prefix(e2, QMP_NO_COUNT);
    g_autofree char *h1 = gwt_hmp(p, "set_vcpu_dirty_limit 100");
    g_assert_nonnull(strstr(h1, QMP_NO_COUNT));
    g_autofree char *e3 = gwt_qmp_err(
        p, "{'execute': 'migrate-set-capabilities', 'arguments': "
           "{'capabilities': [{'capability': 'dirty-limit', 'state': true}]}}");
    g_test_message("capability refusal: %s", e3);
    assert_prefix(e3, CAP_NO_COUNT);
    g_autofree char *h2 = gwt_hmp(p, "migrate_set_capability dirty-limit on");
    g_assert_nonnull(strstr(h2, CAP_NO_COUNT));
    /* cancelling what cannot be set is harmless, as in QEMU */
    gwt_qmp_void(p, "{'execute': 'cancel-vcpu-dirty-limit'}");
    g_autoptr(JsonArray) a = limits(p);
    g_assert_cmpint(json_array_get_length(a), ==, 0);
    g_autofree char *info = gwt_hmp(p, "info vcpu_dirty_limit");
    g_assert_cmpstr(info, ==, "Dirty page limit not enabled!\r\n");
    g_autofree char *caps = gwt_hmp(p, "info migrate_capabilities");
    g_assert_nonnull(strstr(caps, "dirty-limit: off"));
    g_autofree char *st = gwt_status(p);
    g_assert_cmpstr(st, ==, "running");
    gwt_free(p);
    gwt_set_accel(old);
}

/*
 * kvm with its dirty ring (`meson test --setup ring`): the count exists,
 * so a limit is accepted and takes effect (a full-speed writer on each of
 * two vCPUs; vCPU 1 limited to 40 MB/s comes down near it, vCPU 0 is left
 * alone), the capability is accepted, and cancelling lifts the limit.
 */
static void test_kvm_ring_accepted(void)
{
    g_autofree char *elf = gwt_payload("stress");
    GwProc *p = gwt_start("src",
                          "-m 384M -smp 2 -kernel %s -append "
                          "'vm=2 vm-bytes=128M'",
                          elf);
    const int64_t limit = 40;
    int64_t first = -1, lim = 0, last[3] = {-1, -1, -1};

    g_assert_true(gwt_wait_serial(p, "READY", 60000));
    gwt_qmp_void(p,
                 "{'execute': 'set-vcpu-dirty-limit', 'arguments': "
                 "{'dirty-rate': %" G_GINT64_FORMAT ", 'cpu-index': 1}}",
                 limit);
    for (int i = 0; i < 15; i++) {
        gwt_sleep_ms(1000);
        int64_t r = current_rate(p, 1, &lim);
        g_assert_cmpint(lim, ==, limit);
        g_assert_cmpint(current_rate(p, 0, NULL), ==, -1);
        if (i < 3) {
            first = MAX(first, r);
        }
        last[0] = last[1];
        last[1] = last[2];
        last[2] = r;
        g_test_message("vCPU 1: %" G_GINT64_FORMAT " MB/s", r);
        if (i >= 4 && last[0] >= 0 && last[0] <= limit * 3 / 2 &&
            last[1] <= limit * 3 / 2 && last[2] <= limit * 3 / 2) {
            break;
        }
    }
    g_assert_cmpint(first, >, limit * 3 / 2);
    g_assert_cmpint(last[0], <=, limit * 3 / 2);
    g_assert_cmpint(last[1], <=, limit * 3 / 2);
    g_assert_cmpint(last[2], <=, limit * 3 / 2);
    mig_set_cap(p, "dirty-limit", true);
    gwt_qmp_void(p, "{'execute': 'cancel-vcpu-dirty-limit'}");
    g_autofree char *info = gwt_hmp(p, "info vcpu_dirty_limit");
    g_assert_cmpstr(info, ==, "Dirty page limit not enabled!\r\n");
    g_autofree char *st = gwt_status(p);
    g_assert_cmpstr(st, ==, "running");
    gwt_free(p);
}

/*
 * Limits over QMP and HMP on a 2-vCPU guest with a full-speed writer on
 * each vCPU: the limited vCPU's rate comes down to its limit within a
 * few periods; the other is left alone; cancelling lifts them.
 */
static void test_limits(void)
{
    g_autofree char *elf = gwt_payload("stress");
    const char *old = gwt_set_accel("tcg");
    GwProc *p = gwt_start("src",
                          "-m 320M -smp 2 -kernel %s -append "
                          "'vm=2 vm-bytes=128M'",
                          elf);
    const int64_t limit = 60;
    int64_t first = -1, got_limit = 0;
    int64_t last[3] = {-1, -1, -1};

    g_assert_true(gwt_wait_serial(p, "READY", 60000));
    /* bad input: clear errors, nothing changes */
    g_autofree char *e1 =
        gwt_qmp_err(p, "{'execute': 'set-vcpu-dirty-limit', 'arguments': "
                       "{'dirty-rate': 10, 'cpu-index': 2}}");
    g_assert_cmpstr(e1, ==, "incorrect cpu index specified");
    g_autofree char *e2 =
        gwt_qmp_err(p, "{'execute': 'cancel-vcpu-dirty-limit', 'arguments': "
                       "{'cpu-index': -1}}");
    g_assert_cmpstr(e2, ==, "incorrect cpu index specified");
    g_autofree char *e3 =
        gwt_qmp_err(p, "{'execute': 'set-vcpu-dirty-limit', 'arguments': "
                       "{'dirty-rate': 'fast'}}");
    g_assert_nonnull(strstr(e3, "dirty-rate"));
    g_autofree char *e4 =
        gwt_qmp_err(p, "{'execute': 'set-vcpu-dirty-limit', 'arguments': {}}");
    g_assert_cmpstr(e4, ==, "Parameter 'dirty-rate' is missing");
    g_autoptr(JsonArray) none = limits(p);
    g_assert_cmpint(json_array_get_length(none), ==, 0);

    gwt_qmp_void(p,
                 "{'execute': 'set-vcpu-dirty-limit', 'arguments': "
                 "{'dirty-rate': %" G_GINT64_FORMAT ", 'cpu-index': 1}}",
                 limit);
    /* one period at full speed, then down within a few */
    for (int i = 0; i < 20; i++) {
        gwt_sleep_ms(1000);
        int64_t r = current_rate(p, 1, &got_limit);
        g_assert_cmpint(r, >=, 0);
        g_assert_cmpint(got_limit, ==, limit);
        g_assert_cmpint(current_rate(p, 0, NULL), ==, -1);
        if (i < 3) {
            first = MAX(first, r); /* before the throttle bites */
        }
        last[0] = last[1];
        last[1] = last[2];
        last[2] = r;
        g_test_message("vCPU 1: %" G_GINT64_FORMAT " MB/s", r);
        if (i >= 5 && last[0] >= 0 && last[0] <= limit * 3 / 2 &&
            last[1] <= limit * 3 / 2 && last[2] <= limit * 3 / 2) {
            break;
        }
    }
    /* it ran faster than the limit before, and it does not now */
    g_assert_cmpint(first, >, limit * 3 / 2);
    g_assert_cmpint(last[0], <=, limit * 3 / 2);
    g_assert_cmpint(last[1], <=, limit * 3 / 2);
    g_assert_cmpint(last[2], <=, limit * 3 / 2);

    /* HMP: set on vCPU 0 too, show both, cancel one, then all */
    g_autofree char *h1 = gwt_hmp(p, "set_vcpu_dirty_limit 500 0");
    g_assert_cmpstr(h1, ==, "");
    g_autofree char *info = gwt_hmp(p, "info vcpu_dirty_limit");
    g_test_message("%s", info);
    g_assert_true(g_str_has_prefix(info, "vcpu[0], limit rate 500 (MB/s), "
                                         "current rate "));
    g_assert_nonnull(strstr(info, "\r\nvcpu[1], limit rate 60 (MB/s), "
                                  "current rate "));
    g_autofree char *h2 = gwt_hmp(p, "cancel_vcpu_dirty_limit 1");
    g_assert_cmpstr(h2, ==, "");
    g_assert_cmpint(current_rate(p, 1, NULL), ==, -1);
    g_assert_cmpint(current_rate(p, 0, NULL), >=, 0);
    /* a limit of 0 is none, as in QEMU */
    gwt_qmp_void(p, "{'execute': 'set-vcpu-dirty-limit', 'arguments': "
                    "{'dirty-rate': 0, 'cpu-index': 0}}");
    g_assert_cmpint(current_rate(p, 0, NULL), ==, -1);
    gwt_hmp(p, "set_vcpu_dirty_limit 100");
    g_autoptr(JsonArray) both = limits(p);
    g_assert_cmpint(json_array_get_length(both), ==, 2);
    g_autofree char *h3 = gwt_hmp(p, "cancel_vcpu_dirty_limit");
    g_assert_cmpstr(h3, ==, "");
    g_autofree char *info2 = gwt_hmp(p, "info vcpu_dirty_limit");
    g_assert_cmpstr(info2, ==, "Dirty page limit not enabled!\r\n");
    g_autofree char *st = gwt_status(p);
    g_assert_cmpstr(st, ==, "running");
    gwt_free(p);
    gwt_set_accel(old);
}

/*
 * A verify guest rewriting 8 MiB as fast as it can (about 5.7 MB/s under
 * tcg here, 3x the link) behind a 2 MiB/s link: plain precopy re-sends
 * the whole region every pass and never converges; with dirty-limit
 * (vcpu-dirty-limit 1, QEMU's default) the vCPU is limited once
 * auto-converge's trigger fires, and it completes.
 * The limit set by hand before the migration comes back afterwards; the
 * migration's own is gone.
 */
static void test_migration(void)
{
    const char *old = gwt_set_accel("tcg");
    MigPair *mp =
        mig_pair_start("64M", "verify", "vm=1 vm-bytes=8M", "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");
    bool seen = false, refused = false;
    int64_t max_sleep = 0;

    mig_set_speed(mp->src, 2 << 20, 300);
    mig_set_cap(mp->src, "auto-converge", true);
    g_autofree char *e1 = gwt_qmp_err(
        mp->src, "{'execute': 'migrate-set-capabilities', 'arguments': "
                 "{'capabilities': [{'capability': 'dirty-limit', "
                 "'state': true}]}}");
    g_assert_cmpstr(e1, ==, CONFLICT);
    mig_set_cap(mp->src, "auto-converge", false);
    mig_set_cap(mp->src, "dirty-limit", true);
    gwt_qmp_void(mp->src, "{'execute': 'migrate-set-parameters', "
                          "'arguments': {'vcpu-dirty-limit': 1, "
                          "'x-vcpu-dirty-limit-period': 500}}");
    g_autofree char *e2 = gwt_qmp_err(
        mp->src, "{'execute': 'migrate-set-parameters', 'arguments': "
                 "{'x-vcpu-dirty-limit-period': 1001}}");
    g_assert_cmpstr(e2, ==,
                    "Parameter 'x-vcpu-dirty-limit-period' expects "
                    "a value between 1 and 1000");
    g_autofree char *params = gwt_hmp(mp->src, "info migrate_parameters");
    g_assert_nonnull(strstr(params, "x-vcpu-dirty-limit-period: 500 ms\r\n"
                                    "vcpu-dirty-limit: 1 MB/s\r\n"));
    /* a hand-set limit far above the guest's rate: it must survive */
    gwt_qmp_void(mp->src, "{'execute': 'set-vcpu-dirty-limit', "
                          "'arguments': {'dirty-rate': 5000}}");
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': {'uri': "
                 "'%s'}}",
                 uri);
    for (int64_t end = gwt_now_ms() + 120000;;) {
        g_autoptr(JsonObject) q = mig_query(mp->src);
        const char *st = gwt_get_str(q, "status");
        if (!strcmp(st, "completed") || !strcmp(st, "failed")) {
            g_assert_cmpstr(st, ==, "completed");
            break;
        }
        if (json_object_has_member(q, "dirty-limit-throttle-time-per-round")) {
            int64_t s = gwt_get_int(q, "dirty-limit-throttle-time-per-round");
            g_assert_true(
                json_object_has_member(q, "dirty-limit-ring-full-time"));
            g_assert_false(
                json_object_has_member(q, "cpu-throttle-percentage"));
            max_sleep = MAX(max_sleep, s);
            if (!seen && current_rate(mp->src, 0, NULL) >= 0) {
                int64_t lim = 0;
                current_rate(mp->src, 0, &lim);
                seen = lim == 1;
            }
            if (seen && !refused) {
                g_autofree char *info = gwt_hmp(mp->src, "info migrate");
                g_assert_nonnull(strstr(info, "dirty-limit throttle time: "));
                g_assert_nonnull(strstr(info, "dirty-limit ring full time: "));
                g_autofree char *e = gwt_qmp_err(
                    mp->src, "{'execute': 'cancel-vcpu-dirty-limit'}");
                g_assert_cmpstr(e, ==,
                                "can't cancel dirty page rate limit "
                                "while migration is running");
                refused = true;
            }
        }
        g_assert_cmpint(gwt_now_ms(), <, end);
        gwt_sleep_ms(20);
    }
    g_autofree char *info = gwt_hmp(mp->src, "info migrate");
    g_test_message("%s", info);
    g_test_message("dirty-limit: longest sleep per round %" G_GINT64_FORMAT
                   " us",
                   max_sleep);
    /* the migration limited the vCPU to 1 MB/s before it converged */
    g_assert_true(seen);
    g_assert_cmpint(max_sleep, >, 0);
    mig_check_destination(mp, true);
    /* its limit is gone; the hand-set one is back */
    int64_t lim = 0;
    g_assert_cmpint(current_rate(mp->src, 0, &lim), >=, 0);
    g_assert_cmpint(lim, ==, 5000);
    g_autoptr(JsonObject) q = mig_query(mp->src);
    g_assert_false(
        json_object_has_member(q, "dirty-limit-throttle-time-per-round"));
    /* the destination has none */
    g_autoptr(JsonArray) d = limits(mp->dst);
    g_assert_cmpint(json_array_get_length(d), ==, 0);
    mig_pair_free(mp);
    gwt_set_accel(old);
}

/*
 * The per-vCPU count and the migration's dirty log share tcg's tracker:
 * the count re-arms pages (every 20 ms here, and at every pass of the run
 * lock between the two vCPUs) while the log syncs and clears. A 2-vCPU
 * verify guest told to dirty 16 MB/s migrates over a 32 MiB/s link (a few
 * passes) with a limit far above its rate, so nothing is throttled: the
 * RAM must arrive byte-identical and verified.
 */
static void test_count_and_log(void)
{
    const char *old = gwt_set_accel("tcg");
    MigPair *mp =
        mig_pair_start("128M -smp 2", "verify", "vm=2 vm-bytes=16M rate=8M",
                       "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");

    gwt_qmp_void(mp->src, "{'execute': 'migrate-set-parameters', "
                          "'arguments': {'x-vcpu-dirty-limit-period': 20}}");
    gwt_qmp_void(mp->src, "{'execute': 'set-vcpu-dirty-limit', "
                          "'arguments': {'dirty-rate': 100000}}");
    gwt_sleep_ms(500);
    /* both vCPUs dirty and are counted apart */
    g_assert_cmpint(current_rate(mp->src, 0, NULL), >, 0);
    g_assert_cmpint(current_rate(mp->src, 1, NULL), >, 0);
    /*
     * calc-dirty-rate's dirty-ring mode shares the count: each vCPU's
     * worker is told 8M (it reads 9 MiB/s); a count that gave one vCPU's
     * pages to the other would read about 0 and 18.
     */
    gwt_qmp_void(mp->src, "{'execute': 'calc-dirty-rate', 'arguments': "
                          "{'calc-time': 2, 'mode': 'dirty-ring'}}");
    for (int64_t end = gwt_now_ms() + 30000;; gwt_sleep_ms(100)) {
        JsonNode *r = gwt_qmp_ok(mp->src, "{'execute': 'query-dirty-rate'}");
        JsonObject *o = json_node_get_object(r);
        if (!strcmp(gwt_get_str(o, "status"), "measured")) {
            JsonArray *v = json_object_get_array_member(o, "vcpu-dirty-rate");
            g_assert_cmpint(json_array_get_length(v), ==, 2);
            for (guint i = 0; i < 2; i++) {
                int64_t mib = gwt_get_int(json_array_get_object_element(v, i),
                                          "dirty-rate");
                g_test_message("vCPU %u: %" G_GINT64_FORMAT " MiB/s", i, mib);
                g_assert_cmpint(mib, >=, 3);
                g_assert_cmpint(mib, <=, 13);
            }
            json_node_unref(r);
            break;
        }
        json_node_unref(r);
        g_assert_cmpint(gwt_now_ms(), <, end);
    }
    mig_set_speed(mp->src, 32 << 20, 300);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, 120000);
    g_assert_cmpstr(st, ==, "completed");
    g_autoptr(JsonObject) q = mig_query(mp->src);
    int64_t syncs = gwt_get_int(gwt_get_obj(q, "ram"), "dirty-sync-count");
    g_test_message("dirty-sync-count %" G_GINT64_FORMAT, syncs);
    g_assert_cmpint(syncs, >=, 3);
    mig_check_destination(mp, true);
    mig_pair_free(mp);
    gwt_set_accel(old);
}

/*
 * The control: the same guest and link as /dirty-limit/tcg/migration,
 * without dirty-limit, is still copying after several passes. (The guest
 * would have to dirty under ~0.3 MB/s to fit a pass in the downtime.)
 */
static void test_precopy_never_ends(void)
{
    const char *old = gwt_set_accel("tcg");
    MigPair *mp =
        mig_pair_start("64M", "verify", "vm=1 vm-bytes=8M", "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");

    mig_set_speed(mp->src, 2 << 20, 300);
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': {'uri': "
                 "'%s'}}",
                 uri);
    g_assert_true(mig_wait_status(mp->src, "active", 30000));
    int64_t syncs = 0;
    for (int64_t end = gwt_now_ms() + 60000; syncs < 4; gwt_sleep_ms(200)) {
        g_autoptr(JsonObject) q = mig_query(mp->src);
        g_assert_cmpstr(gwt_get_str(q, "status"), ==, "active");
        syncs = gwt_get_int(gwt_get_obj(q, "ram"), "dirty-sync-count");
        g_assert_cmpint(gwt_now_ms(), <, end);
    }
    g_autoptr(JsonObject) q = mig_query(mp->src);
    g_test_message("after %" G_GINT64_FORMAT
                   " syncs: %s, remaining %" G_GINT64_FORMAT " bytes",
                   syncs, gwt_get_str(q, "status"),
                   gwt_get_int(gwt_get_obj(q, "ram"), "remaining"));
    g_assert_cmpstr(gwt_get_str(q, "status"), ==, "active");
    gwt_qmp_void(mp->src, "{'execute': 'migrate_cancel'}");
    g_assert_true(mig_wait_status(mp->src, "cancelled", 30000));
    g_autofree char *st = gwt_status(mp->src);
    g_assert_cmpstr(st, ==, "running");
    mig_pair_free(mp);
    gwt_set_accel(old);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    if (!strcmp(gwt_accel(), "kvm")) {
        g_test_add_func("/dirty-limit/kvm/refused", test_kvm_refused);
    }
    if (g_str_has_prefix(gwt_accel(), "kvm,dirty-ring-size=")) {
        g_test_add_func("/dirty-limit/kvm-ring/accepted",
                        test_kvm_ring_accepted);
    }
    if (gwt_second_pass()) {
        /* scripts/check's tcg pass: the tcg cases ran in the first one */
        return g_test_run();
    }
    g_test_add_func("/dirty-limit/tcg/limits", test_limits);
    g_test_add_func("/dirty-limit/tcg/precopy-never-ends",
                    test_precopy_never_ends);
    g_test_add_func("/dirty-limit/tcg/migration", test_migration);
    g_test_add_func("/dirty-limit/tcg/count-and-log", test_count_and_log);
    return g_test_run();
}
