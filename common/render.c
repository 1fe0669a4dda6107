/* JSON views of the master's replies (render.h). */
#include "common/render.h"

#include "common/dag.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

json_t *ty_render_time(int64_t ms) {
    if (ms <= 0)
        return json_null();
    char buf[40];
    ty_fmt_time(ms, buf, sizeof buf);
    return json_string(buf);
}

json_t *ty_render_run(const Ty__RunRecord *r) {
    json_t *o = json_object();
    json_object_set_new(o, "run_id", json_string(r->run_id));
    json_object_set_new(o, "pipeline", json_string(r->pipeline));
    json_object_set_new(o, "state", json_string(ty_run_state_name(r->state)));
    json_object_set_new(o, "owner", *r->owner ? json_string(r->owner) : json_null());
    json_object_set_new(o, "created_at", ty_render_time(r->created_ms));
    json_object_set_new(o, "started_at", ty_render_time(r->started_ms));
    json_object_set_new(o, "finished_at", ty_render_time(r->finished_ms));
    json_t *p = json_object();
    for (size_t i = 0; i < r->n_params; i++)
        json_object_set_new(p, r->params[i]->key, json_string(r->params[i]->value));
    json_object_set_new(o, "params", p);
    json_object_set_new(o, "schedule", *r->schedule ? json_string(r->schedule) : json_null());
    json_object_set_new(o, "fire_time", r->fire_s ? ty_render_time(r->fire_s * 1000) : json_null());
    return o;
}

json_t *ty_render_status(const Ty__RunStatus *st) {
    json_t *o = ty_render_run(st->run);
    json_t *tasks = json_array();
    for (size_t i = 0; i < st->n_tasks; i++) {
        const Ty__TaskRecord *t = st->tasks[i];
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(t->name));
        json_object_set_new(j, "state", json_string(ty_task_state_name(t->state)));
        json_object_set_new(j, "attempt", json_integer(t->attempt));
        json_object_set_new(j, "worker", *t->worker ? json_string(t->worker) : json_null());
        /* a cancelled task has no exit code (its kill is not its end): its
         * state says it */
        int finished = t->state == TY_TASK_SUCCEEDED || t->state == TY_TASK_FAILED ||
                       t->state == TY_TASK_CACHED || (t->attempt > 0 && t->state == TY_TASK_QUEUED);
        json_object_set_new(j, "exit_code",
                            finished && t->attempt > 0 && !t->term_signal
                                ? json_integer(t->exit_code)
                                : json_null());
        json_object_set_new(j, "signal",
                            t->term_signal && t->state != TY_TASK_CANCELLED
                                ? json_integer(t->term_signal)
                                : json_null());
        json_object_set_new(j, "started_at", ty_render_time(t->started_ms));
        json_object_set_new(j, "finished_at", ty_render_time(t->finished_ms));
        json_object_set_new(j, "reason", *t->reason ? json_string(t->reason) : json_null());
        json_object_set_new(j, "progress", json_real(t->progress));
        json_object_set_new(j, "progress_text",
                            *t->progress_text ? json_string(t->progress_text) : json_null());
        json_t *ms = json_object();
        for (size_t k = 0; k < t->n_metrics; k++) {
            json_t *mv = json_object();
            json_object_set_new(mv, "value", json_real(t->metrics[k]->value));
            json_object_set_new(mv, "step", json_integer(t->metrics[k]->step));
            json_object_set_new(ms, t->metrics[k]->name, mv);
        }
        json_object_set_new(j, "metrics", ms);
        json_t *outs = json_array();
        for (size_t k = 0; k < t->n_outputs; k++) {
            json_t *a = json_object();
            json_object_set_new(a, "name", json_string(t->outputs[k]->name));
            json_object_set_new(a, "size", json_integer((json_int_t)t->outputs[k]->size));
            json_object_set_new(a, "sha256", json_string(t->outputs[k]->sha256));
            json_array_append_new(outs, a);
        }
        json_object_set_new(j, "outputs", outs);
        json_t *tags = json_object();
        for (size_t k = 0; k < t->n_tags; k++)
            json_object_set_new(tags, t->tags[k]->key, json_string(t->tags[k]->value));
        json_object_set_new(j, "tags", tags);
        json_object_set_new(j, "cache", *t->cache_note ? json_string(t->cache_note) : json_null());
        json_t *parts = t->n_parts ? json_array() : json_null(); /* an MPI gang across workers */
        for (size_t k = 0; k < t->n_parts; k++) {
            json_t *pj = json_object(), *g = json_array();
            json_object_set_new(pj, "worker", json_string(t->parts[k]->worker));
            json_object_set_new(pj, "address", json_string(t->parts[k]->address));
            json_object_set_new(pj, "ranks", json_integer(t->parts[k]->ranks));
            for (size_t x = 0; x < t->parts[k]->n_gpu_ids; x++)
                json_array_append_new(g, json_integer(t->parts[k]->gpu_ids[x]));
            json_object_set_new(pj, "gpus", g);
            json_array_append_new(parts, pj);
        }
        json_object_set_new(j, "parts", parts);
        json_object_set_new(j, "failures", json_integer(t->failures));
        json_object_set_new(j, "lost", json_integer(t->lost));
        /* its upstreams, from the run's spec (when the status carries it) */
        const Ty__PipelineSpec *sp = st->run->spec;
        const Ty__TaskSpec *ts =
            sp && i < sp->n_tasks && strcmp(sp->tasks[i]->name, t->name) == 0 ? sp->tasks[i] : NULL;
        for (size_t k = 0; sp && !ts && k < sp->n_tasks; k++)
            if (strcmp(sp->tasks[k]->name, t->name) == 0)
                ts = sp->tasks[k];
        if (sp) { /* asked for (status ?spec=1): otherwise not known here */
            json_t *deps = json_array();
            for (size_t k = 0; ts && k < ts->n_depends_on; k++)
                json_array_append_new(deps, json_string(ts->depends_on[k]));
            json_object_set_new(j, "depends_on", deps);
        }
        json_array_append_new(tasks, j);
    }
    json_object_set_new(o, "tasks", tasks);
    json_object_set_new(o, "version", json_integer((json_int_t)st->version));
    return o;
}

