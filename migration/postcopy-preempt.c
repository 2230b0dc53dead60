/* The destination's postcopy-preempt channel: see postcopy-preempt.h. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "godwit/machine.h"
#include "migration/qemu-file.h"
#include "postcopy-preempt.h"
#include "ram.h"

static _Atomic uint64_t preempt_pages;

uint64_t preempt_pages_placed(void)
{
    return atomic_load(&preempt_pages);
}

struct PreemptReader {
    QEMUFile *f;
    pthread_t thread;
    bool ok;
    GError *err;
};

/* One record; *eof at the clean end of the channel. */
static bool preempt_read_one(PreemptReader *r, char *block, bool *eof,
                             GError **errp)
{
    uint8_t page[GW_PAGE_SIZE];
    const void *data = NULL;
    uint64_t hdr, flags, addr;

    if (qemu_file_at_eof(r->f)) {
        *eof = true;
        return true;
    }
    hdr = qemu_get_be64(r->f);
    flags = hdr & ~GW_PAGE_MASK;
    addr = hdr & GW_PAGE_MASK;
    if (!qemu_file_check(r->f, errp)) {
        return false;
    }
    if (flags == RAM_SAVE_FLAG_EOS && !addr) {
        return true;
    }
    if (!(flags & RAM_SAVE_FLAG_CONTINUE)) {
        qemu_get_counted_string(r->f, block);
    }
    if ((flags & ~RAM_SAVE_FLAG_CONTINUE) != RAM_SAVE_FLAG_ZERO &&
        (flags & ~RAM_SAVE_FLAG_CONTINUE) != RAM_SAVE_FLAG_PAGE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "postcopy-preempt: unexpected record flags 0x%" PRIx64,
                    flags);
        return false;
    }
    if (flags & RAM_SAVE_FLAG_ZERO) {
        uint8_t ch = qemu_get_byte(r->f);
        if (ch) {
            memset(page, ch, sizeof(page));
            data = page;
        }
    } else {
        qemu_get_buffer(r->f, page, sizeof(page));
        data = page;
    }
    if (!qemu_file_check(r->f, errp)) {
        return false;
    }
    if (!block[0] || strcmp(block, current_machine->ram->idstr)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "postcopy-preempt: Unknown ramblock \"%s\"", block);
        return false;
    }
    atomic_fetch_add(&preempt_pages, 1);
    return ram_load_postcopy_place(addr, data, errp);
}

static void *preempt_thread(void *opaque)
{
    PreemptReader *r = opaque;
    char block[256] = "";
    bool eof = false;

    pthread_setname_np(pthread_self(), "mig/dst/preempt");
    r->ok = true;
    while (r->ok && !eof) {
        r->ok = preempt_read_one(r, block, &eof, &r->err);
    }
    if (!r->ok) {
        g_prefix_error(&r->err, "postcopy-preempt channel: ");
    }
    return NULL;
}

PreemptReader *preempt_reader_start(MigChannel *chan, GError **errp)
{
    PreemptReader *r = g_new0(PreemptReader, 1);
    int e;

    r->f = qemu_file_new_input(chan);
    e = pthread_create(&r->thread, NULL, preempt_thread, r);
    if (e) {
        qemu_fclose(r->f, NULL);
        g_free(r);
        gw_error_errno(errp, e, "cannot create the postcopy-preempt thread");
        return NULL;
    }
    return r;
}

static bool preempt_reader_join_free(PreemptReader *r, GError **errp)
{
    bool ok;

    pthread_join(r->thread, NULL);
    ok = r->ok;
    if (!ok) {
        g_propagate_error(errp, g_steal_pointer(&r->err));
    }
    g_clear_error(&r->err);
    qemu_fclose(r->f, NULL);
    g_free(r);
    return ok;
}

bool preempt_reader_finish(PreemptReader *r, GError **errp)
{
    return preempt_reader_join_free(r, errp);
}

void preempt_reader_stop(PreemptReader *r)
{
    if (r) {
        qemu_file_shutdown(r->f);
        preempt_reader_join_free(r, NULL);
    }
}
