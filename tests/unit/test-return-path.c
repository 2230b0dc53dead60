/*
 * Unit tests of the return path (migration/return-path.c) over a
 * socketpair: the raw bytes of each message, the reader thread's
 * callbacks, two writer threads at once, everything the reader refuses, a
 * peer that goes away, stopping a blocked reader, a page-request callback
 * that fails. One case holds a writer inside rp_send_req_pages: the test
 * links with -Wl,--wrap=g_mutex_lock and puts a gate there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "../../migration/channel-internal.h"
#include "../../migration/return-path.h"
#include "migration/channel.h"
#include "postcopy-stream-helpers.h"

#define TIMEOUT_MS 5000 /* only ever reached when something is broken */

static const MigChannelOps pair_ops = {
    .scheme = "socketpair",
    .close = mig_channel_close_plain,
};

/* What the reader's callbacks were given. */
typedef struct RPLog {
    GMutex lock;
    GCond cond;
    GPtrArray *log;  /* protected by lock */
    int errors;      /* protected by lock */
    int fail_req_at; /* req_pages number that fails (1-based); 0: none */
    int reqs;        /* protected by lock */
} RPLog;

typedef struct RPFixture {
    MigChannel *dst; /* destination end: the writer's */
    MigChannel *src; /* source end: the reader's */
    RPWriter *w;
    RPReader *r;
    RPLog log;
} RPFixture;

static void rp_log_add(RPLog *l, char *entry)
{
    g_mutex_lock(&l->lock);
    g_ptr_array_add(l->log, entry);
    g_cond_broadcast(&l->cond);
    g_mutex_unlock(&l->lock);
}

static bool cb_req_pages(void *opaque, const char *block, uint64_t start,
                         uint32_t len, GError **errp)
{
    RPLog *l = opaque;
    int n;

    g_mutex_lock(&l->lock);
    n = ++l->reqs;
    g_mutex_unlock(&l->lock);
    rp_log_add(l,
               g_strdup_printf("req %s 0x%" PRIx64 " 0x%x", block, start, len));
    if (n == l->fail_req_at) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "mock req_pages refused");
        return false;
    }
    return true;
}

static void cb_pong(void *opaque, uint32_t value)
{
    rp_log_add(opaque, g_strdup_printf("pong 0x%x", value));
}

static void cb_shut(void *opaque, uint32_t value)
{
    rp_log_add(opaque, g_strdup_printf("shut 0x%x", value));
}

static void cb_error(void *opaque, const char *msg)
{
    RPLog *l = opaque;

    g_mutex_lock(&l->lock);
    l->errors++;
    g_mutex_unlock(&l->lock);
    rp_log_add(l, g_strdup_printf("error %s", msg));
}

static const RPReaderOps rp_ops = {
    .req_pages = cb_req_pages,
    .pong = cb_pong,
    .shut = cb_shut,
    .error = cb_error,
};

static int rp_setup(void **state)
{
    RPFixture *fx = g_new0(RPFixture, 1);
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fx->dst = mig_channel_new(&pair_ops, sv[0], NULL);
    fx->src = mig_channel_new(&pair_ops, sv[1], NULL);
    assert_non_null(fx->dst);
    assert_non_null(fx->src);
    g_mutex_init(&fx->log.lock);
    g_cond_init(&fx->log.cond);
    fx->log.log = g_ptr_array_new_with_free_func(g_free);
    *state = fx;
    return 0;
}

static int rp_teardown(void **state)
{
    RPFixture *fx = *state;

    rp_reader_stop(fx->r);
    rp_writer_close(fx->w);
    mig_channel_close(fx->dst, NULL);
    mig_channel_close(fx->src, NULL);
    g_ptr_array_unref(fx->log.log);
    g_mutex_clear(&fx->log.lock);
    g_cond_clear(&fx->log.cond);
    g_free(fx);
    return 0;
}

static void rp_start(RPFixture *fx, bool writer, bool reader)
{
    g_autoptr(GError) err = NULL;

    if (writer) {
        fx->w = rp_writer_open(fx->dst, &err);
        assert_non_null(fx->w);
    }
    if (reader) {
        fx->r = rp_reader_start(fx->src, &rp_ops, &fx->log, &err);
        assert_non_null(fx->r);
    }
}

/* The destination end goes away: the originals and the writer's copy. */
static void rp_close_dst(RPFixture *fx)
{
    rp_writer_close(fx->w);
    fx->w = NULL;
    mig_channel_close(fx->dst, NULL);
    fx->dst = NULL;
}

