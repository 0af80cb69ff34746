/* Configuration as the administrator meets it: the guide's config.yaml, environment variables,
 * flags and the error line printed at start. Files are real temporary files; the environment
 * is a fake envp, never the process's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include "houston_auth/config.h"
#include "houston_auth/netaddr.h"
#include "houston_auth/proto.h"
#include "houston_auth/util.h"

#define CLIENT_SECRET "client-secret-VALUE-9f8e7d"
#define COOKIE_SECRET "cookie-secret-VALUE-0123456789abcdef0123456789"
#define ENV_CLIENT "AUTH0_CLIENT_SECRET=" CLIENT_SECRET
#define ENV_COOKIE "AUTH_SIDECAR_COOKIE_SECRET=" COOKIE_SECRET

/* Step 5 of the guide, verbatim. */
#define GUIDE_BLOCK                                                                                \
    "astronomer:\n"                                                                                \
    "  houston:\n"                                                                                 \
    "    config:\n"                                                                                \
    "      auth:\n"                                                                                \
    "        auth0:\n"                                                                             \
    "          enabled: true\n"                                                                    \
    "          clientId: \"<default-app-client-id>\"\n"                                            \
    "          baseDomain: \"<tenant-name>.auth0.com\"\n"

#define SEED_GLOBAL "global:\n  baseDomain: astro.example.com\n"

#define DESIGN_SIDECAR                                                                             \
    "authSidecar:\n"                                                                               \
    "  listen: \"0.0.0.0:8872\"\n"                                                                 \
    "  houstonUrl: \"http://127.0.0.1:8871\"\n"                                                    \
    "  audience: \"astronomer-ee\"\n"                                                              \
    "  publicUrl: \"https://houston.<global.baseDomain>\"\n"                                       \
    "  appUrl: \"https://app.<global.baseDomain>\"\n"                                              \
    "  tenantCaFile: \"\"\n"

struct run {
    struct ha_config *cfg;
    enum ha_config_action action;
    enum ha_err rc;
    char err[512];
};

/* ---- helpers ---- */

static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    const char *p;
    char *out, *o;

    for (p = strstr(s, from); p != NULL; p = strstr(p + fl, from))
        n++;
    out = malloc(strlen(s) + n * tl + 1);
    assert_non_null(out);
    o = out;
    for (p = strstr(s, from); p != NULL; p = strstr(s, from)) {
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        memcpy(o, to, tl);
        o += tl;
        s = p + fl;
    }
    memcpy(o, s, strlen(s) + 1);
    return out;
}

/* The guide's block with the administrator's values in place of its placeholders. */
static char *filled(const char *text)
{
    char *a = replace_all(text, "<default-app-client-id>", "Xk3vQ9clientID");
    char *b = replace_all(a, "<tenant-name>", "astronomer");
    char *c = replace_all(b, "<global.baseDomain>", "astro.example.com");
    free(a);
    free(b);
    return c;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Writes data to a new temporary file; path receives its name. */
static void tmp_file(const char *data, char path[64])
{
    int fd;
    snprintf(path, 64, "/tmp/ha_test_config_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, data, strlen(data));
}

static void load(struct run *r, const char *const *args, const char *const *env)
{
    char *argv[32];
    int argc = 0;

    argv[argc++] = (char *)"houston-auth";
    while (args != NULL && *args != NULL && argc < 31)
        argv[argc++] = (char *)*args++;
    argv[argc] = NULL;
    memset(r, 0, sizeof(*r));
    r->action = (enum ha_config_action) - 1;
    r->rc = ha_config_load(argc, argv, (char **)env, &r->cfg, &r->action, r->err, sizeof(r->err));
    if (r->rc != HA_OK)
        assert_null(r->cfg);
}

/* Loads the file text with --config and the given extra env (secrets always present). */
static void load_text(struct run *r, const char *text, const char *e1, const char *e2)
{
    char path[64];
    const char *args[] = {"--config", path, NULL};
    const char *env[] = {ENV_CLIENT, ENV_COOKIE, e1, e2, NULL};

    tmp_file(text, path);
    load(r, args, env);
    unlink(path);
}

static void assert_refused(const struct run *r, const char *needle)
{
    if (r->rc != HA_ERR_CONFIG || strstr(r->err, needle) == NULL)
        fail_msg("expected HA_ERR_CONFIG naming \"%s\", got %d \"%s\"", needle, r->rc, r->err);
    assert_int_equal(strncmp(r->err, "config: ", 8), 0);
}

static void assert_ok(const struct run *r)
{
    if (r->rc != HA_OK)
        fail_msg("expected HA_OK, got %d \"%s\"", r->rc, r->err);
    assert_non_null(r->cfg);
}

/* HKDF-SHA256 through the EVP_PKEY interface, independent of the code under test. */
static void hkdf(const char *secret, unsigned char out[32])
{
    static const char info[] = "houston-auth transaction cookie v1";
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t len = 32;

    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()), 1);
    assert_int_equal(
        EVP_PKEY_CTX_set1_hkdf_key(ctx, (const unsigned char *)secret, (int)strlen(secret)), 1);
    assert_int_equal(
        EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *)info, (int)strlen(info)), 1);
    assert_int_equal(EVP_PKEY_derive(ctx, out, &len), 1);
    EVP_PKEY_CTX_free(ctx);
}

static char *printed(const struct ha_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    ha_config_print(cfg, f);
    fclose(f);
    return buf;
}

/* ---- the guide's file ---- */

static void test_seed_file(void **state)
{
    struct run r;
    unsigned char key[32];
    char *text = filled(SEED_GLOBAL GUIDE_BLOCK);
    (void)state;

    load_text(&r, text, NULL, NULL);
    assert_ok(&r);
    assert_string_equal(r.cfg->base_domain, "astro.example.com");
    assert_true(r.cfg->auth0_enabled);
    assert_string_equal(r.cfg->client_id, "Xk3vQ9clientID");
    assert_string_equal(r.cfg->tenant, "astronomer.auth0.com");
    assert_string_equal(r.cfg->issuer, "https://astronomer.auth0.com/");
    /* Everything else from defaults, the URLs derived from global.baseDomain. */
    assert_string_equal(r.cfg->listen_host, "0.0.0.0");
    assert_int_equal(r.cfg->listen_port, 8872);
    assert_string_equal(r.cfg->houston_url, "http://127.0.0.1:8871");
    assert_string_equal(r.cfg->audience, "astronomer-ee");
    assert_string_equal(r.cfg->public_url, "https://houston.astro.example.com");
    assert_string_equal(r.cfg->app_url, "https://app.astro.example.com");
    assert_string_equal(r.cfg->app_origin, "https://app.astro.example.com");
    assert_null(r.cfg->tenant_ca_file);
    assert_null(r.cfg->tls_cert_file);
    assert_null(r.cfg->tls_key_file);
    assert_string_equal(r.cfg->token_auth_method, HA_AUTH_METHOD_BASIC);
    assert_int_equal(r.cfg->leeway_s, 60);
    assert_int_equal(r.cfg->txn_ttl_s, 600);
    assert_int_equal(r.cfg->connect_timeout_ms, 2000);
    assert_int_equal(r.cfg->request_timeout_ms, 5000);
    assert_int_equal(r.cfg->jwks_refresh_s, 3600);
    assert_int_equal(r.cfg->jwks_min_refetch_s, 30);
    assert_int_equal(r.cfg->peer_connections, 64);
    assert_int_equal(r.cfg->max_connections, 4096);
    assert_int_equal(r.cfg->authz_allow_ttl_s, 10);
    assert_int_equal(r.cfg->authz_deny_ttl_s, 2);
    assert_int_equal(r.cfg->authz_max_entries, 65536);
    assert_int_equal(r.cfg->authz_max_mb, 32);
    assert_string_equal(r.cfg->log_level, "info");
    assert_false(r.cfg->dev);
    assert_string_equal(r.cfg->client_secret, CLIENT_SECRET);
    hkdf(COOKIE_SECRET, key);
    assert_memory_equal(r.cfg->cookie_key, key, 32);
    assert_false(r.cfg->has_prev_cookie_key);
    assert_non_null(r.cfg->config_path);
    assert_int_equal(r.action, HA_CONFIG_RUN);
    ha_config_free(r.cfg);
    free(text);
}

