"""virsh migrate flags -> what each side's monitor is told (pure).

plan(flags) checks the flags as virsh and libvirt's QEMU driver do, with
their error texts, and returns a Plan: the capabilities and parameters for
the source and for the destination (each to the side libvirt sends it to,
qemu_migration_params.c's party table), plus what the driver must do
itself (live or not, post-copy switch, timeout action).

Flags that name something godwit does not have are refused here with the
reason, never accepted and ignored.
"""

MIB = 1 << 20
# libvirt's "unlimited" migration speed (INT64_MAX / 1 MiB), in MiB/s
UNLIMITED_MIBS = 8796093022207

SRC, DST, BOTH = 1, 2, 3

# virsh flags that godwit cannot give a meaning to, with the reason
REFUSED = {
    "offline": "godwit domains are transient: there is no definition to "
               "migrate without a running guest",
    "p2p": "gwsh drives both hosts itself; there is no libvirtd on the "
           "source to talk to the destination",
    "direct": "gwsh drives both hosts itself; there is no hypervisor-"
              "native direct mode to select",
    "tunnelled": "godwit migrations run over their own TCP connections; "
                 "there is no libvirtd connection to tunnel them through",
    "persistent": "godwit domains are transient (no definition to persist)",
    "undefinesource": "godwit domains are transient (no definition to "
                      "undefine)",
    "copy-storage-all": "godwit guests have no disks",
    "copy-storage-inc": "godwit guests have no disks",
    "copy-storage-synchronous-writes": "godwit guests have no disks",
    "change-protection": "godwit domains have no configuration to protect",
    "unsafe": "godwit guests have no disks whose cache mode could make a "
              "migration unsafe",
    "rdma-pin-all": "godwit has no RDMA transport",
    "graphicsuri": "godwit guests have no graphics",
    "xml": "godwit domains have no XML definition",
    "persistent-xml": "godwit domains have no XML definition",
    "migrate-disks": "godwit guests have no disks",
    "disks-port": "godwit guests have no disks",
    "disks-uri": "godwit guests have no disks",
}


# virsh options that are one migration parameter each, and the side(s)
# libvirt sends them to (qemu_migration_params.c's TPMap); applied once
# their checks passed
PARAMS = [
    ("auto-converge-initial", SRC, "cpu-throttle-initial"),
    ("auto-converge-increment", SRC, "cpu-throttle-increment"),
    ("parallel-connections", BOTH, "multifd-channels"),
    ("comp-mt-level", SRC, "compress-level"),
    ("comp-mt-threads", SRC, "compress-threads"),
    ("comp-mt-dthreads", DST, "decompress-threads"),
    ("comp-xbzrle-cache", BOTH, "xbzrle-cache-size"),
    ("comp-zlib-level", BOTH, "multifd-zlib-level"),
    ("comp-zstd-level", BOTH, "multifd-zstd-level"),
]


class PlanError(Exception):
    pass


class Plan:
    def __init__(self):
        self.caps = {SRC: {}, DST: {}}     # capability -> bool
        self.params = {SRC: {}, DST: {}}   # parameter -> value
        self.live = False
        self.suspend = False               # destination stays paused
        self.postcopy = False
        self.postcopy_after_precopy = False
        self.postcopy_resume = False
        self.timeout = 0
        self.timeout_action = None         # "suspend" or "postcopy"
        self.abort_on_error = False
        self.zerocopy = False
        self.tls = False
        self.tls_destination = None        # TLS host name of the destination

    def cap(self, party, name, on=True):
        for p in (SRC, DST):
            if party & p:
                self.caps[p][name] = on

    def param(self, party, name, value):
        for p in (SRC, DST):
            if party & p:
                self.params[p][name] = value


def _require(flags, opt, needs):
    if opt in flags and needs not in flags:
        raise PlanError("Option --%s is required by option --%s"
                        % (needs, opt))


def _exclusive(flags, a, b):
    if a in flags and b in flags:
        raise PlanError("Options --%s and --%s are mutually exclusive"
                        % (a, b))


def _client_checks(f):
    """virsh's own checks (tools/virsh-domain.c), before any connection."""
    _exclusive(f, "live", "offline")
    _exclusive(f, "timeout-suspend", "timeout-postcopy")
    _require(f, "postcopy-after-precopy", "postcopy")
    _require(f, "timeout-postcopy", "postcopy")
    _require(f, "postcopy-resume", "postcopy")
    _require(f, "persistent-xml", "persistent")
    _require(f, "tls-destination", "tls")
    if f.get("timeout", 0) > 0 and "live" not in f:
        raise PlanError("migrate: Unexpected timeout for offline migration")
    if ("timeout-suspend" in f or "timeout-postcopy" in f) and \
            not f.get("timeout"):
        raise PlanError("migrate: Unexpected --timeout-* option without "
                        "--timeout")


