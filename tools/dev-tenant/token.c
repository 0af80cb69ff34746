/* POST /oauth/token (the code-for-tokens exchange), the code store behind it, and /userinfo.
 *
 * Client authentication is exactly one of client_secret_basic (RFC 6749 §2.3.1: id and secret
 * form-encoded, then Basic) and client_secret_post; both or neither is invalid_client (401).
 * A code is 256 random bits, lives 60 s and is single-use: it is burnt on the first
 * redemption attempt whatever the outcome, so a replay (or a second guess at the verifier) is
 * invalid_grant. It is bound to the client, the redirect_uri and the PKCE S256 challenge
 * (RFC 7636 §4.6). Every answer carries Cache-Control: no-store (§5.1). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "houston_auth/b64url.h"
#include "houston_auth/log.h"
#include "houston_auth/proto.h"
#include "houston_auth/util.h"
#include "tenant.h"

#define MAX_BASIC 2048
#define BASIC_CHALLENGE "Basic realm=\"dev-tenant\""
#define BEARER_CHALLENGE "Bearer realm=\"dev-tenant\""
#define BEARER_INVALID "Bearer realm=\"dev-tenant\", error=\"invalid_token\""

static void code_clear(struct tenant_code *c)
{
    free(c->client_id);
    free(c->redirect_uri);
    free(c->challenge);
    free(c->nonce);
    free(c->email);
    free(c->audience);
    free(c->scope);
    OPENSSL_cleanse(c, sizeof(*c));
}

static bool code_fill(struct tenant_code *c, const struct tenant_grant *g, const char *code,
                      long now)
{
    memcpy(c->code, code, strlen(code) + 1);
    c->expires = now + TENANT_CODE_TTL;
    c->used = false;
    c->client_id = ha_strdup(g->client_id);
    c->redirect_uri = ha_strdup(g->redirect_uri);
    c->challenge = ha_strdup(g->challenge);
    c->nonce = ha_strdup(g->nonce);
    c->email = ha_strdup(g->email);
    c->email_verified = g->email_verified;
    c->audience = ha_strdup(g->audience);
    c->scope = ha_strdup(g->scope);
    return c->client_id != NULL && c->redirect_uri != NULL && c->challenge != NULL &&
           c->email != NULL && c->scope != NULL && (g->nonce == NULL || c->nonce != NULL) &&
           (g->audience == NULL || c->audience != NULL);
}

enum ha_err tenant_code_issue(struct tenant *t, const struct tenant_grant *g, char **out)
{
    unsigned char rnd[32];
    char code[48];
    long now = (long)time(NULL);
    struct tenant_code *slot = NULL;
    enum ha_err err = HA_ERR_BUSY;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return HA_ERR_CRYPTO;
    ha_b64url_encode_to(rnd, sizeof(rnd), code);
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; slot == NULL && i < TENANT_MAX_CODES; i++) {
        if (t->codes[i].code[0] == '\0' || t->codes[i].expires <= now)
            slot = &t->codes[i];
    }
    if (slot != NULL) {
        code_clear(slot);
        err = code_fill(slot, g, code, now) ? HA_OK : HA_ERR_NOMEM;
        if (err != HA_OK)
            code_clear(slot);
    }
    pthread_mutex_unlock(&t->lock);
    if (err == HA_OK) {
        *out = strdup(code);
        err = *out != NULL ? HA_OK : HA_ERR_NOMEM;
    }
    OPENSSL_cleanse(code, sizeof(code));
    return err;
}

/* Burns code and moves its grant into *out. NULL on success, else why it is refused. */
static const char *code_redeem(struct tenant *t, const char *code, struct tenant_code *out)
{
    long now = (long)time(NULL);
    const char *why = "unknown authorization code";
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < TENANT_MAX_CODES; i++) {
        struct tenant_code *c = &t->codes[i];
        if (c->code[0] == '\0' || !ha_str_ct_equal(c->code, code))
            continue;
        if (c->used)
            why = "authorization code has already been used";
        else if (c->expires <= now)
            why = "authorization code has expired";
        else {
            *out = *c;
            c->client_id = c->redirect_uri = c->challenge = c->nonce = NULL;
            c->email = c->audience = c->scope = NULL;
            why = NULL;
        }
        c->used = true;
        break;
    }
    pthread_mutex_unlock(&t->lock);
    return why;
}

