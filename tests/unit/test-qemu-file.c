/*
 * Unit tests for the stream layer: QEMUFile (migration/qemu-file.c) fields
 * and buffers round-trip over a real socket, page data queued by reference
 * is sent as it is at flush time, a short stream gives a sticky error, a
 * shutdown from another thread unblocks a reader, every byte queued past
 * the writer's iovec limit reaches the channel intact; and the vmstate field
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
    assert_true(qemu_fclose(p.out, NULL));    /* the peer hangs up */
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

/* ---- the writer keeps every queued byte --------------------------------- */

/*
 * Drains the input end of a pair into `got` until end of stream, so that
 * the writer never waits on a full socket and every byte is kept.
 */
typedef struct Drain {
    int fd;
    GByteArray *got;
} Drain;

static gpointer drain_thread(gpointer opaque)
{
    Drain *d = opaque;
    uint8_t chunk[65536];
    ssize_t n;

    while ((n = read(d->fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR) {
            continue;
        }
        g_assert(n > 0);
        g_byte_array_append(d->got, chunk, (guint)n);
    }
    return NULL;
}

/* What a writer op puts on the stream. */
typedef enum WriteOp {
    OP_PAGE,  /* be64 header (buffered) + a 4 KiB page by reference */
    OP_ZERO,  /* be64 header + one byte, as a ZERO record */
    OP_BODY,  /* be64 header + be32 len + a buffered body (compressed) */
    OP_LARGE, /* a buffered blob larger than the output buffer */
    OP_REFS,  /* a page by reference with no header */
    OP__MAX,
} WriteOp;

#define POOL_PAGES 512

typedef struct WriterMix {
    const char *name;
    /* runs of ops: each {op, count}, ended by count 0; or random */
    struct {
        WriteOp op;
        int count;
    } runs[6];
    int random_ops; /* > 0: that many ops drawn at random instead */
} WriterMix;

static const WriterMix writer_mixes[] = {
    /* the reported case: many by-reference pages, then buffered records */
    {"pages-then-zero", {{OP_PAGE, 300}, {OP_ZERO, 600}, {OP_PAGE, 10}}},
    {"pages-then-bodies", {{OP_PAGE, 700}, {OP_BODY, 400}, {OP_ZERO, 5}}},
    {"pages-then-large",
     {{OP_PAGE, 129}, {OP_LARGE, 3}, {OP_PAGE, 400}, {OP_LARGE, 1}}},
    {"refs-only", {{OP_REFS, 1000}, {OP_ZERO, 300}}},
    {"alternating",
     {{OP_ZERO, 1},
      {OP_PAGE, 255},
      {OP_BODY, 1},
      {OP_PAGE, 256},
      {OP_ZERO, 700}}},
    {"random", {{0, 0}}, 5000},
};

/* Appends the op's bytes to the stream and to `want`. */
static void writer_op(QEMUFile *f, GByteArray *want, WriteOp op,
                      const uint8_t *pool, uint32_t *seq)
{
    uint8_t hdr[12];
    uint32_t n = (*seq)++;
    uint64_t h = (uint64_t)n << 32 | 0x5a000000u | op;

    for (int i = 0; i < 8; i++) {
        hdr[i] = (uint8_t)(h >> (56 - 8 * i));
    }
    switch (op) {
    case OP_PAGE:
    case OP_REFS: {
        /* every other pool page, so that neighbours never merge */
        const uint8_t *page = pool + (size_t)(n % (POOL_PAGES / 2)) * 2 * 4096;
        if (op == OP_PAGE) {
            qemu_put_be64(f, h);
            g_byte_array_append(want, hdr, 8);
        }
        qemu_put_buffer_async(f, page, 4096);
        g_byte_array_append(want, page, 4096);
        break;
    }
    case OP_ZERO:
        qemu_put_be64(f, h);
        qemu_put_byte(f, 0);
        g_byte_array_append(want, hdr, 8);
        g_byte_array_append(want, (const uint8_t *)"", 1);
        break;
    case OP_BODY:
    case OP_LARGE: {
        size_t len = op == OP_BODY ? 100 + n % 3000 : 40000 + n % 30000;
        g_autofree uint8_t *body = g_malloc(len);
        for (size_t i = 0; i < len; i++) {
            body[i] = (uint8_t)(n * 131 + i * 7 + (i >> 8));
        }
        qemu_put_be64(f, h);
        g_byte_array_append(want, hdr, 8);
        if (op == OP_BODY) {
            qemu_put_be32(f, (uint32_t)len);
            for (int i = 0; i < 4; i++) {
                hdr[i] = (uint8_t)(len >> (24 - 8 * i));
            }
            g_byte_array_append(want, hdr, 4);
        }
        qemu_put_buffer(f, body, len);
        g_byte_array_append(want, body, (guint)len);
        break;
    }
    default:
        g_assert_not_reached();
    }
}

/*
 * Queues far more than the writer's iovec limit (256 entries) and more
 * than its buffer, in each mix of by-reference pages and buffered bytes,
 * and compares every byte that reaches the channel with what was written.
 */
static void test_writer_keeps_queued_bytes(void **state)
{
    uint8_t *pool = g_malloc((size_t)POOL_PAGES * 4096);

    for (size_t i = 0; i < (size_t)POOL_PAGES * 4096; i++) {
        pool[i] = (uint8_t)(i / 4096 * 37 + i * 11 + 1);
    }
    /*
     * Each mix at four phases (0-3 leading entries): whether a full iovec
     * list meets a buffered write or a reference depends on the parity.
     */
    for (size_t k = 0; k < 4 * G_N_ELEMENTS(writer_mixes); k++) {
        const WriterMix *mix = &writer_mixes[k / 4];
        int phase = (int)(k % 4);
        g_autoptr(GByteArray) want = g_byte_array_new();
        g_autoptr(GByteArray) got = g_byte_array_new();
        g_autoptr(GRand) rand = g_rand_new_with_seed(42 + (guint32)k);
        uint32_t seq = 0;
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        Drain d = {sv[1], got};
        GThread *t = g_thread_new("drain", drain_thread, &d);
        QEMUFile *out = qemu_file_new_output(chan_from_fd(sv[0]));

        for (int i = 0; i < phase; i++) {
            writer_op(out, want, OP_REFS, pool, &seq);
        }
        if (mix->random_ops) {
            for (int i = 0; i < mix->random_ops; i++) {
                /* mostly pages and small records, a few large blobs */
                int r = g_rand_int_range(rand, 0, 100);
                WriteOp op = r < 50   ? OP_PAGE
                             : r < 75 ? OP_ZERO
                             : r < 90 ? OP_REFS
                             : r < 99 ? OP_BODY
                                      : OP_LARGE;
                writer_op(out, want, op, pool, &seq);
            }
        }
        for (int r = 0; r < 6 && mix->runs[r].count; r++) {
            for (int i = 0; i < mix->runs[r].count; i++) {
                writer_op(out, want, mix->runs[r].op, pool, &seq);
            }
        }
        assert_true(qemu_fclose(out, NULL));
        g_thread_join(t);
        close(sv[1]);
        if (got->len != want->len) {
            fail_msg("%s/%d: %u bytes reached the channel, %u were written",
                     mix->name, phase, got->len, want->len);
        }
        for (guint i = 0; i < want->len; i++) {
            if (got->data[i] != want->data[i]) {
                fail_msg("%s/%d: byte %u of %u is 0x%02x, written 0x%02x",
                         mix->name, phase, i, want->len, got->data[i],
                         want->data[i]);
            }
        }
    }
    g_free(pool);
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
        .flag = true,
        .u8 = 0xfe,
        .u16 = 0xface,
        .u32 = 0xc0ffee,
        .u64 = 1ull << 60,
        .fixed = {1, 2, 3, 4, 5},
        .blen = 3,
        .blob = {9, 8, 7},
        .one = {42, 4242},
        .nitems = 2,
        .items = {{1, 10}, {2, 20}},
        .pair = {{5, 50}, {6, 60}},
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
static void bad_blen(Dev *d)
{
    d->blen = 33;
}
static void bad_nitems(Dev *d)
{
    d->nitems = 5;
}

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
        cmocka_unit_test(test_writer_keeps_queued_bytes),
        cmocka_unit_test(test_vmstate_round_trip),
        cmocka_unit_test(test_vmstate_refusals),
    };
    migration_channels_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
