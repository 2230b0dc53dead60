/*
 * qtest: KVM's dirty ring (-accel kvm,dirty-ring-size=N). Precopy with the
 * ring as the source's dirty log (a ring big enough, and one small enough
 * that a busy guest keeps hitting KVM_EXIT_DIRTY_RING_FULL), proven like
 * every migration test (RAM hashes equal, verify ok); calc-dirty-rate mode
 * dirty-ring against a guest dirtying a known rate per vCPU, also while a
 * migration logs the same pages; and the refusals. Needs /dev/kvm: skips
 * (77) without it.
 */
#include <string.h>

#include "migration-helpers.h"

#define MIG_TIMEOUT 120000
#define VERIFY_APPEND "vm=1 vm-bytes=64M"

typedef struct RingMigCase {
    const char *name;
    uint32_t ring;    /* source's dirty-ring-size */
    bool expect_full; /* the source must have seen RING_FULL exits */
} RingMigCase;

static const char *ring_accel(uint32_t ring)
{
    static char buf[64];

    g_snprintf(buf, sizeof(buf), "kvm,dirty-ring-size=%u", ring);
    return buf;
}

/* Starts a verify source with `ring` and a plain-KVM destination. */
static MigPair *ring_pair_start(uint32_t ring, const char *append)
{
    g_autofree char *elf = gwt_payload("verify");
    MigPair *mp = g_new0(MigPair, 1);

    mp->dir = g_dir_make_tmp("gwring-XXXXXX", NULL);
    g_autofree char *sock = mig_path(mp, "mig.sock");
    mp->dst = gwt_start("dst", "-m 256M -smp 2 -S -incoming 'unix:%s'", sock);
    const char *was = gwt_set_accel(ring_accel(ring));
    mp->src =
        gwt_start("src", "-m 256M -smp 2 -kernel %s -append '%s'", elf, append);
    gwt_set_accel(was);
    g_assert_true(gwt_wait_serial(mp->src, "READY", 60000));
    mp->uri = g_strdup_printf("unix:%s", sock);
    return mp;
}

