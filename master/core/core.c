/* The core's entry point: events in, effects out (see core.h). */
#include "master/core/core_int.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

void ty_core_opts_default(ty_core_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->heartbeat_ms = 1000;
    o->worker_lease_ms = 5000;
    o->lost_limit = 5;
    o->retry_ms = 500;
    o->seed = 1;
    o->retain_runs = 100;
    o->retain_tasks = 5000;
    o->retain_ms = 600000;
    o->history_ms = 30LL * 24 * 3600 * 1000;
    o->gc_every_ms = 3600 * 1000;
    o->store_stall_ms = 2000;
    o->backfill_ms = 300000;
}

int ty_core_create(ty_core_t **out, const ty_core_opts_t *o) {
    if (!out || !o || o->heartbeat_ms <= 0 || o->worker_lease_ms <= 0 || o->lost_limit <= 0 ||
        o->retry_ms <= 0 || o->retain_runs < 0 || o->retain_tasks < 0 || o->retain_ms < 0 ||
        o->history_ms < 0 || o->gc_every_ms <= 0 || o->store_stall_ms <= 0 || o->backfill_ms < 0)
        return TY_EINVAL;
    ty_core_t *c = ty_xcalloc(1, sizeof *c);
    c->o = *o;
    c->rng = o->seed ? o->seed : 1;
    c->runs = zhashx_new();
    c->workers = zhashx_new();
    c->requests = zhashx_new();
    ty_cache_init(c);
    ty_sched_init(c);
    ty_models_init(c);
    c->req_tail = &c->req_head;
    c->done_tail = &c->done_head;
    ty_persist_init(c);
    *out = c;
    return 0;
}

void ty_fx_clear(ty_fx_t *fx) {
    if (!fx)
        return;
    free(fx->peer);
    free(fx->data);
    for (size_t i = 0; i < fx->nputs; i++) {
        free(fx->puts[i].key);
        free(fx->puts[i].val);
    }
    free(fx->puts);
    free(fx->run);
    free(fx->task);
    free(fx->before);
    for (size_t i = 0; i < fx->nshas; i++)
        free(fx->shas[i]);
    free(fx->shas);
    memset(fx, 0, sizeof *fx);
}

void ty_core_destroy(ty_core_t **cp) {
    if (!cp || !*cp)
        return;
    ty_core_t *c = *cp;
    ty_persist_fini(c);
    for (size_t i = c->fx_head; i < c->fx_len; i++)
        ty_fx_clear(&c->fx[i]);
    free(c->fx);
    for (size_t i = 0; i < c->nruns; i++)
        ty_runs_free(c->order[i]); /* NULL in the holes */
    free(c->order);
    for (size_t i = 0; i < c->nworkers; i++)
        ty_fleet_free(c->wlist[i]);
    free(c->wlist);
    zhashx_destroy(&c->runs);
    zhashx_destroy(&c->workers);
    while (c->req_head) {
        struct ty_request *q = c->req_head;
        c->req_head = q->next;
        free(q->id);
        free(q->run_id);
        free(q);
    }
    ty_cache_fini(c);
    ty_sched_fini(c);
    ty_models_fini(c);
    zhashx_destroy(&c->requests);
    free(c->heap);
    free(c->pheap);
    free(c->delayed);
    free(c);
    *cp = NULL;
}

/* ---- effects ---- */

void ty_core_emit(ty_core_t *c, const ty_fx_t *fx) {
    if (c->fx_head > 0 && c->fx_head == c->fx_len)
        c->fx_head = c->fx_len = 0;
    if (c->fx_len == c->fx_cap) {
        if (c->fx_head > 0) { /* slide the unread ones down */
            memmove(c->fx, c->fx + c->fx_head, (c->fx_len - c->fx_head) * sizeof *c->fx);
            c->fx_len -= c->fx_head;
            c->fx_head = 0;
        }
        if (c->fx_len == c->fx_cap) {
            c->fx_cap = c->fx_cap ? c->fx_cap * 2 : 64;
            c->fx = ty_xrealloc(c->fx, c->fx_cap * sizeof *c->fx);
        }
    }
    c->fx[c->fx_len++] = *fx;
}

