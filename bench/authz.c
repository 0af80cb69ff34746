/* bench/authz.sh's driver: browsers loading a page that an ingress protects with auth-url, or
 * the ingress's own subrequests to the auth URL.
 *
 *   bench_authz --connect ADDR:PORT --browsers FILE [--seconds S] [--warmup-seconds W]
 *       [--timeout-ms T] [--counter-url URL] [--mode page|gate] [--check identity|none]
 *       [--new-connections 0|1] [--alternate ADDR:PORT] [--distinct N] [--watch-pid PID]
 *
 * FILE has one browser a line, four tab-separated fields: the host it browses (sent as the
 * Host header, without a port, as a browser behind port 443 sends it), the path, its Cookie
 * header, and a text every 200 it gets must contain (the protected page names the identity
 * the ingress relayed to it). Every browser sends its request to ADDR:PORT, waits for the
 * answer and sends the next at once (a closed loop: N browsers, at most N requests in flight),
 * for W seconds of warm-up and then S measured seconds.
 *
 * Modes:
 *   page (default): GET http://<host><path>, keep-alive: a browser.
 *   gate: what ingress-nginx's auth_request subrequest for that page sends to its auth URL
 *     (bench/authz.sh's server_block): GET /v1/authorization with Host: ADDR (no port), the
 *     browser's cookie, X-Original-URL: http://<host><path>, X-Original-Method: GET, and the
 *     template's X-Sent-From, X-Real-IP, X-Forwarded-For, X-Auth-Request-Redirect and
 *     X-Request-ID. A 200 is checked as the page would render it: "page for <email header>
 *     bearer=<1 when Authorization is "Bearer " and more, else 0>" must contain the text.
 * --check none: 200s are not checked (a server answering a constant: the reference hop).
 * --new-connections 1: a connection per request with "Connection: close", as nginx sends each
 *   subrequest with auth-keepalive 0 (the default); 0 (the default): keep-alive.
 * --alternate ADDR2:PORT2: every browser alternates its requests between ADDR:PORT and this
 *   reference (the same request, its 200s not checked), so both see the same machine at the
 *   same moments; the reference's figures are printed again with an "alt_" prefix.
 * --distinct N: every request carries a cookie value never sent before (the browser's value
 *   with "-d<n>" appended: a session Houston refuses), N requests in all, no warm-up; every
 *   answer until the last is measured, and S is the deadline of the whole run. With
 *   --watch-pid, that process's VmRSS and VmHWM are read after every tenth of N answers.
 *
 * Measured: the requests answered between the window's start and its end: their number,
 * their latency (send to the whole answer) p50/p90/p99/max, their statuses, transfer errors
 * (timeout, reset, refused, other), and the 200s that lacked the browser's text; this
 * program's own CPU time in the window. With --counter-url (the Houston stand-in's GET
 * /__test/authz) the "calls" it reports is read before the first request, at the window's
 * start and at its end: the decisions Houston made in the window and in the whole run.
 * Requests still in flight at the end are waited for (at most T ms) and not counted.
 *
 * Why a program and not wrk: a browser here is one identity on one host for the whole run
 * (its own cookie), which wrk's per-thread Lua cannot bind to a connection, and the report
 * needs every status by name and a body check; this keeps all of it in one curl multi loop
 * on one thread, as bench_stall does.
 *
 * Prints "name value" lines. Exit 1 when the run cannot be made, 2 on bad arguments. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <curl/curl.h>
#include "stats.h"

#define MAX_BROWSERS 1024
#define MAX_LINE 8192
#define MAX_BODY 1024
#define MAX_STATUS 16
#define MAX_SAMPLES 4000000
#define MAX_SECONDS 600
#define MAX_DISTINCT 10000000L
#define DRAIN_EXTRA_MS 1000.0
#define POLL_MS 50
#define ERR_LEN 256
#define MAX_HEADERS 12
#define RSS_POINTS 10
#define NTARGETS 2 /* --connect, --alternate */
#define GATE_PATH "/v1/authorization"
#define BEARER "Bearer "

enum mode { MODE_PAGE, MODE_GATE };

