/*
 * Entry points of system/ used by main() and by other subsystems.
 */
#ifndef GODWIT_SYSTEM_H
#define GODWIT_SYSTEM_H

#include <stdbool.h>

/* Registers the VM's monitor commands (status, stop, cont, ...). */
void system_register_commands(void);
void system_dirty_log_register_commands(void);

/* Registers the "cpu" migration sections, one per vCPU. */
typedef struct Machine Machine;
void cpu_vmstate_register(Machine *m);

/* Whether the x-dirty-log debug command has dirty logging running. */
bool system_dirty_log_active(void);

#endif /* GODWIT_SYSTEM_H */
