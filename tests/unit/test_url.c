/* Query strings and form bodies as the sidecar reads them from browsers and the tenant:
 * decoding rules ('+' is a space in forms, strict escapes, no NUL), duplicates kept in order,
 * the pair cap, and the percent-encoder that builds every outgoing URL and form. And the one
 * URL grammar: host names, host:port, http(s) URLs, loopback, and the origin serialiser. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "houston_auth/proto.h"
#include "houston_auth/url.h"

static void parse_ok(const char *s, struct ha_kvlist *l)
{
    memset(l, 0, sizeof(*l));
    assert_int_equal(ha_url_parse_query(s, strlen(s), l), HA_OK);
}

static void test_parse_basic(void **state)
{
    struct ha_kvlist l;
    (void)state;
    parse_ok("code=abc&state=x%20y&scope=openid+profile+email", &l);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].key, "code");
    assert_string_equal(l.items[0].value, "abc");
    assert_string_equal(ha_kvlist_get(&l, "state"), "x y");
    assert_string_equal(ha_kvlist_get(&l, "scope"), "openid profile email");
    assert_null(ha_kvlist_get(&l, "nonce"));
    assert_null(ha_kvlist_get(&l, "Code"));
    ha_kvlist_cleanup(&l);
    assert_null(l.items);
    assert_int_equal(l.count, 0);
}

static void test_parse_plus_and_encoded_plus(void **state)
{
    struct ha_kvlist l;
    (void)state;
    parse_ok("a=1+1%3D2&b=%2B&c+d=e", &l);
    assert_string_equal(ha_kvlist_get(&l, "a"), "1 1=2");
    assert_string_equal(ha_kvlist_get(&l, "b"), "+");
    assert_string_equal(ha_kvlist_get(&l, "c d"), "e");
    ha_kvlist_cleanup(&l);
}

static void test_parse_missing_equals_and_empty_pairs(void **state)
{
    struct ha_kvlist l;
    (void)state;
    parse_ok("&&flag&x=&=v&&y=a=b&", &l);
    assert_int_equal(l.count, 4);
    assert_string_equal(l.items[0].key, "flag");
    assert_string_equal(l.items[0].value, "");
    assert_string_equal(ha_kvlist_get(&l, "x"), "");
    assert_string_equal(l.items[2].key, "");
    assert_string_equal(l.items[2].value, "v");
    /* Only the first '=' splits: the value keeps the rest. */
    assert_string_equal(ha_kvlist_get(&l, "y"), "a=b");
    ha_kvlist_cleanup(&l);
    parse_ok("", &l);
    assert_int_equal(l.count, 0);
    ha_kvlist_cleanup(&l);
}

static void test_parse_duplicates_kept_in_order(void **state)
{
    struct ha_kvlist l;
    (void)state;
    parse_ok("state=first&x=1&state=second", &l);
    assert_int_equal(ha_kvlist_count(&l, "state"), 2);
    assert_int_equal(ha_kvlist_count(&l, "x"), 1);
    assert_int_equal(ha_kvlist_count(&l, "nope"), 0);
    assert_string_equal(ha_kvlist_get(&l, "state"), "first");
    assert_string_equal(l.items[2].value, "second");
    ha_kvlist_cleanup(&l);
}

static void test_parse_respects_len(void **state)
{
    struct ha_kvlist l = {0};
    const char *s = "a=1&b=2";
    (void)state;
    assert_int_equal(ha_url_parse_query(s, 3, &l), HA_OK);
    assert_int_equal(l.count, 1);
    assert_string_equal(ha_kvlist_get(&l, "a"), "1");
    assert_null(ha_kvlist_get(&l, "b"));
    ha_kvlist_cleanup(&l);
}

