/* Cookie headers as browsers send them (tolerant parsing, RFC 6265 §5.4) and the Set-Cookie
 * lines the sidecar emits (strict formatting: nothing can smuggle an attribute or split the
 * header). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "houston_auth/cookie.h"
#include "houston_auth/proto.h"

static void parse_ok(const char *h, struct ha_kvlist *l)
{
    memset(l, 0, sizeof(*l));
    assert_int_equal(ha_cookie_parse(h, strlen(h), l), HA_OK);
}

static void test_parse_basic(void **state)
{
    struct ha_kvlist l;
    (void)state;
    parse_ok("ha_txn_abc=v1.sealed; astronomer_astro_example_com_auth=jwt", &l);
    assert_int_equal(l.count, 2);
    assert_string_equal(ha_kvlist_get(&l, "ha_txn_abc"), "v1.sealed");
    assert_string_equal(ha_kvlist_get(&l, "astronomer_astro_example_com_auth"), "jwt");
    ha_kvlist_cleanup(&l);
}

static void test_parse_trims_spaces_and_tabs(void **state)
{
    struct ha_kvlist l;
    (void)state;
    parse_ok(" \ta = 1 \t;b=2;\t c\t=  x y  ;;", &l);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].key, "a");
    assert_string_equal(l.items[0].value, "1");
    assert_string_equal(ha_kvlist_get(&l, "b"), "2");
    /* Inner whitespace stays: only the ends are trimmed. */
    assert_string_equal(ha_kvlist_get(&l, "c"), "x y");
    ha_kvlist_cleanup(&l);
}

static void test_parse_skips_nameless_and_valueless(void **state)
{
    struct ha_kvlist l;
    (void)state;
    parse_ok("novalue; =orphan;  = x; ok=1; flag", &l);
    assert_int_equal(l.count, 1);
    assert_string_equal(ha_kvlist_get(&l, "ok"), "1");
    ha_kvlist_cleanup(&l);
}

static void test_parse_value_details(void **state)
{
    struct ha_kvlist l;
    (void)state;
    parse_ok("q=\"quoted\"; e=; eq=a=b==; pct=a%20b; lone=\"; two=\"\"", &l);
    assert_string_equal(ha_kvlist_get(&l, "q"), "quoted");
    assert_string_equal(ha_kvlist_get(&l, "e"), "");
    assert_string_equal(ha_kvlist_get(&l, "eq"), "a=b==");
    assert_string_equal(ha_kvlist_get(&l, "pct"), "a%20b"); /* not percent-decoded */
    assert_string_equal(ha_kvlist_get(&l, "lone"), "\"");
    assert_string_equal(ha_kvlist_get(&l, "two"), "");
    ha_kvlist_cleanup(&l);
}

static void test_parse_duplicates_in_order(void **state)
{
    struct ha_kvlist l;
    (void)state;
    /* Browsers send the more specific path first; both are kept for the caller to judge. */
    parse_ok("ha_txn_a=one; other=x; ha_txn_a=two", &l);
    assert_int_equal(ha_kvlist_count(&l, "ha_txn_a"), 2);
    assert_string_equal(ha_kvlist_get(&l, "ha_txn_a"), "one");
    assert_string_equal(l.items[2].value, "two");
    ha_kvlist_cleanup(&l);
}

static void test_parse_caps(void **state)
{
    char *big = malloc(HA_MAX_COOKIE_HEADER + 2);
    char pairs[HA_MAX_COOKIE_PAIRS * 12 + 32];
    size_t n = 0;
    struct ha_kvlist l = {(struct ha_kv *)0x1, 5};
    (void)state;
    assert_non_null(big);
    memset(big, 'a', HA_MAX_COOKIE_HEADER + 1);
    big[0] = 'x';
    big[1] = '=';
    big[HA_MAX_COOKIE_HEADER + 1] = '\0';
    assert_int_equal(ha_cookie_parse(big, HA_MAX_COOKIE_HEADER + 1, &l), HA_ERR_TOO_LARGE);
    assert_ptr_equal(l.items, (struct ha_kv *)0x1);
    memset(&l, 0, sizeof(l));
    assert_int_equal(ha_cookie_parse(big, HA_MAX_COOKIE_HEADER, &l), HA_OK);
    assert_int_equal(strlen(ha_kvlist_get(&l, "x")), HA_MAX_COOKIE_HEADER - 2);
    ha_kvlist_cleanup(&l);
    free(big);

    for (int i = 0; i < HA_MAX_COOKIE_PAIRS; i++)
        n += (size_t)snprintf(pairs + n, sizeof(pairs) - n, "c%d=v; ", i);
    assert_int_equal(ha_cookie_parse(pairs, n, &l), HA_OK);
    assert_int_equal(l.count, HA_MAX_COOKIE_PAIRS);
    ha_kvlist_cleanup(&l);
    n += (size_t)snprintf(pairs + n, sizeof(pairs) - n, "extra=1");
    assert_int_equal(ha_cookie_parse(pairs, n, &l), HA_ERR_TOO_LARGE);
    assert_int_equal(l.count, 0);
}

