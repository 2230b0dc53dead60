/*
 * qtest: every guest payload also boots under QEMU (qemu-system-x86_64
 * -accel kvm -kernel X.elf) and prints READY there, so the same workload
 * can be migrated by godwit and by QEMU side by side. Skips when QEMU or
 * /dev/kvm is missing.
 */
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
} QemuCase;

static const QemuCase qemu_cases[] = {
    {"idle", ""},
    {"stress", "vm=2 vm-bytes=32M"},
    {"guestperf", "vm=1 vm-bytes=32M"},
    {"fill", "size=32M pattern=half"},
    {"verify", "vm-bytes=16M"},
};

static char *qemu_path;

/* QEMU dies with the test, whatever happens to the test. */
static void qemu_child_setup(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void test_qemu_boot(gconstpointer data)
{
    const QemuCase *c = data;
    g_autofree char *elf = gwt_payload(c->payload);
    g_autofree char *dir = g_dir_make_tmp("gwqemu-XXXXXX", NULL);
    g_autofree char *log = g_build_filename(dir, "serial.log", NULL);
    g_autofree char *serial = g_strdup_printf("file:%s", log);
    const char *argv[] = {qemu_path, "-accel", "kvm", "-m", "256M",
                          "-nodefaults", "-display", "none", "-serial",
                          serial, "-kernel", elf, "-append", c->append,
                          NULL};
    g_autoptr(GError) err = NULL;
    GPid pid;
    bool ready = false;

    g_assert_true(g_spawn_async(NULL, (char **)argv, NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD |
                                    G_SPAWN_STDERR_TO_DEV_NULL,
                                qemu_child_setup, NULL, &pid, &err));
    for (int64_t end = gwt_now_ms() + 60000; gwt_now_ms() < end;) {
        g_autofree char *text = NULL;
        if (g_file_get_contents(log, &text, NULL, NULL) &&
            strstr(text, "READY")) {
            ready = true;
            break;
        }
        gwt_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    g_autofree char *text = NULL;
    g_file_get_contents(log, &text, NULL, NULL);
    if (!ready) {
        g_error("%s under QEMU: no READY; serial:\n%s", c->payload, text);
    }
    /* payloads know they are not under godwit */
    g_assert_null(strstr(text, "godwit=1"));
    unlink(log);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    gwt_require_kvm();
    qemu_path = g_find_program_in_path("qemu-system-x86_64");
    if (!qemu_path) {
        fprintf(stderr, "SKIP: qemu-system-x86_64 is not installed\n");
        return GWT_SKIP;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(qemu_cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/qemu-boot/%s", qemu_cases[i].payload);
        g_test_add_data_func(path, &qemu_cases[i], test_qemu_boot);
    }
    return g_test_run();
}
