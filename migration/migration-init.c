/*
 * Wiring of the migration subsystem into the VMM: registration at start,
 * clean shutdown at exit.
 */
#include <sys/eventfd.h>

#include "godwit/machine.h"
#include "godwit/runstate.h"
#include "migration-int.h"
#include "migration/migration.h"
#include "migration/options.h"
#include "ram.h"

static bool outgoing_running(void)
{
    return migration_is_running();
}

/*
 * A completed incoming migration no longer holds the options: the VM it
 * brought may leave again with others (multifd, compress threads...), as
 * in QEMU, which drops its incoming state then. A failed one exits.
 */
static bool incoming_over(void)
{
    return atomic_load(&migration_incoming_get_current()->status) ==
           MIGRATION_STATUS_COMPLETED;
}

static bool incoming_started(void)
{
    return migration_incoming_active() && !incoming_over();
}

static bool incoming_loading(void)
{
    return migration_incoming_loading() && !incoming_over();
}

/* QEMU's check: a destination (-incoming) must have userfaultfd. */
static bool postcopy_check(GError **errp)
{
    g_autoptr(GError) err = NULL;

    if (runstate_get() != RUN_STATE_INMIGRATE) {
        return true;
    }
    if (!postcopy_ram_supported(&err)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Postcopy is not supported: %s", err->message);
        return false;
    }
    return true;
}

void migration_init(Machine *m)
{
    MigrationState *s = migrate_get_current();

    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    s->connect_cancel_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    g_assert(s->connect_cancel_fd >= 0);
    migration_channels_init();
    migration_options_init(outgoing_running, incoming_started,
                           incoming_loading);
    migration_options_set_postcopy_check(postcopy_check);
    migration_options_set_dirty_limit_check(dirty_limit_capability_check);
    ram_register(m);
    migration_options_register_commands();
    migration_register_qmp_commands();
    dirtyrate_register_commands();
    dirty_limit_register_commands();
}

bool migration_incoming_from_cmdline(const char *uri, GError **errp)
{
    return migration_incoming_start(uri, errp);
}

bool migration_dirty_log_in_use(void)
{
    return migration_is_running() || dirtyrate_uses_dirty_log() ||
           dirtyrate_counts_vcpus();
}

bool migration_busy(void)
{
    return migration_is_running() ||
           (migration_incoming_active() &&
            atomic_load(&migration_incoming_get_current()->status) ==
                MIGRATION_STATUS_ACTIVE);
}

void migration_shutdown(void)
{
    MigrationState *s = migrate_get_current();
    MigrationIncomingState *mis = migration_incoming_get_current();

    dirtyrate_shutdown();
    migrate_cancel_force();
    if (s->thread_created) {
        pthread_join(s->thread, NULL);
        s->thread_created = false;
    }
    if (mis->listener) {
        mig_listener_shutdown(mis->listener);
    }
    migration_incoming_shutdown();
    if (mis->thread_created) {
        pthread_join(mis->thread, NULL);
        mis->thread_created = false;
    }
    dirty_limit_shutdown();
}
