/*
 * Run state of the VM, QEMU's names, and stop/start of the whole VM.
 */
#ifndef GODWIT_RUNSTATE_H
#define GODWIT_RUNSTATE_H

#include <glib.h>
#include <stdbool.h>

typedef enum RunState {
    RUN_STATE_PRELAUNCH,      /* -S, not started yet */
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,         /* stop */
    RUN_STATE_INMIGRATE,      /* waiting for an incoming migration */
    RUN_STATE_FINISH_MIGRATE, /* source, during switchover */
    RUN_STATE_POSTMIGRATE,    /* source, after a completed migration */
    RUN_STATE_RESTORE_VM,     /* loading a saved VM */
    RUN_STATE_INTERNAL_ERROR, /* accelerator failure */
    RUN_STATE_SHUTDOWN,
    RUN_STATE__MAX,
} RunState;

/* Sets the initial state and the loop that shutdown requests end. */
void runstate_init(GMainLoop *loop, RunState initial);

const char *runstate_name(RunState s);
RunState runstate_get(void);
bool runstate_is_running(void);
/* Sets the state; an invalid transition is a programming error. */
void runstate_set(RunState s);
bool runstate_check_transition(RunState from, RunState to);

/*
 * Pauses every vCPU, sets `state` and emits STOP (if the VM was running).
 * Main loop or migration thread.
 */
void vm_stop(RunState state);

/*
 * vm_stop(state) if running; otherwise just moves to `state` when that is
 * a valid transition (migration's finish-migrate from a paused VM).
 */
void vm_stop_force_state(RunState state);

/* Resumes the vCPUs, sets running and emits RESUME. */
void vm_start(void);

/*
 * Requests an orderly shutdown: emits SHUTDOWN {guest, reason} and makes
 * the main loop end after pending monitor output is flushed. Any thread.
 */
void qemu_system_shutdown_request(bool guest, const char *reason);

/*
 * Asks the main loop to vm_stop(state) (e.g. a vCPU that hit an error).
 * Any thread, vCPU threads included.
 */
void qemu_system_vmstop_request(RunState state);

/*
 * Whether the guest starts once an incoming migration completes (cleared
 * by -S; 'cont' and 'stop' during inmigrate set and clear it, as in QEMU).
 */
void runstate_set_autostart(bool on);
bool runstate_autostart(void);

/*
 * Like qemu_system_shutdown_request, and main() returns `code` (a failed
 * incoming migration exits non-zero, as QEMU does). Any thread.
 */
void qemu_system_exit_request(int code, const char *reason);
int runstate_exit_code(void);

/* True once a shutdown was requested. */
bool shutdown_requested(void);

#endif /* GODWIT_RUNSTATE_H */
