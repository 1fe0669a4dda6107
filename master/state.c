/* Write-ahead persistence.  Changes made while handling messages and timers
 * mark runs and tasks dirty in the open batch; the check handle at the end of
 * the loop tick turns the batch into epoch-guarded etcd txns.  Outgoing
 * messages queued meanwhile (dispatches, acks, replies) wait in the batch's
 * outbox and leave only after those txns commit, so nothing outside the
 * master ever sees a state that etcd does not hold. */
#include "master/master.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define TY_TXN_MAX_OPS 120 /* etcd's default cap is 128 per txn */

char *ty_state_key(const ty_master_t *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *tail = ty_xvasprintf(fmt, ap);
    va_end(ap);
    char *k = ty_xasprintf("%s%s", m->o.prefix, tail);
    free(tail);
    return k;
}

static void ty_batch_init(ty_batch_t *b) {
    memset(b, 0, sizeof *b);
    b->out_tail = &b->out;
}

void ty_state_init(ty_master_t *m) { ty_batch_init(&m->open); }

static void ty_out_drop(ty_outmsg_t *o) {
    while (o) {
        ty_outmsg_t *next = o->next;
        zframe_destroy(&o->identity);
        zframe_destroy(&o->payload);
        free(o);
        o = next;
    }
}

static void ty_flight_free(ty_flight_t *f);
static void ty_batch_free_raw(ty_batch_t *b);

void ty_state_fini(ty_master_t *m) {
    while (m->flights) {
        ty_flight_t *f = m->flights;
        m->flights = f->next;
        ty_out_drop(f->raw.out);
        ty_flight_free(f);
    }
    m->nflights = 0;
    ty_out_drop(m->open.out);
    ty_batch_free_raw(&m->open);
    ty_batch_init(&m->open);
}

void ty_state_mark_run(ty_master_t *m, ty_run_t *r) {
    r->version++;
    if (r->dirty)
        return;
    r->dirty = 1;
    r->dirty_next = m->open.runs;
    m->open.runs = r;
    m->open.nops++;
}

void ty_state_mark_task(ty_master_t *m, ty_task_t *t) {
    t->run->version++;
    if (t->dirty)
        return;
    t->dirty = 1;
    t->dirty_next = m->open.tasks;
    m->open.tasks = t;
    m->open.nops++;
}

void ty_state_put_raw(ty_master_t *m, const char *key, uint8_t *val, size_t len) {
    ty_batch_t *b = &m->open;
    b->raw_keys = ty_xrealloc(b->raw_keys, (b->nraw + 1) * sizeof(char *));
    b->raw_vals = ty_xrealloc(b->raw_vals, (b->nraw + 1) * sizeof(uint8_t *));
    b->raw_lens = ty_xrealloc(b->raw_lens, (b->nraw + 1) * sizeof(size_t));
    b->raw_keys[b->nraw] = ty_xstrdup(key);
    b->raw_vals[b->nraw] = val;
    b->raw_lens[b->nraw] = len;
    b->nraw++;
    b->nops++;
}

static void ty_out_send_now(ty_master_t *m, ty_outmsg_t *o) {
    if ((o->identity && ty_wire_send_frame(&o->identity, o->sock, 1) != 0) ||
        ty_wire_send_frame(&o->payload, o->sock, 0) != 0)
        ty_debug("send dropped: peer gone or queue full");
    zframe_destroy(&o->payload);
    ty_wire_poll_kick(o->sock == m->wsock ? m->wpoll : m->cpoll);
    free(o);
}

int ty_state_recv(ty_master_t *m, zsock_t *sock, zframe_t **id, Ty__Envelope **env) {
    int rc = ty_wire_recv(sock, 1, m->o.max_frame, id, env);
    if (rc == 0)
        return 0;
    if (rc == TY_ETOOBIG)
        m->rejected_size++;
    else if (rc == TY_EPROTO)
        m->rejected_decode++;
    if (rc != TY_ENOENT)
        ty_warn("%s socket: rejected a message: %s", sock == m->wsock ? "worker" : "client",
                ty_strerror(rc));
    zframe_destroy(id);
    return rc;
}

int ty_state_idle(const ty_master_t *m) { return m->open.nops == 0 && m->nflights == 0; }

