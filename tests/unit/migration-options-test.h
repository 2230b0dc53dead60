/*
 * What the files of the migration options unit test share: the busy
 * hooks' fakes, QMP/HMP helpers (migration-options-test.c) and expected
 * texts used by more than one.
 */
#ifndef TESTS_UNIT_MIGRATION_OPTIONS_TEST_H
#define TESTS_UNIT_MIGRATION_OPTIONS_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "godwit/monitor.h"
#include "migration/options-int.h"

/* What the busy hooks answer (reset to false by setup()). */
extern bool fake_outgoing, fake_incoming, fake_loading;

/* Defaults, no busy migration, hooks installed. */
int setup(void **state);

/* Runs a QMP command (args as JSON text, NULL for none); NULL on success,
 * else the (GenericError) error text. */
char *qmp_run(const char *name, const char *args_json);

/* Runs a query; asserts it succeeds. */
JsonNode *query(const char *name);

/* Runs an HMP line; asserts its output. */
void assert_hmp(const char *line, const char *want);

#define assert_qmp_ok(name, args)                                              \
    do {                                                                       \
        g_autofree char *e_ = qmp_run(name, args);                             \
        if (e_) {                                                              \
            fail_msg("%s %s: %s", name, args, e_);                             \
        }                                                                      \
    } while (0)

#define assert_qmp_err(name, args, want)                                       \
    do {                                                                       \
        g_autofree char *e_ = qmp_run(name, args);                             \
        if (!e_) {                                                             \
            fail_msg("%s %s succeeded, wanted: %s", name, args, want);         \
        }                                                                      \
        assert_string_equal(e_, want);                                         \
    } while (0)

#define set_params(json) qmp_run("migrate-set-parameters", json)
#define set_caps(json) qmp_run("migrate-set-capabilities", json)

#define XBZRLE_ERR                                                             \
    "Parameter 'xbzrle_cache_size' expects a power of two no less than the "   \
    "target page size"

/* QEMU 7.2's 21 capabilities in its order, then 8.1's two. */
extern const char *const qemu_caps[MIGRATION_CAPABILITY__MAX];

/* test-migration-options-caps.c */
void test_cap_rules(void **state);
void test_zero_copy_params(void **state);
void test_set_capabilities(void **state);
void test_dirty_limit_check(void **state);

/* test-migration-options-hmp.c */
void test_hmp_set(void **state);
void test_hmp_errors(void **state);
void test_hmp_info(void **state);
void test_hmp_help(void **state);

#endif /* TESTS_UNIT_MIGRATION_OPTIONS_TEST_H */
