/*
 * Incoming migration (destination): -incoming URI, -incoming defer +
 * migrate-incoming, the incoming thread that accepts the one connection
 * and loads the stream, and what follows: run (or stay paused with -S) on
 * success; print the reason and exit non-zero on failure, as QEMU does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "godwit/hw.h"
#include "godwit/machine.h"
#include "godwit/monitor.h"
#include "godwit/runstate.h"
#include "migration-int.h"
#include "migration/options.h"
#include "multifd.h"
#include "postcopy-preempt.h"
#include "ram.h"
#include "return-path.h"
#include "savevm.h"
#include "tls.h"

static MigrationIncomingState incoming = {
    .status = MIGRATION_STATUS_NONE,
};

MigrationIncomingState *migration_incoming_get_current(void)
{
    return &incoming;
}

bool migration_incoming_active(void)
{
    return incoming.started;
}

bool migration_incoming_loading(void)
{
    return atomic_load(&incoming.status) != MIGRATION_STATUS_NONE &&
           atomic_load(&incoming.status) != MIGRATION_STATUS_SETUP;
}

static void incoming_set_status(MigrationStatus st)
{
    atomic_store(&incoming.status, st);
    if (migrate_cap(MIGRATION_CAPABILITY_EVENTS)) {
        JsonObject *d = json_object_new();
        json_object_set_string_member(d, "status", migration_status_name(st));
        monitor_emit_event("MIGRATION", d);
    }
}

/*
 * Main loop: the loaded guest runs (or stays paused with -S). It sees a
 * new generation: payloads check themselves.
 */
static void incoming_start_guest(void)
{
    hypercall_bump_generation();
    if (runstate_autostart()) {
        vm_start();
    } else {
        runstate_set(RUN_STATE_PAUSED);
    }
}

/* Main loop, after the incoming thread ended. */
static gboolean incoming_done_bh(gpointer opaque)
{
    bool ok = GPOINTER_TO_INT(opaque);

    if (incoming.thread_created) {
        pthread_join(incoming.thread, NULL);
        incoming.thread_created = false;
    }
    if (!ok) {
        fprintf(stderr, "godwit: load of migration failed: %s\n",
                incoming.error_desc);
        qemu_system_exit_request(1, "migration-failed");
        return G_SOURCE_REMOVE;
    }
    if (atomic_load(&incoming.postcopy_ran)) {
        return G_SOURCE_REMOVE; /* the guest runs since POSTCOPY_RUN */
    }
    incoming_start_guest();
    return G_SOURCE_REMOVE;
}

/* ---- what the stream's commands ask (incoming thread) ------------------- */

static bool cmd_open_return_path(GError **errp)
{
    incoming.rp = rp_writer_open(incoming.chan, errp);
    return incoming.rp != NULL;
}

static bool cmd_ping(uint32_t value, GError **errp)
{
    if (!rp_send_pong(incoming.rp, value)) {
        g_autofree char *e = rp_writer_error(incoming.rp);
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC, e);
        return false;
    }
    return true;
}

static bool cmd_postcopy_advise(uint64_t summary, uint64_t tps, GError **errp)
{
    g_autoptr(GError) err = NULL;
    PostcopyRamCaps caps;

    if (!migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM)) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "RAM postcopy is disabled but have 16 byte "
                            "advise");
        return false;
    }
    if (!postcopy_ram_probe(&caps, &err)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Postcopy is not supported: %s", err->message);
        return false;
    }
    if (!caps.kernel_faults && current_machine->accel->name &&
        !strcmp(current_machine->accel->name, "kvm")) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "Postcopy is not supported: this process may "
                            "only open a user-mode userfaultfd, and KVM "
                            "reaches guest RAM in kernel mode");
        return false;
    }
    if (summary != GW_PAGE_SIZE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Postcopy needs matching RAM page sizes (s=%" PRIx64
                    " d=%" PRIx64 ")",
                    summary, (uint64_t)GW_PAGE_SIZE);
        return false;
    }
    if (tps != GW_PAGE_SIZE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Postcopy needs matching target page sizes (s=%d d=%d)",
                    (int)tps, (int)GW_PAGE_SIZE);
        return false;
    }
    return true;
}

