/* JSON Web Key Sets: parsing RSA signing keys into EVP_PKEYs, and the cache that serves
 * them by kid with a scheduled refresh and throttled, coalesced refetches on a miss. */
#ifndef HOUSTON_AUTH_JWKS_H
#define HOUSTON_AUTH_JWKS_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/evp.h>
#include "houston_auth/err.h"
#include "houston_auth/http_client.h"
#include "houston_auth/util.h"

struct ha_jwk {
    char *kid;      /* NULL when the JWK had none */
    EVP_PKEY *pkey; /* RSA public key, modulus >= HA_MIN_RSA_BITS */
};

struct ha_jwks_set {
    struct ha_jwk *keys;
    size_t count;
    size_t skipped; /* JWKs ignored: kty != RSA, use != sig, alg != RS256, < 2048 bits, bad */
};

/* Parses a JWKS document. Keeps only JWKs with kty "RSA", use "sig" or absent, alg "RS256"
 * or absent, key_ops absent or containing "verify", n of at least HA_MIN_RSA_BITS bits, and
 * a valid e; skips the rest. HA_ERR_INVALID when not a JSON object with a "keys" array or
 * with duplicate member names; HA_ERR_TOO_LARGE past HA_MAX_JWKS_KEYS entries or
 * HA_MAX_PEER_BODY bytes. *out is the caller's (ha_jwks_set_free). */
enum ha_err ha_jwks_parse(const char *json, size_t len, struct ha_jwks_set **out);
void ha_jwks_set_free(struct ha_jwks_set *set);
/* Finds the key for kid in set. kid NULL: HA_OK only when the set holds exactly one key.
 * Borrowed; HA_ERR_NOT_FOUND otherwise. */
enum ha_err ha_jwks_set_find(const struct ha_jwks_set *set, const char *kid, EVP_PKEY **out);

struct ha_jwks_cache_opts {
    const char *jwks_uri;
    struct ha_http http; /* synchronous fetches; perform NULL: none (the event loop fetches
                          * through ha_jwks_cache_fetch_begin/_end, and a miss only misses) */
    struct ha_clock clock;
    long refresh_s;     /* a successful load is refreshed after this long */
    long min_refetch_s; /* at most one miss-triggered fetch per this window */
};

struct ha_jwks_cache_stats {
    unsigned long fetches; /* fetch attempts made */
    unsigned long fetch_failures;
    unsigned long throttled_misses; /* misses that found the window closed */
    unsigned long coalesced_misses; /* misses that waited on another thread's fetch */
};

struct ha_jwks_cache;
/* Copies opts (the string too). Makes no request. */
enum ha_err ha_jwks_cache_new(const struct ha_jwks_cache_opts *opts, struct ha_jwks_cache **out);
void ha_jwks_cache_free(struct ha_jwks_cache *c);
/* Fetches now and swaps the key set in on success; the old set keeps serving on failure. */
enum ha_err ha_jwks_cache_refresh(struct ha_jwks_cache *c);
/* Calls refresh when the scheduled refresh is due. For a background thread. */
enum ha_err ha_jwks_cache_tick(struct ha_jwks_cache *c);
/* True once a key set has loaded. */
bool ha_jwks_cache_ready(const struct ha_jwks_cache *c);
/* Looks up kid (NULL: only when exactly one key). On a miss, refetches at most once per
 * min_refetch_s window, concurrent misses waiting on the same fetch, then looks again.
 * *out is a new reference (the caller EVP_PKEY_free()s it). HA_ERR_JWT_KEY when no key. */
enum ha_err ha_jwks_cache_get_key(struct ha_jwks_cache *c, const char *kid, EVP_PKEY **out);
void ha_jwks_cache_get_stats(struct ha_jwks_cache *c, struct ha_jwks_cache_stats *out);

/* Fetches driven from outside (the event loop's asynchronous calls), with the same
 * throttling and coalescing as the synchronous ones. */
enum ha_jwks_fetch {
    HA_JWKS_FETCH_START, /* make *req, then call ha_jwks_cache_fetch_end with its answer */
    HA_JWKS_FETCH_JOIN,  /* a fetch is in flight: its end is this miss's answer too */
    HA_JWKS_FETCH_NO     /* not due (scheduled), or the miss window is closed (on_miss) */
};
/* on_miss: a token's kid was not found (throttled to one per min_refetch_s); else the
 * scheduled refresh (when due). *req borrows the cache's strings. */
enum ha_jwks_fetch ha_jwks_cache_fetch_begin(struct ha_jwks_cache *c, bool on_miss,
                                             struct ha_http_request *req);
/* The answer to a started fetch (err as the transport gave it): on success the new key set
 * replaces the old one; on failure the old one keeps serving. Returns the fetch's result. */
enum ha_err ha_jwks_cache_fetch_end(struct ha_jwks_cache *c, enum ha_err err,
                                    const struct ha_http_response *resp);
/* The jwks_uri, for log lines. */
const char *ha_jwks_cache_uri(const struct ha_jwks_cache *c);

#endif
