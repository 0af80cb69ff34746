/* Fuzz target: query strings and form bodies (ha_url_parse_query) and percent-encoding.
 * Invariants: an accepted input holds at most HA_MAX_PAIRS pairs; re-encoding the decoded
 * pairs and parsing again gives the same pairs; decode(encode(x)) == x for NUL-free x. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/buf.h"
#include "houston_auth/proto.h"
#include "houston_auth/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reencode(const struct ha_kvlist *l)
{
    struct ha_buf b;
    struct ha_kvlist again = {NULL, 0};
    ha_buf_init(&b, 0);
    for (size_t i = 0; i < l->count; i++) {
        if (ha_buf_append_param(&b, l->items[i].key, l->items[i].value) != HA_OK)
            abort();
    }
    if (ha_url_parse_query(b.data != NULL ? b.data : "", b.len, &again) != HA_OK ||
        again.count != l->count)
        abort();
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(again.items[i].key, l->items[i].key) != 0 ||
            strcmp(again.items[i].value, l->items[i].value) != 0)
            abort();
    }
    ha_kvlist_cleanup(&again);
    ha_buf_cleanup(&b);
}

static void check_roundtrip(const char *s, size_t size)
{
    char *enc = NULL, *dec = NULL;
    if (ha_url_encode(s, size, &enc) != HA_OK)
        abort();
    for (const char *p = enc; *p != '\0'; p++) {
        if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%", *p) ==
            NULL)
            abort();
    }
    if (ha_url_decode(enc, strlen(enc), &dec) != HA_OK || strlen(dec) != size ||
        memcmp(dec, s, size) != 0)
        abort();
    free(enc);
    free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct ha_kvlist l = {NULL, 0};
    char *dec = NULL;

    if (size > HA_MAX_FORM_BODY)
        return 0;
    if (ha_url_parse_query(s, size, &l) == HA_OK) {
        if (l.count > HA_MAX_PAIRS)
            abort();
        check_reencode(&l);
        ha_kvlist_cleanup(&l);
    } else if (l.items != NULL || l.count != 0) {
        abort(); /* out is untouched on error */
    }
    if (memchr(s, '\0', size) == NULL)
        check_roundtrip(s, size);
    if (ha_url_decode(s, size, &dec) == HA_OK) {
        if (strlen(dec) > size)
            abort();
        free(dec);
    }
    return 0;
}
