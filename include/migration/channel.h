/*
 * Migration transports: an ops table per URI scheme (tcp, unix, exec,
 * file, fd), one file each in migration/channel-*.c.
 *
 * A MigChannel is a byte stream the migration code reads or writes with
 * readv/writev. Every channel is backed by a non-blocking file descriptor;
 * blocking is done by the callers (migration/qemu-file.c) with poll() on
 * the fd and the channel's cancel eventfd, so that migrate_cancel (or a
 * destination quitting) can interrupt a migration thread blocked in I/O
 * from any thread with mig_channel_shutdown().
 */
#ifndef MIGRATION_CHANNEL_H
#define MIGRATION_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "godwit/error.h"

typedef enum MigUriKind {
    MIG_URI_TCP,
    MIG_URI_UNIX,
    MIG_URI_EXEC,
    MIG_URI_FILE,
    MIG_URI_FD,
    MIG_URI__MAX,
} MigUriKind;

/* A parsed migration URI. */
typedef struct MigUri {
    MigUriKind kind;
    char *host;      /* tcp: host name or address, brackets removed */
    char *port;      /* tcp: service, "0" allowed on the incoming side */
    char *path;      /* unix, file */
    char *command;   /* exec: passed to /bin/sh -c */
    uint64_t offset; /* file: ",offset=N" (bytes) */
    char *fdname;    /* fd: a number or a name registered with getfd */
} MigUri;

/*
 * Parses tcp:HOST:PORT (IPv6 as tcp:[::1]:PORT), unix:PATH, exec:CMD,
 * file:PATH[,offset=N], fd:N|NAME. Errors say what is wrong with the URI.
 */
bool mig_uri_parse(const char *uri, MigUri *out, GError **errp);
void mig_uri_clear(MigUri *uri);

typedef struct MigChannel MigChannel;
typedef struct MigListener MigListener;

typedef struct MigChannelOps {
    const char *scheme;
    /*
     * Outgoing side (migration thread): connects / opens / spawns. The
     * returned channel is open for writing (and reading, for sockets:
     * the return path).
     */
    MigChannel *(*connect)(const MigUri *uri, int cancel_fd, GError **errp);
    /*
     * Incoming side (main loop): starts listening (tcp, unix) or prepares
     * (exec spawns, file opens, fd takes the fd). Must not block.
     */
    MigListener *(*listen)(const MigUri *uri, GError **errp);
    /*
     * Incoming thread: waits for the one connection (sockets) and returns
     * it, closing the listening socket; for exec/file/fd returns the
     * prepared stream. Blocks until then or until mig_listener_shutdown().
     */
    MigChannel *(*accept)(MigListener *l, GError **errp);
    /*
     * The address actually bound (tcp with port 0 reports the real port),
     * e.g. "tcp:127.0.0.1:40123"; NULL when not a socket. New string.
     */
    char *(*listener_address)(MigListener *l);
    void (*listener_close)(MigListener *l);
    /*
     * Ends the stream: closes the fd, reaps an exec child (an exec command
     * that failed makes close return false with *errp set).
     */
    bool (*close)(MigChannel *c, GError **errp);
} MigChannelOps;

/* Registration (explicit, from migration_channels_init()). */
void mig_channel_register(MigUriKind kind, const MigChannelOps *ops);
void migration_channels_init(void);
const MigChannelOps *mig_channel_ops(MigUriKind kind);

/*
 * Generic channel helpers, the same for every transport.
 *
 * readv/writev: non-blocking; return bytes moved, 0 for end of stream (read),
 * -EAGAIN when nothing can move now, or another -errno (-ECANCELED once the
 * channel is shut down; -EPIPE when the reader went away). They may move
 * less than asked (partial I/O; more than IOV_MAX elements are cut there).
 * mig_channel_wait() blocks until the fd is ready for `events`
 * (POLLIN/POLLOUT; error and hang-up count as ready, the next I/O reports
 * them) or the channel is shut down (returns false then) or `timeout_ms`
 * passes (-1 = forever; false too: tell the two apart with
 * mig_channel_is_shutdown()).
 *
 * One thread at a time does I/O on a channel and closes it; shutdown may
 * come from any other thread, but the caller must make sure it is not
 * concurrent with (or after) mig_channel_close(), which frees the channel.
 */
