/* Compact JWS for the dev tenant's tokens.
 *
 * The ordinary case (RS256 on the current key, no header fault) goes through libjwt, as a
 * real issuer library would. Every deliberately broken variant a test asks for is built by
 * hand with OpenSSL EVP, because libjwt will not produce them: alg "none" with an empty
 * signature, HS256 keyed with the published RSA key's SubjectPublicKeyInfo (PEM text or DER:
 * the classic algorithm-confusion attack), RS384/RS512/PS256 on the real key, ES256 on a P-256
 * key, RS256 on a key that is not in the JWKS but carries the real kid, and RS256 with one
 * flipped signature bit. /userinfo verifies access tokens here with EVP, the algorithm pinned
 * to RS256 before any key is touched. */
#include <stdlib.h>
#include <string.h>
#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include "houston_auth/b64url.h"
#include "houston_auth/buf.h"
#include "houston_auth/proto.h"
#include "tenant.h"

#define MAX_SIG 1024

static const struct {
    const char *name;
    const char *alg;
    enum tenant_sign mode;
} modes[] = {
    {"rs256", "RS256", SIGN_RS256},
    {"none", "none", SIGN_NONE},
    {"hs256-pubkey-pem", "HS256", SIGN_HS256_PEM},
    {"hs256-pubkey-der", "HS256", SIGN_HS256_DER},
    {"rs384", "RS384", SIGN_RS384},
    {"rs512", "RS512", SIGN_RS512},
    {"ps256", "PS256", SIGN_PS256},
    {"es256", "ES256", SIGN_ES256},
    {"other-key", "RS256", SIGN_OTHER_KEY},
    {"bad-signature", "RS256", SIGN_BAD_SIG},
};

bool tenant_sign_parse(const char *s, enum tenant_sign *out)
{
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(s, modes[i].name) == 0) {
            *out = modes[i].mode;
            return true;
        }
    }
    return false;
}

static const char *mode_alg(enum tenant_sign mode)
{
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (modes[i].mode == mode)
            return modes[i].alg;
    }
    return "RS256";
}

void tenant_json_merge(json_t *dst, json_t *src)
{
    const char *key;
    json_t *value;
    if (!json_is_object(dst) || !json_is_object(src))
        return;
    json_object_foreach(src, key, value)
    {
        if (json_is_null(value))
            json_object_del(dst, key);
        else
            json_object_set(dst, key, value);
    }
}

static const struct tenant_key *current_key(struct tenant *t)
{
    const struct tenant_key *k;
    pthread_mutex_lock(&t->lock);
    k = &t->keys[t->nkeys - 1];
    pthread_mutex_unlock(&t->lock);
    return k;
}

static enum ha_err sign_libjwt(const struct tenant_key *k, json_t *claims, char **out)
{
    jwt_t *jwt = NULL;
    char *text = json_dumps(claims, JSON_COMPACT);
    char *token = NULL;
    enum ha_err err = HA_ERR_CRYPTO;

    if (text == NULL || jwt_new(&jwt) != 0)
        goto out;
    if (jwt_add_grants_json(jwt, text) != 0 || jwt_add_header(jwt, "kid", k->kid) != 0)
        goto out;
    if (jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)k->pem, (int)strlen(k->pem)) != 0)
        goto out;
    /* libjwt 1.10 allocates with malloc() unless told otherwise: the caller's free() fits. */
    token = jwt_encode_str(jwt);
    if (token == NULL)
        goto out;
    *out = token;
    err = HA_OK;
out:
    jwt_free(jwt);
    free(text);
    return err;
}

static enum ha_err evp_sign(EVP_PKEY *key, const EVP_MD *md, bool pss, const char *input,
                            unsigned char *sig, size_t *siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    enum ha_err err = HA_ERR_CRYPTO;
    if (ctx == NULL || key == NULL || EVP_DigestSignInit(ctx, &pctx, md, NULL, key) != 1)
        goto out;
    if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        goto out;
    *siglen = MAX_SIG;
    if (EVP_DigestSign(ctx, sig, siglen, (const unsigned char *)input, strlen(input)) == 1)
        err = HA_OK;
out:
    EVP_MD_CTX_free(ctx);
    return err;
}

/* ES256 signatures are r || s, 32 bytes each (RFC 7518 §3.4), not DER. */
static enum ha_err es256_sign(EVP_PKEY *key, const char *input, unsigned char *sig, size_t *siglen)
{
    unsigned char der[MAX_SIG];
    const unsigned char *p = der;
    size_t dlen = 0;
    ECDSA_SIG *es = NULL;
    const BIGNUM *r, *s;
    enum ha_err err = evp_sign(key, EVP_sha256(), false, input, der, &dlen);
    if (err != HA_OK)
        return err;
    es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
    if (es == NULL)
        return HA_ERR_CRYPTO;
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
        err = HA_ERR_CRYPTO;
    ECDSA_SIG_free(es);
    *siglen = 64;
    return err;
}

static enum ha_err hs256_pubkey(EVP_PKEY *key, bool pem, const char *input, unsigned char *sig,
                                size_t *siglen)
{
    unsigned char *secret = NULL;
    size_t slen = 0;
    unsigned int mdlen = 0;
    enum ha_err err = tenant_spki(key, pem, &secret, &slen);
    if (err != HA_OK)
        return err;
    if (HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)input, strlen(input), sig,
             &mdlen) == NULL)
        err = HA_ERR_CRYPTO;
    *siglen = mdlen;
    free(secret);
    return err;
}

