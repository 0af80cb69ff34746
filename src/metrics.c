/* Prometheus metrics with atomics only: counters are bumped on every request, so no lock
 * sits on the hot path. Histogram buckets are fixed at build time. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/authz_cache.h"
#include "houston_auth/buf.h"
#include "houston_auth/jwks.h"
#include "houston_auth/metrics.h"
#include "houston_auth/proto.h"

#define NBUCKETS 16

/* Upper bounds in seconds: fine below a millisecond (own time), coarse up to timeouts. */
static const double bucket_le[NBUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

static const char *const login_codes[] = {
    HA_E_ACCESS_DENIED,      HA_E_TENANT_ERROR,     HA_E_BAD_REQUEST,
    HA_E_INVALID_STATE,      HA_E_STATE_EXPIRED,    HA_E_MISSING_CODE,
    HA_E_TOKEN_EXCHANGE,     HA_E_INVALID_ID_TOKEN, HA_E_INVALID_ACCESS_TOKEN,
    HA_E_EMAIL_NOT_VERIFIED, HA_E_RATE_LIMITED,     HA_E_HOUSTON_UNAVAILABLE,
    HA_E_HOUSTON_REJECTED,   HA_E_NOT_READY,        HA_E_BUSY};
#define NCODES (sizeof(login_codes) / sizeof(login_codes[0]))

static const char *const hist_names[HA_HIST__COUNT] = {
    "houston_auth_redirect_own_seconds", "houston_auth_token_exchange_seconds",
    "houston_auth_houston_handoff_seconds", "houston_auth_jwks_fetch_seconds",
    "houston_auth_authz_houston_seconds"};
static const char *const hist_help[HA_HIST__COUNT] = {
    "Sidecar's own time per /v1/oauth/redirect, excluding waits on the tenant and Houston.",
    "Authorization-code exchange round trip to the tenant.", "Callback round trip to Houston.",
    "JWKS fetch round trip to the tenant.",
    "Houston's /v1/authorization round trip, for a decision the gate's cache did not hold."};

struct hist {
    atomic_ullong buckets[NBUCKETS + 1]; /* last: +Inf */
    atomic_ullong count;
    atomic_ullong sum_ns;
};

struct ha_metrics {
    atomic_ullong logins_ok;
    atomic_ullong logins_failed[NCODES];
    atomic_ullong starts;
    atomic_ullong logouts;
    atomic_ullong slow_clients;
    atomic_ullong throttled[2]; /* token exchanges refused: [0] per client, [1] total */
    atomic_ullong houston_refused;
    atomic_ullong authz_failures;
    atomic_ullong authz_shed;
    atomic_llong inflight;
    struct hist hist[HA_HIST__COUNT];
};

enum ha_err ha_metrics_new(struct ha_metrics **out)
{
    struct ha_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return HA_ERR_NOMEM;
    *out = m;
    return HA_OK;
}

void ha_metrics_free(struct ha_metrics *m)
{
    free(m);
}

void ha_metrics_login(struct ha_metrics *m, const char *code)
{
    if (m == NULL)
        return;
    if (code == NULL) {
        atomic_fetch_add(&m->logins_ok, 1);
        return;
    }
    for (size_t i = 0; i < NCODES; i++) {
        if (strcmp(code, login_codes[i]) == 0) {
            atomic_fetch_add(&m->logins_failed[i], 1);
            return;
        }
    }
}

void ha_metrics_start(struct ha_metrics *m)
{
    if (m != NULL)
        atomic_fetch_add(&m->starts, 1);
}

void ha_metrics_logout(struct ha_metrics *m)
{
    if (m != NULL)
        atomic_fetch_add(&m->logouts, 1);
}

void ha_metrics_authz_shed(struct ha_metrics *m)
{
    if (m != NULL)
        atomic_fetch_add(&m->authz_shed, 1);
}

void ha_metrics_authz_failure(struct ha_metrics *m)
{
    if (m != NULL)
        atomic_fetch_add(&m->authz_failures, 1);
}

void ha_metrics_slow_client(struct ha_metrics *m)
{
    if (m != NULL)
        atomic_fetch_add(&m->slow_clients, 1);
}

void ha_metrics_houston_refused(struct ha_metrics *m)
{
    if (m != NULL)
        atomic_fetch_add(&m->houston_refused, 1);
}

void ha_metrics_exchange_throttled(struct ha_metrics *m, bool total)
{
    if (m != NULL)
        atomic_fetch_add(&m->throttled[total ? 1 : 0], 1);
}

void ha_metrics_inflight(struct ha_metrics *m, int delta)
{
    if (m != NULL)
        atomic_fetch_add(&m->inflight, delta);
}

void ha_metrics_observe_ns(struct ha_metrics *m, enum ha_hist h, uint64_t ns)
{
    struct hist *x;
    double s = (double)ns / 1e9;
    size_t i = 0;
    if (m == NULL || h >= HA_HIST__COUNT)
        return;
    x = &m->hist[h];
    while (i < NBUCKETS && s > bucket_le[i])
        i++;
    atomic_fetch_add(&x->buckets[i], 1);
    atomic_fetch_add(&x->count, 1);
    atomic_fetch_add(&x->sum_ns, ns);
}

double ha_metrics_quantile(struct ha_metrics *m, enum ha_hist h, double q)
{
    struct hist *x = &m->hist[h];
    unsigned long long total = atomic_load(&x->count), seen = 0;
    double rank = q * (double)total;
    if (total == 0)
        return 0;
    for (size_t i = 0; i <= NBUCKETS; i++) {
        unsigned long long n = atomic_load(&x->buckets[i]);
        if ((double)(seen + n) >= rank && n > 0) {
            double lo = i == 0 ? 0 : bucket_le[i - 1];
            double hi = i < NBUCKETS ? bucket_le[i] : bucket_le[NBUCKETS - 1];
            return lo + (hi - lo) * ((rank - (double)seen) / (double)n);
        }
        seen += n;
    }
    return bucket_le[NBUCKETS - 1];
}

static enum ha_err format_hist(struct ha_buf *b, const struct hist *x, const char *name,
                               const char *help)
{
    unsigned long long cum = 0;
    enum ha_err err = ha_buf_appendf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < NBUCKETS && err == HA_OK; i++) {
        cum += atomic_load(&x->buckets[i]);
        err = ha_buf_appendf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_le[i], cum);
    }
    cum += atomic_load(&x->buckets[NBUCKETS]);
    if (err == HA_OK)
        err = ha_buf_appendf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n", name,
                             cum, name, (double)atomic_load(&x->sum_ns) / 1e9, name,
                             (unsigned long long)atomic_load(&x->count));
    return err;
}

