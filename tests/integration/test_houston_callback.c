/* Houston's own callback from outside: a forged ID token (the tenant's kid, any key) POSTed to
 * the sidecar under every spelling of Houston's OAuth callback that an ingress could pass on
 * gets 403 and a page, no cookie, one log line without the token, and Houston receives
 * nothing; a real login still hands off to Houston inside the "pod". The same forged form
 * straight to the Houston stand-in gets a session: it is as weak as Houston 0.9, so what is
 * asserted here could fail. (tests/edge/run.sh does the same through a real nginx.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include "harness.h"
#include "houston_auth/b64url.h"

#define PLAIN_LOG "sidecar-plain-callback.log"
#define QUERY "provider=auth0&integration=self&redirect=%2Foauth"
#define VICTIM "victim@example.com"
#define ANSWER_MS 5000

/* Raw request targets, sent as they are. */
static const char *const spellings[] = {
    "/v1/oauth/callback",        "/V1/OAuth/Callback",         "/v1/oauth/callback/",
    "//v1//oauth///callback",    "/v1//oauth/callback",        "/v1/./oauth/callback",
    "/v1/foo/../oauth/callback", "/v1/oauth/%63allback",       "/v1/oauth%2Fcallback",
    "/%761/oauth/callback",      "/V1\\/OAUTH/callback#",      "/v1/oauth/callback\\#",
    "/v1/oauth/callback?x=1#y",  "/v1/oauth/callback///a@b/#",
};

static char *forged_form;

static char *b64(const void *p, size_t n)
{
    char *out = NULL;
    assert_int_equal(ha_b64url_encode((const unsigned char *)p, n, &out), HA_OK);
    return out;
}

/* The tenant's first kid, from its JWKS. */
static char *tenant_kid(void)
{
    json_t *jwks = it_tenant_get_json(it_env(), "/.well-known/jwks.json");
    const char *kid =
        json_string_value(json_object_get(json_array_get(json_object_get(jwks, "keys"), 0), "kid"));
    char *out = kid != NULL ? strdup(kid) : NULL;
    json_decref(jwks);
    assert_non_null(out);
    return out;
}

/* Houston's callback form around an ID token signed by a fresh key under the tenant's kid. */
static char *forge(void)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *kid = tenant_kid(), *hdr, *claims, *h, *c, *input, *sig, *form;
    unsigned char raw[512];
    size_t len = sizeof(raw);
    long now = (long)time(NULL);

    hdr = it_fmt("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    claims = it_fmt("{\"iss\":\"https://localhost:%d/\",\"sub\":\"auth0|forged\",\"aud\":\"%s\","
                    "\"exp\":%ld,\"iat\":%ld,\"email\":\"%s\",\"email_verified\":true}",
                    it_env()->tenant_port, IT_CLIENT_ID, now + 600, now, VICTIM);
    h = b64(hdr, strlen(hdr));
    c = b64(claims, strlen(claims));
    input = it_fmt("%s.%s", h, c);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(md, raw, &len, (const unsigned char *)input, strlen(input)), 1);
    sig = b64(raw, len);
    form = it_fmt("id_token=%s.%s&access_token=forged&token_type=Bearer&expires_in=86400&state="
                  "%%7B%%22provider%%22%%3A%%22auth0%%22%%2C%%22integration%%22%%3A%%22self%%22"
                  "%%2C%%22origin%%22%%3A%%22x%%22%%2C%%22redirect%%22%%3A%%22%%2Foauth%%22%%7D",
                  input, sig);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    free(kid);
    free(hdr);
    free(claims);
    free(h);
    free(c);
    free(input);
    free(sig);
    return form;
}

static int setup(void **state)
{
    struct it_env *e = it_env();
    if (it_group_setup(state) != 0)
        return -1;
    /* Plain HTTP, as the sidecar serves behind the ingress. */
    if (it_sidecar_start_plain(e, &e->spare[0], e->spare_ports[0], PLAIN_LOG, NULL, true) != 0)
        return -1;
    forged_form = forge();
    return 0;
}

static int teardown(void **state)
{
    free(forged_form);
    return it_group_teardown(state);
}

