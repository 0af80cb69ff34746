/* Integration: a whole login as the browser and Houston see it (every hop, every cookie),
 * logout through the tenant, two tabs logging in at once, and the probes. The sidecar, the
 * dev tenant and the Houston stand-in run as real processes on loopback (harness.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "houston_auth/b64url.h"
#include "houston_auth/transaction.h"
#include "harness.h"

#define EXTRAS_JSON "{\"a\":\"b\"}"
#define EXTRAS_Q "%7B%22a%22%3A%22b%22%7D"
#define INVITE "invite-123"
#define SELF_QUERY                                                                                 \
    "provider=auth0&integration=self&redirect=/oauth&extras=" EXTRAS_Q "&inviteToken=" INVITE
#define GOOGLE_QUERY "provider=auth0&integration=google-oauth2&redirect=/oauth"
#define LOGIN_OK_METRIC "houston_auth_logins_total{result=\"success\",code=\"\"}"
#define STARTS_METRIC "houston_auth_login_starts_total"

static bool is_b64url(const char *s)
{
    return s != NULL && s[0] != '\0' &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789-_") == strlen(s);
}

static void expect_param(const struct ha_kvlist *q, const char *name, const char *want)
{
    const char *v = ha_kvlist_get(q, name);
    if (v == NULL)
        fail_msg("authorize URL lacks %s", name);
    assert_string_equal(v, want);
    assert_int_equal(ha_kvlist_count(q, name), 1);
}

/* The JWT's claims (caller decrefs), or NULL. */
static json_t *jwt_claims(const char *jwt)
{
    const char *dot1 = strchr(jwt, '.'), *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    unsigned char *raw = NULL;
    size_t len = 0;
    json_t *j = NULL;
    if (dot2 == NULL)
        return NULL;
    if (ha_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &raw, &len) == HA_OK)
        j = json_loadb((const char *)raw, len, 0, NULL);
    free(raw);
    return j;
}

/* Checks the tenant authorize URL; copies out state and nonce (44 bytes each). */
static void check_authorize(const struct it_env *e, const char *loc, const char *connection,
                            const char *email, char *state, char *nonce)
{
    char want[512];
    struct ha_kvlist q;
    const char *s, *n, *ch;
    snprintf(want, sizeof(want), "%s/authorize?", e->tenant_url);
    assert_non_null(loc);
    it_expect_prefix(loc, want);
    assert_int_equal(it_url_query(loc, &q), 0);
    expect_param(&q, "response_type", "code");
    expect_param(&q, "client_id", IT_CLIENT_ID);
    snprintf(want, sizeof(want), "%s/v1/oauth/redirect", e->sidecar_url);
    expect_param(&q, "redirect_uri", want);
    expect_param(&q, "scope", "openid profile email");
    expect_param(&q, "audience", IT_AUDIENCE);
    expect_param(&q, "code_challenge_method", "S256");
    expect_param(&q, "login_hint", email);
    s = ha_kvlist_get(&q, "state");
    n = ha_kvlist_get(&q, "nonce");
    ch = ha_kvlist_get(&q, "code_challenge");
    assert_true(is_b64url(s) && strlen(s) >= 43 && strlen(s) <= 64);
    assert_true(is_b64url(n) && strlen(n) >= 43 && strlen(n) <= 64);
    assert_true(is_b64url(ch) && strlen(ch) == 43);
    assert_string_not_equal(s, n);
    assert_int_equal(ha_kvlist_count(&q, "state"), 1);
    assert_int_equal(ha_kvlist_count(&q, "nonce"), 1);
    if (connection == NULL)
        assert_int_equal(ha_kvlist_count(&q, "connection"), 0);
    else
        expect_param(&q, "connection", connection);
    snprintf(state, 65, "%s", s);
    snprintf(nonce, 65, "%s", n);
    ha_kvlist_cleanup(&q);
}

static void expect_attr(const char *line, const char *attr, const char *want)
{
    char *v = NULL;
    if (!it_set_cookie_attr(line, attr, &v))
        fail_msg("Set-Cookie lacks %s: %s", attr, line);
    if (want != NULL && strcasecmp(v, want) != 0)
        fail_msg("Set-Cookie %s=%s, want %s", attr, v, want);
    free(v);
}

