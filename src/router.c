/* The route table: which path runs which handler, with which methods, on which thread.
 *
 * The sidecar's own routes match the raw path exactly. Around them the ingress sends
 * Houston's whole OAuth namespace here (deploy/base/houston-ingress-patch.yaml), because
 * Houston 0.9's callback takes an ID token without checking its signature and Express
 * reaches it under many spellings (case, trailing or doubled slashes, '\' for '/'). Any such
 * spelling is answered here with a refusal and never goes on to Houston; the sidecar's own
 * hand-off calls Houston inside the pod, not through the ingress. */
#include <stdlib.h>
#include <string.h>
#include "houston_auth/handlers.h"
#include "houston_auth/log.h"
#include "houston_auth/proto.h"
#include "houston_auth/router.h"
#include "houston_auth/url.h"

static const struct ha_route routes[] = {
    {HA_PATH_START, "GET, HEAD", false, false, true, false, true, false, ha_handle_start, NULL},
    {HA_PATH_REDIRECT, "GET, POST", true, true, true, false, true, false, NULL, ha_handle_redirect},
    {HA_PATH_LOGOUT, "GET, HEAD", false, false, true, false, true, false, ha_handle_logout, NULL},
    {HA_PATH_AUTHZ, "GET, HEAD", false, true, false, false, true, true, ha_handle_authz,
     ha_handle_authz_begin},
    {HA_PATH_HEALTHZ, "GET, HEAD", false, false, false, false, false, false, ha_handle_healthz,
     NULL},
    {HA_PATH_READYZ, "GET, HEAD", false, false, false, false, true, false, ha_handle_readyz, NULL},
    {HA_PATH_METRICS, "GET, HEAD", false, false, false, false, false, false, ha_handle_metrics,
     NULL},
    {"/", "GET, HEAD", false, false, false, false, true, false, ha_handle_index, NULL},
};

static const struct ha_route houston_refused = {
    HA_PATH_HOUSTON_REFUSED,   NULL, false, false, false, true, true, false,
    ha_handle_houston_refused, NULL};

/* True when raw names HA_HOUSTON_OAUTH_PREFIX or a path below it, however it is spelt. */
static bool in_houston_oauth(const char *raw)
{
    static const size_t n = sizeof(HA_HOUSTON_OAUTH_PREFIX) - 1;
    char norm[HA_MAX_URL + 1];
    if (ha_url_normalize_path(raw, norm, sizeof(norm)) != HA_OK)
        return false;
    return strncmp(norm, HA_HOUSTON_OAUTH_PREFIX, n) == 0 && (norm[n] == '\0' || norm[n] == '/');
}

const struct ha_route *ha_router_find(const char *path)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) == 0)
            return &routes[i];
    }
    return in_houston_oauth(path) ? &houston_refused : NULL;
}

bool ha_router_method_ok(const struct ha_route *route, const char *method)
{
    if (route->early || strcmp(method, "GET") == 0)
        return true;
    /* A HEAD of the redirect (a link prefetcher, a scanner) would spend the one-time code
     * and state on an answer nobody reads: the login routes that call peers refuse it. The
     * gate's answer is its status and headers, which HEAD gets as GET does. */
    if (strcmp(method, "HEAD") == 0)
        return !route->outbound || route->gate;
    return route->post && strcmp(method, "POST") == 0;
}

void ha_router_error(struct ha_response *resp, int status, const char *message)
{
    ha_response_cleanup(resp);
    resp->status = status;
    resp->no_store = 1;
    if (ha_response_text(resp, status, "text/plain; charset=utf-8", message) != HA_OK)
        resp->status = status; /* an empty body still carries the status */
}

/* A handler's failure as the client sees it: logged once, then 500 (503 when busy). */
static void handler_failed(enum ha_err err, const char *path, const struct ha_request *req,
                           struct ha_response *resp)
{
    if (err == HA_OK)
        return;
    ha_log(HA_LOG_ERROR, "handler_failed", req->request_id, "path", path, "error", ha_err_str(err),
           NULL);
    if (err == HA_ERR_BUSY)
        ha_router_error(resp, 503, "busy, try again\n");
    else
        ha_router_error(resp, 500, "internal error\n");
}

void ha_router_dispatch(struct ha_app *app, const struct ha_route *route,
                        const struct ha_request *req, struct ha_response *resp)
{
    struct ha_ctx cx;
    enum ha_err err;
    if (route == NULL) {
        ha_router_error(resp, 404, "not found\n");
        return;
    }
    if (!ha_router_method_ok(route, req->method)) {
        ha_router_error(resp, 405, "method not allowed\n");
        resp->allow = route->allow;
        return;
    }
    if (route->handle == NULL || route->outbound) { /* ha_router_answer's, ha_router_begin's */
        handler_failed(HA_ERR_INVALID, route->path, req, resp);
        return;
    }
    cx.app = app;
    cx.view = route->config ? ha_app_view_acquire(app) : NULL;
    err = route->handle(&cx, req, resp);
    ha_app_view_release(app, cx.view);
    handler_failed(err, route->path, req, resp);
}

bool ha_router_answer(struct ha_app *app, const struct ha_route *route,
                      const struct ha_request *req, struct ha_response *resp)
{
    struct ha_ctx cx;
    enum ha_err err;
    if (route->handle == NULL)
        return false;
    cx.app = app;
    cx.view = route->config ? ha_app_view_acquire(app) : NULL;
    err = route->handle(&cx, req, resp);
    ha_app_view_release(app, cx.view);
    if (err == HA_ERR_NOT_FOUND)
        return false;
    handler_failed(err, route->path, req, resp);
    return true;
}

void ha_router_begin(struct ha_app *app, const struct ha_route *route, const struct ha_request *req,
                     struct ha_response *resp, void (*reply)(void *arg), void *arg)
{
    struct ha_call *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        handler_failed(HA_ERR_NOMEM, route->path, req, resp);
        reply(arg);
        return;
    }
    call->cx.app = app;
    call->cx.view = ha_app_view_acquire(app);
    call->req = req;
    call->resp = resp;
    call->reply = reply;
    call->reply_arg = arg;
    call->path = route->path;
    route->begin(call);
}

void ha_call_done(struct ha_call *call, enum ha_err err)
{
    void (*reply)(void *) = call->reply;
    void *arg = call->reply_arg;
    handler_failed(err, call->path, call->req, call->resp);
    ha_app_view_release(call->cx.app, call->cx.view);
    free(call);
    reply(arg);
}
