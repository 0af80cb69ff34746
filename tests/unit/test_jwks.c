/* jwks: which JWKs become keys (documents built here from freshly generated keys), and the
 * cache as the tenant sees it through a fake transport that counts, delays or blocks
 * fetches, with an injected clock for the throttle window and the refresh schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include "houston_auth/jwks.h"
#include "houston_auth/proto.h"

#define URI "https://tenant.example.com/.well-known/jwks.json"
#define T0 1700000000L
#define REFRESH_S 3600L
#define WINDOW_S 30L
#define THREADS 8

static EVP_PKEY *k1, *k2, *k1024, *kec;
static char *jwks_k1, *jwks_k1k2;

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    int n;
    char *s;
    va_start(ap, f);
    n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    assert_true(n >= 0);
    s = malloc((size_t)n + 1);
    assert_non_null(s);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

/* base64url without padding, written here so the tests do not trust the code under test. */
static char *b64u(const unsigned char *in, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    int n, i;
    assert_non_null(out);
    n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    for (i = 0; i < n; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    return out;
}

/* The key's n or e, big-endian, with `pad` extra leading zero bytes. */
static char *bn_b64(EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1100] = {0};
    int n;
    char *s;
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    n = BN_bn2bin(bn, buf + pad);
    s = b64u(buf, (size_t)(n + pad));
    BN_free(bn);
    return s;
}

/* {"kty":"RSA","kid":kid,"n":..,"e":..<extra>} for key k; kid NULL leaves it out. */
static char *jwk_rsa(EVP_PKEY *k, const char *kid, const char *extra)
{
    char *n = bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0), *e = bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0);
    char *kid_m = kid != NULL ? fmt("\"kid\":\"%s\",", kid) : fmt("%s", "");
    char *s = fmt("{\"kty\":\"RSA\",%s\"n\":\"%s\",\"e\":\"%s\"%s}", kid_m, n, e, extra);
    free(n);
    free(e);
    free(kid_m);
    return s;
}

static char *jwk_ec(EVP_PKEY *k)
{
    unsigned char pub[65];
    size_t len = 0;
    char *x, *y, *s;
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len), 1);
    assert_int_equal(len, 65);
    x = b64u(pub + 1, 32);
    y = b64u(pub + 33, 32);
    s = fmt("{\"kty\":\"EC\",\"kid\":\"ec\",\"use\":\"sig\",\"alg\":\"ES256\",\"crv\":\"P-256\","
            "\"x\":\"%s\",\"y\":\"%s\"}",
            x, y);
    free(x);
    free(y);
    return s;
}

static int setup(void **state)
{
    char *a, *b;
    (void)state;
    k1 = EVP_RSA_gen(2048);
    k2 = EVP_RSA_gen(2048);
    k1024 = EVP_RSA_gen(1024);
    kec = EVP_EC_gen("P-256");
    if (k1 == NULL || k2 == NULL || k1024 == NULL || kec == NULL)
        return -1;
    a = jwk_rsa(k1, "kid1", ",\"use\":\"sig\",\"alg\":\"RS256\"");
    b = jwk_rsa(k2, "kid2", ",\"use\":\"sig\",\"alg\":\"RS256\"");
    jwks_k1 = fmt("{\"keys\":[%s]}", a);
    jwks_k1k2 = fmt("{\"keys\":[%s,%s]}", a, b);
    free(a);
    free(b);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    EVP_PKEY_free(k1024);
    EVP_PKEY_free(kec);
    free(jwks_k1);
    free(jwks_k1k2);
    return 0;
}

static struct ha_jwks_set *parse_ok(const char *doc)
{
    struct ha_jwks_set *set = NULL;
    assert_int_equal(ha_jwks_parse(doc, strlen(doc), &set), HA_OK);
    assert_non_null(set);
    return set;
}

static void expect_key(const struct ha_jwks_set *set, const char *kid, EVP_PKEY *want)
{
    EVP_PKEY *got = NULL;
    assert_int_equal(ha_jwks_set_find(set, kid, &got), HA_OK);
    assert_int_equal(EVP_PKEY_eq(got, want), 1);
}

