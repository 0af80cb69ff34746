/* One login in flight, kept in the browser instead of a server-side store.
 *
 * A transaction holds the state, nonce and PKCE verifier (32 random bytes each, b64url) and
 * what the UI asked for. It is serialised as a compact binary record, every integer
 * big-endian:
 *   version (1 byte, 2) | created (8, seconds since the epoch) | state | nonce | verifier
 *   (32 raw bytes each) | integration | redirect | extras | invite
 * where each string is a 2-byte length and its bytes, 0xFFFF standing for an absent extras or
 * invite; nothing may follow. Binary rather than JSON because the cookie's size is the jar's
 * budget (proto.h): 113 bytes plus the strings, whatever characters they hold. The record is
 * sealed with AES-256-GCM: "v2." + b64url(iv | ciphertext | tag), a fresh 96-bit IV per seal
 * (NIST SP 800-38D §8.2.2, random construction) and the cookie name ("__Host-ha_txn_<id>")
 * as additional data, so a value copied under another name, the unprefixed one included,
 * does not open. The cookie name itself is derived from the state (SHA-256, truncated),
 * which lets the redirect handler find the one cookie that belongs to the state Auth0 sent
 * back.
 *
 * Opening tries each key (current, then previous) so a rotated cookie secret does not break
 * logins in flight. Nothing is trusted before the tag verifies; after that the record is
 * parsed strictly anyway (version, lengths within the buffer and their caps, no NUL inside a
 * string, nothing left over). Plaintext buffers are wiped before they go out of scope.
 *
 * The sealing key is derived here from the administrator's cookie secret (HKDF-SHA256, fixed
 * info), so the secret itself never keys a cipher and the whole cookie format, key included,
 * lives in one file. */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include "houston_auth/b64url.h"
#include "houston_auth/ctype.h"
#include "houston_auth/transaction.h"

#define TXN_VERSION 2
#define TXN_PREFIX "v2."
#define TXN_PREFIX_LEN 3
#define TXN_IV_LEN 12
#define TXN_TAG_LEN 16
#define TXN_KEY_INFO "houston-auth transaction cookie v1" /* HKDF info: never changes */
#define TXN_FUTURE_SKEW 60 /* seconds a created time may lie ahead of now */
/* Plaintext can never be larger than the decoded cookie, which is smaller than its text. */
#define TXN_PLAIN_MAX HA_TXN_COOKIE_MAX
#define TXN_TIME_OFF 1
#define TXN_RANDOM_OFF 9 /* state, nonce, verifier: HA_RANDOM_BYTES each */
#define TXN_FIXED_LEN (TXN_RANDOM_OFF + 3 * HA_RANDOM_BYTES)
#define TXN_ABSENT 0xFFFFu /* length of an absent optional string */

enum ha_err ha_txn_derive_key(const char *secret, size_t len, unsigned char out[HA_TXN_KEY_LEN])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = NULL;
    OSSL_PARAM params[4];
    unsigned char key[HA_TXN_KEY_LEN];
    enum ha_err err = HA_ERR_CRYPTO;

    if (kdf == NULL)
        goto out;
    ctx = EVP_KDF_CTX_new(kdf);
    if (ctx == NULL)
        goto out;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)TXN_KEY_INFO,
                                                  strlen(TXN_KEY_INFO));
    params[3] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(ctx, key, sizeof(key), params) == 1) {
        memcpy(out, key, sizeof(key));
        err = HA_OK;
    }
out:
    OPENSSL_cleanse(key, sizeof(key));
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return err;
}

