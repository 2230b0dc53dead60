/*
 * The command line, in QEMU's option syntax, parsed into a plain struct.
 * Parsing has no side effects (no file is opened), so it is unit-tested
 * alone; main() acts on the result.
 */
#ifndef GODWIT_OPTIONS_H
#define GODWIT_OPTIONS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "godwit/error.h"

#define GW_DEFAULT_RAM_SIZE (128ull << 20)
#define GW_MIN_RAM_SIZE (2ull << 20)
#define GW_MAX_SMP 255

typedef struct GwOptions {
    char *name;         /* -name NAME | guest=NAME */
    uint64_t ram_size;  /* -m SIZE (plain number = MiB) */
    int smp;            /* -smp N | cpus=N */
    char *kernel;       /* -kernel FILE */
    char *append;       /* -append STRING */
    char *accel;        /* accelerators to try: "kvm:tcg"; NULL default */
    /* -accel kvm,dirty-ring-size=N: KVM dirty ring entries; 0 = off */
    uint32_t dirty_ring_size;
    bool start_paused;  /* -S */
    char *serial;       /* -serial file:PATH|stdio|none (NULL: default) */
    GPtrArray *qmp;     /* -qmp SPEC, repeatable */
    GPtrArray *monitor; /* -monitor SPEC, repeatable */
    char *incoming;     /* -incoming URI|defer */
    GPtrArray *objects; /* -object TYPE,id=ID,..., repeatable, in order */
    char *pidfile;      /* -pidfile FILE */
    bool mem_prealloc;  /* -mem-prealloc */
    bool nodefaults;    /* -nodefaults */
    bool show_version;  /* -version */
    bool show_help;     /* -h / -help */
} GwOptions;

/*
 * Parses argv (argv[0] is the program). Options may start with '-' or '--'.
 * On error returns false with a one-line message in *errp naming the option;
 * `opts` then holds whatever was parsed and must still be cleared.
 */
bool gw_options_parse(int argc, char **argv, GwOptions *opts, GError **errp);
void gw_options_clear(GwOptions *opts);

/* The -h text. */
const char *gw_options_usage(void);

#endif /* GODWIT_OPTIONS_H */
