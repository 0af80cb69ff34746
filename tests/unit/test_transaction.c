/* Transaction cookie: what an attacker holding or forging a cookie sees. Every check goes
 * through ha_txn_seal/ha_txn_open; crafted plaintexts are sealed here with OpenSSL directly so
 * the strict parse of the binary record behind a valid tag is exercised too; and the sealed
 * size, which the jar's budget (proto.h) rests on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include "houston_auth/b64url.h"
#include "houston_auth/transaction.h"

#define NOW 1700000000L
#define TTL 600L

static const unsigned char key_a[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char key_b[32] = "fedcba9876543210fedcba9876543210";

static enum ha_err failing_fill(void *ctx, unsigned char *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
    return HA_ERR_CRYPTO;
}

static const struct ha_rng failing_rng = {failing_fill, NULL};

static void make_txn(struct ha_txn *t, const char *extras, const char *invite)
{
    assert_int_equal(ha_txn_init(t, &ha_rng_openssl, NOW, "self", "/oauth", extras, invite), HA_OK);
}

static char *seal(const struct ha_txn *t, const unsigned char *key)
{
    char *v = NULL;
    assert_int_equal(ha_txn_seal(t, key, &ha_rng_openssl, &v), HA_OK);
    assert_non_null(v);
    return v;
}

static enum ha_err open_one(const char *v, size_t len, const char *name, const unsigned char *key,
                            long now, struct ha_txn *out)
{
    const unsigned char(*keys)[32] = (const unsigned char(*)[32])key;
    return ha_txn_open(v, len, name, keys, 1, now, TTL, out);
}

/* Name of t's cookie, the additional data the seal is bound to. */
static void name_of(const struct ha_txn *t, char name[64])
{
    ha_txn_cookie_name(t->state, name);
}

static void assert_untouched(const struct ha_txn *t)
{
    assert_null(t->integration);
    assert_null(t->redirect);
    assert_int_equal(t->state[0], '\0');
}

static void test_round_trip(void **state)
{
    struct ha_txn t, back;
    char name[64];
    char *v;
    (void)state;

    make_txn(&t, "{\"source\":\"cli\",\"q\":\"a\\\"b\"}", "invite-123");
    v = seal(&t, key_a);
    assert_int_equal(strncmp(v, "v2.", 3), 0);
    assert_true(strlen(v) <= HA_TXN_COOKIE_MAX);
    assert_null(strstr(v, t.state)); /* sealed, not merely encoded */
    name_of(&t, name);
    memset(&back, 0, sizeof(back));
    assert_int_equal(open_one(v, strlen(v), name, key_a, NOW + 5, &back), HA_OK);
    assert_string_equal(back.state, t.state);
    assert_string_equal(back.nonce, t.nonce);
    assert_string_equal(back.verifier, t.verifier);
    assert_string_equal(back.integration, "self");
    assert_string_equal(back.redirect, "/oauth");
    assert_string_equal(back.extras, t.extras);
    assert_string_equal(back.invite_token, "invite-123");
    assert_int_equal(back.created, NOW);
    ha_txn_cleanup(&back);
    assert_null(back.redirect);
    free(v);
    ha_txn_cleanup(&t);
}

static void test_round_trip_optional_null(void **state)
{
    struct ha_txn t, back;
    char name[64];
    char *v;
    (void)state;

    make_txn(&t, NULL, NULL);
    v = seal(&t, key_a);
    name_of(&t, name);
    memset(&back, 0, sizeof(back));
    assert_int_equal(open_one(v, strlen(v), name, key_a, NOW, &back), HA_OK);
    assert_null(back.extras);
    assert_null(back.invite_token);
    ha_txn_cleanup(&back);
    free(v);
    ha_txn_cleanup(&t);
}

static int is_b64url(const char *s)
{
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
           strlen(s);
}

