/*
 * Helpers of the post-copy stream tests (test-postcopy-commands.c,
 * test-postcopy-parser-errors.c, test-return-path.c): QEMU's stream
 * layout written out by hand, QEMUFiles over memory channels, and the
 * destination's mock command hooks and sections, which log their calls.
 * Functions that fail the test (cmocka) are called from the test's thread
 * only; the mocks may run on the listen thread too.
 */
#ifndef TESTS_POSTCOPY_STREAM_HELPERS_H
#define TESTS_POSTCOPY_STREAM_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include "../../migration/savevm.h"
#include "migration/qemu-file.h"

/* ---- bytes: QEMU's layout, big-endian ----------------------------------- */

void put_u8(GByteArray *b, uint8_t v);
void put_be16(GByteArray *b, uint16_t v);
void put_be32(GByteArray *b, uint32_t v);
void put_be64(GByteArray *b, uint64_t v);
void put_bytes(GByteArray *b, const void *p, size_t n);
/* u8 length, then the bytes of `s` (no nul). */
void put_counted(GByteArray *b, const char *s);
/* u8 QEMU_VM_COMMAND, be16 cmd, be16 len, data[len]. */
void put_cmd(GByteArray *b, uint16_t cmd, uint16_t len, const void *data);
/* Magic "QEVM", version 3, configuration: be32 length, machine type. */
void put_header(GByteArray *b);
/* POSTCOPY_RAM_DISCARD of `n` pairs: u8 0, counted name, u8 0, pairs. */
void put_discard(GByteArray *b, const char *block, int n, const uint64_t *start,
                 const uint64_t *length);
/* PACKAGED: be32 length as the command's data, then the raw bytes. */
void put_packaged(GByteArray *b, const GByteArray *pkg);
/* POSTCOPY_ADVISE: 4K host pages, 4K target pages. */
void put_advise(GByteArray *b);
/* A section of `type` with one be32 `body`; START/FULL carry the idstr. */
void put_section(GByteArray *b, uint8_t type, uint32_t id, const char *idstr,
                 uint32_t version, uint32_t body);
/*
 * A tiny script for streams, tokens split by spaces: orp ping advise
 * discard listen run resume recv_bitmap eof, "dev" (FULL), "start"/"part"/
 * "end" (the iterable's sections), "{" and "}" around a package.
 */
void put_script(GByteArray *out, const char *script);

/* Ranges for DISCARD commands, the most one command holds. */
extern const uint64_t disc_start[MIG_DISCARD_MAX_PAIRS];
extern const uint64_t disc_len[MIG_DISCARD_MAX_PAIRS];

/* ---- checks -------------------------------------------------------------- */

/* Fails with the offset and bytes of the first difference. */
void assert_bytes(const GByteArray *got, const uint8_t *exp, size_t len,
                  const char *what);
/* Fails unless `err` is set and its message contains `substr`. */
void assert_err(const GError *err, const char *substr);

/* ---- streams over memory channels ---------------------------------------- */

/* Runs `write` on an output QEMUFile: the bytes it flushed (caller's). */
GByteArray *capture(void (*write)(QEMUFile *f));
/* qemu_loadvm_state() of `n` bytes at `p`. */
bool load_bytes(const uint8_t *p, size_t n, GError **errp);

/* ---- the destination's mocks --------------------------------------------- */

/* Hooks that log "name args" and fail when mock_fail_at() says so. */
extern const LoadvmCommandOps mock_ops;

/* The `skip`+1st call of the hook or section `name` fails. */
void mock_fail_at(const char *name, int skip);
/* Forgets the log, the counts and the failure to come. */
void mock_reset(void);
/* The log's entries joined with "; ", those of one thread only (caller's). */
char *mock_log(bool listen_thread);
/* Fails unless the incoming (or listen) thread's log is `exp`. */
void assert_log(bool listen_thread, const char *exp);
/* Calls of postcopy_abort, and of "dev"'s load_cleanup. */
int mock_aborts(void);
int mock_cleanups(void);

/* "dev", a plain section (version 2): one be32 in a FULL section. */
#define DEV_ID 0
#define DEV_BODY 0xfeedc0de
/* "iter", an iterable section (version 1): one be32 per START/PART/END. */
#define ITER_ID 1

/* Registers "dev" then "iter": their section ids are DEV_ID and ITER_ID. */
void register_sections(void);

/* cmocka setup/teardown: the mocks, no sections, mock_ops set. */
int parser_setup(void **state);
int parser_teardown(void **state);

/*
 * The good post-copy stream, as QEMU's source sends it: OPEN_RETURN_PATH,
 * PING 1, ADVISE, the RAM START, DISCARD x2, PACKAGED {LISTEN, dev FULL,
 * RUN}, then the RAM PART and END that the listen thread reads, EOF.
 * *pkg_end: the offset just past the package. The caller owns the array.
 */
GByteArray *good_stream(size_t *pkg_end);
/* What the incoming thread's hooks log when it loads. */
extern const char good_log[];

#endif /* TESTS_POSTCOPY_STREAM_HELPERS_H */