/* DESIGN.md's full file, authSidecar included; other base domains derive other URLs. */
static void test_seed_with_sidecar_section(void **state)
{
    struct run r;
    char *text = filled(SEED_GLOBAL GUIDE_BLOCK DESIGN_SIDECAR);
    (void)state;

    load_text(&r, text, NULL, NULL);
    assert_ok(&r);
    assert_string_equal(r.cfg->public_url, "https://houston.astro.example.com");
    assert_null(r.cfg->tenant_ca_file);
    ha_config_free(r.cfg);
    free(text);

    text = filled(GUIDE_BLOCK);
    load_text(&r, text, "GLOBAL_BASE_DOMAIN=k8s.corp.io", NULL);
    assert_ok(&r);
    assert_string_equal(r.cfg->public_url, "https://houston.k8s.corp.io");
    assert_string_equal(r.cfg->app_url, "https://app.k8s.corp.io");
    ha_config_free(r.cfg);
    free(text);
}

/* The guide's text with its placeholders still in is caught at start, not at the first login. */
static void test_guide_placeholders_refused(void **state)
{
    struct run r;
    (void)state;

    load_text(&r, SEED_GLOBAL GUIDE_BLOCK, NULL, NULL);
    assert_refused(&r, "astronomer.houston.config.auth.auth0.clientId");
    assert_non_null(strstr(r.err, "placeholder"));
}

static char *read_example(void)
{
    char path[1024], *buf;
    const char *marker = strstr(__FILE__, "tests/unit/test_config.c");
    FILE *f;
    long len;

    if (marker == NULL)
        return NULL;
    snprintf(path, sizeof(path), "%.*sexamples/config.yaml", (int)(marker - __FILE__), __FILE__);
    f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return buf;
}

static void test_example_file(void **state)
{
    struct run r;
    char *raw = read_example(), *text;
    (void)state;

    if (raw == NULL)
        skip();
    load_text(&r, raw, NULL, NULL);
    assert_refused(&r, "auth0.clientId");
    text = filled(raw);
    load_text(&r, text, NULL, NULL);
    assert_ok(&r);
    assert_string_equal(r.cfg->client_id, "Xk3vQ9clientID");
    assert_string_equal(r.cfg->public_url, "https://houston.astro.example.com");
    assert_string_equal(r.cfg->token_auth_method, HA_AUTH_METHOD_BASIC);
    ha_config_free(r.cfg);
    free(text);
    free(raw);
}

/* ---- precedence and sources ---- */

static void test_precedence(void **state)
{
    struct run r;
    char path[64];
    char *text = filled(SEED_GLOBAL GUIDE_BLOCK "authSidecar:\n  audience: file-aud\n"
                                                "  peerConnections: 3\n");
    const char *env_on[] = {ENV_CLIENT, ENV_COOKIE, "AUTH_SIDECAR_AUDIENCE=env-aud",
                            "AUTH_SIDECAR_PEER_CONNECTIONS=5", NULL};
    const char *env_off[] = {ENV_CLIENT, ENV_COOKIE, NULL};
    const char *flag_eq[] = {"--config", path, "--audience=flag-aud", "--peer-connections=7", NULL};
    const char *flag_sep[] = {"--peer-connections", "9",     "--config", path,
                              "--audience",         "flag2", NULL};
    const char *no_flag[] = {"--config", path, NULL};
    (void)state;

    tmp_file(text, path);
    load(&r, flag_eq, env_on);
    assert_ok(&r);
    assert_string_equal(r.cfg->audience, "flag-aud");
    assert_int_equal(r.cfg->peer_connections, 7);
    ha_config_free(r.cfg);
    load(&r, flag_sep, env_on);
    assert_ok(&r);
    assert_string_equal(r.cfg->audience, "flag2");
    assert_int_equal(r.cfg->peer_connections, 9);
    ha_config_free(r.cfg);
    load(&r, no_flag, env_on);
    assert_ok(&r);
    assert_string_equal(r.cfg->audience, "env-aud");
    assert_int_equal(r.cfg->peer_connections, 5);
    ha_config_free(r.cfg);
    load(&r, no_flag, env_off);
    assert_ok(&r);
    assert_string_equal(r.cfg->audience, "file-aud");
    assert_int_equal(r.cfg->peer_connections, 3);
    ha_config_free(r.cfg);
    unlink(path);
    free(text);
}

static void test_config_path_from_env(void **state)
{
    struct run r;
    char path[64], other[64], envpath[96];
    char *text = filled(SEED_GLOBAL GUIDE_BLOCK);
    const char *env[] = {ENV_CLIENT, ENV_COOKIE, envpath, NULL};
    const char *args[] = {"--config", other, NULL};
    (void)state;

    tmp_file(text, path);
    tmp_file("global:\n  baseDomain: other.example.com\n", other);
    snprintf(envpath, sizeof(envpath), "HOUSTON_AUTH_CONFIG=%s", path);
    load(&r, NULL, env);
    assert_ok(&r);
    assert_string_equal(r.cfg->config_path, path);
    assert_string_equal(r.cfg->base_domain, "astro.example.com");
    ha_config_free(r.cfg);
    /* --config wins over HOUSTON_AUTH_CONFIG: the other file lacks the Auth0 block. */
    load(&r, args, env);
    assert_refused(&r, "astronomer.houston.config.auth.auth0.clientId");
    unlink(path);
    unlink(other);
    free(text);
}

/* ---- required keys ---- */

static void test_nothing_configured(void **state)
{
    struct run r;
    const char *env[] = {NULL};
    (void)state;

    load(&r, NULL, env);
    assert_refused(&r, "global.baseDomain (env GLOBAL_BASE_DOMAIN, flag --base-domain)");
    assert_non_null(strstr(r.err, "required"));
    assert_non_null(strstr(r.err, "--config"));
    load(&r, NULL, NULL);
    assert_refused(&r, "global.baseDomain");
}

