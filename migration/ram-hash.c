/*
 * x-query-ram-hash: SHA-256 of each RAM block, for tests and operators to
 * prove two VMs' memory byte-identical. Holes (never-populated extents)
 * hash as the zeros they read as, without being touched.
 */
#include "godwit/machine.h"
#include "godwit/monitor.h"
#include "migration-int.h"

static const uint8_t zero_page[GW_PAGE_SIZE];

/* Hashes [from, to) of zeros. */
static void hash_zeros(GChecksum *c, uint64_t from, uint64_t to)
{
    for (uint64_t p = from; p < to; p += GW_PAGE_SIZE) {
        g_checksum_update(c, zero_page, MIN(GW_PAGE_SIZE, to - p));
    }
}

static char *ram_block_sha256(RAMBlock *rb, uint64_t *populated)
{
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
    uint64_t pos = 0, s, e;
    char *hex;

    *populated = 0;
    while (ram_block_next_extent(rb, pos, &s, &e) > 0) {
        hash_zeros(c, pos, s);
        for (uint64_t p = s; p < e; p += 1 << 20) {
            g_checksum_update(c, rb->host + p, MIN(1u << 20, e - p));
        }
        *populated += e - s;
        pos = e;
    }
    hash_zeros(c, pos, rb->used_length);
    hex = g_strdup(g_checksum_get_string(c));
    g_checksum_free(c);
    return hex;
}

static JsonNode *qmp_x_query_ram_hash(JsonObject *args, GError **errp)
{
    Machine *m = current_machine;
    JsonArray *a = json_array_new();
    uint64_t populated;
    g_autofree char *hex = ram_block_sha256(m->ram, &populated);
    JsonObject *o = json_object_new();

    json_object_set_string_member(o, "block", m->ram->idstr);
    json_object_set_int_member(o, "size", (gint64)m->ram->used_length);
    json_object_set_int_member(o, "populated", (gint64)populated);
    json_object_set_string_member(o, "sha256", hex);
    json_array_add_object_element(a, o);
    return qmp_return_array(a);
}

static void hmp_x_query_ram_hash(GString *out, JsonNode *ret)
{
    JsonArray *a = json_node_get_array(ret);

    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *o = json_array_get_object_element(a, i);
        g_string_append_printf(out, "%s: %s\n",
                               json_object_get_string_member(o, "block"),
                               json_object_get_string_member(o, "sha256"));
    }
}

static const MonitorCommand ram_hash_commands[] = {
    {
        .name = "x-query-ram-hash",
        .handler = qmp_x_query_ram_hash,
        .hmp_name = "info ram_hash",
        .help = "show the SHA-256 of every RAM block (debug)",
        .hmp_print = hmp_x_query_ram_hash,
    },
};

void migration_register_ram_hash_command(void)
{
    monitor_register_commands(ram_hash_commands,
                              G_N_ELEMENTS(ram_hash_commands));
}
