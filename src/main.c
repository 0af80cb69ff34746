/* houston-auth: arguments, signals and wiring; nothing else. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/app.h"
#include "houston_auth/config.h"
#include "houston_auth/http_client.h"
#include "houston_auth/log.h"
#include "houston_auth/server.h"

#define DRAIN_MS 20000

extern char **environ;

/* --probe URL: a health check for images without a shell or curl. Exit 0 on a 200. */
static int probe(const char *url)
{
    struct ha_http_client_opts o = {NULL, 1000, 2000, 64 * 1024, NULL, 0};
    struct ha_http_client *client = NULL;
    struct ha_http_request req = {.method = "GET", .url = url};
    struct ha_http_response resp = {0};
    int rc = 1;

    if (ha_http_global_init() != HA_OK || ha_http_client_new(&o, &client) != HA_OK)
        return 1;
    if (ha_http_client_perform(client, &req, &resp) == HA_OK && resp.status == 200)
        rc = 0;
    if (rc != 0)
        fprintf(stderr, "houston-auth: probe %s failed (status %ld)\n", url, resp.status);
    ha_http_response_cleanup(&resp);
    ha_http_client_free(client);
    return rc;
}

/* Settings that weaken a protection are loud: a warning at every start and reload. */
static void warn_insecure(const struct ha_config *c)
{
    if (c->allow_unverified_email)
        ha_log(HA_LOG_WARN, "insecure_setting", NULL, "key",
               "authSidecar.insecureAllowUnverifiedEmail", "effect",
               "an ID token whose email_verified is not true is handed to Houston, which finds "
               "its user by email: anyone who can sign up with someone else's address on an "
               "allowed connection gets that person's session",
               NULL);
    if (c->exchange_total_per_s == 0 || c->exchange_client_per_min == 0)
        ha_log(HA_LOG_WARN, "insecure_setting", NULL, "key",
               c->exchange_total_per_s == 0 ? "authSidecar.tokenExchangesPerSecond"
                                            : "authSidecar.tokenExchangesPerClientPerMinute",
               "effect", "0 turns the limit off: anyone can spend the tenant's rate limit", NULL);
}

/* Keys of the sidecar's section that mean nothing (a typo, a removed setting): a warning at
 * every start and reload, since the setting the administrator meant stays at its default. */
static void warn_ignored(const struct ha_config *c)
{
    const struct ha_config_ignored *ig;
    size_t n = ha_config_ignored(c, &ig);
    for (size_t i = 0; i < n; i++)
        ha_log(HA_LOG_WARN, "config_key_ignored", NULL, "key", ig[i].key, "why", ig[i].why, NULL);
}

/* What a start and a reload say about the settings. */
static void warn_settings(const struct ha_config *c)
{
    warn_insecure(c);
    warn_ignored(c);
}

/* SIGHUP: re-reads the config file and secret files; a refused reload changes nothing. */
static void reload(struct ha_app *app, int argc, char **argv)
{
    struct ha_config *next = NULL;
    enum ha_config_action action;
    enum ha_log_level level;
    const char *reason = NULL;
    char errbuf[512] = "";

    if (ha_config_load(argc, argv, environ, &next, &action, errbuf, sizeof(errbuf)) != HA_OK ||
        next == NULL) {
        ha_log(HA_LOG_ERROR, "reload_refused", NULL, "reason", errbuf, NULL);
        ha_config_free(next);
        return;
    }
    if (ha_log_parse_level(next->log_level, &level) != HA_OK)
        level = HA_LOG_INFO;
    if (ha_app_reload(app, next, &reason) != HA_OK) {
        ha_log(HA_LOG_ERROR, "reload_refused", NULL, "reason", "a key that needs a restart changed",
               "key", reason, NULL);
        return;
    }
    ha_log_set_level(level);
    ha_log(HA_LOG_INFO, "reloaded", NULL, NULL);
    warn_settings(ha_app_view(app)->cfg);
}

