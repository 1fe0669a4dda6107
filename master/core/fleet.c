/* Workers: registration (and adoption of still-running attempts after a
 * master restart), heartbeats, liveness, task results, log chunks and
 * report lines.  Every field of every message is checked before use; a
 * message that fails is dropped and counted with its reason. */
#include "master/core/core_int.h"

#include "common/digest.h"
#include "common/err.h"
#include "common/log.h"
#include "common/report.h"
#include "common/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TY_ID_MAX 128
#define TY_NAME_MAX 256
#define TY_TEXT_MAX 4096
#define TY_LABELS_MAX 64
#define TY_REFS_MAX 4096
#define TY_ITEMS_MAX 1024
#define TY_MAX_RESULT_OUTPUTS 4096

void ty_fleet_free(ty_worker_t *w) {
    if (!w)
        return;
    free(w->id);
    free(w->hostname);
    free(w->address);
    free(w->peer);
    ty_dag_kvs_free(w->labels, w->nlabels);
    free(w);
}

static ty_worker_t *ty_fleet_add(ty_core_t *c, const char *id) {
    ty_worker_t *w = ty_xcalloc(1, sizeof *w);
    w->id = ty_xstrdup(id);
    w->pidx = -1;
    w->order = c->nworkers;
    zhashx_insert(c->workers, w->id, w);
    if (c->nworkers == c->cap_workers) {
        c->cap_workers = c->cap_workers ? c->cap_workers * 2 : 16;
        c->wlist = ty_xrealloc(c->wlist, c->cap_workers * sizeof *c->wlist);
    }
    c->wlist[c->nworkers++] = w;
    return w;
}

ty_worker_t *ty_fleet_get(ty_core_t *c, const char *id) {
    ty_worker_t *w = ty_core_find_worker(c, id);
    if (!w) {
        w = ty_fleet_add(c, id);
        w->known_only = w->placeholder = 1;
    }
    return w;
}

void ty_fleet_load(ty_core_t *c, const Ty__WorkerRecord *rec) {
    /* a worker that left is forgotten, unless it left draining (stopped for
     * an upgrade): it drains still when it comes back */
    if ((rec->deregistered && !rec->draining) || ty_core_find_worker(c, rec->id))
        return;
    ty_worker_t *w = ty_fleet_add(c, rec->id);
    w->hostname = ty_xstrdup(rec->hostname);
    w->known_only = 1;
    w->gone = rec->deregistered;
    w->draining = rec->draining;
    if (rec->total) {
        w->cpus = rec->total->cpus;
        w->mem_mb = rec->total->mem_mb;
        w->gpus = rec->total->gpus;
    }
}

/* ---- validation ---- */

static int ty_reject(ty_core_t *c, const char *why) {
    c->rejected_msgs++;
    c->last_reject = why;
    ty_warn("worker socket: rejected a message: %s", why);
    return -1;
}

static int ty_str_ok(const char *s, size_t max) { return s && strnlen(s, max + 1) <= max; }

/* Worker ids name etcd keys and log lines: letters, digits and ._-:@ */
static int ty_id_ok(const char *s) {
    size_t n = s ? strnlen(s, TY_ID_MAX + 1) : 0;
    if (n == 0 || n > TY_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("._-:@", ch)))
            return 0;
    }
    return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int ty_ref_ok(const Ty__TaskRef *ref) {
    return ref && ty_str_ok(ref->run_id, TY_NAME_MAX) && ty_str_ok(ref->task, TY_NAME_MAX);
}

static int ty_result_ok(const Ty__TaskResult *res) {
    if (!res || !ty_ref_ok(res->ref) || !ty_str_ok(res->error, TY_TEXT_MAX) ||
        res->n_outputs > TY_MAX_RESULT_OUTPUTS || res->n_registers > 64)
        return 0;
    for (size_t i = 0; i < res->n_registers; i++)
        if (!res->registers[i] || !ty_str_ok(res->registers[i]->key, TY_NAME_MAX) ||
            !ty_str_ok(res->registers[i]->value, TY_TEXT_MAX))
            return 0;
    for (size_t i = 0; i < res->n_outputs; i++)
        if (!ty_sha256_hex_ok(res->outputs[i]->sha256) ||
            ty_output_path_problem(res->outputs[i]->name))
            return 0;
    return 1;
}