/* Waits for the reader thread to end by itself. */
static void rp_wait_end(RPFixture *fx)
{
    if (!rp_reader_wait(fx->r, TIMEOUT_MS)) {
        fail_msg("the return path reader did not end");
    }
}

static char *rp_log_str(RPLog *l)
{
    GString *s = g_string_new(NULL);

    g_mutex_lock(&l->lock);
    for (guint i = 0; i < l->log->len; i++) {
        g_string_append_printf(s, "%s%s", s->len ? "; " : "",
                               (char *)l->log->pdata[i]);
    }
    g_mutex_unlock(&l->lock);
    return g_string_free(s, false);
}

static void assert_rp_log(RPLog *l, const char *exp)
{
    g_autofree char *got = rp_log_str(l);

    if (strcmp(got, exp)) {
        fail_msg("return path log \"%s\", expected \"%s\"", got, exp);
    }
}

/* Raw bytes from the test straight into the destination end. */
static void rp_write_raw(RPFixture *fx, const void *p, size_t n)
{
    struct iovec iov = {(void *)p, n};

    assert_int_equal(mig_channel_writev_all(fx->dst, &iov, 1), 1);
}

static void test_rp_shut_pong(void **state)
{
    RPFixture *fx = *state;

    rp_start(fx, true, true);
    assert_true(rp_send_pong(fx->w, 0x12345678));
    assert_true(rp_send_pong(fx->w, 0));
    assert_true(rp_send_pong(fx->w, 0xffffffff));
    assert_true(rp_send_shut(fx->w, 0));
    rp_wait_end(fx);
    assert_rp_log(&fx->log,
                  "pong 0x12345678; pong 0x0; pong 0xffffffff; shut 0x0");
    /* the reader ended at SHUT: what follows is not read */
    assert_true(rp_send_pong(fx->w, 7));
    assert_null(rp_writer_error(fx->w));
}

static void test_rp_shut_failed(void **state)
{
    RPFixture *fx = *state;

    rp_start(fx, true, true);
    assert_true(rp_send_shut(fx->w, 1));
    rp_wait_end(fx);
    assert_rp_log(&fx->log, "shut 0x1");
}

/* The wire, read raw: QEMU's be16 type, be16 len, data. */
static void test_rp_layout_raw(void **state)
{
    RPFixture *fx = *state;
    static const uint8_t exp[] = {
        /* REQ_PAGES_ID, len 19: be64 start, be32 len, counted name */
        0x00, 0x03, 0x00, 0x13, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78, 0x90,
        0x00, 0x00, 0x20, 0x00, 0x06, 'p', 'c', '.', 'r', 'a', 'm',
        /* REQ_PAGES, len 12: the same block */
        0x00, 0x04, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x00,
        0x00, 0x00, 0x10, 0x00,
        /* REQ_PAGES_ID for another block, len 18 */
        0x00, 0x03, 0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x10, 0x00, 0x05, 'o', 't', 'h', 'e', 'r',
        /* back to the first: REQ_PAGES_ID again */
        0x00, 0x03, 0x00, 0x13, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x00,
        0xff, 0xff, 0xf0, 0x00, 0x06, 'p', 'c', '.', 'r', 'a', 'm',
        /* PONG, SHUT */
        0x00, 0x02, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef, /**/
        0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, /**/
    };
    g_autoptr(GByteArray) got = g_byte_array_new();
    struct iovec iov;
    uint8_t extra;

    rp_start(fx, true, false);
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x1234567890ull, 0x2000));
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x5000, 0x1000));
    assert_true(rp_send_req_pages(fx->w, "other", 0, 0x1000));
    assert_true(
        rp_send_req_pages(fx->w, "pc.ram", 0xfffffffffffff000ull, 0xfffff000));
    assert_true(rp_send_pong(fx->w, 0xdeadbeef));
    assert_true(rp_send_shut(fx->w, 0));
    rp_close_dst(fx);
    g_byte_array_set_size(got, sizeof(exp));
    iov = (struct iovec){got->data, got->len};
    assert_int_equal(mig_channel_readv_all(fx->src, &iov, 1), 1);
    assert_bytes(got, exp, sizeof(exp), "return path messages");
    /* nothing more: each message was flushed whole, then the end */
    iov = (struct iovec){&extra, 1};
    assert_int_equal(mig_channel_readv_all(fx->src, &iov, 1), 0);
}

