/* The worker's session against a ROUTER standing in for the master:
 * registration with its resources, heartbeats, re-registration on request,
 * a result resent until acknowledged, stale epochs refused, and silence
 * after deregistering. */
#include "worker/worker.h"

#include "common/tests/ty_test.h"
#include "common/util.h"

static ty_wk_t W;
static zsock_t *master;
static zframe_t *wid;

static void on_timeout(uv_timer_t *t) { uv_stop(t->loop); }

/* Run the worker's loop until the stand-in master has a message of `want`
 * (bounded); returns it or NULL. */
static Ty__Envelope *expect(Ty__Envelope__BodyCase want, int ms) {
    uv_timer_t g;
    uv_timer_init(W.loop, &g);
    uv_timer_start(&g, on_timeout, (uint64_t)ms, 0);
    Ty__Envelope *env = NULL;
    while (uv_is_active((uv_handle_t *)&g)) {
        uv_run(W.loop, UV_RUN_NOWAIT);
        zframe_t *id = NULL;
        if (ty_wire_recv(master, 1, 1u << 20, &id, &env) == 0) {
            if (!wid)
                wid = zframe_dup(id);
            zframe_destroy(&id);
            if (env->body_case == want)
                break;
            ty_wire_free(&env);
            continue;
        }
        zframe_destroy(&id);
        zclock_sleep(5);
    }
    uv_close((uv_handle_t *)&g, NULL);
    uv_run(W.loop, UV_RUN_NOWAIT);
    return env;
}

static void to_worker(Ty__Envelope *env) {
    CHECK_EQ_INT(ty_wire_send(master, wid, env), 0);
    for (int i = 0; i < 20; i++) { /* let it arrive and be handled */
        uv_run(W.loop, UV_RUN_NOWAIT);
        zclock_sleep(2);
    }
}

int main(void) {
    zsys_init();
    zsys_set_linger(0);
    memset(&W, 0, sizeof W);
    W.id = "wsess";
    W.hostname = "h";
    W.cpus = 3;
    W.mem_mb = 1000;
    W.gpus = 1;
    W.heartbeat_ms = 50;
    W.lease_ms = 5000;
    W.kill_grace_ms = 100;
    W.workdir = "/tmp";
    W.loop = uv_default_loop();
    master = zsock_new_router("inproc://session-test");
    W.sock = zsock_new(ZMQ_DEALER);
    zsock_set_identity(W.sock, "wsess");
    zsock_connect(W.sock, "inproc://session-test");
    ty_wk_start(&W);

    /* it registers until acknowledged, with its resources */
    Ty__Envelope *env = expect(TY__ENVELOPE__BODY_REGISTER, 3000);
    CHECK(env != NULL);
    if (env) {
        CHECK_STR(env->register_->worker_id, "wsess");
        CHECK(env->register_->total->cpus == 3 && env->register_->total->gpus == 1);
        CHECK_EQ_INT(env->register_->n_running, 0);
    }
    ty_wire_free(&env);
    Ty__RegisterAck ack = TY__REGISTER_ACK__INIT;
    ack.epoch = 9;
    ack.heartbeat_ms = 50;
    ack.lease_ms = 5000;
    Ty__Envelope out = TY__ENVELOPE__INIT;
    out.body_case = TY__ENVELOPE__BODY_REGISTER_ACK;
    out.register_ack = &ack;
    to_worker(&out);
    CHECK(W.registered);
    CHECK_EQ_INT(W.epoch, 9);
    env = expect(TY__ENVELOPE__BODY_HEARTBEAT, 3000);
    CHECK(env != NULL);
    ty_wire_free(&env);

    /* a result is kept and sent again until the master acknowledges it */
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = "r1";
    ref.task = "t";
    ref.attempt = 1;
    ref.epoch = 9;
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = &ref;
    res.exit_code = 5;
    ty_wk_result(&W, &res);
    env = expect(TY__ENVELOPE__BODY_RESULT, 3000);
    CHECK(env && env->result->exit_code == 5);
    ty_wire_free(&env);
    env = expect(TY__ENVELOPE__BODY_RESULT, 3000); /* unacked: again */
    CHECK(env && env->result->exit_code == 5);
    ty_wire_free(&env);
    Ty__ResultAck ra = TY__RESULT_ACK__INIT;
    ra.ref = &ref;
    out.body_case = TY__ENVELOPE__BODY_RESULT_ACK;
    out.result_ack = &ra;
    to_worker(&out);
    CHECK(W.unacked == NULL);

    /* a master that forgot it asks again: the register lists nothing running */
    Ty__ReRegister rr = TY__RE_REGISTER__INIT;
    rr.epoch = 10;
    out.body_case = TY__ENVELOPE__BODY_REREGISTER;
    out.reregister = &rr;
    to_worker(&out);
    env = expect(TY__ENVELOPE__BODY_REGISTER, 3000);
    CHECK(env != NULL);
    ty_wire_free(&env);
    CHECK(!W.registered);
    out.body_case = TY__ENVELOPE__BODY_REGISTER_ACK;
    out.register_ack = &ack;
    to_worker(&out);
    CHECK(W.registered);

    /* a dispatch from an older epoch is refused */
    ref.epoch = 3;
    Ty__Dispatch d = TY__DISPATCH__INIT;
    d.ref = &ref;
    d.shell = "true";
    out.body_case = TY__ENVELOPE__BODY_DISPATCH;
    out.dispatch = &d;
    to_worker(&out);
    CHECK_EQ_INT(ty_exec_running(&W), 0);
    CHECK(W.unacked == NULL);

    /* after deregistering it stays gone: no heartbeat, no re-registration */
    W.stopping = 1;
    ty_wk_deregister(&W, "test");
    env = expect(TY__ENVELOPE__BODY_DEREGISTER, 3000);
    CHECK(env && strcmp(env->deregister->reason, "test") == 0);
    ty_wire_free(&env);
    out.body_case = TY__ENVELOPE__BODY_REREGISTER;
    out.reregister = &rr;
    to_worker(&out);
    env = expect(TY__ENVELOPE__BODY_REGISTER, 300);
    CHECK(env == NULL);
    ty_wire_free(&env);
    env = expect(TY__ENVELOPE__BODY_HEARTBEAT, 300);
    CHECK(env == NULL);
    ty_wire_free(&env);

    ty_wire_poll_destroy(&W.poll);
    uv_close((uv_handle_t *)&W.hb, NULL);
    uv_run(W.loop, UV_RUN_DEFAULT);
    uv_loop_close(W.loop);
    ty_wk_clear_unacked(&W);
    zframe_destroy(&wid);
    zsock_destroy(&W.sock);
    zsock_destroy(&master);
    TEST_DONE();
}
