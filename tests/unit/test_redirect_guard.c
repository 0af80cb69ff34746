/* The open-redirect guard, judged the way an attacker probes it: a table of payloads that
 * must all be refused (schemes, protocol-relative and backslash tricks, userinfo, encoded and
 * double-encoded slashes and CR/LF, whitespace, Unicode look-alikes as raw UTF-8, IP forms,
 * look-alike hosts, wrong scheme or port on the base domain), a table of the targets the UI
 * and Houston really use that must pass, the size cap, and ha_url_origin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "houston_auth/config.h"
#include "houston_auth/proto.h"
#include "houston_auth/redirect_guard.h"

static const struct ha_redirect_policy prod = {"astro.example.com",
                                               "https://app.astro.example.com"};
/* A development install: the app on a non-default port, which only app_origin allows. */
static const struct ha_redirect_policy dev = {"astro.localhost",
                                              "https://app.astro.localhost:8873"};

static const char *const refused[] = {
    /* Other schemes. */
    "javascript:alert(1)",
    "JavaScript:alert(document.domain)",
    "javascript://astro.example.com/%0aalert(1)",
    "javascript:/astro.example.com",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "ftp://astro.example.com/",
    "ws://astro.example.com/",
    "wss://app.astro.example.com/",
    "blob:https://astro.example.com/0b6c",
    "about:blank",
    "mailto:a@astro.example.com",
    "intent://evil.com#Intent;scheme=https;end",
    "jar:https://evil.com!/",
    "view-source:https://evil.com",
    "httpx://astro.example.com/",
    "https+evil://astro.example.com/",
    /* Protocol-relative. */
    "//evil.com",
    "//evil.com/",
    "///evil.com",
    "////evil.com",
    "//astro.example.com.evil.com",
    "//app.astro.example.com/oauth",
    "//evil.com/%2f..",
    "//evil.com@astro.example.com",
    "//%65vil.com",
    /* Backslashes, which browsers read as '/'. */
    "/\\evil.com",
    "/\\/evil.com",
    "\\\\evil.com",
    "\\/evil.com",
    "/\\\\evil.com",
    "https:\\\\evil.com",
    "https://astro.example.com\\@evil.com",
    "https://evil.com\\.astro.example.com",
    "/oauth\\..\\..\\evil",
    /* Missing or broken "//". */
    "https:evil.com",
    "https:/evil.com",
    "https:astro.example.com",
    "https:/astro.example.com",
    "https:///evil.com",
    "https:///astro.example.com",
    "http:evil.com",
    "https//evil.com",
    "evil.com",
    "astro.example.com",
    "app.astro.example.com/oauth",
    "oauth",
    "./oauth",
    "../evil",
    "?next=//evil.com",
    "#//evil.com",
    "",
    /* Userinfo. */
    "https://evil.com@astro.example.com",
    "https://astro.example.com@evil.com",
    "https://app.astro.example.com@evil.com/",
    "https://user:pass@astro.example.com/",
    "https://astro.example.com:443@evil.com",
    "https://astro.example.com%40evil.com",
    "https://@evil.com",
    "https://@astro.example.com",
    "https://astro.example.com:@evil.com",
    /* Encoded slashes and backslashes right after the leading '/', or anywhere for '\\'. */
    "/%2fevil.com",
    "/%2Fevil.com",
    "/%2f%2fevil.com",
    "/%2F/evil.com",
    "/%5cevil.com",
    "/%5Cevil.com",
    "/%5c%5cevil.com",
    "%2f%2fevil.com",
    "%2F/evil.com",
    "/oauth%5c..%5cevil",
    "https:%2f%2fevil.com",
    "https://app.astro.example.com/%2fevil.com",
    "https://app.astro.example.com//evil.com",
    "https://app.astro.example.com/\\evil.com",
    /* Double encoding: "%25" before the query is refused. */
    "/%252fevil.com",
    "/%252F%252Fevil.com",
    "/%255cevil.com",
    "/oauth%250d%250aSet-Cookie:x=y",
    "/oauth%250aLocation:https://evil.com",
    "/%25%32%66evil.com",
    "/%2525252fevil.com",
    "https://astro.example.com/%252f%252fevil.com",
    "/%25?x=1",
    /* CR/LF and other controls, raw and encoded. */
    "/oauth\r\nLocation: https://evil.com",
    "/oauth\nSet-Cookie: a=b",
    "/oauth\r",
    "/\r\n/evil.com",
    "/oauth%0d%0aSet-Cookie:%20a=b",
    "/oauth%0D%0ALocation:%20https://evil.com",
    "/oauth%0a",
    "/oauth%0d",
    "/%0a/evil.com",
    "https://astro.example.com/%0d%0aSet-Cookie:x",
    "/%00",
    "/oauth%00.evil.com",
    "/oauth%7f",
    "/oauth%1b[31m",
    "/oauth%09",
    "/oauth%1F",
    "https://astro.example.com\r\n.evil.com",
    "/oauth\x1b",
    "/oauth\x7f",
    /* Whitespace. */
    "/\t/evil.com",
    "/ /evil.com",
    " /oauth",
    "/oauth ",
    "\t/oauth",
    "https://evil.com\t.astro.example.com",
    "https:// astro.example.com",
    "/oauth?x=1 2",
    "/\v/evil.com",
    "/\f/evil.com",
    "https://astro.example.com /",
    /* Unicode dots, slashes and look-alikes as raw UTF-8. */
    "https://evil.com\xe3\x80\x82"
    "astro.example.com",
    "https://astro\xef\xbc\x8e"
    "example.com",
    "/\xe2\x88\x95"
    "evil.com",
    "/\xef\xbc\x8f"
    "evil.com",
    "/\xe2\x81\x84"
    "evil.com",
    "https://evil.com\xef\xbc\x8f"
    "astro.example.com",
    "/\xef\xbc\xbc"
    "evil.com",
    "https://\xd0\xb0stro.example.com/",
    "/oauth\xc0\xaf",
    "/\xc0\xaf"
    "evil.com",
    "https://astro.example.com\xe2\x80\xae",
    "/\xe2\x80\x8b/evil.com",
    "/\xc2\xa0/evil.com",
    "https://app.astro.example.com\xe3\x80\x82"
    "evil.com/",
    /* IP forms. */
    "https://127.0.0.1/",
    "https://127.1/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0177.0.0.1/",
    "https://[::1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "https://0/",
    "https://[::1]:8873/",
    "https://127.0.0.1:8873/",
    "https://[0:0:0:0:0:ffff:7f00:1]/",
    /* Long and look-alike hosts. */
    "https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.evil.com/",
    "https://astro.example.com.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.evil.com/",
    /* A label over 63 bytes (RFC 1035), even under the base domain. */
    "https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.astro.example.com/",
    "https://app.astro.example.com.evil.com/",
    "https://astro.example.com.evil.com/",
    "https://evilastro.example.com/",
    "https://evil-astro.example.com/",
    "https://astro.example.comevil.com/",
    "https://astro.example.com.evil.com:443/",
    "https://xastro.example.com/",
    "https://example.com/",
    "https://com/",
    "https://astro-example.com/",
    "https://astro.example.co/",
    "https://astro.example.com./",
    "https://app.astro.example.com./",
    "https://app..astro.example.com/",
    "https://.astro.example.com/",
    "https://app.astro.example.com%2eevil.com/",
    "https://app.astro.example.com%00.evil.com",
    "https://app_astro.example.com/",
    "https://evil.com#.astro.example.com",
    "https://evil.com?.astro.example.com",
    "https://evil.com/.astro.example.com",
    "https://evil.com;.astro.example.com",
    "https://[astro.example.com]/",
    "https://astro.example.com]/",
    "https://[::1/",
    /* Upper-case schemes to other hosts. */
    "HTTPS://evil.com",
    "HtTpS://evil.com/",
    "HTTP://evil.com",
    "HTTPS://EVIL.COM/astro.example.com",
    "JAVASCRIPT:alert(1)",
    "DATA:text/html,x",
    /* Plain http to the base domain. */
    "http://astro.example.com/",
    "http://app.astro.example.com/oauth",
    "HTTP://ASTRO.EXAMPLE.COM",
    "http://houston.astro.example.com/v1",
    /* Ports on the base domain, and malformed ports. */
    "https://astro.example.com:443/",
    "https://astro.example.com:8443/",
    "https://app.astro.example.com:444/",
    "https://app.astro.example.com:0/",
    "https://app.astro.example.com:/",
    "https://app.astro.example.com:99999/",
    "https://app.astro.example.com:08873/",
    "https://app.astro.example.com:+443/",
    "https://app.astro.example.com:443:443/",
    "https://astro.example.com:80/",
    /* Dot segments that resolve to "//host". */
    "/..//evil.com",
    "/../evil.com",
    "/./%2f/evil.com",
    "/%2e%2e//evil.com",
    "/%2E./x",
    "/oauth/..//..//evil.com",
    "/oauth/.",
    "https://app.astro.example.com/..//evil.com",
    /* Encoded slashes that make a dot segment to a decoder that splits after decoding. */
    "/%2e%2e%2f%2fevil.com",
    "/x/..%2f%2fevil.com",
    "/oauth%2f..%2f..%2f%2fevil.com",
    "https://app.astro.example.com/x/..%2F%2Fevil.com",
    /* Malformed escapes. */
    "/%",
    "/%zz",
    "/%2",
    "/oauth?x=%g0",
};

