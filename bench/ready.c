/* Benchmark 5 (start to ready), and free loopback ports for bench/run.sh.
 *
 *   bench_ready --free-ports N
 *       binds N sockets to 127.0.0.1:0 at once, prints their ports, closes them.
 *   bench_ready --url URL --status CODE [--cacert FILE] [--resolve HOST:PORT:ADDR] [--runs N]
 *               [--log FILE] -- CMD ARG...
 *       N times: forks, execs CMD (environment inherited), polls URL every 0.5 ms until it
 *       answers CODE, stops the process (SIGTERM, then SIGKILL after 5 s) and reaps it.
 *       Prints each time from fork to the answer and their median, in milliseconds.
 *
 * The clock starts before fork, so exec, the dynamic loader and the process's own start
 * are all inside the figure. The poll costs ~0.1 ms per attempt, so the figure is exact
 * to about half a millisecond. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <curl/curl.h>
#include "stats.h"

#define MAX_RUNS 21
#define MAX_PORTS 16
#define DEADLINE_MS 20000.0
#define STOP_MS 5000.0

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static int free_ports(int n)
{
    int fds[MAX_PORTS];
    if (n < 1 || n > MAX_PORTS)
        return 2;
    for (int i = 0; i < n; i++) {
        struct sockaddr_in a = {0};
        socklen_t len = sizeof(a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof(a)) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&a, &len) != 0)
            return 1;
        printf("%d\n", ntohs(a.sin_port));
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

static size_t discard(char *b, size_t s, size_t n, void *c)
{
    (void)b;
    (void)c;
    return s * n;
}

static pid_t spawn(char **cmd, const char *log)
{
    pid_t parent = getpid(), pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (log != NULL) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
    }
    execvp(cmd[0], cmd);
    _exit(127);
}

static void stop(pid_t pid)
{
    double deadline = now_ms() + STOP_MS;
    int st;
    kill(pid, SIGTERM);
    while (now_ms() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return;
        nap_us(2000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

/* Milliseconds from fork to the wanted answer; -1 on a deadline or an early exit. */
static double one_run(CURL *h, long want, char **cmd, const char *log)
{
    double t0 = now_ms(), t = -1;
    long status = 0;
    int st;
    pid_t pid = spawn(cmd, log);
    if (pid < 0)
        return -1;
    while (now_ms() - t0 < DEADLINE_MS) {
        if (curl_easy_perform(h) == CURLE_OK &&
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == want) {
            t = now_ms() - t0;
            break;
        }
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -1;
        nap_us(500);
    }
    stop(pid);
    return t;
}

static CURL *new_poller(const char *url, const char *cacert, struct curl_slist *resolve)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return NULL;
    curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, cacert);
    return h;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *cacert = NULL, *log = NULL;
    struct curl_slist *resolve = NULL;
    long want = 200;
    int runs = 5, i = 1, n = 0;
    double t[MAX_RUNS];
    CURL *h;

    if (argc == 3 && strcmp(argv[1], "--free-ports") == 0)
        return free_ports((int)strtol(argv[2], NULL, 10));
    for (; i + 1 < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--status") == 0)
            want = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--cacert") == 0)
            cacert = argv[i + 1];
        else if (strcmp(argv[i], "--runs") == 0)
            runs = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--log") == 0)
            log = argv[i + 1];
        else if (strcmp(argv[i], "--resolve") == 0)
            resolve = curl_slist_append(resolve, argv[i + 1]);
    }
    if (url == NULL || i >= argc || strcmp(argv[i], "--") != 0 || i + 1 >= argc || runs < 1 ||
        runs > MAX_RUNS) {
        fprintf(stderr, "Usage: bench_ready --free-ports N\n"
                        "       bench_ready --url URL [--status CODE] [--cacert FILE]"
                        " [--resolve H:P:A] [--runs N] [--log FILE] -- CMD ARG...\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    h = new_poller(url, cacert, resolve);
    printf("ready_ms_runs");
    for (; h != NULL && n < runs; n++) {
        t[n] = one_run(h, want, argv + i + 1, log);
        printf(" %.1f", t[n]);
        if (t[n] < 0)
            break;
    }
    printf("\n");
    curl_easy_cleanup(h);
    curl_slist_free_all(resolve);
    if (n < runs)
        return 1;
    bench_sort(t, n);
    printf("ready_ms_median %.1f\n", t[n / 2]);
    return 0;
}
