/* Integration harness: the sidecar, the dev tenant and the Houston stand-in as real
 * processes on loopback, and a browser-like libcurl client that follows no redirect on its
 * own so a test can assert every hop (status, Location, Set-Cookie).
 *
 * One environment per test binary: a cmocka group setup starts the processes once
 * (it_group_setup), a per-test setup resets the peers' faults (it_test_setup), the group
 * teardown stops and reaps every child. Every wait is bounded by a deadline. The temp dir
 * (logs: tenant.log, houston.log, sidecar.log, ...) is removed at teardown unless
 * HA_IT_KEEP=1. */
#ifndef HA_IT_HARNESS_H
#define HA_IT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <curl/curl.h>
#include <jansson.h>
#include "houston_auth/url.h"

#define IT_BASE_DOMAIN "astro.example.com"
#define IT_SIDECAR_HOST "houston.astro.example.com"
#define IT_APP_HOST "app.astro.example.com"
#define IT_APP_URL "https://app.astro.example.com"
#define IT_LOGIN_ERROR_PREFIX "https://app.astro.example.com/login?error="
#define IT_CLIENT_ID "houston-auth-test"
#define IT_AUDIENCE "astronomer-ee"
#define IT_AUTH_COOKIE "astronomer_astro_example_com_auth"
#define IT_TXN_PREFIX "__Host-ha_txn_"
#define IT_SPARE_PORTS 3
#define IT_MAX_SECRETS 4096

struct it_proc {
    pid_t pid; /* 0: not running */
    char name[32];
    char log[512];
    int exit_code; /* once reaped: the exit status, 128 + signal, or -1 */
};

struct it_env {
    char dir[256];        /* the temp dir */
    char tenant_dir[300]; /* <dir>/tenant: the tenant's state, CA and TLS files */
    char ca_file[320];
    char tls_cert[320];
    char tls_key[320];
    int tenant_port, houston_port, sidecar_port;
    int spare_ports[IT_SPARE_PORTS]; /* for extra sidecars; the client resolves them too */
    char client_secret[41];
    char cookie_secret[49];
    char sidecar_url[128]; /* https://houston.astro.example.com:PS */
    char tenant_url[128];  /* https://localhost:PT */
    char houston_url[128]; /* http://127.0.0.1:PH */
    struct it_proc tenant, houston, sidecar;
    struct it_proc spare[IT_SPARE_PORTS]; /* extra sidecars a test starts; stopped at teardown */
};

/* The one environment of this test binary. */
struct it_env *it_env(void);

/* cmocka group setup/teardown: temp dir, ports, secrets, then tenant + stand-in + sidecar
 * (it_group_setup) or nothing started (it_group_setup_bare). */
int it_group_setup(void **state);
int it_group_setup_bare(void **state);
int it_group_teardown(void **state);
/* cmocka per-test setup: clears both peers' faults. */
int it_test_setup(void **state);

/* Processes. Each start waits (bounded) until the process answers; 0 on success. */
int it_tenant_start(struct it_env *e);
int it_houston_start(struct it_env *e);
/* Starts a sidecar on port with the standard environment plus extra ("K=V", NULL-ended,
 * later entries win); waits for /readyz 200 when wait_ready, else for /healthz 200. */
int it_sidecar_start(struct it_env *e, struct it_proc *p, int port, const char *logname,
                     const char *const *extra, bool wait_ready);
/* (Re)starts spare sidecar slot with the standard environment plus extra, waits for /readyz,
 * and writes its origin into base. Asserts on failure. */
void it_spare_start(int slot, const char *logname, const char *const *extra, char *base,
                    size_t len);
/* Runs the sidecar binary with args and the standard environment plus extra, waits for it
 * (deadline), returns its exit status (-1 on a timeout or a signal, -2 on a sanitizer
 * report) and its stdout+stderr in *out. */
int it_sidecar_run(const struct it_env *e, const char *const *args, const char *const *extra,
                   char **out);
/* The transaction-cookie key the sidecar derives from this environment's cookie secret,
 * through the sidecar's own configuration loader. */
int it_cookie_key(const struct it_env *e, unsigned char key[32]);
/* SIGTERM, then SIGKILL after a deadline; reaps. No-op when not running. */
void it_proc_stop(struct it_proc *p);
bool it_proc_alive(struct it_proc *p);
/* Stops every process with SIGTERM and checks each ended cleanly: exit status 0 and no
 * sanitizer report in any log. NULL when clean, else a static description. */
const char *it_stop_all_checked(struct it_env *e);
/* Polls url (GET, trusting the tenant CA) until it answers want_status or deadline_ms. */
int it_wait_status(const struct it_env *e, const char *url, long want_status, long deadline_ms);
/* Builds "https://houston.astro.example.com:<port>". */
void it_sidecar_base(int port, char *out, size_t len);