/* The same messages through the reader thread. */
static void test_rp_req_pages(void **state)
{
    RPFixture *fx = *state;

    rp_start(fx, true, true);
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x1234567890ull, 0x2000));
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x5000, 0x1000));
    assert_true(rp_send_req_pages(fx->w, "other", 0, 0x1000));
    assert_true(rp_send_req_pages(fx->w, "other", 0x1000, 0x1000));
    assert_true(
        rp_send_req_pages(fx->w, "pc.ram", 0xfffffffffffff000ull, 0xfffff000));
    assert_true(rp_send_pong(fx->w, 2));
    assert_true(rp_send_shut(fx->w, 0));
    rp_wait_end(fx);
    assert_rp_log(&fx->log, "req pc.ram 0x1234567890 0x2000; "
                            "req pc.ram 0x5000 0x1000; "
                            "req other 0x0 0x1000; req other 0x1000 0x1000; "
                            "req pc.ram 0xfffffffffffff000 0xfffff000; "
                            "pong 0x2; shut 0x0");
}

#define REQS_PER_THREAD 500

typedef struct Requester {
    RPWriter *w;
    const char *block;
    uint64_t id;
    gboolean ok;
} Requester;

/* Page i of thread `id` at (id << 40) + i pages. */
static gpointer requester(gpointer opaque)
{
    Requester *q = opaque;

    q->ok = true;
    for (uint64_t i = 0; i < REQS_PER_THREAD; i++) {
        q->ok &= rp_send_req_pages(q->w, q->block, (q->id << 40) + (i << 12),
                                   0x1000);
    }
    return NULL;
}

/*
 * Two requesters at once, then SHUT: every request arrives once, whole,
 * in each thread's order and for the block that thread asked about.
 */
static void rp_concurrent(RPFixture *fx, const char *block0, const char *block1)
{
    Requester q[2] = {
        {fx->w, block0, 1, false},
        {fx->w, block1, 2, false},
    };
    GThread *t[2];
    uint64_t next[2] = {0, 0};
    guint n;

    for (int i = 0; i < 2; i++) {
        t[i] = g_thread_new("requester", requester, &q[i]);
    }
    for (int i = 0; i < 2; i++) {
        g_thread_join(t[i]);
        assert_true(q[i].ok);
    }
    assert_true(rp_send_shut(fx->w, 0));
    rp_wait_end(fx);
    g_mutex_lock(&fx->log.lock);
    n = fx->log.log->len;
    g_mutex_unlock(&fx->log.lock);
    assert_int_equal(fx->log.errors, 0);
    assert_int_equal(n, 1 + 2 * REQS_PER_THREAD + 1);
    for (guint i = 1; i + 1 < n; i++) {
        const char *e = fx->log.log->pdata[i];
        char block[256];
        uint64_t start, id;
        unsigned len;
        if (sscanf(e, "req %255s 0x%" SCNx64 " 0x%x", block, &start, &len) !=
            3) {
            fail_msg("entry %u: \"%s\"", i, e);
        }
        id = start >> 40;
        assert_true(id == 1 || id == 2);
        if (strcmp(block, q[id - 1].block)) {
            fail_msg("entry %u: \"%s\": a request of thread %" PRIu64
                     " for the wrong block",
                     i, e, id);
        }
        assert_int_equal(start & ((1ull << 40) - 1), next[id - 1] << 12);
        next[id - 1]++;
        assert_int_equal(len, 0x1000);
    }
    assert_int_equal(next[0], REQS_PER_THREAD);
    assert_int_equal(next[1], REQS_PER_THREAD);
    assert_string_equal(fx->log.log->pdata[n - 1], "shut 0x0");
}

static void test_rp_concurrent_same_block(void **state)
{
    RPFixture *fx = *state;

    rp_start(fx, true, true);
    /* the block is known: every request from the threads is REQ_PAGES */
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0, 0x1000));
    rp_concurrent(fx, "pc.ram", "pc.ram");
}

/*
 * Each thread its own block: every request switches blocks, so each is a
 * REQ_PAGES_ID, and a writer that let another request in between its
 * choice and its send would name the wrong block (the race is rarely lost
 * here; test_rp_req_pages_interleaved forces it).
 */
