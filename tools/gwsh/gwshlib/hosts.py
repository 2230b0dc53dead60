"""Where domains live: the run directory, and the hosts gwsh drives.

A domain is a godwit process whose QMP socket is RUNDIR/NAME.qmp, RUNDIR
being $XDG_RUNTIME_DIR/godwit, else /run/godwit for root, else
/tmp/godwit-UID. Nothing else records it: the process behind a socket is
found with SO_PEERCRED and its configuration is its own command line
(/proc/PID/cmdline), so a godwit started by hand with
`-name vm1 -qmp unix:RUNDIR/vm1.qmp,server=on,wait=off` is a domain too.

An incoming domain (a destination waiting for a migration) is
NAME.incoming.qmp until the migration completes; then its files are
renamed to NAME.* (a bound unix socket keeps working under a new name).

LocalHost does all of this here; SshHost runs `gwsh x-host OP` on another
host through the real ssh client and bridges QMP over the ssh pipe, as
libvirt's qemu+ssh:// does with its netcat helper.
"""
import json
import os
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse

from .qmp import QMP, QMPError


class GwshError(Exception):
    """An error printed as virsh prints libvirt's: `error: MSG`."""


# godwit options without a value; every other option takes one
FLAG_OPTS = {"S", "nodefaults", "mem-prealloc", "enable-kvm", "version",
             "h", "help"}
# options the destination gets from gwsh, not from the source's argv
DROP_OPTS = {"name", "qmp", "monitor", "incoming", "pidfile", "serial", "S",
             "daemonize"}


def run_dir():
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "godwit")
    if os.geteuid() == 0:
        return "/run/godwit"
    return "/tmp/godwit-%d" % os.getuid()


def godwit_binary():
    """$GODWIT, else godwit next to this gwsh, else godwit on $PATH."""
    if os.environ.get("GODWIT"):
        return os.environ["GODWIT"]
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    cand = os.path.join(here, "godwit")
    if os.access(cand, os.X_OK):
        return cand
    return "godwit"


def split_argv(argv):
    """godwit argv (without argv[0]) -> list of (option, value or None)."""
    out = []
    i = 0
    while i < len(argv):
        w = argv[i]
        i += 1
        if not w.startswith("-"):
            raise GwshError("unexpected argument '%s' in the domain's "
                            "command line" % w)
        name = w.lstrip("-")
        if name in FLAG_OPTS or i >= len(argv):
            out.append((name, None))
        else:
            out.append((name, argv[i]))
            i += 1
    return out


def guest_argv(argv):
    """The source's configuration for a destination: argv without what
    names this process (name, monitors, serial file, pidfile, -S)."""
    out = []
    for name, val in split_argv(argv):
        if name in DROP_OPTS:
            continue
        out.append("-" + name)
        if val is not None:
            out.append(val)
    return out


def serial_path(argv):
    for name, val in split_argv(argv):
        if name == "serial" and val.startswith("file:"):
            return val[5:]
    return None


STATE_NAMES = {"running": "running", "paused": "paused",
               "inmigrate": "paused", "postmigrate": "paused",
               "finish-migrate": "paused", "prelaunch": "paused",
               "suspended": "pmsuspended", "shutdown": "shut off",
               "internal-error": "crashed", "guest-panicked": "crashed"}


