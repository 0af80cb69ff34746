/* Outbound HTTP(S) to the tenant and Houston: libcurl with connect and total timeouts,
 * verified TLS, capped bodies and connection/TLS-session reuse. The only file that includes
 * <curl/curl.h> is http_client.c.
 *
 * Two ways to call: ha_http (synchronous, one blocking call; for --check-config, the dev
 * tools and tests) and ha_transport (asynchronous: the sidecar's requests, non-blocking
 * transfers on curl's multi interface driven by the event loop, loop.h). */
#ifndef HOUSTON_AUTH_HTTP_CLIENT_H
#define HOUSTON_AUTH_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "houston_auth/err.h"

#define HA_HTTP_MAX_SET_COOKIES 8
/* Queues one host's calls may be split into (ha_http_request.queue). */
#define HA_HTTP_QUEUES_PER_HOST 2
/* Response headers one request may ask to keep, and the longest value kept. */
#define HA_HTTP_MAX_CAPTURE 4
#define HA_HTTP_MAX_CAPTURED_VALUE (8 * 1024)

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
    uint64_t deadline_ns;   /* async: ha_mono_ns() by which it ends, if sooner than the
                             * client's total timeout (a login's calls share one); 0: none */
    /* More request headers, "Name: value" lines, NULL-ended (NULL: none). A line without
     * ':' or with a control character other than HTAB (CR, LF: header injection) fails the
     * request with HA_ERR_INVALID before anything is sent. The client's copies are wiped when
     * the request ends (they may carry credentials; curl's own request buffer is not). */
    const char *const *headers;
    /* async: the queue it waits in for one of its peer's max_host_connections slots: NULL,
     * the default one, or a name (a static string) for a kind of call that must neither wait
     * behind the others nor make them wait (the gate's calls to Houston beside the logins'
     * hand-offs). At most HA_HTTP_QUEUES_PER_HOST queues for one host. */
    const char *queue;
    /* Names of response headers to keep (case-insensitive), NULL-ended, at most
     * HA_HTTP_MAX_CAPTURE; static strings (the asynchronous call keeps the pointers). */
    const char *const *capture;
};

struct ha_http_response {
    long status;
    char *body; /* NUL-terminated; capped at the client's max_body */
    size_t body_len;
    char *content_type;
    char *location;
    char *set_cookies[HA_HTTP_MAX_SET_COOKIES];
    size_t set_cookie_count;
    /* The value of each request.capture[i] header, surrounding whitespace removed (NULL:
     * absent). The first occurrence is kept; captured_repeated is set when one came twice.
     * A value over HA_HTTP_MAX_CAPTURED_VALUE fails the request with HA_ERR_TOO_LARGE.
     * Wiped when freed. */
    char *captured[HA_HTTP_MAX_CAPTURE];
    bool captured_repeated;
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

/* The asynchronous call. done(ctx, err, resp) is called exactly once: on the event loop's
 * thread, or before start returns (a transport that cannot start the request, or a test's
 * transport that answers at once), so a caller does nothing after start that the callback
 * could have freed. req and its strings are copied by start. err is HA_OK with any status;
 * else HA_ERR_TIMEOUT, HA_ERR_IO, HA_ERR_TLS, HA_ERR_TOO_LARGE, HA_ERR_NOMEM. *resp is the
 * callback's (ha_http_response_cleanup), empty unless err is HA_OK. HA_ERR_INVALID: a
 * request header refused (see ha_http_request.headers). */
typedef void (*ha_http_done_fn)(void *ctx, enum ha_err err, struct ha_http_response *resp);
struct ha_transport {
    void (*start)(void *impl, const struct ha_http_request *req, ha_http_done_fn done, void *ctx);
    void *impl;
};
static inline void ha_transport_start(const struct ha_transport *t,
                                      const struct ha_http_request *req, ha_http_done_fn done,
                                      void *ctx)
{
    t->start(t->impl, req, done, ctx);
}
/* A transport over a synchronous ha_http: each request runs at once and done is called before
 * start returns. For tests and one-shot tools; *h must outlive the transport. */
struct ha_transport ha_transport_inline(const struct ha_http *h);

struct ha_loop;
struct ha_http_client_opts {
    const char *ca_file; /* extra CA bundle (PEM) trusted besides the system store */
    long connect_timeout_ms;
    long total_timeout_ms;     /* sync: curl's total timeout; async: from the call to start */
    size_t max_body;           /* 0: HA_MAX_PEER_BODY */
    const char *tenant_proxy;  /* forward proxy for to_tenant requests; NULL: none */
    long max_host_connections; /* async: connections per peer at once; 0: 64 */
};
struct ha_http_client;
/* Call once per process before threads start. */
enum ha_err ha_http_global_init(void);
enum ha_err ha_http_client_new(const struct ha_http_client_opts *o, struct ha_http_client **out);
/* After ha_http_client_close (when attached) and the loop's stop. */
void ha_http_client_free(struct ha_http_client *c);
/* Makes c's asynchronous transfers run on loop (a curl multi handle whose sockets and timer
 * are the loop's). Before the loop starts. */
enum ha_err ha_http_client_attach(struct ha_http_client *c, struct ha_loop *loop);
/* On the loop thread: ends every transfer in flight (their callbacks get HA_ERR_IO) and makes
 * later starts fail the same way. For the loop's before_stop. */
void ha_http_client_close(struct ha_http_client *c);
/* The asynchronous transport of an attached client. Any thread. Each request must end within
 * total_timeout_ms of the call to start, also while it waits for a connection to the peer
 * (at most max_host_connections per peer): then its callback gets HA_ERR_TIMEOUT. */
struct ha_transport ha_http_client_transport(struct ha_http_client *c);
/* Transfers in flight (started and not yet called back); loop thread. */
size_t ha_http_client_in_flight(const struct ha_http_client *c);
/* Performs one request, blocking; any thread. Redirects are not followed. HA_ERR_TIMEOUT,
 * HA_ERR_IO (connect/TLS), HA_ERR_TOO_LARGE (body over max_body). Any status is HA_OK:
 * callers judge it. */
enum ha_err ha_http_client_perform(void *client, const struct ha_http_request *req,
                                   struct ha_http_response *resp);
/* A struct ha_http bound to c. */
struct ha_http ha_http_client_iface(struct ha_http_client *c);

#endif