/* A response as the browser saw it. */
struct it_resp {
    long status;
    char *url;
    char *location;
    char *body;
    size_t body_len;
    char **headers; /* "Name: value", in order */
    size_t nheaders;
    double seconds;
    int curl_code; /* CURLE_OK or the transfer error */
};
void it_resp_cleanup(struct it_resp *r);
/* First header value by case-insensitive name (borrowed), or NULL. */
const char *it_resp_header(const struct it_resp *r, const char *name);
/* The n-th Set-Cookie line whose cookie name starts with prefix (borrowed), or NULL. */
const char *it_resp_set_cookie(const struct it_resp *r, const char *prefix, size_t n);
size_t it_resp_set_cookie_count(const struct it_resp *r, const char *prefix);
/* The value of attribute attr in a Set-Cookie line (case-insensitive); "" for a flag
 * attribute; NULL when absent. *out caller frees. */
bool it_set_cookie_attr(const char *line, const char *attr, char **out);

/* A browser: its own cookie jar, no automatic redirects. */
struct it_client {
    CURL *h;
    struct curl_slist *resolve;
    const struct it_env *env;
};
struct it_client *it_client_new(const struct it_env *e);
void it_client_free(struct it_client *c);
int it_get(struct it_client *c, const char *url, struct it_resp *r);
int it_request(struct it_client *c, const char *method, const char *url, const char *ctype,
               const char *body, struct it_resp *r);
/* it_request with extra request headers ("Name: value", NULL-ended). */
int it_request_headers(struct it_client *c, const char *method, const char *url, const char *ctype,
                       const char *body, const char *const *headers, struct it_resp *r);

struct it_cookie {
    char domain[256]; /* as the jar holds it: ".astro.example.com" when tail-matching */
    char path[256];
    char name[256];
    char *value;
    bool tailmatch, secure, httponly;
    long long expires; /* 0: session cookie */
};
/* The live (unexpired) cookie named name, or with prefix when prefix is true. */
bool it_cookie_get(struct it_client *c, const char *name, bool prefix, struct it_cookie *out);
void it_cookie_cleanup(struct it_cookie *ck);
size_t it_cookie_count(struct it_client *c, const char *prefix);
/* Replaces a cookie's value (NULL: removes it) in the jar, keeping its attributes. */
int it_cookie_set_value(struct it_client *c, const char *name, const char *value);
/* Puts ck back into the jar. */
int it_cookie_put(struct it_client *c, const struct it_cookie *ck);

/* The query of url (after '?', before '#') parsed with ha_url_parse_query. */
int it_url_query(const char *url, struct ha_kvlist *out);
/* strdup of url with its origin replaced by base when it starts with from. */
char *it_url_rebase(const char *url, const char *from, const char *base);

/* Every hop of a login. */
struct it_login {
    struct it_resp start;     /* sidecar /v1/oauth/start */
    struct it_resp authorize; /* tenant /authorize */
    struct it_resp redirect;  /* sidecar /v1/oauth/redirect */
    int hops;                 /* how many were made */
};
/* GET <sidecar>/v1/oauth/start?<start_query>&login_hint=<email>, the tenant's authorize, and
 * the redirect back. it_login_at uses the sidecar at base and rewrites the tenant's redirect
 * to it (as an ingress would route). 0 when all three hops were made. */
int it_login(struct it_client *c, const char *start_query, const char *email, struct it_login *l);
int it_login_at(struct it_client *c, const char *base, const char *start_query, const char *email,
                struct it_login *l);
void it_login_cleanup(struct it_login *l);

/* Peers' test controls. POST returns the HTTP status (or -1). */
long it_tenant_post(const struct it_env *e, const char *path, const char *json);
long it_houston_post(const struct it_env *e, const char *path, const char *json);
json_t *it_tenant_get_json(const struct it_env *e, const char *path);
json_t *it_houston_get_json(const struct it_env *e, const char *path);
/* Sets one fault: the JSON object text faults, e.g. {"token_status":500}. */
long it_tenant_fault(const struct it_env *e, const char *faults);
long it_houston_fault(const struct it_env *e, const char *faults);
int it_peers_reset(const struct it_env *e);
/* The callbacks Houston received so far (a JSON array, newest last; caller decrefs). */
json_t *it_houston_received(const struct it_env *e);
long it_houston_received_count(const struct it_env *e);
/* A received callback's form field (borrowed), or NULL. */
const char *it_received_field(json_t *callback, const char *name);

/* Secrets seen during the tests, for the log check. */
void it_note_secret(const char *s);
/* Notes what the browser saw in a login: transaction cookies, the code, Houston's cookie.
 * it_login does it itself. */
void it_note_login(const struct it_login *l);
/* NULL when none of the noted secrets, nor the client and cookie secrets, occur in the file
 * at path; else a static description of what leaked (not the value). */
