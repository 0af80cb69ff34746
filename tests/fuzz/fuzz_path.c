/* Fuzz target: request paths as the router reads them (ha_url_normalize_path, ha_router_find).
 * Invariants: an accepted path normalises to one that starts with '/', holds no "//", no "."
 * or ".." segment, no '\' and no upper-case letter, and is a fixed point (normalising it
 * again changes nothing); ha_router_find never crashes, and whatever it refuses as Houston's
 * OAuth namespace normalises under HA_HOUSTON_OAUTH_PREFIX. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/proto.h"
#include "houston_auth/router.h"
#include "houston_auth/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_normal(const char *n)
{
    size_t len = strlen(n);
    char again[HA_MAX_URL + 1];
    if (n[0] != '/' || strstr(n, "//") != NULL || strstr(n, "/./") != NULL ||
        strstr(n, "/../") != NULL || strchr(n, '\\') != NULL)
        abort();
    if ((len >= 2 && strcmp(n + len - 2, "/.") == 0) ||
        (len >= 3 && strcmp(n + len - 3, "/..") == 0))
        abort();
    for (const char *p = n; *p != '\0'; p++) {
        if (*p >= 'A' && *p <= 'Z')
            abort();
    }
    /* A decoded '%', '?' or '#' may normalise again differently; only plain paths are fixed. */
    if (strpbrk(n, "%?#") == NULL &&
        (ha_url_normalize_path(n, again, sizeof(again)) != HA_OK || strcmp(n, again) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s, norm[HA_MAX_URL + 1];
    const struct ha_route *r;
    if (size > HA_MAX_URL)
        return 0;
    s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (ha_url_normalize_path(s, norm, sizeof(norm)) == HA_OK)
        check_normal(norm);
    r = ha_router_find(s);
    if (r != NULL && r->early &&
        (ha_url_normalize_path(s, norm, sizeof(norm)) != HA_OK ||
         strncmp(norm, HA_HOUSTON_OAUTH_PREFIX, strlen(HA_HOUSTON_OAUTH_PREFIX)) != 0))
        abort();
    free(s);
    return 0;
}
