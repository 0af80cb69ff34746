/* houston-standin: arguments, signals and wiring; nothing else.
 *
 * Serves Houston's contract over plain HTTP on --listen (Houston sits beside the sidecar in
 * the pod and speaks HTTP), and with --app-listen the app's pages over HTTPS with the given
 * certificate (the dev tenant's tls.pem/tls.key carry every name needed). Loopback only. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "houston_auth/buf.h"
#include "houston_auth/log.h"
#include "houston_auth/url.h"
#include "houston_auth/util.h"
#include "standin.h"

#define DEFAULT_LISTEN "127.0.0.1:8871"
#define DEFAULT_BASE "astro.localhost"
#define MAX_PEM (64 * 1024)
#define MAX_URL_ARG 1024

enum opt_id {
    O_LISTEN = 'l',
    O_BASE = 'b',
    O_APP_URL = 'u',
    O_APP_LISTEN = 'a',
    O_CERT = 'c',
    O_KEY = 'k',
    O_COOKIE = 'n',
    O_SIDECAR = 's',
    O_TEST = 't',
    O_LOG = 'L',
    O_AUTH0 = 'd',
    O_CLIENT = 'i',
    O_CA = 'C',
    O_LATENCY = 'D',
    O_POOL = 'N',
    O_STATE = 'S',
    O_HELP = 'h'
};

static const struct option options[] = {
    {"listen", required_argument, NULL, O_LISTEN},
    {"base-domain", required_argument, NULL, O_BASE},
    {"app-url", required_argument, NULL, O_APP_URL},
    {"app-listen", required_argument, NULL, O_APP_LISTEN},
    {"tls-cert", required_argument, NULL, O_CERT},
    {"tls-key", required_argument, NULL, O_KEY},
    {"cookie-name", required_argument, NULL, O_COOKIE},
    {"sidecar-url", required_argument, NULL, O_SIDECAR},
    {"test-controls", no_argument, NULL, O_TEST},
    {"log-level", required_argument, NULL, O_LOG},
    {"auth0-base-domain", required_argument, NULL, O_AUTH0},
    {"client-id", required_argument, NULL, O_CLIENT},
    {"tenant-ca", required_argument, NULL, O_CA},
    {"authz-latency-ms", required_argument, NULL, O_LATENCY},
    {"authz-pool", required_argument, NULL, O_POOL},
    {"state-dir", required_argument, NULL, O_STATE},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
    fputs("Usage: houston-standin [OPTION]...\n"
          "A stand-in for Astronomer's Houston: its OAuth callback contract and the app's\n"
          "pages, for development and tests. Loopback only.\n\n"
          "  --listen HOST:PORT      Houston's HTTP address (default " DEFAULT_LISTEN ";\n"
          "                          port 0 picks a free port)\n"
          "  --base-domain D         the platform's base domain (default " DEFAULT_BASE ")\n"
          "  --app-url URL           where Houston sends the browser (default\n"
          "                          https://app.<base>:8873)\n"
          "  --app-listen HOST:PORT  also serve the app's pages over HTTPS here\n"
          "  --tls-cert FILE         PEM certificate for --app-listen (the dev tenant's tls.pem)\n"
          "  --tls-key FILE          PEM key for --app-listen (the dev tenant's tls.key)\n"
          "  --cookie-name NAME      the auth cookie (default astronomer_<snake_case(base)>_auth)\n"
          "  --sidecar-url URL       the sidecar the app's pages link to (default\n"
          "                          https://houston.<base>:8872)\n"
          "  --test-controls         serve /__test/received, /__test/reset, /__test/fault,\n"
          "                          /__test/permissions, /__test/session, /__test/keys,\n"
          "                          /__test/authz\n"
          "  --auth0-base-domain H   Houston's auth.auth0.baseDomain (host[:port]): check ID\n"
          "                          tokens as Houston 0.9 does (alg RS256, kid in\n"
          "                          https://H/.well-known/jwks.json, exp, iss https://H/,\n"
          "                          aud the client id; never the signature); without it the\n"
          "                          token's payload is only read\n"
          "  --client-id ID          Houston's auth.auth0.clientId (with --auth0-base-domain)\n"
          "  --tenant-ca FILE        extra PEM CA bundle for fetching the JWKS\n"
          "  --authz-latency-ms D    each /v1/authorization decision takes D ms (default 0)\n"
          "  --authz-pool N          at most N decisions at a time, the rest queue (default 10,\n"
          "                          Houston's database pool)\n"
          "  --state-dir DIR         keep the signing key and the users there across restarts,\n"
          "                          as Houston's Secret and database do (created 0700)\n"
          "  --log-level LEVEL       debug, info, warn or error (default info)\n"
          "  --help                  this text\n\n"
          "Prints \"houston-standin: ready http://HOST:PORT\" when serving (after\n"
          "\"houston-standin: app https://HOST:PORT\" with --app-listen); SIGTERM stops it.\n",
          f);
}

static bool set_str(char **slot, const char *v)
{
    char *copy = strdup(v);
    if (copy == NULL)
        return false;
    free(*slot);
    *slot = copy;
    return true;
}

/* A decimal integer in [lo, hi]. */
static bool set_long(long *slot, const char *v, long lo, long hi)
{
    char *end = NULL;
    long n;
    if (v[0] < '0' || v[0] > '9' || strlen(v) > 9)
        return false;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < lo || n > hi)
        return false;
    *slot = n;
    return true;
}

