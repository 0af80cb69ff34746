/* Integration: every way a login can fail, as the browser and Houston see it. Each failure
 * must answer 302 <app>/login?error=<documented code>, leave no Houston cookie in the
 * browser, and (unless Houston itself is the fault) hand Houston nothing. The last test
 * greps the sidecar's logs for every secret, code, token and cookie seen on the way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/rand.h>
#include "houston_auth/b64url.h"
#include "houston_auth/proto.h"
#include "houston_auth/transaction.h"
#include "harness.h"

#define QUERY "provider=auth0&integration=self&redirect=/oauth"
#define EMAIL "eve@example.com"
#define SIDECAR2_LOG "sidecar-houston-down.log"

/* A fresh 43-char state no transaction ever had. */
static void random_state(char out[HA_RANDOM_B64_LEN + 1])
{
    unsigned char r[HA_RANDOM_BYTES];
    assert_int_equal(RAND_bytes(r, sizeof(r)), 1);
    ha_b64url_encode_to(r, sizeof(r), out);
}

/* The tenant's count of token requests, from its test stats. */
static long token_requests(const struct it_env *e)
{
    json_t *j = it_tenant_get_json(e, "/__test/stats");
    json_t *v = json_object_get(j, "token_requests");
    long n;
    if (!json_is_integer(v))
        fail_msg("the tenant's /__test/stats has no token_requests");
    n = (long)json_integer_value(v);
    json_decref(j);
    return n;
}

/* A login with a peer fault set; asserts the error. Returns the last hop's duration. */
static double fault_login(const char *tenant_fault, const char *houston_fault, const char *code,
                          bool houston_untouched)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_login l;
    long before = it_houston_received_count(e);
    double secs;
    assert_true(before >= 0);
    if (tenant_fault != NULL)
        assert_int_equal(it_tenant_fault(e, tenant_fault), 200);
    if (houston_fault != NULL)
        assert_int_equal(it_houston_fault(e, houston_fault), 200);
    assert_int_equal(it_login(c, QUERY, EMAIL, &l), 0);
    it_expect_login_error(c, &l.redirect, code, houston_untouched ? before : -1);
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 0);
    secs = l.redirect.seconds;
    it_login_cleanup(&l);
    it_client_free(c);
    return secs;
}

/* Starts a login and runs the tenant's authorize: auth->location is the redirect back. */
static void begin(struct it_client *c, const char *email, struct it_resp *start,
                  struct it_resp *auth)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=%s", c->env->sidecar_url, QUERY,
             email);
    assert_int_equal(it_get(c, url, start), 0);
    assert_int_equal(start->status, 302);
    assert_int_equal(it_get(c, start->location, auth), 0);
    assert_int_equal(auth->status, 302);
    assert_non_null(auth->location);
    it_expect_prefix(auth->location, c->env->sidecar_url);
}

static char *query_get(const char *url, const char *name)
{
    struct ha_kvlist q;
    char *v;
    assert_int_equal(it_url_query(url, &q), 0);
    v = ha_kvlist_get(&q, name) != NULL ? strdup(ha_kvlist_get(&q, name)) : NULL;
    ha_kvlist_cleanup(&q);
    return v;
}

/* GET <sidecar>/v1/oauth/redirect?<query> and expect the error. */
static void redirect_expect(struct it_client *c, const char *query, const char *code,
                            long houston_before)
{
    struct it_resp r;
    char url[1024];
    snprintf(url, sizeof(url), "%s/v1/oauth/redirect?%s", c->env->sidecar_url, query);
    assert_int_equal(it_get(c, url, &r), 0);
    it_expect_login_error(c, &r, code, houston_before);
    it_resp_cleanup(&r);
}

static void test_access_denied(void **state)
{
    (void)state;
    fault_login("{\"authorize_error\":\"access_denied\"}", NULL, "access_denied", true);
}

static void test_tenant_other_error(void **state)
{
    (void)state;
    fault_login("{\"authorize_error\":\"server_error\"}", NULL, "tenant_error", true);
}

