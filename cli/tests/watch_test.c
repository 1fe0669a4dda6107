/* What --wait prints: off a terminal, a 1,000-task run that succeeds over
 * 3 s of status answers every 10 ms gets a handful of count lines, not
 * thousands, the last one always; a failed attempt, a failed task and a
 * task that waits for a worker each get a line of their own at once.  On a
 * terminal, one line redrawn within the width (a bar for the running
 * task's progress, a waiting task's reason), lines of their own above it. */
#include "cli/watch.h"

#include "common/dag.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 1000

static Ty__TaskRecord recs[N], *ptrs[N];
static char names[N][16];
static Ty__RunRecord run = TY__RUN_RECORD__INIT;
static Ty__RunStatus st = TY__RUN_STATUS__INIT;

static void make_run(size_t n) {
    run.run_id = "p-1";
    run.pipeline = "p";
    run.state = TY_RUN_RUNNING;
    for (size_t i = 0; i < n; i++) {
        ty__task_record__init(&recs[i]);
        snprintf(names[i], sizeof names[i], "t%u", (unsigned)(i % 100000));
        recs[i].name = names[i];
        recs[i].state = TY_TASK_QUEUED;
        ptrs[i] = &recs[i];
    }
    st.run = &run;
    st.tasks = ptrs;
    st.n_tasks = n;
}

