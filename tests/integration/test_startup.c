/* Integration: starting up. A sidecar started before its tenant serves, says why it is not
 * ready, refuses logins with not_ready, and becomes ready on its own (with backoff) once the
 * tenant answers; then a login succeeds. --check-config, a refused value and --help as an
 * administrator runs them. Tests run in order and share the processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "harness.h"

#define QUERY "provider=auth0&integration=self&redirect=/oauth"
#define READY_DEADLINE_MS 40000

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void get(struct it_client *c, const char *path, struct it_resp *r)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", c->env->sidecar_url, path);
    assert_int_equal(it_get(c, url, r), 0);
}

/* The tenant runs once to make its CA and TLS files, then goes down; the stand-in is up. */
static int setup(void **state)
{
    struct it_env *e = it_env();
    if (it_group_setup_bare(state) != 0 || it_tenant_start(e) != 0)
        return -1;
    it_proc_stop(&e->tenant);
    return it_houston_start(e);
}

static void test_not_ready_while_tenant_down(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c;
    struct it_resp r;
    json_t *j;
    (void)state;
    assert_int_equal(it_sidecar_start(e, &e->sidecar, e->sidecar_port, "sidecar.log", NULL, false),
                     0);
    c = it_client_new(e);
    get(c, "/healthz", &r);
    assert_int_equal(r.status, 200);
    it_resp_cleanup(&r);

    get(c, "/readyz", &r);
    assert_int_equal(r.status, 503);
    j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "not_ready");
    assert_true(json_is_string(json_object_get(j, "reason")));
    assert_true(strlen(json_string_value(json_object_get(j, "reason"))) > 0);
    json_decref(j);
    it_resp_cleanup(&r);

    get(c, "/v1/oauth/start?" QUERY "&login_hint=ann%40example.com", &r);
    it_expect_login_error(c, &r, "not_ready", 0);
    assert_int_equal(it_resp_set_cookie_count(&r, IT_TXN_PREFIX), 0);
    assert_int_equal(it_cookie_count(c, IT_TXN_PREFIX), 0);
    it_resp_cleanup(&r);
    it_client_free(c);
}

static void test_ready_once_tenant_answers(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_login l;
    struct it_cookie ck;
    char url[512];
    long t0;
    (void)state;
    assert_true(it_proc_alive(&e->sidecar));
    assert_int_equal(it_tenant_start(e), 0);
    t0 = mono_ms();
    snprintf(url, sizeof(url), "%s/readyz", e->sidecar_url);
    if (it_wait_status(e, url, 200, READY_DEADLINE_MS) != 0)
        fail_msg("/readyz not 200 within %d ms of the tenant starting", READY_DEADLINE_MS);
    fprintf(stderr, "test_startup: ready %ld ms after the tenant started\n", mono_ms() - t0);

    assert_int_equal(it_login(c, QUERY, "ann@example.com", &l), 0);
    assert_int_equal(l.redirect.status, 302);
    it_expect_prefix(l.redirect.location, IT_APP_URL "/oauth?");
    assert_true(it_cookie_get(c, IT_AUTH_COOKIE, false, &ck));
    it_cookie_cleanup(&ck);
    assert_int_equal(it_houston_received_count(e), 1);
    it_login_cleanup(&l);
    it_client_free(c);
}

/* Stays not ready (503 with a reason) for at least hold_ms. */
static void expect_not_ready_for(struct it_client *c, const char *base, long hold_ms)
{
    long end = mono_ms() + hold_ms;
    char url[256];
    snprintf(url, sizeof(url), "%s/readyz", base);
    while (mono_ms() < end) {
        struct it_resp r;
        json_t *j;
        assert_int_equal(it_get(c, url, &r), 0);
        assert_int_equal(r.status, 503);
        j = json_loads(r.body, 0, NULL);
        assert_true(json_is_string(json_object_get(j, "reason")));
        json_decref(j);
        it_resp_cleanup(&r);
        nanosleep(&(struct timespec){0, 200000000L}, NULL);
    }
}

/* A tenant whose discovery names another issuer, then whose JWKS fails, never makes the
 * sidecar ready; once it is healthy again the sidecar becomes ready on its own. */
