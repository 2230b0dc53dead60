"""Every gwsh command: its virsh option table and what it does.

Option tables follow `virsh help CMD` of libvirt 9.0 (Debian 12) option
for option, in the same order; options virsh has and godwit cannot give a
meaning to are in the table and refused when given (migparams.REFUSED),
so a script that passes them learns why instead of being ignored.
"""
import json
import os
import sys

from . import jobinfo
from .cmdtable import B, DOMAIN, N, S, Command, UsageError
from .hosts import GwshError, LocalHost, STATE_NAMES
from .migparams import MIB, UNLIMITED_MIBS
from .migrate import ACTIVE, migrate_domain


def _q(ctx, name):
    return ctx.host.qmp(name)


def _status(q):
    return q.cmd("query-migrate").get("status", "none")


# ---- domains ----------------------------------------------------------------

def cmd_start(ctx, o, rest):
    argv = rest
    if not argv:
        raise GwshError("gwsh start NAME -- <godwit options>: no godwit "
                        "options (at least -kernel)")
    pid = ctx.host.start(o["domain"], argv)
    print("Domain '%s' started (pid %d)\n" % (o["domain"], pid))


def cmd_list(ctx, o, rest):
    rows = ctx.host.list()
    if "inactive" in o:
        rows = []
    w = max([4] + [len(n) for _, n, _ in rows])
    head = " %-4s %-*s   %s" % ("Id", w, "Name", "State")
    print(head)
    print("-" * (len(head) + 6))
    for pid, name, state in rows:
        print(" %-4s %-*s   %s" % (pid, w, name, state))
    print()


def cmd_domstate(ctx, o, rest):
    q = _q(ctx, o["domain"])
    st = q.cmd("query-status")["status"]
    print(STATE_NAMES.get(st, st) + ("" if "reason" not in o else
                                     " (%s)" % st))
    print()


def cmd_destroy(ctx, o, rest):
    ctx.host.destroy(o["domain"], graceful="graceful" in o)
    print("Domain '%s' destroyed\n" % o["domain"])


def cmd_shutdown(ctx, o, rest):
    ctx.host.destroy(o["domain"], graceful=True)
    print("Domain '%s' is being shutdown\n" % o["domain"])


def cmd_suspend(ctx, o, rest):
    _q(ctx, o["domain"]).cmd("stop")
    print("Domain '%s' suspended\n" % o["domain"])


def cmd_resume(ctx, o, rest):
    _q(ctx, o["domain"]).cmd("cont")
    print("Domain '%s' resumed\n" % o["domain"])


def cmd_monitor(ctx, o, rest):
    q = _q(ctx, o["domain"])
    line = " ".join([o["cmd"]] + rest)
    if "hmp" in o:
        sys.stdout.write(q.hmp(line))
        return
    try:
        msg = json.loads(line)
        r = q.execute(msg["execute"], **msg.get("arguments", {}))
    except (ValueError, KeyError, TypeError):
        raise GwshError("internal error: cannot parse json %s" % line)
    print(json.dumps(r, indent=2 if "pretty" in o else None))


# ---- migration --------------------------------------------------------------

def cmd_migrate(ctx, o, rest):
    migrate_domain(ctx.host, o["domain"], o, verbose="verbose" in o,
                   record=o.get("record"), argv=ctx.argv)


def cmd_domjobinfo(ctx, o, rest):
    name = o["domain"]
    if "completed" in o:
        path = ctx.host.path(name, "job") if isinstance(
            ctx.host, LocalHost) else None
        try:
            with open(path) as f:
                job = json.load(f)
        except (OSError, TypeError):
            print("%-17s %-12s\n" % ("Job type:", "None"))
            return
        if "keep-completed" not in o:
            os.unlink(path)
        info = job["info"]
        op = job["operation"]
    else:
        q = _q(ctx, name)
        info = q.cmd("query-migrate")
        incoming = q.cmd("query-status")["status"] == "inmigrate" or (
            info.get("status", "none") != "none" and "ram" not in info)
        op = "Incoming migration" if incoming else "Outgoing migration"
    if "rawstats" in o:
        print(json.dumps(info, indent=2))
        return
    print("\n".join(jobinfo.domjobinfo(info, op, "completed" in o,
                                        "anystats" in o)) + "\n")


def cmd_domjobabort(ctx, o, rest):
    q = _q(ctx, o["domain"])
    st = _status(q)
    if st not in ACTIVE:
        raise GwshError("Requested operation is not valid: no job is "
                        "active on the domain")
    if "postcopy" in o:
        if st != "postcopy-active":
            raise GwshError("Requested operation is not valid: current job "
                            "is not outgoing migration in post-copy mode")
        q.cmd("migrate-pause")
        return
    if st.startswith("postcopy"):
        raise GwshError("Requested operation is not valid: cannot abort "
                        "migration in post-copy mode")
    q.cmd("migrate_cancel")


