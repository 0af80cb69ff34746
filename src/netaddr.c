/* IP addresses, CIDR ranges and the client behind trusted proxies.
 *
 * Addresses are parsed by inet_pton (no hand-written dotted-quad parser). X-Forwarded-For is
 * read from the right: each proxy appends the address it received the request from, so the
 * rightmost entry that is not one of our trusted proxies was written by a trusted proxy about
 * its own peer, and only the entries left of it are the client's to forge. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include "houston_auth/ctype.h"
#include "houston_auth/netaddr.h"

#define ADDR_TEXT_MAX 64

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

enum ha_err ha_ipaddr_parse(const char *s, size_t len, struct ha_ipaddr *out)
{
    char tmp[ADDR_TEXT_MAX];
    unsigned char b[16];

    if (len == 0 || len >= sizeof(tmp))
        return HA_ERR_INVALID;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, tmp, b) == 1) {
        memcpy(out->bytes, b, 4);
        return HA_OK;
    }
    if (inet_pton(AF_INET6, tmp, b) != 1)
        return HA_ERR_INVALID;
    if (memcmp(b, v4_mapped, sizeof(v4_mapped)) == 0) {
        memcpy(out->bytes, b + 12, 4);
        return HA_OK;
    }
    out->v6 = 1;
    memcpy(out->bytes, b, 16);
    return HA_OK;
}

/* True when the bits of a past prefix are all zero. */
static bool host_bits_zero(const struct ha_ipaddr *a, int prefix)
{
    int total = a->v6 ? 128 : 32;
    for (int bit = prefix; bit < total; bit++) {
        if (a->bytes[bit / 8] & (0x80 >> (bit % 8)))
            return false;
    }
    return true;
}

enum ha_err ha_cidr_parse(const char *s, size_t len, struct ha_cidr *out)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash != NULL ? (size_t)(slash - s) : len;
    int prefix = 0, max;

    if (ha_ipaddr_parse(s, alen, &out->addr) != HA_OK)
        return HA_ERR_INVALID;
    max = out->addr.v6 ? 128 : 32;
    if (slash == NULL) {
        out->prefix = max;
        return HA_OK;
    }
    if (len - alen < 2 || len - alen > 4)
        return HA_ERR_INVALID;
    for (const char *p = slash + 1; p < s + len; p++) {
        if (!ha_isdigit(*p))
            return HA_ERR_INVALID;
        prefix = prefix * 10 + (*p - '0');
    }
    if ((slash[1] == '0' && len - alen > 2) || prefix > max || !host_bits_zero(&out->addr, prefix))
        return HA_ERR_INVALID;
    out->prefix = prefix;
    return HA_OK;
}

bool ha_cidr_contains(const struct ha_cidr *c, const struct ha_ipaddr *a)
{
    int full = c->prefix / 8, rest = c->prefix % 8;

    if (c->addr.v6 != a->v6)
        return false;
    if (memcmp(c->addr.bytes, a->bytes, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((c->addr.bytes[full] ^ a->bytes[full]) & (0xff00 >> rest)) == 0;
}

static bool trusted(const struct ha_ipaddr *a, const struct ha_cidr *proxies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ha_cidr_contains(&proxies[i], a))
            return true;
    }
    return false;
}

static void format_key(const struct ha_ipaddr *a, char key[HA_CLIENT_KEY_LEN])
{
    const unsigned char *b = a->bytes;
    if (!a->v6)
        snprintf(key, HA_CLIENT_KEY_LEN, "v4 %u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    else
        snprintf(key, HA_CLIENT_KEY_LEN, "v6 %02x%02x:%02x%02x:%02x%02x:%02x%02x::/64", b[0], b[1],
                 b[2], b[3], b[4], b[5], b[6], b[7]);
}

/* The entry of xff that ends at end (exclusive): its raw start, and its text trimmed of
 * blanks in [*s, *e). */
static const char *entry_before(const char *xff, const char *end, const char **s, const char **e)
{
    const char *start = end;
    while (start > xff && start[-1] != ',')
        start--;
    *s = start;
    *e = end;
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
    return start;
}

enum ha_err ha_client_key(const char *peer, const char *xff, const struct ha_cidr *proxies,
                          size_t nproxies, char key[HA_CLIENT_KEY_LEN])
{
    struct ha_ipaddr client, hop;
    const char *end;

    if (peer == NULL || ha_ipaddr_parse(peer, strlen(peer), &client) != HA_OK)
        return HA_ERR_INVALID;
    if (xff != NULL && strlen(xff) <= HA_MAX_FORWARDED_FOR && trusted(&client, proxies, nproxies)) {
        end = xff + strlen(xff);
        for (;;) {
            const char *s, *e, *start = entry_before(xff, end, &s, &e);
            if (ha_ipaddr_parse(s, (size_t)(e - s), &hop) != HA_OK)
                break; /* not written by a proxy of ours: keep the last good hop */
            client = hop;
            if (!trusted(&hop, proxies, nproxies) || start == xff)
                break;
            end = start - 1; /* the comma */
        }
    }
    format_key(&client, key);
    return HA_OK;
}
