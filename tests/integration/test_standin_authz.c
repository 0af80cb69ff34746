/* The Houston stand-in's GET /v1/authorization, through real HTTP on loopback: Houston's
 * decision for the ingress's auth-url (the design's "Houston's contract"), which the sidecar's
 * cached gate and the bench stand in front of. Sessions come from a real login's cookie, from
 * a bearer token, or are forged, truncated, expired or for nobody; grants are set and removed
 * through /__test/permissions; the minted Airflow JWT is verified with the stand-in's public
 * key; the call counters and the pool's latency are measured; the header and cookie names each
 * call carried are recorded (names only, bounded); a stop and a start with a state directory
 * keep the key and the users, as Houston's restart does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include "harness.h"
#include "houston_auth/b64url.h"

#define QUERY "provider=auth0&integration=self&redirect=%2Foauth"
#define RELEASE "quasaric-sun-9051"
#define OTHER_RELEASE "geodetic-star-1234"
#define GRAFANA_URL "https://grafana." IT_BASE_DOMAIN "/d/home"
#define KIBANA_URL "https://kibana." IT_BASE_DOMAIN "/app/"
#define AIRFLOW_HOST RELEASE "-airflow." IT_BASE_DOMAIN
#define AIRFLOW_URL "https://" AIRFLOW_HOST "/admin/?x=1"
#define FLOWER_HOST RELEASE "-flower." IT_BASE_DOMAIN
#define PATH_HOST "deployments." IT_BASE_DOMAIN
#define MONITORING "system.monitoring.get"
#define AIRFLOW_JWT_TTL 86400 /* Houston's jwt.authDuration */
#define CONCURRENT 20
#define MULTI_DEADLINE_MS 20000
#define RAW_ANSWER_MS 5000
#define HEADER_RECORDS 64 /* calls whose names the stand-in keeps */
#define HEADER_CALLS (HEADER_RECORDS + 6)
#define NAMES_KEPT 256 /* names per list and call */
#define MANY_NAMES 300
#define HEADER_HEAD_CAP 16384

/* ---- helpers ---- */

/* GET /v1/authorization on the stand-in with these extra headers (NULL-ended). */
static long authz(const char *const *headers, struct it_resp *r)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    char *url = it_fmt("%s/v1/authorization", e->houston_url);
    assert_non_null(c);
    assert_int_equal(it_request_headers(c, "GET", url, NULL, NULL, headers, r), 0);
    free(url);
    it_client_free(c);
    return r->status;
}

/* The status for a cookie session (token NULL: none) and X-Original-URL (NULL: none). */
static long by_cookie(const char *token, const char *original)
{
    char *ck = token != NULL ? it_fmt("Cookie: other=1; %s=%s", IT_AUTH_COOKIE, token) : NULL;
    char *xo = original != NULL ? it_fmt("X-Original-URL: %s", original) : NULL;
    const char *h[3] = {NULL, NULL, NULL};
    struct it_resp r;
    long st;
    size_t n = 0;
    if (ck != NULL)
        h[n++] = ck;
    if (xo != NULL)
        h[n++] = xo;
    st = authz(h, &r);
    it_resp_cleanup(&r);
    free(ck);
    free(xo);
    return st;
}

/* As by_cookie with Authorization: <authorization> (used as it is). */
static long by_header(const char *authorization, const char *original, struct it_resp *r)
{
    char *a = it_fmt("Authorization: %s", authorization);
    char *xo = it_fmt("X-Original-URL: %s", original);
    const char *h[] = {a, xo, NULL};
    long st = authz(h, r);
    free(a);
    free(xo);
    return st;
}

static long by_bearer(const char *token, const char *original)
{
    char *a = it_fmt("Bearer %s", token);
    struct it_resp r;
    long st = by_header(a, original, &r);
    it_resp_cleanup(&r);
    free(a);
    return st;
}

static json_t *authz_stats(void)
{
    json_t *j = it_houston_get_json(it_env(), "/__test/authz");
    assert_non_null(j);
    return j;
}

