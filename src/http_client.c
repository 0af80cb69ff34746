/* Outbound HTTP(S) with libcurl: the only file that includes <curl/curl.h>.
 *
 * The sidecar's requests are asynchronous: each is an easy handle on one curl multi handle
 * whose sockets and timer are watched by the event loop (loop.h, curl_multi_socket_action),
 * so a login waiting on a peer costs a socket and buffers, never a thread. The multi handle
 * keeps live connections, DNS answers and (through a share handle) TLS sessions across
 * requests.
 *
 * At most max_host_connections transfers per peer (origin) are in curl at once; the others
 * wait here, in start order, as a small record (the request's copy, no easy handle, no
 * buffers), so a thousand logins caught in a peer's stall cost a thousand records, not a
 * thousand curl handles. Each transfer has its own deadline: the total timeout from the call
 * to start, or sooner when the caller says so (a login's calls share one), kept whether it
 * waits here or in curl (curl would not time a transfer that has no connection yet). The
 * deadlines are in one list, soonest first (nearly always start order, so an insertion is
 * at the end), and one loop timer ends those past it; a waiting transfer past its deadline
 * never reaches the peer. The person's wait is bounded whatever the queue.
 *
 * The synchronous call (ha_http_client_perform) uses an easy handle of its own per request
 * and is only for one-shot tools and tests.
 *
 * Every request has connect and total timeouts, never follows redirects, verifies TLS, speaks
 * only http/https, and caps the body and the headers it keeps.
 *
 * Trust is loaded once per client: curl 7.88 builds a new SSL_CTX for every new connection
 * and, left to itself, parses the CA bundle into it each time. With Debian's bundle (about
 * 140 certificates) a burst of logins opening 64 connections at once spent its CPU parsing
 * PEM and token requests timed out (bench: 86 of 768 logins failed). So curl is given no CA
 * file or path, and every connection's SSL_CTX takes this client's X509_STORE, loaded on the
 * first TLS connection (a plain-HTTP probe never pays for it) and never changed after, as
 * its verify store (SSL_CTX_set1_verify_cert_store: curl still writes flags into the
 * connection's own, unused store, so sharing that one would be a data race). */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include "houston_auth/http_client.h"
#include "houston_auth/log.h"
#include "houston_auth/loop.h"
#include "houston_auth/proto.h"
#include "houston_auth/url.h"
#include "houston_auth/util.h"

#define POOL_MAX 32  /* idle easy handles kept for reuse */
#define MAX_PEERS 16 /* origins called: the tenant, Houston, maybe a JWKS host */
#define DEFAULT_HOST_CONNECTIONS 64
#define LAUNCH_MIN_MS 1000 /* or a fifth of the total timeout, if less */
#define SYSTEM_CA_PATH "/etc/ssl/certs"
#define MAX_KEPT_HEADER 4096
/* curl's receive buffer per transfer (its default is 16 KiB): answers from the tenant and
 * Houston are a few KiB, and a thousand waiting logins each hold one. */
#define RECV_BUFFER 4096

struct transfer {
    struct ha_http_response *resp;
    size_t max_body;
    size_t body_cap; /* resp->body's allocation */
    int too_large;
    const char *const *capture; /* response headers to keep (the request's), NULL-ended */
};

struct peer;

/* A new transfer with less time than this left is not sent (a queued one: launch_min_ms). */
#define DIRECT_MIN_MS 50u

/* One asynchronous request, from start to its callback. */
struct xfer {
    struct ha_http_client *c;
    struct peer *peer;
    CURL *h;      /* while curl holds it */
    bool waiting; /* in peer's queue */
    struct xfer *qprev, *qnext;
    struct curl_slist *headers;
    char *url;
    char *body; /* a secret (codes, tokens): wiped */
    size_t body_len;
    bool post;
    bool to_tenant;
    const char *queue; /* static */
    char *user, *pass; /* HTTP Basic, secrets */
    uint64_t deadline_ns;
    struct ha_http_response resp;
    struct transfer t;
    ha_http_done_fn done;
    void *ctx;
    struct xfer *prev, *next; /* the deadline list, oldest first */
};

/* A peer (an origin, and a queue of it) and the transfers waiting for one of its slots,
 * oldest first. */
