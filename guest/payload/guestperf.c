/*
 * guestperf: stress, plus one report per pass and worker of the pass time:
 *   guestperf: worker=W cpu=C pass=P cycles=N bytes=B [ms_per_gib=X.XXX]
 * and GW_REPORT_PERF (worker, cycles, bytes) under godwit.
 * Arguments as stress.
 */
#include "stress-write.h"

const char payload_name[] = "guestperf";

static void guestperf_pass_done(RtCpu *c, VmWorker *w, uint64_t cycles)
{
    char gib[40] = "";

    if (rt.tsc_khz) {
        /* ms per GiB, in thousandths: ns * 2^30 / bytes / 1000. */
        uint64_t ns = rt_cycles_to_ns(cycles);
        uint64_t us_per_gib = muldiv64(ns, GiB, w->pass_bytes) / 1000;
        rt_snprintf(gib, sizeof(gib), " ms_per_gib=%lu.%03lu",
                    us_per_gib / 1000, us_per_gib % 1000);
    }
    rt_printf("guestperf: worker=%u cpu=%u pass=%lu cycles=%lu bytes=%lu%s\n",
              w->index, c->index, w->pass, cycles, w->pass_bytes, gib);
    rt_report(c, GW_REPORT_PERF, w->index, cycles, w->pass_bytes);
}

static const VmOps guestperf_ops = {
    .write = stress_write,
    .pass_done = guestperf_pass_done,
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

    if (!vm_args(&cfg, NULL, argc, argv)) {
        rt_park_forever(&rt_cpus[0]);
    }
    vm_run(&guestperf_ops, &cfg);
}
