/* Integration: hostile HTTP clients against a plain-HTTP sidecar (as deployed behind an
 * ingress), spoken to over raw sockets so the test can send what no well-behaved client
 * would: an unfinished request line or header, a body that never comes, malformed escapes,
 * unknown methods, a trickle, thousands of idle connections.
 *
 * What each test exercises in src/server.c: uri_log/on_headers (414 over HA_MAX_URL, 431 over
 * HA_MAX_COOKIE_HEADER, 413 on a Content-Length over HA_MAX_FORM_BODY before any body is
 * read), the body loop's ha_buf cap (413 for a chunked body), build_request (400 on a query
 * or form that ha_url_parse_query refuses), ha_router_method_ok (405 with Allow), and the MHD
 * options CONNECTION_MEMORY_LIMIT (414/431 from MHD itself once a request line or header
 * outgrows the connection's pool), CONNECTION_TIMEOUT (15 s) and CONNECTION_LIMIT. The
 * sidecar's memory (VmRSS, VmHWM from /proc) is printed before and after and must stay
 * bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "houston_auth/proto.h"
#include "harness.h"

#define QUERY "provider=auth0&integration=self&redirect=/oauth"
#define PLAIN_LOG "sidecar-plain.log"
#define LIMITED_LOG "sidecar-limit16.log"
#define CONN_TIMEOUT_S 15 /* src/server.c CONN_TIMEOUT_S */
#define ANSWER_MS 3000
#define FLOOD 2000
#define NOFILE_WANT (FLOOD * 2 + 512)
#define SLOW_SILENT 20
#define SLOW_TRICKLE 20
#define TRICKLE_EVERY_MS 2000
#define CLOSE_SLACK_S 8
#define LIMITED_CONNECTIONS 16
/* The sidecar's resident memory must stay under this (ASan's shadow memory and quarantine,
 * and TSan's shadow and per-thread state, need far more than the sidecar itself). */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_BOUND_KB (256L * 1024)
#elif defined(__SANITIZE_THREAD__)
#define RSS_BOUND_KB (512L * 1024)
#else
#define RSS_BOUND_KB (64L * 1024)
#endif

static long rss_at_start;

static int plain_port(void)
{
    return it_env()->spare_ports[0];
}

static pid_t plain_pid(void)
{
    return it_env()->spare[0].pid;
}

static void print_memory(const char *when)
{
    print_message("sidecar memory %s: VmRSS %ld KiB, VmHWM %ld KiB\n", when,
                  it_proc_status_kb(plain_pid(), "VmRSS"), it_proc_status_kb(plain_pid(), "VmHWM"));
}

static int setup(void **state)
{
    struct it_env *e = it_env();
    if (it_group_setup(state) != 0)
        return -1;
    if (it_sidecar_start_plain(e, &e->spare[0], e->spare_ports[0], PLAIN_LOG, NULL, true) != 0)
        return -1;
    rss_at_start = it_proc_status_kb(e->spare[0].pid, "VmRSS");
    print_memory("at start");
    return 0;
}

/* ---- raw helpers ---- */

static int exchange(const char *request, char *out, size_t cap)
{
    return it_raw_exchange(plain_port(), request, strlen(request), out, cap, ANSWER_MS);
}

/* GET path on the plain sidecar with Connection: close; the status (0: none). */
static int get_status(const char *path)
{
    char req[8192];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", path);
    return exchange(req, NULL, 0);
}

/* Milliseconds /healthz took to answer 200 on port, or -1. */
static long healthz_ms(int port)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    long t0 = it_now_ms();
    int st = it_raw_exchange(port, req, strlen(req), NULL, 0, 1000);
    return st == 200 ? it_now_ms() - t0 : -1;
}

/* Sends head, then piece (len bytes) again and again up to total bytes, pausing a little
 * before each so that the server has the time to answer, and stopping as soon as it answers
 * or refuses more. Returns the status of the answer; *sent gets the bytes of pieces written. */
static int send_until_answer(const char *head, const char *piece, size_t len, size_t total,
                             size_t *sent)
{
    char answer[4096];
    int fd = it_raw_connect(plain_port(), ANSWER_MS), st = 0;
    assert_true(fd >= 0);
    *sent = 0;
    if (it_raw_send(fd, head, strlen(head)) == 0) {
        while (*sent < total) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, 2) > 0 || it_raw_send(fd, piece, len) != 0)
                break;
            *sent += len;
        }
    }
    if (it_raw_read(fd, answer, sizeof(answer), ANSWER_MS) > 0)
        st = it_http_status(answer);
    close(fd);
    return st;
}

