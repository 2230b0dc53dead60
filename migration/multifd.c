/*
 * multifd, source side: the channels, their threads and the sync points
 * (the format is in multifd.h, the design in docs/devel/multifd.md, the
 * destination side in multifd-recv.c).
 *
 * The migration thread batches dirty pages (at most MULTIFD_PACKET_PAGES
 * of one block) and hands each full batch to the next idle channel; the
 * channel's thread sorts zero pages out, has its method prepare the
 * payload, and writes header, offsets and payload with one writev. At
 * every RAM section's EOS the migration thread sends a SYNC packet on
 * every channel and waits until each is written.
 *
 * Any channel's failure fails the migration: the migration thread sees it
 * at its next hand-off or sync.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "channel-zerocopy.h"
#include "compression.h"
#include "migration-int.h"
#include "tls.h"
#include "multifd.h"
#include "ram.h"
#include "zero-page.h"

const MultiFDMethods *multifd_methods(MigCompression c)
{
    return c == MIG_COMPRESSION_NONE ? &multifd_nocomp_ops
                                     : &multifd_compress_ops;
}

typedef struct MultiFDSendChannel {
    MultiFDSendParams p;
    pthread_t thread;
    bool thread_created;

    /*
     * The job: written by the migration thread while !busy, read by the
     * channel thread while busy.
     */
    bool sync;
    RAMBlock *block;
    uint32_t num;
    uint64_t offset[MULTIFD_PACKET_PAGES];

    /* Protected by ms.lock. */
    bool busy;
    bool quit;
    GCond cond;

    /* The channel thread's. */
    uint8_t *packet; /* header and offsets */
    MultiFDPayload pl;
    MigZeroCopy *zc; /* zero-copy-send: the pages' sends */
} MultiFDSendChannel;

static struct {
    GMutex lock;
    GCond done; /* a channel finished a job, or failed */
    MultiFDSendChannel *ch;
    int nr; /* channels created (under lock) */
    const MultiFDMethods *ops;
    uint32_t flag; /* compression flag of every packet */
    bool active;

    /* The migration thread's batch. */
    RAMBlock *block;
    uint32_t num;
    uint64_t offset[MULTIFD_PACKET_PAGES];
    int next; /* round-robin start */

    _Atomic uint64_t packet_num;
    _Atomic uint64_t bytes;
    /* Protected by lock. */
    bool failed;
    char *error;
} ms;

bool multifd_send_active(void)
{
    return ms.active;
}

uint64_t multifd_bytes_transferred(void)
{
    return atomic_load(&ms.bytes);
}

/*
 * Channel thread, zero-copy-send: the header and offsets go copied, as
 * ch->packet is reused at once; the pages go with MSG_ZEROCOPY, straight
 * from guest RAM. A SYNC packet ends with a flush: when the migration
 * thread moves on from its sync point the kernel holds no guest page of
 * this channel any more. A flush in which the kernel copied after all
 * counts as a missed zero copy (QEMU counts per channel too).
 */
static bool multifd_send_zero_copy(MultiFDSendChannel *ch, struct iovec *iov,
                                   int iovcnt, GError **errp)
{
    bool copied = false;
    int r = mig_channel_writev_all(ch->p.c, iov, 1);

    if (r < 0) {
        return gw_error_errno(errp, -r, "writing");
    }
    if (!mig_zerocopy_writev_all(ch->zc, iov + 1, iovcnt - 1, errp)) {
        return false;
    }
    if (ch->sync) {
        if (!mig_zerocopy_flush(ch->zc, &copied, errp)) {
            return false;
        }
        if (copied) {
            atomic_fetch_add(&ram_stats.dirty_sync_missed_zero_copy, 1);
        }
    }
    return true;
}

