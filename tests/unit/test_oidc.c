/* oidc: discovery with the issuer pinned, the authorize URL, and the code exchange as the
 * token endpoint sees it (a recording fake HTTP transport). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "houston_auth/oidc.h"
#include "houston_auth/url.h"

#define ISSUER "https://tenant.example.com/"

struct fake {
    long status;
    const char *body;
    enum ha_err err;
    char *url, *body_seen, *user, *pass, *ctype;
    int calls;
};

static enum ha_err fake_do(void *ctx, const struct ha_http_request *req,
                           struct ha_http_response *resp)
{
    struct fake *f = ctx;
    f->calls++;
    free(f->url);
    free(f->body_seen);
    free(f->user);
    free(f->pass);
    free(f->ctype);
    f->url = strdup(req->url);
    f->body_seen = req->body != NULL ? strndup(req->body, req->body_len) : NULL;
    f->user = req->basic_user != NULL ? strdup(req->basic_user) : NULL;
    f->pass = req->basic_pass != NULL ? strdup(req->basic_pass) : NULL;
    f->ctype = req->content_type != NULL ? strdup(req->content_type) : NULL;
    if (f->err != HA_OK)
        return f->err;
    memset(resp, 0, sizeof(*resp));
    resp->status = f->status;
    resp->body = strdup(f->body);
    resp->body_len = strlen(f->body);
    return HA_OK;
}

static void fake_cleanup(struct fake *f)
{
    free(f->url);
    free(f->body_seen);
    free(f->user);
    free(f->pass);
    free(f->ctype);
}

static const char good_discovery[] =
    "{\"issuer\":\"" ISSUER
    "\",\"authorization_endpoint\":\"https://tenant.example.com/authorize\","
    "\"token_endpoint\":\"https://tenant.example.com/oauth/token\","
    "\"jwks_uri\":\"https://tenant.example.com/.well-known/jwks.json\","
    "\"end_session_endpoint\":\"https://tenant.example.com/v2/logout\"}";

static void test_discovery_ok(void **state)
{
    struct fake f = {.status = 200, .body = good_discovery, .err = HA_OK};
    struct ha_http http = {fake_do, &f};
    struct ha_oidc_provider p = {0};
    const char *reason = NULL;
    (void)state;
    assert_int_equal(ha_oidc_discover(&http, ISSUER, &p, &reason), HA_OK);
    assert_string_equal(f.url, "https://tenant.example.com/.well-known/openid-configuration");
    assert_string_equal(p.issuer, ISSUER);
    assert_string_equal(p.token_endpoint, "https://tenant.example.com/oauth/token");
    assert_string_equal(p.jwks_uri, "https://tenant.example.com/.well-known/jwks.json");
    ha_oidc_provider_cleanup(&p);
    fake_cleanup(&f);
}

static void expect_discovery_refused(const char *doc)
{
    struct ha_oidc_provider p = {0};
    const char *reason = NULL;
    assert_int_not_equal(ha_oidc_parse_discovery(doc, strlen(doc), ISSUER, 0, &p, &reason), HA_OK);
    assert_non_null(reason);
    assert_null(p.issuer);
}

static void test_discovery_refusals(void **state)
{
    (void)state;
    /* OpenID RP certification: discovery issuer differs from the expected one. */
    expect_discovery_refused("{\"issuer\":\"https://evil.example.com/\","
                             "\"authorization_endpoint\":\"https://a/\",\"token_endpoint\":"
                             "\"https://b/\",\"jwks_uri\":\"https://c/\"}");
    /* Trailing-slash difference is a different issuer. */
    expect_discovery_refused("{\"issuer\":\"https://tenant.example.com\","
                             "\"authorization_endpoint\":\"https://a/\",\"token_endpoint\":"
                             "\"https://b/\",\"jwks_uri\":\"https://c/\"}");
    expect_discovery_refused("{\"issuer\":\"" ISSUER "\",\"authorization_endpoint\":"
                             "\"https://a/\",\"token_endpoint\":\"https://b/\"}");
    expect_discovery_refused("{\"issuer\":\"" ISSUER "\",\"authorization_endpoint\":"
                             "\"http://a/\",\"token_endpoint\":\"https://b/\",\"jwks_uri\":"
                             "\"https://c/\"}");
    expect_discovery_refused("{\"issuer\":\"" ISSUER "\",\"authorization_endpoint\":"
                             "\"https://a/ x\",\"token_endpoint\":\"https://b/\",\"jwks_uri\":"
                             "\"https://c/\"}");
    expect_discovery_refused("{\"issuer\":\"" ISSUER "\",\"issuer\":\"" ISSUER "\"}");
    expect_discovery_refused("[1,2]");
    expect_discovery_refused("not json");
    expect_discovery_refused("");
}

/* Every endpoint is read by the one URL grammar (url.c): an endpoint whose authority is not a
 * host[:port] is refused at discovery, with a reason, not later by curl. These passed when
 * discovery only looked at the "https://" prefix. */
