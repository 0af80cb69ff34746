/* GET or form_post POST /v1/oauth/redirect: finishes a login, as a small state machine.
 *
 * Steps, each its own function: take the tenant's answer (error or code+state), open the
 * transaction cookie that matches state (constant-time compare, TTL, one use), exchange the
 * code with PKCE, verify the ID token and the access token, hand the session to Houston, and
 * relay Houston's Location and auth cookie while clearing the transaction cookie. The two
 * calls (token exchange, Houston) are asynchronous: a step starts its call and returns, and
 * the call's callback (on the event loop) runs the next step; a token whose kid the key set
 * lacks waits for one JWKS refetch the same way. No thread waits on a peer.
 *
 *   begin: tenant error? -> open txn -> code, ready, limits -> start token call
 *   on_tokens: answer -> verify (kid unknown: refetch JWKS once, on_keys verifies again)
 *              -> start Houston call
 *   on_houston: answer -> relay
 *
 * Each step returns HA_OK or records why the login failed (the code the person sees, a
 * reason for the log line) and returns HA_ERR_REFUSED. Any failure goes through
 * ha_login_fail, which writes the one log line a failed login gets: no Houston cookie ever
 * leaves on that path. A call's callback may run before its start returns (a transport that
 * fails at once), so a step does nothing with the login after starting a call. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include "houston_auth/handlers.h"
#include "houston_auth/houston.h"
#include "houston_auth/jwt_verify.h"
#include "houston_auth/log.h"
#include "houston_auth/metrics.h"
#include "houston_auth/netaddr.h"
#include "houston_auth/proto.h"
#include "houston_auth/ratelimit.h"
#include "houston_auth/transaction.h"

#define MAX_CODE 2048
#define MAX_ERROR_TEXT 256

struct login {
    struct ha_call *call;
    const struct ha_ctx *cx;
    const struct ha_request *req;
    const struct ha_kvlist *params;
    struct ha_txn txn;
    int have_txn;
    char cookie[64];
    struct ha_token_response tokens;
    struct ha_houston_result houston;
    struct ha_login_error error; /* on failure: why */
    uint64_t t0;                 /* the login's start */
    uint64_t call_t0;            /* the call in flight's start */
    uint64_t waited_ns;          /* time spent waiting on the tenant, JWKS and Houston */
    uint64_t deadline_ns;        /* the person's: requestTimeoutMs from the first call */
    bool key_missed;             /* a token's kid was not in the key set */
    bool refetched;              /* the one JWKS refetch a login may wait for */
    struct ha_jwks_waiter waiter;
};

/* The error codes a tenant may answer with (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6); any
 * other value is logged as "other": the query is anyone's to write. */
static const char *known_error(const char *error)
{
    static const char *const codes[] = {"invalid_request",
                                        "unauthorized_client",
                                        "access_denied",
                                        "unsupported_response_type",
                                        "invalid_scope",
                                        "server_error",
                                        "temporarily_unavailable",
                                        "interaction_required",
                                        "login_required",
                                        "account_selection_required",
                                        "consent_required",
                                        "invalid_request_uri",
                                        "invalid_request_object",
                                        "request_not_supported",
                                        "request_uri_not_supported",
                                        "registration_not_supported"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (strcmp(error, codes[i]) == 0)
            return codes[i];
    }
    return "other";
}

static enum ha_err fail(struct login *l, const char *code, const char *reason)
{
    l->error.code = code;
    l->error.reason = reason;
    return HA_ERR_REFUSED;
}

/* A failure with one more field for its log line (a peer's error, say). */
static enum ha_err fail_with(struct login *l, const char *code, const char *reason,
                             const char *field, const char *value)
{
    l->error.field = field;
    l->error.value = value;
    return fail(l, code, reason);
}