static long stat_int(const char *key)
{
    json_t *j = authz_stats();
    long v = (long)json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

static void set_pool(long latency_ms, long pool)
{
    char *body =
        it_fmt("{\"latency_ms\":%ld,\"pool\":%ld,\"clear_counters\":true}", latency_ms, pool);
    assert_int_equal(it_houston_post(it_env(), "/__test/authz", body), 200);
    free(body);
}

static unsigned char *b64d(const char *s, size_t n, size_t *len)
{
    unsigned char *out = NULL;
    assert_int_equal(ha_b64url_decode(s, n, &out, len), HA_OK);
    return out;
}

static char *b64e(const void *p, size_t n)
{
    char *out = NULL;
    assert_int_equal(ha_b64url_encode((const unsigned char *)p, n, &out), HA_OK);
    return out;
}

/* The stand-in's public key, from /__test/keys. */
static EVP_PKEY *standin_key(char **kid)
{
    json_t *j = it_houston_get_json(it_env(), "/__test/keys");
    const char *pem = json_string_value(json_object_get(j, "public_key_pem"));
    BIO *bio = pem != NULL ? BIO_new_mem_buf(pem, -1) : NULL;
    EVP_PKEY *k = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    assert_non_null(k);
    assert_string_equal(json_string_value(json_object_get(j, "alg")), "RS256");
    if (kid != NULL)
        *kid = strdup(json_string_value(json_object_get(j, "kid")));
    BIO_free(bio);
    json_decref(j);
    return k;
}

/* The claims of a compact JWS whose RS256 signature key verifies (fails the test otherwise). */
static json_t *verified_claims(const char *jwt, EVP_PKEY *key)
{
    const char *d1 = strchr(jwt, '.'), *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
    unsigned char *hdr, *body, *sig;
    size_t hl, bl, sl;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    json_t *h, *claims;

    assert_non_null(d2);
    hdr = b64d(jwt, (size_t)(d1 - jwt), &hl);
    body = b64d(d1 + 1, (size_t)(d2 - d1 - 1), &bl);
    sig = b64d(d2 + 1, strlen(d2 + 1), &sl);
    h = json_loadb((const char *)hdr, hl, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestVerify(md, sig, sl, (const unsigned char *)jwt, (size_t)(d2 - jwt)),
                     1);
    claims = json_loadb((const char *)body, bl, 0, NULL);
    assert_non_null(claims);
    EVP_MD_CTX_free(md);
    json_decref(h);
    free(hdr);
    free(body);
    free(sig);
    return claims;
}

/* header.claims signed RS256 with key, or with HMAC-SHA256 over secret when key is NULL, or
 * unsigned when both are NULL. Caller frees. */
static char *make_jwt(const char *header, const char *claims, EVP_PKEY *key, const char *secret)
{
    char *h = b64e(header, strlen(header)), *c = b64e(claims, strlen(claims));
    char *input = it_fmt("%s.%s", h, c), *sig = strdup(""), *out;
    unsigned char raw[512];
    size_t len = sizeof(raw);
    unsigned int hlen = 0;

    if (key != NULL) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(md, raw, &len, (const unsigned char *)input, strlen(input)),
                         1);
        EVP_MD_CTX_free(md);
        free(sig);
        sig = b64e(raw, len);
    } else if (secret != NULL) {
        assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret),
                             (const unsigned char *)input, strlen(input), raw, &hlen));
        free(sig);
        sig = b64e(raw, hlen);
    }
    out = it_fmt("%s.%s", input, sig);
    free(h);
    free(c);
    free(input);
    free(sig);
    return out;
}

/* ---- the session ---- */

/* No credential, whatever the grants and the host: 401. */
static void test_no_session_is_401(void **state)
{
    (void)state;
    it_houston_grant("nobody-logged-in@example.com",
                     "\"system\":[\"" MONITORING "\"],\"deployments\":{\"" RELEASE
                     "\":[\"DEPLOYMENT_ADMIN\"]}");
    assert_int_equal(by_cookie(NULL, GRAFANA_URL), 401);
    assert_int_equal(by_cookie(NULL, AIRFLOW_URL), 401);
    assert_int_equal(by_cookie(NULL, NULL), 401);
    assert_int_equal(by_cookie("", GRAFANA_URL), 401); /* an empty auth cookie */
}

/* A real login through the sidecar creates Houston's user and its cookie; that cookie, and the
 * same token as a bearer, are sessions once the user holds a grant. */
static void test_cookie_session_from_a_real_login(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_login l;
    struct it_cookie ck;
    struct it_resp r;
    json_t *users;
    char *a;
    (void)state;

    assert_int_equal(it_login(c, QUERY, "Carol.Login@example.com", &l), 0);
    assert_true(it_cookie_get(c, IT_AUTH_COOKIE, false, &ck));
    /* Houston found or created the user at its callback, with no grant yet. */
    users = it_houston_get_json(e, "/__test/permissions");
    assert_int_equal(json_array_size(users), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(users, 0), "email")),
                        "Carol.Login@example.com");
    json_decref(users);
    assert_int_equal(by_cookie(ck.value, GRAFANA_URL), 401);

    it_houston_grant("Carol.Login@example.com", "\"system\":[\"" MONITORING "\"]");
    assert_int_equal(by_cookie(ck.value, GRAFANA_URL), 200);
    assert_int_equal(by_cookie(ck.value, KIBANA_URL), 200);
    a = it_fmt("Bearer %s", ck.value);
    assert_int_equal(by_header(a, GRAFANA_URL, &r), 200);
    /* The chart relays username and email; monitoring gets no Airflow JWT. */
    assert_string_equal(it_resp_header(&r, "username"), "Carol.Login@example.com");
    assert_string_equal(it_resp_header(&r, "email"), "carol.login@example.com");
    assert_null(it_resp_header(&r, "Authorization"));
    it_resp_cleanup(&r);
    free(a);
    it_cookie_cleanup(&ck);
    it_login_cleanup(&l);
    it_client_free(c);
}