def _compression(f, p):
    methods = []
    for m in (f.get("comp-methods") or "").split(","):
        if not m:
            continue
        if m not in ("mt", "xbzrle", "zlib", "zstd"):
            raise PlanError("invalid argument: Unsupported compression "
                            "method '%s'" % m)
        if m in methods:
            raise PlanError("invalid argument: Compression method '%s' is "
                            "specified twice" % m)
        methods.append(m)
    parallel = "parallel" in f
    for m in methods:
        if parallel and m in ("mt", "xbzrle"):
            raise PlanError("invalid argument: Compression method '%s' "
                            "isn't supported with parallel migration" % m)
        if not parallel and m in ("zlib", "zstd"):
            raise PlanError("invalid argument: Compression method '%s' is "
                            "only supported with parallel migration" % m)
    if parallel and len(methods) > 1:
        raise PlanError("invalid argument: Only one compression method "
                        "could be specified with parallel compression")
    if not methods and "compressed" in f:
        if parallel:
            raise PlanError("invalid argument: No compression algorithm "
                            "selected for parallel migration")
        methods = ["xbzrle"]
    tune = [("comp-mt-level", "mt", "multithread"),
            ("comp-mt-threads", "mt", "multithread"),
            ("comp-mt-dthreads", "mt", "multithread"),
            ("comp-xbzrle-cache", "xbzrle", "xbzrle"),
            ("comp-zlib-level", "zlib", "zlib"),
            ("comp-zstd-level", "zstd", "zstd")]
    for opt, method, word in tune:
        if opt in f and method not in methods:
            raise PlanError("invalid argument: Turn %s compression on to "
                            "tune it" % word)
    if "mt" in methods:
        p.cap(BOTH, "compress")
    if "xbzrle" in methods:
        p.cap(BOTH, "xbzrle")
    for m in ("zlib", "zstd"):
        if m in methods:
            p.param(BOTH, "multifd-compression", m)


def _mibs(f, opt):
    v = f[opt]
    if v > UNLIMITED_MIBS:
        raise PlanError("numerical overflow: bandwidth must be less than "
                        "%d" % (UNLIMITED_MIBS + 1))
    return v * MIB


def plan(f):
    """f: parsed virsh migrate options ({name: value}); returns a Plan or
    raises PlanError with libvirt's message."""
    _client_checks(f)
    for opt in REFUSED:
        if opt in f:
            raise PlanError("unsupported configuration: --%s: %s"
                            % (opt, REFUSED[opt]))
    p = Plan()
    p.live = "live" in f
    p.suspend = "suspend" in f
    p.abort_on_error = "abort-on-error" in f
    p.cap(BOTH, "events")
    p.cap(BOTH, "return-path")

    if ("auto-converge-initial" in f or "auto-converge-increment" in f) \
            and "auto-converge" not in f:
        raise PlanError("invalid argument: Turn auto convergence on to "
                        "tune it")
    if "auto-converge" in f:
        p.cap(SRC, "auto-converge")

    if "parallel-connections" in f and "parallel" not in f:
        raise PlanError("invalid argument: Turn parallel migration on to "
                        "tune it")
    if "parallel" in f:
        p.cap(BOTH, "multifd")
    _compression(f, p)
    for opt, party, name in PARAMS:
        if opt in f:
            p.param(party, name, f[opt])

    if "postcopy" in f:
        if not p.live:
            raise PlanError("argument unsupported: post-copy migration is "
                            "not supported with non-live or paused "
                            "migration")
        p.postcopy = True
        p.cap(BOTH, "postcopy-ram")
    p.postcopy_after_precopy = "postcopy-after-precopy" in f
    p.postcopy_resume = "postcopy-resume" in f
    if "postcopy-bandwidth" in f:
        p.param(SRC, "max-postcopy-bandwidth", _mibs(f, "postcopy-bandwidth"))
    if "bandwidth" in f:
        p.param(SRC, "max-bandwidth", _mibs(f, "bandwidth"))

    if f.get("timeout"):
        p.timeout = f["timeout"]
        p.timeout_action = ("postcopy" if "timeout-postcopy" in f
                            else "suspend")

    if "zerocopy" in f:
        if "parallel" not in f:
            raise PlanError("invalid argument: zero-copy is only available "
                            "for parallel migration")
        p.zerocopy = True
        p.cap(SRC, "zero-copy-send")
    if "tls" in f:
        p.tls = True
        p.tls_destination = f.get("tls-destination")
    return p
