/*
 * qtest: every guest payload boots under godwit and prints READY; bad
 * payload arguments are reported and READY never comes; large guests map
 * RAM above 4 GiB.
 */
#include <string.h>

#include "libgwtest.h"

typedef struct BootCase {
    const char *payload;
    const char *mem;
    const char *smp;
    const char *append;
    const char *expect; /* a line the payload must print besides READY */
} BootCase;

static const BootCase boot_cases[] = {
    {"idle", "64M", "1", "", "READY"},
    {"stress", "256M", "1", "vm=2 vm-bytes=32M", "stress: worker 1 cpu 0"},
    {"guestperf", "256M", "1", "vm=1 vm-bytes=64M", "guestperf: worker=0"},
    {"fill", "256M", "1", "size=32M pattern=random", "fill: done"},
    {"verify", "256M", "1", "vm-bytes=16M", "READY"},
    {"stress", "256M", "2", "vm=2 vm-bytes=32M", "stress: worker 1 cpu 1"},
    /* 5 GiB: 3 GiB below 4G, 2 GiB above; worker 1 lands above 4G and
     * completes passes there */
    {"guestperf", "5G", "1", "vm=2 vm-bytes=1600M",
     "worker=1 cpu=0 pass=2 "},
};

static void test_boot(gconstpointer data)
{
    const BootCase *c = data;
    g_autofree char *elf = gwt_payload(c->payload);
    GwProc *p = gwt_start(c->payload, "-m %s -smp %s -kernel %s -append '%s'",
                          c->mem, c->smp, elf, c->append);
    int64_t t0 = gwt_now_ms();

    if (!gwt_wait_serial(p, "READY", 60000)) {
        g_autofree char *log = gwt_serial(p);
        g_error("%s: no READY; serial:\n%s", c->payload, log);
    }
    /* first touches of fresh guest memory cost 11-25 µs a page on nested
     * hosts, under either accelerator: 3.2 GB of them for the 5 GiB case */
    g_assert_true(gwt_wait_serial(p, c->expect, 120000));
    g_test_message("%s -m %s: READY after %" G_GINT64_FORMAT " ms",
                   c->payload, c->mem, gwt_now_ms() - t0);
    g_autofree char *st = gwt_status(p);
    g_assert_cmpstr(st, ==, "running");
    g_assert_cmpint(gwt_quit(p), ==, 0);
    gwt_free(p);
}

static void test_bad_argument(void)
{
    g_autofree char *elf = gwt_payload("stress");
    GwProc *p = gwt_start("bad", "-m 128M -kernel %s -append 'vm=1 bogus=3'",
                          elf);

    g_assert_true(gwt_wait_serial(p, "unknown argument 'bogus=3'", 20000));
    gwt_sleep_ms(300);
    g_assert_cmpint(gwt_serial_count(p, "READY"), ==, 0);
    gwt_free(p);
}

static void test_too_much_memory_asked(void)
{
    g_autofree char *elf = gwt_payload("stress");
    GwProc *p = gwt_start("big", "-m 128M -kernel %s -append "
                                 "'vm=2 vm-bytes=100M'",
                          elf);

    g_assert_true(gwt_wait_serial(p, "not enough memory", 20000));
    g_assert_cmpint(gwt_serial_count(p, "READY"), ==, 0);
    gwt_free(p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    for (size_t i = 0; i < G_N_ELEMENTS(boot_cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/boot/%s/m%s/smp%s", boot_cases[i].payload,
                            boot_cases[i].mem, boot_cases[i].smp);
        g_test_add_data_func(path, &boot_cases[i], test_boot);
    }
    g_test_add_func("/boot/bad-argument", test_bad_argument);
    g_test_add_func("/boot/not-enough-memory", test_too_much_memory_asked);
    return g_test_run();
}
