/* The few HTML pages the sidecar shows a person: small, plain HTML and CSS, no script. */
#ifndef HOUSTON_AUTH_PAGE_H
#define HOUSTON_AUTH_PAGE_H

#include "houston_auth/err.h"

/* HTML-escapes s (&, <, >, ", ') into *out (caller frees). */
enum ha_err ha_html_escape(const char *s, char **out);

/* A page with a title, a message paragraph and one link (action_url may be NULL). Every
 * argument is escaped. *out caller frees. */
enum ha_err ha_page_render(const char *title, const char *message, const char *action_url,
                           const char *action_label, const char *detail, char **out);

/* The person-facing sentence for a login error code (static; never NULL). */
const char *ha_page_error_message(const char *code);

#endif
