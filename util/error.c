/*
 * The GW_ERROR domain and its mapping onto QMP error classes.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "godwit/error.h"

G_DEFINE_QUARK(godwit-error-quark, gw_error)

const char *gw_error_class(const GError *err)
{
    static const char *const names[] = {
        [GW_ERROR_GENERIC] = "GenericError",
        [GW_ERROR_COMMAND_NOT_FOUND] = "CommandNotFound",
        [GW_ERROR_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
        [GW_ERROR_DEVICE_NOT_FOUND] = "DeviceNotFound",
        [GW_ERROR_KVM_MISSING_CAP] = "KVMMissingCap",
    };

    if (err && err->domain == GW_ERROR && err->code >= 0 &&
        (size_t)err->code < G_N_ELEMENTS(names)) {
        return names[err->code];
    }
    return "GenericError";
}

bool gw_error_errno(GError **errp, int errnum, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC, "%s: %s", msg,
                g_strerror(errnum));
    return false;
}