static void expect_no_key(const struct ha_jwks_set *set, const char *kid)
{
    EVP_PKEY *got = NULL;
    assert_int_equal(ha_jwks_set_find(set, kid, &got), HA_ERR_NOT_FOUND);
    assert_null(got);
}

/* ---- parsing ---- */

static void test_parse_keeps_only_rs256_signing_keys(void **state)
{
    char *kept1 =
        jwk_rsa(k1, "good", ",\"use\":\"sig\",\"alg\":\"RS256\",\"key_ops\":[\"verify\"]");
    char *kept2 = jwk_rsa(k2, "plain", "");
    char *ec = jwk_ec(kec);
    char *enc = jwk_rsa(k2, "enc", ",\"use\":\"enc\"");
    char *small = jwk_rsa(k1024, "small", "");
    char *rs512 = jwk_rsa(k2, "rs512", ",\"alg\":\"RS512\"");
    char *ops = jwk_rsa(k2, "ops", ",\"key_ops\":[\"encrypt\",\"wrapKey\"]");
    char *ops_bad = jwk_rsa(k2, "ops2", ",\"key_ops\":\"verify\"");
    char *use_num = jwk_rsa(k2, "usenum", ",\"use\":1");
    char *dup_kid = jwk_rsa(k2, "good", "");
    char *doc;
    struct ha_jwks_set *set;
    (void)state;

    doc = fmt("{\"keys\":[%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,"
              "{\"kty\":\"rsa\",\"kid\":\"lower\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
              "{\"kid\":\"nokty\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
              "{\"kty\":\"RSA\",\"kid\":\"non\"},7,\"x\",null]}",
              ec, kept1, enc, small, rs512, ops, ops_bad, use_num, dup_kid, kept2);
    set = parse_ok(doc);
    assert_int_equal(set->count, 2);
    assert_int_equal(set->skipped, 14);
    expect_key(set, "good", k1);
    expect_key(set, "plain", k2);
    expect_no_key(set, "ec");
    expect_no_key(set, "enc");
    expect_no_key(set, "small");
    expect_no_key(set, "rs512");
    expect_no_key(set, "ops");
    expect_no_key(set, NULL); /* two keys: no kid is ambiguous */
    expect_no_key(set, "goo");
    expect_no_key(set, "GOOD");
    ha_jwks_set_free(set);
    free(doc);
    free(kept1);
    free(kept2);
    free(ec);
    free(enc);
    free(small);
    free(rs512);
    free(ops);
    free(ops_bad);
    free(use_num);
    free(dup_kid);
}

static void expect_skipped(const char *n, const char *e)
{
    char *doc = fmt("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"%s\",\"e\":\"%s\"}]}", n, e);
    struct ha_jwks_set *set = parse_ok(doc);
    assert_int_equal(set->count, 0);
    assert_int_equal(set->skipped, 1);
    ha_jwks_set_free(set);
    free(doc);
}

static void test_parse_bad_numbers(void **state)
{
    char *n = bn_b64(k1, OSSL_PKEY_PARAM_RSA_N, 0), *n0 = bn_b64(k1, OSSL_PKEY_PARAM_RSA_N, 1);
    char *e = bn_b64(k1, OSSL_PKEY_PARAM_RSA_E, 0), *huge_n, *even_n, *doc;
    unsigned char big[1040], nb[256];
    struct ha_jwks_set *set;
    BIGNUM *bn = NULL;
    (void)state;

    expect_skipped(n, "AQ");           /* e = 1 */
    expect_skipped(n, "AQAC");         /* e even */
    expect_skipped(n, "");             /* e empty */
    expect_skipped(n, "AQAB=");        /* padded */
    expect_skipped(n, "AQ+B");         /* not base64url */
    expect_skipped(n, "AQEBAQEBAQEB"); /* e over 64 bits */
    expect_skipped("!!!!", e);
    expect_skipped("", e);
    memset(big, 0xc3, sizeof(big)); /* an odd 8320-bit "modulus": over the cap */
    huge_n = b64u(big, sizeof(big));
    expect_skipped(huge_n, e);
    assert_int_equal(EVP_PKEY_get_bn_param(k1, OSSL_PKEY_PARAM_RSA_N, &bn), 1);
    assert_int_equal(BN_bn2bin(bn, nb), 256);
    nb[255] &= 0xfe; /* an even modulus */
    even_n = b64u(nb, sizeof(nb));
    expect_skipped(even_n, e);
    /* A leading zero byte on n is tolerated: same key. */
    doc = fmt("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"}]}", n0, e);
    set = parse_ok(doc);
    assert_int_equal(set->count, 1);
    expect_key(set, NULL, k1); /* the only key answers a token without kid */
    expect_no_key(set, "kid1");
    ha_jwks_set_free(set);
    BN_free(bn);
    free(doc);
    free(n);
    free(n0);
    free(e);
    free(huge_n);
    free(even_n);
}

