/* bench/stall.sh's driver: many browsers caught in a stall of a peer.
 *
 *   bench_stall --start URL --front ORIGIN --tenant ORIGIN --hop-path PATH [--cacert FILE]
 *       [--resolve HOST:PORT:ADDR]... [--browsers N] [--prep-concurrency P]
 *       [--fault-url URL --fault-set JSON --fault-clear JSON] [--stall-ms MS]
 *       [--probe URL] [--probe-every-ms MS] [--probe-within-ms MS] [--give-up-ms MS]
 *       [--deadline-ms MS] [--step N --step-ms MS] [--rss-pid PID] [--stop-after-steps]
 *       [--success-cookie NAME]
 *
 * 1. Preparation: each of N browsers makes the first half of a login, at most P at a time:
 *    GET the start URL on the relying party, then follow its 30x while they point at the
 *    relying party or the tenant, keeping the relying party's cookies, until a Location points
 *    at the callback (--hop-path on --front). That request, with its cookies, is kept unsent.
 * 2. The stall: POST --fault-set to --fault-url (a test control of the dev tenant or the
 *    Houston stand-in) and wait for its 200; that instant is t0. From t0 the browsers send
 *    their callbacks, all at once or --step at a time every --step-ms, each on a connection
 *    of its own, and each records the time from its send to its answer (any HTTP status), a
 *    reset, a refused connection or --give-up-ms. At t0 + --stall-ms the fault is cleared
 *    (POST --fault-clear on the control's own keep-alive connection, retried every 500 ms
 *    while the peer does not take it).
 * 3. Meanwhile --probe is fetched every --probe-every-ms on a fresh connection, and answers
 *    within --probe-within-ms are counted; with --rss-pid, that process's VmRSS is read just
 *    before the first step and --step-ms after each step (logins in flight: those sent).
 *
 * It ends when every browser has its outcome, the stall is over and no probe is in flight;
 * --stop-after-steps ends it after the last RSS reading instead. Everything is bounded: each
 * transfer has a timeout, the preparation a deadline, the stall a hard end.
 *
 * One thread and one curl multi handle drive every transfer. No connection is reused
 * (FORBID_REUSE) but the fault control's, so each request is its own TCP connection and the
 * relying party sees N connections at once. TLS sessions to the tenant are shared. Cookies
 * are kept by this program (the relying parties mark theirs Secure and are driven over plain
 * HTTP, as in loadgen.c); the tenant gets none.
 *
 * Prints "name value" lines (counts, percentiles in ms, RSS in KiB). Exit 1 when the
 * preparation or the fault control fails, 2 on bad arguments. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/resource.h>
#include <curl/curl.h>
#include "stats.h"

#define MAX_BROWSERS 4096
#define MAX_HOPS 8
#define MAX_COOKIES 16
#define MAX_RESOLVE 8
#define MAX_COOKIE_LEN 4096
#define MAX_LOCATION 8192
#define MAX_STEPS 64
#define MAX_PROBES 4096
#define MAX_LIVE_PROBES 64
#define MAX_STATUS 8
#define PREP_TIMEOUT_MS 10000L
#define PREP_DEADLINE_MS 180000.0
#define FAULT_TIMEOUT_MS 5000L
#define CLEAR_RETRY_MS 500.0
#define CTL_PING_MS 10000.0 /* the peers close a connection idle for 30 s */
#define MAX_ERROR_CODE 48
#define HIST_BUCKETS 61 /* one per second of waiting, the last one "60 s and more" */
#define ERR_LEN 256

struct opts {
    const char *start, *front, *tenant, *hop_path, *cacert;
    const char *resolve[MAX_RESOLVE];
    int nresolve;
    int browsers, prep_conc, step, rss_pid;
    const char *fault_url, *fault_set, *fault_clear, *probe, *success_cookie;
    long stall_ms, probe_every_ms, probe_within_ms, give_up_ms, deadline_ms, step_ms;
    bool stop_after_steps;
};

struct cookie {
    char *name, *value;
};

/* What one response said that a browser acts on; reset before each transfer. */
struct reply {
    char *location;
    struct cookie set[MAX_COOKIES];
    bool expired[MAX_COOKIES];
    int nset;
    bool success; /* it set --success-cookie */
};

enum kind { K_PREP, K_CALLBACK, K_PROBE, K_CTL };
enum ctl_op { CTL_SET, CTL_PING, CTL_CLEAR };
enum outcome { O_NONE, O_ANSWERED, O_RESET, O_REFUSED, O_GAVE_UP, O_OTHER };

struct xfer {
    enum kind kind;
    struct browser *b;   /* K_PREP, K_CALLBACK */
    const char *success; /* --success-cookie, for K_CALLBACK */
    CURL *h;
    double t_sent;
    struct reply r;
};