static int serve(struct ha_config *cfg, int argc, char **argv)
{
    struct ha_app app;
    struct ha_server *srv = NULL;
    const struct ha_config *c;
    sigset_t set;
    int sig = 0;
    char port[16];
    const char *reason = NULL;
    enum ha_err err;

    err = ha_app_init(&app, cfg); /* app owns cfg from here on */
    if (err != HA_OK) {
        ha_log(HA_LOG_ERROR, "start_failed", NULL, "reason",
               "the HTTP client or the application state could not be set up", "error",
               ha_err_str(err), NULL);
        ha_app_cleanup(&app);
        return 1;
    }
    c = ha_app_view(&app)->cfg;
    snprintf(port, sizeof(port), "%d", c->listen_port);
    err = ha_server_start(&app, &srv, &reason);
    if (err != HA_OK) {
        ha_log(HA_LOG_ERROR, "start_failed", NULL, "reason", reason, "error", ha_err_str(err),
               "host", c->listen_host, "port", port, NULL);
        ha_app_cleanup(&app);
        return 1;
    }
    snprintf(port, sizeof(port), "%d", ha_server_port(srv));
    ha_log(HA_LOG_INFO, "listening", NULL, "host", c->listen_host, "port", port, "tls",
           c->tls_cert_file != NULL ? "on" : "off", "issuer", c->issuer, "dev",
           c->dev ? "true" : "false", NULL);
    warn_settings(c);
    err = ha_app_start(&app);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    while (err == HA_OK && sigwait(&set, &sig) == 0) {
        if (sig != SIGHUP)
            break;
        reload(&app, argc, argv);
    }
    ha_log(HA_LOG_INFO, "stopping", NULL, "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    ha_server_stop(srv, DRAIN_MS);
    ha_app_cleanup(&app);
    ha_log(HA_LOG_INFO, "stopped", NULL, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    struct ha_config *cfg = NULL;
    enum ha_config_action action = HA_CONFIG_RUN;
    enum ha_log_level level;
    char errbuf[512] = "";
    sigset_t set;
    int rc = 0;

    /* Block the signals main() waits for before any thread starts, so every thread
     * inherits the mask and sigwait() alone receives them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    (void)signal(SIGPIPE, SIG_IGN); /* cannot fail for a valid signal number */
    /* glibc gives each thread that allocates its own malloc arena (64 MiB of address space
     * each, and their high-water pages). Allocations here are small and short, so two arenas
     * serve the I/O threads and the event loop. Best effort: 0 only means the default stays. */
    (void)mallopt(M_ARENA_MAX, 2);

    if (argc == 3 && strcmp(argv[1], "--probe") == 0)
        return probe(argv[2]);
    if (ha_config_load(argc, argv, environ, &cfg, &action, errbuf, sizeof(errbuf)) != HA_OK) {
        fprintf(stderr, "houston-auth: %s\n", errbuf[0] ? errbuf : "configuration refused");
        fprintf(stderr, "houston-auth: see houston-auth --help\n");
        return 2;
    }
    switch (action) {
    case HA_CONFIG_HELP:
        ha_config_print_help(stdout);
        break;
    case HA_CONFIG_VERSION:
        printf("houston-auth %s\n", HA_VERSION);
        break;
    case HA_CONFIG_CHECK: {
        const struct ha_config_ignored *ig;
        size_t n = ha_config_ignored(cfg, &ig);
        ha_config_print(cfg, stdout);
        for (size_t i = 0; i < n; i++)
            printf("warning: %s: %s\n", ig[i].key, ig[i].why);
        printf("configuration OK\n");
        break;
    }
    case HA_CONFIG_RUN:
        if (ha_log_parse_level(cfg->log_level, &level) == HA_OK)
            ha_log_set_level(level);
        if (cfg->dev)
            ha_log(HA_LOG_WARN, "dev_mode", NULL, "reason",
                   "--dev: embedded dev defaults and dev secrets in use; never in production",
                   NULL);
        if (ha_http_global_init() != HA_OK) {
            fprintf(stderr, "houston-auth: libcurl failed to initialise\n");
            rc = 1;
            break;
        }
        rc = serve(cfg, argc, argv);
        cfg = NULL; /* serve() handed it to the app */
        break;
    }
    ha_config_free(cfg);
    return rc;
}