/* Malformed input is refused and leaves out exactly as it was. */
static void test_parse_refuses_bad_escapes(void **state)
{
    static const char *const bad[] = {
        "a=%",   "a=%4",   "a=%G1",   "a=%1G", "a=%%41", "%zz=1",  "a=1&b=%0",
        "a=%00", "a%00=1", "a=x%00y", "a=%2",  "a=% 41", "a=%+41",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ha_kvlist l = {(struct ha_kv *)0x1, 77};
        assert_int_equal(ha_url_parse_query(bad[i], strlen(bad[i]), &l), HA_ERR_INVALID);
        assert_ptr_equal(l.items, (struct ha_kv *)0x1);
        assert_int_equal(l.count, 77);
    }
}

static void test_parse_refuses_raw_nul(void **state)
{
    struct ha_kvlist l = {0};
    (void)state;
    assert_int_equal(ha_url_parse_query("a=1\0b=2", 7, &l), HA_ERR_INVALID);
    assert_int_equal(l.count, 0);
}

/* The escape decodes to the exact byte, in either hex case, including high bytes. */
static void test_parse_escape_bytes(void **state)
{
    struct ha_kvlist l;
    (void)state;
    parse_ok("u=%c3%A9&c=%0D%0a&p=%25", &l);
    assert_string_equal(ha_kvlist_get(&l, "u"), "\xc3\xa9");
    assert_string_equal(ha_kvlist_get(&l, "c"), "\r\n");
    assert_string_equal(ha_kvlist_get(&l, "p"), "%");
    ha_kvlist_cleanup(&l);
}

static void test_parse_pair_cap(void **state)
{
    char buf[HA_MAX_PAIRS * 8 + 16];
    size_t n = 0;
    struct ha_kvlist l = {0};
    (void)state;
    for (int i = 0; i < HA_MAX_PAIRS; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "k%d=v&", i);
    /* Exactly the cap, with empty pairs around, is fine. */
    assert_int_equal(ha_url_parse_query(buf, n, &l), HA_OK);
    assert_int_equal(l.count, HA_MAX_PAIRS);
    ha_kvlist_cleanup(&l);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "one=more");
    assert_int_equal(ha_url_parse_query(buf, n, &l), HA_ERR_TOO_LARGE);
    assert_int_equal(l.count, 0);
    assert_null(l.items);
}

