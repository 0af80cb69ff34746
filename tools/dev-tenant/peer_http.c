/* libmicrohttpd behind a plain request/response pair, for the development peers.
 *
 * The peers are test doubles, so the model is the simplest one that cannot stall: one thread
 * per connection (a handler may sleep for an injected delay without holding up anyone else),
 * a connection limit, a per-connection memory pool that bounds the request line and headers
 * (MHD answers 414/431 itself past it), a raw-URI cap, a body cap checked against
 * Content-Length before reading and again while reading (a chunked body past the cap is
 * drained, not stored), and an idle timeout. Only loopback
 * addresses may be bound: these peers hold dev secrets and test switches. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>
#include "houston_auth/buf.h"
#include "houston_auth/page.h"
#include "houston_auth/url.h"
#include "peer_http.h"

#define CONN_LIMIT 256
#define CONN_TIMEOUT_S 30
#define CONN_MEMORY_LIMIT (64 * 1024)
#define SLEEP_SLICE_MS 20

struct peer_server {
    struct MHD_Daemon *daemon;
    peer_handler_fn handler;
    void *ctx;
};

struct conn {
    char *uri; /* raw request target; NULL when over PEER_MAX_URL */
    bool started;
    bool answered;
    bool too_large; /* the body passed PEER_MAX_BODY */
    struct ha_buf body;
    struct peer_response resp;
};

static const char default_csp[] =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *mhd)
{
    struct conn *c = calloc(1, sizeof(*c));
    (void)cls;
    (void)mhd;
    if (c == NULL)
        return NULL;
    ha_buf_init(&c->body, PEER_MAX_BODY);
    if (strlen(uri) <= PEER_MAX_URL)
        c->uri = strdup(uri);
    return c;
}

static void on_completed(void *cls, struct MHD_Connection *mhd, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct conn *c = *con_cls;
    (void)cls;
    (void)mhd;
    (void)toe;
    if (c == NULL)
        return;
    peer_response_cleanup(&c->resp);
    ha_buf_cleanup(&c->body);
    free(c->uri);
    free(c);
    *con_cls = NULL;
}

static void add_headers(struct MHD_Response *r, const struct peer_response *rs)
{
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Content-Security-Policy", rs->csp != NULL ? rs->csp : default_csp);
    if (rs->content_type_own != NULL)
        MHD_add_response_header(r, "Content-Type", rs->content_type_own);
    else if (rs->content_type != NULL)
        MHD_add_response_header(r, "Content-Type", rs->content_type);
    if (rs->allow != NULL)
        MHD_add_response_header(r, "Allow", rs->allow);
    if (rs->www_authenticate != NULL)
        MHD_add_response_header(r, "WWW-Authenticate", rs->www_authenticate);
    if (rs->set_cookie != NULL)
        MHD_add_response_header(r, "Set-Cookie", rs->set_cookie);
    if (rs->no_store) {
        MHD_add_response_header(r, "Cache-Control", "no-store");
        MHD_add_response_header(r, "Pragma", "no-cache");
    }
    for (size_t i = 0; i < rs->extra_count; i++)
        MHD_add_response_header(r, rs->extra_name[i], rs->extra_value[i]);
}

static enum MHD_Result send_response(struct MHD_Connection *mhd, struct conn *c)
{
    struct peer_response *rs = &c->resp;
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (rs->status == 0)
        peer_resp_text(rs, 500, "text/plain; charset=utf-8", "internal error\n");
    r = MHD_create_response_from_buffer(rs->body_len, rs->body != NULL ? rs->body : (void *)"",
                                        MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    add_headers(r, rs);
    if (rs->location != NULL && MHD_add_response_header(r, "Location", rs->location) != MHD_YES)
        rs->status = 500; /* a CR/LF in a Location never reaches the wire */
    ret = MHD_queue_response(mhd, (unsigned int)rs->status, r);
    MHD_destroy_response(r);
    c->answered = true;
    return ret;
}

static enum MHD_Result reject(struct MHD_Connection *mhd, struct conn *c, int status,
                              const char *message)
{
    peer_resp_text(&c->resp, status, "text/plain; charset=utf-8", message);
    return send_response(mhd, c);
}

static enum MHD_Result on_headers(struct MHD_Connection *mhd, struct conn *c)
{
    const char *len = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "Content-Length");
    const char *cookie = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "Cookie");
    const char *auth = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "Authorization");

    c->started = true;
    if (c->uri == NULL)
        return reject(mhd, c, 414, "request target too long\n");
    if ((cookie != NULL && strlen(cookie) > PEER_MAX_HEADER) ||
        (auth != NULL && strlen(auth) > PEER_MAX_HEADER))
        return reject(mhd, c, 431, "request header too large\n");
    if (len != NULL && (strlen(len) > 9 || strtoul(len, NULL, 10) > PEER_MAX_BODY))
        return reject(mhd, c, 413, "request body too large\n");
    return MHD_YES;
}

