/* GET /v1/authorization: the gate in front of the platform's UIs (Airflow, Flower, Grafana,
 * Kibana). The ingress's auth-url sends a subrequest here for every request a person makes to
 * one of them; the decision is Houston's (its /v1/authorization, design.md "Houston's
 * contract"), and this route keeps Houston's recent decisions so that Houston is asked about
 * a (credential, scope) once per TTL rather than once per page, script and poll.
 *
 * What is forwarded: only what Houston's decision reads. Its auth cookie (the first pair of
 * that name, as cookie-parser takes it), Authorization, X-Original-URL and X-Original-Method;
 * none of the browser's other cookies or headers reach Houston.
 *
 * The key: a keyed hash (authz_cache.h) of
 *   - the credential: the forwarded Authorization and cookie values, both, length-prefixed
 *     (an empty Authorization is not forwarded: Houston reads it as none, and so does the key);
 *   - the scope: X-Original-URL's scheme://authority and its first two path segments, raw
 *     bytes.
 * The credential is the exact bytes Houston reads a session from, so two requests share a
 * decision only when Houston would read the same session from them: a forged, truncated or
 * other person's cookie is another key. The scope is what Houston's decision reads of the URL:
 * the host's first label, and for path-routed deployments
 * (deployments.<base>/<release>/airflow) the release and the component in the path. The scope
 * is a prefix of the raw URL that ends where the second segment ends ('/', '?', '#'). Node's
 * URL parser (what Houston uses) ends the host and the segments at those characters and at
 * '\', and never later, so whatever Houston reads as host, release and component lies inside
 * the scope. Two URLs that differ there are two keys, even where Houston would see the same
 * host (case, a port, userinfo): a miss, never a wrong answer. The rest of the path is not in
 * the scope: an Airflow UI's scripts (/static/...), API polls (/api/v1/...) and a Grafana's
 * queries share one entry per person and prefix.
 *
 * What is kept: 200 for authzAllowTtlSeconds, never past the exp of the JWT Houston minted
 * for it; 401 and 403 for authzDenyTtlSeconds; nothing else (a 5xx, a timeout). Concurrent
 * misses of one key share one call. When Houston cannot be reached a miss is 503, which nginx
 * turns into an error page: a 401 would send the person to sign in again, in a loop, while
 * Houston is down.
 *
 * Threads: a hit is answered on the I/O thread (ha_handle_authz) without suspending the
 * connection; a miss suspends it and asks Houston on the event loop (ha_handle_authz_begin). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "houston_auth/authz_cache.h"
#include "houston_auth/b64url.h"
#include "houston_auth/handlers.h"
#include "houston_auth/json_view.h"
#include "houston_auth/log.h"
#include "houston_auth/metrics.h"
#include "houston_auth/proto.h"
#include "houston_auth/router.h"
#include "houston_auth/util.h"

#define BEARER "Bearer "
#define MAX_AUTHORIZATION HA_MAX_HEADER
#define MAX_ORIGINAL_URL HA_MAX_HEADER
/* Credential encoding: per value, a presence byte and a 4-byte length, then the bytes. */
#define CRED_FIELD 5
#define CRED_MAX (2 * CRED_FIELD + MAX_AUTHORIZATION + HA_MAX_COOKIE_HEADER)
#define HOUSTON_WARN_EVERY_MS 1000
/* The gate's calls wait for Houston's connections in their own queue: a burst of misses never
 * delays a login's hand-off, nor the other way round. */
#define AUTHZ_QUEUE "authz"
#define MAX_PORT_DIGITS 5
#define MAX_METHOD 32    /* X-Original-Method: an HTTP method; longer is refused */
#define SCOPE_SEGMENTS 2 /* path segments in the scope: a path-routed release and component */
#define STATUS_MIN 200
#define STATUS_MAX 599

/* Houston's response headers the ingress relays (the chart's auth-response-headers). */
static const char *const relayed[] = {"Authorization", "username", "email", NULL};

/* The parts of one gate request, borrowed from it. */
struct gate_input {
    const char *authorization; /* NULL: none */
    const char *cookie;        /* Houston's cookie value, the first pair; NULL: none */
    const char *url;           /* X-Original-URL */
    size_t scope_len;          /* of url: scheme://authority/segment/segment */
    const char *method;        /* X-Original-Method; NULL: none (or empty) */
};

