/* The OIDC protocol steps (OpenID Connect Core 1.0 §3.1, Discovery 1.0 §4, RFC 6749 §4.1,
 * RFC 7636): discovery with the issuer pinned, the authorize URL, and the code exchange. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "houston_auth/buf.h"
#include "houston_auth/json_view.h"
#include "houston_auth/oidc.h"
#include "houston_auth/proto.h"
#include "houston_auth/url.h"
#include "houston_auth/util.h"

#define MAX_ENDPOINT 2048
#define MAX_EXPIRES_IN                                                                             \
    1e9 /* seconds; an expires_in past it (or not a positive integer) is sent as 0 */

void ha_oidc_provider_cleanup(struct ha_oidc_provider *p)
{
    if (p == NULL)
        return;
    free(p->issuer);
    free(p->authorization_endpoint);
    free(p->token_endpoint);
    free(p->jwks_uri);
    free(p->end_session_endpoint);
    memset(p, 0, sizeof(*p));
}

/* An endpoint must be an absolute https URL by url.c's grammar (http only for an explicitly
 * allowed dev tenant) without whitespace, control characters or non-ASCII bytes. */
static int endpoint_ok(const char *url, int allow_http)
{
    size_t len = strlen(url);
    struct ha_url u;

    if (len == 0 || len > MAX_ENDPOINT)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return 0;
    }
    if (ha_url_parse(url, &u, NULL) != HA_OK)
        return 0;
    return u.https || allow_http;
}

static enum ha_err take_endpoint(json_t *doc, const char *name, int required, int allow_http,
                                 char **out, const char **reason)
{
    json_t *v = json_object_get(doc, name);
    if (v == NULL || json_is_null(v)) {
        if (!required)
            return HA_OK;
        *reason = "discovery lacks a required endpoint";
        return HA_ERR_INVALID;
    }
    if (!json_is_string(v) || !endpoint_ok(json_string_value(v), allow_http)) {
        *reason = "discovery endpoint is not an https URL";
        return HA_ERR_INVALID;
    }
    *out = strdup(json_string_value(v));
    return *out == NULL ? HA_ERR_NOMEM : HA_OK;
}

enum ha_err ha_oidc_parse_discovery(const char *json, size_t len, const char *expected_issuer,
                                    int allow_http, struct ha_oidc_provider *out,
                                    const char **reason)
{
    struct ha_oidc_provider p = {0};
    enum ha_err err = HA_ERR_INVALID;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *iss;

    *reason = "discovery is not a JSON object";
    if (doc == NULL || !json_is_object(doc))
        goto out;
    iss = json_object_get(doc, "issuer");
    /* Discovery §4.3: the issuer returned MUST be identical to the one used to fetch. */
    if (!json_is_string(iss) || strcmp(json_string_value(iss), expected_issuer) != 0) {
        *reason = "discovery issuer differs from the configured tenant";
        goto out;
    }
    p.issuer = strdup(expected_issuer);
    err = p.issuer == NULL ? HA_ERR_NOMEM : HA_OK;
    if (err == HA_OK)
        err = take_endpoint(doc, "authorization_endpoint", 1, allow_http, &p.authorization_endpoint,
                            reason);
    if (err == HA_OK)
        err = take_endpoint(doc, "token_endpoint", 1, allow_http, &p.token_endpoint, reason);
    if (err == HA_OK)
        err = take_endpoint(doc, "jwks_uri", 1, allow_http, &p.jwks_uri, reason);
    if (err == HA_OK)
        err = take_endpoint(doc, "end_session_endpoint", 0, allow_http, &p.end_session_endpoint,
                            reason);
    if (err != HA_OK)
        goto out;
    *out = p;
    memset(&p, 0, sizeof(p));
    *reason = NULL;
out:
    ha_oidc_provider_cleanup(&p);
    json_decref(doc);
    return err;
}

enum ha_err ha_oidc_discovery_url(const char *issuer, char **out)
{
    struct ha_buf url;
    enum ha_err err;

    ha_buf_init(&url, MAX_ENDPOINT);
    /* The issuer ends in '/': drop it before appending the well-known path. */
    err = ha_buf_append(&url, issuer, strlen(issuer) - 1);
    if (err == HA_OK)
        err = ha_buf_append_str(&url, HA_OIDC_DISCOVERY_PATH);
    if (err == HA_OK)
        err = ha_buf_steal(&url, out);
    ha_buf_cleanup(&url);
    return err;
}

void ha_oidc_discovery_request(const char *url, struct ha_http_request *req)
{
    memset(req, 0, sizeof(*req));
    req->method = "GET";
    req->url = url;
    req->accept = "application/json";
    req->to_tenant = true;
}

