/* Benchmarks 2 and 4: a login load generator.
 *
 * C threads are C browsers. Each runs whole logins one after another until N have been
 * made: GET the start URL on the relying party (the sidecar's /v1/oauth/start, or a URL
 * Apache protects), then follow every 30x by hand while it points at the relying party or
 * the tenant. A login succeeds when the relying party finally answers 200 (Apache: the
 * protected page), or redirects off both origins (the sidecar: to Houston's app URL) with
 * the --success-cookie set and no "error=" in the Location. Each login starts with an empty
 * cookie jar, so no login rides on an earlier one's session.
 *
 * Cookies are kept by this program, not by libcurl: the relying parties mark their cookies
 * Secure and both are measured over plain HTTP on loopback (the sidecar's deployment model:
 * TLS ends at the ingress), so the jar sends back every cookie the relying party set
 * (deleting those it expires), and the tenant gets none (it needs none with login_hint).
 *
 * Connections: each browser keeps one keep-alive connection to the relying party. Tenant
 * hops use a connection that is closed afterwards, with TLS sessions shared among browsers,
 * and at most --tenant-concurrency of them run at once: the dev tenant serves a bounded
 * number of connections and the tenant is not what is measured.
 *
 * Prints "name value" lines: counts, rate, and percentiles of the whole login and of the
 * callback hop (the request whose path starts with --hop-path). */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include "stats.h"

#define MAX_HOPS 8
#define MAX_COOKIES 16
#define MAX_RESOLVE 8
#define MAX_THREADS 1024
#define MAX_NAME 128
#define MAX_VALUE 4096
#define MAX_LOCATION 8192
#define ERR_LEN 256

struct opts {
    const char *start;
    const char *front;  /* the relying party's origin */
    const char *tenant; /* the tenant's origin */
    const char *cacert;
    const char *success_cookie;
    const char *hop_path;
    const char *resolve[MAX_RESOLVE];
    int nresolve;
    long logins;
    int concurrency;
    int tenant_concurrency;
    long timeout_ms;
};

struct cookie {
    char name[MAX_NAME];
    char value[MAX_VALUE];
};

/* What one response said that a browser acts on. */
struct reply {
    long status;
    char location[MAX_LOCATION];
    struct cookie set[MAX_COOKIES];
    bool expired[MAX_COOKIES];
    int nset;
};

struct browser {
    const struct opts *o;
    CURL *front;
    CURL *tenant;
    struct curl_slist *resolve;
    struct cookie jar[MAX_COOKIES];
    int njar;
    struct reply r;
    double *login_ms; /* per login, in this browser's slice of the shared arrays */
    double *hop_ms;
    long nlogin, nhop, ok, failed;
};

static atomic_long remaining;
static sem_t tenant_slots;
static CURLSH *share;
static pthread_mutex_t share_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[ERR_LEN];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void note_error(const char *what, const char *url, long status)
{
    const char *q;
    int n;
    pthread_mutex_lock(&err_lock);
    if (first_error[0] == '\0') {
        q = url != NULL ? strchr(url, '?') : NULL;
        n = q != NULL ? (int)(q - url) : (url != NULL ? (int)strlen(url) : 0);
        snprintf(first_error, sizeof(first_error), "%s (status %ld at %.*s)", what, status,
                 n > 160 ? 160 : n, url != NULL ? url : "");
    }
    pthread_mutex_unlock(&err_lock);
}

static void lock_share(CURL *h, curl_lock_data d, curl_lock_access a, void *p)
{
    (void)h;
    (void)d;
    (void)a;
    (void)p;
    pthread_mutex_lock(&share_lock);
}

static void unlock_share(CURL *h, curl_lock_data d, void *p)
{
    (void)h;
    (void)d;
    (void)p;
    pthread_mutex_unlock(&share_lock);
}

static bool starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* "Set-Cookie: name=value; attrs": true when the attributes expire it. */
static bool cookie_expires_now(const char *attrs)
{
    for (const char *p = attrs; p != NULL && *p != '\0'; p = strchr(p + 1, ';')) {
        while (*p == ';' || *p == ' ')
            p++;
        if (strncasecmp(p, "max-age=0", 9) == 0 || strncasecmp(p, "max-age=-", 9) == 0)
            return true;
        if (strncasecmp(p, "expires=", 8) == 0 && strstr(p, "1970") != NULL)
            return true;
    }
    return false;
}

