/* The worker socket: registration (and adoption of still-running tasks after
 * a master restart), heartbeats, liveness, task results, log chunks and
 * report lines. */
#include "master/master.h"

#include "common/err.h"
#include "common/log.h"
#include "common/report.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void ty_workers_free(ty_worker_t *w) {
    if (!w)
        return;
    free(w->id);
    free(w->hostname);
    zframe_destroy(&w->identity);
    ty_dag_kvs_free(w->labels, w->nlabels);
    free(w);
}

static void ty_send_simple(ty_master_t *m, zframe_t *id, Ty__Envelope *env) {
    ty_state_send(m, m->wsock, id, env);
}

static void ty_reregister(ty_master_t *m, zframe_t *id) {
    Ty__ReRegister rr = TY__RE_REGISTER__INIT;
    rr.epoch = m->epoch;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REREGISTER;
    env.reregister = &rr;
    ty_send_simple(m, id, &env);
}

static void ty_send_cancel_ref(ty_master_t *m, zframe_t *id, Ty__TaskRef *ref) {
    Ty__CancelTask c = TY__CANCEL_TASK__INIT;
    c.ref = ref;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_CANCEL_TASK;
    env.cancel_task = &c;
    ty_send_simple(m, id, &env);
}

void ty_workers_send_cancel(ty_master_t *m, ty_task_t *t) {
    ty_worker_t *w = t->worker ? zhashx_lookup(m->workers, t->worker) : NULL;
    if (!w || !w->identity)
        return;
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = t->run->id;
    ref.task = t->spec->name;
    ref.attempt = t->attempt;
    ref.epoch = m->epoch;
    ty_send_cancel_ref(m, w->identity, &ref);
}

/* Calls fn for every task the master believes runs on w. */
static void ty_each_running_on(ty_master_t *m, const char *wid,
                               void (*fn)(ty_master_t *, ty_task_t *, void *), void *arg) {
    for (size_t k = 0; k < m->nruns; k++) {
        ty_run_t *r = m->order[k];
        if (r->state != TY_RUN_PENDING && r->state != TY_RUN_RUNNING)
            continue;
        for (size_t i = 0; i < r->ntasks; i++) {
            ty_task_t *t = &r->tasks[i];
            if (t->state == TY_TASK_RUNNING && t->worker && strcmp(t->worker, wid) == 0)
                fn(m, t, arg);
        }
    }
}

static ty_task_t *ty_task_for(ty_master_t *m, const Ty__TaskRef *ref) {
    return ref ? ty_sched_find_task(m, ref->run_id, ref->task) : NULL;
}

static int ty_ref_current(const ty_task_t *t, const Ty__TaskRef *ref, const char *wid) {
    return t && t->state == TY_TASK_RUNNING && t->attempt == ref->attempt && t->worker &&
           strcmp(t->worker, wid) == 0;
}

static void ty_apply_result(ty_master_t *m, ty_worker_t *w, zframe_t *id,
                            const Ty__TaskResult *res) {
    if (!res->ref)
        return;
    ty_task_t *t = ty_task_for(m, res->ref);
    if (ty_ref_current(t, res->ref, w->id) && res->interrupted)
        ty_sched_requeue_lost(m, t, *res->error ? res->error : "interrupted by its worker");
    else if (ty_ref_current(t, res->ref, w->id))
        ty_sched_task_result(m, t, res);
    else
        ty_debug("ignoring result of stale attempt %s/%s#%u", res->ref->run_id, res->ref->task,
                 res->ref->attempt);
    /* ack either way so the worker forgets it; the ack leaves after the commit */
    Ty__ResultAck ack = TY__RESULT_ACK__INIT;
    ack.ref = res->ref;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RESULT_ACK;
    env.result_ack = &ack;
    ty_send_simple(m, id, &env);
}

/* workers/<id> is written on registration (when new or changed) and on
 * deregistration only: liveness never costs an etcd write. */
static void ty_put_worker_record(ty_master_t *m, ty_worker_t *w, Ty__Resources *total,
                                 int deregistered) {
    Ty__Resources res = TY__RESOURCES__INIT;
    res.cpus = w->cpus;
    res.mem_mb = w->mem_mb;
    res.gpus = w->gpus;
    res.labels = w->labels;
    res.n_labels = w->nlabels;
    Ty__WorkerRecord rec = TY__WORKER_RECORD__INIT;
    rec.id = w->id;
    rec.total = total ? total : &res;
    rec.hostname = w->hostname ? w->hostname : "";
    rec.registered_ms = ty_now_ms();
    rec.deregistered = deregistered;
    size_t len = ty__worker_record__get_packed_size(&rec);
    uint8_t *buf = ty_xmalloc(len);
    ty__worker_record__pack(&rec, buf);
    char *key = ty_state_key(m, "workers/%s", w->id);
    ty_state_put_raw(m, key, buf, len);
    free(key);
}

static void ty_lost_one(ty_master_t *m, ty_task_t *t, void *arg) {
    ty_sched_requeue_lost(m, t, arg);
}

typedef struct {
    const Ty__Register *reg;
    ty_worker_t *w;
} ty_adopt_t;

