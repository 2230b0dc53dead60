/*
 * Unit tests: PAGE payloads read straight into guest RAM
 * (migration/ram-load-direct.c) over a real socket, with the bytes
 * arriving whole, in small pieces (reads that end inside a header or a
 * page), out of order (wrong guesses undone), next to pages the load
 * already wrote (never guessed), and cut short (a clear error). A writer
 * thread plays the source; a small loader plays ram_load().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "godwit/bitmap.h"
#include "migration/channel.h"
#include "migration/qemu-file.h"
#include "../../migration/ram.h"

#define PAGES 256

typedef struct Source {
    GByteArray *stream;
    int fd;
    size_t piece_max; /* 0: all at once; else random pieces up to this */
    bool hold_open;   /* keep the socket open after the stream */
    GMutex lock;
    GCond cond;
    bool released;
} Source;

static void put_be64(GByteArray *s, uint64_t v)
{
    uint8_t b[8];

    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    }
    g_byte_array_append(s, b, 8);
}

/* The page's contents in this test: distinct per page and per seed. */
static void page_fill(uint8_t *p, uint64_t page, uint32_t seed)
{
    for (size_t i = 0; i < GW_PAGE_SIZE; i += 4) {
        uint32_t v = (uint32_t)(page * 2654435761u) ^ (uint32_t)i ^ seed;
        memcpy(p + i, &v, 4);
    }
}

static bool first_record = true;

static void put_header(GByteArray *s, uint64_t page, uint64_t flags)
{
    if (first_record) {
        put_be64(s, page << GW_PAGE_SHIFT | flags);
        g_byte_array_append(s, (const uint8_t *)"\x06pc.ram", 7);
        first_record = false;
    } else {
        put_be64(s, page << GW_PAGE_SHIFT | flags | RAM_SAVE_FLAG_CONTINUE);
    }
}

static void put_page(GByteArray *s, uint64_t page, uint32_t seed)
{
    uint8_t buf[GW_PAGE_SIZE];

    put_header(s, page, RAM_SAVE_FLAG_PAGE);
    page_fill(buf, page, seed);
    g_byte_array_append(s, buf, GW_PAGE_SIZE);
}

static void put_zero(GByteArray *s, uint64_t page)
{
    put_header(s, page, RAM_SAVE_FLAG_ZERO);
    g_byte_array_append(s, (const uint8_t *)"", 1);
}

static void *source_thread(void *opaque)
{
    Source *src = opaque;
    size_t off = 0;

    /*
     * The first header alone, then a pause: the loader's first read takes
     * just that, so the payloads after it are not buffered and go the
     * direct way (a stream under the 256 KiB buffer otherwise arrives in
     * one buffered read and never tests anything here).
     */
    assert_int_equal(write(src->fd, src->stream->data, 15), 15);
    g_usleep(20000);
    off = 15;
    while (off < src->stream->len) {
        size_t n = src->stream->len - off;
        if (src->piece_max) {
            n = MIN(n, (size_t)g_random_int_range(1, (int)src->piece_max));
        }
        ssize_t w = write(src->fd, src->stream->data + off, n);
        assert_true(w > 0);
        off += (size_t)w;
        if (src->piece_max) {
            g_usleep(g_random_int_range(0, 3) * 50);
        }
    }
    g_mutex_lock(&src->lock);
    while (src->hold_open && !src->released) {
        g_cond_wait(&src->cond, &src->lock);
    }
    g_mutex_unlock(&src->lock);
    close(src->fd);
    return NULL;
}

typedef struct Dest {
    RAMBlock rb;
    unsigned long *touched;
    QEMUFile *f;
    unsigned long *populated; /* what the populate hook was asked for */
} Dest;

