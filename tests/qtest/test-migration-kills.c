/*
 * qtest: godwit processes SIGKILLed at random points of a migration
 * (seeded: GODWIT_FAULT_SEED=N reproduces a run): the destination during
 * precopy (the source fails and keeps running; a retry completes), the
 * source during precopy (the destination exits with the reason, its guest
 * never ran) and the source during post-copy (the destination waits in
 * postcopy-paused, its guest never saw a bad page). Split from
 * test-migration-faults.c, whose helpers it shares
 * (migration-faults-helpers.c).
 */
#include <signal.h>
#include <string.h>

#include "migration-faults-helpers.h"

/*
 * Kills per test. scripts/check's second pass (tcg after kvm, on hosts
 * with KVM) runs fewer: the first pass ran them all on the same code.
 */
#define KILLS_DST (gwt_second_pass() ? 3 : 6)
#define KILLS_SRC (gwt_second_pass() ? 2 : 4)
#define KILLS_POSTCOPY (gwt_second_pass() ? 2 : 3)

/* test-migration-faults.c's precopy mode: no capability, no parameter. */
static const FaultMode precopy = {"precopy", {NULL}, NULL, 0, NULL};

/* A random moment within about one migration's time of the last one. */
static int kill_delay(FaultRun *r, int64_t span_ms)
{
    return g_rand_int_range(r->rand, 0, (int)MAX(span_ms, 20) * 6 / 5 + 1);
}

static int64_t last_total_ms(GwProc *p)
{
    g_autoptr(JsonObject) q = mig_query(p);

    return json_object_has_member(q, "total-time")
               ? gwt_get_int(q, "total-time")
               : 200;
}

/*
 * The destination SIGKILLed at random moments of precopy: the source
 * fails, keeps running; a retry to a fresh destination completes (hashes
 * equal, verify ok). Migrations are slowed to 32 MiB/s to be worth
 * aiming at.
 */
static void test_kill_destination(void)
{
    FaultRun r = {.m = &precopy};
    int64_t span_ms;
    int kills = 0, late = 0;

    r.rand = mig_fault_rand("faults/kill/destination");
    r.mp = mig_pair_start(MEM, "verify", APPEND, NULL);
    mig_set_speed(r.mp->src, 0, 300);
    retry(&r);
    while (kills < KILLS_DST) {
        g_autofree char *sock = NULL;
        mig_set_speed(r.mp->src, 32 << 20, 300);
        span_ms = last_total_ms(r.mp->src);
        GwProc *dst = dst_start(&r, false, &sock);
        int delay = kill_delay(&r, span_ms);

        migrate_to(r.mp->src, sock);
        gwt_sleep_ms(delay);
        g_autofree char *before = mig_status(r.mp->src);
        gwt_kill(dst);
        g_autofree char *st = mig_wait_end(r.mp->src, END_TIMEOUT);
        g_test_message("destination killed %d ms in (%s): source %s", delay,
                       before, st);
        if (!strcmp(st, "completed")) {
            /* it had the guest already: the source keeps its copy */
            g_autofree char *run = gwt_status(r.mp->src);
            g_assert_cmpstr(run, ==, "postmigrate");
            gwt_qmp_void(r.mp->src, "{'execute': 'cont'}");
            late++;
        } else {
            check_source_kept(&r, "failed", false, NULL);
            kills++;
        }
        gwt_free(dst);
        mig_set_speed(r.mp->src, 0, 300);
        retry(&r);
    }
    g_test_message("destination killed %d times during the migration, %d "
                   "after it",
                   kills, late);
    g_rand_free(r.rand);
    mig_pair_free(r.mp);
}

/*
 * The source SIGKILLed at random moments of precopy: the destination
 * exits with the reason and never runs the guest.
 */
/*
 * A source seen "active" may complete before the kill lands (the last
 * bytes were on their way): then its destination completes too, which is
 * right. A failed load exits within 3 s; a destination still up then is
 * asked (it refused the connection and waits, or it completed).
 */
static bool dst_completed_anyway(GwProc *dst)
{
    if (gwt_wait_exit(dst, 3000)) {
        return false;
    }
    g_autofree char *st = mig_status(dst);
    if (strcmp(st, "completed")) {
        return false;
    }
    g_test_message("the source completed before the kill landed");
    return true;
}

/*
 * A source killed in "setup" may die before it connects: its destination
 * never sees a peer and waits on, as QEMU's does (nothing to load, nothing
 * to refuse). Told apart from a load that hangs: a peer that connected and
 * died gives an end of stream at once, which fails the load or is refused
 * and logged, within 3 s. Stops such a destination; returns true for it.
 */