static void test_each_required_key(void **state)
{
    static const struct {
        const char *env;
        const char *needle;
    } req[] = {
        {"GLOBAL_BASE_DOMAIN=astro.example.com", "global.baseDomain"},
        {"AUTH0_CLIENT_ID=abc", "astronomer.houston.config.auth.auth0.clientId"},
        {"AUTH0_BASE_DOMAIN=t.auth0.com", "astronomer.houston.config.auth.auth0.baseDomain"},
        {ENV_CLIENT, "AUTH0_CLIENT_SECRET"},
        {ENV_COOKIE, "AUTH_SIDECAR_COOKIE_SECRET"},
    };
    const size_t n = sizeof(req) / sizeof(req[0]);
    const char *env[8];
    struct run r;
    size_t skip, i, k;
    (void)state;

    for (skip = 0; skip < n; skip++) {
        for (i = 0, k = 0; i < n; i++) {
            if (i != skip)
                env[k++] = req[i].env;
        }
        env[k] = NULL;
        load(&r, NULL, (const char *const *)env);
        assert_refused(&r, req[skip].needle);
        assert_non_null(strstr(r.err, "required"));
    }
    for (i = 0; i < n; i++)
        env[i] = req[i].env;
    env[n] = NULL;
    load(&r, NULL, (const char *const *)env);
    assert_ok(&r);
    assert_true(r.cfg->auth0_enabled); /* not false is enough: it defaults to true */
    ha_config_free(r.cfg);
}

/* ---- refused values ---- */

static const char *const base_env[] = {
    "GLOBAL_BASE_DOMAIN=astro.example.com", "AUTH0_ENABLED=true", "AUTH0_CLIENT_ID=abc",
    "AUTH0_BASE_DOMAIN=t.auth0.com",        ENV_CLIENT,           ENV_COOKIE};

/* Loads base_env plus one more variable (later entries do not override earlier ones, so the
 * override goes first). */
static void load_with(struct run *r, const char *extra)
{
    const char *env[10];
    size_t i, k = 0;

    env[k++] = extra;
    for (i = 0; i < sizeof(base_env) / sizeof(base_env[0]); i++)
        env[k++] = base_env[i];
    env[k] = NULL;
    load(r, NULL, env);
}

/* The platform keys: allowedConnections and trustedProxies as YAML lists or comma strings,
 * refusals that name the key, the exchange limits and the insecure opt-out. */
static void test_platform_keys(void **state)
{
    static const struct {
        const char *env;
        const char *needle;
    } bad[] = {
        {"AUTH_SIDECAR_ALLOWED_CONNECTIONS=self,a b", "authSidecar.allowedConnections"},
        {"AUTH_SIDECAR_ALLOWED_CONNECTIONS=", "authSidecar.allowedConnections"},
        {"AUTH_SIDECAR_ALLOWED_CONNECTIONS=github,self,github", "listed twice"},
        {"AUTH_SIDECAR_TRUSTED_PROXIES=10.0.0.1/8", "authSidecar.trustedProxies"},
        {"AUTH_SIDECAR_TRUSTED_PROXIES=10.0.0.0/33", "authSidecar.trustedProxies"},
        {"AUTH_SIDECAR_TRUSTED_PROXIES=ingress.local", "authSidecar.trustedProxies"},
        {"AUTH_SIDECAR_TOKEN_EXCHANGES_PER_SECOND=-1", "authSidecar.tokenExchangesPerSecond"},
        {"AUTH_SIDECAR_INSECURE_ALLOW_UNVERIFIED_EMAIL=sure",
         "authSidecar.insecureAllowUnverifiedEmail"},
        {"AUTH_SIDECAR_TENANT_PROXY=socks5://p:1080", "authSidecar.tenantProxy"},
        {"AUTH_SIDECAR_TENANT_PROXY=http://proxy.corp", "needs a port"},
        {"AUTH_SIDECAR_TENANT_PROXY=http://proxy.corp:3128/path", "no path"},
    };
    char many[HA_MAX_PROXIES * 16 + 64] = "AUTH_SIDECAR_TRUSTED_PROXIES=";
    struct run r;
    char *text;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        load_with(&r, bad[i].env);
        assert_refused(&r, bad[i].needle);
    }
    for (int i = 0; i <= HA_MAX_PROXIES; i++) {
        char one[24];
        snprintf(one, sizeof(one), "%s10.%d.0.0/16", i > 0 ? "," : "", i);
        strcat(many, one);
    }
    load_with(&r, many);
    assert_refused(&r, "more than");

    /* Defaults: the seed's connections, limits on, nothing trusted, no proxy. */
    load_with(&r, "AUTH_SIDECAR_LOG_LEVEL=info");
    assert_ok(&r);
    assert_true(ha_config_connection_allowed(r.cfg, "self"));
    assert_true(ha_config_connection_allowed(r.cfg, "google-oauth2"));
    assert_true(ha_config_connection_allowed(r.cfg, "github"));
    assert_false(ha_config_connection_allowed(r.cfg, "Username-Password-Authentication"));
    assert_false(ha_config_connection_allowed(r.cfg, "git"));
    assert_int_equal(r.cfg->nproxies, 0);
    assert_int_equal(r.cfg->exchange_total_per_s, 20);
    assert_int_equal(r.cfg->exchange_client_per_min, 30);
    assert_false(r.cfg->allow_unverified_email);
    assert_null(r.cfg->tenant_proxy);
    ha_config_free(r.cfg);

    /* YAML lists, blanks trimmed. */
    text = filled(SEED_GLOBAL GUIDE_BLOCK "authSidecar:\n"
                                          "  allowedConnections: [self, corp-saml]\n"
                                          "  trustedProxies:\n    - 10.0.0.0/8\n    - fd00::/8\n"
                                          "  insecureAllowUnverifiedEmail: true\n");
    load_text(&r, text, NULL, NULL);
    assert_ok(&r);
    assert_string_equal(r.cfg->allowed_connections, "self,corp-saml");
    assert_true(ha_config_connection_allowed(r.cfg, "corp-saml"));
    assert_false(ha_config_connection_allowed(r.cfg, "github"));
    assert_int_equal(r.cfg->nproxies, 2);
    assert_true(r.cfg->allow_unverified_email);
    ha_config_free(r.cfg);
    free(text);
    /* A list item that is not a single value, or holds a comma, is refused. */
    text = filled(SEED_GLOBAL GUIDE_BLOCK "authSidecar:\n  allowedConnections: [self, \"a,b\"]\n");
    load_text(&r, text, NULL, NULL);
    assert_refused(&r, "authSidecar.allowedConnections");
    free(text);
    text = filled(SEED_GLOBAL GUIDE_BLOCK "authSidecar:\n  trustedProxies: [[10.0.0.0/8]]\n");
    load_text(&r, text, NULL, NULL);
    assert_refused(&r, "authSidecar.trustedProxies");
    free(text);
}

