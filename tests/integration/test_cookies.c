/* Integration: transaction cookies under attack, as a browser or an attacker presents them.
 *
 * Beyond what test_login_failures.c already covers (one flipped character, a truncation, a
 * removed cookie, a renamed cookie, an expired transaction, a replay after use):
 *   - every piece of the sealed value tampered, truncated, re-ordered or extended: each is
 *     invalid_state, and the untouched cookie still completes the login afterwards (so the
 *     refusals consumed nothing and came from the tampering);
 *   - records sealed with the sidecar's own key but not as it writes them (another state,
 *     another version, a byte more or less, an absent redirect, a NUL inside it, a length
 *     past the end, a time past LONG_MAX or in the future): refused by the strict parse
 *     after the tag verifies
 *     (src/transaction.c parse_plain, check_time; src/handle_redirect.c open_txn);
 *   - a cookie sealed by a sidecar with another cookie secret (refused) and one with the same
 *     secret (accepted: the control);
 *   - 100 transaction cookies in one Cookie header at /v1/oauth/start: each answer clears up
 *     to HA_TXN_EVICT_MAX of the oldest, and three starts leave at most HA_TXN_MAX_COOKIES
 *     (src/handle_start.c evict_old);
 *   - a Cookie header of exactly HA_MAX_COOKIE_HEADER bytes still logs in, one byte more is a
 *     431 that consumed nothing (src/server.c on_headers);
 *   - cookie tossing: the attacker's sealed transaction cookie planted for .<base> under the
 *     unprefixed name opens nothing (the sidecar reads only "__Host-" names);
 *   - cookies whose names the sidecar cannot use (not a token, another shape) are ignored by
 *     start, redirect and logout, never a 5xx (src/transaction.c ha_txn_check_cookie_name). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "houston_auth/b64url.h"
#include "houston_auth/proto.h"
#include "houston_auth/transaction.h"
#include "harness.h"

#define QUERY "provider=auth0&integration=self&redirect=/oauth"
#define EMAIL "cookie%40example.com"
#define IV_LEN 12
#define TAG_LEN 16
#define PREFIX "v2."
#define MAX_RAW 4096

/* ---- a login in progress ---- */

struct begun {
    struct it_client *c;
    struct it_resp start, auth;
    char state[HA_RANDOM_B64_LEN + 1];
    char name[64];       /* the transaction cookie's name */
    struct it_cookie ck; /* the transaction cookie as the sidecar set it */
};

/* Starts a login at base (the main sidecar when NULL) and runs the tenant's authorize. */
static void begin_at(struct begun *b, const char *base)
{
    struct it_env *e = it_env();
    struct ha_kvlist q;
    char url[512];
    memset(b, 0, sizeof(*b));
    b->c = it_client_new(e);
    assert_non_null(b->c);
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=%s",
             base != NULL ? base : e->sidecar_url, QUERY, EMAIL);
    assert_int_equal(it_get(b->c, url, &b->start), 0);
    assert_int_equal(b->start.status, 302);
    assert_int_equal(it_get(b->c, b->start.location, &b->auth), 0);
    assert_int_equal(b->auth.status, 302);
    it_expect_prefix(b->auth.location, e->sidecar_url);
    assert_int_equal(it_url_query(b->auth.location, &q), 0);
    assert_non_null(ha_kvlist_get(&q, "state"));
    snprintf(b->state, sizeof(b->state), "%s", ha_kvlist_get(&q, "state"));
    ha_kvlist_cleanup(&q);
    ha_txn_cookie_name(b->state, b->name);
    assert_true(it_cookie_get(b->c, b->name, false, &b->ck));
    it_note_secret(b->ck.value);
}

static void begin(struct begun *b)
{
    begin_at(b, NULL);
}

static void begun_cleanup(struct begun *b)
{
    it_cookie_cleanup(&b->ck);
    it_resp_cleanup(&b->start);
    it_resp_cleanup(&b->auth);
    it_client_free(b->c);
}

/* Puts value under the transaction's cookie name and finishes the login. */
static void finish_with(struct begun *b, const char *value, struct it_resp *r)
{
    struct it_cookie ck = b->ck;
    ck.value = (char *)value;
    assert_int_equal(it_cookie_put(b->c, &ck), 0);
    assert_int_equal(it_get(b->c, b->auth.location, r), 0);
}

static void expect_success(struct begun *b, const struct it_resp *r)
{
    struct it_cookie ck;
    if (r->status != 302 || r->location == NULL ||
        strncmp(r->location, IT_APP_URL "/oauth?", strlen(IT_APP_URL "/oauth?")) != 0)
        fail_msg("the login did not complete: %ld %s", r->status,
                 r->location != NULL ? r->location : "(none)");
    assert_true(it_cookie_get(b->c, IT_AUTH_COOKIE, false, &ck));
    it_cookie_cleanup(&ck);
}

/* ---- sealed values ---- */

static unsigned char *decode_value(const char *v, size_t *n)
{
    unsigned char *raw = NULL;
    assert_true(strncmp(v, PREFIX, strlen(PREFIX)) == 0);
    assert_int_equal(ha_b64url_decode(v + 3, strlen(v + 3), &raw, n), HA_OK);
    assert_true(*n > IV_LEN + TAG_LEN);
    return raw;
}

static char *encode_value(const char *prefix, const unsigned char *raw, size_t n)
{
    size_t pl = strlen(prefix);
    char *s = malloc(pl + ha_b64url_encoded_len(n) + 1);
    assert_non_null(s);
    memcpy(s, prefix, pl);
    ha_b64url_encode_to(raw, n, s + pl);
    return s;
}

