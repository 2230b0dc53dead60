/*
 * The HMP console of one client (stdio or a socket): banner, prompt, and
 * input cut into lines that hmp.c runs. Bytes in through
 * hmp_session_feed(), text out through the output callback. Main loop
 * thread only.
 */
#include <string.h>

#include "monitor-internal.h"

struct HmpSession {
    MonitorOutputFunc out;
    void *opaque;
    GString *line; /* the line being typed */
    bool too_long; /* the current line passed HMP_MAX_LINE: skip it */
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
    hmp_session_write(s, banner);
    hmp_session_write(s, "\n" HMP_PROMPT);
    return s;
}

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
        hmp_run_line_into(output, s->line->str);
    }
    g_string_append(output, HMP_PROMPT);
    hmp_session_write(s, output->str);
    g_string_truncate(s->line, 0);
    s->too_long = false;
}

void hmp_session_feed(HmpSession *s, const char *buf, size_t len)
{
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
    }
}

void hmp_session_free(HmpSession *s)
{
    if (s) {
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
