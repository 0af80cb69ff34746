/* The dev tenant's keys and certificates, kept in --state-dir so restarts reuse them.
 *
 *   ca.pem, ca.key       a self-signed P-256 CA (10 years); trust ca.pem to reach any peer
 *   tls.pem, tls.key     a P-256 leaf signed by the CA: serverAuth, 1 year, SANs localhost,
 *                        127.0.0.1, ::1, the issuer host and every --san. The sidecar and the
 *                        stand-in's app server reuse it, so it is reissued whenever a wanted
 *                        name is missing, it expires within a week, or the CA changed.
 *   signing-1.pem        the RSA-2048 ID-token key; its kid is the RFC 7638 JWK thumbprint
 *                        (SHA-256, base64url), so it is stable across restarts.
 *
 * Private keys are written 0600 through a temporary file and rename(2), so a reader never
 * sees half a file; the directory is created 0700. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include "houston_auth/b64url.h"
#include "houston_auth/buf.h"
#include "houston_auth/log.h"
#include "houston_auth/url.h"
#include "houston_auth/util.h"
#include "peer_http.h"
#include "tenant.h"

#define CA_DAYS 3650
#define LEAF_DAYS 365
#define RENEW_BEFORE_S (7L * 24 * 3600)
#define SKEW_S 3600L
#define MAX_NAME 253

/* mkdir -p with 0700 for the directories it creates. */
static enum ha_err ensure_dir(const char *path)
{
    char *copy = strdup(path);
    enum ha_err err = HA_ERR_NOMEM;
    if (copy == NULL)
        return err;
    err = HA_OK;
    for (char *p = copy + 1; err == HA_OK && *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, 0700) != 0 && errno != EEXIST)
            err = HA_ERR_IO;
        *p = '/';
    }
    if (err == HA_OK && mkdir(copy, 0700) != 0 && errno != EEXIST)
        err = HA_ERR_IO;
    free(copy);
    return err;
}

/* Writes a PEM object (a cert when x is set, else a private key) to path. */
static enum ha_err save_pem(const char *dir, const char *name, X509 *x, EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *path = peer_path_join(dir, name), *data = NULL;
    long len;
    enum ha_err err = HA_ERR_CRYPTO;

    if (bio == NULL || path == NULL)
        goto out;
    if (x != NULL ? PEM_write_bio_X509(bio, x) != 1
                  : PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1)
        goto out;
    len = BIO_get_mem_data(bio, &data);
    err = peer_write_atomic(path, data, (size_t)len, x != NULL ? 0644 : 0600);
    if (err != HA_OK)
        ha_log(HA_LOG_ERROR, "state_write_failed", NULL, "file", path, NULL);
out:
    BIO_free(bio);
    free(path);
    return err;
}

static X509 *load_cert(const char *dir, const char *name)
{
    char *path = peer_path_join(dir, name);
    BIO *bio = path != NULL ? BIO_new_file(path, "r") : NULL;
    X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(path);
    ERR_clear_error();
    return x;
}

static EVP_PKEY *load_key(const char *dir, const char *name)
{
    char *path = peer_path_join(dir, name);
    BIO *bio = path != NULL ? BIO_new_file(path, "r") : NULL;
    EVP_PKEY *k = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(path);
    ERR_clear_error();
    return k;
}

static enum ha_err add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return HA_ERR_CRYPTO;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? HA_OK : HA_ERR_CRYPTO;
}

/* A certificate shell: random positive serial, validity, subject CN, public key. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, long days)
{
    X509 *x = X509_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    X509_NAME *name;
    bool ok = x != NULL && RAND_bytes(serial, sizeof(serial)) == 1;

    if (ok) {
        serial[0] &= 0x7f;
        bn = BN_bin2bn(serial, sizeof(serial), NULL);
    }
    ok = ok && bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    ok = ok && X509_set_version(x, 2) == 1;
    ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), -SKEW_S) != NULL;
    ok = ok && X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) != NULL;
    name = ok ? X509_get_subject_name(x) : NULL;
    ok = ok && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                          (const unsigned char *)"houston-auth dev-tenant", -1, -1,
                                          0) == 1;
    ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
                                          -1, 0) == 1;
    ok = ok && X509_set_pubkey(x, key) == 1;
    BN_free(bn);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static enum ha_err make_ca(EVP_PKEY **key_out, X509 **cert_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = NULL;
    unsigned char rnd[4];
    char cn[64];
    enum ha_err err = HA_ERR_CRYPTO;

    if (key == NULL || RAND_bytes(rnd, sizeof(rnd)) != 1)
        goto out;
    /* A unique name per CA, so a browser that trusted an older one is not confused. */
    snprintf(cn, sizeof(cn), "houston-auth dev CA %02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
             rnd[3]);
    x = new_cert(key, cn, CA_DAYS);
    if (x == NULL || X509_set_issuer_name(x, X509_get_subject_name(x)) != 1)
        goto out;
    err = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    if (err == HA_OK)
        err = add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (err == HA_OK)
        err = add_ext(x, x, NID_subject_key_identifier, "hash");
    if (err == HA_OK && X509_sign(x, key, EVP_sha256()) == 0)
        err = HA_ERR_CRYPTO;
