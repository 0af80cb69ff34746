/* Integration: the attacker of the platform around the sidecar (docs/security.md).
 *
 * - A tenant user who signs up with someone else's address on a connection that lets anyone
 *   sign up (the dev tenant's Username-Password-Authentication issues email_verified false,
 *   as Auth0 does): the connection is refused at /v1/oauth/start unless allowed, and an
 *   unverified email never reaches Houston unless the loudly named opt-out is set.
 * - A script that spends the tenant's rate limit with junk codes: bounded per client (the
 *   peer, or who a trusted proxy forwarded) and in total; past it nothing reaches the tenant.
 * - The environment's http_proxy/https_proxy: never used (tokens to Houston stay in the pod);
 *   authSidecar.tenantProxy, when set, carries the tenant's traffic only. This file runs a
 *   small CONNECT proxy on loopback that counts what it is asked to carry.
 * - Query text in logs: the tenant's error_description is not logged at info. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "harness.h"
#include "houston_auth/url.h"

#define EMAIL "victim@example.com"
#define DB_CONNECTION "Username-Password-Authentication"
#define PROXY_MAX_CONNS 64

/* ---- a CONNECT proxy on loopback ---- */

static struct {
    int fd;
    int port;
    pthread_t thread;
    atomic_int connects_tenant; /* CONNECTs to the tenant's port */
    atomic_int other;           /* anything else asked of it */
    atomic_bool stop;
    int tenant_port;
} P;

static int dial(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Relays both ways until either side closes or 10 s pass with nothing to carry. */
static void relay(int a, int b)
{
    char buf[16384];
    struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    while (poll(p, 2, 10000) > 0) {
        for (int i = 0; i < 2; i++) {
            ssize_t n;
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            n = read(p[i].fd, buf, sizeof(buf));
            if (n <= 0 || it_raw_send(p[1 - i].fd, buf, (size_t)n) != 0)
                return;
        }
    }
}

/* One client: reads the request head; a CONNECT to 127.0.0.1 or localhost is carried, any
 * other request is counted and refused. */
static void *proxy_conn(void *arg)
{
    int fd = (int)(intptr_t)arg, up = -1, port = 0;
    char head[4096], host[256];
    size_t len = 0;
    while (len < sizeof(head) - 1) {
        ssize_t n = read(fd, head + len, sizeof(head) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        head[len] = '\0';
        if (strstr(head, "\r\n\r\n") != NULL)
            break;
    }
    head[len] = '\0';
    if (sscanf(head, "CONNECT %255[^:]:%d ", host, &port) == 2 &&
        (strcmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0) &&
        (up = dial(port)) >= 0) {
        if (port == P.tenant_port)
            atomic_fetch_add(&P.connects_tenant, 1);
        else
            atomic_fetch_add(&P.other, 1);
        if (it_raw_send(fd, "HTTP/1.1 200 Connection established\r\n\r\n", 39) == 0)
            relay(fd, up);
        close(up);
    } else if (len > 0) {
        atomic_fetch_add(&P.other, 1);
        it_raw_send(fd, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", 47);
    }
    close(fd);
    return NULL;
}

static void *proxy_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < PROXY_MAX_CONNS && !atomic_load(&P.stop); i++) {
        struct pollfd p = {P.fd, POLLIN, 0};
        pthread_t t;
        int c;
        if (poll(&p, 1, 200) <= 0) {
            i--;
            continue;
        }
        c = accept(P.fd, NULL, NULL);
        if (c < 0)
            continue;
        if (pthread_create(&t, NULL, proxy_conn, (void *)(intptr_t)c) == 0)
            pthread_detach(t);
        else
            close(c);
    }
    return NULL;
}

static void proxy_start(const struct it_env *e)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    int one = 1;
    memset(&P, 0, sizeof(P));
    P.tenant_port = e->tenant_port;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    P.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(P.fd >= 0);
    setsockopt(P.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(P.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(P.fd, 64), 0);
    assert_int_equal(getsockname(P.fd, (struct sockaddr *)&a, &alen), 0);
    P.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&P.thread, NULL, proxy_main, NULL), 0);
}

static void proxy_stop(void)
{
    atomic_store(&P.stop, true);
    pthread_join(P.thread, NULL);
    close(P.fd);
}

/* ---- helpers ---- */