/* The start's transaction cookie: attributes on the wire and in the jar. */
static void check_txn_cookie(struct it_client *c, const struct it_resp *start, const char *state)
{
    char name[64], *v = NULL;
    const char *line;
    struct it_cookie ck;
    ha_txn_cookie_name(state, name);
    assert_int_equal(it_resp_set_cookie_count(start, IT_TXN_PREFIX), 1);
    line = it_resp_set_cookie(start, IT_TXN_PREFIX, 0);
    it_expect_prefix(line, name);
    assert_int_equal(line[strlen(name)], '=');
    expect_attr(line, "HttpOnly", NULL);
    expect_attr(line, "Secure", NULL);
    expect_attr(line, "SameSite", "Lax");
    expect_attr(line, "Path", "/");
    assert_false(it_set_cookie_attr(line, "Domain", &v));
    assert_true(it_set_cookie_attr(line, "Max-Age", &v));
    assert_true(atol(v) > 0 && atol(v) <= 600);
    free(v);
    assert_true(it_cookie_get(c, name, false, &ck));
    assert_true(ck.httponly);
    assert_true(ck.secure);
    assert_false(ck.tailmatch);
    assert_string_equal(ck.path, "/");
    assert_string_equal(ck.domain, IT_SIDECAR_HOST);
    assert_true(strlen(ck.value) > 0);
    it_cookie_cleanup(&ck);
}

static void check_no_store(const struct it_resp *r)
{
    const char *cc = it_resp_header(r, "Cache-Control");
    assert_non_null(cc);
    assert_non_null(strstr(cc, "no-store"));
}

