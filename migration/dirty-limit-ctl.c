/*
 * dirty-limit's controller, commands and migration hooks (policy:
 * dirty-limit.c; docs/devel/auto-converge.md, "dirty-limit").
 *
 * A vCPU with a limit (MB/s) is throttled alone, through its run share in
 * the vCPU throttle (system/cpu-throttle.c). A thread of its own
 * ("dirty-limit") wakes every x-vcpu-dirty-limit-period ms, reads how
 * many pages each vCPU dirtied from the accelerator's per-vCPU count
 * (AccelOps.vcpu_dirty_*), and moves each limited vCPU's run share with
 * dirty_limit_step(). The count runs while any vCPU has a limit; an
 * accelerator without it (KVM without a dirty ring) refuses every limit,
 * and the capability, with QEMU's words.
 *
 * Commands (QEMU 7.1): set-vcpu-dirty-limit, cancel-vcpu-dirty-limit,
 * query-vcpu-dirty-limit; HMP set_vcpu_dirty_limit,
 * cancel_vcpu_dirty_limit, info vcpu_dirty_limit. Migration (QEMU 8.1,
 * capability dirty-limit): when auto-converge would step, every vCPU gets
 * vcpu-dirty-limit; when the migration ends, however it ends, the limits
 * it set go and the ones set by hand before it come back.
 */
#include <string.h>

#include "dirty-limit.h"
#include "godwit/cpu-throttle.h"
#include "godwit/machine.h"
#include "godwit/monitor.h"
#include "migration-int.h"
#include "migration/options.h"

static struct {
    GMutex lock;     /* protects everything below */
    GCond cond;      /* wakes the thread: a change, or quit */
    GThread *thread; /* started with the first count, joined at shutdown */
    bool quit;
    bool counting; /* the accelerator's per-vCPU count is on */
    Machine *m;
    uint64_t *limit;    /* MB/s per vCPU, 0 = none */
    uint64_t *rate_bps; /* measured over the last period */
    uint32_t *run;      /* run share given to the throttle (ppm) */
    uint64_t *pages;    /* the count at the last period's end */
    uint64_t *saved;    /* limits set by hand that the migration replaced */
    bool migration_set; /* the limits now are the migration's */
    int64_t last_us;    /* monotonic, the last period's end */
} dl;

#define DL_QMP_NO_COUNT                                                        \
    "dirty page limit feature requires KVM with accelerator property "         \
    "'dirty-ring-size' set'"
#define DL_CAP_NO_COUNT                                                        \
    "dirty-limit requires KVM with accelerator property 'dirty-ring-size' set"

/* lock held: the per-vCPU arrays, once. */
static void dl_init_locked(void)
{
    Machine *m = current_machine;

    if (dl.m) {
        return;
    }
    dl.m = m;
    dl.limit = g_new0(uint64_t, m->smp);
    dl.rate_bps = g_new0(uint64_t, m->smp);
    dl.run = g_new(uint32_t, m->smp);
    dl.pages = g_new0(uint64_t, m->smp);
    dl.saved = g_new0(uint64_t, m->smp);
    for (int i = 0; i < m->smp; i++) {
        dl.run[i] = DIRTY_LIMIT_RUN_FULL;
    }
}

static bool dl_in_service_locked(void)
{
    for (int i = 0; dl.m && i < dl.m->smp; i++) {
        if (dl.limit[i]) {
            return true;
        }
    }
    return false;
}

static gpointer dl_thread(gpointer opaque);

/*
 * lock held: starts the accelerator's count. `qemu_words` is QEMU's
 * refusal for a KVM without the dirty ring; the accelerator's own error
 * follows it, or a hint where it has no count at all.
 */
static bool dl_count_start_locked(const char *qemu_words, GError **errp)
{
    const AccelOps *ops;
    GError *err = NULL;

    dl_init_locked();
    if (dl.counting) {
        return true;
    }
    ops = dl.m->accel;
    if (!ops->vcpu_dirty_start) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "%s (the %s accelerator cannot count dirty pages per "
                    "vCPU here; -accel tcg can)",
                    qemu_words, ops->name);
        return false;
    }
    if (!ops->vcpu_dirty_start(dl.m, &err)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "%s: %s", qemu_words,
                    err->message);
        g_error_free(err);
        return false;
    }
    dl.counting = true;
    /* the count may be shared (calc-dirty-rate): start from where it is */
    ops->vcpu_dirty_pages(dl.m, dl.pages);
    memset(dl.rate_bps, 0, dl.m->smp * sizeof(*dl.rate_bps));
    dl.last_us = g_get_monotonic_time();
    if (!dl.thread) {
        dl.thread = g_thread_new("dirty-limit", dl_thread, NULL);
    }
    return true;
}

