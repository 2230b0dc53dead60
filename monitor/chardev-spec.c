/*
 * Parser of monitor specs as given to -qmp and -monitor (QEMU's syntax,
 * the subset godwit serves):
 *   stdio
 *   unix:PATH,server=on,wait=off
 *   tcp:HOST:PORT,server=on,wait=off     HOST may be empty, a name, an
 *                                        IPv4 address or [IPv6]
 * Options: server[=on|off], wait=on|off, nowait (= wait=off). A comma
 * inside PATH is written ",,". godwit only listens and never waits for
 * the first client, so server=on and wait=off (or nowait) are required:
 * anything else is refused rather than ignored. Pure, no I/O.
 */
#include <string.h>

#include "godwit/cutils.h"
#include "monitor-internal.h"

/* Splits at ',' with ",," standing for a literal comma. */
static GPtrArray *spec_split(const char *s)
{
    GPtrArray *fields = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = s; *p; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',') {
            g_ptr_array_add(fields, g_string_free(cur, FALSE));
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    g_ptr_array_add(fields, g_string_free(cur, FALSE));
    return fields;
}

/* Reads the options after the address; requires server=on and wait=off. */
static bool spec_parse_options(const char *spec, GPtrArray *fields,
                               GError **errp)
{
    bool server = false, wait_on = true;

    for (guint i = 1; i < fields->len; i++) {
        const char *opt = fields->pdata[i];
        const char *eq = strchr(opt, '=');
        g_autofree char *key =
            eq ? g_strndup(opt, (gsize)(eq - opt)) : g_strdup(opt);
        g_autoptr(GError) err = NULL;
        bool *target;

        if (!strcmp(key, "server")) {
            target = &server;
        } else if (!strcmp(key, "wait")) {
            target = &wait_on;
        } else if (!strcmp(opt, "nowait")) {
            wait_on = false;
            continue;
        } else {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "monitor '%s': unknown option '%s'", spec, opt);
            return false;
        }
        if (!eq) {
            *target = true; /* bare "server" (and "wait") */
        } else if (!gw_parse_bool(eq + 1, target, &err)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "monitor '%s': invalid value for '%s': %s", spec, key,
                        err->message);
            return false;
        }
    }
    if (!server) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "monitor '%s': only server=on is supported (godwit "
                    "listens, it does not connect out)",
                    spec);
        return false;
    }
    if (wait_on) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "monitor '%s': wait=on is not supported (godwit does not "
                    "wait for a client before starting); add wait=off",
                    spec);
        return false;
    }
    return true;
}

static bool spec_valid_port(const char *port)
{
    uint64_t v;

    if (!*port || strspn(port, "0123456789") != strlen(port)) {
        return false;
    }
    return gw_parse_uint(port, &v, NULL) && v >= 1 && v <= 65535;
}

/* "HOST:PORT" or "[V6]:PORT" into out->host and out->port. */
static bool spec_parse_inet(const char *spec, const char *addr,
                            MonitorSpec *out, GError **errp)
{
    const char *colon;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');

        if (!close || close[1] != ':') {
            goto bad;
        }
        out->host = g_strndup(addr + 1, (gsize)(close - addr - 1));
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || memchr(addr, ':', (size_t)(colon - addr))) {
            /* none, or an IPv6 address without brackets */
            goto bad;
        }
        out->host = g_strndup(addr, (gsize)(colon - addr));
    }
    out->port = g_strdup(colon + 1);
    if (!spec_valid_port(out->port)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "monitor '%s': invalid port '%s' (expected 1 to 65535)",
                    spec, out->port);
        return false;
    }
    return true;

bad:
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "monitor '%s': expected tcp:HOST:PORT (IPv6 as [ADDR]:PORT)",
                spec);
    return false;
}

bool monitor_spec_parse(const char *spec, MonitorSpec *out, GError **errp)
{
    g_autoptr(GPtrArray) fields = NULL;
    const char *first;

    memset(out, 0, sizeof(*out));
    fields = spec_split(spec ? spec : "");
    first = fields->pdata[0];
    if (!strcmp(first, "stdio")) {
        out->kind = MONITOR_SPEC_STDIO;
        if (fields->len > 1) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "monitor '%s': unknown option '%s'", spec,
                        (const char *)fields->pdata[1]);
            return false;
        }
        return true;
    }
    if (g_str_has_prefix(first, "unix:")) {
        out->kind = MONITOR_SPEC_UNIX;
        out->path = g_strdup(first + strlen("unix:"));
        if (!*out->path) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "monitor '%s': empty unix socket path", spec);
            goto fail;
        }
    } else if (g_str_has_prefix(first, "tcp:")) {
        out->kind = MONITOR_SPEC_TCP;
        if (!spec_parse_inet(spec, first + strlen("tcp:"), out, errp)) {
            goto fail;
        }
    } else {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "monitor '%s': unsupported backend (expected "
                    "unix:PATH, tcp:HOST:PORT or stdio)",
                    spec ? spec : "");
        return false;
    }
    if (!spec_parse_options(spec, fields, errp)) {
        goto fail;
    }
    return true;

fail:
    monitor_spec_clear(out);
    return false;
}

void monitor_spec_clear(MonitorSpec *spec)
{
    g_clear_pointer(&spec->path, g_free);
    g_clear_pointer(&spec->host, g_free);
    g_clear_pointer(&spec->port, g_free);
}
