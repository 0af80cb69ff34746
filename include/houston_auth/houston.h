/* Houston's callback contract (DESIGN.md): the state JSON, the form, the auth cookie name,
 * and the POST to <houstonUrl>/v1/oauth/callback whose 302 is relayed to the browser. */
#ifndef HOUSTON_AUTH_HOUSTON_H
#define HOUSTON_AUTH_HOUSTON_H

#include "houston_auth/err.h"
#include "houston_auth/http_client.h"
#include "houston_auth/redirect_guard.h"

/* "astronomer_" + lodash snakeCase(base_domain) + "_auth":
 * astro.example.com -> astronomer_astro_example_com_auth,
 * k8s.example.com   -> astronomer_k_8_s_example_com_auth. *out caller frees. */
enum ha_err ha_houston_cookie_name(const char *base_domain, char **out);

/* {"provider":"auth0","integration":..,"origin":..,"redirect":..,"extras":{..},
 *  "inviteToken":..}; extras_json (a JSON object text) and invite_token may be NULL and
 * are then omitted. HA_ERR_INVALID when extras_json is not a JSON object. */
enum ha_err ha_houston_state_json(const char *integration, const char *origin, const char *redirect,
                                  const char *extras_json, const char *invite_token, char **out);

/* id_token=..&access_token=..&token_type=..&expires_in=..&state=.. (form-encoded). */
enum ha_err ha_houston_form(const char *id_token, const char *access_token, const char *token_type,
                            long expires_in, const char *state_json, char **out);

struct ha_houston_result {
    char *location;   /* Houston's Location, allowlisted */
    char *set_cookie; /* Houston's auth Set-Cookie line, or NULL for its error redirects */
};
void ha_houston_result_cleanup(struct ha_houston_result *r);

/* The POST of form to houston_url + HA_HOUSTON_CALLBACK_PATH, for an asynchronous call: *req
 * borrows form and request_id, and *url (the caller's to free). HA_ERR_INVALID/HA_ERR_NOMEM. */
enum ha_err ha_houston_callback_request(const char *houston_url, const char *form,
                                        const char *request_id, struct ha_http_request *req,
                                        char **url);
/* Judges Houston's answer (err as the transport gave it), as ha_houston_callback does. */
enum ha_err ha_houston_callback_answer(enum ha_err err, const struct ha_http_response *resp,
                                       const struct ha_redirect_policy *policy,
                                       const char *cookie_name, const char *request_id,
                                       struct ha_houston_result *out);
/* Both, through a synchronous call: POSTs form to houston_url + HA_HOUSTON_CALLBACK_PATH and checks
 * the answer: a 302/303 whose Location passes policy, carrying a Set-Cookie for cookie_name (or,
 * without one, a Location to the app's /login with an error). HA_ERR_IO/HA_ERR_TIMEOUT/HA_ERR_TLS
 * when Houston is unreachable, HA_ERR_TOO_LARGE past the body cap, HA_ERR_HTTP on any other
 * status, HA_ERR_REFUSED when Location or cookie are refused. Logs nothing above debug: the
 * caller's one line for the failed login says why. */
enum ha_err ha_houston_callback(const struct ha_http *http, const char *houston_url,
                                const char *form, const struct ha_redirect_policy *policy,
                                const char *cookie_name, const char *request_id,
                                struct ha_houston_result *out);

#endif