static void test_rp_concurrent_two_blocks(void **state)
{
    RPFixture *fx = *state;

    rp_start(fx, true, true);
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0, 0x1000));
    rp_concurrent(fx, "blk1", "blk2");
}

/*
 * A gate in g_mutex_lock (the test links with -Wl,--wrap=g_mutex_lock,
 * so the calls of return-path.c come here): a thread that armed it stops
 * before its Nth lock from then on until the test opens the gate. Were
 * rp_send_req_pages to take the writer's lock twice (once to choose
 * REQ_PAGES or REQ_PAGES_ID, once to send), this would hold a writer
 * between the two.
 */
void __real_g_mutex_lock(GMutex *m);
void __wrap_g_mutex_lock(GMutex *m);

static __thread int gate_at; /* 0: off; n: stop before the nth lock */

static struct {
    GMutex lock;
    GCond cond;
    bool stopped; /* a thread waits at the gate */
    bool done;    /* the gated thread finished without stopping */
    bool open;
} gate;

void __wrap_g_mutex_lock(GMutex *m)
{
    if (gate_at && --gate_at == 0) {
        __real_g_mutex_lock(&gate.lock);
        gate.stopped = true;
        g_cond_broadcast(&gate.cond);
        while (!gate.open) {
            g_cond_wait(&gate.cond, &gate.lock);
        }
        g_mutex_unlock(&gate.lock);
    }
    __real_g_mutex_lock(m);
}

typedef struct Gated {
    RPWriter *w;
    const char *block;
    uint64_t start;
} Gated;

/* A request whose second lock waits at the gate. */
static gpointer gated_request(gpointer opaque)
{
    Gated *g = opaque;

    gate_at = 2;
    assert_true(rp_send_req_pages(g->w, g->block, g->start, 0x1000));
    gate_at = 0;
    __real_g_mutex_lock(&gate.lock);
    gate.done = true;
    g_cond_broadcast(&gate.cond);
    g_mutex_unlock(&gate.lock);
    return NULL;
}

/*
 * Thread A asks for a page of a new block, gated at its second lock; the
 * test's thread then asks for another page of blk1. Whatever the order on
 * the wire, the source must read both as requests for blk1: a REQ_PAGES
 * (no name) must never overtake the REQ_PAGES_ID that names its block, as
 * it would if the writer dropped its lock between choosing the message
 * ("REQ_PAGES_ID, the last block is now blk1") and sending it. QEMU's
 * migrate_send_rp_req_pages chooses and sends under one hold of rp_mutex;
 * so does ours, and A then never stops at the gate.
 */
static void test_rp_req_pages_interleaved(void **state)
{
    RPFixture *fx = *state;
    Gated a;
    GThread *t;

    rp_start(fx, true, true);
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0, 0x1000));
    a = (Gated){fx->w, "blk1", 0x1000};
    g_mutex_init(&gate.lock);
    g_cond_init(&gate.cond);
    gate.stopped = gate.done = gate.open = false;
    t = g_thread_new("gated", gated_request, &a);
    g_mutex_lock(&gate.lock);
    while (!gate.stopped && !gate.done) {
        g_cond_wait(&gate.cond, &gate.lock);
    }
    g_mutex_unlock(&gate.lock);
    assert_true(rp_send_req_pages(fx->w, "blk1", 0x2000, 0x1000));
    g_mutex_lock(&gate.lock);
    gate.open = true;
    g_cond_broadcast(&gate.cond);
    g_mutex_unlock(&gate.lock);
    g_thread_join(t);
    g_mutex_clear(&gate.lock);
    g_cond_clear(&gate.cond);
    assert_true(rp_send_shut(fx->w, 0));
    rp_wait_end(fx);
    assert_int_equal(fx->log.errors, 0);
    assert_int_equal(fx->log.log->len, 4);
    /* stopped: A waited before taking the writer's lock, so went second */
    assert_rp_log(&fx->log, gate.stopped ? "req pc.ram 0x0 0x1000; "
                                           "req blk1 0x2000 0x1000; "
                                           "req blk1 0x1000 0x1000; shut 0x0"
                                         : "req pc.ram 0x0 0x1000; "
                                           "req blk1 0x1000 0x1000; "
                                           "req blk1 0x2000 0x1000; shut 0x0");
}

typedef struct RPErrorCase {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    bool close; /* the destination end closes after the bytes */
    const char *error;
} RPErrorCase;