static void sha256_b64(const char *s, char out[HA_RANDOM_B64_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (s == NULL)
        s = "";
    if (EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        /* Only on a broken OpenSSL: an empty result matches nothing a peer can send. */
        out[0] = '\0';
        return;
    }
    ha_b64url_encode_to(md, mdlen, out);
}

void ha_txn_challenge(const struct ha_txn *t, char out[HA_RANDOM_B64_LEN + 1])
{
    sha256_b64(t->verifier, out);
}

void ha_txn_cookie_name(const char *state, char out[64])
{
    char digest[HA_RANDOM_B64_LEN + 1];
    size_t plen = strlen(HA_TXN_COOKIE_PREFIX);

    sha256_b64(state, digest);
    memcpy(out, HA_TXN_COOKIE_PREFIX, plen);
    memcpy(out + plen, digest, HA_TXN_ID_LEN);
    out[plen + HA_TXN_ID_LEN] = '\0';
}

bool ha_txn_check_cookie_name(const char *name)
{
    size_t plen = strlen(HA_TXN_COOKIE_PREFIX), i;

    if (name == NULL || strncmp(name, HA_TXN_COOKIE_PREFIX, plen) != 0)
        return false;
    for (i = 0; i < HA_TXN_ID_LEN; i++) {
        if (!ha_isb64url(name[plen + i]))
            return false; /* also stops at the terminating NUL */
    }
    return name[plen + HA_TXN_ID_LEN] == '\0';
}

static enum ha_err random_b64(const struct ha_rng *rng, char out[HA_RANDOM_B64_LEN + 1])
{
    unsigned char raw[HA_RANDOM_BYTES];
    enum ha_err err = rng->fill(rng->ctx, raw, sizeof(raw));

    if (err == HA_OK)
        ha_b64url_encode_to(raw, sizeof(raw), out);
    OPENSSL_cleanse(raw, sizeof(raw));
    return err;
}

static enum ha_err check_field(const char *s, size_t max, int required)
{
    if (s == NULL)
        return required ? HA_ERR_INVALID : HA_OK;
    return strlen(s) > max ? HA_ERR_TOO_LARGE : HA_OK;
}

static enum ha_err check_fields(const char *integration, const char *redirect, const char *extras,
                                const char *invite_token)
{
    enum ha_err err = check_field(integration, HA_MAX_INTEGRATION, 1);

    if (err == HA_OK)
        err = check_field(redirect, HA_MAX_REDIRECT, 1);
    if (err == HA_OK)
        err = check_field(extras, HA_MAX_EXTRAS, 0);
    if (err == HA_OK)
        err = check_field(invite_token, HA_MAX_INVITE, 0);
    return err;
}

/* Copies the four strings into t; on failure t's strings are freed. */
static enum ha_err dup_fields(struct ha_txn *t, const char *integration, const char *redirect,
                              const char *extras, const char *invite_token)
{
    t->integration = ha_strdup(integration);
    t->redirect = ha_strdup(redirect);
    t->extras = ha_strdup(extras);
    t->invite_token = ha_strdup(invite_token);
    if (t->integration == NULL || t->redirect == NULL || (extras != NULL && t->extras == NULL) ||
        (invite_token != NULL && t->invite_token == NULL)) {
        ha_txn_cleanup(t);
        return HA_ERR_NOMEM;
    }
    return HA_OK;
}

enum ha_err ha_txn_init(struct ha_txn *t, const struct ha_rng *rng, long now,
                        const char *integration, const char *redirect, const char *extras,
                        const char *invite_token)
{
    struct ha_txn tmp;
    enum ha_err err;

    memset(&tmp, 0, sizeof(tmp));
    err = check_fields(integration, redirect, extras, invite_token);
    if (err != HA_OK)
        goto out;
    err = random_b64(rng, tmp.state);
    if (err == HA_OK)
        err = random_b64(rng, tmp.nonce);
    if (err == HA_OK)
        err = random_b64(rng, tmp.verifier);
    if (err != HA_OK)
        goto out;
    err = dup_fields(&tmp, integration, redirect, extras, invite_token);
    if (err != HA_OK)
        goto out;
    tmp.created = now;
    *t = tmp;
    memset(&tmp, 0, sizeof(tmp));
out:
    ha_txn_cleanup(&tmp);
    return err;
}

void ha_txn_cleanup(struct ha_txn *t)
{
    if (t == NULL)
        return;
    ha_free_secret(t->integration);
    ha_free_secret(t->redirect);
    ha_free_secret(t->extras);
    ha_free_secret(t->invite_token);
    OPENSSL_cleanse(t, sizeof(*t)); /* also leaves the pointers NULL */
}

/* The 32 random bytes behind a 43-character b64url field. */
static enum ha_err raw_random(const char *b64, unsigned char out[HA_RANDOM_BYTES])
{
    unsigned char *raw = NULL;
    size_t n = 0;
    enum ha_err err;

    if (strlen(b64) != HA_RANDOM_B64_LEN)
        return HA_ERR_INVALID;
    err = ha_b64url_decode(b64, HA_RANDOM_B64_LEN, &raw, &n);
    if (err != HA_OK)
        return err == HA_ERR_NOMEM ? err : HA_ERR_INVALID;
    if (n == HA_RANDOM_BYTES)
        memcpy(out, raw, HA_RANDOM_BYTES);
    OPENSSL_cleanse(raw, n);
    free(raw);
    return n == HA_RANDOM_BYTES ? HA_OK : HA_ERR_INVALID;
}

/* Appends a length-prefixed string (or the absent marker for NULL) at *o. */
static enum ha_err put_string(unsigned char *buf, size_t cap, size_t *o, const char *s)
{
    size_t n = s != NULL ? strnlen(s, TXN_ABSENT) : 0, len = s != NULL ? n : TXN_ABSENT;

    if (n >= TXN_ABSENT)
        return HA_ERR_TOO_LARGE;
    if (cap - *o < 2 + n)
        return HA_ERR_TOO_LARGE;
    buf[*o] = (unsigned char)(len >> 8);
    buf[*o + 1] = (unsigned char)(len & 0xff);
    if (n > 0)
        memcpy(buf + *o + 2, s, n);
    *o += 2 + n;
    return HA_OK;
}

/* Serialises t into buf; *len is the record's length. HA_ERR_TOO_LARGE when it does not fit,
 * HA_ERR_INVALID for a field ha_txn_init could not have made. */
static enum ha_err serialise(const struct ha_txn *t, unsigned char *buf, size_t cap, size_t *len)
{
    uint64_t c = (uint64_t)t->created;
    size_t o = TXN_FIXED_LEN;
    enum ha_err err;

    if (t->integration == NULL || t->redirect == NULL || t->created < 0)
        return HA_ERR_INVALID;
    if (cap < TXN_FIXED_LEN)
        return HA_ERR_TOO_LARGE;
    buf[0] = TXN_VERSION;
    for (int i = 0; i < 8; i++)
        buf[TXN_TIME_OFF + i] = (unsigned char)(c >> (56 - 8 * i));
    err = raw_random(t->state, buf + TXN_RANDOM_OFF);
    if (err == HA_OK)
        err = raw_random(t->nonce, buf + TXN_RANDOM_OFF + HA_RANDOM_BYTES);
    if (err == HA_OK)
        err = raw_random(t->verifier, buf + TXN_RANDOM_OFF + 2 * HA_RANDOM_BYTES);
    if (err == HA_OK)
        err = put_string(buf, cap, &o, t->integration);
    if (err == HA_OK)
        err = put_string(buf, cap, &o, t->redirect);
    if (err == HA_OK)
        err = put_string(buf, cap, &o, t->extras);
    if (err == HA_OK)
        err = put_string(buf, cap, &o, t->invite_token);
    if (err == HA_OK)
        *len = o;
    return err;
}

/* AES-256-GCM over pt into ct (same length) and tag. */
static enum ha_err gcm_seal(const unsigned char *key, const unsigned char *iv, const char *aad,
                            const unsigned char *pt, size_t ptlen, unsigned char *ct,
                            unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    enum ha_err err = HA_ERR_CRYPTO;
    int n = 0;

    if (ctx == NULL)
        return HA_ERR_NOMEM;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        EVP_EncryptUpdate(ctx, ct, &n, pt, (int)ptlen) != 1 ||
        EVP_EncryptFinal_ex(ctx, ct + n, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TXN_TAG_LEN, tag) != 1)
        goto out;
    err = HA_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    return err;
}

