/* The client API over a real socket pair and a real etcd: submit (and its
 * validation errors), status with long-poll, runs, workers, logs, cancel,
 * info, and rejection of bad frames. */
#include "master/tests/master_fixture.h"

#include "common/err.h"

static zsock_t *client;
static uint64_t next_req = 1;

/* Send req and run the loop until the reply arrives (bounded). */
static Ty__Envelope *call(Ty__Envelope *req) {
    req->req_id = next_req++;
    CHECK_EQ_INT(ty_wire_send(client, NULL, req), 0);
    Ty__Envelope *rep = NULL;
    while ((rep = mf_expect(client, TY__ENVELOPE__BODY__NOT_SET, 10000)) &&
           rep->req_id != req->req_id)
        ty_wire_free(&rep);
    CHECK(rep != NULL);
    return rep;
}

static Ty__Envelope *submit(const char *yaml, const char *k, const char *v) {
    Ty__SubmitRequest sr = TY__SUBMIT_REQUEST__INIT;
    sr.yaml = (char *)yaml;
    sr.filename = "p.yaml";
    Ty__KV kv = TY__KV__INIT, *kvp = &kv;
    if (k) {
        kv.key = (char *)k;
        kv.value = (char *)v;
        sr.params = &kvp;
        sr.n_params = 1;
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_SUBMIT;
    env.submit = &sr;
    return call(&env);
}

static Ty__Envelope *status(const char *run, uint64_t after) {
    Ty__StatusRequest st = TY__STATUS_REQUEST__INIT;
    st.run_id = (char *)run;
    st.wait_after = after;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_STATUS;
    env.status = &st;
    return call(&env);
}

int main(void) {
    int rc = mf_start("api");
    if (rc)
        return rc;
    client = zsock_new_dealer("inproc://api-c");

    /* validation errors come back as one message with file:line, nothing stored */
    Ty__Envelope *rep = submit("name: x\ntasks:\n  - name: a\n    depends_on: [zz]\n"
                               "    command: [t]\n",
                               NULL, NULL);
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_ERROR);
    CHECK_CONTAINS(rep ? rep->error->message : NULL, "p.yaml:3: task 'a' depends on unknown");
    ty_wire_free(&rep);
    rep = submit("name: x\nparams: {n: 1}\ntasks:\n  - {name: a, command: [t]}\n", "m", "2");
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_ERROR);
    ty_wire_free(&rep);
    CHECK_EQ_INT(M.nruns, 0);
    CHECK_EQ_INT(M.txns, 0);

    /* a good submit is answered after its txn committed */
    rep = submit("name: ok\nparams: {n: 1}\ntasks:\n"
                 "  - {name: a, command: [echo, '{{ params.n }}']}\n"
                 "  - {name: b, command: [t], depends_on: [a]}\n",
                 "n", "5");
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_SUBMIT_REPLY);
    char run[64] = "";
    if (rep && rep->body_case == TY__ENVELOPE__BODY_SUBMIT_REPLY)
        snprintf(run, sizeof run, "%s", rep->submit_reply->run_id);
    ty_wire_free(&rep);
    CHECK(strncmp(run, "ok-", 3) == 0);
    CHECK(M.txns >= 1);
    CHECK(ty_state_idle(&M));

    rep = status(run, 0);
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_STATUS_REPLY);
    uint64_t version = 0;
    if (rep && rep->body_case == TY__ENVELOPE__BODY_STATUS_REPLY) {
        Ty__RunStatus *st = rep->status_reply->status;
        CHECK_EQ_INT(st->n_tasks, 2);
        CHECK_EQ_INT(st->tasks[0]->state, TY_TASK_QUEUED);
        CHECK_STR(st->run->params[0]->value, "5");
        version = st->version;
    }
    ty_wire_free(&rep);
    rep = status("nope", 0);
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_ERROR);
    ty_wire_free(&rep);

    /* a long-poll returns when the run changes: cancel it from inside the loop */
    Ty__StatusRequest st = TY__STATUS_REQUEST__INIT;
    st.run_id = run;
    st.wait_after = version;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_STATUS;
    env.status = &st;
    env.req_id = 999;
    CHECK_EQ_INT(ty_wire_send(client, NULL, &env), 0);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    ty_run_t *r = zhashx_lookup(M.runs, run);
    CHECK(r && r->waiters != NULL); /* parked */
    Ty__CancelRequest cr = TY__CANCEL_REQUEST__INIT;
    cr.run_id = run;
    Ty__Envelope cenv = TY__ENVELOPE__INIT;
    cenv.body_case = TY__ENVELOPE__BODY_CANCEL;
    cenv.cancel = &cr;
    rep = call(&cenv);
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_CANCEL_REPLY &&
          rep->cancel_reply->state == TY_RUN_CANCELLED);
    ty_wire_free(&rep);
    Ty__Envelope *parked = NULL;
    for (int i = 0; i < 50 && !parked; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (ty_wire_recv(client, 0, 1u << 24, NULL, &parked) != 0)
            zclock_sleep(10);
    }
    CHECK(parked && parked->req_id == 999 &&
          parked->status_reply->status->run->state == TY_RUN_CANCELLED);
    ty_wire_free(&parked);
    rep = call(&cenv);
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_ERROR);
    CHECK_CONTAINS(rep ? rep->error->message : NULL, "already cancelled");
    ty_wire_free(&rep);

    /* logs of a task that never ran: empty and done */
    Ty__LogsRequest lr = TY__LOGS_REQUEST__INIT;
    lr.run_id = run;
    lr.task = "b";
    lr.wait = 1;
    Ty__Envelope lenv = TY__ENVELOPE__INIT;
    lenv.body_case = TY__ENVELOPE__BODY_LOGS;
    lenv.logs = &lr;
    rep = call(&lenv);
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_LOGS_REPLY && rep->logs_reply->done &&
          rep->logs_reply->data.len == 0);
    ty_wire_free(&rep);

    /* listings */
    Ty__RunsRequest rr = TY__RUNS_REQUEST__INIT;
    Ty__Envelope renv = TY__ENVELOPE__INIT;
    renv.body_case = TY__ENVELOPE__BODY_RUNS;
    renv.runs = &rr;
    rep = call(&renv);
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_RUNS_REPLY && rep->runs_reply->n_runs == 1);
    ty_wire_free(&rep);
    Ty__WorkersRequest wr = TY__WORKERS_REQUEST__INIT;
    Ty__Envelope wenv = TY__ENVELOPE__INIT;
    wenv.body_case = TY__ENVELOPE__BODY_WORKERS;
    wenv.workers = &wr;
    rep = call(&wenv);
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_WORKERS_REPLY &&
          rep->workers_reply->n_workers == 0);
    ty_wire_free(&rep);

    /* bad frames are counted; the socket keeps serving */
    zstr_send(client, "garbage");
    char big[8192];
    memset(big, 0, sizeof big);
    zsock_send(client, "b", big, sizeof big);
    Ty__InfoRequest ir = TY__INFO_REQUEST__INIT;
    Ty__Envelope ienv = TY__ENVELOPE__INIT;
    ienv.body_case = TY__ENVELOPE__BODY_INFO;
    ienv.info = &ir;
    rep = call(&ienv);
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_INFO_REPLY);
    if (rep && rep->body_case == TY__ENVELOPE__BODY_INFO_REPLY) {
        CHECK_EQ_INT(rep->info_reply->frames_rejected_decode, 1);
        CHECK_EQ_INT(rep->info_reply->frames_rejected_size, 1);
    }
    ty_wire_free(&rep);

    zsock_destroy(&client);
    mf_stop();
    TEST_DONE();
}