struct peer {
    char *origin;
    const char *queue; /* the requests' queue name (static), NULL: the default one */
    long active;       /* transfers curl holds for it */
    struct xfer *qhead, *qtail;
    struct peer *next;
};

struct ha_http_client {
    char *ca_file;
    char *tenant_proxy; /* NULL: no proxy for anything */
    pthread_mutex_t trust_lock;
    X509_STORE *trust; /* NULL until the first TLS connection loads it */
    long connect_timeout_ms;
    long total_timeout_ms;
    size_t max_body;
    long max_host_connections;
    long launch_min_ms; /* a waiting transfer with less time left is not started */
    /* Asynchronous transfers: the loop thread's only. */
    struct ha_loop *loop;
    CURLM *multi;
    CURLSH *share; /* TLS sessions, for the multi's transfers (one thread: no locks) */
    struct ha_timer curl_timer;
    struct ha_timer deadline_timer;
    struct xfer *oldest, *newest;
    size_t in_flight;
    CURL *pool[POOL_MAX];
    size_t pool_count;
    struct peer *peers; /* at most MAX_PEERS */
    size_t npeers;
    bool closed;
};

enum ha_err ha_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? HA_OK : HA_ERR_IO;
}

enum ha_err ha_http_client_new(const struct ha_http_client_opts *o, struct ha_http_client **out)
{
    enum ha_err err = HA_ERR_NOMEM;
    struct ha_http_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return HA_ERR_NOMEM;
    pthread_mutex_init(&c->trust_lock, NULL);
    c->connect_timeout_ms = o->connect_timeout_ms;
    c->total_timeout_ms = o->total_timeout_ms;
    c->max_body = o->max_body == 0 ? HA_MAX_PEER_BODY : o->max_body;
    c->max_host_connections =
        o->max_host_connections > 0 ? o->max_host_connections : DEFAULT_HOST_CONNECTIONS;
    c->launch_min_ms =
        c->total_timeout_ms / 5 < LAUNCH_MIN_MS ? c->total_timeout_ms / 5 : LAUNCH_MIN_MS;
    if (o->tenant_proxy != NULL) {
        c->tenant_proxy = strdup(o->tenant_proxy);
        if (c->tenant_proxy == NULL)
            goto out;
    }
    if (o->ca_file != NULL && o->ca_file[0] != '\0') {
        c->ca_file = strdup(o->ca_file);
        if (c->ca_file == NULL)
            goto out;
    }
    *out = c;
    c = NULL;
    err = HA_OK;
out:
    ha_http_client_free(c);
    return err;
}