static const char *const allowed_prod[] = {
    "/oauth",
    "/oauth?x=1",
    /* A '%' in a query value, as Houston encodes the UI's extras. */
    "/oauth?next=%25",
    "/oauth?next=%2Fw%2Fabc",
    "https://app.astro.example.com/oauth?extras=%7B%22d%22%3A%22100%25%22%7D&strategy=auth0",
    "/w/abc/dags",
    "/",
    "/oauth#section",
    "/w/abc/dags?tab=runs&page=2",
    "/login?error=access_denied",
    "/w/caf%C3%A9",
    "/a%20b",
    "/a..b/.hidden/x.y",
    "/oauth?next=/w/abc",
    "/oauth?url=https://evil.com", /* only the path decides where the browser goes */
    "https://app.astro.example.com/oauth",
    "https://app.astro.example.com",
    "https://app.astro.example.com?x=1",
    "https://app.astro.example.com#frag",
    "https://astro.example.com/",
    "https://astro.example.com",
    "https://APP.Astro.Example.COM/oauth",
    "HTTPS://app.astro.example.com/oauth",
    "https://houston.astro.example.com/v1/oauth/callback",
    "https://deployments.astro.example.com/a-b-c/airflow",
    "https://a-1.b-2.astro.example.com/",
    /* A 63-byte label is the longest DNS allows. */
    "https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.astro.example.com/",
    "https://app.astro.example.com/oauth?extras=%7B%22source%22%3A%22cli%22%7D&strategy=auth0"
    "&token=eyJhbGciOiJSUzI1NiJ9.eyJ1dWlkIjoiMSJ9.c2ln",
    "https://app.astro.example.com/login?error=invite_required",
};

