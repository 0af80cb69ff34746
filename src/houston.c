/* Houston's side of the login (DESIGN.md, "Houston's contract"): the state JSON and the form
 * Houston 0.x expects on POST /v1/oauth/callback, the name of the auth cookie it sets, and
 * the check of its answer before anything of it reaches the browser.
 *
 * Houston names its cookie with lodash's snakeCase of the base domain, so that function is
 * reproduced here for ASCII input (match_word). lodash splits any string holding a
 * non-alphanumeric, a camel boundary or a letter-digit boundary (a base domain always has a
 * '.') with its unicodeWords regex, whose alternatives make digits words of their own
 * ("k8s" -> "k_8_s") except in ordinals ("1st", "22nd", "4th" stay whole: rsOrdLower/Upper).
 * The tests hold lodash 4.17.21's own answers. Houston's answer carries its session JWT in
 * the Location and the Set-Cookie: neither, nor the form we send, is ever logged. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "houston_auth/buf.h"
#include "houston_auth/ctype.h"
#include "houston_auth/houston.h"
#include "houston_auth/log.h"
#include "houston_auth/proto.h"
#include "houston_auth/url.h"
#include "houston_auth/util.h"

#define COOKIE_PREFIX "astronomer_"
#define COOKIE_SUFFIX "_auth"
#define MAX_BASE_DOMAIN 253
#define FORM_MAX (64 * 1024)
#define FORM_CONTENT_TYPE "application/x-www-form-urlencoded"
#define LOGIN_PATH "/login"
#define LOGIN_ERROR_PARAM "error"

/* ---- lodash snakeCase ------------------------------------------------------------------ */

/* ctype.h's classes in the shape run() takes. */
static bool is_upper(char c)
{
    return ha_isupper(c);
}

static bool is_lower(char c)
{
    return ha_islower(c);
}

static bool is_digit(char c)
{
    return ha_isdigit(c);
}

/* lodash's rsBreak restricted to ASCII: anything but a letter or a digit. */
static bool is_break(char c)
{
    return !is_upper(c) && !is_lower(c) && !is_digit(c);
}

static size_t run(const char *s, bool (*cls)(char))
{
    size_t n = 0;
    while (s[n] != '\0' && cls(s[n]))
        n++;
    return n;
}

/* [A-Z]?[a-z]+, followed (lookahead) by a break, an upper-case letter or the end when
 * need_end is set. Returns the length matched or 0. */
static size_t word_lower(const char *s, bool need_end)
{
    size_t u = is_upper(s[0]) ? 1 : 0, n = run(s + u, is_lower);
    char next = s[u + n];
    if (n == 0)
        return 0;
    if (need_end && !(next == '\0' || is_break(next) || is_upper(next)))
        return 0;
    return u + n;
}

/* [A-Z]+, backtracking until followed by a break, an upper-case letter that starts a
 * lower-case word, or the end when need_end is set. */
static size_t word_upper(const char *s, bool need_end)
{
    size_t n = run(s, is_upper);
    if (!need_end)
        return n;
    for (; n > 0; n--) {
        char next = s[n];
        if (next == '\0' || is_break(next) || (is_upper(next) && is_lower(s[n + 1])))
            return n;
    }
    return 0;
}

/* lodash's rsOrdLower / rsOrdUpper: \d*(?:1st|2nd|3rd|(?![123])\dth) followed by a word
 * boundary or an upper-case letter or '_' (lower) / a lower-case letter or '_' (upper). So
 * "1st" and "21st" stay one word, while "11th" and "12th" split ("11", "th") exactly as lodash
 * 4.17 does, because the (?![123]) guard looks at the digit before "th". */
