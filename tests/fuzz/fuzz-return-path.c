/*
 * libFuzzer target: the return path as the source reads it
 * (migration/return-path.c's reader thread): SHUT, PONG, REQ_PAGES_ID,
 * REQ_PAGES, RECV_BITMAP with its bitmap and end mark, RESUME_ACK, and
 * everything malformed. Page requests and received bitmaps go to the real
 * source side (ram_postcopy_queue_request, ram_postcopy_resume_bitmap) of
 * the stopped VM of fuzz-vm.h, switched to post-copy.
 *
 * Input: what the destination writes back, at most 64 KiB (it is written
 * into a socketpair whole, then the write side is shut: the reader sees
 * its end). The reader thread is joined before the call returns.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../migration/channel-internal.h"
#include "../../migration/ram.h"
#include "../../migration/return-path.h"
#include "fuzz-vm.h"

#define RP_INPUT_MAX 65536

static const MigChannelOps pair_ops = {
    .scheme = "socketpair",
    .close = mig_channel_close_plain,
};

static bool req_pages(void *opaque, const char *block, uint64_t start,
                      uint32_t len, GError **errp)
{
    return ram_postcopy_queue_request(block, start, len, errp);
}

static void pong(void *opaque, uint32_t value)
{
}

static bool recv_bitmap(void *opaque, const char *block, const uint8_t *map,
                        uint64_t size, GError **errp)
{
    return ram_postcopy_resume_bitmap(block, map, size, errp);
}

static bool resume_ack(void *opaque, uint32_t value, GError **errp)
{
    return true;
}

static void shut(void *opaque, uint32_t value)
{
}

static void rp_error(void *opaque, const char *msg)
{
    if (!msg || !*msg) {
        abort(); /* every failure says why */
    }
    if (getenv("FUZZ_VERBOSE")) {
        fprintf(stderr, "%s\n", msg);
    }
}

static const RPReaderOps rp_ops = {
    .req_pages = req_pages,
    .pong = pong,
    .recv_bitmap = recv_bitmap,
    .resume_ack = resume_ack,
    .shut = shut,
    .error = rp_error,
};

/* The source after its setup and the switch to post-copy. */
static QEMUFile *source_postcopy(Machine *m)
{
    MigChannel *mem = mig_channel_new_memory(NULL);
    QEMUFile *f;

    fuzz_vm_options(0);
    *m = (Machine){.accel = &fuzz_vm_accel};
    fuzz_vm_setup(m);
    g_assert(mem);
    f = qemu_file_new_output(mem);
    qemu_savevm_state_header(f);
    g_assert(qemu_savevm_state_setup(f, NULL));
    g_assert(ram_postcopy_start(f, NULL));
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Machine m;
    QEMUFile *f;
    MigChannel *src;
    RPReader *r;
    int sv[2];

    if (size > RP_INPUT_MAX) {
        return 0;
    }
    f = source_postcopy(&m);
    g_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    /* 64 KiB fit in a unix socket's buffer: no writer thread needed */
    g_assert(size == 0 || write(sv[0], data, size) == (ssize_t)size);
    shutdown(sv[0], SHUT_WR);
    src = mig_channel_new(&pair_ops, sv[1], NULL);
    g_assert(src);
    r = rp_reader_start(src, &rp_ops, NULL, NULL);
    g_assert(r);
    if (!rp_reader_wait(r, 10000)) {
        fprintf(stderr, "return path reader still running after 10 s\n");
        abort();
    }
    rp_reader_stop(r);
    mig_channel_close(src, NULL);
    close(sv[0]);
    qemu_fclose(f, NULL);
    fuzz_vm_teardown(&m);
    return 0;
}
