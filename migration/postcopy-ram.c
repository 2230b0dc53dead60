/*
 * Post-copy RAM, destination side: owns the userfaultfd registered over
 * guest RAM in missing mode, the fault thread that turns faults into page
 * requests, page placement, and the blocktime and fault-latency figures.
 * Opening, registering and probing the userfaultfd: postcopy-uffd.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "godwit/bitmap.h"
#include "godwit/error.h"
#include "postcopy-ram.h"
#include "postcopy-uffd.h"

#define PAGE POSTCOPY_RAM_PAGE_SIZE

/* Fault messages read per read(2). */
#define POSTCOPY_MSG_BATCH 64

/* Open waits kept; threads blocked beyond that are served but not timed. */
#define POSTCOPY_MAX_WAITS 1024

/*
 * Latency histogram, log-linear over nanoseconds: values below LAT_SUB are
 * their own bucket; above, each power of two is cut into LAT_SUB buckets.
 */
#define LAT_SUB_BITS 3
#define LAT_SUB (1 << LAT_SUB_BITS)
#define LAT_BUCKETS ((64 - LAT_SUB_BITS + 1) * LAT_SUB)

/* A thread blocked on a page, from the read of its fault on. */
typedef struct PostcopyWait {
    uint64_t page;
    uint64_t start_ns;
    pid_t tid; /* 0 without UFFD_FEATURE_THREAD_ID */
    int vcpu;  /* cpu_index, or -1 for a thread that is not a vCPU */
} PostcopyWait;

typedef struct PostcopyVcpu {
    pid_t tid;
    bool registered;
    bool blocked;
    uint64_t blocked_since_ns;
    uint64_t blocked_ns; /* closed waits only */
} PostcopyVcpu;

struct PostcopyRam {
    /* Set at creation, read-only afterwards. */
    int uffd;
    int stop_fd; /* eventfd: postcopy_ram_free() stops the fault thread */
    uintptr_t start;
    uint64_t length;
    uint64_t pages;
    bool thread_id; /* faults carry their thread id */
    PostcopyRequestFn req;
    void *opaque;
    pthread_t thread;

    /*
     * One bit a page, set with seq_cst atomics and never cleared: received
     * by the placing threads, requested by the fault thread. See
     * postcopy_fault() for why the order matters.
     */
    unsigned long *received;
    unsigned long *requested;

    /* Counters, read by postcopy_ram_stats() from any thread. */
    _Atomic uint64_t nr_received;
    _Atomic uint64_t faults;
    _Atomic uint64_t requests;
    _Atomic uint64_t placed;
    _Atomic uint64_t zero_pages;
    _Atomic uint64_t duplicates;
    _Atomic uint64_t eexist;

    /* Protected by lock: the fault thread, placement and the queries. */
    GMutex lock;
    GArray *waits; /* PostcopyWait, at most one per (tid, page) */
    PostcopyVcpu vcpus[POSTCOPY_RAM_MAX_VCPUS];
    int nr_vcpus;      /* highest registered index + 1 */
    int nr_registered; /* vCPUs registered */
    int nr_blocked;    /* registered vCPUs with an open wait */
    uint64_t all_blocked_since_ns;
    uint64_t all_blocked_ns;
    uint64_t lat_hist[LAT_BUCKETS];
    uint64_t lat_samples;
    uint64_t lat_max_ns;
};

static uint64_t postcopy_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Sets bit nr; returns whether it was set before. */
static bool postcopy_set_bit(unsigned long *map, uint64_t nr)
{
    unsigned long bit = 1ul << (nr % BITS_PER_LONG);

    return __atomic_fetch_or(&map[nr / BITS_PER_LONG], bit, __ATOMIC_SEQ_CST) &
           bit;
}

static bool postcopy_test_bit(const unsigned long *map, uint64_t nr)
{
    return (__atomic_load_n(&map[nr / BITS_PER_LONG], __ATOMIC_SEQ_CST) >>
            (nr % BITS_PER_LONG)) &
           1;
}

static unsigned postcopy_lat_bucket(uint64_t ns)
{
    int e;

    if (ns < LAT_SUB) {
        return ns;
    }
    e = 63 - __builtin_clzll(ns);
    return (e - LAT_SUB_BITS + 1) * LAT_SUB +
           ((ns >> (e - LAT_SUB_BITS)) & (LAT_SUB - 1));
}