struct browser {
    char *url; /* the next GET; once prepared, the callback */
    struct cookie jar[MAX_COOKIES];
    int njar, hops;
    bool ready, failed;
    struct xfer x;
    enum outcome outcome;
    long status;
    bool success;
    char error[MAX_ERROR_CODE]; /* the error= value of the answer's Location, if any */
    double wait_ms;
};

struct run {
    const struct opts *o;
    CURLM *m;
    CURLSH *share;
    struct curl_slist *resolve;
    struct browser *bs;
    int prepared, prep_failed, active_prep, next_prep;
    int sent, done, steps_sent;
    double t0, clear_at, cleared_ms, next_ping, hard_end;
    struct xfer ctl; /* the fault control's keep-alive handle */
    enum ctl_op ctl_op;
    bool ctl_active, ctl_ok, cleared;
    long ctl_connects; /* connections the control opened: 1 when the keep-alive held */
    long rss_kb[MAX_STEPS + 1];
    int rss_inflight[MAX_STEPS + 1], nrss;
    double next_probe;
    struct xfer *live[MAX_LIVE_PROBES]; /* probes in flight */
    int probes_active, nprobe, probes_done, probes_in_time, probes_late;
    double probe_ms[MAX_PROBES];
    char first_error[ERR_LEN];
};

static void pump(struct run *r, int wait_ms);

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void note_error(struct run *r, const char *what, const char *url, long status)
{
    const char *q;
    int n;
    if (r->first_error[0] != '\0')
        return;
    q = url != NULL ? strchr(url, '?') : NULL;
    n = q != NULL ? (int)(q - url) : (url != NULL ? (int)strlen(url) : 0);
    snprintf(r->first_error, sizeof(r->first_error), "%s (status %ld at %.*s)", what, status,
             n > 160 ? 160 : n, url != NULL ? url : "");
}

static double min_d(double a, double b)
{
    return a < b ? a : b;
}

static double max_d(double a, double b)
{
    return a > b ? a : b;
}

static bool starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void reply_cleanup(struct reply *rp)
{
    free(rp->location);
    for (int i = 0; i < rp->nset; i++) {
        free(rp->set[i].name);
        free(rp->set[i].value);
    }
    memset(rp, 0, sizeof(*rp));
}

/* Whether s[0..len) holds word. */
static bool holds(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(s + i, word, n) == 0)
            return true;
    }
    return false;
}

/* "name=value; attrs": true when the attributes expire it (Max-Age 0 or a 1970 date). */
static bool expires_now(const char *attrs, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        const char *p = attrs + i;
        size_t left = len - i;
        if (left >= 9 &&
            (strncasecmp(p, "max-age=0", 9) == 0 || strncasecmp(p, "max-age=-", 9) == 0))
            return true;
        if (left >= 8 && strncasecmp(p, "expires=", 8) == 0 && holds(p, left, "1970"))
            return true;
    }
    return false;
}

static void parse_set_cookie(struct reply *rp, const char *v, size_t len, const char *want)
{
    const char *eq = memchr(v, '=', len), *semi;
    size_t nlen, vlen;
    int i = rp->nset;
    if (eq == NULL || i >= MAX_COOKIES)
        return;
    nlen = (size_t)(eq - v);
    semi = memchr(eq, ';', len - nlen);
    vlen = (semi != NULL ? (size_t)(semi - eq) : len - nlen) - 1;
    if (nlen == 0 || nlen >= MAX_COOKIE_LEN || vlen >= MAX_COOKIE_LEN)
        return;
    rp->set[i].name = dup_n(v, nlen);
    rp->set[i].value = dup_n(eq + 1, vlen);
    if (rp->set[i].name == NULL || rp->set[i].value == NULL) {
        free(rp->set[i].name);
        free(rp->set[i].value);
        return;
    }
    rp->expired[i] = vlen == 0 || (semi != NULL && expires_now(semi, len - (size_t)(semi - v)));
    if (want != NULL && !rp->expired[i] && strcmp(rp->set[i].name, want) == 0)
        rp->success = true;
    rp->nset++;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n, skip;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len > 9 && strncasecmp(buf, "location:", 9) == 0) {
        for (skip = 9; skip < len && buf[skip] == ' '; skip++)
            ;
        if (len - skip < MAX_LOCATION && x->r.location == NULL)
            x->r.location = dup_n(buf + skip, len - skip);
    } else if (len > 11 && strncasecmp(buf, "set-cookie:", 11) == 0) {
        for (skip = 11; skip < len && buf[skip] == ' '; skip++)
            ;
        parse_set_cookie(&x->r, buf + skip, len - skip, x->success);
    }
    return size * n;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ctx)
{
    (void)buf;
    (void)ctx;
    return size * n;
}

