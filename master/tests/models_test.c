/* The model registry in the core: a step's register line makes a version
 * when the task succeeds (and fails it when the artifact is not among its
 * outputs); register by request; aliases and their history; the promotion
 * gate (higher or lower is better, margins, no current version, a missing
 * metric); numbers never reused across a restart; gc keeps their blobs. */
#include "master/tests/core_harness.h"

static Ty__Envelope *last_reply(h_t *h) { return h->nsent ? h->sent[h->nsent - 1].env : NULL; }

static void model_req(h_t *h, Ty__ModelRequest *rq, const ty_run_t *r) {
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_MODEL;
    env.model = rq;
    h_step(h, (ty_ev_t){.kind = TY_EV_MODEL,
                        .msg = &env,
                        .peer = (const uint8_t *)"cli",
                        .peer_len = 3,
                        .req_id = 7,
                        .retry_of = r});
    h_flush(h);
}

/* A task that reports metric accuracy=acc and registers its model.bin. */
static ty_run_t *train(h_t *h, double acc, const char *reg_artifact) {
    ty_run_t *r =
        h_submit(h, "name: t\ntasks:\n  - {name: fit, command: [t], outputs: [model.bin]}\n");
    h_flush(h);
    ty_task_t *t = T(r, "fit");
    h_metric(h, t, "accuracy", acc);
    char sha[65];
    snprintf(sha, sizeof sha, "%064x", (unsigned)(acc * 1000));
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = r->id;
    ref.task = "fit";
    ref.attempt = t->attempt;
    Ty__ArtifactRef out = TY__ARTIFACT_REF__INIT, *outs[1] = {&out};
    out.name = "model.bin";
    out.sha256 = sha;
    out.size = 100;
    Ty__KV reg = TY__KV__INIT, *regs[1] = {&reg};
    reg.key = "fashion";
    reg.value = (char *)reg_artifact;
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = &ref;
    res.outputs = outs;
    res.n_outputs = 1;
    res.registers = regs;
    res.n_registers = 1;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RESULT;
    env.result = &res;
    h_worker_msg(h, t->worker, &env);
    h_flush(h);
    return r;
}

static Ty__ModelReply *promote(h_t *h, uint32_t v, int lower, double min_delta, double min_rel) {
    Ty__ModelRequest rq = TY__MODEL_REQUEST__INIT;
    rq.op = "promote";
    rq.name = "fashion";
    rq.version = v;
    rq.alias = "champion";
    rq.metric = "accuracy";
    rq.lower_is_better = lower;
    rq.min_delta = min_delta;
    rq.min_relative = min_rel;
    rq.by = "alice";
    h_clear_sent(h);
    model_req(h, &rq, NULL);
    Ty__Envelope *e = last_reply(h);
    CHECK(e && e->body_case == TY__ENVELOPE__BODY_MODEL_REPLY);
    return e && e->body_case == TY__ENVELOPE__BODY_MODEL_REPLY ? e->model_reply : NULL;
}

