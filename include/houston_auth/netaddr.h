/* IP addresses and CIDR ranges: which peers are trusted proxies, and who the client behind
 * them is (the rightmost X-Forwarded-For entry that is not a trusted proxy). */
#ifndef HOUSTON_AUTH_NETADDR_H
#define HOUSTON_AUTH_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include "houston_auth/err.h"

#define HA_MAX_PROXIES 32         /* trustedProxies entries */
#define HA_MAX_FORWARDED_FOR 1024 /* bytes of X-Forwarded-For kept from a request */
#define HA_CLIENT_KEY_LEN 48      /* "v4 a.b.c.d" or "v6 <first 64 bits>/64", NUL included */

/* An address, IPv4-mapped IPv6 folded to IPv4. */
struct ha_ipaddr {
    int v6; /* 0: IPv4 in bytes[0..3]; 1: IPv6 in bytes[0..15] */
    unsigned char bytes[16];
};

struct ha_cidr {
    struct ha_ipaddr addr; /* bits past prefix are zero */
    int prefix;
};

/* A textual IPv4 or IPv6 address (no brackets, no zone, no port). HA_ERR_INVALID. */
enum ha_err ha_ipaddr_parse(const char *s, size_t len, struct ha_ipaddr *out);
/* "a.b.c.d[/n]" or "v6[/n]" (no prefix: a single host). Host bits must be zero.
 * HA_ERR_INVALID. */
enum ha_err ha_cidr_parse(const char *s, size_t len, struct ha_cidr *out);
bool ha_cidr_contains(const struct ha_cidr *c, const struct ha_ipaddr *a);

/* The rate-limit identity of the client of a request that came from peer (the TCP peer's
 * address text) with the X-Forwarded-For value xff (NULL: none): the peer itself unless it
 * is in proxies; then the rightmost xff entry that is not, if it parses, else the peer.
 * IPv6 clients are keyed by their /64 (one subscriber's usual allocation), so a host cannot
 * take a fresh identity per address. key gets HA_CLIENT_KEY_LEN bytes; HA_ERR_INVALID when
 * peer itself does not parse. */
enum ha_err ha_client_key(const char *peer, const char *xff, const struct ha_cidr *proxies,
                          size_t nproxies, char key[HA_CLIENT_KEY_LEN]);

#endif
