/* The scheduler's state machine without etcd: readiness and trigger rules,
 * priority order, placement (cpus, GPUs, labels, backfill), retries, cancel,
 * lost workers.  Results are fed in directly; dispatches go to a socket with
 * no peer and are counted. */
#include "master/master.h"

#include "common/tests/ty_test.h"
#include "common/util.h"

static ty_master_t M;
static uv_loop_t loop;

static void setup(void) {
    memset(&M, 0, sizeof M);
    uv_loop_init(&loop);
    M.loop = &loop;
    uv_timer_init(&loop, &M.delay); /* retry back-off */
    M.delay.data = &M;
    M.o.prefix = "/t/";
    M.o.lost_limit = 2;
    M.o.data_dir = "/tmp";
    M.runs = zhashx_new();
    M.workers = zhashx_new();
    M.wsock = zsock_new_router("inproc://sched-test-w");
    M.csock = zsock_new_router("inproc://sched-test-c");
    M.serving = 1;
    M.epoch = 7;
    ty_state_init(&M);
}

static void teardown(void) {
    uv_close((uv_handle_t *)&M.delay, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    for (size_t i = 0; i < M.nruns; i++)
        ty_sched_run_free(M.order[i]);
    free(M.order);
    for (ty_worker_t *w = zhashx_first(M.workers); w; w = zhashx_next(M.workers))
        ty_workers_free(w);
    zhashx_destroy(&M.runs);
    zhashx_destroy(&M.workers);
    free(M.heap);
    free(M.delayed);
    zsock_destroy(&M.wsock);
    zsock_destroy(&M.csock);
    ty_state_fini(&M); /* the unsent outbox */
}

static ty_worker_t *add_worker(const char *id, double cpus, uint32_t gpus, const char *label) {
    ty_worker_t *w = ty_xcalloc(1, sizeof *w);
    w->id = ty_xstrdup(id);
    w->hostname = ty_xstrdup("h");
    w->identity = zframe_new(id, strlen(id));
    w->cpus = cpus;
    w->mem_mb = 1000;
    w->gpus = gpus;
    w->up = 1;
    if (label) {
        w->labels = ty_xcalloc(1, sizeof *w->labels);
        w->labels[0] = ty_xmalloc(sizeof(Ty__KV));
        ty__kv__init(w->labels[0]);
        w->labels[0]->key = ty_xstrdup("zone");
        w->labels[0]->value = ty_xstrdup(label);
        w->nlabels = 1;
    }
    zhashx_insert(M.workers, id, w);
    return w;
}

static ty_run_t *start(const char *yaml) {
    Ty__PipelineSpec *spec = NULL, *res = NULL;
    char *err = NULL;
    if (ty_dag_load_string(yaml, strlen(yaml), "t.yaml", &spec, &err) != 0) {
        fprintf(stderr, "%s", err);
        abort();
    }
    Ty__KV **params = NULL;
    size_t np = 0;
    ty_dag_resolve(spec, NULL, 0, &res, &params, &np, &err);
    ty_dag_free(&spec);
    static int n;
    char id[32];
    snprintf(id, sizeof id, "r%d", ++n);
    ty_run_t *r = ty_sched_run_new(&M, id, res, params, np);
    ty_sched_run_start(&M, r);
    return r;
}

static ty_task_t *T(ty_run_t *r, const char *name) {
    return &r->tasks[ty_dag_task_index(r->spec, name)];
}

static void finish(ty_task_t *t, int code) {
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.exit_code = code;
    ty_sched_task_result(&M, t, &res);
}

static void test_diamond(void) {
    setup();
    add_worker("w1", 4, 0, NULL);
    ty_run_t *r = start("name: d\ntasks:\n"
                        "  - {name: a, command: [t]}\n"
                        "  - {name: b, command: [t], depends_on: [a]}\n"
                        "  - {name: c, command: [t], depends_on: [a]}\n"
                        "  - {name: d, command: [t], depends_on: [b, c]}\n");
    CHECK_EQ_INT(r->state, TY_RUN_PENDING);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "b")->state, TY_TASK_WAITING);
    ty_sched_pass(&M);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r, "a")->attempt, 1);
    CHECK_STR(T(r, "a")->worker, "w1");
    CHECK_EQ_INT(r->state, TY_RUN_RUNNING);
    CHECK_EQ_INT(M.dispatches, 1);
    finish(T(r, "a"), 0);
    CHECK_EQ_INT(T(r, "b")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "c")->state, TY_TASK_QUEUED);
    ty_sched_pass(&M);
    CHECK_EQ_INT(M.dispatches, 3);
    finish(T(r, "b"), 0);
    CHECK_EQ_INT(T(r, "d")->state, TY_TASK_WAITING); /* c still running */
    finish(T(r, "c"), 0);
    ty_sched_pass(&M);
    finish(T(r, "d"), 0);
    CHECK_EQ_INT(r->state, TY_RUN_SUCCEEDED);
    ty_worker_t *w = zhashx_lookup(M.workers, "w1");
    CHECK(w->used_cpus == 0 && w->running == 0);
    /* every task and the run were marked for the next etcd batch */
    CHECK(M.open.nops >= 5);
    teardown();
}