static void dest_open(Dest *d, int fd)
{
    g_autofree char *s = g_strdup_printf("fd:%d", fd);
    MigUri u;

    memset(d, 0, sizeof(*d));
    g_strlcpy(d->rb.idstr, "pc.ram", sizeof(d->rb.idstr));
    d->rb.used_length = (uint64_t)PAGES * GW_PAGE_SIZE;
    d->rb.host = mmap(NULL, d->rb.used_length, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(d->rb.host != MAP_FAILED);
    d->touched = bitmap_new(PAGES);
    d->populated = bitmap_new(PAGES);
    assert_true(mig_uri_parse(s, &u, NULL));
    MigChannel *c = mig_connect(&u, -1, NULL);
    mig_uri_clear(&u);
    assert_non_null(c);
    d->f = qemu_file_new_input(c);
    assert_true(qemu_file_direct_ok(d->f));
}

static void dest_close(Dest *d)
{
    qemu_fclose(d->f, NULL);
    munmap(d->rb.host, d->rb.used_length);
    g_free(d->touched);
    g_free(d->populated);
}

/* The load's populate hook: pages a read is about to land in. */
static void populate_hook(void *opaque, RAMBlock *rb, uint64_t page)
{
    Dest *d = opaque;

    assert_ptr_equal(rb, &d->rb);
    for (uint64_t p = page; p < MIN(page + RAM_DIRECT_READ_PAGES, PAGES); p++) {
        set_bit(p, d->populated);
    }
}

/* ram_load()'s part that matters here; true at EOS. */
static bool load(Dest *d)
{
    for (;;) {
        uint64_t hdr = qemu_get_be64(d->f);
        uint64_t flags = hdr & ~GW_PAGE_MASK;
        uint64_t page = hdr >> GW_PAGE_SHIFT;
        char id[256];

        if (qemu_file_get_error(d->f)) {
            return false;
        }
        if (flags == RAM_SAVE_FLAG_EOS) {
            return true;
        }
        if (!(flags & RAM_SAVE_FLAG_CONTINUE)) {
            qemu_get_counted_string(d->f, id);
            assert_string_equal(id, "pc.ram");
        }
        assert_true(page < PAGES);
        if (flags & RAM_SAVE_FLAG_PAGE) {
            if (!ram_load_page_direct(d->f, &d->rb, page, d->touched,
                                      populate_hook, d)) {
                return false;
            }
        } else {
            assert_true(flags & RAM_SAVE_FLAG_ZERO);
            uint8_t ch = qemu_get_byte(d->f);
            memset(d->rb.host + (page << GW_PAGE_SHIFT), ch, GW_PAGE_SIZE);
        }
    }
}

/* Runs `stream` through a socket into a fresh destination. */
static bool run(Dest *d, GByteArray *stream, size_t piece_max, bool hold_open,
                void (*before)(Dest *d))
{
    Source src = {
        .stream = stream, .piece_max = piece_max, .hold_open = hold_open};
    int sv[2];
    pthread_t t;
    bool ok;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    dest_open(d, sv[1]);
    if (before) {
        before(d);
    }
    src.fd = sv[0];
    g_mutex_init(&src.lock);
    g_cond_init(&src.cond);
    assert_int_equal(pthread_create(&t, NULL, source_thread, &src), 0);
    ok = load(d);
    g_mutex_lock(&src.lock);
    src.released = true;
    g_cond_signal(&src.cond);
    g_mutex_unlock(&src.lock);
    pthread_join(t, NULL);
    g_mutex_clear(&src.lock);
    g_cond_clear(&src.cond);
    return ok;
}

static void assert_page(Dest *d, uint64_t page, uint32_t seed)
{
    uint8_t want[GW_PAGE_SIZE];

    page_fill(want, page, seed);
    assert_memory_equal(d->rb.host + (page << GW_PAGE_SHIFT), want,
                        GW_PAGE_SIZE);
    assert_true(test_bit(page, d->touched));
}

static void assert_zero(Dest *d, uint64_t page)
{
    static const uint8_t zero[GW_PAGE_SIZE];

    assert_memory_equal(d->rb.host + (page << GW_PAGE_SHIFT), zero,
                        GW_PAGE_SIZE);
}

static GByteArray *stream_new(void)
{
    first_record = true;
    return g_byte_array_new();
}

/* Every page in order (a bulk pass): whole, then in pieces. */
static void test_bulk(void **state)
{
    for (size_t pieces = 0; pieces <= 1; pieces++) {
        g_autoptr(GByteArray) s = stream_new();
        Dest d;
        for (uint64_t p = 0; p < PAGES; p++) {
            put_page(s, p, 7);
        }
        put_be64(s, RAM_SAVE_FLAG_EOS);
        assert_true(run(&d, s, pieces ? 6000 : 0, false, NULL));
        for (uint64_t p = 0; p < PAGES; p++) {
            assert_page(&d, p, 7);
            /* populated ahead of the read, never faulted in one by one */
            assert_true(test_bit(p, d.populated));
        }
        /* every byte counted once, however it was read */
        assert_int_equal(qemu_file_transferred(d.f), s->len);
        dest_close(&d);
    }
}

/*
 * Records that break every guess: a jump, a ZERO record, a page sent
 * twice, a page before the previous one. The guessed pages in between
 * stay zero; every record lands where its header says.
 */
static GByteArray *jumps_stream(void)
{
    GByteArray *s = stream_new();

    put_page(s, 0, 1);
    put_page(s, 1, 1);
    put_page(s, 10, 1); /* guesses 2..9 wrong */
    put_zero(s, 11);
    put_page(s, 12, 1);
    put_page(s, 12, 2); /* again: the new contents win */
    put_page(s, 5, 1);  /* backwards */
    put_page(s, 6, 1);
    put_page(s, PAGES - 1, 1); /* the block's last page: nothing to guess */
    put_page(s, 40, 1);
    put_be64(s, RAM_SAVE_FLAG_EOS);
    return s;
}

static void check_jumps(Dest *d)
{
    assert_page(d, 0, 1);
    assert_page(d, 1, 1);
    for (uint64_t p = 2; p < 5; p++) {
        assert_zero(d, p);
    }
    assert_page(d, 5, 1);
    assert_page(d, 6, 1);
    for (uint64_t p = 7; p < 10; p++) {
        assert_zero(d, p);
        assert_false(test_bit(p, d->touched));
    }
    assert_page(d, 10, 1);
    assert_zero(d, 11);
    assert_page(d, 12, 2);
    for (uint64_t p = 13; p < 40; p++) {
        assert_zero(d, p);
    }
    assert_page(d, 40, 1);
    assert_zero(d, 41);
    assert_page(d, PAGES - 1, 1);
}

static void test_wrong_guesses(void **state)
{
    for (int round = 0; round < 20; round++) {
        g_autoptr(GByteArray) s = jumps_stream();
        Dest d;
        /* round 0 all at once; then pieces as small as 1 byte */
        assert_true(run(&d, s, round ? (size_t)(round * 500) : 0, false, NULL));
        check_jumps(&d);
        assert_int_equal(qemu_file_transferred(d.f), s->len);
        dest_close(&d);
    }
}

/* Pages 20 and 21 hold data from before: no guess may write them. */
static void preload(Dest *d)
{
    for (uint64_t p = 20; p <= 21; p++) {
        memset(d->rb.host + (p << GW_PAGE_SHIFT), 0xAA, GW_PAGE_SIZE);
        set_bit(p, d->touched);
    }
}

static void test_touched_not_guessed(void **state)
{
    g_autoptr(GByteArray) s = stream_new();
    uint8_t aa[GW_PAGE_SIZE];
    Dest d;

    for (uint64_t p = 16; p < 20; p++) {
        put_page(s, p, 3);
    }
    put_page(s, 30, 3); /* had 20 been guessed, it would be lost */
    put_page(s, 31, 3);
    put_be64(s, RAM_SAVE_FLAG_EOS);
    assert_true(run(&d, s, 0, false, preload));
    for (uint64_t p = 16; p < 20; p++) {
        assert_page(&d, p, 3);
    }
    memset(aa, 0xAA, sizeof(aa));
    assert_memory_equal(d.rb.host + (20 << GW_PAGE_SHIFT), aa, GW_PAGE_SIZE);
    assert_memory_equal(d.rb.host + (21 << GW_PAGE_SHIFT), aa, GW_PAGE_SIZE);
    assert_page(&d, 30, 3);
    assert_page(&d, 31, 3);
    dest_close(&d);
}

/*
 * A source that sends one page and EOS, then waits (as a source waits
 * for the destination at the end): the guesses must not wait for bytes
 * that are not coming.
 */
static void test_no_wait_for_guesses(void **state)
{
    g_autoptr(GByteArray) s = stream_new();
    Dest d;

    put_page(s, 0, 5);
    put_be64(s, RAM_SAVE_FLAG_EOS);
    assert_true(run(&d, s, 0, true, NULL));
    assert_page(&d, 0, 5);
    assert_zero(&d, 1);
    assert_false(test_bit(1, d.touched));
    dest_close(&d);
}

/* The stream ends inside a page: the load fails with the reason. */
static void test_cut_inside_page(void **state)
{
    g_autoptr(GByteArray) s = stream_new();
    Dest d;

    put_page(s, 0, 9);
    put_page(s, 1, 9);
    g_byte_array_set_size(s, s->len - 100);
    assert_false(run(&d, s, 0, false, NULL));
    assert_string_equal(qemu_file_error_message(d.f),
                        "unexpected end of migration stream");
    assert_page(&d, 0, 9);
    dest_close(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bulk),
        cmocka_unit_test(test_wrong_guesses),
        cmocka_unit_test(test_touched_not_guessed),
        cmocka_unit_test(test_no_wait_for_guesses),
        cmocka_unit_test(test_cut_inside_page),
    };

    migration_channels_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
