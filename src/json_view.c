/* A validating single-pass JSON scanner that records only what token checks read: the
 * top-level members of an object and the items of its top-level arrays.
 *
 * Why not jansson here: jansson builds a tree with a hash table, one allocation per string,
 * through a character-at-a-time stream; for the 480-byte claims of an Auth0 ID token that
 * is about 7.4 us, a third of an RSA-2048 verify, and issue 4 asks the whole check to run
 * at 0.85 of OpenSSL's verify rate. This scanner allocates twice per document and unescapes
 * strings in place. jansson stays for everything else (JWKS, discovery, config, Houston).
 *
 * Strictness is jansson's with JSON_REJECT_DUPLICATES, or stricter, never looser: the same
 * grammar (RFC 8259), UTF-8 validated as in RFC 3629 (no overlongs, no surrogates, nothing
 * past U+10FFFF), \u escapes with paired surrogates and no \u0000, duplicate names refused in
 * every object, integers that overflow a long long and reals that overflow a double refused.
 * Tighter only in the depth limit (HA_JSON_MAX_DEPTH against jansson's 2048) and on a raw
 * NUL byte, which jansson's reader silently drops after a number and RFC 8259 never allows
 * outside a string.
 * tests/fuzz/fuzz_json_view.c holds the two parsers to that. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/ctype.h"
#include "houston_auth/json_view.h"

/* Runs of names up to this length are checked pairwise; longer ones are sorted first. */
#define SHORT_RUN 24
#define INLINE_KEYS 32

struct key {
    const char *p;
    size_t n;
};

struct scan {
    char *p, *end;
    struct ha_json_view *v;
    enum ha_err err;  /* what a failure reports: HA_ERR_INVALID unless allocation failed */
    struct key *keys; /* names of every open object, innermost last */
    size_t n_keys, cap_keys;
    struct key inline_keys[INLINE_KEYS];
};

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static int parse_value(struct scan *s, int depth, struct ha_json_val *out, int record_items);

static int is_digit(char c)
{
    return ha_isdigit(c);
}

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* Makes room for one more element of size in *arr (capacity *cap, n in use). */
static int reserve(struct scan *s, void **arr, size_t *cap, size_t n, size_t size)
{
    size_t ncap;
    void *p;
    if (n < *cap)
        return 1;
    ncap = *cap != 0 ? *cap * 2 : 16;
    p = realloc(*arr, ncap * size);
    if (p == NULL) {
        s->err = HA_ERR_NOMEM;
        return 0;
    }
    *arr = p;
    *cap = ncap;
    return 1;
}

static int push_key(struct scan *s, const char *p, size_t n)
{
    struct key *k;
    if (s->n_keys == s->cap_keys) {
        k = s->keys == s->inline_keys ? malloc(s->cap_keys * 2 * sizeof(*k))
                                      : realloc(s->keys, s->cap_keys * 2 * sizeof(*k));
        if (k == NULL) {
            s->err = HA_ERR_NOMEM;
            return 0;
        }
        if (s->keys == s->inline_keys)
            memcpy(k, s->inline_keys, sizeof(s->inline_keys));
        s->keys = k;
        s->cap_keys *= 2;
    }
    s->keys[s->n_keys].p = p;
    s->keys[s->n_keys].n = n;
    s->n_keys++;
    return 1;
}

static int key_cmp(const void *a, const void *b)
{
    const struct key *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return memcmp(x->p, y->p, x->n);
}

/* 1 when the n names at k are all different (k may be reordered). */
static int unique_keys(struct key *k, size_t n)
{
    size_t i, j;
    if (n <= SHORT_RUN) {
        for (i = 0; i < n; i++) {
            for (j = i + 1; j < n; j++) {
                if (key_cmp(&k[i], &k[j]) == 0)
                    return 0;
            }
        }
        return 1;
    }
    qsort(k, n, sizeof(*k), key_cmp);
    for (i = 1; i < n; i++) {
        if (key_cmp(&k[i - 1], &k[i]) == 0)
            return 0;
    }
    return 1;
}