/* Verifies and decrypts ct with one key; pt receives ctlen bytes only when the tag is good. */
static enum ha_err gcm_open(const unsigned char *key, const unsigned char *iv, const char *aad,
                            const unsigned char *ct, size_t ctlen, const unsigned char *tag,
                            unsigned char *pt)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    enum ha_err err = HA_ERR_CRYPTO;
    int n = 0;

    if (ctx == NULL)
        return HA_ERR_NOMEM;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        EVP_DecryptUpdate(ctx, pt, &n, ct, (int)ctlen) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TXN_TAG_LEN, (void *)tag) != 1 ||
        EVP_DecryptFinal_ex(ctx, pt + n, &n) != 1) {
        OPENSSL_cleanse(pt, ctlen);
        goto out;
    }
    err = HA_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    return err;
}

/* "v2." + b64url(raw) into a new string, refused past HA_TXN_COOKIE_MAX. */
static enum ha_err encode_value(const unsigned char *raw, size_t rawlen, char **out)
{
    size_t enclen = ha_b64url_encoded_len(rawlen);
    char *s;

    if (enclen > HA_TXN_COOKIE_MAX - TXN_PREFIX_LEN)
        return HA_ERR_TOO_LARGE;
    s = malloc(TXN_PREFIX_LEN + enclen + 1);
    if (s == NULL)
        return HA_ERR_NOMEM;
    memcpy(s, TXN_PREFIX, TXN_PREFIX_LEN);
    ha_b64url_encode_to(raw, rawlen, s + TXN_PREFIX_LEN);
    *out = s;
    return HA_OK;
}