static long tenant_stat(const struct it_env *e, const char *name)
{
    json_t *j = it_tenant_get_json(e, "/__test/stats");
    json_t *v = json_object_get(j, name);
    long n;
    if (!json_is_integer(v))
        fail_msg("the tenant's /__test/stats has no %s", name);
    n = (long)json_integer_value(v);
    json_decref(j);
    return n;
}

static bool log_has(const char *logname, const char *needle)
{
    char *path = it_fmt("%s/%s", it_env()->dir, logname);
    char *text = it_read_file(path, NULL);
    bool found = text != NULL && strstr(text, needle) != NULL;
    free(text);
    free(path);
    return found;
}

/* A start at base, then the redirect with a junk code and the start's state, sent with the
 * extra headers. Returns the login error code the browser got ("" for none). */
static const char *junk_exchange(const char *base, const char *const *headers, char *code,
                                 size_t len)
{
    struct it_client *c = it_client_new(it_env());
    struct it_resp start, r;
    struct ha_kvlist q = {0};
    char *url = it_fmt("%s/v1/oauth/start?integration=self", base), *next;
    assert_int_equal(it_get(c, url, &start), 0);
    assert_int_equal(start.status, 302);
    assert_int_equal(it_url_query(start.location, &q), 0);
    next = it_fmt("%s/v1/oauth/redirect?code=junk-code&state=%s", base, ha_kvlist_get(&q, "state"));
    assert_int_equal(it_request_headers(c, "GET", next, NULL, NULL, headers, &r), 0);
    snprintf(code, len, "%s",
             r.location != NULL &&
                     strncmp(r.location, IT_LOGIN_ERROR_PREFIX, strlen(IT_LOGIN_ERROR_PREFIX)) == 0
                 ? r.location + strlen(IT_LOGIN_ERROR_PREFIX)
                 : "");
    ha_kvlist_cleanup(&q);
    it_resp_cleanup(&start);
    it_resp_cleanup(&r);
    it_client_free(c);
    free(url);
    free(next);
    return code;
}

/* ---- tests ---- */

/* Auth0's database connection lets anyone sign up as admin@their-company.com and never verify
 * it; Houston finds users by email. Not an allowed connection by default; allowed, its
 * unverified email is still refused; only the explicit opt-out lets it through. */
static void test_unverified_email_takeover(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp r;
    struct it_login l;
    char base[128], *url;
    long before = it_houston_received_count(e);
    const char *allow_db[] = {
        "AUTH_SIDECAR_ALLOWED_CONNECTIONS=self,google-oauth2,github," DB_CONNECTION, NULL};
    const char *opt_out[] = {"AUTH_SIDECAR_ALLOWED_CONNECTIONS=self," DB_CONNECTION,
                             "AUTH_SIDECAR_INSECURE_ALLOW_UNVERIFIED_EMAIL=true", NULL};
    (void)state;

    /* 1. Default: the connection itself is refused before any redirect to the tenant. */
    url = it_fmt("%s/v1/oauth/start?provider=auth0&integration=" DB_CONNECTION "&login_hint=" EMAIL,
                 e->sidecar_url);
    assert_int_equal(it_get(c, url, &r), 0);
    it_expect_login_error(c, &r, "bad_request", before);
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 0);
    it_resp_cleanup(&r);
    free(url);

    /* 2. Allowed by the administrator: the tenant says email_verified false; refused. */
    it_spare_start(0, "platform-db.log", allow_db, base, sizeof(base));
    assert_int_equal(it_login_at(c, base, "integration=" DB_CONNECTION, EMAIL, &l), 0);
    it_expect_login_error(c, &l.redirect, "email_not_verified", before);
    it_login_cleanup(&l);
    /* The same sidecar still logs in a verified person through another connection. */
    assert_int_equal(it_login_at(c, base, "integration=self", EMAIL, &l), 0);
    assert_int_equal(l.redirect.status, 302);
    assert_non_null(it_resp_set_cookie(&l.redirect, IT_AUTH_COOKIE, 0));
    it_login_cleanup(&l);
    assert_int_equal(it_houston_received_count(e), before + 1);

    /* 3. The opt-out, loud at start: the unverified email goes through. */
    it_spare_start(1, "platform-optout.log", opt_out, base, sizeof(base));
    assert_true(log_has("platform-optout.log", "authSidecar.insecureAllowUnverifiedEmail"));
    assert_false(log_has("platform-db.log", "insecure_setting"));
    assert_int_equal(it_login_at(c, base, "integration=" DB_CONNECTION, EMAIL, &l), 0);
    assert_int_equal(l.redirect.status, 302);
    assert_non_null(it_resp_set_cookie(&l.redirect, IT_AUTH_COOKIE, 0));
    it_login_cleanup(&l);
    it_proc_stop(&e->spare[0]);
    it_proc_stop(&e->spare[1]);
    it_client_free(c);
}