class LocalHost:
    """This host. Every method is also reachable as `gwsh x-host OP`."""

    uri = "godwit:///session"
    hostname = "127.0.0.1"

    def __init__(self):
        self.dir = run_dir()

    def path(self, name, ext, incoming=False):
        return os.path.join(self.dir, "%s%s.%s" % (
            name, ".incoming" if incoming else "", ext))

    def sock(self, name, incoming=False):
        """The domain's QMP socket. A destination still migrating in
        answers to its name too (as libvirt's incoming domain does on its
        host) when no domain of that name runs there."""
        path = self.path(name, "qmp", incoming)
        if not incoming and not os.path.exists(path):
            path = self.path(name, "qmp", True)
        return path

    def qmp(self, name, incoming=False, timeout=5.0):
        path = self.sock(name, incoming)
        if not os.path.exists(path):
            raise GwshError("failed to get domain '%s'" % name)
        try:
            return QMP(path, timeout=timeout)
        except (OSError, QMPError, TimeoutError):
            raise GwshError("failed to get domain '%s'" % name)

    def peer_pid(self, name, incoming=False):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock(name, incoming))
            cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                struct.calcsize("3i"))
            return struct.unpack("3i", cred)[0]
        except OSError:
            raise GwshError("failed to get domain '%s'" % name)
        finally:
            s.close()

    def info(self, name, incoming=False):
        """{'pid', 'argv' (without argv[0])} of a domain."""
        pid = self.peer_pid(name, incoming)
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")[:-1]
        except OSError as e:
            raise GwshError("failed to get domain '%s': %s" % (name, e))
        return {"pid": pid, "argv": [a.decode() for a in argv[1:]]}

    def list(self):
        """[(pid, name, state)] of the domains that answer."""
        out = []
        try:
            files = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return out
        for f in files:
            if not f.endswith(".qmp"):
                continue
            name = f[:-4]
            incoming = name.endswith(".incoming")
            if incoming:
                name = name[:-len(".incoming")]
            try:
                q = self.qmp(name, incoming, timeout=1.0)
                st = q.cmd("query-status")["status"]
                q.close()
                pid = self.peer_pid(name, incoming)
            except GwshError:
                continue
            state = STATE_NAMES.get(st, st)
            if incoming:
                state += " (migrating in)"
            out.append((pid, name, state))
        return out

    def start(self, name, argv, incoming=False):
        """Starts godwit as domain `name`, detached from this process, and
        waits until its QMP socket answers; returns its pid."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        sock = self.path(name, "qmp", incoming)
        if os.path.exists(sock):
            try:
                QMP(sock, timeout=0.5).close()
                raise GwshError("operation failed: domain '%s' already "
                                "exists" % name)
            except (OSError, QMPError, TimeoutError):
                os.unlink(sock)  # left by a process that is gone
        full = [godwit_binary(), "-name", name,
                "-qmp", "unix:%s,server=on,wait=off" % sock]
        if not any(o == "serial" for o, _ in split_argv(argv)):
            full += ["-serial", "file:" + self.path(name, "log", incoming)]
        full += argv
        errpath = self.path(name, "err", incoming)
        with open(errpath, "wb") as err:
            proc = subprocess.Popen(full, stdin=subprocess.DEVNULL,
                                    stdout=err, stderr=err,
                                    start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                with open(errpath, errors="replace") as f:
                    msg = f.read().strip()
                raise GwshError("internal error: process exited while "
                                "connecting to monitor: %s" % msg)
            try:
                QMP(sock, timeout=0.2).close()
                return proc.pid
            except (OSError, QMPError, TimeoutError):
                time.sleep(0.02)
        proc.kill()
        raise GwshError("internal error: domain '%s': monitor did not "
                        "answer" % name)

    def commit_incoming(self, name, dname=None):
        """A destination that completed becomes domain `dname or name`."""
        for ext in ("qmp", "log", "err"):
            src = self.path(name, ext, incoming=True)
            if os.path.exists(src):
                os.replace(src, self.path(dname or name, ext))

    def destroy(self, name, incoming=False, graceful=False):
        """Stops a domain: `quit` over QMP when graceful, else SIGKILL.
        Removes its socket if it is left (a killed godwit cannot): the one
        resolved before stopping it, never another domain's."""
        sock = self.sock(name, incoming)
        pid = self.peer_pid(name, incoming)
        if graceful:
            try:
                self.qmp(name, incoming).cmd("quit")
            except (GwshError, QMPError, OSError):
                pass
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.path.exists(
                "/proc/%d" % pid):
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.01)
        try:
            os.unlink(sock)
        except FileNotFoundError:
            pass


def x_host(op, args):
    """`gwsh x-host OP JSON`: one LocalHost call for a remote gwsh; prints
    {'return': ...} or {'error': ...} as JSON on stdout."""
    h = LocalHost()
    try:
        if op == "info":
            r = h.info(args["name"], args.get("incoming", False))
        elif op == "list":
            r = h.list()
        elif op == "start":
            r = h.start(args["name"], args["argv"], args["incoming"])
        elif op == "commit":
            r = h.commit_incoming(args["name"], args.get("dname"))
        elif op == "destroy":
            r = h.destroy(args["name"], args.get("incoming", False),
                          args.get("graceful", False))
        else:
            raise GwshError("unknown host operation '%s'" % op)
        print(json.dumps({"return": r}))
    except GwshError as e:
        print(json.dumps({"error": str(e)}))