enum ha_err ha_oidc_discovery_answer(enum ha_err err, const struct ha_http_response *resp,
                                     const char *issuer, struct ha_oidc_provider *out,
                                     const char **reason)
{
    if (err != HA_OK) {
        *reason = err == HA_ERR_TLS ? "TLS to the tenant failed: is its CA trusted "
                                      "(authSidecar.tenantCaFile)?"
                                    : "discovery request failed";
        return err;
    }
    if (resp->status != 200) {
        *reason = "discovery answered a non-200 status";
        return HA_ERR_HTTP;
    }
    return ha_oidc_parse_discovery(resp->body, resp->body_len, issuer, 0, out, reason);
}

enum ha_err ha_oidc_discover(const struct ha_http *http, const char *issuer,
                             struct ha_oidc_provider *out, const char **reason)
{
    struct ha_http_response resp = {0};
    struct ha_http_request req;
    char *url = NULL;
    enum ha_err err = ha_oidc_discovery_url(issuer, &url);

    if (err != HA_OK) {
        *reason = "issuer too long";
        return err;
    }
    ha_oidc_discovery_request(url, &req);
    err = ha_http_do(http, &req, &resp);
    err = ha_oidc_discovery_answer(err, &resp, issuer, out, reason);
    ha_http_response_cleanup(&resp);
    free(url);
    return err;
}

enum ha_err ha_oidc_authorize_url(const struct ha_oidc_provider *p,
                                  const struct ha_authorize_params *a, const struct ha_txn *t,
                                  char **out)
{
    struct ha_buf b;
    char challenge[HA_RANDOM_B64_LEN + 1];
    enum ha_err err;

    ha_txn_challenge(t, challenge);
    ha_buf_init(&b, HA_MAX_URL * 2);
    err = ha_buf_append_str(&b, p->authorization_endpoint);
    if (err == HA_OK)
        err = ha_buf_append_str(&b, strchr(p->authorization_endpoint, '?') ? "&" : "?");
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "response_type", HA_OIDC_RESPONSE_TYPE);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "client_id", a->client_id);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "redirect_uri", a->redirect_uri);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "scope", HA_OIDC_SCOPE);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "audience", a->audience);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "state", t->state);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "nonce", t->nonce);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "code_challenge", challenge);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "code_challenge_method", HA_OIDC_PKCE_METHOD);
    if (err == HA_OK && a->connection != NULL &&
        strcmp(a->connection, HA_HOUSTON_INTEGRATION_SELF) != 0)
        err = ha_buf_append_param(&b, "connection", a->connection);
    if (err == HA_OK && a->login_hint != NULL)
        err = ha_buf_append_param(&b, "login_hint", a->login_hint);
    if (err == HA_OK && a->prompt != NULL)
        err = ha_buf_append_param(&b, "prompt", a->prompt);
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    return err;
}

void ha_token_response_cleanup(struct ha_token_response *t)
{
    if (t == NULL)
        return;
    ha_free_secret(t->id_token);
    ha_free_secret(t->access_token);
    free(t->token_type);
    memset(t, 0, sizeof(*t));
}

static enum ha_err token_form(const struct ha_token_request *r, struct ha_buf *b)
{
    enum ha_err err = ha_buf_append_param(b, "grant_type", HA_OIDC_GRANT_TYPE);
    if (err == HA_OK)
        err = ha_buf_append_param(b, "code", r->code);
    if (err == HA_OK)
        err = ha_buf_append_param(b, "redirect_uri", r->redirect_uri);
    if (err == HA_OK)
        err = ha_buf_append_param(b, "code_verifier", r->code_verifier);
    if (err == HA_OK && strcmp(r->auth_method, HA_AUTH_METHOD_POST) == 0) {
        err = ha_buf_append_param(b, "client_id", r->client_id);
        if (err == HA_OK)
            err = ha_buf_append_param(b, "client_secret", r->client_secret);
    } else if (err == HA_OK) {
        /* RFC 6749 §2.3.1: Basic credentials may not contain ':' unencoded; the
         * caller form-encodes them before they reach curl. client_id is still sent in the
         * body as Auth0 accepts both. */
        err = ha_buf_append_param(b, "client_id", r->client_id);
    }
    return err;
}

static enum ha_err dup_token_field(const struct ha_json_view *doc, const char *name, char **out)
{
    const struct ha_json_val *v = ha_json_view_get(doc, name);
    if (v == NULL || v->type != HA_JSON_STRING || v->len == 0 || v->len > HA_MAX_JWT)
        return HA_ERR_HTTP;
    *out = strndup(v->str, v->len);
    return *out == NULL ? HA_ERR_NOMEM : HA_OK;
}