struct opts {
    const char *connect[NTARGETS], *browsers_file, *counter_url;
    long seconds, warmup_seconds, timeout_ms, distinct, watch_pid;
    enum mode mode;
    bool check, new_connections;
};

/* The answers of one target. */
struct tally {
    double *lat;
    long nlat, requests;
    long status_code[MAX_STATUS], status_count[MAX_STATUS];
    int nstatus;
    long timeouts, resets, refused, other_errors, identity_mismatch, unmeasured;
};

struct browser {
    CURL *h[NTARGETS];
    char *url[NTARGETS], *cookie, *expect;
    struct curl_slist *headers[NTARGETS];
    char body[MAX_BODY + 1];
    size_t body_len;
    double sent_ms;
    int turn; /* the target of the request in flight, or of the next */
    bool busy;
};

struct run {
    const struct opts *o;
    CURLM *m;
    struct curl_slist *connect_to[NTARGETS];
    int ntargets;
    struct browser b[MAX_BROWSERS];
    int n;
    double start_ms, end_ms, elapsed_s, cpu_ms;
    long sent;
    struct tally t[NTARGETS];
    long rss_at[RSS_POINTS], rss_kb[RSS_POINTS], hwm_kb[RSS_POINTS];
    int nrss;
    char first_error[ERR_LEN];
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double cpu_ms(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void note_error(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note_error(struct run *r, const char *fmt, ...)
{
    va_list ap;
    if (r->first_error[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(r->first_error, sizeof(r->first_error), fmt, ap);
    va_end(ap);
}

static size_t on_body(char *buf, size_t size, size_t n, void *ctx)
{
    struct browser *b = ctx;
    size_t len = size * n, room = MAX_BODY - b->body_len;
    size_t take = len < room ? len : room;
    memcpy(b->body + b->body_len, buf, take);
    b->body_len += take;
    b->body[b->body_len] = '\0';
    return len;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *out = malloc(n);
    if (out != NULL)
        memcpy(out, s, n);
    return out;
}

/* a, b and c joined, or NULL when out of memory. */
static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *out = malloc(n);
    if (out != NULL)
        snprintf(out, n, "%s%s%s", a, b, c);
    return out;
}

/* Splits a line into exactly n non-empty tab-separated fields, in place. */
static int split(char *line, char **f, int n)
{
    int i;
    line[strcspn(line, "\r\n")] = '\0';
    for (i = 0; i < n; i++) {
        size_t len = strcspn(line, "\t");
        if (len == 0 || (line[len] == '\0') != (i == n - 1))
            return -1;
        f[i] = line;
        line[len] = '\0';
        line += len + 1;
    }
    return 0;
}

/* Appends each line to a header list (curl copies them) and frees it; -1 when out of memory. */
static int add_headers(struct curl_slist **list, char *const *lines, int n)
{
    int i, rc = 0;
    for (i = 0; i < n; i++) {
        struct curl_slist *l = lines[i] != NULL ? curl_slist_append(*list, lines[i]) : NULL;
        if (l == NULL)
            rc = -1;
        else
            *list = l;
        free(lines[i]);
    }
    return rc;
}

/* The headers ingress-nginx's auth location sends (bench/authz.sh's server_block) to connect,
 * for the page http://<host><path>: proxy_set_header's, then the browser's own (the cookie is
 * set apart, CURLOPT_COOKIE). X-Request-ID is one fixed $request_id-shaped value per browser. */
static int gate_headers(struct curl_slist **list, const char *connect, const char *host,
                        const char *path, int index)
{
    char *lines[MAX_HEADERS] = {NULL}, id[40], auth_host[256];
    const char *colon = strrchr(connect, ':');
    size_t hlen = colon != NULL ? (size_t)(colon - connect) : strlen(connect);
    int n = 0;

    snprintf(auth_host, sizeof(auth_host), "%.*s", (int)hlen, connect);
    snprintf(id, sizeof(id), "%032x", (unsigned)index + 0x5eedu);
    lines[n++] = join3("Host: ", auth_host, "");
    lines[n++] = join3("X-Request-ID: ", id, "");
    lines[n++] = join3("X-Original-URL: http://", host, path);
    lines[n++] = dup_str("X-Original-Method: GET");
    lines[n++] = dup_str("X-Sent-From: nginx-ingress-controller");
    lines[n++] = dup_str("X-Real-IP: 127.0.0.1");
    lines[n++] = dup_str("X-Forwarded-For: 127.0.0.1");
    lines[n++] = join3("X-Auth-Request-Redirect: ", path, "");
    return add_headers(list, lines, n);
}

/* The request of one browser to target k: its URL and headers, by mode. */
static int browser_request(struct run *r, struct browser *b, int k, const char *host,
                           const char *path)
{
    char *lines[2] = {NULL};
    int n = 0;
    if (r->o->mode == MODE_GATE) {
        b->url[k] = join3("http://", r->o->connect[k], GATE_PATH);
        if (gate_headers(&b->headers[k], r->o->connect[k], host, path, (int)(b - r->b)) != 0)
            return -1;
    } else {
        b->url[k] = join3("http://", host, path);
        lines[n++] = join3("Host: ", host, "");
    }
    if (r->o->new_connections)
        lines[n++] = dup_str("Connection: close");
    if (add_headers(&b->headers[k], lines, n) != 0 || b->url[k] == NULL)
        return -1;
    return 0;
}

static int handle_init(struct run *r, struct browser *b, int k, const char *host, const char *path)
{
    CURL *h = curl_easy_init();
    b->h[k] = h;
    if (h == NULL || browser_request(r, b, k, host, path) != 0)
        return -1;
    curl_easy_setopt(h, CURLOPT_URL, b->url[k]);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, r->connect_to[k]);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, b->headers[k]);
    curl_easy_setopt(h, CURLOPT_COOKIE, b->cookie);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->o->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_PRIVATE, b);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, r->o->new_connections ? 1L : 0L);
    return 0;
}