static void test_priority_and_backfill(void) {
    setup();
    ty_worker_t *w = add_worker("w1", 1, 0, NULL);
    ty_run_t *r = start("name: p\ntasks:\n"
                        "  - {name: low, command: [t], priority: 1}\n"
                        "  - {name: huge, command: [t], priority: 9, resources: {cpus: 64}}\n"
                        "  - {name: high, command: [t], priority: 5}\n"
                        "  - {name: mid, command: [t], priority: 3}\n");
    ty_sched_pass(&M);
    /* huge fits nowhere; high goes first on the single CPU */
    CHECK_EQ_INT(T(r, "high")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r, "huge")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "mid")->state, TY_TASK_QUEUED);
    CHECK(w->used_cpus == 1);
    /* each says why it waits: huge can never run, mid waits for room */
    CHECK_STR(T(r, "huge")->reason, "no worker can run it: it needs 64 CPUs; the largest worker "
                                    "has 1 CPUs, 1000 MB, 0 GPUs");
    CHECK_EQ_INT(T(r, "high")->reason == NULL, 1);
    uint64_t marks = r->version;
    ty_sched_pass(&M); /* nothing changed: nothing said again */
    CHECK_EQ_INT(r->version, marks);
    finish(T(r, "high"), 0);
    ty_sched_pass(&M);
    CHECK_EQ_INT(T(r, "mid")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r, "low")->state, TY_TASK_QUEUED);
    CHECK_STR(T(r, "low")->reason, "waiting for room: it needs 1 CPUs");
    CHECK_EQ_INT(T(r, "mid")->reason == NULL, 1); /* placed: no longer waiting */
    finish(T(r, "mid"), 1);                       /* an outcome's reason is not a wait */
    CHECK_STR(T(r, "mid")->reason, "exit code 1");
    /* a bigger worker joins: huge runs, and its wait is no longer shown */
    add_worker("big", 64, 0, NULL);
    ty_sched_pass(&M);
    CHECK_EQ_INT(T(r, "huge")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r, "huge")->reason == NULL, 1);
    CHECK_EQ_INT(T(r, "low")->state, TY_TASK_RUNNING);
    teardown();
}

static void test_mpi_reasons(void) {
    setup();
    add_worker("w1", 2, 0, NULL);
    ty_run_t *r = start("name: m\ntasks:\n"
                        "  - {name: wide, command: [t], kind: mpi, np: 8, "
                        "resources: {cpus: 1, mem_mb: 100}}\n"
                        "  - {name: zoned, command: [t], resources: {labels: {zone: c}}}\n");
    ty_sched_pass(&M);
    CHECK_STR(T(r, "wide")->reason, "no worker can run it: it needs 8 CPUs, 800 MB (8 ranks); "
                                    "the largest worker has 2 CPUs, 1000 MB, 0 GPUs");
    CHECK_STR(T(r, "zoned")->reason, "no worker can run it: none has the labels it asks for "
                                     "(1 CPUs)");
    CHECK(ty_sched_is_wait_reason(T(r, "wide")->reason));
    CHECK(!ty_sched_is_wait_reason("exit code 1") && !ty_sched_is_wait_reason(NULL));
    teardown();
}

/* A task no worker could hold says so from the moment it is queued, not
 * when it reaches the head of the queue; a worker that comes or goes
 * changes that for every queued task (registration sets workers_changed). */
