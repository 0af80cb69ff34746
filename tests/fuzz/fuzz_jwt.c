/* Fuzz target: compact JWS parsing, the header policy and the claim checks with a fixed
 * expectation, plus the RS256 signature on a fixed key (the seed corpus holds tokens that key
 * really signed). Invariants: whatever passes a check satisfies that check's contract. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/jwks.h"
#include "houston_auth/jwt_verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ISS "https://tenant.example.com/"
#define CLIENT "client-1"
#define NONCE "n-fuzz"
#define NOW 1700000000L
#define LEEWAY 60L

/* The public half of the key that signed tests/fuzz/corpus/jwt/valid*.jwt. */
static const char fuzz_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"fuzz1\",\"e\":\"AQAB\",\"n\":"
    "\""
    "0pqEhQQzr5-w0RSls8ViYaJYZfCUDZJ3v8D8mzMOGMs95rxAo3hmG8sLX9x_uggkjGa6iQ7a163n1zTW"
    "weVj2pfDR9B_dYYXdRKOaltqhPAVEF4IIG6OYyoLRcc2pF1CrQus2aBLMYHxphpCsMx1r0M1nFpp2zeQ"
    "iCTsn-gr9bvG3ZdQT71P7DZ1f6wOZseLWWn4VPqcF2Ry-PNjE82UDSPyjpztmXgMU6s_eY_t4Yy_Vc78"
    "VzwLPccPYQqMeVmnsY0sC7wSJsRt595kFTvV1J5Pp_mJ76lYzUDIqLdgtbvEhuedEvDhasH83rHP7MM7"
    "In0Tbn8W-_a-oYq9e021OQ"
    "\"}]}";

static EVP_PKEY *fixed_key(void)
{
    static struct ha_jwks_set *set;
    EVP_PKEY *key = NULL;
    if (set == NULL && ha_jwks_parse(fuzz_jwks, strlen(fuzz_jwks), &set) != HA_OK)
        abort();
    if (ha_jwks_set_find(set, "fuzz1", &key) != HA_OK)
        abort();
    return key;
}

static void check_parsed(const struct ha_jwt *jwt, const uint8_t *data, size_t size)
{
    if (jwt->header_text == NULL || jwt->claims_text == NULL)
        abort();
    if (jwt->signing_input != jwt->raw || jwt->signing_input_len >= size ||
        memcmp(jwt->raw, data, size) != 0 || jwt->raw[jwt->signing_input_len] != '.')
        abort();
}

static void check_header_ok(const struct ha_jwt *jwt)
{
    const char *kid = ha_jwt_kid(jwt);
    const struct ha_json_val *alg = ha_json_view_get(&jwt->header, "alg");
    size_t i, n;
    if (alg == NULL || alg->type != HA_JSON_STRING || strcmp(alg->str, "RS256") != 0 ||
        ha_json_view_get(&jwt->header, "crit") != NULL)
        abort();
    if (kid == NULL)
        return;
    n = strlen(kid);
    if (n == 0 || n > 256)
        abort();
    for (i = 0; i < n; i++) {
        if ((unsigned char)kid[i] < 0x21 || (unsigned char)kid[i] > 0x7e)
            abort();
    }
}

static void check_claims_ok(const struct ha_jwt *jwt)
{
    const struct ha_json_val *exp = ha_json_view_get(&jwt->claims, "exp");
    const char *iss = ha_jwt_claim_str(jwt, "iss"), *nonce = ha_jwt_claim_str(jwt, "nonce");
    const char *sub = ha_jwt_claim_str(jwt, "sub");
    if (iss == NULL || strcmp(iss, ISS) != 0 || nonce == NULL || strcmp(nonce, NONCE) != 0)
        abort();
    if (exp == NULL || exp->type != HA_JSON_NUMBER || exp->num < (double)(NOW - LEEWAY))
        abort();
    if (sub == NULL || sub[0] == '\0' || ha_json_view_get(&jwt->claims, "iat") == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct ha_jwt_expect e = {ISS, CLIENT, CLIENT, true, NONCE, true, true, NOW, LEEWAY};
    struct ha_jwt *jwt = NULL;
    const char *reason = NULL;

    if (ha_jwt_parse((const char *)data, size, &jwt) != HA_OK)
        return 0;
    check_parsed(jwt, data, size);
    if (ha_jwt_check_header(jwt) == HA_OK) {
        check_header_ok(jwt);
        if (ha_jwt_verify_signature(jwt, fixed_key()) == HA_OK && jwt->sig_len != 256)
            abort();
    }
    if (ha_jwt_check_claims(jwt, &e, &reason) == HA_OK)
        check_claims_ok(jwt);
    else if (reason == NULL)
        abort();
    ha_jwt_free(jwt);
    return 0;
}