/* The tenant's error answer (RFC 6749 §4.1.2.1). Query text is not logged at info: only the
 * error code when it is a registered one, as a field of the login's one log line.
 * error_description (free text from the query, so anyone's) is logged at debug only,
 * escaped and capped, for diagnosing a tenant's setup ("Service not found: astronomer-ee"
 * when the API is missing). */
static enum ha_err tenant_error(struct login *l)
{
    const char *error = ha_kvlist_get(l->params, "error");
    if (error == NULL)
        return HA_OK;
    if (ha_log_enabled(HA_LOG_DEBUG)) {
        const char *desc = ha_kvlist_get(l->params, "error_description");
        char d[MAX_ERROR_TEXT];
        snprintf(d, sizeof(d), "%s", desc != NULL ? desc : "");
        ha_log(HA_LOG_DEBUG, "tenant_error_description", l->req->request_id,
               "tenant_error_description", d, NULL);
    }
    return fail_with(
        l, strcmp(error, HA_E_ACCESS_DENIED) == 0 ? HA_E_ACCESS_DENIED : HA_E_TENANT_ERROR,
        "the tenant answered with an error", "tenant_error", known_error(error));
}

/* Finds and opens the transaction cookie for the answer's state. */
static enum ha_err open_txn(struct login *l)
{
    const struct ha_view *v = l->cx->view;
    const char *state = ha_kvlist_get(l->params, "state");
    const char *sealed;
    unsigned char keys[HA_MAX_OPEN_KEYS][HA_COOKIE_KEY_LEN];
    long now = l->cx->app->clock.now(l->cx->app->clock.ctx);
    size_t nkeys;
    enum ha_err err;

    if (state == NULL || strlen(state) != HA_RANDOM_B64_LEN ||
        ha_kvlist_count(l->params, "state") != 1)
        return fail(l, HA_E_INVALID_STATE, "state missing or malformed");
    ha_txn_cookie_name(state, l->cookie);
    sealed = ha_kvlist_get(&l->req->cookies, l->cookie);
    if (sealed == NULL)
        return fail(l, HA_E_INVALID_STATE, "no transaction cookie for this state");
    nkeys = ha_app_cookie_keys(v, now, keys);
    err = ha_txn_open(sealed, strlen(sealed), l->cookie, (const unsigned char(*)[32])keys, nkeys,
                      now, v->cfg->txn_ttl_s, &l->txn);
    OPENSSL_cleanse(keys, sizeof(keys));
    if (err == HA_ERR_EXPIRED)
        return fail(l, HA_E_STATE_EXPIRED, "transaction expired");
    if (err != HA_OK)
        return fail(l, HA_E_INVALID_STATE, "transaction cookie does not open");
    l->have_txn = 1;
    if (!ha_str_ct_equal(state, l->txn.state))
        return fail(l, HA_E_INVALID_STATE, "state does not match the transaction");
    if (ha_app_redeem_state(l->cx->app, l->txn.state, now, v->cfg->txn_ttl_s) != HA_OK)
        return fail(l, HA_E_INVALID_STATE, "state already used");
    return HA_OK;
}

/* Each exchange spends the tenant's rate limit, which every real login shares: a client
 * (the peer, or who a trusted proxy says it forwarded) and the process as a whole get a
 * bounded number, and past it nothing reaches the tenant. */
static enum ha_err within_limits(struct login *l, const struct ha_config *cfg)
{
    struct ha_rl_limits lim = {cfg->exchange_total_per_s, cfg->exchange_client_per_min};
    char client[HA_CLIENT_KEY_LEN];
    enum ha_rl_result r;

    if (ha_client_key(l->req->peer, l->req->forwarded_for, cfg->proxies, cfg->nproxies, client) !=
        HA_OK)
        snprintf(client, sizeof(client), "unknown");
    r = ha_ratelimit_take(l->cx->app->limits, client, ha_mono_ns(), &lim);
    if (r == HA_RL_OK)
        return HA_OK;
    ha_metrics_exchange_throttled(l->cx->app->metrics, r == HA_RL_TOTAL);
    return fail(l, HA_E_RATE_LIMITED,
                r == HA_RL_TOTAL ? "token exchanges over authSidecar.tokenExchangesPerSecond"
                                 : "this client is over "
                                   "authSidecar.tokenExchangesPerClientPerMinute");
}