static void dispatch(struct peer_server *s, struct MHD_Connection *mhd, struct conn *c,
                     const char *method)
{
    struct peer_request req;
    char *target = strdup(c->uri);
    char *q = strchr(c->uri, '?');

    memset(&req, 0, sizeof(req));
    if (target == NULL) {
        peer_resp_text(&c->resp, 500, "text/plain; charset=utf-8", "out of memory\n");
        return;
    }
    if (q != NULL)
        *q = '\0';
    req.method = method;
    req.target = target;
    req.path = c->uri;
    req.query = q != NULL ? q + 1 : "";
    req.content_type = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "Content-Type");
    req.authorization = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "Authorization");
    req.cookie = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "Cookie");
    req.body = c->body.len > 0 ? c->body.data : "";
    req.body_len = c->body.len;
    req.conn = mhd;
    s->handler(s->ctx, &req, &c->resp);
    free(target);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mhd, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    struct conn *c = *con_cls;
    (void)url;
    (void)version;

    if (c == NULL)
        return MHD_NO;
    if (c->answered)
        return MHD_YES;
    if (!c->started)
        return on_headers(mhd, c);
    if (*upload_size > 0) {
        /* Past the cap the rest is read and dropped: MHD 0.9.75 closes a chunked upload
         * without a word when a response is queued before its end. Memory stays bounded. */
        if (!c->too_large && ha_buf_append(&c->body, upload_data, *upload_size) != HA_OK)
            c->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->too_large)
        return reject(mhd, c, 413, "request body too large\n");
    dispatch(cls, mhd, c, method);
    return send_response(mhd, c);
}

static bool host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

/* host:port by the sidecar's own listen grammar (url.c), then the peers' rule: only
 * "localhost" or a loopback address, which make_addr can bind without a resolver. */
enum ha_err peer_parse_listen(const char *s, char **host, int *port)
{
    struct ha_hostport hp;
    char *copy;

    if (s == NULL || strlen(s) > 256 ||
        ha_url_parse_hostport(s, strlen(s), HA_URL_LOWER | HA_URL_NEED_PORT | HA_URL_PORT_ZERO, &hp,
                              NULL) != HA_OK)
        return HA_ERR_CONFIG;
    copy = strndup(hp.host, hp.host_len);
    if (copy == NULL)
        return HA_ERR_NOMEM;
    if (!host_is_loopback(copy)) {
        free(copy);
        return HA_ERR_CONFIG;
    }
    *host = copy;
    *port = hp.port;
    return HA_OK;
}

/* Fills ss for host:port; "localhost" binds 127.0.0.1 so the peers never depend on how the
 * resolver orders ::1 and 127.0.0.1. */
static enum ha_err make_addr(const char *host, int port, struct sockaddr_storage *ss, bool *v6)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    const char *h = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;

    memset(ss, 0, sizeof(*ss));
    *v6 = false;
    if (inet_pton(AF_INET, h, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        return HA_OK;
    }
    if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *v6 = true;
        return HA_OK;
    }
    return HA_ERR_CONFIG;
}

