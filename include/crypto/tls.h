/*
 * TLS with GnuTLS: the credentials objects (tls-creds-x509, tls-creds-psk,
 * tls-creds-anon, as QEMU's) and a session over a non-blocking socket.
 * Nothing here knows migration: migration/channel-tls.c puts a session
 * under a MigChannel.
 *
 * Files, as QEMU reads them from the object's dir=:
 *   x509: ca-cert.pem; server-cert.pem + server-key.pem (server endpoint),
 *         client-cert.pem + client-key.pem (client endpoint, optional);
 *   psk:  keys.psk, lines "username:hexkey" (the client uses username=,
 *         default "qemu").
 */
#ifndef CRYPTO_TLS_H
#define CRYPTO_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "godwit/error.h"

typedef enum TlsEndpoint {
    TLS_ENDPOINT_CLIENT,
    TLS_ENDPOINT_SERVER,
} TlsEndpoint;

typedef struct TlsCreds TlsCreds;
typedef struct TlsSession TlsSession;

/* Registers tls-creds-x509, tls-creds-psk, tls-creds-anon. */
void tls_register_types(void);

/*
 * Any thread: a reference to credentials object `id` for `endpoint`.
 * Errors: no such object, not TLS credentials, or the other endpoint.
 */
TlsCreds *tls_creds_get(const char *id, TlsEndpoint endpoint, GError **errp);
void tls_creds_put(TlsCreds *creds);
/* x509 checks the server's name: a client needs one to check against. */
bool tls_creds_needs_hostname(const TlsCreds *creds);

/*
 * A session on connected socket `fd` (not owned; non-blocking). It takes
 * over the caller's reference to `creds` (put when it is freed, or at
 * once on failure). `hostname`: the client
 * checks the server certificate against it (x509). `authz_id`: the server
 * checks the peer's identity (x509 DN, PSK username) with that object.
 */
TlsSession *tls_session_new(TlsCreds *creds, int fd, const char *hostname,
                            const char *authz_id, GError **errp);
void tls_session_free(TlsSession *s);

/*
 * One step of the handshake: 1 done (and the peer checked), 0 call again
 * once the socket is ready for tls_session_wants_write() ? POLLOUT :
 * POLLIN, -1 failed with *errp.
 */
int tls_session_handshake(TlsSession *s, GError **errp);
bool tls_session_wants_write(TlsSession *s);

/*
 * Record I/O, non-blocking, like read/write: bytes moved, 0 at the end of
 * the stream (a peer that closed without a TLS goodbye too: the stream
 * above says whether it got everything), -EAGAIN, -EIO for a TLS error.
 * One thread may send while another receives. A send that returned
 * -EAGAIN must be repeated with the same first `len` bytes.
 */
ssize_t tls_session_recv(TlsSession *s, void *buf, size_t len);
ssize_t tls_session_send(TlsSession *s, const void *buf, size_t len);
/* Decrypted bytes waiting to be received (poll would not see them). */
size_t tls_session_pending(TlsSession *s);
/* Largest useful send (one record). */
size_t tls_session_record_size(TlsSession *s);

#endif /* CRYPTO_TLS_H */
