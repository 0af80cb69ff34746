/* Houston's users and their grants: the database GET /v1/authorization reads on every call.
 *
 * A user is keyed by the uuid Houston would give its email (session.c) and holds
 *   {email, full_name, system: [permission], deployments: {release: [role]}}.
 * The callback creates one on a first login (Houston's find-or-create by email); the tests set
 * grants through the controls below. Houston derives grants from role bindings (system,
 * workspace and deployment roles mapped to permissions by its config); here a user's system
 * permissions are listed as they are, and deployment roles per release name directly. With
 * --state-dir the table is kept in users.json (state.c) across restarts.
 *
 * Test controls (--test-controls):
 *   GET  /__test/permissions  every user: [{uuid, email, full_name, system, deployments}].
 *   POST /__test/permissions  {email, full_name?, system?, deployments?, delete?}: creates the
 *                             user unless it exists; each field given replaces the stored one
 *                             (a new user starts with none); delete: true removes the user.
 *   POST /__test/session      {email, expires_in?}: a session JWT for email as the callback
 *                             mints it (expires_in seconds, default 86400, may be <= 0 for an
 *                             expired one), without creating the user.
 *   GET  /__test/keys         the signing key's public half: {kid, alg, public_key_pem, jwks}. */
#include <stdlib.h>
#include <string.h>
#include "houston_auth/log.h"
#include "standin.h"

#define MAX_EMAIL 320
#define MAX_NAME 256
#define MAX_PERMISSION 128
#define MAX_RELEASE 128
#define MAX_GRANTS 64
#define MAX_EXPIRES_IN 315360000 /* ten years either way */

static const char *const deployment_roles[] = {"DEPLOYMENT_ADMIN", "DEPLOYMENT_EDITOR",
                                               "DEPLOYMENT_VIEWER"};

static json_t *new_user(const char *email, const char *full_name)
{
    return json_pack("{s:s, s:s?, s:[], s:{}}", "email", email, "full_name", full_name, "system",
                     "deployments");
}

