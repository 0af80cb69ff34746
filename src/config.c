/* Configuration: the administrator's Helm config.yaml (the seed's step 5, unchanged) plus an
 * authSidecar section, the environment and flags, merged into one immutable struct.
 *
 * One table of key descriptors drives everything: where a key sits in the YAML, its
 * environment variable, its flag, its default, whether a reload may change it, how it is
 * checked, and how --help and --check-config print it; no key is listed twice. The --dev
 * values live with the dev setup (config_dev.c). Loading collects raw text per key with its
 * source (flag > env > file), fills the gaps from the dev or plain defaults
 * (some derived from global.baseDomain), then checks and converts each key in table order,
 * so the first error names the first bad key.
 *
 * The YAML is read with libyaml's document API. Only the fixed key paths are visited, never
 * the whole tree, so aliases ("billion laughs") cost nothing: the loader stores an alias as
 * a reference to the anchored node, and the walk is at most six mappings deep. Secrets never
 * come from the file (it lives in Git and Helm values) nor from flags (visible in ps): only
 * from the environment or files mounted from a Kubernetes Secret. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>
#include <openssl/crypto.h>
#include "houston_auth/buf.h"
#include "houston_auth/config.h"
#include "houston_auth/config_dev.h"
#include "houston_auth/ctype.h"
#include "houston_auth/log.h"
#include "houston_auth/netaddr.h"
#include "houston_auth/proto.h"
#include "houston_auth/transaction.h"
#include "houston_auth/url.h"
#include "houston_auth/util.h"

#define CFG_FILE_MAX (1024 * 1024)
#define CFG_SECRET_FILE_MAX (64 * 1024)
#define CFG_VALUE_MAX 4096
#define CFG_YAML_MAX_DEPTH 64
#define CFG_MIN_COOKIE_SECRET 32
#define CFG_BASE_TOKEN "<global.baseDomain>"
#define CFG_ENV_CONFIG "HOUSTON_AUTH_CONFIG"
#define CFG_NO_FIELD ((size_t)-1)

enum key_id {
    K_BASE_DOMAIN,
    K_AUTH0_ENABLED,
    K_CLIENT_ID,
    K_TENANT,
    K_LISTEN,
    K_HOUSTON_URL,
    K_AUDIENCE,
    K_PUBLIC_URL,
    K_APP_URL,
    K_TENANT_CA_FILE,
    K_TLS_CERT_FILE,
    K_TLS_KEY_FILE,
    K_TOKEN_AUTH_METHOD,
    K_CLOCK_SKEW,
    K_TXN_TTL,
    K_CONNECT_TIMEOUT,
    K_REQUEST_TIMEOUT,
    K_JWKS_REFRESH,
    K_JWKS_MIN_REFETCH,
    K_PEER_CONNECTIONS,
    K_MAX_CONNECTIONS,
    K_ALLOWED_CONNECTIONS,
    K_ALLOW_UNVERIFIED_EMAIL,
    K_TRUSTED_PROXIES,
    K_EXCHANGE_RATE,
    K_EXCHANGE_CLIENT_RATE,
    K_AUTHZ_ALLOW_TTL,
    K_AUTHZ_DENY_TTL,
    K_AUTHZ_MAX_ENTRIES,
    K_AUTHZ_MAX_MB,
    K_TENANT_PROXY,
    K_LOG_LEVEL,
    K_CLIENT_SECRET,
    K_COOKIE_SECRET,
    K_COOKIE_SECRET_PREV,
    K__COUNT
};

/* Sources in rising precedence. */
enum src { SRC_NONE = 0, SRC_DEFAULT, SRC_DEV, SRC_FILE, SRC_ENV, SRC_ENV_FILE, SRC_FLAG };

/* KIND_LIST: a YAML list of scalars, or one comma-separated string (env, flags, YAML);
 * stored as one normalised comma-separated string, "" when empty. */
enum kind {
    KIND_STR,
    KIND_FILE,
    KIND_BOOL,
    KIND_LONG,
    KIND_INT,
    KIND_LISTEN,
    KIND_SECRET,
    KIND_LIST
};

#define MAX_IGNORED 8

struct ha_config_meta {
    unsigned char src[K__COUNT];
    size_t cookie_secret_len;
    size_t prev_secret_len;
    /* Keys of the sidecar's own section (and its removed variables) that were set but mean
     * nothing: reported, never fatal (unknown keys are ignored by contract). */
    struct ha_config_ignored ignored[MAX_IGNORED];
    size_t nignored;
};

struct loader;
/* Checks (and may normalise in place) a string value; on refusal fills L->reason. */
typedef enum ha_err (*check_fn)(struct loader *L, char *v);

/* Flags of a key. KEY_RESTART marks what is fixed at start (sockets, TLS, the tenant and its
 * client, timeouts, pools): a reload that changes it is refused, so the rule sits in the row
 * that names the key (redis's IMMUTABLE_CONFIG) and ha_config_restart_key cannot drift. */
#define KEY_REQUIRED 1u
#define KEY_RESTART 2u

struct key {
    const char *path; /* YAML path; NULL for secrets, which never come from the file */
    const char *env;
    const char *flag; /* without "--"; NULL: no flag (secrets) */
    const char *def;  /* default, may hold CFG_BASE_TOKEN; NULL: none */
    enum kind kind;
    unsigned flags; /* KEY_* */
    long min, max;
    size_t off; /* field in struct ha_config, or CFG_NO_FIELD */
    check_fn check;
};

struct loader {
    struct ha_config *cfg;
    struct ha_config_meta *meta;
    char **envp;
    char *raw[K__COUNT];
    enum src raw_src[K__COUNT];
    const char *config_flag; /* borrowed from argv */
    const char *devdir;      /* borrowed from envp or a literal */
    int dev;
    enum ha_config_action action;
    char reason[512];
    char *errbuf;
    size_t errlen;
};

static enum ha_err check_base_domain(struct loader *L, char *v);
static enum ha_err check_client_id(struct loader *L, char *v);
static enum ha_err check_tenant(struct loader *L, char *v);
static enum ha_err check_houston_url(struct loader *L, char *v);
static enum ha_err check_audience(struct loader *L, char *v);
static enum ha_err check_public_url(struct loader *L, char *v);
static enum ha_err check_token_method(struct loader *L, char *v);
static enum ha_err check_log_level(struct loader *L, char *v);
static enum ha_err check_connections(struct loader *L, char *v);
static enum ha_err check_proxies(struct loader *L, char *v);
static enum ha_err check_proxy_url(struct loader *L, char *v);

#define AUTH0 "astronomer.houston.config.auth.auth0."
#define SIDECAR "authSidecar."
#define F(field) offsetof(struct ha_config, field)

#define REQ KEY_REQUIRED
#define FIXED (KEY_REQUIRED | KEY_RESTART)