static void test_forged_and_missing_state(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp start, auth;
    char forged[HA_RANDOM_B64_LEN + 1], q[1024], *code;
    long before = it_houston_received_count(e), tokens = token_requests(e);
    (void)state;
    begin(c, EMAIL, &start, &auth);
    code = query_get(auth.location, "code");
    assert_non_null(code);
    random_state(forged);
    snprintf(q, sizeof(q), "code=%s&state=%s", code, forged);
    redirect_expect(c, q, "invalid_state", before);
    snprintf(q, sizeof(q), "code=%s", code);
    redirect_expect(c, q, "invalid_state", before);
    snprintf(q, sizeof(q), "code=%s&state=", code);
    redirect_expect(c, q, "invalid_state", before);
    snprintf(q, sizeof(q), "code=%s&state=%.20s", code, forged);
    redirect_expect(c, q, "invalid_state", before);
    /* None of these reached the tenant's token endpoint. */
    assert_int_equal(token_requests(e), tokens);
    free(code);
    it_resp_cleanup(&start);
    it_resp_cleanup(&auth);
    it_client_free(c);
}

static void test_missing_code(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp start, auth;
    char q[512], *st;
    long before = it_houston_received_count(e);
    (void)state;
    begin(c, EMAIL, &start, &auth);
    st = query_get(auth.location, "state");
    snprintf(q, sizeof(q), "state=%s", st);
    redirect_expect(c, q, "missing_code", before);
    free(st);
    it_resp_cleanup(&start);
    it_resp_cleanup(&auth);
    it_client_free(c);
}

/* An attacker's browser (b) presents the victim's (a) code and state: with only its own
 * transaction cookie, and with its own cookie's value renamed to the victim's cookie name.
 * Both are refused, and the victim's login still completes. */
static void test_state_of_another_transaction(void **state)
{
    struct it_env *e = it_env();
    struct it_client *a = it_client_new(e), *b = it_client_new(e);
    struct it_resp sa, aa, sb, ab, fin;
    struct it_cookie own;
    char name_a[64], *state_a, *q;
    long before = it_houston_received_count(e);
    (void)state;
    begin(a, "victim%40example.com", &sa, &aa);
    begin(b, "attacker%40example.com", &sb, &ab);
    state_a = query_get(aa.location, "state");
    q = strchr(aa.location, '?') + 1;
    redirect_expect(b, q, "invalid_state", before);

    assert_true(it_cookie_get(b, IT_TXN_PREFIX, true, &own));
    ha_txn_cookie_name(state_a, name_a);
    snprintf(own.name, sizeof(own.name), "%s", name_a);
    assert_int_equal(it_cookie_put(b, &own), 0);
    redirect_expect(b, q, "invalid_state", before);
    it_cookie_cleanup(&own);

    assert_int_equal(it_get(a, aa.location, &fin), 0);
    assert_int_equal(fin.status, 302);
    it_expect_prefix(fin.location, IT_APP_URL "/oauth?");
    assert_int_equal(it_houston_received_count(e), before + 1);
    free(state_a);
    it_resp_cleanup(&fin);
    it_resp_cleanup(&sa);
    it_resp_cleanup(&aa);
    it_resp_cleanup(&sb);
    it_resp_cleanup(&ab);
    it_client_free(a);
    it_client_free(b);
}

/* Flips one character in the middle of the sealed value. */
static void tamper(char *v)
{
    size_t i = strlen(v) / 2;
    v[i] = v[i] == 'A' ? 'B' : 'A';
}

static void test_cookie_tampered_or_removed(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp start, auth;
    struct it_cookie ck;
    long before = it_houston_received_count(e);
    const char *q;
    (void)state;
    begin(c, EMAIL, &start, &auth);
    q = strchr(auth.location, '?') + 1;
    assert_true(it_cookie_get(c, IT_TXN_PREFIX, true, &ck));
    tamper(ck.value);
    assert_int_equal(it_cookie_set_value(c, ck.name, ck.value), 0);
    redirect_expect(c, q, "invalid_state", before);
    /* Truncated. */
    ck.value[strlen(ck.value) - 4] = '\0';
    assert_int_equal(it_cookie_put(c, &ck), 0);
    redirect_expect(c, q, "invalid_state", before);
    /* Removed. */
    assert_int_equal(it_cookie_set_value(c, ck.name, NULL), 0);
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 0);
    redirect_expect(c, q, "invalid_state", before);
    it_cookie_cleanup(&ck);
    it_resp_cleanup(&start);
    it_resp_cleanup(&auth);
    it_client_free(c);
}

/* A transaction sealed with the sidecar's own key 11 minutes ago (as a browser that kept
 * the cookie would present it): state_expired, without waiting out a real TTL. */
