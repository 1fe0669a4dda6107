/* The control core driven by events alone, with a virtual clock and an
 * in-memory store (core_harness.h): readiness and trigger rules, priority,
 * placement and backfill, the reasons a task waits, retries and back-off
 * deadlines, cancel, worker liveness and loss, recovery after a restart
 * with adoption and the re-registration grace, the write-ahead batches
 * (several in flight, conflict waits, a failed batch retried, release in
 * batch order, fencing), and validation of what workers send. */
#include "master/tests/core_harness.h"

static void test_diamond(void) {
    h_t h;
    h_init(&h, 7);
    ty_worker_t *w = h_register(&h, "w1", 4, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: d\ntasks:\n"
                               "  - {name: a, command: [t]}\n"
                               "  - {name: b, command: [t], depends_on: [a]}\n"
                               "  - {name: c, command: [t], depends_on: [a]}\n"
                               "  - {name: d, command: [t], depends_on: [b, c]}\n");
    CHECK_EQ_INT(r->state, TY_RUN_PENDING);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "b")->state, TY_TASK_WAITING);
    h_flush(&h);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r, "a")->attempt, 1);
    CHECK_STR(T(r, "a")->worker, "w1");
    CHECK_EQ_INT(r->state, TY_RUN_RUNNING);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_DISPATCH), 1);
    CHECK_EQ_INT(h_count(&h, "cli", TY__ENVELOPE__BODY_SUBMIT_REPLY), 1);
    h_finish(&h, T(r, "a"), 0);
    CHECK_EQ_INT(T(r, "b")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "c")->state, TY_TASK_QUEUED);
    h_flush(&h);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_DISPATCH), 3);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_RESULT_ACK), 1);
    h_finish(&h, T(r, "b"), 0);
    CHECK_EQ_INT(T(r, "d")->state, TY_TASK_WAITING); /* c still running */
    h_finish(&h, T(r, "c"), 0);
    h_flush(&h);
    h_finish(&h, T(r, "d"), 0);
    h_flush(&h);
    CHECK_EQ_INT(r->state, TY_RUN_SUCCEEDED);
    CHECK(w->used_cpus == 0 && w->running == 0 && w->tasks == NULL);
    /* every record is in the store, the pipeline too */
    CHECK(zhashx_lookup(h.kv, "pipelines/d") == NULL); /* not given raw: none */
    char key[128];
    snprintf(key, sizeof key, "runs/%s/tasks/d", r->id);
    CHECK(zhashx_lookup(h.kv, key) != NULL);
    CHECK(zhashx_lookup(h.kv, "workers/w1") != NULL);
    h_fini(&h);
}

static void test_priority_and_backfill(void) {
    h_t h;
    h_init(&h, 7);
    ty_worker_t *w = h_register(&h, "w1", 1, 0, NULL);
    ty_run_t *r =
        h_submit(&h, "name: p\ntasks:\n"
                     "  - {name: low, command: [t], priority: 1}\n"
                     "  - {name: huge, command: [t], priority: 9, resources: {cpus: 64}}\n"
                     "  - {name: high, command: [t], priority: 5}\n"
                     "  - {name: mid, command: [t], priority: 3}\n");
    h_flush(&h);
    CHECK_EQ_INT(T(r, "high")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r, "huge")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "mid")->state, TY_TASK_QUEUED);
    CHECK(w->used_cpus == 1);
    CHECK_STR(T(r, "huge")->reason, "no worker can run it: it needs 64 CPUs; the largest worker "
                                    "has 1 CPUs, 1000 MB, 0 GPUs");
    CHECK_EQ_INT(T(r, "high")->reason == NULL, 1);
    uint64_t marks = r->version;
    size_t notes = h.notifies;
    h.c->need_schedule = 1;
    h_flush(&h); /* nothing changed: nothing said again */
    CHECK_EQ_INT(r->version, marks);
    CHECK_EQ_INT(h.notifies, notes);
    h_finish(&h, T(r, "high"), 0);
    h_flush(&h);
    CHECK_EQ_INT(T(r, "mid")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r, "low")->state, TY_TASK_QUEUED);
    CHECK_STR(T(r, "low")->reason, "waiting for room: it needs 1 CPUs");
    CHECK_EQ_INT(T(r, "mid")->reason == NULL, 1);
    h_finish(&h, T(r, "mid"), 1); /* an outcome's reason is not a wait */
    CHECK_STR(T(r, "mid")->reason, "exit code 1");
    h_register(&h, "big", 64, 0, NULL); /* a bigger worker joins */
    h_flush(&h);
    CHECK_EQ_INT(T(r, "huge")->state, TY_TASK_RUNNING);
    CHECK_STR(T(r, "huge")->worker, "big");
    CHECK_EQ_INT(T(r, "huge")->reason == NULL, 1);
    CHECK_EQ_INT(T(r, "low")->state, TY_TASK_RUNNING);
    h_fini(&h);
}