static void test_reasons_deep_in_the_queue(void) {
    setup();
    add_worker("w1", 1, 0, NULL);
    ty_run_t *r = start("name: d\ntasks:\n"
                        "  - {name: a, command: [t], priority: 9}\n"
                        "  - {name: b, command: [t], priority: 5}\n"
                        "  - {name: wide, command: [t], priority: 1, kind: mpi, np: 4, "
                        "resources: {cpus: 1}}\n");
    const char *never = "no worker can run it: it needs 4 CPUs (4 ranks); the largest worker "
                        "has 1 CPUs, 1000 MB, 0 GPUs";
    CHECK_STR(T(r, "wide")->reason, never); /* at once, before any pass */
    CHECK_EQ_INT(T(r, "a")->reason == NULL, 1);
    ty_sched_pass(&M);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    CHECK_STR(T(r, "b")->reason, "waiting for room: it needs 1 CPUs"); /* the head */
    CHECK_STR(T(r, "wide")->reason, never);                            /* behind it */
    /* a 4-CPU worker joins, busy: wide could run there one day */
    ty_worker_t *big = add_worker("big", 4, 0, NULL);
    big->used_cpus = 4;
    M.workers_changed = 1;
    uint64_t v = r->version;
    ty_sched_pass(&M);
    CHECK_EQ_INT(T(r, "wide")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "wide")->reason == NULL, 1); /* waits its turn, no longer "never" */
    CHECK(r->version > v);
    CHECK(!M.workers_changed);
    v = r->version;
    ty_sched_pass(&M); /* nothing changed: nothing said again */
    CHECK_EQ_INT(r->version, v);
    /* it goes: never again */
    big->up = 0;
    M.workers_changed = 1;
    ty_sched_pass(&M);
    CHECK_STR(T(r, "wide")->reason, never);
    CHECK(r->version > v);
    teardown();
}

static void test_gpu_and_labels(void) {
    setup();
    add_worker("cpu", 8, 0, NULL);
    ty_worker_t *g = add_worker("gpu", 2, 2, "b");
    ty_run_t *r = start("name: g\ntasks:\n"
                        "  - {name: g1, command: [t], resources: {gpus: 1}}\n"
                        "  - {name: g2, command: [t], resources: {gpus: 1}}\n"
                        "  - {name: g3, command: [t], resources: {gpus: 1, cpus: 0.1}}\n"
                        "  - {name: zb, command: [t], resources: {labels: {zone: b}, cpus: 0.5}}\n"
                        "  - {name: zc, command: [t], resources: {labels: {zone: c}}}\n");
    ty_sched_pass(&M);
    CHECK_STR(T(r, "g1")->worker, "gpu");
    CHECK_STR(T(r, "g2")->worker, "gpu");
    CHECK_EQ_INT(T(r, "g1")->n_gpu, 1);
    CHECK(T(r, "g1")->gpu_ids[0] != T(r, "g2")->gpu_ids[0]);
    CHECK_EQ_INT(T(r, "g3")->state, TY_TASK_QUEUED); /* both GPUs taken */
    CHECK_EQ_INT(T(r, "zb")->state, TY_TASK_QUEUED); /* gpu worker's CPUs are full */
    CHECK_EQ_INT(T(r, "zc")->state, TY_TASK_QUEUED); /* no worker has zone c */
    CHECK_EQ_INT(__builtin_popcountll(g->gpu_busy), 2);
    finish(T(r, "g1"), 0);
    ty_sched_pass(&M);
    CHECK_STR(T(r, "g3")->worker, "gpu");
    CHECK_STR(T(r, "zb")->worker, "gpu");
    CHECK_EQ_INT(T(r, "zc")->state, TY_TASK_QUEUED);
    teardown();
}