static void expect_refused(const char *doc, size_t len, enum ha_err want)
{
    struct ha_jwks_set *set = NULL;
    assert_int_equal(ha_jwks_parse(doc, len, &set), want);
    assert_null(set);
}

static char *many_keys(int count)
{
    char *body = fmt("%s", ""), *next;
    int i;
    for (i = 0; i < count; i++) {
        char *kid = fmt("k%d", i), *jwk = jwk_rsa(k1, kid, "");
        next = fmt("%s%s%s", body, i ? "," : "", jwk);
        free(body);
        free(kid);
        free(jwk);
        body = next;
    }
    next = fmt("{\"keys\":[%s]}", body);
    free(body);
    return next;
}

static void test_parse_refusals(void **state)
{
    char *doc, *jwk = jwk_rsa(k1, "kid1", "");
    size_t cap = HA_MAX_PEER_BODY + 1;
    struct ha_jwks_set *set;
    (void)state;

#define R(s, want) expect_refused(s, strlen(s), want)
    R("not json", HA_ERR_INVALID);
    R("", HA_ERR_INVALID);
    R("[]", HA_ERR_INVALID);
    R("{}", HA_ERR_INVALID);
    R("{\"keys\":{}}", HA_ERR_INVALID);
    R("{\"keys\":null}", HA_ERR_INVALID);
    R("{\"keys\":[],\"keys\":[]}", HA_ERR_INVALID);
    R("{\"keys\":[]} {}", HA_ERR_INVALID);
    R("{\"keys\":[{\"kty\":\"RSA\",\"kty\":\"EC\"}]}", HA_ERR_INVALID);
    R("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"n\":\"AQAB\"}]}", HA_ERR_INVALID);
#undef R
    /* A duplicate inside an otherwise good key refuses the whole document. */
    doc = fmt("{\"keys\":[%.*s,\"kid\":\"x\"}]}", (int)strlen(jwk) - 1, jwk);
    expect_refused(doc, strlen(doc), HA_ERR_INVALID);
    free(doc);

    doc = many_keys(HA_MAX_JWKS_KEYS + 1);
    expect_refused(doc, strlen(doc), HA_ERR_TOO_LARGE);
    free(doc);
    doc = many_keys(HA_MAX_JWKS_KEYS);
    set = parse_ok(doc);
    assert_int_equal(set->count, HA_MAX_JWKS_KEYS);
    expect_key(set, "k63", k1);
    ha_jwks_set_free(set);
    free(doc);

    doc = malloc(cap + 1);
    memset(doc, ' ', cap);
    memcpy(doc, "{\"keys\":[]}", 11);
    doc[cap] = '\0';
    expect_refused(doc, cap, HA_ERR_TOO_LARGE);
    free(doc);
    free(jwk);
}

/* ---- the cache ---- */

struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const char *body;
    long status;
    enum ha_err err;
    int delay_ms;
    bool block; /* hold the request until release */
    bool released;
    bool in_flight;
    int calls;
    int concurrent, max_concurrent;
    char method[8], url[256], accept[64];
};