static void test_mpi_reasons(void) {
    h_t h;
    h_init(&h, 7);
    h_register(&h, "w1", 2, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: m\ntasks:\n"
                               "  - {name: wide, command: [t], kind: mpi, np: 8, "
                               "resources: {cpus: 1, mem_mb: 100}}\n"
                               "  - {name: zoned, command: [t], resources: {labels: {zone: c}}}\n");
    h_flush(&h);
    CHECK_STR(T(r, "wide")->reason, "no worker can run it: it needs 8 CPUs, 800 MB (8 ranks); "
                                    "the largest worker has 2 CPUs, 1000 MB, 0 GPUs");
    CHECK_STR(T(r, "zoned")->reason, "no worker can run it: none has the labels it asks for "
                                     "(1 CPUs)");
    CHECK(ty_is_wait_reason(T(r, "wide")->reason));
    CHECK(!ty_is_wait_reason("exit code 1") && !ty_is_wait_reason(NULL));
    h_fini(&h);
}

/* A task no worker could hold says so from the moment it is queued; a
 * worker that comes or goes changes that for every queued task. */
static void test_reasons_deep_in_the_queue(void) {
    h_t h;
    h_init(&h, 7);
    h_register(&h, "w1", 1, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: d\ntasks:\n"
                               "  - {name: a, command: [t], priority: 9}\n"
                               "  - {name: b, command: [t], priority: 5}\n"
                               "  - {name: wide, command: [t], priority: 1, kind: mpi, np: 4, "
                               "resources: {cpus: 1}}\n");
    const char *never = "no worker can run it: it needs 4 CPUs (4 ranks); the largest worker "
                        "has 1 CPUs, 1000 MB, 0 GPUs";
    CHECK_STR(T(r, "wide")->reason, never); /* at once, before any pass */
    h_flush(&h);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    CHECK_STR(T(r, "b")->reason, "waiting for room: it needs 1 CPUs");
    CHECK_STR(T(r, "wide")->reason, never);
    /* a 4-CPU worker joins, busy with a 4-CPU task of another run */
    ty_run_t *r2 = h_submit(&h, "name: e\ntasks:\n"
                                "  - {name: x, command: [t], priority: 99, kind: mpi, np: 4, "
                                "resources: {cpus: 1}}\n");
    h_register(&h, "big", 4, 0, NULL);
    uint64_t v = r->version;
    h_flush(&h);
    CHECK_STR(T(r2, "x")->worker, "big");
    CHECK_EQ_INT(T(r, "wide")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "wide")->reason == NULL, 1); /* waits its turn, no longer "never" */
    CHECK(r->version > v);
    CHECK(!h.c->workers_changed);
    /* it leaves: never again */
    Ty__Deregister d = TY__DEREGISTER__INIT;
    d.reason = "stopping";
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_DEREGISTER;
    env.deregister = &d;
    h_worker_msg(&h, "big", &env);
    h_flush(&h);
    CHECK_STR(T(r, "wide")->reason, never);
    CHECK_EQ_INT(T(r2, "x")->state, TY_TASK_QUEUED); /* re-queued, not failed */
    CHECK_EQ_INT(T(r2, "x")->lost, 1);
    CHECK_STR(T(r2, "x")->reason, "worker big left"); /* why it went back */
    h_fini(&h);
}

static void test_gpu_and_labels(void) {
    h_t h;
    h_init(&h, 7);
    h_register(&h, "cpu", 8, 0, NULL);
    ty_worker_t *g = h_register(&h, "gpu", 2, 2, "b");
    ty_run_t *r = h_submit(&h, "name: g\ntasks:\n"
                               "  - {name: g1, command: [t], resources: {gpus: 1}}\n"
                               "  - {name: g2, command: [t], resources: {gpus: 1}}\n"
                               "  - {name: g3, command: [t], resources: {gpus: 1, cpus: 0.1}}\n"
                               "  - {name: zb, command: [t], resources: {labels: {zone: b}, "
                               "cpus: 0.5}}\n"
                               "  - {name: zc, command: [t], resources: {labels: {zone: c}}}\n");
    h_flush(&h);
    CHECK_STR(T(r, "g1")->worker, "gpu");
    CHECK_STR(T(r, "g2")->worker, "gpu");
    CHECK_EQ_INT(T(r, "g1")->n_gpu, 1);
    CHECK(T(r, "g1")->gpu_ids[0] != T(r, "g2")->gpu_ids[0]);
    CHECK_EQ_INT(T(r, "g3")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "zb")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "zc")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(__builtin_popcountll(g->gpu_busy), 2);
    h_finish(&h, T(r, "g1"), 0);
    h_flush(&h);
    CHECK_STR(T(r, "g3")->worker, "gpu");
    CHECK_STR(T(r, "zb")->worker, "gpu");
    CHECK_EQ_INT(T(r, "zc")->state, TY_TASK_QUEUED);
    h_fini(&h);
}

