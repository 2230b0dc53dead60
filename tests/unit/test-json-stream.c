/*
 * Unit tests for monitor/json-stream.c: cutting a byte stream into
 * top-level JSON values, limits and recovery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "monitor/json-stream.h"

/* What the splitter emitted: values as is, errors as "ERR:<message>". */
typedef struct Collector {
    GPtrArray *items;
} Collector;

static void collect(void *opaque, const char *json, size_t len,
                    const GError *err)
{
    Collector *c = opaque;

    if (json) {
        assert_int_equal(strlen(json), len);
        g_ptr_array_add(c->items, g_strndup(json, len));
    } else {
        assert_non_null(err);
        g_ptr_array_add(c->items, g_strdup_printf("ERR:%s", err->message));
    }
}

typedef struct Fixture {
    Collector c;
    JsonStream *s;
} Fixture;

static int setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->c.items = g_ptr_array_new_with_free_func(g_free);
    f->s = json_stream_new(collect, &f->c, 0, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;

    json_stream_free(f->s);
    g_ptr_array_unref(f->c.items);
    g_free(f);
    return 0;
}

static void feed(Fixture *f, const char *text)
{
    json_stream_feed(f->s, text, strlen(text));
}

static const char *item(Fixture *f, guint i)
{
    assert_true(i < f->c.items->len);
    return f->c.items->pdata[i];
}

static void test_several_per_chunk(void **state)
{
    Fixture *f = *state;

    feed(f, "{\"execute\": \"a\"}{\"execute\": \"b\"}\r\n  [1, [2]] ");
    assert_int_equal(f->c.items->len, 3);
    assert_string_equal(item(f, 0), "{\"execute\": \"a\"}");
    assert_string_equal(item(f, 1), "{\"execute\": \"b\"}");
    assert_string_equal(item(f, 2), "[1, [2]]");
    assert_false(json_stream_pending(f->s));
}

static void test_byte_by_byte(void **state)
{
    Fixture *f = *state;
    const char *msg = "{\"execute\": \"x\", \"arguments\": {\"a\": [1, {}]}}";

    for (size_t i = 0; msg[i]; i++) {
        assert_int_equal(f->c.items->len, 0);
        json_stream_feed(f->s, msg + i, 1);
    }
    assert_int_equal(f->c.items->len, 1);
    assert_string_equal(item(f, 0), msg);
}

static void test_strings_with_brackets(void **state)
{
    Fixture *f = *state;
    const char *msg = "{\"a\": \"}]{[\", \"b\": \"q\\\"}\", \"c\": \"\\\\\"}";

    feed(f, msg);
    feed(f, "{\"d\": 1}");
    assert_int_equal(f->c.items->len, 2);
    assert_string_equal(item(f, 0), msg);
    assert_string_equal(item(f, 1), "{\"d\": 1}");
}

static void test_single_quotes(void **state)
{
    Fixture *f = *state;

    feed(f, "{'execute': 'say \"hi\"', \"x\": \"it\\'s\", 'y': 'a\\'b'}");
    assert_int_equal(f->c.items->len, 1);
    assert_string_equal(item(f, 0), "{\"execute\": \"say \\\"hi\\\"\", "
                                    "\"x\": \"it's\", \"y\": \"a'b\"}");
}

static void test_top_level_scalars(void **state)
{
    Fixture *f = *state;

    /* scalars are values too; the QMP layer refuses them */
    feed(f, "42 \"str\" true{\"a\":1}");
    assert_int_equal(f->c.items->len, 4);
    assert_string_equal(item(f, 0), "42");
    assert_string_equal(item(f, 1), "\"str\"");
    assert_string_equal(item(f, 2), "true");
    assert_string_equal(item(f, 3), "{\"a\":1}");
    /* a bare token is complete only once something ends it */
    feed(f, "17");
    assert_int_equal(f->c.items->len, 4);
    assert_true(json_stream_pending(f->s));
    feed(f, "\n");
    assert_string_equal(item(f, 4), "17");
}

static void test_stray_close(void **state)
{
    Fixture *f = *state;

    feed(f, "}{\"a\": 1}");
    assert_int_equal(f->c.items->len, 2);
    assert_string_equal(item(f, 0), "ERR:JSON parse error, stray '}'");
    assert_string_equal(item(f, 1), "{\"a\": 1}");
}

static void test_mismatched_close(void **state)
{
    Fixture *f = *state;

    /* {"a": [} can never end: refuse it at once and start afresh */
    feed(f, "{\"a\": [}\n{\"b\": [{}]}");
    assert_int_equal(f->c.items->len, 2);
    assert_string_equal(item(f, 0),
                        "ERR:JSON parse error, '}' does not close '['");
    assert_string_equal(item(f, 1), "{\"b\": [{}]}");
    feed(f, "[{]");
    assert_string_equal(item(f, 2),
                        "ERR:JSON parse error, ']' does not close '{'");
    assert_false(json_stream_pending(f->s));
}