/* Houston reads the Authorization header with "Bearer " removed and falls back to the cookie
 * only when that leaves nothing: a bad header hides a good cookie. */
static void test_bearer_session_and_header_precedence(void **state)
{
    char *tok = it_houston_session("bea@example.com", 3600);
    char *ck = it_fmt("Cookie: %s=%s", IT_AUTH_COOKIE, tok);
    const char *bad[] = {"Authorization: Bearer not-a-jwt", ck, "X-Original-URL: " GRAFANA_URL,
                         NULL};
    const char *empty[] = {"Authorization: Bearer ", ck, "X-Original-URL: " GRAFANA_URL, NULL};
    struct it_resp r;
    (void)state;

    it_houston_grant("bea@example.com", "\"system\":[\"" MONITORING "\"]");
    assert_int_equal(by_bearer(tok, GRAFANA_URL), 200);
    assert_int_equal(by_header(tok, GRAFANA_URL, &r), 200); /* without the "Bearer " */
    it_resp_cleanup(&r);
    assert_int_equal(authz(bad, &r), 401);
    it_resp_cleanup(&r);
    assert_int_equal(authz(empty, &r), 200);
    it_resp_cleanup(&r);
    free(ck);
    free(tok);
}

/* Forged, truncated, re-signed, expired, unknown-user and alg-confused sessions: 401. */
static void test_bad_sessions_are_401(void **state)
{
    char *tok = it_houston_session("victim@example.com", 3600), *kid = NULL;
    char *expired = it_houston_session("victim@example.com", -5);
    char *nobody = it_houston_session("never-granted@example.com", 3600);
    EVP_PKEY *pub = standin_key(&kid), *other = EVP_RSA_gen(2048);
    char *pem = NULL, *hdr, *claims, *forged, *hs256, *none, *truncated, *half;
    json_t *payload = verified_claims(tok, pub);
    BIO *bio = BIO_new(BIO_s_mem());
    long now = (long)time(NULL);
    (void)state;

    it_houston_grant("victim@example.com", "\"system\":[\"" MONITORING "\"]");
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 200);
    hdr = it_fmt("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    claims = it_fmt("{\"uuid\":\"%s\",\"email\":\"victim@example.com\",\"iat\":%ld,\"exp\":%ld}",
                    json_string_value(json_object_get(payload, "uuid")), now, now + 3600);
    forged = make_jwt(hdr, claims, other, NULL);
    PEM_write_bio_PUBKEY(bio, pub);
    BIO_write(bio, "", 1);
    BIO_get_mem_data(bio, &pem);
    hs256 = make_jwt("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, NULL, pem);
    none = make_jwt("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, NULL, NULL);
    truncated = strndup(tok, strlen(tok) - 2);
    half = strndup(tok, strlen(tok) / 2);

    assert_int_equal(by_cookie(forged, GRAFANA_URL), 401);
    assert_int_equal(by_cookie(hs256, GRAFANA_URL), 401);
    assert_int_equal(by_cookie(none, GRAFANA_URL), 401);
    assert_int_equal(by_cookie(truncated, GRAFANA_URL), 401);
    assert_int_equal(by_cookie(half, GRAFANA_URL), 401);
    assert_int_equal(by_cookie("garbage", GRAFANA_URL), 401);
    assert_int_equal(by_cookie(expired, GRAFANA_URL), 401);
    assert_int_equal(by_bearer(forged, GRAFANA_URL), 401);
    assert_int_equal(by_bearer(expired, GRAFANA_URL), 401);
    /* A valid signature for a user Houston does not have. */
    assert_int_equal(by_cookie(nobody, GRAFANA_URL), 401);
    /* The genuine one still works: the refusals were about the tokens. */
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 200);

    BIO_free(bio);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(other);
    json_decref(payload);
    free(kid);
    free(hdr);
    free(claims);
    free(forged);
    free(hs256);
    free(none);
    free(truncated);
    free(half);
    free(tok);
    free(expired);
    free(nobody);
}

/* ---- the decision ---- */

static void test_monitoring_needs_the_permission(void **state)
{
    char *tok = it_houston_session("mona@example.com", 3600);
    (void)state;
    it_houston_grant("mona@example.com",
                     "\"deployments\":{\"" RELEASE "\":[\"DEPLOYMENT_ADMIN\"]}");
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 401);
    assert_int_equal(by_cookie(tok, KIBANA_URL), 401);
    it_houston_grant("mona@example.com", "\"system\":[\"system.iam.update\"]");
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 401);
    it_houston_grant("mona@example.com", "\"system\":[\"" MONITORING "\"]");
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 200);
    assert_int_equal(by_cookie(tok, "http://KIBANA.astro.example.com:8080/x"), 200);
    /* The first label decides, and only grafana/kibana: not a label merely containing it. */
    assert_int_equal(by_cookie(tok, "https://grafana2." IT_BASE_DOMAIN "/"), 401);
    assert_int_equal(by_cookie(tok, "https://my-grafana." IT_BASE_DOMAIN "/"), 401);
    free(tok);
}

