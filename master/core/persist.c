/* Write-ahead batches.  Changes made while handling events mark runs and
 * tasks dirty in the open batch (keyed records such as pipelines/ and
 * workers/ are kept one per key); FLUSH turns the batch into TXN effects
 * compared against the epoch.  Messages queued meanwhile wait in the
 * batch's outbox and leave (as SEND effects) only after every txn of the
 * batch, and of every batch before it, has committed. */
#include "master/core/core_int.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static void ty_batch_init(ty_batch_t *b) {
    memset(b, 0, sizeof *b);
    b->out_tail = &b->out;
}

void ty_persist_init(ty_core_t *c) {
    ty_batch_init(&c->open);
    c->inflight_keys = zhashx_new();
}

static void ty_out_free(ty_outmsg_t *o) {
    while (o) {
        ty_outmsg_t *next = o->next;
        free(o->peer);
        free(o->data);
        free(o->run);
        free(o);
        o = next;
    }
}

static void ty_puts_free(ty_put_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(p[i].key);
        free(p[i].val);
    }
    free(p);
}

static void ty_flight_free(ty_core_t *c, ty_flight_t *f) {
    for (size_t i = 0; i < f->nitems; i++) {
        if (f->items[i].run)
            f->items[i].run->inflight--;
        else if (f->items[i].task)
            f->items[i].task->inflight--;
    }
    for (size_t i = 0; i < f->raw.nputs; i++) {
        const char *k = f->raw.puts[i].key;
        uintptr_t n = (uintptr_t)zhashx_lookup(c->inflight_keys, k);
        if (n <= 1)
            zhashx_delete(c->inflight_keys, k);
        else
            zhashx_update(c->inflight_keys, k, (void *)(n - 1));
    }
    free(f->items);
    ty_puts_free(f->snap, f->nsnap);
    ty_puts_free(f->raw.puts, f->raw.nputs);
    free(f->raw.put_marks);
    free(f);
}

void ty_persist_fini(ty_core_t *c) {
    while (c->flights) {
        ty_flight_t *f = c->flights;
        c->flights = f->next;
        ty_out_free(f->raw.out);
        ty_flight_free(c, f);
    }
    c->nflights = 0;
    ty_out_free(c->open.out);
    ty_puts_free(c->open.puts, c->open.nputs);
    free(c->open.put_marks);
    ty_batch_init(&c->open);
    zhashx_destroy(&c->inflight_keys);
}

void ty_persist_run(ty_core_t *c, ty_run_t *r) {
    r->version++;
    r->mark = ++c->mark;
    ty_core_notify(c, r);
    if (r->dirty)
        return;
    r->dirty = 1;
    r->dirty_next = c->open.runs;
    c->open.runs = r;
    c->open.nops++;
}

void ty_persist_task(ty_core_t *c, ty_task_t *t) {
    t->run->version++;
    t->mark = ++c->mark;
    ty_core_notify(c, t->run);
    if (t->dirty)
        return;
    t->dirty = 1;
    t->dirty_next = c->open.tasks;
    c->open.tasks = t;
    c->open.nops++;
}

void ty_persist_put(ty_core_t *c, char *key, uint8_t *val, size_t len) {
    ty_batch_t *b = &c->open;
    for (size_t i = 0; i < b->nputs; i++)
        if (strcmp(b->puts[i].key, key) == 0) { /* the latest value of a key wins */
            free(key);
            free(b->puts[i].val);
            b->puts[i].val = val;
            b->puts[i].len = len;
            b->put_marks[i] = ++c->mark;
            return;
        }
    b->puts = ty_xrealloc(b->puts, (b->nputs + 1) * sizeof *b->puts);
    b->put_marks = ty_xrealloc(b->put_marks, (b->nputs + 1) * sizeof *b->put_marks);
    b->put_marks[b->nputs] = ++c->mark;
    b->puts[b->nputs++] = (ty_put_t){key, val, len};
    b->nops++;
}

