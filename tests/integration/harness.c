/* Integration harness (see harness.h). Processes are started with fork+execve and a clean
 * environment (only what the test sets, plus PATH and the sanitizer options), die with the
 * test binary (PR_SET_PDEATHSIG) and are reaped at teardown. The browser client is one
 * libcurl easy handle with the in-memory cookie engine, names resolved to loopback, the
 * tenant's CA trusted, and redirects never followed. Peer test controls are plain JSON
 * requests on the tenant's and the stand-in's /__test/ endpoints. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "houston_auth/config.h"
#include "harness.h"

#define IT_MAX_ENV 64
#define IT_MAX_BODY (1024 * 1024)
#define IT_MAX_HEADERS 128
#define START_DEADLINE_MS 30000
#define STOP_DEADLINE_MS 5000
#define RUN_DEADLINE_MS 15000
#define POLL_MS 100
#define REQUEST_TIMEOUT_MS 20000

/* The peers' test-control endpoints. */
#define TEST_FAULT_PATH "/__test/fault"
#define TEST_RESET_PATH "/__test/reset"
#define TEST_RECEIVED_PATH "/__test/received"

static struct it_env the_env;
static char *secrets[IT_MAX_SECRETS];
static size_t nsecrets;
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;

struct it_env *it_env(void)
{
    return &the_env;
}

/* ---- small helpers ---- */

char *it_fmt(const char *f, ...)
{
    va_list ap;
    int n;
    char *s;
    va_start(ap, f);
    n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    s = malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool starts_with(const char *s, const char *p)
{
    return s != NULL && strncmp(s, p, strlen(p)) == 0;
}

/* Random characters from [A-Za-z0-9]. */
static void random_text(char *out, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[128];
    if (n > sizeof(r) || RAND_bytes(r, (int)n) != 1)
        abort();
    for (size_t i = 0; i < n; i++)
        out[i] = abc[r[i] % (sizeof(abc) - 1)];
    out[n] = '\0';
}

char *it_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n = 0, cap = 16 * 1024 * 1024;
    if (f == NULL)
        return NULL;
    buf = malloc(cap + 1);
    if (buf != NULL)
        n = fread(buf, 1, cap, f);
    fclose(f);
    if (buf == NULL)
        return NULL;
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* Prints the last lines of a log, to explain a failed start. */
static void show_log_tail(const char *path)
{
    size_t n = 0;
    char *text = it_read_file(path, &n);
    size_t from = n > 3000 ? n - 3000 : 0;
    fprintf(stderr, "---- %s (tail) ----\n%s\n----\n", path, text != NULL ? text + from : "");
    free(text);
}

static const char *sanitizer_report(const char *path);

/* ---- environment vectors ---- */

struct strv {
    char *v[IT_MAX_ENV + 1];
    size_t n;
};

static void strv_free(struct strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    s->n = 0;
}

static void strv_push(struct strv *s, char *item)
{
    if (item == NULL || s->n >= IT_MAX_ENV)
        abort();
    s->v[s->n++] = item;
    s->v[s->n] = NULL;
}

/* Sets "K=V", replacing any entry for K; a bare "K" removes K. */
static void strv_setenv(struct strv *s, const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t klen = eq != NULL ? (size_t)(eq - kv) : strlen(kv);
    for (size_t i = 0; i < s->n; i++) {
        if (strncmp(s->v[i], kv, klen) == 0 && s->v[i][klen] == '=') {
            free(s->v[i]);
            s->v[i] = s->v[--s->n];
            s->v[s->n] = NULL;
            break;
        }
    }
    if (eq != NULL)
        strv_push(s, strdup(kv));
}

static void base_env(struct strv *s)
{
    static const char *const keep[] = {"PATH",           "HOME",         "ASAN_OPTIONS",
                                       "UBSAN_OPTIONS",  "LSAN_OPTIONS", "TSAN_OPTIONS",
                                       "LD_LIBRARY_PATH"};
    s->n = 0;
    s->v[0] = NULL;
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        const char *v = getenv(keep[i]);
        if (v != NULL)
            strv_push(s, it_fmt("%s=%s", keep[i], v));
    }
}

static void sidecar_env(const struct it_env *e, int port, const char *const *extra, struct strv *s)
{
    base_env(s);
    strv_push(s, it_fmt("GLOBAL_BASE_DOMAIN=%s", IT_BASE_DOMAIN));
    strv_push(s, it_fmt("AUTH0_CLIENT_ID=%s", IT_CLIENT_ID));
    strv_push(s, it_fmt("AUTH0_BASE_DOMAIN=localhost:%d", e->tenant_port));
    strv_push(s, it_fmt("AUTH_SIDECAR_LISTEN=127.0.0.1:%d", port));
    strv_push(s, it_fmt("AUTH_SIDECAR_HOUSTON_URL=%s", e->houston_url));
    strv_push(s, it_fmt("AUTH_SIDECAR_PUBLIC_URL=%s", e->sidecar_url));
    strv_push(s, it_fmt("AUTH_SIDECAR_APP_URL=%s", IT_APP_URL));
    strv_push(s, it_fmt("AUTH_SIDECAR_TENANT_CA_FILE=%s", e->ca_file));
    strv_push(s, it_fmt("AUTH_SIDECAR_TLS_CERT_FILE=%s", e->tls_cert));
    strv_push(s, it_fmt("AUTH_SIDECAR_TLS_KEY_FILE=%s", e->tls_key));
    strv_push(s, it_fmt("AUTH0_CLIENT_SECRET=%s", e->client_secret));
    strv_push(s, it_fmt("AUTH_SIDECAR_COOKIE_SECRET=%s", e->cookie_secret));
    strv_push(s, it_fmt("AUTH_SIDECAR_REQUEST_TIMEOUT_MS=1500"));
    strv_push(s, it_fmt("AUTH_SIDECAR_LOG_LEVEL=debug"));
    /* Suites log in hundreds of times from 127.0.0.1; test_platform.c tests the limits. */
    strv_push(s, it_fmt("AUTH_SIDECAR_TOKEN_EXCHANGES_PER_SECOND=100000"));
    strv_push(s, it_fmt("AUTH_SIDECAR_TOKEN_EXCHANGES_PER_CLIENT_PER_MINUTE=1000000"));
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        strv_setenv(s, extra[i]);
}

