/* Person-facing pages: the error page a browser sees for a moment before the redirect (or
 * for good when it does not follow), and the dev index. Everything is escaped here, so
 * callers pass plain text. */
#include <stdlib.h>
#include <string.h>
#include "houston_auth/buf.h"
#include "houston_auth/page.h"
#include "houston_auth/proto.h"

static const char page_head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    "<title>%s</title><style>"
    "body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;"
    "background:#f4f5f8;color:#1d2330}"
    "main{max-width:32rem;margin:12vh auto;padding:2rem 2.25rem;background:#fff;"
    "border-radius:12px;box-shadow:0 2px 12px rgba(20,30,60,.08)}"
    "h1{font-size:1.35rem;margin:0 0 .75rem}p{margin:.5rem 0 1.25rem;color:#3a4254}"
    "a.btn{display:inline-block;padding:.6rem 1.1rem;border-radius:8px;background:#3b5bdb;"
    "color:#fff;text-decoration:none;font-weight:600}"
    "small{display:block;margin-top:1.5rem;color:#7a8192;font-size:.8rem}"
    "</style></head><body><main>\n";

enum ha_err ha_html_escape(const char *s, char **out)
{
    struct ha_buf b;
    enum ha_err err = HA_OK;
    ha_buf_init(&b, 64 * 1024);
    for (const char *p = s; *p != '\0' && err == HA_OK; p++) {
        switch (*p) {
        case '&':
            err = ha_buf_append_str(&b, "&amp;");
            break;
        case '<':
            err = ha_buf_append_str(&b, "&lt;");
            break;
        case '>':
            err = ha_buf_append_str(&b, "&gt;");
            break;
        case '"':
            err = ha_buf_append_str(&b, "&quot;");
            break;
        case '\'':
            err = ha_buf_append_str(&b, "&#39;");
            break;
        default:
            err = ha_buf_append(&b, p, 1);
            break;
        }
    }
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    return err;
}

enum ha_err ha_page_render(const char *title, const char *message, const char *action_url,
                           const char *action_label, const char *detail, char **out)
{
    char *t = NULL, *m = NULL, *u = NULL, *l = NULL, *d = NULL;
    struct ha_buf b;
    enum ha_err err;

    ha_buf_init(&b, 64 * 1024);
    err = ha_html_escape(title, &t);
    if (err == HA_OK)
        err = ha_html_escape(message, &m);
    if (err == HA_OK && action_url != NULL)
        err = ha_html_escape(action_url, &u);
    if (err == HA_OK && action_url != NULL)
        err = ha_html_escape(action_label != NULL ? action_label : "Continue", &l);
    if (err == HA_OK && detail != NULL)
        err = ha_html_escape(detail, &d);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, page_head, t);
    if (err == HA_OK)
        err = ha_buf_appendf(&b, "<h1>%s</h1>\n<p>%s</p>\n", t, m);
    if (err == HA_OK && u != NULL)
        err = ha_buf_appendf(&b, "<a class=\"btn\" href=\"%s\">%s</a>\n", u, l);
    if (err == HA_OK && d != NULL)
        err = ha_buf_appendf(&b, "<small>%s</small>\n", d);
    if (err == HA_OK)
        err = ha_buf_append_str(&b, "</main></body></html>\n");
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    free(t);
    free(m);
    free(u);
    free(l);
    free(d);
    return err;
}

const char *ha_page_error_message(const char *code)
{
    static const struct {
        const char *code;
        const char *message;
    } messages[] = {
        {HA_E_ACCESS_DENIED, "Sign-in was cancelled or refused by the identity provider. "
                             "You can try again, or ask your administrator for access."},
        {HA_E_TENANT_ERROR, "The identity provider reported an error. Please try again."},
        {HA_E_BAD_REQUEST, "The sign-in link was not valid. Start again from the login page."},
        {HA_E_INVALID_STATE, "This sign-in could not be matched to your browser. Start again "
                             "from the login page in this browser (cookies must be enabled)."},
        {HA_E_STATE_EXPIRED, "This sign-in took too long and expired. Please start again."},
        {HA_E_MISSING_CODE, "The identity provider did not complete the sign-in. Please try "
                            "again."},
        {HA_E_TOKEN_EXCHANGE, "The identity provider could not complete the sign-in. Please "
                              "try again in a moment."},
        {HA_E_INVALID_ID_TOKEN, "The identity provider's answer could not be verified. Please "
                                "try again; if it keeps happening, tell your administrator."},
        {HA_E_INVALID_ACCESS_TOKEN, "The identity provider's answer could not be verified. "
                                    "Please tell your administrator."},
        {HA_E_HOUSTON_UNAVAILABLE, "The platform is not answering right now. Please try again "
                                   "in a moment."},
        {HA_E_HOUSTON_REJECTED, "The platform could not start your session. Please tell your "
                                "administrator."},
        {HA_E_NOT_READY, "Sign-in is starting up and not ready yet. Please try again in a "
                         "moment."},
        {HA_E_BUSY, "Sign-in is very busy right now. Please try again in a moment."},
    };
    for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
        if (strcmp(code, messages[i].code) == 0)
            return messages[i].message;
    }
    return "Sign-in failed. Please try again.";
}
