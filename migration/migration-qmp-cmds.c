/*
 * Migration's QMP commands and their HMP forms: migrate, migrate-incoming,
 * migrate_cancel, migrate-continue, query-migrate (QEMU's MigrationInfo).
 * HMP rendering lives in migration-hmp-cmds.c.
 */
#include <string.h>

#include "godwit/cpu-throttle.h"
#include "godwit/monitor.h"
#include "migration-hmp.h"
#include "migration-int.h"
#include "migration/options.h"
#include "multifd.h"
#include "postcopy-preempt.h"
#include "ram.h"

static JsonNode *qmp_migrate(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"uri", "detach", "blk",
                                          "inc", "resume", NULL};
    const char *uri = NULL;
    bool detach = false, blk = false, inc = false, resume = false;

    if (!qmp_args_check(args, allowed, errp) ||
        !qmp_arg_str(args, "uri", true, &uri, errp) ||
        !qmp_arg_bool(args, "detach", false, &detach, errp) ||
        !qmp_arg_bool(args, "blk", false, &blk, errp) ||
        !qmp_arg_bool(args, "inc", false, &inc, errp) ||
        !qmp_arg_bool(args, "resume", false, &resume, errp)) {
        return NULL;
    }
    if (blk || inc) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "godwit has no block devices: block migration (blk/inc) "
                    "is not supported");
        return NULL;
    }
    if (resume) {
        return migrate_resume(uri, errp) ? qmp_return_empty() : NULL;
    }
    /* detach: QMP's migrate never waits, as in QEMU. */
    return migrate_start(uri, errp) ? qmp_return_empty() : NULL;
}

static JsonNode *qmp_migrate_incoming(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"uri", NULL};
    const char *uri = NULL;

    if (!qmp_args_check(args, allowed, errp) ||
        !qmp_arg_str(args, "uri", true, &uri, errp)) {
        return NULL;
    }
    if (!migration_incoming_get_current()->deferred) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "'-incoming' was not specified on the command line");
        return NULL;
    }
    if (!strcmp(uri, "defer")) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter 'uri' expects a migration URI, not 'defer'");
        return NULL;
    }
    return migration_incoming_start(uri, errp) ? qmp_return_empty() : NULL;
}

static JsonNode *qmp_migrate_cancel(JsonObject *args, GError **errp)
{
    return migrate_cancel(errp) ? qmp_return_empty() : NULL;
}

static JsonNode *qmp_migrate_start_postcopy(JsonObject *args, GError **errp)
{
    return migrate_start_postcopy(errp) ? qmp_return_empty() : NULL;
}

/* Post-copy recovery: break the connection on purpose (either side). */
static JsonNode *qmp_migrate_pause(JsonObject *args, GError **errp)
{
    MigrationIncomingState *mis = migration_incoming_get_current();

    if (atomic_load(&mis->status) == MIGRATION_STATUS_POSTCOPY_ACTIVE) {
        return migration_incoming_pause(errp) ? qmp_return_empty() : NULL;
    }
    return migrate_pause(errp) ? qmp_return_empty() : NULL;
}

static JsonNode *qmp_migrate_recover(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"uri", NULL};
    const char *uri = NULL;

    if (!qmp_args_check(args, allowed, errp) ||
        !qmp_arg_str(args, "uri", true, &uri, errp)) {
        return NULL;
    }
    return migration_incoming_recover(uri, errp) ? qmp_return_empty() : NULL;
}

static JsonNode *qmp_migrate_continue(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"state", NULL};
    const char *state = NULL;

    if (!qmp_args_check(args, allowed, errp) ||
        !qmp_arg_str(args, "state", true, &state, errp)) {
        return NULL;
    }
    return migrate_continue(state, errp) ? qmp_return_empty() : NULL;
}

/* Debug: breaks one multifd channel's connection (failure tests). */
static JsonNode *qmp_x_multifd_fault(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"channel", NULL};
    int64_t id = 0;

    if (!qmp_args_check(args, allowed, errp) ||
        !qmp_arg_int(args, "channel", true, &id, errp)) {
        return NULL;
    }
    if (id < 0 || id > 255) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter 'channel' expects a value between 0 and 255");
        return NULL;
    }
    return multifd_send_break_channel((int)id, errp) ? qmp_return_empty()
                                                     : NULL;
}

