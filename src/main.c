/* houston-auth: arguments, signals and wiring; nothing else. */
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
    struct ha_http_client_opts o = {NULL, 1000, 2000, 64 * 1024};
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

static int serve(const struct ha_config *cfg)
{
    struct ha_app app;
    struct ha_server *srv = NULL;
    sigset_t set;
    int sig = 0;
    char port[16];
    enum ha_err err;

    err = ha_app_init(&app, cfg);
    if (err == HA_OK)
        err = ha_server_start(&app, &srv);
    if (err != HA_OK) {
        ha_log(HA_LOG_ERROR, "start_failed", NULL, "reason", ha_err_str(err), "listen",
               cfg->listen_host, NULL);
        ha_app_cleanup(&app);
        return 1;
    }
    snprintf(port, sizeof(port), "%d", ha_server_port(srv));
    ha_log(HA_LOG_INFO, "listening", NULL, "host", cfg->listen_host, "port", port, "tls",
           cfg->tls_cert_file != NULL ? "on" : "off", "issuer", cfg->issuer, "dev",
           cfg->dev ? "true" : "false", NULL);
    err = ha_app_start(&app);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    while (err == HA_OK && sigwait(&set, &sig) == 0) {
        if (sig != SIGHUP)
            break;
        ha_log(HA_LOG_WARN, "sighup_ignored", NULL, "reason",
               "configuration reload is not implemented yet; restart to apply changes", NULL);
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
    signal(SIGPIPE, SIG_IGN);

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
    case HA_CONFIG_CHECK:
        ha_config_print(cfg, stdout);
        printf("configuration OK\n");
        break;
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
        rc = serve(cfg);
        break;
    }
    ha_config_free(cfg);
    return rc;
}