/* What Houston received in its last callback. */
static void check_houston_form(const struct it_env *e, json_t *cb, const char *integration,
                               bool full, const char *nonce, const char *email)
{
    const char *expires = it_received_field(cb, "expires_in");
    const char *state = it_received_field(cb, "state");
    json_t *st, *claims;
    char origin[256];
    assert_non_null(it_received_field(cb, "id_token"));
    assert_non_null(it_received_field(cb, "access_token"));
    assert_string_equal(it_received_field(cb, "token_type"), "Bearer");
    assert_non_null(expires);
    assert_true(atol(expires) > 0);
    assert_non_null(state);
    st = json_loads(state, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(st);
    snprintf(origin, sizeof(origin), "%s/v1/oauth/callback", e->sidecar_url);
    assert_string_equal(json_string_value(json_object_get(st, "provider")), "auth0");
    assert_string_equal(json_string_value(json_object_get(st, "integration")), integration);
    assert_string_equal(json_string_value(json_object_get(st, "origin")), origin);
    assert_string_equal(json_string_value(json_object_get(st, "redirect")), "/oauth");
    if (full) {
        json_t *want = json_loads(EXTRAS_JSON, 0, NULL);
        assert_true(json_equal(json_object_get(st, "extras"), want));
        json_decref(want);
        assert_string_equal(json_string_value(json_object_get(st, "inviteToken")), INVITE);
    } else {
        assert_null(json_object_get(st, "inviteToken"));
    }
    json_decref(st);
    claims = jwt_claims(it_received_field(cb, "id_token"));
    assert_non_null(claims);
    assert_string_equal(json_string_value(json_object_get(claims, "nonce")), nonce);
    assert_string_equal(json_string_value(json_object_get(claims, "email")), email);
    json_decref(claims);
}

/* The final hop: Houston's Location and cookie relayed, the transaction cookie cleared.
 * Returns Houston's session token (caller frees). */
static char *check_final(struct it_client *c, const struct it_resp *r, const char *state, bool full)
{
    struct ha_kvlist q;
    struct it_cookie ck;
    char name[64];
    const char *line, *token;
    char *out;
    assert_int_equal(r->status, 302);
    assert_non_null(r->location);
    it_expect_prefix(r->location, IT_APP_URL "/oauth?");
    assert_int_equal(it_url_query(r->location, &q), 0);
    assert_string_equal(ha_kvlist_get(&q, "strategy"), "auth0");
    token = ha_kvlist_get(&q, "token");
    assert_non_null(token);
    if (full) {
        json_t *got = json_loads(ha_kvlist_get(&q, "extras"), 0, NULL);
        json_t *want = json_loads(EXTRAS_JSON, 0, NULL);
        assert_true(json_equal(got, want));
        json_decref(got);
        json_decref(want);
    }
    line = it_resp_set_cookie(r, IT_AUTH_COOKIE "=", 0);
    assert_non_null(line);
    expect_attr(line, "Domain", "." IT_BASE_DOMAIN);
    expect_attr(line, "Path", "/");
    expect_attr(line, "Secure", NULL);
    assert_true(it_cookie_get(c, IT_AUTH_COOKIE, false, &ck));
    assert_string_equal(ck.value, token);
    assert_string_equal(ck.domain, "." IT_BASE_DOMAIN);
    assert_true(ck.tailmatch);
    assert_true(ck.secure);
    assert_string_equal(ck.path, "/");
    it_cookie_cleanup(&ck);
    ha_txn_cookie_name(state, name);
    line = it_resp_set_cookie(r, name, 0);
    assert_non_null(line);
    expect_attr(line, "Max-Age", "0");
    assert_false(it_cookie_get(c, name, false, &ck));
    check_no_store(r);
    out = strdup(token);
    ha_kvlist_cleanup(&q);
    return out;
}

static void full_login(const char *query, const char *connection, const char *integration,
                       bool full)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_login l;
    char state[65], nonce[65], redirect_prefix[256];
    long before = it_houston_received_count(e);
    json_t *rec;
    char *token;

    char url[1024];

    assert_true(before >= 0);
    memset(&l, 0, sizeof(l));
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=ada%%40example.com", e->sidecar_url,
             query);
    assert_int_equal(it_get(c, url, &l.start), 0);
    assert_int_equal(l.start.status, 302);
    check_no_store(&l.start);
    check_authorize(e, l.start.location, connection, "ada@example.com", state, nonce);
    check_txn_cookie(c, &l.start, state);
    assert_int_equal(it_get(c, l.start.location, &l.authorize), 0);
    /* The tenant answers to the registered redirect_uri with a code and the same state. */
    snprintf(redirect_prefix, sizeof(redirect_prefix), "%s/v1/oauth/redirect?", e->sidecar_url);
    assert_int_equal(l.authorize.status, 302);
    it_expect_prefix(l.authorize.location, redirect_prefix);
    {
        struct ha_kvlist q;
        assert_int_equal(it_url_query(l.authorize.location, &q), 0);
        assert_string_equal(ha_kvlist_get(&q, "state"), state);
        assert_non_null(ha_kvlist_get(&q, "code"));
        ha_kvlist_cleanup(&q);
    }
    assert_int_equal(it_get(c, l.authorize.location, &l.redirect), 0);
    it_note_login(&l);
    /* The login's last answer closes its connection (the browser goes on to the app), and the
     * start's stays open for the redirect back. */
    assert_non_null(it_resp_header(&l.redirect, "Connection"));
    assert_string_equal(it_resp_header(&l.redirect, "Connection"), "close");
    assert_null(it_resp_header(&l.start, "Connection"));
    token = check_final(c, &l.redirect, state, full);
    rec = it_houston_received(e);
    assert_non_null(rec);
    assert_int_equal((long)json_array_size(rec), before + 1);
    {
        json_t *last = json_array_get(rec, json_array_size(rec) - 1);
        /* The browser got exactly what Houston answered. */
        assert_string_equal(json_string_value(json_object_get(last, "location")),
                            l.redirect.location);
        assert_string_equal(json_string_value(json_object_get(last, "set_cookie")),
                            it_resp_set_cookie(&l.redirect, IT_AUTH_COOKIE "=", 0));
        check_houston_form(e, last, integration, full, nonce, "ada@example.com");
    }
    it_note_secret(token);
    json_decref(rec);
    free(token);
    it_login_cleanup(&l);
    it_client_free(c);
}

static void test_login_self(void **state)
{
    (void)state;
    full_login(SELF_QUERY, NULL, "self", true);
}

static void test_login_google_connection(void **state)
{
    (void)state;
    full_login(GOOGLE_QUERY, "google-oauth2", "google-oauth2", false);
}

