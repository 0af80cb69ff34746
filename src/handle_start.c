/* GET /v1/oauth/start: begins a login. Validates what the UI asked for (provider,
 * integration, redirect, extras, inviteToken), makes a transaction (state, nonce, PKCE
 * verifier) sealed into its own cookie, keeps the browser's transaction cookies within the
 * jar's budget (at most HA_TXN_MAX_COOKIES and HA_TXN_JAR_MAX bytes, the new one included:
 * several tabs may log in at once; the oldest go), and redirects to the tenant. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "houston_auth/handlers.h"
#include "houston_auth/log.h"
#include "houston_auth/metrics.h"
#include "houston_auth/oidc.h"
#include "houston_auth/proto.h"
#include "houston_auth/transaction.h"

/* The jar's budget holds (proto.h): a new cookie always fits once the others are gone, and a
 * jar at its budget with Houston's cookie and one more from a concurrent start still fits
 * ingress-nginx's header line. */
_Static_assert(HA_TXN_PAIR_MAX <= HA_TXN_JAR_MAX, "one transaction cookie fits the jar");
_Static_assert(HA_COOKIE_HEADER_BUDGET + HA_TXN_PAIR_MAX < HA_NGINX_HEADER_LINE,
               "the budget and a concurrent start's cookie fit nginx's 8 KiB line");

#define DEFAULT_REDIRECT "/oauth"
#define MAX_LOGIN_HINT 256

struct start_params {
    const char *integration;
    const char *redirect;
    const char *extras;
    const char *invite;
    const char *login_hint;
};

/* Printable ASCII only, 1..max bytes. */
static int printable(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    }
    return 1;
}

static int extras_ok(const char *s)
{
    json_t *v;
    int ok;
    if (strlen(s) > HA_MAX_EXTRAS)
        return 0;
    v = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    ok = v != NULL && json_is_object(v);
    json_decref(v);
    return ok;
}

/* NULL when params are acceptable, else the reason. */
static const char *read_params(const struct ha_ctx *cx, const struct ha_request *req,
                               struct start_params *p)
{
    const char *provider = ha_kvlist_get(&req->query, "provider");
    const char *names[] = {"provider", "integration", "redirect",
                           "extras",   "inviteToken", "login_hint"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (ha_kvlist_count(&req->query, names[i]) > 1)
            return "a parameter was given twice";
    }
    if (provider != NULL && strcmp(provider, HA_HOUSTON_PROVIDER) != 0)
        return "provider is not auth0";
    p->integration = ha_kvlist_get(&req->query, "integration");
    if (p->integration == NULL || p->integration[0] == '\0')
        p->integration = HA_HOUSTON_INTEGRATION_SELF;
    /* Passed to the tenant as connection=: only the connections the administrator allowed,
     * so nobody can pick one that lets anyone sign up (a database connection, say). */
    if (!ha_config_connection_ok(p->integration, strlen(p->integration)))
        return "integration is not a connection name";
    if (!ha_config_connection_allowed(cx->view->cfg, p->integration))
        return "integration is not an allowed connection (authSidecar.allowedConnections)";
    p->redirect = ha_kvlist_get(&req->query, "redirect");
    if (p->redirect == NULL || p->redirect[0] == '\0')
        p->redirect = DEFAULT_REDIRECT;
    if (ha_redirect_check(&cx->view->policy, p->redirect) != HA_OK)
        return "redirect refused by the allowlist";
    p->extras = ha_kvlist_get(&req->query, "extras");
    if (p->extras != NULL && !extras_ok(p->extras))
        return "extras is not a JSON object";
    p->invite = ha_kvlist_get(&req->query, "inviteToken");
    if (p->invite != NULL && !printable(p->invite, HA_MAX_INVITE))
        return "inviteToken is malformed";
    p->login_hint = ha_kvlist_get(&req->query, "login_hint");
    if (p->login_hint != NULL && !printable(p->login_hint, MAX_LOGIN_HINT))
        return "login_hint is malformed";
    return NULL;
}

struct old_txn {
    char name[64];
    size_t size;  /* "name=value; " in the Cookie header */
    long created; /* -1: unreadable, goes first */
};

/* Whether olds[0..n) already holds name (one entry per name: a browser sends one cookie per
 * name here, and one clearing line clears every copy). */
static bool listed(const struct old_txn *olds, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(olds[i].name, name) == 0)
            return true;
    }
    return false;
}

/* The browser's transaction cookies: only names of the shape the sidecar makes (anything
 * else is not its cookie, and a name that is not a token could not even be formatted to
 * clear it), with their size and, when they open, their creation time. */
static size_t list_old(const struct ha_ctx *cx, const struct ha_request *req,
                       struct old_txn olds[HA_MAX_COOKIE_PAIRS], size_t *total)
{
    const struct ha_view *v = cx->view;
    unsigned char keys[HA_MAX_OPEN_KEYS][HA_COOKIE_KEY_LEN];
    long now = cx->app->clock.now(cx->app->clock.ctx);
    size_t n = 0, nkeys = ha_app_cookie_keys(v, now, keys);

