/*
 * The vm workload engine (see vm.h). Each vCPU runs vm_cpu_main() over
 * its own workers; the only shared state after start-up is the READY
 * barrier and the console.
 */
#include "vm.h"

#define VM_CHUNK (1 * MiB)

static struct {
    const VmOps *ops;
    VmWorker workers[VM_MAX_WORKERS];
    unsigned nworkers;
    unsigned ncpus;      /* vCPUs running workers */
    uint32_t go;         /* set when the workers are set up */
    uint32_t checked_in; /* vCPUs that finished their start */
} vm;

bool vm_args(VmConfig *cfg, const ArgSpec *extra, int argc, char **argv)
{
    ArgSpec specs[16] = {
        {"vm", ARG_UINT, &cfg->workers, NULL},
        {"vm-bytes", ARG_SIZE, &cfg->bytes, NULL},
        {"vm-stride", ARG_SIZE, &cfg->stride, NULL},
        {"vm-hang", ARG_UINT, &cfg->hang, NULL},
        {"rate", ARG_SIZE, &cfg->rate, NULL},
    };
    unsigned n = 5;

    for (; extra && extra->key && n < 15; extra++) {
        specs[n++] = *extra;
    }
    specs[n] = (ArgSpec){NULL, ARG_UINT, NULL, NULL};
    return args_parse(argc, argv, specs);
}

static void vm_dispatch(RtCpu *c, unsigned ev)
{
    if (!ev || !vm.ops->event) {
        return;
    }
    for (unsigned i = 0; i < vm.nworkers; i++) {
        if (vm.workers[i].cpu == c->index) {
            vm.ops->event(c, &vm.workers[i], ev);
        }
    }
}

/* Rate limit: true (and ready_tsc set) when @w is ahead of its rate. */
static bool vm_rate_ahead(VmWorker *w)
{
    uint64_t hz = (rt.tsc_khz ? rt.tsc_khz : 1000000) * 1000;
    uint64_t due = w->rate_tsc + muldiv64(w->rate_bytes, hz, w->rate);
    uint64_t now = rdtsc();

    if (due > now) {
        w->ready_tsc = due;
        return true;
    }
    /* Far behind (slept, stalled, or others ran): no catch-up burst. */
    if (now - due > 10 * rt.poll_cycles) {
        w->rate_tsc = now;
        w->rate_bytes = 0;
    }
    return false;
}

/* One turn of @w: write chunks until its pass ends or it must wait. */
static void vm_turn(RtCpu *c, VmWorker *w)
{
    if (w->pos == 0) {
        w->pass_tsc = rdtsc();
    }
    for (;;) {
        uint64_t len =
            w->size - w->pos < w->chunk ? w->size - w->pos : w->chunk;
        vm.ops->write(w, w->pos, len);
        w->pos += len;
        w->rate_bytes += (len + w->stride - 1) / w->stride * w->stride;
        vm_dispatch(c, rt_poll(c));
        if (w->pos >= w->size) {
            uint64_t cycles = rdtsc() - w->pass_tsc;
            if (vm.ops->pass_done) {
                vm.ops->pass_done(c, w, cycles);
            }
            w->pass++;
            w->pos = 0;
            if (w->hang_cycles) {
                w->ready_tsc = rdtsc() + w->hang_cycles;
            }
            return;
        }
        if (w->rate && vm_rate_ahead(w)) {
            return;
        }
    }
}

static void vm_ready_barrier(RtCpu *c)
{
    uint64_t start = rdtsc();
    uint64_t limit = 10000 * rt.poll_cycles; /* ~10 s */

    __atomic_add_fetch(&vm.checked_in, 1, __ATOMIC_ACQ_REL);
    if (c->index != 0) {
        return;
    }
    while (__atomic_load_n(&vm.checked_in, __ATOMIC_ACQUIRE) < vm.ncpus) {
        if (rdtsc() - start > limit) {
            rt_fail(c, "only %u of %u vCPUs started their workers",
                    __atomic_load_n(&vm.checked_in, __ATOMIC_ACQUIRE),
                    vm.ncpus);
        }
        cpu_relax();
    }
    rt_printf("READY\n");
}