/* The tenant may answer with response_mode=form_post: the same code and state, POSTed. */
static void test_login_form_post(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp start, auth, fin;
    char url[512];
    const char *q;
    long before = it_houston_received_count(e);
    char *token;
    (void)state;
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=bo%%40example.com", e->sidecar_url,
             SELF_QUERY);
    assert_int_equal(it_get(c, url, &start), 0);
    assert_int_equal(start.status, 302);
    assert_int_equal(it_get(c, start.location, &auth), 0);
    assert_int_equal(auth.status, 302);
    q = strchr(auth.location, '?');
    assert_non_null(q);
    snprintf(url, sizeof(url), "%s/v1/oauth/redirect", e->sidecar_url);
    assert_int_equal(it_request(c, "POST", url, "application/x-www-form-urlencoded", q + 1, &fin),
                     0);
    {
        struct ha_kvlist sq;
        assert_int_equal(it_url_query(auth.location, &sq), 0);
        token = check_final(c, &fin, ha_kvlist_get(&sq, "state"), true);
        ha_kvlist_cleanup(&sq);
    }
    assert_int_equal(it_houston_received_count(e), before + 1);
    free(token);
    it_resp_cleanup(&start);
    it_resp_cleanup(&auth);
    it_resp_cleanup(&fin);
    it_client_free(c);
}

static void test_logout(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_login l;
    struct it_resp out, tenant;
    struct it_cookie ck;
    char url[512], want[512];
    const char *line;
    (void)state;
    assert_int_equal(it_login(c, SELF_QUERY, "cy@example.com", &l), 0);
    assert_int_equal(l.redirect.status, 302);
    assert_true(it_cookie_get(c, IT_AUTH_COOKIE, false, &ck));
    it_cookie_cleanup(&ck);

    snprintf(url, sizeof(url), "%s/logout", e->sidecar_url);
    assert_int_equal(it_get(c, url, &out), 0);
    assert_int_equal(out.status, 302);
    snprintf(want, sizeof(want),
             "%s/v2/logout?client_id=%s&returnTo=https%%3A%%2F%%2Fapp.astro.example.com%%2Flogout",
             e->tenant_url, IT_CLIENT_ID);
    assert_string_equal(out.location, want);
    line = it_resp_set_cookie(&out, IT_AUTH_COOKIE "=", 0);
    assert_non_null(line);
    expect_attr(line, "Domain", "." IT_BASE_DOMAIN);
    expect_attr(line, "Path", "/");
    expect_attr(line, "Max-Age", "0");
    assert_false(it_cookie_get(c, IT_AUTH_COOKIE, false, &ck));
    check_no_store(&out);

    /* The tenant ends its session and returns to the app's /logout. */
    assert_int_equal(it_get(c, out.location, &tenant), 0);
    assert_int_equal(tenant.status, 302);
    assert_string_equal(tenant.location, IT_APP_URL "/logout");
    it_resp_cleanup(&tenant);
    it_resp_cleanup(&out);
    it_login_cleanup(&l);
    it_client_free(c);
}

static void test_logout_return_to_refused(void **state)
{
    static const char *const bad[] = {
        "https%3A%2F%2Fevil.example.net%2F", "%2F%2Fevil.com", "%2F%5Cevil.com",
        "https%3A%2F%2Fapp.astro.example.com.evil.net%2F", "javascript%3Aalert(1)"};
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct it_resp r;
        char url[512];
        snprintf(url, sizeof(url), "%s/logout?returnTo=%s", e->sidecar_url, bad[i]);
        assert_int_equal(it_get(c, url, &r), 0);
        if (r.status != 400)
            fail_msg("returnTo=%s answered %ld", bad[i], r.status);
        assert_null(r.location);
        it_resp_cleanup(&r);
    }
    it_client_free(c);
}

