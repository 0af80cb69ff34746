/* The sidecar's shared state, and what runs on the event loop besides logins: discovery and
 * JWKS are loaded with exponential backoff (the sidecar serves and reports not-ready until
 * they are), then JWKS is refreshed on schedule, each step an asynchronous call and a timer,
 * never a thread of its own. Nothing fixed at start is parsed per request. */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "houston_auth/app.h"
#include "houston_auth/authz_cache.h"
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
    free(v->authz_url);
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
    if (err == HA_OK)
        err = ha_buf_appendf(&b, "%s%s", cfg->houston_url, HA_HOUSTON_AUTHZ_PATH);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &v->authz_url);
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
    struct ha_http_client_opts o = {cfg->tenant_ca_file,     cfg->connect_timeout_ms,
                                    cfg->request_timeout_ms, HA_MAX_PEER_BODY,
                                    cfg->tenant_proxy,       cfg->peer_connections};
    struct ha_view *v = NULL;
    enum ha_err err;

    memset(app, 0, sizeof(*app));
    app->clock = ha_clock_system;
    app->rng = ha_rng_openssl;
    app->not_ready_reason = "discovery not loaded yet";
    pthread_mutex_init(&app->lock, NULL);
    pthread_mutex_init(&app->view_lock, NULL);
    pthread_mutex_init(&app->used_lock, NULL);
    app->backoff_ms = BACKOFF_MIN_MS;
    err = ha_http_client_new(&o, &app->client);
    if (err == HA_OK)
        err = ha_loop_new(&app->loop);
    if (err == HA_OK)
        err = ha_http_client_attach(app->client, app->loop);
    if (err != HA_OK) {
        ha_config_free(cfg);
        return err;
    }
    app->http = ha_http_client_iface(app->client);
    app->transport = ha_http_client_transport(app->client);
    err = view_new(cfg, &v);
    if (err != HA_OK)
        return err;
    app->view = v;
    err = ha_metrics_new(&app->metrics);
    if (err == HA_OK)
        err = ha_ratelimit_new(HA_RATELIMIT_SLOTS, &app->limits);
    if (err == HA_OK) {
        struct ha_authz_cache_limits lim = {
            (size_t)cfg->authz_max_entries, (size_t)cfg->authz_max_mb * 1024 * 1024,
            (uint64_t)cfg->authz_allow_ttl_s * 1000, (uint64_t)cfg->authz_deny_ttl_s * 1000};
        err = ha_authz_cache_new(&lim, &app->authz);
        /* Misses hold suspended connections: at most a quarter of them, so a flood of misses
         * against a slow Houston leaves room for probes and logins. */
        app->authz_max_waiting = cfg->max_connections / 4;
        atomic_init(&app->authz_waiting, 0);
    }
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

static void ready_step(void *arg);

static void arm_ready(struct ha_app *app, long ms)
{
    ha_loop_timer_arm(app->loop, &app->ready_timer, ms, ready_step, app);
}

/* Discovery or the first JWKS load failed: not ready, try again after the backoff. */
static void load_failed(struct ha_app *app, enum ha_err err, const char *reason)
{
    const struct ha_view *v = ha_app_view_acquire(app);
    ha_log(HA_LOG_WARN, "not_ready", NULL, "reason", reason, "error", ha_err_str(err), "issuer",
           v->cfg->issuer, NULL);
    ha_app_view_release(app, v);
    set_not_ready(app, reason);
    ha_oidc_provider_cleanup(&app->discovered);
    ha_jwks_cache_free(app->loading);
    app->loading = NULL;
    arm_ready(app, app->backoff_ms);
    app->backoff_ms = app->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : app->backoff_ms * 2;
}

static void wake_waiters(struct ha_app *app)
{
    struct ha_jwks_waiter *w = app->jwks_waiters;
    app->jwks_waiters = NULL;
    while (w != NULL) {
        struct ha_jwks_waiter *next = w->next;
        ha_loop_timer_cancel(app->loop, &w->timer);
        w->fn(w->arg); /* may free w */
        w = next;
    }
}

/* A waiting login's deadline came before the fetch ended: it leaves the list and goes on
 * without the new keys (its kid stays unknown). */
static void waiter_expired(void *arg)
{
    struct ha_jwks_waiter *w = arg;
    struct ha_app *app = w->app;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        app->jwks_waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->fn(w->arg); /* may free w */
}

/* A JWKS fetch ended: the first load (then ready), a scheduled refresh or a miss's refetch. */
static void on_jwks(void *ctx, enum ha_err err, struct ha_http_response *resp)
{
    struct ha_app *app = ctx;
    struct ha_jwks_cache *c = app->loading != NULL ? app->loading : app->jwks;
    bool first = app->loading != NULL, on_miss = app->jwks_fetch_on_miss;
    const struct ha_view *v;

    err = ha_jwks_cache_fetch_end(c, err, resp);
    ha_http_response_cleanup(resp);
    ha_metrics_observe_ns(app->metrics, HA_HIST_JWKS, ha_mono_ns() - app->jwks_fetch_t0);
    app->jwks_fetch_on_miss = false;
    if (first && err != HA_OK) {
        load_failed(app, err, "JWKS could not be loaded");
        return;
    }
    if (first) {
        pthread_mutex_lock(&app->lock);
        app->provider = app->discovered;
        app->jwks = c;
        app->provider_ready = true;
        app->not_ready_reason = NULL;
        pthread_mutex_unlock(&app->lock);
        memset(&app->discovered, 0, sizeof(app->discovered));
        app->loading = NULL;
        v = ha_app_view_acquire(app);
        ha_log(HA_LOG_INFO, "ready", NULL, "issuer", v->cfg->issuer, NULL);
        ha_app_view_release(app, v);
    } else if (err != HA_OK && on_miss) {
        ha_log(HA_LOG_WARN, "jwks_fetch_failed", NULL, "error", ha_err_str(err), "uri",
               ha_jwks_cache_uri(c), "cause", "unknown kid", NULL);
    } else if (err != HA_OK) {
        ha_log(HA_LOG_WARN, "jwks_refresh_failed", NULL, "reason",
               "scheduled JWKS refresh failed; cached keys keep serving", "error", ha_err_str(err),
               NULL);
    }
    if (!on_miss)
        arm_ready(app, TICK_MS);
    wake_waiters(app);
}

