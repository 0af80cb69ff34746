/* Fuzz target: the JWKS parser (untrusted JSON from the tenant). Invariants: an accepted set
 * is within the key cap, every kept key is an RSA key of 2048..8192 bits, and every kept kid
 * finds its own key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/jwks.h"
#include "houston_auth/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_key(const struct ha_jwks_set *set, const struct ha_jwk *k)
{
    EVP_PKEY *found = NULL;
    if (k->pkey == NULL || !EVP_PKEY_is_a(k->pkey, "RSA"))
        abort();
    if (EVP_PKEY_get_bits(k->pkey) < HA_MIN_RSA_BITS || EVP_PKEY_get_bits(k->pkey) > 8192)
        abort();
    if (k->kid != NULL && (ha_jwks_set_find(set, k->kid, &found) != HA_OK || found != k->pkey))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ha_jwks_set *set = NULL;
    EVP_PKEY *only = NULL;
    size_t i;

    if (ha_jwks_parse((const char *)data, size, &set) != HA_OK) {
        if (set != NULL)
            abort();
        return 0;
    }
    if (set->count > HA_MAX_JWKS_KEYS || set->count + set->skipped > HA_MAX_JWKS_KEYS)
        abort();
    for (i = 0; i < set->count; i++)
        check_key(set, &set->keys[i]);
    if ((ha_jwks_set_find(set, NULL, &only) == HA_OK) != (set->count == 1))
        abort();
    ha_jwks_set_free(set);
    return 0;
}
