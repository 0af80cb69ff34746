/* The URL grammar: hosts, ports, http(s) URLs and their origins (the only parser of them);
 * query strings, form bodies and percent-encoding. */
#ifndef HOUSTON_AUTH_URL_H
#define HOUSTON_AUTH_URL_H

#include <stdbool.h>
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

/* ---- hosts, ports, URLs and origins ---- */

#define HA_URL_HTTPS "https://"
#define HA_URL_HTTP "http://"
#define HA_HOST_MAX 253 /* RFC 1035 §2.3.4, without the trailing dot */
#define HA_LABEL_MAX 63

/* Flags for ha_url_check_hostname and ha_url_parse_hostport. */
#define HA_URL_LOWER 1u     /* a DNS name must be lower-case */
#define HA_URL_NEED_PORT 2u /* a port must follow the host */
#define HA_URL_PORT_ZERO 4u /* ":0" is a port too (a listen address: any free port) */

/* host[:port], pointing into the parsed text. */
struct ha_hostport {
    const char *host; /* an IPv6 literal without its brackets */
    size_t host_len;
    bool ipv6; /* the host was "[...]" */
    bool has_port;
    int port; /* when has_port */
};

/* An absolute http(s) URL split at its authority, pointing into the parsed text. */
struct ha_url {
    bool https;
    const char *authority; /* host[:port] as written */
    size_t authority_len;
    struct ha_hostport hp;
    const char *rest; /* path, query and fragment: "", or starts with '/', '?' or '#' */
};

/* HA_OK when h[0..len) is a DNS name: labels of ASCII letters, digits and '-' (none starting
 * with '-', at most HA_LABEL_MAX bytes), joined by single dots, at most HA_HOST_MAX bytes, no
 * leading or trailing dot; lower-case only with HA_URL_LOWER. Dotted-decimal IPv4 is a name
 * by this grammar. Else HA_ERR_INVALID and, when reason is not NULL, *reason says why
 * (static, names no input). */
enum ha_err ha_url_check_hostname(const char *h, size_t len, unsigned flags, const char **reason);
/* Parses s[0..len) as host[:port] or [IPv6][:port] into *out (only on HA_OK): the host a DNS
 * name (ha_url_check_hostname) or an address inet_pton reads; the port 1 to 65535 in decimal
 * without a leading zero (0 too with HA_URL_PORT_ZERO), required with HA_URL_NEED_PORT. An
 * unbracketed IPv6 address is refused. HA_ERR_INVALID with *reason as above. */
enum ha_err ha_url_parse_hostport(const char *s, size_t len, unsigned flags,
                                  struct ha_hostport *out, const char **reason);
/* Parses "http[s]://host[:port][rest]" (scheme in any case; host in any case) into *out (only
 * on HA_OK). Refuses any other scheme, userinfo and a malformed host or port; rest is not
 * judged: callers hold their own rules for paths and queries. HA_ERR_INVALID with *reason. */
enum ha_err ha_url_parse(const char *url, struct ha_url *out, const char **reason);
/* Whether hp is this machine: localhost, *.localhost, 127.0.0.0/8 or ::1 (any spelling). */
bool ha_url_is_loopback(const struct ha_hostport *hp);
/* Formats u's origin (RFC 6454 §6.2), "scheme://host[:port]": scheme and host lower-cased,
 * an IPv6 host in brackets, the scheme's default port left out. *out caller frees. */
enum ha_err ha_url_format_origin(const struct ha_url *u, char **out);
/* ha_url_parse, then ha_url_format_origin: the one origin serialiser. HA_ERR_INVALID when url
 * is NULL, longer than HA_MAX_URL or not parsed. */
enum ha_err ha_url_origin(const char *url, char **out);

#endif
