/* The sidecar's gate, GET /v1/authorization (issue 15; /work/gate-spec.md), as nginx's
 * auth_request and an attacker see it: real sidecars in front of the real Houston stand-in.
 *
 * What is asserted: the status and the exact Authorization, username and email values relayed
 * (compared byte for byte with the stand-in's own answer to the same request), which credential
 * Houston read (the stand-in's per-credential call keys), how many calls reached Houston (its
 * counters), which headers and cookies reached Houston (the names the stand-in records for each
 * call: exactly the gate's four and curl's three, and Houston's cookie alone), and the sidecar's
 * cache metrics. The stand-in records names, never values, so a browser's User-Agent relayed in
 * place of the sidecar's own would not show.
 *
 * Sidecars with other settings (short TTLs, a cache off, four entries, one mebibyte, a short
 * request timeout) run in the spare slots, each with its own log, and each must exit cleanly when
 * it is stopped. The stand-in keeps its key and users in a state directory, so it can go down and
 * come back with the same sessions. Tests use their own users and scopes: the main sidecar's
 * cache outlives a test. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include "harness.h"

#define GATE_PATH "/v1/authorization"
#define RELEASE "quasaric-sun-9051"
#define OTHER_RELEASE "geodetic-star-1234"
#define GRAFANA "https://grafana." IT_BASE_DOMAIN
#define KIBANA "https://kibana." IT_BASE_DOMAIN
#define GRAFANA_HOST "grafana." IT_BASE_DOMAIN
#define KIBANA_HOST "kibana." IT_BASE_DOMAIN
#define AIRFLOW_HOST RELEASE "-airflow." IT_BASE_DOMAIN
#define PATH_HOST "deployments." IT_BASE_DOMAIN
#define MONITORING "system.monitoring.get"
#define GRANT_MONITORING "\"system\":[\"" MONITORING "\"]"
#define NO_GRANT "\"system\":[]"
#define CONCURRENT 100
#define STANDIN_LATENCY_MS 300
#define SEND_WINDOW_MS 200 /* every concurrent request sent within this: they overlap */
#define CROWD 20
#define GIVE_UP 20
#define GIVE_UP_AFTER_MS 150
#define GIVE_UP_LATENCY_MS 600
#define MULTI_DEADLINE_MS 20000
#define SHORT_TTL "2"
#define PAST_SHORT_TTL_MS 2500
#define DENY_TTL_DEFAULT_MS 2000
#define DOWN_TIMEOUT_MS "400" /* the Houston-down sidecar's requestTimeoutMs */
#define ANSWER_MARGIN_MS 1000
#define STALL_MS "3000"
#define CAP_ENTRIES 4
#define CAP_HOSTS 10
#define MAX_HEADERS 24
#define BYTE_CAP (1024 * 1024)
#define BYTE_CAP_MAX_HOSTS 4000
#define BYTE_CAP_CHECK_EVERY 100

/* The spare sidecars' slots and logs. */
#define SLOT_TTL 0
#define SLOT_PLAIN 1
#define SLOT_DOWN 2
#define LOG_TTL2 "sidecar-allow-ttl2.log"
#define LOG_CAP "sidecar-cap4.log"
#define LOG_COALESCE "sidecar-coalesce.log"
#define LOG_COALESCE_TTL0 "sidecar-coalesce-ttl0.log"
#define LOG_TTL0 "sidecar-allow-ttl0.log"
#define LOG_FLOOD "sidecar-flood.log"
#define FLOOD 8         /* misses sent at once to a sidecar that lets 4 wait (16 connections) */
#define FLOOD_WAITING 4 /* maxConnections / 4 */
#define FLOOD_STALL_MS "4000"
#define ROOM_MS 1500 /* a probe or a login beside the flood answers within this */
#define LOG_DENY0 "sidecar-deny-ttl0.log"
#define LOG_DOWN "sidecar-houston-down.log"
#define LOG_BYTES "sidecar-bytes1.log"

static char state_dir[320];

/* ---- the stand-in ---- */

/* A session JWT for email, as Houston's callback mints it; noted as a secret. Caller frees. */
static char *session_for(const char *email)
{
    char *out = it_houston_session(email, 3600);
    it_note_secret(out);
    return out;
}

/* How many calls reached the stand-in's /v1/authorization since the last reset. */
static long calls(void)
{
    json_t *j = it_houston_get_json(it_env(), "/__test/authz");
    json_t *v = json_object_get(j, "calls");
    long n = json_is_integer(v) ? (long)json_integer_value(v) : -1;
    json_decref(j);
    assert_true(n >= 0);
    return n;
}

static void expect_calls(long want, const char *what)
{
    long n = calls();
    if (n != want)
        fail_msg("%s: Houston saw %ld calls, want %ld", what, n, want);
}

static void set_latency(long latency_ms)
{
    char *body = it_fmt("{\"latency_ms\":%ld,\"pool\":10,\"clear_counters\":true}", latency_ms);
    assert_int_equal(it_houston_post(it_env(), "/__test/authz", body), 200);
    free(body);
}

/* The calls Houston counted for (the credential it read, host); credential NULL: none. */
static long key_count(const char *credential, const char *host)
{
    char *digest = credential != NULL ? it_sha256_hex(credential) : NULL;
    long n = it_houston_key_count(digest, host);
    free(digest);
    return n;
}

/* ---- requests ---- */

/* GET <base>/v1/authorization as nginx's auth_request sends it: the browser's cookies (with
 * Houston's cookie = token when token is not NULL), X-Original-URL (when original is not
 * NULL), X-Original-Method, then extra ("Name: value", NULL-ended, may be NULL). A fresh
 * client each time, so no jar adds anything. With base = the stand-in's URL it asks Houston
 * directly. Returns the status; r is the caller's to clean up. */
static long gate(const char *base, const char *token, const char *original,
                 const char *const *extra, struct it_resp *r)
{
    struct it_client *c = it_client_new(it_env());
    char *ck = token != NULL
                   ? it_fmt("Cookie: _ga=GA1.2.345.678; %s=%s; theme=dark", IT_AUTH_COOKIE, token)
                   : NULL;
    char *xo = original != NULL ? it_fmt("X-Original-URL: %s", original) : NULL;
    char *url = it_fmt("%s%s", base, GATE_PATH);
    const char *h[MAX_HEADERS + 1];
    size_t n = 0;

    assert_non_null(c);
    if (ck != NULL)
        h[n++] = ck;
    if (xo != NULL)
        h[n++] = xo;
    h[n++] = "X-Original-Method: GET";
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        assert_true(n < MAX_HEADERS);
        h[n++] = extra[i];
    }
    h[n] = NULL;
    if (it_request_headers(c, "GET", url, NULL, NULL, h, r) != 0)
        fail_msg("GET %s: transfer failed (curl %d)", url, r->curl_code);
    free(url);
    free(xo);
    free(ck);
    it_client_free(c);
    return r->status;
}

/* gate's status alone. */
static long gate_short(const char *base, const char *token, const char *original)
{
    struct it_resp r;
    long st = gate(base, token, original, NULL, &r);
    it_resp_cleanup(&r);
    return st;
}

static const char *main_base(void)
{
    return it_env()->sidecar_url;
}

/* Asserts the gate's answer at base: want status, and username (NULL: the header absent). */
static void expect_gate(const char *base, const char *token, const char *original, long want,
                        const char *username)
{
    struct it_resp r;
    long st = gate(base, token, original, NULL, &r);
    const char *u = it_resp_header(&r, "username");
    if (st != want)
        fail_msg("gate %s for %s: %ld, want %ld", base, original, st, want);
    if (username == NULL && (u != NULL || it_resp_header(&r, "email") != NULL ||
                             it_resp_header(&r, "Authorization") != NULL))
        fail_msg("gate %s for %s: identity headers (username \"%s\"), want none", base, original,
                 u != NULL ? u : "(none)");
    if (username != NULL && (u == NULL || strcmp(u, username) != 0))
        fail_msg("gate %s for %s: username \"%s\", want \"%s\"", base, original,
                 u != NULL ? u : "(none)", username);
    if (r.body_len != 0)
        fail_msg("gate %s for %s: a %zu-byte body, want none", base, original, r.body_len);
    it_resp_cleanup(&r);
}

/* Notes the JWT of a relayed "Authorization: Bearer <jwt>" as a secret. */
static void note_bearer(const struct it_resp *r)
{
    const char *a = it_resp_header(r, "Authorization");
    if (a != NULL && strncmp(a, "Bearer ", 7) == 0)
        it_note_secret(a + 7);
}

/* Asserts that the gate's and Houston's answers carry header name with the same bytes, or
 * that neither carries it. */
static void expect_same_header(const struct it_resp *g, const struct it_resp *d, const char *name)
{
    const char *a = it_resp_header(g, name), *b = it_resp_header(d, name);
    if (a == NULL && b == NULL)
        return;
    if (a == NULL || b == NULL || strcmp(a, b) != 0)
        fail_msg("%s: the gate relayed \"%s\", Houston answered \"%s\"", name,
                 a != NULL ? a : "(none)", b != NULL ? b : "(none)");
}

/* ---- metrics ---- */

struct cache_stats {
    double hits, misses, coalesced, evictions, expirations, entries, bytes, failures, houston_calls,
        shed;
};