static void test_retries_and_trigger_rules(void) {
    h_t h;
    h_init(&h, 7);
    ty_worker_t *w = h_register(&h, "w1", 8, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: f\ntasks:\n"
                               "  - {name: x, command: [t], retries: 2}\n"
                               "  - {name: ok, command: [t]}\n"
                               "  - {name: child, command: [t], depends_on: [x]}\n"
                               "  - {name: grandchild, command: [t], depends_on: [child]}\n"
                               "  - {name: done, command: [t], depends_on: [x], "
                               "trigger_rule: all_done}\n"
                               "  - {name: onfail, command: [t], depends_on: [ok], "
                               "trigger_rule: one_failed}\n"
                               "  - {name: nofail, command: [t], depends_on: [onfail], "
                               "trigger_rule: none_failed}\n");
    h_flush(&h);
    h_finish(&h, T(r, "ok"), 0);
    CHECK_EQ_INT(T(r, "onfail")->state, TY_TASK_SKIPPED);
    CHECK_EQ_INT(T(r, "nofail")->state, TY_TASK_QUEUED); /* skipped is not failed */
    for (unsigned a = 1; a <= 3; a++) {
        h_flush(&h);
        CHECK_EQ_INT(T(r, "x")->state, TY_TASK_RUNNING);
        CHECK_EQ_INT(T(r, "x")->attempt, a);
        h_finish(&h, T(r, "x"), 3);
        if (a == 1) { /* a retry that must wait keeps why its attempt failed */
            double keep = w->used_cpus;
            w->used_cpus = w->cpus;
            h_flush(&h);
            CHECK_EQ_INT(T(r, "x")->state, TY_TASK_QUEUED);
            CHECK_STR(T(r, "x")->reason, "exit code 3");
            w->used_cpus = keep;
            h.c->need_schedule = 1;
        }
    }
    CHECK_EQ_INT(T(r, "x")->state, TY_TASK_FAILED);
    CHECK_EQ_INT(T(r, "x")->failures, 3);
    CHECK_STR(T(r, "x")->reason, "exit code 3");
    CHECK_EQ_INT(T(r, "child")->state, TY_TASK_UPSTREAM_FAILED);
    CHECK_EQ_INT(T(r, "grandchild")->state, TY_TASK_UPSTREAM_FAILED);
    h_flush(&h);
    h_finish(&h, T(r, "done"), 0);
    h_finish(&h, T(r, "nofail"), 0);
    CHECK_EQ_INT(r->state, TY_RUN_FAILED);
    h_fini(&h);
}

/* A retry waits out its back-off: the core's deadline says when, and the
 * TICK at that time queues and places it. */
static void test_backoff_deadline_fires(void) {
    h_t h;
    h_init(&h, 7);
    h_register(&h, "w1", 8, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: b\ntasks:\n"
                               "  - {name: x, command: [t], retries: 2, retry_backoff_s: 60}\n");
    h_flush(&h);
    int64_t before = h.now.wall_ms;
    h_finish(&h, T(r, "x"), 1);
    h_flush(&h);
    CHECK_EQ_INT(T(r, "x")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "x")->not_before_ms, before + 60000);
    CHECK_EQ_INT(h.c->next_delay, before + 60000);
    for (int i = 0; i < 59; i++) { /* heartbeats keep w1 alive for a minute */
        h_advance(&h, 1000);
        h_heartbeat(&h, "w1");
    }
    h_flush(&h);
    CHECK_EQ_INT(T(r, "x")->state, TY_TASK_QUEUED); /* not before its back-off */
    h_advance(&h, 999);
    h_heartbeat(&h, "w1");
    h_advance(&h, 2);
    CHECK_EQ_INT(T(r, "x")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r, "x")->attempt, 2);
    /* the second back-off doubles */
    before = h.now.wall_ms;
    h_finish(&h, T(r, "x"), 1);
    CHECK_EQ_INT(T(r, "x")->not_before_ms, before + 120000);
    h_fini(&h);
}

/* Heartbeats keep a worker; silence past its lease loses it and re-queues
 * its attempts; the lost limit fails a task; cancel ends everything. */
