/*
 * The TLS credentials objects: tls-creds-x509, tls-creds-psk and
 * tls-creds-anon, one ops table each. Files are read when the object is
 * created, so a missing or bad file is an error of object-add, not of a
 * later migration.
 */
#include <string.h>

#include "crypto/tls-int.h"
#include "godwit/object.h"

static const char *const endpoint_names[] = {"client", "server", NULL};

static const char *const kind_types[] = {
    [TLS_CREDS_X509] = "tls-creds-x509",
    [TLS_CREDS_PSK] = "tls-creds-psk",
    [TLS_CREDS_ANON] = "tls-creds-anon",
};

static void tls_creds_free(void *state)
{
    TlsCreds *c = state;

    if (c->x509) {
        gnutls_certificate_free_credentials(c->x509);
    }
    if (c->psk_server) {
        gnutls_psk_free_server_credentials(c->psk_server);
    }
    if (c->psk_client) {
        gnutls_psk_free_client_credentials(c->psk_client);
    }
    if (c->anon_server) {
        gnutls_anon_free_server_credentials(c->anon_server);
    }
    if (c->anon_client) {
        gnutls_anon_free_client_credentials(c->anon_client);
    }
    if (c->dh) {
        gnutls_dh_params_deinit(c->dh);
    }
    g_free(c->dir);
    g_free(c->username);
    g_free(c->priority);
    g_free(c);
}

/* The properties every type has: dir, endpoint, verify-peer, priority. */
static TlsCreds *tls_creds_new_common(TlsCredsKind kind, GwProps *props,
                                      GError **errp)
{
    TlsCreds *c = g_new0(TlsCreds, 1);
    int endpoint;

    c->kind = kind;
    c->dir = gw_props_take_str(props, "dir");
    c->priority = gw_props_take_str(props, "priority");
    if (!gw_props_take_enum(props, "endpoint", endpoint_names,
                            TLS_ENDPOINT_CLIENT, &endpoint, errp) ||
        !gw_props_take_bool(props, "verify-peer", kind != TLS_CREDS_ANON,
                            &c->verify_peer, errp)) {
        tls_creds_free(c);
        return NULL;
    }
    c->endpoint = (TlsEndpoint)endpoint;
    return c;
}

/* DIR/NAME, which must exist when `required`; NULL when absent. */
static char *tls_creds_file(const TlsCreds *c, const char *name, bool required,
                            GError **errp)
{
    char *path = g_build_filename(c->dir, name, NULL);

    if (access(path, R_OK) == 0) {
        return path;
    }
    if (required) {
        gw_error_errno(errp, errno, "Unable to access credentials %s", path);
    }
    g_free(path);
    return NULL;
}

static bool tls_gnutls_fail(GError **errp, int ret, const char *what,
                            const char *path)
{
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "%s %s: %s", what, path,
                gnutls_strerror(ret));
    return false;
}

static bool tls_creds_x509_load(TlsCreds *c, GError **errp)
{
    bool server = c->endpoint == TLS_ENDPOINT_SERVER;
    g_autofree char *ca = tls_creds_file(c, "ca-cert.pem", true, errp);
    g_autofree char *crl = NULL;
    g_autofree char *cert = NULL;
    g_autofree char *key = NULL;
    int ret;

    if (!ca) {
        return false;
    }
    crl = tls_creds_file(c, "ca-crl.pem", false, NULL);
    cert = tls_creds_file(c, server ? "server-cert.pem" : "client-cert.pem",
                          server, errp);
    key = tls_creds_file(c, server ? "server-key.pem" : "client-key.pem",
                         server, errp);
    if (server && (!cert || !key)) {
        return false;
    }
    if (!cert != !key) {
        g_clear_error(errp);
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "%s: client-cert.pem and client-key.pem go together",
                    c->dir);
        return false;
    }
    gnutls_certificate_allocate_credentials(&c->x509);
    ret = gnutls_certificate_set_x509_trust_file(c->x509, ca,
                                                 GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        return tls_gnutls_fail(errp, ret, "Cannot load CA certificate", ca);
    }
    if (cert) {
        ret = gnutls_certificate_set_x509_key_file(c->x509, cert, key,
                                                   GNUTLS_X509_FMT_PEM);
        if (ret < 0) {
            return tls_gnutls_fail(errp, ret, "Cannot load certificate", cert);
        }
    }
    if (crl) {
        ret = gnutls_certificate_set_x509_crl_file(c->x509, crl,
                                                   GNUTLS_X509_FMT_PEM);
        if (ret < 0) {
            return tls_gnutls_fail(errp, ret, "Cannot load CRL", crl);
        }
    }
    return true;
}

