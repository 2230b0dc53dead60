/*
 * The migration capabilities and parameters, defined once. Everything
 * else — the state struct, the defaults, the accessors, the range checks,
 * query-migrate-capabilities / query-migrate-parameters, the HMP help and
 * `info migrate_capabilities` / `info migrate_parameters` — is generated
 * from these two tables (migration/options.c, options-cmds.c).
 *
 * Adding a capability or a parameter is one row here (see
 * docs/devel/migration-options.md); a capability also needs its enum
 * value in include/migration/options.h, in QEMU's order.
 *
 * No include guard: it only defines the two table macros.
 */

/*
 * Capabilities, in MigrationCapability order (QEMU's enum order, which is
 * the order of query-migrate-capabilities and `info migrate_capabilities`).
 *
 *   X(ID, "name", implemented, "help")
 *
 * ID          the MIGRATION_CAPABILITY_<ID> enum value
 * implemented godwit does what the capability asks today; when false,
 *             turning it on is refused ("... is not supported by godwit
 *             yet"). The feature that implements it flips this.
 * All capabilities default to off, as in QEMU.
 */
#define MIG_CAPABILITY_TABLE(X)                                                \
    X(XBZRLE, "xbzrle", true, "XBZRLE delta encoding of re-sent pages")        \
    X(RDMA_PIN_ALL, "rdma-pin-all", false, "RDMA: pin all guest RAM at once")  \
    X(AUTO_CONVERGE, "auto-converge", true,                                    \
      "throttle vCPUs until RAM migration converges")                          \
    X(ZERO_BLOCKS, "zero-blocks", false,                                       \
      "block migration: encode zero blocks")                                   \
    X(COMPRESS, "compress", true, "compress pages with compression threads")   \
    X(EVENTS, "events", true, "emit MIGRATION and MIGRATION_PASS events")      \
    X(POSTCOPY_RAM, "postcopy-ram", true,                                      \
      "allow switching to post-copy (set on both sides)")                      \
    X(X_COLO, "x-colo", false, "COLO continuous checkpointing")                \
    X(RELEASE_RAM, "release-ram", true,                                        \
      "post-copy: free migrated pages on the source")                          \
    X(BLOCK, "block", false, "migrate block devices")                          \
    X(RETURN_PATH, "return-path", true,                                        \
      "open a destination-to-source return path")                              \
    X(PAUSE_BEFORE_SWITCHOVER, "pause-before-switchover", true,                \
      "stop in pre-switchover until migrate-continue")                         \
    X(MULTIFD, "multifd", true, "send RAM over multifd-channels channels")     \
    X(DIRTY_BITMAPS, "dirty-bitmaps", false, "migrate block dirty bitmaps")    \
    X(POSTCOPY_BLOCKTIME, "postcopy-blocktime", true,                          \
      "measure vCPU blocked time during post-copy")                            \
    X(LATE_BLOCK_ACTIVATE, "late-block-activate", false,                       \
      "destination: don't activate block devices at the end")                  \
    X(X_IGNORE_SHARED, "x-ignore-shared", false,                               \
      "don't migrate shared memory the destination can map")                   \
    X(VALIDATE_UUID, "validate-uuid", false,                                   \
      "destination checks the source's UUID")                                  \
    X(BACKGROUND_SNAPSHOT, "background-snapshot", false,                       \
      "snapshot RAM as of the start with write protection")                    \
    X(ZERO_COPY_SEND, "zero-copy-send", true, "MSG_ZEROCOPY multifd sends")    \
    X(POSTCOPY_PREEMPT, "postcopy-preempt", true,                              \
      "post-copy page requests on their own channel")                          \
    X(SWITCHOVER_ACK, "switchover-ack", false,                                 \
      "wait for the destination's SWITCHOVER_ACK")                             \
    X(DIRTY_LIMIT, "dirty-limit", true,                                        \
      "limit vCPU dirty rates to vcpu-dirty-limit")