/* Other hosts, and a missing or unusable X-Original-URL: 401 even with every grant. */
static void test_other_hosts_and_bad_original_url_are_401(void **state)
{
    static const char *const urls[] = {
        "https://app." IT_BASE_DOMAIN "/",
        "https://houston." IT_BASE_DOMAIN "/v1",
        "https://airflow." IT_BASE_DOMAIN "/",
        "https://-airflow." IT_BASE_DOMAIN "/",
        "https://" RELEASE "-airflowx." IT_BASE_DOMAIN "/",
        "https://" PATH_HOST "/" RELEASE "/",
        "https://" PATH_HOST "/" RELEASE "/grafana",
        "https://" PATH_HOST "/",
        "grafana." IT_BASE_DOMAIN "/d",
        "/d/home",
        "https:///d",
        "https://gra fana." IT_BASE_DOMAIN "/",
        "https://[::1]/",
        "https://grafana." IT_BASE_DOMAIN ":x/",
        "",
    };
    char *tok = it_houston_session("all@example.com", 3600);
    (void)state;
    it_houston_grant("all@example.com", "\"system\":[\"" MONITORING "\",\"system.airflow.admin\"],"
                                        "\"deployments\":{\"" RELEASE "\":[\"DEPLOYMENT_ADMIN\"]}");
    assert_int_equal(by_cookie(tok, NULL), 401);
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        long st = by_cookie(tok, urls[i]);
        if (st != 401)
            fail_msg("X-Original-URL \"%s\" answered %ld, want 401", urls[i], st);
    }
    /* The control: the same session passes where it should. */
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 200);
    assert_int_equal(by_cookie(tok, "https://user:pw@grafana." IT_BASE_DOMAIN ":443/x"), 200);
    free(tok);
}

/* The Airflow JWT in the Authorization response header, checked with the stand-in's key. */
static void expect_airflow_jwt(const struct it_resp *r, EVP_PKEY *key, const char *host,
                               const char *role, const char *uuid)
{
    const char *h = it_resp_header(r, "Authorization");
    json_t *claims, *roles;
    long iat, exp, now = (long)time(NULL);

    assert_int_equal(r->status, 200);
    it_expect_prefix(h, "Bearer ");
    claims = verified_claims(h + 7, key);
    assert_string_equal(json_string_value(json_object_get(claims, "aud")), host);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), uuid);
    assert_string_equal(json_string_value(json_object_get(claims, "email")), "ada@example.com");
    assert_string_equal(json_string_value(json_object_get(claims, "full_name")), "Ada Lovelace");
    roles = json_object_get(claims, "roles");
    assert_int_equal(json_array_size(roles), 1);
    assert_string_equal(json_string_value(json_array_get(roles, 0)), role);
    iat = (long)json_integer_value(json_object_get(claims, "iat"));
    exp = (long)json_integer_value(json_object_get(claims, "exp"));
    assert_true(iat >= now - 60 && iat <= now + 5);
    assert_int_equal(exp - iat, AIRFLOW_JWT_TTL);
    assert_string_equal(it_resp_header(r, "username"), "Ada@Example.com");
    assert_string_equal(it_resp_header(r, "email"), "ada@example.com");
    json_decref(claims);
}

static void test_deployment_role_mints_a_jwt(void **state)
{
    char *tok = it_houston_session("Ada@Example.com", 3600), *a = it_fmt("Bearer %s", tok);
    EVP_PKEY *key = standin_key(NULL);
    json_t *session = verified_claims(tok, key);
    const char *uuid = json_string_value(json_object_get(session, "uuid"));
    struct it_resp r;
    (void)state;

    it_houston_grant("Ada@Example.com", "\"full_name\":\"Ada Lovelace\",\"deployments\":{\"" RELEASE
                                        "\":[\"DEPLOYMENT_ADMIN\"]}");
    by_header(a, AIRFLOW_URL, &r);
    expect_airflow_jwt(&r, key, AIRFLOW_HOST, "Admin", uuid);
    it_resp_cleanup(&r);
    by_header(a, "https://" FLOWER_HOST "/", &r);
    expect_airflow_jwt(&r, key, FLOWER_HOST, "Admin", uuid);
    it_resp_cleanup(&r);
    /* Path-routed deployments: the release comes from the path. */
    by_header(a, "https://" PATH_HOST "/" RELEASE "/airflow/home", &r);
    expect_airflow_jwt(&r, key, PATH_HOST, "Admin", uuid);
    it_resp_cleanup(&r);
    by_header(a, "https://" PATH_HOST "/" RELEASE "/flower", &r);
    expect_airflow_jwt(&r, key, PATH_HOST, "Admin", uuid);
    it_resp_cleanup(&r);
    /* Lesser roles map to lesser Airflow roles. */
    it_houston_grant("Ada@Example.com",
                     "\"deployments\":{\"" RELEASE "\":[\"DEPLOYMENT_VIEWER\"]}");
    by_header(a, AIRFLOW_URL, &r);
    expect_airflow_jwt(&r, key, AIRFLOW_HOST, "Viewer", uuid);
    it_resp_cleanup(&r);
    it_houston_grant("Ada@Example.com", "\"deployments\":{\"" RELEASE
                                        "\":[\"DEPLOYMENT_VIEWER\",\"DEPLOYMENT_EDITOR\"]}");
    by_header(a, AIRFLOW_URL, &r);
    expect_airflow_jwt(&r, key, AIRFLOW_HOST, "User", uuid);
    it_resp_cleanup(&r);
    /* A system Airflow permission reaches every deployment. */
    it_houston_grant("Ada@Example.com", "\"deployments\":{},\"system\":[\"system.airflow.op\"]");
    by_header(a, "https://" OTHER_RELEASE "-airflow." IT_BASE_DOMAIN "/", &r);
    expect_airflow_jwt(&r, key, OTHER_RELEASE "-airflow." IT_BASE_DOMAIN, "Op", uuid);
    it_resp_cleanup(&r);
    EVP_PKEY_free(key);
    json_decref(session);
    free(a);
    free(tok);
}

