/* The simulator's world: a store that delays, reorders and fails txns, workers
 * that follow the real worker's protocol (worker/session.c), and clients
 * that submit random pipelines and cancel some. */
#include "master/sim/sim.h"

#include "common/err.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* ---- the store ---- */

static void sim_chunk_free(void **item) { zchunk_destroy((zchunk_t **)item); }

void sim_store_init(sim_t *s) {
    s->kv = zhashx_new();
    zhashx_set_destructor(s->kv, sim_chunk_free);
}

static void sim_txn_free(sim_txn_t *t) {
    for (size_t i = 0; i < t->nputs; i++) {
        free(t->puts[i].key);
        free(t->puts[i].val);
    }
    free(t->puts);
    free(t);
}

void sim_store_free(sim_t *s) {
    while (s->txns) {
        sim_txn_t *t = s->txns;
        s->txns = t->next;
        sim_txn_free(t);
    }
    zhashx_destroy(&s->kv);
}

static void sim_trace(sim_t *s, sim_txn_t *t, const char *what) {
    const char *want = getenv("SIM_TRACE");
    if (!want)
        return;
    for (size_t i = 0; i < t->nputs; i++)
        if (strstr(t->puts[i].key, want)) {
            unsigned st = 99, att = 0;
            if (strstr(t->puts[i].key, "/tasks/")) {
                Ty__TaskRecord *r = ty__task_record__unpack(NULL, t->puts[i].len, t->puts[i].val);
                st = r->state, att = r->attempt;
                ty__task_record__free_unpacked(r, NULL);
            } else {
                Ty__RunRecord *r = ty__run_record__unpack(NULL, t->puts[i].len, t->puts[i].val);
                st = r->state;
                ty__run_record__free_unpacked(r, NULL);
            }
            fprintf(stderr, "%lld gen %d flight %llu seq %llu %s: %s state %u attempt %u\n",
                    (long long)s->now, t->gen, (unsigned long long)t->flight,
                    (unsigned long long)t->seq, what, t->puts[i].key, st, att);
        }
}

void sim_store_txn(sim_t *s, const ty_fx_t *fx) {
    sim_txn_t *t = ty_xcalloc(1, sizeof *t);
    t->flight = fx->flight;
    t->epoch = fx->epoch;
    t->seq = fx->seq;
    t->gen = s->gen;
    t->at = s->now + sim_between(s, 1, 20); /* answers overtake each other */
    t->puts = ty_xcalloc(fx->nputs ? fx->nputs : 1, sizeof *t->puts);
    t->nputs = fx->nputs;
    for (size_t i = 0; i < fx->nputs; i++) {
        t->puts[i].key = ty_xstrdup(fx->puts[i].key);
        t->puts[i].val = ty_xmalloc(fx->puts[i].len ? fx->puts[i].len : 1);
        memcpy(t->puts[i].val, fx->puts[i].val, fx->puts[i].len);
        t->puts[i].len = fx->puts[i].len;
    }
    t->next = s->txns;
    s->txns = t;
    sim_trace(s, t, "sent");
}

/* What the store does with t: commit it (when its epoch still leads) and
 * say what the answer reports. */
/* As the etcd store does: the epoch's compare, then the chain's. */
static int sim_store_apply(sim_t *s, sim_txn_t *t, int faults) {
    if (t->epoch != s->store_epoch)
        return TY_ESTALE;
    if (faults && sim_chance(s, s->p_txn_fail))
        return TY_EETCD; /* never reached the store */
    if (s->chain != t->seq - 1)
        return s->chain >= t->seq ? 0 : TY_ECONFLICT;
    s->chain = t->seq;
    sim_trace(s, t, "applied");
    for (size_t i = 0; i < t->nputs; i++) {
        sim_check_put(s, t->puts[i].key, t->puts[i].val, t->puts[i].len);
        zhashx_update(s->kv, t->puts[i].key, zchunk_new(t->puts[i].val, t->puts[i].len));
    }
    if (faults && sim_chance(s, s->p_txn_ambiguous))
        return TY_EETCD; /* committed, but the answer was lost */
    return 0;
}