const char *it_log_leak(const struct it_env *e, const char *path);
/* How many secrets were noted; whether it_log_leak finds one planted in a probe file. */
size_t it_noted_count(void);
bool it_log_check_works(const struct it_env *e);
/* The whole no-secrets-in-logs check: records what Houston received (noting its tokens),
 * requires at least min_noted noted secrets and a working check, then fails the test if any
 * of the named logs (in the run's directory; ones never written are skipped) holds one. */
void it_expect_logs_clean(struct it_env *e, const char *const *logs, size_t n, size_t min_noted);
/* The last test of every suite: every process stops on SIGTERM with status 0 and left no
 * sanitizer report. */
void it_test_processes_exit_clean(void **state);
/* Reads a whole file (capped at 16 MiB); caller frees. */
char *it_read_file(const char *path, size_t *len);
/* printf into a new string (caller frees); NULL when out of memory. */
char *it_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

/* Asserts that s starts with prefix (and says what s was when it does not). */
void it_expect_prefix(const char *s, const char *prefix);

/* Asserts what a failed login looks like to the browser and to Houston: 302 to
 * <app>/login?error=<code>, no Houston cookie in the jar or in the response, and Houston's
 * received count unchanged from houston_before. */
void it_expect_login_error(struct it_client *c, const struct it_resp *r, const char *code,
                           long houston_before);

/* ---- Hostile clients, plain-HTTP sidecars, process memory (appended for the hostile-input
 * tests: test_hostile_http.c, test_faults.c, test_cookies.c, test_redirects.c). ---- */

/* Starts a sidecar serving plain HTTP (the TLS files removed from its environment, as behind
 * an ingress) on 127.0.0.1:port with the standard environment plus extra; waits for
 * http://127.0.0.1:<port>/readyz (wait_ready) or /healthz to answer 200. */
int it_sidecar_start_plain(struct it_env *e, struct it_proc *p, int port, const char *logname,
                           const char *const *extra, bool wait_ready);
/* Monotonic milliseconds. */
long it_now_ms(void);
/* A blocking TCP connection to 127.0.0.1:port whose reads and writes time out after
 * timeout_ms; the descriptor, or -1. */
int it_raw_connect(int port, long timeout_ms);
/* Writes all of buf (MSG_NOSIGNAL); 0 when everything was written, else -1. */
int it_raw_send(int fd, const void *buf, size_t len);
/* Reads an answer into out (NUL-terminated, at most cap - 1 bytes): stops at the peer's close,
 * once the head and a Content-Length body are complete, when out is full, or at deadline_ms.
 * Returns the bytes read. */
size_t it_raw_read(int fd, char *out, size_t cap, long deadline_ms);
/* The status code of an "HTTP/1.x NNN" answer at the start of text, or 0. */
int it_http_status(const char *text);
/* Sends request on a fresh connection and reads the answer's status (0 when none came
 * within deadline_ms); the answer is copied into out when out is not NULL. */
int it_raw_exchange(int port, const char *request, size_t len, char *out, size_t cap,
                    long deadline_ms);
/* Whether the peer closed fd (EOF or reset) within deadline_ms; data is read and dropped. */
bool it_raw_closed_by_peer(int fd, long deadline_ms);
/* A field of /proc/<pid>/status in KiB ("VmRSS", "VmHWM"), or -1. */
long it_proc_status_kb(pid_t pid, const char *field);
/* Raises RLIMIT_NOFILE's soft limit to at least want (up to the hard limit); the soft
 * limit now in force. Children started afterwards inherit it. */
long it_raise_nofile(long want);

/* ---- The Houston stand-in's authorization controls (appended for test_standin_authz.c). ---- */

/* POSTs json to the stand-in's path; the answer's JSON when it is 200 (caller decrefs), else
 * NULL. */
json_t *it_houston_post_json(const struct it_env *e, const char *path, const char *json);
/* it_houston_start with more arguments after the standard ones (NULL-ended), e.g.
 * {"--state-dir", dir, NULL} so that a stop and a start keep the key and the users. */
int it_houston_start_args(struct it_env *e, const char *const *extra);
/* cmocka group setup as it_group_setup, with the stand-in on a state directory
 * (<dir>/houston-state, written into state_dir) so that a test can stop and start it and keep
 * its signing key and users (it_houston_start_args with {"--state-dir", state_dir}). */
int it_group_setup_houston_state(void **state, char *state_dir, size_t len);
/* Sets a user's grants in the stand-in (POST /__test/permissions): the JSON members after
 * email, e.g. "\"system\":[]". Fails the test when refused. */
void it_houston_grant(const char *email, const char *members);
/* A session JWT for email as the stand-in's callback mints it (expires_in seconds, may be
 * <= 0 for an expired one). Caller frees. */
char *it_houston_session(const char *email, long expires_in);
/* The SHA-256 of s in lower-case hex (the stand-in's credential digests). Caller frees. */
char *it_sha256_hex(const char *s);
/* The /v1/authorization calls the stand-in counted for (credential digest, host); digest NULL:
 * the calls that read no credential. */
long it_houston_key_count(const char *digest, const char *host);

#endif
