/*
 * The command table shared by QMP and HMP, QMP dispatch, the monitor's own
 * commands (qmp_capabilities, query-commands, human-monitor-command, HMP
 * help), the version reported to clients, and the event queue that lets
 * any thread emit QMP events.
 *
 * Threads: everything but monitor_emit_event() runs in the main loop
 * thread; the registry is filled at start-up and needs no lock.
 */
#include <string.h>

#include "monitor-internal.h"

/* ---- registry ------------------------------------------------------------ */

static GPtrArray *commands;     /* const MonitorCommand *, in order */
static GHashTable *by_qmp_name; /* name -> command */
static GHashTable *by_hmp_name; /* hmp_name -> command */

static void monitor_register_builtins(void);

static void monitor_registry_init(void)
{
    if (commands) {
        return;
    }
    commands = g_ptr_array_new();
    by_qmp_name = g_hash_table_new(g_str_hash, g_str_equal);
    by_hmp_name = g_hash_table_new(g_str_hash, g_str_equal);
    monitor_register_builtins();
}

static void monitor_register_one(const MonitorCommand *cmd)
{
    /* all programming errors: the tables are static */
    g_assert(cmd->name || cmd->hmp_name);
    g_assert(cmd->handler);
    g_assert(hmp_args_type_valid(cmd->args_type));
    if (cmd->name) {
        g_assert(!g_hash_table_contains(by_qmp_name, cmd->name));
        g_hash_table_insert(by_qmp_name, (gpointer)cmd->name, (gpointer)cmd);
    }
    if (cmd->hmp_name) {
        g_assert(strcmp(cmd->hmp_name, "info") != 0);
        g_assert(!g_hash_table_contains(by_hmp_name, cmd->hmp_name));
        g_hash_table_insert(by_hmp_name, (gpointer)cmd->hmp_name,
                            (gpointer)cmd);
    }
    g_ptr_array_add(commands, (gpointer)cmd);
}

void monitor_register_commands(const MonitorCommand *cmds, size_t n)
{
    monitor_registry_init();
    for (size_t i = 0; i < n; i++) {
        monitor_register_one(&cmds[i]);
    }
}

const MonitorCommand *monitor_find_qmp(const char *name)
{
    monitor_registry_init();
    return name ? g_hash_table_lookup(by_qmp_name, name) : NULL;
}

const MonitorCommand *monitor_find_hmp(const char *hmp_name)
{
    monitor_registry_init();
    return hmp_name ? g_hash_table_lookup(by_hmp_name, hmp_name) : NULL;
}

const MonitorCommand *const *monitor_commands(size_t *n)
{
    monitor_registry_init();
    *n = commands->len;
    return (const MonitorCommand *const *)commands->pdata;
}

/* Handlers running now: monitor_cleanup() must not pull the rug. */
static unsigned monitor_calls_running;

JsonNode *monitor_call(const MonitorCommand *cmd, JsonObject *args,
                       GError **errp)
{
    g_autoptr(JsonObject) empty = NULL;
    GError *local_err = NULL;
    JsonNode *ret;

    if (!args) {
        empty = json_object_new();
        args = empty;
    }
    monitor_calls_running++;
    ret = cmd->handler(args, &local_err);
    monitor_calls_running--;
    if (!ret && !local_err) {
        /* a handler broke its contract: answer rather than hang the client */
        g_set_error(&local_err, GW_ERROR, GW_ERROR_GENERIC,
                    "internal error: command %s returned no result",
                    cmd->name ? cmd->name : cmd->hmp_name);
    }
    if (!ret) {
        g_propagate_error(errp, local_err);
    }
    return ret;
}

JsonNode *monitor_dispatch(const char *name, JsonObject *args, GError **errp)
{
    const MonitorCommand *cmd = monitor_find_qmp(name);

    if (!cmd) {
        g_set_error(errp, GW_ERROR, GW_ERROR_COMMAND_NOT_FOUND,
                    "The command %s has not been found", name);
        return NULL;
    }
    return monitor_call(cmd, args, errp);
}

/* ---- version ------------------------------------------------------------- */