static bool apply_flag(struct standin_config *c, int id, const char *v, char **listen,
                       char **app_listen)
{
    enum ha_log_level level;
    switch (id) {
    case O_LATENCY:
        return set_long(&c->authz_latency_ms, v, 0, STANDIN_MAX_LATENCY_MS);
    case O_POOL:
        return set_long(&c->authz_pool, v, 1, STANDIN_MAX_POOL);
    case O_LISTEN:
        return set_str(listen, v);
    case O_APP_LISTEN:
        return set_str(app_listen, v);
    case O_BASE:
        return set_str(&c->base_domain, v);
    case O_APP_URL:
        return set_str(&c->app_url, v);
    case O_CERT:
        return set_str(&c->tls_cert_file, v);
    case O_KEY:
        return set_str(&c->tls_key_file, v);
    case O_COOKIE:
        return set_str(&c->cookie_name, v);
    case O_SIDECAR:
        return set_str(&c->sidecar_url, v);
    case O_AUTH0:
        return set_str(&c->auth0_base_domain, v);
    case O_CLIENT:
        return set_str(&c->client_id, v);
    case O_CA:
        return set_str(&c->tenant_ca_file, v);
    case O_STATE:
        return v[0] != '\0' && set_str(&c->state_dir, v);
    case O_TEST:
        c->test_controls = true;
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

static bool base_ok(const char *d)
{
    size_t n = strlen(d);
    return n <= STANDIN_MAX_BASE && ha_url_check_hostname(d, n, 0, NULL) == HA_OK;
}

/* An absolute http(s) URL by the sidecar's grammar (url.c) without whitespace, query or
 * fragment; a trailing '/' is dropped. */
static bool url_ok(char *u)
{
    struct ha_url parsed;
    size_t n = strlen(u);
    if (n == 0 || n > MAX_URL_ARG || strpbrk(u, "?#\\\"<>") != NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f)
            return false;
    }
    while (n > 0 && u[n - 1] == '/')
        u[--n] = '\0';
    return ha_url_parse(u, &parsed, NULL) == HA_OK;
}

static bool cookie_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 128 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                     "!#$%&'*+-.^_`|~") == n;
}

/* Sets an unset *slot to prefix + base + suffix. */
static bool derive(char **slot, const char *prefix, const char *base, const char *suffix)
{
    struct ha_buf b;
    bool ok;
    if (*slot != NULL)
        return true;
    ha_buf_init(&b, 2048);
    ok = ha_buf_appendf(&b, "%s%s%s", prefix, base, suffix) == HA_OK &&
         ha_buf_steal(&b, slot) == HA_OK;
    ha_buf_cleanup(&b);
    return ok;
}

