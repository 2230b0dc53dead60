/*
 * Outgoing migration: the state machine (QEMU's MigrationStatus), the
 * migration thread's loop (iterate, rate limit, measure, decide), the
 * switchover, and what happens on failure and cancel: the source keeps
 * running with its memory untouched.
 *
 * States: none -> setup -> active [-> pre-switchover -> device]
 *         -> completed | failed | cancelling -> cancelled
 * Post-copy: active -> postcopy-active -> completed | failed; from
 * postcopy-active the guest runs on the destination and cannot come back.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auto-converge.h"
#include "convergence.h"
#include "godwit/cpu-throttle.h"
#include "godwit/machine.h"
#include "godwit/monitor.h"
#include "godwit/runstate.h"
#include "godwit/system.h"
#include "migration-int.h"
#include "tls.h"
#include "migration/options.h"
#include "multifd.h"
#include "ram.h"
#include "return-path.h"
#include "savevm.h"

static const char *const status_names[MIGRATION_STATUS__MAX] = {
    [MIGRATION_STATUS_NONE] = "none",
    [MIGRATION_STATUS_SETUP] = "setup",
    [MIGRATION_STATUS_CANCELLING] = "cancelling",
    [MIGRATION_STATUS_CANCELLED] = "cancelled",
    [MIGRATION_STATUS_ACTIVE] = "active",
    [MIGRATION_STATUS_POSTCOPY_ACTIVE] = "postcopy-active",
    [MIGRATION_STATUS_POSTCOPY_PAUSED] = "postcopy-paused",
    [MIGRATION_STATUS_POSTCOPY_RECOVER] = "postcopy-recover",
    [MIGRATION_STATUS_COMPLETED] = "completed",
    [MIGRATION_STATUS_FAILED] = "failed",
    [MIGRATION_STATUS_COLO] = "colo",
    [MIGRATION_STATUS_PRE_SWITCHOVER] = "pre-switchover",
    [MIGRATION_STATUS_DEVICE] = "device",
    [MIGRATION_STATUS_WAIT_UNPLUG] = "wait-unplug",
};

static MigrationState current_migration = {
    .status = MIGRATION_STATUS_NONE,
};

MigrationState *migrate_get_current(void)
{
    return &current_migration;
}

const char *migration_status_name(MigrationStatus s)
{
    return s < MIGRATION_STATUS__MAX ? status_names[s] : "?";
}

int migration_status_lookup(const char *name)
{
    for (int i = 0; i < MIGRATION_STATUS__MAX; i++) {
        if (!strcmp(status_names[i], name)) {
            return i;
        }
    }
    return -1;
}

static int64_t realtime_ms(void)
{
    return g_get_real_time() / 1000;
}

MigrationStatus migrate_status(MigrationState *s)
{
    return atomic_load(&s->status);
}

static void emit_migration_event(MigrationStatus st)
{
    if (migrate_cap(MIGRATION_CAPABILITY_EVENTS)) {
        JsonObject *d = json_object_new();
        json_object_set_string_member(d, "status", migration_status_name(st));
        monitor_emit_event("MIGRATION", d);
    }
}

void migrate_set_status(MigrationState *s, MigrationStatus old,
                        MigrationStatus new_status)
{
    int expected = old;

    if (atomic_compare_exchange_strong(&s->status, &expected, new_status)) {
        emit_migration_event(new_status);
    }
}

/* Moves to `st` from whatever the status is now (terminal states). */
void migrate_force_status(MigrationState *s, MigrationStatus st)
{
    atomic_store(&s->status, st);
    emit_migration_event(st);
}

static bool status_is_running(MigrationStatus st)
{
    switch (st) {
    case MIGRATION_STATUS_SETUP:
    case MIGRATION_STATUS_ACTIVE:
    case MIGRATION_STATUS_CANCELLING:
    case MIGRATION_STATUS_PRE_SWITCHOVER:
    case MIGRATION_STATUS_DEVICE:
    case MIGRATION_STATUS_POSTCOPY_ACTIVE:
    case MIGRATION_STATUS_POSTCOPY_PAUSED:
    case MIGRATION_STATUS_POSTCOPY_RECOVER:
        return true;
    default:
        return false;
    }
}