static void fake_init(struct fake *f, const char *body)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->body = body;
    f->status = 200;
}

static void fake_cleanup(struct fake *f)
{
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
}

static void fake_wait(struct fake *f)
{
    struct timespec ts;
    if (f->delay_ms > 0) {
        pthread_mutex_unlock(&f->mu);
        ts.tv_sec = f->delay_ms / 1000;
        ts.tv_nsec = (long)(f->delay_ms % 1000) * 1000000L;
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&f->mu);
    }
    /* Blocked requests give up after 5 s so that a regression fails instead of hanging. */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    while (f->block && !f->released) {
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) != 0)
            break;
    }
}

static enum ha_err fake_do(void *ctx, const struct ha_http_request *req,
                           struct ha_http_response *resp)
{
    struct fake *f = ctx;
    enum ha_err err;
    pthread_mutex_lock(&f->mu);
    f->calls++;
    f->in_flight = true;
    if (++f->concurrent > f->max_concurrent)
        f->max_concurrent = f->concurrent;
    snprintf(f->method, sizeof(f->method), "%s", req->method);
    snprintf(f->url, sizeof(f->url), "%s", req->url);
    snprintf(f->accept, sizeof(f->accept), "%s", req->accept != NULL ? req->accept : "");
    pthread_cond_broadcast(&f->cv);
    fake_wait(f);
    err = f->err;
    memset(resp, 0, sizeof(*resp));
    if (err == HA_OK) {
        resp->status = f->status;
        resp->body = strdup(f->body);
        resp->body_len = strlen(f->body);
    }
    f->concurrent--;
    f->in_flight = false;
    pthread_mutex_unlock(&f->mu);
    return err;
}

struct clock {
    atomic_long now;
};

static long clock_now(void *ctx)
{
    struct clock *c = ctx;
    return atomic_load(&c->now);
}

static struct ha_jwks_cache *new_cache(struct fake *f, struct clock *clk)
{
    struct ha_jwks_cache_opts o = {URI, {fake_do, f}, {clock_now, clk}, REFRESH_S, WINDOW_S};
    struct ha_jwks_cache *c = NULL;
    atomic_store(&clk->now, T0);
    assert_int_equal(ha_jwks_cache_new(&o, &c), HA_OK);
    return c;
}

static struct ha_jwks_cache_stats stats(struct ha_jwks_cache *c)
{
    struct ha_jwks_cache_stats s;
    ha_jwks_cache_get_stats(c, &s);
    return s;
}

static void expect_cached(struct ha_jwks_cache *c, const char *kid, EVP_PKEY *want)
{
    EVP_PKEY *got = NULL;
    assert_int_equal(ha_jwks_cache_get_key(c, kid, &got), HA_OK);
    assert_int_equal(EVP_PKEY_eq(got, want), 1);
    EVP_PKEY_free(got);
}

static void expect_miss(struct ha_jwks_cache *c, const char *kid)
{
    EVP_PKEY *got = NULL;
    assert_int_equal(ha_jwks_cache_get_key(c, kid, &got), HA_ERR_JWT_KEY);
    assert_null(got);
}

static void test_cache_new_and_load(void **state)
{
    struct fake f;
    struct clock clk;
    struct ha_jwks_cache *c;
    struct ha_jwks_cache_opts bad = {NULL, {fake_do, NULL}, {clock_now, NULL}, 60, 30};
    EVP_PKEY *a = NULL, *b = NULL;
    (void)state;
    fake_init(&f, jwks_k1);
    assert_int_equal(ha_jwks_cache_new(&bad, &c), HA_ERR_INVALID);
    c = new_cache(&f, &clk);
    assert_false(ha_jwks_cache_ready(c));
    assert_int_equal(f.calls, 0);
    assert_int_equal(ha_jwks_cache_refresh(c), HA_OK);
    assert_true(ha_jwks_cache_ready(c));
    assert_int_equal(f.calls, 1);
    assert_string_equal(f.method, "GET");
    assert_string_equal(f.url, URI);
    assert_string_equal(f.accept, "application/json");
    /* Each lookup hands out its own reference, valid after the cache is gone. */
    assert_int_equal(ha_jwks_cache_get_key(c, "kid1", &a), HA_OK);
    assert_int_equal(ha_jwks_cache_get_key(c, NULL, &b), HA_OK);
    assert_int_equal(f.calls, 1);
    ha_jwks_cache_free(c);
    assert_int_equal(EVP_PKEY_eq(a, k1), 1);
    assert_int_equal(EVP_PKEY_eq(b, k1), 1);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    fake_cleanup(&f);
}

