/*
 * multifd: RAM pages over several connections at once, in QEMU's multifd
 * format. Internal to migration/; docs/devel/multifd.md has the design.
 *
 * Wire format (all big-endian, as QEMU's MultiFDInit_t and
 * MultiFDPacket_t):
 *
 *   initial packet, once per channel (64 bytes):
 *     be32 magic 0x11223344, be32 version 1, uuid[16], u8 channel id,
 *     7 + 32 bytes of zeros
 *   then packets, each a 320-byte header
 *     be32 magic, be32 version, be32 flags, be32 pages_alloc,
 *     be32 normal_pages, be32 next_packet_size, be64 packet_num,
 *     be32 zero_pages, 4 + 24 bytes of zeros, char ramblock[256]
 *   followed by be64 offsets (normal pages first, then zero pages) and
 *   next_packet_size bytes of payload: the normal pages as they are
 *   ("none") or compressed (docs/devel/compression.md, "Packet").
 *
 * The main channel carries the rest of the stream. Every RAM section's
 * EOS is a sync point: the source sends one SYNC packet on every channel
 * before it; the destination, at that EOS, waits until every channel has
 * reached its SYNC packet, so no page of one section lands after a page
 * of the next.
 */
#ifndef MIGRATION_MULTIFD_H
#define MIGRATION_MULTIFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "godwit/error.h"
#include "godwit/machine.h"
#include "migration/channel.h"
#include "migration/options.h"
#include "migration/qemu-file.h"

#define MULTIFD_MAGIC 0x11223344u
#define MULTIFD_VERSION 1u
#define MULTIFD_INIT_SIZE 64
#define MULTIFD_HDR_SIZE 320
#define MULTIFD_RAMBLOCK_LEN 256
/* 512 KiB of 4 KiB pages, QEMU's MULTIFD_PACKET_SIZE */
#define MULTIFD_PACKET_PAGES 128

#define MULTIFD_FLAG_SYNC (1u << 0)
/* QEMU's compression field, bits 1..5 */
#define MULTIFD_FLAG_COMPRESSION_MASK (0x1fu << 1)
#define MULTIFD_FLAG_NOCOMP (0u << 1)
#define MULTIFD_FLAG_ZLIB (1u << 1)
#define MULTIFD_FLAG_ZSTD (2u << 1)
/*
 * godwit's lz4: QEMU has none. Outside QEMU's compression field (and
 * clear of its DEVICE_STATE bit 6), so a QEMU peer refuses it rather than
 * taking it for one of its methods.
 */
#define MULTIFD_FLAG_LZ4 (1u << 7)

/* ---- packets (multifd-packet.c): pure, any thread ------------------------ */

typedef struct MultiFDInit {
    uint32_t magic;
    uint32_t version;
    uint8_t uuid[16];
    uint8_t id;
} MultiFDInit;

typedef struct MultiFDPacketHdr {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t pages_alloc;
    uint32_t normal_pages;
    uint32_t next_packet_size;
    uint64_t packet_num;
    uint32_t zero_pages;
    char ramblock[MULTIFD_RAMBLOCK_LEN]; /* NUL-terminated */
} MultiFDPacketHdr;

void multifd_init_encode(const MultiFDInit *in, uint8_t out[MULTIFD_INIT_SIZE]);
/* Checks magic and version; false with *errp set otherwise. */
bool multifd_init_decode(const uint8_t in[MULTIFD_INIT_SIZE], MultiFDInit *out,
                         GError **errp);

/*
 * Encodes the header and the offsets (normal_pages + zero_pages of them)
 * into out, which holds MULTIFD_HDR_SIZE + 8 * MULTIFD_PACKET_PAGES bytes.
 * Returns the bytes written.
 */
size_t multifd_packet_encode(const MultiFDPacketHdr *h, const uint64_t *offsets,
                             uint8_t *out);
/*
 * Decodes and checks a header: magic, version, page counts within
 * `max_pages`, a NUL-terminated block name. The offsets follow it on the
 * wire (multifd_packet_decode_offsets).
 */
bool multifd_packet_decode_header(const uint8_t in[MULTIFD_HDR_SIZE],
                                  MultiFDPacketHdr *h, uint32_t max_pages,
                                  GError **errp);
/*
 * Decodes n offsets and checks each is page-aligned and inside a block of
 * `block_len` bytes.
 */