int ty_persist_idle(const ty_core_t *c) { return c->open.nops == 0 && c->nflights == 0; }

int64_t ty_persist_stalled_ms(const ty_core_t *c) {
    int64_t since = c->failing_since;
    for (const ty_flight_t *f = c->flights; f; f = f->next)
        if (f->pending && (!since || f->sent < since))
            since = f->sent;
    return since ? c->now.mono_ms - since : 0;
}

static int ty_dispatch_current(ty_core_t *c, const ty_outmsg_t *o) {
    ty_run_t *r = ty_core_find_run(c, o->run);
    if (!r || o->task_ix >= r->ntasks)
        return 0;
    const ty_task_t *t = &r->tasks[o->task_ix];
    return t->state == TY_TASK_RUNNING && t->attempt == o->attempt;
}

static void ty_out_release(ty_core_t *c, ty_outmsg_t *o) {
    while (o) {
        ty_outmsg_t *next = o->next;
        if (o->run && !ty_dispatch_current(c, o)) {
            /* the attempt was given up (its worker lost, the run cancelled)
             * while its Dispatch waited for the write before it */
            ty_debug("withdrawing the dispatch of %s#%u: no longer current", o->run, o->attempt);
            o->next = NULL;
            ty_out_free(o);
            o = next;
            continue;
        }
        ty_fx_t fx = {.kind = TY_FX_SEND, .peer_kind = o->kind};
        fx.peer = o->peer;
        fx.peer_len = o->peer_len;
        fx.data = o->data;
        fx.len = o->len;
        ty_core_emit(c, &fx);
        free(o->run);
        free(o);
        o = next;
    }
}

void ty_persist_queue(ty_core_t *c, ty_outmsg_t *o) {
    if (ty_persist_idle(c) && !c->open.out) {
        o->next = NULL;
        ty_out_release(c, o);
        return;
    }
    *c->open.out_tail = o;
    c->open.out_tail = &o->next;
}

void ty_persist_task_record(const ty_task_t *t, Ty__TaskRecord *rec) {
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
    rec->outputs = t->outputs; /* borrowed */
    rec->n_outputs = t->noutputs;
    rec->tags = t->tags;
    rec->n_tags = t->ntags;
    rec->cache_note = t->cache_note ? t->cache_note : (char *)"";
    ty_persist_gang_parts(t, rec);
}

void ty_persist_gang_parts(const ty_task_t *t, Ty__TaskRecord *rec) {
    size_t n = t->nparts && t->w ? t->nparts + 1 : t->nended_parts;
    if (!n)
        return;
    /* one array of parts and one of pointers: what the record's clear frees */
    Ty__GangPart *gp = ty_xcalloc(n, sizeof *gp);
    rec->parts = ty_xcalloc(n, sizeof *rec->parts);
    for (size_t i = 0; i < n; i++) {
        if (!(t->nparts && t->w)) { /* ended: what was kept (strings borrowed) */
            gp[i] = *t->ended_parts[i];
        } else { /* a gang across workers running: every part, part 0 first */
            const ty_part_t *pt = i ? &t->parts[i - 1] : NULL;
            const ty_worker_t *w = pt ? pt->w : t->w;
            ty__gang_part__init(&gp[i]);
            gp[i].worker = w ? w->id : (char *)"";
            gp[i].address = w && w->address ? w->address : (char *)"";
            gp[i].ranks = pt ? pt->ranks : t->ranks0;
            gp[i].gpu_ids = pt ? pt->gpu_ids : t->gpu_ids;
            gp[i].n_gpu_ids = pt ? pt->n_gpu : t->n_gpu;
        }
        rec->parts[i] = &gp[i];
    }
    rec->n_parts = n;
}

void ty_task_ended_parts_free(ty_task_t *t) {
    for (size_t i = 0; i < t->nended_parts; i++)
        ty__gang_part__free_unpacked(t->ended_parts[i], NULL);
    free(t->ended_parts);
    t->ended_parts = NULL;
    t->nended_parts = 0;
}

