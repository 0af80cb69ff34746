/* Probes and introspection: /healthz (the process serves), /readyz (discovery and JWKS
 * loaded), /metrics (Prometheus text), and in --dev mode a page of links at /. */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "houston_auth/buf.h"
#include "houston_auth/authz_cache.h"
#include "houston_auth/handlers.h"
#include "houston_auth/metrics.h"
#include "houston_auth/page.h"
#include "houston_auth/proto.h"

#define JSON_TYPE "application/json"

enum ha_err ha_handle_healthz(const struct ha_ctx *cx, const struct ha_request *req,
                              struct ha_response *resp)
{
    (void)cx;
    (void)req;
    return ha_response_text(resp, 200, JSON_TYPE, "{\"status\":\"ok\"}\n");
}

enum ha_err ha_handle_readyz(const struct ha_ctx *cx, const struct ha_request *req,
                             struct ha_response *resp)
{
    const char *reason = NULL;
    json_t *obj;
    char *text;
    enum ha_err err;
    (void)req;

    if (ha_app_ready(cx->app, &reason))
        return ha_response_text(resp, 200, JSON_TYPE, "{\"status\":\"ready\"}\n");
    obj = json_pack("{s:s,s:s,s:s}", "status", "not_ready", "reason", reason, "issuer",
                    cx->view->cfg->issuer);
    text = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    if (text == NULL)
        return HA_ERR_NOMEM;
    err = ha_response_text(resp, 503, JSON_TYPE, text);
    free(text);
    return err;
}

enum ha_err ha_handle_metrics(const struct ha_ctx *cx, const struct ha_request *req,
                              struct ha_response *resp)
{
    struct ha_jwks_cache_stats stats;
    const struct ha_jwks_cache_stats *s = NULL;
    struct ha_authz_cache_stats authz;
    char *text = NULL;
    bool ready = ha_app_ready(cx->app, NULL);
    enum ha_err err;
    (void)req;

    if (ready) {
        ha_jwks_cache_get_stats(cx->app->jwks, &stats);
        s = &stats;
    }
    ha_authz_cache_get_stats(cx->app->authz, &authz);
    err = ha_metrics_format(cx->app->metrics, s, &authz, ready, &text);
    if (err != HA_OK)
        return err;
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = text;
    resp->body_len = strlen(text);
    return HA_OK;
}

enum ha_err ha_handle_index(const struct ha_ctx *cx, const struct ha_request *req,
                            struct ha_response *resp)
{
    const struct ha_config *cfg = cx->view->cfg;
    struct ha_buf b;
    char *page = NULL;
    enum ha_err err;
    (void)req;

    if (!cfg->dev)
        return ha_response_text(resp, 404, "text/plain; charset=utf-8", "not found\n");
    ha_buf_init(&b, 8192);
    err = ha_buf_appendf(&b,
                         "Dev mode: the bundled dev tenant at https://%s/ and the Houston "
                         "stand-in at %s. Log in (as anyone: type any email), then log out at "
                         "%s/logout. Probes: %s/healthz, %s/readyz; metrics at %s/metrics.",
                         cfg->tenant, cfg->houston_url, cfg->public_url, cfg->public_url,
                         cfg->public_url, cfg->public_url);
    if (err == HA_OK)
        err = ha_page_render("houston-auth (dev)", b.data,
                             HA_PATH_START "?provider=auth0&integration=self&redirect=/oauth",
                             "Log in", "Not for production: dev secrets are in use.", &page);
    ha_buf_cleanup(&b);
    if (err != HA_OK)
        return err;
    err = ha_response_text(resp, 200, "text/html; charset=utf-8", page);
    free(page);
    return err;
}
