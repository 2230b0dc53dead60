/*
 * Unit tests for accel/tcg/uffd-wp.c, the userfaultfd write-protect dirty
 * tracker: exact bitmaps for chosen pages, re-arm semantics, sub-range arm,
 * a PAGEMAP_SCAN output vector that fills up, and vCPU-like writer threads
 * racing with collect (no write lost: a shadow copy made the way migration
 * sends pages must end up equal to the memory). Each case runs over memfd
 * shared memory (as godwit's RAM), anonymous private memory, and anonymous
 * memory backed by transparent huge pages where the host allows them.
 * Exits 77 (skip) when the kernel cannot track.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "godwit/bitmap.h"
#include "../../accel/tcg/uffd-wp.h"

#define MiB (1ull << 20)
#define PAGE UFFD_WP_PAGE_SIZE
#define HUGE (2 * MiB)

typedef enum Backing { BACKING_MEMFD, BACKING_ANON, BACKING_ANON_THP } Backing;

typedef struct Config {
    Backing backing;
    uint64_t size;
} Config;

/* One case's state: the memory, its tracker and a scratch bitmap. */
typedef struct Fixture {
    const Config *cfg;
    void *map; /* what mmap returned */
    uint64_t map_size;
    char *host; /* the tracked range, inside map */
    uint64_t pages;
    UffdWp *t;
    unsigned long *got;
} Fixture;

static int setup(void **state)
{
    const Config *cfg = *state;
    Fixture *f = g_new0(Fixture, 1);
    g_autoptr(GError) err = NULL;

    f->cfg = cfg;
    f->pages = cfg->size / PAGE;
    if (cfg->backing == BACKING_MEMFD) {
        int fd = memfd_create("test-uffd-wp", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, cfg->size), 0);
        f->map_size = cfg->size;
        f->map =
            mmap(NULL, f->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        f->host = f->map;
    } else {
        /* Room to align to a huge page, so THP can back the range. */
        f->map_size = cfg->size + HUGE;
        f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        f->host = (char *)(((uintptr_t)f->map + HUGE - 1) & ~(HUGE - 1));
    }
    if (f->map == MAP_FAILED) {
        print_error("mmap %" G_GUINT64_FORMAT " bytes failed\n", f->map_size);
        g_free(f);
        return -1;
    }
    if (cfg->backing == BACKING_ANON_THP) {
        /* Populated before tracking starts: huge PMDs get write-protected. */
        madvise(f->host, cfg->size, MADV_HUGEPAGE);
        memset(f->host, 0x5a, cfg->size);
    }
    f->t = uffd_wp_new(f->host, cfg->size, &err);
    if (!f->t) {
        print_error("uffd_wp_new: %s\n", err->message);
        munmap(f->map, f->map_size);
        g_free(f);
        return -1;
    }
    f->got = bitmap_new(f->pages);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;

    uffd_wp_free(f->t);
    munmap(f->map, f->map_size);
    bitmap_free(f->got);
    g_free(f);
    return 0;
}

static void arm_all(Fixture *f)
{
    g_autoptr(GError) err = NULL;

    if (!uffd_wp_arm(f->t, 0, f->cfg->size, &err)) {
        fail_msg("uffd_wp_arm: %s", err->message);
    }
}

/* Collects into a cleared f->got; returns the number of pages reported. */
static uint64_t collect(Fixture *f, bool rearm)
{
    g_autoptr(GError) err = NULL;

    memset(f->got, 0, BITS_TO_LONGS(f->pages) * sizeof(unsigned long));
    if (!uffd_wp_collect(f->t, f->got, rearm, &err)) {
        fail_msg("uffd_wp_collect: %s", err->message);
    }
    return bitmap_count(f->got, f->pages);
}

static void touch(Fixture *f, uint64_t page)
{
    ((volatile char *)f->host)[page * PAGE + page % PAGE] = (char)page;
}