static const uint8_t rp_type0[] = {0x00, 0x00, 0x00, 0x00};
static const uint8_t rp_type7[] = {0x00, 0x07, 0x00, 0x00};
static const uint8_t rp_typeffff[] = {0xff, 0xff, 0x00, 0x04, 0, 0, 0, 0};
static const uint8_t rp_shut_len2[] = {0x00, 0x01, 0x00, 0x02, 0x00, 0x00};
static const uint8_t rp_pong_len8[] = {0x00, 0x02, 0x00, 0x08, 0, 0,
                                       0,    1,    0,    0,    0, 2};
static const uint8_t rp_req_len16[] = {
    0x00, 0x04, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t rp_resume_len0[] = {0x00, 0x06, 0x00, 0x00};
static const uint8_t rp_reqid_len12[] = {0x00, 0x03, 0x00, 0x0c, 0, 0, 0, 0,
                                         0,    0,    0,    0,    0, 0, 0, 0};
static const uint8_t rp_reqid_name_long[] = {
    0x00, 0x03, 0x00, 0x13, 0,    0,   0,   0,   0,   0,   0,  0,
    0,    0,    0x10, 0x00, 0x07, 'p', 'c', '.', 'r', 'a', 'm'}; /* name length
                                                                    7, 6 bytes
                                                                  */
static const uint8_t rp_req_first[] = {0x00, 0x04, 0x00, 0x0c, 0, 0, 0,    0,
                                       0,    0,    0,    0,    0, 0, 0x10, 0};
static const uint8_t rp_half_header[] = {0x00, 0x02, 0x00};
static const uint8_t rp_half_body[] = {0x00, 0x02, 0x00, 0x04, 0x00, 0x00};

static const RPErrorCase rp_error_cases[] = {
#define RPC(n, b, c, e)                                                        \
    {                                                                          \
        n, b, sizeof(b), c, e                                                  \
    }
    RPC("type 0", rp_type0, false,
        "return path: Received invalid message 0x0000 length 0x0000"),
    RPC("type 7", rp_type7, false,
        "return path: Received invalid message 0x0007 length 0x0000"),
    RPC("type 0xffff", rp_typeffff, false,
        "return path: Received invalid message 0xffff length 0x0004"),
    RPC("SHUT of 2 bytes", rp_shut_len2, false,
        "return path: Received 'SHUT' message (0x0001) with incorrect length "
        "2 expecting 4"),
    RPC("PONG of 8 bytes", rp_pong_len8, false,
        "return path: Received 'PONG' message (0x0002) with incorrect length "
        "8 expecting 4"),
    RPC("REQ_PAGES of 16 bytes", rp_req_len16, false,
        "return path: Received 'REQ_PAGES' message (0x0004) with incorrect "
        "length 16 expecting 12"),
    RPC("RESUME_ACK of 0 bytes", rp_resume_len0, false,
        "return path: Received 'RESUME_ACK' message (0x0006) with incorrect "
        "length 0 expecting 4"),
    RPC("REQ_PAGES_ID without a name", rp_reqid_len12, false,
        "return path: Received 'REQ_PAGES_ID' message (0x0003) with "
        "incorrect length 12"),
    RPC("REQ_PAGES_ID whose name is longer", rp_reqid_name_long, false,
        "return path: Received 'REQ_PAGES_ID' message (0x0003) with "
        "incorrect length 19"),
    RPC("REQ_PAGES with no previous block", rp_req_first, false,
        "return path: ram_save_queue_pages no previous block"),
    {"the peer closes", NULL, 0, true,
     "return path: unexpected end of migration stream"},
    RPC("the peer closes in a header", rp_half_header, true,
        "return path: unexpected end of migration stream"),
    RPC("the peer closes in a body", rp_half_body, true,
        "return path: unexpected end of migration stream"),
#undef RPC
};

/* Each malformed input ends the reader with one error callback only. */
static void test_rp_reader_errors(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(rp_error_cases); i++) {
        const RPErrorCase *c = &rp_error_cases[i];
        g_autofree char *exp = g_strdup_printf("error %s", c->error);
        g_autofree char *got = NULL;
        void *fx_state;
        RPFixture *fx;

        assert_int_equal(rp_setup(&fx_state), 0);
        fx = fx_state;
        rp_start(fx, false, true);
        if (c->len) {
            rp_write_raw(fx, c->bytes, c->len);
        }
        if (c->close) {
            rp_close_dst(fx);
        }
        if (!rp_reader_wait(fx->r, TIMEOUT_MS)) {
            fail_msg("%s: the return path reader did not end", c->name);
        }
        got = rp_log_str(&fx->log);
        if (!g_str_has_prefix(got, exp)) {
            fail_msg("%s: log \"%s\", expected \"%s\"", c->name, got, exp);
        }
        assert_int_equal(fx->log.errors, 1);
        assert_int_equal(fx->log.log->len, 1);
        assert_int_equal(rp_teardown(&fx_state), 0);
    }
}

