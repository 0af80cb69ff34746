/* The stand-in's side of Houston's session: the auth cookie's name and the session JWT.
 *
 * The cookie name is computed here on purpose, independently of the sidecar's src/houston.c:
 * tests compare the two implementations. Houston builds it as
 * `astronomer_${snakeCase(baseDomain)}_auth` with lodash, whose word splitter (unicodeWords,
 * used whenever the string holds anything but letters, digits and spaces, as every domain
 * does) cuts at punctuation, between a lower and an upper case letter, before the last capital
 * of a run followed by a lower case letter ("XMLHttp" -> xml, http), and around digit runs
 * ("k8s" -> k, 8, s), except that an ordinal stays whole ("21st", "4th"); apostrophes are
 * dropped first. Words are lower-cased and joined with '_'.
 *
 * Session JWTs are {uuid, email, iat, exp} signed RS256 with a key generated at start; the
 * uuid is derived from the email, so one email is always one user, as Houston finds users.
 * The same key signs the JWTs GET /v1/authorization mints for Airflow (authz.c), as Houston
 * signs both with its jwt.certPath key; its public half is served to tests. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/rsa.h>
#include "houston_auth/b64url.h"
#include "houston_auth/buf.h"
#include "houston_auth/proto.h"
#include "standin.h"

#define MAX_SIG 512

static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of an ordinal starting at s (lodash rsOrdLower/rsOrdUpper:
 * \d*(?:1st|2nd|3rd|(?![123])\dth)(?=\b|[A-Z_]) and its upper-case twin), else 0. */
static size_t ordinal_len(const char *s)
{
    size_t j = 0;
    char d, a, b, next;
    bool lower, upper;
    while (is_digit(s[j]))
        j++;
    if (j == 0 || s[j] == '\0' || s[j + 1] == '\0')
        return 0;
    d = s[j - 1];
    a = s[j];
    b = s[j + 1];
    next = s[j + 2];
    lower = (d == '1' && a == 's' && b == 't') || (d == '2' && a == 'n' && b == 'd') ||
            (d == '3' && a == 'r' && b == 'd') ||
            (d != '1' && d != '2' && d != '3' && a == 't' && b == 'h');
    upper = (d == '1' && a == 'S' && b == 'T') || (d == '2' && a == 'N' && b == 'D') ||
            (d == '3' && a == 'R' && b == 'D') ||
            (d != '1' && d != '2' && d != '3' && a == 'T' && b == 'H');
    if (lower && !is_lower(next) && !is_digit(next))
        return j + 2;
    if (upper && !is_upper(next) && !is_digit(next))
        return j + 2;
    return 0;
}

/* Length of the word starting at s (a letter or a digit), by lodash's rules. */
static size_t word_len(const char *s)
{
    size_t j = 0, k;
    if (is_digit(s[0])) {
        k = ordinal_len(s);
        while (is_digit(s[j]))
            j++;
        return k > 0 ? k : j;
    }
    if (is_lower(s[0])) {
        while (is_lower(s[j]))
            j++;
        return j;
    }
    while (is_upper(s[j]))
        j++;
    if (!is_lower(s[j]))
        return j;
    if (j > 1)
        return j - 1; /* "XMLHttp": the last capital starts the next word */
    while (is_lower(s[j]))
        j++;
    return j;
}

static enum ha_err snake_words(const char *s, struct ha_buf *b)
{
    enum ha_err err = HA_OK;
    bool first = true;
    /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult): NUL-terminated input */
    while (err == HA_OK && *s != '\0') {
        size_t n;
        if (!is_lower(*s) && !is_upper(*s) && !is_digit(*s)) {
            s++;
            continue;
        }
        n = word_len(s);
        if (!first)
            err = ha_buf_append_str(b, "_");
        for (size_t i = 0; err == HA_OK && i < n; i++) {
            /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): i < n stays inside s */
            char c = s[i];
            if (is_upper(c))
                c = (char)(c - 'A' + 'a');
            err = ha_buf_append(b, &c, 1);
        }
        first = false;
        s += n;
    }
    return err;
}

enum ha_err standin_cookie_name(const char *base, char **out)
{
    struct ha_buf b;
    char *clean;
    size_t n = 0;
    enum ha_err err;