static void test_expired_transaction(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_cookie ck = {0};
    struct ha_txn t;
    unsigned char key[32];
    char *sealed = NULL, q[512];
    long before = it_houston_received_count(e);
    (void)state;
    assert_int_equal(it_cookie_key(e, key), 0);
    assert_int_equal(
        ha_txn_init(&t, &ha_rng_openssl, (long)time(NULL) - 660, "self", "/oauth", NULL, NULL),
        HA_OK);
    assert_int_equal(ha_txn_seal(&t, key, &ha_rng_openssl, &sealed), HA_OK);
    ha_txn_cookie_name(t.state, ck.name);
    snprintf(ck.domain, sizeof(ck.domain), "%s", IT_SIDECAR_HOST);
    snprintf(ck.path, sizeof(ck.path), "%s", HA_TXN_COOKIE_PATH);
    ck.secure = ck.httponly = true;
    ck.value = sealed;
    assert_int_equal(it_cookie_put(c, &ck), 0);
    snprintf(q, sizeof(q), "code=some-code-0123456789&state=%s", t.state);
    redirect_expect(c, q, "state_expired", before);
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 0);
    ha_txn_cleanup(&t);
    free(sealed);
    it_client_free(c);
}

/* After a successful login the same answer is refused: without the (cleared) transaction
 * cookie, and with a saved copy of it put back. */
static void test_replayed_state(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp start, auth, fin;
    struct it_cookie saved;
    long before;
    (void)state;
    begin(c, EMAIL, &start, &auth);
    assert_true(it_cookie_get(c, IT_TXN_PREFIX, true, &saved));
    assert_int_equal(it_get(c, auth.location, &fin), 0);
    assert_int_equal(fin.status, 302);
    it_expect_prefix(fin.location, IT_APP_URL "/oauth?");
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 0);
    /* The browser that logged in keeps Houston's cookie; a replay must not add one. */
    assert_int_equal(it_cookie_set_value(c, IT_AUTH_COOKIE, NULL), 0);
    before = it_houston_received_count(e);
    redirect_expect(c, strchr(auth.location, '?') + 1, "invalid_state", before);
    assert_int_equal(it_cookie_put(c, &saved), 0);
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 1);
    redirect_expect(c, strchr(auth.location, '?') + 1, "invalid_state", before);
    it_cookie_cleanup(&saved);
    it_resp_cleanup(&start);
    it_resp_cleanup(&auth);
    it_resp_cleanup(&fin);
    it_client_free(c);
}

static void test_wrong_nonce(void **state)
{
    (void)state;
    fault_login("{\"id_token_claims\":{\"nonce\":\"x\"}}", NULL, "invalid_id_token", true);
}

static void test_bad_signature(void **state)
{
    (void)state;
    fault_login("{\"id_token_sign\":\"bad-signature\"}", NULL, "invalid_id_token", true);
}

static void test_access_token_audience(void **state)
{
    (void)state;
    fault_login("{\"access_token_claims\":{\"aud\":\"other\"}}", NULL, "invalid_access_token",
                true);
}

/* Every ID-token check, end to end: one fault each, each refused as invalid_id_token. The
 * @NOW in an entry is replaced by now plus its offset, @PORT by the tenant's port. */
struct claim_case {
    const char *fault;
    long offset;
};

/* Expands @NOW (now + offset) and @PORT (the tenant's port) in tmpl. */
static void expand(const char *tmpl, long offset, char *out, size_t len)
{
    size_t o = 0;
    while (*tmpl != '\0' && o + 24 < len) {
        if (strncmp(tmpl, "@NOW", 4) == 0) {
            o += (size_t)snprintf(out + o, len - o, "%ld", (long)time(NULL) + offset);
            tmpl += 4;
        } else if (strncmp(tmpl, "@PORT", 5) == 0) {
            o += (size_t)snprintf(out + o, len - o, "%d", it_env()->tenant_port);
            tmpl += 5;
        } else {
            out[o++] = *tmpl++;
        }
    }
    out[o] = '\0';
}

static void run_cases(const struct claim_case *cases, size_t n, const char *code)
{
    struct it_env *e = it_env();
    for (size_t i = 0; i < n; i++) {
        char fault[512];
        expand(cases[i].fault, cases[i].offset, fault, sizeof(fault));
        print_message("fault %s\n", fault);
        assert_int_equal(it_peers_reset(e), 0);
        fault_login(fault, NULL, code, true);
    }
}