/* The middle of bucket b, the inverse of postcopy_lat_bucket(). */
static uint64_t postcopy_lat_value(unsigned b)
{
    int e = b / LAT_SUB + LAT_SUB_BITS - 1;

    if (b < LAT_SUB) {
        return b;
    }
    return ((uint64_t)(LAT_SUB + b % LAT_SUB) << (e - LAT_SUB_BITS)) +
           ((1ull << (e - LAT_SUB_BITS)) >> 1);
}

/* The q-quantile (0 < q <= 1) of the latencies, in ns. Lock held. */
static uint64_t postcopy_lat_quantile_locked(PostcopyRam *pr, double q)
{
    uint64_t rank = MAX((uint64_t)(q * pr->lat_samples + 0.999999), 1);
    uint64_t seen = 0;

    for (unsigned b = 0; b < LAT_BUCKETS; b++) {
        seen += pr->lat_hist[b];
        if (seen >= rank) {
            return MIN(postcopy_lat_value(b), pr->lat_max_ns);
        }
    }
    return pr->lat_max_ns;
}

static void postcopy_vcpu_block_locked(PostcopyRam *pr, int vcpu, uint64_t now)
{
    PostcopyVcpu *v = &pr->vcpus[vcpu];

    if (v->blocked) {
        return;
    }
    v->blocked = true;
    v->blocked_since_ns = now;
    if (++pr->nr_blocked == pr->nr_registered) {
        pr->all_blocked_since_ns = now;
    }
}

static void postcopy_vcpu_unblock_locked(PostcopyRam *pr, int vcpu,
                                         uint64_t now)
{
    PostcopyVcpu *v = &pr->vcpus[vcpu];

    if (!v->blocked) {
        return;
    }
    if (pr->nr_blocked == pr->nr_registered) {
        pr->all_blocked_ns += now - pr->all_blocked_since_ns;
    }
    pr->nr_blocked--;
    v->blocked = false;
    v->blocked_ns += now - v->blocked_since_ns;
}

/* Closes wait i: its page arrived. */
static void postcopy_wait_end_locked(PostcopyRam *pr, guint i, uint64_t now)
{
    PostcopyWait *w = &g_array_index(pr->waits, PostcopyWait, i);
    uint64_t ns = now - w->start_ns;

    pr->lat_hist[postcopy_lat_bucket(ns)]++;
    pr->lat_samples++;
    pr->lat_max_ns = MAX(pr->lat_max_ns, ns);
    if (w->vcpu >= 0) {
        postcopy_vcpu_unblock_locked(pr, w->vcpu, now);
    }
    g_array_remove_index_fast(pr->waits, i);
}

static int postcopy_vcpu_of_locked(PostcopyRam *pr, pid_t tid)
{
    for (int i = 0; tid && i < pr->nr_vcpus; i++) {
        if (pr->vcpus[i].registered && pr->vcpus[i].tid == tid) {
            return i;
        }
    }
    return -1;
}

/*
 * Opens a wait for thread tid on page, unless it has one already: the same
 * fault read again (the thread took a signal and faulted anew) keeps its
 * start. A thread now faulting on another page was woken from its old one,
 * usually by a placement that has yet to close that wait: the old wait stays
 * open for its latency, but no longer holds the vCPU, which stays blocked.
 */
static void postcopy_wait_begin_locked(PostcopyRam *pr, uint64_t page,
                                       pid_t tid, uint64_t now)
{
    PostcopyWait w = {.page = page, .start_ns = now, .tid = tid};
    PostcopyWait *same = NULL;

    w.vcpu = postcopy_vcpu_of_locked(pr, tid);
    for (guint i = 0; i < pr->waits->len; i++) {
        PostcopyWait *o = &g_array_index(pr->waits, PostcopyWait, i);
        if (o->tid == tid && o->page == page) {
            same = o;
        } else if (tid && o->tid == tid) {
            o->vcpu = -1;
        }
    }
    if (same) {
        same->vcpu = w.vcpu;
    } else if (pr->waits->len < POSTCOPY_MAX_WAITS) {
        g_array_append_val(pr->waits, w);
    } else {
        return;
    }
    if (w.vcpu >= 0) {
        postcopy_vcpu_block_locked(pr, w.vcpu, now);
    }
}

static void postcopy_uffd_wake(PostcopyRam *pr, uint64_t page)
{
    struct uffdio_range range = {.start = pr->start + page * PAGE, .len = PAGE};

    /* Fails only on a range that is not registered: never here. */
    ioctl(pr->uffd, UFFDIO_WAKE, &range);
}

