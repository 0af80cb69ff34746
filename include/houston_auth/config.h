/* The immutable configuration: the seed's config.yaml plus authSidecar, environment and
 * flags, validated once at start. */
#ifndef HOUSTON_AUTH_CONFIG_H
#define HOUSTON_AUTH_CONFIG_H

#include <stdbool.h>
#include <stdio.h>
#include "houston_auth/err.h"
#include "houston_auth/netaddr.h"
#include "houston_auth/transaction.h"

#define HA_COOKIE_KEY_LEN HA_TXN_KEY_LEN

/* Private to config.c: where each key came from, for ha_config_print. */
struct ha_config_meta;

struct ha_config {
    /* global.baseDomain */
    char *base_domain;
    /* astronomer.houston.config.auth.auth0.* */
    bool auth0_enabled;
    char *client_id;
    char *tenant; /* baseDomain: host[:port] */
    char *issuer; /* derived: "https://<tenant>/" */
    /* authSidecar.* */
    char *listen_host; /* from listen "host:port" */
    int listen_port;
    char *houston_url; /* no trailing '/' */
    char *audience;
    char *public_url;     /* no trailing '/'; redirect_uri = public_url + HA_PATH_REDIRECT */
    char *app_url;        /* no trailing '/' */
    char *app_origin;     /* derived from app_url */
    char *tenant_ca_file; /* NULL: system store only */
    char *tls_cert_file;  /* optional: serve HTTPS (dev); NULL: plain HTTP behind ingress */
    char *tls_key_file;
    char *token_auth_method;      /* HA_AUTH_METHOD_BASIC (default) or HA_AUTH_METHOD_POST */
    long leeway_s;                /* default 60 */
    long txn_ttl_s;               /* default 600, max 600 */
    long connect_timeout_ms;      /* default 2000 */
    long request_timeout_ms;      /* default 5000 */
    long jwks_refresh_s;          /* scheduled refresh, default 3600 */
    long jwks_min_refetch_s;      /* throttle for unknown-kid refetches, default 30 */
    int peer_connections;         /* connections to one peer at once (tenant, Houston), 64 */
    int max_connections;          /* default 4096 */
    char *allowed_connections;    /* comma-separated: what /v1/oauth/start takes as integration */
    char *trusted_proxies;        /* comma-separated, as given ("" when none) */
    size_t nproxies;              /* entries of proxies */
    long exchange_total_per_s;    /* token exchanges a second, whole process; 0: no limit */
    long exchange_client_per_min; /* token exchanges a minute per client; 0: no limit */
    long authz_allow_ttl_s;       /* the gate's cache: a 200 kept, default 10; 0: never */
    long authz_deny_ttl_s;        /* a 401/403 kept, default 2; 0: never */
    long authz_max_entries;       /* decisions and keys in flight, default 65536 */
    long authz_max_mb;            /* their bytes, default 32 MiB */
    char *tenant_proxy;           /* forward proxy for the tenant only; NULL: none, ever */
    char *log_level;              /* "info" */
    bool dev;                     /* --dev: the embedded dev defaults were used */
    /* Secrets: from env or *_FILE, never from the YAML file. */
    char *client_secret;
    unsigned char cookie_key[HA_COOKIE_KEY_LEN];      /* HKDF-SHA256 of the cookie secret */
    unsigned char prev_cookie_key[HA_COOKIE_KEY_LEN]; /* from AUTH_SIDECAR_COOKIE_SECRET_PREVIOUS */
    bool has_prev_cookie_key;
    bool allow_unverified_email; /* insecureAllowUnverifiedEmail: default false */
    char *config_path;           /* NULL when none */
    struct ha_config_meta *meta; /* private to config.c; NULL when not from ha_config_load */
    struct ha_cidr proxies[HA_MAX_PROXIES]; /* trusted_proxies, parsed */
};

/* Outcome of argument parsing for main(). */
enum ha_config_action {
    HA_CONFIG_RUN = 0,
    HA_CONFIG_HELP,
    HA_CONFIG_VERSION,
    HA_CONFIG_CHECK,
};

/* Loads config from argv (flags), env (NULL-terminated "K=V" array) and the YAML file named
 * by --config or HOUSTON_AUTH_CONFIG; precedence flag > env > file > default. --dev selects
 * the embedded dev defaults (the bundled dev tenant and Houston stand-in on loopback, dev
 * secrets) which file/env/flags may still override. On HA_ERR_CONFIG, errbuf holds one line
 * naming the key and the reason. *out is the caller's (ha_config_free). For --help and
 * --version nothing else is read: HA_OK with *out = NULL and *action set. */
/* A key of the sidecar's own section (or one of its removed environment variables) that was
 * set but is not a setting: key is its path ("authSidecar.x") or variable, why says what to do. */
struct ha_config_ignored {
    char key[80];
    const char *why;
};
/* The ignored keys of cfg (none when it did not come from ha_config_load). */
size_t ha_config_ignored(const struct ha_config *cfg, const struct ha_config_ignored **out);

enum ha_err ha_config_load(int argc, char **argv, char **envp, struct ha_config **out,
                           enum ha_config_action *action, char *errbuf, size_t errlen);
void ha_config_free(struct ha_config *cfg);
/* True when s[0..n) is an Auth0 connection name: 1 to HA_MAX_INTEGRATION letters, digits,
 * '-', '_' or '.'. */
bool ha_config_connection_ok(const char *s, size_t n);
/* True when name is in allowedConnections. */
bool ha_config_connection_allowed(const struct ha_config *cfg, const char *name);
/* The name of the first key that is fixed at start (marked so in config.c's key table) and
 * holds different values in a and b, like "auth0.baseDomain" or "authSidecar.listen"
 * (static), or NULL when a reload from a to b changes no such key. */
const char *ha_config_restart_key(const struct ha_config *a, const struct ha_config *b);
/* Prints every key, its resolved value and where it came from; secrets masked. */
void ha_config_print(const struct ha_config *cfg, FILE *f);
/* Prints --help: every key with its YAML path, env var, flag and default. */
void ha_config_print_help(FILE *f);

#endif
