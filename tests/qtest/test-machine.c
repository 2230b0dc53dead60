/*
 * qtest: the machine underneath migration. -smp 2 runs both vCPUs; the
 * dirty log reports exactly the pages a payload wrote; vCPU state saved
 * from one KVM VM and loaded into a fresh one lets the guest continue
 * where it was.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "libgwtest.h"

static void test_smp(void)
{
    g_autofree char *elf = gwt_payload("guestperf");
    GwProc *p = gwt_start("smp", "-m 512M -smp 2 -kernel %s -append "
                                 "'vm=2 vm-bytes=64M'",
                          elf);

    g_assert_true(gwt_wait_serial_count(p, "worker=0 cpu=0", 10, 60000));
    g_assert_true(gwt_wait_serial_count(p, "worker=1 cpu=1", 10, 60000));

    g_autoptr(JsonNode) cpus = gwt_qmp_ok(p, "{'execute': "
                                             "'query-cpus-fast'}");
    JsonArray *a = json_node_get_array(cpus);
    g_assert_cmpint(json_array_get_length(a), ==, 2);
    int64_t t0 = gwt_get_int(json_array_get_object_element(a, 0),
                             "thread-id");
    int64_t t1 = gwt_get_int(json_array_get_object_element(a, 1),
                             "thread-id");
    g_assert_cmpint(t0, >, 0);
    g_assert_cmpint(t1, >, 0);
    g_assert_cmpint(t0, !=, t1);
    g_assert_cmpint(gwt_get_int(json_array_get_object_element(a, 1),
                                "cpu-index"),
                    ==, 1);
    gwt_free(p);
}

/* Parses "fill: done ... region 0xA-0xB" and "layout ... rw 0xC-0xD". */
static void parse_layout(GwProc *p, uint64_t *r0, uint64_t *r1, uint64_t *w0,
                         uint64_t *w1)
{
    g_autofree char *log = gwt_serial(p);
    const char *reg = strstr(log, "fill: done");
    const char *lay = strstr(log, "layout image");

    g_assert_nonnull(reg);
    g_assert_nonnull(lay);
    reg = strstr(reg, "region ");
    g_assert_nonnull(reg);
    g_assert_cmpint(sscanf(reg, "region 0x%" SCNx64 "-0x%" SCNx64, r0, r1),
                    ==, 2);
    /* the payload's own image: code, data, stacks, request blocks */
    g_assert_cmpint(sscanf(lay, "layout image 0x%" SCNx64 "-0x%" SCNx64, w0,
                           w1),
                    ==, 2);
}

static JsonObject *dirty_sync(GwProc *p)
{
    JsonNode *r = gwt_qmp_ok(p, "{'execute': 'x-dirty-log', "
                                "'arguments': {'action': 'sync'}}");
    JsonObject *o = json_object_ref(json_node_get_object(r));
    json_node_unref(r);
    return o;
}

static void test_dirty_log_exact(void)
{
    g_autofree char *elf = gwt_payload("fill");
    GwProc *p = gwt_start("dirty", "-m 256M -kernel %s -append "
                                   "'size=8M pattern=random'",
                          elf);
    uint64_t r0, r1, w0, w1;

    g_assert_true(gwt_wait_serial(p, "READY", 60000));
    parse_layout(p, &r0, &r1, &w0, &w1);
    g_test_message("region 0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER
                   "x image 0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER
                   "x",
                   r0, r1, w0, w1);

    gwt_qmp_void(p, "{'execute': 'x-dirty-log', "
                                          "'arguments': {'action': "
                                          "'start'}}");
    /* First sync after start: every page of RAM. */
    g_autoptr(JsonObject) all = dirty_sync(p);
    g_assert_cmpint(gwt_get_int(all, "dirty-pages"), ==, (256 << 20) / 4096);
    /* The guest is parked: next to nothing changes. */
    gwt_sleep_ms(300);
    g_autoptr(JsonObject) idle = dirty_sync(p);
    g_assert_cmpint(gwt_get_int(idle, "dirty-pages"), <=, 4);

    /* Ask the payload to rewrite its region once. */
    gwt_qmp_void(p, "{'execute': "
                                           "'x-guest-request'}");
    g_assert_true(gwt_wait_serial(p, "fill: done pass=1", 30000));
    gwt_sleep_ms(100);
    g_autoptr(JsonObject) d = dirty_sync(p);
    JsonArray *ranges = json_node_get_array(json_object_get_member(d,
                                                                   "ranges"));
    uint64_t in_region = 0, elsewhere = 0;
    for (guint i = 0; i < json_array_get_length(ranges); i++) {
        JsonObject *r = json_array_get_object_element(ranges, i);
        uint64_t gpa = gwt_get_int(r, "gpa");
        uint64_t n = gwt_get_int(r, "pages");
        for (uint64_t k = 0; k < n; k++) {
            uint64_t a = gpa + k * 4096;
            if (a >= r0 && a < r1) {
                in_region++;
            } else {
                /* only the payload's own bookkeeping may be dirty */
                if (a < w0 || a >= w1) {
                    g_error("page 0x%" G_GINT64_MODIFIER
                            "x dirty outside the region and image",
                            a);
                }
                elsewhere++;
            }
        }
    }
    g_test_message("dirty: %" G_GUINT64_FORMAT " region pages, %"
                   G_GUINT64_FORMAT " bookkeeping pages",
                   in_region, elsewhere);
    g_assert_cmpint(in_region, ==, (r1 - r0) / 4096);
    g_assert_cmpint(elsewhere, <=, 16);
    g_assert_false(gwt_get_bool(d, "truncated"));

    gwt_qmp_void(p, "{'execute': 'x-dirty-log', "
                                           "'arguments': {'action': "
                                           "'stop'}}");
    g_autofree char *e = gwt_qmp_err(p, "{'execute': 'x-dirty-log', "
                                        "'arguments': {'action': 'sync'}}");
    g_assert_nonnull(strstr(e, "not active"));
    gwt_free(p);
}