static JsonObject *ram_info(MigrationState *s, MigrationStatus st)
{
    JsonObject *r = json_object_new();
    uint64_t transferred = atomic_load(&ram_stats.transferred);
    double mbps = atomic_load(&s->mbps_x1000) / 1000.0;
    int64_t total_ms = atomic_load(&s->total_ms);

    if (st == MIGRATION_STATUS_COMPLETED && total_ms > 0) {
        /* average over the whole migration, as QEMU reports it */
        mbps = transferred * 8.0 / 1e6 / (total_ms / 1000.0);
    }
#define SET(k, v) json_object_set_int_member(r, k, (gint64)(v))
    SET("transferred", transferred);
    SET("remaining", atomic_load(&ram_stats.remaining));
    SET("total", current_machine->ram->used_length);
    SET("duplicate", atomic_load(&ram_stats.duplicate));
    SET("skipped", atomic_load(&ram_stats.skipped));
    SET("normal", atomic_load(&ram_stats.normal));
    SET("normal-bytes", atomic_load(&ram_stats.normal_bytes));
    SET("dirty-pages-rate", atomic_load(&ram_stats.dirty_pages_rate));
    json_object_set_double_member(r, "mbps", mbps);
    SET("dirty-sync-count", atomic_load(&ram_stats.dirty_sync_count));
    SET("postcopy-requests", atomic_load(&ram_stats.postcopy_requests));
    SET("page-size", GW_PAGE_SIZE);
    SET("multifd-bytes", multifd_bytes_transferred());
    SET("pages-per-second", atomic_load(&ram_stats.pages_per_second));
    SET("precopy-bytes", atomic_load(&ram_stats.precopy_bytes));
    SET("downtime-bytes", atomic_load(&ram_stats.downtime_bytes));
    SET("postcopy-bytes", atomic_load(&ram_stats.postcopy_bytes));
    SET("dirty-sync-missed-zero-copy",
        atomic_load(&ram_stats.dirty_sync_missed_zero_copy));
#undef SET
    return r;
}

static JsonObject *xbzrle_info(void)
{
    JsonObject *x = json_object_new();

    json_object_set_int_member(x, "cache-size",
                               atomic_load(&xbzrle_stats.cache_size));
    json_object_set_int_member(x, "bytes", atomic_load(&xbzrle_stats.bytes));
    json_object_set_int_member(x, "pages", atomic_load(&xbzrle_stats.pages));
    json_object_set_int_member(x, "cache-miss",
                               atomic_load(&xbzrle_stats.cache_miss));
    json_object_set_double_member(
        x, "cache-miss-rate",
        atomic_load(&xbzrle_stats.cache_miss_rate_ppm) / 1e6);
    json_object_set_double_member(
        x, "encoding-rate",
        atomic_load(&xbzrle_stats.encoding_rate_x1000) / 1000.0);
    json_object_set_int_member(x, "overflow",
                               atomic_load(&xbzrle_stats.overflow));
    return x;
}

static JsonObject *compression_info(void)
{
    JsonObject *c = json_object_new();

    json_object_set_int_member(c, "pages",
                               atomic_load(&compression_stats.pages));
    json_object_set_int_member(c, "busy", atomic_load(&compression_stats.busy));
    json_object_set_double_member(
        c, "busy-rate", atomic_load(&compression_stats.busy_rate_ppm) / 1e6);
    json_object_set_int_member(c, "compressed-size",
                               atomic_load(&compression_stats.compressed_size));
    json_object_set_double_member(
        c, "compression-rate",
        atomic_load(&compression_stats.compression_rate_x1000) / 1000.0);
    return c;
}

/* The per-feature blocks of an active or completed migration. */
/*
 * godwit's: the guest's stall under the throttle in this migration (the
 * longest sleep of any vCPU, how many, their total), once there was one.
 */
static void stall_info(JsonObject *o)
{
    CpuThrottleStall st;
    JsonObject *j;

    cpu_throttle_stall_get(&st);
    if (!st.sleeps) {
        return;
    }
    j = json_object_new();
    json_object_set_int_member(j, "max-us", st.max_us);
    json_object_set_int_member(j, "sleeps", (gint64)st.sleeps);
    json_object_set_int_member(j, "total-ms", st.total_us / 1000);
    json_object_set_object_member(o, "x-vcpu-stall", j);
}

static void feature_info(JsonObject *o)
{
    stall_info(o);
    if (migrate_cap(MIGRATION_CAPABILITY_XBZRLE)) {
        json_object_set_object_member(o, "xbzrle-cache", xbzrle_info());
    }
    if (migrate_cap(MIGRATION_CAPABILITY_COMPRESS)) {
        json_object_set_object_member(o, "compression", compression_info());
    }
}

/*
 * QEMU 8.1's dirty-limit figures, while the capability's limits are on.
 * godwit's equivalents (no ring): the longest sleep a limited vCPU gets
 * per throttle round, and the time it runs before that sleep, which is
 * what QEMU's "ring full time" is (the time to fill the ring, after
 * which the vCPU sleeps).
 */