static void migration_join_finished(MigrationState *s);

/* Main loop. */
bool migration_is_running(void)
{
    /*
     * A thread that set the final status only returns: joined here, so a
     * command sent on seeing that status is not refused (the cleanup idle
     * source may run after the command). One still working counts.
     */
    migration_join_finished(&current_migration);
    return status_is_running(migrate_status(&current_migration)) ||
           current_migration.thread_created;
}

bool migration_in_postcopy(void)
{
    return atomic_load(&current_migration.postcopy);
}

bool migration_in_switchover(void)
{
    return atomic_load(&current_migration.switchover);
}

void migration_pass_done(uint64_t pass, uint64_t dirty_bytes)
{
    if (migrate_cap(MIGRATION_CAPABILITY_EVENTS)) {
        JsonObject *d = json_object_new();
        json_object_set_int_member(d, "pass", (gint64)pass);
        monitor_emit_event("MIGRATION_PASS", d);
    }
}

/* Owned by the migration thread. */
static AutoConvergeState auto_converge;
static AutoConvergeAim auto_converge_aim_state;

void migration_auto_converge_period(uint64_t bytes_dirty, uint64_t bytes_xfer,
                                    uint64_t period_us)
{
    AutoConvergeParams p = {
        .threshold = migrate_throttle_trigger_threshold(),
        .initial = migrate_cpu_throttle_initial(),
        .increment = migrate_cpu_throttle_increment(),
        .max = migrate_max_cpu_throttle(),
        .tailslow = migrate_cpu_throttle_tailslow(),
    };
    int now, next;

    if (migrate_cap(MIGRATION_CAPABILITY_DIRTY_LIMIT) &&
        !migration_in_switchover()) {
        /* QEMU's trigger, auto-converge's: when its first step would fire */
        if (auto_converge_step(&auto_converge, &p, 0, bytes_dirty, bytes_xfer) >
            0) {
            dirty_limit_migration_throttle();
        }
        return;
    }
    if (!migrate_cap(MIGRATION_CAPABILITY_AUTO_CONVERGE) ||
        migration_in_switchover()) {
        return;
    }
    now = cpu_throttle_get_percentage();
    if (migrate_x_throttle_policy() == MIG_THROTTLE_POLICY_AIM) {
        next = auto_converge_aim(&auto_converge_aim_state, &p, now, bytes_dirty,
                                 bytes_xfer, period_us);
    } else {
        next = auto_converge_step(&auto_converge, &p, now, bytes_dirty,
                                  bytes_xfer);
    }
    if (next != now) {
        cpu_throttle_set(next);
    }
}

void migrate_set_error(MigrationState *s, const char *msg)
{
    g_mutex_lock(&s->lock);
    if (!s->error_desc) {
        s->error_desc = g_strdup(msg);
    }
    g_mutex_unlock(&s->lock);
}

/* ---- rate limit and measurements (migration thread) --------------------- */

/* Bytes on the wire: the main channel's and the multifd channels'. */
static uint64_t migration_transferred(QEMUFile *f)
{
    return qemu_file_transferred(f) + multifd_bytes_transferred();
}

void window_reset(MigrationState *s, QEMUFile *f)
{
    s->window_start_us = g_get_monotonic_time();
    s->window_start_bytes = migration_transferred(f);
    s->window_pages =
        atomic_load(&ram_stats.normal) + atomic_load(&ram_stats.duplicate);
}

bool migration_rate_exceeded(QEMUFile *f)
{
    MigrationState *s = &current_migration;
    bool postcopy = atomic_load(&s->postcopy);
    uint64_t limit =
        postcopy ? migrate_max_postcopy_bandwidth() : migrate_max_bandwidth();
    uint64_t sent;

    if (!limit || (atomic_load(&s->switchover) && !postcopy)) {
        return false;
    }
    sent =
        migration_transferred(f) + qemu_file_pending(f) - s->window_start_bytes;
    return sent >= limit * MIGRATION_WINDOW_MS / 1000;
}

