/* Compact JWS parsing and verification, pinned to RS256.
 *
 * The order is fixed so that nothing attacker-chosen steers key handling: the token is split
 * and strictly decoded, the header's alg is pinned to RS256 (crit refused, jku/x5u/jwk/x5c
 * never read), then the key is taken from the JWKS cache by exact kid, then the signature,
 * then the claims with `now` passed in.
 *
 * Hot path: SHA-256 is fetched once per process (EVP_MD_fetch is a provider lookup), the
 * digest is one EVP_Digest call, and each thread keeps one EVP_PKEY_CTX initialised for the
 * last key it verified with (an EVP_PKEY_CTX is not shareable between threads). The cached
 * context holds its own reference to that key, so comparing key pointers is sound: the key
 * cannot be freed and its address reused while the context lives. A pthread key destructor
 * frees the context when the thread exits. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include "houston_auth/b64url.h"
#include "houston_auth/jwks.h"
#include "houston_auth/jwt_verify.h"
#include "houston_auth/proto.h"
#include "houston_auth/util.h"

#define KID_MAX 256

static pthread_once_t verify_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;
static pthread_key_t ctx_key;
static int ctx_key_ok;
static _Thread_local EVP_PKEY_CTX *tl_ctx;
static _Thread_local const EVP_PKEY *tl_key;

static void ctx_destroy(void *p)
{
    EVP_PKEY_CTX_free(p);
}

static void verify_init(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    ctx_key_ok = pthread_key_create(&ctx_key, ctx_destroy) == 0;
}

void ha_jwt_free(struct ha_jwt *jwt)
{
    if (jwt == NULL)
        return;
    ha_json_view_cleanup(&jwt->header);
    ha_json_view_cleanup(&jwt->claims);
    free(jwt->header_text);
    free(jwt->claims_text);
    free(jwt->sig);
    free(jwt->raw);
    free(jwt);
}

/* Decodes one base64url part and parses it as a JSON object: duplicate member names and
 * trailing data refused (RFC 7515 §5.2 step 4, RFC 7519 §7.2 step 9). *text holds the
 * decoded bytes the view points into. */
static enum ha_err parse_json_part(const char *b64, size_t len, char **text,
                                   struct ha_json_view *view)
{
    unsigned char *bytes = NULL;
    size_t n = 0;
    enum ha_err err;

    err = ha_b64url_decode(b64, len, &bytes, &n);
    if (err == HA_OK)
        err = ha_json_view_parse((char *)bytes, n, view);
    if (err != HA_OK) {
        free(bytes);
        return err == HA_ERR_NOMEM ? HA_ERR_NOMEM : HA_ERR_JWT_FORMAT;
    }
    *text = (char *)bytes;
    return HA_OK;
}

/* An empty signature part is kept (sig_len 0) so that "alg":"none" is refused by the alg
 * check with HA_ERR_JWT_ALG rather than as a format error; no RS256 key verifies it. */
static enum ha_err parse_sig(struct ha_jwt *jwt, const char *b64, size_t len)
{
    enum ha_err err;
    if (len == 0)
        return HA_OK;
    err = ha_b64url_decode(b64, len, &jwt->sig, &jwt->sig_len);
    if (err != HA_OK)
        return err == HA_ERR_NOMEM ? HA_ERR_NOMEM : HA_ERR_JWT_FORMAT;
    return HA_OK;
}

enum ha_err ha_jwt_parse(const char *token, size_t len, struct ha_jwt **out)
{
    struct ha_jwt *jwt = NULL;
    const char *d1, *d2, *end;
    enum ha_err err;