/* ---- processes ---- */

static int spawn(struct it_proc *p, const char *name, char *const argv[], char *const envp[],
                 const char *log)
{
    pid_t parent = getpid(), pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        /* Die with the test binary, even when it is killed. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    close(fd);
    if (pid < 0)
        return -1;
    p->pid = pid;
    p->exit_code = -1;
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "%s", log);
    return 0;
}

static void reaped(struct it_proc *p, int st)
{
    p->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
    p->pid = 0;
}

bool it_proc_alive(struct it_proc *p)
{
    int st;
    if (p->pid <= 0)
        return false;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
        fprintf(stderr, "harness: %s (pid %d) exited, status %d\n", p->name, (int)p->pid, st);
        reaped(p, st);
        return false;
    }
    return true;
}

void it_proc_stop(struct it_proc *p)
{
    long deadline = now_ms() + STOP_DEADLINE_MS;
    int st;
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    while (now_ms() < deadline) {
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            reaped(p, st);
            return;
        }
        nap_ms(20);
    }
    fprintf(stderr, "harness: %s did not stop on SIGTERM; SIGKILL\n", p->name);
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &st, 0);
    reaped(p, st);
}

/* The first sanitizer report in the file at path, or NULL. */
static const char *sanitizer_report(const char *path)
{
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                        "runtime error:", "WARNING: ThreadSanitizer"};
    size_t len = 0;
    char *text = it_read_file(path, &len);
    const char *found = NULL;
    for (size_t i = 0; text != NULL && found == NULL && i < sizeof(marks) / sizeof(marks[0]); i++)
        found = strstr(text, marks[i]) != NULL ? marks[i] : NULL;
    free(text);
    return found;
}

const char *it_stop_all_checked(struct it_env *e)
{
    static char why[768];
    struct it_proc *all[3 + IT_SPARE_PORTS];
    size_t n = 0;
    const char *bad = NULL;
    for (int i = 0; i < IT_SPARE_PORTS; i++)
        all[n++] = &e->spare[i];
    all[n++] = &e->sidecar;
    all[n++] = &e->houston;
    all[n++] = &e->tenant;
    for (size_t i = 0; i < n; i++) {
        bool ran = all[i]->pid > 0 || all[i]->log[0] != '\0';
        const char *rep;
        it_proc_stop(all[i]);
        if (!ran)
            continue;
        rep = sanitizer_report(all[i]->log);
        if (bad == NULL && all[i]->exit_code != 0) {
            snprintf(why, sizeof(why), "%s ended with status %d (log %s)", all[i]->name,
                     all[i]->exit_code, all[i]->log);
            bad = why;
        }
        if (bad == NULL && rep != NULL) {
            snprintf(why, sizeof(why), "%s: \"%s\" in %s", all[i]->name, rep, all[i]->log);
            bad = why;
        }
    }
    return bad;
}

void it_sidecar_base(int port, char *out, size_t len)
{
    snprintf(out, len, "https://%s:%d", IT_SIDECAR_HOST, port);
}

int it_wait_status(const struct it_env *e, const char *url, long want_status, long deadline_ms)
{
    struct it_client *c = it_client_new(e);
    long deadline = now_ms() + deadline_ms;
    int rc = -1;
    if (c == NULL)
        return -1;
    while (rc != 0 && now_ms() < deadline) {
        struct it_resp r;
        if (it_get(c, url, &r) == 0 && r.status == want_status)
            rc = 0;
        it_resp_cleanup(&r);
        if (rc != 0)
            nap_ms(POLL_MS);
    }
    it_client_free(c);
    return rc;
}

/* Waits for url to answer want, failing early when p dies. */
static int wait_proc(const struct it_env *e, struct it_proc *p, const char *url, long want)
{
    long deadline = now_ms() + START_DEADLINE_MS;
    while (now_ms() < deadline) {
        if (!it_proc_alive(p))
            break;
        if (it_wait_status(e, url, want, 300) == 0)
            return 0;
    }
    fprintf(stderr, "harness: %s did not answer %ld at %s\n", p->name, want, url);
    show_log_tail(p->log);
    return -1;
}

int it_tenant_start(struct it_env *e)
{
    struct strv argv, env;
    char *log = it_fmt("%s/tenant.log", e->dir), *url;
    int rc;
    base_env(&env);
    argv.n = 0;
    strv_push(&argv, it_fmt("%s/tools/dev-tenant", HA_BIN_DIR));
    strv_push(&argv, it_fmt("--listen"));
    strv_push(&argv, it_fmt("127.0.0.1:%d", e->tenant_port));
    strv_push(&argv, it_fmt("--state-dir"));
    strv_push(&argv, it_fmt("%s", e->tenant_dir));
    strv_push(&argv, it_fmt("--issuer-host"));
    strv_push(&argv, it_fmt("localhost:%d", e->tenant_port));
    strv_push(&argv, it_fmt("--client-id"));
    strv_push(&argv, it_fmt("%s", IT_CLIENT_ID));
    strv_push(&argv, it_fmt("--client-secret"));
    strv_push(&argv, it_fmt("%s", e->client_secret));
    strv_push(&argv, it_fmt("--callback"));
    strv_push(&argv, it_fmt("%s/v1/oauth/redirect", e->sidecar_url));
    strv_push(&argv, it_fmt("--logout-url"));
    strv_push(&argv, it_fmt("%s/logout", IT_APP_URL));
    strv_push(&argv, it_fmt("--audience"));
    strv_push(&argv, it_fmt("%s", IT_AUDIENCE));
    strv_push(&argv, it_fmt("--san"));
    strv_push(&argv, it_fmt("%s", IT_SIDECAR_HOST));
    strv_push(&argv, it_fmt("--san"));
    strv_push(&argv, it_fmt("%s", IT_APP_HOST));
    strv_push(&argv, it_fmt("--test-controls"));
    rc = spawn(&e->tenant, "dev-tenant", argv.v, env.v, log);
    url = it_fmt("%s/.well-known/openid-configuration", e->tenant_url);
    if (rc == 0)
        rc = wait_proc(e, &e->tenant, url, 200);
    free(url);
    free(log);
    strv_free(&argv);
    strv_free(&env);
    return rc;
}

