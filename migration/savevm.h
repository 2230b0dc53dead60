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

/* QEMU_VM_COMMAND numbers (QEMU's enum qemu_vm_cmd). */
enum {
    MIG_CMD_INVALID = 0,
    MIG_CMD_OPEN_RETURN_PATH = 1,
    MIG_CMD_PING = 2,
    MIG_CMD_POSTCOPY_ADVISE = 3,
    MIG_CMD_POSTCOPY_LISTEN = 4,
    MIG_CMD_POSTCOPY_RUN = 5,
    MIG_CMD_POSTCOPY_RAM_DISCARD = 6,
    MIG_CMD_PACKAGED = 7,
    MIG_CMD_ENABLE_COLO = 8,
    MIG_CMD_POSTCOPY_RESUME = 9,
    MIG_CMD_RECV_BITMAP = 10,
    MIG_CMD_MAX,
};

/* Largest PACKAGED body either side accepts (device state is small). */
#define MIG_PACKAGED_MAX (1u << 24)
/* (start, length) pairs per POSTCOPY_RAM_DISCARD command, as QEMU. */
#define MIG_DISCARD_MAX_PAIRS 12
/* PING sent inside the package: its PONG says the package was loaded. */
#define QEMU_VM_PING_PACKAGED_LOADED 0x42

/* Source, migration thread. */
void qemu_savevm_state_header(QEMUFile *f);
void qemu_savevm_send_open_return_path(QEMUFile *f);
void qemu_savevm_send_ping(QEMUFile *f, uint32_t value);
/* 16 bytes: the RAM page-size summary and the target page size. */
void qemu_savevm_send_postcopy_advise(QEMUFile *f);
void qemu_savevm_send_postcopy_listen(QEMUFile *f);
void qemu_savevm_send_postcopy_run(QEMUFile *f);
/* One command: `n` (<= MIG_DISCARD_MAX_PAIRS) byte ranges of `block`. */
void qemu_savevm_send_postcopy_ram_discard(QEMUFile *f, const char *block,
                                           int n, const uint64_t *start,
                                           const uint64_t *length);
void qemu_savevm_send_packaged(QEMUFile *f, const uint8_t *buf, size_t len);
/* Recovery: ask for `block`'s received bitmap; then resume. */
void qemu_savevm_send_recv_bitmap(QEMUFile *f, const char *block);
void qemu_savevm_send_postcopy_resume(QEMUFile *f);
/*
 * Post-copy: the FULL sections of every non-iterable handler (the body of
 * the package, between LISTEN and RUN); no EOF.
 */
bool qemu_savevm_state_complete_devices(QEMUFile *f, GError **errp);
/* Post-copy: END of every iterable, then EOF (no VM description). */
bool qemu_savevm_state_complete_postcopy(QEMUFile *f, GError **errp);
bool qemu_savevm_state_setup(QEMUFile *f, GError **errp);
/* 1: every iterable section sent all it had; 0: more to do; < 0: error */
int qemu_savevm_state_iterate(QEMUFile *f);
uint64_t qemu_savevm_state_pending(void);
/* Guest stopped: END of iterables, FULL of the rest, EOF, description. */
bool qemu_savevm_state_complete(QEMUFile *f, GError **errp);
void qemu_savevm_state_cleanup(void);

/*
 * Destination: what the stream's commands ask of the rest of the
 * migration code (incoming.c). Each runs on the incoming thread, in the
 * order the parser allows (QEMU's post-copy states: advise, discard,
 * listen, running); NULL hooks refuse their command.
 */
typedef struct LoadvmCommandOps {
    bool (*open_return_path)(GError **errp);
    bool (*ping)(uint32_t value, GError **errp);
    bool (*postcopy_advise)(uint64_t pagesize_summary, uint64_t page_size,
                            GError **errp);
    bool (*postcopy_discard)(const char *block, uint64_t start,
                             uint64_t length, GError **errp);
    bool (*postcopy_listen)(GError **errp);
    bool (*postcopy_run)(GError **errp);
    /* The listen thread failed: no page will come; free the waiters. */
    void (*postcopy_abort)(void);
    /* The listen thread read the main stream to its EOF. */
    bool (*postcopy_listen_done)(GError **errp);
    /*
     * Recovery. postcopy_pause: the main stream `old` broke (`why`) after
     * the switch; closes it, waits for a new connection (migrate-recover)
     * and returns its stream, or NULL to give up. recv_bitmap and
     * postcopy_resume: the source's MIG_CMD_RECV_BITMAP and
     * POSTCOPY_RESUME on the new stream.
     */
    QEMUFile *(*postcopy_pause)(QEMUFile *old, const char *why);
    bool (*recv_bitmap)(const char *block, GError **errp);
    bool (*postcopy_resume)(GError **errp);
} LoadvmCommandOps;

void qemu_loadvm_set_command_ops(const LoadvmCommandOps *ops);

/* Destination, incoming thread: the whole stream. */
bool qemu_loadvm_state(QEMUFile *f, GError **errp);

#endif /* MIGRATION_SAVEVM_H */