static void test_bad_values(void **state)
{
    static const struct {
        const char *env;
        const char *needle;
    } bad[] = {
        {"AUTH0_BASE_DOMAIN=https://t.auth0.com", "auth0.baseDomain (env AUTH0_BASE_DOMAIN"},
        {"AUTH0_BASE_DOMAIN=t.auth0.com/", "auth0.baseDomain"},
        {"AUTH0_BASE_DOMAIN=t.auth0.com:0", "auth0.baseDomain"},
        {"AUTH0_BASE_DOMAIN=t.auth0.com:65536", "auth0.baseDomain"},
        {"AUTH0_BASE_DOMAIN=T.Auth0.com", "auth0.baseDomain"},
        {"AUTH0_BASE_DOMAIN=t..auth0.com", "auth0.baseDomain"},
        {"AUTH0_BASE_DOMAIN=t.auth0.com:80x", "auth0.baseDomain"},
        {"GLOBAL_BASE_DOMAIN=https://astro.example.com", "global.baseDomain"},
        {"GLOBAL_BASE_DOMAIN=astro example.com", "global.baseDomain"},
        {"AUTH0_ENABLED=false", "auth0.enabled (env AUTH0_ENABLED, flag --auth0-enabled)"},
        {"AUTH0_ENABLED=maybe", "auth0.enabled"},
        {"AUTH_SIDECAR_LISTEN=garbage", "authSidecar.listen (env AUTH_SIDECAR_LISTEN"},
        {"AUTH_SIDECAR_LISTEN=0.0.0.0:99999", "authSidecar.listen"},
        {"AUTH_SIDECAR_LISTEN=::1:8872", "authSidecar.listen"},
        {"AUTH_SIDECAR_LISTEN=[::zz]:8872", "authSidecar.listen"},
        {"AUTH_SIDECAR_LISTEN=:8872", "authSidecar.listen"},
        {"AUTH_SIDECAR_HOUSTON_URL=ftp://127.0.0.1", "authSidecar.houstonUrl"},
        {"AUTH_SIDECAR_HOUSTON_URL=http://user:pw@127.0.0.1", "authSidecar.houstonUrl"},
        {"AUTH_SIDECAR_PUBLIC_URL=http://houston.example.com", "authSidecar.publicUrl"},
        {"AUTH_SIDECAR_PUBLIC_URL=https://houston.example.com/?x=1", "authSidecar.publicUrl"},
        {"AUTH_SIDECAR_APP_URL=http://app.example.com", "authSidecar.appUrl"},
        {"AUTH_SIDECAR_APP_URL=http://127.evil.com", "authSidecar.appUrl"},
        {"AUTH_SIDECAR_TENANT_CA_FILE=/nonexistent/ca.pem", "authSidecar.tenantCaFile"},
        {"AUTH_SIDECAR_TENANT_CA_FILE=/tmp", "authSidecar.tenantCaFile"},
        {"AUTH_SIDECAR_TLS_CERT_FILE=/nonexistent.pem", "authSidecar.tlsCertFile"},
        {"AUTH_SIDECAR_TOKEN_AUTH_METHOD=private_key_jwt", "authSidecar.tokenAuthMethod"},
        {"AUTH_SIDECAR_CLOCK_SKEW_SECONDS=301", "authSidecar.clockSkewSeconds"},
        {"AUTH_SIDECAR_CLOCK_SKEW_SECONDS=-1", "authSidecar.clockSkewSeconds"},
        {"AUTH_SIDECAR_TRANSACTION_TTL_SECONDS=29", "authSidecar.transactionTtlSeconds"},
        {"AUTH_SIDECAR_TRANSACTION_TTL_SECONDS=601", "authSidecar.transactionTtlSeconds"},
        {"AUTH_SIDECAR_CONNECT_TIMEOUT_MS=99", "authSidecar.connectTimeoutMs"},
        {"AUTH_SIDECAR_REQUEST_TIMEOUT_MS=60001", "authSidecar.requestTimeoutMs"},
        {"AUTH_SIDECAR_JWKS_REFRESH_SECONDS=59", "authSidecar.jwksRefreshSeconds"},
        {"AUTH_SIDECAR_JWKS_MIN_REFETCH_SECONDS=0", "authSidecar.jwksMinRefetchSeconds"},
        {"AUTH_SIDECAR_PEER_CONNECTIONS=0",
         "authSidecar.peerConnections (env AUTH_SIDECAR_PEER_CONNECTIONS, flag "
         "--peer-connections)"},
        {"AUTH_SIDECAR_PEER_CONNECTIONS=2x", "authSidecar.peerConnections"},
        {"AUTH_SIDECAR_MAX_CONNECTIONS=65537", "authSidecar.maxConnections"},
        {"AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=301", "authSidecar.authzAllowTtlSeconds"},
        {"AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=-1", "authSidecar.authzAllowTtlSeconds"},
        {"AUTH_SIDECAR_AUTHZ_DENY_TTL_SECONDS=61", "authSidecar.authzDenyTtlSeconds"},
        {"AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES=0", "authSidecar.authzCacheMaxEntries"},
        {"AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES=4194305", "authSidecar.authzCacheMaxEntries"},
        {"AUTH_SIDECAR_AUTHZ_CACHE_MAX_MEGABYTES=0", "authSidecar.authzCacheMaxMegabytes"},
        {"AUTH_SIDECAR_AUTHZ_CACHE_MAX_MEGABYTES=4097", "authSidecar.authzCacheMaxMegabytes"},
        {"AUTH_SIDECAR_LOG_LEVEL=trace", "authSidecar.logLevel"},
        {"AUTH0_CLIENT_ID=", "auth0.clientId"},
        {"AUTH0_CLIENT_ID=a b", "auth0.clientId"},
    };
    struct run r;
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        load_with(&r, bad[i].env);
        assert_refused(&r, bad[i].needle);
    }
    load_with(&r, "AUTH0_BASE_DOMAIN=https://t.auth0.com/");
    assert_non_null(strstr(r.err, "\"t.auth0.com\"")); /* the hint: the value without scheme */
    load_with(&r, "AUTH0_ENABLED=false");
    assert_non_null(strstr(r.err, "only serves Auth0 logins"));
}

static void test_good_values(void **state)
{
    struct run r;
    (void)state;

    load_with(&r, "AUTH_SIDECAR_LISTEN=[::1]:8872");
    assert_ok(&r);
    assert_string_equal(r.cfg->listen_host, "::1");
    assert_int_equal(r.cfg->listen_port, 8872);
    ha_config_free(r.cfg);
    load_with(&r, "AUTH0_BASE_DOMAIN=localhost:8443");
    assert_ok(&r);
    assert_string_equal(r.cfg->issuer, "https://localhost:8443/");
    ha_config_free(r.cfg);
    load_with(&r, "AUTH_SIDECAR_PUBLIC_URL=http://houston.astro.localhost:8872/");
    assert_ok(&r);
    assert_string_equal(r.cfg->public_url, "http://houston.astro.localhost:8872");
    ha_config_free(r.cfg);
    load_with(&r, "AUTH_SIDECAR_APP_URL=HTTPS://App.Example.COM:443/ui//");
    assert_ok(&r);
    assert_string_equal(r.cfg->app_url, "HTTPS://App.Example.COM:443/ui");
    assert_string_equal(r.cfg->app_origin, "https://app.example.com");
    ha_config_free(r.cfg);
    load_with(&r, "AUTH_SIDECAR_APP_URL=http://127.0.0.1:8873");
    assert_ok(&r);
    assert_string_equal(r.cfg->app_origin, "http://127.0.0.1:8873");
    ha_config_free(r.cfg);
    load_with(&r, "AUTH_SIDECAR_HOUSTON_URL=https://houston.internal:8871///");
    assert_ok(&r);
    assert_string_equal(r.cfg->houston_url, "https://houston.internal:8871");
    ha_config_free(r.cfg);
    load_with(&r, "AUTH_SIDECAR_TOKEN_AUTH_METHOD=client_secret_post");
    assert_ok(&r);
    assert_string_equal(r.cfg->token_auth_method, HA_AUTH_METHOD_POST);
    ha_config_free(r.cfg);
    load_with(&r, "AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=0");
    assert_ok(&r);
    assert_int_equal(r.cfg->authz_allow_ttl_s, 0);
    ha_config_free(r.cfg);
    load_with(&r, "AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES=4194304");
    assert_ok(&r);
    assert_int_equal(r.cfg->authz_max_entries, 4194304);
    ha_config_free(r.cfg);
}