static void parse_set_cookie(struct reply *r, const char *v, size_t len)
{
    const char *eq = memchr(v, '=', len), *semi;
    size_t nlen, vlen;
    struct cookie *c;
    if (eq == NULL || r->nset >= MAX_COOKIES)
        return;
    semi = memchr(eq, ';', len - (size_t)(eq - v));
    nlen = (size_t)(eq - v);
    vlen = (semi != NULL ? (size_t)(semi - eq) : len - (size_t)(eq - v)) - 1;
    if (nlen == 0 || nlen >= MAX_NAME || vlen >= MAX_VALUE)
        return;
    c = &r->set[r->nset];
    memcpy(c->name, v, nlen);
    c->name[nlen] = '\0';
    memcpy(c->value, eq + 1, vlen);
    c->value[vlen] = '\0';
    r->expired[r->nset] = vlen == 0 || (semi != NULL && cookie_expires_now(semi));
    r->nset++;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ctx)
{
    struct reply *r = ctx;
    size_t len = size * n;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len > 10 && strncasecmp(buf, "location:", 9) == 0) {
        size_t skip = 9;
        while (skip < len && buf[skip] == ' ')
            skip++;
        if (len - skip < MAX_LOCATION) {
            memcpy(r->location, buf + skip, len - skip);
            r->location[len - skip] = '\0';
        }
    } else if (len > 12 && strncasecmp(buf, "set-cookie:", 11) == 0) {
        size_t skip = 11;
        while (skip < len && buf[skip] == ' ')
            skip++;
        parse_set_cookie(r, buf + skip, len - skip);
    }
    return size * n;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ctx)
{
    (void)buf;
    (void)ctx;
    return size * n;
}

static void jar_update(struct browser *b)
{
    for (int i = 0; i < b->r.nset; i++) {
        const struct cookie *c = &b->r.set[i];
        int j = 0;
        while (j < b->njar && strcmp(b->jar[j].name, c->name) != 0)
            j++;
        if (b->r.expired[i]) {
            if (j < b->njar)
                b->jar[j] = b->jar[--b->njar];
            continue;
        }
        if (j == b->njar && b->njar < MAX_COOKIES)
            b->njar++;
        if (j < b->njar)
            b->jar[j] = *c;
    }
}

/* "a=1; b=2" into out; "" when the jar is empty. */
static void jar_header(const struct browser *b, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < b->njar; i++) {
        int n = snprintf(out + len, cap - len, "%s%s=%s", i > 0 ? "; " : "", b->jar[i].name,
                         b->jar[i].value);
        if (n < 0 || (size_t)n >= cap - len)
            return;
        len += (size_t)n;
    }
}

static CURL *new_handle(struct browser *b, bool tenant)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return NULL;
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &b->r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, b->o->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "houston-auth-bench/1");
    curl_easy_setopt(h, CURLOPT_RESOLVE, b->resolve);
    if (b->o->cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, b->o->cacert);
    if (tenant) {
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(h, CURLOPT_SHARE, share);
    }
    return h;
}

/* One GET; fills b->r. 0 on a transfer that got an HTTP answer. */
static int get(struct browser *b, const char *url, bool front)
{
    CURL *h = front ? b->front : b->tenant;
    char cookies[MAX_COOKIES * (MAX_NAME + MAX_VALUE + 2)];
    CURLcode rc;
    memset(&b->r, 0, sizeof(b->r));
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (front) {
        jar_header(b, cookies, sizeof(cookies));
        curl_easy_setopt(h, CURLOPT_COOKIE, cookies[0] != '\0' ? cookies : NULL);
    } else {
        while (sem_wait(&tenant_slots) != 0 && errno == EINTR)
            ;
    }
    rc = curl_easy_perform(h);
    if (!front)
        sem_post(&tenant_slots);
    if (rc != CURLE_OK) {
        note_error(curl_easy_strerror(rc), url, 0);
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &b->r.status);
    if (front)
        jar_update(b);
    return 0;
}

