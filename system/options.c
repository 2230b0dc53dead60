/*
 * Command-line parsing with QEMU's option syntax (-opt value).
 *
 * Only options godwit implements are accepted; anything else is refused
 * with the option's name, never ignored.
 */
#include <string.h>

#include "godwit/cutils.h"
#include "godwit/options.h"
#include "godwit/ramblock.h"

typedef enum OptArg {
    OPT_NONE,
    OPT_VALUE,
} OptArg;

typedef bool (*OptHandler)(GwOptions *o, const char *opt, const char *val,
                           GError **errp);

typedef struct OptDef {
    const char *name;
    OptArg arg;
    OptHandler handler;
} OptDef;

static bool set_string(char **dst, const char *opt, const char *val,
                       GError **errp)
{
    if (*dst) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "-%s: given more than once", opt);
        return false;
    }
    *dst = g_strdup(val);
    return true;
}

/*
 * Splits "a,b=c,d" style option strings. The first element may be a bare
 * value (implied key `implied`). Returns a table key -> value, or NULL with
 * *errp set when a key repeats or is not in `allowed` (NULL-terminated).
 */
static GHashTable *parse_keyvals(const char *opt, const char *val,
                                 const char *implied,
                                 const char *const *allowed, GError **errp)
{
    g_autoptr(GHashTable) kv =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_auto(GStrv) parts = g_strsplit(val, ",", -1);

    for (int i = 0; parts[i]; i++) {
        const char *p = parts[i];
        const char *eq = strchr(p, '=');
        g_autofree char *key = NULL;
        g_autofree char *v = NULL;
        bool ok = false;

        if (!eq) {
            if (i != 0 || !implied || !*p) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "-%s: invalid parameter '%s'", opt, p);
                return NULL;
            }
            key = g_strdup(implied);
            v = g_strdup(p);
        } else {
            key = g_strndup(p, eq - p);
            v = g_strdup(eq + 1);
        }
        for (int j = 0; allowed[j]; j++) {
            ok |= !strcmp(allowed[j], key);
        }
        if (!ok) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "-%s: unsupported parameter '%s'", opt, key);
            return NULL;
        }
        if (g_hash_table_contains(kv, key)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "-%s: parameter '%s' given twice", opt, key);
            return NULL;
        }
        g_hash_table_insert(kv, g_steal_pointer(&key), g_steal_pointer(&v));
    }
    return g_steal_pointer(&kv);
}

static bool opt_name(GwOptions *o, const char *opt, const char *val,
                     GError **errp)
{
    static const char *const keys[] = {"guest", NULL};
    g_autoptr(GHashTable) kv = NULL;
    const char *name;

    /* "-name foo" or "-name guest=foo" */
    if (!strchr(val, '=')) {
        return set_string(&o->name, opt, val, errp);
    }
    kv = parse_keyvals(opt, val, "guest", keys, errp);
    if (!kv) {
        return false;
    }
    name = g_hash_table_lookup(kv, "guest");
    return set_string(&o->name, opt, name ? name : "", errp);
}

static bool opt_m(GwOptions *o, const char *opt, const char *val, GError **errp)
{
    static const char *const keys[] = {"size", NULL};
    g_autoptr(GHashTable) kv = parse_keyvals(opt, val, "size", keys, errp);
    g_autoptr(GError) err = NULL;
    const char *size;
    uint64_t bytes;

    if (!kv) {
        return false;
    }
    size = g_hash_table_lookup(kv, "size");
    if (!size) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "-m: missing size");
        return false;
    }
    if (!gw_parse_size(size, 1 << 20, &bytes, &err)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "-m: %s", err->message);
        return false;
    }
    if (bytes < GW_MIN_RAM_SIZE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "-m: RAM size '%s' is too small (at least 2M)", size);
        return false;
    }
    if (bytes > UINT64_MAX - GW_PAGE_SIZE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "-m: RAM size '%s' is too large", size);
        return false;
    }
    /* Whole pages, as the RAM block will be. */
    o->ram_size = (bytes + GW_PAGE_SIZE - 1) & ~(uint64_t)(GW_PAGE_SIZE - 1);
    return true;
}