static int ty_check_register(ty_core_t *c, const Ty__Register *reg) {
    if (!ty_id_ok(reg->worker_id))
        return ty_reject(c, "register: bad worker id");
    /* it goes into mpirun's host list; "" is the host name */
    if (!reg->address || (*reg->address && !ty_host_token_ok(reg->address)))
        return ty_reject(c, "register: bad address (a host name or IPv4 address)");
    if (!ty_str_ok(reg->hostname, TY_NAME_MAX))
        return ty_reject(c, "register: host name too long");
    const Ty__Resources *t = reg->total;
    if (!t)
        return ty_reject(c, "register: no resources");
    if (!isfinite(t->cpus) || t->cpus <= 0 || t->cpus > 1e5)
        return ty_reject(c, "register: cpus out of range");
    if (t->mem_mb > (1ULL << 40))
        return ty_reject(c, "register: memory out of range");
    if (t->gpus > TY_WORKER_MAX_GPUS)
        return ty_reject(c, "register: more than 64 GPUs");
    if (t->n_labels > TY_LABELS_MAX)
        return ty_reject(c, "register: more than 64 labels");
    for (size_t i = 0; i < t->n_labels; i++)
        if (!t->labels[i] || !ty_str_ok(t->labels[i]->key, TY_NAME_MAX) ||
            !ty_str_ok(t->labels[i]->value, TY_NAME_MAX))
            return ty_reject(c, "register: bad label");
    if (reg->n_running > TY_REFS_MAX || reg->n_unacked > TY_REFS_MAX)
        return ty_reject(c, "register: too many attempts");
    for (size_t i = 0; i < reg->n_running; i++)
        if (!ty_ref_ok(reg->running[i]))
            return ty_reject(c, "register: bad running attempt");
    for (size_t i = 0; i < reg->n_unacked; i++)
        if (!ty_result_ok(reg->unacked[i]))
            return ty_reject(c, "register: bad unacknowledged result");
    return 0;
}

static int ty_check_heartbeat(ty_core_t *c, const Ty__Heartbeat *hb) {
    if (hb->n_attempts > TY_REFS_MAX || hb->n_unacked > TY_REFS_MAX)
        return ty_reject(c, "heartbeat: too many attempts");
    for (size_t i = 0; i < hb->n_attempts; i++)
        if (!ty_ref_ok(hb->attempts[i]))
            return ty_reject(c, "heartbeat: bad attempt");
    for (size_t i = 0; i < hb->n_unacked; i++)
        if (!ty_ref_ok(hb->unacked[i]))
            return ty_reject(c, "heartbeat: bad unacknowledged result");
    if (!(hb->attempts_cpu_s >= 0 && hb->attempts_cpu_s < 1e15) ||
        !(hb->self_cpu_s >= 0 && hb->self_cpu_s < 1e15))
        return ty_reject(c, "heartbeat: bad CPU seconds");
    return 0;
}

static int ty_check_report(ty_core_t *c, const Ty__Report *rep) {
    if (!ty_ref_ok(rep->ref))
        return ty_reject(c, "report: bad task reference");
    if (rep->n_items > TY_ITEMS_MAX)
        return ty_reject(c, "report: too many items");
    for (size_t i = 0; i < rep->n_items; i++) {
        const Ty__ReportItem *it = rep->items[i];
        if (!it || !ty_str_ok(it->name, TY_NAME_MAX) || !ty_str_ok(it->text, TY_TEXT_MAX))
            return ty_reject(c, "report: bad item");
    }
    return 0;
}

/* ---- messages out ---- */

static void ty_send(ty_core_t *c, const uint8_t *peer, size_t peer_len, Ty__Envelope *env) {
    ty_core_send_env(c, TY_PEER_WORKER, peer, peer_len, env);
}

static void ty_reregister(ty_core_t *c, const uint8_t *peer, size_t peer_len) {
    Ty__ReRegister rr = TY__RE_REGISTER__INIT;
    rr.epoch = c->o.epoch;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REREGISTER;
    env.reregister = &rr;
    ty_send(c, peer, peer_len, &env);
}

/* Cancel the attempt ref names, in this master's epoch (a worker ignores
 * cancels from a master older than the newest it has heard from). */
