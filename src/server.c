/* libmicrohttpd adapter: the only file that includes <microhttpd.h>.
 *
 * Concurrency model: MHD's epoll thread pool (one thread per core) does all socket I/O and
 * runs the handlers that never leave the process (start, logout, probes, metrics). The
 * redirect route calls the tenant and Houston: its connection is suspended, its handler
 * starts the first call on the event loop (loop.h) and returns, and the loop resumes the
 * connection when the login's answer is ready. No thread waits on a peer and none is created
 * per request: a slow peer costs each waiting login its buffers, and probes keep answering on
 * the I/O threads whatever the peers do.
 *
 * Caps: MHD's per-connection memory pool bounds the request line and headers (414/431 from
 * MHD itself), the raw URI and the Cookie header are checked against HA_MAX_URL and
 * HA_MAX_COOKIE_HEADER, bodies against HA_MAX_FORM_BODY (413 before reading on a large
 * Content-Length; chunked bodies are refused with 411), and idle or trickling connections
 * time out.
 *
 * Slow clients: MHD's connection timeout is an idle timeout, and a client that sends one
 * header byte every few seconds is never idle (slow-loris). MHD 0.9.75 has no request read
 * deadline, so a watchdog (a timer on the event loop) keeps one per connection: from accept
 * (TLS handshake included), and again after each response, the whole request must arrive
 * within REQUEST_READ_TIMEOUT_S or the watchdog shuts the socket down and MHD closes it. The
 * list is guarded by one mutex that MHD's close notification also takes, so the watchdog
 * never touches a descriptor MHD has closed (MHD notifies before it closes); deadlines
 * themselves are atomics, so requests never take that mutex. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <microhttpd.h>
#include "houston_auth/buf.h"
#include "houston_auth/cookie.h"
#include "houston_auth/ctype.h"
#include "houston_auth/log.h"
#include "houston_auth/loop.h"
#include "houston_auth/metrics.h"
#include "houston_auth/netaddr.h"
#include "houston_auth/proto.h"
#include "houston_auth/router.h"
#include "houston_auth/server.h"

/* One page over 32 KiB: libmicrohttpd (0.9.75) mallocs pools of 32 KiB or less and maps
 * larger ones with mmap. A mapped pool's pages are resident only once touched and go back
 * to the kernel when its connection closes; a malloc'ed pool's pages, once touched (MHD
 * zeroes the read buffer's tail when it answers), stay in the heap for good. With a
 * thousand logins answered at once (a stalled peer's timeout) that was 15 MiB of peak RSS.
 * The size itself is what every documented cap at once needs (4 KiB URL, 8 KiB Cookie,
 * browser headers: at least 26 KiB; a test sends one). */
#define CONN_MEMORY_LIMIT (32 * 1024 + 4096)
#define CONN_TIMEOUT_S 15
#define REQUEST_READ_TIMEOUT_S 10
#define WATCHDOG_TICK_MS 500
#define MAX_PEM (64 * 1024)
#define FORM_TYPE "application/x-www-form-urlencoded"

enum phase { PHASE_HEADERS, PHASE_BODY, PHASE_WORKING, PHASE_DONE };

struct conn {
    struct ha_server *srv;
    struct MHD_Connection *mhd;
    char *uri; /* raw request target, NULL when over HA_MAX_URL */
    int uri_too_long;
    enum phase phase;
    const struct ha_route *route;
    struct ha_buf body;
    struct ha_request req;
    struct ha_response resp;
    uint64_t t0;
};

/* One per connection (MHD's socket context): the request read deadline. */
struct watch {
    int fd;
    _Atomic uint64_t deadline_ns; /* 0: no request being read; set without wlock */
    struct watch *prev, *next;
};

struct ha_server {
    struct ha_app *app;
    struct MHD_Daemon *daemon;
    char *tls_cert;
    char *tls_key;
    atomic_int inflight;
    atomic_bool draining; /* stopping: every answer closes its connection */
    int port;
    /* The slow-client watchdog: every connection's watch, under wlock; the timer is the
     * loop's. */
    pthread_mutex_t wlock;
    struct watch *watches;
    struct ha_timer wtimer;
};

static uint64_t read_deadline(void)
{
    return ha_mono_ns() + (uint64_t)REQUEST_READ_TIMEOUT_S * 1000000000u;
}

