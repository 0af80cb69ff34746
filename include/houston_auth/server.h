/* The HTTP server: libmicrohttpd behind a plain request/response adapter. */
#ifndef HOUSTON_AUTH_SERVER_H
#define HOUSTON_AUTH_SERVER_H

#include "houston_auth/app.h"

struct ha_server;

/* Binds cfg->listen_host:listen_port (TLS when cert and key are configured) and serves.
 * Routes that call the tenant or Houston run on cfg->workers worker threads with the
 * connection suspended, so the I/O threads never wait on a peer. On failure *reason says
 * why (static); the caller logs it. */
enum ha_err ha_server_start(struct ha_app *app, struct ha_server **out, const char **reason);
/* Stops accepting, lets in-flight requests finish for up to drain_ms, then stops. */
void ha_server_stop(struct ha_server *s, long drain_ms);
/* The port actually bound (useful with port 0). */
int ha_server_port(const struct ha_server *s);

#endif