static void ty_send_cancel_ref(ty_core_t *c, const uint8_t *peer, size_t peer_len,
                               const Ty__TaskRef *ref) {
    Ty__TaskRef now = *ref;
    now.epoch = c->o.epoch;
    Ty__CancelTask ct = TY__CANCEL_TASK__INIT;
    ct.ref = &now;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_CANCEL_TASK;
    env.cancel_task = &ct;
    ty_send(c, peer, peer_len, &env);
}

void ty_fleet_send_cancel(ty_core_t *c, ty_task_t *t) { ty_fleet_send_cancel_on(c, t, t->w); }

void ty_fleet_send_cancel_on(ty_core_t *c, const ty_task_t *t, ty_worker_t *w) {
    if (!w || !w->peer)
        return;
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = t->run->id;
    ref.task = t->spec->name;
    ref.attempt = t->attempt;
    ref.epoch = c->o.epoch;
    ty_send_cancel_ref(c, w->peer, w->peer_len, &ref);
}

/* ---- messages in ---- */

static ty_task_t *ty_task_for(ty_core_t *c, const Ty__TaskRef *ref) {
    return ref ? ty_core_find_task(c, ref->run_id, ref->task) : NULL;
}

/* Whether ref is t's current attempt, running on w (its worker, or one of
 * its gang's parts). */
static int ty_ref_current(const ty_task_t *t, const Ty__TaskRef *ref, const ty_worker_t *w) {
    return t && t->state == TY_TASK_RUNNING && t->attempt == ref->attempt &&
           (t->w == w || ty_gang_part_on(t, w));
}

static void ty_apply_result(ty_core_t *c, ty_worker_t *w, const Ty__TaskResult *res) {
    ty_task_t *t = ty_task_for(c, res->ref);
    ty_part_t *pt = ty_ref_current(t, res->ref, w) && t->w != w ? ty_gang_part_on(t, w) : NULL;
    if (pt)
        ty_gang_part_result(c, t, pt, res);
    else if (ty_ref_current(t, res->ref, w) && ty_gang_settle(c, t, res))
        ;
    else if (ty_ref_current(t, res->ref, w) && res->interrupted)
        ty_runs_requeue_lost(c, t, *res->error ? res->error : "interrupted by its worker");
    else if (ty_ref_current(t, res->ref, w))
        ty_runs_result(c, t, res);
    else
        ty_debug("ignoring result of stale attempt %s/%s#%u", res->ref->run_id, res->ref->task,
                 res->ref->attempt);
    /* ack either way so the worker forgets it; the ack leaves after the commit */
    Ty__ResultAck ack = TY__RESULT_ACK__INIT;
    ack.ref = res->ref;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RESULT_ACK;
    env.result_ack = &ack;
    ty_send(c, w->peer, w->peer_len, &env);
}

/* workers/<id> is written on registration (when new or changed) and on
 * deregistration only: liveness never costs an etcd write. */
static void ty_put_worker_record(ty_core_t *c, ty_worker_t *w, int deregistered) {
    Ty__Resources res = TY__RESOURCES__INIT;
    res.cpus = w->cpus;
    res.mem_mb = w->mem_mb;
    res.gpus = w->gpus;
    res.labels = w->labels;
    res.n_labels = w->nlabels;
    Ty__WorkerRecord rec = TY__WORKER_RECORD__INIT;
    rec.id = w->id;
    rec.total = &res;
    rec.hostname = w->hostname ? w->hostname : "";
    rec.registered_ms = c->now.wall_ms;
    rec.deregistered = deregistered;
    rec.draining = w->draining;
    size_t len = ty__worker_record__get_packed_size(&rec);
    uint8_t *buf = ty_xmalloc(len);
    ty__worker_record__pack(&rec, buf);
    ty_persist_put(c, ty_xasprintf("workers/%s", w->id), buf, len);
}

typedef void ty_each_fn(ty_core_t *c, ty_task_t *t, ty_part_t *pt, void *arg);

/* Every attempt the core believes runs on w, and every gang part there
 * (pt: the part; NULL for an attempt whose worker w is), each visited
 * once even when fn ends it. */
