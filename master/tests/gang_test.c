/* MPI gangs across workers (master/core/gang.c): all ranks placed in one
 * decision or none, each part charged on its worker and dispatched there;
 * a part's failure or its worker's loss ends the gang once mpirun (part 0)
 * has ended; cancel reaches every part; part 0's launch requests reach the
 * part named; a restarted master ends a running gang; a gang that never
 * fits says so; backfill around a waiting gang ends after its window. */
#include "common/log.h"
#include "master/tests/core_harness.h"

#define GANG4                                                                                      \
    "name: g\ntasks:\n  - {name: t, kind: mpi, np: 4, ranks_per_worker: 2, command: [x]}\n"

/* The last Dispatch sent to peer, or NULL. */
static const Ty__Dispatch *dispatch_to(const h_t *h, const char *peer) {
    for (size_t i = h->nsent; i-- > 0;)
        if (h->sent[i].env && h->sent[i].env->body_case == TY__ENVELOPE__BODY_DISPATCH &&
            strcmp(h->sent[i].peer, peer) == 0)
            return h->sent[i].env->dispatch;
    return NULL;
}

/* worker reports a result of t's current attempt (its part there). */
static void result_from(h_t *h, const char *worker, ty_task_t *t, int code, int sig) {
    h_result_from(h, worker, t, code, sig);
    h_flush(h);
}

static void part_launch(h_t *h, const char *from, ty_task_t *t, uint32_t part) {
    Ty__TaskRef ref = h_ref(t);
    Ty__PartLaunch pl = TY__PART_LAUNCH__INIT;
    pl.ref = &ref;
    pl.part = part;
    pl.command = "orted -mca ess env";
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_PART_LAUNCH;
    env.part_launch = &pl;
    h_worker_msg(h, from, &env);
    h_flush(h);
}