static void end(struct login *l, enum ha_err err);
static void on_tokens(void *ctx, enum ha_err err, struct ha_http_response *resp);
static void on_houston(void *ctx, enum ha_err err, struct ha_http_response *resp);

/* The time a call took, as waiting (not the sidecar's own time). */
static uint64_t waited(struct login *l)
{
    uint64_t t = ha_mono_ns() - l->call_t0;
    l->waited_ns += t;
    return t;
}

/* Checks the code and the limits, then starts the token call (on_tokens goes on). */
static enum ha_err exchange(struct login *l)
{
    const struct ha_config *cfg = l->cx->view->cfg;
    const char *code = ha_kvlist_get(l->params, "code");
    struct ha_token_request r = {cfg->client_id,
                                 cfg->client_secret,
                                 cfg->token_auth_method,
                                 code,
                                 l->cx->view->redirect_uri,
                                 l->txn.verifier,
                                 l->req->request_id};
    const struct ha_transport *t = &l->cx->app->transport;
    const char *reason = NULL;
    struct ha_token_call tc;
    enum ha_err err;

    if (code == NULL || code[0] == '\0' || strlen(code) > MAX_CODE ||
        ha_kvlist_count(l->params, "code") != 1)
        return fail(l, HA_E_MISSING_CODE, "code missing or malformed");
    if (!ha_app_ready(l->cx->app, &reason))
        return fail(l, HA_E_NOT_READY, reason);
    err = within_limits(l, cfg);
    if (err != HA_OK)
        return err;
    if (ha_oidc_token_call(&l->cx->app->provider, &r, &tc) != HA_OK)
        return fail(l, HA_E_TOKEN_EXCHANGE, "token request could not be built");
    l->call_t0 = ha_mono_ns();
    /* One budget for both calls: a person waits requestTimeoutMs at most, not one per peer. */
    l->deadline_ns = l->call_t0 + (uint64_t)cfg->request_timeout_ms * 1000000u;
    tc.req.deadline_ns = l->deadline_ns;
    ha_transport_start(t, &tc.req, on_tokens, l); /* l may be gone from here on */
    ha_token_call_cleanup(&tc);
    return HA_OK;
}

/* Verifies both tokens. A kid the key set lacks sets key_missed (a JWKS refetch may help). */
static enum ha_err verify_tokens(struct login *l)
{
    const struct ha_config *cfg = l->cx->view->cfg;
    long now = l->cx->app->clock.now(l->cx->app->clock.ctx);
    struct ha_jwt_expect id = {cfg->issuer,  cfg->client_id, cfg->client_id, true,
                               l->txn.nonce, true,           true,           now,
                               cfg->leeway_s};
    /* The access token is issued for the API (audience astronomer-ee) and, at Auth0, also
     * for /userinfo: several audiences are normal there, so azp is checked only if sent. */
    struct ha_jwt_expect at = {cfg->issuer, cfg->audience, cfg->client_id, false, NULL, false,
                               true,        now,           cfg->leeway_s};
    const char *reason = NULL;
    struct ha_jwt *jwt = NULL;
    bool unverified = false;
    enum ha_err err;

