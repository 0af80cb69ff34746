/* The authorization decision cache.
 *
 * Entries live in a chained hash table indexed twice: by the first 8 bytes of their id (the
 * HMAC of credential and scope) and by those of their cred_id (the HMAC of the credential
 * alone), both sized once from max_entries, so a lookup and a credential's eviction walk one
 * short chain each. The HMAC key is random per process: the cache never holds a credential in
 * clear, and nobody outside can aim keys at one chain. Stored decisions are also on a recency
 * list (head: most recent) that eviction takes from the tail; a key in flight is not on it,
 * so it is never evicted, and it carries the queue of lookups that joined its fetch.
 *
 * One mutex guards everything. It is held only for table work and small copies: entries are
 * built before it is taken and freed (values wiped) after it is released, and waiters are
 * called without it, one at a time in join order. A cancel that finds its waiter being called
 * on another thread waits for that call to return (the `called` condition), so once cancel
 * returns the caller may free what fn would have touched; the cache never touches a waiter
 * once its fn has been called, since fn may free it. A completed flight leaves the table at
 * once (new lookups see the stored answer or start a fetch) but stays allocated, on the
 * running list, until its last waiter has been called. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include "houston_auth/authz_cache.h"

#define SECRET_LEN 32
#define TAG_KEY 0x01  /* id: 0x01 || len(cred) || cred || scope */
#define TAG_CRED 0x02 /* cred_id: 0x02 || cred */
#define STATUS_ALLOW 200
#define LRU_ALLOW 0
#define LRU_OTHER 1
#define STATUS_UNAUTHORIZED 401
#define STATUS_FORBIDDEN 403
#define NVALUES 3 /* authorization, username, email */
#define KEY_BYTES (sizeof(struct ha_authz_key) + HA_AUTHZ_ENTRY_OVERHEAD)

enum { W_IDLE, W_QUEUED }; /* ha_authz_waiter.state */

struct ha_authz_waitq {
    struct ha_authz_waiter *head, *tail;
};

struct entry {
    struct ha_authz_key key;
    struct entry *hnext, *hprev; /* chain by id; hnext also links entries to free */
    struct entry *cnext, *cprev; /* chain by cred_id */
    struct entry *lnext, *lprev; /* recency list, stored decisions only */
    struct ha_authz_waitq waiters;
    /* A flight whose fetch completed, calling its waiters (on the running list): */
    struct entry *rnext;
    const struct ha_authz_waiter *calling; /* the waiter being called, or NULL */
    pthread_t caller;                      /* the thread calling it */
    uint64_t expires_ms;
    size_t bytes;
    int status;
    bool in_flight;
    bool doomed; /* in flight when its credential was evicted: not stored */
    char *val[NVALUES];
    char data[]; /* the values, NUL-terminated */
};

_Static_assert(sizeof(struct entry) - sizeof(struct ha_authz_key) + NVALUES <=
                   HA_AUTHZ_ENTRY_OVERHEAD,
               "HA_AUTHZ_ENTRY_OVERHEAD must cover an entry's bookkeeping");

struct ha_authz_cache {
    pthread_mutex_t lock;  /* guards everything below but mac and secret */
    pthread_cond_t called; /* broadcast when a waiter's call returns */
    EVP_MAC *mac;
    unsigned char secret[SECRET_LEN];
    struct ha_authz_cache_limits lim;
    size_t mask;
    struct entry **by_id, **by_cred;
    /* Stored decisions, most recently used first: [LRU_ALLOW] the 200s, [LRU_OTHER] the rest.
     * Room is made from the denials first, and only a 200 or a key in flight may evict a 200,
     * so a flood of junk credentials (denied) cannot push out the people's allows; the keys in
     * flight that may are bounded by the gate's cap on misses in flight. */
    struct entry *lru_head[2], *lru_tail[2];
    size_t flights;
    struct entry *running; /* flights calling their waiters, linked by rnext */
    struct ha_authz_cache_stats st;
};

static size_t table_size(size_t n)
{
    size_t size = 1;
    while (size < n)
        size <<= 1;
    return size;
}