static void test_parse_refuses_nul(void **state)
{
    struct ha_kvlist l = {0};
    (void)state;
    assert_int_equal(ha_cookie_parse("a=1\0; b=2", 9, &l), HA_ERR_INVALID);
    assert_int_equal(l.count, 0);
}

static char *format(const struct ha_set_cookie *c)
{
    char *out = NULL;
    assert_int_equal(ha_cookie_format(c, &out), HA_OK);
    assert_non_null(out);
    return out;
}

static void test_format_full(void **state)
{
    struct ha_set_cookie c = {"ha_txn_x", "v1.abc-_", ".astro.example.com", "/v1/oauth", 600, true,
                              true,       "Lax"};
    char *s;
    (void)state;
    s = format(&c);
    assert_string_equal(s, "ha_txn_x=v1.abc-_; Domain=.astro.example.com; Path=/v1/oauth; "
                           "Max-Age=600; Secure; HttpOnly; SameSite=Lax");
    free(s);
}

static void expect_invalid(const struct ha_set_cookie *c)
{
    char *out = (char *)"untouched";
    assert_int_equal(ha_cookie_format(c, &out), HA_ERR_INVALID);
    assert_string_equal(out, "untouched");
}

static void test_format_clear_adds_expires(void **state)
{
    struct ha_set_cookie c = {"__Host-ha_txn_x", "", NULL, "/", 0, true, true, "Lax"};
    char *s;
    (void)state;
    s = format(&c);
    assert_string_equal(s, "__Host-ha_txn_x=; Path=/; Max-Age=0; "
                           "Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax");
    free(s);
}

/* A prefixed name gets exactly what its prefix demands, or nothing: a browser would drop
 * the cookie silently (RFC 6265bis §4.1.3), and a login would then fail for no visible
 * reason. Prefixes match without regard to case, as in browsers. */
static void test_format_prefix_rules(void **state)
{
    struct ha_set_cookie host = {"__Host-t", "v", NULL, "/", 600, true, true, "Lax"};
    struct ha_set_cookie sec = {"__Secure-t", "v", NULL, NULL, -1, false, true, NULL};
    struct ha_set_cookie c;
    char *s;
    (void)state;
    s = format(&host);
    assert_string_equal(s, "__Host-t=v; Path=/; Max-Age=600; Secure; HttpOnly; SameSite=Lax");
    free(s);
    s = format(&sec);
    assert_string_equal(s, "__Secure-t=v; Secure");
    free(s);
    c = host;
    c.secure = false;
    expect_invalid(&c);
    c = host;
    c.domain = "houston.astro.example.com";
    expect_invalid(&c);
    c = host;
    c.domain = ".astro.example.com";
    expect_invalid(&c);
    c = host;
    c.path = NULL;
    expect_invalid(&c);
    c = host;
    c.path = "/v1/oauth";
    expect_invalid(&c);
    c = host;
    c.name = "__host-t";
    c.domain = ".astro.example.com";
    expect_invalid(&c);
    c = sec;
    c.secure = false;
    expect_invalid(&c);
    c.name = "__SECURE-t";
    expect_invalid(&c);
    c.name = "_Secure-t"; /* not a prefix: no rule */
    s = format(&c);
    assert_string_equal(s, "_Secure-t=v");
    free(s);
}

