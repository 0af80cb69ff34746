/* Growable string buffer with a hard cap: every buffer filled from outside has one. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "houston_auth/buf.h"
#include "houston_auth/url.h"
#include "houston_auth/util.h"

#define BUF_DEFAULT_MAX (1024 * 1024)

void ha_buf_init(struct ha_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max == 0 ? BUF_DEFAULT_MAX : max;
}

void ha_buf_cleanup(struct ha_buf *b)
{
    if (b->data != NULL) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    ha_buf_init(b, b->max);
}

static enum ha_err reserve(struct ha_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;
    if (extra > b->max || b->len > b->max - extra)
        return HA_ERR_TOO_LARGE;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return HA_OK;
    cap = b->cap == 0 ? 128 : b->cap;
    while (cap < need)
        cap *= 2;
    /* Grown by copy, the old block wiped: buffers carry codes, tokens and the client secret,
     * and realloc would free the old block unwiped wherever it moves it. */
    p = malloc(cap);
    if (p == NULL)
        return HA_ERR_NOMEM;
    if (b->data != NULL) {
        memcpy(p, b->data, b->len + 1);
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = p;
    b->cap = cap;
    return HA_OK;
}

enum ha_err ha_buf_append(struct ha_buf *b, const char *s, size_t n)
{
    enum ha_err err = reserve(b, n);
    if (err != HA_OK)
        return err;
    if (n > 0)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return HA_OK;
}

enum ha_err ha_buf_append_str(struct ha_buf *b, const char *s)
{
    return ha_buf_append(b, s, strlen(s));
}

enum ha_err ha_buf_appendf(struct ha_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    enum ha_err err;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return HA_ERR_INVALID;
    err = reserve(b, (size_t)n);
    if (err != HA_OK)
        return err;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return HA_OK;
}

enum ha_err ha_buf_append_param(struct ha_buf *b, const char *key, const char *value)
{
    enum ha_err err;
    char *k = NULL, *v = NULL;
    size_t before = b->len;

    err = ha_url_encode(key, strlen(key), &k);
    if (err != HA_OK)
        goto out;
    err = ha_url_encode(value, strlen(value), &v);
    if (err != HA_OK)
        goto out;
    if (b->len > 0 && b->data[b->len - 1] != '?')
        err = ha_buf_append(b, "&", 1);
    /* Plain appends: a format would scan each value (tokens of a few KiB) twice. */
    if (err == HA_OK)
        err = ha_buf_append(b, k, strlen(k));
    if (err == HA_OK)
        err = ha_buf_append(b, "=", 1);
    if (err == HA_OK)
        err = ha_buf_append(b, v, strlen(v));
    if (err != HA_OK && b->data != NULL) {
        b->len = before;
        b->data[before] = '\0';
    }
out:
    ha_free_secret(k);
    ha_free_secret(v);
    return err;
}

enum ha_err ha_buf_steal(struct ha_buf *b, char **out)
{
    if (b->data == NULL) {
        *out = strdup("");
        return *out == NULL ? HA_ERR_NOMEM : HA_OK;
    }
    *out = b->data;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return HA_OK;
}