static void ty_adopt_one(ty_master_t *m, ty_task_t *t, void *arg) {
    ty_adopt_t *a = arg;
    for (size_t i = 0; i < a->reg->n_running; i++) {
        Ty__TaskRef *ref = a->reg->running[i];
        if (strcmp(ref->run_id, t->run->id) == 0 && strcmp(ref->task, t->spec->name) == 0 &&
            ref->attempt == t->attempt) {
            t->adopted = 1;
            ty_sched_charge(m, t, a->w);
            return;
        }
    }
    for (size_t i = 0; i < a->reg->n_unacked; i++) {
        Ty__TaskRef *ref = a->reg->unacked[i]->ref;
        if (ref && strcmp(ref->run_id, t->run->id) == 0 && strcmp(ref->task, t->spec->name) == 0 &&
            ref->attempt == t->attempt)
            return; /* its result follows */
    }
    ty_sched_requeue_lost(m, t, "worker no longer runs it");
}

static void ty_on_register(ty_master_t *m, zframe_t *id, const Ty__Register *reg) {
    if (!*reg->worker_id || !reg->total) {
        ty_warn("register without worker id or resources ignored");
        return;
    }
    ty_worker_t *w = zhashx_lookup(m->workers, reg->worker_id);
    int changed = !w || w->known_only || w->cpus != reg->total->cpus ||
                  w->mem_mb != reg->total->mem_mb || w->gpus != reg->total->gpus;
    if (!w) {
        w = ty_xcalloc(1, sizeof *w);
        w->id = ty_xstrdup(reg->worker_id);
        zhashx_insert(m->workers, w->id, w);
    }
    zframe_destroy(&w->identity);
    w->identity = zframe_dup(id);
    free(w->hostname);
    w->hostname = ty_xstrdup(reg->hostname);
    w->cpus = reg->total->cpus;
    w->mem_mb = reg->total->mem_mb;
    w->gpus = reg->total->gpus;
    ty_dag_kvs_free(w->labels, w->nlabels);
    w->nlabels = reg->total->n_labels;
    w->labels = ty_xcalloc(w->nlabels, sizeof *w->labels);
    for (size_t i = 0; i < w->nlabels; i++) {
        w->labels[i] = ty_xmalloc(sizeof(Ty__KV));
        ty__kv__init(w->labels[i]);
        w->labels[i]->key = ty_xstrdup(reg->total->labels[i]->key);
        w->labels[i]->value = ty_xstrdup(reg->total->labels[i]->value);
    }
    w->up = 1;
    w->gone = 0;
    w->known_only = 0;
    w->last_seen = ty_mono_ms();
    m->workers_changed = 1;
    ty_info("worker %s registered (%g cpus, %llu MiB, %u gpus, %zu running)", w->id, w->cpus,
            (unsigned long long)w->mem_mb, w->gpus, reg->n_running);
    if (changed)
        ty_put_worker_record(m, w, reg->total, 0);
    /* what it runs: adopt current attempts, cancel stale ones */
    ty_adopt_t a = {reg, w};
    ty_each_running_on(m, w->id, ty_adopt_one, &a);
    for (size_t i = 0; i < reg->n_running; i++) {
        ty_task_t *t = ty_task_for(m, reg->running[i]);
        if (!ty_ref_current(t, reg->running[i], w->id)) {
            ty_info("worker %s runs stale %s/%s#%u: cancelling it", w->id, reg->running[i]->run_id,
                    reg->running[i]->task, reg->running[i]->attempt);
            ty_send_cancel_ref(m, id, reg->running[i]);
        }
    }
    for (size_t i = 0; i < reg->n_unacked; i++)
        ty_apply_result(m, w, id, reg->unacked[i]);
    Ty__RegisterAck ack = TY__REGISTER_ACK__INIT;
    ack.epoch = m->epoch;
    ack.heartbeat_ms = (uint32_t)m->o.heartbeat_ms;
    ack.lease_ms = (uint32_t)m->o.worker_lease_ms;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REGISTER_ACK;
    env.register_ack = &ack;
    ty_send_simple(m, id, &env);
    m->need_schedule = 1;
}

char *ty_workers_log_path(ty_master_t *m, const char *run, const char *task, unsigned attempt) {
    return ty_xasprintf("%s/logs/%s/%s.%u.log", m->o.data_dir, run, task, attempt);
}

static void ty_on_log(ty_master_t *m, const Ty__LogChunk *lc) {
    ty_task_t *t = ty_task_for(m, lc->ref);
    /* only known tasks: run ids and task names are then safe path parts */
    if (!t || lc->ref->attempt == 0 || lc->ref->attempt > t->attempt)
        return;
    char *dir = ty_xasprintf("%s/logs/%s", m->o.data_dir, t->run->id);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        ty_warn("cannot create %s: %s", dir, strerror(errno));
    free(dir);
    char *path = ty_workers_log_path(m, t->run->id, t->spec->name, lc->ref->attempt);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        ty_warn("cannot open %s: %s", path, strerror(errno));
    } else {
        ssize_t n = write(fd, lc->data.data, lc->data.len);
        if (n != (ssize_t)lc->data.len)
            ty_warn("short write to %s", path);
        close(fd);
    }
    free(path);
    ty_api_notify(m, t->run, 1);
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

