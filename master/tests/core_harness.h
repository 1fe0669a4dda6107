/* Drives the control core through events only, as the master's shell does,
 * with a virtual clock and an in-memory key-value map for the store: TXN
 * effects are committed at once (auto) or held for the test to answer;
 * SEND effects are decoded and kept per peer. */
#ifndef TY_CORE_HARNESS_H
#define TY_CORE_HARNESS_H

/* each test file uses some of these helpers */
#pragma GCC diagnostic ignored "-Wunused-function"

#include "master/core/core_int.h"

#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#define H_MAX_SENT 4096
#define H_MAX_HELD 64

typedef struct {
    ty_peer_kind_t kind;
    char peer[64];
    Ty__Envelope *env;
} h_sent_t;

typedef struct {
    ty_core_t *c;
    ty_time_t now;
    int auto_commit;
    zhashx_t *kv; /* key -> zchunk_t* */
    h_sent_t sent[H_MAX_SENT];
    size_t nsent;
    ty_fx_t held[H_MAX_HELD]; /* TXN effects not answered yet */
    size_t nheld;
    size_t notifies, logs, fenced, txns, drops, checks, forgets;
    char check_task[64];
    char drop_before[64];
} h_t;

static void h_chunk_free(void **item) { zchunk_destroy((zchunk_t **)item); }

static void h_apply(h_t *h, const ty_fx_t *fx) {
    for (size_t i = 0; i < fx->nputs; i++)
        zhashx_update(h->kv, fx->puts[i].key, zchunk_new(fx->puts[i].val, fx->puts[i].len));
}

static void h_drain(h_t *h);

/* Answer a held txn (by index) with status; committed ones reach the map. */
static void h_answer(h_t *h, size_t i, int status) {
    ty_fx_t fx = h->held[i];
    memmove(&h->held[i], &h->held[i + 1], (h->nheld - i - 1) * sizeof *h->held);
    h->nheld--;
    if (status == 0)
        h_apply(h, &fx);
    ty_ev_t ev = {.kind = TY_EV_TXN_DONE, .flight = fx.flight, .status = status};
    ty_fx_clear(&fx);
    ty_core_step(h->c, &ev, h->now);
    h_drain(h);
}

static void h_drain(h_t *h) {
    ty_fx_t fx;
    while (ty_core_fx_pop(h->c, &fx)) {
        switch (fx.kind) {
        case TY_FX_SEND:
            if (h->nsent < H_MAX_SENT) {
                h_sent_t *s = &h->sent[h->nsent++];
                s->kind = fx.peer_kind;
                snprintf(s->peer, sizeof s->peer, "%.*s", (int)fx.peer_len, (char *)fx.peer);
                s->env = ty__envelope__unpack(NULL, fx.len, fx.data);
            }
            break;
        case TY_FX_TXN:
            h->txns++;
            if (h->auto_commit) {
                h_apply(h, &fx);
                ty_ev_t ev = {.kind = TY_EV_TXN_DONE, .flight = fx.flight, .status = 0};
                ty_core_step(h->c, &ev, h->now);
            } else if (h->nheld < H_MAX_HELD) {
                h->held[h->nheld++] = fx;
                continue; /* kept, not cleared */
            }
            break;
        case TY_FX_NOTIFY:
            h->notifies++;
            break;
        case TY_FX_LOG:
            h->logs++;
            break;
        case TY_FX_FENCED:
            h->fenced++;
            break;
        case TY_FX_CHECK: /* answered by the test (h_checked) */
            h->checks++;
            snprintf(h->check_task, sizeof h->check_task, "%s", fx.task);
            break;
        case TY_FX_FORGET: /* deleted from the map, as etcd would */
            h->forgets++;
            for (size_t i = 0; i < fx.nshas; i++)
                zhashx_delete(h->kv, fx.shas[i]);
            break;
        case TY_FX_DROP:
            h->drops++;
            snprintf(h->drop_before, sizeof h->drop_before, "%s", fx.before);
            break;
        }
        ty_fx_clear(&fx);
    }
}

static int h_step(h_t *h, ty_ev_t ev) {
    int rc = ty_core_step(h->c, &ev, h->now);
    h_drain(h);
    return rc;
}

static void h_flush(h_t *h) { h_step(h, (ty_ev_t){.kind = TY_EV_FLUSH}); }

static void h_clear_sent(h_t *h) {
    for (size_t i = 0; i < h->nsent; i++)
        ty__envelope__free_unpacked(h->sent[i].env, NULL);
    h->nsent = 0;
}

