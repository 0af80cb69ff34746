/* Fuzz target: the config file (YAML from the administrator, and whatever Helm templated
 * into it). Each input is written to a temporary file and loaded with --config, with fixed
 * secrets in a fake environment. Invariants: an accepted config has every required value and
 * an https issuer; a refusal explains itself in one "config: " line; secrets never appear in
 * an error line or in ha_config_print's output. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "houston_auth/config.h"

#define FUZZ_CLIENT_SECRET "fuzz-client-secret-3141592653"
#define FUZZ_COOKIE_SECRET "fuzz-cookie-secret-2718281828459045235360287"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_path[64];

static void remove_file(void)
{
    if (fuzz_path[0] != '\0')
        unlink(fuzz_path);
}

static int write_input(const uint8_t *data, size_t size)
{
    FILE *f;
    int fd;

    if (fuzz_path[0] == '\0') {
        snprintf(fuzz_path, sizeof(fuzz_path), "/tmp/ha_fuzz_config_XXXXXX");
        fd = mkstemp(fuzz_path);
        if (fd < 0)
            return -1;
        close(fd);
        atexit(remove_file);
    }
    f = fopen(fuzz_path, "wb");
    if (f == NULL)
        return -1;
    if (size > 0 && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return -1;
    }
    return fclose(f);
}

static int contains(const void *hay, size_t len, const char *needle)
{
    const char *h = hay;
    size_t n = strlen(needle), i;

    for (i = 0; n <= len && i <= len - n; i++) {
        if (strncasecmp(h + i, needle, n) == 0)
            return 1;
    }
    return 0;
}

static int has_secret(const void *p, size_t len)
{
    return contains(p, len, FUZZ_CLIENT_SECRET) || contains(p, len, FUZZ_COOKIE_SECRET);
}

/* Only a leak when the file itself did not hold the string in any case (a key name is
 * echoed, and the loader lower-cases host names it echoes). */
static int leaks_secret(const char *s, const uint8_t *data, size_t size)
{
    return has_secret(s, strlen(s)) && !has_secret(data, size);
}

static void check_accepted(const struct ha_config *cfg, const uint8_t *data, size_t size)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f;

    if (cfg->base_domain == NULL || cfg->client_id == NULL || cfg->tenant == NULL ||
        cfg->issuer == NULL || strncmp(cfg->issuer, "https://", 8) != 0 ||
        cfg->listen_host == NULL || cfg->public_url == NULL || cfg->app_origin == NULL ||
        cfg->client_secret == NULL || !cfg->auth0_enabled)
        abort();
    f = open_memstream(&out, &len);
    if (f == NULL)
        return;
    ha_config_print(cfg, f);
    fclose(f);
    if (leaks_secret(out, data, size))
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[] = {"houston-auth", "--config", fuzz_path, NULL};
    char *envp[] = {"AUTH0_CLIENT_SECRET=" FUZZ_CLIENT_SECRET,
                    "AUTH_SIDECAR_COOKIE_SECRET=" FUZZ_COOKIE_SECRET, NULL};
    struct ha_config *cfg = NULL;
    enum ha_config_action action;
    char err[512];
    enum ha_err rc;

    if (write_input(data, size) != 0)
        return 0;
    rc = ha_config_load(3, argv, envp, &cfg, &action, err, sizeof(err));
    if (rc == HA_OK) {
        check_accepted(cfg, data, size);
    } else if (cfg != NULL || strncmp(err, "config: ", 8) != 0 || leaks_secret(err, data, size)) {
        abort();
    }
    ha_config_free(cfg);
    return 0;
}