    err = ha_jwt_verify(l->tokens.id_token, strlen(l->tokens.id_token), l->cx->app->jwks, &id, &jwt,
                        &reason);
    if (err != HA_OK) {
        l->key_missed = err == HA_ERR_JWT_KEY;
        return fail(l, HA_E_INVALID_ID_TOKEN, reason);
    }
    err = ha_jwt_verify(l->tokens.access_token, strlen(l->tokens.access_token), l->cx->app->jwks,
                        &at, NULL, &reason);
    if (err != HA_OK) {
        ha_jwt_free(jwt);
        l->key_missed = err == HA_ERR_JWT_KEY;
        return fail(l, HA_E_INVALID_ACCESS_TOKEN, reason);
    }
    /* Houston finds its user by this email: it must be the person's own. */
    err = ha_jwt_check_email(jwt, cfg->allow_unverified_email, &unverified, &reason);
    ha_jwt_free(jwt);
    if (err != HA_OK)
        return fail(l, HA_E_EMAIL_NOT_VERIFIED, reason);
    if (unverified)
        ha_log(HA_LOG_WARN, "unverified_email_allowed", l->req->request_id, "setting",
               "authSidecar.insecureAllowUnverifiedEmail", NULL);
    return HA_OK;
}

/* Builds Houston's form and starts the callback (on_houston goes on). */
static enum ha_err hand_off(struct login *l)
{
    const struct ha_ctx *cx = l->cx;
    struct ha_http_request req;
    char *state = NULL, *form = NULL, *url = NULL;
    enum ha_err err;

    err = ha_houston_state_json(l->txn.integration, cx->view->houston_origin, l->txn.redirect,
                                l->txn.extras, l->txn.invite_token, &state);
    if (err == HA_OK)
        err = ha_houston_form(l->tokens.id_token, l->tokens.access_token, l->tokens.token_type,
                              l->tokens.expires_in, state, &form);
    /* The tokens are in the form now: not kept while Houston is waited for (a thousand
     * logins caught in a Houston stall held 2 KiB each). */
    ha_token_response_cleanup(&l->tokens);
    if (err == HA_OK)
        err = ha_houston_callback_request(cx->view->cfg->houston_url, form, l->req->request_id,
                                          &req, &url);
    free(state);
    if (err != HA_OK) {
        ha_free_secret(form);
        return fail(l, HA_E_HOUSTON_REJECTED, "Houston's form could not be built");
    }
    l->call_t0 = ha_mono_ns();
    req.deadline_ns = l->deadline_ns;
    ha_transport_start(&cx->app->transport, &req, on_houston, l); /* l may be gone */
    ha_free_secret(form);
    free(url);
    return HA_OK;
}

/* After the tokens verified: Houston, or the end. */
static void verified(struct login *l, enum ha_err err)
{
    if (err == HA_OK)
        err = hand_off(l);
    if (err != HA_OK)
        end(l, err);
}

static void on_keys(void *arg)
{
    struct login *l = arg;
    (void)waited(l); /* the fetch itself is observed as HA_HIST_JWKS */
    l->error = (struct ha_login_error){0};
    verified(l, verify_tokens(l));
}

static void on_tokens(void *ctx, enum ha_err err, struct ha_http_response *resp)
{
    struct login *l = ctx;
    const char *reason = NULL;

    ha_metrics_observe_ns(l->cx->app->metrics, HA_HIST_TOKEN, waited(l));
    err = ha_oidc_token_answer(err, resp, &l->tokens, &reason);
    ha_http_response_cleanup(resp);
    if (err != HA_OK) {
        end(l, fail_with(l, HA_E_TOKEN_EXCHANGE, reason, "peer_error", ha_err_str(err)));
        return;
    }
    err = verify_tokens(l);
    if (err != HA_OK && l->key_missed && !l->refetched) {
        /* A new signing key the cache has not seen yet: one refetch, shared by every login
         * that missed meanwhile and throttled (jwksMinRefetchSeconds). */
        l->refetched = true;
        l->call_t0 = ha_mono_ns();
        if (ha_app_jwks_refetch(l->cx->app, &l->waiter, l->deadline_ns, on_keys, l))
            return;
    }
    verified(l, err);
}