/* raw with parts rearranged: the pieces [a, b, c] of lengths given, in the order o[]. */
static char *reorder(const unsigned char *raw, size_t n, const char *order)
{
    size_t ctlen = n - IV_LEN - TAG_LEN, off[3] = {0, IV_LEN, IV_LEN + ctlen},
           len[3] = {IV_LEN, ctlen, TAG_LEN}, o = 0;
    unsigned char *out = malloc(n);
    char *s;
    assert_non_null(out);
    for (size_t i = 0; i < 3; i++) {
        int p = order[i] - '0';
        memcpy(out + o, raw + off[p], len[p]);
        o += len[p];
    }
    s = encode_value(PREFIX, out, n);
    free(out);
    return s;
}

static char *flipped(const unsigned char *raw, size_t n, size_t at)
{
    unsigned char *copy = malloc(n);
    char *s;
    assert_non_null(copy);
    memcpy(copy, raw, n);
    copy[at] ^= 0x01;
    s = encode_value(PREFIX, copy, n);
    free(copy);
    return s;
}

static char *extended(const unsigned char *raw, size_t n, const unsigned char *more, size_t m)
{
    unsigned char *copy = malloc(n + m);
    char *s;
    assert_non_null(copy);
    memcpy(copy, raw, n);
    memcpy(copy + n, more, m);
    s = encode_value(PREFIX, copy, n + m);
    free(copy);
    return s;
}

#define MAX_VARIANTS 40

struct variants {
    char *v[MAX_VARIANTS];
    const char *what[MAX_VARIANTS];
    size_t n;
};

static void push(struct variants *vs, const char *what, char *v)
{
    assert_non_null(v);
    assert_true(vs->n < MAX_VARIANTS);
    vs->what[vs->n] = what;
    vs->v[vs->n++] = v;
}

static void make_variants(const char *value, struct variants *vs)
{
    size_t n = 0, ctlen;
    unsigned char *raw = decode_value(value, &n), zero = 0;
    char *b64 = strdup(value + 3), *s;
    assert_non_null(b64);
    ctlen = n - IV_LEN - TAG_LEN;
    push(vs, "iv[0] flipped", flipped(raw, n, 0));
    push(vs, "iv[11] flipped", flipped(raw, n, IV_LEN - 1));
    push(vs, "ciphertext[0] flipped", flipped(raw, n, IV_LEN));
    push(vs, "ciphertext[mid] flipped", flipped(raw, n, IV_LEN + ctlen / 2));
    push(vs, "ciphertext[last] flipped", flipped(raw, n, IV_LEN + ctlen - 1));
    push(vs, "tag[0] flipped", flipped(raw, n, n - TAG_LEN));
    push(vs, "tag[15] flipped", flipped(raw, n, n - 1));
    push(vs, "last byte dropped", encode_value(PREFIX, raw, n - 1));
    push(vs, "tag dropped", encode_value(PREFIX, raw, n - TAG_LEN));
    push(vs, "iv only", encode_value(PREFIX, raw, IV_LEN));
    push(vs, "first byte dropped", encode_value(PREFIX, raw + 1, n - 1));
    push(vs, "half", encode_value(PREFIX, raw, n / 2));
    push(vs, "prefix only", strdup(PREFIX));
    push(vs, "empty", strdup(""));
    push(vs, "deleted", strdup("deleted"));
    push(vs, "tag|ct|iv", reorder(raw, n, "210"));
    push(vs, "iv|tag|ct", reorder(raw, n, "021"));
    push(vs, "ct|iv|tag", reorder(raw, n, "102"));
    push(vs, "tag|iv|ct", reorder(raw, n, "201"));
    push(vs, "a zero byte appended", extended(raw, n, &zero, 1));
    push(vs, "the tag appended again", extended(raw, n, raw + n - TAG_LEN, TAG_LEN));
    push(vs, "version v1", encode_value("v1.", raw, n));
    push(vs, "version v3", encode_value("v3.", raw, n));
    push(vs, "version V2", encode_value("V2.", raw, n));
    push(vs, "no version", encode_value("", raw, n));
    push(vs, "version twice", encode_value("v2.v2.", raw, n));
    s = malloc(strlen(b64) * 2 + 8);
    assert_non_null(s);
    snprintf(s, strlen(b64) * 2 + 8, "v2.%s%s", b64, b64);
    push(vs, "payload doubled", s);
    if (ctlen >= 32) {
        unsigned char *sw = malloc(n);
        assert_non_null(sw);
        memcpy(sw, raw, n);
        memcpy(sw + IV_LEN, raw + IV_LEN + 16, 16);
        memcpy(sw + IV_LEN + 16, raw + IV_LEN, 16);
        push(vs, "two ciphertext blocks swapped", encode_value(PREFIX, sw, n));
        free(sw);
    }
    free(b64);
    free(raw);
}

static void variants_free(struct variants *vs)
{
    for (size_t i = 0; i < vs->n; i++)
        free(vs->v[i]);
    vs->n = 0;
}