static void test_not_ready_on_bad_issuer_or_jwks(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    char base[128], url[256];
    (void)state;
    assert_int_equal(it_tenant_fault(e, "{\"discovery_issuer\":\"https://evil.example.net/\"}"),
                     200);
    assert_int_equal(
        it_sidecar_start(e, &e->spare[0], e->spare_ports[0], "sidecar-faults.log", NULL, false), 0);
    it_sidecar_base(e->spare_ports[0], base, sizeof(base));
    expect_not_ready_for(c, base, 1200);
    assert_int_equal(it_tenant_fault(e, "{\"discovery_issuer\":null,\"jwks_status\":500}"), 200);
    expect_not_ready_for(c, base, 1200);
    assert_int_equal(
        it_tenant_fault(e, "{\"jwks_status\":null,\"jwks_body\":\"{\\\"keys\\\":[]}\"}"), 200);
    expect_not_ready_for(c, base, 1200);
    assert_int_equal(it_peers_reset(e), 0);
    snprintf(url, sizeof(url), "%s/readyz", base);
    if (it_wait_status(e, url, 200, READY_DEADLINE_MS) != 0)
        fail_msg("/readyz not 200 within %d ms of the tenant healing", READY_DEADLINE_MS);
    it_proc_stop(&e->spare[0]);
    it_client_free(c);
}

/* The /readyz reason (the caller's to free; NULL unless a 503 with one). */
static char *not_ready_reason(struct it_client *c, const char *url)
{
    struct it_resp r;
    json_t *j;
    char *why = NULL;
    assert_int_equal(it_get(c, url, &r), 0);
    j = r.status == 503 ? json_loads(r.body, 0, NULL) : NULL;
    if (json_is_string(json_object_get(j, "reason")))
        why = strdup(json_string_value(json_object_get(j, "reason")));
    json_decref(j);
    it_resp_cleanup(&r);
    return why;
}

/* 1 when /readyz is a 503 whose reason names TLS to the tenant. */
static int names_untrusted(struct it_client *c, const char *url)
{
    char *why = not_ready_reason(c, url);
    int yes = why != NULL && strstr(why, "TLS to the tenant failed") != NULL;
    free(why);
    return yes;
}

/* Once the first discovery attempt has failed (within READY_DEADLINE_MS), stays not ready
 * naming TLS as the reason for at least hold_ms. */
static void expect_untrusted_for(struct it_client *c, const char *base, long hold_ms)
{
    long deadline = mono_ms() + READY_DEADLINE_MS, end;
    char url[256];
    snprintf(url, sizeof(url), "%s/readyz", base);
    while (!names_untrusted(c, url)) {
        if (mono_ms() > deadline)
            fail_msg("/readyz never named the untrusted tenant");
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    }
    for (end = mono_ms() + hold_ms; mono_ms() < end;) {
        if (!names_untrusted(c, url))
            fail_msg("/readyz stopped naming the untrusted tenant");
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    }
}

/* The tenant's certificate is checked against the configured trust only: with the system
 * bundle (which lacks the dev tenant's CA) the sidecar never reaches the tenant, while the
 * right CA, loaded once and shared by every connection, lets it log people in. */
static void test_untrusted_tenant_refused(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    static const char *const system_only[] = {
        "AUTH_SIDECAR_TENANT_CA_FILE=/etc/ssl/certs/ca-certificates.crt", NULL};
    char base[128];
    (void)state;
    assert_int_equal(it_sidecar_start(e, &e->spare[0], e->spare_ports[0], "sidecar-untrusted.log",
                                      system_only, false),
                     0);
    it_sidecar_base(e->spare_ports[0], base, sizeof(base));
    expect_untrusted_for(c, base, 1200);
    it_proc_stop(&e->spare[0]);
    it_client_free(c);
}

static void test_check_config_good(void **state)
{
    struct it_env *e = it_env();
    const char *const args[] = {"--check-config", NULL};
    char *out = NULL, port[32];
    int rc;
    (void)state;
    rc = it_sidecar_run(e, args, NULL, &out);
    assert_non_null(out);
    if (rc != 0)
        fail_msg("--check-config exited %d:\n%s", rc, out);
    snprintf(port, sizeof(port), "localhost:%d", e->tenant_port);
    assert_non_null(strstr(out, IT_CLIENT_ID));
    assert_non_null(strstr(out, port));
    assert_non_null(strstr(out, IT_BASE_DOMAIN));
    assert_null(strstr(out, e->client_secret));
    assert_null(strstr(out, e->cookie_secret));
    free(out);
}

/* A removed setting still in the environment: the configuration is valid (unknown keys are
 * ignored) and --check-config says what it means and what replaced it. */
