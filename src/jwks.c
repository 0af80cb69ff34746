/* JWKS: RSA signing keys from the tenant's jwks_uri, and the cache that serves them by kid.
 *
 * Parsing keeps only what can verify an RS256 signature (RFC 7517 §4, RFC 7518 §6.3.1) and
 * counts the rest as skipped; keys are built with EVP_PKEY_fromdata, never the deprecated
 * RSA_* API. e is capped at 64 bits (OpenSSL refuses larger ones for big moduli anyway, and
 * a huge e would make every verification slow).
 *
 * The cache holds a mutex-protected pointer to an immutable, refcounted snapshot of the key
 * set. A lookup takes a reference under the mutex and searches outside it. Fetches run with
 * the mutex released, so lookups of known kids never wait for the tenant; one fetch at a
 * time is in flight (`fetching`), and threads that miss meanwhile wait on `done` for its
 * result instead of fetching again. Miss-triggered fetches are throttled to one per
 * min_refetch_s so that tokens with random kids cannot make us hammer the tenant. A failed
 * fetch, or one that yields no usable key, leaves the previous snapshot serving. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include "houston_auth/b64url.h"
#include "houston_auth/jwks.h"
#include "houston_auth/log.h"
#include "houston_auth/proto.h"

#define MAX_RSA_BITS 8192
#define MAX_E_BYTES 8
#define RETRY_AFTER_FAILURE_S 30
#define JWKS_ACCEPT "application/json"

void ha_jwks_set_free(struct ha_jwks_set *set)
{
    size_t i;
    if (set == NULL)
        return;
    for (i = 0; i < set->count; i++) {
        free(set->keys[i].kid);
        EVP_PKEY_free(set->keys[i].pkey);
    }
    free(set->keys);
    free(set);
}

static int member_is(const json_t *jwk, const char *name, const char *want)
{
    const json_t *v = json_object_get(jwk, name);
    return json_is_string(v) && json_string_length(v) == strlen(want) &&
           strcmp(json_string_value(v), want) == 0;
}

/* RFC 7517 §4.3: key_ops, when present, must allow "verify". */
static int ops_allow_verify(const json_t *ops)
{
    size_t i;
    const json_t *v;
    if (ops == NULL)
        return 1;
    if (!json_is_array(ops))
        return 0;
    json_array_foreach(ops, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), "verify") == 0)
            return 1;
    }
    return 0;
}

static int usable_for_rs256(const json_t *jwk)
{
    if (!json_is_object(jwk) || !member_is(jwk, "kty", "RSA"))
        return 0;
    if (json_object_get(jwk, "use") != NULL && !member_is(jwk, "use", "sig"))
        return 0;
    if (json_object_get(jwk, "alg") != NULL && !member_is(jwk, "alg", HA_OIDC_ALG))
        return 0;
    return ops_allow_verify(json_object_get(jwk, "key_ops"));
}

/* A base64url big-endian unsigned integer (RFC 7518 §2 Base64urlUInt) of at most max bytes. */
static BIGNUM *b64_bn(const json_t *v, size_t max)
{
    unsigned char *bytes = NULL;
    size_t n = 0;
    BIGNUM *bn = NULL;
    if (!json_is_string(v) ||
        ha_b64url_decode(json_string_value(v), json_string_length(v), &bytes, &n) != HA_OK)
        return NULL;
    if (n > 0 && n <= max)
        bn = BN_bin2bn(bytes, (int)n, NULL);
    free(bytes);
    return bn;
}

static EVP_PKEY *rsa_from_bn(const BIGNUM *n, const BIGNUM *e)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (bld == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1)
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* NULL when n or e is malformed or out of policy: modulus bits in [HA_MIN_RSA_BITS,
 * MAX_RSA_BITS] and odd; e odd, > 1, at most MAX_E_BYTES. */
