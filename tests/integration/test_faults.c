/* Integration: faulty and hostile peers, and the token attacks test_login_failures.c does not
 * reach.
 *
 * Peers: the dev tenant and the Houston stand-in with their test-control faults, plus two
 * peers this file runs itself (libmicrohttpd, one thread per connection) for what the
 * stand-ins cannot send: a fake tenant (TLS, the dev tenant's certificate) whose token
 * endpoint answers 10 MB with or without a length, a 1 MB ID token, or a trickle; and a fake
 * Houston whose answer has an empty, foreign or control-character cookie, a 10 MB body or a
 * trickle.
 *
 * Token attacks use tokens this file signs with its own keys, published in the tenant's JWKS
 * (jwks_extra_keys) and served by the tenant's token endpoint (token_body): a kid with a NUL,
 * duplicate member names placed so that a first-wins and a last-wins parser would each accept
 * one, odd time types, non-base64url and non-JSON parts, a 1024-bit key, a key with e = 1
 * (anyone can "sign" for it), and jwk/x5c/jku/x5u headers that name a rogue key or a URL
 * (the test listens there: nothing may connect). Every group has an accepted control signed
 * the same way, so the refusals come from the check under test (src/jwt_verify.c,
 * src/jwks.c usable_for_rs256/jwk_to_pkey, src/http_client.c caps and timeouts,
 * src/houston.c check_answer/find_cookie, src/jwks.c miss/window_closed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include "houston_auth/b64url.h"
#include "houston_auth/proto.h"
#include "harness.h"

#define QUERY "provider=auth0&integration=self&redirect=/oauth"
#define EMAIL "faults@example.com"
#define TIMEOUT_MS 1500 /* the harness's AUTH_SIDECAR_REQUEST_TIMEOUT_MS */
#define BOUND_MS (TIMEOUT_MS + 1500)
#define BIG (10 * 1024 * 1024)
#define CONCURRENT 20
#if defined(__SANITIZE_ADDRESS__)
#define HWM_GROWTH_KB (48L * 1024)
#else
#define HWM_GROWTH_KB (8L * 1024)
#endif

/* ---- small helpers ---- */

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long tenant_stat(const char *name)
{
    json_t *j = it_tenant_get_json(it_env(), "/__test/stats");
    json_t *v = json_object_get(j, name);
    long n = json_is_integer(v) ? (long)json_integer_value(v) : -1;
    json_decref(j);
    assert_true(n >= 0);
    return n;
}

/* A metric's value from a sidecar's /metrics (base: its https origin), or -1. */
static double metric(const char *base, const char *name)
{
    struct it_client *c = it_client_new(it_env());
    struct it_resp r;
    char url[256], want[160];
    const char *m;
    double v = -1;
    snprintf(url, sizeof(url), "%s/metrics", base);
    snprintf(want, sizeof(want), "\n%s ", name);
    if (it_get(c, url, &r) == 0 && r.status == 200 && (m = strstr(r.body, want)) != NULL)
        v = strtod(m + strlen(want), NULL);
    it_resp_cleanup(&r);
    it_client_free(c);
    return v;
}

static bool is_login_error(const struct it_resp *r, const char *code)
{
    char want[256];
    snprintf(want, sizeof(want), "%s%s", IT_LOGIN_ERROR_PREFIX, code);
    return r->status == 302 && r->location != NULL && strcmp(r->location, want) == 0;
}

static bool is_success(const struct it_resp *r)
{
    return r->status == 302 && r->location != NULL &&
           strncmp(r->location, IT_APP_URL "/oauth?", strlen(IT_APP_URL "/oauth?")) == 0 &&
           it_resp_set_cookie(r, IT_AUTH_COOKIE "=", 0) != NULL;
}

/* One whole login at base; asserts it ends with code (NULL: success). */
static void login_expect(const char *base, const char *code, const char *what)
{
    struct it_client *c = it_client_new(it_env());
    struct it_login l;
    assert_int_equal(it_login_at(c, base, QUERY, EMAIL, &l), 0);
    if (code == NULL ? !is_success(&l.redirect) : !is_login_error(&l.redirect, code))
        fail_msg("%s: the login ended %ld %s, want %s", what, l.redirect.status,
                 l.redirect.location != NULL ? l.redirect.location : "(none)",
                 code != NULL ? code : "success");
    it_login_cleanup(&l);
    it_client_free(c);
}

/* ---- tokens signed here ---- */

static EVP_PKEY *key2048, *key1024, *rogue, *eone_src;

static char *b64(const void *p, size_t n)
{
    char *s = malloc(ha_b64url_encoded_len(n) + 1);
    assert_non_null(s);
    ha_b64url_encode_to(p, n, s);
    return s;
}

static char *bn_b64(EVP_PKEY *k, const char *param)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int n;
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    n = BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64(buf, (size_t)n);
}

/* {"kty":"RSA","kid":kid,"use":"sig","alg":"RS256","n":..,"e":..}; e_b64 replaces e. */
static json_t *jwk_of(EVP_PKEY *k, const char *kid, const char *e_b64)
{
    char *n = bn_b64(k, OSSL_PKEY_PARAM_RSA_N);
    char *e = e_b64 != NULL ? strdup(e_b64) : bn_b64(k, OSSL_PKEY_PARAM_RSA_E);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kty", "RSA", "kid", kid, "use", "sig",
                          "alg", "RS256", "n", n, "e", e);
    free(n);
    free(e);
    assert_non_null(j);
    return j;
}

static char *rs256(EVP_PKEY *k, const char *input)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t len = sizeof(sig);
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &len, (const unsigned char *)input, strlen(input)),
                     1);
    EVP_MD_CTX_free(ctx);
    return b64(sig, len);
}

/* The "signature" for a key with e = 1: the PKCS #1 v1.5 encoded digest itself
 * (RFC 8017 §9.2), since s^1 = s. Anyone can make it. */
