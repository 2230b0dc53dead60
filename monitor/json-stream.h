/*
 * JSON stream splitter: cuts a byte stream into complete top-level JSON
 * values, for the QMP server. It does not parse; it tracks strings, escapes
 * and {} [] depth, enforces the size and nesting limits, turns QEMU's
 * single-quoted strings into JSON strings, and recovers from garbage when a
 * control character arrives. Pure: no globals, no I/O.
 */
#ifndef MONITOR_JSON_STREAM_H
#define MONITOR_JSON_STREAM_H

#include <glib.h>

#include "godwit/error.h"

#define JSON_STREAM_MAX_SIZE (1u << 20) /* bytes of one message */
#define JSON_STREAM_MAX_DEPTH 64        /* nested {} and [] */

/*
 * Called once per top-level value found: either `json` is the text of one
 * complete value (`len` bytes, NUL-terminated), ready for a JSON parser, and
 * `err` is NULL; or `json` is NULL and `err` says why the input was refused
 * (size or depth limit, stray closing bracket). Neither is owned by the
 * callee.
 */
typedef void (*JsonStreamFunc)(void *opaque, const char *json, size_t len,
                               const GError *err);

typedef struct JsonStream JsonStream;

/* Limits of 0 mean the defaults above. */
JsonStream *json_stream_new(JsonStreamFunc emit, void *opaque, size_t max_size,
                            unsigned max_depth);
void json_stream_free(JsonStream *s);

/*
 * Feeds `len` bytes; calls `emit` for each value completed by them, in
 * order. A partial value is kept for the next call.
 */
void json_stream_feed(JsonStream *s, const char *buf, size_t len);

/* True while part of a value is buffered (or being discarded). */
bool json_stream_pending(const JsonStream *s);

/*
 * Checks what the JSON parser would take silently but wrongly, in the text
 * of one value (as emit gives it): an integer literal outside the signed
 * 64-bit range (json-glib wraps it: 99999999999999999999 reads as -1), and
 * the escape \u0000 in a string (C strings end there: "a\u0000b" would be
 * "a"). Returns false with the error, naming the literal.
 */
bool json_text_check(const char *json, size_t len, GError **errp);

#endif /* MONITOR_JSON_STREAM_H */
