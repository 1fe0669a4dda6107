/* The request handler without a transport: requests go in with a peer,
 * replies come out of the core as SEND effects, through the in-memory
 * store.  Submit (and its validation error), a status long-poll answered
 * when the run changes and another when its hold runs out, runs, workers,
 * info, an unexpected request, and a run the core let go of read back from
 * the store (status, logs, cancel) or not found; a follower of a task's
 * latest attempt carried on to the retry; pipelines; runs by id prefix. */
#include "master/api.h"
#include "master/core/core_int.h"

#include "common/err.h"
#include "common/log.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <sys/stat.h>

static uv_loop_t loop;
static ty_core_t *core;
static ty_store_t *store;
static ty_api_t *api;
static ty_time_t clock_now = {1800000000000, 1000};
static Ty__Envelope *replies[64];
static char reply_peer[64][16];
static size_t nreplies;
static int pending_txns;

static ty_time_t fake_now(void) { return clock_now; }

static void effects(void *arg);

static void on_txn(int status, void *arg) {
    ty_ev_t ev = {.kind = TY_EV_TXN_DONE, .flight = (uint64_t)(uintptr_t)arg, .status = status};
    pending_txns--;
    ty_core_step(core, &ev, clock_now);
    effects(NULL);
}

static void effects(void *arg) {
    (void)arg;
    ty_fx_t fx;
    while (ty_core_fx_pop(core, &fx)) {
        if (fx.kind == TY_FX_TXN) {
            pending_txns++;
            CHECK_EQ_INT(ty_store_txn(store, fx.epoch, fx.seq, fx.puts, fx.nputs, on_txn,
                                      (void *)(uintptr_t)fx.flight),
                         0);
        } else if (fx.kind == TY_FX_SEND && fx.peer_kind == TY_PEER_CLIENT && nreplies < 64) {
            snprintf(reply_peer[nreplies], 16, "%.*s", (int)fx.peer_len, (char *)fx.peer);
            replies[nreplies++] = ty__envelope__unpack(NULL, fx.len, fx.data);
        } else if (fx.kind == TY_FX_NOTIFY) {
            ty_api_notify(api, fx.run, 0, clock_now);
        }
        ty_fx_clear(&fx);
    }
}