/* Channel thread: one packet, zero pages sorted out. */
static bool multifd_send_packet(MultiFDSendChannel *ch, GError **errp)
{
    MultiFDPayload *pl = &ch->pl;
    uint64_t normal_off[MULTIFD_PACKET_PAGES], zero_off[MULTIFD_PACKET_PAGES];
    uint64_t offsets[MULTIFD_PACKET_PAGES];
    struct iovec iov[MULTIFD_PACKET_PAGES + 2];
    uint32_t zero = 0;
    MultiFDPacketHdr h = {
        .magic = MULTIFD_MAGIC,
        .version = MULTIFD_VERSION,
        .flags = ms.flag | (ch->sync ? MULTIFD_FLAG_SYNC : 0),
        .pages_alloc = MULTIFD_PACKET_PAGES,
    };
    size_t hlen;
    int r;

    pl->n = 0;
    for (uint32_t i = 0; i < ch->num; i++) {
        uint8_t *host = ch->block->host + ch->offset[i];
        if (buffer_is_zero(host, GW_PAGE_SIZE)) {
            zero_off[zero++] = ch->offset[i];
        } else {
            normal_off[pl->n] = ch->offset[i];
            pl->host[pl->n++] = host;
        }
    }
    if (!ms.ops->send_prepare(&ch->p, pl, errp)) {
        return false;
    }
    h.normal_pages = pl->n;
    h.zero_pages = zero;
    h.next_packet_size = pl->payload_size;
    h.packet_num = atomic_fetch_add(&ms.packet_num, 1);
    if (ch->num) {
        g_strlcpy(h.ramblock, ch->block->idstr, sizeof(h.ramblock));
    }
    memcpy(offsets, normal_off, pl->n * sizeof(uint64_t));
    memcpy(offsets + pl->n, zero_off, zero * sizeof(uint64_t));
    hlen = multifd_packet_encode(&h, offsets, ch->packet);

    iov[0].iov_base = ch->packet;
    iov[0].iov_len = hlen;
    memcpy(iov + 1, pl->iov, (size_t)pl->iovcnt * sizeof(struct iovec));
    if (ch->zc) {
        if (!multifd_send_zero_copy(ch, iov, 1 + pl->iovcnt, errp)) {
            g_prefix_error(errp, "multifd: channel %d: ", ch->p.id);
            return false;
        }
    } else {
        r = mig_channel_writev_all(ch->p.c, iov, 1 + pl->iovcnt);
        if (r < 0) {
            return gw_error_errno(errp, -r, "multifd: channel %d: writing",
                                  ch->p.id);
        }
    }

    uint64_t bytes = hlen + pl->payload_size;
    atomic_fetch_add(&ms.bytes, bytes);
    ram_account(bytes);
    atomic_fetch_add(&ram_stats.normal, pl->n);
    atomic_fetch_add(&ram_stats.normal_bytes, (uint64_t)pl->n * GW_PAGE_SIZE);
    atomic_fetch_add(&ram_stats.duplicate, zero);
    return true;
}

static void *multifd_send_thread(void *opaque)
{
    MultiFDSendChannel *ch = opaque;
    char name[16];

    snprintf(name, sizeof(name), "multifdsend_%d", ch->p.id);
    pthread_setname_np(pthread_self(), name);
    g_mutex_lock(&ms.lock);
    for (;;) {
        GError *err = NULL;
        bool ok;

        while (!ch->busy && !ch->quit) {
            g_cond_wait(&ch->cond, &ms.lock);
        }
        if (!ch->busy) {
            break;
        }
        g_mutex_unlock(&ms.lock);
        ok = multifd_send_packet(ch, &err);
        g_mutex_lock(&ms.lock);
        ch->busy = false;
        if (!ok) {
            if (!ms.error) {
                ms.error = g_strdup(err->message);
            }
            ms.failed = true;
            g_error_free(err);
        }
        g_cond_broadcast(&ms.done);
        if (!ok) {
            break;
        }
    }
    g_mutex_unlock(&ms.lock);
    return NULL;
}

/* Under ms.lock: a failure, copied into the stream's error. */
static bool multifd_send_check_failed(QEMUFile *f)
{
    if (!ms.failed) {
        return false;
    }
    qemu_file_set_error(f, -EIO, "%s", ms.error);
    return true;
}

/* Waits under ms.lock for channel ch to be idle; false once failed. */
static bool multifd_send_wait_idle(QEMUFile *f, MultiFDSendChannel *ch)
{
    while (ch->busy && !ms.failed) {
        g_cond_wait(&ms.done, &ms.lock);
    }
    return !multifd_send_check_failed(f);
}