/* One line of FILE: host \t path \t cookie \t expect. */
static int browser_init(struct run *r, struct browser *b, char *line)
{
    char *f[4];
    int k;
    if (split(line, f, 4) != 0)
        return -1;
    b->cookie = dup_str(f[2]);
    b->expect = dup_str(f[3]);
    if (b->cookie == NULL || b->expect == NULL)
        return -1;
    for (k = 0; k < r->ntargets; k++) {
        if (handle_init(r, b, k, f[0], f[1]) != 0)
            return -1;
    }
    return 0;
}

static int load_browsers(struct run *r)
{
    FILE *fp = fopen(r->o->browsers_file, "r");
    char line[MAX_LINE];
    int rc = 0;
    if (fp == NULL) {
        fprintf(stderr, "bench_authz: cannot read %s\n", r->o->browsers_file);
        return -1;
    }
    while (rc == 0 && fgets(line, sizeof(line), fp) != NULL) {
        if (line[0] == '\n' || line[0] == '#')
            continue;
        if (r->n >= MAX_BROWSERS || browser_init(r, &r->b[r->n], line) != 0) {
            fprintf(stderr, "bench_authz: browser line %d unusable (or more than %d)\n", r->n + 1,
                    MAX_BROWSERS);
            rc = -1;
        }
        r->n++;
    }
    fclose(fp);
    if (rc == 0 && r->n == 0) {
        fprintf(stderr, "bench_authz: no browsers in %s\n", r->o->browsers_file);
        rc = -1;
    }
    return rc;
}

/* --distinct: the browser's cookie with "-d<seq>" appended (curl copies it). */
static void set_distinct_cookie(struct run *r, struct browser *b)
{
    char c[MAX_LINE + 32];
    snprintf(c, sizeof(c), "%s-d%ld", b->cookie, r->sent);
    if (curl_easy_setopt(b->h[b->turn], CURLOPT_COOKIE, c) != CURLE_OK)
        note_error(r, "CURLOPT_COOKIE failed");
}

static void send_one(struct run *r, struct browser *b)
{
    if (r->o->distinct > 0)
        set_distinct_cookie(r, b);
    b->body_len = 0;
    b->body[0] = '\0';
    b->sent_ms = now_ms();
    b->busy = curl_multi_add_handle(r->m, b->h[b->turn]) == CURLM_OK;
    if (!b->busy)
        note_error(r, "%s: curl_multi_add_handle failed", b->url[b->turn]);
    else
        r->sent++;
}

