/* The sidecar's shared state and its one background thread: discovery and JWKS are loaded
 * with exponential backoff (the sidecar serves and reports not-ready until they are), then
 * JWKS is refreshed on schedule. Nothing fixed at start is parsed per request. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "houston_auth/app.h"
#include "houston_auth/buf.h"
#include "houston_auth/houston.h"
#include "houston_auth/log.h"
#include "houston_auth/metrics.h"
#include "houston_auth/proto.h"

#define USED_SLOTS 16384 /* power of two */
#define USED_PROBES 8
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define TICK_MS 1000

struct ha_used_state {
    uint64_t hash;
    long expires;
};

enum ha_err ha_app_init(struct ha_app *app, const struct ha_config *cfg)
{
    struct ha_http_client_opts o = {cfg->tenant_ca_file, cfg->connect_timeout_ms,
                                    cfg->request_timeout_ms, HA_MAX_PEER_BODY};
    struct ha_buf b;
    enum ha_err err;

    memset(app, 0, sizeof(*app));
    app->cfg = cfg;
    app->clock = ha_clock_system;
    app->rng = ha_rng_openssl;
    app->policy.base_domain = cfg->base_domain;
    app->policy.app_origin = cfg->app_origin;
    app->not_ready_reason = "discovery not loaded yet";
    pthread_mutex_init(&app->lock, NULL);
    pthread_mutex_init(&app->used_lock, NULL);
    pthread_cond_init(&app->wake, NULL);
    err = ha_http_client_new(&o, &app->client);
    if (err != HA_OK)
        return err;
    app->http = ha_http_client_iface(app->client);
    err = ha_metrics_new(&app->metrics);
    if (err == HA_OK)
        err = ha_houston_cookie_name(cfg->base_domain, &app->houston_cookie);
    app->used = calloc(USED_SLOTS, sizeof(*app->used));
    if (err == HA_OK && app->used == NULL)
        err = HA_ERR_NOMEM;
    ha_buf_init(&b, HA_MAX_URL);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, "%s%s", cfg->public_url, HA_PATH_REDIRECT);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &app->redirect_uri);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, "%s%s", cfg->public_url, HA_HOUSTON_CALLBACK_PATH);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &app->houston_origin);
    ha_buf_cleanup(&b);
    return err;
}

static void set_not_ready(struct ha_app *app, const char *reason)
{
    pthread_mutex_lock(&app->lock);
    app->not_ready_reason = reason;
    pthread_mutex_unlock(&app->lock);
}

enum ha_err ha_app_load_provider(struct ha_app *app, const char **reason)
{
    struct ha_oidc_provider p = {0};
    struct ha_jwks_cache *jwks = NULL;
    struct ha_jwks_cache_opts jo;
    enum ha_err err;
    uint64_t t0;

    err = ha_oidc_discover(&app->http, app->cfg->issuer, &p, reason);
    if (err != HA_OK)
        goto out;
    jo.jwks_uri = p.jwks_uri;
    jo.http = app->http;
    jo.clock = app->clock;
    jo.refresh_s = app->cfg->jwks_refresh_s;
    jo.min_refetch_s = app->cfg->jwks_min_refetch_s;
    err = ha_jwks_cache_new(&jo, &jwks);
    if (err != HA_OK) {
        *reason = "JWKS cache could not be created";
        goto out;
    }
    t0 = ha_mono_ns();
    err = ha_jwks_cache_refresh(jwks);
    ha_metrics_observe_ns(app->metrics, HA_HIST_JWKS, ha_mono_ns() - t0);
    if (err != HA_OK) {
        *reason = "JWKS could not be loaded";
        goto out;
    }
    pthread_mutex_lock(&app->lock);
    app->provider = p;
    app->jwks = jwks;
    app->provider_ready = true;
    app->not_ready_reason = NULL;
    pthread_mutex_unlock(&app->lock);
    memset(&p, 0, sizeof(p));
    jwks = NULL;
out:
    ha_oidc_provider_cleanup(&p);
    ha_jwks_cache_free(jwks);
    return err;
}

/* Waits up to ms or until stop; returns true when stopping. */
static bool nap(struct ha_app *app, long ms)
{
    struct timespec ts;
    bool stop;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&app->lock);
    while (!app->stopping) {
        if (pthread_cond_timedwait(&app->wake, &app->lock, &ts) == ETIMEDOUT)
            break;
    }
    stop = app->stopping;
    pthread_mutex_unlock(&app->lock);
    return stop;
}

