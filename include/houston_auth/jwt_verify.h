/* Compact JWS (RFC 7515) parsing and ID/access token verification: exactly RS256, keys only
 * from the tenant's JWKS, claims per OIDC Core §3.1.3.7. */
#ifndef HOUSTON_AUTH_JWT_VERIFY_H
#define HOUSTON_AUTH_JWT_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/evp.h>
#include "houston_auth/err.h"
#include "houston_auth/json_view.h"

struct ha_jwks_cache;

struct ha_jwt {
    struct ha_json_view header; /* views into header_text and claims_text */
    struct ha_json_view claims;
    char *header_text; /* the decoded header and claims, unescaped in place */
    char *claims_text;
    const char *signing_input; /* "<b64 header>.<b64 payload>" inside raw */
    size_t signing_input_len;
    unsigned char *sig;
    size_t sig_len;
    char *raw; /* private copy of the token */
};

/* Splits a compact JWS into exactly three parts, strictly base64url-decodes each, and parses
 * header and claims as JSON objects (ha_json_view_parse: duplicate member names refused).
 * HA_ERR_TOO_LARGE past HA_MAX_JWT bytes; HA_ERR_JWT_FORMAT otherwise. *out is the caller's
 * (ha_jwt_free). */
enum ha_err ha_jwt_parse(const char *token, size_t len, struct ha_jwt **out);
void ha_jwt_free(struct ha_jwt *jwt);

/* alg must be exactly "RS256" (else HA_ERR_JWT_ALG); any "crit" is refused (we implement no
 * extension, RFC 7515 §4.1.11); jku, x5u, jwk, x5c are ignored; kid, when present, must be a
 * string of at most 256 printable ASCII characters (else HA_ERR_JWT_FORMAT). */
enum ha_err ha_jwt_check_header(const struct ha_jwt *jwt);
/* The header's kid (borrowed) or NULL. */
const char *ha_jwt_kid(const struct ha_jwt *jwt);
/* RSASSA-PKCS1-v1_5 SHA-256 over signing_input with key. HA_ERR_JWT_SIG when it fails. */
enum ha_err ha_jwt_verify_signature(const struct ha_jwt *jwt, EVP_PKEY *key);

struct ha_jwt_expect {
    const char *issuer;    /* iss must equal */
    const char *audience;  /* aud (string or array) must contain */
    const char *azp;       /* when non-NULL: azp, if present, must equal; */
    bool azp_if_multi_aud; /* ... and must be present when aud has several values */
    const char *nonce;     /* when non-NULL, nonce must be present and equal (constant time) */
    bool require_iat;
    bool require_sub;
    long now;    /* seconds since the epoch */
    long leeway; /* seconds allowed on exp, nbf, iat */
};

/* Checks the claims. exp required and numeric; nbf and iat numeric when present, not in the
 * future past leeway. HA_ERR_JWT_CLAIMS with *reason (static string naming the claim). */
enum ha_err ha_jwt_check_claims(const struct ha_jwt *jwt, const struct ha_jwt_expect *e,
                                const char **reason);

/* The whole check: parse, header, key from the cache by kid, signature, claims — in that
 * order, so no key is touched before alg is pinned. *out (optional) receives the parsed
 * token on HA_OK. *reason is a static string on failure. */
enum ha_err ha_jwt_verify(const char *token, size_t len, struct ha_jwks_cache *keys,
                          const struct ha_jwt_expect *e, struct ha_jwt **out, const char **reason);

/* Houston finds or creates its user by the ID token's email, so the email must be the
 * person's: email a non-empty string and email_verified exactly the JSON value true (not
 * absent, not false, not the string "true"); allow_unverified waives only the latter.
 * HA_ERR_JWT_CLAIMS with *reason (static). *unverified (optional) is set when email_verified
 * is not true, also when waived. */
enum ha_err ha_jwt_check_email(const struct ha_jwt *jwt, bool allow_unverified, bool *unverified,
                               const char **reason);

/* Borrowed string claim or NULL. */
const char *ha_jwt_claim_str(const struct ha_jwt *jwt, const char *name);

#endif
