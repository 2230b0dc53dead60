/*
 * Outgoing post-copy and the return path: the switch (discards, then one
 * package with LISTEN, the devices and RUN), page requests read on the
 * return path thread, the end (EOF, then the destination's SHUT), and
 * recovery after a broken connection (postcopy-paused, migrate
 * resume=true, the received bitmap, RESUME_ACK). The loop that drives
 * them is migration.c's; docs/devel/postcopy.md has the whole picture.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "godwit/machine.h"
#include "godwit/runstate.h"
#include "migration-int.h"
#include "tls.h"
#include "migration/options.h"
#include "ram.h"
#include "return-path.h"
#include "savevm.h"

/* ---- the return path ----------------------------------------------------- */

static bool rp_req_pages(void *opaque, const char *block, uint64_t start,
                         uint32_t len, GError **errp)
{
    MigrationState *s = opaque;

    if (!atomic_load(&s->postcopy)) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "page request before post-copy began");
        return false;
    }
    return ram_postcopy_queue_request(block, start, len, errp);
}

static void rp_pong(void *opaque, uint32_t value)
{
}

static void rp_shut(void *opaque, uint32_t value)
{
    MigrationState *s = opaque;

    g_mutex_lock(&s->lock);
    s->rp_shut = true;
    s->rp_shut_value = value;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    ram_postcopy_kick();
}

static void rp_error(void *opaque, const char *msg)
{
    MigrationState *s = opaque;

    g_mutex_lock(&s->lock);
    if (!s->rp_error) {
        s->rp_error = g_strdup(msg);
    }
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    /* the main channel's peer is gone too: don't wait on it */
    g_mutex_lock(&s->lock);
    if (s->chan) {
        mig_channel_shutdown(s->chan);
    }
    g_mutex_unlock(&s->lock);
    ram_postcopy_kick();
}

static bool rp_recv_bitmap(void *opaque, const char *block, const uint8_t *map,
                           uint64_t size, GError **errp)
{
    MigrationState *s = opaque;

    if (migrate_status(s) != MIGRATION_STATUS_POSTCOPY_RECOVER) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "received bitmap outside of post-copy recovery");
        return false;
    }
    if (strcmp(block, current_machine->ram->idstr)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "ram_dirty_bitmap_reload: unknown ramblock '%s'", block);
        return false;
    }
    g_mutex_lock(&s->lock);
    g_clear_pointer(&s->recv_bitmap, g_bytes_unref);
    s->recv_bitmap = g_bytes_new(map, size);
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    return true;
}

static bool rp_resume_ack(void *opaque, uint32_t value, GError **errp)
{
    MigrationState *s = opaque;

    if (value != MIGRATION_RESUME_ACK_VALUE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "illegal resume_ack value %u", value);
        return false;
    }
    g_mutex_lock(&s->lock);
    s->resume_acked = true;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    return true;
}

static const RPReaderOps rp_ops = {
    .req_pages = rp_req_pages,
    .recv_bitmap = rp_recv_bitmap,
    .resume_ack = rp_resume_ack,
    .pong = rp_pong,
    .shut = rp_shut,
    .error = rp_error,
};

/* A failure the return path reported, as an error (false), or true. */
bool rp_check(MigrationState *s, GError **errp)
{
    bool ok;

    g_mutex_lock(&s->lock);
    ok = !s->rp_error;
    if (!ok) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC, s->rp_error);
    } else if (s->rp_shut && s->rp_shut_value) {
        ok = false;
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "the destination failed (return path SHUT %u)",
                    s->rp_shut_value);
    }
    g_mutex_unlock(&s->lock);
    return ok;
}

static bool main_channel_shut(MigrationState *s)
{
    bool shut;

    g_mutex_lock(&s->lock);
    shut = s->chan && mig_channel_is_shutdown(s->chan);
    g_mutex_unlock(&s->lock);
    return shut;
}

/*
 * At the end: the destination says it loaded everything (SHUT 0) or
 * why not. Nothing more comes once the main channel failed.
 */
