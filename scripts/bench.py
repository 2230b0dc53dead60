#!/usr/bin/env python3
"""godwit benchmarks: figures for docs/performance.md, each next to a ceiling
or QEMU's figure measured in the same run on the same host.

This machine has 2 cores shared by everything (godwit, QEMU, the bench):
figures are for that setting. Run `scripts/bench --help` for the sections.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import common, converge, machine, postcopy, precopy  # noqa: E402
from benchlib.common import QEMU, kvm_usable  # noqa: E402


SECTIONS = {
    "boot": machine.bench_boot,
    "page-rate": machine.bench_page_rate,
    "memory": machine.bench_memory,
    "dirty-sync": machine.bench_dirty_sync,
    "zero-page": machine.bench_zero_page,
    "send-path": precopy.bench_send_path,
    "migrate-idle": precopy.bench_migrate_idle,
    "migrate-fill": precopy.bench_migrate_fill,
    "throttle": converge.bench_throttle,
    "auto-converge": converge.bench_auto_converge,
    "dirty-rate": converge.bench_dirty_rate,
    "xbzrle": precopy.bench_xbzrle,
    "compress": precopy.bench_compress,
    "multifd": precopy.bench_multifd,
    "tls": precopy.bench_tls,
    "postcopy": postcopy.bench_postcopy,
    "postcopy-latency": postcopy.bench_postcopy_latency,
    "postcopy-switchover": postcopy.bench_postcopy_switchover,
    "dirty-ring": machine.bench_dirty_ring,
    "dirty-rate-ring": converge.bench_dirty_rate_ring,
    "file": precopy.bench_file,
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
    common.ACCEL = a.accel
    if common.ACCEL == "kvm" and not kvm_usable():
        print("bench: --accel kvm: /dev/kvm is not available",
              file=sys.stderr)
        return 77
    print("<!-- scripts/bench %s, %s, %s -->" % (
        " ".join(sys.argv[1:]), time.strftime("%Y-%m-%d"),
        os.uname().release))
    print("host: %d CPUs, accelerator: %s (godwit and QEMU), QEMU: %s" % (
        os.cpu_count(), common.ACCEL, QEMU if QEMU else "not installed"))
    for s in a.sections:
        if s not in SECTIONS:
            ap.error("unknown section %r" % s)
        SECTIONS[s](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