static void ty_each_running_on(ty_core_t *c, ty_worker_t *w, ty_each_fn *fn, void *arg) {
    size_t n = 0;
    for (ty_task_t *t = w->tasks; t; t = t->wnext)
        n++;
    for (ty_part_t *pt = w->parts; pt; pt = pt->wnext)
        n++;
    if (!n)
        return;
    /* by task and attempt: ending one attempt frees its parts */
    struct {
        ty_task_t *t;
        unsigned attempt, part;
    } *list = ty_xcalloc(n, sizeof *list);
    size_t i = 0;
    for (ty_task_t *t = w->tasks; t; t = t->wnext)
        list[i].t = t, list[i].attempt = t->attempt, list[i++].part = 0;
    for (ty_part_t *pt = w->parts; pt; pt = pt->wnext)
        list[i].t = pt->t, list[i].attempt = pt->t->attempt, list[i++].part = pt->index;
    for (i = 0; i < n; i++) {
        ty_task_t *t = list[i].t;
        if (t->state != TY_TASK_RUNNING || t->attempt != list[i].attempt)
            continue;
        if (!list[i].part && t->w == w)
            fn(c, t, NULL, arg);
        else if (list[i].part && list[i].part <= t->nparts && t->parts[list[i].part - 1].w == w)
            fn(c, t, &t->parts[list[i].part - 1], arg);
    }
    free(list);
}

static void ty_lost_one(ty_core_t *c, ty_task_t *t, ty_part_t *pt, void *arg) {
    if (!pt) {
        ty_runs_requeue_lost(c, t, arg);
        return;
    }
    char *why = ty_xasprintf("%s (part %u of the gang)", (const char *)arg, pt->index);
    ty_gang_end(c, t, why, 1);
    free(why);
}

static int ty_ref_names(const Ty__TaskRef *ref, const ty_task_t *t) {
    return ref && strcmp(ref->run_id, t->run->id) == 0 && strcmp(ref->task, t->spec->name) == 0 &&
           ref->attempt == t->attempt;
}

/* Whether a worker's list, sent when the newest message it had from the
 * master was (epoch, seq), speaks for t: it does unless t's Dispatch left
 * after that message (it may still be on its way).  Messages to a worker
 * keep their order, so a later one having arrived means t's Dispatch
 * arrived or was lost.  Attempts dispatched before a restart came over a
 * connection that is gone. */
static int ty_list_covers(const ty_core_t *c, const ty_task_t *t, const ty_part_t *pt,
                          uint64_t epoch, uint64_t seq) {
    uint64_t sent = pt ? pt->sent_seq : t->sent_seq;
    return sent == 0 || (epoch == c->o.epoch && seq >= sent);
}

typedef struct {
    const Ty__Register *reg;
    ty_worker_t *w;
} ty_adopt_t;

static void ty_adopt_one(ty_core_t *c, ty_task_t *t, ty_part_t *pt, void *arg) {
    ty_adopt_t *a = arg;
    for (size_t i = 0; i < a->reg->n_running; i++)
        if (ty_ref_names(a->reg->running[i], t)) {
            if (!pt) { /* a part is charged from its dispatch on, by this master */
                t->adopted = 1;
                ty_queue_charge(c, t, a->w);
                if (t->gang_why) /* a gang a master restart ends */
                    ty_fleet_send_cancel(c, t);
            }
            return;
        }
    for (size_t i = 0; i < a->reg->n_unacked; i++)
        if (ty_ref_names(a->reg->unacked[i]->ref, t))
            return; /* its result follows */
    if (!ty_list_covers(c, t, pt, a->reg->seen_epoch, a->reg->seen_seq))
        return; /* registered before its Dispatch came: a heartbeat will tell */
    ty_lost_one(c, t, pt, "worker no longer runs it");
}

static int ty_labels_equal(Ty__KV **a, size_t na, Ty__KV *const *b, size_t nb) {
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i]->key, b[i]->key) != 0 || strcmp(a[i]->value, b[i]->value) != 0)
            return 0;
    return 1;
}