static void on_houston(void *ctx, enum ha_err err, struct ha_http_response *resp)
{
    struct login *l = ctx;
    const struct ha_view *v = l->cx->view;

    ha_metrics_observe_ns(l->cx->app->metrics, HA_HIST_HOUSTON, waited(l));
    err = ha_houston_callback_answer(err, resp, &v->policy, v->houston_cookie, l->req->request_id,
                                     &l->houston);
    ha_http_response_cleanup(resp);
    if (err == HA_ERR_IO || err == HA_ERR_TIMEOUT || err == HA_ERR_TLS)
        err =
            fail_with(l, HA_E_HOUSTON_UNAVAILABLE, "Houston unreachable", "error", ha_err_str(err));
    else if (err == HA_ERR_HTTP)
        err = fail(l, HA_E_HOUSTON_REJECTED, "Houston answered an unexpected status");
    else if (err != HA_OK)
        err = fail(l, HA_E_HOUSTON_REJECTED, "Houston's answer refused (Location or cookie)");
    end(l, err);
}

static enum ha_err relay(struct login *l, struct ha_response *resp)
{
    char *clear = NULL, *set = NULL;
    enum ha_err err = ha_txn_cookie_header(l->cx, l->cookie, NULL, &clear);
    if (err == HA_OK)
        err = ha_response_add_cookie(resp, clear);
    if (err == HA_OK && l->houston.set_cookie != NULL) {
        set = strdup(l->houston.set_cookie);
        err = set == NULL ? HA_ERR_NOMEM : ha_response_add_cookie(resp, set);
    }
    if (err != HA_OK)
        return err;
    resp->location = l->houston.location;
    l->houston.location = NULL;
    resp->no_store = 1;
    ha_metrics_login(l->cx->app->metrics,
                     l->houston.set_cookie != NULL ? NULL : HA_E_HOUSTON_REJECTED);
    ha_log(HA_LOG_INFO, "login_succeeded", l->req->request_id, "integration", l->txn.integration,
           "houston_session", l->houston.set_cookie != NULL ? "set" : "signup_error", NULL);
    return ha_response_text(resp, 302, "text/plain; charset=utf-8", "Signed in.\n");
}

/* The login's answer (relayed, or the failure page), its metrics, and the call's end. */
static void end(struct login *l, enum ha_err err)
{
    struct ha_call *call = l->call;

    if (err == HA_OK && relay(l, call->resp) != HA_OK)
        err = fail(l, HA_E_BUSY, "out of memory relaying Houston's answer");
    if (err != HA_OK)
        err = ha_login_fail(l->cx, l->req, call->resp, &l->error, l->cookie[0] ? l->cookie : NULL);
    ha_metrics_observe_ns(l->cx->app->metrics, HA_HIST_REDIRECT_OWN,
                          ha_mono_ns() - l->t0 - l->waited_ns);
    if (l->have_txn)
        ha_txn_cleanup(&l->txn);
    ha_token_response_cleanup(&l->tokens);
    ha_houston_result_cleanup(&l->houston);
    free(l);
    ha_call_done(call, err);
}

void ha_handle_redirect(struct ha_call *call)
{
    struct login *l = calloc(1, sizeof(*l));
    const struct ha_request *req = call->req;
    const char *state;
    enum ha_err err;

    if (l == NULL) {
        ha_call_done(call, HA_ERR_NOMEM);
        return;
    }
    l->call = call;
    l->cx = &call->cx;
    l->req = req;
    l->t0 = ha_mono_ns();
    l->params = strcmp(req->method, "POST") == 0 ? &req->form : &req->query;
    err = tenant_error(l);
    state = ha_kvlist_get(l->params, "state");
    if (err != HA_OK && state != NULL && strlen(state) == HA_RANDOM_B64_LEN)
        ha_txn_cookie_name(state, l->cookie);
    if (err == HA_OK)
        err = open_txn(l);
    if (err == HA_OK)
        err = exchange(l); /* on success, the login goes on in on_tokens */
    if (err != HA_OK)
        end(l, err);
}
