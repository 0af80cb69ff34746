/* jwt_verify: tokens built and signed here byte by byte (RSA keys generated at start), checked
 * through ha_jwt_verify against a JWKS cache whose fake transport counts fetches, so a test
 * can prove that a refused algorithm never reached a key lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include "houston_auth/jwks.h"
#include "houston_auth/jwt_verify.h"
#include "houston_auth/proto.h"

#define ISS "https://tenant.example.com/"
#define CLIENT "client-1"
#define NONCE "n-0123456789abcdef"
#define JWKS_URI "https://tenant.example.com/.well-known/jwks.json"
#define NOW 1700000000L
#define LEEWAY 60L
#define KID_TEST_MAX 256 /* the header's documented kid limit */
#define HDR_KID1 "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"kid1\"}"
#define CLAIMS_OK                                                                                  \
    "{\"iss\":\"" ISS "\",\"aud\":\"" CLIENT "\",\"sub\":\"auth0|42\",\"exp\":1700003600,"         \
    "\"iat\":1699999990,\"nonce\":\"" NONCE "\"}"

enum alg { RS256, RS384, RS512, PS256, ES256, HS256_PEM, NONE };

static EVP_PKEY *k1, *k2, *kec;
static char *jwks_one, *jwks_two;

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

static char *b64s(const char *s)
{
    return b64u((const unsigned char *)s, strlen(s));
}

static char *bn_b64(EVP_PKEY *k, const char *param)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int n;
    char *s;
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    n = BN_bn2bin(bn, buf);
    s = b64u(buf, (size_t)n);
    BN_free(bn);
    return s;
}

static char *jwk_json(EVP_PKEY *k, const char *kid)
{
    char *n = bn_b64(k, OSSL_PKEY_PARAM_RSA_N), *e = bn_b64(k, OSSL_PKEY_PARAM_RSA_E), *s;
    s = fmt("{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"%s\",\"n\":\"%s\","
            "\"e\":\"%s\"}",
            kid, n, e);
    free(n);
    free(e);
    return s;
}

static unsigned char *hmac_pem(const char *in, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long pem_len;
    unsigned int out_len = 0;
    unsigned char *out = malloc(EVP_MAX_MD_SIZE);
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k1), 1);
    pem_len = BIO_get_mem_data(bio, &pem);
    assert_non_null(HMAC(EVP_sha256(), pem, (int)pem_len, (const unsigned char *)in, strlen(in),
                         out, &out_len));
    BIO_free(bio);
    *len = out_len;
    return out;
}

static unsigned char *sign_input(EVP_PKEY *k, enum alg a, const char *in, size_t *len)
{
    static const char *const mds[] = {"SHA256", "SHA384", "SHA512", "SHA256", "SHA256"};
    EVP_MD_CTX *mc;
    EVP_PKEY_CTX *pc = NULL;
    unsigned char *sig;
    if (a == NONE) {
        *len = 0;
        return NULL;
    }
    if (a == HS256_PEM)
        return hmac_pem(in, len);
    mc = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit_ex(mc, &pc, mds[a], NULL, NULL, k, NULL), 1);
    if (a == PS256) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST), 1);
    }
    assert_int_equal(EVP_DigestSign(mc, NULL, len, (const unsigned char *)in, strlen(in)), 1);
    sig = malloc(*len);
    assert_int_equal(EVP_DigestSign(mc, sig, len, (const unsigned char *)in, strlen(in)), 1);
    EVP_MD_CTX_free(mc);
    return sig;
}

static char *join(const char *input, const unsigned char *sig, size_t len)
{
    char *s = b64u(sig, len), *t = fmt("%s.%s", input, s);
    free(s);
    return t;
}

static char *signing_input(const char *hdr, const char *claims)
{
    char *h = b64s(hdr), *c = b64s(claims), *in = fmt("%s.%s", h, c);
    free(h);
    free(c);
    return in;
}

static char *make_token(const char *hdr, const char *claims, EVP_PKEY *k, enum alg a)
{
    char *in = signing_input(hdr, claims), *tok;
    size_t len = 0;
    unsigned char *sig = sign_input(k, a, in, &len);
    tok = join(in, sig, len);
    free(sig);
    free(in);
    return tok;
}

/* ---- the fake tenant ---- */

struct fake {
    const char *body;
    int calls;
    char url[256];
};

static enum ha_err fake_do(void *ctx, const struct ha_http_request *req,
                           struct ha_http_response *resp)
{
    struct fake *f = ctx;
    f->calls++;
    snprintf(f->url, sizeof(f->url), "%s", req->url);
    memset(resp, 0, sizeof(*resp));
    resp->status = 200;
    resp->body = strdup(f->body);
    resp->body_len = strlen(f->body);
    return HA_OK;
}

