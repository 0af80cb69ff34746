/* authz_cache: what a caller of GET /v1/authorization sees: hits and their copies, how long
 * each kind of answer is kept, that failures and other statuses are never kept, coalesced
 * misses and their waiters (order, cancel), logout's eviction, key separation, LRU under
 * both limits, and four threads at once (run under ASan and TSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>
#include "houston_auth/authz_cache.h"

#define T0 1000000ULL
#define ALLOW_MS 60000ULL
#define DENY_MS 5000ULL
#define KB (sizeof(struct ha_authz_key) + HA_AUTHZ_ENTRY_OVERHEAD)
#define JOINERS 99
#define MAXREC 128

static struct ha_authz_cache *new_cache(size_t entries, size_t bytes, uint64_t allow, uint64_t deny)
{
    struct ha_authz_cache_limits lim = {entries, bytes, allow, deny};
    struct ha_authz_cache *c = NULL;
    assert_int_equal(ha_authz_cache_new(&lim, &c), HA_OK);
    assert_non_null(c);
    return c;
}

static struct ha_authz_cache *std_cache(void)
{
    return new_cache(1024, 1024 * 1024, ALLOW_MS, DENY_MS);
}

static struct ha_authz_key key(const struct ha_authz_cache *c, const char *cred, const char *scope)
{
    struct ha_authz_key k;
    assert_int_equal(ha_authz_cache_key(c, cred, strlen(cred), scope, strlen(scope), &k), HA_OK);
    return k;
}

static struct ha_authz_decision dec(int status, const char *authz, const char *user,
                                    const char *email)
{
    struct ha_authz_decision d = {status, (char *)authz, (char *)user, (char *)email};
    return d;
}

static enum ha_authz_lookup look(struct ha_authz_cache *c, const struct ha_authz_key *k,
                                 uint64_t now)
{
    struct ha_authz_decision out = {0};
    enum ha_authz_lookup r = ha_authz_cache_lookup(c, k, now, &out, NULL, NULL, NULL);
    if (r == HA_AUTHZ_HIT)
        ha_authz_decision_cleanup(&out);
    return r;
}

/* Lookup that must START, then complete with d. */
static void fill(struct ha_authz_cache *c, const struct ha_authz_key *k,
                 const struct ha_authz_decision *d, uint64_t now, uint64_t not_after)
{
    assert_int_equal(look(c, k, now), HA_AUTHZ_START);
    ha_authz_cache_complete(c, k, d, now, not_after);
}

static struct ha_authz_cache_stats stats(struct ha_authz_cache *c)
{
    struct ha_authz_cache_stats st;
    ha_authz_cache_get_stats(c, &st);
    return st;
}

/* What the waiters saw, in call order. */
struct record {
    int n;
    int who[MAXREC];
    int status[MAXREC]; /* -1: failed */
    char authz[MAXREC][32];
};

struct joiner {
    struct record *rec;
    int id;
    struct ha_authz_waiter w;
};

static void on_done(void *arg, const struct ha_authz_decision *d)
{
    struct joiner *j = arg;
    struct record *r = j->rec;
    if (r->n >= MAXREC)
        return;
    r->who[r->n] = j->id;
    r->status[r->n] = d != NULL ? d->status : -1;
    snprintf(r->authz[r->n], sizeof(r->authz[0]), "%s",
             d != NULL && d->authorization != NULL ? d->authorization : "");
    r->n++;
}

static void join_one(struct ha_authz_cache *c, const struct ha_authz_key *k, struct joiner *j,
                     struct record *rec, int id, uint64_t now)
{
    struct ha_authz_decision out = {0};
    j->rec = rec;
    j->id = id;
    assert_int_equal(ha_authz_cache_lookup(c, k, now, &out, on_done, j, &j->w), HA_AUTHZ_JOIN);
}