static void assert_got(Fixture *f, const unsigned long *want)
{
    for (uint64_t i = 0; i < f->pages; i++) {
        if (test_bit(i, f->got) != test_bit(i, want)) {
            fail_msg("page %" G_GUINT64_FORMAT " %s", i,
                     test_bit(i, want) ? "written but not reported"
                                       : "reported but not written");
        }
    }
}

static void test_armed_clean_first_write(void **state)
{
    Fixture *f = *state;
    g_autofree unsigned long *want = bitmap_new(f->pages);
    volatile char c;

    /* Not armed yet: nothing is write-protected, every page counts. */
    assert_int_equal(collect(f, false), f->pages);
    arm_all(f);
    assert_int_equal(collect(f, false), 0);
    assert_int_equal(collect(f, true), 0);
    /* Reads, even of unpopulated pages, are not writes. */
    c = f->host[3 * PAGE];
    c = f->host[f->cfg->size - 1];
    (void)c;
    assert_int_equal(collect(f, false), 0);
    /* First writes to pages never populated are caught (WP_UNPOPULATED). */
    touch(f, 1);
    touch(f, 3);
    touch(f, f->pages / 2);
    set_bit(1, want);
    set_bit(3, want);
    set_bit(f->pages / 2, want);
    assert_int_equal(collect(f, false), 3);
    assert_got(f, want);
}

/* Pages written by test_chosen_pages: singles and [start, end) runs. */
static void write_chosen(Fixture *f, unsigned long *want)
{
    static const uint64_t runs[][2] = {
        {0, 1}, {60, 70}, {127, 129}, {190, 194}, {300, 1300},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(runs); i++) {
        for (uint64_t p = runs[i][0]; p < runs[i][1]; p++) {
            touch(f, p);
        }
        bitmap_set_range(want, runs[i][0], runs[i][1] - runs[i][0]);
    }
    touch(f, f->pages - 1);
    set_bit(f->pages - 1, want);
}

static void test_chosen_pages(void **state)
{
    Fixture *f = *state;
    g_autofree unsigned long *want = bitmap_new(f->pages);

    arm_all(f);
    write_chosen(f, want);
    assert_int_equal(collect(f, true), bitmap_count(want, f->pages));
    assert_got(f, want);
}

static void test_rearm(void **state)
{
    Fixture *f = *state;
    g_autofree unsigned long *want = bitmap_new(f->pages);
    uint64_t n;

    arm_all(f);
    write_chosen(f, want);
    n = bitmap_count(want, f->pages);
    /* Without re-arm, the same pages again and again. */
    assert_int_equal(collect(f, false), n);
    assert_got(f, want);
    assert_int_equal(collect(f, false), n);
    assert_got(f, want);
    /* With re-arm, once. */
    assert_int_equal(collect(f, true), n);
    assert_got(f, want);
    assert_int_equal(collect(f, true), 0);
    assert_int_equal(collect(f, false), 0);
    /* Until rewritten. */
    touch(f, 65);
    assert_int_equal(collect(f, true), 1);
    assert_true(test_bit(65, f->got));
    assert_int_equal(collect(f, false), 0);
}

/*
 * collect_range (the per-vCPU count scans a range before the log re-arms
 * it): only pages inside the range are reported, at their index from the
 * tracker's start, and only they are re-armed.
 */
static void test_collect_range(void **state)
{
    Fixture *f = *state;
    g_autofree unsigned long *want = bitmap_new(f->pages);
    const uint64_t lo = 64, hi = 1000;
    g_autoptr(GError) err = NULL;

    arm_all(f);
    write_chosen(f, want);
    memset(f->got, 0, BITS_TO_LONGS(f->pages) * sizeof(unsigned long));
    if (!uffd_wp_collect_range(f->t, lo * PAGE, (hi - lo) * PAGE, f->got, true,
                               &err)) {
        fail_msg("uffd_wp_collect_range: %s", err->message);
    }
    for (uint64_t i = 0; i < f->pages; i++) {
        bool in = i >= lo && i < hi && test_bit(i, want);
        if (test_bit(i, f->got) != in) {
            fail_msg("page %" G_GUINT64_FORMAT ": %s", i,
                     in ? "not reported" : "reported outside the range");
        }
    }
    /* the range was re-armed; the pages outside it are still written */
    bitmap_clear_range(want, lo, hi - lo);
    assert_int_equal(collect(f, false), bitmap_count(want, f->pages));
    assert_got(f, want);
}

