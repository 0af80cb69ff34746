/* The development peers share one libmicrohttpd adapter, kept in tools/dev-tenant/ (the
 * build compiles each tool's folder on its own, so the stand-in pulls the source in here). */
#include "../dev-tenant/peer_http.c"
