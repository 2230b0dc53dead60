/*
 * qtest: XBZRLE on a guest that changes only a few bytes of each page per
 * pass. The same migration with and without XBZRLE: both proven (equal
 * RAM hashes, verify ok), XBZRLE pages sent, fewer bytes on the wire.
 */
#include <string.h>

#include "migration-helpers.h"

/* 32 MiB rewritten at 16 MiB/s, 32 bytes changed per page per pass */
#define APPEND "vm=1 vm-bytes=32M vm-stride=128 rate=16M"

static JsonObject *migrate_once(bool xbzrle, int64_t *bytes)
{
    MigPair *mp = mig_pair_start("128M", "verify", APPEND,
                                 "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");
    JsonObject *q, *ret = NULL;

    mig_set_speed(mp->src, 24 << 20, 1000);
    if (xbzrle) {
        mig_set_cap(mp->src, "xbzrle", true);
        gwt_qmp_void(mp->src, "{'execute': 'migrate-set-parameters', "
                              "'arguments': {'xbzrle-cache-size': %d}}",
                     64 << 20);
    }
    gwt_sleep_ms(500);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, 120000);
    g_assert_cmpstr(st, ==, "completed");
    q = mig_query(mp->src);
    *bytes = gwt_get_int(gwt_get_obj(q, "ram"), "transferred");
    if (xbzrle) {
        ret = json_object_ref(gwt_get_obj(q, "xbzrle-cache"));
        g_autofree char *info = gwt_hmp(mp->src, "info migrate");
        g_assert_nonnull(strstr(info, "xbzrle pages: "));
        g_assert_nonnull(strstr(info, "cache size: 67108864 bytes"));
    } else {
        g_assert_false(json_object_has_member(q, "xbzrle-cache"));
    }
    json_object_unref(q);
    mig_check_destination(mp, true);
    mig_pair_free(mp);
    return ret;
}

static void test_xbzrle_vs_plain(void)
{
    int64_t plain, delta;
    g_autoptr(JsonObject) none = migrate_once(false, &plain);
    g_autoptr(JsonObject) x = migrate_once(true, &delta);

    g_test_message("transferred: %" G_GINT64_FORMAT " bytes plain, %"
                   G_GINT64_FORMAT " with xbzrle (%" G_GINT64_FORMAT
                   " pages, %" G_GINT64_FORMAT " bytes, %" G_GINT64_FORMAT
                   " misses, %" G_GINT64_FORMAT " overflows)",
                   plain, delta, gwt_get_int(x, "pages"),
                   gwt_get_int(x, "bytes"), gwt_get_int(x, "cache-miss"),
                   gwt_get_int(x, "overflow"));
    g_assert_null(none);
    g_assert_cmpint(gwt_get_int(x, "pages"), >, 0);
    g_assert_cmpint(gwt_get_int(x, "cache-size"), ==, 64 << 20);
    g_assert_cmpint(delta, <, plain);
}

/* The cache can be resized while a migration runs, as in QEMU. */
static void test_xbzrle_resize_during(void)
{
    MigPair *mp = mig_pair_start("128M", "verify", APPEND,
                                 "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");

    mig_set_speed(mp->src, 8 << 20, 1000);
    mig_set_cap(mp->src, "xbzrle", true);
    gwt_qmp_void(mp->src, "{'execute': 'migrate', 'arguments': {'uri': "
                          "'%s'}}",
                 uri);
    g_assert_true(mig_wait_status(mp->src, "active", 30000));
    gwt_sleep_ms(1500);
    gwt_qmp_void(mp->src, "{'execute': 'migrate-set-parameters', "
                          "'arguments': {'xbzrle-cache-size': %d, "
                          "'max-bandwidth': %d}}",
                 16 << 20, 64 << 20);
    g_assert_true(mig_wait_status(mp->src, "completed", 120000));
    g_autoptr(JsonObject) q = mig_query(mp->src);
    g_assert_cmpint(gwt_get_int(gwt_get_obj(q, "xbzrle-cache"),
                                "cache-size"),
                    ==, 16 << 20);
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    g_test_add_func("/migration/xbzrle/vs-plain", test_xbzrle_vs_plain);
    g_test_add_func("/migration/xbzrle/resize", test_xbzrle_resize_during);
    return g_test_run();
}