json_t *ty_render_worker(const Ty__WorkerStatus *w) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(w->id));
    json_object_set_new(o, "state", json_string(w->state));
    json_object_set_new(o, "draining", json_boolean(w->draining));
    json_object_set_new(o, "hostname", json_string(w->hostname));
    json_object_set_new(o, "cpus", json_real(w->total ? w->total->cpus : 0));
    json_object_set_new(o, "mem_mb", json_integer(w->total ? (json_int_t)w->total->mem_mb : 0));
    json_object_set_new(o, "gpus", json_integer(w->total ? w->total->gpus : 0));
    json_t *l = json_object();
    for (size_t i = 0; w->total && i < w->total->n_labels; i++)
        json_object_set_new(l, w->total->labels[i]->key, json_string(w->total->labels[i]->value));
    json_object_set_new(o, "labels", l);
    json_object_set_new(o, "running", json_integer(w->running));
    json_object_set_new(o, "used_cpus", json_real(w->used ? w->used->cpus : 0));
    json_object_set_new(o, "used_mem_mb", json_integer(w->used ? (json_int_t)w->used->mem_mb : 0));
    json_object_set_new(o, "used_gpus", json_integer(w->used ? w->used->gpus : 0));
    json_object_set_new(o, "last_seen_at", ty_render_time(w->last_seen_ms));
    json_t *at = json_array();
    for (size_t i = 0; i < w->n_attempts; i++) {
        json_t *x = json_object();
        json_object_set_new(x, "run_id", json_string(w->attempts[i]->run_id));
        json_object_set_new(x, "task", json_string(w->attempts[i]->task));
        json_object_set_new(x, "attempt", json_integer(w->attempts[i]->attempt));
        json_array_append_new(at, x);
    }
    json_object_set_new(o, "attempts", at);
    return o;
}

json_t *ty_render_runs(const Ty__RunsReply *rr) {
    json_t *a = json_array();
    for (size_t i = 0; i < rr->n_runs; i++)
        json_array_append_new(a, ty_render_run(rr->runs[i]->run));
    return a;
}

json_t *ty_render_workers(const Ty__WorkersReply *wr) {
    json_t *a = json_array();
    for (size_t i = 0; i < wr->n_workers; i++)
        json_array_append_new(a, ty_render_worker(wr->workers[i]));
    return a;
}

json_t *ty_render_pipelines(const Ty__PipelinesReply *pr) {
    json_t *a = json_array();
    for (size_t i = 0; i < pr->n_pipelines; i++) {
        const Ty__PipelineSummary *p = pr->pipelines[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(p->name));
        json_object_set_new(o, "runs", json_integer(p->runs));
        json_object_set_new(o, "succeeded", json_integer(p->succeeded));
        json_object_set_new(o, "failed", json_integer(p->failed));
        json_object_set_new(o, "active", json_integer(p->active));
        json_object_set_new(o, "last_run", p->last ? ty_render_run(p->last) : json_null());
        json_array_append_new(a, o);
    }
    return a;
}