static void test_tls_pair(void **state)
{
    struct run r;
    char cert[64], keyf[64], envc[96], envk[96];
    const char *both[10] = {envc, envk};
    size_t i;
    (void)state;

    tmp_file("cert", cert);
    tmp_file("key", keyf);
    snprintf(envc, sizeof(envc), "AUTH_SIDECAR_TLS_CERT_FILE=%s", cert);
    snprintf(envk, sizeof(envk), "AUTH_SIDECAR_TLS_KEY_FILE=%s", keyf);
    load_with(&r, envc);
    assert_refused(&r, "authSidecar.tlsKeyFile");
    load_with(&r, envk);
    assert_refused(&r, "authSidecar.tlsCertFile");
    for (i = 0; i < sizeof(base_env) / sizeof(base_env[0]); i++)
        both[2 + i] = base_env[i];
    load(&r, NULL, both);
    assert_ok(&r);
    assert_string_equal(r.cfg->tls_cert_file, cert);
    assert_string_equal(r.cfg->tls_key_file, keyf);
    ha_config_free(r.cfg);
    unlink(cert);
    unlink(keyf);
}

/* ---- flags ---- */

static void test_flags(void **state)
{
    static const char *const unknown[] = {"--bogus=1", NULL};
    static const char *const unknown2[] = {"--tenant", "t.auth0.com", "--client-secret", "x", NULL};
    static const char *const positional[] = {"config.yaml", NULL};
    static const char *const novalue[] = {"--audience", NULL};
    static const char *const devvalue[] = {"--dev=yes", NULL};
    static const char *const all[] = {"--base-domain=astro.example.com",
                                      "--auth0-enabled",
                                      "true",
                                      "--client-id=cid",
                                      "--tenant",
                                      "t.auth0.com",
                                      "--listen=127.0.0.1:9000",
                                      "--check-config",
                                      NULL};
    static const char *const help[] = {"--help", "--tenant=https://bad", NULL};
    static const char *const version[] = {"--version", NULL};
    const char *secrets[] = {ENV_CLIENT, ENV_COOKIE, NULL};
    struct run r;
    (void)state;

    load(&r, unknown, secrets);
    assert_refused(&r, "--bogus");
    load(&r, unknown2, secrets);
    assert_refused(&r, "--client-secret"); /* secrets have no flags: ps would show them */
    load(&r, positional, secrets);
    assert_refused(&r, "config.yaml");
    load(&r, novalue, secrets);
    assert_refused(&r, "--audience");
    load(&r, devvalue, secrets);
    assert_refused(&r, "--dev");
    load(&r, all, secrets);
    assert_ok(&r);
    assert_int_equal(r.action, HA_CONFIG_CHECK);
    assert_string_equal(r.cfg->client_id, "cid");
    assert_string_equal(r.cfg->listen_host, "127.0.0.1");
    assert_int_equal(r.cfg->listen_port, 9000);
    ha_config_free(r.cfg);
    load(&r, help, NULL);
    assert_int_equal(r.rc, HA_OK);
    assert_int_equal(r.action, HA_CONFIG_HELP);
    assert_null(r.cfg);
    load(&r, version, NULL);
    assert_int_equal(r.rc, HA_OK);
    assert_int_equal(r.action, HA_CONFIG_VERSION);
    assert_null(r.cfg);
}

/* ---- the sidecar's own section: unknown and removed keys ---- */

static char *guide_plus(const char *yaml)
{
    char *text = filled(SEED_GLOBAL GUIDE_BLOCK);
    text = realloc(text, strlen(text) + strlen(yaml) + 1);
    assert_non_null(text);
    memcpy(text + strlen(text), yaml, strlen(yaml) + 1);
    return text;
}

/* The configuration contract ignores unknown keys; in authSidecar, the sidecar's own section,
 * each is reported (a typo or a removed setting otherwise leaves its default without a word). */
static void test_unknown_sidecar_keys(void **state)
{
    const struct ha_config_ignored *ig;
    struct run r;
    char *text;
    (void)state;

    text = guide_plus("authSidecar:\n  requestTimeOutMs: 100\n  workers: 16\n  audience: a2\n"
                      "nginx:\n  replicas: 3\n  ingressClass: public\n");
    load_text(&r, text, NULL, NULL);
    assert_ok(&r);
    assert_string_equal(r.cfg->audience, "a2");
    assert_int_equal(r.cfg->request_timeout_ms, 5000); /* the misspelt key changed nothing */
    assert_int_equal(ha_config_ignored(r.cfg, &ig), 2);
    assert_string_equal(ig[0].key, "authSidecar.requestTimeOutMs");
    assert_non_null(strstr(ig[0].why, "misspelt"));
    /* authSidecar.workers went with the worker pool: named, with what replaced it. */
    assert_string_equal(ig[1].key, "authSidecar.workers");
    assert_non_null(strstr(ig[1].why, "peerConnections"));
    ha_config_free(r.cfg);
    free(text);

    text = guide_plus("");
    load_text(&r, text, "AUTH_SIDECAR_WORKERS=16", NULL);
    assert_ok(&r);
    assert_int_equal(ha_config_ignored(r.cfg, &ig), 1);
    assert_string_equal(ig[0].key, "AUTH_SIDECAR_WORKERS");
    ha_config_free(r.cfg);

    /* Known keys and other components' keys: nothing to report. */
    load_text(&r, text, "AUTH_SIDECAR_PEER_CONNECTIONS=8", NULL);
    assert_ok(&r);
    assert_int_equal(r.cfg->peer_connections, 8);
    assert_int_equal(ha_config_ignored(r.cfg, &ig), 0);
    ha_config_free(r.cfg);
    free(text);
}

/* ---- secrets ---- */

static void test_secret_in_yaml(void **state)
{
    static const struct {
        const char *yaml;
        const char *path;
        const char *env;
    } cases[] = {
        {"authSidecar:\n  clientSecret: hunter2-in-git\n", "authSidecar.clientSecret",
         "AUTH0_CLIENT_SECRET"},
        {"authSidecar:\n  cookieSecret: hunter2-in-git\n", "authSidecar.cookieSecret",
         "AUTH_SIDECAR_COOKIE_SECRET"},
        /* appended to the guide's block: a key of auth0 */
        {"          clientSecret: hunter2-in-git\n", "auth0.clientSecret", "AUTH0_CLIENT_SECRET"},
        {"authSidecar:\n  cookieSecretPrevious: hunter2-in-git\n",
         "authSidecar.cookieSecretPrevious", "AUTH_SIDECAR_COOKIE_SECRET_PREVIOUS"},
    };
    struct run r;
    char *text;
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        text = filled(SEED_GLOBAL GUIDE_BLOCK);
        text = realloc(text, strlen(text) + strlen(cases[i].yaml) + 1);
        assert_non_null(text);
        memcpy(text + strlen(text), cases[i].yaml, strlen(cases[i].yaml) + 1);
        load_text(&r, text, NULL, NULL);
        assert_refused(&r, cases[i].path);
        assert_non_null(strstr(r.err, cases[i].env));
        assert_null(strstr(r.err, "hunter2"));
        free(text);
    }
}

