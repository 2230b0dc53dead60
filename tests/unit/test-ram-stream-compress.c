/*
 * Unit tests of the RAM section's compressed streams and of a guest larger
 * than 4 GiB: the compress capability with every method (alone, with
 * XBZRLE, without waiting for threads) and what a destination refuses;
 * pages above 4 GiB as long runs of normal pages followed by ZERO,
 * compressed and XBZRLE records. main() is in test-ram-stream.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ram-stream-helpers.h"

static void fill_text(RAMBlock *rb, uint64_t page, uint32_t seed)
{
    char *p = (char *)(rb->host + page * GW_PAGE_SIZE);

    for (size_t i = 0; i < GW_PAGE_SIZE; i += 32) {
        char line[48];
        snprintf(line, sizeof(line), "%08x-%06x-the quick fox\n",
                 (unsigned)(seed + i) & 0xffffffffu,
                 (unsigned)page & 0xffffffu);
        memcpy(p + i, line, 32);
    }
}

static void set_compress(MigCompression method, bool xbzrle, bool wait,
                         int threads, int dthreads)
{
    g_autoptr(GError) err = NULL;
    MigrationParameters p;

    set_caps(xbzrle, threads > 0);
    mig_params_snapshot(&p);
    p.compress_method = method;
    p.compress_wait_thread = wait;
    p.compress_threads = (uint8_t)MAX(threads, 1);
    p.decompress_threads = (uint8_t)MAX(dthreads, 1);
    if (!mig_params_commit(&p, &err)) {
        fail_msg("params: %s", err->message);
    }
}

#define CPAGES 600

/* Source: bulk stage plus two passes, written to fx->path. */
static void compress_stream(Fixture *fx, bool xbzrle)
{
    Machine *src = &fx->src;
    g_autoptr(GError) err = NULL;
    QEMUFile *f;

    /* text pages, incompressible pages, zero pages, holes */
    for (uint64_t p = 0; p < CPAGES; p++) {
        switch (p % 4) {
        case 0:
        case 1:
            fill_text(src->ram, p, (uint32_t)p);
            break;
        case 2:
            fill_page(src->ram, p, (uint32_t)p + 5);
            break;
        default:
            memset(src->ram->host + p * GW_PAGE_SIZE, 0, GW_PAGE_SIZE);
        }
    }
    ram_register(src);
    ram_stats_reset();
    f = open_file(fx->path, true);
    qemu_savevm_state_header(f);
    if (!qemu_savevm_state_setup(f, &err)) {
        fail_msg("setup: %s", err->message);
    }
    iterate_until_done(f);
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t p = pass; p < CPAGES; p += 3) {
            if (xbzrle) {
                guest_poke(src->ram, p, (size_t)(p * 13) % GW_PAGE_SIZE,
                           (uint8_t)(pass + 7));
            } else {
                fill_text(src->ram, p, (uint32_t)(p * 7 + pass));
                set_bit(p, fake_dirty);
            }
        }
        assert_true(ram_bitmap_sync(&err));
        iterate_until_done(f);
    }
    guest_write(src->ram, 3, 3333); /* one last change in the END section */
    switchover = true;
    if (!qemu_savevm_state_complete(f, &err)) {
        fail_msg("complete: %s", err->message);
    }
    switchover = false;
    qemu_savevm_state_cleanup();
    assert_true(qemu_fclose(f, &err));
}

static bool load_stream(Machine *dst, const char *path, GError **errp)
{
    QEMUFile *f;
    bool ok;

    ram_load_init(dst);
    f = open_file(path, false);
    ok = qemu_loadvm_state(f, errp);
    qemu_fclose(f, NULL);
    return ok;
}

/*
 * zlib with a gate: the first page a worker compresses waits until the
 * migration thread has found that worker busy (compress-wait-thread off),
 * so the nowait path runs whatever the scheduler does. Gives up after
 * 10 s, and the case then fails on its busy count.
 */
static ssize_t gated_compress_page(MigCompressCtx *ctx, const uint8_t *page,
                                   uint8_t *out, size_t out_size, GError **errp)
{
    static _Atomic bool opened;

    for (int i = 0; i < 100000 && !atomic_load(&opened); i++) {
        if (atomic_load(&compression_stats.busy) > 0) {
            atomic_store(&opened, true);
            break;
        }
        g_usleep(100);
    }
    atomic_store(&opened, true);
    return saved_zlib_ops->compress_page(ctx, page, out, out_size, errp);
}

static MigCompressOps gated_zlib_ops;

static void gate_zlib(void)
{
    const MigCompressOps *zlib;

    mig_compress_register_all();
    zlib = mig_compress_ops(MIG_COMPRESSION_ZLIB);
    gated_zlib_ops = *zlib;
    gated_zlib_ops.compress_page = gated_compress_page;
    saved_zlib_ops =
        mig_compress_replace(MIG_COMPRESSION_ZLIB, &gated_zlib_ops);
}