static size_t word_ordinal(const char *s, bool upper)
{
    static const char *const lower_sfx[] = {"1st", "2nd", "3rd"};
    static const char *const upper_sfx[] = {"1ST", "2ND", "3RD"};
    const char *th = upper ? "TH" : "th";
    size_t d = run(s, is_digit);
    for (size_t k = d; k-- > 0;) {
        const char *p = s + k;
        bool hit = (p[0] == '0' || p[0] >= '4') && strncmp(p + 1, th, 2) == 0;
        for (size_t i = 0; i < 3 && !hit; i++)
            hit = strncmp(p, upper ? upper_sfx[i] : lower_sfx[i], 3) == 0;
        /* \b after a letter is the end or a non-word byte; '_' is allowed explicitly. p[0..2]
         * matched three non-NUL bytes, so p[3] is inside the string. */
        if (hit) {
            /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): see above */
            char next = p[3];
            if (next == '\0' || is_break(next) || (upper ? is_lower(next) : is_upper(next)))
                return k + 3;
        }
    }
    return 0;
}

/* The length of the word lodash's unicodeWords regex matches at s, or 0. The alternatives
 * are tried in lodash's order; the first one that matches wins. */
static size_t match_word(const char *s)
{
    size_t n = word_lower(s, true);
    if (n == 0)
        n = word_upper(s, true);
    if (n == 0)
        n = word_lower(s, false);
    if (n == 0)
        n = word_upper(s, false);
    if (n == 0)
        n = word_ordinal(s, true);
    if (n == 0)
        n = word_ordinal(s, false);
    if (n == 0)
        n = run(s, is_digit);
    return n;
}

/* Appends lodash snakeCase(s) to b: the words of s lower-cased and joined with '_'. */
static enum ha_err snake_case(const char *s, struct ha_buf *b, size_t *words)
{
    enum ha_err err = HA_OK;
    size_t w;
    for (const char *p = s; *p != '\0' && err == HA_OK; p += w > 0 ? w : 1) {
        w = match_word(p);
        if (w == 0)
            continue;
        if ((*words)++ > 0)
            err = ha_buf_append(b, "_", 1);
        if (err == HA_OK)
            err = ha_buf_append(b, p, w);
    }
    return err;
}

enum ha_err ha_houston_cookie_name(const char *base_domain, char **out)
{
    char clean[MAX_BASE_DOMAIN + 1];
    struct ha_buf b;
    size_t n = 0, words = 0;
    enum ha_err err;

    if (base_domain == NULL || strnlen(base_domain, MAX_BASE_DOMAIN + 1) > MAX_BASE_DOMAIN)
        return HA_ERR_INVALID;
    /* lodash removes apostrophes before splitting; non-ASCII (which it would deburr) and
     * control bytes never belong in a DNS name and are refused. */
    for (const char *p = base_domain; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x7f)
            return HA_ERR_INVALID;
        if (c != '\'')
            clean[n++] = (char)c;
    }
    clean[n] = '\0';
    ha_buf_init(&b, sizeof(COOKIE_PREFIX) + 2 * MAX_BASE_DOMAIN + sizeof(COOKIE_SUFFIX));
    err = ha_buf_append_str(&b, COOKIE_PREFIX);
    if (err == HA_OK)
        err = snake_case(clean, &b, &words);
    if (err == HA_OK && words == 0)
        err = HA_ERR_INVALID;
    if (err == HA_OK)
        err = ha_buf_append_str(&b, COOKIE_SUFFIX);
    for (size_t i = 0; err == HA_OK && i < b.len; i++)
        b.data[i] = ha_tolower(b.data[i]);
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    return err;
}

/* ---- state and form ------------------------------------------------------------------- */

/* Sets o[key] to the string value; HA_ERR_INVALID when value is not UTF-8. */
static enum ha_err set_string(json_t *o, const char *key, const char *value)
{
    json_t *v = json_string(value);
    if (v == NULL)
        return HA_ERR_INVALID;
    return json_object_set_new(o, key, v) == 0 ? HA_OK : HA_ERR_NOMEM;
}

