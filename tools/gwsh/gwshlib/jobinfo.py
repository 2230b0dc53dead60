"""domjobinfo's text and the --verbose progress line, from query-migrate.

The field names, units and column layout are virsh's (cmdDomjobinfo:
"%-17s %-12llu ms", capacities with three decimals in B/KiB/MiB/GiB), so
scripts that scrape virsh keep working. godwit has no disks: the "Data"
lines equal the "Memory" lines, as in virsh for a diskless guest.
"""
UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]


def pretty(n):
    """virsh's vshPrettyCapacity: (value, unit)."""
    v = float(n)
    i = 0
    while v >= 1024 and i < len(UNITS) - 1:
        v /= 1024
        i += 1
    return v, UNITS[i]


def _cap(label, n):
    v, u = pretty(n)
    return "%-17s %-.3f %s" % (label, v, u)


def _num(label, n, unit=""):
    return ("%-17s %-12d %s" % (label, n, unit)).rstrip()


def job_type(info, completed, anystats=False):
    """virsh's job type. A failed or cancelled migration still in the
    monitor counts as a job only with --anystats (as in virsh)."""
    st = info.get("status", "none")
    if anystats and st in ("failed", "cancelled"):
        completed = True
    if completed:
        return {"completed": "Completed", "failed": "Failed",
                "cancelled": "Cancelled"}.get(st, "None")
    if st in ("setup", "active", "postcopy-active", "postcopy-paused",
              "postcopy-recover", "pre-switchover", "device", "cancelling",
              "wait-unplug"):
        return "Unbounded"
    return "None"


def domjobinfo(info, operation="Outgoing migration", completed=False,
               anystats=False):
    """The lines of `virsh domjobinfo` for one query-migrate reply."""
    jt = job_type(info, completed, anystats)
    out = [("%-17s %-12s" % ("Job type:", jt)).rstrip()]
    if jt == "None":
        return out
    out.append("%-17s %-12s" % ("Operation:", operation))
    out.append(_num("Time elapsed:", info.get("total-time", 0), "ms"))
    ram = info.get("ram")
    if ram:
        done = ram.get("transferred", 0)
        for what in ("Data", "Memory"):
            out.append(_cap("%s processed:" % what, done))
            out.append(_cap("%s remaining:" % what, ram.get("remaining", 0)))
            out.append(_cap("%s total:" % what, ram.get("total", 0)))
        bps = ram.get("mbps", 0) * 1e6 / 8
        v, u = pretty(bps)
        out.append("%-17s %-.3f %s/s" % ("Memory bandwidth:", v, u))
        out.append(_num("Dirty rate:", ram.get("dirty-pages-rate", 0),
                        "pages/s"))
        out.append(_num("Page size:", ram.get("page-size", 4096), "bytes"))
        out.append(_num("Iteration:", ram.get("dirty-sync-count", 0)))
        out.append(_num("Postcopy requests:",
                        ram.get("postcopy-requests", 0)))
        out.append(_num("Constant pages:", ram.get("duplicate", 0)))
        out.append(_num("Normal pages:", ram.get("normal", 0)))
        out.append(_cap("Normal data:", ram.get("normal-bytes", 0)))
    if not completed and "expected-downtime" in info:
        out.append(_num("Expected downtime:", info["expected-downtime"],
                        "ms"))
    if completed and "downtime" in info:
        out.append(_num("Total downtime:", info["downtime"], "ms"))
    if "setup-time" in info:
        out.append(_num("Setup time:", info["setup-time"], "ms"))
    xb = info.get("xbzrle-cache")
    if xb:
        out.append(_cap("Compression cache:", xb.get("cache-size", 0)))
        out.append(_cap("Compressed data:", xb.get("bytes", 0)))
        out.append("%-17s %-13d" % ("Compressed pages:", xb.get("pages", 0)))
        out.append("%-17s %-13d" % ("Compression cache misses:",
                                    xb.get("cache-miss", 0)))
        out.append("%-17s %-13d" % ("Compression overflows:",
                                    xb.get("overflow", 0)))
    if "cpu-throttle-percentage" in info:
        out.append("%-17s %-13d %%" % ("Auto converge throttle:",
                                       info["cpu-throttle-percentage"]))
    if "postcopy-blocktime" in info:
        out.append(_num("Postcopy blocktime:", info["postcopy-blocktime"],
                        "ms"))
    if info.get("error-desc"):
        out.append("%-17s %s" % ("Error message:", info["error-desc"]))
    return [line.rstrip() for line in out]


def percent(info):
    """virsh's progress: 100 - remaining * 100 / total, floored."""
    ram = info.get("ram") or {}
    total = ram.get("total", 0)
    if info.get("status") == "completed":
        return 100
    if not total:
        return 0
    return int(100 - ram.get("remaining", 0) * 100.0 / total)


def plain_line(info):
    """The line virsh --verbose prints (redrawn with \\r)."""
    return "Migration: [%3d %%]" % percent(info)


def _rate(bps):
    v, u = pretty(bps)
    return "%.0f %s/s" % (v, u) if u != "B" else "%d B/s" % bps


class Progress:
    """The richer line for a terminal: bar, remaining, rate, dirty rate,
    throttle and ETA, from successive query-migrate replies."""

    def __init__(self, width=24):
        self.width = width
        self.net = None

    def line(self, info):
        ram = info.get("ram") or {}
        pct = percent(info)
        fill = pct * self.width // 100
        bar = "#" * fill + "." * (self.width - fill)
        bps = ram.get("mbps", 0) * 1e6 / 8
        dirty = ram.get("dirty-pages-rate", 0) * ram.get("page-size", 4096)
        rem = ram.get("remaining", 0)
        parts = ["Migration: [%s] %3d %%" % (bar, pct)]
        parts.append("%.0f %s left" % pretty(rem))
        parts.append(_rate(bps))
        parts.append("dirty " + _rate(dirty))
        if info.get("cpu-throttle-percentage"):
            parts.append("throttle %d %%" % info["cpu-throttle-percentage"])
        st = info.get("status", "")
        if st.startswith("postcopy"):
            parts.append(st)
        else:
            parts.append("pass %d" % ram.get("dirty-sync-count", 0))
        # the rate at which remaining RAM shrinks, smoothed over ~2 s of
        # samples (one pass's dirty rate jumps at every sync)
        net = bps - dirty
        self.net = net if self.net is None else 0.9 * self.net + 0.1 * net
        if self.net > 0 and rem:
            eta = rem / self.net
            parts.append("ETA %d:%02d" % (eta // 60, eta % 60))
        else:
            parts.append("ETA --:--")
        return " | ".join(parts)