/* The relying party's Set-Cookie lines into the browser's jar (expired ones leave it). */
static void jar_update(struct browser *b, struct reply *rp)
{
    for (int i = 0; i < rp->nset; i++) {
        struct cookie *c = &rp->set[i];
        int j = 0;
        while (j < b->njar && strcmp(b->jar[j].name, c->name) != 0)
            j++;
        if (j < b->njar) {
            free(b->jar[j].name);
            free(b->jar[j].value);
            b->jar[j] = b->jar[--b->njar];
        }
        if (rp->expired[i] || b->njar >= MAX_COOKIES)
            continue;
        b->jar[b->njar++] = *c; /* moved: the reply no longer owns it */
        c->name = NULL;
        c->value = NULL;
    }
}

/* "a=1; b=2", or NULL when the jar is empty (caller frees). */
static char *jar_header(const struct browser *b)
{
    size_t cap = 1, len = 0;
    char *out;
    if (b->njar == 0)
        return NULL;
    for (int i = 0; i < b->njar; i++)
        cap += strlen(b->jar[i].name) + strlen(b->jar[i].value) + 3;
    out = malloc(cap);
    if (out == NULL)
        return NULL;
    out[0] = '\0';
    for (int i = 0; i < b->njar; i++) {
        int k = snprintf(out + len, cap - len, "%s%s=%s", i > 0 ? "; " : "", b->jar[i].name,
                         b->jar[i].value);
        if (k < 0 || (size_t)k >= cap - len)
            break;
        len += (size_t)k;
    }
    return out;
}

static void browser_cleanup(struct browser *b)
{
    free(b->url);
    for (int i = 0; i < b->njar; i++) {
        free(b->jar[i].name);
        free(b->jar[i].value);
    }
    reply_cleanup(&b->x.r);
    if (b->x.h != NULL)
        curl_easy_cleanup(b->x.h);
}

/* A handle for one GET on a connection of its own; NULL when out of memory. */
static CURL *new_get(struct run *r, struct xfer *x, const char *url, long timeout_ms)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return NULL;
    x->h = h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "houston-auth-bench/1");
    curl_easy_setopt(h, CURLOPT_RESOLVE, r->resolve);
    curl_easy_setopt(h, CURLOPT_SHARE, r->share);
    if (r->o->cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, r->o->cacert);
    return h;
}

static void xfer_done(struct run *r, struct xfer *x)
{
    curl_multi_remove_handle(r->m, x->h);
    curl_easy_cleanup(x->h);
    x->h = NULL;
    reply_cleanup(&x->r);
}

/* ---- 1. preparation ---- */

static int start_prep(struct run *r, struct browser *b)
{
    char *cookies = NULL;
    bool front = starts_with(b->url, r->o->front);
    b->x.kind = K_PREP;
    b->x.b = b;
    if (new_get(r, &b->x, b->url, PREP_TIMEOUT_MS) == NULL)
        return -1;
    if (front)
        cookies = jar_header(b);
    /* CURLOPT_COOKIE copies the string. */
    curl_easy_setopt(b->x.h, CURLOPT_COOKIE, cookies);
    free(cookies);
    b->x.t_sent = now_ms();
    if (curl_multi_add_handle(r->m, b->x.h) != CURLM_OK)
        return -1;
    r->active_prep++;
    return 0;
}

/* Resolves location against base (caller frees); NULL when it does not parse. */
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

static bool is_callback(const struct opts *o, const char *url)
{
    return starts_with(url, o->front) && starts_with(url + strlen(o->front), o->hop_path);
}

static void prep_fail(struct run *r, struct browser *b, const char *why, long status)
{
    note_error(r, why, b->url, status);
    b->failed = true;
    r->prep_failed++;
}

/* One preparation transfer ended: follow its redirect, or stop at the callback. */
static void prep_done(struct run *r, struct browser *b, CURLcode rc)
{
    long status = 0;
    char *next = NULL;
    curl_easy_getinfo(b->x.h, CURLINFO_RESPONSE_CODE, &status);
    r->active_prep--;
    if (rc != CURLE_OK) {
        prep_fail(r, b, curl_easy_strerror(rc), 0);
        goto out;
    }
    if (starts_with(b->url, r->o->front))
        jar_update(b, &b->x.r);
    if (status >= 301 && status <= 303 && b->x.r.location != NULL)
        next = next_url(b->url, b->x.r.location);
    if (next == NULL || ++b->hops >= MAX_HOPS ||
        !(starts_with(next, r->o->front) || starts_with(next, r->o->tenant))) {
        prep_fail(r, b, "the first half of the login did not reach the callback", status);
        goto out;
    }
    free(b->url);
    b->url = next;
    next = NULL;
    if (is_callback(r->o, b->url)) {
        b->ready = true;
        r->prepared++;
    }
out:
    free(next);
    xfer_done(r, &b->x);
    if (!b->ready && !b->failed && start_prep(r, b) != 0)
        prep_fail(r, b, "out of memory", 0);
}

/* ---- 2. the stall ---- */

