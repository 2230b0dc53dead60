/*
 * HMP forms of migration's queries: `info migrate` with QEMU's labels,
 * and waiting for `migrate` without -d.
 */
#include <string.h>

#include "migration-hmp.h"
#include "migration-int.h"
#include "migration/options.h"

static gint64 get_int(JsonObject *o, const char *k)
{
    return json_object_has_member(o, k) ? json_object_get_int_member(o, k) : 0;
}

static void info_globals(GString *out)
{
    /* godwit's fixed stream settings, named as QEMU's migration globals */
    g_string_append(out, "globals:\n"
                         "store-global-state: off\n"
                         "only-migratable: off\n"
                         "send-configuration: on\n"
                         "send-section-footer: on\n"
                         "decompress-error-check: on\n");
    g_string_append_printf(out, "clear-bitmap-shift: %d\n", 14);
}

static void info_ram(GString *out, JsonObject *r)
{
#define KB(k) (get_int(r, k) >> 10)
    g_string_append_printf(out,
                           "transferred ram: %" G_GINT64_FORMAT " kbytes\n",
                           KB("transferred"));
    g_string_append_printf(out, "throughput: %0.2f mbps\n",
                           json_object_get_double_member(r, "mbps"));
    g_string_append_printf(out, "remaining ram: %" G_GINT64_FORMAT " kbytes\n",
                           KB("remaining"));
    g_string_append_printf(out, "total ram: %" G_GINT64_FORMAT " kbytes\n",
                           KB("total"));
    g_string_append_printf(out, "duplicate: %" G_GINT64_FORMAT " pages\n",
                           get_int(r, "duplicate"));
    g_string_append_printf(out, "skipped: %" G_GINT64_FORMAT " pages\n",
                           get_int(r, "skipped"));
    g_string_append_printf(out, "normal: %" G_GINT64_FORMAT " pages\n",
                           get_int(r, "normal"));
    g_string_append_printf(out, "normal bytes: %" G_GINT64_FORMAT " kbytes\n",
                           KB("normal-bytes"));
    g_string_append_printf(out, "dirty sync count: %" G_GINT64_FORMAT "\n",
                           get_int(r, "dirty-sync-count"));
    g_string_append_printf(out, "page size: %" G_GINT64_FORMAT " kbytes\n",
                           KB("page-size"));
    g_string_append_printf(out, "multifd bytes: %" G_GINT64_FORMAT " kbytes\n",
                           KB("multifd-bytes"));
    g_string_append_printf(out, "pages-per-second: %" G_GINT64_FORMAT "\n",
                           get_int(r, "pages-per-second"));
    if (get_int(r, "dirty-pages-rate")) {
        g_string_append_printf(out,
                               "dirty pages rate: %" G_GINT64_FORMAT " pages\n",
                               get_int(r, "dirty-pages-rate"));
    }
    if (get_int(r, "postcopy-requests")) {
        g_string_append_printf(out,
                               "postcopy request count: %" G_GINT64_FORMAT "\n",
                               get_int(r, "postcopy-requests"));
    }
    if (get_int(r, "precopy-bytes")) {
        g_string_append_printf(out,
                               "precopy ram: %" G_GINT64_FORMAT " kbytes\n",
                               KB("precopy-bytes"));
    }
    if (get_int(r, "downtime-bytes")) {
        g_string_append_printf(out,
                               "downtime ram: %" G_GINT64_FORMAT " kbytes\n",
                               KB("downtime-bytes"));
    }
    if (get_int(r, "postcopy-bytes")) {
        g_string_append_printf(out,
                               "postcopy ram: %" G_GINT64_FORMAT " kbytes\n",
                               KB("postcopy-bytes"));
    }
    if (get_int(r, "dirty-sync-missed-zero-copy")) {
        g_string_append_printf(
            out,
            "Zero-copy-send fallbacks happened: %" G_GINT64_FORMAT " times\n",
            get_int(r, "dirty-sync-missed-zero-copy"));
    }
#undef KB
}