static void test_lease_loss_and_cancel(void) {
    h_t h;
    h_init(&h, 7);
    ty_worker_t *w = h_register(&h, "w1", 2, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: c\ntasks:\n"
                               "  - {name: a, command: [t]}\n"
                               "  - {name: b, command: [t]}\n"
                               "  - {name: c, command: [t], depends_on: [a]}\n");
    h_flush(&h);
    CHECK_EQ_INT(w->running, 2);
    for (int i = 0; i < 5; i++) {
        h_advance(&h, 500);
        h_heartbeat(&h, "w1");
    }
    CHECK(w->up);
    h_advance(&h, 1000); /* silent for its 1000 ms lease: not yet */
    CHECK(w->up);
    h_advance(&h, 50); /* past it, at the next sweep (every heartbeat/2) */
    CHECK(!w->up);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(r, "a")->lost, 1);
    CHECK_STR(T(r, "a")->reason, "worker w1 lost");
    CHECK_EQ_INT(w->running, 0);
    /* a heartbeat from the lost worker is answered with ReRegister */
    h_clear_sent(&h);
    h_heartbeat(&h, "w1");
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_REREGISTER), 1);
    h_register(&h, "w1", 2, 0, NULL);
    h_flush(&h);
    CHECK_EQ_INT(T(r, "a")->attempt, 2);
    /* its old attempt's result is stale: acknowledged, ignored */
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = r->id;
    ref.task = "a";
    ref.attempt = 1;
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = &ref;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RESULT;
    env.result = &res;
    h_clear_sent(&h);
    h_worker_msg(&h, "w1", &env);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_RESULT_ACK), 1);
    h_advance(&h, 1100); /* lost again: lost_limit 2 fails both */
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_FAILED);
    CHECK_EQ_INT(T(r, "b")->state, TY_TASK_FAILED);
    CHECK_EQ_INT(T(r, "c")->state, TY_TASK_UPSTREAM_FAILED);
    CHECK_EQ_INT(r->state, TY_RUN_FAILED);
    ty_ev_t cancel = {
        .kind = TY_EV_CANCEL, .peer = (const uint8_t *)"cli", .peer_len = 3, .run_id = r->id};
    CHECK_EQ_INT(h_step(&h, cancel), TY_ESTATE); /* over already */
    h_register(&h, "w1", 2, 0, NULL);
    r = h_submit(&h, "name: c2\ntasks:\n  - {name: b, command: [t]}\n"
                     "  - {name: d, command: [t], depends_on: [b]}\n");
    h_flush(&h);
    CHECK_EQ_INT(T(r, "b")->state, TY_TASK_RUNNING);
    h_clear_sent(&h);
    cancel.run_id = r->id;
    CHECK_EQ_INT(h_step(&h, cancel), 0);
    CHECK_EQ_INT(h_count(&h, "cli", TY__ENVELOPE__BODY_CANCEL_REPLY), 0); /* not yet durable */
    h_flush(&h);
    CHECK_EQ_INT(r->state, TY_RUN_CANCELLED);
    CHECK_EQ_INT(T(r, "b")->state, TY_TASK_CANCELLED);
    CHECK_EQ_INT(T(r, "d")->state, TY_TASK_CANCELLED);
    CHECK_EQ_INT(w->running, 0);
    CHECK(w->used_cpus == 0);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_CANCEL_TASK), 1);
    CHECK_EQ_INT(h_count(&h, "cli", TY__ENVELOPE__BODY_CANCEL_REPLY), 1);
    CHECK_EQ_INT(h_step(&h, cancel), TY_ESTATE);
    h_fini(&h);
}

/* A run that ends is indexed under done/<its end, in seconds>; the core
 * asks for what ended before its history to be dropped, every gc_every_ms. */
