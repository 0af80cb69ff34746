/* The running sidecar's shared state, built once by main() and read by every handler. */
#ifndef HOUSTON_AUTH_APP_H
#define HOUSTON_AUTH_APP_H

#include <pthread.h>
#include <stdbool.h>
#include "houston_auth/config.h"
#include "houston_auth/http.h"
#include "houston_auth/http_client.h"
#include "houston_auth/jwks.h"
#include "houston_auth/oidc.h"
#include "houston_auth/redirect_guard.h"
#include "houston_auth/util.h"

struct ha_metrics;
struct ha_used_state;
struct ha_http_client;

struct ha_app {
    const struct ha_config *cfg;
    struct ha_http_client *client;
    struct ha_http http; /* to the tenant and Houston; tests may swap it */
    struct ha_clock clock;
    struct ha_rng rng;
    struct ha_redirect_policy policy;
    char *redirect_uri;   /* <publicUrl>/v1/oauth/redirect */
    char *houston_cookie; /* astronomer_<snake(base)>_auth */
    char *houston_origin; /* https://houston.<base>/v1/oauth/callback for state */
    struct ha_metrics *metrics;

    /* Discovery, loaded by the readiness loop; read under lock. */
    pthread_mutex_t lock;
    struct ha_oidc_provider provider;
    bool provider_ready;
    const char *not_ready_reason; /* static string */
    struct ha_jwks_cache *jwks;   /* NULL until discovery succeeds */

    /* Background readiness/refresh thread. */
    pthread_t thread;
    pthread_cond_t wake;
    bool stopping;
    bool thread_started;

    /* States already redeemed by this process (defence in depth next to the cleared cookie
     * and the tenant's single-use code). */
    pthread_mutex_t used_lock;
    struct ha_used_state *used;
};

/* Builds app from cfg (borrowed for app's lifetime): the HTTP client, metrics, the redirect
 * policy and derived strings. Makes no request. */
enum ha_err ha_app_init(struct ha_app *app, const struct ha_config *cfg);
/* Starts the thread that loads discovery and JWKS with backoff, then refreshes JWKS. */
enum ha_err ha_app_start(struct ha_app *app);
/* One synchronous attempt at discovery + JWKS (tests, --check-config). */
enum ha_err ha_app_load_provider(struct ha_app *app, const char **reason);
void ha_app_stop(struct ha_app *app);
void ha_app_cleanup(struct ha_app *app);

/* True when discovery and JWKS have loaded; then app->provider and app->jwks are immutable
 * and may be read without the lock. Otherwise *reason says why (static). */
bool ha_app_ready(struct ha_app *app, const char **reason);

/* Records state as redeemed until now + ttl. HA_ERR_REFUSED when it already was. */
enum ha_err ha_app_redeem_state(struct ha_app *app, const char *state, long now, long ttl);

#endif
