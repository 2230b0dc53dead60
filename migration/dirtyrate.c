/*
 * Dirty-rate measurement: calc-dirty-rate / query-dirty-rate (QMP),
 * calc_dirty_rate / info dirty_rate (HMP), so an operator can tell before
 * migrating whether precopy will converge.
 *
 * Modes:
 *   dirty-bitmap   the accelerator's dirty log over calc-time: exact count
 *                  of pages written (plus VMM writes into guest RAM);
 *   page-sampling  sample-pages random pages per GiB hashed before and
 *                  after calc-time; the share that changed, times RAM size.
 *                  No dirty logging, no slowdown of the guest, but a page
 *                  written twice with the same bytes counts as clean, and
 *                  the rate saturates once every sampled page changed.
 *   dirty-ring     per-vCPU counts from the accelerator's vcpu_dirty_*
 *                  hooks (KVM: its dirty ring, -accel
 *                  kvm,dirty-ring-size=N), harvested every second as
 *                  QEMU's ring reaper does; the rate of each vCPU and
 *                  their sum. Refused where the accelerator cannot count
 *                  per vCPU. Independent of migration's dirty log.
 * The measurement runs in a thread of its own; the main loop only starts
 * it and reads the result.
 */
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>

#include "godwit/machine.h"
#include "godwit/monitor.h"
#include "godwit/system.h"
#include "migration-int.h"
#include "migration/migration.h"

#define DIRTYRATE_MAX_SECONDS 60
#define DIRTYRATE_DEFAULT_SAMPLES 512
#define DIRTYRATE_MAX_SAMPLES 4096

typedef enum DirtyRateStatus {
    DIRTY_RATE_UNSTARTED,
    DIRTY_RATE_MEASURING,
    DIRTY_RATE_MEASURED,
} DirtyRateStatus;

typedef enum DirtyRateMode {
    DIRTY_RATE_PAGE_SAMPLING,
    DIRTY_RATE_DIRTY_BITMAP,
    DIRTY_RATE_DIRTY_RING,
} DirtyRateMode;

static const char *const status_names[] = {"unstarted", "measuring",
                                           "measured"};
static const char *const mode_names[] = {"page-sampling", "dirty-bitmap",
                                         "dirty-ring"};

static struct {
    GMutex lock; /* protects everything below but `thread` */
    DirtyRateStatus status;
    DirtyRateMode mode;
    int64_t start_time; /* s, realtime */
    int64_t calc_time;  /* s */
    uint64_t sample_pages;
    int64_t rate_mib;   /* MiB/s, valid when measured */
    int nr_vcpus;       /* dirty-ring: entries of vcpu_rate */
    int64_t *vcpu_rate; /* dirty-ring: MiB/s per vCPU, when measured */
    bool quit;          /* godwit is exiting: stop sleeping */
    GCond cond;
    GThread *thread; /* main loop */
} dr;

/* Sleeps until monotonic time `end` (µs), or less if godwit exits. */
static bool dirtyrate_sleep_until(int64_t end)
{
    g_mutex_lock(&dr.lock);
    while (!dr.quit && g_cond_wait_until(&dr.cond, &dr.lock, end)) {
    }
    bool ok = !dr.quit;
    g_mutex_unlock(&dr.lock);
    return ok;
}

/* Sleeps `seconds`, or less if godwit exits. False when cut short. */
static bool dirtyrate_sleep(int64_t seconds)
{
    return dirtyrate_sleep_until(g_get_monotonic_time() +
                                 seconds * G_USEC_PER_SEC);
}

/* ---- measuring (the dirtyrate thread) ------------------------------------ */