static const struct key keys[K__COUNT] = {
    [K_BASE_DOMAIN] = {"global.baseDomain", "GLOBAL_BASE_DOMAIN", "base-domain", NULL, KIND_STR,
                       FIXED, 0, 0, F(base_domain), check_base_domain},
    [K_AUTH0_ENABLED] = {AUTH0 "enabled", "AUTH0_ENABLED", "auth0-enabled", "true", KIND_BOOL, REQ,
                         0, 0, F(auth0_enabled), NULL},
    [K_CLIENT_ID] = {AUTH0 "clientId", "AUTH0_CLIENT_ID", "client-id", NULL, KIND_STR, FIXED, 0, 0,
                     F(client_id), check_client_id},
    [K_TENANT] = {AUTH0 "baseDomain", "AUTH0_BASE_DOMAIN", "tenant", NULL, KIND_STR, FIXED, 0, 0,
                  F(tenant), check_tenant},
    [K_LISTEN] = {SIDECAR "listen", "AUTH_SIDECAR_LISTEN", "listen", "0.0.0.0:8872", KIND_LISTEN,
                  FIXED, 0, 0, CFG_NO_FIELD, NULL},
    [K_HOUSTON_URL] = {SIDECAR "houstonUrl", "AUTH_SIDECAR_HOUSTON_URL", "houston-url",
                       "http://127.0.0.1:8871", KIND_STR, REQ, 0, 0, F(houston_url),
                       check_houston_url},
    [K_AUDIENCE] = {SIDECAR "audience", "AUTH_SIDECAR_AUDIENCE", "audience", "astronomer-ee",
                    KIND_STR, REQ, 0, 0, F(audience), check_audience},
    [K_PUBLIC_URL] = {SIDECAR "publicUrl", "AUTH_SIDECAR_PUBLIC_URL", "public-url",
                      "https://houston." CFG_BASE_TOKEN, KIND_STR, REQ, 0, 0, F(public_url),
                      check_public_url},
    [K_APP_URL] = {SIDECAR "appUrl", "AUTH_SIDECAR_APP_URL", "app-url",
                   "https://app." CFG_BASE_TOKEN, KIND_STR, REQ, 0, 0, F(app_url),
                   check_public_url},
    [K_TENANT_CA_FILE] = {SIDECAR "tenantCaFile", "AUTH_SIDECAR_TENANT_CA_FILE", "tenant-ca-file",
                          NULL, KIND_FILE, KEY_RESTART, 0, 0, F(tenant_ca_file), NULL},
    [K_TLS_CERT_FILE] = {SIDECAR "tlsCertFile", "AUTH_SIDECAR_TLS_CERT_FILE", "tls-cert-file", NULL,
                         KIND_FILE, KEY_RESTART, 0, 0, F(tls_cert_file), NULL},
    [K_TLS_KEY_FILE] = {SIDECAR "tlsKeyFile", "AUTH_SIDECAR_TLS_KEY_FILE", "tls-key-file", NULL,
                        KIND_FILE, KEY_RESTART, 0, 0, F(tls_key_file), NULL},
    [K_TOKEN_AUTH_METHOD] = {SIDECAR "tokenAuthMethod", "AUTH_SIDECAR_TOKEN_AUTH_METHOD",
                             "token-auth-method", HA_AUTH_METHOD_BASIC, KIND_STR, REQ, 0, 0,
                             F(token_auth_method), check_token_method},
    [K_CLOCK_SKEW] = {SIDECAR "clockSkewSeconds", "AUTH_SIDECAR_CLOCK_SKEW_SECONDS", "clock-skew",
                      "60", KIND_LONG, REQ, 0, 300, F(leeway_s), NULL},
    [K_TXN_TTL] = {SIDECAR "transactionTtlSeconds", "AUTH_SIDECAR_TRANSACTION_TTL_SECONDS",
                   "transaction-ttl", "600", KIND_LONG, REQ, 30, 600, F(txn_ttl_s), NULL},
    [K_CONNECT_TIMEOUT] = {SIDECAR "connectTimeoutMs", "AUTH_SIDECAR_CONNECT_TIMEOUT_MS",
                           "connect-timeout-ms", "2000", KIND_LONG, FIXED, 100, 30000,
                           F(connect_timeout_ms), NULL},
    [K_REQUEST_TIMEOUT] = {SIDECAR "requestTimeoutMs", "AUTH_SIDECAR_REQUEST_TIMEOUT_MS",
                           "request-timeout-ms", "5000", KIND_LONG, FIXED, 100, 60000,
                           F(request_timeout_ms), NULL},
    [K_JWKS_REFRESH] = {SIDECAR "jwksRefreshSeconds", "AUTH_SIDECAR_JWKS_REFRESH_SECONDS",
                        "jwks-refresh-seconds", "3600", KIND_LONG, FIXED, 60, 86400,
                        F(jwks_refresh_s), NULL},
    [K_JWKS_MIN_REFETCH] = {SIDECAR "jwksMinRefetchSeconds",
                            "AUTH_SIDECAR_JWKS_MIN_REFETCH_SECONDS", "jwks-min-refetch-seconds",
                            "30", KIND_LONG, FIXED, 1, 3600, F(jwks_min_refetch_s), NULL},
    [K_PEER_CONNECTIONS] = {SIDECAR "peerConnections", "AUTH_SIDECAR_PEER_CONNECTIONS",
                            "peer-connections", "64", KIND_INT, FIXED, 1, 1024, F(peer_connections),
                            NULL},
    [K_MAX_CONNECTIONS] = {SIDECAR "maxConnections", "AUTH_SIDECAR_MAX_CONNECTIONS",
                           "max-connections", "4096", KIND_INT, FIXED, 16, 65536,
                           F(max_connections), NULL},
    /* What the seed names: the tenant's own login page, Google and GitHub (Auth0's names). */
    [K_ALLOWED_CONNECTIONS] = {SIDECAR "allowedConnections", "AUTH_SIDECAR_ALLOWED_CONNECTIONS",
                               "allowed-connections", "self,google-oauth2,github", KIND_LIST, REQ,
                               0, 0, F(allowed_connections), check_connections},
    [K_ALLOW_UNVERIFIED_EMAIL] = {SIDECAR "insecureAllowUnverifiedEmail",
                                  "AUTH_SIDECAR_INSECURE_ALLOW_UNVERIFIED_EMAIL",
                                  "insecure-allow-unverified-email", "false", KIND_BOOL, REQ, 0, 0,
                                  F(allow_unverified_email), NULL},
    [K_TRUSTED_PROXIES] = {SIDECAR "trustedProxies", "AUTH_SIDECAR_TRUSTED_PROXIES",
                           "trusted-proxies", "", KIND_LIST, 0, 0, 0, F(trusted_proxies),
                           check_proxies},
    [K_EXCHANGE_RATE] = {SIDECAR "tokenExchangesPerSecond",
                         "AUTH_SIDECAR_TOKEN_EXCHANGES_PER_SECOND", "token-exchanges-per-second",
                         "20", KIND_LONG, REQ, 0, 100000, F(exchange_total_per_s), NULL},
    [K_EXCHANGE_CLIENT_RATE] = {SIDECAR "tokenExchangesPerClientPerMinute",
                                "AUTH_SIDECAR_TOKEN_EXCHANGES_PER_CLIENT_PER_MINUTE",
                                "token-exchanges-per-client-per-minute", "30", KIND_LONG, REQ, 0,
                                1000000, F(exchange_client_per_min), NULL},
    /* The gate's decision cache (docs/deployment.md, "The gate for the UIs"): a role removed in
     * Houston applies within the allow TTL; 0 stores nothing of that kind. */
    [K_AUTHZ_ALLOW_TTL] = {SIDECAR "authzAllowTtlSeconds", "AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS",
                           "authz-allow-ttl-seconds", "10", KIND_LONG, FIXED, 0, 300,
                           F(authz_allow_ttl_s), NULL},
    [K_AUTHZ_DENY_TTL] = {SIDECAR "authzDenyTtlSeconds", "AUTH_SIDECAR_AUTHZ_DENY_TTL_SECONDS",
                          "authz-deny-ttl-seconds", "2", KIND_LONG, FIXED, 0, 60,
                          F(authz_deny_ttl_s), NULL},
    [K_AUTHZ_MAX_ENTRIES] = {SIDECAR "authzCacheMaxEntries", "AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES",
                             "authz-cache-max-entries", "65536", KIND_LONG, FIXED, 1, 4194304,
                             F(authz_max_entries), NULL},
    [K_AUTHZ_MAX_MB] = {SIDECAR "authzCacheMaxMegabytes", "AUTH_SIDECAR_AUTHZ_CACHE_MAX_MEGABYTES",
                        "authz-cache-max-megabytes", "32", KIND_LONG, FIXED, 1, 4096,
                        F(authz_max_mb), NULL},
    [K_TENANT_PROXY] = {SIDECAR "tenantProxy", "AUTH_SIDECAR_TENANT_PROXY", "tenant-proxy", NULL,
                        KIND_STR, KEY_RESTART, 0, 0, F(tenant_proxy), check_proxy_url},
    [K_LOG_LEVEL] = {SIDECAR "logLevel", "AUTH_SIDECAR_LOG_LEVEL", "log-level", "info", KIND_STR,
                     REQ, 0, 0, F(log_level), check_log_level},
    [K_CLIENT_SECRET] = {NULL, "AUTH0_CLIENT_SECRET", NULL, NULL, KIND_SECRET, REQ, 1, 0,
                         CFG_NO_FIELD, NULL},
    [K_COOKIE_SECRET] = {NULL, "AUTH_SIDECAR_COOKIE_SECRET", NULL, NULL, KIND_SECRET, REQ,
                         CFG_MIN_COOKIE_SECRET, 0, CFG_NO_FIELD, NULL},
    [K_COOKIE_SECRET_PREV] = {NULL, "AUTH_SIDECAR_COOKIE_SECRET_PREVIOUS", NULL, NULL, KIND_SECRET,
                              0, CFG_MIN_COOKIE_SECRET, 0, CFG_NO_FIELD, NULL},
};

