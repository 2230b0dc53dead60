/*
 * QEMU_VM_COMMAND, both sides: the source's writers (return path, ping,
 * post-copy advise, discards, package, recovery) and the destination's
 * handling of each, with QEMU's order of post-copy states (advise,
 * discard, listen, running) and the listen thread that reads the main
 * stream while the package loads. The rest of the stream is savevm.c's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "godwit/ramblock.h"
#include "migration/channel.h"
#include "savevm-int.h"

/* u8 QEMU_VM_COMMAND, be16 command, be16 length, then the data. */
static void send_command(QEMUFile *f, uint16_t cmd, uint16_t len,
                         const uint8_t *data)
{
    qemu_put_byte(f, QEMU_VM_COMMAND);
    qemu_put_be16(f, cmd);
    qemu_put_be16(f, len);
    if (len) {
        qemu_put_buffer(f, data, len);
    }
}

static void put_be64_at(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    }
}

void qemu_savevm_send_open_return_path(QEMUFile *f)
{
    send_command(f, MIG_CMD_OPEN_RETURN_PATH, 0, NULL);
}

void qemu_savevm_send_ping(QEMUFile *f, uint32_t value)
{
    uint8_t buf[4] = {value >> 24, value >> 16, value >> 8, value};

    send_command(f, MIG_CMD_PING, sizeof(buf), buf);
}

void qemu_savevm_send_postcopy_advise(QEMUFile *f)
{
    uint8_t buf[16];

    /* every block has 4 KiB pages: the summary is that one size */
    put_be64_at(buf, GW_PAGE_SIZE);
    put_be64_at(buf + 8, GW_PAGE_SIZE);
    send_command(f, MIG_CMD_POSTCOPY_ADVISE, sizeof(buf), buf);
}

void qemu_savevm_send_postcopy_listen(QEMUFile *f)
{
    send_command(f, MIG_CMD_POSTCOPY_LISTEN, 0, NULL);
}

void qemu_savevm_send_postcopy_run(QEMUFile *f)
{
    send_command(f, MIG_CMD_POSTCOPY_RUN, 0, NULL);
}

void qemu_savevm_send_postcopy_ram_discard(QEMUFile *f, const char *block,
                                           int n, const uint64_t *start,
                                           const uint64_t *length)
{
    size_t nlen = strlen(block);
    uint8_t buf[3 + 255 + 16 * MIG_DISCARD_MAX_PAIRS];
    size_t len = 0;

    g_assert(nlen <= 255 && n > 0 && n <= MIG_DISCARD_MAX_PAIRS);
    buf[len++] = 0; /* version */
    buf[len++] = (uint8_t)nlen;
    memcpy(buf + len, block, nlen);
    len += nlen;
    buf[len++] = 0;
    for (int i = 0; i < n; i++) {
        put_be64_at(buf + len, start[i]);
        put_be64_at(buf + len + 8, length[i]);
        len += 16;
    }
    send_command(f, MIG_CMD_POSTCOPY_RAM_DISCARD, (uint16_t)len, buf);
}

void qemu_savevm_send_packaged(QEMUFile *f, const uint8_t *buf, size_t len)
{
    uint8_t hdr[4] = {len >> 24, len >> 16, len >> 8, len};

    g_assert(len <= MIG_PACKAGED_MAX);
    send_command(f, MIG_CMD_PACKAGED, sizeof(hdr), hdr);
    qemu_put_buffer(f, buf, len);
}

void qemu_savevm_send_recv_bitmap(QEMUFile *f, const char *block)
{
    uint8_t buf[256];
    size_t n = strlen(block);

    g_assert(n <= 255);
    buf[0] = (uint8_t)n;
    memcpy(buf + 1, block, n);
    send_command(f, MIG_CMD_RECV_BITMAP, (uint16_t)(n + 1), buf);
}

void qemu_savevm_send_postcopy_resume(QEMUFile *f)
{
    send_command(f, MIG_CMD_POSTCOPY_RESUME, 0, NULL);
}

static const char *const postcopy_incoming_names[] = {
    "none", "advise", "discard", "listen", "running",
};

/* ---- commands, destination side ----------------------------------------- */

static const LoadvmCommandOps *command_ops;

void qemu_loadvm_set_command_ops(const LoadvmCommandOps *ops)
{
    command_ops = ops;
}