static void test_placement_all_or_nothing(void) {
    static h_t h;
    h_init(&h, 1);
    ty_worker_t *w1 = h_register(&h, "w1", 2, 0, NULL);
    ty_worker_t *w2 = h_register(&h, "w2", 2, 0, NULL);
    ty_worker_t *w3 = h_register(&h, "w3", 2, 0, NULL);
    ty_run_t *r = h_submit(&h, GANG4);
    h_flush(&h);
    ty_task_t *t = T(r, "t");
    CHECK_EQ_INT(t->state, TY_TASK_RUNNING);
    CHECK_STR(t->worker, "w1"); /* most room, then registration order */
    CHECK_EQ_INT(t->nparts, 1);
    CHECK(t->parts[0].w == w2);
    CHECK(w1->used_cpus == 2 && w2->used_cpus == 2 && w3->used_cpus == 0);
    const Ty__Dispatch *d0 = dispatch_to(&h, "w1"), *d1 = dispatch_to(&h, "w2");
    CHECK(d0 && d1 && !dispatch_to(&h, "w3"));
    CHECK_EQ_INT(d0->part, 0);
    CHECK_EQ_INT(d1->part, 1);
    CHECK_EQ_INT(d0->n_parts, 2);
    CHECK_STR(d0->parts[0]->worker, "w1");
    CHECK_STR(d0->parts[1]->worker, "w2");
    CHECK_STR(d0->parts[1]->address, "h"); /* no --address: the host name */
    CHECK_EQ_INT(d0->parts[0]->ranks + d0->parts[1]->ranks, 4);
    CHECK_EQ_INT(d0->np, 4);

    /* a second gang: two free CPUs are not four; nothing is held for it */
    ty_run_t *r2 = h_submit(&h, GANG4);
    h_flush(&h);
    ty_task_t *t2 = T(r2, "t");
    CHECK_EQ_INT(t2->state, TY_TASK_QUEUED);
    CHECK(w3->used_cpus == 0);
    CHECK_CONTAINS(t2->reason, "waiting for room: it needs 4 ranks of 1 CPUs, 2 on each worker");
    CHECK_CONTAINS(t2->reason, "hold 6 of them when idle, 2 now (w3 2)");

    /* part 1's daemon ends first: its share is free; part 0's end is the task's */
    result_from(&h, "w2", t, 0, 0);
    CHECK_EQ_INT(t->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(t2->state, TY_TASK_RUNNING); /* w2 and w3 now */
    CHECK_STR(t2->worker, "w2");
    CHECK(t2->parts[0].w == w3);
    result_from(&h, "w1", t, 0, 0);
    CHECK_EQ_INT(t->state, TY_TASK_SUCCEEDED);
    CHECK(w1->used_cpus == 0 && !t->parts && !w2->parts);
    /* where it ran stays in its record (and status) once it ended */
    Ty__TaskRecord rec = TY__TASK_RECORD__INIT;
    ty_persist_task_record(t, &rec);
    CHECK_EQ_INT(rec.n_parts, 2);
    if (rec.n_parts == 2) {
        CHECK_STR(rec.parts[0]->worker, "w1");
        CHECK_STR(rec.parts[1]->worker, "w2");
        CHECK_EQ_INT(rec.parts[0]->ranks + rec.parts[1]->ranks, 4);
    }
    ty_persist_task_record_clear(&rec);
    /* ... and is read back so from the store */
    size_t len = 0;
    uint8_t *buf = NULL;
    ty_persist_task_record(t, &rec);
    len = ty__task_record__get_packed_size(&rec);
    buf = ty_xmalloc(len);
    ty__task_record__pack(&rec, buf);
    ty_persist_task_record_clear(&rec);
    ty_task_ended_parts_free(t);
    ty_persist_decode_task(r, "t", buf, len);
    free(buf);
    CHECK_EQ_INT(t->nended_parts, 2);
    CHECK_EQ_INT(t->was_gang, 0); /* ended: nothing to adopt */
    h_fini(&h);
}

static void test_part_failure_and_loss(void) {
    static h_t h;
    h_init(&h, 1);
    h_register(&h, "w1", 2, 0, NULL);
    ty_worker_t *w2 = h_register(&h, "w2", 2, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: g\ntasks:\n  - {name: t, kind: mpi, np: 4, "
                               "ranks_per_worker: 2, retries: 1, command: [x]}\n");
    h_flush(&h);
    ty_task_t *t = T(r, "t");
    CHECK_EQ_INT(t->attempt, 1);

    /* part 1 fails: mpirun is cancelled, and its end fails the attempt */
    h_clear_sent(&h);
    result_from(&h, "w2", t, 3, 0);
    CHECK_EQ_INT(t->state, TY_TASK_RUNNING); /* until mpirun has ended */
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_CANCEL_TASK), 1);
    CHECK(w2->used_cpus == 0);
    result_from(&h, "w1", t, 0, 15);
    CHECK_EQ_INT(t->state, TY_TASK_RUNNING); /* the retry, on both again */
    CHECK_EQ_INT(t->attempt, 2);
    CHECK_CONTAINS(t->reason, "part 1 on worker w2: exit code 3");

    /* part 1's worker is lost: the gang ends, and runs again as a whole */
    h_clear_sent(&h);
    for (int i = 0; i < 15; i++) { /* w1 heartbeats, w2 is silent */
        h_advance(&h, 100);
        h_heartbeat(&h, "w1");
    }
    CHECK_EQ_INT(w2->up, 0);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_CANCEL_TASK), 1);
    CHECK_EQ_INT(t->state, TY_TASK_RUNNING);
    result_from(&h, "w1", t, 0, 9);
    CHECK_EQ_INT(t->state, TY_TASK_QUEUED); /* 4 ranks do not fit w1 alone */
    CHECK_EQ_INT(t->lost, 1);
    CHECK_EQ_INT(t->failures, 1);
    CHECK_CONTAINS(t->reason, "worker w2 lost (part 1 of the gang)");
    h_register(&h, "w2", 2, 0, NULL);
    h_flush(&h);
    CHECK_EQ_INT(t->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(t->attempt, 3);

    /* cancel reaches every part */
    h_clear_sent(&h);
    CHECK_EQ_INT(ty_runs_cancel(h.c, r), 0);
    h_flush(&h);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_CANCEL_TASK), 1);
    CHECK_EQ_INT(h_count(&h, "w2", TY__ENVELOPE__BODY_CANCEL_TASK), 1);
    CHECK(w2->used_cpus == 0 && ty_core_find_worker(h.c, "w1")->used_cpus == 0);
    h_fini(&h);
}

