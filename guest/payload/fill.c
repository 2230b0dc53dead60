/*
 * fill: write `size` bytes once with a pattern of known compressibility,
 * then park. Under godwit, each x-guest-request (request counter change)
 * refills the same region with a new seed, so a test knows exactly which
 * pages were written.
 *
 * Arguments: size=SIZE (64M) pattern=random|half|text|zero (random)
 *   random  xorshift64, incompressible
 *   half    each 4 KiB page: 2 KiB random, 2 KiB of one repeated byte
 *   text    English-like words, spaces, sentences and lines
 *   zero    zero bytes (every word written)
 * Output: fill: done [pass=K ]bytes=N pattern=P region 0xSTART-0xEND
 */
#include "rt.h"
#include "fill-pattern.h"

const char payload_name[] = "fill";

static const char *const fill_patterns[] = {
    "random", "half", "text", "zero", NULL,
};

static void fill_page(uint64_t addr, uint64_t pattern, uint64_t seed)
{
    fill_pattern_page((void *)(uintptr_t)addr, (unsigned)pattern,
                      mix64(seed ^ (addr >> 12)) | 1);
}

static void fill_region(RtCpu *c, uint64_t base, uint64_t bytes,
                        uint64_t pattern, uint64_t seed)
{
    for (uint64_t off = 0; off < bytes; off += PAGE_SIZE) {
        fill_page(base + off, pattern, seed);
        if (off && off % (256 * MiB) == 0) {
            rt_report(c, GW_REPORT_PROGRESS, off, 0, 0);
        }
    }
    rt_report(c, GW_REPORT_PROGRESS, bytes, 1, 0);
}

void payload_main(int argc, char **argv)
{
    RtCpu *c = &rt_cpus[0];
    uint64_t size = 64 * MiB, pattern = FILL_RANDOM, bytes, base;
    const ArgSpec specs[] = {
        {"size", ARG_SIZE, &size, NULL},
        {"pattern", ARG_CHOICE, &pattern, fill_patterns},
        {NULL, ARG_UINT, NULL, NULL},
    };

    if (!args_parse(argc, argv, specs)) {
        rt_park_forever(c);
    }
    if (!size) {
        rt_fail(c, "size must be positive");
    }
    bytes = ALIGN_UP(size, PAGE_SIZE);
    base = mem_alloc(bytes, 2 * MiB);
    if (!base) {
        rt_fail(c, "not enough memory for %lu bytes", bytes);
    }
    fill_region(c, base, bytes, pattern, 0);
    rt_printf("fill: done bytes=%lu pattern=%s region 0x%lx-0x%lx\n", bytes,
              fill_patterns[pattern], base, base + bytes);
    rt_printf("READY\n");
    for (uint64_t pass = 1;;) {
        if (rt_park(c) & RT_EV_REQUEST) {
            fill_region(c, base, bytes, pattern, mix64(pass));
            rt_printf("fill: done pass=%lu bytes=%lu pattern=%s "
                      "region 0x%lx-0x%lx\n",
                      pass, bytes, fill_patterns[pattern], base, base + bytes);
            pass++;
        }
    }
}
