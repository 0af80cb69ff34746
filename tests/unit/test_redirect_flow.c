/* /v1/oauth/redirect as the state machine it is: a deferred fake transport keeps each
 * outbound call (token exchange, JWKS refetch, Houston callback) pending until the test
 * answers it with a chosen outcome, so every step's success, failure and timeout is driven
 * one at a time. Between steps the tests assert what the browser sees (status, Location,
 * Set-Cookie, no-store), what each peer received, and that the reply runs once, only after
 * the login's last call. No sockets, no event loop, no synchronous HTTP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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
#include "houston_auth/log.h"
#include "houston_auth/proto.h"
#include "houston_auth/router.h"
#include "houston_auth/url.h"

#define ISSUER "https://tenant.example.com/"
#define CLIENT "client-1"
#define SECRET "s3cret-value"
#define CODE "the-code-123"
#define TOKEN_URL "https://tenant.example.com/oauth/token"
#define JWKS_URL "https://tenant.example.com/jwks"
#define HOUSTON_URL "http://127.0.0.1:8871/v1/oauth/callback"
#define REDIRECT_URI "https://houston.astro.example.com/v1/oauth/redirect"
#define HOUSTON_COOKIE "astronomer_astro_example_com_auth"
#define HOUSTON_SET_COOKIE HOUSTON_COOKIE "=jwt; Domain=.astro.example.com; Path=/; Secure"
#define HOUSTON_LOCATION "https://app.astro.example.com/oauth?strategy=auth0&token=jwt"
#define LOGIN_URL "https://app.astro.example.com/login?error="
#define MAX_PENDING 8
#define MAX_RUNS 4

/* One outbound call the handler started, copied as the transport copies it. */
struct pending {
    char *method, *url, *body, *content_type, *user, *pass, *request_id;
    bool to_tenant;
    ha_http_done_fn done;
    void *ctx;
};

struct fake {
    struct pending q[MAX_PENDING]; /* in start order */
    size_t n;
    int token_calls, jwks_calls, houston_calls, other_calls; /* ever started */
    const char *fail_at_once; /* calls to this URL fail before start returns */
};

/* One login: its transaction, its redirect request, and what the reply saw. */
struct run {
    char cookie[HA_MAX_COOKIE_HEADER]; /* "<txn name>=<sealed>" */
    char name[128];                    /* the transaction cookie's name */
    char state[64], nonce[64], challenge[64];
    struct ha_request req;
    struct ha_response resp;
    char *id_token, *access_token; /* what the tenant answered */
    int replies;
    int own_pending_at_reply; /* this login's calls still pending when its reply ran */
};

static struct {
    struct ha_app app;
    struct fake t;
    struct run runs[MAX_RUNS];
    long now;
} W;

static EVP_PKEY *K1, *K2; /* k1 is in the key set; k2 is the tenant's next key */
static char JWKS_K1[2048], JWKS_K12[4096];