static void test_arm_subrange(void **state)
{
    Fixture *f = *state;
    g_autofree unsigned long *want = bitmap_new(f->pages);
    const uint64_t lo = 100, hi = 700; /* pages re-armed, as before a send */
    g_autoptr(GError) err = NULL;

    arm_all(f);
    write_chosen(f, want);
    if (!uffd_wp_arm(f->t, lo * PAGE, (hi - lo) * PAGE, &err)) {
        fail_msg("uffd_wp_arm: %s", err->message);
    }
    bitmap_clear_range(want, lo, hi - lo);
    assert_int_equal(collect(f, false), bitmap_count(want, f->pages));
    assert_got(f, want);
    /* Re-armed pages are tracked again from here. */
    touch(f, 400);
    set_bit(400, want);
    assert_int_equal(collect(f, true), bitmap_count(want, f->pages));
    assert_got(f, want);
    /* An empty arm is fine. */
    assert_true(uffd_wp_arm(f->t, f->cfg->size, 0, NULL));
}

/*
 * Every other page written: one region each, far more than one
 * PAGEMAP_SCAN output vector holds, so collect must go on from walk_end.
 */
static void test_vector_fills(void **state)
{
    Fixture *f = *state;
    g_autofree unsigned long *want = bitmap_new(f->pages);

    arm_all(f);
    for (uint64_t p = 0; p < f->pages; p += 2) {
        touch(f, p);
        set_bit(p, want);
    }
    assert_int_equal(collect(f, false), f->pages / 2);
    assert_got(f, want);
    assert_int_equal(collect(f, true), f->pages / 2);
    assert_got(f, want);
    /* Re-armed past every point where a scan stopped. */
    assert_int_equal(collect(f, false), 0);
}

#define NTHREADS 4
#define MIN_COLLECTS 100
#define MIN_WRITES 5000

typedef struct Writer {
    Fixture *f;
    int idx;
    unsigned long *written; /* pages this thread wrote, set atomically */
    int stop;               /* atomic, set by the main thread */
    int writes;             /* atomic, read by the main thread */
} Writer;

/*
 * Writes pages of its own (page % NTHREADS == idx in the lower half) and
 * pages shared with every other writer (upper half), each write a store to
 * this thread's word of the page and, on shared pages, also to a word all
 * threads store to. Records the page after the store.
 */
static gpointer writer_thread(gpointer opaque)
{
    Writer *w = opaque;
    uint64_t half = w->f->pages / 2, n = 0;
    GRand *r = g_rand_new_with_seed(w->idx + 1);

    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        bool shared = g_rand_boolean(r);
        uint64_t p = g_rand_int_range(r, 0, half);

        p = shared ? half + p : p / NTHREADS * NTHREADS + w->idx;
        uint64_t *page = (uint64_t *)(w->f->host + p * PAGE);

        __atomic_store_n(&page[w->idx], ++n, __ATOMIC_RELAXED);
        if (shared) {
            __atomic_store_n(&page[NTHREADS], n << 8 | w->idx,
                             __ATOMIC_RELAXED);
        }
        set_bit_atomic(p, w->written);
        __atomic_fetch_add(&w->writes, 1, __ATOMIC_RELAXED);
    }
    g_rand_free(r);
    return NULL;
}