/* ---- error lines ---- */

static enum ha_err refuse(struct loader *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum ha_err refuse(struct loader *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->reason, sizeof(L->reason), fmt, ap);
    va_end(ap);
    return HA_ERR_CONFIG;
}

/* Writes "config: <path> (env <ENV>, flag --<flag>): <reason>" for key id. */
static enum ha_err fail_key(struct loader *L, enum key_id id)
{
    const struct key *k = &keys[id];
    if (L->errlen == 0)
        return HA_ERR_CONFIG;
    if (k->kind == KIND_SECRET)
        snprintf(L->errbuf, L->errlen, "config: %s (env %s or %s_FILE): %s", k->env, k->env, k->env,
                 L->reason);
    else
        snprintf(L->errbuf, L->errlen, "config: %s (env %s, flag --%s): %s", k->path, k->env,
                 k->flag, L->reason);
    return HA_ERR_CONFIG;
}

/* Writes "config: <reason>" for errors that belong to no single key. */
static enum ha_err fail_plain(struct loader *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum ha_err fail_plain(struct loader *L, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (L->errlen == 0)
        return HA_ERR_CONFIG;
    n = snprintf(L->errbuf, L->errlen, "config: ");
    if (n > 0 && (size_t)n < L->errlen) {
        va_start(ap, fmt);
        vsnprintf(L->errbuf + n, L->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return HA_ERR_CONFIG;
}

/* ---- small parsers ---- */

static enum ha_err parse_number(struct loader *L, const struct key *k, const char *v, long *out)
{
    long n = 0;
    size_t i, len = strlen(v);

    if (len == 0 || len > 9)
        goto bad;
    for (i = 0; i < len; i++) {
        if (!ha_isdigit(v[i]))
            goto bad;
        n = n * 10 + (v[i] - '0');
    }
    if (n < k->min || n > k->max)
        goto bad;
    *out = n;
    return HA_OK;
bad:
    return refuse(L, "must be a whole number from %ld to %ld, got \"%.40s\"", k->min, k->max, v);
}

/* YAML 1.1 (what Helm reads) and YAML 1.2 spellings of true and false. */
static enum ha_err parse_bool(struct loader *L, const char *v, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
                                      "YES",  "on",   "On",   "ON",  "1"};
    static const char *const no[] = {"false", "False", "FALSE", "no",  "No",
                                     "NO",    "off",   "Off",   "OFF", "0"};
    size_t i;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(v, yes[i]) == 0) {
            *out = 1;
            return HA_OK;
        }
        if (strcmp(v, no[i]) == 0) {
            *out = 0;
            return HA_OK;
        }
    }
    return refuse(L, "must be true or false, got \"%.40s\"", v);
}

static int has_bad_char(const char *v)
{
    for (; *v != '\0'; v++) {
        if ((unsigned char)*v <= 0x20 || *v == 0x7f || *v == '\\')
            return 1;
    }
    return 0;
}

/* Refuses what url.c's grammar refuses, with its reason. */
static enum ha_err grammar(struct loader *L, enum ha_err err, const char *reason)
{
    if (err == HA_OK)
        return HA_OK;
    return refuse(L, "%s", reason != NULL ? reason : "malformed");
}

/* http(s)://host[:port][/path]: no user info, query, fragment, spaces or backslashes. */
static enum ha_err parse_url(struct loader *L, const char *v, struct ha_url *u)
{
    const char *reason = "must not contain spaces, control characters or '\\'";
    enum ha_err err = has_bad_char(v) ? HA_ERR_INVALID : ha_url_parse(v, u, &reason);

    if (err != HA_OK) {
        refuse(L, "%s", reason);
        return HA_ERR_CONFIG;
    }
    if (u->rest[strcspn(u->rest, "?#")] != '\0') {
        refuse(L, "must not hold a query or a fragment");
        return HA_ERR_CONFIG;
    }
    return HA_OK;
}

/* Drops trailing '/' after the authority: "https://h/" becomes "https://h". */
static void strip_slashes(char *v, size_t auth_end)
{
    size_t len = strlen(v);
    while (len > auth_end && v[len - 1] == '/')
        v[--len] = '\0';
}

static enum ha_err check_url(struct loader *L, char *v, int https_rule)
{
    struct ha_url u;
    enum ha_err err = parse_url(L, v, &u);

    if (err != HA_OK)
        return err;
    if (https_rule && !u.https && !ha_url_is_loopback(&u.hp))
        return refuse(L,
                      "must be https:// (plain http is allowed only for loopback and "
                      "*.localhost hosts), got \"%.80s\"",
                      v);
    strip_slashes(v, (size_t)(u.rest - v));
    return HA_OK;
}

static enum ha_err check_houston_url(struct loader *L, char *v)
{
    return check_url(L, v, 0);
}

static enum ha_err check_public_url(struct loader *L, char *v)
{
    return check_url(L, v, 1);
}

static enum ha_err check_base_domain(struct loader *L, char *v)
{
    const char *reason = NULL;

    if (strchr(v, ':') != NULL || strchr(v, '/') != NULL)
        return refuse(L,
                      "must be a bare domain like astro.example.com (no scheme, port or "
                      "path), got \"%.80s\"",
                      v);
    return grammar(L, ha_url_check_hostname(v, strlen(v), HA_URL_LOWER, &reason), reason);
}

static enum ha_err check_client_id(struct loader *L, char *v)
{
    if (has_bad_char(v))
        return refuse(L, "must not contain spaces or control characters");
    return HA_OK;
}

static enum ha_err check_audience(struct loader *L, char *v)
{
    return check_client_id(L, v);
}

static enum ha_err check_tenant(struct loader *L, char *v)
{
    struct ha_hostport hp;
    const char *scheme = strstr(v, "://"), *reason = NULL;

    if (scheme != NULL) {
        const char *rest = scheme + 3;
        return refuse(L, "is host[:port] without a scheme: drop \"%.*s\" and write \"%.*s\"",
                      (int)(rest - v), v, (int)strcspn(rest, "/"), rest);
    }
    if (strchr(v, '/') != NULL)
        return refuse(L, "is host[:port] without a path, like tenant-name.auth0.com");
    return grammar(L, ha_url_parse_hostport(v, strlen(v), HA_URL_LOWER, &hp, &reason), reason);
}

static enum ha_err check_token_method(struct loader *L, char *v)
{
    if (strcmp(v, HA_AUTH_METHOD_BASIC) == 0 || strcmp(v, HA_AUTH_METHOD_POST) == 0)
        return HA_OK;
    return refuse(L, "must be %s or %s, got \"%.40s\"", HA_AUTH_METHOD_BASIC, HA_AUTH_METHOD_POST,
                  v);
}

static enum ha_err check_log_level(struct loader *L, char *v)
{
    enum ha_log_level level;
    if (ha_log_parse_level(v, &level) == HA_OK)
        return HA_OK;
    return refuse(L, "must be debug, info, warn or error, got \"%.40s\"", v);
}

/* Each item an Auth0 connection name (ha_config_connection_ok) or "self", the tenant's own
 * login page; no item twice. */
static enum ha_err check_connections(struct loader *L, char *v)
{
    const char *item = v;

    if (v[0] == '\0')
        return refuse(L, "must name at least one connection (\"self\": the tenant's login page)");
    while (*item != '\0') {
        size_t n = strcspn(item, ",");
        const char *dup = v;
        if (!ha_config_connection_ok(item, n))
            return refuse(L,
                          "\"%.*s\" is not an Auth0 connection name (letters, digits, '-', "
                          "'_', '.'; at most %d)",
                          (int)(n > 80 ? 80 : n), item, HA_MAX_INTEGRATION);
        for (; dup < item; dup += strcspn(dup, ",") + 1) { /* the items before this one */
            if (strncmp(dup, item, n) == 0 && dup[n] == ',')
                return refuse(L, "\"%.*s\" is listed twice", (int)n, item);
        }
        item += n + (item[n] == ',');
    }
    return HA_OK;
}

/* Each item an IPv4 or IPv6 address or CIDR range, parsed into cfg->proxies. */
static enum ha_err check_proxies(struct loader *L, char *v)
{
    const char *item = v;
    size_t count = 0;