/*
 * Fault thread: a page a vCPU (or anyone) waits for. While paused there
 * is no way back: the request is re-sent after recovery.
 */
static void postcopy_request(void *opaque, uint64_t offset, uint64_t len)
{
    g_mutex_lock(&incoming.rp_lock);
    /* a failed return path breaks the main channel: the load pauses */
    if (incoming.rp &&
        !rp_send_req_pages(incoming.rp, current_machine->ram->idstr, offset,
                           (uint32_t)len)) {
        mig_channel_shutdown(incoming.chan);
    }
    g_mutex_unlock(&incoming.rp_lock);
}

/*
 * The main connection: its first bytes must come in time, except with
 * postcopy-preempt, where the source opens (and, with TLS, handshakes)
 * the preempt connection before it sends anything on the main one. A new
 * stream starts with its magic; a post-copy recovery goes on with a
 * command. Not for exec/file/fd, which have nothing to peek at.
 */
static MigChannel *main_accept(MigListener *l, bool recovery, GError **errp)
{
    g_autofree char *address = mig_listener_address(l);
    MigIncomingExpect e = {
        .first_bytes =
            address && !migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_PREEMPT),
        .magic = {recovery ? 0 : QEMU_VM_FILE_MAGIC, 0},
    };

    return mig_accept_checked(l, migration_incoming_check, &e, errp);
}

/*
 * postcopy-preempt: the source's second connection, on listener `l`,
 * accepted right after the main one (the source opens it then and, with
 * TLS, waits for its handshake); its reader starts at LISTEN.
 */
static bool preempt_accept(MigListener *l, GError **errp)
{
    if (!migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_PREEMPT)) {
        return true;
    }
    /* it was opened with the main channel: it is there, or never comes */
    if (!l || !mig_listener_wait(l, 5000)) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "postcopy-preempt: the source did not open the "
                            "preempt channel (postcopy-preempt must be on at "
                            "both ends)");
        return false;
    }
    incoming.preempt_chan =
        mig_accept_checked(l, migration_incoming_check, NULL, errp);
    return incoming.preempt_chan != NULL;
}

static bool preempt_start(GError **errp)
{
    MigChannel *c = incoming.preempt_chan;

    if (!c) {
        return true;
    }
    incoming.preempt_chan = NULL;
    incoming.preempt = preempt_reader_start(c, errp);
    return incoming.preempt != NULL;
}

/*
 * Listen thread: the connection broke after the switch. The guest keeps
 * running on what it has (vCPUs needing a missing page wait); everything
 * received stays. Wait for migrate-recover, accept the source again.
 */
