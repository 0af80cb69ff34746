/* GET /logout: ends the session everywhere it lives. Clears Houston's auth cookie (same
 * name, Domain and Path Houston set it with) and sends the browser through Auth0's
 * /v2/logout so the tenant's session ends too; Auth0 then returns to returnTo, which
 * defaults to <appUrl>/logout and otherwise must pass the redirect allowlist.
 *
 * Transaction cookies ("__Host-", so Path=/) come with the request too and are cleared: a
 * login left half-way has nothing to finish after a sign-out. Only names of the shape the
 * sidecar makes are cleared, at most HA_TXN_EVICT_MAX, after Houston's cookie (a client that
 * keeps only so many Set-Cookie lines keeps the one that matters). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/buf.h"
#include "houston_auth/cookie.h"
#include "houston_auth/handlers.h"
#include "houston_auth/log.h"
#include "houston_auth/metrics.h"
#include "houston_auth/page.h"
#include "houston_auth/proto.h"
#include "houston_auth/transaction.h"

#define LOGOUT_DEFAULT_PATH "/logout"

static enum ha_err clear_houston_cookie(const struct ha_ctx *cx, struct ha_response *resp)
{
    struct ha_buf domain;
    char *line = NULL;
    enum ha_err err;
    ha_buf_init(&domain, 512);
    err = ha_buf_appendf(&domain, ".%s", cx->view->cfg->base_domain);
    if (err == HA_OK) {
        struct ha_set_cookie c = {
            cx->view->houston_cookie, "", domain.data, "/", 0, false, true, NULL};
        err = ha_cookie_format(&c, &line);
    }
    if (err == HA_OK)
        err = ha_response_add_cookie(resp, line);
    ha_buf_cleanup(&domain);
    return err;
}

/* Whether the i-th cookie's name came earlier in the header (one clearing line per name). */
static bool named_before(const struct ha_kvlist *jar, size_t i)
{
    for (size_t j = 0; j < i; j++) {
        if (strcmp(jar->items[j].key, jar->items[i].key) == 0)
            return true;
    }
    return false;
}

static enum ha_err clear_txn_cookies(const struct ha_ctx *cx, const struct ha_request *req,
                                     struct ha_response *resp)
{
    const struct ha_kvlist *jar = &req->cookies;
    size_t cleared = 0;
    enum ha_err err = HA_OK;

    for (size_t i = 0; i < jar->count && cleared < HA_TXN_EVICT_MAX && err == HA_OK; i++) {
        const char *name = jar->items[i].key;
        char *line = NULL;
        if (!ha_txn_check_cookie_name(name) || named_before(jar, i))
            continue;
        err = ha_txn_cookie_header(cx, name, NULL, &line);
        if (err == HA_OK)
            err = ha_response_add_cookie(resp, line);
        cleared++;
    }
    return err;
}

/* An allowlisted returnTo made absolute (Auth0 needs an absolute URL), or NULL. */
static enum ha_err return_to(const struct ha_ctx *cx, const char *asked, char **out)
{
    const struct ha_view *v = cx->view;
    struct ha_buf b;
    enum ha_err err;
    ha_buf_init(&b, HA_MAX_URL);
    if (asked == NULL)
        err = ha_buf_appendf(&b, "%s%s", v->cfg->app_url, LOGOUT_DEFAULT_PATH);
    else if (ha_redirect_check(&v->policy, asked) != HA_OK)
        err = HA_ERR_REFUSED;
    else if (asked[0] == '/')
        err = ha_buf_appendf(&b, "%s%s", v->cfg->app_origin, asked);
    else
        err = ha_buf_append_str(&b, asked);
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    return err;
}

static enum ha_err refuse(const struct ha_ctx *cx, const struct ha_request *req,
                          struct ha_response *resp)
{
    char *page = NULL;
    enum ha_err err;
    ha_log(HA_LOG_WARN, "logout_refused", req->request_id, "reason",
           "returnTo refused by the allowlist", NULL);
    err = ha_page_render("Sign-out link not valid",
                         "This sign-out link points somewhere this platform does not send "
                         "people. Use the sign-out button in the app instead.",
                         cx->view->cfg->app_url, "Go to the app", NULL, &page);
    if (err != HA_OK)
        return err;
    err = ha_response_text(resp, 400, "text/html; charset=utf-8", page);
    free(page);
    resp->no_store = 1;
    return err;
}

enum ha_err ha_handle_logout(const struct ha_ctx *cx, const struct ha_request *req,
                             struct ha_response *resp)
{
    const char *asked = ha_kvlist_get(&req->query, "returnTo");
    char *target = NULL;
    struct ha_buf url;
    enum ha_err err;

    if (ha_kvlist_count(&req->query, "returnTo") > 1)
        return refuse(cx, req, resp);
    err = return_to(cx, asked, &target);
    if (err == HA_ERR_REFUSED)
        return refuse(cx, req, resp);
    if (err != HA_OK)
        return err;
    ha_buf_init(&url, HA_MAX_URL * 2);
    err = ha_buf_appendf(&url, "https://%s%s?", cx->view->cfg->tenant, HA_AUTH0_LOGOUT_PATH);
    if (err == HA_OK)
        err = ha_buf_append_param(&url, "client_id", cx->view->cfg->client_id);
    if (err == HA_OK)
        err = ha_buf_append_param(&url, "returnTo", target);
    if (err == HA_OK)
        err = ha_buf_steal(&url, &resp->location);
    if (err == HA_OK)
        err = clear_houston_cookie(cx, resp);
    if (err == HA_OK)
        err = clear_txn_cookies(cx, req, resp);
    if (err == HA_OK)
        err = ha_response_text(resp, 302, "text/plain; charset=utf-8", "Signing out.\n");
    ha_buf_cleanup(&url);
    free(target);
    if (err != HA_OK)
        return err;
    resp->no_store = 1;
    /* The gate forgets this browser's decisions now, not at their TTL. */
    ha_authz_forget_cookie(cx->app, ha_kvlist_get(&req->cookies, cx->view->houston_cookie));
    ha_metrics_logout(cx->app->metrics);
    ha_log(HA_LOG_INFO, "logout", req->request_id, NULL);
    return HA_OK;
}