/* POSTs the forged form to target on port; the status, the answer in out. */
static int post(int port, const char *target, char *out, size_t cap)
{
    char *req = it_fmt("POST %s HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-"
                       "urlencoded\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       target, strlen(forged_form), forged_form);
    int st = it_raw_exchange(port, req, strlen(req), out, cap, ANSWER_MS);
    free(req);
    return st;
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_forged_callback_refused(void **state)
{
    static const char big_put[] = "PUT /v1/oauth/callback HTTP/1.1\r\nHost: h\r\n"
                                  "Content-Length: 16384\r\n\r\n";
    struct it_env *e = it_env();
    long before = it_houston_received_count(e);
    char answer[8192], *log, *path = it_fmt("%s/%s", e->dir, PLAIN_LOG);
    size_t refusals =
        count((log = it_read_file(path, NULL)) != NULL ? log : "", "houston_path_refused");
    (void)state;
    free(log);
    for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
        int st = post(e->spare_ports[0], spellings[i], answer, sizeof(answer));
        if (st != 403 || strstr(answer, "Not available from outside") == NULL)
            fail_msg("POST %s answered %d, want the 403 page", spellings[i], st);
        if (strstr(answer, "Set-Cookie") != NULL || strstr(answer, "Location") != NULL)
            fail_msg("POST %s set a cookie or redirected", spellings[i]);
    }
    /* A body at the cap is never read, and still answered at once. */
    assert_int_equal(
        it_raw_exchange(e->spare_ports[0], big_put, strlen(big_put), NULL, 0, ANSWER_MS), 403);
    assert_int_equal(it_houston_received_count(e), before);
    log = it_read_file(path, NULL);
    assert_non_null(log);
    /* One line per request, none with the token or the victim's email. */
    assert_int_equal(count(log, "houston_path_refused"),
                     refusals + sizeof(spellings) / sizeof(spellings[0]) + 1);
    assert_null(strstr(log, VICTIM));
    assert_null(strstr(log, "id_token"));
    free(log);
    free(path);
    /* ... and counted, for alerting on someone probing Houston's callback. */
    {
        static const char get[] = "GET /metrics HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
        static char metrics[65536];
        char want[96];
        snprintf(want, sizeof(want), "houston_auth_houston_paths_refused_total %zu\n",
                 refusals + sizeof(spellings) / sizeof(spellings[0]) + 1);
        assert_int_equal(it_raw_exchange(e->spare_ports[0], get, strlen(get), metrics,
                                         sizeof(metrics), ANSWER_MS),
                         200);
        if (strstr(metrics, want) == NULL)
            fail_msg("/metrics lacks \"%s\"", want);
    }
}

/* The control: Houston's stand-in itself takes the forged token (Houston 0.9 does). */
static void test_forged_callback_works_on_houston(void **state)
{
    struct it_env *e = it_env();
    long before = it_houston_received_count(e);
    char answer[16384];
    json_t *rec;
    (void)state;
    assert_int_equal(post(e->houston_port, "/V1/OAuth/Callback/", answer, sizeof(answer)), 302);
    assert_non_null(strstr(answer, IT_AUTH_COOKIE "="));
    assert_int_equal(it_houston_received_count(e), before + 1);
    rec = it_houston_received(e);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(rec, json_array_size(rec) - 1), "email")),
        VICTIM);
    json_decref(rec);
}

/* The sidecar's own hand-off still reaches Houston's callback inside the pod. */
static void test_real_login_hands_off(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_login l;
    long before = it_houston_received_count(e);
    (void)state;
    assert_int_equal(it_login(c, QUERY, "alice@example.com", &l), 0);
    it_expect_prefix(l.redirect.location, IT_APP_URL "/oauth?");
    assert_non_null(it_resp_set_cookie(&l.redirect, IT_AUTH_COOKIE "=", 0));
    assert_int_equal(it_houston_received_count(e), before + 1);
    it_login_cleanup(&l);
    it_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forged_callback_refused),
        cmocka_unit_test(test_forged_callback_works_on_houston),
        cmocka_unit_test(test_real_login_hands_off),
        cmocka_unit_test(it_test_processes_exit_clean),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