static void ty_on_register(ty_core_t *c, const uint8_t *peer, size_t peer_len,
                           const Ty__Register *reg) {
    if (ty_check_register(c, reg) != 0)
        return;
    ty_worker_t *w = ty_core_find_worker(c, reg->worker_id);
    const Ty__Resources *tot = reg->total;
    int changed = !w || w->known_only || w->gone || w->cpus != tot->cpus ||
                  w->mem_mb != tot->mem_mb || w->gpus != tot->gpus || !w->hostname ||
                  strcmp(w->hostname, reg->hostname) != 0 ||
                  !ty_labels_equal(w->labels, w->nlabels, tot->labels, tot->n_labels);
    if (!w)
        w = ty_fleet_add(c, reg->worker_id);
    free(w->peer);
    w->peer = ty_xmalloc(peer_len ? peer_len : 1);
    memcpy(w->peer, peer, peer_len);
    w->peer_len = peer_len;
    free(w->hostname);
    w->hostname = ty_xstrdup(reg->hostname);
    free(w->address);
    w->address = *reg->address ? ty_xstrdup(reg->address) : NULL;
    w->cpus = tot->cpus;
    w->mem_mb = tot->mem_mb;
    w->gpus = tot->gpus;
    ty_dag_kvs_free(w->labels, w->nlabels);
    w->nlabels = tot->n_labels;
    w->labels = ty_xcalloc(w->nlabels, sizeof *w->labels);
    for (size_t i = 0; i < w->nlabels; i++) {
        w->labels[i] = ty_xmalloc(sizeof(Ty__KV));
        ty__kv__init(w->labels[i]);
        w->labels[i]->key = ty_xstrdup(tot->labels[i]->key);
        w->labels[i]->value = ty_xstrdup(tot->labels[i]->value);
    }
    w->up = 1;
    w->gone = 0;
    w->known_only = w->placeholder = 0;
    w->last_seen = c->now.mono_ms;
    c->workers_changed = 1;
    c->wgen++;
    ty_queue_worker_changed(c, w);
    ty_info("worker %s registered (%g cpus, %llu MiB, %u gpus, %zu running)", w->id, w->cpus,
            (unsigned long long)w->mem_mb, w->gpus, reg->n_running);
    if (changed)
        ty_put_worker_record(c, w, 0);
    /* what it runs: adopt current attempts, cancel stale ones */
    ty_adopt_t a = {reg, w};
    ty_each_running_on(c, w, ty_adopt_one, &a);
    for (size_t i = 0; i < reg->n_running; i++) {
        ty_task_t *t = ty_task_for(c, reg->running[i]);
        if (!ty_ref_current(t, reg->running[i], w)) {
            ty_info("worker %s runs stale %s/%s#%u: cancelling it", w->id, reg->running[i]->run_id,
                    reg->running[i]->task, reg->running[i]->attempt);
            ty_send_cancel_ref(c, peer, peer_len, reg->running[i]);
        }
    }
    for (size_t i = 0; i < reg->n_unacked; i++)
        ty_apply_result(c, w, reg->unacked[i]);
    Ty__RegisterAck ack = TY__REGISTER_ACK__INIT;
    ack.epoch = c->o.epoch;
    ack.heartbeat_ms = (uint32_t)c->o.heartbeat_ms;
    ack.lease_ms = (uint32_t)c->o.worker_lease_ms;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REGISTER_ACK;
    env.register_ack = &ack;
    ty_send(c, peer, peer_len, &env);
    c->need_schedule = 1;
}

static void ty_on_log(ty_core_t *c, const Ty__LogChunk *lc) {
    ty_task_t *t = ty_task_for(c, lc->ref);
    /* only known tasks: run ids and task names are then safe path parts */
    if (!t || lc->ref->attempt == 0 || lc->ref->attempt > t->attempt || lc->data.len == 0)
        return;
    ty_fx_t fx = {.kind = TY_FX_LOG, .attempt = lc->ref->attempt, .len = lc->data.len};
    fx.run = ty_xstrdup(t->run->id);
    fx.task = ty_xstrdup(t->spec->name);
    fx.data = ty_xmalloc(lc->data.len);
    memcpy(fx.data, lc->data.data, lc->data.len);
    ty_core_emit(c, &fx); /* log follows hear when the bytes are on disk */
}

static void ty_set_metric(ty_task_t *t, const char *name, double v, int64_t step) {
    for (size_t i = 0; i < t->nmetrics; i++)
        if (strcmp(t->metrics[i].name, name) == 0) {
            t->metrics[i].value = v;
            t->metrics[i].step = step;
            return;
        }
    if (t->nmetrics >= 256)
        return; /* bounded per task */
    t->metrics = ty_xrealloc(t->metrics, (t->nmetrics + 1) * sizeof *t->metrics);
    t->metrics[t->nmetrics].name = ty_xstrdup(name);
    t->metrics[t->nmetrics].value = v;
    t->metrics[t->nmetrics].step = step;
    t->nmetrics++;
}

