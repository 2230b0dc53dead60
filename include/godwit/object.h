/*
 * User-creatable objects, as QEMU's -object / object-add / object-del:
 * named instances of a type (tls-creds-x509, authz-list, ...) that other
 * subsystems look up by id (migration's tls-creds and tls-authz).
 *
 * Each type is a static GwObjectOps registered by an explicit init call
 * (crypto_objects_register()). Properties reach a type as strings, the way
 * the command line gives them: QMP values are flattened first (true ->
 * "on", a list of objects -> "rules.0.match", ...). A type takes the
 * properties it knows with gw_props_take_*(); one left over is refused.
 *
 * Threads: add and delete run in the main loop; lookups may come from any
 * thread (the migration thread looks its credentials up per connection),
 * so the registry is locked and a looked-up object holds a reference that
 * keeps object-del from freeing it under its user.
 */
#ifndef GODWIT_OBJECT_H
#define GODWIT_OBJECT_H

#include <glib.h>
#include <stdbool.h>

#include "godwit/error.h"

/* Property name -> value, both owned strings. */
typedef GHashTable GwProps;

typedef struct GwObjectOps {
    const char *type; /* "tls-creds-x509" */
    /*
     * The property names the type knows, NULL-terminated; one ending in
     * '.' is a prefix ("rules."). Checked before create, so that a typo
     * is named before any file is opened.
     */
    const char *const *props;
    /*
     * Main loop: builds the object's state from `props`, taking (removing)
     * each property it understands. Returns the state or NULL with *errp.
     */
    void *(*create)(const char *id, GwProps *props, GError **errp);
    /* Any thread (the last reference may drop in the migration thread). */
    void (*free)(void *state);
} GwObjectOps;

typedef struct GwObject GwObject;

/* Registration asserts the hooks, props and a unique type name. */
void object_type_register(const GwObjectOps *ops);

/*
 * Creates object `id` of `type` from `props` (consumed: the caller keeps
 * ownership of the table, the object takes what it needs).
 */
bool object_add(const char *type, const char *id, GwProps *props,
                GError **errp);
/* "TYPE,id=ID,key=value,..." (-object, HMP object_add; ",," is a comma). */
bool object_add_keyval(const char *spec, GError **errp);
bool object_del(const char *id, GError **errp);
/* Deletes every object (at exit, and between unit tests). */
void object_del_all(void);

/* A new reference to object `id`, or NULL (no error: callers word it). */
GwObject *object_ref_by_id(const char *id);
void object_unref(GwObject *o);
const char *object_type_name(GwObject *o);
const char *object_id(GwObject *o);
void *object_state(GwObject *o);

/*
 * Splits "a=b,c=d,,e" into a fresh GwProps ("c" -> "d,e"). A first element
 * without '=' is the value of `implied` (NULL: refused). Repeated keys and
 * empty keys are refused.
 */
GwProps *gw_props_parse(const char *text, const char *implied, GError **errp);
GwProps *gw_props_new(void);

/* Property getters: remove the property, parse it. "what" = TYPE for errors. */
char *gw_props_take_str(GwProps *p, const char *name); /* NULL when absent */
bool gw_props_take_bool(GwProps *p, const char *name, bool dflt, bool *out,
                        GError **errp);
/* Index into the NULL-terminated `names`; `dflt` when absent. */
bool gw_props_take_enum(GwProps *p, const char *name, const char *const *names,
                        int dflt, int *out, GError **errp);

/* The monitor commands object-add / object-del (QMP and HMP). */
void object_register_commands(void);

#endif /* GODWIT_OBJECT_H */