static long fake_now(void *ctx)
{
    (void)ctx;
    return W.now;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void pending_free(struct pending *p)
{
    free(p->method);
    free(p->url);
    free(p->body);
    free(p->content_type);
    free(p->user);
    free(p->pass);
    free(p->request_id);
}

static void fake_start(void *impl, const struct ha_http_request *req, ha_http_done_fn done,
                       void *ctx)
{
    struct fake *t = impl;
    struct ha_http_response empty = {0};
    struct pending *p;

    if (strcmp(req->url, TOKEN_URL) == 0)
        t->token_calls++;
    else if (strcmp(req->url, JWKS_URL) == 0)
        t->jwks_calls++;
    else if (strcmp(req->url, HOUSTON_URL) == 0)
        t->houston_calls++;
    else
        t->other_calls++;
    if (t->fail_at_once != NULL && strcmp(req->url, t->fail_at_once) == 0) {
        done(ctx, HA_ERR_IO, &empty); /* as a transport that cannot start the request */
        return;
    }
    assert_true(t->n < MAX_PENDING);
    p = &t->q[t->n++];
    memset(p, 0, sizeof(*p));
    p->method = dup_or_null(req->method);
    p->url = dup_or_null(req->url);
    p->body = req->body != NULL ? strndup(req->body, req->body_len) : NULL;
    p->content_type = dup_or_null(req->content_type);
    p->user = dup_or_null(req->basic_user);
    p->pass = dup_or_null(req->basic_pass);
    p->request_id = dup_or_null(req->request_id);
    p->to_tenant = req->to_tenant;
    p->done = done;
    p->ctx = ctx;
}

/* Answers pending call i: err, or (HA_OK) a response with status, body, Location and one
 * Set-Cookie line. The call leaves the queue before its callback runs. */
static void complete(size_t i, enum ha_err err, long status, const char *body, const char *location,
                     const char *set_cookie)
{
    struct ha_http_response resp = {0};
    struct pending p;

    assert_true(i < W.t.n);
    p = W.t.q[i];
    memmove(&W.t.q[i], &W.t.q[i + 1], (W.t.n - i - 1) * sizeof(p));
    W.t.n--;
    if (err == HA_OK) {
        resp.status = status;
        resp.body = strdup(body != NULL ? body : "");
        resp.body_len = strlen(resp.body);
        resp.location = dup_or_null(location);
        if (set_cookie != NULL) {
            resp.set_cookies[0] = strdup(set_cookie);
            resp.set_cookie_count = 1;
        }
    }
    p.done(p.ctx, err, &resp);
    pending_free(&p);
}

static void fail_with(size_t i, enum ha_err err)
{
    complete(i, err, 0, NULL, NULL, NULL);
}

/* Index of the nth pending call to url. */
static size_t find_pending(const char *url, int nth)
{
    for (size_t i = 0; i < W.t.n; i++) {
        if (strcmp(W.t.q[i].url, url) == 0 && nth-- == 0)
            return i;
    }
    fail_msg("no pending call to %s", url);
    return 0;
}

/* The one call pending, which must be method url. */
static const struct pending *only_pending(const char *method, const char *url)
{
    assert_int_equal(W.t.n, 1);
    assert_string_equal(W.t.q[0].method, method);
    assert_string_equal(W.t.q[0].url, url);
    return &W.t.q[0];
}

static enum ha_err no_sync_http(void *ctx, const struct ha_http_request *req,
                                struct ha_http_response *resp)
{
    (void)ctx;
    (void)resp;
    fail_msg("synchronous HTTP to %s from the asynchronous handler", req->url);
    return HA_ERR_IO;
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

static void jwk(EVP_PKEY *k, const char *kid, char *out, size_t len)
{
    char *n = b64_bn(k, OSSL_PKEY_PARAM_RSA_N), *e = b64_bn(k, OSSL_PKEY_PARAM_RSA_E);
    snprintf(out, len,
             "{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"%s\",\"n\":\"%s\","
             "\"e\":\"%s\"}",
             kid, n, e);
    free(n);
    free(e);
}

static char *b64(const void *data, size_t len)
{
    char *out = NULL;
    assert_int_equal(ha_b64url_encode(data, len, &out), HA_OK);
    return out;
}

/* A compact RS256 JWS of claims under key, with kid in its header. */
static char *sign(EVP_PKEY *key, const char *kid, json_t *claims)
{
    json_t *hdr = json_pack("{s:s,s:s,s:s}", "alg", "RS256", "typ", "JWT", "kid", kid);
    char *h = json_dumps(hdr, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
    char *hb = b64(h, strlen(h)), *cb = b64(c, strlen(c)), *sb, *input, *out;
    unsigned char sig[512];
    size_t siglen = sizeof(sig), n = strlen(hb) + strlen(cb) + 2;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    input = malloc(n);
    snprintf(input, n, "%s.%s", hb, cb);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, strlen(input)), 1);
    sb = b64(sig, siglen);
    n = strlen(input) + strlen(sb) + 2;
    out = malloc(n);
    snprintf(out, n, "%s.%s", input, sb);
    EVP_MD_CTX_free(md);
    json_decref(hdr);
    free(h);
    free(c);
    free(hb);
    free(cb);
    free(sb);
    free(input);
    return out;
}

/* Answers pending call i, the token request of r, with an ID token (r's nonce) and an
 * access token signed by the given keys under the given kids. */
static void answer_tokens(size_t i, struct run *r, EVP_PKEY *idk, const char *idkid, EVP_PKEY *atk,
                          const char *atkid)
{
    json_int_t iat = W.now, exp = W.now + 3600;
    json_t *id = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:b}", "iss", ISSUER, "sub",
                           "auth0|123", "aud", CLIENT, "azp", CLIENT, "iat", iat, "exp", exp,
                           "nonce", r->nonce, "email", "person@example.com", "email_verified", 1);
    json_t *at =
        json_pack("{s:s,s:s,s:[s,s],s:s,s:I,s:I}", "iss", ISSUER, "sub", "auth0|123", "aud",
                  "astronomer-ee", ISSUER "userinfo", "azp", CLIENT, "iat", iat, "exp", exp);
    json_t *doc;
    char *body;

    free(r->id_token);
    free(r->access_token);
    r->id_token = sign(idk, idkid, id);
    r->access_token = sign(atk, atkid, at);
    doc = json_pack("{s:s,s:s,s:s,s:i}", "id_token", r->id_token, "access_token", r->access_token,
                    "token_type", "Bearer", "expires_in", 86400);
    body = json_dumps(doc, JSON_COMPACT);
    complete(i, HA_OK, 200, body, NULL, NULL);
    free(body);
    json_decref(doc);
    json_decref(id);
    json_decref(at);
}

