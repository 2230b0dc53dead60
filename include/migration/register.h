/*
 * Sections of the migration stream: each owner of state (RAM, vCPUs,
 * devices) registers a SaveStateHandler; migration/savevm.c walks them.
 *
 * Two kinds:
 *   iterable (RAM): save_setup (START section), save_iterate (PART
 *     sections while the guest runs), save_complete (END, guest stopped),
 *     save_pending;
 *   plain (vCPUs, devices): save_state (one FULL section, guest stopped).
 * Both: load_state on the destination, once per section received.
 *
 * Registering a handler without a way to save and to load asserts: a
 * section that silently does nothing would lose state.
 */
#ifndef MIGRATION_REGISTER_H
#define MIGRATION_REGISTER_H

#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "migration/qemu-file.h"

typedef struct SaveStateHandler {
    const char *idstr;
    uint32_t version_id;

    /* Migration thread, guest running: writes the START section body. */
    bool (*save_setup)(QEMUFile *f, void *opaque, GError **errp);
    /*
     * Migration thread, guest running: writes one PART body. Returns < 0
     * (-errno) on error, 1 once everything dirty so far was sent, else 0.
     */
    int (*save_iterate)(QEMUFile *f, void *opaque);
    /* Migration thread, guest stopped: END body with everything left. */
    bool (*save_complete)(QEMUFile *f, void *opaque, GError **errp);
    /* Migration thread: bytes still to send (estimate). */
    uint64_t (*save_pending)(void *opaque);

    /* Migration thread, guest stopped: the FULL section body. */
    bool (*save_state)(QEMUFile *f, void *opaque, GError **errp);

    /* Migration thread, at the end of every outgoing migration. */
    void (*save_cleanup)(void *opaque);

    /*
     * Incoming thread: reads one section body sent with `version_id`
     * (never newer than ours: checked before the call).
     */
    bool (*load_state)(QEMUFile *f, void *opaque, uint32_t version_id,
                       GError **errp);
    /* Incoming thread, after the whole stream loaded or failed. */
    void (*load_cleanup)(void *opaque);

    /*
     * Plain sections: appends "fields" to the VM description (a JSON
     * object is open in the builder). Migration thread, guest stopped.
     */
    void (*describe)(JsonBuilder *b, void *opaque);
} SaveStateHandler;

/*
 * Registers a section instance (main thread, before any migration).
 * Iterable handlers must have setup/iterate/complete/pending; plain ones
 * save_state; all load_state.
 */
void register_savevm(const SaveStateHandler *h, uint32_t instance_id,
                     void *opaque);
void unregister_savevm_all(void);

#endif /* MIGRATION_REGISTER_H */