    if (token == NULL)
        return HA_ERR_JWT_FORMAT;
    if (len > HA_MAX_JWT)
        return HA_ERR_TOO_LARGE;
    err = HA_ERR_NOMEM;
    jwt = calloc(1, sizeof(*jwt));
    if (jwt == NULL || (jwt->raw = malloc(len + 1)) == NULL)
        goto out;
    memcpy(jwt->raw, token, len);
    jwt->raw[len] = '\0';
    end = jwt->raw + len;
    err = HA_ERR_JWT_FORMAT;
    d1 = memchr(jwt->raw, '.', len);
    if (d1 == NULL)
        goto out;
    d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
        goto out;
    err = parse_json_part(jwt->raw, (size_t)(d1 - jwt->raw), &jwt->header_text, &jwt->header);
    if (err == HA_OK)
        err = parse_json_part(d1 + 1, (size_t)(d2 - d1 - 1), &jwt->claims_text, &jwt->claims);
    if (err == HA_OK)
        err = parse_sig(jwt, d2 + 1, (size_t)(end - d2 - 1));
    if (err != HA_OK)
        goto out;
    jwt->signing_input = jwt->raw;
    jwt->signing_input_len = (size_t)(d2 - jwt->raw);
    *out = jwt;
    jwt = NULL;
    err = HA_OK;
out:
    ha_jwt_free(jwt);
    return err;
}

static int is_string(const struct ha_json_val *v)
{
    return v != NULL && v->type == HA_JSON_STRING;
}

static int string_is(const struct ha_json_val *v, const char *want)
{
    return is_string(v) && v->len == strlen(want) && memcmp(v->str, want, v->len) == 0;
}

static int kid_ok(const struct ha_json_val *kid)
{
    size_t i;
    if (!is_string(kid) || kid->len == 0 || kid->len > KID_MAX)
        return 0;
    for (i = 0; i < kid->len; i++) {
        if ((unsigned char)kid->str[i] < 0x21 || (unsigned char)kid->str[i] > 0x7e)
            return 0;
    }
    return 1;
}

static enum ha_err check_header(const struct ha_jwt *jwt, const char **reason)
{
    const struct ha_json_val *kid;
    /* alg first: the algorithm is pinned before anything else in the header is looked at. */
    if (!string_is(ha_json_view_get(&jwt->header, "alg"), HA_OIDC_ALG)) {
        *reason = "alg not RS256";
        return HA_ERR_JWT_ALG;
    }
    /* RFC 7515 §4.1.11: we implement no extension, so any crit must be refused. */
    if (ha_json_view_get(&jwt->header, "crit") != NULL) {
        *reason = "crit header refused";
        return HA_ERR_JWT_ALG;
    }
    kid = ha_json_view_get(&jwt->header, "kid");
    if (kid != NULL && !kid_ok(kid)) {
        *reason = "kid malformed";
        return HA_ERR_JWT_FORMAT;
    }
    return HA_OK;
}

enum ha_err ha_jwt_check_header(const struct ha_jwt *jwt)
{
    const char *reason = NULL;
    return check_header(jwt, &reason);
}

const char *ha_jwt_kid(const struct ha_jwt *jwt)
{
    const struct ha_json_val *kid = ha_json_view_get(&jwt->header, "kid");
    return is_string(kid) ? kid->str : NULL;
}

const char *ha_jwt_claim_str(const struct ha_jwt *jwt, const char *name)
{
    const struct ha_json_val *v = ha_json_view_get(&jwt->claims, name);
    return is_string(v) ? v->str : NULL;
}

