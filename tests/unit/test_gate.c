/* GET /v1/authorization, the gate, through the router as the server drives it: the I/O
 * thread's answer from the cache (ha_router_answer), then on a miss the asynchronous call to
 * Houston (ha_router_begin) over a deferred fake transport that keeps each call, with the
 * exact header lines it was given, until the test answers it. Asserts what nginx would
 * receive (status, the three relayed headers), what Houston would receive (only its cookie,
 * Authorization, X-Original-URL and X-Original-Method), and how many calls were made. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "houston_auth/app.h"
#include "houston_auth/authz_cache.h"
#include "houston_auth/b64url.h"
#include "houston_auth/config.h"
#include "houston_auth/cookie.h"
#include "houston_auth/handlers.h"
#include "houston_auth/proto.h"
#include "houston_auth/router.h"

#define AUTHZ_URL "http://127.0.0.1:8871/v1/authorization"
#define COOKIE "astronomer_astro_example_com_auth"
#define GRAFANA "https://grafana.astro.example.com/d/abc?orgId=1"
#define AIRFLOW "https://rel1-airflow.astro.example.com/admin/dags"
#define MAX_PENDING 8
#define MAX_LINES 8
#define NOW 1800000000L

struct pending {
    char *method, *url;
    char *lines[MAX_LINES];
    size_t nlines;
    const char *const *capture;
    const char *queue;
    ha_http_done_fn done;
    void *ctx;
};

/* One gate request as the server would make it, and what its reply saw. */
struct req {
    char cookie_header[512];
    struct ha_request r;
    struct ha_response resp;
    int replies;
};

static struct {
    struct ha_app app;
    struct pending q[MAX_PENDING];
    size_t n;
    int calls;
    long now;
    struct req reqs[4];
} W;

static long fake_now(void *ctx)
{
    (void)ctx;
    return W.now;
}

static void fake_start(void *impl, const struct ha_http_request *req, ha_http_done_fn done,
                       void *ctx)
{
    struct pending *p;
    (void)impl;
    W.calls++;
    assert_true(W.n < MAX_PENDING);
    p = &W.q[W.n++];
    memset(p, 0, sizeof(*p));
    p->method = strdup(req->method);
    p->url = strdup(req->url);
    for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
        assert_true(i < MAX_LINES);
        p->lines[p->nlines++] = strdup(req->headers[i]);
    }
    p->capture = req->capture;
    p->queue = req->queue;
    p->done = done;
    p->ctx = ctx;
}

static void pending_free(struct pending *p)
{
    free(p->method);
    free(p->url);
    for (size_t i = 0; i < p->nlines; i++)
        free(p->lines[i]);
}

/* Answers pending call i with err, or (HA_OK) status and the three captured values. */
static void answer(size_t i, enum ha_err err, long status, const char *authorization,
                   const char *username, const char *email)
{
    struct pending p = W.q[i];
    struct ha_http_response r = {0};
    assert_true(i < W.n);
    memmove(&W.q[i], &W.q[i + 1], (W.n - i - 1) * sizeof(W.q[0]));
    W.n--;
    if (err == HA_OK) {
        r.status = status;
        r.body = strdup("");
        r.captured[0] = authorization != NULL ? strdup(authorization) : NULL;
        r.captured[1] = username != NULL ? strdup(username) : NULL;
        r.captured[2] = email != NULL ? strdup(email) : NULL;
    }
    p.done(p.ctx, err, &r);
    pending_free(&p);
}

static void replied(void *arg)
{
    struct req *q = arg;
    q->replies++;
}

/* Slot k's request: cookie header (NULL: none), Authorization and X-Original-URL (NULL: none). */
static struct req *make(int k, const char *cookie, const char *authorization, const char *url)
{
    struct req *q = &W.reqs[k];
    ha_request_cleanup(&q->r);
    ha_response_cleanup(&q->resp);
    memset(q, 0, sizeof(*q));
    q->r.method = "GET";
    q->r.path = HA_PATH_AUTHZ;
    if (cookie != NULL) {
        snprintf(q->cookie_header, sizeof(q->cookie_header), "%s", cookie);
        assert_int_equal(ha_cookie_parse(cookie, strlen(cookie), &q->r.cookies), HA_OK);
    }
    q->r.authorization = authorization;
    q->r.original_url = url;
    q->r.original_method = "GET";
    return q;
}

