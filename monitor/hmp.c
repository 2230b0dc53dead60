/*
 * HMP: parses a human monitor line by the command's `args_type`, runs the
 * command's QMP handler with the arguments as JSON and prints the result
 * with its hmp_print; also renders `help`. Pure text in, text out; the
 * per-client console is hmp-session.c. Main loop thread only.
 *
 * Line grammar:
 *   line    := command [flags] [args]     command: "name" or "info name"
 *   flags   := ("-" X...)...               before positional arguments
 *   arg     := word | "quoted" | 'quoted'  (\\ \" \' \n \t \r escapes)
 * Messages: parse errors print as QEMU's do ("unknown command: 'foo'"),
 * command failures as "Error: <desc>".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "godwit/cutils.h"
#include "monitor-internal.h"

typedef struct HmpArgSpec {
    char *name;
    char type;     /* s S i o b, or '-' for a flag */
    char flag;     /* the X of -X */
    bool optional; /* trailing '?' */
} HmpArgSpec;

static void hmp_arg_spec_clear(gpointer p)
{
    g_free(((HmpArgSpec *)p)->name);
}

/*
 * Splits "name:type,..." into HmpArgSpec. Returns NULL when malformed:
 * unknown type, empty name, '?' on a flag, a required argument after an
 * optional one, anything after 'S'.
 */
static GArray *hmp_spec_parse(const char *args_type)
{
    g_autoptr(GArray) specs = g_array_new(FALSE, TRUE, sizeof(HmpArgSpec));
    g_auto(GStrv) items = NULL;
    bool seen_optional = false, seen_rest = false;

    g_array_set_clear_func(specs, hmp_arg_spec_clear);
    if (!args_type || !*args_type) {
        return g_steal_pointer(&specs);
    }
    items = g_strsplit(args_type, ",", -1);
    for (size_t i = 0; items[i]; i++) {
        const char *colon = strchr(items[i], ':');
        HmpArgSpec spec = {0};
        const char *t;

        if (!colon || colon == items[i]) {
            return NULL;
        }
        t = colon + 1;
        if (t[0] == '-' && g_ascii_isalnum(t[1]) && !t[2]) {
            spec.type = '-';
            spec.flag = t[1];
        } else if (t[0] && strchr("sSiob", t[0]) &&
                   (!t[1] || (t[1] == '?' && !t[2]))) {
            spec.type = t[0];
            spec.optional = t[1] == '?';
            if (seen_rest || (seen_optional && !spec.optional)) {
                return NULL;
            }
            seen_optional |= spec.optional;
            seen_rest |= spec.type == 'S';
        } else {
            return NULL;
        }
        spec.name = g_strndup(items[i], (gsize)(colon - items[i]));
        g_array_append_val(specs, spec);
    }
    return g_steal_pointer(&specs);
}

bool hmp_args_type_valid(const char *args_type)
{
    GArray *specs = hmp_spec_parse(args_type);

    if (!specs) {
        return false;
    }
    g_array_unref(specs);
    return true;
}

static const char *hmp_skip_space(const char *p)
{
    while (g_ascii_isspace(*p)) {
        p++;
    }
    return p;
}

static bool hmp_unescape(char c, char *out)
{
    static const char from[] = "\\\"'ntr";
    static const char to[] = "\\\"'\n\t\r";
    const char *hit = strchr(from, c);

    if (!c || !hit) {
        return false;
    }
    *out = to[hit - from];
    return true;
}

/*
 * Reads one word or quoted string at *pp, advancing *pp. Returns a new
 * string or NULL with *errp set.
 */
static char *hmp_read_word(const char **pp, GError **errp)
{
    const char *p = *pp;
    g_autoptr(GString) word = g_string_new(NULL);
    char quote;

    if (*p != '"' && *p != '\'') {
        while (*p && !g_ascii_isspace(*p)) {
            g_string_append_c(word, *p++);
        }
        *pp = p;
        return g_string_free(g_steal_pointer(&word), FALSE);
    }
    quote = *p++;
    while (*p != quote) {
        char c = *p;

        if (!c) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "unterminated string literal");
            return NULL;
        }
        if (c == '\\' && !hmp_unescape(*++p, &c)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "unsupported escape code: '\\%c'", *p ? *p : ' ');
            return NULL;
        }
        g_string_append_c(word, c);
        p++;
    }
    *pp = p + 1;
    return g_string_free(g_steal_pointer(&word), FALSE);
}

static const HmpArgSpec *hmp_find_flag(GArray *specs, char flag)
{
    for (guint i = 0; i < specs->len; i++) {
        const HmpArgSpec *spec = &g_array_index(specs, HmpArgSpec, i);

        if (spec->type == '-' && spec->flag == flag) {
            return spec;
        }
    }
    return NULL;
}