static enum ha_err parse_extras(const char *extras_json, json_t **out)
{
    json_t *v;
    if (strnlen(extras_json, HA_MAX_EXTRAS + 1) > HA_MAX_EXTRAS)
        return HA_ERR_TOO_LARGE;
    v = json_loads(extras_json, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(v)) {
        json_decref(v);
        return HA_ERR_INVALID;
    }
    *out = v;
    return HA_OK;
}

/* Copies json with every '%' written as the JSON escape \u0025. Houston runs
 * decodeURIComponent over the form's state before JSON.parse (routes/v1/oauth/callback,
 * a leftover of the implicit flow's fragment relay): a '%' would be decoded a second time or
 * make it throw. '%' can only occur inside JSON strings, where \u0025 means the same. */
static enum ha_err escape_percent(const char *json, char **out)
{
    struct ha_buf b;
    size_t n;
    enum ha_err err = HA_OK;

    ha_buf_init(&b, 0);
    for (const char *p = json; *p != '\0' && err == HA_OK; p += n) {
        n = strcspn(p, "%");
        err = ha_buf_append(&b, p, n);
        if (err == HA_OK && p[n] == '%') {
            err = ha_buf_append_str(&b, "\\u0025");
            n++;
        }
    }
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    return err;
}

enum ha_err ha_houston_state_json(const char *integration, const char *origin, const char *redirect,
                                  const char *extras_json, const char *invite_token, char **out)
{
    json_t *o = NULL, *extras = NULL;
    char *s;
    enum ha_err err = HA_ERR_INVALID;

    if (origin == NULL || redirect == NULL)
        goto out;
    if (integration == NULL)
        integration = HA_HOUSTON_INTEGRATION_SELF;
    err = extras_json != NULL ? parse_extras(extras_json, &extras) : HA_OK;
    if (err != HA_OK)
        goto out;
    err = HA_ERR_NOMEM;
    o = json_object();
    if (o == NULL)
        goto out;
    /* Key order is Houston's own (DESIGN.md); JSON_PRESERVE_ORDER keeps it on output. */
    err = set_string(o, "provider", HA_HOUSTON_PROVIDER);
    if (err == HA_OK)
        err = set_string(o, "integration", integration);
    if (err == HA_OK)
        err = set_string(o, "origin", origin);
    if (err == HA_OK)
        err = set_string(o, "redirect", redirect);
    if (err == HA_OK && extras != NULL)
        err = json_object_set(o, "extras", extras) == 0 ? HA_OK : HA_ERR_NOMEM;
    if (err == HA_OK && invite_token != NULL)
        err = set_string(o, "inviteToken", invite_token);
    if (err != HA_OK)
        goto out;
    s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    err = s == NULL ? HA_ERR_NOMEM : escape_percent(s, out);
    ha_free_secret(s); /* inviteToken */
out:
    json_decref(extras);
    json_decref(o);
    return err;
}

enum ha_err ha_houston_form(const char *id_token, const char *access_token, const char *token_type,
                            long expires_in, const char *state_json, char **out)
{
    struct ha_buf b;
    char expires[24];
    enum ha_err err;

    if (id_token == NULL || access_token == NULL || token_type == NULL || state_json == NULL)
        return HA_ERR_INVALID;
    snprintf(expires, sizeof(expires), "%ld", expires_in);
    ha_buf_init(&b, FORM_MAX);
    err = ha_buf_append_param(&b, "id_token", id_token);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "access_token", access_token);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "token_type", token_type);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "expires_in", expires);
    if (err == HA_OK)
        err = ha_buf_append_param(&b, "state", state_json);
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    return err;
}

/* ---- the callback --------------------------------------------------------------------- */

void ha_houston_result_cleanup(struct ha_houston_result *r)
{
    if (r == NULL)
        return;
    ha_free_secret(r->location);
    ha_free_secret(r->set_cookie);
    r->location = NULL;
    r->set_cookie = NULL;
}

/* The Set-Cookie line (borrowed) whose name is exactly name and whose value is non-empty.
 * A line with a control byte is never picked: it is relayed to the browser verbatim. */