static char *eone_sig(const char *input)
{
    static const unsigned char info[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                         0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    unsigned char em[256];
    unsigned int mdlen = 0;
    size_t ps = sizeof(em) - 3 - sizeof(info) - 32;
    em[0] = 0x00;
    em[1] = 0x01;
    memset(em + 2, 0xff, ps);
    em[2 + ps] = 0x00;
    memcpy(em + 3 + ps, info, sizeof(info));
    assert_int_equal(
        EVP_Digest(input, strlen(input), em + 3 + ps + sizeof(info), &mdlen, EVP_sha256(), NULL),
        1);
    return b64(em, sizeof(em));
}

enum signer { S_KEY2048, S_KEY1024, S_ROGUE, S_EONE, S_EMPTY };

/* Compact JWS of the raw JSON texts header and claims (duplicates kept as written). */
static char *jws(const char *header, const char *claims, enum signer s)
{
    char *h = b64(header, strlen(header)), *c = b64(claims, strlen(claims));
    char *input = it_fmt("%s.%s", h, c), *sig, *out;
    switch (s) {
    case S_KEY2048:
        sig = rs256(key2048, input);
        break;
    case S_KEY1024:
        sig = rs256(key1024, input);
        break;
    case S_ROGUE:
        sig = rs256(rogue, input);
        break;
    case S_EONE:
        sig = eone_sig(input);
        break;
    case S_EMPTY:
    default:
        sig = strdup("");
        break;
    }
    out = it_fmt("%s.%s", input, sig);
    free(h);
    free(c);
    free(input);
    free(sig);
    return out;
}

static char *issuer(void)
{
    return it_fmt("https://localhost:%d/", it_env()->tenant_port);
}

/* ID-token claims as JSON text: first and last are raw members spliced in (each "" or with
 * its own comma), exp is the raw JSON value of exp. */
static char *id_claims(const char *nonce, const char *first, const char *exp, const char *last)
{
    char *iss = issuer(), *out;
    long now = (long)time(NULL);
    char expv[32];
    snprintf(expv, sizeof(expv), "%ld", now + 3600);
    out = it_fmt(
        "{%s\"iss\":\"%s\",\"sub\":\"auth0|crafted\",\"aud\":\"%s\",\"azp\":\"%s\","
        "\"exp\":%s,\"iat\":%ld,\"nonce\":\"%s\",\"email\":\"%s\",\"email_verified\":true%s}",
        first, iss, IT_CLIENT_ID, IT_CLIENT_ID, exp != NULL ? exp : expv, now, nonce, EMAIL, last);
    free(iss);
    return out;
}

static char *access_token(void)
{
    char *iss = issuer(), *claims, *tok;
    long now = (long)time(NULL);
    claims = it_fmt("{\"iss\":\"%s\",\"sub\":\"auth0|crafted\",\"aud\":[\"%s\",\"%suserinfo\"],"
                    "\"azp\":\"%s\",\"exp\":%ld,\"iat\":%ld,\"scope\":\"openid profile email\"}",
                    iss, IT_AUDIENCE, iss, IT_CLIENT_ID, now + 86400, now);
    tok = jws("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"it-2048\"}", claims, S_KEY2048);
    free(iss);
    free(claims);
    return tok;
}

/* Builds the ID token for a nonce. */
typedef char *(*id_maker)(const char *nonce);

/* A login at base whose token endpoint answers the ID token make() builds (and a valid access
 * token): start, the tenant's authorize, then the redirect back with token_body set. */
static void crafted_login(const char *base, id_maker make, struct it_resp *out)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp s, a;
    struct ha_kvlist q;
    char url[512], *id, *at, *body, *fault, *next;
    json_t *j;
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=crafted%%40example.com", base,
             QUERY);
    assert_int_equal(it_get(c, url, &s), 0);
    assert_int_equal(s.status, 302);
    assert_int_equal(it_url_query(s.location, &q), 0);
    assert_non_null(ha_kvlist_get(&q, "nonce"));
    id = make(ha_kvlist_get(&q, "nonce"));
    ha_kvlist_cleanup(&q);
    assert_int_equal(it_get(c, s.location, &a), 0);
    assert_int_equal(a.status, 302);
    at = access_token();
    j = json_pack("{s:s,s:s,s:s,s:i}", "access_token", at, "id_token", id, "token_type", "Bearer",
                  "expires_in", 86400);
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    j = json_pack("{s:s}", "token_body", body);
    fault = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_int_equal(it_tenant_fault(e, fault), 200);
    it_note_secret(id);
    it_note_secret(at);
    next = it_url_rebase(a.location, e->sidecar_url, base);
    assert_int_equal(it_get(c, next, out), 0);
    assert_int_equal(it_tenant_fault(e, "{\"token_body\":null}"), 200);
    free(next);
    free(fault);
    free(body);
    free(at);
    free(id);
    it_resp_cleanup(&s);
    it_resp_cleanup(&a);
    it_client_free(c);
}

/* ---- the ID tokens ---- */

#define HDR2048 "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"it-2048\"}"

static char *tok_valid(const char *nonce)
{
    char *c = id_claims(nonce, "", NULL, ""), *t = jws(HDR2048, c, S_KEY2048);
    free(c);
    return t;
}

static char *tok_kid_nul(const char *nonce)
{
    char *c = id_claims(nonce, "", NULL, "");
    char *t = jws("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"it-2048\\u0000x\"}", c, S_KEY2048);
    free(c);
    return t;
}

static char *tok_dup_nonce_last(const char *nonce)
{
    char *c = id_claims(nonce, "\"nonce\":\"wrong-nonce-first\",", NULL, ""),
         *t = jws(HDR2048, c, S_KEY2048);
    free(c);
    return t;
}

static char *tok_dup_nonce_first(const char *nonce)
{
    char *c = id_claims(nonce, "", NULL, ",\"nonce\":\"wrong-nonce-last\""),
         *t = jws(HDR2048, c, S_KEY2048);
    free(c);
    return t;
}

static char *tok_dup_aud(const char *nonce)
{
    char *c = id_claims(nonce, "\"aud\":\"another-client\",", NULL, ""),
         *t = jws(HDR2048, c, S_KEY2048);
    free(c);
    return t;
}

static char *tok_dup_alg(const char *nonce)
{
    char *c = id_claims(nonce, "", NULL, "");
    char *t = jws("{\"alg\":\"none\",\"alg\":\"RS256\",\"kid\":\"it-2048\"}", c, S_KEY2048);
    free(c);
    return t;
}

static char *exp_as(const char *nonce, const char *exp)
{
    char *c = id_claims(nonce, "", exp, ""), *t = jws(HDR2048, c, S_KEY2048);
    free(c);
    return t;
}

static char *tok_exp_string(const char *nonce)
{
    char v[40];
    snprintf(v, sizeof(v), "\"%ld\"", (long)time(NULL) + 3600);
    return exp_as(nonce, v);
}

static char *tok_exp_true(const char *nonce)
{
    return exp_as(nonce, "true");
}

static char *tok_exp_fraction(const char *nonce)
{
    return exp_as(nonce, "99999999999999999999999999");
}

static char *tok_iat_string(const char *nonce)
{
    char *c = id_claims(nonce, "", NULL, ",\"nbf\":\"soon\""), *t = jws(HDR2048, c, S_KEY2048);
    free(c);
    return t;
}

static char *tok_not_b64url(const char *nonce)
{
    char *t = tok_valid(nonce);
    t[3] = '!';
    t[4] = '*';
    return t;
}

static char *tok_std_b64_padding(const char *nonce)
{
    char *t = tok_valid(nonce), *dot = strchr(t, '.'), *out;
    out = it_fmt("%.*s==%s", (int)(dot - t), t, dot); /* '=' padding is not base64url */
    free(t);
    return out;
}

static char *tok_header_not_json(const char *nonce)
{
    char *c = id_claims(nonce, "", NULL, ""), *t = jws("not json at all", c, S_KEY2048);
    free(c);
    return t;
}

static char *tok_claims_not_json(const char *nonce)
{
    (void)nonce;
    return jws(HDR2048, "{\"iss\":", S_KEY2048);
}

static char *tok_claims_array(const char *nonce)
{
    (void)nonce;
    return jws(HDR2048, "[1,2,3]", S_KEY2048);
}

static char *tok_four_parts(const char *nonce)
{
    char *t = tok_valid(nonce), *out = it_fmt("%s.AAAA", t);
    free(t);
    return out;
}