static void test_launch_relay(void) {
    static h_t h;
    h_init(&h, 1);
    h_register(&h, "w1", 2, 0, NULL);
    h_register(&h, "w2", 2, 0, NULL);
    ty_run_t *r = h_submit(&h, GANG4);
    h_flush(&h);
    ty_task_t *t = T(r, "t");
    h_clear_sent(&h);
    part_launch(&h, "w1", t, 1); /* part 0's worker asks for part 1 */
    CHECK_EQ_INT(h_count(&h, "w2", TY__ENVELOPE__BODY_PART_LAUNCH), 1);
    const Ty__PartLaunch *pl = h.sent[h.nsent - 1].env->part_launch;
    CHECK_STR(pl->command, "orted -mca ess env");
    CHECK_EQ_INT(pl->part, 1);
    CHECK_EQ_INT((int)pl->ref->epoch, 1);
    h_clear_sent(&h);
    part_launch(&h, "w2", t, 1); /* not part 0's worker */
    part_launch(&h, "w1", t, 2); /* no such part */
    part_launch(&h, "w1", t, 0);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_PART_LAUNCH) +
                     h_count(&h, "w2", TY__ENVELOPE__BODY_PART_LAUNCH),
                 0);
    h_fini(&h);
}

static void test_restart_ends_a_gang(void) {
    static h_t h, h2;
    h_init(&h, 1);
    h_register(&h, "w1", 2, 0, NULL);
    h_register(&h, "w2", 2, 0, NULL);
    ty_run_t *r = h_submit(&h, GANG4);
    h_flush(&h);
    ty_task_t *t = T(r, "t");
    char run_id[64];
    snprintf(run_id, sizeof run_id, "%s", r->id);
    h_restart(&h, &h2, 2);
    ty_task_t *t2 = ty_core_find_task(h2.c, run_id, "t");
    CHECK(t2 && t2->state == TY_TASK_RUNNING);
    /* part 0's worker comes back with it: charged for its part, cancelled */
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = run_id;
    ref.task = "t";
    ref.attempt = t->attempt;
    ref.epoch = 1;
    Ty__TaskRef *running[1] = {&ref};
    h_register_full(&h2, "w1", 2, 0, NULL, running, 1);
    h_register_full(&h2, "w2", 2, 0, NULL, running, 1);
    h_flush(&h2);
    CHECK(ty_core_find_worker(h2.c, "w1")->used_cpus == 2);
    CHECK_EQ_INT(h_count(&h2, "w1", TY__ENVELOPE__BODY_CANCEL_TASK), 1);
    CHECK_EQ_INT(h_count(&h2, "w2", TY__ENVELOPE__BODY_CANCEL_TASK), 1); /* stale part */
    result_from(&h2, "w1", t2, 0, 15);
    CHECK_EQ_INT(t2->lost, 1);
    CHECK_CONTAINS(t2->reason, "a master restart ends a gang across workers");
    CHECK_EQ_INT(t2->state, TY_TASK_RUNNING); /* placed again, as a whole */
    CHECK_EQ_INT(t2->attempt, 2);
    CHECK_EQ_INT(t2->nparts, 1);
    h_fini(&h2);
    h_fini(&h);
}

