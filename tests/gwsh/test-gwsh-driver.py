#!/usr/bin/python3
"""gwsh's migration driver against scripted monitors (no guest): the order
of what each side is told, the post-copy switch after the first pass, the
--timeout actions, --abort-on-error, Ctrl-C in pre-copy and post-copy, and
how each end of a migration is reported."""
import io
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwshtest import main  # noqa: E402
from gwshlib.hosts import GwshError  # noqa: E402
from gwshlib.migparams import MIB, plan  # noqa: E402
from gwshlib import jobinfo  # noqa: E402
from gwshlib.hosts import LocalHost, SshHost  # noqa: E402
from gwshlib.migrate import Driver, parse_migrateuri, rollback  # noqa: E402


class FakeQMP:
    """Answers from a table; query-migrate from a list of replies (the
    last one repeats); every command is logged."""

    def __init__(self, migrate=(), status="running"):
        self.log = []
        self.migrate = list(migrate) or [{"status": "none"}]
        self.status = status

    def cmd(self, name, **args):
        self.log.append((name, args))
        if name == "query-migrate":
            r = self.migrate[0]
            if len(self.migrate) > 1:
                self.migrate.pop(0)
            return r
        if name == "query-status":
            return {"status": self.status}
        if name == "stop":
            self.status = "paused"
        if name == "cont":
            self.status = "running"
        return {}

    def names(self):
        return [n for n, _ in self.log if n not in ("query-migrate",
                                                      "query-status")]


class Hit:
    hit = False


def active(passes=1, status="active"):
    return {"status": status, "ram": {"dirty-sync-count": passes,
                                      "total": 100, "remaining": 50}}


def driver(flags, src=None, dst=None, **kw):
    f = dict({"live": True}, **flags)
    d = Driver(plan(f), src or FakeQMP(), dst or FakeQMP(
        migrate=[{"status": "setup", "socket-address": [
            {"type": "inet", "host": "127.0.0.1", "port": "4444"}]}]),
        "tcp:127.0.0.1:0", "tcp:127.0.0.1:0", out=io.StringIO(), period=0,
        **kw)
    d.t0 = time.monotonic()
    return d


class Prepare(unittest.TestCase):
    def test_order_and_sides(self):
        d = driver({"auto-converge": True, "compressed": True,
                    "comp-xbzrle-cache": 1 << 23})
        d.prepare()
        self.assertEqual(d.dstq.names(), ["migrate-set-capabilities",
                                          "migrate-set-parameters",
                                          "migrate-incoming"])
        dcaps = d.dstq.log[0][1]["capabilities"]
        self.assertNotIn({"capability": "auto-converge", "state": True},
                         dcaps)
        self.assertIn({"capability": "xbzrle", "state": True}, dcaps)
        self.assertEqual(d.connect_uri, "tcp:127.0.0.1:4444")
        self.assertEqual(d.srcq.names(), ["migrate-set-capabilities",
                                          "migrate-set-parameters"])
        sp = d.srcq.log[1][1]
        self.assertEqual(sp["xbzrle-cache-size"], 1 << 23)
        self.assertEqual(sp["max-bandwidth"], 8796093022207 * MIB)

    def test_bandwidth_sources(self):
        d = driver({})
        d.prepare(speed=5 * MIB)
        self.assertEqual(d.srcq.log[-1][1]["max-bandwidth"], 5 * MIB)
        d = driver({"bandwidth": 7})
        d.prepare(speed=5 * MIB)
        self.assertEqual(d.srcq.log[-1][1]["max-bandwidth"], 7 * MIB)

    def test_not_live_stops_first(self):
        d = driver({"live": False})
        d.p.live = False
        d.start()
        self.assertEqual(d.srcq.names(), ["stop", "migrate"])
        self.assertTrue(d.stopped_source)
        rollback(d.srcq, ({}, {}), d.stopped_source)
        self.assertEqual(d.srcq.names()[-1], "cont")


    def test_tls(self):
        """--tls: libvirt's object on each side before anything else, the
        destination's before migrate-incoming; the source checks the
        destination's certificate against the URI's host or
        --tls-destination; GWSH_MIGRATE_TLS_X509_VERIFY=0 only stops the
        destination asking for the source's."""
        os.environ["GWSH_MIGRATE_TLS_X509_CERT_DIR"] = "/pki"
        os.environ["GWSH_MIGRATE_TLS_X509_VERIFY"] = "0"
        try:
            d = driver({"tls": True})
            d.prepare()
            e = driver({"tls": True, "tls-destination": "b.example"})
            e.prepare()
        finally:
            del os.environ["GWSH_MIGRATE_TLS_X509_CERT_DIR"]
            del os.environ["GWSH_MIGRATE_TLS_X509_VERIFY"]
        obj = {"qom-type": "tls-creds-x509", "id": "objlibvirt_migrate_tls0",
               "dir": "/pki"}
        self.assertEqual(d.dstq.log[0], ("object-add", dict(
            obj, endpoint="server", **{"verify-peer": False})))
        self.assertEqual(d.dstq.log[1][1]["tls-creds"],
                         "objlibvirt_migrate_tls0")
        self.assertEqual(d.dstq.names()[-1], "migrate-incoming")
        self.assertEqual(d.srcq.names(), [
            "migrate-set-capabilities", "object-add",
            "migrate-set-parameters", "migrate-set-parameters"])
        self.assertEqual(d.srcq.log[1], ("object-add", dict(
            obj, endpoint="client", **{"verify-peer": True})))
        self.assertEqual(d.srcq.log[2][1], {
            "tls-creds": "objlibvirt_migrate_tls0",
            "tls-hostname": "127.0.0.1"})
        self.assertEqual(e.srcq.log[2][1]["tls-hostname"], "b.example")
        rollback(d.srcq, ({}, {}), False, tls=True)
        self.assertEqual(d.srcq.log[-2:], [
            ("migrate-set-parameters", {"tls-creds": "", "tls-hostname": ""}),
            ("object-del", {"id": "objlibvirt_migrate_tls0"})])


