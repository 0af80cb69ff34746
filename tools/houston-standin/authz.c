/* GET /v1/authorization: Houston's decision for the ingress's auth-url (the project design's
 * "Houston's contract"; houston-api's routes/v1/authorization/handler.js and
 * lib/authentication, as of 0.10.3).
 *
 * The session: Houston reads the Authorization header with its first "Bearer " removed, and
 * only when that leaves nothing, its auth cookie (cookie-parser: the first pair of that name,
 * quotes stripped, percent-decoded when it holds a '%'). The token must be a session JWT this
 * Houston signed (RS256, exp not reached, nbf reached) whose uuid names a user in its table
 * (users.c). No session: 401.
 *
 * The decision reads X-Original-URL's host (lower-cased, without userinfo and port) and its
 * first label:
 *   grafana, kibana               the user's system.monitoring.get: 200.
 *   <release>-airflow|-flower     a role on deployment <release> (DEPLOYMENT_ADMIN -> Admin,
 *                                 _EDITOR -> User, _VIEWER -> Viewer; system.airflow.admin|
 *                                 op|user|get -> Admin|Op|User|Viewer on every deployment):
 *                                 200 with Authorization: Bearer <JWT {aud: host, sub: uuid,
 *                                 roles: [role], email, full_name, iat, nbf, exp}> signed
 *                                 RS256 with the session key, for Houston's jwt.authDuration.
 *   deployments                   the same for the release in the path /<release>/airflow or
 *                                 /<release>/flower (later Houstons route deployments by path).
 *   anything else                 401, as is a missing or unusable X-Original-URL.
 * Every 200 also carries username and email headers, which the chart's ingress relays.
 *
 * Each call is counted (with --test-controls, its header and cookie names too), waits for the pool
 * and is held there for the latency (pool.c), then reads the user afresh: a grant removed applies
 * to the next call, as Houston reads its database every time. Faults: authz_delay_ms stalls before
 * the pool, authz_status answers that status instead of a decision. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "houston_auth/cookie.h"
#include "houston_auth/log.h"
#include "houston_auth/url.h"
#include "standin.h"

#define BEARER "Bearer "
#define ORIGINAL_URL_HEADER "X-Original-URL"
#define PERM_MONITORING "system.monitoring.get"
#define PERM_SYSTEM_AIRFLOW "system.airflow."
#define PATH_ROUTED_LABEL "deployments"
#define MAX_HOST 253
#define MAX_RELEASE 128
#define SCHEME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."
#define HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
#define RELEASE_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

enum target_kind { T_NONE, T_MONITORING, T_DEPLOYMENT };

/* Where one call asks to go, read before it waits for the pool. */
struct call {
    char host[MAX_HOST + 1];       /* X-Original-URL's host, lower-cased; "" when unusable */
    char release[MAX_RELEASE + 1]; /* the deployment it names; "" when none */
    enum target_kind kind;
};

/* Houston's airflow roles, best first, and the permission suffix each needs. */
static const struct {
    const char *airflow, *perm;
} ladder[] = {{"Admin", "admin"}, {"Op", "op"}, {"User", "user"}, {"Viewer", "get"}};

/* deployment.airflow.* permissions of each deployment role (Houston 0.10's roles config). */
static const struct {
    const char *role, *perms[3];
} role_perms[] = {{"DEPLOYMENT_ADMIN", {"admin", "user", "get"}},
                  {"DEPLOYMENT_EDITOR", {"user", "get", NULL}},
                  {"DEPLOYMENT_VIEWER", {"get", NULL, NULL}}};

static char *cookie_credential(struct standin *s, const char *header)
{
    struct ha_kvlist pairs = {0};
    const char *v;
    char *out = NULL;
    if (header == NULL || ha_cookie_parse(header, strlen(header), &pairs) != HA_OK)
        return NULL;
    v = ha_kvlist_get(&pairs, s->cfg.cookie_name);
    /* cookie-parser decodes a value holding '%' and keeps it raw when that fails. */
    if (v != NULL && v[0] != '\0' &&
        (strchr(v, '%') == NULL || ha_url_decode(v, strlen(v), &out) != HA_OK))
        out = strdup(v);
    ha_kvlist_cleanup(&pairs);
    return out;
}