    while (*item != '\0') {
        size_t n = strcspn(item, ",");
        if (count == HA_MAX_PROXIES)
            return refuse(L, "more than %d entries", HA_MAX_PROXIES);
        if (ha_cidr_parse(item, n, &L->cfg->proxies[count]) != HA_OK)
            return refuse(L,
                          "\"%.*s\" is not an IP address or a CIDR range like 10.0.0.0/8 "
                          "(host bits zero)",
                          (int)(n > 80 ? 80 : n), item);
        count++;
        item += n + (item[n] == ',');
    }
    L->cfg->nproxies = count;
    return HA_OK;
}

/* http(s)://host:port of a forward proxy for the tenant's connection (CONNECT). */
static enum ha_err check_proxy_url(struct loader *L, char *v)
{
    struct ha_url u;
    enum ha_err err = parse_url(L, v, &u);

    if (err == HA_OK && u.rest[0] != '\0' && strcmp(u.rest, "/") != 0)
        err = refuse(L, "must be a proxy's origin, like http://proxy.corp:3128, with no path");
    if (err == HA_OK && !u.hp.has_port)
        err = refuse(L, "needs a port, like http://proxy.corp:3128");
    return err;
}

/* Trims blanks around each comma-separated item of v in place and drops empty items. */
static void normalise_list(char *v)
{
    char *out = v;
    const char *in = v;

    while (*in != '\0') {
        size_t n;
        while (*in == ' ' || *in == '\t')
            in++;
        n = strcspn(in, ",");
        while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\t'))
            n--;
        if (n > 0) {
            if (out != v)
                *out++ = ',';
            memmove(out, in, n);
            out += n;
        }
        in += strcspn(in, ",");
        if (*in == ',')
            in++;
    }
    *out = '\0';
}

static enum ha_err store_list(struct loader *L, enum key_id id, char *v)
{
    const struct key *k = &keys[id];
    enum ha_err err = HA_OK;

    normalise_list(v);
    if (k->check != NULL)
        err = k->check(L, v);
    if (err == HA_OK)
        *(char **)((char *)L->cfg + k->off) = v;
    else
        free(v);
    return err;
}

static enum ha_err store_listen(struct loader *L, const char *v)
{
    struct ha_hostport hp;
    const char *reason = NULL;
    enum ha_err err = ha_url_parse_hostport(
        v, strlen(v), HA_URL_LOWER | HA_URL_NEED_PORT | HA_URL_PORT_ZERO, &hp, &reason);

    if (err != HA_OK)
        return grammar(L, err, reason);
    L->cfg->listen_host = strndup(hp.host, hp.host_len);
    if (L->cfg->listen_host == NULL)
        return HA_ERR_NOMEM;
    L->cfg->listen_port = hp.port;
    return HA_OK;
}

static enum ha_err check_readable(struct loader *L, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return refuse(L, "cannot read \"%.200s\": %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return refuse(L, "\"%.200s\" is not a regular file", path);
    }
    close(fd);
    return HA_OK;
}

/* ---- files and the environment ---- */

/* Reads at most max bytes of path into a NUL-terminated buffer; HA_ERR_IO keeps errno. */
static enum ha_err read_capped(const char *path, size_t max, char **out, size_t *outlen)
{
    char *buf;
    size_t len = 0;
    ssize_t n = 1;
    int fd = open(path, O_RDONLY | O_CLOEXEC), saved;

    if (fd < 0)
        return HA_ERR_IO;
    buf = malloc(max + 2);
    if (buf == NULL) {
        close(fd);
        return HA_ERR_NOMEM;
    }
    while (len <= max && n > 0) {
        n = read(fd, buf + len, max + 1 - len);
        if (n > 0)
            len += (size_t)n;
    }
    saved = errno;
    close(fd);
    if (n < 0 || len > max) {
        OPENSSL_cleanse(buf, len);
        free(buf);
        errno = saved;
        return n < 0 ? HA_ERR_IO : HA_ERR_TOO_LARGE;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return HA_OK;
}

/* Value of NAME in a NULL-terminated "NAME=value" array, or NULL. */
static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp != NULL && *envp != NULL; envp++) {
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    }
    return NULL;
}

/* Records text for key id from src unless a higher source already set it. */
static enum ha_err set_raw(struct loader *L, enum key_id id, const char *text, size_t len,
                           enum src src)
{
    char *copy;

    if (len > CFG_VALUE_MAX) {
        refuse(L, "value longer than %d bytes", CFG_VALUE_MAX);
        return fail_key(L, id);
    }
    if (memchr(text, '\0', len) != NULL) {
        refuse(L, "value contains a NUL byte");
        return fail_key(L, id);
    }
    if (src < L->raw_src[id])
        return HA_OK;
    copy = strndup(text, len);
    if (copy == NULL)
        return HA_ERR_NOMEM;
    free(L->raw[id]);
    L->raw[id] = copy;
    L->raw_src[id] = src;
    return HA_OK;
}

/* ---- flags ---- */

/* --help, --version, --check-config, --dev: 1 when name is one of them. */
static int take_switch(struct loader *L, const char *name, size_t n)
{
    static const struct {
        const char *name;
        int action;
    } sw[] = {{"help", HA_CONFIG_HELP},
              {"version", HA_CONFIG_VERSION},
              {"check-config", HA_CONFIG_CHECK},
              {"dev", -1}};
    size_t i;

    for (i = 0; i < sizeof(sw) / sizeof(sw[0]); i++) {
        if (strlen(sw[i].name) != n || strncmp(sw[i].name, name, n) != 0)
            continue;
        if (sw[i].action < 0)
            L->dev = 1;
        else if (L->action == HA_CONFIG_RUN || sw[i].action < (int)L->action)
            L->action = (enum ha_config_action)sw[i].action; /* help beats version beats check */
        return 1;
    }
    return 0;
}

static int find_flag(const char *name, size_t n)
{
    int id;
    for (id = 0; id < K__COUNT; id++) {
        const char *f = keys[id].flag;
        if (f != NULL && strlen(f) == n && strncmp(f, name, n) == 0)
            return id;
    }
    return -1;
}

/* One "--name[=value]" at argv[*i]; a value may also be the next argument. */
static enum ha_err parse_flag(struct loader *L, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *name = a + 2, *eq, *val;
    size_t n;
    int id;

    if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
        return fail_plain(L, "unexpected argument \"%.64s\" (flags start with --; see --help)", a);
    eq = strchr(name, '=');
    n = eq != NULL ? (size_t)(eq - name) : strlen(name);
    if (take_switch(L, name, n)) {
        if (eq != NULL)
            return fail_plain(L, "flag --%.*s takes no value", (int)n, name);
        return HA_OK;
    }
    id = find_flag(name, n);
    if (id < 0 && !(n == 6 && strncmp(name, "config", 6) == 0))
        return fail_plain(L, "unknown flag --%.*s (see --help)", (int)(n > 64 ? 64 : n), name);
    if (eq != NULL) {
        val = eq + 1;
    } else if (*i + 1 < argc) {
        val = argv[++*i];
    } else {
        return fail_plain(L, "flag --%.*s needs a value", (int)n, name);
    }
    if (id < 0) {
        L->config_flag = val;
        return HA_OK;
    }
    return set_raw(L, (enum key_id)id, val, strlen(val), SRC_FLAG);
}

static enum ha_err parse_flags(struct loader *L, int argc, char **argv)
{
    enum ha_err err = HA_OK;
    int i;

    for (i = 1; i < argc && err == HA_OK; i++)
        err = parse_flag(L, argc, argv, &i);
    return err;
}

/* ---- the YAML file ---- */

