/* Attempt directories for Open MPI's shared memory: see shmdir.h. */
#include "worker/shmdir.h"

#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TY_SHMDIR_PREFIX "trainyard-"

struct ty_shmdir {
    char *path;
    int fd; /* holds the flock */
};

static int ty_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    if ((flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT)
        ty_warn("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* Depth first, never following a link or leaving the file system. */
static void ty_rm_tree(const char *dir) {
    if (nftw(dir, ty_rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0 && errno != ENOENT)
        ty_warn("cannot remove %s: %s", dir, strerror(errno));
}

int ty_shmdir_create(ty_shmdir_t **out, const char *root) {
    *out = NULL;
    /* a sweep in another worker may take a new directory for a stale one
     * between mkdtemp and flock: it holds the lock while it removes it,
     * so a directory we cannot lock, or that is gone once locked, is
     * theirs; make another */
    for (int tries = 0; tries < 8; tries++) {
        char *path = ty_xasprintf("%s/" TY_SHMDIR_PREFIX "XXXXXX", root);
        if (!mkdtemp(path)) {
            int e = errno;
            free(path);
            return -e;
        }
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            free(path);
            if (e == ENOENT) /* swept already */
                continue;
            return -e;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e != EWOULDBLOCK) /* no locks here: the directory is ours to remove */
                rmdir(path);
            free(path);
            if (e != EWOULDBLOCK)
                return -e;
            continue; /* a sweep holds it, to remove it */
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || st.st_nlink == 0) { /* swept before we locked it */
            close(fd);
            free(path);
            continue;
        }
        ty_shmdir_t *d = ty_xcalloc(1, sizeof *d);
        d->path = path;
        d->fd = fd;
        *out = d;
        return 0;
    }
    return -EAGAIN;
}

void ty_shmdir_destroy(ty_shmdir_t **dp) {
    ty_shmdir_t *d = *dp;
    if (!d)
        return;
    ty_rm_tree(d->path); /* still locked: no sweep races us */
    close(d->fd);
    free(d->path);
    free(d);
    *dp = NULL;
}

const char *ty_shmdir_path(const ty_shmdir_t *d) { return d->path; }

int ty_shmdir_fd(const ty_shmdir_t *d) { return d->fd; }

int ty_shmdir_sweep(const char *root) {
    DIR *r = opendir(root);
    if (!r)
        return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(r))) {
        if (strncmp(e->d_name, TY_SHMDIR_PREFIX, strlen(TY_SHMDIR_PREFIX)) != 0)
            continue;
        int fd = openat(dirfd(r), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) /* not a directory, or gone */
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) { /* nobody's: its worker and job are gone */
            char *path = ty_xasprintf("%s/%s", root, e->d_name);
            ty_info("removing %s, left by a worker that is gone", path);
            ty_rm_tree(path);
            free(path);
            removed++;
        }
        close(fd);
    }
    closedir(r);
    return removed;
}
