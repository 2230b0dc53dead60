/*
 * Benchmark: the page compression methods (migration/compress-*.c), one
 * thread, on the kinds of data the `fill` guest payload writes:
 *   random  xorshift64, incompressible
 *   half    each 4 KiB page: 2 KiB random, 2 KiB of one repeated byte
 *   text    English-like words, spaces, sentences and lines
 * For each method at level 1 and at a default-ish level, page by page (the
 * compress capability) and in packets of 128 pages (multifd), it prints a
 * markdown table: compression GB/s of input (wall clock), CPU seconds per
 * GB of input compressed (thread CPU time), decompression GB/s of output,
 * and the ratio (input / output). Each figure is the best of N runs.
 *
 * Page mode compresses into PAGE - 1 bytes, as a caller that sends a page
 * as it is when it does not shrink: such pages count 4096 bytes in the
 * ratio and are copied, not decoded, on the way back.
 *
 *   bench-compress [MiB per kind (32)] [runs (3)] [page|packet|both]
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../guest/lib/fill-pattern.h"
#include "../../migration/compression.h"

#define PAGE MIG_COMPRESS_PAGE_SIZE
#define PACKET_PAGES 128

/* ---- data: the `fill` payload's patterns (guest/lib/fill-pattern.h) ----- */

typedef enum DataKind { DATA_RANDOM, DATA_HALF, DATA_TEXT, DATA__MAX } DataKind;
static const char *const data_names[] = {"random", "half", "text"};

static void fill_page(uint8_t *page, uint64_t addr, DataKind kind)
{
    static const unsigned pattern[DATA__MAX] = {FILL_RANDOM, FILL_HALF,
                                                FILL_TEXT};

    fill_pattern_page(page, pattern[kind], mix64(0x5eed ^ (addr >> 12)) | 1);
}

/* ---- timing -------------------------------------------------------------- */

typedef struct Times {
    double wall, cpu;
} Times;

static Times now(void)
{
    struct timespec w, c;

    clock_gettime(CLOCK_MONOTONIC, &w);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
    return (Times){w.tv_sec + w.tv_nsec / 1e9, c.tv_sec + c.tv_nsec / 1e9};
}

static Times since(Times t0)
{
    Times t = now();

    return (Times){t.wall - t0.wall, t.cpu - t0.cpu};
}

static void keep_best(Times *best, Times t)
{
    best->wall = MIN(best->wall, t.wall);
    best->cpu = MIN(best->cpu, t.cpu);
}

/* ---- one configuration --------------------------------------------------- */

typedef struct Bench {
    uint8_t *data, *back;
    size_t n_pages;
    uint8_t *comp; /* bodies or payloads, one slot each */
    size_t comp_size;
    size_t slot; /* slot size */
    size_t *len; /* per page (0: sent as it is) or per packet */
} Bench;

typedef struct Result {
    Times comp, decomp;
    size_t out_bytes;
} Result;

static MigCompressCtx *ctx_or_die(MigCompression m, MigCompressMode mode,
                                  int level)
{
    GError *err = NULL;
    MigCompressCtx *ctx = mig_compress_ctx_new(m, mode, level, &err);

    if (!ctx) {
        fprintf(stderr, "%s\n", err->message);
        exit(1);
    }
    return ctx;
}

static void die_on(bool failed, GError *err)
{
    if (failed) {
        fprintf(stderr, "%s\n", err ? err->message : "failed");
        exit(1);
    }
}

