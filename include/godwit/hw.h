/*
 * godwit's devices: the COM1 serial port (output) and the hypercall port.
 * Each keeps its state in a plain struct that migration saves as its own
 * section.
 */
#ifndef GODWIT_HW_H
#define GODWIT_HW_H

#include <stdint.h>

#include "godwit/chardev.h"
#include "godwit/hypercall-abi.h"

typedef struct Machine Machine;

#define SERIAL_COM1_BASE 0x3f8

/* 16550 registers the guest can set; the rest is fixed (always ready). */
typedef struct SerialState {
    uint8_t ier, lcr, mcr, scr, dll, dlm;
} SerialState;

/* Registers COM1 writing to `chr` (not owned). */
void serial_init(Chardev *chr);
void serial_get_state(SerialState *st);
void serial_set_state(const SerialState *st);

#define HYPERCALL_MAX_WORKERS 64

typedef struct HypercallReport {
    uint64_t count; /* reports of this kind received */
    uint64_t arg[3];
} HypercallReport;

typedef struct HypercallState {
    uint64_t generation; /* incoming migrations of this guest */
    uint64_t request;    /* x-guest-request count */
    uint64_t bad_requests;
    uint8_t aps_started;
    HypercallReport report[GW_REPORT__MAX];
    HypercallReport perf[HYPERCALL_MAX_WORKERS]; /* by worker */
} HypercallState;

/* Registers the hypercall port; PUTS output goes to `chr` (not owned). */
void hypercall_init(Machine *m, Chardev *chr);
void hypercall_get_state(HypercallState *st);
void hypercall_set_state(const HypercallState *st);
/* Called when a migrated guest is loaded: guests see a new generation. */
void hypercall_bump_generation(void);
/* x-guest-request: payloads waiting for a request wake up. */
void hypercall_bump_request(void);

/* Migration sections of the devices ("serial", "hypercall"). */
void serial_register_vmstate(void);
void hypercall_register_vmstate(void);

/* QMP/HMP commands of the devices (x-guest-request, x-query-guest-report). */
void hw_register_commands(void);

#endif /* GODWIT_HW_H */