static void on_connection(void *cls, struct MHD_Connection *mhd, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct ha_server *s = cls;
    struct watch *w = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
        w = info != NULL ? calloc(1, sizeof(*w)) : NULL;
        if (w == NULL)
            return; /* unwatched: the idle timeout still applies */
        w->fd = info->connect_fd;
        atomic_init(&w->deadline_ns, read_deadline());
        pthread_mutex_lock(&s->wlock);
        w->next = s->watches;
        if (s->watches != NULL)
            s->watches->prev = w;
        s->watches = w;
        pthread_mutex_unlock(&s->wlock);
        *socket_context = w;
        return;
    }
    if (w == NULL)
        return;
    pthread_mutex_lock(&s->wlock);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        s->watches = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&s->wlock);
    free(w);
    *socket_context = NULL;
}

/* reading: a request is being read from now on (deadline armed), else it has been read. */
static void watch_reading(struct MHD_Connection *mhd, bool reading)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct watch *w = info != NULL ? info->socket_context : NULL;
    /* An atomic store, not wlock: this runs twice per request on the I/O threads, and the
     * lock only guards the list (MHD frees w only after its close notification). */
    if (w != NULL)
        atomic_store_explicit(&w->deadline_ns, reading ? read_deadline() : 0, memory_order_relaxed);
}

/* The watchdog's tick, on the loop: cuts off every connection past its read deadline. */
static void watchdog(void *arg)
{
    struct ha_server *s = arg;
    uint64_t now = ha_mono_ns();
    pthread_mutex_lock(&s->wlock);
    for (struct watch *w = s->watches; w != NULL; w = w->next) {
        uint64_t deadline = atomic_load_explicit(&w->deadline_ns, memory_order_relaxed);
        if (deadline != 0 && now >= deadline) {
            /* MHD sees end-of-stream on its next read and closes the connection. */
            shutdown(w->fd, SHUT_RDWR);
            atomic_store_explicit(&w->deadline_ns, 0, memory_order_relaxed);
            ha_metrics_slow_client(s->app->metrics);
        }
    }
    pthread_mutex_unlock(&s->wlock);
    ha_loop_timer_arm(s->app->loop, &s->wtimer, WATCHDOG_TICK_MS, watchdog, s);
}

static void watchdog_start(void *arg)
{
    struct ha_server *s = arg;
    ha_loop_timer_arm(s->app->loop, &s->wtimer, WATCHDOG_TICK_MS, watchdog, s);
}

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *mhd)
{
    struct conn *c = calloc(1, sizeof(*c));
    (void)mhd;
    if (c == NULL)
        return NULL;
    c->srv = cls;
    c->t0 = ha_mono_ns();
    ha_buf_init(&c->body, HA_MAX_FORM_BODY);
    if (strlen(uri) > HA_MAX_URL)
        c->uri_too_long = 1;
    else
        c->uri = strdup(uri);
    atomic_fetch_add(&c->srv->inflight, 1);
    ha_metrics_inflight(c->srv->app->metrics, 1);
    return c;
}

static void on_completed(void *cls, struct MHD_Connection *mhd, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct conn *c = *con_cls;
    (void)cls;
    if (c == NULL)
        return;
    if (mhd != NULL && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        watch_reading(mhd, true); /* the next request on this connection */
    atomic_fetch_sub(&c->srv->inflight, 1);
    ha_metrics_inflight(c->srv->app->metrics, -1);
    ha_request_cleanup(&c->req);
    ha_response_cleanup(&c->resp);
    ha_buf_cleanup(&c->body);
    free(c->uri);
    free(c);
    *con_cls = NULL;
}

static void add_security_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    /* The redirect URL carries code and state: never leak it through Referer. */
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; style-src 'unsafe-inline'; "
                            "frame-ancestors 'none'; form-action 'none'");
}

static enum MHD_Result send_response(struct conn *c)
{
    struct ha_response *rs = &c->resp;
    struct MHD_Response *r;
    enum MHD_Result ret;

