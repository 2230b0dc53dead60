/*
 * Device state as a field table: one table per state struct yields its
 * save, its validated load, and its entry in the JSON VM description that
 * ends a migration stream (so a saved stream is self-describing, the way
 * QEMU's VMState is; the type names are those QEMU's analyzer knows).
 *
 *   static const VMStateField serial_fields[] = {
 *       VMSTATE_UINT8("ier", SerialState, ier),
 *       ...
 *       VMSTATE_END,
 *   };
 *
 * All values big-endian on the wire.
 */
#ifndef MIGRATION_VMSTATE_H
#define MIGRATION_VMSTATE_H

#include <json-glib/json-glib.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/qemu-file.h"

typedef enum VMStateType {
    VMS_END,
    VMS_BOOL,
    VMS_UINT8,
    VMS_UINT16,
    VMS_UINT32,
    VMS_UINT64,
    VMS_BUFFER,  /* fixed size bytes */
    VMS_VBUFFER, /* bytes, length in an earlier uint32 field, <= max */
    VMS_STRUCT,  /* nested fields */
    VMS_VARRAY,  /* array of structs, count in an earlier uint32 field */
    VMS_ARRAY,   /* fixed-size array of structs */
} VMStateType;

typedef struct VMStateField {
    const char *name;
    VMStateType type;
    size_t offset;
    size_t size;         /* BUFFER: bytes; VBUFFER/VARRAY: max bytes/elems */
    size_t len_offset;   /* VBUFFER/VARRAY: offset of the uint32 count */
    size_t elem_size;    /* VARRAY: size of one element */
    const struct VMStateField *fields; /* STRUCT/VARRAY: element fields */
} VMStateField;

#define VMSTATE_BOOL(n, T, f) {n, VMS_BOOL, offsetof(T, f), sizeof(bool)}
#define VMSTATE_UINT8(n, T, f) {n, VMS_UINT8, offsetof(T, f), 1}
#define VMSTATE_UINT16(n, T, f) {n, VMS_UINT16, offsetof(T, f), 2}
#define VMSTATE_UINT32(n, T, f) {n, VMS_UINT32, offsetof(T, f), 4}
#define VMSTATE_UINT64(n, T, f) {n, VMS_UINT64, offsetof(T, f), 8}
#define VMSTATE_BUFFER(n, T, f)                                               \
    {n, VMS_BUFFER, offsetof(T, f), sizeof(((T *)0)->f)}
#define VMSTATE_VBUFFER(n, T, f, lenf)                                        \
    {n, VMS_VBUFFER, offsetof(T, f), sizeof(((T *)0)->f), offsetof(T, lenf)}
#define VMSTATE_STRUCT(n, T, f, sub)                                          \
    {n, VMS_STRUCT, offsetof(T, f), sizeof(((T *)0)->f), 0, 0, sub}
#define VMSTATE_VARRAY(n, T, f, lenf, sub)                                    \
    {n,                                                                       \
     VMS_VARRAY,                                                              \
     offsetof(T, f),                                                          \
     G_N_ELEMENTS(((T *)0)->f),                                               \
     offsetof(T, lenf),                                                       \
     sizeof(((T *)0)->f[0]),                                                  \
     sub}
#define VMSTATE_ARRAY(n, T, f, sub)                                           \
    {n,                                                                       \
     VMS_ARRAY,                                                               \
     offsetof(T, f),                                                          \
     G_N_ELEMENTS(((T *)0)->f),                                               \
     0,                                                                       \
     sizeof(((T *)0)->f[0]),                                                  \
     sub}
#define VMSTATE_END {NULL, VMS_END}

/* Writes the fields of `opaque` (errors stick to the file). */
void vmstate_save(QEMUFile *f, const VMStateField *fields,
                  const void *opaque);

/*
 * Reads the fields into `opaque`, refusing out-of-range counts and lengths
 * and non-boolean bools. Returns false with *errp naming the field.
 */
bool vmstate_load(QEMUFile *f, const VMStateField *fields, void *opaque,
                  GError **errp);

/* Appends the "fields" array describing `fields` to a JSON builder
 * positioned inside an object. */
void vmstate_describe(JsonBuilder *b, const VMStateField *fields,
                      const void *opaque);

#endif /* MIGRATION_VMSTATE_H */
