/* Handlers without sockets: /v1/oauth/start, /v1/oauth/redirect and /logout driven through
 * plain request structs, with a fake transport standing in for the tenant's token endpoint,
 * its JWKS and Houston. Asserts what the browser would see (status, Location, Set-Cookie)
 * and what Houston would receive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include "houston_auth/app.h"
#include "houston_auth/b64url.h"
#include "houston_auth/config.h"
#include "houston_auth/cookie.h"
#include "houston_auth/handlers.h"
#include "houston_auth/router.h"
#include "houston_auth/log.h"
#include "houston_auth/proto.h"
#include "houston_auth/url.h"

#define ISSUER "https://tenant.example.com/"
#define CLIENT "client-1"
#define HOUSTON_COOKIE "astronomer_astro_example_com_auth"

struct world {
    struct ha_config *cfg;
    struct ha_app app;
    EVP_PKEY *key;
    char *jwks;
    json_t *id_claims; /* claims the next ID token gets (nonce filled from the request) */
    json_t *at_claims;
    const char *nonce; /* nonce to put in the ID token; NULL: the transaction's */
    char last_nonce[64];
    int token_status;
    int token_calls;
    char *token_form;               /* the last token request's body */
    const char *reload_in_exchange; /* "KEY=value" to reload with while the tenant answers */
    int houston_calls;
    char *houston_form;
    const char *houston_location;
    long now;
};

static struct world W;

static void reload_with(const char *extra);

/* A handler as the router runs it: with one configuration view taken for the request. */
static enum ha_err call(enum ha_err (*h)(const struct ha_ctx *, const struct ha_request *,
                                         struct ha_response *),
                        const struct ha_request *req, struct ha_response *resp)
{
    struct ha_ctx cx = {&W.app, ha_app_view_acquire(&W.app)};
    enum ha_err err = h(&cx, req, resp);
    ha_app_view_release(&W.app, cx.view);
    return err;
}

static void replied(void *arg)
{
    *(int *)arg += 1;
}

/* /v1/oauth/redirect through the router, as the server runs it; the fake transport answers
 * at once, so the answer is there when this returns. */
static enum ha_err call_redirect(const struct ha_request *req, struct ha_response *resp)
{
    int replies = 0;
    ha_router_begin(&W.app, ha_router_find(HA_PATH_REDIRECT), req, resp, replied, &replies);
    assert_int_equal(replies, 1);
    return HA_OK;
}

static long fake_now(void *ctx)
{
    (void)ctx;
    return W.now;
}

static char *b64_bn(EVP_PKEY *k, const char *name)
{
    BIGNUM *bn = NULL;
    unsigned char buf[512];
    char *out = NULL;
    int n;
    assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    n = BN_bn2bin(bn, buf);
    assert_int_equal(ha_b64url_encode(buf, (size_t)n, &out), HA_OK);
    BN_free(bn);
    return out;
}

static char *sign(json_t *claims)
{
    json_t *hdr = json_pack("{s:s,s:s,s:s}", "alg", "RS256", "typ", "JWT", "kid", "k1");
    char *h = json_dumps(hdr, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
    char *hb = NULL, *cb = NULL, *sb = NULL, *out;
    unsigned char sig[512];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t len;
    assert_int_equal(ha_b64url_encode((unsigned char *)h, strlen(h), &hb), HA_OK);
    assert_int_equal(ha_b64url_encode((unsigned char *)c, strlen(c), &cb), HA_OK);
    len = strlen(hb) + strlen(cb) + 2;
    out = malloc(len + 700);
    snprintf(out, len, "%s.%s", hb, cb);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, W.key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)out, strlen(out)), 1);
    assert_int_equal(ha_b64url_encode(sig, siglen, &sb), HA_OK);
    strcat(out, ".");
    strcat(out, sb);
    EVP_MD_CTX_free(md);
    json_decref(hdr);
    free(h);
    free(c);
    free(hb);
    free(cb);
    free(sb);
    return out;
}

static json_t *base_claims(void)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "iss", ISSUER, "sub", "auth0|123", "aud", CLIENT,
                     "azp", CLIENT, "iat", (json_int_t)W.now, "exp", (json_int_t)(W.now + 3600));
}

static void respond(struct ha_http_response *resp, long status, const char *body)
{
    memset(resp, 0, sizeof(*resp));
    resp->status = status;
    resp->body = strdup(body);
    resp->body_len = strlen(body);
}

static enum ha_err token_endpoint(const struct ha_http_request *req, struct ha_http_response *resp)
{
    json_t *id, *at, *doc;
    char *idt, *att, *text;
    W.token_calls++;
    free(W.token_form);
    W.token_form = strndup(req->body, req->body_len);
    if (W.reload_in_exchange != NULL) {
        const char *extra = W.reload_in_exchange;
        W.reload_in_exchange = NULL;
        reload_with(extra);
    }
    if (W.token_status != 200) {
        respond(resp, W.token_status, "{\"error\":\"server_error\"}");
        return HA_OK;
    }
    id = json_deep_copy(W.id_claims);
    at = json_deep_copy(W.at_claims);
    json_object_set_new(id, "nonce", json_string(W.nonce != NULL ? W.nonce : W.last_nonce));
    idt = sign(id);
    att = sign(at);
    doc = json_pack("{s:s,s:s,s:s,s:i}", "id_token", idt, "access_token", att, "token_type",
                    "Bearer", "expires_in", 86400);
    text = json_dumps(doc, JSON_COMPACT);
    respond(resp, 200, text);
    free(text);
    free(idt);
    free(att);
    json_decref(doc);
    json_decref(id);
    json_decref(at);
    return HA_OK;
}

static enum ha_err fake_do(void *ctx, const struct ha_http_request *req,
                           struct ha_http_response *resp)
{
    (void)ctx;
    if (strcmp(req->url, "https://tenant.example.com/oauth/token") == 0)
        return token_endpoint(req, resp);
    if (strcmp(req->url, "https://tenant.example.com/jwks") == 0) {
        respond(resp, 200, W.jwks);
        return HA_OK;
    }
    if (strcmp(req->url, "http://127.0.0.1:8871/v1/oauth/callback") == 0) {
        W.houston_calls++;
        free(W.houston_form);
        W.houston_form = strndup(req->body, req->body_len);
        respond(resp, 302, "");
        resp->location = strdup(W.houston_location);
        resp->set_cookies[0] =
            strdup(HOUSTON_COOKIE "=jwt; Domain=.astro.example.com; Path=/; Secure");
        resp->set_cookie_count = 1;
        return HA_OK;
    }
    return HA_ERR_IO;
}

