/* Houston's side of the contract (DESIGN.md, "Houston's contract"), as a test double.
 *
 *   GET  /v1/healthz          200 {}
 *   POST /v1/oauth/callback   form id_token, access_token, token_type, expires_in, state (the
 *                             state JSON names provider auth0, integration, origin, redirect
 *                             and optionally extras and inviteToken). The id_token is checked
 *                             as Houston 0.9 does, signature never (token09.c), and its email
 *                             read. Both paths are routed like Express (express.c): any case,
 *                             trailing or doubled slashes, '\' for '/' with a '#'. Success: a
 *                             session JWT, a 302 to <app-url><redirect>?extras=..&strategy=
 *                             auth0&token=.. and Set-Cookie <name>=<jwt>; Domain=.<base>;
 *                             Path=/; Secure. Anything missing, malformed or refused: 302 to
 *                             <app-url>/login?error=invalid_callback without a cookie.
 *
 *   GET|POST /v1/authorization the ingress's auth-url decision (authz.c).
 *
 * A callback that gets a session also creates its user (Houston's find-or-create by email,
 * users.c), whose grants /v1/authorization reads.
 *
 * With --test-controls every callback is recorded (raw target, fields, parsed state, email,
 * cookie, status, Location; the last STANDIN_MAX_RECORDS) for GET /__test/received, and
 * POST /__test/reset and POST /__test/fault {status, delay_ms, no_cookie, location,
 * signup_error, authz_status, authz_delay_ms} are served, with the users' (users.c) and the
 * authorization pool's (pool.c) controls; without it nothing is kept and those paths are 404. */
#include <stdlib.h>
#include <string.h>
#include "houston_auth/buf.h"
#include "houston_auth/log.h"
#include "houston_auth/proto.h"
#include "houston_auth/url.h"
#include "standin.h"

#define MAX_DELAY_MS 60000

static const char *const fields[] = {"id_token", "access_token", "token_type", "expires_in",
                                     "state"};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* What one callback produced, before it is recorded and answered. */
struct outcome {
    int status;
    char *location;
    char *set_cookie;
    const char *error; /* static: why the callback was refused, or NULL */
};

static bool positive_int(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    return n > 0 && n < 10 && strspn(s, "0123456789") == n && strcmp(s, "0") != 0;
}

static bool opt_string(json_t *state, const char *key)
{
    json_t *v = json_object_get(state, key);
    return v == NULL || json_is_string(v);
}

/* The parsed state when it has Houston's shape, else NULL. */
static json_t *parse_state(const char *text)
{
    json_t *st = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *provider = json_object_get(st, "provider");
    json_t *integration = json_object_get(st, "integration");
    json_t *origin = json_object_get(st, "origin");
    json_t *redirect = json_object_get(st, "redirect");
    json_t *extras = json_object_get(st, "extras");
    bool ok = json_is_object(st) && json_is_string(provider) &&
              strcmp(json_string_value(provider), HA_HOUSTON_PROVIDER) == 0 &&
              json_is_string(integration) && json_string_length(integration) > 0 &&
              json_is_string(origin) && json_is_string(redirect) &&
              json_string_value(redirect)[0] == '/' && (extras == NULL || json_is_object(extras)) &&
              opt_string(st, "inviteToken");
    if (!ok) {
        json_decref(st);
        return NULL;
    }
    return st;
}

/* Checks the form; on success *state, *email and *name (the ID token's name or NULL; caller
 * frees both) are set. */
static const char *check_form(struct standin *s, const struct ha_kvlist *form, json_t **state,
                              char **email, char **name)
{
    json_t *claims = NULL;
    json_t *e;
    const char *why;

    for (size_t i = 0; i < NFIELDS; i++) {
        const char *v = ha_kvlist_get(form, fields[i]);
        if (v == NULL || v[0] == '\0' || ha_kvlist_count(form, fields[i]) != 1)
            return "a required field is missing, empty or repeated";
    }
    if (!positive_int(ha_kvlist_get(form, "expires_in")))
        return "expires_in is not a positive integer";
    why = standin_token09_check(s, ha_kvlist_get(form, "id_token"), &claims);
    if (why != NULL)
        return why;
    e = json_object_get(claims, "email");
    if (!json_is_string(e) || json_string_length(e) == 0) {
        json_decref(claims);
        return "id_token has no email";
    }
    *state = parse_state(ha_kvlist_get(form, "state"));
    if (*state == NULL) {
        json_decref(claims);
        return "state is not Houston's state JSON";
    }
    *email = strdup(json_string_value(e));
    if (json_is_string(json_object_get(claims, "name")))
        *name = strdup(json_string_value(json_object_get(claims, "name")));
    json_decref(claims);
    return *email != NULL ? NULL : "out of memory";
}

