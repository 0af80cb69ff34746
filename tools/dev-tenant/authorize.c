/* GET/POST /authorize: the authorization endpoint, Auth0-shaped.
 *
 * Order of checks (RFC 6749 §4.1.2.1): a bad client_id or redirect_uri is answered with a 400
 * page and never a redirect (that would make the tenant an open redirector); once both are
 * known-good every other problem goes back to the client as error=...&state=... in the
 * requested response mode. PKCE S256 is mandatory, scope must carry openid, a repeated
 * parameter is invalid_request (§3.1), and an audience other than --audience is access_denied
 * ("Service not found", as Auth0 says it).
 *
 * Approval: with login_hint and auto-approve on (the default), at once as that email (unless
 * prompt=login; prompt=none without one is login_required); otherwise a small login page whose form
 * posts the request back here with an email and any non-empty password, or Cancel (access_denied).
 * The code goes back by 302 (query) or by an auto-submitting form (form_post, with a <noscript>
 * button). */
#include <stdlib.h>
#include <string.h>
#include "houston_auth/buf.h"
#include "houston_auth/log.h"
#include "houston_auth/page.h"
#include "houston_auth/proto.h"
#include "houston_auth/util.h"
#include "tenant.h"

#define CHALLENGE_LEN 43 /* base64url(SHA-256) */
#define FORM_POST_CSP                                                                              \
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "                  \
    "frame-ancestors 'none'"

/* The parameters the login form carries back as hidden fields, in this order. */
static const char *const params[] = {
    "client_id",     "redirect_uri", "response_type",  "scope",
    "state",         "nonce",        "code_challenge", "code_challenge_method",
    "response_mode", "audience",     "connection",     "login_hint",
    "prompt"};
#define NPARAMS (sizeof(params) / sizeof(params[0]))

struct areq {
    const struct ha_kvlist *in;
    const char *redirect_uri;
    const char *state;
    bool form_post;
};

struct param {
    const char *key;
    const char *value; /* NULL: omitted */
};

static enum ha_err form_post_page(const struct areq *a, const struct param *ps, size_t n,
                                  char **out)
{
    struct ha_buf b;
    char *head = NULL, *k = NULL, *v = NULL;
    enum ha_err err;

    ha_buf_init(&b, 64 * 1024);
    err = peer_page_head("Continue signing in", &head);
    if (err == HA_OK)
        err = ha_html_escape(a->redirect_uri, &v);
    if (err == HA_OK)
        err = ha_buf_appendf(&b,
                             "%s<h1>Continue signing in</h1>\n<form method=\"post\" "
                             "action=\"%s\">\n",
                             head, v);
    for (size_t i = 0; err == HA_OK && i < n; i++) {
        free(k);
        free(v);
        k = v = NULL;
        if (ps[i].value == NULL)
            continue;
        err = ha_html_escape(ps[i].key, &k);
        if (err == HA_OK)
            err = ha_html_escape(ps[i].value, &v);
        if (err == HA_OK)
            err = ha_buf_appendf(&b, "<input type=\"hidden\" name=\"%s\" value=\"%s\">\n", k, v);
    }
    if (err == HA_OK)
        err = ha_buf_appendf(&b,
                             "<noscript><p>Press Continue to finish signing in.</p>"
                             "<button type=\"submit\">Continue</button></noscript>\n</form>\n"
                             "<script>document.forms[0].submit();</script>\n%s",
                             PEER_PAGE_TAIL);
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    free(head);
    free(k);
    free(v);
    return err;
}

/* Sends ps (plus state) back to the client: 302 with a query, or a form_post page. */
static void deliver(const struct areq *a, const struct param *ps, size_t n,
                    struct peer_response *resp)
{
    struct param all[4];
    struct ha_buf b;
    char *page = NULL;
    size_t m = 0;