out:
    if (err != HA_OK) {
        EVP_PKEY_free(key);
        X509_free(x);
        return err;
    }
    *key_out = key;
    *cert_out = x;
    return HA_OK;
}

static size_t add_name(const char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(names[i], name) == 0)
            return n;
    }
    names[n] = name;
    return n + 1;
}

/* The names the leaf must carry, each once: the defaults, the issuer host and every --san. */
static size_t wanted_names(const struct tenant *t, const char **names, char *issuer_host,
                           size_t cap)
{
    struct ha_hostport hp;
    size_t n = 0;
    n = add_name(names, n, "localhost");
    n = add_name(names, n, "127.0.0.1");
    n = add_name(names, n, "::1");
    if (t->cfg.issuer_host != NULL &&
        ha_url_parse_hostport(t->cfg.issuer_host, strlen(t->cfg.issuer_host), 0, &hp, NULL) ==
            HA_OK &&
        hp.host_len < cap) {
        memcpy(issuer_host, hp.host, hp.host_len);
        issuer_host[hp.host_len] = '\0';
        n = add_name(names, n, issuer_host);
    }
    for (size_t i = 0; i < t->cfg.nsans; i++)
        n = add_name(names, n, t->cfg.sans[i]);
    return n;
}

static bool is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static enum ha_err san_value(const char **names, size_t n, char **out)
{
    struct ha_buf b;
    enum ha_err err = HA_OK;
    ha_buf_init(&b, 16 * 1024);
    for (size_t i = 0; i < n && err == HA_OK; i++)
        err = ha_buf_appendf(&b, "%s%s:%s", i > 0 ? "," : "", is_ip(names[i]) ? "IP" : "DNS",
                             names[i]);
    if (err == HA_OK)
        err = ha_buf_steal(&b, out);
    ha_buf_cleanup(&b);
    return err;
}

static enum ha_err make_leaf(const char **names, size_t n, EVP_PKEY *ca_key, X509 *ca,
                             EVP_PKEY **key_out, X509 **cert_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = NULL;
    char *san = NULL;
    enum ha_err err = HA_ERR_CRYPTO;

    if (key == NULL)
        goto out;
    x = new_cert(key, names[0], LEAF_DAYS);
    if (x == NULL || X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1)
        goto out;
    err = san_value(names, n, &san);
    if (err == HA_OK)
        err = add_ext(x, ca, NID_subject_alt_name, san);
    if (err == HA_OK)
        err = add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE");
    if (err == HA_OK)
        err = add_ext(x, ca, NID_key_usage, "critical,digitalSignature");
    if (err == HA_OK)
        err = add_ext(x, ca, NID_ext_key_usage, "serverAuth");
    if (err == HA_OK)
        err = add_ext(x, ca, NID_subject_key_identifier, "hash");
    if (err == HA_OK)
        err = add_ext(x, ca, NID_authority_key_identifier, "keyid:always");
    if (err == HA_OK && X509_sign(x, ca_key, EVP_sha256()) == 0)
        err = HA_ERR_CRYPTO;
out:
    free(san);
    if (err != HA_OK) {
        EVP_PKEY_free(key);
        X509_free(x);
        return err;
    }
    *key_out = key;
    *cert_out = x;
    return HA_OK;
}

