/*
 * Benchmark: zero-page detection (scalar, SSE2, AVX2) against a plain
 * memory-read pass over the same buffer, in GB/s, on all-zero pages (the
 * worst case: every byte must be read). Prints one line per variant.
 *
 *   bench-zero-page [MiB]     (default 1024)
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../migration/zero-page.h"

#define PAGE 4096

static double now_s(void)
{
    return g_get_monotonic_time() / 1e6;
}

/*
 * The ceiling: a plain pass that reads every byte once, as fast as plain C
 * goes (eight independent 64-bit chains, so the loop is bound by memory,
 * not by a dependency).
 */
static __attribute__((noinline)) uint64_t read_pass(const uint64_t *p,
                                                    size_t words)
{
    uint64_t a[8] = {0};

    for (size_t i = 0; i < words; i += 8) {
        for (int k = 0; k < 8; k++) {
            a[k] += p[i + k];
        }
    }
    return a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7];
}

static double best_of(int runs, double (*fn)(void *), void *arg)
{
    double best = 0;

    for (int i = 0; i < runs; i++) {
        double v = fn(arg);
        best = v > best ? v : best;
    }
    return best;
}

static uint8_t *buf;
static size_t len;

static double run_read(void *arg)
{
    double t = now_s();
    volatile uint64_t r = read_pass((const uint64_t *)buf, len / 8);
    (void)r;
    return len / (now_s() - t) / 1e9;
}

static double run_zero(void *arg)
{
    ZeroPageImpl impl = GPOINTER_TO_INT(arg);
    size_t zero = 0;
    double t = now_s();

    for (size_t off = 0; off < len; off += PAGE) {
        zero += buffer_is_zero_impl(impl, buf + off, PAGE);
    }
    double gbs = len / (now_s() - t) / 1e9;
    if (zero != len / PAGE) {
        fprintf(stderr, "%s: wrong answer\n", zero_page_impl_name(impl));
        exit(1);
    }
    return gbs;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 1024;
    double ceiling;

    len = mib << 20;
    buf = aligned_alloc(PAGE, len);
    memset(buf, 0, len); /* populated, all zero */
    ceiling = best_of(5, run_read, NULL);
    printf("read-pass %.2f GB/s 1.00\n", ceiling);
    for (int i = 0; i < ZERO_PAGE__MAX; i++) {
        if (!zero_page_available(i)) {
            continue;
        }
        double v = best_of(5, run_zero, GINT_TO_POINTER(i));
        printf("%s %.2f GB/s %.2f\n", zero_page_impl_name(i), v, v / ceiling);
    }
    free(buf);
    return 0;
}
