/* What every login endpoint shares: the transaction cookie's attributes and the one way a
 * login fails in front of a person (302 to the app's /login?error=<code>, a readable page
 * for clients that do not follow, one log line, a metric, and no Houston cookie). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/buf.h"
#include "houston_auth/cookie.h"
#include "houston_auth/handlers.h"
#include "houston_auth/log.h"
#include "houston_auth/metrics.h"
#include "houston_auth/page.h"
#include "houston_auth/proto.h"

enum ha_err ha_txn_cookie_header(const struct ha_ctx *cx, const char *name, const char *value,
                                 char **out)
{
    struct ha_set_cookie c = {
        .name = name,
        .value = value != NULL ? value : "",
        .domain = NULL,
        .path = HA_TXN_COOKIE_PATH,
        .max_age = value != NULL ? cx->view->cfg->txn_ttl_s : 0,
        .http_only = true,
        .secure = true,
        .same_site = "Lax",
    };
    return ha_cookie_format(&c, out);
}

enum ha_err ha_login_fail(const struct ha_ctx *cx, const struct ha_request *req,
                          struct ha_response *resp, const struct ha_login_error *e,
                          const char *txn_cookie)
{
    const char *code = e->code;
    struct ha_buf url;
    char *clear = NULL;
    char detail[64];
    enum ha_err err;

    /* A NULL field ends the pairs early: ha_log stops at the first NULL key. */
    ha_log(HA_LOG_WARN, "login_failed", req->request_id, "path", req->path, "error", code, "reason",
           e->reason, e->field, e->value, NULL);
    ha_metrics_login(cx->app->metrics, code);
    ha_response_cleanup(resp);
    ha_buf_init(&url, HA_MAX_URL);
    err = ha_buf_appendf(&url, "%s/login?", cx->view->cfg->app_url);
    if (err == HA_OK)
        err = ha_buf_append_param(&url, "error", code);
    if (err == HA_OK)
        err = ha_buf_steal(&url, &resp->location);
    snprintf(detail, sizeof(detail), "Error %s, reference %s", code, req->request_id);
    if (err == HA_OK)
        err = ha_page_render("Sign-in did not complete", ha_page_error_message(code),
                             resp->location, "Back to the login page", detail, &resp->body);
    if (err == HA_OK && txn_cookie != NULL) {
        err = ha_txn_cookie_header(cx, txn_cookie, NULL, &clear);
        if (err == HA_OK)
            err = ha_response_add_cookie(resp, clear);
    }
    ha_buf_cleanup(&url);
    if (err != HA_OK)
        return err;
    resp->status = 302;
    resp->content_type = "text/html; charset=utf-8";
    resp->body_len = strlen(resp->body);
    resp->no_store = 1;
    return HA_OK;
}
