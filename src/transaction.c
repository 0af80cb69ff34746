/* One login in flight, kept in the browser instead of a server-side store.
 *
 * A transaction holds the state, nonce and PKCE verifier (32 random bytes each, b64url) and
 * what the UI asked for. It is serialised as a compact JSON object
 *   {"v":1,"s":state,"n":nonce,"p":verifier,"i":integration,"r":redirect,"x":extras,
 *    "t":invite,"c":created}
 * and sealed with AES-256-GCM: "v1." + b64url(iv | ciphertext | tag), a fresh 96-bit IV per
 * seal (NIST SP 800-38D §8.2.2, random construction) and the cookie name as additional data,
 * so a value copied under another transaction's cookie name does not open. The cookie name
 * itself is derived from the state (SHA-256, truncated), which lets the redirect handler find
 * the one cookie that belongs to the state Auth0 sent back.
 *
 * Opening tries each key (current, then previous) so a rotated cookie secret does not break
 * logins in flight. Nothing is trusted before the tag verifies; after that the JSON is parsed
 * strictly anyway (exact keys, no duplicates, fixed-length random fields). Plaintext buffers
 * are wiped before they go out of scope. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "houston_auth/b64url.h"
#include "houston_auth/transaction.h"

#define TXN_VERSION 1
#define TXN_PREFIX "v1."
#define TXN_PREFIX_LEN 3
#define TXN_IV_LEN 12
#define TXN_TAG_LEN 16
#define TXN_KEY_LEN 32
#define TXN_FUTURE_SKEW 60 /* seconds a created time may lie ahead of now */
/* Plaintext can never be larger than the decoded cookie, which is smaller than its text. */
#define TXN_PLAIN_MAX HA_TXN_COOKIE_MAX

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

static bool is_b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

bool ha_txn_check_cookie_name(const char *name)
{
    size_t plen = strlen(HA_TXN_COOKIE_PREFIX), i;

    if (name == NULL || strncmp(name, HA_TXN_COOKIE_PREFIX, plen) != 0)
        return false;
    for (i = 0; i < HA_TXN_ID_LEN; i++) {
        if (!is_b64url_char(name[plen + i]))
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

/* Serialises t into buf; *len is the JSON length. HA_ERR_TOO_LARGE when it does not fit. */
static enum ha_err serialise(const struct ha_txn *t, char *buf, size_t cap, size_t *len)
{
    json_t *root;
    size_t n;

    root = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s?,s:s?,s:I}", "v", TXN_VERSION, "s", t->state,
                     "n", t->nonce, "p", t->verifier, "i", t->integration, "r", t->redirect, "x",
                     t->extras, "t", t->invite_token, "c", (json_int_t)t->created);
    if (root == NULL)
        return HA_ERR_INVALID; /* NULL required field or invalid UTF-8 */
    n = json_dumpb(root, buf, cap, JSON_COMPACT);
    json_decref(root);
    if (n == 0)
        return HA_ERR_INVALID;
    if (n > cap)
        return HA_ERR_TOO_LARGE;
    *len = n;
    return HA_OK;
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

/* "v1." + b64url(raw) into a new string, refused past HA_TXN_COOKIE_MAX. */
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

enum ha_err ha_txn_seal(const struct ha_txn *t, const unsigned char key[32],
                        const struct ha_rng *rng, char **out)
{
    char plain[TXN_PLAIN_MAX];
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
    err = gcm_seal(key, raw, name, (const unsigned char *)plain, ptlen, raw + TXN_IV_LEN,
                   raw + TXN_IV_LEN + ptlen);
    if (err != HA_OK)
        goto out;
    err = encode_value(raw, TXN_IV_LEN + ptlen + TXN_TAG_LEN, out);
out:
    OPENSSL_cleanse(plain, sizeof(plain));
    return err;
}

static int is_random_b64(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!is_b64url_char(s[i]))
            return 0;
    }
    return i == HA_RANDOM_B64_LEN;
}

/* A JSON string or null, as an optional field. */
static enum ha_err optional_string(json_t *v, const char **out)
{
    if (json_is_null(v)) {
        *out = NULL;
        return HA_OK;
    }
    if (!json_is_string(v))
        return HA_ERR_INVALID;
    *out = json_string_value(v);
    return HA_OK;
}

/* Strict parse of an authenticated plaintext into tmp (strings copied). */
static enum ha_err parse_plain(const unsigned char *pt, size_t len, struct ha_txn *tmp)
{
    json_t *root, *x = NULL, *inv = NULL;
    json_error_t jerr;
    const char *s = NULL, *n = NULL, *p = NULL, *i = NULL, *r = NULL, *xs, *ts;
    json_int_t c = 0;
    int v = 0;
    enum ha_err err = HA_ERR_INVALID;

    root = json_loadb((const char *)pt, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root))
        goto out;
    if (json_unpack_ex(root, &jerr, JSON_STRICT, "{s:i,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:I}", "v", &v,
                       "s", &s, "n", &n, "p", &p, "i", &i, "r", &r, "x", &x, "t", &inv, "c",
                       &c) != 0)
        goto out;
    if (v != TXN_VERSION || !is_random_b64(s) || !is_random_b64(n) || !is_random_b64(p) || c < 0 ||
        c > (json_int_t)LONG_MAX || optional_string(x, &xs) != HA_OK ||
        optional_string(inv, &ts) != HA_OK || check_fields(i, r, xs, ts) != HA_OK)
        goto out;
    memcpy(tmp->state, s, HA_RANDOM_B64_LEN + 1);
    memcpy(tmp->nonce, n, HA_RANDOM_B64_LEN + 1);
    memcpy(tmp->verifier, p, HA_RANDOM_B64_LEN + 1);
    tmp->created = (long)c;
    err = dup_fields(tmp, i, r, xs, ts);
out:
    json_decref(root);
    return err;
}

/* Tries each key; pt receives the plaintext of the first that authenticates. */
static enum ha_err open_raw(const unsigned char *raw, size_t rawlen, const char *name,
                            const unsigned char (*keys)[32], size_t nkeys, unsigned char *pt,
                            size_t *ptlen)
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
                        const unsigned char (*keys)[32], size_t nkeys, long now, long ttl,
                        struct ha_txn *t)
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
