/* Express 4's routing of a raw request target, as Houston 0.9 mounts its routers
 * (app.use("/v1", v1); v1.use("/oauth", oauth); oauth.use("/callback", callback);
 * callback.post("/", ...)), so the stand-in answers every spelling Houston would.
 *
 * What Express does, and is copied here:
 * - The pathname comes from parseurl 1.3.3: the raw req.url up to '?', undecoded; but when the
 *   target holds a '#', whitespace or U+00A0 it falls back to Node's legacy url.parse, which
 *   trims whitespace, reads '\' as '/' before the first '?' or '#', takes "//auth@host" off
 *   the front as a host, and ends the pathname at '?' or '#'.
 * - Each mount (path-to-regexp 0.1.x, end false, not strict, not case-sensitive) is
 *   ^\/<mount>\/?(?=\/|$) on that pathname, any ASCII case; the route "/" at the end is
 *   ^\/?$. No percent-decoding anywhere: "%63allback" is not "callback".
 * - A matched mount is sliced off the front of the RAW req.url by the length it matched in
 *   the pathname, and a '/' is put back in front when the rest does not start with one; the
 *   next router parses what is left again.
 * Checked against Express 4.22.3 on Node 20 (tests/edge/run.sh lists the spellings). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "houston_auth/buf.h"
#include "standin.h"

#define MAX_LEVELS 8

static bool node_ws(unsigned char c)
{
    return c < 33 || c == 0xa0;
}

static bool fast_path(const char *u)
{
    if (u[0] != '/')
        return false;
    for (const unsigned char *p = (const unsigned char *)u + 1; *p != '\0'; p++) {
        if (*p == '#' || node_ws(*p))
            return false;
    }
    return true;
}

static int hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Whether decodeURIComponent(s[0..n)) would throw: a bad escape, or escaped bytes that do not
 * make UTF-8 sequences (lead and continuation bytes; overlong forms are not looked at). */
static bool uri_component_bad(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int b, need, k;
        if (s[i] != '%') {
            i++;
            continue;
        }
        if (i + 2 >= n || hex((unsigned char)s[i + 1]) < 0 || hex((unsigned char)s[i + 2]) < 0)
            return true;
        b = hex((unsigned char)s[i + 1]) << 4 | hex((unsigned char)s[i + 2]);
        i += 3;
        need = b < 0x80                 ? 0
               : b >= 0xc2 && b <= 0xdf ? 1
               : b >= 0xe0 && b <= 0xef ? 2
               : b >= 0xf0 && b <= 0xf4 ? 3
                                        : -1;
        for (k = 0; k < need; k++, i += 3) {
            if (i + 2 >= n || s[i] != '%' || hex((unsigned char)s[i + 1]) < 0 ||
                hex((unsigned char)s[i + 2]) < 0)
                return true;
            if ((hex((unsigned char)s[i + 1]) << 4 | hex((unsigned char)s[i + 2])) >> 6 != 2)
                return true;
        }
        if (need < 0)
            return true;
    }
    return false;
}

/* url.parse's host: rest starts after "//"; returns what follows the host (with the
 * part of an invalid hostname put back in front of it, as getHostname does). NULL when
 * url.parse would throw. */
