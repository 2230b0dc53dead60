/*
 * Benchmark: XBZRLE encode (every variant the CPU has) and decode, in GB/s
 * of page data, over distinct 4 KiB page pairs (so the pages come from
 * memory, not from the cache), for 0, 1, 5 and 25 % of the bytes changed,
 * either in short clustered runs (1..15 bytes, as a guest writes fields)
 * or uniformly scattered. Encoding goes into one page-sized buffer, as the
 * RAM loop does; decoding applies each page's encoding in place onto a
 * copy of the old pages (the avx2 row runs the scalar decoder: AVX2 has
 * no byte-masked store). Best of 3; prints a markdown table.
 *
 *   bench-xbzrle [MiB]     (default 256: MiB of old pages, as many new)
 */
#include <glib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../migration/xbzrle.h"

#define PAGE 4096
#define RUNS 3

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static inline uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now_s(void)
{
    return g_get_monotonic_time() / 1e6;
}

static uint8_t *old_pages, *new_pages, *enc, *work;
static int *enc_len;
static size_t npages;

/* A changed byte is never equal to the old one. */
static inline void change(uint8_t *n, const uint8_t *o, size_t i)
{
    n[i] = o[i] ^ (uint8_t)(next_rand() % 255 + 1);
}

/* New pages from the old ones; returns the fraction really changed. */
static double make_new(double density, bool clustered)
{
    size_t changed = 0;

    memcpy(new_pages, old_pages, npages * PAGE);
    if (density == 0) {
        return 0;
    }
    for (size_t p = 0; p < npages; p++) {
        uint8_t *n = new_pages + p * PAGE;
        const uint8_t *o = old_pages + p * PAGE;

        if (clustered) {
            /* runs of 1..15 bytes at random places until the quota */
            size_t want = (size_t)(density * PAGE), got = 0;

            while (got < want) {
                size_t at = next_rand() % PAGE, len = next_rand() % 15 + 1;

                for (size_t k = at; k < at + len && k < PAGE; k++) {
                    got += n[k] == o[k];
                    change(n, o, k);
                }
            }
            changed += got;
        } else {
            /* geometric gaps: each byte changes with probability density */
            double l = log(1 - density);

            for (size_t i = 0;; i++) {
                double u = (next_rand() >> 11) * 0x1.0p-53;

                i += density >= 1 ? 0 : (size_t)(log(1 - u) / l);
                if (i >= PAGE) {
                    break;
                }
                change(n, o, i);
                changed++;
            }
        }
    }
    return (double)changed / (npages * PAGE);
}

typedef struct Result {
    double gbs;
    uint64_t bytes; /* encoded bytes of the pages that fit */
    size_t overflow, identical;
} Result;

static Result run_encode(XbzrleImpl impl)
{
    static uint8_t dst[PAGE];
    Result r = {0};
    double t = now_s();

    for (size_t p = 0; p < npages; p++) {
        int n = xbzrle_encode_buffer_impl(
            impl, old_pages + p * PAGE, new_pages + p * PAGE, PAGE, dst, PAGE);
        if (n < 0) {
            r.overflow++;
        } else {
            r.identical += n == 0;
            r.bytes += n;
        }
    }
    r.gbs = npages * (double)PAGE / (now_s() - t) / 1e9;
    return r;
}

/* Encodings of every page, for the decode runs. */
static void store_encodings(void)
{
    for (size_t p = 0; p < npages; p++) {
        enc_len[p] =
            xbzrle_encode_buffer(old_pages + p * PAGE, new_pages + p * PAGE,
                                 PAGE, enc + p * PAGE, PAGE);
    }
}

static double run_decode(XbzrleImpl impl)
{
    double t, gbs;
    size_t done = 0;

    memcpy(work, old_pages, npages * PAGE);
    t = now_s();
    for (size_t p = 0; p < npages; p++) {
        if (enc_len[p] > 0) {
            if (xbzrle_decode_buffer_impl(impl, enc + p * PAGE, enc_len[p],
                                          work + p * PAGE, PAGE) < 0) {
                fprintf(stderr, "decode failed on page %zu\n", p);
                exit(1);
            }
            done++;
        }
    }
    gbs = done * (double)PAGE / (now_s() - t) / 1e9;
    for (size_t p = 0; p < npages; p++) {
        if (enc_len[p] >= 0 &&
            memcmp(work + p * PAGE, new_pages + p * PAGE, PAGE)) {
            fprintf(stderr, "decode wrong on page %zu\n", p);
            exit(1);
        }
    }
    return gbs;
}

static void bench(const char *pattern, double density, bool clustered)
{
    double real = make_new(density, clustered);
    Result first = {0};

    store_encodings();
    for (int impl = 0; impl < XBZRLE__MAX; impl++) {
        Result best = {0};
        double dec = 0;

        if (!xbzrle_impl_available(impl)) {
            continue;
        }
        for (int i = 0; i < RUNS; i++) {
            Result r = run_encode(impl);
            double v = density ? run_decode(impl) : 0;

            best = r.gbs > best.gbs ? r : best;
            dec = v > dec ? v : dec;
        }
        if (impl == XBZRLE_SCALAR) {
            first = best;
        } else if (best.bytes != first.bytes ||
                   best.overflow != first.overflow) {
            fprintf(stderr, "%s disagrees with scalar\n",
                    xbzrle_impl_name(impl));
            exit(1);
        }
        size_t sent = npages - best.overflow - best.identical;
        g_autofree char *dec_s =
            density ? g_strdup_printf("%.2f", dec) : g_strdup("-");

        printf("| %s | %.1f %% | %s | %.2f | %.2f | %s | %.0f | %.1f %% |\n",
               pattern, real * 100, xbzrle_impl_name(impl), best.gbs,
               best.gbs / first.gbs, dec_s,
               sent ? (double)best.bytes / sent : 0,
               100.0 * best.overflow / npages);
    }
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 256;

    npages = (mib << 20) / PAGE;
    old_pages = aligned_alloc(PAGE, npages * PAGE);
    new_pages = aligned_alloc(PAGE, npages * PAGE);
    work = aligned_alloc(PAGE, npages * PAGE);
    enc = aligned_alloc(PAGE, npages * PAGE);
    enc_len = calloc(npages, sizeof(*enc_len));
    if (!old_pages || !new_pages || !work || !enc || !enc_len) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < npages * PAGE / 8; i++) {
        uint64_t v = next_rand();
        memcpy(old_pages + i * 8, &v, 8);
    }
    memset(enc, 0, npages * PAGE);
    printf("%zu MiB of page pairs, best of %d, GB/s of page data\n\n", mib,
           RUNS);
    printf("| changes | changed | variant | encode GB/s | vs scalar "
           "| decode GB/s | bytes/encoded page | overflow |\n");
    printf("|---|---:|---|---:|---:|---:|---:|---:|\n");
    bench("none", 0, false);
    static const double density[] = {0.01, 0.05, 0.25};
    for (size_t i = 0; i < G_N_ELEMENTS(density); i++) {
        bench("clustered", density[i], true);
        bench("uniform", density[i], false);
    }
    return 0;
}