static void test_never_fits_and_backfill(void) {
    static h_t h;
    ty_core_opts_t o = h_opts(1);
    o.backfill_ms = 10000;
    h_open(&h, &o);
    h_step(&h, (ty_ev_t){.kind = TY_EV_SERVE});
    h_register(&h, "w1", 2, 0, NULL);
    h_register(&h, "w2", 2, 0, NULL);
    /* 8 ranks, 2 a worker: the cluster holds 4 */
    ty_run_t *big = h_submit(&h, "name: b\ntasks:\n  - {name: t, kind: mpi, np: 8, "
                                 "max_ranks_per_worker: 2, command: [x]}\n");
    h_flush(&h);
    CHECK_CONTAINS(T(big, "t")->reason, "no worker can run it: it needs 8 ranks of 1 CPUs, at most "
                                        "2 on each worker; the workers up hold 4 of them");
    const Ty__SubmitReply *sr = NULL; /* the submitter hears it in the reply */
    for (size_t i = 0; i < h.nsent; i++)
        if (h.sent[i].env->body_case == TY__ENVELOPE__BODY_SUBMIT_REPLY)
            sr = h.sent[i].env->submit_reply;
    CHECK(sr && sr->n_warnings == 1);
    CHECK_CONTAINS(sr->warnings[0], "t: no worker can run it: it needs 8 ranks");
    CHECK_EQ_INT(ty_runs_cancel(h.c, big), 0);

    /* one CPU busy: a 4-rank gang waits; one-CPU tasks behind it backfill ... */
    ty_run_t *small = h_submit(&h, "name: s\ntasks:\n  - {name: a, command: [x]}\n");
    h_flush(&h);
    ty_task_t *a = T(small, "a");
    CHECK_EQ_INT(a->state, TY_TASK_RUNNING);
    ty_run_t *g = h_submit(&h, "name: g\ntasks:\n  - {name: t, kind: mpi, np: 4, priority: 5, "
                               "max_ranks_per_worker: 2, command: [x]}\n");
    ty_run_t *s2 = h_submit(&h, "name: s\ntasks:\n  - {name: a, command: [x]}\n");
    h_flush(&h);
    CHECK_EQ_INT(T(g, "t")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(s2, "a")->state, TY_TASK_RUNNING); /* backfilled */
    /* ... until the gang has waited its window: then they wait for it */
    for (int i = 0; i < 110; i++) {
        h_advance(&h, 100);
        h_heartbeat(&h, "w1");
        h_heartbeat(&h, "w2");
    }
    ty_run_t *s3 = h_submit(&h, "name: s\ntasks:\n  - {name: a, command: [x]}\n");
    h_finish(&h, a, 0);
    h_flush(&h);
    CHECK_EQ_INT(T(s3, "a")->state, TY_TASK_QUEUED);
    CHECK_EQ_INT(T(g, "t")->state, TY_TASK_QUEUED);
    h_finish(&h, T(s2, "a"), 0);
    h_flush(&h);
    CHECK_EQ_INT(T(g, "t")->state, TY_TASK_RUNNING); /* all four ranks at once */
    CHECK_EQ_INT(T(s3, "a")->state, TY_TASK_QUEUED);
    h_fini(&h);
}

static void test_loader(void) {
    static const struct {
        const char *yaml, *err;
    } bad[] = {
        {"name: p\ntasks:\n  - {name: t, ranks_per_worker: 2, command: [x]}\n", "need kind: mpi"},
        {"name: p\ntasks:\n  - {name: t, kind: mpi, np: 4, ranks_per_worker: 2, "
         "max_ranks_per_worker: 2, command: [x]}\n",
         "not both"},
        {"name: p\ntasks:\n  - {name: t, kind: mpi, np: 5, ranks_per_worker: 2, command: [x]}\n",
         "np (5) is not a multiple of ranks_per_worker (2)"},
        {"name: p\ntasks:\n  - {name: t, kind: mpi, np: 4, ranks_per_worker: 0, command: [x]}\n",
         "ranks_per_worker"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Ty__PipelineSpec *spec = NULL;
        char *err = NULL;
        CHECK(ty_dag_load_string(bad[i].yaml, strlen(bad[i].yaml), "p.yaml", &spec, &err) != 0);
        CHECK_CONTAINS(err, bad[i].err);
        free(err);
    }
}

int main(void) {
    ty_log_init("gang_test", TY_LOG_WARN);
    test_placement_all_or_nothing();
    test_part_failure_and_loss();
    test_launch_relay();
    test_restart_ends_a_gang();
    test_never_fits_and_backfill();
    test_loader();
    TEST_DONE();
}
