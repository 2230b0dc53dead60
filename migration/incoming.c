/*
 * Incoming migration (destination): -incoming URI, -incoming defer +
 * migrate-incoming, the incoming thread that accepts the one connection
 * and loads the stream, and what follows: run (or stay paused with -S) on
 * success; print the reason and exit non-zero on failure, as QEMU does.
 */
#include <stdio.h>
#include <string.h>

#include "godwit/hw.h"
#include "godwit/machine.h"
#include "godwit/monitor.h"
#include "godwit/runstate.h"
#include "migration-int.h"
#include "migration/options.h"
#include "savevm.h"

static MigrationIncomingState incoming = {
    .status = MIGRATION_STATUS_NONE,
};

MigrationIncomingState *migration_incoming_get_current(void)
{
    return &incoming;
}

bool migration_incoming_active(void)
{
    return incoming.started;
}

bool migration_incoming_loading(void)
{
    return atomic_load(&incoming.status) != MIGRATION_STATUS_NONE &&
           atomic_load(&incoming.status) != MIGRATION_STATUS_SETUP;
}

static void incoming_set_status(MigrationStatus st)
{
    atomic_store(&incoming.status, st);
    if (migrate_cap(MIGRATION_CAPABILITY_EVENTS)) {
        JsonObject *d = json_object_new();
        json_object_set_string_member(d, "status", migration_status_name(st));
        monitor_emit_event("MIGRATION", d);
    }
}

/* Main loop, after the incoming thread ended. */
static gboolean incoming_done_bh(gpointer opaque)
{
    bool ok = GPOINTER_TO_INT(opaque);

    if (incoming.thread_created) {
        pthread_join(incoming.thread, NULL);
        incoming.thread_created = false;
    }
    if (!ok) {
        fprintf(stderr, "godwit: load of migration failed: %s\n",
                incoming.error_desc);
        qemu_system_exit_request(1, "migration-failed");
        return G_SOURCE_REMOVE;
    }
    /* The guest sees a new generation: payloads check themselves. */
    hypercall_bump_generation();
    if (runstate_autostart()) {
        vm_start();
    } else {
        runstate_set(RUN_STATE_PAUSED);
    }
    return G_SOURCE_REMOVE;
}

static void *incoming_thread(void *opaque)
{
    g_autoptr(GError) err = NULL;
    MigChannel *chan;
    bool ok = false;

    pthread_setname_np(pthread_self(), "mig/dst/main");
    chan = mig_accept(incoming.listener, &err);
    mig_listener_close(incoming.listener);
    incoming.listener = NULL;
    if (chan) {
        QEMUFile *f = qemu_file_new_input(chan);
        incoming_set_status(MIGRATION_STATUS_ACTIVE);
        ok = qemu_loadvm_state(f, &err);
        /* A complete load stands even if the stream's end was untidy. */
        qemu_fclose(f, NULL);
    }
    atomic_store(&incoming.total_ms,
                 g_get_real_time() / 1000 - atomic_load(&incoming.start_ms));
    if (!ok) {
        incoming.error_desc = g_strdup(err ? err->message : "unknown error");
    }
    incoming_set_status(ok ? MIGRATION_STATUS_COMPLETED
                           : MIGRATION_STATUS_FAILED);
    g_idle_add(incoming_done_bh, GINT_TO_POINTER(ok));
    return NULL;
}

bool migration_incoming_start(const char *uri, GError **errp)
{
    MigUri parsed;

    if (runstate_get() != RUN_STATE_INMIGRATE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "'-incoming' was not specified on the command line");
        return false;
    }
    if (incoming.started) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "The incoming migration has already been started");
        return false;
    }
    if (!strcmp(uri, "defer")) {
        incoming.deferred = true;
        return true;
    }
    if (!mig_uri_parse(uri, &parsed, errp)) {
        return false;
    }
    incoming.listener = mig_listen(&parsed, errp);
    mig_uri_clear(&parsed);
    if (!incoming.listener) {
        return false;
    }
    incoming.address = mig_listener_address(incoming.listener);
    /*
     * Everything comes from the stream: start from all-zero RAM (kept
     * allocated with -mem-prealloc, where it is zero already unless a
     * kernel was loaded).
     */
    if (!current_machine->mem_prealloc || current_machine->kernel) {
        ram_block_discard_range(current_machine->ram, 0,
                                current_machine->ram->used_length);
    }
    if (current_machine->mem_prealloc && current_machine->kernel &&
        !ram_block_prealloc(current_machine->ram, g_get_num_processors(),
                            errp)) {
        return false;
    }
    incoming.started = true;
    atomic_store(&incoming.start_ms, g_get_real_time() / 1000);
    incoming_set_status(MIGRATION_STATUS_SETUP);
    int r = pthread_create(&incoming.thread, NULL, incoming_thread, NULL);
    if (r) {
        mig_listener_close(incoming.listener);
        incoming.listener = NULL;
        incoming.started = false;
        return gw_error_errno(errp, r, "cannot create the incoming thread");
    }
    incoming.thread_created = true;
    return true;
}
