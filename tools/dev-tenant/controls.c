/* Test controls (--test-controls only; otherwise every /__test/ path is a 404).
 *
 *   POST /__test/fault        JSON object of switches, merged into the current set; a member
 *                             set to null clears that switch. Unknown names and wrong types
 *                             are refused with 400 and nothing changes. Answers the full set.
 *   GET  /__test/fault        the current set.
 *   POST /__test/reset        clears every switch, the counters and the last authorize query
 *                             (signing keys added by rotate-key stay published).
 *   POST /__test/rotate-key   a new RSA key with a new kid, published beside the old ones and
 *                             signing from now on: {"kid":"..."}.
 *   GET  /__test/stats        request counters and the last GET /authorize query.
 *
 * Every endpoint reads switches through tenant_fault_*(), which copy values out under the
 * lock, so a switch flipped mid-request never tears a response. */
#include <stdlib.h>
#include <string.h>
#include "houston_auth/log.h"
#include "tenant.h"

#define MAX_DELAY_MS 60000

enum ftype { F_STATUS, F_DELAY, F_STRING, F_OBJECT, F_ARRAY, F_SIGN };

static const struct {
    const char *name;
    enum ftype type;
} fault_names[] = {
    {"token_status", F_STATUS},        {"token_body", F_STRING},
    {"token_content_type", F_STRING},  {"token_delay_ms", F_DELAY},
    {"id_token_claims", F_OBJECT},     {"id_token_header", F_OBJECT},
    {"id_token_sign", F_SIGN},         {"access_token_claims", F_OBJECT},
    {"access_token_header", F_OBJECT}, {"access_token_sign", F_SIGN},
    {"discovery_issuer", F_STRING},    {"discovery_status", F_STATUS},
    {"jwks_status", F_STATUS},         {"jwks_body", F_STRING},
    {"jwks_delay_ms", F_DELAY},        {"jwks_extra_keys", F_ARRAY},
    {"authorize_error", F_STRING},
};

static bool value_ok(enum ftype type, json_t *v)
{
    enum tenant_sign mode;
    json_int_t i;
    switch (type) {
    case F_STATUS:
        i = json_integer_value(v);
        return json_is_integer(v) && i >= 100 && i <= 599;
    case F_DELAY:
        i = json_integer_value(v);
        return json_is_integer(v) && i >= 0 && i <= MAX_DELAY_MS;
    case F_STRING:
        return json_is_string(v);
    case F_OBJECT:
        return json_is_object(v);
    case F_ARRAY:
        return json_is_array(v);
    case F_SIGN:
        return json_is_string(v) && tenant_sign_parse(json_string_value(v), &mode);
    }
    return false;
}

/* NULL when every member is a known switch of the right type (or null), else a message. */
static const char *check_faults(json_t *req)
{
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v)
    {
        size_t i, n = sizeof(fault_names) / sizeof(fault_names[0]);
        for (i = 0; i < n && strcmp(fault_names[i].name, key) != 0; i++)
            ;
        if (i == n)
            return "unknown fault name";
        if (!json_is_null(v) && !value_ok(fault_names[i].type, v))
            return "wrong type or range for a fault value";
    }
    return NULL;
}

static void set_faults(struct tenant *t, const struct peer_request *req, struct peer_response *resp)
{
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    const char *problem = json_is_object(body) ? check_faults(body) : "body is not a JSON object";
    const char *key;
    json_t *v, *copy;

    if (problem != NULL) {
        json_decref(body);
        peer_resp_json(
            resp, 400,
            json_pack("{s:s, s:s}", "error", "invalid_fault", "error_description", problem));
        return;
    }
    pthread_mutex_lock(&t->lock);
    json_object_foreach(body, key, v)
    {
        if (json_is_null(v))
            json_object_del(t->faults, key);
        else
            json_object_set(t->faults, key, v);
    }
    copy = json_deep_copy(t->faults);
    pthread_mutex_unlock(&t->lock);
    json_decref(body);
    peer_resp_json(resp, 200, copy);
}