int it_houston_start(struct it_env *e)
{
    return it_houston_start_args(e, NULL);
}

int it_sidecar_start(struct it_env *e, struct it_proc *p, int port, const char *logname,
                     const char *const *extra, bool wait_ready)
{
    struct strv argv, env;
    char *log = it_fmt("%s/%s", e->dir, logname), *url;
    char base[128];
    int rc;
    sidecar_env(e, port, extra, &env);
    argv.n = 0;
    strv_push(&argv, it_fmt("%s/houston-auth", HA_BIN_DIR));
    rc = spawn(p, "houston-auth", argv.v, env.v, log);
    it_sidecar_base(port, base, sizeof(base));
    url = it_fmt("%s%s", base, wait_ready ? "/readyz" : "/healthz");
    if (rc == 0)
        rc = wait_proc(e, p, url, 200);
    free(url);
    free(log);
    strv_free(&argv);
    strv_free(&env);
    return rc;
}

void it_spare_start(int slot, const char *logname, const char *const *extra, char *base, size_t len)
{
    struct it_env *e = it_env();
    it_proc_stop(&e->spare[slot]); /* left running by a test that failed half-way */
    assert_int_equal(
        it_sidecar_start(e, &e->spare[slot], e->spare_ports[slot], logname, extra, true), 0);
    it_sidecar_base(e->spare_ports[slot], base, len);
}

/* Waits for pid with a deadline; the exit status, or -1 (killed) on timeout. */
static int wait_exit(pid_t pid)
{
    long deadline = now_ms() + RUN_DEADLINE_MS;
    int st;
    while (now_ms() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        nap_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

int it_sidecar_run(const struct it_env *e, const char *const *args, const char *const *extra,
                   char **out)
{
    static int seq;
    struct strv argv, env;
    struct it_proc p = {0};
    char *log = it_fmt("%s/run-%d.out", e->dir, ++seq);
    int rc;
    sidecar_env(e, e->sidecar_port, extra, &env);
    argv.n = 0;
    strv_push(&argv, it_fmt("%s/houston-auth", HA_BIN_DIR));
    for (size_t i = 0; args != NULL && args[i] != NULL; i++)
        strv_push(&argv, strdup(args[i]));
    rc = spawn(&p, "houston-auth-run", argv.v, env.v, log);
    if (rc == 0)
        rc = wait_exit(p.pid);
    if (sanitizer_report(log) != NULL)
        rc = -2;
    *out = it_read_file(log, NULL);
    free(log);
    strv_free(&argv);
    strv_free(&env);
    return rc;
}

int it_cookie_key(const struct it_env *e, unsigned char key[32])
{
    struct strv env;
    struct ha_config *cfg = NULL;
    enum ha_config_action action = HA_CONFIG_RUN;
    char arg0[] = "houston-auth", errbuf[512] = "";
    char *argv[] = {arg0, NULL};
    int rc = -1;
    sidecar_env(e, e->sidecar_port, NULL, &env);
    if (ha_config_load(1, argv, env.v, &cfg, &action, errbuf, sizeof(errbuf)) == HA_OK &&
        cfg != NULL) {
        memcpy(key, cfg->cookie_key, HA_COOKIE_KEY_LEN);
        rc = 0;
    } else {
        fprintf(stderr, "harness: config refused: %s\n", errbuf);
    }
    ha_config_free(cfg);
    strv_free(&env);
    return rc;
}

/* ---- the environment ---- */

/* Distinct free loopback ports: all bound at once, then released. */
static int free_ports(int *ports, size_t n)
{
    int fds[8];
    int rc = 0;
    for (size_t i = 0; i < n && i < 8; i++) {
        struct sockaddr_in a = {0};
        socklen_t alen = sizeof(a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof(a)) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&a, &alen) != 0)
            rc = -1;
        ports[i] = ntohs(a.sin_port);
    }
    for (size_t i = 0; i < n && i < 8; i++)
        close(fds[i]);
    return rc;
}

static int env_init(struct it_env *e)
{
    int ports[3 + IT_SPARE_PORTS];
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/ha-it-XXXXXX");
    if (mkdtemp(e->dir) == NULL)
        return -1;
    snprintf(e->tenant_dir, sizeof(e->tenant_dir), "%s/tenant", e->dir);
    snprintf(e->ca_file, sizeof(e->ca_file), "%s/ca.pem", e->tenant_dir);
    snprintf(e->tls_cert, sizeof(e->tls_cert), "%s/tls.pem", e->tenant_dir);
    snprintf(e->tls_key, sizeof(e->tls_key), "%s/tls.key", e->tenant_dir);
    if (free_ports(ports, 3 + IT_SPARE_PORTS) != 0)
        return -1;
    e->tenant_port = ports[0];
    e->houston_port = ports[1];
    e->sidecar_port = ports[2];
    for (int i = 0; i < IT_SPARE_PORTS; i++)
        e->spare_ports[i] = ports[3 + i];
    random_text(e->client_secret, sizeof(e->client_secret) - 1);
    random_text(e->cookie_secret, sizeof(e->cookie_secret) - 1);
    it_sidecar_base(e->sidecar_port, e->sidecar_url, sizeof(e->sidecar_url));
    snprintf(e->tenant_url, sizeof(e->tenant_url), "https://localhost:%d", e->tenant_port);
    snprintf(e->houston_url, sizeof(e->houston_url), "http://127.0.0.1:%d", e->houston_port);
    fprintf(stderr, "harness: dir %s tenant %d houston %d sidecar %d\n", e->dir, e->tenant_port,
            e->houston_port, e->sidecar_port);
    return 0;
}

int it_group_setup_bare(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    return env_init(&the_env);
}

