/* The worker socket of the master: registration (record written, ack after
 * the commit), heartbeats, ReRegister for strangers, a dispatch and its log
 * chunk, report and result, a stale result ignored but acknowledged,
 * liveness (a silent worker is lost and its attempt re-queued) and
 * deregistration. */
#include "master/tests/master_fixture.h"

#include "common/err.h"
#include "common/report.h"

static void send_env(zsock_t *s, Ty__Envelope *env) { CHECK_EQ_INT(ty_wire_send(s, NULL, env), 0); }

/* A worker's result for the attempt ref names. */
static void send_result(zsock_t *s, Ty__TaskRef *ref, int32_t exit_code) {
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = ref;
    res.exit_code = exit_code;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RESULT;
    env.result = &res;
    send_env(s, &env);
}

static zsock_t *worker(const char *id) {
    zsock_t *s = zsock_new(ZMQ_DEALER);
    zsock_set_identity(s, id);
    zsock_connect(s, "inproc://wk-w");
    return s;
}

static void reg(zsock_t *s, const char *id, double cpus) {
    Ty__Resources res = TY__RESOURCES__INIT;
    res.cpus = cpus;
    res.mem_mb = 1000;
    Ty__Register r = TY__REGISTER__INIT;
    r.worker_id = (char *)id;
    r.total = &res;
    r.hostname = "h";
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REGISTER;
    env.register_ = &r;
    send_env(s, &env);
}

static ty_run_t *start_run(const char *yaml) {
    Ty__PipelineSpec *spec = NULL, *res = NULL;
    char *err = NULL;
    CHECK_EQ_INT(ty_dag_load_string(yaml, strlen(yaml), "p.yaml", &spec, &err), 0);
    Ty__KV **params = NULL;
    size_t np = 0;
    ty_dag_resolve(spec, NULL, 0, &res, &params, &np, &err);
    ty_dag_free(&spec);
    static int n;
    char id[16];
    snprintf(id, sizeof id, "run%d", ++n);
    ty_run_t *r = ty_sched_run_new(&M, id, res, params, np);
    ty_sched_run_start(&M, r);
    return r;
}