static bool opt_smp(GwOptions *o, const char *opt, const char *val,
                    GError **errp)
{
    static const char *const keys[] = {"cpus",  "maxcpus", "sockets",
                                       "cores", "threads", NULL};
    static const char *const counts[] = {"cpus", "maxcpus"};
    g_autoptr(GHashTable) kv = parse_keyvals(opt, val, "cpus", keys, errp);
    uint64_t n[G_N_ELEMENTS(counts)] = {0};
    GHashTableIter it;
    gpointer key, value;

    if (!kv) {
        return false;
    }
    g_hash_table_iter_init(&it, kv);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        uint64_t v;
        if (!gw_parse_uint(value, &v, NULL) || v < 1 || v > GW_MAX_SMP) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "-smp: %s '%s' must be a number from 1 to %d",
                        (char *)key, (char *)value, GW_MAX_SMP);
            return false;
        }
        for (size_t i = 0; i < G_N_ELEMENTS(counts); i++) {
            if (!strcmp(key, counts[i])) {
                n[i] = v;
            }
        }
        /* A flat topology, no hotplug: refuse what we cannot honour. */
        if (strcmp(key, "cpus") && strcmp(key, "maxcpus") && v != 1) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "-smp: '%s=%s' is not supported (godwit has one "
                        "socket, core and thread per vCPU)",
                        (char *)key, (char *)value);
            return false;
        }
    }
    if (!n[0]) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "-smp: missing the number of CPUs");
        return false;
    }
    if (n[1] && n[1] != n[0]) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "-smp: maxcpus must equal cpus (no CPU hotplug)");
        return false;
    }
    o->smp = (int)n[0];
    return true;
}

static bool opt_kernel(GwOptions *o, const char *opt, const char *val,
                       GError **errp)
{
    return set_string(&o->kernel, opt, val, errp);
}

static bool opt_append(GwOptions *o, const char *opt, const char *val,
                       GError **errp)
{
    return set_string(&o->append, opt, val, errp);
}

/*
 * dirty-ring-size=N: KVM's dirty ring, N entries per vCPU, a power of two
 * (QEMU's property); 0 is the bitmap dirty log. Whether KVM offers the ring
 * and how large it may be is checked when the VM is created.
 */
static bool parse_dirty_ring_size(GwOptions *o, const char *opt,
                                  const char *val, GError **errp)
{
    uint64_t v;

    if (!gw_parse_uint(val, &v, NULL) || v > UINT32_MAX) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "-%s: dirty-ring-size '%s' must be a number of ring "
                    "entries (a power of two, 0 = off)",
                    opt, val);
        return false;
    }
    if (v & (v - 1)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "-%s: dirty-ring-size must be a power of two "
                    "(got %" G_GUINT64_FORMAT ")",
                    opt, v);
        return false;
    }
    o->dirty_ring_size = (uint32_t)v;
    return true;
}

/*
 * -accel NAME[:NAME...][,thread=single][,dirty-ring-size=N], repeatable,
 * and -enable-kvm: the accelerators to try, in order (QEMU's fallback
 * syntax). o->accel collects them as one "kvm:tcg" list; NULL means the
 * default. Each property belongs to one accelerator (thread to tcg,
 * dirty-ring-size to kvm) and is refused on a list naming the other.
 */
static bool opt_accel(GwOptions *o, const char *opt, const char *val,
                      GError **errp)
{
    const char *spec = strcmp(opt, "enable-kvm") ? val : "kvm";
    g_auto(GStrv) parts = g_strsplit(spec, ",", -1);
    g_auto(GStrv) names = g_strsplit(parts[0], ":", -1);
    bool has_kvm = g_strv_contains((const char *const *)names, "kvm");
    bool has_tcg = g_strv_contains((const char *const *)names, "tcg");

    for (int i = 1; parts[i]; i++) {
        if (g_str_has_prefix(parts[i], "dirty-ring-size=")) {
            if (has_tcg || !has_kvm) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "-%s: dirty-ring-size is a property of kvm "
                            "alone (give it as -accel kvm,dirty-ring-size=N)",
                            opt);
                return false;
            }
            if (!parse_dirty_ring_size(o, opt, parts[i] + 16, errp)) {
                return false;
            }
            continue;
        }
        if (strcmp(parts[i], "thread=single")) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "-%s: option '%s' is not supported (godwit's tcg "
                        "runs one vCPU at a time: thread=single; kvm takes "
                        "dirty-ring-size=N)",
                        opt, parts[i]);
            return false;
        }
        if (has_kvm) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "-%s: kvm takes no option 'thread'", opt);
            return false;
        }
    }
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], "kvm") && strcmp(names[i], "tcg")) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "-%s: accelerator '%s' is not supported (kvm, tcg)",
                        opt, names[i]);
            return false;
        }
        if (o->accel) {
            g_auto(GStrv) have = g_strsplit(o->accel, ":", -1);
            if (g_strv_contains((const char *const *)have, names[i])) {
                continue; /* -enable-kvm with -accel kvm is fine */
            }
        }
        char *list = o->accel ? g_strconcat(o->accel, ":", names[i], NULL)
                              : g_strdup(names[i]);
        g_free(o->accel);
        o->accel = list;
    }
    return true;
}