/* Resolves b->r.location against base into out (caller frees). */
static char *next_url(const char *base, const char *location)
{
    CURLU *u = curl_url();
    char *s = NULL, *out = NULL;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK)
        out = strdup(s);
    curl_free(s);
    curl_url_cleanup(u);
    return out;
}

static bool set_success_cookie(const struct browser *b)
{
    for (int i = 0; i < b->r.nset; i++) {
        if (!b->r.expired[i] && strcmp(b->r.set[i].name, b->o->success_cookie) == 0)
            return true;
    }
    return false;
}

static bool is_hop(const struct opts *o, const char *url)
{
    size_t n = strlen(o->front);
    return o->hop_path != NULL && starts_with(url, o->front) && starts_with(url + n, o->hop_path);
}

/* The end of a login at a response that is neither a redirect we follow nor an error. */
static bool finished_ok(const struct browser *b, const char *url, bool front)
{
    const struct opts *o = b->o;
    if (b->r.status == 200 && front && o->success_cookie == NULL)
        return true;
    if (b->r.status >= 301 && b->r.status <= 303 && o->success_cookie != NULL &&
        strstr(b->r.location, "error=") == NULL && set_success_cookie(b))
        return true;
    note_error("login did not end as expected", url, b->r.status);
    return false;
}

static bool follows(const struct opts *o, const char *url)
{
    return starts_with(url, o->front) || starts_with(url, o->tenant);
}

/* One login; true on success. */
static bool login(struct browser *b)
{
    char *url = strdup(b->o->start), *next;
    bool ok = false, front;
    double t;

    b->njar = 0;
    for (int hop = 0; url != NULL && hop < MAX_HOPS; hop++) {
        front = starts_with(url, b->o->front);
        t = now_ms();
        if (get(b, url, front) != 0)
            break;
        if (is_hop(b->o, url))
            b->hop_ms[b->nhop++] = now_ms() - t;
        next = b->r.status >= 301 && b->r.status <= 303 && b->r.location[0] != '\0'
                   ? next_url(url, b->r.location)
                   : NULL;
        if (next == NULL || !follows(b->o, next)) {
            ok = finished_ok(b, url, front);
            free(next);
            break;
        }
        free(url);
        url = next;
    }
    free(url);
    return ok;
}

static void *run_browser(void *arg)
{
    struct browser *b = arg;
    while (atomic_fetch_sub(&remaining, 1) > 0) {
        double t = now_ms();
        if (login(b)) {
            b->login_ms[b->nlogin++] = now_ms() - t;
            b->ok++;
        } else {
            b->failed++;
        }
    }
    return NULL;
}

/* Gathers every browser's samples into one sorted array. */
static long gather(struct browser *bs, int n, bool hops, double *out)
{
    long m = 0;
    for (int i = 0; i < n; i++) {
        long k = hops ? bs[i].nhop : bs[i].nlogin;
        memcpy(out + m, hops ? bs[i].hop_ms : bs[i].login_ms, (size_t)k * sizeof(double));
        m += k;
    }
    bench_sort(out, m);
    return m;
}

static void report(struct browser *bs, int n, double secs, long total)
{
    double *v = calloc((size_t)total + 1, sizeof(double));
    long ok = 0, failed = 0, m;
    for (int i = 0; i < n; i++) {
        ok += bs[i].ok;
        failed += bs[i].failed;
    }
    printf("logins_ok %ld\nlogins_failed %ld\nseconds %.3f\nlogins_per_s %.1f\n", ok, failed, secs,
           (double)ok / secs);
    if (v == NULL)
        return;
    m = gather(bs, n, false, v);
    printf("login_p50_ms %.3f\nlogin_p99_ms %.3f\nlogin_max_ms %.3f\n", bench_pct(v, m, 0.5),
           bench_pct(v, m, 0.99), m > 0 ? v[m - 1] : 0.0);
    m = gather(bs, n, true, v);
    printf("hop_p50_ms %.3f\nhop_p99_ms %.3f\nhop_max_ms %.3f\n", bench_pct(v, m, 0.5),
           bench_pct(v, m, 0.99), m > 0 ? v[m - 1] : 0.0);
    if (first_error[0] != '\0')
        printf("first_error %s\n", first_error);
    free(v);
}

