/* base64url without padding (RFC 4648 §5) as JWS uses it (RFC 7515 §2).
 *
 * The decoder is strict on purpose: it accepts exactly one spelling of each byte string
 * (no '=', no whitespace, no other alphabet, unused trailing bits zero), so a sealed cookie
 * or a JWT segment cannot be re-spelled by an attacker and still decode to the same bytes. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "houston_auth/b64url.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#define BAD 0xff

/* The 6-bit value of each byte, BAD outside the alphabet: one load per character, where
 * range tests cost a branch each (a token's decode is on the verification hot path). */
static unsigned char sextets[256];
static pthread_once_t sextets_once = PTHREAD_ONCE_INIT;

static void sextets_init(void)
{
    memset(sextets, BAD, sizeof(sextets));
    for (unsigned i = 0; i < 64; i++)
        sextets[(unsigned char)alphabet[i]] = (unsigned char)i;
}

size_t ha_b64url_encoded_len(size_t len)
{
    static const size_t tail[3] = {0, 2, 3};
    return len / 3 * 4 + tail[len % 3];
}

void ha_b64url_encode_to(const unsigned char *in, size_t len, char *out)
{
    size_t i = 0, o = 0;
    uint32_t v;

    for (; i + 3 <= len; i += 3) {
        v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
}

enum ha_err ha_b64url_encode(const unsigned char *in, size_t len, char **out)
{
    char *s;
    if (len > (SIZE_MAX - 4) / 4 * 3)
        return HA_ERR_TOO_LARGE;
    s = malloc(ha_b64url_encoded_len(len) + 1);
    if (s == NULL)
        return HA_ERR_NOMEM;
    ha_b64url_encode_to(in, len, s);
    *out = s;
    return HA_OK;
}

/* Decodes a group of n (2..4) characters into n - 1 bytes. Refuses a character outside the
 * alphabet and, for a short final group, set bits that no output byte holds (RFC 4648 §3.5:
 * such encodings are non-canonical). */
static int decode_group(const char *in, size_t n, unsigned char *out)
{
    uint32_t v = 0;
    unsigned char s;
    for (size_t i = 0; i < 4; i++) {
        s = i < n ? sextets[(unsigned char)in[i]] : 0;
        if (s == BAD)
            return 0;
        v = v << 6 | s;
    }
    if ((n == 2 && (v & 0xffff) != 0) || (n == 3 && (v & 0xff) != 0))
        return 0;
    out[0] = (unsigned char)(v >> 16);
    if (n > 2)
        out[1] = (unsigned char)(v >> 8);
    if (n > 3)
        out[2] = (unsigned char)v;
    return 1;
}

enum ha_err ha_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    size_t rest = len % 4, full = len / 4, n = full * 3 + (rest > 0 ? rest - 1 : 0);
    unsigned char *buf;
    enum ha_err err = HA_ERR_INVALID;

    if (rest == 1)
        return HA_ERR_INVALID;
    pthread_once(&sextets_once, sextets_init);
    buf = malloc(n + 1);
    if (buf == NULL)
        return HA_ERR_NOMEM;
    for (size_t g = 0; g < full; g++) {
        /* Full groups inline: four loads, one test (BAD has the high bit, sextets do not). */
        const unsigned char *p = (const unsigned char *)in + g * 4;
        uint32_t a = sextets[p[0]], b = sextets[p[1]], c = sextets[p[2]], d = sextets[p[3]];
        if (((a | b | c | d) & 0x80) != 0)
            goto out;
        a = a << 18 | b << 12 | c << 6 | d;
        buf[g * 3] = (unsigned char)(a >> 16);
        buf[g * 3 + 1] = (unsigned char)(a >> 8);
        buf[g * 3 + 2] = (unsigned char)a;
    }
    if (rest > 0 && !decode_group(in + full * 4, rest, buf + full * 3))
        goto out;
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    buf = NULL;
    err = HA_OK;
out:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, n + 1);
        free(buf);
    }
    return err;
}