/* A role on one deployment opens that one only. */
static void test_other_users_deployment_is_401(void **state)
{
    char *ann = it_houston_session("ann@example.com", 3600),
         *bob = it_houston_session("bob@example.com", 3600);
    (void)state;
    it_houston_grant("ann@example.com", "\"deployments\":{\"" RELEASE "\":[\"DEPLOYMENT_ADMIN\"]}");
    it_houston_grant("bob@example.com",
                     "\"deployments\":{\"" OTHER_RELEASE "\":[\"DEPLOYMENT_ADMIN\"]}");
    assert_int_equal(by_cookie(ann, AIRFLOW_URL), 200);
    assert_int_equal(by_cookie(bob, AIRFLOW_URL), 401);
    assert_int_equal(by_cookie(bob, "https://" FLOWER_HOST "/"), 401);
    assert_int_equal(by_cookie(bob, "https://" PATH_HOST "/" RELEASE "/airflow"), 401);
    assert_int_equal(by_cookie(ann, "https://" OTHER_RELEASE "-airflow." IT_BASE_DOMAIN "/"), 401);
    assert_int_equal(by_cookie(bob, "https://" OTHER_RELEASE "-airflow." IT_BASE_DOMAIN "/"), 200);
    assert_int_equal(by_cookie(ann, GRAFANA_URL), 401); /* a deployment role is not monitoring */
    free(ann);
    free(bob);
}

/* Houston reads its database on every call: a grant removed applies to the next one. */
static void test_removed_permission_applies_next_call(void **state)
{
    char *tok = it_houston_session("rem@example.com", 3600);
    (void)state;
    it_houston_grant("rem@example.com",
                     "\"system\":[\"" MONITORING "\"],\"deployments\":{\"" RELEASE
                     "\":[\"DEPLOYMENT_EDITOR\"]}");
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 200);
    assert_int_equal(by_cookie(tok, AIRFLOW_URL), 200);
    it_houston_grant("rem@example.com", "\"system\":[]");
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 401);
    assert_int_equal(by_cookie(tok, AIRFLOW_URL), 200);
    it_houston_grant("rem@example.com", "\"deployments\":{}");
    assert_int_equal(by_cookie(tok, AIRFLOW_URL), 401);
    it_houston_grant("rem@example.com", "\"system\":[\"" MONITORING "\"]");
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 200);
    it_houston_grant("rem@example.com",
                     "\"delete\":true"); /* the user is gone: the session is nobody's */
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 401);
    free(tok);
}

/* ---- counters, latency, faults ---- */

static void test_counters(void **state)
{
    char *tok = it_houston_session("count@example.com", 3600), *digest = it_sha256_hex(tok);
    json_t *stats;
    (void)state;
    it_houston_grant("count@example.com", "\"system\":[\"" MONITORING "\"]");
    assert_int_equal(stat_int("calls"), 0); /* the per-test reset cleared them */
    for (int i = 0; i < 3; i++)
        assert_int_equal(by_cookie(tok, GRAFANA_URL), 200);
    assert_int_equal(by_bearer(tok, KIBANA_URL), 200);
    assert_int_equal(by_cookie(NULL, GRAFANA_URL), 401);
    stats = authz_stats();
    assert_int_equal(json_integer_value(json_object_get(stats, "calls")), 5);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(stats, "by_status"), "200")), 4);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(stats, "by_status"), "401")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "keys")), 3);
    json_decref(stats);
    /* Per (credential, host): the cookie and the bearer are one credential. */
    assert_int_equal(it_houston_key_count(digest, "grafana." IT_BASE_DOMAIN), 3);
    assert_int_equal(it_houston_key_count(digest, "kibana." IT_BASE_DOMAIN), 1);
    assert_int_equal(it_houston_key_count(NULL, "grafana." IT_BASE_DOMAIN), 1);
    free(digest);
    free(tok);
}

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

