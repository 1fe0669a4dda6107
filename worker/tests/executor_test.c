/* The executor with real child processes: output as log chunks, report lines,
 * exit codes, spawn failure, timeout and cancel killing the whole process
 * group, stale epochs and duplicate dispatches, and an MPI step's own
 * shared-memory directory. */
#include "worker/worker.h"

#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

static ty_wk_t W;
static zsock_t *peer; /* stands in for the master */

typedef struct {
    ty_buf_t log;
    int results, reports, metrics;
    Ty__TaskResult *last;
    double progress;
} seen_t;

static void drain(seen_t *s) {
    zmsg_t *m;
    while ((zsock_events(peer) & ZMQ_POLLIN) && (m = zmsg_recv(peer))) {
        zframe_t *id = zmsg_pop(m), *f = zmsg_pop(m);
        Ty__Envelope *env = NULL;
        if (ty_wire_decode(zframe_data(f), zframe_size(f), 1u << 24, &env) == 0) {
            if (env->body_case == TY__ENVELOPE__BODY_LOG) {
                ty_buf_append(&s->log, env->log->data.data, env->log->data.len);
            } else if (env->body_case == TY__ENVELOPE__BODY_RESULT) {
                s->results++;
                if (s->last)
                    ty__task_result__free_unpacked(s->last, NULL);
                s->last = env->result;
                env->result = NULL;
                env->body_case = TY__ENVELOPE__BODY__NOT_SET;
            } else if (env->body_case == TY__ENVELOPE__BODY_REPORT) {
                s->reports++;
                for (size_t i = 0; i < env->report->n_items; i++) {
                    if (env->report->items[i]->kind == 1)
                        s->metrics++;
                    if (env->report->items[i]->kind == 2)
                        s->progress = env->report->items[i]->value;
                }
            }
            ty_wire_free(&env);
        }
        zframe_destroy(&id);
        zframe_destroy(&f);
        zmsg_destroy(&m);
    }
}

static void seen_free(seen_t *s) {
    ty_buf_free(&s->log);
    if (s->last)
        ty__task_result__free_unpacked(s->last, NULL);
}

static void on_timeout(uv_timer_t *t) { uv_stop(t->loop); }

/* Run the loop until no attempt is running (bounded), then collect until
 * the attempt's result has arrived. */
static void run_until_idle(seen_t *s) {
    uv_timer_t guard;
    uv_timer_init(W.loop, &guard);
    uv_timer_start(&guard, on_timeout, 20000, 0);
    while (ty_exec_running(&W) > 0 && uv_is_active((uv_handle_t *)&guard))
        uv_run(W.loop, UV_RUN_ONCE);
    CHECK_EQ_INT(ty_exec_running(&W), 0);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(W.loop, UV_RUN_NOWAIT);
    int want = s->results + 1;
    zpoller_t *p = zpoller_new(peer, NULL);
    while (s->results < want && zpoller_wait(p, 5000) == peer)
        drain(s);
    zpoller_destroy(&p);
}

static void dispatch(const char *run, unsigned attempt, uint64_t epoch, const char *shell,
                     double timeout_s) {
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = (char *)run;
    ref.task = "t";
    ref.attempt = attempt;
    ref.epoch = epoch;
    Ty__KV kv = TY__KV__INIT, *kvp = &kv;
    kv.key = "GREETING";
    kv.value = "hi";
    Ty__Dispatch d = TY__DISPATCH__INIT;
    d.ref = &ref;
    d.shell = (char *)shell;
    d.env = &kvp;
    d.n_env = 1;
    d.timeout_s = timeout_s;
    ty_exec_dispatch(&W, &d);
}

static int alive_marker(const char *marker) {
    char cmd[256];
    /* "[s]leep" keeps pgrep from matching the shell that runs it */
    snprintf(cmd, sizeof cmd, "pgrep -f '[%c]%s' >/dev/null", marker[0], marker + 1);
    return system(cmd) == 0;
}

static void clear_unacked(void) { ty_wk_clear_unacked(&W); }

