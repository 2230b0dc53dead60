/*
 * Migration capabilities and parameters: the live set, its lock and
 * accessors, and the validation of a whole new set (QEMU's rules, then
 * godwit's own: busy migrations, features not implemented yet). All of it
 * is generated from the tables in options-table.h; the QMP/HMP commands
 * are in options-cmds.c.
 */
#include <inttypes.h>
#include <string.h>

#include "options-int.h"

/* ---- the tables as data -------------------------------------------------- */

typedef struct MigCapInfo {
    const char *name;
    bool implemented;
    const char *help;
} MigCapInfo;

static const MigCapInfo mig_cap_info[] = {
#define MIG_CAP_INFO(id, name, impl, help)                                     \
    [MIGRATION_CAPABILITY_##id] = {name, impl, help},
    MIG_CAPABILITY_TABLE(MIG_CAP_INFO)
#undef MIG_CAP_INFO
};

/* Every enum value has exactly one row (designated initialisers + count). */
#define MIG_CAP_COUNT(...) +1
G_STATIC_ASSERT(0 MIG_CAPABILITY_TABLE(MIG_CAP_COUNT) ==
                MIGRATION_CAPABILITY__MAX);
G_STATIC_ASSERT(G_N_ELEMENTS(mig_cap_info) == MIGRATION_CAPABILITY__MAX);
#undef MIG_CAP_COUNT

const MigParamInfo mig_param_info[MIG_PARAM__MAX] = {
#define MIG_PARAM_INFO(field, name_, type_, def, min_, max_, flags_, check_,   \
                       expects_, unit_, help_)                                 \
    [MIG_PARAM_ID_##field] = {                                                 \
        .name = name_,                                                         \
        .err_name = (MIG_P_QMP_ERRNAME & (flags_)) ? name_ : #field,           \
        .type = MIG_PARAM_##type_,                                             \
        .offset = offsetof(MigrationParameters, field),                        \
        .min = (uint64_t)(min_),                                               \
        .max = (uint64_t)(max_),                                               \
        .flags = (flags_),                                                     \
        .check = check_,                                                       \
        .expects = expects_,                                                   \
        .unit = unit_,                                                         \
        .help = help_,                                                         \
    },
    MIG_PARAMETER_TABLE(MIG_PARAM_INFO)
#undef MIG_PARAM_INFO
};

static const char *const mig_compression_names[MIG_COMPRESSION__MAX] = {
    [MIG_COMPRESSION_NONE] = "none",
    [MIG_COMPRESSION_ZLIB] = "zlib",
    [MIG_COMPRESSION_ZSTD] = "zstd",
    [MIG_COMPRESSION_LZ4] = "lz4",
};

const char *migration_capability_name(MigrationCapability cap)
{
    g_assert(cap >= 0 && cap < MIGRATION_CAPABILITY__MAX);
    return mig_cap_info[cap].name;
}

int migration_capability_lookup(const char *name)
{
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        if (!strcmp(mig_cap_info[i].name, name)) {
            return i;
        }
    }
    return -1;
}

bool migrate_cap_implemented(MigrationCapability cap)
{
    g_assert(cap >= 0 && cap < MIGRATION_CAPABILITY__MAX);
    return mig_cap_info[cap].implemented;
}

const char *mig_compression_name(MigCompression c)
{
    g_assert(c >= 0 && c < MIG_COMPRESSION__MAX);
    return mig_compression_names[c];
}

int mig_compression_lookup(const char *name)
{
    for (int i = 0; i < MIG_COMPRESSION__MAX; i++) {
        if (!strcmp(mig_compression_names[i], name)) {
            return i;
        }
    }
    return -1;
}

static const char *const mig_throttle_policy_names[MIG_THROTTLE_POLICY__MAX] = {
    [MIG_THROTTLE_POLICY_QEMU] = "qemu",
    [MIG_THROTTLE_POLICY_AIM] = "aim",
};

const char *mig_param_enum_name(MigParam id, uint64_t v)
{
    if (mig_param_info[id].type == MIG_PARAM_POLICY) {
        g_assert(v < MIG_THROTTLE_POLICY__MAX);
        return mig_throttle_policy_names[v];
    }
    return mig_compression_name((MigCompression)v);
}

