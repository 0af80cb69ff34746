/* Houston 0.9's ID-token "validation" at POST /v1/oauth/callback (houston-api 0.9,
 * src/lib/oauth/providers/auth0: jsonwebtoken.decode, then jwks-rsa): the token is decoded,
 * never verified.
 *
 * - The header's alg must read RS256.
 * - Its kid must name a signing key of the tenant's JWKS, https://<auth0 baseDomain>/.well-
 *   known/jwks.json (jwks-rsa 1.x's filter: kty "RSA", a kid, use "sig" when present, n and e
 *   or x5c). Without a kid, a JWKS of exactly one key will do. Keys are cached; an unknown kid
 *   fetches again.
 * - exp, when it is a number, must not be in the past; iss must be exactly
 *   https://<baseDomain>/ and aud exactly the client id (a list never equals it).
 *
 * The signature is never looked at: a token made with any key but carrying the tenant's kid
 * passes, and Houston then signs in whoever its email names. That is what the sidecar, and
 * the ingress in front of it, keep out of reach; the edge test needs a Houston this weak to
 * prove it. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "houston_auth/buf.h"
#include "houston_auth/log.h"
#include "standin.h"

#define JWKS_PATH "/.well-known/jwks.json"
#define CONNECT_MS 2000
#define TOTAL_MS 5000

enum ha_err standin_token09_init(struct standin *s)
{
    struct ha_http_client_opts o = {s->cfg.tenant_ca_file, CONNECT_MS, TOTAL_MS, 0, NULL, 0};
    if (s->cfg.auth0_base_domain == NULL)
        return HA_OK;
    return ha_http_client_new(&o, &s->client);
}

void standin_token09_cleanup(struct standin *s)
{
    ha_http_client_free(s->client);
    json_decref(s->jwks_keys);
    pthread_mutex_destroy(&s->jwks_lock);
}

static bool signing_key(json_t *k)
{
    const char *use = json_string_value(json_object_get(k, "use"));
    const char *kty = json_string_value(json_object_get(k, "kty"));
    json_t *x5c = json_object_get(k, "x5c");
    if (json_object_get(k, "use") != NULL && (use == NULL || strcmp(use, "sig") != 0))
        return false;
    return kty != NULL && strcmp(kty, "RSA") == 0 &&
           json_string_length(json_object_get(k, "kid")) > 0 &&
           (json_array_size(x5c) > 0 ||
            (json_is_string(json_object_get(k, "n")) && json_is_string(json_object_get(k, "e"))));
}

/* Fetches the tenant's JWKS into s->jwks_keys (under jwks_lock). */
static const char *fetch_keys(struct standin *s)
{
    struct ha_http_request req = {0};
    struct ha_http_response resp = {0};
    struct ha_buf url;
    char *u = NULL;
    json_t *doc = NULL, *keys, *k;
    size_t i;
    const char *why = "the JWKS could not be fetched";

    ha_buf_init(&url, 2048);
    if (ha_buf_appendf(&url, "https://%s%s", s->cfg.auth0_base_domain, JWKS_PATH) != HA_OK ||
        ha_buf_steal(&url, &u) != HA_OK)
        goto out;
    req.method = "GET";
    req.url = u;
    req.accept = "application/json";
    if (ha_http_client_perform(s->client, &req, &resp) != HA_OK || resp.status != 200)
        goto out;
    doc = json_loadb(resp.body, resp.body_len, 0, NULL);
    keys = json_array();
    json_array_foreach(json_object_get(doc, "keys"), i, k)
    {
        if (signing_key(k))
            json_array_append(keys, k);
    }
    json_decref(s->jwks_keys);
    s->jwks_keys = keys;
    why = NULL;
out:
    if (why != NULL)
        ha_log(HA_LOG_WARN, "jwks_fetch_failed", NULL, "url", u, NULL);
    json_decref(doc);
    ha_http_response_cleanup(&resp);
    ha_buf_cleanup(&url);
    free(u);
    return why;
}

static bool has_kid(json_t *keys, const char *kid)
{
    size_t i;
    json_t *k;
    if (kid == NULL)
        return json_array_size(keys) == 1;
    json_array_foreach(keys, i, k)
    {
        if (strcmp(json_string_value(json_object_get(k, "kid")), kid) == 0)
            return true;
    }
    return false;
}

/* jwks-rsa's getSigningKey(kid) with its cache: NULL when found. */
static const char *find_key(struct standin *s, const char *kid)
{
    const char *why = NULL;
    pthread_mutex_lock(&s->jwks_lock);
    if (s->jwks_keys == NULL || (kid != NULL && !has_kid(s->jwks_keys, kid)))
        why = fetch_keys(s);
    if (why == NULL && !has_kid(s->jwks_keys, kid))
        why = kid != NULL ? "no signing key with the ID token's kid in the JWKS"
                          : "no kid, and the JWKS holds other than one key";
    pthread_mutex_unlock(&s->jwks_lock);
    return why;
}

static const char *check_claims(struct standin *s, json_t *claims)
{
    json_t *exp = json_object_get(claims, "exp");
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const char *aud = json_string_value(json_object_get(claims, "aud"));
    size_t n = strlen(s->cfg.auth0_base_domain);

    if (json_is_number(exp) && json_number_value(exp) < (double)time(NULL))
        return "the ID token has expired";
    if (iss == NULL || strncmp(iss, "https://", 8) != 0 ||
        strncmp(iss + 8, s->cfg.auth0_base_domain, n) != 0 || strcmp(iss + 8 + n, "/") != 0)
        return "the ID token's iss is not https://<auth0 baseDomain>/";
    if (aud == NULL || strcmp(aud, s->cfg.client_id) != 0)
        return "the ID token's aud is not the client id";
    return NULL;
}

const char *standin_token09_check(struct standin *s, const char *id_token, json_t **claims)
{
    bool own;
    json_t *header = standin_jwt_header(id_token);
    json_t *payload = standin_jwt_payload(s, id_token, &own);
    const char *alg = json_string_value(json_object_get(header, "alg"));
    json_t *kid = json_object_get(header, "kid");
    const char *why = NULL;

    if (header == NULL || payload == NULL)
        why = "the ID token is not a JWS with JSON header and payload";
    else if (s->cfg.auth0_base_domain == NULL)
        why = NULL; /* unchecked: the payload is all that is read */
    else if (alg == NULL || strcmp(alg, "RS256") != 0)
        why = "the ID token's alg is not RS256";
    else if (kid != NULL && !json_is_null(kid) && !json_is_string(kid))
        why = "no signing key with the ID token's kid in the JWKS"; /* JS: never === a kid */
    else
        why = find_key(s, json_string_value(kid));
    if (why == NULL && s->cfg.auth0_base_domain != NULL)
        why = check_claims(s, payload);
    json_decref(header);
    if (why != NULL) {
        json_decref(payload);
        return why;
    }
    *claims = payload;
    return NULL;
}
