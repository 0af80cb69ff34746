/* Operations: what an operator relies on when running houston-auth beside Houston.
 * Several replicas share no state between start and redirect; SIGTERM drains in-flight
 * logins; SIGHUP reloads a rotated cookie secret without breaking logins in flight;
 * /metrics is valid Prometheus text; logs are one JSON object per line and carry the
 * caller's X-Request-Id. */
#include <ctype.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "harness.h"

#define QUERY "provider=auth0&integration=self&redirect=%2Foauth"

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts a login at base_a and finishes it at base_b (an ingress sending the two requests
 * to different replicas). 0 when the redirect answered at all; *r holds it. */
static int login_across(struct it_client *c, const char *base_a, const char *base_b,
                        const char *email, struct it_resp *r)
{
    struct it_resp start, auth;
    char url[512];
    char *next = NULL;
    int rc = -1;
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=%s", base_a, QUERY, email);
    if (it_get(c, url, &start) != 0 || start.status != 302 || start.location == NULL) {
        it_resp_cleanup(&start);
        return -1;
    }
    if (it_get(c, start.location, &auth) == 0 && auth.status == 302 && auth.location != NULL)
        next = it_url_rebase(auth.location, c->env->sidecar_url, base_b);
    if (next != NULL && it_get(c, next, r) == 0)
        rc = 0;
    free(next);
    it_resp_cleanup(&start);
    it_resp_cleanup(&auth);
    return rc;
}

static bool landed(const struct it_resp *r)
{
    return r->status == 302 && r->location != NULL &&
           strncmp(r->location, IT_APP_URL "/oauth?", strlen(IT_APP_URL "/oauth?")) == 0;
}

struct cross_job {
    const char *a, *b;
    int id, ok;
};

static void *cross_worker(void *arg)
{
    struct cross_job *j = arg;
    for (int i = 0; i < 4; i++) {
        struct it_client *c = it_client_new(it_env());
        struct it_resp r;
        char email[64];
        snprintf(email, sizeof(email), "replica-%d-%d@example.com", j->id, i);
        /* Alternate which replica starts and which finishes. */
        if (c != NULL &&
            login_across(c, i % 2 ? j->a : j->b, i % 2 ? j->b : j->a, email, &r) == 0 &&
            landed(&r) && it_resp_set_cookie(&r, IT_AUTH_COOKIE "=", 0) != NULL)
            j->ok++;
        it_resp_cleanup(&r);
        it_client_free(c);
    }
    return NULL;
}

/* Two replicas with the same secrets: every login started on one finishes on the other,
 * with 8 browsers at once. */
