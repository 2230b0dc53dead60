/*
 * RAM migration, destination side: parses and validates the "ram"
 * section's records and places pages into guest RAM. Every offset, block
 * name, length and flag is checked before anything is written; a bad
 * record fails the load with an error naming it.
 */
#include <errno.h>
#include <string.h>

#include "migration/options.h"
#include "multifd.h"
#include "postcopy-ram.h"
#include "ram.h"
#include "xbzrle.h"

#define RAM_LOAD_FLAGS                                                         \
    (RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_MEM_SIZE | RAM_SAVE_FLAG_PAGE |        \
     RAM_SAVE_FLAG_EOS | RAM_SAVE_FLAG_CONTINUE | RAM_SAVE_FLAG_XBZRLE |       \
     RAM_SAVE_FLAG_COMPRESS_PAGE)
#define ENCODING_FLAG_XBZRLE 0x01

/*
 * Fresh destination RAM is populated ahead of the pages arriving, this
 * many pages at a time: one MADV_POPULATE_WRITE instead of a page fault
 * per page (page faults are expensive here, ~2 us each on a nested host).
 * A direct read, which may land in RAM_DIRECT_READ_PAGES at once, has the
 * window topped up first. (Direct reads faulted half the pages of a 1 GiB
 * bulk pass in one by one, 129,000 page faults, until they asked for
 * this too: now about 90.)
 */
#define RAM_LOAD_POPULATE_PAGES 64

/* Owned by the incoming thread. */
typedef struct RAMLoadState {
    Machine *m;
    RAMBlock *last;  /* block of the previous record */
    bool setup_seen; /* MEM_SIZE and the block list arrived */
    bool started;    /* the first section arrived */
    /*
     * Pages of pc.ram written by the load, by this thread and by multifd
     * channels alike: set with set_bit_atomic.
     */
    unsigned long *touched;
    uint64_t pop_start; /* [pop_start, pop_end): populated ahead */
    uint64_t pop_end;
    bool populate_ok; /* the kernel has MADV_POPULATE_WRITE */
    /*
     * PAGE payloads read straight into guest RAM (ram-load-direct.c):
     * a socket stream, and no other thread writing guest RAM.
     */
    bool direct;
    /* Post-copy: from LISTEN on, pages are placed through userfaultfd. */
    PostcopyRam *postcopy;
    uint8_t xbzrle_buf[GW_PAGE_SIZE];
    uint8_t page_buf[GW_PAGE_SIZE]; /* a post-copy page before placement */
} RAMLoadState;

static RAMLoadState load_state;
/* Guards load_state.postcopy against being freed under a query. */
static GMutex postcopy_lock;
/* The post-copy figures when it ended (query-migrate after the end). */
PostcopyRamStats ram_load_postcopy_final;
bool ram_load_postcopy_final_valid;

void ram_load_init(Machine *m)
{
    load_state.m = m;
}

unsigned long *ram_load_touched_map(void)
{
    RAMLoadState *ls = &load_state;

    if (!ls->touched) {
        ls->touched = bitmap_new(ram_block_pages(ls->m->ram));
    }
    return ls->touched;
}

static RAMBlock *ram_find_block(RAMLoadState *ls, const char *id)
{
    return strcmp(id, ls->m->ram->idstr) ? NULL : ls->m->ram;
}

static bool load_error(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static bool load_error(GError **errp, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "%s", msg);
    return false;
}

/* MEM_SIZE: the block list must match our RAM exactly. */
static bool ram_load_block_list(RAMLoadState *ls, QEMUFile *f, uint64_t total,
                                GError **errp)
{
    uint64_t sum = 0;

    if (ls->setup_seen) {
        return load_error(errp, "RAM block list sent twice");
    }
    while (sum < total) {
        char id[256];
        qemu_get_counted_string(f, id);
        uint64_t len = qemu_get_be64(f);
        if (qemu_file_get_error(f)) {
            return qemu_file_check(f, errp);
        }
        RAMBlock *rb = ram_find_block(ls, id);
        if (!rb) {
            return load_error(errp,
                              "Unknown ramblock \"%s\", cannot accept "
                              "migration",
                              id);
        }
        if (len != rb->used_length) {
            return load_error(errp,
                              "Length mismatch: %s: 0x%" G_GINT64_MODIFIER
                              "x in != 0x%" G_GINT64_MODIFIER "x",
                              id, len, rb->used_length);
        }
        sum += len;
    }
    if (sum != total) {
        return load_error(
            errp,
            "RAM size mismatch: blocks add up to %" G_GUINT64_FORMAT
            " bytes, stream says %" G_GUINT64_FORMAT,
            sum, total);
    }
    if (total != ls->m->ram->used_length) {
        return load_error(errp,
                          "RAM size mismatch: %" G_GUINT64_FORMAT
                          " bytes in the stream, %" G_GUINT64_FORMAT " here",
                          total, ls->m->ram->used_length);
    }
    ls->setup_seen = true;
    return true;
}