static enum ha_err login_error(struct standin *s, const char *code, struct outcome *o)
{
    struct ha_buf b;
    enum ha_err err;
    ha_buf_init(&b, 8192);
    err = ha_buf_appendf(&b, "%s/login?", s->cfg.app_url);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "error", code);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &o->location);
    ha_buf_cleanup(&b);
    o->status = 302;
    return err;
}

static enum ha_err success(struct standin *s, json_t *state, const char *email, json_t *fault,
                           struct outcome *o)
{
    const char *redirect = json_string_value(json_object_get(state, "redirect"));
    json_t *extras = json_object_get(state, "extras");
    char *jwt = NULL,
         *extras_text = extras != NULL ? json_dumps(extras, JSON_COMPACT) : strdup("{}");
    struct ha_buf b;
    enum ha_err err;

    ha_buf_init(&b, 32 * 1024);
    err = extras_text != NULL ? standin_session_mint(s, email, &jwt) : HA_ERR_NOMEM;
    if (err == HA_OK)
        err = ha_buf_appendf(&b, "%s%s%s", s->cfg.app_url, redirect,
                             strchr(redirect, '?') != NULL ? "&" : "?");
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "extras", extras_text);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "strategy", HA_HOUSTON_PROVIDER);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "token", jwt);
    if (err == HA_OK)
        err = ha_buf_steal(&b, &o->location);
    if (err == HA_OK && !json_is_true(json_object_get(fault, "no_cookie"))) {
        ha_buf_init(&b, 32 * 1024);
        err = ha_buf_appendf(&b, "%s=%s; Domain=.%s; Path=/; Secure", s->cfg.cookie_name, jwt,
                             s->cfg.base_domain);
        if (err == HA_OK)
            err = ha_buf_steal(&b, &o->set_cookie);
    }
    o->status = 302;
    ha_buf_cleanup(&b);
    free(jwt);
    free(extras_text);
    return err;
}

/* Decides the answer: an injected status, an invalid callback, an injected signup error, or
 * Houston's success (whose Location and cookie the faults may change; the user is found or
 * created first). */
static enum ha_err decide(struct standin *s, json_t *fault, const char *why, json_t *state,
                          const char *email, const char *name, struct outcome *o)
{
    json_t *status = json_object_get(fault, "status");
    json_t *signup = json_object_get(fault, "signup_error");
    json_t *location = json_object_get(fault, "location");
    enum ha_err err;

    if (json_is_integer(status)) {
        o->status = (int)json_integer_value(status);
        o->error = "injected_status";
        return HA_OK;
    }
    if (why != NULL) {
        o->error = STANDIN_E_INVALID;
        return login_error(s, STANDIN_E_INVALID, o);
    }
    if (json_is_string(signup)) {
        o->error = json_string_value(signup);
        return login_error(s, json_string_value(signup), o);
    }
    standin_users_touch(s, email, name);
    err = success(s, state, email, fault, o);
    if (err == HA_OK && json_is_string(location)) {
        free(o->location);
        o->location = strdup(json_string_value(location));
        err = o->location != NULL ? HA_OK : HA_ERR_NOMEM;
    }
    return err;
}

static json_t *form_json(const struct ha_kvlist *form)
{
    json_t *j = json_object();
    for (size_t i = 0; j != NULL && i < form->count; i++) {
        if (json_object_get(j, form->items[i].key) == NULL)
            json_object_set_new(j, form->items[i].key, json_string(form->items[i].value));
    }
    return j;
}

