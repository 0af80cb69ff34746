/* A small libmicrohttpd adapter shared by the two development peers (the dev tenant and the
 * Houston stand-in; the stand-in compiles this file through tools/houston-standin/peer_http.c).
 * Handlers see a plain request and fill a plain response; every input is capped here. */
#ifndef HA_TOOLS_PEER_HTTP_H
#define HA_TOOLS_PEER_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "houston_auth/err.h"

#define PEER_MAX_URL 8192
#define PEER_MAX_BODY 16384
#define PEER_MAX_HEADER 8192
#define PEER_MAX_EXTRA_HEADERS 8

struct peer_request {
    const char *method;        /* "GET", "HEAD", "POST", ... */
    const char *target;        /* the raw request target as received (path, query, all) */
    const char *path;          /* raw path, without the query */
    const char *query;         /* raw query string without '?', "" when none */
    const char *content_type;  /* header or NULL */
    const char *authorization; /* header or NULL */
    const char *cookie;        /* header or NULL */
    const char *body;          /* NUL-terminated; "" when none */
    size_t body_len;
    void *conn; /* the server's connection, for peer_req_header(); NULL when built by hand */
};

struct peer_response {
    int status;
    const char *content_type; /* static */
    char *content_type_own;   /* overrides content_type when set; freed with the response */
    char *body;
    size_t body_len;
    char *location;
    char *set_cookie;
    char *www_authenticate;
    const char *allow; /* static */
    const char *csp;   /* static; NULL: a strict default */
    bool no_store;
    /* More headers, added with peer_resp_add_header (owned; freed with the response). */
    char *extra_name[PEER_MAX_EXTRA_HEADERS];
    char *extra_value[PEER_MAX_EXTRA_HEADERS];
    size_t extra_count;
};

typedef void (*peer_handler_fn)(void *ctx, const struct peer_request *req,
                                struct peer_response *resp);

struct peer_server_config {
    int fd;               /* from peer_bind(); the server owns it once started */
    const char *cert_pem; /* both NULL: plain HTTP */
    const char *key_pem;
    peer_handler_fn handler;
    void *ctx;
};

struct peer_server;

/* Binds and listens on host:port (port 0: any free port), so the caller knows the port
 * before serving. HA_ERR_CONFIG when host is not a loopback address, HA_ERR_IO when the port
 * cannot be bound. *fd is the caller's until passed to peer_server_start. */
enum ha_err peer_bind(const char *host, int port, int *fd, int *bound_port);
/* Starts a thread-per-connection daemon on cfg->fd (closed here on failure). */
enum ha_err peer_server_start(const struct peer_server_config *cfg, struct peer_server **out);
/* Stops accepting, wakes sleeping handlers, joins every connection thread, frees s. */
void peer_server_stop(struct peer_server *s);

/* Splits "host:port" or "[v6]:port" into a malloc'd host (caller frees) and a port.
 * HA_ERR_CONFIG when malformed or the host is not a loopback address. */
enum ha_err peer_parse_listen(const char *s, char **host, int *port);

/* Sleeps ms milliseconds in short slices, returning early once *stop is set. */
void peer_sleep_ms(long ms, const atomic_bool *stop);

/* The first request header named name (case-insensitive), borrowed for the request's
 * lifetime; NULL when absent or when req was not built by the server. Values past
 * PEER_MAX_HEADER bytes read as absent. */
const char *peer_req_header(const struct peer_request *req, const char *name);

/* Calls fn(arg, name, value) for each request header, in the order received, the name as
 * sent (values are not capped here: the connection's memory pool bounds them all), until fn
 * returns false. Nothing when req was not built by the server. */
typedef bool (*peer_header_fn)(void *arg, const char *name, const char *value);
void peer_req_foreach_header(const struct peer_request *req, peer_header_fn fn, void *arg);

/* Adds a response header (both copied). HA_ERR_TOO_LARGE past PEER_MAX_EXTRA_HEADERS,
 * HA_ERR_INVALID when either holds a CR or LF, or the name is empty: nothing is added. */
enum ha_err peer_resp_add_header(struct peer_response *r, const char *name, const char *value);

/* Response helpers: each replaces any earlier body; the body is copied. */
enum ha_err peer_resp_text(struct peer_response *r, int status, const char *type, const char *body);
/* Takes a reference-counted json_t (decref'd here). */
enum ha_err peer_resp_json(struct peer_response *r, int status, json_t *json);
enum ha_err peer_resp_redirect(struct peer_response *r, int status, const char *location);
/* A small HTML page: title and message are escaped; extra_html is trusted markup or NULL. */
enum ha_err peer_resp_page(struct peer_response *r, int status, const char *title,
                           const char *message, const char *extra_html);
void peer_response_cleanup(struct peer_response *r);

/* The page chrome used by every HTML page the peers show: peer_page_head(title) then
 * content then PEER_PAGE_TAIL. *out caller frees. */
enum ha_err peer_page_head(const char *title, char **out);
#define PEER_PAGE_TAIL "</main></body></html>\n"

/* Case-insensitive match of a Content-Type header against a media type, ignoring parameters. */
bool peer_type_is(const char *header, const char *type);

/* "<dir>/<name>", the caller's to free; NULL when out of memory or over 4 KiB. */
char *peer_path_join(const char *dir, const char *name);
/* Writes len bytes of data to path with mode through a temporary file and rename, so a
 * reader never sees half a file (the peers' keys and state). HA_ERR_IO, HA_ERR_TOO_LARGE. */
enum ha_err peer_write_atomic(const char *path, const char *data, size_t len, unsigned int mode);

#endif