static void test_init_fields(void **state)
{
    struct ha_txn t, u;
    (void)state;

    make_txn(&t, NULL, NULL);
    make_txn(&u, NULL, NULL);
    assert_int_equal(strlen(t.state), HA_RANDOM_B64_LEN);
    assert_int_equal(strlen(t.nonce), HA_RANDOM_B64_LEN);
    assert_int_equal(strlen(t.verifier), HA_RANDOM_B64_LEN);
    assert_true(is_b64url(t.state) && is_b64url(t.nonce) && is_b64url(t.verifier));
    assert_string_not_equal(t.state, t.nonce);
    assert_string_not_equal(t.state, t.verifier);
    assert_string_not_equal(t.state, u.state);
    ha_txn_cleanup(&t);
    ha_txn_cleanup(&u);
}

static void test_init_refusals(void **state)
{
    struct ha_txn t;
    char big[HA_MAX_REDIRECT + 2];
    (void)state;

    memset(&t, 0, sizeof(t));
    assert_int_equal(ha_txn_init(&t, &failing_rng, NOW, "self", "/", NULL, NULL), HA_ERR_CRYPTO);
    assert_untouched(&t);
    assert_int_equal(ha_txn_init(&t, &ha_rng_openssl, NOW, NULL, "/", NULL, NULL), HA_ERR_INVALID);
    assert_int_equal(ha_txn_init(&t, &ha_rng_openssl, NOW, "self", NULL, NULL, NULL),
                     HA_ERR_INVALID);
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(ha_txn_init(&t, &ha_rng_openssl, NOW, "self", big, NULL, NULL),
                     HA_ERR_TOO_LARGE);
    assert_untouched(&t);
}

/* Flips every bit position of every byte of iv|ciphertext|tag: each must be refused. */
static void test_tamper_every_byte(void **state)
{
    struct ha_txn t, back;
    char name[64];
    char *v, *forged;
    unsigned char *raw;
    size_t rawlen, i;
    (void)state;

    make_txn(&t, "{}", NULL);
    v = seal(&t, key_a);
    name_of(&t, name);
    assert_int_equal(ha_b64url_decode(v + 3, strlen(v) - 3, &raw, &rawlen), HA_OK);
    assert_true(rawlen > 28);
    memset(&back, 0, sizeof(back));
    for (i = 0; i < rawlen * 8; i++) {
        char *enc = NULL;
        raw[i / 8] ^= (unsigned char)(1u << (i % 8));
        assert_int_equal(ha_b64url_encode(raw, rawlen, &enc), HA_OK);
        forged = malloc(strlen(enc) + 4);
        assert_non_null(forged);
        snprintf(forged, strlen(enc) + 4, "v2.%s", enc);
        assert_int_equal(open_one(forged, strlen(forged), name, key_a, NOW, &back), HA_ERR_CRYPTO);
        assert_untouched(&back);
        raw[i / 8] ^= (unsigned char)(1u << (i % 8));
        free(enc);
        free(forged);
    }
    free(raw);
    free(v);
    ha_txn_cleanup(&t);
}

/* Changes every character of the cookie text: never accepted. */
static void test_tamper_every_char(void **state)
{
    struct ha_txn t, back;
    char name[64];
    char *v;
    size_t i, len;
    (void)state;

    make_txn(&t, NULL, NULL);
    v = seal(&t, key_a);
    name_of(&t, name);
    len = strlen(v);
    memset(&back, 0, sizeof(back));
    for (i = 0; i < len; i++) {
        char orig = v[i];
        v[i] = orig == 'A' ? 'B' : 'A';
        assert_int_not_equal(open_one(v, len, name, key_a, NOW, &back), HA_OK);
        v[i] = orig ^ 0x20;
        assert_int_not_equal(open_one(v, len, name, key_a, NOW, &back), HA_OK);
        assert_untouched(&back);
        v[i] = orig;
    }
    assert_int_equal(open_one(v, len, name, key_a, NOW, &back), HA_OK);
    ha_txn_cleanup(&back);
    free(v);
    ha_txn_cleanup(&t);
}

