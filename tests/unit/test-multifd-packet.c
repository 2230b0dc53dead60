/*
 * Unit test of multifd's initial packet and packet header: QEMU's byte
 * layout, round trips, and every check a destination makes before it
 * trusts a packet (magic, version, page counts, block name, offsets).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "../../migration/multifd.h"

static void expect_error(GError *err, const char *needle)
{
    assert_non_null(err);
    if (!strstr(err->message, needle)) {
        fail_msg("error \"%s\" lacks \"%s\"", err->message, needle);
    }
}

static void test_init_layout(void **state)
{
    MultiFDInit in = {.magic = MULTIFD_MAGIC, .version = MULTIFD_VERSION,
                      .id = 3};
    uint8_t buf[MULTIFD_INIT_SIZE];
    static const uint8_t head[] = {0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1};
    MultiFDInit out;
    g_autoptr(GError) err = NULL;

    memset(in.uuid, 0xab, sizeof(in.uuid));
    memset(buf, 0x5a, sizeof(buf));
    multifd_init_encode(&in, buf);
    assert_memory_equal(buf, head, sizeof(head));
    for (int i = 8; i < 24; i++) {
        assert_int_equal(buf[i], 0xab);
    }
    assert_int_equal(buf[24], 3);
    for (int i = 25; i < MULTIFD_INIT_SIZE; i++) {
        assert_int_equal(buf[i], 0); /* unused1[7], unused2[4] */
    }
    assert_true(multifd_init_decode(buf, &out, &err));
    assert_int_equal(out.id, 3);
    assert_memory_equal(out.uuid, in.uuid, sizeof(in.uuid));

    buf[3] = 0x45;
    assert_false(multifd_init_decode(buf, &out, &err));
    expect_error(err, "magic 11223345");
    g_clear_error(&err);
    buf[3] = 0x44;
    buf[7] = 2;
    assert_false(multifd_init_decode(buf, &out, &err));
    expect_error(err, "version 2");
}

static size_t make_packet(uint8_t *buf, uint32_t normal, uint32_t zero,
                          const char *block)
{
    MultiFDPacketHdr h = {
        .magic = MULTIFD_MAGIC,
        .version = MULTIFD_VERSION,
        .flags = MULTIFD_FLAG_SYNC | MULTIFD_FLAG_ZSTD,
        .pages_alloc = MULTIFD_PACKET_PAGES,
        .normal_pages = normal,
        .next_packet_size = normal * 4096,
        .packet_num = 0x0102030405060708ull,
        .zero_pages = zero,
    };
    uint64_t off[MULTIFD_PACKET_PAGES];

    g_strlcpy(h.ramblock, block, sizeof(h.ramblock));
    for (uint32_t i = 0; i < normal + zero; i++) {
        off[i] = (uint64_t)(i * 3) << 12;
    }
    return multifd_packet_encode(&h, off, buf);
}

static void test_packet_layout(void **state)
{
    uint8_t buf[MULTIFD_HDR_SIZE + 8 * MULTIFD_PACKET_PAGES];
    static const uint8_t head[] = {
        0x11, 0x22, 0x33, 0x44, /* magic */
        0, 0, 0, 1,             /* version */
        0, 0, 0, 5,             /* flags: SYNC | ZSTD (2 << 1) */
        0, 0, 0, 128,           /* pages_alloc */
        0, 0, 0, 2,             /* normal_pages */
        0, 0, 0x20, 0,          /* next_packet_size */
        1, 2, 3, 4, 5, 6, 7, 8, /* packet_num */
        0, 0, 0, 1,             /* zero_pages */
    };
    size_t len = make_packet(buf, 2, 1, "pc.ram");
    MultiFDPacketHdr h;
    uint64_t off[3];
    g_autoptr(GError) err = NULL;

    assert_int_equal(len, MULTIFD_HDR_SIZE + 3 * 8);
    assert_memory_equal(buf, head, sizeof(head));
    for (int i = 36; i < 64; i++) {
        assert_int_equal(buf[i], 0); /* unused32[1], unused64[3] */
    }
    assert_string_equal((char *)buf + 64, "pc.ram");
    /* the third offset (the zero page) is 6 pages in */
    assert_int_equal(buf[MULTIFD_HDR_SIZE + 16 + 6], 0x60);

    assert_true(multifd_packet_decode_header(buf, &h, MULTIFD_PACKET_PAGES,
                                             &err));
    assert_int_equal(h.flags, 5);
    assert_int_equal(h.normal_pages, 2);
    assert_int_equal(h.zero_pages, 1);
    assert_int_equal(h.next_packet_size, 8192);
    assert_int_equal(h.packet_num, 0x0102030405060708ull);
    assert_string_equal(h.ramblock, "pc.ram");
    assert_true(multifd_packet_decode_offsets(buf + MULTIFD_HDR_SIZE, 3,
                                              1 << 20, off, &err));
    assert_int_equal(off[0], 0);
    assert_int_equal(off[1], 3 << 12);
    assert_int_equal(off[2], 6 << 12);
}

