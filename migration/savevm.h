/*
 * The migration stream's structure (QEMU's format): header, configuration,
 * sections with footers, EOF, VM description. Internal to migration/.
 */
#ifndef MIGRATION_SAVEVM_H
#define MIGRATION_SAVEVM_H

#include "migration/qemu-file.h"
#include "migration/register.h"

#define QEMU_VM_FILE_MAGIC 0x5145564du /* "QEVM" */
#define QEMU_VM_FILE_VERSION_COMPAT 0x00000002u
#define QEMU_VM_FILE_VERSION 0x00000003u

enum {
    QEMU_VM_EOF = 0x00,
    QEMU_VM_SECTION_START = 0x01,
    QEMU_VM_SECTION_PART = 0x02,
    QEMU_VM_SECTION_END = 0x03,
    QEMU_VM_SECTION_FULL = 0x04,
    QEMU_VM_SUBSECTION = 0x05,
    QEMU_VM_VMDESCRIPTION = 0x06,
    QEMU_VM_CONFIGURATION = 0x07,
    QEMU_VM_COMMAND = 0x08,
    QEMU_VM_SECTION_FOOTER = 0x7e,
};

/* Machine type in the configuration section; a destination refuses others. */
#define GODWIT_MACHINE_TYPE "godwit-pc"

/* Largest VM description a destination reads (and discards). */
#define SAVEVM_VMDESC_MAX (64u << 20)

/* Source, migration thread. */
void qemu_savevm_state_header(QEMUFile *f);
bool qemu_savevm_state_setup(QEMUFile *f, GError **errp);
/* 1: every iterable section sent all it had; 0: more to do; < 0: error */
int qemu_savevm_state_iterate(QEMUFile *f);
uint64_t qemu_savevm_state_pending(void);
/* Guest stopped: END of iterables, FULL of the rest, EOF, description. */
bool qemu_savevm_state_complete(QEMUFile *f, GError **errp);
void qemu_savevm_state_cleanup(void);

/* Destination, incoming thread: the whole stream. */
bool qemu_loadvm_state(QEMUFile *f, GError **errp);

#endif /* MIGRATION_SAVEVM_H */