void sim_store_deliver(sim_t *s) {
    for (;;) {
        sim_txn_t **pp = &s->txns, **due = NULL;
        for (; *pp; pp = &(*pp)->next)
            if ((*pp)->at <= s->now)
                due = pp; /* the oldest due one is last in the list */
        if (!due)
            return;
        sim_txn_t *t = *due;
        *due = t->next;
        int status = sim_store_apply(s, t, s->faults);
        int answer = t->gen == s->gen && !s->fenced; /* a dead master hears nothing */
        ty_ev_t ev = {.kind = TY_EV_TXN_DONE, .flight = t->flight, .status = status};
        sim_txn_free(t);
        if (answer)
            sim_core_step(s, &ev);
    }
}

void sim_store_crash(sim_t *s) {
    while (s->txns) {
        sim_txn_t *t = s->txns;
        s->txns = t->next;
        if (sim_chance(s, 0.5))
            sim_store_apply(s, t, 0); /* it reached the store before the master died */
        sim_txn_free(t);
    }
}

void sim_store_drop(sim_t *s, const char *before) {
    zlistx_t *runs = zlistx_new(), *gone = zlistx_new();
    for (zchunk_t *ch = zhashx_first(s->kv); ch; ch = zhashx_next(s->kv)) {
        const char *k = zhashx_cursor(s->kv);
        const char *id = strncmp(k, "done/", 5) == 0 ? strchr(k + 5, '/') : NULL;
        if (!id || strcmp(k, before) >= 0)
            continue;
        zlistx_add_end(gone, ty_xstrdup(k));
        zlistx_add_end(runs, ty_xasprintf("runs/%s", id + 1));
        zhashx_update(s->dropped_runs, id + 1, (void *)1);
        s->dropped++;
    }
    for (char *run = zlistx_first(runs); run; run = zlistx_next(runs)) {
        size_t rl = strlen(run);
        zchunk_t *rec = zhashx_lookup(s->kv, run);
        Ty__RunRecord *r =
            rec ? ty__run_record__unpack(NULL, zchunk_size(rec), zchunk_data(rec)) : NULL;
        if (r && (r->state == TY_RUN_PENDING || r->state == TY_RUN_RUNNING ||
                  r->finished_ms >= s->wall0 + s->now - 8000))
            sim_fail(s, "%s was dropped from the store while %s, ended at %lld", run,
                     ty_run_state_name(r->state), (long long)r->finished_ms);
        if (r)
            ty__run_record__free_unpacked(r, NULL);
        for (zchunk_t *ch = zhashx_first(s->kv); ch; ch = zhashx_next(s->kv)) {
            const char *k = zhashx_cursor(s->kv);
            if (strncmp(k, run, rl) == 0 && (k[rl] == '\0' || strncmp(k + rl, "/tasks/", 7) == 0))
                zlistx_add_end(gone, ty_xstrdup(k));
        }
        free(run);
    }
    for (char *k = zlistx_first(gone); k; k = zlistx_next(gone)) {
        zhashx_delete(s->kv, k);
        free(k);
    }
    zlistx_destroy(&runs);
    zlistx_destroy(&gone);
}