/* The options every test starts from (a short lease, few losses). */
static ty_core_opts_t h_opts(uint64_t epoch) {
    ty_core_opts_t o;
    ty_core_opts_default(&o);
    o.heartbeat_ms = 100;
    o.worker_lease_ms = 1000;
    o.lost_limit = 2;
    o.epoch = epoch;
    o.seed = 42;
    o.history_ms = 0; /* tests that want it say so */
    return o;
}

/* A core with options o and an empty store, not serving yet. */
static void h_open(h_t *h, const ty_core_opts_t *o) {
    memset(h, 0, sizeof *h);
    CHECK_EQ_INT(ty_core_create(&h->c, o), 0);
    h->now = (ty_time_t){1700000000000, 1000};
    h->auto_commit = 1;
    h->kv = zhashx_new();
    zhashx_set_destructor(h->kv, h_chunk_free);
}

static void h_init(h_t *h, uint64_t epoch) {
    ty_core_opts_t o = h_opts(epoch);
    h_open(h, &o);
    h_step(h, (ty_ev_t){.kind = TY_EV_SERVE});
}

static void h_fini(h_t *h) {
    h_clear_sent(h);
    for (size_t i = 0; i < h->nheld; i++)
        ty_fx_clear(&h->held[i]);
    h->nheld = 0;
    ty_core_destroy(&h->c);
    zhashx_destroy(&h->kv);
}

/* Time passes by ms; the TICKs that fall due meanwhile are delivered. */
static void h_advance(h_t *h, int64_t ms) {
    int64_t end = h->now.mono_ms + ms;
    for (;;) {
        int64_t d = ty_core_deadline(h->c);
        if (!d || d > end)
            break;
        if (d > h->now.mono_ms) {
            h->now.wall_ms += d - h->now.mono_ms;
            h->now.mono_ms = d;
        }
        h_step(h, (ty_ev_t){.kind = TY_EV_TICK});
        h_flush(h);
    }
    h->now.wall_ms += end - h->now.mono_ms;
    h->now.mono_ms = end;
}

static void h_worker_msg(h_t *h, const char *peer, Ty__Envelope *env) {
    ty_ev_t ev = {.kind = TY_EV_WORKER_MSG,
                  .peer = (const uint8_t *)peer,
                  .peer_len = strlen(peer),
                  .msg = env};
    h_step(h, ev);
}

/* Register worker id (its peer is its id) with cpus and gpus; label zone=v
 * when v; running attempts refs. */
static void h_register_full(h_t *h, const char *id, double cpus, uint32_t gpus, const char *zone,
                            Ty__TaskRef **running, size_t nrunning) {
    Ty__KV kv = TY__KV__INIT, *kvs[1] = {&kv};
    Ty__Resources res = TY__RESOURCES__INIT;
    res.cpus = cpus;
    res.mem_mb = 1000;
    res.gpus = gpus;
    if (zone) {
        kv.key = "zone";
        kv.value = (char *)zone;
        res.labels = kvs;
        res.n_labels = 1;
    }
    Ty__Register r = TY__REGISTER__INIT;
    r.worker_id = (char *)id;
    r.total = &res;
    r.hostname = "h";
    r.running = running;
    r.n_running = nrunning;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REGISTER;
    env.register_ = &r;
    h_worker_msg(h, id, &env);
}

static ty_worker_t *h_register(h_t *h, const char *id, double cpus, uint32_t gpus,
                               const char *zone) {
    h_register_full(h, id, cpus, gpus, zone, NULL, 0);
    return ty_core_find_worker(h->c, id);
}

static void h_heartbeat(h_t *h, const char *id) {
    Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    h_worker_msg(h, id, &env);
}

/* Submit yaml from peer "cli", the event's other fields (request id,
 * quiet_since, a retry's) taken from more; the core's return code. */
static int h_submit_ev(h_t *h, const char *yaml, ty_ev_t more) {
    Ty__PipelineSpec *spec = NULL, *res = NULL;
    char *err = NULL;
    if (ty_dag_load_string(yaml, strlen(yaml), "t.yaml", &spec, &err) != 0) {
        fprintf(stderr, "%s", err);
        abort();
    }
    Ty__KV **params = NULL;
    size_t np = 0;
    ty_dag_resolve(spec, NULL, 0, &res, &params, &np, &err);
    ty_dag_free(&spec);
    more.kind = TY_EV_SUBMIT;
    more.peer = (const uint8_t *)"cli";
    more.peer_len = 3;
    more.spec = res;
    more.params = params;
    more.nparams = np;
    return h_step(h, more);
}