/* Every variant is invalid_state and consumes nothing: the genuine cookie completes after. */
static void test_tampered_pieces(void **state)
{
    struct it_env *e = it_env();
    struct begun b;
    struct variants vs = {{NULL}, {NULL}, 0};
    struct it_resp r;
    long before = it_houston_received_count(e);
    (void)state;
    begin(&b);
    make_variants(b.ck.value, &vs);
    print_message("%zu tampered variants of one transaction cookie\n", vs.n);
    for (size_t i = 0; i < vs.n; i++) {
        finish_with(&b, vs.v[i], &r);
        if (r.location == NULL || strcmp(r.location, IT_LOGIN_ERROR_PREFIX "invalid_state") != 0)
            fail_msg("variant \"%s\" answered %ld %s", vs.what[i], r.status,
                     r.location != NULL ? r.location : "(none)");
        it_expect_login_error(b.c, &r, "invalid_state", before);
        it_resp_cleanup(&r);
    }
    finish_with(&b, b.ck.value, &r);
    expect_success(&b, &r);
    it_resp_cleanup(&r);
    variants_free(&vs);
    begun_cleanup(&b);
}

/* ---- plaintexts sealed with the sidecar's own key ---- */

static size_t gcm(bool seal, const unsigned char key[32], const char *aad, const unsigned char *in,
                  size_t n, unsigned char *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, ok;
    size_t body = seal ? n : n - IV_LEN - TAG_LEN;
    const unsigned char *iv = seal ? out : in;
    assert_non_null(ctx);
    if (seal)
        assert_int_equal(RAND_bytes(out, IV_LEN), 1);
    ok = EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv, seal ? 1 : 0) == 1 &&
         EVP_CipherUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) == 1;
    if (ok && seal)
        ok = EVP_CipherUpdate(ctx, out + IV_LEN, &len, in, (int)n) == 1 &&
             EVP_CipherFinal_ex(ctx, out + IV_LEN + n, &len) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + IV_LEN + n) == 1;
    else if (ok)
        ok = EVP_CipherUpdate(ctx, out, &len, in + IV_LEN, (int)body) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                                 (void *)(in + IV_LEN + body)) == 1 &&
             EVP_CipherFinal_ex(ctx, out + len, &len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    assert_true(ok);
    return seal ? IV_LEN + n + TAG_LEN : body;
}

/* A plaintext record (src/transaction.c's binary layout). */
struct plain {
    unsigned char b[MAX_RAW];
    size_t n;
};

/* The record of the genuine cookie, opened with the sidecar's key. */
static void open_plain(const struct begun *b, const unsigned char key[32], struct plain *p)
{
    size_t n = 0;
    unsigned char *raw = decode_value(b->ck.value, &n);
    assert_true(n - IV_LEN - TAG_LEN <= sizeof(p->b));
    p->n = gcm(false, key, b->name, raw, n, p->b);
    free(raw);
}

static char *seal_plain(const unsigned char key[32], const char *name, const struct plain *p)
{
    unsigned char raw[MAX_RAW + IV_LEN + TAG_LEN];
    size_t n;
    assert_true(p->n + IV_LEN + TAG_LEN <= sizeof(raw));
    n = gcm(true, key, name, p->b, p->n, raw);
    return encode_value(PREFIX, raw, n);
}

#define REC_FIXED 105 /* version, created, state, nonce, verifier */

/* Offset of the length of the k-th string (0 integration, 1 redirect, 2 extras, 3 invite). */
static size_t string_at(const struct plain *p, int k)
{
    size_t o = REC_FIXED;
    for (int i = 0; i < k; i++) {
        size_t l = (size_t)p->b[o] << 8 | p->b[o + 1];
        o += 2 + (l == 0xFFFF ? 0 : l);
        assert_true(o <= p->n);
    }
    return o;
}

static void put_time(struct plain *p, uint64_t t)
{
    for (int i = 0; i < 8; i++)
        p->b[1 + i] = (unsigned char)(t >> (56 - 8 * i));
}

enum mutation {
    M_NONE,
    M_OTHER_STATE,
    M_OLD_VERSION,
    M_NEXT_VERSION,
    M_TRAILING,
    M_TRUNCATED,
    M_NO_REDIRECT,
    M_NUL_IN_REDIRECT,
    M_LENGTH_PAST_END,
    M_HUGE_TIME,
    M_FUTURE
};

/* p changed as m says (the login under test has redirect "/oauth", no invite). */
static void mutate(struct plain *p, enum mutation m)
{
    size_t r = string_at(p, 1), inv = string_at(p, 3);
    switch (m) {
    case M_NONE:
        break;
    case M_OTHER_STATE:
        assert_int_equal(RAND_bytes(p->b + 9, 32), 1);
        break;
    case M_OLD_VERSION:
        p->b[0] = 1;
        break;
    case M_NEXT_VERSION:
        p->b[0] = 3;
        break;
    case M_TRAILING:
        p->b[p->n++] = 0;
        break;
    case M_TRUNCATED:
        p->n--;
        break;
    case M_NO_REDIRECT: /* the marker of an absent string where the redirect was */
        memmove(p->b + r + 2, p->b + r + 2 + 6, p->n - r - 2 - 6);
        p->n -= 6;
        p->b[r] = p->b[r + 1] = 0xFF;
        break;
    case M_NUL_IN_REDIRECT:
        p->b[r + 2 + 1] = '\0';
        break;
    case M_LENGTH_PAST_END:
        p->b[inv] = 0x00;
        p->b[inv + 1] = 0x05;
        break;
    case M_HUGE_TIME:
        put_time(p, UINT64_MAX);
        break;
    case M_FUTURE:
        put_time(p, (uint64_t)time(NULL) + 3600);
        break;
    }
}