static bool limits_ok(const struct ha_authz_cache_limits *lim)
{
    return lim != NULL && lim->max_entries >= 1 && lim->max_entries <= HA_AUTHZ_MAX_ENTRIES &&
           lim->max_bytes >= KEY_BYTES;
}

static void cache_release(struct ha_authz_cache *c)
{
    OPENSSL_cleanse(c->secret, sizeof(c->secret));
    EVP_MAC_free(c->mac);
    free(c->by_id);
    free(c->by_cred);
    free(c);
}

enum ha_err ha_authz_cache_new(const struct ha_authz_cache_limits *lim, struct ha_authz_cache **out)
{
    struct ha_authz_cache *c = NULL;
    size_t size;
    enum ha_err err = HA_ERR_INVALID;

    if (!limits_ok(lim) || out == NULL)
        goto out;
    size = table_size(lim->max_entries);
    err = HA_ERR_NOMEM;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto out;
    c->by_id = calloc(size, sizeof(struct entry *));
    c->by_cred = calloc(size, sizeof(struct entry *));
    if (c->by_id == NULL || c->by_cred == NULL)
        goto out;
    err = HA_ERR_CRYPTO;
    c->mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (c->mac == NULL || RAND_bytes(c->secret, sizeof(c->secret)) != 1)
        goto out;
    err = HA_ERR_NOMEM;
    if (pthread_mutex_init(&c->lock, NULL) != 0)
        goto out;
    if (pthread_cond_init(&c->called, NULL) != 0) {
        pthread_mutex_destroy(&c->lock);
        goto out;
    }
    c->lim = *lim;
    c->mask = size - 1;
    *out = c;
    c = NULL;
    err = HA_OK;
out:
    if (c != NULL)
        cache_release(c);
    return err;
}

/* Wipes the values and frees the entry. */
static void entry_free(struct entry *e)
{
    size_t data_len;

    if (e->in_flight)
        data_len = 0;
    else
        data_len = e->bytes - KEY_BYTES + NVALUES;
    OPENSSL_cleanse(e->data, data_len);
    free(e);
}

/* Frees a list of entries linked by hnext. */
static void free_entries(struct entry *e)
{
    while (e != NULL) {
        struct entry *next = e->hnext;
        entry_free(e);
        e = next;
    }
}

void ha_authz_cache_free(struct ha_authz_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i <= c->mask; i++)
        free_entries(c->by_id[i]);
    pthread_cond_destroy(&c->called);
    pthread_mutex_destroy(&c->lock);
    cache_release(c);
}

/* HMAC-SHA256 of pre || a || b under the cache's secret. */
static enum ha_err mac3(const struct ha_authz_cache *c, const unsigned char *pre, size_t pre_len,
                        const void *a, size_t a_len, const void *b, size_t b_len,
                        unsigned char out[HA_AUTHZ_ID_LEN])
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(c->mac);
    OSSL_PARAM params[2];
    size_t n = 0;
    enum ha_err err = HA_ERR_CRYPTO;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (ctx == NULL || EVP_MAC_init(ctx, c->secret, sizeof(c->secret), params) != 1 ||
        EVP_MAC_update(ctx, pre, pre_len) != 1)
        goto out;
    if (a_len > 0 && EVP_MAC_update(ctx, a, a_len) != 1)
        goto out;
    if (b_len > 0 && EVP_MAC_update(ctx, b, b_len) != 1)
        goto out;
    if (EVP_MAC_final(ctx, out, &n, HA_AUTHZ_ID_LEN) != 1 || n != HA_AUTHZ_ID_LEN)
        goto out;
    err = HA_OK;
out:
    EVP_MAC_CTX_free(ctx);
    return err;
}

static enum ha_err cred_id(const struct ha_authz_cache *c, const void *cred, size_t cred_len,
                           unsigned char out[HA_AUTHZ_ID_LEN])
{
    static const unsigned char tag = TAG_CRED;

    if (cred == NULL && cred_len > 0)
        return HA_ERR_INVALID;
    return mac3(c, &tag, 1, cred, cred_len, NULL, 0, out);
}

