/*
 * A fault-injection proxy for migration tests: sits between a source and
 * a destination on unix sockets, forwards both directions of every
 * connection made to it (main channel, multifd channels, post-copy's
 * preempt channel), and injects one fault at a chosen byte offset of the
 * source-to-destination data:
 *   cut    both sockets of the connection(s) shut down and closed: each
 *          peer sees its connection break;
 *   stall  forwarding stops in both directions, sockets stay open: each
 *          peer sees a peer that no longer reads nor writes (until the
 *          proxy is cut or freed).
 * The fault applies to all connections together (offset counted over all
 * of them) or to one (offset counted on that one alone; the others go on).
 *
 * Random offsets for fault loops come from mig_fault_rand(): seeded from
 * $GODWIT_FAULT_SEED when set, else at random; the seed is printed so
 * that any failing run can be reproduced.
 */
#ifndef MIG_PROXY_H
#define MIG_PROXY_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct MigProxy MigProxy;

/* MIG_PROXY_ALL: the fault applies to every connection together. */
#define MIG_PROXY_ALL (-1)
#define MIG_PROXY_MAX_CONNS 8

typedef enum MigFault {
    MIG_FAULT_CUT,
    MIG_FAULT_STALL,
} MigFault;

/* Listens on `listen_path`; each connection made there connects `target`. */
MigProxy *mig_proxy_new(const char *listen_path, const char *target);
/* Bytes forwarded from the source so far: all connections, or `conn`'s
 * (numbered in the order they were accepted, from 0). */
uint64_t mig_proxy_bytes(MigProxy *p);
uint64_t mig_proxy_conn_bytes(MigProxy *p, int conn);
/* Connections accepted so far. */
int mig_proxy_conns(MigProxy *p);
/* Cut once the source has sent `offset` bytes in all (at once if past). */
void mig_proxy_cut_at(MigProxy *p, uint64_t offset);
/*
 * Injects `fault` once connection `conn` (or MIG_PROXY_ALL) has carried
 * `offset` bytes from the source (at once if past). One fault per proxy:
 * a later call replaces an earlier one that has not fired yet.
 */
void mig_proxy_fault_at(MigProxy *p, MigFault fault, int conn, uint64_t offset);
/* Whether the fault fired (a cut, or the stall began). */
bool mig_proxy_fired(MigProxy *p);
/* Whether the connection was cut (or ended). */
bool mig_proxy_done(MigProxy *p);
/* Cuts if still up (stalled or not), joins the thread, frees. */
void mig_proxy_free(MigProxy *p);

/*
 * The random source of a fault test: seeded from $GODWIT_FAULT_SEED
 * (decimal) when set, else from g_random; prints the seed with the test
 * name as g_test_message and on stderr. Free with g_rand_free.
 */
GRand *mig_fault_rand(const char *test);
/*
 * A random offset in [1, max]: half of them log-uniform (many land in the
 * first bytes: header, configuration, section starts), half uniform.
 */
uint64_t mig_fault_offset(GRand *r, uint64_t max);

#endif /* MIG_PROXY_H */