static void forged_case(enum mutation m, const char *want_code)
{
    struct it_env *e = it_env();
    unsigned char key[32];
    struct begun b;
    struct it_resp r;
    struct plain p;
    char *sealed;
    long before = it_houston_received_count(e);
    assert_int_equal(it_cookie_key(e, key), 0);
    begin(&b);
    open_plain(&b, key, &p);
    mutate(&p, m);
    sealed = seal_plain(key, b.name, &p);
    it_note_secret(sealed);
    finish_with(&b, sealed, &r);
    if (want_code == NULL)
        expect_success(&b, &r);
    else
        it_expect_login_error(b.c, &r, want_code, before);
    it_resp_cleanup(&r);
    free(sealed);
    OPENSSL_cleanse(&p, sizeof(p));
    OPENSSL_cleanse(key, sizeof(key));
    begun_cleanup(&b);
}

static void test_resealed_genuine_plaintext_accepted(void **state)
{
    (void)state;
    forged_case(M_NONE, NULL); /* the control: our sealing is the sidecar's */
}

static void test_forged_plaintexts_refused(void **state)
{
    static const struct {
        enum mutation m;
        const char *code;
        const char *what;
    } cases[] = {
        {M_OTHER_STATE, "invalid_state", "the record holds another state"},
        {M_OLD_VERSION, "invalid_state", "version 1 (the JSON record of before)"},
        {M_NEXT_VERSION, "invalid_state", "version 3"},
        {M_TRAILING, "invalid_state", "a byte after the last string"},
        {M_TRUNCATED, "invalid_state", "the last byte missing"},
        {M_NO_REDIRECT, "invalid_state", "the redirect absent"},
        {M_NUL_IN_REDIRECT, "invalid_state", "a NUL inside the redirect"},
        {M_LENGTH_PAST_END, "invalid_state", "a length past the end"},
        {M_HUGE_TIME, "invalid_state", "created past LONG_MAX"},
        {M_FUTURE, "state_expired", "created an hour in the future"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("forged plaintext: %s\n", cases[i].what);
        forged_case(cases[i].m, cases[i].code);
    }
}

/* ---- another cookie secret ---- */

static void cross_sidecar_login(const char *secret, const char *logname, int slot, bool accepted)
{
    struct it_env *e = it_env();
    char env_secret[128], base[128];
    const char *extra[] = {env_secret, NULL};
    struct begun b;
    struct it_resp r;
    long before = it_houston_received_count(e);
    snprintf(env_secret, sizeof(env_secret), "AUTH_SIDECAR_COOKIE_SECRET=%s", secret);
    assert_int_equal(
        it_sidecar_start(e, &e->spare[slot], e->spare_ports[slot], logname, extra, true), 0);
    it_sidecar_base(e->spare_ports[slot], base, sizeof(base));
    /* Started at the other sidecar; the tenant sends the browser back to the main one. */
    begin_at(&b, base);
    assert_int_equal(it_get(b.c, b.auth.location, &r), 0);
    if (accepted)
        expect_success(&b, &r);
    else
        it_expect_login_error(b.c, &r, "invalid_state", before);
    it_resp_cleanup(&r);
    begun_cleanup(&b);
    it_proc_stop(&e->spare[slot]);
}

static void test_cookie_from_another_secret(void **state)
{
    char other[49];
    unsigned char r[36];
    (void)state;
    assert_int_equal(RAND_bytes(r, sizeof(r)), 1);
    ha_b64url_encode_to(r, sizeof(r), other);
    assert_string_not_equal(other, it_env()->cookie_secret);
    cross_sidecar_login(other, "sidecar-other-secret.log", 0, false);
    /* The control: the same secret opens at the other replica. */
    cross_sidecar_login(it_env()->cookie_secret, "sidecar-same-secret.log", 1, true);
}

/* ---- many cookies ---- */

/* A transaction cookie in the jar as the sidecar would set it. */
static void plant(struct it_client *c, const char *name, const char *value)
{
    struct it_cookie ck = {0};
    snprintf(ck.name, sizeof(ck.name), "%s", name);
    snprintf(ck.domain, sizeof(ck.domain), "%s", IT_SIDECAR_HOST);
    snprintf(ck.path, sizeof(ck.path), "%s", HA_TXN_COOKIE_PATH);
    ck.secure = ck.httponly = true;
    ck.value = (char *)value;
    assert_int_equal(it_cookie_put(c, &ck), 0);
}

/* A genuine sealed transaction created at `created`; its cookie name into name. */
static char *sealed_txn(long created, char name[64])
{
    unsigned char key[32];
    struct ha_txn t;
    char *sealed = NULL;
    assert_int_equal(it_cookie_key(it_env(), key), 0);
    assert_int_equal(ha_txn_init(&t, &ha_rng_openssl, created, "self", "/oauth", NULL, NULL),
                     HA_OK);
    assert_int_equal(ha_txn_seal(&t, key, &ha_rng_openssl, &sealed), HA_OK);
    ha_txn_cookie_name(t.state, name);
    ha_txn_cleanup(&t);
    OPENSSL_cleanse(key, sizeof(key));
    it_note_secret(sealed);
    return sealed;
}

/* Whether the client holds the transaction cookie called name. */
static bool holds(struct it_client *c, const char *name)
{
    struct it_cookie ck;
    if (!it_cookie_get(c, name, false, &ck))
        return false;
    it_cookie_cleanup(&ck);
    return true;
}

/* 97 unreadable and 3 genuine (recent) transaction cookies, then new logins: each answer
 * starts the login, sets its own cookie first and clears at most HA_TXN_EVICT_MAX old ones,
 * the unreadable before the genuine, the oldest genuine first; after three starts at most
 * HA_TXN_MAX_COOKIES remain. (curl, like some browsers, keeps only 50 Set-Cookie lines of a
 * response, so one answer cannot clear a hundred.) */
static void test_hundred_transaction_cookies(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    char names[3][64], url[512], *real[3];
    size_t left[3], lines[3], kept_first = 0;
    bool started[3];
    (void)state;
    for (int i = 0; i < 97; i++) {
        char name[64];
        snprintf(name, sizeof(name), IT_TXN_PREFIX "junk%012d", i);
        plant(c, name, "x");
    }
    for (int i = 0; i < 3; i++) {
        real[i] = sealed_txn((long)time(NULL) - 30 + i, names[i]);
        plant(c, names[i], real[i]);
    }
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 100);
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=%s", e->sidecar_url, QUERY, EMAIL);
    for (int k = 0; k < 3; k++) {
        struct it_resp r;
        assert_int_equal(it_get(c, url, &r), 0);
        left[k] = it_cookie_count(c, IT_TXN_PREFIX);
        lines[k] = it_resp_set_cookie_count(&r, IT_TXN_PREFIX);
        started[k] = r.status == 302 && r.location != NULL &&
                     strncmp(r.location, e->tenant_url, strlen(e->tenant_url)) == 0;
        print_message("start %d with %zu transaction cookies: %ld, %zu Set-Cookie lines, %zu "
                      "left\n",
                      k + 1, k == 0 ? (size_t)100 : left[k - 1], r.status, lines[k], left[k]);
        it_resp_cleanup(&r);
        if (k == 0)
            for (int i = 0; i < 3; i++)
                kept_first += holds(c, names[i]);
    }
    if (!started[0] || !started[1] || !started[2])
        fail_msg("a browser holding 100 transaction cookies cannot start a login");
    /* First answer: its own cookie plus HA_TXN_EVICT_MAX clearings, all of them junk. */
    assert_int_equal(lines[0], 1 + HA_TXN_EVICT_MAX);
    assert_int_equal(left[0], 100 + 1 - HA_TXN_EVICT_MAX);
    assert_int_equal(kept_first, 3);
    assert_true(left[1] < left[0]);
    assert_true(left[2] <= HA_TXN_MAX_COOKIES);
    /* By the third start the junk is gone and the oldest genuine one went next. */
    assert_false(holds(c, names[0]));
    assert_true(holds(c, names[2]));
    for (int i = 0; i < 3; i++)
        free(real[i]);
    it_client_free(c);
}