static int setup(void **state)
{
    char *argv[] = {"houston-auth", NULL};
    char *envp[] = {"GLOBAL_BASE_DOMAIN=astro.example.com",
                    "AUTH0_ENABLED=true",
                    "AUTH0_CLIENT_ID=" CLIENT,
                    "AUTH0_BASE_DOMAIN=tenant.example.com",
                    "AUTH0_CLIENT_SECRET=secret",
                    "AUTH_SIDECAR_LOG_LEVEL=error",
                    "AUTH_SIDECAR_COOKIE_SECRET=0123456789abcdef0123456789abcdef",
                    NULL};
    enum ha_config_action action;
    char err[256];
    char *n, *e;
    (void)state;
    memset(&W, 0, sizeof(W));
    W.now = 1800000000;
    assert_int_equal(ha_config_load(1, argv, envp, &W.cfg, &action, err, sizeof(err)), HA_OK);
    assert_int_equal(ha_app_init(&W.app, W.cfg), HA_OK);
    W.app.http.perform = fake_do;
    /* The fake answers at once: each login runs to its end inside ha_router_begin. */
    W.app.transport = ha_transport_inline(&W.app.http);
    W.app.clock.now = fake_now;
    W.key = EVP_RSA_gen(2048);
    n = b64_bn(W.key, OSSL_PKEY_PARAM_RSA_N);
    e = b64_bn(W.key, OSSL_PKEY_PARAM_RSA_E);
    W.jwks = malloc(2048);
    snprintf(W.jwks, 2048,
             "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"k1\","
             "\"n\":\"%s\",\"e\":\"%s\"}]}",
             n, e);
    free(n);
    free(e);
    {
        const char *doc = "{\"issuer\":\"" ISSUER "\",\"authorization_endpoint\":"
                          "\"https://tenant.example.com/authorize\",\"token_endpoint\":"
                          "\"https://tenant.example.com/oauth/token\",\"jwks_uri\":"
                          "\"https://tenant.example.com/jwks\"}";
        struct ha_jwks_cache_opts o = {"https://tenant.example.com/jwks", W.app.http, W.app.clock,
                                       3600, 30};
        const char *reason;
        assert_int_equal(
            ha_oidc_parse_discovery(doc, strlen(doc), ISSUER, 0, &W.app.provider, &reason), HA_OK);
        assert_int_equal(ha_jwks_cache_new(&o, &W.app.jwks), HA_OK);
        assert_int_equal(ha_jwks_cache_refresh(W.app.jwks), HA_OK);
        W.app.provider_ready = true;
    }
    W.id_claims = base_claims();
    json_object_set_new(W.id_claims, "email", json_string("person@example.com"));
    json_object_set_new(W.id_claims, "email_verified", json_true());
    W.at_claims = base_claims();
    json_object_set_new(W.at_claims, "aud", json_pack("[s,s]", "astronomer-ee", ISSUER "userinfo"));
    W.token_status = 200;
    W.houston_location = "https://app.astro.example.com/oauth?strategy=auth0&token=jwt";
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ha_app_cleanup(&W.app); /* frees every config it was given */
    EVP_PKEY_free(W.key);
    free(W.jwks);
    free(W.houston_form);
    free(W.token_form);
    json_decref(W.id_claims);
    json_decref(W.at_claims);
    return 0;
}

static void request(struct ha_request *req, const char *method, const char *path, const char *query,
                    const char *cookie)
{
    memset(req, 0, sizeof(*req));
    req->method = method;
    req->path = path;
    snprintf(req->request_id, sizeof(req->request_id), "test");
    if (query != NULL)
        assert_int_equal(ha_url_parse_query(query, strlen(query), &req->query), HA_OK);
    if (cookie != NULL)
        assert_int_equal(ha_cookie_parse(cookie, strlen(cookie), &req->cookies), HA_OK);
}

/* The cookie "name=value" pair of a Set-Cookie line, into out. */
static void cookie_pair(const char *set_cookie, char *out, size_t len)
{
    size_t n = strcspn(set_cookie, ";");
    assert_true(n < len);
    memcpy(out, set_cookie, n);
    out[n] = '\0';
}

struct started {
    char cookie[HA_MAX_COOKIE_HEADER]; /* the Cookie header to finish with: "<name>=v..." */
    char state[64];
    char nonce[64];
};

static void start_login(const char *query, const char *cookies, struct started *s)
{
    struct ha_request req;
    struct ha_response resp = {0};
    struct ha_kvlist q = {0};
    const char *qs;
    request(&req, "GET", HA_PATH_START, query, cookies);
    assert_int_equal(call(ha_handle_start, &req, &resp), HA_OK);
    assert_int_equal(resp.status, 302);
    assert_non_null(resp.location);
    assert_true(strncmp(resp.location, "https://tenant.example.com/authorize?", 37) == 0);
    qs = strchr(resp.location, '?') + 1;
    assert_int_equal(ha_url_parse_query(qs, strlen(qs), &q), HA_OK);
    snprintf(s->state, sizeof(s->state), "%s", ha_kvlist_get(&q, "state"));
    snprintf(s->nonce, sizeof(s->nonce), "%s", ha_kvlist_get(&q, "nonce"));
    assert_int_equal(strlen(s->state), 43);
    assert_string_equal(ha_kvlist_get(&q, "redirect_uri"),
                        "https://houston.astro.example.com/v1/oauth/redirect");
    /* The new transaction cookie comes first, before any clearing of old ones. */
    assert_true(resp.set_cookie_count >= 1);
    assert_null(strstr(resp.set_cookies[0], "Max-Age=0"));
    cookie_pair(resp.set_cookies[0], s->cookie, sizeof(s->cookie));
    assert_true(strncmp(s->cookie, "__Host-ha_txn_", 14) == 0);
    assert_non_null(strstr(resp.set_cookies[0], "; Path=/;"));
    assert_non_null(strstr(resp.set_cookies[0], "; Secure"));
    assert_non_null(strstr(resp.set_cookies[0], "; HttpOnly"));
    assert_non_null(strstr(resp.set_cookies[0], "; SameSite=Lax"));
    assert_null(strstr(resp.set_cookies[0], "Domain"));
    ha_kvlist_cleanup(&q);
    ha_request_cleanup(&req);
    ha_response_cleanup(&resp);
}

static void finish(const struct started *s, const char *state, struct ha_response *resp)
{
    struct ha_request req;
    char query[256];
    snprintf(query, sizeof(query), "code=abc&state=%s", state != NULL ? state : s->state);
    snprintf(W.last_nonce, sizeof(W.last_nonce), "%s", s->nonce);
    request(&req, "GET", HA_PATH_REDIRECT, query, s->cookie);
    assert_int_equal(call_redirect(&req, resp), HA_OK);
    ha_request_cleanup(&req);
}