    watch_reading(c->mhd, false);
    r = MHD_create_response_from_buffer(rs->body_len, rs->body != NULL ? rs->body : (void *)"",
                                        MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    add_security_headers(r);
    if (rs->content_type != NULL)
        MHD_add_response_header(r, "Content-Type", rs->content_type);
    if (rs->location != NULL && MHD_add_response_header(r, "Location", rs->location) != MHD_YES)
        rs->status = 500; /* a CR/LF in a Location never reaches the wire */
    if (rs->allow != NULL)
        MHD_add_response_header(r, "Allow", rs->allow);
    if (rs->no_store) {
        MHD_add_response_header(r, "Cache-Control", "no-store");
        MHD_add_response_header(r, "Pragma", "no-cache");
    }
    for (size_t i = 0; i < rs->set_cookie_count; i++)
        MHD_add_response_header(r, "Set-Cookie", rs->set_cookies[i]);
    for (size_t i = 0; i < rs->header_count; i++) {
        /* A relayed value MHD refuses (CR, LF) fails the answer: nginx would pass on a
         * decision without its identity headers otherwise. */
        if (MHD_add_response_header(r, rs->header_names[i], rs->header_values[i]) != MHD_YES) {
            MHD_destroy_response(r);
            ha_router_error(rs, 502, "bad gateway\n");
            return send_response(c);
        }
    }
    if (c->req.request_id[0] != '\0')
        MHD_add_response_header(r, "X-Request-Id", c->req.request_id);
    /* A login's last answer sends the browser to the app, off this host: its connection is
     * closed rather than kept idle, because libmicrohttpd zeroes a kept connection's whole
     * memory pool (CONN_MEMORY_LIMIT) for the next request, so a thousand logins ending at
     * once (a stalled peer's timeout) would otherwise hold a thousand touched pools. */
    if ((c->route != NULL && c->route->outbound && !c->route->gate) ||
        atomic_load(&c->srv->draining))
        MHD_add_response_header(r, "Connection", "close");
    ret = MHD_queue_response(c->mhd, (unsigned int)rs->status, r);
    MHD_destroy_response(r);
    {
        /* The access log: never the query string (it carries code and state). Probes and
         * metrics only at debug, so kubelet's polling does not drown the login lines. */
        enum ha_log_level level = c->route != NULL && c->route->login ? HA_LOG_INFO : HA_LOG_DEBUG;
        if (ha_log_enabled(level)) {
            char status[8], ms[32];
            snprintf(status, sizeof(status), "%d", rs->status);
            snprintf(ms, sizeof(ms), "%.3f", (double)(ha_mono_ns() - c->t0) / 1e6);
            ha_log(level, "request", c->req.request_id, "method", c->req.method, "path",
                   c->route != NULL ? c->route->path : "(other)", "status", status, "duration_ms",
                   ms, NULL);
        }
    }
    c->phase = PHASE_DONE;
    return ret;
}

static enum MHD_Result reject(struct conn *c, int status, const char *message)
{
    ha_router_error(&c->resp, status, message);
    return send_response(c);
}

/* Accepts a well-formed X-Request-Id from the ingress, else makes one. */
static void set_request_id(struct conn *c)
{
    const char *rid = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "X-Request-Id");
    unsigned char rnd[8];
    size_t n = rid != NULL ? strlen(rid) : 0;
    bool ok = n > 0 && n < sizeof(c->req.request_id);
    for (size_t i = 0; ok && i < n; i++) {
        char ch = rid[i];
        ok = ha_isalnum(ch) || ch == '-' || ch == '_' || ch == '.';
    }
    if (ok) {
        memcpy(c->req.request_id, rid, n + 1);
        return;
    }
    if (c->srv->app->rng.fill(c->srv->app->rng.ctx, rnd, sizeof(rnd)) != HA_OK)
        memset(rnd, 0, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++) {
        c->req.request_id[2 * i] = "0123456789abcdef"[rnd[i] >> 4];
        c->req.request_id[2 * i + 1] = "0123456789abcdef"[rnd[i] & 15];
    }
    c->req.request_id[2 * sizeof(rnd)] = '\0';
}

/* The peer's address and X-Forwarded-For, for the rate limits of the login routes. Of a long
 * X-Forwarded-For only the tail is kept, from an entry boundary: the rightmost entries are
 * the ones our own proxies wrote (netaddr.h). */
static int read_client(struct conn *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const char *xff = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "X-Forwarded-For");
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
    size_t n;

    if (sa != NULL && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, c->req.peer,
                  sizeof(c->req.peer));
    else if (sa != NULL && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                  c->req.peer, sizeof(c->req.peer));
    if (xff == NULL)
        return 0;
    n = strlen(xff);
    if (n > HA_MAX_FORWARDED_FOR) {
        const char *tail = strchr(xff + n - HA_MAX_FORWARDED_FOR, ',');
        xff = tail != NULL ? tail + 1 : xff + n;
    }
    c->req.forwarded_for = strdup(xff);
    return c->req.forwarded_for == NULL ? 503 : 0;
}

/* Parses the query, the Cookie header and a form body into c->req. 0 on success, else the
 * HTTP status to answer. */