/* The page a ZERO/PAGE record names, or NULL with *errp set. */
static uint8_t *ram_record_host(RAMLoadState *ls, QEMUFile *f, uint64_t addr,
                                uint64_t flags, uint64_t *page, GError **errp)
{
    RAMBlock *rb;

    if (flags & RAM_SAVE_FLAG_CONTINUE) {
        rb = ls->last;
        if (!rb) {
            load_error(errp, "page record with CONTINUE but no block yet");
            return NULL;
        }
    } else {
        char id[256];
        qemu_get_counted_string(f, id);
        if (qemu_file_get_error(f)) {
            qemu_file_check(f, errp);
            return NULL;
        }
        rb = ram_find_block(ls, id);
        if (!rb) {
            load_error(errp,
                       "Unknown ramblock \"%s\", cannot accept "
                       "migration",
                       id);
            return NULL;
        }
        ls->last = rb;
    }
    if (addr >= rb->used_length) {
        load_error(errp,
                   "Illegal RAM offset 0x%" G_GINT64_MODIFIER
                   "x in block %s (0x%" G_GINT64_MODIFIER "x bytes)",
                   addr, rb->idstr, rb->used_length);
        return NULL;
    }
    *page = addr >> GW_PAGE_SHIFT;
    return rb->host + addr;
}

/*
 * Populates pages from `page` on in one go, unless the window populated
 * last still covers `need` pages from there (they read as zero until
 * written, so populating a page that later arrives as a ZERO record only
 * costs memory, never correctness; a page already written is left as it
 * is). Not after -mem-prealloc: walking populated pages again was an
 * eighth of the incoming thread's time (perf, scripts/bench migrate-fill).
 */
static void ram_populate_ahead(RAMLoadState *ls, RAMBlock *rb, uint64_t page,
                               uint64_t need)
{
    uint64_t pages = ram_block_pages(rb);
    uint64_t end = MIN(page + RAM_LOAD_POPULATE_PAGES, pages);
    uint64_t from = page;

    if (!ls->populate_ok || atomic_load(&rb->preallocated)) {
        return; /* preallocated: not even the window's bookkeeping */
    }
    if (page >= ls->pop_start && page <= ls->pop_end) {
        if (MIN(page + need, pages) <= ls->pop_end) {
            return;
        }
        from = ls->pop_end; /* the window moves on: top it up */
    }
    if (from < end && !ram_block_populate(rb, from, end - from)) {
        ls->populate_ok = false; /* an old kernel: plain faults then */
    }
    ls->pop_start = page;
    ls->pop_end = end;
}

/* ram_load_page_direct's hook: pages a direct read is about to land in. */
static void ram_populate_direct(void *opaque, RAMBlock *rb, uint64_t page)
{
    ram_populate_ahead(opaque, rb, page, RAM_DIRECT_READ_PAGES);
}

/*
 * XBZRLE: a delta against the page the destination holds, applied in
 * place. Every length is checked; a delta that does not decode fails.
 */
static bool ram_load_xbzrle(RAMLoadState *ls, QEMUFile *f, uint8_t *host,
                            uint64_t page, GError **errp)
{
    uint8_t flag = qemu_get_byte(f);
    uint16_t len = qemu_get_be16(f);

    if (qemu_file_get_error(f)) {
        return qemu_file_check(f, errp);
    }
    if (flag != ENCODING_FLAG_XBZRLE) {
        return load_error(errp,
                          "Failed to load XBZRLE page - wrong "
                          "compression! (flag 0x%x)",
                          flag);
    }
    if (len > GW_PAGE_SIZE) {
        return load_error(errp,
                          "Failed to load XBZRLE page - len overflow! "
                          "(%u bytes)",
                          len);
    }
    qemu_get_buffer(f, ls->xbzrle_buf, len);
    if (qemu_file_get_error(f)) {
        return qemu_file_check(f, errp);
    }
    if (xbzrle_decode_buffer(ls->xbzrle_buf, len, host, GW_PAGE_SIZE) < 0) {
        return load_error(errp,
                          "Failed to load XBZRLE page - decode error! "
                          "(page 0x%" G_GINT64_MODIFIER "x)",
                          page << GW_PAGE_SHIFT);
    }
    set_bit_atomic(page, ls->touched);
    return true;
}

