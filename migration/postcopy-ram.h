/*
 * Post-copy RAM, destination side: guest RAM is registered with a
 * userfaultfd in missing mode, so that after switchover any access to a
 * page that has not arrived yet blocks the accessing thread (a vCPU thread,
 * under KVM or under an emulator touching the memory directly) until the
 * page is placed. A fault thread reads the faults and asks the source for
 * each missing page once; the incoming stream places pages with UFFDIO_COPY
 * (or UFFDIO_ZEROPAGE), which maps a whole page at once and wakes its
 * waiters, so no thread ever sees a half-written page.
 *
 * Memory: one range of 4 KiB pages, a MAP_SHARED mapping of a memfd
 * (shmem) as godwit's RAM; anonymous memory works too. Every page not
 * marked received at postcopy_ram_new() must be a hole (never populated):
 * a populated page never faults, so it would never be asked for.
 *
 * What the kernel does here (checked on Linux 6.18): UFFDIO_ZEROPAGE on
 * shmem allocates a zeroed page in the memfd, as a write would (anonymous
 * memory maps the shared zero page instead); a page populated by any path,
 * a racing UFFDIO_COPY included, makes UFFDIO_COPY and UFFDIO_ZEROPAGE fail
 * with EEXIST without waking anyone.
 */
#ifndef MIGRATION_POSTCOPY_RAM_H
#define MIGRATION_POSTCOPY_RAM_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Placement granule: the host page. */
#define POSTCOPY_RAM_PAGE_SIZE 4096

/* vCPUs whose blocktime is kept: cpu_index 0 .. POSTCOPY_RAM_MAX_VCPUS-1. */
#define POSTCOPY_RAM_MAX_VCPUS 64

/*
 * Test hook: with GODWIT_X_NO_UFFD=1 in the environment, the probe and
 * postcopy_ram_new() act as on a host without userfaultfd, so that tests can
 * run a destination that cannot do post-copy.
 */
#define POSTCOPY_RAM_NO_UFFD_ENV "GODWIT_X_NO_UFFD"

/* What the probe learnt about this host. */
typedef struct PostcopyRamCaps {
    /*
     * Faults taken in kernel mode are handled too. False when the only
     * descriptor this process may open is UFFD_USER_MODE_ONLY (no
     * CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=0, no access to
     * /dev/userfaultfd): then a kernel access to a missing page fails with
     * EFAULT instead of waiting, and KVM reaches guest RAM in kernel mode
     * (KVM_RUN would fail), as do read(2)/write(2) into guest RAM. Good
     * enough only for an emulator whose every access is a user-mode one.
     */
    bool kernel_faults;
    /* UFFD_FEATURE_THREAD_ID: faults name their thread, blocktime works. */
    bool thread_id;
} PostcopyRamCaps;

/*
 * Whether this host can do post-copy: a userfaultfd (trying the syscall,
 * then /dev/userfaultfd, then UFFD_USER_MODE_ONLY) offering
 * UFFD_FEATURE_MISSING_SHMEM, and a small memfd mapping registered in
 * missing mode offering UFFDIO_COPY, UFFDIO_ZEROPAGE and UFFDIO_WAKE. On
 * false the error says what is missing. caps may be NULL. Any thread.
 */
bool postcopy_ram_probe(PostcopyRamCaps *caps, GError **errp);

/* postcopy_ram_probe() without the details. */
bool postcopy_ram_supported(GError **errp);

/*
 * One range under post-copy. Threads:
 *  - the fault thread ("mig/dst/fault"), owned by the PostcopyRam, reads
 *    faults and calls the PostcopyRequestFn;
 *  - placement (postcopy_ram_place) from the incoming stream's thread(s);
 *  - the queries, postcopy_ram_stats and postcopy_ram_register_vcpu from
 *    any thread;
 *  - postcopy_ram_new / postcopy_ram_free from one thread, with no
 *    placement running during free.
 * Any number of other threads may access the range at any time.
 */
typedef struct PostcopyRam PostcopyRam;

/*
 * Called on the fault thread, once per page, the first time a thread
 * faults on that page while it has not been received: ask the source for
 * [offset, offset + len) of the range. Must not block long: every fault
 * waits behind it. May call postcopy_ram_place() itself (no lock is held).
 */
typedef void (*PostcopyRequestFn)(void *opaque, uint64_t offset, uint64_t len);

