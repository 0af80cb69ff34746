/* Benchmark 1: complete ID-token checks per second on one thread.
 *
 * Everything the sidecar does per ID token runs here through its own code: ha_jwt_verify
 * splits the compact JWS, strictly base64url-decodes the parts, parses header and claims,
 * pins alg, takes the key by kid from a JWKS cache (loaded once from a fake in-process
 * ha_http, as the sidecar loads it from the tenant), checks the RS256 signature and the
 * claims. The token is shaped like an Auth0 ID token (same claims, RSA-2048 key) and signed
 * here with a key made at start, so the program needs no peer.
 *
 * Prints "name value" lines for bench/run.sh: full checks per second, and the same loop
 * restricted to the signature (ha_jwt_verify_signature on a parsed token) and to parsing
 * (ha_jwt_parse), which say where the time goes when the full rate falls short.
 *
 * Then both sides again, interleaved in 20 ms slices inside this one process: the full check
 * against what `openssl speed rsa2048` times for verify (EVP_PKEY_verify of a SHA-256
 * digest on a context initialised once). On a shared machine the two runs of bench/run.sh
 * see different bursts of other work; slices this short see the same ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/bn.h>
#include <openssl/rsa.h>
#include "houston_auth/b64url.h"
#include "houston_auth/buf.h"
#include "houston_auth/http_client.h"
#include "houston_auth/jwks.h"
#include "houston_auth/jwt_verify.h"
#include "houston_auth/util.h"

#define ISSUER "https://localhost:8443/"
#define CLIENT_ID "houston-auth-bench"
#define NONCE "q5dF0Yc2bq1k3mNcYtQwXg2YyZlJ3VnKkZ8wqW1rR0s"
#define KID "bench-key-1"
#define JWKS_URI "https://localhost:8443/.well-known/jwks.json"
#define CHECK_EVERY 64
#define SLICE_S 0.02

struct bench {
    EVP_PKEY *key;
    char *jwks;  /* the JWKS document the fake tenant serves */
    char *token; /* the signed ID token */
    struct ha_jwks_cache *cache;
};

static double now_s(void)
{
    return (double)ha_mono_ns() / 1e9;
}

static char *b64_bn_param(EVP_PKEY *key, const char *name)
{
    BIGNUM *bn = NULL;
    unsigned char bytes[1024];
    char *out = NULL;
    int n;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
        return NULL;
    n = BN_bn2bin(bn, bytes);
    if (n > 0 && n <= (int)sizeof(bytes) && ha_b64url_encode(bytes, (size_t)n, &out) != HA_OK)
        out = NULL;
    BN_free(bn);
    return out;
}

static char *make_jwks(EVP_PKEY *key)
{
    char *n = b64_bn_param(key, OSSL_PKEY_PARAM_RSA_N);
    char *e = b64_bn_param(key, OSSL_PKEY_PARAM_RSA_E);
    struct ha_buf b;
    char *out = NULL;
    ha_buf_init(&b, 64 * 1024);
    if (n != NULL && e != NULL &&
        ha_buf_appendf(&b,
                       "{\"keys\":[{\"alg\":\"RS256\",\"kty\":\"RSA\",\"use\":\"sig\","
                       "\"n\":\"%s\",\"e\":\"%s\",\"kid\":\"%s\"}]}",
                       n, e, KID) == HA_OK)
        ha_buf_steal(&b, &out);
    ha_buf_cleanup(&b);
    free(n);
    free(e);
    return out;
}

static char *b64_str(const char *s)
{
    char *out = NULL;
    if (ha_b64url_encode((const unsigned char *)s, strlen(s), &out) != HA_OK)
        return NULL;
    return out;
}

/* The claims of an Auth0 ID token for the scope "openid profile email". */
static char *claims_json(long now)
{
    struct ha_buf b;
    char *out = NULL;
    ha_buf_init(&b, 8192);
    if (ha_buf_appendf(&b,
                       "{\"nickname\":\"dev\",\"name\":\"dev@example.com\",\"picture\":"
                       "\"https://s.gravatar.com/avatar/5f1b2c3d4e5f60718293a4b5c6d7e8f9?s=480&r="
                       "pg&d=https%%3A%%2F%%2Fcdn.auth0.com%%2Favatars%%2Fde.png\","
                       "\"updated_at\":\"2024-05-01T12:00:00.000Z\",\"email\":\"dev@example.com\","
                       "\"email_verified\":true,\"iss\":\"%s\",\"aud\":\"%s\",\"iat\":%ld,"
                       "\"exp\":%ld,\"sub\":\"auth0|6630a1b2c3d4e5f607182930\","
                       "\"sid\":\"Xk3N1p0a9QwErTyUiOpAsDfGhJkLzXcV\",\"nonce\":\"%s\"}",
                       ISSUER, CLIENT_ID, now, now + 36000, NONCE) == HA_OK)
        ha_buf_steal(&b, &out);
    ha_buf_cleanup(&b);
    return out;
}

