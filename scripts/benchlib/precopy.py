"""The precopy data path: idle and filled migrations against the TCP
ceilings, the send paths, XBZRLE, compression, multifd, TLS, file:.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

from gwqmp import ROOT
from .common import (GW, QEMU, QemuVM, free_port, median_info, payload,
                     wait_migrated)


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
        return wait_migrated(src.qmp, vmm)
    finally:
        src.cleanup()
        dst.cleanup()


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


def bench_send_path(a):
    """Four ways to send pages over one loopback connection (issue 16)."""
    out = subprocess.run([os.path.join(ROOT, "build", "tests", "bench",
                                       "bench-send-path"), "1024",
                          str(min(a.runs, 15))],
                         capture_output=True, text=True, check=True).stdout
    print("\n### Sending 1 GiB of pages, one loopback connection "
          "(median of %d, alternating)\n" % min(a.runs, 15))
    print(out, end="")


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
        info = wait_migrated(src.qmp, "file: save", poll=0.005)
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
