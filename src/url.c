/* The URL grammar, in one place: hosts, ports, http(s) URLs and their origins; query strings,
 * form bodies (application/x-www-form-urlencoded) and percent-encoding.
 *
 * Hosts, ports and origins are parsed here and nowhere else (config.c, redirect_guard.c,
 * oidc.c, houston.c and the dev tools all call in), so what the configuration accepts as the
 * app's origin and what the redirect guard and houston.c compare against it are read by one
 * grammar and serialised by one function. It is a small strict subset of RFC 3986 that every
 * browser reads the same way: "http[s]://" in any case, no userinfo, a host that is a DNS
 * name of LDH labels (RFC 1123 §2.1: none starting with '-') or a bracketed IPv6 address
 * inet_pton accepts, and a decimal port without a leading zero. Whatever is outside it is
 * refused, never repaired.
 *
 * Decoding is strict: every '%' must be followed by two hex digits, and a NUL byte, raw or
 * decoded, is refused because every consumer treats the result as a C string (a "%00" that
 * silently truncated a value would make two different inputs look the same). Encoding keeps
 * only RFC 3986 §2.3 unreserved characters, which is safe in a query, a form body and a path.
 * Parsers build into a local list and hand it over only on success. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "houston_auth/buf.h"
#include "houston_auth/ctype.h"
#include "houston_auth/proto.h"
#include "houston_auth/url.h"
#include "houston_auth/util.h"

/* Decodes in[0..len) into a new string; plus_space applies the form rule ('+' is a space,
 * WHATWG URL "application/x-www-form-urlencoded parsing"). */
static enum ha_err decode(const char *in, size_t len, bool plus_space, char **out)
{
    char *s = malloc(len + 1);
    size_t o = 0;
    int hi, lo;

    if (s == NULL)
        return HA_ERR_NOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            hi = i + 2 < len ? ha_hexval((unsigned char)in[i + 1]) : -1;
            lo = i + 2 < len ? ha_hexval((unsigned char)in[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                goto bad;
            s[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '\0') {
            goto bad;
        } else {
            s[o++] = (char)(plus_space && c == '+' ? ' ' : c);
        }
    }
    s[o] = '\0';
    *out = s;
    return HA_OK;
bad:
    s[o] = '\0';
    ha_free_secret(s);
    return HA_ERR_INVALID;
}

enum ha_err ha_url_decode(const char *in, size_t len, char **out)
{
    if (in == NULL)
        return HA_ERR_INVALID;
    return decode(in, len, false, out);
}

enum ha_err ha_url_encode(const char *in, size_t len, char **out)
{
    static const char hex[] = "0123456789ABCDEF";
    char *s;
    size_t o = 0;

    if (in == NULL)
        return HA_ERR_INVALID;
    if (len > (SIZE_MAX - 1) / 3)
        return HA_ERR_TOO_LARGE;
    s = malloc(len * 3 + 1);
    if (s == NULL)
        return HA_ERR_NOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (ha_isunreserved(c)) {
            s[o++] = (char)c;
        } else {
            s[o++] = '%';
            s[o++] = hex[c >> 4];
            s[o++] = hex[c & 15];
        }
    }
    s[o] = '\0';
    *out = s;
    return HA_OK;
}

void ha_kvlist_cleanup(struct ha_kvlist *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++) {
        ha_free_secret(l->items[i].key);
        ha_free_secret(l->items[i].value);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

const char *ha_kvlist_get(const struct ha_kvlist *l, const char *key)
{
    if (l == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i].key, key) == 0)
            return l->items[i].value;
    }
    return NULL;
}

size_t ha_kvlist_count(const struct ha_kvlist *l, const char *key)
{
    size_t n = 0;
    if (l == NULL || key == NULL)
        return 0;
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i].key, key) == 0)
            n++;
    }
    return n;
}

