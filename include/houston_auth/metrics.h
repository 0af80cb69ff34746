/* Prometheus counters and histograms, lock-free (C11 atomics), formatted on /metrics. */
#ifndef HOUSTON_AUTH_METRICS_H
#define HOUSTON_AUTH_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include "houston_auth/err.h"

struct ha_jwks_cache_stats;
struct ha_authz_cache_stats;

enum ha_hist {
    HA_HIST_REDIRECT_OWN, /* sidecar's own time per /v1/oauth/redirect, waits excluded */
    HA_HIST_TOKEN,        /* token exchange round trip */
    HA_HIST_HOUSTON,      /* Houston hand-off round trip */
    HA_HIST_JWKS,         /* JWKS fetch */
    HA_HIST_AUTHZ,        /* Houston's /v1/authorization round trip (the gate's misses) */
    HA_HIST__COUNT
};

struct ha_metrics;
enum ha_err ha_metrics_new(struct ha_metrics **out);
void ha_metrics_free(struct ha_metrics *m);
/* code NULL: a successful login; else one of the HA_E_* login error codes. */
void ha_metrics_login(struct ha_metrics *m, const char *code);
void ha_metrics_start(struct ha_metrics *m);
void ha_metrics_logout(struct ha_metrics *m);
void ha_metrics_observe_ns(struct ha_metrics *m, enum ha_hist h, uint64_t ns);
void ha_metrics_inflight(struct ha_metrics *m, int delta);
/* A request for one of Houston's own OAuth endpoints, refused (someone probing the callback). */
void ha_metrics_houston_refused(struct ha_metrics *m);
/* A token exchange refused by the per-client limit, or by the total one when total. */
void ha_metrics_exchange_throttled(struct ha_metrics *m, bool total);
/* A gate call to Houston that got no usable answer (down, timeout, refused answer). */
void ha_metrics_authz_failure(struct ha_metrics *m);
/* A gate miss answered 503 at once: too many were waiting for Houston already. */
void ha_metrics_authz_shed(struct ha_metrics *m);
/* A connection closed for not sending a whole request in time (slow-loris). */
void ha_metrics_slow_client(struct ha_metrics *m);
/* Quantile q (0..1) of a histogram in seconds, by linear interpolation inside the bucket
 * (for benchmarks); 0 when empty. */
double ha_metrics_quantile(struct ha_metrics *m, enum ha_hist h, double q);
/* The exposition text (text/plain; version=0.0.4). jwks and authz may be NULL. *out caller
 * frees. */
enum ha_err ha_metrics_format(struct ha_metrics *m, const struct ha_jwks_cache_stats *jwks,
                              const struct ha_authz_cache_stats *authz, int ready, char **out);

#endif
