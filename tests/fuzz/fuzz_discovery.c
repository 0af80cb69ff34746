/* Fuzz target: the discovery document parser (untrusted JSON from the tenant). Invariant:
 * an accepted document always yields the pinned issuer and https endpoints. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/oidc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char issuer[] = "https://tenant.example.com/";
    struct ha_oidc_provider p = {0};
    const char *reason = NULL;
    if (ha_oidc_parse_discovery((const char *)data, size, issuer, 0, &p, &reason) == HA_OK) {
        if (strcmp(p.issuer, issuer) != 0 || strncmp(p.token_endpoint, "https://", 8) != 0 ||
            strncmp(p.jwks_uri, "https://", 8) != 0 ||
            strncmp(p.authorization_endpoint, "https://", 8) != 0)
            abort();
    }
    ha_oidc_provider_cleanup(&p);
    return 0;
}