/* Everything settles: txns answered, the end of the tick flushed. */
static void settle(void) {
    for (int i = 0; i < 20; i++) {
        ty_ev_t ev = {.kind = TY_EV_FLUSH};
        ty_core_step(core, &ev, clock_now);
        effects(NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
        if (!pending_txns && ty_core_idle(core))
            break;
    }
}

static void request(const char *peer, Ty__Envelope *env) {
    ty_api_request(api, (const uint8_t *)peer, strlen(peer), env, NULL, clock_now);
    effects(NULL);
    settle();
}

/* The last reply to peer (NULL if none since the last clear). */
static Ty__Envelope *reply_to(const char *peer) {
    for (size_t i = nreplies; i-- > 0;)
        if (strcmp(reply_peer[i], peer) == 0)
            return replies[i];
    return NULL;
}

static void clear_replies(void) {
    for (size_t i = 0; i < nreplies; i++)
        ty__envelope__free_unpacked(replies[i], NULL);
    nreplies = 0;
}

static char *submit(const char *peer, const char *yaml) {
    Ty__SubmitRequest sr = TY__SUBMIT_REQUEST__INIT;
    sr.yaml = (char *)yaml;
    sr.filename = "a.yaml";
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_SUBMIT;
    env.submit = &sr;
    request(peer, &env);
    Ty__Envelope *r = reply_to(peer);
    return r && r->body_case == TY__ENVELOPE__BODY_SUBMIT_REPLY
               ? ty_xstrdup(r->submit_reply->run_id)
               : NULL;
}

static void logs(const char *peer, const char *run, uint32_t attempt, uint64_t offset) {
    Ty__LogsRequest lr = TY__LOGS_REQUEST__INIT;
    lr.run_id = (char *)run;
    lr.task = "t";
    lr.attempt = attempt;
    lr.offset = offset;
    lr.wait = 1;
    lr.latest = 1;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_LOGS;
    env.logs = &lr;
    request(peer, &env);
}

/* What attempt of run's task t wrote (its directories made). */
static void write_log(const char *dir, const char *run, uint32_t attempt, const char *text) {
    char *path = ty_api_log_path(dir, run, "t", attempt);
    char *cmd =
        ty_xasprintf("mkdir -p \"$(dirname '%s')\" && printf '%s' >> '%s'", path, text, path);
    CHECK(system(cmd) == 0);
    free(cmd);
    free(path);
}

static void status(const char *peer, const char *run, uint64_t wait_after) {
    Ty__StatusRequest sr = TY__STATUS_REQUEST__INIT;
    sr.run_id = (char *)run;
    sr.wait_after = wait_after;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_STATUS;
    env.status = &sr;
    request(peer, &env);
}

/* Wait for the store's answers to reach the handler. */
static void spin(void) {
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    settle();
}

int main(void) {
    ty_log_init("api_test", TY_LOG_WARN);
    uv_loop_init(&loop);
    char dir[] = "/tmp/ty-api-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    ty_core_opts_t o;
    ty_core_opts_default(&o);
    o.epoch = 3;
    o.retain_runs = 1;
    CHECK_EQ_INT(ty_core_create(&core, &o), 0);
    CHECK_EQ_INT(ty_store_mem_create(&store, &loop), 0);
    ty_store_mem_lead(store, 3);
    ty_api_info_t info = {.epoch = 3, .node_id = "m1"};
    ty_api_shell_t shell = {store, fake_now, effects, NULL, TY_DAG_LIMITS_DEFAULT, NULL, 0, NULL};
    CHECK_EQ_INT(ty_api_create(&api, core, dir, &info, &shell), 0);
    ty_ev_t serve = {.kind = TY_EV_SERVE};
    ty_core_step(core, &serve, clock_now);

    /* a bad pipeline: the loader's message */
    CHECK(submit("c1", "name: x\ntasks: []\n") == NULL);
    CHECK(reply_to("c1") && reply_to("c1")->body_case == TY__ENVELOPE__BODY_ERROR);
    clear_replies();
    /* over the configured limits: refused, the limit named */
    shell.limits.max_tasks = 1;
    ty_api_destroy(&api);
    CHECK_EQ_INT(ty_api_create(&api, core, dir, &info, &shell), 0);
    CHECK(submit("c1", "name: x\ntasks:\n  - {name: a, command: [t]}\n"
                       "  - {name: b, command: [t]}\n") == NULL);
    Ty__Envelope *big = reply_to("c1");
    CHECK(big && big->body_case == TY__ENVELOPE__BODY_ERROR && big->error->code == TY_ETOOBIG);
    CHECK_CONTAINS(big ? big->error->message : "", "(limit max-pipeline-tasks)");
    clear_replies();

    /* a run, and a long-poll on it parked until it changes */
    char *run = submit("c1", "name: a\ntasks:\n  - {name: t, command: [\"true\"]}\n");
    CHECK(run != NULL);
    status("c2", run, 0);
    Ty__Envelope *st = reply_to("c2");
    CHECK(st && st->body_case == TY__ENVELOPE__BODY_STATUS_REPLY);
    uint64_t v = st ? st->status_reply->status->version : 0;
    clear_replies();
    status("c2", run, v);
    CHECK(reply_to("c2") == NULL); /* parked */
    CHECK_EQ_INT(ty_api_deadline(api), clock_now.mono_ms + 5000);
    status("c3", run, v);
    CHECK(reply_to("c3") == NULL);
    /* a worker registers: the task is dispatched, the run changes */
    Ty__Resources res = TY__RESOURCES__INIT;
    res.cpus = 1;
    Ty__Register reg = TY__REGISTER__INIT;
    reg.worker_id = "w1";
    reg.total = &res;
    reg.hostname = "h";
    Ty__Envelope renv = TY__ENVELOPE__INIT;
    renv.body_case = TY__ENVELOPE__BODY_REGISTER;
    renv.register_ = &reg;
    ty_ev_t ev = {
        .kind = TY_EV_WORKER_MSG, .peer = (const uint8_t *)"w1", .peer_len = 2, .msg = &renv};
    ty_core_step(core, &ev, clock_now);
    effects(NULL);
    settle();
    st = reply_to("c2");
    CHECK(st && st->body_case == TY__ENVELOPE__BODY_STATUS_REPLY &&
          st->status_reply->status->version > v);
    CHECK(reply_to("c3") != NULL);
    CHECK_EQ_INT(ty_api_deadline(api), 0);
    clear_replies();

    /* a long-poll with nothing happening is answered when its hold runs out */
    ty_run_t *r = ty_core_find_run(core, run);
    status("c4", run, r->version);
    CHECK(reply_to("c4") == NULL);
    clock_now.mono_ms += 5000;
    clock_now.wall_ms += 5000;
    ty_api_expire(api, clock_now);
    effects(NULL);
    settle();
    CHECK(reply_to("c4") != NULL);
    clear_replies();

    /* the task ends; a second run finishes too: the first leaves memory */
    ty_task_t *t = &r->tasks[0];
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = run;
    ref.task = "t";
    ref.attempt = t->attempt;
    Ty__TaskResult tr = TY__TASK_RESULT__INIT;
    tr.ref = &ref;
    Ty__Envelope tenv = TY__ENVELOPE__INIT;
    tenv.body_case = TY__ENVELOPE__BODY_RESULT;
    tenv.result = &tr;
    ev.msg = &tenv;
    ty_core_step(core, &ev, clock_now);
    settle();
    char *run2 = submit("c1", "name: b\ntasks:\n  - {name: u, command: [\"true\"]}\n");
    ty_run_t *r2 = ty_core_find_run(core, run2);
    ref.run_id = run2;
    ref.task = "u";
    ref.attempt = r2->tasks[0].attempt;
    ty_core_step(core, &ev, clock_now);
    settle();
    CHECK(ty_core_find_run(core, run) == NULL); /* let go of: retention 1 */
    clear_replies();
    /* ... and read back from the store */
    status("c5", run, 0);
    spin();
    st = reply_to("c5");
    CHECK(st && st->body_case == TY__ENVELOPE__BODY_STATUS_REPLY &&
          st->status_reply->status->run->state == TY_RUN_SUCCEEDED &&
          st->status_reply->status->n_tasks == 1 &&
          st->status_reply->status->tasks[0]->state == TY_TASK_SUCCEEDED);
    Ty__CancelRequest cr = TY__CANCEL_REQUEST__INIT;
    cr.run_id = run;
    Ty__Envelope cenv = TY__ENVELOPE__INIT;
    cenv.body_case = TY__ENVELOPE__BODY_CANCEL;
    cenv.cancel = &cr;
    request("c6", &cenv);
    spin();
    CHECK(reply_to("c6") && reply_to("c6")->body_case == TY__ENVELOPE__BODY_ERROR &&
          strstr(reply_to("c6")->error->message, "is already succeeded"));
    status("c7", "nosuch-00000000", 0);
    spin();
    CHECK(reply_to("c7") && reply_to("c7")->body_case == TY__ENVELOPE__BODY_ERROR &&
          strcmp(reply_to("c7")->error->message, "no such run 'nosuch-00000000'") == 0);

    /* listings and counters; something that is not a request */
    Ty__InfoRequest ir = TY__INFO_REQUEST__INIT;
    Ty__Envelope ienv = TY__ENVELOPE__INIT;
    ienv.body_case = TY__ENVELOPE__BODY_INFO;
    ienv.info = &ir;
    request("c8", &ienv);
    CHECK(reply_to("c8") && reply_to("c8")->info_reply->runs_in_memory == 1 &&
          reply_to("c8")->info_reply->runs_released == 1);
    Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
    Ty__Envelope henv = TY__ENVELOPE__INIT;
    henv.body_case = TY__ENVELOPE__BODY_HEARTBEAT;
    henv.heartbeat = &hb;
    request("c9", &henv);
    CHECK(reply_to("c9") && reply_to("c9")->body_case == TY__ENVELOPE__BODY_ERROR);
    CHECK_EQ_INT(info.rejected_decode, 1);

    /* a follower of the latest attempt stays with the task when a failed
     * attempt is retried: past attempt 1's end it moves on to attempt 2,
     * and is done only when the task is */
    clear_replies();
    char *run3 = submit("c1", "name: c\ntasks:\n  - {name: t, command: [\"true\"], retries: 1}\n");
    CHECK(run3 != NULL);
    ty_run_t *r3 = ty_core_find_run(core, run3);
    CHECK(r3 && r3->tasks[0].attempt == 1);
    logs("f1", run3, 0, 0);
    CHECK(reply_to("f1") == NULL); /* parked: nothing written yet */
    write_log(dir, run3, 1, "a1\n");
    ty_api_notify(api, run3, 1, clock_now);
    effects(NULL);
    Ty__Envelope *lg = reply_to("f1");
    CHECK(lg && lg->body_case == TY__ENVELOPE__BODY_LOGS_REPLY && lg->logs_reply->data.len == 3 &&
          lg->logs_reply->attempt == 1 && !lg->logs_reply->done);
    clear_replies();
    logs("f1", run3, 1, 3);
    CHECK(reply_to("f1") == NULL);
    ref.run_id = run3;
    ref.attempt = 1;
    ref.task = "t";
    tr.exit_code = 1;
    ty_core_step(core, &ev, clock_now);
    settle();
    CHECK_EQ_INT(r3->tasks[0].attempt, 2);
    CHECK(reply_to("f1") == NULL); /* attempt 1 ended, the task did not */
    write_log(dir, run3, 2, "a2\n");
    ty_api_notify(api, run3, 1, clock_now);
    effects(NULL);
    lg = reply_to("f1");
    CHECK(lg && lg->logs_reply->attempt == 2 && lg->logs_reply->data.len == 3 &&
          memcmp(lg->logs_reply->data.data, "a2\n", 3) == 0 && lg->logs_reply->next_offset == 3);
    clear_replies();
    logs("f1", run3, 2, 3);
    CHECK(reply_to("f1") == NULL);
    ref.attempt = 2;
    tr.exit_code = 0;
    ty_core_step(core, &ev, clock_now);
    settle();
    lg = reply_to("f1");
    CHECK(lg && lg->logs_reply->done && lg->logs_reply->data.len == 0);

    /* pipelines: each once, the one run last first, with its counts;
     * runs by a prefix of the id's hash */
    clear_replies();
    Ty__PipelinesRequest pq = TY__PIPELINES_REQUEST__INIT;
    Ty__Envelope penv = TY__ENVELOPE__INIT;
    penv.body_case = TY__ENVELOPE__BODY_PIPELINES;
    penv.pipelines = &pq;
    request("p1", &penv);
    Ty__Envelope *pl = reply_to("p1");
    CHECK(pl && pl->body_case == TY__ENVELOPE__BODY_PIPELINES_REPLY &&
          pl->pipelines_reply->n_pipelines >= 1);
    if (pl && pl->pipelines_reply->n_pipelines >= 1) {
        Ty__PipelineSummary *p0 = pl->pipelines_reply->pipelines[0];
        CHECK_STR(p0->name, "c");
        CHECK(p0->runs == 1 && p0->succeeded == 1 && p0->active == 0);
        CHECK_STR(p0->last->run_id, run3);
        for (size_t i = 1; i < pl->pipelines_reply->n_pipelines; i++) /* each once */
            CHECK(strcmp(pl->pipelines_reply->pipelines[i]->name, "c") != 0);
    }
    Ty__RunsRequest rq = TY__RUNS_REQUEST__INIT;
    rq.id_prefix = strrchr(run3, '-') + 1;
    Ty__Envelope qenv = TY__ENVELOPE__INIT;
    qenv.body_case = TY__ENVELOPE__BODY_RUNS;
    qenv.runs = &rq;
    request("p2", &qenv);
    Ty__Envelope *rl = reply_to("p2");
    CHECK(rl && rl->runs_reply->n_runs == 1 &&
          strcmp(rl->runs_reply->runs[0]->run->run_id, run3) == 0);

    clear_replies();
    free(run);
    free(run2);
    free(run3);
    ty_api_destroy(&api);
    ty_store_destroy(&store);
    uv_run(&loop, UV_RUN_DEFAULT);
    ty_core_destroy(&core);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    char *cmd = ty_xasprintf("rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    free(cmd);
    TEST_DONE();
}