void hmp_info_migrate(GString *out, JsonNode *ret)
{
    JsonObject *o = json_node_get_object(ret);

    info_globals(out);
    if (!json_object_has_member(o, "status")) {
        return;
    }
    g_string_append_printf(out, "Migration status: %s",
                           json_object_get_string_member(o, "status"));
    if (json_object_has_member(o, "error-desc")) {
        g_string_append_printf(out, " (%s)",
                               json_object_get_string_member(o, "error-desc"));
    }
    g_string_append_c(out, '\n');
    if (json_object_has_member(o, "total-time")) {
        g_string_append_printf(out, "total time: %" G_GINT64_FORMAT " ms\n",
                               get_int(o, "total-time"));
    }
    if (json_object_has_member(o, "expected-downtime")) {
        g_string_append_printf(out,
                               "expected downtime: %" G_GINT64_FORMAT " ms\n",
                               get_int(o, "expected-downtime"));
    }
    if (json_object_has_member(o, "downtime")) {
        g_string_append_printf(out, "downtime: %" G_GINT64_FORMAT " ms\n",
                               get_int(o, "downtime"));
    }
    if (json_object_has_member(o, "setup-time")) {
        g_string_append_printf(out, "setup: %" G_GINT64_FORMAT " ms\n",
                               get_int(o, "setup-time"));
    }
    if (json_object_has_member(o, "ram")) {
        info_ram(out, json_object_get_object_member(o, "ram"));
    }
    if (json_object_has_member(o, "xbzrle-cache")) {
        JsonObject *x = json_object_get_object_member(o, "xbzrle-cache");
        g_string_append_printf(out, "cache size: %" G_GINT64_FORMAT " bytes\n",
                               get_int(x, "cache-size"));
        g_string_append_printf(
            out, "xbzrle transferred: %" G_GINT64_FORMAT " kbytes\n",
            get_int(x, "bytes") >> 10);
        g_string_append_printf(out,
                               "xbzrle pages: %" G_GINT64_FORMAT " pages\n",
                               get_int(x, "pages"));
        g_string_append_printf(
            out, "xbzrle cache miss: %" G_GINT64_FORMAT " pages\n",
            get_int(x, "cache-miss"));
        g_string_append_printf(
            out, "xbzrle cache miss rate: %0.2f\n",
            json_object_get_double_member(x, "cache-miss-rate"));
        g_string_append_printf(
            out, "xbzrle encoding rate: %0.2f\n",
            json_object_get_double_member(x, "encoding-rate"));
        g_string_append_printf(out, "xbzrle overflow: %" G_GINT64_FORMAT "\n",
                               get_int(x, "overflow"));
    }
    if (json_object_has_member(o, "compression")) {
        JsonObject *c = json_object_get_object_member(o, "compression");
        g_string_append_printf(
            out, "compression pages: %" G_GINT64_FORMAT " pages\n",
            get_int(c, "pages"));
        g_string_append_printf(out, "compression busy: %" G_GINT64_FORMAT "\n",
                               get_int(c, "busy"));
        g_string_append_printf(out, "compression busy rate: %0.2f\n",
                               json_object_get_double_member(c, "busy-rate"));
        g_string_append_printf(out,
                               "compressed size: %" G_GINT64_FORMAT " kbytes\n",
                               get_int(c, "compressed-size") >> 10);
        g_string_append_printf(
            out, "compression rate: %0.2f\n",
            json_object_get_double_member(c, "compression-rate"));
    }
    if (json_object_has_member(o, "cpu-throttle-percentage")) {
        g_string_append_printf(
            out, "cpu throttle percentage: %" G_GINT64_FORMAT "\n",
            get_int(o, "cpu-throttle-percentage"));
    }
    if (json_object_has_member(o, "x-vcpu-stall")) {
        JsonObject *st = json_object_get_object_member(o, "x-vcpu-stall");
        g_string_append_printf(
            out,
            "vcpu stall: longest %" G_GINT64_FORMAT " ms, %" G_GINT64_FORMAT
            " throttle sleeps, %" G_GINT64_FORMAT " ms in all\n",
            get_int(st, "max-us") / 1000, get_int(st, "sleeps"),
            get_int(st, "total-ms"));
    }
    if (json_object_has_member(o, "dirty-limit-throttle-time-per-round")) {
        g_string_append_printf(
            out, "dirty-limit throttle time: %" G_GINT64_FORMAT " us\n",
            get_int(o, "dirty-limit-throttle-time-per-round"));
    }
    if (json_object_has_member(o, "dirty-limit-ring-full-time")) {
        g_string_append_printf(
            out, "dirty-limit ring full time: %" G_GINT64_FORMAT " us\n",
            get_int(o, "dirty-limit-ring-full-time"));
    }
    if (json_object_has_member(o, "postcopy-blocktime")) {
        g_string_append_printf(out,
                               "postcopy blocktime: %" G_GINT64_FORMAT "\n",
                               get_int(o, "postcopy-blocktime"));
    }
    if (json_object_has_member(o, "postcopy-vcpu-blocktime")) {
        JsonArray *a =
            json_object_get_array_member(o, "postcopy-vcpu-blocktime");
        g_string_append(out, "postcopy vcpu blocktime: [");
        for (guint i = 0; i < json_array_get_length(a); i++) {
            g_string_append_printf(out, "%s%" G_GINT64_FORMAT, i ? ", " : "",
                                   json_array_get_int_element(a, i));
        }
        g_string_append(out, "]\n");
    }
    if (json_object_has_member(o, "socket-address")) {
        JsonArray *a = json_object_get_array_member(o, "socket-address");
        g_string_append(out, "socket address: [\n");
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonObject *sa = json_array_get_object_element(a, i);
            if (json_object_has_member(sa, "port")) {
                g_string_append_printf(
                    out, "\ttcp:%s:%s\n",
                    json_object_get_string_member(sa, "host"),
                    json_object_get_string_member(sa, "port"));
            } else {
                g_string_append_printf(
                    out, "\tunix:%s\n",
                    json_object_get_string_member(sa, "path"));
            }
        }
        g_string_append(out, "]\n");
    }
}

bool hmp_migrate_wait(JsonObject *args, GString *out)
{
    MigrationState *s = migrate_get_current();
    MigrationStatus st;

    if (json_object_has_member(args, "detach") &&
        json_object_get_boolean_member(args, "detach")) {
        return true;
    }
    if (migration_is_running()) {
        return false;
    }
    st = migrate_status(s);
    if (st == MIGRATION_STATUS_FAILED) {
        g_mutex_lock(&s->lock);
        g_string_append_printf(out, "Error: %s\n",
                               s->error_desc ? s->error_desc : "failed");
        g_mutex_unlock(&s->lock);
    }
    return true;
}
