"""Soak: N ping-pong migrations (A -> B -> A ...) of the verify guest under
load, each with a random capability set, each checked.

Every migration goes to a fresh destination started with -S: when the
source reports completed, the RAM hashes of both sides (x-query-ram-hash)
must be equal; then the destination runs and the verify guest checks every
page (after the migration and once more on request) and must say ok. A
hash mismatch or a "verify FAILED" is a corruption; a migration that does
not complete (failed, or not converged in --timeout s and cancelled) is a
failure, and the source, still running, goes on with the next one.

Capability sets are drawn from the combinations QEMU allows (multifd
excludes xbzrle, compress and post-copy; post-copy excludes compress with
preempt): plain, xbzrle, compress (zlib/lz4/zstd), multifd (2-4 channels,
none/zlib/zstd/lz4), each optionally with auto-converge; post-copy
(switched to after a random 0-1 s), optionally with xbzrle, preempt or
auto-converge.

Not a test (not in CI): a tool to run for a while and quote. Examples:
    scripts/soak 20                     # quick look
    scripts/soak 200 --seed 7 --summary soak.md
"""
import argparse
import json
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwqmp import Godwit, QMPError, ROOT  # noqa: E402

CHECK_TIMEOUT = 60.0


def draw_caps(rng):
    """A random capability set QEMU accepts: (label, caps, params, postcopy)."""
    caps, params = [], {}
    kind = rng.choice(["plain", "xbzrle", "compress", "multifd", "postcopy"])
    if kind == "xbzrle":
        caps.append("xbzrle")
        params["xbzrle-cache-size"] = rng.choice([4, 16, 64]) << 20
    elif kind == "compress":
        caps.append("compress")
        params.update({"compress-method": rng.choice(["zlib", "lz4", "zstd"]),
                       "compress-threads": rng.choice([1, 2]),
                       "decompress-threads": rng.choice([1, 2]),
                       "compress-level": 1})
        if rng.random() < 0.5:
            caps.append("xbzrle")
    elif kind == "multifd":
        caps.append("multifd")
        params.update({"multifd-channels": rng.choice([2, 3, 4]),
                       "multifd-compression":
                           rng.choice(["none", "zlib", "zstd", "lz4"])})
    elif kind == "postcopy":
        caps.append("postcopy-ram")
        extra = rng.choice([None, "xbzrle", "postcopy-preempt"])
        if extra:
            caps.append(extra)
    if rng.random() < 0.3:
        caps.append("auto-converge")
    label = "+".join(caps) or "plain"
    if "compress-method" in params:
        label += "(%s)" % params["compress-method"]
    if "multifd-compression" in params:
        label += "(%dx%s)" % (params["multifd-channels"],
                              params["multifd-compression"])
    return label, caps, params, kind == "postcopy"


def ram_hash(vm):
    return vm.qmp.cmd("x-query-ram-hash")[0]["sha256"]


def wait_status(vm, want, timeout):
    deadline = time.monotonic() + timeout
    while True:
        st = vm.qmp.cmd("query-migrate").get("status", "none")
        if st in want or time.monotonic() > deadline:
            return st
        time.sleep(0.005)


def setup(vm, caps, params):
    if caps:
        vm.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": c, "state": True} for c in caps])
    if params:
        vm.qmp.cmd("migrate-set-parameters", **params)