/* Runs q as the server does: true when answered at once (from the cache, or refused). */
static bool run(struct req *q)
{
    const struct ha_route *route = ha_router_find(HA_PATH_AUTHZ);
    assert_non_null(route);
    if (ha_router_answer(&W.app, route, &q->r, &q->resp)) {
        q->replies++;
        return true;
    }
    ha_router_begin(&W.app, route, &q->r, &q->resp, replied, q);
    return false;
}

static const char *header(const struct ha_response *r, const char *name)
{
    for (size_t i = 0; i < r->header_count; i++) {
        if (strcmp(r->header_names[i], name) == 0)
            return r->header_values[i];
    }
    return NULL;
}

/* A bearer JWT with exp (unsigned: the gate only reads exp). Caller frees. */
static char *bearer(long exp)
{
    char claims[128], *enc = NULL, *out;
    snprintf(claims, sizeof(claims), "{\"aud\":\"h\",\"exp\":%ld}", exp);
    assert_int_equal(ha_b64url_encode((const unsigned char *)claims, strlen(claims), &enc), HA_OK);
    out = malloc(strlen(enc) + 64);
    sprintf(out, "Bearer eyJhbGciOiJSUzI1NiJ9.%s.c2ln", enc);
    free(enc);
    return out;
}

static int setup(void **state)
{
    char *argv[] = {"houston-auth", NULL};
    char *envp[] = {"GLOBAL_BASE_DOMAIN=astro.example.com",
                    "AUTH0_ENABLED=true",
                    "AUTH0_CLIENT_ID=client-1",
                    "AUTH0_BASE_DOMAIN=tenant.example.com",
                    "AUTH0_CLIENT_SECRET=s3cret",
                    "AUTH_SIDECAR_LOG_LEVEL=error",
                    "AUTH_SIDECAR_COOKIE_SECRET=0123456789abcdef0123456789abcdef",
                    NULL};
    struct ha_config *cfg = NULL;
    enum ha_config_action action;
    char err[256];
    (void)state;
    memset(&W, 0, sizeof(W));
    W.now = NOW;
    assert_int_equal(ha_config_load(1, argv, envp, &cfg, &action, err, sizeof(err)), HA_OK);
    assert_int_equal(ha_app_init(&W.app, cfg), HA_OK);
    W.app.transport = (struct ha_transport){fake_start, NULL};
    W.app.clock.now = fake_now;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    while (W.n > 0)
        answer(0, HA_ERR_IO, 0, NULL, NULL, NULL);
    for (size_t i = 0; i < 4; i++) {
        ha_request_cleanup(&W.reqs[i].r);
        ha_response_cleanup(&W.reqs[i].resp);
    }
    ha_app_cleanup(&W.app);
    return 0;
}

/* Houston gets its cookie (the first pair of that name), Authorization, X-Original-URL and
 * X-Original-Method, nothing else; the answer's status and three headers come back as they
 * were, and the same request is then answered from the cache without a call. */
static void test_forwards_only_what_houston_reads(void **state)
{
    struct req *q = make(0, "other=1; " COOKIE "=tok-A; " COOKIE "=tok-B; ha_txn_x=y",
                         "Bearer api-token", AIRFLOW);
    char *minted = bearer(NOW + 3600);
    (void)state;
    q->r.forwarded_for = strdup("10.0.0.1");
    assert_false(run(q));
    assert_int_equal(W.n, 1);
    assert_string_equal(W.q[0].method, "GET");
    assert_string_equal(W.q[0].url, AUTHZ_URL);
    assert_int_equal(W.q[0].nlines, 4);
    assert_string_equal(W.q[0].lines[0], "Cookie: " COOKIE "=tok-A");
    assert_string_equal(W.q[0].lines[1], "Authorization: Bearer api-token");
    assert_string_equal(W.q[0].lines[2], "X-Original-URL: " AIRFLOW);
    assert_string_equal(W.q[0].lines[3], "X-Original-Method: GET");
    assert_string_equal(W.q[0].capture[0], "Authorization");
    assert_string_equal(W.q[0].capture[1], "username");
    assert_string_equal(W.q[0].capture[2], "email");
    assert_null(W.q[0].capture[3]);
    assert_string_equal(W.q[0].queue, "authz"); /* never behind a login's hand-off */
    assert_int_equal(q->replies, 0);
    answer(0, HA_OK, 200, minted, "A@x.com", "a@x.com");
    assert_int_equal(q->replies, 1);
    assert_int_equal(q->resp.status, 200);
    assert_string_equal(header(&q->resp, "Authorization"), minted);
    assert_string_equal(header(&q->resp, "username"), "A@x.com");
    assert_string_equal(header(&q->resp, "email"), "a@x.com");
    assert_true(q->resp.no_store);

    q = make(1, "other=2; " COOKIE "=tok-A", "Bearer api-token", AIRFLOW "/more?x=1");
    assert_true(run(q));
    assert_int_equal(W.calls, 1);
    assert_int_equal(q->resp.status, 200);
    assert_string_equal(header(&q->resp, "Authorization"), minted);
    assert_int_equal(q->resp.header_count, 3);
    free(minted);
}

