/*
 * TLS on a migration channel (migration/channel-tls.c). After
 * mig_channel_tls_start() the channel's readv/writev/peek/wait carry TLS
 * records; everything above is unchanged. A channel mig_channel_dup()
 * makes from it shares the session (one thread reads, another writes).
 */
#ifndef MIGRATION_CHANNEL_TLS_H
#define MIGRATION_CHANNEL_TLS_H

#include "crypto/tls.h"
#include "migration/channel.h"

/*
 * The thread that owns `c`: runs the handshake as `creds`' endpoint and
 * checks the peer (server certificate against `hostname` on a client;
 * client identity against authz object `authz_id` on a server). Takes
 * over the reference to `creds`. Gives up after `timeout_ms` (-1: never)
 * or when `c` is shut down. False with *errp; `c` is then still plain and
 * must be closed.
 */
bool mig_channel_tls_start(MigChannel *c, TlsCreds *creds, const char *hostname,
                           const char *authz_id, int timeout_ms, GError **errp);

#endif /* MIGRATION_CHANNEL_TLS_H */
