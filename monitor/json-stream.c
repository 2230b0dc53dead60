/*
 * JSON stream splitter (see json-stream.h).
 *
 * Grammar tracked, byte by byte:
 *   value   := object-or-array | string | bare
 *   string  := '"' ... '"' | '\'' ... '\''   (backslash escapes the next byte)
 *   bare    := top-level run of bytes up to whitespace or {}[]"'
 * An object or array ends when its {} [] depth returns to zero; brackets
 * inside strings do not count. A closing bracket that does not match the
 * open one ({"a": [}) is an error at once, and the splitter starts afresh
 * after it, rather than wait for a close that will never come.
 *
 * Rewriting for the JSON parser, as QEMU accepts more than JSON:
 *   'text'  becomes "text" (a " inside it becomes \")
 *   \'      becomes ' in either kind of string
 *
 * Limits: a value longer than max_size bytes or nested deeper than
 * max_depth produces one error and is then discarded up to its end (the
 * depth is still tracked), so the next value is read normally.
 *
 * Recovery (QEMU's): any ASCII control character other than \t \r \n, and
 * the byte 0xFF, silently drops whatever is buffered or being discarded.
 */
#include <stdarg.h>
#include <string.h>

#include "json-stream.h"

typedef enum JsonStreamState {
    JS_IDLE,   /* between values */
    JS_VALUE,  /* inside an object or array, outside strings */
    JS_STRING, /* inside a string */
    JS_BARE,   /* inside a top-level bare token (number, literal, garbage) */
} JsonStreamState;

struct JsonStream {
    JsonStreamFunc emit;
    void *opaque;
    size_t max_size;
    unsigned max_depth;

    JsonStreamState state;
    GString *buf; /* rewritten text of the current value */
    size_t bytes; /* input bytes of the current value */
    size_t depth; /* open { and [ */
    char *open;   /* open[i]: the bracket at depth i + 1 (max_depth) */
    char quote;   /* quote that opened the current string */
    bool escape;  /* previous byte in the string was a backslash */
    bool discard; /* the current value was refused: track, do not keep */
};

JsonStream *json_stream_new(JsonStreamFunc emit, void *opaque, size_t max_size,
                            unsigned max_depth)
{
    JsonStream *s = g_new0(JsonStream, 1);

    s->emit = emit;
    s->opaque = opaque;
    s->max_size = max_size ? max_size : JSON_STREAM_MAX_SIZE;
    s->max_depth = max_depth ? max_depth : JSON_STREAM_MAX_DEPTH;
    s->buf = g_string_sized_new(256);
    s->open = g_malloc(s->max_depth);
    s->state = JS_IDLE;
    return s;
}

void json_stream_free(JsonStream *s)
{
    if (s) {
        g_string_free(s->buf, TRUE);
        g_free(s->open);
        g_free(s);
    }
}

bool json_stream_pending(const JsonStream *s)
{
    return s->state != JS_IDLE;
}

static void js_reset(JsonStream *s)
{
    s->state = JS_IDLE;
    g_string_truncate(s->buf, 0);
    /* do not keep a huge buffer around after one big message */
    if (s->buf->allocated_len > 64 * 1024) {
        g_string_free(s->buf, TRUE);
        s->buf = g_string_sized_new(256);
    }
    s->bytes = 0;
    s->depth = 0;
    s->escape = false;
    s->discard = false;
}

