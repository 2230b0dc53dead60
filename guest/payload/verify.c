/*
 * verify: workers keep rewriting every page of their regions; a page's
 * contents are a pure function of (page frame number, generation) and the
 * generation of each page is kept in a table outside the region. After
 * every migration and every x-guest-request each worker checks all its
 * pages, so a lost, stale or corrupted page (any byte) is caught.
 *
 * Page layout, with n = 4096 / vm-stride slots at offsets k * vm-stride:
 *   slot 0       tag = generation << 32 | (pfn & 0xffffffff)
 *   slot k       mix64(pfn ^ mix64(generation)) + k * 0x9e37...
 *   slot n-1     checksum: ~(sum of slots 0..n-2)         (n >= 2)
 *   other bytes  zero
 *
 * Arguments: vm=N (1) vm-bytes=SIZE (32M) vm-stride=BYTES (8, divides 4096)
 *            vm-hang=SECONDS (0) rate=BYTES_PER_S (0 = unlimited)
 * Output: verify ok pages=N gen=G
 *         verify FAILED worker=W page=P gpa=0x... expected-gen=E
 *                found-gen=F found-tag=0x... offset=0x... found=0x...
 *                expected=0x... bad-pages=K pages=N gen=G
 */
#include "vm.h"
#include "mix.h"

const char payload_name[] = "verify";

#define SLOT_STEP 0x9e3779b97f4a7c15ull

typedef struct PageKey {
    uint64_t tag, h;
    unsigned n;    /* slots */
    unsigned step; /* words per slot */
} PageKey;

static PageKey page_key(uint64_t addr, uint32_t gen, uint64_t stride)
{
    uint64_t pfn = addr >> 12;

    return (PageKey){
        .tag = (uint64_t)gen << 32 | (uint32_t)pfn,
        .h = mix64(pfn ^ mix64(gen)),
        .n = (unsigned)(PAGE_SIZE / stride),
        .step = (unsigned)(stride / 8),
    };
}

static inline uint64_t slot_value(const PageKey *key, unsigned k, uint64_t sum)
{
    if (k == 0) {
        return key->tag;
    }
    if (k == key->n - 1) {
        return ~sum;
    }
    return key->h + k * SLOT_STEP;
}

static void page_write(uint64_t addr, uint32_t gen, uint64_t stride, bool fresh)
{
    volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)addr;
    PageKey key = page_key(addr, gen, stride);
    uint64_t sum = 0;

    if (fresh) {
        memset((void *)(uintptr_t)addr, 0, PAGE_SIZE);
    }
    for (unsigned k = 0; k < key.n; k++) {
        uint64_t v = slot_value(&key, k, sum);
        p[k * key.step] = v;
        sum += v;
    }
}

/* Index of the first wrong word of a page, or -1. */
static int page_compare(uint64_t addr, uint32_t gen, uint64_t stride,
                        uint64_t *expected)
{
    const uint64_t *p = (const uint64_t *)(uintptr_t)addr;
    PageKey key = page_key(addr, gen, stride);
    uint64_t sum = 0;

    for (unsigned k = 0; k < key.n; k++) {
        unsigned w = k * key.step;
        uint64_t v = slot_value(&key, k, sum);
        if (p[w] != v) {
            *expected = v;
            return (int)w;
        }
        sum += v;
        for (unsigned j = 1; j < key.step; j++) {
            if (p[w + j]) {
                *expected = 0;
                return (int)(w + j);
            }
        }
    }
    return -1;
}

static void verify_write(VmWorker *w, uint64_t off, uint64_t len)
{
    uint32_t *gens = (uint32_t *)(uintptr_t)w->aux;
    uint32_t gen = (uint32_t)w->pass;

    for (uint64_t o = off; o < off + len; o += PAGE_SIZE) {
        uint64_t i = o / PAGE_SIZE;
        page_write(w->base + o, gen, w->stride, gens[i] == 0);
        gens[i] = gen;
    }
}

static void verify_check(RtCpu *c, VmWorker *w)
{
    const uint32_t *gens = (const uint32_t *)(uintptr_t)w->aux;
    uint64_t npages = w->size / PAGE_SIZE, checked = 0, bad = 0;
    uint64_t first = 0, expected = 0;
    int word = -1;

    for (uint64_t i = 0; i < npages; i++) {
        uint64_t e;
        int at;
        if (!gens[i]) {
            continue; /* never written */
        }
        checked++;
        if (i % 16 == 0) {
            rt_observe(c); /* a stop during the check is a pause too */
        }
        at = page_compare(w->base + i * PAGE_SIZE, gens[i], w->stride, &e);
        if (at >= 0 && bad++ == 0) {
            first = i;
            word = at;
            expected = e;
        }
    }
    if (!bad) {
        rt_printf("verify ok pages=%lu gen=%lu\n", checked, c->gen);
        rt_report(c, GW_REPORT_VERIFY, 1, checked, UINT64_MAX);
        return;
    }
    {
        uint64_t gpa = w->base + first * PAGE_SIZE;
        const uint64_t *p = (const uint64_t *)(uintptr_t)gpa;
        rt_printf("verify FAILED worker=%u page=%lu gpa=0x%lx "
                  "expected-gen=%u found-gen=%lu found-tag=0x%lx "
                  "offset=0x%x found=0x%lx expected=0x%lx bad-pages=%lu "
                  "pages=%lu gen=%lu\n",
                  w->index, first, gpa, gens[first], p[0] >> 32, p[0], word * 8,
                  p[word], expected, bad, checked, c->gen);
        rt_report(c, GW_REPORT_VERIFY, 0, checked, first);
    }
}

static void verify_setup(RtCpu *c, VmWorker *w)
{
    uint64_t npages = w->size / PAGE_SIZE;

    w->aux_size = ALIGN_UP(npages * sizeof(uint32_t), PAGE_SIZE);
    w->aux = mem_alloc(w->aux_size, PAGE_SIZE);
    if (!w->aux) {
        rt_fail(c, "not enough memory for worker %u's generation table",
                w->index);
    }
    memset((void *)(uintptr_t)w->aux, 0, w->aux_size);
    rt_printf("verify: worker %u gen-table 0x%lx-0x%lx\n", w->index, w->aux,
              w->aux + w->aux_size);
}

static void verify_event(RtCpu *c, VmWorker *w, unsigned ev)
{
    verify_check(c, w);
}

static const VmOps verify_ops = {
    .gran = PAGE_SIZE,
    /*
     * Small chunks: the pages written after a switchover and before the
     * next look at the clock are rewritten before they are checked.
     */
    .chunk_max = 64 * KiB,
    .first_pass_before_ready = true,
    .setup = verify_setup,
    .write = verify_write,
    .event = verify_event,
};

void payload_main(int argc, char **argv)
{
    VmConfig cfg = {
        .workers = 1,
        .bytes = 32 * MiB,
        .stride = 8,
        .hang = 0,
        .rate = 0,
    };

    if (!vm_args(&cfg, NULL, argc, argv)) {
        rt_park_forever(&rt_cpus[0]);
    }
    vm_run(&verify_ops, &cfg);
}
