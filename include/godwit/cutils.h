/*
 * Small string helpers shared by the command line, HMP and tests.
 */
#ifndef GODWIT_CUTILS_H
#define GODWIT_CUTILS_H

#include <stdbool.h>
#include <stdint.h>

#include "godwit/error.h"

/*
 * Parses a size as QEMU does: a number, optionally with a fraction, and an
 * optional suffix B, K, M, G, T, P, E (case-insensitive, binary multiples).
 * A number without suffix is multiplied by `default_unit` (1 for bytes,
 * 1 << 20 for -m's megabytes). A fraction needs a suffix other than B,
 * and the result must be a whole number of bytes. Refuses empty strings,
 * negative numbers, trailing garbage and overflow past UINT64_MAX.
 */
bool gw_parse_size(const char *str, uint64_t default_unit, uint64_t *out,
                   GError **errp);

/* Parses a decimal (or 0x hex) unsigned 64-bit integer, whole string. */
bool gw_parse_uint(const char *str, uint64_t *out, GError **errp);

/* Parses "on"/"off" (also "yes"/"no", "true"/"false"). */
bool gw_parse_bool(const char *str, bool *out, GError **errp);

/* Formats `bytes` as "512 MiB", "1.5 GiB", ... into a new string. */
char *gw_format_size(uint64_t bytes);

#endif /* GODWIT_CUTILS_H */