/* Length of the valid UTF-8 sequence (2-4 bytes) starting at r, or 0 (RFC 3629 §4). */
static size_t utf8_seq(const unsigned char *r, const unsigned char *end)
{
    unsigned char c = r[0], lo = 0x80, hi = 0xbf;
    size_t n, i;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0; /* overlong */
    else if (c == 0xed)
        hi = 0x9f; /* UTF-16 surrogates */
    else if (c == 0xf0)
        lo = 0x90; /* overlong */
    else if (c == 0xf4)
        hi = 0x8f; /* past U+10FFFF */
    if ((size_t)(end - r) < n || r[1] < lo || r[1] > hi)
        return 0;
    for (i = 2; i < n; i++) {
        if (r[i] < 0x80 || r[i] > 0xbf)
            return 0;
    }
    return n;
}

static int hex4(const char *r, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = ha_hexval((unsigned char)r[i]);
        if (d < 0)
            return 0;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 1;
}

static char *put_utf8(char *w, unsigned cp)
{
    if (cp < 0x80) {
        *w++ = (char)cp;
    } else if (cp < 0x800) {
        *w++ = (char)(0xc0 | cp >> 6);
        *w++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *w++ = (char)(0xe0 | cp >> 12);
        *w++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *w++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *w++ = (char)(0xf0 | cp >> 18);
        *w++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *w++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *w++ = (char)(0x80 | (cp & 0x3f));
    }
    return w;
}

/* A \u escape at *r (the backslash), with its low surrogate when it is a high one; written
 * as UTF-8 at *w. The output is never longer than the escape, so *w stays behind *r. */
static int unescape_u(const char *end, char **r, char **w)
{
    unsigned cp, lo;
    if (end - *r < 6 || !hex4(*r + 2, &cp) || cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff))
        return 0;
    *r += 6;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (end - *r < 6 || (*r)[0] != '\\' || (*r)[1] != 'u' || !hex4(*r + 2, &lo) ||
            lo < 0xdc00 || lo > 0xdfff)
            return 0;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        *r += 6;
    }
    *w = put_utf8(*w, cp);
    return 1;
}

static int unescape(const char *end, char **r, char **w)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit;
    if (end - *r < 2)
        return 0;
    if ((*r)[1] == 'u')
        return unescape_u(end, r, w);
    hit = (*r)[1] != '\0' ? strchr(from, (*r)[1]) : NULL;
    if (hit == NULL)
        return 0;
    *(*w)++ = to[hit - from];
    *r += 2;
    return 1;
}

/* 1 for the bytes a string holds as they are: printable ASCII but the quote and backslash. */
static unsigned char plain[256];
static pthread_once_t plain_once = PTHREAD_ONCE_INIT;

static void plain_init(void)
{
    for (unsigned c = 0x20; c < 0x80; c++)
        plain[c] = c != '"' && c != '\\';
}

/* The string at s->p (its opening quote), unescaped in place and NUL-terminated where its
 * closing quote was or earlier. */
static int parse_string(struct scan *s, const char **out, size_t *out_len)
{
    char *start = s->p + 1, *r = start, *w = start;
    size_t n;
    pthread_once(&plain_once, plain_init);
    /* Most strings hold no escape: skip their plain run without copying. */
    while (r < s->end && plain[(unsigned char)*r])
        r++;
    w = r;
    for (;;) {
        unsigned char c;
        if (r >= s->end)
            return 0;
        c = (unsigned char)*r;
        if (c == '"')
            break;
        if (c == '\\') {
            if (!unescape(s->end, &r, &w))
                return 0;
        } else if (c < 0x20) {
            return 0;
        } else if (c < 0x80) {
            *w++ = *r++;
        } else {
            n = utf8_seq((const unsigned char *)r, (const unsigned char *)s->end);
            if (n == 0)
                return 0;
            memmove(w, r, n);
            w += n;
            r += n;
        }
    }
    *w = '\0';
    *out = start;
    *out_len = (size_t)(w - start);
    s->p = r + 1;
    return 1;
}

