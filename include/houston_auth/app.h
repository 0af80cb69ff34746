/* The running sidecar's shared state, built once by main() and read by every handler. */
#ifndef HOUSTON_AUTH_APP_H
#define HOUSTON_AUTH_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include "houston_auth/config.h"
#include "houston_auth/http.h"
#include "houston_auth/http_client.h"
#include "houston_auth/jwks.h"
#include "houston_auth/loop.h"
#include "houston_auth/oidc.h"
#include "houston_auth/redirect_guard.h"
#include "houston_auth/util.h"

struct ha_metrics;
struct ha_ratelimit;
struct ha_loop;
struct ha_used_state;
struct ha_http_client;
struct ha_authz_cache;

/* Cookie keys a reload retired: each keeps opening transaction cookies for one transaction
 * lifetime after its retirement, so logins in flight survive any number of rotations. */
#define HA_MAX_RETIRED_KEYS 4
/* The current key, the configured previous one, and the retired ones. */
#define HA_MAX_OPEN_KEYS (2 + HA_MAX_RETIRED_KEYS)

struct ha_retired_key {
    unsigned char key[HA_COOKIE_KEY_LEN];
    long until; /* opens cookies while now < until */
};

/* One configuration and what is derived from it, immutable once published. A request takes
 * one (ha_app_view_acquire) and reads only it, so a reload can never mix two configurations
 * inside one answer; a view a reload replaced is freed when its last holder lets go. */
struct ha_view {
    struct ha_config *cfg;
    struct ha_redirect_policy policy;
    char *redirect_uri;   /* <publicUrl>/v1/oauth/redirect */
    char *houston_cookie; /* astronomer_<snake(base)>_auth */
    char *houston_origin; /* <publicUrl>/v1/oauth/callback, the state's origin */
    char *authz_url;      /* <houstonUrl>/v1/authorization, the gate's peer */
    struct ha_retired_key retired[HA_MAX_RETIRED_KEYS];
    size_t nretired;
    int holders;                /* requests holding it; under ha_app.view_lock */
    struct ha_view *next_stale; /* replaced but still held: ha_app.stale's list */
};

/* A login waiting for a JWKS fetch that an unknown kid started (ha_app_jwks_refetch). */
struct ha_jwks_waiter {
    ha_loop_fn fn;
    void *arg;
    struct ha_jwks_waiter *prev, *next;
    struct ha_app *app;
    struct ha_timer timer; /* the login's deadline: it stops waiting then */
};

struct ha_app {
    pthread_mutex_t view_lock; /* guards view, stale and every view's holders */
    struct ha_view *view;
    struct ha_view *stale; /* views a reload replaced while requests still held them */
    struct ha_http_client *client;
    struct ha_http http;           /* synchronous: --check-config and ha_app_load_provider */
    struct ha_loop *loop;          /* the event loop: outbound calls, timers */
    struct ha_transport transport; /* to the tenant and Houston; tests may swap it */
    struct ha_clock clock;
    struct ha_rng rng;
    struct ha_metrics *metrics;
    struct ha_ratelimit *limits;  /* token exchanges per client and in total */
    struct ha_authz_cache *authz; /* the gate's decisions (GET /v1/authorization) */
    atomic_long authz_waiting; /* gate requests waiting on Houston (their own call or another's) */
    long authz_max_waiting;    /* past it a miss is 503 at once: a quarter of maxConnections */

    /* Discovery, loaded by the readiness loop; read under lock. */
    pthread_mutex_t lock;
    struct ha_oidc_provider provider;
    bool provider_ready;
    const char *not_ready_reason; /* static string */
    struct ha_jwks_cache *jwks;   /* NULL until discovery succeeds */

    /* Readiness and refresh, on the loop: discovery and JWKS with backoff, then the JWKS
     * refresh on schedule. The loop thread's only. */
    struct ha_timer ready_timer;
    long backoff_ms;
    struct ha_oidc_provider discovered; /* discovery done, JWKS not yet */
    char *discovery_url;
    struct ha_jwks_cache *loading; /* the first JWKS load in flight */
    bool jwks_fetch_on_miss;       /* the fetch in flight was started by an unknown kid */
    uint64_t jwks_fetch_t0;
    struct ha_jwks_waiter *jwks_waiters;
    bool loop_started;

    /* States already redeemed by this process (defence in depth next to the cleared cookie
     * and the tenant's single-use code). */
    pthread_mutex_t used_lock;
    struct ha_used_state *used;
};

/* Builds app from cfg, which app owns from then on (also on error): the HTTP client,
 * metrics, and the first view. Makes no request. */
enum ha_err ha_app_init(struct ha_app *app, struct ha_config *cfg);
/* The current view, held until ha_app_view_release: what one request (or one background
 * step) reads, whatever reloads happen meanwhile. Never NULL after init. */
const struct ha_view *ha_app_view_acquire(struct ha_app *app);
void ha_app_view_release(struct ha_app *app, const struct ha_view *v);
/* The current view, borrowed: valid only until the next reload, so only for the thread that
 * reloads (main) and for tests. */
const struct ha_view *ha_app_view(struct ha_app *app);
/* Publishes next (owned by app from then on, also on error) as the new view. Keys that need
 * a restart (ha_config_restart_key: listen, TLS, tenant, client id, base domain, timeouts,
 * pools, CA, proxy) must be unchanged, else HA_ERR_CONFIG with *reason naming the key and
 * nothing changes. Every
 * cookie key the old view opened with and next does not (its current key, its configured
 * previous one, its retired ones) keeps opening transaction cookies for one transaction
 * lifetime (at most HA_MAX_RETIRED_KEYS, the longest-lived kept). */
enum ha_err ha_app_reload(struct ha_app *app, struct ha_config *next, const char **reason);
/* The keys that open transaction cookies at now, current first; returns the count (1 to
 * HA_MAX_OPEN_KEYS). */
size_t ha_app_cookie_keys(const struct ha_view *v, long now,
                          unsigned char keys[HA_MAX_OPEN_KEYS][HA_COOKIE_KEY_LEN]);
/* Starts the event loop's thread; on it, discovery and JWKS load with backoff, then JWKS is
 * refreshed on schedule. */
enum ha_err ha_app_start(struct ha_app *app);
/* Ends every outbound call in flight (their callbacks see HA_ERR_IO), then stops the loop's
 * thread. Idempotent. */
void ha_app_stop(struct ha_app *app);
/* On a kid the key set lacks: joins the JWKS fetch in flight or starts one (at most one per
 * jwksMinRefetchSeconds), and returns true: w->fn(w->arg) then runs once, when the fetch ends
 * (the key set may hold the kid) or at deadline_ns (ha_mono_ns(); 0: none), whichever comes
 * first: a login never waits on the fetch past its own deadline. False when no fetch may start
 * now, or the deadline has passed: the kid is unknown. The loop thread (or, with an inline
 * transport, the caller's). */
bool ha_app_jwks_refetch(struct ha_app *app, struct ha_jwks_waiter *w, uint64_t deadline_ns,
                         ha_loop_fn fn, void *arg);
void ha_app_cleanup(struct ha_app *app);

/* True when discovery and JWKS have loaded; then app->provider and app->jwks are immutable
 * and may be read without the lock. Otherwise *reason says why (static). */
bool ha_app_ready(struct ha_app *app, const char **reason);

/* Records state as redeemed until now + ttl. HA_ERR_REFUSED when it already was. */
enum ha_err ha_app_redeem_state(struct ha_app *app, const char *state, long now, long ttl);

#endif