static void test_truncated(void **state)
{
    struct ha_txn t, back;
    char name[64];
    char *v;
    size_t len, cut;
    (void)state;

    make_txn(&t, NULL, NULL);
    v = seal(&t, key_a);
    name_of(&t, name);
    len = strlen(v);
    memset(&back, 0, sizeof(back));
    for (cut = 0; cut < len; cut++)
        assert_int_not_equal(open_one(v, cut, name, key_a, NOW, &back), HA_OK);
    /* Whole base64 groups removed: decodes fine, the tag no longer verifies. */
    assert_int_equal(open_one(v, 3 + (len - 4) / 4 * 4, name, key_a, NOW, &back), HA_ERR_CRYPTO);
    assert_int_equal(open_one(v, 3 + 36, name, key_a, NOW, &back), HA_ERR_CRYPTO);
    assert_int_not_equal(open_one(v, 3, name, key_a, NOW, &back), HA_OK);
    assert_untouched(&back);
    free(v);
    ha_txn_cleanup(&t);
}

static void test_wrong_cookie_name(void **state)
{
    struct ha_txn t, other, back;
    char name[64];
    char *v;
    (void)state;

    make_txn(&t, NULL, NULL);
    make_txn(&other, NULL, NULL);
    v = seal(&t, key_a);
    name_of(&other, name);
    memset(&back, 0, sizeof(back));
    assert_int_equal(open_one(v, strlen(v), name, key_a, NOW, &back), HA_ERR_CRYPTO);
    assert_int_equal(open_one(v, strlen(v), "ha_txn_", key_a, NOW, &back), HA_ERR_CRYPTO);
    assert_untouched(&back);
    free(v);
    ha_txn_cleanup(&t);
    ha_txn_cleanup(&other);
}

static void test_key_rotation(void **state)
{
    const unsigned char both[2][32] = {
        "fedcba9876543210fedcba9876543210", /* current: key_b */
        "0123456789abcdef0123456789abcdef", /* previous: key_a */
    };
    struct ha_txn t, back;
    char name[64];
    char *v;
    (void)state;

    make_txn(&t, NULL, NULL);
    v = seal(&t, key_a);
    name_of(&t, name);
    memset(&back, 0, sizeof(back));
    assert_int_equal(open_one(v, strlen(v), name, key_b, NOW, &back), HA_ERR_CRYPTO);
    assert_untouched(&back);
    assert_int_equal(ha_txn_open(v, strlen(v), name, both, 1, NOW, TTL, &back), HA_ERR_CRYPTO);
    assert_int_equal(ha_txn_open(v, strlen(v), name, both, 0, NOW, TTL, &back), HA_ERR_CRYPTO);
    assert_int_equal(ha_txn_open(v, strlen(v), name, both, 2, NOW, TTL, &back), HA_OK);
    assert_string_equal(back.state, t.state);
    ha_txn_cleanup(&back);
    free(v);
    ha_txn_cleanup(&t);
}

static void test_expiry(void **state)
{
    struct ha_txn t, back;
    char name[64];
    char *v;
    (void)state;

    make_txn(&t, NULL, NULL);
    v = seal(&t, key_a);
    name_of(&t, name);
    memset(&back, 0, sizeof(back));
    assert_int_equal(open_one(v, strlen(v), name, key_a, NOW + TTL, &back), HA_OK);
    ha_txn_cleanup(&back);
    assert_int_equal(open_one(v, strlen(v), name, key_a, NOW + TTL + 1, &back), HA_ERR_EXPIRED);
    assert_untouched(&back);
    assert_int_equal(
        ha_txn_open(v, strlen(v), name, (const unsigned char(*)[32])key_a, 1, NOW + 31, 30, &back),
        HA_ERR_EXPIRED);
    /* Created in the future: 60 s of clock skew tolerated, no more. */
    assert_int_equal(open_one(v, strlen(v), name, key_a, NOW - 60, &back), HA_OK);
    ha_txn_cleanup(&back);
    assert_int_equal(open_one(v, strlen(v), name, key_a, NOW - 61, &back), HA_ERR_EXPIRED);
    assert_untouched(&back);
    free(v);
    ha_txn_cleanup(&t);
}

