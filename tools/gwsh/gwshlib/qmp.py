"""A QMP client (Python 3 standard library), shared by gwsh and scripts/.

Speaks QMP over a connected stream socket: a unix socket, or one end of a
socketpair whose other end is an ssh process bridging to a remote monitor.
Greeting, qmp_capabilities, commands with ids; events are queued.
"""
import json
import socket
import time


class QMPError(Exception):
    """An error reply ({'error': ...}) or a broken monitor connection."""

    def __init__(self, msg, klass=None):
        super().__init__(msg)
        self.klass = klass


class QMP:
    def __init__(self, path=None, timeout=30.0, sock=None):
        """Connects to the unix socket `path` (retrying until `timeout`),
        or uses the connected socket `sock`."""
        if sock is None:
            sock = self._connect(path, timeout)
        self.sock = sock
        self.buf = b""
        self.events = []
        self.next_id = 1
        self.greeting = self._read(timeout)
        if "QMP" not in self.greeting:
            raise QMPError("not a QMP server: %r" % self.greeting)
        self.cmd("qmp_capabilities")

    @staticmethod
    def _connect(path, timeout):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return s
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

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
            raise QMPError("%s: %s" % (name, r["error"]["desc"]),
                           r["error"].get("class"))
        return r["return"]

    def hmp(self, line):
        return self.cmd("human-monitor-command", command_line=line)

    def poll_events(self):
        """Moves events already sent by the server into self.events
        without waiting; returns self.events."""
        try:
            while True:
                while b"\n" in self.buf:
                    line, self.buf = self.buf.split(b"\n", 1)
                    r = json.loads(line)
                    if "event" in r:
                        self.events.append(r)
                self.sock.settimeout(0)
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise QMPError("QMP connection closed")
                self.buf += chunk
        except (BlockingIOError, socket.timeout):
            pass
        return self.events

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