class Soak:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.base = ["-m", a.mem, "-smp", "2"]
        if a.accel:
            self.base += ["-accel", a.accel]
        self.results = []  # dicts
        self.seq = 0

    def start_source(self):
        kernel = os.path.join(ROOT, "build", "guest", "verify.elf")
        src = Godwit("soak-src", self.base + [
            "-kernel", kernel, "-append", self.a.append])
        if not src.wait_serial("READY", 120):
            raise RuntimeError("verify guest never READY")
        return src

    def one(self, src):
        """One migration from src; returns (new source, result dict)."""
        label, caps, params, postcopy = draw_caps(self.rng)
        self.seq += 1
        dst = Godwit("soak-dst", self.base + ["-S", "-incoming", "defer"])
        sock = os.path.join(dst.dir, "mig.sock")
        r = {"n": self.seq, "caps": label, "status": None, "ms": None,
             "corrupt": False, "why": ""}
        try:
            # a source that migrated before keeps old capabilities: reset
            src.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": c, "state": False} for c in
                ("xbzrle", "compress", "multifd", "postcopy-ram",
                 "postcopy-preempt", "auto-converge")])
            setup(src, caps, params)
            setup(dst, caps, params)
            # post-copy: precopy slowed (16 MiB at 32 MiB/s) so that the
            # switch lands during it
            src.qmp.cmd("migrate-set-parameters",
                        max_bandwidth=(32 << 20) if postcopy else 0,
                        downtime_limit=300)
            dst.qmp.cmd("migrate-incoming", uri="unix:" + sock)
            n_ok = src.serial().count("verify ok")
            w0 = time.monotonic()
            src.qmp.cmd("migrate", uri="unix:" + sock)
            if postcopy:
                time.sleep(self.rng.random() * 0.3)
                try:
                    src.qmp.cmd("migrate-start-postcopy")
                except QMPError:
                    pass  # already over
            st = wait_status(src, ("completed", "failed", "cancelled"),
                             self.a.timeout)
            info = src.qmp.cmd("query-migrate")
            r["status"] = st
            r["wall_ms"] = int((time.monotonic() - w0) * 1000)
            r["ms"] = info.get("total-time", r["wall_ms"])
            r["downtime"] = info.get("downtime")
            if info.get("ram", {}).get("postcopy-bytes"):
                r["caps"] += "[switched]"
            if st != "completed":
                if st not in ("failed", "cancelled"):
                    src.qmp.cmd("migrate_cancel")
                    wait_status(src, ("cancelled", "failed"), 60)
                r["why"] = info.get("error-desc", "not converged in %ss"
                                    % self.a.timeout)
                dst.cleanup()
                return src, r
            if wait_status(dst, ("completed", "failed"), CHECK_TIMEOUT) \
                    != "completed":
                r["status"], r["why"] = "failed", "destination did not complete"
                dst.cleanup()
                return src, r
            h1, h2 = ram_hash(src), ram_hash(dst)
            if h1 != h2:
                r["corrupt"], r["why"] = True, "RAM hash %s != %s" % (h1, h2)
            dst.qmp.cmd("cont")
            ok = dst.wait_serial("verify ok", CHECK_TIMEOUT)
            dst.qmp.cmd("x-guest-request")
            ok = ok and dst.wait_serial("verify ok", CHECK_TIMEOUT, count=2)
            if "FAILED" in dst.serial() or not ok:
                r["corrupt"] = True
                r["why"] += " verify: %s" % (
                    [ln for ln in dst.serial().splitlines()
                     if "verify" in ln][-1:] or "no answer")
            del n_ok
            src.cleanup()
            return dst, r
        except Exception as e:  # noqa: BLE001  (a soak goes on)
            r["status"] = r["status"] or "error"
            r["why"] = "%s: %s" % (type(e).__name__, e)
            dst.cleanup()
            if src.proc.poll() is not None:
                src.cleanup()
                return self.start_source(), r
            return src, r

    def run(self):
        t0 = time.monotonic()
        src = self.start_source()
        try:
            for i in range(self.a.n):
                src, r = self.one(src)
                self.results.append(r)
                print("%4d %-44s %-9s %6s ms%s" % (
                    r["n"], r["caps"], r["status"], r["ms"],
                    "  CORRUPT " + r["why"] if r["corrupt"] else
                    ("  " + r["why"] if r["why"] else "")), flush=True)
        finally:
            src.cleanup()
        self.elapsed = time.monotonic() - t0

    def summary(self):
        res = self.results
        done = [r for r in res if r["status"] == "completed"]
        ms = sorted(r["ms"] for r in done if r["ms"] is not None)
        corrupt = sum(r["corrupt"] for r in res)
        failed = len(res) - len(done)
        by = {}
        for r in res:
            k = r["caps"].split("(")[0].split("[")[0]
            if r["caps"].endswith("[switched]"):
                k += " (switched to post-copy)"
            by.setdefault(k, [0, 0, 0])
            by[k][0] += 1
            by[k][1] += r["status"] != "completed"
            by[k][2] += r["corrupt"]
        a = self.a
        lines = [
            "`scripts/soak %d --seed %d --mem %s --append '%s'%s` "
            "(accelerator %s), %.0f s:" % (
                a.n, a.seed, a.mem, a.append,
                " --accel " + a.accel if a.accel else "",
                a.accel or "default", self.elapsed),
            "",
            "| migrations | corruptions | failures | min ms | median ms "
            "| max ms |",
            "|---:|---:|---:|---:|---:|---:|",
            "| %d | %d | %d | %s | %s | %s |" % (
                len(res), corrupt, failed,
                ms[0] if ms else "-",
                int(statistics.median(ms)) if ms else "-",
                ms[-1] if ms else "-"),
            "",
            "| capabilities | migrations | failures | corruptions |",
            "|---|---:|---:|---:|",
        ]
        for k in sorted(by):
            lines.append("| %s | %d | %d | %d |" % (k, *by[k]))
        bad = [r for r in res if r["status"] != "completed" or r["corrupt"]]
        if bad:
            lines += ["", "Failures and corruptions:", ""]
            lines += ["- #%d %s: %s %s" % (r["n"], r["caps"], r["status"],
                                           r["why"]) for r in bad]
        return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("n", type=int, help="migrations")
    ap.add_argument("--seed", type=int, default=None,
                    help="random seed (default: random, printed)")
    ap.add_argument("--mem", default="64M")
    ap.add_argument("--append", default="vm=2 vm-bytes=16M rate=16M",
                    help="verify guest arguments (default: 2 workers "
                         "rewriting 16 MiB at 16 MiB/s each)")
    ap.add_argument("--accel", default=None, help="kvm or tcg")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds before a migration is cancelled")
    ap.add_argument("--summary", help="write the markdown summary here")
    ap.add_argument("--json", help="write every migration's result here")
    a = ap.parse_args()
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1 << 31)
    print("soak: %d migrations, seed %d" % (a.n, a.seed), flush=True)
    s = Soak(a)
    try:
        s.run()
    except KeyboardInterrupt:
        print("interrupted")
    text = s.summary()
    print()
    print(text, end="")
    if a.summary:
        with open(a.summary, "w") as f:
            f.write(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(s.results, f, indent=1)
    return 1 if any(r["corrupt"] for r in s.results) else 0


if __name__ == "__main__":
    sys.exit(main())
