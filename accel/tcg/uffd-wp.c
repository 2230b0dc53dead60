/*
 * Dirty-page tracker over one host memory range: owns a userfaultfd in
 * asynchronous write-protect mode registered over the range, and a
 * /proc/self/pagemap descriptor whose PAGEMAP_SCAN ioctl reads (and
 * re-protects) the pages written since they were armed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "godwit/bitmap.h"
#include "godwit/error.h"
#include "uffd-wp.h"

/*
 * Debian 12 ships 6.1 uapi headers; these come from Linux 6.7's
 * linux/userfaultfd.h and linux/fs.h.
 */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#ifndef PAGEMAP_SCAN
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)

#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)

#define PM_SCAN_WP_MATCHING (1 << 0)   /* write-protect what matched */
#define PM_SCAN_CHECK_WPASYNC (1 << 1) /* fail on a non-WP_ASYNC vma */

struct page_region {
    __u64 start;
    __u64 end; /* exclusive */
    __u64 categories;
};

struct pm_scan_arg {
    __u64 size; /* sizeof(struct pm_scan_arg) */
    __u64 flags;
    __u64 start;
    __u64 end;
    __u64 walk_end; /* out: where the walk stopped */
    __u64 vec;      /* struct page_region[vec_len] */
    __u64 vec_len;
    __u64 max_pages;
    __u64 category_inverted;
    __u64 category_mask;
    __u64 category_anyof_mask;
    __u64 return_mask;
};
#endif

/* Regions returned per PAGEMAP_SCAN call (24 KiB). */
#define UFFD_WP_VEC_LEN 1024

struct UffdWp {
    /* Set at creation, read-only afterwards. */
    int uffd;
    int pagemap_fd;
    uint64_t start; /* host address of page 0 */
    uint64_t size;
    /* Owned by the one thread calling uffd_wp_* at a time. */
    struct page_region *vec;
};

/*
 * A fresh userfaultfd. Without CAP_SYS_PTRACE and with
 * vm.unprivileged_userfaultfd=0 (Debian's default) the syscall says EPERM:
 * then try /dev/userfaultfd, and failing that UFFD_USER_MODE_ONLY, which
 * any process may ask for. It only refuses to handle faults taken in kernel
 * mode, and asynchronous write faults never reach a handler: a read(2) into
 * an armed page is still tracked (checked on Linux 6.18).
 */
static int uffd_wp_open_uffd(GError **errp)
{
    int flags = O_CLOEXEC | O_NONBLOCK;
    int fd = syscall(__NR_userfaultfd, flags);
    int dev;

    if (fd >= 0 || errno != EPERM) {
        goto out;
    }
    dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
        close(dev);
        if (fd >= 0) {
            return fd;
        }
    }
    fd = syscall(__NR_userfaultfd, flags | UFFD_USER_MODE_ONLY);
out:
    if (fd < 0 && errno == ENOSYS) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "dirty tracking needs userfaultfd (CONFIG_USERFAULTFD); "
                    "this kernel does not offer it");
    } else if (fd < 0) {
        gw_error_errno(errp, errno, "userfaultfd");
    }
    return fd;
}

/*
 * A userfaultfd with asynchronous write-protection enabled. The handshake
 * can be done once per descriptor, so the offered features are read on a
 * throwaway one first, to name what is missing. WP_UNPOPULATED (markers on
 * pages not yet populated, so their first write is caught) comes with
 * WP_ASYNC: the kernel turns it on anyway. WP_HUGETLBFS_SHMEM is asked for
 * when offered; async mode registers memfd memory without it (6.18).
 */
static int uffd_wp_open(GError **errp)
{
    struct uffdio_api api = {.api = UFFD_API};
    uint64_t want = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
    int fd = uffd_wp_open_uffd(errp);

    if (fd < 0) {
        return -1;
    }
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        gw_error_errno(errp, errno, "userfaultfd UFFDIO_API");
        close(fd);
        return -1;
    }
    close(fd);
    if ((api.features & want) != want) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "dirty tracking needs userfaultfd asynchronous "
                    "write-protection (UFFD_FEATURE_WP_ASYNC, Linux 6.7 or "
                    "later); this kernel does not offer it");
        return -1;
    }
    want |= api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM;

    fd = uffd_wp_open_uffd(errp);
    if (fd < 0) {
        return -1;
    }
    api = (struct uffdio_api){.api = UFFD_API, .features = want};
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        gw_error_errno(errp, errno, "userfaultfd UFFDIO_API (features 0x%llx)",
                       (unsigned long long)want);
        close(fd);
        return -1;
    }
    return fd;
}

/* One PAGEMAP_SCAN call over [start, end); returns regions filled or < 0. */
static int uffd_wp_scan(int pagemap_fd, uint64_t start, uint64_t end,
                        uint64_t flags, struct page_region *vec,
                        uint64_t vec_len, uint64_t *walk_end)
{
    struct pm_scan_arg arg = {
        .size = sizeof(arg),
        .flags = flags,
        .start = start,
        .end = end,
        .vec = (uintptr_t)vec,
        .vec_len = vec_len,
        .category_mask = PAGE_IS_WRITTEN,
        .return_mask = PAGE_IS_WRITTEN,
    };
    int n;

    do {
        n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
    } while (n < 0 && errno == EINTR);
    *walk_end = arg.walk_end;
    return n;
}