static ty_run_t *h_submit_id(h_t *h, const char *yaml, const char *request_id) {
    CHECK_EQ_INT(h_submit_ev(h, yaml, (ty_ev_t){.request_id = request_id}), 0);
    return h->c->order[h->c->nruns - 1];
}

static ty_run_t *h_submit(h_t *h, const char *yaml) { return h_submit_id(h, yaml, NULL); }

static ty_task_t *T(ty_run_t *r, const char *name) {
    return &r->tasks[ty_dag_task_index(r->spec, name)];
}

/* The reference to t's current attempt. */
static Ty__TaskRef h_ref(const ty_task_t *t) {
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = t->run->id;
    ref.task = t->spec->name;
    ref.attempt = t->attempt;
    return ref;
}

/* worker reports t's current attempt's exit code and signal (its part
 * there, for a gang's other workers). */
static void h_result_from(h_t *h, const char *worker, ty_task_t *t, int code, int sig) {
    Ty__TaskRef ref = h_ref(t);
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = &ref;
    res.exit_code = code;
    res.term_signal = sig;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RESULT;
    env.result = &res;
    h_worker_msg(h, worker, &env);
}

/* The worker running t reports its current attempt's exit code. */
static void h_finish(h_t *h, ty_task_t *t, int code) { h_result_from(h, t->worker, t, code, 0); }

/* The worker running t reports success with outputs (name, sha256). */
/* A `metric NAME VALUE` report line from t's running attempt. */
static void h_metric(h_t *h, ty_task_t *t, const char *name, double value) {
    Ty__TaskRef ref = h_ref(t);
    Ty__ReportItem it = TY__REPORT_ITEM__INIT, *items[1] = {&it};
    it.kind = 1;
    it.name = (char *)name;
    it.value = value;
    Ty__Report rep = TY__REPORT__INIT;
    rep.ref = &ref;
    rep.items = items;
    rep.n_items = 1;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REPORT;
    env.report = &rep;
    h_worker_msg(h, t->worker, &env);
}

static void h_finish_outputs(h_t *h, ty_task_t *t, const char *const *names, size_t n) {
    Ty__TaskRef ref = h_ref(t);
    Ty__ArtifactRef refs[8], *ptrs[8];
    char sha[65];
    memset(sha, 'a', 64);
    sha[64] = '\0';
    for (size_t i = 0; i < n; i++) {
        ty__artifact_ref__init(&refs[i]);
        refs[i].name = (char *)names[i];
        refs[i].sha256 = sha;
        refs[i].size = 10 + i;
        ptrs[i] = &refs[i];
    }
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = &ref;
    res.outputs = ptrs;
    res.n_outputs = n;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RESULT;
    env.result = &res;
    h_worker_msg(h, t->worker, &env);
}

/* Messages of a kind sent to peer since the last h_clear_sent. */
static size_t h_count(const h_t *h, const char *peer, Ty__Envelope__BodyCase body) {
    size_t n = 0;
    for (size_t i = 0; i < h->nsent; i++)
        n += h->sent[i].env && h->sent[i].env->body_case == body &&
             strcmp(h->sent[i].peer, peer) == 0;
    return n;
}

/* Load every record of a's store into a new core, as a restarted master. */
static void h_restart(h_t *a, h_t *b, uint64_t epoch) {
    ty_core_opts_t o = h_opts(epoch);
    h_open(b, &o);
    b->now = a->now;
    zlistx_t *keys = zhashx_keys(a->kv);
    zlistx_set_comparator(keys, (zlistx_comparator_fn *)strcmp);
    zlistx_sort(keys);
    for (int pass = 0; pass < 2; pass++) /* workers/ first, then runs/ */
        for (const char *k = zlistx_first(keys); k; k = zlistx_next(keys)) {
            if ((pass == 0) != (strncmp(k, "workers/", 8) == 0))
                continue;
            zchunk_t *ch = zhashx_lookup(a->kv, k);
            zhashx_update(b->kv, k, zchunk_dup(ch));
            ty_ev_t ev = {
                .kind = TY_EV_LOAD, .key = k, .data = zchunk_data(ch), .len = zchunk_size(ch)};
            h_step(b, ev);
        }
    zlistx_destroy(&keys);
    h_step(b, (ty_ev_t){.kind = TY_EV_SERVE});
}

#endif