static void test_secret_files(void **state)
{
    struct run r;
    char sfile[64], cfile[64], es[96], ec[96];
    unsigned char key[32];
    const char *env[10] = {es, ec};
    size_t i;
    (void)state;

    for (i = 0; i < 4; i++)
        env[2 + i] = base_env[i];
    tmp_file("from-a-file\n", sfile);
    tmp_file(COOKIE_SECRET "\n", cfile);
    snprintf(es, sizeof(es), "AUTH0_CLIENT_SECRET_FILE=%s", sfile);
    snprintf(ec, sizeof(ec), "AUTH_SIDECAR_COOKIE_SECRET_FILE=%s", cfile);
    load(&r, NULL, env);
    assert_ok(&r);
    assert_string_equal(r.cfg->client_secret, "from-a-file"); /* one newline stripped */
    hkdf(COOKIE_SECRET, key);
    assert_memory_equal(r.cfg->cookie_key, key, 32); /* same key as from the variable */
    ha_config_free(r.cfg);

    write_file(sfile, "two\n\n", 5);
    load(&r, NULL, env);
    assert_ok(&r);
    assert_string_equal(r.cfg->client_secret, "two\n"); /* only one */
    ha_config_free(r.cfg);

    unlink(sfile);
    load(&r, NULL, env);
    assert_refused(&r, "AUTH0_CLIENT_SECRET_FILE");
    unlink(cfile);
}

static void test_secret_refusals(void **state)
{
    struct run r;
    const char *env[10];
    size_t i;
    (void)state;

    for (i = 0; i < 4; i++)
        env[2 + i] = base_env[i];
    env[6] = NULL;
    env[0] = ENV_CLIENT;
    env[1] = "AUTH0_CLIENT_SECRET_FILE=/etc/hostname";
    load(&r, NULL, env);
    assert_refused(&r, "AUTH0_CLIENT_SECRET (env AUTH0_CLIENT_SECRET or AUTH0_CLIENT_SECRET_FILE)");
    assert_non_null(strstr(r.err, "not both"));
    env[1] = "AUTH_SIDECAR_COOKIE_SECRET=0123456789abcdef0123456789abcde"; /* 31 bytes */
    load(&r, NULL, env);
    assert_refused(&r, "AUTH_SIDECAR_COOKIE_SECRET");
    assert_non_null(strstr(r.err, "32"));
    assert_null(strstr(r.err, "0123456789abcdef"));
    env[1] = "AUTH_SIDECAR_COOKIE_SECRET=0123456789abcdef0123456789abcdef"; /* 32 bytes */
    load(&r, NULL, env);
    assert_ok(&r);
    ha_config_free(r.cfg);
    env[0] = "AUTH0_CLIENT_SECRET=";
    load(&r, NULL, env);
    assert_refused(&r, "AUTH0_CLIENT_SECRET");
}

static void test_previous_cookie_secret(void **state)
{
    struct run r;
    unsigned char key[32], prev[32];
    (void)state;

    load_with(&r, "AUTH_SIDECAR_COOKIE_SECRET_PREVIOUS=previous-secret-0123456789abcdefghijkl");
    assert_ok(&r);
    assert_true(r.cfg->has_prev_cookie_key);
    hkdf("previous-secret-0123456789abcdefghijkl", prev);
    hkdf(COOKIE_SECRET, key);
    assert_memory_equal(r.cfg->prev_cookie_key, prev, 32);
    assert_memory_equal(r.cfg->cookie_key, key, 32);
    ha_config_free(r.cfg);
    load_with(&r, "AUTH_SIDECAR_COOKIE_SECRET_PREVIOUS=short");
    assert_refused(&r, "AUTH_SIDECAR_COOKIE_SECRET_PREVIOUS");
}

static void test_print_masks_secrets(void **state)
{
    static const char *const args[] = {"--audience", "flag-aud", NULL};
    const char *env[] = {
        "GLOBAL_BASE_DOMAIN=astro.example.com",
        "AUTH0_ENABLED=true",
        "AUTH0_CLIENT_ID=abc",
        "AUTH0_BASE_DOMAIN=t.auth0.com",
        ENV_CLIENT,
        ENV_COOKIE,
        "AUTH_SIDECAR_COOKIE_SECRET_PREVIOUS=previous-secret-0123456789abcdefghijkl",
        NULL};
    struct run r;
    char line[128], *out;
    (void)state;

    load(&r, args, env);
    assert_ok(&r);
    out = printed(r.cfg);
    assert_null(strstr(out, CLIENT_SECRET));
    assert_null(strstr(out, COOKIE_SECRET));
    assert_null(strstr(out, "previous-secret"));
    snprintf(line, sizeof(line), "AUTH0_CLIENT_SECRET = (set, %zu bytes)", strlen(CLIENT_SECRET));
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof(line), "AUTH_SIDECAR_COOKIE_SECRET = (set, %zu bytes)",
             strlen(COOKIE_SECRET));
    assert_non_null(strstr(out, line));
    assert_non_null(strstr(out, "authSidecar.audience = flag-aud  (flag --audience)\n"));
    assert_non_null(strstr(out, "auth0.clientId = abc  (env AUTH0_CLIENT_ID)\n"));
    assert_non_null(strstr(out, "authSidecar.publicUrl = https://houston.astro.example.com  "
                                "(default, from global.baseDomain)\n"));
    assert_non_null(strstr(out, "authSidecar.peerConnections = 64  (default)\n"));
    assert_non_null(strstr(out, "authSidecar.listen = 0.0.0.0:8872  (default)\n"));
    free(out);
    ha_config_free(r.cfg);
}

/* ---- --dev ---- */

static void make_dev_dir(char dir[64])
{
    static const char *const files[] = {"ca.pem", "tls.pem", "tls.key"};
    char path[128];
    size_t i;

    snprintf(dir, 64, "/tmp/ha_test_dev_XXXXXX");
    assert_non_null(mkdtemp(dir));
    for (i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        write_file(path, "pem", 3);
    }
}

