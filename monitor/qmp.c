/*
 * The QMP server protocol for one client: greeting, capabilities
 * negotiation, request checking, replies with the client's id, and event
 * delivery. Bytes come in through qmp_session_feed() and go out through
 * the session's output callback, so the protocol is tested without
 * sockets. Main loop thread only.
 *
 * Wire format (QEMU's): every message is one JSON object on one line,
 * ASCII only, ended by CRLF.
 */
#include <string.h>

#include "json-stream.h"
#include "monitor-internal.h"

struct QmpSession {
    MonitorOutputFunc out;
    void *opaque;
    JsonStream *stream;
    bool negotiated; /* left capabilities negotiation mode */
};

/* Every live session, for events. */
static GList *qmp_sessions;

static void qmp_send(QmpSession *s, JsonObject *msg)
{
    g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
    g_autoptr(GString) line = g_string_new(NULL);

    json_node_set_object(node, msg);
    monitor_json_append(line, node);
    g_string_append(line, "\r\n");
    s->out(s->opaque, line->str, line->len);
}

/* Takes `ret`; `id` (borrowed) may be NULL. */
static void qmp_reply_return(QmpSession *s, JsonNode *ret, JsonNode *id)
{
    g_autoptr(JsonObject) msg = json_object_new();

    json_object_set_member(msg, "return", ret);
    if (id) {
        json_object_set_member(msg, "id", json_node_copy(id));
    }
    qmp_send(s, msg);
}

static void qmp_reply_error(QmpSession *s, const GError *err, JsonNode *id)
{
    g_autoptr(JsonObject) msg = json_object_new();
    JsonObject *error = json_object_new();

    json_object_set_string_member(error, "class", gw_error_class(err));
    json_object_set_string_member(error, "desc", err->message);
    json_object_set_object_member(msg, "error", error);
    if (id) {
        json_object_set_member(msg, "id", json_node_copy(id));
    }
    qmp_send(s, msg);
}

static void qmp_send_greeting(QmpSession *s)
{
    g_autoptr(JsonObject) msg = json_object_new();
    JsonObject *qmp = json_object_new();

    json_object_set_member(qmp, "version", monitor_version_info());
    /* no out-of-band execution: advertise no capability */
    json_object_set_array_member(qmp, "capabilities", json_array_new());
    json_object_set_object_member(msg, "QMP", qmp);
    qmp_send(s, msg);
}

bool qmp_capabilities_check(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"enable", NULL};
    JsonNode *enable;
    JsonArray *caps;

    if (!qmp_args_check(args, allowed, errp)) {
        return false;
    }
    enable = json_object_get_member(args, "enable");
    if (!enable) {
        return true;
    }
    if (!JSON_NODE_HOLDS_ARRAY(enable)) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "Invalid parameter type for 'enable', expected: array");
        return false;
    }
    caps = json_node_get_array(enable);
    for (guint i = 0; i < json_array_get_length(caps); i++) {
        JsonNode *cap = json_array_get_element(caps, i);
        const char *name;

        if (!JSON_NODE_HOLDS_VALUE(cap) ||
            json_node_get_value_type(cap) != G_TYPE_STRING) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Invalid parameter type for 'enable[%u]', expected: "
                        "string",
                        i);
            return false;
        }
        name = json_node_get_string(cap);
        if (!strcmp(name, "oob")) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Capability 'oob' not available");
        } else {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "Parameter 'enable[%u]' does not accept value '%s'", i,
                        name);
        }
        return false;
    }
    return true;
}

/*
 * Checks the request's own members (QEMU's rules). Returns the command
 * name and sets *args (borrowed; NULL when absent), or NULL with *errp set.
 */
static const char *qmp_check_request(JsonObject *req, JsonObject **args,
                                     GError **errp)
{
    JsonObjectIter iter;
    const char *member_name;
    JsonNode *member;
    const char *name = NULL;

    *args = NULL;
    json_object_iter_init_ordered(&iter, req);
    while (json_object_iter_next_ordered(&iter, &member_name, &member)) {
        if (!strcmp(member_name, "execute")) {
            if (!JSON_NODE_HOLDS_VALUE(member) ||
                json_node_get_value_type(member) != G_TYPE_STRING) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "QMP input member 'execute' must be a string");
                return NULL;
            }
            name = json_node_get_string(member);
        } else if (!strcmp(member_name, "arguments")) {
            if (!JSON_NODE_HOLDS_OBJECT(member)) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "QMP input member 'arguments' must be an "
                            "object");
                return NULL;
            }
            *args = json_node_get_object(member);
        } else if (strcmp(member_name, "id") != 0) {
            /* "exec-oob" lands here too: OOB is never enabled */
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "QMP input member '%s' is unexpected", member_name);
            return NULL;
        }
    }
    if (!name) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "QMP input lacks member 'execute'");
    }
    return name;
}

