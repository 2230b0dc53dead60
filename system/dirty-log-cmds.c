/*
 * x-dirty-log: drive the accelerator's dirty logging from the monitor, for
 * tests and operators who want to see which pages a guest writes.
 *
 *   {"execute": "x-dirty-log", "arguments": {"action": "start"}}
 *   {"execute": "x-dirty-log", "arguments": {"action": "sync"}}
 *     -> {"dirty-pages": N, "ranges": [{"gpa": A, "pages": n}, ...],
 *         "truncated": false, "sync-us": T, "clear-us": C}
 *     (sync-us: fetching the log; clear-us: re-arming it)
 *   {"execute": "x-dirty-log", "arguments": {"action": "stop"}}
 *
 * "sync" reports the pages written since the previous sync (the first one
 * after start reports every page) and re-arms tracking for all of them.
 */
#include <string.h>

#include "godwit/machine.h"
#include "godwit/monitor.h"
#include "godwit/system.h"
#include "migration/migration.h"

#define DIRTY_LOG_MAX_RANGES 4096

static bool dirty_active;

bool system_dirty_log_active(void)
{
    return dirty_active;
}

/* Guest-physical address of page `page` of the machine's pc.ram. */
static uint64_t ram_page_gpa(Machine *m, uint64_t page)
{
    uint64_t off = page << GW_PAGE_SHIFT;

    for (int i = 0; i < m->nr_slices; i++) {
        const GuestRamSlice *s = &m->slices[i];
        if (off >= s->offset && off - s->offset < s->size) {
            return s->gpa + (off - s->offset);
        }
    }
    return UINT64_MAX;
}

/* Appends {"gpa", "pages"} runs of set bits; splits at slice borders. */
static JsonArray *dirty_ranges(Machine *m, const unsigned long *map,
                               uint64_t npages, bool *truncated)
{
    JsonArray *a = json_array_new();
    uint64_t p = bitmap_find_next(map, npages, 0);

    while (p < npages) {
        uint64_t end = bitmap_find_next_zero(map, npages, p);
        uint64_t gpa = ram_page_gpa(m, p);
        uint64_t run = 1;
        /* extend while guest-physically contiguous */
        while (p + run < end &&
               ram_page_gpa(m, p + run) == gpa + (run << GW_PAGE_SHIFT)) {
            run++;
        }
        if (json_array_get_length(a) >= DIRTY_LOG_MAX_RANGES) {
            *truncated = true;
            break;
        }
        JsonObject *r = json_object_new();
        json_object_set_int_member(r, "gpa", (gint64)gpa);
        json_object_set_int_member(r, "pages", (gint64)run);
        json_array_add_object_element(a, r);
        p = p + run < end ? p + run : bitmap_find_next(map, npages, end);
    }
    return a;
}

static JsonNode *dirty_log_sync(Machine *m, GError **errp)
{
    RAMBlock *rb = m->ram;
    uint64_t npages = ram_block_pages(rb);
    g_autofree unsigned long *map = bitmap_new(npages);
    JsonObject *o;
    bool truncated = false;
    int64_t t0 = g_get_monotonic_time();

    if (!m->accel->dirty_log_sync(m, rb, map, errp)) {
        return NULL;
    }
    int64_t t1 = g_get_monotonic_time();
    ram_block_take_host_dirty(rb, map);
    if (!m->accel->dirty_log_clear(m, rb, 0, npages, errp)) {
        return NULL;
    }
    int64_t t2 = g_get_monotonic_time();
    o = json_object_new();
    json_object_set_int_member(o, "dirty-pages",
                               (gint64)bitmap_count(map, npages));
    json_object_set_array_member(o, "ranges",
                                 dirty_ranges(m, map, npages, &truncated));
    json_object_set_boolean_member(o, "truncated", truncated);
    json_object_set_int_member(o, "sync-us", t1 - t0);
    json_object_set_int_member(o, "clear-us", t2 - t1);
    return qmp_return_object(o);
}

static JsonNode *qmp_x_dirty_log(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"action", NULL};
    Machine *m = current_machine;
    const char *action = NULL;

    if (!qmp_args_check(args, allowed, errp) ||
        !qmp_arg_str(args, "action", true, &action, errp)) {
        return NULL;
    }
    if (!strcmp(action, "start")) {
        if (dirty_active || migration_dirty_log_in_use()) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "dirty logging is already active");
            return NULL;
        }
        if (!m->accel->dirty_log_start(m, m->ram, errp)) {
            return NULL;
        }
        dirty_active = true;
        return qmp_return_empty();
    }
    if (!dirty_active) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "dirty logging is not active (use action 'start')");
        return NULL;
    }
    if (!strcmp(action, "sync")) {
        return dirty_log_sync(m, errp);
    }
    if (!strcmp(action, "stop")) {
        m->accel->dirty_log_stop(m, m->ram);
        dirty_active = false;
        return qmp_return_empty();
    }
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "Parameter 'action' expects start, sync or stop");
    return NULL;
}

static void hmp_x_dirty_log(GString *out, JsonNode *ret)
{
    JsonObject *o = json_node_get_object(ret);

    if (!json_object_has_member(o, "dirty-pages")) {
        return;
    }
    g_string_append_printf(out, "dirty pages: %" G_GINT64_FORMAT
                                " (sync %" G_GINT64_FORMAT " us)\n",
                           json_object_get_int_member(o, "dirty-pages"),
                           json_object_get_int_member(o, "sync-us"));
}

static const MonitorCommand dirty_log_commands[] = {
    {
        .name = "x-dirty-log",
        .handler = qmp_x_dirty_log,
        .hmp_name = "x_dirty_log",
        .args_type = "action:s",
        .params = "start|sync|stop",
        .help = "start, sync or stop dirty page logging of guest RAM (debug)",
        .hmp_print = hmp_x_dirty_log,
    },
};

void system_dirty_log_register_commands(void)
{
    monitor_register_commands(dirty_log_commands,
                              G_N_ELEMENTS(dirty_log_commands));
}
