/*
 * Benchmark: the userfaultfd write-protect dirty tracker (accel/tcg/uffd-wp.c)
 * over a memfd range as godwit's RAM: arming the whole range, collecting
 * with 0, 100, 16384 and all pages written (spread out, so each written page
 * is its own region, or contiguous), with and without re-arm, and the cost
 * of the first write to an armed page against a write that does not fault
 * and a plain minor fault. Median of several runs; one line per figure.
 *
 *   bench-uffd-wp [MiB]     (default 512)
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "godwit/bitmap.h"
#include "../../accel/tcg/uffd-wp.h"
#include "bench-util.h"

#define PAGE UFFD_WP_PAGE_SIZE
#define RUNS 7

static char *host;
static uint64_t size, pages;
static UffdWp *t;
static unsigned long *map;

static double now_us(void)
{
    return g_get_monotonic_time();
}

static void check(bool ok, GError *err)
{
    if (!ok) {
        fprintf(stderr, "bench-uffd-wp: %s\n", err->message);
        exit(1);
    }
}

static void arm_all(void)
{
    GError *err = NULL;
    check(uffd_wp_arm(t, 0, size, &err), err);
}

/* Writes n pages, spread evenly over the range or from page 0 on. */
static void write_pages(uint64_t n, bool spread)
{
    for (uint64_t i = 0; i < n; i++) {
        host[(spread ? i * (pages / n) : i) * PAGE] ^= 1;
    }
}

/* Microseconds for one collect; checks the count it reports. */
static double time_collect(bool rearm, uint64_t expect)
{
    GError *err = NULL;
    double t0;

    memset(map, 0, BITS_TO_LONGS(pages) * sizeof(unsigned long));
    t0 = now_us();
    check(uffd_wp_collect(t, map, rearm, &err), err);
    t0 = now_us() - t0;
    if (bitmap_count(map, pages) != expect) {
        fprintf(stderr,
                "bench-uffd-wp: collect found %" G_GUINT64_FORMAT
                " pages, expected %" G_GUINT64_FORMAT "\n",
                bitmap_count(map, pages), expect);
        exit(1);
    }
    return t0;
}

static void bench_collect(uint64_t n, bool spread)
{
    double plain[RUNS], rearm[RUNS];

    for (int r = 0; r < RUNS; r++) {
        arm_all();
        write_pages(n, spread);
        plain[r] = time_collect(false, n);
        rearm[r] = time_collect(true, n);
    }
    printf("collect %6" G_GUINT64_FORMAT " written %-10s: %8.1f us plain, "
           "%8.1f us with re-arm\n",
           n, n && n < pages ? (spread ? "spread" : "contiguous") : "",
           median(plain, RUNS), median(rearm, RUNS));
}

/* Microseconds per page to write one byte of every page of p once. */
static double time_writes(char *p, uint64_t n)
{
    double t0 = now_us();

    for (uint64_t i = 0; i < n; i++) {
        p[i * PAGE + 8] ^= 1;
    }
    return (now_us() - t0) / n;
}

/*
 * The first write to an armed page against a write to a page already
 * written (no fault) and against a plain minor fault with no tracking (a
 * memfd page still in the page cache, unmapped by MADV_DONTNEED): what the
 * host charges for any fault.
 */
static void bench_writes(void)
{
    double armed[RUNS], plain[RUNS], minor[RUNS];
    uint64_t n = MIN(pages, 16384);
    char *other = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (other == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(other, 1, n * PAGE);
    for (int r = 0; r < RUNS; r++) {
        arm_all();
        armed[r] = time_writes(host, pages);
        plain[r] = time_writes(host, pages);
        madvise(other, n * PAGE, MADV_DONTNEED);
        minor[r] = time_writes(other, n);
    }
    printf("first write to an armed page: %.3f us/page\n", median(armed, RUNS));
    printf("write to a page already written: %.3f us/page\n",
           median(plain, RUNS));
    printf("minor fault, untracked shared page: %.3f us/page\n",
           median(minor, RUNS));
    munmap(other, n * PAGE);
}

int main(int argc, char **argv)
{
    uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 512;
    static const uint64_t written[] = {0, 100, 16384, UINT64_MAX /* all */};
    GError *err = NULL;
    double v[RUNS];
    int fd;

    if (!uffd_wp_probe(&err)) {
        printf("SKIP: %s\n", err->message);
        return 77;
    }
    size = mib << 20;
    pages = size / PAGE;
    fd = memfd_create("bench-uffd-wp", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, size) < 0) {
        perror("memfd");
        return 1;
    }
    host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (host == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    map = bitmap_new(pages);
    t = uffd_wp_new(host, size, &err);
    check(t != NULL, err);
    printf("range: %" G_GUINT64_FORMAT " MiB memfd, %" G_GUINT64_FORMAT
           " pages\n",
           mib, pages);

    for (int r = 0; r < RUNS; r++) {
        double t0 = now_us();
        arm_all();
        v[r] = now_us() - t0;
    }
    printf("arm whole range, unpopulated: %.1f us\n", median(v, RUNS));
    memset(host, 1, size);
    for (int r = 0; r < RUNS; r++) {
        double t0;
        write_pages(pages, false); /* unprotect every page */
        t0 = now_us();
        arm_all();
        v[r] = now_us() - t0;
    }
    printf("arm whole range, populated and all written: %.1f us\n",
           median(v, RUNS));

    for (size_t i = 0; i < G_N_ELEMENTS(written); i++) {
        uint64_t n = MIN(written[i], pages);
        bench_collect(n, true);
        if (n && n < pages) {
            bench_collect(n, false);
        }
    }
    bench_writes();

    uffd_wp_free(t);
    munmap(host, size);
    bitmap_free(map);
    return 0;
}