int ty_core_fx_pop(ty_core_t *c, ty_fx_t *out) {
    if (c->fx_head == c->fx_len)
        return 0;
    *out = c->fx[c->fx_head++];
    return 1;
}

void ty_core_notify(ty_core_t *c, ty_run_t *r) {
    if (r->notify)
        return;
    r->notify = 1;
    r->notify_next = c->notify;
    c->notify = r;
}

static void ty_core_notify_flush(ty_core_t *c) {
    /* oldest first is not needed: each waiter answers for its own run */
    while (c->notify) {
        ty_run_t *r = c->notify;
        c->notify = r->notify_next;
        ty_fx_t fx = {.kind = TY_FX_NOTIFY};
        fx.run = ty_xstrdup(r->id);
        r->notify = 0;
        r->notify_next = NULL;
        ty_core_emit(c, &fx);
    }
}

static ty_outmsg_t *ty_outmsg_new(ty_peer_kind_t kind, const uint8_t *peer, size_t peer_len,
                                  uint8_t *data, size_t len) {
    ty_outmsg_t *o = ty_xcalloc(1, sizeof *o);
    o->kind = kind;
    o->peer = ty_xmalloc(peer_len ? peer_len : 1);
    memcpy(o->peer, peer, peer_len);
    o->peer_len = peer_len;
    o->data = data;
    o->len = len;
    return o;
}

void ty_core_send(ty_core_t *c, ty_peer_kind_t kind, const uint8_t *peer, size_t peer_len,
                  uint8_t *data, size_t len) {
    ty_persist_queue(c, ty_outmsg_new(kind, peer, peer_len, data, len));
}

static ty_outmsg_t *ty_pack_env(ty_core_t *c, ty_peer_kind_t kind, const uint8_t *peer,
                                size_t peer_len, Ty__Envelope *env) {
    env->version = 1; /* TY_WIRE_VERSION */
    if (kind == TY_PEER_WORKER) {
        env->epoch = c->o.epoch;
        env->seq = ++c->msg_seq;
    }
    size_t len = ty__envelope__get_packed_size(env);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__envelope__pack(env, buf);
    return ty_outmsg_new(kind, peer, peer_len, buf, len);
}

void ty_core_send_env(ty_core_t *c, ty_peer_kind_t kind, const uint8_t *peer, size_t peer_len,
                      Ty__Envelope *env) {
    ty_persist_queue(c, ty_pack_env(c, kind, peer, peer_len, env));
}

static void ty_core_send_now(ty_core_t *c, ty_peer_kind_t kind, const uint8_t *peer,
                             size_t peer_len, Ty__Envelope *env) {
    ty_outmsg_t *o = ty_pack_env(c, kind, peer, peer_len, env);
    ty_fx_t fx = {.kind = TY_FX_SEND, .peer_kind = o->kind};
    fx.peer = o->peer;
    fx.peer_len = o->peer_len;
    fx.data = o->data;
    fx.len = o->len;
    ty_core_emit(c, &fx);
    free(o);
}

void ty_core_send_dispatch(ty_core_t *c, const ty_task_t *t, const ty_worker_t *w,
                           Ty__Envelope *env) {
    ty_outmsg_t *o = ty_pack_env(c, TY_PEER_WORKER, w->peer, w->peer_len, env);
    o->run = ty_xstrdup(t->run->id);
    o->task_ix = (uint32_t)(t - t->run->tasks);
    o->attempt = t->attempt;
    ty_persist_queue(c, o);
}

/* ---- lookups ---- */

ty_run_t *ty_core_find_run(const ty_core_t *c, const char *id) {
    return id ? zhashx_lookup(c->runs, id) : NULL;
}

ty_task_t *ty_core_find_task(const ty_core_t *c, const char *run_id, const char *task) {
    ty_run_t *r = ty_core_find_run(c, run_id);
    if (!r || !task)
        return NULL;
    int i = ty_runs_task_index(r, task);
    return i < 0 ? NULL : &r->tasks[i];
}