static void *listen_thread(void *opaque)
{
    LoadContext *ctx = opaque;
    LoadContext lctx = {
        .map = ctx->map,
        .postcopy = POSTCOPY_INCOMING_RUNNING,
        .return_path = true,
        .main_f = ctx->main_f,
        .at_eof = true,
    };

    pthread_setname_np(pthread_self(), "mig/dst/listen");
    for (;;) {
        QEMUFile *nf;
        ctx->listen_ok = load_main(lctx.main_f, &lctx, &ctx->listen_err);
        if (ctx->listen_ok && command_ops &&
            command_ops->postcopy_listen_done) {
            ctx->listen_ok =
                command_ops->postcopy_listen_done(&ctx->listen_err);
        }
        /* a broken connection pauses; a malformed stream fails */
        if (ctx->listen_ok || !command_ops || !command_ops->postcopy_pause ||
            !qemu_file_get_error(lctx.main_f)) {
            break;
        }
        g_mutex_lock(ctx->main_lock);
        ctx->main_f = NULL; /* being closed: nobody else touches it */
        g_mutex_unlock(ctx->main_lock);
        nf = command_ops->postcopy_pause(lctx.main_f, ctx->listen_err->message);
        if (!nf) {
            break;
        }
        g_clear_error(&ctx->listen_err);
        g_mutex_lock(ctx->main_lock);
        lctx.main_f = ctx->main_f = nf;
        g_mutex_unlock(ctx->main_lock);
    }
    if (!ctx->listen_ok && command_ops->postcopy_abort) {
        /* nothing more arrives: let waiting threads go, the load fails */
        command_ops->postcopy_abort();
    }
    return NULL;
}

/* Joins the listen thread: its result, or false with *errp. */
static bool listen_join(LoadContext *ctx, GError **errp)
{
    pthread_join(ctx->listen_thread, NULL);
    ctx->listening = false;
    if (!ctx->listen_ok) {
        g_propagate_error(errp, g_steal_pointer(&ctx->listen_err));
        return false;
    }
    return true;
}

static bool command_wrong_state(QEMUFile *f, LoadContext *ctx, const char *cmd,
                                GError **errp)
{
    return load_fail(f, errp, "%s in wrong postcopy state (%s)", cmd,
                     postcopy_incoming_names[ctx->postcopy]);
}

static bool load_cmd_advise(QEMUFile *f, LoadContext *ctx, uint16_t len,
                            GError **errp)
{
    uint64_t summary, tps;

    if (ctx->postcopy != POSTCOPY_INCOMING_NONE) {
        return command_wrong_state(f, ctx, "CMD_POSTCOPY_ADVISE", errp);
    }
    if (len != 16) {
        /* 0 bytes: dirty bitmaps only, which godwit does not have */
        return load_fail(f, errp, "CMD_POSTCOPY_ADVISE invalid length (%u)",
                         len);
    }
    summary = qemu_get_be64(f);
    tps = qemu_get_be64(f);
    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "CMD_POSTCOPY_ADVISE");
    }
    if (!command_ops->postcopy_advise(summary, tps, errp)) {
        return false;
    }
    ctx->postcopy = POSTCOPY_INCOMING_ADVISE;
    return true;
}

static bool load_cmd_discard(QEMUFile *f, LoadContext *ctx, uint16_t len,
                             GError **errp)
{
    char block[256];
    uint8_t b;

    if (ctx->postcopy != POSTCOPY_INCOMING_ADVISE &&
        ctx->postcopy != POSTCOPY_INCOMING_DISCARD) {
        return command_wrong_state(f, ctx, "CMD_POSTCOPY_RAM_DISCARD", errp);
    }
    if (len < 1 + 1 + 1 + 1 + 2 * 8) {
        return load_fail(f, errp,
                         "CMD_POSTCOPY_RAM_DISCARD invalid length (%u)", len);
    }
    b = qemu_get_byte(f);
    if (b != 0) {
        return load_fail(f, errp,
                         "CMD_POSTCOPY_RAM_DISCARD invalid version (%u)", b);
    }
    qemu_get_counted_string(f, block);
    b = qemu_get_byte(f);
    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "CMD_POSTCOPY_RAM_DISCARD");
    }
    if (b != 0) {
        return load_fail(f, errp, "CMD_POSTCOPY_RAM_DISCARD missing nil (%u)",
                         b);
    }
    if (len < 3 + strlen(block) || (len - 3 - strlen(block)) % 16) {
        return load_fail(f, errp,
                         "CMD_POSTCOPY_RAM_DISCARD invalid length (%u)", len);
    }
    ctx->postcopy = POSTCOPY_INCOMING_DISCARD;
    for (size_t left = len - 3 - strlen(block); left; left -= 16) {
        uint64_t start = qemu_get_be64(f);
        uint64_t length = qemu_get_be64(f);
        if (qemu_file_get_error(f)) {
            return load_fail(f, errp, "CMD_POSTCOPY_RAM_DISCARD");
        }
        if (!command_ops->postcopy_discard(block, start, length, errp)) {
            return false;
        }
    }
    return true;
}

/*
 * A package's `len` bytes copied from `f` into a memory channel, rewound:
 * read a piece at a time, so that memory follows the bytes received
 * rather than the length claimed (a 9-byte command made us allocate up
 * to 16 MiB; tests/fuzz/regressions/). NULL with *errp set.
 */
