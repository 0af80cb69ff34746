/* houston-standin: Houston's callback contract (DESIGN.md) and the app's pages, for
 * development and tests. */
#ifndef HA_TOOLS_STANDIN_H
#define HA_TOOLS_STANDIN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "houston_auth/err.h"
#include "houston_auth/http_client.h"
#include "../dev-tenant/peer_http.h"

#define STANDIN_SESSION_TTL 86400
#define STANDIN_UUID_LEN 36
/* Houston's jwt.authDuration (86400000 ms): the lifetime of every JWT it mints, the ones
 * GET /v1/authorization hands Airflow included. */
#define STANDIN_AIRFLOW_JWT_TTL 86400
#define STANDIN_DEFAULT_POOL 10 /* Houston's database pool: 10 connections */
#define STANDIN_MAX_POOL 1000
#define STANDIN_MAX_LATENCY_MS 60000
#define STANDIN_MAX_USERS 100000
#define STANDIN_MAX_CALL_KEYS 100000
#define STANDIN_MAX_RECORDS 10000
#define STANDIN_MAX_HEADER_RECORDS 64 /* /v1/authorization calls whose header names are kept */
#define STANDIN_MAX_NAMES 256         /* header names, and cookie names, kept per call */
#define STANDIN_MAX_NAME 256          /* bytes of one kept name */
#define STANDIN_MAX_BASE 253
#define STANDIN_FORM_TYPE "application/x-www-form-urlencoded"
#define STANDIN_HTML "text/html; charset=utf-8"
#define STANDIN_TEXT "text/plain; charset=utf-8"
#define STANDIN_E_INVALID "invalid_callback"

struct standin_config {
    char *listen_host;
    int listen_port;
    char *base_domain;
    char *app_url;         /* no trailing '/' */
    char *app_listen_host; /* NULL: no app server */
    int app_listen_port;
    char *tls_cert_file;
    char *tls_key_file;
    char *cookie_name;
    char *sidecar_url; /* no trailing '/' */
    bool test_controls;
    /* Houston's auth.auth0 settings; NULL base: the ID token is read, not checked at all. */
    char *auth0_base_domain; /* host[:port]: iss https://<it>/, JWKS under it */
    char *client_id;         /* the ID token's aud */
    char *tenant_ca_file;    /* extra CA bundle for the JWKS fetch */
    char *state_dir;         /* NULL: nothing kept across restarts (state.c) */
    long authz_latency_ms;   /* each authorization decision's time in the pool */
    long authz_pool;         /* decisions at a time; the rest queue */
};

/* GET /v1/authorization's latency model and counters (pool.c), under its own lock. */
struct standin_pool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    long latency_ms, size; /* now in force (the flags' values after a reset) */
    long in_flight, queued, max_in_flight, max_queued;
    json_int_t calls;        /* every request to the route, counted on arrival */
    json_t *by_status;       /* {"200": n, ...}, counted on answer */
    json_t *by_key;          /* "<credential>|<host>|<release>" -> call record */
    json_int_t keys_dropped; /* calls whose key did not fit under STANDIN_MAX_CALL_KEYS */
    json_t *headers;         /* the last calls' header and cookie names, oldest first */
};

struct standin {
    struct standin_config cfg;
    atomic_bool stopping;
    EVP_PKEY *session_key; /* RSA-2048, generated at start: signs session JWTs */
    char kid[48];

    pthread_mutex_t lock;
    json_t *received; /* array of callback records, oldest first */
    json_t *fault;    /* object of fault switches */
    json_t *users;    /* Houston's users: uuid -> {email, full_name, system, deployments} */

    struct standin_pool pool;

    struct ha_http_client *client; /* for the tenant's JWKS; NULL when unchecked */
    pthread_mutex_t jwks_lock;
    json_t *jwks_keys; /* the signing keys of the last JWKS fetched, or NULL */
};

/* session.c: the cookie name, session JWTs and reading a JWT's payload. */
/* "astronomer_" + lodash snakeCase(base) + "_auth". *out caller frees. */
enum ha_err standin_cookie_name(const char *base, char **out);
/* Makes the signing key unless state.c loaded one (then saves it there) and sets the kid. */
enum ha_err standin_session_init(struct standin *s);
/* A session JWT {uuid, email, iat, exp} signed RS256 with the stand-in's key, valid for
 * STANDIN_SESSION_TTL (_ttl: ttl seconds, which may be <= 0 for an expired one). */
enum ha_err standin_session_mint(struct standin *s, const char *email, char **out);
enum ha_err standin_session_mint_ttl(struct standin *s, const char *email, long ttl, char **out);
/* Signs claims (borrowed) as a compact JWS {alg RS256, typ JWT, kid} with the stand-in's key.
 * *out caller frees. */
