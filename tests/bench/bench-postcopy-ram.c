/*
 * Benchmark: the userfaultfd round trip of post-copy (migration/postcopy-
 * ram.c) alone, over a memfd range as godwit's RAM. A thread touches each
 * missing page in turn; the fault thread reads the fault and its request
 * callback places the page at once with UFFDIO_COPY; the thread resumes.
 * Each touch is timed from the thread's side: p50 / p99 / max, with the
 * module's own read-to-placed figures, against two faults without
 * userfaultfd: a first touch of a memfd hole, and a minor fault (page in
 * the memfd, not mapped).
 *
 *   bench-postcopy-ram [MiB]     (default 128: 32768 faults)
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../../migration/postcopy-ram.h"

#define PAGE POSTCOPY_RAM_PAGE_SIZE

static PostcopyRam *pr;
static uint8_t page_data[PAGE];

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* On the fault thread: the source answers at once. */
static void place_now(void *opaque, uint64_t offset, uint64_t len)
{
    GError *err = NULL;

    if (!postcopy_ram_place(pr, offset, page_data, &err)) {
        fprintf(stderr, "bench-postcopy-ram: %s\n", err->message);
        exit(1);
    }
}

/*
 * Times a load (or a store) to each page of host; prints p50 / p99 / max.
 * Stores for the minor fault: a load would map 16 pages a fault
 * (fault-around), which the kernel never does in a userfaultfd range.
 */
static void time_touches(const char *what, uint8_t *host, uint64_t pages,
                         bool store)
{
    uint64_t *ns = g_new(uint64_t, pages);

    for (uint64_t p = 0; p < pages; p++) {
        volatile uint8_t *b = host + p * PAGE;
        uint64_t t0 = now_ns();
        if (store) {
            *b = 1;
        } else {
            (void)*b;
        }
        ns[p] = now_ns() - t0;
    }
    qsort(ns, pages, sizeof(*ns), cmp_u64);
    printf("%-36s p50 %6.2f us  p99 %6.2f us  max %8.2f us  (%" G_GUINT64_FORMAT
           " faults)\n",
           what, ns[pages / 2] / 1e3, ns[pages * 99 / 100] / 1e3,
           ns[pages - 1] / 1e3, pages);
    g_free(ns);
}

static uint8_t *map_memfd(uint64_t size)
{
    int fd = memfd_create("bench-postcopy-ram", MFD_CLOEXEC);
    uint8_t *host;

    if (fd < 0 || ftruncate(fd, size) < 0) {
        perror("memfd");
        exit(1);
    }
    host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (host == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return host;
}

int main(int argc, char **argv)
{
    uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 128;
    uint64_t size = mib << 20, pages = size / PAGE;
    PostcopyRamStats s;
    GError *err = NULL;
    uint8_t *host;

    if (!postcopy_ram_supported(&err)) {
        printf("SKIP: %s\n", err->message);
        return 77;
    }
    memset(page_data, 0x5a, sizeof(page_data));

    host = map_memfd(size);
    time_touches("load from a memfd hole:", host, pages, false);
    madvise(host, size, MADV_DONTNEED); /* unmapped, still in the memfd */
    time_touches("store, minor fault (page in memfd):", host, pages, true);
    munmap(host, size);

    host = map_memfd(size);
    pr = postcopy_ram_new(host, size, NULL, place_now, NULL, &err);
    if (!pr) {
        fprintf(stderr, "bench-postcopy-ram: %s\n", err->message);
        return 1;
    }
    time_touches("load, userfaultfd round trip (COPY):", host, pages, false);
    postcopy_ram_stats(pr, &s);
    printf("%-36s p50 %6" G_GUINT64_FORMAT " us  p99 %6" G_GUINT64_FORMAT
           " us  max %8" G_GUINT64_FORMAT " us  (%" G_GUINT64_FORMAT
           " samples)\n",
           "  module's fault read -> placed:", s.fault_latency_us_p50,
           s.fault_latency_us_p99, s.fault_latency_us_max, s.latency_samples);
    while (postcopy_ram_missing_pages(pr)) {
        g_usleep(10); /* the last placement may still be marking its page */
    }
    if (s.requests != pages) {
        fprintf(stderr,
                "bench-postcopy-ram: %" G_GUINT64_FORMAT
                " requests for %" G_GUINT64_FORMAT " pages\n",
                s.requests, pages);
        return 1;
    }
    postcopy_ram_free(pr);
    munmap(host, size);
    return 0;
}
