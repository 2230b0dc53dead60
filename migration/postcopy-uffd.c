/*
 * Post-copy's userfaultfd: opening one (the syscall, /dev/userfaultfd,
 * user-mode only), the API handshake asking for the features post-copy
 * needs, registering a range for missing faults, and the probe that tries
 * all of it on a page of shmem (postcopy_ram_probe()). No state: each call
 * works on the descriptor it is given or makes. Called from
 * postcopy-ram.c and by whoever probes; see postcopy-uffd.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "godwit/error.h"
#include "postcopy-ram.h"
#include "postcopy-uffd.h"

#define PAGE POSTCOPY_RAM_PAGE_SIZE

/* Opening a userfaultfd: the ways postcopy_uffd_open() tries, in turn. */
static int postcopy_uffd_syscall(int flags)
{
    return syscall(__NR_userfaultfd, flags);
}

/* /dev/userfaultfd (Linux 6.1): full descriptors for whoever may open it. */
static int postcopy_uffd_dev(int flags)
{
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    int fd, err;

    if (dev < 0) {
        return -1;
    }
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    err = errno;
    close(dev);
    errno = err;
    return fd;
}

/* Any process may have one (Linux 5.11); see PostcopyRamCaps. */
static int postcopy_uffd_user_mode(int flags)
{
    return syscall(__NR_userfaultfd, flags | UFFD_USER_MODE_ONLY);
}

/*
 * A fresh userfaultfd. Without CAP_SYS_PTRACE and with
 * vm.unprivileged_userfaultfd=0 the syscall says EPERM, and only then are
 * the other ways worth trying. The error is the syscall's: it names the
 * cause, where the fallbacks' (ENOENT, EINVAL on old kernels) would not.
 */
static int postcopy_uffd_open(bool *kernel_faults, GError **errp)
{
    static int (*const ways[])(int flags) = {
        postcopy_uffd_syscall,
        postcopy_uffd_dev,
        postcopy_uffd_user_mode,
    };
    const char *hook = getenv(POSTCOPY_RAM_NO_UFFD_ENV);
    int first_err = 0;

    if (hook && *hook && strcmp(hook, "0")) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "userfaultfd: disabled by %s=%s (test hook)",
                    POSTCOPY_RAM_NO_UFFD_ENV, hook);
        return -1;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(ways); i++) {
        int fd = ways[i](O_CLOEXEC | O_NONBLOCK);

        if (fd >= 0) {
            *kernel_faults = ways[i] != postcopy_uffd_user_mode;
            return fd;
        }
        first_err = first_err ? first_err : errno;
        if (first_err != EPERM && first_err != ENOSYS) {
            break;
        }
    }
    if (first_err == EPERM) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "userfaultfd: %s (vm.unprivileged_userfaultfd=0?)",
                    g_strerror(first_err));
    } else if (first_err == ENOSYS) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "userfaultfd: %s (kernel without CONFIG_USERFAULTFD, or "
                    "a seccomp filter)",
                    g_strerror(first_err));
    } else {
        gw_error_errno(errp, first_err, "userfaultfd");
    }
    return -1;
}

/* A fresh userfaultfd after its API handshake asking for features. */
static int postcopy_uffd_handshake(uint64_t features, PostcopyRamCaps *caps,
                                   uint64_t *offered, GError **errp)
{
    struct uffdio_api api = {.api = UFFD_API, .features = features};
    int fd = postcopy_uffd_open(&caps->kernel_faults, errp);

    if (fd >= 0 && ioctl(fd, UFFDIO_API, &api) < 0) {
        gw_error_errno(errp, errno, "userfaultfd: UFFDIO_API (features 0x%llx)",
                       (unsigned long long)features);
        close(fd);
        return -1;
    }
    *offered = api.features;
    return fd;
}

/*
 * A userfaultfd ready for post-copy, with UFFD_FEATURE_THREAD_ID when
 * offered. The handshake can be done once per descriptor and fails as a
 * whole on a feature the kernel lacks, so a first descriptor only reads
 * what is offered.
 */
int postcopy_uffd_new(PostcopyRamCaps *caps, GError **errp)
{
    uint64_t offered, want = UFFD_FEATURE_MISSING_SHMEM;
    int fd = postcopy_uffd_handshake(0, caps, &offered, errp);

    if (fd < 0) {
        return -1;
    }
    close(fd);
    if (!(offered & UFFD_FEATURE_MISSING_SHMEM)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "userfaultfd lacks UFFD_FEATURE_MISSING_SHMEM (post-copy "
                    "of shared memory needs Linux 4.11 or later)");
        return -1;
    }
    caps->thread_id = offered & UFFD_FEATURE_THREAD_ID;
    want |= offered & UFFD_FEATURE_THREAD_ID;
    return postcopy_uffd_handshake(want, caps, &offered, errp);
}

/*
 * Registers [start, start + len) for missing faults. On false the caller
 * closes the descriptor, which unregisters what was registered.
 */
bool postcopy_uffd_register(int uffd, uintptr_t start, uint64_t len,
                            GError **errp)
{
    const uint64_t need =
        1ull << _UFFDIO_COPY | 1ull << _UFFDIO_ZEROPAGE | 1ull << _UFFDIO_WAKE;
    struct uffdio_register reg = {
        .range = {.start = start, .len = len},
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };

    if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        return gw_error_errno(errp, errno,
                              "userfaultfd: register 0x%" G_GINT64_MODIFIER
                              "x+0x%" G_GINT64_MODIFIER "x for missing faults",
                              (uint64_t)start, len);
    }
    if ((reg.ioctls & need) != need) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "userfaultfd cannot place pages in this memory (offers "
                    "ioctls 0x%llx, needs COPY, ZEROPAGE and WAKE)",
                    (unsigned long long)reg.ioctls);
        return false;
    }
    return true;
}

bool postcopy_check_page_size(GError **errp)
{
    if (sysconf(_SC_PAGESIZE) != PAGE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "post-copy needs %d-byte host pages, not %ld", PAGE,
                    sysconf(_SC_PAGESIZE));
        return false;
    }
    return true;
}

bool postcopy_ram_probe(PostcopyRamCaps *caps, GError **errp)
{
    PostcopyRamCaps local;
    void *p = MAP_FAILED;
    bool ok = false;
    int uffd, mfd;

    if (!postcopy_check_page_size(errp)) {
        return false;
    }
    uffd = postcopy_uffd_new(caps ? caps : &local, errp);
    if (uffd < 0) {
        return false;
    }
    mfd = memfd_create("postcopy-probe", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, PAGE) < 0) {
        gw_error_errno(errp, errno, "post-copy probe: memfd");
        goto out;
    }
    p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (p == MAP_FAILED) {
        gw_error_errno(errp, errno, "post-copy probe: mmap");
        goto out;
    }
    ok = postcopy_uffd_register(uffd, (uintptr_t)p, PAGE, errp);
    munmap(p, PAGE);
out:
    if (mfd >= 0) {
        close(mfd);
    }
    close(uffd);
    return ok;
}

bool postcopy_ram_supported(GError **errp)
{
    return postcopy_ram_probe(NULL, errp);
}