static char *tok_empty_sig(const char *nonce)
{
    char *c = id_claims(nonce, "", NULL, ""), *t = jws(HDR2048, c, S_EMPTY);
    free(c);
    return t;
}

static char *tok_empty(const char *nonce)
{
    (void)nonce;
    return strdup("");
}

static char *tok_weak_key(const char *nonce)
{
    char *c = id_claims(nonce, "", NULL, "");
    char *t = jws("{\"alg\":\"RS256\",\"kid\":\"weak-1024\"}", c, S_KEY1024);
    free(c);
    return t;
}

static char *tok_eone(const char *nonce)
{
    char *c = id_claims(nonce, "", NULL, "");
    char *t = jws("{\"alg\":\"RS256\",\"kid\":\"e-one\"}", c, S_EONE);
    free(c);
    return t;
}

static char *rogue_jwk_text(const char *kid)
{
    json_t *j = jwk_of(rogue, kid, NULL);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* The rogue key named by kid and carried in the header itself (RFC 7515 §4.1.3). */
static char *tok_jwk_header(const char *nonce)
{
    char *k = rogue_jwk_text("it-rogue"), *c = id_claims(nonce, "", NULL, "");
    char *h = it_fmt("{\"alg\":\"RS256\",\"kid\":\"it-rogue\",\"jwk\":%s}", k);
    char *t = jws(h, c, S_ROGUE);
    free(k);
    free(c);
    free(h);
    return t;
}

/* The published kid, but signed by the rogue key that the jwk and x5c headers offer. */
static char *tok_jwk_header_known_kid(const char *nonce)
{
    char *k = rogue_jwk_text("it-2048"), *c = id_claims(nonce, "", NULL, "");
    char *h = it_fmt(
        "{\"alg\":\"RS256\",\"kid\":\"it-2048\",\"jwk\":%s,\"x5c\":[\"MIIBIjANBgkqhkiG\"]}", k);
    char *t = jws(h, c, S_ROGUE);
    free(k);
    free(c);
    free(h);
    return t;
}

static int listener_port;

/* jku and x5u pointing at a socket this test listens on, signed by the rogue key. */
static char *tok_jku(const char *nonce)
{
    char *c = id_claims(nonce, "", NULL, "");
    char *h =
        it_fmt("{\"alg\":\"RS256\",\"kid\":\"it-rogue\",\"jku\":\"https://127.0.0.1:%d/jwks\","
               "\"x5u\":\"https://127.0.0.1:%d/cert\"}",
               listener_port, listener_port);
    char *t = jws(h, c, S_ROGUE);
    free(c);
    free(h);
    return t;
}

/* ---- the key-set and crafted-token tests (one spare sidecar with its own JWKS) ---- */

/* The tenant's real key with another kid and the members in extra (raw JSON). */
static json_t *copy_of_real(json_t *real, const char *kid, const char *extra)
{
    json_t *j = json_loads(extra, 0, NULL);
    assert_non_null(j);
    json_object_set(j, "n", json_object_get(real, "n"));
    if (json_object_get(j, "e") == NULL)
        json_object_set(j, "e", json_object_get(real, "e"));
    json_object_set_new(j, "kid", json_string(kid));
    return j;
}

/* Publishes: copies of the real key (usable or not), it-2048, weak-1024, e-one. */
static void publish_keys(void)
{
    json_t *jwks = it_tenant_get_json(it_env(), "/.well-known/jwks.json");
    json_t *real = json_array_get(json_object_get(jwks, "keys"), 0), *extra = json_array();
    json_t *eone, *doc;
    char *text;
    assert_non_null(real);
    json_array_append_new(extra,
                          copy_of_real(real, "copy-sig", "{\"kty\":\"RSA\",\"use\":\"sig\"}"));
    json_array_append_new(extra, copy_of_real(real, "copy-bare", "{\"kty\":\"RSA\"}"));
    json_array_append_new(extra,
                          copy_of_real(real, "copy-enc", "{\"kty\":\"RSA\",\"use\":\"enc\"}"));
    json_array_append_new(extra,
                          copy_of_real(real, "copy-ec", "{\"kty\":\"EC\",\"crv\":\"P-256\"}"));
    json_array_append_new(extra,
                          copy_of_real(real, "copy-oct", "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}"));
    json_array_append_new(extra,
                          copy_of_real(real, "copy-rs512", "{\"kty\":\"RSA\",\"alg\":\"RS512\"}"));
    json_array_append_new(
        extra, copy_of_real(real, "copy-ops", "{\"kty\":\"RSA\",\"key_ops\":[\"encrypt\"]}"));
    json_array_append_new(extra, copy_of_real(real, "copy-lower", "{\"kty\":\"rsa\"}"));
    json_array_append_new(extra, jwk_of(key2048, "it-2048", NULL));
    json_array_append_new(extra, jwk_of(key1024, "weak-1024", NULL));
    eone = jwk_of(eone_src, "e-one", "AQ");
    json_array_append_new(extra, eone);
    doc = json_pack("{s:o}", "jwks_extra_keys", extra);
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    assert_non_null(text);
    assert_int_equal(it_tenant_fault(it_env(), text), 200);
    free(text);
    json_decref(jwks);
}

struct kid_case {
    const char *kid;
    bool usable;
};

/* Tokens the tenant signs with its real key under the kid of each copy: only the usable
 * copies verify (src/jwks.c usable_for_rs256, jwk_to_pkey). */
static void check_copies(const char *base)
{
    static const struct kid_case cases[] = {
        {"copy-sig", true},  {"copy-bare", true},   {"copy-enc", false}, {"copy-ec", false},
        {"copy-oct", false}, {"copy-rs512", false}, {"copy-ops", false}, {"copy-lower", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char fault[128];
        print_message("JWKS key %s: %s\n", cases[i].kid, cases[i].usable ? "usable" : "refused");
        snprintf(fault, sizeof(fault), "{\"id_token_header\":{\"kid\":\"%s\"}}", cases[i].kid);
        assert_int_equal(it_tenant_fault(it_env(), fault), 200);
        login_expect(base, cases[i].usable ? NULL : "invalid_id_token", cases[i].kid);
    }
    assert_int_equal(it_tenant_fault(it_env(), "{\"id_token_header\":null}"), 200);
}

struct crafted_case {
    const char *what;
    id_maker make;
    const char *code; /* the login error, or NULL: accepted */
};

#define ID "invalid_id_token"

static void check_crafted(const char *base)
{
    static const struct crafted_case cases[] = {
        {"valid (control)", tok_valid, NULL},
        {"kid with a NUL after the published kid", tok_kid_nul, ID},
        {"nonce twice, the right one last", tok_dup_nonce_last, ID},
        {"nonce twice, the right one first", tok_dup_nonce_first, ID},
        {"aud twice, the right one last", tok_dup_aud, ID},
        {"alg twice: none, then RS256", tok_dup_alg, ID},
        {"exp as a string", tok_exp_string, ID},
        {"exp true", tok_exp_true, ID},
        {"exp past 64 bits", tok_exp_fraction, ID},
        {"nbf as a string", tok_iat_string, ID},
        {"not base64url", tok_not_b64url, ID},
        {"base64 padding", tok_std_b64_padding, ID},
        {"header not JSON", tok_header_not_json, ID},
        {"claims not JSON", tok_claims_not_json, ID},
        {"claims an array", tok_claims_array, ID},
        {"four parts", tok_four_parts, ID},
        {"RS256 with an empty signature", tok_empty_sig, ID},
        {"an empty token", tok_empty, "token_exchange_failed"},
        {"a 1024-bit key", tok_weak_key, ID},
        {"a key with e = 1 (a forgeable key)", tok_eone, ID},
        {"a jwk header with the rogue key", tok_jwk_header, ID},
        {"a published kid signed by the key in jwk/x5c", tok_jwk_header_known_kid, ID},
        {"jku and x5u at a listening socket", tok_jku, ID},
        {"valid again (control)", tok_valid, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct it_resp r;
        print_message("crafted ID token: %s\n", cases[i].what);
        crafted_login(base, cases[i].make, &r);
        if (cases[i].code == NULL ? !is_success(&r) : !is_login_error(&r, cases[i].code))
            fail_msg("crafted ID token (%s): %ld %s", cases[i].what, r.status,
                     r.location != NULL ? r.location : "(none)");
        it_resp_cleanup(&r);
    }
}

static int listen_socket(void)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    listener_port = ntohs(a.sin_port);
    return fd;
}

static void test_jwks_keys_and_crafted_tokens(void **state)
{
    const char *extra[] = {"AUTH_SIDECAR_JWKS_MIN_REFETCH_SECONDS=1", NULL};
    char base[128];
    int lfd = listen_socket();
    struct pollfd p = {lfd, POLLIN, 0};
    (void)state;
    publish_keys();
    it_spare_start(0, "sidecar-keys.log", extra, base, sizeof(base));
    check_copies(base);
    check_crafted(base);
    /* Nobody fetched the jku or x5u URL. */
    assert_int_equal(poll(&p, 1, 0), 0);
    close(lfd);
    it_proc_stop(&it_env()->spare[0]);
}

/* kid values the tenant signs with its real key: never matched to it. */
static void test_kid_shapes(void **state)
{
    char *big = malloc(10 * 1024 + 64), fault[11 * 1024];
    static const char *const kids[] = {
        "\"../../../../etc/passwd\"",
        "\"..\\\\..\\\\keys\\\\current\"",
        "\"\"",
        "123",
        "[\"x\"]",
        "{\"kid\":\"x\"}",
        "true",
    };
    (void)state;
    assert_non_null(big);
    for (size_t i = 0; i < sizeof(kids) / sizeof(kids[0]); i++) {
        snprintf(fault, sizeof(fault), "{\"id_token_header\":{\"kid\":%s}}", kids[i]);
        print_message("kid %s\n", kids[i]);
        assert_int_equal(it_tenant_fault(it_env(), fault), 200);
        login_expect(it_env()->sidecar_url, "invalid_id_token", kids[i]);
    }
    /* A 10 kB kid. */
    memset(big, 'k', 10 * 1024);
    big[10 * 1024] = '\0';
    snprintf(fault, sizeof(fault), "{\"id_token_header\":{\"kid\":\"%s\"}}", big);
    assert_int_equal(it_tenant_fault(it_env(), fault), 200);
    login_expect(it_env()->sidecar_url, "invalid_id_token", "a 10 kB kid");
    free(big);
}

/* A genuine, correctly signed ID token just over HA_MAX_JWT is refused by size; a smaller
 * padded one is accepted (the control). */
static void test_oversized_id_token(void **state)
{
    char *pad = malloc(14 * 1024), *fault;
    (void)state;
    assert_non_null(pad);
    memset(pad, 'p', 1024);
    pad[1024] = '\0';
    fault = it_fmt("{\"id_token_claims\":{\"pad\":\"%s\"}}", pad);
    assert_int_equal(it_tenant_fault(it_env(), fault), 200);
    free(fault);
    login_expect(it_env()->sidecar_url, NULL, "a 2 kB ID token");
    memset(pad, 'p', 12 * 1024);
    pad[12 * 1024] = '\0';
    fault = it_fmt("{\"id_token_claims\":{\"pad\":\"%s\"}}", pad);
    assert_int_equal(it_tenant_fault(it_env(), fault), 200);
    free(fault);
    /* Refused at the token response (src/oidc.c: an id_token over HA_MAX_JWT) or at
     * verification (src/jwt_verify.c ha_jwt_parse): either way no session. */
    {
        struct it_client *c = it_client_new(it_env());
        struct it_login l;
        assert_int_equal(it_login(c, QUERY, EMAIL, &l), 0);
        if (!is_login_error(&l.redirect, "token_exchange_failed") &&
            !is_login_error(&l.redirect, "invalid_id_token"))
            fail_msg("a 17 kB ID token: %ld %s", l.redirect.status,
                     l.redirect.location != NULL ? l.redirect.location : "(none)");
        it_login_cleanup(&l);
        it_client_free(c);
    }
    free(pad);
}

/* ---- a fake tenant and a fake Houston ---- */

enum fake_mode {
    FAKE_BIG_LEN,    /* 200, Content-Length 10 MB */
    FAKE_BIG_STREAM, /* 200, 10 MB chunked (no length) */
    FAKE_TOKEN_1MB,  /* 200, a token response whose id_token is 1 MB */
    FAKE_TRICKLE,    /* 200 (tenant) or 302 (Houston), then a byte every 100 ms */
    FAKE_HOUSTON_OK, /* Houston's success */
    FAKE_COOKIE_EMPTY,
    FAKE_COOKIE_OTHER,
    FAKE_COOKIE_CTL,
    FAKE_HOUSTON_BIG, /* Houston's success with a 10 MB body */
};

struct fake {
    struct MHD_Daemon *d;
    int port;
    bool houston;
    _Atomic int mode;
    _Atomic long produced; /* body bytes handed to MHD */
    char *discovery;
};

struct stream {
    struct fake *f;
    uint64_t total;
    bool trickle;
};

static ssize_t produce(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    size_t n = max;
    if (pos >= s->total)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (s->trickle) {
        nap_ms(100);
        n = 1;
    } else if (s->total - pos < n) {
        n = (size_t)(s->total - pos);
    }
    memset(buf, ' ', n);
    atomic_fetch_add(&s->f->produced, (long)n);
    return (ssize_t)n;
}

static struct MHD_Response *streamed(struct fake *f, uint64_t total, bool length, bool trickle)
{
    struct stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->f = f;
    s->total = total;
    s->trickle = trickle;
    return MHD_create_response_from_callback(length ? total : MHD_SIZE_UNKNOWN, 32 * 1024, produce,
                                             s, free);
}

static struct MHD_Response *token_1mb(void)
{
    size_t n = 1024 * 1024 + 256, o;
    char *b = malloc(n);
    if (b == NULL)
        return NULL;
    o = (size_t)snprintf(b, n,
                         "{\"access_token\":\"a.b.c\",\"token_type\":\"Bearer\","
                         "\"expires_in\":86400,\"id_token\":\"eyJhbGciOiJSUzI1NiJ9.");
    memset(b + o, 'x', 1024 * 1024);
    o += 1024 * 1024;
    snprintf(b + o, n - o, ".sig\"}");
    return MHD_create_response_from_buffer(strlen(b), b, MHD_RESPMEM_MUST_FREE);
}

/* Houston's answer: Location and the cookie line (NULL: none), then the body. */
static struct MHD_Response *houston_answer(struct fake *f, int mode)
{
    static const char loc[] = IT_APP_URL "/oauth?extras=%7B%7D&strategy=auth0&token=fake.jwt.x";
    const char *cookie = IT_AUTH_COOKIE "=fake.session.jwt; Domain=." IT_BASE_DOMAIN "; Path=/; "
                                        "Secure";
    struct MHD_Response *r;
    if (mode == FAKE_COOKIE_EMPTY)
        cookie = IT_AUTH_COOKIE "=; Domain=." IT_BASE_DOMAIN "; Path=/; Secure";
    else if (mode == FAKE_COOKIE_OTHER)
        cookie = "astronomer_other_example_com_auth=fake.session.jwt; Path=/; Secure";
    else if (mode == FAKE_COOKIE_CTL)
        cookie = IT_AUTH_COOKIE "=fake.\x01session; Domain=." IT_BASE_DOMAIN "; Path=/; Secure";
    if (mode == FAKE_HOUSTON_BIG || mode == FAKE_TRICKLE)
        r = streamed(f, mode == FAKE_TRICKLE ? 600 : BIG, mode == FAKE_HOUSTON_BIG,
                     mode == FAKE_TRICKLE);
    else
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (r != NULL) {
        MHD_add_response_header(r, "Location", loc);
        MHD_add_response_header(r, "Set-Cookie", cookie);
    }
    return r;
}

static struct MHD_Response *tenant_answer(struct fake *f, int mode)
{
    if (mode == FAKE_BIG_LEN || mode == FAKE_BIG_STREAM)
        return streamed(f, BIG, mode == FAKE_BIG_LEN, false);
    if (mode == FAKE_TRICKLE)
        return streamed(f, 600, false, true);
    return token_1mb();
}

static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version, const char *upload,
                                    size_t *upload_size, void **ctx)
{
    static int seen;
    struct fake *f = cls;
    struct MHD_Response *r;
    enum MHD_Result ret;
    unsigned int status = 200;
    int mode = atomic_load(&f->mode);
    (void)method;
    (void)version;
    (void)upload;
    if (*ctx == NULL) {
        *ctx = &seen;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (!f->houston && strcmp(url, "/.well-known/openid-configuration") == 0) {
        r = MHD_create_response_from_buffer(strlen(f->discovery), f->discovery,
                                            MHD_RESPMEM_PERSISTENT);
    } else if (f->houston && strcmp(url, "/v1/oauth/callback") == 0) {
        r = houston_answer(f, mode);
        status = 302;
    } else if (!f->houston && strcmp(url, "/oauth/token") == 0) {
        r = tenant_answer(f, mode);
    } else {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        status = 404;
    }
    if (r == NULL)
        return MHD_NO;
    if (status == 200)
        MHD_add_response_header(r, "Content-Type", "application/json");
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void fake_start(struct fake *f, bool houston)
{
    struct it_env *e = it_env();
    char path[400];
    char *cert = NULL, *key = NULL;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
    const union MHD_DaemonInfo *info;
    memset(f, 0, sizeof(*f));
    f->houston = houston;
    if (!houston) {
        snprintf(path, sizeof(path), "%s", e->tls_cert);
        cert = it_read_file(path, NULL);
        snprintf(path, sizeof(path), "%s", e->tls_key);
        key = it_read_file(path, NULL);
        assert_non_null(cert);
        assert_non_null(key);
        flags |= MHD_USE_TLS;
    }
    f->d = MHD_start_daemon(flags, 0, NULL, NULL, fake_handler, f, MHD_OPTION_CONNECTION_TIMEOUT,
                            30u, houston ? MHD_OPTION_END : MHD_OPTION_HTTPS_MEM_CERT, cert,
                            MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END);
    assert_non_null(f->d);
    info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    f->port = info->port;
    f->discovery =
        it_fmt("{\"issuer\":\"https://localhost:%d/\",\"authorization_endpoint\":"
               "\"%s/authorize\",\"token_endpoint\":\"https://localhost:%d/oauth/token\","
               "\"jwks_uri\":\"%s/.well-known/jwks.json\"}",
               f->port, e->tenant_url, f->port, e->tenant_url);
    free(cert);
    free(key);
}

static void fake_stop(struct fake *f)
{
    MHD_stop_daemon(f->d);
    free(f->discovery);
    f->d = NULL;
}

/* Starts a login at base and sends the browser straight back with a made-up code: the
 * transaction opens, and the code goes to whatever token endpoint the sidecar knows. */
static void redirect_with_code(const char *base, struct it_resp *out)
{
    struct it_client *c = it_client_new(it_env());
    struct it_resp s;
    struct ha_kvlist q;
    char url[512];
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s", base, QUERY);
    assert_int_equal(it_get(c, url, &s), 0);
    assert_int_equal(s.status, 302);
    assert_int_equal(it_url_query(s.location, &q), 0);
    snprintf(url, sizeof(url), "%s/v1/oauth/redirect?code=made-up-code-0123456789&state=%s", base,
             ha_kvlist_get(&q, "state"));
    ha_kvlist_cleanup(&q);
    assert_int_equal(it_get(c, url, out), 0);
    it_resp_cleanup(&s);
    it_client_free(c);
}

/* The token endpoint answers 10 MB (with and without a length), a 1 MB ID token, or a
 * trickle: token_exchange_failed within the request timeout, the sidecar stops reading at
 * its cap, and its memory does not grow by what the tenant sent. */
static void test_token_endpoint_floods(void **state)
{
    static const struct {
        int mode;
        const char *what;
    } cases[] = {
        {FAKE_BIG_LEN, "10 MB with Content-Length"},
        {FAKE_BIG_STREAM, "10 MB chunked"},
        {FAKE_TOKEN_1MB, "a 1 MB ID token"},
        {FAKE_TRICKLE, "a byte every 100 ms"},
    };
    struct fake f;
    char tenant[64], base[128];
    const char *extra[] = {tenant, NULL};
    long hwm0;
    pid_t pid;
    (void)state;
    fake_start(&f, false);
    snprintf(tenant, sizeof(tenant), "AUTH0_BASE_DOMAIN=localhost:%d", f.port);
    it_spare_start(1, "sidecar-fake-tenant.log", extra, base, sizeof(base));
    pid = it_env()->spare[1].pid;
    hwm0 = it_proc_status_kb(pid, "VmHWM");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct it_resp r;
        atomic_store(&f.mode, cases[i].mode);
        atomic_store(&f.produced, 0);
        redirect_with_code(base, &r);
        print_message("token endpoint answering %s: %s in %.2f s; the fake tenant produced %ld "
                      "bytes; sidecar VmHWM %ld KiB\n",
                      cases[i].what, r.location != NULL ? r.location : "(none)", r.seconds,
                      atomic_load(&f.produced), it_proc_status_kb(pid, "VmHWM"));
        if (!is_login_error(&r, "token_exchange_failed"))
            fail_msg("%s: %ld %s", cases[i].what, r.status,
                     r.location != NULL ? r.location : "(none)");
        assert_true(r.seconds * 1000 < BOUND_MS);
        assert_true(atomic_load(&f.produced) < BIG / 2);
        it_resp_cleanup(&r);
    }
    assert_true(it_proc_status_kb(pid, "VmHWM") - hwm0 < HWM_GROWTH_KB);
    it_proc_stop(&it_env()->spare[1]);
    fake_stop(&f);
}

/* Houston's answer: a session cookie that is empty, foreign or has a control byte is
 * houston_rejected; a 10 MB body or a trickle is bounded; the same fake Houston's plain
 * success logs in (the control). */
static void test_houston_answers(void **state)
{
    static const struct {
        int mode;
        const char *code;
        const char *what;
    } cases[] = {
        {FAKE_HOUSTON_OK, NULL, "success (control)"},
        {FAKE_COOKIE_EMPTY, "houston_rejected", "an empty session cookie"},
        {FAKE_COOKIE_OTHER, "houston_rejected", "another cookie name"},
        {FAKE_COOKIE_CTL, "houston_rejected", "a control byte in the cookie"},
        {FAKE_HOUSTON_BIG, "houston_rejected", "a 10 MB body"},
        {FAKE_TRICKLE, "houston_unavailable", "a body trickling a byte every 100 ms"},
    };
    struct fake f;
    char houston[64], base[128];
    const char *extra[] = {houston, NULL};
    (void)state;
    fake_start(&f, true);
    snprintf(houston, sizeof(houston), "AUTH_SIDECAR_HOUSTON_URL=http://127.0.0.1:%d", f.port);
    it_spare_start(2, "sidecar-fake-houston.log", extra, base, sizeof(base));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct it_client *c = it_client_new(it_env());
        struct it_login l;
        bool ok;
        atomic_store(&f.mode, cases[i].mode);
        atomic_store(&f.produced, 0);
        assert_int_equal(it_login_at(c, base, QUERY, EMAIL, &l), 0);
        ok = cases[i].code == NULL ? is_success(&l.redirect)
                                   : is_login_error(&l.redirect, cases[i].code) ||
                                         (cases[i].mode == FAKE_HOUSTON_BIG &&
                                          is_login_error(&l.redirect, "houston_unavailable"));
        print_message("Houston answering %s: %s in %.2f s (produced %ld bytes)\n", cases[i].what,
                      ok ? "as expected" : "NOT as expected", l.redirect.seconds,
                      atomic_load(&f.produced));
        if (!ok)
            fail_msg("Houston answering %s: %ld %s", cases[i].what, l.redirect.status,
                     l.redirect.location != NULL ? l.redirect.location : "(none)");
        if (cases[i].code != NULL)
            assert_null(it_resp_set_cookie(&l.redirect, IT_AUTH_COOKIE "=", 0));
        assert_true(l.redirect.seconds * 1000 < BOUND_MS);
        assert_true(atomic_load(&f.produced) < BIG / 2);
        it_login_cleanup(&l);
        it_client_free(c);
    }
    it_proc_stop(&it_env()->spare[2]);
    fake_stop(&f);
}

/* ---- slow peers under concurrency ---- */

struct job {
    const char *base;
    int ok;         /* ended with the expected code */
    double seconds; /* the redirect's duration */
    const char *code;
    double sent; /* when the redirect was sent, seconds on CLOCK_MONOTONIC */
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *login_job(void *arg)
{
    struct job *j = arg;
    struct it_client *c = it_client_new(it_env());
    struct it_login l;
    char want[256];
    snprintf(want, sizeof(want), "%s%s", IT_LOGIN_ERROR_PREFIX, j->code);
    if (c != NULL && it_login_at(c, j->base, QUERY, EMAIL, &l) == 0) {
        j->ok = l.redirect.location != NULL && strcmp(l.redirect.location, want) == 0;
        j->seconds = l.redirect.seconds;
        j->sent = mono_s() - l.redirect.seconds;
    }
    it_login_cleanup(&l);
    it_client_free(c);
    return NULL;
}

struct probe {
    const char *base;
    atomic_bool stop;
    long worst_ms, count, failed;
};

/* /healthz and /readyz on the sidecar at p->base, a fresh connection each, every 100 ms. */
static void *probe_loop(void *arg)
{
    struct probe *p = arg;
    char h[256], r[256];
    snprintf(h, sizeof(h), "%s/healthz", p->base);
    snprintf(r, sizeof(r), "%s/readyz", p->base);
    while (!atomic_load(&p->stop)) {
        for (int i = 0; i < 2; i++) {
            struct it_client *c = it_client_new(it_env());
            struct it_resp resp;
            long t0 = it_now_ms(), ms;
            int rc = it_get(c, i == 0 ? h : r, &resp);
            ms = it_now_ms() - t0;
            p->failed += rc != 0 || resp.status != 200;
            p->worst_ms = ms > p->worst_ms ? ms : p->worst_ms;
            p->count++;
            it_resp_cleanup(&resp);
            it_client_free(c);
        }
        nap_ms(100);
    }
    return NULL;
}

/* The tenant's token requests during the last slow_peer, up to its reset. */
static long stalled_token_requests;
static double stalled_sent[CONCURRENT]; /* when each redirect was sent, in job order */

/* CONCURRENT logins at the sidecar at base while a peer sleeps past the request timeout: each
 * ends with code within one timeout and a margin, however few connections to the peer the
 * sidecar may open (the time a login waits for one counts against its own timeout), the
 * probes answer fast throughout, and the next normal login after the fault completes. */
static void slow_peer(const char *base, const char *tenant_fault, const char *houston_fault,
                      const char *code)
{
    struct it_env *e = it_env();
    pthread_t th[CONCURRENT], pt;
    struct job jobs[CONCURRENT];
    struct probe p;
    double worst = 0;
    int ok = 0;
    memset(&p, 0, sizeof(p));
    p.base = base;
    if (tenant_fault != NULL)
        assert_int_equal(it_tenant_fault(e, tenant_fault), 200);
    if (houston_fault != NULL)
        assert_int_equal(it_houston_fault(e, houston_fault), 200);
    assert_int_equal(pthread_create(&pt, NULL, probe_loop, &p), 0);
    for (int i = 0; i < CONCURRENT; i++) {
        jobs[i] = (struct job){base, 0, 0, code, 0};
        assert_int_equal(pthread_create(&th[i], NULL, login_job, &jobs[i]), 0);
    }
    for (int i = 0; i < CONCURRENT; i++) {
        pthread_join(th[i], NULL);
        ok += jobs[i].ok;
        worst = jobs[i].seconds > worst ? jobs[i].seconds : worst;
        stalled_sent[i] = jobs[i].sent;
    }
    atomic_store(&p.stop, true);
    pthread_join(pt, NULL);
    print_message("%d of %d logins ended %s, the slowest in %.2f s; %ld probes, %ld failed, "
                  "worst %ld ms\n",
                  ok, CONCURRENT, code, worst, p.count, p.failed, p.worst_ms);
    assert_int_equal(ok, CONCURRENT);
    assert_true(worst * 1000 < BOUND_MS);
    assert_int_equal(p.failed, 0);
    assert_true(p.count >= 10);
    assert_true(p.worst_ms < 1000);
    stalled_token_requests = tenant_stat("token_requests"); /* the reset clears it */
    assert_int_equal(it_peers_reset(e), 0);
    login_expect(base, NULL, "the first login after the fault");
}

static void test_tenant_slow(void **state)
{
    (void)state;
    slow_peer(it_env()->sidecar_url, "{\"token_delay_ms\":4000}", NULL, "token_exchange_failed");
}

static void test_houston_slow(void **state)
{
    (void)state;
    slow_peer(it_env()->sidecar_url, NULL, "{\"delay_ms\":4000}", "houston_unavailable");
}

/* A slow tenant (within the timeout) and a stalled Houston: the login's two calls share one
 * budget, so the person waits one timeout, not one per peer (per call, the tenant's 1.4 s
 * and Houston's 1.5 s would add up to 2.9 s). */
static void test_one_budget_per_login(void **state)
{
    struct it_env *e = it_env();
    struct job j = {e->sidecar_url, 0, 0, "houston_unavailable", 0};
    (void)state;
    assert_int_equal(it_tenant_fault(e, "{\"token_delay_ms\":1400}"), 200);
    assert_int_equal(it_houston_fault(e, "{\"delay_ms\":4000}"), 200);
    login_job(&j);
    print_message("ended %s in %.2f s\n", j.ok ? j.code : "otherwise", j.seconds);
    assert_true(j.ok);
    assert_true(j.seconds * 1000 < TIMEOUT_MS + 1000);
    assert_int_equal(it_peers_reset(e), 0);
}

/* The tenant answers with less than 50 ms of the login's budget left: the hand-off is not
 * sent (Houston could mint a session the sidecar would then time out on), whichever way the
 * login ends. */
static void test_no_handoff_without_time(void **state)
{
    struct it_env *e = it_env();
    struct job j = {e->sidecar_url, 0, 0, "houston_unavailable", 0};
    long before = it_houston_received_count(e);
    (void)state;
    assert_int_equal(it_tenant_fault(e, "{\"token_delay_ms\":1460}"), 200);
    login_job(&j);
    if (!j.ok) { /* a slow machine: the token call itself may time out */
        j.code = "token_exchange_failed";
        assert_int_equal(it_tenant_fault(e, "{\"token_delay_ms\":1460}"), 200);
        login_job(&j);
    }
    print_message("ended %s in %.2f s\n", j.ok ? j.code : "otherwise", j.seconds);
    assert_true(j.ok);
    assert_int_equal(it_houston_received_count(e), before);
    assert_int_equal(it_peers_reset(e), 0);
}

static int by_time(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* How many token requests a stall that outlasts the timeout lets through with `slots`
 * connections, for redirects sent at sent[] (any order): one arriving at a free slot starts;
 * the others wait in order, and when a slot frees (at its call's deadline) the next starts
 * only if more than min_left_s of its own timeout is left (the sidecar's launch_min_ms, 300
 * ms at a 1.5 s timeout), else it ends unsent. */
static int launches_expected(double *sent, int n, int slots, double min_left_s)
{
    double free_at[8] = {0};
    int launched = 0;
    qsort(sent, (size_t)n, sizeof(*sent), by_time);
    for (int i = 0; i < n; i++) {
        int k = 0;
        for (int s = 1; s < slots; s++)
            k = free_at[s] < free_at[k] ? s : k;
        double t = free_at[k] > sent[i] ? free_at[k] : sent[i];
        if (t == sent[i] || sent[i] + TIMEOUT_MS / 1000.0 - t > min_left_s) {
            free_at[k] = sent[i] + TIMEOUT_MS / 1000.0;
            launched++;
        }
    }
    return launched;
}

/* Two connections per peer for CONCURRENT logins: the other logins wait in the sidecar for a
 * connection, and that wait is within their timeout (curl would not time a transfer that has
 * no connection yet: the sidecar's own deadline does). */
static void test_slow_peers_few_connections(void **state)
{
    const char *extra[] = {"AUTH_SIDECAR_PEER_CONNECTIONS=2", NULL};
    char base[128];
    (void)state;
    it_spare_start(2, "sidecar-few-connections.log", extra, base, sizeof(base));
    assert_int_equal(it_peers_reset(it_env()), 0);
    slow_peer(base, "{\"token_delay_ms\":4000}", NULL, "token_exchange_failed");
    /* When the two calls the stall held end, the others in line have no time left to finish:
     * none is started (no burst of spent codes at a tenant that just failed to answer). The
     * logins normally arrive within milliseconds and then exactly two reach the tenant; on a
     * slow build (TSan) they spread out, and a late one may still have the time to be sent:
     * the bound comes from when they were sent, with 150 ms of slack for the client's clock
     * (it sends before the sidecar starts the call's timeout). */
    int most = launches_expected(stalled_sent, CONCURRENT, 2, 0.150);
    print_message("token requests during the stall: %ld (at most %d for these arrivals)\n",
                  stalled_token_requests, most);
    assert_true(stalled_token_requests >= 2);
    assert_true(stalled_token_requests <= most);
    slow_peer(base, NULL, "{\"delay_ms\":4000}", "houston_unavailable");
}

/* ---- JWKS faults ---- */

/* One login at base whose ID token's kid the sidecar cannot find: refused as an invalid ID
 * token within bound_ms. */
static void unknown_kid_login(const char *base, const char *what, long bound_ms)
{
    struct it_client *c = it_client_new(it_env());
    struct it_login l;
    assert_int_equal(it_login_at(c, base, QUERY, EMAIL, &l), 0);
    print_message("%s: %s in %.2f s\n", what,
                  l.redirect.location != NULL ? l.redirect.location : "(none)", l.redirect.seconds);
    assert_true(is_login_error(&l.redirect, "invalid_id_token"));
    assert_true(l.redirect.seconds * 1000 < bound_ms);
    it_login_cleanup(&l);
    it_client_free(c);
}

/* The JWKS endpoint fails once the cache is warm: logins on the cached key keep working and
 * readiness holds; an unknown kid is refused (its refetch failed); a slow JWKS bounds the
 * refetch by the request timeout. */
static void test_jwks_failing_warm_cache(void **state)
{
    const char *extra[] = {"AUTH_SIDECAR_JWKS_MIN_REFETCH_SECONDS=1", NULL};
    struct it_env *e = it_env();
    char base[128], ready[160];
    long f0;
    (void)state;
    it_spare_start(0, "sidecar-jwks.log", extra, base, sizeof(base));
    snprintf(ready, sizeof(ready), "%s/readyz", base);
    login_expect(base, NULL, "before the fault");
    assert_int_equal(it_tenant_fault(e, "{\"jwks_status\":500}"), 200);
    login_expect(base, NULL, "JWKS answering 500, cache warm");
    nap_ms(1100);
    f0 = tenant_stat("jwks_fetches");
    assert_int_equal(it_tenant_fault(e, "{\"id_token_header\":{\"kid\":\"rotated-away\"}}"), 200);
    login_expect(base, "invalid_id_token", "an unknown kid while the JWKS fails");
    assert_true(tenant_stat("jwks_fetches") == f0 + 1); /* it did try, once */
    assert_int_equal(it_tenant_fault(e, "{\"id_token_header\":null}"), 200);
    login_expect(base, NULL, "the cached key after a failed refetch");
    assert_int_equal(it_wait_status(e, ready, 200, 1000), 0);
    /* A JWKS slower than the request timeout. */
    nap_ms(1100);
    assert_int_equal(it_tenant_fault(e, "{\"jwks_status\":null,\"jwks_delay_ms\":5000,"
                                        "\"id_token_header\":{\"kid\":\"slow-kid\"}}"),
                     200);
    unknown_kid_login(base, "unknown kid with a JWKS sleeping 5 s", BOUND_MS);
    assert_int_equal(it_tenant_fault(e, "{\"id_token_header\":null}"), 200);
    login_expect(base, NULL, "the cached key while the JWKS is slow");
    /* A slow token answer, then an unknown kid: the refetch is waited for only until the
     * login's deadline (it waited for the fetch's own timeout, 2.5 s here, and then failed
     * the hand-off to Houston as "houston_unavailable"). */
    nap_ms(1100);
    assert_int_equal(it_tenant_fault(e, "{\"token_delay_ms\":1000,\"jwks_delay_ms\":5000,"
                                        "\"id_token_header\":{\"kid\":\"late-kid\"}}"),
                     200);
    unknown_kid_login(base, "slow token answer, then an unknown kid with a JWKS sleeping 5 s",
                      TIMEOUT_MS + 600);
    assert_int_equal(it_peers_reset(e), 0);
    it_proc_stop(&e->spare[0]);
}

struct kid_job {
    const char *base;
    int refused;
};

static void *unknown_kid_job(void *arg)
{
    struct kid_job *j = arg;
    struct it_client *c = it_client_new(it_env());
    struct it_login l;
    if (c != NULL && it_login_at(c, j->base, QUERY, EMAIL, &l) == 0)
        j->refused = is_login_error(&l.redirect, "invalid_id_token");
    it_login_cleanup(&l);
    it_client_free(c);
    return NULL;
}

/* 20 tokens in a row with 20 different unknown kids: the tenant sees exactly one JWKS fetch
 * (the first miss; the rest fall in the 30 s throttle window). Then, on a fresh sidecar, 12
 * concurrent misses while the JWKS is slow share one fetch. */
static void test_unknown_kid_flood(void **state)
{
    struct it_env *e = it_env();
    pthread_t th[12];
    struct kid_job jobs[12];
    char base[128], fault[128];
    long f0;
    int refused = 0;
    (void)state;
    it_spare_start(0, "sidecar-flood.log", NULL, base, sizeof(base));
    f0 = tenant_stat("jwks_fetches");
    for (int i = 0; i < 20; i++) {
        snprintf(fault, sizeof(fault), "{\"id_token_header\":{\"kid\":\"unknown-%d\"}}", i);
        assert_int_equal(it_tenant_fault(e, fault), 200);
        login_expect(base, "invalid_id_token", fault);
    }
    print_message("20 unknown kids: %ld JWKS fetches, %.0f throttled misses\n",
                  tenant_stat("jwks_fetches") - f0,
                  metric(base, "houston_auth_jwks_throttled_misses_total"));
    assert_int_equal(tenant_stat("jwks_fetches") - f0, 1);
    assert_true(metric(base, "houston_auth_jwks_throttled_misses_total") >= 19);
    it_proc_stop(&e->spare[0]);

    it_spare_start(1, "sidecar-flood-concurrent.log", NULL, base, sizeof(base));
    assert_int_equal(
        it_tenant_fault(e, "{\"jwks_delay_ms\":800,\"id_token_header\":{\"kid\":\"unknown-c\"}}"),
        200);
    f0 = tenant_stat("jwks_fetches");
    for (int i = 0; i < 12; i++) {
        jobs[i] = (struct kid_job){base, 0};
        assert_int_equal(pthread_create(&th[i], NULL, unknown_kid_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 12; i++) {
        pthread_join(th[i], NULL);
        refused += jobs[i].refused;
    }
    print_message("12 concurrent misses: %d refused, %ld JWKS fetches, %.0f coalesced, %.0f "
                  "throttled\n",
                  refused, tenant_stat("jwks_fetches") - f0,
                  metric(base, "houston_auth_jwks_coalesced_misses_total"),
                  metric(base, "houston_auth_jwks_throttled_misses_total"));
    assert_int_equal(refused, 12);
    assert_int_equal(tenant_stat("jwks_fetches") - f0, 1);
    it_proc_stop(&e->spare[1]);
}

/* ---- the end ---- */

static void test_logs_hold_no_secrets(void **state)
{
    static const char *const logs[] = {"sidecar.log",
                                       "sidecar-keys.log",
                                       "sidecar-fake-tenant.log",
                                       "sidecar-fake-houston.log",
                                       "sidecar-jwks.log",
                                       "sidecar-flood.log",
                                       "sidecar-flood-concurrent.log"};
    (void)state;
    it_expect_logs_clean(it_env(), logs, sizeof(logs) / sizeof(logs[0]), 10);
}

static int setup(void **state)
{
    key2048 = EVP_RSA_gen(2048);
    key1024 = EVP_RSA_gen(1024);
    rogue = EVP_RSA_gen(2048);
    eone_src = EVP_RSA_gen(2048);
    if (key2048 == NULL || key1024 == NULL || rogue == NULL || eone_src == NULL)
        return -1;
    return it_group_setup(state);
}

static int teardown(void **state)
{
    EVP_PKEY_free(key2048);
    EVP_PKEY_free(key1024);
    EVP_PKEY_free(rogue);
    EVP_PKEY_free(eone_src);
    return it_group_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_kid_shapes, it_test_setup),
        cmocka_unit_test_setup(test_oversized_id_token, it_test_setup),
        cmocka_unit_test_setup(test_jwks_keys_and_crafted_tokens, it_test_setup),
        cmocka_unit_test_setup(test_token_endpoint_floods, it_test_setup),
        cmocka_unit_test_setup(test_houston_answers, it_test_setup),
        /* before the tests that leave Houston holding delayed callbacks, which it records
         * when their delay ends */
        cmocka_unit_test_setup(test_no_handoff_without_time, it_test_setup),
        cmocka_unit_test_setup(test_tenant_slow, it_test_setup),
        cmocka_unit_test_setup(test_houston_slow, it_test_setup),
        cmocka_unit_test_setup(test_slow_peers_few_connections, it_test_setup),
        cmocka_unit_test_setup(test_one_budget_per_login, it_test_setup),
        cmocka_unit_test_setup(test_unknown_kid_flood, it_test_setup),
        cmocka_unit_test_setup(test_jwks_failing_warm_cache, it_test_setup),
        cmocka_unit_test(test_logs_hold_no_secrets),
        cmocka_unit_test(it_test_processes_exit_clean),
    };
    /* IT_TEST_FILTER=<glob> runs only the matching tests (debugging). */
    if (getenv("IT_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("IT_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