static size_t count(const char *s, const char *what) {
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* The widest line a terminal shows of s (after its last \r). */
static int widest(const char *s) {
    int best = 0;
    const char *p = s;
    while (*p) {
        const char *nl = strchr(p, '\n');
        const char *end = nl ? nl : p + strlen(p);
        const char *from = p;
        for (const char *q = p; q < end; q++)
            if (*q == '\r')
                from = q + 1;
        if (from < end && strncmp(from, "\033[K", 3) == 0)
            from += 3;
        int cols = 0;
        for (const char *q = from; q < end; q++)
            cols += ((unsigned char)*q & 0xC0) != 0x80;
        if (cols > best)
            best = cols;
        p = nl ? nl + 1 : end;
    }
    return best;
}

int main(void) {
    /* off a terminal: counts at most once a second, the last always */
    make_run(N);
    ty_watch_t *w = NULL;
    CHECK_EQ_INT(ty_watch_create(&w, 0, 0, 0), 0);
    char *all = NULL;
    size_t alln = 0;
    FILE *f = open_memstream(&all, &alln);
    size_t done = 0;
    for (int64_t ms = 0; ms <= 3000; ms += 10) {
        for (size_t k = 0; k < 4 && done < N; k++, done++) {
            recs[done].state = TY_TASK_SUCCEEDED;
            if (done + 1 < N)
                recs[done + 1].state = TY_TASK_RUNNING;
        }
        if (done == N)
            run.state = TY_RUN_SUCCEEDED;
        fputs(ty_watch_update(w, &st, ms), f);
        if (done == N)
            break;
    }
    fclose(f);
    CHECK(count(all, "\n") <= 5);
    CHECK(count(all, "\n") >= 3);
    CHECK_CONTAINS(all, "succeeded: 1000/1000 tasks done, 1000 succeeded\n");
    CHECK(strchr(all, '\r') == NULL && strchr(all, '\033') == NULL);
    free(all);
    ty_watch_destroy(&w);
    CHECK(w == NULL);

    /* lines of their own, at once, even within the second */
    make_run(3);
    CHECK_EQ_INT(ty_watch_create(&w, 0, 0, 0), 0);
    CHECK_CONTAINS(ty_watch_update(w, &st, 0), "running: 0/3 tasks done, 3 queued");
    recs[0].state = TY_TASK_RUNNING;
    recs[0].attempt = 2;
    recs[0].failures = 1;
    recs[0].reason = "exit code 3";
    recs[1].reason = TY_WAIT_NONE "it needs 64 CPUs; the largest worker has 2";
    const char *out = ty_watch_update(w, &st, 100);
    CHECK_CONTAINS(out, "task t0: attempt 1 failed: exit code 3; it runs again\n");
    CHECK_CONTAINS(out, "task t1: no worker can run it: it needs 64 CPUs");
    CHECK(strstr(out, "tasks done") == NULL); /* counts changed within the second: later */
    out = ty_watch_update(w, &st, 200);
    CHECK_STR(out, ""); /* each told once */
    out = ty_watch_update(w, &st, 1200);
    CHECK_CONTAINS(out, "0/3 tasks done, 2 queued, 1 running\n");
    recs[0].state = TY_TASK_FAILED;
    recs[0].failures = 2;
    recs[0].worker = "w1";
    recs[0].reason = "";
    recs[0].term_signal = 9;
    recs[1].state = TY_TASK_CANCELLED;
    recs[2].state = TY_TASK_CANCELLED;
    run.state = TY_RUN_FAILED;
    out = ty_watch_update(w, &st, 1300);
    CHECK_CONTAINS(out, "task t0 failed: killed by signal 9 (attempt 2 on w1)\n");
    CHECK_CONTAINS(out, "failed: 3/3 tasks done, 1 failed, 2 cancelled\n"); /* the last: at once */
    CHECK(count(out, "failed (attempt") + count(out, "attempt 1 failed") == 0);
    CHECK(strchr(out, '\033') == NULL);
    ty_watch_destroy(&w);

    /* colours on: a failed task's line red, a retried attempt's yellow */
    make_run(2);
    CHECK_EQ_INT(ty_watch_create(&w, 0, 0, 1), 0);
    ty_watch_update(w, &st, 0);
    recs[0].state = TY_TASK_RUNNING;
    recs[0].attempt = 2;
    recs[0].failures = 1;
    recs[0].reason = "exit code 3";
    CHECK_CONTAINS(ty_watch_update(w, &st, 100),
                   "\033[33mtask t0: attempt 1 failed: exit code 3; it runs again\033[0m\n");
    recs[0].state = TY_TASK_FAILED;
    recs[0].failures = 2;
    recs[0].worker = "";
    out = ty_watch_update(w, &st, 200);
    CHECK_CONTAINS(out, "\033[31mtask t0 failed: exit code 3 (attempt 2)\033[0m\n");
    CHECK_STR(ty_watch_note(w, "note"), "note\n"); /* notes plain */
    ty_watch_destroy(&w);

    /* a terminal 40 columns wide: one line redrawn within it */
    make_run(3);
    CHECK_EQ_INT(ty_watch_create(&w, 1, 40, 0), 0);
    recs[0].state = TY_TASK_RUNNING;
    recs[0].progress = 0.5;
    recs[0].progress_text = "epoch 5 of 10, a long text that goes on";
    out = ty_watch_update(w, &st, 0);
    CHECK(strncmp(out, "\r\033[K", 4) == 0 && strchr(out, '\n') == NULL);
    CHECK(widest(out) <= 39);
    ty_watch_destroy(&w);
    CHECK_EQ_INT(ty_watch_create(&w, 1, 200, 0), 0);
    out = ty_watch_update(w, &st, 0);
    CHECK_CONTAINS(out, "t0 [##########----------] 50% epoch 5 of 10");
    CHECK(widest(out) <= 199);
    /* a failed attempt above the line, the line drawn again */
    recs[0].failures = 1;
    recs[0].attempt = 1;
    recs[0].state = TY_TASK_QUEUED;
    recs[0].reason = TY_WAIT_ROOM "it needs 4 CPUs";
    out = ty_watch_update(w, &st, 500);
    CHECK(strncmp(out, "\r\033[Ktask t0: attempt 1 failed: exit code 0; it runs again\n", 58) == 0);
    CHECK_CONTAINS(out, "| t0: waiting for room: it needs 4 CPUs");
    CHECK(count(out, "t0: waiting for room") == 1); /* the line shows it */
    out = ty_watch_note(w, "no answer from the master");
    CHECK(strncmp(out, "\r\033[Kno answer from the master\n[", 31) == 0);
    /* a line cut within a UTF-8 sequence keeps it whole or drops it */
    ty_watch_destroy(&w);
    CHECK_EQ_INT(ty_watch_create(&w, 1, 60, 0), 0);
    recs[0].reason = TY_WAIT_ROOM "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
    out = ty_watch_update(w, &st, 0);
    CHECK(widest(out) <= 59);
    size_t len = strlen(out);
    CHECK(len > 0 && ((unsigned char)out[len - 1] & 0xC0) != 0xC0);
    ty_watch_destroy(&w);
    TEST_DONE();
}
