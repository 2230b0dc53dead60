/*
 * libgwtest: process-level test helpers. Spawns godwit processes with a
 * QMP socket and a serial log in a private temporary directory, talks QMP,
 * waits for serial lines and events.
 *
 * Environment (set by meson): GODWIT = path of the godwit binary,
 * GUEST_DIR = folder of the guest payloads (*.elf), and optionally
 * GODWIT_ACCEL = kvm, kvm,dirty-ring-size=N or tcg: the accelerator every
 * godwit runs with (default: kvm where /dev/kvm opens, else tcg; `meson
 * test --setup tcg` sets tcg, `--setup ring` KVM with a 4096-entry dirty
 * ring).
 *
 * Failures abort the test through g_assert/g_error with a message; a test
 * that cannot run here (no /dev/kvm, no QEMU) exits 77 (skip).
 */
#ifndef LIBGWTEST_H
#define LIBGWTEST_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

#define GWT_SKIP 77

typedef struct GwProc {
    GPid pid;
    char *name;
    char *dir;         /* private temp dir (removed by gwt_free) */
    char *qmp_path;    /* unix socket */
    char *serial_path; /* serial log */
    char *stderr_path; /* its stderr */
    int qmp_fd;
    GString *rbuf;  /* unparsed QMP input */
    GQueue *events; /* JsonObject* events not consumed yet */
    bool exited;
    int status; /* wait status once exited */
} GwProc;

/* Skips (exit 77) unless /dev/kvm can be opened (tests that need KVM). */
void gwt_require_kvm(void);

/*
 * The accelerator this run's godwits use ("kvm" or "tcg"; see above):
 * gwt_start passes it as -accel. Skips (exit 77) when GODWIT_ACCEL=kvm
 * and /dev/kvm is missing. gwt_tcg(): whether it is tcg, for tests that
 * size their guests and waits to the accelerator's speed.
 */
const char *gwt_accel(void);
bool gwt_tcg(void);
/* Makes later gwt_start calls use `accel` (a static string); returns the
 * one before. For tests that mix accelerators. */
const char *gwt_set_accel(const char *accel);
/* Whether /dev/kvm can be opened here. */
bool gwt_kvm_present(void);
/*
 * Whether this is scripts/check's second pass (tcg where KVM exists,
 * GODWIT_QTEST_SECOND_PASS). It is there for the accelerator: cases whose
 * subject is not the accelerator (transports, TLS, compression methods,
 * a throttle policy's arithmetic) ran in the first pass and are skipped.
 */
bool gwt_second_pass(void);

/* Path of a payload: $GUEST_DIR/<name>.elf (asserts it exists). */
char *gwt_payload(const char *name);

/*
 * Starts godwit with `args` (a shell-quoted string, split with
 * g_shell_parse_argv) plus -qmp on a fresh unix socket and -serial to a
 * log file, and completes QMP capabilities negotiation.
 */
GwProc *gwt_start(const char *name, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Like gwt_start but without -serial/-qmp added (for command-line tests):
 * runs to completion and returns the exit status; stderr in *err_out. */
int gwt_run(char **err_out, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/*
 * Sends one QMP command (printf-style JSON text) and returns the reply
 * object ({"return": ...} or {"error": ...}); events that arrive meanwhile
 * are queued. Caller unrefs.
 */
JsonObject *gwt_qmp(GwProc *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Sends a command, asserts success, returns the "return" node (caller
 * frees with json_node_unref). */
JsonNode *gwt_qmp_ok(GwProc *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Sends a command and asserts success, dropping the result. */
void gwt_qmp_void(GwProc *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Sends a command, asserts it failed; returns the error "desc" (free). */
char *gwt_qmp_err(GwProc *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Runs an HMP command line through human-monitor-command; returns output. */
char *gwt_hmp(GwProc *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Waits up to timeout_ms for an event; returns it (unref) or NULL. */
JsonObject *gwt_wait_event(GwProc *p, const char *event, int timeout_ms);

/* The serial log so far. */
char *gwt_serial(GwProc *p);

/*
 * Waits until the serial log contains `needle` `count` times (counting
 * non-overlapping occurrences); returns false on timeout.
 */
bool gwt_wait_serial_count(GwProc *p, const char *needle, int count,
                           int timeout_ms);
static inline bool gwt_wait_serial(GwProc *p, const char *needle,
                                   int timeout_ms)
{
    return gwt_wait_serial_count(p, needle, 1, timeout_ms);
}
int gwt_serial_count(GwProc *p, const char *needle);

/* status from query-status */
char *gwt_status(GwProc *p);

/* Sends quit and waits for the process; returns its exit code. */
int gwt_quit(GwProc *p);
/* SIGKILLs the process (if alive) and waits for it. */
void gwt_kill(GwProc *p);
/* Waits for exit up to timeout_ms; returns true if it exited. */
bool gwt_wait_exit(GwProc *p, int timeout_ms);
/* Kills if needed, removes the temp dir, frees. */
void gwt_free(GwProc *p);
/* What the process wrote to stderr so far (free). */
char *gwt_stderr(GwProc *p);

/* JSON accessors that assert the member exists with the right type. */
int64_t gwt_get_int(JsonObject *o, const char *member);
const char *gwt_get_str(JsonObject *o, const char *member);
bool gwt_get_bool(JsonObject *o, const char *member);
JsonObject *gwt_get_obj(JsonObject *o, const char *member);

/* Monotonic milliseconds. */
int64_t gwt_now_ms(void);
void gwt_sleep_ms(int ms);

#endif /* LIBGWTEST_H */