static void compress_case(Fixture *fx, MigCompression method, bool xbzrle,
                          bool wait)
{
    g_autoptr(GError) err = NULL;

    /* without waiting: one worker, held until it has been found busy */
    set_compress(method, xbzrle, wait, wait ? 2 : 1, 3);
    fixture_ram(fx, PAGES);
    compress_stream(fx, xbzrle);

    /* text pages went compressed; random ones did not shrink */
    uint64_t cpages = atomic_load(&compression_stats.pages);
    uint64_t busy = atomic_load(&compression_stats.busy);
    if (wait) {
        assert_true(cpages >= CPAGES / 2);
        assert_int_equal(busy, 0);
    } else {
        /* the nowait path ran: pages went uncompressed, counted busy */
        if (busy == 0) {
            fail_msg("no page was found busy without waiting");
        }
        assert_true(cpages > 0);
    }
    assert_true(cpages + busy >= CPAGES / 2);
    assert_true(atomic_load(&compression_stats.compressed_size) <
                cpages * GW_PAGE_SIZE / 4);
    assert_true(atomic_load(&ram_stats.normal) >= CPAGES / 4);
    assert_true(atomic_load(&ram_stats.duplicate) >= CPAGES / 4);
    if (xbzrle) {
        assert_true(atomic_load(&xbzrle_stats.pages) > 0);
    }

    if (!load_stream(&fx->dst, fx->path, &err)) {
        fail_msg("load (%s): %s", mig_compression_name(method), err->message);
    }
    assert_memory_equal(fx->src.ram->host, fx->dst.ram->host,
                        CPAGES * GW_PAGE_SIZE);
}

void test_ram_stream_compress_zlib(void **state)
{
    compress_case(*state, MIG_COMPRESSION_ZLIB, false, true);
}

void test_ram_stream_compress_zstd(void **state)
{
    compress_case(*state, MIG_COMPRESSION_ZSTD, false, true);
}

void test_ram_stream_compress_lz4(void **state)
{
    compress_case(*state, MIG_COMPRESSION_LZ4, false, true);
}

void test_ram_stream_compress_xbzrle(void **state)
{
    compress_case(*state, MIG_COMPRESSION_LZ4, true, true);
}

void test_ram_stream_compress_nowait(void **state)
{
    gate_zlib();
    compress_case(*state, MIG_COMPRESSION_ZLIB, false, false);
}

/*
 * The destination refuses what it cannot place: compressed pages with
 * the capability off, another method than the source's, a body cut short.
 */
void test_ram_stream_compress_refused(void **state)
{
    Fixture *fx = *state;
    Machine *dst = &fx->dst;
    g_autoptr(GError) err = NULL;
    g_autofree char *data = NULL;
    gsize len;

    set_compress(MIG_COMPRESSION_ZLIB, false, true, 2, 2);
    fixture_ram(fx, PAGES);
    compress_stream(fx, false);
    unregister_savevm_all();
    ram_register(dst);

    set_compress(MIG_COMPRESSION_ZLIB, false, true, 0, 0);
    assert_false(load_stream(dst, fx->path, &err));
    assert_non_null(strstr(err->message, "unexpected compressed page"));
    g_clear_error(&err);
    ram_load_cleanup(NULL);

    set_compress(MIG_COMPRESSION_LZ4, false, true, 1, 2);
    assert_false(load_stream(dst, fx->path, &err));
    if (!strstr(err->message, "decompression of the lz4 page")) {
        fail_msg("unexpected error: %s", err->message);
    }
    g_clear_error(&err);
    ram_load_cleanup(NULL);

    /* a body with a byte changed in the middle of its deflate data */
    assert_true(g_file_get_contents(fx->path, &data, &len, NULL));
    gsize at = 0;
    for (gsize i = 0; i + 12 < len; i++) {
        /* be64 record header of a compressed page with CONTINUE */
        if ((uint8_t)data[i + 6] == 0x01 && (uint8_t)data[i + 7] == 0x20 &&
            data[i + 8] == 0 && data[i + 9] == 0) {
            at = i + 12 + 8; /* a few bytes into the body */
            break;
        }
    }
    assert_true(at > 0);
    data[at] ^= 0x55;
    data[at + 1] ^= 0xaa;
    assert_true(g_file_set_contents(fx->path, data, (gssize)len, NULL));
    set_compress(MIG_COMPRESSION_ZLIB, false, true, 1, 2);
    assert_false(load_stream(dst, fx->path, &err));
    if (!strstr(err->message, "decompression of the zlib page")) {
        fail_msg("unexpected error: %s", err->message);
    }
}

/* ---- a guest larger than 4 GiB ---------------------------------------- */

#define BIG_PAGES ((4ull << 30) / GW_PAGE_SIZE + 10240) /* 4 GiB + 40 MiB */
#define HIGH (BIG_PAGES - 9216) /* first page of the layout above 4 GiB */

