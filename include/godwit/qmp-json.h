/*
 * Small helpers for building and reading QMP values with json-glib, used
 * by every command handler.
 */
#ifndef GODWIT_QMP_JSON_H
#define GODWIT_QMP_JSON_H

#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "godwit/error.h"

/* New nodes; the *_take variants take ownership of their argument. */
JsonNode *qmp_empty(void);
JsonNode *qmp_object_take(JsonObject *obj);
JsonNode *qmp_array_take(JsonArray *arr);

/*
 * Typed argument access for handlers. `optional` members that are absent
 * leave *out unchanged and succeed. A member of the wrong type is an error
 * "Invalid parameter type for 'name', expected: <type>", as QEMU says it.
 */
bool qmp_arg_str(JsonObject *args, const char *name, bool optional,
                 const char **out, GError **errp);
bool qmp_arg_bool(JsonObject *args, const char *name, bool optional,
                  bool *out, GError **errp);
bool qmp_arg_int(JsonObject *args, const char *name, bool optional,
                 int64_t *out, GError **errp);

/*
 * Refuses members of `args` not listed in `allowed` (NULL-terminated):
 * "Parameter 'x' is unexpected".
 */
bool qmp_args_check(JsonObject *args, const char *const *allowed,
                    GError **errp);

#endif /* GODWIT_QMP_JSON_H */