static void test_random_iv(void **state)
{
    struct ha_txn t, back;
    char name[64];
    char *v1, *v2;
    (void)state;

    make_txn(&t, NULL, NULL);
    v1 = seal(&t, key_a);
    v2 = seal(&t, key_a);
    assert_string_not_equal(v1, v2);
    assert_int_not_equal(memcmp(v1 + 3, v2 + 3, 16), 0); /* the IV itself differs */
    name_of(&t, name);
    memset(&back, 0, sizeof(back));
    assert_int_equal(open_one(v1, strlen(v1), name, key_a, NOW, &back), HA_OK);
    ha_txn_cleanup(&back);
    assert_int_equal(open_one(v2, strlen(v2), name, key_a, NOW, &back), HA_OK);
    ha_txn_cleanup(&back);
    free(v1);
    v1 = NULL;
    assert_int_equal(ha_txn_seal(&t, key_a, &failing_rng, &v1), HA_ERR_CRYPTO);
    assert_null(v1);
    free(v2);
    ha_txn_cleanup(&t);
}

/* The largest parameters that fit one cookie, and the first that do not: TOO_LARGE. */
static void test_oversize(void **state)
{
    struct ha_txn t, back;
    char name[64];
    char big[HA_MAX_EXTRAS];
    char *v = NULL, *huge;
    (void)state;

    /* Each field within its own cap, together past the cookie cap. */
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(ha_txn_init(&t, &ha_rng_openssl, NOW, "self", big, big, NULL), HA_OK);
    assert_int_equal(ha_txn_seal(&t, key_a, &ha_rng_openssl, &v), HA_ERR_TOO_LARGE);
    assert_null(v);
    name_of(&t, name);
    ha_txn_cleanup(&t);
    /* A whole redirect of HA_MAX_REDIRECT bytes alone does not fit either. */
    assert_int_equal(ha_txn_init(&t, &ha_rng_openssl, NOW, "self", big, NULL, NULL), HA_OK);
    assert_int_equal(ha_txn_seal(&t, key_a, &ha_rng_openssl, &v), HA_ERR_TOO_LARGE);
    ha_txn_cleanup(&t);
    huge = malloc(HA_TXN_COOKIE_MAX + 2);
    assert_non_null(huge);
    memcpy(huge, "v2.", 3);
    memset(huge + 3, 'A', HA_TXN_COOKIE_MAX - 2);
    huge[HA_TXN_COOKIE_MAX + 1] = '\0';
    memset(&back, 0, sizeof(back));
    assert_int_equal(open_one(huge, HA_TXN_COOKIE_MAX + 1, name, key_a, NOW, &back),
                     HA_ERR_TOO_LARGE);
    assert_untouched(&back);
    free(huge);
}

/* A transaction whose redirect and extras are the given lengths (extras a JSON object, of
 * quotes when quoted is set, which JSON would have escaped); its sealed length, or 0 when it
 * is too large to seal. */
static size_t sealed_len(size_t redirect_len, size_t extras_len, bool quoted)
{
    char *r = malloc(redirect_len + 1), *x = NULL;
    struct ha_txn t;
    char *v = NULL;
    size_t n;
    enum ha_err err;
    assert_non_null(r);
    memset(r, 'a', redirect_len);
    r[0] = '/';
    r[redirect_len] = '\0';
    if (extras_len > 0) {
        x = malloc(extras_len + 1);
        assert_non_null(x);
        memset(x, quoted ? '"' : 'b', extras_len);
        memcpy(x, "{\"a\":\"", 6);
        memcpy(x + extras_len - 2, "\"}", 3);
    }
    assert_int_equal(ha_txn_init(&t, &ha_rng_openssl, NOW, "self", r, x, NULL), HA_OK);
    err = ha_txn_seal(&t, key_a, &ha_rng_openssl, &v);
    assert_true(err == HA_OK || err == HA_ERR_TOO_LARGE);
    n = err == HA_OK ? strlen(v) : 0;
    free(v);
    free(r);
    free(x);
    ha_txn_cleanup(&t);
    return n;
}

/* The sealed size is what the jar's budget (proto.h) is computed from: "v2." + b64url of
 * 12 + (113 + the strings) + 16 bytes, whatever the strings hold. */
