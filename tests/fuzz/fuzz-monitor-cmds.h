/*
 * The command set of the QMP and HMP fuzz targets: safe commands only
 * (nothing quits, forks, opens sockets or files, or emits events that
 * would pile up without a main loop): an echo taking every HMP argument
 * type, failures, a list, a unicode string, a query, the monitor's own
 * commands (qmp_capabilities, query-commands, human-monitor-command) and
 * the real migration capability and parameter commands, object-add and
 * object-del with the authz types (the TLS credentials types read files:
 * not registered).
 */
#ifndef TESTS_FUZZ_FUZZ_MONITOR_CMDS_H
#define TESTS_FUZZ_FUZZ_MONITOR_CMDS_H

/* Registers the commands once (later calls do nothing). */
void fuzz_monitor_register(void);
/* Puts the migration options back to their defaults and deletes every
 * object (per input). */
void fuzz_monitor_reset(void);

#endif /* TESTS_FUZZ_FUZZ_MONITOR_CMDS_H */
