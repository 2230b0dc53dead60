/*
 * qtest: migration under faults. A proxy (mig-proxy.c) between source and
 * destination cuts the connection, or stalls it, at random byte offsets of
 * the stream (seeded: GODWIT_FAULT_SEED=N reproduces a run), for precopy,
 * XBZRLE, compress, multifd (one channel cut) and post-copy. (godwit
 * processes SIGKILLed at random points of a migration: see
 * test-migration-kills.c.)
 *
 * What each precopy-family fault must leave:
 *   source       failed (or cancelled, for a stall), running as before; a
 *                paused one keeps its RAM hash;
 *   destination  exits non-zero with "load of migration failed", its guest
 *                never ran (its serial log stays empty);
 *   a retry      to a fresh destination completes: RAM hashes equal, then
 *                the verify guest checks every page there and says ok.
 * The destination of each retry becomes the next source (ping-pong), so
 * every fault hits a guest that has already moved.
 * Post-copy: every cut sends both sides to postcopy-paused; migrate-recover
 * and migrate resume=true go on; the migration completes with hashes equal
 * and verify ok.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "migration-faults-helpers.h"

/*
 * Faults per mode. scripts/check's second pass (tcg after kvm, on hosts
 * with KVM) runs fewer: the first pass ran them all on the same code.
 */
#define CUTS (gwt_second_pass() ? 20 : 50)
#define STALLS (gwt_second_pass() ? 2 : 5)
#define RETRY_EVERY 10

static const FaultMode modes[] = {
    {"precopy", {NULL}, NULL, 0, NULL},
    /* 1 word in 8 changes when a page is rewritten: XBZRLE encodes it */
    {"xbzrle",
     {"xbzrle"},
     "{'xbzrle-cache-size': 8388608}",
     0,
     "vm=1 vm-bytes=4M vm-stride=64 rate=8M"},
    {"compress",
     {"compress"},
     "{'compress-threads': 2, 'decompress-threads': 2, 'compress-level': 1}",
     0,
     NULL},
    {"multifd", {"multifd"}, "{'multifd-channels': 2}", 2, NULL},
};

/*
 * The highest MIGRATION_PASS the source announced since the last call
 * (events capability): 1 is the setup's sync, 2 ends the first pass.
 */
static int64_t drain_passes(GwProc *src)
{
    int64_t pass = 0;
    JsonObject *ev;

    while ((ev = gwt_wait_event(src, "MIGRATION_PASS", 0))) {
        pass = MAX(pass, gwt_get_int(gwt_get_obj(ev, "data"), "pass"));
        json_object_unref(ev);
    }
    return pass;
}

/* Where a fault lands: a connection, and an offset inside its stream. */
static int fault_target(FaultRun *r, uint64_t *offset)
{
    int conn = MIG_PROXY_ALL;
    uint64_t span = r->span;

    if (r->m->channels) {
        conn = g_rand_int_range(r->rand, 1, r->m->channels + 1);
        span = r->conn_span[conn];
    }
    /*
     * Within the first three quarters of what the last migration sent:
     * the last bytes of a stream can sit in socket buffers when the source
     * completes (no return path), a case counted apart below.
     */
    *offset = mig_fault_offset(r->rand, MAX(span * 3 / 4, 2));
    return conn;
}

/*
 * One fault at a random offset; the source paused or running. A fault
 * that never fired (the stream ended first) is a complete migration: it
 * is checked as a retry.
 */
