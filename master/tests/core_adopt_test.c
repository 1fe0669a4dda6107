/* The core's side of issue 16's guarantees, driven by events alone
 * (core_harness.h): a worker's lists speak only for dispatches that left
 * before the newest message it had (a stale Register keeps an attempt, a
 * lost dispatch is found by sequence), a stale attempt a heartbeat lists is
 * cancelled, and a repeated submit request gets the run the first made,
 * also after a rebuild from the store. */
#include "master/tests/core_harness.h"

static void h_heartbeat_listing(h_t *h, const char *id, Ty__TaskRef **refs, size_t n,
                                uint64_t seen_seq) {
    Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
    hb.listed = 1;
    hb.attempts = refs;
    hb.n_attempts = n;
    hb.seen_epoch = h->c->o.epoch;
    hb.seen_seq = seen_seq;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    h_worker_msg(h, id, &env);
}

/* A dispatch lost on the way (ZeroMQ drops messages to a peer that
 * reconnected) is found from the worker's heartbeats, which list what it
 * runs and the newest master message it had received: an attempt whose
 * Dispatch left before that message, in no list, was lost.  One whose
 * Dispatch left after it may still be on its way, however long that is. */
static void test_lost_dispatch_is_found(void) {
    h_t h;
    h_init(&h, 7);
    h_register(&h, "w1", 2, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: ld\ntasks:\n  - {name: a, command: [t]}\n"
                               "  - {name: b, command: [t]}\n");
    h_flush(&h);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    uint64_t seq_a = T(r, "a")->sent_seq, seq_b = T(r, "b")->sent_seq;
    CHECK(seq_a > 0 && seq_b > 0);
    /* w1 got b's dispatch, not a's */
    Ty__TaskRef ref = TY__TASK_REF__INIT, *refs[1] = {&ref};
    ref.run_id = r->id;
    ref.task = "b";
    ref.attempt = 1;
    uint64_t before = seq_a < seq_b ? seq_a - 1 : seq_b - 1;
    for (int i = 0; i < 30; i++) { /* sent before either dispatch: no verdict */
        h_advance(&h, 100);
        h_heartbeat_listing(&h, "w1", refs, 1, before);
    }
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    h_advance(&h, 100);
    h_heartbeat_listing(&h, "w1", refs, 1, seq_a > seq_b ? seq_a : seq_b);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_QUEUED);
    CHECK_STR(T(r, "a")->reason, "its worker does not run it (the dispatch was lost)");
    CHECK_EQ_INT(T(r, "b")->state, TY_TASK_RUNNING);
    h_flush(&h);
    CHECK_EQ_INT(T(r, "a")->attempt, 2);
    /* a heartbeat without lists (an older worker) judges nothing */
    for (int i = 0; i < 15; i++) {
        h_advance(&h, 100);
        h_heartbeat(&h, "w1");
    }
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r, "b")->state, TY_TASK_RUNNING);
    h_fini(&h);
}

/* The double run of issue 16: a worker's second Register, sent before a
 * Dispatch reached it, does not list that attempt; it must not be taken
 * for "no longer runs it" (the first attempt would run on beside a second). */
static void test_stale_register_keeps_attempt(void) {
    h_t h;
    h_init(&h, 7);
    h_register(&h, "w1", 1, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: sr\ntasks:\n  - {name: a, command: [t]}\n");
    h_flush(&h);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    uint64_t seq_a = T(r, "a")->sent_seq;
    Ty__Resources res = TY__RESOURCES__INIT;
    res.cpus = 1;
    res.mem_mb = 1000;
    Ty__Register reg = TY__REGISTER__INIT;
    reg.worker_id = "w1";
    reg.total = &res;
    reg.hostname = "h";
    reg.seen_epoch = h.c->o.epoch;
    reg.seen_seq = seq_a - 1; /* sent before the Dispatch came */
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    h_worker_msg(&h, "w1", &env);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r, "a")->attempt, 1);
    reg.seen_epoch = h.c->o.epoch - 1; /* or from the master before: no verdict either */
    reg.seen_seq = seq_a + 100;
    h_worker_msg(&h, "w1", &env);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING);
    reg.seen_epoch = h.c->o.epoch; /* after it: the worker does not run it */
    reg.seen_seq = seq_a;
    h_worker_msg(&h, "w1", &env);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_QUEUED);
    CHECK_STR(T(r, "a")->reason, "worker no longer runs it");
    h_flush(&h);
    CHECK_EQ_INT(T(r, "a")->attempt, 2);
    /* a heartbeat that lists attempt 1 (it ran after all): it is cancelled */
    int cancels = h_count(&h, "w1", TY__ENVELOPE__BODY_CANCEL_TASK);
    Ty__TaskRef old = TY__TASK_REF__INIT, *olds[1] = {&old};
    old.run_id = r->id;
    old.task = "a";
    old.attempt = 1;
    h_heartbeat_listing(&h, "w1", olds, 1, T(r, "a")->sent_seq - 1);
    h_flush(&h);
    CHECK_EQ_INT(h_count(&h, "w1", TY__ENVELOPE__BODY_CANCEL_TASK), cancels + 1);
    CHECK_EQ_INT(T(r, "a")->state, TY_TASK_RUNNING); /* attempt 2: not listed, yet to arrive */
    h_fini(&h);
}