ssize_t mig_channel_readv(MigChannel *c, const struct iovec *iov, int iovcnt);
ssize_t mig_channel_writev(MigChannel *c, const struct iovec *iov, int iovcnt);
bool mig_channel_wait(MigChannel *c, short events, int timeout_ms);

/*
 * Blocking forms (they wait with mig_channel_wait, so a shutdown ends
 * them): move all of iov[0..iovcnt), which they modify. Return 1 when
 * done; readv_all returns 0 when the stream ended before its first byte
 * and -ENODATA when it ended part-way; otherwise -errno (-ECANCELED once
 * the channel is shut down).
 */
int mig_channel_writev_all(MigChannel *c, struct iovec *iov, int iovcnt);
int mig_channel_readv_all(MigChannel *c, struct iovec *iov, int iovcnt);
/*
 * Asynchronous output and read-ahead: file: channels on a regular file,
 * through io_uring (unless it is unavailable or GODWIT_IO_URING=off; see
 * docs/devel/migration-channels.md). QEMUFile uses them when the channel
 * has them; readv/writev above keep working on such a channel too.
 *
 * A write batch is memory the channel owns: QEMUFile takes an empty one,
 * copies small fields into buf, points iovecs at buf and at guest pages,
 * and submits it. From then on the channel owns the batch and reads what
 * its iovecs point to whenever the kernel gets to it, until the write has
 * completed: the pages must stay mapped (guest RAM does), and nothing may
 * reuse the batch. mig_channel_drain() waits for every submitted batch;
 * close drains too (after cancelling, if the channel was shut down).
 */
typedef struct MigWriteBatch {
    uint8_t *buf; /* buf_cap bytes for copied fields */
    size_t buf_cap;
    struct iovec *iov; /* iov_cap entries */
    int iov_cap;
} MigWriteBatch;

/* Whether writes go in batches (mig_channel_batch_get may be used). */
bool mig_channel_async_writes(MigChannel *c);
/* An empty batch; waits while every batch is being written. */
MigWriteBatch *mig_channel_batch_get(MigChannel *c);
/*
 * Writes b->iov[0..iovcnt) next in the stream, asynchronously. False with
 * *errp (file name and error) once the stream has failed or was shut down;
 * the batch belongs to the channel again either way.
 */
bool mig_channel_batch_submit(MigChannel *c, MigWriteBatch *b, int iovcnt,
                              GError **errp);
/* Waits until everything submitted is written. Any channel. */
bool mig_channel_drain(MigChannel *c, GError **errp);
/* Whether the channel reads ahead (mig_channel_read_borrow may be used). */
bool mig_channel_reads_ahead(MigChannel *c);
/*
 * The next chunk of the stream, lent until the next call or close: > 0
 * bytes at *data, 0 at end of stream, -errno with *errp. Once used, use
 * it for all reads (readv sees only what follows the lent chunk).
 */
ssize_t mig_channel_read_borrow(MigChannel *c, const uint8_t **data,
                                GError **errp);

/*
 * Sockets: waits until the first `len` bytes can be read and copies them
 * to buf without consuming them. 1 when there, 0 at end of stream,
 * -ENODATA when the peer closed after fewer bytes, -errno otherwise.
 */
int mig_channel_peek(MigChannel *c, void *buf, size_t len);
/* The same, giving up with -ETIMEDOUT after `timeout_ms` (-1: never). */
int mig_channel_peek_timeout(MigChannel *c, void *buf, size_t len,
                             int timeout_ms);

/*
 * Any thread: makes every wait on this channel return false and every
 * readv/writev fail with -ECANCELED, now and later. It does not touch the
 * fd (the peer learns when the channel is closed). An exec channel shut
 * down before it is closed has its command killed instead of awaited.
 */