/* RFC 8259 §6 grammar; the value as jansson gives it: a long long (refused on overflow) for
 * an integer, a double (refused on overflow to infinity) otherwise. */
static int parse_number(struct scan *s, struct ha_json_val *out)
{
    char *start = s->p, *q = s->p, *stop = NULL;
    int integer = 1, overflow;
    double num;
    locale_t old;

    if (q < s->end && *q == '-')
        q++;
    if (q >= s->end || !is_digit(*q))
        return 0;
    if (*q == '0') {
        q++;
        if (q < s->end && is_digit(*q))
            return 0; /* leading zero */
    } else {
        while (q < s->end && is_digit(*q))
            q++;
    }
    if (q < s->end && *q == '.') {
        integer = 0;
        if (++q >= s->end || !is_digit(*q))
            return 0;
        while (q < s->end && is_digit(*q))
            q++;
    }
    if (q < s->end && (*q == 'e' || *q == 'E')) {
        integer = 0;
        q++;
        if (q < s->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= s->end || !is_digit(*q))
            return 0;
        while (q < s->end && is_digit(*q))
            q++;
    }
    /* text[len] is NUL and q sits on a character no number continues with, so both
     * conversions stop exactly at q. */
    errno = 0;
    if (integer) {
        long long ll = strtoll(start, &stop, 10);
        if (errno == ERANGE)
            return 0;
        num = (double)ll;
    } else {
        pthread_once(&c_locale_once, c_locale_init);
        if (c_locale == (locale_t)0) {
            s->err = HA_ERR_NOMEM;
            return 0;
        }
        /* A real is read in the C locale whatever setlocale said (uselocale is per thread). */
        old = uselocale(c_locale);
        num = strtod(start, &stop);
        overflow = errno == ERANGE && isinf(num);
        uselocale(old);
        if (overflow)
            return 0;
    }
    if (stop != q)
        return 0;
    s->p = q;
    if (out != NULL) {
        out->type = HA_JSON_NUMBER;
        out->num = num;
        out->is_integer = integer;
    }
    return 1;
}

static int parse_word(struct scan *s, const char *word, enum ha_json_type type,
                      struct ha_json_val *out)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return 0;
    s->p += n;
    if (out != NULL)
        out->type = type;
    return 1;
}

/* Steps over the opening bracket at s->p; 1 (and past close) when the container is empty. */
static int open_empty(struct scan *s, char close)
{
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 1;
    }
    return 0;
}

/* After an element: 1 past the ',' when another follows, 0 past close, -1 for anything else. */
static int separator(struct scan *s, char close)
{
    char c;
    skip_ws(s);
    if (s->p >= s->end || (*s->p != ',' && *s->p != close))
        return -1;
    c = *s->p++;
    skip_ws(s);
    return c == ',';
}

/* The array at s->p; with record_items its items go to the view's items table. */
static int parse_array(struct scan *s, int depth, struct ha_json_val *out, int record_items)
{
    struct ha_json_view *v = s->v;
    struct ha_json_val item;
    size_t first = v->n_items;
    int more = open_empty(s, ']') ? 0 : 1;

    while (more == 1) {
        memset(&item, 0, sizeof(item));
        if (!parse_value(s, depth, record_items ? &item : NULL, 0))
            return 0;
        if (record_items) {
            if (!reserve(s, (void **)&v->items, &v->cap_items, v->n_items, sizeof(item)))
                return 0;
            v->items[v->n_items++] = item;
        }
        more = separator(s, ']');
    }
    if (more < 0)
        return 0;
    if (out != NULL) {
        out->type = HA_JSON_ARRAY;
        out->first = record_items ? first : 0;
        out->len = record_items ? v->n_items - first : 0;
    }
    return 1;
}