static void test_id_token_checks(void **state)
{
    static const struct claim_case cases[] = {
        {"{\"id_token_claims\":{\"iss\":\"https://evil.example.net/\"}}", 0},
        {"{\"id_token_claims\":{\"iss\":\"https://localhost:@PORT\"}}", 0},
        {"{\"id_token_claims\":{\"aud\":\"other-client\"}}", 0},
        {"{\"id_token_claims\":{\"aud\":[\"other\",\"houston-auth-test\"],"
         "\"azp\":\"other\"}}",
         0},
        {"{\"id_token_claims\":{\"aud\":[\"houston-auth-test\",\"other\"],"
         "\"azp\":null}}",
         0},
        {"{\"id_token_claims\":{\"azp\":\"other\"}}", 0},
        {"{\"id_token_claims\":{\"exp\":@NOW}}", -120},
        {"{\"id_token_claims\":{\"exp\":null}}", 0},
        {"{\"id_token_claims\":{\"nbf\":@NOW}}", 600},
        {"{\"id_token_claims\":{\"iat\":@NOW}}", 600},
        {"{\"id_token_claims\":{\"sub\":null}}", 0},
        {"{\"id_token_claims\":{\"sub\":\"\"}}", 0},
        {"{\"id_token_claims\":{\"nonce\":null}}", 0},
        {"{\"id_token_header\":{\"kid\":\"no-such-kid\"}}", 0},
        {"{\"id_token_header\":{\"crit\":[\"x-unknown\"]}}", 0},
        {"{\"id_token_sign\":\"none\"}", 0},
        {"{\"id_token_sign\":\"hs256-pubkey-pem\"}", 0},
        {"{\"id_token_sign\":\"hs256-pubkey-der\"}", 0},
        {"{\"id_token_sign\":\"rs384\"}", 0},
        {"{\"id_token_sign\":\"rs512\"}", 0},
        {"{\"id_token_sign\":\"ps256\"}", 0},
        {"{\"id_token_sign\":\"es256\"}", 0},
        {"{\"id_token_sign\":\"other-key\"}", 0},
    };
    (void)state;
    run_cases(cases, sizeof(cases) / sizeof(cases[0]), "invalid_id_token");
}

/* DESIGN.md: keys are "matched by exact kid". An ID token without a kid must not be
 * verified with whatever key the JWKS holds (jwks.h lets a NULL kid match a lone key). */
/* OpenID RP certification allows either policy for a token without kid; ours: accepted only
 * while the tenant's JWKS holds exactly one key (the case here; test_login.c checks the
 * several-keys refusal after a key rotation). */
static void test_id_token_without_kid(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_login l;
    (void)state;
    assert_int_equal(it_tenant_fault(e, "{\"id_token_header\":{\"kid\":null}}"), 200);
    assert_int_equal(it_login(c, QUERY, EMAIL, &l), 0);
    it_expect_prefix(l.redirect.location, IT_APP_URL "/oauth?");
    it_login_cleanup(&l);
    it_client_free(c);
}

static void test_access_token_checks(void **state)
{
    static const struct claim_case cases[] = {
        {"{\"access_token_claims\":{\"aud\":[\"other\"]}}", 0},
        {"{\"access_token_claims\":{\"iss\":\"https://evil.example.net/\"}}", 0},
        {"{\"access_token_claims\":{\"exp\":@NOW}}", -3600},
        {"{\"access_token_sign\":\"none\"}", 0},
        {"{\"access_token_sign\":\"bad-signature\"}", 0},
        {"{\"access_token_sign\":\"hs256-pubkey-pem\"}", 0},
        {"{\"access_token_sign\":\"other-key\"}", 0},
    };
    (void)state;
    run_cases(cases, sizeof(cases) / sizeof(cases[0]), "invalid_access_token");
}

/* Headers that point at other keys are ignored (the login succeeds on the tenant's key), and
 * an exp inside the 60 s leeway is accepted: the sidecar hands it to Houston, which (0.9, no
 * leeway of its own) refuses it as expired, as the stand-in does. */
