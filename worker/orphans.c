/* Ending what an earlier run of this worker left running: see orphans.h. */
#include "worker/orphans.h"

#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

typedef struct {
    pid_t pid;
    int leader; /* leads its own process group: a task as the worker started it */
    int pidfd;  /* readable once the process has exited; -1 when gone */
} ty_orphan_t;

/* NUL-separated environ of pid, whole; NULL when unreadable. */
static char *ty_read_environ(pid_t pid, size_t *len) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    ty_buf_t b = {0};
    if (ty_read_file(path, &b) != 0) {
        ty_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

/* Whether env holds an entry that is `entry` (whole, with the NUL) or
 * starts with it (prefix). */
static int ty_environ_has(const char *env, size_t len, const char *entry, int prefix) {
    size_t elen = strlen(entry) + !prefix;
    for (size_t i = 0; i < len; i += strlen(env + i) + 1)
        if (len - i >= elen && memcmp(env + i, entry, elen) == 0)
            return 1;
    return 0;
}

static void ty_add(ty_orphan_t **out, size_t *n, size_t *cap, pid_t pid, int leader) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *out = ty_xrealloc(*out, *cap * sizeof **out);
    }
    (*out)[(*n)++] = (ty_orphan_t){.pid = pid, .leader = leader, .pidfd = pidfd_open(pid, 0)};
}

/* The next pid in /proc other than ours and our parent's; 0 at the end. */
static pid_t ty_next_pid(DIR *d) {
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (!*end && pid > 0 && pid != getpid() && pid != getppid())
            return (pid_t)pid;
    }
    return 0;
}

/* id: "TRAINYARD_WORKER=<id>"; dir: "TRAINYARD_REPORT=<work dir>/" (a
 * prefix, or with exact the whole entry).  Then
 * the other members of the process groups found (a child that cleared its
 * environment), so that they are waited for too, not only signalled. */
static size_t ty_find(const char *id, const char *dir, int exact, ty_orphan_t **out) {
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    size_t n = 0, cap = 0;
    pid_t pid;
    while ((pid = ty_next_pid(d))) {
        size_t len = 0;
        char *env = ty_read_environ(pid, &len);
        int ours = env && ty_environ_has(env, len, id, 0) && ty_environ_has(env, len, dir, !exact);
        free(env);
        /* a task's group leads itself, unless it is ours (a worker started by a task) */
        if (ours)
            ty_add(out, &n, &cap, pid, getpgid(pid) == pid && pid != getpgrp());
    }
    size_t found = n;
    rewinddir(d);
    while (found && (pid = ty_next_pid(d))) {
        pid_t g = getpgid(pid);
        int lead = 0, listed = 0;
        for (size_t i = 0; i < n; i++) {
            lead = lead || (i < found && (*out)[i].leader && (*out)[i].pid == g);
            listed = listed || (*out)[i].pid == pid;
        }
        if (lead && !listed)
            ty_add(out, &n, &cap, pid, 0);
    }
    closedir(d);
    return n;
}

static void ty_signal_all(ty_orphan_t *o, size_t n, int sig) {
    for (size_t i = 0; i < n; i++) {
        if (o[i].pidfd < 0)
            continue;
        if (o[i].leader)
            kill(-o[i].pid, sig);
        pidfd_send_signal(o[i].pidfd, sig, NULL, 0); /* not a reused pid */
    }
}

/* Waits until every process has exited or ms have passed; 1 when all did. */
static int ty_wait_all(ty_orphan_t *o, size_t n, int64_t ms) {
    int64_t deadline = ty_now_ms() + ms;
    for (;;) {
        struct pollfd pf[64];
        size_t np = 0;
        for (size_t i = 0; i < n && np < 64; i++)
            if (o[i].pidfd >= 0)
                pf[np++] = (struct pollfd){.fd = o[i].pidfd, .events = POLLIN};
        if (np == 0)
            return 1;
        int64_t left = deadline - ty_now_ms();
        if (left <= 0)
            return 0;
        if (poll(pf, np, (int)left) < 0 && errno != EINTR)
            return 0;
        for (size_t k = 0; k < np; k++)
            if (pf[k].revents)
                for (size_t i = 0; i < n; i++)
                    if (o[i].pidfd == pf[k].fd) {
                        close(o[i].pidfd);
                        o[i].pidfd = -1;
                    }
    }
}

static void ty_orphans_free(ty_orphan_t *o, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (o[i].pidfd >= 0)
            close(o[i].pidfd);
    free(o);
}

int ty_orphans_end(const char *worker_id, const char *workdir, int64_t grace_ms) {
    char *id = ty_xasprintf("TRAINYARD_WORKER=%s", worker_id);
    char *dir = ty_xasprintf("TRAINYARD_REPORT=%s/", workdir);
    ty_orphan_t *o = NULL;
    size_t n = ty_find(id, dir, 0, &o);
    free(id);
    free(dir);
    if (n == 0)
        return 0;
    ty_warn("ending %zu process%s that an earlier run of worker %s left running", n,
            n == 1 ? "" : "es", worker_id);
    ty_signal_all(o, n, SIGTERM);
    if (!ty_wait_all(o, n, grace_ms)) {
        ty_signal_all(o, n, SIGKILL);
        if (!ty_wait_all(o, n, 2000))
            ty_warn("some processes of an earlier run of worker %s did not exit", worker_id);
    }
    ty_orphans_free(o, n);
    return (int)n;
}

int ty_orphans_kill_attempt(const char *worker_id, const char *report) {
    char *id = ty_xasprintf("TRAINYARD_WORKER=%s", worker_id);
    char *rep = ty_xasprintf("TRAINYARD_REPORT=%s", report);
    ty_orphan_t *o = NULL;
    size_t n = ty_find(id, rep, 1, &o);
    free(id);
    free(rep);
    ty_signal_all(o, n, SIGKILL);
    ty_orphans_free(o, n);
    return (int)n;
}