void ty_persist_task_record_clear(Ty__TaskRecord *rec) {
    if (rec->n_metrics) {
        free(rec->metrics[0]);
        free(rec->metrics);
    }
    rec->metrics = NULL;
    rec->n_metrics = 0;
    if (rec->n_parts) {
        free(rec->parts[0]);
        free(rec->parts);
    }
    rec->parts = NULL;
    rec->n_parts = 0;
}

void ty_persist_run_record(const ty_run_t *r, Ty__RunRecord *rec, int with_spec) {
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
    rec->request_id = r->request_id ? r->request_id : (char *)"";
    rec->retry_of = r->retry_of ? r->retry_of : (char *)"";
    rec->schedule = r->schedule ? r->schedule : (char *)"";
    rec->fire_s = r->fire_s;
    rec->owner = r->owner ? r->owner : (char *)"";
}

/* ---- batches ---- */

typedef struct {
    ty_put_t *puts;
    size_t n, cap;
} ty_putv_t;

static void ty_putv_add(ty_putv_t *v, char *key, uint8_t *val, size_t len) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->puts = ty_xrealloc(v->puts, v->cap * sizeof *v->puts);
    }
    v->puts[v->n++] = (ty_put_t){key, val, len};
}

/* The record of it as it is now. */
static void ty_item_put(ty_core_t *c, ty_flight_t *f, const ty_item_t *it, ty_putv_t *v) {
    (void)c;
    if (it->run) {
        Ty__RunRecord rec;
        ty_persist_run_record(it->run, &rec, 1);
        size_t len = ty__run_record__get_packed_size(&rec);
        uint8_t *val = ty_xmalloc(len ? len : 1);
        ty__run_record__pack(&rec, val);
        ty_putv_add(v, ty_xasprintf("runs/%s", it->run->id), val, len);
    } else if (it->task) {
        ty_task_t *t = it->task;
        Ty__TaskRecord rec;
        ty_persist_task_record(t, &rec);
        size_t len = ty__task_record__get_packed_size(&rec);
        uint8_t *val = ty_xmalloc(len ? len : 1);
        ty__task_record__pack(&rec, val);
        ty_persist_task_record_clear(&rec);
        ty_putv_add(v, ty_xasprintf("runs/%s/tasks/%s", t->run->id, t->spec->name), val, len);
    } else {
        ty_put_t *p = &f->raw.puts[it->put];
        uint8_t *val = ty_xmalloc(p->len ? p->len : 1);
        memcpy(val, p->val, p->len);
        ty_putv_add(v, ty_xstrdup(p->key), val, p->len);
    }
}

/* f's txn: its records as they were when it was cut (ty_flight_snap), the
 * same bytes each time it is sent, so that "txn seq is in" means these
 * values are (a record that changed since is in the open batch again).
 * Writing current values instead could put a run's end in the store before
 * the task results, in later txns, that it follows from. */
static void ty_flight_send(ty_core_t *c, ty_flight_t *f) {
    f->failed = 0;
    f->behind = 0;
    if (!f->seq0)
        f->seq0 = ++c->seq; /* the chain: sent in order, numbered in order */
    ty_fx_t fx = {.kind = TY_FX_TXN, .flight = f->id, .epoch = c->o.epoch, .seq = f->seq0};
    fx.puts = ty_xcalloc(f->nsnap ? f->nsnap : 1, sizeof *fx.puts);
    for (size_t i = 0; i < f->nsnap; i++) {
        fx.puts[i].key = ty_xstrdup(f->snap[i].key);
        fx.puts[i].val = ty_xmalloc(f->snap[i].len ? f->snap[i].len : 1);
        memcpy(fx.puts[i].val, f->snap[i].val, f->snap[i].len);
        fx.puts[i].len = f->snap[i].len;
    }
    fx.nputs = f->nsnap;
    f->pending = 1;
    f->sent = c->now.mono_ms;
    c->txns++;
    c->ops += f->nsnap;
    ty_core_emit(c, &fx);
}

