/*
 * JSON output for QMP: one line, ASCII only, QEMU's spacing.
 *
 * json-glib's generator writes UTF-8 as is; QMP promises ASCII, so
 * everything outside 0x20..0x7e is written as \uXXXX (a surrogate pair
 * above U+FFFF). Members keep their insertion order, separators are ", "
 * and ": " as in QEMU's replies: {"return": {}, "id": 1}.
 */
#include <math.h>

#include "monitor-internal.h"

static void json_append_string(GString *out, const char *str)
{
    const char *p = str;

    g_string_append_c(out, '"');
    while (*p) {
        gunichar c = g_utf8_get_char_validated(p, -1);

        if (c == (gunichar)-1 || c == (gunichar)-2) {
            /* not UTF-8: replace the byte rather than emit garbage */
            c = 0xfffd;
            p++;
        } else {
            p = g_utf8_next_char(p);
        }
        switch (c) {
        case '"':
            g_string_append(out, "\\\"");
            break;
        case '\\':
            g_string_append(out, "\\\\");
            break;
        case '\b':
            g_string_append(out, "\\b");
            break;
        case '\f':
            g_string_append(out, "\\f");
            break;
        case '\n':
            g_string_append(out, "\\n");
            break;
        case '\r':
            g_string_append(out, "\\r");
            break;
        case '\t':
            g_string_append(out, "\\t");
            break;
        default:
            if (c >= 0x20 && c < 0x7f) {
                g_string_append_c(out, (char)c);
            } else if (c < 0x10000) {
                g_string_append_printf(out, "\\u%04x", (unsigned)c);
            } else {
                c -= 0x10000;
                g_string_append_printf(out, "\\u%04x\\u%04x",
                                       0xd800 + (unsigned)(c >> 10),
                                       0xdc00 + (unsigned)(c & 0x3ff));
            }
            break;
        }
    }
    g_string_append_c(out, '"');
}

static void json_append_value(GString *out, JsonNode *node)
{
    GType type = json_node_get_value_type(node);

    if (type == G_TYPE_INT64) {
        g_string_append_printf(out, "%" G_GINT64_FORMAT,
                               json_node_get_int(node));
    } else if (type == G_TYPE_DOUBLE) {
        double d = json_node_get_double(node);
        char buf[G_ASCII_DTOSTR_BUF_SIZE];

        if (!isfinite(d)) {
            /* JSON has no NaN or infinity */
            g_string_append(out, "null");
            return;
        }
        g_string_append(out, g_ascii_formatd(buf, sizeof(buf), "%.17g", d));
    } else if (type == G_TYPE_BOOLEAN) {
        g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
    } else if (type == G_TYPE_STRING) {
        json_append_string(out, json_node_get_string(node));
    } else {
        g_string_append(out, "null");
    }
}

void monitor_json_append(GString *out, JsonNode *node)
{
    if (!node) {
        g_string_append(out, "null");
        return;
    }
    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT: {
        JsonObjectIter iter;
        const char *name;
        JsonNode *member;
        bool first = true;

        g_string_append_c(out, '{');
        json_object_iter_init_ordered(&iter, json_node_get_object(node));
        while (json_object_iter_next_ordered(&iter, &name, &member)) {
            g_string_append(out, first ? "" : ", ");
            json_append_string(out, name);
            g_string_append(out, ": ");
            monitor_json_append(out, member);
            first = false;
        }
        g_string_append_c(out, '}');
        break;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *array = json_node_get_array(node);
        guint n = json_array_get_length(array);

        g_string_append_c(out, '[');
        for (guint i = 0; i < n; i++) {
            g_string_append(out, i ? ", " : "");
            monitor_json_append(out, json_array_get_element(array, i));
        }
        g_string_append_c(out, ']');
        break;
    }
    case JSON_NODE_VALUE:
        json_append_value(out, node);
        break;
    case JSON_NODE_NULL:
    default:
        g_string_append(out, "null");
        break;
    }
}

char *monitor_json_to_string(JsonNode *node)
{
    GString *out = g_string_new(NULL);

    monitor_json_append(out, node);
    return g_string_free(out, FALSE);
}
