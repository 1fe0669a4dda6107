/* Runs and tasks: readiness by trigger rule, settling, results, retries
 * with back-off, lost attempts, cancel, and recovery after a rebuild. */
#include "master/core/core_int.h"

#include "common/cond.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int ty_by_name_cmp(const void *a, const void *b, void *arg) {
    const Ty__PipelineSpec *spec = arg;
    return strcmp(spec->tasks[*(const uint32_t *)a]->name, spec->tasks[*(const uint32_t *)b]->name);
}

int ty_runs_task_index(const ty_run_t *r, const char *name) {
    size_t lo = 0, hi = r->ntasks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int k = strcmp(r->spec->tasks[r->by_name[mid]]->name, name);
        if (k == 0)
            return (int)r->by_name[mid];
        if (k < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

ty_run_t *ty_runs_new(const char *id, Ty__PipelineSpec *spec, Ty__KV **params, size_t nparams) {
    ty_run_t *r = ty_xcalloc(1, sizeof *r);
    r->id = ty_xstrdup(id);
    r->spec = spec;
    r->params = params;
    r->nparams = nparams;
    r->ntasks = spec->n_tasks;
    r->tasks = ty_xcalloc(r->ntasks, sizeof *r->tasks);
    for (size_t i = 0; i < r->ntasks; i++) {
        ty_task_t *t = &r->tasks[i];
        t->run = r;
        t->spec = spec->tasks[i];
        t->heap_idx = -1;
    }
    r->by_name = ty_xcalloc(r->ntasks ? r->ntasks : 1, sizeof *r->by_name);
    for (size_t i = 0; i < r->ntasks; i++)
        r->by_name[i] = (uint32_t)i;
    qsort_r(r->by_name, r->ntasks, sizeof *r->by_name, ty_by_name_cmp, spec);
    for (size_t i = 0; i < r->ntasks; i++)
        for (size_t d = 0; d < spec->tasks[i]->n_depends_on; d++) {
            int p = ty_runs_task_index(r, spec->tasks[i]->depends_on[d]);
            if (p < 0)
                continue;
            ty_task_t *up = &r->tasks[p];
            up->children = ty_xrealloc(up->children, (up->nchildren + 1) * sizeof(int));
            up->children[up->nchildren++] = (int)i;
        }
    return r;
}

void ty_runs_free(ty_run_t *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->ntasks; i++) {
        ty_task_t *t = &r->tasks[i];
        free(t->worker);
        free(t->reason);
        free(t->gpu_ids);
        for (size_t k = 0; k < t->nparts; k++) /* the core goes: its workers too */
            free(t->parts[k].gpu_ids);
        free(t->parts);
        ty_task_ended_parts_free(t);
        free(t->gang_why);
        free(t->progress_text);
        for (size_t k = 0; k < t->nmetrics; k++)
            free(t->metrics[k].name);
        free(t->metrics);
        ty_runs_set_outputs(t, NULL, 0);
        ty_runs_set_tags(t, NULL, 0);
        ty_cache_task_clear(t);
        free(t->children);
    }
    free(r->tasks);
    free(r->by_name);
    ty_dag_free(&r->spec);
    ty_dag_kvs_free(r->params, r->nparams);
    free(r->id);
    free(r->request_id);
    free(r->retry_of);
    free(r->schedule);
    free(r->owner);
    free(r);
}

void ty_runs_index(ty_core_t *c, ty_run_t *r) {
    zhashx_insert(c->runs, r->id, r);
    if (c->nruns == c->cap_runs) {
        c->cap_runs = c->cap_runs ? c->cap_runs * 2 : 64;
        c->order = ty_xrealloc(c->order, c->cap_runs * sizeof *c->order);
    }
    /* keep submit order; rebuilt runs arrive in key order */
    size_t i = c->nruns++;
    while (i > 0 && (!c->order[i - 1] || c->order[i - 1]->seq > r->seq)) {
        c->order[i] = c->order[i - 1];
        if (c->order[i])
            c->order[i]->order_idx = i;
        i--;
    }
    c->order[i] = r;
    r->order_idx = i;
    c->nlive++;
}

char *ty_runs_done_key(const char *run_id, int64_t finished_ms) {
    return ty_xasprintf("done/%012lld/%s", (long long)(finished_ms / 1000), run_id);
}

/* r ended: kept in memory for the retention, indexed in the store by its
 * end so that it can be dropped from there after the history's. */
static void ty_ended(ty_core_t *c, ty_run_t *r) {
    if (c->o.history_ms > 0)
        ty_persist_put(c, ty_runs_done_key(r->id, r->finished_ms), ty_xmalloc(1), 0);
}

static void ty_done_add(ty_core_t *c, ty_run_t *r) {
    r->done_next = NULL;
    *c->done_tail = r;
    c->done_tail = &r->done_next;
    c->ndone_runs++;
    c->ndone_tasks += r->ntasks;
}

/* Whether everything r holds is durable and nothing waits to hear of it. */
static int ty_run_settled(const ty_run_t *r) {
    if (r->dirty || r->inflight || r->notify)
        return 0;
    for (size_t i = 0; i < r->ntasks; i++)
        if (r->tasks[i].dirty || r->tasks[i].inflight)
            return 0;
    return 1;
}

static void ty_run_release(ty_core_t *c, ty_run_t *r) {
    zhashx_delete(c->runs, r->id);
    c->order[r->order_idx] = NULL;
    c->nholes++;
    c->nlive--;
    c->released++;
    /* a cancelled task may still sit in the back-off list */
    size_t k = 0;
    for (size_t i = 0; i < c->ndelayed; i++)
        if (c->delayed[i]->run != r)
            c->delayed[k++] = c->delayed[i];
    c->ndelayed = k;
    for (size_t i = 0; i < r->ntasks; i++) {
        ty_runs_release(c, &r->tasks[i]);
        ty_queue_remove(c, &r->tasks[i]);
    }
    ty_runs_free(r);
    if (c->nholes > 64 && c->nholes > c->nruns / 2) { /* close the holes */
        size_t j = 0;
        for (size_t i = 0; i < c->nruns; i++)
            if (c->order[i]) {
                c->order[j] = c->order[i];
                c->order[j]->order_idx = j;
                j++;
            }
        c->nruns = j;
        c->nholes = 0;
    }
}

void ty_runs_retain(ty_core_t *c) {
    int64_t cutoff = c->now.wall_ms - c->o.retain_ms;
    while (c->done_head) {
        ty_run_t *r = c->done_head;
        int over = (int64_t)c->ndone_runs > c->o.retain_runs ||
                   (int64_t)c->ndone_tasks > c->o.retain_tasks || r->finished_ms < cutoff;
        if (!over || !ty_run_settled(r))
            return; /* the oldest first; it waits until it is durable */
        c->done_head = r->done_next;
        if (!c->done_head)
            c->done_tail = &c->done_head;
        c->ndone_runs--;
        c->ndone_tasks -= r->ntasks;
        ty_run_release(c, r);
    }
}

void ty_runs_set_tags(ty_task_t *t, Ty__KV *const *tags, size_t n) {
    ty_dag_kvs_free(t->tags, t->ntags);
    t->tags = n ? ty_xcalloc(n, sizeof *t->tags) : NULL;
    t->ntags = n;
    for (size_t i = 0; i < n; i++) {
        Ty__KV *kv = ty_xmalloc(sizeof *kv);
        ty__kv__init(kv);
        kv->key = ty_xstrdup(tags[i]->key);
        kv->value = ty_xstrdup(tags[i]->value);
        t->tags[i] = kv;
    }
}

void ty_runs_set_outputs(ty_task_t *t, Ty__ArtifactRef *const *refs, size_t n) {
    for (size_t i = 0; i < t->noutputs; i++) {
        free(t->outputs[i]->name);
        free(t->outputs[i]->sha256);
        free(t->outputs[i]);
    }
    free(t->outputs);
    t->outputs = n ? ty_xcalloc(n, sizeof *t->outputs) : NULL;
    t->noutputs = n;
    for (size_t i = 0; i < n; i++) {
        Ty__ArtifactRef *a = ty_xmalloc(sizeof *a);
        ty__artifact_ref__init(a);
        a->name = ty_xstrdup(refs[i]->name);
        a->sha256 = ty_xstrdup(refs[i]->sha256);
        a->size = refs[i]->size;
        t->outputs[i] = a;
    }
}

const char *ty_runs_missing_output(const ty_task_t *t, const Ty__TaskResult *res) {
    for (size_t i = 0; i < t->spec->n_outputs; i++) {
        const char *want = t->spec->outputs[i];
        int glob = strpbrk(want, "*?[") != NULL, found = 0;
        for (size_t k = 0; k < res->n_outputs && !found; k++)
            found = glob ? fnmatch(want, res->outputs[k]->name, FNM_PATHNAME) == 0
                         : strcmp(want, res->outputs[k]->name) == 0;
        if (!found)
            return want;
    }
    return NULL;
}

int ty_runs_upload_fits(ty_core_t *c, const char *run_id, const char *name, uint64_t size,
                        uint64_t limit, char **why) {
    const ty_run_t *r = ty_core_find_run(c, run_id);
    *why = NULL;
    if (!limit || !r)
        return 0;
    uint64_t total = size;
    for (size_t i = 0; i < r->ntasks; i++)
        for (size_t k = 0; k < r->tasks[i].noutputs; k++)
            total += r->tasks[i].outputs[k]->size;
    if (total <= limit)
        return 0;
    *why = ty_xasprintf("run %s would hold %llu bytes of artifacts with %s, over the master's "
                        "--max-run-artifact-bytes %llu",
                        r->id, (unsigned long long)total, name, (unsigned long long)limit);
    return TY_ETOOBIG;
}

const Ty__ArtifactRef *ty_runs_find_output(const ty_run_t *r, const char *ref) {
    const char *slash = strchr(ref, '/');
    if (!slash)
        return NULL;
    for (size_t i = 0; i < r->ntasks; i++) {
        const ty_task_t *u = &r->tasks[i];
        if (strlen(u->spec->name) != (size_t)(slash - ref) ||
            strncmp(u->spec->name, ref, (size_t)(slash - ref)) != 0)
            continue;
        for (size_t k = 0; k < u->noutputs; k++)
            if (strcmp(u->outputs[k]->name, slash + 1) == 0)
                return u->outputs[k];
        return NULL;
    }
    return NULL;
}

void ty_runs_set_reason(ty_task_t *t, char *reason) {
    free(t->reason);
    t->reason = reason;
    t->waiting_why = 0; /* an outcome's reason, unless the queue says otherwise */
}

static void ty_runs_detach(ty_task_t *t);

void ty_runs_attach(ty_task_t *t, ty_worker_t *w) {
    if (t->w == w)
        return;
    ty_runs_detach(t);
    t->w = w;
    t->wprev = NULL;
    t->wnext = w->tasks;
    if (w->tasks)
        w->tasks->wprev = t;
    w->tasks = t;
}

static void ty_runs_detach(ty_task_t *t) {
    ty_worker_t *w = t->w;
    if (!w)
        return;
    if (t->wprev)
        t->wprev->wnext = t->wnext;
    else
        w->tasks = t->wnext;
    if (t->wnext)
        t->wnext->wprev = t->wprev;
    t->w = NULL;
    t->wnext = t->wprev = NULL;
}

void ty_runs_release(ty_core_t *c, ty_task_t *t) {
    ty_worker_t *w = t->w;
    ty_gang_release(c, t);
    free(t->gang_why);
    t->gang_why = NULL;
    ty_runs_detach(t);
    if (!t->charged || !w)
        return;
    t->charged = 0;
    w->used_cpus -= t->charged_cpus;
    if (w->used_cpus < 1e-9)
        w->used_cpus = 0;
    w->used_mem -= t->charged_mem;
    w->gpu_busy &= ~t->charged_gpus;
    if (w->running)
        w->running--;
    ty_queue_worker_changed(c, w);
    c->need_schedule = 1;
}

static int ty_run_done(const ty_run_t *r) {
    return r->state != TY_RUN_PENDING && r->state != TY_RUN_RUNNING;
}

static void ty_run_finish(ty_core_t *c, ty_run_t *r) {
    if (ty_run_done(r))
        return;
    unsigned st = TY_RUN_SUCCEEDED;
    for (size_t i = 0; i < r->ntasks; i++)
        if (r->tasks[i].state != TY_TASK_SUCCEEDED && r->tasks[i].state != TY_TASK_SKIPPED &&
            r->tasks[i].state != TY_TASK_CACHED)
            st = TY_RUN_FAILED;
    r->state = st;
    r->finished_ms = c->now.wall_ms;
    c->runs_ended[st]++;
    ty_persist_run(c, r);
    ty_ended(c, r);
    ty_done_add(c, r);
    ty_info("run %s %s", r->id, ty_run_state_name(st));
}

static void ty_settle(ty_core_t *c, ty_task_t *t);

void ty_runs_settle(ty_core_t *c, ty_task_t *t) { ty_settle(c, t); }

static int ty_metric_of(void *arg, const char *name, double *value) {
    const ty_run_t *r = arg;
    const char *dot = strchr(name, '.');
    for (size_t i = 0; dot && i < r->ntasks; i++) {
        const ty_task_t *u = &r->tasks[i];
        if (strlen(u->spec->name) != (size_t)(dot - name) ||
            strncmp(u->spec->name, name, (size_t)(dot - name)) != 0)
            continue;
        for (size_t k = 0; k < u->nmetrics; k++)
            if (strcmp(u->metrics[k].name, dot + 1) == 0) {
                *value = u->metrics[k].value;
                return 0;
            }
    }
    return -1;
}

int ty_runs_when(const ty_run_t *r, const char *when, char **why) {
    ty_cond_t *cond = NULL;
    *why = NULL;
    if (ty_cond_parse(when, &cond, why) != 0)
        return -1;
    const char *missing = NULL;
    int v = ty_cond_eval(cond, ty_metric_of, (void *)r, &missing);
    if (v < 0) {
        *why = ty_xasprintf("when: %s was not reported", missing);
    } else {
        ty_buf_t b = {0};
        ty_buf_printf(&b, "%s: when %s", v ? "run" : "skipped", when);
        const char *const *names;
        size_t n = ty_cond_names(cond, &names);
        for (size_t i = 0; i < n; i++) {
            double x = 0;
            ty_metric_of((void *)r, names[i], &x);
            ty_buf_printf(&b, "%s%s = %g", i ? ", " : " (", names[i], x);
        }
        ty_buf_printf(&b, "%s is %s", n ? ")" : "", v ? "true" : "false");
        *why = ty_xstrdup(b.data);
        ty_buf_free(&b);
    }
    ty_cond_destroy(&cond);
    return v;
}

/* Decide a waiting task from its upstream states and trigger rule. */
static void ty_evaluate(ty_core_t *c, ty_task_t *t) {
    if (t->state != TY_TASK_WAITING)
        return;
    ty_run_t *r = t->run;
    size_t n = t->spec->n_depends_on, done = 0, failed = 0, skipped = 0;
    for (size_t d = 0; d < n; d++) {
        int p = ty_runs_task_index(r, t->spec->depends_on[d]);
        unsigned s = r->tasks[p].state;
        if (!ty_task_state_terminal(s))
            continue;
        done++;
        if (s == TY_TASK_FAILED || s == TY_TASK_UPSTREAM_FAILED || s == TY_TASK_CANCELLED)
            failed++;
        else if (s == TY_TASK_SKIPPED)
            skipped++;
    }
    int all = done == n;
    unsigned next = TY_TASK_WAITING;
    switch (t->spec->trigger_rule) {
    case TY_TRIGGER_ALL_DONE:
        if (all)
            next = TY_TASK_QUEUED;
        break;
    case TY_TRIGGER_ONE_FAILED:
        if (failed)
            next = TY_TASK_QUEUED;
        else if (all)
            next = TY_TASK_SKIPPED;
        break;
    case TY_TRIGGER_NONE_FAILED:
        if (failed)
            next = TY_TASK_UPSTREAM_FAILED;
        else if (all)
            next = TY_TASK_QUEUED;
        break;
    default: /* all_success */
        if (failed)
            next = TY_TASK_UPSTREAM_FAILED;
        else if (all)
            next = skipped ? TY_TASK_SKIPPED : TY_TASK_QUEUED;
        break;
    }
    char *why = NULL;
    if (next == TY_TASK_QUEUED && t->spec->when && *t->spec->when) {
        int ok = ty_runs_when(r, t->spec->when, &why);
        if (ok >= 0)
            ty_info("task %s/%s %s", r->id, t->spec->name, why);
        if (ok == 0) { /* the condition is false: the branch is not taken */
            ty_runs_set_reason(t, why);
            next = TY_TASK_SKIPPED;
        } else if (ok == 1) {
            free(why);
        }
        if (ok >= 0)
            why = NULL; /* else: the condition could not be decided, the task fails */
    }
    for (size_t i = 0; next == TY_TASK_QUEUED && i < t->spec->n_inputs && !why; i++)
        if (!ty_runs_find_output(r, t->spec->inputs[i]->value))
            why = ty_xasprintf("input %s: %s was not produced", t->spec->inputs[i]->key,
                               t->spec->inputs[i]->value);
    if (why) { /* an upstream that failed or was skipped (all_done, one_failed) */
        ty_info("task %s/%s failed: %s", r->id, t->spec->name, why);
        ty_runs_set_reason(t, why);
        t->state = TY_TASK_FAILED;
        t->finished_ms = c->now.wall_ms;
        ty_persist_task(c, t);
        ty_settle(c, t);
    } else if (next == TY_TASK_QUEUED && t->spec->cache && ty_cache_ready(c, t)) {
        /* a cache hit: waits for the shell to find its blobs (CHECKED) */
    } else if (next == TY_TASK_QUEUED) {
        ty_runs_enqueue(c, t);
    } else if (next != TY_TASK_WAITING) {
        t->state = next;
        t->finished_ms = c->now.wall_ms;
        ty_persist_task(c, t);
        ty_settle(c, t);
    }
}

static void ty_settle(ty_core_t *c, ty_task_t *t) {
    ty_run_t *r = t->run;
    r->nsettled++;
    if (t->state < TY_TASK_NSTATES)
        c->tasks_ended[t->state]++;
    for (size_t i = 0; i < t->nchildren; i++)
        ty_evaluate(c, &r->tasks[t->children[i]]);
    if (r->nsettled == r->ntasks)
        ty_run_finish(c, r);
}

void ty_runs_enqueue(ty_core_t *c, ty_task_t *t) {
    t->state = TY_TASK_QUEUED;
    t->queued_ms = c->now.wall_ms;
    t->not_before_ms = 0;
    t->delayed = 0;
    t->ready_seq = (t->run->seq << 20) | (uint64_t)(t - t->run->tasks);
    ty_persist_task(c, t);
    ty_queue_push(c, t);
    c->need_schedule = 1;
    ty_queue_explain_new(c, t);
}

void ty_runs_start(ty_core_t *c, ty_run_t *r) {
    r->state = TY_RUN_PENDING;
    r->created_ms = c->now.wall_ms;
    r->seq = c->next_seq++;
    ty_runs_index(c, r);
    ty_persist_run(c, r);
    for (size_t i = 0; i < r->ntasks; i++) {
        ty_persist_task(c, &r->tasks[i]);
        r->nsettled += r->tasks[i].state == TY_TASK_CACHED; /* taken from an earlier run */
    }
    for (size_t i = 0; i < r->ntasks; i++)
        ty_evaluate(c, &r->tasks[i]);
    if (r->nsettled == r->ntasks)
        ty_run_finish(c, r); /* nothing to run */
}

/* Mark i and everything downstream of it. */
static void ty_mark_down(const ty_run_t *r, size_t i, unsigned char *mark) {
    if (mark[i])
        return;
    mark[i] = 1;
    for (size_t k = 0; k < r->tasks[i].nchildren; k++)
        ty_mark_down(r, (size_t)r->tasks[i].children[k], mark);
}

int ty_runs_rerun_set(const ty_run_t *old, const char *from, unsigned char *rerun, char **err) {
    *err = NULL;
    if (old->state == TY_RUN_PENDING || old->state == TY_RUN_RUNNING) {
        *err = ty_xasprintf("run %s is still %s: cancel it or wait for it first", old->id,
                            ty_run_state_name(old->state));
        return TY_ESTATE;
    }
    memset(rerun, 0, old->ntasks);
    if (from && *from) {
        int i = ty_runs_task_index(old, from);
        if (i < 0) {
            *err = ty_xasprintf("run %s has no task '%s'", old->id, from);
            return TY_EINVAL;
        }
        ty_mark_down(old, (size_t)i, rerun);
    }
    for (size_t i = 0; i < old->ntasks; i++) {
        unsigned s = old->tasks[i].state;
        if (s != TY_TASK_SUCCEEDED && s != TY_TASK_CACHED)
            ty_mark_down(old, i, rerun);
    }
    for (size_t i = 0; i < old->ntasks; i++)
        if (rerun[i])
            return 0;
    *err = ty_xasprintf("every task of run %s succeeded: name one to run again with --from TASK",
                        old->id);
    return TY_ESTATE;
}

/* ---- back-off ---- */

static void ty_delay_add(ty_core_t *c, ty_task_t *t) {
    if (c->ndelayed == c->cap_delayed) {
        c->cap_delayed = c->cap_delayed ? c->cap_delayed * 2 : 16;
        c->delayed = ty_xrealloc(c->delayed, c->cap_delayed * sizeof *c->delayed);
    }
    c->delayed[c->ndelayed++] = t;
    t->delayed = 1;
    if (!c->next_delay || t->not_before_ms < c->next_delay)
        c->next_delay = t->not_before_ms;
}

void ty_runs_due(ty_core_t *c) {
    if (!c->next_delay || c->next_delay > c->now.wall_ms)
        return;
    int64_t next = 0;
    size_t k = 0, n = c->ndelayed;
    ty_task_t **due = NULL;
    size_t ndue = 0;
    for (size_t i = 0; i < n; i++) {
        ty_task_t *t = c->delayed[i];
        if (t->state != TY_TASK_QUEUED || !t->delayed)
            continue; /* cancelled meanwhile */
        if (t->not_before_ms <= c->now.wall_ms) {
            due = ty_xrealloc(due, (ndue + 1) * sizeof *due);
            due[ndue++] = t;
            continue;
        }
        if (!next || t->not_before_ms < next)
            next = t->not_before_ms;
        c->delayed[k++] = t;
    }
    c->ndelayed = k;
    c->next_delay = next;
    for (size_t i = 0; i < ndue; i++)
        ty_runs_enqueue(c, due[i]);
    free(due);
}

static void ty_delay(ty_core_t *c, ty_task_t *t, int64_t delay_ms) {
    t->state = TY_TASK_QUEUED;
    t->queued_ms = c->now.wall_ms;
    t->not_before_ms = t->queued_ms + delay_ms;
    ty_persist_task(c, t);
    ty_delay_add(c, t);
}

/* ---- outcomes ---- */

static int ty_code_in(int code, const int32_t *codes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (codes[i] == code)
            return 1;
    return 0;
}

void ty_runs_result(ty_core_t *c, ty_task_t *t, const Ty__TaskResult *res) {
    ty_runs_release(c, t);
    t->exit_code = res->exit_code;
    t->term_signal = res->term_signal;
    t->finished_ms = res->finished_ms ? res->finished_ms : c->now.wall_ms;
    if (res->started_ms) {
        if (t->started_ms > 0) /* when it was dispatched */
            ty_hist_observe(&c->h_start, (double)(res->started_ms - t->started_ms) / 1000.0);
        ty_hist_observe(&c->h_run, (double)(t->finished_ms - res->started_ms) / 1000.0);
        t->started_ms = res->started_ms;
    }
    int ok = res->exit_code == 0 && res->term_signal == 0 && !res->timed_out && !res->cancelled &&
             !*res->error;
    const char *missing = ok ? ty_runs_missing_output(t, res) : NULL;
    char *unregistered = ok && !missing ? ty_models_check_result(t, res) : NULL;
    if (ok && !missing && !unregistered) {
        t->state = TY_TASK_SUCCEEDED;
        ty_runs_set_reason(t, NULL);
        ty_runs_set_outputs(t, res->outputs, res->n_outputs);
        ty_cache_succeeded(c, t);
        ty_models_from_result(c, t, res);
        t->progress = t->progress > 0 ? 1 : t->progress;
        ty_persist_task(c, t);
        ty_settle(c, t);
        return;
    }
    int plain_exit = !missing && res->exit_code != 0 && !res->term_signal && !res->timed_out &&
                     !res->cancelled && !*res->error;
    if (plain_exit && ty_code_in(res->exit_code, t->spec->skip_exit_codes,
                                 t->spec->n_skip_exit_codes)) { /* a branch not taken */
        t->state = TY_TASK_SKIPPED;
        ty_runs_set_reason(t, ty_xasprintf("skipped: exit code %d", res->exit_code));
        ty_info("task %s/%s skipped (exit code %d)", t->run->id, t->spec->name, res->exit_code);
        ty_persist_task(c, t);
        ty_settle(c, t);
        return;
    }
    int final = plain_exit &&
                ty_code_in(res->exit_code, t->spec->fail_exit_codes, t->spec->n_fail_exit_codes);
    char *why;
    if (unregistered)
        why = unregistered;
    else if (missing)
        why = ty_xasprintf("output %s not found", missing);
    else if (final)
        why = ty_xasprintf("exit code %d (not retried: fail_exit_codes)", res->exit_code);
    else if (res->timed_out)
        why = ty_xasprintf("timed out after %gs", t->spec->timeout_s);
    else if (*res->error)
        why = ty_xstrdup(res->error);
    else if (res->term_signal)
        why = ty_xasprintf("killed by signal %d", res->term_signal);
    else
        why = ty_xasprintf("exit code %d", res->exit_code);
    t->failures++;
    ty_runs_set_reason(t, why);
    if (!final && t->failures <= t->spec->retries) {
        double d = t->spec->retry_backoff_s * pow(2.0, (double)(t->failures - 1));
        if (d > 3600)
            d = 3600;
        ty_info("task %s/%s attempt %u failed (%s); retry %u/%u in %.1fs", t->run->id,
                t->spec->name, t->attempt, why, t->failures, t->spec->retries, d);
        if (d > 0)
            ty_delay(c, t, (int64_t)(d * 1000));
        else
            ty_runs_enqueue(c, t);
        return;
    }
    ty_info("task %s/%s failed: %s", t->run->id, t->spec->name, why);
    t->state = TY_TASK_FAILED;
    ty_persist_task(c, t);
    ty_settle(c, t);
}

void ty_runs_requeue_lost(ty_core_t *c, ty_task_t *t, const char *why) {
    ty_runs_release(c, t);
    t->lost++;
    ty_runs_set_reason(t, ty_xstrdup(why));
    if ((int64_t)t->lost >= c->o.lost_limit) {
        t->state = TY_TASK_FAILED;
        t->finished_ms = c->now.wall_ms;
        ty_persist_task(c, t);
        ty_settle(c, t);
        return;
    }
    ty_info("task %s/%s attempt %u re-queued: %s", t->run->id, t->spec->name, t->attempt, why);
    ty_runs_enqueue(c, t);
}

int ty_runs_cancel(ty_core_t *c, ty_run_t *r) {
    if (ty_run_done(r))
        return TY_ESTATE;
    int64_t now = c->now.wall_ms;
    for (size_t i = 0; i < r->ntasks; i++) {
        ty_task_t *t = &r->tasks[i];
        if (ty_task_state_terminal(t->state))
            continue;
        if (t->state == TY_TASK_RUNNING) {
            ty_fleet_send_cancel(c, t);
            ty_runs_release(c, t);
        }
        ty_queue_remove(c, t);
        t->delayed = 0;
        t->state = TY_TASK_CANCELLED;
        t->finished_ms = now;
        ty_runs_set_reason(t, ty_xstrdup("run cancelled"));
        r->nsettled++;
        c->tasks_ended[TY_TASK_CANCELLED]++;
        ty_persist_task(c, t);
    }
    r->state = TY_RUN_CANCELLED;
    r->finished_ms = now;
    c->runs_ended[TY_RUN_CANCELLED]++;
    ty_persist_run(c, r);
    ty_ended(c, r);
    ty_done_add(c, r);
    ty_info("run %s cancelled", r->id);
    return 0;
}

void ty_runs_recover(ty_core_t *c) {
    int64_t now = c->now.wall_ms;
    for (size_t k = 0; k < c->nruns; k++) {
        ty_run_t *r = c->order[k];
        if (!r)
            continue;
        if (ty_run_done(r)) {
            ty_done_add(c, r); /* kept as long as the retention says */
            continue;
        }
        for (size_t i = 0; i < r->ntasks; i++)
            if (ty_task_state_terminal(r->tasks[i].state))
                r->nsettled++;
        for (size_t i = 0; i < r->ntasks; i++) {
            ty_task_t *t = &r->tasks[i];
            if (t->state == TY_TASK_QUEUED) {
                if (t->not_before_ms > now) {
                    ty_delay_add(c, t);
                } else {
                    t->ready_seq = (r->seq << 20) | i;
                    ty_queue_push(c, t);
                }
            } else if (t->state == TY_TASK_RUNNING) {
                t->adopted = 0; /* until its worker re-registers with it */
                /* a gang across workers is not adopted: its mpirun is
                 * cancelled when its worker re-registers, and it runs again
                 * as a whole (the other parts are stale) */
                if (t->was_gang) {
                    t->was_gang = 0;
                    t->gang_why = ty_xstrdup("a master restart ends a gang across workers");
                    t->gang_lost = 1;
                }
                if (t->worker)
                    ty_runs_attach(t, ty_fleet_get(c, t->worker));
            } else if (t->state == TY_TASK_WAITING) {
                ty_evaluate(c, t); /* in case the settle of an upstream landed alone */
            }
        }
        if (r->nsettled == r->ntasks)
            ty_run_finish(c, r);
    }
    c->need_schedule = 1;
}