static char *sign_token(EVP_PKEY *key, const char *input)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[512];
    size_t slen = sizeof(sig);
    char *s64 = NULL, *out = NULL;
    struct ha_buf b;
    ha_buf_init(&b, 16384);
    if (md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(md, sig, &slen, (const unsigned char *)input, strlen(input)) == 1 &&
        ha_b64url_encode(sig, slen, &s64) == HA_OK &&
        ha_buf_appendf(&b, "%s.%s", input, s64) == HA_OK)
        ha_buf_steal(&b, &out);
    ha_buf_cleanup(&b);
    free(s64);
    EVP_MD_CTX_free(md);
    return out;
}

static char *make_token(EVP_PKEY *key)
{
    char *claims = claims_json((long)time(NULL));
    char *h64 = b64_str("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"" KID "\"}");
    char *c64 = claims != NULL ? b64_str(claims) : NULL;
    char *out = NULL;
    struct ha_buf b;
    ha_buf_init(&b, 16384);
    if (h64 != NULL && c64 != NULL && ha_buf_appendf(&b, "%s.%s", h64, c64) == HA_OK)
        out = sign_token(key, b.data);
    ha_buf_cleanup(&b);
    free(claims);
    free(h64);
    free(c64);
    return out;
}

/* The fake tenant: answers the JWKS URI with the document, anything else with 404. */
static enum ha_err fake_perform(void *ctx, const struct ha_http_request *req,
                                struct ha_http_response *resp)
{
    const struct bench *b = ctx;
    memset(resp, 0, sizeof(*resp));
    resp->status = strcmp(req->url, JWKS_URI) == 0 ? 200 : 404;
    resp->body = strdup(resp->status == 200 ? b->jwks : "{}");
    resp->content_type = strdup("application/json");
    if (resp->body == NULL || resp->content_type == NULL)
        return HA_ERR_NOMEM;
    resp->body_len = strlen(resp->body);
    return HA_OK;
}

static int setup(struct bench *b)
{
    struct ha_jwks_cache_opts o = {0};
    b->key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (b->key == NULL || (b->jwks = make_jwks(b->key)) == NULL ||
        (b->token = make_token(b->key)) == NULL)
        return -1;
    o.jwks_uri = JWKS_URI;
    o.http.perform = fake_perform;
    o.http.ctx = b;
    o.clock = ha_clock_system;
    o.refresh_s = 3600;
    o.min_refetch_s = 30;
    if (ha_jwks_cache_new(&o, &b->cache) != HA_OK || ha_jwks_cache_refresh(b->cache) != HA_OK)
        return -1;
    return 0;
}

static void expect_init(struct ha_jwt_expect *e)
{
    memset(e, 0, sizeof(*e));
    e->issuer = ISSUER;
    e->audience = CLIENT_ID;
    e->azp = CLIENT_ID;
    e->azp_if_multi_aud = true;
    e->nonce = NONCE;
    e->require_iat = true;
    e->require_sub = true;
    e->now = (long)time(NULL);
    e->leeway = 60;
}

/* Complete checks for secs seconds; -1 when one fails. */
static double run_full(struct bench *b, double secs)
{
    struct ha_jwt_expect e;
    const char *reason = NULL;
    size_t len = strlen(b->token);
    unsigned long n = 0;
    double t0 = now_s(), t = t0;
    expect_init(&e);
    while (t - t0 < secs) {
        for (int i = 0; i < CHECK_EVERY; i++, n++) {
            if (ha_jwt_verify(b->token, len, b->cache, &e, NULL, &reason) != HA_OK) {
                fprintf(stderr, "bench_verify: verification failed: %s\n", reason);
                return -1;
            }
        }
        t = now_s();
    }
    return (double)n / (t - t0);
}

