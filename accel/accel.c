/*
 * The accelerator registry: an enum-indexed array of AccelOps tables.
 */
#include <string.h>

#include "godwit/accel.h"

static const AccelOps *accel_ops[ACCEL__MAX];

void accel_register(AccelType type, const AccelOps *ops)
{
    g_assert(type < ACCEL__MAX && !accel_ops[type]);
    /* Every hook is mandatory: an accelerator that cannot do one says so
     * through an error from it, never by leaving it out. */
    g_assert(ops->name && ops->init && ops->cleanup && ops->vcpu_thread &&
             ops->kick && ops->tsc_khz && ops->dirty_log_start &&
             ops->dirty_log_sync && ops->dirty_log_clear &&
             ops->dirty_log_stop && ops->dirty_log_manual &&
             ops->cpu_state_save && ops->cpu_state_load &&
             ops->cpu_start_ap);
    accel_ops[type] = ops;
}

const AccelOps *accel_find(const char *name)
{
    for (int i = 0; i < ACCEL__MAX; i++) {
        if (accel_ops[i] && !strcmp(accel_ops[i]->name, name)) {
            return accel_ops[i];
        }
    }
    return NULL;
}

void accel_register_all(void)
{
    kvm_accel_register();
    tcg_accel_register();
}