/* The token response, read with the JSON view (json_view.h) rather than a jansson tree: it is
 * two JWTs in one flat object, on every login, and building the tree was an eighth of a
 * login's instructions. The view accepts exactly what jansson's strict reader accepts. */
static enum ha_err parse_token_response(struct ha_http_response *resp,
                                        struct ha_token_response *out, const char **reason)
{
    struct ha_token_response t = {0};
    struct ha_json_view doc = {0};
    enum ha_err err = HA_ERR_HTTP;
    const struct ha_json_val *exp;

    *reason = "token response is not a JSON object";
    if (resp->body == NULL || ha_json_view_parse(resp->body, resp->body_len, &doc) != HA_OK)
        goto out;
    *reason = "token response lacks id_token, access_token or token_type";
    err = dup_token_field(&doc, "id_token", &t.id_token);
    if (err == HA_OK)
        err = dup_token_field(&doc, "access_token", &t.access_token);
    if (err == HA_OK)
        err = dup_token_field(&doc, "token_type", &t.token_type);
    if (err != HA_OK)
        goto out;
    /* RFC 6750 §4: token_type is case-insensitive. */
    if (strcasecmp(t.token_type, "Bearer") != 0) {
        *reason = "token_type is not Bearer";
        err = HA_ERR_HTTP;
        goto out;
    }
    exp = ha_json_view_get(&doc, "expires_in");
    if (exp != NULL && exp->type == HA_JSON_NUMBER && exp->is_integer && exp->num > 0 &&
        exp->num <= MAX_EXPIRES_IN)
        t.expires_in = (long)exp->num;
    *out = t;
    memset(&t, 0, sizeof(t));
    *reason = NULL;
    err = HA_OK;
out:
    ha_token_response_cleanup(&t);
    ha_json_view_cleanup(&doc);
    return err;
}

static enum ha_err encode_credential(const char *in, char **out)
{
    return ha_url_encode(in, strlen(in), out);
}

void ha_token_call_cleanup(struct ha_token_call *call)
{
    ha_buf_cleanup(&call->body);
    ha_free_secret(call->user);
    ha_free_secret(call->pass);
    memset(call, 0, sizeof(*call));
}

enum ha_err ha_oidc_token_call(const struct ha_oidc_provider *p, const struct ha_token_request *r,
                               struct ha_token_call *call)
{
    enum ha_err err;
    int basic = strcmp(r->auth_method, HA_AUTH_METHOD_POST) != 0;

    memset(call, 0, sizeof(*call));
    ha_buf_init(&call->body, HA_MAX_FORM_BODY);
    err = token_form(r, &call->body);
    if (err == HA_OK && basic) {
        err = encode_credential(r->client_id, &call->user);
        if (err == HA_OK)
            err = encode_credential(r->client_secret, &call->pass);
    }
    if (err != HA_OK) {
        ha_token_call_cleanup(call);
        return err;
    }
    call->req.to_tenant = true;
    call->req.method = "POST";
    call->req.url = p->token_endpoint;
    call->req.content_type = "application/x-www-form-urlencoded";
    call->req.body = call->body.data;
    call->req.body_len = call->body.len;
    call->req.accept = "application/json";
    call->req.basic_user = call->user;
    call->req.basic_pass = call->pass;
    call->req.request_id = r->request_id;
    return HA_OK;
}

enum ha_err ha_oidc_token_answer(enum ha_err err, struct ha_http_response *resp,
                                 struct ha_token_response *out, const char **reason)
{
    if (err != HA_OK) {
        *reason = err == HA_ERR_TIMEOUT     ? "token endpoint timed out"
                  : err == HA_ERR_TOO_LARGE ? "token response too large"
                  : err == HA_ERR_NOMEM     ? "out of memory calling the token endpoint"
                                            : "token endpoint unreachable";
        return err;
    }
    if (resp->status != 200) {
        *reason = resp->status >= 500 ? "token endpoint failed (5xx)"
                                      : "token endpoint refused the code (4xx)";
        return HA_ERR_HTTP;
    }
    return parse_token_response(resp, out, reason);
}

enum ha_err ha_oidc_exchange_code(const struct ha_http *http, const struct ha_oidc_provider *p,
                                  const struct ha_token_request *r, struct ha_token_response *out,
                                  const char **reason)
{
    struct ha_http_response resp = {0};
    struct ha_token_call call;
    enum ha_err err = ha_oidc_token_call(p, r, &call);

    if (err != HA_OK) {
        *reason = "token request could not be built";
        return err;
    }
    err = ha_http_do(http, &call.req, &resp);
    err = ha_oidc_token_answer(err, &resp, out, reason);
    ha_http_response_cleanup(&resp);
    ha_token_call_cleanup(&call);
    return err;
}