/* ---- cookie tossing from a sibling subdomain ---- */

/* A cookie for .<base> (Domain set, so every sibling's and houston.<base>'s requests carry
 * it), as a sibling under *.<base> can set one. */
static void plant_for_domain(struct it_client *c, const char *name, const char *path,
                             const char *value)
{
    struct it_cookie ck = {0};
    snprintf(ck.name, sizeof(ck.name), "%s", name);
    snprintf(ck.domain, sizeof(ck.domain), "." IT_BASE_DOMAIN);
    snprintf(ck.path, sizeof(ck.path), "%s", path);
    ck.tailmatch = ck.secure = true;
    ck.value = (char *)value;
    assert_int_equal(it_cookie_put(c, &ck), 0);
}

/* Issue 13 item 3, below the browser: the attacker starts a login of his own and stops at the
 * tenant's answer (code and state for his account); a sibling page plants his sealed
 * transaction cookie in the victim's jar for .<base> under the unprefixed name (Path=/ and
 * Path=/v1/oauth); the victim then follows the attacker's redirect URL. The sidecar opens
 * neither: invalid_state, nothing reaches Houston, no session. (libcurl, like browsers,
 * refuses a "__Host-" or "__host-" cookie with a Domain, so that attempt is the browser
 * test's; test_handlers covers a "__host-" name presented anyway.) The attacker's own
 * browser still completes with the same URL afterwards (the control: the planted value and
 * the code were good, and the refusal consumed neither). The real-browser version, where
 * Chromium also refuses a "__Host-" cookie with Domain, is tests/browser. */
static void test_cookie_tossing_refused(void **state)
{
    struct it_env *e = it_env();
    struct begun attacker;
    struct it_client *victim = it_client_new(e);
    struct it_resp r;
    const char *bare;
    long before = it_houston_received_count(e);
    struct it_cookie ck;
    (void)state;
    begin(&attacker);
    bare = strncmp(attacker.name, "__Host-", 7) == 0 ? attacker.name + 7 : attacker.name;
    plant_for_domain(victim, bare, "/", attacker.ck.value);
    plant_for_domain(victim, bare, "/v1/oauth", attacker.ck.value);
    assert_true(holds(victim, bare));
    assert_int_equal(it_get(victim, attacker.auth.location, &r), 0);
    print_message("the victim at the attacker's redirect URL: %ld %s\n", r.status,
                  r.location != NULL ? r.location : "(none)");
    if (r.location != NULL &&
        strncmp(r.location, IT_APP_URL "/oauth?", strlen(IT_APP_URL "/oauth?")) == 0)
        fail_msg("the victim was signed in with the attacker's planted transaction cookie");
    it_expect_login_error(victim, &r, "invalid_state", before);
    assert_false(it_cookie_get(victim, IT_AUTH_COOKIE, false, &ck));
    it_resp_cleanup(&r);
    assert_int_equal(it_get(attacker.c, attacker.auth.location, &r), 0);
    expect_success(&attacker, &r);
    it_resp_cleanup(&r);
    it_client_free(victim);
    begun_cleanup(&attacker);
}