static void answer_houston(size_t i)
{
    complete(i, HA_OK, 302, "", HOUSTON_LOCATION, HOUSTON_SET_COOKIE);
}

static void replied(void *arg)
{
    struct run *r = arg;
    r->replies++;
    r->own_pending_at_reply = 0;
    for (size_t i = 0; i < W.t.n; i++) {
        if (W.t.q[i].request_id != NULL && strcmp(W.t.q[i].request_id, r->req.request_id) == 0)
            r->own_pending_at_reply++;
    }
}

static void request(struct ha_request *req, const char *path, const char *query, const char *cookie,
                    const char *rid)
{
    memset(req, 0, sizeof(*req));
    req->method = "GET";
    req->path = path;
    snprintf(req->request_id, sizeof(req->request_id), "%s", rid);
    assert_int_equal(ha_url_parse_query(query, strlen(query), &req->query), HA_OK);
    if (cookie != NULL)
        assert_int_equal(ha_cookie_parse(cookie, strlen(cookie), &req->cookies), HA_OK);
}

/* /v1/oauth/start for r: its transaction cookie, state, nonce and PKCE challenge. */
static void start_login(struct run *r)
{
    struct ha_ctx cx = {&W.app, ha_app_view_acquire(&W.app)};
    struct ha_request req;
    struct ha_response resp = {0};
    struct ha_kvlist q = {0};
    const char *qs;
    size_t n;

    request(&req, HA_PATH_START, "", NULL, "start");
    assert_int_equal(ha_handle_start(&cx, &req, &resp), HA_OK);
    ha_app_view_release(&W.app, cx.view);
    assert_int_equal(resp.status, 302);
    qs = strchr(resp.location, '?') + 1;
    assert_int_equal(ha_url_parse_query(qs, strlen(qs), &q), HA_OK);
    snprintf(r->state, sizeof(r->state), "%s", ha_kvlist_get(&q, "state"));
    snprintf(r->nonce, sizeof(r->nonce), "%s", ha_kvlist_get(&q, "nonce"));
    snprintf(r->challenge, sizeof(r->challenge), "%s", ha_kvlist_get(&q, "code_challenge"));
    assert_true(resp.set_cookie_count >= 1);
    snprintf(r->cookie, sizeof(r->cookie), "%.*s", (int)strcspn(resp.set_cookies[0], ";"),
             resp.set_cookies[0]);
    n = strcspn(r->cookie, "=");
    assert_true(n < sizeof(r->name));
    memcpy(r->name, r->cookie, n);
    r->name[n] = '\0';
    assert_true(strncmp(r->name, "__Host-ha_txn_", 14) == 0);
    ha_kvlist_cleanup(&q);
    ha_request_cleanup(&req);
    ha_response_cleanup(&resp);
}

static void run_cleanup(struct run *r)
{
    ha_request_cleanup(&r->req);
    ha_response_cleanup(&r->resp);
    free(r->id_token);
    free(r->access_token);
    memset(r, 0, sizeof(*r));
}

/* Starts a login and its redirect through the router, as the server does. */
static struct run *begin(int k)
{
    struct run *r = &W.runs[k];
    char query[256], rid[16];

    start_login(r);
    snprintf(query, sizeof(query), "code=%s&state=%s", CODE, r->state);
    snprintf(rid, sizeof(rid), "login-%d", k);
    request(&r->req, HA_PATH_REDIRECT, query, r->cookie, rid);
    ha_router_begin(&W.app, ha_router_find(HA_PATH_REDIRECT), &r->req, &r->resp, replied, r);
    return r;
}