void mig_channel_shutdown(MigChannel *c);
bool mig_channel_is_shutdown(MigChannel *c);
int mig_channel_fd(MigChannel *c);
/* Whether the channel's fd is a socket (tcp, unix, fd: of a socket). */
bool mig_channel_is_socket(MigChannel *c);
/*
 * Closes through the transport's ops and frees, whether it fails or not.
 * Fails only for exec (the command's exit status). NULL is a no-op.
 */
bool mig_channel_close(MigChannel *c, GError **errp);

/* Listener helpers. */
/*
 * Sockets: a second channel on a duplicate of `c`'s fd, for the other
 * direction (the post-copy return path): one thread writes `c` while
 * another reads the copy. Each is shut down and closed on its own; the
 * connection ends when both are closed. Fails for other transports.
 */
MigChannel *mig_channel_dup(MigChannel *c, GError **errp);
/*
 * A channel over an anonymous memory file: what is written stays there
 * and, after mig_channel_rewind(), reads back (the post-copy package).
 */
MigChannel *mig_channel_new_memory(GError **errp);
bool mig_channel_rewind(MigChannel *c, GError **errp);

MigListener *mig_listen(const MigUri *uri, GError **errp);
MigChannel *mig_accept(MigListener *l, GError **errp);
/*
 * Vets an accepted connection before the migration takes it (the TLS
 * handshake, its first bytes in time). Incoming thread; may block, within
 * a timeout of its own. False with *errp: the connection is refused.
 */
typedef bool (*MigAcceptCheck)(MigChannel *c, void *opaque, GError **errp);
/*
 * mig_accept() for connections that must pass `check` (NULL: any). A
 * socket connection that fails it is closed and logged on stderr with its
 * peer's address, and does not count against the connections the listener
 * takes: accept goes on waiting for the source. For exec, file and fd the
 * failure is the result.
 */
MigChannel *mig_accept_checked(MigListener *l, MigAcceptCheck check,
                               void *opaque, GError **errp);
/* "127.0.0.1:40123", "[::1]:40123", "unix socket peer pid N". New. */
char *mig_channel_peer_address(MigChannel *c);
char *mig_listener_address(MigListener *l);
void mig_listener_shutdown(MigListener *l); /* any thread: accept fails */
/* Sockets: whether a connection is waiting (or comes within timeout_ms). */
bool mig_listener_wait(MigListener *l, int timeout_ms);
/*
 * A socket listener accepts exactly one connection, then closes; multifd
 * needs `n` (main channel + its channels). Before the first accept. False
 * for transports that are not sockets.
 */
bool mig_listener_set_connections(MigListener *l, unsigned n, GError **errp);
/*
 * Sockets: makes accept fail once `c` (an accepted connection, e.g. the
 * main channel of a multifd migration) hangs up, rather than waiting for
 * connections that will never come. NULL stops watching.
 */
void mig_listener_watch_hangup(MigListener *l, MigChannel *c);
/* Closes and frees; an exec/file/fd stream never accepted is closed too. */
void mig_listener_close(MigListener *l);
/*
 * Connects. `cancel_fd` (an eventfd, or -1) lets another thread abandon a
 * connect that hangs (a peer that never answers): once it is readable, the
 * connect fails with "cancelled".
 */
MigChannel *mig_connect(const MigUri *uri, int cancel_fd, GError **errp);

/*
 * The fd: transport uses fds passed to godwit. `fd:N` takes fd N as it is;
 * `fd:NAME` takes an fd registered by the getfd QMP command (SCM_RIGHTS on
 * the QMP socket) under that name. mig_fd_take() removes it from the
 * registry and hands it over. Both take a lock: getfd runs in the main
 * loop, connect in the migration thread.
 */
void mig_fd_register(const char *name, int fd);
int mig_fd_take(const char *name); /* -1 if unknown */

#endif /* MIGRATION_CHANNEL_H */