json_t *ty_render_metrics(const Ty__MetricsReply *r) {
    json_t *all = json_array();
    for (size_t i = 0; i < r->n_series; i++) {
        const Ty__MetricSeries *s = r->series[i];
        json_t *o = json_object(), *pts = json_array();
        json_object_set_new(o, "task", json_string(s->task));
        json_object_set_new(o, "attempt", json_integer(s->attempt));
        json_object_set_new(o, "name", json_string(s->name));
        for (size_t k = 0; k < s->n_points; k++) {
            json_t *p = json_object();
            json_object_set_new(p, "step", json_integer(s->points[k]->step));
            json_object_set_new(p, "value", json_real(s->points[k]->value));
            json_object_set_new(p, "t_ms", json_integer(s->points[k]->t_ms));
            json_array_append_new(pts, p);
        }
        json_object_set_new(o, "points", pts);
        json_array_append_new(all, o);
    }
    return all;
}

json_t *ty_render_artifacts(const Ty__RunStatus *st) {
    json_t *all = json_array();
    for (size_t i = 0; i < st->n_tasks; i++) {
        const Ty__TaskRecord *t = st->tasks[i];
        for (size_t k = 0; k < t->n_outputs; k++) {
            json_t *a = json_object();
            json_object_set_new(a, "task", json_string(t->name));
            json_object_set_new(a, "name", json_string(t->outputs[k]->name));
            json_object_set_new(a, "size", json_integer((json_int_t)t->outputs[k]->size));
            json_object_set_new(a, "sha256", json_string(t->outputs[k]->sha256));
            json_object_set_new(a, "attempt", json_integer(t->attempt));
            json_object_set_new(a, "worker", json_string(t->worker));
            json_array_append_new(all, a);
        }
    }
    return all;
}

json_t *ty_render_info(const Ty__InfoReply *r) {
    json_t *o = json_object();
    json_object_set_new(o, "node_id", json_string(r->node_id));
    json_object_set_new(o, "pid", json_integer((json_int_t)r->pid));
    json_object_set_new(o, "leader", json_boolean(r->leader));
    json_object_set_new(o, "leader_node", json_string(r->leader_node));
    json_object_set_new(o, "epoch", json_integer((json_int_t)r->epoch));
    json_object_set_new(o, "frames_rejected_size",
                        json_integer((json_int_t)r->frames_rejected_size));
    json_object_set_new(o, "frames_rejected_decode",
                        json_integer((json_int_t)r->frames_rejected_decode));
    json_object_set_new(o, "etcd_txns", json_integer((json_int_t)r->etcd_txns));
    json_object_set_new(o, "etcd_ops", json_integer((json_int_t)r->etcd_ops));
    json_object_set_new(o, "dispatches", json_integer((json_int_t)r->dispatches));
    json_object_set_new(o, "etcd_txns_behind", json_integer((json_int_t)r->etcd_txns_behind));
    json_object_set_new(o, "runs_in_memory", json_integer((json_int_t)r->runs_in_memory));
    json_object_set_new(o, "runs_released", json_integer((json_int_t)r->runs_released));
    json_object_set_new(o, "messages_rejected", json_integer((json_int_t)r->messages_rejected));
    json_object_set_new(o, "last_rejected", json_string(r->last_rejected));
    json_object_set_new(o, "etcd_quiet_ms", json_integer((json_int_t)r->etcd_quiet_ms));
    json_object_set_new(o, "curve", json_boolean(r->curve));
    json_object_set_new(o, "auth_refused", json_integer((json_int_t)r->auth_refused));
    json_object_set_new(o, "last_auth_refused", json_string(r->last_auth_refused));
    json_object_set_new(o, "peers_banned", json_integer((json_int_t)r->peers_banned));
    json_object_set_new(o, "banned_dropped", json_integer((json_int_t)r->banned_dropped));
    return o;
}