void ty_state_send(ty_master_t *m, zsock_t *sock, zframe_t *identity, Ty__Envelope *env) {
    ty_outmsg_t *o = ty_xcalloc(1, sizeof *o);
    o->sock = sock;
    o->identity = identity ? zframe_dup(identity) : NULL;
    o->payload = ty_wire_encode(env);
    if (ty_state_idle(m) && !m->open.out) {
        ty_out_send_now(m, o);
        return;
    }
    *m->open.out_tail = o;
    m->open.out_tail = &o->next;
}

void ty_state_task_record(const ty_task_t *t, Ty__TaskRecord *rec) {
    ty__task_record__init(rec);
    rec->name = t->spec->name;
    rec->state = t->state;
    rec->attempt = t->attempt;
    rec->worker = t->worker ? t->worker : (char *)"";
    rec->exit_code = t->exit_code;
    rec->term_signal = t->term_signal;
    rec->queued_ms = t->queued_ms;
    rec->started_ms = t->started_ms;
    rec->finished_ms = t->finished_ms;
    rec->not_before_ms = t->not_before_ms;
    rec->failures = t->failures;
    rec->lost = t->lost;
    rec->reason = t->reason ? t->reason : (char *)"";
    rec->gpu_ids = t->gpu_ids;
    rec->n_gpu_ids = t->n_gpu;
    rec->progress = t->progress;
    rec->progress_text = t->progress_text ? t->progress_text : (char *)"";
    if (t->nmetrics) {
        Ty__Metric *ms = ty_xcalloc(t->nmetrics, sizeof *ms);
        rec->metrics = ty_xcalloc(t->nmetrics, sizeof *rec->metrics);
        for (size_t i = 0; i < t->nmetrics; i++) {
            ty__metric__init(&ms[i]);
            ms[i].name = t->metrics[i].name;
            ms[i].value = t->metrics[i].value;
            ms[i].step = t->metrics[i].step;
            rec->metrics[i] = &ms[i];
        }
        rec->n_metrics = t->nmetrics;
    }
}

void ty_state_task_record_clear(Ty__TaskRecord *rec) {
    if (rec->n_metrics) {
        free(rec->metrics[0]);
        free(rec->metrics);
    }
    rec->metrics = NULL;
    rec->n_metrics = 0;
}

void ty_state_run_record(const ty_run_t *r, Ty__RunRecord *rec, int with_spec) {
    ty__run_record__init(rec);
    rec->run_id = r->id;
    rec->pipeline = r->spec->name;
    rec->spec = with_spec ? r->spec : NULL;
    rec->state = r->state;
    rec->created_ms = r->created_ms;
    rec->started_ms = r->started_ms;
    rec->finished_ms = r->finished_ms;
    rec->seq = r->seq;
    rec->params = r->params;
    rec->n_params = r->nparams;
}

/* ---- flushing ---- */

static void ty_state_commit_done(int status, const ty_etcd_resp_t *resp, void *arg);

static void ty_out_release(ty_master_t *m, ty_outmsg_t *o) {
    while (o) {
        ty_outmsg_t *next = o->next;
        ty_out_send_now(m, o);
        o = next;
    }
}

static void ty_batch_free_raw(ty_batch_t *b) {
    for (size_t i = 0; i < b->nraw; i++) {
        free(b->raw_keys[i]);
        free(b->raw_vals[i]);
    }
    free(b->raw_keys);
    free(b->raw_vals);
    free(b->raw_lens);
}