enum ha_err peer_bind(const char *host, int port, int *fd, int *bound_port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    bool v6 = false;
    int one = 1, s;

    if (!host_is_loopback(host) || make_addr(host, port, &ss, &v6) != HA_OK)
        return HA_ERR_CONFIG;
    s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return HA_ERR_IO;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s, (struct sockaddr *)&ss,
             v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) != 0 ||
        listen(s, 128) != 0 || getsockname(s, (struct sockaddr *)&ss, &len) != 0) {
        int saved = errno; /* for the caller's message */
        close(s);
        errno = saved;
        return HA_ERR_IO;
    }
    *bound_port =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    *fd = s;
    return HA_OK;
}

enum ha_err peer_server_start(const struct peer_server_config *cfg, struct peer_server **out)
{
    struct peer_server *s = calloc(1, sizeof(*s));
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
    bool tls = cfg->cert_pem != NULL && cfg->key_pem != NULL;

    if (s == NULL) {
        close(cfg->fd);
        return HA_ERR_NOMEM;
    }
    s->handler = cfg->handler;
    s->ctx = cfg->ctx;
    flags |= tls ? MHD_USE_TLS : 0u;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)cfg->fd,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)CONN_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
        tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cfg->cert_pem, MHD_OPTION_HTTPS_MEM_KEY,
        cfg->key_pem, MHD_OPTION_END);
    if (s->daemon == NULL) {
        close(cfg->fd);
        free(s);
        return HA_ERR_IO;
    }
    *out = s;
    return HA_OK;
}

void peer_server_stop(struct peer_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}

void peer_sleep_ms(long ms, const atomic_bool *stop)
{
    while (ms > 0 && !atomic_load(stop)) {
        long slice = ms < SLEEP_SLICE_MS ? ms : SLEEP_SLICE_MS;
        struct timespec ts = {slice / 1000, (slice % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

const char *peer_req_header(const struct peer_request *req, const char *name)
{
    const char *v;
    if (req->conn == NULL)
        return NULL;
    v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
    return v != NULL && strlen(v) <= PEER_MAX_HEADER ? v : NULL;
}

struct header_walk {
    peer_header_fn fn;
    void *arg;
};

static enum MHD_Result walk_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct header_walk *w = cls;
    (void)kind;
    return w->fn(w->arg, key, value != NULL ? value : "") ? MHD_YES : MHD_NO;
}

void peer_req_foreach_header(const struct peer_request *req, peer_header_fn fn, void *arg)
{
    struct header_walk w = {fn, arg};
    if (req->conn != NULL)
        (void)MHD_get_connection_values(req->conn, MHD_HEADER_KIND, walk_header, &w);
}

enum ha_err peer_resp_add_header(struct peer_response *r, const char *name, const char *value)
{
    char *n, *v;
    if (name[0] == '\0' || strpbrk(name, "\r\n") != NULL || strpbrk(value, "\r\n") != NULL)
        return HA_ERR_INVALID;
    if (r->extra_count >= PEER_MAX_EXTRA_HEADERS)
        return HA_ERR_TOO_LARGE;
    n = strdup(name);
    v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return HA_ERR_NOMEM;
    }
    r->extra_name[r->extra_count] = n;
    r->extra_value[r->extra_count] = v;
    r->extra_count++;
    return HA_OK;
}

static enum ha_err set_body(struct peer_response *r, const char *body, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return HA_ERR_NOMEM;
    memcpy(copy, body, len);
    copy[len] = '\0';
    free(r->body);
    r->body = copy;
    r->body_len = len;
    return HA_OK;
}

enum ha_err peer_resp_text(struct peer_response *r, int status, const char *type, const char *body)
{
    r->status = status;
    r->content_type = type;
    return set_body(r, body, strlen(body));
}

enum ha_err peer_resp_json(struct peer_response *r, int status, json_t *json)
{
    char *text = json != NULL ? json_dumps(json, JSON_COMPACT) : NULL;
    enum ha_err err = HA_ERR_NOMEM;
    json_decref(json);
    if (text != NULL)
        err = peer_resp_text(r, status, "application/json", text);
    free(text);
    if (err != HA_OK)
        r->status = 500;
    return err;
}

enum ha_err peer_resp_redirect(struct peer_response *r, int status, const char *location)
{
    char *copy = strdup(location);
    if (copy == NULL)
        return HA_ERR_NOMEM;
    free(r->location);
    r->location = copy;
    return peer_resp_text(r, status, "text/plain; charset=utf-8", "redirecting\n");
}

static const char page_head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    "<title>%s</title><style>"
    "body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;"
    "background:#f4f5f8;color:#1d2330}"
    "main{max-width:28rem;margin:10vh auto;padding:2rem 2.25rem;background:#fff;"
    "border-radius:12px;box-shadow:0 2px 12px rgba(20,30,60,.08)}"
    "h1{font-size:1.35rem;margin:0 0 .75rem}p{margin:.5rem 0 1.25rem;color:#3a4254}"
    "label{display:block;font-weight:600;margin:.75rem 0 .25rem}"
    "input[type=email],input[type=password]{box-sizing:border-box;width:100%%;"
    "padding:.55rem .7rem;border:1px solid #c9cede;border-radius:8px;font:inherit}"
    ".row{display:flex;gap:.75rem;margin-top:1.5rem}"
    "button,a.btn{display:inline-block;padding:.6rem 1.1rem;border-radius:8px;border:0;"
    "background:#3b5bdb;color:#fff;text-decoration:none;font:inherit;font-weight:600;"
    "cursor:pointer}button.alt{background:#e6e9f2;color:#1d2330}"
    ".err{color:#b42318;font-weight:600}"
    "small{display:block;margin-top:1.5rem;color:#7a8192;font-size:.8rem}"
    "code{font-size:.9em;word-break:break-all}"
    "</style></head><body><main>\n";

enum ha_err peer_page_head(const char *title, char **out)
{
    struct ha_buf b;
    char *t = NULL;
    enum ha_err err;

    ha_buf_init(&b, 16 * 1024);
    err = ha_html_escape(title, &t);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, page_head, t);
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    free(t);
    return err;
}

enum ha_err peer_resp_page(struct peer_response *r, int status, const char *title,
                           const char *message, const char *extra_html)
{
    struct ha_buf b;
    char *head = NULL, *t = NULL, *m = NULL;
    enum ha_err err;

    ha_buf_init(&b, 256 * 1024);
    err = peer_page_head(title, &head);
    if (err == HA_OK)
        err = ha_html_escape(title, &t);
    if (err == HA_OK)
        err = ha_html_escape(message, &m);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, "%s<h1>%s</h1>\n<p>%s</p>\n%s%s", head, t, m,
                             extra_html != NULL ? extra_html : "", PEER_PAGE_TAIL);
    if (err == HA_OK)
        err = set_body(r, b.data, b.len);
    if (err == HA_OK) {
        r->status = status;
        r->content_type = "text/html; charset=utf-8";
    }
    ha_buf_cleanup(&b);
    free(head);
    free(t);
    free(m);
    return err;
}

