/* A cache of Houston's authorization decisions for GET /v1/authorization, keyed by a keyed
 * hash of (credential, scope), with concurrent misses of one key coalesced into one fetch.
 * Thread-safe: lookups run on the I/O threads, completions on the event loop. */
#ifndef HOUSTON_AUTH_AUTHZ_CACHE_H
#define HOUSTON_AUTH_AUTHZ_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "houston_auth/err.h"

#define HA_AUTHZ_ID_LEN 32 /* HMAC-SHA256 */
/* A header value longer than this (bytes, without the NUL) makes a decision uncacheable. */
#define HA_AUTHZ_VALUE_MAX (8 * 1024)
/* An entry's stored bytes: sizeof(struct ha_authz_key) + HA_AUTHZ_ENTRY_OVERHEAD + the length
 * of each header value it holds (a key in flight holds none). The overhead stands for links,
 * times, status and the values' NULs; src/authz_cache.c checks that its entry struct fits. */
#define HA_AUTHZ_ENTRY_OVERHEAD 160
/* max_entries above this is refused (the table is sized from it up front). */
#define HA_AUTHZ_MAX_ENTRIES (1U << 22)

struct ha_authz_cache;
struct ha_authz_waitq;

/* Both maxima count stored decisions and keys in flight. A ttl of 0 never stores that kind. */
struct ha_authz_cache_limits {
    size_t max_entries;    /* 1 .. HA_AUTHZ_MAX_ENTRIES */
    size_t max_bytes;      /* at least one key in flight: sizeof key + HA_AUTHZ_ENTRY_OVERHEAD */
    uint64_t ttl_allow_ms; /* status 200 */
    uint64_t ttl_deny_ms;  /* status 401 and 403 */
};

/* A lookup key, made by ha_authz_cache_key: neither part holds the credential in clear. */
struct ha_authz_key {
    unsigned char id[HA_AUTHZ_ID_LEN];      /* HMAC of the credential and the scope */
    unsigned char cred_id[HA_AUTHZ_ID_LEN]; /* HMAC of the credential alone */
};

/* Houston's answer: its status and the response headers to pass on (NULL: absent). */
struct ha_authz_decision {
    int status;
    char *authorization; /* a bearer JWT: wiped when freed */
    char *username;
    char *email;
};

/* Called once per joined lookup when its fetch completes: d is the fetched decision,
 * borrowed for the call only, or NULL when the fetch failed (answer an error). Runs on the
 * thread that called ha_authz_cache_complete, with no cache lock held. */
typedef void (*ha_authz_waiter_fn)(void *arg, const struct ha_authz_decision *d);

/* Storage for one joined lookup, the caller's; the fields are the cache's. It must stay
 * valid until fn has been called or ha_authz_cache_cancel has returned. */
struct ha_authz_waiter {
    struct ha_authz_waiter *next, *prev;
    struct ha_authz_waitq *queue;
    ha_authz_waiter_fn fn;
    void *arg;
    int state;
};

enum ha_authz_lookup {
    HA_AUTHZ_HIT,   /* *out holds a copy (ha_authz_decision_cleanup) */
    HA_AUTHZ_START, /* a miss, now in flight: fetch, then ha_authz_cache_complete */
    HA_AUTHZ_JOIN,  /* a fetch for the key is in flight: fn(arg, ...) will be called once */
    HA_AUTHZ_FULL   /* a miss that cannot be tracked: fetch uncached, do not complete */
};

struct ha_authz_cache_stats {
    uint64_t hits;        /* HIT */
    uint64_t misses;      /* START and FULL */
    uint64_t coalesced;   /* JOIN */
    uint64_t evictions;   /* decisions dropped for room (least recently used first) */
    uint64_t expirations; /* decisions dropped past their ttl */
    size_t entries;       /* stored decisions and keys in flight */
    size_t bytes;         /* their stored bytes (HA_AUTHZ_ENTRY_OVERHEAD) */
};