enum ha_err ha_txn_seal(const struct ha_txn *t, const unsigned char key[HA_TXN_KEY_LEN],
                        const struct ha_rng *rng, char **out)
{
    unsigned char plain[TXN_PLAIN_MAX];
    unsigned char raw[TXN_IV_LEN + TXN_PLAIN_MAX + TXN_TAG_LEN];
    char name[64];
    size_t ptlen = 0;
    enum ha_err err;

    err = serialise(t, plain, sizeof(plain), &ptlen);
    if (err != HA_OK)
        goto out;
    if (ha_b64url_encoded_len(TXN_IV_LEN + ptlen + TXN_TAG_LEN) >
        HA_TXN_COOKIE_MAX - TXN_PREFIX_LEN) {
        err = HA_ERR_TOO_LARGE;
        goto out;
    }
    err = rng->fill(rng->ctx, raw, TXN_IV_LEN);
    if (err != HA_OK)
        goto out;
    ha_txn_cookie_name(t->state, name);
    err = gcm_seal(key, raw, name, plain, ptlen, raw + TXN_IV_LEN, raw + TXN_IV_LEN + ptlen);
    if (err != HA_OK)
        goto out;
    err = encode_value(raw, TXN_IV_LEN + ptlen + TXN_TAG_LEN, out);
out:
    OPENSSL_cleanse(plain, sizeof(plain));
    return err;
}

/* Reads the length-prefixed string at *o: its bytes and length, or absent. */
static enum ha_err get_string(const unsigned char *pt, size_t len, size_t *o,
                              const unsigned char **p, size_t *n, bool *absent)
{
    size_t l;

    if (len - *o < 2)
        return HA_ERR_INVALID;
    l = (size_t)pt[*o] << 8 | pt[*o + 1];
    *o += 2;
    *absent = l == TXN_ABSENT;
    if (*absent)
        l = 0;
    if (len - *o < l || memchr(pt + *o, '\0', l) != NULL)
        return HA_ERR_INVALID;
    *p = pt + *o;
    *n = l;
    *o += l;
    return HA_OK;
}

/* The four strings of an authenticated record into tmp, copied; integration and redirect
 * must be present, each within its cap, and nothing may follow them. */
static enum ha_err parse_strings(const unsigned char *pt, size_t len, struct ha_txn *tmp)
{
    char **fields[4] = {&tmp->integration, &tmp->redirect, &tmp->extras, &tmp->invite_token};
    const size_t caps[4] = {HA_MAX_INTEGRATION, HA_MAX_REDIRECT, HA_MAX_EXTRAS, HA_MAX_INVITE};
    size_t o = TXN_FIXED_LEN;

    for (size_t i = 0; i < 4; i++) {
        const unsigned char *p = NULL;
        size_t n = 0;
        bool absent = false;
        if (get_string(pt, len, &o, &p, &n, &absent) != HA_OK || (absent && i < 2) || n > caps[i])
            return HA_ERR_INVALID;
        if (absent)
            continue;
        *fields[i] = strndup((const char *)p, n);
        if (*fields[i] == NULL)
            return HA_ERR_NOMEM;
    }
    return o == len ? HA_OK : HA_ERR_INVALID;
}

/* Strict parse of an authenticated plaintext into tmp (strings copied; on failure the caller
 * cleans tmp up). */