static int sim_key_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void sim_store_load(sim_t *s) {
    size_t n = zhashx_size(s->kv), k = 0;
    char **keys = ty_xcalloc(n ? n : 1, sizeof *keys);
    for (zchunk_t *ch = zhashx_first(s->kv); ch; ch = zhashx_next(s->kv))
        keys[k++] = (char *)zhashx_cursor(s->kv);
    qsort(keys, n, sizeof *keys, sim_key_cmp);
    ty_time_t now = {s->wall0 + s->now, s->now};
    char chain[24];
    int cl = snprintf(chain, sizeof chain, "%llu", (unsigned long long)s->chain);
    ty_ev_t seq = {
        .kind = TY_EV_LOAD, .key = "leader.seq", .data = (uint8_t *)chain, .len = (size_t)cl};
    ty_core_step(s->core, &seq, now);
    /* as the master's shell does: workers/ first (running tasks name them),
     * then runs/, then the rest it reads (cache/, models/, schedules/) */
    for (int pass = 0; pass < 3; pass++)
        for (size_t i = 0; i < n; i++) {
            int is_worker = strncmp(keys[i], "workers/", 8) == 0;
            int is_run = strncmp(keys[i], "runs/", 5) == 0;
            int is_rest = strncmp(keys[i], "cache/", 6) == 0 ||
                          strncmp(keys[i], "models/", 7) == 0 ||
                          strncmp(keys[i], "schedules/", 10) == 0;
            if (!(pass == 0 ? is_worker : pass == 1 ? is_run : is_rest))
                continue;
            zchunk_t *ch = zhashx_lookup(s->kv, keys[i]);
            ty_ev_t ev = {.kind = TY_EV_LOAD,
                          .key = keys[i],
                          .data = zchunk_data(ch),
                          .len = zchunk_size(ch)};
            ty_core_step(s->core, &ev, now);
        }
    free(keys);
}

/* ---- workers ---- */

void sim_workers_init(sim_t *s) {
    s->nworkers = s->o.workers;
    s->workers = ty_xcalloc(s->nworkers, sizeof *s->workers);
    for (size_t i = 0; i < s->nworkers; i++) {
        sim_worker_t *w = &s->workers[i];
        snprintf(w->id, sizeof w->id, "w%04zu", i);
        w->cpus = i % 3 == 0 ? 4 : 2;
        w->gpus = i % 4 == 1 ? 2 : 0;
        w->alive = 1;
        w->next_hb = sim_between(s, 0, SIM_HEARTBEAT_MS);
    }
}

static void sim_attempts_free(sim_worker_t *w) {
    while (w->attempts) {
        sim_attempt_t *a = w->attempts;
        w->attempts = a->next;
        free(a->run);
        free(a->task);
        free(a);
    }
    while (w->unacked) {
        sim_result_t *r = w->unacked;
        w->unacked = r->next;
        ty__task_result__free_unpacked(r->res, NULL);
        free(r);
    }
}

void sim_worker_free(sim_worker_t *w) { sim_attempts_free(w); }

sim_worker_t *sim_worker_by_peer(sim_t *s, const uint8_t *peer, size_t len) {
    if (len < 2 || len > 10 || peer[0] != 'w')
        return NULL;
    size_t i = 0;
    for (size_t k = 1; k < len; k++) {
        if (peer[k] < '0' || peer[k] > '9')
            return NULL;
        i = i * 10 + (size_t)(peer[k] - '0');
    }
    return i < s->nworkers ? &s->workers[i] : NULL;
}

void sim_worker_crash(sim_t *s, sim_worker_t *w) {
    if (!w->alive)
        return;
    /* its attempts die with it (the next start ends its orphans) */
    sim_attempts_free(w);
    w->alive = 0;
    w->registered = 0;
    w->seen_epoch = w->seen_seq = 0; /* a new process */
    w->restart_at = s->now + sim_between(s, 50, 2000);
    s->worker_crashes++;
}

/* What w runs and what it waits to have acknowledged, as Register and
 * Heartbeat list them (refs backs the pointers in l->run). */
typedef struct {
    Ty__TaskRef *refs, **run;
    Ty__TaskResult **unacked;
    size_t nrun, nunacked;
} sim_lists_t;