/* Copies *lim and draws a random HMAC key. *out is the caller's (ha_authz_cache_free).
 * HA_ERR_INVALID on limits out of range, HA_ERR_NOMEM, HA_ERR_CRYPTO. */
enum ha_err ha_authz_cache_new(const struct ha_authz_cache_limits *lim,
                               struct ha_authz_cache **out);
/* Every START must have been completed: waiters still queued are dropped without a call. */
void ha_authz_cache_free(struct ha_authz_cache *c);

/* Derives the key of (credential, scope): id = HMAC(0x01 || len(cred) as 8 bytes big-endian
 * || cred || scope), cred_id = HMAC(0x02 || cred). Either length may be 0. HA_ERR_INVALID on
 * a NULL pointer with a non-zero length, HA_ERR_CRYPTO. Thread-safe. */
enum ha_err ha_authz_cache_key(const struct ha_authz_cache *c, const void *cred, size_t cred_len,
                               const void *scope, size_t scope_len, struct ha_authz_key *out);

/* Looks k up at now_ms (a monotonic clock); *out is written on HIT only. An expired decision
 * is dropped and missed.
 * JOIN only when fn and w are given (otherwise FULL); on JOIN, w is queued with fn and arg.
 * w, when given, is initialised whatever the result, so it can always be cancelled. FULL
 * also when the table holds only keys in flight, on allocation failure, and for a key whose
 * credential was evicted while its fetch was in flight. */
enum ha_authz_lookup ha_authz_cache_lookup(struct ha_authz_cache *c, const struct ha_authz_key *k,
                                           uint64_t now_ms, struct ha_authz_decision *out,
                                           ha_authz_waiter_fn fn, void *arg,
                                           struct ha_authz_waiter *w);
/* A lookup that never starts nor joins a fetch: true (and *out, as on HIT, counted as a hit)
 * when k holds a stored decision at now_ms; false on a miss, which is not counted (the
 * ha_authz_cache_lookup that follows counts it). For answering from the cache before deciding
 * to wait. */
bool ha_authz_cache_peek(struct ha_authz_cache *c, const struct ha_authz_key *k, uint64_t now_ms,
                         struct ha_authz_decision *out);
/* Dequeues w. Afterwards fn is neither running on another thread nor ever called for w
 * (when fn is running now, waits for it to return; from inside fn itself, returns at once).
 * True when w was removed before its call; false when it had run, was running, or was never
 * queued. Not to be called holding a lock that fn takes. */
bool ha_authz_cache_cancel(struct ha_authz_cache *c, struct ha_authz_waiter *w);

/* Ends the fetch k's START began. d NULL: the fetch failed; nothing is stored. Else d is
 * copied and stored when its status is 200 (for ttl_allow_ms, capped at not_after_ms - now_ms
 * when not_after_ms is not 0: the expiry of the token Houston minted), 401 or 403 (for
 * ttl_deny_ms); never other statuses, values over HA_AUTHZ_VALUE_MAX, or a key whose
 * credential was evicted in flight. Then, with the lock released, calls every waiter of k in
 * join order with d. On a key not in flight, stores by the same rules and calls nobody. */
void ha_authz_cache_complete(struct ha_authz_cache *c, const struct ha_authz_key *k,
                             const struct ha_authz_decision *d, uint64_t now_ms,
                             uint64_t not_after_ms);

/* Drops every stored decision of the credential, whatever its scope (at logout), and marks
 * its keys in flight so their fetches, begun before, are not stored. *removed (may be NULL):
 * the decisions dropped. HA_ERR_INVALID, HA_ERR_CRYPTO as ha_authz_cache_key. */
enum ha_err ha_authz_cache_evict_credential(struct ha_authz_cache *c, const void *cred,
                                            size_t cred_len, size_t *removed);

void ha_authz_cache_get_stats(struct ha_authz_cache *c, struct ha_authz_cache_stats *out);

/* Frees the strings of a decision filled by a HIT (the Authorization value wiped first) and
 * leaves them NULL. NULL is a no-op. */
void ha_authz_decision_cleanup(struct ha_authz_decision *d);

#endif
