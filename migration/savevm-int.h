/*
 * What savevm.c (sections, the load loop) and savevm-cmd.c (commands)
 * share on the destination. Internal to those two files.
 */
#ifndef MIGRATION_SAVEVM_INT_H
#define MIGRATION_SAVEVM_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "savevm.h"

#define SAVEVM_MAX_SECTIONS 300

typedef struct SaveStateEntry SaveStateEntry;

/* Maps the source's section ids to our entries (START/FULL announce them). */
typedef struct SectionMap {
    uint32_t ids[SAVEVM_MAX_SECTIONS];
    SaveStateEntry *se[SAVEVM_MAX_SECTIONS];
    _Atomic int n;
} SectionMap;

/* QEMU's PostcopyState, destination: the order commands may come in. */
typedef enum PostcopyIncoming {
    POSTCOPY_INCOMING_NONE,
    POSTCOPY_INCOMING_ADVISE,
    POSTCOPY_INCOMING_DISCARD,
    POSTCOPY_INCOMING_LISTENING,
    POSTCOPY_INCOMING_RUNNING,
} PostcopyIncoming;

typedef struct LoadContext {
    SectionMap *map;
    PostcopyIncoming postcopy;
    bool in_package;
    bool return_path;
    QEMUFile *main_f; /* the main stream (a package is read apart); the
                       * listen thread replaces it on recovery: main_lock */
    GMutex *main_lock;
    /*
     * Post-copy: from LISTEN on, the listen thread reads the main stream
     * (pages) while this thread loads the rest of the package: loading a
     * device may need guest pages (e.g. a vCPU task that walks the
     * guest's GDT), which only the main stream brings.
     */
    pthread_t listen_thread;
    bool listening;
    bool listen_ok; /* the listen thread's result */
    GError *listen_err;
    bool at_eof; /* this context reads until EOF, checked by caller */
} LoadContext;

bool load_fail(QEMUFile *f, GError **errp, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
bool load_section_start(QEMUFile *f, SectionMap *map, uint8_t type,
                        GError **errp);
bool load_check_complete(GError **errp);
/* Sections and commands until EOF, or in a package until RUN or its end. */
bool load_main(QEMUFile *f, LoadContext *ctx, GError **errp);
/* One QEMU_VM_COMMAND (savevm-cmd.c); *quit after RUN in a package. */
bool load_command(QEMUFile *f, LoadContext *ctx, bool *quit, GError **errp);
/* A device section not loaded yet (its idstr, *instance), or NULL. */
const char *loadvm_first_missing_device(uint32_t *instance);

#endif /* MIGRATION_SAVEVM_INT_H */
