#!/usr/bin/env python3
"""What tcg's per-vCPU dirty count costs a guest (docs/devel/auto-converge.md,
"dirty-limit"): guestperf's ms/GiB with the count off, then on (a limit far
above the guest's rate, so nothing is throttled), alternating, under tcg.

    scripts/bench-dirty-limit-count.py [--rounds N]
"""
import argparse
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwqmp import ROOT, Godwit  # noqa: E402

ELF = os.path.join(ROOT, "build", "guest", "guestperf.elf")
PASS = re.compile(r"guestperf: worker=0 .*ms_per_gib=([0-9.]+)")


def passes(g):
    return [float(m.group(1)) for m in PASS.finditer(g.serial())]


def next_passes(g, n, skip=4):
    """ms/GiB of the n passes after the next `skip` (settling)."""
    start = len(passes(g)) + skip
    deadline = time.monotonic() + 300
    while len(passes(g)) < start + n:
        if time.monotonic() > deadline:
            raise RuntimeError("guestperf stopped reporting")
        time.sleep(0.2)
    return passes(g)[start:start + n]


def run(smp, vm, size, rounds):
    g = Godwit("count", ["-accel", "tcg", "-m", "512M", "-smp", str(smp),
                         "-kernel", ELF, "-append",
                         "vm=%d vm-bytes=%s" % (vm, size)])
    try:
        if not g.wait_serial("READY"):
            raise RuntimeError("guest not ready")
        off, on = [], []
        for _ in range(rounds):
            g.qmp.cmd("cancel-vcpu-dirty-limit")
            off.append(statistics.median(next_passes(g, 10)))
            g.qmp.cmd("set-vcpu-dirty-limit", dirty_rate=1000000)
            on.append(statistics.median(next_passes(g, 10)))
        g.quit()
    finally:
        g.cleanup()
    print("-smp %d vm=%d vm-bytes=%s: count off %s, on %s ms/GiB "
          "(medians of 10 passes per round); on/off %.2f" % (
              smp, vm, size, ["%.0f" % v for v in off],
              ["%.0f" % v for v in on],
              statistics.mean(on) / statistics.mean(off)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    run(1, 1, "256M", a.rounds)
    run(2, 2, "128M", a.rounds)


if __name__ == "__main__":
    main()