static bool has_cookie(const struct ha_response *resp, const char *prefix)
{
    for (size_t i = 0; i < resp->set_cookie_count; i++) {
        if (strncmp(resp->set_cookies[i], prefix, strlen(prefix)) == 0)
            return true;
    }
    return false;
}

/* The answer clears r's transaction cookie and never sets it again. */
static void assert_txn_cleared(const struct run *r)
{
    char prefix[160];
    int clears = 0;
    snprintf(prefix, sizeof(prefix), "%s=", r->name);
    for (size_t i = 0; i < r->resp.set_cookie_count; i++) {
        const char *c = r->resp.set_cookies[i];
        if (strncmp(c, prefix, strlen(prefix)) != 0)
            continue;
        assert_true(c[strlen(prefix)] == ';');
        assert_non_null(strstr(c, "Max-Age=0"));
        clears++;
    }
    assert_int_equal(clears, 1);
}

/* Answered once, after its own last call, with no-store and the transaction cleared. */
static void assert_answered(const struct run *r)
{
    assert_int_equal(r->replies, 1);
    assert_int_equal(r->own_pending_at_reply, 0);
    assert_int_equal(r->resp.status, 302);
    assert_true(r->resp.no_store);
    assert_txn_cleared(r);
}

static void assert_relayed(const struct run *r)
{
    int houston = 0;
    assert_answered(r);
    assert_string_equal(r->resp.location, HOUSTON_LOCATION);
    for (size_t i = 0; i < r->resp.set_cookie_count; i++)
        houston += strcmp(r->resp.set_cookies[i], HOUSTON_SET_COOKIE) == 0;
    assert_int_equal(houston, 1);
}

static void assert_failed(const struct run *r, const char *code)
{
    char want[256];
    snprintf(want, sizeof(want), LOGIN_URL "%s", code);
    assert_answered(r);
    assert_string_equal(r->resp.location, want);
    assert_false(has_cookie(&r->resp, HOUSTON_COOKIE "="));
}

/* Nothing pending, and the calls ever started to each peer. */
static void assert_calls(int token, int jwks, int houston)
{
    assert_int_equal(W.t.n, 0);
    assert_int_equal(W.t.token_calls, token);
    assert_int_equal(W.t.jwks_calls, jwks);
    assert_int_equal(W.t.houston_calls, houston);
    assert_int_equal(W.t.other_calls, 0);
}

static void setup_keys(void)
{
    char k1[1024], k2[1024];
    jwk(K1, "k1", k1, sizeof(k1));
    jwk(K2, "k2", k2, sizeof(k2));
    snprintf(JWKS_K1, sizeof(JWKS_K1), "{\"keys\":[%s]}", k1);
    snprintf(JWKS_K12, sizeof(JWKS_K12), "{\"keys\":[%s,%s]}", k1, k2);
}

static int group_setup(void **state)
{
    (void)state;
    ha_log_set_level(HA_LOG_ERROR); /* a failed login's line is a warning: not this output */
    K1 = EVP_RSA_gen(2048);
    K2 = EVP_RSA_gen(2048);
    assert_non_null(K1);
    assert_non_null(K2);
    setup_keys();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(K1);
    EVP_PKEY_free(K2);
    return 0;
}

/* The app's key set as the event loop builds it: no synchronous http, so a miss only
 * misses, loaded through fetch_begin/_end with JWKS_K1. */
static void load_jwks(const struct ha_config *cfg)
{
    struct ha_jwks_cache_opts o = {
        JWKS_URL, {NULL, NULL}, W.app.clock, cfg->jwks_refresh_s, cfg->jwks_min_refetch_s};
    struct ha_http_request req;
    struct ha_http_response resp = {0};

    assert_int_equal(ha_jwks_cache_new(&o, &W.app.jwks), HA_OK);
    assert_int_equal(ha_jwks_cache_fetch_begin(W.app.jwks, false, &req), HA_JWKS_FETCH_START);
    assert_string_equal(req.url, JWKS_URL);
    resp.status = 200;
    resp.body = JWKS_K1;
    resp.body_len = strlen(JWKS_K1);
    assert_int_equal(ha_jwks_cache_fetch_end(W.app.jwks, HA_OK, &resp), HA_OK);
}

