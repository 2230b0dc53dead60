/*
 * main(): command line, machine, devices, monitors, the GLib main loop,
 * and an orderly tear-down. Errors before the main loop print one line
 * on stderr and exit with status 1, leaving nothing behind.
 */
#include <errno.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crypto/init.h"
#include "godwit-config.h"
#include "godwit/chardev.h"
#include "godwit/cpu-throttle.h"
#include "godwit/hw.h"
#include "godwit/ioport.h"
#include "godwit/machine.h"
#include "godwit/monitor.h"
#include "godwit/object.h"
#include "godwit/options.h"
#include "godwit/runstate.h"
#include "godwit/system.h"
#include "migration/migration.h"

typedef struct Godwit {
    GwOptions opts;
    Machine *machine;
    Chardev *serial;
    GMainLoop *loop;
    bool pidfile_written;
} Godwit;

static int count_stdio(const GwOptions *o)
{
    int n = o->serial && !strcmp(o->serial, "stdio");

    for (guint i = 0; o->qmp && i < o->qmp->len; i++) {
        n += !strcmp(g_ptr_array_index(o->qmp, i), "stdio");
    }
    for (guint i = 0; o->monitor && i < o->monitor->len; i++) {
        n += !strcmp(g_ptr_array_index(o->monitor, i), "stdio");
    }
    return n;
}

/* Checks that need no resources, before anything is created. */
static bool check_options(GwOptions *o, GError **errp)
{
    if (count_stdio(o) > 1) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "stdio is used by more than one of -serial, -qmp and "
                    "-monitor");
        return false;
    }
    if (!o->serial) {
        /* QEMU-like default: the console on stdio unless stdio is busy. */
        o->serial =
            g_strdup(o->nodefaults || count_stdio(o) ? "none" : "stdio");
    }
    /* A destination gets RAM and vCPUs from the stream: no kernel needed. */
    if (!o->kernel && !o->incoming) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "no kernel given (-kernel FILE)");
        return false;
    }
    return true;
}

static bool write_pidfile(Godwit *g, GError **errp)
{
    g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
    g_autoptr(GError) err = NULL;

    if (!g->opts.pidfile) {
        return true;
    }
    if (!g_file_set_contents(g->opts.pidfile, pid, -1, &err)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "-pidfile: %s",
                    err->message);
        return false;
    }
    g->pidfile_written = true;
    return true;
}

static bool open_monitors(const GwOptions *o, GError **errp)
{
    for (guint i = 0; o->qmp && i < o->qmp->len; i++) {
        if (!monitor_open_qmp(g_ptr_array_index(o->qmp, i), errp)) {
            g_prefix_error(errp, "-qmp %s: ",
                           (char *)g_ptr_array_index(o->qmp, i));
            return false;
        }
    }
    for (guint i = 0; o->monitor && i < o->monitor->len; i++) {
        if (!monitor_open_hmp(g_ptr_array_index(o->monitor, i), errp)) {
            g_prefix_error(errp, "-monitor %s: ",
                           (char *)g_ptr_array_index(o->monitor, i));
            return false;
        }
    }
    return true;
}

static gboolean on_signal(gpointer opaque)
{
    qemu_system_shutdown_request(false, "host-signal");
    return G_SOURCE_CONTINUE;
}

static bool godwit_start(Godwit *g, GError **errp)
{
    MachineConfig cfg = {
        .name = g->opts.name,
        .ram_size = g->opts.ram_size,
        .smp = g->opts.smp,
        .kernel = g->opts.kernel,
        .append = g->opts.append,
        .accel = g->opts.accel,
        .dirty_ring_size = g->opts.dirty_ring_size,
        .mem_prealloc = g->opts.mem_prealloc,
    };

    accel_register_all();
    g->machine = machine_new(&cfg, errp);
    if (!g->machine) {
        return false;
    }
    g->serial = chardev_open(g->opts.serial, errp);
    if (!g->serial) {
        g_prefix_error(errp, "-serial: ");
        return false;
    }
    serial_init(g->serial);
    hypercall_init(g->machine, g->serial);
    cpu_throttle_init(g->machine);

    /* Migration sections, in stream order after RAM: vCPUs, devices. */
    cpu_vmstate_register(g->machine);
    serial_register_vmstate();
    hypercall_register_vmstate();

    monitor_set_version(GODWIT_VERSION_MAJOR, GODWIT_VERSION_MINOR,
                        GODWIT_VERSION_MICRO, GODWIT_PACKAGE);
    system_register_commands();
    hw_register_commands();
    migration_init(g->machine);
    object_register_commands();
    crypto_objects_register();
    for (guint i = 0; g->opts.objects && i < g->opts.objects->len; i++) {
        const char *spec = g_ptr_array_index(g->opts.objects, i);
        if (!object_add_keyval(spec, errp)) {
            g_prefix_error(errp, "-object %s: ", spec);
            return false;
        }
    }

    g->loop = g_main_loop_new(NULL, FALSE);
    runstate_init(g->loop, g->opts.incoming ? RUN_STATE_INMIGRATE
                                            : RUN_STATE_PRELAUNCH);
    runstate_set_autostart(!g->opts.start_paused);
    if (g->opts.incoming &&
        !migration_incoming_from_cmdline(g->opts.incoming, errp)) {
        g_prefix_error(errp, "-incoming %s: ", g->opts.incoming);
        return false;
    }
    if (!open_monitors(&g->opts, errp) || !write_pidfile(g, errp)) {
        return false;
    }
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGHUP, on_signal, NULL);
    if (!g->opts.start_paused && !g->opts.incoming) {
        vm_start();
    }
    return true;
}

static void godwit_stop(Godwit *g)
{
    if (g->machine) {
        migration_shutdown();
        cpu_throttle_cleanup();
    }
    machine_free(g->machine);
    g->machine = NULL;
    monitor_cleanup();
    object_del_all();
    chardev_close(g->serial);
    if (g->pidfile_written) {
        unlink(g->opts.pidfile);
    }
    if (g->loop) {
        g_main_loop_unref(g->loop);
    }
    ioport_unregister_all();
    gw_options_clear(&g->opts);
}

int main(int argc, char **argv)
{
    Godwit g = {0};
    g_autoptr(GError) err = NULL;

    signal(SIGPIPE, SIG_IGN);
#if GLIB_CHECK_VERSION(2, 68, 0)
    /* Debug and info lines too: stdout may be the HMP (-monitor stdio). */
    g_log_writer_default_set_use_stderr(TRUE);
#endif
    if (!gw_options_parse(argc, argv, &g.opts, &err)) {
        fprintf(stderr, "godwit: %s\n", err->message);
        gw_options_clear(&g.opts);
        return 1;
    }
    if (g.opts.show_help) {
        fputs(gw_options_usage(), stdout);
        gw_options_clear(&g.opts);
        return 0;
    }
    if (g.opts.show_version) {
        printf("godwit version %s (%s), a KVM VMM with QEMU-compatible live "
               "migration\n",
               GODWIT_VERSION, GODWIT_PACKAGE);
        gw_options_clear(&g.opts);
        return 0;
    }
    if (!check_options(&g.opts, &err) || !godwit_start(&g, &err)) {
        fprintf(stderr, "godwit: %s\n", err->message);
        godwit_stop(&g);
        return 1;
    }
    if (g.machine->accel_note) {
        fprintf(stderr, "godwit: %s\n", g.machine->accel_note);
    }
    g_main_loop_run(g.loop);
    godwit_stop(&g);
    return runstate_exit_code();
}