/*
 * Post-copy: the whole page is read aside, then placed in one atomic step
 * (a vCPU may be touching it), or found already there.
 */
static bool ram_load_postcopy_page(RAMLoadState *ls, QEMUFile *f, uint64_t addr,
                                   uint64_t flags, GError **errp)
{
    const void *data = NULL;

    if (flags & (RAM_SAVE_FLAG_XBZRLE | RAM_SAVE_FLAG_COMPRESS_PAGE)) {
        return load_error(errp,
                          "%s page in post-copy (only whole pages "
                          "can be placed)",
                          (flags & RAM_SAVE_FLAG_XBZRLE) ? "XBZRLE"
                                                         : "compressed");
    }
    if (flags & RAM_SAVE_FLAG_ZERO) {
        uint8_t ch = qemu_get_byte(f);
        if (ch) {
            memset(ls->page_buf, ch, GW_PAGE_SIZE);
            data = ls->page_buf;
        }
    } else {
        qemu_get_buffer(f, ls->page_buf, GW_PAGE_SIZE);
        data = ls->page_buf;
    }
    if (!qemu_file_check(f, errp)) {
        return false;
    }
    return postcopy_ram_place(ls->postcopy, addr, data, errp);
}

static bool ram_load_page(RAMLoadState *ls, QEMUFile *f, uint64_t addr,
                          uint64_t flags, GError **errp)
{
    uint64_t page;
    uint8_t *host;

    if (!ls->setup_seen) {
        return load_error(errp, "RAM page before the RAM block list");
    }
    host = ram_record_host(ls, f, addr, flags, &page, errp);
    if (!host) {
        return false;
    }
    if (ls->postcopy) {
        return ram_load_postcopy_page(ls, f, addr, flags, errp);
    }
    if (flags & RAM_SAVE_FLAG_COMPRESS_PAGE) {
        if (!migrate_cap(MIGRATION_CAPABILITY_COMPRESS)) {
            return load_error(errp, "Received an unexpected compressed page "
                                    "(turn the compress capability on "
                                    "here too)");
        }
        if (!test_bit(page, ls->touched)) {
            ram_populate_ahead(ls, ls->last, page, 1);
            set_bit_atomic(page, ls->touched);
        }
        return ram_decompress_page(f, ls->last, host, page, errp);
    }
    /* a decompression thread may still be writing this page */
    if (ram_decompress_pending(page) && !ram_decompress_wait(errp)) {
        return false;
    }
    if (flags & RAM_SAVE_FLAG_XBZRLE) {
        return ram_load_xbzrle(ls, f, host, page, errp);
    }
    if (flags & RAM_SAVE_FLAG_ZERO) {
        uint8_t ch = qemu_get_byte(f);
        /* Fresh destination RAM is zero: don't populate it for nothing. */
        if (ch || test_bit(page, ls->touched)) {
            memset(host, ch, GW_PAGE_SIZE);
        }
        if (ch) {
            set_bit_atomic(page, ls->touched);
        }
    } else {
        if (!test_bit(page, ls->touched)) {
            ram_populate_ahead(ls, ls->last, page, 1);
        }
        if (ls->direct) {
            ram_load_page_direct(f, ls->last, page, ls->touched,
                                 ram_populate_direct, ls);
            return qemu_file_check(f, errp);
        }
        qemu_get_buffer(f, host, GW_PAGE_SIZE);
        set_bit_atomic(page, ls->touched);
    }
    return qemu_file_check(f, errp);
}