    *total = 0;
    for (size_t i = 0; i < req->cookies.count && n < HA_MAX_COOKIE_PAIRS; i++) {
        const struct ha_kv *kv = &req->cookies.items[i];
        size_t vlen = strlen(kv->value);
        struct ha_txn t;
        if (!ha_txn_check_cookie_name(kv->key) || listed(olds, n, kv->key))
            continue;
        memcpy(olds[n].name, kv->key, strlen(kv->key) + 1);
        olds[n].size = strlen(kv->key) + 1 + vlen + 2;
        olds[n].created = -1;
        if (ha_txn_open(kv->value, vlen, kv->key, (const unsigned char(*)[32])keys, nkeys, now,
                        v->cfg->txn_ttl_s, &t) == HA_OK) {
            olds[n].created = t.created;
            ha_txn_cleanup(&t);
        }
        *total += olds[n].size;
        n++;
    }
    OPENSSL_cleanse(keys, sizeof(keys));
    return n;
}

/* Clears the oldest transaction cookies (unreadable ones first) until, with the new one of
 * new_size bytes, at most HA_TXN_MAX_COOKIES remain within HA_TXN_JAR_MAX bytes; at most
 * HA_TXN_EVICT_MAX a response, because clients drop Set-Cookie lines past a count (curl keeps
 * 50). A planted flood drains over a few starts. */
static enum ha_err evict_old(const struct ha_ctx *cx, const struct ha_request *req, size_t new_size,
                             struct ha_response *resp)
{
    struct old_txn olds[HA_MAX_COOKIE_PAIRS];
    size_t total = 0, n = list_old(cx, req, olds, &total);
    enum ha_err err = HA_OK;

    for (size_t cleared = 0; n > 0 && cleared < HA_TXN_EVICT_MAX && err == HA_OK &&
                             (n + 1 > HA_TXN_MAX_COOKIES || total + new_size > HA_TXN_JAR_MAX);
         cleared++) {
        size_t oldest = 0;
        char *clear = NULL;
        for (size_t i = 1; i < n; i++) {
            if (olds[i].created < olds[oldest].created)
                oldest = i;
        }
        err = ha_txn_cookie_header(cx, olds[oldest].name, NULL, &clear);
        if (err == HA_OK)
            err = ha_response_add_cookie(resp, clear);
        total -= olds[oldest].size;
        olds[oldest] = olds[--n];
    }
    return err;
}

static enum ha_err begin(const struct ha_ctx *cx, const struct ha_request *req,
                         const struct start_params *p, struct ha_response *resp)
{
    struct ha_txn t;
    struct ha_authorize_params a = {
        cx->view->cfg->client_id, cx->view->redirect_uri, cx->view->cfg->audience,
        p->integration,           p->login_hint,          NULL};
    char name[64], *sealed = NULL, *set = NULL;
    enum ha_err err;

    err = ha_txn_init(&t, &cx->app->rng, cx->app->clock.now(cx->app->clock.ctx), p->integration,
                      p->redirect, p->extras, p->invite);
    if (err != HA_OK)
        return err;
    ha_txn_cookie_name(t.state, name);
    err = ha_txn_seal(&t, cx->view->cfg->cookie_key, &cx->app->rng, &sealed);
    /* The new cookie goes first: a client that drops Set-Cookie lines past a count drops a
     * clearing line, never it. */
    if (err == HA_OK)
        err = ha_txn_cookie_header(cx, name, sealed, &set);
    if (err == HA_OK) {
        err = ha_response_add_cookie(resp, set);
        set = NULL;
    }
    if (err == HA_OK)
        err = evict_old(cx, req, strlen(name) + 1 + strlen(sealed) + 2, resp);
    if (err == HA_OK)
        err = ha_oidc_authorize_url(&cx->app->provider, &a, &t, &resp->location);
    ha_free_secret(sealed);
    ha_txn_cleanup(&t);
    return err;
}

enum ha_err ha_handle_start(const struct ha_ctx *cx, const struct ha_request *req,
                            struct ha_response *resp)
{
    struct start_params p = {0};
    struct ha_login_error e = {HA_E_NOT_READY, NULL, NULL, NULL};
    enum ha_err err;

    if (!ha_app_ready(cx->app, &e.reason))
        return ha_login_fail(cx, req, resp, &e, NULL);
    e.code = HA_E_BAD_REQUEST;
    e.reason = read_params(cx, req, &p);
    if (e.reason != NULL)
        return ha_login_fail(cx, req, resp, &e, NULL);
    err = begin(cx, req, &p, resp);
    if (err == HA_ERR_TOO_LARGE) { /* each parameter fits its cap, all of them not the cookie */
        e.reason = "parameters too large for a transaction cookie";
        return ha_login_fail(cx, req, resp, &e, NULL);
    }
    if (err != HA_OK)
        return err; /* the router logs it, once */
    ha_metrics_start(cx->app->metrics);
    ha_log(HA_LOG_INFO, "login_started", req->request_id, "integration", p.integration, "redirect",
           p.redirect, NULL);
    resp->status = 302;
    resp->no_store = 1;
    return ha_response_text(resp, 302, "text/plain; charset=utf-8", "Redirecting to sign-in.\n");
}