    for (size_t i = 0; i < n && m < 3; i++)
        all[m++] = ps[i];
    all[m].key = "state";
    all[m++].value = a->state;
    resp->no_store = true;
    if (a->form_post) {
        if (form_post_page(a, all, m, &page) == HA_OK)
            peer_resp_text(resp, 200, TENANT_HTML, page);
        resp->csp = FORM_POST_CSP;
        free(page);
        return;
    }
    ha_buf_init(&b, 3 * PEER_MAX_URL);
    if (ha_buf_append_str(&b, a->redirect_uri) == HA_OK &&
        (strchr(a->redirect_uri, '?') != NULL || ha_buf_append_str(&b, "?") == HA_OK)) {
        enum ha_err err = HA_OK;
        for (size_t i = 0; err == HA_OK && i < m; i++)
            err = all[i].value != NULL ? ha_buf_append_param(&b, all[i].key, all[i].value) : HA_OK;
        if (err == HA_OK)
            peer_resp_redirect(resp, 302, b.data);
    }
    ha_buf_cleanup(&b);
}

static void deliver_error(const struct areq *a, const char *error, const char *description,
                          struct peer_response *resp)
{
    struct param ps[2] = {{"error", error}, {"error_description", description}};
    ha_log(HA_LOG_INFO, "authorize_error", NULL, "error", error, NULL);
    deliver(a, ps, 2, resp);
}

/* True when the space-separated list holds want (scope, prompt). */
static bool has_token(const char *scope, const char *want)
{
    size_t n = strlen(want);
    for (const char *p = scope; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ' ');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, want, n) == 0)
            return true;
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}

static bool challenge_ok(const char *c)
{
    if (c == NULL || strlen(c) != CHALLENGE_LEN)
        return false;
    for (const char *p = c; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_';
        if (!ok)
            return false;
    }
    return true;
}

/* NULL when every parameter appears at most once and fits its cap, else a description. */
static const char *repeated_or_long(const struct ha_kvlist *in)
{
    for (size_t i = 0; i < NPARAMS; i++) {
        const char *v = ha_kvlist_get(in, params[i]);
        if (ha_kvlist_count(in, params[i]) > 1)
            return "a parameter is repeated";
        if (v != NULL && strlen(v) > TENANT_MAX_PARAM)
            return "a parameter is too long";
    }
    return NULL;
}

/* The checks that may redirect: the first problem found, as an OAuth error, or NULL. */
static const char *check_request(struct tenant *t, const struct ha_kvlist *in, const char **desc,
                                 char **injected)
{
    const char *type = ha_kvlist_get(in, "response_type");
    const char *aud = ha_kvlist_get(in, "audience");

    *desc = repeated_or_long(in);
    if (*desc != NULL)
        return "invalid_request";
    *injected = tenant_fault_str(t, "authorize_error");
    *desc = "injected by the dev tenant's test controls";
    if (*injected != NULL)
        return *injected;
    *desc = "response_type must be code";
    if (type == NULL || strcmp(type, HA_OIDC_RESPONSE_TYPE) != 0)
        return "unsupported_response_type";
    *desc = "scope must include openid";
    if (!has_token(ha_kvlist_get(in, "scope"), "openid"))
        return "invalid_scope";
    *desc = "PKCE is required: code_challenge_method=S256 and a code_challenge";
    if (ha_kvlist_get(in, "code_challenge_method") == NULL ||
        strcmp(ha_kvlist_get(in, "code_challenge_method"), HA_OIDC_PKCE_METHOD) != 0 ||
        !challenge_ok(ha_kvlist_get(in, "code_challenge")))
        return "invalid_request";
    *desc = "Service not found (audience is not an API of this tenant)";
    if (aud != NULL && strcmp(aud, t->cfg.audience) != 0)
        return "access_denied";
    return NULL;
}

/* Fills a from in; false (with resp filled) when the request must stop here. */
static bool read_request(struct tenant *t, const struct ha_kvlist *in, struct areq *a,
                         struct peer_response *resp)
{
    const char *client = ha_kvlist_get(in, "client_id");
    const char *mode = ha_kvlist_get(in, "response_mode");
    const char *error, *desc = NULL;
    char *injected = NULL;