/* Build and send the txns of f from the records' current values. */
static void ty_flight_send(ty_flight_t *f) {
    ty_master_t *m = f->m;
    ty_etcd_txn_t *txn = NULL;
    char *leader = ty_state_key(m, "leader");
    size_t nr = 0, nt = 0, nraw = 0;
    f->failed = 0;
    f->pending = 1; /* held until every txn is queued */
    for (;;) {
        char *key = NULL;
        uint8_t *val = NULL;
        size_t len = 0;
        int own = 1;
        if (nr < f->nruns) {
            ty_run_t *r = f->runs[nr++];
            Ty__RunRecord rec;
            ty_state_run_record(r, &rec, 1);
            len = ty__run_record__get_packed_size(&rec);
            val = ty_xmalloc(len);
            ty__run_record__pack(&rec, val);
            key = ty_state_key(m, "runs/%s", r->id);
        } else if (nt < f->ntasks) {
            ty_task_t *t = f->tasks[nt++];
            Ty__TaskRecord rec;
            ty_state_task_record(t, &rec);
            len = ty__task_record__get_packed_size(&rec);
            val = ty_xmalloc(len);
            ty__task_record__pack(&rec, val);
            ty_state_task_record_clear(&rec);
            key = ty_state_key(m, "runs/%s/tasks/%s", t->run->id, t->spec->name);
        } else if (nraw < f->raw.nraw) {
            key = f->raw.raw_keys[nraw];
            val = f->raw.raw_vals[nraw];
            len = f->raw.raw_lens[nraw];
            own = 0;
            nraw++;
        }
        if (key) {
            if (!txn) {
                ty_etcd_txn_create(&txn);
                /* fencing: only the holder of this epoch's leader key may write */
                ty_etcd_txn_compare(txn, leader, strlen(leader), TY_ETCD_TGT_CREATE,
                                    TY_ETCD_CMP_EQUAL, (int64_t)m->epoch);
            }
            ty_etcd_txn_put(txn, 1, key, strlen(key), val, len, 0);
            m->ops++;
            if (own) {
                free(key);
                free(val);
            }
        }
        if (txn && (!key || ty_etcd_txn_ops(txn) >= TY_TXN_MAX_OPS)) {
            f->pending++;
            m->txns++;
            if (ty_etcd_txn_commit(m->etcd, &txn, ty_state_commit_done, f) != 0) {
                f->pending--;
                f->failed = 1;
            }
        }
        if (!key)
            break;
    }
    free(leader);
    ty_state_commit_done(0, NULL, f); /* drop the hold */
}

static void ty_state_retry_cb(uv_timer_t *h) {
    ty_master_t *m = h->data;
    for (ty_flight_t *f = m->flights; f; f = f->next)
        if (f->failed && f->pending == 0 && !f->done)
            ty_flight_send(f);
}

static void ty_flight_free(ty_flight_t *f) {
    for (size_t i = 0; i < f->nruns; i++)
        f->runs[i]->inflight--;
    for (size_t i = 0; i < f->ntasks; i++)
        f->tasks[i]->inflight--;
    free(f->runs);
    free(f->tasks);
    ty_batch_free_raw(&f->raw);
    free(f);
}

static void ty_state_commit_done(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_flight_t *f = arg;
    ty_master_t *m = f->m;
    if (status != 0) {
        f->failed = 1;
    } else if (resp && !resp->succeeded) {
        ty_error("etcd rejected a write: epoch %llu is no longer the leader; exiting",
                 (unsigned long long)m->epoch);
        exit(3);
    }
    if (--f->pending > 0)
        return;
    if (f->failed) {
        ty_warn("etcd write failed; retrying the batch");
        if (!uv_is_active((uv_handle_t *)&m->retry))
            uv_timer_start(&m->retry, ty_state_retry_cb, 500, 0);
        return;
    }
    f->done = 1;
    /* outboxes leave in batch order: a later batch may depend on an earlier one */
    while (m->flights && m->flights->done) {
        ty_flight_t *head = m->flights;
        m->flights = head->next;
        m->nflights--;
        ty_outmsg_t *out = head->raw.out;
        ty_flight_free(head);
        ty_out_release(m, out);
    }
    ty_state_flush(m); /* the next batch may be waiting */
}

/* Whether the open batch writes a record that a batch in flight also writes
 * (then it waits: etcd could apply two txns of one key out of order). */
static int ty_state_conflicts(const ty_master_t *m) {
    for (ty_run_t *r = m->open.runs; r; r = r->dirty_next)
        if (r->inflight)
            return 1;
    for (ty_task_t *t = m->open.tasks; t; t = t->dirty_next)
        if (t->inflight)
            return 1;
    return 0;
}