int mig_param_enum_lookup(MigParam id, const char *name)
{
    if (mig_param_info[id].type == MIG_PARAM_POLICY) {
        for (int i = 0; i < MIG_THROTTLE_POLICY__MAX; i++) {
            if (!strcmp(mig_throttle_policy_names[i], name)) {
                return i;
            }
        }
        return -1;
    }
    return mig_compression_lookup(name);
}

int mig_param_lookup(const char *name)
{
    for (int i = 0; i < MIG_PARAM__MAX; i++) {
        if (!strcmp(mig_param_info[i].name, name)) {
            return i;
        }
    }
    return -1;
}

/* ---- one member, by descriptor ------------------------------------------- */

static void *mig_param_addr(const MigrationParameters *p, MigParam id)
{
    return (char *)p + mig_param_info[id].offset;
}

uint64_t mig_param_get_u64(const MigrationParameters *p, MigParam id)
{
    void *addr = mig_param_addr(p, id);

    switch (mig_param_info[id].type) {
    case MIG_PARAM_BOOL:
        return *(bool *)addr;
    case MIG_PARAM_U8:
        return *(uint8_t *)addr;
    case MIG_PARAM_U32:
        return *(uint32_t *)addr;
    case MIG_PARAM_SIZE:
    case MIG_PARAM_MIBSIZE:
        return *(uint64_t *)addr;
    case MIG_PARAM_ENUM:
        return (uint64_t)(*(MigCompression *)addr);
    case MIG_PARAM_POLICY:
        return (uint64_t)(*(MigThrottlePolicy *)addr);
    case MIG_PARAM_STR:
        break;
    }
    return 0;
}

void mig_param_set_u64(MigrationParameters *p, MigParam id, uint64_t v)
{
    void *addr = mig_param_addr(p, id);

    switch (mig_param_info[id].type) {
    case MIG_PARAM_BOOL:
        *(bool *)addr = v != 0;
        break;
    case MIG_PARAM_U8:
        g_assert(v <= UINT8_MAX);
        *(uint8_t *)addr = (uint8_t)v;
        break;
    case MIG_PARAM_U32:
        g_assert(v <= UINT32_MAX);
        *(uint32_t *)addr = (uint32_t)v;
        break;
    case MIG_PARAM_SIZE:
    case MIG_PARAM_MIBSIZE:
        *(uint64_t *)addr = v;
        break;
    case MIG_PARAM_ENUM:
        g_assert(v < MIG_COMPRESSION__MAX);
        *(MigCompression *)addr = (MigCompression)v;
        break;
    case MIG_PARAM_POLICY:
        g_assert(v < MIG_THROTTLE_POLICY__MAX);
        *(MigThrottlePolicy *)addr = (MigThrottlePolicy)v;
        break;
    case MIG_PARAM_STR:
        g_assert_not_reached();
    }
}

const char *mig_param_get_str(const MigrationParameters *p, MigParam id)
{
    g_assert(mig_param_info[id].type == MIG_PARAM_STR);
    return *(char **)mig_param_addr(p, id);
}

void mig_param_set_str(MigrationParameters *p, MigParam id, const char *s)
{
    char **addr = mig_param_addr(p, id);

    g_assert(mig_param_info[id].type == MIG_PARAM_STR);
    g_free(*addr);
    *addr = g_strdup(s ? s : "");
}

static bool mig_param_differs(const MigrationParameters *a,
                              const MigrationParameters *b, MigParam id)
{
    if (mig_param_info[id].type == MIG_PARAM_STR) {
        return strcmp(mig_param_get_str(a, id), mig_param_get_str(b, id)) != 0;
    }
    return mig_param_get_u64(a, id) != mig_param_get_u64(b, id);
}

/* ---- whole sets ---------------------------------------------------------- */

#define MIG_DEFAULT_BOOL(v) (v)
#define MIG_DEFAULT_U8(v) (v)
#define MIG_DEFAULT_U32(v) (v)
#define MIG_DEFAULT_SIZE(v) (v)
#define MIG_DEFAULT_MIBSIZE(v) (v)
#define MIG_DEFAULT_ENUM(v) (v)
#define MIG_DEFAULT_POLICY(v) (v)
#define MIG_DEFAULT_STR(v) g_strdup(v)

