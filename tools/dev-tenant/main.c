/* dev-tenant: arguments, environment, signals and wiring; nothing else.
 *
 * Every option can come from a flag or a DEV_TENANT_* environment variable (flags win; a list
 * flag given once replaces the environment's list). Values are checked before anything is
 * created, and only loopback addresses may be bound. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "houston_auth/buf.h"
#include "houston_auth/log.h"
#include "houston_auth/url.h"
#include "houston_auth/util.h"
#include "tenant.h"

#define DEFAULT_LISTEN "127.0.0.1:8443"
#define DEFAULT_STATE_DIR ".dev"
#define DEFAULT_CLIENT_ID "houston-auth-dev"
#define DEFAULT_SECRET "dev-client-secret-not-for-production"
#define DEFAULT_AUDIENCE "astronomer-ee"
#define DEFAULT_CALLBACK "https://houston.astro.localhost:8872/v1/oauth/redirect"
#define DEFAULT_LOGOUT "https://app.astro.localhost:8873/logout"
#define MAX_URL_ARG 2048
#define MAX_VALUE 256

enum opt_id {
    O_LISTEN = 'l',
    O_STATE = 's',
    O_ISSUER = 'i',
    O_CLIENT = 'c',
    O_SECRET = 'k',
    O_CALLBACK = 'b',
    O_LOGOUT = 'o',
    O_AUDIENCE = 'a',
    O_SAN = 'n',
    O_TEST = 't',
    O_NO_AUTO = 'N',
    O_LOG = 'L',
    O_HELP = 'h'
};

static const struct option options[] = {
    {"listen", required_argument, NULL, O_LISTEN},
    {"state-dir", required_argument, NULL, O_STATE},
    {"issuer-host", required_argument, NULL, O_ISSUER},
    {"client-id", required_argument, NULL, O_CLIENT},
    {"client-secret", required_argument, NULL, O_SECRET},
    {"callback", required_argument, NULL, O_CALLBACK},
    {"logout-url", required_argument, NULL, O_LOGOUT},
    {"audience", required_argument, NULL, O_AUDIENCE},
    {"san", required_argument, NULL, O_SAN},
    {"test-controls", no_argument, NULL, O_TEST},
    {"no-auto-approve", no_argument, NULL, O_NO_AUTO},
    {"log-level", required_argument, NULL, O_LOG},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

void tenant_usage(FILE *f)
{
    fputs(
        "Usage: dev-tenant [OPTION]...\n"
        "An Auth0-shaped OpenID Connect provider over HTTPS, for development and tests.\n"
        "Never expose it: it approves any login and listens on loopback only.\n\n"
        "  --listen HOST:PORT     loopback address to serve on (default " DEFAULT_LISTEN ";\n"
        "                         port 0 picks a free port)          DEV_TENANT_LISTEN\n"
        "  --state-dir DIR        keys and certificates, created 0700 (default\n"
        "                         $HOUSTON_AUTH_DEV_DIR or " DEFAULT_STATE_DIR ")        "
        "DEV_TENANT_STATE_DIR\n"
        "  --issuer-host H[:P]    issuer is https://H[:P]/ (default localhost:<port>)\n"
        "                                                            DEV_TENANT_ISSUER_HOST\n"
        "  --client-id ID         the one client (default " DEFAULT_CLIENT_ID ")\n"
        "                                                            DEV_TENANT_CLIENT_ID\n"
        "  --client-secret S      its secret (default " DEFAULT_SECRET ")\n"
        "                                                            DEV_TENANT_CLIENT_SECRET\n"
        "  --callback URL         an allowed redirect_uri, exact match; repeatable (default\n"
        "                         " DEFAULT_CALLBACK ")\n"
        "                                         DEV_TENANT_CALLBACKS (comma-separated)\n"
        "  --logout-url URL       an allowed /v2/logout returnTo, exact match; repeatable\n"
        "                         (default " DEFAULT_LOGOUT ")\n"
        "                                         DEV_TENANT_LOGOUT_URLS (comma-separated)\n"
        "  --audience NAME        the API audience (default " DEFAULT_AUDIENCE ")\n"
        "                                                            DEV_TENANT_AUDIENCE\n"
        "  --san NAME             extra DNS name or IP for the TLS certificate; repeatable\n"
        "                         (localhost, 127.0.0.1 and ::1 are always included)\n"
        "                                         DEV_TENANT_SANS (comma-separated)\n"
        "  --test-controls        serve /__test/... fault switches   DEV_TENANT_TEST_CONTROLS=1\n"
        "  --no-auto-approve      always show the login page, even with login_hint\n"
        "                                                            DEV_TENANT_AUTO_APPROVE=0\n"
        "  --log-level LEVEL      debug, info, warn or error (default info) DEV_TENANT_LOG_LEVEL\n"
        "  --help                 this text\n\n"
        "Prints \"dev-tenant: ready https://<issuer-host>/ (state in DIR)\" when serving;\n"
        "SIGTERM or SIGINT stops it. See tools/dev-tenant/README.md.\n",
        f);
}

static bool set_str(char **slot, const char *v)
{
    char *copy = strdup(v);
    if (copy == NULL)
        return false;
    ha_free_secret(*slot);
    *slot = copy;
    return true;
}

static bool add_item(char **list, size_t *n, const char *v, size_t len)
{
    if (*n >= TENANT_MAX_LIST || len == 0)
        return false;
    list[*n] = strndup(v, len);
    if (list[*n] == NULL)
        return false;
    (*n)++;
    return true;
}

static void clear_list(char **list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free(list[i]);
    *n = 0;
}

static bool env_list(const char *name, char **list, size_t *n)
{
    const char *v = getenv(name);
    bool ok = true;
    if (v == NULL || v[0] == '\0')
        return true;
    clear_list(list, n);
    while (ok && *v != '\0') {
        size_t len = strcspn(v, ",");
        ok = add_item(list, n, v, len);
        v += len;
        v += *v == ',' ? 1 : 0;
    }
    return ok;
}

static bool env_flag(const char *name, bool def)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return def;
    return strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0;
}

static bool defaults_and_env(struct tenant_config *c, char **listen)
{
    const char *dir = getenv("HOUSTON_AUTH_DEV_DIR");
    const char *v;
    bool ok = set_str(listen, DEFAULT_LISTEN) &&
              set_str(&c->state_dir, dir != NULL && dir[0] != '\0' ? dir : DEFAULT_STATE_DIR) &&
              set_str(&c->client_id, DEFAULT_CLIENT_ID) &&
              set_str(&c->client_secret, DEFAULT_SECRET) &&
              set_str(&c->audience, DEFAULT_AUDIENCE) &&
              add_item(c->callbacks, &c->ncallbacks, DEFAULT_CALLBACK, strlen(DEFAULT_CALLBACK)) &&
              add_item(c->logout_urls, &c->nlogout, DEFAULT_LOGOUT, strlen(DEFAULT_LOGOUT));
    static const struct {
        const char *env;
        size_t field;
    } strs[] = {
        {"DEV_TENANT_STATE_DIR", offsetof(struct tenant_config, state_dir)},
        {"DEV_TENANT_ISSUER_HOST", offsetof(struct tenant_config, issuer_host)},
        {"DEV_TENANT_CLIENT_ID", offsetof(struct tenant_config, client_id)},
        {"DEV_TENANT_CLIENT_SECRET", offsetof(struct tenant_config, client_secret)},
        {"DEV_TENANT_AUDIENCE", offsetof(struct tenant_config, audience)},
    };
    for (size_t i = 0; ok && i < sizeof(strs) / sizeof(strs[0]); i++) {
        v = getenv(strs[i].env);
        if (v != NULL && v[0] != '\0')
            ok = set_str((char **)((char *)c + strs[i].field), v);
    }
    v = getenv("DEV_TENANT_LISTEN");
    if (ok && v != NULL && v[0] != '\0')
        ok = set_str(listen, v);
    ok = ok && env_list("DEV_TENANT_CALLBACKS", c->callbacks, &c->ncallbacks) &&
         env_list("DEV_TENANT_LOGOUT_URLS", c->logout_urls, &c->nlogout) &&
         env_list("DEV_TENANT_SANS", c->sans, &c->nsans);
    c->test_controls = env_flag("DEV_TENANT_TEST_CONTROLS", false);
    c->auto_approve = env_flag("DEV_TENANT_AUTO_APPROVE", true);
    return ok;
}

/* A flag-given list replaces the environment's on its first use. */
static bool flag_list(char **list, size_t *n, bool *seen, const char *v)
{
    if (!*seen)
        clear_list(list, n);
    *seen = true;
    return add_item(list, n, v, strlen(v));
}