static void test_cache_unknown_kid_throttled(void **state)
{
    struct fake f;
    struct clock clk;
    struct ha_jwks_cache *c;
    (void)state;
    fake_init(&f, jwks_k1);
    c = new_cache(&f, &clk);
    assert_int_equal(ha_jwks_cache_refresh(c), HA_OK);
    expect_miss(c, "nope");
    assert_int_equal(f.calls, 2);
    assert_int_equal(stats(c).throttled_misses, 0);
    /* Inside the window: no fetch, counted as throttled; known kids still served. */
    atomic_store(&clk.now, T0 + WINDOW_S - 1);
    expect_miss(c, "nope2");
    expect_miss(c, "nope");
    assert_int_equal(f.calls, 2);
    assert_int_equal(stats(c).throttled_misses, 2);
    expect_cached(c, "kid1", k1);
    /* The window has passed: one more fetch. */
    atomic_store(&clk.now, T0 + WINDOW_S);
    expect_miss(c, "nope3");
    assert_int_equal(f.calls, 3);
    expect_miss(c, "nope4");
    assert_int_equal(f.calls, 3);
    assert_int_equal(stats(c).fetches, 3);
    assert_int_equal(stats(c).throttled_misses, 3);
    ha_jwks_cache_free(c);
    fake_cleanup(&f);
}

static void test_cache_rotation(void **state)
{
    struct fake f;
    struct clock clk;
    struct ha_jwks_cache *c;
    char *only_k2 = NULL, *jwk2 = jwk_rsa(k2, "kid2", "");
    (void)state;
    fake_init(&f, jwks_k1);
    c = new_cache(&f, &clk);
    assert_int_equal(ha_jwks_cache_refresh(c), HA_OK);
    f.body = jwks_k1k2; /* the tenant publishes a new key */
    expect_cached(c, "kid2", k2);
    assert_int_equal(f.calls, 2);
    expect_cached(c, "kid1", k1);
    expect_cached(c, "kid2", k2);
    assert_int_equal(f.calls, 2);
    /* The old key retired at the tenant: gone after the next refresh. */
    only_k2 = fmt("{\"keys\":[%s]}", jwk2);
    f.body = only_k2;
    assert_int_equal(ha_jwks_cache_refresh(c), HA_OK);
    expect_miss(c, "kid1"); /* inside the window: throttled, no fetch */
    assert_int_equal(f.calls, 3);
    expect_cached(c, "kid2", k2);
    ha_jwks_cache_free(c);
    fake_cleanup(&f);
    free(only_k2);
    free(jwk2);
}

