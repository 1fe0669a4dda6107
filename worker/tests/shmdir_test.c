/* Attempt directories: made under the root and locked; removed whole
 * without following links; swept only once no process holds them, neither
 * the worker that made one nor the job (mpirun) that inherited its lock. */
#include "worker/shmdir.h"

#include "common/tests/ty_test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static void touch(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
}

/* A child that makes a directory and starts a grandchild holding its lock
 * on descriptor 3, as the worker starts mpirun; it reports both, then
 * ends without removing anything when told to: a worker that crashed. */
/* path: at least 1024 bytes */
static pid_t crashing_worker(const char *root, int *cmd, char *path, pid_t *job) {
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0)
        return -1;
    pid_t c = fork();
    if (c == 0) {
        close(up[0]);
        close(down[1]);
        ty_shmdir_t *d = NULL;
        if (ty_shmdir_create(&d, root) != 0)
            _exit(1);
        pid_t j = fork();
        if (j == 0) {
            int fd = ty_shmdir_fd(d); /* as descriptor 3, kept across exec */
            if (fd == 3)
                fcntl(3, F_SETFD, 0);
            else
                dup2(fd, 3);
            execlp("sleep", "sleep", "600", (char *)NULL);
            _exit(127);
        }
        dprintf(up[1], "%d %s\n", (int)j, ty_shmdir_path(d));
        char b;
        while (read(down[0], &b, 1) > 0) {
        }
        _exit(0); /* no ty_shmdir_destroy: a crash */
    }
    close(up[1]);
    close(down[0]);
    *cmd = down[1];
    FILE *f = fdopen(up[0], "r");
    int j = 0;
    if (!f || fscanf(f, "%d %1023s", &j, path) != 2)
        path[0] = '\0';
    if (f)
        fclose(f);
    *job = j;
    return c;
}

int main(void) {
    /* the job is reparented here when its worker ends, so it can be reaped */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    char root[] = "/tmp/ty-shmdir-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char p[4096], outside[4096];
    ty_shmdir_t *d = NULL;

    /* no such root: an error, nothing made */
    snprintf(p, sizeof p, "%s/none", root);
    CHECK_EQ_INT(ty_shmdir_create(&d, p), -ENOENT);
    CHECK(d == NULL);

    /* made under the root, with the prefix the sweep looks for */
    CHECK_EQ_INT(ty_shmdir_create(&d, root), 0);
    const char *dir = ty_shmdir_path(d);
    snprintf(p, sizeof p, "%s/trainyard-", root);
    CHECK(strncmp(dir, p, strlen(p)) == 0 && strlen(dir) == strlen(p) + 6);
    CHECK(exists(dir));

    /* what Open MPI leaves: segments, a session directory tree; and links
     * out of it, which removal must not follow */
    snprintf(outside, sizeof outside, "%s/outside", root);
    touch(outside);
    snprintf(p, sizeof p, "%s/vader_segment.host.0.1", dir);
    touch(p);
    snprintf(p, sizeof p, "%s/ompi.host.0", dir);
    CHECK(mkdir(p, 0700) == 0);
    snprintf(p, sizeof p, "%s/ompi.host.0/pid.1", dir);
    CHECK(mkdir(p, 0700) == 0);
    snprintf(p, sizeof p, "%s/ompi.host.0/pid.1/contact.txt", dir);
    touch(p);
    snprintf(p, sizeof p, "%s/to-file", dir);
    CHECK(symlink(outside, p) == 0);
    snprintf(p, sizeof p, "%s/to-root", dir);
    CHECK(symlink(root, p) == 0);

    /* held by this worker: a sweep leaves it */
    snprintf(p, sizeof p, "%s/trainyard-notadir", root); /* nor a plain file */
    touch(p);
    CHECK_EQ_INT(ty_shmdir_sweep(root), 0);
    CHECK(exists(dir));
    CHECK(exists(p));

    /* removed whole; what links point to stays */
    char kept[4096];
    snprintf(kept, sizeof kept, "%s", dir);
    ty_shmdir_destroy(&d);
    CHECK(d == NULL);
    CHECK(!exists(kept));
    CHECK(exists(outside));
    CHECK(exists(root));
    ty_shmdir_destroy(&d); /* NULL is fine */

    /* a worker that crashed: kept while it lives, then while its job
     * holds the lock, swept once both are gone */
    int cmd = -1;
    pid_t job = 0;
    char held[1024];
    pid_t w = crashing_worker(root, &cmd, held, &job);
    CHECK(w > 0 && job > 0 && held[0]);
    snprintf(p, sizeof p, "%s/vader_segment.host.0.2", held);
    touch(p);
    CHECK_EQ_INT(ty_shmdir_sweep(root), 0);
    CHECK(exists(held));
    close(cmd); /* the worker ends */
    int st;
    CHECK(waitpid(w, &st, 0) == w && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ_INT(ty_shmdir_sweep(root), 0); /* its job still runs */
    CHECK(exists(held));
    kill(job, SIGKILL);
    CHECK(waitpid(job, &st, 0) == job);
    CHECK_EQ_INT(ty_shmdir_sweep(root), 1);
    CHECK(!exists(held));
    CHECK(exists(outside));

    snprintf(p, sizeof p, "rm -rf '%s'", root);
    CHECK(system(p) == 0);
    TEST_DONE();
}
