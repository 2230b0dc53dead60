/*
 * Helpers of test-migration-channels.c: URI shortcuts, patterned data sent
 * and checked through MigChannels, and whole transfers (a writer thread
 * that connects, the calling thread that accepts and reads). Functions
 * that fail the test (cmocka) are only called from the main thread; the
 * writer thread reports an error string instead.
 */
#ifndef TESTS_MIGRATION_CHANNEL_XFER_H
#define TESTS_MIGRATION_CHANNEL_XFER_H

#include <glib.h>

#include "migration/channel.h"

#define XFER_LEN (8u << 20) /* bytes per transfer */

/* XFER_LEN random bytes, made by xfer_pattern_init(). */
extern guint8 *xfer_pattern;
void xfer_pattern_init(void);
void xfer_pattern_free(void);

/* mig_uri_parse + mig_connect / mig_listen. */
MigChannel *connect_uri(const char *uri, GError **errp);
MigListener *listen_uri(const char *uri, GError **errp);
/* listen_uri that fails the test on error. */
MigListener *listen_ok(const char *uri);

/*
 * Write xfer_pattern[0, len) with writev in random pieces / read to end of
 * stream with readv in random pieces and check it. NULL or an error.
 */
char *send_pattern(MigChannel *c, size_t len, guint32 seed);
char *recv_pattern(MigChannel *c, size_t len, guint32 seed);
/* mig_channel_close; NULL or its error. */
char *close_channel(MigChannel *c);

/* A thread connects to `to` and writes; this thread accepts from `l`,
 * closes it, reads and checks. */
void xfer_listener(MigListener *l, const char *to);
/* Listens on `listen`; connects to `to` (NULL: the reported address). */
void xfer(const char *listen, const char *to);
/* One side alone: exec out and file out / exec in and file in. */
void send_only(const char *uri);
void recv_only(const char *uri);
/* `path` holds `head` bytes of `head_byte`, then the pattern. */
void check_file(const char *path, size_t head, char head_byte);
/* A tcp pair over 127.0.0.1: `out` connected, `in` accepted. */
void tcp_pair(MigChannel **out, MigChannel **in);

#endif /* TESTS_MIGRATION_CHANNEL_XFER_H */