int it_group_setup(void **state)
{
    struct it_env *e = &the_env;
    if (it_group_setup_bare(state) != 0)
        return -1;
    if (it_tenant_start(e) != 0 || it_houston_start(e) != 0)
        return -1;
    return it_sidecar_start(e, &e->sidecar, e->sidecar_port, "sidecar.log", NULL, true);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int it_group_teardown(void **state)
{
    struct it_env *e = &the_env;
    const char *keep = getenv("HA_IT_KEEP");
    (void)state;
    for (int i = 0; i < IT_SPARE_PORTS; i++)
        it_proc_stop(&e->spare[i]);
    it_proc_stop(&e->sidecar);
    it_proc_stop(&e->houston);
    it_proc_stop(&e->tenant);
    if (keep != NULL && keep[0] == '1')
        fprintf(stderr, "harness: kept %s\n", e->dir);
    else if (e->dir[0] != '\0')
        nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (size_t i = 0; i < nsecrets; i++)
        free(secrets[i]);
    nsecrets = 0;
    curl_global_cleanup();
    return 0;
}

int it_test_setup(void **state)
{
    (void)state;
    /* Note the tokens Houston received in the last test before the reset forgets them. */
    if (the_env.houston.pid > 0)
        json_decref(it_houston_received(&the_env));
    return it_peers_reset(&the_env);
}

/* ---- the browser ---- */

struct it_client *it_client_new(const struct it_env *e)
{
    struct it_client *c = calloc(1, sizeof(*c));
    const int ports[] = {e->sidecar_port, e->spare_ports[0], e->spare_ports[1], e->spare_ports[2]};
    if (c == NULL)
        return NULL;
    c->env = e;
    c->h = curl_easy_init();
    if (c->h == NULL) {
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line), "%s:%d:127.0.0.1", IT_SIDECAR_HOST, ports[i]);
        c->resolve = curl_slist_append(c->resolve, line);
    }
    c->resolve = curl_slist_append(c->resolve, IT_APP_HOST ":443:127.0.0.1");
    curl_easy_setopt(c->h, CURLOPT_COOKIEFILE, "");
    curl_easy_setopt(c->h, CURLOPT_RESOLVE, c->resolve);
    curl_easy_setopt(c->h, CURLOPT_CAINFO, e->ca_file);
    curl_easy_setopt(c->h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c->h, CURLOPT_USERAGENT, "houston-auth-it/1 (browser)");
    return c;
}

void it_client_free(struct it_client *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->h);
    curl_slist_free_all(c->resolve);
    free(c);
}

void it_resp_cleanup(struct it_resp *r)
{
    free(r->url);
    free(r->location);
    free(r->body);
    for (size_t i = 0; i < r->nheaders; i++)
        free(r->headers[i]);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct it_resp *r = ud;
    size_t len = sz * n;
    char *nb;
    if (r->body_len + len > IT_MAX_BODY)
        return 0;
    nb = realloc(r->body, r->body_len + len + 1);
    if (nb == NULL)
        return 0;
    memcpy(nb + r->body_len, p, len);
    r->body = nb;
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct it_resp *r = ud;
    size_t len = sz * n, l = len;
    while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == '\n'))
        l--;
    if (l >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        for (size_t i = 0; i < r->nheaders; i++)
            free(r->headers[i]);
        r->nheaders = 0;
        return len;
    }
    if (l == 0 || r->nheaders >= IT_MAX_HEADERS)
        return len;
    if (r->headers == NULL)
        r->headers = calloc(IT_MAX_HEADERS, sizeof(char *));
    if (r->headers == NULL)
        return 0;
    r->headers[r->nheaders] = strndup(p, l);
    if (r->headers[r->nheaders] != NULL)
        r->nheaders++;
    return len;
}

int it_request(struct it_client *c, const char *method, const char *url, const char *ctype,
               const char *body, struct it_resp *r)
{
    return it_request_headers(c, method, url, ctype, body, NULL, r);
}

int it_request_headers(struct it_client *c, const char *method, const char *url, const char *ctype,
                       const char *body, const char *const *headers, struct it_resp *r)
{
    struct curl_slist *hdrs = NULL;
    char ct[256];
    long t0 = now_ms();
    const char *loc;
    memset(r, 0, sizeof(*r));
    r->url = strdup(url);
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    if (body != NULL) {
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype != NULL ? ctype : "text/plain");
        hdrs = curl_slist_append(hdrs, ct);
    }
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        hdrs = curl_slist_append(hdrs, headers[i]);
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") == 0 ? NULL : method);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->h, CURLOPT_HEADERDATA, r);
    r->curl_code = (int)curl_easy_perform(c->h);
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(hdrs);
    r->seconds = (double)(now_ms() - t0) / 1000.0;
    loc = it_resp_header(r, "Location");
    r->location = loc != NULL ? strdup(loc) : NULL;
    if (r->body == NULL)
        r->body = calloc(1, 1);
    return r->curl_code == CURLE_OK ? 0 : -1;
}

int it_get(struct it_client *c, const char *url, struct it_resp *r)
{
    return it_request(c, "GET", url, NULL, NULL, r);
}

const char *it_resp_header(const struct it_resp *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *h = r->headers[i];
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            h += n + 1;
            while (*h == ' ' || *h == '\t')
                h++;
            return h;
        }
    }
    return NULL;
}

const char *it_resp_set_cookie(const struct it_resp *r, const char *prefix, size_t n)
{
    size_t seen = 0, plen = strlen(prefix);
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *h = r->headers[i];
        if (strncasecmp(h, "Set-Cookie:", 11) != 0)
            continue;
        h += 11;
        while (*h == ' ')
            h++;
        if (strncmp(h, prefix, plen) == 0 && seen++ == n)
            return h;
    }
    return NULL;
}

size_t it_resp_set_cookie_count(const struct it_resp *r, const char *prefix)
{
    size_t n = 0;
    while (it_resp_set_cookie(r, prefix, n) != NULL)
        n++;
    return n;
}

bool it_set_cookie_attr(const char *line, const char *attr, char **out)
{
    const char *p = strchr(line, ';');
    size_t alen = strlen(attr);
    while (p != NULL) {
        const char *end;
        p++;
        while (*p == ' ')
            p++;
        end = strchr(p, ';');
        if (end == NULL)
            end = p + strlen(p);
        if (strncasecmp(p, attr, alen) == 0 && (p[alen] == '=' || p + alen == end)) {
            const char *v = p[alen] == '=' ? p + alen + 1 : p + alen;
            *out = strndup(v, (size_t)(end - v));
            return true;
        }
        p = *end != '\0' ? end : NULL;
    }
    return false;
}

