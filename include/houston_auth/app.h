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

struct ha_app {
    const struct ha_config *cfg;
    struct ha_http http;             /* to the tenant and Houston */
    struct ha_clock clock;
    struct ha_rng rng;
    struct ha_redirect_policy policy;
    char *redirect_uri;              /* <publicUrl>/v1/oauth/redirect */
    char *houston_cookie;            /* astronomer_<snake(base)>_auth */
    char *houston_origin;            /* https://houston.<base>/v1/oauth/callback for state */
    struct ha_metrics *metrics;

    /* Discovery, loaded by the readiness loop; read under lock. */
    pthread_mutex_t lock;
    struct ha_oidc_provider provider;
    bool provider_ready;
    const char *not_ready_reason;    /* static string */
    struct ha_jwks_cache *jwks;      /* NULL until discovery succeeds */
};

/* True with a copy of the provider when discovery and JWKS have loaded. */
bool ha_app_ready(struct ha_app *app, const char **reason);

#endif