/* A page request the source refuses ends the reader with that error. */
static void test_rp_req_pages_refused(void **state)
{
    RPFixture *fx = *state;

    fx->log.fail_req_at = 2;
    rp_start(fx, true, true);
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x1000, 0x1000));
    assert_true(rp_send_req_pages(fx->w, "pc.ram", 0x2000, 0x1000));
    assert_true(rp_send_pong(fx->w, 3));
    rp_wait_end(fx);
    assert_rp_log(&fx->log, "req pc.ram 0x1000 0x1000; "
                            "req pc.ram 0x2000 0x1000; "
                            "error return path: mock req_pages refused");
}

/* Stopping a reader blocked in read (or part-way through a message). */
static void test_rp_reader_stop_blocked(void **state)
{
    RPFixture *fx = *state;
    static const uint8_t part[] = {0x00, 0x02, 0x00, 0x04, 0x00};

    for (int i = 0; i < 2; i++) {
        int64_t t0;
        rp_start(fx, false, true);
        if (i) {
            rp_write_raw(fx, part, sizeof(part));
        }
        /* let it block (not needed for correctness: any moment will do) */
        g_usleep(20 * 1000);
        assert_false(rp_reader_wait(fx->r, 0));
        t0 = g_get_monotonic_time();
        rp_reader_stop(fx->r);
        fx->r = NULL;
        assert_true(g_get_monotonic_time() - t0 < 1000 * 1000);
        assert_rp_log(&fx->log, "");
    }
}

/* The writer after the source went away, and after a shutdown. */
static void test_rp_writer_errors(void **state)
{
    RPFixture *fx = *state;
    g_autofree char *e1 = NULL;
    g_autofree char *e2 = NULL;

    rp_start(fx, true, false);
    assert_true(rp_send_pong(fx->w, 1));
    mig_channel_close(fx->src, NULL);
    fx->src = NULL;
    /* the peer's receive queue was dropped: EPIPE or ECONNRESET */
    assert_false(rp_send_pong(fx->w, 2));
    e1 = rp_writer_error(fx->w);
    assert_non_null(e1);
    assert_true(g_str_has_prefix(e1, "return path: "));
    assert_false(rp_send_req_pages(fx->w, "pc.ram", 0, 0x1000));
    e2 = rp_writer_error(fx->w);
    assert_string_equal(e1, e2); /* the first failure is kept */
}

static void test_rp_writer_shutdown(void **state)
{
    RPFixture *fx = *state;
    g_autofree char *e = NULL;

    rp_start(fx, true, false);
    rp_writer_shutdown(fx->w);
    assert_false(rp_send_shut(fx->w, 0));
    e = rp_writer_error(fx->w);
    assert_non_null(e);
    assert_non_null(strstr(e, "shut down"));
}

/* The way back needs a socket: a memory channel has none. */
static void test_rp_needs_socket(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GError) err2 = NULL;
    MigChannel *mem = mig_channel_new_memory(NULL);

    assert_non_null(mem);
    assert_null(rp_writer_open(mem, &err));
    assert_err(err, "has no way back");
    assert_null(rp_reader_start(mem, &rp_ops, NULL, &err2));
    assert_err(err2, "has no way back");
    mig_channel_close(mem, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define RT(t) cmocka_unit_test_setup_teardown(t, rp_setup, rp_teardown)
        RT(test_rp_shut_pong),
        RT(test_rp_shut_failed),
        RT(test_rp_layout_raw),
        RT(test_rp_req_pages),
        RT(test_rp_concurrent_same_block),
        RT(test_rp_concurrent_two_blocks),
        RT(test_rp_req_pages_interleaved),
        RT(test_rp_req_pages_refused),
        RT(test_rp_reader_stop_blocked),
        RT(test_rp_writer_errors),
        RT(test_rp_writer_shutdown),
#undef RT
        cmocka_unit_test(test_rp_reader_errors),
        cmocka_unit_test(test_rp_needs_socket),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