/* n concurrent GETs with headers (one connection each); every status in st; wall ms. */
static long concurrent(int n, const char *const *headers, long *st)
{
    CURLM *m = curl_multi_init();
    CURL *h[CONCURRENT];
    struct curl_slist *hdrs = NULL;
    char *url = it_fmt("%s/v1/authorization", it_env()->houston_url);
    long t0 = it_now_ms(), deadline = t0 + MULTI_DEADLINE_MS, wall;
    int running = n;

    assert_true(n <= CONCURRENT);
    for (size_t i = 0; headers[i] != NULL; i++)
        hdrs = curl_slist_append(hdrs, headers[i]);
    for (int i = 0; i < n; i++) {
        h[i] = curl_easy_init();
        curl_easy_setopt(h[i], CURLOPT_URL, url);
        curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h[i], CURLOPT_TIMEOUT_MS, (long)MULTI_DEADLINE_MS);
        curl_easy_setopt(h[i], CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, discard);
        curl_multi_add_handle(m, h[i]);
    }
    while (running > 0 && it_now_ms() < deadline) {
        curl_multi_perform(m, &running);
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    wall = it_now_ms() - t0;
    for (int i = 0; i < n; i++) {
        st[i] = 0;
        curl_easy_getinfo(h[i], CURLINFO_RESPONSE_CODE, &st[i]);
        curl_multi_remove_handle(m, h[i]);
        curl_easy_cleanup(h[i]);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    free(url);
    assert_int_equal(running, 0);
    return wall;
}

static void test_pool_latency(void **state)
{
    char *tok = it_houston_session("load@example.com", 3600);
    char *ck = it_fmt("Cookie: %s=%s", IT_AUTH_COOKIE, tok);
    const char *h[] = {ck, "X-Original-URL: " GRAFANA_URL, NULL};
    long st[CONCURRENT], wall;
    json_t *stats;
    (void)state;

    it_houston_grant("load@example.com", "\"system\":[\"" MONITORING "\"]");
    /* 20 at once into 10 slots of 50 ms: two rounds. */
    set_pool(50, 10);
    wall = concurrent(CONCURRENT, h, st);
    for (int i = 0; i < CONCURRENT; i++)
        assert_int_equal(st[i], 200);
    if (wall < 100)
        fail_msg("20 calls through 10 slots of 50 ms took %ld ms, want >= 100", wall);
    stats = authz_stats();
    assert_int_equal(json_integer_value(json_object_get(stats, "calls")), CONCURRENT);
    assert_true(json_integer_value(json_object_get(stats, "max_in_flight")) <= 10);
    assert_int_equal(json_integer_value(json_object_get(stats, "in_flight")), 0);
    assert_int_equal(json_integer_value(json_object_get(stats, "latency_ms")), 50);
    json_decref(stats);
    /* One slot: strictly one after another. */
    set_pool(50, 1);
    wall = concurrent(4, h, st);
    if (wall < 200)
        fail_msg("4 calls through 1 slot of 50 ms took %ld ms, want >= 200", wall);
    assert_int_equal(stat_int("max_in_flight"), 1);
    /* The reset restores the flags' model: no latency, 10 slots. */
    assert_int_equal(it_peers_reset(it_env()), 0);
    assert_int_equal(stat_int("latency_ms"), 0);
    assert_int_equal(stat_int("pool"), 10);
    free(ck);
    free(tok);
}

static void test_faults_500_and_stall(void **state)
{
    char *tok = it_houston_session("fault@example.com", 3600);
    struct it_resp r;
    char *a = it_fmt("Bearer %s", tok);
    long t0;
    (void)state;
    it_houston_grant("fault@example.com", "\"system\":[\"" MONITORING "\"]");
    assert_int_equal(it_houston_fault(it_env(), "{\"authz_status\":500}"), 200);
    assert_int_equal(by_header(a, GRAFANA_URL, &r), 500);
    assert_null(it_resp_header(&r, "username"));
    it_resp_cleanup(&r);
    assert_int_equal(it_houston_fault(it_env(), "{\"authz_status\":null,\"authz_delay_ms\":400}"),
                     200);
    t0 = it_now_ms();
    assert_int_equal(by_bearer(tok, GRAFANA_URL), 200);
    assert_true(it_now_ms() - t0 >= 400);
    assert_int_equal(it_houston_fault(it_env(), "{\"authz_delay_ms\":-1}"), 400);
    assert_int_equal(it_houston_fault(it_env(), "{\"authz_delay_ms\":null}"), 200);
    assert_int_equal(stat_int("calls"), 2);
    free(a);
    free(tok);
}

/* ---- what each call carried ---- */

/* GET /v1/authorization on the stand-in as a raw request: the request line, then head (CRLF
 * header lines, Host among them), then "Connection: close". The status (0: no answer). */
static int raw_authz(const char *head)
{
    char *req = it_fmt("GET /v1/authorization HTTP/1.1\r\n%sConnection: close\r\n\r\n", head);
    int st = it_raw_exchange(it_env()->houston_port, req, strlen(req), NULL, 0, RAW_ANSWER_MS);
    free(req);
    return st;
}

/* The stand-in's /__test/authz/headers (caller decrefs). */
static json_t *header_records(void)
{
    json_t *j = it_houston_get_json(it_env(), "/__test/authz/headers");
    assert_true(json_is_array(j));
    return j;
}

/* Asserts that member what of rec is exactly the names in want (NULL-ended), in order. */
static void expect_names(json_t *rec, const char *what, const char *const *want)
{
    json_t *list = json_object_get(rec, what), *expected = json_array();
    char *got, *exp;

    for (size_t i = 0; want[i] != NULL; i++)
        json_array_append_new(expected, json_string(want[i]));
    if (json_equal(list, expected)) {
        json_decref(expected);
        return;
    }
    got = json_dumps(list, JSON_COMPACT | JSON_ENCODE_ANY);
    exp = json_dumps(expected, JSON_COMPACT);
    fail_msg("%s recorded %s, want %s", what, got != NULL ? got : "(none)", exp);
}

/* One call with known headers, two Cookie headers among them: the record holds exactly their
 * names, lower-cased and in order, and the cookies' names; no value appears anywhere. */
static void test_header_names_recorded(void **state)
{
    static const char *const headers[] = {"host",         "x-original-url", "cookie",
                                          "x-mixed-case", "authorization",  "cookie",
                                          "x-empty",      "connection",     NULL};
    static const char *const cookies[] = {"theme", IT_AUTH_COOKIE, "", "", "second", NULL};
    static const char *const values[] = {"v4lue", "Bearer", "127.0.0.1", "grafana", "close"};
    static const char *const direct[] = {"host", "user-agent", "accept", "x-one", "cookie", NULL};
    static const char *const direct_cookies[] = {"a", "b", NULL};
    const char *by_curl[] = {"X-One: v4lue-6", "Cookie: a=v4lue-7; b=v4lue-8", NULL};
    char *tok = it_houston_session("names@example.com", 3600), *head, *text;
    json_t *recs;
    struct it_resp r;
    (void)state;

    it_houston_grant("names@example.com", "\"system\":[\"" MONITORING "\"]");
    recs = header_records();
    assert_int_equal(json_array_size(recs), 0); /* the per-test reset cleared them */
    json_decref(recs);
    head = it_fmt("Host: 127.0.0.1\r\nX-Original-URL: " GRAFANA_URL "\r\n"
                  "Cookie: theme=dark-v4lue-1; %s=%s;  lonely-v4lue-2 ; =v4lue-3;;\r\n"
                  "X-MiXeD-CaSe: v4lue-4\r\nAuthorization: Bearer %s\r\n"
                  "Cookie: second=v4lue-5\r\nX-Empty:\r\n",
                  IT_AUTH_COOKIE, tok, tok);
    assert_int_equal(raw_authz(head), 200);
    assert_int_equal(authz(by_curl, &r), 401);
    it_resp_cleanup(&r);

    recs = header_records();
    assert_int_equal(json_array_size(recs), 2);
    expect_names(json_array_get(recs, 0), "headers", headers);
    expect_names(json_array_get(recs, 0), "cookies", cookies);
    assert_true(json_is_false(json_object_get(json_array_get(recs, 0), "truncated")));
    /* curl's own Host, User-Agent (the harness's browser) and Accept, then ours. */
    expect_names(json_array_get(recs, 1), "headers", direct);
    expect_names(json_array_get(recs, 1), "cookies", direct_cookies);
    text = json_dumps(recs, JSON_COMPACT);
    assert_non_null(text);
    if (strstr(text, tok) != NULL)
        fail_msg("the session token is in the header records");
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        if (strstr(text, values[i]) != NULL)
            fail_msg("a header value (\"%s\") is in the header records: %s", values[i], text);
    }
    json_decref(recs);
    free(text);
    free(head);
    free(tok);
}