static int64_t measure_bitmap(Machine *m, int64_t seconds, GError **errp)
{
    RAMBlock *rb = m->ram;
    uint64_t n = ram_block_pages(rb);
    g_autofree unsigned long *map = bitmap_new(n);
    int64_t t0, dt;

    if (!m->accel->dirty_log_start(m, rb, errp)) {
        return -1;
    }
    /* the first sync reports everything: drop it and start counting */
    if (!m->accel->dirty_log_sync(m, rb, map, errp) ||
        !m->accel->dirty_log_clear(m, rb, 0, n, errp)) {
        m->accel->dirty_log_stop(m, rb);
        return -1;
    }
    ram_block_take_host_dirty(rb, map);
    memset(map, 0, BITS_TO_LONGS(n) * sizeof(long));
    t0 = g_get_monotonic_time();
    if (!dirtyrate_sleep(seconds)) {
        m->accel->dirty_log_stop(m, rb);
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "interrupted");
        return -1;
    }
    bool ok = m->accel->dirty_log_sync(m, rb, map, errp);
    dt = g_get_monotonic_time() - t0;
    m->accel->dirty_log_stop(m, rb);
    if (!ok) {
        return -1;
    }
    ram_block_take_host_dirty(rb, map);
    return (int64_t)llround((double)bitmap_count(map, n) * GW_PAGE_SIZE /
                            (1 << 20) / (dt / 1e6));
}

/*
 * crc32 of a page, or 0 for a page in a hole (without populating it).
 * mincore() answers for the one page: a SEEK_DATA/SEEK_HOLE pair would
 * walk the page cache to the end of the extent, up to all of RAM per
 * sample, and stretch the measurement window by seconds.
 */
static uint32_t sample_crc(RAMBlock *rb, uint64_t page, bool *hole)
{
    uint8_t *p = rb->host + (page << GW_PAGE_SHIFT);
    unsigned char in_core = 0;

    if (mincore(p, GW_PAGE_SIZE, &in_core) < 0) {
        in_core = 1; /* cannot tell: read it (at worst it populates one) */
    }
    *hole = !(in_core & 1);
    if (*hole) {
        return 0;
    }
    return (uint32_t)crc32(0, p, GW_PAGE_SIZE);
}

static int64_t measure_sampling(Machine *m, int64_t seconds, uint64_t per_gib)
{
    RAMBlock *rb = m->ram;
    uint64_t gib = MAX(1, rb->used_length >> 30);
    uint64_t n = MIN(per_gib * gib, ram_block_pages(rb));
    g_autofree uint64_t *pages = g_new(uint64_t, n);
    g_autofree uint32_t *crc = g_new(uint32_t, n);
    g_autofree bool *hole = g_new(bool, n);
    GRand *r = g_rand_new();
    uint64_t changed = 0;
    int64_t t0, dt;

    for (uint64_t i = 0; i < n; i++) {
        pages[i] = (uint64_t)g_rand_double_range(r, 0, ram_block_pages(rb));
        crc[i] = sample_crc(rb, pages[i], &hole[i]);
    }
    g_rand_free(r);
    t0 = g_get_monotonic_time();
    if (!dirtyrate_sleep(seconds)) {
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        bool h;
        uint32_t c = sample_crc(rb, pages[i], &h);
        changed += h != hole[i] || c != crc[i];
    }
    dt = g_get_monotonic_time() - t0;
    return (int64_t)llround((double)changed / n * rb->used_length / (1 << 20) /
                            (dt / 1e6));
}

/* MiB/s of `pages` pages over `us` microseconds. */
static int64_t pages_rate(uint64_t pages, int64_t us)
{
    return (int64_t)llround((double)pages * GW_PAGE_SIZE / (1 << 20) /
                            (us / 1e6));
}

/*
 * dirty-ring: counting was started by dirtyrate_start (main loop); the
 * counts are cumulative, so the rates come from their differences. One
 * harvest a second, as QEMU's reaper: a page a vCPU keeps rewriting counts
 * once per harvest. Fills rates[], returns their sum; stops counting.
 */
