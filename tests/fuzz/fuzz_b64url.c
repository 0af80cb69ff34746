/* Fuzz target: base64url. Invariants: decoding is canonical, so anything that decodes
 * re-encodes to exactly the input; decode(encode(x)) == x for any bytes x. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/b64url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *dec = NULL;
    char *enc = NULL;
    size_t n = 0;

    if (ha_b64url_decode((const char *)data, size, &dec, &n) == HA_OK) {
        if (ha_b64url_encode(dec, n, &enc) != HA_OK || strlen(enc) != size ||
            memcmp(enc, data, size) != 0 || dec[n] != '\0')
            abort();
        free(enc);
        free(dec);
        enc = NULL;
        dec = NULL;
    }
    if (ha_b64url_encode(data, size, &enc) != HA_OK || strlen(enc) != ha_b64url_encoded_len(size) ||
        ha_b64url_decode(enc, strlen(enc), &dec, &n) != HA_OK || n != size ||
        memcmp(dec, data, size) != 0)
        abort();
    free(enc);
    free(dec);
    return 0;
}