static void sim_lists(sim_worker_t *w, sim_lists_t *l) {
    memset(l, 0, sizeof *l);
    for (sim_attempt_t *a = w->attempts; a; a = a->next)
        l->nrun++;
    for (sim_result_t *r = w->unacked; r; r = r->next)
        l->nunacked++;
    l->refs = ty_xcalloc(l->nrun ? l->nrun : 1, sizeof *l->refs);
    l->run = ty_xcalloc(l->nrun ? l->nrun : 1, sizeof *l->run);
    l->unacked = ty_xcalloc(l->nunacked ? l->nunacked : 1, sizeof *l->unacked);
    size_t i = 0;
    for (sim_attempt_t *a = w->attempts; a; a = a->next, i++) {
        ty__task_ref__init(&l->refs[i]);
        l->refs[i].run_id = a->run;
        l->refs[i].task = a->task;
        l->refs[i].attempt = a->attempt;
        l->refs[i].epoch = a->epoch;
        l->run[i] = &l->refs[i];
    }
    i = 0;
    for (sim_result_t *r = w->unacked; r; r = r->next)
        l->unacked[i++] = r->res;
}

static void sim_lists_free(sim_lists_t *l) {
    free(l->refs);
    free(l->run);
    free(l->unacked);
}

static void sim_register(sim_t *s, sim_worker_t *w) {
    Ty__Resources res = TY__RESOURCES__INIT;
    res.cpus = w->cpus;
    res.mem_mb = 4096;
    res.gpus = w->gpus;
    sim_lists_t l;
    sim_lists(w, &l);
    Ty__Register reg = TY__REGISTER__INIT;
    reg.worker_id = w->id;
    reg.total = &res;
    reg.hostname = w->id;
    reg.running = l.run;
    reg.n_running = l.nrun;
    reg.unacked = l.unacked;
    reg.n_unacked = l.nunacked;
    reg.seen_epoch = w->seen_epoch;
    reg.seen_seq = w->seen_seq;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    sim_worker_send(s, w, &env);
    sim_lists_free(&l);
}

static void sim_send_result(sim_t *s, sim_worker_t *w, Ty__TaskResult *res) {
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RESULT;
    env.result = res;
    sim_worker_send(s, w, &env);
}

/* An attempt ends: its result is kept until acknowledged, and sent. */
static void sim_end(sim_t *s, sim_worker_t *w, sim_attempt_t *a, int cancelled,
                    const char *interrupted) {
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = a->run;
    ref.task = a->task;
    ref.attempt = a->attempt;
    ref.epoch = a->epoch;
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = &ref;
    res.exit_code = cancelled || interrupted ? 0 : a->exit_code;
    res.term_signal = cancelled || interrupted ? 15 : 0;
    res.cancelled = cancelled;
    res.interrupted = interrupted != NULL;
    res.error = (char *)(interrupted ? interrupted : "");
    res.finished_ms = s->wall0 + s->now;
    /* keep an owned copy: pack and unpack */
    size_t len = ty__task_result__get_packed_size(&res);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__task_result__pack(&res, buf);
    sim_result_t *r = ty_xcalloc(1, sizeof *r);
    r->res = ty__task_result__unpack(NULL, len, buf);
    free(buf);
    r->next = w->unacked;
    w->unacked = r;
    sim_send_result(s, w, r->res);
}

static void sim_attempt_drop(sim_worker_t *w, sim_attempt_t *a) {
    sim_attempt_t **pp = &w->attempts;
    while (*pp != a)
        pp = &(*pp)->next;
    *pp = a->next;
    free(a->run);
    free(a->task);
    free(a);
}