/* The fault control goes over one keep-alive connection, opened before the stall and used
 * every CTL_PING_MS so that it never idles out. The peers serve a bounded number of
 * connections (256, each held for the whole injected delay, whether its client is still
 * there or not), so a control request on a new connection could wait until the stall's first
 * held requests end, and the stall would last longer than --stall-ms. */

static struct curl_slist *json_header(void)
{
    static struct curl_slist *json;
    if (json == NULL)
        json = curl_slist_append(NULL, "Content-Type: application/json");
    return json;
}

static int ctl_init(struct run *r)
{
    if (r->o->fault_url == NULL)
        return 0;
    r->ctl.kind = K_CTL;
    if (new_get(r, &r->ctl, r->o->fault_url, FAULT_TIMEOUT_MS) == NULL)
        return -1;
    curl_easy_setopt(r->ctl.h, CURLOPT_FRESH_CONNECT, 0L);
    curl_easy_setopt(r->ctl.h, CURLOPT_FORBID_REUSE, 0L);
    curl_easy_setopt(r->ctl.h, CURLOPT_HTTPHEADER, json_header());
    return 0;
}

static int ctl_send(struct run *r, enum ctl_op op)
{
    CURL *h = r->ctl.h;
    if (op == CTL_PING)
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    else
        curl_easy_setopt(h, CURLOPT_POSTFIELDS,
                         op == CTL_SET ? r->o->fault_set : r->o->fault_clear);
    r->ctl_op = op;
    if (curl_multi_add_handle(r->m, h) != CURLM_OK)
        return -1;
    r->ctl_active = true;
    return 0;
}

static void ctl_done(struct run *r, CURLcode rc)
{
    long status = 0, connects = 0;
    curl_easy_getinfo(r->ctl.h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->ctl.h, CURLINFO_NUM_CONNECTS, &connects);
    r->ctl_connects += connects;
    curl_multi_remove_handle(r->m, r->ctl.h); /* the connection stays in the multi's cache */
    reply_cleanup(&r->ctl.r);
    r->ctl_active = false;
    r->ctl_ok = rc == CURLE_OK && status == 200;
    if (!r->ctl_ok && r->ctl_op != CTL_PING)
        note_error(r, rc != CURLE_OK ? curl_easy_strerror(rc) : "the fault control refused",
                   r->o->fault_url, status);
    if (r->ctl_op != CTL_CLEAR)
        return;
    if (r->ctl_ok) {
        r->cleared = true;
        r->cleared_ms = now_ms() - r->t0;
    } else {
        r->clear_at = now_ms() + CLEAR_RETRY_MS;
    }
}

/* Sets the fault and waits for the peer to take it (200). */
static int set_fault(struct run *r)
{
    double deadline = now_ms() + (double)FAULT_TIMEOUT_MS + 1000;
    if (r->o->fault_url == NULL)
        return 0;
    if (ctl_send(r, CTL_SET) != 0)
        return -1;
    while (r->ctl_active && now_ms() < deadline)
        pump(r, 50);
    return !r->ctl_active && r->ctl_ok ? 0 : -1;
}

/* Keeps the control connection in use until the stall ends, then clears the fault. */
static void control(struct run *r, double now)
{
    if (r->o->fault_url == NULL || r->cleared || r->ctl_active)
        return;
    if (now >= r->clear_at) {
        if (ctl_send(r, CTL_CLEAR) != 0)
            r->clear_at = now + CLEAR_RETRY_MS;
    } else if (now >= r->next_ping) {
        ctl_send(r, CTL_PING);
        r->next_ping = now + CTL_PING_MS;
    }
}

static void send_callback(struct run *r, struct browser *b)
{
    char *cookies = jar_header(b);
    b->x.kind = K_CALLBACK;
    b->x.b = b;
    b->x.success = r->o->success_cookie;
    r->sent++;
    if (new_get(r, &b->x, b->url, r->o->give_up_ms) == NULL) {
        free(cookies);
        b->outcome = O_OTHER;
        r->done++;
        return;
    }
    curl_easy_setopt(b->x.h, CURLOPT_COOKIE, cookies);
    free(cookies);
    b->x.t_sent = now_ms();
    if (curl_multi_add_handle(r->m, b->x.h) != CURLM_OK) {
        xfer_done(r, &b->x);
        b->outcome = O_OTHER;
        r->done++;
    }
}

/* The value of "error=" in a Location's query (the login failure a relying party names),
 * cut at the next '&'; "" when there is none. */
