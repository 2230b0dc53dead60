/*
 * Monitor commands of the VM itself: status, stop/cont/quit, name,
 * version, vCPUs, the accelerator, and the x-reload-vcpus debug command.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "godwit/cpu-throttle.h"
#include "godwit/machine.h"
#include "godwit/monitor.h"
#include "godwit/runstate.h"
#include "godwit/system.h"
#include "migration/migration.h"

static JsonNode *qmp_query_status(JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();
    RunState s = runstate_get();

    json_object_set_boolean_member(o, "running", s == RUN_STATE_RUNNING);
    json_object_set_boolean_member(o, "singlestep", false);
    json_object_set_string_member(o, "status", runstate_name(s));
    return qmp_return_object(o);
}

static void hmp_info_status(GString *out, JsonNode *ret)
{
    JsonObject *o = json_node_get_object(ret);
    const char *status = json_object_get_string_member(o, "status");

    g_string_append(out, "VM status: ");
    if (json_object_get_boolean_member(o, "running")) {
        g_string_append(out, "running\n");
    } else if (!strcmp(status, "paused")) {
        g_string_append(out, "paused\n");
    } else {
        g_string_append_printf(out, "paused (%s)\n", status);
    }
}

static JsonNode *qmp_stop(JsonObject *args, GError **errp)
{
    if (runstate_get() == RUN_STATE_INMIGRATE) {
        runstate_set_autostart(false);
    } else {
        vm_stop(RUN_STATE_PAUSED);
    }
    return qmp_return_empty();
}

static JsonNode *qmp_cont(JsonObject *args, GError **errp)
{
    switch (runstate_get()) {
    case RUN_STATE_INTERNAL_ERROR:
    case RUN_STATE_SHUTDOWN:
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Resetting the Virtual Machine is required");
        return NULL;
    case RUN_STATE_INMIGRATE:
        /* Start as soon as the incoming migration completes. */
        runstate_set_autostart(true);
        return qmp_return_empty();
    case RUN_STATE_FINISH_MIGRATE:
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "The VM is being migrated; wait for the migration to "
                    "end");
        return NULL;
    default:
        vm_start();
        return qmp_return_empty();
    }
}

static JsonNode *qmp_quit(JsonObject *args, GError **errp)
{
    qemu_system_shutdown_request(false, "host-qmp-quit");
    return qmp_return_empty();
}

static JsonNode *qmp_query_name(JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();

    if (current_machine->name) {
        json_object_set_string_member(o, "name", current_machine->name);
    }
    return qmp_return_object(o);
}

static void hmp_info_name(GString *out, JsonNode *ret)
{
    JsonObject *o = json_node_get_object(ret);

    if (json_object_has_member(o, "name")) {
        g_string_append_printf(out, "%s\n",
                               json_object_get_string_member(o, "name"));
    }
}

static JsonNode *qmp_query_version(JsonObject *args, GError **errp)
{
    return monitor_version_info();
}

static void hmp_info_version(GString *out, JsonNode *ret)
{
    JsonObject *o = json_node_get_object(ret);
    JsonObject *q = json_object_get_object_member(o, "qemu");

    g_string_append_printf(out,
                           "%" G_GINT64_FORMAT ".%" G_GINT64_FORMAT
                           ".%" G_GINT64_FORMAT " (%s)\n",
                           json_object_get_int_member(q, "major"),
                           json_object_get_int_member(q, "minor"),
                           json_object_get_int_member(q, "micro"),
                           json_object_get_string_member(o, "package"));
}

static JsonNode *qmp_query_cpus_fast(JsonObject *args, GError **errp)
{
    Machine *m = current_machine;
    JsonArray *a = json_array_new();

    for (int i = 0; i < m->smp; i++) {
        JsonObject *c = json_object_new(), *props = json_object_new();
        g_autofree char *path =
            g_strdup_printf("/machine/unattached/device[%d]", i);
        json_object_set_int_member(c, "cpu-index", i);
        json_object_set_string_member(c, "qom-path", path);
        json_object_set_int_member(c, "thread-id",
                                   atomic_load(&m->cpus[i]->thread_id));
        json_object_set_int_member(props, "socket-id", i);
        json_object_set_int_member(props, "core-id", 0);
        json_object_set_int_member(props, "thread-id", 0);
        json_object_set_object_member(c, "props", props);
        json_object_set_string_member(c, "target", "x86_64");
        json_array_add_object_element(a, c);
    }
    return qmp_return_array(a);
}

static void hmp_info_cpus(GString *out, JsonNode *ret)
{
    JsonArray *a = json_node_get_array(ret);

    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *c = json_array_get_object_element(a, i);
        g_string_append_printf(
            out,
            "%c CPU #%" G_GINT64_FORMAT ": thread_id=%" G_GINT64_FORMAT "\n",
            i == 0 ? '*' : ' ', json_object_get_int_member(c, "cpu-index"),
            json_object_get_int_member(c, "thread-id"));
    }
}

