/*
 * multifd, destination side: a thread per channel reads packets, checks
 * them and places their pages in guest RAM; at a SYNC packet it stops
 * until the incoming thread, at the section's EOS on the main channel,
 * has seen every channel reach its SYNC packet and lets them all go on.
 * The format is in multifd.h, the design in docs/devel/multifd.md; the
 * source side is multifd.c.
 *
 * A channel's failure fails the migration: the channel shuts the main
 * channel down so that the incoming thread stops reading it, and the
 * failure is the one reported.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "compression.h"
#include "migration-int.h"
#include "multifd.h"
#include "ram.h"

typedef struct MultiFDRecvChannel {
    MultiFDRecvParams p;
    pthread_t thread;
    bool thread_created;
    uint8_t *packet;
    MultiFDPayload pl;
    uint64_t offsets[MULTIFD_PACKET_PAGES];

    /* Protected by mr.lock. */
    bool at_sync; /* stopped at a SYNC packet */
    bool ended;   /* the source closed it */
    GCond cond;
} MultiFDRecvChannel;

static struct {
    GMutex lock;
    GCond sync; /* a channel reached a SYNC packet, ended or failed */
    MultiFDRecvChannel *ch;
    int nr;
    const MultiFDMethods *ops;
    uint32_t flag;
    RAMBlock *rb;
    unsigned long *touched;
    QEMUFile *main;
    bool active;
    _Atomic bool populate_ok;
    /* Protected by lock. */
    bool quit;
    GError *err;
    int first_ended; /* a channel the source closed (-1: none) */
} mr = {.first_ended = -1};

bool multifd_recv_active(void)
{
    return mr.active;
}

/*
 * Fresh destination RAM: populates each run of untouched pages of the
 * packet at once (a fault per page costs ~2 us on a nested host).
 */
static void multifd_populate(MultiFDPayload *pl)
{
    uint32_t i = 0;

    if (atomic_load(&mr.rb->preallocated)) {
        return; /* -mem-prealloc: nothing to populate */
    }
    while (atomic_load(&mr.populate_ok) && i < pl->n) {
        uint64_t page = (uint64_t)(pl->host[i] - mr.rb->host) >> GW_PAGE_SHIFT;
        uint32_t j = i + 1;
        if (test_bit(page, mr.touched)) {
            i++;
            continue;
        }
        while (j < pl->n && pl->host[j] == pl->host[j - 1] + GW_PAGE_SIZE &&
               !test_bit(page + (j - i), mr.touched)) {
            j++;
        }
        if (j - i > 1 && !ram_block_populate(mr.rb, page, j - i)) {
            atomic_store(&mr.populate_ok, false);
        }
        i = j;
    }
}

/* One packet; 1 placed, 0 the source closed the channel, -1 error. */
static int multifd_recv_packet(MultiFDRecvChannel *ch, bool *sync,
                               GError **errp)
{
    MultiFDPacketHdr h;
    MultiFDPayload *pl = &ch->pl;
    struct iovec iov = {ch->packet, MULTIFD_HDR_SIZE};
    uint32_t n;
    int r = mig_channel_readv_all(ch->p.c, &iov, 1);

    if (r == 0) {
        return 0;
    }
    if (r < 0) {
        gw_error_errno(errp, -r, "multifd: channel %d: reading a packet",
                       ch->p.id);
        return -1;
    }
    if (!multifd_packet_decode_header(ch->packet, &h, MULTIFD_PACKET_PAGES,
                                      errp)) {
        return -1;
    }
    if ((h.flags & ~MULTIFD_FLAG_SYNC) != mr.flag) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: packet flags 0x%x, expected 0x%x (is "
                    "multifd-compression %s on both sides?)",
                    h.flags & ~MULTIFD_FLAG_SYNC, mr.flag,
                    mig_compression_name(ch->p.compression));
        return -1;
    }
    n = h.normal_pages + h.zero_pages;
    if (n) {
        iov.iov_base = ch->packet + MULTIFD_HDR_SIZE;
        iov.iov_len = 8 * (size_t)n;
        r = mig_channel_readv_all(ch->p.c, &iov, 1);
        if (r <= 0) {
            gw_error_errno(errp, r == 0 ? ENODATA : -r,
                           "multifd: channel %d: reading a packet", ch->p.id);
            return -1;
        }
        if (strcmp(h.ramblock, mr.rb->idstr)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "multifd: unknown ram block %s", h.ramblock);
            return -1;
        }
        if (!multifd_packet_decode_offsets(ch->packet + MULTIFD_HDR_SIZE, n,
                                           mr.rb->used_length, ch->offsets,
                                           errp)) {
            return -1;
        }
    }
    pl->n = h.normal_pages;
    pl->payload_size = h.next_packet_size;
    for (uint32_t i = 0; i < pl->n; i++) {
        pl->host[i] = mr.rb->host + ch->offsets[i];
    }
    multifd_populate(pl);
    if (!mr.ops->recv_pages(&ch->p, pl, errp)) {
        return -1;
    }
    for (uint32_t i = 0; i < pl->n; i++) {
        set_bit_atomic(ch->offsets[i] >> GW_PAGE_SHIFT, mr.touched);
    }
    /* zero pages: fresh destination RAM is zero already */
    for (uint32_t i = pl->n; i < n; i++) {
        uint64_t page = ch->offsets[i] >> GW_PAGE_SHIFT;
        if (test_bit(page, mr.touched)) {
            memset(mr.rb->host + ch->offsets[i], 0, GW_PAGE_SIZE);
        }
    }
    *sync = h.flags & MULTIFD_FLAG_SYNC;
    return 1;
}