static void error_code(const char *location, char *out, size_t cap)
{
    const char *q = location != NULL ? strchr(location, '?') : NULL;
    const char *p = q;
    size_t n;
    out[0] = '\0';
    while (p != NULL && strncmp(p + 1, "error=", 6) != 0)
        p = strchr(p + 1, '&');
    if (p == NULL)
        return;
    p += 7;
    n = strcspn(p, "&#");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

static void callback_done(struct run *r, struct browser *b, CURLcode rc)
{
    b->wait_ms = now_ms() - b->x.t_sent;
    curl_easy_getinfo(b->x.h, CURLINFO_RESPONSE_CODE, &b->status);
    switch (rc) {
    case CURLE_OK:
        b->outcome = O_ANSWERED;
        b->success = b->x.r.success;
        error_code(b->x.r.location, b->error, sizeof(b->error));
        break;
    case CURLE_OPERATION_TIMEDOUT:
        b->outcome = O_GAVE_UP;
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        b->outcome = O_RESET;
        break;
    case CURLE_COULDNT_CONNECT:
        b->outcome = O_REFUSED;
        break;
    default:
        b->outcome = O_OTHER;
        note_error(r, curl_easy_strerror(rc), b->url, 0);
        break;
    }
    r->done++;
    xfer_done(r, &b->x);
}

static long read_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    (void)fclose(f);
    return kb;
}

static int nsteps(const struct opts *o)
{
    return (o->browsers + o->step - 1) / o->step;
}

/* Sends the steps that are due; reads RSS before each step and one step time after the last. */
static void send_steps(struct run *r, double now)
{
    const struct opts *o = r->o;
    int n = nsteps(o);
    while (r->steps_sent < n && now >= r->t0 + (double)r->steps_sent * (double)o->step_ms) {
        r->rss_inflight[r->nrss] = r->sent;
        r->rss_kb[r->nrss++] = o->rss_pid > 0 ? read_rss_kb(o->rss_pid) : -1;
        for (int i = r->sent; i < o->browsers && i < (r->steps_sent + 1) * o->step; i++)
            send_callback(r, &r->bs[i]);
        r->steps_sent++;
    }
    if (r->steps_sent == n && r->nrss == n && now >= r->t0 + (double)n * (double)o->step_ms) {
        r->rss_inflight[r->nrss] = r->sent;
        r->rss_kb[r->nrss++] = o->rss_pid > 0 ? read_rss_kb(o->rss_pid) : -1;
    }
}

static void send_probe(struct run *r)
{
    struct xfer *x = calloc(1, sizeof(*x));
    long timeout = r->o->probe_within_ms * 2 < 1000 ? 1000 : r->o->probe_within_ms * 2;
    if (x == NULL)
        return;
    x->kind = K_PROBE;
    if (new_get(r, x, r->o->probe, timeout) == NULL) {
        free(x);
        return;
    }
    x->t_sent = now_ms();
    if (curl_multi_add_handle(r->m, x->h) != CURLM_OK) {
        xfer_done(r, x);
        free(x);
        return;
    }
    for (int i = 0; i < MAX_LIVE_PROBES; i++) {
        if (r->live[i] == NULL) {
            r->live[i] = x;
            break;
        }
    }
    r->probes_active++;
    r->nprobe++;
}

static void probes(struct run *r, double now)
{
    if (r->o->probe == NULL || now < r->next_probe || r->nprobe >= MAX_PROBES ||
        r->probes_active >= MAX_LIVE_PROBES)
        return;
    send_probe(r);
    r->next_probe += (double)r->o->probe_every_ms;
    if (r->next_probe < now) /* the loop was late: no burst to catch up */
        r->next_probe = now + (double)r->o->probe_every_ms;
}

static void probe_done(struct run *r, struct xfer *x, CURLcode rc)
{
    double ms = now_ms() - x->t_sent;
    long status = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status == 200 && ms <= (double)r->o->probe_within_ms)
        r->probes_in_time++;
    else
        r->probes_late++;
    r->probe_ms[r->probes_done++] = ms;
    r->probes_active--;
    for (int i = 0; i < MAX_LIVE_PROBES; i++) {
        if (r->live[i] == x)
            r->live[i] = NULL;
    }
    xfer_done(r, x);
    free(x);
}

/* ---- the loop ---- */

static void drain(struct run *r)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(r->m, &left)) != NULL) {
        struct xfer *x = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x->kind == K_PREP)
            prep_done(r, x->b, msg->data.result);
        else if (x->kind == K_CALLBACK)
            callback_done(r, x->b, msg->data.result);
        else if (x->kind == K_PROBE)
            probe_done(r, x, msg->data.result);
        else
            ctl_done(r, msg->data.result);
    }
}

static void pump(struct run *r, int wait_ms)
{
    int running;
    curl_multi_poll(r->m, NULL, 0, wait_ms, NULL);
    curl_multi_perform(r->m, &running);
    drain(r);
}

static int prepare(struct run *r)
{
    double deadline = now_ms() + PREP_DEADLINE_MS;
    const struct opts *o = r->o;
    while (r->prepared + r->prep_failed < o->browsers) {
        while (r->active_prep < o->prep_conc && r->next_prep < o->browsers) {
            struct browser *b = &r->bs[r->next_prep++];
            b->url = strdup(o->start);
            if (b->url == NULL || start_prep(r, b) != 0)
                prep_fail(r, b, "out of memory", 0);
        }
        if (now_ms() > deadline) {
            note_error(r, "the preparation took too long", o->start, 0);
            return -1;
        }
        pump(r, 100);
    }
    return r->prep_failed == 0 ? 0 : -1;
}

