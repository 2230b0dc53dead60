"""Post-copy: total time and guest speed, page-request latency, the
switchover pause.
"""
import os
import re
import subprocess
import sys
import time

from gwqmp import ROOT
from .common import (GW, QEMU, QemuVM, free_port, median_info, payload,
                     perf_bytes, wall_ms_per_gib)


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