void ha_http_client_free(struct ha_http_client *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->pool_count; i++)
        curl_easy_cleanup(c->pool[i]);
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    if (c->share != NULL)
        curl_share_cleanup(c->share);
    while (c->peers != NULL) {
        struct peer *p = c->peers;
        c->peers = p->next;
        free(p->origin);
        free(p);
    }
    pthread_mutex_destroy(&c->trust_lock);
    X509_STORE_free(c->trust);
    free(c->ca_file);
    free(c->tenant_proxy);
    free(c);
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct transfer *t = ctx;
    struct ha_http_response *r = t->resp;
    size_t len = size * n;
    char *p;
    if (len > t->max_body || r->body_len > t->max_body - len) {
        t->too_large = 1;
        return 0; /* aborts the transfer: nothing past the cap is read */
    }
    if (r->body_len + len + 1 > t->body_cap) {
        /* Grown by copy, the old block wiped: a token answer is a secret, and realloc would
         * free it unwiped wherever it moves the block. */
        size_t cap = t->body_cap == 0 ? 4096 : t->body_cap;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        p = malloc(cap);
        if (p == NULL)
            return 0;
        if (r->body != NULL) {
            memcpy(p, r->body, r->body_len);
            OPENSSL_cleanse(r->body, t->body_cap);
            free(r->body);
        }
        r->body = p;
        t->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

/* Returns a copy of the header's value with surrounding whitespace removed, or NULL. */
static char *header_value(const char *line, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *v, *end;
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return NULL;
    v = line + nl + 1;
    end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return strndup(v, (size_t)(end - v));
}

static void replace(char **slot, char *value)
{
    free(*slot);
    *slot = value;
}

/* A header the request asked to keep: 1 when line is one (kept, or dropped as a repeat),
 * 0 when not, -1 when its value is over HA_HTTP_MAX_CAPTURED_VALUE or out of memory. */
static int capture(struct transfer *t, const char *line, size_t len)
{
    struct ha_http_response *r = t->resp;
    for (size_t i = 0; t->capture != NULL && i < HA_HTTP_MAX_CAPTURE && t->capture[i] != NULL;
         i++) {
        size_t nl = strlen(t->capture[i]);
        char *v;
        if (len <= nl || strncasecmp(line, t->capture[i], nl) != 0 || line[nl] != ':')
            continue;
        if (r->captured[i] != NULL) {
            r->captured_repeated = true;
            return 1;
        }
        v = header_value(line, len, t->capture[i]);
        if (v == NULL || strlen(v) > HA_HTTP_MAX_CAPTURED_VALUE) {
            ha_free_secret(v);
            t->too_large = v != NULL;
            return -1;
        }
        r->captured[i] = v;
        return 1;
    }
    return 0;
}

static void forget_headers(struct ha_http_response *r)
{
    replace(&r->location, NULL);
    replace(&r->content_type, NULL);
    while (r->set_cookie_count > 0)
        ha_free_secret(r->set_cookies[--r->set_cookie_count]);
    for (size_t i = 0; i < HA_HTTP_MAX_CAPTURE; i++) {
        ha_free_secret(r->captured[i]);
        r->captured[i] = NULL;
    }
    r->captured_repeated = false;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    struct transfer *t = ctx;
    struct ha_http_response *r = t->resp;
    size_t len = size * n;
    char *v;
    int kept;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response (e.g. after 100 Continue): forget the previous one's headers. */
        forget_headers(r);
        return len;
    }
    kept = capture(t, data, len);
    if (kept != 0)
        return kept > 0 ? len : 0; /* 0 aborts the transfer */
    if (len > MAX_KEPT_HEADER)
        return len; /* ignored, never kept: no other header we use is this long */
    if ((v = header_value(data, len, "Location")) != NULL)
        replace(&r->location, v);
    else if ((v = header_value(data, len, "Content-Type")) != NULL)
        replace(&r->content_type, v);
    else if ((v = header_value(data, len, "Set-Cookie")) != NULL) {
        if (r->set_cookie_count < HA_HTTP_MAX_SET_COOKIES)
            r->set_cookies[r->set_cookie_count++] = v;
        else
            ha_free_secret(v);
    }
    return len;
}

/* The trust anchors curl would have used: the configured CA file plus the system directory,
 * or curl's built-in defaults (Debian: the system bundle and directory). Flags as curl sets
 * them on its own stores. NULL when the file cannot be loaded. */
static X509_STORE *load_trust(const struct ha_http_client *c, CURL *h)
{
    const char *file = c->ca_file, *dir = SYSTEM_CA_PATH;
    X509_STORE *store = X509_STORE_new();

    if (c->ca_file == NULL && (curl_easy_getinfo(h, CURLINFO_CAINFO, &file) != CURLE_OK ||
                               curl_easy_getinfo(h, CURLINFO_CAPATH, &dir) != CURLE_OK)) {
        X509_STORE_free(store);
        return NULL;
    }
    if (store == NULL || (file != NULL && X509_STORE_load_file(store, file) != 1) ||
        (dir != NULL && X509_STORE_load_path(store, dir) != 1) ||
        X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_TRUSTED_FIRST) != 1) {
        X509_STORE_free(store);
        ERR_clear_error();
        return NULL;
    }
    return store;
}

static CURLcode on_ssl_ctx(CURL *h, void *ssl_ctx, void *userdata)
{
    struct ha_http_client *c = userdata;
    int ok;
    pthread_mutex_lock(&c->trust_lock);
    if (c->trust == NULL)
        c->trust = load_trust(c, h);
    ok = c->trust != NULL && SSL_CTX_set1_verify_cert_store((SSL_CTX *)ssl_ctx, c->trust) == 1;
    pthread_mutex_unlock(&c->trust_lock);
    return ok ? CURLE_OK : CURLE_SSL_CACERT_BADFILE;
}

/* Options every request gets, synchronous or not. */
static void set_common(struct ha_http_client *c, CURL *h, struct transfer *t)
{
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->total_timeout_ms);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    /* Trust comes from on_ssl_ctx only (see the top of this file). */
    curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
    curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, c);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "houston-auth/" HA_VERSION);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, NULL);
}

