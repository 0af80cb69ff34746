/* The open-redirect guard for `redirect`, logout `returnTo` and Houston's Location.
 *
 * Strict and simple on purpose: an allowlist, not a normaliser. A target is either a relative
 * UI path with exactly one leading '/', or an absolute http(s) URL whose origin is the app's
 * own or https on the base domain. Whatever a browser might read differently from us is
 * refused rather than interpreted: control bytes, whitespace, '\\' (browsers treat it as '/'),
 * non-ASCII bytes (IDN dots and slashes), malformed or suspicious percent-escapes.
 *
 * Absolute URLs are split by hand rather than with curl's URL API: curl repairs what it
 * parses (it accepts one or three slashes after the scheme and rewrites IPv4 spellings such as
 * 0x7f.1), so it would accept inputs we must refuse, and its URL-SYNTAX notes themselves warn
 * that checking a URL with one parser and acting on it with another (here, the browser) is a
 * security risk. The grammar accepted here is a small strict subset of RFC 3986 that every
 * browser reads the same way. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "houston_auth/buf.h"
#include "houston_auth/proto.h"
#include "houston_auth/redirect_guard.h"

#define SCHEME_HTTP "http://"
#define SCHEME_HTTPS "https://"
#define PORT_MAX_DIGITS 5
#define LABEL_MAX 63
#define HOST_MAX 253

/* The parts of "scheme://authority" that matter; pointers into the URL. */
struct origin_parts {
    bool https;
    const char *authority; /* host[:port], no userinfo */
    size_t authority_len;
    const char *host; /* without brackets for an IPv6 literal */
    size_t host_len;
    bool bracketed;
    const char *port; /* digits only, NULL when absent */
    size_t port_len;
    const char *rest; /* path, query and fragment: "", or starts with '/', '?' or '#' */
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The byte "%XY" at s stands for, or -1 when s is not a well-formed escape. */
static int escaped(const char *s)
{
    int hi, lo;
    if (s[0] != '%')
        return -1;
    hi = hexval((unsigned char)s[1]);
    lo = hi < 0 ? -1 : hexval((unsigned char)s[2]);
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

/* 1 to 65535 in decimal, no sign, no leading zero. */
static bool port_ok(const char *s, size_t n)
{
    long v = 0;
    if (n == 0 || n > PORT_MAX_DIGITS || s[0] == '0')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 65535;
}

/* A DNS name of [A-Za-z0-9-] labels (RFC 1035 §2.3.4: at most 63 bytes a label, 253 in all):
 * no empty label, so no leading, doubled or trailing dot. Dotted-decimal IPv4 passes this,
 * but can then only match app_origin. */
static bool host_ok(const char *h, size_t n)
{
    size_t label = 0;
    if (n == 0 || n > HOST_MAX || h[0] == '.' || h[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && c != '.')
            return false;
        label = c == '.' ? 0 : label + 1;
        if (label > LABEL_MAX || (c == '.' && h[i + 1] == '.'))
            return false;
    }
    return true;
}

/* The inside of "[...]": hex digits, ':' and '.' only (IPv6, possibly IPv4-mapped). */
static bool ipv6_ok(const char *h, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (hexval((unsigned char)h[i]) < 0 && h[i] != ':' && h[i] != '.')
            return false;
    }
    return true;
}

static bool split_host_port(struct origin_parts *o, const char *a, const char *end)
{
    const char *hend;
    if (a < end && a[0] == '[') {
        hend = memchr(a, ']', (size_t)(end - a));
        if (hend == NULL)
            return false;
        o->bracketed = true;
        o->host = a + 1;
        o->host_len = (size_t)(hend - a - 1);
        hend++;
    } else {
        hend = memchr(a, ':', (size_t)(end - a));
        if (hend == NULL)
            hend = end;
        o->host = a;
        o->host_len = (size_t)(hend - a);
    }
    if (hend < end) {
        if (hend[0] != ':' || !port_ok(hend + 1, (size_t)(end - hend - 1)))
            return false;
        o->port = hend + 1;
        o->port_len = (size_t)(end - hend - 1);
    }
    return o->bracketed ? ipv6_ok(o->host, o->host_len) : host_ok(o->host, o->host_len);
}

/* Splits "http[s]://host[:port][rest]"; refuses any other scheme, a missing "//",
 * userinfo, an empty or malformed host and a malformed port. */
static bool parse_origin(const char *url, struct origin_parts *o)
{
    const char *a, *end;
    memset(o, 0, sizeof(*o));
    if (strncasecmp(url, SCHEME_HTTPS, strlen(SCHEME_HTTPS)) == 0) {
        o->https = true;
        a = url + strlen(SCHEME_HTTPS);
    } else if (strncasecmp(url, SCHEME_HTTP, strlen(SCHEME_HTTP)) == 0) {
        a = url + strlen(SCHEME_HTTP);
    } else {
        return false;
    }
    end = a + strcspn(a, "/?#");
    if (memchr(a, '@', (size_t)(end - a)) != NULL)
        return false;
    o->authority = a;
    o->authority_len = (size_t)(end - a);
    o->rest = end;
    return split_host_port(o, a, end);
}

/* "scheme://authority" of o equals app_origin, ignoring case (RFC 6454 §4: scheme and host
 * compare case-insensitively; app_origin has no default port, so neither may the target). */
static bool is_app_origin(const struct origin_parts *o, const char *app_origin)
{
    const char *scheme = o->https ? SCHEME_HTTPS : SCHEME_HTTP;
    size_t sl = strlen(scheme);
    if (app_origin == NULL || strlen(app_origin) != sl + o->authority_len)
        return false;
    return strncasecmp(app_origin, scheme, sl) == 0 &&
           strncasecmp(app_origin + sl, o->authority, o->authority_len) == 0;
}

/* https, default port, and host equal to base or a subdomain of it (label boundary). */
static bool under_base(const struct origin_parts *o, const char *base)
{
    size_t bl = base != NULL ? strlen(base) : 0, hl = o->host_len;
    const char *h = o->host;
    if (!o->https || o->port != NULL || o->bracketed || bl == 0 || hl < bl)
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
    struct origin_parts o;
    if (!parse_origin(t, &o) || !path_start_ok(o.rest))
        return false;
    return is_app_origin(&o, p->app_origin) || under_base(&o, p->base_domain);
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

/* The port unless it is the scheme's default (RFC 6454 §6.2). */
static bool keep_port(const struct origin_parts *o)
{
    const char *dflt = o->https ? "443" : "80";
    return o->port != NULL &&
           !(o->port_len == strlen(dflt) && memcmp(o->port, dflt, o->port_len) == 0);
}

enum ha_err ha_url_origin(const char *url, char **out)
{
    struct origin_parts o;
    struct ha_buf b;
    char *s = NULL;
    enum ha_err err;

    if (url == NULL || strnlen(url, HA_MAX_URL + 1) > HA_MAX_URL || !parse_origin(url, &o))
        return HA_ERR_INVALID;
    ha_buf_init(&b, HA_MAX_URL);
    err = ha_buf_appendf(&b, "%s%s%.*s%s", o.https ? SCHEME_HTTPS : SCHEME_HTTP,
                         o.bracketed ? "[" : "", (int)o.host_len, o.host, o.bracketed ? "]" : "");
    if (err == HA_OK && keep_port(&o))
        err = ha_buf_appendf(&b, ":%.*s", (int)o.port_len, o.port);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &s);
    ha_buf_cleanup(&b);
    if (err != HA_OK)
        return err;
    for (char *c = s; *c != '\0'; c++) {
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    }
    *out = s;
    return HA_OK;
}
