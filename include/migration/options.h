/*
 * Migration capabilities and parameters: QEMU's names, defaults, ranges
 * and rules, defined once in an X-macro table (migration/options-table.h)
 * that yields the struct, the defaults, the range checks, the accessors,
 * the QMP queries and the HMP help/printing.
 *
 * Thread safety: the main loop sets (migrate-set-capabilities,
 * migrate-set-parameters); any thread reads through the accessors below,
 * which take a lock and return values, never pointers into the live set.
 */
#ifndef MIGRATION_OPTIONS_H
#define MIGRATION_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "godwit/error.h"

/* In QEMU's enum order (query-migrate-capabilities lists them so). */
typedef enum MigrationCapability {
    MIGRATION_CAPABILITY_XBZRLE,
    MIGRATION_CAPABILITY_RDMA_PIN_ALL,
    MIGRATION_CAPABILITY_AUTO_CONVERGE,
    MIGRATION_CAPABILITY_ZERO_BLOCKS,
    MIGRATION_CAPABILITY_COMPRESS,
    MIGRATION_CAPABILITY_EVENTS,
    MIGRATION_CAPABILITY_POSTCOPY_RAM,
    MIGRATION_CAPABILITY_X_COLO,
    MIGRATION_CAPABILITY_RELEASE_RAM,
    MIGRATION_CAPABILITY_BLOCK,
    MIGRATION_CAPABILITY_RETURN_PATH,
    MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER,
    MIGRATION_CAPABILITY_MULTIFD,
    MIGRATION_CAPABILITY_DIRTY_BITMAPS,
    MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME,
    MIGRATION_CAPABILITY_LATE_BLOCK_ACTIVATE,
    MIGRATION_CAPABILITY_X_IGNORE_SHARED,
    MIGRATION_CAPABILITY_VALIDATE_UUID,
    MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT,
    MIGRATION_CAPABILITY_ZERO_COPY_SEND,
    MIGRATION_CAPABILITY_POSTCOPY_PREEMPT,
    MIGRATION_CAPABILITY_SWITCHOVER_ACK,
    MIGRATION_CAPABILITY_DIRTY_LIMIT,
    MIGRATION_CAPABILITY__MAX,
} MigrationCapability;

const char *migration_capability_name(MigrationCapability cap);
/* Returns -1 for an unknown name. */
int migration_capability_lookup(const char *name);

/* Current value of a capability. Any thread. */
bool migrate_cap(MigrationCapability cap);

/*
 * Whether godwit implements a capability today. Setting one that is not
 * implemented to on is refused ("... is not supported by godwit yet"),
 * never accepted and ignored. Later features flip this in the table.
 */
bool migrate_cap_implemented(MigrationCapability cap);

/*
 * Parameter accessors, any thread. Sizes and rates are bytes and bytes/s,
 * times are ms, percentages are 0..100.
 */
uint64_t migrate_max_bandwidth(void);
uint64_t migrate_avail_switchover_bandwidth(void);
uint64_t migrate_downtime_limit(void);
uint64_t migrate_xbzrle_cache_size(void);
uint64_t migrate_max_postcopy_bandwidth(void);
uint8_t migrate_throttle_trigger_threshold(void);
uint8_t migrate_cpu_throttle_initial(void);
uint8_t migrate_cpu_throttle_increment(void);
bool migrate_cpu_throttle_tailslow(void);
uint8_t migrate_max_cpu_throttle(void);
uint8_t migrate_compress_level(void);
uint8_t migrate_compress_threads(void);
uint8_t migrate_decompress_threads(void);
bool migrate_compress_wait_thread(void);
uint8_t migrate_multifd_channels(void);
uint8_t migrate_multifd_zlib_level(void);
uint8_t migrate_multifd_zstd_level(void);
/* The rest of the table's accessors (also generated from it). */
uint64_t migrate_announce_initial(void);
uint64_t migrate_announce_max(void);
uint64_t migrate_announce_rounds(void);
uint64_t migrate_announce_step(void);
uint32_t migrate_x_checkpoint_delay(void);
bool migrate_block_incremental(void);
uint64_t migrate_x_vcpu_dirty_limit_period(void);
uint64_t migrate_vcpu_dirty_limit(void);
/* tls-creds, tls-hostname, tls-authz: new strings ("" when unset). */
char *migrate_tls_creds(void);
char *migrate_tls_hostname(void);
char *migrate_tls_authz(void);

/* multifd-compression / compress-method values. */
typedef enum MigCompression {
    MIG_COMPRESSION_NONE,
    MIG_COMPRESSION_ZLIB,
    MIG_COMPRESSION_ZSTD,
    MIG_COMPRESSION_LZ4,
    MIG_COMPRESSION__MAX,
} MigCompression;
const char *mig_compression_name(MigCompression c);
MigCompression migrate_multifd_compression(void);
MigCompression migrate_compress_method(void);

/* x-throttle-policy (godwit): how auto-converge picks the throttle. */
typedef enum MigThrottlePolicy {
    MIG_THROTTLE_POLICY_QEMU, /* QEMU's steps (auto-converge.h) */
    MIG_THROTTLE_POLICY_AIM,  /* aimed at the threshold each period */
    MIG_THROTTLE_POLICY__MAX,
} MigThrottlePolicy;
MigThrottlePolicy migrate_x_throttle_policy(void);

/*
 * The migration subsystem tells the options whether a migration is in
 * progress (capabilities and the "must be set before" parameters can't
 * change then), whether an incoming migration has started (listening:
 * -incoming URI or migrate-incoming) and whether it is loading (a source
 * connected). Set once at init by migration.c.
 */
typedef bool (*MigrationBusyFunc)(void);
void migration_options_init(MigrationBusyFunc outgoing_running,
                            MigrationBusyFunc incoming_started,
                            MigrationBusyFunc incoming_loading);
/*
 * Turning postcopy-ram on calls `check` (set by migration.c): false with
 * *errp when this is a destination that cannot do post-copy.
 */
void migration_options_set_postcopy_check(bool (*check)(GError **errp));
/*
 * The check migrate-set-capabilities runs when dirty-limit turns on (can
 * the accelerator count dirty pages per vCPU?). Main loop; NULL = none.
 */
void migration_options_set_dirty_limit_check(bool (*check)(GError **errp));

/* Registers migrate-set-capabilities, query-migrate-capabilities,
 * migrate-set-parameters, query-migrate-parameters and their HMP forms. */
void migration_options_register_commands(void);

#endif /* MIGRATION_OPTIONS_H */