static void test_hit_after_complete(void **state)
{
    struct ha_authz_cache *c = std_cache();
    struct ha_authz_key k = key(c, "cookie-1", "deployments.example.com");
    struct ha_authz_decision d = dec(200, "Bearer eyJ.a.b", "ada", "ada@example.com");
    struct ha_authz_decision out = {0};
    (void)state;
    fill(c, &k, &d, T0, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ha_authz_cache_lookup(c, &k, T0 + 1, &out, NULL, NULL, NULL),
                         HA_AUTHZ_HIT);
        assert_int_equal(out.status, 200);
        assert_string_equal(out.authorization, "Bearer eyJ.a.b");
        assert_string_equal(out.username, "ada");
        assert_string_equal(out.email, "ada@example.com");
        assert_ptr_not_equal(out.authorization, d.authorization);
        out.authorization[0] = 'X'; /* a copy: the cached one does not change */
        ha_authz_decision_cleanup(&out);
        assert_null(out.authorization);
    }
    /* Absent headers stay absent. */
    k = key(c, "cookie-2", "deployments.example.com");
    d = dec(200, NULL, "bob", NULL);
    fill(c, &k, &d, T0, 0);
    assert_int_equal(ha_authz_cache_lookup(c, &k, T0, &out, NULL, NULL, NULL), HA_AUTHZ_HIT);
    assert_null(out.authorization);
    assert_string_equal(out.username, "bob");
    assert_null(out.email);
    ha_authz_decision_cleanup(&out);
    ha_authz_decision_cleanup(NULL);
    ha_authz_cache_free(c);
    ha_authz_cache_free(NULL);
}

static void test_allow_ttl(void **state)
{
    struct ha_authz_cache *c = std_cache();
    struct ha_authz_key k = key(c, "cookie", "a.example.com");
    struct ha_authz_decision d = dec(200, "Bearer x", "u", "e");
    (void)state;
    fill(c, &k, &d, T0, 0);
    assert_int_equal(look(c, &k, T0 + ALLOW_MS - 1), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &k, T0 + ALLOW_MS), HA_AUTHZ_START);
    assert_int_equal(stats(c).expirations, 1);
    /* The token Houston minted expires in 5 s: kept 5 s, not the minute. */
    ha_authz_cache_complete(c, &k, &d, T0 + ALLOW_MS, T0 + ALLOW_MS + 5000);
    assert_int_equal(look(c, &k, T0 + ALLOW_MS + 4999), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &k, T0 + ALLOW_MS + 5000), HA_AUTHZ_START);
    /* A not_after later than the ttl does not lengthen it. */
    ha_authz_cache_complete(c, &k, &d, T0 * 2, T0 * 2 + ALLOW_MS * 10);
    assert_int_equal(look(c, &k, T0 * 2 + ALLOW_MS - 1), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &k, T0 * 2 + ALLOW_MS), HA_AUTHZ_START);
    /* Already expired: not stored. */
    ha_authz_cache_complete(c, &k, &d, T0 * 3, T0 * 3);
    assert_int_equal(look(c, &k, T0 * 3), HA_AUTHZ_START);
    ha_authz_cache_free(c);
}

static void test_deny_ttl(void **state)
{
    struct ha_authz_cache *c = std_cache();
    const int statuses[] = {401, 403};
    struct ha_authz_decision out = {0};
    (void)state;
    for (int i = 0; i < 2; i++) {
        struct ha_authz_key k = key(c, i == 0 ? "c401" : "c403", "s");
        struct ha_authz_decision d = dec(statuses[i], NULL, NULL, NULL);
        /* not_after applies to 200s only. */
        fill(c, &k, &d, T0, T0 + 1);
        assert_int_equal(ha_authz_cache_lookup(c, &k, T0 + DENY_MS - 1, &out, NULL, NULL, NULL),
                         HA_AUTHZ_HIT);
        assert_int_equal(out.status, statuses[i]);
        ha_authz_decision_cleanup(&out);
        assert_int_equal(look(c, &k, T0 + DENY_MS), HA_AUTHZ_START);
    }
    ha_authz_cache_free(c);
}

/* 500, 404, 302 and failed fetches reach their waiters but are never kept. */
static void test_never_stored(void **state)
{
    struct ha_authz_cache *c = std_cache();
    struct ha_authz_key k = key(c, "cookie", "s");
    const int statuses[] = {500, 404, 302, 0};
    struct record rec = {0};
    struct joiner j[4];
    (void)state;
    for (int i = 0; i < 4; i++) {
        struct ha_authz_decision d = dec(statuses[i], "Bearer t", NULL, NULL);
        assert_int_equal(look(c, &k, T0), HA_AUTHZ_START);
        join_one(c, &k, &j[i], &rec, i, T0);
        ha_authz_cache_complete(c, &k, statuses[i] != 0 ? &d : NULL, T0, 0);
        assert_int_equal(rec.n, i + 1);
        assert_int_equal(rec.status[i], statuses[i] != 0 ? statuses[i] : -1);
        assert_int_equal(stats(c).entries, 0);
    }
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_START);
    ha_authz_cache_complete(c, &k, NULL, T0, 0);
    assert_int_equal(stats(c).bytes, 0);
    ha_authz_cache_free(c);
}

