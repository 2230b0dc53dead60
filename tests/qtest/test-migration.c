/*
 * qtest: precopy live migration of a running guest, every transport, and
 * the ways it can end. Each successful case proves the result: RAM hashes
 * equal at switchover (source postmigrate, destination paused with -S),
 * then the destination runs and the verify payload says ok. Each failure
 * case proves the source keeps running, its guest making progress.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>

#include "migration-helpers.h"

#define MIG_TIMEOUT 120000
#define VERIFY_APPEND "vm=1 vm-bytes=64M"

typedef struct TransportCase {
    const char *name;
    const char *listen;  /* destination -incoming, %d = temp dir */
    const char *connect; /* source migrate URI */
} TransportCase;

static const TransportCase transports[] = {
    {"unix", "unix:%d/mig.sock", "unix:%d/mig.sock"},
    {"tcp/ipv4", "tcp:127.0.0.1:0", "tcp:127.0.0.1:0"},
    {"tcp/ipv6", "tcp:[::1]:0", "tcp:[::1]:0"},
    {"exec", "exec:cat %d/fifo", "exec:cat > %d/fifo"},
};

/* A guest migrated over `t`, proven on the destination. */
static void test_transport(gconstpointer data)
{
    const TransportCase *t = data;
    MigPair *mp;

    if (!strcmp(t->name, "exec")) {
        /* both ends of the exec transport meet in a named pipe */
        g_autofree char *elf = gwt_payload("verify");
        mp = g_new0(MigPair, 1);
        mp->dir = g_dir_make_tmp("gwmig-XXXXXX", NULL);
        g_autofree char *fifo = mig_path(mp, "fifo");
        g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
        mp->dst = gwt_start("dst", "-m 256M -S -incoming 'exec:cat %s'", fifo);
        mp->src = gwt_start("src", "-m 256M -kernel %s -append '%s'", elf,
                            VERIFY_APPEND);
        g_assert_true(gwt_wait_serial(mp->src, "READY", 60000));
    } else {
        mp = mig_pair_start("256M", "verify", VERIFY_APPEND, t->listen);
    }
    mig_set_speed(mp->src, 0, 300);
    mig_set_cap(mp->src, "events", true);
    g_autofree char *uri = mig_connect_uri(mp, t->connect);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    g_autoptr(JsonObject) stop = gwt_wait_event(mp->src, "STOP", 5000);
    g_assert_nonnull(stop);
    g_autoptr(JsonObject) done = gwt_wait_event(mp->src, "MIGRATION", 5000);
    g_assert_nonnull(done);
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

/* Save to a file, restore in a new process later. */
static void test_file_save_restore(void)
{
    MigPair *mp = mig_pair_start("256M", "verify", VERIFY_APPEND, NULL);
    g_autofree char *file = mig_path(mp, "vm.mig");
    g_autofree char *uri = g_strdup_printf("file:%s", file);

    mig_set_speed(mp->src, 0, 300);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    g_autofree char *h1 = mig_ram_hash(mp->src);
    g_autofree char *magic = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(file, &magic, &len, NULL));
    g_assert_cmpint(len, >, 8);
    g_assert_cmpmem(magic, 4, "QEVM", 4);
    /* the saved VM is self-describing: JSON description at the end */
    g_assert_nonnull(memmem(magic + len - 65536, 65536, "\"devices\"", 9));

    /* the source is gone; restore from the file */
    gwt_free(mp->src);
    mp->src = NULL;
    mp->dst = gwt_start("restored", "-m 256M -S -incoming 'file:%s'", file);
    g_assert_true(mig_wait_status(mp->dst, "completed", 60000));
    g_autofree char *h2 = NULL;
    for (int i = 0; i < 500; i++) {
        g_autofree char *s = gwt_status(mp->dst);
        if (!strcmp(s, "paused")) {
            break;
        }
        gwt_sleep_ms(10);
    }
    h2 = mig_ram_hash(mp->dst);
    g_assert_cmpstr(h1, ==, h2);
    gwt_qmp_void(mp->dst, "{'execute': 'cont'}");
    g_assert_true(gwt_wait_serial(mp->dst, "verify ok", 30000));
    g_assert_cmpint(gwt_serial_count(mp->dst, "FAILED"), ==, 0);
    mig_pair_free(mp);
}

