/* The redirect allowlist for `redirect`, logout `returnTo` and Houston's Location. */
#ifndef HOUSTON_AUTH_REDIRECT_GUARD_H
#define HOUSTON_AUTH_REDIRECT_GUARD_H

#include "houston_auth/err.h"
#include "houston_auth/url.h" /* ha_url_origin: the origin a target is judged by */

struct ha_redirect_policy {
    const char *base_domain; /* global.baseDomain, e.g. "astro.example.com" */
    const char *app_origin;  /* scheme://host[:port] of appUrl, always allowed */
};

/* HA_OK when target is either
 *   - a relative UI path: starts with exactly one '/', not "//" or "/\\", or
 *   - an absolute URL whose origin is app_origin, or https://<host> (default port) where
 *     host is base_domain or ends in "." base_domain, with no userinfo;
 * and contains no control characters, whitespace, backslash, non-ASCII byte, or
 * percent-encoded CR, LF, NUL, '/' or '\\' in its path-start. HA_ERR_REFUSED otherwise;
 * HA_ERR_TOO_LARGE past HA_MAX_REDIRECT bytes. */
enum ha_err ha_redirect_check(const struct ha_redirect_policy *p, const char *target);

#endif