static int build_request(struct conn *c, const char *method)
{
    char *q = strchr(c->uri, '?');
    const char *cookie = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Cookie");
    enum ha_err err;

    c->req.method = method;
    if (c->route->login && read_client(c) != 0)
        return 503;
    if (c->route->gate) {
        c->req.authorization =
            MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Authorization");
        c->req.original_url =
            MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "X-Original-URL");
        c->req.original_method =
            MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "X-Original-Method");
    }
    if (q != NULL && ha_url_parse_query(q + 1, strlen(q + 1), &c->req.query) != HA_OK)
        return 400;
    if (cookie != NULL) {
        err = ha_cookie_parse(cookie, strlen(cookie), &c->req.cookies);
        if (err == HA_ERR_TOO_LARGE)
            return 431;
        if (err != HA_OK)
            return 400;
    }
    if (strcmp(method, "POST") == 0) {
        const char *type = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Content-Type");
        if (type == NULL || strncasecmp(type, FORM_TYPE, strlen(FORM_TYPE)) != 0)
            return 415;
        if (c->body.len > 0 && ha_url_parse_query(c->body.data, c->body.len, &c->req.form) != HA_OK)
            return 400;
    }
    return 0;
}

/* The login's answer is ready (on the loop's thread, or at once): MHD sends it. */
static void resume(void *arg)
{
    struct conn *c = arg;
    c->phase = PHASE_DONE;
    MHD_resume_connection(c->mhd);
}

/* An outbound route: the connection waits, suspended, while its handler's calls run on the
 * event loop; no thread waits with it. */
static enum MHD_Result begin_outbound(struct conn *c)
{
    watch_reading(c->mhd, false);
    c->phase = PHASE_WORKING;
    MHD_suspend_connection(c->mhd);
    ha_router_begin(c->srv->app, c->route, &c->req, &c->resp, resume, c);
    return MHD_YES;
}

static enum MHD_Result on_headers(struct conn *c, const char *method)
{
    const char *len = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Content-Length");
    const char *cookie = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Cookie");
    char *q;

    if (c->uri_too_long || c->uri == NULL)
        return reject(c, 414, "URI too long\n");
    if (cookie != NULL && strlen(cookie) > HA_MAX_COOKIE_HEADER)
        return reject(c, 431, "Cookie header too large\n");
    if (len != NULL && (strlen(len) > 9 || strtoul(len, NULL, 10) > HA_MAX_FORM_BODY))
        return reject(c, 413, "request body too large\n");
    /* MHD cannot answer while a chunked upload is still arriving, so an endless one could
     * only be cut off without an answer; browsers send form_post with a Content-Length. */
    if (MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Transfer-Encoding") != NULL)
        return reject(c, 411, "a body needs a Content-Length\n");
    q = strchr(c->uri, '?');
    if (q != NULL)
        *q = '\0';
    c->route = ha_router_find(c->uri);
    if (q != NULL)
        *q = '?';
    c->req.method = method;
    c->req.path = c->route != NULL ? c->route->path : "";
    /* Probes and metrics get no request id: nothing is logged for them at info, and a random
     * id per kubelet poll was a tenth of a probe's cost. */
    if (c->route != NULL && (c->route->login || c->route->early))
        set_request_id(c);
    if (c->route == NULL)
        return reject(c, 404, "not found\n");
    if (c->route->early) {
        /* A refusal needs nothing from the body: answer now, any method. */
        ha_router_dispatch(c->srv->app, c->route, &c->req, &c->resp);
        return send_response(c);
    }
    if (!ha_router_method_ok(c->route, method)) {
        ha_router_error(&c->resp, 405, "method not allowed\n");
        c->resp.allow = c->route->allow;
        return send_response(c);
    }
    c->phase = PHASE_BODY;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mhd, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    struct conn *c = *con_cls;
    int status;
    (void)cls;
    (void)url;
    (void)version;

    if (c == NULL)
        return MHD_NO;
    c->mhd = mhd;
    switch (c->phase) {
    case PHASE_HEADERS:
        return on_headers(c, method);
    case PHASE_BODY:
        break;
    case PHASE_WORKING:
        return MHD_YES;
    case PHASE_DONE:
        return send_response(c);
    }
    if (*upload_size > 0) {
        if (ha_buf_append(&c->body, upload_data, *upload_size) != HA_OK)
            return reject(c, 413, "request body too large\n");
        *upload_size = 0;
        return MHD_YES;
    }
    status = build_request(c, method);
    if (status != 0)
        return reject(c, status, status == 415 ? "expected a form body\n" : "malformed request\n");
    if (c->route->outbound) {
        /* The gate answers from its cache here, on the I/O thread, when it can. */
        if (ha_router_answer(c->srv->app, c->route, &c->req, &c->resp))
            return send_response(c);
        return begin_outbound(c);
    }
    ha_router_dispatch(c->srv->app, c->route, &c->req, &c->resp);
    return send_response(c);
}

static enum ha_err read_pem(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    char *data;
    size_t n;
    if (f == NULL)
        return HA_ERR_IO;
    data = calloc(1, MAX_PEM + 1);
    if (data == NULL) {
        (void)fclose(f); /* read-only: nothing to flush */
        return HA_ERR_NOMEM;
    }
    n = fread(data, 1, MAX_PEM + 1, f);
    (void)fclose(f);
    if (n == 0 || n > MAX_PEM) {
        ha_free_secret(data);
        return HA_ERR_TOO_LARGE;
    }
    *out = data;
    return HA_OK;
}

static enum ha_err resolve_listen(const struct ha_config *cfg, struct sockaddr_storage *ss,
                                  socklen_t *len)
{
    struct addrinfo hints = {0}, *res = NULL;
    char port[16];
    const char *host = cfg->listen_host;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    if (host != NULL && (host[0] == '\0' || strcmp(host, "*") == 0))
        host = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return HA_ERR_CONFIG;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return HA_OK;
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 8 ? 8 : (int)n);
}