static bool opt_S(GwOptions *o, const char *opt, const char *val, GError **errp)
{
    o->start_paused = true;
    return true;
}

static bool opt_serial(GwOptions *o, const char *opt, const char *val,
                       GError **errp)
{
    if (strcmp(val, "stdio") && strcmp(val, "none") && strcmp(val, "null") &&
        !g_str_has_prefix(val, "file:")) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "-serial: '%s' is not supported (file:PATH, stdio or "
                    "none)",
                    val);
        return false;
    }
    if (g_str_has_prefix(val, "file:") && !val[5]) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "-serial: file: needs a path");
        return false;
    }
    return set_string(&o->serial, opt, val, errp);
}

static bool opt_chardev_list(GwOptions *o, const char *opt, const char *val,
                             GError **errp)
{
    GPtrArray **arr = !strcmp(opt, "qmp") ? &o->qmp : &o->monitor;

    if (!*arr) {
        *arr = g_ptr_array_new_with_free_func(g_free);
    }
    g_ptr_array_add(*arr, g_strdup(val));
    return true;
}

/* -object TYPE,id=ID,...: created by main() once the types exist. */
static bool opt_object(GwOptions *o, const char *opt, const char *val,
                       GError **errp)
{
    if (!o->objects) {
        o->objects = g_ptr_array_new_with_free_func(g_free);
    }
    g_ptr_array_add(o->objects, g_strdup(val));
    return true;
}

static bool opt_incoming(GwOptions *o, const char *opt, const char *val,
                         GError **errp)
{
    return set_string(&o->incoming, opt, val, errp);
}

static bool opt_pidfile(GwOptions *o, const char *opt, const char *val,
                        GError **errp)
{
    return set_string(&o->pidfile, opt, val, errp);
}

static bool opt_nodefaults(GwOptions *o, const char *opt, const char *val,
                           GError **errp)
{
    o->nodefaults = true;
    return true;
}

static bool opt_mem_prealloc(GwOptions *o, const char *opt, const char *val,
                             GError **errp)
{
    o->mem_prealloc = true;
    return true;
}

static bool opt_display(GwOptions *o, const char *opt, const char *val,
                        GError **errp)
{
    /* godwit has no display: "none" is the only honest answer. */
    if (strcmp(opt, "nographic") && strcmp(val, "none")) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "-display: '%s' is not supported (only none)", val);
        return false;
    }
    return true;
}

static bool opt_version(GwOptions *o, const char *opt, const char *val,
                        GError **errp)
{
    o->show_version = true;
    return true;
}

static bool opt_help(GwOptions *o, const char *opt, const char *val,
                     GError **errp)
{
    o->show_help = true;
    return true;
}

static const OptDef opt_table[] = {
    {"name", OPT_VALUE, opt_name},
    {"m", OPT_VALUE, opt_m},
    {"smp", OPT_VALUE, opt_smp},
    {"kernel", OPT_VALUE, opt_kernel},
    {"append", OPT_VALUE, opt_append},
    {"accel", OPT_VALUE, opt_accel},
    {"enable-kvm", OPT_NONE, opt_accel},
    {"S", OPT_NONE, opt_S},
    {"serial", OPT_VALUE, opt_serial},
    {"qmp", OPT_VALUE, opt_chardev_list},
    {"monitor", OPT_VALUE, opt_chardev_list},
    {"incoming", OPT_VALUE, opt_incoming},
    {"object", OPT_VALUE, opt_object},
    {"pidfile", OPT_VALUE, opt_pidfile},
    {"nodefaults", OPT_NONE, opt_nodefaults},
    {"mem-prealloc", OPT_NONE, opt_mem_prealloc},
    {"display", OPT_VALUE, opt_display},
    {"nographic", OPT_NONE, opt_display},
    {"version", OPT_NONE, opt_version},
    {"h", OPT_NONE, opt_help},
    {"help", OPT_NONE, opt_help},
};