void standin_users_touch(struct standin *s, const char *email, const char *full_name)
{
    char uuid[STANDIN_UUID_LEN + 1];
    bool full = false;
    standin_user_uuid(email, uuid);
    pthread_mutex_lock(&s->lock);
    if (json_object_get(s->users, uuid) == NULL) {
        if (json_object_size(s->users) < STANDIN_MAX_USERS) {
            json_object_set_new(s->users, uuid, new_user(email, full_name));
            standin_state_save_users(s);
        } else {
            full = true;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (full)
        ha_log(HA_LOG_WARN, "users_full", NULL, NULL);
}

json_t *standin_users_get(struct standin *s, const char *uuid)
{
    json_t *u;
    pthread_mutex_lock(&s->lock);
    u = json_deep_copy(json_object_get(s->users, uuid));
    pthread_mutex_unlock(&s->lock);
    return u;
}

void standin_users_reset(struct standin *s)
{
    pthread_mutex_lock(&s->lock);
    json_object_clear(s->users);
    standin_state_save_users(s);
    pthread_mutex_unlock(&s->lock);
}

static bool short_string(json_t *v, size_t max)
{
    return json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= max;
}

static bool known_role(const char *r)
{
    for (size_t i = 0; i < sizeof(deployment_roles) / sizeof(deployment_roles[0]); i++) {
        if (strcmp(r, deployment_roles[i]) == 0)
            return true;
    }
    return false;
}

static bool strings_ok(json_t *list, size_t max, bool roles)
{
    size_t i;
    json_t *v;
    if (!json_is_array(list) || json_array_size(list) > MAX_GRANTS)
        return false;
    json_array_foreach(list, i, v)
    {
        if (!short_string(v, max) || (roles && !known_role(json_string_value(v))))
            return false;
    }
    return true;
}

static bool release_ok(const char *r)
{
    size_t n = strlen(r);
    return n > 0 && n <= MAX_RELEASE &&
           strspn(r, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static bool deployments_ok(json_t *d)
{
    const char *release;
    json_t *roles;
    if (!json_is_object(d) || json_object_size(d) > MAX_GRANTS)
        return false;
    json_object_foreach(d, release, roles)
    {
        if (!release_ok(release) || !strings_ok(roles, MAX_PERMISSION, true))
            return false;
    }
    return true;
}

/* NULL when body is a valid grant request, else what is wrong. */
static const char *grant_error(json_t *body)
{
    const char *key;
    json_t *v;
    if (!json_is_object(body) || !short_string(json_object_get(body, "email"), MAX_EMAIL))
        return "expected a JSON object with a non-empty string email";
    json_object_foreach(body, key, v)
    {
        bool ok =
            strcmp(key, "email") == 0 ||
            (strcmp(key, "full_name") == 0 && (json_is_null(v) || short_string(v, MAX_NAME))) ||
            (strcmp(key, "system") == 0 && strings_ok(v, MAX_PERMISSION, false)) ||
            (strcmp(key, "deployments") == 0 && deployments_ok(v)) ||
            (strcmp(key, "delete") == 0 && json_is_boolean(v));
        if (!ok)
            return "members: email, full_name (string or null), system (array of permissions), "
                   "deployments ({release: [DEPLOYMENT_ADMIN|DEPLOYMENT_EDITOR|"
                   "DEPLOYMENT_VIEWER]}), delete (bool)";
    }
    return NULL;
}

/* Applies a valid grant request; the user's record with its uuid afterwards (or {} when
 * deleted), or NULL when the table is full. */
static json_t *apply_grants(struct standin *s, json_t *body)
{
    const char *email = json_string_value(json_object_get(body, "email"));
    static const char *const fields[] = {"full_name", "system", "deployments"};
    char uuid[STANDIN_UUID_LEN + 1];
    json_t *u, *out = NULL;

    standin_user_uuid(email, uuid);
    pthread_mutex_lock(&s->lock);
    if (json_is_true(json_object_get(body, "delete"))) {
        json_object_del(s->users, uuid);
        out = json_object();
        goto out;
    }
    u = json_object_get(s->users, uuid);
    if (u == NULL && json_object_size(s->users) < STANDIN_MAX_USERS) {
        u = new_user(email, NULL);
        json_object_set_new(s->users, uuid, u);
    }
    for (size_t i = 0; u != NULL && i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *v = json_object_get(body, fields[i]);
        if (v != NULL)
            json_object_set_new(u, fields[i], json_deep_copy(v));
    }
    out = u != NULL ? json_deep_copy(u) : NULL;
    json_object_set_new(out, "uuid", json_string(uuid));
out:
    if (out != NULL)
        standin_state_save_users(s);
    pthread_mutex_unlock(&s->lock);
    return out;
}

static void set_grants(struct standin *s, const struct peer_request *req,
                       struct peer_response *resp)
{
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    const char *why = grant_error(body);
    json_t *out = why == NULL ? apply_grants(s, body) : NULL;
    json_decref(body);
    if (why != NULL)
        peer_resp_json(resp, 400, json_pack("{s:s}", "error", why));
    else if (out == NULL)
        peer_resp_json(resp, 507, json_pack("{s:s}", "error", "too many users"));
    else
        peer_resp_json(resp, 200, out);
}

static void list_users(struct standin *s, struct peer_response *resp)
{
    json_t *all = json_array(), *u;
    const char *uuid;
    pthread_mutex_lock(&s->lock);
    json_object_foreach(s->users, uuid, u)
    {
        json_t *copy = json_deep_copy(u);
        json_object_set_new(copy, "uuid", json_string(uuid));
        json_array_append_new(all, copy);
    }
    pthread_mutex_unlock(&s->lock);
    peer_resp_json(resp, 200, all);
}

static void new_session(struct standin *s, const struct peer_request *req,
                        struct peer_response *resp)
{
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    json_t *email = json_object_get(body, "email"), *ttl = json_object_get(body, "expires_in");
    json_int_t secs = ttl != NULL ? json_integer_value(ttl) : STANDIN_SESSION_TTL;
    char uuid[STANDIN_UUID_LEN + 1], *jwt = NULL;
    bool ok = json_is_object(body) && short_string(email, MAX_EMAIL) &&
              json_object_size(body) == (ttl != NULL ? 2u : 1u) &&
              (ttl == NULL || json_is_integer(ttl)) && secs >= -MAX_EXPIRES_IN &&
              secs <= MAX_EXPIRES_IN;

    if (!ok) {
        peer_resp_json(resp, 400,
                       json_pack("{s:s}", "error",
                                 "expected {email, expires_in (integer seconds, optional)}"));
    } else if (standin_session_mint_ttl(s, json_string_value(email), (long)secs, &jwt) != HA_OK) {
        peer_resp_json(resp, 500, json_pack("{s:s}", "error", "could not mint a session"));
    } else {
        standin_user_uuid(json_string_value(email), uuid);
        peer_resp_json(resp, 200,
                       json_pack("{s:s, s:s, s:s}", "token", jwt, "uuid", uuid, "cookie_name",
                                 s->cfg.cookie_name));
    }
    free(jwt);
    json_decref(body);
}

bool standin_users_control(struct standin *s, const struct peer_request *req,
                           struct peer_response *resp)
{
    bool post = strcmp(req->method, "POST") == 0;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    json_t *keys;

    if (strcmp(req->path, "/__test/permissions") == 0 && post) {
        set_grants(s, req, resp);
    } else if (strcmp(req->path, "/__test/permissions") == 0 && get) {
        list_users(s, resp);
    } else if (strcmp(req->path, "/__test/session") == 0 && post) {
        new_session(s, req, resp);
    } else if (strcmp(req->path, "/__test/keys") == 0 && get) {
        keys = standin_public_keys(s);
        if (keys != NULL)
            peer_resp_json(resp, 200, keys);
        else
            peer_resp_text(resp, 500, STANDIN_TEXT, "no key\n");
    } else {
        return false;
    }
    return true;
}
