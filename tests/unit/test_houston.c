/* Houston's contract: the auth cookie name (lodash snakeCase, checked against lodash 4.17.21's
 * own output), the state JSON and the form Houston receives, and the callback: what is sent
 * to Houston (through a recording fake ha_http) and which of Houston's answers reach the
 * browser. Tokens must never reach a log line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "houston_auth/houston.h"
#include "houston_auth/log.h"
#include "houston_auth/proto.h"
#include "houston_auth/url.h"

#define HOUSTON "http://127.0.0.1:8871"
#define COOKIE "astronomer_astro_example_com_auth"
#define SESSION_JWT "eyJhbGciOiJSUzI1NiJ9.eyJ1dWlkIjoiU0VTU0lPTiJ9.SESSIONSIG"
#define FORM "id_token=IDTOKEN-SECRET&access_token=AT-SECRET&state=x"

static const struct ha_redirect_policy policy = {"astro.example.com",
                                                 "https://app.astro.example.com"};

/* ---- cookie name ---------------------------------------------------------------------- */

struct name_vector {
    const char *base;
    const char *snake; /* lodash.snakeCase(base), from lodash 4.17.21 */
};

static const struct name_vector names[] = {
    {"astro.example.com", "astro_example_com"},
    {"k8s.example.com", "k_8_s_example_com"},
    {"my-astro2.io", "my_astro_2_io"},
    {"fooBar", "foo_bar"},
    {"astro1st.io", "astro_1st_io"},
    {"1stfoo", "1_stfoo"},
    {"21st.x", "21st_x"},
    {"11th.x", "11_th_x"},
    {"12th", "12_th"},
    {"4th.io", "4th_io"},
    {"1stFoo", "1st_foo"},
    {"ABCDef", "abc_def"},
    {"AB1", "ab_1"},
    {"Ab1", "ab_1"},
    {"XMLHttp.io", "xml_http_io"},
    {"a_b", "a_b"},
    {"x--y", "x_y"},
    {"1ST.io", "1st_io"},
    {"2NDx", "2nd_x"},
    {"3rdA", "3rd_a"},
    {"FOO1st", "foo_1st"},
    {"v2nd.io", "v_2nd_io"},
    {"ex.COM", "ex_com"},
    {"a1b2c3", "a_1_b_2_c_3"},
    {"99problems.io", "99_problems_io"},
    {"th1rd.io", "th_1_rd_io"},
    {"my_domain.io", "my_domain_io"},
    {"a'b.io", "ab_io"},
    {"Astro.Example.COM", "astro_example_com"},
    {"10th.example.com", "10th_example_com"},
};

static void test_cookie_name_matches_lodash(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char want[128], *got = NULL;
        snprintf(want, sizeof(want), "astronomer_%s_auth", names[i].snake);
        assert_int_equal(ha_houston_cookie_name(names[i].base, &got), HA_OK);
        if (strcmp(got, want) != 0)
            fail_msg("%s: got %s, want %s", names[i].base, got, want);
        free(got);
    }
}

static void test_cookie_name_refusals(void **state)
{
    char *out = (char *)"untouched";
    char long_name[300];
    (void)state;
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(ha_houston_cookie_name(NULL, &out), HA_ERR_INVALID);
    assert_int_equal(ha_houston_cookie_name("", &out), HA_ERR_INVALID);
    assert_int_equal(ha_houston_cookie_name("...", &out), HA_ERR_INVALID);
    assert_int_equal(ha_houston_cookie_name("caf\xc3\xa9.io", &out), HA_ERR_INVALID);
    assert_int_equal(ha_houston_cookie_name("a\nb.io", &out), HA_ERR_INVALID);
    assert_int_equal(ha_houston_cookie_name(long_name, &out), HA_ERR_INVALID);
    assert_string_equal(out, "untouched");
}

/* ---- state and form ------------------------------------------------------------------- */

#define ORIGIN "https://houston.astro.example.com/v1/oauth/callback"

static void test_state_json_full(void **state)
{
    char *s = NULL;
    (void)state;
    assert_int_equal(ha_houston_state_json("google-oauth2", ORIGIN, "/oauth",
                                           "{\"source\":\"cli\",\"n\":1}", "inv-123", &s),
                     HA_OK);
    assert_string_equal(s, "{\"provider\":\"auth0\",\"integration\":\"google-oauth2\","
                           "\"origin\":\"" ORIGIN "\",\"redirect\":\"/oauth\","
                           "\"extras\":{\"source\":\"cli\",\"n\":1},\"inviteToken\":\"inv-123\"}");
    free(s);
}