static double run_signature(struct bench *b, double secs)
{
    struct ha_jwt *jwt = NULL;
    EVP_PKEY *key = NULL;
    unsigned long n = 0;
    double t0 = now_s(), t = t0, rate = -1;
    if (ha_jwt_parse(b->token, strlen(b->token), &jwt) != HA_OK ||
        ha_jwks_cache_get_key(b->cache, KID, &key) != HA_OK)
        goto out;
    while (t - t0 < secs) {
        for (int i = 0; i < CHECK_EVERY; i++, n++) {
            if (ha_jwt_verify_signature(jwt, key) != HA_OK)
                goto out;
        }
        t = now_s();
    }
    rate = (double)n / (t - t0);
out:
    EVP_PKEY_free(key);
    ha_jwt_free(jwt);
    return rate;
}

static double run_parse(struct bench *b, double secs)
{
    size_t len = strlen(b->token);
    unsigned long n = 0;
    double t0 = now_s(), t = t0;
    while (t - t0 < secs) {
        for (int i = 0; i < CHECK_EVERY; i++, n++) {
            struct ha_jwt *jwt = NULL;
            if (ha_jwt_parse(b->token, len, &jwt) != HA_OK)
                return -1;
            ha_jwt_free(jwt);
        }
        t = now_s();
    }
    return (double)n / (t - t0);
}

/* openssl speed's verify loop: one context, one precomputed digest, the token's signature. */
struct ref {
    EVP_PKEY_CTX *ctx;
    unsigned char digest[32];
    struct ha_jwt *jwt;
};

static int ref_init(struct bench *b, struct ref *r)
{
    unsigned int dlen = 0;
    if (ha_jwt_parse(b->token, strlen(b->token), &r->jwt) != HA_OK ||
        EVP_Digest(r->jwt->signing_input, r->jwt->signing_input_len, r->digest, &dlen, EVP_sha256(),
                   NULL) != 1)
        return -1;
    r->ctx = EVP_PKEY_CTX_new(b->key, NULL);
    if (r->ctx == NULL || EVP_PKEY_verify_init(r->ctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(r->ctx, RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(r->ctx, EVP_sha256()) != 1)
        return -1;
    return 0;
}

/* Alternating slices for secs seconds; rates into *ours and *theirs, -1 on a failed check. */
static int run_interleaved(struct bench *b, double secs, double *ours, double *theirs)
{
    struct ha_jwt_expect e;
    struct ref r = {0};
    size_t len = strlen(b->token);
    unsigned long n[2] = {0, 0};
    double t[2] = {0, 0}, end = now_s() + secs;
    int rc = -1;

    expect_init(&e);
    if (ref_init(b, &r) != 0)
        goto out;
    while (now_s() < end) {
        for (int side = 0; side < 2; side++) {
            double t0 = now_s(), t1 = t0;
            while (t1 - t0 < SLICE_S) {
                for (int i = 0; i < 8; i++, n[side]++) {
                    if (side == 0 ? ha_jwt_verify(b->token, len, b->cache, &e, NULL, NULL) != HA_OK
                                  : EVP_PKEY_verify(r.ctx, r.jwt->sig, r.jwt->sig_len, r.digest,
                                                    sizeof(r.digest)) != 1)
                        goto out;
                }
                t1 = now_s();
            }
            t[side] += t1 - t0;
        }
    }
    *ours = (double)n[0] / t[0];
    *theirs = (double)n[1] / t[1];
    rc = 0;
out:
    EVP_PKEY_CTX_free(r.ctx);
    ha_jwt_free(r.jwt);
    return rc;
}

int main(int argc, char **argv)
{
    struct bench b = {0};
    double secs = argc > 1 ? strtod(argv[1], NULL) : 3.0;
    double full, sig, parse, mixed_ours = 0, mixed_ref = 0;
    int rc = 1;

    if (secs <= 0 || secs > 60)
        secs = 3.0;
    if (setup(&b) != 0) {
        fprintf(stderr, "bench_verify: setup failed\n");
        goto out;
    }
    full = run_full(&b, secs);
    sig = run_signature(&b, secs / 2);
    parse = run_parse(&b, secs / 3);
    if (full < 0 || sig < 0 || parse < 0 ||
        run_interleaved(&b, secs * 2, &mixed_ours, &mixed_ref) != 0)
        goto out;
    printf("token_bytes %zu\nverify_per_s %.1f\nsignature_per_s %.1f\nparse_per_s %.1f\n",
           strlen(b.token), full, sig, parse);
    printf("interleaved_verify_per_s %.1f\ninterleaved_ref_per_s %.1f\n", mixed_ours, mixed_ref);
    rc = 0;
out:
    ha_jwks_cache_free(b.cache);
    EVP_PKEY_free(b.key);
    free(b.jwks);
    free(b.token);
    return rc;
}