ty_worker_t *ty_core_find_worker(const ty_core_t *c, const char *id) {
    return id ? zhashx_lookup(c->workers, id) : NULL;
}

/* splitmix64: the core's only source of randomness, seeded by its options */
uint64_t ty_core_rand(ty_core_t *c) { return ty_splitmix64(&c->rng); }

/* ---- request ids: a repeated submit gets the run the first one made ---- */

static void ty_requests_expire(ty_core_t *c) {
    while (c->req_head && (c->nrequests > TY_REQUEST_MAX ||
                           c->req_head->at < c->now.wall_ms - TY_REQUEST_KEEP_MS)) {
        struct ty_request *q = c->req_head;
        c->req_head = q->next;
        if (!c->req_head)
            c->req_tail = &c->req_head;
        if (zhashx_lookup(c->requests, q->id) == q)
            zhashx_delete(c->requests, q->id);
        free(q->id);
        free(q->run_id);
        free(q);
        c->nrequests--;
    }
}

void ty_core_request_seen(ty_core_t *c, const char *request_id, const char *run_id,
                          int64_t at_wall_ms) {
    if (at_wall_ms < c->now.wall_ms - TY_REQUEST_KEEP_MS)
        return;
    struct ty_request *q = ty_xcalloc(1, sizeof *q);
    q->id = ty_xstrdup(request_id);
    q->run_id = ty_xstrdup(run_id);
    q->at = at_wall_ms;
    *c->req_tail = q;
    c->req_tail = &q->next;
    c->nrequests++;
    zhashx_update(c->requests, q->id, q);
    ty_requests_expire(c);
}

/* ---- client requests that change state ---- */

static void ty_reply_error_env(ty_core_t *c, const ty_ev_t *ev, int code, const char *msg,
                               int now) {
    Ty__ErrorReply e = TY__ERROR_REPLY__INIT;
    e.code = code;
    e.message = (char *)msg;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.req_id = ev->req_id;
    env.body_case = TY__ENVELOPE__BODY_ERROR;
    env.error = &e;
    if (now)
        ty_core_send_now(c, TY_PEER_CLIENT, ev->peer, ev->peer_len, &env);
    else
        ty_core_send_env(c, TY_PEER_CLIENT, ev->peer, ev->peer_len, &env);
}

void *ty_pb_dup(const ProtobufCMessage *m) {
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    protobuf_c_message_pack(m, buf);
    void *out = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    free(buf);
    return out;
}

void ty_core_reply_error(ty_core_t *c, const ty_ev_t *ev, int code, const char *msg) {
    ty_reply_error_env(c, ev, code, msg, 0);
}

/* An answer that depends on no pending write: not held behind them. */
static void ty_reply_error_now(ty_core_t *c, const ty_ev_t *ev, int code, const char *msg) {
    ty_reply_error_env(c, ev, code, msg, 1);
}

static void ty_reply_submit(ty_core_t *c, const ty_ev_t *ev, const char *run_id, unsigned state) {
    Ty__SubmitReply sr = TY__SUBMIT_REPLY__INIT;
    sr.run_id = (char *)run_id;
    sr.state = state;
    /* a task no worker up could ever hold (too large, labels no one has, a
     * gang larger than the cluster) says so now, not only in status */
    const ty_run_t *r = zhashx_lookup(c->runs, run_id);
    char *warn[16];
    for (size_t i = 0; r && c->npheap > 0 && i < r->ntasks && i < 1000 && sr.n_warnings < 16;
         i++) { /* (bounded: the rest say it in status) */
        char *why = ty_task_state_terminal(r->tasks[i].state)
                        ? NULL
                        : ty_queue_never_fits(c, r->tasks[i].spec);
        if (why)
            warn[sr.n_warnings++] = ty_xasprintf("%s: %s", r->tasks[i].spec->name, why);
        free(why);
    }
    sr.warnings = warn;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.req_id = ev->req_id;
    env.body_case = TY__ENVELOPE__BODY_SUBMIT_REPLY;
    env.submit_reply = &sr;
    /* behind the pending writes: it leaves once the run is durable */
    ty_core_send_env(c, TY_PEER_CLIENT, ev->peer, ev->peer_len, &env);
    for (size_t i = 0; i < sr.n_warnings; i++)
        free(warn[i]);
}