/* ---- cookies the sidecar cannot use ---- */

/* Issue 13 item 4: a browser holding "ha_txn_(1)=x; ha_txn_b=2; ..." (a name that is not an
 * HTTP token among them) got a 500 from every /v1/oauth/start. Planted under the old and the
 * current transaction prefix, such cookies are ignored by every endpoint: the login
 * completes, logout answers 302, and none of them is cleared (they are not the sidecar's). */
static void test_unusable_cookie_names(void **state)
{
    static const char *const names[] = {"(1)", "b", "c", "d", "e", "f", "a:b", "x@y"};
    const char *prefixes[] = {"ha_txn_", HA_TXN_COOKIE_PREFIX};
    struct it_env *e = it_env();
    (void)state;
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        struct it_client *c = it_client_new(e);
        struct it_login l;
        struct it_resp r;
        char name[64], *url;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            struct it_cookie ck = {0};
            snprintf(ck.name, sizeof(ck.name), "%s%s", prefixes[p], names[i]);
            snprintf(ck.domain, sizeof(ck.domain), "%s", IT_SIDECAR_HOST);
            snprintf(ck.path, sizeof(ck.path), "/");
            ck.secure = ck.httponly = true;
            ck.value = (char *)"x";
            assert_int_equal(it_cookie_put(c, &ck), 0);
            assert_true(holds(c, ck.name));
        }
        (void)it_login(c, QUERY, "unusable@example.com", &l); /* judged below, hop by hop */
        print_message("prefix %s: start %ld, redirect %ld\n", prefixes[p], l.start.status,
                      l.redirect.status);
        if (l.start.status != 302 || l.redirect.status != 302 || l.redirect.location == NULL ||
            strncmp(l.redirect.location, IT_APP_URL "/oauth?", strlen(IT_APP_URL "/oauth?")) != 0)
            fail_msg("a browser holding unusable cookies could not log in: start %ld, redirect %ld",
                     l.start.status, l.redirect.status);
        assert_true(holds(c, IT_AUTH_COOKIE));
        url = it_fmt("%s/logout", e->sidecar_url);
        assert_non_null(url);
        assert_int_equal(it_get(c, url, &r), 0);
        assert_int_equal(r.status, 302);
        it_resp_cleanup(&r);
        free(url);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            snprintf(name, sizeof(name), "%s%s", prefixes[p], names[i]);
            assert_true(holds(c, name));
        }
        it_login_cleanup(&l);
        it_client_free(c);
    }
}

/* ---- the jar's budget ---- */

#define BIG_STARTS 8      /* logins started and abandoned before the one that completes */
#define BIG_PARAM_LEN 800 /* bytes of redirect and of extras: a deep UI path and its extras */

/* What the client sent: the largest Cookie header, and the largest share of it that is
 * transaction cookies ("name=value" plus "; " each). */
struct cookie_watch {
    size_t max_header, max_txn;
};

static size_t txn_share(const char *v, size_t n)
{
    size_t total = 0, plen = strlen(HA_TXN_COOKIE_PREFIX);
    const char *end = v + n;
    while (v < end) {
        const char *semi = memchr(v, ';', (size_t)(end - v));
        size_t len = (size_t)((semi != NULL ? semi : end) - v);
        while (len > 0 && *v == ' ') {
            v++;
            len--;
        }
        if (len >= plen && strncmp(v, HA_TXN_COOKIE_PREFIX, plen) == 0)
            total += len + 2;
        v += len + 1;
    }
    return total;
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    struct cookie_watch *w = ud;
    const char *p = data, *end = data + size;
    (void)h;
    if (type != CURLINFO_HEADER_OUT)
        return 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((eol != NULL ? eol : end) - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len > 8 && strncasecmp(p, "Cookie: ", 8) == 0) {
            size_t t = txn_share(p + 8, len - 8);
            w->max_header = len - 8 > w->max_header ? len - 8 : w->max_header;
            w->max_txn = t > w->max_txn ? t : w->max_txn;
        }
        p += len + 1;
        if (eol != NULL && p < end && *p == '\n')
            p++;
    }
    return 0;
}

/* "provider=auth0&integration=self&redirect=/w/aaa...&extras={"path":"bbb..."}" (encoded),
 * redirect and extras BIG_PARAM_LEN bytes each. */
static char *big_query(void)
{
    char redirect[BIG_PARAM_LEN + 1], extras[BIG_PARAM_LEN + 1], *r = NULL, *x = NULL, *q;
    size_t n;
    memcpy(redirect, "/w/", 3);
    memset(redirect + 3, 'a', BIG_PARAM_LEN - 3);
    redirect[BIG_PARAM_LEN] = '\0';
    n = (size_t)snprintf(extras, sizeof(extras), "{\"path\":\"");
    memset(extras + n, 'b', BIG_PARAM_LEN - n - 2);
    memcpy(extras + BIG_PARAM_LEN - 2, "\"}", 3);
    assert_int_equal(ha_url_encode(redirect, strlen(redirect), &r), HA_OK);
    assert_int_equal(ha_url_encode(extras, strlen(extras), &x), HA_OK);
    q = it_fmt("provider=auth0&integration=self&redirect=%s&extras=%s", r, x);
    assert_non_null(q);
    free(r);
    free(x);
    return q;
}

static bool landed_on_app(const struct it_resp *r)
{
    return r->status == 302 && r->location != NULL &&
           strncmp(r->location, IT_APP_URL "/", strlen(IT_APP_URL "/")) == 0;
}

