/* The dev tenant's route table and its small endpoints: discovery, JWKS, logout, the index
 * page, and the helpers the bigger endpoints share (OAuth error bodies, form parsing). */
#include <stdlib.h>
#include <string.h>
#include "houston_auth/buf.h"
#include "houston_auth/log.h"
#include "houston_auth/page.h"
#include "houston_auth/proto.h"
#include "tenant.h"

#define JWKS_PATH "/.well-known/jwks.json"
#define TEST_PREFIX "/__test/"

enum ha_err tenant_oauth_error(struct peer_response *r, int status, const char *error,
                               const char *description)
{
    r->no_store = true;
    return peer_resp_json(
        r, status, json_pack("{s:s, s:s}", "error", error, "error_description", description));
}

bool tenant_list_has(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; s != NULL && i < n; i++) {
        if (strcmp(list[i], s) == 0)
            return true;
    }
    return false;
}

enum ha_err tenant_parse_form(const struct peer_request *req, struct ha_kvlist *out)
{
    if (!peer_type_is(req->content_type, TENANT_FORM_TYPE))
        return HA_ERR_INVALID;
    return ha_url_parse_query(req->body, req->body_len, out);
}

bool tenant_email_ok(const char *email)
{
    size_t n = email != NULL ? strlen(email) : 0;
    const char *at = n > 0 ? strchr(email, '@') : NULL;
    if (n == 0 || n > TENANT_MAX_EMAIL || at == NULL || at == email || at[1] == '\0' ||
        strchr(at + 1, '@') != NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c <= 0x20 || c == 0x7f || c == '"' || c == '<' || c == '>' || c == '\\')
            return false;
    }
    return true;
}

static json_t *str_array(const char *const *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

static json_t *discovery_doc(struct tenant *t, const char *issuer)
{
    static const char *const scopes[] = {"openid", "profile", "email"};
    static const char *const claims[] = {"aud", "azp", "email", "email_verified", "exp",
                                         "iat", "iss", "name",  "nonce",          "sub"};
    static const char *const auth_methods[] = {HA_AUTH_METHOD_BASIC, HA_AUTH_METHOD_POST};
    static const char *const modes[] = {"query", "form_post"};
    char url[4][1024];
    snprintf(url[0], sizeof(url[0]), "%sauthorize", t->issuer);
    snprintf(url[1], sizeof(url[1]), "%soauth/token", t->issuer);
    snprintf(url[2], sizeof(url[2]), "%suserinfo", t->issuer);
    snprintf(url[3], sizeof(url[3]), "%s.well-known/jwks.json", t->issuer);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s+, s:[s], s:o, s:[s], s:[s], s:[s], s:o, s:o, s:o, s:[s]}",
        "issuer", issuer, "authorization_endpoint", url[0], "token_endpoint", url[1],
        "userinfo_endpoint", url[2], "jwks_uri", url[3], "end_session_endpoint", t->issuer,
        "v2/logout", "response_types_supported", HA_OIDC_RESPONSE_TYPE, "response_modes_supported",
        str_array(modes, 2), "subject_types_supported", "public",
        "id_token_signing_alg_values_supported", HA_OIDC_ALG, "code_challenge_methods_supported",
        HA_OIDC_PKCE_METHOD, "token_endpoint_auth_methods_supported", str_array(auth_methods, 2),
        "scopes_supported", str_array(scopes, 3), "claims_supported", str_array(claims, 10),
        "grant_types_supported", HA_OIDC_GRANT_TYPE);
}

static void discovery(struct tenant *t, struct peer_response *resp)
{
    long status = tenant_fault_int(t, "discovery_status", 0);
    char *issuer = tenant_fault_str(t, "discovery_issuer");

    tenant_count(t, &t->stats.discovery_fetches);
    if (status != 0)
        peer_resp_json(resp, (int)status, json_pack("{s:s}", "error", "server_error"));
    else
        peer_resp_json(resp, 200, discovery_doc(t, issuer != NULL ? issuer : t->issuer));
    free(issuer);
}

static json_t *jwks_doc(struct tenant *t)
{
    json_t *keys = json_array(), *extra = tenant_fault_json(t, "jwks_extra_keys");
    size_t n, i;
    json_t *k;
    pthread_mutex_lock(&t->lock);
    n = t->nkeys;
    pthread_mutex_unlock(&t->lock);
    for (i = 0; keys != NULL && i < n; i++)
        json_array_append_new(keys, tenant_key_jwk(&t->keys[i]));
    json_array_foreach(extra, i, k)
    {
        json_array_append(keys, k);
    }
    json_decref(extra);
    return json_pack("{s:o}", "keys", keys);
}

static void jwks(struct tenant *t, struct peer_response *resp)
{
    long delay = tenant_fault_int(t, "jwks_delay_ms", 0);
    long status = tenant_fault_int(t, "jwks_status", 0);
    char *body = tenant_fault_str(t, "jwks_body");

    tenant_count(t, &t->stats.jwks_fetches);
    peer_sleep_ms(delay, &t->stopping);
    if (status != 0)
        peer_resp_json(resp, (int)status, json_pack("{s:s}", "error", "server_error"));
    else if (body != NULL)
        peer_resp_text(resp, 200, "application/json", body);
    else
        peer_resp_json(resp, 200, jwks_doc(t));
    free(body);
}