static EVP_PKEY *jwk_to_pkey(const json_t *jwk)
{
    BIGNUM *n = b64_bn(json_object_get(jwk, "n"), MAX_RSA_BITS / 8 + 1);
    BIGNUM *e = b64_bn(json_object_get(jwk, "e"), MAX_E_BYTES);
    EVP_PKEY *pkey = NULL;

    if (n == NULL || e == NULL)
        goto out;
    if (BN_num_bits(n) < HA_MIN_RSA_BITS || BN_num_bits(n) > MAX_RSA_BITS || !BN_is_odd(n))
        goto out;
    if (!BN_is_odd(e) || BN_is_one(e))
        goto out;
    pkey = rsa_from_bn(n, e);
out:
    BN_free(n);
    BN_free(e);
    return pkey;
}

static int kid_taken(const struct ha_jwks_set *set, const char *kid)
{
    size_t i;
    for (i = 0; i < set->count; i++) {
        const char *k = set->keys[i].kid;
        if (k != NULL && kid != NULL && strcmp(k, kid) == 0)
            return 1;
    }
    return 0;
}

/* Adds jwk to set when usable (set->keys has room for every entry); skips it otherwise.
 * A kid must be a string when present; a kid already seen is skipped (first one wins). */
static enum ha_err add_jwk(struct ha_jwks_set *set, const json_t *jwk)
{
    const json_t *kid = json_object_get(jwk, "kid");
    struct ha_jwk *k = &set->keys[set->count];

    if (!usable_for_rs256(jwk) || (kid != NULL && !json_is_string(kid)) ||
        kid_taken(set, json_string_value(kid))) {
        set->skipped++;
        return HA_OK;
    }
    k->pkey = jwk_to_pkey(jwk);
    if (k->pkey == NULL) {
        set->skipped++;
        return HA_OK;
    }
    if (kid != NULL && (k->kid = strdup(json_string_value(kid))) == NULL) {
        EVP_PKEY_free(k->pkey);
        k->pkey = NULL;
        return HA_ERR_NOMEM;
    }
    set->count++;
    return HA_OK;
}

static enum ha_err fill_set(struct ha_jwks_set *set, const json_t *keys)
{
    size_t i;
    const json_t *jwk;
    enum ha_err err = HA_OK;
    json_array_foreach(keys, i, jwk)
    {
        err = add_jwk(set, jwk);
        if (err != HA_OK)
            break;
    }
    return err;
}

enum ha_err ha_jwks_parse(const char *json, size_t len, struct ha_jwks_set **out)
{
    json_t *doc = NULL;
    const json_t *keys;
    struct ha_jwks_set *set = NULL;
    enum ha_err err = HA_ERR_INVALID;

    if (json == NULL)
        goto out;
    err = HA_ERR_TOO_LARGE;
    if (len > HA_MAX_PEER_BODY)
        goto out;
    err = HA_ERR_INVALID;
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    keys = json_object_get(doc, "keys");
    if (!json_is_object(doc) || !json_is_array(keys))
        goto out;
    err = HA_ERR_TOO_LARGE;
    if (json_array_size(keys) > HA_MAX_JWKS_KEYS)
        goto out;
    err = HA_ERR_NOMEM;
    set = calloc(1, sizeof(*set));
    if (set == NULL || (set->keys = calloc(json_array_size(keys) + 1, sizeof(*set->keys))) == NULL)
        goto out;
    err = fill_set(set, keys);
    if (err != HA_OK)
        goto out;
    *out = set;
    set = NULL;
out:
    ha_jwks_set_free(set);
    json_decref(doc);
    return err;
}

enum ha_err ha_jwks_set_find(const struct ha_jwks_set *set, const char *kid, EVP_PKEY **out)
{
    size_t i;
    if (set == NULL)
        return HA_ERR_NOT_FOUND;
    if (kid == NULL) {
        if (set->count != 1)
            return HA_ERR_NOT_FOUND;
        *out = set->keys[0].pkey;
        return HA_OK;
    }
    for (i = 0; i < set->count; i++) {
        if (set->keys[i].kid != NULL && strcmp(set->keys[i].kid, kid) == 0) {
            *out = set->keys[i].pkey;
            return HA_OK;
        }
    }
    return HA_ERR_NOT_FOUND;
}

