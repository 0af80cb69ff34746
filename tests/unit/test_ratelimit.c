/* Token buckets for token exchanges: per client, in total, refill over time, bounded
 * memory (a flood of clients forgets the idlest, never grows the table). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include "houston_auth/ratelimit.h"

#define S 1000000000ULL

static int takes(struct ha_ratelimit *rl, const char *who, uint64_t now,
                 const struct ha_rl_limits *lim, int n, enum ha_rl_result *last)
{
    int ok = 0;
    for (int i = 0; i < n; i++) {
        *last = ha_ratelimit_take(rl, who, now, lim);
        if (*last != HA_RL_OK)
            break;
        ok++;
    }
    return ok;
}

static void test_client_bucket(void **state)
{
    struct ha_ratelimit *rl = NULL;
    struct ha_rl_limits lim = {0, 6}; /* 6 a minute: one every 10 s */
    enum ha_rl_result r;
    (void)state;
    assert_int_equal(ha_ratelimit_new(64, &rl), HA_OK);
    assert_int_equal(takes(rl, "a", 100 * S, &lim, 100, &r), 6);
    assert_int_equal(r, HA_RL_CLIENT);
    assert_int_equal(takes(rl, "b", 100 * S, &lim, 100, &r), 6); /* another client */
    assert_int_equal(takes(rl, "a", 105 * S, &lim, 100, &r), 0);
    assert_int_equal(takes(rl, "a", 110 * S, &lim, 100, &r), 1);
    assert_int_equal(takes(rl, "a", 1000 * S, &lim, 100, &r), 6); /* never more than the cap */
    lim.client_per_min = 0;                                       /* off */
    assert_int_equal(takes(rl, "a", 1000 * S, &lim, 100, &r), 100);
    ha_ratelimit_free(rl);
}

static void test_total_bucket(void **state)
{
    struct ha_ratelimit *rl = NULL;
    struct ha_rl_limits lim = {5, 1000}; /* 5 a second, a burst of 10 */
    enum ha_rl_result r;
    char who[16];
    int ok = 0;
    (void)state;
    assert_int_equal(ha_ratelimit_new(64, &rl), HA_OK);
    for (int i = 0; i < 50; i++) {
        snprintf(who, sizeof(who), "c%d", i);
        ok += takes(rl, who, 7 * S, &lim, 1, &r);
    }
    assert_int_equal(ok, 10);
    assert_int_equal(r, HA_RL_TOTAL);
    /* A refused total costs the client nothing. */
    lim.total_per_s = 0;
    assert_int_equal(takes(rl, "c49", 7 * S, &lim, 2000, &r), 1000);
    lim.total_per_s = 5;
    assert_int_equal(takes(rl, "x", 8 * S, &lim, 100, &r), 5);
    ha_ratelimit_free(rl);
}

/* More clients than slots: the table stays its size and each newcomer still gets a bucket;
 * a client forgotten comes back full, which the total still bounds. */
static void test_many_clients(void **state)
{
    struct ha_ratelimit *rl = NULL;
    struct ha_rl_limits lim = {0, 1};
    enum ha_rl_result r;
    char who[32];
    (void)state;
    assert_int_equal(ha_ratelimit_new(16, &rl), HA_OK);
    assert_int_not_equal(ha_ratelimit_new(15, &rl), HA_OK);
    for (int i = 0; i < 10000; i++) {
        snprintf(who, sizeof(who), "client-%d", i);
        assert_int_equal(takes(rl, who, (uint64_t)i, &lim, 2, &r), 1);
    }
    ha_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_bucket),
        cmocka_unit_test(test_total_bucket),
        cmocka_unit_test(test_many_clients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