enum ha_err ha_authz_cache_key(const struct ha_authz_cache *c, const void *cred, size_t cred_len,
                               const void *scope, size_t scope_len, struct ha_authz_key *out)
{
    unsigned char pre[9];
    struct ha_authz_key k = {{0}, {0}};
    enum ha_err err;
    uint64_t len = cred_len;

    if ((cred == NULL && cred_len > 0) || (scope == NULL && scope_len > 0))
        return HA_ERR_INVALID;
    /* The credential's length first, so no (credential, scope) pair reads as another. */
    pre[0] = TAG_KEY;
    for (int i = 0; i < 8; i++)
        pre[1 + i] = (unsigned char)(len >> (56 - 8 * i));
    err = mac3(c, pre, sizeof(pre), cred, cred_len, scope, scope_len, k.id);
    if (err == HA_OK)
        err = cred_id(c, cred, cred_len, k.cred_id);
    if (err == HA_OK)
        *out = k;
    return err;
}

static size_t slot(const struct ha_authz_cache *c, const unsigned char *id)
{
    uint64_t h;

    memcpy(&h, id, sizeof(h));
    return (size_t)h & c->mask;
}

static struct entry *find(const struct ha_authz_cache *c, const struct ha_authz_key *k)
{
    struct entry *e = c->by_id[slot(c, k->id)];

    while (e != NULL && CRYPTO_memcmp(e->key.id, k->id, HA_AUTHZ_ID_LEN) != 0)
        e = e->hnext;
    return e;
}

static int lru_of(const struct entry *e)
{
    return e->status == STATUS_ALLOW ? LRU_ALLOW : LRU_OTHER;
}

static void lru_remove(struct ha_authz_cache *c, struct entry *e)
{
    int l = lru_of(e);
    if (e->lprev != NULL)
        e->lprev->lnext = e->lnext;
    else
        c->lru_head[l] = e->lnext;
    if (e->lnext != NULL)
        e->lnext->lprev = e->lprev;
    else
        c->lru_tail[l] = e->lprev;
    e->lnext = e->lprev = NULL;
}

static void lru_push(struct ha_authz_cache *c, struct entry *e)
{
    int l = lru_of(e);
    e->lprev = NULL;
    e->lnext = c->lru_head[l];
    if (c->lru_head[l] != NULL)
        c->lru_head[l]->lprev = e;
    else
        c->lru_tail[l] = e;
    c->lru_head[l] = e;
}

static void link_entry(struct ha_authz_cache *c, struct entry *e)
{
    struct entry **h = &c->by_id[slot(c, e->key.id)];
    struct entry **cr = &c->by_cred[slot(c, e->key.cred_id)];

    e->hprev = NULL;
    e->hnext = *h;
    if (*h != NULL)
        (*h)->hprev = e;
    *h = e;
    e->cprev = NULL;
    e->cnext = *cr;
    if (*cr != NULL)
        (*cr)->cprev = e;
    *cr = e;
    if (e->in_flight)
        c->flights++;
    else
        lru_push(c, e);
    c->st.entries++;
    c->st.bytes += e->bytes;
}

/* Takes e out of the table. */
static void detach(struct ha_authz_cache *c, struct entry *e)
{
    if (e->hprev != NULL)
        e->hprev->hnext = e->hnext;
    else
        c->by_id[slot(c, e->key.id)] = e->hnext;
    if (e->hnext != NULL)
        e->hnext->hprev = e->hprev;
    if (e->cprev != NULL)
        e->cprev->cnext = e->cnext;
    else
        c->by_cred[slot(c, e->key.cred_id)] = e->cnext;
    if (e->cnext != NULL)
        e->cnext->cprev = e->cprev;
    if (e->in_flight)
        c->flights--;
    else
        lru_remove(c, e);
    c->st.entries--;
    c->st.bytes -= e->bytes;
}

/* Onto *dead (linked by hnext), to be freed once the lock is released. */
static void bury(struct entry *e, struct entry **dead)
{
    e->hnext = *dead;
    *dead = e;
}

static void unlink_entry(struct ha_authz_cache *c, struct entry *e, struct entry **dead)
{
    detach(c, e);
    bury(e, dead);
}

/* Evicts least recently used decisions until one more entry of `bytes` fits, denials first
 * and allows only when allows_may_go; false when it cannot fit beside the keys in flight (then
 * nothing was evicted) or beside the allows it may not evict. */