int main(void) {
    zsys_init();
    zsys_set_linger(0);
    char dir[] = "/tmp/ty-exec-testXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    memset(&W, 0, sizeof W);
    W.id = "wt";
    W.workdir = dir;
    W.kill_grace_ms = 300;
    W.epoch = 5;
    W.loop = uv_default_loop();
    peer = zsock_new_router("inproc://exec-test");
    W.sock = zsock_new_dealer("inproc://exec-test");

    /* output, env contract, report lines, exit code */
    seen_t s = {0};
    dispatch("r1", 1, 5,
             "echo $GREETING run=$TRAINYARD_RUN_ID task=$TRAINYARD_TASK "
             "attempt=$TRAINYARD_ATTEMPT; echo err >&2; pwd; "
             "echo 'metric loss 0.5 1' >> $TRAINYARD_REPORT; echo 'junk' >> $TRAINYARD_REPORT; "
             "printf 'progress 0.5 half' >> $TRAINYARD_REPORT; exit 4",
             0);
    CHECK_EQ_INT(ty_exec_running(&W), 1);
    run_until_idle(&s);
    CHECK_CONTAINS(s.log.data, "hi run=r1 task=t attempt=1");
    CHECK_CONTAINS(s.log.data, "err");
    char want[128];
    snprintf(want, sizeof want, "%s/r1/t/1", dir);
    CHECK_CONTAINS(s.log.data, want);
    CHECK_EQ_INT(s.results, 1);
    CHECK(s.last && s.last->exit_code == 4 && s.last->term_signal == 0);
    CHECK(s.last && s.last->bad_report_lines == 1);
    CHECK_EQ_INT(s.metrics, 1);
    CHECK(s.progress == 0.5); /* the last line had no newline: read at exit */
    CHECK(W.unacked != NULL); /* kept until acknowledged */
    seen_free(&s);

    /* a duplicate of a finished attempt and a stale epoch do not run */
    memset(&s, 0, sizeof s);
    dispatch("r1", 1, 5, "echo again", 0);
    dispatch("r2", 1, 4, "echo stale", 0);
    CHECK_EQ_INT(ty_exec_running(&W), 0);
    clear_unacked();

    /* spawn failure */
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = "r3";
    ref.task = "t";
    ref.attempt = 1;
    ref.epoch = 6;
    char *argv[] = {"/nonexistent/binary"};
    Ty__Dispatch d = TY__DISPATCH__INIT;
    d.ref = &ref;
    d.argv = argv;
    d.n_argv = 1;
    ty_exec_dispatch(&W, &d);
    CHECK_EQ_INT(W.epoch, 6); /* a newer epoch is adopted */
    run_until_idle(&s);
    CHECK_EQ_INT(s.results, 1);
    CHECK(s.last && s.last->exit_code == 127);
    CHECK_CONTAINS(s.last ? s.last->error : NULL, "cannot start /nonexistent/binary");
    seen_free(&s);
    clear_unacked();

    /* timeout: TERM reaches every process of the group */
    memset(&s, 0, sizeof s);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "sleep 77.%d & sleep 77.%d; echo unreachable", getpid(), getpid());
    char marker[64];
    snprintf(marker, sizeof marker, "sleep 77.%d", getpid());
    dispatch("r4", 1, 6, cmd, 0.3);
    run_until_idle(&s);
    CHECK(s.last && s.last->timed_out && s.last->term_signal == SIGTERM);
    CHECK(!alive_marker(marker));
    seen_free(&s);
    clear_unacked();

    /* cancel; a child that ignores TERM gets KILL after the grace */
    memset(&s, 0, sizeof s);
    snprintf(cmd, sizeof cmd, "trap '' TERM; sleep 78.%d; echo unreachable", getpid());
    snprintf(marker, sizeof marker, "sleep 78.%d", getpid());
    dispatch("r5", 1, 6, cmd, 0);
    /* cancel once the trap is set, that is once the sleep after it runs */
    for (int i = 0; i < 500 && !alive_marker(marker); i++)
        uv_run(W.loop, UV_RUN_NOWAIT);
    ref.run_id = "r5";
    ty_exec_cancel(&W, &ref, "test");
    run_until_idle(&s);
    CHECK(s.last && s.last->cancelled && s.last->term_signal == SIGKILL);
    CHECK(!alive_marker(marker));
    seen_free(&s);
    clear_unacked();

    /* kind: mpi: Open MPI's shared memory and mpirun's session directory
     * go to the attempt's own directory, removed afterwards with whatever
     * the ranks left there, however deep; a
     * directory the task sets itself is kept */
    if (system("command -v mpirun >/dev/null") == 0) {
        memset(&s, 0, sizeof s);
        ref.run_id = "r6";
        Ty__KV kv = TY__KV__INIT, *kvp = &kv;
        kv.key = "OMPI_MCA_osc_sm_backing_directory";
        kv.value = dir;
        Ty__Dispatch md = TY__DISPATCH__INIT;
        md.ref = &ref;
        md.kind = 1;
        md.np = 1;
        md.env = &kvp;
        md.n_env = 1;
        md.shell = "echo vader=$OMPI_MCA_btl_vader_backing_directory "
                   "osc=$OMPI_MCA_osc_sm_backing_directory tmp=$OMPI_MCA_orte_tmpdir_base; "
                   "touch $OMPI_MCA_btl_vader_backing_directory/vader_segment.left && "
                   "mkdir -p $OMPI_MCA_orte_tmpdir_base/ompi.host.0/pid.1/0 && "
                   "touch $OMPI_MCA_orte_tmpdir_base/ompi.host.0/pid.1/0/left";
        ty_exec_dispatch(&W, &md);
        run_until_idle(&s);
        CHECK(s.last && s.last->exit_code == 0);
        const char *v = s.log.data ? strstr(s.log.data, "vader=/dev/shm/trainyard-") : NULL;
        CHECK(v != NULL);
        char shm[64] = "";
        if (v)
            sscanf(v, "vader=%63s", shm);
        snprintf(want, sizeof want, "tmp=%s", shm); /* mpirun's session directory too */
        CHECK_CONTAINS(s.log.data, want);
        struct stat st;
        CHECK(shm[0] && stat(shm, &st) != 0); /* gone, with the files left in it */
        snprintf(want, sizeof want, "osc=%s", dir);
        CHECK_CONTAINS(s.log.data, want);
        seen_free(&s);
        clear_unacked();
    }

    zsock_destroy(&W.sock);
    zsock_destroy(&peer);
    uv_run(W.loop, UV_RUN_DEFAULT);
    uv_loop_close(W.loop);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    TEST_DONE();
}