/* Appends key and value, taking ownership of both (freed on error). */
static enum ha_err add_owned(struct ha_kvlist *l, char *key, char *value)
{
    struct ha_kv *items;
    if (l->count >= SIZE_MAX / sizeof(*items) - 1)
        goto fail;
    items = realloc(l->items, (l->count + 1) * sizeof(*items));
    if (items == NULL)
        goto fail;
    l->items = items;
    l->items[l->count].key = key;
    l->items[l->count].value = value;
    l->count++;
    return HA_OK;
fail:
    ha_free_secret(key);
    ha_free_secret(value);
    return HA_ERR_NOMEM;
}

enum ha_err ha_kvlist_add(struct ha_kvlist *l, const char *key, const char *value)
{
    char *k, *v;
    if (l == NULL || key == NULL || value == NULL)
        return HA_ERR_INVALID;
    k = strdup(key);
    v = strdup(value);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return HA_ERR_NOMEM;
    }
    return add_owned(l, k, v);
}

/* Decodes one "key[=value]" pair of n bytes and appends it to l. */
static enum ha_err parse_pair(const char *p, size_t n, struct ha_kvlist *l)
{
    const char *eq = memchr(p, '=', n);
    size_t klen = eq != NULL ? (size_t)(eq - p) : n;
    char *k = NULL, *v = NULL;
    enum ha_err err;

    err = decode(p, klen, true, &k);
    if (err == HA_OK)
        err = eq != NULL ? decode(eq + 1, n - klen - 1, true, &v) : decode("", 0, true, &v);
    if (err != HA_OK) {
        ha_free_secret(k);
        return err;
    }
    return add_owned(l, k, v);
}

enum ha_err ha_url_parse_query(const char *s, size_t len, struct ha_kvlist *out)
{
    struct ha_kvlist l = {NULL, 0};
    const char *p, *end, *amp;
    enum ha_err err = HA_OK;

    if (s == NULL)
        return HA_ERR_INVALID;
    p = s;
    end = s + len;

    while (p < end && err == HA_OK) {
        amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL)
            amp = end;
        if (amp > p && l.count >= HA_MAX_PAIRS)
            err = HA_ERR_TOO_LARGE;
        else if (amp > p)
            err = parse_pair(p, (size_t)(amp - p), &l);
        p = amp + 1;
    }
    if (err != HA_OK) {
        ha_kvlist_cleanup(&l);
        return err;
    }
    *out = l;
    return HA_OK;
}

/* Resolves a completed "." or ".." segment, out[seg..*o), against what precedes it. */
static void path_dots(char *out, size_t *o, size_t seg)
{
    size_t n = *o - seg;
    if (n == 1 && out[seg] == '.') {
        *o = seg;
    } else if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
        *o = seg > 1 ? seg - 1 : seg; /* back over the '/' before "..", never above the root */
        while (*o > 0 && out[*o - 1] != '/')
            (*o)--;
    }
}

/* Appends one decoded path byte: case folded, '\' read as '/', '/' runs merged, "." and ".."
 * resolved as each segment completes. *seg is where the current segment starts. */
static void path_push(char *out, size_t *o, size_t *seg, char c)
{
    if (c == '\\')
        c = '/';
    c = ha_tolower(c);
    if (c != '/') {
        out[(*o)++] = c;
        return;
    }
    path_dots(out, o, *seg);
    if (out[*o - 1] != '/')
        out[(*o)++] = '/';
    *seg = *o;
}

enum ha_err ha_url_normalize_path(const char *raw, char *out, size_t cap)
{
    size_t len = strcspn(raw, "?#"), o = 1, seg = 1;
    int hi, lo;

    if (len >= cap)
        return HA_ERR_TOO_LARGE;
    if (raw[0] != '/')
        return HA_ERR_INVALID;
    out[0] = '/';
    for (size_t i = 1; i < len; i++) {
        char c = raw[i];
        hi = c == '%' && i + 2 < len ? ha_hexval((unsigned char)raw[i + 1]) : -1;
        lo = hi >= 0 ? ha_hexval((unsigned char)raw[i + 2]) : -1;
        if (hi >= 0 && lo >= 0) {
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0')
            return HA_ERR_INVALID;
        path_push(out, &o, &seg, c);
    }
    path_dots(out, &o, seg);
    out[o] = '\0';
    return HA_OK;
}

/* ---- hosts, ports, URLs and origins ---- */

static enum ha_err invalid(const char **reason, const char *why)
{
    if (reason != NULL)
        *reason = why;
    return HA_ERR_INVALID;
}

enum ha_err ha_url_check_hostname(const char *h, size_t len, unsigned flags, const char **reason)
{
    size_t label = 0;

