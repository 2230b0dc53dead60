/*
 * A GnuTLS session over a non-blocking socket: the handshake in steps,
 * the checks of the peer that follow it (certificate, host name, authz),
 * and record I/O. The caller owns the socket and does the waiting.
 */
#include <string.h>

#include "crypto/authz.h"
#include "crypto/tls-int.h"
#include "godwit/object.h"

struct TlsSession {
    /* Set at creation. */
    TlsCreds *creds; /* the reference tls_session_new() took over */
    char *hostname;  /* client: the name the server certificate must have */
    char *authz_id;  /* server: the authz object, or NULL */
    gnutls_session_t session;
};

static const char *tls_priority(const TlsCreds *c)
{
    if (c->priority) {
        return c->priority;
    }
    /*
     * QEMU's defaults, except that ChaCha20 goes last: with a PSK GnuTLS
     * picked it over AES-GCM, and without vector code for it here it
     * moved a migration at a seventh of AES-GCM's speed (scripts/bench
     * tls). Only the preference changes: a peer that offers ChaCha20
     * alone still gets it.
     */
    switch (c->kind) {
    case TLS_CREDS_PSK:
        return "NORMAL:-CHACHA20-POLY1305:+CHACHA20-POLY1305:+ECDHE-PSK:"
               "+DHE-PSK:+PSK";
    case TLS_CREDS_ANON:
        return "NORMAL:-CHACHA20-POLY1305:+CHACHA20-POLY1305:+ANON-ECDH:"
               "+ANON-DH";
    case TLS_CREDS_X509:
        break;
    }
    return "NORMAL";
}

static int tls_set_credentials(TlsSession *s)
{
    const TlsCreds *c = s->creds;

    switch (c->kind) {
    case TLS_CREDS_X509:
        if (c->endpoint == TLS_ENDPOINT_SERVER && c->verify_peer) {
            /* asked, not required: the check after says what is missing */
            gnutls_certificate_server_set_request(s->session,
                                                  GNUTLS_CERT_REQUEST);
        }
        return gnutls_credentials_set(s->session, GNUTLS_CRD_CERTIFICATE,
                                      c->x509);
    case TLS_CREDS_PSK:
        return gnutls_credentials_set(s->session, GNUTLS_CRD_PSK,
                                      c->endpoint == TLS_ENDPOINT_SERVER
                                          ? (void *)c->psk_server
                                          : (void *)c->psk_client);
    case TLS_CREDS_ANON:
        return gnutls_credentials_set(s->session, GNUTLS_CRD_ANON,
                                      c->endpoint == TLS_ENDPOINT_SERVER
                                          ? (void *)c->anon_server
                                          : (void *)c->anon_client);
    }
    return GNUTLS_E_INTERNAL_ERROR;
}

TlsSession *tls_session_new(TlsCreds *creds, int fd, const char *hostname,
                            const char *authz_id, GError **errp)
{
    bool server = creds->endpoint == TLS_ENDPOINT_SERVER;
    TlsSession *s = g_new0(TlsSession, 1);
    const char *where = NULL;
    int ret;

    s->creds = creds;
    s->hostname = g_strdup(hostname);
    s->authz_id = authz_id && *authz_id ? g_strdup(authz_id) : NULL;
    ret = gnutls_init(&s->session, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                                       GNUTLS_NONBLOCK);
    if (ret < 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Cannot create TLS session: %s", gnutls_strerror(ret));
        s->session = NULL;
        tls_session_free(s);
        return NULL;
    }
    ret = gnutls_priority_set_direct(s->session, tls_priority(creds), &where);
    if (ret >= 0) {
        ret = tls_set_credentials(s);
    }
    if (ret < 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Cannot set TLS session parameters%s%s: %s",
                    where ? " at " : "", where ? where : "",
                    gnutls_strerror(ret));
        tls_session_free(s);
        return NULL;
    }
    gnutls_transport_set_int(s->session, fd);
    return s;
}

void tls_session_free(TlsSession *s)
{
    if (!s) {
        return;
    }
    if (s->session) {
        gnutls_deinit(s->session);
    }
    tls_creds_put(s->creds);
    g_free(s->hostname);
    g_free(s->authz_id);
    g_free(s);
}

/* The peer's certificate, or NULL (*errp says why when one was needed). */
static gnutls_x509_crt_t tls_peer_cert(TlsSession *s, GError **errp)
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s->session, &n);
    gnutls_x509_crt_t crt;

    if (!certs || n == 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "No certificate was found");
        return NULL;
    }
    gnutls_x509_crt_init(&crt);
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "The peer certificate cannot be parsed");
        gnutls_x509_crt_deinit(crt);
        return NULL;
    }
    return crt;
}

