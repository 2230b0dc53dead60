/*
 * stress: vm=N workers rewriting vm-bytes each, forever (like stress --vm).
 * Arguments: vm=N (1) vm-bytes=SIZE (64M) vm-stride=BYTES (4096)
 *            vm-hang=SECONDS (0) rate=BYTES_PER_S (0 = unlimited)
 */
#include "stress-write.h"

const char payload_name[] = "stress";

static const VmOps stress_ops = {
    .write = stress_write,
};

void payload_main(int argc, char **argv)
{
    VmConfig cfg = {
        .workers = 1,
        .bytes = 64 * MiB,
        .stride = 4096,
        .hang = 0,
        .rate = 0,
    };

    if (!vm_args(&cfg, argc, argv)) {
        rt_park_forever(&rt_cpus[0]);
    }
    vm_run(&stress_ops, &cfg);
}