static void test_nesting_limit(void **state)
{
    Fixture *f = *state;
    GString *deep = g_string_new(NULL);
    GString *ok = g_string_new(NULL);

    /* 64 levels are fine, 65 are not */
    for (int i = 0; i < 64; i++) {
        g_string_append_c(ok, '[');
    }
    for (int i = 0; i < 64; i++) {
        g_string_append_c(ok, ']');
    }
    feed(f, ok->str);
    assert_int_equal(f->c.items->len, 1);
    assert_string_equal(item(f, 0), ok->str);

    for (int i = 0; i < 100; i++) {
        g_string_append(deep, "{\"a\":[");
    }
    for (int i = 0; i < 100; i++) {
        g_string_append(deep, "]}");
    }
    feed(f, deep->str);
    feed(f, "{\"after\": true}");
    /* one error for the whole deep value, then the next value is fine */
    assert_int_equal(f->c.items->len, 3);
    assert_string_equal(item(f, 1),
                        "ERR:JSON nesting depth limit (64) exceeded");
    assert_string_equal(item(f, 2), "{\"after\": true}");
    g_string_free(deep, TRUE);
    g_string_free(ok, TRUE);
}

static void test_size_limit(void **state)
{
    Fixture *f = *state;
    GString *big = g_string_new("{\"execute\": \"x\", \"pad\": \"");
    size_t chunk = 4096;

    while (big->len < JSON_STREAM_MAX_SIZE + 100) {
        g_string_append(big, "aaaaaaaa}]{[");
    }
    g_string_append(big, "\"}");
    /* in pieces, as a socket delivers it */
    for (size_t off = 0; off < big->len; off += chunk) {
        json_stream_feed(f->s, big->str + off, MIN(chunk, big->len - off));
    }
    feed(f, "{\"execute\": \"next\"}");
    assert_int_equal(f->c.items->len, 2);
    assert_string_equal(item(f, 0), "ERR:JSON message size limit "
                                    "(1048576 bytes) exceeded");
    assert_string_equal(item(f, 1), "{\"execute\": \"next\"}");
    g_string_free(big, TRUE);
}

static void test_size_limit_small(void **state)
{
    Fixture *f = *state;
    JsonStream *s = json_stream_new(collect, &f->c, 10, 2);

    /* exactly 10 bytes pass, 11 do not; a long bare token too */
    const char *more = "[1,2,3,456] 12345678901 [[0]] [[[0]]] 7 ";

    json_stream_feed(s, "[1,2,3,45]", 10);
    json_stream_feed(s, more, strlen(more));
    assert_int_equal(f->c.items->len, 6);
    assert_string_equal(item(f, 0), "[1,2,3,45]");
    assert_string_equal(item(f, 1),
                        "ERR:JSON message size limit (10 bytes) exceeded");
    assert_string_equal(item(f, 2),
                        "ERR:JSON message size limit (10 bytes) exceeded");
    assert_string_equal(item(f, 3), "[[0]]");
    assert_string_equal(item(f, 4),
                        "ERR:JSON nesting depth limit (2) exceeded");
    assert_string_equal(item(f, 5), "7");
    json_stream_free(s);
}

static void test_garbage_then_value(void **state)
{
    Fixture *f = *state;

    /* garbage is passed on for the parser to refuse; no state is lost */
    feed(f, "{\"a\": nonsense, } hello {\"b\": 2}");
    assert_int_equal(f->c.items->len, 3);
    assert_string_equal(item(f, 0), "{\"a\": nonsense, }");
    assert_string_equal(item(f, 1), "hello");
    assert_string_equal(item(f, 2), "{\"b\": 2}");
}

static void test_control_char_reset(void **state)
{
    Fixture *f = *state;

    /* an unterminated string would swallow everything after it ... */
    feed(f, "{\"execute\": \"oops");
    feed(f, "{\"execute\": \"lost\"}");
    assert_int_equal(f->c.items->len, 0);
    assert_true(json_stream_pending(f->s));
    /* ... until a control character resets the splitter, silently */
    feed(f, "\x1b");
    assert_false(json_stream_pending(f->s));
    feed(f, "{\"execute\": \"ok\"}");
    assert_int_equal(f->c.items->len, 1);
    assert_string_equal(item(f, 0), "{\"execute\": \"ok\"}");

    /* 0xff (old QEMU's recovery byte) resets too; \t \r \n do not */
    feed(f, "{\"a\":\t\r\n");
    assert_true(json_stream_pending(f->s));
    feed(f, "\xff");
    assert_false(json_stream_pending(f->s));
}

static void test_reset_ends_discard(void **state)
{
    Fixture *f = *state;
    JsonStream *s = json_stream_new(collect, &f->c, 8, 0);

    json_stream_feed(s, "{\"aaaaaaaaaaaa", 14);
    assert_int_equal(f->c.items->len, 1);
    assert_true(json_stream_pending(s));
    json_stream_feed(s, "\x01{}", 3);
    assert_int_equal(f->c.items->len, 2);
    assert_string_equal(item(f, 1), "{}");
    json_stream_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_several_per_chunk, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strings_with_brackets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_single_quotes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_top_level_scalars, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stray_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mismatched_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nesting_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_then_value, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_control_char_reset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reset_ends_discard, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