static struct {
    int major, minor, micro;
    char *package;
} version;

void monitor_set_version(int major, int minor, int micro, const char *package)
{
    version.major = major;
    version.minor = minor;
    version.micro = micro;
    g_free(version.package);
    version.package = g_strdup(package ? package : "");
}

JsonNode *monitor_version_info(void)
{
    JsonObject *qemu = json_object_new();
    JsonObject *info = json_object_new();
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    /* member order as QEMU prints it */
    json_object_set_int_member(qemu, "micro", version.micro);
    json_object_set_int_member(qemu, "minor", version.minor);
    json_object_set_int_member(qemu, "major", version.major);
    json_object_set_object_member(info, "qemu", qemu);
    json_object_set_string_member(info, "package",
                                  version.package ? version.package : "");
    json_node_take_object(node, info);
    return node;
}

char *monitor_banner(void)
{
    return g_strdup_printf("godwit %d.%d.%d monitor - type 'help' for more "
                           "information",
                           version.major, version.minor, version.micro);
}

/* ---- the monitor's own commands ------------------------------------------ */

/*
 * Only reached outside capabilities negotiation: a QMP session in that mode
 * handles qmp_capabilities itself (qmp.c).
 */
static JsonNode *qmp_qmp_capabilities(JsonObject *args, GError **errp)
{
    g_set_error(errp, GW_ERROR, GW_ERROR_COMMAND_NOT_FOUND,
                "Capabilities negotiation is already complete, command "
                "ignored");
    return NULL;
}

static gint monitor_cmp_name(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static JsonNode *qmp_query_commands(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {NULL};
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    JsonArray *list;
    JsonNode *ret;
    size_t n;
    const MonitorCommand *const *cmds = monitor_commands(&n);

    if (!qmp_args_check(args, allowed, errp)) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (cmds[i]->name) {
            g_ptr_array_add(names, (gpointer)cmds[i]->name);
        }
    }
    g_ptr_array_sort(names, monitor_cmp_name);
    list = json_array_sized_new(names->len);
    for (guint i = 0; i < names->len; i++) {
        JsonObject *entry = json_object_new();

        json_object_set_string_member(entry, "name", names->pdata[i]);
        json_array_add_object_element(list, entry);
    }
    ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(ret, list);
    return ret;
}

static JsonNode *qmp_human_monitor_command(JsonObject *args, GError **errp)
{
    static const char *const allowed[] = {"command-line", NULL};
    const char *line = NULL;
    g_autofree char *output = NULL;

    if (!qmp_args_check(args, allowed, errp) ||
        !qmp_arg_str(args, "command-line", true, &line, errp)) {
        return NULL;
    }
    output = hmp_run_line(line);
    g_autofree char *crlf = hmp_to_crlf(output);
    return json_node_init_string(json_node_alloc(), crlf);
}

/* HMP help: the handler renders the text, hmp_print prints it. */
static JsonNode *hmp_help(JsonObject *args, GError **errp)
{
    const char *name = NULL;
    g_autoptr(GString) out = g_string_new(NULL);

    if (!qmp_arg_str(args, "name", false, &name, errp)) {
        return NULL;
    }
    hmp_help_into(out, name);
    return json_node_init_string(json_node_alloc(), out->str);
}

static void hmp_print_string(GString *out, JsonNode *ret)
{
    g_string_append(out, json_node_get_string(ret));
}

static const MonitorCommand monitor_builtin_cmds[] = {
    {
        .name = "qmp_capabilities",
        .handler = qmp_qmp_capabilities,
    },
    {
        .name = "query-commands",
        .handler = qmp_query_commands,
    },
    {
        .name = "human-monitor-command",
        .handler = qmp_human_monitor_command,
    },
    {
        .hmp_name = "help",
        .handler = hmp_help,
        .args_type = "name:S?",
        .params = "[cmd]",
        .help = "show the help (also 'help info' for the info commands)",
        .hmp_print = hmp_print_string,
    },
};

static void monitor_register_builtins(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(monitor_builtin_cmds); i++) {
        monitor_register_one(&monitor_builtin_cmds[i]);
    }
}

/* ---- events -------------------------------------------------------------- */