/* 4 KiB of c; with chunked, framed as one HTTP/1.1 chunk. */
static size_t piece_of(char *out, char c, bool chunked)
{
    size_t o = chunked ? (size_t)snprintf(out, 16, "1000\r\n") : 0;
    memset(out + o, c, 4096);
    o += 4096;
    if (chunked) {
        memcpy(out + o, "\r\n", 2);
        o += 2;
    }
    return o;
}

/* ---- size caps ---- */

static void test_request_line_caps(void **state)
{
    char *req = malloc(8192), piece[4200];
    size_t sent = 0, n;
    int st;
    (void)state;
    assert_non_null(req);
    /* Over HA_MAX_URL, whole request: the sidecar's own 414. */
    snprintf(req, 8192, "GET /v1/oauth/start?redirect=/%0*d HTTP/1.1\r\nHost: h\r\n\r\n",
             HA_MAX_URL + 100, 0);
    assert_int_equal(exchange(req, NULL, 0), 414);
    /* Just under it: served (the cap is not lower than documented). */
    snprintf(req, 8192, "/v1/oauth/start?provider=auth0&x=%0*d", HA_MAX_URL - 100, 0);
    st = get_status(req);
    print_message("a %zu-byte request target: %d\n", strlen(req), st);
    assert_int_equal(st, 302);
    /* An endless request line: answered 414 after at most the connection's pool, long before
     * the 1 MiB the client has to send. */
    n = piece_of(piece, 'a', false);
    st = send_until_answer("GET /v1/oauth/start?redirect=/", piece, n, 1024 * 1024, &sent);
    print_message("an unfinished 1 MiB request line: %d after %zu bytes\n", st, sent);
    assert_int_equal(st, 414);
    assert_true(sent < 256 * 1024);
    free(req);
}

static void test_header_caps(void **state)
{
    char *req = malloc(64 * 1024), piece[4200];
    size_t sent = 0, o, n;
    int st;
    (void)state;
    assert_non_null(req);
    /* A Cookie header over HA_MAX_COOKIE_HEADER: 431 from the sidecar. */
    o = (size_t)snprintf(req, 64 * 1024, "GET /healthz HTTP/1.1\r\nHost: h\r\nCookie: a=");
    memset(req + o, 'c', HA_MAX_COOKIE_HEADER);
    o += HA_MAX_COOKIE_HEADER;
    snprintf(req + o, 64 * 1024 - o, "\r\nConnection: close\r\n\r\n");
    assert_int_equal(exchange(req, NULL, 0), 431);
    /* A Cookie header under the cap is served. */
    o = (size_t)snprintf(req, 64 * 1024, "GET /healthz HTTP/1.1\r\nHost: h\r\nCookie: a=");
    memset(req + o, 'c', HA_MAX_COOKIE_HEADER - 100);
    o += HA_MAX_COOKIE_HEADER - 100;
    snprintf(req + o, 64 * 1024 - o, "\r\nConnection: close\r\n\r\n");
    assert_int_equal(exchange(req, NULL, 0), 200);
    /* Every documented cap at once fits the connection's pool: a request target and a Cookie
     * header each just under its cap, and 2 KB of the headers a browser sends. */
    o = (size_t)snprintf(req, 64 * 1024, "GET /v1/oauth/start?provider=auth0&x=%0*d HTTP/1.1\r\n",
                         HA_MAX_URL - 100, 0);
    for (int i = 0; i < 16; i++)
        o += (size_t)snprintf(req + o, 64 * 1024 - o, "X-Browser-%02d: %0120d\r\n", i, i);
    o += (size_t)snprintf(req + o, 64 * 1024 - o, "Host: h\r\nCookie: a=");
    memset(req + o, 'c', HA_MAX_COOKIE_HEADER - 100);
    o += HA_MAX_COOKIE_HEADER - 100;
    snprintf(req + o, 64 * 1024 - o, "\r\nConnection: close\r\n\r\n");
    st = exchange(req, NULL, 0);
    print_message("a %zu-byte request at every cap: %d\n", strlen(req), st);
    assert_int_equal(st, 302);
    /* 300 headers of 150 bytes: more than the connection's pool holds. */
    o = (size_t)snprintf(req, 64 * 1024, "GET /healthz HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 300; i++) {
        o += (size_t)snprintf(req + o, 64 * 1024 - o, "X-H%03d: ", i);
        memset(req + o, 'h', 140);
        o += 140;
        o += (size_t)snprintf(req + o, 64 * 1024 - o, "\r\n");
    }
    snprintf(req + o, 64 * 1024 - o, "\r\n");
    st = exchange(req, NULL, 0);
    print_message("45 KB of headers: %d\n", st);
    assert_int_equal(st, 431);
    /* One endless header line. */
    n = piece_of(piece, 'e', false);
    st = send_until_answer("GET /healthz HTTP/1.1\r\nHost: h\r\nX-Endless: ", piece, n, 1024 * 1024,
                           &sent);
    print_message("an unfinished 1 MiB header: %d after %zu bytes\n", st, sent);
    assert_int_equal(st, 431);
    assert_true(sent < 256 * 1024);
    free(req);
}