/* Two tabs in one browser: both start, then finish in reverse order. */
static void test_two_tabs(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp sa, sb, aa, ab, fa, fb;
    struct ha_kvlist qa, qb;
    char url[512];
    long before = it_houston_received_count(e);
    (void)state;
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=tab-a%%40example.com",
             e->sidecar_url, SELF_QUERY);
    assert_int_equal(it_get(c, url, &sa), 0);
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=tab-b%%40example.com",
             e->sidecar_url, GOOGLE_QUERY);
    assert_int_equal(it_get(c, url, &sb), 0);
    assert_int_equal(sa.status, 302);
    assert_int_equal(sb.status, 302);
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 2);
    assert_int_equal(it_get(c, sa.location, &aa), 0);
    assert_int_equal(it_get(c, sb.location, &ab), 0);
    assert_int_equal(aa.status, 302);
    assert_int_equal(ab.status, 302);
    assert_int_equal(it_url_query(aa.location, &qa), 0);
    assert_int_equal(it_url_query(ab.location, &qb), 0);
    assert_string_not_equal(ha_kvlist_get(&qa, "state"), ha_kvlist_get(&qb, "state"));

    assert_int_equal(it_get(c, ab.location, &fb), 0);
    assert_int_equal(fb.status, 302);
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 1);
    assert_int_equal(it_get(c, aa.location, &fa), 0);
    assert_int_equal(fa.status, 302);
    {
        char *ta = check_final(c, &fa, ha_kvlist_get(&qa, "state"), true);
        struct ha_kvlist fq;
        assert_int_equal(it_url_query(fb.location, &fq), 0);
        assert_non_null(ha_kvlist_get(&fq, "token"));
        assert_string_not_equal(ta, ha_kvlist_get(&fq, "token"));
        assert_non_null(it_resp_set_cookie(&fb, IT_AUTH_COOKIE "=", 0));
        ha_kvlist_cleanup(&fq);
        free(ta);
    }
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 0);
    assert_int_equal(it_houston_received_count(e), before + 2);
    ha_kvlist_cleanup(&qa);
    ha_kvlist_cleanup(&qb);
    it_resp_cleanup(&sa);
    it_resp_cleanup(&sb);
    it_resp_cleanup(&aa);
    it_resp_cleanup(&ab);
    it_resp_cleanup(&fa);
    it_resp_cleanup(&fb);
    it_client_free(c);
}

/* Every sample line is "name[{labels}] value"; returns the value of sample or -1. */
static double metric(const char *text, const char *sample)
{
    const char *p = text;
    double found = -1;
    while (*p != '\0') {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > 0 && p[0] != '#') {
            const char *sp = memchr(p, ' ', len);
            char *num_end = NULL;
            double v;
            if (sp == NULL)
                fail_msg("metrics line without a value: %.*s", (int)len, p);
            v = strtod(sp + 1, &num_end);
            if (num_end != p + len)
                fail_msg("metrics line with a bad value: %.*s", (int)len, p);
            if ((size_t)(sp - p) == strlen(sample) && strncmp(p, sample, strlen(sample)) == 0)
                found = v;
        }
        p += len + (end != NULL ? 1 : 0);
    }
    return found;
}

static void get_metrics(struct it_client *c, double *ok, double *starts)
{
    struct it_resp r;
    char url[256];
    snprintf(url, sizeof(url), "%s/metrics", c->env->sidecar_url);
    assert_int_equal(it_get(c, url, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(it_resp_header(&r, "Content-Type"), "text/plain"));
    *ok = metric(r.body, LOGIN_OK_METRIC);
    *starts = metric(r.body, STARTS_METRIC);
    assert_true(*ok >= 0);
    assert_true(*starts >= 0);
    it_resp_cleanup(&r);
}

static void test_probes_and_metrics(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp r;
    struct it_login l;
    char url[256];
    double ok0, st0, ok1, st1;
    json_t *j;
    (void)state;
    snprintf(url, sizeof(url), "%s/healthz", e->sidecar_url);
    assert_int_equal(it_get(c, url, &r), 0);
    assert_int_equal(r.status, 200);
    it_resp_cleanup(&r);
    snprintf(url, sizeof(url), "%s/readyz", e->sidecar_url);
    assert_int_equal(it_get(c, url, &r), 0);
    assert_int_equal(r.status, 200);
    j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ready");
    json_decref(j);
    it_resp_cleanup(&r);

    get_metrics(c, &ok0, &st0);
    assert_int_equal(it_login(c, SELF_QUERY, "di@example.com", &l), 0);
    assert_int_equal(l.redirect.status, 302);
    it_expect_prefix(l.redirect.location, IT_APP_URL "/oauth?");
    get_metrics(c, &ok1, &st1);
    assert_true(ok1 == ok0 + 1);
    assert_true(st1 == st0 + 1);
    it_login_cleanup(&l);
    it_client_free(c);
}

/* GET <sidecar>/v1/oauth/start; returns the new transaction's state (caller frees). */
static char *start_only(struct it_client *c, struct it_resp *r)
{
    char url[512];
    struct ha_kvlist q;
    char *st;
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=fay%%40example.com",
             c->env->sidecar_url, SELF_QUERY);
    assert_int_equal(it_get(c, url, r), 0);
    assert_int_equal(r->status, 302);
    assert_int_equal(it_url_query(r->location, &q), 0);
    st = strdup(ha_kvlist_get(&q, "state"));
    ha_kvlist_cleanup(&q);
    return st;
}