static int ty_on_submit(ty_core_t *c, const ty_ev_t *ev) {
    Ty__PipelineSpec *spec = ev->spec;
    ty_requests_expire(c);
    const struct ty_request *seen =
        ev->request_id && *ev->request_id ? zhashx_lookup(c->requests, ev->request_id) : NULL;
    if (seen) {
        ty_info("submit %s repeated: run %s", seen->id, seen->run_id);
        ty_run_t *r = zhashx_lookup(c->runs, seen->run_id);
        ty_reply_submit(c, ev, seen->run_id, r ? r->state : TY_RUN_RUNNING);
        ty_dag_free(&spec);
        ty_dag_kvs_free(ev->params, ev->nparams);
        return 0;
    }
    if (!spec || spec->n_tasks == 0) {
        ty_dag_free(&spec);
        ty_dag_kvs_free(ev->params, ev->nparams);
        ty_core_reply_error(c, ev, TY_EINVAL, "empty pipeline");
        return TY_EINVAL;
    }
    int64_t stalled = ty_persist_stalled_ms(c);
    if (ev->quiet_since && c->now.mono_ms - ev->quiet_since > stalled)
        stalled = c->now.mono_ms - ev->quiet_since;
    if (stalled >= c->o.store_stall_ms) {
        /* Nothing of it is stored, and nothing will be: a definite answer
         * now, not queued behind the writes that wait for etcd. */
        ty_dag_free(&spec);
        ty_dag_kvs_free(ev->params, ev->nparams);
        char *msg = ty_xasprintf("etcd has not answered for %.1f s: submit refused, "
                                 "nothing was stored",
                                 (double)stalled / 1000.0);
        ty_warn("%s", msg);
        ty_reply_error_now(c, ev, TY_EUNAVAIL, msg);
        free(msg);
        return TY_EUNAVAIL;
    }
    if (ev->raw_spec) { /* the validated spec, as submitted, under pipelines/<name> */
        uint8_t *val = ty_xmalloc(ev->raw_len ? ev->raw_len : 1);
        memcpy(val, ev->raw_spec, ev->raw_len);
        ty_persist_put(c, ty_xasprintf("pipelines/%s", spec->name), val, ev->raw_len);
    }
    char *run_id = NULL;
    do { /* ids are random, so a clash is rare; it is still never reused */
        free(run_id);
        run_id = ty_xasprintf("%s-%08x", spec->name, (unsigned)(ty_core_rand(c) >> 32));
    } while (ty_core_find_run(c, run_id));
    ty_run_t *r = ty_runs_new(run_id, spec, ev->params, ev->nparams);
    if (ev->retry_of) { /* what does not run again comes from the old run, as it was */
        const ty_run_t *old = ev->retry_of;
        r->retry_of = ty_xstrdup(old->id);
        for (size_t i = 0; i < r->ntasks && i < old->ntasks; i++) {
            if (ev->rerun[i])
                continue;
            ty_task_t *t = &r->tasks[i];
            const ty_task_t *o = &old->tasks[i];
            t->state = TY_TASK_CACHED;
            t->attempt = 0;
            t->started_ms = o->started_ms;
            t->finished_ms = o->finished_ms;
            ty_runs_set_reason(t, ty_xasprintf("from run %s", old->id));
            ty_runs_set_outputs(t, o->outputs, o->noutputs);
            ty_runs_set_tags(t, o->tags, o->ntags);
        }
    }
    r->owner = ev->owner && *ev->owner ? ty_xstrdup(ev->owner) : NULL;
    if (ev->request_id && *ev->request_id) {
        r->request_id = ty_xstrdup(ev->request_id);
        ty_core_request_seen(c, r->request_id, run_id, c->now.wall_ms);
    }
    ty_runs_start(c, r);
    ty_info("run %s submitted (%zu tasks)", run_id, r->ntasks);
    ty_reply_submit(c, ev, run_id, r->state);
    free(run_id);
    return 0;
}