/*
 * Parameters, in `info migrate_parameters` order: QEMU 7.2's lines first,
 * in QEMU's order, then godwit's additions (QEMU 8.x ones and its own).
 *
 *   X(field, "name", TYPE, default, min, max, flags, check, "expects",
 *     "unit", "help")
 *
 * field    C member of MigrationParameters, and the accessor
 *          migrate_<field>(). QEMU names the parameter by this underscore
 *          form in its range errors, so the error does too (see
 *          MIG_P_QMP_ERRNAME).
 * TYPE     BOOL, U8, U32, SIZE (uint64; HMP takes a size, plain = bytes),
 *          MIBSIZE (same, but HMP's plain number is MiB), ENUM
 *          (MigCompression; min..max is the set of accepted values), STR
 *          (QMP StrOrNull: null means "").
 * min, max accepted range, checked on the whole new set by `check`
 *          (unused for BOOL and STR). 64-bit values stop at INT64_MAX:
 *          godwit's JSON integers are int64 (QEMU's HMP has the same
 *          limit for its sizes).
 * flags    MIG_P_IMPL: godwit implements it today; otherwise a value other
 *          than the current (= default) one is refused ("... is not
 *          supported by godwit yet").
 *          MIG_P_SETUP: read when a migration starts; can't change while
 *          one runs, nor once an incoming one has begun loading.
 *          MIG_P_LISTEN (with MIG_P_SETUP): the destination needs it
 *          already to listen (multifd's connections): can't change once
 *          incoming has started (-incoming URI, migrate-incoming).
 *          MIG_P_QMP_ERRNAME: the range error names it by "name".
 * check    mig_check_range, or a rule of its own (mig_check_*), see
 *          options.c.
 * expects  the tail of the range error "Parameter 'field' expects %s",
 *          QEMU's text verbatim (warts included).
 * unit     printed after the value by `info migrate_parameters`.
 */
