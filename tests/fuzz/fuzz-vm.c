/*
 * The stopped VM of the migration stream fuzzer and its seed generator:
 * see fuzz-vm.h. Stands in for migration.c (the state machine is not
 * under test) and for incoming.c's command hooks (no return path, no
 * userfaultfd: a LISTEN leaves the pages to the precopy loader).
 */
#include <string.h>

#include "../../migration/migration-int.h"
#include "../../migration/options-int.h"
#include "../../migration/ram.h"
#include "migration/vmstate.h"
#include "fuzz-vm.h"

FuzzDevState fuzz_dev;

/* ---- doubles for migration.c ------------------------------------------- */

bool fuzz_vm_switchover;

bool migration_in_switchover(void)
{
    return fuzz_vm_switchover;
}

bool migration_rate_exceeded(QEMUFile *f)
{
    return false;
}

void migration_pass_done(uint64_t pass, uint64_t dirty_bytes)
{
}

void migration_auto_converge_period(uint64_t bytes_dirty, uint64_t bytes_xfer,
                                    uint64_t period_us)
{
}

/* ---- a source's accelerator: a dirty log the caller writes ------------- */

unsigned long *fuzz_vm_dirty;
static bool first_sync;

static bool fake_start(Machine *m, RAMBlock *rb, GError **errp)
{
    first_sync = true;
    return true;
}

static bool fake_sync(Machine *m, RAMBlock *rb, unsigned long *bitmap,
                      GError **errp)
{
    if (first_sync) {
        bitmap_set_range(bitmap, 0, FUZZ_VM_PAGES);
        first_sync = false;
    }
    bitmap_or(bitmap, fuzz_vm_dirty, FUZZ_VM_PAGES);
    bitmap_clear_range(fuzz_vm_dirty, 0, FUZZ_VM_PAGES);
    return true;
}

static bool fake_clear(Machine *m, RAMBlock *rb, uint64_t first, uint64_t n,
                       GError **errp)
{
    return true;
}

static void fake_stop(Machine *m, RAMBlock *rb)
{
}

static bool fake_manual(Machine *m)
{
    return true;
}

const AccelOps fuzz_vm_accel = {
    .name = "fake",
    .dirty_log_start = fake_start,
    .dirty_log_sync = fake_sync,
    .dirty_log_clear = fake_clear,
    .dirty_log_stop = fake_stop,
    .dirty_log_manual = fake_manual,
};

/* ---- options ------------------------------------------------------------ */

void fuzz_vm_options(uint8_t cfg)
{
    static const MigCompression methods[4] = {
        MIG_COMPRESSION_ZLIB, MIG_COMPRESSION_ZSTD, MIG_COMPRESSION_LZ4,
        MIG_COMPRESSION_ZLIB};
    bool caps[MIGRATION_CAPABILITY__MAX];
    MigrationParameters p;

    migration_options_reset();
    mig_caps_snapshot(caps);
    caps[MIGRATION_CAPABILITY_COMPRESS] = cfg & FUZZ_CFG_COMPRESS;
    caps[MIGRATION_CAPABILITY_XBZRLE] = cfg & FUZZ_CFG_XBZRLE;
    /* a valid set by construction: a failure is a bug of this file */
    g_assert(mig_caps_commit(caps, NULL));
    mig_params_snapshot(&p);
    p.compress_method = methods[(cfg >> FUZZ_CFG_METHOD_SHIFT) & 3];
    p.compress_threads = 1;
    p.decompress_threads = cfg & FUZZ_CFG_THREADS2 ? 2 : 1;
    g_assert(mig_params_commit(&p, NULL));
}

/* ---- "dev": every VMState field type ----------------------------------- */

static const VMStateField elem_fields[] = {
    VMSTATE_UINT16("a", FuzzDevElem, a),
    VMSTATE_UINT64("b", FuzzDevElem, b),
    VMSTATE_END,
};