/* The Cookie header a browser holding c's jar sends to the sidecar at path: every live
 * cookie for houston.<base> (host-only, or Domain=.<base>) whose Path matches. libcurl itself
 * stops adding cookies at 8190 bytes, which hides an oversized jar; a browser sends them all.
 * "Cookie: " included; caller frees. */
static char *browser_header(struct it_client *c, const char *path)
{
    struct curl_slist *list = NULL;
    size_t cap = 64 * 1024, o = 0;
    char *h = malloc(cap);
    long long now = (long long)time(NULL);
    assert_non_null(h);
    o = (size_t)snprintf(h, cap, "Cookie: ");
    curl_easy_getinfo(c->h, CURLINFO_COOKIELIST, &list);
    for (struct curl_slist *l = list; l != NULL; l = l->next) {
        char line[8192], *f[7], *p = line, *tab;
        size_t n = 0, dl, hl = strlen(IT_SIDECAR_HOST);
        bool host;
        snprintf(line, sizeof(line), "%s", l->data);
        if (strncmp(p, "#HttpOnly_", 10) == 0)
            p += 10;
        while (n < 7 && p != NULL) {
            f[n++] = p;
            tab = strchr(p, '\t');
            if (tab != NULL)
                *tab++ = '\0';
            p = tab;
        }
        if (n < 7)
            continue;
        dl = strlen(f[0]);
        host = strcmp(f[0], IT_SIDECAR_HOST) == 0 ||
               (strcmp(f[1], "TRUE") == 0 && dl <= hl &&
                strcmp(IT_SIDECAR_HOST + hl - dl, f[0][0] == '.' ? f[0] : f[0] - 0) == 0);
        if (!host || strncmp(path, f[2], strlen(f[2])) != 0 ||
            (strtoll(f[4], NULL, 10) != 0 && strtoll(f[4], NULL, 10) < now))
            continue;
        assert_true(o + strlen(f[5]) + strlen(f[6]) + 4 < cap);
        o += (size_t)snprintf(h + o, cap - o, "%s%s=%s", o > 8 ? "; " : "", f[5], f[6]);
    }
    curl_slist_free_all(list);
    return h;
}

/* Issue 13 item 5: four starts with 800-byte redirect and extras left about 9.9 KB of
 * transaction cookies, and from then on every /v1/oauth request of that browser was a 431
 * for ten minutes (nginx's 8 KiB header buffer would have refused it first). A browser that
 * already holds Houston's cookie starts BIG_STARTS such logins, then one more that completes:
 * the Cookie header the browser would send before each request stays within the budget, a
 * start sent with exactly that header answers 302 to the tenant (never 431), and the last
 * login lands on the app. */
static void test_jar_budget(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e), *probe = it_client_new(e);
    struct cookie_watch w = {0, 0};
    struct it_login l;
    struct it_resp r, a, d;
    char *q = big_query(), *url, *next;
    size_t largest = 0, largest_txn = 0;
    (void)state;
    curl_easy_setopt(c->h, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(c->h, CURLOPT_DEBUGDATA, &w);
    curl_easy_setopt(c->h, CURLOPT_VERBOSE, 1L);
    assert_int_equal(it_login(c, QUERY, "budget@example.com", &l), 0);
    assert_true(landed_on_app(&l.redirect));
    assert_true(holds(c, IT_AUTH_COOKIE));
    it_login_cleanup(&l);
    url = it_fmt("%s/v1/oauth/start?%s&login_hint=budget%%40example.com", e->sidecar_url, q);
    assert_non_null(url);
    for (int k = 0; k <= BIG_STARTS; k++) {
        char *full = browser_header(c, "/v1/oauth/start");
        const char *hdr[2] = {full, NULL};
        size_t len = strlen(full) - strlen("Cookie: "), txn = txn_share(full + 8, len);
        largest = len > largest ? len : largest;
        largest_txn = txn > largest_txn ? txn : largest_txn;
        curl_easy_setopt(probe->h, CURLOPT_COOKIELIST, "ALL"); /* it sends only hdr */
        (void)it_request_headers(probe, "GET", url, NULL, NULL, hdr, &r);
        print_message("start %d: %zu transaction cookies held, the browser's Cookie header is "
                      "%zu bytes: %ld (curl %d)\n",
                      k + 1, it_cookie_count(c, HA_TXN_COOKIE_PREFIX), len, r.status, r.curl_code);
        if (r.status != 302 || r.location == NULL ||
            strncmp(r.location, e->tenant_url, strlen(e->tenant_url)) != 0)
            fail_msg("start %d with the browser's %zu-byte Cookie header answered %ld", k + 1, len,
                     r.status);
        it_resp_cleanup(&r);
        free(full);
        assert_int_equal(it_get(c, url, &r), 0);
        assert_int_equal(r.status, 302);
        if (k < BIG_STARTS)
            it_resp_cleanup(&r);
    }
    /* The last start completes: the tenant's authorize, then the redirect back. */
    assert_int_equal(it_get(c, r.location, &a), 0);
    assert_int_equal(a.status, 302);
    it_note_secret(a.location);
    next = browser_header(c, "/v1/oauth/redirect");
    largest = strlen(next) - 8 > largest ? strlen(next) - 8 : largest;
    largest_txn = txn_share(next + 8, strlen(next) - 8) > largest_txn
                      ? txn_share(next + 8, strlen(next) - 8)
                      : largest_txn;
    free(next);
    assert_int_equal(it_get(c, a.location, &d), 0);
    print_message("the last login: redirect %ld; largest Cookie header a browser would send %zu "
                  "bytes (transaction cookies %zu), libcurl sent %zu (%zu); budget %d (%d)\n",
                  d.status, largest, largest_txn, w.max_header, w.max_txn, HA_COOKIE_HEADER_BUDGET,
                  HA_TXN_JAR_MAX);
    if (!landed_on_app(&d))
        fail_msg("the login after %d big starts did not complete: %ld", BIG_STARTS, d.status);
    assert_true(largest <= HA_COOKIE_HEADER_BUDGET);
    assert_true(largest_txn <= HA_TXN_JAR_MAX);
    assert_true(w.max_header <= HA_COOKIE_HEADER_BUDGET);
    assert_true(w.max_txn <= HA_TXN_JAR_MAX);
    it_resp_cleanup(&r);
    it_resp_cleanup(&a);
    it_resp_cleanup(&d);
    free(url);
    free(q);
    it_client_free(probe);
    it_client_free(c);
}