static void test_cache_failure_keeps_keys(void **state)
{
    struct fake f;
    struct clock clk;
    struct ha_jwks_cache *c;
    char *ec = jwk_ec(kec), *ec_only = fmt("{\"keys\":[%s]}", ec);
    char *big = malloc(HA_MAX_PEER_BODY + 2);
    (void)state;
    memset(big, ' ', HA_MAX_PEER_BODY + 1);
    memcpy(big, jwks_k1k2, strlen(jwks_k1k2));
    big[HA_MAX_PEER_BODY + 1] = '\0';
    fake_init(&f, jwks_k1);
    c = new_cache(&f, &clk);
    assert_int_equal(ha_jwks_cache_refresh(c), HA_OK);

    f.status = 500;
    f.body = jwks_k1k2;
    assert_int_equal(ha_jwks_cache_refresh(c), HA_ERR_HTTP);
    f.status = 301;
    assert_int_equal(ha_jwks_cache_refresh(c), HA_ERR_HTTP);
    f.status = 204;
    assert_int_equal(ha_jwks_cache_refresh(c), HA_ERR_HTTP);
    f.status = 200;
    f.err = HA_ERR_TIMEOUT;
    assert_int_equal(ha_jwks_cache_refresh(c), HA_ERR_TIMEOUT);
    f.err = HA_OK;
    f.body = "<html>oops</html>";
    assert_int_equal(ha_jwks_cache_refresh(c), HA_ERR_INVALID);
    f.body = ec_only; /* parses, but nothing we can use */
    assert_int_equal(ha_jwks_cache_refresh(c), HA_ERR_INVALID);
    f.body = big;
    assert_int_equal(ha_jwks_cache_refresh(c), HA_ERR_TOO_LARGE);
    assert_int_equal(stats(c).fetch_failures, 7);
    assert_true(ha_jwks_cache_ready(c));
    expect_cached(c, "kid1", k1);
    expect_miss(c, "kid2"); /* the refused documents held kid2: none of them took effect */
    ha_jwks_cache_free(c);

    /* Never loaded: misses fail cleanly and the cache is not ready. */
    f.err = HA_ERR_IO;
    c = new_cache(&f, &clk);
    expect_miss(c, "kid1");
    assert_false(ha_jwks_cache_ready(c));
    ha_jwks_cache_free(c);
    fake_cleanup(&f);
    free(ec);
    free(ec_only);
    free(big);
}

static void test_cache_tick(void **state)
{
    struct fake f;
    struct clock clk;
    struct ha_jwks_cache *c;
    (void)state;
    fake_init(&f, jwks_k1);
    c = new_cache(&f, &clk);
    assert_int_equal(ha_jwks_cache_tick(c), HA_OK); /* never loaded: due now */
    assert_int_equal(f.calls, 1);
    assert_int_equal(ha_jwks_cache_tick(c), HA_OK);
    atomic_store(&clk.now, T0 + REFRESH_S - 1);
    assert_int_equal(ha_jwks_cache_tick(c), HA_OK);
    assert_int_equal(f.calls, 1);
    atomic_store(&clk.now, T0 + REFRESH_S);
    f.body = jwks_k1k2;
    assert_int_equal(ha_jwks_cache_tick(c), HA_OK);
    assert_int_equal(f.calls, 2);
    expect_cached(c, "kid2", k2);
    assert_int_equal(f.calls, 2);
    /* A failed refresh is retried 30 s later, not on every tick. */
    f.status = 503;
    atomic_store(&clk.now, T0 + 2 * REFRESH_S);
    assert_int_equal(ha_jwks_cache_tick(c), HA_ERR_HTTP);
    assert_int_equal(f.calls, 3);
    atomic_store(&clk.now, T0 + 2 * REFRESH_S + 29);
    assert_int_equal(ha_jwks_cache_tick(c), HA_OK);
    assert_int_equal(f.calls, 3);
    atomic_store(&clk.now, T0 + 2 * REFRESH_S + 30);
    f.status = 200;
    assert_int_equal(ha_jwks_cache_tick(c), HA_OK);
    assert_int_equal(f.calls, 4);
    assert_int_equal(ha_jwks_cache_tick(c), HA_OK);
    assert_int_equal(f.calls, 4);
    expect_cached(c, "kid1", k1);
    ha_jwks_cache_free(c);
    fake_cleanup(&f);
}

struct racer {
    struct ha_jwks_cache *cache;
    pthread_barrier_t *go;
    const char *kid;
    enum ha_err err;
    EVP_PKEY *key;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    if (r->go != NULL)
        pthread_barrier_wait(r->go);
    r->err = ha_jwks_cache_get_key(r->cache, r->kid, &r->key);
    return NULL;
}

