/* The plain request/response structs handlers fill: ownership helpers only. */
#include <stdlib.h>
#include <string.h>
#include "houston_auth/http.h"
#include "houston_auth/util.h"

void ha_request_cleanup(struct ha_request *r)
{
    if (r == NULL)
        return;
    ha_kvlist_cleanup(&r->query);
    ha_kvlist_cleanup(&r->form);
    ha_kvlist_cleanup(&r->cookies);
    free(r->forwarded_for);
    r->forwarded_for = NULL;
}

void ha_response_cleanup(struct ha_response *r)
{
    if (r == NULL)
        return;
    ha_free_secret(r->location);
    ha_free_secret(r->body);
    for (size_t i = 0; i < r->set_cookie_count; i++)
        ha_free_secret(r->set_cookies[i]);
    free(r->set_cookies);
    for (size_t i = 0; i < r->header_count; i++)
        ha_free_secret(r->header_values[i]);
    memset(r, 0, sizeof(*r));
}

enum ha_err ha_response_add_header(struct ha_response *r, const char *name, const char *value)
{
    char *v;
    if (r->header_count >= HA_RESP_MAX_HEADERS)
        return HA_ERR_TOO_LARGE;
    v = ha_strdup(value);
    if (v == NULL)
        return HA_ERR_NOMEM;
    r->header_names[r->header_count] = name;
    r->header_values[r->header_count++] = v;
    return HA_OK;
}

enum ha_err ha_response_add_cookie(struct ha_response *r, char *set_cookie)
{
    if (r->set_cookie_count >= HA_RESP_MAX_SET_COOKIES) {
        ha_free_secret(set_cookie);
        return HA_ERR_TOO_LARGE;
    }
    if (r->set_cookie_count == r->set_cookie_cap) {
        size_t cap = r->set_cookie_cap == 0 ? 4 : r->set_cookie_cap * 2;
        char **grown = realloc(r->set_cookies, cap * sizeof(*grown));
        if (grown == NULL) {
            ha_free_secret(set_cookie);
            return HA_ERR_NOMEM;
        }
        r->set_cookies = grown;
        r->set_cookie_cap = cap;
    }
    r->set_cookies[r->set_cookie_count++] = set_cookie;
    return HA_OK;
}

enum ha_err ha_response_text(struct ha_response *r, int status, const char *content_type,
                             const char *body)
{
    char *copy = strdup(body);
    if (copy == NULL)
        return HA_ERR_NOMEM;
    free(r->body);
    r->status = status;
    r->content_type = content_type;
    r->body = copy;
    r->body_len = strlen(copy);
    return HA_OK;
}
