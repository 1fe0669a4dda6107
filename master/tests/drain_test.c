/* Draining a worker: no new attempt is placed on it while the one it runs
 * goes on to its end; undone, it takes attempts again; the state is in its
 * record, so a restarted master keeps it; an unknown worker is an error. */
#include "common/log.h"
#include "master/tests/core_harness.h"

static void drain(h_t *h, const char *id, int on) {
    h_step(h, (ty_ev_t){.kind = TY_EV_DRAIN,
                        .peer = (const uint8_t *)"ops",
                        .peer_len = 3,
                        .req_id = 9,
                        .key = id,
                        .status = on});
    h_flush(h);
}

static const Ty__DrainReply *last_drain_reply(const h_t *h) {
    for (size_t i = h->nsent; i-- > 0;)
        if (h->sent[i].env && h->sent[i].env->body_case == TY__ENVELOPE__BODY_DRAIN_REPLY)
            return h->sent[i].env->drain_reply;
    return NULL;
}

int main(void) {
    static h_t h, h2;
    ty_log_init("drain_test", TY_LOG_WARN);
    h_init(&h, 1);
    h_register(&h, "w1", 1, 0, NULL);
    h_register(&h, "w2", 1, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: p\ntasks:\n  - {name: a, command: [t]}\n");
    h_flush(&h);
    ty_task_t *a = T(r, "a");
    CHECK_EQ_INT(a->state, TY_TASK_RUNNING);
    const char *first = a->worker, *other = strcmp(first, "w1") == 0 ? "w2" : "w1";

    /* drain where a runs: a goes on; the next tasks go to the other worker */
    h_clear_sent(&h);
    drain(&h, first, 1);
    const Ty__DrainReply *dr = last_drain_reply(&h);
    CHECK(dr && dr->draining && dr->running == 1 && strcmp(dr->worker_id, first) == 0);
    CHECK_EQ_INT(ty_core_find_worker(h.c, first)->draining, 1);
    CHECK_EQ_INT(h_count(&h, first, TY__ENVELOPE__BODY_CANCEL), 0);
    ty_run_t *r2 = h_submit(&h, "name: q\ntasks:\n  - {name: b, command: [t]}\n"
                                "  - {name: c, command: [t]}\n");
    h_flush(&h);
    ty_task_t *b = T(r2, "b"), *c = T(r2, "c");
    /* one CPU on the other worker: one of b, c runs there, the other waits */
    CHECK_EQ_INT((b->state == TY_TASK_RUNNING) + (c->state == TY_TASK_RUNNING), 1);
    ty_task_t *run = b->state == TY_TASK_RUNNING ? b : c, *wait = run == b ? c : b;
    CHECK_STR(run->worker, other);
    h_finish(&h, a, 0); /* a's worker is free now, and still takes nothing */
    h_flush(&h);
    CHECK_EQ_INT(a->state, TY_TASK_SUCCEEDED);
    CHECK_EQ_INT(wait->state, TY_TASK_QUEUED);
    /* with the other worker busy it waits for room, not for a worker */
    CHECK_CONTAINS(wait->reason, "waiting for room");
    CHECK_EQ_INT(h_count(&h, first, TY__ENVELOPE__BODY_DISPATCH), 0);

    /* a restarted master reads the draining state back */
    h_restart(&h, &h2, 2);
    CHECK_EQ_INT(ty_core_find_worker(h2.c, first)->draining, 1);
    CHECK_EQ_INT(ty_core_find_worker(h2.c, other)->draining, 0);
    h_fini(&h2);

    /* both draining: the reason says so */
    h_finish(&h, run, 0);
    drain(&h, other, 1);
    CHECK_EQ_INT(wait->state, TY_TASK_QUEUED);
    CHECK_CONTAINS(wait->reason, "the workers that could run it drain (");
    drain(&h, other, 0);
    CHECK_EQ_INT(wait->state, TY_TASK_RUNNING);
    CHECK_STR(wait->worker, other);
    h_finish(&h, wait, 0);
    ty_run_t *r3 = h_submit(&h, "name: z\ntasks:\n  - {name: d, command: [t]}\n"
                                "  - {name: e, command: [t]}\n");
    h_flush(&h);
    wait = T(r3, "d")->state == TY_TASK_QUEUED ? T(r3, "d") : T(r3, "e");
    CHECK_EQ_INT(wait->state, TY_TASK_QUEUED);

    /* undone: the waiting task goes there */
    h_clear_sent(&h);
    drain(&h, first, 0);
    dr = last_drain_reply(&h);
    CHECK(dr && !dr->draining);
    CHECK_EQ_INT(wait->state, TY_TASK_RUNNING);
    CHECK_STR(wait->worker, first);

    /* an unknown worker */
    h_clear_sent(&h);
    drain(&h, "nope", 1);
    CHECK_EQ_INT(h_count(&h, "ops", TY__ENVELOPE__BODY_ERROR), 1);
    h_fini(&h);
    TEST_DONE();
}