/* Every window: bandwidth, mbps, expected downtime, pages per second. */
static void window_update(MigrationState *s, QEMUFile *f)
{
    int64_t now = g_get_monotonic_time();
    int64_t dt = now - s->window_start_us;
    uint64_t bytes = migration_transferred(f) - s->window_start_bytes;
    uint64_t pages = atomic_load(&ram_stats.normal) +
                     atomic_load(&ram_stats.duplicate) - s->window_pages;

    if (dt < MIGRATION_WINDOW_MS * 1000) {
        return;
    }
    uint64_t bps = migration_bandwidth_bps(bytes, dt);
    atomic_store(&s->bandwidth_bps, bps);
    atomic_store(&s->mbps_x1000, bps * 8 / 1000);
    atomic_store(&ram_stats.pages_per_second, pages * 1000000 / dt);
    int64_t ed = migration_expected_downtime_ms(
        qemu_savevm_state_pending(),
        migrate_avail_switchover_bandwidth() ?: bps);
    if (ed >= 0) {
        atomic_store(&s->expected_downtime_ms, ed);
    }
    window_reset(s, f);
}

/*
 * Sleeps until the window ends if the rate limit was reached; in
 * post-copy a page request ends the sleep (requests are never held back).
 */
static void rate_limit_wait(MigrationState *s, QEMUFile *f)
{
    if (!migration_rate_exceeded(f)) {
        return;
    }
    int64_t end = s->window_start_us + MIGRATION_WINDOW_MS * 1000;
    int64_t now = g_get_monotonic_time();
    if (end > now) {
        if (atomic_load(&s->postcopy)) {
            ram_postcopy_wait_request(end);
        } else {
            g_usleep((gulong)(end - now));
        }
    }
}

bool migration_cancelling(MigrationState *s)
{
    return migrate_status(s) == MIGRATION_STATUS_CANCELLING;
}

/* ---- switchover ---------------------------------------------------------- */

/* pause-before-switchover: wait in pre-switchover for migrate-continue. */
static bool wait_for_continue(MigrationState *s)
{
    migrate_set_status(s, MIGRATION_STATUS_ACTIVE,
                       MIGRATION_STATUS_PRE_SWITCHOVER);
    g_mutex_lock(&s->lock);
    while (!s->continue_req && !migration_cancelling(s)) {
        g_cond_wait(&s->cond, &s->lock);
    }
    s->continue_req = false;
    g_mutex_unlock(&s->lock);
    migrate_set_status(s, MIGRATION_STATUS_PRE_SWITCHOVER,
                       MIGRATION_STATUS_DEVICE);
    return !migration_cancelling(s);
}

static bool migration_completion(MigrationState *s, QEMUFile *f,
                                 int64_t *stop_us, GError **errp)
{
    if (migrate_cap(MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER) &&
        !wait_for_continue(s)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "cancelled");
        return false;
    }
    *stop_us = g_get_monotonic_time();
    s->vm_was_running = runstate_is_running();
    atomic_store(&s->switchover, true);
    vm_stop_force_state(RUN_STATE_FINISH_MIGRATE);
    return qemu_savevm_state_complete(f, errp);
}

/* ---- the migration thread ------------------------------------------------ */

/* Main loop: joins a thread that is done and drops its URI. */
static void migration_join_finished(MigrationState *s)
{
    if (s->thread_created && atomic_load(&s->thread_done)) {
        pthread_join(s->thread, NULL);
        s->thread_created = false;
        mig_uri_clear(&s->uri);
    }
}

static gboolean migration_cleanup_bh(gpointer opaque)
{
    migration_join_finished(opaque);
    return G_SOURCE_REMOVE;
}

