/* Fuzz target: opening a transaction cookie (the browser sends any bytes it likes).
 * Invariants: nothing is filled unless a key authenticates the value; an opened transaction
 * has well-formed random fields and a creation time inside the window; and it seals and
 * opens again to the same fields. The seed corpus holds values sealed under these keys. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "houston_auth/transaction.h"

#define FUZZ_NOW 1700000000L
#define FUZZ_TTL 600L
/* ha_txn_cookie_name() of the state "AAAA...A" (43 chars) that the seeds were sealed for. */
#define FUZZ_STATE "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char fuzz_keys[2][32] = {
    "fuzz-current-key-0123456789abcde",
    "fuzz-previous-key-0123456789abcd",
};

static void check_opened(const struct ha_txn *t, const char *name)
{
    struct ha_txn again;
    char *v = NULL;

    if (strlen(t->state) != HA_RANDOM_B64_LEN || strlen(t->nonce) != HA_RANDOM_B64_LEN ||
        strlen(t->verifier) != HA_RANDOM_B64_LEN || t->integration == NULL || t->redirect == NULL ||
        t->created > FUZZ_NOW + 60 || FUZZ_NOW - t->created > FUZZ_TTL)
        abort();
    memset(&again, 0, sizeof(again));
    if (ha_txn_seal(t, fuzz_keys[0], &ha_rng_openssl, &v) != HA_OK)
        return; /* fields within their caps may still not fit one cookie together */
    if (ha_txn_open(v, strlen(v), name, fuzz_keys, 1, FUZZ_NOW, FUZZ_TTL, &again) != HA_OK ||
        strcmp(again.state, t->state) != 0 || strcmp(again.redirect, t->redirect) != 0 ||
        again.created != t->created)
        abort();
    ha_txn_cleanup(&again);
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ha_txn t;
    char name[64];

    ha_txn_cookie_name(FUZZ_STATE, name);
    memset(&t, 0, sizeof(t));
    if (ha_txn_open((const char *)data, size, name, fuzz_keys, 2, FUZZ_NOW, FUZZ_TTL, &t) ==
        HA_OK) {
        check_opened(&t, name);
        ha_txn_cleanup(&t);
    } else if (t.integration != NULL || t.redirect != NULL || t.state[0] != '\0') {
        abort();
    }
    return 0;
}