/* A request waiting for Houston, or for another request's call to it. */
struct gate {
    struct ha_call *call;
    struct ha_authz_key key;
    bool tracked; /* a START: this call completes the key */
    struct ha_authz_waiter w;
    uint64_t t0;
};

/* The last time a failed Houston call was logged: an outage fails every miss, and one line a
 * second says as much as a thousand. Process-wide, as the log is. */
static _Atomic uint64_t houston_warned_ms;

static uint64_t now_ms(void)
{
    return ha_mono_ns() / 1000000u;
}

/* True when a[0..n) is an authority the ingress could have routed on: host[:port], the host
 * being letters, digits, '.', '-' and '_' or a bracketed IPv6 literal, the port digits. Not
 * userinfo: ingress-nginx routes on $host but writes X-Original-URL from the raw Host header,
 * which nginx takes with anything after a ':' ("grafana.<base>:1@x-airflow.<base>"), and Node's
 * url.parse then reads the host after the '@': Houston would decide for another host than the
 * one nginx serves. */
static bool authority_ok(const char *a, size_t n)
{
    size_t host;
    if (n > 0 && a[0] == '[') {
        host = 1 + strspn(a + 1, "0123456789abcdefABCDEF:.");
        if (host >= n || a[host] != ']')
            return false;
        host++;
    } else {
        host = strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");
        if (host == 0)
            return false;
    }
    if (host == n)
        return true;
    if (a[host] != ':' || n - host - 1 > MAX_PORT_DIGITS)
        return false;
    return strspn(a + host + 1, "0123456789") == n - host - 1;
}

/* The length of url's scope (see the top of this file), or 0 when url is not usable: not an
 * absolute http or https URL whose authority is host[:port], or holding a space or a control
 * character. */
static size_t scope_of(const char *url)
{
    const char *p;
    size_t n;
    for (p = url; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    }
    if (strncasecmp(url, "https://", 8) == 0)
        p = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        p = url + 7;
    else
        return 0;
    n = strcspn(p, "/?#");
    if (!authority_ok(p, n))
        return 0;
    p += n;
    for (int seg = 0; seg < SCOPE_SEGMENTS && *p == '/'; seg++)
        p += 1 + strcspn(p + 1, "/?#");
    return (size_t)(p - url);
}

/* A header value that can be sent on as it is: no control character but HTAB. */
static bool value_ok(const char *v)
{
    for (; v != NULL && *v != '\0'; v++) {
        if (((unsigned char)*v < ' ' && *v != '\t') || *v == 0x7f)
            return false;
    }
    return true;
}

/* Reads the gate's input; 0 when usable, else the status to answer without asking Houston. */
static int read_input(const struct ha_ctx *cx, const struct ha_request *req, struct gate_input *in)
{
    memset(in, 0, sizeof(*in));
    /* An empty Authorization is Houston's "none" (it falls back to the cookie); it is neither
     * forwarded nor part of the key, so logout's key (cookie only) names this one too. */
    in->authorization =
        req->authorization != NULL && req->authorization[0] != '\0' ? req->authorization : NULL;
    in->cookie = ha_kvlist_get(&req->cookies, cx->view->houston_cookie);
    in->url = req->original_url;
    if (in->authorization != NULL && strlen(in->authorization) > MAX_AUTHORIZATION)
        return 431;
    if (in->url == NULL)
        return 401;
    if (strlen(in->url) > MAX_ORIGINAL_URL)
        return 431;
    /* What would go on to Houston must be a header value (libmicrohttpd passes other control
     * characters than CR and LF through). */
    in->method = req->original_method != NULL && req->original_method[0] != '\0'
                     ? req->original_method
                     : NULL;
    if (!value_ok(in->authorization) || !value_ok(in->cookie) || !value_ok(in->method) ||
        (in->method != NULL && strlen(in->method) > MAX_METHOD))
        return 400;
    in->scope_len = scope_of(in->url);
    return in->scope_len == 0 ? 401 : 0;
}