/* Reads leading -X flags (also combined, -dr) into `args`. */
static bool hmp_parse_flags(GArray *specs, const char **pp, JsonObject *args,
                            GError **errp)
{
    const char *p = hmp_skip_space(*pp);
    bool any = false;

    for (guint i = 0; i < specs->len; i++) {
        any |= g_array_index(specs, HmpArgSpec, i).type == '-';
    }
    while (any && p[0] == '-' && g_ascii_isalpha(p[1])) {
        for (p++; *p && !g_ascii_isspace(*p); p++) {
            const HmpArgSpec *spec = hmp_find_flag(specs, *p);

            if (!spec) {
                g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                            "invalid option '-%c'", *p);
                return false;
            }
            json_object_set_boolean_member(args, spec->name, TRUE);
        }
        p = hmp_skip_space(p);
    }
    *pp = p;
    return true;
}

static bool hmp_parse_int(const char *word, gint64 *out, GError **errp)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(word, &end, 0);
    if (!*word || errno || *end) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "invalid integer '%s'",
                    word);
        return false;
    }
    *out = v;
    return true;
}

/* Parses one positional argument of `spec` at *pp into `args`. */
static bool hmp_parse_one(const HmpArgSpec *spec, const char **pp,
                          JsonObject *args, GError **errp)
{
    g_autofree char *word = NULL;
    uint64_t size;
    gint64 num;
    bool flag;

    if (spec->type == 'S') {
        /* the rest of the line, without trailing blanks */
        const char *end = *pp + strlen(*pp);

        while (end > *pp && g_ascii_isspace(end[-1])) {
            end--;
        }
        word = g_strndup(*pp, (gsize)(end - *pp));
        json_object_set_string_member(args, spec->name, word);
        *pp += strlen(*pp);
        return true;
    }
    word = hmp_read_word(pp, errp);
    if (!word) {
        return false;
    }
    switch (spec->type) {
    case 's':
        json_object_set_string_member(args, spec->name, word);
        return true;
    case 'i':
        if (!hmp_parse_int(word, &num, errp)) {
            return false;
        }
        json_object_set_int_member(args, spec->name, num);
        return true;
    case 'o':
        if (!gw_parse_size(word, 1, &size, errp)) {
            return false;
        }
        if (size > INT64_MAX) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "size '%s' is too large", word);
            return false;
        }
        json_object_set_int_member(args, spec->name, (gint64)size);
        return true;
    case 'b':
        if (!gw_parse_bool(word, &flag, errp)) {
            return false;
        }
        json_object_set_boolean_member(args, spec->name, flag);
        return true;
    default:
        g_assert_not_reached();
    }
}

JsonObject *hmp_parse_args(const char *args_type, const char *text,
                           GError **errp)
{
    g_autoptr(GArray) specs = hmp_spec_parse(args_type);
    g_autoptr(JsonObject) args = json_object_new();
    const char *p = text ? text : "";

    g_assert(specs);
    if (!hmp_parse_flags(specs, &p, args, errp)) {
        return NULL;
    }
    for (guint i = 0; i < specs->len; i++) {
        const HmpArgSpec *spec = &g_array_index(specs, HmpArgSpec, i);

        if (spec->type == '-') {
            continue;
        }
        p = hmp_skip_space(p);
        if (!*p) {
            if (spec->optional) {
                break; /* so are all that follow */
            }
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                        "missing argument '%s'", spec->name);
            return NULL;
        }
        if (!hmp_parse_one(spec, &p, args, errp)) {
            return NULL;
        }
    }
    p = hmp_skip_space(p);
    if (*p) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "too many arguments: '%s'", p);
        return NULL;
    }
    return g_steal_pointer(&args);
}

/* ---- running a line ------------------------------------------------------ */

static const MonitorCommand *hmp_run_command(GString *out,
                                             const MonitorCommand *cmd,
                                             const char *text,
                                             JsonObject **wait_args)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) args = NULL;
    g_autoptr(JsonObject) qmp_args = NULL;
    g_autoptr(JsonNode) ret = NULL;

    args = hmp_parse_args(cmd->args_type, text, &err);
    if (!args) {
        g_string_append_printf(out,
                               "%s\nTry \"help %s\" for more "
                               "information\n",
                               err->message, cmd->hmp_name);
        return NULL;
    }
    if (cmd->hmp_args) {
        qmp_args = cmd->hmp_args(args, &err);
        if (!qmp_args) {
            g_string_append_printf(out, "Error: %s\n", err->message);
            return NULL;
        }
    }
    ret = monitor_call(cmd, qmp_args ? qmp_args : args, &err);
    if (!ret) {
        g_string_append_printf(out, "Error: %s\n", err->message);
        return NULL;
    }
    if (cmd->hmp_print) {
        cmd->hmp_print(out, ret);
    }
    if (wait_args && cmd->hmp_wait &&
        !cmd->hmp_wait(qmp_args ? qmp_args : args, out)) {
        *wait_args = json_object_ref(qmp_args ? qmp_args : args);
        return cmd;
    }
    return NULL;
}

