"""Convergence: the vCPU throttle, auto-converge and its policies, dirty
rate measurement.
"""
import re
import sys
import time


from . import common
from .common import (GW, QEMU, QemuVM, free_port, payload, perf_bytes,
                     wall_ms_per_gib)


PERF_MS_RE = re.compile(r"worker=\d+ cpu=\d+ pass=\d+ .*ms_per_gib=([0-9.]+)")


def perf_samples(serial):
    return [float(m.group(1)) for m in PERF_MS_RE.finditer(serial)]


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
        if policy == "dirty-limit" and common.ACCEL == "kvm":
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
              a.ac_seconds, common.ACCEL, a.ac_dirty_limit))
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
    if common.ACCEL != "kvm":
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