/* Junk codes cost the tenant a token request each: 3 a minute per client here. Behind a
 * trusted proxy the client is the rightmost untrusted X-Forwarded-For hop; from anyone else
 * the header is ignored. Past the limit the person gets rate_limited and the tenant nothing. */
static void test_exchange_rate_limits(void **state)
{
    struct it_env *e = it_env();
    const char *extra[] = {"AUTH_SIDECAR_TOKEN_EXCHANGES_PER_CLIENT_PER_MINUTE=3",
                           "AUTH_SIDECAR_TOKEN_EXCHANGES_PER_SECOND=20",
                           "AUTH_SIDECAR_TRUSTED_PROXIES=127.0.0.1/32", NULL};
    const char *from_a[] = {"X-Forwarded-For: 198.51.100.1", NULL};
    const char *from_b[] = {"X-Forwarded-For: 198.51.100.1, 203.0.113.2", NULL};
    const char *spoof[] = {"X-Forwarded-For: 203.0.113.2, 198.51.100.1", NULL};
    char base[128], code[64], *metrics_url;
    long tokens;
    struct it_client *c;
    struct it_resp m;
    (void)state;
    it_spare_start(0, "platform-rate.log", extra, base, sizeof(base));
    tokens = tenant_stat(e, "token_requests");
    for (int i = 0; i < 3; i++)
        assert_string_equal(junk_exchange(base, from_a, code, sizeof(code)),
                            "token_exchange_failed");
    assert_int_equal(tenant_stat(e, "token_requests"), tokens + 3);
    for (int i = 0; i < 5; i++)
        assert_string_equal(junk_exchange(base, from_a, code, sizeof(code)), "rate_limited");
    /* A forged left part of the header buys nothing: the rightmost hop is the client. */
    assert_string_equal(junk_exchange(base, spoof, code, sizeof(code)), "rate_limited");
    assert_int_equal(tenant_stat(e, "token_requests"), tokens + 3);
    /* Another client behind the same proxy is not held back. */
    assert_string_equal(junk_exchange(base, from_b, code, sizeof(code)), "token_exchange_failed");
    assert_int_equal(tenant_stat(e, "token_requests"), tokens + 4);

    c = it_client_new(e);
    metrics_url = it_fmt("%s/metrics", base);
    assert_int_equal(it_get(c, metrics_url, &m), 0);
    assert_non_null(
        strstr(m.body, "houston_auth_token_exchanges_throttled_total{limit=\"client\"} 6"));
    assert_non_null(
        strstr(m.body, "houston_auth_logins_total{result=\"failure\",code=\"rate_limited\"} 6"));
    it_resp_cleanup(&m);
    free(metrics_url);
    it_client_free(c);
    it_proc_stop(&e->spare[0]);
}

/* The total limit holds whoever asks: 1 a second with a burst of 2. */
static void test_exchange_total_limit(void **state)
{
    struct it_env *e = it_env();
    const char *extra[] = {"AUTH_SIDECAR_TOKEN_EXCHANGES_PER_SECOND=1",
                           "AUTH_SIDECAR_TRUSTED_PROXIES=127.0.0.1", NULL};
    char base[128], code[64], hdr[64];
    const char *h[] = {hdr, NULL};
    long tokens, t0, reached, allowed;
    int limited = 0;
    (void)state;
    it_spare_start(0, "platform-total.log", extra, base, sizeof(base));
    tokens = tenant_stat(e, "token_requests");
    t0 = it_now_ms();
    for (int i = 0; i < 10; i++) {
        snprintf(hdr, sizeof(hdr), "X-Forwarded-For: 192.0.2.%d", i + 1);
        limited += strcmp(junk_exchange(base, h, code, sizeof(code)), "rate_limited") == 0;
    }
    /* Ten distinct clients: the burst of 2, plus one a second of the time it took. */
    allowed = 2 + (it_now_ms() - t0 + 999) / 1000;
    reached = tenant_stat(e, "token_requests") - tokens;
    assert_true(reached <= allowed);
    assert_int_equal(reached + limited, 10);
    assert_true(limited >= 1);
    it_proc_stop(&e->spare[0]);
}

