/* Log lines as a log reader sees them: each line one JSON object that jansson's strict reader
 * accepts, with the fields given, escaped, in order, invalid UTF-8 replaced, and a key given
 * twice kept once with its last value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "houston_auth/log.h"

/* Logs one line into a temporary file and reads it back as JSON (the caller json_decrefs). */
#define LOG_ONE(out, ...)                                                                          \
    do {                                                                                           \
        FILE *f_ = tmpfile();                                                                      \
        char line_[70000];                                                                         \
        size_t n_;                                                                                 \
        assert_non_null(f_);                                                                       \
        ha_log_set_stream(f_);                                                                     \
        ha_log(__VA_ARGS__);                                                                       \
        ha_log_set_stream(NULL);                                                                   \
        rewind(f_);                                                                                \
        n_ = fread(line_, 1, sizeof(line_) - 1, f_);                                               \
        fclose(f_);                                                                                \
        line_[n_] = '\0';                                                                          \
        assert_true(n_ > 0);                                                                       \
        assert_int_equal(line_[n_ - 1], '\n');                                                     \
        assert_null(memchr(line_, '\n', n_ - 1));                                                  \
        (out) = json_loadb(line_, n_ - 1, JSON_REJECT_DUPLICATES, NULL);                           \
        if ((out) == NULL)                                                                         \
            fail_msg("not JSON: %s", line_);                                                       \
    } while (0)

static const char *field(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_fields_in_order(void **state)
{
    json_t *o;
    const char *k;
    json_t *v;
    const char *const want[] = {"time", "level", "event", "request_id", "path", "status"};
    size_t i = 0;
    (void)state;
    ha_log_set_level(HA_LOG_INFO);
    LOG_ONE(o, HA_LOG_INFO, "request", "rid-1", "path", "/v1/oauth/redirect", "skipped", NULL,
            "status", "302", NULL);
    json_object_foreach(o, k, v)
    {
        assert_true(i < sizeof(want) / sizeof(want[0]));
        assert_string_equal(k, want[i++]);
        assert_true(json_is_string(v));
    }
    assert_int_equal(i, 6);
    assert_string_equal(field(o, "level"), "info");
    assert_string_equal(field(o, "event"), "request");
    assert_string_equal(field(o, "request_id"), "rid-1");
    assert_string_equal(field(o, "status"), "302");
    assert_int_equal(strlen(field(o, "time")), 24); /* 2026-12-07T06:29:19.123Z */
    json_decref(o);
    LOG_ONE(o, HA_LOG_WARN, "no_rid", NULL, NULL);
    assert_null(json_object_get(o, "request_id"));
    assert_string_equal(field(o, "level"), "warn");
    json_decref(o);
}

static void test_escaping(void **state)
{
    static const char nasty[] = "q\"b\\s/\x01\x1f\n\r\t\x7f end";
    json_t *o;
    (void)state;
    LOG_ONE(o, HA_LOG_ERROR, "e", NULL, "v", nasty, "k\"ey\n", "x", NULL);
    assert_string_equal(field(o, "v"), nasty);
    assert_string_equal(field(o, "k\"ey\n"), "x");
    json_decref(o);
    /* Valid UTF-8 is kept as it is, 2, 3 and 4 bytes. */
    LOG_ONE(o, HA_LOG_ERROR, "e", NULL, "v", "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", NULL);
    assert_string_equal(field(o, "v"), "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    json_decref(o);
}

static void test_invalid_utf8_replaced(void **state)
{
    /* A lone continuation byte, an overlong '/', a surrogate, past U+10FFFF, a truncated
     * sequence at the end: each becomes U+FFFD, byte by byte, and the line stays JSON. */
    static const char *const bad[] = {"a\x80z", "a\xc0\xafz", "a\xed\xa0\x80z",
                                      "a\xf4\x90\x80\x80z", "a\xe2\x82"};
    static const char *const want[] = {
        "a\xef\xbf\xbdz", "a\xef\xbf\xbd\xef\xbf\xbdz", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz",
        "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz", "a\xef\xbf\xbd\xef\xbf\xbd"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *o;
        LOG_ONE(o, HA_LOG_ERROR, "e", NULL, "v", bad[i], NULL);
        assert_string_equal(field(o, "v"), want[i]);
        json_decref(o);
    }
}

static void test_repeated_key_last_wins(void **state)
{
    json_t *o;
    (void)state;
    /* The reader refuses duplicate names: a key given twice must appear once. */
    LOG_ONE(o, HA_LOG_ERROR, "e", NULL, "error", "first", "reason", "r", "error", "second", NULL);
    assert_string_equal(field(o, "error"), "second");
    assert_string_equal(field(o, "reason"), "r");
    json_decref(o);
    /* A later NULL value does not count: the earlier one stays. */
    LOG_ONE(o, HA_LOG_ERROR, "e", NULL, "error", "kept", "error", NULL, NULL);
    assert_string_equal(field(o, "error"), "kept");
    json_decref(o);
}

static void test_level_filter(void **state)
{
    FILE *f = tmpfile();
    (void)state;
    assert_non_null(f);
    ha_log_set_stream(f);
    ha_log_set_level(HA_LOG_WARN);
    ha_log(HA_LOG_INFO, "hidden", NULL, NULL);
    assert_false(ha_log_enabled(HA_LOG_INFO));
    assert_true(ha_log_enabled(HA_LOG_ERROR));
    ha_log_set_stream(NULL);
    ha_log_set_level(HA_LOG_INFO);
    assert_int_equal(ftell(f), 0);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_in_order),       cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_invalid_utf8_replaced), cmocka_unit_test(test_repeated_key_last_wins),
        cmocka_unit_test(test_level_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