class Uris(unittest.TestCase):
    def test_listen_and_connect(self):
        local = LocalHost()
        remote = SshHost("godwit+ssh://me@hostb:2222/session?keyfile=/k")
        self.assertIn("-p", remote.ssh)
        self.assertIn("me@hostb", remote.ssh)
        cases = [
            ((None, local, None), ("tcp:127.0.0.1:0", "tcp:127.0.0.1:0")),
            ((None, local, "127.0.0.2"),
             ("tcp:127.0.0.2:0", "tcp:127.0.0.2:0")),
            ((None, remote, None), ("tcp:0.0.0.0:0", "tcp:hostb:0")),
            (("tcp://hostb:4444", remote, None),
             ("tcp:0.0.0.0:4444", "tcp:hostb:4444")),
            (("tcp:10.0.0.2:4444", remote, "10.0.0.2"),
             ("tcp:10.0.0.2:4444", "tcp:10.0.0.2:4444")),
        ]
        for args, want in cases:
            self.assertEqual(parse_migrateuri(*args), want)
        for bad in ("rdma://h:1", "tcp://h"):
            with self.assertRaises(GwshError):
                parse_migrateuri(bad, local, None)


class Step(unittest.TestCase):
    def test_postcopy_after_first_pass(self):
        d = driver({"postcopy": True, "postcopy-after-precopy": True})
        d.step(active(1), Hit())
        self.assertNotIn("migrate-start-postcopy", d.srcq.names())
        d.step(active(2), Hit())
        d.step(active(3), Hit())
        self.assertEqual(d.srcq.names().count("migrate-start-postcopy"), 1)

    def test_timeout_suspend_once(self):
        d = driver({"timeout": 3})
        d.step(active(), Hit())
        self.assertEqual(d.srcq.names(), [])
        d.t0 -= 3.5
        d.step(active(), Hit())
        d.step(active(), Hit())
        self.assertEqual(d.srcq.names(), ["stop"])
        self.assertTrue(d.stopped_source)

    def test_timeout_postcopy(self):
        d = driver({"timeout": 3, "postcopy": True,
                    "timeout-postcopy": True})
        d.t0 -= 4
        d.step(active(), Hit())
        self.assertEqual(d.srcq.names(), ["migrate-start-postcopy"])

    def test_abort_on_error(self):
        src = FakeQMP(status="internal-error")
        d = driver({"abort-on-error": True}, src=src)
        with self.assertRaises(GwshError) as cm:
            d.step(active(), Hit())
        self.assertIn("failed due to I/O error", str(cm.exception))
        self.assertEqual(src.names(), ["migrate_cancel"])
        src = FakeQMP(status="internal-error")
        driver({}, src=src).step(active(), Hit())
        self.assertEqual(src.names(), [])

    def test_ctrl_c(self):
        d = driver({})
        h = Hit()
        h.hit = True
        d.step(active(), h)
        self.assertEqual(d.srcq.names(), ["migrate_cancel"])
        self.assertFalse(h.hit)
        d = driver({"postcopy": True})
        h.hit = True
        d.step(active(status="postcopy-active"), h)
        self.assertEqual(d.srcq.names(), [])
        self.assertIn("cannot abort migration in post-copy mode",
                      d.out.getvalue())

    def test_give_up(self):
        d = driver({}, give_up=10)
        d.t0 -= 11
        d.step(active(), Hit())
        self.assertEqual(d.srcq.names(), ["migrate_cancel"])


class Ends(unittest.TestCase):
    def run_to_end(self, replies, flags=None):
        d = driver(flags or {}, src=FakeQMP(migrate=replies))
        return d, d.wait()

    def test_completed(self):
        done = {"status": "completed", "ram": {"total": 100,
                                               "remaining": 0}}
        d, info = self.run_to_end([active(1), active(2), done])
        self.assertEqual(info["status"], "completed")

    def test_cancelled_and_failed(self):
        with self.assertRaisesRegex(GwshError, "operation aborted: job "
                                    "'migration out' canceled by client"):
            self.run_to_end([active(), {"status": "cancelled"}])
        with self.assertRaisesRegex(GwshError, "operation failed: job "
                                    "'migration out' failed: boom"):
            self.run_to_end([active(), {"status": "failed",
                                        "error-desc": "boom"}])

    def test_postcopy_paused(self):
        with self.assertRaisesRegex(GwshError, "--postcopy-resume"):
            self.run_to_end([active(), {"status": "postcopy-paused"}],
                            {"postcopy": True})

    def test_anystats(self):
        failed = {"status": "failed", "total-time": 5,
                  "ram": {"total": 100, "remaining": 40}}
        self.assertEqual(jobinfo.domjobinfo(failed),
                         ["Job type:         None"])
        lines = jobinfo.domjobinfo(failed, anystats=True)
        self.assertEqual(lines[0], "Job type:         Failed")
        self.assertIn("Memory remaining: 40.000 B", lines)

    def test_verbose_lines(self):
        done = {"status": "completed", "ram": {"total": 100,
                                               "remaining": 0}}
        d = driver({}, src=FakeQMP(migrate=[active(), active(), done]))
        d.verbose = True
        d.wait()
        self.assertEqual(d.out.getvalue(),
                         "\rMigration: [ 50 %]\rMigration: [100 %]\n")


if __name__ == "__main__":
    main()