static bool has_txn(struct it_client *c, const char *state)
{
    struct it_cookie ck;
    char name[64];
    ha_txn_cookie_name(state, name);
    if (!it_cookie_get(c, name, false, &ck))
        return false;
    it_cookie_cleanup(&ck);
    return true;
}

/* At most 5 transaction cookies per browser; the oldest goes first, and its answer is then
 * refused while the newest still completes. */
static void test_txn_cookies_bounded(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp starts[7], auth, fin;
    char *states[7];
    (void)state;
    states[0] = start_only(c, &starts[0]);
    nanosleep(&(struct timespec){1, 100000000L}, NULL); /* created is in whole seconds */
    for (int i = 1; i < 7; i++) {
        states[i] = start_only(c, &starts[i]);
        assert_true(it_cookie_count(c, IT_TXN_PREFIX) <= 5);
    }
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 5);
    assert_false(has_txn(c, states[0]));
    /* Among transactions created in the same second the pick follows the Cookie header's
     * order (curl sends the newest first, browsers the oldest), so only these are fixed. */
    assert_true(has_txn(c, states[6]));

    assert_int_equal(it_get(c, starts[6].location, &auth), 0);
    assert_int_equal(it_get(c, auth.location, &fin), 0);
    assert_int_equal(fin.status, 302);
    it_expect_prefix(fin.location, IT_APP_URL "/oauth?");
    it_resp_cleanup(&auth);
    it_resp_cleanup(&fin);

    assert_int_equal(it_get(c, starts[0].location, &auth), 0);
    assert_int_equal(it_get(c, auth.location, &fin), 0);
    assert_string_equal(fin.location, IT_LOGIN_ERROR_PREFIX "invalid_state");
    it_resp_cleanup(&auth);
    it_resp_cleanup(&fin);
    for (int i = 0; i < 7; i++) {
        it_resp_cleanup(&starts[i]);
        free(states[i]);
    }
    it_client_free(c);
}

static double jwks_fetches(struct it_client *c)
{
    struct it_resp r;
    char url[256];
    double v;
    snprintf(url, sizeof(url), "%s/metrics", c->env->sidecar_url);
    assert_int_equal(it_get(c, url, &r), 0);
    v = metric(r.body, "houston_auth_jwks_fetches_total");
    it_resp_cleanup(&r);
    return v;
}

/* The tenant rotates its signing key: the unknown kid makes the sidecar refetch the JWKS
 * once, and the login succeeds on the new key. */
static void test_key_rotation(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_login l;
    json_t *rot, *rec, *hdr;
    const char *id_token, *kid;
    unsigned char *raw = NULL;
    size_t len = 0;
    double f0;
    (void)state;
    f0 = jwks_fetches(c);
    assert_true(f0 >= 1);
    assert_int_equal(it_tenant_post(e, "/__test/rotate-key", "{}"), 200);
    rot = it_tenant_get_json(e, "/.well-known/jwks.json");
    assert_non_null(rot);
    assert_true(json_array_size(json_object_get(rot, "keys")) >= 2);
    json_decref(rot);

    assert_int_equal(it_login(c, SELF_QUERY, "gus@example.com", &l), 0);
    it_expect_prefix(l.redirect.location, IT_APP_URL "/oauth?");
    assert_true(jwks_fetches(c) == f0 + 1);
    rec = it_houston_received(e);
    id_token = it_received_field(json_array_get(rec, json_array_size(rec) - 1), "id_token");
    assert_non_null(id_token);
    assert_int_equal(ha_b64url_decode(id_token, strcspn(id_token, "."), &raw, &len), HA_OK);
    hdr = json_loadb((const char *)raw, len, 0, NULL);
    kid = json_string_value(json_object_get(hdr, "kid"));
    assert_non_null(kid);
    json_decref(hdr);
    free(raw);
    json_decref(rec);
    it_login_cleanup(&l);

    /* Now the cached JWKS holds two keys: a token without kid names none of them. */
    assert_int_equal(it_tenant_fault(e, "{\"id_token_header\":{\"kid\":null}}"), 200);
    assert_int_equal(it_login(c, SELF_QUERY, "gus@example.com", &l), 0);
    it_expect_prefix(l.redirect.location, IT_APP_URL "/login?error=invalid_id_token");
    assert_int_equal(it_peers_reset(e), 0);
    it_login_cleanup(&l);
    it_client_free(c);
}