/* The value of an unlabelled sample in Prometheus text, or -1. */
static double sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    const char *p = text;
    while (p != NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

static double need(const char *text, const char *name)
{
    double v = sample(text, name);
    if (v < 0)
        fail_msg("/metrics lacks %s", name);
    return v;
}

/* The gate's metrics at base, all read from one /metrics answer. */
static void cache_stats(const char *base, struct cache_stats *s)
{
    struct it_client *c = it_client_new(it_env());
    char *url = it_fmt("%s/metrics", base);
    struct it_resp r;
    assert_int_equal(it_get(c, url, &r), 0);
    assert_int_equal(r.status, 200);
    s->hits = need(r.body, "houston_auth_authz_cache_hits_total");
    s->misses = need(r.body, "houston_auth_authz_cache_misses_total");
    s->coalesced = need(r.body, "houston_auth_authz_cache_coalesced_total");
    s->evictions = need(r.body, "houston_auth_authz_cache_evictions_total");
    s->expirations = need(r.body, "houston_auth_authz_cache_expirations_total");
    s->entries = need(r.body, "houston_auth_authz_cache_entries");
    s->bytes = need(r.body, "houston_auth_authz_cache_bytes");
    s->failures = need(r.body, "houston_auth_authz_houston_failures_total");
    s->houston_calls = need(r.body, "houston_auth_authz_houston_seconds_count");
    s->shed = need(r.body, "houston_auth_authz_shed_total");
    it_resp_cleanup(&r);
    free(url);
    it_client_free(c);
}

static void expect_delta(const char *name, double before, double after, double want)
{
    if (after - before != want)
        fail_msg("%s moved by %.0f, want %.0f", name, after - before, want);
}

/* ---- spare sidecars ---- */

/* Starts a plain-HTTP sidecar in slot (as behind the ingress); its origin into base. */
static void plain_start(int slot, const char *logname, const char *const *extra, char *base,
                        size_t len)
{
    struct it_env *e = it_env();
    it_proc_stop(&e->spare[slot]);
    assert_int_equal(
        it_sidecar_start_plain(e, &e->spare[slot], e->spare_ports[slot], logname, extra, true), 0);
    snprintf(base, len, "http://127.0.0.1:%d", e->spare_ports[slot]);
}

/* Stops slot's sidecar and asserts it ended cleanly: status 0, no sanitizer report. */
static void spare_stop(int slot)
{
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                        "runtime error:", "WARNING: ThreadSanitizer"};
    struct it_proc *p = &it_env()->spare[slot];
    char *text;
    it_proc_stop(p);
    if (p->exit_code != 0)
        fail_msg("%s ended with status %d (log %s)", p->name, p->exit_code, p->log);
    text = it_read_file(p->log, NULL);
    assert_non_null(text);
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
        if (strstr(text, marks[i]) != NULL)
            fail_msg("\"%s\" in %s", marks[i], p->log);
    }
    free(text);
}

/* ---- the decision relayed ---- */

/* Sleeps ms; nothing when ms <= 0. */
static void nap(long ms)
{
    struct timespec ts;
    if (ms <= 0)
        return;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* Sleeps until just past the wall clock's next second. */
static void next_second(void)
{
    struct timespec now, ts = {0, 0};
    long ns;
    clock_gettime(CLOCK_REALTIME, &now);
    ns = 1000000000L - now.tv_nsec + 20000000L;
    ts.tv_sec = ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    nanosleep(&ts, NULL);
}

/* The gate's answer g and Houston's own d to one request for the Airflow host, both within one
 * second of the wall clock (Houston's JWT holds iat and exp in seconds: only then are they the
 * same bytes). Each try takes a new first path segment, so the gate cannot answer it from its
 * cache; the URL used is left in url. */
static void gate_and_houston(const char *token, char *url, size_t len, struct it_resp *g,
                             struct it_resp *d)
{
    for (int i = 0; i < 3; i++) {
        time_t t;
        snprintf(url, len, "https://" AIRFLOW_HOST "/try-%d/home?tab=1", i);
        next_second();
        t = time(NULL);
        gate(main_base(), token, url, NULL, g);
        gate(it_env()->houston_url, token, url, NULL, d);
        if (time(NULL) == t)
            return;
        it_resp_cleanup(g);
        it_resp_cleanup(d);
    }
    fail_msg("three tries could not make two requests within one second");
}

/* A deployment role: 200 with Houston's Authorization, username and email, byte for byte;
 * the cached answer again the same bytes without asking Houston; monitoring: 200 with username
 * and email and no Authorization; no session, or a host Houston does not open: 401. */
static void test_decisions_relayed_exactly(void **state)
{
    const char *email = "Ada.Relay@Example.com";
    char *tok = session_for(email), url[256];
    struct it_resp g, d, again;
    long n;
    (void)state;

    it_houston_grant(email, "\"full_name\":\"Ada Lovelace\"," GRANT_MONITORING
                            ",\"deployments\":{\"" RELEASE "\":[\"DEPLOYMENT_ADMIN\"]}");
    gate_and_houston(tok, url, sizeof(url), &g, &d);
    note_bearer(&g);
    note_bearer(&d);
    assert_int_equal(g.status, 200);
    assert_int_equal(d.status, 200);
    it_expect_prefix(it_resp_header(&g, "Authorization"), "Bearer ey");
    expect_same_header(&g, &d, "Authorization");
    expect_same_header(&g, &d, "username");
    expect_same_header(&g, &d, "email");
    assert_string_equal(it_resp_header(&g, "username"), email);
    assert_string_equal(it_resp_header(&g, "email"), "ada.relay@example.com");
    assert_int_equal(g.body_len, 0);

    n = calls();
    assert_int_equal(gate(main_base(), tok, url, NULL, &again), 200);
    expect_same_header(&again, &g, "Authorization");
    expect_same_header(&again, &g, "username");
    expect_same_header(&again, &g, "email");
    expect_calls(n, "the same request again");
    it_resp_cleanup(&again);
    it_resp_cleanup(&g);
    it_resp_cleanup(&d);

    /* Monitoring: the identity, and no Airflow JWT. */
    assert_int_equal(gate(main_base(), tok, GRAFANA "/relay/home", NULL, &g), 200);
    assert_int_equal(gate(it_env()->houston_url, tok, GRAFANA "/relay/home", NULL, &d), 200);
    assert_null(it_resp_header(&g, "Authorization"));
    expect_same_header(&g, &d, "username");
    expect_same_header(&g, &d, "email");
    assert_string_equal(it_resp_header(&g, "username"), email);
    it_resp_cleanup(&g);
    it_resp_cleanup(&d);

    /* No session; a host Houston opens to nobody: Houston's 401, asked each time. */
    n = calls();
    expect_gate(main_base(), NULL, GRAFANA "/relay-none/home", 401, NULL);
    expect_calls(n + 1, "no session");
    expect_gate(main_base(), tok, "https://app." IT_BASE_DOMAIN "/relay/", 401, NULL);
    expect_calls(n + 2, "another host");
    assert_int_equal(key_count(tok, "app." IT_BASE_DOMAIN), 1);
    free(tok);
}

/* The gate's own refusal of original (NULL: no X-Original-URL): 401 with no identity, and
 * Houston not asked. Its body is not checked: the spec asks an empty body of relayed answers. */
static void expect_refused(const char *token, const char *original)
{
    struct it_resp r;
    long before = calls(), st = gate(main_base(), token, original, NULL, &r);
    const char *shown = original != NULL ? original : "(none)";
    if (st != 401)
        fail_msg("X-Original-URL \"%s\" answered %ld, want 401", shown, st);
    if (it_resp_header(&r, "username") != NULL || it_resp_header(&r, "email") != NULL ||
        it_resp_header(&r, "Authorization") != NULL)
        fail_msg("X-Original-URL \"%s\": a refusal with identity headers", shown);
    it_resp_cleanup(&r);
    if (calls() != before)
        fail_msg("X-Original-URL \"%s\" reached Houston", shown);
}

/* No X-Original-URL, or one that is not an absolute http or https URL with a host: 401, and
 * Houston is never asked. */
static void test_bad_original_url_refused_without_houston(void **state)
{
    static const char *const urls[] = {
        "",
        "/d/home",
        "d/home",
        "grafana." IT_BASE_DOMAIN "/d/home",
        "//grafana." IT_BASE_DOMAIN "/d/home",
        "https:///d/home",
        "https://",
        "https:grafana." IT_BASE_DOMAIN "/d/home",
        "ftp://grafana." IT_BASE_DOMAIN "/d/home",
        "file:///etc/passwd",
        "javascript://grafana." IT_BASE_DOMAIN "/%0aalert(1)",
    };
    char *tok = session_for("refused@example.com");
    (void)state;

    it_houston_grant("refused@example.com", GRANT_MONITORING);
    expect_refused(tok, NULL);
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        expect_refused(tok, urls[i]);
    expect_calls(0, "the refusals");
    /* The control: the same session passes, asking Houston once. */
    expect_gate(main_base(), tok, GRAFANA "/refused-control/x", 200, "refused@example.com");
    expect_calls(1, "the control");
    free(tok);
}

/* A HEAD of the gate with curl's NOBODY (no body is awaited); the status and, in headers
 * (cap bytes), the answer's header lines. */
static long head_gate(const char *token, const char *original, char *headers, size_t cap)
{
    struct it_client *c = it_client_new(it_env());
    char *url = it_fmt("%s%s", main_base(), GATE_PATH);
    char *ck = it_fmt("Cookie: %s=%s", IT_AUTH_COOKIE, token);
    char *xo = it_fmt("X-Original-URL: %s", original);
    struct curl_slist *h = curl_slist_append(curl_slist_append(NULL, ck), xo);
    FILE *f = fmemopen(headers, cap, "w");
    long st = 0;

    assert_non_null(f);
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c->h, CURLOPT_HEADERDATA, f);
    assert_int_equal(curl_easy_perform(c->h), CURLE_OK);
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &st);
    fclose(f);
    curl_slist_free_all(h);
    free(xo);
    free(ck);
    free(url);
    it_client_free(c);
    return st;
}