/* ---- the cookie jar ---- */

/* Parses one CURLINFO_COOKIELIST line (Netscape format). */
static bool parse_jar_line(const char *line, struct it_cookie *ck)
{
    char *copy = strdup(line), *f[7], *p, *tab;
    size_t n = 0;
    bool ok = false;
    memset(ck, 0, sizeof(*ck));
    if (copy == NULL)
        return false;
    p = copy;
    if (strncmp(p, "#HttpOnly_", 10) == 0) {
        ck->httponly = true;
        p += 10;
    }
    while (n < 7) {
        f[n++] = p;
        tab = strchr(p, '\t');
        if (tab == NULL)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    if (n == 7) {
        snprintf(ck->domain, sizeof(ck->domain), "%s", f[0]);
        ck->tailmatch = strcmp(f[1], "TRUE") == 0;
        snprintf(ck->path, sizeof(ck->path), "%s", f[2]);
        ck->secure = strcmp(f[3], "TRUE") == 0;
        ck->expires = strtoll(f[4], NULL, 10);
        snprintf(ck->name, sizeof(ck->name), "%s", f[5]);
        ck->value = strdup(f[6]);
        ok = ck->value != NULL;
    }
    free(copy);
    return ok;
}

static bool live(const struct it_cookie *ck)
{
    return ck->expires == 0 || ck->expires > (long long)time(NULL);
}

void it_cookie_cleanup(struct it_cookie *ck)
{
    free(ck->value);
    ck->value = NULL;
}

bool it_cookie_get(struct it_client *c, const char *name, bool prefix, struct it_cookie *out)
{
    struct curl_slist *list = NULL, *l;
    bool found = false;
    curl_easy_getinfo(c->h, CURLINFO_COOKIELIST, &list);
    for (l = list; l != NULL && !found; l = l->next) {
        struct it_cookie ck;
        if (!parse_jar_line(l->data, &ck))
            continue;
        found = live(&ck) && (prefix ? starts_with(ck.name, name) : strcmp(ck.name, name) == 0);
        if (found)
            *out = ck;
        else
            it_cookie_cleanup(&ck);
    }
    curl_slist_free_all(list);
    return found;
}

size_t it_cookie_count(struct it_client *c, const char *prefix)
{
    struct curl_slist *list = NULL, *l;
    size_t n = 0;
    curl_easy_getinfo(c->h, CURLINFO_COOKIELIST, &list);
    for (l = list; l != NULL; l = l->next) {
        struct it_cookie ck;
        if (!parse_jar_line(l->data, &ck))
            continue;
        if (live(&ck) && starts_with(ck.name, prefix))
            n++;
        it_cookie_cleanup(&ck);
    }
    curl_slist_free_all(list);
    return n;
}

static char *jar_line(const struct it_cookie *ck, const char *value)
{
    return it_fmt("%s%s\t%s\t%s\t%s\t%lld\t%s\t%s", ck->httponly ? "#HttpOnly_" : "", ck->domain,
                  ck->tailmatch ? "TRUE" : "FALSE", ck->path, ck->secure ? "TRUE" : "FALSE",
                  ck->expires, ck->name, value);
}

int it_cookie_put(struct it_client *c, const struct it_cookie *ck)
{
    char *line = jar_line(ck, ck->value);
    if (line == NULL)
        return -1;
    curl_easy_setopt(c->h, CURLOPT_COOKIELIST, line);
    free(line);
    return 0;
}

/* Rewrites the jar: every cookie kept as it was but the one named name. */
int it_cookie_set_value(struct it_client *c, const char *name, const char *value)
{
    struct curl_slist *list = NULL, *l;
    int rc = -1;
    curl_easy_getinfo(c->h, CURLINFO_COOKIELIST, &list);
    curl_easy_setopt(c->h, CURLOPT_COOKIELIST, "ALL");
    for (l = list; l != NULL; l = l->next) {
        struct it_cookie ck;
        char *line = NULL;
        if (!parse_jar_line(l->data, &ck))
            continue;
        if (strcmp(ck.name, name) != 0)
            line = strdup(l->data);
        else if (value != NULL)
            line = jar_line(&ck, value);
        if (strcmp(ck.name, name) == 0)
            rc = 0;
        if (line != NULL)
            curl_easy_setopt(c->h, CURLOPT_COOKIELIST, line);
        free(line);
        it_cookie_cleanup(&ck);
    }
    curl_slist_free_all(list);
    return rc;
}

/* ---- URLs ---- */

int it_url_query(const char *url, struct ha_kvlist *out)
{
    const char *q = strchr(url, '?');
    size_t len;
    memset(out, 0, sizeof(*out));
    if (q == NULL)
        return 0;
    q++;
    len = strcspn(q, "#");
    return ha_url_parse_query(q, len, out) == HA_OK ? 0 : -1;
}

char *it_url_rebase(const char *url, const char *from, const char *base)
{
    if (base == NULL || !starts_with(url, from))
        return strdup(url);
    return it_fmt("%s%s", base, url + strlen(from));
}

/* ---- the login ---- */

/* Notes every secret the browser saw: transaction cookies, the code, Houston's session. */
void it_note_login(const struct it_login *l)
{
    const struct it_resp *hops[] = {&l->start, &l->authorize, &l->redirect};
    for (size_t i = 0; i < 3; i++) {
        const char *sc;
        for (size_t n = 0; (sc = it_resp_set_cookie(hops[i], "", n)) != NULL; n++) {
            const char *eq = strchr(sc, '=');
            char *v = eq != NULL ? strndup(eq + 1, strcspn(eq + 1, ";")) : NULL;
            it_note_secret(v);
            free(v);
        }
    }
    if (l->authorize.location != NULL) {
        struct ha_kvlist q;
        if (it_url_query(l->authorize.location, &q) == 0) {
            it_note_secret(ha_kvlist_get(&q, "code"));
            ha_kvlist_cleanup(&q);
        }
    }
}

void it_login_cleanup(struct it_login *l)
{
    it_resp_cleanup(&l->start);
    it_resp_cleanup(&l->authorize);
    it_resp_cleanup(&l->redirect);
    l->hops = 0;
}

int it_login_at(struct it_client *c, const char *base, const char *start_query, const char *email,
                struct it_login *l)
{
    char *hint = NULL, *url = NULL, *next = NULL;
    int rc = -1;
    memset(l, 0, sizeof(*l));
    if (ha_url_encode(email, strlen(email), &hint) != HA_OK)
        return -1;
    url = it_fmt("%s/v1/oauth/start?%s%slogin_hint=%s", base, start_query,
                 start_query[0] != '\0' ? "&" : "", hint);
    if (url == NULL || it_get(c, url, &l->start) != 0)
        goto out;
    l->hops = 1;
    if (l->start.status != 302 || !starts_with(l->start.location, c->env->tenant_url))
        goto out;
    if (it_get(c, l->start.location, &l->authorize) != 0)
        goto out;
    l->hops = 2;
    if (l->authorize.status != 302 || l->authorize.location == NULL)
        goto out;
    next = it_url_rebase(l->authorize.location, c->env->sidecar_url, base);
    if (next == NULL || it_get(c, next, &l->redirect) != 0)
        goto out;
    l->hops = 3;
    rc = 0;
out:
    it_note_login(l);
    free(hint);
    free(url);
    free(next);
    return rc;
}

int it_login(struct it_client *c, const char *start_query, const char *email, struct it_login *l)
{
    return it_login_at(c, c->env->sidecar_url, start_query, email, l);
}

/* ---- peers' test controls ---- */

static long peer_request(const struct it_env *e, const char *url, const char *json, char **body)
{
    struct it_client c = {0};
    struct it_resp r;
    long status = -1;
    c.env = e;
    c.h = curl_easy_init();
    if (c.h == NULL)
        return -1;
    curl_easy_setopt(c.h, CURLOPT_CAINFO, e->ca_file);
    curl_easy_setopt(c.h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c.h, CURLOPT_TIMEOUT_MS, 10000L);
    if (it_request(&c, json != NULL ? "POST" : "GET", url, "application/json", json, &r) == 0)
        status = r.status;
    if (body != NULL) {
        *body = r.body;
        r.body = NULL;
    }
    it_resp_cleanup(&r);
    curl_easy_cleanup(c.h);
    return status;
}

long it_tenant_post(const struct it_env *e, const char *path, const char *json)
{
    char *url = it_fmt("%s%s", e->tenant_url, path);
    long st = peer_request(e, url, json != NULL ? json : "{}", NULL);
    free(url);
    return st;
}

long it_houston_post(const struct it_env *e, const char *path, const char *json)
{
    char *url = it_fmt("%s%s", e->houston_url, path);
    long st = peer_request(e, url, json != NULL ? json : "{}", NULL);
    free(url);
    return st;
}

static json_t *get_json(const struct it_env *e, const char *base, const char *path)
{
    char *url = it_fmt("%s%s", base, path), *body = NULL;
    json_t *j = NULL;
    if (peer_request(e, url, NULL, &body) == 200 && body != NULL)
        j = json_loads(body, 0, NULL);
    free(url);
    free(body);
    return j;
}

json_t *it_tenant_get_json(const struct it_env *e, const char *path)
{
    return get_json(e, e->tenant_url, path);
}

json_t *it_houston_get_json(const struct it_env *e, const char *path)
{
    return get_json(e, e->houston_url, path);
}

long it_tenant_fault(const struct it_env *e, const char *faults)
{
    return it_tenant_post(e, TEST_FAULT_PATH, faults);
}

long it_houston_fault(const struct it_env *e, const char *faults)
{
    return it_houston_post(e, TEST_FAULT_PATH, faults);
}

int it_peers_reset(const struct it_env *e)
{
    int rc = 0;
    if (e->tenant.pid > 0 && it_tenant_post(e, TEST_RESET_PATH, "{}") != 200)
        rc = -1;
    if (e->houston.pid > 0 && it_houston_post(e, TEST_RESET_PATH, "{}") != 200)
        rc = -1;
    if (rc != 0)
        fprintf(stderr, "harness: resetting the peers' faults failed\n");
    return rc;
}

/* Notes the tokens of every callback Houston received. */
static void note_received(json_t *list)
{
    size_t i;
    json_t *cb;
    json_array_foreach(list, i, cb)
    {
        it_note_secret(it_received_field(cb, "id_token"));
        it_note_secret(it_received_field(cb, "access_token"));
    }
}

json_t *it_houston_received(const struct it_env *e)
{
    json_t *j = it_houston_get_json(e, TEST_RECEIVED_PATH);
    if (j != NULL && !json_is_array(j)) {
        json_t *a = json_object_get(j, "received");
        json_incref(a);
        json_decref(j);
        j = json_is_array(a) ? a : NULL;
        if (j == NULL)
            json_decref(a);
    }
    if (j != NULL)
        note_received(j);
    return j;
}

long it_houston_received_count(const struct it_env *e)
{
    json_t *j = it_houston_received(e);
    long n = j != NULL ? (long)json_array_size(j) : -1;
    json_decref(j);
    return n;
}

const char *it_received_field(json_t *callback, const char *name)
{
    json_t *form = json_object_get(callback, "form");
    json_t *v = json_object_get(form != NULL ? form : callback, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- secrets and logs ---- */

void it_note_secret(const char *s)
{
    bool known = false;
    if (s == NULL || strlen(s) < 8)
        return;
    pthread_mutex_lock(&secrets_lock);
    for (size_t i = 0; i < nsecrets && !known; i++)
        known = strcmp(secrets[i], s) == 0;
    if (!known && nsecrets < IT_MAX_SECRETS) {
        secrets[nsecrets] = strdup(s);
        if (secrets[nsecrets] != NULL)
            nsecrets++;
    }
    pthread_mutex_unlock(&secrets_lock);
}

static bool contains(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n > 0 && i + n <= len; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
            return true;
    }
    return false;
}

const char *it_log_leak(const struct it_env *e, const char *path)
{
    static char what[128];
    size_t len = 0;
    char *text = it_read_file(path, &len);
    const char *leak = NULL;
    if (text == NULL)
        return "the log could not be read";
    if (contains(text, len, e->client_secret))
        leak = "the client secret";
    else if (contains(text, len, e->cookie_secret))
        leak = "the cookie secret";
    for (size_t i = 0; leak == NULL && i < nsecrets; i++) {
        if (contains(text, len, secrets[i])) {
            snprintf(what, sizeof(what), "noted secret #%zu (%zu chars, starts %.6s)", i,
                     strlen(secrets[i]), secrets[i]);
            leak = what;
        }
    }
    free(text);
    return leak;
}

size_t it_noted_count(void)
{
    return nsecrets;
}

bool it_log_check_works(const struct it_env *e)
{
    char path[512];
    FILE *f;
    bool ok;
    if (nsecrets == 0)
        return false;
    snprintf(path, sizeof(path), "%s/leak-probe.log", e->dir);
    f = fopen(path, "w");
    if (f == NULL)
        return false;
    fprintf(f, "{\"event\":\"x\",\"v\":\"%s\"}\n", secrets[nsecrets / 2]);
    fclose(f);
    ok = it_log_leak(e, path) != NULL;
    remove(path);
    return ok;
}

/* ---- assertions ---- */

void it_test_processes_exit_clean(void **state)
{
    const char *bad = it_stop_all_checked(it_env());
    (void)state;
    if (bad != NULL)
        fail_msg("%s", bad);
}

void it_expect_logs_clean(struct it_env *e, const char *const *logs, size_t n, size_t min_noted)
{
    json_decref(it_houston_received(e)); /* notes the tokens Houston received */
    /* The check must have something to look for, and must be able to find it. */
    assert_true(it_noted_count() >= min_noted);
    assert_true(it_log_check_works(e));
    for (size_t i = 0; i < n; i++) {
        char path[512];
        const char *leak;
        snprintf(path, sizeof(path), "%s/%s", e->dir, logs[i]);
        if (access(path, R_OK) != 0)
            continue; /* that sidecar never started: its own test failed and says why */
        leak = it_log_leak(e, path);
        if (leak != NULL)
            fail_msg("%s holds %s", logs[i], leak);
    }
}

void it_expect_login_error(struct it_client *c, const struct it_resp *r, const char *code,
                           long houston_before)
{
    struct it_cookie ck;
    char want[256];
    snprintf(want, sizeof(want), "%s%s", IT_LOGIN_ERROR_PREFIX, code);
    assert_int_equal(r->curl_code, CURLE_OK);
    assert_int_equal(r->status, 302);
    assert_non_null(r->location);
    assert_string_equal(r->location, want);
    assert_null(it_resp_set_cookie(r, IT_AUTH_COOKIE "=", 0));
    if (it_resp_header(r, "Cache-Control") == NULL ||
        strstr(it_resp_header(r, "Cache-Control"), "no-store") == NULL)
        fail_msg("a login error answer without Cache-Control: no-store");
    if (it_cookie_get(c, IT_AUTH_COOKIE, false, &ck)) {
        it_cookie_cleanup(&ck);
        fail_msg("a Houston session cookie is in the jar after a failed login");
    }
    if (houston_before >= 0)
        assert_int_equal(it_houston_received_count(c->env), houston_before);
}

void it_expect_prefix(const char *s, const char *prefix)
{
    if (s == NULL)
        fail_msg("expected a value starting with %s, got none", prefix);
    if (!starts_with(s, prefix))
        fail_msg("expected %s... got %s", prefix, s);
}

/* ---- Hostile clients, plain-HTTP sidecars, process memory (appended; see harness.h) ----
 *
 * Raw sockets speak HTTP/1.1 by hand so a test can send what no well-behaved client would:
 * an unfinished request line, a trickle, a body that never comes. Every read and write is
 * bounded by a socket timeout and every loop by a deadline. */
#include <sys/resource.h>

int it_sidecar_start_plain(struct it_env *e, struct it_proc *p, int port, const char *logname,
                           const char *const *extra, bool wait_ready)
{
    struct strv argv, env;
    char *log = it_fmt("%s/%s", e->dir, logname);
    char *url = it_fmt("http://127.0.0.1:%d%s", port, wait_ready ? "/readyz" : "/healthz");
    int rc;
    sidecar_env(e, port, extra, &env);
    strv_setenv(&env, "AUTH_SIDECAR_TLS_CERT_FILE");
    strv_setenv(&env, "AUTH_SIDECAR_TLS_KEY_FILE");
    argv.n = 0;
    strv_push(&argv, it_fmt("%s/houston-auth", HA_BIN_DIR));
    rc = spawn(p, "houston-auth-plain", argv.v, env.v, log);
    if (rc == 0)
        rc = wait_proc(e, p, url, 200);
    free(url);
    free(log);
    strv_free(&argv);
    strv_free(&env);
    return rc;
}

long it_now_ms(void)
{
    return now_ms();
}

int it_raw_connect(int port, long timeout_ms)
{
    struct sockaddr_in a = {0};
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int it_raw_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Whether text (len bytes) holds a whole answer: the head and its Content-Length body. */
static bool answer_complete(const char *text, size_t len)
{
    const char *end = strstr(text, "\r\n\r\n"), *cl;
    size_t head, want = 0;
    if (end == NULL)
        return false;
    head = (size_t)(end - text) + 4;
    for (cl = text; cl != NULL && cl < end; cl = strchr(cl + 1, '\n')) {
        if (strncasecmp(cl + 1, "Content-Length:", 15) == 0) {
            want = strtoul(cl + 16, NULL, 10);
            break;
        }
    }
    return len >= head + want;
}

size_t it_raw_read(int fd, char *out, size_t cap, long deadline_ms)
{
    long deadline = now_ms() + deadline_ms;
    size_t len = 0;
    out[0] = '\0';
    while (len + 1 < cap && now_ms() < deadline) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t n;
        if (poll(&pfd, 1, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0)) <= 0)
            break;
        n = recv(fd, out + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        out[len] = '\0';
        if (answer_complete(out, len))
            break;
    }
    return len;
}

int it_http_status(const char *text)
{
    if (text == NULL || strncmp(text, "HTTP/1.", 7) != 0 || strlen(text) < 12 || text[8] != ' ')
        return 0;
    return (int)strtol(text + 9, NULL, 10);
}

int it_raw_exchange(int port, const char *request, size_t len, char *out, size_t cap,
                    long deadline_ms)
{
    char local[4096];
    char *buf = out != NULL ? out : local;
    size_t bcap = out != NULL ? cap : sizeof(local);
    int fd = it_raw_connect(port, deadline_ms), status = 0;
    if (fd < 0)
        return 0;
    buf[0] = '\0';
    /* A refusal may come before everything was written: read whatever answer there is. */
    (void)it_raw_send(fd, request, len);
    if (it_raw_read(fd, buf, bcap, deadline_ms) > 0)
        status = it_http_status(buf);
    close(fd);
    return status;
}

bool it_raw_closed_by_peer(int fd, long deadline_ms)
{
    long deadline = now_ms() + deadline_ms;
    char sink[4096];
    while (now_ms() < deadline) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t n;
        int r = poll(&pfd, 1, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0));
        if (r < 0)
            return false;
        if (r == 0)
            continue;
        n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return true;
    }
    return false;
}