static bool tls_verify_status(unsigned status, GError **errp)
{
    const char *why = NULL;

    if (!status) {
        return true;
    }
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
        why = "The certificate hasn't got a known issuer";
    } else if (status & GNUTLS_CERT_REVOKED) {
        why = "The certificate has been revoked";
    } else if (status & GNUTLS_CERT_EXPIRED) {
        why = "The certificate has expired";
    } else if (status & GNUTLS_CERT_NOT_ACTIVATED) {
        why = "The certificate is not yet activated";
    } else {
        why = "The certificate is not trusted";
    }
    g_set_error_literal(errp, GW_ERROR, GW_ERROR_GENERIC, why);
    return false;
}

/* x509: trust, host name (client), the DN for authz (server). */
static bool tls_check_x509(TlsSession *s, char **identity, GError **errp)
{
    bool server = s->creds->endpoint == TLS_ENDPOINT_SERVER;
    gnutls_x509_crt_t crt;
    unsigned status = 0;
    char dn[1024];
    size_t dnlen = sizeof(dn);
    bool ok = true;

    if (!s->creds->verify_peer && !s->authz_id) {
        return true;
    }
    crt = tls_peer_cert(s, errp);
    if (!crt) {
        return false;
    }
    if (s->creds->verify_peer) {
        if (gnutls_certificate_verify_peers2(s->session, &status) < 0) {
            status = GNUTLS_CERT_INVALID;
        }
        ok = tls_verify_status(status, errp);
    }
    if (ok && !server && s->hostname &&
        !gnutls_x509_crt_check_hostname(crt, s->hostname)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Certificate does not match the hostname %s", s->hostname);
        ok = false;
    }
    if (ok && server && gnutls_x509_crt_get_dn(crt, dn, &dnlen) == 0) {
        *identity = g_strdup(dn);
    }
    gnutls_x509_crt_deinit(crt);
    return ok;
}

/* After the handshake: is this the peer we accept? */
static bool tls_session_check_peer(TlsSession *s, GError **errp)
{
    g_autofree char *identity = NULL;

    if (s->creds->kind == TLS_CREDS_X509 &&
        !tls_check_x509(s, &identity, errp)) {
        return false;
    }
    if (s->creds->kind == TLS_CREDS_PSK &&
        s->creds->endpoint == TLS_ENDPOINT_SERVER) {
        identity = g_strdup(gnutls_psk_server_get_username(s->session));
    }
    if (s->authz_id && s->creds->endpoint == TLS_ENDPOINT_SERVER) {
        return authz_check_by_id(s->authz_id, identity, errp);
    }
    return true;
}

int tls_session_handshake(TlsSession *s, GError **errp)
{
    int ret = gnutls_handshake(s->session);

    if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED ||
        (ret < 0 && !gnutls_error_is_fatal(ret))) {
        return 0;
    }
    if (ret < 0) {
        const char *alert = NULL;

        if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED) {
            alert = gnutls_alert_get_name(gnutls_alert_get(s->session));
        }
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "TLS handshake failed: %s%s%s", gnutls_strerror(ret),
                    alert ? ": " : "", alert ? alert : "");
        return -1;
    }
    if (!tls_session_check_peer(s, errp)) {
        /* tell the peer why it goes, rather than just closing on it */
        gnutls_alert_send(s->session, GNUTLS_AL_FATAL, GNUTLS_A_ACCESS_DENIED);
        return -1;
    }
    return 1;
}

bool tls_session_wants_write(TlsSession *s)
{
    return gnutls_record_get_direction(s->session) == 1;
}

/* GnuTLS's error as an errno that qemu-file's messages can word. */
static ssize_t tls_errno(TlsSession *s, ssize_t ret, bool sending)
{
    if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
        return -EAGAIN;
    }
    if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED) {
        gnutls_alert_description_t a = gnutls_alert_get(s->session);
        /* the peer refused us: our certificate, identity or key */
        return a == GNUTLS_A_ACCESS_DENIED || a == GNUTLS_A_BAD_CERTIFICATE
                   ? -EACCES
                   : -EPROTO;
    }
    if (ret == GNUTLS_E_PREMATURE_TERMINATION) {
        /*
         * Closed without a TLS goodbye. Reading, that is the end of the
         * stream (the stream above says whether it got everything);
         * writing, the peer is gone.
         */
        return sending ? -ECONNRESET : 0;
    }
    if (ret == GNUTLS_E_PUSH_ERROR || ret == GNUTLS_E_PULL_ERROR ||
        ret == GNUTLS_E_INVALID_SESSION) {
        /* the socket failed, now or on an earlier call */
        return -ECONNRESET;
    }
    return -EIO;
}

ssize_t tls_session_recv(TlsSession *s, void *buf, size_t len)
{
    ssize_t ret = gnutls_record_recv(s->session, buf, len);

    return ret >= 0 ? ret : tls_errno(s, ret, false);
}

ssize_t tls_session_send(TlsSession *s, const void *buf, size_t len)
{
    ssize_t ret = gnutls_record_send(s->session, buf, len);

    return ret >= 0 ? ret : tls_errno(s, ret, true);
}

size_t tls_session_pending(TlsSession *s)
{
    return gnutls_record_check_pending(s->session);
}

size_t tls_session_record_size(TlsSession *s)
{
    return gnutls_record_get_max_size(s->session);
}