static size_t put_field(unsigned char *out, const char *v)
{
    size_t n = v != NULL ? strlen(v) : 0;
    out[0] = v != NULL;
    out[1] = (unsigned char)(n >> 24);
    out[2] = (unsigned char)(n >> 16);
    out[3] = (unsigned char)(n >> 8);
    out[4] = (unsigned char)n;
    for (size_t i = 0; i < n; i++) /* bytes, not a string: no NUL is copied */
        out[CRED_FIELD + i] = (unsigned char)v[i];
    return CRED_FIELD + n;
}

/* The key of a request: its credential (authorization and cookie, each NULL when absent) and
 * its scope, with the method beside it (Houston 0.x does not read X-Original-Method, but it is
 * forwarded, so a Houston that did could not be answered for a POST with a GET's decision). The
 * values are bounded by read_input and the server's Cookie cap. */
static enum ha_err make_key(const struct ha_app *app, const struct gate_input *in,
                            struct ha_authz_key *out)
{
    unsigned char cred[CRED_MAX];
    char scope[1 + MAX_METHOD + 1 + MAX_ORIGINAL_URL];
    size_t n, m = in->method != NULL ? strlen(in->method) : 0;
    enum ha_err err;
    if ((in->authorization != NULL && strlen(in->authorization) > MAX_AUTHORIZATION) ||
        (in->cookie != NULL && strlen(in->cookie) > HA_MAX_COOKIE_HEADER) || m > MAX_METHOD ||
        in->scope_len > MAX_ORIGINAL_URL)
        return HA_ERR_TOO_LARGE;
    n = put_field(cred, in->authorization);
    n += put_field(cred + n, in->cookie);
    scope[0] = in->method != NULL ? 'M' : '-';
    memcpy(scope + 1, in->method != NULL ? in->method : "", m);
    scope[1 + m] = '\0'; /* a method holds no NUL: it ends here */
    memcpy(scope + 2 + m, in->url, in->scope_len);
    err = ha_authz_cache_key(app->authz, cred, n, scope, 2 + m + in->scope_len, out);
    OPENSSL_cleanse(cred, n);
    return err;
}

/* The answer for decision d: its status and the headers Houston sent. */
static enum ha_err relay(const struct ha_authz_decision *d, struct ha_response *resp)
{
    const char *values[] = {d->authorization, d->username, d->email};
    enum ha_err err = HA_OK;
    resp->status = d->status;
    resp->no_store = 1;
    for (size_t i = 0; i < 3 && err == HA_OK; i++) {
        if (values[i] != NULL)
            err = ha_response_add_header(resp, relayed[i], values[i]);
    }
    return err;
}

static enum ha_err refuse(struct ha_response *resp, int status)
{
    const char *why = "header too large\n";
    if (status == 401)
        why = "no usable X-Original-URL\n";
    else if (status == 400)
        why = "a control character in a header to forward\n";
    ha_router_error(resp, status, why);
    return HA_OK;
}

static enum ha_err unavailable(struct ha_response *resp, int status, const char *why)
{
    ha_router_error(resp, status, why);
    return HA_OK;
}

enum ha_err ha_handle_authz(const struct ha_ctx *cx, const struct ha_request *req,
                            struct ha_response *resp)
{
    struct gate_input in;
    struct ha_authz_key key;
    struct ha_authz_decision d = {0};
    int status = read_input(cx, req, &in);
    enum ha_err err;

    if (status != 0)
        return refuse(resp, status);
    err = make_key(cx->app, &in, &key);
    if (err != HA_OK)
        return err;
    if (!ha_authz_cache_peek(cx->app->authz, &key, now_ms(), &d))
        return HA_ERR_NOT_FOUND;
    err = relay(&d, resp);
    ha_authz_decision_cleanup(&d);
    return err;
}

/* ---- a miss: Houston is asked, on the loop ---- */

static void gate_end(struct gate *g, enum ha_err err)
{
    struct ha_call *call = g->call;
    atomic_fetch_sub(&call->cx.app->authz_waiting, 1);
    OPENSSL_cleanse(&g->key, sizeof(g->key));
    free(g);
    ha_call_done(call, err);
}

/* Another request's call for the same key ended: d is its decision, NULL when it failed. */
static void on_joined(void *arg, const struct ha_authz_decision *d)
{
    struct gate *g = arg;
    enum ha_err err = d != NULL ? relay(d, g->call->resp)
                                : unavailable(g->call->resp, 503, "Houston unavailable\n");
    gate_end(g, err);
}