/*
 * tcg on a kernel without userfaultfd asynchronous write-protection
 * (GODWIT_X_TCG_NO_WP=1 makes godwit behave so): migrating a running
 * guest fails at setup with an error naming the feature and the source
 * runs on; a stopped VM still saves to a file and restores whole.
 */
static void test_tcg_without_dirty_tracking(void)
{
    MigPair *mp;

    if (!gwt_tcg()) {
        g_test_skip("tcg only (the kvm accelerator tracks with KVM)");
        return;
    }
    g_setenv("GODWIT_X_TCG_NO_WP", "1", TRUE);
    mp = mig_pair_start("128M", "verify", "vm=1 vm-bytes=16M", NULL);
    g_unsetenv("GODWIT_X_TCG_NO_WP");
    g_autofree char *file = mig_path(mp, "vm.mig");
    g_autofree char *uri = g_strdup_printf("file:%s", file);

    g_autofree char *st = mig_migrate_wait(mp->src, uri, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "failed");
    g_autoptr(JsonObject) q = mig_query(mp->src);
    g_test_message("running guest: %s", gwt_get_str(q, "error-desc"));
    g_assert_nonnull(
        strstr(gwt_get_str(q, "error-desc"), "UFFD_FEATURE_WP_ASYNC"));
    g_autofree char *run = gwt_status(mp->src);
    g_assert_cmpstr(run, ==, "running");
    gwt_qmp_void(mp->src, "{'execute': 'x-guest-request'}");
    g_assert_true(gwt_wait_serial(mp->src, "verify ok", 30000));

    gwt_qmp_void(mp->src, "{'execute': 'stop'}");
    g_autofree char *st2 = mig_migrate_wait(mp->src, uri, MIG_TIMEOUT);
    g_assert_cmpstr(st2, ==, "completed");
    g_autofree char *h1 = mig_ram_hash(mp->src);
    mp->dst = gwt_start("restored", "-m 128M -S -incoming 'file:%s'", file);
    g_assert_true(mig_wait_status(mp->dst, "completed", 60000));
    for (int i = 0; i < 500; i++) {
        g_autofree char *s = gwt_status(mp->dst);
        if (!strcmp(s, "paused")) {
            break;
        }
        gwt_sleep_ms(10);
    }
    g_autofree char *h2 = mig_ram_hash(mp->dst);
    g_assert_cmpstr(h1, ==, h2);
    gwt_qmp_void(mp->dst, "{'execute': 'cont'}");
    g_assert_true(gwt_wait_serial(mp->dst, "verify ok", 30000));
    g_assert_cmpint(gwt_serial_count(mp->dst, "FAILED"), ==, 0);
    mig_pair_free(mp);
}

/*
 * A destination started with -mem-prealloc: its RAM is populated before
 * the stream arrives, so the load writes pages without populating ahead
 * (RAMBlock.preallocated); the guest's pages all arrive all the same.
 */