    a->in = in;
    a->redirect_uri = ha_kvlist_get(in, "redirect_uri");
    a->state = ha_kvlist_get(in, "state");
    a->form_post = mode != NULL && strcmp(mode, "form_post") == 0;
    if (client == NULL || ha_kvlist_count(in, "client_id") != 1 ||
        strcmp(client, t->cfg.client_id) != 0) {
        peer_resp_page(resp, 400, "Bad authorization request",
                       "client_id is missing or is not a client of this tenant.", NULL);
        return false;
    }
    if (ha_kvlist_count(in, "redirect_uri") != 1 ||
        !tenant_list_has(t->cfg.callbacks, t->cfg.ncallbacks, a->redirect_uri)) {
        peer_resp_page(resp, 400, "Bad authorization request",
                       "redirect_uri is missing or is not an allowed callback URL for this "
                       "client (it must match one exactly).",
                       NULL);
        return false;
    }
    if (mode != NULL && !a->form_post && strcmp(mode, "query") != 0) {
        deliver_error(a, "invalid_request", "response_mode must be query or form_post", resp);
        return false;
    }
    error = check_request(t, in, &desc, &injected);
    if (error != NULL)
        deliver_error(a, error, desc, resp);
    free(injected);
    return error == NULL;
}

static bool connection_is(const struct ha_kvlist *in, const char *name)
{
    const char *c = ha_kvlist_get(in, "connection");
    return c != NULL && strcmp(c, name) == 0;
}

static void approve(struct tenant *t, const struct areq *a, const char *email,
                    struct peer_response *resp)
{
    struct tenant_grant g;
    struct param ps[1];
    char *code = NULL;
    enum ha_err err;

    g.client_id = t->cfg.client_id;
    g.redirect_uri = a->redirect_uri;
    g.challenge = ha_kvlist_get(a->in, "code_challenge");
    g.nonce = ha_kvlist_get(a->in, "nonce");
    g.email = email;
    /* As at Auth0: a sign-up on the database connection has an email nobody verified (any
     * address can be typed there); every other login here counts as verified. */
    g.email_verified = !connection_is(a->in, TENANT_DB_CONNECTION);
    g.audience = ha_kvlist_get(a->in, "audience");
    g.scope = ha_kvlist_get(a->in, "scope");
    err = tenant_code_issue(t, &g, &code);
    if (err != HA_OK) {
        deliver_error(a, err == HA_ERR_BUSY ? "temporarily_unavailable" : "server_error",
                      "the dev tenant could not issue a code", resp);
        return;
    }
    ps[0].key = "code";
    ps[0].value = code;
    deliver(a, ps, 1, resp);
    ha_free_secret(code);
}

static enum ha_err hidden_fields(struct ha_buf *b, const struct ha_kvlist *in)
{
    enum ha_err err = HA_OK;
    for (size_t i = 0; err == HA_OK && i < NPARAMS; i++) {
        const char *v = ha_kvlist_get(in, params[i]);
        char *ev = NULL;
        if (v == NULL || strcmp(params[i], "login_hint") == 0)
            continue;
        err = ha_html_escape(v, &ev);
        if (err == HA_OK)
            err = ha_buf_appendf(b, "<input type=\"hidden\" name=\"%s\" value=\"%s\">\n", params[i],
                                 ev);
        free(ev);
    }
    return err;
}

static const char login_form[] =
    "<h1>Log in</h1>\n<p>to <b>%s</b> at the dev tenant. Any email and any non-empty "
    "password will do.</p>\n%s%s%s<form method=\"post\" action=\"/authorize\">\n";
static const char login_fields[] =
    "<label for=\"email\">Email</label><input type=\"email\" id=\"email\" name=\"email\" "
    "value=\"%s\" required autofocus autocomplete=\"username\">\n"
    "<label for=\"password\">Password</label><input type=\"password\" id=\"password\" "
    "name=\"password\" required autocomplete=\"current-password\">\n"
    "<div class=\"row\"><button type=\"submit\" name=\"action\" value=\"login\">Log in</button>"
    "<button class=\"alt\" type=\"submit\" name=\"action\" value=\"cancel\" formnovalidate>"
    "Cancel</button></div>\n</form>\n<small>houston-auth dev tenant: never use it in "
    "production.</small>\n";