/* GET and HEAD answer; any other method: 405 with Allow: GET, HEAD, and Houston not asked. */
static void test_methods(void **state)
{
    static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    char *tok = session_for("methods@example.com");
    char *url = it_fmt("%s%s", main_base(), GATE_PATH), *ck, *xo;
    struct it_client *c = it_client_new(it_env());
    char heads[4096];
    (void)state;

    it_houston_grant("methods@example.com", GRANT_MONITORING);
    ck = it_fmt("Cookie: %s=%s", IT_AUTH_COOKIE, tok);
    xo = it_fmt("X-Original-URL: %s", GRAFANA "/methods/x");
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        const char *h[] = {ck, xo, NULL};
        struct it_resp r;
        assert_int_equal(it_request_headers(c, methods[i], url, "text/plain", "x", h, &r), 0);
        if (r.status != 405)
            fail_msg("%s answered %ld, want 405", methods[i], r.status);
        if (it_resp_header(&r, "Allow") == NULL ||
            strcmp(it_resp_header(&r, "Allow"), "GET, HEAD") != 0)
            fail_msg("%s: Allow \"%s\", want \"GET, HEAD\"", methods[i],
                     it_resp_header(&r, "Allow") != NULL ? it_resp_header(&r, "Allow") : "(none)");
        it_resp_cleanup(&r);
    }
    expect_calls(0, "methods refused");
    memset(heads, 0, sizeof(heads));
    assert_int_equal(head_gate(tok, GRAFANA "/methods/x", heads, sizeof(heads) - 1), 200);
    for (char *q = heads; *q != '\0'; q++)
        *q = (char)tolower((unsigned char)*q);
    if (strstr(heads, "\nusername: methods@example.com\r\n") == NULL)
        fail_msg("HEAD: no username header in:\n%s", heads);
    expect_gate(main_base(), tok, GRAFANA "/methods/x", 200, "methods@example.com");
    free(ck);
    free(xo);
    free(url);
    it_client_free(c);
    free(tok);
}

/* ---- what reaches Houston ---- */

/* The header names the gate may send Houston: the four it builds (ask_houston in
 * src/handle_authz.c: cookie and authorization only when it has one to forward) and the three
 * libcurl writes on every request of the sidecar's client (src/http_client.c):
 *   host        HTTP/1.1 requires it (RFC 9112 §3.2); curl writes it from Houston's URL.
 *   user-agent  CURLOPT_USERAGENT "houston-auth/<version>", the sidecar's own. Names alone
 *               cannot tell it from a browser's User-Agent relayed in its place (such a line
 *               would replace curl's): that one rests on ask_houston building its lines from
 *               its four values only.
 *   accept      curl's default Accept (any media type), written when a request names none.
 * Nothing else: no Expect (http_client.c removes it, and a GET has no body), no
 * Accept-Encoding (CURLOPT_ACCEPT_ENCODING NULL), no X-Request-Id (the gate names none). */
static const char *const to_houston[] = {
    "host",          "user-agent",     "accept",           "cookie",
    "authorization", "x-original-url", "x-original-method"};

/* A browser's headers besides its cookies, none of which may reach Houston. */
static const char *const browser_headers[] = {
    "X-Forwarded-For: 203.0.113.9, 10.0.0.1",
    "X-Real-IP: 203.0.113.9",
    "Forwarded: for=203.0.113.9;host=evil.example",
    "X-Forwarded-Host: evil.example",
    "X-Forwarded-Proto: https",
    "Referer: " GRAFANA "/d/home",
    "Origin: " GRAFANA,
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Accept-Language: de-CH,de;q=0.9,en;q=0.8",
    "Sec-Fetch-Site: same-origin",
    "X-Request-Id: 5b1f0c4e-browser",
    "X-Houston-Extra: 1",
};
#define BROWSER_HEADERS (sizeof(browser_headers) / sizeof(browser_headers[0]))
#define OTHER_COOKIES "Cookie: _ga=GA1.2.3.4; theme=dark" /* none of them Houston's */

/* a and b (each when not NULL), then the browser's headers, NULL-ended, into out. */
static void with_browser(const char **out, size_t cap, const char *a, const char *b)
{
    size_t n = 0;
    assert_true(cap >= BROWSER_HEADERS + 3);
    if (a != NULL)
        out[n++] = a;
    if (b != NULL)
        out[n++] = b;
    for (size_t i = 0; i < BROWSER_HEADERS; i++)
        out[n++] = browser_headers[i];
    out[n] = NULL;
}

/* Whether one of the browser's headers is named name (lower case). */
static bool from_browser(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < BROWSER_HEADERS; i++) {
        if (strncasecmp(browser_headers[i], name, n) == 0 && browser_headers[i][n] == ':')
            return true;
    }
    return false;
}

/* Whether name is one the gate may send, given what it had to forward. */
static bool may_reach_houston(const char *name, bool with_auth, bool with_cookie)
{
    if (strcmp(name, "authorization") == 0)
        return with_auth;
    if (strcmp(name, "cookie") == 0)
        return with_cookie;
    for (size_t i = 0; i < sizeof(to_houston) / sizeof(to_houston[0]); i++) {
        if (strcmp(name, to_houston[i]) == 0)
            return true;
    }
    return false;
}

/* Asserts what Houston received on its last call (the stand-in's /__test/authz/headers): the
 * names of to_houston each exactly once and nothing else, authorization only when with_auth,
 * cookie only when with_cookie, and then a Cookie header of one pair: Houston's. */
static void expect_houston_received(const char *what, bool with_auth, bool with_cookie)
{
    json_t *recs = it_houston_get_json(it_env(), "/__test/authz/headers");
    json_t *rec = json_array_get(recs, json_array_size(recs) - 1);
    json_t *names = json_object_get(rec, "headers"), *cookies = json_object_get(rec, "cookies");
    char *text = rec != NULL ? json_dumps(rec, JSON_COMPACT) : NULL;
    const char *shown = text != NULL ? text : "(no record)";
    size_t i;
    json_t *v;

    if (!json_is_array(names) || !json_is_array(cookies) ||
        !json_is_false(json_object_get(rec, "truncated")))
        fail_msg("%s: no usable record of what Houston received: %s", what, shown);
    json_array_foreach(names, i, v)
    {
        const char *name = json_string_value(v);
        if (name == NULL || !may_reach_houston(name, with_auth, with_cookie))
            fail_msg("%s: Houston received a \"%s\" header%s: %s", what, name,
                     name != NULL && from_browser(name) ? " (the browser's)" : "", shown);
    }
    for (size_t k = 0; k < sizeof(to_houston) / sizeof(to_houston[0]); k++) {
        size_t seen = 0;
        if (!may_reach_houston(to_houston[k], with_auth, with_cookie))
            continue;
        json_array_foreach(names, i, v)
        {
            seen += strcmp(json_string_value(v), to_houston[k]) == 0;
        }
        if (seen != 1)
            fail_msg("%s: Houston received %zu \"%s\" headers, want 1: %s", what, seen,
                     to_houston[k], shown);
    }
    if (json_array_size(cookies) != (with_cookie ? 1u : 0u) ||
        (with_cookie && strcmp(json_string_value(json_array_get(cookies, 0)), IT_AUTH_COOKIE) != 0))
        fail_msg("%s: Houston's Cookie header held %s, want %s alone", what, shown,
                 with_cookie ? IT_AUTH_COOKIE : "nothing");
    free(text);
    json_decref(recs);
}

/* ---- what is forwarded ---- */

/* Houston reads the credential the browser meant: the first pair of its cookie among other
 * cookies and headers, the Authorization header over the cookie (as Houston does), and nothing
 * when the browser sent no Houston cookie. */