static int64_t measure_ring(Machine *m, int64_t seconds, int64_t *rates)
{
    g_autofree uint64_t *first = g_new0(uint64_t, m->smp);
    g_autofree uint64_t *last = g_new0(uint64_t, m->smp);
    int64_t t0, end, dt, sum = 0;
    bool ok = true;

    m->accel->vcpu_dirty_pages(m, first);
    t0 = g_get_monotonic_time();
    end = t0 + seconds * G_USEC_PER_SEC;
    for (int64_t t = t0 + G_USEC_PER_SEC; ok && t < end; t += G_USEC_PER_SEC) {
        ok = dirtyrate_sleep_until(t);
        m->accel->vcpu_dirty_pages(m, last);
    }
    ok = ok && dirtyrate_sleep_until(end);
    m->accel->vcpu_dirty_pages(m, last);
    dt = g_get_monotonic_time() - t0;
    m->accel->vcpu_dirty_stop(m);
    if (!ok) {
        return -1;
    }
    for (int i = 0; i < m->smp; i++) {
        rates[i] = pages_rate(last[i] - first[i], dt);
        sum += rates[i];
    }
    return sum;
}

static gpointer dirtyrate_thread(gpointer opaque)
{
    g_autoptr(GError) err = NULL;
    int64_t rate;

    g_mutex_lock(&dr.lock);
    DirtyRateMode mode = dr.mode;
    int64_t seconds = dr.calc_time;
    uint64_t samples = dr.sample_pages;
    g_mutex_unlock(&dr.lock);
    g_autofree int64_t *rates = g_new0(int64_t, current_machine->smp);

    if (mode == DIRTY_RATE_DIRTY_RING) {
        rate = measure_ring(current_machine, seconds, rates);
    } else if (mode == DIRTY_RATE_DIRTY_BITMAP) {
        rate = measure_bitmap(current_machine, seconds, &err);
        if (rate < 0 && !dr.quit) {
            g_warning("calc-dirty-rate: %s", err->message);
        }
    } else {
        rate = measure_sampling(current_machine, seconds, samples);
    }
    g_mutex_lock(&dr.lock);
    dr.rate_mib = rate;
    if (mode == DIRTY_RATE_DIRTY_RING && rate >= 0) {
        dr.nr_vcpus = current_machine->smp;
        dr.vcpu_rate = g_steal_pointer(&rates);
    }
    dr.status = rate < 0 ? DIRTY_RATE_UNSTARTED : DIRTY_RATE_MEASURED;
    g_mutex_unlock(&dr.lock);
    return NULL;
}

/* ---- commands (main loop) ------------------------------------------------ */

static bool dirtyrate_busy(GError **errp)
{
    if (dr.status == DIRTY_RATE_MEASURING) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "the dirty rate is already being measured");
        return true;
    }
    return false;
}

static int mode_lookup(const char *s)
{
    for (int i = 0; i < (int)G_N_ELEMENTS(mode_names); i++) {
        if (!strcmp(s, mode_names[i])) {
            return i;
        }
    }
    return -1;
}

/*
 * dirty-ring mode starts counting here, in the main loop, so that a
 * configuration that cannot count fails the command itself. Whatever
 * accelerator implements the per-vCPU hooks gets the mode.
 */
static bool dirtyrate_ring_start(GError **errp)
{
    Machine *m = current_machine;

    if (!m->accel->vcpu_dirty_start) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "mode dirty-ring is not enabled, use other method "
                    "instead (the %s accelerator cannot count dirty pages "
                    "per vCPU)",
                    m->accel->name);
        return false;
    }
    if (!m->accel->vcpu_dirty_start(m, errp)) {
        g_prefix_error(errp, "mode dirty-ring is not enabled, use other "
                             "method instead: ");
        return false;
    }
    return true;
}

