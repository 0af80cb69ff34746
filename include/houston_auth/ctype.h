/* Character classes: the one place that says what a digit, a letter, a hex digit or a host
 * character is (as curl's curl_ctype.h does for curl). ASCII only and locale-free, unlike
 * <ctype.h>: a byte past 0x7f is in no class, and a negative char is never an index. */
#ifndef HOUSTON_AUTH_CTYPE_H
#define HOUSTON_AUTH_CTYPE_H

#include <stdbool.h>

static inline bool ha_isdigit(int c)
{
    return c >= '0' && c <= '9';
}

static inline bool ha_isupper(int c)
{
    return c >= 'A' && c <= 'Z';
}

static inline bool ha_islower(int c)
{
    return c >= 'a' && c <= 'z';
}

static inline bool ha_isalpha(int c)
{
    return ha_isupper(c) || ha_islower(c);
}

static inline bool ha_isalnum(int c)
{
    return ha_isalpha(c) || ha_isdigit(c);
}

/* The value of a hex digit, either case, or -1. */
static inline int ha_hexval(int c)
{
    if (ha_isdigit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static inline bool ha_isxdigit(int c)
{
    return ha_hexval(c) >= 0;
}

/* ASCII lower case; every other byte unchanged. */
static inline char ha_tolower(char c)
{
    if (ha_isupper(c))
        return (char)(c - 'A' + 'a');
    return c;
}

/* RFC 3986 §2.3 unreserved: ALPHA DIGIT - . _ ~ */
static inline bool ha_isunreserved(int c)
{
    return ha_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* A character of a DNS label (RFC 1035 §2.3.1 LDH): letter, digit or '-'. */
static inline bool ha_islabelchar(int c)
{
    return ha_isalnum(c) || c == '-';
}

/* The base64url alphabet (RFC 4648 §5), no padding. */
static inline bool ha_isb64url(int c)
{
    return ha_isalnum(c) || c == '-' || c == '_';
}

/* A control byte (C0 or DEL). */
static inline bool ha_iscntrl(int c)
{
    return (c >= 0 && c < 0x20) || c == 0x7f;
}

#endif