/* No cookie, no Authorization: nothing of either is sent; a monitoring 200 without an
 * Authorization answer header relays none; an empty Authorization is not forwarded. */
static void test_absent_headers_stay_absent(void **state)
{
    struct req *q = make(0, NULL, NULL, GRAFANA);
    (void)state;
    q->r.original_method = NULL;
    assert_false(run(q));
    assert_int_equal(W.q[0].nlines, 1);
    assert_string_equal(W.q[0].lines[0], "X-Original-URL: " GRAFANA);
    answer(0, HA_OK, 401, NULL, NULL, NULL);
    assert_int_equal(q->resp.status, 401);
    assert_int_equal(q->resp.header_count, 0);

    q = make(1, COOKIE "=tok", "", GRAFANA);
    assert_false(run(q));
    assert_int_equal(W.q[0].nlines, 3);
    assert_string_equal(W.q[0].lines[0], "Cookie: " COOKIE "=tok");
    assert_string_equal(W.q[0].lines[1], "X-Original-URL: " GRAFANA);
    answer(0, HA_OK, 200, NULL, "a@x.com", "a@x.com");
    assert_int_equal(q->resp.status, 200);
    assert_null(header(&q->resp, "Authorization"));
    assert_string_equal(header(&q->resp, "email"), "a@x.com");
}

/* Without a usable X-Original-URL the answer is 401 at once and Houston is not asked. */
static void test_unusable_original_url_is_401(void **state)
{
    const char *bad[] = {NULL, "", "/relative/path", "grafana.astro.example.com/d",
                         "ftp://grafana.astro.example.com/", "https://", "https:///d/abc",
                         "https://?x", "https://grafana.astro.example.com/a b",
                         /* userinfo: nginx routed on the host before ':', Node reads the one
                          * after '@' */
                         "https://x@grafana.astro.example.com/d/abc",
                         "https://grafana.astro.example.com:1@rel1-airflow.astro.example.com/d",
                         "https://grafana.astro.example.com\\@rel1-airflow.astro.example.com/",
                         "https://grafana.astro.example.com:abc/",
                         "https://grafana.astro.example.com:123456/",
                         "https://grafana.astro.example.com%40x/", "https://[zz]/", "https://[::1/",
                         "https://grafana.astro.example.com/\t"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct req *q = make(0, COOKIE "=tok", NULL, bad[i]);
        assert_true(run(q));
        assert_int_equal(q->resp.status, 401);
        assert_int_equal(q->resp.header_count, 0);
    }
    assert_int_equal(W.calls, 0);
}

/* IPv6 literals and ports are authorities the ingress could route on. */
static void test_usable_authorities(void **state)
{
    const char *good[] = {"https://[::1]/d/abc", "http://127.0.0.1:8080/x",
                          "https://grafana.astro.example.com:443/d", "https://a_b.example/"};
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_false(run(make(0, COOKIE "=tok", NULL, good[i])));
        answer(0, HA_OK, 401, NULL, NULL, NULL);
    }
    assert_int_equal(W.calls, 4);
}

