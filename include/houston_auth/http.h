/* The plain request and response structs handlers work on, free of any HTTP library. */
#ifndef HOUSTON_AUTH_HTTP_H
#define HOUSTON_AUTH_HTTP_H

#include <stddef.h>
#include "houston_auth/err.h"
#include "houston_auth/url.h"

#include "houston_auth/proto.h"

/* A response may clear every transaction cookie a request carried. */
#define HA_RESP_MAX_SET_COOKIES (HA_MAX_COOKIE_PAIRS + 8)
/* Other headers a response may carry (the gate relays Houston's three). */
#define HA_RESP_MAX_HEADERS 4

struct ha_request {
    const char *method;
    const char *path;
    struct ha_kvlist query;   /* decoded query string */
    struct ha_kvlist form;    /* decoded urlencoded body (POST) */
    struct ha_kvlist cookies; /* parsed Cookie header */
    char request_id[40];      /* X-Request-Id if sane, else generated */
    char peer[48];            /* the TCP peer's address ("" when unknown), login routes only */
    char *forwarded_for;      /* X-Forwarded-For's last HA_MAX_FORWARDED_FOR bytes, or NULL */
    /* The gate's route only (NULL: absent): headers borrowed from the server, valid until the
     * request ends. */
    const char *authorization;
    const char *original_url;    /* X-Original-URL */
    const char *original_method; /* X-Original-Method */
};
void ha_request_cleanup(struct ha_request *r);

struct ha_response {
    int status;
    char *location;
    const char *content_type; /* static string */
    char *body;
    size_t body_len;
    char **set_cookies; /* grows as needed, at most HA_RESP_MAX_SET_COOKIES */
    size_t set_cookie_count;
    size_t set_cookie_cap;
    int no_store;      /* Cache-Control: no-store */
    const char *allow; /* Allow header for 405, static */
    /* More headers: static names, owned values (wiped when freed: they may be credentials).
     * The server answers 502 rather than send one it cannot (a CR or LF in a value). */
    const char *header_names[HA_RESP_MAX_HEADERS];
    char *header_values[HA_RESP_MAX_HEADERS];
    size_t header_count;
};
void ha_response_cleanup(struct ha_response *r);
/* Takes ownership of set_cookie (freed on error). */
enum ha_err ha_response_add_cookie(struct ha_response *r, char *set_cookie);
/* Adds header name (static) with a copy of value. HA_ERR_TOO_LARGE past HA_RESP_MAX_HEADERS. */
enum ha_err ha_response_add_header(struct ha_response *r, const char *name, const char *value);
/* A status with a copied body. */
enum ha_err ha_response_text(struct ha_response *r, int status, const char *content_type,
                             const char *body);

#endif