static enum ha_err parse_plain(const unsigned char *pt, size_t len, struct ha_txn *tmp)
{
    uint64_t c = 0;

    if (len < TXN_FIXED_LEN || pt[0] != TXN_VERSION)
        return HA_ERR_INVALID;
    for (int i = 0; i < 8; i++)
        c = c << 8 | pt[TXN_TIME_OFF + i];
    if (c > (uint64_t)LONG_MAX)
        return HA_ERR_INVALID;
    tmp->created = (long)c;
    ha_b64url_encode_to(pt + TXN_RANDOM_OFF, HA_RANDOM_BYTES, tmp->state);
    ha_b64url_encode_to(pt + TXN_RANDOM_OFF + HA_RANDOM_BYTES, HA_RANDOM_BYTES, tmp->nonce);
    ha_b64url_encode_to(pt + TXN_RANDOM_OFF + 2 * HA_RANDOM_BYTES, HA_RANDOM_BYTES, tmp->verifier);
    return parse_strings(pt, len, tmp);
}

/* Tries each key; pt receives the plaintext of the first that authenticates. */
static enum ha_err open_raw(const unsigned char *raw, size_t rawlen, const char *name,
                            const unsigned char (*keys)[HA_TXN_KEY_LEN], size_t nkeys,
                            unsigned char *pt, size_t *ptlen)
{
    size_t ctlen, k;
    enum ha_err err = HA_ERR_CRYPTO;

    if (rawlen < TXN_IV_LEN + TXN_TAG_LEN || rawlen - TXN_IV_LEN - TXN_TAG_LEN > TXN_PLAIN_MAX)
        return HA_ERR_CRYPTO;
    ctlen = rawlen - TXN_IV_LEN - TXN_TAG_LEN;
    for (k = 0; k < nkeys && err != HA_OK; k++) {
        err = gcm_open(keys[k], raw, name, raw + TXN_IV_LEN, ctlen, raw + TXN_IV_LEN + ctlen, pt);
        if (err == HA_ERR_NOMEM)
            return err;
    }
    if (err == HA_OK)
        *ptlen = ctlen;
    return err;
}

static enum ha_err check_time(long created, long now, long ttl)
{
    /* created is >= 0 and now is a real clock, so neither subtraction overflows. */
    if (created > now && created - now > TXN_FUTURE_SKEW)
        return HA_ERR_EXPIRED;
    if (now > created && now - created > ttl)
        return HA_ERR_EXPIRED;
    return HA_OK;
}

enum ha_err ha_txn_open(const char *value, size_t len, const char *cookie_name,
                        const unsigned char (*keys)[HA_TXN_KEY_LEN], size_t nkeys, long now,
                        long ttl, struct ha_txn *t)
{
    unsigned char pt[TXN_PLAIN_MAX];
    unsigned char *raw = NULL;
    size_t rawlen = 0, ptlen = 0;
    struct ha_txn tmp;
    enum ha_err err;

    memset(&tmp, 0, sizeof(tmp));
    err = HA_ERR_TOO_LARGE;
    if (len > HA_TXN_COOKIE_MAX)
        goto out;
    err = HA_ERR_INVALID;
    if (value == NULL || cookie_name == NULL || len < TXN_PREFIX_LEN ||
        memcmp(value, TXN_PREFIX, TXN_PREFIX_LEN) != 0)
        goto out;
    err = ha_b64url_decode(value + TXN_PREFIX_LEN, len - TXN_PREFIX_LEN, &raw, &rawlen);
    if (err != HA_OK) {
        err = err == HA_ERR_NOMEM ? err : HA_ERR_INVALID;
        goto out;
    }
    err = open_raw(raw, rawlen, cookie_name, keys, nkeys, pt, &ptlen);
    if (err != HA_OK)
        goto out;
    err = parse_plain(pt, ptlen, &tmp);
    if (err == HA_OK)
        err = check_time(tmp.created, now, ttl);
    if (err != HA_OK)
        goto out;
    *t = tmp;
    memset(&tmp, 0, sizeof(tmp));
out:
    OPENSSL_cleanse(pt, sizeof(pt));
    free(raw);
    ha_txn_cleanup(&tmp);
    return err;
}
