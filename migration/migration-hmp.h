/*
 * HMP rendering of migration's QMP results (migration-hmp-cmds.c).
 */
#ifndef MIGRATION_HMP_H
#define MIGRATION_HMP_H

#include <glib.h>
#include <stdbool.h>
#include <json-glib/json-glib.h>

/* info migrate: QEMU 7.x labels and order. */
void hmp_info_migrate(GString *out, JsonNode *ret);

/* HMP migrate without -d waits for the end, then reports a failure. */
bool hmp_migrate_wait(JsonObject *args, GString *out);

void migration_register_ram_hash_command(void);

#endif /* MIGRATION_HMP_H */