static void js_error(JsonStream *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void js_error(JsonStream *s, const char *fmt, ...)
{
    va_list ap;
    GError *err;

    va_start(ap, fmt);
    err = g_error_new_valist(GW_ERROR, GW_ERROR_GENERIC, fmt, ap);
    va_end(ap);
    s->emit(s->opaque, NULL, 0, err);
    g_error_free(err);
}

/* Refuses the current value: one error now, the rest is discarded. */
static void js_refuse(JsonStream *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void js_refuse(JsonStream *s, const char *fmt, ...)
{
    va_list ap;
    GError *err;

    if (s->discard) {
        return;
    }
    va_start(ap, fmt);
    err = g_error_new_valist(GW_ERROR, GW_ERROR_GENERIC, fmt, ap);
    va_end(ap);
    s->discard = true;
    g_string_truncate(s->buf, 0);
    s->emit(s->opaque, NULL, 0, err);
    g_error_free(err);
}

static void js_finish(JsonStream *s)
{
    if (!s->discard) {
        s->emit(s->opaque, s->buf->str, s->buf->len, NULL);
    }
    js_reset(s);
}

static void js_put(JsonStream *s, char c)
{
    if (!s->discard) {
        g_string_append_c(s->buf, c);
    }
}

static bool js_is_reset_byte(unsigned char c)
{
    return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0xff;
}

static bool js_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool js_ends_bare(char c)
{
    return js_is_space(c) || strchr("{}[]\"'", c) != NULL;
}

static void js_open(JsonStream *s, char c)
{
    js_put(s, c);
    s->depth++;
    if (s->depth <= s->max_depth) {
        s->open[s->depth - 1] = c;
    } else {
        js_refuse(s, "JSON nesting depth limit (%u) exceeded", s->max_depth);
    }
}

static void js_start_string(JsonStream *s, char quote)
{
    s->quote = quote;
    s->escape = false;
    s->state = JS_STRING;
    js_put(s, '"');
}

static void js_string_byte(JsonStream *s, char c)
{
    if (s->escape) {
        s->escape = false;
        if (c != '\'') {
            js_put(s, '\\');
        }
        js_put(s, c);
    } else if (c == '\\') {
        s->escape = true;
    } else if (c == s->quote) {
        js_put(s, '"');
        if (s->depth == 0) {
            js_finish(s);
        } else {
            s->state = JS_VALUE;
        }
    } else if (c == '"') {
        /* a double quote inside a single-quoted string */
        js_put(s, '\\');
        js_put(s, '"');
    } else {
        js_put(s, c);
    }
}

/* Between values: skips blanks, starts a value with its first byte. */
static void js_idle_byte(JsonStream *s, char c)
{
    if (js_is_space(c)) {
        return;
    }
    if (c == '}' || c == ']') {
        js_error(s, "JSON parse error, stray '%c'", c);
        return;
    }
    s->bytes = 1;
    if (c == '{' || c == '[') {
        s->state = JS_VALUE;
        js_open(s, c);
    } else if (c == '"' || c == '\'') {
        js_start_string(s, c);
    } else {
        s->state = JS_BARE;
        js_put(s, c);
    }
}

static void js_value_byte(JsonStream *s, char c)
{
    switch (c) {
    case '"':
    case '\'':
        js_start_string(s, c);
        break;
    case '{':
    case '[':
        js_open(s, c);
        break;
    case '}':
    case ']':
        if (s->depth <= s->max_depth &&
            s->open[s->depth - 1] != (c == '}' ? '{' : '[')) {
            if (!s->discard) {
                js_error(s, "JSON parse error, '%c' does not close '%c'", c,
                         s->open[s->depth - 1]);
            }
            js_reset(s);
            break;
        }
        js_put(s, c);
        if (--s->depth == 0) {
            js_finish(s);
        }
        break;
    default:
        js_put(s, c);
        break;
    }
}

void json_stream_feed(JsonStream *s, const char *buf, size_t len)
{
    size_t i = 0;

    while (i < len) {
        char c = buf[i];

        if (js_is_reset_byte((unsigned char)c)) {
            js_reset(s);
            i++;
            continue;
        }
        if (s->state == JS_IDLE) {
            js_idle_byte(s, c);
            i++;
            continue;
        }
        if (s->state == JS_BARE && js_ends_bare(c)) {
            /* the delimiter belongs to what follows: look at it again */
            js_finish(s);
            continue;
        }
        if (++s->bytes > s->max_size) {
            js_refuse(s, "JSON message size limit (%zu bytes) exceeded",
                      s->max_size);
        }
        if (s->state == JS_BARE) {
            js_put(s, c);
        } else if (s->state == JS_STRING) {
            js_string_byte(s, c);
        } else {
            js_value_byte(s, c);
        }
        i++;
    }
}

/* Skips the string opening at json[*i]; false at "\u0000". */
static bool jt_string(const char *json, size_t len, size_t *i, GError **errp)
{
    size_t p = *i + 1;

    while (p < len && json[p] != '"') {
        if (json[p] != '\\') {
            p++;
            continue;
        }
        if (p + 5 < len && json[p + 1] == 'u' &&
            !strncmp(json + p + 2, "0000", 4)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "\\u0000 is not supported");
            return false;
        }
        p += 2;
    }
    *i = p + 1;
    return true;
}

/* Skips the number at json[*i]; false for an integer out of range. */
static bool jt_number(const char *json, size_t len, size_t *i, GError **errp)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *text = NULL;
    size_t start = *i, p = *i;
    bool integer = true;
    gint64 v;

    while (p < len && (g_ascii_isdigit(json[p]) || strchr("+-.eE", json[p]))) {
        integer = integer && !strchr(".eE", json[p]);
        p++;
    }
    *i = p;
    if (!integer) {
        return true;
    }
    text = g_strndup(json + start, p - start);
    if (!g_ascii_string_to_signed(text, 10, G_MININT64, G_MAXINT64, &v, &err) &&
        g_error_matches(err, G_NUMBER_PARSER_ERROR,
                        G_NUMBER_PARSER_ERROR_OUT_OF_BOUNDS)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "integer %s is out of range (QMP integers are signed "
                    "64-bit: %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT ")",
                    text, G_MININT64, G_MAXINT64);
        return false;
    }
    /* malformed numbers are the parser's to report */
    return true;
}

bool json_text_check(const char *json, size_t len, GError **errp)
{
    size_t i = 0;

    while (i < len) {
        char c = json[i];

        if (c == '"') {
            if (!jt_string(json, len, &i, errp)) {
                return false;
            }
        } else if (c == '-' || g_ascii_isdigit(c)) {
            if (!jt_number(json, len, &i, errp)) {
                return false;
            }
        } else if (g_ascii_isalpha(c)) {
            /* a literal (true, null, garbage): its digits are not numbers */
            while (i < len && g_ascii_isalnum(json[i])) {
                i++;
            }
        } else {
            i++;
        }
    }
    return true;
}