static void dirty_limit_info(JsonObject *o)
{
    uint64_t sleep_us, run_us;

    if (migrate_cap(MIGRATION_CAPABILITY_DIRTY_LIMIT) &&
        dirty_limit_throttle_info(&sleep_us, &run_us)) {
        json_object_set_int_member(o, "dirty-limit-throttle-time-per-round",
                                   (gint64)sleep_us);
        json_object_set_int_member(o, "dirty-limit-ring-full-time",
                                   (gint64)run_us);
    }
}

/* Source side of MigrationInfo; returns false when there is none. */
static bool source_info(JsonObject *o)
{
    MigrationState *s = migrate_get_current();
    MigrationStatus st = migrate_status(s);
    int64_t now = g_get_real_time() / 1000;

    if (st == MIGRATION_STATUS_NONE) {
        return false;
    }
    json_object_set_string_member(o, "status", migration_status_name(st));
    switch (st) {
    case MIGRATION_STATUS_ACTIVE:
    case MIGRATION_STATUS_CANCELLING:
    case MIGRATION_STATUS_PRE_SWITCHOVER:
    case MIGRATION_STATUS_DEVICE:
    case MIGRATION_STATUS_POSTCOPY_ACTIVE:
    case MIGRATION_STATUS_POSTCOPY_PAUSED:
    case MIGRATION_STATUS_POSTCOPY_RECOVER:
        json_object_set_int_member(o, "total-time",
                                   now - atomic_load(&s->start_ms));
        if (migration_in_postcopy()) {
            /* the stop is over: the guest runs on the destination */
            json_object_set_int_member(o, "downtime",
                                       atomic_load(&s->downtime_ms));
        } else {
            json_object_set_int_member(o, "expected-downtime",
                                       atomic_load(&s->expected_downtime_ms));
        }
        json_object_set_int_member(o, "setup-time", atomic_load(&s->setup_ms));
        json_object_set_object_member(o, "ram", ram_info(s, st));
        feature_info(o);
        if (cpu_throttle_active()) {
            json_object_set_int_member(o, "cpu-throttle-percentage",
                                       cpu_throttle_get_percentage());
        }
        dirty_limit_info(o);
        break;
    case MIGRATION_STATUS_COMPLETED:
        json_object_set_int_member(o, "total-time", atomic_load(&s->total_ms));
        json_object_set_int_member(o, "downtime", atomic_load(&s->downtime_ms));
        json_object_set_int_member(o, "setup-time", atomic_load(&s->setup_ms));
        json_object_set_object_member(o, "ram", ram_info(s, st));
        feature_info(o);
        break;
    case MIGRATION_STATUS_FAILED:
        g_mutex_lock(&s->lock);
        if (s->error_desc) {
            json_object_set_string_member(o, "error-desc", s->error_desc);
        }
        g_mutex_unlock(&s->lock);
        break;
    default:
        break;
    }
    return true;
}

/* "socket-address": [{"type": "inet", "host": ..., "port": ...}] */
static void add_socket_address(JsonObject *o, const char *addr)
{
    JsonArray *a = json_array_new();
    JsonObject *sa = json_object_new();
    const char *colon;

    if (g_str_has_prefix(addr, "tcp:") && (colon = strrchr(addr, ':'))) {
        g_autofree char *host = g_strndup(addr + 4, colon - addr - 4);
        json_object_set_string_member(sa, "type", "inet");
        if (host[0] == '[') {
            host[strlen(host) - 1] = '\0';
            json_object_set_string_member(sa, "host", host + 1);
        } else {
            json_object_set_string_member(sa, "host", host);
        }
        json_object_set_string_member(sa, "port", colon + 1);
    } else if (g_str_has_prefix(addr, "unix:")) {
        json_object_set_string_member(sa, "type", "unix");
        json_object_set_string_member(sa, "path", addr + 5);
    } else {
        json_object_unref(sa);
        json_array_unref(a);
        return;
    }
    json_array_add_object_element(a, sa);
    json_object_set_array_member(o, "socket-address", a);
}

/*
 * Destination after LISTEN: with postcopy-blocktime, as QEMU, the time
 * all vCPUs were blocked at once and each vCPU's, in ms (during and after
 * post-copy); and godwit's fault latency percentiles.
 */
