"""What every benchmark section uses: the accelerator, godwit and QEMU
launchers, waiting for serial output, free ports, QEMU pairs.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time

from gwqmp import QMP, ROOT, Godwit


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


def wait_migrated(qmp, what, poll=0.01):
    """Polls query-migrate until the migration ends; returns the final
    reply, or raises unless it completed."""
    while True:
        info = qmp.cmd("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            break
        time.sleep(poll)
    if info["status"] != "completed":
        raise RuntimeError("%s: migration %s" % (what, info))
    return info


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


def median_info(infos):
    """The run with the median total time."""
    return sorted(infos, key=lambda i: i["total-time"])[len(infos) // 2]
PERF_BYTES_RE = re.compile(r"worker=\d+ cpu=\d+ pass=\d+ cycles=\d+ "
                           r"bytes=(\d+)")


def perf_bytes(serial):
    """Bytes covered by all the passes printed so far (every worker)."""
    return sum(int(m.group(1)) for m in PERF_BYTES_RE.finditer(serial))


def wall_ms_per_gib(serial_fn, seconds):
    """Guest speed over wall time (sleeps of a throttle included)."""
    b0, t0 = perf_bytes(serial_fn()), time.monotonic()
    time.sleep(seconds)
    b1, t1 = perf_bytes(serial_fn()), time.monotonic()
    return (t1 - t0) * 1000 / max((b1 - b0) / 2**30, 1e-9)