static void test_history_drop(void) {
    h_t h;
    ty_core_opts_t o = h_opts(7);
    o.history_ms = 2000;
    o.gc_every_ms = 500;
    h_open(&h, &o);
    h_step(&h, (ty_ev_t){.kind = TY_EV_SERVE});
    h_register(&h, "w1", 1, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: hd\ntasks:\n  - {name: a, command: [t]}\n");
    h_flush(&h);
    h_advance(&h, 1);
    CHECK_EQ_INT(h.drops, 1); /* a first look at once, before anything ended */
    h_finish(&h, T(r, "a"), 0);
    h_flush(&h);
    char *key = ty_runs_done_key(r->id, r->finished_ms);
    CHECK(zhashx_lookup(h.kv, key) != NULL);
    CHECK(strcmp(h.drop_before, key) < 0); /* not yet */
    for (int i = 0; i < 35; i++) {
        h_advance(&h, 100);
        h_heartbeat(&h, "w1");
    }
    CHECK(h.drops >= 7);
    CHECK(strcmp(h.drop_before, key) > 0); /* past the history (to the second) */
    free(key);
    h_fini(&h);
}

/* A new master rebuilds from the store: an attempt its worker reports is
 * adopted (not run again); one nobody reports is re-queued after one
 * worker lease; queued and waiting tasks carry on. */
static void test_recovery_and_grace(void) {
    h_t a;
    h_init(&a, 7);
    h_register(&a, "w1", 4, 0, NULL);
    h_register(&a, "w2", 4, 0, NULL);
    ty_run_t *r = h_submit(&a, "name: rc\ntasks:\n"
                               "  - {name: x, command: [t], resources: {cpus: 4}}\n"
                               "  - {name: y, command: [t], resources: {cpus: 4}}\n"
                               "  - {name: z, command: [t], depends_on: [x]}\n");
    h_flush(&a);
    char *xw = ty_xstrdup(T(r, "x")->worker), *yw = ty_xstrdup(T(r, "y")->worker);
    CHECK(strcmp(xw, yw) != 0);
    char *rid = ty_xstrdup(r->id);
    h_t b;
    h_restart(&a, &b, 8);
    ty_run_t *r2 = ty_core_find_run(b.c, rid);
    CHECK(r2 != NULL);
    CHECK_EQ_INT(T(r2, "x")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r2, "z")->state, TY_TASK_WAITING);
    /* x's worker re-registers running x#1; y's stays silent */
    Ty__TaskRef ref = TY__TASK_REF__INIT, *refs[1] = {&ref};
    ref.run_id = rid;
    ref.task = "x";
    ref.attempt = 1;
    h_register_full(&b, xw, 4, 0, NULL, refs, 1);
    h_flush(&b);
    CHECK_EQ_INT(T(r2, "x")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r2, "x")->attempt, 1); /* adopted, not re-run */
    CHECK_EQ_INT(h_count(&b, xw, TY__ENVELOPE__BODY_DISPATCH), 0);
    CHECK_EQ_INT(ty_core_find_worker(b.c, xw)->running, 1);
    for (int i = 0; i < 9; i++) {
        h_advance(&b, 100);
        h_heartbeat(&b, xw);
    }
    CHECK_EQ_INT(T(r2, "y")->state, TY_TASK_RUNNING); /* within the grace */
    h_advance(&b, 150);
    h_heartbeat(&b, xw);
    CHECK_EQ_INT(T(r2, "y")->state, TY_TASK_QUEUED);
    CHECK_STR(T(r2, "y")->reason, "its worker did not re-register after a master restart");
    h_finish(&b, T(r2, "x"), 0);
    h_flush(&b); /* y (queued first) takes x's worker; z waits behind it */
    CHECK_EQ_INT(T(r2, "y")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r2, "y")->attempt, 2);
    CHECK_STR(T(r2, "y")->worker, xw);
    CHECK_EQ_INT(T(r2, "z")->state, TY_TASK_QUEUED);
    /* the new master's dispatches carry its epoch */
    int seen = 0;
    for (size_t i = 0; i < b.nsent; i++)
        if (b.sent[i].env->body_case == TY__ENVELOPE__BODY_DISPATCH) {
            CHECK_EQ_INT(b.sent[i].env->dispatch->ref->epoch, 8);
            seen++;
        }
    CHECK(seen >= 1);
    free(xw);
    free(yw);
    free(rid);
    h_fini(&a);
    h_fini(&b);
}

/* Nothing leaves before what it reports is durable; batches in flight
 * never write one key twice; outboxes leave in batch order; a failed batch
 * is sent again after the retry delay; a failed compare fences the core. */