static bool make_room(struct ha_authz_cache *c, size_t bytes, bool allows_may_go, uint64_t now_ms,
                      struct entry **dead)
{
    if (c->flights + 1 > c->lim.max_entries || bytes > c->lim.max_bytes ||
        c->flights * KEY_BYTES > c->lim.max_bytes - bytes)
        return false;
    while (c->st.entries + 1 > c->lim.max_entries || c->st.bytes > c->lim.max_bytes - bytes) {
        struct entry *e = c->lru_tail[LRU_OTHER];
        if (e == NULL && allows_may_go)
            e = c->lru_tail[LRU_ALLOW];
        if (e == NULL) /* only allows left, which a denial may not evict */
            return false;
        if (now_ms >= e->expires_ms)
            c->st.expirations++;
        else
            c->st.evictions++;
        unlink_entry(c, e, dead);
    }
    return true;
}

static void waitq_push(struct ha_authz_waitq *q, struct ha_authz_waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail != NULL)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->queue = q;
}

static void waitq_unlink(struct ha_authz_waitq *q, struct ha_authz_waiter *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
    w->queue = NULL;
    w->state = W_IDLE;
}

/* A copy of s (len bytes and a NUL), or NULL. */
static char *copy_value(const char *s, size_t len)
{
    char *p = malloc(len + 1);

    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

void ha_authz_decision_cleanup(struct ha_authz_decision *d)
{
    if (d == NULL)
        return;
    if (d->authorization != NULL)
        OPENSSL_cleanse(d->authorization, strlen(d->authorization));
    free(d->authorization);
    free(d->username);
    free(d->email);
    d->authorization = d->username = d->email = NULL;
}

/* Fills *out with copies of e's decision; false on allocation failure. */
static bool copy_out(const struct entry *e, struct ha_authz_decision *out)
{
    struct ha_authz_decision d = {e->status, NULL, NULL, NULL};
    char **dst[NVALUES] = {&d.authorization, &d.username, &d.email};

    for (int i = 0; i < NVALUES; i++) {
        if (e->val[i] == NULL)
            continue;
        *dst[i] = copy_value(e->val[i], strlen(e->val[i]));
        if (*dst[i] == NULL) {
            ha_authz_decision_cleanup(&d);
            return false;
        }
    }
    *out = d;
    return true;
}

static enum ha_authz_lookup start(struct ha_authz_cache *c, const struct ha_authz_key *k,
                                  uint64_t now_ms, struct entry **dead)
{
    struct entry *e;

    c->st.misses++;
    if (!make_room(c, KEY_BYTES, true, now_ms, dead))
        return HA_AUTHZ_FULL;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return HA_AUTHZ_FULL;
    e->key = *k;
    e->in_flight = true;
    e->bytes = KEY_BYTES;
    link_entry(c, e);
    return HA_AUTHZ_START;
}

static enum ha_authz_lookup join(struct ha_authz_cache *c, struct entry *e, ha_authz_waiter_fn fn,
                                 void *arg, struct ha_authz_waiter *w)
{
    if (e->doomed || fn == NULL || w == NULL) {
        c->st.misses++;
        return HA_AUTHZ_FULL;
    }
    w->fn = fn;
    w->arg = arg;
    w->state = W_QUEUED;
    waitq_push(&e->waiters, w);
    c->st.coalesced++;
    return HA_AUTHZ_JOIN;
}

static enum ha_authz_lookup hit(struct ha_authz_cache *c, struct entry *e,
                                struct ha_authz_decision *out)
{
    if (!copy_out(e, out)) {
        c->st.misses++;
        return HA_AUTHZ_FULL;
    }
    lru_remove(c, e);
    lru_push(c, e);
    c->st.hits++;
    return HA_AUTHZ_HIT;
}

/* k's entry (a stored decision or a key in flight), or NULL; a decision past its ttl is
 * dropped (onto *dead) and counted as an expiration. Under the lock. */
static struct entry *find_live(struct ha_authz_cache *c, const struct ha_authz_key *k,
                               uint64_t now_ms, struct entry **dead)
{
    struct entry *e = find(c, k);
    if (e != NULL && !e->in_flight && now_ms >= e->expires_ms) {
        c->st.expirations++;
        unlink_entry(c, e, dead);
        e = NULL;
    }
    return e;
}

enum ha_authz_lookup ha_authz_cache_lookup(struct ha_authz_cache *c, const struct ha_authz_key *k,
                                           uint64_t now_ms, struct ha_authz_decision *out,
                                           ha_authz_waiter_fn fn, void *arg,
                                           struct ha_authz_waiter *w)
{
    struct entry *dead = NULL;
    struct entry *e;
    enum ha_authz_lookup r;

    if (w != NULL)
        memset(w, 0, sizeof(*w));
    pthread_mutex_lock(&c->lock);
    e = find_live(c, k, now_ms, &dead);
    if (e == NULL)
        r = start(c, k, now_ms, &dead);
    else if (e->in_flight)
        r = join(c, e, fn, arg, w);
    else
        r = hit(c, e, out);
    pthread_mutex_unlock(&c->lock);
    free_entries(dead);
    return r;
}

bool ha_authz_cache_peek(struct ha_authz_cache *c, const struct ha_authz_key *k, uint64_t now_ms,
                         struct ha_authz_decision *out)
{
    struct entry *dead = NULL;
    struct entry *e;
    bool found = false;

    pthread_mutex_lock(&c->lock);
    e = find_live(c, k, now_ms, &dead);
    if (e != NULL && !e->in_flight)
        found = hit(c, e, out) == HA_AUTHZ_HIT;
    pthread_mutex_unlock(&c->lock);
    free_entries(dead);
    return found;
}

/* Whether w's fn is being called now by a thread other than this one. */
static bool running_elsewhere(const struct ha_authz_cache *c, const struct ha_authz_waiter *w)
{
    for (const struct entry *f = c->running; f != NULL; f = f->rnext) {
        if (f->calling == w && !pthread_equal(f->caller, pthread_self()))
            return true;
    }
    return false;
}

bool ha_authz_cache_cancel(struct ha_authz_cache *c, struct ha_authz_waiter *w)
{
    bool removed = false;

    if (w == NULL)
        return false;
    pthread_mutex_lock(&c->lock);
    if (w->state == W_QUEUED) {
        waitq_unlink(w->queue, w);
        removed = true;
    }
    while (running_elsewhere(c, w))
        pthread_cond_wait(&c->called, &c->lock);
    pthread_mutex_unlock(&c->lock);
    return removed;
}

/* How long d is kept (0: not stored). */
static uint64_t keep_for(const struct ha_authz_cache *c, const struct ha_authz_decision *d,
                         uint64_t now_ms, uint64_t not_after_ms)
{
    uint64_t ttl;

    if (d->status == STATUS_UNAUTHORIZED || d->status == STATUS_FORBIDDEN)
        return c->lim.ttl_deny_ms;
    if (d->status != STATUS_ALLOW)
        return 0;
    ttl = c->lim.ttl_allow_ms;
    if (not_after_ms != 0) {
        if (not_after_ms <= now_ms)
            return 0;
        if (not_after_ms - now_ms < ttl)
            ttl = not_after_ms - now_ms;
    }
    return ttl;
}

/* A stored entry for d, or NULL (a value over HA_AUTHZ_VALUE_MAX, or no memory). */
static struct entry *entry_new(const struct ha_authz_key *k, const struct ha_authz_decision *d,
                               uint64_t expires_ms)
{
    const char *v[NVALUES] = {d->authorization, d->username, d->email};
    size_t len[NVALUES], total = 0, at = 0;
    struct entry *e;

    for (int i = 0; i < NVALUES; i++) {
        len[i] = v[i] != NULL ? strnlen(v[i], HA_AUTHZ_VALUE_MAX + 1) : 0;
        if (len[i] > HA_AUTHZ_VALUE_MAX)
            return NULL;
        total += len[i];
    }
    e = calloc(1, sizeof(*e) + total + NVALUES);
    if (e == NULL)
        return NULL;
    e->key = *k;
    e->status = d->status;
    e->expires_ms = expires_ms;
    e->bytes = KEY_BYTES + total;
    for (int i = 0; i < NVALUES; i++) {
        if (v[i] == NULL)
            continue;
        e->val[i] = e->data + at;
        memcpy(e->val[i], v[i], len[i]);
        at += len[i] + 1;
    }
    return e;
}

/* Takes k's entry out of the table: a stored one onto *dead; a flight is returned. */
static struct entry *take_key(struct ha_authz_cache *c, const struct ha_authz_key *k,
                              struct entry **dead)
{
    struct entry *e = find(c, k);

    if (e == NULL)
        return NULL;
    detach(c, e);
    if (e->in_flight)
        return e;
    bury(e, dead);
    return NULL;
}

/* Calls each waiter of flight f with d, in join order, the lock released around each call;
 * then frees f. f is on the running list, so a cancel can tell its waiter is being called. */
static void call_waiters(struct ha_authz_cache *c, struct entry *f,
                         const struct ha_authz_decision *d)
{
    pthread_mutex_lock(&c->lock);
    while (f->waiters.head != NULL) {
        struct ha_authz_waiter *w = f->waiters.head;
        ha_authz_waiter_fn fn = w->fn;
        void *arg = w->arg;
        waitq_unlink(&f->waiters, w);
        f->calling = w;
        pthread_mutex_unlock(&c->lock);
        fn(arg, d);
        pthread_mutex_lock(&c->lock);
        f->calling = NULL;
        pthread_cond_broadcast(&c->called);
    }
    for (struct entry **p = &c->running; *p != NULL; p = &(*p)->rnext) {
        if (*p == f) {
            *p = f->rnext;
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    entry_free(f);
}

/* Links fresh in, making room; else onto *dead. */
static void store(struct ha_authz_cache *c, struct entry *fresh, uint64_t now_ms,
                  struct entry **dead)
{
    if (make_room(c, fresh->bytes, fresh->status == STATUS_ALLOW, now_ms, dead))
        link_entry(c, fresh);
    else
        bury(fresh, dead);
}

void ha_authz_cache_complete(struct ha_authz_cache *c, const struct ha_authz_key *k,
                             const struct ha_authz_decision *d, uint64_t now_ms,
                             uint64_t not_after_ms)
{
    struct entry *fresh = NULL, *dead = NULL, *flight;
    uint64_t ttl = d != NULL ? keep_for(c, d, now_ms, not_after_ms) : 0;

    if (ttl > 0)
        fresh = entry_new(k, d, ttl > UINT64_MAX - now_ms ? UINT64_MAX : now_ms + ttl);
    pthread_mutex_lock(&c->lock);
    flight = take_key(c, k, &dead);
    if (fresh != NULL && flight != NULL && flight->doomed)
        bury(fresh, &dead);
    else if (fresh != NULL)
        store(c, fresh, now_ms, &dead);
    if (flight != NULL && flight->waiters.head != NULL) {
        flight->caller = pthread_self();
        flight->rnext = c->running;
        c->running = flight;
    } else if (flight != NULL) {
        bury(flight, &dead);
        flight = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    free_entries(dead);
    if (flight != NULL)
        call_waiters(c, flight, d);
}

enum ha_err ha_authz_cache_evict_credential(struct ha_authz_cache *c, const void *cred,
                                            size_t cred_len, size_t *removed)
{
    unsigned char id[HA_AUTHZ_ID_LEN];
    struct entry *dead = NULL;
    struct entry *e;
    size_t n = 0;
    enum ha_err err = cred_id(c, cred, cred_len, id);

    if (err != HA_OK)
        return err;
    pthread_mutex_lock(&c->lock);
    e = c->by_cred[slot(c, id)];
    while (e != NULL) {
        struct entry *next = e->cnext;
        if (CRYPTO_memcmp(e->key.cred_id, id, HA_AUTHZ_ID_LEN) == 0) {
            if (e->in_flight) {
                e->doomed = true;
            } else {
                unlink_entry(c, e, &dead);
                n++;
            }
        }
        e = next;
    }
    pthread_mutex_unlock(&c->lock);
    free_entries(dead);
    if (removed != NULL)
        *removed = n;
    return HA_OK;
}

void ha_authz_cache_get_stats(struct ha_authz_cache *c, struct ha_authz_cache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->st;
    pthread_mutex_unlock(&c->lock);
}
