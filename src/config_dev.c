/* The --dev values, in a table of their own so the production key table (config.c) holds
 * only what a deployment reads. Keyed by each key's environment variable, its public name;
 * tests/unit/test_config.c checks every value below arrives where it belongs, so a
 * misspelt name cannot pass unnoticed. */
#include <stddef.h>
#include <string.h>
#include "houston_auth/config_dev.h"

static const struct {
    const char *env;
    const char *value;
} dev_values[] = {
    /* The names the dev tenant's certificate carries and dev.sh serves on. */
    {"GLOBAL_BASE_DOMAIN", "astro.localhost"},
    {"AUTH0_CLIENT_ID", "houston-auth-dev"},
    {"AUTH0_BASE_DOMAIN", "localhost:8443"},
    {"AUTH_SIDECAR_LISTEN", "127.0.0.1:8872"},
    {"AUTH_SIDECAR_HOUSTON_URL", "http://127.0.0.1:8871"},
    {"AUTH_SIDECAR_PUBLIC_URL", "https://houston.astro.localhost:8872"},
    {"AUTH_SIDECAR_APP_URL", "https://app.astro.localhost:8873"},
    /* What the dev tenant writes on its first start. */
    {"AUTH_SIDECAR_TENANT_CA_FILE", HA_DEV_DIR_TOKEN "/ca.pem"},
    {"AUTH_SIDECAR_TLS_CERT_FILE", HA_DEV_DIR_TOKEN "/tls.pem"},
    {"AUTH_SIDECAR_TLS_KEY_FILE", HA_DEV_DIR_TOKEN "/tls.key"},
    /* The dev tenant's client secret; any cookie secret of the minimum length. */
    {"AUTH0_CLIENT_SECRET", "dev-client-secret-not-for-production"},
    {"AUTH_SIDECAR_COOKIE_SECRET", "dev-cookie-secret-not-for-production-0123456789"},
};

const char *ha_config_dev_get(const char *env)
{
    for (size_t i = 0; i < sizeof(dev_values) / sizeof(dev_values[0]); i++) {
        if (strcmp(dev_values[i].env, env) == 0)
            return dev_values[i].value;
    }
    return NULL;
}