static void test_state_json_minimal(void **state)
{
    char *s = NULL;
    (void)state;
    assert_int_equal(ha_houston_state_json(NULL, ORIGIN, "/w/abc", NULL, NULL, &s), HA_OK);
    assert_string_equal(s, "{\"provider\":\"auth0\",\"integration\":\"self\",\"origin\":\"" ORIGIN
                           "\",\"redirect\":\"/w/abc\"}");
    free(s);
}

/* Houston decodeURIComponent()s the state before JSON.parse: the JSON must hold no '%', and
 * must still mean exactly what was asked. */
static void test_state_json_has_no_percent(void **state)
{
    char *s = NULL;
    json_t *j;
    (void)state;
    assert_int_equal(
        ha_houston_state_json("self", ORIGIN, "/w/caf%C3%A9", "{\"k%\":\"100%\"}", "a%zz", &s),
        HA_OK);
    assert_null(strchr(s, '%'));
    j = json_loads(s, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "redirect")), "/w/caf%C3%A9");
    assert_string_equal(json_string_value(json_object_get(j, "inviteToken")), "a%zz");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "extras"), "k%")),
                        "100%");
    json_decref(j);
    free(s);
}

static void test_state_json_refusals(void **state)
{
    static const char *const bad_extras[] = {
        "[1]", "\"x\"", "1", "{bad", "{\"a\":1,\"a\":2}", "", "null", "{\"a\":1} x"};
    char *s = (char *)"untouched";
    char big[HA_MAX_EXTRAS + 16];
    (void)state;
    for (size_t i = 0; i < sizeof(bad_extras) / sizeof(bad_extras[0]); i++) {
        if (ha_houston_state_json("self", ORIGIN, "/oauth", bad_extras[i], NULL, &s) !=
            HA_ERR_INVALID)
            fail_msg("extras %s accepted", bad_extras[i]);
    }
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(ha_houston_state_json("self", ORIGIN, "/oauth", big, NULL, &s),
                     HA_ERR_TOO_LARGE);
    assert_int_equal(ha_houston_state_json("self", ORIGIN, "/\xff", NULL, NULL, &s),
                     HA_ERR_INVALID);
    assert_int_equal(ha_houston_state_json("self", NULL, "/oauth", NULL, NULL, &s), HA_ERR_INVALID);
    assert_int_equal(ha_houston_state_json("self", ORIGIN, NULL, NULL, NULL, &s), HA_ERR_INVALID);
    assert_string_equal(s, "untouched");
}

static void test_form(void **state)
{
    char *f = NULL;
    struct ha_kvlist l = {0};
    const char *st = "{\"provider\":\"auth0\",\"redirect\":\"/oauth?a=1&b=2\"}";
    (void)state;
    assert_int_equal(ha_houston_form("h.p.s", "a.b.c", "Bearer", 86400, st, &f), HA_OK);
    assert_string_equal(f, "id_token=h.p.s&access_token=a.b.c&token_type=Bearer&expires_in=86400"
                           "&state=%7B%22provider%22%3A%22auth0%22%2C%22redirect%22%3A%22%2F"
                           "oauth%3Fa%3D1%26b%3D2%22%7D");
    /* What Houston's form parser reads back. */
    assert_int_equal(ha_url_parse_query(f, strlen(f), &l), HA_OK);
    assert_int_equal(l.count, 5);
    assert_string_equal(ha_kvlist_get(&l, "state"), st);
    assert_string_equal(ha_kvlist_get(&l, "expires_in"), "86400");
    ha_kvlist_cleanup(&l);
    free(f);
    f = (char *)"untouched";
    assert_int_equal(ha_houston_form(NULL, "a", "Bearer", 1, st, &f), HA_ERR_INVALID);
    assert_int_equal(ha_houston_form("i", NULL, "Bearer", 1, st, &f), HA_ERR_INVALID);
    assert_int_equal(ha_houston_form("i", "a", NULL, 1, st, &f), HA_ERR_INVALID);
    assert_int_equal(ha_houston_form("i", "a", "Bearer", 1, NULL, &f), HA_ERR_INVALID);
    assert_string_equal(f, "untouched");
}

/* ---- the callback, through a recording fake ------------------------------------------- */

struct fake {
    enum ha_err transport; /* returned instead of a response when not HA_OK */
    long status;
    const char *location;
    const char *cookies[HA_HTTP_MAX_SET_COOKIES];
    int calls;
    char method[8];
    char url[256];
    char content_type[64];
    char request_id[64];
    char *body;
};