static void one_fault(FaultRun *r, MigFault kind, bool paused)
{
    GwProc *src = r->mp->src;
    g_autofree char *sock = NULL, *hash = NULL;
    uint64_t off;
    int conn = fault_target(r, &off);
    GwProc *dst = dst_start(r, false, &sock);
    g_autofree char *psock = run_path(r, "p");
    MigProxy *px = mig_proxy_new(psock, sock);

    if (r->first_pass && !paused && g_rand_boolean(r->rand)) {
        /*
         * Into the pages sent again, XBZRLE-encoded: past the first pass,
         * slowed to 32 MiB/s so that ~1 MiB is rewritten meanwhile.
         */
        off = r->first_pass + mig_fault_offset(r->rand, 128 << 10);
        mig_set_speed(src, 32 << 20, 300);
    } else {
        mig_set_speed(src, 0, 300);
    }
    mig_proxy_fault_at(px, kind, conn, off);
    if (paused) {
        gwt_qmp_void(src, "{'execute': 'stop'}");
        hash = mig_ram_hash(src);
    }
    drain_passes(src);
    migrate_to(src, psock);
    if (kind == MIG_FAULT_STALL) {
        /* a peer gone silent: the source can give up on it */
        int64_t end = gwt_now_ms() + END_TIMEOUT;
        while (!mig_proxy_fired(px) && gwt_now_ms() < end) {
            g_autofree char *now = mig_status(src);
            if (!strcmp(now, "completed") || !strcmp(now, "failed")) {
                break; /* the stream ended before the offset */
            }
            gwt_sleep_ms(5);
        }
        gwt_sleep_ms(g_rand_int_range(r->rand, 0, 300));
        gwt_qmp_void(src, "{'execute': 'migrate_cancel'}");
    }
    g_autofree char *st = mig_wait_end(src, END_TIMEOUT);
    bool fired = mig_proxy_fired(px);

    g_test_message("%s %s %s at %" G_GUINT64_FORMAT " conn %d: %s%s",
                   r->m->name, kind == MIG_FAULT_CUT ? "cut" : "stall",
                   paused ? "(paused)" : "", off, conn, st,
                   fired ? "" : " (never fired)");
    if (!fired) {
        /* the stream ended before the offset: a whole migration */
        g_assert_cmpstr(st, ==, "completed");
        mig_proxy_free(px);
        g_assert_true(mig_wait_status(dst, "completed", 30000));
        /* it checks itself after the migration, then on request */
        g_assert_true(gwt_wait_serial(dst, "verify ok", 30000));
        int ok = gwt_serial_count(dst, "verify ok");
        gwt_qmp_void(dst, "{'execute': 'x-guest-request'}");
        g_assert_true(gwt_wait_serial_count(dst, "verify ok", ok + 1, 30000));
        g_assert_cmpint(gwt_serial_count(dst, "FAILED"), ==, 0);
        r->mp->dst = dst;
        adopt_destination(r);
        r->past_end++;
        return;
    }
    if (!strcmp(st, "completed")) {
        /*
         * Everything was written before the cut reached the last bytes:
         * without a return path the source cannot know, as in QEMU. It is
         * stopped (postmigrate) with its RAM (that of a source paused
         * before is checked first: once cont resumes it, the guest
         * writes again).
         */
        g_autofree char *run = gwt_status(src);
        g_assert_cmpstr(run, ==, "postmigrate");
        if (paused) {
            g_autofree char *h = mig_ram_hash(src);
            g_assert_cmpstr(h, ==, hash);
        }
        gwt_qmp_void(src, "{'execute': 'cont'}");
        r->buffered++;
    } else {
        check_source_kept(r, kind == MIG_FAULT_CUT ? "failed" : "cancelled",
                          paused, hash);
        if (kind == MIG_FAULT_CUT) {
            r->cuts++;
            r->later_pass += drain_passes(src) >= 2;
        } else {
            r->stalls++;
        }
    }
    /* a stalled destination sees the break when the proxy goes */
    mig_proxy_free(px);
    if (check_destination_failed(dst, off < 4 && conn == MIG_PROXY_ALL
                                          ? DST_REFUSED
                                      : off < 4 ? DST_EITHER
                                                : DST_FAILED)) {
        r->refused++;
    }
    gwt_free(dst);
}

static void test_cuts(gconstpointer data)
{
    FaultRun r = {.m = data};
    g_autofree char *name = g_strdup_printf("faults/%s", r.m->name);
    int64_t t0 = gwt_now_ms();
    int n = 0;

    r.rand = mig_fault_rand(name);
    r.mp =
        mig_pair_start(MEM, "verify", r.m->append ? r.m->append : APPEND, NULL);
    mode_setup(r.m, r.mp->src);
    mig_set_speed(r.mp->src, 0, 300);
    if (r.m->caps[0] && !strcmp(r.m->caps[0], "xbzrle")) {
        /* one pass and the device state: where XBZRLE records begin */
        gwt_qmp_void(r.mp->src, "{'execute': 'stop'}");
        retry(&r);
        r.first_pass = r.span;
    } else {
        retry(&r);
    }
    while (r.cuts < CUTS || r.stalls < STALLS) {
        bool stall = r.stalls < STALLS && (r.cuts >= CUTS || n % 10 == 5);
        /* one in 8 with the source paused: its RAM hash is kept */
        one_fault(&r, stall ? MIG_FAULT_STALL : MIG_FAULT_CUT, n % 8 == 1);
        if (++n % RETRY_EVERY == 0) {
            retry(&r);
        }
        g_assert_cmpint(n, <, 3 * (CUTS + STALLS));
    }
    retry(&r);
    g_test_message("%s: %d cuts (%d after the first pass), %d stalls, %d "
                   "past the end, %d completed before the cut, %d refused "
                   "before the first bytes, %d retries, %" G_GINT64_FORMAT
                   " ms",
                   r.m->name, r.cuts, r.later_pass, r.stalls, r.past_end,
                   r.buffered, r.refused, r.retries, gwt_now_ms() - t0);
    if (r.first_pass) {
        g_assert_cmpint(r.later_pass, >=, CUTS / 5);
    }
    g_rand_free(r.rand);
    mig_pair_free(r.mp);
}

/*
 * Post-copy: one fault after the switchover. Both sides end in
 * postcopy-paused (a stall: once the source is told migrate-pause, as an
 * operator would); migrate-recover and migrate resume=true through a new
 * proxy bring both back to postcopy-active. Returns the new proxy, or
 * NULL when the migration completed before the offset.
 */