void mig_params_init_defaults(MigrationParameters *p)
{
#define MIG_PARAM_DEFAULT(field, name, type, def, ...)                         \
    p->field = MIG_DEFAULT_##type(def);
    MIG_PARAMETER_TABLE(MIG_PARAM_DEFAULT)
#undef MIG_PARAM_DEFAULT
}

void mig_params_copy(MigrationParameters *dst, const MigrationParameters *src)
{
    *dst = *src;
    for (int i = 0; i < MIG_PARAM__MAX; i++) {
        if (mig_param_info[i].type == MIG_PARAM_STR) {
            char **addr = mig_param_addr(dst, i);

            *addr = g_strdup(*addr);
        }
    }
}

void mig_params_clear(MigrationParameters *p)
{
    for (int i = 0; i < MIG_PARAM__MAX; i++) {
        if (mig_param_info[i].type == MIG_PARAM_STR) {
            char **addr = mig_param_addr(p, i);

            g_free(*addr);
            *addr = NULL;
        }
    }
}

/* ---- rules --------------------------------------------------------------- */

bool mig_check_range(const MigrationParameters *p, uint64_t v, uint64_t min,
                     uint64_t max)
{
    return v >= min && v <= max;
}

bool mig_check_xbzrle_cache_size(const MigrationParameters *p, uint64_t v,
                                 uint64_t min, uint64_t max)
{
    /* a power of two no less than the target page size */
    return v >= MIG_TARGET_PAGE_SIZE && v <= max && (v & (v - 1)) == 0;
}

bool mig_check_max_cpu_throttle(const MigrationParameters *p, uint64_t v,
                                uint64_t min, uint64_t max)
{
    return v >= p->cpu_throttle_initial && v <= max;
}

static bool mig_fail(GError **errp, const char *msg)
{
    g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC, msg);
    return false;
}

/* Capabilities background-snapshot refuses, in the order QEMU checks them. */
static const MigrationCapability mig_bg_snapshot_incompatible[] = {
    MIGRATION_CAPABILITY_POSTCOPY_RAM,
    MIGRATION_CAPABILITY_DIRTY_BITMAPS,
    MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME,
    MIGRATION_CAPABILITY_LATE_BLOCK_ACTIVATE,
    MIGRATION_CAPABILITY_RETURN_PATH,
    MIGRATION_CAPABILITY_MULTIFD,
    MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER,
    MIGRATION_CAPABILITY_AUTO_CONVERGE,
    MIGRATION_CAPABILITY_RELEASE_RAM,
    MIGRATION_CAPABILITY_RDMA_PIN_ALL,
    MIGRATION_CAPABILITY_COMPRESS,
    MIGRATION_CAPABILITY_XBZRLE,
    MIGRATION_CAPABILITY_X_COLO,
    MIGRATION_CAPABILITY_VALIDATE_UUID,
    MIGRATION_CAPABILITY_ZERO_COPY_SEND,
};

/* zero-copy-send's condition, shared by both checks (QEMU's text). */
static bool mig_zero_copy_ok(const bool *c, const MigrationParameters *p)
{
    return c[MIGRATION_CAPABILITY_MULTIFD] &&
           !c[MIGRATION_CAPABILITY_COMPRESS] &&
           !c[MIGRATION_CAPABILITY_XBZRLE] &&
           p->multifd_compression == MIG_COMPRESSION_NONE && !*p->tls_creds;
}

/*
 * QEMU 7.2's rules plus those QEMU added in 8.x (postcopy-ram + multifd,
 * multifd + xbzrle, compress + xbzrle, the "before incoming starts"
 * ones, switchover-ack, dirty-limit), in QEMU's order and words.
 */