enum ha_err standin_jwt_sign(struct standin *s, json_t *claims, char **out);
/* The user id Houston would give email: a name-based UUID from its SHA-256. */
void standin_user_uuid(const char *email, char out[STANDIN_UUID_LEN + 1]);
/* Whether token is a session Houston's decodeJWT accepts (the stand-in's RS256 signature,
 * exp not reached, nbf reached) carrying a uuid; then *uuid is set. */
bool standin_session_check(struct standin *s, const char *token, char uuid[STANDIN_UUID_LEN + 1]);
/* {kid, alg, public_key_pem, jwks: {keys: [JWK]}} of the signing key (caller decrefs), or NULL. */
json_t *standin_public_keys(struct standin *s);
/* The payload of a compact JWS, not verified; *verified tells whether the stand-in's own
 * key signed it with RS256. NULL when it is not a JWS with a JSON object payload. */
json_t *standin_jwt_payload(struct standin *s, const char *token, bool *verified);
/* The decoded header object of a compact JWS, or NULL. */
json_t *standin_jwt_header(const char *token);

/* token09.c: Houston 0.9's checks of the ID token at its callback (no signature check). */
enum ha_err standin_token09_init(struct standin *s);
void standin_token09_cleanup(struct standin *s);
/* NULL when Houston 0.9 takes id_token, with its payload in *claims (caller decrefs); else
 * why it refuses (static). Without --auth0-base-domain only the payload is read. */
const char *standin_token09_check(struct standin *s, const char *id_token, json_t **claims);

/* express.c: Express 4 routing of a raw request target through mounted routers. */
/* True when Express would route target through the routers mounted at mounts[0..n) (each
 * "/<segment>") to a route "/" at the end, as Houston's callback is reached. */
bool standin_express_routes(const char *target, const char *const *mounts, size_t n);

/* callback.c: POST /v1/oauth/callback and the Houston-side test controls. */
void standin_handle_houston(void *ctx, const struct peer_request *req, struct peer_response *resp);

/* state.c: --state-dir keeps the session key and the users across restarts. */
/* Creates the directory (0700) and loads what is there: s->session_key (left NULL when none)
 * and s->users. HA_ERR_IO/CRYPTO/INVALID when the directory or a file is unusable. A no-op
 * without --state-dir. */
enum ha_err standin_state_init(struct standin *s);
enum ha_err standin_state_save_key(struct standin *s);
/* Rewrites users.json; the caller holds s->lock. Failures are logged. */
void standin_state_save_users(struct standin *s);

/* users.c: Houston's user table and each user's grants (the database GET
 * /v1/authorization reads on every call). */
/* Houston's find-or-create at the callback: adds a user for email unless there is one. */
void standin_users_touch(struct standin *s, const char *email, const char *full_name);
/* A copy of the user record for uuid (caller decrefs), or NULL when there is no such user. */
json_t *standin_users_get(struct standin *s, const char *uuid);
/* Forgets every user. */
void standin_users_reset(struct standin *s);
/* /__test/permissions (GET, POST) and /__test/session (POST); false when path is not theirs. */
bool standin_users_control(struct standin *s, const struct peer_request *req,
                           struct peer_response *resp);

/* pool.c: at most `size` decisions at a time, each held latency_ms; and the call counters. */
enum ha_err standin_pool_init(struct standin *s);
void standin_pool_cleanup(struct standin *s);
/* Counts a call on arrival: credential is the SHA-256 hex of what Houston read (NULL: none),
 * release NULL unless the host or path names a deployment. */
void standin_pool_count(struct standin *s, const char *credential, const char *host,
                        const char *release);
/* With --test-controls, keeps the names of req's headers (lower-cased, in the order received)
 * and of the pairs in its Cookie headers, never a value, for the last
 * STANDIN_MAX_HEADER_RECORDS calls. */
void standin_pool_note_headers(struct standin *s, const struct peer_request *req);
/* Waits for a free slot (false when the stand-in stops first), then holds it for the latency
 * in force. standin_pool_leave frees the slot (when held) and counts the answer's status. */
bool standin_pool_enter(struct standin *s);
void standin_pool_leave(struct standin *s, bool held, int status);
/* Back to the flags' latency and size, counters cleared. */
void standin_pool_reset(struct standin *s);
/* /__test/authz (GET, POST), /__test/authz/calls and /__test/authz/headers (GET); false when
 * path is not theirs. */
bool standin_pool_control(struct standin *s, const struct peer_request *req,
                          struct peer_response *resp);

/* authz.c: GET (and POST) /v1/authorization, Houston's decision for the ingress's auth-url. */
void standin_handle_authorization(struct standin *s, const struct peer_request *req,
                                  struct peer_response *resp);

/* app.c: the app stand-in's pages. */
void standin_handle_app(void *ctx, const struct peer_request *req, struct peer_response *resp);

#endif
