/*
 * Precopy PAGE records received straight into guest RAM.
 *
 * The stream interleaves 8-byte record headers with 4 KiB payloads, and a
 * payload's place is known only once its header is parsed. Reading the
 * stream through a buffer and copying each payload out costs a second
 * pass over every byte (socket -> stream buffer -> guest RAM). Instead,
 * when a PAGE record's payload is not (all) buffered yet, the loader reads
 * it with readv straight into the page, together with a guess at what
 * follows: in a bulk pass the sender's next records are the next pages of
 * the same block, each "CONTINUE | PAGE" with the next offset. One readv
 * scatters
 *
 *   [rest of this page][hdr][page+1][hdr][page+2] ... [hdr]
 *
 * and every guessed header is checked afterwards. A guess is made only for
 * a page the load has not written yet: it is still zero (incoming RAM
 * starts zero; ram-load.c relies on that for ZERO records too), so a wrong
 * guess is undone exactly: the bytes from the first wrong header on go
 * back to the stream buffer in order, and the pages they landed in are
 * zeroed again. A verified header whose payload arrived only in part makes
 * that page the current one, and the next readv finishes it (and guesses
 * again). The final header slot is handed back to the buffer for the
 * loader's next record, whose payload then comes here too: once the
 * sender is ahead, nearly every byte goes socket -> guest RAM.
 */
#include <string.h>

#include "godwit/bitmap.h"
#include "ram.h"

/*
 * Pages guessed per readv: what a wrong first guess gives back, 62 *
 * (8 + 4096) + 8 bytes, fits in the input stream buffer that takes it
 * (qemu_unget_direct, 256 KiB). 62 rather than 31: the destination's CPU
 * per GB 0.21-0.23 s against 0.25-0.27 (scripts/bench migrate-fill).
 */
#define DIRECT_GUESS (RAM_DIRECT_READ_PAGES - 1)

typedef struct DirectRead {
    uint8_t *host;  /* the block's RAM */
    uint64_t pages; /* the block's pages */
    unsigned long *touched;
    uint64_t guess[DIRECT_GUESS];
    uint8_t hdr[DIRECT_GUESS + 1][8];
    struct iovec iov[2 * DIRECT_GUESS + 2];
    int iovcnt;
    int nguess;
} DirectRead;

static uint8_t *page_host(DirectRead *d, uint64_t page)
{
    return d->host + (page << GW_PAGE_SHIFT);
}

/* [rest of `page`][hdr][guess 1][hdr][guess 2]...[hdr] */
static void direct_build(DirectRead *d, uint64_t page, size_t done)
{
    int n = 0;

    d->iov[n++] =
        (struct iovec){page_host(d, page) + done, GW_PAGE_SIZE - done};
    d->nguess = 0;
    for (uint64_t g = page + 1;
         d->nguess < DIRECT_GUESS && g < d->pages && !test_bit(g, d->touched);
         g++) {
        d->iov[n++] = (struct iovec){d->hdr[d->nguess], 8};
        d->iov[n++] = (struct iovec){page_host(d, g), GW_PAGE_SIZE};
        d->guess[d->nguess++] = g;
    }
    d->iov[n++] = (struct iovec){d->hdr[d->nguess], 8};
    d->iovcnt = n;
}

/*
 * Reads until at least `want` bytes of d->iov are in (the current page's
 * payload: the sender is in the middle of that record, so waiting for it
 * is safe; nothing beyond is waited for). Returns the bytes in, or 0.
 */
static size_t direct_fill(QEMUFile *f, DirectRead *d, size_t want)
{
    struct iovec iov[G_N_ELEMENTS(d->iov)];
    size_t got = 0;

    while (got < want) {
        int i = 0;
        size_t skip = got;
        while (skip >= d->iov[i].iov_len) {
            skip -= d->iov[i++].iov_len;
        }
        memcpy(iov, d->iov + i, (d->iovcnt - i) * sizeof(*iov));
        iov[0].iov_base = (uint8_t *)iov[0].iov_base + skip;
        iov[0].iov_len -= skip;
        size_t n = qemu_get_direct(f, iov, d->iovcnt - i);
        if (!n) {
            return 0;
        }
        got += n;
    }
    return got;
}

/*
 * Gives the bytes in iov pieces [first, ...) back to the stream (`got`:
 * the bytes in from piece `first` on) and zeroes the guessed pages they
 * landed in (untouched, so zero before).
 */
static void direct_undo(QEMUFile *f, DirectRead *d, int first, size_t got)
{
    for (int i = first; i < d->iovcnt && got; i++) {
        size_t n = MIN(got, d->iov[i].iov_len);
        qemu_unget_direct(f, d->iov[i].iov_base, n);
        if (d->iov[i].iov_len == GW_PAGE_SIZE) {
            memset(d->iov[i].iov_base, 0, n);
        }
        got -= n;
    }
}

static uint64_t be64_at(const uint8_t *b)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = v << 8 | b[i];
    }
    return v;
}

/*
 * Checks the guesses against the headers that arrived (`got` bytes from
 * the start of d->iov, the current page complete). Returns the page whose
 * payload is still incomplete (its bytes in: *done), or UINT64_MAX when
 * the read ended on a record boundary.
 */
static uint64_t direct_verify(QEMUFile *f, DirectRead *d, size_t got,
                              size_t *done)
{
    got -= d->iov[0].iov_len;
    for (int k = 0; k < d->nguess; k++) {
        uint64_t want = d->guess[k] << GW_PAGE_SHIFT | RAM_SAVE_FLAG_PAGE |
                        RAM_SAVE_FLAG_CONTINUE;
        if (got < 8 || be64_at(d->hdr[k]) != want) {
            direct_undo(f, d, 1 + 2 * k, got);
            return UINT64_MAX;
        }
        got -= 8;
        if (got < GW_PAGE_SIZE) {
            *done = got;
            return d->guess[k];
        }
        set_bit_atomic(d->guess[k], d->touched);
        got -= GW_PAGE_SIZE;
    }
    direct_undo(f, d, d->iovcnt - 1, got);
    return UINT64_MAX;
}

bool ram_load_page_direct(QEMUFile *f, RAMBlock *rb, uint64_t page,
                          unsigned long *touched, RAMPopulateFn *populate,
                          void *opaque)
{
    DirectRead d = {
        .host = rb->host,
        .pages = ram_block_pages(rb),
        .touched = touched,
    };
    size_t done = qemu_get_buffered(f, page_host(&d, page), GW_PAGE_SIZE);

    while (done < GW_PAGE_SIZE) {
        if (populate) {
            populate(opaque, rb, page);
        }
        direct_build(&d, page, done);
        size_t got = direct_fill(f, &d, d.iov[0].iov_len);
        if (!got) {
            return false;
        }
        set_bit_atomic(page, touched);
        page = direct_verify(f, &d, got, &done);
        if (page == UINT64_MAX) {
            return true;
        }
    }
    set_bit_atomic(page, touched);
    return !qemu_file_get_error(f);
}
