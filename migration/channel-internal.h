/*
 * What the migration transports (migration/channel-*.c) share with the
 * generic channel code in migration/channel.c: the MigChannel and
 * MigListener structs, their constructors, and the helpers every socket
 * or prepared-stream transport reuses. Not for use outside migration/.
 */
#ifndef MIGRATION_CHANNEL_INTERNAL_H
#define MIGRATION_CHANNEL_INTERNAL_H

#include <stdatomic.h>
#include <sys/types.h>

#include "migration/channel.h"

/*
 * The listen() backlog of tcp: and unix: listeners: every connection one
 * migration opens at once (main, up to 255 multifd channels, the
 * post-copy preempt channel), so none waits on a dropped SYN. With a
 * backlog of 1, 4 multifd channels lost a SYN most runs and waited out
 * TCP's 1 s retransmit (scripts/bench multifd: 1.3-2.3 s instead of 0.3).
 * The listener still takes one migration and refuses the rest.
 */
#define MIG_LISTEN_BACKLOG 257

/*
 * A layer between the fd and the channel's users (TLS): when set, readv,
 * writev and peek go through it; waits still poll the fd, except that
 * bytes the layer already holds make a POLLIN wait return at once. The
 * state is shared with channels mig_channel_dup() makes (one thread
 * reads, another writes); `unref` runs as each of them closes.
 */
typedef struct MigChannelLayerOps {
    ssize_t (*readv)(MigChannel *c, const struct iovec *iov, int iovcnt);
    ssize_t (*writev)(MigChannel *c, const struct iovec *iov, int iovcnt);
    /* 1 when `len` bytes are there (copied, kept), 0 at EOF, -errno. */
    int (*peek)(MigChannel *c, void *buf, size_t len);
    bool (*readable)(MigChannel *c); /* bytes held above the fd */
    void *(*ref)(void *state);
    void (*unref)(void *state);
} MigChannelLayerOps;

struct MigChannel {
    /* Set at creation, read-only afterwards. */
    const MigChannelOps *ops;
    int cancel_fd;  /* eventfd; readable once mig_channel_shutdown() ran */
    bool is_socket; /* writes go through sendmsg(MSG_NOSIGNAL) */
    void *opaque;   /* the transport's own state (exec: the child) */

    /* Owned by the thread doing I/O on the channel (and closing it). */
    int fd; /* non-blocking; -1 once the transport closed it */
    /* Set by mig_channel_set_layer() before the channel is shared. */
    const MigChannelLayerOps *layer;
    void *layer_state;
    /* file: through io_uring (channel-uring.h), set by the transport. */
    struct MigUring *uring;

    /* Any thread. */
    atomic_bool shutdown;
};

struct MigListener {
    /* Set at creation, read-only afterwards. */
    const MigChannelOps *ops;
    int cancel_fd; /* eventfd; readable once mig_listener_shutdown() ran */
    char *address; /* tcp, unix: URI of the bound socket; else NULL */
    void *opaque;  /* the transport's own state (unix: the socket path) */

    /* Owned by the thread in accept (the main loop before and after). */
    int fd;                /* listening socket, -1 once closed */
    unsigned accepts_left; /* connections still to accept (1 by default) */
    int watch_fd;          /* accept fails once it hangs up; -1: none */
    MigChannel *prepared;  /* exec, file, fd: the stream accept hands out */

    /* Any thread. */
    atomic_bool shutdown;
};

/*
 * Wraps `fd` (which the channel then owns) in a channel of `ops`: makes it
 * non-blocking and creates the cancel eventfd. On failure closes `fd`.
 */
MigChannel *mig_channel_new(const MigChannelOps *ops, int fd, GError **errp);
/* Closes the data fd if still open (every transport's close does this). */
void mig_channel_close_fd(MigChannel *c);
/* A close hook for transports with nothing to do besides closing the fd. */
bool mig_channel_close_plain(MigChannel *c, GError **errp);

/* A listener for `ops`; `fd` (a listening socket, or -1) is then owned. */
MigListener *mig_listener_new(const MigChannelOps *ops, int fd, GError **errp);
/* A listener whose accept hands out the already opened channel `c`. */
MigListener *mig_listener_new_prepared(const MigChannelOps *ops, MigChannel *c,
                                       GError **errp);
/* Closes the listening socket if still open. */
void mig_listener_close_fd(MigListener *l);

/*
 * Sockets: waits on the listening socket (and the cancel eventfd) for one
 * connection, accepts it, then closes the listening socket so no second
 * peer gets in. Returns the connected, non-blocking fd or -1 with *errp.
 */
int mig_listener_accept_fd(MigListener *l, GError **errp);
/* Prepared streams (exec, file, fd): hands out l->prepared, once. */
MigChannel *mig_listener_take_prepared(MigListener *l, GError **errp);
/* Sockets: a copy of l->address. */
char *mig_listener_socket_address(MigListener *l);

/* Puts `layer` (with its state, then owned) under c's I/O. */
void mig_channel_set_layer(MigChannel *c, const MigChannelLayerOps *layer,
                           void *state);

/*
 * Drops `n` bytes from the front of iov[0..*cnt) (and empty iovecs after
 * them); returns the new front. Partial writes resume with it.
 */
struct iovec *mig_iov_advance(struct iovec *iov, int *cnt, size_t n);

/* Shared by channel.c and channel-listener.c. */
typedef enum MigPollResult {
    MIG_POLL_READY,
    MIG_POLL_CANCELLED,
    MIG_POLL_TIMEOUT,
} MigPollResult;

/*
 * Waits for `events` on `fd` or for `cancel_fd` to become readable (or
 * *cancelled to be set), at most `timeout_ms` (-1: forever).
 */
MigPollResult mig_poll(int fd, short events, int cancel_fd,
                       atomic_bool *cancelled, int timeout_ms);
/* Makes `cancel_fd` readable for good and sets *cancelled. */
void mig_cancel_signal(int cancel_fd, atomic_bool *cancelled);
/* A new non-blocking eventfd, or -1 with *errp. */
int mig_cancel_fd_new(GError **errp);
/* The ops registered for uri's scheme, or NULL with *errp. */
const MigChannelOps *mig_channel_ops_checked(const MigUri *uri, GError **errp);

/* Per-transport registration, called from migration_channels_init(). */
void mig_channel_tcp_register(void);
void mig_channel_unix_register(void);
void mig_channel_exec_register(void);
void mig_channel_file_register(void);
void mig_channel_fd_register(void);

#endif /* MIGRATION_CHANNEL_INTERNAL_H */
