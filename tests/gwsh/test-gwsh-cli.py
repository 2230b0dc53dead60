#!/usr/bin/python3
"""gwsh's command line against the real virsh: the same options for every
migration command, the same errors for the same mistakes, and the flag ->
capability/parameter table of each side (pure, no guest)."""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwshtest import GwshEnv, main  # noqa: E402
from gwshlib import commands, migparams  # noqa: E402
from gwshlib.migparams import DST, MIB, SRC, PlanError, plan  # noqa: E402

VIRSH = shutil.which("virsh")
VIRSH_CMDS = ["migrate", "domjobinfo", "domjobabort",
              "migrate-setmaxdowntime", "migrate-getmaxdowntime",
              "migrate-setspeed", "migrate-getspeed", "migrate-compcache",
              "migrate-postcopy", "domdirtyrate-calc"]
OPT_RE = re.compile(r"^    (?:\[--([\w-]+)\] <(\w+)>|--([\w-]+) <(\w+)>|"
                    r"--([\w-]+))(?:\s|$)")


def virsh_options(cmd):
    """{name: kind} from `virsh help CMD`'s OPTIONS section."""
    out = subprocess.run([VIRSH, "help", cmd], capture_output=True,
                         text=True, check=True).stdout
    opts = {}
    section = out.split("OPTIONS", 1)[1]
    for line in section.splitlines():
        m = OPT_RE.match(line)
        if not m:
            continue
        if m.group(1):
            opts[m.group(1)] = m.group(2)
        elif m.group(3):
            opts[m.group(3)] = m.group(4)
        else:
            opts[m.group(5)] = "bool"
    return opts


class VirshOptions(unittest.TestCase):
    @unittest.skipUnless(VIRSH, "virsh not installed (libvirt-clients)")
    def test_options_match_virsh(self):
        for name in VIRSH_CMDS:
            with self.subTest(cmd=name):
                want = virsh_options(name)
                cmd = commands.find(name)
                have = {o.name: o.kind for o in cmd.opts}
                missing = set(want) - set(have)
                self.assertEqual(missing, set(), "%s lacks options" % name)
                for o, kind in want.items():
                    self.assertEqual(have[o], kind, "%s --%s" % (name, o))
                extra = set(have) - set(want)
                self.assertEqual(extra, set(cmd.extra),
                                 "%s: options virsh has not, without a "
                                 "reason in the table" % name)
        refused = sorted(migparams.REFUSED)
        print("\nmigrate options refused, with the reason given:")
        for o in refused:
            print("  --%s: %s" % (o, migparams.REFUSED[o]))

    def test_help_lists_every_option(self):
        g = GwshEnv()
        try:
            out = g.gwsh("help", "migrate").stdout
        finally:
            g.cleanup()
        for o in commands.find("migrate").opts:
            self.assertIn("--" + o.name, out)


# arguments that virsh refuses before talking to any hypervisor; gwsh
# must refuse them with the same words
CLIENT_ERRORS = [
    ["--foo"],
    ["--timeout-postcopy", "--timeout", "5"],
    ["--postcopy-after-precopy"],
    ["--postcopy-resume"],
    ["--live", "--offline"],
    ["--timeout", "5"],
    ["--live", "--timeout", "5", "--timeout-suspend", "--timeout-postcopy",
     "--postcopy"],
    ["--live", "--timeout-suspend"],
    ["--tls-destination", "x"],
    ["--persistent-xml", "x"],
    ["--live", "--timeout", "-1"],
]


def first_error(text):
    return next((line for line in text.splitlines()
                 if line.startswith("error:")), text)


class ErrorsLikeVirsh(unittest.TestCase):
    @unittest.skipUnless(VIRSH, "virsh not installed (libvirt-clients)")
    def test_client_errors_match_virsh(self):
        g = GwshEnv()
        try:
            for args in CLIENT_ERRORS:
                with self.subTest(args=args):
                    v = subprocess.run(
                        [VIRSH, "-c", "test:///default", "migrate"] + args +
                        ["test", "godwit:///session"], capture_output=True,
                        text=True)
                    w = g.gwsh("migrate", *args, "vm1", "godwit:///session",
                               check=False)
                    self.assertNotEqual(w.returncode, 0)
                    # virsh may warn first (e.g. "Authorization not
                    # available" without polkit): compare the errors
                    self.assertEqual(first_error(w.stderr),
                                     first_error(v.stderr))
        finally:
            g.cleanup()

    def test_usage_errors(self):
        g = GwshEnv()
        try:
            cases = [(["migrate", "vm1"],
                      "error: command 'migrate' requires <desturi> option"),
                     (["migrate-setmaxdowntime", "vm1"],
                      "error: command 'migrate-setmaxdowntime' requires "
                      "--downtime option"),
                     (["migrate-setmaxdowntime", "vm1", "abc"],
                      "error: Numeric value 'abc' for <downtime> option is "
                      "malformed or out of range"),
                     (["nosuch"], "error: unknown command: 'nosuch'"),
                     (["domjobinfo", "nosuch"],
                      "error: failed to get domain 'nosuch'")]
            for args, msg in cases:
                with self.subTest(args=args):
                    p = g.gwsh(*args, check=False)
                    self.assertEqual(p.returncode, 1)
                    self.assertEqual(p.stderr.splitlines()[0], msg)
        finally:
            g.cleanup()


