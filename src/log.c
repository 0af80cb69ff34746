/* Structured logging: one JSON object per line, written with one write(2) so lines from
 * concurrent threads never interleave.
 *
 * The line is written here rather than through a jansson tree: it is a flat object of
 * strings, so only string escaping (RFC 8259 §7) is needed, and building and dumping a tree
 * was 7% of a login's instructions (three lines a login at info). Invalid UTF-8 in a value
 * becomes U+FFFD, so the line is always valid JSON. A key given twice keeps its last value,
 * as a JSON object would. tests/unit/test_log.c reads every line back with jansson. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "houston_auth/buf.h"
#include "houston_auth/log.h"

#define MAX_LINE (64 * 1024) /* a longer line is dropped */

/* Read by every thread, written by main on a reload: relaxed atomics (a line logged at the
 * old level during a reload is fine, a torn read is not). */
static _Atomic int min_level = HA_LOG_INFO;
static FILE *log_stream;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ha_log_set_level(enum ha_log_level level)
{
    atomic_store_explicit(&min_level, (int)level, memory_order_relaxed);
}

enum ha_err ha_log_parse_level(const char *s, enum ha_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (s != NULL && strcmp(s, level_names[i]) == 0) {
            *out = (enum ha_log_level)i;
            return HA_OK;
        }
    }
    return HA_ERR_INVALID;
}

int ha_log_enabled(enum ha_log_level level)
{
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

void ha_log_set_stream(FILE *f)
{
    log_stream = f;
}

static void format_time(char *out, size_t len)
{
    struct timespec ts;
    struct tm tm;
    char base[32];
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL ||
        strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, len, "1970-01-01T00:00:00.000Z"); /* never happens on Linux */
        return;
    }
    snprintf(out, len, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        unsigned lo = s[0] == 0xE0 ? 0xA0 : 0x80, hi = s[0] == 0xED ? 0x9F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        unsigned lo = s[0] == 0xF0 ? 0x90 : 0x80, hi = s[0] == 0xF4 ? 0x8F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

/* Appends v as a JSON string. */
static enum ha_err put_string(struct ha_buf *b, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)v;
    enum ha_err err = ha_buf_append(b, "\"", 1);

    while (err == HA_OK && *p != '\0') {
        size_t run = 0, n;
        while (p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > 0) {
            err = ha_buf_append(b, (const char *)p, run);
            p += run;
            continue;
        }
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            err = ha_buf_append(b, esc, 2);
            n = 1;
        } else if (*p < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            err = ha_buf_append(b, esc, 6);
            n = 1;
        } else if ((n = utf8_len(p)) > 0) {
            err = ha_buf_append(b, (const char *)p, n);
        } else {
            err = ha_buf_append(b, "\\ufffd", 6);
            n = 1;
        }
        p += n;
    }
    return err == HA_OK ? ha_buf_append(b, "\"", 1) : err;
}

static enum ha_err put_pair(struct ha_buf *b, const char *key, const char *value)
{
    enum ha_err err = ha_buf_append(b, ",", 1);
    if (err == HA_OK)
        err = put_string(b, key);
    if (err == HA_OK)
        err = ha_buf_append(b, ":", 1);
    return err == HA_OK ? put_string(b, value) : err;
}

/* True when key is given again, with a value, among the pairs left in ap. */
static bool given_later(const char *key, va_list ap)
{
    va_list rest;
    const char *k;
    bool later = false;
    va_copy(rest, ap);
    while (!later && (k = va_arg(rest, const char *)) != NULL)
        later = va_arg(rest, const char *) != NULL && strcmp(k, key) == 0;
    va_end(rest);
    return later;
}

void ha_log(enum ha_log_level level, const char *event, const char *rid, ...)
{
    struct ha_buf b;
    char when[48];
    va_list ap;
    const char *key;
    enum ha_err err;
    FILE *f = log_stream != NULL ? log_stream : stderr;

    if (!ha_log_enabled(level))
        return;
    ha_buf_init(&b, MAX_LINE);
    format_time(when, sizeof(when));
    err = ha_buf_append(&b, "{\"time\":", 8);
    if (err == HA_OK)
        err = put_string(&b, when);
    if (err == HA_OK)
        err = put_pair(&b, "level", level_names[level]);
    if (err == HA_OK)
        err = put_pair(&b, "event", event);
    if (err == HA_OK && rid != NULL)
        err = put_pair(&b, "request_id", rid);
    va_start(ap, rid);
    while (err == HA_OK && (key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        if (value != NULL && !given_later(key, ap))
            err = put_pair(&b, key, value);
    }
    va_end(ap);
    if (err == HA_OK)
        err = ha_buf_append(&b, "}\n", 2);
    if (err == HA_OK) {
        fflush(f);
        if (write(fileno(f), b.data, b.len) < 0) {
            /* nowhere left to report a failed log write */
        }
    }
    ha_buf_cleanup(&b);
}
