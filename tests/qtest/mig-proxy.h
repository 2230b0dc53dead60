/*
 * A fault-injection proxy for migration tests: sits between a source and
 * a destination on unix sockets, forwards both directions, and cuts the
 * connection (both sockets shut down) at a chosen byte offset of the
 * source-to-destination stream, or on demand.
 */
#ifndef MIG_PROXY_H
#define MIG_PROXY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct MigProxy MigProxy;

/* Listens on `listen_path`; on the one connection, connects `target`. */
MigProxy *mig_proxy_new(const char *listen_path, const char *target);
/* Bytes forwarded from the source so far. */
uint64_t mig_proxy_bytes(MigProxy *p);
/* Cut once the source has sent `offset` bytes in all (at once if past). */
void mig_proxy_cut_at(MigProxy *p, uint64_t offset);
/* Whether the connection was cut (or ended). */
bool mig_proxy_done(MigProxy *p);
/* Cuts if still up, joins the thread, frees. */
void mig_proxy_free(MigProxy *p);

#endif /* MIG_PROXY_H */