bool mig_caps_check(const bool *old, const bool *c,
                    const MigrationParameters *p, bool incoming_started,
                    GError **errp)
{
    if (c[MIGRATION_CAPABILITY_POSTCOPY_RAM]) {
        if (c[MIGRATION_CAPABILITY_X_IGNORE_SHARED]) {
            return mig_fail(errp,
                            "Postcopy is not compatible with ignore-shared");
        }
        if (c[MIGRATION_CAPABILITY_MULTIFD]) {
            return mig_fail(errp,
                            "Postcopy is not yet compatible with multifd");
        }
    }
    if (c[MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT]) {
        for (size_t i = 0; i < G_N_ELEMENTS(mig_bg_snapshot_incompatible);
             i++) {
            MigrationCapability other = mig_bg_snapshot_incompatible[i];

            if (c[other]) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "Background-snapshot is not compatible with %s",
                            migration_capability_name(other));
                return false;
            }
        }
    }
    if (c[MIGRATION_CAPABILITY_ZERO_COPY_SEND] && !mig_zero_copy_ok(c, p)) {
        return mig_fail(errp, "Zero copy only available for non-compressed "
                              "non-TLS multifd migration");
    }
    if (c[MIGRATION_CAPABILITY_POSTCOPY_PREEMPT]) {
        if (!c[MIGRATION_CAPABILITY_POSTCOPY_RAM]) {
            return mig_fail(errp, "Postcopy preempt requires postcopy-ram");
        }
        if (c[MIGRATION_CAPABILITY_COMPRESS]) {
            return mig_fail(errp,
                            "Postcopy preempt not compatible with compress");
        }
        if (!old[MIGRATION_CAPABILITY_POSTCOPY_PREEMPT] && incoming_started) {
            return mig_fail(
                errp, "Postcopy preempt must be set before incoming starts");
        }
    }
    if (c[MIGRATION_CAPABILITY_MULTIFD]) {
        if (c[MIGRATION_CAPABILITY_COMPRESS]) {
            return mig_fail(errp, "Multifd is not compatible with compress");
        }
        if (!old[MIGRATION_CAPABILITY_MULTIFD] && incoming_started) {
            return mig_fail(errp, "Multifd must be set before incoming starts");
        }
    }
    /*
     * Nor turned off afterwards (QEMU doesn't check that way): the
     * destination listens for the channels already.
     */
    if (old[MIGRATION_CAPABILITY_MULTIFD] && !c[MIGRATION_CAPABILITY_MULTIFD] &&
        incoming_started) {
        return mig_fail(errp, "Multifd must be set before incoming starts");
    }
    if (c[MIGRATION_CAPABILITY_SWITCHOVER_ACK] &&
        !c[MIGRATION_CAPABILITY_RETURN_PATH]) {
        return mig_fail(errp, "Capability 'switchover-ack' requires "
                              "capability 'return-path'");
    }
    if (c[MIGRATION_CAPABILITY_DIRTY_LIMIT] &&
        c[MIGRATION_CAPABILITY_AUTO_CONVERGE]) {
        return mig_fail(errp, "dirty-limit conflicts with auto-converge "
                              "either of then available currently");
    }
    if (c[MIGRATION_CAPABILITY_MULTIFD] && c[MIGRATION_CAPABILITY_XBZRLE]) {
        return mig_fail(errp, "Multifd is not compatible with xbzrle");
    }
    /*
     * compress + xbzrle work together, as in QEMU 7.2 and the seed: the
     * bulk stage is compressed, re-sent pages are delta-encoded. (QEMU 8.1
     * refused the pair once it deprecated compress.)
     */
    return true;
}

bool mig_params_check(const MigrationParameters *p, const bool *caps,
                      GError **errp)
{
    for (int i = 0; i < MIG_PARAM__MAX; i++) {
        const MigParamInfo *info = &mig_param_info[i];

        if (info->check &&
            !info->check(p, mig_param_get_u64(p, i), info->min, info->max)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Parameter '%s' expects %s", info->err_name,
                        info->expects);
            return false;
        }
    }
    if (caps[MIGRATION_CAPABILITY_ZERO_COPY_SEND] &&
        (p->multifd_compression != MIG_COMPRESSION_NONE || *p->tls_creds)) {
        return mig_fail(errp, "Zero copy only available for non-compressed "
                              "non-TLS multifd migration");
    }
    return true;
}

/* ---- the live set -------------------------------------------------------- */