void sim_worker_tick(sim_t *s, sim_worker_t *w) {
    if (!w->alive) {
        if (w->restart_at && s->now >= w->restart_at) {
            w->alive = 1;
            w->restart_at = 0;
            w->registered = 0;
            w->epoch = 0;
            w->last_master = s->now;
            w->next_hb = s->now;
        }
        return;
    }
    for (sim_attempt_t *a = w->attempts, *next; a; a = next) {
        next = a->next;
        if (a->finish_at <= s->now) {
            sim_end(s, w, a, 0, NULL);
            sim_attempt_drop(w, a);
        }
    }
    if (s->now < w->next_hb)
        return;
    w->next_hb += SIM_HEARTBEAT_MS;
    if (s->now - w->last_master > SIM_LEASE_MS && w->attempts) {
        /* cut off: the master has re-queued these by now */
        while (w->attempts) {
            sim_end(s, w, w->attempts, 0, "worker lost contact with the master");
            sim_attempt_drop(w, w->attempts);
        }
    }
    if (!w->registered) {
        sim_register(s, w);
        return;
    }
    if (w->unacked && ++w->hb_unacked >= 3) {
        w->hb_unacked = 0;
        for (sim_result_t *r = w->unacked; r; r = r->next)
            sim_send_result(s, w, r->res);
    }
    Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
    hb.listed = 1;
    hb.seen_epoch = w->seen_epoch;
    hb.seen_seq = w->seen_seq;
    sim_lists_t l;
    sim_lists(w, &l);
    hb.attempts = l.run;
    hb.n_attempts = l.nrun;
    Ty__TaskRef **acks = ty_xcalloc(l.nunacked ? l.nunacked : 1, sizeof *acks);
    for (size_t i = 0; i < l.nunacked; i++)
        acks[i] = l.unacked[i]->ref;
    hb.unacked = acks;
    hb.n_unacked = l.nunacked;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    sim_worker_send(s, w, &env);
    free(acks);
    sim_lists_free(&l);
}

static int sim_ref_is(const Ty__TaskRef *ref, const char *run, const char *task, uint32_t attempt) {
    return ref && strcmp(ref->run_id, run) == 0 && strcmp(ref->task, task) == 0 &&
           ref->attempt == attempt;
}

/* Two attempts of one task may overlap only when the older one's worker was
 * cut off from the master around or since its start: the master gave up on
 * it after a lease of silence, and the worker kills it when it hears
 * nothing for a lease, or the master cancels it when it hears from it. */
static void sim_check_overlap(sim_t *s, sim_worker_t *w, const Ty__TaskRef *ref) {
    for (size_t i = 0; i < s->nworkers; i++) {
        sim_worker_t *v = &s->workers[i];
        if (!v->alive)
            continue;
        for (sim_attempt_t *a = v->attempts; a; a = a->next)
            if (strcmp(a->run, ref->run_id) == 0 && strcmp(a->task, ref->task) == 0 &&
                a->attempt != ref->attempt && a->part == 0 &&
                !(v->silent_until && v->silent_until + 2 * SIM_LEASE_MS > a->started_at))
                sim_fail(s, "%s/%s#%u starts on %s while #%u still runs on %s (not cut off)",
                         ref->run_id, ref->task, ref->attempt, w->id, a->attempt, v->id);
    }
}

