#!/usr/bin/python3
"""scripts/plot-migration on a migration recorded by
`gwsh migrate --record`: the record has samples, marks and the guest's
speed on both sides, and the plot is a PNG. Skips (77) without
python3-matplotlib."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwshtest import ROOT, GwshTestCase, main  # noqa: E402

PLOT = os.path.join(ROOT, "scripts", "plot-migration")


class Plot(GwshTestCase):
    def test_record_and_plot(self):
        self.g.start("vm1", "guestperf", "128M", "vm=1 vm-bytes=16M")
        self.assertTrue(self.g.wait_log("vm1", "pass=3 ", 60))
        rec = os.path.join(self.g.tmp, "rec.json")
        # Long enough for samples on any machine, and sure to converge:
        # the 16 MiB the guest rewrites take two seconds at 8 MiB/s, and a
        # 3 s downtime limit lets them all go in the final pass (8 MiB at
        # 32 MiB/s and 300 ms: a KVM run was over in 0.3 s, 3 samples).
        self.g.gwsh("migrate-setmaxdowntime", "vm1", "3000")
        self.g.gwsh("migrate", "--live", "--auto-converge", "--bandwidth",
                    "8", "--record", rec, "vm1", "godwit:///session")
        with open(rec) as f:
            r = json.load(f)
        self.assertEqual(r["version"], 1)
        self.assertEqual(r["result"]["status"], "completed")
        self.assertGreater(len(r["samples"]), 5)
        self.assertTrue(r["guest"]["source"])
        self.assertTrue(r["guest"]["destination"])
        png = os.path.join(self.g.tmp, "rec.png")
        p = subprocess.run([PLOT, rec, "-o", png], capture_output=True,
                           text=True)
        if p.returncode == 77:
            self.skipTest(p.stderr.strip())
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(png, "rb") as f:
            head = f.read(8)
        self.assertEqual(head, b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(png), 10000)

    def test_refuses_other_files(self):
        bad = os.path.join(self.g.tmp, "bad.json")
        with open(bad, "w") as f:
            json.dump({"hello": 1}, f)
        p = subprocess.run([PLOT, bad, "-o", bad + ".png"],
                           capture_output=True, text=True)
        if p.returncode == 77:
            self.skipTest(p.stderr.strip())
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a migration record", p.stderr)


if __name__ == "__main__":
    main()
