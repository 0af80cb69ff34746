/* A validated, read-only view of a JSON object (RFC 8259): its top-level members, and the
 * items of its top-level arrays, without building a tree. Used for JWS headers and JWT
 * claims on the verification hot path; accepts nothing that jansson's
 * json_loadb(JSON_REJECT_DUPLICATES) would refuse, and refuses nothing it accepts but for
 * nesting past HA_JSON_MAX_DEPTH and a raw NUL byte, which jansson's reader drops after a
 * number (tests/fuzz/fuzz_json_view.c checks both directions against jansson). */
#ifndef HOUSTON_AUTH_JSON_VIEW_H
#define HOUSTON_AUTH_JSON_VIEW_H

#include <stddef.h>
#include "houston_auth/err.h"

/* Containers nested deeper than this are refused (jansson allows 2048; a token needs 2). */
#define HA_JSON_MAX_DEPTH 32

enum ha_json_type {
    HA_JSON_NULL,
    HA_JSON_FALSE,
    HA_JSON_TRUE,
    HA_JSON_NUMBER,
    HA_JSON_STRING,
    HA_JSON_ARRAY,
    HA_JSON_OBJECT
};

struct ha_json_val {
    enum ha_json_type type;
    const char *str; /* STRING: unescaped UTF-8, NUL-terminated, never an embedded NUL */
    size_t len;      /* STRING: bytes of str; ARRAY (top-level member only): its items */
    double num;      /* NUMBER: as jansson's json_number_value would give it */
    int is_integer;  /* NUMBER: written without fraction or exponent */
    size_t first;    /* ARRAY (top-level member only): index of its first item */
};

struct ha_json_member {
    const char *name; /* unescaped, NUL-terminated */
    size_t name_len;
    struct ha_json_val val;
};

struct ha_json_view {
    struct ha_json_member *members;
    size_t n_members;
    struct ha_json_val *items; /* the items of every top-level array, in order */
    size_t n_items;
    size_t cap_members, cap_items;
};

/* Parses text[0..len), which must be followed by a NUL at text[len], as one JSON object with
 * nothing but whitespace after it. Strings are unescaped in place, so text is modified and
 * must outlive the view. Refused (HA_ERR_INVALID): anything jansson refuses, a top level
 * that is not an object, duplicate member names in any object, \u0000, nesting deeper than
 * HA_JSON_MAX_DEPTH. HA_ERR_NOMEM. On failure *v is left empty (cleanup is still safe). */
enum ha_err ha_json_view_parse(char *text, size_t len, struct ha_json_view *v);
void ha_json_view_cleanup(struct ha_json_view *v);

/* The top-level member named name, or NULL (borrowed). */
const struct ha_json_val *ha_json_view_get(const struct ha_json_view *v, const char *name);
/* Item i of a top-level ARRAY member, or NULL past its end (borrowed). Nested containers
 * appear as items of type ARRAY or OBJECT with no contents. */
const struct ha_json_val *ha_json_view_item(const struct ha_json_view *v,
                                            const struct ha_json_val *array, size_t i);

#endif