static void test_coalesce(void **state)
{
    struct ha_authz_cache *c = std_cache();
    struct ha_authz_key k = key(c, "cookie", "s");
    struct ha_authz_decision d = dec(200, "Bearer shared", "u", "e");
    struct record *rec = calloc(1, sizeof(*rec));
    struct joiner *j = calloc(JOINERS, sizeof(*j));
    struct ha_authz_cache_stats st;
    (void)state;
    assert_non_null(rec);
    assert_non_null(j);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_START);
    for (int i = 0; i < JOINERS; i++)
        join_one(c, &k, &j[i], rec, i, T0);
    assert_int_equal(rec->n, 0);
    ha_authz_cache_complete(c, &k, &d, T0, 0);
    assert_int_equal(rec->n, JOINERS);
    for (int i = 0; i < JOINERS; i++) {
        assert_int_equal(rec->who[i], i);
        assert_int_equal(rec->status[i], 200);
        assert_string_equal(rec->authz[i], "Bearer shared");
    }
    /* A second complete of the same key calls nobody again. */
    ha_authz_cache_complete(c, &k, &d, T0, 0);
    assert_int_equal(rec->n, JOINERS);
    st = stats(c);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.coalesced, JOINERS);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_HIT);
    free(j);
    free(rec);
    ha_authz_cache_free(c);
}

struct self_cancel {
    struct ha_authz_cache *c;
    struct ha_authz_key k;
    struct ha_authz_waiter w;
    int calls;
    bool cancelled;
    enum ha_authz_lookup inner;
};

/* Cancels its own waiter and looks the key up again, from inside its call. */
static void on_done_reenter(void *arg, const struct ha_authz_decision *d)
{
    struct self_cancel *s = arg;
    (void)d;
    s->calls++;
    s->cancelled = ha_authz_cache_cancel(s->c, &s->w);
    s->inner = look(s->c, &s->k, T0);
}

static void test_cancel(void **state)
{
    struct ha_authz_cache *c = std_cache();
    struct ha_authz_key k = key(c, "cookie", "s");
    struct ha_authz_decision d = dec(403, NULL, NULL, NULL);
    struct ha_authz_decision out = {0};
    struct ha_authz_waiter never;
    struct record rec = {0};
    struct joiner j[3];
    struct self_cancel s = {.c = c, .k = k};
    (void)state;
    assert_int_equal(ha_authz_cache_lookup(c, &k, T0, &out, on_done, &j[0], &never),
                     HA_AUTHZ_START);
    assert_false(ha_authz_cache_cancel(c, &never)); /* never queued */
    for (int i = 0; i < 3; i++)
        join_one(c, &k, &j[i], &rec, i, T0);
    assert_int_equal(ha_authz_cache_lookup(c, &k, T0, &out, on_done_reenter, &s, &s.w),
                     HA_AUTHZ_JOIN);
    assert_true(ha_authz_cache_cancel(c, &j[1].w));
    assert_false(ha_authz_cache_cancel(c, &j[1].w));
    ha_authz_cache_complete(c, &k, &d, T0, 0);
    assert_int_equal(rec.n, 2);
    assert_int_equal(rec.who[0], 0);
    assert_int_equal(rec.who[1], 2);
    assert_false(ha_authz_cache_cancel(c, &j[0].w)); /* already ran */
    assert_int_equal(s.calls, 1);
    assert_false(s.cancelled);
    assert_int_equal(s.inner, HA_AUTHZ_HIT); /* stored before the waiters, no lock held */
    ha_authz_cache_free(c);
}

struct slow {
    struct ha_authz_cache *c;
    struct ha_authz_key k;
    struct ha_authz_waiter w;
    atomic_int entered, left;
};

static void on_done_slow(void *arg, const struct ha_authz_decision *d)
{
    struct slow *s = arg;
    struct timespec ts = {0, 100 * 1000 * 1000};
    (void)d;
    atomic_store(&s->entered, 1);
    nanosleep(&ts, NULL);
    atomic_store(&s->left, 1);
}

static void *complete_thread(void *arg)
{
    struct slow *s = arg;
    struct ha_authz_decision d = dec(200, NULL, NULL, NULL);
    ha_authz_cache_complete(s->c, &s->k, &d, T0, 0);
    return NULL;
}