static void test_retries_and_trigger_rules(void) {
    setup();
    add_worker("w1", 8, 0, NULL);
    ty_run_t *r = start("name: f\ntasks:\n"
                        "  - {name: x, command: [t], retries: 2}\n"
                        "  - {name: ok, command: [t]}\n"
                        "  - {name: child, command: [t], depends_on: [x]}\n"
                        "  - {name: grandchild, command: [t], depends_on: [child]}\n"
                        "  - {name: done, command: [t], depends_on: [x], trigger_rule: all_done}\n"
                        "  - {name: onfail, command: [t], depends_on: [ok], "
                        "trigger_rule: one_failed}\n"
                        "  - {name: nofail, command: [t], depends_on: [onfail], "
                        "trigger_rule: none_failed}\n");
    ty_sched_pass(&M);
    finish(T(r, "ok"), 0);
    CHECK_EQ_INT(T(r, "onfail")->state, TY_TASK_SKIPPED);
    CHECK_EQ_INT(T(r, "nofail")->state, TY_TASK_QUEUED); /* skipped is not failed */
    for (unsigned a = 1; a <= 3; a++) {
        ty_sched_pass(&M);
        CHECK_EQ_INT(T(r, "x")->state, TY_TASK_RUNNING);
        CHECK_EQ_INT(T(r, "x")->attempt, a);
        finish(T(r, "x"), 3);
        if (a == 1) { /* a retry that must wait keeps why its attempt failed */
            ty_worker_t *w = zhashx_lookup(M.workers, "w1");
            double keep = w->used_cpus;
            w->used_cpus = w->cpus; /* full */
            ty_sched_pass(&M);
            CHECK_EQ_INT(T(r, "x")->state, TY_TASK_QUEUED);
            CHECK_STR(T(r, "x")->reason, "exit code 3");
            w->used_cpus = keep;
        }
    }
    CHECK_EQ_INT(T(r, "x")->state, TY_TASK_FAILED);
    CHECK_EQ_INT(T(r, "x")->failures, 3);
    CHECK_STR(T(r, "x")->reason, "exit code 3");
    CHECK_EQ_INT(T(r, "child")->state, TY_TASK_UPSTREAM_FAILED);
    CHECK_EQ_INT(T(r, "grandchild")->state, TY_TASK_UPSTREAM_FAILED);
    CHECK(T(r, "done")->state == TY_TASK_QUEUED || T(r, "done")->state == TY_TASK_RUNNING);
    ty_sched_pass(&M);
    finish(T(r, "done"), 0);
    finish(T(r, "nofail"), 0);
    CHECK_EQ_INT(r->state, TY_RUN_FAILED);
    teardown();
}

static void test_backoff_is_delayed(void) {
    setup();
    add_worker("w1", 8, 0, NULL);
    ty_run_t *r = start("name: b\ntasks:\n"
                        "  - {name: x, command: [t], retries: 1, retry_backoff_s: 60}\n");
    ty_sched_pass(&M);
    int64_t before = ty_now_ms();
    finish(T(r, "x"), 1);
    CHECK_EQ_INT(T(r, "x")->state, TY_TASK_QUEUED);
    CHECK(T(r, "x")->not_before_ms >= before + 60000);
    ty_sched_pass(&M);
    CHECK_EQ_INT(T(r, "x")->state, TY_TASK_QUEUED); /* not before its back-off */
    CHECK_EQ_INT(M.ndelayed, 1);
    teardown();
}

static void test_cancel_and_lost(void) {
    setup();
    ty_worker_t *w = add_worker("w1", 2, 0, NULL);
    ty_run_t *r = start("name: c\ntasks:\n"
                        "  - {name: a, command: [t]}\n"
                        "  - {name: b, command: [t]}\n"
                        "  - {name: c, command: [t], depends_on: [a]}\n");
    ty_sched_pass(&M);
    CHECK_EQ_INT(w->running, 2);
    ty_sched_requeue_lost(&M, T(r, "b"), "worker w1 lost");
    CHECK_EQ_INT(T(r, "b")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "b")->lost, 1);
    CHECK_EQ_INT(w->running, 1);
    ty_sched_pass(&M);
    CHECK_EQ_INT(T(r, "b")->attempt, 2);
    ty_sched_requeue_lost(&M, T(r, "b"), "again");
    CHECK_EQ_INT(T(r, "b")->state, TY_TASK_FAILED); /* lost_limit 2 */
    CHECK_EQ_INT(ty_sched_cancel_run(&M, r), 0);
    CHECK_EQ_INT(r->state, TY_RUN_CANCELLED);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_CANCELLED);
    CHECK_EQ_INT(T(r, "c")->state, TY_TASK_CANCELLED);
    CHECK_EQ_INT(w->running, 0);
    CHECK(w->used_cpus == 0);
    CHECK(ty_sched_cancel_run(&M, r) != 0);
    /* a late result of the cancelled attempt changes nothing */
    teardown();
}

int main(void) {
    zsys_init();
    zsys_set_linger(0);
    test_diamond();
    test_priority_and_backfill();
    test_gpu_and_labels();
    test_mpi_reasons();
    test_reasons_deep_in_the_queue();
    test_retries_and_trigger_rules();
    test_backoff_is_delayed();
    test_cancel_and_lost();
    TEST_DONE();
}
