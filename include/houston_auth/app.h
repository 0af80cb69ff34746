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
struct ha_ratelimit;
struct ha_used_state;
struct ha_http_client;

/* One configuration and what is derived from it. Immutable once published; a reload
 * publishes a new view and keeps the old one alive until exit (reloads are rare, a view is a
 * few hundred bytes), so a request holding a view never sees it freed. */
struct ha_view {
    struct ha_config *cfg;
    struct ha_redirect_policy policy;
    char *redirect_uri;   /* <publicUrl>/v1/oauth/redirect */
    char *houston_cookie; /* astronomer_<snake(base)>_auth */
    char *houston_origin; /* <publicUrl>/v1/oauth/callback, the state's origin */
    long prev_key_until;  /* cfg->prev_cookie_key opens cookies until then; 0: no limit */
    struct ha_view *older;
};

struct ha_app {
    _Atomic(struct ha_view *) view;
    struct ha_http_client *client;
    struct ha_http http; /* to the tenant and Houston; tests may swap it */
    struct ha_clock clock;
    struct ha_rng rng;
    struct ha_metrics *metrics;
    struct ha_ratelimit *limits; /* token exchanges per client and in total */

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

/* Builds app from cfg, which app owns from then on (also on error): the HTTP client,
 * metrics, and the first view. Makes no request. */
enum ha_err ha_app_init(struct ha_app *app, struct ha_config *cfg);
/* The current view (never NULL after init). */
const struct ha_view *ha_app_view(const struct ha_app *app);
/* Publishes next (owned by app from then on, also on error) as the new view. Keys that need
 * a restart (listen, TLS, tenant, client id, base domain, timeouts, pools, CA) must be
 * unchanged, else HA_ERR_CONFIG with *reason naming the key and nothing changes. When the
 * cookie secret changed and next names no previous secret, the old one keeps opening
 * transaction cookies for one transaction lifetime. */
enum ha_err ha_app_reload(struct ha_app *app, struct ha_config *next, const char **reason);
/* The keys that open transaction cookies now: 1 or 2 into keys; returns the count. */
size_t ha_app_cookie_keys(const struct ha_view *v, long now, unsigned char keys[2][32]);
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