static void test_forwarded_credential(void **state)
{
    char *a = session_for("fwd-a@example.com"), *b = session_for("fwd-b@example.com");
    char *two = it_fmt("Cookie: _ga=GA1.2.3.4; %s=%s; theme=dark; %s=%s; sid=s%%3Aabc",
                       IT_AUTH_COOKIE, a, IT_AUTH_COOKIE, b);
    char *bearer_b = it_fmt("Authorization: Bearer %s", b);
    char *lookalike = it_fmt("Cookie: x%s=%s; %s_old=%s", IT_AUTH_COOKIE, a, IT_AUTH_COOKIE, a);
    const char *noise[] = {two,
                           "X-Forwarded-For: 203.0.113.9, 10.0.0.1",
                           "X-Real-IP: 203.0.113.9",
                           "Forwarded: for=203.0.113.9;host=evil.example",
                           "X-Forwarded-Host: evil.example",
                           "Referer: https://evil.example/",
                           "Accept-Language: de-CH",
                           "X-Houston-Extra: 1",
                           NULL};
    const char *by_header[] = {bearer_b, NULL};
    const char *bad_header[] = {"Authorization: Bearer not-a-jwt", NULL};
    const char *no_houston_cookie[] = {lookalike, NULL};
    struct it_resp r;
    (void)state;

    it_houston_grant("fwd-a@example.com", GRANT_MONITORING);
    it_houston_grant("fwd-b@example.com", GRANT_MONITORING);
    /* Two Houston cookies among others: the first is the session. */
    assert_int_equal(gate(main_base(), NULL, GRAFANA "/fwd/x", noise, &r), 200);
    assert_string_equal(it_resp_header(&r, "username"), "fwd-a@example.com");
    it_resp_cleanup(&r);
    assert_int_equal(key_count(a, GRAFANA_HOST), 1);
    assert_int_equal(key_count(b, GRAFANA_HOST), 0);
    expect_calls(1, "two Houston cookies");
    expect_houston_received("two Houston cookies", false, true);

    /* Authorization with a cookie: Houston reads the header. */
    assert_int_equal(gate(main_base(), a, KIBANA "/fwd/x", by_header, &r), 200);
    assert_string_equal(it_resp_header(&r, "username"), "fwd-b@example.com");
    it_resp_cleanup(&r);
    assert_int_equal(key_count(b, KIBANA_HOST), 1);
    assert_int_equal(key_count(a, KIBANA_HOST), 0);

    /* A's cookie alone is cached for /fwd; with a bad Authorization beside it Houston says 401
     * (a bad header hides a good cookie): not the cached 200. */
    expect_gate(main_base(), a, GRAFANA "/fwd/x", 200, "fwd-a@example.com");
    expect_calls(2, "A's cookie again");
    assert_int_equal(gate(main_base(), a, GRAFANA "/fwd/x", bad_header, &r), 401);
    assert_null(it_resp_header(&r, "username"));
    it_resp_cleanup(&r);
    assert_int_equal(key_count("not-a-jwt", GRAFANA_HOST), 1);

    /* Cookies that only look like Houston's: Houston read no credential. */
    assert_int_equal(gate(main_base(), NULL, GRAFANA "/fwd-lookalike/x", no_houston_cookie, &r),
                     401);
    it_resp_cleanup(&r);
    assert_int_equal(key_count(NULL, GRAFANA_HOST), 1);
    expect_calls(4, "the look-alike cookies");
    expect_houston_received("the look-alike cookies", false, false);
    free(two);
    free(bearer_b);
    free(lookalike);
    free(a);
    free(b);
}

/* Exactly the headers the gate must send reach Houston, from a browser's request full of others
 * (forwarding headers, Referer, its User-Agent, Accept-Language, X-Request-Id, two more
 * cookies): the four the gate builds and curl's three, and a Cookie header of Houston's pair
 * alone. Without Authorization, or with an empty one, no Authorization reaches Houston; without
 * Houston's cookie, no Cookie header. */
static void test_forwarded_headers(void **state)
{
    char *tok = session_for("hdrs@example.com");
    char *bearer = it_fmt("Authorization: Bearer %s", tok);
    const char *h[BROWSER_HEADERS + 3];
    struct it_resp r;
    (void)state;

    it_houston_grant("hdrs@example.com", GRANT_MONITORING);
    /* Houston's cookie among the browser's (gate() adds _ga and theme) and Authorization. */
    with_browser(h, sizeof(h) / sizeof(h[0]), bearer, NULL);
    assert_int_equal(gate(main_base(), tok, GRAFANA "/hdrs-both/x", h, &r), 200);
    it_resp_cleanup(&r);
    expect_calls(1, "a cookie and Authorization");
    expect_houston_received("a cookie and Authorization", true, true);

    /* No Authorization. */
    with_browser(h, sizeof(h) / sizeof(h[0]), NULL, NULL);
    assert_int_equal(gate(main_base(), tok, GRAFANA "/hdrs-cookie/x", h, &r), 200);
    it_resp_cleanup(&r);
    expect_calls(2, "a cookie alone");
    expect_houston_received("a cookie alone", false, true);

    /* An empty Authorization ("Name;" is how curl sends a header with no value). */
    with_browser(h, sizeof(h) / sizeof(h[0]), "Authorization;", NULL);
    assert_int_equal(gate(main_base(), tok, GRAFANA "/hdrs-empty/x", h, &r), 200);
    it_resp_cleanup(&r);
    expect_calls(3, "an empty Authorization");
    expect_houston_received("an empty Authorization", false, true);

    /* Authorization and only other cookies: no Cookie header reaches Houston. */
    with_browser(h, sizeof(h) / sizeof(h[0]), bearer, OTHER_COOKIES);
    assert_int_equal(gate(main_base(), NULL, KIBANA "/hdrs-bearer/x", h, &r), 200);
    it_resp_cleanup(&r);
    expect_calls(4, "Authorization and other cookies");
    expect_houston_received("Authorization and other cookies", true, false);

    /* Neither: X-Original-URL and X-Original-Method alone, and Houston's 401. */
    with_browser(h, sizeof(h) / sizeof(h[0]), OTHER_COOKIES, NULL);
    assert_int_equal(gate(main_base(), NULL, GRAFANA "/hdrs-none/x", h, &r), 401);
    it_resp_cleanup(&r);
    expect_calls(5, "no credential");
    expect_houston_received("no credential", false, false);
    free(bearer);
    free(tok);
}

/* ---- the cache ---- */

/* One key per credential and scope (scheme://authority/first-segment): the same scope again
 * is a hit; another first segment, host, scheme or port is a miss; hits and misses counted. */
static void test_cache_scope(void **state)
{
    static const struct {
        const char *url;
        long want;
        bool miss;
    } steps[] = {
        {GRAFANA "/d/a", 200, true},
        {GRAFANA "/d/a/more", 200, false},
        {GRAFANA "/d/a?panel=2", 200, false},
        {GRAFANA "/d/b", 200, true},
        {GRAFANA "/x/a", 200, true},
        {GRAFANA "/y", 200, true},
        {KIBANA "/d/a", 200, true},
        {"http://grafana." IT_BASE_DOMAIN "/d/a", 200, true},
        {"https://grafana." IT_BASE_DOMAIN ":8443/d/a", 200, true},
        {"https://" PATH_HOST "/" RELEASE "/airflow/home", 200, true},
        {"https://" PATH_HOST "/" RELEASE "/airflow/dags?x=1", 200, false},
        {"https://" PATH_HOST "/" RELEASE "/flower/", 200, true},
        /* The release without a component is not a deployment UI to Houston: its 401 must not
         * come from the release's cached 200, nor the other way round. */
        {"https://" PATH_HOST "/" RELEASE "/admin/", 401, true},
        {"https://" PATH_HOST "/" OTHER_RELEASE "/airflow/home", 401, true},
    };
    const size_t n = sizeof(steps) / sizeof(steps[0]);
    char *tok = session_for("scope@example.com");
    struct cache_stats s0, s1;
    long misses = 0;
    (void)state;

    it_houston_grant("scope@example.com",
                     GRANT_MONITORING ",\"deployments\":{\"" RELEASE "\":[\"DEPLOYMENT_VIEWER\"]}");
    cache_stats(main_base(), &s0);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++) {
            struct it_resp r;
            long st = gate(main_base(), tok, steps[i].url, NULL, &r);
            note_bearer(&r);
            it_resp_cleanup(&r);
            if (st != steps[i].want)
                fail_msg("round %d, %s: %ld, want %ld", round, steps[i].url, st, steps[i].want);
            misses += round == 0 && steps[i].miss;
            if (calls() != misses)
                fail_msg("round %d, %s: Houston saw %ld calls, want %ld", round, steps[i].url,
                         calls(), misses);
        }
    }
    cache_stats(main_base(), &s1);
    expect_delta("houston_auth_authz_cache_misses_total", s0.misses, s1.misses, (double)misses);
    expect_delta("houston_auth_authz_cache_hits_total", s0.hits, s1.hits, (double)(2 * n) - misses);
    expect_delta("houston_auth_authz_houston_seconds_count", s0.houston_calls, s1.houston_calls,
                 (double)misses);
    expect_delta("houston_auth_authz_cache_coalesced_total", s0.coalesced, s1.coalesced, 0);
    assert_true(s1.entries >= (double)misses);
    assert_true(s1.bytes > s0.bytes);
    free(tok);
}

/* A 401 and a 403 are kept for the deny TTL (default 2 s), then asked again. */
static void test_denials_kept_for_deny_ttl(void **state)
{
    char *tok = session_for("deny@example.com");
    long t0, st;
    (void)state;

    it_houston_grant("deny@example.com", NO_GRANT);
    t0 = it_now_ms();
    expect_gate(main_base(), tok, GRAFANA "/deny/x", 401, NULL);
    expect_calls(1, "the first denial");
    it_houston_grant("deny@example.com", GRANT_MONITORING);
    /* Answered before t0 + the TTL, it must be the kept denial (Houston now says 200). */
    st = gate_short(main_base(), tok, GRAFANA "/deny/x");
    if (it_now_ms() - t0 < DENY_TTL_DEFAULT_MS && (st != 401 || calls() != 1))
        fail_msg("within the deny TTL: %ld after %ld calls, want the kept 401 (1 call)", st,
                 calls());
    nap(PAST_SHORT_TTL_MS - (it_now_ms() - t0));
    expect_gate(main_base(), tok, GRAFANA "/deny/x", 200, "deny@example.com");
    expect_calls(2, "past the deny TTL");

    /* Houston's 403 is a denial too. */
    assert_int_equal(it_houston_fault(it_env(), "{\"authz_status\":403}"), 200);
    expect_gate(main_base(), tok, GRAFANA "/deny-403/x", 403, NULL);
    expect_gate(main_base(), tok, GRAFANA "/deny-403/x", 403, NULL);
    expect_calls(3, "a 403 twice");
    free(tok);
}

/* With a 2 s allow TTL a removed grant still passes right after the removal (cached), and is
 * refused once the TTL has run out; the expiry is counted. */