    if (len == 0 || len > HA_HOST_MAX)
        return invalid(reason, "host name must be 1 to 253 characters");
    for (size_t i = 0; i < len; i++) {
        char c = h[i];
        if (ha_isupper(c) && (flags & HA_URL_LOWER))
            return invalid(reason, "host name must be lowercase");
        if (!ha_islabelchar(c) && c != '.')
            return invalid(reason, "host name may hold only letters, digits, '-' and '.'");
        if (c == '.' && label == 0)
            return invalid(reason, "host name has an empty label");
        if (c == '-' && label == 0)
            return invalid(reason, "host name label starts with '-'");
        label = c == '.' ? 0 : label + 1;
        if (label > HA_LABEL_MAX)
            return invalid(reason, "host name label longer than 63 characters");
    }
    if (label == 0)
        return invalid(reason, "host name must not end with '.'");
    return HA_OK;
}

/* 1 to 65535 in plain decimal, no sign or leading zero; "0" too when HA_URL_PORT_ZERO. */
static enum ha_err parse_port(const char *p, size_t len, unsigned flags, int *out,
                              const char **reason)
{
    long v = 0;

    if ((flags & HA_URL_PORT_ZERO) && len == 1 && p[0] == '0') {
        *out = 0;
        return HA_OK;
    }
    if (len == 0 || len > 5 || p[0] == '0')
        return invalid(reason, "port must be a number from 1 to 65535");
    for (size_t i = 0; i < len; i++) {
        if (!ha_isdigit(p[i]))
            return invalid(reason, "port must be a number from 1 to 65535");
        v = v * 10 + (p[i] - '0');
    }
    if (v > 65535)
        return invalid(reason, "port must be a number from 1 to 65535");
    *out = (int)v;
    return HA_OK;
}

/* The inside of "[...]": an IPv6 address as inet_pton reads it (no zone). */
static enum ha_err check_ipv6(const char *h, size_t len, const char **reason)
{
    char tmp[INET6_ADDRSTRLEN];
    unsigned char addr[16];

    if (len == 0 || len >= sizeof(tmp))
        return invalid(reason, "bad IPv6 address in brackets");
    memcpy(tmp, h, len);
    tmp[len] = '\0';
    if (inet_pton(AF_INET6, tmp, addr) != 1)
        return invalid(reason, "bad IPv6 address in brackets");
    return HA_OK;
}

/* The host of s[0..len): a bracketed IPv6 literal or a DNS name; *rest is what follows it. */
static enum ha_err parse_host(const char *s, size_t len, unsigned flags, struct ha_hostport *hp,
                              const char **rest, const char **reason)
{
    const char *end = s + len, *colon, *close;
    enum ha_err err;

    if (len > 0 && s[0] == '[') {
        close = memchr(s, ']', len);
        if (close == NULL)
            return invalid(reason, "missing ']' after the IPv6 address");
        hp->host = s + 1;
        hp->host_len = (size_t)(close - s - 1);
        hp->ipv6 = true;
        *rest = close + 1;
        if (*rest < end && **rest != ':')
            return invalid(reason, "expected ':' and a port after ']'");
        return check_ipv6(hp->host, hp->host_len, reason);
    }
    colon = memchr(s, ':', len);
    hp->host = s;
    hp->host_len = colon != NULL ? (size_t)(colon - s) : len;
    *rest = s + hp->host_len;
    if (colon != NULL && memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL)
        return invalid(reason, "IPv6 addresses go in brackets, like [::1]:8872");
    err = ha_url_check_hostname(hp->host, hp->host_len, flags, reason);
    return err;
}

enum ha_err ha_url_parse_hostport(const char *s, size_t len, unsigned flags,
                                  struct ha_hostport *out, const char **reason)
{
    struct ha_hostport hp;
    const char *rest = NULL, *end = s + len;
    enum ha_err err;