static void test_body_caps(void **state)
{
    char req[512], *body, piece[4200];
    size_t sent = 0;
    long t0;
    int st;
    (void)state;
    /* A 50 MB Content-Length: 413 at once, not one body byte sent. */
    snprintf(req, sizeof(req),
             "POST /v1/oauth/redirect HTTP/1.1\r\nHost: h\r\nContent-Type: "
             "application/x-www-form-urlencoded\r\nContent-Length: 50000000\r\n\r\n");
    t0 = it_now_ms();
    st = exchange(req, NULL, 0);
    print_message("Content-Length 50000000 without a body: %d in %ld ms\n", st, it_now_ms() - t0);
    assert_int_equal(st, 413);
    assert_true(it_now_ms() - t0 < 2000);
    /* A Content-Length too long to be a number. */
    snprintf(req, sizeof(req),
             "POST /v1/oauth/redirect HTTP/1.1\r\nHost: h\r\nContent-Type: "
             "application/x-www-form-urlencoded\r\nContent-Length: 99999999999999999999\r\n\r\n");
    st = exchange(req, NULL, 0);
    print_message("Content-Length 99999999999999999999: %d\n", st);
    assert_true(st == 413 || st == 400);
    /* A chunked body that never ends: answered after about HA_MAX_FORM_BODY. */
    st = send_until_answer("POST /v1/oauth/redirect HTTP/1.1\r\nHost: h\r\nContent-Type: "
                           "application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n"
                           "\r\n",
                           piece, piece_of(piece, 'b', true), 1024 * 1024, &sent);
    print_message("an endless chunked body: %d after %zu bytes\n", st, sent);
    /* 413 once past the cap, or 411 when chunked bodies are refused up front; never a
     * silent close. */
    if (st != 413 && st != 411)
        fail_msg("an endless chunked body got %d (0: the connection closed without an answer) "
                 "after %zu bytes; want 413 (or 411)",
                 st, sent);
    assert_true(sent < 256 * 1024);
    /* The control: a form just under the cap is read and judged (a login error). */
    body = malloc(HA_MAX_FORM_BODY + 512);
    assert_non_null(body);
    st = snprintf(body, 512,
                  "POST /v1/oauth/redirect HTTP/1.1\r\nHost: h\r\nContent-Type: "
                  "application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: "
                  "close\r\n\r\nstate=",
                  HA_MAX_FORM_BODY - 10);
    memset(body + st, 's', HA_MAX_FORM_BODY - 16);
    body[st + HA_MAX_FORM_BODY - 16] = '\0';
    assert_int_equal(exchange(body, NULL, 0), 302);
    free(body);
}

/* ---- malformed requests ---- */

