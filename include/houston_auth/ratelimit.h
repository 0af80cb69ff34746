/* Token buckets that keep the sidecar from spending the tenant's rate limit: one per client
 * (by ha_client_key) and one for the whole process, in bounded memory. */
#ifndef HOUSTON_AUTH_RATELIMIT_H
#define HOUSTON_AUTH_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>
#include "houston_auth/err.h"

#define HA_RATELIMIT_SLOTS 8192 /* clients remembered at once (power of two) */

struct ha_ratelimit;

/* 0 turns a limit off. A client's bucket holds client_per_min tokens and refills one every
 * 60/client_per_min s; the total bucket holds 2 * total_per_s and refills total_per_s a
 * second. */
struct ha_rl_limits {
    long total_per_s;
    long client_per_min;
};

enum ha_rl_result {
    HA_RL_OK = 0,
    HA_RL_CLIENT, /* this client is over its limit */
    HA_RL_TOTAL,  /* the process is over its total */
};

/* slots: a power of two; *out is the caller's (ha_ratelimit_free). HA_ERR_NOMEM,
 * HA_ERR_INVALID. */
enum ha_err ha_ratelimit_new(size_t slots, struct ha_ratelimit **out);
void ha_ratelimit_free(struct ha_ratelimit *rl);
/* Takes one token from client's bucket and one from the total, both or neither. now_ns is a
 * monotonic clock. Thread-safe. A client not seen before (or forgotten: the table keeps the
 * most recently active clients) starts with a full bucket. */
enum ha_rl_result ha_ratelimit_take(struct ha_ratelimit *rl, const char *client, uint64_t now_ns,
                                    const struct ha_rl_limits *lim);

#endif