/*
 * Written by the main loop (commits), read by any thread (accessors).
 * Protected by `mig_lock`; `loaded` makes the first user load defaults.
 */
static GMutex mig_lock;
static struct {
    bool loaded;
    bool caps[MIGRATION_CAPABILITY__MAX];
    MigrationParameters params;
} mig_state;

/* Set once by migration_options_init(); read by the main loop only. */
static MigrationBusyFunc mig_outgoing_running;
static MigrationBusyFunc mig_incoming_started;
static MigrationBusyFunc mig_incoming_loading;
static bool (*mig_postcopy_check)(GError **errp);
static bool (*mig_dirty_limit_check)(GError **errp);

static void mig_state_lock(void)
{
    g_mutex_lock(&mig_lock);
    if (!mig_state.loaded) {
        memset(mig_state.caps, 0, sizeof(mig_state.caps));
        mig_params_init_defaults(&mig_state.params);
        mig_state.loaded = true;
    }
}

static void mig_state_unlock(void)
{
    g_mutex_unlock(&mig_lock);
}

void migration_options_init(MigrationBusyFunc outgoing_running,
                            MigrationBusyFunc incoming_started,
                            MigrationBusyFunc incoming_loading)
{
    mig_outgoing_running = outgoing_running;
    mig_incoming_started = incoming_started;
    mig_incoming_loading = incoming_loading;
}

void migration_options_set_postcopy_check(bool (*check)(GError **errp))
{
    mig_postcopy_check = check;
}

void migration_options_set_dirty_limit_check(bool (*check)(GError **errp))
{
    mig_dirty_limit_check = check;
}

void migration_options_reset(void)
{
    mig_state_lock();
    mig_params_clear(&mig_state.params);
    mig_state.loaded = false;
    mig_state_unlock();
    migration_options_init(NULL, NULL, NULL);
}

static bool mig_busy_outgoing(void)
{
    return mig_outgoing_running && mig_outgoing_running();
}

static bool mig_busy_incoming(void)
{
    return mig_incoming_started && mig_incoming_started();
}

static bool mig_busy_loading(void)
{
    return mig_incoming_loading && mig_incoming_loading();
}

bool migrate_cap(MigrationCapability cap)
{
    bool on;

    g_assert(cap >= 0 && cap < MIGRATION_CAPABILITY__MAX);
    mig_state_lock();
    on = mig_state.caps[cap];
    mig_state_unlock();
    return on;
}

/* migrate_<field>() for every parameter; strings come back as copies. */
#define MIG_ACCESSOR(ctype, field, copy)                                       \
    ctype migrate_##field(void)                                                \
    {                                                                          \
        ctype v;                                                               \
        mig_state_lock();                                                      \
        v = copy(mig_state.params.field);                                      \
        mig_state_unlock();                                                    \
        return v;                                                              \
    }
#define MIG_VALUE(v) (v)
#define MIG_ACCESSOR_BOOL(field) MIG_ACCESSOR(bool, field, MIG_VALUE)
#define MIG_ACCESSOR_U8(field) MIG_ACCESSOR(uint8_t, field, MIG_VALUE)
#define MIG_ACCESSOR_U32(field) MIG_ACCESSOR(uint32_t, field, MIG_VALUE)
#define MIG_ACCESSOR_SIZE(field) MIG_ACCESSOR(uint64_t, field, MIG_VALUE)
#define MIG_ACCESSOR_MIBSIZE(field) MIG_ACCESSOR(uint64_t, field, MIG_VALUE)
#define MIG_ACCESSOR_ENUM(field) MIG_ACCESSOR(MigCompression, field, MIG_VALUE)
#define MIG_ACCESSOR_POLICY(field)                                             \
    MIG_ACCESSOR(MigThrottlePolicy, field, MIG_VALUE)
#define MIG_ACCESSOR_STR(field) MIG_ACCESSOR(char *, field, g_strdup)
#define MIG_PARAM_ACCESSOR(field, name, type, ...) MIG_ACCESSOR_##type(field)
MIG_PARAMETER_TABLE(MIG_PARAM_ACCESSOR)
#undef MIG_PARAM_ACCESSOR