bool gw_options_parse(int argc, char **argv, GwOptions *o, GError **errp)
{
    memset(o, 0, sizeof(*o));
    o->ram_size = GW_DEFAULT_RAM_SIZE;
    o->smp = 1;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const OptDef *def = NULL;

        if (arg[0] != '-' || !arg[1]) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "unexpected argument '%s' (options start with -)", arg);
            return false;
        }
        arg += (arg[1] == '-') ? 2 : 1;
        for (size_t j = 0; j < G_N_ELEMENTS(opt_table); j++) {
            if (!strcmp(opt_table[j].name, arg)) {
                def = &opt_table[j];
                break;
            }
        }
        if (!def) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "-%s: invalid option",
                        arg);
            return false;
        }
        const char *val = NULL;
        if (def->arg == OPT_VALUE) {
            if (i + 1 >= argc) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "-%s: requires an argument", arg);
                return false;
            }
            val = argv[++i];
        }
        if (!def->handler(o, def->name, val, errp)) {
            return false;
        }
    }
    return true;
}

void gw_options_clear(GwOptions *o)
{
    g_free(o->name);
    g_free(o->kernel);
    g_free(o->append);
    g_free(o->accel);
    g_free(o->serial);
    g_free(o->incoming);
    g_free(o->pidfile);
    if (o->qmp) {
        g_ptr_array_free(o->qmp, true);
    }
    if (o->monitor) {
        g_ptr_array_free(o->monitor, true);
    }
    if (o->objects) {
        g_ptr_array_free(o->objects, true);
    }
    memset(o, 0, sizeof(*o));
}

const char *gw_options_usage(void)
{
    return "usage: godwit [options]\n"
           "\n"
           "  -name NAME              name of the guest (also guest=NAME)\n"
           "  -m SIZE                 RAM size, suffixes K/M/G/T (plain "
           "number = MiB; default 128M)\n"
           "  -smp N                  number of vCPUs (also cpus=N)\n"
           "  -kernel FILE            Multiboot v1 ELF32 kernel to boot\n"
           "  -append STRING          kernel command line\n"
           "  -accel kvm|tcg          accelerator: KVM, or software "
           "emulation (tcg);\n"
           "                          kvm,dirty-ring-size=N: KVM's dirty "
           "ring, N entries\n"
           "                          per vCPU (power of two; 0 = dirty "
           "bitmap, the default)\n"
           "                          fallbacks in order with kvm:tcg or "
           "repeated -accel\n"
           "                          (default: kvm, else tcg; "
           "-enable-kvm = -accel kvm)\n"
           "  -S                      do not start the vCPUs (use 'cont')\n"
           "  -serial DEV             serial port: file:PATH, stdio or "
           "none\n"
           "  -qmp DEV                QMP monitor: "
           "unix:PATH,server=on,wait=off,\n"
           "                          tcp:HOST:PORT,server=on,wait=off or "
           "stdio\n"
           "  -monitor DEV            HMP monitor, same devices as -qmp\n"
           "  -incoming URI|defer     wait for an incoming migration\n"
           "  -object TYPE,id=ID,...  create an object (tls-creds-x509, "
           "tls-creds-psk,\n"
           "                          tls-creds-anon, authz-simple, "
           "authz-list)\n"
           "  -pidfile FILE           write the process id to FILE\n"
           "  -mem-prealloc           allocate all guest RAM at start (a\n"
           "                          destination then receives faster)\n"
           "  -nodefaults             no default devices (accepted; godwit "
           "has none)\n"
           "  -display none           no display (the only kind godwit "
           "has)\n"
           "  -version                print the version and exit\n"
           "  -h, -help               print this help and exit\n";
}
