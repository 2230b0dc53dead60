/*
 * Unit tests for migration/postcopy-ram.c, the destination side of post-copy
 * over userfaultfd, over a 64 MiB memfd mapping as godwit's RAM. A fake
 * source thread answers requests by placing pages whose content is a
 * function of the page index (every 7th a zero page): one thread touching
 * every page, vCPU-like threads racing with a background push, pages
 * received before the start, free() with threads blocked, blocktime, and the
 * probe with its test hook. Exits 77 (skip) without userfaultfd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "godwit/bitmap.h"
#include "../../migration/postcopy-ram.h"

#define PAGE POSTCOPY_RAM_PAGE_SIZE
#define RAM_SIZE (64ull << 20)
#define PAGES (RAM_SIZE / PAGE)
#define WORDS (PAGE / sizeof(uint64_t))
#define SOURCE_STOP GUINT_TO_POINTER(1) /* queue items: page + 2 */

typedef struct Fixture {
    uint8_t *host;
    PostcopyRam *pr;
    /* The fake source: answers what the fault thread queues. */
    GAsyncQueue *queue;
    GThread *source;
    bool answer;            /* false: requests are only counted */
    _Atomic int *requested; /* per page: times asked for */
    _Atomic int place_errors;
} Fixture;

/* The source's copy of page p: zero, or words that name page and offset. */
static bool page_is_zero(uint64_t p)
{
    return p % 7 == 3;
}

static void fill_page(uint64_t p, uint64_t *buf)
{
    for (uint64_t i = 0; i < WORDS; i++) {
        buf[i] =
            page_is_zero(p) ? 0 : ((p * WORDS + i) * 0x9e3779b97f4a7c15ull) | 1;
    }
}

/*
 * Reads page p of the guest RAM, the first load faulting, and says whether
 * all of it is the source's copy (zeros: whether it is all zero).
 */
static bool read_page_ok(Fixture *f, uint64_t p, bool zeros)
{
    const volatile uint64_t *mem = (const uint64_t *)(f->host + p * PAGE);
    uint64_t want[WORDS];

    if (zeros) {
        memset(want, 0, sizeof(want));
    } else {
        fill_page(p, want);
    }
    (void)mem[0];
    return !memcmp((const void *)mem, want, PAGE);
}

static bool place_page(PostcopyRam *pr, uint64_t p)
{
    g_autoptr(GError) err = NULL;
    uint64_t buf[WORDS];

    fill_page(p, buf);
    if (!postcopy_ram_place(pr, p * PAGE, page_is_zero(p) ? NULL : buf, &err)) {
        fprintf(stderr, "place page %" G_GUINT64_FORMAT ": %s\n", p,
                err->message);
        return false;
    }
    return true;
}

/* The PostcopyRequestFn: on the fault thread. */
static void request_page(void *opaque, uint64_t offset, uint64_t len)
{
    Fixture *f = opaque;

    g_assert(len == PAGE && offset % PAGE == 0 && offset < RAM_SIZE);
    atomic_fetch_add(&f->requested[offset / PAGE], 1);
    g_async_queue_push(f->queue, GUINT_TO_POINTER(offset / PAGE + 2));
}

static gpointer source_thread(gpointer opaque)
{
    Fixture *f = opaque;
    gpointer item;

    while ((item = g_async_queue_pop(f->queue)) != SOURCE_STOP) {
        if (f->answer && !place_page(f->pr, GPOINTER_TO_UINT(item) - 2)) {
            atomic_fetch_add(&f->place_errors, 1);
        }
    }
    return NULL;
}

/* Registers the RAM (received: pages already there) and starts the source. */
static void start(Fixture *f, const unsigned long *received, bool answer)
{
    g_autoptr(GError) err = NULL;

    f->pr =
        postcopy_ram_new(f->host, RAM_SIZE, received, request_page, f, &err);
    if (!f->pr) {
        fail_msg("postcopy_ram_new: %s", err->message);
    }
    f->answer = answer;
    f->source = g_thread_new("source", source_thread, f);
}

static void stop_source(Fixture *f)
{
    if (f->source) {
        g_async_queue_push(f->queue, SOURCE_STOP);
        g_thread_join(f->source);
        f->source = NULL;
    }
}