static void postcopy_blocktime_info(JsonObject *o)
{
    PostcopyRamStats st;
    JsonObject *lat;
    JsonArray *a;

    if (!ram_load_postcopy_stats(&st)) {
        if (!ram_load_postcopy_final_valid) {
            return;
        }
        st = ram_load_postcopy_final;
    }
    /* godwit's: how long a faulting thread waited for its page */
    lat = json_object_new();
    json_object_set_int_member(lat, "faults", st.latency_samples);
    json_object_set_int_member(lat, "p50-us", st.fault_latency_us_p50);
    json_object_set_int_member(lat, "p99-us", st.fault_latency_us_p99);
    json_object_set_int_member(lat, "max-us", st.fault_latency_us_max);
    json_object_set_int_member(lat, "preempt-pages", preempt_pages_placed());
    json_object_set_object_member(o, "x-postcopy-fault-latency", lat);
    if (!migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME) ||
        !st.blocktime_available) {
        return;
    }
    json_object_set_int_member(o, "postcopy-blocktime", st.blocktime_ms);
    a = json_array_new();
    for (int i = 0; i < st.nr_vcpus; i++) {
        json_array_add_int_element(a, st.vcpu_blocktime_ms[i]);
    }
    json_object_set_array_member(o, "postcopy-vcpu-blocktime", a);
}

static void destination_info(JsonObject *o)
{
    MigrationIncomingState *mis = migration_incoming_get_current();
    MigrationStatus st = atomic_load(&mis->status);

    if (st == MIGRATION_STATUS_NONE) {
        return;
    }
    json_object_set_string_member(o, "status", migration_status_name(st));
    if (st == MIGRATION_STATUS_COMPLETED) {
        json_object_set_int_member(o, "total-time",
                                   atomic_load(&mis->total_ms));
    }
    if (st == MIGRATION_STATUS_FAILED && mis->error_desc) {
        json_object_set_string_member(o, "error-desc", mis->error_desc);
    }
    /* where it listens: for the source's migrate, or its migrate resume */
    if (mis->address && (st == MIGRATION_STATUS_SETUP ||
                         st == MIGRATION_STATUS_POSTCOPY_PAUSED ||
                         st == MIGRATION_STATUS_POSTCOPY_RECOVER)) {
        add_socket_address(o, mis->address);
    }
    postcopy_blocktime_info(o);
}

static JsonNode *qmp_query_migrate(JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();

    if (!source_info(o)) {
        destination_info(o);
    }
    return qmp_return_object(o);
}

static const MonitorCommand migration_commands[] = {
    {
        .name = "migrate",
        .handler = qmp_migrate,
        .hmp_name = "migrate",
        .args_type = "detach:-d,resume:-r,uri:s",
        .params = "[-d] [-r] uri",
        .help = "migrate to URI (using -d to not wait for completion)\n\t\t\t"
                " -r to resume a paused postcopy migration",
        .hmp_wait = hmp_migrate_wait,
    },
    {
        .name = "migrate-incoming",
        .handler = qmp_migrate_incoming,
        .hmp_name = "migrate_incoming",
        .args_type = "uri:s",
        .params = "uri",
        .help = "Continue an incoming migration from an -incoming defer",
    },
    {
        .name = "migrate_cancel",
        .handler = qmp_migrate_cancel,
        .hmp_name = "migrate_cancel",
        .help = "cancel the current VM migration",
    },
    {
        .name = "migrate-start-postcopy",
        .handler = qmp_migrate_start_postcopy,
        .hmp_name = "migrate_start_postcopy",
        .help = "Followup to a migration command to switch the migration"
                " to postcopy mode. The postcopy-ram capability must "
                "be set on both source and destination before the "
                "original migration command .",
    },
    {
        .name = "migrate-pause",
        .handler = qmp_migrate_pause,
        .hmp_name = "migrate_pause",
        .help = "Pause an ongoing migration (postcopy-only)",
    },
    {
        .name = "migrate-recover",
        .handler = qmp_migrate_recover,
        .hmp_name = "migrate_recover",
        .args_type = "uri:s",
        .params = "uri",
        .help = "Continue a paused incoming postcopy migration",
    },
    {
        .name = "migrate-continue",
        .handler = qmp_migrate_continue,
        .hmp_name = "migrate_continue",
        .args_type = "state:s",
        .params = "state",
        .help = "Continue migration from the given paused state",
    },
    {
        .name = "x-multifd-fault",
        .handler = qmp_x_multifd_fault,
        .hmp_name = "x_multifd_fault",
        .args_type = "channel:i",
        .params = "channel",
        .help = "break a multifd channel's connection of the outgoing "
                "migration (debug: failure tests)",
    },
    {
        .name = "query-migrate",
        .handler = qmp_query_migrate,
        .hmp_name = "info migrate",
        .help = "show migration status",
        .hmp_print = hmp_info_migrate,
    },
};

void migration_register_qmp_commands(void)
{
    monitor_register_commands(migration_commands,
                              G_N_ELEMENTS(migration_commands));
    migration_register_ram_hash_command();
}