static void migration_finish(MigrationState *s, QEMUFile *f, bool ok,
                             GError *err, int64_t stop_us)
{
    g_autoptr(GError) close_err = NULL;

    bool postcopy = atomic_load(&s->postcopy);

    g_mutex_lock(&s->lock);
    s->chan = NULL;
    g_mutex_unlock(&s->lock);
    if (!ok) {
        multifd_send_shutdown(); /* no channel thread waits on a peer */
    }
    rp_reader_stop(s->rp);
    s->rp = NULL;
    postcopy_preempt_close(s);
    if (f && !qemu_fclose(f, ok ? &close_err : NULL)) {
        ok = false;
        if (!err && close_err) {
            err = g_steal_pointer(&close_err);
        }
    }
    /*
     * The migration ends when its last byte is written (multifd's were, at
     * the last sync): QEMU's total-time and downtime end there too. What
     * follows is this side's own cleanup, with the guest already handed
     * over: stopping the dirty log, which makes KVM rebuild huge pages
     * (6-7 ms for 2 GiB here), is not the guest's downtime.
     */
    int64_t end_ms = realtime_ms(), end_us = g_get_monotonic_time();
    multifd_send_cleanup();
    qemu_savevm_state_cleanup();
    /* however it ended, nothing stays throttled */
    cpu_throttle_stop();
    dirty_limit_migration_end();
    atomic_store(&s->total_ms, end_ms - atomic_load(&s->start_ms));
    if (ok) {
        if (!postcopy) {
            atomic_store(&s->downtime_ms, (end_us - stop_us) / 1000);
        }
        runstate_set(RUN_STATE_POSTMIGRATE);
        migrate_force_status(s, MIGRATION_STATUS_COMPLETED);
    } else if (postcopy) {
        /*
         * The destination ran the guest: this side's RAM is stale, and
         * resuming it would fork the guest. It stays stopped.
         */
        migrate_set_error(s, err ? err->message : "unknown error");
        runstate_set(RUN_STATE_POSTMIGRATE);
        migrate_force_status(s, MIGRATION_STATUS_FAILED);
    } else {
        bool cancelled = migration_cancelling(s);
        if (!cancelled) {
            migrate_set_error(s, err ? err->message : "unknown error");
        }
        /* Whatever happened, the source goes on as it was. */
        if (atomic_load(&s->switchover)) {
            if (s->vm_was_running) {
                vm_start();
            } else if (runstate_get() == RUN_STATE_FINISH_MIGRATE) {
                runstate_set(RUN_STATE_PAUSED);
            }
        }
        migrate_force_status(s, cancelled ? MIGRATION_STATUS_CANCELLED
                                          : MIGRATION_STATUS_FAILED);
    }
    atomic_store(&s->switchover, false);
    atomic_store(&s->postcopy, false);
    if (err) {
        g_error_free(err);
    }
    atomic_store(&s->thread_done, true);
    g_idle_add(migration_cleanup_bh, s);
}

/* Connects and sends the header and RAM setup; false with *errp set. */
static bool migration_setup(MigrationState *s, QEMUFile **fp, GError **errp)
{
    MigChannel *chan =
        migration_tls_connect(&s->uri, s->connect_cancel_fd, errp);

    if (!chan) {
        return false;
    }
    g_mutex_lock(&s->lock);
    s->chan = chan;
    g_mutex_unlock(&s->lock);
    if (migration_cancelling(s)) {
        mig_channel_shutdown(chan);
    }
    *fp = qemu_file_new_output(chan);
    qemu_savevm_state_header(*fp);
    if (migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM) ||
        migrate_cap(MIGRATION_CAPABILITY_RETURN_PATH)) {
        if (!migration_rp_open(s, chan, errp)) {
            g_prefix_error(errp, "return path: ");
            return false;
        }
        qemu_savevm_send_open_return_path(*fp);
        qemu_savevm_send_ping(*fp, 1);
    }
    if (migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM)) {
        qemu_savevm_send_postcopy_advise(*fp);
        if (!postcopy_preempt_connect(s, errp)) {
            return false;
        }
    }
    /* the destination knows the main channel by its first bytes */
    qemu_fflush(*fp);
    if (!qemu_file_check(*fp, errp) ||
        !multifd_send_setup(&s->uri, s->connect_cancel_fd, errp)) {
        return false;
    }
    if (!qemu_savevm_state_setup(*fp, errp)) {
        return false;
    }
    qemu_fflush(*fp);
    return qemu_file_check(*fp, errp);
}

