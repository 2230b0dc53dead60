/*
 * The exec: migration transport (exec:CMD, run as /bin/sh -c CMD).
 * Outgoing: the stream is the command's stdin. Incoming: it is the
 * command's stdout (stdin is /dev/null). The child inherits only fds 0-2,
 * runs in its own process group with SIGPIPE at its default and no
 * blocked signals. Closing the channel closes the pipe and reaps the
 * child; a non-zero exit makes close fail. A channel shut down before
 * close (a cancelled migration) gets its command's process group killed
 * instead of waited for.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel-internal.h"

static const MigChannelOps exec_ops;

typedef struct ExecChild {
    char *command;
    GPid pid;
    bool killed; /* by us, after a shutdown */
} ExecChild;

/*
 * Runs in the child between fork and exec: async-signal-safe calls only.
 * `data` is non-NULL for the incoming side, whose stdin is /dev/null.
 */
static void exec_child_setup(gpointer data)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t none;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* vCPU/IO threads block some */
    sigaction(SIGPIPE, &dfl, NULL);        /* the VMM ignores it */
    setpgid(0, 0);
    if (data) {
        int fd = open("/dev/null", O_RDONLY);

        if (fd > 0) {
            dup2(fd, 0);
            close(fd);
        }
    }
}

/* Spawns the command; `*fd` gets our end of its stdin or stdout pipe. */
static bool exec_spawn(const char *command, bool incoming, GPid *pid, int *fd,
                       GError **errp)
{
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    g_autoptr(GError) err = NULL;

    if (!g_spawn_async_with_pipes(
            NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
            exec_child_setup, incoming ? GINT_TO_POINTER(1) : NULL, pid,
            incoming ? NULL : fd, incoming ? fd : NULL, NULL, &err)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "exec command '%s': cannot start it: %s", command,
                    err->message);
        return false;
    }
    fcntl(*fd, F_SETFD, FD_CLOEXEC);
    fcntl(*fd, F_SETPIPE_SZ, 1 << 20); /* fewer wakeups; best effort */
    return true;
}

static MigChannel *exec_open(const MigUri *uri, bool incoming, GError **errp)
{
    ExecChild *child = g_new0(ExecChild, 1);
    MigChannel *c;
    int fd;

    child->command = g_strdup(uri->command);
    if (!exec_spawn(uri->command, incoming, &child->pid, &fd, errp)) {
        g_free(child->command);
        g_free(child);
        return NULL;
    }
    c = mig_channel_new(&exec_ops, fd, errp);
    if (!c) {
        /* no channel to hang the child on: stop and reap it here */
        kill(-child->pid, SIGKILL);
        waitpid(child->pid, NULL, 0);
        g_free(child->command);
        g_free(child);
        return NULL;
    }
    c->opaque = child;
    return c;
}

static MigChannel *exec_connect(const MigUri *uri, int cancel_fd,
                                GError **errp)
{
    return exec_open(uri, false, errp);
}

static MigListener *exec_listen(const MigUri *uri, GError **errp)
{
    MigChannel *c = exec_open(uri, true, errp);

    return c ? mig_listener_new_prepared(&exec_ops, c, errp) : NULL;
}

/*
 * Waits for the child to exit. Sleeps in short, growing steps on the
 * cancel eventfd, so a shutdown (before or during the wait) kills the
 * command's process group at once rather than waiting for it.
 */
static bool exec_reap(MigChannel *c, ExecChild *child, int *status,
                      GError **errp)
{
    int delay_ms = 1;

    for (;;) {
        struct pollfd pfd = {.fd = c->cancel_fd, .events = POLLIN};
        pid_t r = waitpid(child->pid, status, WNOHANG);

        if (r == child->pid) {
            return true;
        }
        if (r < 0 && errno != EINTR) {
            return gw_error_errno(errp, errno,
                                  "exec command '%s': cannot get its exit "
                                  "status",
                                  child->command);
        }
        if (!child->killed && mig_channel_is_shutdown(c)) {
            if (kill(-child->pid, SIGKILL) < 0) {
                kill(child->pid, SIGKILL);
            }
            child->killed = true;
        }
        /* once killed, the eventfd stays readable: plain sleep (nfds 0) */
        poll(&pfd, child->killed ? 0 : 1, delay_ms);
        delay_ms = MIN(delay_ms * 2, 50);
    }
}

static bool exec_status_ok(const ExecChild *child, int status, GError **errp)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return true;
    }
    if (child->killed) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "exec command '%s' was killed: the migration channel "
                    "was shut down",
                    child->command);
    } else if (WIFEXITED(status)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "exec command '%s' failed with status %d", child->command,
                    WEXITSTATUS(status));
    } else {
        int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;

        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "exec command '%s' was killed by signal %d (%s)",
                    child->command, sig, g_strsignal(sig));
    }
    return false;
}

static bool exec_close(MigChannel *c, GError **errp)
{
    ExecChild *child = c->opaque;
    int status = 0;
    bool ok;

    /* our end goes first: the child sees EOF (outgoing) or EPIPE */
    mig_channel_close_fd(c);
    ok = exec_reap(c, child, &status, errp) &&
         exec_status_ok(child, status, errp);
    g_free(child->command);
    g_free(child);
    c->opaque = NULL;
    return ok;
}

static void exec_listener_close(MigListener *l)
{
    /* nothing of its own: the generic code kills an unaccepted child */
}

static const MigChannelOps exec_ops = {
    .scheme = "exec",
    .connect = exec_connect,
    .listen = exec_listen,
    .accept = mig_listener_take_prepared,
    .listener_address = NULL,
    .listener_close = exec_listener_close,
    .close = exec_close,
};

void mig_channel_exec_register(void)
{
    mig_channel_register(MIG_URI_EXEC, &exec_ops);
}
