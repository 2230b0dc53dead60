"""The machine sections: boot, guest page-write rate, host memory,
dirty-log sync (and the dirty ring), the zero-page check.
"""
import os
import re
import statistics
import subprocess
import time

from gwqmp import ROOT
from . import common
from .common import (GW, QEMU, Qemu, QemuVM, median_info, payload, wait_file,
                     wait_migrated)


def bench_zero_page(a):
    """Zero-page check vs a plain memory-read pass (target >= 0.8)."""
    out = subprocess.run([os.path.join(ROOT, "build", "tests", "bench",
                                       "bench-zero-page"), "1024"],
                         capture_output=True, text=True, check=True).stdout
    print("\n### Zero-page check on 1 GiB of zero pages (best of 5)\n")
    print("| variant | GB/s | / plain read pass |")
    print("|---|---:|---:|")
    for line in out.splitlines():
        name, gbs, _, ratio = line.split()
        print("| %s | %s | %s |" % (name, gbs, ratio))


def godwit_boot(kernel, mem, append):
    t0 = time.monotonic()
    g = GW("bench", ["-m", mem, "-kernel", kernel, "-append", append])
    ok = g.wait_serial("READY", 60)
    dt = time.monotonic() - t0
    g.cleanup()
    return dt if ok else None


def qemu_boot(kernel, mem, append):
    q = Qemu(mem, kernel, append)
    ok = wait_file(q.serial_path, "READY", 60, proc=q.proc)
    dt = time.monotonic() - q.t0
    q.stop()
    return dt if ok else None


def bench_boot(a):
    """Boot-to-READY time: process start to the payload's READY line."""
    rows = []
    cases = [("idle", "128M", ""), ("stress", "512M", "vm=1 vm-bytes=64M"),
             ("stress", "4G", "vm=1 vm-bytes=64M")]
    for name, mem, append in cases:
        g = [godwit_boot(payload(name), mem, append) for _ in range(a.runs)]
        q = [qemu_boot(payload(name), mem, append) for _ in range(a.runs)] \
            if QEMU else [None]
        gm = statistics.median(g) * 1000
        qm = statistics.median(q) * 1000 if None not in q else None
        rows.append((name, mem, gm, qm))
    print("\n### Boot to READY (median of %d)\n" % a.runs)
    print("| payload | -m | godwit ms | QEMU ms | godwit / QEMU |")
    print("|---|---|---:|---:|---:|")
    for name, mem, gm, qm in rows:
        print("| %s | %s | %.0f | %s | %s |" % (
            name, mem, gm, "%.0f" % qm if qm else "n/a",
            "%.4f" % (gm / qm) if qm else "n/a"))


PERF_RE = re.compile(r"worker=0 cpu=\d+ pass=(\d+) cycles=(\d+) bytes=(\d+)")
KHZ_RE = re.compile(r"tsc_khz=(\d+)")


def page_rate(serial, skip=3):
    """Median pages/s of worker 0's passes (first `skip` passes are warm-up:
    the first one faults every page in)."""
    khz = int(KHZ_RE.search(serial).group(1))
    rates = []
    for m in PERF_RE.finditer(serial):
        p, cycles, nbytes = (int(x) for x in m.groups())
        if p <= skip:
            continue
        rates.append((nbytes / 4096) / (cycles / (khz * 1000.0)))
    return statistics.median(rates), len(rates)


def pass_count(serial):
    return len(PERF_RE.findall(serial))


def tracked_rate(vm, seconds):
    """Page rate of the passes that complete while a migration to
    exec:cat>/dev/null at 256 MiB/s keeps the dirty log on and syncing (it
    cannot converge), over `seconds`; then the migration is cancelled."""
    before = pass_count(vm.serial())
    vm.qmp.cmd("migrate-set-parameters", max_bandwidth=256 << 20)
    vm.qmp.cmd("migrate", uri="exec:cat > /dev/null")
    time.sleep(seconds)
    syncs = vm.qmp.cmd("query-migrate")["ram"]["dirty-sync-count"]
    vm.qmp.cmd("migrate_cancel")
    text = vm.serial()
    lines = PERF_RE.findall(text)[before + 1:-1]  # whole passes inside
    khz = int(KHZ_RE.search(text).group(1))
    rates = [(int(b) / 4096) / (int(c) / (khz * 1000.0))
             for _, c, b in lines]
    return (statistics.median(rates) if rates else None, len(rates), syncs)