static QEMUFile *cmd_postcopy_pause(QEMUFile *old, const char *why)
{
    MigListener *l = NULL;
    MigChannel *chan = NULL;
    RPWriter *rp;

    preempt_reader_stop(incoming.preempt);
    incoming.preempt = NULL;
    g_mutex_lock(&incoming.rp_lock);
    rp = incoming.rp;
    incoming.rp = NULL;
    incoming.chan = NULL;
    incoming.file = NULL;
    g_free(incoming.error_desc);
    incoming.error_desc = g_strdup(why);
    g_mutex_unlock(&incoming.rp_lock);
    if (rp) {
        rp_writer_shutdown(rp);
        rp_writer_close(rp);
    }
    qemu_fclose(old, NULL);
    fprintf(stderr, "godwit: post-copy paused: %s\n", why);
    incoming_set_status(MIGRATION_STATUS_POSTCOPY_PAUSED);
    for (;;) {
        g_autoptr(GError) err = NULL;

        g_mutex_lock(&incoming.rp_lock);
        while (!incoming.recover_listener && !incoming.quitting) {
            g_cond_wait(&incoming.recover_cond, &incoming.rp_lock);
        }
        l = incoming.recover_listener;
        g_mutex_unlock(&incoming.rp_lock);
        if (!l) {
            return NULL; /* quitting */
        }
        chan = main_accept(l, true, &err);
        if (chan && (!preempt_accept(l, &err) || !preempt_start(&err))) {
            mig_channel_close(chan, NULL);
            chan = NULL;
        }
        g_mutex_lock(&incoming.rp_lock);
        incoming.recover_listener = NULL;
        g_mutex_unlock(&incoming.rp_lock);
        mig_listener_close(l);
        if (!chan) {
            fprintf(stderr, "godwit: migrate-recover: %s\n", err->message);
            if (incoming.quitting) {
                return NULL;
            }
            continue; /* still paused: another migrate-recover */
        }
        rp = rp_writer_open(chan, &err);
        if (!rp) {
            mig_channel_close(chan, NULL);
            continue;
        }
        break;
    }
    g_mutex_lock(&incoming.rp_lock);
    incoming.chan = chan;
    incoming.rp = rp;
    incoming.file = qemu_file_new_input(chan);
    g_clear_pointer(&incoming.error_desc, g_free);
    g_mutex_unlock(&incoming.rp_lock);
    incoming_set_status(MIGRATION_STATUS_POSTCOPY_RECOVER);
    return incoming.file;
}

static bool cmd_recv_bitmap(const char *block, GError **errp)
{
    const unsigned long *map;
    bool ok;

    if (atomic_load(&incoming.status) != MIGRATION_STATUS_POSTCOPY_RECOVER) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "loadvm_handle_recv_bitmap: can only receive "
                            "bitmap in postcopy-recover state");
        return false;
    }
    if (strcmp(block, current_machine->ram->idstr)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "loadvm_handle_recv_bitmap: block '%s' not found", block);
        return false;
    }
    map = ram_load_postcopy_received_map();
    g_mutex_lock(&incoming.rp_lock);
    ok = incoming.rp && map &&
         rp_send_recv_bitmap(incoming.rp, block, map,
                             ram_block_pages(current_machine->ram));
    g_mutex_unlock(&incoming.rp_lock);
    if (!ok) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "return path: cannot send the received bitmap");
    }
    return ok;
}

static bool cmd_postcopy_resume(GError **errp)
{
    bool ok;

    if (atomic_load(&incoming.status) != MIGRATION_STATUS_POSTCOPY_RECOVER) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "loadvm_postcopy_handle_resume: illegal resume "
                            "received");
        return false;
    }
    g_mutex_lock(&incoming.rp_lock);
    ok = incoming.rp &&
         rp_send_resume_ack(incoming.rp, MIGRATION_RESUME_ACK_VALUE);
    g_mutex_unlock(&incoming.rp_lock);
    if (!ok) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "return path: cannot acknowledge the resume");
        return false;
    }
    incoming_set_status(MIGRATION_STATUS_POSTCOPY_ACTIVE);
    /* requests that died with the old connection */
    ram_load_postcopy_rerequest();
    return true;
}

bool migration_incoming_recover(const char *uri, GError **errp)
{
    MigUri parsed;
    MigListener *l;

    if (atomic_load(&incoming.status) != MIGRATION_STATUS_POSTCOPY_PAUSED) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "Migrate recover can only be run when postcopy "
                            "is paused.");
        return false;
    }
    g_mutex_lock(&incoming.rp_lock);
    bool busy = incoming.recover_listener != NULL;
    g_mutex_unlock(&incoming.rp_lock);
    if (busy) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "Migrate recovery is triggered already");
        return false;
    }
    if (!postcopy_parse_recovery_uri(uri, &parsed, errp)) {
        return false;
    }
    l = mig_listen(&parsed, errp);
    mig_uri_clear(&parsed);
    if (!l) {
        return false;
    }
    if (migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_PREEMPT) &&
        !mig_listener_set_connections(l, 2, errp)) {
        mig_listener_close(l);
        return false;
    }
    g_mutex_lock(&incoming.rp_lock);
    g_free(incoming.address);
    incoming.address = mig_listener_address(l);
    incoming.recover_listener = l;
    g_cond_broadcast(&incoming.recover_cond);
    g_mutex_unlock(&incoming.rp_lock);
    return true;
}