static bool stall_over(const struct run *r, double now)
{
    const struct opts *o = r->o;
    int n = nsteps(o);
    if (o->stop_after_steps)
        return r->nrss == n + 1;
    return r->steps_sent == n && r->done == r->sent && r->probes_active == 0 &&
           now >= r->t0 + (double)o->stall_ms && (o->fault_url == NULL || r->cleared);
}

/* Milliseconds until the next thing this loop does by the clock, at most 50. */
static int next_wait(const struct run *r, double now)
{
    const struct opts *o = r->o;
    double next = now + 50;
    int n = nsteps(o);
    if (r->nrss <= n) /* a step or the last RSS reading is still to come */
        next = min_d(next, r->t0 + (double)r->steps_sent * (double)o->step_ms);
    if (o->probe != NULL)
        next = min_d(next, r->next_probe);
    if (o->fault_url != NULL && !r->cleared && !r->ctl_active)
        next = min_d(next, min_d(r->clear_at, r->next_ping));
    return next <= now ? 0 : (int)(next - now) + 1;
}

static void stall(struct run *r)
{
    const struct opts *o = r->o;
    double now, steps_ms = (double)nsteps(o) * (double)o->step_ms;
    r->t0 = now_ms();
    r->clear_at = r->t0 + (double)o->stall_ms;
    r->next_probe = r->t0;
    r->cleared_ms = -1;
    r->next_ping = r->t0 + CTL_PING_MS;
    r->hard_end = r->t0 + max_d(steps_ms + (double)o->give_up_ms, (double)o->stall_ms) + 10000;
    for (;;) {
        now = now_ms();
        if (now >= r->hard_end || stall_over(r, now))
            break;
        send_steps(r, now);
        probes(r, now);
        control(r, now);
        pump(r, next_wait(r, now));
    }
}

/* Transfers still running at the end (the hard end, or --stop-after-steps) are dropped. */
static void drop_rest(struct run *r)
{
    for (int i = 0; r->bs != NULL && i < r->o->browsers; i++) {
        if (r->bs[i].x.h != NULL)
            xfer_done(r, &r->bs[i].x);
    }
    if (r->ctl.h != NULL)
        xfer_done(r, &r->ctl);
    for (int i = 0; i < MAX_LIVE_PROBES; i++) {
        if (r->live[i] != NULL) {
            xfer_done(r, r->live[i]);
            free(r->live[i]);
            r->live[i] = NULL;
        }
    }
}

/* ---- the figures ---- */

static int count(const struct run *r, enum outcome o)
{
    int n = 0;
    for (int i = 0; i < r->o->browsers; i++)
        n += r->bs[i].outcome == o;
    return n;
}

static void report_statuses(const struct run *r)
{
    long code[MAX_STATUS];
    int n[MAX_STATUS], k = 0;
    for (int i = 0; i < r->o->browsers; i++) {
        const struct browser *b = &r->bs[i];
        int j = 0;
        if (b->outcome != O_ANSWERED)
            continue;
        while (j < k && code[j] != b->status)
            j++;
        if (j == k && k < MAX_STATUS) {
            code[k] = b->status;
            n[k++] = 0;
        }
        if (j < k)
            n[j]++;
    }
    printf("statuses");
    for (int j = 0; j < k; j++)
        printf(" %ld:%d", code[j], n[j]);
    printf("\n");
}

/* The error= codes the answers redirected to, each with its count ("-" for none). */
static void report_errors(const struct run *r)
{
    const char *code[MAX_STATUS];
    int n[MAX_STATUS], k = 0, errors = 0;
    for (int i = 0; i < r->o->browsers; i++) {
        const struct browser *b = &r->bs[i];
        int j = 0;
        if (b->outcome != O_ANSWERED || b->error[0] == '\0')
            continue;
        errors++;
        while (j < k && strcmp(code[j], b->error) != 0)
            j++;
        if (j == k && k < MAX_STATUS) {
            code[k] = b->error;
            n[k++] = 0;
        }
        if (j < k)
            n[j]++;
    }
    printf("error_redirects %d\nerror_codes", errors);
    for (int j = 0; j < k; j++)
        printf(" %s:%d", code[j], n[j]);
    printf("%s\n", k == 0 ? " -" : "");
}

