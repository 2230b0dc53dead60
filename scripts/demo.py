#!/usr/bin/env python3
"""The quickstart's main job: boot a busy guest in godwit and drive it
through QMP and HMP the way an operator would, then stop it cleanly."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwqmp import ROOT, Godwit  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mem", default="512M")
    ap.add_argument("--smp", default="1")
    ap.add_argument("--append", default="vm=2 vm-bytes=128M")
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()

    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("quickstart: /dev/kvm is not available here", file=sys.stderr)
        return 1
    kernel = os.path.join(ROOT, "build", "guest", "stress.elf")
    print("== booting: godwit -m %s -smp %s -kernel %s -append '%s'"
          % (a.mem, a.smp, os.path.relpath(kernel, ROOT), a.append))
    t0 = time.monotonic()
    g = Godwit("quickstart", ["-m", a.mem, "-smp", a.smp, "-kernel", kernel,
                              "-append", a.append])
    try:
        if not g.wait_serial("READY", 60):
            print("quickstart: the guest did not become READY:\n" + g.serial())
            return 1
        print("== guest READY after %.0f ms; serial output:" %
              ((time.monotonic() - t0) * 1000))
        for line in g.serial().splitlines():
            print("   | " + line)
        time.sleep(a.seconds)
        st = g.qmp.cmd("query-status")
        print("== QMP query-status: %s" % st)
        print("== HMP info cpus:\n" + g.qmp.hmp("info cpus").rstrip())
        g.qmp.cmd("stop")
        print("== after stop: " + g.qmp.hmp("info status").strip())
        g.qmp.cmd("cont")
        print("== after cont: " + g.qmp.hmp("info status").strip())
        rc = g.quit()
        print("== quit: godwit exited with status %s" % rc)
        return 0 if rc == 0 else 1
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
