/* One JSON object per line on stderr: time, level, event, request id, and fields.
 * Callers never pass tokens, codes, cookies or secrets. */
#ifndef HOUSTON_AUTH_LOG_H
#define HOUSTON_AUTH_LOG_H

#include <stdio.h>
#include "houston_auth/err.h"

enum ha_log_level { HA_LOG_DEBUG = 0, HA_LOG_INFO, HA_LOG_WARN, HA_LOG_ERROR };

void ha_log_set_level(enum ha_log_level level);
/* Parses "debug", "info", "warn", "error". */
enum ha_err ha_log_parse_level(const char *s, enum ha_log_level *out);
/* Default stderr; tests may point it at a file. Not thread-safe against concurrent logs. */
void ha_log_set_stream(FILE *f);

/* Whether a line at level would be written (to skip formatting its fields). */
int ha_log_enabled(enum ha_log_level level);

/* Logs {"time":..,"level":..,"event":event,"request_id":rid, k1:v1, ...}. The variadic part
 * is pairs of const char * key and const char * value, ended by a NULL key; a NULL value
 * is skipped. rid may be NULL. One write(2) per line. */
void ha_log(enum ha_log_level level, const char *event, const char *rid, ...);

#endif
