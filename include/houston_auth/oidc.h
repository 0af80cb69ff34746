/* The OIDC protocol steps: discovery, the authorize URL, and the code-for-token exchange. */
#ifndef HOUSTON_AUTH_OIDC_H
#define HOUSTON_AUTH_OIDC_H

#include "houston_auth/buf.h"
#include "houston_auth/err.h"
#include "houston_auth/http_client.h"
#include "houston_auth/transaction.h"

struct ha_oidc_provider {
    char *issuer;
    char *authorization_endpoint;
    char *token_endpoint;
    char *jwks_uri;
    char *end_session_endpoint; /* may be NULL */
};
void ha_oidc_provider_cleanup(struct ha_oidc_provider *p);

/* Parses a discovery document. Its issuer must equal expected_issuer exactly (OIDC Discovery
 * §4.3) and the three endpoints must be https URLs (http only when allow_http). */
enum ha_err ha_oidc_parse_discovery(const char *json, size_t len, const char *expected_issuer,
                                    int allow_http, struct ha_oidc_provider *out,
                                    const char **reason);
/* <issuer>.well-known/openid-configuration (*out the caller's). HA_ERR_TOO_LARGE. */
enum ha_err ha_oidc_discovery_url(const char *issuer, char **out);
/* The GET of url (borrowed). */
void ha_oidc_discovery_request(const char *url, struct ha_http_request *req);
/* Judges the discovery answer (err as the transport gave it), *reason on failure. */
enum ha_err ha_oidc_discovery_answer(enum ha_err err, const struct ha_http_response *resp,
                                     const char *issuer, struct ha_oidc_provider *out,
                                     const char **reason);
/* All three through a synchronous call: GETs <issuer>.well-known/openid-configuration and
 * parses it. */
enum ha_err ha_oidc_discover(const struct ha_http *http, const char *issuer,
                             struct ha_oidc_provider *out, const char **reason);

struct ha_authorize_params {
    const char *client_id;
    const char *redirect_uri;
    const char *audience;
    const char *connection; /* NULL or "self": omitted */
    const char *login_hint; /* NULL: omitted */
    const char *prompt;     /* NULL: omitted */
};
/* <authorization_endpoint>?response_type=code&client_id&redirect_uri&scope&audience&state
 * &nonce&code_challenge&code_challenge_method=S256[&connection][&login_hint][&prompt]. */
enum ha_err ha_oidc_authorize_url(const struct ha_oidc_provider *p,
                                  const struct ha_authorize_params *a, const struct ha_txn *t,
                                  char **out);

struct ha_token_response {
    char *id_token;
    char *access_token;
    char *token_type;
    long expires_in;
};
void ha_token_response_cleanup(struct ha_token_response *t);

struct ha_token_request {
    const char *client_id;
    const char *client_secret;
    const char *auth_method; /* HA_AUTH_METHOD_BASIC or HA_AUTH_METHOD_POST */
    const char *code;
    const char *redirect_uri;
    const char *code_verifier;
    const char *request_id;
};
/* The token request, for an asynchronous call: req points into the struct's own buffers. */
struct ha_token_call {
    struct ha_http_request req;
    struct ha_buf body;
    char *user, *pass;
};
/* Builds the authorization_code grant for token_endpoint (form, PKCE verifier, client
 * authentication). HA_ERR_NOMEM/HA_ERR_TOO_LARGE; *call is cleaned up on error. */
enum ha_err ha_oidc_token_call(const struct ha_oidc_provider *p, const struct ha_token_request *r,
                               struct ha_token_call *call);
void ha_token_call_cleanup(struct ha_token_call *call);
/* Judges the token endpoint's answer (err as the transport gave it), with *reason on failure:
 * the transport's error, HA_ERR_HTTP on a non-200 or a body that is not the expected JSON.
 * The body is read in place (modified). */
enum ha_err ha_oidc_token_answer(enum ha_err err, struct ha_http_response *resp,
                                 struct ha_token_response *out, const char **reason);
/* Both, through a synchronous call: POSTs the authorization_code grant to token_endpoint.
 * HA_ERR_HTTP with *reason on a non-200 answer or a body that is not the expected JSON (id_token,
 * access_token, token_type Bearer). */
enum ha_err ha_oidc_exchange_code(const struct ha_http *http, const struct ha_oidc_provider *p,
                                  const struct ha_token_request *r, struct ha_token_response *out,
                                  const char **reason);

#endif