static int is_null_node(const yaml_node_t *node)
{
    const char *v;
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    v = (const char *)node->data.scalar.value;
    return strcmp(v, "") == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static int key_is(const yaml_node_t *k, const char *s, size_t n)
{
    return k != NULL && k->type == YAML_SCALAR_NODE && k->data.scalar.length == n &&
           memcmp(k->data.scalar.value, s, n) == 0;
}

/* The value under key seg[0..n) of mapping node, or NULL; a repeated key is refused. */
static enum ha_err map_get(struct loader *L, yaml_document_t *doc, yaml_node_t *node,
                           const char *seg, size_t n, yaml_node_t **out)
{
    yaml_node_pair_t *pair;
    yaml_node_t *found = NULL;

    for (pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
        if (!key_is(yaml_document_get_node(doc, pair->key), seg, n))
            continue;
        if (found != NULL)
            return refuse(L, "key \"%.*s\" appears twice", (int)n, seg);
        found = yaml_document_get_node(doc, pair->value);
    }
    *out = found;
    return HA_OK;
}

/* Walks a dotted path from the root mapping; *out is NULL when any part is absent or null. */
static enum ha_err find_node(struct loader *L, yaml_document_t *doc, yaml_node_t *root,
                             const char *path, yaml_node_t **out)
{
    yaml_node_t *node = root;
    const char *seg = path;
    enum ha_err err;

    *out = NULL;
    for (;;) {
        size_t n = strcspn(seg, ".");
        if (node->type != YAML_MAPPING_NODE) {
            if (is_null_node(node))
                return HA_OK;
            return refuse(L, "%.*s is not a mapping", (int)(seg - path - 1), path);
        }
        err = map_get(L, doc, node, seg, n, &node);
        if (err != HA_OK || node == NULL)
            return err;
        if (seg[n] == '\0')
            break;
        seg += n + 1;
    }
    if (!is_null_node(node))
        *out = node;
    return HA_OK;
}

static const char *secret_env_for(const char *key)
{
    char low[64];
    size_t i;

    for (i = 0; i < sizeof(low) - 1 && key[i] != '\0'; i++)
        low[i] = ha_tolower(key[i]);
    low[i] = '\0';
    if (strstr(low, "secret") == NULL)
        return NULL;
    if (strstr(low, "previous") != NULL)
        return keys[K_COOKIE_SECRET_PREV].env;
    if (strstr(low, "cookie") != NULL)
        return keys[K_COOKIE_SECRET].env;
    return keys[K_CLIENT_SECRET].env;
}

/* Refuses any *secret* key in the sections that name the sidecar's or Auth0's settings. */
static enum ha_err refuse_secrets(struct loader *L, yaml_document_t *doc, yaml_node_t *root)
{
    static const char *const sections[] = {"authSidecar", "astronomer.houston.config.auth.auth0"};
    yaml_node_pair_t *pair;
    yaml_node_t *sec, *k;
    const char *env;
    size_t i;

    for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
        if (find_node(L, doc, root, sections[i], &sec) != HA_OK || sec == NULL ||
            sec->type != YAML_MAPPING_NODE)
            continue; /* the key walk reports a malformed section */
        for (pair = sec->data.mapping.pairs.start; pair < sec->data.mapping.pairs.top; pair++) {
            k = yaml_document_get_node(doc, pair->key);
            if (k == NULL || k->type != YAML_SCALAR_NODE)
                continue;
            env = secret_env_for((const char *)k->data.scalar.value);
            if (env != NULL)
                return fail_plain(L,
                                  "%s.%.64s: secrets are never read from the config file; "
                                  "remove it and set %s or %s_FILE in the environment (for "
                                  "example from a Kubernetes Secret)",
                                  sections[i], (const char *)k->data.scalar.value, env, env);
        }
    }
    return HA_OK;
}

/* Keys that were, and what replaced them: named when they are still set. */
static const struct {
    const char *key, *env, *why;
} removed[] = {
    {"workers", "AUTH_SIDECAR_WORKERS",
     "removed: outbound calls run on one event loop, not a pool of worker threads "
     "(authSidecar.peerConnections bounds the connections to each peer); delete it"},
};

static void note_ignored(struct loader *L, const char *what, const char *name, const char *why)
{
    struct ha_config_ignored *i;
    if (L->meta->nignored >= MAX_IGNORED)
        return;
    i = &L->meta->ignored[L->meta->nignored++];
    snprintf(i->key, sizeof(i->key), "%s%.64s", what, name);
    i->why = why;
}

/* Unknown keys are ignored (the configuration contract: Helm's file holds every component's
 * settings). In authSidecar, the sidecar's own section, one is a typo or a removed setting
 * left at its default without a word, so each is noted and reported at start and reload. */
static void note_unknown_keys(struct loader *L, yaml_document_t *doc, yaml_node_t *root)
{
    const size_t n = sizeof(SIDECAR) - 1;
    yaml_node_pair_t *pair;
    yaml_node_t *sec, *k;
    const char *name, *why;
    int id;

    if (find_node(L, doc, root, "authSidecar", &sec) != HA_OK || sec == NULL ||
        sec->type != YAML_MAPPING_NODE)
        return; /* the key walk reports a malformed section */
    for (pair = sec->data.mapping.pairs.start; pair < sec->data.mapping.pairs.top; pair++) {
        k = yaml_document_get_node(doc, pair->key);
        if (k == NULL || k->type != YAML_SCALAR_NODE)
            continue;
        name = (const char *)k->data.scalar.value;
        for (id = 0; id < K__COUNT; id++)
            if (keys[id].path != NULL && strncmp(keys[id].path, SIDECAR, n) == 0 &&
                strcmp(keys[id].path + n, name) == 0)
                break;
        if (id < K__COUNT)
            continue;
        why = "not a key of houston-auth (misspelt? houston-auth --help lists every key); "
              "ignored";
        for (size_t i = 0; i < sizeof(removed) / sizeof(removed[0]); i++)
            if (strcmp(removed[i].key, name) == 0)
                why = removed[i].why;
        note_ignored(L, SIDECAR, name, why);
    }
}

/* A YAML list of scalars for a KIND_LIST key, joined with commas. */
static enum ha_err set_raw_list(struct loader *L, enum key_id id, yaml_document_t *doc,
                                yaml_node_t *seq)
{
    struct ha_buf b;
    yaml_node_item_t *it;
    enum ha_err err = HA_OK;

    ha_buf_init(&b, CFG_VALUE_MAX);
    for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top && err == HA_OK;
         it++) {
        yaml_node_t *n = yaml_document_get_node(doc, *it);
        if (n == NULL || n->type != YAML_SCALAR_NODE ||
            memchr(n->data.scalar.value, ',', n->data.scalar.length) != NULL) {
            err = refuse(L, "each list item must be a single value without ','");
            break;
        }
        err = ha_buf_appendf(&b, "%s%.*s", it == seq->data.sequence.items.start ? "" : ",",
                             (int)n->data.scalar.length, (const char *)n->data.scalar.value);
        if (err == HA_ERR_TOO_LARGE)
            err = refuse(L, "value longer than %d bytes", CFG_VALUE_MAX);
    }
    if (err == HA_OK)
        err = set_raw(L, id, b.data != NULL ? b.data : "", b.len, SRC_FILE);
    ha_buf_cleanup(&b);
    return err == HA_ERR_CONFIG ? fail_key(L, id) : err;
}

static enum ha_err collect_file_keys(struct loader *L, yaml_document_t *doc, yaml_node_t *root)
{
    yaml_node_t *node;
    enum ha_err err;
    int id;

    for (id = 0; id < K__COUNT; id++) {
        if (keys[id].path == NULL)
            continue;
        err = find_node(L, doc, root, keys[id].path, &node);
        if (err == HA_OK && node != NULL && node->type == YAML_SEQUENCE_NODE &&
            keys[id].kind == KIND_LIST) {
            err = set_raw_list(L, (enum key_id)id, doc, node);
            if (err != HA_OK)
                return err;
            continue;
        }
        if (err == HA_OK && node != NULL && node->type != YAML_SCALAR_NODE)
            err = refuse(L, "expected a single value, found a %s",
                         node->type == YAML_MAPPING_NODE ? "mapping" : "list");
        if (err != HA_OK)
            return fail_key(L, (enum key_id)id);
        if (node != NULL) {
            err = set_raw(L, (enum key_id)id, (const char *)node->data.scalar.value,
                          node->data.scalar.length, SRC_FILE);
            if (err != HA_OK)
                return err;
        }
    }
    return HA_OK;
}

static enum ha_err yaml_error(struct loader *L, const char *path, yaml_parser_t *p)
{
    return fail_plain(
        L, "%.200s:%lu:%lu: not valid YAML: %s", path, (unsigned long)p->problem_mark.line + 1,
        (unsigned long)p->problem_mark.column + 1, p->problem != NULL ? p->problem : "parse error");
}