static const char *find_cookie(const struct ha_http_response *r, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < r->set_cookie_count && i < HA_HTTP_MAX_SET_COOKIES; i++) {
        const char *line = r->set_cookies[i], *v;
        size_t vlen;
        bool ctl = false;
        if (line == NULL || strncmp(line, name, nl) != 0 || line[nl] != '=')
            continue;
        for (const char *p = line; *p != '\0'; p++)
            ctl = ctl || (unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f;
        v = line + nl + 1;
        vlen = strcspn(v, ";");
        while (vlen > 0 && (v[0] == ' ' || v[0] == '\t')) {
            v++;
            vlen--;
        }
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (!ctl && vlen > 0)
            return line;
    }
    return NULL;
}

/* Whether the Set-Cookie line's attributes scope the session as Houston's contract says:
 * Domain=.<base> (or <base>), Path=/, Secure. A cookie scoped otherwise would be dropped or
 * stay invisible to app.<base> in the browser: the person would not be logged in although
 * Houston made a session, so it is refused here, where the reason can be logged. */
static bool cookie_scope_ok(const char *line, const char *base)
{
    bool domain = false, path = false, secure = false;
    const char *p = strchr(line, ';');
    while (p != NULL) {
        const char *a = p + 1, *end, *eq;
        size_t n, bl = strlen(base);
        while (*a == ' ' || *a == '\t')
            a++;
        p = strchr(a, ';');
        end = p != NULL ? p : a + strlen(a);
        while (end > a && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        eq = memchr(a, '=', (size_t)(end - a));
        n = (size_t)((eq != NULL ? eq : end) - a);
        if (n == 6 && strncasecmp(a, "Domain", 6) == 0 && eq != NULL) {
            const char *d = eq + 1 + (eq[1] == '.');
            domain = (size_t)(end - d) == bl && strncasecmp(d, base, bl) == 0;
        } else if (n == 4 && strncasecmp(a, "Path", 4) == 0 && eq != NULL) {
            path = end - eq == 2 && eq[1] == '/';
        } else if (n == 6 && strncasecmp(a, "Secure", 6) == 0 && eq == NULL) {
            secure = true;
        }
    }
    return domain && path && secure;
}

/* Whether loc (already allowlisted) is the app's /login with an error, which is how Houston
 * reports a refused signup: relative, or on app_origin exactly. The path must be "/login"
 * or below "/login/". */
static bool is_login_error(const struct ha_redirect_policy *p, const char *loc)
{
    const size_t ll = strlen(LOGIN_PATH);
    struct ha_kvlist q = {NULL, 0};
    const char *rest = loc, *v;
    char *origin = NULL;
    struct ha_url u;
    size_t plen;
    bool ok;

    if (loc[0] != '/') {
        ok = p->app_origin != NULL && ha_url_parse(loc, &u, NULL) == HA_OK &&
             ha_url_format_origin(&u, &origin) == HA_OK && strcasecmp(origin, p->app_origin) == 0;
        free(origin);
        if (!ok)
            return false;
        rest = u.rest;
    }
    plen = strcspn(rest, "?#");
    if (plen < ll || strncmp(rest, LOGIN_PATH, ll) != 0 || (plen > ll && rest[ll] != '/') ||
        rest[plen] != '?')
        return false;
    rest += plen + 1;
    if (ha_url_parse_query(rest, strcspn(rest, "#"), &q) != HA_OK)
        return false;
    v = ha_kvlist_get(&q, LOGIN_ERROR_PARAM);
    ok = v != NULL && v[0] != '\0';
    ha_kvlist_cleanup(&q);
    return ok;
}

/* Judges Houston's answer; fills out only on HA_OK. The caller logs the failed login once;
 * which check refused the answer, and Houston's status, go to a debug line only. Never logs
 * the Location or the cookie: both hold Houston's session JWT. */
static enum ha_err check_answer(const struct ha_http_response *r,
                                const struct ha_redirect_policy *p, const char *cookie_name,
                                const char *rid, struct ha_houston_result *out)
{
    char status[24];
    const char *cookie = NULL, *why = NULL;
    char *loc = NULL, *set = NULL;

    snprintf(status, sizeof(status), "%ld", r->status);
    if (r->status != 302 && r->status != 303)
        why = "unexpected status";
    else if (r->location == NULL || ha_redirect_check(p, r->location) != HA_OK)
        why = "Location missing or refused by the allowlist";
    else if ((cookie = find_cookie(r, cookie_name)) == NULL && !is_login_error(p, r->location))
        why = "no auth cookie and not a login error redirect";
    else if (cookie != NULL && !cookie_scope_ok(cookie, p->base_domain))
        why = "auth cookie not scoped Domain=.<base>; Path=/; Secure";
    if (why != NULL) {
        ha_log(HA_LOG_DEBUG, "houston_answer_refused", rid, "status", status, "reason", why, NULL);
        return r->status != 302 && r->status != 303 ? HA_ERR_HTTP : HA_ERR_REFUSED;
    }
    loc = strdup(r->location);
    set = ha_strdup(cookie);
    if (loc == NULL || (cookie != NULL && set == NULL)) {
        ha_free_secret(loc);
        ha_free_secret(set);
        return HA_ERR_NOMEM;
    }
    out->location = loc;
    out->set_cookie = set;
    return HA_OK;
}

/* houston_url (one trailing '/' dropped) + the callback path. */
static enum ha_err callback_url(const char *houston_url, char **out)
{
    struct ha_buf b;
    size_t n = strlen(houston_url);
    enum ha_err err;

    if (n > 0 && houston_url[n - 1] == '/')
        n--;
    ha_buf_init(&b, HA_MAX_URL);
    err = ha_buf_append(&b, houston_url, n);
    if (err == HA_OK)
        err = ha_buf_append_str(&b, HA_HOUSTON_CALLBACK_PATH);
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    return err;
}

enum ha_err ha_houston_callback_request(const char *houston_url, const char *form,
                                        const char *request_id, struct ha_http_request *req,
                                        char **url)
{
    enum ha_err err;
    if (houston_url == NULL || form == NULL)
        return HA_ERR_INVALID;
    err = callback_url(houston_url, url);
    if (err != HA_OK)
        return err;
    memset(req, 0, sizeof(*req));
    req->method = "POST";
    req->url = *url;
    req->content_type = FORM_CONTENT_TYPE;
    req->body = form;
    req->body_len = strlen(form);
    req->request_id = request_id;
    return HA_OK;
}

enum ha_err ha_houston_callback_answer(enum ha_err err, const struct ha_http_response *resp,
                                       const struct ha_redirect_policy *policy,
                                       const char *cookie_name, const char *request_id,
                                       struct ha_houston_result *out)
{
    if (err != HA_OK)
        return err == HA_ERR_IO || err == HA_ERR_TIMEOUT || err == HA_ERR_TLS ||
                       err == HA_ERR_NOMEM || err == HA_ERR_TOO_LARGE
                   ? err
                   : HA_ERR_HTTP;
    return check_answer(resp, policy, cookie_name, request_id, out);
}

enum ha_err ha_houston_callback(const struct ha_http *http, const char *houston_url,
                                const char *form, const struct ha_redirect_policy *policy,
                                const char *cookie_name, const char *request_id,
                                struct ha_houston_result *out)
{
    struct ha_http_request req;
    struct ha_http_response resp = {0};
    char *url = NULL;
    enum ha_err err;

    if (http == NULL || policy == NULL || cookie_name == NULL || out == NULL)
        return HA_ERR_INVALID;
    err = ha_houston_callback_request(houston_url, form, request_id, &req, &url);
    if (err != HA_OK)
        return err;
    err = ha_http_do(http, &req, &resp);
    err = ha_houston_callback_answer(err, &resp, policy, cookie_name, request_id, out);
    free(url);
    ha_http_response_cleanup(&resp);
    return err;
}