void tenant_subject(const char *email, char *out, size_t len)
{
    unsigned char md[32];
    char hex[25];
    EVP_Digest(email, strlen(email), md, NULL, EVP_sha256(), NULL);
    for (size_t i = 0; i < 12; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(out, len, "auth0|%s", hex);
}

static void register_user(struct tenant *t, const char *sub, const char *email)
{
    char *copy = strdup(email);
    size_t i;
    if (copy == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    for (i = 0; i < t->nusers && strcmp(t->users[i].sub, sub) != 0; i++)
        ;
    if (i == TENANT_MAX_USERS) {
        /* Full: a dev tenant may forget everyone rather than grow. */
        for (size_t j = 0; j < t->nusers; j++)
            free(t->users[j].email);
        t->nusers = 0;
        i = 0;
    }
    if (i == t->nusers) {
        snprintf(t->users[i].sub, sizeof(t->users[i].sub), "%s", sub);
        t->users[i].email = NULL;
        t->nusers++;
    }
    free(t->users[i].email);
    t->users[i].email = copy;
    pthread_mutex_unlock(&t->lock);
}

static char *user_email(struct tenant *t, const char *sub)
{
    char *out = NULL;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; out == NULL && i < t->nusers; i++) {
        if (strcmp(t->users[i].sub, sub) == 0)
            out = strdup(t->users[i].email);
    }
    pthread_mutex_unlock(&t->lock);
    return out;
}

static bool b64_std_decode(const char *in, char **out)
{
    size_t n = strlen(in), pad = 0;
    unsigned char *buf;
    int len;
    if (n == 0 || n % 4 != 0 || n > MAX_BASIC ||
        strspn(in, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "abcdefghijklmnopqrstuvwxyz"
                   "0123456789+/=") != n)
        return false;
    while (pad < 2 && in[n - 1 - pad] == '=')
        pad++;
    if (memchr(in, '=', n - pad) != NULL)
        return false;
    buf = malloc(n / 4 * 3 + 1);
    if (buf == NULL)
        return false;
    len = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
    if (len < (int)pad || memchr(buf, '\0', (size_t)len - pad) != NULL) {
        free(buf);
        return false;
    }
    buf[(size_t)len - pad] = '\0';
    *out = (char *)buf;
    return true;
}

/* application/x-www-form-urlencoded decoding of one credential ('+' is a space). */
static char *form_decode(const char *s, size_t n)
{
    char *copy = strndup(s, n), *out = NULL;
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p != '\0'; p++) {
        if (*p == '+')
            *p = ' ';
    }
    if (ha_url_decode(copy, strlen(copy), &out) != HA_OK)
        out = NULL;
    ha_free_secret(copy);
    return out;
}

static bool parse_basic(const char *header, char **id, char **secret)
{
    char *raw = NULL, *colon;
    const char *p = header + strlen("Basic ");
    bool ok = false;
    while (*p == ' ')
        p++;
    if (!b64_std_decode(p, &raw))
        return false;
    colon = strchr(raw, ':');
    if (colon != NULL) {
        *id = form_decode(raw, (size_t)(colon - raw));
        *secret = form_decode(colon + 1, strlen(colon + 1));
        ok = *id != NULL && *secret != NULL;
    }
    ha_free_secret(raw);
    return ok;
}

static bool client_auth(struct tenant *t, const struct peer_request *req,
                        const struct ha_kvlist *form, struct peer_response *resp)
{
    const char *auth = req->authorization;
    bool basic = auth != NULL && strncasecmp(auth, "Basic ", 6) == 0;
    const char *body_id = ha_kvlist_get(form, "client_id");
    const char *body_secret = ha_kvlist_get(form, "client_secret");
    char *id = NULL, *secret = NULL;
    const char *why = "exactly one client authentication method is required "
                      "(client_secret_basic or client_secret_post)";
    bool ok = false;

    if (basic != (body_secret == NULL) || ha_kvlist_count(form, "client_id") > 1 ||
        ha_kvlist_count(form, "client_secret") > 1)
        goto out;
    why = "client authentication failed";
    if (basic && !parse_basic(auth, &id, &secret))
        goto out;
    if (!basic) {
        id = ha_strdup(body_id);
        secret = ha_strdup(body_secret);
    }
    ok = id != NULL && secret != NULL && (body_id == NULL || strcmp(body_id, id) == 0) &&
         ha_str_ct_equal(id, t->cfg.client_id) && ha_str_ct_equal(secret, t->cfg.client_secret);
out:
    if (!ok) {
        tenant_oauth_error(resp, 401, "invalid_client", why);
        resp->www_authenticate = strdup(BASIC_CHALLENGE);
    }
    free(id);
    ha_free_secret(secret);
    return ok;
}

static bool verifier_ok(const char *v)
{
    size_t n = v != NULL ? strlen(v) : 0;
    return n >= 43 && n <= 128 &&
           strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") == n;
}