/* Starts the fetch c's bookkeeping allowed (fetch_begin said START). */
static void start_jwks(struct ha_app *app, const struct ha_http_request *req, bool on_miss)
{
    app->jwks_fetch_on_miss = on_miss;
    app->jwks_fetch_t0 = ha_mono_ns();
    ha_transport_start(&app->transport, req, on_jwks, app);
}

static void on_discovery(void *ctx, enum ha_err err, struct ha_http_response *resp)
{
    struct ha_app *app = ctx;
    const struct ha_view *v = ha_app_view_acquire(app);
    struct ha_jwks_cache_opts jo = {0};
    struct ha_http_request req;
    const char *reason = NULL;

    err = ha_oidc_discovery_answer(err, resp, v->cfg->issuer, &app->discovered, &reason);
    ha_http_response_cleanup(resp);
    jo.jwks_uri = app->discovered.jwks_uri;
    jo.clock = app->clock;
    jo.refresh_s = v->cfg->jwks_refresh_s;
    jo.min_refetch_s = v->cfg->jwks_min_refetch_s;
    ha_app_view_release(app, v);
    if (err != HA_OK) {
        load_failed(app, err, reason);
        return;
    }
    err = ha_jwks_cache_new(&jo, &app->loading);
    if (err != HA_OK) {
        load_failed(app, err, "JWKS cache could not be created");
        return;
    }
    /* A new cache has never loaded, so its refresh is due. */
    if (ha_jwks_cache_fetch_begin(app->loading, false, &req) == HA_JWKS_FETCH_START)
        start_jwks(app, &req, false);
}

/* The readiness timer: discovery until it and JWKS have loaded, then the scheduled refresh. */
static void ready_step(void *arg)
{
    struct ha_app *app = arg;
    struct ha_http_request req;
    const struct ha_view *v;
    enum ha_err err;

    if (app->provider_ready) {
        if (ha_jwks_cache_fetch_begin(app->jwks, false, &req) == HA_JWKS_FETCH_START)
            start_jwks(app, &req, false);
        else
            arm_ready(app, TICK_MS);
        return;
    }
    v = ha_app_view_acquire(app);
    free(app->discovery_url);
    app->discovery_url = NULL;
    err = ha_oidc_discovery_url(v->cfg->issuer, &app->discovery_url);
    ha_app_view_release(app, v);
    if (err != HA_OK) {
        load_failed(app, err, "issuer too long");
        return;
    }
    ha_oidc_discovery_request(app->discovery_url, &req);
    ha_transport_start(&app->transport, &req, on_discovery, app);
}

bool ha_app_jwks_refetch(struct ha_app *app, struct ha_jwks_waiter *w, uint64_t deadline_ns,
                         ha_loop_fn fn, void *arg)
{
    struct ha_http_request req;
    uint64_t now = ha_mono_ns();
    enum ha_jwks_fetch f;

    if (deadline_ns != 0 && deadline_ns <= now)
        return false;
    f = ha_jwks_cache_fetch_begin(app->jwks, true, &req);
    if (f == HA_JWKS_FETCH_NO)
        return false;
    memset(w, 0, sizeof(*w));
    w->fn = fn;
    w->arg = arg;
    w->app = app;
    w->next = app->jwks_waiters;
    if (w->next != NULL)
        w->next->prev = w;
    app->jwks_waiters = w;
    if (deadline_ns != 0)
        ha_loop_timer_arm(app->loop, &w->timer, (long)((deadline_ns - now + 999999u) / 1000000u),
                          waiter_expired, w);
    if (f == HA_JWKS_FETCH_START)
        start_jwks(app, &req, true); /* may end at once, and wake w */
    return true;
}

static void start_here(void *arg)
{
    arm_ready(arg, 0);
}

enum ha_err ha_app_start(struct ha_app *app)
{
    enum ha_err err = ha_loop_start(app->loop);
    if (err != HA_OK)
        return err;
    app->loop_started = true;
    return ha_loop_post(app->loop, start_here, app);
}

/* On the loop, before it stops: every call in flight ends, so every login answers. */
static void close_here(void *arg)
{
    struct ha_app *app = arg;
    ha_loop_timer_cancel(app->loop, &app->ready_timer);
    ha_http_client_close(app->client);
}

void ha_app_stop(struct ha_app *app)
{
    if (!app->loop_started)
        return;
    ha_loop_stop(app->loop, close_here, app);
    app->loop_started = false;
}

void ha_app_cleanup(struct ha_app *app)
{
    ha_app_stop(app);
    ha_jwks_cache_free(app->jwks);
    ha_jwks_cache_free(app->loading);
    ha_oidc_provider_cleanup(&app->provider);
    ha_oidc_provider_cleanup(&app->discovered);
    free(app->discovery_url);
    ha_http_client_free(app->client);
    ha_loop_free(app->loop);
    ha_metrics_free(app->metrics);
    ha_ratelimit_free(app->limits);
    ha_authz_cache_free(app->authz);
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
