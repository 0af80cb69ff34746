/* The system clock and OpenSSL's randomness behind injectable interfaces, and small helpers. */
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "houston_auth/util.h"

long ha_now_system(void *ctx)
{
    (void)ctx;
    return (long)time(NULL);
}

enum ha_err ha_rand_openssl(void *ctx, unsigned char *buf, size_t len)
{
    (void)ctx;
    if (len > (size_t)0x7fffffff || RAND_bytes(buf, (int)len) != 1)
        return HA_ERR_CRYPTO;
    return HA_OK;
}

const struct ha_clock ha_clock_system = {ha_now_system, NULL};
const struct ha_rng ha_rng_openssl = {ha_rand_openssl, NULL};

uint64_t ha_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

char *ha_strdup(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

int ha_str_ct_equal(const char *a, const char *b)
{
    size_t la, lb;
    if (a == NULL || b == NULL)
        return 0;
    la = strlen(a);
    lb = strlen(b);
    if (la != lb)
        return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}

void ha_free_secret(char *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}