/* The request itself: URL, headers, proxy, method and body, credentials. body and the
 * strings must outlive the transfer only where curl does not copy them (the body). */
static void set_request(struct ha_http_client *c, CURL *h, const char *url,
                        struct curl_slist *headers, bool to_tenant, bool post, const char *body,
                        size_t body_len, const char *user, const char *pass)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    /* "" turns proxies off, the environment's http_proxy/https_proxy/ALL_PROXY included:
     * tokens to Houston must never leave the pod, nor go to the tenant through a proxy
     * nobody configured here. */
    curl_easy_setopt(h, CURLOPT_PROXY, to_tenant && c->tenant_proxy != NULL ? c->tenant_proxy : "");
    if (post) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (user != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, pass != NULL ? pass : "");
    }
}

static enum ha_err map_curl(CURLcode rc, const struct transfer *t)
{
    if (rc == CURLE_OK)
        return HA_OK;
    if (t->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return HA_ERR_TOO_LARGE;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return HA_ERR_TIMEOUT;
    if (rc == CURLE_OUT_OF_MEMORY)
        return HA_ERR_NOMEM;
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR ||
        rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM)
        return HA_ERR_TLS;
    return HA_ERR_IO;
}

/* A request header line the caller gave: "Name: value", no control character but HTAB. */
static bool header_line_ok(const char *line)
{
    const char *colon = strchr(line, ':');
    if (colon == NULL || colon == line)
        return false;
    for (const unsigned char *p = (const unsigned char *)line; *p != '\0'; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    }
    return true;
}

/* curl_slist_free_all, the lines wiped first (they may carry credentials). */
static void free_headers(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l != NULL; l = l->next)
        OPENSSL_cleanse(l->data, strlen(l->data));
    curl_slist_free_all(list);
}

/* The request's header list, or NULL with *err set (HA_ERR_INVALID: a line refused). */
static struct curl_slist *build_headers(const struct ha_http_request *req, enum ha_err *err)
{
    struct curl_slist *list = NULL, *next;
    char line[256];
    const char *items[3] = {NULL, NULL, NULL};
    if (req->content_type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        items[0] = line;
    }
    for (int i = 0; i < 3; i++) {
        char tmp[256];
        const char *h = items[i];
        if (i == 1 && req->accept != NULL) {
            snprintf(tmp, sizeof(tmp), "Accept: %s", req->accept);
            h = tmp;
        } else if (i == 2 && req->request_id != NULL) {
            snprintf(tmp, sizeof(tmp), "X-Request-Id: %s", req->request_id);
            h = tmp;
        }
        if (h == NULL)
            continue;
        next = curl_slist_append(list, h);
        if (next == NULL) {
            curl_slist_free_all(list);
            *err = HA_ERR_NOMEM;
            return NULL;
        }
        list = next;
    }
    for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
        bool ok = header_line_ok(req->headers[i]);
        next = ok ? curl_slist_append(list, req->headers[i]) : NULL;
        if (next == NULL) {
            *err = ok ? HA_ERR_NOMEM : HA_ERR_INVALID;
            free_headers(list);
            return NULL;
        }
        list = next;
    }
    /* No "Expect: 100-continue" round trip for small form posts. */
    next = curl_slist_append(list, "Expect:");
    if (next == NULL) {
        free_headers(list);
        *err = HA_ERR_NOMEM;
    }
    return next;
}

/* An answer as callers see it: the status, and a body that is never NULL. */
static enum ha_err take_answer(CURL *h, enum ha_err err, struct ha_http_response *r)
{
    if (err != HA_OK)
        return err;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->body == NULL) {
        r->body = calloc(1, 1);
        if (r->body == NULL)
            return HA_ERR_NOMEM;
    }
    return HA_OK;
}

static bool is_post(const struct ha_http_request *req)
{
    return req->method != NULL && strcmp(req->method, "POST") == 0;
}

enum ha_err ha_http_client_perform(void *client, const struct ha_http_request *req,
                                   struct ha_http_response *resp)
{
    struct ha_http_client *c = client;
    struct ha_http_response r = {0};
    struct transfer t = {&r, c->max_body, 0, 0, req->capture};
    struct curl_slist *headers = NULL;
    enum ha_err err = HA_ERR_NOMEM;
    CURL *h = curl_easy_init();