static void ty_set_tag(ty_task_t *t, const char *key, const char *value) {
    for (size_t i = 0; i < t->ntags; i++)
        if (strcmp(t->tags[i]->key, key) == 0) {
            free(t->tags[i]->value);
            t->tags[i]->value = ty_xstrdup(value);
            return;
        }
    if (t->ntags >= 64)
        return; /* bounded per task */
    t->tags = ty_xrealloc(t->tags, (t->ntags + 1) * sizeof *t->tags);
    Ty__KV *kv = ty_xmalloc(sizeof *kv);
    ty__kv__init(kv);
    kv->key = ty_xstrdup(key);
    kv->value = ty_xstrdup(value);
    t->tags[t->ntags++] = kv;
}

static void ty_on_report(ty_core_t *c, const Ty__Report *rep) {
    if (ty_check_report(c, rep) != 0)
        return;
    ty_task_t *t = ty_task_for(c, rep->ref);
    if (!t || t->attempt != rep->ref->attempt)
        return;
    ty_buf_t series = {0}; /* every point, for the history beside the logs */
    for (size_t i = 0; i < rep->n_items; i++) {
        const Ty__ReportItem *it = rep->items[i];
        if (it->kind == TY_REPORT_METRIC && *it->name) {
            ty_set_metric(t, it->name, it->value, it->step);
            ty_buf_printf(&series, "%lld\t%lld\t%.17g\t%s\n", (long long)c->now.wall_ms,
                          (long long)it->step, it->value, it->name);
        } else if (it->kind == TY_REPORT_TAG && *it->name) {
            ty_set_tag(t, it->name, it->text);
        } else if (it->kind == TY_REPORT_PROGRESS) {
            t->progress = it->value;
            free(t->progress_text);
            t->progress_text = *it->text ? ty_xstrdup(it->text) : NULL;
        }
    }
    if (series.len) {
        ty_fx_t fx = {.kind = TY_FX_LOG, .attempt = t->attempt, .series = 1, .len = series.len};
        fx.run = ty_xstrdup(t->run->id);
        fx.task = ty_xstrdup(t->spec->name);
        fx.data = (uint8_t *)series.data; /* the effect owns it */
        ty_core_emit(c, &fx);
    } else {
        ty_buf_free(&series);
    }
    t->run->version++;
    ty_core_notify(c, t->run);
}

static void ty_reconcile_one(ty_core_t *c, ty_task_t *t, ty_part_t *pt, void *arg) {
    const Ty__Heartbeat *hb = arg;
    if (!ty_list_covers(c, t, pt, hb->seen_epoch, hb->seen_seq))
        return; /* its Dispatch may still be on its way */
    for (size_t i = 0; i < hb->n_attempts; i++)
        if (ty_ref_names(hb->attempts[i], t))
            return;
    for (size_t i = 0; i < hb->n_unacked; i++)
        if (ty_ref_names(hb->unacked[i], t))
            return; /* its result follows */
    ty_lost_one(c, t, pt, "its worker does not run it (the dispatch was lost)");
}

/* A heartbeat lists what the worker runs: an attempt the core dispatched
 * there before the newest message the worker had received, that is neither
 * running nor waiting for its result to be acknowledged, was lost on the
 * way (ZeroMQ drops messages to a peer that reconnected); without this it
 * would count as running forever. */