/* lock held: with no limit left, the count stops. */
static void dl_count_stop_if_idle_locked(void)
{
    if (dl.counting && !dl_in_service_locked()) {
        dl.m->accel->vcpu_dirty_stop(dl.m);
        dl.counting = false;
    }
}

/* lock held: vCPU i's limit (0 = none). */
static void dl_set_locked(int i, uint64_t limit_mbps)
{
    dl.limit[i] = limit_mbps;
    if (!limit_mbps && dl.run[i] != DIRTY_LIMIT_RUN_FULL) {
        dl.run[i] = DIRTY_LIMIT_RUN_FULL;
        cpu_throttle_set_vcpu_run_share(i, DIRTY_LIMIT_RUN_FULL);
    }
}

/* lock held: one period's measurement and adjustment. */
static void dl_period_locked(int64_t now)
{
    int n = dl.m->smp;
    g_autofree uint64_t *pages = g_new0(uint64_t, n);

    dl.m->accel->vcpu_dirty_pages(dl.m, pages);
    for (int i = 0; i < n; i++) {
        uint64_t delta = pages[i] >= dl.pages[i] ? pages[i] - dl.pages[i] : 0;

        dl.rate_bps[i] = dirty_limit_rate_bps(delta, now - dl.last_us);
        dl.pages[i] = pages[i];
        if (dl.limit[i]) {
            uint32_t run =
                dirty_limit_step(dl.run[i], dl.limit[i], dl.rate_bps[i]);
            if (run != dl.run[i]) {
                dl.run[i] = run;
                cpu_throttle_set_vcpu_run_share(i, run);
            }
        }
    }
    dl.last_us = now;
}

static gpointer dl_thread(gpointer opaque)
{
    g_mutex_lock(&dl.lock);
    while (!dl.quit) {
        if (!dl.counting) {
            g_cond_wait(&dl.cond, &dl.lock);
            continue;
        }
        /* the period is read each time: it may change at any moment */
        int64_t period_us = (int64_t)migrate_x_vcpu_dirty_limit_period() * 1000;
        int64_t end = dl.last_us + period_us;
        int64_t now = g_get_monotonic_time();

        if (now < end) {
            g_cond_wait_until(&dl.cond, &dl.lock, end);
            continue;
        }
        dl_period_locked(now);
    }
    g_mutex_unlock(&dl.lock);
    return NULL;
}

/* ---- migration hooks (migration thread) ---------------------------------- */

void dirty_limit_migration_throttle(void)
{
    g_autoptr(GError) err = NULL;
    uint64_t quota = migrate_vcpu_dirty_limit();

    g_mutex_lock(&dl.lock);
    if (!dl_count_start_locked(DL_CAP_NO_COUNT, &err)) {
        g_mutex_unlock(&dl.lock);
        g_warning("%s", err->message);
        return;
    }
    if (!dl.migration_set) {
        memcpy(dl.saved, dl.limit, dl.m->smp * sizeof(*dl.saved));
        dl.migration_set = true;
    }
    for (int i = 0; i < dl.m->smp; i++) {
        dl_set_locked(i, quota);
    }
    g_cond_broadcast(&dl.cond);
    g_mutex_unlock(&dl.lock);
}

void dirty_limit_migration_end(void)
{
    g_mutex_lock(&dl.lock);
    if (dl.migration_set) {
        for (int i = 0; i < dl.m->smp; i++) {
            dl_set_locked(i, dl.saved[i]);
        }
        dl.migration_set = false;
        dl_count_stop_if_idle_locked();
        g_cond_broadcast(&dl.cond);
    }
    g_mutex_unlock(&dl.lock);
}

bool dirty_limit_throttle_info(uint64_t *sleep_us, uint64_t *run_us)
{
    bool any = false;

    *sleep_us = *run_us = 0;
    g_mutex_lock(&dl.lock);
    for (int i = 0; dl.m && i < dl.m->smp; i++) {
        int64_t slice_ns, sleep_ns;

        if (!dl.limit[i]) {
            continue;
        }
        any = true;
        cpu_throttle_run_share_slice(dl.run[i], &slice_ns, &sleep_ns);
        if ((uint64_t)sleep_ns / 1000 >= *sleep_us) {
            *sleep_us = (uint64_t)sleep_ns / 1000;
            *run_us = (uint64_t)slice_ns / 1000;
        }
    }
    g_mutex_unlock(&dl.lock);
    return any;
}