void sim_worker_receive(sim_t *s, sim_worker_t *w, const Ty__Envelope *env) {
    w->last_master = s->now;
    if (env->epoch > w->seen_epoch || (env->epoch == w->seen_epoch && env->seq > w->seen_seq)) {
        w->seen_epoch = env->epoch;
        w->seen_seq = env->seq;
    }
    switch (env->body_case) {
    case TY__ENVELOPE__BODY_REGISTER_ACK:
        w->registered = 1;
        if (env->register_ack->epoch > w->epoch)
            w->epoch = env->register_ack->epoch;
        break;
    case TY__ENVELOPE__BODY_HEARTBEAT_ACK:
        if (env->heartbeat_ack->epoch > w->epoch)
            w->epoch = env->heartbeat_ack->epoch;
        break;
    case TY__ENVELOPE__BODY_REREGISTER:
        w->registered = 0;
        sim_register(s, w);
        break;
    case TY__ENVELOPE__BODY_DISPATCH: {
        const Ty__TaskRef *ref = env->dispatch->ref;
        if (!ref || ref->epoch < w->epoch)
            break; /* from a master that no longer leads */
        w->epoch = ref->epoch;
        for (sim_attempt_t *a = w->attempts; a; a = a->next)
            if (sim_ref_is(ref, a->run, a->task, a->attempt))
                return; /* a duplicate */
        sim_check_overlap(s, w, ref);
        sim_attempt_t *a = ty_xcalloc(1, sizeof *a);
        a->started_at = s->now;
        a->run = ty_xstrdup(ref->run_id);
        a->task = ty_xstrdup(ref->task);
        a->attempt = ref->attempt;
        a->part = env->dispatch->part;
        a->epoch = ref->epoch;
        a->finish_at = s->now + sim_between(s, 5, 400);
        a->exit_code = sim_chance(s, 0.15) ? 1 : 0;
        a->next = w->attempts;
        w->attempts = a;
        s->dispatches++;
        break;
    }
    case TY__ENVELOPE__BODY_CANCEL_TASK: {
        const Ty__TaskRef *ref = env->cancel_task->ref;
        if (!ref || ref->epoch < w->epoch)
            break;
        for (sim_attempt_t *a = w->attempts; a; a = a->next)
            if (sim_ref_is(ref, a->run, a->task, a->attempt)) {
                sim_end(s, w, a, 1, NULL);
                sim_attempt_drop(w, a);
                break;
            }
        break;
    }
    case TY__ENVELOPE__BODY_RESULT_ACK:
        for (sim_result_t **pp = &w->unacked; *pp; pp = &(*pp)->next) {
            const Ty__TaskRef *r = (*pp)->res->ref;
            if (env->result_ack->ref &&
                sim_ref_is(env->result_ack->ref, r->run_id, r->task, r->attempt)) {
                sim_result_t *gone = *pp;
                *pp = gone->next;
                ty__task_result__free_unpacked(gone->res, NULL);
                free(gone);
                break;
            }
        }
        break;
    default:
        break;
    }
}

/* ---- clients ---- */

void sim_client_init(sim_t *s) {
    s->sub_by_req = zhashx_new();
    s->submitting = 1;
    s->next_submit = 1;
    s->fire_runs = zhashx_new();
    s->dropped_runs = zhashx_new();
}

#define SIM_SCHED_RESEND_MS 200

/* The client adds the schedule, and sends it again until a master answers
 * (an add of one that exists is an update: its fires stay where they are). */
static void sim_sched_send(sim_t *s) {
    static const char y[] = "name: cron\ntasks:\n  - {name: a, command: [t]}\n";
    Ty__PipelineSpec *spec = NULL;
    char *err = NULL;
    if (ty_dag_load_string(y, strlen(y), "cron.yaml", &spec, &err) != 0)
        abort();
    Ty__ScheduleSpec sp = TY__SCHEDULE_SPEC__INIT;
    sp.name = "cron";
    sp.cron = "* * * * *";
    sp.tz = "UTC";
    sp.catchup = "all";
    sp.max_catchup = 10;
    sp.concurrency = "allow";
    sp.pipeline = spec;
    Ty__ScheduleRequest rq = TY__SCHEDULE_REQUEST__INIT;
    rq.op = "add";
    rq.spec = &sp;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_SCHEDULE;
    env.schedule = &rq;
    s->sched_req = ++s->req_ids;
    s->sched_resend_at = s->now + SIM_SCHED_RESEND_MS;
    ty_ev_t ev = {.kind = TY_EV_SCHEDULE,
                  .peer = (const uint8_t *)"client",
                  .peer_len = 6,
                  .req_id = s->sched_req,
                  .msg = &env};
    sim_core_step(s, &ev);
    ty_dag_free(&spec);
}

static const char *sim_rules[] = {"all_success", "all_done", "one_failed", "none_failed"};