static const VMStateField dev_fields[] = {
    VMSTATE_BOOL("flag", FuzzDevState, flag),
    VMSTATE_UINT8("u8", FuzzDevState, u8),
    VMSTATE_UINT16("u16", FuzzDevState, u16),
    VMSTATE_UINT32("u32", FuzzDevState, u32),
    VMSTATE_UINT64("u64", FuzzDevState, u64),
    VMSTATE_BUFFER("buf", FuzzDevState, buf),
    VMSTATE_UINT32("vlen", FuzzDevState, vlen),
    VMSTATE_VBUFFER("vbuf", FuzzDevState, vbuf, vlen),
    VMSTATE_STRUCT("one", FuzzDevState, one, elem_fields),
    VMSTATE_UINT32("n", FuzzDevState, n),
    VMSTATE_VARRAY("many", FuzzDevState, many, n, elem_fields),
    VMSTATE_ARRAY("fixed", FuzzDevState, fixed, elem_fields),
    VMSTATE_END,
};

static bool dev_save(QEMUFile *f, void *opaque, GError **errp)
{
    vmstate_save(f, dev_fields, opaque);
    return qemu_file_check(f, errp);
}

/* Loads into a copy: a failed load leaves the device as it was. */
static bool dev_load(QEMUFile *f, void *opaque, uint32_t version_id,
                     GError **errp)
{
    FuzzDevState st = {0};

    if (!vmstate_load(f, dev_fields, &st, errp)) {
        return false;
    }
    memcpy(opaque, &st, sizeof(st));
    return true;
}

static void dev_describe(JsonBuilder *b, void *opaque)
{
    vmstate_describe(b, dev_fields, opaque);
}

static const SaveStateHandler dev_handler = {
    .idstr = "dev",
    .version_id = 1,
    .save_state = dev_save,
    .load_state = dev_load,
    .describe = dev_describe,
};

/* ---- set-up ------------------------------------------------------------- */

void fuzz_vm_setup(Machine *m)
{
    m->ram = ram_block_new("pc.ram", FUZZ_VM_PAGES * GW_PAGE_SIZE, NULL);
    g_assert(m->ram);
    memset(&fuzz_dev, 0, sizeof(fuzz_dev));
    fuzz_vm_dirty = bitmap_new(FUZZ_VM_PAGES);
    ram_register(m);
    register_savevm(&dev_handler, 0, &fuzz_dev);
}

void fuzz_vm_teardown(Machine *m)
{
    fuzz_vm_switchover = false;
    qemu_savevm_state_cleanup();
    ram_load_cleanup(NULL);
    unregister_savevm_all();
    migration_options_reset();
    g_clear_pointer(&m->ram, ram_block_free);
    g_clear_pointer(&fuzz_vm_dirty, bitmap_free);
}

/* ---- command hooks ------------------------------------------------------ */

static bool cmd_ok(GError **errp)
{
    return true;
}

static bool cmd_ping(uint32_t value, GError **errp)
{
    return true;
}

static bool cmd_advise(uint64_t summary, uint64_t page_size, GError **errp)
{
    return true;
}

static void cmd_abort(void)
{
}

/* Recovery is not fuzzed: the broken stream is given up. */
static QEMUFile *cmd_pause(QEMUFile *old, const char *why)
{
    return NULL;
}

static bool cmd_recv_bitmap(const char *block, GError **errp)
{
    return true;
}

const LoadvmCommandOps fuzz_vm_command_ops = {
    .open_return_path = cmd_ok,
    .ping = cmd_ping,
    .postcopy_advise = cmd_advise,
    .postcopy_discard = ram_load_postcopy_discard,
    .postcopy_listen = cmd_ok,
    .postcopy_run = cmd_ok,
    .postcopy_abort = cmd_abort,
    .postcopy_listen_done = cmd_ok,
    .postcopy_pause = cmd_pause,
    .recv_bitmap = cmd_recv_bitmap,
    .postcopy_resume = cmd_ok,
};