void ty_persist_retry(ty_core_t *c) {
    if (!c->retry_at || c->now.mono_ms < c->retry_at)
        return;
    c->retry_at = 0;
    for (ty_flight_t *f = c->flights; f; f = f->next)
        if (f->failed && f->pending == 0 && !f->done)
            ty_flight_send(c, f);
}

static void ty_send_ready(ty_core_t *c);

void ty_persist_done(ty_core_t *c, uint64_t flight, int status) {
    ty_flight_t *f = c->flights;
    while (f && f->id != flight)
        f = f->next;
    if (!f || f->pending == 0)
        return; /* not ours, or answered already */
    if (status == TY_ESTALE) {
        ty_error("etcd rejected a write: epoch %llu is no longer the leader",
                 (unsigned long long)c->o.epoch);
        c->fenced = 1;
        ty_fx_t fx = {.kind = TY_FX_FENCED};
        ty_core_emit(c, &fx);
        return;
    }
    if (status != 0)
        f->failed = 1;
    if (status != 0 && status != TY_ECONFLICT && (!c->failing_since || f->sent < c->failing_since))
        c->failing_since = f->sent; /* unconfirmed since it left */
    f->behind = status == TY_ECONFLICT;
    c->behind += f->behind;
    if (--f->pending > 0)
        return;
    if (f->behind) {
        /* it overtook one before it on the way: sent again once those are
         * in or on their way (ty_send_ready), no delay */
        ty_send_ready(c);
        return;
    }
    if (f->failed) {
        ty_warn("etcd write failed; retrying the batch");
        if (!c->retry_at)
            c->retry_at = c->now.mono_ms + c->o.retry_ms;
        return;
    }
    f->done = 1;
    c->failing_since = 0;
    /* outboxes leave in batch order: a later batch may depend on an earlier one */
    while (c->flights && c->flights->done) {
        ty_flight_t *head = c->flights;
        c->flights = head->next;
        c->nflights--;
        ty_outmsg_t *out = head->raw.out;
        ty_flight_free(c, head);
        ty_out_release(c, out);
    }
    ty_persist_flush(c); /* the next batch may be waiting */
}

/* Whether the open batch writes a key that a batch in flight also writes
 * (then it waits: the store could apply two txns of one key out of order). */
static int ty_conflicts(const ty_core_t *c) {
    for (ty_run_t *r = c->open.runs; r; r = r->dirty_next)
        if (r->inflight)
            return 1;
    for (ty_task_t *t = c->open.tasks; t; t = t->dirty_next)
        if (t->inflight)
            return 1;
    for (size_t i = 0; i < c->open.nputs; i++)
        if (zhashx_lookup(c->inflight_keys, c->open.puts[i].key))
            return 1;
    return 0;
}

static int ty_item_cmp(const void *a, const void *b) {
    uint64_t x = ((const ty_item_t *)a)->mark, y = ((const ty_item_t *)b)->mark;
    return x < y ? -1 : x > y;
}

static ty_flight_t *ty_flight_new(ty_core_t *c, size_t cap) {
    ty_flight_t *f = ty_xcalloc(1, sizeof *f);
    f->id = ++c->next_flight;
    f->items = ty_xcalloc(cap ? cap : 1, sizeof *f->items);
    f->raw.out_tail = &f->raw.out;
    ty_flight_t **pp = &c->flights;
    while (*pp)
        pp = &(*pp)->next;
    *pp = f;
    c->nflights++;
    return f;
}

/* f's txn as its records are now: the same bytes each time it is sent */
static void ty_flight_snap(ty_core_t *c, ty_flight_t *f) {
    ty_putv_t v = {0};
    for (size_t i = 0; i < f->nitems; i++)
        ty_item_put(c, f, &f->items[i], &v);
    f->snap = v.puts;
    f->nsnap = v.n;
}