json_t *ty_render_schedule(const Ty__ScheduleStatus *st) {
    const Ty__ScheduleRecord *r = st->record;
    const Ty__ScheduleSpec *sp = r->spec;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(sp->name));
    json_object_set_new(o, "pipeline", json_string(sp->pipeline ? sp->pipeline->name : ""));
    json_object_set_new(o, "file", json_string(sp->file));
    json_object_set_new(o, "cron", json_string(sp->cron));
    json_object_set_new(o, "tz", json_string(sp->tz));
    json_object_set_new(o, "catchup", json_string(sp->catchup));
    json_object_set_new(o, "max_catchup", json_integer(sp->max_catchup));
    json_object_set_new(o, "concurrency", json_string(sp->concurrency));
    json_t *p = json_object();
    for (size_t i = 0; i < sp->n_params; i++)
        json_object_set_new(p, sp->params[i]->key, json_string(sp->params[i]->value));
    json_object_set_new(o, "params", p);
    json_object_set_new(o, "paused", json_boolean(r->paused));
    json_object_set_new(o, "last_fire", ty_render_time(r->last_fire_s * 1000));
    json_object_set_new(o, "last_run", *r->last_run ? json_string(r->last_run) : json_null());
    json_object_set_new(o, "owner", *r->owner ? json_string(r->owner) : json_null());
    json_object_set_new(o, "fired", json_integer((json_int_t)r->fired));
    json_object_set_new(o, "skipped", json_integer((json_int_t)r->skipped));
    json_object_set_new(o, "note", *r->note ? json_string(r->note) : json_null());
    json_t *next = json_array();
    for (size_t i = 0; i < st->n_next_fires; i++) {
        json_t *f = json_object();
        json_object_set_new(f, "utc", ty_render_time(st->next_fires[i] * 1000));
        json_object_set_new(f, "local", json_string(i < st->n_next_local ? st->next_local[i] : ""));
        json_array_append_new(next, f);
    }
    json_object_set_new(o, "next_fires", next);
    json_t *running = json_array();
    for (size_t i = 0; i < st->n_running; i++)
        json_array_append_new(running, json_string(st->running[i]));
    json_object_set_new(o, "running", running);
    json_object_set_new(o, "created_at", ty_render_time(r->created_ms));
    return o;
}

static json_t *ty_kvs_json(Ty__KV *const *kvs, size_t n) {
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, kvs[i]->key, json_string(kvs[i]->value));
    return o;
}

json_t *ty_render_model_version(const Ty__ModelVersion *v, const Ty__ModelRecord *rec) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(v->name));
    json_object_set_new(o, "version", json_integer(v->version));
    json_object_set_new(o, "artifact", json_string(v->artifact));
    json_object_set_new(o, "sha256", json_string(v->sha256));
    json_object_set_new(o, "size", json_integer((json_int_t)v->size));
    json_object_set_new(o, "run_id", json_string(v->run_id));
    json_object_set_new(o, "task", json_string(v->task));
    json_object_set_new(o, "pipeline", json_string(v->pipeline));
    json_object_set_new(o, "params", ty_kvs_json(v->params, v->n_params));
    json_t *m = json_object();
    for (size_t i = 0; i < v->n_metrics; i++)
        json_object_set_new(m, v->metrics[i]->name, json_real(v->metrics[i]->value));
    json_object_set_new(o, "metrics", m);
    json_object_set_new(o, "tags", ty_kvs_json(v->tags, v->n_tags));
    json_object_set_new(o, "created_at", ty_render_time(v->created_ms));
    json_object_set_new(o, "by", json_string(v->by));
    json_t *al = json_array();
    for (size_t i = 0; rec && i < rec->n_aliases; i++)
        if (strtoul(rec->aliases[i]->value, NULL, 10) == v->version)
            json_array_append_new(al, json_string(rec->aliases[i]->key));
    json_object_set_new(o, "aliases", al);
    return o;
}

json_t *ty_render_model(const Ty__ModelRecord *r) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "last_version", json_integer(r->last_version));
    json_object_set_new(o, "owner", *r->owner ? json_string(r->owner) : json_null());
    json_t *al = json_object();
    for (size_t i = 0; i < r->n_aliases; i++)
        json_object_set_new(al, r->aliases[i]->key,
                            json_integer((json_int_t)strtoul(r->aliases[i]->value, NULL, 10)));
    json_object_set_new(o, "aliases", al);
    json_object_set_new(o, "created_at", ty_render_time(r->created_ms));
    return o;
}

json_t *ty_render_model_history(const Ty__ModelReply *r) {
    json_t *j = json_array();
    for (size_t i = 0; i < r->n_history; i++) {
        const Ty__AliasMove *h = r->history[i];
        json_t *o = json_object();
        json_object_set_new(o, "seq", json_integer((json_int_t)h->seq));
        json_object_set_new(o, "alias", json_string(h->alias));
        json_object_set_new(o, "from_version",
                            h->from_version ? json_integer(h->from_version) : json_null());
        json_object_set_new(o, "to_version", json_integer(h->to_version));
        json_object_set_new(o, "by", json_string(h->by));
        json_object_set_new(o, "at", ty_render_time(h->at_ms));
        json_object_set_new(o, "note", json_string(h->note));
        json_array_append_new(j, o);
    }
    return j;
}
