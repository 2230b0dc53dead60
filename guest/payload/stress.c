/*
 * stress: vm=N workers rewriting vm-bytes each, forever (like stress --vm).
 * Arguments: vm=N (1) vm-bytes=SIZE (64M) vm-stride=BYTES (4096)
 *            vm-hang=SECONDS (0) rate=BYTES_PER_S (0 = unlimited)
 *            vm-lock=0|1 (0)
 *
 * vm-lock=1 hammers a spinlock shared by all workers (and so all vCPUs):
 * with every stride slot written, a worker takes the lock (lock xchg),
 * increments a shared counter with a plain load and store, counts the
 * increment in its own counter, and lets go. Under the lock the shared
 * counter always equals the sum of the workers' counters, unless two
 * vCPUs were inside at once: then an increment is lost for good. On each
 * request and migration every worker checks and prints
 *   stress: lock ok count=N
 *   stress: lock FAILED shared=S sum=T
 */
#include "stress-write.h"

const char payload_name[] = "stress";

static volatile uint32_t hammer_lock;
static volatile uint64_t hammer_shared;
static volatile uint64_t hammer_own[VM_MAX_WORKERS];

static void hammer_acquire(void)
{
    while (__atomic_exchange_n(&hammer_lock, 1, __ATOMIC_ACQUIRE)) {
        cpu_relax();
    }
}

static void hammer_release(void)
{
    __atomic_store_n(&hammer_lock, 0, __ATOMIC_RELEASE);
}

static void lock_write(VmWorker *w, uint64_t off, uint64_t len)
{
    stress_write(w, off, len);
    for (uint64_t o = off; o < off + len; o += w->stride) {
        hammer_acquire();
        uint64_t v = hammer_shared; /* a lost update if not exclusive */
        hammer_own[w->index]++;
        hammer_shared = v + 1;
        hammer_release();
    }
}

static void lock_event(RtCpu *c, VmWorker *w, unsigned ev)
{
    uint64_t shared, sum = 0;

    hammer_acquire();
    shared = hammer_shared;
    for (unsigned i = 0; i < VM_MAX_WORKERS; i++) {
        sum += hammer_own[i];
    }
    hammer_release();
    if (shared == sum) {
        rt_printf("stress: lock ok count=%lu\n", shared);
    } else {
        rt_printf("stress: lock FAILED shared=%lu sum=%lu\n", shared, sum);
    }
}

static const VmOps stress_ops = {
    .write = stress_write,
};

static const VmOps stress_lock_ops = {
    .write = lock_write,
    .event = lock_event,
};

void payload_main(int argc, char **argv)
{
    static const char *const bools[] = {"0", "1", NULL};
    uint64_t lock = 0;
    const ArgSpec extra[] = {
        {"vm-lock", ARG_CHOICE, &lock, bools},
        {NULL, ARG_UINT, NULL, NULL},
    };
    VmConfig cfg = {
        .workers = 1,
        .bytes = 64 * MiB,
        .stride = 4096,
        .hang = 0,
        .rate = 0,
    };

    if (!vm_args(&cfg, extra, argc, argv)) {
        rt_park_forever(&rt_cpus[0]);
    }
    vm_run(lock ? &stress_lock_ops : &stress_ops, &cfg);
}
