/*
 * RAM blocks backed by a memfd, and the populated-extent iterator.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "godwit/cutils.h"
#include "godwit/ramblock.h"

RAMBlock *ram_block_new(const char *name, uint64_t size, GError **errp)
{
    g_autofree char *human = NULL;
    RAMBlock *rb;
    int fd;

    if (!name || !*name || strlen(name) > RAMBLOCK_NAME_MAX) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "invalid RAM block name");
        return NULL;
    }
    if (size == 0 || size > (UINT64_MAX & GW_PAGE_MASK)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "invalid RAM block size");
        return NULL;
    }
    size = (size + GW_PAGE_SIZE - 1) & GW_PAGE_MASK;
    human = gw_format_size(size);

    fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) {
        gw_error_errno(errp, errno, "cannot create memory for '%s'", name);
        return NULL;
    }
    if (size > (uint64_t)INT64_MAX || ftruncate(fd, (off_t)size) < 0) {
        gw_error_errno(errp, size > (uint64_t)INT64_MAX ? EFBIG : errno,
                       "cannot allocate %s of guest RAM", human);
        close(fd);
        return NULL;
    }
    void *host = mmap(NULL, size, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (host == MAP_FAILED) {
        gw_error_errno(errp, errno, "cannot allocate %s of guest RAM (mmap)",
                       human);
        close(fd);
        return NULL;
    }
    /* Guest RAM never goes into core dumps of the VMM. */
    madvise(host, size, MADV_DONTDUMP);

    rb = g_new0(RAMBlock, 1);
    g_strlcpy(rb->idstr, name, sizeof(rb->idstr));
    rb->used_length = size;
    rb->fd = fd;
    rb->host = host;
    rb->host_dirty = bitmap_new(ram_block_pages(rb));
    return rb;
}

void ram_block_free(RAMBlock *rb)
{
    if (!rb) {
        return;
    }
    munmap(rb->host, rb->used_length);
    close(rb->fd);
    bitmap_free(rb->host_dirty);
    g_free(rb);
}

int ram_block_next_extent(const RAMBlock *rb, uint64_t from, uint64_t *start,
                          uint64_t *end)
{
    off_t data, hole;

    if (from >= rb->used_length) {
        return 0;
    }
    data = lseek(rb->fd, (off_t)from, SEEK_DATA);
    if (data < 0) {
        return errno == ENXIO ? 0 : -errno;
    }
    if ((uint64_t)data >= rb->used_length) {
        return 0;
    }
    hole = lseek(rb->fd, data, SEEK_HOLE);
    if (hole < 0) {
        return -errno;
    }
    /* tmpfs answers in pages; be safe about alignment all the same. */
    *start = (uint64_t)data & GW_PAGE_MASK;
    *end = MIN(((uint64_t)hole + GW_PAGE_SIZE - 1) & GW_PAGE_MASK,
               rb->used_length);
    return 1;
}

void ram_block_set_dirty(RAMBlock *rb, uint64_t offset, uint64_t len)
{
    uint64_t first, last;

    if (!len || offset >= rb->used_length) {
        return;
    }
    len = MIN(len, rb->used_length - offset);
    first = offset >> GW_PAGE_SHIFT;
    last = (offset + len - 1) >> GW_PAGE_SHIFT;
    for (uint64_t p = first; p <= last; p++) {
        set_bit_atomic(p, rb->host_dirty);
    }
}

void ram_block_take_host_dirty(RAMBlock *rb, unsigned long *bitmap)
{
    uint64_t words = BITS_TO_LONGS(ram_block_pages(rb));

    for (uint64_t w = 0; w < words; w++) {
        if (__atomic_load_n(&rb->host_dirty[w], __ATOMIC_RELAXED)) {
            bitmap[w] |=
                __atomic_exchange_n(&rb->host_dirty[w], 0, __ATOMIC_ACQ_REL);
        }
    }
}

bool ram_block_discard_range(RAMBlock *rb, uint64_t offset, uint64_t len)
{
    if (offset > rb->used_length || len > rb->used_length - offset) {
        errno = EINVAL;
        return false;
    }
    atomic_store(&rb->preallocated, false);
    return fallocate(rb->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                     (off_t)offset, (off_t)len) == 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

bool ram_block_populate(RAMBlock *rb, uint64_t first, uint64_t n)
{
    if (!n || atomic_load(&rb->preallocated)) {
        return true;
    }
    return madvise(rb->host + (first << GW_PAGE_SHIFT), n << GW_PAGE_SHIFT,
                   MADV_POPULATE_WRITE) == 0 ||
           errno != EINVAL;
}

typedef struct PreallocJob {
    uint8_t *start;
    uint64_t len;
    int err;
} PreallocJob;

static void *prealloc_thread(void *opaque)
{
    PreallocJob *j = opaque;

    /* 64 MiB at a time, so a kernel without the advice costs little */
    for (uint64_t off = 0; off < j->len && !j->err; off += 64 << 20) {
        uint64_t n = MIN(64ull << 20, j->len - off);
        if (madvise(j->start + off, n, MADV_POPULATE_WRITE) < 0) {
            if (errno != EINVAL) {
                j->err = errno;
                break;
            }
            /* no MADV_POPULATE_WRITE: touch every page */
            for (uint64_t p = 0; p < n; p += GW_PAGE_SIZE) {
                *(volatile uint8_t *)(j->start + off + p) = 0;
            }
        }
    }
    return NULL;
}

bool ram_block_prealloc(RAMBlock *rb, int threads, GError **errp)
{
    uint64_t pages = ram_block_pages(rb);
    pthread_t tids[16];
    PreallocJob jobs[16];
    int n = CLAMP(threads, 1, 16);

    for (int i = 0; i < n; i++) {
        uint64_t first = pages * i / n, last = pages * (i + 1) / n;
        jobs[i] = (PreallocJob){rb->host + (first << GW_PAGE_SHIFT),
                                (last - first) << GW_PAGE_SHIFT, 0};
        if (pthread_create(&tids[i], NULL, prealloc_thread, &jobs[i])) {
            prealloc_thread(&jobs[i]);
            tids[i] = 0;
        }
    }
    for (int i = 0; i < n; i++) {
        if (tids[i]) {
            pthread_join(tids[i], NULL);
        }
    }
    for (int i = 0; i < n; i++) {
        if (jobs[i].err) {
            return gw_error_errno(errp, jobs[i].err,
                                  "cannot preallocate guest RAM");
        }
    }
    atomic_store(&rb->preallocated, true);
    return true;
}

uint64_t ram_block_populated_bytes(const RAMBlock *rb)
{
    uint64_t pos = 0, start, end, total = 0;

    while (ram_block_next_extent(rb, pos, &start, &end) > 0) {
        total += end - start;
        pos = end;
    }
    return total;
}