/* Hands the batch to the next idle channel. */
static bool multifd_send_pages(QEMUFile *f)
{
    MultiFDSendChannel *ch = NULL;

    g_mutex_lock(&ms.lock);
    while (!ch) {
        if (multifd_send_check_failed(f)) {
            g_mutex_unlock(&ms.lock);
            return false;
        }
        for (int k = 0; k < ms.nr; k++) {
            int i = (ms.next + k) % ms.nr;
            if (!ms.ch[i].busy) {
                ch = &ms.ch[i];
                ms.next = (i + 1) % ms.nr;
                break;
            }
        }
        if (!ch) {
            g_cond_wait(&ms.done, &ms.lock);
        }
    }
    ch->sync = false;
    ch->block = ms.block;
    ch->num = ms.num;
    memcpy(ch->offset, ms.offset, ms.num * sizeof(uint64_t));
    ch->busy = true;
    g_cond_signal(&ch->cond);
    g_mutex_unlock(&ms.lock);
    ms.num = 0;
    return true;
}

bool multifd_queue_page(QEMUFile *f, RAMBlock *rb, uint64_t offset)
{
    if (ms.num && ms.block != rb && !multifd_send_pages(f)) {
        return false;
    }
    ms.block = rb;
    ms.offset[ms.num++] = offset;
    if (ms.num == MULTIFD_PACKET_PAGES) {
        return multifd_send_pages(f);
    }
    return true;
}

bool multifd_send_sync_main(QEMUFile *f)
{
    bool ok = true;

    if (!ms.active) {
        return true;
    }
    if (ms.num && !multifd_send_pages(f)) {
        return false;
    }
    g_mutex_lock(&ms.lock);
    for (int i = 0; ok && i < ms.nr; i++) {
        MultiFDSendChannel *ch = &ms.ch[i];
        ok = multifd_send_wait_idle(f, ch);
        if (ok) {
            ch->sync = true;
            ch->num = 0;
            ch->block = NULL;
            ch->busy = true;
            g_cond_signal(&ch->cond);
        }
    }
    /* every SYNC packet written: errors surface here, not later */
    for (int i = 0; ok && i < ms.nr; i++) {
        ok = multifd_send_wait_idle(f, &ms.ch[i]);
    }
    g_mutex_unlock(&ms.lock);
    return ok;
}

static int multifd_level(MigCompression c)
{
    switch (c) {
    case MIG_COMPRESSION_ZLIB:
        return migrate_multifd_zlib_level();
    case MIG_COMPRESSION_ZSTD:
        return migrate_multifd_zstd_level();
    case MIG_COMPRESSION_NONE:
        return 0;
    default:
        return mig_compress_ops(c)->level_default; /* lz4: no parameter */
    }
}

bool multifd_send_setup(const MigUri *uri, int cancel_fd, GError **errp)
{
    int nr = migrate_multifd_channels();
    MigCompression comp = migrate_multifd_compression();

    atomic_store(&ms.bytes, 0);
    atomic_store(&ms.packet_num, 0);
    ms.failed = false;
    g_clear_pointer(&ms.error, g_free);
    if (!migrate_cap(MIGRATION_CAPABILITY_MULTIFD)) {
        return true;
    }
    mig_compress_register_all();
    ms.ops = multifd_methods(comp);
    ms.flag = multifd_compression_flag(comp);
    ms.num = 0;
    ms.next = 0;
    ms.ch = g_new0(MultiFDSendChannel, nr);
    ms.active = true; /* cleanup tears down whatever exists */
    for (int i = 0; i < nr; i++) {
        MultiFDSendChannel *ch = &ms.ch[i];
        uint8_t init[MULTIFD_INIT_SIZE];
        MultiFDInit in = {.magic = MULTIFD_MAGIC,
                          .version = MULTIFD_VERSION,
                          .id = (uint8_t)i};
        struct iovec iov = {init, sizeof(init)};
        MigChannel *c = migration_tls_connect(uri, cancel_fd, errp);
        int r;

        if (!c) {
            g_prefix_error(errp, "multifd: channel %d: ", i);
            return false;
        }
        ch->p.id = i;
        ch->p.compression = comp;
        ch->p.level = multifd_level(comp);
        g_cond_init(&ch->cond);
        ch->packet = g_malloc(MULTIFD_HDR_SIZE + 8 * MULTIFD_PACKET_PAGES);
        g_mutex_lock(&ms.lock);
        ch->p.c = c;
        ms.nr = i + 1;
        g_mutex_unlock(&ms.lock);

        if (migrate_cap(MIGRATION_CAPABILITY_ZERO_COPY_SEND)) {
            ch->zc = mig_zerocopy_new(c, errp);
            if (!ch->zc) {
                g_prefix_error(errp, "multifd: channel %d: ", i);
                return false;
            }
        }

        multifd_init_encode(&in, init);
        r = mig_channel_writev_all(c, &iov, 1);
        if (r < 0) {
            return gw_error_errno(errp, -r,
                                  "multifd: channel %d: sending "
                                  "the initial packet",
                                  i);
        }
        if (!ms.ops->send_setup(&ch->p, errp)) {
            return false;
        }
        r = pthread_create(&ch->thread, NULL, multifd_send_thread, ch);
        if (r) {
            return gw_error_errno(errp, r, "multifd: cannot create a thread");
        }
        ch->thread_created = true;
    }
    return true;
}

