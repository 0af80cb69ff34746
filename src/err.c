/* Names for enum ha_err, for log lines and test messages. */
#include <stddef.h>
#include "houston_auth/err.h"

const char *ha_err_str(enum ha_err err)
{
    static const char *const names[HA_ERR__COUNT] = {
        [HA_OK] = "ok",
        [HA_ERR_NOMEM] = "out of memory",
        [HA_ERR_INVALID] = "malformed input",
        [HA_ERR_TOO_LARGE] = "input too large",
        [HA_ERR_NOT_FOUND] = "not found",
        [HA_ERR_CRYPTO] = "cryptographic check failed",
        [HA_ERR_IO] = "I/O error",
        [HA_ERR_TIMEOUT] = "timed out",
        [HA_ERR_HTTP] = "unexpected HTTP answer",
        [HA_ERR_CONFIG] = "configuration refused",
        [HA_ERR_EXPIRED] = "expired",
        [HA_ERR_REFUSED] = "refused by policy",
        [HA_ERR_JWT_FORMAT] = "malformed JWT",
        [HA_ERR_JWT_ALG] = "JWT algorithm refused",
        [HA_ERR_JWT_KEY] = "no key for JWT",
        [HA_ERR_JWT_SIG] = "JWT signature invalid",
        [HA_ERR_JWT_CLAIMS] = "JWT claims refused",
        [HA_ERR_BUSY] = "busy",
        [HA_ERR_TLS] = "TLS failed (peer certificate not trusted, or handshake)",
    };
    if ((unsigned)err >= HA_ERR__COUNT || names[err] == NULL)
        return "unknown error";
    return names[err];
}
