/* Write-ahead persistence against a real etcd: the outbox waits for the
 * commit, batches past 120 operations split into several txns, a fenced
 * write ends the master, and a rebuild restores runs and tasks. */
#include "master/master.h"

#include "common/err.h"
#include "common/tests/etcd_fixture.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

static char url[64];

static void on_timeout(uv_timer_t *t) { uv_stop(t->loop); }

static void run_until(uv_loop_t *loop, int (*done)(ty_master_t *), ty_master_t *m) {
    uv_timer_t g;
    uv_timer_init(loop, &g);
    uv_timer_start(&g, on_timeout, 10000, 0);
    while (!done(m) && uv_is_active((uv_handle_t *)&g))
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&g, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static int committed(ty_master_t *m) { return ty_state_idle(m); }

static void init_master(ty_master_t *m, uv_loop_t *loop) {
    memset(m, 0, sizeof *m);
    m->o.prefix = "/st/";
    m->o.data_dir = "/tmp";
    m->o.lost_limit = 5;
    m->loop = loop;
    m->runs = zhashx_new();
    m->workers = zhashx_new();
    m->serving = 1;
    uv_timer_init(loop, &m->retry);
    uv_timer_init(loop, &m->delay);
    m->retry.data = m->delay.data = m;
    ty_state_init(m);
    CHECK_EQ_INT(ty_etcd_create(&m->etcd, loop, url), 0);
}

static void free_master(ty_master_t *m) {
    ty_state_fini(m);
    for (size_t i = 0; i < m->nruns; i++)
        ty_sched_run_free(m->order[i]);
    free(m->order);
    for (ty_worker_t *w = zhashx_first(m->workers); w; w = zhashx_next(m->workers))
        ty_workers_free(w);
    zhashx_destroy(&m->runs);
    zhashx_destroy(&m->workers);
    free(m->heap);
    free(m->delayed);
    ty_etcd_destroy(&m->etcd);
    uv_close((uv_handle_t *)&m->retry, NULL);
    uv_close((uv_handle_t *)&m->delay, NULL);
}

typedef struct {
    int done;
    int64_t rev;
    size_t n;
} got_t;

static void on_resp(int st, const ty_etcd_resp_t *r, void *arg) {
    got_t *g = arg;
    g->done = 1;
    g->rev = st == 0 ? r->revision : -1;
    g->n = st == 0 ? r->nkvs : 0;
}

static got_t *waiting_for; /* the response run_until waits on */
static int got_done(ty_master_t *m) {
    (void)m;
    return waiting_for->done;
}

static int rebuilt_flag;
static void rebuild_done(ty_master_t *m, int status) {
    (void)m;
    CHECK_EQ_INT(status, 0);
    rebuilt_flag = 1;
}
static int is_rebuilt(ty_master_t *m) {
    (void)m;
    return rebuilt_flag;
}

/* Make this test the leader: create the leader key; its revision is the epoch. */
static uint64_t take_leader(ty_master_t *m) {
    got_t g = {0};
    ty_etcd_txn_t *t = NULL;
    ty_etcd_txn_create(&t);
    char *key = ty_state_key(m, "leader"); /* created here, so its revision is the epoch */
    ty_etcd_txn_put(t, 1, key, strlen(key), "test", 4, 0);
    free(key);
    ty_etcd_txn_commit(m->etcd, &t, on_resp, &g);
    waiting_for = &g;
    run_until(m->loop, got_done, m);
    return (uint64_t)g.rev;
}

static size_t count_prefix(ty_master_t *m, const char *prefix) {
    got_t g = {0};
    size_t rl;
    unsigned char *end = ty_etcd_prefix_end(prefix, strlen(prefix), &rl);
    ty_etcd_range(m->etcd, prefix, strlen(prefix), end, rl, on_resp, &g);
    free(end);
    waiting_for = &g;
    run_until(m->loop, got_done, m);
    return g.n;
}

static ty_run_t *make_run(ty_master_t *m, size_t ntasks) {
    ty_buf_t y = {0};
    ty_buf_printf(&y, "name: big\ntasks:\n");
    for (size_t i = 0; i < ntasks; i++)
        ty_buf_printf(&y, "  - {name: t%zu, command: [t]}\n", i);
    Ty__PipelineSpec *spec = NULL, *res = NULL;
    char *err = NULL;
    CHECK_EQ_INT(ty_dag_load_string(y.data, y.len, "b.yaml", &spec, &err), 0);
    Ty__KV **params = NULL;
    size_t np = 0;
    ty_dag_resolve(spec, NULL, 0, &res, &params, &np, &err);
    ty_dag_free(&spec);
    ty_buf_free(&y);
    ty_run_t *r = ty_sched_run_new(m, "big-1", res, params, np);
    ty_sched_run_start(m, r);
    return r;
}

static int fenced_child(void) {
    /* a master whose epoch is not the leader key's must not write */
    uv_loop_t loop;
    uv_loop_init(&loop);
    ty_master_t m;
    init_master(&m, &loop);
    m.o.prefix = "/fenced/";
    m.epoch = take_leader(&m) + 1000;
    ty_state_put_raw(&m, "/st/fenced", (uint8_t *)ty_xstrdup("x"), 1);
    ty_state_flush(&m);
    run_until(&loop, committed, &m);
    return 0; /* not reached when fenced: the commit exits with 3 */
}

int main(void) {
    int rc = ty_fx_start(url, sizeof url);
    if (rc)
        return rc;
    pid_t pid = fork();
    if (pid == 0) {
        ty_fx_pid = 0; /* the child's exit must not stop the parent's etcd */
        _exit(fenced_child());
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);

    zsys_init();
    zsys_set_linger(0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    ty_master_t m;
    init_master(&m, &loop);
    m.epoch = take_leader(&m);
    CHECK(m.epoch > 0);
    m.csock = zsock_new_router("inproc://state-test");
    zsock_t *client = zsock_new(ZMQ_DEALER);
    zsock_set_identity(client, "c1");
    zsock_connect(client, "inproc://state-test");
    /* the ROUTER routes to c1 once it has heard from it */
    zstr_send(client, "hello");
    zpoller_t *poller = zpoller_new(m.csock, NULL);
    CHECK(zpoller_wait(poller, 5000) == m.csock);
    zpoller_destroy(&poller);
    zmsg_t *hello = zmsg_recv(m.csock);
    zmsg_destroy(&hello);
    poller = zpoller_new(client, NULL);

    /* 300 tasks + the run: three txns; the reply waits for all of them */
    uint64_t txns0 = m.txns;
    ty_run_t *r = make_run(&m, 300);
    CHECK_EQ_INT(m.open.nops, 301);
    zframe_t *id = zframe_new("c1", 2);
    Ty__InfoReply ir = TY__INFO_REPLY__INIT;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_INFO_REPLY;
    env.info_reply = &ir;
    ty_state_send(&m, m.csock, id, &env);
    CHECK(zpoller_wait(poller, 100) == NULL); /* held in the outbox: nothing arrives */
    ty_state_flush(&m);
    CHECK_EQ_INT(m.txns - txns0, 3);
    CHECK_EQ_INT(m.nflights, 1);
    run_until(&loop, committed, &m);
    CHECK(committed(&m));
    CHECK(zpoller_wait(poller, 5000) == client); /* released after the commit */
    zpoller_destroy(&poller);
    CHECK_EQ_INT(count_prefix(&m, "/st/runs/"), 301);

    /* a change to one task writes one key; nothing dirty sends at once */
    ty_task_t *t0 = &r->tasks[0];
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    t0->state = TY_TASK_RUNNING;
    t0->attempt = 1;
    t0->worker = ty_xstrdup("w9");
    ty_sched_task_result(&m, t0, &res);
    CHECK_EQ_INT(m.open.nops, 1);
    ty_state_flush(&m);
    run_until(&loop, committed, &m);

    /* rebuild into a fresh master */
    ty_master_t m2;
    init_master(&m2, &loop);
    m2.epoch = m.epoch;
    ty_state_rebuild(&m2, rebuild_done);
    run_until(&loop, is_rebuilt, &m2);
    CHECK(rebuilt_flag == 1);
    ty_run_t *r2 = zhashx_lookup(m2.runs, "big-1");
    CHECK(r2 != NULL);
    if (r2) {
        CHECK_EQ_INT(r2->ntasks, 300);
        CHECK_EQ_INT(r2->tasks[0].state, TY_TASK_SUCCEEDED);
        CHECK_STR(r2->tasks[0].worker, "w9");
        CHECK_EQ_INT(r2->tasks[1].state, TY_TASK_QUEUED);
        CHECK_EQ_INT(r2->state, TY_RUN_PENDING);
    }

    zframe_destroy(&id);
    free_master(&m);
    free_master(&m2);
    zsock_destroy(&client);
    zsock_destroy(&m.csock);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    TEST_DONE();
}