/* True when leaf can be kept: signed by ca, matching key, far from expiry, every name. */
static bool leaf_usable(X509 *leaf, EVP_PKEY *key, X509 *ca, const char **names, size_t n)
{
    time_t soon = time(NULL) + RENEW_BEFORE_S;
    bool ok;
    ok = X509_verify(leaf, X509_get0_pubkey(ca)) == 1 && X509_check_private_key(leaf, key) == 1;
    ok = ok && X509_cmp_time(X509_get0_notAfter(leaf), &soon) > 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_ip(names[i])
                 ? X509_check_ip_asc(leaf, names[i], 0) == 1
                 : X509_check_host(leaf, names[i], 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1;
    ERR_clear_error();
    return ok;
}

static enum ha_err to_pem(X509 *x, EVP_PKEY *k, char **out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    enum ha_err err = HA_ERR_CRYPTO;
    if (bio == NULL)
        return err;
    if (x != NULL ? PEM_write_bio_X509(bio, x) == 1
                  : PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) == 1) {
        /* Memory BIO data is not NUL-terminated: copy, then terminate. */
        len = BIO_get_mem_data(bio, &data);
        *out = malloc((size_t)len + 1);
        err = *out != NULL ? HA_OK : HA_ERR_NOMEM;
        if (err == HA_OK) {
            memcpy(*out, data, (size_t)len);
            (*out)[len] = '\0';
        }
    }
    BIO_free_all(bio);
    return err;
}

enum ha_err tenant_pem_private(EVP_PKEY *pkey, char **out)
{
    return to_pem(NULL, pkey, out);
}

/* Loads ca.* or makes and saves a new CA; *fresh tells whether the CA is new. */
static enum ha_err ensure_ca(const char *dir, EVP_PKEY **key, X509 **ca, bool *fresh)
{
    enum ha_err err;
    *ca = load_cert(dir, "ca.pem");
    *key = load_key(dir, "ca.key");
    *fresh = false;
    if (*ca != NULL && *key != NULL && X509_check_private_key(*ca, *key) == 1)
        return HA_OK;
    ERR_clear_error();
    X509_free(*ca);
    EVP_PKEY_free(*key);
    *ca = NULL;
    *key = NULL;
    err = make_ca(key, ca);
    if (err == HA_OK)
        err = save_pem(dir, "ca.key", NULL, *key);
    if (err == HA_OK)
        err = save_pem(dir, "ca.pem", *ca, NULL);
    *fresh = true;
    ha_log(HA_LOG_INFO, "ca_created", NULL, "file", "ca.pem", NULL);
    return err;
}

static enum ha_err ensure_leaf(struct tenant *t, EVP_PKEY *ca_key, X509 *ca, bool ca_fresh,
                               char **cert_pem, char **key_pem)
{
    const char *names[TENANT_MAX_LIST + 4];
    char host[MAX_NAME + 8];
    size_t n = wanted_names(t, names, host, sizeof(host));
    X509 *leaf = ca_fresh ? NULL : load_cert(t->cfg.state_dir, "tls.pem");
    EVP_PKEY *key = ca_fresh ? NULL : load_key(t->cfg.state_dir, "tls.key");
    enum ha_err err = HA_OK;

    if (leaf == NULL || key == NULL || !leaf_usable(leaf, key, ca, names, n)) {
        X509_free(leaf);
        EVP_PKEY_free(key);
        leaf = NULL;
        key = NULL;
        err = make_leaf(names, n, ca_key, ca, &key, &leaf);
        if (err == HA_OK)
            err = save_pem(t->cfg.state_dir, "tls.key", NULL, key);
        if (err == HA_OK)
            err = save_pem(t->cfg.state_dir, "tls.pem", leaf, NULL);
        ha_log(HA_LOG_INFO, "tls_cert_issued", NULL, "file", "tls.pem", NULL);
    }
    if (err == HA_OK)
        err = to_pem(leaf, NULL, cert_pem);
    if (err == HA_OK)
        err = to_pem(NULL, key, key_pem);
    X509_free(leaf);
    EVP_PKEY_free(key);
    return err;
}

static enum ha_err bn_b64(EVP_PKEY *pkey, const char *param, char **out)
{
    BIGNUM *bn = NULL;
    unsigned char *bin = NULL;
    int len;
    enum ha_err err = HA_ERR_CRYPTO;
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1)
        goto out;
    len = BN_num_bytes(bn);
    bin = malloc(len > 0 ? (size_t)len : 1);
    if (bin == NULL) {
        err = HA_ERR_NOMEM;
        goto out;
    }
    BN_bn2bin(bn, bin);
    err = ha_b64url_encode(bin, (size_t)len, out);
out:
    BN_free(bn);
    free(bin);
    return err;
}