int main(void) {
    h_t h;
    h_init(&h, 3);
    h_register(&h, "w1", 8, 0, NULL);
    ty_run_t *r1 = train(&h, 0.80, "model.bin");
    CHECK_EQ_INT(T(r1, "fit")->state, TY_TASK_SUCCEEDED);
    const Ty__ModelVersion *v1 = ty_models_version(h.c, "fashion", 1);
    CHECK(v1 && strcmp(v1->run_id, r1->id) == 0 && strcmp(v1->task, "fit") == 0);
    CHECK(v1 && v1->n_metrics == 1 && v1->metrics[0]->value == 0.80);
    CHECK(v1 && strcmp(v1->by, "t-") > 0 && strstr(v1->by, "/fit") != NULL);
    CHECK(zhashx_lookup(h.kv, "models/fashion/v/00000001") != NULL);
    /* a register line naming no output fails the task */
    ty_run_t *bad = train(&h, 0.9, "nope.bin");
    CHECK_EQ_INT(T(bad, "fit")->state, TY_TASK_FAILED);
    CHECK(strstr(T(bad, "fit")->reason, "register fashion: nope.bin is not an output") != NULL);
    CHECK(ty_models_version(h.c, "fashion", 2) == NULL);

    /* register by request, with a metric given */
    Ty__ModelRequest rq = TY__MODEL_REQUEST__INIT;
    rq.op = "register";
    rq.name = "fashion";
    char from[200];
    ty_run_t *r2 = train(&h, 0.85, "model.bin"); /* version 2, from its line */
    snprintf(from, sizeof from, "%s/fit/model.bin", r2->id);
    rq.from = from;
    Ty__KV m = TY__KV__INIT, *ms[1] = {&m};
    m.key = "accuracy";
    m.value = "0.86";
    rq.metrics = ms;
    rq.n_metrics = 1;
    rq.by = "bob";
    model_req(&h, &rq, r2);
    const Ty__ModelVersion *v3 = ty_models_version(h.c, "fashion", 3);
    CHECK(v3 && v3->metrics[0]->value == 0.86 && strcmp(v3->by, "bob") == 0);
    snprintf(from, sizeof from, "%s/fit/other.bin", r2->id);
    h_clear_sent(&h);
    model_req(&h, &rq, r2);
    CHECK(last_reply(&h)->body_case == TY__ENVELOPE__BODY_ERROR);
    CHECK(strstr(last_reply(&h)->error->message, "has no output 'other.bin'") != NULL);

    /* the gate: no champion yet, then better, worse, within the margin */
    Ty__ModelReply *p = promote(&h, 1, 0, 0, 0);
    CHECK(p && p->promoted && p->current_version == 0);
    CHECK_EQ_INT(ty_models_alias(h.c, "fashion", "champion"), 1);
    p = promote(&h, 3, 0, 0.1, 0); /* 0.86 vs 0.80: +0.06, 0.1 needed */
    CHECK(p && !p->promoted && p->candidate == 0.86 && p->current == 0.80);
    CHECK(p && strstr(p->decision, "not promoted: accuracy 0.86 against 0.8 of version 1") != NULL);
    CHECK_EQ_INT(ty_models_alias(h.c, "fashion", "champion"), 1);
    p = promote(&h, 3, 0, 0.01, 0.05); /* +0.06 >= max(0.01, 0.05 * 0.8) */
    CHECK(p && p->promoted);
    CHECK_EQ_INT(ty_models_alias(h.c, "fashion", "champion"), 3);
    p = promote(&h, 2, 0, 0, 0); /* 0.85 < 0.86 */
    CHECK(p && !p->promoted);
    p = promote(&h, 2, 1, 0, 0); /* lower is better: 0.85 wins */
    CHECK(p && p->promoted);
    p = promote(&h, 2, 0, 0, 0);
    CHECK(p && !p->promoted && strstr(p->decision, "is champion already") != NULL);
    rq = (Ty__ModelRequest)TY__MODEL_REQUEST__INIT;
    rq.op = "promote";
    rq.name = "fashion";
    rq.version = 1;
    rq.alias = "champion";
    rq.metric = "f1";
    h_clear_sent(&h);
    model_req(&h, &rq, NULL);
    CHECK(strstr(last_reply(&h)->error->message, "has no metric 'f1'") != NULL);
    /* by hand */
    rq = (Ty__ModelRequest)TY__MODEL_REQUEST__INIT;
    rq.op = "alias";
    rq.name = "fashion";
    rq.alias = "staging";
    rq.version = 9;
    h_clear_sent(&h);
    model_req(&h, &rq, NULL);
    CHECK(strstr(last_reply(&h)->error->message, "has no version 9 (its last is 3)") != NULL);
    rq.version = 1;
    model_req(&h, &rq, NULL);
    CHECK_EQ_INT(ty_models_alias(h.c, "fashion", "staging"), 1);

    /* a restart: everything read back; the next number is 4 */
    h_t b;
    h_restart(&h, &b, 4);
    const Ty__ModelRecord *rec;
    Ty__ModelVersion *const *vs;
    Ty__AliasMove *const *hs;
    size_t nv, nh;
    CHECK_EQ_INT(ty_models_find(b.c, "fashion", &rec, &vs, &nv, &hs, &nh), 0);
    CHECK_EQ_INT(rec->last_version, 3);
    CHECK_EQ_INT(nh, 4); /* 1, 3, 2 for champion, 1 for staging */
    CHECK(nh == 4 && hs[1]->from_version == 1 && hs[1]->to_version == 3 &&
          strcmp(hs[1]->by, "alice") == 0 && strstr(hs[1]->note, "promoted") != NULL);
    CHECK_EQ_INT(ty_models_alias(b.c, "fashion", "champion"), 2);
    h_register(&b, "w1", 8, 0, NULL);
    train(&b, 0.9, "model.bin");
    CHECK(ty_models_version(b.c, "fashion", 4) != NULL);
    zhashx_t *keep = zhashx_new();
    ty_models_keep(b.c, keep);
    CHECK_EQ_INT(zhashx_size(keep), 3); /* 0.80, 0.85 (twice: 2 and 3), 0.9 */
    zhashx_destroy(&keep);
    h_fini(&b);
    h_fini(&h);
    TEST_DONE();
}
