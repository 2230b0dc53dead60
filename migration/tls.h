/*
 * Migration over TLS: what the tls-creds, tls-hostname and tls-authz
 * parameters do to each connection. Every connection of a migration (main,
 * multifd, postcopy-preempt, a recovery) comes through these two.
 */
#ifndef MIGRATION_TLS_H
#define MIGRATION_TLS_H

#include <stdbool.h>
#include <stdint.h>

#include "migration/channel.h"

/*
 * Source, migration thread: mig_connect(), then with tls-creds set the
 * TLS handshake as the client (checking the server against tls-hostname,
 * else the tcp URI's host).
 */
MigChannel *migration_tls_connect(const MigUri *uri, int cancel_fd,
                                  GError **errp);

/* Checks before connecting: the credentials exist, a host name is known. */
bool migration_tls_check_outgoing(const MigUri *uri, GError **errp);

/* What migration_incoming_check() wants of a connection's first bytes. */
typedef struct MigIncomingExpect {
    bool first_bytes; /* four bytes must come in time */
    /* ... and be one of these (big endian; 0: unused; none: any) */
    uint32_t magic[2];
} MigIncomingExpect;

/*
 * Destination, incoming thread: a MigAcceptCheck. With tls-creds set, the
 * TLS handshake as the server (and tls-authz); then, as `opaque` (a
 * MigIncomingExpect, or NULL) asks, the first bytes of the stream, in
 * time and one of the magics expected. All within the handshake timeout
 * (10 s; GODWIT_MIGRATION_HANDSHAKE_TIMEOUT_MS overrides, for tests).
 */
bool migration_incoming_check(MigChannel *c, void *opaque, GError **errp);

#endif /* MIGRATION_TLS_H */