/* The exp of the JWT in a "Bearer <jwt>" value, in seconds since the epoch; 0 when it has none
 * that can be read. */
static long bearer_exp(const char *authorization)
{
    const char *jwt, *dot1, *dot2;
    unsigned char *claims = NULL;
    size_t len = 0;
    struct ha_json_view v = {0};
    const struct ha_json_val *exp;
    long out = 0;

    if (strncmp(authorization, BEARER, strlen(BEARER)) != 0)
        return 0;
    jwt = authorization + strlen(BEARER);
    dot1 = strchr(jwt, '.');
    dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL ||
        ha_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &claims, &len) != HA_OK)
        return 0;
    if (ha_json_view_parse((char *)claims, len, &v) == HA_OK) {
        exp = ha_json_view_get(&v, "exp");
        if (exp != NULL && exp->type == HA_JSON_NUMBER && exp->num > 0 && exp->num < 1e15)
            out = (long)exp->num;
    }
    ha_json_view_cleanup(&v);
    OPENSSL_cleanse(claims, len);
    free(claims);
    return out;
}

/* When a 200 carrying authorization stops being kept, on now_ms()'s clock: the exp of the
 * JWT Houston minted. 0 (no bound) when it carries none; now (not kept) when its exp cannot
 * be read: the cache must never serve a token past its expiry. */
static uint64_t keep_until(const struct ha_app *app, const struct ha_authz_decision *d,
                           uint64_t now)
{
    long exp, wall;
    if (d->status != 200 || d->authorization == NULL)
        return 0;
    exp = bearer_exp(d->authorization);
    wall = app->clock.now(app->clock.ctx);
    if (exp <= wall)
        return now;
    return now + (uint64_t)(exp - wall) * 1000u;
}

static void warn_houston(const char *reason, const char *detail)
{
    uint64_t now = now_ms(), last = atomic_load(&houston_warned_ms);
    if (now - last < HOUSTON_WARN_EVERY_MS && last != 0)
        return;
    if (!atomic_compare_exchange_strong(&houston_warned_ms, &last, now))
        return;
    ha_log(HA_LOG_WARN, "authz_houston_failed", NULL, "reason", reason, "detail", detail, NULL);
}

/* Houston answered, or not (err). On the loop, or before ha_transport_start returns. */
static void on_houston(void *ctx, enum ha_err err, struct ha_http_response *r)
{
    struct gate *g = ctx;
    struct ha_app *app = g->call->cx.app;
    struct ha_authz_decision d = {0};
    uint64_t now = now_ms();
    const char *bad = NULL;
    enum ha_err rerr;

    if (err == HA_OK) {
        ha_metrics_observe_ns(app->metrics, HA_HIST_AUTHZ, ha_mono_ns() - g->t0);
        d.status = (int)r->status;
        d.authorization = r->captured[0];
        d.username = r->captured[1];
        d.email = r->captured[2];
        if (d.status < STATUS_MIN || d.status > STATUS_MAX)
            bad = "an answer with a status the gate does not relay";
        else if (r->captured_repeated)
            bad = "an answer repeating a header it relays";
        else if (!value_ok(d.authorization) || !value_ok(d.username) || !value_ok(d.email))
            bad = "a relayed header with a control character";
    } else if (err == HA_ERR_TOO_LARGE) {
        bad = "an answer over its size caps (a relayed header over 8 KiB, or the body)";
    } else {
        bad = err == HA_ERR_TIMEOUT ? "no answer in time" : "unreachable or a refused answer";
    }
    if (bad != NULL) {
        ha_metrics_authz_failure(app->metrics);
        warn_houston(bad, ha_err_str(err));
        if (g->tracked)
            ha_authz_cache_complete(app->authz, &g->key, NULL, now, 0);
        bool answered = err == HA_OK || err == HA_ERR_TOO_LARGE;
        rerr = unavailable(g->call->resp, answered ? 502 : 503,
                           answered ? "bad answer from Houston\n" : "Houston unavailable\n");
    } else {
        if (g->tracked)
            ha_authz_cache_complete(app->authz, &g->key, &d, now, keep_until(app, &d, now));
        rerr = relay(&d, g->call->resp);
    }
    ha_http_response_cleanup(r);
    gate_end(g, rerr);
}