/* A cancel while the waiter is being called returns only after the call has. */
static void test_cancel_waits_for_call(void **state)
{
    struct slow *s = calloc(1, sizeof(*s));
    struct ha_authz_decision out = {0};
    struct timespec ts = {0, 1000 * 1000};
    pthread_t t;
    (void)state;
    assert_non_null(s);
    s->c = std_cache();
    s->k = key(s->c, "cookie", "s");
    assert_int_equal(look(s->c, &s->k, T0), HA_AUTHZ_START);
    assert_int_equal(ha_authz_cache_lookup(s->c, &s->k, T0, &out, on_done_slow, s, &s->w),
                     HA_AUTHZ_JOIN);
    assert_int_equal(pthread_create(&t, NULL, complete_thread, s), 0);
    for (int i = 0; i < 10000 && atomic_load(&s->entered) == 0; i++)
        nanosleep(&ts, NULL);
    assert_int_equal(atomic_load(&s->entered), 1);
    assert_false(ha_authz_cache_cancel(s->c, &s->w));
    assert_int_equal(atomic_load(&s->left), 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    ha_authz_cache_free(s->c);
    free(s);
}

static void test_evict_credential(void **state)
{
    struct ha_authz_cache *c = std_cache();
    const char *scopes[] = {"a.example.com", "b.example.com", "c.example.com/r1"};
    struct ha_authz_decision d = dec(200, "Bearer t", "u", "e");
    struct ha_authz_key other = key(c, "cookie-B", scopes[0]);
    struct ha_authz_key k;
    struct record rec = {0};
    struct joiner j;
    size_t n = 99;
    (void)state;
    for (int i = 0; i < 3; i++) {
        k = key(c, "cookie-A", scopes[i]);
        fill(c, &k, &d, T0, 0);
    }
    fill(c, &other, &d, T0, 0);
    assert_int_equal(ha_authz_cache_evict_credential(c, "cookie-A", 8, &n), HA_OK);
    assert_int_equal(n, 3);
    assert_int_equal(stats(c).entries, 1);
    assert_int_equal(look(c, &other, T0), HA_AUTHZ_HIT);
    for (int i = 0; i < 3; i++) {
        k = key(c, "cookie-A", scopes[i]);
        assert_int_equal(look(c, &k, T0), HA_AUTHZ_START); /* now in flight */
    }
    /* A logout during a fetch: its waiters get the answer, the cache does not keep it, and
     * lookups meanwhile fetch on their own instead of joining the stale fetch. */
    assert_int_equal(ha_authz_cache_evict_credential(c, "cookie-A", 8, &n), HA_OK);
    assert_int_equal(n, 0);
    k = key(c, "cookie-A", scopes[0]);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_FULL);
    ha_authz_cache_complete(c, &k, &d, T0, 0);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_START);
    join_one(c, &k, &j, &rec, 7, T0);
    ha_authz_cache_complete(c, &k, &d, T0, 0);
    assert_int_equal(rec.n, 1);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_HIT);
    /* A prefix of the credential is another credential. */
    assert_int_equal(ha_authz_cache_evict_credential(c, "cookie-", 7, NULL), HA_OK);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &other, T0), HA_AUTHZ_HIT);
    assert_int_equal(ha_authz_cache_evict_credential(c, NULL, 3, &n), HA_ERR_INVALID);
    ha_authz_cache_free(c);
}

/* No other (credential, scope) ever hits an entry: not a prefix, not a shifted boundary. */
static void test_key_separation(void **state)
{
    struct ha_authz_cache *c = std_cache();
    struct ha_authz_cache *c2 = std_cache();
    struct ha_authz_key k = key(c, "abcdef", "host.example.com");
    struct ha_authz_key again = key(c, "abcdef", "host.example.com");
    const char *creds[] = {"abcdef", "abcde", "abcdefh", "abcdeg", "abc", ""};
    const char *scopes[] = {"host.example.com",    "fhost.example.com",     "host.example.co", "ef",
                            "defhost.example.com", "abcdefhost.example.com"};
    struct ha_authz_decision d = dec(200, "Bearer t", NULL, NULL);
    struct ha_authz_key other;
    (void)state;
    assert_memory_equal(&k, &again, sizeof(k));
    other = key(c2, "abcdef", "host.example.com"); /* another process's secret */
    assert_memory_not_equal(k.id, other.id, sizeof(k.id));
    fill(c, &k, &d, T0, 0);
    for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++) {
        for (size_t s = 0; s < sizeof(scopes) / sizeof(scopes[0]); s++) {
            if (i == 0 && s == 0)
                continue;
            other = key(c, creds[i], scopes[s]);
            assert_memory_not_equal(other.id, k.id, sizeof(k.id));
            assert_int_equal(look(c, &other, T0), HA_AUTHZ_START);
            ha_authz_cache_complete(c, &other, NULL, T0, 0);
        }
    }
    /* Same credential, other scope: same cred_id, other id. */
    other = key(c, "abcdef", "other.example.com");
    assert_memory_equal(other.cred_id, k.cred_id, sizeof(k.cred_id));
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_HIT);
    assert_int_equal(ha_authz_cache_key(c, NULL, 1, "s", 1, &other), HA_ERR_INVALID);
    assert_int_equal(ha_authz_cache_key(c, "c", 1, NULL, 1, &other), HA_ERR_INVALID);
    ha_authz_cache_free(c2);
    ha_authz_cache_free(c);
}