bool migration_incoming_pause(GError **errp)
{
    if (atomic_load(&incoming.status) != MIGRATION_STATUS_POSTCOPY_ACTIVE) {
        g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "migrate-pause is currently only supported "
                            "during postcopy-active state");
        return false;
    }
    g_mutex_lock(&incoming.rp_lock);
    if (incoming.chan) {
        mig_channel_shutdown(incoming.chan);
    }
    g_mutex_unlock(&incoming.rp_lock);
    return true;
}

void migration_incoming_shutdown(void)
{
    g_mutex_lock(&incoming.rp_lock);
    incoming.quitting = true;
    if (incoming.recover_listener) {
        mig_listener_shutdown(incoming.recover_listener);
    }
    if (incoming.chan && atomic_load(&incoming.postcopy_ran)) {
        mig_channel_shutdown(incoming.chan);
    }
    g_cond_broadcast(&incoming.recover_cond);
    g_mutex_unlock(&incoming.rp_lock);
}

static bool cmd_postcopy_listen(GError **errp)
{
    if (!ram_load_postcopy_listen(postcopy_request, NULL, errp)) {
        return false;
    }
    bool ok = preempt_start(errp);
    if (!ok) {
        return false;
    }
    incoming_set_status(MIGRATION_STATUS_POSTCOPY_ACTIVE);
    return true;
}

static gboolean postcopy_run_bh(gpointer opaque)
{
    incoming_start_guest();
    return G_SOURCE_REMOVE;
}

static bool cmd_postcopy_run(GError **errp)
{
    atomic_store(&incoming.postcopy_ran, true);
    g_idle_add(postcopy_run_bh, NULL);
    return true;
}

/* Listen thread: the main stream ended; the preempt channel ends too. */
static bool cmd_postcopy_listen_done(GError **errp)
{
    PreemptReader *r = incoming.preempt;

    incoming.preempt = NULL;
    return !r || preempt_reader_finish(r, errp);
}

/* Listen thread failed: no page comes any more; let every waiter go. */
static void cmd_postcopy_abort(void)
{
    preempt_reader_stop(incoming.preempt);
    incoming.preempt = NULL;
    ram_load_postcopy_end();
}

static const LoadvmCommandOps incoming_command_ops = {
    .open_return_path = cmd_open_return_path,
    .ping = cmd_ping,
    .postcopy_advise = cmd_postcopy_advise,
    .postcopy_discard = ram_load_postcopy_discard,
    .postcopy_listen = cmd_postcopy_listen,
    .postcopy_run = cmd_postcopy_run,
    .postcopy_abort = cmd_postcopy_abort,
    .postcopy_listen_done = cmd_postcopy_listen_done,
    .postcopy_pause = cmd_postcopy_pause,
    .recv_bitmap = cmd_recv_bitmap,
    .postcopy_resume = cmd_postcopy_resume,
};

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/*
 * multifd: accepts the main channel and the multifd channels in whatever
 * order they come, telling them apart by their first bytes (the stream's
 * magic, or a multifd initial packet naming its channel).
 */