/* Walks the parsed document; a second document in the same file is refused. */
static enum ha_err walk_document(struct loader *L, const char *path, yaml_parser_t *parser,
                                 yaml_document_t *doc)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    yaml_document_t next;
    enum ha_err err;
    int more;

    if (root == NULL)
        return HA_OK; /* empty file: nothing set */
    if (root->type != YAML_MAPPING_NODE)
        return fail_plain(L,
                          "%.200s: the top level must be a mapping of keys, like the "
                          "config.yaml given to Helm",
                          path);
    err = refuse_secrets(L, doc, root);
    if (err == HA_OK)
        err = collect_file_keys(L, doc, root);
    if (err == HA_OK)
        note_unknown_keys(L, doc, root);
    if (err != HA_OK)
        return err;
    if (!yaml_parser_load(parser, &next))
        return yaml_error(L, path, parser);
    more = yaml_document_get_root_node(&next) != NULL;
    yaml_document_delete(&next);
    if (more)
        return fail_plain(L, "%.200s: holds more than one YAML document", path);
    return HA_OK;
}

/* libyaml's scanner spends O(depth) per token on flow collections, so a 1 MiB "[[[[..." takes
 * minutes to load. A first pass over the events refuses nesting deeper than any config needs
 * before the document is built; the scanner looks ahead at most 1024 characters, so the pass
 * itself stays cheap. */
static enum ha_err check_depth(struct loader *L, const char *path, const char *buf, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    enum ha_err err = HA_OK;
    int depth = 0, done = 0;

    if (!yaml_parser_initialize(&parser))
        return HA_ERR_NOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    while (!done && err == HA_OK) {
        if (!yaml_parser_parse(&parser, &ev)) {
            err = yaml_error(L, path, &parser);
            break;
        }
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
            depth++;
        else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT)
            depth--;
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (depth > CFG_YAML_MAX_DEPTH)
            err = fail_plain(L, "%.200s: nested deeper than %d levels", path, CFG_YAML_MAX_DEPTH);
    }
    yaml_parser_delete(&parser);
    return err;
}

static enum ha_err load_yaml(struct loader *L, const char *path)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    char *buf = NULL;
    size_t len = 0;
    enum ha_err err;

    err = read_capped(path, CFG_FILE_MAX, &buf, &len);
    if (err == HA_ERR_IO)
        return fail_plain(L, "cannot read the config file \"%.200s\": %s", path, strerror(errno));
    if (err == HA_ERR_TOO_LARGE)
        return fail_plain(L, "the config file \"%.200s\" is larger than 1 MiB", path);
    if (err == HA_OK)
        err = check_depth(L, path, buf, len);
    if (err != HA_OK || !yaml_parser_initialize(&parser)) {
        free(buf);
        return err != HA_OK ? err : HA_ERR_NOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        err = yaml_error(L, path, &parser);
    } else {
        err = walk_document(L, path, &parser, &doc);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    free(buf);
    return err;
}

/* File, then environment; flags were recorded first and keep precedence. */
static enum ha_err gather(struct loader *L)
{
    const char *path = L->config_flag, *v;
    enum ha_err err;
    int id;

    if (path == NULL)
        path = env_get(L->envp, CFG_ENV_CONFIG);
    if (path != NULL && path[0] != '\0') {
        L->cfg->config_path = strdup(path);
        if (L->cfg->config_path == NULL)
            return HA_ERR_NOMEM;
        err = load_yaml(L, path);
        if (err != HA_OK)
            return err;
    }
    for (size_t i = 0; i < sizeof(removed) / sizeof(removed[0]); i++)
        if (env_get(L->envp, removed[i].env) != NULL)
            note_ignored(L, "", removed[i].env, removed[i].why);
    for (id = 0; id < K__COUNT; id++) {
        v = keys[id].path != NULL ? env_get(L->envp, keys[id].env) : NULL;
        if (v == NULL)
            continue;
        err = set_raw(L, (enum key_id)id, v, strlen(v), SRC_ENV);
        if (err != HA_OK)
            return err;
    }
    v = env_get(L->envp, HA_DEV_DIR_ENV);
    L->devdir = v != NULL && v[0] != '\0' ? v : HA_DEV_DIR_DEFAULT;
    return HA_OK;
}

/* ---- resolving each key ---- */

/* Copies tmpl with <global.baseDomain> and <devdir> replaced. */
static enum ha_err expand(const char *tmpl, const char *base, const char *devdir, char **out)
{
    size_t bl = strlen(CFG_BASE_TOKEN), dl = strlen(HA_DEV_DIR_TOKEN);
    struct ha_buf b;
    enum ha_err err = HA_OK;

    ha_buf_init(&b, 2 * CFG_VALUE_MAX);
    while (*tmpl != '\0' && err == HA_OK) {
        if (strncmp(tmpl, CFG_BASE_TOKEN, bl) == 0) {
            err = ha_buf_append_str(&b, base != NULL ? base : "");
            tmpl += bl;
        } else if (strncmp(tmpl, HA_DEV_DIR_TOKEN, dl) == 0) {
            err = ha_buf_append_str(&b, devdir);
            tmpl += dl;
        } else {
            err = ha_buf_append(&b, tmpl++, 1);
        }
    }
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    return err;
}

static enum ha_err store_string(struct loader *L, enum key_id id, char *v)
{
    const struct key *k = &keys[id];
    enum ha_err err = HA_OK;

    if (strchr(v, '<') != NULL || strchr(v, '>') != NULL)
        err = refuse(L,
                     "still holds a placeholder from the guide (\"%.80s\"): put your own "
                     "value there",
                     v);
    else if (v[0] == '\0')
        err = refuse(L, "must not be empty");
    else if (k->check != NULL)
        err = k->check(L, v);
    if (err == HA_OK)
        *(char **)((char *)L->cfg + k->off) = v;
    else
        free(v);
    return err;
}

static enum ha_err store_file(struct loader *L, enum key_id id, char *v)
{
    enum ha_err err = HA_OK;

    if (v[0] != '\0')
        err = check_readable(L, v);
    if (err == HA_OK && v[0] != '\0')
        *(char **)((char *)L->cfg + keys[id].off) = v;
    else
        free(v);
    return err;
}

static enum ha_err store_enabled(struct loader *L, enum key_id id, const char *v)
{
    int on = 0;
    enum ha_err err = parse_bool(L, v, &on);

    if (err != HA_OK)
        return err;
    if (!on)
        return refuse(L, "is false, but houston-auth only serves Auth0 logins: set it to true "
                         "(step 5 of the guide), or do not deploy the sidecar");
    *(bool *)((char *)L->cfg + keys[id].off) = true;
    return HA_OK;
}

/* Converts and checks v (owned) into the config field of key id. */
static enum ha_err store_value(struct loader *L, enum key_id id, char *v)
{
    const struct key *k = &keys[id];
    enum ha_err err;
    long n = 0;

    switch (k->kind) {
    case KIND_STR:
        return store_string(L, id, v);
    case KIND_FILE:
        return store_file(L, id, v);
    case KIND_LIST:
        return store_list(L, id, v);
    case KIND_BOOL:
        if (id == K_AUTH0_ENABLED) {
            err = store_enabled(L, id, v);
        } else {
            int on = 0;
            err = parse_bool(L, v, &on);
            if (err == HA_OK)
                *(bool *)((char *)L->cfg + k->off) = on != 0;
        }
        break;
    case KIND_LISTEN:
        err = store_listen(L, v);
        break;
    default:
        err = parse_number(L, k, v, &n);
        if (err == HA_OK && k->kind == KIND_LONG)
            *(long *)((char *)L->cfg + k->off) = n;
        else if (err == HA_OK)
            *(int *)((char *)L->cfg + k->off) = (int)n;
        break;
    }
    free(v);
    return err;
}

static enum ha_err resolve_key(struct loader *L, enum key_id id)
{
    const struct key *k = &keys[id];
    const char *dev = L->dev ? ha_config_dev_get(k->env) : NULL;
    const char *tmpl = dev != NULL ? dev : k->def;
    enum src src = L->raw_src[id];
    char *v = L->raw[id];
    enum ha_err err;

    L->raw[id] = NULL;
    if (v == NULL && tmpl != NULL) {
        err = expand(tmpl, L->cfg->base_domain, L->devdir, &v);
        if (err != HA_OK)
            return err;
        src = dev != NULL ? SRC_DEV : SRC_DEFAULT;
    }
    if (v == NULL) {
        if (!(k->flags & KEY_REQUIRED))
            return HA_OK;
        refuse(L,
               "required: set it in the config file (--config PATH), with %s=..., or with "
               "--%s",
               k->env, k->flag);
        return fail_key(L, id);
    }
    L->meta->src[id] = (unsigned char)src;
    err = store_value(L, id, v);
    return err == HA_ERR_CONFIG ? fail_key(L, id) : err;
}

/* ---- secrets ---- */