static bool dirtyrate_start(int64_t seconds, uint64_t samples,
                            DirtyRateMode mode, GError **errp)
{
    if (seconds < 1 || seconds > DIRTYRATE_MAX_SECONDS) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter 'calc-time' expects a value between 1 and "
                    "%d seconds",
                    DIRTYRATE_MAX_SECONDS);
        return false;
    }
    if (samples < 128 || samples > DIRTYRATE_MAX_SAMPLES) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter 'sample-pages' expects a value between 128 "
                    "and %d",
                    DIRTYRATE_MAX_SAMPLES);
        return false;
    }
    if (mode == DIRTY_RATE_DIRTY_BITMAP &&
        (migration_busy() || system_dirty_log_active())) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "dirty logging is in use (a migration or x-dirty-log); "
                    "use mode page-sampling");
        return false;
    }
    if (dirtyrate_busy(errp)) {
        return false;
    }
    if (mode == DIRTY_RATE_DIRTY_RING && !dirtyrate_ring_start(errp)) {
        return false;
    }
    if (dr.thread) {
        g_thread_join(dr.thread);
        dr.thread = NULL;
    }
    g_mutex_lock(&dr.lock);
    dr.status = DIRTY_RATE_MEASURING;
    dr.mode = mode;
    dr.calc_time = seconds;
    dr.sample_pages = samples;
    dr.start_time = g_get_real_time() / G_USEC_PER_SEC;
    dr.rate_mib = -1;
    dr.nr_vcpus = 0;
    g_clear_pointer(&dr.vcpu_rate, g_free);
    g_mutex_unlock(&dr.lock);
    dr.thread = g_thread_new("dirtyrate", dirtyrate_thread, NULL);
    return true;
}

static JsonNode *qmp_calc_dirty_rate(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"calc-time", "sample-pages", "mode",
                                          NULL};
    int64_t seconds = 0, samples = DIRTYRATE_DEFAULT_SAMPLES;
    const char *mode = "page-sampling";
    int m;

    if (!qmp_args_check(args, allowed, errp) ||
        !qmp_arg_int(args, "calc-time", true, &seconds, errp) ||
        !qmp_arg_int(args, "sample-pages", false, &samples, errp) ||
        !qmp_arg_str(args, "mode", false, &mode, errp)) {
        return NULL;
    }
    m = mode_lookup(mode);
    if (m < 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter 'mode' does not accept value '%s'", mode);
        return NULL;
    }
    if (samples < 0) {
        samples = 0;
    }
    return dirtyrate_start(seconds, (uint64_t)samples, m, errp)
               ? qmp_return_empty()
               : NULL;
}

static JsonNode *qmp_query_dirty_rate(JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();

    g_mutex_lock(&dr.lock);
    if (dr.status == DIRTY_RATE_MEASURED) {
        json_object_set_int_member(o, "dirty-rate", dr.rate_mib);
    }
    json_object_set_string_member(o, "status", status_names[dr.status]);
    json_object_set_int_member(o, "start-time", dr.start_time);
    json_object_set_int_member(o, "calc-time", dr.calc_time);
    json_object_set_int_member(
        o, "sample-pages",
        dr.mode == DIRTY_RATE_PAGE_SAMPLING ? (gint64)dr.sample_pages : 0);
    json_object_set_string_member(o, "mode", mode_names[dr.mode]);
    if (dr.status == DIRTY_RATE_MEASURED && dr.vcpu_rate) {
        JsonArray *a = json_array_new();
        for (int i = 0; i < dr.nr_vcpus; i++) {
            JsonObject *v = json_object_new();
            json_object_set_int_member(v, "id", i);
            json_object_set_int_member(v, "dirty-rate", dr.vcpu_rate[i]);
            json_array_add_object_element(a, v);
        }
        json_object_set_array_member(o, "vcpu-dirty-rate", a);
    }
    g_mutex_unlock(&dr.lock);
    return qmp_return_object(o);
}

