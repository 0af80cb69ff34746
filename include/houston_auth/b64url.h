/* base64url without padding (RFC 4648 §5, RFC 7515 §2). */
#ifndef HOUSTON_AUTH_B64URL_H
#define HOUSTON_AUTH_B64URL_H

#include <stddef.h>
#include "houston_auth/err.h"

/* Encodes len bytes; *out is a NUL-terminated string the caller frees. */
enum ha_err ha_b64url_encode(const unsigned char *in, size_t len, char **out);
/* Encodes into out, which must hold ha_b64url_encoded_len(len) + 1 bytes. */
void ha_b64url_encode_to(const unsigned char *in, size_t len, char *out);
size_t ha_b64url_encoded_len(size_t len);
/* Strict decode: only [A-Za-z0-9_-], no '=' padding, no whitespace, length mod 4 != 1,
 * unused trailing bits zero. *out (caller frees; NUL-terminated after *out_len bytes). */
enum ha_err ha_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

#endif