void peer_response_cleanup(struct peer_response *r)
{
    free(r->body);
    free(r->content_type_own);
    free(r->location);
    free(r->set_cookie);
    free(r->www_authenticate);
    for (size_t i = 0; i < r->extra_count; i++) {
        free(r->extra_name[i]);
        free(r->extra_value[i]);
    }
    memset(r, 0, sizeof(*r));
}

bool peer_type_is(const char *header, const char *type)
{
    size_t n = strlen(type);
    if (header == NULL || strncasecmp(header, type, n) != 0)
        return false;
    return header[n] == '\0' || header[n] == ';' || header[n] == ' ' || header[n] == '\t';
}

enum ha_err peer_write_atomic(const char *path, const char *data, size_t len, unsigned int mode)
{
    char tmp[4200];
    int fd;
    ssize_t n;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return HA_ERR_TOO_LARGE;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        return HA_ERR_IO;
    n = write(fd, data, len);
    if (close(fd) != 0 || n < 0 || (size_t)n != len || rename(tmp, path) != 0) {
        unlink(tmp);
        return HA_ERR_IO;
    }
    return HA_OK;
}

char *peer_path_join(const char *dir, const char *name)
{
    struct ha_buf b;
    char *out = NULL;
    ha_buf_init(&b, 4096);
    if (ha_buf_appendf(&b, "%s/%s", dir, name) != HA_OK || ha_buf_steal(&b, &out) != HA_OK)
        out = NULL;
    ha_buf_cleanup(&b);
    return out;
}