/* The method Houston is told is part of the key: a GET's decision never answers a POST. */
static void test_method_is_in_the_key(void **state)
{
    struct req *q = make(0, COOKIE "=tok", NULL, GRAFANA);
    (void)state;
    assert_false(run(q));
    answer(0, HA_OK, 200, NULL, "u", "e");
    q = make(0, COOKIE "=tok", NULL, GRAFANA);
    q->r.original_method = "POST";
    assert_false(run(q));
    answer(0, HA_OK, 401, NULL, NULL, NULL);
    q = make(0, COOKIE "=tok", NULL, GRAFANA);
    q->r.original_method = NULL;
    assert_false(run(q));
    answer(0, HA_OK, 401, NULL, NULL, NULL);
    q = make(0, COOKIE "=tok", NULL, GRAFANA);
    assert_true(run(q));
    assert_int_equal(q->resp.status, 200);
    q = make(0, COOKIE "=tok", NULL, GRAFANA);
    q->r.original_method = "GETGETGETGETGETGETGETGETGETGETGET"; /* over 32 bytes */
    assert_true(run(q));
    assert_int_equal(q->resp.status, 400);
    assert_int_equal(W.calls, 3);
}

/* Misses waiting on Houston hold connections: past the cap (a quarter of maxConnections) a
 * miss is 503 at once, asks nothing, and the room comes back as answers go out. Hits are
 * answered whatever the cap. */
static void test_waiting_misses_are_capped(void **state)
{
    char cookie[64];
    (void)state;
    W.app.authz_max_waiting = 2;
    assert_false(run(make(0, COOKIE "=hit", NULL, GRAFANA)));
    answer(0, HA_OK, 200, NULL, "u", "e");
    for (int k = 0; k < 3; k++) {
        snprintf(cookie, sizeof(cookie), COOKIE "=m%d", k);
        if (k < 2) {
            assert_false(run(make(k, cookie, NULL, GRAFANA)));
        } else {
            assert_false(run(make(k, cookie, NULL, GRAFANA))); /* suspended, then shed */
            assert_int_equal(W.reqs[k].replies, 1);
            assert_int_equal(W.reqs[k].resp.status, 503);
        }
    }
    assert_int_equal(W.calls, 3);
    assert_true(run(make(3, COOKIE "=hit", NULL, GRAFANA)));
    assert_int_equal(W.reqs[3].resp.status, 200);
    answer(0, HA_OK, 401, NULL, NULL, NULL);
    assert_false(run(make(2, COOKIE "=m2", NULL, GRAFANA)));
    assert_int_equal(W.reqs[2].replies, 0);
    assert_int_equal(W.calls, 4);
    answer(0, HA_OK, 401, NULL, NULL, NULL);
    answer(0, HA_OK, 401, NULL, NULL, NULL);
    assert_int_equal(atomic_load(&W.app.authz_waiting), 0);
}

/* A control character in a value that would go on to Houston is 400 at once. */
static void test_control_characters_are_400(void **state)
{
    struct req *q = make(0,
                         COOKIE "=a\x01"
                                "b",
                         NULL, GRAFANA);
    (void)state;
    assert_true(run(q));
    assert_int_equal(q->resp.status, 400);
    q = make(0, COOKIE "=ab", "Bearer a\x7f", GRAFANA);
    assert_true(run(q));
    assert_int_equal(q->resp.status, 400);
    q = make(0, COOKIE "=ab", NULL, GRAFANA);
    q->r.original_method = "G\x1b"
                           "ET";
    assert_true(run(q));
    assert_int_equal(q->resp.status, 400);
    q = make(0, COOKIE "=ab", "Bearer\ta", GRAFANA);
    assert_false(run(q));
    assert_string_equal(W.q[0].lines[1], "Authorization: Bearer\ta");
    answer(0, HA_OK, 401, NULL, NULL, NULL);
    assert_int_equal(W.calls, 1);
}

/* Which requests share a decision: the same credential and the same scheme, authority and
 * first two path segments (a path-routed deployment's release and component). Anything else
 * asks Houston. */
