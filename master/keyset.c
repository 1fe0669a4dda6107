#include "master/keyset.h"

#include "common/err.h"
#include "common/util.h"

#include <czmq.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

struct ty_keyset {
    char *dir;
    zhashx_t *names; /* Z85 public key -> name (owned strings) */
    struct timespec mtime;
    int seen; /* the directory existed at the last read */
};

static zhashx_t *ty_keyset_read(const char *dir) {
    zhashx_t *h = zhashx_new();
    zhashx_set_destructor(h, (zhashx_destructor_fn *)zstr_free);
    DIR *d = opendir(dir);
    if (!d)
        return h;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 4 || strcmp(e->d_name + n - 4, ".key") != 0 || e->d_name[0] == '.')
            continue;
        char *path = ty_xasprintf("%s/%s", dir, e->d_name);
        zcert_t *cert = zcert_load(path);
        free(path);
        if (!cert)
            continue;
        const char *name = zcert_meta(cert, "name");
        char *nm = name && *name ? ty_xstrdup(name) : ty_xstrndup(e->d_name, n - 4);
        zhashx_update(h, zcert_public_txt(cert), nm);
        zcert_destroy(&cert);
    }
    closedir(d);
    return h;
}

int ty_keyset_create(ty_keyset_t **out, const char *dir) {
    ty_keyset_t *ks = ty_xcalloc(1, sizeof *ks);
    ks->dir = ty_xstrdup(dir);
    ty_keyset_refresh(ks, 1, NULL, NULL);
    *out = ks;
    return 0;
}

void ty_keyset_destroy(ty_keyset_t **p) {
    ty_keyset_t *ks = p ? *p : NULL;
    if (!ks)
        return;
    zhashx_destroy(&ks->names);
    free(ks->dir);
    free(ks);
    *p = NULL;
}

const char *ty_keyset_name(const ty_keyset_t *ks, const char *key) {
    return ks && key && *key ? zhashx_lookup(ks->names, key) : NULL;
}

size_t ty_keyset_size(const ty_keyset_t *ks) { return ks ? zhashx_size(ks->names) : 0; }

int ty_keyset_refresh(ty_keyset_t *ks, int force, ty_keyset_gone_fn gone, void *arg) {
    struct stat st;
    int exists = stat(ks->dir, &st) == 0;
    struct timespec m = exists ? st.st_mtim : (struct timespec){0, 0};
    if (!force && ks->names && exists == ks->seen && m.tv_sec == ks->mtime.tv_sec &&
        m.tv_nsec == ks->mtime.tv_nsec)
        return 0;
    zhashx_t *now = ty_keyset_read(ks->dir);
    for (const char *name = ks->names ? zhashx_first(ks->names) : NULL; name;
         name = zhashx_next(ks->names)) {
        const char *key = zhashx_cursor(ks->names);
        if (!zhashx_lookup(now, key) && gone)
            gone(arg, key, name);
    }
    zhashx_destroy(&ks->names);
    ks->names = now;
    ks->mtime = m;
    ks->seen = exists;
    return 1;
}