static void test_packet_refused(void **state)
{
    uint8_t buf[MULTIFD_HDR_SIZE + 8 * MULTIFD_PACKET_PAGES];
    uint8_t bad[MULTIFD_HDR_SIZE];
    MultiFDPacketHdr h;
    uint64_t off[MULTIFD_PACKET_PAGES];
    static const struct {
        int at;       /* byte to change */
        uint8_t v;
        uint32_t max; /* the receiver's maximum pages */
        const char *err;
    } cases[] = {
        {0, 0x12, 128, "received packet magic 12223344"},
        {7, 9, 128, "received packet version 9"},
        {15, 200, 128, "received packet with 200 pages and expected maximum "
                       "pages are 128"},
        {15, 128, 64, "received packet with 128 pages and expected maximum "
                      "pages are 64"},
        {19, 129, 128, "129 normal pages"},
        {35, 127, 128, "127 zero pages"},
    };
    g_autoptr(GError) err = NULL;

    make_packet(buf, 2, 1, "pc.ram");
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        memcpy(bad, buf, sizeof(bad));
        bad[cases[i].at] = cases[i].v;
        assert_false(multifd_packet_decode_header(bad, &h, cases[i].max, &err));
        expect_error(err, cases[i].err);
        g_clear_error(&err);
    }
    /* a block name without its terminating NUL */
    memcpy(bad, buf, sizeof(bad));
    memset(bad + 64, 'x', MULTIFD_RAMBLOCK_LEN);
    assert_false(multifd_packet_decode_header(bad, &h, 128, &err));
    expect_error(err, "not terminated");
    g_clear_error(&err);

    /* offsets: past the block, in its last partial page, unaligned */
    assert_false(multifd_packet_decode_offsets(buf + MULTIFD_HDR_SIZE, 3,
                                               6 << 12, off, &err));
    expect_error(err, "offset too long 24576");
    g_clear_error(&err);
    assert_false(multifd_packet_decode_offsets(buf + MULTIFD_HDR_SIZE, 1,
                                               100, off, &err));
    expect_error(err, "offset too long 0");
    g_clear_error(&err);
    buf[MULTIFD_HDR_SIZE + 8 + 7] = 0x10;
    assert_false(multifd_packet_decode_offsets(buf + MULTIFD_HDR_SIZE, 2,
                                               1 << 20, off, &err));
    expect_error(err, "not page aligned");
}

/* Every packet size from empty (a SYNC) to full encodes and decodes. */
static void test_packet_sizes(void **state)
{
    uint8_t buf[MULTIFD_HDR_SIZE + 8 * MULTIFD_PACKET_PAGES];
    uint64_t off[MULTIFD_PACKET_PAGES];

    for (uint32_t n = 0; n <= MULTIFD_PACKET_PAGES; n++) {
        for (uint32_t z = 0; z <= MULTIFD_PACKET_PAGES - n; z += 17) {
            MultiFDPacketHdr h;
            size_t len = make_packet(buf, n, z, n + z ? "pc.ram" : "");
            assert_int_equal(len, MULTIFD_HDR_SIZE + 8 * (n + z));
            assert_true(multifd_packet_decode_header(buf, &h, 128, NULL));
            assert_int_equal(h.normal_pages, n);
            assert_int_equal(h.zero_pages, z);
            assert_true(multifd_packet_decode_offsets(
                buf + MULTIFD_HDR_SIZE, n + z, 1ull << 30, off, NULL));
            for (uint32_t i = 0; i < n + z; i++) {
                assert_int_equal(off[i], (uint64_t)(i * 3) << 12);
            }
        }
    }
}

static void test_compression_flags(void **state)
{
    assert_int_equal(multifd_compression_flag(MIG_COMPRESSION_NONE), 0);
    assert_int_equal(multifd_compression_flag(MIG_COMPRESSION_ZLIB), 1 << 1);
    assert_int_equal(multifd_compression_flag(MIG_COMPRESSION_ZSTD), 2 << 1);
    /* godwit's lz4 lies outside QEMU's compression field and SYNC */
    assert_int_equal(multifd_compression_flag(MIG_COMPRESSION_LZ4) &
                         (MULTIFD_FLAG_COMPRESSION_MASK | MULTIFD_FLAG_SYNC |
                          (32u << 1)),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_layout),
        cmocka_unit_test(test_packet_layout),
        cmocka_unit_test(test_packet_refused),
        cmocka_unit_test(test_packet_sizes),
        cmocka_unit_test(test_compression_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