void multifd_send_shutdown(void)
{
    g_mutex_lock(&ms.lock);
    for (int i = 0; i < ms.nr; i++) {
        if (ms.ch[i].p.c) {
            mig_channel_shutdown(ms.ch[i].p.c);
        }
    }
    g_mutex_unlock(&ms.lock);
}

bool multifd_send_break_channel(int id, GError **errp)
{
    bool ok = false;

    g_mutex_lock(&ms.lock);
    if (ms.active && id >= 0 && id < ms.nr && ms.ch[id].p.c) {
        /* a real connection failure: both ends see the socket go */
        ok = shutdown(mig_channel_fd(ms.ch[id].p.c), SHUT_RDWR) == 0;
        if (!ok) {
            gw_error_errno(errp, errno, "multifd: channel %d", id);
        }
    } else {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: no channel %d in an outgoing migration", id);
    }
    g_mutex_unlock(&ms.lock);
    return ok;
}

/*
 * Migration thread, the channel thread joined: waits for the channel's
 * last zero-copy sends before it is closed. After a completed migration
 * the last sync flushed already. A channel shut down (cancel, failure)
 * cannot be waited on: the kernel then lets go of the pages when it frees
 * the socket's buffers; guest RAM stays mapped, so that is safe.
 */
static void multifd_zero_copy_cleanup(MultiFDSendChannel *ch)
{
    GError *err = NULL;

    if (!ch->zc) {
        return;
    }
    if (!mig_channel_is_shutdown(ch->p.c) &&
        !mig_zerocopy_flush(ch->zc, NULL, &err)) {
        fprintf(stderr, "godwit: multifd: channel %d: %s\n", ch->p.id,
                err->message);
        g_error_free(err);
    }
    g_clear_pointer(&ch->zc, mig_zerocopy_free);
}

void multifd_send_cleanup(void)
{
    int nr;

    if (!ms.active) {
        return;
    }
    g_mutex_lock(&ms.lock);
    nr = ms.nr;
    for (int i = 0; i < nr; i++) {
        ms.ch[i].quit = true;
        g_cond_signal(&ms.ch[i].cond);
    }
    g_mutex_unlock(&ms.lock);
    for (int i = 0; i < nr; i++) {
        MultiFDSendChannel *ch = &ms.ch[i];
        MigChannel *c;

        if (ch->thread_created) {
            pthread_join(ch->thread, NULL);
        }
        ms.ops->send_cleanup(&ch->p);
        multifd_zero_copy_cleanup(ch);
        g_mutex_lock(&ms.lock);
        c = ch->p.c;
        ch->p.c = NULL;
        g_mutex_unlock(&ms.lock);
        mig_channel_close(c, NULL);
        g_free(ch->packet);
        g_cond_clear(&ch->cond);
    }
    g_mutex_lock(&ms.lock);
    g_clear_pointer(&ms.ch, g_free);
    ms.nr = 0;
    g_mutex_unlock(&ms.lock);
    ms.active = false;
}