static bool apply_flag(struct tenant_config *c, int id, const char *v, char **listen, bool seen[3])
{
    enum ha_log_level level;
    switch (id) {
    case O_LISTEN:
        return set_str(listen, v);
    case O_STATE:
        return set_str(&c->state_dir, v);
    case O_ISSUER:
        return set_str(&c->issuer_host, v);
    case O_CLIENT:
        return set_str(&c->client_id, v);
    case O_SECRET:
        return set_str(&c->client_secret, v);
    case O_AUDIENCE:
        return set_str(&c->audience, v);
    case O_CALLBACK:
        return flag_list(c->callbacks, &c->ncallbacks, &seen[0], v);
    case O_LOGOUT:
        return flag_list(c->logout_urls, &c->nlogout, &seen[1], v);
    case O_SAN:
        return flag_list(c->sans, &c->nsans, &seen[2], v);
    case O_TEST:
        c->test_controls = true;
        return true;
    case O_NO_AUTO:
        c->auto_approve = false;
        return true;
    case O_LOG:
        if (ha_log_parse_level(v, &level) != HA_OK)
            return false;
        ha_log_set_level(level);
        return true;
    default:
        return false;
    }
}

static bool chars_ok(const char *s, size_t max, const char *allowed)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (allowed != NULL ? !alnum && strchr(allowed, ch) == NULL : ch <= 0x20 || ch >= 0x7f)
            return false;
    }
    return true;
}

