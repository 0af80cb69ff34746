/* A growable, NUL-terminated byte buffer with a hard cap. */
#ifndef HOUSTON_AUTH_BUF_H
#define HOUSTON_AUTH_BUF_H

#include <stddef.h>
#include "houston_auth/err.h"

struct ha_buf {
    char *data; /* NUL-terminated while len > 0 or after any append */
    size_t len;
    size_t cap;
    size_t max; /* appends that would pass max fail with HA_ERR_TOO_LARGE; 0 = 1 MiB */
};

/* Caller-owned storage; no allocation until the first append. */
void ha_buf_init(struct ha_buf *b, size_t max);
/* Frees the storage (wiping it first) and resets b. */
void ha_buf_cleanup(struct ha_buf *b);
/* HA_OK, HA_ERR_NOMEM or HA_ERR_TOO_LARGE; on error b is unchanged. */
enum ha_err ha_buf_append(struct ha_buf *b, const char *s, size_t n);
enum ha_err ha_buf_append_str(struct ha_buf *b, const char *s);
enum ha_err ha_buf_appendf(struct ha_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends "<sep>key=value" with both percent-encoded (RFC 3986 unreserved kept);
 * sep is '&' unless b is empty or ends in '?'. */
enum ha_err ha_buf_append_param(struct ha_buf *b, const char *key, const char *value);
/* Hands the data to the caller (never NULL on HA_OK, "" for empty) and resets b. */
enum ha_err ha_buf_steal(struct ha_buf *b, char **out);

#endif
