/*
 * libFuzzer target for xbzrle_decode_buffer: arbitrary bytes decoded onto
 * an old page must never crash or touch memory outside the page (every
 * buffer is allocated to its exact size, so ASan sees one byte too far).
 * Every decoder variant gives the same answer and the same page. When
 * they accept, the result is checked against the encoders:
 *
 *   - only dst[0, covered) changed, covered <= the page;
 *   - every encoder variant re-encodes old -> new to the same bytes, and
 *     that decodes back to the same page;
 *   - if every byte the input wrote really changed (the input was the
 *     canonical form), the re-encoding is the input itself;
 *   - the encoders' overflow is exact: len bytes fit, len - 1 do not.
 *
 * Input: byte 0 picks the page size (bit 7: 4096, else (b & 0x7f) * 32),
 * byte 1 seeds the old page (0: all zero), the rest is the encoding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../migration/xbzrle.h"

#define PAGE 4096

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p) {
        abort();
    }
    return p;
}

static void fill_old(uint8_t *p, int len, uint8_t seed)
{
    uint32_t x = seed * 2654435761u + 1;

    for (int i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = seed ? (uint8_t)x : 0;
    }
}

/* Total length of the non-zero runs of an encoding the decoder accepted. */
static int written_bytes(const uint8_t *src, int slen)
{
    int i = 0, total = 0;

    while (i < slen) {
        for (int field = 0; field < 2; field++) {
            int n = src[i] & 0x7f;

            if (src[i++] & 0x80) {
                n |= src[i++] << 7;
            }
            if (field == 1) {
                total += n;
                i += n;
            }
        }
    }
    return total;
}

static void check_encoders(const uint8_t *old, const uint8_t *new, int len,
                           const uint8_t *src, int slen, bool canonical)
{
    int room = 2 * len + 8, want = -2;
    uint8_t *enc = xmalloc(room);
    uint8_t *first = xmalloc(room);

    for (int impl = 0; impl < XBZRLE__MAX; impl++) {
        if (!xbzrle_impl_available(impl)) {
            continue;
        }
        int e = xbzrle_encode_buffer_impl(impl, old, new, len, enc, room);
        if (e < 0 || (want >= 0 && (e != want || memcmp(enc, first, e)))) {
            fprintf(stderr, "%s: %d, first variant %d\n",
                    xbzrle_impl_name(impl), e, want);
            abort();
        }
        if (want < 0) {
            want = e;
            memcpy(first, enc, e);
        }
        if (e > 0) {
            /* exact overflow, into buffers of exactly that size */
            uint8_t *tight = xmalloc(e);

            if (xbzrle_encode_buffer_impl(impl, old, new, len, tight, e) != e ||
                xbzrle_encode_buffer_impl(impl, old, new, len, tight, e - 1) !=
                    -1) {
                abort();
            }
            free(tight);
        }
    }
    if (canonical && (want != slen || memcmp(first, src, slen))) {
        fprintf(stderr, "canonical input re-encoded differently\n");
        abort();
    }
    if (want > 0) {
        uint8_t *page = xmalloc(len);

        memcpy(page, old, len);
        if (xbzrle_decode_buffer(first, want, page, len) < 0 ||
            memcmp(page, new, len)) {
            abort();
        }
        free(page);
    } else if (memcmp(old, new, len)) {
        abort();
    }
    free(enc);
    free(first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int len, slen, covered, changed = 0;
    uint8_t *old, *page, *src;

    if (size < 2 || size - 2 > 4 * PAGE) {
        return 0;
    }
    len = data[0] & 0x80 ? PAGE : (data[0] & 0x7f) * 32;
    slen = size - 2;
    old = xmalloc(len);
    page = xmalloc(len);
    src = xmalloc(slen);
    memcpy(src, data + 2, slen);
    fill_old(old, len, data[1]);
    memcpy(page, old, len);

    covered = xbzrle_decode_buffer_impl(XBZRLE_SCALAR, src, slen, page, len);
    for (int impl = 1; impl < XBZRLE__MAX; impl++) {
        uint8_t *other = xmalloc(len);

        if (!xbzrle_impl_available(impl)) {
            free(other);
            continue;
        }
        memcpy(other, old, len);
        if (xbzrle_decode_buffer_impl(impl, src, slen, other, len) != covered ||
            (covered >= 0 && memcmp(other, page, len))) {
            fprintf(stderr, "%s decoder disagrees\n", xbzrle_impl_name(impl));
            abort();
        }
        free(other);
    }
    if (covered >= 0) {
        if (covered > len ||
            memcmp(page + covered, old + covered, len - covered)) {
            abort();
        }
        for (int i = 0; i < len; i++) {
            changed += old[i] != page[i];
        }
        if (len > 0) {
            check_encoders(old, page, len, src, slen,
                           changed == written_bytes(src, slen));
        }
    }
    free(old);
    free(page);
    free(src);
    return 0;
}