static void test_malformed_percent_encoding(void **state)
{
    static const struct {
        const char *target;
        int status;
    } cases[] = {
        {"/v1/oauth/start?redirect=%zz", 400},
        {"/v1/oauth/start?redirect=%", 400},
        {"/v1/oauth/start?redirect=%4", 400},
        {"/v1/oauth/start?redirect=%G0", 400},
        {"/v1/oauth/start?re%zzdirect=/oauth", 400},
        {"/v1/oauth/start?redirect=/oauth%00", 400},
        {"/v1/oauth/start?redirect=%%2f", 400},
        {"/logout?returnTo=%", 400},
        {"/logout?returnTo=%x1", 400},
        {"/v1/oauth/redirect?code=%&state=x", 400},
        {"/v1/oauth/redirect?code=a%2&state=x", 400},
        {"/healthz?x=%zz", 400},
        /* Not the exact route; inside Houston's OAuth namespace, so refused (router.c). */
        {"/v1/oauth/st%61rt", 403},
        {"/%2e%2e/healthz", 404},
        {"/healthz%00", 404},
        {"/v1/oauth/start%3fredirect=/", 403},
    };
    char answer[4096];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[512];
        int st;
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                 cases[i].target);
        st = exchange(req, answer, sizeof(answer));
        if (st != cases[i].status)
            fail_msg("GET %s answered %d, want %d", cases[i].target, st, cases[i].status);
        if (strstr(answer, "Set-Cookie") != NULL)
            fail_msg("GET %s set a cookie", cases[i].target);
    }
    /* A malformed form body. */
    assert_int_equal(exchange("POST /v1/oauth/redirect HTTP/1.1\r\nHost: h\r\nContent-Type: "
                              "application/x-www-form-urlencoded\r\nContent-Length: 9\r\n"
                              "Connection: close\r\n\r\nstate=%zz",
                              answer, sizeof(answer)),
                     400);
}

static void test_unknown_methods(void **state)
{
    static const char *const methods[] = {"DELETE", "PUT",      "PATCH", "OPTIONS", "TRACE",
                                          "FOO",    "PROPFIND", "get",   "GETS",    "POST"};
    char answer[4096], req[1024], longm[301];
    int st;
    (void)state;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        const char *allow;
        snprintf(req, sizeof(req),
                 "%s /v1/oauth/start HTTP/1.1\r\nHost: h\r\nX-Secret: s3cr3t-h3ad3r\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n",
                 methods[i]);
        st = exchange(req, answer, sizeof(answer));
        if (st != 405)
            fail_msg("%s /v1/oauth/start answered %d, want 405", methods[i], st);
        allow = strstr(answer, "Allow: ");
        if (allow == NULL || strncmp(allow + 7, "GET, HEAD\r\n", 11) != 0)
            fail_msg("%s /v1/oauth/start: 405 without Allow: GET, HEAD", methods[i]);
        /* TRACE must not reflect the request (cross-site tracing). */
        assert_null(strstr(answer, "s3cr3t-h3ad3r"));
    }
    /* Unknown paths stay 404 whatever the method; a 300-character method and CONNECT get a
     * clear 4xx or 501, never a 2xx or another 5xx. */
    assert_int_equal(
        exchange("FOO /nowhere HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", NULL, 0), 404);
    memset(longm, 'M', 300);
    longm[300] = '\0';
    snprintf(req, sizeof(req), "%s /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
             longm);
    st = exchange(req, NULL, 0);
    print_message("a 300-character method: %d\n", st);
    assert_true(st == 400 || st == 405 || st == 501);
    st = exchange("CONNECT evil.com:443 HTTP/1.1\r\nHost: evil.com:443\r\n\r\n", NULL, 0);
    print_message("CONNECT: %d\n", st);
    assert_true(st == 400 || st == 404 || st == 405 || st == 501);
    assert_true(healthz_ms(plain_port()) >= 0);
}

/* ---- slow clients ---- */

struct slow {
    int fd;
    bool trickle;
    long closed_ms; /* when the server closed it, relative to the start; -1 while open */
};

static void slow_open(struct slow *s, int port, bool trickle)
{
    static const char silent[] = "GET /healthz HTTP/1.1\r\nHost: h\r\n";
    static const char slow[] = "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Slow: ";
    s->fd = it_raw_connect(port, 1000);
    assert_true(s->fd >= 0);
    s->trickle = trickle;
    s->closed_ms = -1;
    assert_int_equal(
        it_raw_send(s->fd, trickle ? slow : silent, trickle ? strlen(slow) : strlen(silent)), 0);
}