static void reset(struct tenant *t, struct peer_response *resp)
{
    pthread_mutex_lock(&t->lock);
    json_object_clear(t->faults);
    json_decref(t->last_authorize);
    t->last_authorize = NULL;
    memset(&t->stats, 0, sizeof(t->stats));
    pthread_mutex_unlock(&t->lock);
    peer_resp_json(resp, 200, json_object());
}

static void rotate(struct tenant *t, struct peer_response *resp)
{
    struct tenant_key k;
    char kid[sizeof(k.kid)];
    bool added = false;

    if (tenant_key_generate(&k) != HA_OK) {
        peer_resp_json(resp, 500, json_pack("{s:s}", "error", "key generation failed"));
        return;
    }
    memcpy(kid, k.kid, sizeof(kid));
    pthread_mutex_lock(&t->lock);
    if (t->nkeys < TENANT_MAX_KEYS) {
        t->keys[t->nkeys] = k;
        t->nkeys++;
        added = true;
    }
    pthread_mutex_unlock(&t->lock);
    if (!added) {
        tenant_key_cleanup(&k);
        peer_resp_json(resp, 409, json_pack("{s:s}", "error", "too many signing keys"));
        return;
    }
    ha_log(HA_LOG_INFO, "key_rotated", NULL, "kid", kid, NULL);
    peer_resp_json(resp, 200, json_pack("{s:s}", "kid", kid));
}

static void stats(struct tenant *t, struct peer_response *resp)
{
    json_t *j;
    pthread_mutex_lock(&t->lock);
    j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:O?}", "discovery_fetches",
                  (json_int_t)t->stats.discovery_fetches, "jwks_fetches",
                  (json_int_t)t->stats.jwks_fetches, "token_requests",
                  (json_int_t)t->stats.token_requests, "authorize_requests",
                  (json_int_t)t->stats.authorize_requests, "logout_requests",
                  (json_int_t)t->stats.logout_requests, "last_authorize", t->last_authorize);
    pthread_mutex_unlock(&t->lock);
    peer_resp_json(resp, 200, j);
}

void tenant_handle_control(struct tenant *t, const struct peer_request *req,
                           struct peer_response *resp)
{
    bool post = strcmp(req->method, "POST") == 0;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    const char *p = req->path;

    if (!t->cfg.test_controls) {
        peer_resp_text(resp, 404, TENANT_TEXT, "not found\n");
        return;
    }
    resp->no_store = true;
    if (strcmp(p, "/__test/fault") == 0 && post)
        set_faults(t, req, resp);
    else if (strcmp(p, "/__test/fault") == 0 && get)
        peer_resp_json(resp, 200, tenant_fault_json(t, NULL));
    else if (strcmp(p, "/__test/reset") == 0 && post)
        reset(t, resp);
    else if (strcmp(p, "/__test/rotate-key") == 0 && post)
        rotate(t, resp);
    else if (strcmp(p, "/__test/stats") == 0 && get)
        stats(t, resp);
    else
        peer_resp_text(resp, 404, TENANT_TEXT, "no such test control (or wrong method)\n");
}

long tenant_fault_int(struct tenant *t, const char *name, long def)
{
    json_t *v;
    long out = def;
    pthread_mutex_lock(&t->lock);
    v = json_object_get(t->faults, name);
    if (json_is_integer(v))
        out = (long)json_integer_value(v);
    pthread_mutex_unlock(&t->lock);
    return out;
}

char *tenant_fault_str(struct tenant *t, const char *name)
{
    json_t *v;
    char *out = NULL;
    pthread_mutex_lock(&t->lock);
    v = json_object_get(t->faults, name);
    if (json_is_string(v))
        out = strndup(json_string_value(v), json_string_length(v));
    pthread_mutex_unlock(&t->lock);
    return out;
}

json_t *tenant_fault_json(struct tenant *t, const char *name)
{
    json_t *out;
    pthread_mutex_lock(&t->lock);
    out = json_deep_copy(name != NULL ? json_object_get(t->faults, name) : t->faults);
    pthread_mutex_unlock(&t->lock);
    return out;
}

void tenant_count(struct tenant *t, long *counter)
{
    pthread_mutex_lock(&t->lock);
    (*counter)++;
    pthread_mutex_unlock(&t->lock);
}