static void test_two_replicas(void **state)
{
    struct it_env *e = it_env();
    char base_b[128];
    pthread_t th[8];
    struct cross_job jobs[8];
    long before = it_houston_received_count(e);
    (void)state;
    assert_int_equal(
        it_sidecar_start(e, &e->spare[0], e->spare_ports[0], "replica-b.log", NULL, true), 0);
    it_sidecar_base(e->spare_ports[0], base_b, sizeof(base_b));
    for (int i = 0; i < 8; i++) {
        jobs[i] = (struct cross_job){e->sidecar_url, base_b, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, cross_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) {
        if (jobs[i].ok != 4)
            fail_msg("browser %d completed %d of 4 cross-replica logins", i, jobs[i].ok);
    }
    assert_int_equal(it_houston_received_count(e), before + 32);
    it_proc_stop(&e->spare[0]);
}

struct drain_job {
    const char *base;
    int id;
    int ok;
    int answered;
};

static void *drain_worker(void *arg)
{
    struct drain_job *j = arg;
    struct it_client *c = it_client_new(it_env());
    struct it_login l;
    char email[64];
    snprintf(email, sizeof(email), "drain-%d@example.com", j->id);
    if (c != NULL && it_login_at(c, j->base, QUERY, email, &l) == 0) {
        j->answered = 1;
        j->ok = landed(&l.redirect);
    }
    it_login_cleanup(&l);
    it_client_free(c);
    return NULL;
}

/* SIGTERM while logins wait on a slow token endpoint: the sidecar stops accepting but
 * finishes every login it had accepted, then exits 0. */
static void test_sigterm_drains(void **state)
{
    struct it_env *e = it_env();
    const char *extra[] = {"AUTH_SIDECAR_REQUEST_TIMEOUT_MS=5000", NULL};
    char base[128], url[256];
    pthread_t th[6];
    struct drain_job jobs[6];
    struct it_client *c, *kept;
    struct it_resp r;
    const char *conn;
    (void)state;
    assert_int_equal(it_sidecar_start(e, &e->spare[1], e->spare_ports[1], "drain.log", extra, true),
                     0);
    it_sidecar_base(e->spare_ports[1], base, sizeof(base));
    assert_int_equal(it_tenant_fault(e, "{\"token_delay_ms\":1500}"), 200);
    for (int i = 0; i < 6; i++) {
        jobs[i] = (struct drain_job){base, i, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, drain_worker, &jobs[i]), 0);
    }
    /* A keep-alive connection opened before the signal (the ingress keeps them). */
    kept = it_client_new(e);
    snprintf(url, sizeof(url), "%s/healthz", base);
    it_get(kept, url, &r);
    assert_int_equal(r.status, 200);
    conn = it_resp_header(&r, "Connection");
    assert_true(conn == NULL || strcasecmp(conn, "close") != 0);
    it_resp_cleanup(&r);
    nap_ms(700); /* every login is now inside its token exchange */
    kill(e->spare[1].pid, SIGTERM);
    nap_ms(200);
    /* It is still served while draining, and its answer closes it: no new work arrives on
     * it to be cut at the drain deadline. */
    it_get(kept, url, &r);
    assert_int_equal(r.status, 200);
    conn = it_resp_header(&r, "Connection");
    if (conn == NULL || strcasecmp(conn, "close") != 0)
        fail_msg("an answer while draining kept its connection (Connection: %s)",
                 conn != NULL ? conn : "(none)");
    it_resp_cleanup(&r);
    it_client_free(kept);
    /* New connections are no longer accepted. */
    c = it_client_new(e);
    snprintf(url, sizeof(url), "%s/healthz", base);
    it_get(c, url, &r);
    assert_int_not_equal(r.curl_code, 0);
    it_resp_cleanup(&r);
    it_client_free(c);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 6; i++) {
        if (!jobs[i].answered || !jobs[i].ok)
            fail_msg("login %d accepted before SIGTERM did not complete", i);
    }
    it_proc_stop(&e->spare[1]);
    assert_int_equal(e->spare[1].exit_code, 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static bool log_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    bool found = false;
    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static void wait_log(const char *path, const char *needle)
{
    for (int i = 0; i < 200 && !log_has(path, needle); i++)
        nap_ms(25);
    assert_true(log_has(path, needle));
}

/* SIGHUP with a rotated cookie-secret file: a login started before the rotation still
 * finishes, new logins work, and a broken secret file is refused without harm. */
static void test_sighup_rotates_cookie_secret(void **state)
{
    struct it_env *e = it_env();
    char secret_file[400], file_env[450], base[128], log[400], url[512];
    const char *extra[] = {"AUTH_SIDECAR_COOKIE_SECRET", file_env, NULL};
    struct it_client *c = it_client_new(e);
    struct it_resp start, auth, done;
    struct it_login l;
    char *next;
    (void)state;
    snprintf(secret_file, sizeof(secret_file), "%s/cookie-secret", e->dir);
    snprintf(file_env, sizeof(file_env), "AUTH_SIDECAR_COOKIE_SECRET_FILE=%s", secret_file);
    snprintf(log, sizeof(log), "%s/sighup.log", e->dir);
    write_file(secret_file, "first-cookie-secret-0123456789abcdef0123456789\n");
    assert_int_equal(
        it_sidecar_start(e, &e->spare[2], e->spare_ports[2], "sighup.log", extra, true), 0);
    it_sidecar_base(e->spare_ports[2], base, sizeof(base));

    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=hup@example.com", base, QUERY);
    assert_int_equal(it_get(c, url, &start), 0);
    assert_int_equal(start.status, 302);
    assert_int_equal(it_get(c, start.location, &auth), 0);

    write_file(secret_file, "second-cookie-secret-0123456789abcdef01234567\n");
    kill(e->spare[2].pid, SIGHUP);
    wait_log(log, "\"event\":\"reloaded\"");

    next = it_url_rebase(auth.location, e->sidecar_url, base);
    assert_int_equal(it_get(c, next, &done), 0);
    assert_true(landed(&done)); /* sealed with the first secret, opened after the rotation */
    free(next);
    it_resp_cleanup(&start);
    it_resp_cleanup(&auth);
    it_resp_cleanup(&done);

    assert_int_equal(it_login_at(c, base, QUERY, "hup2@example.com", &l), 0);
    assert_true(landed(&l.redirect));
    it_login_cleanup(&l);

    write_file(secret_file, "short\n");
    kill(e->spare[2].pid, SIGHUP);
    wait_log(log, "\"event\":\"reload_refused\"");
    assert_true(it_proc_alive(&e->spare[2]));
    assert_int_equal(it_login_at(c, base, QUERY, "hup3@example.com", &l), 0);
    assert_true(landed(&l.redirect));
    it_login_cleanup(&l);
    it_client_free(c);
    it_proc_stop(&e->spare[2]);
    assert_int_equal(e->spare[2].exit_code, 0);
}

/* Prometheus text exposition format 0.0.4: every sample line is name{labels} value with a
 * legal metric name and a numeric value, every family has HELP and TYPE, and histogram
 * buckets never decrease. */
static double check_metrics(const char *text, const char *want_sample)
{
    const char *p = text;
    double found = -1, last_bucket = -1;
    char last_family[256] = "";
    while (*p != '\0') {
        size_t n = strcspn(p, "\n");
        char line[1024], name[256];
        double v;
        assert_true(n < sizeof(line));
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + (p[n] == '\n');
        if (n == 0)
            continue;
        if (line[0] == '#') {
            assert_true(strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0);
            continue;
        }
        size_t k = 0;
        assert_true(isalpha((unsigned char)line[0]) || line[0] == '_');
        while (isalnum((unsigned char)line[k]) || line[k] == '_' || line[k] == ':')
            k++;
        memcpy(name, line, k);
        name[k] = '\0';
        assert_true(line[k] == '{' || line[k] == ' ');
        {
            const char *sp = strrchr(line, ' ');
            char *end;
            assert_non_null(sp);
            v = strtod(sp + 1, &end);
            assert_true(*end == '\0');
        }
        if (strstr(name, "_bucket") != NULL) {
            if (strcmp(name, last_family) != 0)
                last_bucket = -1;
            assert_true(v >= last_bucket);
            last_bucket = v;
            snprintf(last_family, sizeof(last_family), "%s", name);
        }
        if (strncmp(line, want_sample, strlen(want_sample)) == 0)
            found = v;
    }
    return found;
}

static void test_metrics_format(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp r;
    struct it_login l;
    char url[256];
    double before, after;
    const char *ok = "houston_auth_logins_total{result=\"success\",code=\"\"}";
    (void)state;
    snprintf(url, sizeof(url), "%s/metrics", e->sidecar_url);
    assert_int_equal(it_get(c, url, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(it_resp_header(&r, "Content-Type"), "text/plain; version=0.0.4"));
    before = check_metrics(r.body, ok);
    assert_true(before >= 0);
    assert_true(check_metrics(r.body, "houston_auth_build_info") == 1);
    assert_true(check_metrics(r.body, "houston_auth_ready") == 1);
    it_resp_cleanup(&r);
    assert_int_equal(it_login(c, QUERY, "metrics@example.com", &l), 0);
    it_login_cleanup(&l);
    assert_int_equal(it_get(c, url, &r), 0);
    after = check_metrics(r.body, ok);
    assert_true(after == before + 1);
    assert_true(check_metrics(r.body, "houston_auth_redirect_own_seconds_count") >= 1);
    assert_true(check_metrics(r.body, "houston_auth_token_exchange_seconds_count") >= 1);
    assert_true(check_metrics(r.body, "houston_auth_houston_handoff_seconds_count") >= 1);
    assert_true(check_metrics(r.body, "houston_auth_jwks_fetches_total") >= 1);
    it_resp_cleanup(&r);
    it_client_free(c);
}

/* Logs: every line is one JSON object with time, level and event; the caller's
 * X-Request-Id comes back in the response and lands in the log line of that request. */
static void test_json_logs_and_request_id(void **state)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    const char *hdrs[] = {"X-Request-Id: ops-trace-42", NULL};
    struct it_resp r;
    char url[256];
    FILE *f;
    char line[8192];
    int lines = 0;
    bool tagged = false;
    (void)state;
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s", e->sidecar_url, QUERY);
    assert_int_equal(it_request_headers(c, "GET", url, NULL, NULL, hdrs, &r), 0);
    assert_int_equal(r.status, 302);
    assert_string_equal(it_resp_header(&r, "X-Request-Id"), "ops-trace-42");
    it_resp_cleanup(&r);
    /* A hostile id is not echoed: a fresh one is made. */
    hdrs[0] = "X-Request-Id: bad id\"}{";
    assert_int_equal(it_request_headers(c, "GET", url, NULL, NULL, hdrs, &r), 0);
    assert_string_not_equal(it_resp_header(&r, "X-Request-Id"), "bad id\"}{");
    it_resp_cleanup(&r);
    nap_ms(100);
    f = fopen(e->sidecar.log, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        json_error_t jerr;
        json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
        if (o == NULL)
            fail_msg("log line is not JSON: %s", line);
        assert_true(json_is_string(json_object_get(o, "time")));
        assert_true(json_is_string(json_object_get(o, "level")));
        assert_true(json_is_string(json_object_get(o, "event")));
        if (json_is_string(json_object_get(o, "request_id")) &&
            strcmp(json_string_value(json_object_get(o, "request_id")), "ops-trace-42") == 0)
            tagged = true;
        json_decref(o);
        lines++;
    }
    fclose(f);
    assert_true(lines > 3);
    assert_true(tagged);
    it_client_free(c);
}

static void test_processes_exit_cleanly(void **state)
{
    const char *why;
    (void)state;
    why = it_stop_all_checked(it_env());
    if (why != NULL)
        fail_msg("%s", why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_two_replicas, it_test_setup),
        cmocka_unit_test_setup(test_sigterm_drains, it_test_setup),
        cmocka_unit_test_setup(test_sighup_rotates_cookie_secret, it_test_setup),
        cmocka_unit_test_setup(test_metrics_format, it_test_setup),
        cmocka_unit_test_setup(test_json_logs_and_request_id, it_test_setup),
        cmocka_unit_test(test_processes_exit_cleanly),
    };
    return cmocka_run_group_tests(tests, it_group_setup, it_group_teardown);
}
