/*
 * Monitor commands of the devices: x-guest-request wakes payloads that
 * wait for a request (verify checks its pages, fill rewrites its region);
 * x-query-guest-report shows what payloads reported over the hypercall
 * port.
 */
#include "godwit/hw.h"
#include "godwit/monitor.h"

static JsonNode *qmp_x_guest_request(JsonObject *args, GError **errp)
{
    hypercall_bump_request();
    return qmp_return_empty();
}

static JsonObject *report_obj(const HypercallReport *r, const char *a,
                              const char *b, const char *c)
{
    JsonObject *o = json_object_new();

    json_object_set_int_member(o, "count", (gint64)r->count);
    json_object_set_int_member(o, a, (gint64)r->arg[0]);
    json_object_set_int_member(o, b, (gint64)r->arg[1]);
    if (c) {
        json_object_set_int_member(o, c, (gint64)r->arg[2]);
    }
    return o;
}

static JsonNode *qmp_x_query_guest_report(JsonObject *args, GError **errp)
{
    HypercallState st;
    JsonObject *o = json_object_new();
    JsonArray *perf = json_array_new();

    hypercall_get_state(&st);
    json_object_set_int_member(o, "generation", (gint64)st.generation);
    json_object_set_int_member(o, "request", (gint64)st.request);
    json_object_set_int_member(o, "bad-requests", (gint64)st.bad_requests);
    json_object_set_object_member(
        o, "verify",
        report_obj(&st.report[GW_REPORT_VERIFY], "ok", "pages", "bad-page"));
    json_object_set_object_member(
        o, "pause",
        report_obj(&st.report[GW_REPORT_PAUSE], "ns", "generation", NULL));
    json_object_set_object_member(
        o, "progress",
        report_obj(&st.report[GW_REPORT_PROGRESS], "bytes", "done", NULL));
    for (int w = 0; w < HYPERCALL_MAX_WORKERS; w++) {
        if (st.perf[w].count) {
            json_array_add_object_element(
                perf, report_obj(&st.perf[w], "worker", "cycles", "bytes"));
        }
    }
    json_object_set_array_member(o, "perf", perf);
    return qmp_return_object(o);
}

static void hmp_info_guest(GString *out, JsonNode *ret)
{
    JsonObject *o = json_node_get_object(ret);
    JsonObject *v = json_object_get_object_member(o, "verify");
    JsonObject *p = json_object_get_object_member(o, "pause");

    g_string_append_printf(
        out, "generation: %" G_GINT64_FORMAT "\nrequest: %" G_GINT64_FORMAT
             "\n",
        json_object_get_int_member(o, "generation"),
        json_object_get_int_member(o, "request"));
    if (json_object_get_int_member(v, "count")) {
        g_string_append_printf(
            out, "verify: %s pages=%" G_GINT64_FORMAT "\n",
            json_object_get_int_member(v, "ok") ? "ok" : "FAILED",
            json_object_get_int_member(v, "pages"));
    }
    if (json_object_get_int_member(p, "count")) {
        g_string_append_printf(out, "last pause: %.3f ms\n",
                               json_object_get_int_member(p, "ns") / 1e6);
    }
}

static const MonitorCommand hw_commands[] = {
    {
        .name = "x-guest-request",
        .handler = qmp_x_guest_request,
        .hmp_name = "x_guest_request",
        .help = "wake payloads that wait for a request (verify: check now)",
    },
    {
        .name = "x-query-guest-report",
        .handler = qmp_x_query_guest_report,
        .hmp_name = "info guest",
        .help = "show what the guest payload reported (verify, pause, perf)",
        .hmp_print = hmp_info_guest,
    },
};

void hw_register_commands(void)
{
    monitor_register_commands(hw_commands, G_N_ELEMENTS(hw_commands));
}