/* The whole open batch becomes flights of at most 120 records each, in the
 * order the records last changed, each encoded now; the outbox leaves with
 * the last of them.  They are sent in order, four at most at a time. */
static void ty_cut(ty_core_t *c) {
    ty_batch_t *b = &c->open;
    size_t n = 0, i;
    ty_item_t *all = ty_xcalloc(b->nops ? b->nops : 1, sizeof *all);
    for (ty_run_t *r = b->runs; r; r = r->dirty_next)
        all[n++] = (ty_item_t){.mark = r->mark, .run = r};
    for (ty_task_t *t = b->tasks; t; t = t->dirty_next)
        all[n++] = (ty_item_t){.mark = t->mark, .task = t};
    for (i = 0; i < b->nputs; i++)
        all[n++] = (ty_item_t){.mark = b->put_marks[i], .put = i};
    qsort(all, n, sizeof *all, ty_item_cmp);
    ty_flight_t *f = NULL;
    for (i = 0; i < n; i++) {
        if (!f || f->nitems == TY_TXN_MAX_OPS) {
            if (f)
                ty_flight_snap(c, f);
            f = ty_flight_new(c, n - i < TY_TXN_MAX_OPS ? n - i : TY_TXN_MAX_OPS);
        }
        ty_item_t it = all[i];
        if (it.run) {
            it.run->dirty = 0;
            it.run->inflight++;
        } else if (it.task) {
            it.task->dirty = 0;
            it.task->inflight++;
        } else {
            ty_put_t p = b->puts[it.put];
            f->raw.puts = ty_xrealloc(f->raw.puts, (f->raw.nputs + 1) * sizeof *f->raw.puts);
            f->raw.puts[f->raw.nputs] = p;
            it.put = f->raw.nputs++;
            uintptr_t cnt = (uintptr_t)zhashx_lookup(c->inflight_keys, p.key);
            if (cnt)
                zhashx_update(c->inflight_keys, p.key, (void *)(cnt + 1));
            else
                zhashx_insert(c->inflight_keys, p.key, (void *)1);
        }
        f->items[f->nitems++] = it;
    }
    if (f) {
        ty_flight_snap(c, f);
        f->raw.out = b->out; /* the outbox waits for every record before it */
        f->raw.out_tail = b->out ? b->out_tail : &f->raw.out;
    }
    free(all);
    free(b->puts);
    free(b->put_marks);
    ty_batch_init(b);
}

/* Send flights not sent yet, in order, while fewer than four are out. */
/* Send, in order, the flights not sent yet while fewer than four are out,
 * and again those that overtook an earlier txn (TY_ECONFLICT) once every
 * flight before them is in or on its way.  A flight that failed otherwise
 * waits for the retry delay, and so does every flight behind it. */
static void ty_send_ready(ty_core_t *c) {
    size_t out = 0;
    int ahead_ok = 1; /* every earlier flight is committed or in flight */
    for (ty_flight_t *f = c->flights; f; f = f->next) {
        if (f->done)
            continue;
        if (f->pending) {
            out++;
            continue;
        }
        if (f->seq0 && !f->behind) { /* failed: waits for the retry delay */
            ahead_ok = 0;
            continue;
        }
        if (!ahead_ok || out >= TY_MAX_FLIGHTS)
            return;
        ty_flight_send(c, f);
        out++;
    }
}

void ty_persist_flush(ty_core_t *c) {
    ty_batch_t *b = &c->open;
    if (c->fenced)
        return;
    if (b->nops == 0 && b->out && c->nflights == 0) {
        ty_outmsg_t *out = b->out;
        b->out = NULL;
        b->out_tail = &b->out;
        ty_out_release(c, out); /* nothing to wait for */
    } else if (b->nops == 0 && b->out) {
        /* wait for the batches in flight: append to the newest one's outbox */
        ty_flight_t *last = c->flights;
        while (last->next)
            last = last->next;
        *last->raw.out_tail = b->out;
        last->raw.out_tail = b->out_tail;
        b->out = NULL;
        b->out_tail = &b->out;
    } else if (b->nops && !ty_conflicts(c)) {
        ty_cut(c); /* else cut when the batch in flight with its records completes */
    }
    ty_send_ready(c);
}

