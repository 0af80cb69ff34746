/* bench/authz.sh's driver: browsers loading a page that an ingress protects with auth-url.
 *
 *   bench_authz --connect ADDR:PORT --browsers FILE [--seconds S] [--warmup-seconds W]
 *       [--timeout-ms T] [--counter-url URL]
 *
 * FILE has one browser a line, four tab-separated fields: the host it browses (sent as the
 * Host header, without a port, as a browser behind port 443 sends it), the path, its Cookie
 * header, and a text every 200 it gets must contain (the protected page names the identity
 * the ingress relayed to it). Every browser sends GET http://<host><path> to ADDR:PORT, waits
 * for the answer and sends the next at once (a closed loop: N browsers, at most N requests in
 * flight), over keep-alive connections, for W seconds of warm-up and then S measured seconds.
 *
 * Measured: the requests answered between the window's start and its end: their number,
 * their latency (send to the whole answer) p50/p90/p99/max, their statuses, transfer errors
 * (timeout, reset, refused, other), and the 200s whose page lacked the browser's text. With
 * --counter-url (the Houston stand-in's GET /__test/authz) the "calls" it reports is read at
 * the window's start and end: the decisions Houston made meanwhile.
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
#include <curl/curl.h>
#include "stats.h"

#define MAX_BROWSERS 1024
#define MAX_LINE 8192
#define MAX_BODY 1024
#define MAX_STATUS 16
#define MAX_SAMPLES 4000000
#define MAX_SECONDS 600
#define DRAIN_EXTRA_MS 1000.0
#define POLL_MS 50
#define ERR_LEN 256

struct opts {
    const char *connect, *browsers_file, *counter_url;
    long seconds, warmup_seconds, timeout_ms;
};

struct browser {
    CURL *h;
    char *url, *host_header, *cookie_header, *expect;
    struct curl_slist *headers;
    char body[MAX_BODY + 1];
    size_t body_len;
    double sent_ms;
    bool busy;
};

struct run {
    const struct opts *o;
    CURLM *m;
    struct curl_slist *connect_to;
    struct browser b[MAX_BROWSERS];
    int n;
    double start_ms, end_ms;
    double *lat;
    long nlat, requests;
    long status_code[MAX_STATUS], status_count[MAX_STATUS];
    int nstatus;
    long timeouts, resets, refused, other_errors, identity_mismatch, unmeasured;
    char first_error[ERR_LEN];
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

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

static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *out = malloc(na + nb + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, a, na);
    memcpy(out + na, b, nb + 1);
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

/* One line of FILE: host \t path \t cookie \t expect. */
static int browser_init(struct run *r, struct browser *b, char *line)
{
    char *f[4];
    if (split(line, f, 4) != 0)
        return -1;
    b->url = malloc(strlen(f[0]) + strlen(f[1]) + 8);
    if (b->url == NULL)
        return -1;
    snprintf(b->url, strlen(f[0]) + strlen(f[1]) + 8, "http://%s%s", f[0], f[1]);
    b->host_header = join("Host: ", f[0]);
    b->cookie_header = join("Cookie: ", f[2]);
    b->expect = dup_str(f[3]);
    b->h = curl_easy_init();
    if (b->host_header == NULL || b->cookie_header == NULL || b->expect == NULL || b->h == NULL)
        return -1;
    b->headers = curl_slist_append(b->headers, b->host_header);
    b->headers = curl_slist_append(b->headers, b->cookie_header);
    curl_easy_setopt(b->h, CURLOPT_URL, b->url);
    curl_easy_setopt(b->h, CURLOPT_CONNECT_TO, r->connect_to);
    curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, b->headers);
    curl_easy_setopt(b->h, CURLOPT_TIMEOUT_MS, r->o->timeout_ms);
    curl_easy_setopt(b->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(b->h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(b->h, CURLOPT_PRIVATE, b);
    curl_easy_setopt(b->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(b->h, CURLOPT_NOSIGNAL, 1L);
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

static void send_one(struct run *r, struct browser *b)
{
    b->body_len = 0;
    b->body[0] = '\0';
    b->sent_ms = now_ms();
    b->busy = curl_multi_add_handle(r->m, b->h) == CURLM_OK;
    if (!b->busy)
        note_error(r, "%s: curl_multi_add_handle failed", b->url);
}

static void count_status(struct run *r, long status)
{
    int i;
    for (i = 0; i < r->nstatus; i++) {
        if (r->status_code[i] == status) {
            r->status_count[i]++;
            return;
        }
    }
    if (r->nstatus < MAX_STATUS) {
        r->status_code[r->nstatus] = status;
        r->status_count[r->nstatus++] = 1;
    }
}

static void count_error(struct run *r, const struct browser *b, CURLcode rc)
{
    if (rc == CURLE_OPERATION_TIMEDOUT)
        r->timeouts++;
    else if (rc == CURLE_COULDNT_CONNECT)
        r->refused++;
    else if (rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR)
        r->resets++;
    else
        r->other_errors++;
    note_error(r, "%s: curl error %ld", b->url, (long)rc);
}

/* One answer: counted when it came inside the window (its latency too, even if it was sent
 * in the warm-up), so the answers counted match the decisions made in the window. */
static void done(struct run *r, struct browser *b, CURLcode rc, double now)
{
    long status = 0;
    bool measured = now >= r->start_ms && now <= r->end_ms;

    curl_multi_remove_handle(r->m, b->h);
    b->busy = false;
    if (!measured) {
        r->unmeasured++;
        return;
    }
    r->requests++;
    if (rc != CURLE_OK) {
        count_error(r, b, rc);
        return;
    }
    curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &status);
    count_status(r, status);
    if (r->nlat < MAX_SAMPLES)
        r->lat[r->nlat++] = now - b->sent_ms;
    if (status == 200 && strstr(b->body, b->expect) == NULL) {
        r->identity_mismatch++;
        note_error(r, "200 without the identity: %s", b->body);
    } else if (status != 200) {
        note_error(r, "%s answered %ld", b->url, status);
    }
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
        if (resend && now < r->end_ms)
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

/* Warm-up, the window (the counter read at both edges), then the drain. */
static void drive(struct run *r, long *calls0, long *calls1)
{
    double warm_end, drain_end;
    int running, i;
    bool counted = false;

    r->start_ms = now_ms() + (double)r->o->warmup_seconds * 1e3;
    r->end_ms = r->start_ms + (double)r->o->seconds * 1e3;
    warm_end = r->start_ms;
    for (i = 0; i < r->n; i++)
        send_one(r, &r->b[i]);
    while (now_ms() < r->end_ms) {
        curl_multi_perform(r->m, &running);
        harvest(r, true);
        if (!counted && now_ms() >= warm_end) {
            *calls0 = read_calls(r->o);
            counted = true;
        }
        curl_multi_poll(r->m, NULL, 0, wait_ms(counted ? r->end_ms : warm_end), NULL);
    }
    *calls1 = read_calls(r->o);
    drain_end = now_ms() + (double)r->o->timeout_ms + DRAIN_EXTRA_MS;
    while (busy_count(r) > 0 && now_ms() < drain_end) {
        curl_multi_perform(r->m, &running);
        harvest(r, false);
        curl_multi_poll(r->m, NULL, 0, POLL_MS, NULL);
    }
}

static void report(struct run *r, long calls0, long calls1)
{
    double secs = (double)r->o->seconds;
    int i;

    bench_sort(r->lat, r->nlat);
    printf("browsers %d\nseconds %.3f\nrequests %ld\nrps %.1f\n", r->n, secs, r->requests,
           (double)r->requests / secs);
    printf("answered %ld\np50_ms %.3f\np90_ms %.3f\np99_ms %.3f\nmax_ms %.3f\n", r->nlat,
           bench_pct(r->lat, r->nlat, 0.50), bench_pct(r->lat, r->nlat, 0.90),
           bench_pct(r->lat, r->nlat, 0.99), r->nlat > 0 ? r->lat[r->nlat - 1] : 0.0);
    printf("statuses");
    for (i = 0; i < r->nstatus; i++)
        printf(" %ld:%ld", r->status_code[i], r->status_count[i]);
    printf("\n");
    for (i = 0; i < r->nstatus; i++)
        printf("status_%ld %ld\n", r->status_code[i], r->status_count[i]);
    printf("errors_timeout %ld\nerrors_reset %ld\nerrors_refused %ld\nerrors_other %ld\n",
           r->timeouts, r->resets, r->refused, r->other_errors);
    printf("identity_mismatch %ld\nunmeasured %ld\nstill_in_flight %d\n", r->identity_mismatch,
           r->unmeasured, busy_count(r));
    if (calls0 >= 0 && calls1 >= calls0) {
        printf("decisions %ld\n", calls1 - calls0);
        printf("decisions_per_request %.3f\n",
               r->requests > 0 ? (double)(calls1 - calls0) / (double)r->requests : 0.0);
    } else if (r->o->counter_url != NULL) {
        printf("decisions n/a\n");
    }
    if (r->first_error[0] != '\0')
        printf("first_error %s\n", r->first_error);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_authz --connect ADDR:PORT --browsers FILE [--seconds S]\n"
                    "       [--warmup-seconds W] [--timeout-ms T] [--counter-url URL]\n");
}

static long number(const char *v, long lo, long hi)
{
    char *end = NULL;
    long n = strtol(v, &end, 10);
    return end != v && *end == '\0' && n >= lo && n <= hi ? n : -1;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    int i;
    o->seconds = 10;
    o->warmup_seconds = 1;
    o->timeout_ms = 5000;
    for (i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--connect") == 0)
            o->connect = v;
        else if (strcmp(k, "--browsers") == 0)
            o->browsers_file = v;
        else if (strcmp(k, "--counter-url") == 0)
            o->counter_url = v;
        else if (strcmp(k, "--seconds") == 0)
            o->seconds = number(v, 1, MAX_SECONDS);
        else if (strcmp(k, "--warmup-seconds") == 0)
            o->warmup_seconds = number(v, 0, MAX_SECONDS);
        else if (strcmp(k, "--timeout-ms") == 0)
            o->timeout_ms = number(v, 1, 600000);
        else
            return -1;
    }
    if (i != argc || o->connect == NULL || o->browsers_file == NULL || o->seconds < 0 ||
        o->warmup_seconds < 0 || o->timeout_ms < 0)
        return -1;
    return 0;
}

static int run_init(struct run *r, const struct opts *o)
{
    char *target = join("::", o->connect);
    memset(r, 0, sizeof(*r));
    r->o = o;
    if (target == NULL)
        return -1;
    r->connect_to = curl_slist_append(NULL, target);
    free(target);
    r->m = curl_multi_init();
    r->lat = malloc(MAX_SAMPLES * sizeof(double));
    if (r->connect_to == NULL || r->m == NULL || r->lat == NULL)
        return -1;
    return load_browsers(r);
}

static void run_cleanup(struct run *r)
{
    int i;
    for (i = 0; i < r->n; i++) {
        struct browser *b = &r->b[i];
        if (b->busy)
            curl_multi_remove_handle(r->m, b->h);
        curl_easy_cleanup(b->h);
        curl_slist_free_all(b->headers);
        free(b->url);
        free(b->host_header);
        free(b->cookie_header);
        free(b->expect);
    }
    if (r->m != NULL)
        curl_multi_cleanup(r->m);
    curl_slist_free_all(r->connect_to);
    free(r->lat);
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct run *r;
    long calls0 = -1, calls1 = -1;
    int rc = 1;

    if (parse_args(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
        return 1;
    r = calloc(1, sizeof(*r));
    if (r != NULL && run_init(r, &o) == 0) {
        drive(r, &calls0, &calls1);
        report(r, calls0, calls1);
        rc = 0;
    }
    if (r != NULL)
        run_cleanup(r);
    free(r);
    curl_global_cleanup();
    return rc;
}