/* The run id of the last SubmitReply to "cli". */
static const char *h_last_run(const h_t *h) {
    for (size_t i = h->nsent; i-- > 0;)
        if (h->sent[i].env && h->sent[i].env->body_case == TY__ENVELOPE__BODY_SUBMIT_REPLY)
            return h->sent[i].env->submit_reply->run_id;
    return "";
}

/* A submit that repeats a request id (the CLI sending again through an
 * outage or a failover) gets the run the first one made, also from a core
 * rebuilt from the store; a new id makes a new run; an id is forgotten
 * after an hour. */
static void test_repeated_submit_gets_the_same_run(void) {
    h_t h;
    h_init(&h, 7);
    const char *y = "name: once\ntasks:\n  - {name: a, command: [t]}\n";
    char *id = ty_xstrdup(h_submit_id(&h, y, "req-1")->id);
    size_t runs = h.c->nruns;
    h_submit_id(&h, y, "req-1");
    CHECK_EQ_INT(h.c->nruns, runs);
    h_flush(&h);
    CHECK_EQ_INT(h_count(&h, "cli", TY__ENVELOPE__BODY_SUBMIT_REPLY), 2);
    CHECK_STR(h_last_run(&h), id);
    CHECK(strcmp(h_submit_id(&h, y, "req-2")->id, id) != 0);
    CHECK_EQ_INT(h.c->nruns, runs + 1);
    h_flush(&h);
    /* the run record carries it: a rebuilt core knows it too */
    h_t b;
    h_restart(&h, &b, 8);
    size_t reloaded = b.c->nruns;
    h_submit_id(&b, y, "req-1");
    CHECK_EQ_INT(b.c->nruns, reloaded);
    h_flush(&b);
    CHECK_STR(h_last_run(&b), id);
    h_advance(&b, TY_REQUEST_KEEP_MS + 1000);
    CHECK(strcmp(h_submit_id(&b, y, "req-1")->id, id) != 0);
    free(id);
    h_fini(&b);
    h_fini(&h);
}

static int h_submit_quiet(h_t *h, const char *yaml, const char *request_id, int64_t quiet_since) {
    return h_submit_ev(h, yaml, (ty_ev_t){.request_id = request_id, .quiet_since = quiet_since});
}

static int h_submit_rc(h_t *h, const char *yaml, const char *request_id) {
    return h_submit_quiet(h, yaml, request_id, 0);
}

/* The last error sent to the client, or "". */
static const char *h_last_error(const h_t *h) {
    for (size_t i = h->nsent; i-- > 0;)
        if (h->sent[i].env && h->sent[i].env->body_case == TY__ENVELOPE__BODY_ERROR)
            return h->sent[i].env->error->message;
    return "";
}

/* While etcd has not answered for store_stall_ms (a txn out
 * unanswered, or failed and not yet in), a new submit is refused at once,
 * storing nothing; a repeat of one accepted before waits for its write; once
 * etcd answers, submits are taken again. */
