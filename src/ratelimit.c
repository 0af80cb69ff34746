/* Token buckets for calls that cost the tenant's rate limit (the code-for-token exchange).
 *
 * Clients live in a fixed open-addressed table (HA_RATELIMIT_SLOTS, a few hundred KiB):
 * a lookup probes at most PROBES slots and, when the client is not there, takes an empty
 * slot or the one idle longest. An evicted client comes back with a full bucket, which gives
 * nothing away that the total bucket does not still bound. Names are hashed with a per-process
 * random seed so nobody can aim many addresses at one slot. One mutex: it is taken once per
 * exchange, next to a network round trip. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include "houston_auth/ratelimit.h"

#define PROBES 8
#define NS_PER_S 1000000000.0

struct slot {
    uint64_t hash; /* 0: empty */
    uint64_t last_ns;
    double tokens;
};

struct ha_ratelimit {
    pthread_mutex_t lock;
    uint64_t seed;
    size_t mask;
    struct slot total;
    int total_started;
    struct slot *slots;
};

enum ha_err ha_ratelimit_new(size_t slots, struct ha_ratelimit **out)
{
    struct ha_ratelimit *rl;

    if (slots == 0 || (slots & (slots - 1)) != 0)
        return HA_ERR_INVALID;
    rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return HA_ERR_NOMEM;
    rl->slots = calloc(slots, sizeof(*rl->slots));
    if (rl->slots == NULL || RAND_bytes((unsigned char *)&rl->seed, sizeof(rl->seed)) != 1) {
        free(rl->slots);
        free(rl);
        return HA_ERR_NOMEM;
    }
    rl->mask = slots - 1;
    pthread_mutex_init(&rl->lock, NULL);
    *out = rl;
    return HA_OK;
}

void ha_ratelimit_free(struct ha_ratelimit *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl->slots);
    free(rl);
}

/* FNV-1a over the seed and the name; never 0 (0 marks an empty slot). */
static uint64_t name_hash(uint64_t seed, const char *s)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    return h != 0 ? h : 1;
}

/* The client's slot: found, else a new full one in an empty or the longest-idle slot. */
static struct slot *client_slot(struct ha_ratelimit *rl, const char *client, uint64_t now,
                                double capacity)
{
    uint64_t h = name_hash(rl->seed, client);
    struct slot *victim = NULL;

    for (size_t i = 0; i < PROBES; i++) {
        struct slot *s = &rl->slots[(h + i) & rl->mask];
        if (s->hash == h)
            return s;
        if (victim == NULL || s->hash == 0 || (victim->hash != 0 && s->last_ns < victim->last_ns))
            victim = s;
    }
    victim->hash = h;
    victim->last_ns = now;
    victim->tokens = capacity;
    return victim;
}

static void refill(struct slot *s, uint64_t now, double per_s, double capacity)
{
    if (now > s->last_ns) {
        s->tokens += (double)(now - s->last_ns) / NS_PER_S * per_s;
        s->last_ns = now;
    }
    if (s->tokens > capacity)
        s->tokens = capacity;
}

enum ha_rl_result ha_ratelimit_take(struct ha_ratelimit *rl, const char *client, uint64_t now_ns,
                                    const struct ha_rl_limits *lim)
{
    double ccap = (double)lim->client_per_min, tcap = 2.0 * (double)lim->total_per_s;
    struct slot *c = NULL;
    enum ha_rl_result r = HA_RL_OK;

    pthread_mutex_lock(&rl->lock);
    if (lim->client_per_min > 0) {
        c = client_slot(rl, client, now_ns, ccap);
        refill(c, now_ns, ccap / 60.0, ccap);
        if (c->tokens < 1.0)
            r = HA_RL_CLIENT;
    }
    if (r == HA_RL_OK && lim->total_per_s > 0) {
        if (!rl->total_started) {
            rl->total.tokens = tcap;
            rl->total.last_ns = now_ns;
            rl->total_started = 1;
        }
        refill(&rl->total, now_ns, (double)lim->total_per_s, tcap);
        if (rl->total.tokens < 1.0)
            r = HA_RL_TOTAL;
        else
            rl->total.tokens -= 1.0;
    }
    if (r == HA_RL_OK && c != NULL)
        c->tokens -= 1.0;
    pthread_mutex_unlock(&rl->lock);
    return r;
}