static void test_kvlist_add(void **state)
{
    struct ha_kvlist l = {0};
    char key[8] = "k";
    (void)state;
    assert_int_equal(ha_kvlist_add(&l, key, "v1"), HA_OK);
    key[0] = 'z'; /* the list holds its own copy */
    assert_int_equal(ha_kvlist_add(&l, "k", "v2"), HA_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(ha_kvlist_get(&l, "k"), "v1");
    assert_int_equal(ha_kvlist_count(&l, "k"), 2);
    assert_null(ha_kvlist_get(&l, "z"));
    assert_int_equal(ha_kvlist_add(&l, NULL, "v"), HA_ERR_INVALID);
    ha_kvlist_cleanup(&l);
    ha_kvlist_cleanup(&l); /* twice is harmless */
    ha_kvlist_cleanup(NULL);
    assert_null(ha_kvlist_get(NULL, "k"));
    assert_int_equal(ha_kvlist_count(NULL, "k"), 0);
}

static void test_encode_unreserved_only(void **state)
{
    char *out = NULL;
    const char *in = "AZaz09-._~ !\"#$%&'()*+,/:;<=>?@[\\]^`{|}";
    (void)state;
    assert_int_equal(ha_url_encode(in, strlen(in), &out), HA_OK);
    assert_string_equal(out, "AZaz09-._~%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3C%3D"
                             "%3E%3F%40%5B%5C%5D%5E%60%7B%7C%7D");
    free(out);
    assert_int_equal(ha_url_encode("\r\n\xc3\xa9\x7f", 5, &out), HA_OK);
    assert_string_equal(out, "%0D%0A%C3%A9%7F");
    free(out);
    assert_int_equal(ha_url_encode("", 0, &out), HA_OK);
    assert_string_equal(out, "");
    free(out);
}

/* Every byte but NUL survives encode then decode, and encode then form-parse. */
static void test_encode_decode_roundtrip(void **state)
{
    char raw[255], *enc = NULL, *dec = NULL, *form = NULL;
    struct ha_kvlist l = {0};
    size_t n;
    (void)state;
    for (int i = 0; i < 255; i++)
        raw[i] = (char)(i + 1);
    assert_int_equal(ha_url_encode(raw, sizeof(raw), &enc), HA_OK);
    assert_int_equal(ha_url_decode(enc, strlen(enc), &dec), HA_OK);
    assert_int_equal(strlen(dec), sizeof(raw));
    assert_memory_equal(dec, raw, sizeof(raw));
    n = strlen(enc) + 3;
    form = malloc(n + 1);
    assert_non_null(form);
    snprintf(form, n + 1, "k=%s", enc);
    assert_int_equal(ha_url_parse_query(form, strlen(form), &l), HA_OK);
    assert_int_equal(l.count, 1);
    assert_memory_equal(ha_kvlist_get(&l, "k"), raw, sizeof(raw));
    ha_kvlist_cleanup(&l);
    free(form);
    free(enc);
    free(dec);
}

static void test_decode_strict_and_no_plus_rule(void **state)
{
    char *out = NULL;
    (void)state;
    assert_int_equal(ha_url_decode("a+b%2Bc", 7, &out), HA_OK);
    assert_string_equal(out, "a+b+c");
    free(out);
    out = NULL;
    assert_int_equal(ha_url_decode("a%00b", 5, &out), HA_ERR_INVALID);
    assert_int_equal(ha_url_decode("a%", 2, &out), HA_ERR_INVALID);
    assert_int_equal(ha_url_decode("a%4", 3, &out), HA_ERR_INVALID);
    assert_int_equal(ha_url_decode("%x1", 3, &out), HA_ERR_INVALID);
    assert_int_equal(ha_url_decode("ab\0c", 4, &out), HA_ERR_INVALID);
    assert_null(out);
    /* Only len bytes count: a '%' cut off by len is malformed even if hex follows. */
    assert_int_equal(ha_url_decode("a%41", 3, &out), HA_ERR_INVALID);
}

/* ---- the URL grammar ---- */

static void test_hostname(void **state)
{
    static const char *const good[] = {
        "a", "localhost", "astro.example.com", "k8s.example.com", "a-b.c-d.e", "127.0.0.1",
        "xn--bcher-kva.example", "A.Example.COM", "a1.2b",
        /* 63-byte label */
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk.com",
        "a-.example.com", /* a trailing '-' is left as both former parsers had it */
    };
    static const char *const bad[] = {
        "",
        ".",
        ".a",
        "a.",
        "a..b",
        "-a",
        "a.-b",
        "a.b.-c.d",
        "a_b",
        "a b",
        "a/b",
        "a:1",
        "[::1]",
        "a%2eb",
        "\xc3\xa9.com",
        "a\\b",
        "a@b",
        /* 64-byte label */
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl.com",
    };
    char long_name[300];
    const char *reason = NULL;
    (void)state;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (ha_url_check_hostname(good[i], strlen(good[i]), 0, &reason) != HA_OK)
            fail_msg("host \"%s\" refused: %s", good[i], reason);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reason = NULL;
        if (ha_url_check_hostname(bad[i], strlen(bad[i]), 0, &reason) != HA_ERR_INVALID)
            fail_msg("host \"%s\" accepted", bad[i]);
        assert_non_null(reason);
    }
    assert_int_equal(ha_url_check_hostname("A.example.com", 13, HA_URL_LOWER, NULL),
                     HA_ERR_INVALID);
    assert_int_equal(ha_url_check_hostname("a.example.com", 13, HA_URL_LOWER, NULL), HA_OK);
    /* len counts, not the NUL */
    assert_int_equal(ha_url_check_hostname("a.b..", 3, 0, NULL), HA_OK);
    /* 253 bytes in all, not 254 */
    memset(long_name, 'a', sizeof(long_name));
    for (size_t i = 63; i < sizeof(long_name); i += 64)
        long_name[i] = '.';
    assert_int_equal(ha_url_check_hostname(long_name, 253, 0, NULL), HA_OK);
    assert_int_equal(ha_url_check_hostname(long_name, 254, 0, NULL), HA_ERR_INVALID);
}