static void test_lru_entries(void **state)
{
    struct ha_authz_cache *c = new_cache(3, 1024 * 1024, ALLOW_MS, DENY_MS);
    struct ha_authz_decision d = dec(200, NULL, NULL, NULL);
    struct ha_authz_key k[4];
    char cred[8];
    (void)state;
    for (int i = 0; i < 4; i++) {
        snprintf(cred, sizeof(cred), "c%d", i);
        k[i] = key(c, cred, "s");
    }
    for (int i = 0; i < 3; i++)
        fill(c, &k[i], &d, T0 + (uint64_t)i, 0);
    assert_int_equal(look(c, &k[0], T0 + 3), HA_AUTHZ_HIT); /* k1 is now the oldest */
    fill(c, &k[3], &d, T0 + 4, 0);
    assert_int_equal(stats(c).evictions, 1);
    assert_int_equal(stats(c).entries, 3);
    assert_int_equal(look(c, &k[0], T0 + 5), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &k[2], T0 + 5), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &k[3], T0 + 5), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &k[1], T0 + 5), HA_AUTHZ_START);
    ha_authz_cache_complete(c, &k[1], NULL, T0 + 5, 0);
    ha_authz_cache_free(c);
}

/* Denials make room among themselves: a flood of denied credentials never evicts a stored
 * allow; a key in flight (bounded by the gate) and an allow may; denials go first. */
static void test_denials_never_evict_allows(void **state)
{
    struct ha_authz_cache *c = new_cache(4, 1024 * 1024, ALLOW_MS, DENY_MS);
    struct ha_authz_decision allow = dec(200, NULL, "u", "e"), deny = dec(401, NULL, NULL, NULL);
    struct ha_authz_key a[3], junk, p3;
    char cred[16];
    (void)state;
    for (int i = 0; i < 3; i++) {
        snprintf(cred, sizeof(cred), "person-%d", i);
        a[i] = key(c, cred, "s");
        fill(c, &a[i], &allow, T0, 0);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(cred, sizeof(cred), "junk-%d", i);
        junk = key(c, cred, "s");
        fill(c, &junk, &deny, T0 + 1, 0);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(look(c, &a[i], T0 + 2), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &junk, T0 + 2), HA_AUTHZ_HIT); /* the last denial: the fourth slot */
    assert_int_equal(stats(c).entries, 4);
    /* A fourth allow takes the denial's slot, not an allow's. */
    p3 = key(c, "person-3", "s");
    fill(c, &p3, &allow, T0 + 3, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(look(c, &a[i], T0 + 4), HA_AUTHZ_HIT);
    /* Full of allows: a key in flight may take the oldest allow's slot (the gate bounds how
     * many are in flight), and its denial then stays there, so further junk recycles that
     * slot and evicts no other allow. */
    for (int i = 0; i < 50; i++) {
        snprintf(cred, sizeof(cred), "junk-x%d", i);
        junk = key(c, cred, "s");
        fill(c, &junk, &deny, T0 + 5, 0);
    }
    assert_int_equal(stats(c).entries, 4);
    assert_int_equal(look(c, &junk, T0 + 6), HA_AUTHZ_HIT);
    for (int i = 0; i < 3; i++)
        assert_int_equal(look(c, &a[i], T0 + 6), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &p3, T0 + 6), HA_AUTHZ_START); /* the least recently used allow */
    ha_authz_cache_complete(c, &p3, NULL, T0 + 6, 0);
    ha_authz_cache_free(c);
}