/* ---- the cache ---- */

struct snapshot {
    atomic_uint refs;
    struct ha_jwks_set *set;
};

struct ha_jwks_cache {
    char *uri;
    struct ha_http http;
    struct ha_clock clock;
    long refresh_s;
    long min_refetch_s;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t done;  /* broadcast when a fetch completes */
    struct snapshot *snap;
    bool fetching;
    unsigned long generation; /* completed fetches */
    enum ha_err last_result;
    bool missed_before;
    long last_miss_fetch;
    bool loaded_before;
    long last_ok;
    bool failed_last;
    long last_fail;
    atomic_bool ready;
    struct ha_jwks_cache_stats stats;
};

static void snapshot_put(struct snapshot *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    ha_jwks_set_free(s->set);
    free(s);
}

static long now_s(const struct ha_jwks_cache *c)
{
    return c->clock.now(c->clock.ctx);
}

enum ha_err ha_jwks_cache_new(const struct ha_jwks_cache_opts *opts, struct ha_jwks_cache **out)
{
    struct ha_jwks_cache *c = NULL;
    bool have_lock = false;
    enum ha_err err = HA_ERR_INVALID;

    if (opts == NULL || opts->jwks_uri == NULL || opts->clock.now == NULL || opts->refresh_s <= 0 ||
        opts->min_refetch_s < 0)
        goto out;
    err = HA_ERR_NOMEM;
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->uri = strdup(opts->jwks_uri)) == NULL)
        goto out;
    if (pthread_mutex_init(&c->lock, NULL) != 0)
        goto out;
    have_lock = true;
    if (pthread_cond_init(&c->done, NULL) != 0)
        goto out;
    c->http = opts->http;
    c->clock = opts->clock;
    c->refresh_s = opts->refresh_s;
    c->min_refetch_s = opts->min_refetch_s;
    atomic_init(&c->ready, false);
    *out = c;
    c = NULL;
    err = HA_OK;
out:
    if (c != NULL) {
        if (have_lock)
            pthread_mutex_destroy(&c->lock);
        free(c->uri);
        free(c);
    }
    return err;
}

void ha_jwks_cache_free(struct ha_jwks_cache *c)
{
    if (c == NULL)
        return;
    snapshot_put(c->snap);
    pthread_cond_destroy(&c->done);
    pthread_mutex_destroy(&c->lock);
    free(c->uri);
    free(c);
}

/* The GET of jwks_uri. */
static void jwks_request(const struct ha_jwks_cache *c, struct ha_http_request *req)
{
    memset(req, 0, sizeof(*req));
    req->method = "GET";
    req->url = c->uri;
    req->to_tenant = true;
    req->accept = JWKS_ACCEPT;
}

/* A fetch's answer: 200 only, then parse. A set without one usable key counts as a failure so
 * that a broken document never replaces keys that work. Logs nothing: whoever asked for the
 * fetch reports a failure, once. */
static enum ha_err parse_answer(enum ha_err err, const struct ha_http_response *resp,
                                struct ha_jwks_set **out)
{
    struct ha_jwks_set *set = NULL;
    if (err == HA_OK && resp->status != 200)
        err = HA_ERR_HTTP;
    if (err == HA_OK)
        err = ha_jwks_parse(resp->body, resp->body_len, &set);
    if (err == HA_OK && set->count == 0)
        err = HA_ERR_INVALID;
    if (err != HA_OK) {
        ha_jwks_set_free(set);
        set = NULL;
    }
    *out = set;
    return err;
}

/* A synchronous fetch through c->http. Runs without c->lock. */
static enum ha_err download(const struct ha_jwks_cache *c, struct ha_jwks_set **out)
{
    struct ha_http_request req;
    struct ha_http_response resp = {0};
    enum ha_err err;

    jwks_request(c, &req);
    err = ha_http_do(&c->http, &req, &resp);
    err = parse_answer(err, &resp, out);
    ha_http_response_cleanup(&resp);
    return err;
}