static int setup(void **state)
{
    char *argv[] = {"houston-auth", NULL};
    char *envp[] = {"GLOBAL_BASE_DOMAIN=astro.example.com",
                    "AUTH0_ENABLED=true",
                    "AUTH0_CLIENT_ID=" CLIENT,
                    "AUTH0_BASE_DOMAIN=tenant.example.com",
                    "AUTH0_CLIENT_SECRET=" SECRET,
                    "AUTH_SIDECAR_LOG_LEVEL=error",
                    "AUTH_SIDECAR_COOKIE_SECRET=0123456789abcdef0123456789abcdef",
                    NULL};
    const char *doc = "{\"issuer\":\"" ISSUER "\",\"authorization_endpoint\":"
                      "\"https://tenant.example.com/authorize\",\"token_endpoint\":\"" TOKEN_URL
                      "\",\"jwks_uri\":\"" JWKS_URL "\"}";
    struct ha_config *cfg = NULL;
    enum ha_config_action action;
    const char *reason;
    char err[256];
    (void)state;

    memset(&W, 0, sizeof(W));
    W.now = 1800000000;
    assert_int_equal(ha_config_load(1, argv, envp, &cfg, &action, err, sizeof(err)), HA_OK);
    assert_int_equal(ha_app_init(&W.app, cfg), HA_OK);
    W.app.http.perform = no_sync_http;
    W.app.transport = (struct ha_transport){fake_start, &W.t};
    W.app.clock.now = fake_now;
    assert_int_equal(ha_oidc_parse_discovery(doc, strlen(doc), ISSUER, 0, &W.app.provider, &reason),
                     HA_OK);
    load_jwks(ha_app_view(&W.app)->cfg);
    W.app.provider_ready = true;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* A failed test may leave logins waiting: end them so that everything is freed. */
    for (int i = 0; i < 32 && W.t.n > 0; i++)
        fail_with(0, HA_ERR_IO);
    for (int i = 0; i < MAX_RUNS; i++)
        run_cleanup(&W.runs[i]);
    ha_app_cleanup(&W.app);
    return 0;
}

static void challenge_of(const char *verifier, char *out, size_t len)
{
    unsigned char md[32];
    unsigned int n = 0;
    char *c;
    assert_int_equal(EVP_Digest(verifier, strlen(verifier), md, &n, EVP_sha256(), NULL), 1);
    c = b64(md, n);
    snprintf(out, len, "%s", c);
    free(c);
}

/* The token request: the authorization_code grant with r's code, PKCE verifier and
 * redirect_uri; the client authenticated by HTTP Basic, its secret never in the body. */
static void assert_token_request(const struct run *r, const struct pending *p)
{
    struct ha_kvlist f = {0};
    char challenge[64];

    assert_true(p->to_tenant);
    assert_string_equal(p->content_type, "application/x-www-form-urlencoded");
    assert_int_equal(ha_url_parse_query(p->body, strlen(p->body), &f), HA_OK);
    assert_string_equal(ha_kvlist_get(&f, "grant_type"), "authorization_code");
    assert_string_equal(ha_kvlist_get(&f, "code"), CODE);
    assert_string_equal(ha_kvlist_get(&f, "redirect_uri"), REDIRECT_URI);
    assert_non_null(ha_kvlist_get(&f, "code_verifier"));
    challenge_of(ha_kvlist_get(&f, "code_verifier"), challenge, sizeof(challenge));
    assert_string_equal(challenge, r->challenge);
    assert_null(ha_kvlist_get(&f, "client_secret"));
    assert_null(strstr(p->body, SECRET));
    assert_string_equal(p->user, CLIENT);
    assert_string_equal(p->pass, SECRET);
    assert_string_equal(p->request_id, r->req.request_id);
    ha_kvlist_cleanup(&f);
}

/* Houston's callback: the tokens exactly as the tenant gave them, and the state; never the
 * client secret or the PKCE verifier, never through the tenant's proxy. */