static void test_prealloc_destination(void)
{
    MigPair *mp = mig_pair_start("256M", "verify", VERIFY_APPEND, NULL);

    mp->dst = gwt_start("dst", "-m 256M -mem-prealloc -S -incoming "
                               "tcp:127.0.0.1:0");
    mig_set_speed(mp->src, 0, 300);
    g_autofree char *uri = mig_connect_uri(mp, "tcp:127.0.0.1:0");
    g_autofree char *st = mig_migrate_wait(mp->src, uri, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

/* -incoming defer, then migrate-incoming over QMP. */
static void test_incoming_defer(void)
{
    MigPair *mp = mig_pair_start("256M", "verify", VERIFY_APPEND, "defer");
    g_autofree char *sock = mig_path(mp, "defer.sock");

    g_autofree char *st0 = gwt_status(mp->dst);
    g_assert_cmpstr(st0, ==, "inmigrate");
    g_autofree char *e = gwt_qmp_err(mp->dst, "{'execute': 'migrate', "
                                              "'arguments': {'uri': "
                                              "'unix:/nonexistent'}}");
    g_assert_nonnull(strstr(e, "waiting for an incoming migration"));
    gwt_qmp_void(mp->dst,
                 "{'execute': 'migrate-incoming', "
                 "'arguments': {'uri': 'unix:%s'}}",
                 sock);
    g_autofree char *e2 = gwt_qmp_err(mp->dst,
                                      "{'execute': 'migrate-incoming', "
                                      "'arguments': {'uri': 'unix:%s'}}",
                                      sock);
    g_assert_nonnull(strstr(e2, "already been started"));
    mig_set_speed(mp->src, 0, 300);
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

/* An idle guest: only what it populated travels. */
static void test_idle_guest(void)
{
    MigPair *mp = mig_pair_start("512M", "idle", "", "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");

    mig_set_speed(mp->src, 0, 300);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    g_autoptr(JsonObject) q = mig_query(mp->src);
    JsonObject *ram = gwt_get_obj(q, "ram");
    g_test_message("idle 512M: total %" G_GINT64_FORMAT
                   " ms, downtime %" G_GINT64_FORMAT " ms, %" G_GINT64_FORMAT
                   " bytes",
                   gwt_get_int(q, "total-time"), gwt_get_int(q, "downtime"),
                   gwt_get_int(ram, "transferred"));
    /* never-populated memory is not sent at all */
    g_assert_cmpint(gwt_get_int(ram, "transferred"), <, 8 << 20);
    g_assert_cmpint(gwt_get_int(ram, "skipped"), >, (400 << 20) / 4096);
    mig_check_destination(mp, false);
    mig_pair_free(mp);
}

/* A stress guest dirtying at a rate the link outruns: it converges. */
static void test_stress_converges(void)
{
    MigPair *mp = mig_pair_start("512M", "stress", "vm=2 vm-bytes=64M rate=20M",
                                 "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");

    mig_set_cap(mp->src, "events", true);
    mig_set_speed(mp->src, 400 << 20, 100);
    gwt_sleep_ms(500);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    g_autoptr(JsonObject) q = mig_query(mp->src);
    JsonObject *ram = gwt_get_obj(q, "ram");
    /* it went through passes, announced with MIGRATION_PASS */
    g_assert_cmpint(gwt_get_int(ram, "dirty-sync-count"), >=, 2);
    g_autoptr(JsonObject) pass =
        gwt_wait_event(mp->src, "MIGRATION_PASS", 1000);
    g_assert_nonnull(pass);
    g_test_message(
        "stress: downtime %" G_GINT64_FORMAT " ms, syncs %" G_GINT64_FORMAT,
        gwt_get_int(q, "downtime"), gwt_get_int(ram, "dirty-sync-count"));
    mig_check_destination(mp, false);
    /* the guest noticed the move and measured its pause */
    g_assert_true(gwt_wait_serial(mp->dst, "pause_ms=", 30000));
    mig_pair_free(mp);
}

/* pause-before-switchover: pre-switchover, then migrate-continue. */
static void test_pause_before_switchover(void)
{
    MigPair *mp =
        mig_pair_start("256M", "verify", VERIFY_APPEND, "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");

    mig_set_speed(mp->src, 0, 300);
    mig_set_cap(mp->src, "pause-before-switchover", true);
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', "
                 "'arguments': {'uri': "
                 "'%s'}}",
                 uri);
    g_assert_true(mig_wait_status(mp->src, "pre-switchover", MIG_TIMEOUT));
    /* the guest still runs while the management decides */
    g_autofree char *rs = gwt_status(mp->src);
    g_assert_cmpstr(rs, ==, "running");
    g_autofree char *e = gwt_qmp_err(mp->src, "{'execute': "
                                              "'migrate-continue', "
                                              "'arguments': {'state': "
                                              "'active'}}");
    g_assert_nonnull(strstr(e, "not in expected state"));
    gwt_qmp_void(mp->src, "{'execute': "
                          "'migrate-continue', "
                          "'arguments': {'state': "
                          "'pre-switchover'}}");
    g_assert_true(mig_wait_status(mp->src, "completed", MIG_TIMEOUT));
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

/*
 * Cancel while still in setup: the destination's listen backlog is full,
 * so the source's connect hangs (a peer that never answers).
 */
static void test_cancel_setup(void)
{
    MigPair *mp =
        mig_pair_start("256M", "guestperf", "vm=1 vm-bytes=64M", NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int filler = socket(AF_INET, SOCK_STREAM, 0);

    g_assert_cmpint(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(lfd, 0), ==, 0);
    g_assert_cmpint(getsockname(lfd, (struct sockaddr *)&sa, &len), ==, 0);
    g_assert_cmpint(connect(filler, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', 'arguments': "
                 "{'uri': 'tcp:127.0.0.1:%d'}}",
                 ntohs(sa.sin_port));
    gwt_sleep_ms(500);
    g_autofree char *st = mig_status(mp->src);
    g_assert_cmpstr(st, ==, "setup");
    gwt_qmp_void(mp->src, "{'execute': "
                          "'migrate_cancel'}");
    g_assert_true(mig_wait_status(mp->src, "cancelled", 10000));
    mig_check_source_alive(mp->src, "guestperf: worker=0");
    close(filler);
    close(lfd);
    mig_pair_free(mp);
}

typedef enum CancelPoint {
    CANCEL_SOON,
    CANCEL_ACTIVE,
    CANCEL_PRE_SWITCHOVER,
} CancelPoint;

/* migrate_cancel: cancelled, source running, destination gone. */
static void test_cancel(gconstpointer data)
{
    CancelPoint at = GPOINTER_TO_INT(data);
    MigPair *mp = mig_pair_start("256M", "guestperf", "vm=1 vm-bytes=64M",
                                 "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");

    /* populated first, or the migration may be over before the cancel */
    g_assert_true(gwt_wait_serial(mp->src, "pass=1 ", 60000));
    if (at == CANCEL_PRE_SWITCHOVER) {
        mig_set_cap(mp->src, "pause-before-switchover", true);
        mig_set_speed(mp->src, 0, 300);
    } else {
        /* slow enough to still be running when the cancel lands */
        mig_set_speed(mp->src, 8 << 20, 1);
    }
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', "
                 "'arguments': {'uri': "
                 "'%s'}}",
                 uri);
    if (at == CANCEL_ACTIVE) {
        g_assert_true(mig_wait_status(mp->src, "active", MIG_TIMEOUT));
        gwt_sleep_ms(300);
    } else if (at == CANCEL_PRE_SWITCHOVER) {
        g_assert_true(mig_wait_status(mp->src, "pre-switchover", MIG_TIMEOUT));
    }
    gwt_qmp_void(mp->src, "{'execute': "
                          "'migrate_cancel'}");
    g_assert_true(mig_wait_status(mp->src, "cancelled", 30000));
    mig_check_source_alive(mp->src, "guestperf: worker=0");
    if (at == CANCEL_SOON && !gwt_wait_exit(mp->dst, 5000)) {
        /*
         * Cancelled before the source sent its first byte (tcg is slow to
         * get there): the destination took that for a stray connection,
         * refused it and still waits for a source, as it should.
         */
        g_autofree char *log = gwt_stderr(mp->dst);
        g_autofree char *st = gwt_status(mp->dst);
        g_assert_nonnull(
            strstr(log, "incoming migration: refused the connection from"));
        g_assert_cmpstr(st, ==, "inmigrate");
        mig_pair_free(mp);
        return;
    }
    /* the destination saw the stream break: it fails and exits non-zero */
    g_assert_true(gwt_wait_exit(mp->dst, 30000));
    g_assert_true(WIFEXITED(mp->dst->status));
    g_assert_cmpint(WEXITSTATUS(mp->dst->status), !=, 0);
    /* a cancelled VM can migrate again */
    gwt_qmp_void(mp->src, "{'execute': "
                          "'query-migrate'}");
    mig_pair_free(mp);
}

/* The destination dies mid-stream: failed, source running. */
static void test_destination_killed(void)
{
    MigPair *mp = mig_pair_start("256M", "guestperf", "vm=1 vm-bytes=128M",
                                 "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");

    /*
     * Its 128 MiB populated first: with untouched RAM the migration may
     * complete in 10 ms, before anyone sees it active.
     */
    g_assert_true(gwt_wait_serial(mp->src, "pass=1 ", 60000));
    mig_set_speed(mp->src, 16 << 20, 1);
    gwt_qmp_void(mp->src,
                 "{'execute': 'migrate', "
                 "'arguments': {'uri': "
                 "'%s'}}",
                 uri);
    g_assert_true(mig_wait_status(mp->src, "active", MIG_TIMEOUT));
    gwt_sleep_ms(400);
    kill(mp->dst->pid, SIGKILL);
    g_assert_true(mig_wait_status(mp->src, "failed", 30000));
    g_autoptr(JsonObject) q = mig_query(mp->src);
    g_test_message("failed: %s", gwt_get_str(q, "error-desc"));
    mig_check_source_alive(mp->src, "guestperf: worker=0");
    mig_pair_free(mp);
}

/* A VM that arrived by migration leaves again: A -> B -> C. */
static void test_ping_pong(void)
{
    MigPair *mp =
        mig_pair_start("256M", "verify", VERIFY_APPEND, "unix:%d/ab.sock");
    g_autofree char *ab = mig_connect_uri(mp, "unix:%d/ab.sock");
    g_autofree char *bc_sock = mig_path(mp, "bc.sock");

    mig_set_speed(mp->src, 0, 300);
    g_autofree char *st = mig_migrate_wait(mp->src, ab, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    mig_check_destination(mp, true);

    /*
     * B becomes the source; a new process on the first host receives,
     * over multifd: options that only a migration not yet started may
     * change are free again once B's incoming one completed.
     */
    gwt_free(mp->src);
    mp->src = mp->dst;
    mp->dst = gwt_start("back", "-m 256M -S -incoming defer");
    for (int i = 0; i < 2; i++) {
        GwProc *p = i ? mp->dst : mp->src;
        mig_set_cap(p, "multifd", true);
        gwt_qmp_void(p, "{'execute': 'migrate-set-parameters', "
                        "'arguments': {'multifd-channels': 2, "
                        "'compress-threads': 2}}");
    }
    gwt_qmp_void(mp->dst,
                 "{'execute': 'migrate-incoming', 'arguments': "
                 "{'uri': 'unix:%s'}}",
                 bc_sock);
    mig_set_speed(mp->src, 0, 300);
    g_autofree char *bc = g_strdup_printf("unix:%s", bc_sock);
    mig_set_speed(mp->src, 0, 300);
    g_autofree char *st2 = mig_migrate_wait(mp->src, bc, MIG_TIMEOUT);
    g_assert_cmpstr(st2, ==, "completed");
    mig_check_destination(mp, true);
    /* the guest saw two moves */
    g_assert_true(gwt_wait_serial(mp->dst, "gen=2", 30000));
    mig_pair_free(mp);
}

static void check_accel(GwProc *p, const char *accel)
{
    g_autoptr(JsonNode) r = gwt_qmp_ok(p, "{'execute': 'x-query-accel'}");

    g_assert_cmpstr(gwt_get_str(json_node_get_object(r), "accelerator"), ==,
                    accel);
}

/*
 * The same cpu section under both accelerators: a 2-vCPU verify guest
 * moves from a KVM host to a tcg one and back to KVM (ping-pong with
 * mixed accelerators), hashes equal and "verify ok" each time.
 */
static void test_cross_accel(void)
{
    const char *was;
    MigPair *mp;

    if (!gwt_kvm_present()) {
        g_test_skip("kvm -> tcg -> kvm needs /dev/kvm, which this host "
                    "lacks");
        return;
    }
    was = gwt_set_accel("tcg");
    /* mig_pair_start starts the destination (tcg), then the source */
    g_autofree char *elf = gwt_payload("verify");
    mp = g_new0(MigPair, 1);
    mp->dir = g_dir_make_tmp("gwmig-XXXXXX", NULL);
    g_autofree char *ab_sock = mig_path(mp, "ab.sock");
    g_autofree char *bc_sock = mig_path(mp, "bc.sock");
    mp->dst =
        gwt_start("tcg", "-m 256M -smp 2 -S -incoming 'unix:%s'", ab_sock);
    gwt_set_accel("kvm");
    mp->src = gwt_start("kvm", "-m 256M -smp 2 -kernel %s -append '%s'", elf,
                        "vm=2 vm-bytes=32M");
    g_assert_true(gwt_wait_serial(mp->src, "READY", 60000));
    check_accel(mp->src, "kvm");
    check_accel(mp->dst, "tcg");
    g_autofree char *ab = g_strdup_printf("unix:%s", ab_sock);
    mig_set_speed(mp->src, 0, 300);
    g_autofree char *st = mig_migrate_wait(mp->src, ab, MIG_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    mig_check_destination(mp, true);

    gwt_free(mp->src);
    mp->src = mp->dst;
    mp->dst =
        gwt_start("kvm2", "-m 256M -smp 2 -S -incoming 'unix:%s'", bc_sock);
    check_accel(mp->dst, "kvm");
    g_autofree char *bc = g_strdup_printf("unix:%s", bc_sock);
    mig_set_speed(mp->src, 0, 300);
    g_autofree char *st2 = mig_migrate_wait(mp->src, bc, MIG_TIMEOUT);
    g_assert_cmpstr(st2, ==, "completed");
    mig_check_destination(mp, true);
    g_assert_true(gwt_wait_serial(mp->dst, "gen=2", 30000));
    mig_pair_free(mp);
    gwt_set_accel(was);
}

/* Out-of-range parameters are refused and leave the values unchanged. */
static void test_parameters_refused(void)
{
    g_autofree char *elf = gwt_payload("idle");
    GwProc *p = gwt_start("params", "-m 64M -kernel %s", elf);
    static const char *const bad[] = {
        "{'downtime-limit': 2000001}",
        "{'max-bandwidth': -1}",
        "{'downtime-limit': 10, 'max-cpu-throttle': 100}",
        "{'xbzrle-cache-size': 1000}",
        "{'multifd-channels': 0}",
        "{'bogus': 1}",
        "{'downtime-limit': 'soon'}",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *e = gwt_qmp_err(p,
                                         "{'execute': "
                                         "'migrate-set-parameters', "
                                         "'arguments': %s}",
                                         bad[i]);
        g_test_message("%s -> %s", bad[i], e);
    }
    g_autoptr(JsonNode) q = gwt_qmp_ok(p, "{'execute': "
                                          "'query-migrate-parameters'}");
    JsonObject *o = json_node_get_object(q);
    g_assert_cmpint(gwt_get_int(o, "downtime-limit"), ==, 300);
    g_assert_cmpint(gwt_get_int(o, "max-bandwidth"), ==, 134217728);
    g_assert_cmpint(gwt_get_int(o, "max-cpu-throttle"), ==, 99);
    g_assert_cmpint(gwt_get_int(o, "multifd-channels"), ==, 2);
    /* capabilities not built yet are refused, not ignored */
    g_autofree char *e2 = gwt_qmp_err(p, "{'execute': "
                                         "'migrate-set-capabilities', "
                                         "'arguments': {'capabilities': "
                                         "[{'capability': 'x-colo', "
                                         "'state': true}]}}");
    g_assert_nonnull(strstr(e2, "not supported by godwit yet"));
    gwt_free(p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    /* the transports do not depend on the accelerator: tcp only there */
    for (size_t i = 0; i < G_N_ELEMENTS(transports); i++) {
        if (gwt_second_pass() && strcmp(transports[i].name, "tcp/ipv4")) {
            continue;
        }
        g_autofree char *path =
            g_strdup_printf("/migration/precopy/%s", transports[i].name);
        g_test_add_data_func(path, &transports[i], test_transport);
    }
    if (!gwt_second_pass()) {
        g_test_add_func("/migration/precopy/file", test_file_save_restore);
        g_test_add_func("/migration/precopy/defer", test_incoming_defer);
    }
    g_test_add_func("/migration/precopy/prealloc-destination",
                    test_prealloc_destination);
    g_test_add_func("/migration/precopy/idle", test_idle_guest);
    g_test_add_func("/migration/precopy/stress", test_stress_converges);
    g_test_add_func("/migration/pause-before-switchover",
                    test_pause_before_switchover);
    g_test_add_func("/migration/cancel/setup", test_cancel_setup);
    g_test_add_data_func("/migration/cancel/immediately",
                         GINT_TO_POINTER(CANCEL_SOON), test_cancel);
    g_test_add_data_func("/migration/cancel/active",
                         GINT_TO_POINTER(CANCEL_ACTIVE), test_cancel);
    g_test_add_data_func("/migration/cancel/pre-switchover",
                         GINT_TO_POINTER(CANCEL_PRE_SWITCHOVER), test_cancel);
    g_test_add_func("/migration/destination-killed", test_destination_killed);
    g_test_add_func("/migration/ping-pong", test_ping_pong);
    g_test_add_func("/migration/cross-accel/kvm-tcg-kvm", test_cross_accel);
    g_test_add_func("/migration/tcg/no-dirty-tracking",
                    test_tcg_without_dirty_tracking);
    g_test_add_func("/migration/parameters-refused", test_parameters_refused);
    return g_test_run();
}
