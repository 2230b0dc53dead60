/*
 * The freestanding ring-3 runtime shared by the guest payloads: console,
 * godwit hypercalls, per-vCPU state, clock polling and pause measurement,
 * parking, memory map and allocator, argument parsing, TSC frequency.
 *
 * Everything runs in 64-bit ring 3 with IOPL 3 and interrupts off; there
 * is no way back to ring 0, so nothing here may use a privileged
 * instruction, except parking under QEMU TCG, where the stub leaves us in
 * ring 0 (rt.ring0). Memory is identity mapped (virtual = guest-physical).
 */
#ifndef GUEST_RT_H
#define GUEST_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <godwit/hypercall-abi.h>

#include "boot.h"
#include "x86.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define PAGE_SIZE ((uint64_t)4096)

#define ALIGN_UP(x, a) (((x) + (a)-1) & ~((uint64_t)(a)-1))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NORETURN __attribute__((noreturn))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* string.c */
void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/* format.c: %d %i %u %x %X %s %c %p %%, flags '0' '-', width, l/ll/z. */
int rt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int rt_snprintf(char *buf, size_t size, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* hypercall.c */
bool gw_probe(void);
/*
 * Issue one hypercall through @req (below 4 GiB, owned by the caller for
 * the duration). Returns req->status; results are in req->ret[].
 */
int32_t gw_call(GwHcRequest *req, uint32_t op, uint64_t a0, uint64_t a1,
                uint64_t a2, uint64_t a3);

/* console.c: whole lines to COM1, or GW_HC_PUTS under godwit. */
void console_init(bool godwit);
void console_write(const char *s, size_t len);
void rt_printf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Per-vCPU state; rt_cpus[i] belongs to vCPU i. */
typedef struct RtCpu {
    GwHcRequest req; /* this vCPU's hypercall block */
    unsigned index;
    uint64_t gen;      /* migration generation last seen */
    uint64_t reqs;     /* request counter last seen */
    uint64_t poll_tsc; /* TSC and host wall clock at the last poll */
    uint64_t poll_wall;
    uint64_t next_poll; /* TSC of the next clock poll */
    uint64_t obs_tsc;   /* TSC at the last observation (rt_poll) */
    uint64_t max_gap;   /* longest TSC gap between observations since
                         * the last clock poll */
} __attribute__((aligned(64))) RtCpu;

extern RtCpu rt_cpus[RT_MAX_CPUS];

typedef struct Rt {
    bool godwit; /* the hypercall port answered */
    bool ring0;  /* running in ring 0 (QEMU TCG): parking may hlt */
    uint32_t gw_version;
    unsigned vcpus;   /* vCPUs of the machine (1 when unknown) */
    unsigned ncpus;   /* vCPUs the payload may run workers on */
    uint64_t tsc_khz; /* 0 when unknown */
    const char *tsc_source;
    uint64_t poll_cycles; /* clock poll interval, ~1 ms of TSC */
    bool page1g;          /* identity map uses 1 GiB pages */
    uint64_t ram_bytes;   /* usable RAM in the memory map */
    uint64_t ram_top;     /* end of the highest usable RAM */
    uint64_t boot_cycles; /* TSC from stub entry to rt_start */
} Rt;

extern Rt rt;

/* Provided by each payload. */
extern const char payload_name[];
void payload_main(int argc, char **argv);

/* Events returned by rt_poll() and rt_park(). */
#define RT_EV_MIGRATED 1u /* migration generation changed */
#define RT_EV_REQUEST 2u  /* request counter changed (x-guest-request) */

/* rt.c */
/* Print "<payload>: <message>" and park this vCPU forever (no READY). */
NORETURN void rt_fail(RtCpu *c, const char *fmt, ...) PRINTF_LIKE(2, 3);
NORETURN void rt_park_forever(RtCpu *c);
/*
 * godwit: park until the generation or request counter changes and return
 * RT_EV_* (never 0). Elsewhere: parks forever.
 */
unsigned rt_park(RtCpu *c);
/*
 * Call often (every few microseconds to a millisecond) from a busy loop:
 * notes the TSC gap since the previous call and polls the host clock when
 * ~1 ms of TSC passed since the last poll.
 */
unsigned rt_poll(RtCpu *c);
/*
 * Note the TSC gap since the last observation, without polling: for long
 * computations (a verify check) between two rt_poll() calls.
 */
void rt_observe(RtCpu *c);
/* Forget the time since the last observation (start-up, not a pause). */
void rt_rebase(RtCpu *c);
/* Poll the host clock now (godwit only; 0 elsewhere). */
unsigned rt_clock_poll(RtCpu *c);
/* Wait until TSC @until: GW_HC_SLEEP (capped, with polls) or spinning. */
unsigned rt_wait_until(RtCpu *c, uint64_t until);
void rt_report(RtCpu *c, uint64_t kind, uint64_t a1, uint64_t a2, uint64_t a3);
uint64_t rt_cycles_to_ns(uint64_t cycles);
uint64_t rt_ns_to_cycles(uint64_t ns);
/*
 * godwit: start vCPUs 1..vcpus-1 in ring 3 at @fn(cpu). Returns the number
 * started (0 without godwit or with one vCPU).
 */
unsigned rt_start_aps(void (*fn)(RtCpu *c));

/* tsc.c */
void tsc_init(RtCpu *c);

/* bootinfo.c: Multiboot info. */
#define MEM_MAX_RANGES 32
typedef struct MemRange {
    uint64_t start, end; /* usable RAM, [start, end) */
    uint64_t next;       /* allocation pointer */
} MemRange;

typedef struct BootInfo {
    char cmdline[1024];
    MemRange ram[MEM_MAX_RANGES];
    unsigned nram;
    uint64_t reserved_end; /* end of the image */
} BootInfo;

extern BootInfo boot_info;
/* Returns false with a message in @err when the info is unusable. */
bool bootinfo_parse(uint32_t mbi, char *err, size_t errlen);
/*
 * Split the command line into key=value tokens (leading tokens without
 * '=', such as the kernel path, skipped). Stores at most @max; returns
 * how many there are.
 */
int bootinfo_args(char **argv, int max);

/* mem.c */
void mem_map_high(void);
/* First fit, @align a power of two; returns 0 when nothing fits. */
uint64_t mem_alloc(uint64_t size, uint64_t align);

/* args.c */
typedef enum ArgType {
    ARG_UINT,   /* decimal (or 0x hex) integer */
    ARG_SIZE,   /* integer with optional K/M/G/T suffix (powers of 1024) */
    ARG_CHOICE, /* one of choices[], stored as its index */
} ArgType;

typedef struct ArgSpec {
    const char *key;
    ArgType type;
    uint64_t *val;
    const char *const *choices; /* ARG_CHOICE: NULL-terminated */
} ArgSpec;

/*
 * Parse key=value tokens against @specs (terminated by a NULL key).
 * On an unknown key or bad value prints "<payload>: ..." and returns false.
 */
bool args_parse(int argc, char **argv, const ArgSpec *specs);
bool parse_size(const char *s, uint64_t *out);
bool parse_uint(const char *s, uint64_t *out);

/* Symbols from the linker script and the boot stub. */
extern char __image_start[], __image_end[], __rw_start[], __rw_end[];
extern char __bss_start[], __bss_end[];
extern uint64_t boot_tsc;
extern uint64_t pml4_1g[512], pdpt_2m[512];
extern uint64_t pd_high[RT_MAX_GIB - 4][512];
extern char ap_stacks[], ap_stacks_top[];
void ap_entry(void);

#endif /* GUEST_RT_H */