static MigChannel *package_channel(QEMUFile *f, uint32_t len, GError **errp)
{
    g_autofree uint8_t *piece = g_malloc(MIN(len, 65536u) + 1);
    MigChannel *mem = mig_channel_new_memory(errp);
    uint32_t total = len;

    if (!mem) {
        return NULL;
    }
    while (len) {
        uint32_t n = MIN(len, 65536u);
        struct iovec iov = {piece, n};
        qemu_get_buffer(f, piece, n);
        if (qemu_file_get_error(f)) {
            mig_channel_close(mem, NULL);
            load_fail(f, errp, "reading a package of %u bytes", total);
            return NULL;
        }
        if (mig_channel_writev_all(mem, &iov, 1) != 1) {
            mig_channel_close(mem, NULL);
            load_fail(f, errp, "cannot buffer the package");
            return NULL;
        }
        len -= n;
    }
    if (!mig_channel_rewind(mem, errp)) {
        mig_channel_close(mem, NULL);
        return NULL;
    }
    return mem;
}

static bool load_cmd_packaged(QEMUFile *f, LoadContext *ctx, bool *quit,
                              GError **errp)
{
    uint32_t len = qemu_get_be32(f);
    MigChannel *mem;
    QEMUFile *pf;
    bool ok;

    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "CMD_PACKAGED");
    }
    if (ctx->in_package) {
        return load_fail(f, errp, "CMD_PACKAGED inside a package");
    }
    if (len > MIG_PACKAGED_MAX) {
        return load_fail(f, errp, "Unreasonably large packaged state: %u", len);
    }
    mem = package_channel(f, len, errp);
    if (!mem) {
        return false;
    }
    pf = qemu_file_new_input(mem);
    ctx->in_package = true;
    ok = load_main(pf, ctx, errp);
    ctx->in_package = false;
    if (ok && ctx->postcopy != POSTCOPY_INCOMING_RUNNING) {
        ok = load_fail(f, errp, "the package ended without CMD_POSTCOPY_RUN");
    }
    qemu_fclose(pf, NULL); /* closes the memory channel */
    if (ctx->listening) {
        if (!ok) {
            /* the listen thread must not wait for a stream we give up */
            g_mutex_lock(ctx->main_lock);
            if (ctx->main_f) {
                qemu_file_shutdown(ctx->main_f);
            }
            g_mutex_unlock(ctx->main_lock);
            listen_join(ctx, NULL);
            return false;
        }
        /* it read the main stream to its EOF */
        return listen_join(ctx, errp) && (*quit = true);
    }
    return ok;
}

static const char *const command_names[MIG_CMD_MAX] = {
    "INVALID",
    "OPEN_RETURN_PATH",
    "PING",
    "POSTCOPY_ADVISE",
    "POSTCOPY_LISTEN",
    "POSTCOPY_RUN",
    "POSTCOPY_RAM_DISCARD",
    "PACKAGED",
    "ENABLE_COLO",
    "POSTCOPY_RESUME",
    "RECV_BITMAP",
};

/* Whether the hook that `cmd` needs is set (unknown commands: yes, they
 * are refused by name below). */
static bool command_hook_present(uint16_t cmd)
{
    const LoadvmCommandOps *o = command_ops;

    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
        return o && o->open_return_path;
    case MIG_CMD_PING:
        return o && o->ping;
    case MIG_CMD_POSTCOPY_ADVISE:
        return o && o->postcopy_advise;
    case MIG_CMD_POSTCOPY_RAM_DISCARD:
        return o && o->postcopy_discard;
    case MIG_CMD_POSTCOPY_LISTEN:
        return o && o->postcopy_listen;
    case MIG_CMD_POSTCOPY_RUN:
        return o && o->postcopy_run;
    case MIG_CMD_RECV_BITMAP:
        return o && o->recv_bitmap;
    case MIG_CMD_POSTCOPY_RESUME:
        return o && o->postcopy_resume;
    default:
        return true;
    }
}