/* Answers per whole second of waiting: "5:64" is 64 answers after 5 s and before 6 s. */
static void report_waits(const struct run *r, double *v)
{
    int n = 0, in_time = 0, hist[HIST_BUCKETS] = {0};
    double fail_max = 0;
    for (int i = 0; i < r->o->browsers; i++) {
        const struct browser *b = &r->bs[i];
        if (b->outcome == O_ANSWERED) {
            int s = (int)(b->wait_ms / 1000);
            v[n++] = b->wait_ms;
            in_time += b->wait_ms <= (double)r->o->deadline_ms;
            hist[s < HIST_BUCKETS ? s : HIST_BUCKETS - 1]++;
        } else if (b->outcome != O_NONE) {
            fail_max = max_d(fail_max, b->wait_ms);
        }
    }
    bench_sort(v, n);
    printf("answered_in_time %d\nwait_p50_ms %.1f\nwait_p90_ms %.1f\nwait_max_ms %.1f\n", in_time,
           bench_pct(v, n, 0.5), bench_pct(v, n, 0.9), n > 0 ? v[n - 1] : 0.0);
    printf("failure_max_ms %.1f\nwait_histogram_s", fail_max);
    for (int s = 0; s < HIST_BUCKETS; s++) {
        if (hist[s] > 0)
            printf(" %d:%d", s, hist[s]);
    }
    printf("\n");
}

static void report(struct run *r, double prep_s, double *scratch)
{
    int unfinished = r->o->browsers - r->done, ok = 0;
    for (int i = 0; i < r->o->browsers; i++)
        ok += r->bs[i].success;
    printf("browsers %d\nprepared %d\nprep_seconds %.1f\nsent %d\n", r->o->browsers, r->prepared,
           prep_s, r->sent);
    printf("answered %d\nsuccess_cookie %d\nreset %d\nrefused %d\ngave_up %d\nother_errors %d\n",
           count(r, O_ANSWERED), ok, count(r, O_RESET), count(r, O_REFUSED), count(r, O_GAVE_UP),
           count(r, O_OTHER));
    printf("unfinished %d\n", unfinished);
    report_statuses(r);
    report_errors(r);
    report_waits(r, scratch);
    bench_sort(r->probe_ms, r->probes_done);
    printf("probes %d\nprobes_in_time %d\nprobes_late_or_failed %d\nprobe_p50_ms %.1f\n"
           "probe_max_ms %.1f\n",
           r->probes_done, r->probes_in_time, r->probes_late,
           bench_pct(r->probe_ms, r->probes_done, 0.5),
           r->probes_done > 0 ? r->probe_ms[r->probes_done - 1] : 0.0);
    printf("fault_cleared_ms %.0f\nfault_control_connections %ld\nstall_seconds %.1f\n",
           r->cleared_ms, r->ctl_connects, (now_ms() - r->t0) / 1e3);
    for (int i = 0; i < r->nrss && r->o->rss_pid > 0; i++)
        printf("rss_kb_inflight_%d %ld\n", r->rss_inflight[i], r->rss_kb[i]);
    if (r->first_error[0] != '\0')
        printf("first_error %s\n", r->first_error);
}

/* ---- setup ---- */

static void usage(void)
{
    fprintf(
        stderr,
        "Usage: bench_stall --start URL --front ORIGIN --tenant ORIGIN --hop-path PATH\n"
        "         [--cacert FILE] [--resolve HOST:PORT:ADDR]... [--browsers N]\n"
        "         [--prep-concurrency P] [--fault-url URL --fault-set JSON --fault-clear JSON]\n"
        "         [--stall-ms MS] [--probe URL] [--probe-every-ms MS] [--probe-within-ms MS]\n"
        "         [--give-up-ms MS] [--deadline-ms MS] [--step N] [--step-ms MS]\n"
        "         [--rss-pid PID] [--stop-after-steps] [--success-cookie NAME]\n");
}

/* A whole decimal number in [lo, hi], else -1 (every bound here is positive). */
static long number(const char *v, long lo, long hi)
{
    char *end;
    long n = strtol(v, &end, 10);
    return *v != '\0' && *end == '\0' && n >= lo && n <= hi ? n : -1;
}

static int parse_number(const char *k, const char *v, struct opts *o)
{
    static const struct {
        const char *name;
        size_t off;
        long lo, hi;
        bool is_int;
    } nums[] = {
        {"--browsers", offsetof(struct opts, browsers), 1, MAX_BROWSERS, true},
        {"--prep-concurrency", offsetof(struct opts, prep_conc), 1, 256, true},
        {"--step", offsetof(struct opts, step), 1, MAX_BROWSERS, true},
        {"--rss-pid", offsetof(struct opts, rss_pid), 1, 1 << 30, true},
        {"--stall-ms", offsetof(struct opts, stall_ms), 0, 600000, false},
        {"--probe-every-ms", offsetof(struct opts, probe_every_ms), 10, 60000, false},
        {"--probe-within-ms", offsetof(struct opts, probe_within_ms), 1, 60000, false},
        {"--give-up-ms", offsetof(struct opts, give_up_ms), 100, 600000, false},
        {"--deadline-ms", offsetof(struct opts, deadline_ms), 1, 600000, false},
        {"--step-ms", offsetof(struct opts, step_ms), 1, 60000, false},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        long n;
        if (strcmp(k, nums[i].name) != 0)
            continue;
        n = number(v, nums[i].lo, nums[i].hi);
        if (n < 0)
            return -1;
        if (nums[i].is_int)
            *(int *)(void *)((char *)o + nums[i].off) = (int)n;
        else
            *(long *)(void *)((char *)o + nums[i].off) = n;
        return 0;
    }
    return -1;
}