static bool pkce_ok(const char *verifier, const char *challenge)
{
    unsigned char md[32];
    char want[48];
    if (EVP_Digest(verifier, strlen(verifier), md, NULL, EVP_sha256(), NULL) != 1)
        return false;
    ha_b64url_encode_to(md, sizeof(md), want);
    return ha_str_ct_equal(want, challenge);
}

/* The grant checks; on success *c holds the redeemed code's grant (caller clears it). */
static bool grant_ok(struct tenant *t, const struct ha_kvlist *form, struct tenant_code *c,
                     struct peer_response *resp)
{
    const char *type = ha_kvlist_get(form, "grant_type");
    const char *code = ha_kvlist_get(form, "code");
    const char *uri = ha_kvlist_get(form, "redirect_uri");
    const char *verifier = ha_kvlist_get(form, "code_verifier");
    const char *why;

    if (type != NULL && strcmp(type, HA_OIDC_GRANT_TYPE) != 0) {
        tenant_oauth_error(resp, 400, "unsupported_grant_type",
                           "grant_type must be authorization_code");
        return false;
    }
    if (type == NULL || code == NULL || uri == NULL || ha_kvlist_count(form, "grant_type") != 1 ||
        ha_kvlist_count(form, "code") != 1 || ha_kvlist_count(form, "redirect_uri") != 1 ||
        ha_kvlist_count(form, "code_verifier") > 1) {
        tenant_oauth_error(resp, 400, "invalid_request",
                           "grant_type, code and redirect_uri are required, each exactly once");
        return false;
    }
    if (!verifier_ok(verifier)) {
        tenant_oauth_error(resp, 400, "invalid_request",
                           "code_verifier is required: 43 to 128 unreserved characters");
        return false;
    }
    why = code_redeem(t, code, c);
    if (why == NULL && strcmp(c->client_id, t->cfg.client_id) != 0)
        why = "authorization code was issued to another client";
    if (why == NULL && strcmp(c->redirect_uri, uri) != 0)
        why = "redirect_uri does not match the authorization request";
    if (why == NULL && !pkce_ok(verifier, c->challenge))
        why = "code_verifier does not match the code_challenge";
    if (why != NULL)
        tenant_oauth_error(resp, 400, "invalid_grant", why);
    return why == NULL;
}

static json_t *id_claims(struct tenant *t, const struct tenant_code *c, const char *sub, long now)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:b, s:s}", "iss", t->issuer, "sub",
                          sub, "aud", c->client_id, "azp", c->client_id, "exp",
                          (json_int_t)now + TENANT_ID_TOKEN_TTL, "iat", (json_int_t)now, "email",
                          c->email, "email_verified", c->email_verified, "name", c->email);
    json_t *extra = tenant_fault_json(t, "id_token_claims");
    if (j != NULL && c->nonce != NULL)
        json_object_set_new(j, "nonce", json_string(c->nonce));
    tenant_json_merge(j, extra);
    json_decref(extra);
    return j;
}

/* aud: the requested API (when one was asked for) and the userinfo endpoint, as Auth0. */
static json_t *access_claims(struct tenant *t, const struct tenant_code *c, const char *sub,
                             long now)
{
    char userinfo[1024];
    json_t *aud = json_array(), *j, *extra;
    snprintf(userinfo, sizeof(userinfo), "%suserinfo", t->issuer);
    if (c->audience != NULL)
        json_array_append_new(aud, json_string(c->audience));
    json_array_append_new(aud, json_string(userinfo));
    j = json_pack("{s:s, s:s, s:o, s:s, s:I, s:I, s:s}", "iss", t->issuer, "sub", sub, "aud", aud,
                  "azp", c->client_id, "exp", (json_int_t)now + TENANT_ACCESS_TOKEN_TTL, "iat",
                  (json_int_t)now, "scope", c->scope);
    extra = tenant_fault_json(t, "access_token_claims");
    tenant_json_merge(j, extra);
    json_decref(extra);
    return j;
}

static enum ha_err sign_token(struct tenant *t, json_t *claims, const char *prefix, char **out)
{
    char name[32];
    char *mode_s;
    json_t *header;
    enum tenant_sign mode = SIGN_RS256;
    enum ha_err err;

    snprintf(name, sizeof(name), "%s_sign", prefix);
    mode_s = tenant_fault_str(t, name);
    if (mode_s != NULL)
        tenant_sign_parse(mode_s, &mode);
    snprintf(name, sizeof(name), "%s_header", prefix);
    header = tenant_fault_json(t, name);
    err = claims != NULL ? tenant_jws_sign(t, header, claims, mode, out) : HA_ERR_NOMEM;
    json_decref(header);
    free(mode_s);
    return err;
}