/* Bounded: the last 64 calls, each with at most 256 names per list (then truncated); cleared
 * with the counters. */
static void test_header_records_bounded_and_cleared(void **state)
{
    static char head[HEADER_HEAD_CAP];
    static const char *const first_kept[] = {"host", "x-seq-6", "connection", NULL};
    json_t *recs, *rec;
    char *last;
    size_t o;
    (void)state;

    for (int i = 0; i < HEADER_CALLS; i++) {
        snprintf(head, sizeof(head), "Host: 127.0.0.1\r\nX-Seq-%d: 1\r\n", i);
        assert_int_equal(raw_authz(head), 401);
    }
    recs = header_records();
    assert_int_equal(json_array_size(recs), HEADER_RECORDS);
    expect_names(json_array_get(recs, 0), "headers", first_kept);
    json_decref(recs);

    /* More names than a record keeps: the first 256 of each list, flagged. */
    o = (size_t)snprintf(head, sizeof(head), "Host: 127.0.0.1\r\nCookie: c0=1");
    for (int i = 1; i < MANY_NAMES; i++)
        o += (size_t)snprintf(head + o, sizeof(head) - o, "; c%d=1", i);
    o += (size_t)snprintf(head + o, sizeof(head) - o, "\r\n");
    for (int i = 0; i < MANY_NAMES; i++)
        o += (size_t)snprintf(head + o, sizeof(head) - o, "X-H-%d: 1\r\n", i);
    assert_true(o < sizeof(head));
    assert_int_equal(raw_authz(head), 401);
    recs = header_records();
    rec = json_array_get(recs, json_array_size(recs) - 1);
    assert_int_equal(json_array_size(json_object_get(rec, "headers")), NAMES_KEPT);
    assert_int_equal(json_array_size(json_object_get(rec, "cookies")), NAMES_KEPT);
    last = it_fmt("c%d", NAMES_KEPT - 1);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(rec, "cookies"), NAMES_KEPT - 1)), last);
    free(last);
    assert_true(json_is_true(json_object_get(rec, "truncated")));
    json_decref(recs);

    assert_int_equal(it_houston_post(it_env(), "/__test/authz", "{\"clear_counters\":true}"), 200);
    recs = header_records();
    assert_int_equal(json_array_size(recs), 0);
    json_decref(recs);
}

