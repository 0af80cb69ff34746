/* One login in flight: state, nonce and PKCE verifier, with what the UI asked for, sealed
 * into a short-lived cookie with AES-256-GCM so no server-side store is needed. */
#ifndef HOUSTON_AUTH_TRANSACTION_H
#define HOUSTON_AUTH_TRANSACTION_H

#include <stdbool.h>
#include <stddef.h>
#include "houston_auth/err.h"
#include "houston_auth/proto.h"
#include "houston_auth/util.h"

/* A key that seals transaction cookies (AES-256-GCM). */
#define HA_TXN_KEY_LEN 32

struct ha_txn {
    char state[HA_RANDOM_B64_LEN + 1]; /* b64url of 32 random bytes */
    char nonce[HA_RANDOM_B64_LEN + 1];
    char verifier[HA_RANDOM_B64_LEN + 1]; /* PKCE code_verifier (RFC 7636 §4.1) */
    char *integration;                    /* "self" or an Auth0 connection */
    char *redirect;                       /* UI path, already allowlisted */
    char *extras;                         /* JSON object text or NULL */
    char *invite_token;                   /* or NULL */
    long created;                         /* seconds since the epoch */
};

/* Fresh state, nonce and verifier from rng; copies the strings (NULL allowed except
 * integration and redirect). Caller-owned storage; ha_txn_cleanup() wipes and frees. */
enum ha_err ha_txn_init(struct ha_txn *t, const struct ha_rng *rng, long now,
                        const char *integration, const char *redirect, const char *extras,
                        const char *invite_token);
void ha_txn_cleanup(struct ha_txn *t);

/* code_challenge = b64url(SHA-256(verifier)) (RFC 7636 §4.2); out holds 44 bytes. */
void ha_txn_challenge(const struct ha_txn *t, char out[HA_RANDOM_B64_LEN + 1]);

/* Cookie name for the transaction whose state is state: HA_TXN_COOKIE_PREFIX +
 * first HA_TXN_ID_LEN chars of b64url(SHA-256(state)). out holds 64 bytes. */
void ha_txn_cookie_name(const char *state, char out[64]);

/* Whether name has exactly the shape ha_txn_cookie_name() gives: HA_TXN_COOKIE_PREFIX and
 * HA_TXN_ID_LEN base64url characters. Only such cookies are ever opened, evicted or cleared;
 * any other cookie a browser sends is not the sidecar's and is ignored. */
bool ha_txn_check_cookie_name(const char *name);

/* The sealing key for a cookie secret: RFC 5869 HKDF-SHA256 of secret[0..len), no salt, the
 * fixed info "houston-auth transaction cookie v1". Every sidecar given the same secret must
 * derive the same key, or cookies sealed before a deploy stop opening after it: the
 * derivation never changes (tests/unit/test_transaction.c pins a vector). HA_ERR_CRYPTO
 * when OpenSSL fails; out is written only on HA_OK. */
enum ha_err ha_txn_derive_key(const char *secret, size_t len, unsigned char out[HA_TXN_KEY_LEN]);

/* Seals t (a compact binary record, see src/transaction.c) as "v2.<b64url(iv|ciphertext|
 * tag)>" with AES-256-GCM under key, a random 96-bit IV from rng, and the cookie name as
 * additional data. HA_ERR_TOO_LARGE past HA_TXN_COOKIE_MAX; HA_ERR_INVALID for fields
 * ha_txn_init could not have made. *out caller frees. */
enum ha_err ha_txn_seal(const struct ha_txn *t, const unsigned char key[HA_TXN_KEY_LEN],
                        const struct ha_rng *rng, char **out);

/* Opens a sealed value found under cookie_name, trying each of nkeys keys. HA_ERR_CRYPTO when
 * no key authenticates it (tampered, truncated, other secret, other cookie name);
 * HA_ERR_EXPIRED when now - created > ttl or created is in the future past 60 s;
 * HA_ERR_INVALID when malformed. On HA_OK t is filled (caller cleans up). */
enum ha_err ha_txn_open(const char *value, size_t len, const char *cookie_name,
                        const unsigned char (*keys)[HA_TXN_KEY_LEN], size_t nkeys, long now,
                        long ttl, struct ha_txn *t);

#endif