/* http_proxy and friends in the sidecar's environment are ignored: a login works and the
 * proxy they name is never asked for anything. With authSidecar.tenantProxy the tenant's
 * calls go through it, Houston's never. */
static void test_proxies(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_login l;
    char base[128], *p1, *p2, *p3, *p4, *p5, *tp;
    long before = it_houston_received_count(e);
    (void)state;
    proxy_start(e);
    p1 = it_fmt("http_proxy=http://127.0.0.1:%d", P.port);
    p2 = it_fmt("https_proxy=http://127.0.0.1:%d", P.port);
    p3 = it_fmt("HTTPS_PROXY=http://127.0.0.1:%d", P.port);
    p4 = it_fmt("ALL_PROXY=http://127.0.0.1:%d", P.port);
    p5 = it_fmt("all_proxy=http://127.0.0.1:%d", P.port);
    tp = it_fmt("AUTH_SIDECAR_TENANT_PROXY=http://127.0.0.1:%d", P.port);
    {
        const char *env_proxies[] = {p1, p2, p3, p4, p5, NULL};
        it_spare_start(0, "platform-envproxy.log", env_proxies, base, sizeof(base));
        assert_int_equal(it_login_at(c, base, "integration=self", EMAIL, &l), 0);
        assert_non_null(it_resp_set_cookie(&l.redirect, IT_AUTH_COOKIE, 0));
        it_login_cleanup(&l);
        assert_int_equal(atomic_load(&P.connects_tenant) + atomic_load(&P.other), 0);
        it_proc_stop(&e->spare[0]);
    }
    {
        const char *tenant_proxy[] = {tp, p1, NULL};
        it_spare_start(1, "platform-tenantproxy.log", tenant_proxy, base, sizeof(base));
        assert_int_equal(it_login_at(c, base, "integration=self", EMAIL, &l), 0);
        assert_non_null(it_resp_set_cookie(&l.redirect, IT_AUTH_COOKIE, 0));
        it_login_cleanup(&l);
        /* Discovery, JWKS and the token request went through it; Houston's hand-off did not. */
        assert_true(atomic_load(&P.connects_tenant) >= 1);
        assert_int_equal(atomic_load(&P.other), 0);
        assert_int_equal(it_houston_received_count(e), before + 2);
        it_proc_stop(&e->spare[1]);
    }
    proxy_stop();
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    free(p5);
    free(tp);
    it_client_free(c);
}

/* The tenant's error answer is query text anyone can send: at info only a registered error
 * code reaches the log, never error_description or an invented error. */
static void test_tenant_error_text_not_logged(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    const char *extra[] = {"AUTH_SIDECAR_LOG_LEVEL=info", NULL};
    char base[128], *url;
    struct it_resp r;
    (void)state;
    it_spare_start(0, "platform-info.log", extra, base, sizeof(base));
    url = it_fmt("%s/v1/oauth/redirect?error=made-up-error-7f3a&error_description="
                 "Injected%%20text%%20b91c&state=x",
                 base);
    assert_int_equal(it_get(c, url, &r), 0);
    it_expect_login_error(c, &r, "tenant_error", it_houston_received_count(e));
    it_resp_cleanup(&r);
    free(url);
    url = it_fmt("%s/v1/oauth/redirect?error=access_denied&error_description=Cancelled%%20e44d",
                 base);
    assert_int_equal(it_get(c, url, &r), 0);
    it_resp_cleanup(&r);
    free(url);
    it_proc_stop(&e->spare[0]);
    assert_true(log_has("platform-info.log", "\"tenant_error\":\"other\""));
    assert_true(log_has("platform-info.log", "\"tenant_error\":\"access_denied\""));
    assert_false(log_has("platform-info.log", "made-up-error-7f3a"));
    assert_false(log_has("platform-info.log", "b91c"));
    assert_false(log_has("platform-info.log", "e44d"));
    it_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_unverified_email_takeover, it_test_setup),
        cmocka_unit_test_setup(test_exchange_rate_limits, it_test_setup),
        cmocka_unit_test_setup(test_exchange_total_limit, it_test_setup),
        cmocka_unit_test_setup(test_proxies, it_test_setup),
        cmocka_unit_test_setup(test_tenant_error_text_not_logged, it_test_setup),
        cmocka_unit_test(it_test_processes_exit_clean),
    };
    if (getenv("IT_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("IT_TEST_FILTER"));
    return cmocka_run_group_tests(tests, it_group_setup, it_group_teardown);
}