static void test_cache_concurrent_misses_share_fetch(void **state)
{
    struct fake f;
    struct clock clk;
    struct ha_jwks_cache *c;
    pthread_barrier_t go;
    pthread_t th[THREADS];
    struct racer r[THREADS];
    struct ha_jwks_cache_stats s;
    int i;
    (void)state;
    fake_init(&f, jwks_k1);
    c = new_cache(&f, &clk);
    assert_int_equal(ha_jwks_cache_refresh(c), HA_OK);
    f.body = jwks_k1k2;
    f.delay_ms = 100;
    pthread_barrier_init(&go, NULL, THREADS);
    for (i = 0; i < THREADS; i++) {
        r[i] = (struct racer){c, &go, "kid2", HA_ERR__COUNT, NULL};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].err, HA_OK);
        assert_int_equal(EVP_PKEY_eq(r[i].key, k2), 1);
        EVP_PKEY_free(r[i].key);
    }
    s = stats(c);
    assert_int_equal(f.calls, 2);
    assert_int_equal(f.max_concurrent, 1);
    assert_int_equal(s.fetches, 2);
    assert_int_equal(s.coalesced_misses, THREADS - 1);
    assert_int_equal(s.throttled_misses, 0);
    pthread_barrier_destroy(&go);
    ha_jwks_cache_free(c);
    fake_cleanup(&f);
}

/* While a miss-triggered fetch hangs at the tenant, known kids are still served. */
static void test_cache_lookup_not_blocked_by_fetch(void **state)
{
    struct fake f;
    struct clock clk;
    struct ha_jwks_cache *c;
    struct racer r;
    pthread_t th;
    bool still_in_flight;
    (void)state;
    fake_init(&f, jwks_k1);
    c = new_cache(&f, &clk);
    assert_int_equal(ha_jwks_cache_refresh(c), HA_OK);
    f.body = jwks_k1k2;
    f.block = true;
    r = (struct racer){c, NULL, "kid2", HA_ERR__COUNT, NULL};
    assert_int_equal(pthread_create(&th, NULL, race, &r), 0);
    pthread_mutex_lock(&f.mu);
    while (f.calls < 2)
        pthread_cond_wait(&f.cv, &f.mu);
    pthread_mutex_unlock(&f.mu);

    expect_cached(c, "kid1", k1);
    pthread_mutex_lock(&f.mu);
    still_in_flight = f.in_flight;
    f.released = true;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    assert_true(still_in_flight);
    pthread_join(th, NULL);
    assert_int_equal(r.err, HA_OK);
    assert_int_equal(EVP_PKEY_eq(r.key, k2), 1);
    EVP_PKEY_free(r.key);
    ha_jwks_cache_free(c);
    fake_cleanup(&f);
}

/* Fetches driven from outside (the event loop's calls): a cache without a synchronous http
 * never fetches on a miss by itself; fetch_begin/_end keep the same schedule, window and
 * coalescing, and a failed or empty answer leaves the keys that work. */