static void run_pages(Bench *b, MigCompression m, int level, Result *r)
{
    MigCompressCtx *tx = ctx_or_die(m, MIG_COMPRESS_PAGE_SEND, level);
    MigCompressCtx *rx = ctx_or_die(m, MIG_COMPRESS_PAGE_RECV, level);
    GError *err = NULL;
    Times t = now();

    r->out_bytes = 0;
    for (size_t i = 0; i < b->n_pages; i++) {
        ssize_t len = mig_compress_page(tx, b->data + i * PAGE,
                                        b->comp + i * b->slot, PAGE - 1, &err);
        die_on(len < 0, err);
        b->len[i] = len;
        r->out_bytes += len ? (size_t)len : PAGE;
    }
    keep_best(&r->comp, since(t));
    t = now();
    for (size_t i = 0; i < b->n_pages; i++) {
        uint8_t *dst = b->back + i * PAGE;
        if (!b->len[i]) {
            memcpy(dst, b->data + i * PAGE, PAGE);
            continue;
        }
        die_on(!mig_decompress_page(rx, b->comp + i * b->slot, b->len[i], dst,
                                    &err),
               err);
    }
    keep_best(&r->decomp, since(t));
    mig_compress_ctx_free(tx);
    mig_compress_ctx_free(rx);
}

static void run_packets(Bench *b, MigCompression m, int level, Result *r)
{
    MigCompressCtx *tx = ctx_or_die(m, MIG_COMPRESS_STREAM_SEND, level);
    MigCompressCtx *rx = ctx_or_die(m, MIG_COMPRESS_STREAM_RECV, level);
    size_t packets = b->n_pages / PACKET_PAGES;
    uint8_t *src[PACKET_PAGES], *dst[PACKET_PAGES];
    GError *err = NULL;
    Times t = now();

    r->out_bytes = 0;
    for (size_t p = 0; p < packets; p++) {
        ssize_t len;
        for (size_t i = 0; i < PACKET_PAGES; i++) {
            src[i] = b->data + (p * PACKET_PAGES + i) * PAGE;
        }
        len = mig_stream_compress_pages(tx, src, PACKET_PAGES,
                                        b->comp + p * b->slot, b->slot, &err);
        die_on(len < 0, err);
        b->len[p] = len;
        r->out_bytes += len;
    }
    keep_best(&r->comp, since(t));
    t = now();
    for (size_t p = 0; p < packets; p++) {
        for (size_t i = 0; i < PACKET_PAGES; i++) {
            dst[i] = b->back + (p * PACKET_PAGES + i) * PAGE;
        }
        die_on(!mig_stream_decompress_pages(rx, b->comp + p * b->slot,
                                            b->len[p], dst, PACKET_PAGES, &err),
               err);
    }
    keep_best(&r->decomp, since(t));
    mig_compress_ctx_free(tx);
    mig_compress_ctx_free(rx);
}

/* ---- main ---------------------------------------------------------------- */

typedef struct Config {
    MigCompression method;
    int level;
    const char *note;
} Config;

static const Config configs[] = {
    {MIG_COMPRESSION_ZLIB, 1, "compress-level default"},
    {MIG_COMPRESSION_ZLIB, 6, "zlib's default"},
    {MIG_COMPRESSION_ZSTD, 1, "multifd-zstd-level default"},
    {MIG_COMPRESSION_ZSTD, 3, "zstd's default"},
    {MIG_COMPRESSION_LZ4, 1, "LZ4 fast"},
    {MIG_COMPRESSION_LZ4, 9, "LZ4HC default"},
};

static size_t config_index(MigCompression m, int level)
{
    for (size_t i = 0; i < G_N_ELEMENTS(configs); i++) {
        if (configs[i].method == m && configs[i].level == level) {
            return i;
        }
    }
    g_assert_not_reached();
}

/* The figures the checks at the end need: [config][data] in page mode. */
static double page_gbs[G_N_ELEMENTS(configs)][DATA__MAX];
static double page_cpu[G_N_ELEMENTS(configs)][DATA__MAX];