/* Notes a socket the server closed (EOF, reset, or a refused write). */
static void slow_poll(struct slow *s, long now, bool send_byte)
{
    char buf[512];
    ssize_t n;
    if (s->closed_ms >= 0)
        return;
    n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        s->closed_ms = now;
    else if (send_byte && s->trickle && send(s->fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
             errno != EAGAIN)
        s->closed_ms = now;
}

/* 20 clients that send half a request and go silent, and 20 that trickle one header byte
 * every 2 s: the connection timeout must close both kinds (a trickle must not keep a slot
 * forever), and /healthz answers throughout. */
static void test_slow_clients(void **state)
{
    struct slow s[SLOW_SILENT + SLOW_TRICKLE];
    const size_t n = SLOW_SILENT + SLOW_TRICKLE;
    long t0 = it_now_ms(), now = 0, last_byte = 0, last_probe = 0, worst = 0;
    long deadline = (CONN_TIMEOUT_S + CLOSE_SLACK_S) * 1000L + TRICKLE_EVERY_MS;
    int failed_probes = 0;
    size_t open_silent = 0, open_trickle = 0;
    (void)state;
    for (size_t i = 0; i < n; i++)
        slow_open(&s[i], plain_port(), i >= SLOW_SILENT);
    while (now < deadline) {
        bool tick = now - last_byte >= TRICKLE_EVERY_MS;
        size_t open = 0;
        for (size_t i = 0; i < n; i++) {
            slow_poll(&s[i], now, tick);
            open += s[i].closed_ms < 0;
        }
        if (tick)
            last_byte = now;
        if (open == 0)
            break;
        if (now - last_probe >= 500) {
            long ms = healthz_ms(plain_port());
            failed_probes += ms < 0;
            worst = ms > worst ? ms : worst;
            last_probe = now;
        }
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
        now = it_now_ms() - t0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i].closed_ms < 0 && s[i].trickle)
            open_trickle++;
        else if (s[i].closed_ms < 0)
            open_silent++;
        else if (i == 0 || i == SLOW_SILENT)
            print_message("%s client closed by the server after %ld ms\n",
                          s[i].trickle ? "a trickling" : "a silent", s[i].closed_ms);
        close(s[i].fd);
    }
    print_message("after %ld ms: %zu silent and %zu trickling clients still open; /healthz "
                  "worst %ld ms, %d probes failed\n",
                  now, open_silent, open_trickle, worst, failed_probes);
    assert_int_equal(failed_probes, 0);
    assert_int_equal(open_silent, 0);
    if (open_trickle > 0)
        fail_msg("%zu clients trickling one byte every %d ms still held their connection after "
                 "%ld ms (connection timeout %d s): a slow-loris keeps its slot forever",
                 open_trickle, TRICKLE_EVERY_MS, now, CONN_TIMEOUT_S);
}

/* A sidecar allowed 16 connections: 16 silent clients fill it, and the connection timeout
 * frees the slots, after which it serves again without anyone's help. */
static void test_timeout_frees_slots(void **state)
{
    struct it_env *e = it_env();
    const char *extra[] = {"AUTH_SIDECAR_MAX_CONNECTIONS=16", NULL};
    struct slow s[LIMITED_CONNECTIONS];
    int port = e->spare_ports[1];
    long t0, full_at = -1, back_at = -1;
    size_t closed = 0;
    (void)state;
    assert_int_equal(it_sidecar_start_plain(e, &e->spare[1], port, LIMITED_LOG, extra, false), 0);
    assert_true(healthz_ms(port) >= 0);
    t0 = it_now_ms();
    for (size_t i = 0; i < LIMITED_CONNECTIONS; i++)
        slow_open(&s[i], port, false);
    while (it_now_ms() - t0 < (CONN_TIMEOUT_S + CLOSE_SLACK_S) * 1000L) {
        long ms = healthz_ms(port), now = it_now_ms() - t0;
        if (ms < 0 && full_at < 0)
            full_at = now;
        if (ms >= 0 && full_at >= 0) {
            back_at = now;
            break;
        }
        nanosleep(&(struct timespec){0, 250000000L}, NULL);
    }
    for (size_t i = 0; i < LIMITED_CONNECTIONS; i++) {
        closed += it_raw_closed_by_peer(s[i].fd, 100);
        close(s[i].fd);
    }
    print_message("16 silent clients: the sidecar stopped serving after %ld ms and served again "
                  "after %ld ms; %zu of them closed by the server\n",
                  full_at, back_at, closed);
    it_proc_stop(&e->spare[1]);
    if (full_at < 0)
        fail_msg("16 idle connections did not fill a sidecar limited to 16: the limit test "
                 "proves nothing");
    if (back_at < 0)
        fail_msg("the connection timeout never freed the slots");
    assert_true(back_at >= (CONN_TIMEOUT_S - 5) * 1000L);
    assert_int_equal(closed, LIMITED_CONNECTIONS);
}