void mig_caps_snapshot(bool caps[MIGRATION_CAPABILITY__MAX])
{
    mig_state_lock();
    memcpy(caps, mig_state.caps, sizeof(mig_state.caps));
    mig_state_unlock();
}

void mig_params_snapshot(MigrationParameters *out)
{
    mig_state_lock();
    mig_params_copy(out, &mig_state.params);
    mig_state_unlock();
}

bool mig_caps_commit(const bool caps[MIGRATION_CAPABILITY__MAX], GError **errp)
{
    bool old[MIGRATION_CAPABILITY__MAX];
    MigrationParameters params;
    bool ok;

    if (mig_busy_outgoing()) {
        return mig_fail(errp, "There's a migration process in progress");
    }
    mig_caps_snapshot(old);
    mig_params_snapshot(&params);
    ok = mig_caps_check(old, caps, &params, mig_busy_incoming(), errp);
    mig_params_clear(&params);
    if (!ok) {
        return false;
    }
    /* as QEMU: checked once, when an incoming side turns it on */
    if (caps[MIGRATION_CAPABILITY_POSTCOPY_RAM] &&
        !old[MIGRATION_CAPABILITY_POSTCOPY_RAM] && mig_postcopy_check &&
        !mig_postcopy_check(errp)) {
        return false;
    }
    /* as QEMU: the accelerator must count dirty pages per vCPU */
    if (caps[MIGRATION_CAPABILITY_DIRTY_LIMIT] &&
        !old[MIGRATION_CAPABILITY_DIRTY_LIMIT] && mig_dirty_limit_check &&
        !mig_dirty_limit_check(errp)) {
        return false;
    }
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        if (caps[i] && !old[i] && !mig_cap_info[i].implemented) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Capability '%s' is not supported by godwit yet",
                        mig_cap_info[i].name);
            return false;
        }
    }
    /* the main loop is the only writer: nothing changed since the copy */
    mig_state_lock();
    memcpy(mig_state.caps, caps, sizeof(mig_state.caps));
    mig_state_unlock();
    return true;
}

/* Refuses changing a MIG_P_SETUP parameter while a migration needs it. */
static bool mig_params_check_busy(const MigrationParameters *p,
                                  const MigrationParameters *cur, GError **errp)
{
    bool outgoing = mig_busy_outgoing();
    bool incoming = mig_busy_incoming();
    bool loading = mig_busy_loading();

    for (int i = 0; i < MIG_PARAM__MAX && (outgoing || incoming); i++) {
        const char *name = mig_param_info[i].name;
        unsigned flags = mig_param_info[i].flags;
        const char *why;

        if (!(flags & MIG_P_SETUP) || !mig_param_differs(p, cur, i)) {
            continue;
        }
        if (outgoing) {
            why = "Parameter '%s' can't be changed while a migration is in "
                  "progress";
        } else if (flags & MIG_P_LISTEN) {
            why = "Parameter '%s' must be set before incoming starts";
        } else if (loading) {
            why = "Parameter '%s' can't be changed while an incoming "
                  "migration is in progress";
        } else {
            continue; /* read once the source has connected */
        }
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, why, name);
        return false;
    }
    return true;
}

bool mig_params_commit(MigrationParameters *p, GError **errp)
{
    bool caps[MIGRATION_CAPABILITY__MAX];
    MigrationParameters cur;
    bool ok;

    mig_caps_snapshot(caps);
    mig_params_snapshot(&cur);
    ok =
        mig_params_check(p, caps, errp) && mig_params_check_busy(p, &cur, errp);
    for (int i = 0; ok && i < MIG_PARAM__MAX; i++) {
        if (!(mig_param_info[i].flags & MIG_P_IMPL) &&
            mig_param_differs(p, &cur, i)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Parameter '%s' is not supported by godwit yet",
                        mig_param_info[i].name);
            ok = false;
        }
    }
    mig_params_clear(&cur);
    if (!ok) {
        return false;
    }
    mig_state_lock();
    cur = mig_state.params;
    mig_state.params = *p;
    *p = cur; /* the old set, freed below */
    mig_state_unlock();
    mig_params_clear(p);
    return true;
}