static PostcopyRamStats stats(Fixture *f)
{
    PostcopyRamStats s;

    postcopy_ram_stats(f->pr, &s);
    return s;
}

static int setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);
    int fd = memfd_create("test-postcopy-ram", MFD_CLOEXEC);

    f->host =
        fd < 0 || ftruncate(fd, RAM_SIZE) < 0
            ? MAP_FAILED
            : mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (f->host == MAP_FAILED) {
        print_error("memfd mapping: %s\n", g_strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        g_free(f);
        return -1;
    }
    close(fd);
    f->queue = g_async_queue_new();
    f->requested = g_new0(_Atomic int, PAGES);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;

    stop_source(f);
    postcopy_ram_free(f->pr);
    munmap(f->host, RAM_SIZE);
    g_async_queue_unref(f->queue);
    g_free(f->requested);
    g_free(f);
    return 0;
}

/* All pages in an order fixed by seed. */
static uint64_t *shuffled(uint32_t seed)
{
    uint64_t *order = g_new(uint64_t, PAGES);
    GRand *r = g_rand_new_with_seed(seed);

    for (uint64_t i = 0; i < PAGES; i++) {
        order[i] = i;
    }
    for (uint64_t i = PAGES - 1; i > 0; i--) {
        uint64_t j = g_rand_int_range(r, 0, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    g_rand_free(r);
    return order;
}

static bool fault_thread_named(void)
{
    g_autoptr(GDir) dir = g_dir_open("/proc/self/task", 0, NULL);
    const char *tid;

    while (dir && (tid = g_dir_read_name(dir))) {
        g_autofree char *path = g_strdup_printf("/proc/self/task/%s/comm", tid);
        g_autofree char *comm = NULL;
        if (g_file_get_contents(path, &comm, NULL, NULL) &&
            !strcmp(g_strstrip(comm), "mig/dst/fault")) {
            return true;
        }
    }
    return false;
}

static void test_single_thread(void **state)
{
    Fixture *f = *state;
    g_autofree uint64_t *order = shuffled(1);
    PostcopyRamStats s;

    start(f, NULL, true);
    assert_true(fault_thread_named());
    assert_int_equal(postcopy_ram_missing_pages(f->pr), PAGES);
    for (uint64_t i = 0; i < PAGES; i++) {
        if (!read_page_ok(f, order[i], false)) {
            fail_msg("page %" G_GUINT64_FORMAT " is wrong", order[i]);
        }
    }
    /* The last page's thread may run before its placement is over. */
    stop_source(f);
    assert_int_equal(postcopy_ram_missing_pages(f->pr), 0);
    for (uint64_t p = 0; p < PAGES; p++) {
        if (f->requested[p] != 1) {
            fail_msg("page %" G_GUINT64_FORMAT " requested %d times", p,
                     f->requested[p]);
        }
        assert_true(postcopy_ram_received(f->pr, p));
    }
    assert_int_equal(bitmap_count(postcopy_ram_received_map(f->pr), PAGES),
                     PAGES);
    s = stats(f);
    assert_int_equal(f->place_errors, 0);
    assert_int_equal(s.requests, PAGES);
    assert_true(s.faults >= PAGES);
    assert_int_equal(s.pages_placed + s.zero_pages, PAGES);
    assert_int_equal(s.zero_pages, (PAGES + 3) / 7);
    assert_int_equal(s.duplicates + s.eexist, 0);
    assert_int_equal(s.latency_samples, PAGES);
    assert_true(s.fault_latency_us_p50 <= s.fault_latency_us_p99);
    assert_true(s.fault_latency_us_p99 <= s.fault_latency_us_max);
    print_message(
        "    round trip p50 %" G_GUINT64_FORMAT " us, p99 %" G_GUINT64_FORMAT
        " us, max %" G_GUINT64_FORMAT " us\n",
        s.fault_latency_us_p50, s.fault_latency_us_p99, s.fault_latency_us_max);
}

#define NREADERS 4
#define PUSH_AFTER_REQUESTS 64

typedef struct Reader {
    Fixture *f;
    int idx;
    _Atomic pid_t tid; /* published by the thread */
    _Atomic bool go;
    uint64_t bad; /* pages read wrong, and the first one */
    uint64_t first_bad;
} Reader;

static void reader_wait_go(Reader *r)
{
    atomic_store(&r->tid, gettid());
    while (!atomic_load(&r->go)) {
        g_usleep(100);
    }
}

/*
 * Reads every even page (all readers share them) and its own quarter of the
 * odd pages, in its own order, checking every byte of each.
 */
static gpointer reader_thread(gpointer opaque)
{
    Reader *r = opaque;
    g_autofree uint64_t *order = shuffled(100 + r->idx);

    reader_wait_go(r);
    for (uint64_t i = 0; i < PAGES; i++) {
        uint64_t p = order[i];
        if (p % 2 && (p / 2) % NREADERS != (uint64_t)r->idx) {
            continue;
        }
        if (!read_page_ok(r->f, p, false) && !r->bad++) {
            r->first_bad = p;
        }
    }
    return NULL;
}

/* Places every page in order, from when the readers have asked for some. */
static gpointer push_thread(gpointer opaque)
{
    Fixture *f = opaque;

    while (stats(f).requests < PUSH_AFTER_REQUESTS) {
        g_usleep(100);
    }
    for (uint64_t p = 0; p < PAGES; p++) {
        if (!place_page(f->pr, p)) {
            atomic_fetch_add(&f->place_errors, 1);
        }
    }
    return NULL;
}

/* Starts n readers, the first nvcpus registered as vCPUs 0.., then lets
 * them go. */
static void start_readers(Fixture *f, Reader *r, GThread **th, int n,
                          GThreadFunc fn, int nvcpus)
{
    for (int i = 0; i < n; i++) {
        r[i] = (Reader){.f = f, .idx = i};
        th[i] = g_thread_new("reader", fn, &r[i]);
    }
    for (int i = 0; i < n; i++) {
        while (!atomic_load(&r[i].tid)) {
            g_usleep(100);
        }
        if (i < nvcpus) {
            postcopy_ram_register_vcpu(f->pr, i, r[i].tid);
        }
    }
    for (int i = 0; i < n; i++) {
        atomic_store(&r[i].go, true);
    }
}

static void test_readers_and_push(void **state)
{
    Fixture *f = *state;
    Reader r[NREADERS];
    GThread *th[NREADERS], *push;
    PostcopyRamStats s;

    start(f, NULL, true);
    push = g_thread_new("push", push_thread, f);
    start_readers(f, r, th, NREADERS, reader_thread, NREADERS);
    for (int i = 0; i < NREADERS; i++) {
        g_thread_join(th[i]);
        if (r[i].bad) {
            fail_msg("reader %d read %" G_GUINT64_FORMAT
                     " pages wrong, first page %" G_GUINT64_FORMAT,
                     i, r[i].bad, r[i].first_bad);
        }
    }
    g_thread_join(push);
    stop_source(f);
    s = stats(f);
    assert_int_equal(f->place_errors, 0);
    assert_int_equal(postcopy_ram_missing_pages(f->pr), 0);
    for (uint64_t p = 0; p < PAGES; p++) {
        if (f->requested[p] > 1) {
            fail_msg("page %" G_GUINT64_FORMAT " requested %d times", p,
                     f->requested[p]);
        }
    }
    /* Each requested page was placed twice, once by each placing thread. */
    assert_true(s.requests >= PUSH_AFTER_REQUESTS);
    assert_int_equal(s.duplicates + s.eexist, s.requests);
    assert_int_equal(s.pages_placed + s.zero_pages, PAGES);
    assert_int_equal(s.nr_vcpus, NREADERS);
    for (uint64_t p = 0; p < PAGES; p++) {
        assert_true(read_page_ok(f, p, false));
    }
    print_message("    %" G_GUINT64_FORMAT " faults, %" G_GUINT64_FORMAT
                  " requests, %" G_GUINT64_FORMAT
                  " duplicates, %" G_GUINT64_FORMAT " EEXIST\n",
                  s.faults, s.requests, s.duplicates, s.eexist);
}

static bool prefilled(uint64_t p)
{
    return p % 3 == 0;
}

static void test_received_at_start(void **state)
{
    Fixture *f = *state;
    g_autofree unsigned long *received = bitmap_new(PAGES);
    g_autofree uint64_t *order = shuffled(2);
    uint64_t n = 0;

    for (uint64_t p = 0; p < PAGES; p++) {
        if (prefilled(p)) {
            fill_page(p, (uint64_t *)(f->host + p * PAGE));
            set_bit(p, received);
            n++;
        }
    }
    start(f, received, true);
    assert_int_equal(postcopy_ram_missing_pages(f->pr), PAGES - n);
    assert_true(postcopy_ram_received(f->pr, 0));
    assert_false(postcopy_ram_received(f->pr, 1));
    for (uint64_t i = 0; i < PAGES; i++) {
        if (!read_page_ok(f, order[i], false)) {
            fail_msg("page %" G_GUINT64_FORMAT " is wrong", order[i]);
        }
    }
    stop_source(f);
    for (uint64_t p = 0; p < PAGES; p++) {
        if (f->requested[p] != !prefilled(p)) {
            fail_msg("page %" G_GUINT64_FORMAT " requested %d times", p,
                     f->requested[p]);
        }
    }
    assert_int_equal(stats(f).requests, PAGES - n);
    assert_int_equal(postcopy_ram_missing_pages(f->pr), 0);
}

/* Pages the blocked threads of test_free_while_blocked wait on. */
static const uint64_t blocked_pages[NREADERS] = {10, 11, 11, PAGES - 1};

static gpointer blocked_thread(gpointer opaque)
{
    Reader *r = opaque;

    reader_wait_go(r);
    if (!read_page_ok(r->f, blocked_pages[r->idx], true)) {
        r->bad = 1;
    }
    return NULL;
}

static void wait_faults(Fixture *f, uint64_t n)
{
    while (stats(f).faults < n) {
        g_usleep(200);
    }
}

static void test_free_while_blocked(void **state)
{
    Fixture *f = *state;
    Reader r[NREADERS];
    GThread *th[NREADERS];

    start(f, NULL, false);
    start_readers(f, r, th, NREADERS, blocked_thread, NREADERS);
    wait_faults(f, NREADERS); /* each read while its thread waits */
    assert_int_equal(stats(f).requests, 3);
    postcopy_ram_free(f->pr);
    f->pr = NULL;
    for (int i = 0; i < NREADERS; i++) {
        g_thread_join(th[i]);
        assert_int_equal(r[i].bad, 0);
    }
}

/* vCPU 0 waits on page 0 for BT_A ms, vCPU 1 on page 1 for BT_B ms. */
#define BT_A 50
#define BT_B 80
#define BT_SLACK 150

static gpointer bt_thread(gpointer opaque)
{
    Reader *r = opaque;

    reader_wait_go(r);
    if (!read_page_ok(r->f, r->idx, false)) {
        r->bad = 1;
    }
    return NULL;
}

static void test_blocktime(void **state)
{
    Fixture *f = *state;
    Reader r[3];
    GThread *th[3];
    PostcopyRamStats s;

    start(f, NULL, false);
    /* Readers 0 and 1 are vCPUs; reader 2 (page 2) is not. */
    start_readers(f, r, th, 3, bt_thread, 2);
    wait_faults(f, 3);
    g_usleep(BT_A * 1000);
    assert_true(place_page(f->pr, 0));
    assert_true(place_page(f->pr, 2));
    g_usleep((BT_B - BT_A) * 1000);
    assert_true(place_page(f->pr, 1));
    for (int i = 0; i < 3; i++) {
        g_thread_join(th[i]);
        assert_int_equal(r[i].bad, 0);
    }
    s = stats(f);
    assert_int_equal(s.nr_vcpus, 2);
    assert_int_equal(s.latency_samples, 3);
    assert_true(s.fault_latency_us_max >= BT_B * 1000);
    if (!s.blocktime_available) {
        print_message(
            "    blocktime not available (no UFFD_FEATURE_THREAD_ID)\n");
        return;
    }
    print_message("    blocktime vcpu0 %u ms, vcpu1 %u ms, all %u ms\n",
                  s.vcpu_blocktime_ms[0], s.vcpu_blocktime_ms[1],
                  s.blocktime_ms);
    assert_in_range(s.vcpu_blocktime_ms[0], BT_A, BT_A + BT_SLACK);
    assert_in_range(s.vcpu_blocktime_ms[1], BT_B, BT_B + BT_SLACK);
    /* Both were blocked from the later fault to page 0's placement. */
    assert_in_range(s.blocktime_ms, BT_A, s.vcpu_blocktime_ms[0]);
}

/* Every page placed before anything touches it: no fault at all. */
static void nofault_place_all(void **state)
{
    Fixture *f = *state;
    PostcopyRamStats s;

    start(f, NULL, true);
    for (uint64_t p = 0; p < PAGES; p++) {
        assert_true(place_page(f->pr, p));
    }
    assert_int_equal(postcopy_ram_missing_pages(f->pr), 0);
    for (uint64_t p = 0; p < PAGES; p++) {
        assert_true(read_page_ok(f, p, false));
    }
    /* Placed again, data or zero: duplicates, left alone. */
    assert_true(place_page(f->pr, 5));
    assert_true(postcopy_ram_place(f->pr, 6 * PAGE, NULL, NULL));
    assert_true(read_page_ok(f, 6, false));
    s = stats(f);
    assert_int_equal(s.faults, 0);
    assert_int_equal(s.requests, 0);
    assert_int_equal(s.pages_placed + s.zero_pages, PAGES);
    assert_int_equal(s.duplicates, 2);
    assert_int_equal(s.latency_samples, 0);
}

static void nofault_probe_and_errors(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    PostcopyRamCaps caps;

    assert_true(postcopy_ram_supported(NULL));
    assert_true(postcopy_ram_probe(&caps, NULL));
    print_message("    kernel faults %s, thread id %s\n",
                  caps.kernel_faults ? "yes" : "no",
                  caps.thread_id ? "yes" : "no");

    setenv(POSTCOPY_RAM_NO_UFFD_ENV, "1", 1);
    assert_false(postcopy_ram_supported(&err));
    assert_non_null(strstr(err->message, POSTCOPY_RAM_NO_UFFD_ENV));
    g_clear_error(&err);
    assert_null(
        postcopy_ram_new(f->host, RAM_SIZE, NULL, request_page, f, &err));
    assert_non_null(strstr(err->message, POSTCOPY_RAM_NO_UFFD_ENV));
    g_clear_error(&err);
    setenv(POSTCOPY_RAM_NO_UFFD_ENV, "0", 1);
    assert_true(postcopy_ram_supported(NULL));
    unsetenv(POSTCOPY_RAM_NO_UFFD_ENV);

    assert_null(
        postcopy_ram_new(f->host + 1, PAGE, NULL, request_page, f, &err));
    g_clear_error(&err);
    start(f, NULL, true);
    assert_false(postcopy_ram_place(f->pr, RAM_SIZE, NULL, &err));
    g_clear_error(&err);
    assert_false(postcopy_ram_place(f->pr, 100, NULL, &err));
    assert_int_equal(stats(f).pages_placed + stats(f).zero_pages, 0);
}

#define CASE(fn)                                                               \
    {                                                                          \
#fn, fn, setup, teardown, NULL                                         \
    }

/* Usage: test-postcopy-ram [cmocka test name pattern] */
int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        CASE(test_single_thread),       CASE(test_readers_and_push),
        CASE(test_received_at_start),   CASE(test_free_while_blocked),
        CASE(test_blocktime),           CASE(nofault_place_all),
        CASE(nofault_probe_and_errors),
    };
    g_autoptr(GError) err = NULL;

    if (!postcopy_ram_supported(&err)) {
        printf("SKIP: %s\n", err->message);
        return 77;
    }
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    } else if (RUNNING_ON_VALGRIND) {
        /*
         * Valgrind 3.19 runs one thread at a time under a big lock, which a
         * thread blocked in a userfault keeps: the fault thread never runs
         * and the first fault hangs the process for good.
         */
        printf("valgrind: only the cases that take no fault\n");
        cmocka_set_test_filter("nofault_*");
    }
    alarm(60); /* a deadlock fails the run instead of hanging it */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