static void test_cache_driven_fetches(void **state)
{
    struct ha_jwks_cache_opts o = {URI, {NULL, NULL}, {clock_now, NULL}, REFRESH_S, WINDOW_S};
    struct ha_http_response ok1 = {200,    jwks_k1, strlen(jwks_k1), NULL, NULL,
                                   {NULL}, 0,       {NULL},          false};
    struct ha_http_response ok12 = {200,    jwks_k1k2, strlen(jwks_k1k2), NULL, NULL, {NULL}, 0,
                                    {NULL}, false};
    struct ha_http_response broken = {500, (char *)"oops", 4, NULL, NULL, {NULL}, 0, {NULL}, false};
    struct ha_http_response empty = {
        200, (char *)"{\"keys\":[]}", 11, NULL, NULL, {NULL}, 0, {NULL}, false};
    struct ha_http_request req;
    struct ha_jwks_cache *c = NULL;
    struct clock clk;
    (void)state;
    o.clock.ctx = &clk;
    atomic_store(&clk.now, T0);
    assert_int_equal(ha_jwks_cache_new(&o, &c), HA_OK);
    /* Never loaded: the scheduled fetch is due; while it runs, another is not, a miss joins. */
    assert_int_equal(ha_jwks_cache_fetch_begin(c, false, &req), HA_JWKS_FETCH_START);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.url, URI);
    assert_true(req.to_tenant);
    assert_int_equal(ha_jwks_cache_fetch_begin(c, false, &req), HA_JWKS_FETCH_NO);
    assert_int_equal(ha_jwks_cache_fetch_begin(c, true, &req), HA_JWKS_FETCH_JOIN);
    assert_int_equal(ha_jwks_cache_fetch_end(c, HA_OK, &ok1), HA_OK);
    assert_true(ha_jwks_cache_ready(c));
    expect_cached(c, "kid1", k1);
    /* A miss finds nothing and fetches nothing by itself. */
    expect_miss(c, "kid2");
    assert_int_equal(stats(c).fetches, 1);
    /* The miss's refetch: a failure, then an empty set, keep kid1 serving. */
    assert_int_equal(ha_jwks_cache_fetch_begin(c, true, &req), HA_JWKS_FETCH_START);
    assert_int_equal(ha_jwks_cache_fetch_end(c, HA_ERR_TIMEOUT, &broken), HA_ERR_TIMEOUT);
    expect_cached(c, "kid1", k1);
    /* Inside the window: throttled. */
    atomic_store(&clk.now, T0 + WINDOW_S - 1);
    assert_int_equal(ha_jwks_cache_fetch_begin(c, true, &req), HA_JWKS_FETCH_NO);
    assert_int_equal(stats(c).throttled_misses, 1);
    atomic_store(&clk.now, T0 + WINDOW_S);
    assert_int_equal(ha_jwks_cache_fetch_begin(c, true, &req), HA_JWKS_FETCH_START);
    assert_int_equal(ha_jwks_cache_fetch_end(c, HA_OK, &broken), HA_ERR_HTTP);
    atomic_store(&clk.now, T0 + 2 * WINDOW_S);
    assert_int_equal(ha_jwks_cache_fetch_begin(c, true, &req), HA_JWKS_FETCH_START);
    assert_int_equal(ha_jwks_cache_fetch_end(c, HA_OK, &empty), HA_ERR_INVALID);
    expect_cached(c, "kid1", k1);
    expect_miss(c, "kid2");
    /* The rotation arrives: both keys. */
    atomic_store(&clk.now, T0 + 3 * WINDOW_S);
    assert_int_equal(ha_jwks_cache_fetch_begin(c, true, &req), HA_JWKS_FETCH_START);
    assert_int_equal(ha_jwks_cache_fetch_end(c, HA_OK, &ok12), HA_OK);
    expect_cached(c, "kid1", k1);
    expect_cached(c, "kid2", k2);
    /* The scheduled refresh is due only after refresh_s since the last success. */
    assert_int_equal(ha_jwks_cache_fetch_begin(c, false, &req), HA_JWKS_FETCH_NO);
    atomic_store(&clk.now, T0 + 3 * WINDOW_S + REFRESH_S);
    assert_int_equal(ha_jwks_cache_fetch_begin(c, false, &req), HA_JWKS_FETCH_START);
    assert_int_equal(ha_jwks_cache_fetch_end(c, HA_OK, &ok1), HA_OK);
    expect_miss(c, "kid2");
    assert_int_equal(stats(c).fetches, 6);
    assert_int_equal(stats(c).fetch_failures, 3);
    ha_jwks_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_keeps_only_rs256_signing_keys),
        cmocka_unit_test(test_parse_bad_numbers),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_cache_new_and_load),
        cmocka_unit_test(test_cache_unknown_kid_throttled),
        cmocka_unit_test(test_cache_rotation),
        cmocka_unit_test(test_cache_failure_keeps_keys),
        cmocka_unit_test(test_cache_tick),
        cmocka_unit_test(test_cache_concurrent_misses_share_fetch),
        cmocka_unit_test(test_cache_lookup_not_blocked_by_fetch),
        cmocka_unit_test(test_cache_driven_fetches),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