    if (h == NULL)
        goto out;
    headers = build_headers(req, &err);
    if (headers == NULL)
        goto out;
    set_common(c, h, &t);
    set_request(c, h, req->url, headers, req->to_tenant, is_post(req), req->body, req->body_len,
                req->basic_user, req->basic_pass);
    err = take_answer(h, map_curl(curl_easy_perform(h), &t), &r);
    if (err != HA_OK)
        goto out;
    *resp = r;
    memset(&r, 0, sizeof(r));
out:
    curl_easy_cleanup(h);
    free_headers(headers);
    ha_http_response_cleanup(&r);
    return err;
}

void ha_http_response_cleanup(struct ha_http_response *r)
{
    if (r == NULL)
        return;
    if (r->body != NULL) {
        OPENSSL_cleanse(r->body, r->body_len); /* the whole body, NULs and all */
        free(r->body);
    }
    free(r->content_type);
    ha_free_secret(r->location);
    for (size_t i = 0; i < r->set_cookie_count; i++)
        ha_free_secret(r->set_cookies[i]);
    for (size_t i = 0; i < HA_HTTP_MAX_CAPTURE; i++)
        ha_free_secret(r->captured[i]);
    memset(r, 0, sizeof(*r));
}

struct ha_http ha_http_client_iface(struct ha_http_client *c)
{
    struct ha_http h = {ha_http_client_perform, c};
    return h;
}

/* ---- asynchronous transfers, on the loop ---- */

static void xfer_free(struct xfer *x)
{
    if (x == NULL)
        return;
    free_headers(x->headers);
    free(x->url);
    if (x->body != NULL) {
        OPENSSL_cleanse(x->body, x->body_len);
        free(x->body);
    }
    ha_free_secret(x->user);
    ha_free_secret(x->pass);
    ha_http_response_cleanup(&x->resp);
    free(x);
}

/* Copies what the transfer needs from req. NULL with *err set (HA_ERR_NOMEM, or
 * HA_ERR_INVALID for a request header refused). */
static struct xfer *xfer_new(struct ha_http_client *c, const struct ha_http_request *req,
                             enum ha_err *err)
{
    struct xfer *x = calloc(1, sizeof(*x));
    *err = HA_ERR_NOMEM;
    if (x == NULL)
        return NULL;
    x->c = c;
    x->deadline_ns = ha_mono_ns() + (uint64_t)c->total_timeout_ms * 1000000u;
    if (req->deadline_ns != 0 && req->deadline_ns < x->deadline_ns)
        x->deadline_ns = req->deadline_ns;
    x->post = is_post(req);
    x->to_tenant = req->to_tenant;
    x->queue = req->queue;
    x->t.capture = req->capture;
    x->headers = build_headers(req, err);
    x->url = ha_strdup(req->url);
    x->user = ha_strdup(req->basic_user);
    x->pass = ha_strdup(req->basic_pass);
    x->body_len = req->body != NULL ? req->body_len : 0;
    x->body = malloc(x->body_len + 1);
    if (x->body != NULL) {
        if (x->body_len > 0)
            memcpy(x->body, req->body, x->body_len);
        x->body[x->body_len] = '\0';
    }
    if (x->headers == NULL || x->url == NULL || x->body == NULL ||
        (req->basic_user != NULL && x->user == NULL) ||
        (req->basic_pass != NULL && x->pass == NULL)) {
        if (x->headers != NULL)
            *err = HA_ERR_NOMEM;
        xfer_free(x);
        return NULL;
    }
    return x;
}

/* The asserts here and in dequeue/finish state the lists' invariants (never input): the
 * static analyser cannot infer them across finish -> admit -> finish. */
static void list_remove(struct ha_http_client *c, struct xfer *x)
{
    assert(c->oldest != x || x->prev == NULL);
    assert(c->newest != x || x->next == NULL);
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        c->oldest = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    else
        c->newest = x->prev;
    x->prev = x->next = NULL;
}

static void give_back(struct ha_http_client *c, CURL *h)
{
    if (h == NULL)
        return;
    if (c->pool_count < POOL_MAX) {
        /* Drops credentials and the body pointer before the handle idles. */
        curl_easy_reset(h);
        c->pool[c->pool_count++] = h;
    } else {
        curl_easy_cleanup(h);
    }
}

