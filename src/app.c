/* The sidecar's shared state and its one background thread: discovery and JWKS are loaded
 * with exponential backoff (the sidecar serves and reports not-ready until they are), then
 * JWKS is refreshed on schedule. Nothing fixed at start is parsed per request. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "houston_auth/app.h"
#include "houston_auth/buf.h"
#include "houston_auth/houston.h"
#include "houston_auth/log.h"
#include "houston_auth/metrics.h"
#include "houston_auth/proto.h"
#include "houston_auth/ratelimit.h"

#define USED_SLOTS 16384 /* power of two */
#define USED_PROBES 8
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define TICK_MS 1000

struct ha_used_state {
    uint64_t hash;
    long expires;
};

static void view_free(struct ha_view *v)
{
    if (v == NULL)
        return;
    ha_config_free(v->cfg);
    free(v->redirect_uri);
    free(v->houston_cookie);
    free(v->houston_origin);
    OPENSSL_cleanse(v->retired, sizeof(v->retired));
    free(v);
}

/* A view of cfg, which it owns from then on (also on error). */
static enum ha_err view_new(struct ha_config *cfg, struct ha_view **out)
{
    struct ha_view *v = calloc(1, sizeof(*v));
    struct ha_buf b;
    enum ha_err err;

    if (v == NULL) {
        ha_config_free(cfg);
        return HA_ERR_NOMEM;
    }
    v->cfg = cfg;
    v->policy.base_domain = cfg->base_domain;
    v->policy.app_origin = cfg->app_origin;
    ha_buf_init(&b, HA_MAX_URL);
    err = ha_houston_cookie_name(cfg->base_domain, &v->houston_cookie);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, "%s%s", cfg->public_url, HA_PATH_REDIRECT);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &v->redirect_uri);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, "%s%s", cfg->public_url, HA_HOUSTON_CALLBACK_PATH);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &v->houston_origin);
    ha_buf_cleanup(&b);
    if (err != HA_OK) {
        view_free(v);
        return err;
    }
    *out = v;
    return HA_OK;
}

enum ha_err ha_app_init(struct ha_app *app, struct ha_config *cfg)
{
    struct ha_http_client_opts o = {cfg->tenant_ca_file, cfg->connect_timeout_ms,
                                    cfg->request_timeout_ms, HA_MAX_PEER_BODY, cfg->tenant_proxy};
    struct ha_view *v = NULL;
    enum ha_err err;

    memset(app, 0, sizeof(*app));
    app->clock = ha_clock_system;
    app->rng = ha_rng_openssl;
    app->not_ready_reason = "discovery not loaded yet";
    pthread_mutex_init(&app->lock, NULL);
    pthread_mutex_init(&app->view_lock, NULL);
    pthread_mutex_init(&app->used_lock, NULL);
    pthread_cond_init(&app->wake, NULL);
    err = ha_http_client_new(&o, &app->client);
    if (err != HA_OK) {
        ha_config_free(cfg);
        return err;
    }
    app->http = ha_http_client_iface(app->client);
    err = view_new(cfg, &v);
    if (err != HA_OK)
        return err;
    app->view = v;
    err = ha_metrics_new(&app->metrics);
    if (err == HA_OK)
        err = ha_ratelimit_new(HA_RATELIMIT_SLOTS, &app->limits);
    app->used = calloc(USED_SLOTS, sizeof(*app->used));
    if (err == HA_OK && app->used == NULL)
        err = HA_ERR_NOMEM;
    return err;
}

const struct ha_view *ha_app_view(struct ha_app *app)
{
    const struct ha_view *v;
    pthread_mutex_lock(&app->view_lock);
    v = app->view;
    pthread_mutex_unlock(&app->view_lock);
    return v;
}

const struct ha_view *ha_app_view_acquire(struct ha_app *app)
{
    struct ha_view *v;
    pthread_mutex_lock(&app->view_lock);
    v = app->view;
    v->holders++;
    pthread_mutex_unlock(&app->view_lock);
    return v;
}

/* Unlinks v from the stale list; under view_lock. */
static void unlink_stale(struct ha_app *app, const struct ha_view *v)
{
    for (struct ha_view **p = &app->stale; *p != NULL; p = &(*p)->next_stale) {
        if (*p == v) {
            *p = v->next_stale;
            return;
        }
    }
}

void ha_app_view_release(struct ha_app *app, const struct ha_view *cv)
{
    struct ha_view *v = (struct ha_view *)cv, *done = NULL;
    if (v == NULL)
        return;
    pthread_mutex_lock(&app->view_lock);
    if (--v->holders == 0 && v != app->view) {
        unlink_stale(app, v);
        done = v;
    }
    pthread_mutex_unlock(&app->view_lock);
    view_free(done);
}

/* Adds key to v's retired keys until until, unless v opens with it already; when full, the
 * one that expires first goes. */