static void *background(void *arg)
{
    struct ha_app *app = arg;
    long backoff = BACKOFF_MIN_MS;
    const char *reason = NULL;

    while (!ha_app_ready(app, NULL)) {
        enum ha_err err = ha_app_load_provider(app, &reason);
        if (err == HA_OK) {
            ha_log(HA_LOG_INFO, "ready", NULL, "issuer", app->cfg->issuer, NULL);
            break;
        }
        set_not_ready(app, reason);
        ha_log(HA_LOG_WARN, "not_ready", NULL, "reason", reason, "error", ha_err_str(err), "issuer",
               app->cfg->issuer, NULL);
        if (nap(app, backoff))
            return NULL;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    while (!nap(app, TICK_MS)) {
        uint64_t t0 = ha_mono_ns();
        struct ha_jwks_cache_stats before, after;
        ha_jwks_cache_get_stats(app->jwks, &before);
        if (ha_jwks_cache_tick(app->jwks) != HA_OK)
            ha_log(HA_LOG_WARN, "jwks_refresh_failed", NULL, "reason",
                   "scheduled JWKS refresh failed; cached keys keep serving", NULL);
        ha_jwks_cache_get_stats(app->jwks, &after);
        if (after.fetches != before.fetches)
            ha_metrics_observe_ns(app->metrics, HA_HIST_JWKS, ha_mono_ns() - t0);
    }
    return NULL;
}

enum ha_err ha_app_start(struct ha_app *app)
{
    if (pthread_create(&app->thread, NULL, background, app) != 0)
        return HA_ERR_NOMEM;
    app->thread_started = true;
    return HA_OK;
}

void ha_app_stop(struct ha_app *app)
{
    if (!app->thread_started)
        return;
    pthread_mutex_lock(&app->lock);
    app->stopping = true;
    pthread_cond_broadcast(&app->wake);
    pthread_mutex_unlock(&app->lock);
    pthread_join(app->thread, NULL);
    app->thread_started = false;
}

void ha_app_cleanup(struct ha_app *app)
{
    ha_app_stop(app);
    ha_jwks_cache_free(app->jwks);
    ha_oidc_provider_cleanup(&app->provider);
    ha_http_client_free(app->client);
    ha_metrics_free(app->metrics);
    free(app->houston_cookie);
    free(app->redirect_uri);
    free(app->houston_origin);
    free(app->used);
    pthread_mutex_destroy(&app->lock);
    pthread_mutex_destroy(&app->used_lock);
    pthread_cond_destroy(&app->wake);
    memset(app, 0, sizeof(*app));
}

bool ha_app_ready(struct ha_app *app, const char **reason)
{
    bool ready;
    pthread_mutex_lock(&app->lock);
    ready = app->provider_ready;
    if (!ready && reason != NULL)
        *reason = app->not_ready_reason != NULL ? app->not_ready_reason : "not ready";
    pthread_mutex_unlock(&app->lock);
    return ready;
}

static uint64_t state_hash(const char *state)
{
    unsigned char md[32];
    uint64_t h = 0;
    EVP_Digest(state, strlen(state), md, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 8; i++)
        h = (h << 8) | md[i];
    return h == 0 ? 1 : h;
}

enum ha_err ha_app_redeem_state(struct ha_app *app, const char *state, long now, long ttl)
{
    uint64_t h = state_hash(state);
    size_t base = (size_t)h & (USED_SLOTS - 1), victim = base;
    enum ha_err err = HA_OK;

    pthread_mutex_lock(&app->used_lock);
    for (size_t i = 0; i < USED_PROBES; i++) {
        struct ha_used_state *s = &app->used[(base + i) & (USED_SLOTS - 1)];
        if (s->hash == h && s->expires >= now) {
            err = HA_ERR_REFUSED;
            goto out;
        }
        /* Reuse an expired slot, else evict the one that expires first. */
        if (s->expires < app->used[victim].expires || s->expires < now)
            victim = (base + i) & (USED_SLOTS - 1);
    }
    app->used[victim].hash = h;
    app->used[victim].expires = now + ttl;
out:
    pthread_mutex_unlock(&app->used_lock);
    return err;
}