static double memcpy_gbs(Bench *b, int runs)
{
    Times best = {1e9, 1e9};

    for (int r = 0; r < runs; r++) {
        Times t = now();
        for (size_t i = 0; i < b->n_pages; i++) {
            memcpy(b->back + i * PAGE, b->data + i * PAGE, PAGE);
        }
        keep_best(&best, since(t));
    }
    return b->n_pages * PAGE / best.wall / 1e9;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 32;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    const char *modes = argc > 3 ? argv[3] : "both";
    Bench b;

    mig_compress_register_all();
    b.n_pages = (mib << 20) / PAGE / PACKET_PAGES * PACKET_PAGES;
    if (!b.n_pages || runs < 1) {
        fprintf(stderr, "usage: bench-compress [MiB] [runs] "
                        "[page|packet|both]\n");
        return 1;
    }
    b.data = g_malloc(b.n_pages * PAGE);
    b.back = g_malloc(b.n_pages * PAGE);
    b.comp_size = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(configs); i++) {
        MigCompression m = configs[i].method;
        b.comp_size = MAX(b.comp_size, b.n_pages * mig_compress_page_bound(m));
        b.comp_size =
            MAX(b.comp_size, b.n_pages / PACKET_PAGES *
                                 mig_compress_stream_bound(m, PACKET_PAGES));
    }
    b.comp = g_malloc(b.comp_size);
    b.len = g_new0(size_t, b.n_pages);
    memset(b.comp, 0, b.comp_size); /* fault everything in before timing */
    memset(b.back, 0, b.n_pages * PAGE);

    printf("%zu MiB of each kind, best of %d, one thread; GB = 1e9 bytes\n\n",
           (b.n_pages * PAGE) >> 20, runs);
    printf("| method | level | mode | data | compress GB/s | CPU s/GB | "
           "decompress GB/s | ratio |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int kind = 0; kind < DATA__MAX; kind++) {
        for (size_t i = 0; i < b.n_pages; i++) {
            fill_page(b.data + i * PAGE, i * PAGE, kind);
        }
        printf("| memcpy | | | %s | %.2f | | | |\n", data_names[kind],
               memcpy_gbs(&b, runs));
        for (size_t c = 0; c < G_N_ELEMENTS(configs); c++) {
            const Config *cfg = &configs[c];
            const char *name = mig_compress_ops(cfg->method)->name;

            for (int packet = 0; packet < 2; packet++) {
                Result r = {{1e9, 1e9}, {1e9, 1e9}, 0};
                double bytes = b.n_pages * PAGE;

                if (strcmp(modes, "both") &&
                    strcmp(modes, packet ? "packet" : "page")) {
                    continue;
                }
                b.slot = packet ? mig_compress_stream_bound(cfg->method,
                                                            PACKET_PAGES)
                                : mig_compress_page_bound(cfg->method);
                for (int run = 0; run < runs; run++) {
                    memset(b.back, 0, b.n_pages * PAGE);
                    if (packet) {
                        run_packets(&b, cfg->method, cfg->level, &r);
                    } else {
                        run_pages(&b, cfg->method, cfg->level, &r);
                    }
                    if (memcmp(b.back, b.data, b.n_pages * PAGE)) {
                        fprintf(stderr, "%s level %d: wrong data back\n", name,
                                cfg->level);
                        return 1;
                    }
                }
                if (!packet) {
                    page_gbs[c][kind] = bytes / r.comp.wall / 1e9;
                    page_cpu[c][kind] = r.comp.cpu / bytes * 1e9;
                }
                printf("| %s | %d | %s | %s | %.3f | %.2f | %.3f | %.2f |\n",
                       name, cfg->level, packet ? "packet" : "page",
                       data_names[kind], bytes / r.comp.wall / 1e9,
                       r.comp.cpu / bytes * 1e9, bytes / r.decomp.wall / 1e9,
                       bytes / r.out_bytes);
            }
        }
        fflush(stdout);
    }
    if (strcmp(modes, "packet")) {
        size_t zlib1 = config_index(MIG_COMPRESSION_ZLIB, 1);
        size_t lz41 = config_index(MIG_COMPRESSION_LZ4, 1);

        printf("\nlz4 level 1, half-compressible pages: %.2f GB/s per core "
               "(target >= 1)\n",
               page_gbs[lz41][DATA_HALF]);
        for (int kind = 0; kind < DATA__MAX; kind++) {
            printf("lz4 / zlib CPU per GB at level 1, %s: %.3f "
                   "(target <= 0.2)\n",
                   data_names[kind],
                   page_cpu[lz41][kind] / page_cpu[zlib1][kind]);
        }
    }
    g_free(b.data);
    g_free(b.back);
    g_free(b.comp);
    g_free(b.len);
    return 0;
}