static void count_status(struct tally *t, long status)
{
    int i;
    for (i = 0; i < t->nstatus; i++) {
        if (t->status_code[i] == status) {
            t->status_count[i]++;
            return;
        }
    }
    if (t->nstatus < MAX_STATUS) {
        t->status_code[t->nstatus] = status;
        t->status_count[t->nstatus++] = 1;
    }
}

static void count_error(struct run *r, struct tally *t, const char *url, CURLcode rc)
{
    if (rc == CURLE_OPERATION_TIMEDOUT)
        t->timeouts++;
    else if (rc == CURLE_COULDNT_CONNECT)
        t->refused++;
    else if (rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR)
        t->resets++;
    else
        t->other_errors++;
    note_error(r, "%s: curl error %ld", url, (long)rc);
}

/* A response header's value, or "" when absent. */
static const char *header_of(CURL *h, const char *name)
{
    struct curl_header *hd = NULL;
    if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hd) != CURLHE_OK || hd == NULL)
        return "";
    return hd->value;
}

/* Whether a 200 names the browser's identity: in the page's body, or (gate) in the headers the
 * ingress would relay to the page, rendered as the page renders them (bench/authz.sh's
 * ui_pods server: "page for $http_email bearer=<"~^Bearer ." 1, else 0>"). The alternate
 * target, a constant answer, is not checked. */
static bool names_identity(const struct run *r, struct browser *b)
{
    char page[MAX_BODY + 1];
    const char *auth, *email;
    CURL *h = b->h[b->turn];
    if (!r->o->check || b->turn != 0)
        return true;
    if (r->o->mode == MODE_PAGE)
        return strstr(b->body, b->expect) != NULL;
    auth = header_of(h, "authorization");
    email = header_of(h, "email");
    snprintf(page, sizeof(page), "page for %s bearer=%d", email,
             strncmp(auth, BEARER, strlen(BEARER)) == 0 && auth[strlen(BEARER)] != '\0');
    return strstr(page, b->expect) != NULL;
}

/* One answer: counted when it came inside the window (its latency too, even if it was sent
 * in the warm-up), so the answers counted match the decisions made in the window. */
static void done(struct run *r, struct browser *b, CURLcode rc, double now)
{
    struct tally *t = &r->t[b->turn];
    CURL *h = b->h[b->turn];
    long status = 0;

    curl_multi_remove_handle(r->m, h);
    b->busy = false;
    if (now < r->start_ms || now > r->end_ms) {
        t->unmeasured++;
        return;
    }
    t->requests++;
    if (rc != CURLE_OK) {
        count_error(r, t, b->url[b->turn], rc);
        return;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    count_status(t, status);
    if (t->nlat < MAX_SAMPLES)
        t->lat[t->nlat++] = now - b->sent_ms;
    if (status == 200 && !names_identity(r, b)) {
        t->identity_mismatch++;
        note_error(r, "200 without the identity %s: %s", b->expect, b->body);
    } else if (status != 200 && r->o->distinct == 0) {
        note_error(r, "%s answered %ld", b->url[b->turn], status);
    }
}

/* Whether a browser whose answer just came sends again. */
static bool resend_due(const struct run *r, double now)
{
    if (r->o->distinct > 0)
        return r->sent < r->o->distinct && now < r->end_ms;
    return now < r->end_ms;
}

static void read_proc_kb(long pid, long *rss, long *hwm)
{
    char path[64], line[256];
    FILE *f;
    *rss = -1;
    *hwm = -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm = strtol(line + 6, NULL, 10);
    }
    (void)fclose(f);
}

/* --watch-pid: its RSS after each tenth of the --distinct answers. */
static void watch_rss(struct run *r)
{
    long step, answered = r->t[0].requests;
    if (r->o->watch_pid <= 0 || r->o->distinct <= 0 || r->nrss >= RSS_POINTS)
        return;
    step = r->o->distinct / RSS_POINTS;
    if (step < 1)
        step = 1;
    if (answered < step * (r->nrss + 1) && answered < r->o->distinct)
        return;
    r->rss_at[r->nrss] = answered;
    read_proc_kb(r->o->watch_pid, &r->rss_kb[r->nrss], &r->hwm_kb[r->nrss]);
    r->nrss++;
}

