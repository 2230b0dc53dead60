"""godwit process helpers for scripts/ (Python 3 standard library).

Used by scripts/quickstart, scripts/bench and the demo. The QMP client is
gwsh's (tools/gwsh/gwshlib/qmp.py): one client for the whole tree.
"""
import os
import shutil
import signal
import sys
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "gwsh"))
from gwshlib.qmp import QMP, QMPError  # noqa: E402,F401  (one client)


class Godwit:
    """A godwit process with a QMP socket and a serial log in a temp dir."""

    def __init__(self, name, args, binary=None, keep_stderr=False, env=None):
        """env: variables added to this process's environment."""
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="godwit-%s-" % name)
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.serial_path = os.path.join(self.dir, "serial.log")
        binary = binary or os.path.join(ROOT, "build", "godwit")
        cmd = [binary, "-name", name,
               "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
               "-serial", "file:%s" % self.serial_path] + list(args)
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL,
            env=dict(os.environ, **env) if env else None,
            stderr=None if keep_stderr else subprocess.PIPE)
        try:
            self.qmp = QMP(self.qmp_path)
        except Exception:
            self.kill()
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError("godwit %s did not start: %s" % (name, err))

    def serial(self):
        try:
            with open(self.serial_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_serial(self, needle, timeout=60.0, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.serial().count(needle) >= count:
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        return self.serial().count(needle) >= count

    def quit(self, timeout=30.0):
        try:
            self.qmp.cmd("quit")
        except (QMPError, OSError):
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