static void test_scope(void **state)
{
    static const struct {
        const char *first, *then;
        bool shared;
    } cases[] = {
        {GRAFANA, "https://grafana.astro.example.com/d/abc/more/x", true},
        {GRAFANA, "https://grafana.astro.example.com/d/abc", true},
        {GRAFANA, "https://grafana.astro.example.com/d/abc?x=1", true},
        {GRAFANA, "https://grafana.astro.example.com/d/abc#f", true},
        {GRAFANA, "https://grafana.astro.example.com/d/other", false},
        {GRAFANA, "https://grafana.astro.example.com/d", false},
        {GRAFANA, "https://grafana.astro.example.com/d?abc", false},
        {GRAFANA, "https://grafana.astro.example.com/api/abc", false},
        {GRAFANA, "https://grafana.astro.example.com/", false},
        {GRAFANA, "https://grafana.astro.example.com", false},
        {GRAFANA, "http://grafana.astro.example.com/d/abc", false},
        {GRAFANA, "HTTPS://grafana.astro.example.com/d/abc", false},
        {GRAFANA, "https://GRAFANA.astro.example.com/d/abc", false},
        {GRAFANA, "https://grafana.astro.example.com:443/d/abc", false},
        {GRAFANA, "https://kibana.astro.example.com/d/abc", false},
        {GRAFANA, "https://grafana.astro.example.com/d\\abc/x", false},
        {GRAFANA, "https://grafana.astro.example.com/d/abcd", false},
        /* Path-routed deployments: the release and the component are both Houston's to read. */
        {"https://deployments.astro.example.com/rel1/airflow/home",
         "https://deployments.astro.example.com/rel1/airflow/dags/x?y=1", true},
        {"https://deployments.astro.example.com/rel1/airflow/home",
         "https://deployments.astro.example.com/rel1/admin/", false},
        {"https://deployments.astro.example.com/rel1/airflow/home",
         "https://deployments.astro.example.com/rel1/flower/", false},
        {"https://deployments.astro.example.com/rel1/airflow/home",
         "https://deployments.astro.example.com/rel1/", false},
        {"https://deployments.astro.example.com/rel1/airflow/home",
         "https://deployments.astro.example.com/rel2/airflow/home", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct req *q;
        int before;
        /* Each case with its own credential, so no earlier case's entry answers it. */
        char cookie[64];
        snprintf(cookie, sizeof(cookie), COOKIE "=tok-%zu", i);
        q = make(0, cookie, NULL, cases[i].first);
        assert_false(run(q));
        answer(0, HA_OK, 200, NULL, "a", "a");
        before = W.calls;
        q = make(1, cookie, NULL, cases[i].then);
        if (cases[i].shared) {
            if (!run(q))
                fail_msg("%s then %s: not shared", cases[i].first, cases[i].then);
            assert_int_equal(q->resp.status, 200);
        } else {
            if (run(q))
                fail_msg("%s then %s: shared", cases[i].first, cases[i].then);
            assert_int_equal(W.calls, before + 1);
            answer(0, HA_OK, 401, NULL, NULL, NULL);
        }
    }
}

/* Another credential is another key: a changed, truncated, extended, empty or absent cookie,
 * an added Authorization, and another person's cookie never get A's decision. */
static void test_other_credentials_never_share(void **state)
{
    const char *cookies[] = {COOKIE "=tok-Ax", COOKIE "=tok-",  COOKIE "=tok-AA",    COOKIE "=",
                             "other=tok-A",    COOKIE "=tok-B", COOKIE "=\"tok-A\"x"};
    struct req *q = make(0, COOKIE "=tok-A", NULL, GRAFANA);
    (void)state;
    assert_false(run(q));
    answer(0, HA_OK, 200, NULL, "a", "a");
    for (size_t i = 0; i < sizeof(cookies) / sizeof(cookies[0]); i++) {
        q = make(1, cookies[i], NULL, GRAFANA);
        assert_false(run(q));
        answer(0, HA_OK, 401, NULL, NULL, NULL);
        assert_int_equal(q->resp.status, 401);
    }
    q = make(1, COOKIE "=tok-A", "Bearer tok-B", GRAFANA);
    assert_false(run(q));
    answer(0, HA_OK, 401, NULL, NULL, NULL);
    /* Quotes are cookie syntax: "tok-A" is the value tok-A, as Houston's cookie-parser reads. */
    q = make(1, COOKIE "=\"tok-A\"", NULL, GRAFANA);
    assert_true(run(q));
    assert_int_equal(q->resp.status, 200);
    assert_int_equal(W.calls, 1 + 7 + 1);
}

/* Misses of one key that arrive while its call is out wait for it: one call, every reply. */
static void test_concurrent_misses_share_one_call(void **state)
{
    (void)state;
    for (int k = 0; k < 4; k++)
        assert_false(run(make(k, COOKIE "=tok", NULL, GRAFANA)));
    assert_int_equal(W.calls, 1);
    for (int k = 0; k < 4; k++)
        assert_int_equal(W.reqs[k].replies, 0);
    answer(0, HA_OK, 200, NULL, "u", "e");
    for (int k = 0; k < 4; k++) {
        assert_int_equal(W.reqs[k].replies, 1);
        assert_int_equal(W.reqs[k].resp.status, 200);
        assert_string_equal(header(&W.reqs[k].resp, "username"), "u");
    }
}

/* A miss for the standard request (slot 0), its call answered with err (HA_OK: status and no
 * relayed header): the status nginx got. */
static int miss_answered(enum ha_err err, long status)
{
    assert_false(run(make(0, COOKIE "=tok", NULL, GRAFANA)));
    answer(0, err, status, NULL, NULL, NULL);
    return W.reqs[0].resp.status;
}

/* A failed call is 503 for every request waiting on it and is not kept; Houston's own 5xx
 * is relayed and not kept either. */
static void test_failures_are_not_kept(void **state)
{
    (void)state;
    assert_false(run(make(0, COOKIE "=tok", NULL, GRAFANA)));
    assert_false(run(make(1, COOKIE "=tok", NULL, GRAFANA)));
    answer(0, HA_ERR_TIMEOUT, 0, NULL, NULL, NULL);
    assert_int_equal(W.reqs[0].resp.status, 503);
    assert_int_equal(W.reqs[1].resp.status, 503);
    assert_int_equal(W.reqs[1].replies, 1);

    assert_int_equal(miss_answered(HA_ERR_IO, 0), 503);

    assert_int_equal(miss_answered(HA_OK, 500), 500);
    assert_int_equal(miss_answered(HA_OK, 503), 503);
    assert_false(run(make(0, COOKIE "=tok", NULL, GRAFANA)));
    answer(0, HA_OK, 200, NULL, "u", "e");
    assert_true(run(make(0, COOKIE "=tok", NULL, GRAFANA)));
    assert_int_equal(W.calls, 5);
}

/* An answer the gate cannot pass on faithfully is 502 and not kept: a relayed value with a
 * control character, a relayed header sent twice, a status outside 200..599. */
static void test_unrelayable_answers_are_502(void **state)
{
    struct ha_http_response r = {0};
    struct pending p;
    (void)state;
    assert_false(run(make(0, COOKIE "=tok", NULL, GRAFANA)));
    answer(0, HA_OK, 200, NULL, "u\rSet-Cookie: x=1", "e");
    assert_int_equal(W.reqs[0].resp.status, 502);
    assert_int_equal(W.reqs[0].resp.header_count, 0);

    assert_false(run(make(0, COOKIE "=tok", NULL, GRAFANA)));
    p = W.q[0];
    W.n = 0;
    r.status = 200;
    r.captured[1] = strdup("u");
    r.captured_repeated = true;
    p.done(p.ctx, HA_OK, &r);
    pending_free(&p);
    assert_int_equal(W.reqs[0].resp.status, 502);

    assert_int_equal(miss_answered(HA_OK, 101), 502);
    /* The transport's "over a cap" (a relayed header over 8 KiB): Houston answered, badly. */
    assert_int_equal(miss_answered(HA_ERR_TOO_LARGE, 0), 502);
    assert_false(run(make(0, COOKIE "=tok", NULL, GRAFANA)));
    answer(0, HA_OK, 200, NULL, "u", "e");
    assert_int_equal(W.calls, 5);
}

/* A 200 is never kept past the exp of the JWT it carries, and not at all when that exp
 * cannot be read; a 401 is kept for the deny TTL. */
static void test_minted_token_bounds_the_ttl(void **state)
{
    char *expired = bearer(NOW - 1), *fresh = bearer(NOW + 3600);
    (void)state;
    assert_false(run(make(0, COOKIE "=a", NULL, AIRFLOW)));
    answer(0, HA_OK, 200, expired, "u", "e");
    assert_int_equal(W.reqs[0].resp.status, 200);
    assert_string_equal(header(&W.reqs[0].resp, "Authorization"), expired);
    assert_false(run(make(0, COOKIE "=a", NULL, AIRFLOW)));
    answer(0, HA_OK, 200, "Bearer not-a-jwt", "u", "e");
    assert_false(run(make(0, COOKIE "=a", NULL, AIRFLOW)));
    answer(0, HA_OK, 200, "Basic dTpw", "u", "e");
    assert_false(run(make(0, COOKIE "=a", NULL, AIRFLOW)));
    answer(0, HA_OK, 200, fresh, "u", "e");
    assert_true(run(make(0, COOKIE "=a", NULL, AIRFLOW)));
    assert_string_equal(header(&W.reqs[0].resp, "Authorization"), fresh);
    assert_int_equal(W.calls, 4);

    assert_false(run(make(0, COOKIE "=b", NULL, AIRFLOW)));
    answer(0, HA_OK, 403, NULL, NULL, NULL);
    assert_true(run(make(0, COOKIE "=b", NULL, AIRFLOW)));
    assert_int_equal(W.reqs[0].resp.status, 403);
    free(expired);
    free(fresh);
}

/* Logout forgets the browser's decisions, every scope of them, and only them. */
static void test_logout_forgets_the_cookie(void **state)
{
    (void)state;
    assert_false(run(make(0, COOKIE "=a", NULL, GRAFANA)));
    answer(0, HA_OK, 200, NULL, "u", "e");
    assert_false(run(make(0, COOKIE "=a", NULL, AIRFLOW)));
    answer(0, HA_OK, 200, NULL, "u", "e");
    assert_false(run(make(0, COOKIE "=b", NULL, GRAFANA)));
    answer(0, HA_OK, 200, NULL, "v", "f");
    ha_authz_forget_cookie(&W.app, "a");
    assert_false(run(make(0, COOKIE "=a", NULL, GRAFANA)));
    answer(0, HA_OK, 401, NULL, NULL, NULL);
    assert_int_equal(W.reqs[0].resp.status, 401);
    assert_false(run(make(0, COOKIE "=a", NULL, AIRFLOW)));
    answer(0, HA_OK, 401, NULL, NULL, NULL);
    assert_true(run(make(0, COOKIE "=b", NULL, GRAFANA)));
    assert_int_equal(W.reqs[0].resp.status, 200);
    /* An empty Authorization is no Authorization, for Houston and for the key: logout
     * forgets a decision made with one. */
    assert_false(run(make(0, COOKIE "=d", "", GRAFANA)));
    answer(0, HA_OK, 200, NULL, "u", "e");
    assert_true(run(make(0, COOKIE "=d", NULL, GRAFANA)));
    ha_authz_forget_cookie(&W.app, "d");
    assert_false(run(make(0, COOKIE "=d", "", GRAFANA)));
    answer(0, HA_OK, 401, NULL, NULL, NULL);
    /* A cookie with an Authorization beside it is another credential: logout (which sends
     * none) does not name it, and a call in flight when logout comes is not kept. */
    assert_false(run(make(1, COOKIE "=c", NULL, GRAFANA)));
    ha_authz_forget_cookie(&W.app, "c");
    answer(0, HA_OK, 200, NULL, "u", "e");
    assert_int_equal(W.reqs[1].resp.status, 200);
    assert_false(run(make(1, COOKIE "=c", NULL, GRAFANA)));
    answer(0, HA_OK, 200, NULL, "u", "e");
}

/* HEAD is answered as GET (the gate's answer is its status and headers); other methods are
 * refused. */
static void test_methods(void **state)
{
    const struct ha_route *route = ha_router_find(HA_PATH_AUTHZ);
    (void)state;
    assert_true(ha_router_method_ok(route, "GET"));
    assert_true(ha_router_method_ok(route, "HEAD"));
    assert_false(ha_router_method_ok(route, "POST"));
    assert_false(ha_router_method_ok(route, "PUT"));
    assert_false(ha_router_method_ok(ha_router_find(HA_PATH_REDIRECT), "HEAD"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_forwards_only_what_houston_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_headers_stay_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_original_url_is_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_misses_are_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_characters_are_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usable_authorities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_is_in_the_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_credentials_never_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_misses_share_one_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_are_not_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unrelayable_answers_are_502, setup, teardown),
        cmocka_unit_test_setup_teardown(test_minted_token_bounds_the_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout_forgets_the_cookie, setup, teardown),
        cmocka_unit_test_setup_teardown(test_methods, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