static void test_submit_refused_while_store_silent(void) {
    h_t h;
    h_init(&h, 7);
    h.auto_commit = 0;
    const char *y = "name: once\ntasks:\n  - {name: a, command: [t]}\n";
    CHECK_EQ_INT(h_submit_rc(&h, y, "req-a"), 0);
    h_flush(&h);
    CHECK_EQ_INT(h.nheld, 1); /* the run's txn, unanswered */
    size_t runs = h.c->nruns;
    h_advance(&h, h.c->o.store_stall_ms - 1);
    CHECK_EQ_INT(h_submit_rc(&h, y, "req-b"), 0); /* not stalled long enough yet */
    CHECK_EQ_INT(h.c->nruns, runs + 1);
    h_advance(&h, 1);
    h_clear_sent(&h);
    CHECK_EQ_INT(h_submit_rc(&h, y, "req-c"), TY_EUNAVAIL);
    CHECK_EQ_INT(h.c->nruns, runs + 1);
    CHECK_EQ_INT(h_count(&h, "cli", TY__ENVELOPE__BODY_ERROR), 1); /* at once, not held */
    CHECK(strstr(h_last_error(&h), "nothing was stored") != NULL);
    CHECK_EQ_INT(h_submit_rc(&h, y, "req-a"), 0); /* accepted before: waits for its write */
    h_flush(&h);
    CHECK_EQ_INT(h_count(&h, "cli", TY__ENVELOPE__BODY_SUBMIT_REPLY), 0);
    h_answer(&h, 0, 0);
    while (h.nheld)
        h_answer(&h, 0, 0);
    CHECK_EQ_INT(h_count(&h, "cli", TY__ENVELOPE__BODY_SUBMIT_REPLY), 3);
    CHECK_EQ_INT(ty_persist_stalled_ms(h.c), 0);
    CHECK_EQ_INT(h_submit_rc(&h, y, "req-c"), 0);
    CHECK_EQ_INT(h.c->nruns, runs + 2);
    h_flush(&h);
    /* a failed txn counts from when it left, until one commits */
    h_answer(&h, 0, TY_EETCD);
    h_advance(&h, h.c->o.store_stall_ms);
    CHECK_EQ_INT(h_submit_rc(&h, y, "req-d"), TY_EUNAVAIL);
    while (h.nheld)
        h_answer(&h, 0, 0);
    CHECK_EQ_INT(h_submit_rc(&h, y, "req-d"), 0);
    CHECK_EQ_INT(h.c->nruns, runs + 3);
    h_flush(&h);
    /* no write out, but the shell's keep-alives have gone unanswered */
    while (h.nheld)
        h_answer(&h, 0, 0);
    int64_t stall = h.c->o.store_stall_ms;
    CHECK_EQ_INT(h_submit_quiet(&h, y, "req-e", h.now.mono_ms - stall + 1), 0);
    CHECK_EQ_INT(h_submit_quiet(&h, y, "req-f", h.now.mono_ms - stall), TY_EUNAVAIL);
    CHECK_EQ_INT(h.c->nruns, runs + 4);
    h_fini(&h);
}

/* A retry of a finished run: the failed task and what depends on it run
 * again, the rest is taken from the old run (cached, outputs kept); with
 * from, that task and its dependents run too; a running run or one that
 * fully succeeded (without from) is refused. */
static void test_retry_takes_what_succeeded(void) {
    h_t h;
    h_init(&h, 7);
    h_register(&h, "w1", 8, 0, NULL);
    const char *y = "name: rt\ntasks:\n  - {name: a, command: [t]}\n"
                    "  - {name: b, command: [t], depends_on: [a]}\n"
                    "  - {name: c, command: [t], depends_on: [b]}\n"
                    "  - {name: d, command: [t], depends_on: [a]}\n";
    ty_run_t *r = h_submit(&h, y);
    unsigned char rerun[4];
    char *err = NULL;
    CHECK_EQ_INT(ty_runs_rerun_set(r, "", rerun, &err), TY_ESTATE); /* still running */
    CHECK(err && strstr(err, "is still") != NULL);
    free(err);
    h_flush(&h);
    h_finish(&h, T(r, "a"), 0);
    h_flush(&h);
    h_finish(&h, T(r, "b"), 3);
    h_finish(&h, T(r, "d"), 0);
    h_flush(&h);
    CHECK_EQ_INT(r->state, TY_RUN_FAILED);
    CHECK_EQ_INT(ty_runs_rerun_set(r, "", rerun, &err), 0);
    CHECK(!rerun[0] && rerun[1] && rerun[2] && !rerun[3]);
    CHECK_EQ_INT(ty_runs_rerun_set(r, "d", rerun, &err), 0);
    CHECK(!rerun[0] && rerun[1] && rerun[2] && rerun[3]);
    CHECK_EQ_INT(ty_runs_rerun_set(r, "zz", rerun, &err), TY_EINVAL);
    free(err);
    /* the retry itself: b and c run, a and d are cached */
    CHECK_EQ_INT(ty_runs_rerun_set(r, "", rerun, &err), 0);
    CHECK_EQ_INT(h_submit_ev(&h, y, (ty_ev_t){.retry_of = r, .rerun = rerun}), 0);
    ty_run_t *r2 = h.c->order[h.c->nruns - 1];
    CHECK(r2 != r);
    CHECK_STR(r2->retry_of, r->id);
    CHECK_EQ_INT(T(r2, "a")->state, TY_TASK_CACHED);
    CHECK_EQ_INT(T(r2, "d")->state, TY_TASK_CACHED);
    char *want = ty_xasprintf("from run %s", r->id);
    CHECK_STR(T(r2, "a")->reason, want);
    free(want);
    h_flush(&h);
    CHECK_EQ_INT(T(r2, "b")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(r2, "c")->state, TY_TASK_WAITING);
    h_finish(&h, T(r2, "b"), 0);
    h_flush(&h);
    h_finish(&h, T(r2, "c"), 0);
    h_flush(&h);
    CHECK_EQ_INT(r2->state, TY_RUN_SUCCEEDED);
    CHECK_EQ_INT(ty_runs_rerun_set(r2, "", rerun, &err), TY_ESTATE); /* nothing failed */
    CHECK(err && strstr(err, "--from TASK") != NULL);
    free(err);
    h_fini(&h);
}