static EVP_PKEY_CTX *new_verify_ctx(EVP_PKEY *key)
{
    EVP_PKEY_CTX *ctx = NULL;
    if (!EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_get_bits(key) < HA_MIN_RSA_BITS)
        return NULL;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (ctx == NULL || EVP_PKEY_verify_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx, sha256_md) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* This thread's context for key, reused while the key stays the same. *owned is set when
 * the context could not be cached and the caller must free it. */
static EVP_PKEY_CTX *verify_ctx(EVP_PKEY *key, int *owned)
{
    EVP_PKEY_CTX *ctx;
    *owned = 0;
    if (tl_ctx != NULL && tl_key == key)
        return tl_ctx;
    ctx = new_verify_ctx(key);
    if (ctx == NULL)
        return NULL;
    if (!ctx_key_ok || pthread_setspecific(ctx_key, ctx) != 0) {
        *owned = 1;
        return ctx;
    }
    EVP_PKEY_CTX_free(tl_ctx);
    tl_ctx = ctx;
    tl_key = key;
    return ctx;
}

enum ha_err ha_jwt_verify_signature(const struct ha_jwt *jwt, EVP_PKEY *key)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_PKEY_CTX *ctx = NULL;
    int owned = 0;
    enum ha_err err = HA_ERR_JWT_SIG;

    pthread_once(&verify_once, verify_init);
    if (key == NULL || sha256_md == NULL || jwt->sig == NULL)
        goto out;
    /* RFC 8017 §8.2.2 step 1: the signature is exactly k octets, so one whose leading zero
     * octet was stripped is refused here, whatever the provider's own checks. */
    if (jwt->sig_len != (size_t)EVP_PKEY_get_size(key))
        goto out;
    if (EVP_Digest(jwt->signing_input, jwt->signing_input_len, digest, &dlen, sha256_md, NULL) != 1)
        goto out;
    ctx = verify_ctx(key, &owned);
    if (ctx == NULL)
        goto out;
    if (EVP_PKEY_verify(ctx, jwt->sig, jwt->sig_len, digest, dlen) == 1)
        err = HA_OK;
out:
    if (err != HA_OK)
        ERR_clear_error();
    if (owned)
        EVP_PKEY_CTX_free(ctx);
    return err;
}

/* 1 and *v when the claim is a JSON number (integer or real), 0 when absent, -1 otherwise. */
static int num_claim(const struct ha_json_view *claims, const char *name, double *v)
{
    const struct ha_json_val *j = ha_json_view_get(claims, name);
    if (j == NULL)
        return 0;
    if (j->type != HA_JSON_NUMBER)
        return -1;
    *v = j->num;
    return 1;
}

static const char *check_aud(const struct ha_json_view *claims, const char *want, size_t *count)
{
    const struct ha_json_val *aud = ha_json_view_get(claims, "aud"), *v;
    size_t i, found = 0;
    if (aud == NULL)
        return "aud missing";
    if (is_string(aud)) {
        *count = 1;
        return string_is(aud, want) ? NULL : "aud lacks the expected audience";
    }
    if (aud->type != HA_JSON_ARRAY || aud->len == 0)
        return "aud malformed";
    for (i = 0; (v = ha_json_view_item(claims, aud, i)) != NULL; i++) {
        if (!is_string(v))
            return "aud malformed";
        if (string_is(v, want))
            found = 1;
    }
    *count = aud->len;
    return found ? NULL : "aud lacks the expected audience";
}

/* OIDC Core §3.1.3.7 steps 2-5: iss exact, aud contains us, azp when present or needed. */
static const char *check_parties(const struct ha_json_view *claims, const struct ha_jwt_expect *e)
{
    const struct ha_json_val *azp = ha_json_view_get(claims, "azp");
    const char *why;
    size_t count = 0;

    if (e->issuer == NULL || !string_is(ha_json_view_get(claims, "iss"), e->issuer))
        return "iss mismatch";
    if (e->audience == NULL)
        return "aud lacks the expected audience";
    why = check_aud(claims, e->audience, &count);
    if (why != NULL)
        return why;
    if (e->azp == NULL)
        return NULL;
    if (azp != NULL && !string_is(azp, e->azp))
        return "azp mismatch";
    if (azp == NULL && count > 1 && e->azp_if_multi_aud)
        return "azp missing with multiple aud";
    return NULL;
}

/* Steps 9-10 and RFC 7519 §4.1.4-6. Compared as doubles: exact for any integer below 2^53. */
static const char *check_times(const struct ha_json_view *claims, const struct ha_jwt_expect *e)
{
    double exp = 0, nbf = 0, iat = 0, late = (double)e->now + (double)e->leeway;
    double early = (double)e->now - (double)e->leeway;
    int has;

    has = num_claim(claims, "exp", &exp);
    if (has == 0)
        return "exp missing";
    if (has < 0)
        return "exp not numeric";
    if (early > exp)
        return "exp in the past";
    has = num_claim(claims, "nbf", &nbf);
    if (has < 0)
        return "nbf not numeric";
    if (has > 0 && nbf > late)
        return "nbf in the future";
    has = num_claim(claims, "iat", &iat);
    if (has < 0)
        return "iat not numeric";
    if (has == 0 && e->require_iat)
        return "iat missing";
    if (has > 0 && iat > late)
        return "iat in the future";
    return NULL;
}

