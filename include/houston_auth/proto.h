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
/* The gate: the ingress's auth-url, answered from a cache of Houston's decisions. */
#define HA_PATH_AUTHZ "/v1/authorization"

/* Houston's endpoints (DESIGN.md, Houston's contract). */
#define HA_HOUSTON_CALLBACK_PATH "/v1/oauth/callback"
#define HA_HOUSTON_AUTHZ_PATH "/v1/authorization"
/* Houston's OAuth namespace (its legacy start, redirect and callback), which the ingress
 * sends to the sidecar as a whole; what the sidecar does not serve there is refused. */
#define HA_HOUSTON_OAUTH_PREFIX "/v1/oauth"
#define HA_PATH_HOUSTON_REFUSED "/v1/oauth/*" /* the refusal's route name in logs */
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
#define HA_TXN_ID_LEN 16     /* chars of b64url(SHA-256(state)) in the cookie name */
#define HA_TXN_MAX_COOKIES 5 /* per browser (tabs logging in at once); the oldest go first */
#define HA_TXN_EVICT_MAX 48  /* cleared per response: curl keeps 50 Set-Cookie lines */

/* The jar's budget. A browser sends every cookie of houston.<base> with every request there
 * (the cookies are Path=/), and ingress-nginx refuses a request whose header line is over
 * 8 KiB (large_client_header_buffers 4 8k) before Houston or the sidecar sees it; the sidecar
 * itself answers 431 past HA_MAX_COOKIE_HEADER. So the worst Cookie header houston.<base>
 * receives from the sidecar's and Houston's cookies is budgeted:
 *
 *     HA_TXN_JAR_MAX             4096  every transaction cookie, "name=value; " each
 *   + HA_HOUSTON_COOKIE_BUDGET   1024  Houston's auth cookie
 *   = HA_COOKIE_HEADER_BUDGET    5120  3 KiB under nginx's 8 KiB for cookies others set
 *                                      for .<base> (their size is not the sidecar's to cap)
 *
 * A start evicts the oldest transactions until its new cookie fits both HA_TXN_JAR_MAX and
 * HA_TXN_MAX_COOKIES, so the jar never grows past the budget and a new start always fits.
 * Two starts at the same moment each evict against the jar they saw, so for a moment one
 * more cookie may be held: 5120 + HA_TXN_PAIR_MAX (2593) = 7713, still under 8192, and the
 * next start evicts it.
 *
 * Of the three ways to a budget (fewer cookies, a cap on each, smaller ones) this takes all
 * three. Fewer: the byte budget, over the count, decides how many stay, so five small logins
 * (about 240 bytes each) fit, or one with a deep link and up to four small ones. Capped: one
 * sealed value is at most HA_TXN_COOKIE_MAX; a start whose parameters cannot fit is refused
 * with bad_request rather than given a cookie the ingress would later refuse. Smaller: the
 * sealed record is binary (src/transaction.c), 113 bytes plus the strings, so its size
 * follows the lengths of what the UI sent, not how much of it JSON would escape (up to
 * twice); 2560 holds an 800-byte redirect with 800-byte extras (a 2330-byte value). Not
 * compressed: compressing attacker-chosen text next to secrets before encryption is the
 * CRIME pattern, and deep links do not compress much anyway.
 *
 * Houston's cookie (src/houston.c names it): astronomer_<snake_case(base)>_auth=<JWT>, the JWT
 * RS256-signed {uuid, iat, nbf, exp}: header 36 chars, claims about 131, signature 342 for an
 * RSA-2048 key or 683 for RSA-4096, so 511 or 852 bytes; 1024 holds a 4096-bit key with a
 * cookie name of up to 169 characters (astro.example.com's is 33). */
#define HA_TXN_COOKIE_MAX 2560 /* bytes of one sealed value */
#define HA_TXN_JAR_MAX 4096    /* bytes of all transaction cookies in a Cookie header */
#define HA_HOUSTON_COOKIE_BUDGET 1024
#define HA_COOKIE_HEADER_BUDGET (HA_TXN_JAR_MAX + HA_HOUSTON_COOKIE_BUDGET)
#define HA_NGINX_HEADER_LINE 8192 /* ingress-nginx's default large_client_header_buffers */
/* One transaction cookie as a Cookie header carries it: name, '=', value, "; ". */
#define HA_TXN_PAIR_MAX                                                                            \
    (sizeof(HA_TXN_COOKIE_PREFIX) - 1 + HA_TXN_ID_LEN + 1 + HA_TXN_COOKIE_MAX + 2)
#define HA_RANDOM_BYTES 32   /* state, nonce and PKCE verifier: 256 bits each */
#define HA_RANDOM_B64_LEN 43 /* b64url length of HA_RANDOM_BYTES */

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
#define HA_E_EMAIL_NOT_VERIFIED "email_not_verified"
#define HA_E_RATE_LIMITED "rate_limited"
#define HA_E_HOUSTON_UNAVAILABLE "houston_unavailable"
#define HA_E_HOUSTON_REJECTED "houston_rejected"
#define HA_E_NOT_READY "not_ready"
#define HA_E_BUSY "busy"

#endif