static enum ha_err fake_perform(void *ctx, const struct ha_http_request *req,
                                struct ha_http_response *resp)
{
    struct fake *f = ctx;
    f->calls++;
    snprintf(f->method, sizeof(f->method), "%s", req->method ? req->method : "");
    snprintf(f->url, sizeof(f->url), "%s", req->url ? req->url : "");
    snprintf(f->content_type, sizeof(f->content_type), "%s",
             req->content_type ? req->content_type : "");
    snprintf(f->request_id, sizeof(f->request_id), "%s", req->request_id ? req->request_id : "");
    free(f->body);
    f->body = strndup(req->body, req->body_len);
    if (f->transport != HA_OK)
        return f->transport;
    resp->status = f->status;
    resp->location = f->location ? strdup(f->location) : NULL;
    for (size_t i = 0; i < HA_HTTP_MAX_SET_COOKIES && f->cookies[i] != NULL; i++)
        resp->set_cookies[resp->set_cookie_count++] = strdup(f->cookies[i]);
    return HA_OK;
}

static int setup_fake(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->status = 302;
    f->location = "https://app.astro.example.com/oauth?extras=&strategy=auth0&token=" SESSION_JWT;
    f->cookies[0] = "other=1; Path=/";
    f->cookies[1] = COOKIE "=" SESSION_JWT "; Domain=.astro.example.com; Path=/; Secure";
    *state = f;
    return 0;
}

static int teardown_fake(void **state)
{
    struct fake *f = *state;
    free(f->body);
    free(f);
    return 0;
}

static enum ha_err call(struct fake *f, const char *houston_url, struct ha_houston_result *r)
{
    struct ha_http http = {fake_perform, f};
    memset(r, 0, sizeof(*r));
    return ha_houston_callback(&http, houston_url, FORM, &policy, COOKIE, "rid-1", r);
}

static void test_callback_success(void **state)
{
    struct fake *f = *state;
    struct ha_houston_result r;
    assert_int_equal(call(f, HOUSTON, &r), HA_OK);
    assert_int_equal(f->calls, 1);
    assert_string_equal(f->method, "POST");
    assert_string_equal(f->url, HOUSTON "/v1/oauth/callback");
    assert_string_equal(f->content_type, "application/x-www-form-urlencoded");
    assert_string_equal(f->body, FORM);
    assert_string_equal(f->request_id, "rid-1");
    assert_string_equal(r.location, f->location);
    assert_string_equal(r.set_cookie, f->cookies[1]);
    ha_houston_result_cleanup(&r);
    assert_null(r.location);
    assert_null(r.set_cookie);
    ha_houston_result_cleanup(&r);
    ha_houston_result_cleanup(NULL);
}

static void test_callback_303_and_trailing_slash(void **state)
{
    struct fake *f = *state;
    struct ha_houston_result r;
    f->status = 303;
    assert_int_equal(call(f, HOUSTON "/", &r), HA_OK);
    assert_string_equal(f->url, HOUSTON "/v1/oauth/callback");
    ha_houston_result_cleanup(&r);
}

static void test_callback_statuses(void **state)
{
    static const long bad[] = {200, 201, 204, 301, 304, 307, 308, 400, 401, 403, 404, 500, 502};
    struct fake *f = *state;
    struct ha_houston_result r;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f->status = bad[i];
        assert_int_equal(call(f, HOUSTON, &r), HA_ERR_HTTP);
        assert_null(r.location);
        assert_null(r.set_cookie);
    }
}

static void test_callback_transport_errors(void **state)
{
    struct fake *f = *state;
    struct ha_houston_result r;
    f->transport = HA_ERR_IO;
    assert_int_equal(call(f, HOUSTON, &r), HA_ERR_IO);
    f->transport = HA_ERR_TIMEOUT;
    assert_int_equal(call(f, HOUSTON, &r), HA_ERR_TIMEOUT);
    /* Said as it is, so the login's log line names the cap rather than "a status". */
    f->transport = HA_ERR_TOO_LARGE;
    assert_int_equal(call(f, HOUSTON, &r), HA_ERR_TOO_LARGE);
    assert_null(r.location);
}

static void test_callback_refuses_location(void **state)
{
    static const char *const bad[] = {"//evil.com/oauth",
                                      "https://evil.com/oauth",
                                      "https://app.astro.example.com.evil.com/",
                                      "http://app.astro.example.com/oauth",
                                      "javascript:x",
                                      "/oauth\r\nSet-Cookie: a=b",
                                      "/%2f%2fevil.com"};
    struct fake *f = *state;
    struct ha_houston_result r;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f->location = bad[i];
        assert_int_equal(call(f, HOUSTON, &r), HA_ERR_REFUSED);
        assert_null(r.location);
        assert_null(r.set_cookie);
    }
    f->location = NULL;
    assert_int_equal(call(f, HOUSTON, &r), HA_ERR_REFUSED);
}

