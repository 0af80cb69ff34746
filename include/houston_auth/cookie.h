/* Cookie request headers and Set-Cookie response headers (RFC 6265). */
#ifndef HOUSTON_AUTH_COOKIE_H
#define HOUSTON_AUTH_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include "houston_auth/err.h"
#include "houston_auth/url.h"

/* Parses a Cookie header ("a=1; b=2") into out (caller cleans up); values are not
 * percent-decoded; surrounding DQUOTEs are removed. Pairs without '=' or with an empty
 * name are skipped. HA_ERR_TOO_LARGE past HA_MAX_COOKIE_HEADER bytes or
 * HA_MAX_COOKIE_PAIRS pairs. */
enum ha_err ha_cookie_parse(const char *header, size_t len, struct ha_kvlist *out);

struct ha_set_cookie {
    const char *name;
    const char *value;  /* "" when clearing */
    const char *domain; /* NULL: host-only */
    const char *path;   /* NULL: omitted */
    long max_age;       /* < 0: omitted (session cookie); 0 clears (adds Expires in 1970) */
    bool http_only;
    bool secure;
    const char *same_site; /* "Lax", "Strict", "None" or NULL */
};

/* Formats a Set-Cookie header value. HA_ERR_INVALID when name or value holds characters
 * RFC 6265 §4.1.1 does not allow (CTLs, whitespace, '"', ',', ';', '\\'), or when a
 * "__Secure-" name lacks Secure or a "__Host-" name lacks Secure, has a Domain or a Path other
 * than "/" (prefixes matched case-insensitively, as browsers do). *out caller frees. */
enum ha_err ha_cookie_format(const struct ha_set_cookie *c, char **out);

#endif
