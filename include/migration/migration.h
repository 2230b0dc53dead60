/*
 * What the rest of the VMM calls of the migration subsystem.
 */
#ifndef MIGRATION_MIGRATION_H
#define MIGRATION_MIGRATION_H

#include <stdbool.h>

#include "godwit/error.h"

typedef struct Machine Machine;

/*
 * Main thread, after the machine and its devices exist: registers the RAM
 * section, the transports, the options and every migration command.
 */
void migration_init(Machine *m);

/*
 * -incoming URI|defer, given on the command line: the VM waits in
 * inmigrate. False with *errp set for a bad URI or a port that cannot be
 * bound.
 */
bool migration_incoming_from_cmdline(const char *uri, GError **errp);

/* Whether a migration (either direction) is in progress. */
bool migration_busy(void);

/*
 * Whether the migration subsystem uses the accelerator's dirty log now (a
 * migration, or calc-dirty-rate in dirty-bitmap mode). x-dirty-log checks
 * it before starting its own.
 */
bool migration_dirty_log_in_use(void);

/*
 * At exit (main thread): cancels an outgoing migration and waits for the
 * migration threads, so the process ends cleanly.
 */
void migration_shutdown(void);

#endif /* MIGRATION_MIGRATION_H */