/* Only a cookie named exactly like Houston's, with a value, counts as a session. */
static void test_callback_cookie_must_match_exactly(void **state)
{
    static const char *const decoys[] = {
        COOKIE "_x=" SESSION_JWT,
        "x" COOKIE "=" SESSION_JWT,
        " " COOKIE "=" SESSION_JWT,
        COOKIE "=; Max-Age=0",
        COOKIE "= ; Path=/",
        COOKIE,
        "ASTRONOMER_ASTRO_EXAMPLE_COM_AUTH=" SESSION_JWT,
        COOKIE "=" SESSION_JWT "\r\nSet-Cookie: evil=1",
    };
    struct fake *f = *state;
    struct ha_houston_result r;
    memset(f->cookies, 0, sizeof(f->cookies));
    for (size_t i = 0; i < sizeof(decoys) / sizeof(decoys[0]); i++) {
        f->cookies[0] = decoys[i];
        if (call(f, HOUSTON, &r) != HA_ERR_REFUSED)
            fail_msg("decoy cookie accepted: %s", decoys[i]);
    }
    /* A clearing line first does not hide the real one after it. */
    f->cookies[0] = COOKIE "=; Max-Age=0";
    f->cookies[1] = COOKIE "=" SESSION_JWT "; Domain=.astro.example.com; Path=/; Secure";
    assert_int_equal(call(f, HOUSTON, &r), HA_OK);
    assert_string_equal(r.set_cookie, f->cookies[1]);
    ha_houston_result_cleanup(&r);
}

/* The session cookie must be scoped as Houston's contract says, or the browser would drop it
 * (or hide it from app.<base>) while the login looked successful. */
static void test_callback_cookie_scope(void **state)
{
    static const char *const badly_scoped[] = {
        COOKIE "=" SESSION_JWT "; Path=/; Secure",
        COOKIE "=" SESSION_JWT "; Domain=.other.example.com; Path=/; Secure",
        COOKIE "=" SESSION_JWT "; Domain=.example.com; Path=/; Secure",
        COOKIE "=" SESSION_JWT "; Domain=.evilastro.example.com; Path=/; Secure",
        COOKIE "=" SESSION_JWT "; Domain=.astro.example.com; Secure",
        COOKIE "=" SESSION_JWT "; Domain=.astro.example.com; Path=/v1; Secure",
        COOKIE "=" SESSION_JWT "; Domain=.astro.example.com; Path=/",
    };
    static const char *const well_scoped[] = {
        COOKIE "=" SESSION_JWT "; Domain=.astro.example.com; Path=/; Secure",
        COOKIE "=" SESSION_JWT "; domain=astro.example.com; path=/; secure; HttpOnly",
        COOKIE "=" SESSION_JWT ";Domain=.ASTRO.example.com ;Path=/;Secure",
    };
    struct fake *f = *state;
    struct ha_houston_result r;
    memset(f->cookies, 0, sizeof(f->cookies));
    for (size_t i = 0; i < sizeof(badly_scoped) / sizeof(badly_scoped[0]); i++) {
        f->cookies[0] = badly_scoped[i];
        if (call(f, HOUSTON, &r) != HA_ERR_REFUSED)
            fail_msg("badly scoped cookie accepted: %s", badly_scoped[i]);
    }
    for (size_t i = 0; i < sizeof(well_scoped) / sizeof(well_scoped[0]); i++) {
        f->cookies[0] = well_scoped[i];
        if (call(f, HOUSTON, &r) != HA_OK)
            fail_msg("well scoped cookie refused: %s", well_scoped[i]);
        ha_houston_result_cleanup(&r);
    }
}

