"""Helpers for the gwsh tests: a private run directory, gwsh as a
subprocess, QMP to its domains, serial logs. Exit codes: 0 pass, 1 fail,
77 skip (unittest's skips are reported and count as passes; a whole file
that cannot run exits 77)."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("MESON_BUILD_ROOT") or os.path.join(ROOT, "build")
GWSH = os.environ.get("GWSH") or os.path.join(BUILD, "gwsh")
GUEST_DIR = os.environ.get("GUEST_DIR") or os.path.join(BUILD, "guest")
GODWIT = os.environ.get("GODWIT") or os.path.join(BUILD, "godwit")
sys.path.insert(0, os.path.join(ROOT, "tools", "gwsh"))
from gwshlib.qmp import QMP  # noqa: E402


def accel_opts():
    a = os.environ.get("GODWIT_ACCEL")
    return ["-accel", a] if a else []


def payload(name):
    return os.path.join(GUEST_DIR, name + ".elf")


def wait_gone(pid, timeout=10):
    """Until process `pid` has exited (a zombie counts: its sockets and
    memory are gone)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.01)


class GwshEnv:
    """A run directory of its own ($XDG_RUNTIME_DIR) for one test."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="gwsh-test-")
        self.env = dict(os.environ, XDG_RUNTIME_DIR=self.tmp)
        self.env.pop("GWSH_X_KEEP_SOURCE", None)
        self.rundir = os.path.join(self.tmp, "godwit")

    def gwsh(self, *args, check=True, timeout=120, env=None, **kw):
        e = dict(self.env)
        e.update(env or {})
        proc = subprocess.Popen([GWSH] + list(args), env=e, text=True,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **kw)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM first: gwsh cancels a migration and rolls back
            proc.terminate()
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            raise AssertionError("gwsh %s: still running after %d s" % (
                " ".join(args), timeout))
        p = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check and p.returncode != 0:
            raise AssertionError("gwsh %s: exit %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), p.returncode, p.stdout,
                                    p.stderr))
        return p

    def popen(self, *args, env=None):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.Popen([GWSH] + list(args), env=e,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def start(self, name, kernel, mem="128M", append="", extra=()):
        args = ["start", name, "--", "-m", mem] + accel_opts() + [
            "-kernel", payload(kernel), "-append", append] + list(extra)
        return self.gwsh(*args)

    def sock(self, name):
        return os.path.join(self.rundir, name + ".qmp")

    def qmp(self, name):
        return QMP(self.sock(name), timeout=10)

    def log(self, name):
        try:
            with open(os.path.join(self.rundir, name + ".log"),
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, name, needle, timeout=60, count=1):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.log(name).count(needle) >= count:
                return True
            time.sleep(0.02)
        return False

    def pid(self, name):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock(name))
            cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                struct.calcsize("3i"))
            return struct.unpack("3i", cred)[0]
        except OSError:
            return None
        finally:
            s.close()

    def kill_domains(self):
        """Kills every process whose command line names this test's
        directory (every godwit it started, through gwsh or not, even one
        whose gwsh was killed half-way) and removes the sockets."""
        mine = self.tmp.encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    if mine not in f.read():
                        continue
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                continue
            wait_gone(int(entry))
        try:
            names = os.listdir(self.rundir)
        except FileNotFoundError:
            names = []
        for f in names:
            if f.endswith(".qmp"):
                os.unlink(os.path.join(self.rundir, f))

    def cleanup(self):
        self.kill_domains()
        shutil.rmtree(self.tmp, ignore_errors=True)


class GwshTestCase(unittest.TestCase):
    def setUp(self):
        self.g = GwshEnv()

    def tearDown(self):
        self.g.cleanup()

    def ram_hash(self, name):
        q = self.g.qmp(name)
        try:
            return q.cmd("x-query-ram-hash")[0]["sha256"]
        finally:
            q.close()

    def status(self, name):
        q = self.g.qmp(name)
        try:
            return q.cmd("query-status")["status"]
        finally:
            q.close()

    def check_migrated(self, name="vm1", verify=True):
        """After `migrate --suspend` with GWSH_X_KEEP_SOURCE: source paused
        after the migration, destination paused under the domain's name,
        RAM hashes equal; then the destination resumes and, for the verify
        payload, says ok."""
        self.assertEqual(self.status(name + ".migrated"), "postmigrate")
        self.assertEqual(self.status(name), "paused")
        self.assertEqual(self.ram_hash(name + ".migrated"),
                         self.ram_hash(name))
        self.g.gwsh("resume", name)
        self.assertEqual(self.status(name), "running")
        if verify:
            self.assertTrue(self.g.wait_log(name, "verify ok", 60),
                            self.g.log(name)[-2000:])
            self.assertNotIn("FAILED", self.g.log(name))


def main():
    if not os.access(GWSH, os.X_OK):
        print("gwsh not built: %s" % GWSH)
        sys.exit(77)
    unittest.main(verbosity=2)