static void test_removed_grant_within_allow_ttl(void **state)
{
    const char *const extra[] = {"AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=" SHORT_TTL, NULL};
    char *tok = session_for("ttl@example.com"), base[128];
    struct cache_stats s0, s1;
    long t0;
    (void)state;

    it_spare_start(SLOT_TTL, LOG_TTL2, extra, base, sizeof(base));
    it_houston_grant("ttl@example.com", GRANT_MONITORING);
    t0 = it_now_ms();
    expect_gate(base, tok, GRAFANA "/ttl/x", 200, "ttl@example.com");
    it_houston_grant("ttl@example.com", NO_GRANT);
    expect_gate(base, tok, GRAFANA "/ttl/x", 200, "ttl@example.com");
    expect_calls(1, "right after the removal");
    cache_stats(base, &s0);
    nap(PAST_SHORT_TTL_MS - (it_now_ms() - t0));
    expect_gate(base, tok, GRAFANA "/ttl/x", 401, NULL);
    expect_calls(2, "past the allow TTL");
    cache_stats(base, &s1);
    assert_true(s1.expirations - s0.expirations >= 1);
    spare_stop(SLOT_TTL);
    free(tok);
}

/* The sidecar's /logout at the main sidecar with the browser's Houston cookie = token. */
static void logout(const char *token)
{
    char *ck = it_fmt("Cookie: _ga=GA1.2.345.678; %s=%s", IT_AUTH_COOKIE, token);
    char *url = it_fmt("%s/logout", main_base());
    const char *h[] = {ck, NULL};
    struct it_client *c = it_client_new(it_env());
    struct it_resp r;
    assert_int_equal(it_request_headers(c, "GET", url, NULL, NULL, h, &r), 0);
    assert_int_equal(r.status, 302);
    it_resp_cleanup(&r);
    it_client_free(c);
    free(url);
    free(ck);
}

/* /logout with the browser's cookie drops every cached decision of that cookie at once (all
 * its scopes), and no other browser's. */
static void test_logout_drops_cached_decisions(void **state)
{
    char *a = session_for("bye-a@example.com"), *b = session_for("bye-b@example.com");
    (void)state;

    it_houston_grant("bye-a@example.com", GRANT_MONITORING);
    it_houston_grant("bye-b@example.com", GRANT_MONITORING);
    expect_gate(main_base(), a, GRAFANA "/bye/x", 200, "bye-a@example.com");
    expect_gate(main_base(), a, KIBANA "/bye/x", 200, "bye-a@example.com");
    expect_gate(main_base(), b, GRAFANA "/bye/x", 200, "bye-b@example.com");
    expect_calls(3, "three decisions");
    it_houston_grant("bye-a@example.com", NO_GRANT);
    expect_gate(main_base(), a, GRAFANA "/bye/x", 200, "bye-a@example.com");
    expect_calls(3, "A cached");

    logout(a);
    expect_gate(main_base(), a, GRAFANA "/bye/x", 401, NULL);
    expect_calls(4, "A after the logout, grafana");
    expect_gate(main_base(), a, KIBANA "/bye/x", 401, NULL);
    expect_calls(5, "A after the logout, kibana");
    expect_gate(main_base(), b, GRAFANA "/bye/x", 200, "bye-b@example.com");
    expect_calls(5, "B after A's logout");
    free(a);
    free(b);
}

/* An empty Authorization header is Houston's "none": it reads the cookie, so the decision is
 * the cookie's, and /logout with that cookie must drop it too. */
static void test_logout_drops_decisions_read_from_the_cookie(void **state)
{
    const char *const empty[] = {"Authorization;", NULL};
    char *a = session_for("bye-empty@example.com");
    struct it_resp r;
    (void)state;

    it_houston_grant("bye-empty@example.com", GRANT_MONITORING);
    assert_int_equal(gate(main_base(), a, GRAFANA "/bye-empty/x", empty, &r), 200);
    it_resp_cleanup(&r);
    assert_int_equal(key_count(a, GRAFANA_HOST), 1); /* Houston read the cookie */
    it_houston_grant("bye-empty@example.com", NO_GRANT);
    logout(a);
    gate(main_base(), a, GRAFANA "/bye-empty/x", empty, &r);
    free(a);
    if (r.status != 401 || calls() != 2)
        fail_msg("after /logout with the cookie, the same request (empty Authorization) "
                 "answered %ld, Houston saw %ld calls; want 401 from Houston's second call",
                 r.status, calls());
    it_resp_cleanup(&r);
}

/* A request outstanding on the gate: its own multi handle around a client (resolve, CA). */
struct pending {
    CURLM *m;
    struct it_client *c;
    struct curl_slist *hdrs;
    char *url;
    int running;
};

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

static void pending_start(struct pending *p, const char *base, const char *token,
                          const char *original)
{
    char *ck = it_fmt("Cookie: %s=%s", IT_AUTH_COOKIE, token);
    char *xo = it_fmt("X-Original-URL: %s", original);
    memset(p, 0, sizeof(*p));
    p->m = curl_multi_init();
    p->c = it_client_new(it_env());
    p->url = it_fmt("%s%s", base, GATE_PATH);
    p->hdrs = curl_slist_append(curl_slist_append(NULL, ck), xo);
    curl_easy_setopt(p->c->h, CURLOPT_URL, p->url);
    curl_easy_setopt(p->c->h, CURLOPT_HTTPHEADER, p->hdrs);
    curl_easy_setopt(p->c->h, CURLOPT_WRITEFUNCTION, discard);
    curl_multi_add_handle(p->m, p->c->h);
    p->running = 1;
    free(xo);
    free(ck);
}

/* Drives the transfer until Houston has seen want calls (bounded). */
static void pending_until_calls(struct pending *p, long want)
{
    long deadline = it_now_ms() + MULTI_DEADLINE_MS;
    while (calls() < want && p->running > 0 && it_now_ms() < deadline) {
        curl_multi_perform(p->m, &p->running);
        curl_multi_poll(p->m, NULL, 0, 20, NULL);
    }
    assert_true(calls() >= want);
}