/* Houston's `(req.get("Authorization") || "").replace("Bearer ", "") || req.cookies[name]`. */
static char *read_credential(struct standin *s, const struct peer_request *req)
{
    const char *auth = req->authorization, *b;
    size_t n, pre, blen = strlen(BEARER);
    char *out;

    if (auth == NULL || auth[0] == '\0')
        return cookie_credential(s, req->cookie);
    b = strstr(auth, BEARER);
    if (b == NULL)
        return strdup(auth);
    n = strlen(auth);
    if (n == blen)
        return cookie_credential(s, req->cookie);
    pre = (size_t)(b - auth);
    out = malloc(n - blen + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, auth, pre);
    memcpy(out + pre, b + blen, n - pre - blen + 1);
    return out;
}

/* ASCII lower case in place (Node lower-cases a URL's host; Houston an email). */
static void lower(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
    }
}

static void hex_digest(const char *text, char out[65])
{
    unsigned char md[32];
    EVP_Digest(text, strlen(text), md, NULL, EVP_sha256(), NULL);
    for (size_t i = 0; i < sizeof(md); i++) {
        out[2 * i] = "0123456789abcdef"[md[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
    }
    out[64] = '\0';
}

static bool copy_release(const char *from, size_t n, struct call *c)
{
    if (n == 0 || n > MAX_RELEASE || strspn(from, RELEASE_CHARS) < n)
        return false;
    memcpy(c->release, from, n);
    c->release[n] = '\0';
    c->kind = T_DEPLOYMENT;
    return true;
}

static bool ends_with(const char *s, size_t n, const char *suffix, size_t *prefix)
{
    size_t k = strlen(suffix);
    if (n <= k || strncmp(s + n - k, suffix, k) != 0)
        return false;
    *prefix = n - k;
    return true;
}

/* /<release>/airflow or /<release>/flower, then the end, '/', '?' or '#'. */
static void path_release(const char *path, struct call *c)
{
    size_t n, k;
    const char *app;
    if (path[0] != '/')
        return;
    n = strcspn(path + 1, "/?#");
    if (path[1 + n] != '/')
        return;
    app = path + 2 + n;
    k = strcspn(app, "/?#");
    if ((k == 7 && strncmp(app, "airflow", 7) == 0) || (k == 6 && strncmp(app, "flower", 6) == 0))
        (void)copy_release(path + 1, n, c);
}

static void classify(struct call *c, const char *path)
{
    size_t n = strcspn(c->host, "."), prefix = 0;
    if ((n == 7 && strncmp(c->host, "grafana", 7) == 0) ||
        (n == 6 && strncmp(c->host, "kibana", 6) == 0))
        c->kind = T_MONITORING;
    else if (ends_with(c->host, n, "-airflow", &prefix) ||
             ends_with(c->host, n, "-flower", &prefix))
        (void)copy_release(c->host, prefix, c);
    else if (n == strlen(PATH_ROUTED_LABEL) && strncmp(c->host, PATH_ROUTED_LABEL, n) == 0)
        path_release(path, c);
}

/* Node's url.parse(X-Original-URL).hostname, for the absolute URLs the ingress sends:
 * scheme://[userinfo@]host[:port][/path]. Anything else leaves c->host empty. */
static void parse_original_url(const char *url, struct call *c)
{
    const char *auth, *end, *host, *p;
    size_t scheme, len;

    if (url == NULL || strlen(url) > PEER_MAX_URL)
        return;
    scheme = strspn(url, SCHEME_CHARS);
    if (scheme == 0 || strncmp(url + scheme, "://", 3) != 0)
        return;
    auth = url + scheme + 3;
    end = auth + strcspn(auth, "/?#");
    host = auth;
    for (p = auth; p < end; p++) {
        if (*p == '@')
            host = p + 1;
    }
    len = (size_t)(end - host);
    p = memchr(host, ':', len);
    if (p != NULL) {
        if (strspn(p + 1, "0123456789") != (size_t)(end - p - 1))
            return;
        len = (size_t)(p - host);
    }
    if (len == 0 || len > MAX_HOST || strspn(host, HOST_CHARS) < len)
        return;
    memcpy(c->host, host, len);
    c->host[len] = '\0';
    lower(c->host);
    classify(c, end);
}

static bool has_string(json_t *list, const char *want)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

static bool role_grants(const char *role, const char *perm)
{
    for (size_t i = 0; i < sizeof(role_perms) / sizeof(role_perms[0]); i++) {
        if (strcmp(role_perms[i].role, role) != 0)
            continue;
        for (size_t j = 0; j < 3 && role_perms[i].perms[j] != NULL; j++) {
            if (strcmp(role_perms[i].perms[j], perm) == 0)
                return true;
        }
    }
    return false;
}

/* Houston's mapLocalRolesToAirflow: the best airflow role the user holds there, or NULL. */
static const char *airflow_role(json_t *user, const char *release)
{
    json_t *roles = json_object_get(json_object_get(user, "deployments"), release);
    json_t *system = json_object_get(user, "system");
    char perm[64];
    size_t i;
    json_t *r;

    for (size_t k = 0; k < sizeof(ladder) / sizeof(ladder[0]); k++) {
        snprintf(perm, sizeof(perm), "%s%s", PERM_SYSTEM_AIRFLOW, ladder[k].perm);
        if (has_string(system, perm))
            return ladder[k].airflow;
        json_array_foreach(roles, i, r)
        {
            if (json_is_string(r) && role_grants(json_string_value(r), ladder[k].perm))
                return ladder[k].airflow;
        }
    }
    return NULL;
}

static char *lower_dup(const char *s)
{
    char *out = strdup(s);
    if (out != NULL)
        lower(out);
    return out;
}

/* Houston's airflowJWT: {aud: host, sub, roles, email, full_name} for jwt.authDuration. */
static enum ha_err airflow_jwt(struct standin *s, const struct call *c, json_t *user,
                               const char *uuid, const char *role, const char *email, char **out)
{
    json_int_t now = (json_int_t)time(NULL);
    json_t *claims =
        json_pack("{s:s, s:s, s:[s], s:s, s:O?, s:I, s:I, s:I}", "aud", c->host, "sub", uuid,
                  "roles", role, "email", email, "full_name", json_object_get(user, "full_name"),
                  "iat", now, "nbf", now, "exp", now + STANDIN_AIRFLOW_JWT_TTL);
    enum ha_err err = claims != NULL ? standin_jwt_sign(s, claims, out) : HA_ERR_NOMEM;
    json_decref(claims);
    return err;
}

/* A 200: the identity headers, and for a deployment the minted JWT. */
static int grant(struct standin *s, const struct call *c, json_t *user, const char *uuid,
                 const char *role, struct peer_response *resp)
{
    const char *username = json_string_value(json_object_get(user, "email"));
    char *email = username != NULL ? lower_dup(username) : NULL, *jwt = NULL, *bearer = NULL;
    enum ha_err err = email != NULL ? HA_OK : HA_ERR_NOMEM;

    if (err == HA_OK && role != NULL) {
        err = airflow_jwt(s, c, user, uuid, role, email, &jwt);
        bearer = err == HA_OK ? malloc(strlen(BEARER) + strlen(jwt) + 1) : NULL;
        if (bearer != NULL)
            snprintf(bearer, strlen(BEARER) + strlen(jwt) + 1, "%s%s", BEARER, jwt);
        if (err == HA_OK)
            err =
                bearer != NULL ? peer_resp_add_header(resp, "Authorization", bearer) : HA_ERR_NOMEM;
    }
    if (err == HA_OK)
        err = peer_resp_add_header(resp, "username", username);
    if (err == HA_OK)
        err = peer_resp_add_header(resp, "email", email);
    if (err != HA_OK) {
        for (size_t i = 0; i < resp->extra_count; i++) {
            free(resp->extra_name[i]);
            free(resp->extra_value[i]);
        }
        resp->extra_count = 0;
    }
    free(email);
    free(jwt);
    free(bearer);
    return err == HA_OK ? 200 : 500;
}

static int decide(struct standin *s, const char *credential, const struct call *c,
                  struct peer_response *resp)
{
    char uuid[STANDIN_UUID_LEN + 1];
    json_t *user = NULL;
    const char *role;
    int status = 401;

    if (credential != NULL && standin_session_check(s, credential, uuid))
        user = standin_users_get(s, uuid);
    if (user != NULL && c->kind == T_MONITORING &&
        has_string(json_object_get(user, "system"), PERM_MONITORING)) {
        status = grant(s, c, user, uuid, NULL, resp);
    } else if (user != NULL && c->kind == T_DEPLOYMENT) {
        role = airflow_role(user, c->release);
        if (role != NULL)
            status = grant(s, c, user, uuid, role, resp);
    }
    json_decref(user);
    return status;
}

/* The authz faults in force: a stall in ms and an injected status (0: none). */
static void read_faults(struct standin *s, long *delay_ms, int *status)
{
    pthread_mutex_lock(&s->lock);
    *delay_ms = (long)json_integer_value(json_object_get(s->fault, "authz_delay_ms"));
    *status = (int)json_integer_value(json_object_get(s->fault, "authz_status"));
    pthread_mutex_unlock(&s->lock);
}

/* Express's sendStatus bodies; an injected status says so. */
static void answer(int status, bool injected, struct peer_response *resp)
{
    if (injected)
        peer_resp_text(resp, status, STANDIN_TEXT, "houston stand-in: injected failure\n");
    else if (status == 200)
        peer_resp_text(resp, 200, STANDIN_TEXT, "OK");
    else if (status == 401)
        peer_resp_text(resp, 401, STANDIN_TEXT, "Unauthorized");
    else if (status == 503)
        peer_resp_text(resp, 503, STANDIN_TEXT, "Service Unavailable");
    else
        peer_resp_text(resp, 500, STANDIN_TEXT, "Internal Server Error");
}

static const char *result_name(int status)
{
    if (status == 200)
        return "allowed";
    return status == 401 ? "denied" : "failed";
}

void standin_handle_authorization(struct standin *s, const struct peer_request *req,
                                  struct peer_response *resp)
{
    struct call c;
    char *credential = read_credential(s, req), digest[65];
    long delay_ms = 0;
    int status = 0, injected = 0;
    bool held;

    memset(&c, 0, sizeof(c));
    if (credential != NULL)
        hex_digest(credential, digest);
    parse_original_url(peer_req_header(req, ORIGINAL_URL_HEADER), &c);
    standin_pool_count(s, credential != NULL ? digest : NULL, c.host[0] != '\0' ? c.host : NULL,
                       c.release[0] != '\0' ? c.release : NULL);
    standin_pool_note_headers(s, req);
    read_faults(s, &delay_ms, &injected);
    peer_sleep_ms(delay_ms, &s->stopping);
    held = standin_pool_enter(s);
    if (!held)
        status = 503; /* stopping */
    else if (injected != 0)
        status = injected;
    else
        status = decide(s, credential, &c, resp);
    standin_pool_leave(s, held, status);
    answer(status, held && injected != 0, resp);
    ha_log(HA_LOG_DEBUG, "authorization", NULL, "host", c.host, "release", c.release, "result",
           result_name(status), NULL);
    free(credential);
}