static void ty_on_heartbeat(ty_core_t *c, ty_worker_t *w, const uint8_t *peer, size_t peer_len,
                            const Ty__Heartbeat *hb) {
    /* figures only shown (validated at the door: finite, not negative) */
    w->attempts_cpu_s = hb->attempts_cpu_s;
    w->attempts_rss = hb->attempts_rss;
    w->self_cpu_s = hb->self_cpu_s;
    w->self_rss = hb->self_rss;
    if (hb->listed)
        ty_each_running_on(c, w, ty_reconcile_one, (void *)hb);
    /* an attempt it runs that is no longer the current one (given up while
     * the worker was cut off, or dispatched by a master before) is cancelled */
    for (size_t i = 0; i < hb->n_attempts; i++)
        if (!ty_ref_current(ty_task_for(c, hb->attempts[i]), hb->attempts[i], w)) {
            ty_info("worker %s runs stale %s/%s#%u: cancelling it", w->id, hb->attempts[i]->run_id,
                    hb->attempts[i]->task, hb->attempts[i]->attempt);
            ty_send_cancel_ref(c, peer, peer_len, hb->attempts[i]);
        }
    Ty__HeartbeatAck ack = TY__HEARTBEAT_ACK__INIT;
    ack.epoch = c->o.epoch;
    Ty__Envelope out = TY__ENVELOPE__INIT;
    out.body_case = TY__ENVELOPE__BODY_HEARTBEAT_ACK;
    out.heartbeat_ack = &ack;
    ty_send(c, peer, peer_len, &out);
}

static void ty_on_deregister(ty_core_t *c, ty_worker_t *w, const Ty__Deregister *d) {
    ty_info("worker %s deregistered: %.200s", w->id, d->reason ? d->reason : "");
    w->up = 0;
    w->gone = 1;
    ty_queue_worker_gone(c, w);
    c->workers_changed = c->need_schedule = 1;
    c->wgen++;
    char *why = ty_xasprintf("worker %s left", w->id);
    ty_each_running_on(c, w, ty_lost_one, why);
    free(why);
    ty_put_worker_record(c, w, 1);
}

/* Part 0 of a gang (its mpirun's rsh agent) asks for part N's daemon: the
 * command goes to that part's worker, if the attempt is current and the
 * asker is part 0's worker; anything else is dropped. */
static void ty_on_part_launch(ty_core_t *c, ty_worker_t *w, const Ty__PartLaunch *pl) {
    if (!pl || !ty_ref_ok(pl->ref) || !ty_str_ok(pl->command, 65536) || !*pl->command) {
        ty_reject(c, "part launch: bad reference or command");
        return;
    }
    ty_task_t *t = ty_task_for(c, pl->ref);
    if (!t || t->state != TY_TASK_RUNNING || t->attempt != pl->ref->attempt || t->w != w ||
        pl->part == 0 || pl->part > t->nparts || !t->parts[pl->part - 1].w->peer) {
        ty_info("dropping a launch of part %u of %s/%s#%u from %s: not a current gang part",
                pl->part, pl->ref->run_id, pl->ref->task, pl->ref->attempt, w->id);
        return;
    }
    ty_worker_t *to = t->parts[pl->part - 1].w;
    Ty__TaskRef ref = *pl->ref;
    ref.epoch = c->o.epoch;
    Ty__PartLaunch out = *pl;
    out.ref = &ref;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_PART_LAUNCH;
    env.part_launch = &out;
    ty_send(c, to->peer, to->peer_len, &env);
}

/* The registered worker speaking from peer (its routing id is its id). */
static ty_worker_t *ty_worker_at(ty_core_t *c, const uint8_t *peer, size_t peer_len) {
    if (peer_len == 0 || peer_len > TY_ID_MAX || memchr(peer, 0, peer_len))
        return NULL;
    char id[TY_ID_MAX + 1];
    memcpy(id, peer, peer_len);
    id[peer_len] = '\0';
    ty_worker_t *w = ty_core_find_worker(c, id);
    if (!w || !w->up || !w->peer || w->peer_len != peer_len || memcmp(w->peer, peer, peer_len) != 0)
        return NULL;
    return w;
}

