/*
 * Writes the fuzz targets' seed corpora from godwit's own output: real
 * migration streams saved by the source side (ram.c, savevm.c) of the
 * same stopped VM the stream fuzzer loads into (fuzz-vm.h), multifd
 * channels written with the real packet encoder and send methods, and
 * QMP/HMP sessions. Usage: gen-fuzz-corpus OUTDIR (makes OUTDIR/TARGET/).
 * scripts/fuzz-corpus runs it; the output is committed under
 * tests/fuzz/corpus/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "../../migration/compression.h"
#include "../../migration/multifd.h"
#include "../../migration/channel-internal.h"
#include "../../migration/ram.h"
#include "../../migration/return-path.h"
#include "../../migration/xbzrle.h"
#include "migration/channel.h"
#include "fuzz-vm.h"

static const char *outdir;

static void write_seed(const char *target, const char *name, uint8_t cfg,
                       const void *data, size_t len)
{
    g_autofree char *dir = g_build_filename(outdir, target, NULL);
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autofree uint8_t *buf = g_malloc(len + 1);
    g_autoptr(GError) err = NULL;

    buf[0] = cfg;
    memcpy(buf + 1, data, len);
    g_mkdir_with_parents(dir, 0755);
    if (!g_file_set_contents(path, (char *)buf, len + 1, &err)) {
        fprintf(stderr, "gen-fuzz-corpus: %s\n", err->message);
        exit(1);
    }
}

/*
 * Page `p`, by p % 4: text (compresses), random (does not; page 1 only,
 * to keep the seeds small), zero, or constant with a little noise.
 */
static void fill_page(RAMBlock *rb, uint64_t p, uint32_t seed)
{
    uint8_t *h = rb->host + p * GW_PAGE_SIZE;
    uint32_t x = seed * 2654435761u + (uint32_t)p + 1;

    for (size_t i = 0; i < GW_PAGE_SIZE; i++) {
        x = x * 1664525u + 1013904223u;
        switch (p % 4) {
        case 0:
            h[i] = "godwit migrates "[(i + seed) % 16];
            break;
        case 1:
            h[i] = p == 1 ? (uint8_t)(x >> 24) : (uint8_t)(i / 64);
            break;
        case 2:
            h[i] = 0;
            break;
        default:
            h[i] = i % 512 < 8 ? (uint8_t)(x >> 24) : 0x5a;
        }
    }
}

static void set_dev_state(void)
{
    fuzz_dev = (FuzzDevState){
        .flag = true,
        .u8 = 8,
        .u16 = 0x1616,
        .u32 = 0x32323232,
        .u64 = 0x6464646464646464ull,
        .buf = "abcdefg",
        .vlen = 5,
        .vbuf = "hello",
        .one = {1, 2},
        .n = 2,
        .many = {{3, 4}, {5, 6}},
        .fixed = {{7, 8}, {9, 10}},
    };
}

/* ---- streams ------------------------------------------------------------ */

typedef struct Source {
    Machine m;
    MigChannel *mem;
    QEMUFile *f;
} Source;

static void source_open(Source *s, uint8_t cfg)
{
    fuzz_vm_options(cfg);
    s->m = (Machine){.accel = &fuzz_vm_accel};
    fuzz_vm_setup(&s->m);
    set_dev_state();
    ram_stats_reset();
    /* ten pages of each kind at the start, two far apart; holes */
    for (uint64_t p = 0; p < 10; p++) {
        fill_page(s->m.ram, p, 1);
    }
    fill_page(s->m.ram, 33, 1);
    fill_page(s->m.ram, FUZZ_VM_PAGES - 1, 1);
    s->mem = mig_channel_new_memory(NULL);
    g_assert(s->mem);
    s->f = qemu_file_new_output(s->mem);
}

static void iterate(QEMUFile *f)
{
    int r;

    do {
        r = qemu_savevm_state_iterate(f);
        g_assert(r >= 0);
    } while (r == 0);
}