static void ty_on_report(ty_master_t *m, const Ty__Report *rep) {
    ty_task_t *t = ty_task_for(m, rep->ref);
    if (!t || t->attempt != rep->ref->attempt)
        return;
    for (size_t i = 0; i < rep->n_items; i++) {
        const Ty__ReportItem *it = rep->items[i];
        if (it->kind == TY_REPORT_METRIC && *it->name) {
            ty_set_metric(t, it->name, it->value, it->step);
        } else if (it->kind == TY_REPORT_PROGRESS) {
            t->progress = it->value;
            free(t->progress_text);
            t->progress_text = *it->text ? ty_xstrdup(it->text) : NULL;
        }
    }
    t->run->version++;
    ty_api_notify(m, t->run, 0);
}

void ty_workers_on_message(void *arg) {
    ty_master_t *m = arg;
    zframe_t *id = NULL;
    Ty__Envelope *env = NULL;
    if (ty_state_recv(m, m->wsock, &id, &env) != 0)
        return;
    char *wid = zframe_strdup(id);
    ty_worker_t *w = zhashx_lookup(m->workers, wid);
    free(wid);
    if (w && (!w->up || !w->identity || !zframe_eq(w->identity, id)))
        w = NULL;
    if (w)
        w->last_seen = ty_mono_ms();
    switch (env->body_case) {
    case TY__ENVELOPE__BODY_REGISTER:
        ty_on_register(m, id, env->register_);
        break;
    case TY__ENVELOPE__BODY_HEARTBEAT:
        if (!w) {
            ty_reregister(m, id);
        } else {
            Ty__HeartbeatAck ack = TY__HEARTBEAT_ACK__INIT;
            ack.epoch = m->epoch;
            Ty__Envelope out = TY__ENVELOPE__INIT;
            out.body_case = TY__ENVELOPE__BODY_HEARTBEAT_ACK;
            out.heartbeat_ack = &ack;
            ty_send_simple(m, id, &out);
        }
        break;
    case TY__ENVELOPE__BODY_RESULT:
        if (w)
            ty_apply_result(m, w, id, env->result);
        else
            ty_reregister(m, id); /* it keeps the result and sends it on register */
        break;
    case TY__ENVELOPE__BODY_LOG:
        if (w)
            ty_on_log(m, env->log);
        break;
    case TY__ENVELOPE__BODY_REPORT:
        if (w)
            ty_on_report(m, env->report);
        break;
    case TY__ENVELOPE__BODY_DEREGISTER:
        if (w) {
            ty_info("worker %s deregistered: %s", w->id, env->deregister->reason);
            w->up = 0;
            w->gone = 1;
            m->workers_changed = m->need_schedule = 1;
            char *why = ty_xasprintf("worker %s left", w->id);
            ty_each_running_on(m, w->id, ty_lost_one, why);
            free(why);
            ty_put_worker_record(m, w, NULL, 1);
        }
        break;
    default:
        m->rejected_decode++;
        ty_warn("worker socket: unexpected message %d", (int)env->body_case);
        break;
    }
    ty_wire_free(&env);
    zframe_destroy(&id);
}

static void ty_grace_one(ty_master_t *m, ty_task_t *t, void *arg) {
    (void)arg;
    if (!t->adopted)
        ty_sched_requeue_lost(m, t, "its worker did not re-register after a master restart");
}

void ty_workers_sweep(ty_master_t *m) {
    int64_t now = ty_mono_ms();
    for (ty_worker_t *w = zhashx_first(m->workers); w; w = zhashx_next(m->workers)) {
        if (!w->up || now - w->last_seen <= m->o.worker_lease_ms)
            continue;
        w->up = 0;
        m->workers_changed = m->need_schedule = 1;
        ty_warn("worker %s lost: silent for %lld ms", w->id, (long long)(now - w->last_seen));
        char *why = ty_xasprintf("worker %s lost", w->id);
        ty_each_running_on(m, w->id, ty_lost_one, why);
        free(why);
        w->used_cpus = 0;
        w->used_mem = 0;
        w->gpu_busy = 0;
        w->running = 0;
    }
    if (m->grace_until && now >= m->grace_until) {
        m->grace_until = 0;
        for (ty_worker_t *w = zhashx_first(m->workers); w; w = zhashx_next(m->workers))
            ty_each_running_on(m, w->id, ty_grace_one, NULL);
        /* tasks on workers the master has never heard of */
        for (size_t k = 0; k < m->nruns; k++) {
            ty_run_t *r = m->order[k];
            for (size_t i = 0; r->state <= TY_RUN_RUNNING && i < r->ntasks; i++) {
                ty_task_t *t = &r->tasks[i];
                if (t->state == TY_TASK_RUNNING && !t->adopted &&
                    (!t->worker || !zhashx_lookup(m->workers, t->worker)))
                    ty_sched_requeue_lost(m, t, "its worker is unknown");
            }
        }
    }
}