/* QEMU's query-kvm: present = KVM usable on this host, enabled = in use. */
static JsonNode *qmp_query_kvm(JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

    if (fd >= 0) {
        close(fd);
    }
    json_object_set_boolean_member(
        o, "enabled", !strcmp(current_machine->accel->name, "kvm"));
    json_object_set_boolean_member(o, "present", fd >= 0);
    return qmp_return_object(o);
}

static void hmp_info_kvm(GString *out, JsonNode *ret)
{
    JsonObject *o = json_node_get_object(ret);

    g_string_append(out, "kvm support: ");
    if (json_object_get_boolean_member(o, "present")) {
        g_string_append_printf(out, "%s\n",
                               json_object_get_boolean_member(o, "enabled")
                                   ? "enabled"
                                   : "disabled");
    } else {
        g_string_append(out, "not available\n");
    }
}

static JsonNode *qmp_x_query_accel(JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();

    json_object_set_string_member(o, "accelerator",
                                  current_machine->accel->name);
    return qmp_return_object(o);
}

static void hmp_info_accel(GString *out, JsonNode *ret)
{
    g_string_append_printf(out, "accelerator: %s\n",
                           json_object_get_string_member(
                               json_node_get_object(ret), "accelerator"));
}

static JsonNode *qmp_x_reload_vcpus(JsonObject *args, GError **errp)
{
    Machine *m = current_machine;
    bool was_running = runstate_is_running();

    if (system_dirty_log_active() || migration_dirty_log_in_use()) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "dirty logging is active; stop it first");
        return NULL;
    }
    if (runstate_get() != RUN_STATE_RUNNING &&
        runstate_get() != RUN_STATE_PAUSED &&
        runstate_get() != RUN_STATE_PRELAUNCH) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "x-reload-vcpus is not possible in state '%s'",
                    runstate_name(runstate_get()));
        return NULL;
    }
    if (was_running) {
        pause_all_vcpus(m);
    }
    if (!machine_reload_accel(m, errp)) {
        /* The old VM is gone and the new one is unusable. */
        runstate_set(RUN_STATE_INTERNAL_ERROR);
        return NULL;
    }
    if (was_running) {
        resume_all_vcpus(m);
    }
    return qmp_return_empty();
}

static JsonNode *qmp_x_vcpu_throttle(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"percentage", NULL};
    int64_t pct = 0;

    if (!qmp_args_check(args, allowed, errp) ||
        !qmp_arg_int(args, "percentage", true, &pct, errp)) {
        return NULL;
    }
    if (pct < 0 || pct > CPU_THROTTLE_PCT_MAX) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter 'percentage' expects an integer in the range "
                    "of 0 to %d",
                    CPU_THROTTLE_PCT_MAX);
        return NULL;
    }
    cpu_throttle_set((int)pct);
    return qmp_return_empty();
}

static const MonitorCommand system_commands[] = {
    {
        .name = "query-status",
        .handler = qmp_query_status,
        .hmp_name = "info status",
        .help = "show the current VM status (running|paused)",
        .hmp_print = hmp_info_status,
    },
    {
        .name = "stop",
        .handler = qmp_stop,
        .hmp_name = "stop",
        .help = "stop emulation",
    },
    {
        .name = "cont",
        .handler = qmp_cont,
        .hmp_name = "cont",
        .help = "resume emulation",
    },
    {
        .name = "quit",
        .handler = qmp_quit,
        .hmp_name = "quit",
        .help = "quit the emulator",
    },
    {
        .name = "query-name",
        .handler = qmp_query_name,
        .hmp_name = "info name",
        .help = "show the current VM name",
        .hmp_print = hmp_info_name,
    },
    {
        .name = "query-version",
        .handler = qmp_query_version,
        .hmp_name = "info version",
        .help = "show the version of godwit",
        .hmp_print = hmp_info_version,
    },
    {
        .name = "query-cpus-fast",
        .handler = qmp_query_cpus_fast,
        .hmp_name = "info cpus",
        .help = "show infos for each CPU",
        .hmp_print = hmp_info_cpus,
    },
    {
        .name = "query-kvm",
        .handler = qmp_query_kvm,
        .hmp_name = "info kvm",
        .help = "show KVM information",
        .hmp_print = hmp_info_kvm,
    },
    {
        .name = "x-query-accel",
        .handler = qmp_x_query_accel,
        .hmp_name = "info accel",
        .help = "show which accelerator runs the guest (kvm or tcg)",
        .hmp_print = hmp_info_accel,
    },
    {
        .name = "x-vcpu-throttle",
        .handler = qmp_x_vcpu_throttle,
        .hmp_name = "x_vcpu_throttle",
        .args_type = "percentage:i",
        .params = "percentage",
        .help = "throttle every vCPU to sleep this % of the time, 0 = off "
                "(debug; auto-converge sets it during migrations)",
    },
    {
        .name = "x-reload-vcpus",
        .handler = qmp_x_reload_vcpus,
        .hmp_name = "x_reload_vcpus",
        .help = "save every vCPU, recreate the accelerator's VM and load "
                "them back (debug)",
    },
};

void system_register_commands(void)
{
    monitor_register_commands(system_commands, G_N_ELEMENTS(system_commands));
    system_dirty_log_register_commands();
}
