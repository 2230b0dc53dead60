/*
 * Unit tests for the stream layer: QEMUFile (migration/qemu-file.c) fields
 * and buffers round-trip over a real socket, page data queued by reference
 * is sent as it is at flush time, a short stream gives a sticky error, a
 * shutdown from another thread unblocks a reader; and the vmstate field
 * tables (migration/vmstate.c) round-trip and refuse bad counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/channel.h"
#include "migration/qemu-file.h"
#include "migration/vmstate.h"

/* A channel over one end of a socketpair (the fd: transport). */
static MigChannel *chan_from_fd(int fd)
{
    g_autofree char *s = g_strdup_printf("fd:%d", fd);
    MigUri u;
    MigChannel *c;

    assert_true(mig_uri_parse(s, &u, NULL));
    c = mig_connect(&u, -1, NULL);
    mig_uri_clear(&u);
    assert_non_null(c);
    return c;
}

typedef struct Pair {
    QEMUFile *out, *in;
} Pair;

static void pair_open(Pair *p)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    p->out = qemu_file_new_output(chan_from_fd(sv[0]));
    p->in = qemu_file_new_input(chan_from_fd(sv[1]));
}

typedef struct Writer {
    QEMUFile *f;
    size_t n;
    uint8_t *data;
} Writer;

static gpointer write_big(gpointer opaque)
{
    Writer *w = opaque;

    qemu_put_be32(w->f, (uint32_t)w->n);
    qemu_put_buffer(w->f, w->data, w->n);
    qemu_fflush(w->f);
    return NULL;
}

static void test_fields_round_trip(void **state)
{
    Pair p;
    char name[256];
    uint8_t page[4096];

    pair_open(&p);
    memset(page, 0xab, sizeof(page));
    qemu_put_byte(p.out, 0x7e);
    qemu_put_be16(p.out, 0xbeef);
    qemu_put_be32(p.out, 0xdeadbeef);
    qemu_put_be64(p.out, 0x0123456789abcdefull);
    qemu_put_counted_string(p.out, "pc.ram");
    qemu_put_buffer_async(p.out, page, sizeof(page));
    /* queued by reference: what goes out is the page at flush time */
    page[0] = 0x11;
    qemu_fflush(p.out);
    assert_int_equal(qemu_file_get_error(p.out), 0);
    assert_int_equal(qemu_file_transferred(p.out),
                     1 + 2 + 4 + 8 + 1 + 6 + 4096);

    assert_int_equal(qemu_get_byte(p.in), 0x7e);
    assert_int_equal(qemu_get_be16(p.in), 0xbeef);
    assert_int_equal(qemu_get_be32(p.in), 0xdeadbeef);
    assert_int_equal(qemu_get_be64(p.in), 0x0123456789abcdefull);
    qemu_get_counted_string(p.in, name);
    assert_string_equal(name, "pc.ram");
    uint8_t back[4096];
    qemu_get_buffer(p.in, back, sizeof(back));
    assert_memory_equal(back, page, sizeof(page));
    assert_int_equal(qemu_file_get_error(p.in), 0);
    assert_true(qemu_fclose(p.out, NULL));
    assert_true(qemu_file_at_eof(p.in));
    assert_true(qemu_fclose(p.in, NULL));
}

static void test_big_buffer_blocks_and_resumes(void **state)
{
    Pair p;
    Writer w = {.n = 8 << 20};

    pair_open(&p);
    w.f = p.out;
    w.data = g_malloc(w.n);
    for (size_t i = 0; i < w.n; i++) {
        w.data[i] = (uint8_t)(i * 31 + 7);
    }
    /* more than a socket buffer: the writer waits for the reader */
    GThread *t = g_thread_new("writer", write_big, &w);
    uint32_t n = qemu_get_be32(p.in);
    assert_int_equal(n, w.n);
    g_autofree uint8_t *back = g_malloc(n);
    qemu_get_buffer(p.in, back, n);
    g_thread_join(t);
    assert_memory_equal(back, w.data, n);
    assert_true(qemu_fclose(p.out, NULL));
    assert_true(qemu_fclose(p.in, NULL));
    g_free(w.data);
}

static void test_short_stream_is_sticky(void **state)
{
    Pair p;

    pair_open(&p);
    qemu_put_be16(p.out, 0x1234);
    assert_true(qemu_fclose(p.out, NULL)); /* the peer hangs up */
    assert_int_equal(qemu_get_be32(p.in), 0); /* 2 of 4 bytes */
    assert_int_equal(qemu_file_get_error(p.in), -EIO);
    assert_string_equal(qemu_file_error_message(p.in),
                        "unexpected end of migration stream");
    /* every later read is zero, the first error stays */
    assert_int_equal(qemu_get_be64(p.in), 0);
    qemu_file_set_error(p.in, -EINVAL, "something else");
    assert_string_equal(qemu_file_error_message(p.in),
                        "unexpected end of migration stream");
    g_autoptr(GError) err = NULL;
    assert_false(qemu_fclose(p.in, &err));
    assert_non_null(err);
}