static void test_sealed_size(void **state)
{
    (void)state;
    /* Login defaults: "self", "/oauth", no extras, no invite: 123-byte record, 205 chars. */
    assert_int_equal(sealed_len(6, 0, false), 3 + (12 + 113 + 4 + 6 + 16) * 4 / 3 + 1);
    assert_int_equal(sealed_len(6, 0, false), 205);
    /* An 800-byte redirect with 800-byte extras: 2330 chars, under the cap. */
    assert_int_equal(sealed_len(800, 800, false), 2330);
    assert_true(sealed_len(800, 800, false) <= HA_TXN_COOKIE_MAX);
    /* Quotes cost no more than letters: nothing is escaped. */
    assert_int_equal(sealed_len(800, 800, true), sealed_len(800, 800, false));
    /* Right at the cap (a 1889-byte record, 1917 bytes sealed, 2559 chars), and one byte of
     * parameters past it. */
    assert_int_equal(sealed_len(800, 972, false), 2559);
    assert_int_equal(sealed_len(800, 973, false), 0);
}

static void test_malformed_text(void **state)
{
    struct ha_txn back;
    const char *bad[] = {"",         "v2",   "v2.",      "v1.AAAA",  "V2.AAAA",
                         "v2.AAAA=", "v2.A", "v2.AA AA", "v2.AAAA\n"};
    size_t i;
    (void)state;

    memset(&back, 0, sizeof(back));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_not_equal(open_one(bad[i], strlen(bad[i]), "ha_txn_x", key_a, NOW, &back),
                             HA_OK);
    /* The JSON record of before (v1) is not read. */
    assert_int_equal(open_one("v1.AAAA", 7, "ha_txn_x", key_a, NOW, &back), HA_ERR_INVALID);
    assert_int_equal(open_one(NULL, 0, "ha_txn_x", key_a, NOW, &back), HA_ERR_INVALID);
    assert_untouched(&back);
}

/* Seals an arbitrary plaintext the way ha_txn_seal does, to reach the parser behind the tag. */
static char *seal_raw(const unsigned char *plain, size_t n, const unsigned char *key,
                      const char *name)
{
    unsigned char buf[4096];
    int len = 0;
    char *enc = NULL, *v;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

    assert_true(12 + n + 16 <= sizeof(buf));
    memset(buf, 7, 12);
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf), 1);
    assert_int_equal(
        EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)name, (int)strlen(name)), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, buf + 12, &len, plain, (int)n), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, buf + 12 + len, &len), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, buf + 12 + n), 1);
    EVP_CIPHER_CTX_free(ctx);
    assert_int_equal(ha_b64url_encode(buf, 12 + n + 16, &enc), HA_OK);
    v = malloc(strlen(enc) + 4);
    assert_non_null(v);
    snprintf(v, strlen(enc) + 4, "v2.%s", enc);
    free(enc);
    return v;
}

/* A record as src/transaction.c lays it out: version, created (8 bytes big-endian), three
 * times 32 random bytes, then four strings each a 2-byte length and its bytes (NULL: the
 * absent marker 0xFFFF, lens[i] >= 0: that many bytes of strs[i] even past a NUL). */
struct record {
    unsigned char b[2048];
    size_t n;
};

static void record_init(struct record *r, unsigned version, uint64_t created)
{
    r->b[0] = (unsigned char)version;
    for (int i = 0; i < 8; i++)
        r->b[1 + i] = (unsigned char)(created >> (56 - 8 * i));
    memset(r->b + 9, 0x5a, 96);
    r->n = 105;
}

static void record_str(struct record *r, const char *s, size_t len)
{
    size_t l = s != NULL ? len : 0xFFFF;
    assert_true(r->n + 2 + (s != NULL ? len : 0) <= sizeof(r->b));
    r->b[r->n] = (unsigned char)(l >> 8);
    r->b[r->n + 1] = (unsigned char)(l & 0xff);
    if (s != NULL)
        memcpy(r->b + r->n + 2, s, len);
    r->n += 2 + (s != NULL ? len : 0);
}