static void assert_houston_request(const struct run *r, const struct pending *p)
{
    struct ha_kvlist f = {0};
    json_t *st;

    assert_false(p->to_tenant);
    assert_null(p->user);
    assert_null(p->pass);
    assert_string_equal(p->content_type, "application/x-www-form-urlencoded");
    assert_int_equal(ha_url_parse_query(p->body, strlen(p->body), &f), HA_OK);
    assert_string_equal(ha_kvlist_get(&f, "id_token"), r->id_token);
    assert_string_equal(ha_kvlist_get(&f, "access_token"), r->access_token);
    assert_string_equal(ha_kvlist_get(&f, "token_type"), "Bearer");
    st = json_loads(ha_kvlist_get(&f, "state"), 0, NULL);
    assert_non_null(st);
    assert_string_equal(json_string_value(json_object_get(st, "provider")), "auth0");
    assert_string_equal(json_string_value(json_object_get(st, "origin")),
                        "https://houston.astro.example.com/v1/oauth/callback");
    assert_null(strstr(p->body, SECRET));
    assert_null(strstr(p->body, "code_verifier"));
    assert_string_equal(p->request_id, r->req.request_id);
    json_decref(st);
    ha_kvlist_cleanup(&f);
}

static void test_success_step_by_step(void **state)
{
    struct run *r;
    (void)state;
    r = begin(0);
    assert_int_equal(r->replies, 0);
    assert_token_request(r, only_pending("POST", TOKEN_URL));

    answer_tokens(0, r, K1, "k1", K1, "k1");
    assert_int_equal(r->replies, 0);
    assert_houston_request(r, only_pending("POST", HOUSTON_URL));

    answer_houston(0);
    assert_relayed(r);
    assert_calls(1, 0, 1);
}

/* The tenant refuses or fails the exchange: nothing reaches Houston. */
static void test_token_status_refused(void **state)
{
    static const long statuses[] = {400, 401, 500, 503};
    (void)state;
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        struct run *r = begin(0);
        only_pending("POST", TOKEN_URL);
        complete(0, HA_OK, statuses[i], "{\"error\":\"invalid_grant\"}", NULL, NULL);
        assert_failed(r, HA_E_TOKEN_EXCHANGE);
        run_cleanup(r);
    }
    assert_calls(4, 0, 0);
}

static void test_token_transport_errors(void **state)
{
    static const enum ha_err errs[] = {HA_ERR_TIMEOUT, HA_ERR_IO, HA_ERR_TLS, HA_ERR_TOO_LARGE};
    (void)state;
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        struct run *r = begin(0);
        only_pending("POST", TOKEN_URL);
        assert_int_equal(r->replies, 0);
        fail_with(0, errs[i]);
        assert_failed(r, HA_E_TOKEN_EXCHANGE);
        run_cleanup(r);
    }
    assert_calls(4, 0, 0);
}

/* A 200 whose body is not the token response: not JSON, no id_token, not Bearer. */
static void test_token_body_unexpected(void **state)
{
    static const char *const bodies[] = {
        "<html>hello</html>",
        "",
        "[\"id_token\"]",
        "{\"access_token\":\"a.b.c\",\"token_type\":\"Bearer\"}",
        "{\"id_token\":\"a.b.c\",\"access_token\":\"a.b.c\",\"token_type\":\"mac\"}",
        "{\"id_token\":\"a.b.c\",\"id_token\":\"d.e.f\",\"access_token\":\"a.b.c\","
        "\"token_type\":\"Bearer\"}"};
    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct run *r = begin(0);
        only_pending("POST", TOKEN_URL);
        complete(0, HA_OK, 200, bodies[i], NULL, NULL);
        assert_failed(r, HA_E_TOKEN_EXCHANGE);
        run_cleanup(r);
    }
    assert_calls(6, 0, 0);
}

/* Tokens under a kid the key set has but signed by another key: a forgery, not a rotation.
 * Refused at once, and no JWKS refetch for anyone who can name a known kid. */
static void test_known_kid_wrong_key(void **state)
{
    struct run *r;
    (void)state;
    r = begin(0);
    answer_tokens(0, r, K2, "k1", K2, "k1");
    assert_failed(r, HA_E_INVALID_ID_TOKEN);
    assert_calls(1, 0, 0);

    /* A valid ID token with a forged access token: refused the same way. */
    r = begin(1);
    answer_tokens(0, r, K1, "k1", K2, "k1");
    assert_failed(r, HA_E_INVALID_ACCESS_TOKEN);
    assert_calls(2, 0, 0);
}