/* Finishes the transfer (bounded); its status. */
static long pending_finish(struct pending *p)
{
    long deadline = it_now_ms() + MULTI_DEADLINE_MS, st = 0;
    while (p->running > 0 && it_now_ms() < deadline) {
        curl_multi_perform(p->m, &p->running);
        if (p->running > 0)
            curl_multi_poll(p->m, NULL, 0, 20, NULL);
    }
    assert_int_equal(p->running, 0);
    curl_easy_getinfo(p->c->h, CURLINFO_RESPONSE_CODE, &st);
    curl_multi_remove_handle(p->m, p->c->h);
    curl_multi_cleanup(p->m);
    curl_easy_setopt(p->c->h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(p->hdrs);
    it_client_free(p->c);
    free(p->url);
    return st;
}

/* A decision being fetched when its browser logs out is not stored: begun before the logout,
 * it may predate it (spec: the next gate request calls Houston). */
static void test_logout_during_a_fetch(void **state)
{
    char *a = session_for("bye-flight@example.com");
    struct pending p;
    (void)state;

    it_houston_grant("bye-flight@example.com", GRANT_MONITORING);
    set_latency(1000);
    pending_start(&p, main_base(), a, GRAFANA "/bye-flight/x");
    pending_until_calls(&p, 1);
    logout(a);
    assert_int_equal(pending_finish(&p), 200);
    set_latency(0);
    it_houston_grant("bye-flight@example.com", NO_GRANT);
    expect_gate(main_base(), a, GRAFANA "/bye-flight/x", 401, NULL);
    expect_calls(1, "after the logout during the fetch"); /* set_latency cleared the counters */
    free(a);
}

/* n GETs of the gate at the plain-HTTP base at once, each on its own connection and given up
 * after timeout_ms, with token's cookie and X-Original-URL original; statuses in st (0: given
 * up). Fails unless all were sent within SEND_WINDOW_MS, the premise that they overlap
 * Houston's latency. */
static void many(const char *base, int n, const char *token, const char *original, long timeout_ms,
                 long *st)
{
    CURLM *m = curl_multi_init();
    CURL *h[CONCURRENT];
    char *url = it_fmt("%s%s", base, GATE_PATH);
    char *ck = it_fmt("Cookie: %s=%s", IT_AUTH_COOKIE, token);
    char *xo = it_fmt("X-Original-URL: %s", original);
    struct curl_slist *hdrs = curl_slist_append(curl_slist_append(NULL, ck), xo);
    long deadline = it_now_ms() + MULTI_DEADLINE_MS;
    curl_off_t sent = 0, latest = 0;
    int running = n;

    assert_true(n <= CONCURRENT);
    for (int i = 0; i < n; i++) {
        h[i] = curl_easy_init();
        curl_easy_setopt(h[i], CURLOPT_URL, url);
        curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h[i], CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(h[i], CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, discard);
        curl_multi_add_handle(m, h[i]);
    }
    while (running > 0 && it_now_ms() < deadline) {
        curl_multi_perform(m, &running);
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    for (int i = 0; i < n; i++) {
        st[i] = 0;
        curl_easy_getinfo(h[i], CURLINFO_RESPONSE_CODE, &st[i]);
        curl_easy_getinfo(h[i], CURLINFO_PRETRANSFER_TIME_T, &sent);
        latest = sent > latest ? sent : latest;
        curl_multi_remove_handle(m, h[i]);
        curl_easy_cleanup(h[i]);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    free(xo);
    free(ck);
    free(url);
    assert_int_equal(running, 0);
    if (latest > (curl_off_t)SEND_WINDOW_MS * 1000)
        fail_msg("the last of %d requests was sent after %ld ms: they did not overlap", n,
                 (long)(latest / 1000));
}

/* One person's request in a crowd: its handle, headers and the answer's header lines. */
struct shot {
    CURL *h;
    struct curl_slist *hdrs;
    char head[2048];
    size_t len;
};

static size_t on_head(char *p, size_t sz, size_t n, void *ud)
{
    struct shot *s = ud;
    size_t len = sz * n, room = sizeof(s->head) - 1 - s->len;
    memcpy(s->head + s->len, p, len < room ? len : room);
    s->len += len < room ? len : room;
    s->head[s->len] = '\0';
    return len;
}

static void shot_start(CURLM *m, struct shot *s, const char *url, const char *token,
                       const char *original)
{
    char *ck = it_fmt("Cookie: %s=%s", IT_AUTH_COOKIE, token);
    char *xo = it_fmt("X-Original-URL: %s", original);
    memset(s, 0, sizeof(*s));
    s->h = curl_easy_init();
    s->hdrs = curl_slist_append(curl_slist_append(NULL, ck), xo);
    curl_easy_setopt(s->h, CURLOPT_URL, url);
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdrs);
    curl_easy_setopt(s->h, CURLOPT_TIMEOUT_MS, (long)MULTI_DEADLINE_MS);
    curl_easy_setopt(s->h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(s->h, CURLOPT_HEADERFUNCTION, on_head);
    curl_easy_setopt(s->h, CURLOPT_HEADERDATA, s);
    curl_multi_add_handle(m, s->h);
    free(xo);
    free(ck);
}

/* Ends s: 200 with username want, or fails. */
static void shot_check(CURLM *m, struct shot *s, const char *want)
{
    char line[128];
    long st = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &st);
    curl_multi_remove_handle(m, s->h);
    curl_easy_cleanup(s->h);
    curl_slist_free_all(s->hdrs);
    snprintf(line, sizeof(line), "\nusername: %s\r\n", want);
    if (st != 200 || strstr(s->head, line) == NULL)
        fail_msg("%s's request in the crowd: %ld, header lines:\n%s", want, st, s->head);
}

/* n people (tokens[i], emails[i]) at the plain-HTTP base at once: each gets its own 200. */
static void crowd(const char *base, int n, char *const *tokens, char (*emails)[48],
                  const char *original)
{
    CURLM *m = curl_multi_init();
    struct shot s[CROWD];
    char *url = it_fmt("%s%s", base, GATE_PATH);
    long deadline = it_now_ms() + MULTI_DEADLINE_MS;
    int running = n;

    assert_true(n <= CROWD);
    for (int i = 0; i < n; i++)
        shot_start(m, &s[i], url, tokens[i], original);
    while (running > 0 && it_now_ms() < deadline) {
        curl_multi_perform(m, &running);
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    for (int i = 0; i < n; i++)
        shot_check(m, &s[i], emails[i]);
    curl_multi_cleanup(m);
    free(url);
    assert_int_equal(running, 0);
}

static void expect_all(const long *st, int n, long want)
{
    for (int i = 0; i < n; i++) {
        if (st[i] != want)
            fail_msg("request %d of %d: %ld, want %ld", i, n, st[i], want);
    }
}

/* 100 concurrent misses of one key, Houston taking 300 ms: all 200, one Houston call, 99
 * coalesced. Twenty people at once: twenty calls, each answer its own person's. Browsers that
 * hang up while the call is out leave the gate working. With the allow TTL 0 (nothing stored)
 * concurrent misses still share one call, and the next request asks again. */
static void test_concurrent_misses_share_one_call(void **state)
{
    const char *const ttl0[] = {"AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=0", NULL};
    char *tok = session_for("many@example.com"), base[64], *toks[CROWD], emails[CROWD][48];
    struct cache_stats s0, s1;
    long st[CONCURRENT];
    (void)state;

    it_houston_grant("many@example.com", GRANT_MONITORING);
    plain_start(SLOT_PLAIN, LOG_COALESCE, NULL, base, sizeof(base));
    set_latency(STANDIN_LATENCY_MS);
    cache_stats(base, &s0);
    many(base, CONCURRENT, tok, GRAFANA "/many/x", MULTI_DEADLINE_MS, st);
    expect_all(st, CONCURRENT, 200);
    expect_calls(1, "100 concurrent misses");
    cache_stats(base, &s1);
    expect_delta("houston_auth_authz_cache_misses_total", s0.misses, s1.misses, 1);
    expect_delta("houston_auth_authz_cache_coalesced_total", s0.coalesced, s1.coalesced,
                 CONCURRENT - 1);
    expect_delta("houston_auth_authz_cache_hits_total", s0.hits, s1.hits, 0);
    expect_delta("houston_auth_authz_houston_seconds_count", s0.houston_calls, s1.houston_calls, 1);

    /* A crowd of people at once: one call each, and each answer is its own person's. */
    for (int i = 0; i < CROWD; i++) {
        snprintf(emails[i], sizeof(emails[i]), "crowd-%d@example.com", i);
        it_houston_grant(emails[i], GRANT_MONITORING);
        toks[i] = session_for(emails[i]);
    }
    set_latency(STANDIN_LATENCY_MS);
    crowd(base, CROWD, toks, emails, GRAFANA "/crowd/x");
    expect_calls(CROWD, "a crowd of distinct people");
    for (int i = 0; i < CROWD; i++)
        free(toks[i]);

    /* Browsers that hang up while the call is out: the gate carries on. */
    set_latency(GIVE_UP_LATENCY_MS);
    many(base, GIVE_UP, tok, GRAFANA "/many-gone/x", GIVE_UP_AFTER_MS, st);
    expect_all(st, GIVE_UP, 0);
    nap(GIVE_UP_LATENCY_MS);
    expect_gate(base, tok, GRAFANA "/many-gone/x", 200, "many@example.com");
    expect_gate(base, tok, GRAFANA "/many/x", 200, "many@example.com");
    spare_stop(SLOT_PLAIN);

    plain_start(SLOT_PLAIN, LOG_COALESCE_TTL0, ttl0, base, sizeof(base));
    set_latency(STANDIN_LATENCY_MS);
    many(base, CONCURRENT, tok, GRAFANA "/many/x", MULTI_DEADLINE_MS, st);
    expect_all(st, CONCURRENT, 200);
    expect_calls(1, "100 concurrent misses, allow TTL 0");
    expect_gate(base, tok, GRAFANA "/many/x", 200, "many@example.com");
    expect_calls(2, "the next request, allow TTL 0");
    spare_stop(SLOT_PLAIN);
    free(tok);
}

/* A's 200 is cached; A's token with one character changed (in the claims, in the signature),
 * truncated, extended, and B's token (no grant) are each Houston's 401, each asked. */
static void test_other_tokens_never_answered_from_cache(void **state)
{
    char *a = session_for("victim-a@example.com"), *b = session_for("other-b@example.com");
    const char *dot = strchr(a, '.');
    size_t len = strlen(a), mid = (size_t)(dot - a) + 10;
    char *variants[6];
    long n;
    (void)state;

    it_houston_grant("victim-a@example.com", GRANT_MONITORING);
    it_houston_grant("other-b@example.com", NO_GRANT);
    variants[0] = strdup(a);
    variants[0][mid] = variants[0][mid] == 'A' ? 'B' : 'A';
    variants[1] = strdup(a);
    variants[1][len - 10] = variants[1][len - 10] == 'x' ? 'y' : 'x';
    variants[2] = strndup(a, len - 1);
    variants[3] = strndup(a, len / 2);
    variants[4] = it_fmt("%sA", a);
    variants[5] = strdup(b);
    expect_gate(main_base(), a, GRAFANA "/victim/x", 200, "victim-a@example.com");
    expect_gate(main_base(), a, GRAFANA "/victim/x", 200, "victim-a@example.com");
    expect_calls(1, "A twice");
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        it_note_secret(variants[i]);
        n = calls();
        expect_gate(main_base(), variants[i], GRAFANA "/victim/x", 401, NULL);
        if (calls() != n + 1 || key_count(variants[i], GRAFANA_HOST) != 1)
            fail_msg("variant %zu of A's token did not reach Houston", i);
    }
    /* Userinfo is refused by the gate itself: nginx routes on the host before the ':' or '@'
     * and Node's parser reads the one after, so Houston would decide for another host than
     * the one served ("grafana.<base>:1@<release>-airflow.<base>" got an Airflow role's 200
     * on Grafana before). 401, and Houston is not asked. */
    {
        const char *urls[] = {"https://grafana." IT_BASE_DOMAIN "@evil.example.com/victim/x",
                              "https://grafana." IT_BASE_DOMAIN ":1@" RELEASE
                              "-airflow." IT_BASE_DOMAIN "/d/x"};
        for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
            long before = calls();
            struct it_resp r;
            assert_int_equal(gate(main_base(), a, urls[i], NULL, &r), 401);
            assert_null(it_resp_header(&r, "username"));
            it_resp_cleanup(&r);
            if (calls() != before)
                fail_msg("%s reached Houston", urls[i]);
        }
    }
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
        free(variants[i]);
    free(a);
    free(b);
}

/* Houston's 5xx is relayed and never stored: asked again each time; once Houston is well, the
 * next answer is a fresh 200. */
/* Misses against a stalled Houston hold connections: at most a quarter of maxConnections wait
 * (past that, 503 at once), and the gate's calls queue for Houston's connections apart from the
 * logins' hand-offs. So with one connection to Houston for each and Houston stalling every
 * decision, the probe and a whole login still answer at once (before: the probe waited seconds
 * for a connection slot and the hand-off queued behind the gate's calls). */
static void test_flood_of_misses_leaves_room(void **state)
{
    const char *extra[] = {"AUTH_SIDECAR_PEER_CONNECTIONS=1", "AUTH_SIDECAR_MAX_CONNECTIONS=16",
                           "AUTH_SIDECAR_REQUEST_TIMEOUT_MS=6000", NULL};
    struct pending p[FLOOD];
    struct it_client *c;
    struct it_login l;
    struct it_resp r;
    struct cache_stats s1;
    char base[128], tok[32], *probe;
    long t0, st;
    int quick_503 = 0;
    (void)state;

    it_spare_start(SLOT_PLAIN, LOG_FLOOD, extra, base, sizeof(base));
    assert_int_equal(it_houston_fault(it_env(), "{\"authz_delay_ms\":" FLOOD_STALL_MS "}"), 200);
    for (int i = 0; i < FLOOD; i++) {
        snprintf(tok, sizeof(tok), "junk-%d", i);
        pending_start(&p[i], base, tok, GRAFANA "/flood/x");
    }
    /* Every request sent and the first ones waiting: the rest are shed at once. */
    t0 = it_now_ms();
    while (it_now_ms() - t0 < ROOM_MS / 2) {
        for (int i = 0; i < FLOOD; i++) {
            if (p[i].running > 0) {
                curl_multi_perform(p[i].m, &p[i].running);
                curl_multi_poll(p[i].m, NULL, 0, 5, NULL);
            }
        }
    }
    for (int i = 0; i < FLOOD; i++) {
        if (p[i].running == 0) {
            curl_easy_getinfo(p[i].c->h, CURLINFO_RESPONSE_CODE, &st);
            assert_int_equal(st, 503);
            quick_503++;
        }
    }
    assert_int_equal(quick_503, FLOOD - FLOOD_WAITING);
    cache_stats(base, &s1);
    assert_true(s1.shed >= FLOOD - FLOOD_WAITING);

    c = it_client_new(it_env());
    probe = it_fmt("%s/healthz", base);
    assert_int_equal(it_get(c, probe, &r), 0);
    assert_int_equal(r.status, 200);
    if (r.seconds * 1000 > ROOM_MS)
        fail_msg("/healthz took %.2f s beside the flood", r.seconds);
    it_resp_cleanup(&r);
    assert_int_equal(it_login_at(c, base, "provider=auth0&integration=self&redirect=%2Foauth",
                                 "flood@example.com", &l),
                     0);
    if (l.redirect.status != 302 || l.redirect.location == NULL ||
        strncmp(l.redirect.location, IT_APP_URL "/oauth?", strlen(IT_APP_URL "/oauth?")) != 0)
        fail_msg("a login beside the flood ended %ld %s", l.redirect.status,
                 l.redirect.location != NULL ? l.redirect.location : "(none)");
    if (l.redirect.seconds * 1000 > ROOM_MS)
        fail_msg("a login's hand-off beside the flood took %.2f s", l.redirect.seconds);
    it_note_login(&l);
    it_login_cleanup(&l);
    it_client_free(c);
    free(probe);
    assert_int_equal(it_houston_fault(it_env(), "{}"), 200);
    for (int i = 0; i < FLOOD; i++)
        (void)pending_finish(&p[i]);
    spare_stop(SLOT_PLAIN);
}

static void test_houston_5xx_not_cached(void **state)
{
    char *tok = session_for("fivexx@example.com");
    (void)state;

    it_houston_grant("fivexx@example.com", GRANT_MONITORING);
    assert_int_equal(it_houston_fault(it_env(), "{\"authz_status\":500}"), 200);
    expect_gate(main_base(), tok, GRAFANA "/5xx/x", 500, NULL);
    expect_gate(main_base(), tok, GRAFANA "/5xx/x", 500, NULL);
    expect_calls(2, "two 500s");
    assert_int_equal(it_houston_fault(it_env(), "{\"authz_status\":502}"), 200);
    expect_gate(main_base(), tok, GRAFANA "/5xx/x", 502, NULL);
    expect_calls(3, "a 502");
    assert_int_equal(it_houston_fault(it_env(), "{\"authz_status\":null}"), 200);
    expect_gate(main_base(), tok, GRAFANA "/5xx/x", 200, "fivexx@example.com");
    expect_calls(4, "Houston well again");
    expect_gate(main_base(), tok, GRAFANA "/5xx/x", 200, "fivexx@example.com");
    expect_calls(4, "the 200 stored");
    free(tok);
}

/* Brings the stand-in back if a test left it down. */
static int houston_back(void **state)
{
    struct it_env *e = it_env();
    const char *const extra[] = {"--state-dir", state_dir, NULL};
    (void)state;
    if (it_proc_alive(&e->houston))
        return 0;
    return it_houston_start_args(e, extra);
}

/* The gate at base answers 503 within requestTimeoutMs and the margin. */
static void expect_503_quickly(const char *base, const char *token, const char *original)
{
    long t0 = it_now_ms(), took;
    struct it_resp r;
    long st = gate(base, token, original, NULL, &r);
    took = it_now_ms() - t0;
    if (st != 503)
        fail_msg("Houston unreachable, %s: %ld, want 503", original, st);
    assert_null(it_resp_header(&r, "username"));
    it_resp_cleanup(&r);
    if (took > atol(DOWN_TIMEOUT_MS) + ANSWER_MARGIN_MS)
        fail_msg("Houston unreachable, %s: 503 after %ld ms, want <= %ld", original, took,
                 atol(DOWN_TIMEOUT_MS) + ANSWER_MARGIN_MS);
}

/* Houston stalling or down: a cached decision still answers; a miss is 503 (never 401) within
 * requestTimeoutMs; not stored; counted as failures. Houston back: 200 again, no restart. */
static void test_houston_down_and_back(void **state)
{
    struct it_env *e = it_env();
    const char *const extra[] = {"--state-dir", state_dir, NULL};
    const char *const timeout[] = {"AUTH_SIDECAR_REQUEST_TIMEOUT_MS=" DOWN_TIMEOUT_MS, NULL};
    char *a = session_for("down-a@example.com"), *b = session_for("down-b@example.com");
    char base[128];
    struct cache_stats s0, s1;
    (void)state;

    it_spare_start(SLOT_DOWN, LOG_DOWN, timeout, base, sizeof(base));
    it_houston_grant("down-a@example.com", GRANT_MONITORING);
    it_houston_grant("down-b@example.com", NO_GRANT);
    expect_gate(base, a, GRAFANA "/down/x", 200, "down-a@example.com");
    cache_stats(base, &s0);

    /* Stalling past the timeout. */
    assert_int_equal(it_houston_fault(e, "{\"authz_delay_ms\":" STALL_MS "}"), 200);
    expect_503_quickly(base, a, KIBANA "/down-stall/x");
    assert_int_equal(it_houston_fault(e, "{\"authz_delay_ms\":null}"), 200);

    /* Down. */
    it_proc_stop(&e->houston);
    assert_int_equal(e->houston.exit_code, 0);
    expect_gate(base, a, GRAFANA "/down/x", 200, "down-a@example.com");
    expect_503_quickly(base, a, GRAFANA "/down-miss/x");
    expect_503_quickly(base, a, GRAFANA "/down-miss/x");
    expect_503_quickly(base, b, GRAFANA "/down-miss/x");
    expect_503_quickly(base, NULL, GRAFANA "/down-none/x");
    cache_stats(base, &s1);
    if (s1.failures - s0.failures < 5)
        fail_msg("houston_auth_authz_houston_failures_total moved by %.0f, want >= 5",
                 s1.failures - s0.failures);

    /* Back, on the same state: the same session passes, no sidecar restart. */
    assert_int_equal(it_houston_start_args(e, extra), 0);
    expect_gate(base, a, GRAFANA "/down-miss/x", 200, "down-a@example.com");
    expect_gate(base, a, KIBANA "/down-stall/x", 200, "down-a@example.com");
    expect_gate(base, b, GRAFANA "/down-miss/x", 401, NULL);
    expect_calls(3, "after the stand-in came back");
    spare_stop(SLOT_DOWN);
    free(a);
    free(b);
}

/* Allow TTL 0: every 200 asks Houston (denials are still kept for the deny TTL); deny TTL 0:
 * every denial asks, 200s are kept. */
static void test_ttl_zero_calls_houston_every_time(void **state)
{
    const char *const allow0[] = {"AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=0", NULL};
    const char *const deny0[] = {"AUTH_SIDECAR_AUTHZ_DENY_TTL_SECONDS=0", NULL};
    char *a = session_for("zero-a@example.com"), *b = session_for("zero-b@example.com");
    char base[128];
    struct cache_stats s0, s1;
    (void)state;

    it_houston_grant("zero-a@example.com", GRANT_MONITORING);
    it_houston_grant("zero-b@example.com", NO_GRANT);
    it_spare_start(SLOT_DOWN, LOG_TTL0, allow0, base, sizeof(base));
    cache_stats(base, &s0);
    for (int i = 1; i <= 3; i++) {
        expect_gate(base, a, GRAFANA "/zero/x", 200, "zero-a@example.com");
        expect_calls(i, "allow TTL 0");
    }
    cache_stats(base, &s1);
    expect_delta("houston_auth_authz_cache_hits_total", s0.hits, s1.hits, 0);
    expect_delta("houston_auth_authz_houston_seconds_count", s0.houston_calls, s1.houston_calls, 3);
    assert_true(s1.entries == 0);
    expect_gate(base, b, GRAFANA "/zero/x", 401, NULL);
    expect_gate(base, b, GRAFANA "/zero/x", 401, NULL);
    expect_calls(4, "a denial twice, allow TTL 0");
    spare_stop(SLOT_DOWN);

    it_spare_start(SLOT_DOWN, LOG_DENY0, deny0, base, sizeof(base));
    expect_gate(base, b, GRAFANA "/zero/x", 401, NULL);
    expect_gate(base, b, GRAFANA "/zero/x", 401, NULL);
    expect_calls(6, "a denial twice, deny TTL 0");
    expect_gate(base, a, GRAFANA "/zero/x", 200, "zero-a@example.com");
    expect_gate(base, a, GRAFANA "/zero/x", 200, "zero-a@example.com");
    expect_calls(7, "a 200 twice, deny TTL 0");
    spare_stop(SLOT_DOWN);
    free(a);
    free(b);
}

/* Four entries at most: ten hosts leave at most four, the rest evicted (least recently used
 * first, include/houston_auth/authz_cache.h), counted on /metrics. */
static void test_entry_cap(void **state)
{
    const char *const extra[] = {"AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES=4", NULL};
    char *tok = session_for("cap@example.com"), base[128], url[128];
    struct cache_stats s0, s1;
    (void)state;

    it_houston_grant("cap@example.com", "\"system\":[\"system.airflow.admin\"]");
    it_spare_start(SLOT_TTL, LOG_CAP, extra, base, sizeof(base));
    cache_stats(base, &s0);
    for (int i = 0; i < CAP_HOSTS; i++) {
        struct it_resp r;
        snprintf(url, sizeof(url), "https://r%d-airflow." IT_BASE_DOMAIN "/home", i);
        assert_int_equal(gate(base, tok, url, NULL, &r), 200);
        note_bearer(&r);
        it_resp_cleanup(&r);
    }
    expect_calls(CAP_HOSTS, "ten hosts");
    cache_stats(base, &s1);
    if (s1.entries > CAP_ENTRIES || s1.entries < 1)
        fail_msg("houston_auth_authz_cache_entries %.0f, want 1..%d", s1.entries, CAP_ENTRIES);
    if (s1.evictions - s0.evictions < CAP_HOSTS - CAP_ENTRIES)
        fail_msg("houston_auth_authz_cache_evictions_total moved by %.0f, want >= %d",
                 s1.evictions - s0.evictions, CAP_HOSTS - CAP_ENTRIES);
    assert_true(s1.bytes > 0);
    /* The newest is kept; the oldest was evicted. */
    snprintf(url, sizeof(url), "https://r%d-airflow." IT_BASE_DOMAIN "/home", CAP_HOSTS - 1);
    expect_gate(base, tok, url, 200, "cap@example.com");
    expect_calls(CAP_HOSTS, "the newest host again");
    expect_gate(base, tok, "https://r0-airflow." IT_BASE_DOMAIN "/home", 200, "cap@example.com");
    expect_calls(CAP_HOSTS + 1, "the oldest host again");
    cache_stats(base, &s1);
    assert_true(s1.entries <= CAP_ENTRIES);
    spare_stop(SLOT_TTL);
    free(tok);
}

/* One mebibyte of decisions at most: Airflow JWTs for ever more hosts fill it, the oldest are
 * evicted, and houston_auth_authz_cache_bytes never passes the cap. */
static void test_byte_cap(void **state)
{
    const char *const extra[] = {"AUTH_SIDECAR_AUTHZ_CACHE_MAX_MEGABYTES=1", NULL};
    char *tok = session_for("bytes@example.com"), base[64], url[128];
    struct cache_stats s = {0};
    int i;
    (void)state;

    it_houston_grant("bytes@example.com", "\"system\":[\"system.airflow.admin\"]");
    plain_start(SLOT_PLAIN, LOG_BYTES, extra, base, sizeof(base));
    for (i = 0; i < BYTE_CAP_MAX_HOSTS && s.evictions == 0; i++) {
        struct it_resp r;
        snprintf(url, sizeof(url), "https://b%d-airflow." IT_BASE_DOMAIN "/home", i);
        if (gate(base, tok, url, NULL, &r) != 200)
            fail_msg("%s: %ld, want 200", url, r.status);
        if (i % BYTE_CAP_CHECK_EVERY == 0)
            note_bearer(&r);
        it_resp_cleanup(&r);
        if (i % BYTE_CAP_CHECK_EVERY == BYTE_CAP_CHECK_EVERY - 1) {
            cache_stats(base, &s);
            if (s.bytes > BYTE_CAP)
                fail_msg("houston_auth_authz_cache_bytes %.0f after %d hosts, cap %d", s.bytes,
                         i + 1, BYTE_CAP);
        }
    }
    cache_stats(base, &s);
    if (s.evictions < 1)
        fail_msg("%d decisions of about 1 KiB each and no eviction under a 1 MiB cap", i);
    assert_true(s.bytes <= BYTE_CAP);
    assert_true(s.entries < i);
    expect_calls(i, "one call per host");
    spare_stop(SLOT_PLAIN);
    free(tok);
}

/* --check-config with one setting: 0 when accepted; refusals must name the variable. */
static int check_setting(const char *kv)
{
    const char *const args[] = {"--check-config", NULL};
    const char *const extra[] = {kv, NULL};
    const char *eq = strchr(kv, '=');
    char *out = NULL, name[96];
    int rc = it_sidecar_run(it_env(), args, extra, &out);
    assert_non_null(out);
    snprintf(name, sizeof(name), "%.*s", (int)(eq - kv), kv);
    if (rc < 0)
        fail_msg("%s: crashed, hung or a sanitizer report (%d):\n%s", kv, rc, out);
    if (rc != 0 && strstr(out, name) == NULL)
        fail_msg("%s refused without naming %s:\n%s", kv, name, out);
    free(out);
    return rc;
}

/* The four settings' ranges: the ends accepted, one past them refused. */
static void test_settings_ranges(void **state)
{
    static const char *const good[] = {
        "AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=0",   "AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=300",
        "AUTH_SIDECAR_AUTHZ_DENY_TTL_SECONDS=0",    "AUTH_SIDECAR_AUTHZ_DENY_TTL_SECONDS=60",
        "AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES=1",   "AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES=4194304",
        "AUTH_SIDECAR_AUTHZ_CACHE_MAX_MEGABYTES=1", "AUTH_SIDECAR_AUTHZ_CACHE_MAX_MEGABYTES=4096",
    };
    static const char *const bad[] = {
        "AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=301", "AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=-1",
        "AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=ten", "AUTH_SIDECAR_AUTHZ_DENY_TTL_SECONDS=61",
        "AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES=0",   "AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES=4194305",
        "AUTH_SIDECAR_AUTHZ_CACHE_MAX_MEGABYTES=0", "AUTH_SIDECAR_AUTHZ_CACHE_MAX_MEGABYTES=4097",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (check_setting(good[i]) != 0)
            fail_msg("%s refused", good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (check_setting(bad[i]) == 0)
            fail_msg("%s accepted", bad[i]);
    }
}

/* No session token, relayed JWT or forged variant in any sidecar's log. */
static void test_logs_hold_no_secrets(void **state)
{
    static const char *const logs[] = {"sidecar.log", LOG_TTL2,          LOG_CAP,
                                       LOG_COALESCE,  LOG_COALESCE_TTL0, LOG_TTL0,
                                       LOG_DENY0,     LOG_DOWN,          LOG_BYTES};
    (void)state;
    it_expect_logs_clean(it_env(), logs, sizeof(logs) / sizeof(logs[0]), 20);
}

/* The standard environment, the stand-in on a state directory (so it can go down and up). */
static int setup(void **state)
{
    return it_group_setup_houston_state(state, state_dir, sizeof(state_dir));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_decisions_relayed_exactly, it_test_setup),
        cmocka_unit_test_setup(test_bad_original_url_refused_without_houston, it_test_setup),
        cmocka_unit_test_setup(test_methods, it_test_setup),
        cmocka_unit_test_setup(test_forwarded_credential, it_test_setup),
        cmocka_unit_test_setup(test_forwarded_headers, it_test_setup),
        cmocka_unit_test_setup(test_cache_scope, it_test_setup),
        cmocka_unit_test_setup(test_denials_kept_for_deny_ttl, it_test_setup),
        cmocka_unit_test_setup(test_removed_grant_within_allow_ttl, it_test_setup),
        cmocka_unit_test_setup(test_logout_drops_cached_decisions, it_test_setup),
        cmocka_unit_test_setup(test_logout_drops_decisions_read_from_the_cookie, it_test_setup),
        cmocka_unit_test_setup(test_logout_during_a_fetch, it_test_setup),
        cmocka_unit_test_setup(test_concurrent_misses_share_one_call, it_test_setup),
        cmocka_unit_test_setup(test_other_tokens_never_answered_from_cache, it_test_setup),
        cmocka_unit_test_setup(test_houston_5xx_not_cached, it_test_setup),
        cmocka_unit_test_setup(test_flood_of_misses_leaves_room, it_test_setup),
        cmocka_unit_test_setup(test_ttl_zero_calls_houston_every_time, it_test_setup),
        cmocka_unit_test_setup(test_entry_cap, it_test_setup),
        cmocka_unit_test_setup(test_byte_cap, it_test_setup),
        cmocka_unit_test_setup(test_settings_ranges, it_test_setup),
        cmocka_unit_test_setup_teardown(test_houston_down_and_back, it_test_setup, houston_back),
        cmocka_unit_test(test_logs_hold_no_secrets),
        cmocka_unit_test(it_test_processes_exit_clean),
    };
    return cmocka_run_group_tests(tests, setup, it_group_teardown);
}