static int has_cookie(const struct ha_response *r, const char *prefix)
{
    for (size_t i = 0; i < r->set_cookie_count; i++) {
        if (strncmp(r->set_cookies[i], prefix, strlen(prefix)) == 0)
            return 1;
    }
    return 0;
}

static void assert_login_error(const struct ha_response *r, const char *code)
{
    char want[256];
    snprintf(want, sizeof(want), "https://app.astro.example.com/login?error=%s", code);
    assert_int_equal(r->status, 302);
    assert_string_equal(r->location, want);
    assert_false(has_cookie(r, HOUSTON_COOKIE "="));
}

static void test_login_succeeds(void **state)
{
    struct started s;
    struct ha_response resp = {0};
    int calls = W.houston_calls;
    struct ha_kvlist form = {0};
    json_t *st;
    (void)state;
    start_login("provider=auth0&integration=self&redirect=%2Fw%2Fx&extras=%7B%22a%22%3A1%7D"
                "&inviteToken=inv1",
                NULL, &s);
    finish(&s, NULL, &resp);
    assert_int_equal(resp.status, 302);
    assert_string_equal(resp.location, W.houston_location);
    assert_true(has_cookie(&resp, HOUSTON_COOKIE "=jwt"));
    assert_int_equal(W.houston_calls, calls + 1);
    assert_int_equal(ha_url_parse_query(W.houston_form, strlen(W.houston_form), &form), HA_OK);
    assert_string_equal(ha_kvlist_get(&form, "token_type"), "Bearer");
    assert_string_equal(ha_kvlist_get(&form, "expires_in"), "86400");
    st = json_loads(ha_kvlist_get(&form, "state"), 0, NULL);
    assert_non_null(st);
    assert_string_equal(json_string_value(json_object_get(st, "provider")), "auth0");
    assert_string_equal(json_string_value(json_object_get(st, "integration")), "self");
    assert_string_equal(json_string_value(json_object_get(st, "redirect")), "/w/x");
    assert_string_equal(json_string_value(json_object_get(st, "origin")),
                        "https://houston.astro.example.com/v1/oauth/callback");
    assert_string_equal(json_string_value(json_object_get(st, "inviteToken")), "inv1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "extras"), "a")), 1);
    json_decref(st);
    ha_kvlist_cleanup(&form);
    ha_response_cleanup(&resp);
}

static void test_state_single_use(void **state)
{
    struct started s;
    struct ha_response resp = {0};
    int calls;
    (void)state;
    start_login("", NULL, &s);
    finish(&s, NULL, &resp);
    assert_int_equal(resp.status, 302);
    ha_response_cleanup(&resp);
    calls = W.houston_calls;
    finish(&s, NULL, &resp); /* the same cookie and state again */
    assert_login_error(&resp, "invalid_state");
    assert_int_equal(W.houston_calls, calls);
    ha_response_cleanup(&resp);
}

static void test_state_checks(void **state)
{
    struct started a, b;
    struct ha_response resp = {0};
    (void)state;
    start_login("", NULL, &a);
    start_login("", NULL, &b);
    /* a's cookie with b's state: no cookie of that name is presented. */
    finish(&a, b.state, &resp);
    assert_login_error(&resp, "invalid_state");
    ha_response_cleanup(&resp);
    finish(&a, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &resp);
    assert_login_error(&resp, "invalid_state");
    ha_response_cleanup(&resp);
    /* Expired: past the 600 s TTL. */
    W.now += 601;
    finish(&a, NULL, &resp);
    assert_login_error(&resp, "state_expired");
    W.now -= 601;
    ha_response_cleanup(&resp);
}

static void test_nonce_and_tokens(void **state)
{
    struct started s;
    struct ha_response resp = {0};
    json_t *saved;
    (void)state;
    start_login("", NULL, &s);
    W.nonce = "wrong";
    finish(&s, NULL, &resp);
    W.nonce = NULL;
    assert_login_error(&resp, "invalid_id_token");
    ha_response_cleanup(&resp);

    start_login("", NULL, &s);
    saved = W.at_claims;
    W.at_claims = base_claims(); /* aud is the client id only, not astronomer-ee */
    finish(&s, NULL, &resp);
    json_decref(W.at_claims);
    W.at_claims = saved;
    assert_login_error(&resp, "invalid_access_token");
    ha_response_cleanup(&resp);

    start_login("", NULL, &s);
    W.token_status = 500;
    finish(&s, NULL, &resp);
    W.token_status = 200;
    assert_login_error(&resp, "token_exchange_failed");
    ha_response_cleanup(&resp);
}

static void test_houston_location_refused(void **state)
{
    struct started s;
    struct ha_response resp = {0};
    (void)state;
    start_login("", NULL, &s);
    W.houston_location = "https://evil.example.net/oauth";
    finish(&s, NULL, &resp);
    W.houston_location = "https://app.astro.example.com/oauth?strategy=auth0&token=jwt";
    assert_login_error(&resp, "houston_rejected");
    ha_response_cleanup(&resp);
}

static void test_start_refusals(void **state)
{
    const char *bad[] = {"redirect=%2F%2Fevil.com", "redirect=https%3A%2F%2Fevil.com",
                         "provider=google", "extras=%5B1%5D", "integration=a%20b",
                         "redirect=%2Fa&redirect=%2Fb",
                         /* a real connection, but not in allowedConnections: a database
                          * connection would let anyone sign up with any address */
                         "integration=Username-Password-Authentication"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ha_request req;
        struct ha_response resp = {0};
        request(&req, "GET", HA_PATH_START, bad[i], NULL);
        assert_int_equal(call(ha_handle_start, &req, &resp), HA_OK);
        assert_login_error(&resp, "bad_request");
        assert_false(has_cookie(&resp, HA_TXN_COOKIE_PREFIX));
        ha_request_cleanup(&req);
        ha_response_cleanup(&resp);
    }
}

static void test_start_bounds_cookies(void **state)
{
    struct started s[HA_TXN_MAX_COOKIES];
    char jar[HA_MAX_COOKIE_HEADER] = "";
    struct ha_request req;
    struct ha_response resp = {0};
    size_t cleared = 0;
    (void)state;
    for (int i = 0; i < HA_TXN_MAX_COOKIES; i++) {
        W.now += 1;
        start_login("", NULL, &s[i]);
        if (i > 0)
            strcat(jar, "; ");
        strcat(jar, s[i].cookie);
    }
    request(&req, "GET", HA_PATH_START, "", jar);
    assert_int_equal(call(ha_handle_start, &req, &resp), HA_OK);
    for (size_t i = 0; i < resp.set_cookie_count; i++) {
        if (strstr(resp.set_cookies[i], "Max-Age=0") != NULL) {
            char oldest[64];
            snprintf(oldest, sizeof(oldest), "%.*s=", (int)strcspn(s[0].cookie, "="), s[0].cookie);
            assert_true(strncmp(resp.set_cookies[i], oldest, strlen(oldest)) == 0);
            cleared++;
        }
    }
    assert_int_equal(cleared, 1);
    ha_request_cleanup(&req);
    ha_response_cleanup(&resp);
}

/* "a; b" into out (cap bytes), which must hold it. */
static void join(char *out, size_t cap, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    assert_true(na + 2 + nb < cap);
    memcpy(out, a, na);
    memcpy(out + na, "; ", 2);
    memcpy(out + na + 2, b, nb + 1);
}

/* ---- the jar's budget ---- */

/* The worst Cookie header the sidecar's and Houston's cookies make, from the constants. */
static void test_jar_budget_arithmetic(void **state)
{
    const size_t name = strlen(HA_TXN_COOKIE_PREFIX) + HA_TXN_ID_LEN;
    const size_t pair_max = name + 1 + HA_TXN_COOKIE_MAX + 2;
    const size_t by_count = HA_TXN_MAX_COOKIES * pair_max;
    const size_t jar = by_count < HA_TXN_JAR_MAX ? by_count : HA_TXN_JAR_MAX;
    /* Houston's cookie: an RS256 JWT {uuid, iat, nbf, exp} signed with RSA-4096. */
    const char *claims = "{\"uuid\":\"01234567-89ab-cdef-0123-456789abcdef\",\"iat\":"
                         "1800000000,\"nbf\":1800000000,\"exp\":1800086400}";
    const size_t jwt = ha_b64url_encoded_len(strlen("{\"alg\":\"RS256\",\"typ\":\"JWT\"}")) + 1 +
                       ha_b64url_encoded_len(strlen(claims)) + 1 + ha_b64url_encoded_len(512);
    const size_t houston = strlen(HOUSTON_COOKIE) + 1 + jwt + 2;
    (void)state;
    assert_int_equal(pair_max, HA_TXN_PAIR_MAX);
    assert_int_equal(jwt, 852);
    assert_true(houston <= HA_HOUSTON_COOKIE_BUDGET);
    assert_int_equal(jar, 4096);
    print_message("worst Cookie header: %zu (transaction cookies) + %d (Houston's, budget; this "
                  "one %zu) = %d bytes; %zu with a concurrent start's cookie; nginx's line %d\n",
                  jar, HA_HOUSTON_COOKIE_BUDGET, houston, HA_COOKIE_HEADER_BUDGET,
                  (size_t)HA_COOKIE_HEADER_BUDGET + pair_max, HA_NGINX_HEADER_LINE);
    assert_int_equal(jar + HA_HOUSTON_COOKIE_BUDGET, HA_COOKIE_HEADER_BUDGET);
    /* Well under: three quarters of nginx's line at most, and under it even with one cookie
     * more from a start running at the same moment. */
    assert_true(HA_COOKIE_HEADER_BUDGET * 4 <= HA_NGINX_HEADER_LINE * 3);
    assert_true(HA_COOKIE_HEADER_BUDGET + pair_max < HA_NGINX_HEADER_LINE);
    assert_true(HA_COOKIE_HEADER_BUDGET + pair_max <= HA_MAX_COOKIE_HEADER);
    /* A new cookie always fits once the others are cleared. */
    assert_true(pair_max <= HA_TXN_JAR_MAX);
}

#define JAR_MAX 64

/* A browser's cookie jar for houston.<base>: what Set-Cookie lines leave in it. */
struct jar {
    char name[JAR_MAX][64];
    char value[JAR_MAX][HA_TXN_COOKIE_MAX + 1];
    size_t n;
};

static void jar_apply(struct jar *j, const struct ha_response *resp)
{
    for (size_t i = 0; i < resp->set_cookie_count; i++) {
        const char *line = resp->set_cookies[i], *eq = strchr(line, '=');
        size_t nl = (size_t)(eq - line), vl = strcspn(eq + 1, ";"), k;
        assert_true(nl < 64 && vl <= HA_TXN_COOKIE_MAX);
        for (k = 0; k < j->n && !(strlen(j->name[k]) == nl && strncmp(j->name[k], line, nl) == 0);
             k++)
            ;
        if (strstr(line, "Max-Age=0") != NULL) {
            if (k < j->n) {
                j->n--;
                memcpy(j->name[k], j->name[j->n], sizeof(j->name[k]));
                memcpy(j->value[k], j->value[j->n], sizeof(j->value[k]));
            }
            continue;
        }
        if (k == j->n) {
            assert_true(j->n < JAR_MAX);
            j->n++;
        }
        memcpy(j->name[k], line, nl);
        j->name[k][nl] = '\0';
        memcpy(j->value[k], eq + 1, vl);
        j->value[k][vl] = '\0';
    }
}

/* The Cookie header the browser sends; its size with "; " after each pair. */
static size_t jar_header(const struct jar *j, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t k = 0; k < j->n; k++) {
        int w = snprintf(out + o, cap - o, "%s%s=%s", k > 0 ? "; " : "", j->name[k], j->value[k]);
        assert_true(w > 0 && (size_t)w < cap - o);
        o += (size_t)w;
    }
    return j->n > 0 ? o + 2 : 0;
}