/* One "name": value pair of the object at depth; top-level pairs become the view's members. */
static int parse_member(struct scan *s, int depth)
{
    struct ha_json_view *v = s->v;
    struct ha_json_member *m = NULL;
    const char *name;
    size_t n;

    if (s->p >= s->end || *s->p != '"' || !parse_string(s, &name, &n) || !push_key(s, name, n))
        return 0;
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':')
        return 0;
    s->p++;
    skip_ws(s);
    if (depth == 1) {
        if (!reserve(s, (void **)&v->members, &v->cap_members, v->n_members, sizeof(*m)))
            return 0;
        m = &v->members[v->n_members];
        memset(m, 0, sizeof(*m));
        m->name = name;
        m->name_len = n;
    }
    if (!parse_value(s, depth, m != NULL ? &m->val : NULL, m != NULL))
        return 0;
    if (m != NULL)
        v->n_members++;
    return 1;
}

static int parse_object(struct scan *s, int depth, struct ha_json_val *out)
{
    size_t run = s->n_keys;
    int more = open_empty(s, '}') ? 0 : 1;

    while (more == 1) {
        if (!parse_member(s, depth))
            return 0;
        more = separator(s, '}');
    }
    if (more < 0 || !unique_keys(s->keys + run, s->n_keys - run))
        return 0;
    s->n_keys = run;
    if (out != NULL)
        out->type = HA_JSON_OBJECT;
    return 1;
}

/* The value at s->p inside a container at depth - 1 (depth counts the containers open). */
static int parse_value(struct scan *s, int depth, struct ha_json_val *out, int record_items)
{
    if (s->p >= s->end)
        return 0;
    switch (*s->p) {
    case '{':
        return depth < HA_JSON_MAX_DEPTH && parse_object(s, depth + 1, out);
    case '[':
        return depth < HA_JSON_MAX_DEPTH && parse_array(s, depth + 1, out, record_items);
    case '"':
        if (out == NULL) {
            const char *str;
            size_t n;
            return parse_string(s, &str, &n);
        }
        out->type = HA_JSON_STRING;
        return parse_string(s, &out->str, &out->len);
    case 't':
        return parse_word(s, "true", HA_JSON_TRUE, out);
    case 'f':
        return parse_word(s, "false", HA_JSON_FALSE, out);
    case 'n':
        return parse_word(s, "null", HA_JSON_NULL, out);
    default:
        return parse_number(s, out);
    }
}

void ha_json_view_cleanup(struct ha_json_view *v)
{
    if (v == NULL)
        return;
    free(v->members);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

enum ha_err ha_json_view_parse(char *text, size_t len, struct ha_json_view *v)
{
    struct scan s;
    int ok;

    memset(v, 0, sizeof(*v));
    memset(&s, 0, sizeof(s));
    s.p = text;
    s.end = text + len;
    s.v = v;
    s.err = HA_ERR_INVALID;
    s.keys = s.inline_keys;
    s.cap_keys = INLINE_KEYS;
    skip_ws(&s);
    ok = s.p < s.end && *s.p == '{' && parse_object(&s, 1, NULL);
    if (ok) {
        skip_ws(&s);
        ok = s.p == s.end;
    }
    if (s.keys != s.inline_keys)
        free(s.keys);
    if (!ok) {
        ha_json_view_cleanup(v);
        return s.err;
    }
    return HA_OK;
}

const struct ha_json_val *ha_json_view_get(const struct ha_json_view *v, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < v->n_members; i++) {
        if (v->members[i].name_len == n && memcmp(v->members[i].name, name, n) == 0)
            return &v->members[i].val;
    }
    return NULL;
}

const struct ha_json_val *ha_json_view_item(const struct ha_json_view *v,
                                            const struct ha_json_val *array, size_t i)
{
    if (array == NULL || array->type != HA_JSON_ARRAY || i >= array->len)
        return NULL;
    return &v->items[array->first + i];
}
