/*
 * The HMP console of one client (stdio or a socket): banner, prompt, and
 * input cut into lines that hmp.c runs. Bytes in through
 * hmp_session_feed(), text out through the output callback. Main loop
 * thread only.
 */
#include <string.h>

#include "monitor-internal.h"

#define HMP_WAIT_POLL_MS 100

struct HmpSession {
    MonitorOutputFunc out;
    void *opaque;
    GString *line; /* the line being typed */
    bool too_long; /* the current line passed HMP_MAX_LINE: skip it */
    /* A command that is not finished (MonitorCommand.hmp_wait). */
    const MonitorCommand *waiting;
    JsonObject *wait_args;
    guint wait_source;
    GString *queued; /* input that arrived while waiting */
};

static void hmp_session_write(HmpSession *s, const char *text)
{
    g_autofree char *crlf = hmp_to_crlf(text);

    s->out(s->opaque, crlf, strlen(crlf));
}

HmpSession *hmp_session_new(MonitorOutputFunc out, void *opaque)
{
    HmpSession *s = g_new0(HmpSession, 1);
    g_autofree char *banner = monitor_banner();

    s->out = out;
    s->opaque = opaque;
    s->line = g_string_new(NULL);
    s->queued = g_string_new(NULL);
    hmp_session_write(s, banner);
    hmp_session_write(s, "\n" HMP_PROMPT);
    return s;
}

static gboolean hmp_session_poll(gpointer opaque);

static void hmp_session_run(HmpSession *s)
{
    g_autoptr(GString) output = g_string_new(NULL);

    if (s->too_long) {
        g_string_printf(output, "line too long (more than %u bytes)\n",
                        HMP_MAX_LINE);
    } else {
        /* a CRLF line ending from telnet or nc -C */
        if (s->line->len && s->line->str[s->line->len - 1] == '\r') {
            g_string_truncate(s->line, s->line->len - 1);
        }
        s->waiting = hmp_run_line_wait(output, s->line->str, &s->wait_args);
    }
    if (s->waiting) {
        s->wait_source = g_timeout_add(HMP_WAIT_POLL_MS, hmp_session_poll, s);
    } else {
        g_string_append(output, HMP_PROMPT);
    }
    hmp_session_write(s, output->str);
    g_string_truncate(s->line, 0);
    s->too_long = false;
}

/* Polls a waiting command; when it is done, prints and replays input. */
static gboolean hmp_session_poll(gpointer opaque)
{
    HmpSession *s = opaque;
    g_autoptr(GString) output = g_string_new(NULL);
    g_autoptr(GString) queued = NULL;

    if (!s->waiting->hmp_wait(s->wait_args, output)) {
        if (output->len) {
            hmp_session_write(s, output->str);
        }
        return G_SOURCE_CONTINUE;
    }
    s->waiting = NULL;
    s->wait_source = 0;
    g_clear_pointer(&s->wait_args, json_object_unref);
    g_string_append(output, HMP_PROMPT);
    hmp_session_write(s, output->str);
    queued = s->queued;
    s->queued = g_string_new(NULL);
    hmp_session_feed(s, queued->str, queued->len);
    return G_SOURCE_REMOVE;
}

void hmp_session_feed(HmpSession *s, const char *buf, size_t len)
{
    if (s->waiting) {
        g_string_append_len(s->queued, buf, (gssize)len);
        return;
    }
    while (len > 0) {
        const char *nl = memchr(buf, '\n', len);
        size_t chunk = nl ? (size_t)(nl - buf) : len;

        if (!s->too_long) {
            if (s->line->len + chunk > HMP_MAX_LINE) {
                s->too_long = true;
                g_string_truncate(s->line, 0);
            } else {
                g_string_append_len(s->line, buf, (gssize)chunk);
            }
        }
        if (!nl) {
            return;
        }
        hmp_session_run(s);
        buf = nl + 1;
        len -= chunk + 1;
        if (s->waiting) {
            g_string_append_len(s->queued, buf, (gssize)len);
            return;
        }
    }
}

void hmp_session_free(HmpSession *s)
{
    if (s) {
        if (s->wait_source) {
            g_source_remove(s->wait_source);
        }
        g_clear_pointer(&s->wait_args, json_object_unref);
        g_string_free(s->queued, TRUE);
        g_string_free(s->line, TRUE);
        g_free(s);
    }
}

static void *hmp_protocol_open(MonitorOutputFunc out, void *opaque)
{
    return hmp_session_new(out, opaque);
}

static void hmp_protocol_feed(void *session, const char *buf, size_t len)
{
    hmp_session_feed(session, buf, len);
}

static void hmp_protocol_close(void *session)
{
    hmp_session_free(session);
}

const MonitorProtocol monitor_hmp_protocol = {
    .name = "hmp",
    .open = hmp_protocol_open,
    .feed = hmp_protocol_feed,
    .close = hmp_protocol_close,
};