static void hostport_ok(const char *s, unsigned flags, const char *host, bool v6, int port)
{
    struct ha_hostport hp;
    const char *reason = NULL;
    if (ha_url_parse_hostport(s, strlen(s), flags, &hp, &reason) != HA_OK)
        fail_msg("\"%s\" refused: %s", s, reason);
    assert_int_equal(hp.host_len, strlen(host));
    assert_memory_equal(hp.host, host, hp.host_len);
    assert_int_equal(hp.ipv6, v6);
    assert_int_equal(hp.has_port, port >= 0);
    if (port >= 0)
        assert_int_equal(hp.port, port);
}

static void test_hostport(void **state)
{
    static const struct {
        const char *s;
        unsigned flags;
    } bad[] = {
        {"", 0},
        {":8872", 0},
        {"a:", 0},
        {"a:0", 0},
        {"a:00", HA_URL_PORT_ZERO},
        {"a:08872", 0},
        {"a:65536", 0},
        {"a:123456", 0},
        {"a:+1", 0},
        {"a:-1", 0},
        {"a:1x", 0},
        {"a:1:2", 0},
        {"::1", 0},
        {"::1:8872", 0},
        {"[::1", 0},
        {"[::1]x", 0},
        {"[::1]:", 0},
        {"[]", 0},
        {"[::zz]", 0},
        {"[1.2.3.4]", 0},
        {"[:::]", 0},
        {"[abc]", 0},
        {"[fe80::1%25eth0]", 0},
        {"a", HA_URL_NEED_PORT},
        {"[::1]", HA_URL_NEED_PORT},
        {"A:1", HA_URL_LOWER},
        {"-a:1", 0},
    };
    struct ha_hostport hp = {.host = "untouched"};
    (void)state;

    hostport_ok("a.com", 0, "a.com", false, -1);
    hostport_ok("a.com:443", 0, "a.com", false, 443);
    hostport_ok("A.com:65535", 0, "A.com", false, 65535);
    hostport_ok("0.0.0.0:0", HA_URL_PORT_ZERO | HA_URL_NEED_PORT, "0.0.0.0", false, 0);
    hostport_ok("[::1]", 0, "::1", true, -1);
    hostport_ok("[::]:8872", HA_URL_NEED_PORT, "::", true, 8872);
    hostport_ok("[::ffff:127.0.0.1]:1", 0, "::ffff:127.0.0.1", true, 1);
    hostport_ok("[FE80::1]:1", HA_URL_LOWER, "FE80::1", true, 1); /* LOWER is for names */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *reason = NULL;
        if (ha_url_parse_hostport(bad[i].s, strlen(bad[i].s), bad[i].flags, &hp, &reason) !=
            HA_ERR_INVALID)
            fail_msg("\"%s\" accepted", bad[i].s);
        assert_non_null(reason);
        assert_string_equal(hp.host, "untouched");
    }
}

static void test_parse_url(void **state)
{
    static const char *const bad[] = {
        "",
        "/path",
        "//a.com/",
        "a.com",
        "https:a.com",
        "https:/a.com",
        "https://",
        "https:///x",
        "https://a@b.com/",
        "https://@b.com/",
        "https://a.com@/",
        "ftp://a.com/",
        "javascript://a.com/",
        "https://a.com:/",
        "https://a..com/",
        "https://a.com\\@b.com/",
        "https://a b.com/",
        "https://[::1/",
        " https://a.com/",
    };
    struct ha_url u;
    (void)state;

    assert_int_equal(ha_url_parse("HTTPS://App.Example.COM:8443/ui?x=1#f", &u, NULL), HA_OK);
    assert_true(u.https);
    assert_int_equal(u.authority_len, strlen("App.Example.COM:8443"));
    assert_memory_equal(u.authority, "App.Example.COM:8443", u.authority_len);
    assert_int_equal(u.hp.port, 8443);
    assert_string_equal(u.rest, "/ui?x=1#f");
    assert_int_equal(ha_url_parse("http://h?q", &u, NULL), HA_OK);
    assert_false(u.https);
    assert_false(u.hp.has_port);
    assert_string_equal(u.rest, "?q");
    assert_int_equal(ha_url_parse("http://[::1]:8873", &u, NULL), HA_OK);
    assert_true(u.hp.ipv6);
    assert_string_equal(u.rest, "");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *reason = NULL;
        if (ha_url_parse(bad[i], &u, &reason) != HA_ERR_INVALID)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(reason);
    }
}