long it_proc_status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t flen = strlen(field);
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (kb < 0 && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            kb = strtol(line + flen + 1, NULL, 10);
    }
    fclose(f);
    return kb;
}

long it_raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if ((long)rl.rlim_cur < want) {
        rl.rlim_cur =
            rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max > want ? (rlim_t)want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -1;
    }
    return (long)rl.rlim_cur;
}

/* ---- The Houston stand-in's authorization controls (appended; see harness.h) ---- */

json_t *it_houston_post_json(const struct it_env *e, const char *path, const char *json)
{
    char *url = it_fmt("%s%s", e->houston_url, path), *body = NULL;
    json_t *j = NULL;
    if (url != NULL && peer_request(e, url, json != NULL ? json : "{}", &body) == 200 &&
        body != NULL)
        j = json_loads(body, 0, NULL);
    free(url);
    free(body);
    return j;
}

/* The same command line as it_houston_start, plus extra. */
int it_houston_start_args(struct it_env *e, const char *const *extra)
{
    struct strv argv, env;
    char *log = it_fmt("%s/houston.log", e->dir), *url;
    int rc;
    base_env(&env);
    argv.n = 0;
    strv_push(&argv, it_fmt("%s/tools/houston-standin", HA_BIN_DIR));
    strv_push(&argv, it_fmt("--listen"));
    strv_push(&argv, it_fmt("127.0.0.1:%d", e->houston_port));
    strv_push(&argv, it_fmt("--base-domain"));
    strv_push(&argv, it_fmt("%s", IT_BASE_DOMAIN));
    strv_push(&argv, it_fmt("--app-url"));
    strv_push(&argv, it_fmt("%s", IT_APP_URL));
    /* Houston 0.9's own token checks (kid in the tenant's JWKS, exp, iss, aud; never the
     * signature), so every login here also passes what the real Houston looks at. */
    strv_push(&argv, it_fmt("--auth0-base-domain"));
    strv_push(&argv, it_fmt("localhost:%d", e->tenant_port));
    strv_push(&argv, it_fmt("--client-id"));
    strv_push(&argv, it_fmt("%s", IT_CLIENT_ID));
    strv_push(&argv, it_fmt("--tenant-ca"));
    strv_push(&argv, it_fmt("%s/ca.pem", e->tenant_dir));
    strv_push(&argv, it_fmt("--test-controls"));
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        strv_push(&argv, strdup(extra[i]));
    rc = spawn(&e->houston, "houston-standin", argv.v, env.v, log);
    url = it_fmt("%s/v1/healthz", e->houston_url);
    if (rc == 0)
        rc = wait_proc(e, &e->houston, url, 200);
    free(url);
    free(log);
    strv_free(&argv);
    strv_free(&env);
    return rc;
}

