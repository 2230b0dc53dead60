/*
 * libFuzzer target: a whole incoming migration stream loaded into a
 * stopped VM (fuzz-vm.h): header and configuration, sections of every
 * type with their footers, the "ram" section's records (block list,
 * ZERO, PAGE, XBZRLE, COMPRESS_PAGE with every method, CONTINUE, EOS and
 * the MULTIFD_FLUSH flag it refuses), "dev" with every VMState field
 * type, commands (return path, ping, post-copy advise, discard, listen,
 * run, packaged with its listen thread, recv-bitmap, resume) and the VM
 * description trailer.
 *
 * Input: byte 0 selects the options (FUZZ_CFG_*), the rest is the stream,
 * read from a memory file or (FUZZ_CFG_SOCKET) a socket that a thread
 * writes in pieces, so that reads end anywhere in a record.
 * The loader must accept it or refuse it with an error, never crash,
 * hang, leak or allocate more than the stream can justify. Each input
 * gets fresh RAM and options; the decompression threads and the listen
 * thread are joined before the call returns.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/channel.h"
#include "fuzz-vm.h"

/* An input QEMUFile reading `n` bytes from a memory channel. */
static QEMUFile *input_from(const uint8_t *p, size_t n)
{
    MigChannel *mem = mig_channel_new_memory(NULL);
    struct iovec iov = {(void *)p, n};

    if (!mem || (n && mig_channel_writev_all(mem, &iov, 1) != 1) ||
        !mig_channel_rewind(mem, NULL)) {
        abort(); /* the host, not the input: out of memfds or memory */
    }
    return qemu_file_new_input(mem);
}

typedef struct Feeder {
    const uint8_t *p;
    size_t n;
    int fd;
} Feeder;

/* Writes the stream in 3000-byte pieces (not a multiple of a record). */
static void *feed(void *opaque)
{
    Feeder *fd = opaque;

    for (size_t off = 0; off < fd->n;) {
        ssize_t w =
            send(fd->fd, fd->p + off, MIN(3000, fd->n - off), MSG_NOSIGNAL);
        if (w <= 0) {
            break; /* the loader stopped reading: it refused the stream */
        }
        off += (size_t)w;
    }
    close(fd->fd);
    return NULL;
}

/* An input QEMUFile on a socket that `feeder` writes from a thread. */
static QEMUFile *input_socket(Feeder *feeder, pthread_t *t)
{
    g_autofree char *s = NULL;
    int sv[2];
    MigUri u;
    MigChannel *c;

    migration_channels_init();
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        abort();
    }
    s = g_strdup_printf("fd:%d", sv[1]);
    if (!mig_uri_parse(s, &u, NULL) || !(c = mig_connect(&u, -1, NULL))) {
        abort();
    }
    mig_uri_clear(&u);
    feeder->fd = sv[0];
    if (pthread_create(t, NULL, feed, feeder)) {
        abort();
    }
    return qemu_file_new_input(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Machine m = {0};
    GError *err = NULL;
    QEMUFile *f;
    bool ok;

    if (size < 1) {
        return 0;
    }
    fuzz_vm_options(data[0]);
    fuzz_vm_setup(&m);
    qemu_loadvm_set_command_ops(&fuzz_vm_command_ops);
    Feeder feeder = {data + 1, size - 1, -1};
    pthread_t feeder_thread;
    bool socket = data[0] & FUZZ_CFG_SOCKET;
    f = socket ? input_socket(&feeder, &feeder_thread)
               : input_from(data + 1, size - 1);
    ok = qemu_loadvm_state(f, &err);
    /* every refusal says why */
    if (!ok && (!err || !err->message || !*err->message)) {
        fprintf(stderr, "load failed without an error message\n");
        abort();
    }
    if (ok && err) {
        fprintf(stderr, "load succeeded with an error: %s\n", err->message);
        abort();
    }
    if (getenv("FUZZ_VERBOSE")) {
        fprintf(stderr, "%s\n", ok ? "loaded" : err->message);
    }
    g_clear_error(&err);
    qemu_fclose(f, NULL);
    if (socket) {
        pthread_join(feeder_thread, NULL);
    }
    qemu_loadvm_set_command_ops(NULL);
    fuzz_vm_teardown(&m);
    return 0;
}
