/* Fuzz target: the URL grammar (url.c) that config.c, the redirect guard, oidc.c, houston.c
 * and the dev tools share: host names, host[:port], http(s) URLs and the origin serialiser.
 * Invariants: an accepted host name is LDH labels of 1 to 63 bytes, none starting with '-',
 * at most 253 bytes; an accepted host:port points inside the input, its IPv6 host is an
 * address inet_pton reads, its port is in range and present when required; an accepted URL
 * has no userinfo and a rest that starts with '/', '?' or '#'; its origin is lower-case,
 * bare, parses again, and is a fixed point of ha_url_origin. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/proto.h"
#include "houston_auth/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *h, size_t n, unsigned flags)
{
    size_t label = 0;
    if (n == 0 || n > HA_HOST_MAX || h[n - 1] == '.')
        abort();
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    (!(flags & HA_URL_LOWER) && c >= 'A' && c <= 'Z');
        if (!alnum && c != '-' && c != '.')
            abort();
        if ((c == '.' || c == '-') && label == 0)
            abort();
        label = c == '.' ? 0 : label + 1;
        if (label > HA_LABEL_MAX)
            abort();
    }
}

static void check_hostport(const char *s, size_t len, unsigned flags)
{
    struct ha_hostport hp;
    unsigned char addr[16];
    char tmp[64];

    if (ha_url_parse_hostport(s, len, flags, &hp, NULL) != HA_OK)
        return;
    if (hp.host < s || hp.host + hp.host_len > s + len)
        abort();
    if (hp.ipv6) {
        if (hp.host_len >= sizeof(tmp))
            abort();
        memcpy(tmp, hp.host, hp.host_len);
        tmp[hp.host_len] = '\0';
        if (inet_pton(AF_INET6, tmp, addr) != 1)
            abort();
    } else {
        check_name(hp.host, hp.host_len, flags);
    }
    if ((flags & HA_URL_NEED_PORT) && !hp.has_port)
        abort();
    if (hp.has_port &&
        (hp.port > 65535 || hp.port < 0 || (hp.port == 0 && !(flags & HA_URL_PORT_ZERO))))
        abort();
    (void)ha_url_is_loopback(&hp);
}

static void check_url(const char *s)
{
    struct ha_url u, again;
    char *o = NULL, *o2 = NULL;

    if (ha_url_parse(s, &u, NULL) != HA_OK)
        return;
    if (memchr(u.authority, '@', u.authority_len) != NULL)
        abort();
    if (u.rest[0] != '\0' && u.rest[0] != '/' && u.rest[0] != '?' && u.rest[0] != '#')
        abort();
    if (ha_url_format_origin(&u, &o) != HA_OK)
        abort();
    for (const char *c = o; *c != '\0'; c++) {
        if (*c >= 'A' && *c <= 'Z')
            abort();
    }
    if (ha_url_parse(o, &again, NULL) != HA_OK || again.rest[0] != '\0' || again.https != u.https)
        abort();
    if (ha_url_origin(o, &o2) != HA_OK || strcmp(o, o2) != 0)
        abort();
    free(o2);
    free(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned flags[] = {0, HA_URL_LOWER, HA_URL_NEED_PORT | HA_URL_PORT_ZERO};
    char *s;

    if (size > HA_MAX_URL)
        return 0;
    s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (ha_url_check_hostname(s, size, flags[i], NULL) == HA_OK)
            check_name(s, size, flags[i]);
        check_hostport(s, size, flags[i]);
    }
    check_url(s);
    free(s);
    return 0;
}