/*
 * Registers [host, host + length) (both page aligned; the range stays
 * mapped until postcopy_ram_free()) in missing mode and starts the fault
 * thread. received: bitmap of length / 4096 bits in godwit/bitmap.h's
 * layout, the pages already valid in the mapping (copied; NULL: none).
 * The caller guarantees every other page is a hole. Returns NULL with errp
 * set if the host cannot do post-copy or the range cannot be registered.
 */
PostcopyRam *postcopy_ram_new(uint8_t *host, uint64_t length,
                              const unsigned long *received,
                              PostcopyRequestFn req, void *opaque,
                              GError **errp);

/*
 * Places the page at offset: UFFDIO_COPY from data (4096 bytes, not inside
 * the range), or UFFDIO_ZEROPAGE when data is NULL, which wakes every
 * thread waiting on it; then marks it received (so a woken thread may read
 * the page a moment before postcopy_ram_received() says so). A page already
 * received is left alone (a page may be both requested and pushed) and counts
 * as a duplicate. Several threads may place at once: the loser of a race on one
 * page gets EEXIST from the kernel, which counts as received (see `eexist`).
 * Returns false with errp on a bad offset or a real kernel failure.
 */
bool postcopy_ram_place(PostcopyRam *pr, uint64_t offset, const void *data,
                        GError **errp);

/*
 * After a broken connection was recovered: asks again (PostcopyRequestFn,
 * on the calling thread) for every page a thread is still waiting on;
 * their first requests may have been lost with the connection.
 */
void postcopy_ram_rerequest_waiting(PostcopyRam *pr);

/* Whether page page_index has been placed (or was received at new). */
bool postcopy_ram_received(PostcopyRam *pr, uint64_t page_index);

/* Pages not received yet. */
uint64_t postcopy_ram_missing_pages(PostcopyRam *pr);

/*
 * The live bitmap of received pages (for recovery: sent back to the
 * source), bits set atomically as pages arrive; valid until free.
 */
const unsigned long *postcopy_ram_received_map(PostcopyRam *pr);

/*
 * Counts vCPU cpu_index, whose thread is tid, in the blocktime figures, from
 * its next fault on (re-registering an index moves it to the new tid). Faults
 * of threads that are not registered (e.g. a monitor command reading guest
 * RAM) are served but not counted. Without UFFD_FEATURE_THREAD_ID this only
 * records the vCPU. Returns false, counting nothing, for a cpu_index outside
 * 0 .. POSTCOPY_RAM_MAX_VCPUS-1. Any thread.
 */
bool postcopy_ram_register_vcpu(PostcopyRam *pr, int cpu_index, pid_t tid);

typedef struct PostcopyRamStats {
    uint64_t faults;       /* fault messages read */
    uint64_t requests;     /* PostcopyRequestFn calls */
    uint64_t pages_placed; /* UFFDIO_COPY done */
    uint64_t zero_pages;   /* UFFDIO_ZEROPAGE done */
    uint64_t duplicates;   /* places of pages already received */
    uint64_t eexist;       /* places that met a page populated meanwhile */
    /*
     * Blocktime, QEMU's postcopy-blocktime: per vCPU, total ms it spent
     * blocked on missing pages; blocktime_ms, total ms during which all
     * registered vCPUs were blocked at once. A wait runs from the read of
     * its fault to the placement of its page; waits still open are not
     * counted. Needs UFFD_FEATURE_THREAD_ID (blocktime_available).
     */
    bool blocktime_available;
    uint32_t blocktime_ms;
    uint32_t vcpu_blocktime_ms[POSTCOPY_RAM_MAX_VCPUS];
    int nr_vcpus; /* highest registered cpu_index + 1 */
    /*
     * Fault latency, from the read of a fault to the placement of its page,
     * over the faults that waited for a placement (one per thread and page;
     * faults met by a page already placed are not counted). From a bounded
     * log-linear histogram: within 1/8 of the true value; max is exact.
     */
    uint64_t latency_samples;
    uint64_t fault_latency_us_p50;
    uint64_t fault_latency_us_p99;
    uint64_t fault_latency_us_max;
} PostcopyRamStats;

/* A snapshot of the figures above. Any thread. */
void postcopy_ram_stats(PostcopyRam *pr, PostcopyRamStats *out);

/*
 * Stops the fault thread (the PostcopyRequestFn is not called after this
 * returns), unregisters the range and closes the descriptors. Every thread
 * still blocked on a missing page is woken and sees what the mapping holds
 * (a zero page for a hole). Safe while threads are blocked; NULL is fine.
 */
void postcopy_ram_free(PostcopyRam *pr);

#endif /* MIGRATION_POSTCOPY_RAM_H */
