/* Outbound HTTP(S) with libcurl: the only file that includes <curl/curl.h>.
 *
 * One share handle keeps DNS answers, TLS sessions and live connections across requests, so
 * logins reuse keep-alive connections to the tenant and Houston. Easy handles are pooled
 * (libcurl easy handles are not thread-safe, so each request borrows one). Every request has
 * connect and total timeouts, never follows redirects, verifies TLS, speaks only http/https,
 * and caps the body and the headers it keeps.
 *
 * Trust is loaded once per client: curl 7.88 builds a new SSL_CTX for every new connection
 * and, left to itself, parses the CA bundle into it each time. With Debian's bundle (about
 * 140 certificates) a burst of logins opening 64 connections at once spent its CPU parsing
 * PEM and token requests timed out (bench: 86 of 768 logins failed). So curl is given no CA
 * file or path, and every connection's SSL_CTX takes this client's X509_STORE, loaded on the
 * first TLS connection (a plain-HTTP probe never pays for it) and never changed after, as
 * its verify store (SSL_CTX_set1_verify_cert_store: curl still writes flags into the
 * connection's own, unused store, so sharing that one would be a data race). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include "houston_auth/http_client.h"
#include "houston_auth/proto.h"
#include "houston_auth/util.h"

#define POOL_MAX 64
#define SYSTEM_CA_PATH "/etc/ssl/certs"
#define MAX_KEPT_HEADER 4096

struct ha_http_client {
    CURLSH *share;
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
    pthread_mutex_t pool_lock;
    CURL *pool[POOL_MAX];
    size_t pool_count;
    char *ca_file;
    char *tenant_proxy; /* NULL: no proxy for anything */
    pthread_mutex_t trust_lock;
    X509_STORE *trust; /* NULL until the first TLS connection loads it */
    long connect_timeout_ms;
    long total_timeout_ms;
    size_t max_body;
};

struct transfer {
    struct ha_http_response *resp;
    size_t max_body;
    int too_large;
};

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ctx)
{
    struct ha_http_client *c = ctx;
    (void)h;
    (void)access;
    pthread_mutex_lock(&c->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
    struct ha_http_client *c = ctx;
    (void)h;
    pthread_mutex_unlock(&c->locks[data]);
}

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
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    pthread_mutex_init(&c->pool_lock, NULL);
    pthread_mutex_init(&c->trust_lock, NULL);
    c->connect_timeout_ms = o->connect_timeout_ms;
    c->total_timeout_ms = o->total_timeout_ms;
    c->max_body = o->max_body == 0 ? HA_MAX_PEER_BODY : o->max_body;
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
    c->share = curl_share_init();
    if (c->share == NULL)
        goto out;
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
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
    if (c->share != NULL)
        curl_share_cleanup(c->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->locks[i]);
    pthread_mutex_destroy(&c->pool_lock);
    pthread_mutex_destroy(&c->trust_lock);
    X509_STORE_free(c->trust);
    free(c->ca_file);
    free(c->tenant_proxy);
    free(c);
}

static CURL *borrow(struct ha_http_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->pool_lock);
    if (c->pool_count > 0)
        h = c->pool[--c->pool_count];
    pthread_mutex_unlock(&c->pool_lock);
    if (h != NULL) {
        curl_easy_reset(h);
        return h;
    }
    return curl_easy_init();
}

static void give_back(struct ha_http_client *c, CURL *h)
{
    pthread_mutex_lock(&c->pool_lock);
    if (c->pool_count < POOL_MAX) {
        c->pool[c->pool_count++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->pool_lock);
    if (h != NULL)
        curl_easy_cleanup(h);
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
    p = realloc(r->body, r->body_len + len + 1);
    if (p == NULL)
        return 0;
    memcpy(p + r->body_len, data, len);
    r->body = p;
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

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    struct transfer *t = ctx;
    struct ha_http_response *r = t->resp;
    size_t len = size * n;
    char *v;
    if (len > MAX_KEPT_HEADER)
        return len; /* ignored, never kept: no header we use is this long */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response (e.g. after 100 Continue): forget the previous one's headers. */
        replace(&r->location, NULL);
        replace(&r->content_type, NULL);
        while (r->set_cookie_count > 0)
            ha_free_secret(r->set_cookies[--r->set_cookie_count]);
        return len;
    }
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

static void set_common(struct ha_http_client *c, CURL *h, struct transfer *t)
{
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    /* The shared connection cache holds 5 connections by default: with many workers they
     * were closed as soon as they came back, and every login paid a new TLS handshake. */
    curl_easy_setopt(h, CURLOPT_MAXCONNECTS, (long)POOL_MAX);
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
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "houston-auth/" HA_VERSION);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, NULL);
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

static struct curl_slist *build_headers(const struct ha_http_request *req)
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
            return NULL;
        }
        list = next;
    }
    /* No "Expect: 100-continue" round trip for small form posts. */
    next = curl_slist_append(list, "Expect:");
    if (next == NULL)
        curl_slist_free_all(list);
    return next;
}

enum ha_err ha_http_client_perform(void *client, const struct ha_http_request *req,
                                   struct ha_http_response *resp)
{
    struct ha_http_client *c = client;
    struct ha_http_response r = {0};
    struct transfer t = {&r, c->max_body, 0};
    struct curl_slist *headers = NULL;
    enum ha_err err = HA_ERR_NOMEM;
    CURLcode rc;
    CURL *h = borrow(c);

    if (h == NULL)
        goto out;
    headers = build_headers(req);
    if (headers == NULL)
        goto out;
    set_common(c, h, &t);
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    /* "" turns proxies off, the environment's http_proxy/https_proxy/ALL_PROXY included:
     * tokens to Houston must never leave the pod, nor go to the tenant through a proxy
     * nobody configured here. */
    curl_easy_setopt(h, CURLOPT_PROXY,
                     req->to_tenant && c->tenant_proxy != NULL ? c->tenant_proxy : "");
    if (req->method != NULL && strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    if (req->basic_user != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, req->basic_user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, req->basic_pass != NULL ? req->basic_pass : "");
    }
    rc = curl_easy_perform(h);
    err = map_curl(rc, &t);
    if (err != HA_OK)
        goto out;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    if (r.body == NULL) {
        r.body = calloc(1, 1);
        if (r.body == NULL) {
            err = HA_ERR_NOMEM;
            goto out;
        }
    }
    *resp = r;
    memset(&r, 0, sizeof(r));
out:
    if (h != NULL) {
        /* Drop credentials and the request body pointer before the handle is pooled. */
        curl_easy_setopt(h, CURLOPT_PASSWORD, "");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        give_back(c, h);
    }
    curl_slist_free_all(headers);
    ha_http_response_cleanup(&r);
    return err;
}

void ha_http_response_cleanup(struct ha_http_response *r)
{
    if (r == NULL)
        return;
    ha_free_secret(r->body);
    free(r->content_type);
    ha_free_secret(r->location);
    for (size_t i = 0; i < r->set_cookie_count; i++)
        ha_free_secret(r->set_cookies[i]);
    memset(r, 0, sizeof(*r));
}

struct ha_http ha_http_client_iface(struct ha_http_client *c)
{
    struct ha_http h = {ha_http_client_perform, c};
    return h;
}
