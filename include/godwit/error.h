/*
 * Error domain shared by the whole VMM.
 *
 * Every fallible function takes `GError **errp` last and says failure in
 * its return value (bool false, NULL or < 0). The error codes map one to
 * one onto QMP's error classes, so a GError can travel unchanged from a
 * command handler to a QMP reply.
 */
#ifndef GODWIT_ERROR_H
#define GODWIT_ERROR_H

#include <glib.h>
#include <stdbool.h>

#define GW_ERROR (gw_error_quark())

typedef enum GwErrorCode {
    GW_ERROR_GENERIC,           /* QMP class "GenericError" */
    GW_ERROR_COMMAND_NOT_FOUND, /* "CommandNotFound" */
    GW_ERROR_DEVICE_NOT_ACTIVE, /* "DeviceNotActive" */
    GW_ERROR_DEVICE_NOT_FOUND,  /* "DeviceNotFound" */
    GW_ERROR_KVM_MISSING_CAP,   /* "KVMMissingCap" */
} GwErrorCode;

GQuark gw_error_quark(void);

/* QMP class name of an error; errors of other domains are "GenericError". */
const char *gw_error_class(const GError *err);

/*
 * Set *errp from errno: "<prefix>: <strerror(errnum)>". Returns false so that
 * callers can write `return gw_error_errno(errp, errno, "...")`.
 */
bool gw_error_errno(GError **errp, int errnum, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

#endif /* GODWIT_ERROR_H */