static void test_migrate(gconstpointer data)
{
    const RingMigCase *c = data;
    MigPair *mp = ring_pair_start(c->ring, "vm=2 vm-bytes=64M");

    mig_set_speed(mp->src, 0, 300);
    g_autofree char *st = mig_migrate_wait(mp->src, mp->uri, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    g_autoptr(JsonObject) q = mig_query(mp->src);
    JsonObject *ram = gwt_get_obj(q, "ram");
    g_test_message("ring %u: %" G_GINT64_FORMAT " syncs, %" G_GINT64_FORMAT
                   " pages sent",
                   c->ring, gwt_get_int(ram, "dirty-sync-count"),
                   gwt_get_int(ram, "normal"));
    /* the guest kept writing: later passes resent what the ring logged */
    g_assert_cmpint(gwt_get_int(ram, "dirty-sync-count"), >=, 2);
    mig_check_destination(mp, true);
    g_autofree char *err = gwt_stderr(mp->src);
    if (c->expect_full) {
        g_assert_nonnull(strstr(err, "KVM dirty ring full"));
    }
    mig_pair_free(mp);
}

/* Polls query-dirty-rate until measured; returns its object (unref). */
static JsonObject *wait_measured(GwProc *p)
{
    for (int64_t end = gwt_now_ms() + 30000;; gwt_sleep_ms(100)) {
        JsonNode *r = gwt_qmp_ok(p, "{'execute': 'query-dirty-rate'}");
        JsonObject *o = json_object_ref(json_node_get_object(r));
        json_node_unref(r);
        if (!strcmp(gwt_get_str(o, "status"), "measured")) {
            return o;
        }
        g_assert_cmpstr(gwt_get_str(o, "status"), ==, "measuring");
        g_assert_cmpint(gwt_now_ms(), <, end);
        json_object_unref(o);
    }
}

/*
 * Two vCPUs, one stress worker each at `rate` MiB/s over a region that
 * takes 8 s per pass: each harvest (one a second) sees distinct pages, so
 * each vCPU's rate is the worker's, within 20 %.
 */
static void test_calc_rate(void)
{
    const int rate = 20;
    g_autofree char *elf = gwt_payload("stress");
    const char *was = gwt_set_accel(ring_accel(4096));
    GwProc *p = gwt_start("rate",
                          "-m 512M -smp 2 -kernel %s -append "
                          "'vm=2 vm-bytes=160M rate=%dM'",
                          elf, rate);
    gwt_set_accel(was);

    g_assert_true(gwt_wait_serial(p, "READY", 60000));
    gwt_sleep_ms(1000);
    gwt_qmp_void(p, "{'execute': 'calc-dirty-rate', 'arguments': "
                    "{'calc-time': 3, 'mode': 'dirty-ring'}}");
    g_autoptr(JsonObject) o = wait_measured(p);
    g_assert_cmpstr(gwt_get_str(o, "mode"), ==, "dirty-ring");
    int64_t sum = gwt_get_int(o, "dirty-rate"), total = 0;
    JsonArray *a = json_object_get_array_member(o, "vcpu-dirty-rate");
    g_assert_nonnull(a);
    g_assert_cmpint(json_array_get_length(a), ==, 2);
    for (guint i = 0; i < 2; i++) {
        JsonObject *v = json_array_get_object_element(a, i);
        int64_t r = gwt_get_int(v, "dirty-rate");
        g_test_message("vcpu %u: %" G_GINT64_FORMAT " MiB/s (guest: %d)", i, r,
                       rate);
        g_assert_cmpint(gwt_get_int(v, "id"), ==, i);
        g_assert_cmpint(r, >=, rate * 80 / 100);
        g_assert_cmpint(r, <=, rate * 120 / 100);
        total += r;
    }
    g_assert_cmpint(sum, ==, total);

    /* HMP: calc_dirty_rate -r, and QEMU's per-vCPU lines */
    g_autofree char *start = gwt_hmp(p, "calc_dirty_rate -r 1");
    g_assert_cmpstr(start, ==, "");
    json_object_unref(wait_measured(p));
    g_autofree char *hmp = gwt_hmp(p, "info dirty_rate");
    g_test_message("%s", hmp);
    g_assert_nonnull(strstr(hmp, "Mode: dirty-ring"));
    g_assert_nonnull(strstr(hmp, "vcpu[0], Dirty rate: "));
    g_assert_nonnull(strstr(hmp, "vcpu[1], Dirty rate: "));
    gwt_free(p);
}

/*
 * Counting and migration's log are independent: a dirty-ring measurement
 * starts before a migration and ends after it started (and the other way
 * round for the second one); the migration is still exact.
 */
static void test_calc_during_migration(void)
{
    MigPair *mp = ring_pair_start(4096, "vm=2 vm-bytes=64M");

    mig_set_speed(mp->src, 64 << 20, 300); /* a few seconds of precopy */
    gwt_qmp_void(mp->src, "{'execute': 'calc-dirty-rate', 'arguments': "
                          "{'calc-time': 1, 'mode': 'dirty-ring'}}");
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': {'uri': "
                 "'%s'}}",
                 mp->uri);
    json_object_unref(wait_measured(mp->src));
    /* a second measurement starts while migrating, may outlive it */
    gwt_qmp_void(mp->src, "{'execute': 'calc-dirty-rate', 'arguments': "
                          "{'calc-time': 2, 'mode': 'dirty-ring'}}");
    mig_set_speed(mp->src, 0, 300);
    g_assert_true(mig_wait_status(mp->src, "completed", MIG_TIMEOUT));
    json_object_unref(wait_measured(mp->src));
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

typedef struct BadRing {
    const char *accel;
    const char *msg;
} BadRing;

/* Sizes KVM cannot take: refused at start with a clear message. */
static void test_bad_sizes(void)
{
    static const BadRing cases[] = {
        {"kvm,dirty-ring-size=1000", "must be a power of two"},
        {"kvm,dirty-ring-size=16", "KVM refused a ring of 256 bytes"},
        {"kvm,dirty-ring-size=2147483648", "too big (maximum is"},
        {"tcg,dirty-ring-size=4096", "property of kvm alone"},
    };
    g_autofree char *elf = gwt_payload("idle");

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *err = NULL;
        int st = gwt_run(&err, "-accel %s -m 64M -kernel %s -display none",
                         cases[i].accel, elf);
        g_test_message("%s -> %d: %s", cases[i].accel, st, err);
        g_assert_cmpint(st, !=, 0);
        g_assert_nonnull(strstr(err, cases[i].msg));
    }
}

/*
 * A kernel without the ring (the capabilities hidden by kvm-cap-shim):
 * dirty-ring-size is refused; and one with only the plain (not _ACQ_REL)
 * ring still migrates exactly with it.
 */
