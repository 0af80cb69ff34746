/* Query strings, form bodies (application/x-www-form-urlencoded) and percent-encoding.
 *
 * Decoding is strict: every '%' must be followed by two hex digits, and a NUL byte, raw or
 * decoded, is refused because every consumer treats the result as a C string (a "%00" that
 * silently truncated a value would make two different inputs look the same). Encoding keeps
 * only RFC 3986 §2.3 unreserved characters, which is safe in a query, a form body and a path.
 * Parsers build into a local list and hand it over only on success. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/proto.h"
#include "houston_auth/url.h"
#include "houston_auth/util.h"

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
            hi = i + 2 < len ? hexval((unsigned char)in[i + 1]) : -1;
            lo = i + 2 < len ? hexval((unsigned char)in[i + 2]) : -1;
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

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
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
        if (unreserved(c)) {
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
    if (c >= 'A' && c <= 'Z')
        c = (char)(c - 'A' + 'a');
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
        hi = c == '%' && i + 2 < len ? hexval((unsigned char)raw[i + 1]) : -1;
        lo = hi >= 0 ? hexval((unsigned char)raw[i + 2]) : -1;
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
