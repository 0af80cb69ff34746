/* Outbound HTTP(S) to the tenant and Houston: libcurl with connect and total timeouts,
 * verified TLS, capped bodies and connection/TLS-session reuse. The only file that includes
 * <curl/curl.h> is http_client.c. Thread-safe. */
#ifndef HOUSTON_AUTH_HTTP_CLIENT_H
#define HOUSTON_AUTH_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include "houston_auth/err.h"

#define HA_HTTP_MAX_SET_COOKIES 8

struct ha_http_request {
    const char *method; /* "GET" or "POST" */
    const char *url;
    const char *content_type; /* for POST */
    const char *body;
    size_t body_len;
    const char *basic_user; /* HTTP Basic auth when non-NULL (values are form-encoded
                             * by the caller as RFC 6749 §2.3.1 asks) */
    const char *basic_pass;
    const char *accept;
    const char *request_id; /* sent as X-Request-Id when non-NULL */
    bool to_tenant;         /* may go through the client's tenant_proxy; nothing else ever
                             * uses a proxy, whatever http_proxy and friends say */
};

struct ha_http_response {
    long status;
    char *body; /* NUL-terminated; capped at the client's max_body */
    size_t body_len;
    char *content_type;
    char *location;
    char *set_cookies[HA_HTTP_MAX_SET_COOKIES];
    size_t set_cookie_count;
};
void ha_http_response_cleanup(struct ha_http_response *r);

/* The call every module uses; tests can swap in their own function. */
typedef enum ha_err (*ha_http_do_fn)(void *ctx, const struct ha_http_request *req,
                                     struct ha_http_response *resp);
struct ha_http {
    ha_http_do_fn perform;
    void *ctx;
};
static inline enum ha_err ha_http_do(const struct ha_http *h, const struct ha_http_request *req,
                                     struct ha_http_response *resp)
{
    return h->perform(h->ctx, req, resp);
}

struct ha_http_client_opts {
    const char *ca_file; /* extra CA bundle (PEM) trusted besides the system store */
    long connect_timeout_ms;
    long total_timeout_ms;
    size_t max_body;          /* 0: HA_MAX_PEER_BODY */
    const char *tenant_proxy; /* forward proxy for to_tenant requests; NULL: none */
};
struct ha_http_client;
/* Call once per process before threads start. */
enum ha_err ha_http_global_init(void);
enum ha_err ha_http_client_new(const struct ha_http_client_opts *o, struct ha_http_client **out);
void ha_http_client_free(struct ha_http_client *c);
/* Performs one request. Redirects are not followed. HA_ERR_TIMEOUT, HA_ERR_IO (connect/TLS),
 * HA_ERR_TOO_LARGE (body over max_body). Any status is HA_OK: callers judge it. */
enum ha_err ha_http_client_perform(void *client, const struct ha_http_request *req,
                                   struct ha_http_response *resp);
/* A struct ha_http bound to c. */
struct ha_http ha_http_client_iface(struct ha_http_client *c);

#endif
