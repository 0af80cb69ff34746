/* The --dev setup: the values that point the sidecar at the bundled dev tenant and Houston
 * stand-in on loopback (dev.sh, tools/), dev secrets included. */
#ifndef HOUSTON_AUTH_CONFIG_DEV_H
#define HOUSTON_AUTH_CONFIG_DEV_H

/* Where the dev tenant keeps its CA and TLS files: $HA_DEV_DIR_ENV, else HA_DEV_DIR_DEFAULT;
 * a dev value writes it as HA_DEV_DIR_TOKEN. */
#define HA_DEV_DIR_ENV "HOUSTON_AUTH_DEV_DIR"
#define HA_DEV_DIR_DEFAULT ".dev"
#define HA_DEV_DIR_TOKEN "<devdir>"

/* The --dev value of the configuration key whose environment variable is env (static,
 * borrowed; may hold HA_DEV_DIR_TOKEN), or NULL when --dev leaves that key to its plain
 * default. A file, the environment and flags still override every dev value. */
const char *ha_config_dev_get(const char *env);

#endif