/* ---- rebuild ---- */

static void ty_load_task(ty_task_t *t, const Ty__TaskRecord *rec) {
    t->state = rec->state < TY_TASK_NSTATES ? rec->state : TY_TASK_FAILED;
    t->attempt = rec->attempt;
    t->failures = rec->failures;
    t->lost = rec->lost;
    free(t->worker);
    t->worker = *rec->worker ? ty_xstrdup(rec->worker) : NULL;
    t->exit_code = rec->exit_code;
    t->term_signal = rec->term_signal;
    t->queued_ms = rec->queued_ms;
    t->started_ms = rec->started_ms;
    t->finished_ms = rec->finished_ms;
    t->not_before_ms = rec->not_before_ms;
    free(t->reason);
    t->reason = *rec->reason ? ty_xstrdup(rec->reason) : NULL;
    t->waiting_why = ty_is_wait_reason(t->reason);
    free(t->gpu_ids);
    t->gpu_ids = NULL;
    t->n_gpu = 0;
    if (rec->n_gpu_ids) {
        t->gpu_ids = ty_xcalloc(rec->n_gpu_ids, sizeof *t->gpu_ids);
        memcpy(t->gpu_ids, rec->gpu_ids, rec->n_gpu_ids * sizeof *t->gpu_ids);
        t->n_gpu = rec->n_gpu_ids;
    }
    t->progress = rec->progress;
    free(t->progress_text);
    t->progress_text = *rec->progress_text ? ty_xstrdup(rec->progress_text) : NULL;
    for (size_t k = 0; k < t->nmetrics; k++)
        free(t->metrics[k].name);
    free(t->metrics);
    t->metrics = NULL;
    t->nmetrics = 0;
    if (rec->n_metrics) {
        t->metrics = ty_xcalloc(rec->n_metrics, sizeof *t->metrics);
        for (size_t i = 0; i < rec->n_metrics; i++) {
            t->metrics[i].name = ty_xstrdup(rec->metrics[i]->name);
            t->metrics[i].value = rec->metrics[i]->value;
            t->metrics[i].step = rec->metrics[i]->step;
        }
        t->nmetrics = rec->n_metrics;
    }
    ty_runs_set_outputs(t, rec->outputs, rec->n_outputs);
    ty_runs_set_tags(t, rec->tags, rec->n_tags);
    free(t->cache_note);
    t->cache_note = *rec->cache_note ? ty_xstrdup(rec->cache_note) : NULL;
    t->was_gang = rec->n_parts > 1 && t->state == TY_TASK_RUNNING;
    t->ranks0 = t->was_gang ? rec->parts[0]->ranks : 0; /* its share where mpirun runs */
    ty_task_ended_parts_free(t);
    if (rec->n_parts > 1 && t->state != TY_TASK_RUNNING) { /* an ended gang: where it ran */
        t->ended_parts = ty_xcalloc(rec->n_parts, sizeof *t->ended_parts);
        for (size_t i = 0; i < rec->n_parts; i++)
            t->ended_parts[i] = ty_pb_dup(&rec->parts[i]->base);
        t->nended_parts = rec->n_parts;
    }
}

void ty_persist_decode_task(ty_run_t *r, const char *name, const uint8_t *val, size_t len) {
    int i = ty_runs_task_index(r, name);
    Ty__TaskRecord *rec = i < 0 ? NULL : ty__task_record__unpack(NULL, len, val);
    if (rec) {
        ty_load_task(&r->tasks[i], rec);
        ty__task_record__free_unpacked(rec, NULL);
    }
}

