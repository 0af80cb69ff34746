/* The JSON view that token checks read claims through: what it gives for an Auth0-shaped
 * claims set, how it decodes escapes, and the documents an attacker would try to slip past a
 * lenient parser (duplicates however spelled, bad UTF-8, lone surrogates, NUL, overflowing
 * numbers, trailing data, deep nesting), each of which must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "houston_auth/json_view.h"

/* Parses a private copy of json (which the view needs writable and NUL-terminated). */
static enum ha_err parse(const char *json, size_t len, char **text, struct ha_json_view *v)
{
    *text = malloc(len + 1);
    assert_non_null(*text);
    memcpy(*text, json, len);
    (*text)[len] = '\0';
    return ha_json_view_parse(*text, len, v);
}

static void expect_refused(const char *json, size_t len)
{
    struct ha_json_view v;
    char *text = NULL;
    enum ha_err err = parse(json, len, &text, &v);
    if (err != HA_ERR_INVALID)
        fail_msg("accepted or wrong error (%d): %.*s", (int)err, (int)len, json);
    assert_null(v.members);
    assert_int_equal(v.n_members, 0);
    ha_json_view_cleanup(&v);
    free(text);
}

#define REFUSED(lit) expect_refused(lit, sizeof(lit) - 1)

static void test_auth0_claims(void **state)
{
    static const char json[] =
        "{\"nickname\":\"dev\",\"email_verified\":true,\"iss\":\"https://t.example/\","
        "\"aud\":[\"astronomer-ee\",\"https://t.example/userinfo\",7,[1],{\"a\":1}],"
        "\"iat\":1700000000,\"exp\":1700036000.5,\"neg\":-12,\"x\":null,\"f\":false,"
        "\"o\":{\"aud\":\"inner\"}}";
    const struct ha_json_val *aud, *it;
    struct ha_json_view v;
    char *text = NULL;
    (void)state;
    assert_int_equal(parse(json, sizeof(json) - 1, &text, &v), HA_OK);
    assert_int_equal(v.n_members, 10);
    assert_string_equal(ha_json_view_get(&v, "nickname")->str, "dev");
    assert_int_equal(ha_json_view_get(&v, "email_verified")->type, HA_JSON_TRUE);
    assert_int_equal(ha_json_view_get(&v, "f")->type, HA_JSON_FALSE);
    assert_int_equal(ha_json_view_get(&v, "x")->type, HA_JSON_NULL);
    assert_true(ha_json_view_get(&v, "iat")->num == 1700000000.0);
    assert_true(ha_json_view_get(&v, "iat")->is_integer);
    assert_true(ha_json_view_get(&v, "exp")->num == 1700036000.5);
    assert_false(ha_json_view_get(&v, "exp")->is_integer);
    assert_true(ha_json_view_get(&v, "neg")->num == -12.0);
    /* Only top-level members are looked up: the nested "aud" is not the claim. */
    assert_int_equal(ha_json_view_get(&v, "o")->type, HA_JSON_OBJECT);
    assert_null(ha_json_view_get(&v, "a"));
    assert_null(ha_json_view_get(&v, "ni"));
    aud = ha_json_view_get(&v, "aud");
    assert_int_equal(aud->type, HA_JSON_ARRAY);
    assert_int_equal(aud->len, 5);
    assert_string_equal(ha_json_view_item(&v, aud, 0)->str, "astronomer-ee");
    assert_string_equal(ha_json_view_item(&v, aud, 1)->str, "https://t.example/userinfo");
    assert_true(ha_json_view_item(&v, aud, 2)->num == 7.0);
    it = ha_json_view_item(&v, aud, 3);
    assert_int_equal(it->type, HA_JSON_ARRAY);
    assert_int_equal(it->len, 0);
    assert_int_equal(ha_json_view_item(&v, aud, 4)->type, HA_JSON_OBJECT);
    assert_null(ha_json_view_item(&v, aud, 5));
    assert_null(ha_json_view_item(&v, it, 0));
    assert_null(ha_json_view_item(&v, ha_json_view_get(&v, "iss"), 0));
    ha_json_view_cleanup(&v);
    ha_json_view_cleanup(&v);
    free(text);
}