static void h_checked(h_t *h, ty_run_t *r, const char *task, int ok) {
    h_step(h, (ty_ev_t){.kind = TY_EV_CHECKED, .run_id = r->id, .task = task, .status = ok});
}

/* cache: true: a success stores its key; the same key later is not run
 * once the shell confirms the blobs (CHECK, CHECKED): cached with the same
 * outputs; a changed command misses and says so; blobs gone: it runs; the
 * index survives a restart. */
static void test_step_cache(void) {
    h_t h;
    h_init(&h, 7);
    h_register(&h, "w1", 8, 0, NULL);
    const char *y = "name: c\ntasks:\n  - {name: a, command: [t], cache: true, outputs: [m.bin]}\n";
    const char *m[] = {"m.bin"};
    ty_run_t *r1 = h_submit(&h, y);
    CHECK_STR(T(r1, "a")->cache_note, "cache miss: no earlier success of this task");
    h_flush(&h);
    h_finish_outputs(&h, T(r1, "a"), m, 1);
    h_flush(&h);
    CHECK_EQ_INT(r1->state, TY_RUN_SUCCEEDED);
    size_t stored = 0;
    for (void *v = zhashx_first(h.kv); v; v = zhashx_next(h.kv))
        stored += strncmp(zhashx_cursor(h.kv), "cache/", 6) == 0;
    CHECK_EQ_INT(stored, 1);

    ty_run_t *r2 = h_submit(&h, y);
    CHECK_EQ_INT(h.checks, 1);
    CHECK_STR(h.check_task, "a");
    CHECK_EQ_INT(T(r2, "a")->state, TY_TASK_WAITING);
    h_checked(&h, r2, "a", 1);
    h_flush(&h);
    CHECK_EQ_INT(T(r2, "a")->state, TY_TASK_CACHED);
    CHECK_EQ_INT(T(r2, "a")->attempt, 0);
    CHECK(T(r2, "a")->noutputs == 1 &&
          strcmp(T(r2, "a")->outputs[0]->sha256, T(r1, "a")->outputs[0]->sha256) == 0);
    CHECK_EQ_INT(r2->state, TY_RUN_SUCCEEDED);

    const char *y2 =
        "name: c\ntasks:\n  - {name: a, command: [u], cache: true, outputs: [m.bin]}\n";
    ty_run_t *r3 = h_submit(&h, y2);
    char *want = ty_xasprintf("cache miss: since run %s, command changed", r1->id);
    CHECK_STR(T(r3, "a")->cache_note, want);
    free(want);
    h_flush(&h);
    CHECK_EQ_INT(T(r3, "a")->state, TY_TASK_RUNNING);

    ty_run_t *r4 = h_submit(&h, y);
    h_checked(&h, r4, "a", 0); /* its blobs were collected */
    CHECK(strstr(T(r4, "a")->cache_note, "no longer stored") != NULL);
    h_flush(&h);
    CHECK_EQ_INT(T(r4, "a")->state, TY_TASK_RUNNING);
    h_checked(&h, r4, "a", 1); /* a late answer changes nothing */
    CHECK_EQ_INT(T(r4, "a")->state, TY_TASK_RUNNING);

    h_t b;
    h_restart(&h, &b, 8);
    size_t checks = b.checks;
    h_submit(&b, y);
    CHECK_EQ_INT(b.checks, checks + 1); /* the record, read back, is a hit */

    /* gc collected the entry's blob: the entry goes, here and in the store */
    char *gone = ty_xstrdup(T(r1, "a")->outputs[0]->sha256);
    char *shas[] = {"00ff", gone};
    h_step(&b, (ty_ev_t){.kind = TY_EV_BLOBS_GONE, .shas = shas, .nshas = 2});
    CHECK_EQ_INT(b.forgets, 1);
    stored = 0;
    for (void *v = zhashx_first(b.kv); v; v = zhashx_next(b.kv))
        stored += strncmp(zhashx_cursor(b.kv), "cache/", 6) == 0;
    CHECK_EQ_INT(stored, 0);
    checks = b.checks;
    ty_run_t *r5 = h_submit(&b, y);
    CHECK_EQ_INT(b.checks, checks); /* nothing to check: it runs */
    CHECK(strstr(T(r5, "a")->cache_note, "cache miss") != NULL);
    free(gone);
    h_fini(&b);
    h_fini(&h);
}

int main(void) {
    test_lost_dispatch_is_found();
    test_stale_register_keeps_attempt();
    test_repeated_submit_gets_the_same_run();
    test_submit_refused_while_store_silent();
    test_retry_takes_what_succeeded();
    test_step_cache();
    TEST_DONE();
}
