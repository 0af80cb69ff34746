/* The memory floor for bench/stall.sh: what a process costs that links exactly the libraries
 * the sidecar links (libmicrohttpd, libcurl, OpenSSL's libssl and libcrypto, jansson,
 * libyaml; `ldd houston-auth`), initialises each once and serves HTTP, and does nothing else.
 *
 *   bench_floor --listen PORT
 *
 * Each library is initialised as the sidecar initialises it: curl_global_init(ALL) and one
 * easy handle with a CA bundle set (the sidecar's HTTP client keeps handles), OPENSSL_init_ssl,
 * one JSON document parsed and one YAML stream read (the sidecar reads its config and
 * discovery), and an MHD daemon on 127.0.0.1:PORT with the sidecar's flags, connection memory
 * limit and I/O thread pool (one thread per core, at most 8). It answers 200 "ok" to any
 * request, so a caller can tell it is listening. There are no worker threads: the figure is
 * the libraries' floor, not a model of either server core. SIGTERM or SIGINT stops it. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/ssl.h>
#include <yaml.h>

#define CONN_MEMORY_LIMIT (32 * 1024 + 4096) /* the sidecar's (src/server.c) */
#define CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **ctx)
{
    static const char ok[] = "ok\n";
    struct MHD_Response *r;
    enum MHD_Result ret;
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)data;
    (void)size;
    (void)ctx;
    r = MHD_create_response_from_buffer(sizeof(ok) - 1, (void *)ok, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 8 ? 8 : (int)n);
}

/* One JSON document and one YAML stream through each parser, as a config load does. */
static int touch_parsers(void)
{
    static const char doc[] = "authSidecar:\n  listen: 127.0.0.1:0\n";
    json_error_t jerr;
    json_t *j = json_loads("{\"issuer\":\"https://localhost/\"}", 0, &jerr);
    yaml_parser_t p;
    yaml_event_t ev;
    int done = 0, ok = 1;

    if (j == NULL)
        return -1;
    json_decref(j);
    if (yaml_parser_initialize(&p) == 0)
        return -1;
    yaml_parser_set_input_string(&p, (const unsigned char *)doc, sizeof(doc) - 1);
    for (int i = 0; i < 64 && !done && ok; i++) {
        ok = yaml_parser_parse(&p, &ev);
        if (ok) {
            done = ev.type == YAML_STREAM_END_EVENT;
            yaml_event_delete(&ev);
        }
    }
    yaml_parser_delete(&p);
    return ok ? 0 : -1;
}

static struct MHD_Daemon *listen_on(unsigned short port)
{
    struct sockaddr_in a;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_TURBO;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&a, MHD_OPTION_THREAD_POOL_SIZE,
                            (unsigned int)cpu_count(), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)CONN_MEMORY_LIMIT, MHD_OPTION_END);
}

int main(int argc, char **argv)
{
    struct MHD_Daemon *d = NULL;
    CURL *h = NULL;
    sigset_t set;
    long port;
    int rc = 1, sig;

    if (argc != 3 || strcmp(argv[1], "--listen") != 0) {
        fprintf(stderr, "Usage: bench_floor --listen PORT\n");
        return 2;
    }
    port = strtol(argv[2], NULL, 10);
    if (port < 1 || port > 65535)
        return 2;
    /* Blocked before MHD starts its threads, so they inherit the mask and sigwait sees it. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK ||
        OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS, NULL) != 1 || touch_parsers() != 0)
        goto out;
    h = curl_easy_init();
    if (h == NULL)
        goto out;
    curl_easy_setopt(h, CURLOPT_CAINFO, CA_BUNDLE);
    d = listen_on((unsigned short)port);
    if (d == NULL) {
        fprintf(stderr, "bench_floor: cannot listen on 127.0.0.1:%ld\n", port);
        goto out;
    }
    sigwait(&set, &sig);
    rc = 0;
out:
    if (d != NULL)
        MHD_stop_daemon(d);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return rc;
}