static void harvest(struct run *r, bool resend)
{
    CURLMsg *msg;
    int left;
    double now = now_ms();
    while ((msg = curl_multi_info_read(r->m, &left)) != NULL) {
        struct browser *b = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&b);
        done(r, b, msg->data.result, now);
        watch_rss(r);
        b->turn = (b->turn + 1) % r->ntargets;
        if (resend && resend_due(r, now))
            send_one(r, b);
    }
}

static size_t into_buffer(char *buf, size_t size, size_t n, void *ctx)
{
    char *out = ctx;
    size_t have = strlen(out), len = size * n, room = MAX_BODY - have;
    size_t take = len < room ? len : room;
    memcpy(out + have, buf, take);
    out[have + take] = '\0';
    return len;
}

/* The stand-in's "calls" from GET --counter-url; -1 when it cannot be read. */
static long read_calls(const struct opts *o)
{
    char body[MAX_BODY + 1] = "";
    const char *p;
    CURL *h;
    long status = 0, v = -1;
    if (o->counter_url == NULL)
        return -1;
    h = curl_easy_init();
    if (h == NULL)
        return -1;
    curl_easy_setopt(h, CURLOPT_URL, o->counter_url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, into_buffer);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(h) == CURLE_OK &&
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200 &&
        (p = strstr(body, "\"calls\"")) != NULL) {
        p += strlen("\"calls\"");
        p += strspn(p, ": ");
        v = strtol(p, NULL, 10);
    }
    curl_easy_cleanup(h);
    return v;
}

static int busy_count(const struct run *r)
{
    int i, k = 0;
    for (i = 0; i < r->n; i++)
        k += r->b[i].busy;
    return k;
}

/* How long to poll: at most POLL_MS, and not past the next edge of the window. */
static int wait_ms(double edge)
{
    double left = edge - now_ms();
    if (left <= 0)
        return 0;
    return left < POLL_MS ? (int)left + 1 : POLL_MS;
}

/* Waits for the requests still in flight, at most the timeout and a second more. */
static void drain(struct run *r)
{
    double drain_end = now_ms() + (double)r->o->timeout_ms + DRAIN_EXTRA_MS;
    int running;
    while (busy_count(r) > 0 && now_ms() < drain_end) {
        curl_multi_perform(r->m, &running);
        harvest(r, false);
        curl_multi_poll(r->m, NULL, 0, POLL_MS, NULL);
    }
}

/* Warm-up, the window (the counter read at both edges), then the drain. Browsers start on
 * alternating targets, so half the requests in flight go to each. */
static void drive(struct run *r, long calls[3])
{
    double warm_end, cpu0 = 0.0;
    int running, i;
    bool counted = false;

    calls[0] = read_calls(r->o);
    r->start_ms = now_ms() + (double)r->o->warmup_seconds * 1e3;
    r->end_ms = r->start_ms + (double)r->o->seconds * 1e3;
    warm_end = r->start_ms;
    for (i = 0; i < r->n; i++) {
        r->b[i].turn = i % r->ntargets;
        send_one(r, &r->b[i]);
    }
    while (now_ms() < r->end_ms) {
        curl_multi_perform(r->m, &running);
        harvest(r, true);
        if (!counted && now_ms() >= warm_end) {
            calls[1] = read_calls(r->o);
            cpu0 = cpu_ms();
            counted = true;
        }
        curl_multi_poll(r->m, NULL, 0, wait_ms(counted ? r->end_ms : warm_end), NULL);
    }
    calls[2] = read_calls(r->o);
    r->cpu_ms = cpu_ms() - cpu0;
    r->elapsed_s = (double)r->o->seconds;
    drain(r);
}

/* --distinct: N requests, each with a new cookie, every answer measured; S is the deadline. */
static void drive_distinct(struct run *r, long calls[3])
{
    double cpu0 = cpu_ms();
    int running, i;

    calls[0] = calls[1] = read_calls(r->o);
    r->start_ms = now_ms();
    r->end_ms = r->start_ms + (double)r->o->seconds * 1e3;
    for (i = 0; i < r->n && r->sent < r->o->distinct; i++)
        send_one(r, &r->b[i]);
    while (busy_count(r) > 0 && now_ms() < r->end_ms) {
        curl_multi_perform(r->m, &running);
        harvest(r, true);
        curl_multi_poll(r->m, NULL, 0, wait_ms(r->end_ms), NULL);
    }
    r->elapsed_s = (now_ms() - r->start_ms) / 1e3;
    r->cpu_ms = cpu_ms() - cpu0;
    drain(r);
    calls[2] = read_calls(r->o);
}