bool uffd_wp_probe(GError **errp)
{
    uint64_t walk_end;
    int fd = uffd_wp_open(errp);
    int pm;

    if (fd < 0) {
        return false;
    }
    close(fd);
    pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pm < 0) {
        return gw_error_errno(errp, errno, "open /proc/self/pagemap");
    }
    /* An empty range: only asks whether the ioctl exists. */
    if (uffd_wp_scan(pm, 0, 0, 0, NULL, 0, &walk_end) < 0) {
        int err = errno;
        close(pm);
        if (err == ENOTTY || err == EINVAL) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "dirty tracking needs the PAGEMAP_SCAN ioctl on "
                        "/proc/self/pagemap (Linux 6.7 or later); this "
                        "kernel does not offer it");
            return false;
        }
        return gw_error_errno(errp, err, "PAGEMAP_SCAN");
    }
    close(pm);
    return true;
}

UffdWp *uffd_wp_new(void *host, uint64_t size, GError **errp)
{
    g_autofree UffdWp *t = g_new0(UffdWp, 1);
    struct uffdio_register reg = {
        .range = {.start = (uintptr_t)host, .len = size},
        .mode = UFFDIO_REGISTER_MODE_WP,
    };

    if (sysconf(_SC_PAGESIZE) != UFFD_WP_PAGE_SIZE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "dirty tracking needs %d-byte host pages, not %ld",
                    UFFD_WP_PAGE_SIZE, sysconf(_SC_PAGESIZE));
        return NULL;
    }
    if (!size || (reg.range.start | size) % UFFD_WP_PAGE_SIZE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "dirty tracking range %p+0x%" G_GINT64_MODIFIER
                    "x is empty or not page aligned",
                    host, size);
        return NULL;
    }
    t->start = reg.range.start;
    t->size = size;
    t->uffd = uffd_wp_open(errp);
    if (t->uffd < 0) {
        return NULL;
    }
    t->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (t->pagemap_fd < 0) {
        gw_error_errno(errp, errno, "open /proc/self/pagemap");
        goto fail_uffd;
    }
    if (ioctl(t->uffd, UFFDIO_REGISTER, &reg) < 0) {
        gw_error_errno(errp, errno,
                       "userfaultfd: register %p+0x%" G_GINT64_MODIFIER
                       "x for write-protect",
                       host, size);
        goto fail_pagemap;
    }
    if (!(reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT))) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "userfaultfd cannot write-protect this kind of memory");
        goto fail_pagemap; /* closing the uffd unregisters */
    }
    t->vec = g_new(struct page_region, UFFD_WP_VEC_LEN);
    return g_steal_pointer(&t);

fail_pagemap:
    close(t->pagemap_fd);
fail_uffd:
    close(t->uffd);
    return NULL;
}

bool uffd_wp_arm(UffdWp *t, uint64_t offset, uint64_t len, GError **errp)
{
    struct uffdio_writeprotect wp = {
        .range = {.start = t->start + offset, .len = len},
        .mode = UFFDIO_WRITEPROTECT_MODE_WP,
    };

    g_assert(offset % UFFD_WP_PAGE_SIZE == 0 && len % UFFD_WP_PAGE_SIZE == 0);
    g_assert(offset <= t->size && len <= t->size - offset);
    if (!len) {
        return true;
    }
    if (ioctl(t->uffd, UFFDIO_WRITEPROTECT, &wp) < 0) {
        return gw_error_errno(errp, errno,
                              "userfaultfd: write-protect 0x%" G_GINT64_MODIFIER
                              "x+0x%" G_GINT64_MODIFIER "x",
                              offset, len);
    }
    return true;
}

bool uffd_wp_collect(UffdWp *t, unsigned long *bitmap, bool rearm,
                     GError **errp)
{
    return uffd_wp_collect_range(t, 0, t->size, bitmap, rearm, errp);
}

bool uffd_wp_collect_range(UffdWp *t, uint64_t offset, uint64_t len,
                           unsigned long *bitmap, bool rearm, GError **errp)
{
    uint64_t flags = PM_SCAN_CHECK_WPASYNC | (rearm ? PM_SCAN_WP_MATCHING : 0);
    uint64_t cur = t->start + offset, end = cur + len;

    g_assert(offset % UFFD_WP_PAGE_SIZE == 0 && len % UFFD_WP_PAGE_SIZE == 0);
    g_assert(offset <= t->size && len <= t->size - offset);

    /*
     * The kernel stops when vec is full and says where in walk_end; pages
     * past it were neither reported nor re-protected, so go on from there.
     */
    while (cur < end) {
        uint64_t walk_end;
        int n = uffd_wp_scan(t->pagemap_fd, cur, end, flags, t->vec,
                             UFFD_WP_VEC_LEN, &walk_end);

        if (n < 0) {
            return gw_error_errno(
                errp, errno, "PAGEMAP_SCAN at offset 0x%" G_GINT64_MODIFIER "x",
                cur - t->start);
        }
        for (int i = 0; i < n; i++) {
            const struct page_region *r = &t->vec[i];
            g_assert(r->start >= cur && r->end <= end && r->start < r->end);
            bitmap_set_range(bitmap, (r->start - t->start) / UFFD_WP_PAGE_SIZE,
                             (r->end - r->start) / UFFD_WP_PAGE_SIZE);
        }
        if (walk_end <= cur || walk_end > end) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "PAGEMAP_SCAN stopped at 0x%" G_GINT64_MODIFIER
                        "x, scanning from 0x%" G_GINT64_MODIFIER "x",
                        walk_end, cur);
            return false;
        }
        cur = walk_end;
    }
    return true;
}

void uffd_wp_free(UffdWp *t)
{
    struct uffdio_range range;

    if (!t) {
        return;
    }
    range = (struct uffdio_range){.start = t->start, .len = t->size};
    /* Fails harmlessly if the range was unmapped; closing unregisters too. */
    ioctl(t->uffd, UFFDIO_UNREGISTER, &range);
    close(t->uffd);
    close(t->pagemap_fd);
    g_free(t->vec);
    g_free(t);
}