static enum ha_err start_daemon(struct ha_server *s, const char **reason)
{
    const struct ha_config *cfg = ha_app_view(s->app)->cfg;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_TURBO;
    enum ha_err err = resolve_listen(cfg, &ss, &sslen);
    if (err != HA_OK) {
        *reason = "the listen host is not an address of this machine";
        return err;
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (s->tls_cert != NULL)
        flags |= MHD_USE_TLS;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)cpu_count(), MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        s->tls_cert != NULL ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->tls_cert,
        MHD_OPTION_HTTPS_MEM_KEY, s->tls_key, MHD_OPTION_END);
    if (s->daemon == NULL) {
        *reason = "cannot listen there (address in use, or not this machine's?)";
        return HA_ERR_IO;
    }
    {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
        s->port = info != NULL ? info->port : cfg->listen_port;
    }
    return HA_OK;
}

static void server_free(struct ha_server *s)
{
    if (s == NULL)
        return;
    /* The loop first: every login in flight ends and resumes its connection, and the
     * watchdog's timer never runs again; MHD stops with no connection suspended. */
    ha_app_stop(s->app);
    /* The loop's thread has ended: its timer list is this thread's to change now, and s's
     * timer must not stay linked in it once s is freed. */
    ha_loop_timer_cancel(s->app->loop, &s->wtimer);
    if (s->daemon != NULL)
        MHD_stop_daemon(s->daemon);
    pthread_mutex_destroy(&s->wlock);
    ha_free_secret(s->tls_key);
    free(s->tls_cert);
    free(s);
}

enum ha_err ha_server_start(struct ha_app *app, struct ha_server **out, const char **reason)
{
    const struct ha_config *cfg = ha_app_view(app)->cfg;
    struct ha_server *s = calloc(1, sizeof(*s));
    enum ha_err err = HA_ERR_NOMEM;

    const char *why = "out of memory or threads";

    if (s == NULL) {
        *reason = why;
        return HA_ERR_NOMEM;
    }
    s->app = app;
    pthread_mutex_init(&s->wlock, NULL);
    if (cfg->tls_cert_file != NULL && cfg->tls_key_file != NULL) {
        err = read_pem(cfg->tls_cert_file, &s->tls_cert);
        if (err == HA_OK)
            err = read_pem(cfg->tls_key_file, &s->tls_key);
        if (err != HA_OK) {
            why = "cannot read authSidecar.tlsCertFile or tlsKeyFile (at most 64 KiB)";
            goto out;
        }
    }
    err = ha_loop_post(app->loop, watchdog_start, s);
    if (err == HA_OK)
        err = start_daemon(s, &why);
    if (err != HA_OK)
        goto out;
    *out = s;
    s = NULL;
out:
    server_free(s);
    if (err != HA_OK)
        *reason = why;
    return err;
}

void ha_server_stop(struct ha_server *s, long drain_ms)
{
    uint64_t deadline = ha_mono_ns() + (uint64_t)drain_ms * 1000000u;
    if (s == NULL)
        return;
    /* Stop accepting; connections already open keep being served until the deadline, each
     * closed after its next answer (a keep-alive connection from the ingress would otherwise
     * keep bringing logins until the deadline cuts them). */
    atomic_store(&s->draining, true);
    MHD_quiesce_daemon(s->daemon);
    while (atomic_load(&s->inflight) > 0 && ha_mono_ns() < deadline)
        usleep(10 * 1000);
    if (atomic_load(&s->inflight) > 0)
        ha_log(HA_LOG_WARN, "drain_deadline", NULL, "reason",
               "requests still in flight at the drain deadline", NULL);
    server_free(s);
}

int ha_server_port(const struct ha_server *s)
{
    return s->port;
}
