/* Structured logging: one JSON object per line, written with one write(2) so lines from
 * concurrent threads never interleave. jansson does the escaping. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "houston_auth/log.h"

static enum ha_log_level min_level = HA_LOG_INFO;
static FILE *log_stream;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ha_log_set_level(enum ha_log_level level)
{
    min_level = level;
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
    return level >= min_level;
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

void ha_log(enum ha_log_level level, const char *event, const char *rid, ...)
{
    json_t *obj;
    char when[48];
    char *line;
    va_list ap;
    const char *key;
    FILE *f = log_stream != NULL ? log_stream : stderr;

    if (level < min_level)
        return;
    obj = json_object();
    if (obj == NULL)
        return;
    format_time(when, sizeof(when));
    json_object_set_new(obj, "time", json_string(when));
    json_object_set_new(obj, "level", json_string(level_names[level]));
    json_object_set_new(obj, "event", json_string(event));
    if (rid != NULL)
        json_object_set_new(obj, "request_id", json_string(rid));
    va_start(ap, rid);
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        if (value != NULL)
            json_object_set_new(obj, key, json_string(value));
    }
    va_end(ap);
    line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (line == NULL)
        return;
    {
        size_t n = strlen(line);
        line[n] = '\n'; /* json_dumps allocates n + 1 bytes; the NUL becomes the newline */
        fflush(f);
        if (write(fileno(f), line, n + 1) < 0) {
            /* nowhere left to report a failed log write */
        }
    }
    free(line);
}