void ty_state_flush(ty_master_t *m) {
    ty_batch_t *b = &m->open;
    if (b->nops == 0) {
        if (!b->out)
            return;
        if (m->nflights == 0) {
            ty_outmsg_t *out = b->out;
            b->out = NULL;
            b->out_tail = &b->out;
            ty_out_release(m, out); /* nothing to wait for */
            return;
        }
        /* wait for the batches in flight: append to the newest one's outbox */
        ty_flight_t *last = m->flights;
        while (last->next)
            last = last->next;
        *last->raw.out_tail = b->out;
        last->raw.out_tail = b->out_tail;
        b->out = NULL;
        b->out_tail = &b->out;
        return;
    }
    if (m->nflights >= TY_MAX_FLIGHTS || ty_state_conflicts(m))
        return; /* retried when a batch in flight completes */
    ty_flight_t *f = ty_xcalloc(1, sizeof *f);
    f->m = m;
    for (ty_run_t *r = b->runs; r; r = r->dirty_next)
        f->nruns++;
    for (ty_task_t *t = b->tasks; t; t = t->dirty_next)
        f->ntasks++;
    f->runs = ty_xcalloc(f->nruns, sizeof *f->runs);
    f->tasks = ty_xcalloc(f->ntasks, sizeof *f->tasks);
    size_t i = 0;
    for (ty_run_t *r = b->runs; r; r = r->dirty_next) {
        r->dirty = 0;
        r->inflight++;
        f->runs[i++] = r;
    }
    i = 0;
    for (ty_task_t *t = b->tasks; t; t = t->dirty_next) {
        t->dirty = 0;
        t->inflight++;
        f->tasks[i++] = t;
    }
    f->raw = *b; /* raw puts and the outbox move along */
    f->raw.runs = NULL;
    f->raw.tasks = NULL;
    if (!f->raw.out)
        f->raw.out_tail = &f->raw.out;
    ty_batch_init(b);
    ty_flight_t **pp = &m->flights;
    while (*pp)
        pp = &(*pp)->next;
    *pp = f;
    m->nflights++;
    ty_flight_send(f);
}

/* ---- rebuild ---- */

typedef struct {
    ty_master_t *m;
    void (*done)(ty_master_t *m, int status);
    int pending, failed;
} ty_rebuild_t;

/* One of the two ranges answered; the last one finishes the rebuild. */
static void ty_rebuild_step(ty_rebuild_t *rb) {
    if (--rb->pending == 0) {
        rb->done(rb->m, rb->failed ? TY_EETCD : 0);
        free(rb);
    }
}

static void ty_rebuild_task(ty_master_t *m, const char *run_id, const char *name,
                            const Ty__TaskRecord *rec) {
    ty_task_t *t = ty_sched_find_task(m, run_id, name);
    if (!t)
        return;
    t->state = rec->state;
    t->attempt = rec->attempt;
    t->failures = rec->failures;
    t->lost = rec->lost;
    t->worker = *rec->worker ? ty_xstrdup(rec->worker) : NULL;
    t->exit_code = rec->exit_code;
    t->term_signal = rec->term_signal;
    t->queued_ms = rec->queued_ms;
    t->started_ms = rec->started_ms;
    t->finished_ms = rec->finished_ms;
    t->not_before_ms = rec->not_before_ms;
    t->reason = *rec->reason ? ty_xstrdup(rec->reason) : NULL;
    t->waiting_why = ty_sched_is_wait_reason(t->reason);
    if (rec->n_gpu_ids) {
        t->gpu_ids = ty_xcalloc(rec->n_gpu_ids, sizeof *t->gpu_ids);
        memcpy(t->gpu_ids, rec->gpu_ids, rec->n_gpu_ids * sizeof *t->gpu_ids);
        t->n_gpu = rec->n_gpu_ids;
    }
    t->progress = rec->progress;
    t->progress_text = *rec->progress_text ? ty_xstrdup(rec->progress_text) : NULL;
    if (rec->n_metrics) {
        t->metrics = ty_xcalloc(rec->n_metrics, sizeof *t->metrics);
        for (size_t i = 0; i < rec->n_metrics; i++) {
            t->metrics[i].name = ty_xstrdup(rec->metrics[i]->name);
            t->metrics[i].value = rec->metrics[i]->value;
            t->metrics[i].step = rec->metrics[i]->step;
        }
        t->nmetrics = rec->n_metrics;
    }
}