/* ---- down and up ---- */

static char state_dir[320];

static int setup(void **state)
{
    return it_group_setup_houston_state(state, state_dir, sizeof(state_dir));
}

/* Stopped, Houston answers nothing; started again on the same state it knows the same
 * sessions and grants, and counts from zero. */
static void test_down_and_up_keeps_sessions_and_grants(void **state)
{
    struct it_env *e = it_env();
    const char *const extra[] = {"--state-dir", state_dir, NULL};
    char *tok = it_houston_session("durable@example.com", 3600), *kid = NULL, *kid2 = NULL;
    char *ck = it_fmt("Cookie: %s=%s", IT_AUTH_COOKIE, tok);
    char *key_file = it_fmt("%s/session-key.pem", state_dir);
    const char *h[] = {ck, "X-Original-URL: " GRAFANA_URL, NULL};
    struct it_client *c = it_client_new(e);
    char *url = it_fmt("%s/v1/authorization", e->houston_url);
    EVP_PKEY *k1 = standin_key(&kid), *k2;
    struct stat st;
    struct it_resp r;
    (void)state;

    it_houston_grant("durable@example.com", "\"system\":[\"" MONITORING "\"]");
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 200);
    assert_int_equal(stat(key_file, &st), 0);
    assert_int_equal(st.st_mode & 077, 0); /* the signing key is the owner's only */

    it_proc_stop(&e->houston);
    assert_int_equal(e->houston.exit_code, 0);
    assert_int_not_equal(it_request_headers(c, "GET", url, NULL, NULL, h, &r), 0);
    assert_int_not_equal(r.curl_code, CURLE_OK);
    it_resp_cleanup(&r);

    assert_int_equal(it_houston_start_args(e, extra), 0);
    k2 = standin_key(&kid2);
    assert_string_equal(kid2, kid);
    assert_int_equal(EVP_PKEY_eq(k1, k2), 1);
    assert_int_equal(stat_int("calls"), 0);
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 200);
    assert_int_equal(stat_int("calls"), 1);
    /* The grants survived too: removing one still applies at once. */
    it_houston_grant("durable@example.com", "\"system\":[]");
    assert_int_equal(by_cookie(tok, GRAFANA_URL), 401);

    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    it_client_free(c);
    free(url);
    free(key_file);
    free(kid);
    free(kid2);
    free(ck);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_no_session_is_401, it_test_setup),
        cmocka_unit_test_setup(test_cookie_session_from_a_real_login, it_test_setup),
        cmocka_unit_test_setup(test_bearer_session_and_header_precedence, it_test_setup),
        cmocka_unit_test_setup(test_bad_sessions_are_401, it_test_setup),
        cmocka_unit_test_setup(test_monitoring_needs_the_permission, it_test_setup),
        cmocka_unit_test_setup(test_other_hosts_and_bad_original_url_are_401, it_test_setup),
        cmocka_unit_test_setup(test_deployment_role_mints_a_jwt, it_test_setup),
        cmocka_unit_test_setup(test_other_users_deployment_is_401, it_test_setup),
        cmocka_unit_test_setup(test_removed_permission_applies_next_call, it_test_setup),
        cmocka_unit_test_setup(test_counters, it_test_setup),
        cmocka_unit_test_setup(test_pool_latency, it_test_setup),
        cmocka_unit_test_setup(test_faults_500_and_stall, it_test_setup),
        cmocka_unit_test_setup(test_header_names_recorded, it_test_setup),
        cmocka_unit_test_setup(test_header_records_bounded_and_cleared, it_test_setup),
        cmocka_unit_test_setup(test_down_and_up_keeps_sessions_and_grants, it_test_setup),
        cmocka_unit_test(it_test_processes_exit_clean),
    };
    return cmocka_run_group_tests(tests, setup, it_group_teardown);
}
