/*
 * libFuzzer target: HMP command lines through the HMP argument parser and
 * dispatcher (hmp_run_line: name and "info" sub-command lookup, every
 * argument type, help, the HMP-to-QMP argument conversions and printing)
 * with a safe command set (fuzz-monitor-cmds.h): the migration
 * capability and parameter commands are the real ones.
 *
 * Input: lines separated by '\n' (a NUL ends a line early, as a C string
 * would). Checked: every line gets an output string, and output is
 * whole lines.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "godwit/monitor.h"
#include "fuzz-monitor-cmds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    if (size > 16 * 1024) {
        return 0;
    }
    fuzz_monitor_register();
    text = g_strndup((const char *)data, size);
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        g_autofree char *out = hmp_run_line(lines[i]);
        size_t len;

        if (!out) {
            fprintf(stderr, "hmp: no output for \"%s\"\n", lines[i]);
            abort();
        }
        if (getenv("FUZZ_VERBOSE")) {
            fprintf(stderr, "(hmp) %s\n%s", lines[i], out);
        }
        len = strlen(out);
        if (len && out[len - 1] != '\n') {
            fprintf(stderr, "hmp: \"%s\": output without its newline: %s\n",
                    lines[i], out);
            abort();
        }
    }
    fuzz_monitor_reset();
    return 0;
}