/* A random DAG of 1..6 tasks, each depending on some earlier ones. */
static char *sim_pipeline(sim_t *s) {
    ty_buf_t y = {0};
    ty_buf_printf(&y, "name: p%llu\ntasks:\n", (unsigned long long)(sim_rand(s) % 5));
    int n = (int)sim_between(s, 1, 6);
    for (int i = 0; i < n; i++) {
        ty_buf_printf(&y, "  - name: t%d\n    command: [t]\n", i);
        ty_buf_printf(&y, "    retries: %d\n", (int)sim_between(s, 0, 2));
        if (sim_chance(s, 0.5))
            ty_buf_printf(&y, "    retry_backoff_s: 0.05\n");
        ty_buf_printf(&y, "    priority: %d\n", (int)sim_between(s, 0, 3));
        int gang = sim_chance(s, 0.1); /* an MPI gang across workers (no GPUs: they fit) */
        ty_buf_printf(&y, "    resources: {cpus: %d, gpus: %d}\n", sim_chance(s, 0.8) ? 1 : 2,
                      sim_chance(s, 0.1) && !gang ? 1 : 0);
        if (sim_chance(s, 0.2))
            ty_buf_printf(&y, "    trigger_rule: %s\n", sim_rules[sim_rand(s) % 4]);
        if (gang)
            ty_buf_printf(&y, "    kind: mpi\n    %s\n",
                          sim_chance(s, 0.5) ? "np: 4\n    ranks_per_worker: 2"
                                             : "np: 3\n    max_ranks_per_worker: 2");
        int deps = 0;
        for (int d = 0; d < i; d++)
            if (sim_chance(s, 0.4)) {
                ty_buf_printf(&y, "%s t%d", deps ? "," : "    depends_on: [", d);
                deps++;
            }
        if (deps)
            ty_buf_printf(&y, "]\n");
    }
    return y.data;
}

#define SIM_RESEND_MS 300 /* a submit unanswered this long is sent again */
#define SIM_REFUSED_MS 50 /* ... and one refused, after this */

static void sim_submit_send(sim_t *s, sim_submit_t *q) {
    Ty__PipelineSpec *spec = NULL, *res = NULL;
    char *err = NULL;
    if (ty_dag_load_string(q->yaml, strlen(q->yaml), "sim.yaml", &spec, &err) != 0) {
        sim_fail(s, "a generated pipeline does not load: %s", err ? err : "?");
        free(err);
        return;
    }
    Ty__KV **params = NULL;
    size_t np = 0;
    ty_dag_resolve(spec, NULL, 0, &res, &params, &np, &err);
    ty_dag_free(&spec);
    ty_ev_t ev = {.kind = TY_EV_SUBMIT,
                  .peer = (const uint8_t *)"client",
                  .peer_len = 6,
                  .req_id = ++s->req_ids,
                  .spec = res,
                  .params = params,
                  .nparams = np,
                  .request_id = q->rid};
    char key[24];
    snprintf(key, sizeof key, "%llu", (unsigned long long)ev.req_id);
    zhashx_insert(s->sub_by_req, key, q);
    q->resend_at = s->now + SIM_RESEND_MS;
    sim_core_step(s, &ev);
}

void sim_client_free(sim_t *s) {
    while (s->subs) {
        sim_submit_t *q = s->subs;
        s->subs = q->next;
        free(q->yaml);
        free(q->run_id);
        free(q);
    }
    zhashx_destroy(&s->sub_by_req);
    zhashx_destroy(&s->fire_runs);
    zhashx_destroy(&s->dropped_runs);
}

char *sim_stored_request(sim_t *s, const char *rid, const char *other_than) {
    char *found = NULL;
    for (zchunk_t *ch = zhashx_first(s->kv); ch && !found; ch = zhashx_next(s->kv)) {
        const char *key = zhashx_cursor(s->kv);
        if (strncmp(key, "runs/", 5) != 0 || strchr(key + 5, '/'))
            continue;
        Ty__RunRecord *r = ty__run_record__unpack(NULL, zchunk_size(ch), zchunk_data(ch));
        if (r && strcmp(r->request_id, rid) == 0 &&
            (!other_than || strcmp(r->run_id, other_than) != 0))
            found = ty_xstrdup(r->run_id);
        if (r)
            ty__run_record__free_unpacked(r, NULL);
    }
    return found;
}