/* A kid the key set lacks: the login waits for one JWKS GET, then goes on to Houston. */
static void test_unknown_kid_refetch_succeeds(void **state)
{
    struct run *r;
    const struct pending *p;
    (void)state;
    r = begin(0);
    answer_tokens(0, r, K2, "k2", K2, "k2");
    assert_int_equal(r->replies, 0);
    p = only_pending("GET", JWKS_URL);
    assert_true(p->to_tenant);

    complete(0, HA_OK, 200, JWKS_K12, NULL, NULL);
    assert_int_equal(r->replies, 0);
    assert_houston_request(r, only_pending("POST", HOUSTON_URL));

    answer_houston(0);
    assert_relayed(r);
    assert_calls(1, 1, 1);
}

/* Only the access token is under the new kid: it waits for the refetch the same way. */
static void test_unknown_kid_access_token(void **state)
{
    struct run *r;
    (void)state;
    r = begin(0);
    answer_tokens(0, r, K1, "k1", K2, "k2");
    only_pending("GET", JWKS_URL);
    complete(0, HA_OK, 200, JWKS_K12, NULL, NULL);
    assert_int_equal(r->replies, 0);
    only_pending("POST", HOUSTON_URL);
    answer_houston(0);
    assert_relayed(r);
    assert_calls(1, 1, 1);
}

/* The refetch brings a set still without the kid, or fails (status, timeout, I/O, a set
 * without keys): the kid stays unknown, and the keys that worked keep working. Each try is
 * past the refetch window of the one before. */
static void test_unknown_kid_refetch_fails(void **state)
{
    struct outcome {
        enum ha_err err;
        long status;
        const char *body;
    };
    const struct outcome outcomes[] = {{HA_OK, 200, JWKS_K1},
                                       {HA_OK, 500, "oops"},
                                       {HA_ERR_TIMEOUT, 0, NULL},
                                       {HA_ERR_IO, 0, NULL},
                                       {HA_OK, 200, "{\"keys\":[]}"}};
    const long window = ha_app_view(&W.app)->cfg->jwks_min_refetch_s;
    struct run *r;
    (void)state;
    for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
        r = begin(0);
        answer_tokens(0, r, K2, "k2", K2, "k2");
        only_pending("GET", JWKS_URL);
        assert_int_equal(r->replies, 0);
        complete(0, outcomes[i].err, outcomes[i].status, outcomes[i].body, NULL, NULL);
        assert_failed(r, HA_E_INVALID_ID_TOKEN);
        run_cleanup(r);
        W.now += window + 1;
    }
    assert_calls(5, 5, 0);

    /* None of the failed fetches took the keys that worked. */
    r = begin(0);
    answer_tokens(0, r, K1, "k1", K1, "k1");
    only_pending("POST", HOUSTON_URL);
    answer_houston(0);
    assert_relayed(r);
    assert_calls(6, 5, 1);
}

/* Two logins missing the same kid share one JWKS GET and both go on when it ends; a third
 * miss inside jwksMinRefetchSeconds fails at once without a request; past the window a
 * miss fetches again. */
static void test_refetch_coalesced_and_throttled(void **state)
{
    const long window = ha_app_view(&W.app)->cfg->jwks_min_refetch_s;
    struct run *a, *b, *c, *d;
    (void)state;
    a = begin(0);
    b = begin(1);
    assert_int_equal(W.t.n, 2);
    answer_tokens(find_pending(TOKEN_URL, 0), a, K2, "k2", K2, "k2");
    answer_tokens(find_pending(TOKEN_URL, 0), b, K2, "k2", K2, "k2");
    only_pending("GET", JWKS_URL);
    assert_int_equal(W.t.jwks_calls, 1);
    assert_int_equal(a->replies + b->replies, 0);

    complete(0, HA_OK, 200, JWKS_K12, NULL, NULL);
    assert_int_equal(W.t.n, 2);
    assert_int_equal(W.t.houston_calls, 2);
    assert_int_equal(a->replies + b->replies, 0);
    /* Each login goes on with its own tokens. */
    for (size_t i = 0; i < 2; i++) {
        const struct pending *p = &W.t.q[i];
        assert_houston_request(strcmp(p->request_id, a->req.request_id) == 0 ? a : b, p);
    }
    assert_string_not_equal(W.t.q[0].request_id, W.t.q[1].request_id);
    answer_houston(find_pending(HOUSTON_URL, 0));
    answer_houston(find_pending(HOUSTON_URL, 0));
    assert_relayed(a);
    assert_relayed(b);
    assert_calls(2, 1, 2);

    W.now += window - 1;
    c = begin(2);
    answer_tokens(0, c, K2, "k9", K2, "k9");
    assert_failed(c, HA_E_INVALID_ID_TOKEN);
    assert_calls(3, 1, 2);

    W.now += 2;
    d = begin(3);
    answer_tokens(0, d, K2, "k9", K2, "k9");
    assert_int_equal(d->replies, 0);
    only_pending("GET", JWKS_URL);
    fail_with(0, HA_ERR_TIMEOUT);
    assert_failed(d, HA_E_INVALID_ID_TOKEN);
    assert_calls(4, 2, 2);
}