/* A browser starts login after login, deep links (800-byte redirect and extras) and plain
 * ones mixed: every start answers 302 to the tenant with its own cookie first, the jar never
 * holds more than HA_TXN_MAX_COOKIES cookies or HA_TXN_JAR_MAX bytes, and the newest login
 * completes. Before the budget, the fourth deep-link start left 9.9 KB. */
static void test_jar_budget_browser(void **state)
{
    static struct jar j;
    static char header[HA_MAX_COOKIE_HEADER * 2];
    char big[1024], query[4096];
    struct started s;
    struct ha_response resp = {0};
    size_t largest = 0;
    (void)state;
    memset(big, 'a', 797);
    big[797] = '\0';
    snprintf(query, sizeof(query),
             "redirect=%%2Fw%%2F%s&extras=%%7B%%22p%%22%%3A%%22%.791s%%22%%7D", big, big);
    j.n = 0;
    for (int i = 0; i < 24; i++) {
        struct ha_request req;
        size_t size = jar_header(&j, header, sizeof(header));
        largest = size > largest ? size : largest;
        assert_true(size <= HA_TXN_JAR_MAX);
        W.now += 1;
        request(&req, "GET", HA_PATH_START, i % 3 == 2 ? "" : query, j.n > 0 ? header : NULL);
        assert_int_equal(call(ha_handle_start, &req, &resp), HA_OK);
        assert_int_equal(resp.status, 302);
        assert_true(strncmp(resp.location, "https://tenant.example.com/authorize?", 37) == 0);
        assert_null(strstr(resp.set_cookies[0], "Max-Age=0"));
        jar_apply(&j, &resp);
        assert_true(j.n <= HA_TXN_MAX_COOKIES);
        ha_request_cleanup(&req);
        ha_response_cleanup(&resp);
    }
    largest = jar_header(&j, header, sizeof(header)) > largest
                  ? jar_header(&j, header, sizeof(header))
                  : largest;
    print_message("24 starts: the largest transaction-cookie share of a Cookie header was %zu "
                  "bytes (budget %d), %zu cookies held\n",
                  largest, HA_TXN_JAR_MAX, j.n);
    assert_true(largest <= HA_TXN_JAR_MAX);
    /* The newest login (a deep link) completes with the jar as the browser holds it. */
    start_login(query, header, &s);
    {
        static char both[sizeof(s.cookie)];
        join(both, sizeof(both), s.cookie, header);
        memcpy(s.cookie, both, strlen(both) + 1);
    }
    finish(&s, NULL, &resp);
    assert_int_equal(resp.status, 302);
    assert_string_equal(resp.location, W.houston_location);
    ha_response_cleanup(&resp);
}