static const char *const allowed_dev[] = {
    "https://app.astro.localhost:8873/oauth",
    "https://app.astro.localhost:8873",
    "HTTPS://APP.ASTRO.LOCALHOST:8873/login?error=x",
    "https://astro.localhost/",
    "/oauth",
};

static void test_payloads_refused(void **state)
{
    size_t n = sizeof(refused) / sizeof(refused[0]);
    (void)state;
    assert_true(n >= 150);
    for (size_t i = 0; i < n; i++) {
        if (ha_redirect_check(&prod, refused[i]) != HA_ERR_REFUSED ||
            ha_redirect_check(&dev, refused[i]) != HA_ERR_REFUSED)
            fail_msg("payload %zu not refused: \"%s\"", i, refused[i]);
    }
}

static void test_legitimate_targets_pass(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(allowed_prod) / sizeof(allowed_prod[0]); i++) {
        if (ha_redirect_check(&prod, allowed_prod[i]) != HA_OK)
            fail_msg("prod target refused: \"%s\"", allowed_prod[i]);
    }
    for (size_t i = 0; i < sizeof(allowed_dev) / sizeof(allowed_dev[0]); i++) {
        if (ha_redirect_check(&dev, allowed_dev[i]) != HA_OK)
            fail_msg("dev target refused: \"%s\"", allowed_dev[i]);
    }
}

/* The dev app origin is allowed only with its exact port and scheme, never as a pattern. */
static void test_app_origin_is_exact(void **state)
{
    (void)state;
    assert_int_equal(ha_redirect_check(&dev, "https://app.astro.localhost:8874/"), HA_ERR_REFUSED);
    assert_int_equal(ha_redirect_check(&dev, "http://app.astro.localhost:8873/"), HA_ERR_REFUSED);
    assert_int_equal(ha_redirect_check(&dev, "https://app.astro.localhost/"), HA_OK);
    assert_int_equal(ha_redirect_check(&prod, "https://app.astro.example.com:8873/"),
                     HA_ERR_REFUSED);
    assert_int_equal(ha_redirect_check(&dev, "https://x.app.astro.localhost:8873/"),
                     HA_ERR_REFUSED);
}

