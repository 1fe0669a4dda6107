/* CurveZMQ certificates (see keys.h). */
#include "common/keys.h"

#include "common/err.h"
#include "common/util.h"

#include <dirent.h>
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

/* DIR's *.key file whose certificate is named name (heap), or NULL. */
static char *ty_keys_find(const char *dir, const char *name) {
    char *path = ty_xasprintf("%s/%s.key", dir, name);
    if (access(path, F_OK) == 0)
        return path;
    free(path);
    DIR *d = opendir(dir);
    struct dirent *e;
    char *found = NULL;
    while (d && !found && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 4 || strcmp(e->d_name + n - 4, ".key") != 0)
            continue;
        path = ty_xasprintf("%s/%s", dir, e->d_name);
        zcert_t *cert = zcert_load(path);
        const char *m = cert ? zcert_meta(cert, "name") : NULL;
        if (m && strcmp(m, name) == 0)
            found = path;
        else
            free(path);
        zcert_destroy(&cert);
    }
    if (d)
        closedir(d);
    return found;
}

int ty_keys_revoke(const char *dir, const char *name, char **moved, char **why) {
    *moved = NULL;
    char *path = ty_keys_find(dir, name);
    if (!path) {
        *why = ty_xasprintf("no key named '%.80s' in %s", name, dir);
        return TY_ENOENT;
    }
    char *to = ty_xasprintf("%s.revoked", path);
    for (int i = 2; access(to, F_OK) == 0 && i < 1000; i++) {
        free(to);
        to = ty_xasprintf("%s.revoked.%d", path, i);
    }
    if (rename(path, to) != 0) {
        *why = ty_xasprintf("cannot rename %s: %s", path, strerror(errno));
        free(path);
        free(to);
        return TY_EIO;
    }
    free(path);
    *moved = to;
    return 0;
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