static bool loopback(const char *hostport)
{
    struct ha_hostport hp;
    assert_int_equal(ha_url_parse_hostport(hostport, strlen(hostport), 0, &hp, NULL), HA_OK);
    return ha_url_is_loopback(&hp);
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(loopback("localhost"));
    assert_true(loopback("LocalHost:1"));
    assert_true(loopback("app.astro.localhost:8873"));
    assert_true(loopback("127.0.0.1"));
    assert_true(loopback("127.255.0.9:80"));
    assert_true(loopback("[::1]:8872"));
    assert_true(loopback("[0:0:0:0:0:0:0:1]"));
    assert_false(loopback("127.evil.com"));
    assert_false(loopback("localhost.evil.com"));
    assert_false(loopback("evillocalhost"));
    assert_false(loopback("128.0.0.1"));
    assert_false(loopback("[::2]"));
    assert_false(loopback("[::ffff:127.0.0.1]")); /* not what the config ever allowed */
    assert_false(loopback("0.0.0.0"));
}

static void origin_is(const char *url, const char *want)
{
    struct ha_url u;
    char *o = NULL, *o2 = NULL;
    assert_int_equal(ha_url_parse(url, &u, NULL), HA_OK);
    assert_int_equal(ha_url_format_origin(&u, &o), HA_OK);
    assert_string_equal(o, want);
    assert_int_equal(ha_url_origin(url, &o2), HA_OK);
    assert_string_equal(o2, want);
    free(o);
    free(o2);
}

static void test_format_origin(void **state)
{
    char *o = (char *)"untouched";
    char big[HA_MAX_URL + 16];
    (void)state;
    origin_is("https://App.Example.COM:443/ui//", "https://app.example.com");
    origin_is("http://a.com:80/", "http://a.com");
    origin_is("http://a.com:443/", "http://a.com:443");
    origin_is("https://a.com:80", "https://a.com:80");
    origin_is("http://127.0.0.1:8873", "http://127.0.0.1:8873");
    origin_is("http://[::1]:8873/x", "http://[::1]:8873");
    origin_is("HTTP://[FE80::A]#x", "http://[fe80::a]");
    assert_int_equal(ha_url_origin(NULL, &o), HA_ERR_INVALID);
    memset(big, 'a', sizeof(big));
    memcpy(big, "https://a.com/", 14);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(ha_url_origin(big, &o), HA_ERR_INVALID);
    assert_string_equal(o, "untouched");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_basic),
        cmocka_unit_test(test_parse_plus_and_encoded_plus),
        cmocka_unit_test(test_parse_missing_equals_and_empty_pairs),
        cmocka_unit_test(test_parse_duplicates_kept_in_order),
        cmocka_unit_test(test_parse_respects_len),
        cmocka_unit_test(test_parse_refuses_bad_escapes),
        cmocka_unit_test(test_parse_refuses_raw_nul),
        cmocka_unit_test(test_parse_escape_bytes),
        cmocka_unit_test(test_parse_pair_cap),
        cmocka_unit_test(test_kvlist_add),
        cmocka_unit_test(test_encode_unreserved_only),
        cmocka_unit_test(test_encode_decode_roundtrip),
        cmocka_unit_test(test_decode_strict_and_no_plus_rule),
        cmocka_unit_test(test_hostname),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_format_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