/* ---- a flood of connections ---- */

/* A whole login through the plain sidecar, carrying the (Secure, so curl keeps it off plain
 * http) transaction cookie by hand. 0 when it ended at the app with Houston's cookie. */
static int plain_login(int port, const char *email)
{
    struct it_env *e = it_env();
    struct it_client *c = it_client_new(e);
    struct it_resp s, a, f;
    char base[64], url[512], cookie[4096] = "", *next = NULL;
    const char *sc, *hdr[2] = {cookie, NULL};
    int rc = -1;
    memset(&s, 0, sizeof(s));
    memset(&a, 0, sizeof(a));
    memset(&f, 0, sizeof(f));
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "%s/v1/oauth/start?%s&login_hint=%s", base, QUERY, email);
    if (c == NULL || it_get(c, url, &s) != 0 || s.status != 302 || s.location == NULL)
        goto out;
    sc = it_resp_set_cookie(&s, IT_TXN_PREFIX, 0);
    if (sc == NULL)
        goto out;
    snprintf(cookie, sizeof(cookie), "Cookie: %.*s", (int)strcspn(sc, ";"), sc);
    if (it_get(c, s.location, &a) != 0 || a.status != 302 || a.location == NULL)
        goto out;
    next = it_url_rebase(a.location, e->sidecar_url, base);
    if (next == NULL || it_request_headers(c, "GET", next, NULL, NULL, hdr, &f) != 0)
        goto out;
    if (f.status == 302 && f.location != NULL &&
        strncmp(f.location, IT_APP_URL "/oauth?", strlen(IT_APP_URL "/oauth?")) == 0 &&
        it_resp_set_cookie(&f, IT_AUTH_COOKIE "=", 0) != NULL)
        rc = 0;
out:
    if (cookie[0] != '\0')
        it_note_secret(cookie + strlen("Cookie: ") + strcspn(cookie + 8, "=") + 1);
    free(next);
    it_resp_cleanup(&s);
    it_resp_cleanup(&a);
    it_resp_cleanup(&f);
    it_client_free(c);
    return rc;
}

/* Opens n non-blocking connections to port; returns how many connected within 10 s. */
static int open_flood(int port, int *fds, int n)
{
    struct sockaddr_in a = {0};
    struct pollfd *p = calloc((size_t)n, sizeof(*p));
    long deadline = it_now_ms() + 10000;
    int done = 0;
    assert_non_null(p);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(fds[i] >= 0);
        if (connect(fds[i], (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS)
            fail_msg("connect %d failed: %s", i, strerror(errno));
        p[i] = (struct pollfd){fds[i], POLLOUT, 0};
    }
    while (done < n && it_now_ms() < deadline) {
        done = 0;
        if (poll(p, (nfds_t)n, 200) < 0)
            break;
        for (int i = 0; i < n; i++) {
            int err = 0;
            socklen_t len = sizeof(err);
            if (p[i].fd < 0) {
                done++;
                continue;
            }
            if ((p[i].revents & (POLLOUT | POLLERR | POLLHUP)) == 0)
                continue;
            getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len);
            if (err == 0) {
                p[i].fd = -1;
                done++;
            }
        }
    }
    free(p);
    return done;
}

/* houston_auth_inflight_requests from /metrics on the plain sidecar, or -1. */
static long inflight(void)
{
    char *answer = malloc(64 * 1024);
    const char *m;
    long v = -1;
    assert_non_null(answer);
    if (exchange("GET /metrics HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", answer,
                 64 * 1024) == 200 &&
        (m = strstr(answer, "\nhouston_auth_inflight_requests ")) != NULL)
        v = strtol(m + strlen("\nhouston_auth_inflight_requests "), NULL, 10);
    free(answer);
    return v;
}

/* 2,000 connections at once (half of them mid-request): logins still complete, /healthz
 * answers, and the sidecar's memory stays bounded. */
