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
from gwqmp import ROOT, Godwit  # noqa: E402

GUEST = os.path.join(ROOT, "build", "guest")
QEMU = shutil.which("qemu-system-x86_64")


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
            [QEMU, "-accel", "kvm", "-m", mem, "-smp", smp, "-nodefaults",
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


def godwit_boot(kernel, mem, append):
    t0 = time.monotonic()
    g = Godwit("bench", ["-m", mem, "-kernel", kernel, "-append", append])
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
            "%.2f" % (gm / qm) if qm else "n/a"))


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


def bench_page_rate(a):
    """The stress workload's page-write rate per vCPU (guestperf reports)."""
    append = "vm=1 vm-bytes=256M"
    g = Godwit("bench", ["-m", "512M", "-kernel", payload("guestperf"),
                         "-append", append])
    g.wait_serial("pass=%d " % (a.passes + 3), 120)
    grate, gn = page_rate(g.serial())
    g.cleanup()
    qrate = None
    if QEMU:
        q = Qemu("512M", payload("guestperf"), append)
        wait_file(q.serial_path, "pass=%d " % (a.passes + 3), 120,
                  proc=q.proc)
        qrate, qn = page_rate(q.serial())
        q.stop()
    print("\n### Guest page-write rate, one vCPU (guestperf vm=1 "
          "vm-bytes=256M, median of %d passes)\n" % gn)
    print("| VMM | M pages/s per vCPU | ms per GiB pass | godwit / QEMU |")
    print("|---|---:|---:|---:|")
    for who, r in (("godwit", grate), ("QEMU 7.2", qrate)):
        if r is None:
            print("| %s | n/a | n/a | |" % who)
            continue
        print("| %s | %.1f | %.2f | %s |" % (
            who, r / 1e6, (262144 / r) * 1000,
            "%.2f" % (grate / qrate) if (qrate and who == "godwit") else ""))


def bench_dirty_sync(a):
    """Dirty-log sync (KVM_GET_DIRTY_LOG) and re-arm (KVM_CLEAR_DIRTY_LOG)
    time for a whole guest, with a writer dirtying 1 GiB continuously."""
    rows = []
    for mem in a.sync_sizes:
        g = Godwit("bench", ["-m", mem, "-kernel", payload("stress"),
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
    print("| guest | first sync (all %s pages) | dirty pages per sync "
          "| sync (GET_DIRTY_LOG) | re-arm (CLEAR_DIRTY_LOG) |" % "")
    print("|---|---:|---:|---:|---:|")
    for mem, fp, fus, d, s, c in rows:
        print("| %s | %d pages in %d us | %d | %d us | %d us |" % (
            mem, fp, fus, d, s, c))


SECTIONS = {
    "boot": bench_boot,
    "page-rate": bench_page_rate,
    "dirty-sync": bench_dirty_sync,
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
    ap.add_argument("--sync-sizes", nargs="+", default=["4G"])
    a = ap.parse_args()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("bench: /dev/kvm is not available", file=sys.stderr)
        return 77
    print("<!-- scripts/bench %s, %s, %s -->" % (
        " ".join(sys.argv[1:]), time.strftime("%Y-%m-%d"),
        os.uname().release))
    print("host: %d CPUs, QEMU: %s" % (os.cpu_count(),
                                       QEMU if QEMU else "not installed"))
    for s in a.sections:
        if s not in SECTIONS:
            ap.error("unknown section %r" % s)
        SECTIONS[s](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