void ty_fleet_message(ty_core_t *c, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env) {
    ty_worker_t *w = ty_worker_at(c, peer, peer_len);
    if (w)
        w->last_seen = c->now.mono_ms;
    switch (env->body_case) {
    case TY__ENVELOPE__BODY_REGISTER:
        ty_on_register(c, peer, peer_len, env->register_);
        break;
    case TY__ENVELOPE__BODY_HEARTBEAT:
        if (ty_check_heartbeat(c, env->heartbeat) != 0)
            break;
        if (!w)
            ty_reregister(c, peer, peer_len);
        else
            ty_on_heartbeat(c, w, peer, peer_len, env->heartbeat);
        break;
    case TY__ENVELOPE__BODY_RESULT:
        if (!ty_result_ok(env->result))
            ty_reject(c, "result: bad task reference");
        else if (w)
            ty_apply_result(c, w, env->result);
        else
            ty_reregister(c, peer, peer_len); /* it keeps the result and sends it on register */
        break;
    case TY__ENVELOPE__BODY_LOG:
        if (!env->log || !ty_ref_ok(env->log->ref))
            ty_reject(c, "log: bad task reference");
        else if (w)
            ty_on_log(c, env->log);
        break;
    case TY__ENVELOPE__BODY_REPORT:
        if (w)
            ty_on_report(c, env->report);
        break;
    case TY__ENVELOPE__BODY_PART_LAUNCH:
        if (w)
            ty_on_part_launch(c, w, env->part_launch);
        break;
    case TY__ENVELOPE__BODY_DEREGISTER:
        if (w)
            ty_on_deregister(c, w, env->deregister);
        break;
    default:
        ty_reject(c, "unexpected message on the worker socket");
        break;
    }
}

static void ty_grace_one(ty_core_t *c, ty_task_t *t, ty_part_t *pt, void *arg) {
    (void)arg;
    if (!pt && !t->adopted)
        ty_runs_requeue_lost(c, t,
                             t->w && t->w->placeholder
                                 ? "its worker is unknown"
                                 : "its worker did not re-register after a master restart");
}

/* w is lost: its attempts are requeued (why) and it takes nothing more
 * until it registers again. */
static void ty_worker_lost(ty_core_t *c, ty_worker_t *w, const char *why) {
    w->up = 0;
    ty_queue_worker_gone(c, w);
    c->workers_changed = c->need_schedule = 1;
    c->wgen++;
    ty_each_running_on(c, w, ty_lost_one, (void *)why);
    w->used_cpus = 0;
    w->used_mem = 0;
    w->gpu_busy = 0;
    w->running = 0;
}

int ty_fleet_drain(ty_core_t *c, const ty_ev_t *ev) {
    ty_worker_t *w = ev->key ? ty_core_find_worker(c, ev->key) : NULL;
    if (!w || w->placeholder) {
        char *msg = ty_xasprintf("no worker named '%.100s'", ev->key ? ev->key : "");
        ty_core_reply_error(c, ev, TY_ENOENT, msg);
        free(msg);
        return TY_ENOENT;
    }
    int drain = ev->status != 0;
    if (w->draining != drain) {
        w->draining = drain;
        ty_info("worker %s %s", w->id, drain ? "drains: no new attempts" : "takes attempts again");
        ty_queue_worker_changed(c, w);
        c->workers_changed = c->need_schedule = 1;
        c->wgen++;
        ty_put_worker_record(c, w, w->gone);
    }
    Ty__DrainReply dr = TY__DRAIN_REPLY__INIT;
    dr.worker_id = w->id;
    dr.draining = w->draining;
    dr.running = w->running;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.req_id = ev->req_id;
    env.body_case = TY__ENVELOPE__BODY_DRAIN_REPLY;
    env.drain_reply = &dr;
    ty_core_send_env(c, TY_PEER_CLIENT, ev->peer, ev->peer_len, &env); /* once durable */
    return 0;
}

void ty_fleet_revoke(ty_core_t *c, const char *id) {
    ty_worker_t *w = id ? ty_core_find_worker(c, id) : NULL;
    if (!w || !w->up)
        return;
    ty_warn("worker %s lost: its key was revoked", w->id);
    char *why = ty_xasprintf("worker %s lost: its key was revoked", w->id);
    ty_worker_lost(c, w, why);
    free(why);
}

void ty_fleet_sweep(ty_core_t *c) {
    int64_t now = c->now.mono_ms;
    for (size_t i = 0; i < c->nworkers; i++) {
        ty_worker_t *w = c->wlist[i];
        if (!w->up || now - w->last_seen <= c->o.worker_lease_ms)
            continue;
        ty_warn("worker %s lost: silent for %lld ms", w->id, (long long)(now - w->last_seen));
        char *why = ty_xasprintf("worker %s lost", w->id);
        ty_worker_lost(c, w, why);
        free(why);
    }
    if (c->grace_until && now >= c->grace_until) {
        c->grace_until = 0;
        for (size_t i = 0; i < c->nworkers; i++)
            ty_each_running_on(c, c->wlist[i], ty_grace_one, NULL);
    }
}