static struct snapshot *snapshot_new(struct ha_jwks_set *set)
{
    struct snapshot *s = malloc(sizeof(*s));
    if (s == NULL) {
        ha_jwks_set_free(set);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->set = set;
    return s;
}

/* Records a finished fetch and wakes the waiters. Called with c->lock held. */
static void finish_fetch(struct ha_jwks_cache *c, struct snapshot *fresh, enum ha_err err)
{
    long now = now_s(c);
    if (err == HA_OK) {
        snapshot_put(c->snap);
        c->snap = fresh;
        c->loaded_before = true;
        c->last_ok = now;
        c->failed_last = false;
        atomic_store(&c->ready, true);
    } else {
        c->stats.fetch_failures++;
        c->failed_last = true;
        c->last_fail = now;
    }
    c->last_result = err;
    c->fetching = false;
    c->generation++;
    pthread_cond_broadcast(&c->done);
}

/* Runs one fetch, or waits for the one in flight and returns its result. Called with
 * c->lock held; releases it during the request and holds it again on return. */
static enum ha_err fetch_locked(struct ha_jwks_cache *c)
{
    struct ha_jwks_set *set = NULL;
    struct snapshot *fresh = NULL;
    unsigned long gen = c->generation;
    enum ha_err err;

    if (c->fetching) {
        while (c->generation == gen)
            pthread_cond_wait(&c->done, &c->lock);
        return c->last_result;
    }
    c->fetching = true;
    c->stats.fetches++;
    pthread_mutex_unlock(&c->lock);
    err = download(c, &set);
    if (err == HA_OK) {
        fresh = snapshot_new(set);
        err = fresh == NULL ? HA_ERR_NOMEM : HA_OK;
    }
    pthread_mutex_lock(&c->lock);
    finish_fetch(c, fresh, err);
    return err;
}

enum ha_err ha_jwks_cache_refresh(struct ha_jwks_cache *c)
{
    enum ha_err err;
    pthread_mutex_lock(&c->lock);
    err = fetch_locked(c);
    pthread_mutex_unlock(&c->lock);
    return err;
}

static bool refresh_due(const struct ha_jwks_cache *c, long now)
{
    if (c->fetching)
        return false;
    if (c->failed_last && now >= c->last_fail && now - c->last_fail < RETRY_AFTER_FAILURE_S)
        return false;
    if (!c->loaded_before)
        return true;
    return now < c->last_ok || now - c->last_ok >= c->refresh_s;
}

enum ha_err ha_jwks_cache_tick(struct ha_jwks_cache *c)
{
    enum ha_err err = HA_OK;
    long now = now_s(c);
    pthread_mutex_lock(&c->lock);
    if (refresh_due(c, now))
        err = fetch_locked(c);
    pthread_mutex_unlock(&c->lock);
    return err;
}

bool ha_jwks_cache_ready(const struct ha_jwks_cache *c)
{
    return atomic_load(&c->ready);
}

/* New reference to the key for kid in the current snapshot. Called with c->lock held. */
static enum ha_err find_locked(struct ha_jwks_cache *c, const char *kid, EVP_PKEY **out)
{
    EVP_PKEY *key = NULL;
    if (c->snap == NULL || ha_jwks_set_find(c->snap->set, kid, &key) != HA_OK)
        return HA_ERR_JWT_KEY;
    if (EVP_PKEY_up_ref(key) != 1)
        return HA_ERR_NOMEM;
    *out = key;
    return HA_OK;
}

/* The fast path: a reference to the snapshot under the lock, the search outside it. */
static enum ha_err lookup(struct ha_jwks_cache *c, const char *kid, EVP_PKEY **out)
{
    struct snapshot *s;
    EVP_PKEY *key = NULL;
    enum ha_err err = HA_ERR_JWT_KEY;

