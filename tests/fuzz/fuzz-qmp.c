/*
 * libFuzzer target: bytes a QMP client sends, through one session's JSON
 * stream parser, capabilities negotiation and the real dispatch of a safe
 * command set (fuzz-monitor-cmds.h), human-monitor-command included.
 *
 * Input: the client's bytes; the session is fed them in pieces whose
 * sizes come from byte 0 (a parser must not care how the bytes arrive).
 * Checked on every input: the server writes whole lines ending in CRLF,
 * each a JSON object with exactly one of "QMP", "return", "error" or
 * "event". (Whether out-of-range integers and strings with U+0000 are
 * refused or taken is not checked here: either way is a well-formed
 * reply.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../monitor/monitor-internal.h"
#include "fuzz-monitor-cmds.h"

static void collect(void *opaque, const char *data, size_t len)
{
    g_string_append_len(opaque, data, (gssize)len);
}

static void fail(const char *why, const char *line)
{
    fprintf(stderr, "qmp: %s: %s\n", why, line);
    abort();
}

/* One reply line: a JSON object with one known top-level member. */
static void check_line(const char *line)
{
    static const char *const kinds[] = {"QMP", "return", "error", "event"};
    g_autoptr(JsonParser) p = json_parser_new();
    JsonNode *root;
    int found = 0;

    if (!json_parser_load_from_data(p, line, -1, NULL)) {
        fail("reply is not JSON", line);
    }
    root = json_parser_get_root(p);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        fail("reply is not an object", line);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
        found += json_object_has_member(json_node_get_object(root), kinds[i]);
    }
    if (found != 1) {
        fail("reply is not one of QMP/return/error/event", line);
    }
}

static void check_output(GString *out)
{
    char *p = out->str, *end = out->str + out->len;

    while (p < end) {
        /* memchr, not strstr: ASan's strstr measures the whole rest of
         * the output at every call (quadratic: 6 % of the target's time) */
        char *crlf = memchr(p, '\r', (size_t)(end - p));
        if (!crlf || crlf + 1 == end || crlf[1] != '\n') {
            fail("output ends without CRLF", p);
        }
        *crlf = '\0';
        if (strchr(p, '\n') || strchr(p, '\r')) {
            fail("bare newline in a reply", p);
        }
        check_line(p);
        p = crlf + 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    GString *out = g_string_new(NULL);
    QmpSession *s;
    size_t chunk;

    if (size < 1 || size > 64 * 1024) {
        g_string_free(out, TRUE);
        return 0;
    }
    fuzz_monitor_register();
    chunk = data[0] ? data[0] : size;
    data++;
    size--;
    s = qmp_session_new(collect, out);
    for (size_t off = 0; off < size; off += chunk) {
        qmp_session_feed(s, (const char *)data + off, MIN(chunk, size - off));
    }
    qmp_session_free(s);
    check_output(out);
    g_string_free(out, TRUE);
    fuzz_monitor_reset();
    return 0;
}