static int ty_on_cancel(ty_core_t *c, const ty_ev_t *ev) {
    ty_run_t *r = ty_core_find_run(c, ev->run_id);
    if (!r) {
        ty_core_reply_error(c, ev, TY_ENOENT, "no such run");
        return TY_ENOENT;
    }
    if (ty_runs_cancel(c, r) != 0) {
        char *msg = ty_xasprintf("run %s is already %s", r->id, ty_run_state_name(r->state));
        ty_core_reply_error(c, ev, TY_ESTATE, msg);
        free(msg);
        return TY_ESTATE;
    }
    Ty__CancelReply cr = TY__CANCEL_REPLY__INIT;
    cr.state = r->state;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.req_id = ev->req_id;
    env.body_case = TY__ENVELOPE__BODY_CANCEL_REPLY;
    env.cancel_reply = &cr;
    ty_core_send_env(c, TY_PEER_CLIENT, ev->peer, ev->peer_len, &env);
    return 0;
}

/* pins/<run>: "1" pinned (its outputs are kept by `trainyard gc`, its
 * records by the history's drop), "0" not; the run's existence is the
 * request handler's to check. */
static int ty_on_pin(ty_core_t *c, const ty_ev_t *ev) {
    if (!ev->run_id || !*ev->run_id || strchr(ev->run_id, '/')) {
        ty_core_reply_error(c, ev, TY_EINVAL, "bad run id");
        return TY_EINVAL;
    }
    uint8_t *val = ty_xmalloc(1);
    val[0] = ev->status ? '1' : '0';
    ty_persist_put(c, ty_xasprintf("pins/%s", ev->run_id), val, 1);
    Ty__PinReply pr = TY__PIN_REPLY__INIT;
    pr.run_id = (char *)ev->run_id;
    pr.pinned = ev->status != 0;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.req_id = ev->req_id;
    env.body_case = TY__ENVELOPE__BODY_PIN_REPLY;
    env.pin_reply = &pr;
    ty_core_send_env(c, TY_PEER_CLIENT, ev->peer, ev->peer_len, &env); /* once durable */
    return 0;
}

/* ---- the entry point ---- */

static void ty_core_tick(ty_core_t *c) {
    ty_runs_due(c);
    if (c->serving)
        ty_sched_tick(c);
    if (c->serving && c->now.mono_ms >= c->next_sweep) {
        ty_fleet_sweep(c);
        int64_t every = c->o.heartbeat_ms / 2 > 0 ? c->o.heartbeat_ms / 2 : 1;
        c->next_sweep = c->now.mono_ms + every;
    }
    ty_persist_retry(c);
    if (c->serving && c->o.history_ms > 0 && c->now.mono_ms >= c->next_gc) {
        /* runs that ended more than history_ms ago leave the store */
        c->next_gc = c->now.mono_ms + c->o.gc_every_ms;
        ty_fx_t fx = {.kind = TY_FX_DROP};
        char *k = ty_runs_done_key("", c->now.wall_ms - c->o.history_ms);
        k[strlen(k) - 1] = '\0'; /* done/<t> : every key of an earlier t sorts before it */
        fx.before = k;
        fx.epoch = c->o.epoch;
        ty_core_emit(c, &fx);
    }
}

static void ty_core_flush(ty_core_t *c) {
    if (c->need_schedule)
        ty_queue_pass(c);
    ty_core_notify_flush(c);
    ty_sched_flush(c);
    ty_persist_flush(c);
    ty_runs_retain(c);
}