/* Reads NAME or NAME_FILE (exactly one), else the dev default; *out NULL when unset. */
static enum ha_err read_secret(struct loader *L, enum key_id id, char **out, size_t *len)
{
    const struct key *k = &keys[id];
    char fname[64];
    const char *v, *fv;
    enum ha_err err;

    snprintf(fname, sizeof(fname), "%s_FILE", k->env);
    v = env_get(L->envp, k->env);
    fv = env_get(L->envp, fname);
    *out = NULL;
    if (v != NULL && fv != NULL)
        return refuse(L, "set %s or %s, not both", k->env, fname);
    if (fv != NULL) {
        err = read_capped(fv, CFG_SECRET_FILE_MAX, out, len);
        if (err == HA_ERR_IO)
            return refuse(L, "cannot read %s \"%.200s\": %s", fname, fv, strerror(errno));
        if (err == HA_ERR_TOO_LARGE)
            return refuse(L, "%s \"%.200s\" is larger than 64 KiB", fname, fv);
        if (err == HA_OK && *len > 0 && (*out)[*len - 1] == '\n')
            (*out)[--*len] = '\0'; /* one trailing newline, as editors and echo leave it */
        L->meta->src[id] = SRC_ENV_FILE;
        return err;
    }
    if (v == NULL && L->dev)
        v = ha_config_dev_get(k->env);
    if (v == NULL)
        return HA_OK;
    *out = strdup(v);
    if (*out == NULL)
        return HA_ERR_NOMEM;
    *len = strlen(v);
    L->meta->src[id] = env_get(L->envp, k->env) != NULL ? SRC_ENV : SRC_DEV;
    return HA_OK;
}

/* Loads one secret: the client secret into cfg, a cookie secret into its derived key. */
static enum ha_err load_secret(struct loader *L, enum key_id id, unsigned char *key_out,
                               size_t *len_out)
{
    const struct key *k = &keys[id];
    char *s = NULL;
    size_t len = 0;
    enum ha_err err = read_secret(L, id, &s, &len);

    if (err == HA_OK && s == NULL && (k->flags & KEY_REQUIRED))
        err = refuse(L,
                     "required: set %s, or %s_FILE to a file holding it (for example a "
                     "mounted Kubernetes Secret)",
                     k->env, k->env);
    if (err != HA_OK || s == NULL)
        goto out;
    if (len < (size_t)k->min)
        err = len == 0 ? refuse(L, "must not be empty")
                       : refuse(L,
                                "must be at least %ld bytes, got %zu (generate one with: "
                                "openssl rand -base64 48)",
                                k->min, len);
    else if (memchr(s, '\0', len) != NULL && key_out == NULL)
        err = refuse(L, "must not contain a NUL byte");
    else if (key_out != NULL)
        err = ha_txn_derive_key(s, len, key_out);
    if (err == HA_OK && key_out == NULL) {
        /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): a loader always has its cfg */
        L->cfg->client_secret = s;
        s = NULL;
    }
    if (len_out != NULL)
        *len_out = len;
out:
    if (s != NULL) {
        OPENSSL_cleanse(s, len);
        free(s);
    }
    return err == HA_ERR_CONFIG ? fail_key(L, id) : err;
}

static enum ha_err load_secrets(struct loader *L)
{
    struct ha_config *cfg = L->cfg;
    enum ha_err err;

    err = load_secret(L, K_CLIENT_SECRET, NULL, NULL);
    if (err == HA_OK)
        err = load_secret(L, K_COOKIE_SECRET, cfg->cookie_key, &L->meta->cookie_secret_len);
    if (err == HA_OK)
        err = load_secret(L, K_COOKIE_SECRET_PREV, cfg->prev_cookie_key, &L->meta->prev_secret_len);
    if (err == HA_OK)
        cfg->has_prev_cookie_key = L->meta->src[K_COOKIE_SECRET_PREV] != SRC_NONE;
    return err;
}

/* ---- derived values ---- */

static enum ha_err check_tls_pair(struct loader *L)
{
    struct ha_config *cfg = L->cfg;

    if ((cfg->tls_cert_file == NULL) == (cfg->tls_key_file == NULL))
        return HA_OK;
    if (cfg->tls_cert_file == NULL) {
        refuse(L, "is set but authSidecar.tlsCertFile is not: set both or neither");
        return fail_key(L, K_TLS_KEY_FILE);
    }
    refuse(L, "is set but authSidecar.tlsKeyFile is not: set both or neither");
    return fail_key(L, K_TLS_CERT_FILE);
}

/* The app's origin, by url.c's one serialiser: what the redirect guard and houston.c compare
 * targets with. */
static enum ha_err derive_origin(struct loader *L)
{
    struct ha_url u;
    const char *reason = NULL;

    if (grammar(L, ha_url_parse(L->cfg->app_url, &u, &reason), reason) != HA_OK)
        return fail_key(L, K_APP_URL);
    return ha_url_format_origin(&u, &L->cfg->app_origin);
}

static enum ha_err derive(struct loader *L)
{
    struct ha_config *cfg = L->cfg;
    struct ha_buf b;
    enum ha_err err;

    err = check_tls_pair(L);
    if (err != HA_OK)
        return err;
    ha_buf_init(&b, CFG_VALUE_MAX);
    err = ha_buf_appendf(&b, "https://%s/", cfg->tenant);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &cfg->issuer);
    ha_buf_cleanup(&b);
    if (err == HA_OK)
        err = derive_origin(L);
    cfg->dev = L->dev != 0;
    return err;
}

/* ---- loading ---- */

static enum ha_err resolve_all(struct loader *L)
{
    enum ha_err err = HA_OK;
    int id;

    for (id = 0; id < K__COUNT && err == HA_OK; id++) {
        if (keys[id].kind != KIND_SECRET)
            err = resolve_key(L, (enum key_id)id);
    }
    return err;
}

static enum ha_err build(struct loader *L)
{
    enum ha_err err;

    L->cfg = calloc(1, sizeof(*L->cfg));
    L->meta = calloc(1, sizeof(*L->meta));
    if (L->cfg == NULL || L->meta == NULL) {
        free(L->meta);
        return HA_ERR_NOMEM;
    }
    L->cfg->meta = L->meta;
    err = gather(L);
    if (err == HA_OK)
        err = resolve_all(L);
    if (err == HA_OK)
        err = load_secrets(L);
    if (err == HA_OK)
        err = derive(L);
    return err;
}

/* Values quoted in a reason may hold control characters: the error stays one printable line. */
static void one_line(char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len && s[i] != '\0'; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            s[i] = '?';
    }
}

enum ha_err ha_config_load(int argc, char **argv, char **envp, struct ha_config **out,
                           enum ha_config_action *action, char *errbuf, size_t errlen)
{
    struct loader L;
    enum ha_err err;
    int id;

    memset(&L, 0, sizeof(L));
    L.envp = envp;
    L.errbuf = errbuf;
    L.errlen = errbuf != NULL ? errlen : 0;
    if (L.errlen > 0)
        errbuf[0] = '\0';
    err = parse_flags(&L, argc, argv);
    if (err != HA_OK)
        goto out;
    if (L.action == HA_CONFIG_HELP || L.action == HA_CONFIG_VERSION) {
        *out = NULL;
        *action = L.action;
        goto out;
    }
    err = build(&L);
    if (err != HA_OK)
        goto out;
    *out = L.cfg;
    *action = L.action;
    L.cfg = NULL;
out:
    for (id = 0; id < K__COUNT; id++)
        free(L.raw[id]);
    ha_config_free(L.cfg);
    if (err != HA_OK && err != HA_ERR_CONFIG)
        fail_plain(&L, "%s", ha_err_str(err));
    one_line(L.errbuf, L.errlen);
    return err;
}

size_t ha_config_ignored(const struct ha_config *cfg, const struct ha_config_ignored **out)
{
    *out = cfg->meta != NULL ? cfg->meta->ignored : NULL;
    return cfg->meta != NULL ? cfg->meta->nignored : 0;
}

void ha_config_free(struct ha_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->base_domain);
    free(cfg->client_id);
    free(cfg->tenant);
    free(cfg->issuer);
    free(cfg->listen_host);
    free(cfg->houston_url);
    free(cfg->audience);
    free(cfg->public_url);
    free(cfg->app_url);
    free(cfg->app_origin);
    free(cfg->tenant_ca_file);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    free(cfg->token_auth_method);
    free(cfg->log_level);
    free(cfg->allowed_connections);
    free(cfg->trusted_proxies);
    free(cfg->tenant_proxy);
    free(cfg->config_path);
    free(cfg->meta);
    ha_free_secret(cfg->client_secret);
    OPENSSL_cleanse(cfg, sizeof(*cfg)); /* the derived cookie keys */
    free(cfg);
}