/* Cookies the sidecar cannot use (names that are not HTTP tokens, names of another shape
 * under the transaction prefix, with or without it) are ignored by every endpoint: start
 * still answers 302 to the tenant and clears none of them, the login still completes, and
 * logout still answers 302. Issue 13 item 4: "ha_txn_(1)=x; ha_txn_b=2; ..." made every
 * start a 500, because eviction copied the names and failed to format them. */
static void test_unusable_cookies_ignored(void **state)
{
    static const char *const names[] = {
        "(1)", "b", "c", "d", "e", "f", "a b", "x\\y", "AAAAAAAAAAAAAAA!", "AAAAAAAAAAAAAAAAA"};
    const char *prefixes[] = {"ha_txn_", HA_TXN_COOKIE_PREFIX};
    (void)state;
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        char jar[1024] = "", withtxn[HA_MAX_COOKIE_HEADER];
        struct started s;
        struct ha_request req;
        struct ha_response resp = {0};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            size_t o = strlen(jar);
            snprintf(jar + o, sizeof(jar) - o, "%s%s%s=%zu", i > 0 ? "; " : "", prefixes[p],
                     names[i], i);
        }
        start_login("", jar, &s);
        request(&req, "GET", HA_PATH_START, "", jar);
        assert_int_equal(call(ha_handle_start, &req, &resp), HA_OK);
        assert_int_equal(resp.status, 302);
        assert_int_equal(resp.set_cookie_count, 1); /* its own cookie, nothing cleared */
        ha_request_cleanup(&req);
        ha_response_cleanup(&resp);
        join(withtxn, sizeof(withtxn), jar, s.cookie);
        memcpy(s.cookie, withtxn, strlen(withtxn) + 1);
        finish(&s, NULL, &resp);
        assert_int_equal(resp.status, 302);
        assert_string_equal(resp.location, W.houston_location);
        ha_response_cleanup(&resp);
        request(&req, "GET", HA_PATH_LOGOUT, NULL, jar);
        assert_int_equal(call(ha_handle_logout, &req, &resp), HA_OK);
        assert_int_equal(resp.status, 302);
        ha_request_cleanup(&req);
        ha_response_cleanup(&resp);
    }
}

/* Cookie tossing: a sibling under *.<base> can set "ha_txn_<id>" for .<base> but never a
 * "__Host-" cookie. The sidecar reads only the prefixed name, so a sealed value presented
 * under the unprefixed name (or any other) opens nothing and reaches neither the tenant nor
 * Houston. */
static void test_unprefixed_cookie_ignored(void **state)
{
    const size_t plen = strlen(HA_COOKIE_HOST_PREFIX);
    struct started s;
    struct ha_response resp = {0};
    int calls = W.houston_calls;
    char renamed[sizeof(s.cookie)];
    (void)state;
    start_login("", NULL, &s);
    assert_true(strncmp(s.cookie, HA_COOKIE_HOST_PREFIX, plen) == 0);
    memcpy(renamed, s.cookie + plen, strlen(s.cookie + plen) + 1); /* "ha_txn_<id>=..." */
    memcpy(s.cookie, renamed, strlen(renamed) + 1);
    finish(&s, NULL, &resp);
    assert_login_error(&resp, "invalid_state");
    assert_int_equal(W.houston_calls, calls);
    ha_response_cleanup(&resp);
    /* The same value under the lower-case prefix, which a browser may hold from a sibling. */
    memcpy(s.cookie, "__host-", plen);
    memcpy(s.cookie + plen, renamed, strlen(renamed) + 1);
    finish(&s, NULL, &resp);
    assert_login_error(&resp, "invalid_state");
    assert_int_equal(W.houston_calls, calls);
    ha_response_cleanup(&resp);
}

static void test_tenant_error(void **state)
{
    struct started s;
    struct ha_request req;
    struct ha_response resp = {0};
    char query[256];
    (void)state;
    start_login("", NULL, &s);
    snprintf(query, sizeof(query), "error=access_denied&error_description=nope&state=%s", s.state);
    request(&req, "GET", HA_PATH_REDIRECT, query, s.cookie);
    assert_int_equal(call_redirect(&req, &resp), HA_OK);
    assert_login_error(&resp, "access_denied");
    /* The transaction cookie is cleared on the way out. */
    assert_true(has_cookie(&resp, HA_TXN_COOKIE_PREFIX));
    assert_non_null(strstr(resp.set_cookies[0], "Max-Age=0"));
    ha_request_cleanup(&req);
    ha_response_cleanup(&resp);
}

/* The lines the log holds since mark (a byte offset), with how many mention needle. */
static size_t log_lines(FILE *f, long mark, const char *needle, size_t *with)
{
    char line[4096];
    size_t n = 0;
    *with = 0;
    fflush(f);
    assert_int_equal(fseek(f, mark, SEEK_SET), 0);
    while (fgets(line, sizeof(line), f) != NULL) {
        n++;
        if (strstr(line, needle) != NULL)
            (*with)++;
    }
    return n;
}

/* A failed login is logged once, where it is understood: the handler writes one
 * "login_failed" line with the code, the reason and the detail (the tenant's error code, a
 * peer's error), and the modules it called say why through their reasons instead of logging
 * it again. A tenant's error and a refused Houston answer used to write two lines each. */
