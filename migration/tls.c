/*
 * The migration parameters tls-creds, tls-hostname and tls-authz applied
 * to each connection: the source connects as the TLS client, the
 * destination accepts as the TLS server, and a connection that does not
 * complete its handshake in time is dropped.
 */
#include <errno.h>
#include <stdlib.h>

#include "godwit/cutils.h"
#include "migration/channel-tls.h"
#include "migration/options.h"
#include "tls.h"

#define MIGRATION_HANDSHAKE_TIMEOUT_MS 10000

static int migration_handshake_timeout_ms(void)
{
    const char *env = getenv("GODWIT_MIGRATION_HANDSHAKE_TIMEOUT_MS");
    uint64_t v;

    if (env && gw_parse_uint(env, &v, NULL) && v > 0 && v < G_MAXINT) {
        return (int)v;
    }
    return MIGRATION_HANDSHAKE_TIMEOUT_MS;
}

/* tls-hostname, else the host of a tcp URI; NULL when neither. */
static char *migration_tls_hostname(const MigUri *uri)
{
    g_autofree char *h = migrate_tls_hostname();

    if (*h) {
        return g_steal_pointer(&h);
    }
    return uri->kind == MIG_URI_TCP && uri->host && *uri->host
               ? g_strdup(uri->host)
               : NULL;
}

/* The client credentials and the name to check; false with *errp. */
static TlsCreds *migration_tls_client_creds(const MigUri *uri, char **hostname,
                                            GError **errp)
{
    g_autofree char *id = migrate_tls_creds();
    TlsCreds *creds;

    if (!*id) {
        return NULL;
    }
    creds = tls_creds_get(id, TLS_ENDPOINT_CLIENT, errp);
    if (!creds) {
        return NULL;
    }
    *hostname = migration_tls_hostname(uri);
    if (!*hostname && tls_creds_needs_hostname(creds)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "No hostname available for TLS (set tls-hostname: the "
                    "server certificate is checked against it)");
        tls_creds_put(creds);
        return NULL;
    }
    return creds;
}

bool migration_tls_check_outgoing(const MigUri *uri, GError **errp)
{
    g_autofree char *id = migrate_tls_creds();
    g_autofree char *hostname = NULL;
    TlsCreds *creds;

    if (!*id) {
        return true;
    }
    creds = migration_tls_client_creds(uri, &hostname, errp);
    tls_creds_put(creds);
    return creds != NULL;
}

MigChannel *migration_tls_connect(const MigUri *uri, int cancel_fd,
                                  GError **errp)
{
    g_autofree char *id = migrate_tls_creds();
    g_autofree char *hostname = NULL;
    TlsCreds *creds = NULL;
    MigChannel *c;

    if (*id) {
        creds = migration_tls_client_creds(uri, &hostname, errp);
        if (!creds) {
            return NULL;
        }
    }
    c = mig_connect(uri, cancel_fd, errp);
    if (!c || !creds) {
        tls_creds_put(creds);
        return c;
    }
    /* no deadline: the migration's cancel shuts the channel down */
    if (!mig_channel_tls_start(c, creds, hostname, NULL, -1, errp)) {
        mig_channel_close(c, NULL);
        return NULL;
    }
    return c;
}

/* The first bytes: there within `timeout_ms`, and one of the magics. */
static bool migration_incoming_check_head(MigChannel *c,
                                          const MigIncomingExpect *want,
                                          int timeout_ms, GError **errp)
{
    uint8_t head[4];
    uint32_t magic;
    int r = mig_channel_peek_timeout(c, head, sizeof(head), MAX(timeout_ms, 0));

    if (r == -ETIMEDOUT) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "the peer sent nothing within %d ms",
                    migration_handshake_timeout_ms());
        return false;
    }
    if (r <= 0) {
        return gw_error_errno(errp, r == 0 ? ENODATA : -r,
                              "the peer closed before saying what it is");
    }
    magic = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 |
            (uint32_t)head[2] << 8 | head[3];
    if ((!want->magic[0] && !want->magic[1]) ||
        (magic && (magic == want->magic[0] || magic == want->magic[1]))) {
        return true;
    }
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "not a migration stream (first bytes 0x%08x)", magic);
    return false;
}

bool migration_incoming_check(MigChannel *c, void *opaque, GError **errp)
{
    const MigIncomingExpect *want = opaque;
    g_autofree char *id = migrate_tls_creds();
    int timeout_ms = migration_handshake_timeout_ms();
    gint64 start = g_get_monotonic_time();

    if (*id) {
        g_autofree char *authz = migrate_tls_authz();
        TlsCreds *creds = tls_creds_get(id, TLS_ENDPOINT_SERVER, errp);

        if (!creds ||
            !mig_channel_tls_start(c, creds, NULL, authz, timeout_ms, errp)) {
            return false;
        }
    }
    if (!want || !want->first_bytes) {
        return true;
    }
    timeout_ms -= (int)((g_get_monotonic_time() - start) / 1000);
    return migration_incoming_check_head(c, want, timeout_ms, errp);
}