/* An absolute http(s) URL by the sidecar's grammar (url.c), printable, no fragment. */
static bool url_ok(const char *u)
{
    struct ha_url parsed;
    return chars_ok(u, MAX_URL_ARG, NULL) && strchr(u, '#') == NULL &&
           ha_url_parse(u, &parsed, NULL) == HA_OK;
}

/* A DNS name or an IP address, for the certificate's subjectAltName. */
static bool san_ok(const char *s)
{
    unsigned char addr[16];
    size_t n = strlen(s);
    return (n <= 253 && ha_url_check_hostname(s, n, 0, NULL) == HA_OK) ||
           inet_pton(AF_INET6, s, addr) == 1;
}

/* NULL when c is usable, else the name of the bad option. */
static const char *check_config(const struct tenant_config *c)
{
    struct ha_hostport hp;

    if (!chars_ok(c->state_dir, 1024, NULL))
        return "--state-dir";
    if (c->issuer_host != NULL && (strlen(c->issuer_host) > 255 ||
                                   ha_url_parse_hostport(c->issuer_host, strlen(c->issuer_host),
                                                         HA_URL_LOWER, &hp, NULL) != HA_OK))
        return "--issuer-host (host[:port], no scheme or path)";
    if (!chars_ok(c->client_id, 128, "._-"))
        return "--client-id (letters, digits, '.', '_', '-')";
    if (!chars_ok(c->client_secret, MAX_VALUE, NULL))
        return "--client-secret (printable, no spaces)";
    if (!chars_ok(c->audience, MAX_VALUE, NULL))
        return "--audience";
    for (size_t i = 0; i < c->ncallbacks; i++) {
        if (!url_ok(c->callbacks[i]))
            return "--callback (an absolute http(s) URL without a fragment)";
    }
    for (size_t i = 0; i < c->nlogout; i++) {
        if (!url_ok(c->logout_urls[i]))
            return "--logout-url (an absolute http(s) URL without a fragment)";
    }
    for (size_t i = 0; i < c->nsans; i++) {
        if (!san_ok(c->sans[i]))
            return "--san (a DNS name or an IP address)";
    }
    return NULL;
}

static void config_cleanup(struct tenant_config *c)
{
    free(c->listen_host);
    free(c->state_dir);
    free(c->issuer_host);
    free(c->client_id);
    ha_free_secret(c->client_secret);
    free(c->audience);
    clear_list(c->callbacks, &c->ncallbacks);
    clear_list(c->logout_urls, &c->nlogout);
    clear_list(c->sans, &c->nsans);
}

static const char *flag_name(int id)
{
    static char name[40];
    for (size_t i = 0; options[i].name != NULL; i++) {
        if (options[i].val == id) {
            snprintf(name, sizeof(name), "--%s", options[i].name);
            return name;
        }
    }
    return "the command line";
}