ty_run_t *ty_persist_decode_run(const uint8_t *val, size_t len) {
    Ty__RunRecord *rec = ty__run_record__unpack(NULL, len, val);
    if (!rec || !rec->spec || !*rec->run_id) {
        if (rec)
            ty__run_record__free_unpacked(rec, NULL);
        return NULL;
    }
    Ty__PipelineSpec *spec = rec->spec;
    rec->spec = NULL;
    Ty__KV **params = rec->params;
    size_t np = rec->n_params;
    rec->params = NULL;
    rec->n_params = 0;
    ty_run_t *r = ty_runs_new(rec->run_id, spec, params, np);
    r->state = rec->state < TY_RUN_NSTATES ? rec->state : TY_RUN_FAILED;
    r->created_ms = rec->created_ms;
    r->started_ms = rec->started_ms;
    r->finished_ms = rec->finished_ms;
    r->seq = rec->seq;
    r->request_id = *rec->request_id ? ty_xstrdup(rec->request_id) : NULL;
    r->retry_of = *rec->retry_of ? ty_xstrdup(rec->retry_of) : NULL;
    r->schedule = *rec->schedule ? ty_xstrdup(rec->schedule) : NULL;
    r->fire_s = rec->fire_s;
    r->owner = *rec->owner ? ty_xstrdup(rec->owner) : NULL;
    ty__run_record__free_unpacked(rec, NULL);
    return r;
}

static void ty_load_run(ty_core_t *c, const char *key, const uint8_t *val, size_t len) {
    ty_run_t *r = ty_persist_decode_run(val, len);
    if (!r || ty_core_find_run(c, r->id)) {
        ty_warn("skipping undecodable run record %s", key);
        ty_runs_free(r);
        return;
    }
    if (r->seq >= c->next_seq)
        c->next_seq = r->seq + 1;
    if (r->request_id)
        ty_core_request_seen(c, r->request_id, r->id, r->created_ms);
    int done = r->state != TY_RUN_PENDING && r->state != TY_RUN_RUNNING;
    if (done && r->finished_ms < c->now.wall_ms - c->o.retain_ms) {
        ty_runs_free(r); /* past the retention: read back on demand */
        return;
    }
    ty_runs_index(c, r);
}

void ty_persist_load(ty_core_t *c, const char *key, const uint8_t *val, size_t len) {
    if (strcmp(key, "leader.seq") == 0) {
        char buf[32];
        int64_t v = 0;
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 31 ? len : 31), (const char *)val);
        if (ty_parse_i64(buf, 0, INT64_MAX, &v) == 0 && (uint64_t)v > c->seq)
            c->seq = (uint64_t)v;
        return;
    }
    if (strncmp(key, "runs/", 5) == 0) {
        const char *rest = key + 5, *slash = strchr(rest, '/');
        if (!slash) {
            ty_load_run(c, key, val, len);
        } else if (strncmp(slash, "/tasks/", 7) == 0) {
            /* runs/<id> sorts before runs/<id>/tasks/<name>: its run is loaded */
            char *run_id = ty_xstrndup(rest, (size_t)(slash - rest));
            ty_run_t *r = ty_core_find_run(c, run_id);
            if (r)
                ty_persist_decode_task(r, slash + 7, val, len);
            free(run_id);
        }
    } else if (strncmp(key, "models/", 7) == 0) {
        ty_models_load(c, key + 7, val, len);
    } else if (strncmp(key, "schedules/", 10) == 0) {
        ty_sched_load(c, key + 10, val, len);
    } else if (strncmp(key, "cache/", 6) == 0) {
        ty_cache_load(c, key + 6, val, len);
    } else if (strncmp(key, "workers/", 8) == 0) {
        Ty__WorkerRecord *rec = ty__worker_record__unpack(NULL, len, val);
        if (rec && *rec->id)
            ty_fleet_load(c, rec);
        if (rec)
            ty__worker_record__free_unpacked(rec, NULL);
    }
}