/* The raw target with bytes outside printable ASCII as %XX, so a record is valid JSON. */
static void printable(const char *raw, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p != '\0' && o + 4 < cap; p++) {
        if (*p > 0x20 && *p < 0x7f) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = "0123456789ABCDEF"[*p >> 4];
            out[o++] = "0123456789ABCDEF"[*p & 15];
        }
    }
    out[o] = '\0';
}

static void record(struct standin *s, const struct peer_request *req, const struct ha_kvlist *form,
                   json_t *state, const char *email, const struct outcome *o, const char *why)
{
    char target[PEER_MAX_URL * 3 + 1];
    json_t *rec;
    printable(req->target, target, sizeof(target));
    rec = json_pack("{s:s, s:s?, s:o, s:O?, s:s?, s:i, s:s?, s:s?, s:s, s:s?, s:s?}", "target",
                    target, "content_type", req->content_type, "form", form_json(form), "state",
                    state, "email", email, "status", o->status, "location", o->location,
                    "set_cookie", o->set_cookie, "cookie_name", s->cfg.cookie_name, "error",
                    o->error, "reason", why);
    if (rec == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    /* Oldest first, bounded: a long test run keeps its most recent callbacks. */
    if (json_array_size(s->received) >= STANDIN_MAX_RECORDS)
        json_array_remove(s->received, 0);
    json_array_append_new(s->received, rec);
    pthread_mutex_unlock(&s->lock);
}

static json_t *fault_copy(struct standin *s)
{
    json_t *j;
    pthread_mutex_lock(&s->lock);
    j = json_deep_copy(s->fault);
    pthread_mutex_unlock(&s->lock);
    return j;
}

static void answer(const struct outcome *o, struct peer_response *resp)
{
    if (o->location == NULL) {
        peer_resp_text(resp, o->status != 0 ? o->status : 500, STANDIN_TEXT,
                       "houston stand-in: injected failure\n");
        return;
    }
    peer_resp_redirect(resp, o->status, o->location);
    resp->set_cookie = o->set_cookie != NULL ? strdup(o->set_cookie) : NULL;
}

static void callback(struct standin *s, const struct peer_request *req, struct peer_response *resp)
{
    struct ha_kvlist form = {0};
    struct outcome o = {0, NULL, NULL, NULL};
    json_t *fault = fault_copy(s), *state = NULL;
    char *email = NULL, *name = NULL;
    const char *why = NULL;

    peer_sleep_ms((long)json_integer_value(json_object_get(fault, "delay_ms")), &s->stopping);
    if (!peer_type_is(req->content_type, STANDIN_FORM_TYPE))
        why = "the body is not application/x-www-form-urlencoded";
    else if (ha_url_parse_query(req->body, req->body_len, &form) != HA_OK)
        why = "the form body is malformed";
    else
        why = check_form(s, &form, &state, &email, &name);
    if (decide(s, fault, why, state, email, name, &o) != HA_OK) {
        o.status = 500;
        o.error = "standin_failure";
    }
    if (s->cfg.test_controls)
        record(s, req, &form, state, email, &o, why);
    answer(&o, resp);
    ha_log(HA_LOG_INFO, "callback", NULL, "result", o.error != NULL ? o.error : "session", "reason",
           why, NULL);
    free(o.location);
    free(o.set_cookie);
    free(email);
    free(name);
    json_decref(state);
    json_decref(fault);
    ha_kvlist_cleanup(&form);
}

static bool fault_value_ok(const char *key, json_t *v)
{
    json_int_t i = json_integer_value(v);
    if (json_is_null(v))
        return true;
    if (strcmp(key, "status") == 0 || strcmp(key, "authz_status") == 0)
        return json_is_integer(v) && i >= 100 && i <= 599;
    if (strcmp(key, "delay_ms") == 0 || strcmp(key, "authz_delay_ms") == 0)
        return json_is_integer(v) && i >= 0 && i <= MAX_DELAY_MS;
    if (strcmp(key, "no_cookie") == 0)
        return json_is_boolean(v);
    if (strcmp(key, "location") == 0 || strcmp(key, "signup_error") == 0)
        return json_is_string(v);
    return false;
}

static void set_fault(struct standin *s, const struct peer_request *req, struct peer_response *resp)
{
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    const char *key;
    json_t *v, *copy;
    bool ok = json_is_object(body);

    json_object_foreach(body, key, v)
    {
        ok = ok && fault_value_ok(key, v);
    }
    if (!ok) {
        json_decref(body);
        peer_resp_json(resp, 400,
                       json_pack("{s:s}", "error",
                                 "expected a JSON object of status, delay_ms, "
                                 "no_cookie, location, signup_error, authz_status, "
                                 "authz_delay_ms"));
        return;
    }
    pthread_mutex_lock(&s->lock);
    json_object_foreach(body, key, v)
    {
        if (json_is_null(v))
            json_object_del(s->fault, key);
        else
            json_object_set(s->fault, key, v);
    }
    copy = json_deep_copy(s->fault);
    pthread_mutex_unlock(&s->lock);
    json_decref(body);
    peer_resp_json(resp, 200, copy);
}

static void controls(struct standin *s, const struct peer_request *req, struct peer_response *resp)
{
    bool post = strcmp(req->method, "POST") == 0;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    json_t *copy;

    resp->no_store = true;
    if (!s->cfg.test_controls) {
        peer_resp_text(resp, 404, STANDIN_TEXT, "not found\n");
    } else if (standin_users_control(s, req, resp) || standin_pool_control(s, req, resp)) {
        return;
    } else if (strcmp(req->path, "/__test/received") == 0 && get) {
        pthread_mutex_lock(&s->lock);
        copy = json_deep_copy(s->received);
        pthread_mutex_unlock(&s->lock);
        peer_resp_json(resp, 200, copy);
    } else if (strcmp(req->path, "/__test/reset") == 0 && post) {
        pthread_mutex_lock(&s->lock);
        json_array_clear(s->received);
        json_object_clear(s->fault);
        pthread_mutex_unlock(&s->lock);
        standin_users_reset(s);
        standin_pool_reset(s);
        peer_resp_json(resp, 200, json_object());
    } else if (strcmp(req->path, "/__test/fault") == 0 && post) {
        set_fault(s, req, resp);
    } else if (strcmp(req->path, "/__test/fault") == 0 && get) {
        peer_resp_json(resp, 200, fault_copy(s));
    } else {
        peer_resp_text(resp, 404, STANDIN_TEXT, "no such test control (or wrong method)\n");
    }
}

/* Where Houston 0.9 mounts its routers (Express: app.use("/v1"), v1.use("/oauth"),
 * oauth.use("/callback"), callback.post("/"); v1.use("/healthz"), healthz.get("/")): every
 * spelling Express routes there is served, as Houston would (express.c). Anything else, a
 * callback by GET included, is Express's 404. */
static const char *const callback_mounts[] = {"/v1", "/oauth", "/callback"};
static const char *const healthz_mounts[] = {"/v1", "/healthz"};
/* v1.use("/authorization"), authorization.get("/") and .post("/"). */
static const char *const authorization_mounts[] = {"/v1", "/authorization"};

void standin_handle_houston(void *ctx, const struct peer_request *req, struct peer_response *resp)
{
    struct standin *s = ctx;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;

    if (strncmp(req->path, "/__test/", 8) == 0) {
        controls(s, req, resp);
    } else if (standin_express_routes(req->target, healthz_mounts, 2)) {
        if (get) {
            peer_resp_json(resp, 200, json_object());
        } else {
            peer_resp_text(resp, 405, STANDIN_TEXT, "method not allowed\n");
            resp->allow = "GET, HEAD";
        }
    } else if (strcmp(req->method, "POST") == 0 &&
               standin_express_routes(req->target, callback_mounts, 3)) {
        callback(s, req, resp);
    } else if ((get || strcmp(req->method, "POST") == 0) &&
               standin_express_routes(req->target, authorization_mounts, 2)) {
        standin_handle_authorization(s, req, resp);
    } else {
        peer_resp_text(resp, 404, STANDIN_TEXT, "not found\n");
    }
}