static void test_escapes_decoded(void **state)
{
    static const char json[] = "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"u\":\"\\u00e9\\u20AC\\ud83d"
                               "\\ude00\",\"k\\u0061y\":\"raw \xc3\xa9\"}";
    const struct ha_json_val *s, *u;
    struct ha_json_view v;
    char *text = NULL;
    (void)state;
    assert_int_equal(parse(json, sizeof(json) - 1, &text, &v), HA_OK);
    s = ha_json_view_get(&v, "s");
    assert_int_equal(s->len, 8);
    assert_memory_equal(s->str, "\"\\/\b\f\n\r\t", 9);
    u = ha_json_view_get(&v, "u");
    assert_string_equal(u->str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_int_equal(u->len, 9);
    assert_string_equal(ha_json_view_get(&v, "kay")->str, "raw \xc3\xa9");
    ha_json_view_cleanup(&v);
    free(text);
}

static void test_whitespace_everywhere(void **state)
{
    static const char json[] = " \t\r\n{ \"a\" : [ 1 , \"x\" , [ ] , { } ] ,\n\"b\"\t:\r2 } \n";
    struct ha_json_view v;
    char *text = NULL;
    (void)state;
    assert_int_equal(parse(json, sizeof(json) - 1, &text, &v), HA_OK);
    assert_int_equal(ha_json_view_get(&v, "a")->len, 4);
    assert_string_equal(ha_json_view_item(&v, ha_json_view_get(&v, "a"), 1)->str, "x");
    assert_true(ha_json_view_get(&v, "b")->num == 2.0);
    ha_json_view_cleanup(&v);
    free(text);
}

/* 40 distinct names take the sorted path; one repeat among them is found there too. */
static char *many_keys(int repeat)
{
    char *s = malloc(1024);
    size_t n = 0;
    assert_non_null(s);
    s[n++] = '{';
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(s + n, 1024 - n, "%s\"k%d\":%d", i > 0 ? "," : "", i, i);
    if (repeat >= 0)
        n += (size_t)snprintf(s + n, 1024 - n, ",\"k%d\":0", repeat);
    snprintf(s + n, 1024 - n, "}");
    return s;
}

static void test_duplicates_refused(void **state)
{
    struct ha_json_view v;
    char *text = NULL, *json;
    (void)state;
    REFUSED("{\"a\":1,\"a\":2}");
    REFUSED("{\"exp\":1,\"\\u0065xp\":2}");
    REFUSED("{\"o\":{\"x\":1,\"y\":2,\"x\":3}}");
    REFUSED("{\"a\":[{\"k\":1,\"k\":1}]}");
    json = many_keys(17);
    expect_refused(json, strlen(json));
    free(json);
    json = many_keys(-1);
    assert_int_equal(parse(json, strlen(json), &text, &v), HA_OK);
    assert_int_equal(v.n_members, 40);
    assert_true(ha_json_view_get(&v, "k39")->num == 39.0);
    ha_json_view_cleanup(&v);
    free(text);
    free(json);
    /* The same name at different levels is not a duplicate. */
    assert_int_equal(parse("{\"k\":{\"k\":{\"k\":1}}}", 19, &text, &v), HA_OK);
    ha_json_view_cleanup(&v);
    free(text);
}

static void test_strings_refused(void **state)
{
    (void)state;
    REFUSED("{\"a\":\"\\u0000\"}");
    REFUSED("{\"\\u0000\":1}");
    REFUSED("{\"a\":\"x\0y\"}");
    REFUSED("{\"a\":\"x\x01y\"}");
    REFUSED("{\"a\":\"\\ud800\"}");
    REFUSED("{\"a\":\"\\ud800x\"}");
    REFUSED("{\"a\":\"\\ud800\\ud800\"}");
    REFUSED("{\"a\":\"\\udc00\"}");
    REFUSED("{\"a\":\"\\u12g4\"}");
    REFUSED("{\"a\":\"\\u12\"}");
    REFUSED("{\"a\":\"\\x41\"}");
    REFUSED("{\"a\":\"\\'\"}");
    REFUSED("{\"a\":\"\xc0\x80\"}");
    REFUSED("{\"a\":\"\xc1\xbf\"}");
    REFUSED("{\"a\":\"\xe0\x80\x80\"}");
    REFUSED("{\"a\":\"\xed\xa0\x80\"}");
    REFUSED("{\"a\":\"\xf0\x80\x80\x80\"}");
    REFUSED("{\"a\":\"\xf4\x90\x80\x80\"}");
    REFUSED("{\"a\":\"\xf5\x80\x80\x80\"}");
    REFUSED("{\"a\":\"\x80\"}");
    REFUSED("{\"a\":\"\xe2\x82\"}");
    REFUSED("{\"a\":\"\xe2\x82");
    REFUSED("{\"a\":\"b");
    REFUSED("{\"a\":\"b\\");
}

static void test_numbers(void **state)
{
    static const char json[] = "{\"max\":9223372036854775807,\"min\":-9223372036854775808,"
                               "\"tiny\":1e-400,\"z\":-0,\"e\":1E+2,\"f\":123.456e-3}";
    struct ha_json_view v;
    char *text = NULL;
    (void)state;
    assert_int_equal(parse(json, sizeof(json) - 1, &text, &v), HA_OK);
    assert_true(ha_json_view_get(&v, "max")->num == 9223372036854775807.0);
    assert_true(ha_json_view_get(&v, "min")->num == -9223372036854775808.0);
    assert_true(ha_json_view_get(&v, "tiny")->num == 0.0);
    assert_true(ha_json_view_get(&v, "z")->is_integer);
    assert_true(ha_json_view_get(&v, "e")->num == 100.0);
    assert_true(ha_json_view_get(&v, "f")->num == 0.123456);
    ha_json_view_cleanup(&v);
    free(text);
    REFUSED("{\"n\":9223372036854775808}");
    REFUSED("{\"n\":-9223372036854775809}");
    REFUSED("{\"n\":1e400}");
    REFUSED("{\"n\":-1e400}");
    REFUSED("{\"n\":01}");
    REFUSED("{\"n\":1.}");
    REFUSED("{\"n\":.5}");
    REFUSED("{\"n\":1e}");
    REFUSED("{\"n\":1e+}");
    REFUSED("{\"n\":+1}");
    REFUSED("{\"n\":0x10}");
    REFUSED("{\"n\":-}");
    REFUSED("{\"n\":NaN}");
    REFUSED("{\"n\":Infinity}");
    REFUSED("{\"n\":1\0}");
}

static void test_structure_refused(void **state)
{
    (void)state;
    REFUSED("");
    REFUSED("  ");
    REFUSED("[1,2]");
    REFUSED("\"a\"");
    REFUSED("1");
    REFUSED("null");
    REFUSED("\xef\xbb\xbf{}");
    REFUSED("{\"a\":1,}");
    REFUSED("{\"a\":[1,]}");
    REFUSED("{\"a\":[,1]}");
    REFUSED("{,\"a\":1}");
    REFUSED("{\"a\" 1}");
    REFUSED("{\"a\":}");
    REFUSED("{a:1}");
    REFUSED("{'a':1}");
    REFUSED("{\"a\":1}x");
    REFUSED("{}{}");
    REFUSED("{\"a\":1");
    REFUSED("{\"a\":[1");
    REFUSED("{\"a\":truex}");
    REFUSED("{\"a\":nul}");
    REFUSED("{\"a\":True}");
    REFUSED("{\"a\":1 /* c */}");
    REFUSED("{\x0b\"a\":1}");
    REFUSED("{\"a\":1}\0");
}

/* {"a":[[...]]} with arrays arrays inside the top-level object. */
static size_t nested(char *json, size_t cap, int arrays)
{
    size_t n = (size_t)snprintf(json, cap, "{\"a\":");
    for (int i = 0; i < arrays && n + 2 < cap; i++)
        json[n++] = '[';
    for (int i = 0; i < arrays && n + 2 < cap; i++)
        json[n++] = ']';
    json[n++] = '}';
    return n;
}

static void test_depth(void **state)
{
    char json[256];
    struct ha_json_view v;
    char *text = NULL;
    size_t n;
    (void)state;
    /* The top-level object is one level. */
    n = nested(json, sizeof(json), HA_JSON_MAX_DEPTH - 1);
    assert_int_equal(parse(json, n, &text, &v), HA_OK);
    ha_json_view_cleanup(&v);
    free(text);
    n = nested(json, sizeof(json), HA_JSON_MAX_DEPTH);
    expect_refused(json, n);
    n = nested(json, sizeof(json), 100);
    expect_refused(json, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth0_claims),          cmocka_unit_test(test_escapes_decoded),
        cmocka_unit_test(test_whitespace_everywhere), cmocka_unit_test(test_duplicates_refused),
        cmocka_unit_test(test_strings_refused),       cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_structure_refused),     cmocka_unit_test(test_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