/* ---- queries ---- */

bool ha_config_connection_ok(const char *s, size_t n)
{
    if (n == 0 || n > HA_MAX_INTEGRATION)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!ha_isalnum(c) && c != '-' && c != '_' && c != '.')
            return false;
    }
    return true;
}

bool ha_config_connection_allowed(const struct ha_config *cfg, const char *name)
{
    size_t len = strlen(name);
    const char *item = cfg->allowed_connections;

    while (item != NULL && *item != '\0') {
        size_t n = strcspn(item, ",");
        if (n == len && memcmp(item, name, n) == 0)
            return true;
        item += n + (item[n] == ',');
    }
    return false;
}

/* Whether key id holds the same value in a and b. */
static bool same_value(const struct ha_config *a, const struct ha_config *b, enum key_id id)
{
    const struct key *k = &keys[id];
    const char *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;
    const char *sa, *sb;

    switch (k->kind) {
    case KIND_LISTEN:
        return a->listen_port == b->listen_port && strcmp(a->listen_host, b->listen_host) == 0;
    case KIND_BOOL:
        return *(const bool *)pa == *(const bool *)pb;
    case KIND_LONG:
        return *(const long *)pa == *(const long *)pb;
    case KIND_INT:
        return *(const int *)pa == *(const int *)pb;
    case KIND_SECRET:
        return true; /* no field: a secret never needs a restart */
    default:
        sa = *(char *const *)pa;
        sb = *(char *const *)pb;
        return sa == sb || (sa != NULL && sb != NULL && strcmp(sa, sb) == 0);
    }
}

const char *ha_config_restart_key(const struct ha_config *a, const struct ha_config *b)
{
    static const char houston_auth[] = "astronomer.houston.config.auth.";
    int id;

    for (id = 0; id < K__COUNT; id++) {
        const char *path = keys[id].path;
        if (!(keys[id].flags & KEY_RESTART) || same_value(a, b, (enum key_id)id))
            continue;
        /* Named as the guide writes it: "auth0.clientId", "authSidecar.listen". */
        if (strncmp(path, houston_auth, sizeof(houston_auth) - 1) == 0)
            path += sizeof(houston_auth) - 1;
        return path;
    }
    return NULL;
}

/* ---- printing ---- */

static void format_value(const struct ha_config *cfg, enum key_id id, char *buf, size_t len)
{
    const struct key *k = &keys[id];
    const char *base = (const char *)cfg;
    const char *s;

    switch (k->kind) {
    case KIND_SECRET: {
        const struct ha_config_meta *m = cfg->meta;
        size_t n = id == K_CLIENT_SECRET   ? (cfg->client_secret ? strlen(cfg->client_secret) : 0)
                   : id == K_COOKIE_SECRET ? (m != NULL ? m->cookie_secret_len : 0)
                                           : (m != NULL ? m->prev_secret_len : 0);
        int set = id == K_COOKIE_SECRET_PREV ? cfg->has_prev_cookie_key : n > 0;
        if (set)
            snprintf(buf, len, "(set, %zu bytes)", n);
        else
            snprintf(buf, len, "(not set)");
        return;
    }
    case KIND_BOOL:
        snprintf(buf, len, "%s", *(const bool *)(base + k->off) ? "true" : "false");
        return;
    case KIND_LONG:
        snprintf(buf, len, "%ld", *(const long *)(base + k->off));
        return;
    case KIND_INT:
        snprintf(buf, len, "%d", *(const int *)(base + k->off));
        return;
    case KIND_LISTEN:
        s = cfg->listen_host != NULL ? cfg->listen_host : "";
        snprintf(buf, len, strchr(s, ':') != NULL ? "[%s]:%d" : "%s:%d", s, cfg->listen_port);
        return;
    default:
        s = *(char *const *)(base + k->off);
        snprintf(buf, len, "%s", s != NULL ? s : "(none)");
        return;
    }
}

static void format_source(const struct ha_config *cfg, enum key_id id, char *buf, size_t len)
{
    const struct key *k = &keys[id];
    enum src src = cfg->meta != NULL ? (enum src)cfg->meta->src[id] : SRC_NONE;

    switch (src) {
    case SRC_DEFAULT:
        snprintf(buf, len, "%s",
                 strstr(k->def, CFG_BASE_TOKEN) != NULL ? "default, from global.baseDomain"
                                                        : "default");
        break;
    case SRC_DEV:
        snprintf(buf, len, "--dev default");
        break;
    case SRC_FILE:
        snprintf(buf, len, "file %s", cfg->config_path != NULL ? cfg->config_path : "");
        break;
    case SRC_ENV:
        snprintf(buf, len, "env %s", k->env);
        break;
    case SRC_ENV_FILE:
        snprintf(buf, len, "env %s_FILE", k->env);
        break;
    case SRC_FLAG:
        snprintf(buf, len, "flag --%s", k->flag);
        break;
    default:
        snprintf(buf, len, "unset");
        break;
    }
}

void ha_config_print(const struct ha_config *cfg, FILE *f)
{
    char value[CFG_VALUE_MAX + 64], source[CFG_VALUE_MAX + 64];
    int id;

    if (cfg == NULL)
        return;
    for (id = 0; id < K__COUNT; id++) {
        format_value(cfg, (enum key_id)id, value, sizeof(value));
        format_source(cfg, (enum key_id)id, source, sizeof(source));
        fprintf(f, "%s = %s  (%s)\n", keys[id].path != NULL ? keys[id].path : keys[id].env, value,
                source);
    }
    fprintf(f, "issuer = %s  (derived from %sbaseDomain)\n", cfg->issuer ? cfg->issuer : "", AUTH0);
    fprintf(f, "appOrigin = %s  (derived from %sappUrl)\n", cfg->app_origin ? cfg->app_origin : "",
            SIDECAR);
    fprintf(f, "config = %s\n", cfg->config_path != NULL ? cfg->config_path : "(none)");
    fprintf(f, "dev = %s\n", cfg->dev ? "true" : "false");
}

void ha_config_print_help(FILE *f)
{
    char env[64], flag[64];
    int id;

    fprintf(f,
            "Usage: houston-auth [--config PATH] [--dev] [--check-config] [--KEY VALUE]...\n"
            "       houston-auth --probe URL | --help | --version\n\n"
            "Auth0 login (authorization code + PKCE) in front of Astronomer's Houston.\n"
            "Reads the config.yaml given to Helm plus its authSidecar section.\n"
            "Precedence: flag > environment > file > default. Flags take --key=value or\n"
            "--key value.\n\n"
            "  --config PATH     the YAML file (or env %s)\n"
            "  --dev             embedded dev defaults for the bundled dev tenant and\n"
            "                    Houston stand-in on loopback; dev files in $%s\n"
            "                    (default %s)\n"
            "  --check-config    validate, print the resolved settings, exit\n"
            "  --probe URL       GET URL, exit 0 on 200 (container health checks)\n"
            "  --help, --version\n\n",
            CFG_ENV_CONFIG, HA_DEV_DIR_ENV, HA_DEV_DIR_DEFAULT);
    fprintf(f, "%-48s %-43s %-27s %s\n", "YAML path", "Environment", "Flag", "Default");
    for (id = 0; id < K__COUNT; id++) {
        const struct key *k = &keys[id];
        snprintf(env, sizeof(env), k->kind == KIND_SECRET ? "%s[_FILE]" : "%s", k->env);
        snprintf(flag, sizeof(flag), k->flag != NULL ? "--%s" : "-", k->flag ? k->flag : "");
        fprintf(f, "%-48s %-43s %-27s %s\n", k->path != NULL ? k->path : "- (secret)", env, flag,
                k->def != NULL            ? (k->def[0] != '\0' ? k->def : "\"\"")
                : k->flags & KEY_REQUIRED ? "(required)"
                                          : "(none)");
    }
    fprintf(f,
            "\nSecrets come only from the environment or *_FILE (never the file or a flag).\n"
            "The cookie secret needs at least %d bytes: openssl rand -base64 48\n",
            CFG_MIN_COOKIE_SECRET);
}
