/*
 * Field-table save/load/describe of device state (include/migration/
 * vmstate.h).
 */
#include <errno.h>
#include <string.h>

#include "migration/vmstate.h"

static uint32_t count_at(const void *base, size_t off)
{
    uint32_t v;

    memcpy(&v, (const uint8_t *)base + off, sizeof(v));
    return v;
}

void vmstate_save(QEMUFile *f, const VMStateField *fields,
                  const void *opaque)
{
    const uint8_t *base = opaque;

    for (const VMStateField *fl = fields; fl->type != VMS_END; fl++) {
        const uint8_t *p = base + fl->offset;
        switch (fl->type) {
        case VMS_BOOL:
            qemu_put_byte(f, *(const bool *)p ? 1 : 0);
            break;
        case VMS_UINT8:
            qemu_put_byte(f, *p);
            break;
        case VMS_UINT16:
            qemu_put_be16(f, *(const uint16_t *)p);
            break;
        case VMS_UINT32:
            qemu_put_be32(f, *(const uint32_t *)p);
            break;
        case VMS_UINT64:
            qemu_put_be64(f, *(const uint64_t *)p);
            break;
        case VMS_BUFFER:
            qemu_put_buffer(f, p, fl->size);
            break;
        case VMS_VBUFFER:
            qemu_put_buffer(f, p, MIN(count_at(base, fl->len_offset),
                                      (uint32_t)fl->size));
            break;
        case VMS_STRUCT:
            vmstate_save(f, fl->fields, p);
            break;
        case VMS_VARRAY:
        case VMS_ARRAY: {
            uint32_t n = fl->type == VMS_ARRAY
                             ? (uint32_t)fl->size
                             : MIN(count_at(base, fl->len_offset),
                                   (uint32_t)fl->size);
            for (uint32_t i = 0; i < n; i++) {
                vmstate_save(f, fl->fields, p + i * fl->elem_size);
            }
            break;
        }
        case VMS_END:
            break;
        }
    }
}

static bool field_error(GError **errp, const VMStateField *fl,
                        const char *what, uint64_t v, uint64_t max)
{
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                "field '%s': %s %" G_GUINT64_FORMAT " (at most %"
                G_GUINT64_FORMAT ")",
                fl->name, what, v, max);
    return false;
}

bool vmstate_load(QEMUFile *f, const VMStateField *fields, void *opaque,
                  GError **errp)
{
    uint8_t *base = opaque;

    for (const VMStateField *fl = fields; fl->type != VMS_END; fl++) {
        uint8_t *p = base + fl->offset;
        switch (fl->type) {
        case VMS_BOOL: {
            uint8_t v = qemu_get_byte(f);
            if (v > 1 && !qemu_file_get_error(f)) {
                return field_error(errp, fl, "invalid boolean", v, 1);
            }
            *(bool *)p = v;
            break;
        }
        case VMS_UINT8:
            *p = qemu_get_byte(f);
            break;
        case VMS_UINT16:
            *(uint16_t *)p = qemu_get_be16(f);
            break;
        case VMS_UINT32:
            *(uint32_t *)p = qemu_get_be32(f);
            break;
        case VMS_UINT64:
            *(uint64_t *)p = qemu_get_be64(f);
            break;
        case VMS_BUFFER:
            qemu_get_buffer(f, p, fl->size);
            break;
        case VMS_VBUFFER: {
            uint32_t n = count_at(base, fl->len_offset);
            if (n > fl->size) {
                return field_error(errp, fl, "length", n, fl->size);
            }
            qemu_get_buffer(f, p, n);
            break;
        }
        case VMS_STRUCT:
            if (!vmstate_load(f, fl->fields, p, errp)) {
                return false;
            }
            break;
        case VMS_VARRAY:
        case VMS_ARRAY: {
            uint32_t n = fl->type == VMS_ARRAY ? (uint32_t)fl->size
                                               : count_at(base, fl->len_offset);
            if (n > fl->size) {
                return field_error(errp, fl, "count", n, fl->size);
            }
            for (uint32_t i = 0; i < n; i++) {
                if (!vmstate_load(f, fl->fields, p + i * fl->elem_size,
                                  errp)) {
                    return false;
                }
            }
            break;
        }
        case VMS_END:
            break;
        }
        if (qemu_file_get_error(f)) {
            g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "field '%s': %s",
                        fl->name, qemu_file_error_message(f));
            return false;
        }
    }
    return true;
}

static const char *const type_names[] = {
    [VMS_BOOL] = "bool",     [VMS_UINT8] = "uint8",
    [VMS_UINT16] = "uint16", [VMS_UINT32] = "uint32",
    [VMS_UINT64] = "uint64", [VMS_BUFFER] = "buffer",
    [VMS_VBUFFER] = "buffer", [VMS_STRUCT] = "struct",
    [VMS_VARRAY] = "struct", [VMS_ARRAY] = "struct",
};

void vmstate_describe(JsonBuilder *b, const VMStateField *fields,
                      const void *opaque)
{
    const uint8_t *base = opaque;

    json_builder_set_member_name(b, "fields");
    json_builder_begin_array(b);
    for (const VMStateField *fl = fields; fl->type != VMS_END; fl++) {
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, fl->name);
        json_builder_set_member_name(b, "type");
        json_builder_add_string_value(b, type_names[fl->type]);
        json_builder_set_member_name(b, "size");
        if (fl->type == VMS_VBUFFER) {
            json_builder_add_int_value(b, count_at(base, fl->len_offset));
        } else if (fl->type == VMS_VARRAY || fl->type == VMS_ARRAY) {
            json_builder_add_int_value(b, (gint64)fl->elem_size);
            json_builder_set_member_name(b, "array_len");
            json_builder_add_int_value(b, fl->type == VMS_ARRAY
                                              ? (gint64)fl->size
                                              : count_at(base, fl->len_offset));
        } else {
            json_builder_add_int_value(b, (gint64)fl->size);
        }
        if (fl->type == VMS_STRUCT || fl->type == VMS_VARRAY ||
            fl->type == VMS_ARRAY) {
            json_builder_set_member_name(b, "struct");
            json_builder_begin_object(b);
            vmstate_describe(b, fl->fields,
                             fl->type == VMS_STRUCT ? base + fl->offset
                                                    : base);
            json_builder_end_object(b);
        }
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
}
