/* The app stand-in (https://app.<base>): the few pages Houston and the sidecar send a browser
 * to, so a person or a browser test can see where a login ended. Plain HTML and CSS; every
 * value shown is escaped.
 *
 *   GET /        a link to log in through the sidecar
 *   GET /oauth   "Signed in to Astronomer (stand-in)": the email from ?token= or the auth
 *                cookie, whether the cookie is present, whether this Houston signed the token
 *   GET /logout  "Signed out", and whether the auth cookie is still present
 *   GET /login   the ?error= code in words, with a link to try again */
#include <stdlib.h>
#include <string.h>
#include "houston_auth/buf.h"
#include "houston_auth/cookie.h"
#include "houston_auth/page.h"
#include "houston_auth/url.h"
#include "houston_auth/util.h"
#include "standin.h"

struct view {
    struct ha_kvlist query;
    char *cookie; /* the auth cookie's value, or NULL */
    char *start;  /* the sidecar's login URL */
    char *logout; /* the sidecar's logout URL */
};

static enum ha_err view_init(struct standin *s, const struct peer_request *req, struct view *v)
{
    struct ha_kvlist jar = {0};
    struct ha_buf b;
    enum ha_err err = HA_OK;

    memset(v, 0, sizeof(*v));
    if (ha_url_parse_query(req->query, strlen(req->query), &v->query) != HA_OK)
        return HA_ERR_INVALID;
    if (req->cookie != NULL && ha_cookie_parse(req->cookie, strlen(req->cookie), &jar) == HA_OK)
        v->cookie = ha_strdup(ha_kvlist_get(&jar, s->cfg.cookie_name));
    ha_kvlist_cleanup(&jar);
    ha_buf_init(&b, 4096);
    err = ha_buf_appendf(&b, "%s/v1/oauth/start?provider=auth0&integration=self&redirect=/oauth",
                         s->cfg.sidecar_url);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &v->start);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, "%s/logout", s->cfg.sidecar_url);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &v->logout);
    ha_buf_cleanup(&b);
    return err;
}

static void view_cleanup(struct view *v)
{
    ha_kvlist_cleanup(&v->query);
    free(v->cookie);
    free(v->start);
    free(v->logout);
}

/* Escapes a, c and d (NULL reads as ""); on error nothing is left allocated. */
static enum ha_err escape3(const char *a, const char *c, const char *d, char *out[3])
{
    enum ha_err err;
    out[0] = out[1] = out[2] = NULL;
    err = ha_html_escape(a != NULL ? a : "", &out[0]);
    if (err == HA_OK)
        err = ha_html_escape(c != NULL ? c : "", &out[1]);
    if (err == HA_OK)
        err = ha_html_escape(d != NULL ? d : "", &out[2]);
    if (err != HA_OK) {
        for (size_t i = 0; i < 3; i++)
            free(out[i]);
    }
    return err;
}

/* <p><b>label</b> value suffix</p>, escaped. */
static enum ha_err row(struct ha_buf *b, const char *label, const char *value, const char *suffix)
{
    char *e[3];
    enum ha_err err = escape3(label, value, suffix, e);
    if (err != HA_OK)
        return err;
    err = ha_buf_appendf(b, "<p><b>%s</b> %s%s</p>\n", e[0], e[1], e[2]);
    for (size_t i = 0; i < 3; i++)
        free(e[i]);
    return err;
}

static enum ha_err button(struct ha_buf *b, const char *url, const char *label)
{
    char *e[3];
    enum ha_err err = escape3(url, label, NULL, e);
    if (err != HA_OK)
        return err;
    err = ha_buf_appendf(b, "<p><a class=\"btn\" href=\"%s\">%s</a></p>\n", e[0], e[1]);
    for (size_t i = 0; i < 3; i++)
        free(e[i]);
    return err;
}

static void show(struct peer_response *resp, int status, const char *title, const char *message,
                 struct ha_buf *extra)
{
    peer_resp_page(resp, status, title, message, extra->data);
    resp->no_store = true;
    ha_buf_cleanup(extra);
}

