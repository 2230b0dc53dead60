/*
 * Helpers of the migration fault qtests (test-migration-faults.c,
 * test-migration-kills.c): a fault run (its mode, random source, the pair
 * of godwits and what the last complete migration sent), fresh
 * destinations on their own sockets, the retry that proves a guest still
 * moves after a fault, and the checks of what a fault must leave on each
 * side.
 */
#ifndef MIGRATION_FAULTS_HELPERS_H
#define MIGRATION_FAULTS_HELPERS_H

#include "mig-proxy.h"
#include "migration-helpers.h"

#define MEM "16M"
/* 4 MiB rewritten at 8 MiB/s: every retry re-sends dirty pages */
#define APPEND "vm=1 vm-bytes=4M rate=8M"
#define END_TIMEOUT 60000

typedef struct FaultMode {
    const char *name;
    const char *caps[2]; /* on both sides */
    const char *params;  /* migrate-set-parameters arguments, both sides */
    int channels;        /* multifd: the cut hits one of them, not main */
    const char *append;  /* the guest's, if not APPEND */
} FaultMode;

typedef struct FaultRun {
    const FaultMode *m;
    GRand *rand;
    MigPair *mp; /* mp->src: the current source; mp->dir: sockets */
    int seq;     /* socket names */
    /* source bytes of the last complete migration: all, per connection */
    uint64_t span, conn_span[MIG_PROXY_MAX_CONNS];
    int cuts, stalls, past_end, buffered, retries;
    int refused;         /* broke before its first bytes: refused, not loaded */
    int later_pass;      /* cuts after the first pass over RAM */
    uint64_t first_pass; /* xbzrle: a stopped source's whole stream */
} FaultRun;

/* The events capability and the mode's capabilities and parameters. */
void mode_setup(const FaultMode *m, GwProc *p);
/* A socket path in the run's folder: `what`, then the sequence number. */
char *run_path(FaultRun *r, const char *what);
/* A fresh destination listening on its own socket (returned in *sock). */
GwProc *dst_start(FaultRun *r, bool paused, char **sock);
void migrate_to(GwProc *src, const char *sock);
/* The destination of a completed migration becomes the source. */
void adopt_destination(FaultRun *r);
/*
 * A migration to a fresh paused destination through a proxy that does no
 * harm: completes, hashes equal, verify ok there; the destination is the
 * new source. Records the stream's size for the offsets to come.
 */
void retry(FaultRun *r);

/*
 * What a destination may do after a fault. A connection that breaks before
 * its first four bytes (the stream's or a multifd channel's magic) is not
 * a migration yet: the listener refuses it, logs it and waits on for a
 * real source.
 */
typedef enum DstEnd {
    DST_FAILED,  /* the load failed: exits 1 with the reason */
    DST_REFUSED, /* refused the connection, waits on */
    DST_EITHER,  /* the fault's byte offset is unknown (a kill) */
} DstEnd;

/*
 * A destination after a fault: its load failed (exit 1 with the reason) or
 * it refused a connection that never began and waits on (then it is
 * stopped here). Either way the guest never ran. Returns true when it
 * refused.
 */
bool check_destination_failed(GwProc *d, DstEnd want);
/* The source after a fault: `status`, run state as before, RAM kept. */
void check_source_kept(FaultRun *r, const char *status, bool paused,
                       const char *hash);
/* Waits until query-migrate's status is one of `statuses` (|-separated). */
char *wait_status_in(GwProc *p, const char *statuses, int timeout_ms);
void set_postcopy_bandwidth(GwProc *p, int64_t bw);

#endif /* MIGRATION_FAULTS_HELPERS_H */
