/*
 * Helpers of the migration options unit test (test-migration-options*.c):
 * the busy hooks' fakes, setup(), and the QMP/HMP helpers; see
 * migration-options-test.h.
 */
#include "migration-options-test.h"

/* ---- helpers ------------------------------------------------------------- */

bool fake_outgoing, fake_incoming, fake_loading;

static bool outgoing_running(void)
{
    return fake_outgoing;
}

static bool incoming_started(void)
{
    return fake_incoming;
}

static bool incoming_loading(void)
{
    return fake_loading;
}

int setup(void **state)
{
    migration_options_reset();
    fake_outgoing = fake_incoming = fake_loading = false;
    migration_options_init(outgoing_running, incoming_started,
                           incoming_loading);
    return 0;
}

static JsonObject *parse_obj(const char *json)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;

    if (!json_parser_load_from_data(parser, json, -1, &err)) {
        fail_msg("bad test JSON %s: %s", json, err->message);
    }
    return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

/* Runs a QMP command; returns NULL on success, else the error text. */
char *qmp_run(const char *name, const char *args_json)
{
    g_autoptr(JsonObject) args = parse_obj(args_json ? args_json : "{}");
    g_autoptr(GError) err = NULL;
    JsonNode *ret = monitor_dispatch(name, args, &err);

    if (ret) {
        json_node_unref(ret);
        return NULL;
    }
    assert_non_null(err);
    assert_string_equal(gw_error_class(err), "GenericError");
    return g_strdup(err->message);
}

JsonNode *query(const char *name)
{
    g_autoptr(JsonObject) args = json_object_new();
    g_autoptr(GError) err = NULL;
    JsonNode *ret = monitor_dispatch(name, args, &err);

    assert_non_null(ret);
    return ret;
}

void assert_hmp(const char *line, const char *want)
{
    g_autofree char *out = hmp_run_line(line);

    assert_string_equal(out, want);
}
