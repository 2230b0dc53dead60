/*
 * multifd's initial packet and packet header (QEMU's MultiFDInit_t and
 * MultiFDPacket_t), encoded and checked. The error texts are QEMU's where
 * QEMU has one.
 */
#include <inttypes.h>
#include <string.h>

#include "godwit/cutils.h"
#include "multifd.h"

/* Header field offsets */
enum {
    HDR_MAGIC = 0,
    HDR_VERSION = 4,
    HDR_FLAGS = 8,
    HDR_PAGES_ALLOC = 12,
    HDR_NORMAL_PAGES = 16,
    HDR_NEXT_SIZE = 20,
    HDR_PACKET_NUM = 24,
    HDR_ZERO_PAGES = 32,
    HDR_RAMBLOCK = 64,
};

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

void multifd_init_encode(const MultiFDInit *in, uint8_t out[MULTIFD_INIT_SIZE])
{
    memset(out, 0, MULTIFD_INIT_SIZE);
    put_be32(out, in->magic);
    put_be32(out + 4, in->version);
    memcpy(out + 8, in->uuid, sizeof(in->uuid));
    out[24] = in->id;
}

bool multifd_init_decode(const uint8_t in[MULTIFD_INIT_SIZE], MultiFDInit *out,
                         GError **errp)
{
    out->magic = get_be32(in);
    out->version = get_be32(in + 4);
    memcpy(out->uuid, in + 8, sizeof(out->uuid));
    out->id = in[24];
    if (out->magic != MULTIFD_MAGIC) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: received packet magic %x expected %x",
                    out->magic, MULTIFD_MAGIC);
        return false;
    }
    if (out->version != MULTIFD_VERSION) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: received packet version %u expected %u",
                    out->version, MULTIFD_VERSION);
        return false;
    }
    return true;
}

size_t multifd_packet_encode(const MultiFDPacketHdr *h, const uint64_t *offsets,
                             uint8_t *out)
{
    uint32_t n = h->normal_pages + h->zero_pages;

    g_assert(n <= MULTIFD_PACKET_PAGES);
    memset(out, 0, MULTIFD_HDR_SIZE);
    put_be32(out + HDR_MAGIC, h->magic);
    put_be32(out + HDR_VERSION, h->version);
    put_be32(out + HDR_FLAGS, h->flags);
    put_be32(out + HDR_PAGES_ALLOC, h->pages_alloc);
    put_be32(out + HDR_NORMAL_PAGES, h->normal_pages);
    put_be32(out + HDR_NEXT_SIZE, h->next_packet_size);
    put_be64(out + HDR_PACKET_NUM, h->packet_num);
    put_be32(out + HDR_ZERO_PAGES, h->zero_pages);
    g_strlcpy((char *)out + HDR_RAMBLOCK, h->ramblock, MULTIFD_RAMBLOCK_LEN);
    for (uint32_t i = 0; i < n; i++) {
        put_be64(out + MULTIFD_HDR_SIZE + 8 * i, offsets[i]);
    }
    return MULTIFD_HDR_SIZE + 8 * (size_t)n;
}

bool multifd_packet_decode_header(const uint8_t in[MULTIFD_HDR_SIZE],
                                  MultiFDPacketHdr *h, uint32_t max_pages,
                                  GError **errp)
{
    h->magic = get_be32(in + HDR_MAGIC);
    h->version = get_be32(in + HDR_VERSION);
    h->flags = get_be32(in + HDR_FLAGS);
    h->pages_alloc = get_be32(in + HDR_PAGES_ALLOC);
    h->normal_pages = get_be32(in + HDR_NORMAL_PAGES);
    h->next_packet_size = get_be32(in + HDR_NEXT_SIZE);
    h->packet_num = get_be64(in + HDR_PACKET_NUM);
    h->zero_pages = get_be32(in + HDR_ZERO_PAGES);
    memcpy(h->ramblock, in + HDR_RAMBLOCK, MULTIFD_RAMBLOCK_LEN);

    if (h->magic != MULTIFD_MAGIC) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: received packet magic %x and expected magic %x",
                    h->magic, MULTIFD_MAGIC);
        return false;
    }
    if (h->version != MULTIFD_VERSION) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: received packet version %u and expected "
                    "version %u",
                    h->version, MULTIFD_VERSION);
        return false;
    }
    if (h->pages_alloc > max_pages) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: received packet with %u pages and expected "
                    "maximum pages are %u",
                    h->pages_alloc, max_pages);
        return false;
    }
    if (h->normal_pages > h->pages_alloc) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: received packet with %u normal pages and "
                    "expected maximum pages are %u",
                    h->normal_pages, h->pages_alloc);
        return false;
    }
    if (h->zero_pages > h->pages_alloc - h->normal_pages) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: received packet with %u zero pages and "
                    "expected maximum zero pages are %u",
                    h->zero_pages, h->pages_alloc - h->normal_pages);
        return false;
    }
    if (!memchr(h->ramblock, 0, MULTIFD_RAMBLOCK_LEN)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: packet %" PRIu64 ": the block name is not "
                    "terminated",
                    h->packet_num);
        return false;
    }
    return true;
}

bool multifd_packet_decode_offsets(const uint8_t *in, uint32_t n,
                                   uint64_t block_len, uint64_t *offsets,
                                   GError **errp)
{
    for (uint32_t i = 0; i < n; i++) {
        uint64_t off = get_be64(in + 8 * (size_t)i);
        if (off > block_len - GW_PAGE_SIZE || block_len < GW_PAGE_SIZE) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "multifd: offset too long %" PRIu64 " (max %" PRIu64
                        ")",
                        off, block_len);
            return false;
        }
        if (off & (GW_PAGE_SIZE - 1)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "multifd: offset 0x%" PRIx64 " is not page aligned",
                        off);
            return false;
        }
        offsets[i] = off;
    }
    return true;
}

uint32_t multifd_compression_flag(MigCompression c)
{
    switch (c) {
    case MIG_COMPRESSION_ZLIB:
        return MULTIFD_FLAG_ZLIB;
    case MIG_COMPRESSION_ZSTD:
        return MULTIFD_FLAG_ZSTD;
    case MIG_COMPRESSION_LZ4:
        return MULTIFD_FLAG_LZ4;
    default:
        return MULTIFD_FLAG_NOCOMP;
    }
}