/* "Cookie: " and a value of exactly len bytes: filler pairs "fNN=aaa; " of at most 406
 * bytes, then name=value last. */
static char *cookie_header(const char *name, const char *value, size_t len)
{
    size_t tail = strlen(name) + 1 + strlen(value), rest, o, i = 0;
    char *h = malloc(len + 16);
    assert_non_null(h);
    assert_true(len >= tail + 7);
    rest = len - tail;
    o = (size_t)snprintf(h, len + 16, "Cookie: ");
    while (rest > 0) {
        size_t v = rest >= 413 ? 400 : rest - 6;
        o += (size_t)snprintf(h + o, len + 16 - o, "f%02zu=", i++ % 100);
        memset(h + o, 'a', v);
        o += v;
        h[o++] = ';';
        h[o++] = ' ';
        rest -= 6 + v;
    }
    o += (size_t)snprintf(h + o, len + 16 - o, "%s=%s", name, value);
    assert_int_equal(o - strlen("Cookie: "), len);
    return h;
}

/* The Cookie header cap: one byte over is a 431 that consumes nothing; exactly at the cap
 * the same login completes. */
static void test_cookie_header_at_cap(void **state)
{
    struct it_env *e = it_env();
    struct begun b;
    struct it_client *fresh = it_client_new(e);
    struct it_resp r;
    char *over, *at;
    const char *hdr[2] = {NULL, NULL};
    struct it_cookie ck;
    long before = it_houston_received_count(e);
    (void)state;
    begin(&b);
    over = cookie_header(b.name, b.ck.value, HA_MAX_COOKIE_HEADER + 1);
    at = cookie_header(b.name, b.ck.value, HA_MAX_COOKIE_HEADER);
    hdr[0] = over;
    assert_int_equal(it_request_headers(fresh, "GET", b.auth.location, NULL, NULL, hdr, &r), 0);
    print_message("Cookie header of %d bytes: %ld\n", HA_MAX_COOKIE_HEADER + 1, r.status);
    assert_int_equal(r.status, 431);
    assert_null(it_resp_set_cookie(&r, IT_AUTH_COOKIE "=", 0));
    assert_int_equal(it_houston_received_count(e), before);
    it_resp_cleanup(&r);
    hdr[0] = at;
    assert_int_equal(it_request_headers(fresh, "GET", b.auth.location, NULL, NULL, hdr, &r), 0);
    print_message("Cookie header of %d bytes: %ld\n", HA_MAX_COOKIE_HEADER, r.status);
    if (r.status != 302 || r.location == NULL ||
        strncmp(r.location, IT_APP_URL "/oauth?", strlen(IT_APP_URL "/oauth?")) != 0)
        fail_msg("a Cookie header of exactly the cap did not log in: %ld %s", r.status,
                 r.location != NULL ? r.location : "(none)");
    assert_true(it_cookie_get(fresh, IT_AUTH_COOKIE, false, &ck));
    it_cookie_cleanup(&ck);
    it_resp_cleanup(&r);
    free(over);
    free(at);
    it_client_free(fresh);
    begun_cleanup(&b);
}

static void test_logs_hold_no_secrets(void **state)
{
    static const char *const logs[] = {"sidecar.log", "sidecar-other-secret.log",
                                       "sidecar-same-secret.log"};
    (void)state;
    it_expect_logs_clean(it_env(), logs, sizeof(logs) / sizeof(logs[0]), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_tampered_pieces, it_test_setup),
        cmocka_unit_test_setup(test_resealed_genuine_plaintext_accepted, it_test_setup),
        cmocka_unit_test_setup(test_forged_plaintexts_refused, it_test_setup),
        cmocka_unit_test_setup(test_cookie_from_another_secret, it_test_setup),
        cmocka_unit_test_setup(test_cookie_header_at_cap, it_test_setup),
        cmocka_unit_test_setup(test_hundred_transaction_cookies, it_test_setup),
        cmocka_unit_test_setup(test_cookie_tossing_refused, it_test_setup),
        cmocka_unit_test_setup(test_unusable_cookie_names, it_test_setup),
        cmocka_unit_test_setup(test_jar_budget, it_test_setup),
        cmocka_unit_test(test_logs_hold_no_secrets),
        cmocka_unit_test(it_test_processes_exit_clean),
    };
    /* IT_TEST_FILTER=<glob> runs only the matching tests (debugging). */
    if (getenv("IT_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("IT_TEST_FILTER"));
    return cmocka_run_group_tests(tests, it_group_setup, it_group_teardown);
}
