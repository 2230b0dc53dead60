#!/usr/bin/env python3
"""godwit benchmarks: figures for docs/performance.md, each next to a ceiling
or QEMU's figure measured in the same run on the same host.

This machine has 2 cores shared by everything (godwit, QEMU, the bench):
figures are for that setting. Run `scripts/bench --help` for the sections.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwqmp import QMP, ROOT, Godwit  # noqa: E402

GUEST = os.path.join(ROOT, "build", "guest")
QEMU = shutil.which("qemu-system-x86_64")
# The accelerator of every godwit and QEMU here (--accel; main() sets it).
ACCEL = "kvm"


def kvm_usable():
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def GW(name, args, **kw):
    """A godwit on this run's accelerator."""
    return Godwit(name, ["-accel", ACCEL] + list(args), **kw)


def payload(name):
    return os.path.join(GUEST, name + ".elf")


def wait_file(path, needle, timeout, count=1, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, errors="replace") as f:
                if f.read().count(needle) >= count:
                    return True
        except FileNotFoundError:
            pass
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.002)
    return False


class Qemu:
    """QEMU 7.2 running the same payload (for side-by-side figures)."""

    def __init__(self, mem, kernel, append, smp="1"):
        self.dir = tempfile.mkdtemp(prefix="bench-qemu-")
        self.serial_path = os.path.join(self.dir, "serial.log")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [QEMU, "-accel", ACCEL, "-m", mem, "-smp", smp, "-nodefaults",
             "-display", "none", "-serial", "file:" + self.serial_path,
             "-kernel", kernel, "-append", append],
            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def serial(self):
        with open(self.serial_path, errors="replace") as f:
            return f.read()

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class QemuVM:
    """QEMU 7.2 with a QMP socket, for side-by-side migrations."""

    def __init__(self, mem, kernel=None, append="", incoming=None, extra=(),
                 accel=None):
        self.dir = tempfile.mkdtemp(prefix="bench-qemu-")
        self.serial_path = os.path.join(self.dir, "serial.log")
        qmp = os.path.join(self.dir, "qmp.sock")
        cmd = [QEMU, "-accel", accel or ACCEL, "-m", mem, "-nodefaults", "-display",
               "none", "-serial", "file:" + self.serial_path, "-qmp",
               "unix:%s,server=on,wait=off" % qmp]
        if kernel:
            cmd += ["-kernel", kernel, "-append", append]
        if incoming:
            cmd += ["-incoming", incoming]
        cmd += list(extra)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.qmp = QMP(qmp)

    def wait_serial(self, needle, timeout):
        return wait_file(self.serial_path, needle, timeout, proc=self.proc)

    def serial(self):
        with open(self.serial_path, errors="replace") as f:
            return f.read()

    def cleanup(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def migrate_pair(vmm, mem, payload_name, append, ready="READY",
                 prealloc=False):
    """Migrates a guest between two processes of `vmm` (godwit or qemu)
    over TCP loopback with unlimited bandwidth; returns query-migrate.
    prealloc: the destination runs with -mem-prealloc."""
    kernel = payload(payload_name)
    pre = ["-mem-prealloc"] if prealloc else []
    if vmm == "godwit":
        dst = GW("dst", ["-m", mem] + pre +
                 ["-incoming", "tcp:127.0.0.1:0"])
        port = dst.qmp.cmd("query-migrate")["socket-address"][0]["port"]
        src = GW("src", ["-m", mem, "-kernel", kernel, "-append", append])
        unlimited = 0
    else:
        port = free_port()
        dst = QemuVM(mem, kernel, append, "tcp:127.0.0.1:%d" % port,
                     extra=pre)
        src = QemuVM(mem, kernel, append)
        unlimited = 1 << 40  # QEMU 7.2 has no "0 = unlimited"
    try:
        if not src.wait_serial(ready, 120):
            raise RuntimeError("%s: guest not ready" % vmm)
        time.sleep(0.5)
        src.qmp.cmd("migrate-set-parameters", max_bandwidth=unlimited)
        src.qmp.cmd("migrate", uri="tcp:127.0.0.1:%s" % port)
        while True:
            info = src.qmp.cmd("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.01)
        if info["status"] != "completed":
            raise RuntimeError("%s: migration %s" % (vmm, info))
        return info
    finally:
        src.cleanup()
        dst.cleanup()


def median_info(infos):
    """The run with the median total time."""
    return sorted(infos, key=lambda i: i["total-time"])[len(infos) // 2]


def bench_migrate_idle(a):
    """Idle 4 GiB guest: total time and downtime (target <= 0.3 s, 30 ms)."""
    rows = []
    for vmm in ["godwit"] + (["qemu"] if QEMU else []):
        infos = [migrate_pair(vmm, "4G", "idle", "") for _ in range(a.runs)]
        i = median_info(infos)
        rows.append((vmm, i["total-time"], i["downtime"],
                     i["ram"]["transferred"]))
    print("\n### Idle 4 GiB guest, TCP loopback, unlimited bandwidth "
          "(median of %d)\n" % a.runs)
    print("| VMM | total time ms | downtime ms | transferred | "
          "total vs target 300 ms | downtime vs target 30 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for vmm, tt, dt, tr in rows:
        print("| %s | %d | %d | %.1f MiB | %.2f | %.2f |" % (
            vmm, tt, dt, tr / 2**20, tt / 300, dt / 30))
    if len(rows) == 2:
        print("\ngodwit / QEMU: total time %.3f, downtime %.3f" % (
            rows[0][1] / max(rows[1][1], 1), rows[0][2] / max(rows[1][2], 1)))


def tcp_ceiling(span):
    """Best of 3 single-stream loopback runs, GB/s -> bytes/s."""
    best = 0.0
    for _ in range(3):
        out = subprocess.run([os.path.join(ROOT, "build", "tests", "bench",
                                           "bench-tcp-ceiling"), "1024",
                              span],
                             capture_output=True, text=True,
                             check=True).stdout
        best = max(best, float(out.split()[1]) * 1e9)
    return best


def bench_migrate_fill(a):
    """1 GiB of incompressible data in a 2 GiB guest over TCP loopback:
    throughput as a fraction of the single-stream loopback ceiling, and
    the CPU each side spent per GB moved."""
    raw = tcp_ceiling("buffer")
    ram = tcp_ceiling("ram")
    rows = []
    # "buffered": the destination copies every payload out of its stream
    # buffer (GODWIT_NO_DIRECT_RECV=1), as godwit did before issue 16
    cases = [("godwit", True, False), ("godwit", True, True),
             ("godwit", False, False)]
    if QEMU:
        cases += [("qemu", True, False), ("qemu", False, False)]
    for vmm, pre, buffered in cases:
        env = {"GODWIT_NO_DIRECT_RECV": "1"} if buffered else None
        infos = [migrate_run(vmm, "2G", "fill", "size=1G pattern=random",
                             prealloc=pre, dst_env=env)
                 for _ in range(a.runs)]
        i = median_info(infos)
        gb = i["ram"]["transferred"] / 1e9
        bps = gb * 1e9 / (i["total-time"] / 1000.0)
        rows.append((vmm + (" (buffered receive)" if buffered else ""),
                     pre, i["total-time"], i["downtime"],
                     i["ram"]["transferred"], bps, i["cpu-src"] / gb,
                     i["cpu-dst"] / gb))
    print("\n### fill 1 GiB random in a 2 GiB guest, TCP loopback, "
          "unlimited bandwidth (median of %d)\n" % a.runs)
    print("Single-stream loopback TCP ceilings measured now (best of 3): "
          "%.2f GB/s from a reused 1 MiB buffer, %.2f GB/s RAM to RAM "
          "(1 GiB of distinct memory each side). CPU: each process's CPU "
          "seconds during the migration per GB transferred (source and "
          "destination share the host's 2 cores).\n" % (raw / 1e9, ram / 1e9))
    print("| VMM | destination | total ms | downtime ms | transferred | "
          "throughput | / buffer ceiling | / RAM ceiling | CPU src s/GB | "
          "CPU dst s/GB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for vmm, pre, tt, dt, tr, bps, cs, cd in rows:
        print("| %s | %s | %d | %d | %.0f MiB | %.2f GB/s | %.2f | %.2f | "
              "%.2f | %.2f |" % (
                  vmm, "-mem-prealloc" if pre else "fresh RAM", tt, dt,
                  tr / 2**20, bps / 1e9, bps / raw, bps / ram, cs, cd))
        sys.stdout.flush()


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


def bench_send_path(a):
    """Four ways to send pages over one loopback connection (issue 16)."""
    out = subprocess.run([os.path.join(ROOT, "build", "tests", "bench",
                                       "bench-send-path"), "1024",
                          str(min(a.runs, 15))],
                         capture_output=True, text=True, check=True).stdout
    print("\n### Sending 1 GiB of pages, one loopback connection "
          "(median of %d, alternating)\n" % min(a.runs, 15))
    print(out, end="")


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
        while True:
            info = src.qmp.cmd("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.01)
        if info["status"] != "completed":
            raise RuntimeError("migration %s" % info)
        return info
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
    if ACCEL != "kvm":
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


PERF_MS_RE = re.compile(r"worker=\d+ cpu=\d+ pass=\d+ .*ms_per_gib=([0-9.]+)")
PERF_BYTES_RE = re.compile(r"worker=\d+ cpu=\d+ pass=\d+ cycles=\d+ "
                           r"bytes=(\d+)")


def perf_samples(serial):
    return [float(m.group(1)) for m in PERF_MS_RE.finditer(serial)]


def perf_bytes(serial):
    """Bytes covered by all the passes printed so far (every worker)."""
    return sum(int(m.group(1)) for m in PERF_BYTES_RE.finditer(serial))


def wall_ms_per_gib(serial_fn, seconds):
    """Guest speed over wall time (sleeps of a throttle included)."""
    b0, t0 = perf_bytes(serial_fn()), time.monotonic()
    time.sleep(seconds)
    b1, t1 = perf_bytes(serial_fn()), time.monotonic()
    return (t1 - t0) * 1000 / max((b1 - b0) / 2**30, 1e-9)


def bench_throttle(a):
    """vCPU throttle accuracy: guestperf's write rate over wall time at
    p = 25/50/75/90 % against unthrottled (a throttle of p leaves 1 - p)."""
    g = GW("bench", ["-m", "1G", "-kernel", payload("guestperf"),
                     "-append", "vm=1 vm-bytes=512M"])

    def rate(pct):
        g.qmp.cmd("x-vcpu-throttle", percentage=pct)
        time.sleep(1.0)
        n0 = len(perf_samples(g.serial()))
        t0 = time.monotonic()
        time.sleep(a.throttle_seconds)
        passes = len(perf_samples(g.serial())) - n0
        return passes * 0.5 / (time.monotonic() - t0)  # GiB written/s

    try:
        g.wait_serial("pass=20 ", 60)
        rows = []
        # each throttled figure against unthrottled ones measured just
        # before and after it, so that drifts of the host cancel out;
        # the median of --runs such ratios
        base = rate(0)
        for pct in (25, 50, 75, 90):
            tries = []
            for _ in range(max(a.runs, 1)):
                r = rate(pct)
                nxt = rate(0)
                tries.append((r / ((base + nxt) / 2), r, (base + nxt) / 2))
                base = nxt
            tries.sort()
            rows.append((pct,) + tries[len(tries) // 2][1:])
        g.qmp.cmd("x-vcpu-throttle", percentage=0)
    finally:
        g.cleanup()
    print("\n### vCPU throttle accuracy (guestperf vm=1 vm-bytes=512M, "
          "passes over %.0f s of wall time, median of %d)\n" % (
              a.throttle_seconds, max(a.runs, 1)))
    print("| throttle | GiB written/s | unthrottled around it | rate vs "
          "unthrottled | expected 1-p | error |")
    print("|---:|---:|---:|---:|---:|---:|")
    for pct, r, base in rows:
        want = (100 - pct) / 100.0
        print("| %d %% | %.0f | %.0f | %.3f | %.2f | %+.1f %% |" % (
            pct, r, base, r / base, want, (r / base / want - 1) * 100))


def auto_converge_run(vmm, append, initial, increment, downtime_ms,
                      max_seconds, policy="qemu", dirty_limit=50):
    """One seed-blog scenario; returns a result dict. policy: "qemu"
    (QEMU's steps), "aim" (x-throttle-policy aim) or "dirty-limit" (the
    capability, vcpu-dirty-limit `dirty_limit` MB/s; godwit only; under
    KVM the source gets the largest dirty ring, 65536 entries)."""
    kernel = payload("guestperf")
    if vmm == "godwit":
        dst = GW("dst", ["-m", "2G", "-incoming", "tcp:127.0.0.1:0"])
        port = dst.qmp.cmd("query-migrate")["socket-address"][0]["port"]
        extra = []
        if policy == "dirty-limit" and ACCEL == "kvm":
            extra = ["-accel", "kvm,dirty-ring-size=65536"]
        src = GW("src", ["-m", "2G", "-kernel", kernel, "-append",
                         append] + extra)
    else:
        port = free_port()
        dst = QemuVM("2G", kernel, append, "tcp:127.0.0.1:%d" % port)
        src = QemuVM("2G", kernel, append)
    serial = src.serial if vmm == "godwit" else (
        lambda: open(src.serial_path, errors="replace").read())
    try:
        src.wait_serial("pass=5 ", 120)
        before = wall_ms_per_gib(serial, 2.0)
        params = {"max_bandwidth": 125000000, "downtime_limit": downtime_ms}
        if initial and policy == "dirty-limit":
            src.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": "dirty-limit", "state": True}])
            params.update(vcpu_dirty_limit=dirty_limit)
        elif initial:
            src.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": "auto-converge", "state": True}])
            params.update(cpu_throttle_initial=initial,
                          cpu_throttle_increment=increment)
            if policy == "aim":
                params["x-throttle-policy"] = "aim"
        src.qmp.cmd("migrate-set-parameters", **params)
        b0 = perf_bytes(serial())
        t0 = time.monotonic()
        src.qmp.cmd("migrate", uri="tcp:127.0.0.1:%s" % port)
        throttle = peak = 0
        steps = []
        weighted = 0.0
        last_t = t0
        while True:
            info = src.qmp.cmd("query-migrate")
            now = time.monotonic()
            weighted += throttle * (now - last_t)
            last_t = now
            throttle = info.get("cpu-throttle-percentage", 0)
            if "dirty-limit-throttle-time-per-round" in info:
                # dirty-limit: the share of a round the vCPU sleeps
                sl = info["dirty-limit-throttle-time-per-round"]
                run = info.get("dirty-limit-ring-full-time", 0)
                throttle = round(100.0 * sl / (sl + run)) if sl else 0
            if throttle and (not steps or steps[-1] != throttle):
                steps.append(throttle)
            peak = max(peak, throttle)
            if info.get("status") in ("completed", "failed"):
                break
            if now - t0 > max_seconds:
                src.qmp.cmd("migrate_cancel")
                info = {"status": "not converged", "total-time":
                        int((now - t0) * 1000)}
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        gib = (perf_bytes(serial()) - b0) / 2**30
        during = elapsed * 1000 / gib if gib else None
        stall = None
        if vmm == "godwit":
            st = src.qmp.cmd("query-migrate").get("x-vcpu-stall")
            stall = st["max-us"] / 1000.0 if st else 0.0
        elif peak:
            # QEMU reports none: its longest sleep is what the peak asks
            stall = "~%.0f" % (10.0 * peak / (100 - peak))
        after = None
        if vmm == "godwit" and info["status"] == "completed":
            dst.qmp.cmd("cont") if dst.qmp.cmd("query-status")[
                "status"] != "running" else None
            dst.wait_serial("pass=", 30)
            after = wall_ms_per_gib(dst.serial, 2.0)
        return {"status": info["status"], "total": info.get("total-time"),
                "downtime": info.get("downtime"), "throttle": throttle,
                "peak": peak, "mean": weighted / elapsed if elapsed else 0,
                "steps": steps,
                "stall": stall, "before": before, "during": during,
                "after": after}
    finally:
        src.cleanup()
        dst.cleanup()


def bench_auto_converge(a):
    """The seed blog's auto-converge scenarios: 2 GiB guest, 2 x 512 MiB
    dirtied, 1 Gbit/s (max-bandwidth 125000000), with each policy
    (--ac-policies) and QEMU's beside (--ac-qemu)."""
    two = "vm=2 vm-bytes=512M"
    three = "vm=3 vm-bytes=512M"
    scenarios = [
        ("auto-converge off", two, 0, 0, 300),
        ("(1) 20/10", two, 20, 10, 300),
        ("(2) 30/15", two, 30, 15, 300),
        ("(3) 50/20", two, 50, 20, 300),
        ("3 workers 50/20", three, 50, 20, 300),
        ("50/20, downtime 1000 ms", two, 50, 20, 1000),
        ("50/20, downtime 5000 ms", two, 50, 20, 5000),
    ]
    if a.ac_scenarios:
        scenarios = [sc for sc in scenarios
                     if any(w in sc[0] for w in a.ac_scenarios)]
    print("\n### Auto-converge, seed scenarios (2 GiB guest, 1 Gbit/s, "
          "cap %d s per run, %s; dirty-limit %d MB/s)\n" % (
              a.ac_seconds, ACCEL, a.ac_dirty_limit))
    print("| scenario | VMM | policy | result | total s | vs QEMU | "
          "downtime ms | peak / mean throttle | throttle settings | longest "
          "stall ms | guest ms/GiB before / during / after |")
    print("|---|---|---|---|---:|---:|---:|---|---|---:|---|")

    def fmt(v, f="%.1f"):
        if v is None:
            return "-"
        return v if isinstance(v, str) else f % v

    for name, app, init, inc, dl in scenarios:
        runs = []
        if QEMU and a.ac_qemu:
            runs.append(("qemu", "qemu"))
        runs += [("godwit", pol) for pol in
                 (a.ac_policies if init else ["qemu"])]
        qemu_total = None
        for vmm, pol in runs:
            cap = a.ac_seconds if init else min(a.ac_seconds, 90)
            r = auto_converge_run(vmm, app, init, inc, dl, cap, pol,
                                  a.ac_dirty_limit)
            total = r["total"] / 1000 if r["total"] else None
            if vmm == "qemu" and r["status"] == "completed":
                qemu_total = total
            ratio = (total / qemu_total if vmm == "godwit" and total and
                     qemu_total and r["status"] == "completed" else None)
            st = r["steps"]
            print("| %s | %s | %s | %s | %s | %s | %s | %s / %s %% | %s | %s "
                  "| %s / %s / %s |" % (
                      name, "QEMU 7.2" if vmm == "qemu" else vmm,
                      pol if init else "-", r["status"], fmt(total),
                      fmt(ratio, "%.2f"), fmt(r["downtime"], "%d"),
                      r["peak"], fmt(r["mean"], "%.0f"),
                      " ".join(map(str, st[:6])) + (" ..." if len(st) > 6
                                                    else "") or "-",
                      fmt(r["stall"], "%.0f"), fmt(r["before"]),
                      fmt(r["during"]), fmt(r.get("after"))))
            sys.stdout.flush()


def proc_cpu_seconds(pid):
    """utime + stime of a process (all its threads), seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def migrate_run(vmm, mem, payload_name, append, caps=(), params=None,
                bandwidth=0, prealloc=False, ready="READY", max_s=None,
                objects=None, dst_env=None, src_caps=()):
    """One migration over TCP loopback to a destination started with
    -incoming defer (capabilities `caps` and `params` set on both sides
    first, as multifd needs). Returns query-migrate plus "cpu-src" and
    "cpu-dst": CPU seconds each process used during the migration.
    bandwidth: bytes/s, 0 = unlimited. max_s: cancel after this long and
    return status "not converged". objects: {"src": [object-add args],
    "dst": [...]}, added before the parameters are set (TLS). dst_env:
    environment variables for a godwit destination. src_caps:
    capabilities of the source alone (zero-copy-send), set after the rest."""
    kernel = payload(payload_name)
    pre = ["-mem-prealloc"] if prealloc else []
    params = dict(params or {})
    if vmm == "godwit":
        dst = GW("dst", ["-m", mem] + pre + ["-incoming", "defer"],
                 env=dst_env)
        src = GW("src", ["-m", mem, "-kernel", kernel, "-append", append])
        unlimited = 0
    else:
        dst = QemuVM(mem, kernel, append, "defer", extra=pre)
        src = QemuVM(mem, kernel, append)
        unlimited = 1 << 40  # QEMU 7.2 has no "0 = unlimited"
    try:
        for side, vm in (("src", src), ("dst", dst)):
            for obj in (objects or {}).get(side, ()):
                vm.qmp.cmd("object-add", **obj)
        for vm in (src, dst):
            if caps:
                vm.qmp.cmd("migrate-set-capabilities", capabilities=[
                    {"capability": c, "state": True} for c in caps])
            if params:
                vm.qmp.cmd("migrate-set-parameters", **params)
        if src_caps:
            src.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": c, "state": True} for c in src_caps])
        if vmm == "godwit":
            dst.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
            port = dst.qmp.cmd("query-migrate")["socket-address"][0]["port"]
        else:
            port = free_port()
            dst.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:%d" % port)
        if not src.wait_serial(ready, 180):
            raise RuntimeError("%s: guest not ready" % vmm)
        time.sleep(0.5)
        src.qmp.cmd("migrate-set-parameters",
                    max_bandwidth=bandwidth or unlimited)
        c0 = (proc_cpu_seconds(src.proc.pid), proc_cpu_seconds(dst.proc.pid))
        w0 = time.monotonic()
        src.qmp.cmd("migrate", uri="tcp:127.0.0.1:%s" % port)
        while True:
            info = src.qmp.cmd("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            if max_s and time.monotonic() - w0 > max_s:
                src.qmp.cmd("migrate_cancel")
                info["status"] = "not converged"
                info["total-time"] = int((time.monotonic() - w0) * 1000)
                return info
            time.sleep(0.01)
        if info["status"] != "completed":
            raise RuntimeError("%s: migration %s" % (vmm, info))
        if not info.get("total-time"):
            info["total-time"] = int((time.monotonic() - w0) * 1000)
        # the destination finishes loading shortly after the source
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = dst.qmp.cmd("query-migrate").get("status")
            if st in ("completed", "failed"):
                break
            time.sleep(0.01)
        info["cpu-src"] = proc_cpu_seconds(src.proc.pid) - c0[0]
        info["cpu-dst"] = proc_cpu_seconds(dst.proc.pid) - c0[1]
        return info
    finally:
        src.cleanup()
        dst.cleanup()


def bench_compress(a):
    """The seed's compression table: a 2 GiB guest with 1 GiB written
    once (text), 125 MB/s, compress-threads 2: total time, CPU and bytes
    on the wire per method, next to no compression and QEMU."""
    append = "size=1G pattern=%s" % a.compress_pattern
    cases = [("godwit", "none", None), ("godwit", "zlib", "zlib"),
             ("godwit", "lz4", "lz4"), ("godwit", "zstd", "zstd")]
    if QEMU:
        cases += [("qemu", "none", None), ("qemu", "zlib", "zlib")]
    rows = []
    for vmm, name, method in cases:
        caps, params = (), {}
        if method:
            caps = ("compress",)
            params = {"compress_threads": 2, "decompress_threads": 2}
            if vmm == "godwit":
                params["compress_method"] = method
        infos = [migrate_run(vmm, "2G", "fill", append, caps, params,
                             bandwidth=125000000, ready="READY")
                 for _ in range(a.runs)]
        i = median_info(infos)
        t = i["total-time"] / 1000.0
        rows.append((vmm, name, t, i["cpu-src"] / t, i["cpu-dst"] / t,
                     i["ram"]["transferred"]))
    print("\n### Multi-thread compression: 1 GiB of `%s` in a 2 GiB guest, "
          "125 MB/s, compress-threads 2, decompress-threads 2 (median of "
          "%d)\n" % (a.compress_pattern, a.runs))
    print("CPU: the process's CPU time during the migration / wall time "
          "(100 % = one core; 2 cores in all).\n")
    print("| VMM | compression | total s | CPU source | CPU destination | "
          "on the wire | wire / none | time / none |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    base = {r[0]: r for r in rows if r[1] == "none"}
    for vmm, name, t, cs, cd, tr in rows:
        b = base.get(vmm)
        print("| %s | %s | %.1f | %.0f %% | %.0f %% | %.0f MiB | %.2f | "
              "%.2f |" % (vmm, name, t, cs * 100, cd * 100, tr / 2**20,
                          tr / b[5] if b else 0, t / b[2] if b else 0))
        sys.stdout.flush()


def bench_multifd(a):
    """multifd none over 1, 2, 4 channels (and every compression over 2)
    against the single-stream loopback ceiling: 1 GiB incompressible in a
    2 GiB guest, unlimited bandwidth, preallocated destination. none with
    zero-copy-send (source) on 2 and 4 channels: over loopback the kernel
    copies anyway (docs/devel/multifd.md), the "zc missed" column says how
    often."""
    raw = tcp_ceiling("buffer")
    ram = tcp_ceiling("ram")
    cases = [("godwit", "precopy", 0, "none", False)]
    cases += [("godwit", "multifd", n, "none", False) for n in (1, 2, 4)]
    cases += [("godwit", "multifd", n, "none", True) for n in (2, 4)]
    cases += [("godwit", "multifd", 2, c, False)
              for c in ("zlib", "zstd", "lz4")]
    if QEMU:
        # QEMU 7.2 takes zero-copy-send as godwit does (source only; as
        # root it has CAP_IPC_LOCK, so no -overcommit mem-lock=on needed)
        cases += [("qemu", "precopy", 0, "none", False),
                  ("qemu", "multifd", 2, "none", False),
                  ("qemu", "multifd", 2, "none", True)]
    rows = []
    for vmm, mode, n, comp, zc in cases:
        caps, params = (), {}
        if mode == "multifd":
            caps = ("multifd",)
            params = {"multifd_channels": n, "multifd_compression": comp}
        if zc and vmm == "qemu" and os.geteuid() != 0:
            print("note: QEMU zero-copy row skipped: not root, so QEMU "
                  "would need CAP_IPC_LOCK or a locked-memory limit "
                  "(-overcommit mem-lock=on locks all of its RAM)")
            continue
        infos = [migrate_run(vmm, "2G", "fill", "size=1G pattern=%s" %
                             a.multifd_pattern, caps, params, prealloc=True,
                             src_caps=("zero-copy-send",) if zc else ())
                 for _ in range(a.runs)]
        i = median_info(infos)
        t = i["total-time"] / 1000.0
        # data pages moved per second, whatever the wire carried (QEMU
        # also counts every untouched page of the guest as a zero page)
        data = i["ram"]["normal"] * 4096
        rows.append((vmm, mode, n, comp + (" +zero-copy" if zc else ""), t,
                     i["downtime"], i["ram"]["transferred"], data / t,
                     i["cpu-src"] / t, i["cpu-dst"] / t,
                     i["ram"].get("dirty-sync-missed-zero-copy", 0)))
    print("\n### multifd: 1 GiB `%s` in a 2 GiB guest, TCP loopback, "
          "unlimited bandwidth, destination -mem-prealloc (median of %d)\n"
          % (a.multifd_pattern, a.runs))
    print("Single-stream loopback ceilings measured now (best of 3): %.2f "
          "GB/s from a reused buffer, %.2f GB/s RAM to RAM. \"pages GB/s\": "
          "data pages moved per second of total time. \"zc missed\": "
          "dirty-sync-missed-zero-copy.\n" % (raw / 1e9, ram / 1e9))
    print("| VMM | mode | channels | compression | total ms | downtime ms "
          "| on the wire | pages GB/s | / buffer ceiling | / RAM ceiling | "
          "CPU src | CPU dst | zc missed |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for vmm, mode, n, comp, t, dt, tr, bps, cs, cd, zm in rows:
        print("| %s | %s | %s | %s | %.0f | %d | %.0f MiB | %.2f | %.2f | "
              "%.2f | %.0f %% | %.0f %% | %s |" % (
                  vmm, mode, n or "-", comp, t * 1000, dt, tr / 2**20,
                  bps / 1e9, bps / raw, bps / ram, cs * 100, cd * 100,
                  zm if "zero-copy" in comp else "-"))
        sys.stdout.flush()


def tls_objects(kind, creds_dir):
    """object-add arguments for each side: tls-creds-KIND with id tls0."""
    sub = {"psk": ("psk", "psk"), "x509": ("client", "server")}[kind]
    return {side: [{"qom_type": "tls-creds-" + kind, "id": "tls0",
                    "dir": os.path.join(creds_dir, d), "endpoint": ep}]
            for side, d, ep in (("src", sub[0], "client"),
                                ("dst", sub[1], "server"))}


def bench_tls(a):
    """The cost of TLS: the same 1 GiB (incompressible) migration in a
    2 GiB guest, plain, over TLS with PSK and with x509 certificates
    (GnuTLS, TLS 1.3, AES-GCM where the CPU has it), single stream and
    multifd over 2 channels; unlimited bandwidth, TCP loopback."""
    creds = tempfile.mkdtemp(prefix="gwbench-tls-")
    subprocess.run(["build/tests/bench/gen-tls-creds", creds], check=True)
    rows = []
    try:
        for mode in ("precopy", "multifd"):
            for kind in ("plain", "psk", "x509"):
                caps, params = (), {}
                if mode == "multifd":
                    caps = ("multifd",)
                    params = {"multifd_channels": 2}
                objs = None
                if kind != "plain":
                    objs = tls_objects(kind, creds)
                    params["tls_creds"] = "tls0"
                infos = [migrate_run("godwit", "2G", "fill",
                                     "size=1G pattern=%s" % a.multifd_pattern,
                                     caps, params, prealloc=True,
                                     objects=objs)
                         for _ in range(a.runs)]
                i = median_info(infos)
                t = i["total-time"] / 1000.0
                rows.append((mode, kind, t, i["ram"]["transferred"],
                             i["cpu-src"] / t, i["cpu-dst"] / t))
    finally:
        shutil.rmtree(creds, ignore_errors=True)
    print("\n### TLS: 1 GiB `%s` in a 2 GiB guest, TCP loopback, unlimited "
          "bandwidth, destination -mem-prealloc (median of %d)\n"
          % (a.multifd_pattern, a.runs))
    print("| mode | TLS | total ms | GB/s on the wire | time / plain | "
          "CPU src | CPU dst |")
    print("|---|---|---:|---:|---:|---:|---:|")
    base = {r[0]: r[2] for r in rows if r[1] == "plain"}
    for mode, kind, t, tr, cs, cd in rows:
        print("| %s | %s | %.0f | %.2f | %.2f | %.0f %% | %.0f %% |" % (
            mode, kind, t * 1000, tr / t / 1e9, t / base[mode], cs * 100,
            cd * 100))
        sys.stdout.flush()


def bench_xbzrle(a):
    """XBZRLE on a stress-like guest (guestperf: stress that reports its
    passes) with sparse changes (one 8-byte word per page per pass) over
    125 MB/s: bytes and total time with and without, godwit and QEMU."""
    append = "vm=1 vm-bytes=512M vm-stride=4096 rate=%s" % a.xbzrle_rate
    rows = []
    for vmm in ["godwit"] + (["qemu"] if QEMU else []):
        for xb in (False, True):
            caps = ("xbzrle",) if xb else ()
            params = {"xbzrle_cache_size": 512 << 20} if xb else {}
            # after two whole passes: the working set is all populated
            infos = [migrate_run(vmm, "1G", "guestperf", append, caps,
                                 params, bandwidth=125000000,
                                 max_s=a.xbzrle_cap, ready="pass=2 ")
                     for _ in range(a.runs)]
            i = median_info(infos)
            x = i.get("xbzrle-cache", {})
            rows.append((vmm, xb, i["status"], i["total-time"],
                         i.get("downtime"), i.get("ram", {}).get(
                             "transferred", 0), x.get("pages"),
                         x.get("cache-miss-rate"), x.get("encoding-rate")))
    print("\n### XBZRLE: guestperf vm=1 vm-bytes=512M vm-stride=4096 rate=%s "
          "(one word per page per pass) in a 1 GiB guest, 125 MB/s, "
          "downtime-limit 300 ms, cache 512 MiB (median of %d, cap %d s)\n"
          % (a.xbzrle_rate, a.runs, a.xbzrle_cap))
    print("| VMM | xbzrle | result | total s | downtime ms | transferred | "
          "xbzrle pages | cache miss rate | encoding rate |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for vmm, xb, st, tt, dt, tr, pg, miss, enc in rows:
        print("| %s | %s | %s | %.1f | %s | %.0f MiB | %s | %s | %s |" % (
            vmm, "on" if xb else "off", st, tt / 1000.0,
            dt if dt is not None else "-", tr / 2**20,
            pg if pg is not None else "-",
            "%.3f" % miss if miss is not None else "-",
            "%.0f" % enc if enc is not None else "-"))
        sys.stdout.flush()


def measure_dirty_rate(qmp, mode, seconds, samples):
    """One calc-dirty-rate; returns MiB/s."""
    args = {"calc-time": seconds, "sample-pages": samples}
    if mode != "page-sampling":
        args["mode"] = mode
    qmp.cmd("calc-dirty-rate", **args)
    time.sleep(seconds)
    while True:
        r = qmp.cmd("query-dirty-rate")
        if r["status"] == "measured":
            return r["dirty-rate"]
        time.sleep(0.1)


def bench_dirty_rate(a):
    """calc-dirty-rate against stress guests told to dirty a known rate."""
    rates = [20, 100, 400]  # MiB/s
    modes = ["dirty-bitmap", "page-sampling"]
    print("\n### Dirty-rate measurement (stress vm=1 vm-bytes=1G rate=R, "
          "1.5 GiB guest, calc-time 2 s, sample-pages 4096, median of %d)\n"
          % max(a.runs, 1))
    print("| VMM | configured MiB/s | dirty-bitmap | / configured | "
          "page-sampling | / configured |")
    print("|---|---:|---:|---:|---:|---:|")
    for vmm in ["godwit"] + (["qemu"] if QEMU else []):
        for rate in rates:
            app = "vm=1 vm-bytes=1G rate=%dM" % rate
            kernel = payload("stress")
            if vmm == "godwit":
                g = GW("bench", ["-m", "1536M", "-kernel", kernel,
                                 "-append", app])
            else:
                g = QemuVM("1536M", kernel, app)
            try:
                g.wait_serial("READY", 60)
                time.sleep(1.0)
                got = {}
                for mode in modes:
                    vals = sorted(measure_dirty_rate(g.qmp, mode, 2, 4096)
                                  for _ in range(max(a.runs, 1)))
                    got[mode] = vals[len(vals) // 2]
            finally:
                g.cleanup()
            print("| %s | %d | %d | %.2f | %d | %.2f |" % (
                vmm, rate, got["dirty-bitmap"], got["dirty-bitmap"] / rate,
                got["page-sampling"], got["page-sampling"] / rate))
            sys.stdout.flush()


def bench_dirty_rate_ring(a):
    """calc-dirty-rate mode dirty-ring (-accel kvm,dirty-ring-size=4096)
    against stress guests told to dirty a known rate, godwit and QEMU."""
    if ACCEL != "kvm":
        print("\n(dirty-rate-ring: needs --accel kvm)")
        return
    accel = "kvm,dirty-ring-size=4096"
    print("\n### calc-dirty-rate mode dirty-ring (-accel %s; stress vm=1 "
          "vm-bytes=1G rate=R, 1.5 GiB guest, one vCPU, calc-time 2 s, "
          "median of %d)\n" % (accel, max(a.runs, 1)))
    print("| VMM | configured MiB/s | dirty-ring | / configured | "
          "vcpu-dirty-rate |")
    print("|---|---:|---:|---:|---|")
    for vmm in ["godwit"] + (["qemu"] if QEMU else []):
        for rate in [20, 100, 400]:
            app = "vm=1 vm-bytes=1G rate=%dM" % rate
            if vmm == "godwit":
                g = GW("bench", ["-accel", accel, "-m", "1536M", "-kernel",
                                 payload("stress"), "-append", app])
            else:
                g = QemuVM("1536M", payload("stress"), app, accel=accel)
            try:
                g.wait_serial("READY", 60)
                time.sleep(1.0)
                vals = []
                for _ in range(max(a.runs, 1)):
                    g.qmp.cmd("calc-dirty-rate", **{"calc-time": 2,
                                                    "mode": "dirty-ring"})
                    time.sleep(2)
                    while True:
                        r = g.qmp.cmd("query-dirty-rate")
                        if r["status"] == "measured":
                            break
                        time.sleep(0.1)
                    vals.append((r["dirty-rate"], r.get("vcpu-dirty-rate")))
            finally:
                g.cleanup()
            vals.sort(key=lambda v: v[0])
            got, per = vals[len(vals) // 2]
            print("| %s | %d | %d | %.2f | %s |" % (
                vmm, rate, got, got / rate, ", ".join(
                    "%d: %d" % (v["id"], v["dirty-rate"]) for v in per or [])))
            sys.stdout.flush()


def postcopy_run(vmm, mem, payload_name, append, when, bandwidth,
                 ready="READY", blocktime=True, serial_speed=True):
    """One post-copy migration over TCP loopback: `when` is "immediate"
    (migrate-start-postcopy right after migrate) or "after-pass" (after
    the first whole precopy pass, MIGRATION_PASS 2). Both rate limits at
    `bandwidth` (0 = none). Returns the source's query-migrate plus
    "dst" (the destination's), "before"/"during"/"after" guest ms/GiB
    (guestperf-style payloads) and "pause" (verify's pause_ms)."""
    kernel = payload(payload_name)
    caps = ["postcopy-ram"] + (["postcopy-blocktime"] if blocktime else [])
    if vmm == "godwit":
        dst = GW("dst", ["-m", mem, "-incoming", "defer"])
        src = GW("src", ["-m", mem, "-kernel", kernel, "-append", append])
    else:
        dst = QemuVM(mem, kernel, append, "defer")
        src = QemuVM(mem, kernel, append)
    try:
        for vm in (src, dst):
            vm.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": c, "state": True} for c in caps + ["events"]])
        port = free_port()
        dst.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:%d" % port)
        if not src.wait_serial(ready, 180):
            raise RuntimeError("%s: guest not ready" % vmm)
        before = wall_ms_per_gib(src.serial, 2.0) if serial_speed else None
        big = bandwidth or (1 << 40)
        src.qmp.cmd("migrate-set-parameters", max_bandwidth=big,
                    max_postcopy_bandwidth=bandwidth, downtime_limit=1)
        b0 = perf_bytes(src.serial())
        t0 = time.monotonic()
        src.qmp.cmd("migrate", uri="tcp:127.0.0.1:%d" % port)
        if when == "after-pass":
            while True:
                ev = src.qmp.wait_event("MIGRATION_PASS", 120)
                if ev["data"]["pass"] >= 2:
                    break
        src.qmp.cmd("migrate-start-postcopy")
        while True:
            info = src.qmp.cmd("query-migrate")
            if info.get("status") in ("completed", "failed"):
                break
            time.sleep(0.01)
        wall = time.monotonic() - t0
        if info["status"] != "completed":
            raise RuntimeError("%s: post-copy %s" % (vmm, info))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            dinfo = dst.qmp.cmd("query-migrate")
            if dinfo.get("status") in ("completed", "failed"):
                break
            time.sleep(0.01)
        info["dst"] = dinfo
        info["wall"] = wall
        if serial_speed:
            gib = (perf_bytes(src.serial()) - b0 +
                   perf_bytes(dst.serial())) / 2**30
            info["before"] = before
            info["during"] = wall * 1000 / gib if gib else None
            info["after"] = wall_ms_per_gib(dst.serial, 2.0)
        m = re.search(r"pause_ms=([0-9.]+)", dst.serial())
        info["pause"] = float(m.group(1)) if m else None
        return info
    finally:
        src.cleanup()
        dst.cleanup()


def bench_postcopy(a):
    """The seed blog's post-copy scenarios: 2 GiB guest, two workers x
    512 MiB (guestperf), 125 MB/s, post-copy right away and after the
    first precopy pass."""
    append = "vm=2 vm-bytes=512M"
    rows = []
    for vmm in ["godwit"] + (["qemu"] if QEMU else []):
        for when in ("immediate", "after-pass"):
            infos = [postcopy_run(vmm, "2G", "guestperf", append, when,
                                  125000000, ready="pass=3 ")
                     for _ in range(a.runs)]
            rows.append((vmm, when, median_info(infos)))
    print("\n### Post-copy: guestperf vm=2 vm-bytes=512M in a 2 GiB guest, "
          "max-bandwidth and max-postcopy-bandwidth 125 MB/s (median of "
          "%d)\n" % a.runs)
    print("Guest ms/GiB: wall time per GiB the workers wrote (lower is "
          "faster), before the migration, during it (source and "
          "destination together) and after.\n")
    print("| VMM | post-copy | total s | downtime ms | before | during | "
          "after | page requests | blocktime ms | vCPU blocktime ms | "
          "total / QEMU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    q = {w: i for v, w, i in rows if v == "qemu"}
    for vmm, when, i in rows:
        d = i["dst"]
        ratio = ""
        if vmm == "godwit" and when in q:
            ratio = "%.2f" % (i["total-time"] / q[when]["total-time"])
        print("| %s | %s | %.1f | %s | %.0f | %.0f | %.0f | %d | %s | %s | "
              "%s |" % (
                  "QEMU 7.2" if vmm == "qemu" else vmm, when,
                  i["total-time"] / 1000.0, i.get("downtime", "-"),
                  i["before"], i["during"] or 0, i["after"],
                  i["ram"].get("postcopy-requests", 0),
                  d.get("postcopy-blocktime", "-"),
                  d.get("postcopy-vcpu-blocktime", "-"), ratio))
        sys.stdout.flush()


def bench_postcopy_latency(a):
    """Page-request latency: a destination whose guest touches pages the
    source has not pushed (max-postcopy-bandwidth 1 MB/s: nearly every
    page comes on request), fault read to page placed, over >= 10,000
    faults; next to the userfaultfd round trip alone
    (build/tests/bench/bench-postcopy-ram)."""
    info = postcopy_run("godwit", "512M", "verify", "vm=2 vm-bytes=64M",
                        "immediate", 1000000, blocktime=True,
                        serial_speed=False)
    lat = info["dst"].get("x-postcopy-fault-latency", {})
    print("\n### Post-copy page-request latency (verify vm=2 "
          "vm-bytes=64M, 512 MiB guest, post-copy right away, loopback)\n")
    print("| path | faults | p50 us | p99 us | max us |")
    print("|---|---:|---:|---:|---:|")
    print("| request over the return path, page placed | %s | %s | %s | %s |"
          % (lat.get("faults"), lat.get("p50-us"), lat.get("p99-us"),
             lat.get("max-us")))
    exe = os.path.join(ROOT, "build", "tests", "bench", "bench-postcopy-ram")
    if os.path.exists(exe):
        out = subprocess.run([exe], capture_output=True, text=True).stdout
        print("\nuserfaultfd round trip alone (%s):\n\n```\n%s```" % (
            os.path.relpath(exe, ROOT), out))


def bench_postcopy_switchover(a):
    """Switchover pause of post-copy against guest size: verify (64 MiB
    working set) in 1, 4 and 16 GiB guests, post-copy right away; the
    guest's own measure of the gap (pause_ms: last progress on the source
    to first on the destination) and the source's downtime."""
    rows = []
    for mem in a.switchover_sizes:
        infos = [postcopy_run("godwit", mem, "verify", "vm=2 vm-bytes=32M",
                              "immediate", 0, serial_speed=False)
                 for _ in range(a.runs)]
        i = median_info(infos)
        rows.append((mem, i.get("downtime"), i["pause"], i["total-time"]))
    print("\n### Post-copy switchover pause vs guest size (verify, "
          "post-copy right away, median of %d)\n" % a.runs)
    print("| guest | source downtime ms | guest-visible pause ms | "
          "total ms |")
    print("|---|---:|---:|---:|")
    for mem, dt, pause, tt in rows:
        print("| %s | %s | %s | %s |" % (mem, dt, pause, tt))
        sys.stdout.flush()


def dd_gbps(args, nbytes):
    """GB/s of one dd run (its own output discarded)."""
    t0 = time.monotonic()
    subprocess.run(["dd"] + args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return nbytes / (time.monotonic() - t0) / 1e9


def drop_caches():
    """Empties the page cache (root only); False where not allowed."""
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def file_save(mem, append, path, uring):
    """Saves a stopped guest to file:path. Returns (GB/s of the save as
    query-migrate times it, GB/s including an fdatasync of the file, bytes
    of the file)."""
    env = os.environ.copy()
    os.environ["GODWIT_IO_URING"] = "on" if uring else "off"
    try:
        src = GW("src", ["-m", mem, "-kernel", payload("fill"),
                         "-append", append])
    finally:
        os.environ.clear()
        os.environ.update(env)
    try:
        if not src.wait_serial("fill: done", 300):
            raise RuntimeError("file: guest not filled")
        src.qmp.cmd("stop")
        src.qmp.cmd("migrate-set-parameters", max_bandwidth=0)
        t0 = time.monotonic()
        src.qmp.cmd("migrate", uri="file:" + path)
        while True:
            info = src.qmp.cmd("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.005)
        if info["status"] != "completed":
            raise RuntimeError("file: save %s" % info)
        wall = time.monotonic() - t0
        fd = os.open(path, os.O_RDONLY)
        os.fdatasync(fd)
        os.close(fd)
        synced = time.monotonic() - t0
        size = os.path.getsize(path)
        return (size / (info["total-time"] / 1000.0) / 1e9,
                size / max(synced, wall) / 1e9, size)
    finally:
        src.cleanup()


def file_restore(mem, path, uring, size):
    """Restores file:path into a new godwit: GB/s from its start until
    query-migrate says completed."""
    env = os.environ.copy()
    os.environ["GODWIT_IO_URING"] = "on" if uring else "off"
    t0 = time.monotonic()
    try:
        dst = GW("dst", ["-m", mem, "-S", "-incoming", "file:" + path])
    finally:
        os.environ.clear()
        os.environ.update(env)
    try:
        while True:
            st = dst.qmp.cmd("query-migrate").get("status")
            if st in ("completed", "failed"):
                break
            if time.monotonic() - t0 > 300:
                raise RuntimeError("file: restore did not finish")
            time.sleep(0.005)
        if st != "completed":
            raise RuntimeError("file: restore failed")
        return size / (time.monotonic() - t0) / 1e9
    finally:
        dst.cleanup()


def bench_file(a):
    """file: save of a stopped 4 GiB guest (2.9 GiB of random data) and its
    restore into a new process, with io_uring and with it forced off
    (GODWIT_IO_URING=off), next to dd writing and reading a file of the
    same size in the same folder (/var/tmp: the repository's disk)."""
    mem, append = a.file_mem, "size=%s pattern=random" % a.file_fill
    folder = tempfile.mkdtemp(prefix="gw-bench-file-", dir=a.file_dir)
    path, ddpath = os.path.join(folder, "vm.mig"), os.path.join(folder, "dd")
    cold = os.geteuid() == 0
    rows, size = [], 0
    try:
        for uring in (True, False):
            runs = []
            for _ in range(a.runs):
                save, save_sync, size = file_save(mem, append, path, uring)
                warm = file_restore(mem, path, uring, size)
                cold_gbps = (file_restore(mem, path, uring, size)
                             if cold and drop_caches() else None)
                runs.append((save, save_sync, warm, cold_gbps))
                os.unlink(path)
            runs.sort(key=lambda r: r[0])
            rows.append((uring, runs[len(runs) // 2]))
        count = "count=%d" % (size >> 20)
        of, inp = "of=" + ddpath, "if=" + ddpath
        dd_w = dd_gbps(["if=/dev/zero", of, "bs=1M", count], size)
        dd_ws = dd_gbps(["if=/dev/zero", of, "bs=1M", count,
                         "conv=fdatasync"], size)
        dd_r = dd_gbps([inp, "of=/dev/null", "bs=1M"], size)
        dd_rc = dd_gbps([inp, "of=/dev/null", "bs=1M"], size) \
            if cold and drop_caches() else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    fmt = lambda v: "%.2f" % v if v is not None else "n/a"
    ratio = lambda v, d: "%.2f" % (v / d) if v is not None and d else "n/a"
    print("\n### file: save and restore of a stopped %s guest (%s random), "
          "%s (median of %d)\n" % (mem, a.file_fill, a.file_dir, a.runs))
    print("File: %.0f MiB. GB/s = file bytes / time. Save: query-migrate "
          "total-time (no fsync, as QEMU); '+ fdatasync': until an "
          "fdatasync of the file returns. Restore: from the new process's "
          "start until query-migrate says completed; warm: the file still "
          "in the page cache from the save; cold: after `echo 3 > "
          "/proc/sys/vm/drop_caches`%s. dd: bs=1M, write from /dev/zero "
          "(buffered, and conv=fdatasync), read to /dev/null (warm, "
          "cold).\n" % (size / 2**20, "" if cold else " (not root: n/a)"))
    print("| path | save | save + fdatasync | restore warm | restore cold "
          "| save / dd write | save+sync / dd fdatasync | restore warm / dd "
          "read warm | restore cold / dd read cold |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for uring, (sv, svs, rw, rc) in rows:
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            "io_uring" if uring else "plain (GODWIT_IO_URING=off)", fmt(sv),
            fmt(svs), fmt(rw), fmt(rc), ratio(sv, dd_w), ratio(svs, dd_ws),
            ratio(rw, dd_r), ratio(rc, dd_rc)))
    print("| dd | %s | %s | %s | %s | 1 | 1 | 1 | 1 |" % (
        fmt(dd_w), fmt(dd_ws), fmt(dd_r), fmt(dd_rc)))


SECTIONS = {
    "boot": bench_boot,
    "page-rate": bench_page_rate,
    "memory": bench_memory,
    "dirty-sync": bench_dirty_sync,
    "zero-page": bench_zero_page,
    "send-path": bench_send_path,
    "migrate-idle": bench_migrate_idle,
    "migrate-fill": bench_migrate_fill,
    "throttle": bench_throttle,
    "auto-converge": bench_auto_converge,
    "dirty-rate": bench_dirty_rate,
    "xbzrle": bench_xbzrle,
    "compress": bench_compress,
    "multifd": bench_multifd,
    "tls": bench_tls,
    "postcopy": bench_postcopy,
    "postcopy-latency": bench_postcopy_latency,
    "postcopy-switchover": bench_postcopy_switchover,
    "dirty-ring": bench_dirty_ring,
    "dirty-rate-ring": bench_dirty_rate_ring,
    "file": bench_file,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("sections", nargs="*", default=list(SECTIONS),
                    help="which benchmarks: %s (default: all)" %
                    ", ".join(SECTIONS))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--passes", type=int, default=30)
    ap.add_argument("--syncs", type=int, default=10)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--sync-sizes", nargs="+", default=["4G", "8G"])
    ap.add_argument("--throttle-seconds", type=float, default=3.0)
    ap.add_argument("--ac-seconds", type=int, default=90,
                    help="give up an auto-converge run after this long")
    ap.add_argument("--ac-qemu", action="store_true",
                    help="also run the auto-converge scenarios under QEMU")
    ap.add_argument("--ac-policies", nargs="+",
                    default=["qemu", "aim", "dirty-limit"],
                    help="godwit's auto-converge policies to run: qemu, aim, "
                    "dirty-limit")
    ap.add_argument("--ac-scenarios", nargs="+", default=[],
                    help="only the scenarios whose name contains one of "
                    "these (e.g. '50/20' '(1)')")
    ap.add_argument("--ac-dirty-limit", type=int, default=50,
                    help="vcpu-dirty-limit (MB/s) of the dirty-limit policy")
    ap.add_argument("--xbzrle-rate", default="64M",
                    help="stress rate (bytes/s of pages dirtied) in the "
                    "xbzrle section")
    ap.add_argument("--xbzrle-cap", type=int, default=120,
                    help="give up an xbzrle-section migration after this "
                    "many seconds")
    ap.add_argument("--compress-pattern", default="half",
                    help="fill pattern of the compress section")
    ap.add_argument("--multifd-pattern", default="random",
                    help="fill pattern of the multifd section")
    ap.add_argument("--switchover-sizes", nargs="+",
                    default=["1G", "4G", "16G"],
                    help="guest sizes of the postcopy-switchover section")
    ap.add_argument("--file-mem", default="4G",
                    help="guest size of the file section")
    ap.add_argument("--file-fill", default="2900M",
                    help="random data the file section's guest writes "
                    "(a 4 GiB guest has room for at most ~2.9 GiB of it)")
    ap.add_argument("--file-dir", default="/var/tmp",
                    help="folder of the file section's files (a disk, "
                    "not tmpfs)")
    ap.add_argument("--accel", choices=["kvm", "tcg"],
                    default="kvm" if kvm_usable() else "tcg",
                    help="accelerator of godwit and QEMU (default: kvm "
                    "where /dev/kvm opens, else tcg)")
    a = ap.parse_args()
    global ACCEL
    ACCEL = a.accel
    if ACCEL == "kvm" and not kvm_usable():
        print("bench: --accel kvm: /dev/kvm is not available",
              file=sys.stderr)
        return 77
    print("<!-- scripts/bench %s, %s, %s -->" % (
        " ".join(sys.argv[1:]), time.strftime("%Y-%m-%d"),
        os.uname().release))
    print("host: %d CPUs, accelerator: %s (godwit and QEMU), QEMU: %s" % (
        os.cpu_count(), ACCEL, QEMU if QEMU else "not installed"))
    for s in a.sections:
        if s not in SECTIONS:
            ap.error("unknown section %r" % s)
        SECTIONS[s](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