static void launch(struct ha_http_client *c, struct xfer *x);
static void finish(struct ha_http_client *c, struct xfer *x, enum ha_err err);

/* Takes x out of p's queue; p is x's peer (passed, not loaded, so the analyser sees the
 * queue admit walks is the one changed). */
static void dequeue(struct peer *p, struct xfer *x)
{
    assert(p != NULL && x->peer == p && x->waiting);
    assert(p->qhead != x || x->qprev == NULL);
    assert(p->qtail != x || x->qnext == NULL);
    if (x->qprev != NULL)
        x->qprev->qnext = x->qnext;
    else
        p->qhead = x->qnext;
    if (x->qnext != NULL)
        x->qnext->qprev = x->qprev;
    else
        p->qtail = x->qprev;
    x->qprev = x->qnext = NULL;
    x->waiting = false;
}

/* Hands p's oldest waiting transfers to curl while p has free slots. One with less than
 * launch_min_ms left ends at once with HA_ERR_TIMEOUT, never reaching the peer: when a stall
 * ends the calls it held, the next in line are only milliseconds younger, and starting them
 * would send a burst of requests (new connections, single-use codes spent) that cannot finish
 * in time, to a peer that just failed to answer. */
static void admit(struct ha_http_client *c, struct peer *p)
{
    uint64_t soon = ha_mono_ns() + (uint64_t)c->launch_min_ms * 1000000u;
    while (p != NULL && p->qhead != NULL && p->active < c->max_host_connections) {
        struct xfer *x = p->qhead;
        dequeue(p, x);
        if (x->deadline_ns <= soon)
            finish(c, x, HA_ERR_TIMEOUT);
        else
            launch(c, x);
    }
}

/* Ends x: out of curl (its slot goes to the oldest waiting transfer) or out of the queue, out
 * of the deadline list, then its callback, which owns the answer from then on. */
static void finish(struct ha_http_client *c, struct xfer *x, enum ha_err err)
{
    assert(x->c == c);
    struct ha_http_response r = {0};
    struct peer *freed = NULL;

    if (x->h != NULL) {
        curl_multi_remove_handle(c->multi, x->h);
        err = take_answer(x->h, err, &x->resp);
        give_back(c, x->h);
        x->h = NULL;
        assert(x->peer != NULL);
        x->peer->active--;
        freed = x->peer;
    } else if (x->waiting) {
        dequeue(x->peer, x);
    }
    list_remove(c, x);
    c->in_flight--;
    if (!c->closed)
        admit(c, freed);
    if (err == HA_OK) {
        r = x->resp;
        memset(&x->resp, 0, sizeof(x->resp));
    }
    x->done(x->ctx, err, &r);
    xfer_free(x);
}

static void collect(struct ha_http_client *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        struct xfer *x = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x != NULL)
            finish(c, x, map_curl(m->data.result, &x->t));
    }
}

static void on_curl_timer(void *arg)
{
    struct ha_http_client *c = arg;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect(c);
}

static void on_socket_ready(void *arg, int fd, unsigned events)
{
    struct ha_http_client *c = arg;
    int running, flags = 0;
    if (events & HA_LOOP_IN)
        flags |= CURL_CSELECT_IN;
    if (events & HA_LOOP_OUT)
        flags |= CURL_CSELECT_OUT;
    if (events & HA_LOOP_ERR)
        flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    collect(c);
}