/* kid = base64url(SHA-256('{"e":..,"kty":"RSA","n":..}')), RFC 7638 §3. */
static enum ha_err thumbprint(struct tenant_key *k)
{
    struct ha_buf b;
    unsigned char md[32];
    enum ha_err err;
    ha_buf_init(&b, 4096);
    err = ha_buf_appendf(&b, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", k->e, k->n);
    if (err == HA_OK && EVP_Digest(b.data, b.len, md, NULL, EVP_sha256(), NULL) != 1)
        err = HA_ERR_CRYPTO;
    if (err == HA_OK)
        ha_b64url_encode_to(md, sizeof(md), k->kid);
    ha_buf_cleanup(&b);
    return err;
}

/* Fills k from an RSA key (taking ownership of pkey, even on failure). */
static enum ha_err key_from_pkey(EVP_PKEY *pkey, struct tenant_key *k)
{
    enum ha_err err = HA_ERR_CRYPTO;
    memset(k, 0, sizeof(*k));
    k->pkey = pkey;
    if (pkey == NULL || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA ||
        EVP_PKEY_get_bits(pkey) < 2048)
        goto out;
    err = bn_b64(pkey, OSSL_PKEY_PARAM_RSA_N, &k->n);
    if (err == HA_OK)
        err = bn_b64(pkey, OSSL_PKEY_PARAM_RSA_E, &k->e);
    if (err == HA_OK)
        err = thumbprint(k);
    if (err == HA_OK)
        err = tenant_pem_private(pkey, &k->pem);
out:
    if (err != HA_OK)
        tenant_key_cleanup(k);
    return err;
}

enum ha_err tenant_key_generate(struct tenant_key *k)
{
    return key_from_pkey(EVP_RSA_gen(2048), k);
}

void tenant_key_cleanup(struct tenant_key *k)
{
    EVP_PKEY_free(k->pkey);
    ha_free_secret(k->pem);
    free(k->n);
    free(k->e);
    memset(k, 0, sizeof(*k));
}

json_t *tenant_key_jwk(const struct tenant_key *k)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "use", "sig", "alg", "RS256",
                     "kid", k->kid, "n", k->n, "e", k->e);
}

/* The SubjectPublicKeyInfo of pkey, PEM text or DER bytes (the HS256 confusion keys). */
enum ha_err tenant_spki(EVP_PKEY *pkey, bool pem, unsigned char **out, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n;
    enum ha_err err = HA_ERR_CRYPTO;
    if (bio == NULL)
        return err;
    if (pem ? PEM_write_bio_PUBKEY(bio, pkey) == 1 : i2d_PUBKEY_bio(bio, pkey) == 1) {
        n = BIO_get_mem_data(bio, &data);
        *out = malloc(n > 0 ? (size_t)n : 1);
        err = *out != NULL ? HA_OK : HA_ERR_NOMEM;
        if (err == HA_OK) {
            memcpy(*out, data, (size_t)n);
            *len = (size_t)n;
        }
    }
    BIO_free(bio);
    return err;
}

static enum ha_err ensure_signing_key(struct tenant *t)
{
    EVP_PKEY *pkey = load_key(t->cfg.state_dir, "signing-1.pem");
    enum ha_err err;
    bool fresh = pkey == NULL;
    if (fresh)
        pkey = EVP_RSA_gen(2048);
    err = key_from_pkey(pkey, &t->keys[0]);
    if (err != HA_OK)
        ha_log(HA_LOG_ERROR, "signing_key_unusable", NULL, "file", "signing-1.pem", "reason",
               "not an RSA private key of at least 2048 bits", NULL);
    if (err == HA_OK && fresh)
        err = save_pem(t->cfg.state_dir, "signing-1.pem", NULL, t->keys[0].pkey);
    if (err == HA_OK)
        t->nkeys = 1;
    return err;
}

enum ha_err tenant_pki_init(struct tenant *t, char **cert_pem, char **key_pem)
{
    EVP_PKEY *ca_key = NULL;
    X509 *ca = NULL;
    bool fresh = false;
    enum ha_err err = ensure_dir(t->cfg.state_dir);

    if (err != HA_OK) {
        ha_log(HA_LOG_ERROR, "state_dir_failed", NULL, "dir", t->cfg.state_dir, NULL);
        return err;
    }
    err = ensure_ca(t->cfg.state_dir, &ca_key, &ca, &fresh);
    if (err == HA_OK)
        err = ensure_leaf(t, ca_key, ca, fresh, cert_pem, key_pem);
    if (err == HA_OK)
        err = ensure_signing_key(t);
    if (err == HA_OK && t->cfg.test_controls) {
        t->other_key = EVP_RSA_gen(2048);
        t->ec_key = EVP_EC_gen("P-256");
        if (t->other_key == NULL || t->ec_key == NULL)
            err = HA_ERR_CRYPTO;
    }
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    return err;
}