static void test_lru_bytes(void **state)
{
    char v[101];
    struct ha_authz_cache *c;
    struct ha_authz_decision d;
    struct ha_authz_key k[4];
    char cred[8];
    (void)state;
    memset(v, 'u', 100);
    v[100] = '\0';
    d = dec(200, NULL, v, NULL);
    /* Three decisions of KB + 100 bytes, and room for one key in flight beside them. */
    c = new_cache(100, 3 * (KB + 100) + KB, ALLOW_MS, DENY_MS);
    for (int i = 0; i < 4; i++) {
        snprintf(cred, sizeof(cred), "c%d", i);
        k[i] = key(c, cred, "s");
    }
    for (int i = 0; i < 3; i++)
        fill(c, &k[i], &d, T0, 0);
    assert_int_equal(stats(c).bytes, 3 * (KB + 100));
    assert_int_equal(look(c, &k[0], T0), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &k[3], T0), HA_AUTHZ_START);
    assert_int_equal(stats(c).evictions, 0);
    ha_authz_cache_complete(c, &k[3], &d, T0, 0);
    assert_int_equal(stats(c).evictions, 1);
    assert_int_equal(stats(c).bytes, 3 * (KB + 100));
    assert_int_equal(look(c, &k[0], T0), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &k[2], T0), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &k[3], T0), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &k[1], T0), HA_AUTHZ_START);
    ha_authz_cache_complete(c, &k[1], NULL, T0, 0);
    ha_authz_cache_free(c);
}

/* A value over HA_AUTHZ_VALUE_MAX is passed to waiters but not kept; one at the cap is. */
static void test_value_cap(void **state)
{
    static char big[HA_AUTHZ_VALUE_MAX + 2];
    struct ha_authz_cache *c = std_cache();
    struct ha_authz_key k = key(c, "c", "s");
    struct ha_authz_decision d = dec(200, NULL, NULL, big);
    struct record rec = {0};
    struct joiner j;
    (void)state;
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_START);
    join_one(c, &k, &j, &rec, 0, T0);
    ha_authz_cache_complete(c, &k, &d, T0, 0);
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.status[0], 200);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_START);
    big[HA_AUTHZ_VALUE_MAX] = '\0';
    ha_authz_cache_complete(c, &k, &d, T0, 0);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_HIT);
    assert_int_equal(stats(c).bytes, KB + HA_AUTHZ_VALUE_MAX);
    ha_authz_cache_free(c);
}

static void test_in_flight_not_evicted(void **state)
{
    struct ha_authz_cache *c = new_cache(2, 1024 * 1024, ALLOW_MS, DENY_MS);
    struct ha_authz_key k1 = key(c, "c1", "s"), k2 = key(c, "c2", "s"), k3 = key(c, "c3", "s");
    struct ha_authz_decision d = dec(200, NULL, NULL, NULL);
    struct record rec = {0};
    struct joiner j;
    (void)state;
    assert_int_equal(look(c, &k1, T0), HA_AUTHZ_START);
    assert_int_equal(look(c, &k2, T0), HA_AUTHZ_START);
    assert_int_equal(look(c, &k3, T0), HA_AUTHZ_FULL); /* only keys in flight */
    ha_authz_cache_complete(c, &k1, &d, T0, 0);
    assert_int_equal(look(c, &k3, T0), HA_AUTHZ_START); /* evicts k1, never k2 */
    assert_int_equal(stats(c).evictions, 1);
    join_one(c, &k2, &j, &rec, 0, T0);
    ha_authz_cache_complete(c, &k3, &d, T0, 0);
    ha_authz_cache_complete(c, &k2, &d, T0, 0);
    assert_int_equal(rec.n, 1);
    assert_int_equal(look(c, &k2, T0), HA_AUTHZ_HIT);
    assert_int_equal(look(c, &k3, T0), HA_AUTHZ_HIT);
    assert_int_equal(stats(c).evictions, 1);
    ha_authz_cache_free(c);
}

static void test_ttl_zero(void **state)
{
    struct ha_authz_cache *c = new_cache(8, 1024 * 1024, 0, DENY_MS);
    struct ha_authz_key k = key(c, "c", "s");
    struct ha_authz_decision allow = dec(200, "Bearer t", NULL, NULL);
    struct ha_authz_decision deny = dec(401, NULL, NULL, NULL);
    (void)state;
    fill(c, &k, &allow, T0, 0);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_START);
    ha_authz_cache_complete(c, &k, &deny, T0, 0);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_HIT);
    ha_authz_cache_free(c);
    c = new_cache(8, 1024 * 1024, ALLOW_MS, 0);
    k = key(c, "c", "s");
    fill(c, &k, &deny, T0, 0);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_START);
    ha_authz_cache_complete(c, &k, &allow, T0, 0);
    assert_int_equal(look(c, &k, T0), HA_AUTHZ_HIT);
    ha_authz_cache_free(c);
}

