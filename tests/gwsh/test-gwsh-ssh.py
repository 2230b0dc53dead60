#!/usr/bin/python3
"""godwit+ssh://: a migration to another "host" reached through the real
ssh client, against an sshd this test starts on loopback with throwaway
keys (its sessions get their own run directory, as another host would).
Skips (77) where sshd cannot start."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwshtest import GWSH, GwshTestCase, main  # noqa: E402

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
KEYGEN = shutil.which("ssh-keygen")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sshd:
    def __init__(self, d):
        self.dir = d
        self.remote_run = os.path.join(d, "remote-run")
        os.makedirs(self.remote_run)
        for k in ("host", "user"):
            subprocess.run([KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f",
                            os.path.join(d, k)], check=True)
        shutil.copy(os.path.join(d, "user.pub"),
                    os.path.join(d, "authorized_keys"))
        self.port = free_port()
        with open(os.path.join(d, "host.pub")) as f:
            hostkey = f.read().split()[:2]
        with open(os.path.join(d, "known_hosts"), "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (self.port, " ".join(hostkey)))
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s/host\n"
                    "AuthorizedKeysFile %s/authorized_keys\n"
                    "PasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nUsePAM no\n"
                    "StrictModes no\nPidFile %s/sshd.pid\n"
                    "PermitRootLogin prohibit-password\n"
                    "SetEnv XDG_RUNTIME_DIR=%s\n" % (
                        self.port, d, d, d, self.remote_run))
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.log = open(os.path.join(d, "sshd.log"), "w")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", conf],
                                     stdout=self.log, stderr=self.log)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        with open(os.path.join(d, "sshd.log")) as f:
            raise unittest.SkipTest("sshd did not start: " + f.read())

    def uri(self):
        user = os.environ.get("USER") or "root"
        return ("godwit+ssh://%s@127.0.0.1:%d/session?keyfile=%s/user&"
                "known_hosts=%s/known_hosts&gwsh=%s" % (
                    user, self.port, self.dir, self.dir, GWSH))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@unittest.skipUnless(os.access(SSHD, os.X_OK) and KEYGEN,
                     "OpenSSH server not installed (openssh-server)")
class Ssh(GwshTestCase):
    def setUp(self):
        super().setUp()
        self.sshd = Sshd(os.path.join(self.g.tmp, "ssh"))
        self.uri = self.sshd.uri()

    def tearDown(self):
        self.g.gwsh("-c", self.uri, "destroy", "vm1", check=False)
        self.sshd.stop()
        super().tearDown()

    def remote_log(self):
        try:
            with open(os.path.join(self.sshd.remote_run, "godwit",
                                   "vm1.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def test_migrate_over_ssh(self):
        self.g.start("vm1", "verify", "128M", "vm=1 vm-bytes=16M")
        self.assertTrue(self.g.wait_log("vm1", "verify", 60))
        p = self.g.gwsh("migrate", "--live", "--verbose", "--suspend",
                        "--auto-converge", "vm1", self.uri,
                        env={"GWSH_X_KEEP_SOURCE": "1"})
        self.assertIn("Migration: [100 %]", p.stderr)
        out = self.g.gwsh("-c", self.uri, "list").stdout
        self.assertRegex(out, r"vm1 +paused")
        h_dst = self.g.gwsh("-c", self.uri, "qemu-monitor-command", "vm1",
                            '{"execute": "x-query-ram-hash"}').stdout
        h_src = self.g.gwsh("qemu-monitor-command", "vm1.migrated",
                            '{"execute": "x-query-ram-hash"}').stdout
        h_src = json.loads(h_src)["return"][0]["sha256"]
        h_dst = json.loads(h_dst)["return"][0]["sha256"]
        self.assertEqual(h_src, h_dst)
        self.assertEqual(self.status("vm1.migrated"), "postmigrate")
        # the remote side really ran under sshd's session environment
        self.assertTrue(os.path.exists(os.path.join(
            self.sshd.remote_run, "godwit", "vm1.qmp")))
        self.g.gwsh("-c", self.uri, "resume", "vm1")
        end = time.monotonic() + 60
        while "verify ok" not in self.remote_log() and \
                time.monotonic() < end:
            time.sleep(0.05)
        self.assertIn("verify ok", self.remote_log())
        self.assertNotIn("FAILED", self.remote_log())

    def test_unreachable_host_leaves_source(self):
        self.g.start("vm1", "verify", "128M", "vm=1 vm-bytes=16M")
        bad = self.uri.replace(":%d/" % self.sshd.port, ":%d/" % free_port())
        r = self.g.gwsh("migrate", "--live", "vm1", bad, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("failed to connect to the hypervisor", r.stderr)
        self.assertEqual(self.status("vm1"), "running")


if __name__ == "__main__":
    main()
