/*
 * Test credentials made at run time with GnuTLS (nothing committed that
 * expires): a CA, a server certificate for `localhost` and 127.0.0.1,
 * client certificates from that CA and from a CA the server does not
 * trust, PSK files. Each writes the files QEMU's tls-creds objects read.
 */
#ifndef TESTS_TLS_CERTS_H
#define TESTS_TLS_CERTS_H

typedef enum TlsTestClient {
    TLS_TEST_CLIENT_FRIENDLY, /* CA-signed client certificate */
    TLS_TEST_CLIENT_HOSTILE,  /* signed by another CA */
    TLS_TEST_CLIENT_ANON,     /* ca-cert.pem only, no client certificate */
} TlsTestClient;

/*
 * Makes `dir`/server (endpoint=server), `dir`/client, `dir`/hostile and
 * `dir`/anon (endpoint=client). The client certificate's DN is
 * TLS_TEST_CLIENT_DN.
 */
void tls_test_x509_setup(const char *dir);
/* `dir`/keys.psk with "qemu:KEY" (KEY from `seed`). */
void tls_test_psk_setup(const char *dir, int seed);
/* Removes what the setups made under `dir` (not `dir` itself). */
void tls_test_cleanup(const char *dir);

#define TLS_TEST_CLIENT_DN "O=Godwit Test,CN=client.test"

#endif /* TESTS_TLS_CERTS_H */
