#!/usr/bin/env python3
"""The quickstart's main job: live-migrate a running `stress` guest between
two godwit processes over TCP, the way an operator drives QEMU (QMP), and
print a summary: total time, downtime, bytes, throughput, RAM hashes."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwqmp import ROOT, Godwit  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mem", default="512M")
    ap.add_argument("--append", default="vm=2 vm-bytes=128M rate=64M")
    ap.add_argument("--max-bandwidth", type=int, default=0,
                    help="bytes/s, 0 = unlimited")
    ap.add_argument("--downtime-limit", type=int, default=300, help="ms")
    ap.add_argument("--accel", default="",
                    help="kvm or tcg (default: godwit's own choice, kvm "
                         "where /dev/kvm opens, else tcg)")
    a = ap.parse_args()

    kernel = os.path.join(ROOT, "build", "guest", "stress.elf")
    accel = ["-accel", a.accel] if a.accel else []
    print("== destination: godwit %s-m %s -S -incoming tcp:127.0.0.1:0"
          % (" ".join(accel) + " " if accel else "", a.mem))
    dst = Godwit("dst", accel + ["-m", a.mem, "-S", "-incoming",
                                 "tcp:127.0.0.1:0"])
    print("== source: godwit %s-m %s -kernel %s -append '%s'"
          % (" ".join(accel) + " " if accel else "", a.mem,
             os.path.relpath(kernel, ROOT), a.append))
    src = Godwit("src", accel + ["-m", a.mem, "-kernel", kernel, "-append",
                                 a.append])
    print("   accelerator: source %s, destination %s" % (
        src.qmp.cmd("x-query-accel")["accelerator"],
        dst.qmp.cmd("x-query-accel")["accelerator"]))
    try:
        return migrate(a, src, dst)
    finally:
        src.cleanup()
        dst.cleanup()


def migrate(a, src, dst):
    if not src.wait_serial("READY", 60):
        print("quickstart: the guest did not become READY:\n" + src.serial())
        return 1
    for line in src.serial().splitlines():
        print("   src | " + line)
    time.sleep(1.0)  # let the workers dirty memory for a while

    port = dst.qmp.cmd("query-migrate")["socket-address"][0]["port"]
    uri = "tcp:127.0.0.1:%s" % port
    src.qmp.cmd("migrate-set-capabilities",
                capabilities=[{"capability": "events", "state": True}])
    src.qmp.cmd("migrate-set-parameters", max_bandwidth=a.max_bandwidth,
                downtime_limit=a.downtime_limit)
    print("== migrate %s (max-bandwidth %s, downtime-limit %d ms)" % (
        uri, a.max_bandwidth or "unlimited", a.downtime_limit))
    src.qmp.cmd("migrate", uri=uri)
    while True:
        info = src.qmp.cmd("query-migrate")
        if info["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.02)
    if info["status"] != "completed":
        print("quickstart: migration %s: %s" % (info["status"],
                                                 info.get("error-desc")))
        return 1
    while dst.qmp.cmd("query-status")["status"] != "paused":
        time.sleep(0.01)

    ram = info["ram"]
    h_src = src.qmp.cmd("x-query-ram-hash")[0]["sha256"]
    h_dst = dst.qmp.cmd("x-query-ram-hash")[0]["sha256"]
    print("== summary")
    print("   total time      %6d ms" % info["total-time"])
    print("   downtime        %6d ms   (source stopped -> stream complete)"
          % info["downtime"])
    print("   transferred     %6.1f MiB (%d pages sent, %d zero, %d never "
          "populated and skipped)" % (ram["transferred"] / 2**20,
                                      ram["normal"], ram["duplicate"],
                                      ram["skipped"]))
    print("   throughput      %6.0f Mbit/s" % ram["mbps"])
    print("   dirty syncs     %6d" % ram["dirty-sync-count"])
    print("   RAM sha256      %s" % ("equal (%s...)" % h_src[:16]
                                     if h_src == h_dst else
                                     "DIFFERENT: %s vs %s" % (h_src, h_dst)))
    dst.qmp.cmd("cont")
    src_state = src.qmp.cmd("query-status")["status"]
    dst.wait_serial("pause_ms=", 10)
    time.sleep(0.5)
    print("== after cont: source %s, destination %s" % (
        src_state, dst.qmp.cmd("query-status")["status"]))
    for line in dst.serial().splitlines():
        print("   dst | " + line)
    print("   (the guest's pause_ms includes the time the destination was "
          "held paused for the hash check)")
    return 0 if h_src == h_dst else 1


if __name__ == "__main__":
    sys.exit(main())
