/* Fuzz target: Cookie header parsing and Set-Cookie formatting. Invariants: an accepted
 * header yields at most HA_MAX_COOKIE_PAIRS pairs with non-empty, trimmed names free of ';' and
 * '='; over the cap is always HA_ERR_TOO_LARGE; any pair that ha_cookie_format accepts comes
 * out without CTLs and parses back as the same name and value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/cookie.h"
#include "houston_auth/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_pair(const struct ha_kv *kv)
{
    const char *k = kv->key;
    size_t n = strlen(k);
    if (n == 0 || strpbrk(k, ";=") != NULL || strchr(kv->value, ';') != NULL)
        abort();
    if (k[0] == ' ' || k[0] == '\t' || k[n - 1] == ' ' || k[n - 1] == '\t')
        abort();
}

/* Formats name=value; what comes out must read back as the same cookie. */
static void check_format(const char *name, const char *value)
{
    struct ha_set_cookie c = {name, value, ".astro.example.com", "/", 0, true, true, "Lax"};
    struct ha_kvlist back = {NULL, 0};
    char *line = NULL;
    if (ha_cookie_format(&c, &line) != HA_OK)
        return;
    for (const char *p = line; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            abort();
    }
    if (ha_cookie_parse(line, strlen(line), &back) != HA_OK || back.count == 0 ||
        strcmp(back.items[0].key, name) != 0 || strcmp(back.items[0].value, value) != 0)
        abort();
    ha_kvlist_cleanup(&back);
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ha_kvlist l = {NULL, 0};
    char *s;
    enum ha_err err = ha_cookie_parse((const char *)data, size, &l);

    if (size > HA_MAX_COOKIE_HEADER && err != HA_ERR_TOO_LARGE)
        abort();
    if (err == HA_OK) {
        if (l.count > HA_MAX_COOKIE_PAIRS)
            abort();
        for (size_t i = 0; i < l.count; i++) {
            check_pair(&l.items[i]);
            check_format(l.items[i].key, l.items[i].value);
        }
        ha_kvlist_cleanup(&l);
    }
    /* The whole input as a value: formatting must refuse or produce a clean header. */
    s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_format("n", s);
    free(s);
    return 0;
}