static enum ha_err format_logins(struct ha_buf *b, struct ha_metrics *m)
{
    enum ha_err err = ha_buf_appendf(
        b,
        "# HELP houston_auth_logins_total Completed /v1/oauth/redirect requests by result.\n"
        "# TYPE houston_auth_logins_total counter\n"
        "houston_auth_logins_total{result=\"success\",code=\"\"} %llu\n",
        (unsigned long long)atomic_load(&m->logins_ok));
    for (size_t i = 0; i < NCODES && err == HA_OK; i++)
        err = ha_buf_appendf(b, "houston_auth_logins_total{result=\"failure\",code=\"%s\"} %llu\n",
                             login_codes[i], (unsigned long long)atomic_load(&m->logins_failed[i]));
    if (err == HA_OK)
        err = ha_buf_appendf(
            b,
            "# HELP houston_auth_login_starts_total Logins started at /v1/oauth/start.\n"
            "# TYPE houston_auth_login_starts_total counter\n"
            "houston_auth_login_starts_total %llu\n"
            "# HELP houston_auth_logouts_total Logouts at /logout.\n"
            "# TYPE houston_auth_logouts_total counter\nhouston_auth_logouts_total %llu\n"
            "# HELP houston_auth_inflight_requests Requests being handled.\n"
            "# TYPE houston_auth_inflight_requests gauge\nhouston_auth_inflight_requests %lld\n"
            "# HELP houston_auth_slow_clients_total Connections closed for not sending a whole "
            "request within the request read timeout.\n"
            "# TYPE houston_auth_slow_clients_total counter\nhouston_auth_slow_clients_total "
            "%llu\n"
            "# HELP houston_auth_token_exchanges_throttled_total Token exchanges refused before "
            "reaching the tenant, by the limit that refused them.\n"
            "# TYPE houston_auth_token_exchanges_throttled_total counter\n"
            "houston_auth_token_exchanges_throttled_total{limit=\"client\"} %llu\n"
            "houston_auth_token_exchanges_throttled_total{limit=\"total\"} %llu\n"
            "# HELP houston_auth_houston_paths_refused_total Requests for Houston's own OAuth "
            "endpoints (its callback) that reached the sidecar from outside, refused.\n"
            "# TYPE houston_auth_houston_paths_refused_total counter\n"
            "houston_auth_houston_paths_refused_total %llu\n",
            (unsigned long long)atomic_load(&m->starts),
            (unsigned long long)atomic_load(&m->logouts), (long long)atomic_load(&m->inflight),
            (unsigned long long)atomic_load(&m->slow_clients),
            (unsigned long long)atomic_load(&m->throttled[0]),
            (unsigned long long)atomic_load(&m->throttled[1]),
            (unsigned long long)atomic_load(&m->houston_refused));
    return err;
}