int it_group_setup_houston_state(void **state, char *state_dir, size_t len)
{
    struct it_env *e = it_env();
    const char *const extra[] = {"--state-dir", state_dir, NULL};
    if (it_group_setup_bare(state) != 0)
        return -1;
    snprintf(state_dir, len, "%s/houston-state", e->dir);
    if (it_tenant_start(e) != 0 || it_houston_start_args(e, extra) != 0)
        return -1;
    return it_sidecar_start(e, &e->sidecar, e->sidecar_port, "sidecar.log", NULL, true);
}

void it_houston_grant(const char *email, const char *members)
{
    char *body = it_fmt("{\"email\":\"%s\"%s%s}", email, members[0] != '\0' ? "," : "", members);
    json_t *j = it_houston_post_json(it_env(), "/__test/permissions", body);
    if (j == NULL)
        fail_msg("POST /__test/permissions %s refused", body);
    json_decref(j);
    free(body);
}

char *it_houston_session(const char *email, long expires_in)
{
    char *body = it_fmt("{\"email\":\"%s\",\"expires_in\":%ld}", email, expires_in);
    json_t *j = it_houston_post_json(it_env(), "/__test/session", body);
    const char *tok = json_string_value(json_object_get(j, "token"));
    char *out = tok != NULL ? strdup(tok) : NULL;
    assert_non_null(out);
    assert_string_equal(json_string_value(json_object_get(j, "cookie_name")), IT_AUTH_COOKIE);
    json_decref(j);
    free(body);
    return out;
}

char *it_sha256_hex(const char *s)
{
    unsigned char md[32];
    char *out = calloc(1, 65);
    assert_non_null(out);
    EVP_Digest(s, strlen(s), md, NULL, EVP_sha256(), NULL);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return out;
}

long it_houston_key_count(const char *digest, const char *host)
{
    json_t *list = it_houston_get_json(it_env(), "/__test/authz/calls"), *rec;
    json_t *want = digest != NULL ? json_string(digest) : json_null();
    long n = 0;
    size_t i;
    assert_true(json_is_array(list));
    json_array_foreach(list, i, rec)
    {
        const char *h = json_string_value(json_object_get(rec, "host"));
        if (json_equal(json_object_get(rec, "credential"), want) && h != NULL &&
            strcmp(h, host) == 0)
            n += (long)json_integer_value(json_object_get(rec, "count"));
    }
    json_decref(want);
    json_decref(list);
    return n;
}