static int min_writes(Writer *w)
{
    int m = INT_MAX;

    for (int i = 0; i < NTHREADS; i++) {
        m = MIN(m, __atomic_load_n(&w[i].writes, __ATOMIC_RELAXED));
    }
    return m;
}

/* What migration does with a collected bitmap: copy those pages out. */
static void send_pages(Fixture *f, char *shadow)
{
    for (uint64_t p = bitmap_find_next(f->got, f->pages, 0); p < f->pages;
         p = bitmap_find_next(f->got, f->pages, p + 1)) {
        uint64_t *src = (uint64_t *)(f->host + p * PAGE);
        uint64_t *dst = (uint64_t *)(shadow + p * PAGE);
        for (size_t i = 0; i < PAGE / sizeof(uint64_t); i++) {
            dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
        }
    }
}

static void test_threads_lose_no_write(void **state)
{
    Fixture *f = *state;
    g_autofree char *shadow = g_malloc(f->cfg->size);
    g_autofree unsigned long *all = bitmap_new(f->pages);
    Writer w[NTHREADS];
    GThread *th[NTHREADS];
    int collects = 0;

    arm_all(f);
    memcpy(shadow, f->host, f->cfg->size); /* the first full pass */
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (Writer){.f = f, .idx = i, .written = bitmap_new(f->pages)};
        th[i] = g_thread_new("writer", writer_thread, &w[i]);
    }
    while (collects < MIN_COLLECTS || min_writes(w) < MIN_WRITES) {
        collect(f, true);
        bitmap_or(all, f->got, f->pages);
        send_pages(f, shadow);
        collects++;
        g_usleep(100); /* let the writers run on a small host */
    }
    for (int i = 0; i < NTHREADS; i++) {
        __atomic_store_n(&w[i].stop, 1, __ATOMIC_RELAXED);
        g_thread_join(th[i]);
    }
    /* The final pass, with the writers stopped. */
    collect(f, true);
    bitmap_or(all, f->got, f->pages);
    send_pages(f, shadow);

    for (int i = 0; i < NTHREADS; i++) {
        for (uint64_t p = 0; p < f->pages; p++) {
            if (test_bit(p, w[i].written) && !test_bit(p, all)) {
                fail_msg("writer %d's page %" G_GUINT64_FORMAT
                         " never reported",
                         i, p);
            }
        }
        bitmap_free(w[i].written);
    }
    for (uint64_t p = 0; p < f->pages; p++) {
        if (memcmp(shadow + p * PAGE, f->host + p * PAGE, PAGE)) {
            fail_msg("page %" G_GUINT64_FORMAT " changed after it was sent "
                     "and was not reported again",
                     p);
        }
    }
    assert_int_equal(collect(f, false), 0);
}

static const Config memfd_8m = {BACKING_MEMFD, 8 * MiB};
static const Config anon_8m = {BACKING_ANON, 8 * MiB};
static const Config thp_8m = {BACKING_ANON_THP, 8 * MiB};
static const Config memfd_64m = {BACKING_MEMFD, 64 * MiB};
static const Config anon_64m = {BACKING_ANON, 64 * MiB};
static const Config thp_64m = {BACKING_ANON_THP, 64 * MiB};

#define CASE(fn, cfg)                                                          \
    {                                                                          \
#fn "/" #cfg, fn, setup, teardown, (void *)&cfg                        \
    }

#define CASES(fn) CASE(fn, memfd_8m), CASE(fn, anon_8m), CASE(fn, thp_8m)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASES(test_armed_clean_first_write),
        CASES(test_chosen_pages),
        CASES(test_rearm),
        CASES(test_arm_subrange),
        CASES(test_collect_range),
        CASES(test_threads_lose_no_write),
        CASE(test_vector_fills, memfd_64m),
        CASE(test_vector_fills, anon_64m),
        CASE(test_vector_fills, thp_64m),
    };
    g_autoptr(GError) err = NULL;

    if (!uffd_wp_probe(&err)) {
        printf("SKIP: %s\n", err->message);
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