static void page_oauth(struct standin *s, const struct view *v, struct peer_response *resp)
{
    const char *token = ha_kvlist_get(&v->query, "token");
    const char *extras = ha_kvlist_get(&v->query, "extras");
    const char *from = token != NULL ? "the token query parameter" : "the auth cookie";
    bool verified = false;
    json_t *claims = standin_jwt_payload(s, token != NULL ? token : v->cookie, &verified);
    const char *email = json_string_value(json_object_get(claims, "email"));
    struct ha_buf b;
    enum ha_err err;

    ha_buf_init(&b, 64 * 1024);
    err = row(&b, "Email:", email != NULL ? email : "(none)", NULL);
    if (err == HA_OK && email != NULL)
        err = row(&b, "Session token from:", from, NULL);
    if (err == HA_OK)
        err = row(&b, "Auth cookie", s->cfg.cookie_name,
                  v->cookie != NULL ? " is present" : " is not present");
    if (err == HA_OK && email != NULL)
        err = row(&b, "Token signed by this Houston:", verified ? "yes" : "no", NULL);
    if (err == HA_OK && extras != NULL)
        err = row(&b, "Extras:", extras, NULL);
    if (err == HA_OK)
        err = button(&b, v->logout, "Sign out");
    if (err != HA_OK)
        show(resp, 500, "Stand-in error", "The page could not be built.", &b);
    else if (email != NULL)
        show(resp, 200, "Signed in to Astronomer (stand-in)", "Houston accepted the login.", &b);
    else
        show(resp, 200, "Not signed in (stand-in)",
             "No session token came with this page (no token parameter, no auth cookie).", &b);
    json_decref(claims);
}

static void page_logout(struct standin *s, const struct view *v, struct peer_response *resp)
{
    struct ha_buf b;
    ha_buf_init(&b, 16 * 1024);
    if (row(&b, "Auth cookie", s->cfg.cookie_name,
            v->cookie != NULL ? " is still present" : " is gone") == HA_OK)
        button(&b, v->start, "Log in again");
    show(resp, 200, "Signed out", "You are signed out of Astronomer (stand-in).", &b);
}

static const char *login_words(const char *code)
{
    if (code == NULL)
        return "Sign in to continue.";
    if (strcmp(code, STANDIN_E_INVALID) == 0)
        return "Houston could not read the sign-in it was handed. Please try again.";
    return ha_page_error_message(code);
}

static void page_login(const struct view *v, struct peer_response *resp)
{
    const char *code = ha_kvlist_get(&v->query, "error");
    struct ha_buf b;
    ha_buf_init(&b, 16 * 1024);
    if (button(&b, v->start, code != NULL ? "Try again" : "Log in") == HA_OK && code != NULL)
        row(&b, "Error code:", code, NULL);
    show(resp, 200, code != NULL ? "Sign-in failed" : "Log in", login_words(code), &b);
}

static void page_index(const struct view *v, struct peer_response *resp)
{
    struct ha_buf b;
    ha_buf_init(&b, 16 * 1024);
    button(&b, v->start, "Log in");
    show(resp, 200, "Astronomer (stand-in)",
         v->cookie != NULL ? "You have an auth cookie. Log in again, or go on."
                           : "Log in through the houston-auth sidecar.",
         &b);
}

void standin_handle_app(void *ctx, const struct peer_request *req, struct peer_response *resp)
{
    struct standin *s = ctx;
    struct view v;

    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        peer_resp_text(resp, 405, STANDIN_TEXT, "method not allowed\n");
        resp->allow = "GET, HEAD";
        return;
    }
    if (view_init(s, req, &v) != HA_OK) {
        peer_resp_page(resp, 400, "Bad request", "The query string is malformed.", NULL);
    } else if (strcmp(req->path, "/oauth") == 0) {
        page_oauth(s, &v, resp);
    } else if (strcmp(req->path, "/logout") == 0) {
        page_logout(s, &v, resp);
    } else if (strcmp(req->path, "/login") == 0) {
        page_login(&v, resp);
    } else if (strcmp(req->path, "/") == 0) {
        page_index(&v, resp);
    } else {
        peer_resp_page(resp, 404, "Not found", "There is no such page in the stand-in.", NULL);
    }
    view_cleanup(&v);
}