/* One target's figures, each name after prefix. */
static void report_tally(const struct run *r, struct tally *t, const char *pre)
{
    double secs = r->elapsed_s > 0 ? r->elapsed_s : 1.0;
    int i;

    bench_sort(t->lat, t->nlat);
    printf("%srequests %ld\n%srps %.1f\n%sanswered %ld\n", pre, t->requests, pre,
           (double)t->requests / secs, pre, t->nlat);
    printf("%sp50_ms %.3f\n%sp90_ms %.3f\n%sp99_ms %.3f\n%smax_ms %.3f\n", pre,
           bench_pct(t->lat, t->nlat, 0.50), pre, bench_pct(t->lat, t->nlat, 0.90), pre,
           bench_pct(t->lat, t->nlat, 0.99), pre, t->nlat > 0 ? t->lat[t->nlat - 1] : 0.0);
    printf("%sstatuses", pre);
    for (i = 0; i < t->nstatus; i++)
        printf(" %ld:%ld", t->status_code[i], t->status_count[i]);
    printf("\n");
    for (i = 0; i < t->nstatus; i++)
        printf("%sstatus_%ld %ld\n", pre, t->status_code[i], t->status_count[i]);
    printf("%serrors_timeout %ld\n%serrors_reset %ld\n%serrors_refused %ld\n%serrors_other %ld\n",
           pre, t->timeouts, pre, t->resets, pre, t->refused, pre, t->other_errors);
    printf("%sidentity_mismatch %ld\n%sunmeasured %ld\n", pre, t->identity_mismatch, pre,
           t->unmeasured);
}

static void report_decisions(const struct run *r, const long calls[3])
{
    long requests = r->t[0].requests + r->t[1].requests;
    if (calls[1] >= 0 && calls[2] >= calls[1]) {
        printf("decisions %ld\n", calls[2] - calls[1]);
        printf("decisions_per_request %.3f\n",
               requests > 0 ? (double)(calls[2] - calls[1]) / (double)requests : 0.0);
        if (calls[0] >= 0 && calls[1] >= calls[0])
            printf("decisions_run %ld\n", calls[2] - calls[0]);
    } else if (r->o->counter_url != NULL) {
        printf("decisions n/a\n");
    }
}

static void report(struct run *r, const long calls[3])
{
    int i;

    printf("browsers %d\nseconds %.3f\nsent %ld\n", r->n, r->elapsed_s, r->sent);
    report_tally(r, &r->t[0], "");
    if (r->ntargets > 1)
        report_tally(r, &r->t[1], "alt_");
    printf("still_in_flight %d\nclient_cpu_ms %.0f\n", busy_count(r), r->cpu_ms);
    report_decisions(r, calls);
    for (i = 0; i < r->nrss; i++)
        printf("rss_kb %ld %ld %ld\n", r->rss_at[i], r->rss_kb[i], r->hwm_kb[i]);
    if (r->first_error[0] != '\0')
        printf("first_error %s\n", r->first_error);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_authz --connect ADDR:PORT --browsers FILE [--seconds S]\n"
                    "       [--warmup-seconds W] [--timeout-ms T] [--counter-url URL]\n"
                    "       [--mode page|gate] [--check identity|none] [--new-connections 0|1]\n"
                    "       [--alternate ADDR:PORT] [--distinct N] [--watch-pid PID]\n");
}

static long number(const char *v, long lo, long hi)
{
    char *end = NULL;
    long n = strtol(v, &end, 10);
    return end != v && *end == '\0' && n >= lo && n <= hi ? n : -1;
}

/* A value that is one of two words: *out is whether it is w1; -1 when it is neither. */
static long word(const char *v, const char *w0, const char *w1, bool *out)
{
    if (strcmp(v, w0) != 0 && strcmp(v, w1) != 0)
        return -1;
    *out = strcmp(v, w1) == 0;
    return 0;
}

