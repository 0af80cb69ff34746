/* Protocol strings and fixed limits, named once (STYLE.md: no bare literals in logic). */
#ifndef HOUSTON_AUTH_PROTO_H
#define HOUSTON_AUTH_PROTO_H

/* Routes served by the sidecar. */
#define HA_PATH_START "/v1/oauth/start"
#define HA_PATH_REDIRECT "/v1/oauth/redirect"
#define HA_PATH_LOGOUT "/logout"
#define HA_PATH_HEALTHZ "/healthz"
#define HA_PATH_READYZ "/readyz"
#define HA_PATH_METRICS "/metrics"

/* Houston's endpoints (DESIGN.md, Houston's contract). */
#define HA_HOUSTON_CALLBACK_PATH "/v1/oauth/callback"
#define HA_HOUSTON_HEALTH_PATH "/v1/healthz"
#define HA_HOUSTON_PROVIDER "auth0"
#define HA_HOUSTON_INTEGRATION_SELF "self"

/* OIDC / OAuth 2.0 parameter names and values. */
#define HA_OIDC_DISCOVERY_PATH "/.well-known/openid-configuration"
#define HA_OIDC_SCOPE "openid profile email"
#define HA_OIDC_RESPONSE_TYPE "code"
#define HA_OIDC_GRANT_TYPE "authorization_code"
#define HA_OIDC_PKCE_METHOD "S256"
#define HA_OIDC_ALG "RS256"
#define HA_AUTH0_LOGOUT_PATH "/v2/logout"
#define HA_AUTH_METHOD_BASIC "client_secret_basic"
#define HA_AUTH_METHOD_POST "client_secret_post"

/* Transaction cookies: one per login in flight. Every sibling under *.<base> (Airflow runs
 * user code there) can set a cookie for .<base>; a browser accepts a "__Host-" cookie only
 * from the host itself, over TLS, host-only (no Domain) and with Path=/ (RFC 6265bis §4.1.3.2),
 * so a cookie under this prefix was set by houston.<base>, never tossed in by a sibling.
 * Path=/ is the prefix's price: the cookies go with every request to houston.<base>, which
 * the jar's budget below accounts for. */
#define HA_COOKIE_HOST_PREFIX "__Host-"
#define HA_TXN_COOKIE_PREFIX HA_COOKIE_HOST_PREFIX "ha_txn_"
#define HA_TXN_COOKIE_PATH "/"
#define HA_TXN_ID_LEN 16       /* chars of b64url(SHA-256(state)) in the cookie name */
#define HA_TXN_MAX_COOKIES 5   /* per browser; the oldest go first */
#define HA_TXN_EVICT_MAX 48    /* cleared per response: curl keeps 50 Set-Cookie lines */
#define HA_TXN_COOKIE_MAX 3072 /* bytes of one sealed value */
#define HA_RANDOM_BYTES 32     /* state, nonce and PKCE verifier: 256 bits each */
#define HA_RANDOM_B64_LEN 43   /* b64url length of HA_RANDOM_BYTES */

/* Input caps (DESIGN.md: every input has a size cap). */
#define HA_MAX_URL 4096
#define HA_MAX_HEADER 8192
#define HA_MAX_COOKIE_HEADER 8192
#define HA_MAX_FORM_BODY 16384
#define HA_MAX_PAIRS 64         /* query and form pairs */
#define HA_MAX_COOKIE_PAIRS 256 /* Cookie pairs: browsers keep up to 180 per domain */
#define HA_MAX_JWT 16384
#define HA_MAX_REDIRECT 2048
#define HA_MAX_EXTRAS 2048
#define HA_MAX_INVITE 512
#define HA_MAX_INTEGRATION 128
#define HA_MAX_PEER_BODY (256 * 1024) /* any response read from the tenant or Houston */
#define HA_MAX_JWKS_KEYS 64
#define HA_MIN_RSA_BITS 2048

/* Login error codes, sent as <appUrl>/login?error=<code> (README lists them). */
#define HA_E_ACCESS_DENIED "access_denied"
#define HA_E_TENANT_ERROR "tenant_error"
#define HA_E_BAD_REQUEST "bad_request"
#define HA_E_INVALID_STATE "invalid_state"
#define HA_E_STATE_EXPIRED "state_expired"
#define HA_E_MISSING_CODE "missing_code"
#define HA_E_TOKEN_EXCHANGE "token_exchange_failed"
#define HA_E_INVALID_ID_TOKEN "invalid_id_token"
#define HA_E_INVALID_ACCESS_TOKEN "invalid_access_token"
#define HA_E_HOUSTON_UNAVAILABLE "houston_unavailable"
#define HA_E_HOUSTON_REJECTED "houston_rejected"
#define HA_E_NOT_READY "not_ready"
#define HA_E_BUSY "busy"

#endif