/* Auth0's /v2/logout: returnTo must exactly equal an allowed logout URL, and then client_id
 * must be this client; without returnTo it just says "logged out". */
static void logout(struct tenant *t, const struct peer_request *req, struct peer_response *resp)
{
    struct ha_kvlist q = {0};
    const char *client, *to;

    tenant_count(t, &t->stats.logout_requests);
    if (ha_url_parse_query(req->query, strlen(req->query), &q) != HA_OK) {
        peer_resp_page(resp, 400, "Bad logout request", "The query string is malformed.", NULL);
        return;
    }
    client = ha_kvlist_get(&q, "client_id");
    to = ha_kvlist_get(&q, "returnTo");
    if (client != NULL && strcmp(client, t->cfg.client_id) != 0)
        peer_resp_page(resp, 400, "Bad logout request", "client_id is not a client of this tenant.",
                       NULL);
    else if (to == NULL)
        peer_resp_page(resp, 200, "Logged out", "You are logged out of the dev tenant.", NULL);
    else if (ha_kvlist_count(&q, "returnTo") != 1 || ha_kvlist_count(&q, "client_id") > 1)
        peer_resp_page(resp, 400, "Bad logout request", "returnTo or client_id is repeated.", NULL);
    else if (client == NULL)
        peer_resp_page(resp, 400, "Bad logout request", "client_id is required with returnTo.",
                       NULL);
    else if (!tenant_list_has(t->cfg.logout_urls, t->cfg.nlogout, to))
        peer_resp_page(resp, 400, "Bad logout request",
                       "returnTo is not an allowed logout URL for this client "
                       "(it must match one exactly).",
                       NULL);
    else
        peer_resp_redirect(resp, 302, to);
    ha_kvlist_cleanup(&q);
}

static void index_page(struct tenant *t, struct peer_response *resp)
{
    char *issuer = NULL, *extra = NULL;
    struct ha_buf b;
    ha_buf_init(&b, 8192);
    if (ha_html_escape(t->issuer, &issuer) == HA_OK &&
        ha_buf_appendf(&b,
                       "<p>Issuer <code>%s</code></p><p><a class=\"btn\" "
                       "href=\"/.well-known/openid-configuration\">Discovery document</a></p>",
                       issuer) == HA_OK &&
        ha_buf_steal(&b, &extra) == HA_OK)
        peer_resp_page(resp, 200, "dev-tenant",
                       "An Auth0-shaped OpenID Connect provider for development. "
                       "Never use it in production.",
                       extra);
    ha_buf_cleanup(&b);
    free(issuer);
    free(extra);
}

static bool method_ok(const struct peer_request *req, bool get, bool post,
                      struct peer_response *resp, const char *allow)
{
    bool is_get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    bool is_post = strcmp(req->method, "POST") == 0;
    if ((get && is_get) || (post && is_post))
        return true;
    peer_resp_text(resp, 405, TENANT_TEXT, "method not allowed\n");
    resp->allow = allow;
    return false;
}

void tenant_handle(void *ctx, const struct peer_request *req, struct peer_response *resp)
{
    struct tenant *t = ctx;
    const char *p = req->path;

    if (strncmp(p, TEST_PREFIX, strlen(TEST_PREFIX)) == 0)
        tenant_handle_control(t, req, resp);
    else if (strcmp(p, HA_OIDC_DISCOVERY_PATH) == 0) {
        if (method_ok(req, true, false, resp, "GET, HEAD"))
            discovery(t, resp);
    } else if (strcmp(p, JWKS_PATH) == 0) {
        if (method_ok(req, true, false, resp, "GET, HEAD"))
            jwks(t, resp);
    } else if (strcmp(p, "/authorize") == 0) {
        if (method_ok(req, true, true, resp, "GET, HEAD, POST"))
            tenant_handle_authorize(t, req, resp);
    } else if (strcmp(p, "/oauth/token") == 0) {
        if (method_ok(req, false, true, resp, "POST"))
            tenant_handle_token(t, req, resp);
    } else if (strcmp(p, "/userinfo") == 0) {
        if (method_ok(req, true, true, resp, "GET, HEAD, POST"))
            tenant_handle_userinfo(t, req, resp);
    } else if (strcmp(p, HA_AUTH0_LOGOUT_PATH) == 0) {
        if (method_ok(req, true, false, resp, "GET, HEAD"))
            logout(t, req, resp);
    } else if (strcmp(p, "/") == 0) {
        if (method_ok(req, true, false, resp, "GET, HEAD"))
            index_page(t, resp);
    } else {
        peer_resp_text(resp, 404, TENANT_TEXT, "not found\n");
    }
    ha_log(HA_LOG_DEBUG, "request", NULL, "method", req->method, "path", p, NULL);
}