/* An http app origin (a plain-HTTP dev setup) is allowed as configured, and nothing more. */
static void test_http_app_origin(void **state)
{
    const struct ha_redirect_policy p = {"astro.localhost", "http://127.0.0.1:8873"};
    const struct ha_redirect_policy v6 = {"astro.localhost", "http://[::1]:8873"};
    (void)state;
    assert_int_equal(ha_redirect_check(&p, "http://127.0.0.1:8873/oauth"), HA_OK);
    assert_int_equal(ha_redirect_check(&p, "https://127.0.0.1:8873/oauth"), HA_ERR_REFUSED);
    assert_int_equal(ha_redirect_check(&p, "http://127.0.0.1/oauth"), HA_ERR_REFUSED);
    assert_int_equal(ha_redirect_check(&p, "http://127.0.0.2:8873/oauth"), HA_ERR_REFUSED);
    assert_int_equal(ha_redirect_check(&v6, "http://[::1]:8873/oauth"), HA_OK);
    assert_int_equal(ha_redirect_check(&v6, "http://[::2]:8873/oauth"), HA_ERR_REFUSED);
}

static void test_missing_policy_parts(void **state)
{
    const struct ha_redirect_policy none = {NULL, NULL};
    (void)state;
    assert_int_equal(ha_redirect_check(&prod, NULL), HA_ERR_REFUSED);
    assert_int_equal(ha_redirect_check(NULL, "/oauth"), HA_ERR_REFUSED);
    assert_int_equal(ha_redirect_check(&none, "/oauth"), HA_OK);
    assert_int_equal(ha_redirect_check(&none, "https://astro.example.com/"), HA_ERR_REFUSED);
}

static void test_size_cap(void **state)
{
    char *t = malloc(HA_MAX_REDIRECT + 2);
    (void)state;
    assert_non_null(t);
    memset(t, 'a', HA_MAX_REDIRECT + 1);
    t[0] = '/';
    t[HA_MAX_REDIRECT] = '\0';
    assert_int_equal(ha_redirect_check(&prod, t), HA_OK);
    t[HA_MAX_REDIRECT] = 'a';
    t[HA_MAX_REDIRECT + 1] = '\0';
    assert_int_equal(ha_redirect_check(&prod, t), HA_ERR_TOO_LARGE);
    free(t);
}

/* A host over 253 bytes is no DNS name, even if every label is short and it ends in the base. */
static void test_host_length_cap(void **state)
{
    char host[300], url[320];
    (void)state;
    for (size_t i = 0; i < 59; i++)
        memcpy(host + 4 * i, "abc.", 4); /* 236 bytes */
    snprintf(host + 236, sizeof(host) - 236, "astro.example.com");
    assert_int_equal(strlen(host), 253);
    snprintf(url, sizeof(url), "https://%s/", host);
    assert_int_equal(ha_redirect_check(&prod, url), HA_OK);
    snprintf(url, sizeof(url), "https://x%s/", host);
    assert_int_equal(ha_redirect_check(&prod, url), HA_ERR_REFUSED);
}

static void expect_origin(const char *url, const char *want)
{
    char *o = NULL;
    assert_int_equal(ha_url_origin(url, &o), HA_OK);
    assert_string_equal(o, want);
    free(o);
}

static void test_url_origin(void **state)
{
    static const char *const bad[] = {
        "javascript:alert(1)",
        "//evil.com",
        "https:evil.com",
        "https://",
        "https://a@b.com/",
        "https://a.com:0/",
        "https://a.com:/",
        "https://a..com/",
        "https://a.com./",
        "ftp://a.com/",
        "/oauth",
        "https://a b.com/",
        "https://[zz]/",
        "https://a.com:65536",
        "",
    };
    (void)state;
    expect_origin("https://app.astro.example.com/oauth?x=1", "https://app.astro.example.com");
    expect_origin("HTTPS://App.Astro.Example.COM", "https://app.astro.example.com");
    expect_origin("https://a.com:443/", "https://a.com");
    expect_origin("http://a.com:80", "http://a.com");
    expect_origin("http://a.com:443/", "http://a.com:443");
    expect_origin("https://app.astro.localhost:8873/x", "https://app.astro.localhost:8873");
    expect_origin("http://[::1]:8873#f", "http://[::1]:8873");
    expect_origin("https://a.com?q", "https://a.com");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *o = (char *)"untouched";
        if (ha_url_origin(bad[i], &o) != HA_ERR_INVALID)
            fail_msg("origin of \"%s\" not refused", bad[i]);
        assert_string_equal(o, "untouched");
    }
}