bool multifd_packet_decode_offsets(const uint8_t *in, uint32_t n,
                                   uint64_t block_len, uint64_t *offsets,
                                   GError **errp);

/* The packet flag of a compression method. */
uint32_t multifd_compression_flag(MigCompression c);

/* ---- methods: one ops table per way of carrying a packet's pages --------- */

typedef struct MultiFDSendParams MultiFDSendParams;
typedef struct MultiFDRecvParams MultiFDRecvParams;

/*
 * A packet's pages on their way: what a method's hooks work on.
 * Source: host[] are the normal pages to send (guest RAM), n of them;
 * send_prepare fills iov[]/iovcnt with the payload and sets
 * payload_size. Destination: host[] are where the n normal pages go;
 * recv_pages reads payload_size bytes from the channel and places them.
 */
typedef struct MultiFDPayload {
    uint8_t *host[MULTIFD_PACKET_PAGES];
    uint32_t n;
    uint32_t payload_size;
    struct iovec iov[MULTIFD_PACKET_PAGES + 1];
    int iovcnt;
} MultiFDPayload;

typedef struct MultiFDMethods {
    const char *name;
    /* Source, channel thread. */
    bool (*send_setup)(MultiFDSendParams *p, GError **errp);
    void (*send_cleanup)(MultiFDSendParams *p);
    bool (*send_prepare)(MultiFDSendParams *p, MultiFDPayload *pl,
                         GError **errp);
    /* Destination, channel thread. */
    bool (*recv_setup)(MultiFDRecvParams *p, GError **errp);
    void (*recv_cleanup)(MultiFDRecvParams *p);
    bool (*recv_pages)(MultiFDRecvParams *p, MultiFDPayload *pl,
                       GError **errp);
} MultiFDMethods;

/* none: pages as they are, straight from and into guest RAM */
extern const MultiFDMethods multifd_nocomp_ops;
/* zlib, zstd, lz4: a compression stream per channel (compression.h) */
extern const MultiFDMethods multifd_compress_ops;

const MultiFDMethods *multifd_methods(MigCompression c);

/* What a method may keep per channel and reach from its hooks. */
struct MultiFDSendParams {
    int id;
    MigCompression compression;
    int level;
    MigChannel *c;
    void *data; /* the method's */
};

struct MultiFDRecvParams {
    int id;
    MigCompression compression;
    MigChannel *c;
    void *data; /* the method's */
};

/* ---- source (multifd.c), migration thread -------------------------------- */

/*
 * Connects multifd-channels more connections to `uri`, sends their
 * initial packets and starts their threads. After the main channel's
 * header: the destination tells the channels apart by their first bytes.
 */
bool multifd_send_setup(const MigUri *uri, int cancel_fd, GError **errp);
bool multifd_send_active(void);
/* Queues a page; false (with the stream's error set) once a channel failed. */
bool multifd_queue_page(QEMUFile *f, RAMBlock *rb, uint64_t offset);
/*
 * Sends what is queued and a SYNC packet on every channel, then waits
 * until they are written. Before every RAM section's EOS.
 */
bool multifd_send_sync_main(QEMUFile *f);
/* Any thread: makes the channels' I/O fail now (cancel, failure). */
void multifd_send_shutdown(void);
/* Ends the threads and closes the channels. */
void multifd_send_cleanup(void);
/* Bytes written on the multifd channels by this migration. */
uint64_t multifd_bytes_transferred(void);
/* Debug (x-multifd-fault): breaks channel `id`'s connection. */
bool multifd_send_break_channel(int id, GError **errp);

/* ---- destination (multifd.c) --------------------------------------------- */

/*
 * Incoming thread: `chans[0..n)` are the connected channels, each with
 * its initial packet read (id = index). Starts their threads, placing
 * pages into `rb`; `touched` is the load's bitmap of pages written
 * (set atomically). `main` is shut down if a channel fails.
 */
bool multifd_recv_setup(MigChannel **chans, int n, RAMBlock *rb,
                        unsigned long *touched, QEMUFile *main, GError **errp);
bool multifd_recv_active(void);
/* At a section's EOS: waits for every channel's SYNC packet. */
bool multifd_recv_sync_main(GError **errp);
/* The first channel failure, if any (free), to report instead of the
 * main channel's. */
char *multifd_recv_error(void);
/* Ends the threads and closes the channels. */
void multifd_recv_cleanup(void);

#endif /* MIGRATION_MULTIFD_H */