/* curl's CURLMOPT_SOCKETFUNCTION: which sockets the loop watches, for what. */
static int on_socket(CURL *h, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct ha_http_client *c = userp;
    struct ha_watch *w = socketp;
    unsigned events = 0;
    (void)h;

    if (what == CURL_POLL_REMOVE) {
        ha_loop_unwatch(c->loop, w);
        curl_multi_assign(c->multi, s, NULL);
        return 0;
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= HA_LOOP_IN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= HA_LOOP_OUT;
    /* A watch that cannot be made (out of memory, epoll_ctl refused) is logged and answered
     * 0, not -1: curl 7.88 takes -1 as the whole multi handle failing and aborts every
     * transfer on it. Without events this one transfer waits, and its deadline ends it. */
    if (w != NULL) {
        if (ha_loop_watch_set(c->loop, w, events) != HA_OK)
            ha_log(HA_LOG_WARN, "socket_watch_failed", NULL, "reason",
                   "epoll_ctl refused a change: that call ends at its deadline", NULL);
        return 0;
    }
    if (ha_loop_watch(c->loop, s, events, on_socket_ready, c, &w) != HA_OK) {
        ha_log(HA_LOG_WARN, "socket_watch_failed", NULL, "reason",
               "out of memory or epoll_ctl refused: that call ends at its deadline", NULL);
        return 0;
    }
    curl_multi_assign(c->multi, s, w);
    return 0;
}

/* curl's CURLMOPT_TIMERFUNCTION: when to call it back without a socket event. */
static int on_timer_change(CURLM *m, long timeout_ms, void *userp)
{
    struct ha_http_client *c = userp;
    (void)m;
    if (timeout_ms < 0)
        ha_loop_timer_cancel(c->loop, &c->curl_timer);
    else
        ha_loop_timer_arm(c->loop, &c->curl_timer, timeout_ms, on_curl_timer, c);
    return 0;
}

static void arm_deadline(struct ha_http_client *c);

/* Ends every transfer past its deadline, waiting for a connection or not. */
static void on_deadline(void *arg)
{
    struct ha_http_client *c = arg;
    uint64_t now = ha_mono_ns();
    while (c->oldest != NULL && c->oldest->deadline_ns <= now)
        finish(c, c->oldest, HA_ERR_TIMEOUT);
    arm_deadline(c);
}

static void arm_deadline(struct ha_http_client *c)
{
    uint64_t now = ha_mono_ns();
    long ms;
    if (c->oldest == NULL) {
        ha_loop_timer_cancel(c->loop, &c->deadline_timer);
        return;
    }
    ms = c->oldest->deadline_ns > now ? (long)((c->oldest->deadline_ns - now) / 1000000u) + 1 : 0;
    ha_loop_timer_arm(c->loop, &c->deadline_timer, ms, on_deadline, c);
}

static CURL *borrow(struct ha_http_client *c)
{
    if (c->pool_count > 0)
        return c->pool[--c->pool_count];
    return curl_easy_init();
}

static bool same_queue(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The peer for url's origin and queue, made on first use. NULL when out of memory, the URL has
 * no origin, or there are MAX_PEERS already. */
static struct peer *peer_of(struct ha_http_client *c, const char *url, const char *queue)
{
    char *origin = NULL;
    struct peer *p;

    if (ha_url_origin(url, &origin) != HA_OK)
        return NULL;
    for (p = c->peers; p != NULL; p = p->next) {
        if (strcmp(p->origin, origin) == 0 && same_queue(p->queue, queue)) {
            free(origin);
            return p;
        }
    }
    p = c->npeers < MAX_PEERS ? calloc(1, sizeof(*p)) : NULL;
    if (p == NULL) {
        free(origin);
        return NULL;
    }
    p->origin = origin;
    p->queue = queue;
    p->next = c->peers;
    c->peers = p;
    c->npeers++;
    return p;
}

/* Milliseconds until x's deadline, at least 1. */
static long left_ms(const struct xfer *x)
{
    uint64_t now = ha_mono_ns();
    return x->deadline_ns > now ? (long)((x->deadline_ns - now) / 1000000u) + 1 : 1;
}

/* Gives x to curl in one of its peer's slots; on failure, calls it back at once. */
static void launch(struct ha_http_client *c, struct xfer *x)
{

    x->h = borrow(c);
    if (x->h == NULL) {
        finish(c, x, HA_ERR_NOMEM);
        return;
    }
    x->t.resp = &x->resp;
    x->t.max_body = c->max_body;
    set_common(c, x->h, &x->t);
    set_request(c, x->h, x->url, x->headers, x->to_tenant, x->post, x->body, x->body_len, x->user,
                x->pass);
    /* curl's own timeout is what is left of the deadline (ours ends it anyway). */
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, left_ms(x));
    curl_easy_setopt(x->h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(c->multi, x->h) != CURLM_OK) {
        give_back(c, x->h);
        x->h = NULL;
        finish(c, x, HA_ERR_NOMEM);
        return;
    }
    x->peer->active++;
}

/* Puts x in the deadline list, soonest first: almost always at the end (calls start in order
 * and share one timeout), before the newer ones when a login's shared deadline is sooner. */
static void insert_by_deadline(struct ha_http_client *c, struct xfer *x)
{
    struct xfer *after = c->newest;
    while (after != NULL && after->deadline_ns > x->deadline_ns)
        after = after->prev;
    x->prev = after;
    x->next = after != NULL ? after->next : c->oldest;
    if (x->next != NULL)
        x->next->prev = x;
    else
        c->newest = x;
    if (after != NULL)
        after->next = x;
    else
        c->oldest = x;
}

/* On the loop: a new transfer takes its place in the deadline list, then a slot of its peer,
 * or the end of the peer's queue; or it is called back at once when it cannot run. */
static void begin(void *arg)
{
    struct xfer *x = arg;
    struct ha_http_client *c = x->c;

    insert_by_deadline(c, x);
    c->in_flight++;
    if (c->oldest == x)
        arm_deadline(c);
    x->peer = c->closed ? NULL : peer_of(c, x->url, x->queue);
    if (x->peer == NULL) {
        finish(c, x, c->closed ? HA_ERR_IO : HA_ERR_NOMEM);
        return;
    }
    /* Sent at once on a free slot, unless there is no time left for an answer (a Houston
     * hand-off after a slow tenant): a request the sidecar will time out on anyway could still
     * mint a session nobody receives. */
    if (x->deadline_ns <= ha_mono_ns() + DIRECT_MIN_MS * 1000000u) {
        finish(c, x, HA_ERR_TIMEOUT);
        return;
    }
    if (x->peer->active < c->max_host_connections && x->peer->qhead == NULL) {
        launch(c, x);
        return;
    }
    x->waiting = true;
    x->qprev = x->peer->qtail;
    if (x->peer->qtail != NULL)
        x->peer->qtail->qnext = x;
    else
        x->peer->qhead = x;
    x->peer->qtail = x;
}

static void start(void *impl, const struct ha_http_request *req, ha_http_done_fn done, void *ctx)
{
    struct ha_http_client *c = impl;
    enum ha_err err;
    struct xfer *x = xfer_new(c, req, &err);
    struct ha_http_response none = {0};

    if (x == NULL) {
        done(ctx, err, &none);
        return;
    }
    x->done = done;
    x->ctx = ctx;
    if (ha_loop_in_thread(c->loop)) {
        begin(x);
    } else if (ha_loop_post(c->loop, begin, x) != HA_OK) {
        /* The loop is stopping: nothing will run x. */
        x->done = NULL;
        xfer_free(x);
        done(ctx, HA_ERR_IO, &none);
    }
}

struct ha_transport ha_http_client_transport(struct ha_http_client *c)
{
    struct ha_transport t = {start, c};
    return t;
}

enum ha_err ha_http_client_attach(struct ha_http_client *c, struct ha_loop *loop)
{
    c->loop = loop;
    c->multi = curl_multi_init();
    c->share = curl_share_init();
    if (c->multi == NULL || c->share == NULL)
        return HA_ERR_NOMEM;
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    /* The queues bound each kind of call to a host (max_host_connections each); curl's own
     * bound per host is theirs together. */
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      HA_HTTP_QUEUES_PER_HOST * c->max_host_connections);
    /* Idle connections kept: one per connection a peer may have open. */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS,
                      HA_HTTP_QUEUES_PER_HOST * c->max_host_connections);
    return HA_OK;
}

void ha_http_client_close(struct ha_http_client *c)
{
    c->closed = true;
    while (c->oldest != NULL)
        finish(c, c->oldest, HA_ERR_IO);
    ha_loop_timer_cancel(c->loop, &c->deadline_timer);
}

size_t ha_http_client_in_flight(const struct ha_http_client *c)
{
    return c->in_flight;
}

/* ---- the inline transport ---- */

static void inline_start(void *impl, const struct ha_http_request *req, ha_http_done_fn done,
                         void *ctx)
{
    const struct ha_http *h = impl;
    struct ha_http_response r = {0};
    enum ha_err err = ha_http_do(h, req, &r);
    if (err != HA_OK)
        ha_http_response_cleanup(&r);
    done(ctx, err, &r);
}

struct ha_transport ha_transport_inline(const struct ha_http *h)
{
    struct ha_transport t = {inline_start, (void *)h};
    return t;
}
