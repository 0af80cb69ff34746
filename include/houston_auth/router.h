/* The route table, and the one place handler errors become HTTP statuses. */
#ifndef HOUSTON_AUTH_ROUTER_H
#define HOUSTON_AUTH_ROUTER_H

#include <stdbool.h>
#include "houston_auth/app.h"
#include "houston_auth/http.h"

struct ha_ctx;
struct ha_call;
typedef enum ha_err (*ha_handler_fn)(const struct ha_ctx *cx, const struct ha_request *req,
                                     struct ha_response *resp);
typedef void (*ha_begin_fn)(struct ha_call *call);

struct ha_route {
    const char *path;
    const char *allow;    /* methods, as sent in Allow */
    bool post;            /* accepts POST with a form body */
    bool outbound;        /* calls the tenant or Houston: asynchronous (begin, not handle) */
    bool login;           /* part of a person's login or logout: logged at info */
    bool early;           /* answered from the headers for any method; the body is never read */
    bool config;          /* reads the configuration: the router takes a view for the request */
    bool gate;            /* the ingress's auth subrequest: reads Authorization and
                           * X-Original-*, keeps its connection, allows HEAD */
    ha_handler_fn handle; /* synchronous routes; on an outbound route, the answer from what
                           * the process holds when it can (HA_ERR_NOT_FOUND: go on to begin) */
    ha_begin_fn begin;    /* outbound routes */
};

/* The route for a raw request path: an exact route of the table; else, for any other
 * spelling inside Houston's OAuth namespace (ha_url_normalize_path of it is
 * HA_HOUSTON_OAUTH_PREFIX or below it), the early route that refuses it; else NULL. */
const struct ha_route *ha_router_find(const char *path);
/* True when method is allowed on route (HEAD wherever GET is, but on outbound routes; any
 * on an early route). */
bool ha_router_method_ok(const struct ha_route *route, const char *method);
/* Runs route's handler with one configuration view taken for the request; fills a 404/405 when
 * route is NULL or the method is refused, and a 500 (or 503 for HA_ERR_BUSY) when the handler
 * fails. Always leaves a response. */
void ha_router_dispatch(struct ha_app *app, const struct ha_route *route,
                        const struct ha_request *req, struct ha_response *resp);
/* An outbound route's handle, if it has one, with a view taken for the request: true when it
 * answered (resp filled, failures mapped as by ha_router_dispatch), false when the route must
 * go on with ha_router_begin (resp untouched). */
bool ha_router_answer(struct ha_app *app, const struct ha_route *route,
                      const struct ha_request *req, struct ha_response *resp);
/* Starts an outbound route's handler with one configuration view taken for the request:
 * reply(arg) runs once resp is ready (on the event loop's thread, or before this returns).
 * Always ends in a response (500 when even the call cannot be made). */
void ha_router_begin(struct ha_app *app, const struct ha_route *route, const struct ha_request *req,
                     struct ha_response *resp, void (*reply)(void *arg), void *arg);
/* Fills a plain-text error response for status. */
void ha_router_error(struct ha_response *resp, int status, const char *message);

#endif