def x_qmp_bridge(name, incoming):
    """`gwsh x-qmp-bridge NAME`: copies stdin to the domain's QMP socket
    and the socket to stdout until either side closes."""
    import selectors
    h = LocalHost()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(h.path(name, "qmp", incoming))
    except OSError as e:
        sys.stderr.write("error: failed to get domain '%s': %s\n" % (name, e))
        return 1
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "in")
    sel.register(s, selectors.EVENT_READ, "sock")
    while True:
        for key, _ in sel.select():
            if key.data == "in":
                data = os.read(0, 65536)
                if not data:
                    return 0
                s.sendall(data)
            else:
                data = s.recv(65536)
                if not data:
                    return 0
                os.write(1, data)


class SshHost:
    """A host reached with `ssh` as godwit+ssh://[user@]host[:port]/session.

    URI parameters, as libvirt's: keyfile=, known_hosts=, no_verify=1,
    command= (the ssh binary); and gwsh= (the remote gwsh, default `gwsh`
    on the remote $PATH)."""

    def __init__(self, uri):
        u = urllib.parse.urlsplit(uri)
        if not u.hostname:
            raise GwshError("invalid argument: no host in URI '%s'" % uri)
        q = dict(urllib.parse.parse_qsl(u.query))
        self.uri = uri
        self.hostname = u.hostname
        self.ssh = [q.get("command", "ssh"), "-o", "BatchMode=yes",
                    "-e", "none"]
        if u.port:
            self.ssh += ["-p", str(u.port)]
        if q.get("keyfile"):
            self.ssh += ["-i", q["keyfile"]]
        if q.get("known_hosts"):
            self.ssh += ["-o", "UserKnownHostsFile=" + q["known_hosts"]]
        if q.get("no_verify") == "1":
            self.ssh += ["-o", "StrictHostKeyChecking=no"]
        self.ssh.append(("%s@" % u.username if u.username else "")
                        + u.hostname)
        self.gwsh = q.get("gwsh", "gwsh")

    def _remote(self, *words):
        return self.ssh + ["--", " ".join(shlex.quote(w) for w in
                                          (self.gwsh,) + words)]

    def _call(self, op, **args):
        p = subprocess.run(self._remote("x-host", op, json.dumps(args)),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=120)
        try:
            r = json.loads(p.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise GwshError("failed to connect to the hypervisor at '%s': "
                            "%s" % (self.uri, p.stderr.decode().strip()
                                    or "ssh exited with %d" % p.returncode))
        if "error" in r:
            raise GwshError(r["error"])
        return r["return"]

    def qmp(self, name, incoming=False, timeout=30.0):
        mine, theirs = socket.socketpair()
        words = ["x-qmp-bridge", name] + (["--incoming"] if incoming else [])
        proc = subprocess.Popen(self._remote(*words), stdin=theirs,
                                stdout=theirs, stderr=subprocess.PIPE)
        theirs.close()
        try:
            q = QMP(sock=mine, timeout=timeout)
        except (OSError, QMPError, TimeoutError):
            proc.kill()
            err = proc.stderr.read().decode().strip()
            raise GwshError("failed to get domain '%s'%s" % (
                name, ": " + err if err else ""))
        q.bridge = proc
        return q

    def info(self, name, incoming=False):
        return self._call("info", name=name, incoming=incoming)

    def list(self):
        return [tuple(x) for x in self._call("list")]

    def start(self, name, argv, incoming=False):
        return self._call("start", name=name, argv=argv, incoming=incoming)

    def commit_incoming(self, name, dname=None):
        return self._call("commit", name=name, dname=dname)

    def destroy(self, name, incoming=False, graceful=False):
        return self._call("destroy", name=name, incoming=incoming,
                          graceful=graceful)


def host_for(uri):
    """The host of a godwit connection URI."""
    if uri in (None, "", "godwit:///session", "godwit:///system"):
        return LocalHost()
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme == "godwit+ssh":
        return SshHost(uri)
    raise GwshError("no connection driver available for %s" % uri)