bool dirty_limit_capability_check(GError **errp)
{
    bool ok;

    g_mutex_lock(&dl.lock);
    ok = dl_count_start_locked(DL_CAP_NO_COUNT, errp);
    if (ok) {
        dl_count_stop_if_idle_locked(); /* a probe */
    }
    g_mutex_unlock(&dl.lock);
    return ok;
}

void dirty_limit_shutdown(void)
{
    g_mutex_lock(&dl.lock);
    dl.quit = true;
    g_cond_broadcast(&dl.cond);
    g_mutex_unlock(&dl.lock);
    if (dl.thread) {
        g_thread_join(dl.thread);
        dl.thread = NULL;
    }
    g_mutex_lock(&dl.lock);
    if (dl.counting) {
        dl.m->accel->vcpu_dirty_stop(dl.m);
        dl.counting = false;
    }
    g_mutex_unlock(&dl.lock);
}

/* ---- commands (main loop) ------------------------------------------------ */

/* QEMU's dirtylimit_is_allowed(): the migration's limits are its own. */
static bool dl_allowed_locked(void)
{
    return !(migration_is_running() &&
             migrate_cap(MIGRATION_CAPABILITY_DIRTY_LIMIT) &&
             dl_in_service_locked());
}

static bool dl_cpu_index_arg(JsonObject *args, int64_t *index, GError **errp)
{
    *index = -1;
    if (!qmp_arg_int(args, "cpu-index", false, index, errp)) {
        return false;
    }
    if (json_object_has_member(args, "cpu-index") &&
        (*index < 0 || *index >= current_machine->smp)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "incorrect cpu index specified");
        return false;
    }
    return true;
}

/* lock held: cancel one vCPU's limit or (index -1) all. */
static void dl_cancel_locked(int64_t index)
{
    for (int i = 0; dl.m && i < dl.m->smp; i++) {
        if (index < 0 || i == index) {
            dl_set_locked(i, 0);
        }
    }
    dl_count_stop_if_idle_locked();
    g_cond_broadcast(&dl.cond);
}

static JsonNode *qmp_cancel_vcpu_dirty_limit(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"cpu-index", NULL};
    int64_t index;

    if (!qmp_args_check(args, allowed, errp)) {
        return NULL;
    }
    if (!current_machine->accel->vcpu_dirty_start) {
        return qmp_return_empty(); /* as QEMU: nothing can be limited */
    }
    if (!dl_cpu_index_arg(args, &index, errp)) {
        return NULL;
    }
    g_mutex_lock(&dl.lock);
    if (!dl_allowed_locked()) {
        g_mutex_unlock(&dl.lock);
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "can't cancel dirty page rate limit while migration is "
                    "running");
        return NULL;
    }
    dl_cancel_locked(index);
    g_mutex_unlock(&dl.lock);
    return qmp_return_empty();
}

static JsonNode *qmp_set_vcpu_dirty_limit(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"cpu-index", "dirty-rate", NULL};
    int64_t index, rate = 0;

    if (!qmp_args_check(args, allowed, errp) ||
        !qmp_arg_int(args, "dirty-rate", true, &rate, errp)) {
        return NULL;
    }
    if (rate < 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter 'dirty-rate' expects uint64");
        return NULL;
    }
    if (!current_machine->accel->vcpu_dirty_start) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "%s (the %s accelerator cannot count dirty pages per "
                    "vCPU here; -accel tcg can)",
                    DL_QMP_NO_COUNT, current_machine->accel->name);
        return NULL;
    }
    if (!dl_cpu_index_arg(args, &index, errp)) {
        return NULL;
    }
    g_mutex_lock(&dl.lock);
    if (!dl_allowed_locked()) {
        g_mutex_unlock(&dl.lock);
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "can't set dirty page rate limit while migration is "
                    "running");
        return NULL;
    }
    if (rate == 0) {
        dl_cancel_locked(index); /* as QEMU: a limit of 0 is none */
    } else if (!dl_count_start_locked(DL_QMP_NO_COUNT, errp)) {
        g_mutex_unlock(&dl.lock);
        return NULL;
    } else {
        for (int i = 0; i < dl.m->smp; i++) {
            if (index < 0 || i == index) {
                dl_set_locked(i, (uint64_t)rate);
            }
        }
        g_cond_broadcast(&dl.cond);
    }
    g_mutex_unlock(&dl.lock);
    return qmp_return_empty();
}