static void test_write_ahead(void) {
    h_t h;
    h_init(&h, 7);
    h.auto_commit = 0;
    h_register(&h, "w1", 8, 0, NULL);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_REGISTER_ACK), 0);
    h_flush(&h); /* batch 1: workers/w1 */
    CHECK_EQ_INT(h.nheld, 1);
    h_register(&h, "w2", 8, 0, NULL);
    h_flush(&h); /* batch 2: workers/w2, no conflict: also in flight */
    CHECK_EQ_INT(h.nheld, 2);
    h_register(&h, "w1", 8, 0, "z"); /* labels changed: written again */
    h_flush(&h);                     /* workers/w1 is in flight: waits */
    CHECK_EQ_INT(h.nheld, 2);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_REGISTER_ACK), 0);
    h_answer(&h, 1, 0); /* batch 2 commits first: its ack waits for batch 1 */
    CHECK_EQ_INT(h_count(&h, "w2", TY__ENVELOPE__BODY_REGISTER_ACK), 0);
    h_answer(&h, 0, TY_EETCD); /* batch 1 fails: retried, nothing released */
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_REGISTER_ACK), 0);
    CHECK_EQ_INT(h.nheld, 0);
    CHECK(ty_core_deadline(h.c) <= h.now.mono_ms + 500);
    h_advance(&h, 499);
    h_heartbeat(&h, "w1");
    h_heartbeat(&h, "w2");
    CHECK_EQ_INT(h.nheld, 0);
    h_advance(&h, 1);
    CHECK_EQ_INT(h.nheld, 1); /* batch 1 again */
    h_answer(&h, 0, 0);
    /* both acks leave now, in order; then the third batch goes */
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_REGISTER_ACK), 1);
    CHECK_EQ_INT(h_count(&h, "w2", TY__ENVELOPE__BODY_REGISTER_ACK), 1);
    size_t i1 = 0, i2 = 0;
    for (size_t i = 0; i < h.nsent; i++) {
        if (h.sent[i].env->body_case != TY__ENVELOPE__BODY_REGISTER_ACK)
            continue;
        if (!strcmp(h.sent[i].peer, "w1") && !i1)
            i1 = i + 1;
        if (!strcmp(h.sent[i].peer, "w2"))
            i2 = i + 1;
    }
    CHECK(i1 && i2 && i1 < i2);
    CHECK_EQ_INT(h.nheld, 1);
    h_answer(&h, 0, 0);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_REGISTER_ACK), 2);
    zchunk_t *rec = zhashx_lookup(h.kv, "workers/w1");
    Ty__WorkerRecord *wr = ty__worker_record__unpack(NULL, zchunk_size(rec), zchunk_data(rec));
    CHECK(wr && wr->total && wr->total->n_labels == 1);
    ty__worker_record__free_unpacked(wr, NULL);
    /* the same registration again writes nothing */
    size_t txns = h.txns;
    h_register(&h, "w1", 8, 0, "z");
    h_flush(&h);
    CHECK_EQ_INT(h.txns, txns);
    /* a dispatch waits for its task's record */
    ty_run_t *r = h_submit(&h, "name: wa\ntasks:\n  - {name: a, command: [t]}\n");
    h_flush(&h);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(h_count(&h, T(r, "a")->worker, TY__ENVELOPE__BODY_DISPATCH), 0);
    CHECK_EQ_INT(h_count(&h, "cli", TY__ENVELOPE__BODY_SUBMIT_REPLY), 0);
    CHECK_EQ_INT(h.nheld, 1);
    /* another master took over: the compare fails, the core stops */
    h_answer(&h, 0, TY_ESTALE);
    CHECK_EQ_INT(h.fenced, 1);
    CHECK_EQ_INT(h_count(&h, "cli", TY__ENVELOPE__BODY_SUBMIT_REPLY), 0);
    CHECK_EQ_INT(h_step(&h, (ty_ev_t){.kind = TY_EV_FLUSH}), TY_ESTALE);
    CHECK_EQ_INT(ty_core_deadline(h.c), 0);
    h_fini(&h);
}

/* A txn that reached the store before the one it follows (TY_ECONFLICT:
 * the chain) goes again at once, without the retry delay, while the one
 * before it is on its way; after a plain failure it waits for the retry. */
static void test_overtaken_txn_goes_again(void) {
    h_t h;
    h_init(&h, 7);
    h.auto_commit = 0;
    h_register(&h, "w1", 8, 0, NULL);
    h_flush(&h);
    h_register(&h, "w2", 8, 0, NULL);
    h_flush(&h);
    CHECK_EQ_INT(h.nheld, 2);
    CHECK_EQ_INT(h.held[1].seq, h.held[0].seq + 1);
    uint64_t second = h.held[1].seq;
    h_answer(&h, 1, TY_ECONFLICT); /* w2's txn arrived first */
    CHECK_EQ_INT(h.c->behind, 1);
    CHECK_EQ_INT(h.nheld, 2); /* sent again at once, with the same number */
    CHECK_EQ_INT(h.held[1].seq, second);
    h_answer(&h, 0, TY_EETCD);     /* w1's fails: it waits for the retry delay */
    h_answer(&h, 0, TY_ECONFLICT); /* and w2's waits behind it */
    CHECK_EQ_INT(h.nheld, 0);
    h_advance(&h, 500);
    CHECK_EQ_INT(h.nheld, 2); /* both again, in order */
    CHECK(h.held[0].seq < h.held[1].seq);
    h_answer(&h, 0, 0);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_REGISTER_ACK), 1);
    CHECK_EQ_INT(h_count(&h, "w2", TY__ENVELOPE__BODY_REGISTER_ACK), 0);
    h_answer(&h, 0, 0);
    CHECK_EQ_INT(h_count(&h, "w2", TY__ENVELOPE__BODY_REGISTER_ACK), 1);
    h_fini(&h);
}