static void test_discovery_endpoint_grammar(void **state)
{
    static const char *const bad[] = {
        "https:///oauth/token",
        "https://user:pw@tenant.example.com/oauth/token",
        "https://tenant.example.com:0/x",
        "https://tenant.example.com:99999/x",
        "https://-tenant.example.com/x",
        "https://tenant..example.com/x",
        "https://[1.2.3.4]/x",
        "https://tenant_x.example.com/x",
    };
    char doc[512];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(doc, sizeof(doc),
                 "{\"issuer\":\"" ISSUER "\",\"authorization_endpoint\":\"https://a/\","
                 "\"token_endpoint\":\"%s\",\"jwks_uri\":\"https://c/\"}",
                 bad[i]);
        expect_discovery_refused(doc);
    }
}

static void test_discovery_http_error(void **state)
{
    struct fake f = {.status = 500, .body = "{}", .err = HA_OK};
    struct ha_http http = {fake_do, &f};
    struct ha_oidc_provider p = {0};
    const char *reason = NULL;
    (void)state;
    assert_int_equal(ha_oidc_discover(&http, ISSUER, &p, &reason), HA_ERR_HTTP);
    f.err = HA_ERR_TIMEOUT;
    assert_int_equal(ha_oidc_discover(&http, ISSUER, &p, &reason), HA_ERR_TIMEOUT);
    fake_cleanup(&f);
}

static struct ha_oidc_provider provider(void)
{
    struct ha_oidc_provider p = {0};
    const char *reason = NULL;
    assert_int_equal(
        ha_oidc_parse_discovery(good_discovery, strlen(good_discovery), ISSUER, 0, &p, &reason),
        HA_OK);
    return p;
}

