/* Cookie request headers in, Set-Cookie header values out (RFC 6265).
 *
 * Parsing follows the user agent's side of RFC 6265 §5.4 tolerantly (split on ';', trim
 * spaces and tabs, first '=' separates name and value) because browsers send whatever other
 * sites under the same domain set; a malformed neighbour must not break a login. It is capped
 * in bytes and pairs. Formatting is the opposite: strict, because what we emit must be exactly
 * the cookie we mean (§4.1.1 cookie-octets; an RFC 7230 token as the name) and a value with
 * ';' or a CTL would smuggle attributes or split the header; a prefixed name gets exactly the
 * attributes its prefix demands. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "houston_auth/buf.h"
#include "houston_auth/cookie.h"
#include "houston_auth/ctype.h"
#include "houston_auth/proto.h"
#include "houston_auth/util.h"

#define EXPIRES_EPOCH "Thu, 01 Jan 1970 00:00:00 GMT"

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces and tabs from both ends of [*p, *p + *n). */
static void trim(const char **p, size_t *n)
{
    while (*n > 0 && is_ws((*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && is_ws((*p)[*n - 1]))
        (*n)--;
}

/* Appends the pair in one ';'-separated piece, or skips it (no '=', empty name). */
static enum ha_err parse_piece(const char *p, size_t n, struct ha_kvlist *l)
{
    const char *eq = memchr(p, '=', n), *v;
    size_t klen, vlen;
    char *k = NULL, *val = NULL;
    enum ha_err err;

    if (eq == NULL)
        return HA_OK;
    klen = (size_t)(eq - p);
    v = eq + 1;
    vlen = n - klen - 1;
    trim(&p, &klen);
    trim(&v, &vlen);
    if (klen == 0)
        return HA_OK;
    if (l->count >= HA_MAX_COOKIE_PAIRS)
        return HA_ERR_TOO_LARGE;
    if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
        v++;
        vlen -= 2;
    }
    k = strndup(p, klen);
    val = strndup(v, vlen);
    err = k == NULL || val == NULL ? HA_ERR_NOMEM : ha_kvlist_add(l, k, val);
    ha_free_secret(k);
    ha_free_secret(val);
    return err;
}

enum ha_err ha_cookie_parse(const char *header, size_t len, struct ha_kvlist *out)
{
    struct ha_kvlist l = {NULL, 0};
    const char *p, *end, *semi;
    enum ha_err err = HA_OK;

    if (header == NULL)
        return HA_ERR_INVALID;
    if (len > HA_MAX_COOKIE_HEADER)
        return HA_ERR_TOO_LARGE;
    if (memchr(header, '\0', len) != NULL)
        return HA_ERR_INVALID;
    p = header;
    end = header + len;
    while (p < end && err == HA_OK) {
        semi = memchr(p, ';', (size_t)(end - p));
        if (semi == NULL)
            semi = end;
        err = parse_piece(p, (size_t)(semi - p), &l);
        p = semi + 1;
    }
    if (err != HA_OK) {
        ha_kvlist_cleanup(&l);
        return err;
    }
    *out = l;
    return HA_OK;
}

/* RFC 7230 §3.2.6 tchar. */
static bool is_tchar(unsigned char c)
{
    return ha_isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 6265 §4.1.1 cookie-octet: US-ASCII except CTLs, whitespace, DQUOTE, ',', ';', '\\'. */
static bool is_cookie_octet(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
           (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

static bool name_ok(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!is_tchar((unsigned char)*s))
            return false;
    }
    return true;
}

static bool value_ok(const char *s)
{
    if (s == NULL)
        return false;
    for (; *s != '\0'; s++) {
        if (!is_cookie_octet((unsigned char)*s))
            return false;
    }
    return true;
}

/* Domain and Path values: NULL (omitted) or non-empty without ';' or CTLs, which would end
 * the attribute or the header line. */
static bool attr_ok(const char *s)
{
    if (s == NULL)
        return true;
    if (s[0] == '\0')
        return false;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == ';' || c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* Cookie name prefixes (RFC 6265bis §4.1.3): a browser silently drops a "__Secure-" cookie
 * without Secure, and a "__Host-" one without Secure, with a Domain, or with a Path other
 * than "/". Browsers match the prefixes without regard to case, so this does too: a line
 * we format is never one a browser would drop. */
static bool prefix_ok(const struct ha_set_cookie *c)
{
    if (strncasecmp(c->name, "__Secure-", 9) == 0 && !c->secure)
        return false;
    if (strncasecmp(c->name, HA_COOKIE_HOST_PREFIX, strlen(HA_COOKIE_HOST_PREFIX)) == 0)
        return c->secure && c->domain == NULL && c->path != NULL && strcmp(c->path, "/") == 0;
    return true;
}

static bool same_site_ok(const char *s)
{
    return s == NULL || strcmp(s, "Lax") == 0 || strcmp(s, "Strict") == 0 || strcmp(s, "None") == 0;
}

static enum ha_err append_attrs(struct ha_buf *b, const struct ha_set_cookie *c)
{
    enum ha_err err = HA_OK;
    if (c->domain != NULL)
        err = ha_buf_appendf(b, "; Domain=%s", c->domain);
    if (err == HA_OK && c->path != NULL)
        err = ha_buf_appendf(b, "; Path=%s", c->path);
    if (err == HA_OK && c->max_age >= 0)
        err = ha_buf_appendf(b, "; Max-Age=%ld", c->max_age);
    /* Expires too when clearing: agents that predate Max-Age still drop the cookie. */
    if (err == HA_OK && c->max_age == 0)
        err = ha_buf_append_str(b, "; Expires=" EXPIRES_EPOCH);
    if (err == HA_OK && c->secure)
        err = ha_buf_append_str(b, "; Secure");
    if (err == HA_OK && c->http_only)
        err = ha_buf_append_str(b, "; HttpOnly");
    if (err == HA_OK && c->same_site != NULL)
        err = ha_buf_appendf(b, "; SameSite=%s", c->same_site);
    return err;
}

enum ha_err ha_cookie_format(const struct ha_set_cookie *c, char **out)
{
    struct ha_buf b;
    enum ha_err err;

    if (c == NULL || !name_ok(c->name) || !value_ok(c->value) || !attr_ok(c->domain) ||
        !attr_ok(c->path) || !same_site_ok(c->same_site) || !prefix_ok(c))
        return HA_ERR_INVALID;
    ha_buf_init(&b, HA_MAX_HEADER);
    err = ha_buf_appendf(&b, "%s=%s", c->name, c->value);
    if (err == HA_OK)
        err = append_attrs(&b, c);
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    return err;
}