def cmd_setmaxdowntime(ctx, o, rest):
    _q(ctx, o["domain"]).cmd("migrate-set-parameters",
                             downtime_limit=o["downtime"])


def cmd_getmaxdowntime(ctx, o, rest):
    p = _q(ctx, o["domain"]).cmd("query-migrate-parameters")
    print(p["downtime-limit"])
    print()


def _speed_param(o):
    return "max-postcopy-bandwidth" if "postcopy" in o else "max-bandwidth"


def cmd_setspeed(ctx, o, rest):
    name = o["domain"]
    if o["bandwidth"] > UNLIMITED_MIBS:
        raise GwshError("numerical overflow: bandwidth must be less than "
                        "%d" % (UNLIMITED_MIBS + 1))
    _q(ctx, name).cmd("migrate-set-parameters",
                      **{_speed_param(o): o["bandwidth"] * MIB})
    if isinstance(ctx.host, LocalHost) and "postcopy" not in o:
        # kept for the next migrate, as libvirt keeps it
        with open(ctx.host.path(name, "speed"), "w") as f:
            f.write("%d\n" % o["bandwidth"])


def cmd_getspeed(ctx, o, rest):
    v = _q(ctx, o["domain"]).cmd("query-migrate-parameters")[_speed_param(o)]
    print(v // MIB if v else UNLIMITED_MIBS)
    print()


def cmd_compcache(ctx, o, rest):
    q = _q(ctx, o["domain"])
    if "size" in o:
        q.cmd("migrate-set-parameters", xbzrle_cache_size=o["size"])
    v, u = jobinfo.pretty(q.cmd("query-migrate-parameters")[
        "xbzrle-cache-size"])
    print("Compression cache: %.3f %s\n" % (v, u))


def cmd_postcopy(ctx, o, rest):
    q = _q(ctx, o["domain"])
    if _status(q) not in ACTIVE:
        raise GwshError("Requested operation is not valid: no job is "
                        "active on the domain")
    caps = {c["capability"]: c["state"]
            for c in q.cmd("query-migrate-capabilities")}
    if not caps.get("postcopy-ram"):
        raise GwshError("Requested operation is not valid: switching to "
                        "post-copy requires migration to be started with "
                        "VIR_MIGRATE_POSTCOPY flag")
    q.cmd("migrate-start-postcopy")


def cmd_dirtyrate_calc(ctx, o, rest):
    secs = o.get("seconds", 1)
    if not 1 <= secs <= 60:
        raise GwshError("invalid argument: seconds '%d' must be between 1 "
                        "and 60" % secs)
    args = {"calc_time": secs}
    if o.get("mode"):
        if o["mode"] not in ("page-sampling", "dirty-bitmap", "dirty-ring"):
            raise GwshError("invalid argument: Invalid dirty rate mode '%s'"
                            % o["mode"])
        args["mode"] = o["mode"]
    _q(ctx, o["domain"]).cmd("calc-dirty-rate", **args)
    print("Start to calculate domain's memory dirty rate successfully.\n")


DIRTY_STATUS = {"unstarted": 0, "measuring": 1, "measured": 2}


def cmd_domstats(ctx, o, rest):
    names = rest or [n for _, n, _ in ctx.host.list()]
    for name in names:
        q = _q(ctx, name)
        print("Domain: '%s'" % name)
        if "state" in o or "dirtyrate" not in o:
            st = q.cmd("query-status")["status"]
            print("  state.state=%d" % {"running": 1, "paused": 3}.get(
                STATE_NAMES.get(st), 0))
        if "dirtyrate" in o:
            r = q.cmd("query-dirty-rate")
            print("  dirtyrate.calc_status=%d" % DIRTY_STATUS.get(
                r.get("status"), 0))
            print("  dirtyrate.calc_start_time=%d" % r.get("start-time", 0))
            print("  dirtyrate.calc_period=%d" % r.get("calc-time", 0))
            if r.get("mode"):
                print("  dirtyrate.calc_mode=%s" % r["mode"])
            if r.get("status") == "measured":
                print("  dirtyrate.megabytes_per_second=%d" % r.get(
                    "dirty-rate", 0))
                for v in r.get("vcpu-dirty-rate", []):
                    print("  dirtyrate.vcpu.%d.megabytes_per_second=%d" % (
                        v["id"], v["dirty-rate"]))
        print()


# ---- the tables -------------------------------------------------------------

MIGRATE_OPTS = [
    DOMAIN,
    S("desturi", "connection URI of the destination host as seen from the "
      "client(normal migration) or source(p2p migration)", required=True),
    B("live", "live migration"),
    B("offline", "offline migration"),
    B("p2p", "peer-2-peer migration"),
    B("direct", "direct migration"),
    B("tunnelled", "tunnelled migration"),
    B("persistent", "persist VM on destination"),
    B("undefinesource", "undefine VM on source"),
    B("suspend", "do not restart the domain on the destination host"),
    B("copy-storage-all", "migration with non-shared storage with full "
      "disk copy"),
    B("copy-storage-inc", "migration with non-shared storage with "
      "incremental copy (same base image shared between source and "
      "destination)"),
    B("copy-storage-synchronous-writes", "force guest disk writes to be "
      "synchronously written to the destination to improve storage "
      "migration convergence"),
    B("change-protection", "prevent any configuration changes to domain "
      "until migration ends"),
    B("unsafe", "force migration even if it may be unsafe"),
    B("verbose", "display the progress of migration"),
    B("compressed", "compress repeated pages during live migration"),
    B("auto-converge", "force convergence during live migration"),
    B("rdma-pin-all", "pin all memory before starting RDMA live migration"),
    B("abort-on-error", "abort on soft errors during migration"),
    B("postcopy", "enable post-copy migration; switch to it using "
      "migrate-postcopy command"),
    B("postcopy-after-precopy", "automatically switch to post-copy "
      "migration after one pass of pre-copy"),
    B("postcopy-resume", "resume failed post-copy migration"),
    B("zerocopy", "use zero-copy mechanism for migrating memory pages"),
    S("migrateuri", "migration URI, usually can be omitted"),
    S("graphicsuri", "graphics URI to be used for seamless graphics "
      "migration"),
    S("listen-address", "listen address that destination should bind to "
      "for incoming migration"),
    S("dname", "rename to new name during migration (if supported)"),
    N("timeout", "run action specified by --timeout-* option (suspend by "
      "default) if live migration exceeds timeout (in seconds)"),
    B("timeout-suspend", "suspend the guest after timeout"),
    B("timeout-postcopy", "switch to post-copy after timeout"),
    S("xml", "filename containing updated XML for the target"),
    S("migrate-disks", "comma separated list of disks to be migrated"),
    N("disks-port", "port to use by target server for incoming disks "
      "migration"),
    S("disks-uri", "URI to use for disks migration (overrides --disks-port)"),
    S("comp-methods", "comma separated list of compression methods to be "
      "used"),
    N("comp-mt-level", "compress level for multithread compression"),
    N("comp-mt-threads", "number of compression threads for multithread "
      "compression"),
    N("comp-mt-dthreads", "number of decompression threads for multithread "
      "compression"),
    N("comp-xbzrle-cache", "page cache size for xbzrle compression"),
    N("comp-zlib-level", "compression level for zlib compression"),
    N("comp-zstd-level", "compression level for zstd compression"),
    N("auto-converge-initial", "initial CPU throttling rate for "
      "auto-convergence"),
    N("auto-converge-increment", "CPU throttling rate increment for "
      "auto-convergence"),
    S("persistent-xml", "filename containing updated persistent XML for "
      "the target"),
    B("tls", "use TLS for migration"),
    N("postcopy-bandwidth", "post-copy migration bandwidth limit in MiB/s"),
    B("parallel", "enable parallel migration"),
    N("parallel-connections", "number of connections for parallel "
      "migration"),
    N("bandwidth", "migration bandwidth limit in MiB/s"),
    S("tls-destination", "override the destination host name used for TLS "
      "verification"),
    S("record", "gwsh: sample the migration every 100 ms into this JSON "
      "file (scripts/plot-migration draws it)"),
]

NEWER = "libvirt 9.4 and later have it (Debian 12's virsh is 9.0)"

COMMANDS = [
    Command("start", "start a godwit domain",
            "gwsh start NAME -- <godwit options>: runs godwit as domain NAME "
            "(QMP socket and serial log in the run directory).",
            [DOMAIN], cmd_start,
            extra={"*": "virsh start boots a defined domain; gwsh domains "
                   "are transient, so start takes godwit's options"}),
    Command("list", "list domains", "Returns list of domains.",
            [B("inactive", "list inactive domains"),
             B("all", "list inactive & active domains")], cmd_list),
    Command("domstate", "domain state", "Returns state about a domain.",
            [DOMAIN, B("reason", "also print reason for the state")],
            cmd_domstate),
    Command("destroy", "destroy (stop) a domain",
            "Forcefully stop a given domain, but leave its resources intact.",
            [DOMAIN, B("graceful", "terminate gracefully")], cmd_destroy),
    Command("shutdown", "gracefully shutdown a domain",
            "Run shutdown in the target domain.", [DOMAIN], cmd_shutdown),
    Command("suspend", "suspend a domain",
            "Suspend a running domain.", [DOMAIN], cmd_suspend),
    Command("resume", "resume a domain",
            "Resume a previously suspended domain.", [DOMAIN], cmd_resume),
    Command("qemu-monitor-command", "QEMU Monitor Command",
            "QEMU Monitor Command",
            [DOMAIN, B("hmp", "command is in human monitor protocol"),
             B("pretty", "pretty-print any qemu monitor protocol output"),
             S("cmd", "command", required=True)], cmd_monitor),
    Command("migrate", "migrate domain to another host",
            "Migrate domain to another host.  Add --live for live "
            "migration.", MIGRATE_OPTS, cmd_migrate,
            extra={"comp-zlib-level": NEWER, "comp-zstd-level": NEWER,
                   "record": "gwsh's own: samples for plots"}),
    Command("domjobinfo", "domain job information",
            "Returns information about jobs running on a domain.",
            [DOMAIN,
             B("completed", "return statistics of a recently completed job"),
             B("keep-completed", "don't destroy statistics of a recently "
               "completed job when reading"),
             B("anystats", "print statistics for any kind of job (even "
               "failed ones)"),
             B("rawstats", "print the raw data returned by libvirt")],
            cmd_domjobinfo),
    Command("domjobabort", "abort active domain job",
            "Aborts the currently running domain job",
            [DOMAIN, B("postcopy", "interrupt post-copy migration")],
            cmd_domjobabort),
    Command("migrate-setmaxdowntime", "set maximum tolerable downtime",
            "Set maximum tolerable downtime of a domain which is being "
            "live-migrated to another host.",
            [DOMAIN, N("downtime", "maximum tolerable downtime (in "
                       "milliseconds) for migration", required=True)],
            cmd_setmaxdowntime),
    Command("migrate-getmaxdowntime", "get maximum tolerable downtime",
            "Get maximum tolerable downtime of a domain which is being "
            "live-migrated to another host.", [DOMAIN], cmd_getmaxdowntime),
    Command("migrate-setspeed", "Set the maximum migration bandwidth",
            "Set the maximum migration bandwidth (in MiB/s) for a domain "
            "which is being migrated to another host.",
            [DOMAIN, N("bandwidth", "migration bandwidth limit in MiB/s",
                       required=True),
             B("postcopy", "set post-copy migration bandwidth")],
            cmd_setspeed),
    Command("migrate-getspeed", "Get the maximum migration bandwidth",
            "Get the maximum migration bandwidth (in MiB/s) for a domain.",
            [DOMAIN, B("postcopy", "get post-copy migration bandwidth")],
            cmd_getspeed),
    Command("migrate-compcache", "get/set compression cache size",
            "Get/set size of the cache (in bytes) used for compressing "
            "repeatedly transferred memory pages during live migration.",
            [DOMAIN, N("size", "requested size of the cache (in bytes) used "
                       "for compression")], cmd_compcache),
    Command("migrate-postcopy",
            "Switch running migration from pre-copy to post-copy",
            "Switch running migration from pre-copy to post-copy. The "
            "migration must have been started with --postcopy option.",
            [DOMAIN], cmd_postcopy),
    Command("domdirtyrate-calc", "Calculate a vm's memory dirty rate",
            "Calculate memory dirty rate of a domain in order to decide "
            "whether it's proper to be migrated out or not.",
            [DOMAIN,
             N("seconds", "calculate memory dirty rate within specified "
               "seconds, the supported value range from 1 to 60, default "
               "to 1."),
             S("mode", "dirty page rate calculation mode, either of these 3 "
               "options 'page-sampling, dirty-bitmap, dirty-ring' can be "
               "specified.")], cmd_dirtyrate_calc),
    Command("domstats", "get statistics about one or multiple domains",
            "Gets statistics about one or more (or all) domains.",
            [B("state", "report domain state"),
             B("dirtyrate", "report domain dirty rate information")],
            cmd_domstats),
]

# commands whose trailing words are passed through (after their options)
PASSTHROUGH = {"start", "qemu-monitor-command", "domstats"}


def find(name):
    for c in COMMANDS:
        if c.name == name:
            return c
    return None


def cmd_help(name=None):
    if name:
        c = find(name)
        if c is None:
            raise UsageError("command '%s' doesn't exist" % name)
        sys.stdout.write(c.help())
        return
    print("gwsh: a virsh-compatible shell for godwit domains\n")
    for c in COMMANDS:
        print("    %-24s %s" % (c.name, c.summary))
    print("\n  gwsh [-c URI] COMMAND [OPTIONS]; gwsh help COMMAND for one.\n"
          "  URIs: godwit:///session (this host), "
          "godwit+ssh://[user@]host[:port]/session\n")
