/* Ending an earlier run's attempts: every process carrying this worker's id
 * and work directory ends (a task's process group, and a child that left
 * the group), TERM first, KILL after the grace for one that ignores TERM;
 * another worker's processes stay, and so do those of a worker with the
 * same id in another directory.  One attempt's stragglers go by its report
 * file. */
#include "worker/orphans.h"

#include "common/tests/ty_test.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Starts `sh -c script` in a session of its own with TRAINYARD_WORKER=id
 * and a TRAINYARD_REPORT under dir, as the worker starts a task, and reads the four pids the script
 * writes to descriptor 3 once its processes run: its own, a child's in its group, a child's that
 * left the group, a child's in its group with an empty environment (found only through the group).
 */
static int task(const char *id, const char *dir, const char *script, pid_t pids[4]) {
    char report[256];
    snprintf(report, sizeof report, "%s/run/task/1/.trainyard-report", dir);
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t c = fork();
    if (c == 0) {
        setsid();
        close(p[0]);
        dup2(p[1], 3);
        setenv("TRAINYARD_WORKER", id, 1);
        setenv("TRAINYARD_REPORT", report, 1);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    int v[4] = {0};
    int got = f ? fscanf(f, "%d %d %d %d", &v[0], &v[1], &v[2], &v[3]) : 0;
    if (f)
        fclose(f);
    for (int i = 0; i < 4; i++)
        pids[i] = v[i];
    if (got != 4 || v[0] != c)
        return -1;
    /* the last child runs env(1) until it execs sleep with no environment:
     * a process starting up, with no event to wait on; bounded */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", v[3]);
    for (int i = 0; i < 5000; i++) {
        FILE *e = fopen(path, "r");
        int empty = e && fgetc(e) == EOF;
        if (e)
            fclose(e);
        if (empty)
            return 0;
        usleep(1000);
    }
    return -1;
}

/* Exited: reaped here (a child, or reparented here) or gone already. */
static int gone(pid_t pid, int *sig) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
        if (sig)
            *sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
        return 1;
    }
    return kill(pid, 0) != 0 && errno == ESRCH;
}

#define SCRIPT                                                                                     \
    "sleep 600 & a=$!; setsid sleep 600 & b=$!; env -i sleep 600 & echo \"$$ $a $b $!\" >&3; wait"

int main(void) {
    prctl(PR_SET_CHILD_SUBREAPER, 1); /* the tasks' children come back here */
    char id[64], other[64], dir[64], elsewhere[64];
    snprintf(id, sizeof id, "orphans-test-%d", (int)getpid());
    snprintf(other, sizeof other, "orphans-test-other-%d", (int)getpid());
    snprintf(dir, sizeof dir, "/tmp/orphans-test-%d/work", (int)getpid());
    snprintf(elsewhere, sizeof elsewhere, "/tmp/orphans-test-%d/work2", (int)getpid());
    pid_t plain[4], stubborn[4], theirs[4], samename[4];
    CHECK(task(id, dir, SCRIPT, plain) == 0);
    CHECK(task(id, dir, "trap '' TERM; " SCRIPT, stubborn) == 0); /* TERM ignored, inherited */
    CHECK(task(other, dir, SCRIPT, theirs) == 0);
    CHECK(task(id, elsewhere, SCRIPT, samename) == 0); /* work2/ is not under work/ */

    /* 3 a task by environment, 1 through its group only: all of them have
     * exited when it returns */
    CHECK_EQ_INT(ty_orphans_end(id, dir, 300), 8);
    int sig = -1;
    CHECK(gone(plain[0], &sig) && sig == SIGTERM);
    CHECK(gone(plain[1], NULL) && gone(plain[2], NULL) && gone(plain[3], NULL));
    sig = -1;
    CHECK(gone(stubborn[0], &sig) && sig == SIGKILL);
    CHECK(gone(stubborn[1], NULL) && gone(stubborn[2], NULL) && gone(stubborn[3], NULL));
    for (int i = 0; i < 4; i++)
        CHECK(!gone(theirs[i], NULL) && !gone(samename[i], NULL));
    CHECK_EQ_INT(ty_orphans_end(id, dir, 300), 0); /* nothing left */

    /* one attempt's stragglers (MPI ranks in groups of their own): by the
     * attempt's report file, exactly, KILLed at once; others stay */
    char report[256];
    snprintf(report, sizeof report, "%s/run/task/1", elsewhere); /* a prefix: not it */
    CHECK_EQ_INT(ty_orphans_kill_attempt(id, report), 0);
    snprintf(report, sizeof report, "%s/run/task/1/.trainyard-report", elsewhere);
    CHECK_EQ_INT(ty_orphans_kill_attempt(id, report), 4);
    for (int i = 0, all = 0; i < 2000 && !all; i++) { /* exits: no event to wait on */
        all = gone(samename[0], NULL) && gone(samename[1], NULL) && gone(samename[2], NULL) &&
              gone(samename[3], NULL);
        if (!all)
            usleep(1000);
    }
    for (int i = 0; i < 4; i++)
        CHECK(gone(samename[i], NULL) && !gone(theirs[i], NULL));

    for (int i = 0; i < 4; i++) { /* whatever is left, failed checks included */
        kill(plain[i], SIGKILL);
        kill(stubborn[i], SIGKILL);
        kill(theirs[i], SIGKILL);
        kill(samename[i], SIGKILL);
    }
    while (waitpid(-1, NULL, 0) > 0) {
    }
    TEST_DONE();
}