bool rp_await_shut(MigrationState *s, QEMUFile *f, GError **errp)
{
    for (;;) {
        bool ended = rp_reader_wait(s->rp, 100);
        bool shut;

        if (!rp_check(s, errp)) {
            return false;
        }
        g_mutex_lock(&s->lock);
        shut = s->rp_shut;
        g_mutex_unlock(&s->lock);
        if (shut) {
            return true;
        }
        if (ended) {
            g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                                "return path closed before the destination "
                                "finished");
            return false;
        }
        if (migration_cancelling(s) && !atomic_load(&s->postcopy)) {
            g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC, "cancelled");
            return false;
        }
        /*
         * migrate-pause shuts the main channel down, which the return
         * path's own channel (a dup) does not see: a destination that
         * went silent would keep this wait, and the pause, from ending.
         */
        if (main_channel_shut(s)) {
            g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                                "migration stream shut down while waiting "
                                "for the destination to finish");
            return false;
        }
    }
}

/* ---- post-copy ------------------------------------------------------------
 */

/*
 * The switch: stop the guest, send the discards, then one package with
 * LISTEN, every device's state and RUN. The destination runs the guest
 * from there and asks for the pages it lacks.
 */
bool postcopy_start(MigrationState *s, QEMUFile *f, int64_t *stop_us,
                    GError **errp)
{
    MigChannel *mem;
    QEMUFile *pf;
    g_autofree uint8_t *buf = NULL;
    struct stat st;
    bool ok;

    migrate_set_status(s, MIGRATION_STATUS_ACTIVE,
                       MIGRATION_STATUS_POSTCOPY_ACTIVE);
    *stop_us = g_get_monotonic_time();
    s->vm_was_running = runstate_is_running();
    atomic_store(&s->switchover, true);
    vm_stop_force_state(RUN_STATE_FINISH_MIGRATE);
    if (!ram_postcopy_start(f, errp)) {
        return false;
    }
    qemu_savevm_send_ping(f, 2);

    mem = mig_channel_new_memory(errp);
    if (!mem) {
        return false;
    }
    pf = qemu_file_new_output(mem);
    qemu_savevm_send_postcopy_listen(pf);
    ok = qemu_savevm_state_complete_devices(pf, errp);
    qemu_savevm_send_postcopy_run(pf);
    qemu_fflush(pf);
    ok = ok && qemu_file_check(pf, errp);
    if (ok && fstat(mig_channel_fd(mem), &st) < 0) {
        ok = gw_error_errno(errp, errno, "post-copy package");
    }
    if (ok && (uint64_t)st.st_size > MIG_PACKAGED_MAX) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "post-copy package too large");
        ok = false;
    }
    if (ok) {
        buf = g_malloc(st.st_size ? st.st_size : 1);
        ok = pread(mig_channel_fd(mem), buf, st.st_size, 0) == st.st_size ||
             gw_error_errno(errp, errno, "reading the post-copy package");
    }
    qemu_fclose(pf, NULL);
    if (!ok) {
        return false;
    }
    /*
     * The point of no return: from the first byte of the package on, the
     * destination may run the guest and ask for pages (even before this
     * thread is back from the send), and this side must never resume.
     */
    ram_postcopy_set_preempt(s->preempt_file);
    atomic_store(&s->postcopy, true);
    qemu_savevm_send_packaged(f, buf, st.st_size);
    qemu_fflush(f);
    if (!qemu_file_check(f, errp)) {
        return false;
    }
    /* as QEMU: the downtime of post-copy ends when the package is out */
    atomic_store(&s->downtime_ms, (g_get_monotonic_time() - *stop_us) / 1000);
    return true;
}

/*
 * Waits (lock held) until `done` says so, the return path failed or the
 * migration is abandoned; false then, with *errp.
 */
static bool recover_wait(MigrationState *s, bool (*done)(MigrationState *),
                         const char *what, GError **errp)
{
    bool ok;

    g_mutex_lock(&s->lock);
    while (!done(s) && !s->rp_error && !migration_cancelling(s)) {
        g_cond_wait_until(&s->cond, &s->lock, g_get_monotonic_time() + 100000);
    }
    ok = done(s);
    if (!ok) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "%s: %s", what,
                    s->rp_error ? s->rp_error : "abandoned");
    }
    g_mutex_unlock(&s->lock);
    return ok;
}