static void vm_cpu_main(RtCpu *c)
{
    VmWorker *mine[VM_MAX_WORKERS];
    unsigned n = 0, cur = 0;

    while (!__atomic_load_n(&vm.go, __ATOMIC_ACQUIRE)) {
        cpu_relax();
    }
    for (unsigned i = 0; i < vm.nworkers; i++) {
        if (vm.workers[i].cpu == c->index) {
            mine[n++] = &vm.workers[i];
        }
    }
    if (!n) {
        rt_park_forever(c);
    }
    if (vm.ops->first_pass_before_ready) {
        for (unsigned i = 0; i < n; i++) {
            vm.ops->write(mine[i], 0, mine[i]->size);
            mine[i]->pass++;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        mine[i]->rate_tsc = rdtsc();
    }
    vm_ready_barrier(c);
    rt_rebase(c);

    for (;;) {
        uint64_t now = rdtsc(), earliest = UINT64_MAX;
        VmWorker *w = NULL;

        for (unsigned k = 0; k < n; k++) {
            VmWorker *x = mine[(cur + k) % n];
            if (x->ready_tsc <= now) {
                w = x;
                cur = (cur + k) % n;
                break;
            }
            if (x->ready_tsc < earliest) {
                earliest = x->ready_tsc;
            }
        }
        if (!w) {
            vm_dispatch(c, rt_wait_until(c, earliest));
            continue;
        }
        vm_turn(c, w);
        cur = (cur + 1) % n;
    }
}

static void vm_check(RtCpu *c, const VmOps *ops, const VmConfig *cfg)
{
    if (cfg->workers < 1 || cfg->workers > VM_MAX_WORKERS) {
        rt_fail(c, "vm must be 1..%u", VM_MAX_WORKERS);
    }
    if (cfg->stride < 8 || cfg->stride % 8) {
        rt_fail(c, "vm-stride must be a multiple of 8");
    }
    if (ops->gran && (cfg->stride > ops->gran || ops->gran % cfg->stride)) {
        rt_fail(c, "vm-stride must divide %lu", ops->gran);
    }
    if (cfg->bytes < cfg->stride) {
        rt_fail(c, "vm-bytes must be at least vm-stride");
    }
}

static void vm_setup_worker(RtCpu *c, const VmOps *ops, const VmConfig *cfg,
                            VmWorker *w, unsigned index)
{
    uint64_t gran = ops->gran ? ops->gran : cfg->stride;
    uint64_t target = ops->chunk_max ? ops->chunk_max : VM_CHUNK;

    w->index = index;
    w->size = ALIGN_UP(cfg->bytes, PAGE_SIZE);
    w->base = mem_alloc(w->size, 2 * MiB);
    if (!w->base) {
        rt_fail(c, "not enough memory for worker %u (%lu bytes)", index,
                w->size);
    }
    w->stride = cfg->stride;
    w->pass_bytes = (w->size + w->stride - 1) / w->stride * w->stride;
    w->rate = cfg->rate;
    w->hang_cycles = rt_ns_to_cycles(cfg->hang * 1000000000ull);
    if (w->rate && w->rate / 1000 < target) {
        target = w->rate / 1000; /* about 1 ms of writing per chunk */
    }
    w->chunk = target > gran ? target / gran * gran : gran;
    w->pass = 1;
}

void vm_run(const VmOps *ops, const VmConfig *cfg)
{
    RtCpu *c = &rt_cpus[0];
    unsigned ncpus;

    vm_check(c, ops, cfg);
    vm.ops = ops;
    vm.nworkers = (unsigned)cfg->workers;
    for (unsigned i = 0; i < vm.nworkers; i++) {
        vm_setup_worker(c, ops, cfg, &vm.workers[i], i);
    }

    /* godwit starts the other vCPUs now; they wait for vm.go. */
    ncpus = 1;
    if (vm.nworkers > 1 && rt.ncpus > 1) {
        unsigned started = rt_start_aps(vm_cpu_main);
        if (started == rt.ncpus - 1) {
            ncpus = rt.ncpus;
        } else {
            rt_printf("%s: started %u of %u vCPUs; running on vCPU 0\n",
                      payload_name, started, rt.ncpus);
        }
    }
    vm.ncpus = vm.nworkers < ncpus ? vm.nworkers : ncpus;
    for (unsigned i = 0; i < vm.nworkers; i++) {
        VmWorker *w = &vm.workers[i];
        w->cpu = i % ncpus;
        rt_printf("%s: worker %u cpu %u region 0x%lx-0x%lx\n", payload_name, i,
                  w->cpu, w->base, w->base + w->size);
    }
    for (unsigned i = 0; i < vm.nworkers; i++) {
        if (ops->setup) {
            ops->setup(c, &vm.workers[i]);
        }
    }
    __atomic_store_n(&vm.go, 1, __ATOMIC_RELEASE);
    vm_cpu_main(c);
    rt_park_forever(c);
}
