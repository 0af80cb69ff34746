/* Query strings, form bodies and percent-encoding. */
#ifndef HOUSTON_AUTH_URL_H
#define HOUSTON_AUTH_URL_H

#include <stddef.h>
#include "houston_auth/err.h"

struct ha_kv {
    char *key;
    char *value;
};

/* A list of decoded name/value pairs, in input order (duplicates kept). */
struct ha_kvlist {
    struct ha_kv *items;
    size_t count;
};

/* Parses "a=1&b=x%20y" (application/x-www-form-urlencoded rules: '+' is a space) into
 * out, which the caller cleans up. A pair without '=' has value "". Empty pairs are skipped.
 * HA_ERR_INVALID on malformed percent-encoding or a decoded NUL; HA_ERR_TOO_LARGE past
 * HA_MAX_PAIRS pairs. On error out is untouched. */
enum ha_err ha_url_parse_query(const char *s, size_t len, struct ha_kvlist *out);
void ha_kvlist_cleanup(struct ha_kvlist *l);
/* First value for key (borrowed) or NULL. */
const char *ha_kvlist_get(const struct ha_kvlist *l, const char *key);
/* Number of pairs named key. */
size_t ha_kvlist_count(const struct ha_kvlist *l, const char *key);
/* Appends a copy of key/value. */
enum ha_err ha_kvlist_add(struct ha_kvlist *l, const char *key, const char *value);

/* Percent-encodes everything but RFC 3986 unreserved characters; *out caller frees. */
enum ha_err ha_url_encode(const char *in, size_t len, char **out);
/* Strict percent-decoding (no '+' rule); refuses bad escapes and decoded NUL. */
enum ha_err ha_url_decode(const char *in, size_t len, char **out);

/* The path of a raw request target (up to '?' or '#') as a proxy in front may have matched
 * it, widened to what Express behind it may read: percent-escapes decoded once, '\' read as
 * '/', '/' runs merged, "." and ".." segments resolved (never above the root), ASCII letters
 * lower-cased. Into out (cap bytes with the NUL), meaningful only on success.
 * HA_ERR_INVALID when raw does not start with '/' or decodes to a NUL; HA_ERR_TOO_LARGE when
 * the path does not fit. */
enum ha_err ha_url_normalize_path(const char *raw, char *out, size_t cap);

#endif
