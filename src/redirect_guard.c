/* The open-redirect guard for `redirect`, logout `returnTo` and Houston's Location.
 *
 * Strict and simple on purpose: an allowlist, not a normaliser. A target is either a relative
 * UI path with exactly one leading '/', or an absolute http(s) URL whose origin is the app's
 * own or https on the base domain. Whatever a browser might read differently from us is
 * refused rather than interpreted: control bytes, whitespace, '\\' (browsers treat it as '/'),
 * non-ASCII bytes (IDN dots and slashes), malformed or suspicious percent-escapes.
 *
 * Absolute URLs are split by url.c's grammar rather than with curl's URL API: curl repairs
 * what it parses (it accepts one or three slashes after the scheme and rewrites IPv4
 * spellings such as 0x7f.1), so it would accept inputs we must refuse, and its URL-SYNTAX
 * notes themselves warn that checking a URL with one parser and acting on it with another
 * (here, the browser) is a security risk. url.c's grammar is a small strict subset of RFC
 * 3986 that every browser reads the same way, and the same one config.c derived app_origin
 * with. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "houston_auth/ctype.h"
#include "houston_auth/proto.h"
#include "houston_auth/redirect_guard.h"
#include "houston_auth/url.h"

/* The byte "%XY" at s stands for, or -1 when s is not a well-formed escape. */
static int escaped(const char *s)
{
    int hi, lo;
    if (s[0] != '%')
        return -1;
    hi = ha_hexval((unsigned char)s[1]);
    lo = hi < 0 ? -1 : ha_hexval((unsigned char)s[2]);
    return lo < 0 ? -1 : hi << 4 | lo;
}

/* Refuses raw CTLs, space, DEL, non-ASCII and '\\', malformed escapes, and escapes of CTLs,
 * DEL and '\\'. "%2f" is refused before the query: an encoded slash is a path separator to
 * some decoders and not to others ("/..%2f%2fevil.com" is one segment to us and "..", "",
 * "evil.com" to a router that decodes first), and no UI path needs one. "%25" is refused
 * before the query: an encoded '%' in a path only matters to
 * a second decoder, and "%252f", "%255c", "%250d", "%250a" are exactly how a slash or a
 * CR/LF survives one decoding to be acted on by the next. In the query it is how a '%' in a
 * value is written (Houston encodes the UI's extras there), and a query never turns into a
 * path however often it is decoded, so it passes there. */
static bool clean_bytes(const char *s, size_t len)
{
    bool in_query = false;
    int v;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c >= 0x7f || c == '\\')
            return false;
        if (c == '?' || c == '#')
            in_query = true;
        if (c != '%')
            continue;
        v = escaped(s + i);
        if (v < 0 || v < 0x20 || v == 0x7f || v == '\\' || ((v == '%' || v == '/') && !in_query))
            return false;
        i += 2;
    }
    return true;
}

/* Whether seg is "." or ".." spelled with raw dots or "%2e". */
static bool dot_segment(const char *seg, size_t n)
{
    size_t units = 0;
    for (size_t i = 0; i < n; i++, units++) {
        if (seg[i] == '.')
            continue;
        if (n - i >= 3 && escaped(seg + i) == '.') {
            i += 2;
            continue;
        }
        return false;
    }
    return units == 1 || units == 2;
}

/* Whether the path part of rest (up to '?' or '#') holds a "." or ".." segment:
 * "/..//evil.com" resolves to the path "//evil.com", which a client-side router could hand
 * on as a protocol-relative URL. No UI path needs a dot segment. */
static bool has_dot_segment(const char *rest)
{
    size_t len = strcspn(rest, "?#"), i = 0, j;
    while (i < len && rest[i] == '/') {
        j = i + 1;
        while (j < len && rest[j] != '/')
            j++;
        if (dot_segment(rest + i + 1, j - i - 1))
            return true;
        i = j;
    }
    return false;
}

/* "scheme://authority" of u equals app_origin, ignoring case (RFC 6454 §4: scheme and host
 * compare case-insensitively; app_origin has no default port, so neither may the target). */
static bool is_app_origin(const struct ha_url *u, const char *app_origin)
{
    const char *scheme = u->https ? HA_URL_HTTPS : HA_URL_HTTP;
    size_t sl = strlen(scheme);
    if (app_origin == NULL || strlen(app_origin) != sl + u->authority_len)
        return false;
    return strncasecmp(app_origin, scheme, sl) == 0 &&
           strncasecmp(app_origin + sl, u->authority, u->authority_len) == 0;
}

/* https, default port, and host equal to base or a subdomain of it (label boundary). */
static bool under_base(const struct ha_url *u, const char *base)
{
    size_t bl = base != NULL ? strlen(base) : 0, hl = u->hp.host_len;
    const char *h = u->hp.host;
    if (!u->https || u->hp.has_port || u->hp.ipv6 || bl == 0 || hl < bl)
        return false;
    if (strncasecmp(h + hl - bl, base, bl) != 0)
        return false;
    return hl == bl || (hl > bl + 1 && h[hl - bl - 1] == '.');
}

/* A path (or an empty rest) that starts with exactly one '/': not "//", "/\\", "/%2f" or
 * "/%5c", which a browser or a router that decodes once reads as a protocol-relative URL.
 * Houston's own Locations never start so: it collapses repeated slashes (oauth/callback). */
static bool path_start_ok(const char *rest)
{
    int next;
    if (rest[0] != '/')
        return true;
    next = escaped(rest + 1);
    if (rest[1] == '/' || rest[1] == '\\' || next == '/' || next == '\\')
        return false;
    return !has_dot_segment(rest);
}

static bool absolute_ok(const struct ha_redirect_policy *p, const char *t)
{
    struct ha_url u;
    if (ha_url_parse(t, &u, NULL) != HA_OK || !path_start_ok(u.rest))
        return false;
    return is_app_origin(&u, p->app_origin) || under_base(&u, p->base_domain);
}

enum ha_err ha_redirect_check(const struct ha_redirect_policy *p, const char *target)
{
    size_t len;
    if (p == NULL || target == NULL)
        return HA_ERR_REFUSED;
    len = strnlen(target, HA_MAX_REDIRECT + 1);
    if (len > HA_MAX_REDIRECT)
        return HA_ERR_TOO_LARGE;
    if (len == 0 || !clean_bytes(target, len))
        return HA_ERR_REFUSED;
    if (target[0] == '/')
        return path_start_ok(target) ? HA_OK : HA_ERR_REFUSED;
    return absolute_ok(p, target) ? HA_OK : HA_ERR_REFUSED;
}
