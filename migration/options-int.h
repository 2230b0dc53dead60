/*
 * What migration/options.c shares with options-cmds.c and the unit test:
 * the parameter set generated from options-table.h, its descriptors, the
 * pure validation functions and the whole-set commit of the live state.
 *
 * The pure functions (mig_caps_check, mig_params_check, mig_params_*)
 * touch no global state; the commit functions run in the main loop
 * thread (the only writer) and take the options lock themselves.
 */
#ifndef MIGRATION_OPTIONS_INT_H
#define MIGRATION_OPTIONS_INT_H

#include <stddef.h>

#include "migration/options.h"
#include "options-table.h"

/* x86 guest pages: the lower bound of xbzrle-cache-size. */
#define MIG_TARGET_PAGE_SIZE 4096

typedef enum MigParamType {
    MIG_PARAM_BOOL,
    MIG_PARAM_U8,
    MIG_PARAM_U32,
    MIG_PARAM_SIZE,
    MIG_PARAM_MIBSIZE,
    MIG_PARAM_ENUM,   /* MigCompression */
    MIG_PARAM_POLICY, /* MigThrottlePolicy */
    MIG_PARAM_STR,
} MigParamType;

/* C types of the table's TYPE column. */
#define MIG_CTYPE_BOOL bool
#define MIG_CTYPE_U8 uint8_t
#define MIG_CTYPE_U32 uint32_t
#define MIG_CTYPE_SIZE uint64_t
#define MIG_CTYPE_MIBSIZE uint64_t
#define MIG_CTYPE_ENUM MigCompression
#define MIG_CTYPE_POLICY MigThrottlePolicy
#define MIG_CTYPE_STR char * /* owned, never NULL */

/* flags column */
#define MIG_P_IMPL (1u << 0)
#define MIG_P_SETUP (1u << 1)
#define MIG_P_QMP_ERRNAME (1u << 2)
#define MIG_P_LISTEN (1u << 3)

/* One whole parameter set; copy with mig_params_copy() (it owns strings). */
typedef struct MigrationParameters {
#define MIG_PARAM_MEMBER(field, name, type, ...) MIG_CTYPE_##type field;
    MIG_PARAMETER_TABLE(MIG_PARAM_MEMBER)
#undef MIG_PARAM_MEMBER
} MigrationParameters;

/* clang-format off */
typedef enum MigParam {
#define MIG_PARAM_ENUM_ID(field, ...) MIG_PARAM_ID_##field,
    MIG_PARAMETER_TABLE(MIG_PARAM_ENUM_ID)
#undef MIG_PARAM_ENUM_ID
    MIG_PARAM__MAX,
} MigParam;
/* clang-format on */

/*
 * A rule on one numeric value `v` of the whole set `p` (so rules may look
 * at other members). True when valid.
 */
typedef bool (*MigParamCheck)(const MigrationParameters *p, uint64_t v,
                              uint64_t min, uint64_t max);

/* One table row, for the code that walks every parameter. */
typedef struct MigParamInfo {
    const char *name;     /* QMP / HMP name, "downtime-limit" */
    const char *err_name; /* name in range errors, "downtime_limit" */
    MigParamType type;
    size_t offset; /* in MigrationParameters */
    uint64_t min, max;
    unsigned flags;
    MigParamCheck check; /* NULL: no range to check */
    const char *expects;
    const char *unit;
    const char *help;
} MigParamInfo;

extern const MigParamInfo mig_param_info[MIG_PARAM__MAX];

/* Index of a parameter by QMP name, -1 when unknown. */
int mig_param_lookup(const char *name);
/* Value of a BOOL, numeric or ENUM parameter as uint64 (STR: 0). */
uint64_t mig_param_get_u64(const MigrationParameters *p, MigParam id);
/* Sets a BOOL, numeric or ENUM parameter (the value must fit its type). */
void mig_param_set_u64(MigrationParameters *p, MigParam id, uint64_t v);
/* The string of a STR parameter (owned by `p`). */
const char *mig_param_get_str(const MigrationParameters *p, MigParam id);
void mig_param_set_str(MigrationParameters *p, MigParam id, const char *s);

/* Returns the MigCompression value named `name`, -1 when unknown. */
int mig_compression_lookup(const char *name);
/* Names of an ENUM or POLICY parameter's values. */
const char *mig_param_enum_name(MigParam id, uint64_t v);
int mig_param_enum_lookup(MigParam id, const char *name);

/* The rules of the `check` column. */
bool mig_check_range(const MigrationParameters *p, uint64_t v, uint64_t min,
                     uint64_t max);
bool mig_check_xbzrle_cache_size(const MigrationParameters *p, uint64_t v,
                                 uint64_t min, uint64_t max);
bool mig_check_max_cpu_throttle(const MigrationParameters *p, uint64_t v,
                                uint64_t min, uint64_t max);

/* ---- pure: whole sets, no globals ---------------------------------------- */

void mig_params_init_defaults(MigrationParameters *p);
void mig_params_copy(MigrationParameters *dst, const MigrationParameters *src);
void mig_params_clear(MigrationParameters *p);

/*
 * QEMU's compatibility rules on a whole new capability set `caps`, with
 * `old_caps` the current set, `p` the parameters in force and
 * `incoming_started` whether an incoming migration has begun. Returns
 * false with QEMU's error text for the first broken rule.
 */
bool mig_caps_check(const bool *old_caps, const bool *caps,
                    const MigrationParameters *p, bool incoming_started,
                    GError **errp);

/*
 * Range and cross-member rules on a whole new parameter set `p` (with
 * the capabilities `caps` in force). Returns false with QEMU's error text
 * for the first broken rule, in table order.
 */
bool mig_params_check(const MigrationParameters *p, const bool *caps,
                      GError **errp);

/* ---- the live set (options.c) -------------------------------------------- */

/* Copies of the live sets. */
void mig_caps_snapshot(bool caps[MIGRATION_CAPABILITY__MAX]);
void mig_params_snapshot(MigrationParameters *out); /* mig_params_clear() it */

/*
 * Checks the whole new capability set `caps` and makes it live; nothing
 * changes on failure. Order: a running migration, QEMU's rules, then
 * capabilities godwit doesn't implement yet. Main loop thread.
 */
bool mig_caps_commit(const bool caps[MIGRATION_CAPABILITY__MAX], GError **errp);

/*
 * Checks the whole new parameter set `p` and makes it live (taking its
 * contents; `p` is left cleared on success). Nothing changes on failure.
 * Order: ranges and rules, MIG_P_SETUP parameters while busy, then
 * parameters godwit doesn't implement yet. Main loop thread.
 */
bool mig_params_commit(MigrationParameters *p, GError **errp);

/* Tests: back to the defaults, no busy hooks. */
void migration_options_reset(void);

#endif /* MIGRATION_OPTIONS_INT_H */