static void retire_key(struct ha_view *v, const unsigned char *key, long until, long now)
{
    const struct ha_config *c = v->cfg;
    size_t slot = v->nretired;

    if (until <= now || CRYPTO_memcmp(key, c->cookie_key, HA_COOKIE_KEY_LEN) == 0 ||
        (c->has_prev_cookie_key && CRYPTO_memcmp(key, c->prev_cookie_key, HA_COOKIE_KEY_LEN) == 0))
        return;
    for (size_t i = 0; i < v->nretired; i++) {
        if (CRYPTO_memcmp(key, v->retired[i].key, HA_COOKIE_KEY_LEN) == 0) {
            if (v->retired[i].until < until)
                v->retired[i].until = until;
            return;
        }
    }
    if (slot == HA_MAX_RETIRED_KEYS) {
        slot = 0;
        for (size_t i = 1; i < v->nretired; i++) {
            if (v->retired[i].until < v->retired[slot].until)
                slot = i;
        }
        if (v->retired[slot].until >= until)
            return;
    } else {
        v->nretired++;
    }
    memcpy(v->retired[slot].key, key, HA_COOKIE_KEY_LEN);
    v->retired[slot].until = until;
}

/* Every key cur opened with keeps opening in next for one transaction lifetime from now
 * (a retired key no longer than it already had). */
static void carry_keys(const struct ha_view *cur, struct ha_view *next, long now)
{
    long until = now + next->cfg->txn_ttl_s;
    retire_key(next, cur->cfg->cookie_key, until, now);
    if (cur->cfg->has_prev_cookie_key)
        retire_key(next, cur->cfg->prev_cookie_key, until, now);
    for (size_t i = 0; i < cur->nretired; i++)
        retire_key(next, cur->retired[i].key,
                   cur->retired[i].until < until ? cur->retired[i].until : until, now);
}

enum ha_err ha_app_reload(struct ha_app *app, struct ha_config *next, const char **reason)
{
    struct ha_view *cur, *v = NULL, *done = NULL;
    enum ha_err err;

    pthread_mutex_lock(&app->view_lock);
    cur = app->view;
    *reason = ha_config_restart_key(cur->cfg, next);
    if (*reason != NULL) {
        pthread_mutex_unlock(&app->view_lock);
        ha_config_free(next);
        return HA_ERR_CONFIG;
    }
    err = view_new(next, &v);
    if (err != HA_OK) {
        pthread_mutex_unlock(&app->view_lock);
        *reason = "out of memory";
        return err;
    }
    carry_keys(cur, v, app->clock.now(app->clock.ctx));
    app->view = v;
    if (cur->holders == 0) {
        done = cur;
    } else {
        cur->next_stale = app->stale;
        app->stale = cur;
    }
    pthread_mutex_unlock(&app->view_lock);
    view_free(done);
    return HA_OK;
}

size_t ha_app_cookie_keys(const struct ha_view *v, long now,
                          unsigned char keys[HA_MAX_OPEN_KEYS][HA_COOKIE_KEY_LEN])
{
    size_t n = 0;

    memcpy(keys[n++], v->cfg->cookie_key, HA_COOKIE_KEY_LEN);
    if (v->cfg->has_prev_cookie_key)
        memcpy(keys[n++], v->cfg->prev_cookie_key, HA_COOKIE_KEY_LEN);
    for (size_t i = 0; i < v->nretired; i++) {
        if (now < v->retired[i].until)
            memcpy(keys[n++], v->retired[i].key, HA_COOKIE_KEY_LEN);
    }
    return n;
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
    const struct ha_view *v = ha_app_view_acquire(app);
    enum ha_err err;
    uint64_t t0;

    err = ha_oidc_discover(&app->http, v->cfg->issuer, &p, reason);
    if (err != HA_OK)
        goto out;
    jo.jwks_uri = p.jwks_uri;
    jo.http = app->http;
    jo.clock = app->clock;
    jo.refresh_s = v->cfg->jwks_refresh_s;
    jo.min_refetch_s = v->cfg->jwks_min_refetch_s;
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
    ha_app_view_release(app, v);
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
        const struct ha_view *v = ha_app_view_acquire(app);
        if (err == HA_OK)
            ha_log(HA_LOG_INFO, "ready", NULL, "issuer", v->cfg->issuer, NULL);
        else
            ha_log(HA_LOG_WARN, "not_ready", NULL, "reason", reason, "error", ha_err_str(err),
                   "issuer", v->cfg->issuer, NULL);
        ha_app_view_release(app, v);
        if (err == HA_OK)
            break;
        set_not_ready(app, reason);
        if (nap(app, backoff))
            return NULL;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    while (!nap(app, TICK_MS)) {
        uint64_t t0 = ha_mono_ns();
        struct ha_jwks_cache_stats before, after;
        enum ha_err err;
        ha_jwks_cache_get_stats(app->jwks, &before);
        err = ha_jwks_cache_tick(app->jwks);
        if (err != HA_OK)
            ha_log(HA_LOG_WARN, "jwks_refresh_failed", NULL, "reason",
                   "scheduled JWKS refresh failed; cached keys keep serving", "error",
                   ha_err_str(err), NULL);
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
    ha_ratelimit_free(app->limits);
    view_free(app->view);
    while (app->stale != NULL) { /* held by requests that never finished: none after stop */
        struct ha_view *v = app->stale;
        app->stale = v->next_stale;
        view_free(v);
    }
    free(app->used);
    pthread_mutex_destroy(&app->lock);
    pthread_mutex_destroy(&app->view_lock);
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
