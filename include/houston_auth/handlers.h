/* One function per endpoint: plain request in, plain response out, no sockets. */
#ifndef HOUSTON_AUTH_HANDLERS_H
#define HOUSTON_AUTH_HANDLERS_H

#include "houston_auth/app.h"
#include "houston_auth/http.h"

/* What a handler works with: the application, and the one configuration view the router
 * took for this request (NULL for routes that read no configuration). A handler reads the
 * configuration only through view, never ha_app_view, so a SIGHUP in the middle of a request
 * cannot mix two configurations in one answer (redirect_uri, say, in the token request). */
struct ha_ctx {
    struct ha_app *app;
    const struct ha_view *view;
};

/* A request in flight through an asynchronous handler (one that calls the tenant or
 * Houston): what it works with, and how it answers. The router allocates it, takes the view,
 * and frees both in ha_call_done. */
struct ha_call {
    struct ha_ctx cx;
    const struct ha_request *req; /* the server's, valid until reply runs */
    struct ha_response *resp;
    void (*reply)(void *arg); /* the server's: resp is ready, send it */
    void *reply_arg;
    const char *path;
};
/* Ends call: a failing err becomes a 500 (503 for HA_ERR_BUSY) as for synchronous handlers,
 * then the view is released, reply runs and call is freed. Any thread. */
void ha_call_done(struct ha_call *call, enum ha_err err);

enum ha_err ha_handle_start(const struct ha_ctx *cx, const struct ha_request *req,
                            struct ha_response *resp);
/* Asynchronous: ends with ha_call_done, maybe before it returns. */
void ha_handle_redirect(struct ha_call *call);
/* GET /v1/authorization, the gate: answers from the decision cache (HA_ERR_NOT_FOUND when it
 * holds no decision: then ha_handle_authz_begin asks Houston, asynchronously). */
enum ha_err ha_handle_authz(const struct ha_ctx *cx, const struct ha_request *req,
                            struct ha_response *resp);
void ha_handle_authz_begin(struct ha_call *call);
/* Drops every cached gate decision made for the browser whose Houston cookie value is
 * cookie (at logout). */
void ha_authz_forget_cookie(struct ha_app *app, const char *cookie);
enum ha_err ha_handle_logout(const struct ha_ctx *cx, const struct ha_request *req,
                             struct ha_response *resp);
enum ha_err ha_handle_healthz(const struct ha_ctx *cx, const struct ha_request *req,
                              struct ha_response *resp);
enum ha_err ha_handle_readyz(const struct ha_ctx *cx, const struct ha_request *req,
                             struct ha_response *resp);
enum ha_err ha_handle_metrics(const struct ha_ctx *cx, const struct ha_request *req,
                              struct ha_response *resp);
/* Houston's own OAuth endpoints seen from outside: 403 with a short page, logged once. */
enum ha_err ha_handle_houston_refused(const struct ha_ctx *cx, const struct ha_request *req,
                                      struct ha_response *resp);
enum ha_err ha_handle_index(const struct ha_ctx *cx, const struct ha_request *req,
                            struct ha_response *resp);

/* Why a login failed: the code the person sees (HA_E_*), a static reason, and optionally one
 * more field for the log line (a peer's error, the tenant's registered error code). */
struct ha_login_error {
    const char *code;
    const char *reason;
    const char *field; /* NULL: none */
    const char *value;
};

/* A login failure as the browser sees it: 302 to <appUrl>/login?error=<code> with a small
 * HTML body, transaction cookie cleared when txn_cookie is non-NULL. Writes the one log line
 * a failed login gets ("login_failed": code, reason, field): the modules a step called
 * report why through their reason out-parameters and never log it themselves. */
enum ha_err ha_login_fail(const struct ha_ctx *cx, const struct ha_request *req,
                          struct ha_response *resp, const struct ha_login_error *e,
                          const char *txn_cookie);

/* The Set-Cookie line for transaction cookie name (a "__Host-" name): Path=/; Secure;
 * HttpOnly; SameSite=Lax; no Domain; Max-Age the transaction TTL, or clearing it when value
 * is NULL. HA_ERR_INVALID for a name ha_cookie_format refuses. */
enum ha_err ha_txn_cookie_header(const struct ha_ctx *cx, const char *name, const char *value,
                                 char **out);

#endif