static MigChannel *incoming_accept_multifd(MigChannel **chans, int n,
                                           GError **errp)
{
    MigListener *l = incoming.listener;
    /* a stray peer's bytes are refused there, not taken for a channel */
    MigIncomingExpect expect = {true, {QEMU_VM_FILE_MAGIC, MULTIFD_MAGIC}};
    MigChannel *main_chan = NULL;
    int got = 0;

    while (!main_chan || got < n) {
        MigChannel *c =
            mig_accept_checked(l, migration_incoming_check, &expect, errp);
        uint8_t head[MULTIFD_INIT_SIZE];
        struct iovec iov = {head, sizeof(head)};
        MultiFDInit in;
        int r;

        if (!c) {
            goto fail;
        }
        r = mig_channel_peek(c, head, 4);
        if (r <= 0) {
            gw_error_errno(errp, r == 0 ? ENODATA : -r,
                           "incoming migration: a connection closed before "
                           "saying what it is");
            mig_channel_close(c, NULL);
            goto fail;
        }
        if (be32_at(head) == QEMU_VM_FILE_MAGIC && !main_chan) {
            main_chan = c;
            /* a source that gives up now must not leave us waiting */
            mig_listener_watch_hangup(l, main_chan);
            continue;
        }
        if (be32_at(head) != MULTIFD_MAGIC) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "incoming migration: unexpected connection (first "
                        "bytes 0x%08x)",
                        be32_at(head));
            mig_channel_close(c, NULL);
            goto fail;
        }
        r = mig_channel_readv_all(c, &iov, 1);
        if (r <= 0) {
            gw_error_errno(errp, r == 0 ? ENODATA : -r,
                           "multifd: reading the initial packet");
            mig_channel_close(c, NULL);
            goto fail;
        }
        if (!multifd_init_decode(head, &in, errp)) {
            mig_channel_close(c, NULL);
            goto fail;
        }
        if (in.id >= n || chans[in.id]) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        in.id >= n ? "multifd: received channel id %u is "
                                     "greater than number of channels %d "
                                     "(is multifd-channels the same on "
                                     "both sides?)"
                                   : "multifd: received id '%u' already "
                                     "setup (of %d channels)",
                        in.id, n);
            mig_channel_close(c, NULL);
            goto fail;
        }
        chans[in.id] = c;
        got++;
    }
    mig_listener_watch_hangup(l, NULL);
    return main_chan;

fail:
    mig_listener_watch_hangup(l, NULL);
    mig_channel_close(main_chan, NULL);
    for (int i = 0; i < n; i++) {
        mig_channel_close(chans[i], NULL);
        chans[i] = NULL;
    }
    return NULL;
}