/* A host label never starts with '-' (RFC 1123 §2.1), in a target as in the configuration,
 * which refuses such an appUrl. The guard used to pass these under the base domain. */
static void test_label_starting_with_hyphen(void **state)
{
    static const char *const bad[] = {
        "https://-x.astro.example.com/",
        "https://a.-x.astro.example.com/oauth",
        "https://-.astro.example.com/",
    };
    char *o = NULL;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ha_redirect_check(&prod, bad[i]) != HA_ERR_REFUSED)
            fail_msg("\"%s\" allowed", bad[i]);
        assert_int_equal(ha_url_origin(bad[i], &o), HA_ERR_INVALID);
    }
    assert_int_equal(ha_redirect_check(&prod, "https://x-.astro.example.com/"), HA_OK);
}

/* Loads a configuration whose appUrl is url; the app origin it derived, or NULL if refused. */
static char *config_origin(const char *url)
{
    char app[512];
    char *argv[] = {"houston-auth", NULL};
    char *envp[] = {app,
                    "GLOBAL_BASE_DOMAIN=astro.example.com",
                    "AUTH0_CLIENT_ID=abc",
                    "AUTH0_BASE_DOMAIN=t.auth0.com",
                    "AUTH0_CLIENT_SECRET=secret",
                    "AUTH_SIDECAR_COOKIE_SECRET=cookie-secret-0123456789abcdef0123456789",
                    NULL};
    enum ha_config_action action;
    struct ha_config *cfg = NULL;
    char err[512], *origin = NULL;

    snprintf(app, sizeof(app), "AUTH_SIDECAR_APP_URL=%s", url);
    if (ha_config_load(1, argv, envp, &cfg, &action, err, sizeof(err)) != HA_OK)
        return NULL;
    origin = strdup(cfg->app_origin);
    assert_non_null(origin);
    ha_config_free(cfg);
    return origin;
}

/* houston.c compares ha_url_origin's answer with the configuration's app origin, so the two
 * must be one grammar and one serialiser: for every appUrl the configuration takes exactly
 * what ha_url_origin takes, and derives the same origin. They used to be two parsers, and
 * ha_url_origin took a label starting with '-' and bracketed hosts that are no IPv6
 * address, all of which the configuration refused. */
static void test_origin_agrees_with_config(void **state)
{
    static const char *const urls[] = {
        "https://app.astro.example.com",
        "HTTPS://App.Astro.Example.COM:443/ui",
        "https://app.astro.example.com:8443/",
        "http://127.0.0.1:8873",
        "http://localhost:8873/x",
        "http://[::1]:8873",
        "https://[2001:db8::1]:8443",
        "https://[2001:DB8::A]",
        "https://-app.astro.example.com",
        "https://app.-x.example.com",
        "https://[1.2.3.4]:8873",
        "https://[:::]",
        "https://[abc]/",
        "https://[::1:8873",
        "https://app..example.com",
        "https://app_x.example.com",
        "https://app.example.com.",
        "https://app.example.com:08443",
        "https://user@app.example.com",
        "https://",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        char *from_config = config_origin(urls[i]), *from_url = NULL;
        enum ha_err err = ha_url_origin(urls[i], &from_url);
        if ((from_config != NULL) != (err == HA_OK))
            fail_msg("\"%s\": the configuration %s it, ha_url_origin %s it", urls[i],
                     from_config != NULL ? "takes" : "refuses", err == HA_OK ? "takes" : "refuses");
        if (from_config != NULL)
            assert_string_equal(from_config, from_url);
        free(from_config);
        free(from_url);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payloads_refused),
        cmocka_unit_test(test_legitimate_targets_pass),
        cmocka_unit_test(test_app_origin_is_exact),
        cmocka_unit_test(test_http_app_origin),
        cmocka_unit_test(test_missing_policy_parts),
        cmocka_unit_test(test_size_cap),
        cmocka_unit_test(test_host_length_cap),
        cmocka_unit_test(test_url_origin),
        cmocka_unit_test(test_label_starting_with_hyphen),
        cmocka_unit_test(test_origin_agrees_with_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