static bool dst_never_connected(GwProc *dst)
{
    if (gwt_wait_exit(dst, 3000)) {
        return false;
    }
    g_autofree char *err = gwt_stderr(dst);
    g_autofree char *st = mig_status(dst);
    g_autofree char *run = gwt_status(dst);
    g_autofree char *log = gwt_serial(dst);
    if (strstr(err, "refused the connection from") || strcmp(st, "setup") ||
        strcmp(run, "inmigrate")) {
        return false;
    }
    g_assert_cmpstr(log, ==, "");
    g_test_message("the source died before it connected");
    gwt_kill(dst);
    return true;
}

static void test_kill_source(void)
{
    FaultRun r = {.m = &precopy};
    int64_t span_ms = 200;
    int kills = 0, late = 0, refused = 0, unconnected = 0;

    r.rand = mig_fault_rand("faults/kill/source");
    while (kills < KILLS_SRC) {
        g_autofree char *sock = NULL;
        r.mp = mig_pair_start(MEM, "verify", APPEND, NULL);
        mig_set_speed(r.mp->src, 32 << 20, 300);
        GwProc *dst = dst_start(&r, false, &sock);
        int delay = kill_delay(&r, span_ms);

        migrate_to(r.mp->src, sock);
        gwt_sleep_ms(delay);
        g_autofree char *st = mig_status(r.mp->src);
        if (!strcmp(st, "completed")) {
            span_ms = last_total_ms(r.mp->src);
        }
        gwt_kill(r.mp->src);
        g_test_message("source killed %d ms in (%s)", delay, st);
        if (!strcmp(st, "completed") || dst_completed_anyway(dst)) {
            g_assert_true(mig_wait_status(dst, "completed", 30000));
            late++;
        } else if (!strcmp(st, "setup") && dst_never_connected(dst)) {
            unconnected++;
        } else {
            refused += check_destination_failed(dst, DST_EITHER);
            kills++;
        }
        gwt_free(dst);
        mig_pair_free(r.mp);
    }
    g_test_message("source killed %d times during the migration (%d before "
                   "its first bytes), %d before it connected, %d after it",
                   kills, refused, unconnected, late);
    g_rand_free(r.rand);
}

/*
 * The source SIGKILLed at random moments of post-copy: the destination,
 * which has the guest, goes postcopy-paused and waits (alive, answering)
 * for a source that could resume it; its guest never saw a bad page.
 */
static void test_kill_source_postcopy(void)
{
    static const FaultMode pc = {"postcopy", {"postcopy-ram"}, NULL, 0, NULL};
    FaultRun r = {.m = &pc};
    int kills = 0;

    r.rand = mig_fault_rand("faults/kill/source-postcopy");
    for (int n = 0; kills < KILLS_POSTCOPY; n++) {
        g_autofree char *sock = NULL;
        /* 8 MiB the guest checks once there, asking for every page */
        r.mp = mig_pair_start(MEM, "verify", "vm=1 vm-bytes=8M rate=8M", NULL);
        mode_setup(&pc, r.mp->src);
        GwProc *dst = dst_start(&r, false, &sock);
        /* it has them all within ~0.1 s (kvm) or more (tcg) */
        int delay = g_rand_int_range(r.rand, 0, 60);

        g_assert_cmpint(n, <, 6 * KILLS_POSTCOPY);
        /* (almost) nothing goes before the switch */
        mig_set_speed(r.mp->src, 1 << 20, 300);
        set_postcopy_bandwidth(r.mp->src, 1 << 20);
        migrate_to(r.mp->src, sock);
        gwt_qmp_void(r.mp->src, "{'execute': 'migrate-start-postcopy'}");
        g_free(wait_status_in(dst, "postcopy-active|completed", 30000));
        gwt_sleep_ms(delay);
        g_autofree char *before = mig_status(r.mp->src);
        gwt_kill(r.mp->src);
        g_test_message("source killed %d ms into post-copy (%s)", delay,
                       before);
        if (!strcmp(before, "completed")) {
            g_assert_true(mig_wait_status(dst, "completed", 30000));
        } else {
            g_free(wait_status_in(dst, "postcopy-paused|completed", 30000));
            gwt_sleep_ms(200);
            g_autofree char *st = mig_status(dst);
            g_test_message("destination: %s", st);
            /* it may have had every page already */
            if (!strcmp(st, "postcopy-paused")) {
                kills++;
            }
        }
        g_assert_cmpint(gwt_serial_count(dst, "FAILED"), ==, 0);
        gwt_free(dst);
        mig_pair_free(r.mp);
    }
    g_rand_free(r.rand);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* a godwit that dies mid-test fails the QMP write with a message */
    signal(SIGPIPE, SIG_IGN);
    g_test_message("accelerator: %s", gwt_accel());
    g_test_add_func("/migration/faults/kill/destination",
                    test_kill_destination);
    g_test_add_func("/migration/faults/kill/source", test_kill_source);
    g_test_add_func("/migration/faults/kill/source-postcopy",
                    test_kill_source_postcopy);
    return g_test_run();
}