/* Reads a command word: letters up to a blank, never quoted. */
static char *hmp_read_name(const char **pp)
{
    const char *p = hmp_skip_space(*pp);
    const char *start = p;

    while (*p && !g_ascii_isspace(*p)) {
        p++;
    }
    *pp = p;
    return g_strndup(start, (gsize)(p - start));
}

void hmp_run_line_into(GString *out, const char *line)
{
    hmp_run_line_wait(out, line, NULL);
}

const MonitorCommand *hmp_run_line_wait(GString *out, const char *line,
                                        JsonObject **wait_args)
{
    const char *p = line;
    g_autofree char *name = hmp_read_name(&p);
    const MonitorCommand *cmd;

    if (!*name) {
        return NULL;
    }
    if (!strcmp(name, "?")) {
        g_free(name);
        name = g_strdup("help");
    } else if (!strcmp(name, "info")) {
        g_autofree char *sub = hmp_read_name(&p);

        if (!*sub) {
            hmp_help_into(out, "info");
            return NULL;
        }
        g_free(name);
        name = g_strdup_printf("info %s", sub);
    }
    cmd = monitor_find_hmp(name);
    if (!cmd) {
        g_string_append_printf(out, "unknown command: '%s'\n", name);
        return NULL;
    }
    return hmp_run_command(out, cmd, p, wait_args);
}

char *hmp_to_crlf(const char *text)
{
    GString *out = g_string_sized_new(strlen(text) + 16);

    for (const char *p = text; *p; p++) {
        if (*p == '\n' && (p == text || p[-1] != '\r')) {
            g_string_append_c(out, '\r');
        }
        g_string_append_c(out, *p);
    }
    return g_string_free(out, FALSE);
}

char *hmp_run_line(const char *line)
{
    GString *out = g_string_new(NULL);

    hmp_run_line_into(out, line ? line : "");
    return g_string_free(out, FALSE);
}

/* ---- help ---------------------------------------------------------------- */

static void hmp_help_line(GString *out, const char *name, const char *params,
                          const char *help)
{
    g_string_append_printf(out, "%s%s%s -- %s\n", name,
                           params && *params ? " " : "", params ? params : "",
                           help ? help : "");
}

static gint hmp_cmp_hmp_name(gconstpointer a, gconstpointer b)
{
    const MonitorCommand *ca = *(const MonitorCommand *const *)a;
    const MonitorCommand *cb = *(const MonitorCommand *const *)b;

    return strcmp(ca->hmp_name, cb->hmp_name);
}

/* Lists the `info` sub-commands (info == true) or the other commands. */
static void hmp_help_list(GString *out, bool info)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new();
    bool info_listed = false;
    size_t n;
    const MonitorCommand *const *cmds = monitor_commands(&n);

    for (size_t i = 0; i < n; i++) {
        if (cmds[i]->hmp_name &&
            g_str_has_prefix(cmds[i]->hmp_name, "info ") == info) {
            g_ptr_array_add(list, (gpointer)cmds[i]);
        }
    }
    g_ptr_array_sort(list, hmp_cmp_hmp_name);
    for (guint i = 0; i < list->len; i++) {
        const MonitorCommand *cmd = list->pdata[i];

        if (!info && !info_listed && strcmp(cmd->hmp_name, "info") > 0) {
            hmp_help_line(out, "info", "[subcommand]",
                          "show various information about the system state");
            info_listed = true;
        }
        hmp_help_line(out, cmd->hmp_name, cmd->params, cmd->help);
    }
    if (!info && !info_listed) {
        hmp_help_line(out, "info", "[subcommand]",
                      "show various information about the system state");
    }
}

/* "info   status " -> "info status" */
static char *hmp_normalize_name(const char *name)
{
    GString *norm = g_string_new(NULL);
    const char *p = name;

    for (;;) {
        g_autofree char *word = hmp_read_name(&p);

        if (!*word) {
            break;
        }
        if (norm->len) {
            g_string_append_c(norm, ' ');
        }
        g_string_append(norm, word);
    }
    return g_string_free(norm, FALSE);
}

void hmp_help_into(GString *out, const char *name)
{
    g_autofree char *joined = NULL;
    const MonitorCommand *cmd;

    joined = hmp_normalize_name(name ? name : "");
    if (!*joined) {
        hmp_help_list(out, false);
        return;
    }
    if (!strcmp(joined, "info")) {
        hmp_help_list(out, true);
        return;
    }
    cmd = monitor_find_hmp(strcmp(joined, "?") ? joined : "help");
    if (!cmd) {
        g_string_append_printf(out, "unknown command: '%s'\n", joined);
        return;
    }
    hmp_help_line(out, cmd->hmp_name, cmd->params, cmd->help);
}