static bool have_bitmap(MigrationState *s)
{
    return s->recv_bitmap != NULL;
}

static bool have_ack(MigrationState *s)
{
    return s->resume_acked;
}

bool postcopy_preempt_connect(MigrationState *s, GError **errp)
{
    MigChannel *c;

    if (!migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_PREEMPT)) {
        return true;
    }
    c = migration_tls_connect(&s->uri, s->connect_cancel_fd, errp);
    if (!c) {
        g_prefix_error(errp, "postcopy-preempt channel: ");
        return false;
    }
    g_mutex_lock(&s->lock);
    s->preempt_file = qemu_file_new_output(c);
    g_mutex_unlock(&s->lock);
    return true;
}

void postcopy_preempt_close(MigrationState *s)
{
    QEMUFile *pf;

    ram_postcopy_set_preempt(NULL);
    g_mutex_lock(&s->lock);
    pf = s->preempt_file;
    s->preempt_file = NULL;
    g_mutex_unlock(&s->lock);
    if (pf) {
        qemu_fclose(pf, NULL);
    }
}

/* Drops the broken connection (stream and return path). */
static void postcopy_drop_connection(MigrationState *s, QEMUFile **fp)
{
    rp_reader_stop(s->rp);
    s->rp = NULL;
    postcopy_preempt_close(s);
    g_mutex_lock(&s->lock);
    s->chan = NULL;
    g_clear_pointer(&s->rp_error, g_free);
    g_clear_pointer(&s->recv_bitmap, g_bytes_unref);
    s->rp_shut = false;
    s->resume_acked = false;
    g_mutex_unlock(&s->lock);
    if (*fp) {
        qemu_fclose(*fp, NULL);
        *fp = NULL;
    }
}

/* One attempt to reconnect and resynchronise; false with *errp. */
static bool postcopy_resume_once(MigrationState *s, QEMUFile **fp,
                                 GError **errp)
{
    MigChannel *chan =
        migration_tls_connect(&s->uri, s->connect_cancel_fd, errp);
    g_autoptr(GBytes) map = NULL;

    if (!chan) {
        return false;
    }
    g_mutex_lock(&s->lock);
    s->chan = chan;
    g_mutex_unlock(&s->lock);
    *fp = qemu_file_new_output(chan);
    s->rp = rp_reader_start(chan, &rp_ops, s, errp);
    if (!s->rp || !postcopy_preempt_connect(s, errp)) {
        return false;
    }
    ram_postcopy_set_preempt(s->preempt_file);
    qemu_savevm_send_recv_bitmap(*fp, current_machine->ram->idstr);
    qemu_fflush(*fp);
    if (!qemu_file_check(*fp, errp) ||
        !recover_wait(s, have_bitmap, "waiting for the received bitmap",
                      errp)) {
        return false;
    }
    g_mutex_lock(&s->lock);
    map = g_steal_pointer(&s->recv_bitmap);
    g_mutex_unlock(&s->lock);
    gsize size;
    const uint8_t *bits = g_bytes_get_data(map, &size);
    if (!ram_postcopy_resume_bitmap(current_machine->ram->idstr, bits, size,
                                    errp)) {
        return false;
    }
    qemu_savevm_send_postcopy_resume(*fp);
    qemu_fflush(*fp);
    return qemu_file_check(*fp, errp) &&
           recover_wait(s, have_ack, "waiting for RESUME_ACK", errp);
}

/*
 * The connection broke after the switch: neither side alone has the VM,
 * so nothing is dropped. Both wait in postcopy-paused until the operator
 * gives the destination a new address (migrate-recover) and us
 * (migrate resume=true); then the destination's received bitmap says
 * what to send again. False (with *errp) only when abandoned (quit).
 */