    pthread_mutex_lock(&c->lock);
    s = c->snap;
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&c->lock);
    if (s != NULL && ha_jwks_set_find(s->set, kid, &key) == HA_OK)
        err = EVP_PKEY_up_ref(key) == 1 ? HA_OK : HA_ERR_NOMEM;
    snapshot_put(s);
    if (err == HA_OK)
        *out = key;
    return err;
}

static bool window_closed(const struct ha_jwks_cache *c, long now)
{
    return c->missed_before && now >= c->last_miss_fetch &&
           now - c->last_miss_fetch < c->min_refetch_s;
}

/* A miss: look again (a fetch may have just finished), join the fetch in flight, or start
 * one if the throttle window allows, then look once more. */
static enum ha_err miss(struct ha_jwks_cache *c, const char *kid, EVP_PKEY **out)
{
    long now = now_s(c);
    enum ha_err err, fetched = HA_OK;
    bool started = false;

    pthread_mutex_lock(&c->lock);
    err = find_locked(c, kid, out);
    if (err != HA_ERR_JWT_KEY || c->http.perform == NULL)
        goto out;
    if (c->fetching) {
        c->stats.coalesced_misses++;
    } else if (window_closed(c, now)) {
        c->stats.throttled_misses++;
        goto out;
    } else {
        c->missed_before = true;
        c->last_miss_fetch = now;
        started = true;
    }
    fetched = fetch_locked(c);
    err = find_locked(c, kid, out);
out:
    pthread_mutex_unlock(&c->lock);
    /* get_key's callers see only "no key"; the fetch itself, shared by every miss that
     * waited on it, is reported here, once, by the miss that started it. */
    if (started && fetched != HA_OK)
        ha_log(HA_LOG_WARN, "jwks_fetch_failed", NULL, "error", ha_err_str(fetched), "uri", c->uri,
               "cause", "unknown kid", NULL);
    return err;
}

enum ha_err ha_jwks_cache_get_key(struct ha_jwks_cache *c, const char *kid, EVP_PKEY **out)
{
    enum ha_err err;
    if (c == NULL)
        return HA_ERR_JWT_KEY;
    err = lookup(c, kid, out);
    if (err == HA_ERR_JWT_KEY)
        err = miss(c, kid, out);
    return err;
}

void ha_jwks_cache_get_stats(struct ha_jwks_cache *c, struct ha_jwks_cache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    pthread_mutex_unlock(&c->lock);
}

enum ha_jwks_fetch ha_jwks_cache_fetch_begin(struct ha_jwks_cache *c, bool on_miss,
                                             struct ha_http_request *req)
{
    long now = now_s(c);
    enum ha_jwks_fetch r = HA_JWKS_FETCH_START;

    pthread_mutex_lock(&c->lock);
    if (c->fetching) {
        if (on_miss)
            c->stats.coalesced_misses++;
        r = on_miss ? HA_JWKS_FETCH_JOIN : HA_JWKS_FETCH_NO;
    } else if (on_miss && window_closed(c, now)) {
        c->stats.throttled_misses++;
        r = HA_JWKS_FETCH_NO;
    } else if (!on_miss && !refresh_due(c, now)) {
        r = HA_JWKS_FETCH_NO;
    }
    if (r == HA_JWKS_FETCH_START) {
        if (on_miss) {
            c->missed_before = true;
            c->last_miss_fetch = now;
        }
        c->fetching = true;
        c->stats.fetches++;
        jwks_request(c, req);
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

enum ha_err ha_jwks_cache_fetch_end(struct ha_jwks_cache *c, enum ha_err err,
                                    const struct ha_http_response *resp)
{
    struct ha_jwks_set *set = NULL;
    struct snapshot *fresh = NULL;

    err = parse_answer(err, resp, &set);
    if (err == HA_OK) {
        fresh = snapshot_new(set);
        err = fresh == NULL ? HA_ERR_NOMEM : HA_OK;
    }
    pthread_mutex_lock(&c->lock);
    finish_fetch(c, fresh, err);
    pthread_mutex_unlock(&c->lock);
    return err;
}

const char *ha_jwks_cache_uri(const struct ha_jwks_cache *c)
{
    return c->uri;
}
