"""Minimal QMP client and godwit process helpers (Python 3 standard library).

Used by scripts/quickstart, scripts/bench and the demo. Speaks QMP over a
unix socket: greeting, qmp_capabilities, commands with ids, events queued.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self.buf = b""
        self.events = []
        self.next_id = 1
        self.greeting = self._read(timeout)
        if "QMP" not in self.greeting:
            raise QMPError("not a QMP server: %r" % self.greeting)
        self.cmd("qmp_capabilities")

    def _read(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("QMP: no reply")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QMPError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, name, **args):
        """Returns the whole reply ({'return': ...} or {'error': ...})."""
        msg = {"execute": name, "id": self.next_id}
        self.next_id += 1
        if args:
            msg["arguments"] = {k.replace("_", "-"): v for k, v in args.items()}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            return r

    def cmd(self, name, **args):
        """Returns the 'return' value; raises QMPError on an error reply."""
        r = self.execute(name, **args)
        if "error" in r:
            raise QMPError("%s: %s" % (name, r["error"]["desc"]))
        return r["return"]

    def hmp(self, line):
        return self.cmd("human-monitor-command", command_line=line)

    def wait_event(self, name, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self.events.append(self._read(left))
            except TimeoutError:
                return None

    def close(self):
        self.sock.close()


class Godwit:
    """A godwit process with a QMP socket and a serial log in a temp dir."""

    def __init__(self, name, args, binary=None, keep_stderr=False):
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
