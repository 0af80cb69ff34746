/* The route table and Houston's OAuth namespace: every spelling of Houston's callback that
 * an ingress could pass on (case, slashes, dot segments, percent-escapes, '\' for '/') is
 * refused with 403 and a page, for any method, and nothing is sent to Houston; the sidecar's
 * own routes still match exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "houston_auth/app.h"
#include "houston_auth/config.h"
#include "houston_auth/handlers.h"
#include "houston_auth/proto.h"
#include "houston_auth/router.h"
#include "houston_auth/url.h"

/* Spellings of Houston's callback (and of its namespace) the sidecar must refuse. */
static const char *const refused[] = {
    "/v1/oauth/callback",
    "/V1/OAuth/Callback",
    "/v1/oauth/callback/",
    "/V1/OAUTH/CALLBACK//",
    "//v1//oauth///callback",
    "/v1//oauth/callback",
    "/v1/./oauth/callback",
    "/v1/foo/../oauth/callback",
    "/v1/oauth/%63allback",
    "/v1/oauth%2Fcallback",
    "/%761/oauth/callback",
    "/v1/%6Fauth/CallBack",
    "/v1/oauth/%2e/callback",
    "/x/%2e%2e/v1/oauth/callback",
    "/V1\\/OAUTH/callback#",
    "/v1\\oauth\\callback",
    "/v1/oauth/callback\\#x",
    "/v1/oauth/callback#frag",
    "/v1/oauth/callback?id_token=x",
    "/v1/oauth/callback;x",
    "/v1/oauth/callback%20",
    "/v1/oauth",
    "/v1/oauth/",
    "/v1/oauth/START",
    "/v1/oauth/start/",
    "/v1/oauth/redirect/",
    "/v1/oauth/anything/else",
};

static void test_normalize_path(void **state)
{
    static const struct {
        const char *raw, *want;
    } cases[] = {
        {"/", "/"},
        {"/V1/OAuth/Callback/", "/v1/oauth/callback/"},
        {"//v1//oauth///callback", "/v1/oauth/callback"},
        {"/v1/./oauth/.", "/v1/oauth/"},
        {"/v1/foo/../oauth/callback", "/v1/oauth/callback"},
        {"/../../v1", "/v1"},
        {"/v1/..", "/"},
        {"/v1/oauth/%63allback?x=%00", "/v1/oauth/callback"},
        {"/%2e%2E/v1%2f%2Foauth", "/v1/oauth"},
        {"/V1\\/OAUTH\\callback#/x", "/v1/oauth/callback"},
        {"/a%zz/%4", "/a%zz/%4"},
        {"/..a/.b./", "/..a/.b./"},
    };
    char out[64];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(ha_url_normalize_path(cases[i].raw, out, sizeof(out)), HA_OK);
        assert_string_equal(out, cases[i].want);
    }
    assert_int_equal(ha_url_normalize_path("v1/oauth", out, sizeof(out)), HA_ERR_INVALID);
    assert_int_equal(ha_url_normalize_path("/v1%00/oauth", out, sizeof(out)), HA_ERR_INVALID);
    assert_int_equal(ha_url_normalize_path("/0123456789", out, 11), HA_ERR_TOO_LARGE);
    assert_int_equal(ha_url_normalize_path("/012345678?long query", out, 11), HA_OK);
}

static void test_find(void **state)
{
    static const char *const own[] = {HA_PATH_START,   HA_PATH_REDIRECT, HA_PATH_LOGOUT,
                                      HA_PATH_HEALTHZ, HA_PATH_READYZ,   HA_PATH_METRICS};
    static const char *const unknown[] = {
        "/v1/healthz",          "/v1/oauthx", "/v1/oauthcallback", "/v1",
        "/x/v1/oauth/callback", "/logout/",   "/v2/oauth"};
    const struct ha_route *r;
    (void)state;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        r = ha_router_find(refused[i]);
        if (r == NULL || !r->early)
            fail_msg("%s is not refused", refused[i]);
        assert_string_equal(r->path, HA_PATH_HOUSTON_REFUSED);
        assert_ptr_equal(r->handle, ha_handle_houston_refused);
        assert_true(ha_router_method_ok(r, "POST"));
        assert_true(ha_router_method_ok(r, "PUT"));
    }
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        r = ha_router_find(own[i]);
        assert_non_null(r);
        assert_string_equal(r->path, own[i]);
        assert_false(r->early);
        assert_true(ha_router_method_ok(r, "GET"));
        /* HEAD wherever GET is, but on the redirect: it would spend the code and state. */
        assert_int_equal(ha_router_method_ok(r, "HEAD"), strcmp(own[i], HA_PATH_REDIRECT) != 0);
        assert_int_equal(ha_router_method_ok(r, "POST"), strcmp(own[i], HA_PATH_REDIRECT) == 0);
    }
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        if (ha_router_find(unknown[i]) != NULL)
            fail_msg("%s has a route", unknown[i]);
    }
}

static int houston_calls;

static enum ha_err counting_do(void *ctx, const struct ha_http_request *req,
                               struct ha_http_response *resp)
{
    (void)ctx;
    (void)req;
    (void)resp;
    houston_calls++;
    return HA_ERR_IO;
}

/* A forged callback POST, dispatched as the server does: 403, a page, no session. */
static void test_refusal_answer(void **state)
{
    char *argv[] = {"houston-auth", NULL};
    char *envp[] = {"GLOBAL_BASE_DOMAIN=astro.example.com",
                    "AUTH0_ENABLED=true",
                    "AUTH0_CLIENT_ID=client-1",
                    "AUTH0_BASE_DOMAIN=tenant.example.com",
                    "AUTH0_CLIENT_SECRET=secret",
                    "AUTH_SIDECAR_LOG_LEVEL=error",
                    "AUTH_SIDECAR_COOKIE_SECRET=0123456789abcdef0123456789abcdef",
                    NULL};
    const char *form = "id_token=eyJhbGciOiJSUzI1NiJ9.e30.x&access_token=a&token_type=Bearer"
                       "&expires_in=60&state=%7B%7D";
    struct ha_config *cfg = NULL;
    enum ha_config_action action;
    struct ha_app app;
    char err[256];
    (void)state;
    assert_int_equal(ha_config_load(1, argv, envp, &cfg, &action, err, sizeof(err)), HA_OK);
    assert_int_equal(ha_app_init(&app, cfg), HA_OK);
    app.http.perform = counting_do;
    houston_calls = 0;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        static const char *const methods[] = {"POST", "GET", "HEAD", "PUT"};
        struct ha_request req;
        struct ha_response resp = {0};
        memset(&req, 0, sizeof(req));
        req.method = methods[i % 4];
        req.path = HA_PATH_HOUSTON_REFUSED;
        snprintf(req.request_id, sizeof(req.request_id), "t%zu", i);
        assert_int_equal(ha_url_parse_query(form, strlen(form), &req.form), HA_OK);
        ha_router_dispatch(&app, ha_router_find(refused[i]), &req, &resp);
        assert_int_equal(resp.status, 403);
        assert_string_equal(resp.content_type, "text/html; charset=utf-8");
        assert_non_null(strstr(resp.body, "Not available from outside"));
        assert_non_null(strstr(resp.body, "https://app.astro.example.com/"));
        assert_int_equal(resp.set_cookie_count, 0);
        assert_null(resp.location);
        assert_true(resp.no_store);
        ha_request_cleanup(&req);
        ha_response_cleanup(&resp);
    }
    assert_int_equal(houston_calls, 0);
    ha_app_cleanup(&app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_path),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_refusal_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