static MigProxy *postcopy_fault(FaultRun *r, MigProxy *px, MigFault kind,
                                bool *fired)
{
    MigPair *mp = r->mp;
    uint64_t off = mig_proxy_bytes(px) + mig_fault_offset(r->rand, 128 << 10);

    mig_proxy_fault_at(px, kind, MIG_PROXY_ALL, off);
    for (;;) {
        g_autofree char *st = mig_status(mp->src);
        if (mig_proxy_fired(px)) {
            break;
        }
        if (!strcmp(st, "completed")) {
            *fired = false;
            return px;
        }
        g_assert_cmpstr(st, ==, "postcopy-active");
        gwt_sleep_ms(2);
    }
    *fired = true;
    if (kind == MIG_FAULT_STALL) {
        gwt_sleep_ms(g_rand_int_range(r->rand, 0, 300));
        gwt_qmp_void(mp->src, "{'execute': 'migrate-pause'}");
    }
    g_free(wait_status_in(mp->src, "postcopy-paused", 30000));
    mig_proxy_free(px);
    g_free(wait_status_in(mp->dst, "postcopy-paused", 30000));
    g_test_message("post-copy %s at %" G_GUINT64_FORMAT ": both paused",
                   kind == MIG_FAULT_CUT ? "cut" : "stall", off);
    /* nothing given up: the source stays stopped, cancel refused */
    g_autofree char *run = gwt_status(mp->src);
    g_assert_cmpstr(run, ==, "finish-migrate");

    r->seq++;
    g_autofree char *rec = run_path(r, "r");
    g_autofree char *psock = run_path(r, "p");
    gwt_qmp_void(mp->dst,
                 "{'execute': 'migrate-recover', 'arguments': "
                 "{'uri': 'unix:%s'}}",
                 rec);
    px = mig_proxy_new(psock, rec);
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': "
                 "{'uri': 'unix:%s', 'resume': true}}",
                 psock);
    g_free(wait_status_in(mp->src, "postcopy-active|completed", 30000));
    g_free(wait_status_in(mp->dst, "postcopy-active|completed", 30000));
    return px;
}

/*
 * Post-copy migrations of the verify guest to paused destinations, their
 * push slowed so that the faults land after the switchover; each ends
 * with hashes equal and verify ok, and the destination is the next
 * source.
 */
static void test_postcopy_cuts(void)
{
    static const FaultMode pc = {"postcopy", {"postcopy-ram"}, NULL, 0, NULL};
    FaultRun r = {.m = &pc};
    int64_t t0 = gwt_now_ms();
    int n = 0;

    r.rand = mig_fault_rand("faults/postcopy");
    r.mp = mig_pair_start(MEM, "verify", APPEND, NULL);
    while (r.cuts < CUTS || r.stalls < STALLS) {
        g_autofree char *sock = NULL;
        g_autofree char *psock = NULL;
        MigProxy *px;

        mode_setup(&pc, r.mp->src);
        r.mp->dst = dst_start(&r, true, &sock);
        psock = run_path(&r, "p");
        px = mig_proxy_new(psock, sock);
        set_postcopy_bandwidth(r.mp->src, 2 << 20);
        migrate_to(r.mp->src, psock);
        gwt_qmp_void(r.mp->src, "{'execute': 'migrate-start-postcopy'}");
        g_free(wait_status_in(r.mp->src, "postcopy-active|completed", 30000));
        /*
         * Faults only once the destination has the guest: a cut between
         * the source's switch and the destination's LISTEN fails the
         * destination's load while the source cannot know it may resume
         * (QEMU's window too; see docs/devel/faults.md).
         */
        g_free(wait_status_in(r.mp->dst, "postcopy-active|completed", 30000));
        for (bool fired = true; fired && (r.cuts < CUTS || r.stalls < STALLS);
             n++) {
            bool stall = r.stalls < STALLS && (r.cuts >= CUTS || n % 10 == 5);
            px = postcopy_fault(&r, px, stall ? MIG_FAULT_STALL : MIG_FAULT_CUT,
                                &fired);
            if (fired && stall) {
                r.stalls++;
            } else if (fired) {
                r.cuts++;
            } else {
                r.past_end++;
            }
            g_assert_cmpint(n, <, 3 * (CUTS + STALLS));
        }
        set_postcopy_bandwidth(r.mp->src, 0);
        g_autofree char *st = mig_wait_end(r.mp->src, END_TIMEOUT);
        g_assert_cmpstr(st, ==, "completed");
        mig_proxy_free(px);
        mig_check_destination(r.mp, true);
        adopt_destination(&r);
        r.retries++;
    }
    g_test_message("postcopy: %d cuts, %d stalls, %d migrations, %d ended "
                   "before the offset, %" G_GINT64_FORMAT " ms",
                   r.cuts, r.stalls, r.retries, r.past_end, gwt_now_ms() - t0);
    g_rand_free(r.rand);
    mig_pair_free(r.mp);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* a godwit that dies mid-test fails the QMP write with a message */
    signal(SIGPIPE, SIG_IGN);
    g_test_message("accelerator: %s", gwt_accel());
    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        g_autofree char *path =
            g_strdup_printf("/migration/faults/cut/%s", modes[i].name);
        g_test_add_data_func(path, &modes[i], test_cuts);
    }
    g_test_add_func("/migration/faults/cut/postcopy", test_postcopy_cuts);
    return g_test_run();
}