void sim_client_tick(sim_t *s) {
    if (s->fenced)
        return;
    if (s->submitting && s->nsubmitted < s->o.runs && s->now >= s->next_submit) {
        s->next_submit = s->now + sim_between(s, 0, 2 * s->o.ms / (int64_t)s->o.runs);
        sim_submit_t *q = ty_xcalloc(1, sizeof *q);
        snprintf(q->rid, sizeof q->rid, "sim-%zu", s->nsubmitted);
        q->yaml = sim_pipeline(s);
        q->next = s->subs;
        s->subs = q;
        s->nsubmitted++;
        sim_submit_send(s, q);
    }
    if (!s->sched_acked && s->now >= s->sched_resend_at)
        sim_sched_send(s);
    for (sim_submit_t *q = s->subs; q; q = q->next)
        if (!q->run_id && q->resend_at <= s->now) {
            s->resent++;
            sim_submit_send(s, q);
        }
    ty_run_t *r = NULL;
    if (s->faults && s->core->nruns && sim_chance(s, 0.0005))
        r = s->core->order[sim_rand(s) % s->core->nruns]; /* NULL: let go of */
    if (r) {
        ty_ev_t ev = {.kind = TY_EV_CANCEL,
                      .peer = (const uint8_t *)"client",
                      .peer_len = 6,
                      .req_id = ++s->req_ids,
                      .run_id = r->id};
        sim_core_step(s, &ev);
    }
}

/* A submit's answer: always the same run for one request id; a refusal
 * means nothing of it is stored. */
void sim_client_reply(sim_t *s, const uint8_t *data, size_t len) {
    Ty__Envelope *env = ty__envelope__unpack(NULL, len, data);
    if (!env) {
        sim_fail(s, "a reply does not decode");
        return;
    }
    s->replies++;
    if (env->req_id == s->sched_req && env->body_case == TY__ENVELOPE__BODY_SCHEDULE_REPLY)
        s->sched_acked = 1;
    char key[24];
    snprintf(key, sizeof key, "%llu", (unsigned long long)env->req_id);
    sim_submit_t *q = zhashx_lookup(s->sub_by_req, key);
    if (q && env->body_case == TY__ENVELOPE__BODY_SUBMIT_REPLY) {
        const char *id = env->submit_reply->run_id;
        if (q->run_id && strcmp(q->run_id, id) != 0)
            sim_fail(s, "submit %s answered with run %s and run %s", q->rid, q->run_id, id);
        else if (!q->run_id)
            q->run_id = ty_xstrdup(id);
    } else if (q && env->body_case == TY__ENVELOPE__BODY_ERROR) {
        char *stored = sim_stored_request(s, q->rid, NULL);
        if (env->error->code != TY_EUNAVAIL)
            sim_fail(s, "submit %s refused: %s", q->rid, env->error->message);
        else if (stored)
            sim_fail(s, "submit %s refused as not stored, but run %s holds it", q->rid, stored);
        free(stored);
        s->refused++;
        if (!q->run_id)
            q->resend_at = s->now + SIM_REFUSED_MS;
    }
    ty__envelope__free_unpacked(env, NULL);
}

int sim_all_done(sim_t *s) {
    for (sim_submit_t *q = s->subs; q; q = q->next)
        if (!q->run_id)
            return 0;
    for (size_t i = 0; i < s->core->nruns; i++) {
        if (!s->core->order[i])
            continue;
        unsigned st = s->core->order[i]->state;
        if (st == TY_RUN_PENDING || st == TY_RUN_RUNNING)
            return 0;
    }
    return ty_core_idle(s->core) && !s->txns;
}