static const char *check_subject(const struct ha_json_view *claims, const struct ha_jwt_expect *e)
{
    const struct ha_json_val *sub = ha_json_view_get(claims, "sub");
    const struct ha_json_val *nonce = ha_json_view_get(claims, "nonce");

    if (e->require_sub && (!is_string(sub) || sub->len == 0))
        return "sub missing";
    if (e->nonce == NULL)
        return NULL;
    if (!is_string(nonce))
        return "nonce missing";
    /* The view never holds an embedded NUL (\u0000 is refused), so the C string is all of
     * the claim and cannot shorten the constant-time compare. */
    if (!ha_str_ct_equal(nonce->str, e->nonce))
        return "nonce mismatch";
    return NULL;
}

enum ha_err ha_jwt_check_claims(const struct ha_jwt *jwt, const struct ha_jwt_expect *e,
                                const char **reason)
{
    const char *why = check_parties(&jwt->claims, e);
    if (why == NULL)
        why = check_times(&jwt->claims, e);
    if (why == NULL)
        why = check_subject(&jwt->claims, e);
    if (why == NULL)
        return HA_OK;
    if (reason != NULL)
        *reason = why;
    return HA_ERR_JWT_CLAIMS;
}

enum ha_err ha_jwt_check_email(const struct ha_jwt *jwt, bool allow_unverified, bool *unverified,
                               const char **reason)
{
    const struct ha_json_val *email = ha_json_view_get(&jwt->claims, "email");
    const struct ha_json_val *verified = ha_json_view_get(&jwt->claims, "email_verified");
    bool not_verified = verified == NULL || verified->type != HA_JSON_TRUE;
    const char *why = NULL;

    if (!is_string(email) || email->len == 0)
        why = "email missing";
    else if (not_verified && !allow_unverified)
        why = "email_verified is not true";
    if (unverified != NULL)
        *unverified = not_verified;
    if (why == NULL)
        return HA_OK;
    if (reason != NULL)
        *reason = why;
    return HA_ERR_JWT_CLAIMS;
}

enum ha_err ha_jwt_verify(const char *token, size_t len, struct ha_jwks_cache *keys,
                          const struct ha_jwt_expect *e, struct ha_jwt **out, const char **reason)
{
    struct ha_jwt *jwt = NULL;
    EVP_PKEY *key = NULL;
    const char *why = "malformed token";
    enum ha_err err;

    err = HA_ERR_INVALID;
    if (e == NULL)
        goto out;
    err = ha_jwt_parse(token, len, &jwt);
    if (err == HA_ERR_TOO_LARGE)
        why = "token too large";
    if (err != HA_OK)
        goto out;
    err = check_header(jwt, &why);
    if (err != HA_OK)
        goto out;
    why = "unknown kid";
    err = keys == NULL ? HA_ERR_JWT_KEY : ha_jwks_cache_get_key(keys, ha_jwt_kid(jwt), &key);
    if (err != HA_OK) {
        err = err == HA_ERR_NOMEM ? err : HA_ERR_JWT_KEY;
        goto out;
    }
    why = "bad signature";
    err = ha_jwt_verify_signature(jwt, key);
    if (err != HA_OK)
        goto out;
    err = ha_jwt_check_claims(jwt, e, &why);
    if (err != HA_OK)
        goto out;
    if (out != NULL) {
        *out = jwt;
        jwt = NULL;
    }
out:
    if (err != HA_OK && reason != NULL)
        *reason = why;
    EVP_PKEY_free(key);
    ha_jwt_free(jwt);
    return err;
}