static void test_format_minimal_session_cookie(void **state)
{
    struct ha_set_cookie c = {"n", "v", NULL, NULL, -1, false, false, NULL};
    char *s;
    (void)state;
    s = format(&c);
    assert_string_equal(s, "n=v");
    free(s);
    c.same_site = "Strict";
    c.max_age = 1;
    s = format(&c);
    assert_string_equal(s, "n=v; Max-Age=1; SameSite=Strict");
    free(s);
}

static void test_format_refuses_bad_names(void **state)
{
    static const char *const bad[] = {"",     "a b",  "a;b", "a=b",      "a,b",  "a\"b", "a\tb",
                                      "a\rb", "a\nb", "a(b", "a)b",      "a/b",  "a@b",  "a[b",
                                      "a{b",  "a:b",  "a?b", "\xc3\xa9", "a\x7f"};
    struct ha_set_cookie c = {NULL, "v", NULL, "/", -1, true, true, "Lax"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c.name = bad[i];
        expect_invalid(&c);
    }
    c.name = NULL;
    expect_invalid(&c);
    c.name = "!#$%&'*+-.^_`|~Az09";
    char *s = format(&c);
    assert_string_equal(s, "!#$%&'*+-.^_`|~Az09=v; Path=/; Secure; HttpOnly; SameSite=Lax");
    free(s);
}

static void test_format_refuses_bad_values(void **state)
{
    static const char *const bad[] = {"a b",
                                      "a;b",
                                      "a,b",
                                      "a\"b",
                                      "\"q\"",
                                      "a\\b",
                                      "a\rb",
                                      "a\nb",
                                      "a\tb",
                                      "a\x01",
                                      "a\x7f",
                                      "\xc3\xa9",
                                      "x; Domain=evil.com",
                                      "x\r\nSet-Cookie: y=z"};
    struct ha_set_cookie c = {"n", NULL, NULL, NULL, -1, false, false, NULL};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c.value = bad[i];
        expect_invalid(&c);
    }
    c.value = NULL;
    expect_invalid(&c);
}

static void test_format_refuses_bad_attributes(void **state)
{
    struct ha_set_cookie c = {"n", "v", NULL, NULL, -1, false, false, NULL};
    (void)state;
    c.domain = "evil.com; Path=/";
    expect_invalid(&c);
    c.domain = "a.com\r\nX: y";
    expect_invalid(&c);
    c.domain = "";
    expect_invalid(&c);
    c.domain = NULL;
    c.path = "/;HttpOnly";
    expect_invalid(&c);
    c.path = "/\n";
    expect_invalid(&c);
    c.path = "/\x7f";
    expect_invalid(&c);
    c.path = "/";
    c.same_site = "lax";
    expect_invalid(&c);
    c.same_site = "Lax; Secure";
    expect_invalid(&c);
}

/* What we format reads back as the same cookie. */
static void test_format_then_parse(void **state)
{
    struct ha_set_cookie c = {
        "astronomer_x_auth", "eyJ.a-b_c.d", ".x.io", "/", 60, true, true, "Lax"};
    struct ha_kvlist l;
    char *s;
    (void)state;
    s = format(&c);
    parse_ok(s, &l);
    assert_string_equal(l.items[0].key, "astronomer_x_auth");
    assert_string_equal(l.items[0].value, "eyJ.a-b_c.d");
    ha_kvlist_cleanup(&l);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_basic),
        cmocka_unit_test(test_parse_trims_spaces_and_tabs),
        cmocka_unit_test(test_parse_skips_nameless_and_valueless),
        cmocka_unit_test(test_parse_value_details),
        cmocka_unit_test(test_parse_duplicates_in_order),
        cmocka_unit_test(test_parse_caps),
        cmocka_unit_test(test_parse_refuses_nul),
        cmocka_unit_test(test_format_full),
        cmocka_unit_test(test_format_clear_adds_expires),
        cmocka_unit_test(test_format_prefix_rules),
        cmocka_unit_test(test_format_minimal_session_cookie),
        cmocka_unit_test(test_format_refuses_bad_names),
        cmocka_unit_test(test_format_refuses_bad_values),
        cmocka_unit_test(test_format_refuses_bad_attributes),
        cmocka_unit_test(test_format_then_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