/* Batches past 120 operations are split into several txns; the outbox
 * waits for all of them. */
static void test_large_batch_splits(void) {
    h_t h;
    h_init(&h, 7);
    h.auto_commit = 0;
    ty_buf_t y = {0};
    ty_buf_printf(&y, "name: big\ntasks:\n");
    for (int i = 0; i < 150; i++)
        ty_buf_printf(&y, "  - {name: t%d, command: [t]}\n", i);
    h_submit(&h, y.data);
    ty_buf_free(&y);
    h_flush(&h);
    CHECK_EQ_INT(h.nheld, 2); /* 151 records */
    CHECK_EQ_INT(h.held[0].nputs + h.held[1].nputs, 151);
    h_answer(&h, 0, 0);
    CHECK_EQ_INT(h_count(&h, "cli", TY__ENVELOPE__BODY_SUBMIT_REPLY), 0);
    h_answer(&h, 0, 0);
    CHECK_EQ_INT(h_count(&h, "cli", TY__ENVELOPE__BODY_SUBMIT_REPLY), 1);
    h_fini(&h);
}

/* Every field of a worker's message is checked before use. */
static void test_validation(void) {
    h_t h;
    h_init(&h, 7);
    h_register(&h, "w1", 4, 65, NULL); /* more GPUs than the bitmask holds */
    CHECK(ty_core_find_worker(h.c, "w1") == NULL);
    CHECK_EQ_INT(h.c->rejected_msgs, 1);
    CHECK_STR(h.c->last_reject, "register: more than 64 GPUs");
    h_register(&h, "../etc", 4, 0, NULL);
    CHECK_EQ_INT(h.c->rejected_msgs, 2);
    h_register(&h, "w1", -1, 0, NULL);
    h_register(&h, "w1", 1.0 / 0.0, 0, NULL);
    CHECK_EQ_INT(h.c->rejected_msgs, 4);
    CHECK(ty_core_find_worker(h.c, "w1") == NULL);
    ty_worker_t *w = h_register(&h, "w1", 4, 64, NULL);
    CHECK(w && w->gpus == 64);
    /* a result without a task reference */
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RESULT;
    env.result = &res;
    h_worker_msg(&h, "w1", &env);
    CHECK_EQ_INT(h.c->rejected_msgs, 5);
    /* a run of 64 one-GPU tasks fills exactly the 64 GPUs */
    ty_buf_t y = {0};
    ty_buf_printf(&y, "name: g\ntasks:\n");
    for (int i = 0; i < 65; i++)
        ty_buf_printf(&y, "  - {name: t%d, command: [t], resources: {gpus: 1, cpus: 0.01}}\n", i);
    ty_run_t *r = h_submit(&h, y.data);
    ty_buf_free(&y);
    h_flush(&h);
    CHECK_EQ_INT(w->gpu_busy, ~0ULL);
    CHECK_EQ_INT(T(r, "t64")->state, TY_TASK_QUEUED);
    h_fini(&h);
}

/* The same events at the same times give the same effects. */
static void test_deterministic(void) {
    char *ids[2];
    for (int k = 0; k < 2; k++) {
        h_t h;
        h_init(&h, 7);
        h_register(&h, "w1", 2, 0, NULL);
        h_register(&h, "w2", 2, 0, NULL);
        ty_run_t *r = h_submit(&h, "name: det\ntasks:\n  - {name: a, command: [t]}\n"
                                   "  - {name: b, command: [t]}\n  - {name: c, command: [t]}\n");
        h_flush(&h);
        ty_buf_t b = {0};
        ty_buf_printf(&b, "%s", r->id);
        for (size_t i = 0; i < h.nsent; i++)
            ty_buf_printf(&b, " %s:%d", h.sent[i].peer, (int)h.sent[i].env->body_case);
        ty_buf_printf(&b, " %s %s %s", T(r, "a")->worker, T(r, "b")->worker, T(r, "c")->worker);
        ids[k] = ty_xstrdup(b.data);
        ty_buf_free(&b);
        h_fini(&h);
    }
    CHECK_STR(ids[0], ids[1]);
    free(ids[0]);
    free(ids[1]);
}

/* A task succeeds only with every declared output (a path by name, a glob
 * by one match at least); the outputs are in its record, also after a
 * restart, and the Dispatch names what to upload. */