int main(void) {
    int rc = mf_start("wk");
    if (rc)
        return rc;
    zsock_t *w1 = worker("w1"), *w2 = worker("w2");

    /* registration: the record is in etcd before the ack leaves */
    uint64_t ops0 = M.ops;
    reg(w1, "w1", 2);
    Ty__Envelope *env = mf_expect(w1, TY__ENVELOPE__BODY_REGISTER_ACK, 5000);
    CHECK(env && env->register_ack->heartbeat_ms == 100 && env->register_ack->lease_ms == 1000);
    ty_wire_free(&env);
    CHECK(M.ops > ops0);
    ty_worker_t *wk = zhashx_lookup(M.workers, "w1");
    CHECK(wk && wk->up && wk->cpus == 2);

    /* heartbeats are answered; a stranger is asked to register */
    Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
    Ty__Envelope hbe = TY__ENVELOPE__INIT;
    hbe.body_case = TY__ENVELOPE__BODY_HEARTBEAT;
    hbe.heartbeat = &hb;
    send_env(w1, &hbe);
    env = mf_expect(w1, TY__ENVELOPE__BODY_HEARTBEAT_ACK, 5000);
    CHECK(env != NULL);
    ty_wire_free(&env);
    send_env(w2, &hbe);
    env = mf_expect(w2, TY__ENVELOPE__BODY_REREGISTER, 5000);
    CHECK(env != NULL);
    ty_wire_free(&env);

    /* a run: its task is dispatched to w1 after the commit */
    ty_run_t *r = start_run("name: p\ntasks:\n  - {name: a, command: [t]}\n");
    env = mf_expect(w1, TY__ENVELOPE__BODY_DISPATCH, 5000);
    CHECK(env && env->dispatch->ref->attempt == 1 && strcmp(env->dispatch->ref->task, "a") == 0);
    ty_wire_free(&env);
    ty_task_t *t = &r->tasks[0];
    CHECK_EQ_INT(t->state, TY_TASK_RUNNING);
    CHECK(wk->used_cpus == 1);

    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = r->id;
    ref.task = "a";
    ref.attempt = 1;
    Ty__LogChunk lc = TY__LOG_CHUNK__INIT;
    lc.ref = &ref;
    lc.stream = 1;
    lc.data.data = (uint8_t *)"hello\n";
    lc.data.len = 6;
    Ty__Envelope le = TY__ENVELOPE__INIT;
    le.body_case = TY__ENVELOPE__BODY_LOG;
    le.log = &lc;
    send_env(w1, &le);
    Ty__ReportItem item;
    CHECK_EQ_INT(ty_report_parse("metric loss 0.25 3", 18, &item), 0);
    Ty__ReportItem *items = &item;
    Ty__Report rep = TY__REPORT__INIT;
    rep.ref = &ref;
    rep.items = &items;
    rep.n_items = 1;
    Ty__Envelope re = TY__ENVELOPE__INIT;
    re.body_case = TY__ENVELOPE__BODY_REPORT;
    re.report = &rep;
    send_env(w1, &re);
    /* a stale attempt's result: acknowledged, ignored */
    Ty__TaskRef stale = ref;
    stale.attempt = 7;
    send_result(w1, &stale, 9);
    env = mf_expect(w1, TY__ENVELOPE__BODY_RESULT_ACK, 5000);
    CHECK(env && env->result_ack->ref->attempt == 7);
    ty_wire_free(&env);
    CHECK_EQ_INT(t->state, TY_TASK_RUNNING);
    send_result(w1, &ref, 0);
    env = mf_expect(w1, TY__ENVELOPE__BODY_RESULT_ACK, 5000);
    CHECK(env && env->result_ack->ref->attempt == 1);
    ty_wire_free(&env);
    CHECK_EQ_INT(t->state, TY_TASK_SUCCEEDED);
    CHECK_EQ_INT(r->state, TY_RUN_SUCCEEDED);
    CHECK(t->nmetrics == 1 && t->metrics[0].value == 0.25 && t->metrics[0].step == 3);
    CHECK(wk->used_cpus == 0);
    char *path = ty_workers_log_path(&M, r->id, "a", 1);
    ty_buf_t log = {0};
    CHECK_EQ_INT(ty_read_file(path, &log), 0);
    CHECK_STR(log.data, "hello\n");
    ty_buf_free(&log);
    free(path);
    ty_report_item_clear(&item);

    /* liveness: a worker silent past its lease is lost, its attempt re-queued */
    r = start_run("name: q\ntasks:\n  - {name: b, command: [t]}\n");
    env = mf_expect(w1, TY__ENVELOPE__BODY_DISPATCH, 5000);
    CHECK(env != NULL);
    ty_wire_free(&env);
    wk->last_seen -= 5000;
    ty_workers_sweep(&M);
    CHECK(!wk->up);
    CHECK_EQ_INT(r->tasks[0].state, TY_TASK_QUEUED);
    CHECK_EQ_INT(r->tasks[0].lost, 1);

    /* it comes back and takes the attempt again; then it leaves for good */
    reg(w1, "w1", 2);
    env = mf_expect(w1, TY__ENVELOPE__BODY_DISPATCH, 5000);
    CHECK(env && env->dispatch->ref->attempt == 2);
    ty_wire_free(&env);
    Ty__Deregister dr = TY__DEREGISTER__INIT;
    dr.reason = "bye";
    Ty__Envelope de = TY__ENVELOPE__INIT;
    de.body_case = TY__ENVELOPE__BODY_DEREGISTER;
    de.deregister = &dr;
    send_env(w1, &de);
    for (int i = 0; i < 100 && wk->up; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        zclock_sleep(2);
    }
    CHECK(!wk->up && wk->gone);
    CHECK_EQ_INT(r->tasks[0].state, TY_TASK_QUEUED);
    CHECK_EQ_INT(r->tasks[0].lost, 2);

    zsock_destroy(&w1);
    zsock_destroy(&w2);
    mf_stop();
    TEST_DONE();
}