/* The client's key: the line "USERNAME:HEXKEY" of keys.psk. */
static bool tls_creds_psk_client_key(TlsCreds *c, const char *path,
                                     GError **errp)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    size_t ulen = strlen(c->username);

    if (!g_file_get_contents(path, &text, NULL, errp)) {
        return false;
    }
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        if (!strncmp(lines[i], c->username, ulen) && lines[i][ulen] == ':') {
            gnutls_datum_t key = {
                .data = (unsigned char *)g_strchomp(lines[i] + ulen + 1),
                .size = (unsigned)strlen(lines[i] + ulen + 1),
            };
            int ret;

            gnutls_psk_allocate_client_credentials(&c->psk_client);
            ret = gnutls_psk_set_client_credentials(c->psk_client, c->username,
                                                    &key, GNUTLS_PSK_KEY_HEX);
            if (ret < 0) {
                return tls_gnutls_fail(errp, ret, "Cannot use the PSK of",
                                       path);
            }
            return true;
        }
    }
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "Cannot find PSK for username '%s' in %s", c->username, path);
    return false;
}

static bool tls_creds_psk_load(TlsCreds *c, GError **errp)
{
    g_autofree char *path = tls_creds_file(c, "keys.psk", true, errp);
    int ret;

    if (!path) {
        return false;
    }
    if (c->endpoint == TLS_ENDPOINT_CLIENT) {
        return tls_creds_psk_client_key(c, path, errp);
    }
    gnutls_psk_allocate_server_credentials(&c->psk_server);
    ret = gnutls_psk_set_server_credentials_file(c->psk_server, path);
    if (ret < 0) {
        return tls_gnutls_fail(errp, ret, "Cannot load PSK file", path);
    }
    return true;
}

/*
 * A server's DIR/dh-params.pem (PKCS#3), as QEMU reads it: only DHE key
 * exchanges use it (TLS 1.3 and ECDHE do not); without it GnuTLS picks
 * known safe groups itself.
 */
static bool tls_creds_dh_load(TlsCreds *c, GError **errp)
{
    g_autofree char *path = NULL;
    g_autofree char *text = NULL;
    gnutls_datum_t pem;
    gsize len;
    int ret;

    if (c->endpoint != TLS_ENDPOINT_SERVER || !c->dir) {
        return true;
    }
    path = tls_creds_file(c, "dh-params.pem", false, NULL);
    if (!path) {
        return true;
    }
    if (!g_file_get_contents(path, &text, &len, errp)) {
        return false;
    }
    pem.data = (unsigned char *)text;
    pem.size = (unsigned)len;
    gnutls_dh_params_init(&c->dh);
    ret = gnutls_dh_params_import_pkcs3(c->dh, &pem, GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        return tls_gnutls_fail(errp, ret, "Cannot load DH parameters", path);
    }
    if (c->x509) {
        gnutls_certificate_set_dh_params(c->x509, c->dh);
    } else if (c->psk_server) {
        gnutls_psk_set_server_dh_params(c->psk_server, c->dh);
    } else if (c->anon_server) {
        gnutls_anon_set_server_dh_params(c->anon_server, c->dh);
    }
    return true;
}

/*
 * verify-peer and dir mean something for every kind, or are refused:
 * a PSK peer is always verified (knowing the key is the proof), an
 * anonymous one never can be, and an anonymous client reads no file.
 */
static bool tls_creds_check_kind(const TlsCreds *c, GError **errp)
{
    if (c->kind == TLS_CREDS_PSK && !c->verify_peer) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "verify-peer=off is not possible with a pre-shared key: "
                    "the key always authenticates the peer");
        return false;
    }
    if (c->kind != TLS_CREDS_ANON) {
        return true;
    }
    if (c->verify_peer) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "verify-peer=on is not possible with anonymous "
                    "credentials: there is no identity to verify");
        return false;
    }
    if (c->dir && c->endpoint == TLS_ENDPOINT_CLIENT) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "property 'dir' is read by a server only (for "
                    "dh-params.pem); an anonymous client has no files");
        return false;
    }
    return true;
}

