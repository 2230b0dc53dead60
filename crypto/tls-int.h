/* What the credentials objects share with the sessions (crypto/ only). */
#ifndef CRYPTO_TLS_INT_H
#define CRYPTO_TLS_INT_H

#include <errno.h>
#include <unistd.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "crypto/tls.h"

typedef enum TlsCredsKind {
    TLS_CREDS_X509,
    TLS_CREDS_PSK,
    TLS_CREDS_ANON,
} TlsCredsKind;

/* Read-only once created: sessions in any thread share it. */
struct TlsCreds {
    TlsCredsKind kind;
    TlsEndpoint endpoint;
    bool verify_peer;
    char *dir;
    char *username;          /* psk client */
    char *priority;          /* NULL: the default for the kind */
    struct GwObject *object; /* the object whose state this is */
    gnutls_certificate_credentials_t x509;
    gnutls_psk_server_credentials_t psk_server;
    gnutls_psk_client_credentials_t psk_client;
    gnutls_anon_server_credentials_t anon_server;
    gnutls_anon_client_credentials_t anon_client;
    gnutls_dh_params_t dh; /* server: dir/dh-params.pem, when there */
};

#endif /* CRYPTO_TLS_INT_H */