static void test_missing_caps(void)
{
    const char *shim = g_getenv("GWTEST_KVM_CAP_SHIM");
    g_autofree char *elf = gwt_payload("idle");
    g_autofree char *err = NULL;

    if (!shim || !g_file_test(shim, G_FILE_TEST_EXISTS)) {
        g_test_skip("GWTEST_KVM_CAP_SHIM (the LD_PRELOAD shim) is not set");
        return;
    }
    g_setenv("LD_PRELOAD", shim, TRUE);
    g_setenv("GWTEST_HIDE_KVM_CAPS", "192,223", TRUE);
    int st = gwt_run(&err,
                     "-accel kvm,dirty-ring-size=4096 -m 64M -kernel %s "
                     "-display none",
                     elf);
    g_test_message("no ring: %d: %s", st, err);
    g_assert_cmpint(st, !=, 0);
    g_assert_nonnull(strstr(err, "KVM dirty ring not available"));
    /*
     * Only KVM_CAP_DIRTY_LOG_RING: the plain ring is used (and the
     * destination, without a ring, runs under the same shim).
     */
    g_setenv("GWTEST_HIDE_KVM_CAPS", "223", TRUE);
    MigPair *mp = ring_pair_start(1024, "vm=2 vm-bytes=64M");
    g_unsetenv("LD_PRELOAD");
    g_unsetenv("GWTEST_HIDE_KVM_CAPS");
    mig_set_speed(mp->src, 0, 300);
    g_autofree char *s = mig_migrate_wait(mp->src, mp->uri, MIG_TIMEOUT);
    g_assert_cmpstr(s, ==, "completed");
    mig_check_destination(mp, true);
    g_autofree char *log = gwt_stderr(mp->src);
    g_assert_nonnull(strstr(log, "KVM dirty ring full"));
    mig_pair_free(mp);
}

/* Without the ring, dirty-ring mode is refused and the guest runs on. */
static void test_mode_without_ring(void)
{
    g_autofree char *elf = gwt_payload("stress");
    const char *was = gwt_set_accel("kvm");
    GwProc *p = gwt_start("noring",
                          "-m 128M -kernel %s -append "
                          "'vm=1 vm-bytes=16M'",
                          elf);
    gwt_set_accel(was);

    g_assert_true(gwt_wait_serial(p, "READY", 60000));
    g_autofree char *e = gwt_qmp_err(p, "{'execute': 'calc-dirty-rate', "
                                        "'arguments': {'calc-time': 1, "
                                        "'mode': 'dirty-ring'}}");
    g_test_message("%s", e);
    g_assert_nonnull(strstr(e, "mode dirty-ring is not enabled"));
    g_assert_nonnull(strstr(e, "dirty-ring-size=N"));
    g_autofree char *h = gwt_hmp(p, "calc_dirty_rate -r 1");
    g_assert_nonnull(strstr(h, "dirty-ring-size=N"));
    g_autofree char *st = gwt_status(p);
    g_assert_cmpstr(st, ==, "running");
    /* the other modes still work */
    gwt_qmp_void(p, "{'execute': 'calc-dirty-rate', 'arguments': "
                    "{'calc-time': 1, 'mode': 'dirty-bitmap'}}");
    g_autoptr(JsonObject) o = wait_measured(p);
    g_assert_false(json_object_has_member(o, "vcpu-dirty-rate"));
    gwt_free(p);
}

int main(int argc, char **argv)
{
    static const RingMigCase migs[] = {
        {"4096", 4096, false},
        {"1024-ring-full", 1024, true},
    };

    g_test_init(&argc, &argv, NULL);
    gwt_require_kvm();
    if (gwt_second_pass()) {
        /* scripts/check's tcg pass: these are KVM's, they ran already */
        g_printerr("dirty-ring: KVM-only cases, run in the first pass\n");
        return 77;
    }
    /* the source logs its RING_FULL exits with g_debug */
    g_setenv("G_MESSAGES_DEBUG", "all", TRUE);
    for (size_t i = 0; i < G_N_ELEMENTS(migs); i++) {
        g_autofree char *name =
            g_strdup_printf("/dirty-ring/migrate/%s", migs[i].name);
        g_test_add_data_func(name, &migs[i], test_migrate);
    }
    g_test_add_func("/dirty-ring/calc-dirty-rate/per-vcpu", test_calc_rate);
    g_test_add_func("/dirty-ring/calc-dirty-rate/during-migration",
                    test_calc_during_migration);
    g_test_add_func("/dirty-ring/refused/bad-size", test_bad_sizes);
    g_test_add_func("/dirty-ring/refused/missing-caps", test_missing_caps);
    g_test_add_func("/dirty-ring/refused/mode-without-ring",
                    test_mode_without_ring);
    return g_test_run();
}