void *migration_thread(void *opaque)
{
    MigrationState *s = opaque;
    QEMUFile *f = NULL;
    GError *err = NULL;
    int64_t t0 = realtime_ms(), stop_us = 0;
    bool ok = false;

    pthread_setname_np(pthread_self(), "live_migration");
    if (!migration_setup(s, &f, &err)) {
        goto out;
    }
    atomic_store(&s->setup_ms, realtime_ms() - t0);
    migrate_set_status(s, MIGRATION_STATUS_SETUP, MIGRATION_STATUS_ACTIVE);
    window_reset(s, f);

    while (!migration_cancelling(s) || atomic_load(&s->postcopy)) {
        if (atomic_load(&s->postcopy)) {
            bool broke = !rp_check(s, &err);
            if (!broke && !qemu_savevm_state_pending()) {
                ok = postcopy_complete(s, f, &err);
                if (ok) {
                    goto out;
                }
                broke = true;
            }
            if (!broke) {
                broke = qemu_savevm_state_iterate(f) < 0;
                qemu_fflush(f);
                broke = broke || qemu_file_get_error(f);
            }
            if (broke) {
                if (!err) {
                    qemu_file_check(f, &err);
                }
                if (!postcopy_pause(s, &f, &err)) {
                    goto out;
                }
                window_reset(s, f);
                continue;
            }
            rate_limit_wait(s, f);
            window_update(s, f);
            continue;
        }
        if (atomic_load(&s->start_postcopy) &&
            migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM)) {
            if (!postcopy_start(s, f, &stop_us, &err) &&
                (!atomic_load(&s->postcopy) || !postcopy_pause(s, &f, &err))) {
                goto out;
            }
            window_reset(s, f);
            continue;
        }
        if (s->rp && !rp_check(s, &err)) {
            goto out;
        }
        uint64_t threshold = migration_threshold_bytes(
            atomic_load(&s->bandwidth_bps),
            migrate_avail_switchover_bandwidth(), migrate_downtime_limit());
        if (migration_can_switchover(qemu_savevm_state_pending(), threshold)) {
            /* Looks done: take the exact figure before deciding. */
            if (!ram_bitmap_sync(&err)) {
                goto out;
            }
            if (migration_can_switchover(qemu_savevm_state_pending(),
                                         threshold)) {
                ok = migration_completion(s, f, &stop_us, &err) &&
                     (!s->rp || rp_await_shut(s, f, &err));
                goto out;
            }
        }
        if (qemu_savevm_state_iterate(f) < 0) {
            break;
        }
        /* file: through io_uring writes on while the next pages are found */
        qemu_file_submit(f);
        if (qemu_file_get_error(f)) {
            break;
        }
        rate_limit_wait(s, f);
        window_update(s, f);
    }
    if (!err && f) {
        qemu_file_check(f, &err);
    }
out:
    migration_finish(s, f, ok, err, stop_us);
    return NULL;
}

/* ---- commands ------------------------------------------------------------ */

