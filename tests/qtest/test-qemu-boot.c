/*
 * qtest: every guest payload also boots under QEMU (qemu-system-x86_64
 * -kernel X.elf) and prints READY there, so the same workload can be
 * migrated by godwit and by QEMU side by side. QEMU runs with -accel kvm
 * where /dev/kvm opens, else with -accel tcg (the payloads take another
 * parking path there: guest/README.md, "Parking"). Payloads that park must
 * then use (almost) no host CPU and never reset the machine. Skips when
 * QEMU is missing.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libgwtest.h"

typedef struct QemuCase {
    const char *payload;
    const char *append;
    bool parks; /* parks after READY: check its CPU use */
} QemuCase;

static const QemuCase qemu_cases[] = {
    {"idle", "", true},
    {"stress", "vm=2 vm-bytes=32M", false},
    {"guestperf", "vm=1 vm-bytes=32M", false},
    {"fill", "size=32M pattern=half", true},
    {"verify", "vm-bytes=16M", false},
};

/* A parked guest: QEMU's CPU time below this share of wall time. */
#define PARKED_MAX_CPU 0.20
#define PARKED_WINDOW_MS 2000

static char *qemu_path;
static const char *qemu_accel;

/* QEMU dies with the test, whatever happens to the test. */
static void qemu_child_setup(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static const char *qemu_pick_accel(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        return "tcg";
    }
    close(fd);
    return "kvm";
}

/* utime + stime of @pid in milliseconds (asserts /proc is readable). */
static int64_t proc_cpu_ms(GPid pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
    g_autofree char *stat = NULL;
    unsigned long long utime, stime;
    const char *p;

    g_assert_true(g_file_get_contents(path, &stat, NULL, NULL));
    /* after "pid (comm)": state is field 3, utime 14, stime 15 */
    p = strrchr(stat, ')');
    g_assert_nonnull(p);
    g_assert_cmpint(sscanf(p + 1,
                           " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
                           "%*u %llu %llu",
                           &utime, &stime),
                    ==, 2);
    return (int64_t)((utime + stime) * 1000 / sysconf(_SC_CLK_TCK));
}

static bool qemu_alive(GPid pid)
{
    return waitpid(pid, NULL, WNOHANG) == 0;
}

/* Occurrences of the log's first line (a reset would print it again). */
static int first_line_count(const char *text)
{
    const char *nl = strchr(text, '\n');
    g_autofree char *line = NULL;
    int n = 0;

    if (!nl) {
        return 0;
    }
    line = g_strndup(text, nl - text + 1);
    for (const char *p = text; (p = strstr(p, line)); p += strlen(line)) {
        n++;
    }
    return n;
}

/*
 * QEMU's CPU time over PARKED_WINDOW_MS, as a share of wall time; -1 when
 * QEMU exited meanwhile (-no-reboot: a reset ends it).
 */
static double parked_cpu_share(GPid pid)
{
    int64_t t0 = gwt_now_ms(), c0 = proc_cpu_ms(pid);
    int64_t c1;

    gwt_sleep_ms(PARKED_WINDOW_MS);
    if (!qemu_alive(pid)) {
        return -1;
    }
    c1 = proc_cpu_ms(pid);
    return (double)(c1 - c0) / (double)(gwt_now_ms() - t0);
}

static void test_qemu_boot(gconstpointer data)
{
    const QemuCase *c = data;
    g_autofree char *elf = gwt_payload(c->payload);
    g_autofree char *dir = g_dir_make_tmp("gwqemu-XXXXXX", NULL);
    g_autofree char *log = g_build_filename(dir, "serial.log", NULL);
    g_autofree char *serial = g_strdup_printf("file:%s", log);
    const char *argv[] = {
        qemu_path,  "-accel",  qemu_accel,   "-m",      "256M", "-nodefaults",
        "-display", "none",    "-no-reboot", "-serial", serial, "-kernel",
        elf,        "-append", c->append,    NULL,
    };
    g_autoptr(GError) err = NULL;
    g_autofree char *text = NULL;
    int64_t start = gwt_now_ms(), ready_ms = -1;
    double share = 0;
    bool alive = true;
    GPid pid;

    g_assert_true(
        g_spawn_async(NULL, (char **)argv, NULL,
                      G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDERR_TO_DEV_NULL,
                      qemu_child_setup, NULL, &pid, &err));
    while (gwt_now_ms() < start + 60000 && (alive = qemu_alive(pid))) {
        g_autofree char *now = NULL;
        if (g_file_get_contents(log, &now, NULL, NULL) &&
            strstr(now, "READY")) {
            ready_ms = gwt_now_ms() - start;
            break;
        }
        gwt_sleep_ms(20);
    }
    if (ready_ms >= 0 && c->parks) {
        share = parked_cpu_share(pid);
    }
    alive = alive && share >= 0 && qemu_alive(pid);
    if (alive) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    g_file_get_contents(log, &text, NULL, NULL);
    unlink(log);
    rmdir(dir);

    if (ready_ms < 0 || !alive) {
        g_error("%s under QEMU (%s): %s; serial:\n%s", c->payload, qemu_accel,
                ready_ms < 0 ? "no READY"
                             : "QEMU exited after READY (a reset: -no-reboot)",
                text);
    }
    if (c->parks) {
        g_test_message("%s under qemu -accel %s: READY after %" PRId64
                       " ms, CPU while parked %.1f%% of wall time",
                       c->payload, qemu_accel, ready_ms, share * 100);
        if (share >= PARKED_MAX_CPU) {
            g_error("%s under QEMU (%s) is not parked: %.0f%% CPU over %d ms "
                    "after READY",
                    c->payload, qemu_accel, share * 100, PARKED_WINDOW_MS);
        }
    } else {
        g_test_message("%s under qemu -accel %s: READY after %" PRId64 " ms",
                       c->payload, qemu_accel, ready_ms);
    }
    /* One boot only: the first line was printed once. */
    g_assert_cmpint(first_line_count(text), ==, 1);
    /* payloads know they are not under godwit, and which ring they run in */
    g_assert_null(strstr(text, "godwit=1"));
    if (strcmp(c->payload, "idle")) {
        g_assert_nonnull(
            strstr(text, !strcmp(qemu_accel, "tcg") ? " ring=0" : " ring=3"));
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qemu_path = g_find_program_in_path("qemu-system-x86_64");
    if (!qemu_path) {
        fprintf(stderr, "SKIP: qemu-system-x86_64 is not installed\n");
        return GWT_SKIP;
    }
    qemu_accel = qemu_pick_accel();
    for (size_t i = 0; i < G_N_ELEMENTS(qemu_cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/qemu-boot/%s", qemu_cases[i].payload);
        g_test_add_data_func(path, &qemu_cases[i], test_qemu_boot);
    }
    return g_test_run();
}