    if (base == NULL || strlen(base) > STANDIN_MAX_BASE)
        return HA_ERR_INVALID;
    clean = malloc(strlen(base) + 1);
    if (clean == NULL)
        return HA_ERR_NOMEM;
    for (const char *p = base; *p != '\0'; p++) {
        if (*p != '\'')
            clean[n++] = *p; /* lodash removes apostrophes before splitting */
    }
    clean[n] = '\0';
    ha_buf_init(&b, 1024);
    err = ha_buf_append_str(&b, "astronomer_");
    if (err == HA_OK)
        err = snake_words(clean, &b);
    if (err == HA_OK)
        err = ha_buf_append_str(&b, "_auth");
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    free(clean);
    return err;
}

/* The key made at start, or kept in --state-dir (state.c); its kid is the first 8 bytes of
 * the SHA-256 of its public key, so it is as stable as the key. */
enum ha_err standin_session_init(struct standin *s)
{
    bool fresh = s->session_key == NULL;
    unsigned char *der = NULL, md[32];
    int len;

    if (fresh)
        s->session_key = EVP_RSA_gen(2048);
    if (s->session_key == NULL)
        return HA_ERR_CRYPTO;
    len = i2d_PUBKEY(s->session_key, &der);
    if (len <= 0 || EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL) != 1) {
        OPENSSL_free(der);
        return HA_ERR_CRYPTO;
    }
    OPENSSL_free(der);
    for (size_t i = 0; i < 8; i++)
        snprintf(s->kid + 2 * i, 3, "%02x", md[i]);
    return fresh ? standin_state_save_key(s) : HA_OK;
}

/* A name-based UUID (version 5 layout) from SHA-256 of the email. */
void standin_user_uuid(const char *email, char out[STANDIN_UUID_LEN + 1])
{
    unsigned char md[32];
    EVP_Digest(email, strlen(email), md, NULL, EVP_sha256(), NULL);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0],
             md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12],
             md[13], md[14], md[15]);
}

static enum ha_err append_b64_json(struct ha_buf *b, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
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

static enum ha_err rs256(EVP_PKEY *key, const char *input, unsigned char *sig, size_t *len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    enum ha_err err = HA_ERR_CRYPTO;
    *len = MAX_SIG;
    if (ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(ctx, sig, len, (const unsigned char *)input, strlen(input)) == 1)
        err = HA_OK;
    EVP_MD_CTX_free(ctx);
    return err;
}

enum ha_err standin_jwt_sign(struct standin *s, json_t *claims, char **out)
{
    json_t *header = json_pack("{s:s, s:s, s:s}", "alg", HA_OIDC_ALG, "typ", "JWT", "kid", s->kid);
    unsigned char sig[MAX_SIG];
    size_t siglen = 0;
    char *enc = NULL;
    struct ha_buf b;
    enum ha_err err;

    ha_buf_init(&b, 2 * HA_MAX_JWT);
    err = append_b64_json(&b, header);
    if (err == HA_OK)
        err = ha_buf_append_str(&b, ".");
    if (err == HA_OK)
        err = append_b64_json(&b, claims);
    if (err == HA_OK)
        err = rs256(s->session_key, b.data, sig, &siglen);
    if (err == HA_OK)
        err = ha_b64url_encode(sig, siglen, &enc);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, ".%s", enc);
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    json_decref(header);
    free(enc);
    return err;
}

enum ha_err standin_session_mint_ttl(struct standin *s, const char *email, long ttl, char **out)
{
    char uuid[STANDIN_UUID_LEN + 1];
    long now = (long)time(NULL);
    json_t *claims;
    enum ha_err err;

    standin_user_uuid(email, uuid);
    claims = json_pack("{s:s, s:s, s:I, s:I}", "uuid", uuid, "email", email, "iat", (json_int_t)now,
                       "exp", (json_int_t)now + ttl);
    err = claims != NULL ? standin_jwt_sign(s, claims, out) : HA_ERR_NOMEM;
    json_decref(claims);
    return err;
}

enum ha_err standin_session_mint(struct standin *s, const char *email, char **out)
{
    return standin_session_mint_ttl(s, email, STANDIN_SESSION_TTL, out);
}