    memset(&hp, 0, sizeof(hp));
    err = parse_host(s, len, flags, &hp, &rest, reason);
    if (err != HA_OK)
        return err;
    if (rest == end && (flags & HA_URL_NEED_PORT))
        return invalid(reason, "needs a port, like 0.0.0.0:8872");
    if (rest < end) {
        err = parse_port(rest + 1, (size_t)(end - rest - 1), flags, &hp.port, reason);
        if (err != HA_OK)
            return err;
        hp.has_port = true;
    }
    *out = hp;
    return HA_OK;
}

enum ha_err ha_url_parse(const char *url, struct ha_url *out, const char **reason)
{
    struct ha_url u;
    const char *a;
    size_t alen;
    enum ha_err err;

    memset(&u, 0, sizeof(u));
    if (strncasecmp(url, HA_URL_HTTPS, strlen(HA_URL_HTTPS)) == 0) {
        u.https = true;
        a = url + strlen(HA_URL_HTTPS);
    } else if (strncasecmp(url, HA_URL_HTTP, strlen(HA_URL_HTTP)) == 0) {
        a = url + strlen(HA_URL_HTTP);
    } else {
        return invalid(reason, "must start with https:// (or http://)");
    }
    alen = strcspn(a, "/?#");
    if (memchr(a, '@', alen) != NULL)
        return invalid(reason, "must not hold a user name or password");
    err = ha_url_parse_hostport(a, alen, 0, &u.hp, reason);
    if (err != HA_OK)
        return err;
    u.authority = a;
    u.authority_len = alen;
    u.rest = a + alen;
    *out = u;
    return HA_OK;
}

bool ha_url_is_loopback(const struct ha_hostport *hp)
{
    static const char suffix[] = ".localhost";
    const size_t sl = sizeof(suffix) - 1;
    char tmp[INET6_ADDRSTRLEN];
    struct in6_addr a6;
    struct in_addr a4;

    if (hp->host == NULL || hp->host_len >= sizeof(tmp))
        return false;
    for (size_t i = 0; i < hp->host_len; i++)
        tmp[i] = ha_tolower(hp->host[i]);
    tmp[hp->host_len] = '\0';
    if (hp->ipv6)
        return inet_pton(AF_INET6, tmp, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    if (strcmp(tmp, "localhost") == 0)
        return true;
    if (hp->host_len > sl && strcmp(tmp + hp->host_len - sl, suffix) == 0)
        return true;
    return inet_pton(AF_INET, tmp, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

enum ha_err ha_url_format_origin(const struct ha_url *u, char **out)
{
    struct ha_buf b;
    char *s = NULL;
    enum ha_err err;

    ha_buf_init(&b, HA_MAX_URL);
    err = ha_buf_appendf(&b, "%s%s%.*s%s", u->https ? HA_URL_HTTPS : HA_URL_HTTP,
                         u->hp.ipv6 ? "[" : "", (int)u->hp.host_len, u->hp.host,
                         u->hp.ipv6 ? "]" : "");
    /* RFC 6454 §6.2: the scheme's default port is left out. */
    if (err == HA_OK && u->hp.has_port && u->hp.port != (u->https ? 443 : 80))
        err = ha_buf_appendf(&b, ":%d", u->hp.port);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &s);
    ha_buf_cleanup(&b);
    if (err != HA_OK)
        return err;
    for (char *c = s; *c != '\0'; c++)
        *c = ha_tolower(*c);
    *out = s;
    return HA_OK;
}

enum ha_err ha_url_origin(const char *url, char **out)
{
    struct ha_url u;

    if (url == NULL || strnlen(url, HA_MAX_URL + 1) > HA_MAX_URL ||
        ha_url_parse(url, &u, NULL) != HA_OK)
        return HA_ERR_INVALID;
    return ha_url_format_origin(&u, out);
}