/* Runs one request in negotiation mode: only qmp_capabilities works. */
static JsonNode *qmp_negotiate(QmpSession *s, const char *name,
                               JsonObject *args, GError **errp)
{
    if (strcmp(name, "qmp_capabilities") != 0) {
        g_set_error(errp, GW_ERROR, GW_ERROR_COMMAND_NOT_FOUND,
                    "Expecting capabilities negotiation with "
                    "'qmp_capabilities'");
        return NULL;
    }
    if (args && !qmp_capabilities_check(args, errp)) {
        return NULL;
    }
    s->negotiated = true;
    return qmp_return_empty();
}

static void qmp_handle_request(QmpSession *s, JsonNode *req)
{
    JsonObject *obj;
    JsonObject *args;
    JsonNode *id;
    JsonNode *ret;
    const char *name;
    GError *err = NULL;

    if (!JSON_NODE_HOLDS_OBJECT(req)) {
        g_set_error(&err, GW_ERROR, GW_ERROR_GENERIC,
                    "QMP input must be a JSON object");
        qmp_reply_error(s, err, NULL);
        g_error_free(err);
        return;
    }
    obj = json_node_get_object(req);
    id = json_object_get_member(obj, "id");
    name = qmp_check_request(obj, &args, &err);
    if (!name) {
        ret = NULL;
    } else if (!s->negotiated) {
        ret = qmp_negotiate(s, name, args, &err);
    } else {
        ret = monitor_dispatch(name, args, &err);
    }
    if (ret) {
        qmp_reply_return(s, ret, id);
    } else {
        qmp_reply_error(s, err, id);
        g_error_free(err);
    }
}

/*
 * json-glib says "<data>:1:13: Parse error: unexpected ..."; keep the
 * position, drop the rest of the prefix: "1:13: unexpected ...".
 */
static char *qmp_parse_error_text(const char *msg)
{
    g_autofree char *text = g_strdup(msg);
    const char *p = text;
    char *cut;

    if (g_str_has_prefix(p, "<data>:")) {
        p += strlen("<data>:");
    }
    cut = strstr(p, "Parse error: ");
    if (cut) {
        memmove(cut, cut + strlen("Parse error: "),
                strlen(cut + strlen("Parse error: ")) + 1);
    }
    return g_strdup(p);
}

static void qmp_on_json(void *opaque, const char *json, size_t len,
                        const GError *err)
{
    QmpSession *s = opaque;
    g_autoptr(JsonParser) parser = NULL;
    g_autoptr(GError) parse_err = NULL;

    if (!json) {
        qmp_reply_error(s, err, NULL);
        return;
    }
    if (!json_text_check(json, len, &parse_err)) {
        g_prefix_error(&parse_err, "JSON parse error, ");
        qmp_reply_error(s, parse_err, NULL);
        return;
    }
    /* mutable: handlers may edit the arguments they are given */
    parser = json_parser_new();
    if (!json_parser_load_from_data(parser, json, (gssize)len, &parse_err)) {
        g_autofree char *text = qmp_parse_error_text(parse_err->message);
        g_autoptr(GError) reply = g_error_new(GW_ERROR, GW_ERROR_GENERIC,
                                              "JSON parse error, %s", text);
        qmp_reply_error(s, reply, NULL);
        return;
    }
    qmp_handle_request(s, json_parser_get_root(parser));
}

QmpSession *qmp_session_new(MonitorOutputFunc out, void *opaque)
{
    QmpSession *s = g_new0(QmpSession, 1);

    s->out = out;
    s->opaque = opaque;
    s->stream = json_stream_new(qmp_on_json, s, 0, 0);
    qmp_sessions = g_list_prepend(qmp_sessions, s);
    qmp_send_greeting(s);
    return s;
}

void qmp_session_feed(QmpSession *s, const char *buf, size_t len)
{
    json_stream_feed(s->stream, buf, len);
}

bool qmp_session_negotiated(const QmpSession *s)
{
    return s->negotiated;
}

void qmp_session_free(QmpSession *s)
{
    if (!s) {
        return;
    }
    qmp_sessions = g_list_remove(qmp_sessions, s);
    json_stream_free(s->stream);
    g_free(s);
}

void qmp_sessions_broadcast(const char *line, size_t len)
{
    /* oldest first, so that clients see events in connection order */
    for (GList *l = g_list_last(qmp_sessions); l; l = l->prev) {
        QmpSession *s = l->data;

        if (s->negotiated) {
            s->out(s->opaque, line, len);
        }
    }
}

static void *qmp_protocol_open(MonitorOutputFunc out, void *opaque)
{
    return qmp_session_new(out, opaque);
}

static void qmp_protocol_feed(void *session, const char *buf, size_t len)
{
    qmp_session_feed(session, buf, len);
}

static void qmp_protocol_close(void *session)
{
    qmp_session_free(session);
}

const MonitorProtocol monitor_qmp_protocol = {
    .name = "qmp",
    .open = qmp_protocol_open,
    .feed = qmp_protocol_feed,
    .close = qmp_protocol_close,
};