static void ty_rebuild_runs_cb(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_rebuild_t *rb = arg;
    ty_master_t *m = rb->m;
    if (status != 0) {
        rb->failed = 1;
    } else {
        size_t plen = strlen(m->o.prefix) + 5; /* "runs/" */
        /* Keys sort so that runs/<id> precedes runs/<id>/tasks/<name>. */
        for (size_t i = 0; i < resp->nkvs; i++) {
            const ty_etcd_kv_t *kv = &resp->kvs[i];
            char *key = ty_xstrndup((const char *)kv->key, kv->key_len);
            char *rest = key + plen, *slash = strchr(rest, '/');
            if (!slash) {
                Ty__RunRecord *rec = ty__run_record__unpack(NULL, kv->value_len, kv->value);
                if (rec && rec->spec) {
                    Ty__PipelineSpec *spec = rec->spec;
                    rec->spec = NULL;
                    Ty__KV **params = rec->params;
                    size_t np = rec->n_params;
                    rec->params = NULL;
                    rec->n_params = 0;
                    ty_run_t *r = ty_sched_run_new(m, rec->run_id, spec, params, np);
                    r->state = rec->state;
                    r->created_ms = rec->created_ms;
                    r->started_ms = rec->started_ms;
                    r->finished_ms = rec->finished_ms;
                    r->seq = rec->seq;
                    if (rec->seq >= m->next_seq)
                        m->next_seq = rec->seq + 1;
                    ty_sched_index_run(m, r);
                } else {
                    ty_warn("skipping undecodable run record %s", key);
                }
                if (rec)
                    ty__run_record__free_unpacked(rec, NULL);
            } else if (strncmp(slash, "/tasks/", 7) == 0) {
                *slash = '\0';
                Ty__TaskRecord *rec = ty__task_record__unpack(NULL, kv->value_len, kv->value);
                if (rec) {
                    ty_rebuild_task(m, rest, slash + 7, rec);
                    ty__task_record__free_unpacked(rec, NULL);
                }
            }
            free(key);
        }
    }
    ty_rebuild_step(rb);
}

static void ty_rebuild_workers_cb(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_rebuild_t *rb = arg;
    ty_master_t *m = rb->m;
    if (status != 0) {
        rb->failed = 1;
    } else {
        for (size_t i = 0; i < resp->nkvs; i++) {
            Ty__WorkerRecord *rec =
                ty__worker_record__unpack(NULL, resp->kvs[i].value_len, resp->kvs[i].value);
            if (!rec)
                continue;
            if (!rec->deregistered && !zhashx_lookup(m->workers, rec->id)) {
                ty_worker_t *w = ty_xcalloc(1, sizeof *w);
                w->id = ty_xstrdup(rec->id);
                w->hostname = ty_xstrdup(rec->hostname);
                w->known_only = 1;
                if (rec->total) {
                    w->cpus = rec->total->cpus;
                    w->mem_mb = rec->total->mem_mb;
                    w->gpus = rec->total->gpus;
                }
                zhashx_insert(m->workers, w->id, w);
            }
            ty__worker_record__free_unpacked(rec, NULL);
        }
    }
    ty_rebuild_step(rb);
}

void ty_state_rebuild(ty_master_t *m, void (*done)(ty_master_t *m, int status)) {
    ty_rebuild_t *rb = ty_xcalloc(1, sizeof *rb);
    rb->m = m;
    rb->done = done;
    rb->pending = 2;
    char *runs = ty_state_key(m, "runs/"), *workers = ty_state_key(m, "workers/");
    size_t rl, wl;
    unsigned char *rend = ty_etcd_prefix_end(runs, strlen(runs), &rl);
    unsigned char *wend = ty_etcd_prefix_end(workers, strlen(workers), &wl);
    if (ty_etcd_range(m->etcd, workers, strlen(workers), wend, wl, ty_rebuild_workers_cb, rb) != 0)
        ty_rebuild_workers_cb(TY_EETCD, NULL, rb);
    if (ty_etcd_range(m->etcd, runs, strlen(runs), rend, rl, ty_rebuild_runs_cb, rb) != 0)
        ty_rebuild_runs_cb(TY_EETCD, NULL, rb);
    free(runs);
    free(workers);
    free(rend);
    free(wend);
}
