/*
 * Helpers of the RAM stream unit test (test-ram-stream.c,
 * test-ram-stream-compress.c): doubles for migration.c (the state machine
 * is not under test), a fake accelerator with a dirty log the test
 * controls, the fixture each case sets up and tears down, and the page
 * writers. Functions that fail the test (cmocka) are called from the
 * test's thread.
 */
#ifndef TESTS_UNIT_RAM_STREAM_HELPERS_H
#define TESTS_UNIT_RAM_STREAM_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../migration/migration-int.h"
#include "../../migration/options-int.h"
#include "../../migration/compression.h"
#include "../../migration/ram.h"
#include "../../migration/savevm.h"
#include "../../migration/zero-page.h"
#include "godwit/machine.h"
#include "migration/channel.h"

#define PAGES 4096 /* 16 MiB */

/* ---- doubles for migration.c -------------------------------------------- */

/* What migration_in_switchover() answers. */
extern bool switchover;
/* How many times migration_pass_done() was called. */
extern int passes;
/* zlib's own ops while a test wraps them (put back by the teardown) */
extern const MigCompressOps *saved_zlib_ops;

/* ---- the fake accelerator's dirty log ----------------------------------- */

extern unsigned long *fake_dirty; /* pages "the guest" wrote */
extern bool log_on;               /* between dirty_log_start and _stop */
extern int clears;                /* dirty_log_clear calls */
extern uint64_t cleared_pages;    /* pages they cleared */

/* ---- helpers ------------------------------------------------------------- */

void fill_page(RAMBlock *rb, uint64_t page, uint32_t seed);
/* The guest writes a page: content changes and the fake log sees it. */
void guest_write(RAMBlock *rb, uint64_t page, uint32_t seed);
/* Flips one byte of a page, as a guest that changes little per pass. */
void guest_poke(RAMBlock *rb, uint64_t page, size_t at, uint8_t v);
/* A QEMUFile over the file at `path`, written if `out`, else read. */
QEMUFile *open_file(const char *path, bool out);
/* Commits the capabilities with xbzrle and compress as given. */
void set_caps(bool xbzrle, bool compress);

/* ---- fixture: what each case creates, torn down even after a failure -- */

typedef struct Fixture {
    Machine src, dst;
    char *dir;  /* gwram-XXXXXX under the temp dir */
    char *path; /* the stream file in it */
} Fixture;

int fixture_setup(void **state);
/* Source and destination blocks of `pages` pages; a fake log for them. */
void fixture_ram(Fixture *fx, uint64_t pages);
int fixture_teardown(void **state);
/*
 * Compares two blocks wherever either is populated (reading a shmem hole
 * would populate it: a 4 GiB block is compared without touching holes).
 */
void assert_blocks_equal(RAMBlock *a, RAMBlock *b);
/* Iterates the save state until it says it is done. */
void iterate_until_done(QEMUFile *f);

/* ---- test-ram-stream-compress.c ----------------------------------------- */

void test_ram_stream_compress_zlib(void **state);
void test_ram_stream_compress_zstd(void **state);
void test_ram_stream_compress_lz4(void **state);
void test_ram_stream_compress_xbzrle(void **state);
void test_ram_stream_compress_nowait(void **state);
void test_ram_stream_compress_refused(void **state);
void test_ram_stream_big_plain(void **state);
void test_ram_stream_big_xbzrle(void **state);
void test_ram_stream_big_compress(void **state);

#endif /* TESTS_UNIT_RAM_STREAM_HELPERS_H */
