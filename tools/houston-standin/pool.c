/* How fast Houston decides, and how often it was asked.
 *
 * Houston is one Node.js process whose authorization decisions each wait on its database
 * (Prisma, a pool of 10 connections). The model: at most `size` decisions at a time, each
 * holding its slot for latency_ms; the rest wait until a slot frees (a condition variable,
 * so not strictly first come, first served; each waits on its connection's own thread, which
 * the thread-per-connection peer server allows). Both are set by --authz-pool / --authz-latency-ms
 * and by POST /__test/authz.
 *
 * Counters: every call on arrival (total, and per (credential hash, host, release) up to
 * STANDIN_MAX_CALL_KEYS keys), every answer by status, and the most calls ever in the pool
 * and waiting for it. With --test-controls, also what each of the last
 * STANDIN_MAX_HEADER_RECORDS calls carried: its header names and its cookie names, never a
 * value (values are credentials), so a test can see exactly what the sidecar's gate forwards.
 *
 * Test controls (--test-controls):
 *   GET  /__test/authz        {latency_ms, pool, calls, by_status, in_flight, queued,
 *                             max_in_flight, max_queued, keys, keys_dropped}
 *   POST /__test/authz        {latency_ms?, pool?, clear_counters?}: applied, then as GET.
 *   GET  /__test/authz/calls  [{credential, host, release, count}], credential being the
 *                             SHA-256 hex of what Houston read (null: none).
 *   GET  /__test/authz/headers
 *                             [{headers, cookies, truncated}], oldest first: each call's header
 *                             names (lower-cased, in the order received, repeats kept) and the
 *                             names of the pairs in its Cookie headers (as sent; a piece without
 *                             '=' is all value, so its name is ""); bytes outside printable ASCII
 *                             as %XX; truncated when a list passed STANDIN_MAX_NAMES or a name
 *                             STANDIN_MAX_NAME bytes. Cleared with the counters. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "standin.h"

#define WAIT_SLICE_MS 20
#define COOKIE_HEADER "Cookie"
#define HEX "0123456789ABCDEF"

/* One call's names, as they are collected. */
struct names {
    json_t *headers, *cookies;
    bool truncated;
};

enum ha_err standin_pool_init(struct standin *s)
{
    struct standin_pool *p = &s->pool;
    pthread_condattr_t attr;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->freed, &attr);
    pthread_condattr_destroy(&attr);
    p->size = STANDIN_DEFAULT_POOL;
    p->by_status = json_object();
    p->by_key = json_object();
    p->headers = json_array();
    return p->by_status != NULL && p->by_key != NULL && p->headers != NULL ? HA_OK : HA_ERR_NOMEM;
}

void standin_pool_cleanup(struct standin *s)
{
    struct standin_pool *p = &s->pool;
    json_decref(p->by_status);
    json_decref(p->by_key);
    json_decref(p->headers);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->lock);
}

static void clear_counters(struct standin_pool *p)
{
    p->calls = 0;
    p->keys_dropped = 0;
    p->max_in_flight = p->in_flight;
    p->max_queued = p->queued;
    json_object_clear(p->by_status);
    json_object_clear(p->by_key);
    json_array_clear(p->headers);
}