def P(**kw):
    """virsh flags as parsed: True for bools."""
    return {k.replace("_", "-"): v for k, v in kw.items()}


# (flags, source caps, source params, destination caps, dest params)
PLAN_TABLE = [
    (P(live=True), {}, {}, {}, {}),
    (P(live=True, auto_converge=True, auto_converge_initial=30,
       auto_converge_increment=15),
     {"auto-converge": True},
     {"cpu-throttle-initial": 30, "cpu-throttle-increment": 15}, {}, {}),
    (P(live=True, compressed=True), {"xbzrle": True}, {},
     {"xbzrle": True}, {}),
    (P(live=True, comp_methods="mt,xbzrle", comp_mt_level=3,
       comp_mt_threads=2, comp_mt_dthreads=1, comp_xbzrle_cache=1 << 23),
     {"compress": True, "xbzrle": True},
     {"compress-level": 3, "compress-threads": 2, "xbzrle-cache-size":
      1 << 23},
     {"compress": True, "xbzrle": True},
     {"decompress-threads": 1, "xbzrle-cache-size": 1 << 23}),
    (P(live=True, parallel=True, parallel_connections=4,
       comp_methods="zstd", comp_zstd_level=5),
     {"multifd": True}, {"multifd-channels": 4, "multifd-compression":
                         "zstd", "multifd-zstd-level": 5},
     {"multifd": True}, {"multifd-channels": 4, "multifd-compression":
                         "zstd", "multifd-zstd-level": 5}),
    (P(live=True, parallel=True, comp_methods="zlib", comp_zlib_level=9),
     {"multifd": True}, {"multifd-compression": "zlib",
                         "multifd-zlib-level": 9},
     {"multifd": True}, {"multifd-compression": "zlib",
                         "multifd-zlib-level": 9}),
    (P(live=True, postcopy=True, postcopy_bandwidth=100, bandwidth=50),
     {"postcopy-ram": True},
     {"max-postcopy-bandwidth": 100 * MIB, "max-bandwidth": 50 * MIB},
     {"postcopy-ram": True}, {}),
    (P(live=True, parallel=True, zerocopy=True),
     {"multifd": True, "zero-copy-send": True}, {}, {"multifd": True}, {}),
]

PLAN_ERRORS = [
    (P(live=True, auto_converge_initial=30),
     "invalid argument: Turn auto convergence on to tune it"),
    (P(live=True, parallel_connections=4),
     "invalid argument: Turn parallel migration on to tune it"),
    (P(live=True, parallel=True, compressed=True),
     "invalid argument: No compression algorithm selected for parallel "
     "migration"),
    (P(live=True, comp_methods="foo"),
     "invalid argument: Unsupported compression method 'foo'"),
    (P(live=True, comp_methods="mt,mt"),
     "invalid argument: Compression method 'mt' is specified twice"),
    (P(live=True, comp_methods="zlib"),
     "invalid argument: Compression method 'zlib' is only supported with "
     "parallel migration"),
    (P(live=True, parallel=True, comp_methods="mt"),
     "invalid argument: Compression method 'mt' isn't supported with "
     "parallel migration"),
    (P(live=True, parallel=True, comp_methods="zlib,zstd"),
     "invalid argument: Only one compression method could be specified "
     "with parallel compression"),
    (P(live=True, comp_mt_level=3),
     "invalid argument: Turn multithread compression on to tune it"),
    (P(live=True, comp_xbzrle_cache=1 << 20),
     "invalid argument: Turn xbzrle compression on to tune it"),
    (P(live=True, parallel=True, comp_zstd_level=3),
     "invalid argument: Turn zstd compression on to tune it"),
    (P(postcopy=True),
     "argument unsupported: post-copy migration is not supported with "
     "non-live or paused migration"),
    (P(live=True, zerocopy=True),
     "invalid argument: zero-copy is only available for parallel "
     "migration"),
    (P(live=True, p2p=True), "unsupported configuration: --p2p: "),
    (P(live=True, copy_storage_all=True),
     "unsupported configuration: --copy-storage-all: godwit guests have no "
     "disks"),
]


class PlanTable(unittest.TestCase):
    def test_plan_table(self):
        for flags, sc, sp, dc, dp in PLAN_TABLE:
            with self.subTest(flags=flags):
                p = plan(flags)
                base = {"events": True, "return-path": True}
                self.assertEqual(p.caps[SRC], dict(base, **sc))
                self.assertEqual(p.caps[DST], dict(base, **dc))
                self.assertEqual(p.params[SRC], sp)
                self.assertEqual(p.params[DST], dp)

    def test_plan_errors(self):
        for flags, msg in PLAN_ERRORS:
            with self.subTest(flags=flags):
                with self.assertRaises(PlanError) as cm:
                    plan(flags)
                self.assertTrue(str(cm.exception).startswith(msg),
                                str(cm.exception))

    def test_timeout_actions(self):
        p = plan(P(live=True, timeout=5))
        self.assertEqual((p.timeout, p.timeout_action), (5, "suspend"))
        p = plan(P(live=True, timeout=5, postcopy=True,
                   timeout_postcopy=True))
        self.assertEqual((p.timeout, p.timeout_action), (5, "postcopy"))
        p = plan(P(live=True, postcopy=True, postcopy_after_precopy=True))
        self.assertTrue(p.postcopy_after_precopy)


if __name__ == "__main__":
    main()