def bench_page_rate(a):
    """The stress workload's page-write rate per vCPU (guestperf reports),
    alone and while the dirty log is on (calc-dirty-rate dirty-bitmap)."""
    append = "vm=1 vm-bytes=256M"
    rows = []
    for vmm in ["godwit"] + (["qemu"] if QEMU else []):
        if vmm == "godwit":
            vm = GW("bench", ["-m", "512M", "-kernel", payload("guestperf"),
                              "-append", append])
        else:
            vm = QemuVM("512M", payload("guestperf"), append)
        try:
            wait_file(vm.serial_path, "pass=%d " % (a.passes + 3), 180,
                      proc=vm.proc)
            alone, n = page_rate(vm.serial())
            tracked, tn, syncs = tracked_rate(vm, 6)
        finally:
            vm.cleanup()
        rows.append((vmm, alone, n, tracked, tn, syncs))
    print("\n### Guest page-write rate, one vCPU (guestperf vm=1 "
          "vm-bytes=256M in 512M; median pass; tracked: passes during 6 s "
          "of a migration to exec:cat>/dev/null at 256 MiB/s, dirty log on "
          "and syncing)\n")
    print("| VMM | M pages/s | ms per GiB | passes | tracked M pages/s | "
          "tracked ms per GiB | passes (syncs) | godwit / QEMU (alone, "
          "tracked) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    q = rows[1] if len(rows) > 1 else None
    for vmm, r, n, t, tn, syncs in rows:
        ratio = ""
        if q and vmm == "godwit":
            ratio = "%.2f, %s" % (r / q[1], "%.2f" % (t / q[3])
                                  if t and q[3] else "n/a")
        print("| %s | %.2f | %.1f | %d | %s | %s | %s | %s |" % (
            "QEMU 7.2" if vmm == "qemu" else vmm, r / 1e6, 262144 / r * 1000,
            n, "%.2f" % (t / 1e6) if t else "n/a",
            "%.1f" % (262144 / t * 1000) if t else "n/a",
            "%d (%d)" % (tn, syncs), ratio))

# The dirty logs KVM offers godwit: extra godwit arguments per row.
DIRTY_LOGS = [
    ("bitmap (manual protect)", []),
    ("ring 4096", ["-accel", "kvm,dirty-ring-size=4096"]),
    ("ring 65536", ["-accel", "kvm,dirty-ring-size=65536"]),
]


def migrate_with_log(extra, mem, append, settle):
    """Migrates a stress guest whose source runs with `extra` to a plain
    godwit over TCP loopback, unlimited bandwidth, `settle` seconds after
    READY (so its region is populated); returns query-migrate."""
    dst = GW("dst", ["-m", mem, "-incoming", "tcp:127.0.0.1:0"])
    port = dst.qmp.cmd("query-migrate")["socket-address"][0]["port"]
    src = GW("src", extra + ["-m", mem, "-kernel", payload("stress"),
                             "-append", append])
    try:
        if not src.wait_serial("READY", 120):
            raise RuntimeError("guest not ready")
        time.sleep(settle)
        src.qmp.cmd("migrate-set-parameters", max_bandwidth=0)
        src.qmp.cmd("migrate", uri="tcp:127.0.0.1:%s" % port)
        return wait_migrated(src.qmp, "godwit")
    finally:
        src.cleanup()
        dst.cleanup()


def logged_rate(vm, seconds, period):
    """Bytes/s the guestperf worker writes while the dirty log is on and
    synced every `period` s for `seconds` (x-dirty-log: each sync re-arms
    every page it reports, as a migration's pass does). Passes completed in
    the window over its length, so slow passes count too."""
    before = pass_count(vm.serial())
    t0 = time.monotonic()
    vm.qmp.cmd("x-dirty-log", action="start")
    syncs = 0
    while time.monotonic() - t0 < seconds:
        time.sleep(period)
        vm.qmp.cmd("x-dirty-log", action="sync")
        syncs += 1
    text = vm.serial()
    dt = time.monotonic() - t0
    vm.qmp.cmd("x-dirty-log", action="stop")
    lines = PERF_RE.findall(text)[before:]
    return sum(int(b) for _, _, b in lines) / dt, len(lines), syncs


def bench_dirty_ring(a):
    """KVM's dirty ring against the bitmap log: the guest's write rate
    alone (median pass) and with the log on and synced every 200 ms
    (guestperf vm=1 vm-bytes=64M), and the time to migrate a 1 GiB guest
    with 768 MiB populated whose worker keeps rewriting it at 128 MiB/s."""
    if common.ACCEL != "kvm":
        print("\n(dirty-ring: needs --accel kvm)")
        return
    rows = []
    append = "vm=1 vm-bytes=768M rate=128M"
    for name, extra in DIRTY_LOGS:
        vm = GW("bench", extra + ["-m", "512M", "-kernel",
                                  payload("guestperf"), "-append",
                                  "vm=1 vm-bytes=64M"])
        try:
            wait_file(vm.serial_path, "pass=%d " % (a.passes + 3), 180,
                      proc=vm.proc)
            alone, _ = page_rate(vm.serial())
            logged, n, syncs = logged_rate(vm, 6, 0.2)
        finally:
            vm.cleanup()
        infos = [migrate_with_log(extra, "1G", append, 7)
                 for _ in range(a.runs)]
        m = median_info(infos)
        rows.append((name, alone, logged, n, syncs, m,
                     [i["total-time"] for i in infos]))
    print("\n### Dirty ring vs bitmap log (guestperf vm=1 vm-bytes=64M in "
          "512M: median pass alone; logged: bytes written in 6 s with the "
          "log on, synced every 200 ms; migration: 1G guest, stress %s, 7 s "
          "after READY, TCP loopback, unlimited, median of %d)\n"
          % (append, a.runs))
    print("| dirty log | ms/GiB alone | ms/GiB logged | passes (syncs) | "
          "migration total ms (runs) | downtime ms | syncs | MiB sent |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r, t, n, syncs, m, times in rows:
        print("| %s | %.1f | %s | %d (%d) | %d (%s) | %d | %d | %d |" % (
            name, 262144 / r * 1000,
            "%.0f" % ((1 << 30) / t * 1000) if t else "n/a", n, syncs,
            m["total-time"], ", ".join(str(x) for x in times),
            m.get("downtime", 0), m["ram"]["dirty-sync-count"],
            m["ram"]["transferred"] >> 20))


def bench_memory(a):
    """Host memory per vCPU: RSS of an idle guest with -smp 4 minus -smp 1,
    over 3 (the secondary vCPUs of idle never start)."""
    rows = []
    for vmm in ["godwit"] + (["qemu"] if QEMU else []):
        rss = {}
        for smp in ("1", "4"):
            vals = []
            for _ in range(max(a.runs, 1)):
                if vmm == "godwit":
                    vm = GW("bench", ["-m", "128M", "-smp", smp, "-kernel",
                                      payload("idle")])
                else:
                    vm = QemuVM("128M", payload("idle"), "",
                                extra=["-smp", smp])
                try:
                    wait_file(vm.serial_path, "READY", 60, proc=vm.proc)
                    time.sleep(0.5)
                    with open("/proc/%d/status" % vm.proc.pid) as f:
                        kb = int(re.search(r"VmRSS:\s+(\d+)",
                                           f.read()).group(1))
                    vals.append(kb)
                finally:
                    vm.cleanup()
            rss[smp] = statistics.median(vals)
        rows.append((vmm, rss["1"], rss["4"], (rss["4"] - rss["1"]) / 3))
    print("\n### Host memory per vCPU (idle, -m 128M, RSS, median of %d)\n"
          % max(a.runs, 1))
    print("| VMM | RSS -smp 1 | RSS -smp 4 | per extra vCPU |")
    print("|---|---:|---:|---:|")
    for vmm, r1, r4, per in rows:
        print("| %s | %.1f MiB | %.1f MiB | %.1f MiB |" % (
            "QEMU 7.2" if vmm == "qemu" else vmm, r1 / 1024, r4 / 1024,
            per / 1024))


def bench_dirty_sync(a):
    """Dirty-log sync (KVM_GET_DIRTY_LOG) and re-arm (KVM_CLEAR_DIRTY_LOG)
    time for a whole guest, with a writer dirtying 1 GiB continuously."""
    rows = []
    for mem in a.sync_sizes:
        g = GW("bench", ["-m", mem, "-kernel", payload("stress"),
                         "-append", "vm=1 vm-bytes=1G"])
        g.wait_serial("READY", 60)
        time.sleep(a.warmup)
        g.qmp.cmd("x-dirty-log", action="start")
        first = g.qmp.cmd("x-dirty-log", action="sync")
        syncs, clears, dirty = [], [], []
        for _ in range(a.syncs):
            time.sleep(0.2)
            r = g.qmp.cmd("x-dirty-log", action="sync")
            syncs.append(r["sync-us"])
            clears.append(r["clear-us"])
            dirty.append(r["dirty-pages"])
        g.qmp.cmd("x-dirty-log", action="stop")
        g.cleanup()
        rows.append((mem, first["dirty-pages"], first["sync-us"],
                     statistics.median(dirty), statistics.median(syncs),
                     statistics.median(clears)))
    print("\n### Dirty-log sync, one RAM block (median of %d syncs, 200 ms "
          "apart, stress vm=1 vm-bytes=1G writing)\n" % a.syncs)
    print("| guest | first sync (every page) | dirty pages per sync "
          "| sync (GET_DIRTY_LOG) | re-arm (CLEAR_DIRTY_LOG) |")
    print("|---|---:|---:|---:|---:|")
    for mem, fp, fus, d, s, c in rows:
        print("| %s | %d pages in %d us | %d | %d us | %d us |" % (
            mem, fp, fus, d, s, c))
