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
#define STANDIN_MAX_RECORDS 10000
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
};

struct standin {
    struct standin_config cfg;
    atomic_bool stopping;
    EVP_PKEY *session_key; /* RSA-2048, generated at start: signs session JWTs */
    char kid[48];

    pthread_mutex_t lock;
    json_t *received; /* array of callback records, oldest first */
    json_t *fault;    /* object of fault switches */

    struct ha_http_client *client; /* for the tenant's JWKS; NULL when unchecked */
    pthread_mutex_t jwks_lock;
    json_t *jwks_keys; /* the signing keys of the last JWKS fetched, or NULL */
};

/* session.c: the cookie name, session JWTs and reading a JWT's payload. */
/* "astronomer_" + lodash snakeCase(base) + "_auth". *out caller frees. */
enum ha_err standin_cookie_name(const char *base, char **out);
enum ha_err standin_session_init(struct standin *s);
/* A session JWT {uuid, email, iat, exp} signed RS256 with the stand-in's key. */
enum ha_err standin_session_mint(struct standin *s, const char *email, char **out);
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

/* app.c: the app stand-in's pages. */
void standin_handle_app(void *ctx, const struct peer_request *req, struct peer_response *resp);

#endif