static void test_failed_login_logged_once(void **state)
{
    FILE *f = tmpfile();
    struct started s;
    struct ha_request req;
    struct ha_response resp = {0};
    char query[256];
    size_t with;
    long mark;
    (void)state;

    assert_non_null(f);
    ha_log_set_stream(f);
    ha_log_set_level(HA_LOG_INFO);

    start_login("", NULL, &s);
    mark = ftell(f);
    snprintf(query, sizeof(query), "error=access_denied&error_description=nope&state=%s", s.state);
    request(&req, "GET", HA_PATH_REDIRECT, query, s.cookie);
    assert_int_equal(call_redirect(&req, &resp), HA_OK);
    assert_login_error(&resp, "access_denied");
    assert_int_equal(log_lines(f, mark, "\"event\":\"login_failed\"", &with), 1);
    assert_int_equal(with, 1);
    log_lines(f, mark, "\"tenant_error\":\"access_denied\"", &with);
    assert_int_equal(with, 1);
    ha_request_cleanup(&req);
    ha_response_cleanup(&resp);

    start_login("", NULL, &s);
    W.houston_location = "https://evil.example.net/oauth";
    fseek(f, 0, SEEK_END);
    mark = ftell(f);
    finish(&s, NULL, &resp);
    W.houston_location = "https://app.astro.example.com/oauth?strategy=auth0&token=jwt";
    assert_login_error(&resp, "houston_rejected");
    assert_int_equal(log_lines(f, mark, "\"event\":\"login_failed\"", &with), 1);
    assert_int_equal(with, 1);
    ha_response_cleanup(&resp);

    start_login("", NULL, &s);
    W.token_status = 500;
    fseek(f, 0, SEEK_END);
    mark = ftell(f);
    finish(&s, NULL, &resp);
    W.token_status = 200;
    assert_login_error(&resp, "token_exchange_failed");
    assert_int_equal(log_lines(f, mark, "\"event\":\"login_failed\"", &with), 1);
    assert_int_equal(with, 1);
    /* The line names the code the person saw, and the peer's answer in a field of its own. */
    log_lines(f, mark, "\"error\":\"token_exchange_failed\"", &with);
    assert_int_equal(with, 1);
    log_lines(f, mark, "\"peer_error\":", &with);
    assert_int_equal(with, 1);
    ha_response_cleanup(&resp);

    ha_log_set_stream(NULL);
    fclose(f);
}

static void test_logout(void **state)
{
    struct ha_request req;
    struct ha_response resp = {0};
    (void)state;
    request(&req, "GET", HA_PATH_LOGOUT, NULL, NULL);
    assert_int_equal(call(ha_handle_logout, &req, &resp), HA_OK);
    assert_int_equal(resp.status, 302);
    assert_string_equal(resp.location,
                        "https://tenant.example.com/v2/logout?client_id=client-1&returnTo="
                        "https%3A%2F%2Fapp.astro.example.com%2Flogout");
    assert_true(has_cookie(&resp, HOUSTON_COOKIE "=;"));
    assert_non_null(strstr(resp.set_cookies[0], "Domain=.astro.example.com"));
    assert_non_null(strstr(resp.set_cookies[0], "Max-Age=0"));
    ha_request_cleanup(&req);
    ha_response_cleanup(&resp);

    /* Transaction cookies come with Path=/ and are cleared after Houston's, once per name;
     * cookies that are not the sidecar's stay. */
    request(&req, "GET", HA_PATH_LOGOUT, NULL,
            "__Host-ha_txn_AAAAAAAAAAAAAAAA=v; __Host-ha_txn_(1)=x; ha_txn_BBBBBBBBBBBBBBBB=y; "
            "other=1; __Host-ha_txn_AAAAAAAAAAAAAAAA=w; __Host-ha_txn_CCCCCCCCCCCCCCCC=z");
    assert_int_equal(call(ha_handle_logout, &req, &resp), HA_OK);
    assert_int_equal(resp.status, 302);
    assert_int_equal(resp.set_cookie_count, 3);
    assert_true(strncmp(resp.set_cookies[0], HOUSTON_COOKIE "=;", strlen(HOUSTON_COOKIE) + 2) == 0);
    assert_string_equal(resp.set_cookies[1],
                        "__Host-ha_txn_AAAAAAAAAAAAAAAA=; Path=/; Max-Age=0; Expires=Thu, 01 Jan "
                        "1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax");
    assert_true(strncmp(resp.set_cookies[2], "__Host-ha_txn_CCCCCCCCCCCCCCCC=;", 32) == 0);
    ha_request_cleanup(&req);
    ha_response_cleanup(&resp);

    request(&req, "GET", HA_PATH_LOGOUT, "returnTo=%2Fsigned-out", NULL);
    assert_int_equal(call(ha_handle_logout, &req, &resp), HA_OK);
    assert_non_null(
        strstr(resp.location, "returnTo=https%3A%2F%2Fapp.astro.example.com%2Fsigned-out"));
    ha_request_cleanup(&req);
    ha_response_cleanup(&resp);

    request(&req, "GET", HA_PATH_LOGOUT, "returnTo=https%3A%2F%2Fevil.com%2F", NULL);
    assert_int_equal(call(ha_handle_logout, &req, &resp), HA_OK);
    assert_int_equal(resp.status, 400);
    assert_null(resp.location);
    ha_request_cleanup(&req);
    ha_response_cleanup(&resp);
}

static struct ha_config *load_with(const char *cookie_secret, const char *tenant)
{
    char *argv[] = {"houston-auth", NULL};
    char cs[128], tn[128];
    char *envp[] = {"GLOBAL_BASE_DOMAIN=astro.example.com",
                    "AUTH0_CLIENT_ID=" CLIENT,
                    tn,
                    "AUTH0_CLIENT_SECRET=secret",
                    "AUTH_SIDECAR_LOG_LEVEL=error",
                    cs,
                    NULL};
    enum ha_config_action action;
    struct ha_config *cfg = NULL;
    char err[256];
    snprintf(cs, sizeof(cs), "AUTH_SIDECAR_COOKIE_SECRET=%s", cookie_secret);
    snprintf(tn, sizeof(tn), "AUTH0_BASE_DOMAIN=%s", tenant);
    assert_int_equal(ha_config_load(1, argv, envp, &cfg, &action, err, sizeof(err)), HA_OK);
    return cfg;
}

/* SIGHUP's reload: a cookie-secret rotation keeps in-flight logins working for one
 * transaction lifetime; a key that needs a restart is refused and changes nothing. */
