/*
 * qtest: migration driven the HMP way, as an operator types it on a
 * -monitor console: migrate_set_capability / migrate_set_parameter with
 * QEMU's units, `migrate` that waits until the end, `info migrate` with
 * QEMU's labels.
 */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "migration-helpers.h"

/* A raw HMP console on a unix socket. */
typedef struct Hmp {
    int fd;
    GString *buf;
} Hmp;

static void hmp_connect(Hmp *h, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    h->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    for (int i = 0; i < 500; i++) {
        if (connect(h->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            break;
        }
        gwt_sleep_ms(10);
    }
    h->buf = g_string_new(NULL);
}

/* Reads until the prompt; returns what came before it (free). */
static char *hmp_read_prompt(Hmp *h, int timeout_ms)
{
    int64_t end = gwt_now_ms() + timeout_ms;

    for (;;) {
        char *p = strstr(h->buf->str, "(godwit) ");
        if (p) {
            char *out = g_strndup(h->buf->str, p - h->buf->str);
            g_string_erase(h->buf, 0, p - h->buf->str + 9);
            return out;
        }
        int left = (int)(end - gwt_now_ms());
        struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, left) <= 0) {
            return NULL;
        }
        char tmp[4096];
        ssize_t n = read(h->fd, tmp, sizeof(tmp));
        g_assert_cmpint(n, >, 0);
        g_string_append_len(h->buf, tmp, n);
    }
}

static char *hmp_cmd(Hmp *h, const char *line, int timeout_ms)
{
    g_autofree char *l = g_strdup_printf("%s\n", line);

    g_assert_cmpint(write(h->fd, l, strlen(l)), ==, (ssize_t)strlen(l));
    return hmp_read_prompt(h, timeout_ms);
}

static void test_hmp_migrate(void)
{
    MigPair *mp = g_new0(MigPair, 1);
    g_autofree char *elf = gwt_payload("verify");
    Hmp h;

    mp->dir = g_dir_make_tmp("gwmig-XXXXXX", NULL);
    g_autofree char *hmp_path = mig_path(mp, "hmp.sock");
    g_autofree char *sock = mig_path(mp, "mig.sock");
    mp->dst = gwt_start("dst", "-m 256M -S -incoming unix:%s", sock);
    mp->src = gwt_start("src", "-m 256M -kernel %s -append 'vm-bytes=32M' "
                               "-monitor unix:%s,server=on,wait=off",
                        elf, hmp_path);
    g_assert_true(gwt_wait_serial(mp->src, "READY", 60000));
    hmp_connect(&h, hmp_path);
    g_autofree char *banner = hmp_read_prompt(&h, 5000);
    g_assert_nonnull(strstr(banner, "monitor - type 'help'"));

    g_autofree char *o1 = hmp_cmd(&h, "migrate_set_capability events on",
                                  5000);
    g_assert_cmpstr(o1, ==, "");
    /* plain number = MiB/s for max-bandwidth, as QEMU's HMP */
    g_autofree char *o2 = hmp_cmd(&h, "migrate_set_parameter max-bandwidth "
                                      "1000",
                                  5000);
    g_assert_cmpstr(o2, ==, "");
    g_autofree char *o3 = hmp_cmd(&h, "info migrate_parameters", 5000);
    g_assert_nonnull(strstr(o3, "max-bandwidth: 1048576000 bytes/second"));
    g_autofree char *o4 = hmp_cmd(&h, "info migrate_capabilities", 5000);
    g_assert_nonnull(strstr(o4, "events: on\r\n"));
    g_autofree char *bad = hmp_cmd(&h, "migrate_set_parameter "
                                       "downtime-limit 9999999",
                                   5000);
    g_assert_nonnull(strstr(bad, "Error: Parameter 'downtime_limit'"));

    /* without -d the console waits until the migration is over */
    g_autofree char *line = g_strdup_printf("migrate unix:%s", sock);
    g_autofree char *o5 = hmp_cmd(&h, line, 120000);
    g_assert_nonnull(o5);
    g_autofree char *st = mig_status(mp->src);
    g_assert_cmpstr(st, ==, "completed");

    g_autofree char *info = hmp_cmd(&h, "info migrate", 5000);
    g_test_message("info migrate:\n%s", info);
    static const char *const labels[] = {
        "Migration status: completed", "total time: ", "downtime: ",
        "setup: ", "transferred ram: ", "throughput: ", "remaining ram: 0 kbytes",
        "total ram: 262144 kbytes", "duplicate: ", "normal: ",
        "normal bytes: ", "dirty sync count: ", "page size: 4 kbytes",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(labels); i++) {
        if (!strstr(info, labels[i])) {
            g_error("info migrate lacks '%s'", labels[i]);
        }
    }
    g_autofree char *status = hmp_cmd(&h, "info status", 5000);
    g_assert_cmpstr(status, ==, "VM status: paused (postmigrate)\r\n");
    mig_check_destination(mp, true);
    close(h.fd);
    g_string_free(h.buf, TRUE);
    mig_pair_free(mp);
}

/* A failed HMP migrate prints the reason when it ends. */
static void test_hmp_migrate_fails(void)
{
    g_autofree char *elf = gwt_payload("idle");
    GwProc *p = gwt_start("src", "-m 64M -kernel %s", elf);
    g_autofree char *out = gwt_hmp(p, "migrate -d unix:/nonexistent/sock");

    g_assert_cmpstr(out, ==, "");
    g_assert_true(mig_wait_status(p, "failed", 10000));
    g_autofree char *info = gwt_hmp(p, "info migrate");
    g_assert_nonnull(strstr(info, "Migration status: failed (unix: cannot "
                                  "connect"));
    g_autofree char *st = gwt_status(p);
    g_assert_cmpstr(st, ==, "running");
    gwt_free(p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    g_test_add_func("/migration/hmp/migrate", test_hmp_migrate);
    g_test_add_func("/migration/hmp/fails", test_hmp_migrate_fails);
    return g_test_run();
}