static void login_page(struct tenant *t, const struct ha_kvlist *in, const char *problem,
                       int status, struct peer_response *resp)
{
    const char *hint = ha_kvlist_get(in, "email");
    char *head = NULL, *client = NULL, *msg = NULL, *email = NULL;
    struct ha_buf b;
    enum ha_err err;

    ha_buf_init(&b, 64 * 1024);
    hint = hint != NULL ? hint : ha_kvlist_get(in, "login_hint");
    err = peer_page_head("Log in - dev tenant", &head);
    if (err == HA_OK)
        err = ha_html_escape(t->cfg.client_id, &client);
    if (err == HA_OK)
        err = ha_html_escape(problem != NULL ? problem : "", &msg);
    if (err == HA_OK)
        err = ha_html_escape(hint != NULL ? hint : "", &email);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, "%s", head);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, login_form, client, problem != NULL ? "<p class=\"err\">" : "",
                             msg, problem != NULL ? "</p>\n" : "");
    if (err == HA_OK)
        err = hidden_fields(&b, in);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, login_fields, email);
    if (err == HA_OK)
        err = ha_buf_append_str(&b, PEER_PAGE_TAIL);
    if (err == HA_OK) {
        peer_resp_text(resp, status, TENANT_HTML, b.data);
        resp->no_store = true;
    }
    ha_buf_cleanup(&b);
    free(head);
    free(client);
    free(msg);
    free(email);
}

static void login_post(struct tenant *t, const struct ha_kvlist *in, const struct areq *a,
                       struct peer_response *resp)
{
    const char *action = ha_kvlist_get(in, "action");
    const char *email = ha_kvlist_get(in, "email");
    const char *password = ha_kvlist_get(in, "password");

    if (action != NULL && strcmp(action, "cancel") == 0)
        deliver_error(a, "access_denied", "The user cancelled the login.", resp);
    else if (!tenant_email_ok(email))
        login_page(t, in, "Enter a valid email address.", 400, resp);
    else if (password == NULL || password[0] == '\0')
        login_page(t, in, "Enter a password (any non-empty one).", 400, resp);
    else
        approve(t, a, email, resp);
}

static void record_query(struct tenant *t, const struct ha_kvlist *in)
{
    json_t *j = json_object();
    for (size_t i = 0; j != NULL && i < in->count; i++) {
        if (json_object_get(j, in->items[i].key) == NULL)
            json_object_set_new(j, in->items[i].key, json_string(in->items[i].value));
    }
    pthread_mutex_lock(&t->lock);
    json_decref(t->last_authorize);
    t->last_authorize = j;
    pthread_mutex_unlock(&t->lock);
}

void tenant_handle_authorize(struct tenant *t, const struct peer_request *req,
                             struct peer_response *resp)
{
    struct ha_kvlist in = {0};
    struct areq a;
    bool post = strcmp(req->method, "POST") == 0;
    const char *hint, *prompt;
    enum ha_err err;

    if (!post)
        tenant_count(t, &t->stats.authorize_requests);
    err = post ? tenant_parse_form(req, &in)
               : ha_url_parse_query(req->query, strlen(req->query), &in);
    if (err != HA_OK) {
        peer_resp_page(resp, 400, "Bad authorization request",
                       "The request is malformed (not a valid query string or form).", NULL);
        return;
    }
    if (!post)
        record_query(t, &in);
    if (read_request(t, &in, &a, resp)) {
        hint = ha_kvlist_get(&in, "login_hint");
        prompt = ha_kvlist_get(&in, "prompt");
        if (post)
            login_post(t, &in, &a, resp);
        else if (t->cfg.auto_approve && tenant_email_ok(hint) && !has_token(prompt, "login"))
            approve(t, &a, hint, resp);
        else if (has_token(prompt, "none"))
            deliver_error(&a, "login_required", "prompt=none, and no login_hint to approve", resp);
        else
            login_page(t, &in, NULL, 200, resp);
    }
    ha_kvlist_cleanup(&in);
}