static void test_reload(void **state)
{
    struct started s;
    struct ha_response resp = {0};
    const struct ha_view *before;
    const char *reason = NULL;
    unsigned char keys[HA_MAX_OPEN_KEYS][HA_COOKIE_KEY_LEN];
    (void)state;
    start_login("", NULL, &s); /* sealed with the first secret */
    assert_int_equal(ha_app_reload(&W.app,
                                   load_with("a-brand-new-cookie-secret-for-rotation-0001",
                                             "tenant.example.com"),
                                   &reason),
                     HA_OK);
    finish(&s, NULL, &resp);
    assert_int_equal(resp.status, 302);
    assert_string_equal(resp.location, W.houston_location);
    ha_response_cleanup(&resp);
    /* The previous key is offered for one TTL after the reload, then dropped. */
    assert_int_equal(ha_app_cookie_keys(ha_app_view(&W.app), W.now, keys), 2);
    assert_int_equal(ha_app_cookie_keys(ha_app_view(&W.app), W.now + 600, keys), 1);

    before = ha_app_view(&W.app);
    assert_int_equal(ha_app_reload(&W.app,
                                   load_with("a-brand-new-cookie-secret-for-rotation-0001",
                                             "other-tenant.example.com"),
                                   &reason),
                     HA_ERR_CONFIG);
    assert_string_equal(reason, "auth0.baseDomain");
    assert_ptr_equal(ha_app_view(&W.app), before);
}

/* Reloads the standard configuration plus up to two "KEY=value" (the same cookie secret). */
static void reload_with2(const char *extra, const char *extra2)
{
    char *argv[] = {"houston-auth", NULL};
    char *envp[] = {"GLOBAL_BASE_DOMAIN=astro.example.com",
                    "AUTH0_CLIENT_ID=" CLIENT,
                    "AUTH0_BASE_DOMAIN=tenant.example.com",
                    "AUTH0_CLIENT_SECRET=secret",
                    "AUTH_SIDECAR_LOG_LEVEL=error",
                    "AUTH_SIDECAR_COOKIE_SECRET=a-brand-new-cookie-secret-for-rotation-0001",
                    (char *)extra,
                    (char *)extra2,
                    NULL};
    enum ha_config_action action;
    struct ha_config *cfg = NULL;
    const char *reason = NULL;
    char err[256];
    assert_int_equal(ha_config_load(1, argv, envp, &cfg, &action, err, sizeof(err)), HA_OK);
    assert_int_equal(ha_app_reload(&W.app, cfg, &reason), HA_OK);
}

static void reload_with(const char *extra)
{
    reload_with2(extra, NULL);
}

/* One login whose ID token carries claim=value (NULL: without the claim); returns the
 * response's login error code, "" on success. */
static const char *login_with_claim(const char *claim, json_t *value, struct ha_response *resp)
{
    struct started s;
    json_t *saved = json_deep_copy(W.id_claims);
    if (value != NULL)
        json_object_set_new(W.id_claims, claim, value);
    else
        json_object_del(W.id_claims, claim);
    start_login("", NULL, &s);
    finish(&s, NULL, resp);
    json_decref(W.id_claims);
    W.id_claims = saved;
    if (resp->location != NULL &&
        strncmp(resp->location, "https://app.astro.example.com/login?error=", 42) == 0)
        return resp->location + 42;
    return "";
}

/* Houston finds its user by email: an unverified one never reaches it (account takeover
 * through a connection that lets anyone sign up with any address). */
static void test_email_must_be_verified(void **state)
{
    struct {
        const char *claim;
        json_t *value;
    } bad[] = {{"email_verified", json_false()},
               {"email_verified", NULL},
               {"email_verified", json_string("true")},
               {"email_verified", json_integer(1)},
               {"email", NULL},
               {"email", json_string("")}};
    struct ha_response resp = {0};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int calls = W.houston_calls;
        assert_string_equal(login_with_claim(bad[i].claim, bad[i].value, &resp),
                            "email_not_verified");
        assert_login_error(&resp, "email_not_verified");
        assert_int_equal(W.houston_calls, calls);
        ha_response_cleanup(&resp);
    }
    /* The explicit opt-out lets an unverified email through, never a missing one. */
    reload_with("AUTH_SIDECAR_INSECURE_ALLOW_UNVERIFIED_EMAIL=true");
    assert_string_equal(login_with_claim("email_verified", json_false(), &resp), "");
    assert_true(has_cookie(&resp, HOUSTON_COOKIE "=jwt"));
    ha_response_cleanup(&resp);
    assert_string_equal(login_with_claim("email", NULL, &resp), "email_not_verified");
    ha_response_cleanup(&resp);
    reload_with(NULL);
    assert_string_equal(login_with_claim("email_verified", json_true(), &resp), "");
    ha_response_cleanup(&resp);
}

/* An allowed connection goes to the tenant as connection=; "self" as none. */
static void test_start_connections(void **state)
{
    struct started s;
    (void)state;
    start_login("integration=google-oauth2", NULL, &s);
    start_login("integration=github", NULL, &s);
    reload_with("AUTH_SIDECAR_ALLOWED_CONNECTIONS=self, corp-saml");
    start_login("integration=corp-saml", NULL, &s);
    {
        struct ha_request req;
        struct ha_response resp = {0};
        request(&req, "GET", HA_PATH_START, "integration=github", NULL);
        assert_int_equal(call(ha_handle_start, &req, &resp), HA_OK);
        assert_login_error(&resp, "bad_request");
        assert_int_equal(resp.set_cookie_count, 0);
        ha_request_cleanup(&req);
        ha_response_cleanup(&resp);
    }
    reload_with(NULL);
}

/* Logins from peer (and X-Forwarded-For xff) until one is refused or n are done; returns how
 * many reached the tenant's token endpoint. */
static int exchanges_from(const char *peer, const char *xff, int n)
{
    int before = W.token_calls;
    for (int i = 0; i < n; i++) {
        struct started s;
        struct ha_request req;
        struct ha_response resp = {0};
        char query[256];
        start_login("", NULL, &s);
        snprintf(query, sizeof(query), "code=junk&state=%s", s.state);
        snprintf(W.last_nonce, sizeof(W.last_nonce), "%s", s.nonce);
        request(&req, "GET", HA_PATH_REDIRECT, query, s.cookie);
        snprintf(req.peer, sizeof(req.peer), "%s", peer);
        req.forwarded_for = xff != NULL ? strdup(xff) : NULL;
        assert_int_equal(call_redirect(&req, &resp), HA_OK);
        ha_request_cleanup(&req);
        if (resp.location != NULL && strstr(resp.location, "error=rate_limited") != NULL) {
            assert_false(has_cookie(&resp, HOUSTON_COOKIE "="));
            ha_response_cleanup(&resp);
            break;
        }
        ha_response_cleanup(&resp);
    }
    return W.token_calls - before;
}

