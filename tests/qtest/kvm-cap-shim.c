/*
 * LD_PRELOAD shim for qtests: hides KVM capabilities from godwit, so that
 * the paths for a kernel without them run on a kernel that has them.
 * GWTEST_HIDE_KVM_CAPS="192,223" makes KVM_CHECK_EXTENSION answer 0 for
 * those capability numbers; every other ioctl goes to libc's.
 */
#include <dlfcn.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int (*IoctlFn)(int fd, unsigned long req, ...);

static int cap_hidden(long cap)
{
    const char *list = getenv("GWTEST_HIDE_KVM_CAPS");
    char *end;

    while (list && *list) {
        long v = strtol(list, &end, 10);
        if (end == list) {
            return 0;
        }
        if (v == cap) {
            return 1;
        }
        list = *end == ',' ? end + 1 : end;
    }
    return 0;
}

int ioctl(int fd, unsigned long req, ...)
{
    static IoctlFn real;
    va_list ap;
    void *arg;

    va_start(ap, req);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (!real) {
        real = (IoctlFn)dlsym(RTLD_NEXT, "ioctl");
    }
    if (req == KVM_CHECK_EXTENSION && cap_hidden((long)(uintptr_t)arg)) {
        return 0;
    }
    return real(fd, req, arg);
}