static int parse_string(const char *k, const char *v, struct opts *o)
{
    static const struct {
        const char *name;
        size_t off;
    } strs[] = {
        {"--start", offsetof(struct opts, start)},
        {"--front", offsetof(struct opts, front)},
        {"--tenant", offsetof(struct opts, tenant)},
        {"--hop-path", offsetof(struct opts, hop_path)},
        {"--cacert", offsetof(struct opts, cacert)},
        {"--fault-url", offsetof(struct opts, fault_url)},
        {"--fault-set", offsetof(struct opts, fault_set)},
        {"--fault-clear", offsetof(struct opts, fault_clear)},
        {"--probe", offsetof(struct opts, probe)},
        {"--success-cookie", offsetof(struct opts, success_cookie)},
    };
    if (strcmp(k, "--resolve") == 0) {
        if (o->nresolve >= MAX_RESOLVE)
            return -1;
        o->resolve[o->nresolve++] = v;
        return 0;
    }
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (strcmp(k, strs[i].name) == 0) {
            *(const char **)(void *)((char *)o + strs[i].off) = v;
            return 0;
        }
    }
    return parse_number(k, v, o);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    o->browsers = 1000;
    o->prep_conc = 32;
    o->stall_ms = 30000;
    o->probe_every_ms = 200;
    o->probe_within_ms = 1000;
    o->give_up_ms = 60000;
    o->deadline_ms = 7000;
    o->step_ms = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stop-after-steps") == 0)
            o->stop_after_steps = true;
        else if (i + 1 >= argc || parse_string(argv[i], argv[i + 1], o) != 0)
            return -1;
        else
            i++;
    }
    if (o->step == 0)
        o->step = o->browsers;
    if (o->start == NULL || o->front == NULL || o->tenant == NULL || o->hop_path == NULL)
        return -1;
    if (o->fault_url != NULL && (o->fault_set == NULL || o->fault_clear == NULL))
        return -1;
    return nsteps(o) <= MAX_STEPS ? 0 : -1;
}

/* Room for every browser's connection, the preparation's and the probes'. */
static int raise_nofile(int browsers)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)browsers + 512;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur >= want)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        fprintf(stderr, "bench_stall: the open-file limit (%lu) is below %lu\n",
                (unsigned long)rl.rlim_max, (unsigned long)want);
        return -1;
    }
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

static int run_init(struct run *r, const struct opts *o)
{
    r->m = curl_multi_init();
    r->share = curl_share_init();
    r->bs = calloc((size_t)o->browsers, sizeof(*r->bs));
    if (r->m == NULL || r->share == NULL || r->bs == NULL)
        return -1;
    curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    for (int i = 0; i < o->nresolve; i++)
        r->resolve = curl_slist_append(r->resolve, o->resolve[i]);
    /* curl counts connections in use against this cap and closes the oldest idle one when it
     * is passed: that would be the fault control's, the only one ever kept. */
    curl_multi_setopt(r->m, CURLMOPT_MAXCONNECTS,
                      (long)o->browsers + o->prep_conc + MAX_LIVE_PROBES + 16);
    return ctl_init(r);
}

static void run_cleanup(struct run *r)
{
    drop_rest(r);
    for (int i = 0; r->bs != NULL && i < r->o->browsers; i++)
        browser_cleanup(&r->bs[i]);
    free(r->bs);
    curl_multi_cleanup(r->m);
    curl_share_cleanup(r->share);
    curl_slist_free_all(r->resolve);
    curl_slist_free_all(json_header());
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct run r;
    double t, *scratch = NULL;
    int rc = 1;

    if (parse_args(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    if (raise_nofile(o.browsers) != 0 || curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
        return 1;
    memset(&r, 0, sizeof(r));
    r.o = &o;
    scratch = calloc((size_t)o.browsers, sizeof(double));
    if (scratch == NULL || run_init(&r, &o) != 0)
        goto out;
    t = now_ms();
    if (prepare(&r) != 0 || set_fault(&r) != 0) {
        fprintf(stderr, "bench_stall: %d of %d browsers prepared: %s\n", r.prepared, o.browsers,
                r.first_error);
        goto out;
    }
    t = (now_ms() - t) / 1e3;
    stall(&r);
    report(&r, t, scratch);
    rc = 0;
out:
    run_cleanup(&r);
    free(scratch);
    curl_global_cleanup();
    return rc;
}
