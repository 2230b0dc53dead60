"""The migration driver: what libvirt's QEMU driver does for
`virsh migrate`, over two QMP monitors.

drive() takes a Plan (migparams), the source's monitor and a destination
that already runs with `-incoming defer`, and does, in libvirt's order:
capabilities and parameters on the destination, migrate-incoming, the
same on the source, `stop` for a non-live migration, `migrate`, then a
100 ms loop that redraws the progress line, records samples, switches to
post-copy after the first pass or at --timeout, suspends at --timeout,
cancels on Ctrl-C or (--abort-on-error) when the guest stops on an error.

migrate_domain() wraps it for gwsh domains: it starts the destination from
the source's own command line, and when the migration completes quits the
source and gives the destination the domain's name; when it fails, the
destination is killed and the source keeps running with its capabilities
and parameters as they were.
"""
import json
import os
import signal
import sys
import time
import urllib.parse

from . import jobinfo
from .hosts import GwshError, LocalHost, guest_argv, host_for, serial_path
from .migparams import DST, MIB, SRC, UNLIMITED_MIBS, PlanError, plan
from .qmp import QMPError
from .record import Recorder

ACTIVE = ("setup", "active", "pre-switchover", "device", "cancelling",
          "postcopy-active", "postcopy-paused", "postcopy-recover",
          "wait-unplug")
PRECOPY = ("setup", "active", "pre-switchover", "device")
GUEST_ERROR = ("internal-error", "io-error", "guest-panicked")


# libvirt's id for the credentials object of a --tls migration
TLS_ALIAS = "objlibvirt_migrate_tls0"


def tls_settings():
    """(certificate folder, verify client certificates): libvirt's qemu.conf
    migrate_tls_x509_cert_dir and migrate_tls_x509_verify, which gwsh reads
    from GWSH_MIGRATE_TLS_X509_CERT_DIR (default /etc/pki/qemu, libvirt's)
    and GWSH_MIGRATE_TLS_X509_VERIFY (1 or 0, default 1). The folder holds
    ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem and
    client-key.pem, on each host, as libvirt's does."""
    d = os.environ.get("GWSH_MIGRATE_TLS_X509_CERT_DIR", "/etc/pki/qemu")
    v = os.environ.get("GWSH_MIGRATE_TLS_X509_VERIFY", "1")
    if v not in ("0", "1"):
        raise GwshError("invalid argument: GWSH_MIGRATE_TLS_X509_VERIFY "
                        "must be 0 or 1, not %r" % v)
    return d, v == "1"


def _tls_on(q, endpoint, settings, hostname=None):
    """libvirt's --tls on one side: a tls-creds-x509 object from the
    configured folder, named in tls-creds (and tls-hostname on the
    source). As libvirt, the source always checks the destination's
    certificate; migrate_tls_x509_verify is whether the destination asks
    for the source's."""
    cert_dir, verify = settings
    q.cmd("object-add", **{"qom-type": "tls-creds-x509", "id": TLS_ALIAS,
                           "dir": cert_dir, "endpoint": endpoint,
                           "verify-peer": verify or endpoint == "client"})
    params = {"tls-creds": TLS_ALIAS}
    if hostname is not None:
        params["tls-hostname"] = hostname
    _params(q, params)


def tls_off(q):
    """The side's tls-creds and tls-hostname back to empty and the object
    gone (libvirt does the same after a --tls migration), so that the next
    migration is not encrypted unless asked. Errors are ignored: the side
    may be gone."""
    for cmd, args in (("migrate-set-parameters",
                       {"tls-creds": "", "tls-hostname": ""}),
                      ("object-del", {"id": TLS_ALIAS})):
        try:
            q.cmd(cmd, **args)
        except (QMPError, OSError):
            pass


def connect_host(uri):
    """The host of a tcp:HOST:PORT URI (brackets of an IPv6 address off)."""
    host = uri[4:].rpartition(":")[0]
    return host[1:-1] if host.startswith("[") else host


def _caps(q, caps):
    if caps:
        q.cmd("migrate-set-capabilities", capabilities=[
            {"capability": k, "state": v} for k, v in caps.items()])


def _params(q, params):
    if params:
        q.cmd("migrate-set-parameters", **params)


def saved_caps(q, plan_):
    """The source's capabilities and parameters that the plan changes,
    as they are now (restored when the migration fails)."""
    caps = {c["capability"]: c["state"]
            for c in q.cmd("query-migrate-capabilities")}
    params = q.cmd("query-migrate-parameters")
    keep = list(plan_.params[SRC]) + ["max-bandwidth"]
    if plan_.tls:
        keep += ["tls-creds", "tls-hostname"]
    return ({k: caps[k] for k in plan_.caps[SRC] if k in caps},
            {k: params[k] for k in keep if k in params})