/* One "--key value" pair; -1 when the key is unknown or the value unusable. */
static int parse_pair(struct opts *o, const char *k, const char *v)
{
    long n = 0;
    bool gate = o->mode == MODE_GATE;
    if (strcmp(k, "--connect") == 0)
        o->connect[0] = v;
    else if (strcmp(k, "--alternate") == 0)
        o->connect[1] = v;
    else if (strcmp(k, "--browsers") == 0)
        o->browsers_file = v;
    else if (strcmp(k, "--counter-url") == 0)
        o->counter_url = v;
    else if (strcmp(k, "--seconds") == 0)
        n = o->seconds = number(v, 1, MAX_SECONDS);
    else if (strcmp(k, "--warmup-seconds") == 0)
        n = o->warmup_seconds = number(v, 0, MAX_SECONDS);
    else if (strcmp(k, "--timeout-ms") == 0)
        n = o->timeout_ms = number(v, 1, 600000);
    else if (strcmp(k, "--distinct") == 0)
        n = o->distinct = number(v, 1, MAX_DISTINCT);
    else if (strcmp(k, "--watch-pid") == 0)
        n = o->watch_pid = number(v, 1, 1L << 30);
    else if (strcmp(k, "--new-connections") == 0)
        n = word(v, "0", "1", &o->new_connections);
    else if (strcmp(k, "--check") == 0)
        n = word(v, "none", "identity", &o->check);
    else if (strcmp(k, "--mode") == 0)
        n = word(v, "page", "gate", &gate);
    else
        return -1;
    o->mode = gate ? MODE_GATE : MODE_PAGE;
    return n < 0 ? -1 : 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    int i;
    o->seconds = 10;
    o->warmup_seconds = 1;
    o->timeout_ms = 5000;
    o->check = true;
    for (i = 1; i + 1 < argc; i += 2) {
        if (parse_pair(o, argv[i], argv[i + 1]) != 0)
            return -1;
    }
    if (i != argc || o->connect[0] == NULL || o->browsers_file == NULL ||
        (o->connect[1] != NULL && o->distinct > 0))
        return -1;
    return 0;
}

static int run_init(struct run *r, const struct opts *o)
{
    int k;
    memset(r, 0, sizeof(*r));
    r->o = o;
    r->ntargets = o->connect[1] != NULL ? 2 : 1;
    for (k = 0; k < r->ntargets; k++) {
        char *target = join3("::", o->connect[k], "");
        if (target == NULL)
            return -1;
        r->connect_to[k] = curl_slist_append(NULL, target);
        free(target);
        r->t[k].lat = malloc(MAX_SAMPLES * sizeof(double));
        if (r->connect_to[k] == NULL || r->t[k].lat == NULL)
            return -1;
    }
    r->m = curl_multi_init();
    if (r->m == NULL)
        return -1;
    return load_browsers(r);
}

static void run_cleanup(struct run *r)
{
    int i, k;
    for (i = 0; i < r->n; i++) {
        struct browser *b = &r->b[i];
        for (k = 0; k < NTARGETS; k++) {
            if (b->busy && b->turn == k)
                curl_multi_remove_handle(r->m, b->h[k]);
            curl_easy_cleanup(b->h[k]);
            curl_slist_free_all(b->headers[k]);
            free(b->url[k]);
        }
        free(b->cookie);
        free(b->expect);
    }
    if (r->m != NULL)
        curl_multi_cleanup(r->m);
    for (k = 0; k < NTARGETS; k++) {
        curl_slist_free_all(r->connect_to[k]);
        free(r->t[k].lat);
    }
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct run *r;
    long calls[3] = {-1, -1, -1};
    int rc = 1;

    if (parse_args(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
        return 1;
    r = calloc(1, sizeof(*r));
    if (r != NULL && run_init(r, &o) == 0) {
        if (o.distinct > 0)
            drive_distinct(r, calls);
        else
            drive(r, calls);
        report(r, calls);
        rc = 0;
    }
    if (r != NULL)
        run_cleanup(r);
    free(r);
    curl_global_cleanup();
    return rc;
}
