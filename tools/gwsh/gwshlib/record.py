"""`gwsh migrate --record FILE.json`: a migration sampled for plots.

Every tick of the driver (100 ms) stores the source's query-migrate
figures and the destination's run state; the guests' own speed comes from
the `guestperf` payload's lines on each side's serial log (bytes written
per pass, read as they appear). scripts/plot-migration draws the file.

Format (version 1):
  {"version": 1, "domain", "desturi", "argv", "vmm",
   "samples": [{"t", "status", "total", "remaining", "transferred",
                "mbps", "dirty_pages_rate", "page_size", "throttle",
                "passes", "postcopy_requests", "dst_status"}],
   "marks": [{"t", "what"}],          # status changes, post-copy switch
   "guest": {"source": [{"t", "bytes", "ms_per_gib"}],
             "destination": [...]},
   "result": query-migrate at the end (source), "dst_result": (dest),
   "error": null or the error text}
t is seconds since `migrate` was sent.
"""
import json
import re
import time

PERF_RE = re.compile(r"worker=\d+ cpu=\d+ pass=\d+ cycles=\d+ bytes=(\d+) "
                     r"ms_per_gib=([0-9.]+)")


class SerialTail:
    """New guestperf lines of a serial log, read incrementally."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.partial = b""

    def skip_existing(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(0, 2)
                self.off = f.tell()
        except (OSError, TypeError):
            pass

    def read(self):
        if not self.path:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return []
        self.off += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        out = []
        for line in lines:
            m = PERF_RE.search(line.decode(errors="replace"))
            if m:
                out.append((int(m.group(1)), float(m.group(2))))
        return out


class Recorder:
    def __init__(self, path, domain, desturi, argv, src_serial, dst_serial,
                 vmm="godwit"):
        self.path = path
        self.data = {"version": 1, "domain": domain, "desturi": desturi,
                     "argv": argv, "vmm": vmm, "samples": [], "marks": [],
                     "guest": {"source": [], "destination": []},
                     "result": None, "dst_result": None, "error": None}
        self.tails = {"source": SerialTail(src_serial),
                      "destination": SerialTail(dst_serial)}
        self.tails["source"].skip_existing()
        self.t0 = time.monotonic()
        self.last_status = None

    def start(self, t0):
        self.t0 = t0

    def now(self):
        return round(time.monotonic() - self.t0, 3)

    def mark(self, what):
        self.data["marks"].append({"t": self.now(), "what": what})

    def _guest(self):
        t = self.now()
        for side, tail in self.tails.items():
            for nbytes, ms in tail.read():
                self.data["guest"][side].append(
                    {"t": t, "bytes": nbytes, "ms_per_gib": ms})

    def sample(self, info, srcq, dstq):
        ram = info.get("ram") or {}
        st = info.get("status")
        try:
            dst = dstq.cmd("query-status")["status"] if dstq else None
        except Exception:
            dst = None
        if st != self.last_status:
            self.mark("status " + str(st))
            self.last_status = st
        self.data["samples"].append({
            "t": self.now(), "status": st, "total": ram.get("total", 0),
            "remaining": ram.get("remaining", 0),
            "transferred": ram.get("transferred", 0),
            "mbps": ram.get("mbps", 0),
            "dirty_pages_rate": ram.get("dirty-pages-rate", 0),
            "page_size": ram.get("page-size", 4096),
            "throttle": info.get("cpu-throttle-percentage", 0),
            "passes": ram.get("dirty-sync-count", 0),
            "postcopy_requests": ram.get("postcopy-requests", 0),
            "dst_status": dst})
        self._guest()

    def finish(self, info, error, dst_info=None, tail_seconds=2.0):
        """Ends the record; when the migration completed, the guest's
        speed on the destination is followed for tail_seconds more."""
        if info is not None:
            self.mark("status " + str(info.get("status")))
            end = time.monotonic() + tail_seconds
            while time.monotonic() < end:
                time.sleep(0.1)
                self._guest()
        self.data["result"] = info
        self.data["dst_result"] = dst_info
        self.data["error"] = error
        with open(self.path, "w") as f:
            json.dump(self.data, f, indent=1)
