/*
 * The VM run state (QEMU's RunState names), vm_stop/vm_start, and
 * shutdown requests that end the main loop.
 */
#include <stdatomic.h>

#include "godwit/machine.h"
#include "godwit/monitor.h"
#include "godwit/runstate.h"

static const char *const runstate_names[RUN_STATE__MAX] = {
    [RUN_STATE_PRELAUNCH] = "prelaunch",
    [RUN_STATE_RUNNING] = "running",
    [RUN_STATE_PAUSED] = "paused",
    [RUN_STATE_INMIGRATE] = "inmigrate",
    [RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
    [RUN_STATE_POSTMIGRATE] = "postmigrate",
    [RUN_STATE_RESTORE_VM] = "restore-vm",
    [RUN_STATE_INTERNAL_ERROR] = "internal-error",
    [RUN_STATE_SHUTDOWN] = "shutdown",
};

#define S(x) (1u << RUN_STATE_##x)
/* Allowed transitions: from -> set of destinations. */
static const unsigned runstate_transitions[RUN_STATE__MAX] = {
    [RUN_STATE_PRELAUNCH] = S(RUNNING) | S(INMIGRATE) | S(FINISH_MIGRATE) |
                            S(PAUSED) | S(SHUTDOWN) | S(INTERNAL_ERROR),
    [RUN_STATE_RUNNING] = S(PAUSED) | S(FINISH_MIGRATE) | S(INTERNAL_ERROR) |
                          S(SHUTDOWN) | S(POSTMIGRATE),
    [RUN_STATE_PAUSED] = S(RUNNING) | S(FINISH_MIGRATE) | S(POSTMIGRATE) |
                         S(SHUTDOWN) | S(INTERNAL_ERROR),
    [RUN_STATE_INMIGRATE] = S(RUNNING) | S(PAUSED) | S(PRELAUNCH) |
                            S(INTERNAL_ERROR) | S(SHUTDOWN) |
                            S(POSTMIGRATE) | S(FINISH_MIGRATE),
    [RUN_STATE_FINISH_MIGRATE] = S(POSTMIGRATE) | S(PAUSED) | S(RUNNING) |
                                 S(INTERNAL_ERROR) | S(SHUTDOWN),
    [RUN_STATE_POSTMIGRATE] = S(RUNNING) | S(FINISH_MIGRATE) | S(PAUSED) |
                              S(SHUTDOWN) | S(INTERNAL_ERROR),
    [RUN_STATE_RESTORE_VM] = S(RUNNING) | S(PAUSED) | S(SHUTDOWN) |
                             S(INTERNAL_ERROR),
    [RUN_STATE_INTERNAL_ERROR] = S(PAUSED) | S(FINISH_MIGRATE) |
                                 S(SHUTDOWN) | S(RUNNING),
    [RUN_STATE_SHUTDOWN] = S(PAUSED) | S(FINISH_MIGRATE),
};
#undef S

static _Atomic RunState current_state = RUN_STATE_PRELAUNCH;
static atomic_bool shutdown_flag;
static atomic_bool autostart = true;
static atomic_int exit_code;
static GMainLoop *main_loop;
static GMutex vm_lock; /* serialises vm_stop/vm_start across threads */

const char *runstate_name(RunState s)
{
    g_assert(s < RUN_STATE__MAX);
    return runstate_names[s];
}

RunState runstate_get(void)
{
    return atomic_load(&current_state);
}

bool runstate_is_running(void)
{
    return runstate_get() == RUN_STATE_RUNNING;
}

bool runstate_check_transition(RunState from, RunState to)
{
    return from == to || (runstate_transitions[from] & (1u << to));
}

void runstate_set(RunState s)
{
    RunState old = runstate_get();

    if (!runstate_check_transition(old, s)) {
        g_error("invalid run state transition '%s' -> '%s'",
                runstate_name(old), runstate_name(s));
    }
    atomic_store(&current_state, s);
}

void runstate_init(GMainLoop *loop, RunState initial)
{
    main_loop = loop;
    atomic_store(&current_state, initial);
}

void vm_stop(RunState state)
{
    g_mutex_lock(&vm_lock);
    if (runstate_is_running()) {
        pause_all_vcpus(current_machine);
        runstate_set(state);
        monitor_emit_event("STOP", NULL);
    }
    g_mutex_unlock(&vm_lock);
}

void vm_stop_force_state(RunState state)
{
    g_mutex_lock(&vm_lock);
    if (runstate_is_running()) {
        pause_all_vcpus(current_machine);
        runstate_set(state);
        monitor_emit_event("STOP", NULL);
    } else if (runstate_check_transition(runstate_get(), state)) {
        runstate_set(state);
    }
    g_mutex_unlock(&vm_lock);
}

void vm_start(void)
{
    g_mutex_lock(&vm_lock);
    if (!runstate_is_running()) {
        runstate_set(RUN_STATE_RUNNING);
        resume_all_vcpus(current_machine);
        monitor_emit_event("RESUME", NULL);
    }
    g_mutex_unlock(&vm_lock);
}

static gboolean vmstop_cb(gpointer opaque)
{
    RunState state = GPOINTER_TO_INT(opaque);

    if (runstate_is_running()) {
        vm_stop(state);
    } else if (runstate_check_transition(runstate_get(), state)) {
        runstate_set(state);
    }
    return G_SOURCE_REMOVE;
}

void qemu_system_vmstop_request(RunState state)
{
    g_main_context_invoke(NULL, vmstop_cb, GINT_TO_POINTER(state));
}

static gboolean quit_cb(gpointer opaque)
{
    if (main_loop) {
        g_main_loop_quit(main_loop);
    }
    return G_SOURCE_REMOVE;
}

void qemu_system_shutdown_request(bool guest, const char *reason)
{
    JsonObject *data;

    if (atomic_exchange(&shutdown_flag, true)) {
        return;
    }
    data = json_object_new();
    json_object_set_boolean_member(data, "guest", guest);
    json_object_set_string_member(data, "reason", reason);
    monitor_emit_event("SHUTDOWN", data);
    /*
     * Quit from an idle callback queued after the event: replies and
     * events already queued are sent first.
     */
    g_idle_add_full(G_PRIORITY_LOW, quit_cb, NULL, NULL);
    g_main_context_wakeup(NULL);
}

bool shutdown_requested(void)
{
    return atomic_load(&shutdown_flag);
}

void runstate_set_autostart(bool on)
{
    atomic_store(&autostart, on);
}

bool runstate_autostart(void)
{
    return atomic_load(&autostart);
}

void qemu_system_exit_request(int code, const char *reason)
{
    atomic_store(&exit_code, code);
    qemu_system_shutdown_request(false, reason);
}

int runstate_exit_code(void)
{
    return atomic_load(&exit_code);
}
