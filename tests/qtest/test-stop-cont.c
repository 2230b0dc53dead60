/*
 * qtest: stop halts guest progress and cont resumes it, measured through
 * the guestperf payload's per-pass reports; run states and STOP/RESUME
 * events as QEMU reports them; -S starts paused; HMP drives the same;
 * thousands of pause/resume cycles (and vCPU state save/load cycles) of a
 * 2-vCPU verify guest lose nothing.
 */
#include <string.h>

#include "libgwtest.h"

#define PERF "guestperf: worker="

static void test_stop_cont_qmp(void)
{
    g_autofree char *elf = gwt_payload("guestperf");
    GwProc *p = gwt_start("sc",
                          "-m 256M -kernel %s -append "
                          "'vm=1 vm-bytes=64M'",
                          elf);
    g_autofree char *st = NULL;
    g_autoptr(JsonObject) ev = NULL;

    g_assert_true(gwt_wait_serial_count(p, PERF, 20, 60000));
    gwt_qmp_void(p, "{'execute': 'stop'}");
    ev = gwt_wait_event(p, "STOP", 5000);
    g_assert_nonnull(ev);
    /* QEMU's timestamp format */
    JsonObject *ts = gwt_get_obj(ev, "timestamp");
    g_assert_cmpint(gwt_get_int(ts, "seconds"), >, 1600000000);
    g_assert_cmpint(gwt_get_int(ts, "microseconds"), <, 1000000);
    st = gwt_status(p);
    g_assert_cmpstr(st, ==, "paused");

    /* No pass completes while stopped. */
    int before = gwt_serial_count(p, PERF);
    gwt_sleep_ms(700);
    g_assert_cmpint(gwt_serial_count(p, PERF), ==, before);

    gwt_qmp_void(p, "{'execute': 'cont'}");
    g_autoptr(JsonObject) ev2 = gwt_wait_event(p, "RESUME", 5000);
    g_assert_nonnull(ev2);
    g_assert_true(gwt_wait_serial_count(p, PERF, before + 10, 20000));
    g_free(st);
    st = gwt_status(p);
    g_assert_cmpstr(st, ==, "running");

    /* stop twice, cont twice: harmless, as in QEMU */
    gwt_qmp_void(p, "{'execute': 'cont'}");
    g_assert_cmpint(gwt_quit(p), ==, 0);
    gwt_free(p);
}

/*
 * Pausing must happen where the vCPU's state is whole: under tcg, at a
 * point the emulator reached by itself (a stop from another thread can
 * leave RIP stale and re-run or skip guest code). 2000 stop/cont cycles at
 * random moments, every 50th with every vCPU's state saved and loaded
 * back (x-reload-vcpus), then the verify guest checks every page.
 */
static void test_stop_cont_cycles(void)
{
    g_autofree char *elf = gwt_payload("verify");
    GwProc *p = gwt_start("cycles",
                          "-m 128M -smp 2 -kernel %s -append "
                          "'vm=2 vm-bytes=8M'",
                          elf);
    g_autoptr(GRand) rand = g_rand_new_with_seed(7);
    int64_t t0;

    g_assert_true(gwt_wait_serial(p, "READY", 60000));
    t0 = gwt_now_ms();
    for (int i = 0; i < 2000; i++) {
        gwt_qmp_void(p, "{'execute': 'stop'}");
        if (i % 50 == 0) {
            gwt_qmp_void(p, "{'execute': 'x-reload-vcpus'}");
        }
        gwt_qmp_void(p, "{'execute': 'cont'}");
        g_usleep(g_rand_int_range(rand, 0, 2000));
    }
    g_test_message("2000 stop/cont cycles (40 reloads) in %" G_GINT64_FORMAT
                   " ms",
                   gwt_now_ms() - t0);
    gwt_qmp_void(p, "{'execute': 'x-guest-request'}");
    g_assert_true(gwt_wait_serial_count(p, "verify ok", 2, 60000));
    g_assert_cmpint(gwt_serial_count(p, "FAILED"), ==, 0);
    g_autofree char *st = gwt_status(p);
    g_assert_cmpstr(st, ==, "running");
    g_assert_cmpint(gwt_quit(p), ==, 0);
    gwt_free(p);
}

/*
 * Two vCPUs hammer one guest spinlock (stress vm-lock=1: lock xchg, a
 * plain increment of a shared counter inside). A lock that is not
 * exclusive across vCPUs loses increments (the guest prints "lock FAILED")
 * or is left held with no owner (no answer at all). Pauses land anywhere,
 * inside the critical section too.
 */