typedef enum BigKind { BIG_ZERO, BIG_DATA, BIG_TEXT } BigKind;

/*
 * The layout, in stream order. Why this shape: the writer's iovec list
 * holds 256 entries and its buffer 32 KiB. A normal page takes two entries
 * (its buffered header, the page by reference); a run of ZERO records one
 * (consecutive buffered bytes merge). 4000 ZERO records fill the buffer,
 * which flushes it, so the next run of more than 128 normal pages fills
 * the list exactly when a buffered header is added; the long stretch of
 * ZERO records after it then wrote over that header before it was sent
 * (the old writer). Compressible text pages add compressed records, and
 * later passes XBZRLE deltas.
 */
static const struct {
    BigKind kind;
    int pages;
} big_layout_table[] = {
    {BIG_ZERO, 4000}, {BIG_DATA, 168}, {BIG_ZERO, 4000}, {BIG_DATA, 300},
    {BIG_TEXT, 50},   {BIG_ZERO, 500}, {BIG_DATA, 64},
};

/*
 * Writes the layout above 4 GiB (a header with its high half overwritten
 * could name another valid page there) and 64 data pages just below.
 * Returns the number of pages after HIGH it spans; *normal, *zero and
 * *text count its data, zero and compressible pages.
 */
static uint64_t big_layout(RAMBlock *rb, uint64_t *normal, uint64_t *zero,
                           uint64_t *text)
{
    uint64_t p = HIGH;

    *normal = 64;
    *zero = *text = 0;
    for (uint64_t i = 0; i < 64; i++) {
        fill_page(rb, (4ull << 30) / GW_PAGE_SIZE - 64 + i, (uint32_t)i + 1);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(big_layout_table); i++) {
        uint64_t n = (uint64_t)big_layout_table[i].pages;
        switch (big_layout_table[i].kind) {
        case BIG_ZERO:
            memset(rb->host + p * GW_PAGE_SIZE, 0, n * GW_PAGE_SIZE);
            *zero += n;
            p += n;
            break;
        case BIG_DATA:
            for (uint64_t j = 0; j < n; j++, p++) {
                fill_page(rb, p, (uint32_t)(p * 3));
            }
            *normal += n;
            break;
        case BIG_TEXT:
            for (uint64_t j = 0; j < n; j++, p++) {
                fill_text(rb, p, (uint32_t)p);
            }
            *text += n;
            break;
        }
    }
    g_assert(p <= BIG_PAGES);
    return p - HIGH;
}

static void big_case(Fixture *fx, bool compress, bool xbzrle)
{
    Machine *src = &fx->src;
    g_autoptr(GError) err = NULL;
    QEMUFile *f;

    if (compress) {
        set_compress(MIG_COMPRESSION_LZ4, xbzrle, true, 2, 2);
    } else {
        set_caps(xbzrle, false);
    }
    fixture_ram(fx, BIG_PAGES);
    uint64_t normal, zero, text;
    uint64_t span = big_layout(src->ram, &normal, &zero, &text);
    ram_register(src);
    ram_stats_reset();
    f = open_file(fx->path, true);
    qemu_savevm_state_header(f);
    if (!qemu_savevm_state_setup(f, &err)) {
        fail_msg("setup: %s", err->message);
    }
    iterate_until_done(f);
    assert_int_equal(atomic_load(&ram_stats.normal),
                     normal + (compress ? 0 : text));
    /* two passes rewriting every data page above 4 GiB a little */
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t p = HIGH; p < HIGH + span; p++) {
            if (!buffer_is_zero(src->ram->host + p * GW_PAGE_SIZE,
                                GW_PAGE_SIZE)) {
                guest_poke(src->ram, p, (size_t)(p * 29 + pass) % GW_PAGE_SIZE,
                           (uint8_t)(0x80 + pass));
            }
        }
        assert_true(ram_bitmap_sync(&err));
        iterate_until_done(f);
    }
    switchover = true;
    if (!qemu_savevm_state_complete(f, &err)) {
        fail_msg("complete: %s", err->message);
    }
    switchover = false;
    qemu_savevm_state_cleanup();
    assert_true(qemu_fclose(f, &err));
    assert_int_equal(atomic_load(&ram_stats.duplicate), zero);
    if (xbzrle) {
        assert_true(atomic_load(&xbzrle_stats.pages) >= 2 * (normal - 64));
    }
    if (compress) {
        assert_true(atomic_load(&compression_stats.pages) >= text);
    }

    if (!load_stream(&fx->dst, fx->path, &err)) {
        fail_msg("load: %s", err->message);
    }
    assert_blocks_equal(src->ram, fx->dst.ram);
}

void test_ram_stream_big_plain(void **state)
{
    big_case(*state, false, false);
}

void test_ram_stream_big_xbzrle(void **state)
{
    big_case(*state, false, true);
}

void test_ram_stream_big_compress(void **state)
{
    big_case(*state, true, false);
}
