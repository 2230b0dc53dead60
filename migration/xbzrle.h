/*
 * XBZRLE: QEMU's delta encoding of a re-sent page against the copy the
 * destination already has. Pure functions, no state; the grammar is in
 * xbzrle.c. A scalar encoder and SIMD ones (AVX2, AVX-512BW) give
 * byte-identical output, as do the scalar and AVX-512 decoders;
 * xbzrle_encode_buffer and xbzrle_decode_buffer use the best this CPU
 * has.
 *
 * Thread safety: every function may be called from any thread at the same
 * time; they share nothing.
 */
#ifndef MIGRATION_XBZRLE_H
#define MIGRATION_XBZRLE_H

#include <stdbool.h>
#include <stdint.h>

/* Longest run a length field can carry: ULEB128 limited to 2 bytes. */
#define XBZRLE_MAX_RUN 0x3fff

/*
 * Largest page the encoder takes. Every encoded zero run is shorter than
 * the page, so it always fits in 14 bits; only a 16 KiB page whose every
 * byte changed has a run that does not (and the encoder returns -1).
 */
#define XBZRLE_MAX_PAGE 0x4000

typedef enum XbzrleImpl {
    XBZRLE_SCALAR,
    XBZRLE_AVX2,
    XBZRLE_AVX512, /* AVX-512F, BW, VL */
    XBZRLE__MAX,
} XbzrleImpl;

/*
 * Encodes new_buf as a delta against old_buf (both slen bytes, 1 <= slen
 * <= XBZRLE_MAX_PAGE, no alignment needed) into dst[0, dlen).
 *
 * Returns the encoded length; 0 if the pages are identical (send nothing);
 * -1 if the encoding would be longer than dlen, or has a run longer than
 * XBZRLE_MAX_RUN (send the page in full). Never writes outside
 * dst[0, dlen), but dst past the returned length is scratch (the SIMD
 * encoders store a few fixed-size blocks), and after -1 all of it is.
 *
 * A dlen of slen (QEMU's choice) is enough: QEMU's destination refuses an
 * encoded length above its page size, so never pass more than the page
 * size. The output is the same whatever dlen: a smaller dlen only turns
 * more pages into -1.
 */
int xbzrle_encode_buffer(const uint8_t *old_buf, const uint8_t *new_buf,
                         int slen, uint8_t *dst, int dlen);

/*
 * Applies the encoding src[0, slen) onto dst[0, dlen), which holds the old
 * page (the destination's own copy, changed in place).
 *
 * Returns the number of bytes of dst the runs cover (the end of the last
 * non-zero run; 0 for an empty src, which QEMU's decoder accepts too), or
 * -1 for malformed input: a length of more than 2 bytes or not in its
 * shortest form, a zero-length zero run anywhere but first, a zero-length
 * non-zero run, runs past dlen, a length or data cut short, or trailing
 * bytes that are not a whole run pair. After -1, dst may have been
 * partly changed: the page is lost and the migration must fail. src and
 * dst must not overlap.
 */
int xbzrle_decode_buffer(const uint8_t *src, int slen, uint8_t *dst, int dlen);

/* The variants, for tests and benchmarks. */
bool xbzrle_impl_available(XbzrleImpl impl);
const char *xbzrle_impl_name(XbzrleImpl impl);

/* The variant xbzrle_encode_buffer and _decode_buffer use: the best. */
XbzrleImpl xbzrle_best_impl(void);

/*
 * xbzrle_encode_buffer / xbzrle_decode_buffer with one variant, which must
 * be available. AVX2 has no byte-masked store: its decoder is the scalar
 * one.
 */
int xbzrle_encode_buffer_impl(XbzrleImpl impl, const uint8_t *old_buf,
                              const uint8_t *new_buf, int slen, uint8_t *dst,
                              int dlen);
int xbzrle_decode_buffer_impl(XbzrleImpl impl, const uint8_t *src, int slen,
                              uint8_t *dst, int dlen);

#endif /* MIGRATION_XBZRLE_H */