/* One QEMU_VM_COMMAND; *quit is set after POSTCOPY_RUN (package ends). */
bool load_command(QEMUFile *f, LoadContext *ctx, bool *quit, GError **errp)
{
    uint16_t cmd = qemu_get_be16(f);
    uint16_t len = qemu_get_be16(f);
    static const uint16_t fixed_len[MIG_CMD_MAX] = {
        [MIG_CMD_OPEN_RETURN_PATH] = 0, [MIG_CMD_PING] = 4,
        [MIG_CMD_POSTCOPY_LISTEN] = 0,  [MIG_CMD_POSTCOPY_RUN] = 0,
        [MIG_CMD_PACKAGED] = 4,         [MIG_CMD_POSTCOPY_RESUME] = 0,
    };

    if (qemu_file_get_error(f)) {
        return load_fail(f, errp, "reading a command");
    }
    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
    case MIG_CMD_PING:
    case MIG_CMD_POSTCOPY_LISTEN:
    case MIG_CMD_POSTCOPY_RUN:
    case MIG_CMD_PACKAGED:
    case MIG_CMD_POSTCOPY_RESUME:
        if (len != fixed_len[cmd]) {
            return load_fail(f, errp,
                             "command %u received with bad length "
                             "- expecting %u, received %u",
                             cmd, fixed_len[cmd], len);
        }
        break;
    default:
        break;
    }
    if (!command_hook_present(cmd)) {
        return load_fail(f, errp,
                         "migration command %s is not accepted "
                         "here",
                         cmd < MIG_CMD_MAX ? command_names[cmd] : "?");
    }
    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
        if (ctx->return_path) {
            return load_fail(f, errp,
                             "CMD_OPEN_RETURN_PATH called when RP "
                             "already open");
        }
        if (!command_ops->open_return_path(errp)) {
            return false;
        }
        ctx->return_path = true;
        return true;
    case MIG_CMD_PING: {
        uint32_t v = qemu_get_be32(f);
        if (qemu_file_get_error(f)) {
            return load_fail(f, errp, "CMD_PING");
        }
        if (!ctx->return_path) {
            return load_fail(f, errp,
                             "CMD_PING (0x%x) received with no "
                             "return path",
                             v);
        }
        return command_ops->ping(v, errp);
    }
    case MIG_CMD_POSTCOPY_ADVISE:
        return load_cmd_advise(f, ctx, len, errp);
    case MIG_CMD_POSTCOPY_RAM_DISCARD:
        return load_cmd_discard(f, ctx, len, errp);
    case MIG_CMD_POSTCOPY_LISTEN:
        if (ctx->postcopy != POSTCOPY_INCOMING_ADVISE &&
            ctx->postcopy != POSTCOPY_INCOMING_DISCARD) {
            return command_wrong_state(f, ctx, "CMD_POSTCOPY_LISTEN", errp);
        }
        if (!ctx->return_path) {
            return load_fail(f, errp,
                             "CMD_POSTCOPY_LISTEN without a return "
                             "path to ask for pages on");
        }
        if (!command_ops->postcopy_listen(errp)) {
            return false;
        }
        ctx->postcopy = POSTCOPY_INCOMING_LISTENING;
        if (ctx->in_package) {
            int e =
                pthread_create(&ctx->listen_thread, NULL, listen_thread, ctx);
            if (e) {
                return gw_error_errno(errp, e,
                                      "cannot create the post-copy "
                                      "listen thread");
            }
            ctx->listening = true;
        }
        return true;
    case MIG_CMD_POSTCOPY_RUN:
        if (ctx->postcopy != POSTCOPY_INCOMING_LISTENING) {
            return command_wrong_state(f, ctx, "CMD_POSTCOPY_RUN", errp);
        }
        /* every device section came before RUN: it must be complete */
        uint32_t instance;
        const char *missing = loadvm_first_missing_device(&instance);
        if (missing) {
            return load_fail(f, errp,
                             "CMD_POSTCOPY_RUN before section "
                             "'%s' instance %u",
                             missing, instance);
        }
        if (!command_ops->postcopy_run(errp)) {
            return false;
        }
        ctx->postcopy = POSTCOPY_INCOMING_RUNNING;
        *quit = true;
        return true;
    case MIG_CMD_PACKAGED:
        return load_cmd_packaged(f, ctx, quit, errp);
    case MIG_CMD_RECV_BITMAP: {
        char block[256];
        if (ctx->postcopy != POSTCOPY_INCOMING_RUNNING || ctx->in_package) {
            return command_wrong_state(f, ctx, "CMD_RECV_BITMAP", errp);
        }
        qemu_get_counted_string(f, block);
        if (qemu_file_get_error(f)) {
            return load_fail(f, errp, "CMD_RECV_BITMAP");
        }
        if (len != 1 + strlen(block)) {
            return load_fail(f, errp,
                             "CMD_RECV_BITMAP: invalid length %u "
                             "for block '%s'",
                             len, block);
        }
        return command_ops->recv_bitmap(block, errp);
    }
    case MIG_CMD_POSTCOPY_RESUME:
        if (ctx->postcopy != POSTCOPY_INCOMING_RUNNING || ctx->in_package) {
            return command_wrong_state(f, ctx, "CMD_POSTCOPY_RESUME", errp);
        }
        return command_ops->postcopy_resume(errp);
    default:
        return load_fail(f, errp,
                         "migration command %u is not supported by "
                         "godwit (len %u)",
                         cmd, len);
    }
}