/* The guest writes a few bytes of a few pages; the log sees it. */
static void guest_pass(Source *s, int pass)
{
    for (uint64_t p = 0; p < 3; p++) {
        s->m.ram->host[p * GW_PAGE_SIZE + (pass * 131 + p * 7) % 4096] ^=
            (uint8_t)(pass + 1);
        set_bit(p, fuzz_vm_dirty);
    }
    fill_page(s->m.ram, 20, 100 + pass); /* a page rewritten whole */
    set_bit(20, fuzz_vm_dirty);
    g_assert(ram_bitmap_sync(NULL));
}

/* Bytes written so far on the source's channel. */
static GByteArray *source_bytes(Source *s)
{
    GByteArray *out = g_byte_array_new();
    uint8_t buf[4096];
    off_t off = 0;
    ssize_t n;

    qemu_fflush(s->f);
    g_assert(qemu_file_check(s->f, NULL));
    while ((n = pread(mig_channel_fd(s->mem), buf, sizeof(buf), off)) > 0) {
        g_byte_array_append(out, buf, n);
        off += n;
    }
    return out;
}

static void source_close(Source *s, const char *name, uint8_t cfg)
{
    g_autoptr(GByteArray) b = source_bytes(s);

    write_seed("fuzz-migration-stream", name, cfg, b->data, b->len);
    qemu_fclose(s->f, NULL);
    fuzz_vm_teardown(&s->m);
}

/* Precopy: bulk stage, `passes` dirty passes, the switchover. */
static void gen_precopy(const char *name, uint8_t cfg, int passes)
{
    Source s;

    source_open(&s, cfg);
    qemu_savevm_state_header(s.f);
    g_assert(qemu_savevm_state_setup(s.f, NULL));
    iterate(s.f);
    for (int i = 0; i < passes; i++) {
        guest_pass(&s, i);
        iterate(s.f);
    }
    fuzz_vm_switchover = true;
    g_assert(qemu_savevm_state_complete(s.f, NULL));
    source_close(&s, name, cfg);
}

/* The bytes that `fn` writes on a QEMUFile of their own (a package). */
static GByteArray *package(void (*fn)(QEMUFile *f))
{
    Source p = {.mem = mig_channel_new_memory(NULL)};
    GByteArray *b;

    p.f = qemu_file_new_output(p.mem);
    fn(p.f);
    b = source_bytes(&p);
    qemu_fclose(p.f, NULL);
    return b;
}

static void package_body(QEMUFile *f)
{
    qemu_savevm_send_postcopy_listen(f);
    g_assert(qemu_savevm_state_complete_devices(f, NULL));
    qemu_savevm_send_postcopy_run(f);
}

/*
 * Post-copy as QEMU's source sends it: return path, ping, advise, the
 * RAM's START and a pass, discards, the package (listen, devices, run),
 * then what the listen thread reads: a pass, recv-bitmap and resume (a
 * recovery), the END and EOF.
 */
static void gen_postcopy(const char *name, bool recovery)
{
    static const uint64_t start[2] = {0x2000, 0x10000};
    static const uint64_t len[2] = {0x1000, 0x3000};
    g_autoptr(GByteArray) pkg = NULL;
    Source s;

    source_open(&s, 0);
    qemu_savevm_state_header(s.f);
    qemu_savevm_send_open_return_path(s.f);
    qemu_savevm_send_ping(s.f, 1);
    qemu_savevm_send_postcopy_advise(s.f);
    g_assert(qemu_savevm_state_setup(s.f, NULL));
    iterate(s.f);
    guest_pass(&s, 0);
    qemu_savevm_send_postcopy_ram_discard(s.f, "pc.ram", 2, start, len);
    fuzz_vm_switchover = true;
    pkg = package(package_body);
    qemu_savevm_send_packaged(s.f, pkg->data, pkg->len);
    iterate(s.f);
    if (recovery) {
        qemu_savevm_send_recv_bitmap(s.f, "pc.ram");
        qemu_savevm_send_postcopy_resume(s.f);
    }
    g_assert(qemu_savevm_state_complete_postcopy(s.f, NULL));
    source_close(&s, name, 0);
}

