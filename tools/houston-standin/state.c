/* --state-dir: what a Houston restart keeps. Houston signs with a key from a Kubernetes Secret
 * (jwt.certPath) and reads its users from Postgres, so stopping and starting it ends no
 * session and loses no grant. With a state directory the stand-in does the same:
 *
 *   session-key.pem   the RSA-2048 signing key (0600), made on the first start
 *   users.json        the user table (users.c), rewritten after every change
 *
 * Files are written through a temporary file and rename(2), so a reader never sees half a
 * file; the directory is created 0700. Counters, faults and the latency model are not kept:
 * a restarted process starts from its flags. Without --state-dir nothing is written. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include "houston_auth/buf.h"
#include "houston_auth/log.h"
#include "standin.h"

#define KEY_FILE "session-key.pem"
#define USERS_FILE "users.json"
#define MIN_RSA_BITS 2048

/* The key in the state directory, NULL when there is none; *bad when one is there but unusable. */
static EVP_PKEY *load_key(const char *path, bool *bad)
{
    BIO *bio = BIO_new_file(path, "r");
    EVP_PKEY *k = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    *bad = bio != NULL && (k == NULL || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA ||
                           EVP_PKEY_get_bits(k) < MIN_RSA_BITS);
    BIO_free(bio);
    ERR_clear_error();
    if (*bad) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

static enum ha_err load_users(struct standin *s, const char *path)
{
    json_error_t jerr;
    json_t *users, *u;
    const char *uuid;
    bool ok;
    if (access(path, F_OK) != 0)
        return HA_OK;
    users = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    ok = json_is_object(users);
    json_object_foreach(users, uuid, u)
    {
        ok = ok && strlen(uuid) == STANDIN_UUID_LEN &&
             json_is_string(json_object_get(u, "email")) &&
             json_is_array(json_object_get(u, "system")) &&
             json_is_object(json_object_get(u, "deployments"));
    }
    if (!ok) {
        json_decref(users);
        return HA_ERR_INVALID;
    }
    json_decref(s->users);
    s->users = users;
    return HA_OK;
}

enum ha_err standin_state_init(struct standin *s)
{
    const char *dir = s->cfg.state_dir;
    char *key = NULL, *users = NULL;
    bool bad = false;
    enum ha_err err = HA_ERR_NOMEM;

    if (dir == NULL)
        return HA_OK;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        ha_log(HA_LOG_ERROR, "state_dir_failed", NULL, "dir", dir, NULL);
        return HA_ERR_IO;
    }
    key = peer_path_join(dir, KEY_FILE);
    users = peer_path_join(dir, USERS_FILE);
    if (key == NULL || users == NULL)
        goto out;
    s->session_key = load_key(key, &bad);
    err = bad ? HA_ERR_CRYPTO : load_users(s, users);
    if (err != HA_OK)
        ha_log(HA_LOG_ERROR, "state_unreadable", NULL, "file", bad ? key : users, NULL);
out:
    free(key);
    free(users);
    return err;
}

enum ha_err standin_state_save_key(struct standin *s)
{
    BIO *bio;
    char *path, *data = NULL;
    long len;
    enum ha_err err = HA_ERR_CRYPTO;

    if (s->cfg.state_dir == NULL)
        return HA_OK;
    bio = BIO_new(BIO_s_mem());
    path = peer_path_join(s->cfg.state_dir, KEY_FILE);
    if (bio != NULL && path != NULL &&
        PEM_write_bio_PrivateKey(bio, s->session_key, NULL, NULL, 0, NULL, NULL) == 1) {
        len = BIO_get_mem_data(bio, &data);
        err = peer_write_atomic(path, data, (size_t)len, 0600);
    }
    if (err != HA_OK)
        ha_log(HA_LOG_ERROR, "state_write_failed", NULL, "file", path, NULL);
    BIO_free(bio);
    free(path);
    return err;
}

void standin_state_save_users(struct standin *s)
{
    char *path, *text;
    if (s->cfg.state_dir == NULL)
        return;
    path = peer_path_join(s->cfg.state_dir, USERS_FILE);
    text = json_dumps(s->users, JSON_COMPACT);
    if (path == NULL || text == NULL || peer_write_atomic(path, text, strlen(text), 0600) != HA_OK)
        ha_log(HA_LOG_WARN, "state_write_failed", NULL, "file", path, NULL);
    free(path);
    free(text);
}
