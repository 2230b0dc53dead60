/*
 * qtest: the compress capability. A running verify guest (pages 1/8 data,
 * so they compress) migrates with compression threads on the source and
 * decompression threads on the destination, for every compress-method,
 * and together with XBZRLE, and with compress-wait-thread off (zlib, lz4):
 * RAM hashes equal, verify ok, pages went compressed and the wire carried
 * less than the pages. A destination
 * without the capability refuses the stream; the source keeps running.
 */
#include <string.h>

#include "migration-helpers.h"

/* 32 MiB rewritten at 8 MiB/s; one 8-byte word in every 64 bytes */
#define APPEND "vm=1 vm-bytes=32M vm-stride=64 rate=8M"

static void set_compress(GwProc *p, const char *method, bool wait)
{
    mig_set_cap(p, "compress", true);
    gwt_qmp_void(p,
                 "{'execute': 'migrate-set-parameters', 'arguments': "
                 "{'compress-method': '%s', 'compress-threads': 2, "
                 "'decompress-threads': 2, 'compress-level': 1, "
                 "'compress-wait-thread': %s}}",
                 method, wait ? "true" : "false");
}

static void migrate_compressed(const char *method, bool xbzrle, bool wait)
{
    MigPair *mp = mig_pair_start("128M", "verify", APPEND, "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");

    set_compress(mp->src, method, wait);
    set_compress(mp->dst, method, true);
    if (xbzrle) {
        mig_set_cap(mp->src, "xbzrle", true);
    }
    mig_set_speed(mp->src, 32 << 20, 300);
    gwt_sleep_ms(300);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, 120000);
    g_assert_cmpstr(st, ==, "completed");

    g_autoptr(JsonObject) q = mig_query(mp->src);
    JsonObject *c = gwt_get_obj(q, "compression");
    JsonObject *ram = gwt_get_obj(q, "ram");
    int64_t pages = gwt_get_int(c, "pages");
    int64_t size = gwt_get_int(c, "compressed-size");
    int64_t busy = gwt_get_int(c, "busy");
    g_test_message("%s%s%s: %" G_GINT64_FORMAT
                   " pages compressed to %" G_GINT64_FORMAT
                   " bytes, %" G_GINT64_FORMAT " busy, %" G_GINT64_FORMAT
                   " bytes transferred",
                   method, xbzrle ? "+xbzrle" : "", wait ? "" : " nowait",
                   pages, size, busy, gwt_get_int(ram, "transferred"));
    /*
     * the 32 MiB region went compressed: 8192 pages and more (without
     * waiting, a page whose worker was busy went whole instead)
     */
    g_assert_cmpint(pages + (wait ? 0 : busy), >=, 8192);
    if (wait) {
        g_assert_cmpint(busy, ==, 0);
    } else {
        g_assert_cmpint(pages, >, 0);
    }
    g_assert_cmpint(size, <, pages * 4096 / 3);
    g_assert_cmpint(gwt_get_int(ram, "transferred"), <,
                    (pages + gwt_get_int(ram, "normal")) * 4096);
    if (xbzrle) {
        g_assert_cmpint(gwt_get_int(gwt_get_obj(q, "xbzrle-cache"), "pages"), >,
                        0);
    }
    g_autofree char *info = gwt_hmp(mp->src, "info migrate");
    g_assert_nonnull(strstr(info, "compression pages: "));
    g_assert_nonnull(strstr(info, "compressed size: "));
    mig_check_destination(mp, true);
    mig_pair_free(mp);
}

static void test_compress_zlib(void)
{
    migrate_compressed("zlib", false, true);
}

static void test_compress_zstd(void)
{
    migrate_compressed("zstd", false, true);
}

static void test_compress_lz4(void)
{
    migrate_compressed("lz4", false, true);
}

static void test_compress_xbzrle(void)
{
    migrate_compressed("zlib", true, true);
}

/* compress-wait-thread off: busy workers' pages go whole, nothing lost */
static void test_compress_nowait_zlib(void)
{
    migrate_compressed("zlib", false, false);
}

static void test_compress_nowait_lz4(void)
{
    migrate_compressed("lz4", false, false);
}

/* Compressed pages to a destination that does not expect them. */
static void test_compress_refused(void)
{
    MigPair *mp =
        mig_pair_start("64M", "verify", "vm=1 vm-bytes=8M vm-stride=64 rate=4M",
                       "unix:%d/mig.sock");
    g_autofree char *uri = mig_connect_uri(mp, "unix:%d/mig.sock");

    set_compress(mp->src, "lz4", true);
    g_autofree char *st = mig_migrate_wait(mp->src, uri, 60000);
    g_assert_cmpstr(st, ==, "failed");
    g_autoptr(JsonObject) q = mig_query(mp->src);
    g_test_message("source: %s", gwt_get_str(q, "error-desc"));
    g_assert_true(gwt_wait_exit(mp->dst, 10000));
    g_autofree char *log = gwt_stderr(mp->dst);
    g_assert_nonnull(strstr(log, "unexpected compressed page"));
    /* the source runs on, its memory intact: verify checks it */
    g_autofree char *run = gwt_status(mp->src);
    g_assert_cmpstr(run, ==, "running");
    gwt_qmp_void(mp->src, "{'execute': 'x-guest-request'}");
    g_assert_true(gwt_wait_serial(mp->src, "verify ok", 30000));
    g_assert_cmpint(gwt_serial_count(mp->src, "FAILED"), ==, 0);
    mig_pair_free(mp);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_message("accelerator: %s", gwt_accel());
    /* one method stands for all in the second pass (the accelerator's) */
    if (!gwt_second_pass()) {
        g_test_add_func("/migration/compress/zlib", test_compress_zlib);
    }
    g_test_add_func("/migration/compress/zstd", test_compress_zstd);
    if (!gwt_second_pass()) {
        g_test_add_func("/migration/compress/lz4", test_compress_lz4);
    }
    g_test_add_func("/migration/compress/xbzrle", test_compress_xbzrle);
    if (!gwt_second_pass()) {
        g_test_add_func("/migration/compress/nowait-zlib",
                        test_compress_nowait_zlib);
    }
    g_test_add_func("/migration/compress/nowait-lz4", test_compress_nowait_lz4);
    g_test_add_func("/migration/compress/refused", test_compress_refused);
    return g_test_run();
}