/*
 * One fault, on the fault thread. The fault thread and the placing thread
 * meet on two bitmaps, without a lock on the placement's fast path:
 *
 *   fault thread:  set requested(P); test received(P)
 *   placement:     UFFDIO_COPY(P); set received(P); test requested(P)
 *
 * All four are seq_cst, so at least one side sees the other's bit: either
 * the fault thread sees P received (and opens no wait), or the placement
 * sees P requested (and takes the lock to close the waits on P). A wait
 * opened on P is therefore always closed by P's placement.
 *
 * Wake-ups need no such care as long as the page is placed by a waking
 * UFFDIO_COPY/ZEROPAGE: the kernel queues a faulting thread before it
 * checks the page table once more, and the copy maps the page before it
 * wakes the queue, so a thread either sees the page or is woken. The
 * received bit is set after the copy (before it, the fault thread could
 * take a page for placed that is not mapped yet, and the bitmap sent back
 * to the source in recovery would claim a page the mapping lacks); a fault
 * read between the copy and the bit costs one spurious request, answered
 * as a duplicate. What the kernel does not wake is a thread queued on a
 * page that was then populated without UFFDIO_COPY (see postcopy_ram_place
 * on EEXIST): so a fault read for a page already received gets a
 * UFFDIO_WAKE, which is harmless if the thread is awake already.
 */
static void postcopy_fault(PostcopyRam *pr, const struct uffd_msg *msg,
                           uint64_t now)
{
    uint64_t addr = msg->arg.pagefault.address & ~(uint64_t)(PAGE - 1);
    pid_t tid = pr->thread_id ? (pid_t)msg->arg.pagefault.feat.ptid : 0;
    bool asked, received;
    uint64_t page;

    if (addr < pr->start || addr - pr->start >= pr->length) {
        return; /* not this range's: cannot happen */
    }
    page = (addr - pr->start) / PAGE;
    atomic_fetch_add(&pr->faults, 1);
    g_mutex_lock(&pr->lock);
    asked = postcopy_set_bit(pr->requested, page);
    received = postcopy_test_bit(pr->received, page);
    if (!received) {
        postcopy_wait_begin_locked(pr, page, tid, now);
    }
    g_mutex_unlock(&pr->lock);
    if (received) {
        postcopy_uffd_wake(pr, page);
    } else if (!asked) {
        atomic_fetch_add(&pr->requests, 1);
        pr->req(pr->opaque, page * PAGE, PAGE);
    }
}

static void *postcopy_fault_thread(void *opaque)
{
    PostcopyRam *pr = opaque;
    struct uffd_msg msgs[POSTCOPY_MSG_BATCH];
    struct pollfd pfd[2] = {
        {.fd = pr->uffd, .events = POLLIN},
        {.fd = pr->stop_fd, .events = POLLIN},
    };

    for (;;) {
        ssize_t n;
        uint64_t now;

        if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
            g_warning("post-copy fault thread: poll: %s", g_strerror(errno));
            break;
        }
        if (pfd[1].revents) {
            break;
        }
        n = read(pr->uffd, msgs, sizeof(msgs));
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            g_warning("post-copy fault thread: read: %s", g_strerror(errno));
            break;
        }
        now = postcopy_now_ns();
        for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++) {
            /* No other event was asked for in the handshake. */
            if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
                postcopy_fault(pr, &msgs[i], now);
            }
        }
    }
    return NULL;
}

/* Unregisters and frees; the fault thread is not running. */
static void postcopy_ram_destroy(PostcopyRam *pr)
{
    struct uffdio_range range = {.start = pr->start, .len = pr->length};

    if (pr->uffd >= 0) {
        /*
         * Wakes every blocked thread; each faults again on an unregistered
         * range and gets what the memfd holds. Closing would do it too;
         * this fails harmlessly if the range was never registered.
         */
        ioctl(pr->uffd, UFFDIO_UNREGISTER, &range);
        close(pr->uffd);
    }
    if (pr->stop_fd >= 0) {
        close(pr->stop_fd);
    }
    bitmap_free(pr->received);
    bitmap_free(pr->requested);
    g_array_free(pr->waits, true);
    g_mutex_clear(&pr->lock);
    g_free(pr);
}