/* Houston fails or answers what may not be relayed: the person lands on the login page
 * and no Houston cookie reaches the browser, whatever Houston sent. */
static void test_houston_failures(void **state)
{
    struct outcome {
        enum ha_err err;
        long status;
        const char *location;
        const char *cookie;
        const char *code;
    };
    static const struct outcome outcomes[] = {
        {HA_ERR_TIMEOUT, 0, NULL, NULL, HA_E_HOUSTON_UNAVAILABLE},
        {HA_ERR_IO, 0, NULL, NULL, HA_E_HOUSTON_UNAVAILABLE},
        {HA_ERR_TLS, 0, NULL, NULL, HA_E_HOUSTON_UNAVAILABLE},
        {HA_OK, 500, NULL, HOUSTON_SET_COOKIE, HA_E_HOUSTON_REJECTED},
        {HA_OK, 200, NULL, HOUSTON_SET_COOKIE, HA_E_HOUSTON_REJECTED},
        {HA_OK, 302, "https://evil.example.net/oauth", HOUSTON_SET_COOKIE, HA_E_HOUSTON_REJECTED},
        {HA_OK, 302, HOUSTON_LOCATION, NULL, HA_E_HOUSTON_REJECTED},
        {HA_OK, 302, HOUSTON_LOCATION, HOUSTON_COOKIE "=jwt; Domain=.evil.example.net; Path=/",
         HA_E_HOUSTON_REJECTED},
    };
    size_t n = sizeof(outcomes) / sizeof(outcomes[0]);
    (void)state;
    for (size_t i = 0; i < n; i++) {
        struct run *r = begin(0);
        answer_tokens(0, r, K1, "k1", K1, "k1");
        only_pending("POST", HOUSTON_URL);
        assert_int_equal(r->replies, 0);
        complete(0, outcomes[i].err, outcomes[i].status, "", outcomes[i].location,
                 outcomes[i].cookie);
        assert_failed(r, outcomes[i].code);
        run_cleanup(r);
    }
    assert_calls((int)n, 0, (int)n);
}

/* Houston's own login-error redirect (no cookie) is relayed as it is. */
static void test_houston_error_redirect_relayed(void **state)
{
    const char *loc = "https://app.astro.example.com/login?error=user_not_invited";
    struct run *r;
    (void)state;
    r = begin(0);
    answer_tokens(0, r, K1, "k1", K1, "k1");
    complete(0, HA_OK, 302, "", loc, NULL);
    assert_answered(r);
    assert_string_equal(r->resp.location, loc);
    assert_false(has_cookie(&r->resp, HOUSTON_COOKIE "="));
    assert_calls(1, 0, 1);
}

/* A transport that fails before start returns (done called inside start), at each step:
 * the login ends once, with the step's code; under ASan, nothing touched after free. */
static void test_calls_that_fail_at_once(void **state)
{
    struct run *r;
    (void)state;
    W.t.fail_at_once = TOKEN_URL;
    r = begin(0);
    assert_failed(r, HA_E_TOKEN_EXCHANGE);
    assert_calls(1, 0, 0);

    W.t.fail_at_once = JWKS_URL;
    r = begin(1);
    answer_tokens(0, r, K2, "k2", K2, "k2");
    assert_failed(r, HA_E_INVALID_ID_TOKEN);
    assert_calls(2, 1, 0);

    W.t.fail_at_once = HOUSTON_URL;
    r = begin(2);
    answer_tokens(0, r, K1, "k1", K1, "k1");
    assert_failed(r, HA_E_HOUSTON_UNAVAILABLE);
    assert_calls(3, 1, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_success_step_by_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_status_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_transport_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_body_unexpected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_known_kid_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kid_refetch_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kid_access_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kid_refetch_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refetch_coalesced_and_throttled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_houston_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_houston_error_redirect_relayed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_that_fail_at_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
