/* Injectable clock and randomness, and small helpers used across modules. */
#ifndef HOUSTON_AUTH_UTIL_H
#define HOUSTON_AUTH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include "houston_auth/err.h"

/* Seconds since the epoch. */
typedef long (*ha_now_fn)(void *ctx);
/* Fills buf with len cryptographically random bytes. */
typedef enum ha_err (*ha_rand_fn)(void *ctx, unsigned char *buf, size_t len);

struct ha_clock {
    ha_now_fn now;
    void *ctx;
};
struct ha_rng {
    ha_rand_fn fill;
    void *ctx;
};

/* time(NULL) and RAND_bytes(). */
long ha_now_system(void *ctx);
enum ha_err ha_rand_openssl(void *ctx, unsigned char *buf, size_t len);
extern const struct ha_clock ha_clock_system;
extern const struct ha_rng ha_rng_openssl;

/* Monotonic nanoseconds, for durations. */
uint64_t ha_mono_ns(void);

/* strdup that returns NULL for NULL. */
char *ha_strdup(const char *s);
/* Constant-time equality of two NUL-terminated strings (length leaks, content doesn't). */
int ha_str_ct_equal(const char *a, const char *b);
/* Frees s after wiping strlen(s) bytes; NULL is a no-op. */
void ha_free_secret(char *s);

#endif