static gpointer shutdown_later(gpointer f)
{
    g_usleep(100000);
    qemu_file_shutdown(f);
    return NULL;
}

static void test_shutdown_unblocks_reader(void **state)
{
    Pair p;
    gint64 t0 = g_get_monotonic_time();

    pair_open(&p);
    GThread *t = g_thread_new("cancel", shutdown_later, p.in);
    assert_int_equal(qemu_get_be32(p.in), 0); /* nothing ever comes */
    g_thread_join(t);
    assert_int_equal(qemu_file_get_error(p.in), -ECANCELED);
    assert_true(g_get_monotonic_time() - t0 < 5 * G_USEC_PER_SEC);
    qemu_fclose(p.in, NULL);
    qemu_fclose(p.out, NULL);
}

/* ---- vmstate ------------------------------------------------------------- */

typedef struct Item {
    uint32_t id;
    uint64_t val;
} Item;

typedef struct Dev {
    bool flag;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    uint8_t fixed[5];
    uint32_t blen;
    uint8_t blob[32];
    Item one;
    uint32_t nitems;
    Item items[4];
    Item pair[2];
} Dev;

static const VMStateField item_fields[] = {
    VMSTATE_UINT32("id", Item, id),
    VMSTATE_UINT64("val", Item, val),
    VMSTATE_END,
};

static const VMStateField dev_fields[] = {
    VMSTATE_BOOL("flag", Dev, flag),
    VMSTATE_UINT8("u8", Dev, u8),
    VMSTATE_UINT16("u16", Dev, u16),
    VMSTATE_UINT32("u32", Dev, u32),
    VMSTATE_UINT64("u64", Dev, u64),
    VMSTATE_BUFFER("fixed", Dev, fixed),
    VMSTATE_UINT32("blen", Dev, blen),
    VMSTATE_VBUFFER("blob", Dev, blob, blen),
    VMSTATE_STRUCT("one", Dev, one, item_fields),
    VMSTATE_UINT32("nitems", Dev, nitems),
    VMSTATE_VARRAY("items", Dev, items, nitems, item_fields),
    VMSTATE_ARRAY("pair", Dev, pair, item_fields),
    VMSTATE_END,
};

static Dev sample(void)
{
    Dev d = {
        .flag = true, .u8 = 0xfe, .u16 = 0xface, .u32 = 0xc0ffee,
        .u64 = 1ull << 60, .fixed = {1, 2, 3, 4, 5}, .blen = 3,
        .blob = {9, 8, 7}, .one = {42, 4242}, .nitems = 2,
        .items = {{1, 10}, {2, 20}}, .pair = {{5, 50}, {6, 60}},
    };
    return d;
}

static void test_vmstate_round_trip(void **state)
{
    Pair p;
    Dev d = sample(), back;

    pair_open(&p);
    vmstate_save(p.out, dev_fields, &d);
    qemu_fflush(p.out);
    memset(&back, 0, sizeof(back));
    assert_true(vmstate_load(p.in, dev_fields, &back, NULL));
    assert_memory_equal(&back, &d, sizeof(d));
    qemu_fclose(p.out, NULL);
    qemu_fclose(p.in, NULL);
}

/* Corrupts one field on the wire and expects a refusal naming it. */
static void expect_refusal(void (*mangle)(Dev *), const char *field)
{
    Pair p;
    Dev d = sample(), back;
    g_autoptr(GError) err = NULL;

    mangle(&d);
    pair_open(&p);
    vmstate_save(p.out, dev_fields, &d);
    qemu_fflush(p.out);
    assert_false(vmstate_load(p.in, dev_fields, &back, &err));
    assert_non_null(strstr(err->message, field));
    qemu_fclose(p.out, NULL);
    qemu_fclose(p.in, NULL);
}

/* The saver clamps to the array; write the bad count by hand instead. */
static void bad_blen(Dev *d) { d->blen = 33; }
static void bad_nitems(Dev *d) { d->nitems = 5; }

static void test_vmstate_refusals(void **state)
{
    Pair p;
    Dev back;
    g_autoptr(GError) err = NULL;

    expect_refusal(bad_blen, "'blob'");
    expect_refusal(bad_nitems, "'items'");

    /* a bool that is neither 0 nor 1 */
    pair_open(&p);
    qemu_put_byte(p.out, 2);
    qemu_fflush(p.out);
    assert_false(vmstate_load(p.in, dev_fields, &back, &err));
    assert_non_null(strstr(err->message, "'flag'"));
    qemu_fclose(p.out, NULL);
    qemu_fclose(p.in, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_round_trip),
        cmocka_unit_test(test_big_buffer_blocks_and_resumes),
        cmocka_unit_test(test_short_stream_is_sticky),
        cmocka_unit_test(test_shutdown_unblocks_reader),
        cmocka_unit_test(test_vmstate_round_trip),
        cmocka_unit_test(test_vmstate_refusals),
    };
    migration_channels_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
