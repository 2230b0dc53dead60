/*
 * The stopped VM that fuzz-migration-stream loads into, and that
 * gen-fuzz-corpus saves from: guest RAM as a memfd block of FUZZ_VM_PAGES
 * pages, the "ram" section, a "dev" section whose field table has every
 * VMState field type, and the migration options that byte 0 of an input
 * selects. Both sides must agree on all of it for a seed to load.
 */
#ifndef TESTS_FUZZ_FUZZ_VM_H
#define TESTS_FUZZ_FUZZ_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "../../migration/savevm.h"
#include "godwit/machine.h"

/* 256 KiB: small enough to reset per input, large enough for runs. */
#define FUZZ_VM_PAGES 64

/*
 * Byte 0 of an input (the rest is the stream):
 *   bit 0     the compress capability
 *   bits 1-2  compress-method: 0 zlib, 1 zstd, 2 lz4, 3 zlib
 *   bit 3     decompress-threads 2 (else 1)
 *   bit 4     the xbzrle capability (the source's; loads do not check it)
 *   bit 5     fuzz-migration-stream: the stream comes over a socket, written
 *             in pieces by a thread (PAGE payloads then go straight into
 *             guest RAM, ram-load-direct.c), else from a memory file
 */
#define FUZZ_CFG_COMPRESS 0x01
#define FUZZ_CFG_METHOD_SHIFT 1
#define FUZZ_CFG_THREADS2 0x08
#define FUZZ_CFG_XBZRLE 0x10
#define FUZZ_CFG_SOCKET 0x20

/* Applies the options that `cfg` selects (defaults otherwise). */
void fuzz_vm_options(uint8_t cfg);

/*
 * Makes the RAM block and registers "ram" and "dev" for `m` (m->accel
 * may be set by the caller for a source). fuzz_vm_teardown undoes it all,
 * options included.
 */
void fuzz_vm_setup(Machine *m);
void fuzz_vm_teardown(Machine *m);

/* "dev"'s state, saved from / loaded into this. */
typedef struct FuzzDevElem {
    uint16_t a;
    uint64_t b;
} FuzzDevElem;

typedef struct FuzzDevState {
    bool flag;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    uint8_t buf[8];
    uint32_t vlen;
    uint8_t vbuf[32];
    FuzzDevElem one;
    uint32_t n;
    FuzzDevElem many[4];
    FuzzDevElem fixed[2];
} FuzzDevState;

extern FuzzDevState fuzz_dev;

/*
 * A source's accelerator: every page dirty at the first sync, then the
 * pages set in fuzz_vm_dirty (made by fuzz_vm_setup). While
 * fuzz_vm_switchover is set, migration_in_switchover() says so.
 */
extern const AccelOps fuzz_vm_accel;
extern unsigned long *fuzz_vm_dirty;
extern bool fuzz_vm_switchover;

/* Command hooks of a destination without a guest running (no uffd). */
extern const LoadvmCommandOps fuzz_vm_command_ops;

#endif /* TESTS_FUZZ_FUZZ_VM_H */
