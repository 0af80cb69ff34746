/* One error enum for the whole project; ha_err_str() names each value. */
#ifndef HOUSTON_AUTH_ERR_H
#define HOUSTON_AUTH_ERR_H

enum ha_err {
    HA_OK = 0,
    HA_ERR_NOMEM,      /* allocation failed */
    HA_ERR_INVALID,    /* malformed input */
    HA_ERR_TOO_LARGE,  /* input over its cap */
    HA_ERR_NOT_FOUND,  /* lookup missed */
    HA_ERR_CRYPTO,     /* OpenSSL failed, or a MAC/AEAD tag did not verify */
    HA_ERR_IO,         /* network or file I/O failed */
    HA_ERR_TIMEOUT,    /* an outbound call ran out of time */
    HA_ERR_HTTP,       /* a peer answered with an unexpected status or body */
    HA_ERR_CONFIG,     /* configuration refused */
    HA_ERR_EXPIRED,    /* a time-bounded object is past its lifetime */
    HA_ERR_REFUSED,    /* input well-formed but refused by policy */
    HA_ERR_JWT_FORMAT, /* not a compact JWS with JSON header and claims */
    HA_ERR_JWT_ALG,    /* header alg/crit refused */
    HA_ERR_JWT_KEY,    /* no usable key for the token's kid */
    HA_ERR_JWT_SIG,    /* signature does not verify */
    HA_ERR_JWT_CLAIMS, /* iss/aud/azp/exp/nbf/iat/sub/nonce refused */
    HA_ERR_BUSY,       /* a bounded resource is exhausted */
    HA_ERR_TLS,        /* TLS to a peer failed (certificate not trusted, handshake) */
    HA_ERR__COUNT
};

/* Static, never NULL. */
const char *ha_err_str(enum ha_err err);

#endif
