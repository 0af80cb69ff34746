/* dev-tenant: an Auth0-shaped OIDC provider for development and tests (see README.md). */
#ifndef HA_TOOLS_TENANT_H
#define HA_TOOLS_TENANT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "houston_auth/err.h"
#include "houston_auth/url.h"
#include "peer_http.h"

#define TENANT_MAX_LIST 16    /* --callback, --logout-url, --san */
#define TENANT_MAX_KEYS 16    /* signing keys after rotations */
#define TENANT_MAX_CODES 1024 /* authorization codes alive at once */
#define TENANT_MAX_USERS 1024 /* sub -> email, for /userinfo */
#define TENANT_CODE_TTL 60
/* Auth0's default database connection: anyone can sign up there with any address. */
#define TENANT_DB_CONNECTION "Username-Password-Authentication"
#define TENANT_ID_TOKEN_TTL 3600
#define TENANT_ACCESS_TOKEN_TTL 86400
#define TENANT_MAX_PARAM 2048 /* any one authorize or token parameter */
#define TENANT_MAX_EMAIL 254

#define TENANT_FORM_TYPE "application/x-www-form-urlencoded"
#define TENANT_HTML "text/html; charset=utf-8"
#define TENANT_TEXT "text/plain; charset=utf-8"

struct tenant_config {
    char *listen_host;
    int listen_port;
    char *state_dir;
    char *issuer_host; /* NULL until main() settles it: default localhost:<bound port> */
    char *client_id;
    char *client_secret;
    char *audience;
    char *callbacks[TENANT_MAX_LIST];
    size_t ncallbacks;
    char *logout_urls[TENANT_MAX_LIST];
    size_t nlogout;
    char *sans[TENANT_MAX_LIST];
    size_t nsans;
    bool test_controls;
    bool auto_approve;
};

/* An RSA signing key. Immutable once published in tenant.keys. */
struct tenant_key {
    EVP_PKEY *pkey;
    char *pem;    /* PKCS#8 private key PEM, for libjwt */
    char kid[48]; /* RFC 7638 JWK thumbprint (SHA-256, base64url) */
    char *n;      /* base64url modulus */
    char *e;      /* base64url exponent */
};

struct tenant_code {
    char code[48]; /* "" when the slot is free */
    long expires;
    bool used;
    char *client_id;
    char *redirect_uri;
    char *challenge;
    char *nonce;
    char *email;
    bool email_verified;
    char *audience;
    char *scope;
};

struct tenant_user {
    char sub[32];
    char *email;
};

struct tenant_stats {
    long discovery_fetches;
    long jwks_fetches;
    long token_requests;
    long authorize_requests;
    long logout_requests;
};

struct tenant {
    struct tenant_config cfg;
    char *issuer; /* https://<issuer_host>/ */
    atomic_bool stopping;
    EVP_PKEY *other_key; /* RSA, never published: "other-key" (test controls only) */
    EVP_PKEY *ec_key;    /* P-256: "es256" (test controls only) */

    pthread_mutex_t lock; /* guards everything below */
    struct tenant_key keys[TENANT_MAX_KEYS];
    size_t nkeys; /* the last key signs; entries below nkeys never change */
    struct tenant_code codes[TENANT_MAX_CODES];
    struct tenant_user users[TENANT_MAX_USERS];
    size_t nusers;
    json_t *faults;         /* validated fault switches, an object */
    json_t *last_authorize; /* the last GET /authorize query, or NULL */
    struct tenant_stats stats;
};

/* What an approved login carries into a code (all borrowed). */
struct tenant_grant {
    const char *client_id;
    const char *redirect_uri;
    const char *challenge;
    const char *nonce; /* may be NULL */
    const char *email;
    bool email_verified;
    const char *audience; /* may be NULL */
    const char *scope;
};

/* main.c */
void tenant_usage(FILE *f);

/* pki.c: the state directory, the CA, the TLS leaf and the first signing key. */
enum ha_err tenant_pki_init(struct tenant *t, char **cert_pem, char **key_pem);
enum ha_err tenant_key_generate(struct tenant_key *k);
void tenant_key_cleanup(struct tenant_key *k);
json_t *tenant_key_jwk(const struct tenant_key *k);
enum ha_err tenant_pem_private(EVP_PKEY *pkey, char **out);
enum ha_err tenant_spki(EVP_PKEY *pkey, bool pem, unsigned char **out, size_t *len);

/* jws.c: signing (every broken variant included) and RS256 verification. */
enum tenant_sign {
    SIGN_RS256 = 0,
    SIGN_NONE,
    SIGN_HS256_PEM,
    SIGN_HS256_DER,
    SIGN_RS384,
    SIGN_RS512,
    SIGN_PS256,
    SIGN_ES256,
    SIGN_OTHER_KEY,
    SIGN_BAD_SIG
};
bool tenant_sign_parse(const char *s, enum tenant_sign *out);
/* Signs claims (borrowed) with the current key in mode; header_extra (borrowed, may be NULL)
 * is merged into the JWS header, a JSON null member deleting one. *out caller frees. */
enum ha_err tenant_jws_sign(struct tenant *t, json_t *header_extra, json_t *claims,
                            enum tenant_sign mode, char **out);
/* Verifies an RS256 JWS on a published key; *claims (caller decrefs) on success. */
enum ha_err tenant_jws_verify(struct tenant *t, const char *token, json_t **claims);
/* Merges src's members into dst; a JSON null member deletes the key from dst. */
void tenant_json_merge(json_t *dst, json_t *src);

/* authorize.c */
void tenant_handle_authorize(struct tenant *t, const struct peer_request *req,
                             struct peer_response *resp);

/* token.c */
void tenant_handle_token(struct tenant *t, const struct peer_request *req,
                         struct peer_response *resp);
void tenant_handle_userinfo(struct tenant *t, const struct peer_request *req,
                            struct peer_response *resp);
/* Stores a single-use code for g; *out (caller frees). HA_ERR_BUSY when the table is full. */
enum ha_err tenant_code_issue(struct tenant *t, const struct tenant_grant *g, char **out);
/* "auth0|" + the first 24 hex digits of SHA-256(email) into out (>= 31 bytes). */
void tenant_subject(const char *email, char *out, size_t len);

/* endpoints.c: the route table and the small endpoints. */
void tenant_handle(void *ctx, const struct peer_request *req, struct peer_response *resp);

/* controls.c: /__test/... and the fault accessors every endpoint reads. */
void tenant_handle_control(struct tenant *t, const struct peer_request *req,
                           struct peer_response *resp);
/* Fault values, copied out under the lock: def when unset. */
long tenant_fault_int(struct tenant *t, const char *name, long def);
char *tenant_fault_str(struct tenant *t, const char *name);    /* caller frees, or NULL */
json_t *tenant_fault_json(struct tenant *t, const char *name); /* deep copy, or NULL */
void tenant_count(struct tenant *t, long *counter);

/* Small shared helpers (endpoints.c). */
enum ha_err tenant_oauth_error(struct peer_response *r, int status, const char *error,
                               const char *description);
bool tenant_list_has(char *const *list, size_t n, const char *s);
/* Parses an urlencoded form body; HA_ERR_INVALID when the type is not a form. */
enum ha_err tenant_parse_form(const struct peer_request *req, struct ha_kvlist *out);
bool tenant_email_ok(const char *email);

#endif