typedef struct MonitorEvent {
    char *name;
    JsonObject *data; /* may be NULL */
    gint64 time_us;   /* wall clock at emission */
} MonitorEvent;

/* Protected by event_lock: emitters on any thread, drained by main. */
static GMutex event_lock;
static GQueue event_queue = G_QUEUE_INIT;
static GSource *event_source; /* pending idle that drains the queue */

static void monitor_event_deliver(MonitorEvent *ev)
{
    JsonObject *ts = json_object_new();
    g_autoptr(JsonObject) msg = json_object_new();
    g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
    g_autoptr(GString) line = g_string_new(NULL);

    json_object_set_int_member(ts, "seconds", ev->time_us / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds",
                               ev->time_us % G_USEC_PER_SEC);
    json_object_set_object_member(msg, "timestamp", ts);
    json_object_set_string_member(msg, "event", ev->name);
    if (ev->data) {
        json_object_set_object_member(msg, "data", json_object_ref(ev->data));
    }
    json_node_set_object(node, msg);
    monitor_json_append(line, node);
    g_string_append(line, "\r\n");
    qmp_sessions_broadcast(line->str, line->len);
}

static void monitor_event_free(gpointer p)
{
    MonitorEvent *ev = p;

    g_free(ev->name);
    if (ev->data) {
        json_object_unref(ev->data);
    }
    g_free(ev);
}

void monitor_events_flush(void)
{
    GQueue batch = G_QUEUE_INIT;
    MonitorEvent *ev;

    g_mutex_lock(&event_lock);
    batch = event_queue;
    g_queue_init(&event_queue);
    g_mutex_unlock(&event_lock);

    while ((ev = g_queue_pop_head(&batch))) {
        monitor_event_deliver(ev);
        monitor_event_free(ev);
    }
}

static gboolean monitor_events_idle(gpointer opaque)
{
    g_mutex_lock(&event_lock);
    g_clear_pointer(&event_source, g_source_unref);
    g_mutex_unlock(&event_lock);
    monitor_events_flush();
    return G_SOURCE_REMOVE;
}

void monitor_emit_event(const char *event, JsonObject *data)
{
    MonitorEvent *ev = g_new0(MonitorEvent, 1);
    GMainContext *ctx = g_main_context_default();

    ev->name = g_strdup(event);
    ev->data = data;
    ev->time_us = g_get_real_time();

    g_mutex_lock(&event_lock);
    g_queue_push_tail(&event_queue, ev);
    if (!event_source && !g_main_context_is_owner(ctx)) {
        event_source = g_idle_source_new();
        g_source_set_priority(event_source, G_PRIORITY_DEFAULT);
        g_source_set_callback(event_source, monitor_events_idle, NULL, NULL);
        g_source_attach(event_source, ctx);
    }
    g_mutex_unlock(&event_lock);

    /*
     * In the main loop (a command handler, a timer) deliver at once, after
     * anything other threads queued before: a STOP emitted by `stop`
     * reaches clients before the command's reply, as in QEMU.
     */
    if (g_main_context_is_owner(ctx)) {
        monitor_events_flush();
    }
}

static void monitor_events_cleanup(void)
{
    g_mutex_lock(&event_lock);
    if (event_source) {
        g_source_destroy(event_source);
        g_clear_pointer(&event_source, g_source_unref);
    }
    g_queue_clear_full(&event_queue, monitor_event_free);
    g_mutex_unlock(&event_lock);
}

/* ---- opening and closing ------------------------------------------------- */

bool monitor_open_qmp(const char *spec, GError **errp)
{
    monitor_registry_init();
    return monitor_chardev_open(spec, &monitor_qmp_protocol, errp);
}

bool monitor_open_hmp(const char *spec, GError **errp)
{
    monitor_registry_init();
    return monitor_chardev_open(spec, &monitor_hmp_protocol, errp);
}

void monitor_cleanup(void)
{
    /* from a handler it would free the session that is calling it */
    g_assert(monitor_calls_running == 0);
    monitor_events_flush();
    monitor_chardev_cleanup();
    monitor_events_cleanup();
}