#define PAR_THREADS 12
#define PAR_LOGINS 3

struct par_job {
    int id;
    int ok;                      /* logins that ended at the app with Houston's cookie */
    char tokens[PAR_LOGINS][64]; /* the first 63 chars of each session's signature */
};

/* No cmocka assertions here: they are not thread-safe. */
static void *par_worker(void *arg)
{
    struct par_job *j = arg;
    for (int i = 0; i < PAR_LOGINS; i++) {
        struct it_client *c = it_client_new(it_env());
        struct it_login l;
        struct it_cookie ck;
        char email[64];
        snprintf(email, sizeof(email), "par-%d-%d@example.com", j->id, i);
        if (c != NULL && it_login(c, SELF_QUERY, email, &l) == 0 && l.redirect.status == 302 &&
            l.redirect.location != NULL &&
            strncmp(l.redirect.location, IT_APP_URL "/oauth?", 31) == 0 &&
            it_cookie_get(c, IT_AUTH_COOKIE, false, &ck)) {
            const char *sig = strrchr(ck.value, '.');
            snprintf(j->tokens[i], sizeof(j->tokens[i]), "%s", sig != NULL ? sig : "");
            it_cookie_cleanup(&ck);
            j->ok++;
        }
        it_login_cleanup(&l);
        it_client_free(c);
    }
    return NULL;
}

/* Many browsers at once: every login completes, each with its own session. */
static void test_concurrent_logins(void **state)
{
    struct it_env *e = it_env();
    pthread_t th[PAR_THREADS];
    struct par_job jobs[PAR_THREADS];
    long before = it_houston_received_count(e);
    (void)state;
    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < PAR_THREADS; i++) {
        jobs[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, par_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < PAR_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < PAR_THREADS; i++) {
        if (jobs[i].ok != PAR_LOGINS)
            fail_msg("browser %d completed %d of %d logins", i, jobs[i].ok, PAR_LOGINS);
        for (int k = 0; k < PAR_LOGINS; k++) {
            for (int m = 0; m < PAR_THREADS; m++) {
                for (int n = 0; n < PAR_LOGINS; n++) {
                    if ((m != i || n != k) && strcmp(jobs[i].tokens[k], jobs[m].tokens[n]) == 0)
                        fail_msg("two browsers got the same session");
                }
            }
        }
    }
    assert_int_equal(it_houston_received_count(e), before + PAR_THREADS * PAR_LOGINS);
}

/* Nothing the browser or Houston saw leaked into the sidecar's log. */
static void test_log_has_no_secrets(void **state)
{
    static const char *const logs[] = {"sidecar.log"};
    (void)state;
    it_expect_logs_clean(it_env(), logs, 1, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_login_self, it_test_setup),
        cmocka_unit_test_setup(test_login_google_connection, it_test_setup),
        cmocka_unit_test_setup(test_login_form_post, it_test_setup),
        cmocka_unit_test_setup(test_logout, it_test_setup),
        cmocka_unit_test_setup(test_logout_return_to_refused, it_test_setup),
        cmocka_unit_test_setup(test_two_tabs, it_test_setup),
        cmocka_unit_test_setup(test_probes_and_metrics, it_test_setup),
        cmocka_unit_test_setup(test_txn_cookies_bounded, it_test_setup),
        cmocka_unit_test_setup(test_key_rotation, it_test_setup),
        cmocka_unit_test_setup(test_concurrent_logins, it_test_setup),
        cmocka_unit_test(test_log_has_no_secrets),
        cmocka_unit_test(it_test_processes_exit_clean),
    };
    return cmocka_run_group_tests(tests, it_group_setup, it_group_teardown);
}
