/*
 * The monitor: one command table that feeds both QMP and HMP.
 *
 * Commands live beside what they command (system/, migration/, hw/);
 * each owner registers a static table of MonitorCommand at start-up with
 * monitor_register_commands(). The monitor itself (monitor/) owns only
 * the protocols: the QMP server (JSON over unix/tcp/stdio), the HMP line
 * parser and the dispatch.
 *
 * An HMP command is, by default, its QMP command with the arguments parsed
 * from the line according to `args_type`, and the result printed by
 * `hmp_print`. So `stop` in HMP and {"execute": "stop"} in QMP run the same
 * code.
 *
 * Threads: handlers are called in the main loop thread only. They must not
 * block: anything slow runs in its own thread and is observed through
 * queries.
 */
#ifndef GODWIT_MONITOR_H
#define GODWIT_MONITOR_H

#include <glib.h>
#include <stdint.h>
#include <json-glib/json-glib.h>

#include "godwit/error.h"

/*
 * QMP handler. `args` is the "arguments" object (an empty object when the
 * client sent none; never NULL). Returns a new JsonNode holding the
 * "return" value (an empty object for commands without data), or NULL with
 * *errp set.
 */
typedef JsonNode *(*QmpCommandFunc)(JsonObject *args, GError **errp);

/* Appends the HMP rendering of a QMP result `ret` to `out`. */
typedef void (*HmpPrintFunc)(GString *out, JsonNode *ret);

/*
 * Optional: turns the arguments parsed from an HMP line (named by
 * `args_type`) into the QMP arguments, for commands whose HMP form differs
 * (e.g. migrate_set_capability NAME on|off). Returns a new object or NULL
 * with *errp set.
 */
typedef JsonObject *(*HmpArgsFunc)(JsonObject *hmp_args, GError **errp);

typedef struct MonitorCommand {
    /* QMP name, e.g. "query-status". NULL for an HMP-only command. */
    const char *name;
    QmpCommandFunc handler;
    /*
     * HMP name, e.g. "stop" or "info status" (an `info` sub-command);
     * NULL when the command is QMP-only.
     */
    const char *hmp_name;
    /*
     * HMP argument spec, QEMU's style, comma separated NAME:TYPE where TYPE
     * is one of
     *   s   a word (or a "quoted string")
     *   S   the rest of the line
     *   i   integer (JSON int)
     *   o   size with optional K/M/G/T suffix (JSON int, bytes)
     *   b   on|off (JSON bool)
     *   -X  a flag written -X before the positional arguments (JSON bool)
     * and a trailing '?' makes a positional argument optional, e.g.
     * "detach:-d,uri:s". NULL or "" means no arguments.
     */
    const char *args_type;
    const char *params; /* HMP usage, e.g. "[-d] uri" */
    const char *help;   /* one line */
    HmpArgsFunc hmp_args;   /* optional, see HmpArgsFunc */
    HmpPrintFunc hmp_print; /* optional; nothing is printed without it */
    /*
     * Optional, HMP consoles only (QEMU's HMP `migrate` without -d): called
     * after the command succeeded, with its QMP arguments; returns true
     * when the command is finished. While it returns false the console
     * waits (no prompt, typed lines are queued) and it is called again
     * every 100 ms; text it appends is printed. human-monitor-command
     * never waits.
     */
    bool (*hmp_wait)(JsonObject *args, GString *out);
} MonitorCommand;

/*
 * Registers `n` commands (the table must outlive the monitor). A name
 * registered twice is a programming error (asserts).
 */
void monitor_register_commands(const MonitorCommand *cmds, size_t n);

/* Looks a command up by QMP name; NULL when unknown. */
const MonitorCommand *monitor_find_qmp(const char *name);

/*
 * Runs a QMP command by name as the QMP server would (used by tests and by
 * human-monitor-command). Returns the "return" node or NULL with *errp set
 * (CommandNotFound for an unknown name).
 */
JsonNode *monitor_dispatch(const char *name, JsonObject *args, GError **errp);

/*
 * Runs one HMP command line and returns its output (never NULL; errors are
 * part of the output, as HMP prints them), lines ending in "\n"; the
 * consoles and human-monitor-command send them as "\r\n", as QEMU does.
 * Main loop thread only.
 */
char *hmp_run_line(const char *line);

/*
 * Emits a QMP event to every QMP client that has left capabilities
 * negotiation. `data` may be NULL; ownership passes to the monitor.
 * Thread-safe: callable from any thread (delivered by the main loop).
 */
void monitor_emit_event(const char *event, JsonObject *data);

/*
 * Opens a monitor on a character device spec as given to -qmp / -monitor:
 *   unix:PATH,server=on,wait=off
 *   tcp:HOST:PORT,server=on,wait=off
 *   stdio
 * Listening sockets accept any number of clients at once. Returns false with
 * *errp set on a bad spec or a socket that cannot be opened.
 * Must be called after the main loop's GMainContext exists (the default
 * context is used).
 */
bool monitor_open_qmp(const char *spec, GError **errp);
bool monitor_open_hmp(const char *spec, GError **errp);

/* Closes every monitor, unlinks unix socket paths it created. */
void monitor_cleanup(void);

/*
 * Version reported in the QMP greeting and query-version, set once at
 * start-up by main() (defaults to 0.0.0).
 */
void monitor_set_version(int major, int minor, int micro, const char *package);

/*
 * The version object of the QMP greeting, which is also what query-version
 * returns: {"qemu": {"micro": M, "minor": m, "major": X}, "package": "..."}.
 * Returns a new node.
 */
JsonNode *monitor_version_info(void);

/* A new empty-object node: the return value of commands without data. */
JsonNode *qmp_return_empty(void);

/* New nodes holding `obj` / `arr`; they take over the caller's reference. */
JsonNode *qmp_return_object(JsonObject *obj);
JsonNode *qmp_return_array(JsonArray *arr);

/*
 * Argument helpers for QMP handlers, with QEMU's error texts:
 *   "Parameter 'foo' is unexpected", "Parameter 'uri' is missing",
 *   "Invalid parameter type for 'uri', expected: string".
 * qmp_args_check() refuses members not named in the NULL-terminated
 * `allowed`. The getters leave *out untouched when an optional argument is
 * absent; strings point into `args`. All return false with *errp set.
 */
bool qmp_args_check(JsonObject *args, const char *const *allowed,
                    GError **errp);
bool qmp_arg_str(JsonObject *args, const char *name, bool required,
                 const char **out, GError **errp);
bool qmp_arg_int(JsonObject *args, const char *name, bool required,
                 int64_t *out, GError **errp);
bool qmp_arg_bool(JsonObject *args, const char *name, bool required, bool *out,
                  GError **errp);

#endif /* GODWIT_MONITOR_H */