static void remove_dev_dir(const char *dir)
{
    static const char *const files[] = {"ca.pem", "tls.pem", "tls.key"};
    char path[128];
    size_t i;

    for (i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_dev_defaults(void **state)
{
    static const char *const dev[] = {"--dev", NULL};
    char dir[64], envdir[96], path[128];
    const char *env[] = {envdir, NULL, NULL};
    unsigned char key[32];
    struct run r;
    (void)state;

    make_dev_dir(dir);
    snprintf(envdir, sizeof(envdir), "HOUSTON_AUTH_DEV_DIR=%s", dir);
    load(&r, dev, env);
    assert_ok(&r);
    assert_true(r.cfg->dev);
    assert_string_equal(r.cfg->base_domain, "astro.localhost");
    assert_string_equal(r.cfg->client_id, "houston-auth-dev");
    assert_string_equal(r.cfg->tenant, "localhost:8443");
    assert_string_equal(r.cfg->issuer, "https://localhost:8443/");
    assert_string_equal(r.cfg->listen_host, "127.0.0.1");
    assert_int_equal(r.cfg->listen_port, 8872);
    assert_string_equal(r.cfg->houston_url, "http://127.0.0.1:8871");
    assert_string_equal(r.cfg->public_url, "https://houston.astro.localhost:8872");
    assert_string_equal(r.cfg->app_url, "https://app.astro.localhost:8873");
    assert_string_equal(r.cfg->app_origin, "https://app.astro.localhost:8873");
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    assert_string_equal(r.cfg->tenant_ca_file, path);
    snprintf(path, sizeof(path), "%s/tls.pem", dir);
    assert_string_equal(r.cfg->tls_cert_file, path);
    snprintf(path, sizeof(path), "%s/tls.key", dir);
    assert_string_equal(r.cfg->tls_key_file, path);
    assert_string_equal(r.cfg->client_secret, "dev-client-secret-not-for-production");
    hkdf("dev-cookie-secret-not-for-production-0123456789", key);
    assert_memory_equal(r.cfg->cookie_key, key, 32);
    ha_config_free(r.cfg);

    /* Env still overrides a dev default, secrets included. */
    env[1] = ENV_CLIENT;
    load(&r, dev, env);
    assert_ok(&r);
    assert_string_equal(r.cfg->client_secret, CLIENT_SECRET);
    ha_config_free(r.cfg);

    remove_dev_dir(dir);
    load(&r, dev, env);
    assert_refused(&r, "authSidecar.tenantCaFile");
}

/* What a reload may change comes from the key table: each key marked as fixed at start is
 * named when it differs, every other key passes. */
static void test_restart_keys(void **state)
{
    static const struct {
        const char *env;
        const char *name; /* NULL: a reload may change it */
    } cases[] = {
        {"GLOBAL_BASE_DOMAIN=other.example.com", "global.baseDomain"},
        {"AUTH0_CLIENT_ID=another-client", "auth0.clientId"},
        {"AUTH0_BASE_DOMAIN=u.auth0.com", "auth0.baseDomain"},
        {"AUTH_SIDECAR_LISTEN=0.0.0.0:9999", "authSidecar.listen"},
        {"AUTH_SIDECAR_LISTEN=127.0.0.1:8872", "authSidecar.listen"},
        {"AUTH_SIDECAR_TENANT_PROXY=http://proxy.corp:3128", "authSidecar.tenantProxy"},
        {"AUTH_SIDECAR_CONNECT_TIMEOUT_MS=3000", "authSidecar.connectTimeoutMs"},
        {"AUTH_SIDECAR_REQUEST_TIMEOUT_MS=6000", "authSidecar.requestTimeoutMs"},
        {"AUTH_SIDECAR_JWKS_REFRESH_SECONDS=600", "authSidecar.jwksRefreshSeconds"},
        {"AUTH_SIDECAR_JWKS_MIN_REFETCH_SECONDS=60", "authSidecar.jwksMinRefetchSeconds"},
        {"AUTH_SIDECAR_PEER_CONNECTIONS=8", "authSidecar.peerConnections"},
        {"AUTH_SIDECAR_MAX_CONNECTIONS=100", "authSidecar.maxConnections"},
        {"AUTH_SIDECAR_AUTHZ_ALLOW_TTL_SECONDS=0", "authSidecar.authzAllowTtlSeconds"},
        {"AUTH_SIDECAR_AUTHZ_DENY_TTL_SECONDS=0", "authSidecar.authzDenyTtlSeconds"},
        {"AUTH_SIDECAR_AUTHZ_CACHE_MAX_ENTRIES=10", "authSidecar.authzCacheMaxEntries"},
        {"AUTH_SIDECAR_AUTHZ_CACHE_MAX_MEGABYTES=1", "authSidecar.authzCacheMaxMegabytes"},
        {"AUTH_SIDECAR_AUDIENCE=other-api", NULL},
        {"AUTH_SIDECAR_LOG_LEVEL=debug", NULL},
        {"AUTH_SIDECAR_HOUSTON_URL=http://127.0.0.1:9871", NULL},
        {"AUTH_SIDECAR_APP_URL=https://ui.astro.example.com", NULL},
        {"AUTH_SIDECAR_CLOCK_SKEW_SECONDS=30", NULL},
        {"AUTH_SIDECAR_ALLOWED_CONNECTIONS=self", NULL},
        {"AUTH_SIDECAR_TRUSTED_PROXIES=10.0.0.0/8", NULL},
        {"AUTH_SIDECAR_TOKEN_EXCHANGES_PER_SECOND=5", NULL},
        {"AUTH_SIDECAR_COOKIE_SECRET=another-cookie-secret-0123456789abcdef0123", NULL},
    };
    struct run base, r;
    char ca[64], env_ca[96];
    size_t i;
    (void)state;

    load_with(&base, "AUTH_SIDECAR_LOG_LEVEL=info");
    assert_ok(&base);
    assert_null(ha_config_restart_key(base.cfg, base.cfg));
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got;
        load_with(&r, cases[i].env);
        assert_ok(&r);
        got = ha_config_restart_key(base.cfg, r.cfg);
        if (cases[i].name == NULL && got != NULL)
            fail_msg("%s: a reload refused for %s", cases[i].env, got);
        if (cases[i].name != NULL && (got == NULL || strcmp(got, cases[i].name) != 0))
            fail_msg("%s: expected %s, got %s", cases[i].env, cases[i].name, got ? got : "NULL");
        ha_config_free(r.cfg);
    }
    tmp_file("ca", ca);
    snprintf(env_ca, sizeof(env_ca), "AUTH_SIDECAR_TENANT_CA_FILE=%s", ca);
    load_with(&r, env_ca);
    assert_ok(&r);
    assert_string_equal(ha_config_restart_key(base.cfg, r.cfg), "authSidecar.tenantCaFile");
    assert_string_equal(ha_config_restart_key(r.cfg, base.cfg), "authSidecar.tenantCaFile");
    ha_config_free(r.cfg);
    unlink(ca);
    ha_config_free(base.cfg);
}

/* ---- YAML shapes ---- */

static void test_unknown_yaml_keys_ignored(void **state)
{
    struct run r;
    char *text = filled("nginx:\n  replicas: 2\n  list: [1, 2, {a: b}]\n" SEED_GLOBAL
                        "  acme: true\n" GUIDE_BLOCK "          domain: other\n"
                        "authSidecar:\n  futureKey: {nested: [1]}\n  audience: aud2\n"
                        "tags: &t [x]\nmore: *t\n");
    (void)state;

    load_text(&r, text, NULL, NULL);
    assert_ok(&r);
    assert_string_equal(r.cfg->audience, "aud2");
    {
        const struct ha_config_ignored *ig;
        assert_int_equal(ha_config_ignored(r.cfg, &ig), 1); /* authSidecar.futureKey only */
        assert_string_equal(ig[0].key, "authSidecar.futureKey");
    }
    ha_config_free(r.cfg);
    free(text);
}

static void test_yaml_shapes_refused(void **state)
{
    static const struct {
        const char *yaml;
        const char *needle;
    } cases[] = {
        {"- a\n- b\n", "top level must be a mapping"},
        {"just a string\n", "top level must be a mapping"},
        {"authSidecar: 5\n", "authSidecar.listen (env AUTH_SIDECAR_LISTEN, flag --listen): "
                             "authSidecar is not a mapping"},
        {"authSidecar:\n  listen: {host: x}\n", "authSidecar.listen"},
        {"authSidecar:\n  peerConnections: [1, 2]\n", "authSidecar.peerConnections"},
        {"authSidecar:\n  audience: a\n  audience: b\n", "authSidecar.audience"},
        {"global: {baseDomain: [unclosed\n", "not valid YAML"},
        {"authSidecar:\n\tlisten: x\n", "not valid YAML"},
        {"global: {}\n---\nglobal: {}\n", "more than one YAML document"},
        {"authSidecar:\n  audience: \"a\\0b\"\n", "authSidecar.audience"},
    };
    struct run r;
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        load_text(&r, cases[i].yaml, "GLOBAL_BASE_DOMAIN=astro.example.com", NULL);
        assert_refused(&r, cases[i].needle);
    }
    /* A value echoed in the reason cannot break the one-line error. */
    load_with(&r, "AUTH_SIDECAR_TOKEN_AUTH_METHOD=x\r\nlevel=info fake log line");
    assert_refused(&r, "authSidecar.tokenAuthMethod");
    assert_null(strchr(r.err, '\n'));
    assert_null(strchr(r.err, '\r'));
}

