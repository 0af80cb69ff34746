/* The route table: which path runs which handler, with which methods, on which thread. */
#include <string.h>
#include "houston_auth/handlers.h"
#include "houston_auth/log.h"
#include "houston_auth/proto.h"
#include "houston_auth/router.h"

static const struct ha_route routes[] = {
    {HA_PATH_START, "GET, HEAD", false, false, true, ha_handle_start},
    {HA_PATH_REDIRECT, "GET, HEAD, POST", true, true, true, ha_handle_redirect},
    {HA_PATH_LOGOUT, "GET, HEAD", false, false, true, ha_handle_logout},
    {HA_PATH_HEALTHZ, "GET, HEAD", false, false, false, ha_handle_healthz},
    {HA_PATH_READYZ, "GET, HEAD", false, false, false, ha_handle_readyz},
    {HA_PATH_METRICS, "GET, HEAD", false, false, false, ha_handle_metrics},
    {"/", "GET, HEAD", false, false, false, ha_handle_index},
};

const struct ha_route *ha_router_find(const char *path)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) == 0)
            return &routes[i];
    }
    return NULL;
}

bool ha_router_method_ok(const struct ha_route *route, const char *method)
{
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return true;
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

void ha_router_dispatch(struct ha_app *app, const struct ha_route *route,
                        const struct ha_request *req, struct ha_response *resp)
{
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
    err = route->handle(app, req, resp);
    if (err == HA_OK)
        return;
    ha_log(HA_LOG_ERROR, "handler_failed", req->request_id, "path", route->path, "error",
           ha_err_str(err), NULL);
    if (err == HA_ERR_BUSY)
        ha_router_error(resp, 503, "busy, try again\n");
    else
        ha_router_error(resp, 500, "internal error\n");
}
