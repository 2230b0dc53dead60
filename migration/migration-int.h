/*
 * The migration state machine, source and destination. Internal to
 * migration/; the rest of the VMM uses include/migration/migration.h.
 */
#ifndef MIGRATION_MIGRATION_INT_H
#define MIGRATION_MIGRATION_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "godwit/error.h"
#include "migration/channel.h"
#include "migration/qemu-file.h"

/* QEMU's MigrationStatus, in QEMU 7.2's order. */
typedef enum MigrationStatus {
    MIGRATION_STATUS_NONE,
    MIGRATION_STATUS_SETUP,
    MIGRATION_STATUS_CANCELLING,
    MIGRATION_STATUS_CANCELLED,
    MIGRATION_STATUS_ACTIVE,
    MIGRATION_STATUS_POSTCOPY_ACTIVE,
    MIGRATION_STATUS_POSTCOPY_PAUSED,
    MIGRATION_STATUS_POSTCOPY_RECOVER,
    MIGRATION_STATUS_COMPLETED,
    MIGRATION_STATUS_FAILED,
    MIGRATION_STATUS_COLO,
    MIGRATION_STATUS_PRE_SWITCHOVER,
    MIGRATION_STATUS_DEVICE,
    MIGRATION_STATUS_WAIT_UNPLUG,
    MIGRATION_STATUS__MAX,
} MigrationStatus;

const char *migration_status_name(MigrationStatus s);
int migration_status_lookup(const char *name);

/* Update period of bandwidth and rate limit, as QEMU's BUFFER_DELAY. */
#define MIGRATION_WINDOW_MS 100

typedef struct MigrationState {
    /* Status: written by the migration / main thread, read anywhere. */
    _Atomic int status;

    /* Set by migrate before the thread starts; owned by the thread. */
    MigUri uri;
    QEMUFile *file;
    pthread_t thread;
    bool thread_created;
    atomic_bool thread_done; /* it set the final status; it only returns */
    bool vm_was_running;

    /* Protected by lock. */
    GMutex lock;
    GCond cond;             /* pre-switchover wait */
    bool continue_req;      /* migrate-continue received */
    char *error_desc;       /* last failure */
    MigChannel *chan;       /* for cancel: shut down from any thread */
    int connect_cancel_fd;  /* eventfd: abandons a hanging connect */

    /* Times (ms) and rates, written by the thread, read by query-migrate. */
    _Atomic int64_t start_ms;       /* realtime at migrate */
    _Atomic int64_t setup_ms;       /* setup duration */
    _Atomic int64_t total_ms;       /* set when finished */
    _Atomic int64_t downtime_ms;    /* set when completed */
    _Atomic int64_t expected_downtime_ms;
    _Atomic uint64_t bandwidth_bps;  /* bytes/s measured, last window */
    _Atomic uint64_t mbps_x1000;     /* Mbit/s * 1000, last window */
    _Atomic bool switchover;         /* guest stopped for the last part */

    /* Post-copy. start_postcopy: migrate-start-postcopy was given. */
    atomic_bool start_postcopy;
    atomic_bool postcopy;        /* the destination runs the guest */
    struct RPReader *rp;         /* the return path, owned by the thread */
    QEMUFile *preempt_file;      /* postcopy-preempt's channel, or NULL */
    /* What the return path said, protected by lock. */
    bool rp_shut;
    uint32_t rp_shut_value;
    char *rp_error;
    /* Post-copy recovery, protected by lock. */
    bool resume_req;      /* migrate resume=true gave a new URI */
    GBytes *recv_bitmap;  /* the destination's received pages */
    bool resume_acked;    /* RESUME_ACK arrived */

    /* Owned by the migration thread: rate limit window. */
    int64_t window_start_us;
    uint64_t window_start_bytes;
    uint64_t window_pages;
} MigrationState;

MigrationState *migrate_get_current(void);

/* Sets the status and emits the MIGRATION event (events capability). */
void migrate_set_status(MigrationState *s, MigrationStatus old,
                        MigrationStatus new_status);
MigrationStatus migrate_status(MigrationState *s);
bool migration_is_running(void);

/* Migration thread helpers used by ram.c. */
bool migration_rate_exceeded(QEMUFile *f);
bool migration_in_switchover(void);
/* A bitmap sync happened: pass number, bytes newly dirty. */
void migration_pass_done(uint64_t pass, uint64_t dirty_bytes);
/*
 * A throttle period (>= 1 s of syncs) ended: bytes dirtied and bytes sent
 * in it, and its length. Applies auto-converge when the capability is on,
 * with the policy x-throttle-policy names.
 */
void migration_auto_converge_period(uint64_t bytes_dirty, uint64_t bytes_xfer,
                                    uint64_t period_us);