bool ram_load(QEMUFile *f, void *opaque, uint32_t version_id, GError **errp)
{
    RAMLoadState *ls = &load_state;

    if (version_id != RAM_SECTION_VERSION) {
        return load_error(errp, "ram: unsupported section version %u",
                          version_id);
    }
    if (!ls->started) {
        ram_load_touched_map();
        ls->pop_start = ls->pop_end = 0;
        ls->populate_ok = true;
        ls->direct = qemu_file_direct_ok(f) &&
                     !migrate_cap(MIGRATION_CAPABILITY_COMPRESS) &&
                     !migrate_cap(MIGRATION_CAPABILITY_MULTIFD) &&
                     !g_getenv("GODWIT_NO_DIRECT_RECV");
        ls->started = true;
    }
    for (;;) {
        uint64_t hdr = qemu_get_be64(f);
        uint64_t flags = hdr & ~GW_PAGE_MASK;
        uint64_t addr = hdr & GW_PAGE_MASK;
        if (qemu_file_get_error(f)) {
            return qemu_file_check(f, errp);
        }
        if (flags & ~RAM_LOAD_FLAGS) {
            return load_error(errp,
                              "Unknown combination of migration flags: "
                              "0x%" G_GINT64_MODIFIER "x%s",
                              flags,
                              (flags & RAM_SAVE_FLAG_MULTIFD_FLUSH)
                                  ? " (MULTIFD_FLUSH: godwit's multifd syncs "
                                    "at every section end, as QEMU 7.2 and "
                                    "multifd-flush-after-each-section=on)"
                                  : "");
        }
        switch (flags & ~RAM_SAVE_FLAG_CONTINUE) {
        case RAM_SAVE_FLAG_MEM_SIZE:
            if (!ram_load_block_list(ls, f, addr, errp)) {
                return false;
            }
            break;
        case RAM_SAVE_FLAG_ZERO:
        case RAM_SAVE_FLAG_PAGE:
        case RAM_SAVE_FLAG_XBZRLE:
        case RAM_SAVE_FLAG_COMPRESS_PAGE:
            if (!ram_load_page(ls, f, addr, flags, errp)) {
                return false;
            }
            break;
        case RAM_SAVE_FLAG_EOS:
            if (addr || (flags & RAM_SAVE_FLAG_CONTINUE)) {
                return load_error(errp,
                                  "malformed end-of-section record "
                                  "0x%" G_GINT64_MODIFIER "x",
                                  hdr);
            }
            /* every page of the section is in place before the next */
            return ram_decompress_wait(errp) && multifd_recv_sync_main(errp);
        default:
            return load_error(errp,
                              "Unknown combination of migration flags: "
                              "0x%" G_GINT64_MODIFIER "x",
                              flags);
        }
    }
}

/* ---- post-copy, destination ------------------------------------------- */

bool ram_load_postcopy_discard(const char *block, uint64_t start,
                               uint64_t length, GError **errp)
{
    RAMLoadState *ls = &load_state;
    RAMBlock *rb = ram_find_block(ls, block);

    if (!rb) {
        return load_error(errp,
                          "ram_discard_range: Failed to find block "
                          "'%s'",
                          block);
    }
    if ((start | length) & (GW_PAGE_SIZE - 1) || start + length < start ||
        start + length > rb->used_length) {
        return load_error(errp,
                          "ram_block_discard_range: Bad range %s: "
                          "start: 0x%" G_GINT64_MODIFIER
                          "x length: 0x%" G_GINT64_MODIFIER "x",
                          block, start, length);
    }
    /*
     * Only pages that arrived can be stale; the rest are holes, or
     * populated ahead and emptied at LISTEN (punching a whole 16 GiB
     * memfd range costs ~5 ms even when it holds nothing).
     */
    if (ls->touched) {
        uint64_t p0 = start >> GW_PAGE_SHIFT,
                 p1 = (start + length) >> GW_PAGE_SHIFT;
        for (uint64_t p = bitmap_find_next(ls->touched, p1, p0); p < p1;) {
            uint64_t e = bitmap_find_next_zero(ls->touched, p1, p);
            if (!ram_block_discard_range(rb, p << GW_PAGE_SHIFT,
                                         (e - p) << GW_PAGE_SHIFT)) {
                return load_error(errp,
                                  "cannot discard 0x%" G_GINT64_MODIFIER
                                  "x bytes at 0x%" G_GINT64_MODIFIER "x of %s",
                                  (e - p) << GW_PAGE_SHIFT, p << GW_PAGE_SHIFT,
                                  block);
            }
            bitmap_clear_range(ls->touched, p, e - p);
            p = e < p1 ? bitmap_find_next(ls->touched, p1, e) : e;
        }
    }
    return true;
}