static void test_check_config_names_removed_setting(void **state)
{
    const char *const args[] = {"--check-config", NULL};
    const char *const extra[] = {"AUTH_SIDECAR_WORKERS=16", NULL};
    char *out = NULL;
    int rc;
    (void)state;
    rc = it_sidecar_run(it_env(), args, extra, &out);
    assert_non_null(out);
    if (rc != 0)
        fail_msg("--check-config exited %d:\n%s", rc, out);
    if (strstr(out, "warning: AUTH_SIDECAR_WORKERS: removed") == NULL ||
        strstr(out, "peerConnections") == NULL)
        fail_msg("the removed variable was not named:\n%s", out);
    free(out);
}

/* A refused value stops the start with a message naming the key. */
static void expect_refused(const char *const *extra, const char *key1, const char *key2)
{
    const char *const args[] = {"--check-config", NULL};
    char *out = NULL;
    int rc = it_sidecar_run(it_env(), args, extra, &out);
    assert_non_null(out);
    if (rc == 0)
        fail_msg("%s accepted:\n%s", extra[0], out);
    if (rc < 0)
        fail_msg("%s: crashed, hung or a sanitizer report (%d):\n%s", extra[0], rc, out);
    if (strstr(out, key1) == NULL && strstr(out, key2) == NULL)
        fail_msg("%s refused without naming %s or %s:\n%s", extra[0], key1, key2, out);
    assert_null(strstr(out, it_env()->client_secret));
    assert_null(strstr(out, it_env()->cookie_secret));
    free(out);
}

static void test_check_config_refuses_bad_values(void **state)
{
    static const char *const tenants[] = {"AUTH0_BASE_DOMAIN=https://tenant.auth0.com/",
                                          "AUTH0_BASE_DOMAIN=tenant.auth0.com/x",
                                          "AUTH0_BASE_DOMAIN=tenant.auth0.com:99999",
                                          "AUTH0_BASE_DOMAIN=bad host", "AUTH0_BASE_DOMAIN="};
    (void)state;
    for (size_t i = 0; i < sizeof(tenants) / sizeof(tenants[0]); i++) {
        const char *extra[] = {tenants[i], NULL};
        expect_refused(extra, "AUTH0_BASE_DOMAIN", "auth0.baseDomain");
    }
    {
        const char *extra[] = {"AUTH0_CLIENT_SECRET", NULL};
        expect_refused(extra, "AUTH0_CLIENT_SECRET", "AUTH0_CLIENT_SECRET");
    }
    {
        const char *extra[] = {"AUTH_SIDECAR_COOKIE_SECRET=short", NULL};
        expect_refused(extra, "AUTH_SIDECAR_COOKIE_SECRET", "AUTH_SIDECAR_COOKIE_SECRET");
    }
}

static void test_help(void **state)
{
    static const char *const vars[] = {"GLOBAL_BASE_DOMAIN",
                                       "AUTH0_CLIENT_ID",
                                       "AUTH0_BASE_DOMAIN",
                                       "AUTH_SIDECAR_LISTEN",
                                       "AUTH_SIDECAR_HOUSTON_URL",
                                       "AUTH_SIDECAR_PUBLIC_URL",
                                       "AUTH_SIDECAR_APP_URL",
                                       "AUTH_SIDECAR_TENANT_CA_FILE",
                                       "AUTH_SIDECAR_TLS_CERT_FILE",
                                       "AUTH_SIDECAR_TLS_KEY_FILE",
                                       "AUTH0_CLIENT_SECRET",
                                       "AUTH_SIDECAR_COOKIE_SECRET",
                                       "AUTH_SIDECAR_REQUEST_TIMEOUT_MS",
                                       "AUTH_SIDECAR_LOG_LEVEL",
                                       "AUTH_SIDECAR_TRANSACTION_TTL_SECONDS"};
    const char *const args[] = {"--help", NULL};
    char *out = NULL;
    int rc;
    (void)state;
    rc = it_sidecar_run(it_env(), args, NULL, &out);
    assert_non_null(out);
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        if (strstr(out, vars[i]) == NULL)
            fail_msg("--help does not mention %s", vars[i]);
    }
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_ready_while_tenant_down),
        cmocka_unit_test(test_ready_once_tenant_answers),
        cmocka_unit_test(test_not_ready_on_bad_issuer_or_jwks),
        cmocka_unit_test(test_untrusted_tenant_refused),
        cmocka_unit_test(test_check_config_good),
        cmocka_unit_test(test_check_config_names_removed_setting),
        cmocka_unit_test(test_check_config_refuses_bad_values),
        cmocka_unit_test(test_help),
        cmocka_unit_test(it_test_processes_exit_clean),
    };
    return cmocka_run_group_tests(tests, setup, it_group_teardown);
}