/* 0 to run, else the exit status (after --help or an error). */
static int load_config(struct tenant_config *c, int argc, char **argv)
{
    char *listen = NULL;
    bool seen[3] = {false, false, false};
    const char *bad = NULL;
    int id;

    if (!defaults_and_env(c, &listen))
        bad = "the environment (a list longer than 16, or out of memory)";
    while (bad == NULL && (id = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (id == O_HELP) {
            tenant_usage(stdout);
            free(listen);
            return -1;
        }
        if (id == '?' || !apply_flag(c, id, optarg, &listen, seen))
            bad = flag_name(id);
    }
    if (bad == NULL && optind < argc)
        bad = "the command line (unexpected argument)";
    if (bad == NULL && peer_parse_listen(listen, &c->listen_host, &c->listen_port) != HA_OK)
        bad = "--listen (HOST:PORT on a loopback address)";
    if (bad == NULL)
        bad = check_config(c);
    free(listen);
    if (bad != NULL) {
        fprintf(stderr, "dev-tenant: bad value in %s; see dev-tenant --help\n", bad);
        return 2;
    }
    return 0;
}

static enum ha_err settle_issuer(struct tenant *t, int port)
{
    struct ha_buf b;
    enum ha_err err = HA_OK;
    ha_buf_init(&b, 1024);
    if (t->cfg.issuer_host == NULL) {
        err = ha_buf_appendf(&b, "localhost:%d", port);
        if (err == HA_OK)
            err = ha_buf_steal(&b, &t->cfg.issuer_host);
    }
    if (err == HA_OK)
        err = ha_buf_appendf(&b, "https://%s/", t->cfg.issuer_host);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &t->issuer);
    ha_buf_cleanup(&b);
    return err;
}

static enum ha_err start(struct tenant *t, struct peer_server **srv)
{
    struct peer_server_config sc;
    char *cert = NULL, *key = NULL;
    int fd = -1, port = 0;
    enum ha_err err = peer_bind(t->cfg.listen_host, t->cfg.listen_port, &fd, &port);

    if (err != HA_OK) {
        fprintf(stderr, "dev-tenant: cannot listen on %s:%d: %s\n", t->cfg.listen_host,
                t->cfg.listen_port, strerror(errno));
        return err;
    }
    err = settle_issuer(t, port);
    if (err == HA_OK)
        err = tenant_pki_init(t, &cert, &key);
    if (err == HA_OK) {
        memset(&sc, 0, sizeof(sc));
        sc.fd = fd;
        fd = -1;
        sc.cert_pem = cert;
        sc.key_pem = key;
        sc.handler = tenant_handle;
        sc.ctx = t;
        err = peer_server_start(&sc, srv);
    }
    if (fd >= 0)
        close(fd);
    free(cert);
    ha_free_secret(key);
    return err;
}

static void tenant_cleanup(struct tenant *t)
{
    struct tenant_code empty;
    memset(&empty, 0, sizeof(empty));
    for (size_t i = 0; i < t->nkeys; i++)
        tenant_key_cleanup(&t->keys[i]);
    for (size_t i = 0; i < TENANT_MAX_CODES; i++) {
        struct tenant_code *c = &t->codes[i];
        free(c->client_id);
        free(c->redirect_uri);
        free(c->challenge);
        free(c->nonce);
        free(c->email);
        free(c->audience);
        free(c->scope);
        *c = empty;
    }
    for (size_t i = 0; i < t->nusers; i++)
        free(t->users[i].email);
    EVP_PKEY_free(t->other_key);
    EVP_PKEY_free(t->ec_key);
    json_decref(t->faults);
    json_decref(t->last_authorize);
    free(t->issuer);
    pthread_mutex_destroy(&t->lock);
    config_cleanup(&t->cfg);
}

static int serve(struct tenant *t)
{
    struct peer_server *srv = NULL;
    sigset_t set;
    int sig = 0;
    enum ha_err err = start(t, &srv);

    if (err != HA_OK) {
        ha_log(HA_LOG_ERROR, "start_failed", NULL, "reason", ha_err_str(err), NULL);
        fprintf(stderr, "dev-tenant: could not start (%s); see the log above\n", ha_err_str(err));
        return 1;
    }
    printf("dev-tenant: ready %s (state in %s)\n", t->issuer, t->cfg.state_dir);
    fflush(stdout);
    ha_log(HA_LOG_INFO, "ready", NULL, "issuer", t->issuer, "kid", t->keys[0].kid, "test_controls",
           t->cfg.test_controls ? "on" : "off", NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigwait(&set, &sig);
    atomic_store(&t->stopping, true);
    peer_server_stop(srv);
    ha_log(HA_LOG_INFO, "stopped", NULL, "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    return 0;
}

int main(int argc, char **argv)
{
    static struct tenant t; /* large (the code table); static storage, zeroed */
    sigset_t set;
    int rc;

    /* Block the stop signals before any thread exists, so only sigwait() sees them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    (void)signal(SIGPIPE, SIG_IGN); /* cannot fail for a valid signal number */
    pthread_mutex_init(&t.lock, NULL);
    atomic_init(&t.stopping, false);
    t.faults = json_object();
    rc = t.faults != NULL ? load_config(&t.cfg, argc, argv) : 1;
    if (rc == 0)
        rc = serve(&t);
    tenant_cleanup(&t);
    return rc < 0 ? 0 : rc;
}