int ty_core_step(ty_core_t *c, const ty_ev_t *ev, ty_time_t now) {
    if (c->fenced) {
        if (ev->kind == TY_EV_SUBMIT) {
            Ty__PipelineSpec *spec = ev->spec;
            ty_dag_free(&spec);
            ty_dag_kvs_free(ev->params, ev->nparams);
        }
        return TY_ESTALE;
    }
    c->now = now;
    int rc = 0;
    switch (ev->kind) {
    case TY_EV_TICK:
        ty_core_tick(c);
        break;
    case TY_EV_FLUSH:
        ty_core_flush(c);
        break;
    case TY_EV_WORKER_MSG:
        if (ev->msg && c->serving)
            ty_fleet_message(c, ev->peer, ev->peer_len, ev->msg);
        break;
    case TY_EV_SUBMIT:
        rc = ty_on_submit(c, ev);
        break;
    case TY_EV_CANCEL:
        rc = ty_on_cancel(c, ev);
        break;
    case TY_EV_PIN:
        rc = ty_on_pin(c, ev);
        break;
    case TY_EV_CHECKED:
        if (ev->run_id && ev->task)
            ty_cache_checked(c, ev->run_id, ev->task, ev->status);
        break;
    case TY_EV_MODEL:
        rc = c->serving ? ty_models_request(c, ev) : TY_EUNAVAIL;
        break;
    case TY_EV_SCHEDULE:
        rc = c->serving ? ty_sched_request(c, ev) : TY_EUNAVAIL;
        break;
    case TY_EV_REVOKED:
        ty_fleet_revoke(c, ev->key);
        break;
    case TY_EV_DRAIN:
        rc = c->serving ? ty_fleet_drain(c, ev) : TY_EUNAVAIL;
        break;
    case TY_EV_BLOBS_GONE:
        if (c->serving)
            ty_cache_blobs_gone(c, ev->shas, ev->nshas);
        break;
    case TY_EV_REPLY: {
        uint8_t *data = ty_xmalloc(ev->len ? ev->len : 1);
        memcpy(data, ev->data, ev->len);
        ty_core_send(c, TY_PEER_CLIENT, ev->peer, ev->peer_len, data, ev->len);
        break;
    }
    case TY_EV_TXN_DONE:
        ty_persist_done(c, ev->flight, ev->status);
        break;
    case TY_EV_LOAD:
        if (ev->key && ev->data)
            ty_persist_load(c, ev->key, ev->data, ev->len);
        break;
    case TY_EV_SERVE:
        ty_runs_recover(c);
        c->serving = 1;
        c->grace_until = now.mono_ms + c->o.worker_lease_ms;
        c->next_sweep = now.mono_ms;
        c->next_gc = now.mono_ms; /* a first look at once */
        break;
    default:
        rc = TY_EINVAL;
        break;
    }
    return rc;
}

int64_t ty_core_deadline(const ty_core_t *c) {
    if (c->fenced)
        return 0;
    int64_t d = 0;
#define TY_EARLIER(x)                                                                              \
    do {                                                                                           \
        int64_t v_ = (x);                                                                          \
        if (v_ && (!d || v_ < d))                                                                  \
            d = v_;                                                                                \
    } while (0)
    if (c->serving)
        TY_EARLIER(c->next_sweep);
    if (c->serving && c->o.history_ms > 0)
        TY_EARLIER(c->next_gc);
    TY_EARLIER(c->retry_at);
    if (c->serving && c->sched_due_ms) { /* a wall time; looked at every second at least,
                                            since the wall clock may be set meanwhile */
        int64_t left = c->sched_due_ms - c->now.wall_ms;
        TY_EARLIER(c->now.mono_ms + (left < 0 ? 0 : left > 1000 ? 1000 : left));
    }
    if (c->next_delay) { /* back-off ends are wall times */
        int64_t left = c->next_delay - c->now.wall_ms;
        TY_EARLIER(c->now.mono_ms + (left > 0 ? left : 0));
    }
#undef TY_EARLIER
    return d;
}

int ty_core_idle(const ty_core_t *c) { return ty_persist_idle(c) && !c->open.out; }

void ty_core_stats(const ty_core_t *c, ty_core_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->txns = c->txns;
    out->ops = c->ops;
    out->dispatches = c->dispatches;
    out->txns_behind = c->behind;
    out->rejected_msgs = c->rejected_msgs;
    out->last_reject = c->last_reject ? c->last_reject : "";
    out->runs = c->nlive;
    out->runs_finished = c->ndone_runs;
    out->tasks_finished = c->ndone_tasks;
    out->runs_released = c->released;
    out->workers = c->nworkers;
}