static void test_id_token_accepted_variants(void **state)
{
    static const struct {
        const char *fault;
        bool houston_refuses;
    } cases[] = {
        {"{\"id_token_header\":{\"jku\":\"https://evil.example.net/jwks\","
         "\"x5u\":\"https://evil.example.net/x5u\"}}",
         false},
        {"{\"id_token_claims\":{\"exp\":@NOW}}", true},
    };
    struct it_env *e = it_env();
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct it_client *c = it_client_new(e);
        struct it_login l;
        char fault[512];
        const char *want = cases[i].houston_refuses ? "/login?error=" : "/oauth?";
        json_t *rec;
        expand(cases[i].fault, -20, fault, sizeof(fault));
        assert_int_equal(it_peers_reset(e), 0);
        assert_int_equal(it_tenant_fault(e, fault), 200);
        assert_int_equal(it_login(c, QUERY, EMAIL, &l), 0);
        if (l.redirect.location == NULL || strstr(l.redirect.location, want) == NULL)
            fail_msg("fault %s: login ended at %s", fault,
                     l.redirect.location != NULL ? l.redirect.location : "(none)");
        rec = it_houston_received(e);
        assert_int_equal(json_array_size(rec), 1); /* the sidecar accepted it */
        if (cases[i].houston_refuses)
            assert_string_equal(
                json_string_value(json_object_get(json_array_get(rec, 0), "reason")),
                "the ID token has expired");
        json_decref(rec);
        it_login_cleanup(&l);
        it_client_free(c);
    }
}

static void test_token_endpoint_status(void **state)
{
    (void)state;
    fault_login("{\"token_status\":400}", NULL, "token_exchange_failed", true);
    fault_login("{\"token_status\":500}", NULL, "token_exchange_failed", true);
}

/* The tenant sleeps 3 s; the sidecar's request timeout is 1.5 s. */
static void test_token_endpoint_timeout(void **state)
{
    double secs;
    (void)state;
    secs = fault_login("{\"token_delay_ms\":3000}", NULL, "token_exchange_failed", true);
    if (secs < 1.2 || secs > 2.5)
        fail_msg("the redirect took %.2f s; want the 1.5 s request timeout", secs);
}

static void test_token_endpoint_garbage(void **state)
{
    (void)state;
    fault_login("{\"token_body\":\"<html><body>Service Unavailable</body></html>\"}", NULL,
                "token_exchange_failed", true);
    fault_login("{\"token_body\":\"{\\\"access_token\\\":\\\"eyJ\"}", NULL, "token_exchange_failed",
                true);
}

static void test_houston_500(void **state)
{
    (void)state;
    fault_login(NULL, "{\"status\":500}", "houston_rejected", false);
}

static void test_houston_location_off_allowlist(void **state)
{
    (void)state;
    fault_login(NULL, "{\"location\":\"https://evil.example.net/\"}", "houston_rejected", false);
}

static void test_houston_no_cookie(void **state)
{
    (void)state;
    fault_login(NULL, "{\"no_cookie\":true}", "houston_rejected", false);
}

static void test_houston_locations_off_allowlist(void **state)
{
    static const char *const bad[] = {
        "{\"location\":\"//evil.example.net/\"}",
        "{\"location\":\"http://app.astro.example.com/oauth\"}",
        "{\"location\":\"https://app.astro.example.com.evil.net/oauth\"}",
        "{\"location\":\"https://user@app.astro.example.com/oauth\"}",
        "{\"location\":\"/\\\\evil.example.net/\"}",
        "{\"location\":\"javascript:alert(1)\"}",
        "{\"location\":\"/oauth\\r\\nSet-Cookie: x=y\"}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("fault %s\n", bad[i]);
        assert_int_equal(it_peers_reset(it_env()), 0);
        fault_login(NULL, bad[i], "houston_rejected", false);
    }
}

/* Houston sleeps 3 s; the sidecar's request timeout is 1.5 s. */
static void test_houston_slow(void **state)
{
    double secs;
    (void)state;
    secs = fault_login(NULL, "{\"delay_ms\":3000}", "houston_unavailable", false);
    if (secs < 1.2 || secs > 2.5)
        fail_msg("the redirect took %.2f s; want the 1.5 s request timeout", secs);
}

/* Houston's own signup error is relayed as it is, with no session. */
static void test_houston_signup_error(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_login l;
    struct it_cookie ck;
    (void)state;
    assert_int_equal(it_houston_fault(e, "{\"signup_error\":\"user_not_invited\"}"), 200);
    assert_int_equal(it_login(c, QUERY, EMAIL, &l), 0);
    assert_int_equal(l.redirect.status, 302);
    assert_string_equal(l.redirect.location, IT_APP_URL "/login?error=user_not_invited");
    assert_null(it_resp_set_cookie(&l.redirect, IT_AUTH_COOKIE "=", 0));
    assert_false(it_cookie_get(c, IT_AUTH_COOKIE, false, &ck));
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 0);
    it_login_cleanup(&l);
    it_client_free(c);
}

