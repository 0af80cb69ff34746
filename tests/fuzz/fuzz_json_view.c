/* Fuzz target: the JSON view against jansson, differentially. Invariants: whatever the view
 * accepts, json_loadb(JSON_REJECT_DUPLICATES) accepts as an object with the same members,
 * types, strings and numbers (and the same items in top-level arrays); whatever jansson
 * accepts as an object, the view accepts too unless it nests past HA_JSON_MAX_DEPTH or holds
 * a raw NUL byte (jansson's reader drops a NUL that follows a number: {"n":1<NUL>} loads;
 * RFC 8259 allows none outside strings, so the view refuses it). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "houston_auth/json_view.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t depth_of(const json_t *j)
{
    size_t max = 0, d, i;
    const char *k;
    json_t *v;
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, k, v)
        {
            d = depth_of(v);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            d = depth_of(v);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    return 0;
}

static void same_value(const struct ha_json_view *view, const struct ha_json_val *v,
                       const json_t *j, int top)
{
    size_t i;
    switch (v->type) {
    case HA_JSON_NULL:
        if (!json_is_null(j))
            abort();
        break;
    case HA_JSON_TRUE:
        if (!json_is_true(j))
            abort();
        break;
    case HA_JSON_FALSE:
        if (!json_is_false(j))
            abort();
        break;
    case HA_JSON_NUMBER:
        if (json_is_integer(j) ? !v->is_integer || v->num != (double)json_integer_value(j)
                               : !json_is_real(j) || v->is_integer || v->num != json_real_value(j))
            abort();
        break;
    case HA_JSON_STRING:
        if (!json_is_string(j) || json_string_length(j) != v->len || strlen(v->str) != v->len ||
            memcmp(json_string_value(j), v->str, v->len) != 0)
            abort();
        break;
    case HA_JSON_ARRAY:
        if (!json_is_array(j) || (top && json_array_size(j) != v->len) || (!top && v->len != 0))
            abort();
        for (i = 0; top && i < v->len; i++)
            same_value(view, ha_json_view_item(view, v, i), json_array_get(j, i), 0);
        if (ha_json_view_item(view, v, v->len) != NULL)
            abort();
        break;
    case HA_JSON_OBJECT:
        if (!json_is_object(j))
            abort();
        break;
    default:
        abort();
    }
}

static void same_members(const struct ha_json_view *view, const json_t *doc)
{
    if (json_object_size(doc) != view->n_members)
        abort();
    for (size_t i = 0; i < view->n_members; i++) {
        const struct ha_json_member *m = &view->members[i];
        const json_t *j = json_object_getn(doc, m->name, m->name_len);
        if (j == NULL || strlen(m->name) != m->name_len ||
            ha_json_view_get(view, m->name) != &m->val)
            abort();
        same_value(view, &m->val, j, 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    struct ha_json_view view;
    json_t *doc;
    enum ha_err err;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    err = ha_json_view_parse(text, size, &view);
    doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (err == HA_OK) {
        if (!json_is_object(doc))
            abort();
        same_members(&view, doc);
    } else if (err == HA_ERR_INVALID) {
        if (view.members != NULL || view.n_members != 0)
            abort();
        if (json_is_object(doc) && depth_of(doc) <= HA_JSON_MAX_DEPTH &&
            memchr(data, 0, size) == NULL)
            abort();
    } else if (err != HA_ERR_NOMEM) {
        abort();
    }
    ha_json_view_cleanup(&view);
    json_decref(doc);
    free(text);
    return 0;
}