void standin_pool_reset(struct standin *s)
{
    struct standin_pool *p = &s->pool;
    pthread_mutex_lock(&p->lock);
    p->latency_ms = s->cfg.authz_latency_ms;
    p->size = s->cfg.authz_pool;
    clear_counters(p);
    pthread_cond_broadcast(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

void standin_pool_count(struct standin *s, const char *credential, const char *host,
                        const char *release)
{
    struct standin_pool *p = &s->pool;
    char key[512];
    json_t *rec;
    snprintf(key, sizeof(key), "%s|%s|%s", credential != NULL ? credential : "-",
             host != NULL ? host : "-", release != NULL ? release : "-");
    pthread_mutex_lock(&p->lock);
    p->calls++;
    rec = json_object_get(p->by_key, key);
    if (rec != NULL) {
        json_object_set_new(rec, "count",
                            json_integer(json_integer_value(json_object_get(rec, "count")) + 1));
    } else if (json_object_size(p->by_key) < STANDIN_MAX_CALL_KEYS) {
        json_object_set_new(p->by_key, key,
                            json_pack("{s:s?, s:s?, s:s?, s:i}", "credential", credential, "host",
                                      host, "release", release, "count", 1));
    } else {
        p->keys_dropped++;
    }
    pthread_mutex_unlock(&p->lock);
}

/* Appends name[0..n) to list: ASCII lower-cased when lower, bytes outside printable ASCII as
 * %XX (a record is valid JSON), cut at STANDIN_MAX_NAME bytes, at most STANDIN_MAX_NAMES. */
static void add_name(struct names *nm, json_t *list, const char *name, size_t n, bool lower)
{
    char out[STANDIN_MAX_NAME + 1];
    size_t o = 0;

    if (json_array_size(list) >= STANDIN_MAX_NAMES) {
        nm->truncated = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        bool plain = c > 0x20 && c < 0x7f;
        if (o + (plain ? 1 : 3) > STANDIN_MAX_NAME) {
            nm->truncated = true;
            break;
        }
        if (plain) {
            if (lower && c >= 'A' && c <= 'Z')
                c = (unsigned char)(c - 'A' + 'a');
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = HEX[c >> 4];
            out[o++] = HEX[c & 15];
        }
    }
    out[o] = '\0';
    json_array_append_new(list, json_string(out));
}

/* Trims spaces and tabs from both ends of [*p, *p + *n). */
static void trim(const char **p, size_t *n)
{
    while (*n > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

/* The names of the pairs in one Cookie header, split on ';' and trimmed, each the part before
 * its first '='. Blank pieces are skipped. A piece without '=' is all value (RFC 6265bis reads
 * a Set-Cookie without one so), and a value is never kept: its name shows as "". Not
 * cookie.c's parser on purpose: that one drops such pieces, and here they must show. */
static void add_cookie_names(struct names *nm, const char *header)
{
    const char *p = header, *piece, *eq;
    size_t n, k;

    while (*p != '\0') {
        n = strcspn(p, ";");
        piece = p;
        p += n;
        if (*p == ';')
            p++;
        trim(&piece, &n);
        if (n == 0)
            continue;
        eq = memchr(piece, '=', n);
        k = eq != NULL ? (size_t)(eq - piece) : 0;
        trim(&piece, &k);
        add_name(nm, nm->cookies, piece, k, false);
    }
}

static bool note_header(void *arg, const char *name, const char *value)
{
    struct names *nm = arg;
    add_name(nm, nm->headers, name, strlen(name), true);
    if (strcasecmp(name, COOKIE_HEADER) == 0)
        add_cookie_names(nm, value);
    return true;
}

void standin_pool_note_headers(struct standin *s, const struct peer_request *req)
{
    struct standin_pool *p = &s->pool;
    struct names nm = {NULL, NULL, false};
    json_t *rec;

    if (!s->cfg.test_controls)
        return;
    nm.headers = json_array();
    nm.cookies = json_array();
    if (nm.headers != NULL && nm.cookies != NULL)
        peer_req_foreach_header(req, note_header, &nm);
    /* o? steals both references, also when the pack fails. */
    rec = json_pack("{s:o?, s:o?, s:b}", "headers", nm.headers, "cookies", nm.cookies, "truncated",
                    nm.truncated);
    if (rec == NULL || nm.headers == NULL || nm.cookies == NULL) {
        json_decref(rec);
        return; /* out of memory: the call is not recorded */
    }
    pthread_mutex_lock(&p->lock);
    if (json_array_size(p->headers) >= STANDIN_MAX_HEADER_RECORDS)
        json_array_remove(p->headers, 0);
    json_array_append_new(p->headers, rec);
    pthread_mutex_unlock(&p->lock);
}

static void wait_slice(struct standin_pool *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(&p->freed, &p->lock, &ts); /* a timeout just re-checks */
}

bool standin_pool_enter(struct standin *s)
{
    struct standin_pool *p = &s->pool;
    long latency;
    bool waited = false;

    pthread_mutex_lock(&p->lock);
    while (p->in_flight >= p->size && !atomic_load(&s->stopping)) {
        if (!waited) {
            waited = true;
            p->queued++;
            if (p->queued > p->max_queued)
                p->max_queued = p->queued;
        }
        wait_slice(p);
    }
    if (waited)
        p->queued--;
    if (atomic_load(&s->stopping)) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    p->in_flight++;
    if (p->in_flight > p->max_in_flight)
        p->max_in_flight = p->in_flight;
    latency = p->latency_ms;
    pthread_mutex_unlock(&p->lock);
    peer_sleep_ms(latency, &s->stopping);
    return true;
}

void standin_pool_leave(struct standin *s, bool held, int status)
{
    struct standin_pool *p = &s->pool;
    char key[16];
    snprintf(key, sizeof(key), "%d", status);
    pthread_mutex_lock(&p->lock);
    if (held) {
        p->in_flight--;
        pthread_cond_signal(&p->freed);
    }
    json_object_set_new(p->by_status, key,
                        json_integer(json_integer_value(json_object_get(p->by_status, key)) + 1));
    pthread_mutex_unlock(&p->lock);
}

static json_t *snapshot(struct standin_pool *p)
{
    json_t *j;
    pthread_mutex_lock(&p->lock);
    j = json_pack("{s:I, s:I, s:I, s:O, s:I, s:I, s:I, s:I, s:I, s:I}", "latency_ms",
                  (json_int_t)p->latency_ms, "pool", (json_int_t)p->size, "calls", p->calls,
                  "by_status", p->by_status, "in_flight", (json_int_t)p->in_flight, "queued",
                  (json_int_t)p->queued, "max_in_flight", (json_int_t)p->max_in_flight,
                  "max_queued", (json_int_t)p->max_queued, "keys",
                  (json_int_t)json_object_size(p->by_key), "keys_dropped", p->keys_dropped);
    pthread_mutex_unlock(&p->lock);
    return j;
}

static json_t *calls(struct standin_pool *p)
{
    json_t *all = json_array(), *rec;
    const char *key;
    pthread_mutex_lock(&p->lock);
    json_object_foreach(p->by_key, key, rec)
    {
        json_array_append(all, rec);
    }
    pthread_mutex_unlock(&p->lock);
    return all;
}

static json_t *header_records(struct standin_pool *p)
{
    json_t *copy;
    pthread_mutex_lock(&p->lock);
    copy = json_deep_copy(p->headers);
    pthread_mutex_unlock(&p->lock);
    return copy;
}

static bool in_range(json_t *v, json_int_t lo, json_int_t hi)
{
    return v == NULL ||
           (json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi);
}

static void configure(struct standin *s, const struct peer_request *req, struct peer_response *resp)
{
    struct standin_pool *p = &s->pool;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    json_t *lat = json_object_get(body, "latency_ms"), *size = json_object_get(body, "pool");
    json_t *clear = json_object_get(body, "clear_counters");
    size_t known = (lat != NULL) + (size != NULL) + (clear != NULL);
    bool ok = json_is_object(body) && json_object_size(body) == known &&
              in_range(lat, 0, STANDIN_MAX_LATENCY_MS) && in_range(size, 1, STANDIN_MAX_POOL) &&
              (clear == NULL || json_is_boolean(clear));

    if (!ok) {
        json_decref(body);
        peer_resp_json(resp, 400,
                       json_pack("{s:s}", "error",
                                 "expected {latency_ms (0..60000), pool (1..1000), "
                                 "clear_counters (bool)}"));
        return;
    }
    pthread_mutex_lock(&p->lock);
    if (lat != NULL)
        p->latency_ms = (long)json_integer_value(lat);
    if (size != NULL)
        p->size = (long)json_integer_value(size);
    if (json_is_true(clear))
        clear_counters(p);
    pthread_cond_broadcast(&p->freed);
    pthread_mutex_unlock(&p->lock);
    json_decref(body);
    peer_resp_json(resp, 200, snapshot(p));
}

bool standin_pool_control(struct standin *s, const struct peer_request *req,
                          struct peer_response *resp)
{
    bool post = strcmp(req->method, "POST") == 0;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;

    if (strcmp(req->path, "/__test/authz") == 0 && post)
        configure(s, req, resp);
    else if (strcmp(req->path, "/__test/authz") == 0 && get)
        peer_resp_json(resp, 200, snapshot(&s->pool));
    else if (strcmp(req->path, "/__test/authz/calls") == 0 && get)
        peer_resp_json(resp, 200, calls(&s->pool));
    else if (strcmp(req->path, "/__test/authz/headers") == 0 && get)
        peer_resp_json(resp, 200, header_records(&s->pool));
    else
        return false;
    return true;
}