static JsonNode *qmp_query_vcpu_dirty_limit(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {NULL};
    JsonArray *a;

    if (!qmp_args_check(args, allowed, errp)) {
        return NULL;
    }
    a = json_array_new();
    g_mutex_lock(&dl.lock);
    for (int i = 0; dl.m && i < dl.m->smp; i++) {
        if (!dl.limit[i]) {
            continue;
        }
        JsonObject *o = json_object_new();
        json_object_set_int_member(o, "cpu-index", i);
        json_object_set_int_member(o, "limit-rate", (gint64)dl.limit[i]);
        json_object_set_int_member(o, "current-rate",
                                   (gint64)(dl.rate_bps[i] / 1000000));
        json_array_add_object_element(a, o);
    }
    g_mutex_unlock(&dl.lock);
    return qmp_return_array(a);
}

static void hmp_info_vcpu_dirty_limit(GString *out, JsonNode *ret)
{
    JsonArray *a = json_node_get_array(ret);

    if (json_array_get_length(a) == 0) {
        g_string_append(out, "Dirty page limit not enabled!\n");
        return;
    }
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *o = json_array_get_object_element(a, i);
        g_string_append_printf(
            out,
            "vcpu[%" G_GINT64_FORMAT "], limit rate %" G_GINT64_FORMAT
            " (MB/s), current rate %" G_GINT64_FORMAT " (MB/s)\n",
            json_object_get_int_member(o, "cpu-index"),
            json_object_get_int_member(o, "limit-rate"),
            json_object_get_int_member(o, "current-rate"));
    }
}

/* HMP: set_vcpu_dirty_limit dirty_rate [cpu_index] */
static JsonObject *hmp_set_vcpu_dirty_limit_args(JsonObject *h, GError **errp)
{
    JsonObject *q = json_object_new();

    json_object_set_int_member(q, "dirty-rate",
                               json_object_get_int_member(h, "dirty_rate"));
    if (json_object_has_member(h, "cpu_index")) {
        json_object_set_int_member(q, "cpu-index",
                                   json_object_get_int_member(h, "cpu_index"));
    }
    return q;
}

/* HMP: cancel_vcpu_dirty_limit [cpu_index] */
static JsonObject *hmp_cancel_vcpu_dirty_limit_args(JsonObject *h,
                                                    GError **errp)
{
    JsonObject *q = json_object_new();

    if (json_object_has_member(h, "cpu_index")) {
        json_object_set_int_member(q, "cpu-index",
                                   json_object_get_int_member(h, "cpu_index"));
    }
    return q;
}

static const MonitorCommand dirty_limit_commands[] = {
    {
        .name = "set-vcpu-dirty-limit",
        .handler = qmp_set_vcpu_dirty_limit,
        .hmp_name = "set_vcpu_dirty_limit",
        .args_type = "dirty_rate:i,cpu_index:i?",
        .params = "dirty_rate [cpu_index]",
        .help = "set dirty page rate limit, use cpu_index to set limit on a "
                "specified virtual cpu",
        .hmp_args = hmp_set_vcpu_dirty_limit_args,
    },
    {
        .name = "cancel-vcpu-dirty-limit",
        .handler = qmp_cancel_vcpu_dirty_limit,
        .hmp_name = "cancel_vcpu_dirty_limit",
        .args_type = "cpu_index:i?",
        .params = "[cpu_index]",
        .help = "cancel dirty page rate limit, use cpu_index to cancel limit "
                "on a specified virtual cpu",
        .hmp_args = hmp_cancel_vcpu_dirty_limit_args,
    },
    {
        .name = "query-vcpu-dirty-limit",
        .handler = qmp_query_vcpu_dirty_limit,
        .hmp_name = "info vcpu_dirty_limit",
        .help = "show dirty page limit information of all vCPU",
        .hmp_print = hmp_info_vcpu_dirty_limit,
    },
};

void dirty_limit_register_commands(void)
{
    monitor_register_commands(dirty_limit_commands,
                              G_N_ELEMENTS(dirty_limit_commands));
}
