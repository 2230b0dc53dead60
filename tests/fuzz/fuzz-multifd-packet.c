/*
 * libFuzzer target: one multifd channel as the destination receives it,
 * through the real receive path (multifd.c's channel thread,
 * multifd-packet.c's checks, the none/zlib/zstd/lz4 methods of
 * multifd-nocomp.c and multifd-compress.c): the initial packet, then
 * packet headers, their offsets and their page payloads, with the SYNC
 * points the main thread waits for at each RAM section's EOS.
 *
 * Input: byte 0 bits 0-1 pick multifd-compression (none, zlib, zstd,
 * lz4); the rest is what the channel carries, initial packet first.
 * Guest RAM is a fresh block of MF_PAGES pages per input; the channel
 * thread is joined before the call returns.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../migration/multifd.h"
#include "../../migration/options-int.h"

#define MF_PAGES 256 /* 1 MiB: offsets of two whole packets and more */

static QEMUFile *input_from(const uint8_t *p, size_t n, MigChannel **chan)
{
    MigChannel *mem = mig_channel_new_memory(NULL);
    struct iovec iov = {(void *)p, n};

    if (!mem || (n && mig_channel_writev_all(mem, &iov, 1) != 1) ||
        !mig_channel_rewind(mem, NULL)) {
        abort(); /* the host, not the input */
    }
    if (chan) {
        *chan = mem;
        return NULL;
    }
    return qemu_file_new_input(mem);
}

static void set_method(uint8_t cfg)
{
    static const MigCompression methods[4] = {
        MIG_COMPRESSION_NONE, MIG_COMPRESSION_ZLIB, MIG_COMPRESSION_ZSTD,
        MIG_COMPRESSION_LZ4};
    bool caps[MIGRATION_CAPABILITY__MAX];
    MigrationParameters p;

    migration_options_reset();
    mig_caps_snapshot(caps);
    caps[MIGRATION_CAPABILITY_MULTIFD] = true;
    g_assert(mig_caps_commit(caps, NULL));
    mig_params_snapshot(&p);
    p.multifd_compression = methods[cfg & 3];
    g_assert(mig_params_commit(&p, NULL));
}

/* Syncs until the channel ends or fails; the error, if any. */
static void receive(MigChannel *chan, RAMBlock *rb, unsigned long *touched)
{
    QEMUFile *main_f = input_from(NULL, 0, NULL);
    GError *err = NULL;
    int syncs = 0;
    char *msg;

    if (multifd_recv_setup(&chan, 1, rb, touched, main_f, &err)) {
        while (multifd_recv_sync_main(&err)) {
            syncs++;
        }
    }
    if (!err || !err->message) {
        abort(); /* it only stops on an error */
    }
    if (getenv("FUZZ_VERBOSE")) {
        fprintf(stderr, "%d syncs, then: %s\n", syncs, err->message);
    }
    g_clear_error(&err);
    msg = multifd_recv_error();
    g_free(msg);
    multifd_recv_cleanup();
    mig_channel_close(chan, NULL); /* NULL unless setup failed early */
    qemu_fclose(main_f, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    MultiFDInit init;
    MigChannel *chan;
    RAMBlock *rb;
    unsigned long *touched;

    if (size < 1 + MULTIFD_INIT_SIZE) {
        return 0;
    }
    /* incoming.c reads and checks this before the channel is handed on */
    if (!multifd_init_decode(data + 1, &init, NULL)) {
        return 0;
    }
    set_method(data[0]);
    rb = ram_block_new("pc.ram", MF_PAGES * GW_PAGE_SIZE, NULL);
    g_assert(rb);
    touched = bitmap_new(MF_PAGES);
    input_from(data + 1 + MULTIFD_INIT_SIZE, size - 1 - MULTIFD_INIT_SIZE,
               &chan);
    receive(chan, rb, touched);
    bitmap_free(touched);
    ram_block_free(rb);
    migration_options_reset();
    return 0;
}