/* The record of a login with default strings: "self", "/", no extras, no invite. */
static void record_good(struct record *r, unsigned version, uint64_t created)
{
    record_init(r, version, created);
    record_str(r, "self", 4);
    record_str(r, "/", 1);
    record_str(r, NULL, 0);
    record_str(r, NULL, 0);
}

static enum ha_err open_crafted(const struct record *r)
{
    struct ha_txn back;
    char *v = seal_raw(r->b, r->n, key_a, "__Host-ha_txn_crafted00000");
    enum ha_err err;

    memset(&back, 0, sizeof(back));
    err = open_one(v, strlen(v), "__Host-ha_txn_crafted00000", key_a, NOW, &back);
    if (err == HA_OK)
        ha_txn_cleanup(&back);
    else
        assert_untouched(&back);
    free(v);
    return err;
}

static void test_strict_plaintext(void **state)
{
    char big[HA_MAX_INVITE + 1];
    struct record r;
    (void)state;
    memset(big, 'i', sizeof(big));
    /* The helper itself is right: a well-formed record opens, strings filled in. */
    record_good(&r, 2, NOW);
    assert_int_equal(open_crafted(&r), HA_OK);
    /* Another version, before (the JSON one) or after. */
    record_good(&r, 1, NOW);
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    record_good(&r, 3, NOW);
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    /* A byte left over, a byte missing, nothing but the fixed part, nothing at all. */
    record_good(&r, 2, NOW);
    r.b[r.n++] = 0;
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    record_good(&r, 2, NOW);
    r.n--;
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    record_init(&r, 2, NOW);
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    r.n = 0;
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    /* integration or redirect absent. */
    record_init(&r, 2, NOW);
    record_str(&r, NULL, 0);
    record_str(&r, "/", 1);
    record_str(&r, NULL, 0);
    record_str(&r, NULL, 0);
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    record_init(&r, 2, NOW);
    record_str(&r, "self", 4);
    record_str(&r, NULL, 0);
    record_str(&r, NULL, 0);
    record_str(&r, NULL, 0);
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    /* A NUL inside a string: it would cut the C string short. */
    record_init(&r, 2, NOW);
    record_str(&r, "self", 4);
    record_str(&r, "/a\0b", 4);
    record_str(&r, NULL, 0);
    record_str(&r, NULL, 0);
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    /* A length running past the end. */
    record_good(&r, 2, NOW);
    r.b[r.n - 2] = 0x00;
    r.b[r.n - 1] = 0x05;
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    /* An invite over its cap. */
    record_init(&r, 2, NOW);
    record_str(&r, "self", 4);
    record_str(&r, "/", 1);
    record_str(&r, NULL, 0);
    record_str(&r, big, sizeof(big));
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    /* A creation time past LONG_MAX, and one an hour ahead. */
    record_good(&r, 2, UINT64_MAX);
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
    record_good(&r, 2, (uint64_t)NOW + 3600);
    assert_int_equal(open_crafted(&r), HA_ERR_EXPIRED);
    /* The JSON record of before, sealed properly, is not read either. */
    memcpy(r.b, "{\"v\":1}", 7);
    r.n = 7;
    assert_int_equal(open_crafted(&r), HA_ERR_INVALID);
}