static void test_smp_spinlock(void)
{
    g_autofree char *elf = gwt_payload("stress");
    GwProc *p = gwt_start("spinlock", "-m 128M -smp 2 -kernel %s -append "
                                      "'vm=2 vm-bytes=4M vm-stride=64 "
                                      "vm-lock=1'",
                          elf);

    g_assert_true(gwt_wait_serial(p, "READY", 60000));
    for (int i = 0; i < 500; i++) {
        gwt_qmp_void(p, "{'execute': 'stop'}");
        gwt_qmp_void(p, "{'execute': 'cont'}");
        g_usleep(2000);
    }
    gwt_sleep_ms(1000);
    gwt_qmp_void(p, "{'execute': 'x-guest-request'}");
    g_assert_true(gwt_wait_serial_count(p, "stress: lock ok", 2, 30000));
    g_assert_cmpint(gwt_serial_count(p, "FAILED"), ==, 0);
    g_autofree char *log = gwt_serial(p);
    const char *ok = strstr(log, "stress: lock ok");
    g_test_message("%.*s", (int)strcspn(ok, "\n"), ok);
    g_assert_cmpint(gwt_quit(p), ==, 0);
    gwt_free(p);
}

static void test_stop_cont_hmp(void)
{
    g_autofree char *elf = gwt_payload("guestperf");
    GwProc *p = gwt_start("hmp",
                          "-m 256M -kernel %s -append "
                          "'vm=1 vm-bytes=64M'",
                          elf);

    g_assert_true(gwt_wait_serial_count(p, PERF, 5, 60000));
    g_autofree char *o1 = gwt_hmp(p, "stop");
    g_assert_cmpstr(o1, ==, "");
    g_autofree char *o2 = gwt_hmp(p, "info status");
    g_assert_cmpstr(o2, ==, "VM status: paused\r\n");
    int before = gwt_serial_count(p, PERF);
    gwt_sleep_ms(500);
    g_assert_cmpint(gwt_serial_count(p, PERF), ==, before);
    g_autofree char *o3 = gwt_hmp(p, "cont");
    g_assert_cmpstr(o3, ==, "");
    g_autofree char *o4 = gwt_hmp(p, "info status");
    g_assert_cmpstr(o4, ==, "VM status: running\r\n");
    g_assert_true(gwt_wait_serial_count(p, PERF, before + 5, 20000));
    g_autofree char *o5 = gwt_hmp(p, "info name");
    g_assert_cmpstr(o5, ==, "hmp\r\n");
    g_autofree char *o6 = gwt_hmp(p, "info cpus");
    g_assert_true(g_str_has_prefix(o6, "* CPU #0: thread_id="));
    g_autofree char *o7 = gwt_hmp(p, "info version");
    g_assert_nonnull(strstr(o7, "godwit"));
    gwt_free(p);
}

static void test_prelaunch(void)
{
    g_autofree char *elf = gwt_payload("guestperf");
    GwProc *p = gwt_start("pre",
                          "-S -m 256M -kernel %s -append "
                          "'vm=1 vm-bytes=64M'",
                          elf);
    g_autofree char *st = gwt_status(p);

    g_assert_cmpstr(st, ==, "prelaunch");
    gwt_sleep_ms(500);
    /* not a single guest instruction ran */
    g_autofree char *log = gwt_serial(p);
    g_assert_cmpstr(log, ==, "");
    gwt_qmp_void(p, "{'execute': 'cont'}");
    g_assert_true(gwt_wait_serial(p, "READY", 30000));
    g_free(st);
    st = gwt_status(p);
    g_assert_cmpstr(st, ==, "running");
    gwt_free(p);
}

static void test_quit_event(void)
{
    g_autofree char *elf = gwt_payload("idle");
    GwProc *p = gwt_start("quit", "-m 64M -kernel %s", elf);
    g_autoptr(JsonObject) r = gwt_qmp(p, "{'execute': 'quit', 'id': 7}");

    g_assert_cmpint(gwt_get_int(r, "id"), ==, 7);
    g_autoptr(JsonObject) ev = gwt_wait_event(p, "SHUTDOWN", 5000);
    g_assert_nonnull(ev);
    JsonObject *d = gwt_get_obj(ev, "data");
    g_assert_false(gwt_get_bool(d, "guest"));
    g_assert_cmpstr(gwt_get_str(d, "reason"), ==, "host-qmp-quit");
    g_assert_true(gwt_wait_exit(p, 10000));
    gwt_free(p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    g_test_add_func("/runstate/stop-cont/qmp", test_stop_cont_qmp);
    g_test_add_func("/runstate/stop-cont/hmp", test_stop_cont_hmp);
    g_test_add_func("/runstate/stop-cont/cycles", test_stop_cont_cycles);
    g_test_add_func("/runstate/smp-spinlock", test_smp_spinlock);
    g_test_add_func("/runstate/prelaunch", test_prelaunch);
    g_test_add_func("/runstate/quit", test_quit_event);
    return g_test_run();
}