static void usage(void)
{
    fprintf(stderr,
            "Usage: bench_login --start URL --front ORIGIN --tenant ORIGIN [--cacert FILE]\n"
            "         [--resolve HOST:PORT:ADDR]... [--logins N] [--concurrency C]\n"
            "         [--tenant-concurrency T] [--success-cookie NAME] [--hop-path PATH]\n"
            "         [--timeout-ms MS]\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    o->logins = 100;
    o->concurrency = 16;
    o->tenant_concurrency = 64;
    o->timeout_ms = 30000;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--start") == 0)
            o->start = v;
        else if (strcmp(k, "--front") == 0)
            o->front = v;
        else if (strcmp(k, "--tenant") == 0)
            o->tenant = v;
        else if (strcmp(k, "--cacert") == 0)
            o->cacert = v;
        else if (strcmp(k, "--success-cookie") == 0)
            o->success_cookie = v;
        else if (strcmp(k, "--hop-path") == 0)
            o->hop_path = v;
        else if (strcmp(k, "--resolve") == 0 && o->nresolve < MAX_RESOLVE)
            o->resolve[o->nresolve++] = v;
        else if (strcmp(k, "--logins") == 0)
            o->logins = strtol(v, NULL, 10);
        else if (strcmp(k, "--concurrency") == 0)
            o->concurrency = (int)strtol(v, NULL, 10);
        else if (strcmp(k, "--tenant-concurrency") == 0)
            o->tenant_concurrency = (int)strtol(v, NULL, 10);
        else if (strcmp(k, "--timeout-ms") == 0)
            o->timeout_ms = strtol(v, NULL, 10);
        else
            return -1;
    }
    if (o->start == NULL || o->front == NULL || o->tenant == NULL || o->logins < 1 ||
        o->logins > 10000000 || o->concurrency < 1 || o->concurrency > MAX_THREADS ||
        o->tenant_concurrency < 1 || o->timeout_ms < 1)
        return -1;
    return 0;
}

static int browser_init(struct browser *b, const struct opts *o, double *login_ms, double *hop_ms)
{
    memset(b, 0, sizeof(*b));
    b->o = o;
    b->login_ms = login_ms;
    b->hop_ms = hop_ms;
    for (int i = 0; i < o->nresolve; i++)
        b->resolve = curl_slist_append(b->resolve, o->resolve[i]);
    b->front = new_handle(b, false);
    b->tenant = new_handle(b, true);
    return b->front != NULL && b->tenant != NULL ? 0 : -1;
}

static void browser_cleanup(struct browser *b)
{
    curl_easy_cleanup(b->front);
    curl_easy_cleanup(b->tenant);
    curl_slist_free_all(b->resolve);
}

static int setup_share(void)
{
    share = curl_share_init();
    if (share == NULL)
        return -1;
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, lock_share);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, unlock_share);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct browser *bs = NULL;
    pthread_t th[MAX_THREADS];
    double *samples = NULL, t0;
    int n = 0, rc = 1;

    if (parse_args(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK || setup_share() != 0 ||
        sem_init(&tenant_slots, 0, (unsigned)o.tenant_concurrency) != 0)
        return 1;
    atomic_store(&remaining, o.logins);
    bs = calloc((size_t)o.concurrency, sizeof(*bs));
    /* Every browser may make every login: two samples each, per browser. */
    samples = calloc((size_t)o.concurrency * 2 * (size_t)o.logins, sizeof(double));
    if (bs == NULL || samples == NULL)
        goto out;
    for (; n < o.concurrency; n++) {
        double *mine = samples + (size_t)n * 2 * (size_t)o.logins;
        if (browser_init(&bs[n], &o, mine, mine + o.logins) != 0)
            goto out;
    }
    t0 = now_ms();
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, run_browser, &bs[i]);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    report(bs, n, (now_ms() - t0) / 1e3, o.logins);
    rc = 0;
out:
    for (int i = 0; i < n; i++)
        browser_cleanup(&bs[i]);
    free(bs);
    free(samples);
    curl_share_cleanup(share);
    curl_global_cleanup();
    return rc;
}