static void test_limits_refused(void **state)
{
    struct ha_authz_cache_limits lim = {0, 1024 * 1024, 1, 1};
    struct ha_authz_cache *c = NULL;
    (void)state;
    assert_int_equal(ha_authz_cache_new(&lim, &c), HA_ERR_INVALID);
    lim.max_entries = HA_AUTHZ_MAX_ENTRIES + 1;
    assert_int_equal(ha_authz_cache_new(&lim, &c), HA_ERR_INVALID);
    lim.max_entries = 10;
    lim.max_bytes = KB - 1;
    assert_int_equal(ha_authz_cache_new(&lim, &c), HA_ERR_INVALID);
    assert_int_equal(ha_authz_cache_new(NULL, &c), HA_ERR_INVALID);
    assert_null(c);
    lim.max_bytes = KB;
    assert_int_equal(ha_authz_cache_new(&lim, &c), HA_OK);
    ha_authz_cache_free(c);
}

static void test_stats(void **state)
{
    struct ha_authz_cache *c = new_cache(2, 1024 * 1024, ALLOW_MS, DENY_MS);
    struct ha_authz_key k1 = key(c, "c1", "s"), k2 = key(c, "c2", "s"), k3 = key(c, "c3", "s");
    struct ha_authz_decision d = dec(200, "ab", "cde", "f");
    struct ha_authz_cache_stats st;
    struct record rec = {0};
    struct joiner j;
    (void)state;
    fill(c, &k1, &d, T0, 0);                            /* miss */
    assert_int_equal(look(c, &k1, T0), HA_AUTHZ_HIT);   /* hit */
    assert_int_equal(look(c, &k2, T0), HA_AUTHZ_START); /* miss */
    join_one(c, &k2, &j, &rec, 0, T0);                  /* coalesced */
    st = stats(c);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.bytes, (KB + 6) + KB);
    ha_authz_cache_complete(c, &k2, &d, T0, 0);
    assert_int_equal(look(c, &k3, T0), HA_AUTHZ_START); /* miss, evicts k1 */
    ha_authz_cache_complete(c, &k3, NULL, T0, 0);
    assert_int_equal(look(c, &k2, T0 + ALLOW_MS), HA_AUTHZ_START); /* miss, expired */
    st = stats(c);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 4);
    assert_int_equal(st.coalesced, 1);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, KB);
    ha_authz_cache_complete(c, &k2, NULL, T0, 0);
    ha_authz_cache_free(c);
}

/* Four threads looking up, completing, cancelling and evicting random keys of a small
 * table at once. A hit or a waiter's call must carry its own key's answer; a cancel that
 * did not remove its waiter must find the call already made. */
#define MT_THREADS 4
#define MT_ITERS 4000
#define MT_CREDS 12
#define MT_SCOPES 3

struct mt {
    struct ha_authz_cache *c;
    struct ha_authz_key keys[MT_CREDS * MT_SCOPES];
    atomic_uint_fast64_t clock;
    atomic_int errors;
    atomic_long lookups, calls, joins, cancelled;
};

struct mt_waiter {
    struct mt *m;
    int key;
    atomic_int called;
    struct ha_authz_waiter w;
};

static bool mt_answer_ok(int key, const struct ha_authz_decision *d)
{
    char want[32];
    snprintf(want, sizeof(want), "Bearer %d", key);
    return d->authorization != NULL && strcmp(d->authorization, want) == 0;
}

static void mt_on_done(void *arg, const struct ha_authz_decision *d)
{
    struct mt_waiter *w = arg;
    if (d != NULL && !mt_answer_ok(w->key, d))
        atomic_fetch_add(&w->m->errors, 1);
    atomic_fetch_add(&w->m->calls, 1);
    atomic_fetch_add(&w->called, 1);
}

static void mt_complete(struct mt *m, int key, unsigned r, uint64_t now)
{
    const int statuses[] = {200, 200, 401, 403, 500, 0};
    int status = statuses[r % 6];
    char authz[32];
    struct ha_authz_decision d = {status, authz, (char *)"user", NULL};
    snprintf(authz, sizeof(authz), "Bearer %d", key);
    ha_authz_cache_complete(m->c, &m->keys[key], status != 0 ? &d : NULL, now, 0);
}

/* Waits for a joined waiter's call, or cancels it; a bounded wait. */
static void mt_wait(struct mt *m, struct mt_waiter *w, bool cancel)
{
    struct timespec ts = {0, 10000};
    if (cancel && ha_authz_cache_cancel(m->c, &w->w)) {
        atomic_fetch_add(&m->cancelled, 1);
        return;
    }
    for (int i = 0; i < 2000000 && atomic_load(&w->called) == 0; i++)
        nanosleep(&ts, NULL);
    if (atomic_load(&w->called) != 1)
        atomic_fetch_add(&m->errors, 1);
}