/* a, b and c joined, or NULL when out of memory. */
static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *out = malloc(n);
    if (out != NULL)
        snprintf(out, n, "%s%s%s", a, b, c);
    return out;
}

/* Asks Houston; its answer ends g (on_houston). */
static void ask_houston(struct gate *g, const struct gate_input *in)
{
    const struct ha_view *view = g->call->cx.view;
    char *lines[5] = {NULL};
    size_t n = 0;
    bool nomem = false;
    struct ha_http_request hr = {0};

    /* The cookie as Houston's cookie-parser reads it from the browser's header: its value
     * with quotes already stripped (cookie.c), so the same value either way. */
    if (in->cookie != NULL) {
        char *pair = join(view->houston_cookie, "=", in->cookie);
        lines[n] = pair != NULL ? join("Cookie: ", pair, "") : NULL;
        nomem |= lines[n++] == NULL;
        ha_free_secret(pair);
    }
    if (in->authorization != NULL) {
        lines[n] = join("Authorization: ", in->authorization, "");
        nomem |= lines[n++] == NULL;
    }
    lines[n] = join("X-Original-URL: ", in->url, "");
    nomem |= lines[n++] == NULL;
    if (in->method != NULL) {
        lines[n] = join("X-Original-Method: ", in->method, "");
        nomem |= lines[n++] == NULL;
    }
    if (nomem) {
        for (size_t i = 0; i < n; i++)
            ha_free_secret(lines[i]);
        on_houston(g, HA_ERR_NOMEM, &(struct ha_http_response){0});
        return;
    }
    hr.method = "GET";
    hr.url = view->authz_url;
    hr.headers = (const char *const *)lines;
    hr.capture = relayed;
    hr.queue = AUTHZ_QUEUE;
    g->t0 = ha_mono_ns();
    ha_transport_start(&g->call->cx.app->transport, &hr, on_houston, g);
    for (size_t i = 0; i < n; i++)
        ha_free_secret(lines[i]);
}

void ha_handle_authz_begin(struct ha_call *call)
{
    struct ha_app *app = call->cx.app;
    struct gate_input in;
    struct ha_authz_decision d = {0};
    struct gate *g;
    int status;
    enum ha_err err;

    status = read_input(&call->cx, call->req, &in);
    if (status != 0) {
        ha_call_done(call, refuse(call->resp, status));
        return;
    }
    if (atomic_fetch_add(&app->authz_waiting, 1) >= app->authz_max_waiting) {
        /* Shed: every suspended miss holds a connection until Houston answers. */
        atomic_fetch_sub(&app->authz_waiting, 1);
        ha_metrics_authz_shed(app->metrics);
        warn_houston("too many requests waiting for Houston: answered 503 at once", "busy");
        ha_call_done(call, unavailable(call->resp, 503, "busy: too many waiting for Houston\n"));
        return;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        atomic_fetch_sub(&app->authz_waiting, 1);
        ha_call_done(call, HA_ERR_NOMEM);
        return;
    }
    g->call = call;
    err = make_key(app, &in, &g->key);
    if (err != HA_OK) {
        gate_end(g, err);
        return;
    }
    switch (ha_authz_cache_lookup(app->authz, &g->key, now_ms(), &d, on_joined, g, &g->w)) {
    case HA_AUTHZ_HIT: /* decided since the I/O thread looked */
        err = relay(&d, call->resp);
        ha_authz_decision_cleanup(&d);
        gate_end(g, err);
        return;
    case HA_AUTHZ_JOIN: /* g is on_joined's from here on */
        return;
    case HA_AUTHZ_START:
        g->tracked = true;
        break;
    case HA_AUTHZ_FULL:
        break;
    }
    ask_houston(g, &in);
}

void ha_authz_forget_cookie(struct ha_app *app, const char *cookie)
{
    unsigned char cred[CRED_MAX];
    size_t n, removed = 0;
    if (cookie == NULL || strlen(cookie) > HA_MAX_COOKIE_HEADER)
        return;
    n = put_field(cred, NULL);
    n += put_field(cred + n, cookie);
    if (ha_authz_cache_evict_credential(app->authz, cred, n, &removed) != HA_OK)
        ha_log(HA_LOG_WARN, "authz_forget_failed", NULL, "reason",
               "the gate's cached decisions for this browser stay until their TTL", NULL);
    OPENSSL_cleanse(cred, n);
}
