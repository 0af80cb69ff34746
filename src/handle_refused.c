/* Houston's own OAuth endpoints, reached from outside (see router.c): Houston 0.9's callback
 * would take a forged, unsigned-in-effect ID token and mint a session for its email, so any
 * spelling of it that the ingress sends here is refused, whatever the method, before a body
 * is read, and nothing is forwarded.
 *
 * 403, not 404: the chart's Ingress sets custom-http-errors "404", so ingress-nginx would
 * swap a 404 for its default backend's page, and this page says what happened; and the
 * endpoint exists, it is only forbidden from where the request came. */
#include <stdlib.h>
#include <string.h>
#include "houston_auth/buf.h"
#include "houston_auth/handlers.h"
#include "houston_auth/log.h"
#include "houston_auth/metrics.h"
#include "houston_auth/page.h"

#define REFUSED_TITLE "Not available from outside"
#define REFUSED_MESSAGE                                                                            \
    "Houston's sign-in endpoints answer only inside the platform; nothing was sent on. To sign "   \
    "in, start from the Astronomer UI."

enum ha_err ha_handle_houston_refused(const struct ha_ctx *cx, const struct ha_request *req,
                                      struct ha_response *resp)
{
    const char *app_url = cx->view->cfg->app_url;
    char *page = NULL, *home = NULL;
    struct ha_buf b;
    enum ha_err err;

    /* One line, without the path or query: either may carry a token. */
    ha_log(HA_LOG_WARN, "houston_path_refused", req->request_id, "method", req->method, "reason",
           "a Houston OAuth endpoint asked for from outside the pod", NULL);
    ha_metrics_houston_refused(cx->app->metrics);
    ha_buf_init(&b, 4096);
    err = ha_buf_appendf(&b, "%s/", app_url);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &home);
    ha_buf_cleanup(&b);
    if (err == HA_OK)
        err = ha_page_render(REFUSED_TITLE, REFUSED_MESSAGE, home, "Go to Astronomer", NULL, &page);
    free(home);
    if (err != HA_OK)
        return err;
    resp->status = 403;
    resp->content_type = "text/html; charset=utf-8";
    resp->body = page;
    resp->body_len = strlen(page);
    resp->no_store = 1;
    return HA_OK;
}