static void mt_step(struct mt *m, unsigned *seed)
{
    struct mt_waiter w = {.m = m};
    struct ha_authz_decision out = {0};
    unsigned r = (unsigned)rand_r(seed);
    uint64_t now = atomic_fetch_add(&m->clock, 1);
    enum ha_authz_lookup res;

    w.key = (int)(r % (MT_CREDS * MT_SCOPES));
    atomic_init(&w.called, 0);
    if (r % 97 == 0) {
        char cred[16];
        snprintf(cred, sizeof(cred), "cred-%d", w.key / MT_SCOPES);
        if (ha_authz_cache_evict_credential(m->c, cred, strlen(cred), NULL) != HA_OK)
            atomic_fetch_add(&m->errors, 1);
        return;
    }
    atomic_fetch_add(&m->lookups, 1);
    res = ha_authz_cache_lookup(m->c, &m->keys[w.key], now, &out, mt_on_done, &w, &w.w);
    if (res == HA_AUTHZ_HIT) {
        if (!mt_answer_ok(w.key, &out))
            atomic_fetch_add(&m->errors, 1);
        ha_authz_decision_cleanup(&out);
    } else if (res == HA_AUTHZ_START) {
        struct timespec ts = {0, 20000};
        if ((r >> 12) % 4 == 0)
            nanosleep(&ts, NULL); /* a slower fetch: others join it */
        mt_complete(m, w.key, r >> 8, now);
    } else if (res == HA_AUTHZ_JOIN) {
        atomic_fetch_add(&m->joins, 1);
        mt_wait(m, &w, (r >> 4) % 3 == 0);
    }
}

static void *mt_thread(void *arg)
{
    struct mt *m = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    for (int i = 0; i < MT_ITERS; i++)
        mt_step(m, &seed);
    return NULL;
}

static void test_threads(void **state)
{
    struct mt *m = calloc(1, sizeof(*m));
    pthread_t t[MT_THREADS];
    struct ha_authz_cache_stats st;
    char cred[16];
    (void)state;
    assert_non_null(m);
    /* 8 entries for 36 keys, ttls short against the shared clock: eviction, expiry, FULL. */
    m->c = new_cache(8, 8 * (KB + 64), 200, 50);
    for (int i = 0; i < MT_CREDS * MT_SCOPES; i++) {
        char scope[16];
        snprintf(cred, sizeof(cred), "cred-%d", i / MT_SCOPES);
        snprintf(scope, sizeof(scope), "s%d", i % MT_SCOPES);
        m->keys[i] = key(m->c, cred, scope);
    }
    atomic_init(&m->clock, T0);
    for (int i = 0; i < MT_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, mt_thread, m), 0);
    for (int i = 0; i < MT_THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    st = stats(m->c);
    print_message("lookups %ld: hits %lu, joins %ld (%ld cancelled), evictions %lu, "
                  "expirations %lu\n",
                  atomic_load(&m->lookups), (unsigned long)st.hits, atomic_load(&m->joins),
                  atomic_load(&m->cancelled), (unsigned long)st.evictions,
                  (unsigned long)st.expirations);
    assert_int_equal(atomic_load(&m->errors), 0);
    assert_int_equal(st.hits + st.misses + st.coalesced, (uint64_t)atomic_load(&m->lookups));
    assert_int_equal(st.coalesced, (uint64_t)atomic_load(&m->joins));
    assert_int_equal(atomic_load(&m->calls) + atomic_load(&m->cancelled), atomic_load(&m->joins));
    assert_true(st.entries <= 8);
    assert_true(st.hits > 0);
    ha_authz_cache_free(m->c);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_after_complete),
        cmocka_unit_test(test_allow_ttl),
        cmocka_unit_test(test_deny_ttl),
        cmocka_unit_test(test_never_stored),
        cmocka_unit_test(test_coalesce),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_cancel_waits_for_call),
        cmocka_unit_test(test_evict_credential),
        cmocka_unit_test(test_key_separation),
        cmocka_unit_test(test_lru_entries),
        cmocka_unit_test(test_denials_never_evict_allows),
        cmocka_unit_test(test_lru_bytes),
        cmocka_unit_test(test_value_cap),
        cmocka_unit_test(test_in_flight_not_evicted),
        cmocka_unit_test(test_ttl_zero),
        cmocka_unit_test(test_limits_refused),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