bool migrate_start(const char *uri, GError **errp)
{
    MigrationState *s = &current_migration;
    MigUri parsed;

    if (migration_is_running()) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "There's a migration process in progress");
        return false;
    }
    if (runstate_get() == RUN_STATE_INMIGRATE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Guest is waiting for an incoming migration");
        return false;
    }
    if (system_dirty_log_active() || dirtyrate_uses_dirty_log()) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "dirty logging is in use (x-dirty-log or "
                    "calc-dirty-rate); wait for it or stop it first");
        return false;
    }
    if (!mig_uri_parse(uri, &parsed, errp)) {
        return false;
    }
    if (migrate_cap(MIGRATION_CAPABILITY_MULTIFD) &&
        parsed.kind != MIG_URI_TCP && parsed.kind != MIG_URI_UNIX) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd needs a tcp: or unix: migration URI, not '%s'",
                    uri);
        mig_uri_clear(&parsed);
        return false;
    }
    if (!migration_tls_check_outgoing(&parsed, errp)) {
        mig_uri_clear(&parsed);
        return false;
    }
    mig_uri_clear(&s->uri);
    s->uri = parsed;
    g_mutex_lock(&s->lock);
    g_clear_pointer(&s->error_desc, g_free);
    g_clear_pointer(&s->rp_error, g_free);
    s->rp_shut = false;
    s->rp_shut_value = 0;
    s->continue_req = false;
    g_mutex_unlock(&s->lock);
    atomic_store(&s->start_postcopy, false);
    atomic_store(&s->postcopy, false);
    /* drain an old cancel so the new connect is not abandoned */
    uint64_t drain;
    while (read(s->connect_cancel_fd, &drain, sizeof(drain)) > 0) {
    }
    ram_stats_reset();
    memset(&auto_converge, 0, sizeof(auto_converge));
    memset(&auto_converge_aim_state, 0, sizeof(auto_converge_aim_state));
    cpu_throttle_stall_reset();
    atomic_store(&s->start_ms, realtime_ms());
    atomic_store(&s->setup_ms, 0);
    atomic_store(&s->total_ms, 0);
    atomic_store(&s->downtime_ms, 0);
    /* As QEMU: the limit until something is measured. */
    atomic_store(&s->expected_downtime_ms, (int64_t)migrate_downtime_limit());
    atomic_store(&s->bandwidth_bps, 0);
    atomic_store(&s->mbps_x1000, 0);
    atomic_store(&s->switchover, false);
    migrate_force_status(s, MIGRATION_STATUS_SETUP);

    atomic_store(&s->thread_done, false);
    int r = pthread_create(&s->thread, NULL, migration_thread, s);
    if (r) {
        migrate_force_status(s, MIGRATION_STATUS_FAILED);
        return gw_error_errno(errp, r, "cannot create the migration thread");
    }
    s->thread_created = true;
    return true;
}

bool migrate_cancel(GError **errp)
{
    MigrationStatus st = migrate_status(&current_migration);

    /* as QEMU, by status: from postcopy-active on (the switch under way
     * included), the guest may be running on the destination */
    if (migration_in_postcopy() || st == MIGRATION_STATUS_POSTCOPY_ACTIVE ||
        st == MIGRATION_STATUS_POSTCOPY_PAUSED ||
        st == MIGRATION_STATUS_POSTCOPY_RECOVER) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "Postcopy migration in progress, cannot cancel.");
        return false;
    }
    migrate_cancel_force();
    return true;
}

void migrate_cancel_force(void)
{
    MigrationState *s = &current_migration;
    MigrationStatus st = migrate_status(s);

    while (status_is_running(st) && st != MIGRATION_STATUS_CANCELLING) {
        int expected = st;
        if (atomic_compare_exchange_strong(&s->status, &expected,
                                           MIGRATION_STATUS_CANCELLING)) {
            emit_migration_event(MIGRATION_STATUS_CANCELLING);
            break;
        }
        st = migrate_status(s);
    }
    multifd_send_shutdown();
    g_mutex_lock(&s->lock);
    if (s->chan) {
        mig_channel_shutdown(s->chan);
    }
    /* also abandons a connect that hangs (the main or a multifd channel) */
    if (migrate_status(s) == MIGRATION_STATUS_CANCELLING) {
        uint64_t one = 1;
        if (write(s->connect_cancel_fd, &one, sizeof(one)) < 0) {
            g_warning("migrate_cancel: %s", g_strerror(errno));
        }
    }
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    ram_postcopy_kick();
}

bool migrate_continue(const char *state, GError **errp)
{
    MigrationState *s = &current_migration;
    int want = migration_status_lookup(state);

    if (want < 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Parameter 'state' does not accept value '%s'", state);
        return false;
    }
    if (migrate_status(s) != (MigrationStatus)want) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Migration not in expected state: %s",
                    migration_status_name(migrate_status(s)));
        return false;
    }
    g_mutex_lock(&s->lock);
    s->continue_req = true;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    return true;
}