static void gen_streams(void)
{
    gen_precopy("precopy", 0, 1);
    gen_precopy("xbzrle", FUZZ_CFG_XBZRLE, 3);
    /* the same streams over a socket: pages straight into guest RAM */
    gen_precopy("socket-precopy", FUZZ_CFG_SOCKET, 1);
    gen_precopy("socket-xbzrle", FUZZ_CFG_SOCKET | FUZZ_CFG_XBZRLE, 3);
    gen_precopy("compress-zlib", FUZZ_CFG_COMPRESS, 1);
    gen_precopy("compress-zstd", FUZZ_CFG_COMPRESS | 1 << FUZZ_CFG_METHOD_SHIFT,
                1);
    gen_precopy("compress-lz4",
                FUZZ_CFG_COMPRESS | 2 << FUZZ_CFG_METHOD_SHIFT |
                    FUZZ_CFG_THREADS2 | FUZZ_CFG_XBZRLE,
                2);
    gen_postcopy("postcopy", false);
    gen_postcopy("postcopy-recovery", true);
}

/* ---- multifd ------------------------------------------------------------ */

/* One packet of `n` pages from `pages` (zero ones listed as zero pages). */
static void put_packet(GByteArray *out, const MultiFDMethods *ops,
                       MultiFDSendParams *p, uint32_t flag, RAMBlock *rb,
                       const uint64_t *pages, uint32_t n, uint64_t num)
{
    static uint8_t hdr[MULTIFD_HDR_SIZE + 8 * MULTIFD_PACKET_PAGES];
    MultiFDPayload pl = {0};
    uint64_t offsets[MULTIFD_PACKET_PAGES];
    uint32_t zero = 0;
    MultiFDPacketHdr h = {
        .magic = MULTIFD_MAGIC,
        .version = MULTIFD_VERSION,
        .flags = flag | (n ? 0 : MULTIFD_FLAG_SYNC),
        .pages_alloc = MULTIFD_PACKET_PAGES,
        .packet_num = num,
    };

    for (uint32_t i = 0; i < n; i++) { /* normal pages first */
        if (pages[i] % 4 != 2) {
            offsets[pl.n] = pages[i] * GW_PAGE_SIZE;
            pl.host[pl.n++] = rb->host + pages[i] * GW_PAGE_SIZE;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (pages[i] % 4 == 2) {
            offsets[pl.n + zero++] = pages[i] * GW_PAGE_SIZE;
        }
    }
    g_assert(ops->send_prepare(p, &pl, NULL));
    h.normal_pages = pl.n;
    h.zero_pages = zero;
    h.next_packet_size = pl.payload_size;
    if (n) {
        g_strlcpy(h.ramblock, rb->idstr, sizeof(h.ramblock));
    }
    g_byte_array_append(out, hdr, multifd_packet_encode(&h, offsets, hdr));
    for (int i = 0; i < pl.iovcnt; i++) {
        g_byte_array_append(out, pl.iov[i].iov_base, pl.iov[i].iov_len);
    }
}

static void gen_multifd(void)
{
    static const MigCompression methods[4] = {
        MIG_COMPRESSION_NONE, MIG_COMPRESSION_ZLIB, MIG_COMPRESSION_ZSTD,
        MIG_COMPRESSION_LZ4};
    static const char *const names[4] = {"none", "zlib", "zstd", "lz4"};
    static const uint64_t a[] = {0, 1, 2, 3, 4, 5, 6, 9}, b[] = {40, 42, 41};
    RAMBlock *rb = ram_block_new("pc.ram", 256 * GW_PAGE_SIZE, NULL);
    MultiFDInit init = {.magic = MULTIFD_MAGIC, .version = MULTIFD_VERSION};

    mig_compress_register_all();
    for (uint64_t p = 0; p < 256; p++) {
        fill_page(rb, p, 7);
    }
    for (int m = 0; m < 4; m++) {
        const MultiFDMethods *ops = multifd_methods(methods[m]);
        MultiFDSendParams p = {.compression = methods[m], .level = 1};
        uint32_t flag = multifd_compression_flag(methods[m]);
        g_autoptr(GByteArray) out = g_byte_array_new();
        uint8_t ib[MULTIFD_INIT_SIZE];

        g_assert(ops->send_setup(&p, NULL));
        multifd_init_encode(&init, ib);
        g_byte_array_append(out, ib, sizeof(ib));
        put_packet(out, ops, &p, flag, rb, a, G_N_ELEMENTS(a), 0);
        put_packet(out, ops, &p, flag, rb, NULL, 0, 1); /* SYNC */
        put_packet(out, ops, &p, flag, rb, b, G_N_ELEMENTS(b), 2);
        put_packet(out, ops, &p, flag, rb, NULL, 0, 3);
        write_seed("fuzz-multifd-packet", names[m], (uint8_t)m, out->data,
                   out->len);
        ops->send_cleanup(&p);
    }
    ram_block_free(rb);
}

/* ---- the return path --------------------------------------------------- */

static const MigChannelOps pair_ops = {
    .scheme = "socketpair",
    .close = mig_channel_close_plain,
};

/*
 * What a destination's RPWriter sends, read back from a socketpair:
 * `recovery` adds RECV_BITMAP (the 64 pages: every other 8 received) and
 * RESUME_ACK before the requests.
 */
static void gen_return_path(const char *name, bool recovery)
{
    static const unsigned long map[1] = {0x00ff00ff00ff00ffull};
    g_autoptr(GByteArray) out = g_byte_array_new();
    MigChannel *dst;
    RPWriter *w;
    uint8_t buf[4096];
    ssize_t n;
    int sv[2];

    g_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    dst = mig_channel_new(&pair_ops, sv[0], NULL);
    w = rp_writer_open(dst, NULL);
    g_assert(w);
    rp_send_pong(w, 1);
    if (recovery) {
        rp_send_recv_bitmap(w, "pc.ram", map, FUZZ_VM_PAGES);
        rp_send_resume_ack(w, MIGRATION_RESUME_ACK_VALUE);
    }
    rp_send_req_pages(w, "pc.ram", 0x3000, 0x2000); /* REQ_PAGES_ID */
    rp_send_req_pages(w, "pc.ram", 0x8000, 0x1000); /* REQ_PAGES */
    rp_send_shut(w, 0);
    rp_writer_close(w);
    mig_channel_close(dst, NULL);
    while ((n = read(sv[1], buf, sizeof(buf))) > 0) {
        g_byte_array_append(out, buf, n);
    }
    close(sv[1]);
    /* no options byte: write_seed's is dropped */
    write_seed("fuzz-return-path", name, out->data[0], out->data + 1,
               out->len - 1);
}

/* ---- XBZRLE deltas ------------------------------------------------------ */

/*
 * fuzz-xbzrle-decode's input: byte 0 0x80 (a 4 KiB page), byte 1 0 (the
 * old page is zero), then the encoder's delta to a page with a few runs.
 */
static void gen_xbzrle(void)
{
    static const int runs[][2] = {{0, 1}, {100, 3}, {200, 130}, {4000, 96}};
    g_autofree uint8_t *old = g_malloc0(GW_PAGE_SIZE);
    g_autofree uint8_t *new = g_malloc0(GW_PAGE_SIZE);
    g_autofree uint8_t *enc = g_malloc(2 * GW_PAGE_SIZE);

    for (size_t k = 0; k < G_N_ELEMENTS(runs); k++) {
        g_autofree char *name = g_strdup_printf("runs-%zu", k + 1);
        int len;

        memset(new + runs[k][0], 0x40 + (int)k, runs[k][1]);
        len = xbzrle_encode_buffer(old, new, GW_PAGE_SIZE, enc + 1,
                                   2 * GW_PAGE_SIZE - 1);
        g_assert(len > 0);
        enc[0] = 0; /* byte 1: seed 0, a zero old page */
        write_seed("fuzz-xbzrle-decode", name, 0x80, enc, len + 1);
    }
}

/* ---- QMP and HMP sessions ------------------------------------------------ */

static void text_seed(const char *target, const char *name, uint8_t cfg,
                      const char *text)
{
    write_seed(target, name, cfg, text, strlen(text));
}

/* HMP inputs are plain lines: no options byte. */
static void hmp_seed(const char *name, const char *text)
{
    g_autofree char *dir = g_build_filename(outdir, "fuzz-hmp", NULL);
    g_autofree char *path = g_build_filename(dir, name, NULL);

    g_mkdir_with_parents(dir, 0755);
    g_assert(g_file_set_contents(path, text, -1, NULL));
}

#define CAPS "{\"execute\": \"qmp_capabilities\"}\r\n"

static void gen_monitor(void)
{
    text_seed("fuzz-qmp", "negotiate", 0, CAPS);
    text_seed("fuzz-qmp", "query-commands", 7,
              CAPS "{\"execute\": \"query-commands\", \"id\": 1}\n");
    text_seed("fuzz-qmp", "set-parameters", 0,
              CAPS "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
                   "{\"max-bandwidth\": 1048576, \"downtime-limit\": 300, "
                   "\"multifd-compression\": \"zstd\", \"tls-creds\": \"\", "
                   "\"xbzrle-cache-size\": 4194304}}\n"
                   "{\"execute\": \"query-migrate-parameters\"}\n");
    text_seed("fuzz-qmp", "set-capabilities", 3,
              CAPS "{\"execute\": \"migrate-set-capabilities\", "
                   "\"arguments\": {\"capabilities\": [{\"capability\": "
                   "\"xbzrle\", \"state\": true}, {\"capability\": "
                   "\"postcopy-ram\", \"state\": false}]}}\n"
                   "{\"execute\": \"query-migrate-capabilities\"}\n");
    text_seed("fuzz-qmp", "hmp-via-qmp", 0,
              CAPS "{\"execute\": \"human-monitor-command\", \"arguments\": "
                   "{\"command-line\": \"info migrate_parameters\"}}\n");
    text_seed("fuzz-qmp", "echo", 1,
              CAPS "{\"execute\": \"test-args\", \"arguments\": {\"uri\": "
                   "\"tcp:1:2\", \"count\": -5, \"x\": [1.5, null, true, "
                   "\"\\u00e9\\ud834\\udd1e\"]}, \"id\": \"a\"}\n"
                   "{\"execute\": \"test-unicode\"} {\"execute\": "
                   "\"test-list\"}[1]\n{\"exec-oob\": \"test-fail\"}\n");
    text_seed("fuzz-qmp", "errors", 2,
              "{\"execute\": \"query-status\"}\n" CAPS CAPS
              "{\"execute\": 1}\n{\"arguments\": {}}\n{]\n\"\\u12\"\n"
              "{\"execute\": \"nope\"}\n");
    text_seed("fuzz-qmp", "objects", 0,
              CAPS "{\"execute\": \"object-add\", \"arguments\": "
                   "{\"qom-type\": \"authz-list\", \"id\": \"a0\", "
                   "\"policy\": \"deny\", \"rules\": [{\"match\": "
                   "\"CN=*\", \"policy\": \"allow\", \"format\": "
                   "\"glob\"}, {\"match\": \"x\"}]}}\n"
                   "{\"execute\": \"object-add\", \"arguments\": "
                   "{\"qom-type\": \"authz-simple\", \"id\": \"s0\", "
                   "\"identity\": \"CN=a,,b\"}}\n"
                   "{\"execute\": \"object-add\", \"arguments\": "
                   "{\"qom-type\": \"authz-simple\", \"id\": \"s0\"}}\n"
                   "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
                   "{\"tls-authz\": \"a0\"}}\n"
                   "{\"execute\": \"object-del\", \"arguments\": "
                   "{\"id\": \"a0\"}}\n");
    hmp_seed("objects", "object_add authz-list,id=a0,policy=allow,"
                        "rules.0.match=CN=*,,x,rules.0.format=glob\n"
                        "object_add authz-simple,id=s0\n"
                        "object_del a0\nobject_del a0\n");
    hmp_seed("info", "info status\ninfo migrate_capabilities\n"
                     "info migrate_parameters\nhelp\nhelp info\nhelp targs\n");
    hmp_seed("set", "migrate_set_capability xbzrle on\n"
                    "migrate_set_parameter max-bandwidth 64M\n"
                    "migrate_set_parameter multifd-compression zlib\n"
                    "migrate_set_parameter tls-creds \"\"\n"
                    "migrate_set_capability bogus off\n");
    hmp_seed("args", "targs -d -r \"exec:cat > x\" 0x10 1.5k off\n"
                     "targs 'it\\'s' 99999999999999999999\n"
                     "say   hello   world  \nfail\ninfo\n  \nnope\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen-fuzz-corpus OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    mig_compress_register_all();
    gen_streams();
    gen_multifd();
    gen_xbzrle();
    gen_return_path("requests", false);
    gen_return_path("recovery", true);
    gen_monitor();
    return 0;
}