/* A junk code per start costs the tenant a token request: bounded per client and in all. */
static void test_exchange_rate_limits(void **state)
{
    (void)state;
    reload_with("AUTH_SIDECAR_TOKEN_EXCHANGES_PER_CLIENT_PER_MINUTE=3");
    assert_int_equal(exchanges_from("203.0.113.7", NULL, 10), 3);
    assert_int_equal(exchanges_from("203.0.113.7", NULL, 10), 0);
    assert_int_equal(exchanges_from("203.0.113.8", NULL, 10), 3);
    /* X-Forwarded-For counts only from a trusted proxy, and only its rightmost hop. */
    assert_int_equal(exchanges_from("203.0.113.8", "198.51.100.1", 10), 0);
    reload_with2("AUTH_SIDECAR_TOKEN_EXCHANGES_PER_CLIENT_PER_MINUTE=3",
                 "AUTH_SIDECAR_TRUSTED_PROXIES=10.0.0.0/8");
    /* (a reload keeps the buckets: 203.0.113.8 is still spent) */
    assert_int_equal(exchanges_from("10.1.2.3", "203.0.113.8", 10), 0);
    assert_int_equal(exchanges_from("10.1.2.3", "203.0.113.8, 198.51.100.9", 10), 3);
    assert_int_equal(exchanges_from("10.1.2.3", "198.51.100.9, 10.9.9.9", 10), 0);
    /* The whole process: 1 a second, a burst of 2, whoever asks. */
    reload_with("AUTH_SIDECAR_TOKEN_EXCHANGES_PER_SECOND=1");
    assert_int_equal(exchanges_from("192.0.2.1", NULL, 10), 2);
    assert_int_equal(exchanges_from("192.0.2.2", NULL, 10), 0);
    reload_with(NULL);
}

/* Two rotations within one transaction lifetime: a login started under the first secret
 * still completes (the second reload used to drop the key the first had kept). A view a
 * reload replaced lives while a request holds it, and is freed when it lets go. */
static void test_reload_twice_and_view_lifetime(void **state)
{
    struct started s;
    struct ha_response resp = {0};
    const struct ha_view *held;
    const char *reason = NULL;
    unsigned char keys[HA_MAX_OPEN_KEYS][HA_COOKIE_KEY_LEN];
    (void)state;
    W.now += 1000; /* keys earlier tests retired have expired */
    reload_with(NULL);
    assert_int_equal(ha_app_cookie_keys(ha_app_view(&W.app), W.now, keys), 1);
    start_login("", NULL, &s); /* sealed with secret 1 */
    W.now += 100;
    assert_int_equal(ha_app_reload(&W.app,
                                   load_with("second-cookie-secret-for-rotation-000000002",
                                             "tenant.example.com"),
                                   &reason),
                     HA_OK);
    held = ha_app_view_acquire(&W.app); /* a request in flight across the next reload */
    W.now += 100;
    assert_int_equal(ha_app_reload(&W.app,
                                   load_with("third-cookie-secret-for-rotation-0000000003",
                                             "tenant.example.com"),
                                   &reason),
                     HA_OK);
    assert_int_equal(ha_app_cookie_keys(ha_app_view(&W.app), W.now, keys), 3);
    finish(&s, NULL, &resp);
    assert_int_equal(resp.status, 302);
    assert_string_equal(resp.location, W.houston_location);
    ha_response_cleanup(&resp);
    /* The replaced view is still whole for its holder, then goes. */
    assert_non_null(held->cfg->client_id);
    assert_ptr_equal(W.app.stale, held);
    ha_app_view_release(&W.app, held);
    assert_null(W.app.stale);
    /* Secret 1 retired at the first reload: it opens for one lifetime from then. */
    assert_int_equal(ha_app_cookie_keys(ha_app_view(&W.app), W.now + 499, keys), 3);
    assert_int_equal(ha_app_cookie_keys(ha_app_view(&W.app), W.now + 500, keys), 2);
    assert_int_equal(ha_app_cookie_keys(ha_app_view(&W.app), W.now + 600, keys), 1);
    W.now -= 1200;
    reload_with(NULL);
}

/* A SIGHUP while a login waits on the tenant: the whole request keeps the configuration it
 * started with (redirect_uri in the token request, the state's origin for Houston); the next
 * request sees the new one. */
static void test_reload_mid_request(void **state)
{
    struct started s;
    struct ha_response resp = {0};
    struct ha_kvlist form = {0};
    json_t *st;
    (void)state;
    reload_with(NULL);
    start_login("", NULL, &s);
    W.reload_in_exchange = "AUTH_SIDECAR_PUBLIC_URL=https://login.astro.example.com";
    finish(&s, NULL, &resp);
    assert_null(W.reload_in_exchange); /* the reload happened inside the exchange */
    assert_int_equal(resp.status, 302);
    assert_string_equal(resp.location, W.houston_location);
    assert_int_equal(ha_url_parse_query(W.houston_form, strlen(W.houston_form), &form), HA_OK);
    st = json_loads(ha_kvlist_get(&form, "state"), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(st, "origin")),
                        "https://houston.astro.example.com/v1/oauth/callback");
    json_decref(st);
    ha_kvlist_cleanup(&form);
    ha_response_cleanup(&resp);
    assert_non_null(strstr(W.token_form, "redirect_uri=https%3A%2F%2Fhouston.astro.example.com"));
    /* The next request runs on the new configuration. */
    {
        struct ha_request req;
        request(&req, "GET", HA_PATH_START, "", NULL);
        assert_int_equal(call(ha_handle_start, &req, &resp), HA_OK);
        assert_non_null(
            strstr(resp.location, "redirect_uri=https%3A%2F%2Flogin.astro.example.com%2Fv1"));
        ha_request_cleanup(&req);
        ha_response_cleanup(&resp);
    }
    reload_with(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_succeeds),
        cmocka_unit_test(test_state_single_use),
        cmocka_unit_test(test_state_checks),
        cmocka_unit_test(test_nonce_and_tokens),
        cmocka_unit_test(test_houston_location_refused),
        cmocka_unit_test(test_start_refusals),
        cmocka_unit_test(test_start_bounds_cookies),
        cmocka_unit_test(test_jar_budget_arithmetic),
        cmocka_unit_test(test_jar_budget_browser),
        cmocka_unit_test(test_unusable_cookies_ignored),
        cmocka_unit_test(test_unprefixed_cookie_ignored),
        cmocka_unit_test(test_tenant_error),
        cmocka_unit_test(test_failed_login_logged_once),
        cmocka_unit_test(test_logout),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_reload_twice_and_view_lifetime),
        cmocka_unit_test(test_reload_mid_request),
        cmocka_unit_test(test_email_must_be_verified),
        cmocka_unit_test(test_start_connections),
        cmocka_unit_test(test_exchange_rate_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