/* NULL when c is usable, else the name of the bad option. */
static const char *check_config(struct standin_config *c, const char *listen,
                                const char *app_listen)
{
    struct ha_hostport hp;

    if (peer_parse_listen(listen, &c->listen_host, &c->listen_port) != HA_OK)
        return "--listen (HOST:PORT on a loopback address)";
    if (app_listen != NULL &&
        peer_parse_listen(app_listen, &c->app_listen_host, &c->app_listen_port) != HA_OK)
        return "--app-listen (HOST:PORT on a loopback address)";
    if (app_listen != NULL && (c->tls_cert_file == NULL || c->tls_key_file == NULL))
        return "--app-listen (needs --tls-cert and --tls-key)";
    if (!base_ok(c->base_domain))
        return "--base-domain (a DNS name)";
    if (!derive(&c->app_url, "https://app.", c->base_domain, ":8873") || !url_ok(c->app_url))
        return "--app-url (an absolute http(s) URL without query or fragment)";
    if (!derive(&c->sidecar_url, "https://houston.", c->base_domain, ":8872") ||
        !url_ok(c->sidecar_url))
        return "--sidecar-url (an absolute http(s) URL without query or fragment)";
    if (c->cookie_name == NULL && standin_cookie_name(c->base_domain, &c->cookie_name) != HA_OK)
        return "--base-domain";
    if (!cookie_name_ok(c->cookie_name))
        return "--cookie-name (an RFC 6265 token)";
    if (c->auth0_base_domain != NULL &&
        (c->client_id == NULL || c->client_id[0] == '\0' ||
         ha_url_parse_hostport(c->auth0_base_domain, strlen(c->auth0_base_domain), 0, &hp, NULL) !=
             HA_OK))
        return "--auth0-base-domain (host[:port], with --client-id)";
    return NULL;
}