static enum ha_err signature(struct tenant *t, const struct tenant_key *k, enum tenant_sign mode,
                             const char *input, unsigned char *sig, size_t *siglen)
{
    enum ha_err err;
    *siglen = 0;
    switch (mode) {
    case SIGN_NONE:
        return HA_OK;
    case SIGN_HS256_PEM:
    case SIGN_HS256_DER:
        return hs256_pubkey(k->pkey, mode == SIGN_HS256_PEM, input, sig, siglen);
    case SIGN_RS384:
        return evp_sign(k->pkey, EVP_sha384(), false, input, sig, siglen);
    case SIGN_RS512:
        return evp_sign(k->pkey, EVP_sha512(), false, input, sig, siglen);
    case SIGN_PS256:
        return evp_sign(k->pkey, EVP_sha256(), true, input, sig, siglen);
    case SIGN_ES256:
        return es256_sign(t->ec_key, input, sig, siglen);
    case SIGN_OTHER_KEY:
        return evp_sign(t->other_key, EVP_sha256(), false, input, sig, siglen);
    case SIGN_BAD_SIG:
        err = evp_sign(k->pkey, EVP_sha256(), false, input, sig, siglen);
        if (err == HA_OK)
            sig[*siglen / 2] ^= 0x01;
        return err;
    case SIGN_RS256:
        break;
    }
    return evp_sign(k->pkey, EVP_sha256(), false, input, sig, siglen);
}

static enum ha_err append_b64_json(struct ha_buf *b, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    char *enc = NULL;
    enum ha_err err = HA_ERR_NOMEM;
    if (text != NULL)
        err = ha_b64url_encode((const unsigned char *)text, strlen(text), &enc);
    if (err == HA_OK)
        err = ha_buf_append_str(b, enc);
    free(text);
    free(enc);
    return err;
}

static enum ha_err sign_evp(struct tenant *t, const struct tenant_key *k, json_t *header_extra,
                            json_t *claims, enum tenant_sign mode, char **out)
{
    json_t *header =
        json_pack("{s:s, s:s, s:s}", "alg", mode_alg(mode), "typ", "JWT", "kid", k->kid);
    unsigned char sig[MAX_SIG];
    size_t siglen = 0;
    char *enc = NULL;
    struct ha_buf b;
    enum ha_err err = HA_ERR_NOMEM;

    ha_buf_init(&b, 2 * HA_MAX_JWT);
    if (header == NULL)
        goto out;
    tenant_json_merge(header, header_extra);
    err = append_b64_json(&b, header);
    if (err == HA_OK)
        err = ha_buf_append_str(&b, ".");
    if (err == HA_OK)
        err = append_b64_json(&b, claims);
    if (err == HA_OK)
        err = signature(t, k, mode, b.data, sig, &siglen);
    if (err == HA_OK)
        err = ha_b64url_encode(sig, siglen, &enc);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, ".%s", enc);
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
out:
    json_decref(header);
    free(enc);
    ha_buf_cleanup(&b);
    return err;
}

enum ha_err tenant_jws_sign(struct tenant *t, json_t *header_extra, json_t *claims,
                            enum tenant_sign mode, char **out)
{
    const struct tenant_key *k = current_key(t);
    if (mode == SIGN_RS256 && (header_extra == NULL || json_object_size(header_extra) == 0))
        return sign_libjwt(k, claims, out);
    return sign_evp(t, k, header_extra, claims, mode, out);
}

static json_t *decode_part(const char *s, size_t len)
{
    unsigned char *raw = NULL;
    size_t rlen = 0;
    json_t *j;
    if (ha_b64url_decode(s, len, &raw, &rlen) != HA_OK)
        return NULL;
    j = json_loadb((const char *)raw, rlen, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static const struct tenant_key *key_by_kid(struct tenant *t, const char *kid)
{
    size_t n;
    pthread_mutex_lock(&t->lock);
    n = t->nkeys;
    pthread_mutex_unlock(&t->lock);
    for (size_t i = 0; kid != NULL && i < n; i++) {
        if (strcmp(t->keys[i].kid, kid) == 0)
            return &t->keys[i];
    }
    return NULL;
}

static enum ha_err verify_sig(EVP_PKEY *key, const char *input, size_t ilen, const char *sig64,
                              size_t slen)
{
    unsigned char *sig = NULL;
    size_t siglen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    enum ha_err err = HA_ERR_JWT_SIG;
    if (ctx == NULL || ha_b64url_decode(sig64, slen, &sig, &siglen) != HA_OK)
        goto out;
    if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input, ilen) == 1)
        err = HA_OK;
out:
    EVP_MD_CTX_free(ctx);
    free(sig);
    return err;
}

enum ha_err tenant_jws_verify(struct tenant *t, const char *token, json_t **claims)
{
    size_t len = strlen(token);
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 != NULL ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    json_t *header = NULL, *payload = NULL;
    const struct tenant_key *k;
    enum ha_err err = HA_ERR_JWT_FORMAT;

    if (len > HA_MAX_JWT || d2 == NULL || memchr(d2 + 1, '.', strlen(d2 + 1)) != NULL)
        goto out;
    header = decode_part(token, (size_t)(d1 - token));
    payload = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
    if (header == NULL || payload == NULL)
        goto out;
    err = HA_ERR_JWT_ALG;
    if (!json_is_string(json_object_get(header, "alg")) ||
        strcmp(json_string_value(json_object_get(header, "alg")), HA_OIDC_ALG) != 0)
        goto out;
    err = HA_ERR_JWT_KEY;
    k = key_by_kid(t, json_string_value(json_object_get(header, "kid")));
    if (k == NULL)
        goto out;
    err = verify_sig(k->pkey, token, (size_t)(d2 - token), d2 + 1, strlen(d2 + 1));
    if (err == HA_OK) {
        *claims = payload;
        payload = NULL;
    }
out:
    json_decref(header);
    json_decref(payload);
    return err;
}