PostcopyRam *postcopy_ram_new(uint8_t *host, uint64_t length,
                              const unsigned long *received,
                              PostcopyRequestFn req, void *opaque,
                              GError **errp)
{
    PostcopyRamCaps caps = {0};
    sigset_t all, old;
    PostcopyRam *pr;
    int err;

    g_assert(req);
    if (!length || ((uintptr_t)host | length) % PAGE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "post-copy range %p+0x%" G_GINT64_MODIFIER
                    "x is empty or not page aligned",
                    host, length);
        return NULL;
    }
    pr = g_new0(PostcopyRam, 1);
    pr->uffd = pr->stop_fd = -1;
    pr->start = (uintptr_t)host;
    pr->length = length;
    pr->pages = length / PAGE;
    pr->req = req;
    pr->opaque = opaque;
    pr->received = bitmap_new(pr->pages);
    pr->requested = bitmap_new(pr->pages);
    pr->waits = g_array_new(false, false, sizeof(PostcopyWait));
    g_mutex_init(&pr->lock);
    for (uint64_t p = received ? bitmap_find_next(received, pr->pages, 0)
                               : pr->pages;
         p < pr->pages; p = bitmap_find_next(received, pr->pages, p + 1)) {
        set_bit(p, pr->received);
        pr->nr_received++;
    }

    if (!postcopy_check_page_size(errp)) {
        goto fail;
    }
    pr->uffd = postcopy_uffd_new(&caps, errp);
    pr->thread_id = caps.thread_id;
    if (pr->uffd < 0 ||
        !postcopy_uffd_register(pr->uffd, pr->start, length, errp)) {
        goto fail;
    }
    pr->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (pr->stop_fd < 0) {
        gw_error_errno(errp, errno, "post-copy: eventfd");
        goto fail;
    }
    /* With every signal blocked: those for the process go elsewhere. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&pr->thread, NULL, postcopy_fault_thread, pr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        gw_error_errno(errp, err, "post-copy: fault thread");
        goto fail;
    }
    /* Named from here, so that the name is there when new() returns. */
    pthread_setname_np(pr->thread, "mig/dst/fault");
    return pr;

fail:
    postcopy_ram_destroy(pr);
    return NULL;
}

/* UFFDIO_COPY of data, or UFFDIO_ZEROPAGE, waking; 0 or -errno. */
static int postcopy_uffd_fill(PostcopyRam *pr, uint64_t page, const void *data)
{
    uint64_t dst = pr->start + page * PAGE;
    int r;

    do {
        if (data) {
            struct uffdio_copy copy = {
                .dst = dst, .src = (uintptr_t)data, .len = PAGE};
            r = ioctl(pr->uffd, UFFDIO_COPY, &copy);
        } else {
            struct uffdio_zeropage zero = {
                .range = {.start = dst, .len = PAGE}};
            r = ioctl(pr->uffd, UFFDIO_ZEROPAGE, &zero);
        }
        /* EAGAIN: the mm changed under the call; nothing was placed. */
    } while (r < 0 && (errno == EAGAIN || errno == EINTR));
    return r < 0 ? -errno : 0;
}

/*
 * The page is mapped: mark it, wake its threads if the kernel did not,
 * close its waits. See postcopy_fault() for the order.
 */
static void postcopy_mark_received(PostcopyRam *pr, uint64_t page, bool wake)
{
    if (!postcopy_set_bit(pr->received, page)) {
        atomic_fetch_add(&pr->nr_received, 1);
    }
    if (wake) {
        postcopy_uffd_wake(pr, page);
    }
    if (postcopy_test_bit(pr->requested, page)) {
        uint64_t now = postcopy_now_ns();

        g_mutex_lock(&pr->lock);
        for (guint i = 0; i < pr->waits->len;) {
            if (g_array_index(pr->waits, PostcopyWait, i).page == page) {
                postcopy_wait_end_locked(pr, i, now);
            } else {
                i++;
            }
        }
        g_mutex_unlock(&pr->lock);
    }
}

bool postcopy_ram_place(PostcopyRam *pr, uint64_t offset, const void *data,
                        GError **errp)
{
    uint64_t page = offset / PAGE;
    int r;

    if (offset % PAGE || offset >= pr->length) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "post-copy: page offset 0x%" G_GINT64_MODIFIER
                    "x is unaligned or past the end (0x%" G_GINT64_MODIFIER
                    "x)",
                    offset, pr->length);
        return false;
    }
    if (postcopy_test_bit(pr->received, page)) {
        atomic_fetch_add(&pr->duplicates, 1);
        return true;
    }
    r = postcopy_uffd_fill(pr, page, data);
    if (r == -EEXIST) {
        /*
         * Populated, though not marked received. Given the caller's promise
         * (holes everywhere else at new), only another placement of this
         * page can have done it, and post-copy pages do not change on the
         * source after switchover: the content is the same. It is not
         * compared, as a vCPU may have written to the page since. The
         * kernel woke no one for this call: mark_received wakes.
         */
        atomic_fetch_add(&pr->eexist, 1);
    } else if (r < 0) {
        return gw_error_errno(
            errp, -r, "userfaultfd: %s at offset 0x%" G_GINT64_MODIFIER "x",
            data ? "UFFDIO_COPY" : "UFFDIO_ZEROPAGE", offset);
    } else {
        atomic_fetch_add(data ? &pr->placed : &pr->zero_pages, 1);
    }
    postcopy_mark_received(pr, page, r == -EEXIST);
    return true;
}