/* 0 to run, else the exit status (-1 after --help). */
static int load_config(struct standin_config *c, int argc, char **argv)
{
    char *listen = strdup(DEFAULT_LISTEN), *app_listen = NULL;
    const char *bad = NULL;
    int id;

    c->authz_pool = STANDIN_DEFAULT_POOL;
    if (listen == NULL || !set_str(&c->base_domain, DEFAULT_BASE))
        bad = "memory";
    while (bad == NULL && (id = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (id == O_HELP) {
            usage(stdout);
            free(listen);
            free(app_listen);
            return -1;
        }
        if (id == '?' || !apply_flag(c, id, optarg, &listen, &app_listen))
            bad = "the command line";
    }
    if (bad == NULL && optind < argc)
        bad = "the command line (unexpected argument)";
    if (bad == NULL)
        bad = check_config(c, listen, app_listen);
    free(listen);
    free(app_listen);
    if (bad != NULL) {
        fprintf(stderr, "houston-standin: bad value in %s; see houston-standin --help\n", bad);
        return 2;
    }
    return 0;
}

static enum ha_err read_pem(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    char *data;
    size_t n;
    if (f == NULL)
        return HA_ERR_IO;
    data = calloc(1, MAX_PEM + 1);
    if (data == NULL) {
        (void)fclose(f); /* read-only */
        return HA_ERR_NOMEM;
    }
    n = fread(data, 1, MAX_PEM + 1, f);
    (void)fclose(f);
    if (n == 0 || n > MAX_PEM) {
        ha_free_secret(data);
        return HA_ERR_TOO_LARGE;
    }
    *out = data;
    return HA_OK;
}

static enum ha_err start_one(const char *host, int port, const char *cert, const char *key,
                             peer_handler_fn fn, struct standin *s, struct peer_server **srv,
                             int *bound)
{
    struct peer_server_config sc;
    enum ha_err err;
    memset(&sc, 0, sizeof(sc));
    err = peer_bind(host, port, &sc.fd, bound);
    if (err != HA_OK) {
        fprintf(stderr, "houston-standin: cannot listen on %s:%d: %s\n", host, port,
                strerror(errno));
        return err;
    }
    sc.cert_pem = cert;
    sc.key_pem = key;
    sc.handler = fn;
    sc.ctx = s;
    return peer_server_start(&sc, srv);
}

static enum ha_err start_app(struct standin *s, struct peer_server **srv, int *port)
{
    char *cert = NULL, *key = NULL;
    enum ha_err err = read_pem(s->cfg.tls_cert_file, &cert);
    if (err == HA_OK)
        err = read_pem(s->cfg.tls_key_file, &key);
    if (err != HA_OK)
        ha_log(HA_LOG_ERROR, "tls_files_unreadable", NULL, "cert", s->cfg.tls_cert_file, "key",
               s->cfg.tls_key_file, NULL);
    if (err == HA_OK)
        err = start_one(s->cfg.app_listen_host, s->cfg.app_listen_port, cert, key,
                        standin_handle_app, s, srv, port);
    free(cert);
    ha_free_secret(key);
    return err;
}

static int serve(struct standin *s)
{
    struct peer_server *houston = NULL, *app = NULL;
    int port = 0, app_port = 0, sig = 0;
    sigset_t set;
    enum ha_err err = standin_state_init(s);

    if (err == HA_OK)
        err = standin_session_init(s);
    if (err == HA_OK)
        err = standin_token09_init(s);
    standin_pool_reset(s); /* the flags' latency and pool size */

    if (err == HA_OK)
        err = start_one(s->cfg.listen_host, s->cfg.listen_port, NULL, NULL, standin_handle_houston,
                        s, &houston, &port);
    if (err == HA_OK && s->cfg.app_listen_host != NULL)
        err = start_app(s, &app, &app_port);
    if (err != HA_OK) {
        fprintf(stderr, "houston-standin: could not start (%s)\n", ha_err_str(err));
        peer_server_stop(houston);
        return 1;
    }
    if (app != NULL)
        printf("houston-standin: app https://%s:%d\n", s->cfg.app_listen_host, app_port);
    printf("houston-standin: ready http://%s:%d\n", s->cfg.listen_host, port);
    fflush(stdout);
    ha_log(HA_LOG_INFO, "ready", NULL, "cookie", s->cfg.cookie_name, "app_url", s->cfg.app_url,
           "test_controls", s->cfg.test_controls ? "on" : "off", "id_token",
           s->cfg.auth0_base_domain != NULL ? "checked as Houston 0.9 (no signature)"
                                            : "read, not checked",
           NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigwait(&set, &sig);
    atomic_store(&s->stopping, true);
    peer_server_stop(app);
    peer_server_stop(houston);
    ha_log(HA_LOG_INFO, "stopped", NULL, NULL);
    return 0;
}

static void standin_cleanup(struct standin *s)
{
    struct standin_config *c = &s->cfg;
    free(c->listen_host);
    free(c->base_domain);
    free(c->app_url);
    free(c->app_listen_host);
    free(c->tls_cert_file);
    free(c->tls_key_file);
    free(c->cookie_name);
    free(c->sidecar_url);
    free(c->auth0_base_domain);
    free(c->client_id);
    free(c->tenant_ca_file);
    free(c->state_dir);
    standin_token09_cleanup(s);
    EVP_PKEY_free(s->session_key);
    json_decref(s->received);
    json_decref(s->fault);
    json_decref(s->users);
    standin_pool_cleanup(s);
    pthread_mutex_destroy(&s->lock);
}

int main(int argc, char **argv)
{
    struct standin s;
    sigset_t set;
    int rc = 1;

    /* Block the stop signals before any thread exists, so only sigwait() sees them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    (void)signal(SIGPIPE, SIG_IGN); /* cannot fail for a valid signal number */
    if (ha_http_global_init() != HA_OK)
        return 1;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.lock, NULL);
    pthread_mutex_init(&s.jwks_lock, NULL);
    atomic_init(&s.stopping, false);
    s.received = json_array();
    s.fault = json_object();
    s.users = json_object();
    if (standin_pool_init(&s) == HA_OK && s.received != NULL && s.fault != NULL && s.users != NULL)
        rc = load_config(&s.cfg, argc, argv);
    if (rc == 0)
        rc = serve(&s);
    standin_cleanup(&s);
    return rc < 0 ? 0 : rc;
}