/* Last "pass=N" number printed by worker 0. */
static int last_pass(GwProc *p)
{
    g_autofree char *log = gwt_serial(p);
    const char *q = g_strrstr(log, "worker=0 cpu=0 pass=");
    return q ? atoi(q + strlen("worker=0 cpu=0 pass=")) : -1;
}

static void test_vcpu_state_reload(void)
{
    g_autofree char *elf = gwt_payload("guestperf");
    GwProc *p = gwt_start("reload", "-m 256M -smp 2 -kernel %s -append "
                                    "'vm=2 vm-bytes=32M'",
                          elf);

    g_assert_true(gwt_wait_serial_count(p, "worker=1 cpu=1", 5, 60000));
    for (int round = 0; round < 3; round++) {
        int before = last_pass(p);
        gwt_qmp_void(p, "{'execute': "
                                              "'x-reload-vcpus'}");
        /* The guest continues: passes go on from where they were ... */
        g_assert_true(gwt_wait_serial_count(p, "worker=0 cpu=0",
                                            before + 5, 30000));
        g_assert_cmpint(last_pass(p), >, before);
        /* ... and it did not boot again. */
        g_assert_cmpint(gwt_serial_count(p, "READY"), ==, 1);
        g_assert_cmpint(gwt_serial_count(p, ": boot "), ==, 1);
    }
    /* Both vCPUs survived the reload. */
    int w1 = gwt_serial_count(p, "worker=1 cpu=1");
    g_assert_true(gwt_wait_serial_count(p, "worker=1 cpu=1", w1 + 5, 30000));
    g_autofree char *st = gwt_status(p);
    g_assert_cmpstr(st, ==, "running");
    gwt_free(p);
}

static void test_vcpu_state_reload_verify(void)
{
    g_autofree char *elf = gwt_payload("verify");
    GwProc *p = gwt_start("reloadv", "-m 256M -kernel %s -append "
                                     "'vm-bytes=32M'",
                          elf);

    g_assert_true(gwt_wait_serial(p, "READY", 60000));
    gwt_qmp_void(p, "{'execute': 'stop'}");
    gwt_qmp_void(p, "{'execute': 'x-reload-vcpus'}");
    g_autofree char *st = gwt_status(p);
    g_assert_cmpstr(st, ==, "paused");
    gwt_qmp_void(p, "{'execute': 'cont'}");
    gwt_qmp_void(p, "{'execute': 'x-guest-request'}");
    g_assert_true(gwt_wait_serial(p, "verify ok", 30000));
    g_assert_cmpint(gwt_serial_count(p, "FAILED"), ==, 0);
    gwt_free(p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    g_test_add_func("/machine/smp", test_smp);
    g_test_add_func("/machine/dirty-log-exact", test_dirty_log_exact);
    g_test_add_func("/machine/vcpu-state-reload", test_vcpu_state_reload);
    g_test_add_func("/machine/vcpu-state-reload-verify",
                    test_vcpu_state_reload_verify);
    return g_test_run();
}