/* A second sidecar whose Houston URL is a closed port. */
static void test_houston_down(void **state)
{
    struct it_env *e = it_env();
    struct it_proc *p = &e->spare[0];
    struct it_client *c = it_client_new(e);
    struct it_login l;
    char houston[128], base[128];
    const char *extra[] = {houston, NULL};
    long before = it_houston_received_count(e);
    (void)state;
    snprintf(houston, sizeof(houston), "AUTH_SIDECAR_HOUSTON_URL=http://127.0.0.1:%d",
             e->spare_ports[2]);
    assert_int_equal(it_sidecar_start(e, p, e->spare_ports[0], SIDECAR2_LOG, extra, true), 0);
    it_sidecar_base(e->spare_ports[0], base, sizeof(base));
    assert_int_equal(it_login_at(c, base, QUERY, EMAIL, &l), 0);
    it_expect_login_error(c, &l.redirect, "houston_unavailable", before);
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 0);
    it_proc_stop(p);
    it_login_cleanup(&l);
    it_client_free(c);
}

static void test_start_redirect_refused(void **state)
{
    static const char *const bad[] = {"%2F%2Fevil.com",
                                      "https%3A%2F%2Fevil.com%2F",
                                      "%2F%5Cevil.com",
                                      "https%3A%2F%2Fapp.astro.example.com.evil.net%2F",
                                      "https%3A%2F%2Fuser%40app.astro.example.com%2F",
                                      "javascript%3Aalert(1)",
                                      "%2Foauth%0D%0ASet-Cookie%3A%20x%3Dy",
                                      "%2Foauth%250d%250aX%3Ay",
                                      "http%3A%2F%2Fapp.astro.example.com%2F",
                                      "%2F%20%2Fevil.com"};
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    long before = it_houston_received_count(e);
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct it_resp r;
        char url[512];
        snprintf(url, sizeof(url), "%s/v1/oauth/start?provider=auth0&redirect=%s", e->sidecar_url,
                 bad[i]);
        assert_int_equal(it_get(c, url, &r), 0);
        if (r.location == NULL || strstr(r.location, "error=bad_request") == NULL)
            fail_msg("redirect=%s answered %ld %s", bad[i], r.status,
                     r.location != NULL ? r.location : "(no Location)");
        it_expect_login_error(c, &r, "bad_request", before);
        assert_int_equal(it_resp_set_cookie_count(&r, IT_TXN_PREFIX), 0);
        assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 0);
        it_resp_cleanup(&r);
    }
    it_client_free(c);
}

static void test_start_params_refused(void **state)
{
    static const char *const bad[] = {
        "provider=github&redirect=/oauth",
        "provider=auth0&integration=evil%20conn",
        "provider=auth0&integration=a%2Fb",
        "provider=auth0&extras=notjson",
        "provider=auth0&extras=%5B1%5D",
        "provider=auth0&redirect=/a&redirect=/b",
        "provider=auth0&inviteToken=a%20b",
        "provider=auth0&state=x&state=y&integration=self&integration=google-oauth2",
    };
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct it_resp r;
        char url[512];
        snprintf(url, sizeof(url), "%s/v1/oauth/start?%s", e->sidecar_url, bad[i]);
        assert_int_equal(it_get(c, url, &r), 0);
        if (r.location == NULL || strstr(r.location, "error=bad_request") == NULL)
            fail_msg("%s answered %ld %s", bad[i], r.status,
                     r.location != NULL ? r.location : "(no Location)");
        it_expect_login_error(c, &r, "bad_request", 0);
        assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 0);
        it_resp_cleanup(&r);
    }
    it_client_free(c);
}