static char *after_host(const char *rest)
{
    size_t n = strlen(rest), at = n, non_host = n, host_start, hlen;
    struct ha_buf b;
    char *out = NULL;

    for (size_t i = 0; i < n; i++) {
        char c = rest[i];
        if (c == '#' || c == '/' || c == '?') {
            non_host = non_host < i ? non_host : i;
            break;
        }
        if (c == '@') {
            at = i;
            non_host = n; /* the last '@' decides: what came before it is auth */
        } else if (non_host == n && strchr(" \t\r\n\"%';<>\\^`{|}", c) != NULL) {
            non_host = i;
        }
    }
    if (at < n && uri_component_bad(rest, at))
        return NULL;
    host_start = at < n ? at + 1 : 0;
    hlen = non_host > host_start ? non_host - host_start : 0;
    /* parseHost: a trailing ":<digits>" is the port. */
    {
        size_t k = hlen;
        while (k > 0 && rest[host_start + k - 1] >= '0' && rest[host_start + k - 1] <= '9')
            k--;
        if (k > 0 && rest[host_start + k - 1] == ':')
            hlen = k - 1;
    }
    ha_buf_init(&b, PEER_MAX_URL * 2);
    for (size_t i = 0; i < hlen; i++) {
        if (strchr("/\\#?:", rest[host_start + i]) != NULL) {
            if (ha_buf_append_str(&b, "/") != HA_OK ||
                ha_buf_append(&b, rest + host_start + i, hlen - i) != HA_OK)
                goto out;
            break;
        }
    }
    if (ha_buf_append_str(&b, rest + non_host) == HA_OK)
        (void)ha_buf_steal(&b, &out);
out:
    ha_buf_cleanup(&b);
    return out;
}

/* url.parse(u).pathname; NULL when there is none or url.parse throws. */
static char *slow_pathname(const char *u)
{
    size_t n = strlen(u), start = 0, end = n, o = 0, cut;
    bool split = false;
    char *rest = calloc(1, n + 1), *p, *path = NULL;

    if (rest == NULL)
        return NULL;
    while (start < n && node_ws((unsigned char)u[start]))
        start++;
    while (end > start && node_ws((unsigned char)u[end - 1]))
        end--;
    for (size_t i = start; i < end; i++) {
        char c = u[i];
        split = split || c == '?' || c == '#';
        rest[o++] = (char)(!split && c == '\\' ? '/' : c);
    }
    rest[o] = '\0';
    p = rest;
    /* hostPattern /^\/\/[^@\/]+@[^@\/]+/ */
    if (strncmp(rest, "//", 2) == 0) {
        size_t a = strcspn(rest + 2, "@/");
        if (a > 0 && rest[2 + a] == '@' && strcspn(rest + 3 + a, "@/") > 0)
            p = after_host(rest + 2);
    }
    if (p != NULL) {
        cut = strcspn(p, "?#");
        if (cut > 0)
            path = strndup(p, cut);
    }
    if (p != rest)
        free(p);
    free(rest);
    return path;
}

/* parseurl(req).pathname of u. */
static char *pathname(const char *u)
{
    if (fast_path(u))
        return strndup(u, strcspn(u, "?"));
    return slow_pathname(u);
}

/* Length of ^\/<mount>\/?(?=\/|$) matched in p (mount starts with '/'), or -1. */
static long mount_len(const char *p, const char *mount)
{
    size_t n = strlen(mount);
    if (strncasecmp(p, mount, n) != 0)
        return -1;
    if (p[n] == '/' && (p[n + 1] == '/' || p[n + 1] == '\0'))
        return (long)n + 1;
    return p[n] == '/' || p[n] == '\0' ? (long)n : -1;
}

/* The raw url with a matched mount sliced off, a '/' put back in front. */
static char *trim_prefix(const char *url, long m)
{
    size_t len = strlen(url), k = (size_t)m < len ? (size_t)m : len;
    char *out = malloc(len - k + 2);
    if (out == NULL)
        return NULL;
    out[0] = '/';
    memcpy(out + (url[k] == '/' ? 0 : 1), url + k, len - k + 1);
    return out;
}

bool standin_express_routes(const char *target, const char *const *mounts, size_t n)
{
    char *url = strdup(target), *p = NULL, *next;
    bool ok = false;

    for (size_t level = 0; url != NULL && level <= n && level < MAX_LEVELS; level++) {
        long m;
        p = pathname(url);
        if (p == NULL)
            break;
        if (level == n) {
            ok = strcmp(p, "/") == 0;
            break;
        }
        m = mount_len(p, mounts[level]);
        if (m < 0)
            break;
        next = trim_prefix(url, m);
        free(url);
        url = next;
        free(p);
        p = NULL;
    }
    free(p);
    free(url);
    return ok;
}