static void issue_tokens(struct tenant *t, const struct tenant_code *c, struct peer_response *resp)
{
    long now = (long)time(NULL);
    char sub[32];
    char *id_token = NULL, *access_token = NULL;
    json_t *idc, *atc;
    enum ha_err err;

    tenant_subject(c->email, sub, sizeof(sub));
    register_user(t, sub, c->email);
    idc = id_claims(t, c, sub, now);
    atc = access_claims(t, c, sub, now);
    err = sign_token(t, idc, "id_token", &id_token);
    if (err == HA_OK)
        err = sign_token(t, atc, "access_token", &access_token);
    if (err == HA_OK) {
        resp->no_store = true;
        peer_resp_json(resp, 200,
                       json_pack("{s:s, s:s, s:s, s:i, s:s}", "access_token", access_token,
                                 "id_token", id_token, "token_type", "Bearer", "expires_in",
                                 TENANT_ACCESS_TOKEN_TTL, "scope", c->scope));
        ha_log(HA_LOG_INFO, "tokens_issued", NULL, "sub", sub, NULL);
    } else {
        tenant_oauth_error(resp, 500, "server_error", "the dev tenant could not sign tokens");
    }
    json_decref(idc);
    json_decref(atc);
    ha_free_secret(id_token);
    ha_free_secret(access_token);
}

/* token_delay_ms, token_status, token_body: true when a fault answered. */
static bool token_fault(struct tenant *t, struct peer_response *resp)
{
    long status = tenant_fault_int(t, "token_status", 0);
    char *body = tenant_fault_str(t, "token_body");
    char *type = tenant_fault_str(t, "token_content_type");
    bool answered = true;

    peer_sleep_ms(tenant_fault_int(t, "token_delay_ms", 0), &t->stopping);
    if (status != 0)
        peer_resp_json(resp, (int)status, json_pack("{s:s}", "error", "server_error"));
    else if (body != NULL) {
        peer_resp_text(resp, 200, "application/json", body);
        resp->content_type_own = type;
        type = NULL;
    } else
        answered = false;
    resp->no_store = true;
    free(body);
    free(type);
    return answered;
}

void tenant_handle_token(struct tenant *t, const struct peer_request *req,
                         struct peer_response *resp)
{
    struct ha_kvlist form = {0};
    struct tenant_code c;

    memset(&c, 0, sizeof(c));
    tenant_count(t, &t->stats.token_requests);
    if (token_fault(t, resp))
        return;
    if (tenant_parse_form(req, &form) != HA_OK) {
        tenant_oauth_error(resp, 400, "invalid_request",
                           "the body must be application/x-www-form-urlencoded");
        return;
    }
    if (client_auth(t, req, &form, resp) && grant_ok(t, &form, &c, resp))
        issue_tokens(t, &c, resp);
    code_clear(&c);
    ha_kvlist_cleanup(&form);
}

static bool aud_has(json_t *aud, const char *want)
{
    size_t i;
    json_t *v;
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

static bool access_token_ok(struct tenant *t, json_t *claims)
{
    char userinfo[1024];
    json_t *iss = json_object_get(claims, "iss"), *exp = json_object_get(claims, "exp");
    snprintf(userinfo, sizeof(userinfo), "%suserinfo", t->issuer);
    return json_is_string(iss) && strcmp(json_string_value(iss), t->issuer) == 0 &&
           json_is_integer(exp) && json_integer_value(exp) > (json_int_t)time(NULL) &&
           json_is_string(json_object_get(claims, "sub")) &&
           aud_has(json_object_get(claims, "aud"), userinfo);
}

void tenant_handle_userinfo(struct tenant *t, const struct peer_request *req,
                            struct peer_response *resp)
{
    const char *auth = req->authorization;
    json_t *claims = NULL;
    char *email = NULL;
    const char *sub;

    resp->no_store = true;
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        peer_resp_json(resp, 401, json_pack("{s:s}", "error", "invalid_request"));
        resp->www_authenticate = strdup(BEARER_CHALLENGE);
        return;
    }
    if (tenant_jws_verify(t, auth + 7, &claims) == HA_OK && access_token_ok(t, claims)) {
        sub = json_string_value(json_object_get(claims, "sub"));
        email = user_email(t, sub);
    }
    if (email == NULL) {
        peer_resp_json(resp, 401, json_pack("{s:s}", "error", "invalid_token"));
        resp->www_authenticate = strdup(BEARER_INVALID);
    } else {
        peer_resp_json(resp, 200,
                       json_pack("{s:s, s:s, s:b, s:s}", "sub", sub, "email", email,
                                 "email_verified", 1, "name", email));
    }
    json_decref(claims);
    free(email);
}