/* Nine levels of ten aliases each: 10^9 strings if anything expanded them. Deep nesting,
 * which libyaml scans in quadratic time, is refused early. */
static void test_billion_laughs(void **state)
{
    struct run r;
    char *text, *bomb;
    uint64_t start;
    (void)state;

    bomb = "lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
           "lol1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n"
           "lol2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]\n"
           "lol3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]\n"
           "lol4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\n"
           "lol5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\n"
           "lol6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]\n"
           "lol7: &a7 [*a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6]\n"
           "lol8: &a8 [*a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7]\n"
           "lol9: &a9 [*a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8]\n"
           "self: &s [*s]\n";
    start = ha_mono_ns();
    text = malloc(strlen(bomb) + 1024);
    assert_non_null(text);
    snprintf(text, strlen(bomb) + 1024, "%s%s", bomb, "authSidecar:\n  audience: *a9\n");
    load_text(&r, text, NULL, NULL);
    assert_refused(&r, "authSidecar.audience"); /* a list where one value belongs */
    free(text);

    text = malloc(200001);
    assert_non_null(text);
    memset(text, '[', 100000);
    memset(text + 100000, ']', 100000);
    text[200000] = '\0';
    load_text(&r, text, NULL, NULL);
    assert_refused(&r, "nested deeper");
    free(text);

    text = replace_all(bomb, "self: &s [*s]\n", "");
    load_text(&r, text, "GLOBAL_BASE_DOMAIN=astro.example.com", NULL);
    /* Unused aliases are fine; the rest of the config is still read (and found missing). */
    assert_refused(&r, "auth0.clientId");
    free(text);
    assert_true(ha_mono_ns() - start < 2000000000ull);
}

static void test_file_caps(void **state)
{
    struct run r;
    char path[64];
    const char *args[] = {"--config", path, NULL};
    const char *env[] = {ENV_CLIENT, ENV_COOKIE, NULL};
    size_t big = 1024 * 1024 + 1;
    char *text = malloc(big + 1);
    (void)state;

    assert_non_null(text);
    memset(text, '#', big);
    text[big] = '\0';
    tmp_file(text, path);
    load(&r, args, env);
    assert_refused(&r, "1 MiB");
    unlink(path);
    load(&r, args, env);
    assert_refused(&r, path); /* the file is gone: the message names it */

    /* Over the per-value cap. */
    memset(text, 'a', 5000);
    memcpy(text, "authSidecar:\n  audience: ", 25);
    text[5000] = '\0';
    load_text(&r, text, NULL, NULL);
    assert_refused(&r, "authSidecar.audience");
    free(text);
}

static void test_help_lists_every_key(void **state)
{
    static const char *const expect[] = {"global.baseDomain",
                                         "GLOBAL_BASE_DOMAIN",
                                         "--base-domain",
                                         "astronomer.houston.config.auth.auth0.enabled",
                                         "AUTH0_ENABLED",
                                         "--auth0-enabled",
                                         "astronomer.houston.config.auth.auth0.clientId",
                                         "AUTH0_CLIENT_ID",
                                         "--client-id",
                                         "astronomer.houston.config.auth.auth0.baseDomain",
                                         "AUTH0_BASE_DOMAIN",
                                         "--tenant",
                                         "authSidecar.listen",
                                         "AUTH_SIDECAR_LISTEN",
                                         "--listen",
                                         "0.0.0.0:8872",
                                         "authSidecar.houstonUrl",
                                         "AUTH_SIDECAR_HOUSTON_URL",
                                         "--houston-url",
                                         "http://127.0.0.1:8871",
                                         "authSidecar.audience",
                                         "AUTH_SIDECAR_AUDIENCE",
                                         "--audience",
                                         "astronomer-ee",
                                         "authSidecar.publicUrl",
                                         "--public-url",
                                         "https://houston.<global.baseDomain>",
                                         "authSidecar.appUrl",
                                         "--app-url",
                                         "https://app.<global.baseDomain>",
                                         "authSidecar.tenantCaFile",
                                         "--tenant-ca-file",
                                         "authSidecar.tlsCertFile",
                                         "--tls-cert-file",
                                         "authSidecar.tlsKeyFile",
                                         "--tls-key-file",
                                         "authSidecar.tokenAuthMethod",
                                         "--token-auth-method",
                                         "client_secret_basic",
                                         "AUTH_SIDECAR_CLOCK_SKEW_SECONDS",
                                         "--clock-skew",
                                         "AUTH_SIDECAR_TRANSACTION_TTL_SECONDS",
                                         "--transaction-ttl",
                                         "AUTH_SIDECAR_CONNECT_TIMEOUT_MS",
                                         "--connect-timeout-ms",
                                         "AUTH_SIDECAR_REQUEST_TIMEOUT_MS",
                                         "--request-timeout-ms",
                                         "AUTH_SIDECAR_JWKS_REFRESH_SECONDS",
                                         "--jwks-refresh-seconds",
                                         "AUTH_SIDECAR_JWKS_MIN_REFETCH_SECONDS",
                                         "--jwks-min-refetch-seconds",
                                         "AUTH_SIDECAR_PEER_CONNECTIONS",
                                         "--peer-connections",
                                         "AUTH_SIDECAR_MAX_CONNECTIONS",
                                         "--max-connections",
                                         "AUTH_SIDECAR_LOG_LEVEL",
                                         "--log-level",
                                         "AUTH0_CLIENT_SECRET[_FILE]",
                                         "AUTH_SIDECAR_COOKIE_SECRET[_FILE]",
                                         "AUTH_SIDECAR_COOKIE_SECRET_PREVIOUS[_FILE]",
                                         "--config",
                                         "HOUSTON_AUTH_CONFIG",
                                         "--dev",
                                         "--check-config",
                                         "--version"};
    char *buf = NULL;
    size_t len = 0, i;
    FILE *f = open_memstream(&buf, &len);
    (void)state;

    assert_non_null(f);
    ha_config_print_help(f);
    fclose(f);
    for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        if (strstr(buf, expect[i]) == NULL)
            fail_msg("--help does not mention %s", expect[i]);
    }
    free(buf);
    ha_config_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_file),
        cmocka_unit_test(test_seed_with_sidecar_section),
        cmocka_unit_test(test_guide_placeholders_refused),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_config_path_from_env),
        cmocka_unit_test(test_nothing_configured),
        cmocka_unit_test(test_each_required_key),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_platform_keys),
        cmocka_unit_test(test_good_values),
        cmocka_unit_test(test_tls_pair),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_unknown_sidecar_keys),
        cmocka_unit_test(test_secret_in_yaml),
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_secret_refusals),
        cmocka_unit_test(test_previous_cookie_secret),
        cmocka_unit_test(test_print_masks_secrets),
        cmocka_unit_test(test_dev_defaults),
        cmocka_unit_test(test_restart_keys),
        cmocka_unit_test(test_unknown_yaml_keys_ignored),
        cmocka_unit_test(test_yaml_shapes_refused),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_file_caps),
        cmocka_unit_test(test_help_lists_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