static void *tls_creds_create(TlsCredsKind kind, const char *id, GwProps *props,
                              GError **errp)
{
    TlsCreds *c = tls_creds_new_common(kind, props, errp);
    bool ok = false;

    if (!c) {
        return NULL;
    }
    if (kind == TLS_CREDS_PSK) {
        c->username = gw_props_take_str(props, "username");
    }
    if (c->username && c->endpoint == TLS_ENDPOINT_SERVER) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "property 'username' is for the client endpoint (a "
                    "server takes every user of keys.psk)");
        ok = false;
    } else if (kind != TLS_CREDS_ANON && !c->dir) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "property 'dir' is missing");
    } else {
        ok = tls_creds_check_kind(c, errp);
    }
    if (!ok) {
        g_prefix_error(errp, "%s '%s': ", kind_types[kind], id);
        tls_creds_free(c);
        return NULL;
    }
    if (kind == TLS_CREDS_PSK && !c->username) {
        c->username = g_strdup("qemu");
    }
    switch (kind) {
    case TLS_CREDS_X509:
        ok = tls_creds_x509_load(c, errp);
        break;
    case TLS_CREDS_PSK:
        ok = tls_creds_psk_load(c, errp);
        break;
    case TLS_CREDS_ANON:
        ok = true;
        if (c->endpoint == TLS_ENDPOINT_SERVER) {
            gnutls_anon_allocate_server_credentials(&c->anon_server);
        } else {
            gnutls_anon_allocate_client_credentials(&c->anon_client);
        }
        break;
    }
    ok = ok && tls_creds_dh_load(c, errp);
    if (!ok) {
        g_prefix_error(errp, "%s '%s': ", kind_types[kind], id);
        tls_creds_free(c);
        return NULL;
    }
    return c;
}

static void *tls_creds_x509_create(const char *id, GwProps *p, GError **errp)
{
    return tls_creds_create(TLS_CREDS_X509, id, p, errp);
}

static void *tls_creds_psk_create(const char *id, GwProps *p, GError **errp)
{
    return tls_creds_create(TLS_CREDS_PSK, id, p, errp);
}

static void *tls_creds_anon_create(const char *id, GwProps *p, GError **errp)
{
    return tls_creds_create(TLS_CREDS_ANON, id, p, errp);
}

static const char *const tls_creds_x509_props[] = {
    "dir", "endpoint", "verify-peer", "priority", NULL,
};

static const char *const tls_creds_psk_props[] = {
    "dir", "endpoint", "verify-peer", "priority", "username", NULL,
};

static const char *const tls_creds_anon_props[] = {
    "dir", "endpoint", "verify-peer", "priority", NULL,
};

static const GwObjectOps tls_creds_x509_ops = {
    .type = "tls-creds-x509",
    .props = tls_creds_x509_props,
    .create = tls_creds_x509_create,
    .free = tls_creds_free,
};

static const GwObjectOps tls_creds_psk_ops = {
    .type = "tls-creds-psk",
    .props = tls_creds_psk_props,
    .create = tls_creds_psk_create,
    .free = tls_creds_free,
};

static const GwObjectOps tls_creds_anon_ops = {
    .type = "tls-creds-anon",
    .props = tls_creds_anon_props,
    .create = tls_creds_anon_create,
    .free = tls_creds_free,
};

void tls_register_types(void)
{
    object_type_register(&tls_creds_x509_ops);
    object_type_register(&tls_creds_psk_ops);
    object_type_register(&tls_creds_anon_ops);
}

TlsCreds *tls_creds_get(const char *id, TlsEndpoint endpoint, GError **errp)
{
    GwObject *o = object_ref_by_id(id);
    TlsCreds *c;

    if (!o) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "No TLS credentials with id '%s'", id);
        return NULL;
    }
    if (!g_str_has_prefix(object_type_name(o), "tls-creds-")) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Object with id '%s' is not TLS credentials", id);
        object_unref(o);
        return NULL;
    }
    c = object_state(o);
    if (c->endpoint != endpoint) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Expected TLS credentials for a %s endpoint (object "
                    "'%s' has endpoint=%s)",
                    endpoint_names[endpoint], id, endpoint_names[c->endpoint]);
        object_unref(o);
        return NULL;
    }
    /* the same value on every lookup: how tls_creds_put() finds it */
    g_atomic_pointer_set(&c->object, o);
    return c;
}

void tls_creds_put(TlsCreds *creds)
{
    if (creds) {
        object_unref(g_atomic_pointer_get(&creds->object));
    }
}

bool tls_creds_needs_hostname(const TlsCreds *creds)
{
    return creds->kind == TLS_CREDS_X509 && creds->verify_peer;
}
