/*
 * Hypercall port ABI between godwit and its guest payloads.
 *
 * Shared, as plain constants and one struct, by the host device
 * (hw/hypercall.c) and the freestanding guest runtime (guest/). Nothing
 * here may depend on a host library: only <stdint.h>.
 *
 * Protocol
 * --------
 * Probe: a 32-bit IN from GW_HC_PORT returns GW_HC_MAGIC under godwit.
 *   Under QEMU (or any VMM without the device) the read returns all ones,
 *   and a payload falls back to what it can do alone (serial output, PIT
 *   calibration of the TSC, running every worker on the boot CPU).
 *
 * Call: the guest fills a GwHcRequest (8-byte aligned, below 4 GiB, one
 *   per vCPU) and does a 32-bit OUT of its guest-physical address to
 *   GW_HC_PORT. The request is handled synchronously in the calling
 *   vCPU's thread; when the OUT instruction retires, `status` and `ret[]`
 *   are filled. A request that is not inside guest RAM is ignored and
 *   counted as a bad request by the host.
 *
 * All values are little-endian (guest native).
 */
#ifndef GODWIT_HYPERCALL_ABI_H
#define GODWIT_HYPERCALL_ABI_H

#include <stdint.h>

#define GW_HC_PORT    0x0ec0
#define GW_HC_MAGIC   0x54574447u /* "GDWT" */
#define GW_HC_VERSION 1

/* Hypercall numbers (GwHcRequest.op). */
enum {
    /* ret0 = GW_HC_VERSION */
    GW_HC_PROBE = 0,
    /*
     * Print a line: arg0 = guest-physical address of the bytes, arg1 =
     * length (at most GW_HC_PUTS_MAX). The bytes go to the same backend as
     * the serial port, so a payload may use either.
     */
    GW_HC_PUTS = 1,
    /*
     * Machine facts: ret0 = TSC frequency in kHz, ret1 = number of vCPUs,
     * ret2 = index of the calling vCPU, ret3 = RAM size in bytes.
     */
    GW_HC_INFO = 2,
    /*
     * Host clock: ret0 = host CLOCK_REALTIME in ns, ret1 = incoming
     * migration generation (incremented each time this guest's state is
     * loaded on a destination), ret2 = request counter (incremented by the
     * x-guest-request monitor command).
     */
    GW_HC_CLOCK = 3,
    /*
     * Park the calling vCPU without burning host CPU (ring-3 code cannot
     * hlt): arg0 = generation, arg1 = request counter as the guest last saw
     * them. Returns, with ret[] as for GW_HC_CLOCK, as soon as either
     * differs, or when the vCPU is paused (stop, migration switchover):
     * status = GW_HC_EINTR then. Callers loop.
     */
    GW_HC_PARK = 4,
    /*
     * godwit boot extension (-smp N): start vCPUs 1..N-1 in the caller's
     * own mode (64-bit, ring 3, same CR3/GDT/segments) at arg0 = entry,
     * with RSP = arg1 - (index - 1) * arg2, RDI = vCPU index, RSI = arg3.
     * ret0 = number of vCPUs started. Only once per boot; a second call
     * returns status GW_HC_EINVAL.
     */
    GW_HC_START_APS = 5,
    /* A structured result: arg0 = GW_REPORT_*, arg1..arg3 as listed below. */
    GW_HC_REPORT = 6,
    /* Guest-initiated shutdown: arg0 = exit code. godwit shuts the VM down. */
    GW_HC_EXIT = 7,
    /*
     * Sleep the calling vCPU for arg0 nanoseconds of host time without
     * burning host CPU (rate-limited workloads). Returns early with
     * status GW_HC_EINTR when the vCPU is paused; callers recompute.
     */
    GW_HC_SLEEP = 8,
    GW_HC__MAX
};

/* Status codes (GwHcRequest.status). */
enum {
    GW_HC_OK = 0,
    GW_HC_EINVAL = -22,
    GW_HC_ENOSYS = -38,
    GW_HC_EINTR = -4,
};

/* Report kinds for GW_HC_REPORT. */
enum {
    /* arg1 = 1 ok / 0 bad, arg2 = pages checked, arg3 = first bad page index */
    GW_REPORT_VERIFY = 1,
    /* arg1 = worker index, arg2 = TSC cycles of the last pass, arg3 = bytes per pass */
    GW_REPORT_PERF = 2,
    /* arg1 = guest-visible pause in ns, arg2 = migration generation */
    GW_REPORT_PAUSE = 3,
    /* arg1 = bytes written so far (fill), arg2 = 1 when done */
    GW_REPORT_PROGRESS = 4,
    GW_REPORT__MAX
};

#define GW_HC_PUTS_MAX 4096

typedef struct GwHcRequest {
    uint32_t op;
    int32_t status;
    uint64_t arg[4];
    uint64_t ret[4];
} GwHcRequest;

#endif /* GODWIT_HYPERCALL_ABI_H */