static void *incoming_thread(void *opaque)
{
    g_autoptr(GError) err = NULL;
    int n = migrate_cap(MIGRATION_CAPABILITY_MULTIFD)
                ? migrate_multifd_channels()
                : 0;
    g_autofree MigChannel **chans = g_new0(MigChannel *, n + 1);
    MigChannel *chan;
    bool ok = false;

    pthread_setname_np(pthread_self(), "mig/dst/main");
    chan = n ? incoming_accept_multifd(chans, n, &err)
             : main_accept(incoming.listener, false, &err);
    if (chan && !n && !preempt_accept(incoming.listener, &err)) {
        mig_channel_close(chan, NULL);
        chan = NULL;
    }
    /* every connection of this migration is in: nobody else gets in */
    mig_listener_close(incoming.listener);
    incoming.listener = NULL;
    if (chan) {
        QEMUFile *f = qemu_file_new_input(chan);
        g_mutex_lock(&incoming.rp_lock);
        incoming.chan = chan;
        incoming.file = f;
        g_mutex_unlock(&incoming.rp_lock);
        incoming_set_status(MIGRATION_STATUS_ACTIVE);
        qemu_loadvm_set_command_ops(&incoming_command_ops);
        if (!n || multifd_recv_setup(chans, n, current_machine->ram,
                                     ram_load_touched_map(), f, &err)) {
            ok = qemu_loadvm_state(f, &err);
        }
        g_mutex_lock(&incoming.rp_lock);
        RPWriter *rp = incoming.rp;
        incoming.rp = NULL;
        g_mutex_unlock(&incoming.rp_lock);
        if (rp) {
            /* the source waits for this word: 0 = everything loaded */
            if (!rp_send_shut(rp, ok ? 0 : 1) && ok) {
                g_autofree char *e = rp_writer_error(rp);
                g_set_error_literal(&err, GW_ERROR, GW_ERROR_GENERIC, e);
                ok = false;
            }
            rp_writer_close(rp);
        }
        multifd_recv_cleanup();
        g_autofree char *mf_err = multifd_recv_error();
        if (!ok && mf_err) {
            /* the channel that failed says why, not the main channel */
            g_clear_error(&err);
            g_set_error_literal(&err, GW_ERROR, GW_ERROR_GENERIC, mf_err);
        }
        if (incoming.listener) {
            mig_listener_close(incoming.listener);
            incoming.listener = NULL;
        }
        preempt_reader_stop(incoming.preempt);
        incoming.preempt = NULL;
        mig_channel_close(incoming.preempt_chan, NULL);
        incoming.preempt_chan = NULL;
        /* A complete load stands even if the stream's end was untidy.
         * (After a recovery the stream is another one.) */
        g_mutex_lock(&incoming.rp_lock);
        f = incoming.file;
        incoming.file = NULL;
        incoming.chan = NULL;
        g_mutex_unlock(&incoming.rp_lock);
        if (f) {
            qemu_fclose(f, NULL);
        }
    }
    atomic_store(&incoming.total_ms,
                 g_get_real_time() / 1000 - atomic_load(&incoming.start_ms));
    if (!ok) {
        incoming.error_desc = g_strdup(err ? err->message : "unknown error");
    }
    incoming_set_status(ok ? MIGRATION_STATUS_COMPLETED
                           : MIGRATION_STATUS_FAILED);
    g_idle_add(incoming_done_bh, GINT_TO_POINTER(ok));
    return NULL;
}

bool migration_incoming_start(const char *uri, GError **errp)
{
    MigUri parsed;

    if (runstate_get() != RUN_STATE_INMIGRATE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "'-incoming' was not specified on the command line");
        return false;
    }
    if (incoming.started) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "The incoming migration has already been started");
        return false;
    }
    if (!strcmp(uri, "defer")) {
        incoming.deferred = true;
        return true;
    }
    if (!mig_uri_parse(uri, &parsed, errp)) {
        return false;
    }
    incoming.listener = mig_listen(&parsed, errp);
    mig_uri_clear(&parsed);
    if (!incoming.listener) {
        return false;
    }
    unsigned conns = migrate_cap(MIGRATION_CAPABILITY_MULTIFD)
                         ? migrate_multifd_channels() + 1u
                     : migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_PREEMPT) ? 2u
                                                                          : 1u;
    if (conns > 1 &&
        !mig_listener_set_connections(incoming.listener, conns, errp)) {
        mig_listener_close(incoming.listener);
        incoming.listener = NULL;
        return false;
    }
    incoming.address = mig_listener_address(incoming.listener);
    /*
     * Everything comes from the stream: start from all-zero RAM (kept
     * allocated with -mem-prealloc, where it is zero already unless a
     * kernel was loaded).
     */
    if (!current_machine->mem_prealloc || current_machine->kernel) {
        ram_block_discard_range(current_machine->ram, 0,
                                current_machine->ram->used_length);
    }
    if (current_machine->mem_prealloc && current_machine->kernel &&
        !ram_block_prealloc(current_machine->ram, g_get_num_processors(),
                            errp)) {
        return false;
    }
    incoming.started = true;
    atomic_store(&incoming.start_ms, g_get_real_time() / 1000);
    incoming_set_status(MIGRATION_STATUS_SETUP);
    int r = pthread_create(&incoming.thread, NULL, incoming_thread, NULL);
    if (r) {
        mig_listener_close(incoming.listener);
        incoming.listener = NULL;
        incoming.started = false;
        return gw_error_errno(errp, r, "cannot create the incoming thread");
    }
    incoming.thread_created = true;
    return true;
}