static void *multifd_recv_thread(void *opaque)
{
    MultiFDRecvChannel *ch = opaque;
    GError *err = NULL;
    char name[16];

    snprintf(name, sizeof(name), "multifdrecv_%d", ch->p.id);
    pthread_setname_np(pthread_self(), name);
    for (;;) {
        bool sync = false;
        int r = multifd_recv_packet(ch, &sync, &err);
        if (r <= 0) {
            break;
        }
        if (sync) {
            g_mutex_lock(&mr.lock);
            ch->at_sync = true;
            g_cond_broadcast(&mr.sync);
            while (ch->at_sync && !mr.quit) {
                g_cond_wait(&ch->cond, &mr.lock);
            }
            bool quit = mr.quit;
            g_mutex_unlock(&mr.lock);
            if (quit) {
                break;
            }
        }
    }
    g_mutex_lock(&mr.lock);
    ch->ended = true;
    if (!err && !mr.quit && mr.first_ended < 0) {
        mr.first_ended = ch->p.id;
    }
    if (err && !mr.quit) {
        if (!mr.err) {
            mr.err = g_error_copy(err);
        }
        /* the incoming thread may be reading the main channel: stop it */
        qemu_file_shutdown(mr.main);
    }
    g_cond_broadcast(&mr.sync);
    g_mutex_unlock(&mr.lock);
    g_clear_error(&err);
    return NULL;
}

bool multifd_recv_setup(MigChannel **chans, int n, RAMBlock *rb,
                        unsigned long *touched, QEMUFile *main, GError **errp)
{
    MigCompression comp = migrate_multifd_compression();

    mig_compress_register_all();
    mr.ops = multifd_methods(comp);
    mr.flag = multifd_compression_flag(comp);
    mr.rb = rb;
    mr.touched = touched;
    mr.main = main;
    mr.quit = false;
    mr.first_ended = -1;
    g_clear_error(&mr.err);
    atomic_store(&mr.populate_ok, true);
    mr.ch = g_new0(MultiFDRecvChannel, n);
    mr.nr = n;
    mr.active = true;
    for (int i = 0; i < n; i++) {
        MultiFDRecvChannel *ch = &mr.ch[i];
        ch->p.id = i;
        ch->p.compression = comp;
        ch->p.c = chans[i];
        chans[i] = NULL;
        ch->packet = g_malloc(MULTIFD_HDR_SIZE + 8 * MULTIFD_PACKET_PAGES);
        g_cond_init(&ch->cond);
    }
    for (int i = 0; i < n; i++) {
        MultiFDRecvChannel *ch = &mr.ch[i];
        if (!mr.ops->recv_setup(&ch->p, errp)) {
            return false;
        }
        int r = pthread_create(&ch->thread, NULL, multifd_recv_thread, ch);
        if (r) {
            return gw_error_errno(errp, r, "multifd: cannot create a thread");
        }
        ch->thread_created = true;
    }
    return true;
}

bool multifd_recv_sync_main(GError **errp)
{
    if (!mr.active) {
        return true;
    }
    g_mutex_lock(&mr.lock);
    for (;;) {
        bool all = true;
        int ended = -1;

        if (mr.err) {
            g_propagate_error(errp, g_error_copy(mr.err));
            g_mutex_unlock(&mr.lock);
            return false;
        }
        for (int i = 0; i < mr.nr; i++) {
            all &= mr.ch[i].at_sync;
            if (!mr.ch[i].at_sync && mr.ch[i].ended) {
                ended = i;
            }
        }
        if (ended >= 0) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "multifd: channel %d was closed by the source before "
                        "the end of the migration",
                        ended);
            g_mutex_unlock(&mr.lock);
            return false;
        }
        if (all) {
            break;
        }
        g_cond_wait(&mr.sync, &mr.lock);
    }
    for (int i = 0; i < mr.nr; i++) {
        mr.ch[i].at_sync = false;
        g_cond_signal(&mr.ch[i].cond);
    }
    g_mutex_unlock(&mr.lock);
    return true;
}

char *multifd_recv_error(void)
{
    char *msg = NULL;

    g_mutex_lock(&mr.lock);
    if (mr.err) {
        msg = g_strdup(mr.err->message);
    }
    if (!msg && mr.first_ended >= 0) {
        msg = g_strdup_printf("multifd: channel %d was closed by the source "
                              "before the migration completed",
                              mr.first_ended);
    }
    g_mutex_unlock(&mr.lock);
    return msg;
}

void multifd_recv_cleanup(void)
{
    if (!mr.active) {
        return;
    }
    g_mutex_lock(&mr.lock);
    mr.quit = true;
    for (int i = 0; i < mr.nr; i++) {
        g_cond_signal(&mr.ch[i].cond);
        if (mr.ch[i].p.c) {
            mig_channel_shutdown(mr.ch[i].p.c);
        }
    }
    g_mutex_unlock(&mr.lock);
    for (int i = 0; i < mr.nr; i++) {
        MultiFDRecvChannel *ch = &mr.ch[i];
        if (ch->thread_created) {
            pthread_join(ch->thread, NULL);
        }
        mr.ops->recv_cleanup(&ch->p);
        mig_channel_close(ch->p.c, NULL);
        g_free(ch->packet);
        g_cond_clear(&ch->cond);
    }
    g_clear_pointer(&mr.ch, g_free);
    mr.nr = 0; /* mr.err stays for multifd_recv_error() */
    mr.main = NULL;
    mr.active = false;
}