static void test_two_thousand_connections(void **state)
{
    static const char partial[] = "GET /healthz HTTP/1.1\r\nHost: h\r\n";
    int *fds = calloc(FLOOD, sizeof(int)), connected, logins = 0;
    long t0, rss_before = it_proc_status_kb(plain_pid(), "VmRSS"), rss_during, hwm, busy, ms;
    (void)state;
    assert_non_null(fds);
    assert_true(it_raise_nofile(NOFILE_WANT) >= NOFILE_WANT);
    print_memory("before the flood");
    t0 = it_now_ms();
    connected = open_flood(plain_port(), fds, FLOOD);
    for (int i = 0; i < FLOOD; i += 2)
        (void)send(fds[i], partial, strlen(partial), MSG_NOSIGNAL | MSG_DONTWAIT);
    nanosleep(&(struct timespec){0, 500000000L}, NULL);
    busy = inflight();
    ms = healthz_ms(plain_port());
    for (int i = 0; i < 3; i++)
        logins += plain_login(plain_port(), "flood%40example.com") == 0;
    rss_during = it_proc_status_kb(plain_pid(), "VmRSS");
    hwm = it_proc_status_kb(plain_pid(), "VmHWM");
    print_message("%d of %d connections open after %ld ms, %ld requests in flight; /healthz in "
                  "%ld ms; %d of 3 logins completed; VmRSS %ld -> %ld KiB (+%ld), VmHWM %ld KiB\n",
                  connected, FLOOD, it_now_ms() - t0, busy, ms, logins, rss_before, rss_during,
                  rss_during - rss_before, hwm);
    for (int i = 0; i < FLOOD; i++)
        close(fds[i]);
    free(fds);
    assert_int_equal(connected, FLOOD);
    /* The flood really reached the sidecar: the half that sent a request line is in flight. */
    assert_true(busy >= FLOOD / 2 - 50);
    assert_true(ms >= 0 && ms < 2000);
    assert_int_equal(logins, 3);
    assert_true(it_now_ms() - t0 < CONN_TIMEOUT_S * 1000L);
    assert_true(rss_during < RSS_BOUND_KB);
    nanosleep(&(struct timespec){1, 0}, NULL);
    assert_true(healthz_ms(plain_port()) >= 0);
    print_memory("after the flood");
}

static void test_memory_bounded(void **state)
{
    long rss = it_proc_status_kb(plain_pid(), "VmRSS");
    long hwm = it_proc_status_kb(plain_pid(), "VmHWM");
    (void)state;
    print_message("sidecar memory through all of it: VmRSS %ld KiB at start, %ld KiB now, VmHWM "
                  "%ld KiB (bound %ld KiB)\n",
                  rss_at_start, rss, hwm, RSS_BOUND_KB);
    assert_true(rss > 0 && hwm > 0);
    assert_true(hwm < RSS_BOUND_KB);
    /* Still serving, and still logging people in. */
    assert_true(healthz_ms(plain_port()) >= 0);
    assert_int_equal(plain_login(plain_port(), "after%40example.com"), 0);
}

static void test_logs_hold_no_secrets(void **state)
{
    static const char *const logs[] = {"sidecar.log", PLAIN_LOG};
    (void)state;
    it_expect_logs_clean(it_env(), logs, sizeof(logs) / sizeof(logs[0]), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_line_caps),
        cmocka_unit_test(test_header_caps),
        cmocka_unit_test(test_body_caps),
        cmocka_unit_test(test_malformed_percent_encoding),
        cmocka_unit_test(test_unknown_methods),
        cmocka_unit_test_setup(test_two_thousand_connections, it_test_setup),
        cmocka_unit_test(test_slow_clients),
        cmocka_unit_test(test_timeout_frees_slots),
        cmocka_unit_test_setup(test_memory_bounded, it_test_setup),
        cmocka_unit_test(test_logs_hold_no_secrets),
        cmocka_unit_test(it_test_processes_exit_clean),
    };
    /* Children inherit the limit: the sidecar needs a descriptor per connection too. */
    if (it_raise_nofile(NOFILE_WANT) < NOFILE_WANT)
        fprintf(stderr, "test_hostile_http: could not raise RLIMIT_NOFILE to %d\n", NOFILE_WANT);
    /* IT_TEST_FILTER=<glob> runs only the matching tests (debugging). */
    if (getenv("IT_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("IT_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, it_group_teardown);
}