class Interrupted:
    """SIGINT, SIGTERM or SIGHUP while a migration runs: a request to
    cancel it (Ctrl-C, `kill` or `timeout` around gwsh, its terminal
    gone)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.hit = False
        self.old = {}

    def __enter__(self):
        def handler(signum, frame):
            self.hit = True
        for sig in self.SIGNALS:
            self.old[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *a):
        for sig, old in self.old.items():
            signal.signal(sig, old)


class Driver:
    def __init__(self, p, srcq, dstq, connect_uri, listen_uri,
                 verbose=False, out=sys.stderr, recorder=None,
                 unlimited=UNLIMITED_MIBS * MIB, period=0.1,
                 give_up=None):
        self.p = p
        self.srcq = srcq
        self.dstq = dstq
        self.connect_uri = connect_uri
        self.listen_uri = listen_uri
        self.verbose = verbose
        self.out = out
        self.tty = verbose and out.isatty()
        self.rec = recorder
        self.unlimited = unlimited
        self.period = period
        self.give_up = give_up  # s of precopy before cancelling, or None
        self.stopped_source = False
        self.switched = False
        self.timeout_done = False
        self.progress = jobinfo.Progress()
        self.last_line = None
        self.tls = None  # (folder, verify) once the objects are added

    def prepare(self, speed=None):
        """Capabilities, parameters and migrate-incoming on the
        destination, then capabilities and parameters on the source.
        speed: max-bandwidth set by migrate-setspeed, used unless
        --bandwidth is given; without either, unlimited, as libvirt."""
        p = self.p
        if p.tls:
            self.tls = tls_settings()
            _tls_on(self.dstq, "server", self.tls)
        _caps(self.dstq, p.caps[DST])
        _params(self.dstq, p.params[DST])
        self.dstq.cmd("migrate-incoming", uri=self.listen_uri)
        if self.connect_uri.endswith(":0"):
            port = self.dstq.cmd("query-migrate")["socket-address"][0]["port"]
            self.connect_uri = self.connect_uri[:-1] + str(port)
        _caps(self.srcq, p.caps[SRC])
        params = dict(p.params[SRC])
        if "max-bandwidth" not in params:
            params["max-bandwidth"] = speed or self.unlimited
        if p.tls:
            _tls_on(self.srcq, "client", self.tls, p.tls_destination or
                    connect_host(self.connect_uri))
        _params(self.srcq, params)

    def start(self):
        self.was_running = (self.srcq.cmd("query-status")["status"]
                            == "running")
        if not self.p.live and self.was_running:
            self.srcq.cmd("stop")
            self.stopped_source = True
        self.t0 = time.monotonic()
        if self.rec:
            self.rec.start(self.t0)
        self.srcq.cmd("migrate", uri=self.connect_uri)

    def _switch_postcopy(self, why):
        if not self.switched:
            self.srcq.cmd("migrate-start-postcopy")
            self.switched = True
            if self.rec:
                self.rec.mark("postcopy switch (%s)" % why)

    def _draw(self, info, final=False):
        if not self.verbose:
            return
        line = (self.progress.line(info) if self.tty
                else jobinfo.plain_line(info))
        if line == self.last_line and not final:
            return
        self.last_line = line
        end = "\n" if final else ""
        if self.tty:
            self.out.write("\r\033[K" + line + end)
        else:
            self.out.write("\r" + line + end)
        self.out.flush()

    def step(self, info, intr):
        """One tick of the loop for a migration still running."""
        p = self.p
        st = info["status"]
        elapsed = time.monotonic() - self.t0
        passes = (info.get("ram") or {}).get("dirty-sync-count", 0)
        if p.postcopy_after_precopy and st == "active" and passes >= 2:
            self._switch_postcopy("after the first pass")
        if p.timeout and not self.timeout_done and st in PRECOPY and \
                elapsed >= p.timeout:
            self.timeout_done = True
            if p.timeout_action == "postcopy":
                self._switch_postcopy("timeout")
            else:
                self.srcq.cmd("stop")
                self.stopped_source = True
                if self.rec:
                    self.rec.mark("suspended (timeout)")
        if p.abort_on_error and st in PRECOPY:
            rs = self.srcq.cmd("query-status")["status"]
            if rs in GUEST_ERROR:
                self.srcq.cmd("migrate_cancel")
                raise GwshError("operation failed: job 'migration out' "
                                "failed due to I/O error (guest %s)" % rs)
        if self.give_up and st in PRECOPY and elapsed >= self.give_up:
            intr.hit = True
        if intr.hit:
            intr.hit = False
            if st in PRECOPY:
                self.srcq.cmd("migrate_cancel")
            else:
                self.out.write("\nerror: Requested operation is not valid: "
                               "cannot abort migration in post-copy mode\n")

    def wait(self):
        """Runs the loop to the end; returns the final query-migrate."""
        with Interrupted() as intr:
            while True:
                info = self.srcq.cmd("query-migrate")
                if self.rec:
                    self.rec.sample(info, self.srcq, self.dstq)
                st = info.get("status")
                if st not in ACTIVE:
                    break
                if st.startswith("postcopy"):
                    # switched, by this driver or by migrate-postcopy
                    self.switched = True
                self._draw(info)
                if st == "postcopy-paused":
                    raise GwshError(
                        "operation failed: job 'migration out' failed in "
                        "post-copy phase: %s; both sides wait: run gwsh "
                        "migrate --postcopy --postcopy-resume to recover"
                        % info.get("error-desc", "connection lost"))
                self.step(info, intr)
                time.sleep(self.period)
        if st == "completed":
            self._draw(info, final=True)
            return info
        if self.verbose:
            self.out.write("\n")
        if st == "cancelled":
            raise GwshError("operation aborted: job 'migration out' "
                            "canceled by client")
        raise GwshError("operation failed: job 'migration out' failed: %s"
                        % info.get("error-desc", st))



def rollback(srcq, saved, stopped_source, tls=False):
    """After a failure: the source's capabilities and parameters as they
    were (the --tls object gone), and running again if the driver stopped
    it."""
    if tls:
        tls_off(srcq)
    try:
        caps, params = saved
        _caps(srcq, caps)
        _params(srcq, params)
        if stopped_source and srcq.cmd("query-status")["status"] == "paused":
            srcq.cmd("cont")
    except (QMPError, OSError):
        pass


def parse_migrateuri(uri, dst_host, listen_address):
    """(listen URI for migrate-incoming, connect URI for migrate)."""
    local = isinstance(dst_host, LocalHost)
    if not uri:
        listen = listen_address or ("127.0.0.1" if local else "0.0.0.0")
        connect = dst_host.hostname
        if local and listen_address not in (None, "0.0.0.0", "::"):
            connect = listen_address
        return ("tcp:%s:0" % listen, "tcp:%s:0" % connect)
    if uri.startswith("tcp://"):
        u = urllib.parse.urlsplit(uri)
        host, port = u.hostname, u.port
    elif uri.startswith("tcp:"):
        host, _, port = uri[4:].rpartition(":")
    else:
        raise GwshError("argument unsupported: unsupported scheme in "
                        "migration URI %s (gwsh speaks tcp://)" % uri)
    if not host or not port:
        raise GwshError("invalid argument: migration URI %s needs a host "
                        "and a port" % uri)
    listen = listen_address or ("127.0.0.1" if local else "0.0.0.0")
    return ("tcp:%s:%s" % (listen, port), "tcp:%s:%s" % (host, port))


def saved_speed(src_host, name):
    """max-bandwidth in bytes/s set by migrate-setspeed, or None. libvirt
    keeps that speed for the domain's migrations; without it they run
    unlimited."""
    if not isinstance(src_host, LocalHost):
        return None
    try:
        with open(src_host.path(name, "speed")) as f:
            return int(f.read()) * MIB
    except (OSError, ValueError):
        return None


def migrate_domain(src_host, name, f, verbose=False, record=None,
                   argv=None):
    """`gwsh migrate`: returns the final query-migrate of the source."""
    try:
        p = plan(f)
    except PlanError as e:
        raise GwshError(str(e))
    desturi = f["desturi"]
    dst_host = host_for(desturi)
    dname = f.get("dname") or name
    srcq = src_host.qmp(name)
    src_info = src_host.info(name)
    status = srcq.cmd("query-status")["status"]
    mig = srcq.cmd("query-migrate").get("status", "none")
    if p.postcopy_resume:
        return _resume(p, f, srcq, src_host, name, dst_host, dname, verbose,
                       mig)
    if status not in ("running", "paused"):
        raise GwshError("Requested operation is not valid: domain is not "
                        "running")
    if mig in ACTIVE:
        raise GwshError("Requested operation is not valid: another "
                        "migration job is already running for domain '%s'"
                        % name)
    listen, connect = parse_migrateuri(f.get("migrateuri"), dst_host,
                                       f.get("listen-address"))
    dargv = guest_argv(src_info["argv"]) + ["-incoming", "defer"]
    if p.suspend or status != "running":
        dargv.append("-S")
    saved = saved_caps(srcq, p)
    dst_host.start(dname, dargv, incoming=True)
    dstq = None
    rec = None
    d = None
    try:
        dstq = dst_host.qmp(dname, incoming=True)
        if record:
            rec = Recorder(record, name, desturi, argv or [],
                           serial_path(src_info["argv"]),
                           dst_host.path(dname, "log", True)
                           if isinstance(dst_host, LocalHost) else None)
        d = Driver(p, srcq, dstq, connect, listen, verbose=verbose,
                   recorder=rec)
        d.prepare(speed=saved_speed(src_host, name))
        d.start()
        info = d.wait()
    except (GwshError, QMPError, OSError, KeyboardInterrupt) as e:
        if rec:
            rec.finish(None, str(e))
        if d is not None and d.switched:
            # past the switch the guest lives on the destination: losing
            # either side loses it, so both are left as they are
            raise
        try:
            # interrupted before the loop took over: stop the migration
            if srcq.cmd("query-migrate").get("status") in PRECOPY:
                srcq.cmd("migrate_cancel")
        except (QMPError, OSError):
            pass
        try:
            dst_host.destroy(dname, incoming=True)
        except GwshError:
            pass
        speed = saved_speed(src_host, name)  # set while it ran?
        if speed:
            saved[1]["max-bandwidth"] = speed
        rollback(srcq, saved, d is not None and d.stopped_source,
                 tls=d is not None and d.tls is not None)
        if isinstance(e, QMPError):
            raise GwshError("operation failed: %s" % e)
        raise
    # a guest paused before the migration stays paused, as in libvirt
    return _finish(not p.suspend and status == "running", info, srcq, dstq,
                   src_host, name, dst_host, dname, rec, p.tls)


def _finish(resume, info, srcq, dstq, src_host, name, dst_host, dname, rec,
            tls):
    """Completed: the destination runs if `resume`, the source quits, the
    destination takes the domain's name, without a --tls migration's
    object and parameters."""
    if tls:
        tls_off(dstq)
    if resume:
        st = dstq.cmd("query-status")["status"]
        deadline = time.monotonic() + 30
        while st == "inmigrate" and time.monotonic() < deadline:
            time.sleep(0.01)
            st = dstq.cmd("query-status")["status"]
        if st == "paused":
            dstq.cmd("cont")
    dinfo = dstq.cmd("query-migrate")
    if rec:
        rec.finish(info, None, dinfo)
    srcq.close()
    dstq.close()
    if os.environ.get("GWSH_X_KEEP_SOURCE") and isinstance(src_host,
                                                           LocalHost):
        # test hook: the source stays, paused after the migration, as
        # NAME.migrated, so that a test can compare its RAM with the
        # destination's
        os.replace(src_host.path(name, "qmp"),
                   src_host.path(name + ".migrated", "qmp"))
    else:
        src_host.destroy(name, graceful=True)
    dst_host.commit_incoming(dname)
    if isinstance(src_host, LocalHost):
        with open(src_host.path(name, "job"), "w") as f:
            json.dump({"operation": "Outgoing migration", "info": info}, f)
    return info


def _resume(p, f, srcq, src_host, name, dst_host, dname, verbose, mig):
    """--postcopy-resume: migrate-recover on the destination, migrate
    resume=true on the source, then the same loop to the end."""
    if mig != "postcopy-paused":
        raise GwshError("Requested operation is not valid: resuming "
                        "failed post-copy migration requires post-copy "
                        "to be paused (the migration is %s)" % mig)
    dstq = dst_host.qmp(dname, incoming=True)
    listen, connect = parse_migrateuri(f.get("migrateuri"), dst_host,
                                       f.get("listen-address"))
    if "max-postcopy-bandwidth" in p.params[SRC]:
        srcq.cmd("migrate-set-parameters", max_postcopy_bandwidth=p.params[
            SRC]["max-postcopy-bandwidth"])
    dstq.cmd("migrate-recover", uri=listen)
    if connect.endswith(":0"):
        port = dstq.cmd("query-migrate")["socket-address"][0]["port"]
        connect = connect[:-1] + str(port)
    d = Driver(p, srcq, dstq, connect, listen, verbose=verbose)
    d.switched = True
    d.t0 = time.monotonic()
    srcq.cmd("migrate", uri=connect, resume=True)
    info = d.wait()
    return _finish(not p.suspend, info, srcq, dstq, src_host, name, dst_host,
                   dname, None, p.tls)
