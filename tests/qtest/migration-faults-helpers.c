/*
 * Helpers of the migration fault qtests (test-migration-faults.c,
 * test-migration-kills.c): fresh destinations on their own sockets, the
 * retry that proves a guest still moves after a fault, and the checks of
 * what a fault must leave on each side; see migration-faults-helpers.h.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "migration-faults-helpers.h"

void mode_setup(const FaultMode *m, GwProc *p)
{
    mig_set_cap(p, "events", true);
    for (int i = 0; i < 2 && m->caps[i]; i++) {
        mig_set_cap(p, m->caps[i], true);
    }
    if (m->params) {
        gwt_qmp_void(p,
                     "{'execute': 'migrate-set-parameters', "
                     "'arguments': %s}",
                     m->params);
    }
}

char *run_path(FaultRun *r, const char *what)
{
    g_autofree char *name = g_strdup_printf("%s%d.sock", what, r->seq);

    return mig_path(r->mp, name);
}

/* A fresh destination listening on its own socket (returned in *sock). */
GwProc *dst_start(FaultRun *r, bool paused, char **sock)
{
    GwProc *d =
        gwt_start("dst", "-m " MEM " %s -incoming defer", paused ? "-S" : "");

    r->seq++;
    *sock = run_path(r, "d");
    mode_setup(r->m, d);
    gwt_qmp_void(d,
                 "{'execute': 'migrate-incoming', 'arguments': "
                 "{'uri': 'unix:%s'}}",
                 *sock);
    return d;
}

void migrate_to(GwProc *src, const char *sock)
{
    gwt_qmp_void(src,
                 "{'execute': 'migrate', 'arguments': "
                 "{'uri': 'unix:%s'}}",
                 sock);
}

/* The destination of a completed migration becomes the source. */
void adopt_destination(FaultRun *r)
{
    gwt_free(r->mp->src);
    r->mp->src = r->mp->dst;
    r->mp->dst = NULL;
    g_free(r->mp->src->name);
    r->mp->src->name = g_strdup("src");
    /* converges with a guest rewriting its pages */
    mig_set_speed(r->mp->src, 0, 300);
}

/*
 * A migration to a fresh paused destination through a proxy that does no
 * harm: completes, hashes equal, verify ok there; the destination is the
 * new source. Records the stream's size for the offsets to come.
 */
void retry(FaultRun *r)
{
    g_autofree char *sock = NULL;
    MigProxy *px;

    mig_set_speed(r->mp->src, 0, 300);

    r->mp->dst = dst_start(r, true, &sock);
    g_autofree char *psock = run_path(r, "p");
    px = mig_proxy_new(psock, sock);
    migrate_to(r->mp->src, psock);
    g_autofree char *st = mig_wait_end(r->mp->src, END_TIMEOUT);
    g_assert_cmpstr(st, ==, "completed");
    mig_check_destination(r->mp, true);
    r->span = mig_proxy_bytes(px);
    for (int i = 0; i < mig_proxy_conns(px); i++) {
        r->conn_span[i] = mig_proxy_conn_bytes(px, i);
    }
    mig_proxy_free(px);
    adopt_destination(r);
    r->retries++;
}

static bool dst_refused(GwProc *d)
{
    g_autofree char *err = gwt_stderr(d);

    return strstr(err, "refused the connection from") != NULL;
}

/*
 * A destination after a fault: its load failed (exit 1 with the reason) or
 * it refused a connection that never began and waits on (then it is
 * stopped here). Either way the guest never ran. Returns true when it
 * refused.
 */
bool check_destination_failed(GwProc *d, DstEnd want)
{
    int64_t end = gwt_now_ms() + 30000;
    int64_t refused_since = 0;

    while (!gwt_wait_exit(d, 100)) {
        if (want != DST_FAILED && dst_refused(d)) {
            /*
             * A refused multifd channel: the main connection's hangup ends
             * the load soon (exit). Only a destination still up a while
             * later is asked (asking one that exits meanwhile would fail).
             */
            refused_since = refused_since ? refused_since : gwt_now_ms();
            if (want == DST_REFUSED || gwt_now_ms() - refused_since > 2000) {
                g_autofree char *st = mig_status(d);
                g_autofree char *run = gwt_status(d);
                g_autofree char *log = gwt_serial(d);

                g_assert_cmpstr(st, ==, "setup");
                g_assert_cmpstr(run, ==, "inmigrate");
                g_assert_cmpstr(log, ==, "");
                gwt_kill(d);
                return true;
            }
        }
        if (gwt_now_ms() > end) {
            g_autofree char *st = mig_status(d);
            g_autofree char *run = gwt_status(d);
            g_error("destination still up after the fault: migration %s, "
                    "run state %s",
                    st, run);
        }
    }
    g_autofree char *err = gwt_stderr(d);
    g_autofree char *log = gwt_serial(d);
    if (!WIFEXITED(d->status) || WEXITSTATUS(d->status) == 0 ||
        !strstr(err, "load of migration failed")) {
        g_error("destination ended with status 0x%x:\n%s", d->status, err);
    }
    /* the guest prints as soon as it runs (verify checks itself) */
    g_assert_cmpstr(log, ==, "");
    return false;
}

/* The source after a fault: `status`, run state as before, RAM kept. */
void check_source_kept(FaultRun *r, const char *status, bool paused,
                       const char *hash)
{
    GwProc *src = r->mp->src;
    g_autoptr(JsonObject) q = mig_query(src);
    g_autofree char *run = gwt_status(src);

    g_assert_cmpstr(gwt_get_str(q, "status"), ==, status);
    if (!strcmp(status, "failed")) {
        g_assert_cmpstr(gwt_get_str(q, "error-desc"), !=, "");
    }
    g_assert_cmpstr(run, ==, paused ? "paused" : "running");
    if (paused) {
        g_autofree char *h = mig_ram_hash(src);
        g_assert_cmpstr(h, ==, hash);
        gwt_qmp_void(src, "{'execute': 'cont'}");
    }
}

/* Waits until query-migrate's status is one of `statuses` (|-separated). */
char *wait_status_in(GwProc *p, const char *statuses, int timeout_ms)
{
    g_auto(GStrv) want = g_strsplit(statuses, "|", -1);
    int64_t end = gwt_now_ms() + timeout_ms;

    for (;;) {
        char *st = mig_status(p);
        if (g_strv_contains((const char *const *)want, st)) {
            return st;
        }
        if (gwt_now_ms() > end) {
            if (g_getenv("GWT_GDB")) {
                g_autofree char *cmd = g_strdup_printf(
                    "gdb -p %d -batch -ex 'thread apply all bt' >&2",
                    (int)p->pid);
                g_assert(system(cmd) >= 0);
            }
            g_error("%s: migration %s, not %s after %d ms", p->name, st,
                    statuses, timeout_ms);
        }
        g_free(st);
        gwt_sleep_ms(5);
    }
}

void set_postcopy_bandwidth(GwProc *p, int64_t bw)
{
    gwt_qmp_void(p,
                 "{'execute': 'migrate-set-parameters', 'arguments': "
                 "{'max-postcopy-bandwidth': %" G_GINT64_FORMAT "}}",
                 bw);
}