static void test_authorize_url(void **state)
{
    struct ha_oidc_provider p = provider();
    struct ha_txn t = {0};
    struct ha_authorize_params a = {"client-1",      "https://houston.x.io/v1/oauth/redirect",
                                    "astronomer-ee", "google-oauth2",
                                    "a@b.c",         NULL};
    struct ha_kvlist q = {0};
    char *url = NULL;
    const char *query;
    (void)state;
    memset(t.state, 'S', 43);
    memset(t.nonce, 'N', 43);
    memcpy(t.verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", 44);
    assert_int_equal(ha_oidc_authorize_url(&p, &a, &t, &url), HA_OK);
    assert_true(strncmp(url, "https://tenant.example.com/authorize?", 37) == 0);
    query = strchr(url, '?') + 1;
    assert_int_equal(ha_url_parse_query(query, strlen(query), &q), HA_OK);
    assert_string_equal(ha_kvlist_get(&q, "response_type"), "code");
    assert_string_equal(ha_kvlist_get(&q, "client_id"), "client-1");
    assert_string_equal(ha_kvlist_get(&q, "redirect_uri"),
                        "https://houston.x.io/v1/oauth/redirect");
    assert_string_equal(ha_kvlist_get(&q, "scope"), "openid profile email");
    assert_string_equal(ha_kvlist_get(&q, "audience"), "astronomer-ee");
    assert_string_equal(ha_kvlist_get(&q, "state"), t.state);
    assert_string_equal(ha_kvlist_get(&q, "nonce"), t.nonce);
    /* RFC 7636 Appendix B. */
    assert_string_equal(ha_kvlist_get(&q, "code_challenge"),
                        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    assert_string_equal(ha_kvlist_get(&q, "code_challenge_method"), "S256");
    assert_string_equal(ha_kvlist_get(&q, "connection"), "google-oauth2");
    assert_string_equal(ha_kvlist_get(&q, "login_hint"), "a@b.c");
    assert_null(ha_kvlist_get(&q, "code_verifier"));
    ha_kvlist_cleanup(&q);
    free(url);

    a.connection = "self";
    a.login_hint = NULL;
    assert_int_equal(ha_oidc_authorize_url(&p, &a, &t, &url), HA_OK);
    assert_null(strstr(url, "connection="));
    assert_null(strstr(url, "login_hint="));
    free(url);
    ha_oidc_provider_cleanup(&p);
}

static const char good_tokens[] =
    "{\"id_token\":\"a.b.c\",\"access_token\":\"d.e.f\",\"token_type\":\"Bearer\","
    "\"expires_in\":86400}";

static void test_exchange_basic(void **state)
{
    struct ha_oidc_provider p = provider();
    struct fake f = {.status = 200, .body = good_tokens, .err = HA_OK};
    struct ha_http http = {fake_do, &f};
    struct ha_token_request r = {
        "client:1", "s3cr:t/+", "client_secret_basic", "CODE", "https://h/v1/oauth/redirect",
        "VERIFIER", "rid"};
    struct ha_token_response t = {0};
    struct ha_kvlist form = {0};
    const char *reason = NULL;
    (void)state;
    assert_int_equal(ha_oidc_exchange_code(&http, &p, &r, &t, &reason), HA_OK);
    assert_string_equal(f.url, "https://tenant.example.com/oauth/token");
    assert_string_equal(f.ctype, "application/x-www-form-urlencoded");
    /* RFC 6749 §2.3.1: Basic credentials are form-encoded first. */
    assert_string_equal(f.user, "client%3A1");
    assert_string_equal(f.pass, "s3cr%3At%2F%2B");
    assert_int_equal(ha_url_parse_query(f.body_seen, strlen(f.body_seen), &form), HA_OK);
    assert_string_equal(ha_kvlist_get(&form, "grant_type"), "authorization_code");
    assert_string_equal(ha_kvlist_get(&form, "code"), "CODE");
    assert_string_equal(ha_kvlist_get(&form, "code_verifier"), "VERIFIER");
    assert_string_equal(ha_kvlist_get(&form, "redirect_uri"), "https://h/v1/oauth/redirect");
    assert_null(ha_kvlist_get(&form, "client_secret"));
    assert_string_equal(t.id_token, "a.b.c");
    assert_string_equal(t.access_token, "d.e.f");
    assert_int_equal(t.expires_in, 86400);
    ha_kvlist_cleanup(&form);
    ha_token_response_cleanup(&t);
    ha_oidc_provider_cleanup(&p);
    fake_cleanup(&f);
}

static void test_exchange_post(void **state)
{
    struct ha_oidc_provider p = provider();
    struct fake f = {.status = 200, .body = good_tokens, .err = HA_OK};
    struct ha_http http = {fake_do, &f};
    struct ha_token_request r = {
        "client-1", "secret", "client_secret_post", "CODE", "https://h/v1/oauth/redirect",
        "VERIFIER", NULL};
    struct ha_token_response t = {0};
    struct ha_kvlist form = {0};
    const char *reason = NULL;
    (void)state;
    assert_int_equal(ha_oidc_exchange_code(&http, &p, &r, &t, &reason), HA_OK);
    assert_null(f.user);
    assert_int_equal(ha_url_parse_query(f.body_seen, strlen(f.body_seen), &form), HA_OK);
    assert_string_equal(ha_kvlist_get(&form, "client_id"), "client-1");
    assert_string_equal(ha_kvlist_get(&form, "client_secret"), "secret");
    ha_kvlist_cleanup(&form);
    ha_token_response_cleanup(&t);
    ha_oidc_provider_cleanup(&p);
    fake_cleanup(&f);
}

static void expect_exchange_fails(long status, const char *body, enum ha_err transport,
                                  enum ha_err want)
{
    struct ha_oidc_provider p = provider();
    struct fake f = {.status = status, .body = body, .err = transport};
    struct ha_http http = {fake_do, &f};
    struct ha_token_request r = {"c", "s", "client_secret_basic", "CODE", "https://h/r", "V", NULL};
    struct ha_token_response t = {0};
    const char *reason = NULL;
    assert_int_equal(ha_oidc_exchange_code(&http, &p, &r, &t, &reason), want);
    assert_non_null(reason);
    assert_null(t.id_token);
    ha_oidc_provider_cleanup(&p);
    fake_cleanup(&f);
}

static void test_exchange_failures(void **state)
{
    (void)state;
    expect_exchange_fails(400, "{\"error\":\"invalid_grant\"}", HA_OK, HA_ERR_HTTP);
    expect_exchange_fails(500, "{}", HA_OK, HA_ERR_HTTP);
    expect_exchange_fails(200, "<html>oops</html>", HA_OK, HA_ERR_HTTP);
    expect_exchange_fails(200, "{\"id_token\":\"a.b.c\",\"access_tok", HA_OK, HA_ERR_HTTP);
    expect_exchange_fails(200, "{\"id_token\":\"a.b.c\",\"token_type\":\"Bearer\"}", HA_OK,
                          HA_ERR_HTTP);
    expect_exchange_fails(200, "{\"id_token\":\"a\",\"access_token\":\"b\",\"token_type\":\"mac\"}",
                          HA_OK, HA_ERR_HTTP);
    expect_exchange_fails(200,
                          "{\"id_token\":\"a\",\"id_token\":\"x\",\"access_token\":\"b\","
                          "\"token_type\":\"Bearer\"}",
                          HA_OK, HA_ERR_HTTP);
    expect_exchange_fails(200, "{\"id_token\":1,\"access_token\":\"b\",\"token_type\":\"Bearer\"}",
                          HA_OK, HA_ERR_HTTP);
    expect_exchange_fails(0, "", HA_ERR_TIMEOUT, HA_ERR_TIMEOUT);
    expect_exchange_fails(0, "", HA_ERR_TOO_LARGE, HA_ERR_TOO_LARGE);
    expect_exchange_fails(0, "", HA_ERR_IO, HA_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discovery_ok),
        cmocka_unit_test(test_discovery_refusals),
        cmocka_unit_test(test_discovery_http_error),
        cmocka_unit_test(test_authorize_url),
        cmocka_unit_test(test_exchange_basic),
        cmocka_unit_test(test_exchange_post),
        cmocka_unit_test(test_exchange_failures),
        cmocka_unit_test(test_discovery_endpoint_grammar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