bool ram_load_postcopy_listen(PostcopyRequestFn req, void *opaque,
                              GError **errp)
{
    RAMLoadState *ls = &load_state;
    RAMBlock *rb = ls->m->ram;
    unsigned long *touched = ram_load_touched_map();

    /* no decompression thread may write a page from here on */
    if (!ram_decompress_wait(errp)) {
        return false;
    }
    /*
     * Every page that did not arrive must be a hole, so that a touch
     * faults: populate-ahead filled some with zeros before their data.
     * Only populated extents are looked at (SEEK_DATA skips the holes).
     */
    for (uint64_t pos = 0;;) {
        uint64_t s, e;
        int r = ram_block_next_extent(rb, pos, &s, &e);
        if (r < 0) {
            return load_error(errp, "post-copy: cannot list the populated "
                                    "RAM");
        }
        if (r == 0) {
            break;
        }
        uint64_t p1 = e >> GW_PAGE_SHIFT;
        for (uint64_t p =
                 bitmap_find_next_zero(touched, p1, s >> GW_PAGE_SHIFT);
             p < p1;) {
            uint64_t q = bitmap_find_next(touched, p1, p);
            if (!ram_block_discard_range(rb, p << GW_PAGE_SHIFT,
                                         (q - p) << GW_PAGE_SHIFT)) {
                return load_error(errp, "post-copy: cannot empty the pages "
                                        "still to come");
            }
            p = q < p1 ? bitmap_find_next_zero(touched, p1, q) : q;
        }
        pos = e;
    }
    PostcopyRam *pr =
        postcopy_ram_new(rb->host, rb->used_length, touched, req, opaque, errp);
    if (!pr) {
        return false;
    }
    g_mutex_lock(&postcopy_lock);
    ls->postcopy = pr;
    g_mutex_unlock(&postcopy_lock);
    for (int i = 0; i < ls->m->smp; i++) {
        CPUState *cpu = ls->m->cpus[i];
        postcopy_ram_register_vcpu(ls->postcopy, i,
                                   atomic_load(&cpu->thread_id));
    }
    return true;
}

bool ram_load_postcopy_stats(PostcopyRamStats *st)
{
    RAMLoadState *ls = &load_state;
    bool ok;

    g_mutex_lock(&postcopy_lock);
    ok = ls->postcopy != NULL;
    if (ok) {
        postcopy_ram_stats(ls->postcopy, st);
    }
    g_mutex_unlock(&postcopy_lock);
    return ok;
}

bool ram_load_postcopy_place(uint64_t addr, const void *data, GError **errp)
{
    RAMLoadState *ls = &load_state;

    if (!ls->postcopy) {
        return load_error(errp, "a post-copy page before LISTEN");
    }
    if (addr >= ls->m->ram->used_length) {
        return load_error(errp,
                          "Illegal RAM offset 0x%" G_GINT64_MODIFIER
                          "x in block %s (0x%" G_GINT64_MODIFIER "x bytes)",
                          addr, ls->m->ram->idstr, ls->m->ram->used_length);
    }
    return postcopy_ram_place(ls->postcopy, addr, data, errp);
}

const unsigned long *ram_load_postcopy_received_map(void)
{
    return load_state.postcopy ? postcopy_ram_received_map(load_state.postcopy)
                               : NULL;
}

void ram_load_postcopy_rerequest(void)
{
    if (load_state.postcopy) {
        postcopy_ram_rerequest_waiting(load_state.postcopy);
    }
}

void ram_load_postcopy_end(void)
{
    RAMLoadState *ls = &load_state;

    /* keep the last figures for query-migrate, then let every vCPU go */
    g_mutex_lock(&postcopy_lock);
    if (ls->postcopy) {
        postcopy_ram_stats(ls->postcopy, &ram_load_postcopy_final);
        ram_load_postcopy_final_valid = true;
    }
    g_clear_pointer(&ls->postcopy, postcopy_ram_free);
    g_mutex_unlock(&postcopy_lock);
}

void ram_load_cleanup(void *opaque)
{
    RAMLoadState *ls = &load_state;

    ram_load_postcopy_end();

    /* the channels' threads write pages and `touched`: end them first */
    multifd_recv_cleanup();
    ram_decompress_cleanup();
    g_clear_pointer(&ls->touched, bitmap_free);
    ls->started = false;
    ls->last = NULL;
    ls->setup_seen = false;
}
