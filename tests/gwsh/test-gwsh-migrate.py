#!/usr/bin/python3
"""Migrations driven through gwsh: each flag's capability or parameter
really set on the monitor of the side libvirt sends it to, RAM hashes
equal and the verify guest ok after every completed migration, the
post-copy switch after the first pass, --timeout with its actions, Ctrl-C
and domjobabort leaving the source running as it was, and the job
commands (domjobinfo, migrate-set*/get*, migrate-compcache,
migrate-postcopy, --postcopy-resume, domdirtyrate-calc, domstats)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwshtest import (GODWIT, GwshTestCase, accel_opts, main,  # noqa: E402
                      payload)
from gwshlib.qmp import QMPError  # noqa: E402

DEST = "godwit:///session"
KEEP = {"GWSH_X_KEEP_SOURCE": "1"}
GEN_TLS_CREDS = os.environ.get("GEN_TLS_CREDS") or os.path.join(
    os.path.dirname(GODWIT), "tests", "bench", "gen-tls-creds")
MIB = 1 << 20
# the verify payload: each page a function of (pfn, generation), checked
# by the guest itself after a migration
VERIFY = ("verify", "128M", "vm=1 vm-bytes=16M")
# one that does not converge at a few MiB/s under either accelerator: one
# store per page (verify writes whole pages by default, ~11 MB/s under tcg)
BUSY = ("verify", "128M", "vm=1 vm-bytes=32M vm-stride=4096")


class Migrate(GwshTestCase):
    def start(self, guest=VERIFY, name="vm1"):
        kernel, mem, append = guest
        self.g.start(name, kernel, mem, append)
        # its workers run from READY on (under tcg seconds after boot)
        self.assertTrue(self.g.wait_log(name, "READY", 120))

    def caps(self, name):
        q = self.g.qmp(name)
        try:
            return {c["capability"]: c["state"]
                    for c in q.cmd("query-migrate-capabilities")}
        finally:
            q.close()

    def params(self, name):
        q = self.g.qmp(name)
        try:
            return q.cmd("query-migrate-parameters")
        finally:
            q.close()

    def mig_status(self, name="vm1"):
        q = self.g.qmp(name)
        try:
            return q.cmd("query-migrate").get("status", "none")
        finally:
            q.close()

    def wait_mig(self, want, name="vm1", timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = self.mig_status(name)
            if st in want:
                return st
            time.sleep(0.05)
        self.fail("migration of %s never reached %s (%s)" % (
            name, want, self.mig_status(name)))

    def verify_request(self, name="vm1"):
        """The guest checks all its pages again on request."""
        n = self.g.log(name).count("verify ok")
        q = self.g.qmp(name)
        q.cmd("x-guest-request")
        q.close()
        self.assertTrue(self.g.wait_log(name, "verify ok", 60, n + 1))
        self.assertNotIn("FAILED", self.g.log(name))

    def assert_source_intact(self, saved_caps, saved_params, name="vm1"):
        """After a failed or cancelled migration: the source runs, its
        capabilities and parameters are as before, nothing incoming is
        left, and the guest's pages check out."""
        self.assertEqual(self.status(name), "running")
        self.assertEqual(self.caps(name), saved_caps)
        self.assertEqual(self.params(name), saved_params)
        self.assertFalse(os.path.exists(self.g.sock(name + ".incoming")))
        self.verify_request(name)

    # ---- the command of the "Done when" ----------------------------

    def test_live_autoconverge_verbose(self):
        self.start()
        pid = self.g.pid("vm1")
        p = self.g.gwsh("migrate", "--live", "--verbose", "--auto-converge",
                        "--suspend", "vm1", DEST, env=KEEP)
        self.assertIn("Migration: [100 %]", p.stderr)
        src, dst = self.caps("vm1.migrated"), self.caps("vm1")
        self.assertTrue(src["auto-converge"] and not dst["auto-converge"])
        for c in ("events", "return-path"):
            self.assertTrue(src[c] and dst[c], c)
        self.check_migrated()
        self.assertNotEqual(self.g.pid("vm1"), pid)
        out = self.g.gwsh("list").stdout
        self.assertRegex(out, r"\n %-4s +vm1 +running" % self.g.pid("vm1"))
        info = self.g.gwsh("domjobinfo", "vm1", "--completed").stdout
        self.assertIn("Job type:         Completed", info)
        self.assertIn("Operation:        Outgoing migration", info)
        self.assertRegex(info, r"Memory total:     128\.000 MiB")
        self.assertRegex(info, r"Total downtime:   \d+ +ms")

    def test_domain_started_by_hand(self):
        """A godwit started by hand with its QMP socket in the run
        directory is a domain: listed, and migrated with the command line
        it was started with (its own serial file and monitors stay its
        own)."""
        os.makedirs(self.g.rundir, exist_ok=True)
        own_log = os.path.join(self.g.tmp, "by-hand.log")
        proc = subprocess.Popen(
            [GODWIT, "-name", "vmh", "-m", "128M"] + accel_opts() +
            ["-kernel", payload("verify"), "-append", "vm=1 vm-bytes=16M",
             "-qmp", "unix:%s,server=on,wait=off" % self.g.sock("vmh"),
             "-serial", "file:" + own_log],
            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(proc.wait)
        end = time.monotonic() + 30
        while not os.path.exists(self.g.sock("vmh")):
            self.assertLess(time.monotonic(), end)
            time.sleep(0.02)
        self.assertRegex(self.g.gwsh("list").stdout,
                         r"\n %-4s +vmh +running" % proc.pid)
        self.g.gwsh("migrate", "--live", "--suspend", "vmh", DEST, env=KEEP)
        self.check_migrated("vmh")
        # the destination logs in the run directory, not in the source's file
        self.assertIn("verify ok", self.g.log("vmh"))

    def test_source_quits_destination_takes_the_name(self):
        """Without the test hook: the source quits, the destination is
        the domain (listed, reachable, destroyable), nothing is left."""
        self.start()
        src = self.g.pid("vm1")
        self.g.gwsh("migrate", "--live", "vm1", DEST)
        dst = self.g.pid("vm1")
        self.assertNotIn(dst, (None, src))
        self.assertFalse(os.path.exists("/proc/%d/cmdline" % src) and
                         "godwit" in open("/proc/%d/cmdline" % src).read())
        self.assertRegex(self.g.gwsh("list").stdout,
                         r"\n %-4s +vm1 +running" % dst)
        self.assertTrue(self.g.wait_log("vm1", "verify ok", 60))
        self.g.gwsh("destroy", "vm1")
        self.assertEqual(sorted(f for f in os.listdir(self.g.rundir)
                                if f.endswith(".qmp")), [])
        self.assertNotIn(" vm1 ", self.g.gwsh("list").stdout)

    # ---- each flag on the monitor it belongs to ----------------------------

    FLAG_TABLE = [
        (["--auto-converge", "--auto-converge-initial", "30",
          "--auto-converge-increment", "15", "--bandwidth", "500"],
         {"auto-converge": True},
         {"cpu-throttle-initial": 30, "cpu-throttle-increment": 15,
          "max-bandwidth": 500 * MIB},
         {"auto-converge": False}, {"cpu-throttle-initial": 20}),
        (["--compressed"], {"xbzrle": True}, {}, {"xbzrle": True}, {}),
        (["--comp-methods", "mt", "--comp-mt-level", "3",
          "--comp-mt-threads", "2", "--comp-mt-dthreads", "1"],
         {"compress": True}, {"compress-level": 3, "compress-threads": 2},
         {"compress": True}, {"decompress-threads": 1, "compress-level": 1}),
        (["--comp-methods", "xbzrle", "--comp-xbzrle-cache", "8388608"],
         {"xbzrle": True}, {"xbzrle-cache-size": 8388608},
         {"xbzrle": True}, {"xbzrle-cache-size": 8388608}),
        (["--parallel", "--parallel-connections", "3", "--comp-methods",
          "zstd", "--comp-zstd-level", "5"],
         {"multifd": True}, {"multifd-channels": 3, "multifd-compression":
                             "zstd", "multifd-zstd-level": 5},
         {"multifd": True}, {"multifd-channels": 3, "multifd-compression":
                             "zstd", "multifd-zstd-level": 5}),
        (["--parallel", "--comp-methods", "zlib", "--comp-zlib-level", "4"],
         {"multifd": True}, {"multifd-compression": "zlib",
                             "multifd-zlib-level": 4},
         {"multifd": True}, {"multifd-compression": "zlib",
                             "multifd-zlib-level": 4}),
        (["--postcopy", "--postcopy-bandwidth", "100"],
         {"postcopy-ram": True}, {"max-postcopy-bandwidth": 100 * MIB},
         {"postcopy-ram": True}, {"max-postcopy-bandwidth": 0}),
        # zero-copy-send is the source's alone (QEMU's and libvirt's way)
        (["--parallel", "--zerocopy"],
         {"multifd": True, "zero-copy-send": True}, {},
         {"multifd": True, "zero-copy-send": False}, {}),
    ]

    def test_flags_reach_both_monitors(self):
        for flags, sc, sp, dc, dp in self.FLAG_TABLE:
            with self.subTest(flags=flags):
                self.g.kill_domains()
                # a working set small enough to converge at the speed of
                # the slowest row (multifd zlib: ~10 MiB/s here)
                self.start(("verify", "64M", "vm=1 vm-bytes=2M"))
                self.g.gwsh("migrate", "--live", "--suspend", *flags,
                            "vm1", DEST, env=KEEP)
                for name, caps, params in (("vm1.migrated", sc, sp),
                                           ("vm1", dc, dp)):
                    have_c, have_p = self.caps(name), self.params(name)
                    for k, v in caps.items():
                        self.assertEqual(have_c[k], v, "%s %s" % (name, k))
                    for k, v in params.items():
                        self.assertEqual(have_p[k], v, "%s %s" % (name, k))
                self.check_migrated()

    # ---- post-copy and timeouts --------------------------------------------

    def record(self):
        fd, path = tempfile.mkstemp(suffix=".json", dir=self.g.tmp)
        os.close(fd)
        return path

    def test_postcopy_after_precopy(self):
        self.start(BUSY)
        rec = self.record()
        self.g.gwsh("migrate", "--live", "--postcopy",
                    "--postcopy-after-precopy", "--bandwidth", "8",
                    "--suspend", "--record", rec, "vm1", DEST, env=KEEP)
        with open(rec) as f:
            r = json.load(f)
        marks = [m for m in r["marks"] if m["what"].startswith("postcopy")]
        self.assertEqual(marks[0]["what"],
                         "postcopy switch (after the first pass)")
        before = [s for s in r["samples"] if s["t"] <= marks[0]["t"]]
        self.assertGreaterEqual(before[-1]["passes"], 2)
        self.assertLess(before[-2]["passes"], 2)
        # post-copy ran: pages went after the switch (a 100 ms sample can
        # miss a short postcopy-active on a loaded host)
        self.assertEqual(r["result"]["status"], "completed")
        self.assertGreater(r["result"]["ram"]["postcopy-bytes"], 0)
        self.check_migrated()

    def test_timeout_suspend(self):
        for extra in ([], ["--timeout-suspend"]):
            with self.subTest(extra=extra):
                self.g.kill_domains()
                self.start(BUSY)
                rec = self.record()
                self.g.gwsh("migrate", "--live", "--bandwidth", "8",
                            "--timeout", "2", *extra, "--suspend",
                            "--record", rec, "vm1", DEST, env=KEEP)
                with open(rec) as f:
                    r = json.load(f)
                m = [x for x in r["marks"] if x["what"].startswith("susp")]
                self.assertEqual(len(m), 1)
                self.assertGreaterEqual(m[0]["t"], 2.0)
                self.assertEqual(r["result"]["status"], "completed")
                self.check_migrated()

    def test_timeout_postcopy(self):
        self.start(BUSY)
        rec = self.record()
        self.g.gwsh("migrate", "--live", "--postcopy", "--bandwidth", "8",
                    "--timeout", "2", "--timeout-postcopy", "--suspend",
                    "--record", rec, "vm1", DEST, env=KEEP)
        with open(rec) as f:
            r = json.load(f)
        m = [x for x in r["marks"] if x["what"] == "postcopy switch "
             "(timeout)"]
        self.assertEqual(len(m), 1)
        self.assertGreaterEqual(m[0]["t"], 2.0)
        self.check_migrated()

    # ---- cancelling --------------------------------------------------------

    def test_ctrl_c_cancels(self):
        """Ctrl-C (and SIGTERM, as from `kill` or `timeout`) cancels."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(signal=sig):
                self.g.kill_domains()
                self.start(BUSY)
                caps, params = self.caps("vm1"), self.params("vm1")
                p = self.g.popen("migrate", "--live", "--auto-converge",
                                 "--bandwidth", "4", "--verbose", "vm1",
                                 DEST)
                self.wait_mig(("active",))
                time.sleep(0.5)
                p.send_signal(sig)
                out, err = p.communicate(timeout=60)
                self.assertEqual(p.returncode, 1, err)
                self.assertIn("error: operation aborted: job 'migration "
                              "out' canceled by client", err)
                self.assert_source_intact(caps, params)

    def test_domjobabort_and_job_commands(self):
        self.start(BUSY)
        caps, params = self.caps("vm1"), self.params("vm1")
        p = self.g.popen("migrate", "--live", "--compressed",
                         "--auto-converge", "--bandwidth", "4", "vm1", DEST)
        self.wait_mig(("active",))
        info = self.g.gwsh("domjobinfo", "vm1").stdout
        for line in ("Job type:         Unbounded",
                     "Operation:        Outgoing migration",
                     "Memory total:     128.000 MiB",
                     "Compression cache: 64.000 MiB"):
            self.assertIn(line, info)
        g = self.g.gwsh
        g("migrate-setmaxdowntime", "vm1", "777")
        self.assertEqual(g("migrate-getmaxdowntime", "vm1").stdout.strip(),
                         "777")
        g("migrate-setspeed", "vm1", "6")
        self.assertEqual(g("migrate-getspeed", "vm1").stdout.strip(), "6")
        g("migrate-setspeed", "vm1", "9", "--postcopy")
        self.assertEqual(g("migrate-getspeed", "vm1", "--postcopy")
                         .stdout.strip(), "9")
        self.assertEqual(self.params("vm1")["max-postcopy-bandwidth"],
                         9 * MIB)
        self.assertEqual(g("migrate-compcache", "vm1", "--size", "16777216")
                         .stdout.strip(), "Compression cache: 16.000 MiB")
        r = g("migrate-postcopy", "vm1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("switching to post-copy requires migration to be "
                      "started with VIR_MIGRATE_POSTCOPY flag", r.stderr)
        g("domjobabort", "vm1")
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("canceled by client", err)
        # the commands above changed the source on purpose; the rest is
        # as it was
        for k, v in (("downtime-limit", 777), ("max-bandwidth", 6 * MIB),
                     ("max-postcopy-bandwidth", 9 * MIB),
                     ("xbzrle-cache-size", 16 * MIB)):
            params[k] = v
        self.assert_source_intact(caps, params)
        r = g("domjobabort", "vm1", check=False)
        self.assertEqual(r.stderr.splitlines()[0], "error: Requested "
                         "operation is not valid: no job is active on the "
                         "domain")

    def test_postcopy_pause_and_resume(self):
        self.start(BUSY)
        p = self.g.popen("migrate", "--live", "--postcopy", "--bandwidth",
                         "4", "--postcopy-bandwidth", "2", "--suspend", "vm1",
                         DEST, env=KEEP)
        self.wait_mig(("active",))
        self.g.gwsh("migrate-postcopy", "vm1")
        self.wait_mig(("postcopy-active",))
        r = self.g.gwsh("domjobabort", "vm1", check=False)
        self.assertIn("cannot abort migration in post-copy mode", r.stderr)
        self.g.gwsh("domjobabort", "--postcopy", "vm1")
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("--postcopy-resume", err)
        self.assertEqual(self.mig_status("vm1"), "postcopy-paused")
        self.assertEqual(self.mig_status("vm1.incoming"), "postcopy-paused")
        self.g.gwsh("migrate", "--live", "--postcopy", "--postcopy-resume",
                    "--postcopy-bandwidth", "1000", "--suspend", "vm1", DEST,
                    env=KEEP)
        self.check_migrated()

    # ---- --tls ---------------------------------------------------------------

    def tls_dir(self):
        """libvirt's layout (one folder: CA, server and client pairs) from
        the test credentials: a server certificate for localhost and
        127.0.0.1, a client certificate, both signed by one CA."""
        made = os.path.join(self.g.tmp, "tls-made")
        subprocess.run([GEN_TLS_CREDS, made], check=True)
        d = os.path.join(self.g.tmp, "pki")
        os.mkdir(d)
        for side, files in (("server", ("ca-cert.pem", "server-cert.pem",
                                        "server-key.pem")),
                            ("client", ("client-cert.pem",
                                        "client-key.pem"))):
            for f in files:
                shutil.copy(os.path.join(made, side, f), d)
        return d

    def test_tls(self):
        """--tls: both sides get libvirt's tls-creds-x509 object from
        GWSH_MIGRATE_TLS_X509_CERT_DIR. A --tls-destination the server's
        certificate does not name fails the handshake (so TLS was on) and
        leaves the source as it was, object gone; then the migration
        completes with equal hashes, and the destination keeps neither the
        object nor tls-creds (its next migration is not TLS unless
        asked)."""
        env = dict(KEEP, GWSH_MIGRATE_TLS_X509_CERT_DIR=self.tls_dir())
        self.start()
        caps, params = self.caps("vm1"), self.params("vm1")
        r = self.g.gwsh("migrate", "--live", "--tls", "--tls-destination",
                        "elsewhere.example", "vm1", DEST, check=False,
                        env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("elsewhere.example", r.stderr)
        self.assert_source_intact(caps, params)
        r = self.g.gwsh("migrate", "--live", "--tls", "vm1", DEST,
                        check=False, env=dict(
                            env, GWSH_MIGRATE_TLS_X509_VERIFY="yes"))
        self.assertIn("GWSH_MIGRATE_TLS_X509_VERIFY must be 0 or 1",
                      r.stderr)
        self.assert_source_intact(caps, params)
        self.g.gwsh("migrate", "--live", "--tls", "--suspend", "vm1", DEST,
                    env=env)
        p = self.params("vm1")
        self.assertEqual((p["tls-creds"], p["tls-hostname"]), ("", ""))
        q = self.g.qmp("vm1")
        try:
            with self.assertRaisesRegex(QMPError, "objlibvirt_migrate_tls0"):
                q.cmd("object-del", id="objlibvirt_migrate_tls0")
        finally:
            q.close()
        self.check_migrated()

    def test_tls_missing_folder(self):
        """A certificate folder that is not there: a clear error naming
        it, the source as it was."""
        self.start()
        caps, params = self.caps("vm1"), self.params("vm1")
        missing = os.path.join(self.g.tmp, "no-such-pki")
        r = self.g.gwsh("migrate", "--live", "--tls", "vm1", DEST,
                        check=False,
                        env={"GWSH_MIGRATE_TLS_X509_CERT_DIR": missing})
        self.assertEqual(r.returncode, 1)
        self.assertIn(missing, r.stderr)
        self.assert_source_intact(caps, params)

    def test_migrateuri_and_dname(self):
        """MIGRATEURI (positional, as virsh) is where the destination
        listens and the source connects: a port already taken fails the
        migration, with the source as it was; a free one works, and
        --dname names the destination."""
        self.start()
        caps, params = self.caps("vm1"), self.params("vm1")
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        uri = "tcp://127.0.0.1:%d" % port
        r = self.g.gwsh("migrate", "--live", "vm1", DEST, uri, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("127.0.0.1:%d" % port, r.stderr)
        self.assert_source_intact(caps, params)
        taken.close()
        self.g.gwsh("migrate", "--live", "--suspend", "--dname", "vm2",
                    "vm1", DEST, uri, env=KEEP)
        self.assertEqual(self.status("vm1.migrated"), "postmigrate")
        self.assertEqual(self.ram_hash("vm1.migrated"), self.ram_hash("vm2"))
        self.assertFalse(os.path.exists(self.g.sock("vm1")))
        self.g.gwsh("resume", "vm2")
        self.assertTrue(self.g.wait_log("vm2", "verify ok", 60))

    def test_paused_guest_stays_paused(self):
        """A guest paused before the migration is paused on the
        destination too, without --suspend (as libvirt)."""
        self.start()
        self.g.gwsh("suspend", "vm1")
        self.g.gwsh("migrate", "--live", "vm1", DEST, env=KEEP)
        self.check_migrated()

    def test_not_live_and_dirty_rate(self):
        self.start()
        self.g.gwsh("domdirtyrate-calc", "vm1", "--seconds", "1")
        time.sleep(1.5)
        out = self.g.gwsh("domstats", "--dirtyrate", "vm1").stdout
        self.assertIn("dirtyrate.calc_status=2", out)
        self.assertRegex(out, r"dirtyrate.megabytes_per_second=\d+")
        r = self.g.gwsh("domdirtyrate-calc", "vm1", "--seconds", "61",
                        check=False)
        self.assertIn("must be between 1 and 60", r.stderr)
        # without --live the source is paused first, as libvirt does
        self.g.gwsh("migrate", "--suspend", "vm1", DEST, env=KEEP)
        self.check_migrated()


if __name__ == "__main__":
    main()
