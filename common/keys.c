/* CurveZMQ certificates (see keys.h). */
#include "common/keys.h"

#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ty_keys_generate(const char *dir, const char *name, char **why) {
    size_t n = strlen(name);
    int ok = n > 0 && n <= 63;
    for (size_t i = 0; ok && i < n; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
             (name[i] >= '0' && name[i] <= '9') || strchr("_.-", name[i]) != NULL;
    if (!ok || name[0] == '.') {
        *why = ty_xasprintf("bad key name '%.80s' (want 1 to 63 of A-Z a-z 0-9 _ . -, not "
                            "starting with a dot)",
                            name);
        return TY_EINVAL;
    }
    int rc = ty_mkdirs(dir);
    if (rc != 0) {
        *why = ty_xasprintf("cannot create %s: %s", dir, strerror(-rc));
        return TY_EIO;
    }
    char *pub = ty_xasprintf("%s/%s.key", dir, name);
    char *sec = ty_xasprintf("%s/%s.key_secret", dir, name);
    if (access(pub, F_OK) == 0 || access(sec, F_OK) == 0) {
        *why = ty_xasprintf("%s exists already (remove it first: a key is not replaced)", pub);
        free(pub);
        free(sec);
        return TY_EEXIST;
    }
    zcert_t *cert = zcert_new();
    zcert_set_meta(cert, "name", "%s", name);
    /* the secret file is made 0600 before anything is written to it */
    mode_t old = umask(077);
    rc = zcert_save(cert, pub);
    umask(old);
    if (rc == 0 && chmod(pub, 0644) != 0)
        rc = -1;
    struct stat st;
    if (rc == 0 && (stat(sec, &st) != 0 || (st.st_mode & 077) != 0))
        rc = -1;
    if (rc != 0) {
        *why = ty_xasprintf("cannot write %s: %s", sec, strerror(errno ? errno : EIO));
        unlink(pub);
        unlink(sec);
    }
    zcert_destroy(&cert);
    free(pub);
    free(sec);
    return rc == 0 ? 0 : TY_EIO;
}

zcert_t *ty_keys_load_secret(const char *path, char **why) {
    if (access(path, R_OK) != 0) {
        *why = ty_xasprintf("cannot read key %s: %s", path, strerror(errno));
        return NULL;
    }
    zcert_t *cert = zcert_load(path);
    static const char zero[41] = "0000000000000000000000000000000000000000";
    if (!cert || strcmp(zcert_secret_txt(cert), zero) == 0) {
        *why = ty_xasprintf("%s is not a secret key file (want the NAME.key_secret that "
                            "trainyard keygen wrote)",
                            path);
        zcert_destroy(&cert);
        return NULL;
    }
    return cert;
}

int ty_keys_client(zsock_t *sock, const char *key_secret, const char *server_public, char **why) {
    zcert_t *mine = ty_keys_load_secret(key_secret, why);
    if (!mine)
        return TY_EINVAL;
    zcert_t *server = access(server_public, R_OK) == 0 ? zcert_load(server_public) : NULL;
    if (!server) {
        *why = ty_xasprintf("cannot read the master's public key %s", server_public);
        zcert_destroy(&mine);
        return TY_EINVAL;
    }
    zcert_apply(mine, sock);
    zsock_set_curve_serverkey(sock, zcert_public_txt(server));
    zcert_destroy(&mine);
    zcert_destroy(&server);
    return 0;
}