static void hmp_info_dirty_rate(GString *out, JsonNode *ret)
{
    JsonObject *o = json_node_get_object(ret);

    g_string_append_printf(out, "Status: %s\n",
                           json_object_get_string_member(o, "status"));
    g_string_append_printf(out, "Start Time: %" G_GINT64_FORMAT " (ms)\n",
                           json_object_get_int_member(o, "start-time"));
    g_string_append_printf(out, "Sample Pages: %" G_GINT64_FORMAT " (per GB)\n",
                           json_object_get_int_member(o, "sample-pages"));
    g_string_append_printf(out, "Period: %" G_GINT64_FORMAT " (sec)\n",
                           json_object_get_int_member(o, "calc-time"));
    g_string_append_printf(out, "Mode: %s\n",
                           json_object_get_string_member(o, "mode"));
    if (json_object_has_member(o, "dirty-rate")) {
        g_string_append_printf(out, "Dirty rate: %" G_GINT64_FORMAT " (MB/s)\n",
                               json_object_get_int_member(o, "dirty-rate"));
        if (json_object_has_member(o, "vcpu-dirty-rate")) {
            JsonArray *a = json_object_get_array_member(o, "vcpu-dirty-rate");
            for (guint i = 0; i < json_array_get_length(a); i++) {
                JsonObject *v = json_array_get_object_element(a, i);
                g_string_append_printf(
                    out,
                    "vcpu[%" G_GINT64_FORMAT "], Dirty rate: %" G_GINT64_FORMAT
                    " (MB/s)\n",
                    json_object_get_int_member(v, "id"),
                    json_object_get_int_member(v, "dirty-rate"));
            }
        }
    } else {
        g_string_append(out, "Dirty rate: (not ready)\n");
    }
}

/* HMP: calc_dirty_rate [-r] [-b] second [sample_pages_per_GB] */
static JsonObject *hmp_calc_dirty_rate_args(JsonObject *h, GError **errp)
{
    JsonObject *q = json_object_new();
    bool ring =
        json_object_get_boolean_member_with_default(h, "dirty_ring", false);
    bool bitmap =
        json_object_get_boolean_member_with_default(h, "dirty_bitmap", false);

    if (ring && bitmap) {
        json_object_unref(q);
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Either dirty ring or dirty bitmap can be specified!");
        return NULL;
    }
    json_object_set_int_member(q, "calc-time",
                               json_object_get_int_member(h, "second"));
    if (json_object_has_member(h, "sample_pages_per_GB")) {
        json_object_set_int_member(
            q, "sample-pages",
            json_object_get_int_member(h, "sample_pages_per_GB"));
    }
    json_object_set_string_member(q, "mode",
                                  ring     ? "dirty-ring"
                                  : bitmap ? "dirty-bitmap"
                                           : "page-sampling");
    return q;
}

static const MonitorCommand dirtyrate_commands[] = {
    {
        .name = "calc-dirty-rate",
        .handler = qmp_calc_dirty_rate,
        .hmp_name = "calc_dirty_rate",
        .args_type = "dirty_ring:-r,dirty_bitmap:-b,second:i,"
                     "sample_pages_per_GB:i?",
        .params = "[-r] [-b] second [sample_pages_per_GB]",
        .help = "start a round of guest dirty rate measurement (using -r "
                "to specify dirty ring mode, -b dirty bitmap mode)",
        .hmp_args = hmp_calc_dirty_rate_args,
    },
    {
        .name = "query-dirty-rate",
        .handler = qmp_query_dirty_rate,
        .hmp_name = "info dirty_rate",
        .help = "show dirty rate information",
        .hmp_print = hmp_info_dirty_rate,
    },
};

void dirtyrate_register_commands(void)
{
    monitor_register_commands(dirtyrate_commands,
                              G_N_ELEMENTS(dirtyrate_commands));
}

bool dirtyrate_counts_vcpus(void)
{
    bool busy;

    g_mutex_lock(&dr.lock);
    busy =
        dr.status == DIRTY_RATE_MEASURING && dr.mode == DIRTY_RATE_DIRTY_RING;
    g_mutex_unlock(&dr.lock);
    return busy;
}

bool dirtyrate_uses_dirty_log(void)
{
    bool busy;

    g_mutex_lock(&dr.lock);
    busy =
        dr.status == DIRTY_RATE_MEASURING && dr.mode == DIRTY_RATE_DIRTY_BITMAP;
    g_mutex_unlock(&dr.lock);
    return busy;
}

void dirtyrate_shutdown(void)
{
    g_mutex_lock(&dr.lock);
    dr.quit = true;
    g_cond_broadcast(&dr.cond);
    g_mutex_unlock(&dr.lock);
    if (dr.thread) {
        g_thread_join(dr.thread);
        dr.thread = NULL;
    }
    g_clear_pointer(&dr.vcpu_rate, g_free);
}