/* A clear answer for oversized input: a 4xx or a login error, never a 5xx or a crash. */
static void expect_clear_refusal(const struct it_resp *r, const char *what)
{
    bool login_error =
        r->status == 302 && r->location != NULL &&
        strncmp(r->location, IT_LOGIN_ERROR_PREFIX, strlen(IT_LOGIN_ERROR_PREFIX)) == 0;
    if (r->curl_code != 0)
        fail_msg("%s: transfer failed (curl %d: %s), status %ld", what, r->curl_code,
                 curl_easy_strerror((CURLcode)r->curl_code), r->status);
    if (!login_error && (r->status < 400 || r->status > 499))
        fail_msg("%s answered %ld", what, r->status);
    assert_null(it_resp_set_cookie(r, IT_AUTH_COOKIE "=", 0));
}

static void test_oversized_input(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp r;
    size_t big = 20000;
    char *url = malloc(big + 512), *body = malloc(big * 5 + 64);
    const char *const expect[] = {"Expect: 100-continue", NULL};
    (void)state;
    /* A URL over the cap. */
    snprintf(url, big + 512, "%s/v1/oauth/start?provider=auth0&redirect=/", e->sidecar_url);
    memset(url + strlen(url), 'a', big);
    url[strlen(e->sidecar_url) + 40 + big] = '\0';
    it_get(c, url, &r);
    expect_clear_refusal(&r, "a 20 KB URL");
    it_resp_cleanup(&r);
    /* A form body over the cap, announced with Expect: 100-continue so the refusal can come
     * before the body (without it the server refuses and closes while curl still sends, and
     * the 413 may be lost to a reset: see the report). */
    memcpy(body, "state=", 6);
    memset(body + 6, 'b', big * 5);
    body[6 + big * 5] = '\0';
    snprintf(url, big + 512, "%s/v1/oauth/redirect", e->sidecar_url);
    it_request_headers(c, "POST", url, "application/x-www-form-urlencoded", body, expect, &r);
    expect_clear_refusal(&r, "a 100 KB form");
    it_resp_cleanup(&r);
    /* A Cookie header over the cap: 24 transaction-path cookies of 1 KB. */
    for (int i = 0; i < 24; i++) {
        struct it_cookie ck = {0};
        snprintf(ck.name, sizeof(ck.name), "ha_txn_big%02d", i);
        snprintf(ck.domain, sizeof(ck.domain), "%s", IT_SIDECAR_HOST);
        snprintf(ck.path, sizeof(ck.path), "/");
        ck.value = body + 6;
        ck.value[1000] = '\0';
        assert_int_equal(it_cookie_put(c, &ck), 0);
    }
    snprintf(url, big + 512, "%s/v1/oauth/redirect?code=c&state=%043d", e->sidecar_url, 0);
    it_get(c, url, &r);
    expect_clear_refusal(&r, "a 24 KB Cookie header");
    it_resp_cleanup(&r);
    free(url);
    free(body);
    it_client_free(c);
    /* And it still serves. */
    {
        char h[256];
        snprintf(h, sizeof(h), "%s/healthz", e->sidecar_url);
        assert_int_equal(it_wait_status(e, h, 200, 2000), 0);
    }
}

/* The largest start the caps allow (redirect, extras and inviteToken near their limits, the
 * URL under HA_MAX_URL) gets a clear answer: the tenant's authorize or a login error, never a
 * 5xx. */
static void test_start_large_but_allowed(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp r;
    char *url = malloc(HA_MAX_URL);
    size_t n;
    (void)state;
    n = (size_t)snprintf(url, HA_MAX_URL, "%s/v1/oauth/start?provider=auth0&redirect=/",
                         e->sidecar_url);
    memset(url + n, 'r', 1400);
    n += 1400;
    n += (size_t)snprintf(url + n, HA_MAX_URL - n, "&extras=%%7B%%22a%%22:%%22");
    memset(url + n, 'x', 1400);
    n += 1400;
    n += (size_t)snprintf(url + n, HA_MAX_URL - n, "%%22%%7D&inviteToken=");
    memset(url + n, 'i', 500);
    n += 500;
    url[n] = '\0';
    assert_true(n < HA_MAX_URL - 200);
    it_get(c, url, &r);
    if (r.curl_code != 0 || r.status >= 500)
        fail_msg("a start within every cap answered %ld (curl %d): %s", r.status, r.curl_code,
                 r.body);
    if (r.status == 302 && strncmp(r.location, e->tenant_url, strlen(e->tenant_url)) == 0)
        assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 1);
    else
        it_expect_login_error(c, &r, "bad_request", 0);
    it_resp_cleanup(&r);
    free(url);
    it_client_free(c);
}

struct race {
    struct it_client *c;
    const char *url;
    struct it_resp r;
};

