/* Fuzz target: the open-redirect guard and ha_url_origin. Invariants for every target the
 * guard accepts: it never starts with "//" or "/\\", holds no control, space, non-ASCII or
 * backslash byte and no "%25" before its query (in a query it is how a '%' is written), and
 * if absolute its origin is app_origin or https on the base domain without a port.
 * ha_url_origin's answers are lower-case, bare and idempotent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/proto.h"
#include "houston_auth/redirect_guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct ha_redirect_policy policies[] = {
    {"astro.example.com", "https://app.astro.example.com"},
    {"astro.localhost", "https://app.astro.localhost:8873"},
};

static int under_base(const char *origin, const char *base)
{
    size_t ol = strlen(origin), bl = strlen(base);
    const char *host = origin + strlen("https://");
    if (strncmp(origin, "https://", 8) != 0 || strchr(host, ':') != NULL || ol - 8 < bl)
        return 0;
    return strcmp(host, base) == 0 ||
           (strcmp(origin + ol - bl, base) == 0 && origin[ol - bl - 1] == '.');
}

static void check_allowed(const struct ha_redirect_policy *p, const char *s)
{
    char *origin = NULL;
    const char *pct = strstr(s, "%25");
    if (s[0] == '\0' || strlen(s) > HA_MAX_REDIRECT || strncmp(s, "//", 2) == 0 ||
        strncmp(s, "/\\", 2) == 0 || (pct != NULL && (size_t)(pct - s) < strcspn(s, "?#")))
        abort();
    for (const char *c = s; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x21 || (unsigned char)*c >= 0x7f || *c == '\\')
            abort();
    }
    if (s[0] == '/')
        return;
    if (ha_url_origin(s, &origin) != HA_OK)
        abort();
    if (strcmp(origin, p->app_origin) != 0 && !under_base(origin, p->base_domain))
        abort();
    free(origin);
}

static void check_origin(const char *s)
{
    char *o = NULL, *again = NULL;
    if (ha_url_origin(s, &o) != HA_OK)
        return;
    if (strncmp(o, "http://", 7) != 0 && strncmp(o, "https://", 8) != 0)
        abort();
    if (strpbrk(strstr(o, "://") + 3, "/?#@\\") != NULL)
        abort();
    for (const char *c = o; *c != '\0'; c++) {
        if (*c >= 'A' && *c <= 'Z')
            abort();
    }
    if (ha_url_origin(o, &again) != HA_OK || strcmp(o, again) != 0)
        abort();
    free(again);
    free(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
        enum ha_err err = ha_redirect_check(&policies[i], s);
        if (err == HA_OK)
            check_allowed(&policies[i], s);
        else if (err == HA_ERR_TOO_LARGE && strlen(s) <= HA_MAX_REDIRECT)
            abort();
        else if (err != HA_ERR_TOO_LARGE && err != HA_ERR_REFUSED)
            abort();
    }
    check_origin(s);
    free(s);
    return 0;
}
