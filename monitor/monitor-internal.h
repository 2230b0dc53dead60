/*
 * What the monitor's files share with each other and with the unit tests:
 * the QMP and HMP sessions (protocol state of one client, fed bytes, writing
 * through a callback, no sockets), the protocol ops table the transports
 * use, the JSON writer and the transport spec parser.
 *
 * Everything here runs in the main loop thread.
 */
#ifndef MONITOR_INTERNAL_H
#define MONITOR_INTERNAL_H

#include "godwit/monitor.h"

/* Where a session writes its output: bytes for the client, in order. */
typedef void (*MonitorOutputFunc)(void *opaque, const char *data, size_t len);

/*
 * A protocol spoken on a monitor connection. A transport opens one
 * session per client, feeds it what the client sends and closes it when
 * the client goes away.
 */
typedef struct MonitorProtocol {
    const char *name; /* "qmp" or "hmp" */
    /* Creates a session; it may write (greeting, banner) before returning. */
    void *(*open)(MonitorOutputFunc out, void *opaque);
    void (*feed)(void *session, const char *buf, size_t len);
    void (*close)(void *session);
} MonitorProtocol;

extern const MonitorProtocol monitor_qmp_protocol;
extern const MonitorProtocol monitor_hmp_protocol;

/* ---- json-writer.c ------------------------------------------------------- */

/* Appends `node` as one line of ASCII JSON (no newline). */
void monitor_json_append(GString *out, JsonNode *node);
char *monitor_json_to_string(JsonNode *node);

/* ---- qmp.c: one QMP client ----------------------------------------------- */

typedef struct QmpSession QmpSession;

/* Writes the greeting through `out` before returning. */
QmpSession *qmp_session_new(MonitorOutputFunc out, void *opaque);
void qmp_session_feed(QmpSession *s, const char *buf, size_t len);
bool qmp_session_negotiated(const QmpSession *s);
void qmp_session_free(QmpSession *s);

/* Writes `line` (a complete event line, CRLF included) to every session
 * that has left capabilities negotiation. */
void qmp_sessions_broadcast(const char *line, size_t len);

/* Checks qmp_capabilities' arguments ("enable": [...]). */
bool qmp_capabilities_check(JsonObject *args, GError **errp);

/* ---- hmp.c: line parser and dispatch ------------------------------------- */

/* True when `args_type` is a well-formed spec (see MonitorCommand). */
bool hmp_args_type_valid(const char *args_type);

/*
 * Parses the arguments part of an HMP line according to `args_type`.
 * Returns a new object (names from the spec; absent optionals and flags
 * left out) or NULL with *errp set.
 */
JsonObject *hmp_parse_args(const char *args_type, const char *text,
                           GError **errp);

/* Runs one HMP line, appending its output to `out`. */
void hmp_run_line_into(GString *out, const char *line);
/*
 * Like hmp_run_line_into; when the command has an hmp_wait hook that is not
 * finished yet, returns it with a reference to its arguments (*wait_args)
 * for the console to poll. Returns NULL otherwise.
 */
const MonitorCommand *hmp_run_line_wait(GString *out, const char *line,
                                        JsonObject **wait_args);
/*
 * HMP text as it leaves the monitor: every "\n" becomes "\r\n", as QEMU's
 * monitor writes it (consoles and human-monitor-command alike).
 */
char *hmp_to_crlf(const char *text);

/* Help text: every command (`name` NULL), the `info` sub-commands
 * (`name` "info") or one command. */
void hmp_help_into(GString *out, const char *name);

/* ---- hmp-session.c: one HMP client --------------------------------------- */

#define HMP_PROMPT "(godwit) "
#define HMP_MAX_LINE (64 * 1024)

typedef struct HmpSession HmpSession;

/* Writes the banner and the first prompt before returning. */
HmpSession *hmp_session_new(MonitorOutputFunc out, void *opaque);
void hmp_session_feed(HmpSession *s, const char *buf, size_t len);
void hmp_session_free(HmpSession *s);

/* ---- monitor.c: registry, version, events -------------------------------- */

/*
 * Runs a command's handler (`args` NULL: an empty object) and enforces its
 * contract: a NULL return always comes with an error.
 */
JsonNode *monitor_call(const MonitorCommand *cmd, JsonObject *args,
                       GError **errp);
/* Every registered command, in registration order (built-ins first). */
const MonitorCommand *const *monitor_commands(size_t *n);
const MonitorCommand *monitor_find_hmp(const char *hmp_name);
/* "godwit 1.2.3 monitor - type 'help' for more information" */
char *monitor_banner(void);
/* Delivers queued events now (main loop thread). */
void monitor_events_flush(void);

/* ---- chardev.c: transports ----------------------------------------------- */

typedef enum MonitorSpecKind {
    MONITOR_SPEC_STDIO,
    MONITOR_SPEC_UNIX,
    MONITOR_SPEC_TCP,
} MonitorSpecKind;

typedef struct MonitorSpec {
    MonitorSpecKind kind;
    char *path; /* unix */
    char *host; /* tcp; "" for every interface */
    char *port; /* tcp, digits */
} MonitorSpec;

/* Parses a -qmp / -monitor spec; false with *errp set when refused. */
bool monitor_spec_parse(const char *spec, MonitorSpec *out, GError **errp);
void monitor_spec_clear(MonitorSpec *spec);

bool monitor_chardev_open(const char *spec, const MonitorProtocol *proto,
                          GError **errp);
/* True for 127.0.0.0/8, ::1 and ::ffff:127.x.y.z (`sa` is AF_INET[6]). */
struct sockaddr;
bool monitor_addr_is_loopback(const struct sockaddr *sa);
/* Flushes what clients have not read yet (briefly), closes everything. */
void monitor_chardev_cleanup(void);

/* Output a client may leave unread before it is dropped. */
#define MONITOR_MAX_BACKLOG (8u << 20)

#endif /* MONITOR_INTERNAL_H */