bool postcopy_pause(MigrationState *s, QEMUFile **fp, GError **errp)
{
    fprintf(stderr, "godwit: post-copy paused: %s\n",
            *errp ? (*errp)->message : "connection lost");
    g_clear_error(errp);
    postcopy_drop_connection(s, fp);
    migrate_force_status(s, MIGRATION_STATUS_POSTCOPY_PAUSED);
    for (;;) {
        g_autoptr(GError) err = NULL;
        bool req;

        g_mutex_lock(&s->lock);
        while (!s->resume_req && !migration_cancelling(s)) {
            g_cond_wait(&s->cond, &s->lock);
        }
        req = s->resume_req;
        s->resume_req = false;
        g_mutex_unlock(&s->lock);
        if (!req) {
            g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                                "post-copy abandoned while paused: the "
                                "guest is lost");
            return false;
        }
        migrate_force_status(s, MIGRATION_STATUS_POSTCOPY_RECOVER);
        if (postcopy_resume_once(s, fp, &err)) {
            migrate_force_status(s, MIGRATION_STATUS_POSTCOPY_ACTIVE);
            return true;
        }
        fprintf(stderr, "godwit: post-copy recovery failed: %s\n",
                err->message);
        postcopy_drop_connection(s, fp);
        migrate_force_status(s, MIGRATION_STATUS_POSTCOPY_PAUSED);
    }
}

/* Everything sent: END, EOF, then the destination's word that it is done. */
bool postcopy_complete(MigrationState *s, QEMUFile *f, GError **errp)
{
    /* the destination reads the preempt channel to its end before EOF
     * on the main stream lets it unregister the RAM */
    postcopy_preempt_close(s);
    if (!qemu_savevm_state_complete_postcopy(f, errp)) {
        return false;
    }
    ram_postcopy_release_sent(); /* all flushed with EOF */
    return rp_await_shut(s, f, errp);
}

bool migrate_start_postcopy(GError **errp)
{
    MigrationState *s = migrate_get_current();

    if (!migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM)) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "Enable postcopy with migrate_set_capability "
                            "before the start of migration");
        return false;
    }
    if (migrate_status(s) == MIGRATION_STATUS_NONE) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "Postcopy must be started after migration has "
                            "been started");
        return false;
    }
    /* not an error once the migration ended: that would race with it */
    atomic_store(&s->start_postcopy, true);
    return true;
}

bool postcopy_parse_recovery_uri(const char *uri, MigUri *out, GError **errp)
{
    if (!mig_uri_parse(uri, out, errp)) {
        return false;
    }
    if (out->kind != MIG_URI_TCP && out->kind != MIG_URI_UNIX) {
        mig_uri_clear(out);
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "post-copy recovery needs a tcp: or unix: URI, not '%s'",
                    uri);
        return false;
    }
    return true;
}

bool migrate_resume(const char *uri, GError **errp)
{
    MigrationState *s = migrate_get_current();
    MigUri parsed;

    if (migrate_status(s) != MIGRATION_STATUS_POSTCOPY_PAUSED) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "Cannot resume if there is no paused migration");
        return false;
    }
    if (!postcopy_parse_recovery_uri(uri, &parsed, errp)) {
        return false;
    }
    g_mutex_lock(&s->lock);
    if (s->resume_req) {
        g_mutex_unlock(&s->lock);
        mig_uri_clear(&parsed);
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "a resume is already under way");
        return false;
    }
    /* the thread waits in postcopy_pause and reads it after waking */
    mig_uri_clear(&s->uri);
    s->uri = parsed;
    s->resume_req = true;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    return true;
}

bool migrate_pause(GError **errp)
{
    MigrationState *s = migrate_get_current();

    if (migrate_status(s) != MIGRATION_STATUS_POSTCOPY_ACTIVE) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "migrate-pause is currently only supported "
                            "during postcopy-active state");
        return false;
    }
    g_mutex_lock(&s->lock);
    if (s->chan) {
        mig_channel_shutdown(s->chan);
    }
    g_mutex_unlock(&s->lock);
    ram_postcopy_kick();
    return true;
}

bool migration_rp_open(MigrationState *s, MigChannel *chan, GError **errp)
{
    s->rp = rp_reader_start(chan, &rp_ops, s, errp);
    return s->rp != NULL;
}