static void test_outputs(void) {
    h_t h;
    h_init(&h, 5);
    h_register(&h, "w1", 4, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: o\ntasks:\n  - name: a\n    command: [t]\n    retries: 1\n"
                               "    outputs: [m.bin, \"plots/*.png\"]\n");
    h_flush(&h);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    const Ty__Envelope *d = NULL;
    for (size_t i = 0; i < h.nsent; i++)
        if (h.sent[i].env->body_case == TY__ENVELOPE__BODY_DISPATCH)
            d = h.sent[i].env;
    CHECK(d && d->dispatch->n_outputs == 2 && strcmp(d->dispatch->outputs[1], "plots/*.png") == 0);
    const char *only_model[] = {"m.bin", "plots"}; /* "plots" is no match of the glob */
    h_finish_outputs(&h, T(r, "a"), only_model, 2);
    h_flush(&h);
    CHECK_EQ_INT(T(r, "a")->failures, 1);
    CHECK_STR(T(r, "a")->reason, "output plots/*.png not found");
    CHECK_EQ_INT(T(r, "a")->noutputs, 0);
    h_flush(&h); /* the retry */
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    const char *all[] = {"m.bin", "plots/loss.png", "extra"};
    h_finish_outputs(&h, T(r, "a"), all, 3);
    h_flush(&h);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_SUCCEEDED);
    CHECK_EQ_INT(T(r, "a")->noutputs, 3);
    /* the run's budget: 10 + 11 + 12 bytes stored */
    char *why = NULL;
    CHECK_EQ_INT(ty_runs_upload_fits(h.c, r->id, "x", 67, 100, &why), 0);
    CHECK_EQ_INT(ty_runs_upload_fits(h.c, r->id, "x", 68, 100, &why), TY_ETOOBIG);
    CHECK(why && strstr(why, "would hold 101 bytes of artifacts with x, over the master's "
                             "--max-run-artifact-bytes 100") != NULL);
    free(why);
    CHECK_EQ_INT(ty_runs_upload_fits(h.c, r->id, "x", 1000, 0, &why), 0); /* no limit */
    /* a consumer gets the stored content in its Dispatch; one whose producer
     * failed (all_done) fails itself, naming the input */
    ty_run_t *r2 = h_submit(&h, "name: io\ntasks:\n  - name: p\n    command: [t]\n"
                                "    outputs: [m.bin]\n  - name: q\n    command: [t]\n"
                                "    outputs: [m.bin]\n  - name: c\n    command: [t]\n"
                                "    trigger_rule: all_done\n"
                                "    inputs: {m: p/m.bin, n: q/m.bin}\n");
    h_flush(&h);
    const char *model[] = {"m.bin"};
    h_finish_outputs(&h, T(r2, "p"), model, 1);
    h_finish(&h, T(r2, "q"), 1);
    h_flush(&h);
    CHECK_EQ_INT(T(r2, "c")->state, TY_TASK_FAILED);
    CHECK_STR(T(r2, "c")->reason, "input n: q/m.bin was not produced");
    ty_run_t *r3 = h_submit(&h, "name: io2\ntasks:\n  - name: p\n    command: [t]\n"
                                "    outputs: [m.bin]\n  - name: c\n    command: [t]\n"
                                "    inputs: {model: p/m.bin}\n");
    h_flush(&h);
    h_finish_outputs(&h, T(r3, "p"), model, 1);
    h_clear_sent(&h);
    h_flush(&h);
    CHECK_EQ_INT(T(r3, "c")->state, TY_TASK_RUNNING);
    d = NULL;
    for (size_t i = 0; i < h.nsent; i++)
        if (h.sent[i].env->body_case == TY__ENVELOPE__BODY_DISPATCH)
            d = h.sent[i].env;
    CHECK(d && d->dispatch->n_inputs == 1);
    if (d && d->dispatch->n_inputs == 1) {
        const Ty__InputRef *in = d->dispatch->inputs[0];
        CHECK_STR(in->key, "model");
        CHECK_STR(in->path, "inputs/model/m.bin");
        CHECK_STR(in->source, "p/m.bin");
        CHECK_EQ_INT(in->size, 10);
        CHECK_EQ_INT(strlen(in->sha256), 64);
    }
    h_t b;
    h_restart(&h, &b, 6);
    ty_task_t *t = ty_core_find_task(b.c, r->id, "a");
    CHECK(t && t->noutputs == 3 && strcmp(t->outputs[1]->name, "plots/loss.png") == 0 &&
          t->outputs[2]->size == 12);
    h_fini(&b);
    h_fini(&h);
}

int main(void) {
    test_outputs();
    test_diamond();
    test_priority_and_backfill();
    test_mpi_reasons();
    test_reasons_deep_in_the_queue();
    test_gpu_and_labels();
    test_retries_and_trigger_rules();
    test_backoff_deadline_fires();
    test_lease_loss_and_cancel();
    test_recovery_and_grace();
    test_history_drop();
    test_write_ahead();
    test_large_batch_splits();
    test_overtaken_txn_goes_again();
    test_validation();
    test_deterministic();
    TEST_DONE();
}