static void *race_get(void *arg)
{
    struct race *x = arg;
    it_get(x->c, x->url, &x->r);
    return NULL;
}

/* The same answer submitted twice at once (a double click, a prefetch): exactly one login. */
static void test_double_submit(void **state)
{
    struct it_env *e = it_env();
    struct it_client *a = it_client_new(e), *b = it_client_new(e);
    struct it_resp start, auth;
    struct it_cookie ck;
    struct race x[2];
    pthread_t th[2];
    int wins = 0;
    (void)state;
    begin(a, EMAIL, &start, &auth);
    assert_true(it_cookie_get(a, IT_TXN_PREFIX, true, &ck));
    assert_int_equal(it_cookie_put(b, &ck), 0);
    x[0] = (struct race){a, auth.location, {0}};
    x[1] = (struct race){b, auth.location, {0}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_get, &x[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(x[i].r.status, 302);
        if (strncmp(x[i].r.location, IT_APP_URL "/oauth?", 31) == 0)
            wins++;
        else
            it_expect_login_error(x[i].c, &x[i].r, "invalid_state", -1);
        it_resp_cleanup(&x[i].r);
    }
    assert_int_equal(wins, 1);
    assert_int_equal(it_houston_received_count(e), 1);
    it_cookie_cleanup(&ck);
    it_resp_cleanup(&start);
    it_resp_cleanup(&auth);
    it_client_free(a);
    it_client_free(b);
}

/* Nothing seen in this file's tests reached a log line. */
static void test_logs_hold_no_secrets(void **state)
{
    static const char *const logs[] = {"sidecar.log", SIDECAR2_LOG};
    (void)state;
    it_expect_logs_clean(it_env(), logs, sizeof(logs) / sizeof(logs[0]), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_access_denied, it_test_setup),
        cmocka_unit_test_setup(test_tenant_other_error, it_test_setup),
        cmocka_unit_test_setup(test_forged_and_missing_state, it_test_setup),
        cmocka_unit_test_setup(test_missing_code, it_test_setup),
        cmocka_unit_test_setup(test_state_of_another_transaction, it_test_setup),
        cmocka_unit_test_setup(test_cookie_tampered_or_removed, it_test_setup),
        cmocka_unit_test_setup(test_expired_transaction, it_test_setup),
        cmocka_unit_test_setup(test_replayed_state, it_test_setup),
        cmocka_unit_test_setup(test_wrong_nonce, it_test_setup),
        cmocka_unit_test_setup(test_bad_signature, it_test_setup),
        cmocka_unit_test_setup(test_access_token_audience, it_test_setup),
        cmocka_unit_test_setup(test_id_token_checks, it_test_setup),
        cmocka_unit_test_setup(test_id_token_without_kid, it_test_setup),
        cmocka_unit_test_setup(test_access_token_checks, it_test_setup),
        cmocka_unit_test_setup(test_id_token_accepted_variants, it_test_setup),
        cmocka_unit_test_setup(test_token_endpoint_status, it_test_setup),
        cmocka_unit_test_setup(test_token_endpoint_timeout, it_test_setup),
        cmocka_unit_test_setup(test_token_endpoint_garbage, it_test_setup),
        cmocka_unit_test_setup(test_houston_500, it_test_setup),
        cmocka_unit_test_setup(test_houston_location_off_allowlist, it_test_setup),
        cmocka_unit_test_setup(test_houston_no_cookie, it_test_setup),
        cmocka_unit_test_setup(test_houston_locations_off_allowlist, it_test_setup),
        cmocka_unit_test_setup(test_houston_slow, it_test_setup),
        cmocka_unit_test_setup(test_houston_signup_error, it_test_setup),
        cmocka_unit_test_setup(test_houston_down, it_test_setup),
        cmocka_unit_test_setup(test_start_redirect_refused, it_test_setup),
        cmocka_unit_test_setup(test_start_params_refused, it_test_setup),
        cmocka_unit_test_setup(test_oversized_input, it_test_setup),
        cmocka_unit_test_setup(test_start_large_but_allowed, it_test_setup),
        cmocka_unit_test_setup(test_double_submit, it_test_setup),
        cmocka_unit_test(test_logs_hold_no_secrets),
        cmocka_unit_test(it_test_processes_exit_clean),
    };
    return cmocka_run_group_tests(tests, it_group_setup, it_group_teardown);
}
