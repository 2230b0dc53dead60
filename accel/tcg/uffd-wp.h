/*
 * Dirty-page tracking without KVM: userfaultfd asynchronous write-protection
 * over one host memory range, read back with the PAGEMAP_SCAN ioctl.
 *
 * Arming a page write-protects it; the first write afterwards is resolved by
 * the kernel itself (no fault message, no handler thread) and leaves the page
 * writable, which PAGEMAP_SCAN reports as PAGE_IS_WRITTEN. A collect with
 * re-arm reports and re-protects in one page-table walk, under the page-table
 * lock, so a write racing with it is either reported now or by the next
 * collect. Needs Linux 6.7 or later; uffd_wp_probe() says whether this kernel
 * can.
 *
 * What is seen: writes through this mapping, by any thread, in user or
 * kernel mode (a read(2) into the range counts). A write to a transparent
 * huge page splits it and reports just the 4 KiB page. Not seen (checked on
 * 6.18): writes through another mapping of the same memfd, write(2) to the
 * memfd, and hole punches (fallocate PUNCH_HOLE, MADV_REMOVE): the page
 * reads as zero but is not reported, so discards must be tracked by their
 * caller. MADV_DONTNEED on anonymous memory drops the protection: those
 * pages report as written until armed again.
 */
#ifndef ACCEL_TCG_UFFD_WP_H
#define ACCEL_TCG_UFFD_WP_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* Tracking granule: one bit per 4 KiB host page. */
#define UFFD_WP_PAGE_SIZE 4096

/*
 * One tracked range. Threads: all uffd_wp_* calls on one tracker come from
 * one thread at a time (the migration thread); the pages themselves may be
 * written by any number of other threads (vCPU threads) at any time, with no
 * locking: the kernel resolves the write faults.
 */
typedef struct UffdWp UffdWp;

/*
 * Whether this kernel offers everything the tracker needs: userfaultfd with
 * UFFD_FEATURE_WP_ASYNC and UFFD_FEATURE_WP_UNPOPULATED, and PAGEMAP_SCAN on
 * /proc/self/pagemap. On false the error names the missing feature.
 */
bool uffd_wp_probe(GError **errp);

/*
 * Registers [host, host + size) for write-protect tracking. Both must be
 * page aligned; the range may be anonymous or shared (memfd) memory, and must
 * stay mapped until uffd_wp_free(). Nothing is armed yet: until
 * uffd_wp_arm(), a collect reports every page, populated or not, as written.
 */
UffdWp *uffd_wp_new(void *host, uint64_t size, GError **errp);

/*
 * Write-protects [offset, offset + len) of the range (page aligned), so that
 * the next write to each page marks it written. Populated or not. Used over
 * the whole range when tracking starts, and as KVM's "clear dirty log" on a
 * sub-range just before those pages are sent.
 */
bool uffd_wp_arm(UffdWp *t, uint64_t offset, uint64_t len, GError **errp);

/*
 * ORs into bitmap (one bit per page of the range, bit i = page i, host
 * unsigned long words as in godwit/bitmap.h) every page written since it was
 * last armed. With rearm, the reported pages are write-protected again in
 * the same walk; without, they stay written and are reported again.
 */
bool uffd_wp_collect(UffdWp *t, unsigned long *bitmap, bool rearm,
                     GError **errp);
/*
 * The same over [offset, offset + len) only (page-aligned); bits are set
 * at the page's index from the start of the range the tracker covers.
 */
bool uffd_wp_collect_range(UffdWp *t, uint64_t offset, uint64_t len,
                           unsigned long *bitmap, bool rearm, GError **errp);

/* Unregisters the range and closes the descriptors; NULL is fine. */
void uffd_wp_free(UffdWp *t);

#endif /* ACCEL_TCG_UFFD_WP_H */