static long fixed_now(void *ctx)
{
    (void)ctx;
    return NOW;
}

static struct ha_jwks_cache *new_cache(struct fake *f)
{
    struct ha_jwks_cache_opts o = {JWKS_URI, {fake_do, f}, {fixed_now, NULL}, 3600, 30};
    struct ha_jwks_cache *c = NULL;
    assert_int_equal(ha_jwks_cache_new(&o, &c), HA_OK);
    return c;
}

static struct ha_jwt_expect expect(void)
{
    struct ha_jwt_expect e = {ISS, CLIENT, CLIENT, true, NONCE, true, true, NOW, LEEWAY};
    return e;
}

/* Verifies tok against a cache holding jwks_one; returns the result and the fetch count. */
static enum ha_err verify_one(const char *tok, const char **reason, int *calls)
{
    struct fake f = {jwks_one, 0, ""};
    struct ha_jwks_cache *c = new_cache(&f);
    struct ha_jwt_expect e = expect();
    enum ha_err err;
    *reason = NULL;
    err = ha_jwt_verify(tok, strlen(tok), c, &e, NULL, reason);
    if (err != HA_OK)
        assert_non_null(*reason);
    ha_jwks_cache_free(c);
    if (calls != NULL)
        *calls = f.calls;
    return err;
}

static void expect_verify(const char *tok, enum ha_err want, const char *reason)
{
    const char *got = NULL;
    assert_int_equal(verify_one(tok, &got, NULL), want);
    if (reason != NULL)
        assert_string_equal(got, reason);
}