/* RFC 7636 Appendix B: the verifier and its S256 challenge, as printed in the RFC. */
static void test_challenge_rfc7636(void **state)
{
    struct ha_txn t;
    char out[HA_RANDOM_B64_LEN + 1];
    (void)state;

    memset(&t, 0, sizeof(t));
    memcpy(t.verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", HA_RANDOM_B64_LEN + 1);
    ha_txn_challenge(&t, out);
    assert_string_equal(out, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

static void test_cookie_name(void **state)
{
    char a[64], b[64], c[64];
    (void)state;

    /* SHA-256 of the RFC 7636 verifier is known from the vector above. */
    ha_txn_cookie_name("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", a);
    assert_string_equal(a, HA_TXN_COOKIE_PREFIX "E9Melhoa2OwvFrEM");
    assert_int_equal(strlen(a), strlen(HA_TXN_COOKIE_PREFIX) + HA_TXN_ID_LEN);
    ha_txn_cookie_name("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", b);
    assert_string_equal(a, b);
    ha_txn_cookie_name("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", c);
    assert_string_not_equal(a, c);
    assert_true(ha_txn_check_cookie_name(a));
    assert_true(ha_txn_check_cookie_name(c));
}

/* Only the exact shape of a name the sidecar makes passes: prefix, then HA_TXN_ID_LEN
 * base64url characters, nothing after. */
static void test_check_cookie_name(void **state)
{
    static const char *const bad[] = {
        "",
        HA_TXN_COOKIE_PREFIX,
        HA_TXN_COOKIE_PREFIX "(1)",
        HA_TXN_COOKIE_PREFIX "b",
        HA_TXN_COOKIE_PREFIX "E9Melhoa2OwvFrE",   /* one short */
        HA_TXN_COOKIE_PREFIX "E9Melhoa2OwvFrEMx", /* one long */
        HA_TXN_COOKIE_PREFIX "E9Melhoa2OwvFrE!",  /* a token character, not base64url */
        HA_TXN_COOKIE_PREFIX "E9Melhoa2OwvFrE=",
        HA_TXN_COOKIE_PREFIX "E9Melhoa 2OwvFrE",
        "x" HA_TXN_COOKIE_PREFIX "E9Melhoa2OwvFrEM",
        "E9Melhoa2OwvFrEME9Melhoa2OwvFrEM",
    };
    (void)state;
    assert_true(ha_txn_check_cookie_name(HA_TXN_COOKIE_PREFIX "E9Melhoa2OwvFrEM"));
    assert_true(ha_txn_check_cookie_name(HA_TXN_COOKIE_PREFIX "-_AZaz09-_AZaz09"));
    assert_false(ha_txn_check_cookie_name(NULL));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ha_txn_check_cookie_name(bad[i]))
            fail_msg("accepted as a transaction cookie name: \"%s\"", bad[i]);
    }
}

/* The sealing key a cookie secret gives is fixed for ever: a deployed sidecar and its next
 * version must open each other's cookies. The vector was computed with the openssl command
 * line, independent of the code under test:
 *   openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt key:<secret> \
 *     -kdfopt "info:houston-auth transaction cookie v1" HKDF */
static void test_derive_key_vector(void **state)
{
    static const char secret[] = "dev-cookie-secret-not-for-production-0123456789";
    static const unsigned char want[HA_TXN_KEY_LEN] = {
        0xAE, 0xA7, 0x3B, 0x12, 0xAB, 0xD8, 0xD3, 0x07, 0x80, 0x32, 0x60,
        0x00, 0xD3, 0x8C, 0x75, 0x80, 0xA7, 0x24, 0x8A, 0x7A, 0xEE, 0x00,
        0x0A, 0xBB, 0x62, 0x20, 0x05, 0xA0, 0x71, 0xF4, 0x05, 0xD3};
    unsigned char key[HA_TXN_KEY_LEN], other[HA_TXN_KEY_LEN];
    (void)state;

    assert_int_equal(ha_txn_derive_key(secret, strlen(secret), key), HA_OK);
    assert_memory_equal(key, want, sizeof(want));
    assert_int_equal(ha_txn_derive_key(secret, strlen(secret) - 1, other), HA_OK);
    assert_memory_not_equal(key, other, sizeof(key));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_round_trip_optional_null),
        cmocka_unit_test(test_init_fields),       cmocka_unit_test(test_init_refusals),
        cmocka_unit_test(test_tamper_every_byte), cmocka_unit_test(test_tamper_every_char),
        cmocka_unit_test(test_truncated),         cmocka_unit_test(test_wrong_cookie_name),
        cmocka_unit_test(test_key_rotation),      cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_random_iv),         cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_sealed_size),       cmocka_unit_test(test_malformed_text),
        cmocka_unit_test(test_strict_plaintext),  cmocka_unit_test(test_challenge_rfc7636),
        cmocka_unit_test(test_cookie_name),       cmocka_unit_test(test_check_cookie_name),
        cmocka_unit_test(test_derive_key_vector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