static enum ha_err format_authz(struct ha_buf *b, const struct ha_authz_cache_stats *s,
                                unsigned long long failures, unsigned long long shed)
{
    return ha_buf_appendf(
        b,
        "# HELP houston_auth_authz_cache_hits_total Gate requests answered from the cache.\n"
        "# TYPE houston_auth_authz_cache_hits_total counter\n"
        "houston_auth_authz_cache_hits_total %llu\n"
        "# HELP houston_auth_authz_cache_misses_total Gate requests that called Houston.\n"
        "# TYPE houston_auth_authz_cache_misses_total counter\n"
        "houston_auth_authz_cache_misses_total %llu\n"
        "# HELP houston_auth_authz_cache_coalesced_total Gate requests that shared another's "
        "call to Houston.\n"
        "# TYPE houston_auth_authz_cache_coalesced_total counter\n"
        "houston_auth_authz_cache_coalesced_total %llu\n"
        "# HELP houston_auth_authz_cache_evictions_total Decisions dropped for room.\n"
        "# TYPE houston_auth_authz_cache_evictions_total counter\n"
        "houston_auth_authz_cache_evictions_total %llu\n"
        "# HELP houston_auth_authz_cache_expirations_total Decisions dropped past their TTL.\n"
        "# TYPE houston_auth_authz_cache_expirations_total counter\n"
        "houston_auth_authz_cache_expirations_total %llu\n"
        "# HELP houston_auth_authz_cache_entries Decisions held and calls in flight.\n"
        "# TYPE houston_auth_authz_cache_entries gauge\n"
        "houston_auth_authz_cache_entries %zu\n"
        "# HELP houston_auth_authz_cache_bytes Bytes the cache accounts for its entries.\n"
        "# TYPE houston_auth_authz_cache_bytes gauge\nhouston_auth_authz_cache_bytes %zu\n"
        "# HELP houston_auth_authz_houston_failures_total Calls to Houston's "
        "/v1/authorization that got no answer (down, timeout, refused answer).\n"
        "# TYPE houston_auth_authz_houston_failures_total counter\n"
        "houston_auth_authz_houston_failures_total %llu\n"
        "# HELP houston_auth_authz_shed_total Gate misses answered 503 at once: too many "
        "were waiting for Houston.\n"
        "# TYPE houston_auth_authz_shed_total counter\nhouston_auth_authz_shed_total %llu\n",
        (unsigned long long)s->hits, (unsigned long long)s->misses,
        (unsigned long long)s->coalesced, (unsigned long long)s->evictions,
        (unsigned long long)s->expirations, s->entries, s->bytes, failures, shed);
}

static enum ha_err format_jwks(struct ha_buf *b, const struct ha_jwks_cache_stats *s)
{
    return ha_buf_appendf(
        b,
        "# HELP houston_auth_jwks_fetches_total JWKS fetches made.\n"
        "# TYPE houston_auth_jwks_fetches_total counter\nhouston_auth_jwks_fetches_total %lu\n"
        "# HELP houston_auth_jwks_fetch_failures_total JWKS fetches that failed.\n"
        "# TYPE houston_auth_jwks_fetch_failures_total counter\n"
        "houston_auth_jwks_fetch_failures_total %lu\n"
        "# HELP houston_auth_jwks_throttled_misses_total Unknown kids refused a refetch.\n"
        "# TYPE houston_auth_jwks_throttled_misses_total counter\n"
        "houston_auth_jwks_throttled_misses_total %lu\n"
        "# HELP houston_auth_jwks_coalesced_misses_total Unknown kids that shared a fetch.\n"
        "# TYPE houston_auth_jwks_coalesced_misses_total counter\n"
        "houston_auth_jwks_coalesced_misses_total %lu\n",
        s->fetches, s->fetch_failures, s->throttled_misses, s->coalesced_misses);
}

enum ha_err ha_metrics_format(struct ha_metrics *m, const struct ha_jwks_cache_stats *jwks,
                              const struct ha_authz_cache_stats *authz, int ready, char **out)
{
    struct ha_buf b;
    enum ha_err err;
    ha_buf_init(&b, 64 * 1024);
    err = ha_buf_appendf(&b,
                         "# HELP houston_auth_build_info Build information.\n"
                         "# TYPE houston_auth_build_info gauge\n"
                         "houston_auth_build_info{version=\"%s\"} 1\n"
                         "# HELP houston_auth_ready Discovery and JWKS loaded.\n"
                         "# TYPE houston_auth_ready gauge\nhouston_auth_ready %d\n",
                         HA_VERSION, ready ? 1 : 0);
    if (err == HA_OK)
        err = format_logins(&b, m);
    for (int h = 0; h < HA_HIST__COUNT && err == HA_OK; h++)
        err = format_hist(&b, &m->hist[h], hist_names[h], hist_help[h]);
    if (err == HA_OK && jwks != NULL)
        err = format_jwks(&b, jwks);
    if (err == HA_OK && authz != NULL)
        err = format_authz(&b, authz, atomic_load(&m->authz_failures), atomic_load(&m->authz_shed));
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    return err;
}