void postcopy_ram_rerequest_waiting(PostcopyRam *pr)
{
    g_autoptr(GArray) pages = g_array_new(FALSE, FALSE, sizeof(uint64_t));

    g_mutex_lock(&pr->lock);
    for (guint i = 0; i < pr->waits->len; i++) {
        PostcopyWait *w = &g_array_index(pr->waits, PostcopyWait, i);
        bool dup = false;
        for (guint j = 0; j < pages->len && !dup; j++) {
            dup = g_array_index(pages, uint64_t, j) == w->page;
        }
        if (!dup && !postcopy_test_bit(pr->received, w->page)) {
            g_array_append_val(pages, w->page);
        }
    }
    g_mutex_unlock(&pr->lock);
    for (guint j = 0; j < pages->len; j++) {
        atomic_fetch_add(&pr->requests, 1);
        pr->req(pr->opaque, g_array_index(pages, uint64_t, j) * PAGE, PAGE);
    }
}

bool postcopy_ram_received(PostcopyRam *pr, uint64_t page_index)
{
    g_assert(page_index < pr->pages);
    return postcopy_test_bit(pr->received, page_index);
}

uint64_t postcopy_ram_missing_pages(PostcopyRam *pr)
{
    return pr->pages - atomic_load(&pr->nr_received);
}

const unsigned long *postcopy_ram_received_map(PostcopyRam *pr)
{
    return pr->received;
}

bool postcopy_ram_register_vcpu(PostcopyRam *pr, int cpu_index, pid_t tid)
{
    PostcopyVcpu *v;

    if (cpu_index < 0 || cpu_index >= POSTCOPY_RAM_MAX_VCPUS) {
        return false;
    }
    g_mutex_lock(&pr->lock);
    v = &pr->vcpus[cpu_index];
    if (!v->registered) {
        /* All were blocked, and the newcomer is not: that stretch ends. */
        if (pr->nr_registered && pr->nr_blocked == pr->nr_registered) {
            pr->all_blocked_ns += postcopy_now_ns() - pr->all_blocked_since_ns;
        }
        v->registered = true;
        pr->nr_registered++;
        pr->nr_vcpus = MAX(pr->nr_vcpus, cpu_index + 1);
    }
    v->tid = tid;
    g_mutex_unlock(&pr->lock);
    return true;
}

void postcopy_ram_stats(PostcopyRam *pr, PostcopyRamStats *out)
{
    memset(out, 0, sizeof(*out));
    out->faults = atomic_load(&pr->faults);
    out->requests = atomic_load(&pr->requests);
    out->pages_placed = atomic_load(&pr->placed);
    out->zero_pages = atomic_load(&pr->zero_pages);
    out->duplicates = atomic_load(&pr->duplicates);
    out->eexist = atomic_load(&pr->eexist);
    out->blocktime_available = pr->thread_id;

    g_mutex_lock(&pr->lock);
    out->nr_vcpus = pr->nr_vcpus;
    if (pr->thread_id) {
        out->blocktime_ms = pr->all_blocked_ns / 1000000;
        for (int i = 0; i < pr->nr_vcpus; i++) {
            out->vcpu_blocktime_ms[i] = pr->vcpus[i].blocked_ns / 1000000;
        }
    }
    out->latency_samples = pr->lat_samples;
    if (pr->lat_samples) {
        out->fault_latency_us_p50 =
            postcopy_lat_quantile_locked(pr, 0.50) / 1000;
        out->fault_latency_us_p99 =
            postcopy_lat_quantile_locked(pr, 0.99) / 1000;
        out->fault_latency_us_max = pr->lat_max_ns / 1000;
    }
    g_mutex_unlock(&pr->lock);
}

void postcopy_ram_free(PostcopyRam *pr)
{
    uint64_t one = 1;

    if (!pr) {
        return;
    }
    while (write(pr->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    pthread_join(pr->thread, NULL);
    postcopy_ram_destroy(pr);
}