static json_t *decode_object(const char *s, size_t len)
{
    unsigned char *raw = NULL;
    size_t rlen = 0;
    json_t *j;
    if (ha_b64url_decode(s, len, &raw, &rlen) != HA_OK)
        return NULL;
    j = json_loadb((const char *)raw, rlen, 0, NULL);
    free(raw);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static bool own_signature(struct standin *s, const char *token, const char *d2, json_t *header)
{
    json_t *alg = json_object_get(header, "alg");
    unsigned char *sig = NULL;
    size_t siglen = 0;
    EVP_MD_CTX *ctx;
    bool ok = false;
    if (!json_is_string(alg) || strcmp(json_string_value(alg), HA_OIDC_ALG) != 0 ||
        ha_b64url_decode(d2 + 1, strlen(d2 + 1), &sig, &siglen) != HA_OK)
        return false;
    ctx = EVP_MD_CTX_new();
    ok =
        ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, s->session_key) == 1 &&
        EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)token, (size_t)(d2 - token)) == 1;
    EVP_MD_CTX_free(ctx);
    free(sig);
    return ok;
}

json_t *standin_jwt_payload(struct standin *s, const char *token, bool *verified)
{
    size_t len = token != NULL ? strlen(token) : 0;
    const char *d1 = len > 0 ? memchr(token, '.', len) : NULL;
    const char *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
    json_t *header, *payload;

    *verified = false;
    if (len > HA_MAX_JWT || d2 == NULL || strchr(d2 + 1, '.') != NULL)
        return NULL;
    header = decode_object(token, (size_t)(d1 - token));
    payload = decode_object(d1 + 1, (size_t)(d2 - d1 - 1));
    if (header != NULL && payload != NULL)
        *verified = own_signature(s, token, d2, header);
    json_decref(header);
    return payload;
}

json_t *standin_jwt_header(const char *token)
{
    size_t len = token != NULL ? strlen(token) : 0;
    const char *d1 = len > 0 && len <= HA_MAX_JWT ? memchr(token, '.', len) : NULL;
    return d1 != NULL ? decode_object(token, (size_t)(d1 - token)) : NULL;
}

/* jsonwebtoken 8's verify(token, cert, {algorithms: ["RS256"]}) as Houston's decodeJWT calls
 * it: the stand-in's own signature, an exp that is a number and not reached, an nbf (when
 * present) that is a number and reached; then the claim uuid. */
bool standin_session_check(struct standin *s, const char *token, char uuid[STANDIN_UUID_LEN + 1])
{
    bool verified = false, ok;
    json_t *claims = standin_jwt_payload(s, token, &verified);
    json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
    const char *id = json_string_value(json_object_get(claims, "uuid"));
    double now = (double)time(NULL);

    ok = claims != NULL && verified &&
         (exp == NULL || (json_is_number(exp) && now < json_number_value(exp))) &&
         (nbf == NULL || (json_is_number(nbf) && json_number_value(nbf) <= now)) && id != NULL &&
         strlen(id) == STANDIN_UUID_LEN;
    if (ok)
        memcpy(uuid, id, STANDIN_UUID_LEN + 1);
    json_decref(claims);
    return ok;
}

static json_t *b64_param(EVP_PKEY *key, const char *name)
{
    BIGNUM *bn = NULL;
    unsigned char raw[MAX_SIG];
    char *enc = NULL;
    json_t *j = NULL;
    int n;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
        return NULL;
    n = BN_num_bytes(bn);
    if (n > 0 && n <= (int)sizeof(raw) && BN_bn2bin(bn, raw) == n &&
        ha_b64url_encode(raw, (size_t)n, &enc) == HA_OK)
        j = json_string(enc);
    BN_free(bn);
    free(enc);
    return j;
}

static json_t *public_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    json_t *j = NULL;
    if (bio != NULL && PEM_write_bio_PUBKEY(bio, key) == 1) {
        len = BIO_get_mem_data(bio, &data);
        if (len > 0)
            j = json_stringn(data, (size_t)len);
    }
    BIO_free(bio);
    return j;
}

json_t *standin_public_keys(struct standin *s)
{
    json_t *n = b64_param(s->session_key, OSSL_PKEY_PARAM_RSA_N);
    json_t *e = b64_param(s->session_key, OSSL_PKEY_PARAM_RSA_E);
    json_t *pem = public_pem(s->session_key);
    if (n == NULL || e == NULL || pem == NULL) {
        json_decref(n);
        json_decref(e);
        json_decref(pem);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:o, s:{s:[{s:s, s:s, s:s, s:s, s:o, s:o}]}}", "kid", s->kid,
                     "alg", HA_OIDC_ALG, "public_key_pem", pem, "jwks", "keys", "kty", "RSA", "use",
                     "sig", "alg", HA_OIDC_ALG, "kid", s->kid, "n", n, "e", e);
}