static void test_callback_signup_error_without_cookie(void **state)
{
    static const char *const ok[] = {
        "/login?error=invite_required", "https://app.astro.example.com/login?error=inactive",
        "HTTPS://APP.astro.example.com/login?x=1&error=e#f", "/login/?error=x"};
    static const char *const bad[] = {"/login",
                                      "/login?error=",
                                      "/login?errors=x",
                                      "/loginx?error=a",
                                      "/oauth?error=x",
                                      "/oauth?next=/login?error=x",
                                      "/Login?error=x",
                                      "https://astro.example.com/login?error=x",
                                      "https://houston.astro.example.com/login?error=x",
                                      "/login#?error=x"};
    struct fake *f = *state;
    struct ha_houston_result r;
    memset(f->cookies, 0, sizeof(f->cookies));
    f->cookies[0] = "other=1";
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        f->location = ok[i];
        if (call(f, HOUSTON, &r) != HA_OK)
            fail_msg("signup error redirect refused: %s", ok[i]);
        assert_string_equal(r.location, ok[i]);
        assert_null(r.set_cookie);
        ha_houston_result_cleanup(&r);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f->location = bad[i];
        if (call(f, HOUSTON, &r) != HA_ERR_REFUSED)
            fail_msg("cookie-less answer accepted: %s", bad[i]);
    }
}

static void test_callback_bad_arguments(void **state)
{
    struct fake *f = *state;
    struct ha_http http = {fake_perform, f};
    struct ha_houston_result r = {0};
    assert_int_equal(ha_houston_callback(NULL, HOUSTON, FORM, &policy, COOKIE, NULL, &r),
                     HA_ERR_INVALID);
    assert_int_equal(ha_houston_callback(&http, NULL, FORM, &policy, COOKIE, NULL, &r),
                     HA_ERR_INVALID);
    assert_int_equal(ha_houston_callback(&http, HOUSTON, NULL, &policy, COOKIE, NULL, &r),
                     HA_ERR_INVALID);
    assert_int_equal(ha_houston_callback(&http, HOUSTON, FORM, &policy, NULL, NULL, &r),
                     HA_ERR_INVALID);
    assert_int_equal(f->calls, 0);
}

/* Whatever happens, the log holds neither the tokens we send nor Houston's session. */
static void test_callback_never_logs_secrets(void **state)
{
    struct fake *f = *state;
    struct ha_houston_result r;
    FILE *log = tmpfile();
    char text[8192];
    size_t n;
    assert_non_null(log);
    ha_log_set_level(HA_LOG_DEBUG);
    ha_log_set_stream(log);
    assert_int_equal(call(f, HOUSTON, &r), HA_OK);
    ha_houston_result_cleanup(&r);
    f->status = 500;
    assert_int_equal(call(f, HOUSTON, &r), HA_ERR_HTTP);
    f->status = 302;
    f->location = "https://evil.com/?token=" SESSION_JWT;
    assert_int_equal(call(f, HOUSTON, &r), HA_ERR_REFUSED);
    f->location = "/oauth?token=" SESSION_JWT;
    memset(f->cookies, 0, sizeof(f->cookies));
    assert_int_equal(call(f, HOUSTON, &r), HA_ERR_REFUSED);
    f->transport = HA_ERR_IO;
    assert_int_equal(call(f, HOUSTON, &r), HA_ERR_IO);
    ha_log_set_stream(NULL);
    ha_log_set_level(HA_LOG_INFO);
    rewind(log);
    n = fread(text, 1, sizeof(text) - 1, log);
    text[n] = '\0';
    fclose(log);
    assert_true(n > 0);                   /* the failures were logged ... */
    assert_null(strstr(text, "SECRET"));  /* ... without the form's tokens */
    assert_null(strstr(text, "SESSION")); /* ... or Houston's session */
    assert_null(strstr(text, "eyJ"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookie_name_matches_lodash),
        cmocka_unit_test(test_cookie_name_refusals),
        cmocka_unit_test(test_state_json_full),
        cmocka_unit_test(test_state_json_minimal),
        cmocka_unit_test(test_state_json_has_no_percent),
        cmocka_unit_test(test_state_json_refusals),
        cmocka_unit_test(test_form),
        cmocka_unit_test_setup_teardown(test_callback_success, setup_fake, teardown_fake),
        cmocka_unit_test_setup_teardown(test_callback_303_and_trailing_slash, setup_fake,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(test_callback_statuses, setup_fake, teardown_fake),
        cmocka_unit_test_setup_teardown(test_callback_transport_errors, setup_fake, teardown_fake),
        cmocka_unit_test_setup_teardown(test_callback_refuses_location, setup_fake, teardown_fake),
        cmocka_unit_test_setup_teardown(test_callback_cookie_scope, setup_fake, teardown_fake),
        cmocka_unit_test_setup_teardown(test_callback_cookie_must_match_exactly, setup_fake,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(test_callback_signup_error_without_cookie, setup_fake,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(test_callback_bad_arguments, setup_fake, teardown_fake),
        cmocka_unit_test_setup_teardown(test_callback_never_logs_secrets, setup_fake,
                                        teardown_fake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