#define MIG_PARAMETER_TABLE(X)                                                 \
    X(announce_initial, "announce-initial", SIZE, 50, 0, 100000, MIG_P_IMPL,   \
      mig_check_range, "a value between 0 and 100000", " ms",                  \
      "delay before the first self-announcement (ms)")                         \
    X(announce_max, "announce-max", SIZE, 550, 0, 100000, MIG_P_IMPL,          \
      mig_check_range, "a value between 0 and 100000", " ms",                  \
      "maximum delay between self-announcements (ms)")                         \
    X(announce_rounds, "announce-rounds", SIZE, 5, 0, 1000, MIG_P_IMPL,        \
      mig_check_range, "a value between 0 and 1000", "",                       \
      "number of self-announcements")                                          \
    X(announce_step, "announce-step", SIZE, 100, 1, 10000, MIG_P_IMPL,         \
      mig_check_range, "a value between 0 and 10000", " ms",                   \
      "increase of the delay between self-announcements (ms)")                 \
    X(compress_level, "compress-level", U8, 1, 0, 9, MIG_P_IMPL | MIG_P_SETUP, \
      mig_check_range, "a value between 0 and 9", "",                          \
      "compress capability: zlib level (0-9)")                                 \
    X(compress_threads, "compress-threads", U8, 8, 1, 255,                     \
      MIG_P_IMPL | MIG_P_SETUP, mig_check_range, "a value between 1 and 255",  \
      "", "compress capability: compression threads")                          \
    X(compress_wait_thread, "compress-wait-thread", BOOL, true, 0, 1,          \
      MIG_P_IMPL, NULL, "", "",                                                \
      "compress capability: wait for a free thread (on|off)")                  \
    X(decompress_threads, "decompress-threads", U8, 2, 1, 255,                 \
      MIG_P_IMPL | MIG_P_SETUP, mig_check_range, "a value between 1 and 255",  \
      "", "compress capability: decompression threads")                        \
    X(throttle_trigger_threshold, "throttle-trigger-threshold", U8, 50, 1,     \
      100, MIG_P_IMPL, mig_check_range, "an integer in the range of 1 to 100", \
      "", "dirty/transfer ratio (%) that starts auto-converge")                \
    X(cpu_throttle_initial, "cpu-throttle-initial", U8, 20, 1, 99, MIG_P_IMPL, \
      mig_check_range, "an integer in the range of 1 to 99", "",               \
      "auto-converge: first throttle (%)")                                     \
    X(cpu_throttle_increment, "cpu-throttle-increment", U8, 10, 1, 99,         \
      MIG_P_IMPL, mig_check_range, "an integer in the range of 1 to 99", "",   \
      "auto-converge: throttle step (%)")                                      \
    X(cpu_throttle_tailslow, "cpu-throttle-tailslow", BOOL, false, 0, 1,       \
      MIG_P_IMPL, NULL, "", "", "auto-converge: smaller last steps (on|off)")  \
    X(max_cpu_throttle, "max-cpu-throttle", U8, 99, 1, 99, MIG_P_IMPL,         \
      mig_check_max_cpu_throttle,                                              \
      "an integer in the range of cpu_throttle_initial to 99", "",             \
      "auto-converge: throttle ceiling (%)")                                   \
    X(tls_creds, "tls-creds", STR, "", 0, 0, MIG_P_IMPL, NULL, "", "",         \
      "TLS credentials object id ('' = plain)")                                \
    X(tls_hostname, "tls-hostname", STR, "", 0, 0, MIG_P_IMPL, NULL, "", "",   \
      "TLS: host name expected in the server certificate")                     \
    X(max_bandwidth, "max-bandwidth", MIBSIZE, 134217728, 0, INT64_MAX,        \
      MIG_P_IMPL, mig_check_range,                                             \
      "an integer in the range of 0 to 9223372036854775807 bytes/second",      \
      " bytes/second", "rate limit (bytes/s; HMP: MiB/s unless suffixed)")     \
    X(downtime_limit, "downtime-limit", SIZE, 300, 0, 2000000, MIG_P_IMPL,     \
      mig_check_range, "an integer in the range of 0 to (2000 * 1000) ms",     \
      " ms", "longest acceptable switchover downtime (ms)")                    \
    X(x_checkpoint_delay, "x-checkpoint-delay", U32, 20000, 0, UINT32_MAX, 0,  \
      NULL, "", " ms", "COLO checkpoint interval (ms)")                        \
    X(block_incremental, "block-incremental", BOOL, false, 0, 1, MIG_P_SETUP,  \
      NULL, "", "", "block migration: incremental (on|off)")                   \
    X(multifd_channels, "multifd-channels", U8, 2, 1, 255,                     \
      MIG_P_IMPL | MIG_P_SETUP | MIG_P_LISTEN, mig_check_range,                \
      "a value between 1 and 255", "", "multifd: number of channels")          \
    X(multifd_compression, "multifd-compression", ENUM, MIG_COMPRESSION_NONE,  \
      MIG_COMPRESSION_NONE, MIG_COMPRESSION_LZ4,                               \
      MIG_P_IMPL | MIG_P_SETUP | MIG_P_LISTEN, NULL, "", "",                   \
      "multifd: none|zlib|zstd|lz4")                                           \
    X(xbzrle_cache_size, "xbzrle-cache-size", SIZE, 67108864, 0, INT64_MAX,    \
      MIG_P_IMPL, mig_check_xbzrle_cache_size,                                 \
      "a power of two no less than the target page size", " bytes",            \
      "XBZRLE cache size (bytes, power of 2)")                                 \
    X(max_postcopy_bandwidth, "max-postcopy-bandwidth", SIZE, 0, 0, INT64_MAX, \
      MIG_P_IMPL, mig_check_range,                                             \
      "an integer in the range of 0 to 9223372036854775807 bytes/second", "",  \
      "post-copy rate limit (bytes/s, 0 = none)")                              \
    X(tls_authz, "tls-authz", STR, "", 0, 0, MIG_P_IMPL, NULL, "", "",         \
      "TLS: authorization object id")                                          \
    X(avail_switchover_bandwidth, "avail-switchover-bandwidth", MIBSIZE, 0, 0, \
      INT64_MAX, MIG_P_IMPL, mig_check_range,                                  \
      "an integer in the range of 0 to 9223372036854775807 bytes/second",      \
      " bytes/second",                                                         \
      "bandwidth for the switchover estimate (bytes/s, 0 = measured)")         \
    X(multifd_zlib_level, "multifd-zlib-level", U8, 1, 0, 9,                   \
      MIG_P_IMPL | MIG_P_SETUP | MIG_P_LISTEN, mig_check_range,                \
      "a value between 0 and 9", "", "multifd zlib level (0-9)")               \
    X(multifd_zstd_level, "multifd-zstd-level", U8, 1, 0, 20,                  \
      MIG_P_IMPL | MIG_P_SETUP | MIG_P_LISTEN, mig_check_range,                \
      "a value between 0 and 20", "", "multifd zstd level (0-20)")             \
    X(x_vcpu_dirty_limit_period, "x-vcpu-dirty-limit-period", SIZE, 1000, 1,   \
      1000, MIG_P_IMPL | MIG_P_QMP_ERRNAME, mig_check_range,                   \
      "a value between 1 and 1000", " ms",                                     \
      "dirty-limit: throttle period (ms)")                                     \
    X(vcpu_dirty_limit, "vcpu-dirty-limit", SIZE, 1, 1, INT64_MAX, MIG_P_IMPL, \
      mig_check_range, "is invalid, it must greater then 1 MB/s", " MB/s",     \
      "dirty-limit: per-vCPU dirty rate limit (MB/s)")                         \
    X(compress_method, "compress-method", ENUM, MIG_COMPRESSION_ZLIB,          \
      MIG_COMPRESSION_ZLIB, MIG_COMPRESSION_LZ4, MIG_P_IMPL | MIG_P_SETUP,     \
      NULL, "", "", "compress capability: zlib|lz4|zstd")                      \
    X(x_throttle_policy, "x-throttle-policy", POLICY,                          \
      MIG_THROTTLE_POLICY_QEMU, MIG_THROTTLE_POLICY_QEMU,                      \
      MIG_THROTTLE_POLICY_AIM, MIG_P_IMPL, NULL, "", "",                       \
      "auto-converge policy: qemu|aim (godwit)")