static int setup(void **state)
{
    char *j1, *j2;
    (void)state;
    k1 = EVP_RSA_gen(2048);
    k2 = EVP_RSA_gen(2048);
    kec = EVP_EC_gen("P-256");
    if (k1 == NULL || k2 == NULL || kec == NULL)
        return -1;
    j1 = jwk_json(k1, "kid1");
    j2 = jwk_json(k2, "kid2");
    jwks_one = fmt("{\"keys\":[%s]}", j1);
    jwks_two = fmt("{\"keys\":[%s,%s]}", j1, j2);
    free(j1);
    free(j2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    EVP_PKEY_free(kec);
    free(jwks_one);
    free(jwks_two);
    return 0;
}

/* ---- tests ---- */

static void test_valid_token_accepted(void **state)
{
    struct fake f = {jwks_one, 0, ""};
    struct ha_jwks_cache *c = new_cache(&f);
    struct ha_jwt_expect e = expect();
    struct ha_jwt *jwt = NULL;
    const char *reason = NULL;
    char *tok = make_token(HDR_KID1, CLAIMS_OK, k1, RS256);
    (void)state;

    assert_int_equal(ha_jwt_verify(tok, strlen(tok), c, &e, &jwt, &reason), HA_OK);
    assert_non_null(jwt);
    assert_string_equal(ha_jwt_claim_str(jwt, "sub"), "auth0|42");
    assert_string_equal(ha_jwt_kid(jwt), "kid1");
    assert_null(ha_jwt_claim_str(jwt, "exp"));
    assert_int_equal(f.calls, 1);
    assert_string_equal(f.url, JWKS_URI);
    /* The second verification is served from the cache. */
    assert_int_equal(ha_jwt_verify(tok, strlen(tok), c, &e, NULL, &reason), HA_OK);
    assert_int_equal(f.calls, 1);
    ha_jwt_free(jwt);
    ha_jwks_cache_free(c);
    free(tok);
}

static void test_alg_refused_before_key_lookup(void **state)
{
    static const struct {
        const char *hdr;
        enum alg a;
    } cases[] = {
        {"{\"alg\":\"none\",\"kid\":\"kid1\"}", NONE},
        {"{\"alg\":\"HS256\",\"kid\":\"kid1\"}", HS256_PEM},
        {"{\"alg\":\"RS384\",\"kid\":\"kid1\"}", RS384},
        {"{\"alg\":\"RS512\",\"kid\":\"kid1\"}", RS512},
        {"{\"alg\":\"PS256\",\"kid\":\"kid1\"}", PS256},
        {"{\"alg\":\"ES256\",\"kid\":\"kid1\"}", ES256},
        /* RS256 keys but alg spelled otherwise, or absent: also refused. */
        {"{\"alg\":\"rs256\",\"kid\":\"kid1\"}", RS256},
        {"{\"alg\":\"RS256 \",\"kid\":\"kid1\"}", RS256},
        {"{\"alg\":[\"RS256\"],\"kid\":\"kid1\"}", RS256},
        {"{\"kid\":\"kid1\"}", RS256},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        EVP_PKEY *k = cases[i].a == ES256 ? kec : k1;
        char *tok = make_token(cases[i].hdr, CLAIMS_OK, k, cases[i].a);
        const char *reason = NULL;
        int calls = -1;
        struct ha_jwt *jwt = NULL;
        assert_int_equal(verify_one(tok, &reason, &calls), HA_ERR_JWT_ALG);
        assert_string_equal(reason, "alg not RS256");
        assert_int_equal(calls, 0);
        assert_int_equal(ha_jwt_parse(tok, strlen(tok), &jwt), HA_OK);
        assert_int_equal(ha_jwt_check_header(jwt), HA_ERR_JWT_ALG);
        ha_jwt_free(jwt);
        free(tok);
    }
}

static void test_crit_refused(void **state)
{
    static const char *const hdrs[] = {
        "{\"alg\":\"RS256\",\"kid\":\"kid1\",\"crit\":[\"exp\"],\"exp\":1700003600}",
        "{\"alg\":\"RS256\",\"kid\":\"kid1\",\"crit\":[\"b64\"],\"b64\":false}",
        "{\"alg\":\"RS256\",\"kid\":\"kid1\",\"crit\":[]}",
        "{\"alg\":\"RS256\",\"kid\":\"kid1\",\"crit\":null}",
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        char *tok = make_token(hdrs[i], CLAIMS_OK, k1, RS256);
        const char *reason = NULL;
        int calls = -1;
        assert_int_equal(verify_one(tok, &reason, &calls), HA_ERR_JWT_ALG);
        assert_string_equal(reason, "crit header refused");
        assert_int_equal(calls, 0);
        free(tok);
    }
}

/* jku, x5u, jwk and x5c name an attacker's key; the tenant's key for kid is used anyway. */
static void test_key_headers_ignored(void **state)
{
    char *jwk2 = jwk_json(k2, "kid1");
    char *hdr = fmt("{\"alg\":\"RS256\",\"kid\":\"kid1\",\"jku\":\"https://evil.example/jwks\","
                    "\"x5u\":\"https://evil.example/cert.pem\",\"jwk\":%s,\"x5c\":[\"MIIB\"]}",
                    jwk2);
    char *forged = make_token(hdr, CLAIMS_OK, k2, RS256);
    char *genuine = make_token(hdr, CLAIMS_OK, k1, RS256);
    struct fake f = {jwks_one, 0, ""};
    struct ha_jwks_cache *c = new_cache(&f);
    struct ha_jwt_expect e = expect();
    const char *reason = NULL;
    (void)state;

    assert_int_equal(ha_jwt_verify(forged, strlen(forged), c, &e, NULL, &reason), HA_ERR_JWT_SIG);
    assert_string_equal(reason, "bad signature");
    assert_string_equal(f.url, JWKS_URI);
    assert_int_equal(ha_jwt_verify(genuine, strlen(genuine), c, &e, NULL, &reason), HA_OK);
    assert_int_equal(f.calls, 1);
    assert_string_equal(f.url, JWKS_URI);
    ha_jwks_cache_free(c);
    free(jwk2);
    free(hdr);
    free(forged);
    free(genuine);
}

static void expect_kid(const char *kid_json, enum ha_err want, int want_calls)
{
    char *hdr = fmt("{\"alg\":\"RS256\",\"kid\":%s}", kid_json);
    char *tok = make_token(hdr, CLAIMS_OK, k1, RS256);
    const char *reason = NULL;
    int calls = -1;
    assert_int_equal(verify_one(tok, &reason, &calls), want);
    assert_int_equal(calls, want_calls);
    free(hdr);
    free(tok);
}

static void test_kid_attacks(void **state)
{
    char big[10 * 1024 + 3], at_max[KID_TEST_MAX + 3], over_max[KID_TEST_MAX + 4];
    (void)state;
    /* Looked up verbatim: a miss (one refetch of the configured URI), never a path. */
    expect_kid("\"../kid1\"", HA_ERR_JWT_KEY, 1);
    expect_kid("\"kid1/../kid1\"", HA_ERR_JWT_KEY, 1);
    /* Must never match "kid1": refused as malformed, with no key lookup. */
    expect_kid("\"kid1\\u0000x\"", HA_ERR_JWT_FORMAT, 0);
    expect_kid("\"kid1 \"", HA_ERR_JWT_FORMAT, 0);
    expect_kid("\"kid1\\n\"", HA_ERR_JWT_FORMAT, 0);
    expect_kid("\"\"", HA_ERR_JWT_FORMAT, 0);
    expect_kid("1", HA_ERR_JWT_FORMAT, 0);
    expect_kid("null", HA_ERR_JWT_FORMAT, 0);
    expect_kid("[\"kid1\"]", HA_ERR_JWT_FORMAT, 0);
    memset(big, 'k', sizeof(big));
    big[0] = '"';
    big[sizeof(big) - 2] = '"';
    big[sizeof(big) - 1] = '\0';
    expect_kid(big, HA_ERR_JWT_FORMAT, 0);
    memset(at_max, 'k', sizeof(at_max));
    at_max[0] = '"';
    at_max[sizeof(at_max) - 2] = '"';
    at_max[sizeof(at_max) - 1] = '\0';
    expect_kid(at_max, HA_ERR_JWT_KEY, 1);
    memset(over_max, 'k', sizeof(over_max));
    over_max[0] = '"';
    over_max[sizeof(over_max) - 2] = '"';
    over_max[sizeof(over_max) - 1] = '\0';
    expect_kid(over_max, HA_ERR_JWT_FORMAT, 0);
}

static void test_kid_absent(void **state)
{
    char *tok = make_token("{\"alg\":\"RS256\"}", CLAIMS_OK, k1, RS256);
    struct fake f = {jwks_two, 0, ""};
    struct ha_jwks_cache *c = new_cache(&f);
    struct ha_jwt_expect e = expect();
    const char *reason = NULL;
    (void)state;
    /* One key in the set: it is the key. */
    expect_verify(tok, HA_OK, NULL);
    /* Two keys: ambiguous, refused. */
    assert_int_equal(ha_jwt_verify(tok, strlen(tok), c, &e, NULL, &reason), HA_ERR_JWT_KEY);
    assert_string_equal(reason, "unknown kid");
    ha_jwks_cache_free(c);
    free(tok);
}

static void test_bad_signature(void **state)
{
    char *in = signing_input(HDR_KID1, CLAIMS_OK), *tok;
    size_t len = 0;
    unsigned char *sig = sign_input(k1, RS256, in, &len);
    (void)state;

    tok = join(in, sig, len);
    expect_verify(tok, HA_OK, NULL);
    free(tok);
    sig[len / 2] ^= 0x01;
    tok = join(in, sig, len);
    expect_verify(tok, HA_ERR_JWT_SIG, "bad signature");
    free(tok);
    sig[len / 2] ^= 0x01;
    tok = join(in, sig, len - 1);
    expect_verify(tok, HA_ERR_JWT_SIG, "bad signature");
    free(tok);
    tok = fmt("%s.", in);
    expect_verify(tok, HA_ERR_JWT_SIG, "bad signature");
    free(tok);
    /* A signature from the other RSA key, and one over different claims. */
    free(sig);
    sig = sign_input(k2, RS256, in, &len);
    tok = join(in, sig, len);
    expect_verify(tok, HA_ERR_JWT_SIG, "bad signature");
    free(tok);
    free(in);
    in = signing_input(HDR_KID1, "{\"iss\":\"" ISS "\"}");
    tok = join(in, sig, len);
    expect_verify(tok, HA_ERR_JWT_SIG, "bad signature");
    free(tok);
    free(sig);
    free(in);
}

/* RFC 8017 §8.2.2: a signature is exactly modulus-size octets. Sign until one starts with a
 * zero octet (1 in 256), then present it without that octet: same integer, wrong length. */
static void test_signature_leading_zero_stripped(void **state)
{
    unsigned char *sig = NULL;
    size_t len = 0;
    char *in = NULL, *claims, *tok;
    int i;
    (void)state;
    for (i = 0; i < 5000; i++) {
        free(sig);
        free(in);
        claims = fmt("{\"iss\":\"" ISS "\",\"aud\":\"" CLIENT "\",\"sub\":\"s\",\"iat\":1,"
                     "\"exp\":1700003600,\"nonce\":\"" NONCE "\",\"jti\":\"%d\"}",
                     i);
        in = signing_input(HDR_KID1, claims);
        free(claims);
        sig = sign_input(k1, RS256, in, &len);
        if (sig[0] == 0)
            break;
    }
    assert_int_equal(sig[0], 0);
    tok = join(in, sig, len);
    expect_verify(tok, HA_OK, NULL);
    free(tok);
    tok = join(in, sig + 1, len - 1);
    expect_verify(tok, HA_ERR_JWT_SIG, "bad signature");
    free(tok);
    free(sig);
    free(in);
}

/* The per-thread verify context follows the key: after k1 was used, a k1 signature under a
 * kid naming k2 must still fail, and k2's own signature must pass. */
static void test_signature_key_switch(void **state)
{
    struct fake f = {jwks_two, 0, ""};
    struct ha_jwks_cache *c = new_cache(&f);
    struct ha_jwt_expect e = expect();
    const char *hdr2 = "{\"alg\":\"RS256\",\"kid\":\"kid2\"}";
    char *t1 = make_token(HDR_KID1, CLAIMS_OK, k1, RS256);
    char *t2 = make_token(hdr2, CLAIMS_OK, k2, RS256);
    char *wrong = make_token(hdr2, CLAIMS_OK, k1, RS256);
    struct ha_jwt *jwt = NULL;
    const char *reason = NULL;
    int i;
    (void)state;
    for (i = 0; i < 3; i++) {
        assert_int_equal(ha_jwt_verify(t1, strlen(t1), c, &e, NULL, &reason), HA_OK);
        assert_int_equal(ha_jwt_verify(wrong, strlen(wrong), c, &e, NULL, &reason), HA_ERR_JWT_SIG);
        assert_int_equal(ha_jwt_verify(t2, strlen(t2), c, &e, NULL, &reason), HA_OK);
    }
    assert_int_equal(ha_jwt_parse(t1, strlen(t1), &jwt), HA_OK);
    assert_int_equal(ha_jwt_verify_signature(jwt, k1), HA_OK);
    assert_int_equal(ha_jwt_verify_signature(jwt, k2), HA_ERR_JWT_SIG);
    assert_int_equal(ha_jwt_verify_signature(jwt, kec), HA_ERR_JWT_SIG);
    assert_int_equal(ha_jwt_verify_signature(jwt, NULL), HA_ERR_JWT_SIG);
    ha_jwt_free(jwt);
    ha_jwks_cache_free(c);
    free(t1);
    free(t2);
    free(wrong);
}

static void expect_format(const char *tok, size_t len, enum ha_err want)
{
    struct ha_jwt *jwt = NULL;
    assert_int_equal(ha_jwt_parse(tok, len, &jwt), want);
    assert_null(jwt);
}

static void test_malformed_tokens(void **state)
{
    size_t big = 1024 * 1024;
    char *huge = malloc(big + 1), *tok, *h = b64s(HDR_KID1), *c = b64s(CLAIMS_OK);
    (void)state;
    memset(huge, 'a', big);
    huge[big] = '\0';
    huge[10] = '.';
    huge[20] = '.';
    expect_format(huge, big, HA_ERR_TOO_LARGE);
    expect_verify(huge, HA_ERR_TOO_LARGE, "token too large");
    expect_format(huge, HA_MAX_JWT + 1, HA_ERR_TOO_LARGE);
    free(huge);

    expect_verify("", HA_ERR_JWT_FORMAT, "malformed token");
    expect_format("abc", 3, HA_ERR_JWT_FORMAT);
    tok = fmt("%s.%s", h, c);
    expect_format(tok, strlen(tok), HA_ERR_JWT_FORMAT);
    free(tok);
    tok = fmt("%s.%s.AAAA.AAAA", h, c);
    expect_format(tok, strlen(tok), HA_ERR_JWT_FORMAT);
    free(tok);
    /* Not base64url: standard alphabet, padding, whitespace. */
    tok = fmt("%s+.%s.AAAA", h, c);
    expect_format(tok, strlen(tok), HA_ERR_JWT_FORMAT);
    free(tok);
    tok = fmt("%s.%s.AA==", h, c);
    expect_format(tok, strlen(tok), HA_ERR_JWT_FORMAT);
    free(tok);
    tok = fmt("%s .%s.AAAA", h, c);
    expect_format(tok, strlen(tok), HA_ERR_JWT_FORMAT);
    free(tok);
    /* An embedded NUL inside the length given. */
    tok = fmt("%s.%s.AAAA", h, c);
    tok[3] = '\0';
    expect_format(tok, strlen(tok + 4) + 4, HA_ERR_JWT_FORMAT);
    free(tok);
    free(h);
    free(c);
}

/* Each is signed correctly by k1 so that only the JSON can be the reason for refusal. */
static void test_json_refusals(void **state)
{
    static const char *const claims[] = {
        "not json",
        "[\"iss\"]",
        "\"" ISS "\"",
        "{\"iss\":\"" ISS "\",\"aud\":\"" CLIENT "\",\"exp\":1,\"exp\":1700003600}",
        "{\"iss\":\"" ISS "\",\"aud\":\"" CLIENT "\",\"exp\":1,\"\\u0065xp\":1700003600}",
        "{\"iss\":\"" ISS "\",\"aud\":\"" CLIENT "\",\"exp\":1e400}",
        "{\"iss\":\"" ISS "\",\"aud\":\"" CLIENT "\",\"exp\":1700003600,}",
        "{\"iss\":\"" ISS "\",\"aud\":\"\xc0\xaf\",\"exp\":1700003600}",
        "{\"iss\":\"" ISS "\",\"aud\":\"" CLIENT "\",\"exp\":1700003600} {}",
        "{\"iss\":\"" ISS "\",\"aud\":\"" CLIENT "\",\"exp\":1700003600}x",
        "{\"iss\":\"" ISS "\",\"sub\":\"a\\u0000b\",\"exp\":1700003600}",
        "",
    };
    size_t i;
    char *tok;
    (void)state;
    for (i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        tok = make_token(HDR_KID1, claims[i], k1, RS256);
        expect_verify(tok, HA_ERR_JWT_FORMAT, "malformed token");
        free(tok);
    }
    tok = make_token("{\"alg\":\"RS256\",\"alg\":\"none\",\"kid\":\"kid1\"}", CLAIMS_OK, k1, RS256);
    expect_verify(tok, HA_ERR_JWT_FORMAT, "malformed token");
    free(tok);
    tok = make_token("[\"RS256\"]", CLAIMS_OK, k1, RS256);
    expect_verify(tok, HA_ERR_JWT_FORMAT, "malformed token");
    free(tok);
}

/* Parses "<hdr>.<claims>." and checks the claims; the signature is not the point here. */
static enum ha_err claims_with(const char *claims, const struct ha_jwt_expect *e,
                               const char **reason)
{
    char *in = signing_input(HDR_KID1, claims), *tok = fmt("%s.", in);
    struct ha_jwt *jwt = NULL;
    enum ha_err err;
    *reason = NULL;
    assert_int_equal(ha_jwt_parse(tok, strlen(tok), &jwt), HA_OK);
    err = ha_jwt_check_claims(jwt, e, reason);
    if (err != HA_OK)
        assert_int_equal(err, HA_ERR_JWT_CLAIMS);
    ha_jwt_free(jwt);
    free(tok);
    free(in);
    return err;
}

static void expect_claims(const char *claims, const struct ha_jwt_expect *e,
                          const char *want_reason)
{
    const char *reason = NULL;
    enum ha_err err = claims_with(claims, e, &reason);
    if (want_reason == NULL) {
        assert_int_equal(err, HA_OK);
        return;
    }
    assert_int_equal(err, HA_ERR_JWT_CLAIMS);
    assert_non_null(reason);
    assert_string_equal(reason, want_reason);
}

#define C(body)                                                                                    \
    "{\"iss\":\"" ISS "\",\"sub\":\"s\",\"iat\":1699999990,\"nonce\":\"" NONCE "\"," body "}"
#define EXP_OK "\"exp\":1700003600"

static void test_exp(void **state)
{
    struct ha_jwt_expect e = expect();
    (void)state;
    expect_claims(C("\"aud\":\"" CLIENT "\"," EXP_OK), &e, NULL);
    expect_claims(C("\"aud\":\"" CLIENT "\",\"exp\":1700003600.5"), &e, NULL);
    expect_claims(C("\"aud\":\"" CLIENT "\""), &e, "exp missing");
    expect_claims(C("\"aud\":\"" CLIENT "\",\"exp\":\"1700003600\""), &e, "exp not numeric");
    expect_claims(C("\"aud\":\"" CLIENT "\",\"exp\":null"), &e, "exp not numeric");
    expect_claims(C("\"aud\":\"" CLIENT "\",\"exp\":true"), &e, "exp not numeric");
    /* now > exp + leeway is refused; inside the leeway is accepted. */
    expect_claims(C("\"aud\":\"" CLIENT "\",\"exp\":1699999939"), &e, "exp in the past");
    expect_claims(C("\"aud\":\"" CLIENT "\",\"exp\":1699999939.5"), &e, "exp in the past");
    expect_claims(C("\"aud\":\"" CLIENT "\",\"exp\":1699999940"), &e, NULL);
    expect_claims(C("\"aud\":\"" CLIENT "\",\"exp\":1699999999"), &e, NULL);
    expect_claims(C("\"aud\":\"" CLIENT "\",\"exp\":-1"), &e, "exp in the past");
    e.leeway = 0;
    expect_claims(C("\"aud\":\"" CLIENT "\",\"exp\":1699999999"), &e, "exp in the past");
}

static void test_nbf_iat(void **state)
{
    struct ha_jwt_expect e = expect();
    const char *base =
        "\"iss\":\"" ISS "\",\"aud\":\"" CLIENT "\",\"sub\":\"s\",\"nonce\":\"" NONCE "\"," EXP_OK;
    char *c;
    (void)state;
#define T(extra, want)                                                                             \
    do {                                                                                           \
        c = fmt("{%s%s}", base, extra);                                                            \
        expect_claims(c, &e, want);                                                                \
        free(c);                                                                                   \
    } while (0)
    T(",\"iat\":1700000060,\"nbf\":1700000060", NULL);
    T(",\"iat\":1700000000,\"nbf\":1700000061", "nbf in the future");
    T(",\"iat\":1700000061", "iat in the future");
    T(",\"iat\":1700000000,\"nbf\":\"0\"", "nbf not numeric");
    T(",\"iat\":\"1700000000\"", "iat not numeric");
    T("", "iat missing");
    e.require_iat = false;
    T("", NULL);
    T(",\"iat\":1700000061", "iat in the future");
#undef T
}

static void test_iss_aud_azp(void **state)
{
    struct ha_jwt_expect e = expect();
    (void)state;
    expect_claims("{\"iss\":\"https://tenant.example.com\",\"aud\":\"" CLIENT "\",\"sub\":\"s\","
                  "\"iat\":1,\"nonce\":\"" NONCE "\"," EXP_OK "}",
                  &e, "iss mismatch");
    expect_claims("{\"iss\":\"https://evil.example.com/\",\"aud\":\"" CLIENT "\"," EXP_OK "}", &e,
                  "iss mismatch");
    expect_claims("{\"aud\":\"" CLIENT "\"," EXP_OK "}", &e, "iss mismatch");
    expect_claims("{\"iss\":[\"" ISS "\"],\"aud\":\"" CLIENT "\"," EXP_OK "}", &e, "iss mismatch");
    expect_claims(C(EXP_OK), &e, "aud missing");
    expect_claims(C("\"aud\":\"other\"," EXP_OK), &e, "aud lacks the expected audience");
    expect_claims(C("\"aud\":\"client-12\"," EXP_OK), &e, "aud lacks the expected audience");
    expect_claims(C("\"aud\":[\"other\",\"client-12\"]," EXP_OK), &e,
                  "aud lacks the expected audience");
    expect_claims(C("\"aud\":[]," EXP_OK), &e, "aud malformed");
    expect_claims(C("\"aud\":[\"" CLIENT "\",5]," EXP_OK), &e, "aud malformed");
    expect_claims(C("\"aud\":5," EXP_OK), &e, "aud malformed");
    expect_claims(C("\"aud\":[\"" CLIENT "\"]," EXP_OK), &e, NULL);
    /* Several audiences: azp must be present and be us. */
    expect_claims(C("\"aud\":[\"other\",\"" CLIENT "\"],\"azp\":\"" CLIENT "\"," EXP_OK), &e, NULL);
    expect_claims(C("\"aud\":[\"other\",\"" CLIENT "\"]," EXP_OK), &e,
                  "azp missing with multiple aud");
    expect_claims(C("\"aud\":[\"other\",\"" CLIENT "\"],\"azp\":\"other\"," EXP_OK), &e,
                  "azp mismatch");
    expect_claims(C("\"aud\":\"" CLIENT "\",\"azp\":\"other\"," EXP_OK), &e, "azp mismatch");
    expect_claims(C("\"aud\":\"" CLIENT "\",\"azp\":5," EXP_OK), &e, "azp mismatch");
    e.azp_if_multi_aud = false;
    expect_claims(C("\"aud\":[\"other\",\"" CLIENT "\"]," EXP_OK), &e, NULL);
    expect_claims(C("\"aud\":[\"other\",\"" CLIENT "\"],\"azp\":\"x\"," EXP_OK), &e,
                  "azp mismatch");
}

static void test_sub_nonce(void **state)
{
    struct ha_jwt_expect e = expect();
    const char *base = "\"iss\":\"" ISS "\",\"aud\":\"" CLIENT "\",\"iat\":1," EXP_OK;
    char *c;
    (void)state;
#define T(extra, want)                                                                             \
    do {                                                                                           \
        c = fmt("{%s%s}", base, extra);                                                            \
        expect_claims(c, &e, want);                                                                \
        free(c);                                                                                   \
    } while (0)
    T(",\"sub\":\"s\",\"nonce\":\"" NONCE "\"", NULL);
    T(",\"nonce\":\"" NONCE "\"", "sub missing");
    T(",\"sub\":\"\",\"nonce\":\"" NONCE "\"", "sub missing");
    T(",\"sub\":7,\"nonce\":\"" NONCE "\"", "sub missing");
    T(",\"sub\":\"s\"", "nonce missing");
    T(",\"sub\":\"s\",\"nonce\":null", "nonce missing");
    T(",\"sub\":\"s\",\"nonce\":\"n-0123456789abcdeF\"", "nonce mismatch");
    T(",\"sub\":\"s\",\"nonce\":\"n-0123456789abcde\"", "nonce mismatch");
    T(",\"sub\":\"s\",\"nonce\":\"" NONCE "0\"", "nonce mismatch");
    T(",\"sub\":\"s\",\"nonce\":\"\"", "nonce mismatch");
    /* Escapes are decoded before comparing, as any JSON parser would. */
    T(",\"sub\":\"s\",\"\\u006eonce\":\"\\u006e-0123456789abcdef\"", NULL);
    e.nonce = NULL;
    e.require_sub = false;
    T("", NULL);
#undef T
}

/* Claims refusals surface through ha_jwt_verify on correctly signed tokens, and *out stays
 * untouched. */
static void test_verify_claims_end_to_end(void **state)
{
    struct fake f = {jwks_one, 0, ""};
    struct ha_jwks_cache *c = new_cache(&f);
    struct ha_jwt_expect e = expect();
    struct ha_jwt *jwt = NULL;
    const char *reason = NULL;
    char *tok = make_token(HDR_KID1, CLAIMS_OK, k1, RS256);
    (void)state;
    e.issuer = "https://other.example.com/";
    assert_int_equal(ha_jwt_verify(tok, strlen(tok), c, &e, &jwt, &reason), HA_ERR_JWT_CLAIMS);
    assert_string_equal(reason, "iss mismatch");
    assert_null(jwt);
    e = expect();
    e.nonce = "n-other";
    assert_int_equal(ha_jwt_verify(tok, strlen(tok), c, &e, &jwt, &reason), HA_ERR_JWT_CLAIMS);
    assert_string_equal(reason, "nonce mismatch");
    e = expect();
    e.now = 1700003600L + LEEWAY + 1;
    assert_int_equal(ha_jwt_verify(tok, strlen(tok), c, &e, &jwt, &reason), HA_ERR_JWT_CLAIMS);
    assert_string_equal(reason, "exp in the past");
    e.now = 1700003600L + LEEWAY;
    assert_int_equal(ha_jwt_verify(tok, strlen(tok), c, &e, &jwt, &reason), HA_OK);
    assert_non_null(jwt);
    ha_jwt_free(jwt);
    assert_int_equal(ha_jwt_verify(tok, strlen(tok), NULL, &e, NULL, &reason), HA_ERR_JWT_KEY);
    ha_jwks_cache_free(c);
    free(tok);
}

struct worker {
    struct ha_jwks_cache *cache;
    const char *t1, *t2, *bad;
    int failures;
};

static void *verify_worker(void *arg)
{
    struct worker *w = arg;
    struct ha_jwt_expect e = expect();
    const char *reason = NULL;
    int i;
    for (i = 0; i < 50; i++) {
        if (ha_jwt_verify(w->t1, strlen(w->t1), w->cache, &e, NULL, &reason) != HA_OK ||
            ha_jwt_verify(w->t2, strlen(w->t2), w->cache, &e, NULL, &reason) != HA_OK ||
            ha_jwt_verify(w->bad, strlen(w->bad), w->cache, &e, NULL, &reason) != HA_ERR_JWT_SIG)
            w->failures++;
    }
    return NULL;
}

static void test_threads_verify(void **state)
{
    struct fake f = {jwks_two, 0, ""};
    struct ha_jwks_cache *c = new_cache(&f);
    const char *hdr2 = "{\"alg\":\"RS256\",\"kid\":\"kid2\"}";
    char *t1 = make_token(HDR_KID1, CLAIMS_OK, k1, RS256);
    char *t2 = make_token(hdr2, CLAIMS_OK, k2, RS256);
    char *bad = make_token(hdr2, CLAIMS_OK, k1, RS256);
    struct worker w[4];
    pthread_t th[4];
    int i;
    (void)state;
    assert_int_equal(ha_jwks_cache_refresh(c), HA_OK);
    for (i = 0; i < 4; i++) {
        w[i] = (struct worker){c, t1, t2, bad, 0};
        assert_int_equal(pthread_create(&th[i], NULL, verify_worker, &w[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    assert_int_equal(f.calls, 1);
    ha_jwks_cache_free(c);
    free(t1);
    free(t2);
    free(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_token_accepted),
        cmocka_unit_test(test_alg_refused_before_key_lookup),
        cmocka_unit_test(test_crit_refused),
        cmocka_unit_test(test_key_headers_ignored),
        cmocka_unit_test(test_kid_attacks),
        cmocka_unit_test(test_kid_absent),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_signature_leading_zero_stripped),
        cmocka_unit_test(test_signature_key_switch),
        cmocka_unit_test(test_malformed_tokens),
        cmocka_unit_test(test_json_refusals),
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_nbf_iat),
        cmocka_unit_test(test_iss_aud_azp),
        cmocka_unit_test(test_sub_nonce),
        cmocka_unit_test(test_verify_claims_end_to_end),
        cmocka_unit_test(test_threads_verify),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