/* Shared by migration.c and postcopy.c (migration thread unless said). */
void migrate_force_status(MigrationState *s, MigrationStatus st);
bool migration_cancelling(MigrationState *s);
void window_reset(MigrationState *s, QEMUFile *f);
void migrate_set_error(MigrationState *s, const char *msg);
/* Starts the return path thread on `chan` (s->rp). */
bool migration_rp_open(MigrationState *s, MigChannel *chan, GError **errp);
/* A failure the return path reported (false, *errp), else true. */
bool rp_check(MigrationState *s, GError **errp);
/* Waits for the destination's SHUT 0 (false with *errp otherwise). */
bool rp_await_shut(MigrationState *s, QEMUFile *f, GError **errp);
/* Post-copy: the switch; the end; a broken connection (false: given up). */
bool postcopy_start(MigrationState *s, QEMUFile *f, int64_t *stop_us,
                    GError **errp);
bool postcopy_complete(MigrationState *s, QEMUFile *f, GError **errp);
bool postcopy_pause(MigrationState *s, QEMUFile **fp, GError **errp);
/* A recovery's new address: tcp: or unix: only (both sides). */
bool postcopy_parse_recovery_uri(const char *uri, MigUri *out,
                                 GError **errp);
/* postcopy-preempt: the second connection (a no-op without the cap). */
bool postcopy_preempt_connect(MigrationState *s, GError **errp);
void postcopy_preempt_close(MigrationState *s);

/* The migration thread body (migration.c). */
void *migration_thread(void *opaque);

/* QMP-facing operations (migration.c), main loop. */
bool migrate_start(const char *uri, GError **errp);
/* Refused in post-copy (the guest would be lost). */
bool migrate_cancel(GError **errp);
/* Quitting: ends any migration, post-copy too. */
void migrate_cancel_force(void);
bool migrate_continue(const char *state, GError **errp);
bool migrate_start_postcopy(GError **errp);
/* migrate resume=true: a paused post-copy migration reconnects to `uri`. */
bool migrate_resume(const char *uri, GError **errp);
/* migrate-pause on a source in post-copy: breaks the connection. */
bool migrate_pause(GError **errp);
/* The source is in post-copy: the destination runs the guest. */
bool migration_in_postcopy(void);

/* Destination (incoming.c). */
typedef struct MigrationIncomingState {
    _Atomic int status;
    MigListener *listener;
    pthread_t thread;
    bool thread_created;
    bool deferred;    /* -incoming defer: waiting for migrate-incoming */
    bool started;     /* a migrate-incoming / -incoming URI was given */
    char *address;    /* bound address for query-migrate (tcp) */
    char *error_desc;
    _Atomic int64_t start_ms;
    _Atomic int64_t total_ms;
    /*
     * The main stream, its channel and the way back, if opened: set by
     * the incoming thread, replaced by the listen thread on recovery;
     * `rp` and `chan` are read by the fault thread: under rp_lock.
     */
    GMutex rp_lock;
    QEMUFile *file;
    MigChannel *chan;
    struct RPWriter *rp;
    atomic_bool postcopy_ran; /* POSTCOPY_RUN started the guest */
    /* postcopy-preempt: the listener stays open for the second
     * connection, accepted at LISTEN; its reader places pages. */
    struct PreemptReader *preempt;
    /* The preempt connection, accepted with the main one, until LISTEN. */
    MigChannel *preempt_chan;
    /* Recovery, under rp_lock: migrate-recover's listener, quitting. */
    GCond recover_cond;
    MigListener *recover_listener;
    bool quitting;
} MigrationIncomingState;

MigrationIncomingState *migration_incoming_get_current(void);
bool migration_incoming_start(const char *uri, GError **errp);
/* migrate-recover: a paused post-copy destination listens again. */
bool migration_incoming_recover(const char *uri, GError **errp);
/* migrate-pause on a destination in post-copy: breaks the connection. */
bool migration_incoming_pause(GError **errp);
/* Quitting: wakes and ends whatever the incoming side waits for. */
void migration_incoming_shutdown(void);
bool migration_incoming_active(void);
/* A source connected: the stream is being loaded (or was). */
bool migration_incoming_loading(void);

/* dirty-limit (dirty-limit-ctl.c). */
void dirty_limit_register_commands(void);
/* Main loop: can this accelerator count per vCPU? QEMU's words if not. */
bool dirty_limit_capability_check(GError **errp);
/* Migration thread: every vCPU to vcpu-dirty-limit; at the end, undone. */
void dirty_limit_migration_throttle(void);
void dirty_limit_migration_end(void);
/*
 * Any thread: while some vCPU has a limit, the longest sleep a limited
 * vCPU gets per throttle round and the run slice before it (µs).
 */
bool dirty_limit_throttle_info(uint64_t *sleep_us, uint64_t *run_us);
void dirty_limit_shutdown(void);

/* calc-dirty-rate (dirtyrate.c). */
void dirtyrate_register_commands(void);
bool dirtyrate_uses_dirty_log(void);
/* calc-dirty-rate's dirty-ring mode is counting pages per vCPU. */
bool dirtyrate_counts_vcpus(void);
void dirtyrate_shutdown(void);

/* Statistics for query-migrate (migration-qmp-cmds.c). */
void migration_register_qmp_commands(void);
void migration_register_hmp_commands(void);

#endif /* MIGRATION_MIGRATION_INT_H */
