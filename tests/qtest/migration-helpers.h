/*
 * Helpers for migration qtests: start a source and a destination, migrate,
 * and prove the result (RAM hashes equal at switchover, the verify payload
 * says ok on the destination).
 */
#ifndef MIGRATION_HELPERS_H
#define MIGRATION_HELPERS_H

#include "libgwtest.h"

typedef struct MigPair {
    GwProc *src;
    GwProc *dst;
    char *dir; /* temp dir for sockets and files */
    char *uri; /* the URI the source migrates to */
} MigPair;

/*
 * Starts the destination (-S -incoming `listen`, "%d" in it replaced by
 * the temp dir) and the source running `payload` with `append`. Waits for
 * READY on the source. `mem` is -m for both.
 */
MigPair *mig_pair_start(const char *mem, const char *payload,
                        const char *append, const char *listen);
void mig_pair_free(MigPair *mp);

/* Path in the pair's temp dir. New string. */
char *mig_path(MigPair *mp, const char *name);

/* Sets max-bandwidth (bytes/s, 0 = unlimited) and downtime-limit on src. */
void mig_set_speed(GwProc *p, uint64_t max_bandwidth, uint64_t downtime_ms);
void mig_set_cap(GwProc *p, const char *cap, bool on);

/* The URI to migrate to: tcp port 0 is resolved from the destination. */
char *mig_connect_uri(MigPair *mp, const char *uri);

/* Waits for completed, failed or cancelled; returns it (free). */
char *mig_wait_end(GwProc *src, int timeout_ms);
/* Starts `migrate` and waits for a terminal status; returns it (free). */
char *mig_migrate_wait(GwProc *src, const char *uri, int timeout_ms);
/* Waits until query-migrate's status is `status`. */
bool mig_wait_status(GwProc *p, const char *status, int timeout_ms);
char *mig_status(GwProc *p);
/* query-migrate's return object (unref). */
JsonObject *mig_query(GwProc *p);

/* x-query-ram-hash's sha256 of pc.ram (free). */
char *mig_ram_hash(GwProc *p);

/*
 * The proof: source in postmigrate, destination paused, RAM hashes equal;
 * then cont on the destination and the verify payload reports ok (both
 * after the migration and on request), never FAILED.
 */
void mig_check_destination(MigPair *mp, bool verify_payload);

/* The source is running and its guest makes progress (serial grows). */
void mig_check_source_alive(GwProc *src, const char *progress_needle);

#endif /* MIGRATION_HELPERS_H */
