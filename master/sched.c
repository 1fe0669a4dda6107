/* Runs and tasks: readiness by trigger rule, retries with back-off, the ready
 * queue (a binary heap by priority, then submit order) and placement onto
 * workers by cpus, memory, GPUs and labels. */
#include "master/master.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TY_EPS 1e-9

/* ---- ready heap ---- */

static int ty_heap_before(const ty_task_t *a, const ty_task_t *b) {
    if (a->spec->priority != b->spec->priority)
        return a->spec->priority > b->spec->priority;
    return a->ready_seq < b->ready_seq;
}

static void ty_heap_swap(ty_master_t *m, size_t i, size_t j) {
    ty_task_t *t = m->heap[i];
    m->heap[i] = m->heap[j];
    m->heap[j] = t;
    m->heap[i]->heap_idx = (int)i;
    m->heap[j]->heap_idx = (int)j;
}

static void ty_heap_up(ty_master_t *m, size_t i) {
    while (i > 0 && ty_heap_before(m->heap[i], m->heap[(i - 1) / 2])) {
        ty_heap_swap(m, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void ty_heap_down(ty_master_t *m, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < m->nheap && ty_heap_before(m->heap[l], m->heap[best]))
            best = l;
        if (r < m->nheap && ty_heap_before(m->heap[r], m->heap[best]))
            best = r;
        if (best == i)
            return;
        ty_heap_swap(m, i, best);
        i = best;
    }
}

static void ty_heap_push(ty_master_t *m, ty_task_t *t) {
    if (m->nheap == m->cap_heap) {
        m->cap_heap = m->cap_heap ? m->cap_heap * 2 : 64;
        m->heap = ty_xrealloc(m->heap, m->cap_heap * sizeof *m->heap);
    }
    m->heap[m->nheap] = t;
    t->heap_idx = (int)m->nheap++;
    ty_heap_up(m, m->nheap - 1);
}

static void ty_heap_remove(ty_master_t *m, ty_task_t *t) {
    if (t->heap_idx < 0)
        return;
    size_t i = (size_t)t->heap_idx;
    t->heap_idx = -1;
    if (i == --m->nheap)
        return;
    m->heap[i] = m->heap[m->nheap];
    m->heap[i]->heap_idx = (int)i;
    ty_heap_down(m, i);
    ty_heap_up(m, i);
}

/* ---- runs ---- */

ty_run_t *ty_sched_run_new(ty_master_t *m, const char *id, Ty__PipelineSpec *spec, Ty__KV **params,
                           size_t nparams) {
    (void)m;
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
    for (size_t i = 0; i < r->ntasks; i++)
        for (size_t d = 0; d < spec->tasks[i]->n_depends_on; d++) {
            int p = ty_dag_task_index(spec, spec->tasks[i]->depends_on[d]);
            if (p < 0)
                continue;
            ty_task_t *up = &r->tasks[p];
            up->children = ty_xrealloc(up->children, (up->nchildren + 1) * sizeof(int));
            up->children[up->nchildren++] = (int)i;
        }
    return r;
}

void ty_sched_run_free(ty_run_t *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->ntasks; i++) {
        ty_task_t *t = &r->tasks[i];
        free(t->worker);
        free(t->reason);
        free(t->gpu_ids);
        free(t->progress_text);
        for (size_t k = 0; k < t->nmetrics; k++)
            free(t->metrics[k].name);
        free(t->metrics);
        free(t->children);
    }
    while (r->waiters) {
        ty_waiter_t *w = r->waiters;
        r->waiters = w->next;
        zframe_destroy(&w->identity);
        free(w->task);
        free(w);
    }
    free(r->tasks);
    ty_dag_free(&r->spec);
    ty_dag_kvs_free(r->params, r->nparams);
    free(r->id);
    free(r);
}

void ty_sched_index_run(ty_master_t *m, ty_run_t *r) {
    zhashx_insert(m->runs, r->id, r);
    if (m->nruns == m->cap_runs) {
        m->cap_runs = m->cap_runs ? m->cap_runs * 2 : 64;
        m->order = ty_xrealloc(m->order, m->cap_runs * sizeof *m->order);
    }
    /* keep submit order; rebuilt runs arrive in key order */
    size_t i = m->nruns++;
    while (i > 0 && m->order[i - 1]->seq > r->seq) {
        m->order[i] = m->order[i - 1];
        i--;
    }
    m->order[i] = r;
}

ty_task_t *ty_sched_find_task(ty_master_t *m, const char *run_id, const char *task) {
    ty_run_t *r = zhashx_lookup(m->runs, run_id);
    if (!r)
        return NULL;
    int i = ty_dag_task_index(r->spec, task);
    return i < 0 ? NULL : &r->tasks[i];
}

static void ty_set_reason(ty_task_t *t, char *reason) {
    free(t->reason);
    t->reason = reason;
    t->waiting_why = 0; /* an outcome's reason, unless ty_explain_wait says otherwise */
}

#define TY_WAIT_ROOM "waiting for room: "
#define TY_WAIT_NONE "no worker can run it: "

int ty_sched_is_wait_reason(const char *reason) {
    return reason && (strncmp(reason, TY_WAIT_ROOM, strlen(TY_WAIT_ROOM)) == 0 ||
                      strncmp(reason, TY_WAIT_NONE, strlen(TY_WAIT_NONE)) == 0);
}

static void ty_run_finish(ty_master_t *m, ty_run_t *r) {
    if (r->state == TY_RUN_CANCELLED || r->state == TY_RUN_SUCCEEDED || r->state == TY_RUN_FAILED)
        return;
    unsigned st = TY_RUN_SUCCEEDED;
    for (size_t i = 0; i < r->ntasks; i++)
        if (r->tasks[i].state != TY_TASK_SUCCEEDED && r->tasks[i].state != TY_TASK_SKIPPED)
            st = TY_RUN_FAILED;
    r->state = st;
    r->finished_ms = ty_now_ms();
    ty_state_mark_run(m, r);
    ty_info("run %s %s", r->id, ty_run_state_name(st));
}

static void ty_settle(ty_master_t *m, ty_task_t *t);
static int ty_fits_an_idle_worker(ty_master_t *m, const ty_task_t *t);
static void ty_explain_wait(ty_master_t *m, ty_task_t *t);

/* Decide a waiting task from its upstream states and trigger rule. */
static void ty_evaluate(ty_master_t *m, ty_task_t *t) {
    if (t->state != TY_TASK_WAITING)
        return;
    ty_run_t *r = t->run;
    size_t n = t->spec->n_depends_on, done = 0, failed = 0, skipped = 0;
    for (size_t d = 0; d < n; d++) {
        int p = ty_dag_task_index(r->spec, t->spec->depends_on[d]);
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
    if (next == TY_TASK_QUEUED) {
        ty_sched_enqueue(m, t);
    } else if (next != TY_TASK_WAITING) {
        t->state = next;
        t->finished_ms = ty_now_ms();
        ty_state_mark_task(m, t);
        ty_settle(m, t);
    }
}

static void ty_settle(ty_master_t *m, ty_task_t *t) {
    ty_run_t *r = t->run;
    r->nsettled++;
    for (size_t i = 0; i < t->nchildren; i++)
        ty_evaluate(m, &r->tasks[t->children[i]]);
    if (r->nsettled == r->ntasks)
        ty_run_finish(m, r);
}

void ty_sched_enqueue(ty_master_t *m, ty_task_t *t) {
    t->state = TY_TASK_QUEUED;
    t->queued_ms = ty_now_ms();
    t->not_before_ms = 0;
    t->ready_seq = (t->run->seq << 20) | (uint64_t)(t - t->run->tasks);
    ty_state_mark_task(m, t);
    ty_heap_push(m, t);
    m->need_schedule = 1;
    if (!ty_fits_an_idle_worker(m, t)) /* says so at once, not when it reaches the head */
        ty_explain_wait(m, t);
}

void ty_sched_run_start(ty_master_t *m, ty_run_t *r) {
    r->state = TY_RUN_PENDING;
    r->created_ms = ty_now_ms();
    r->seq = m->next_seq++;
    ty_sched_index_run(m, r);
    ty_state_mark_run(m, r);
    for (size_t i = 0; i < r->ntasks; i++)
        ty_state_mark_task(m, &r->tasks[i]);
    for (size_t i = 0; i < r->ntasks; i++)
        ty_evaluate(m, &r->tasks[i]);
}

/* ---- back-off ---- */

static void ty_delay_cb(uv_timer_t *h);

void ty_sched_delay_timer(ty_master_t *m) {
    int64_t now = ty_now_ms(), next = 0;
    size_t k = 0;
    for (size_t i = 0; i < m->ndelayed; i++) {
        ty_task_t *t = m->delayed[i];
        if (t->state != TY_TASK_QUEUED || !t->delayed)
            continue; /* cancelled meanwhile */
        if (t->not_before_ms <= now) {
            t->delayed = 0;
            ty_sched_enqueue(m, t);
            continue;
        }
        if (!next || t->not_before_ms < next)
            next = t->not_before_ms;
        m->delayed[k++] = t;
    }
    m->ndelayed = k;
    if (next)
        uv_timer_start(&m->delay, ty_delay_cb, (uint64_t)(next - now), 0);
}

static void ty_delay_cb(uv_timer_t *h) { ty_sched_delay_timer(h->data); }

static void ty_delay(ty_master_t *m, ty_task_t *t, int64_t delay_ms) {
    t->state = TY_TASK_QUEUED;
    t->queued_ms = ty_now_ms();
    t->not_before_ms = t->queued_ms + delay_ms;
    t->delayed = 1;
    ty_state_mark_task(m, t);
    if (m->ndelayed == m->cap_delayed) {
        m->cap_delayed = m->cap_delayed ? m->cap_delayed * 2 : 16;
        m->delayed = ty_xrealloc(m->delayed, m->cap_delayed * sizeof *m->delayed);
    }
    m->delayed[m->ndelayed++] = t;
    ty_sched_delay_timer(m);
}

/* ---- resources ---- */

static double ty_need_cpus(const ty_task_t *t) {
    return t->spec->resources->cpus * (t->spec->kind == TY_KIND_MPI ? t->spec->np : 1);
}
static uint64_t ty_need_mem(const ty_task_t *t) {
    return t->spec->resources->mem_mb * (t->spec->kind == TY_KIND_MPI ? t->spec->np : 1);
}
static uint32_t ty_need_gpus(const ty_task_t *t) {
    return t->spec->resources->gpus * (t->spec->kind == TY_KIND_MPI ? t->spec->np : 1);
}

static int ty_popcount64(uint64_t x) { return __builtin_popcountll(x); }

/* Whether w's labels include every label t asks for. */
static int ty_worker_labels_fit(const ty_worker_t *w, const ty_task_t *t) {
    Ty__Resources *res = t->spec->resources;
    for (size_t i = 0; i < res->n_labels; i++) {
        int ok = 0;
        for (size_t j = 0; j < w->nlabels && !ok; j++)
            ok = strcmp(w->labels[j]->key, res->labels[i]->key) == 0 &&
                 strcmp(w->labels[j]->value, res->labels[i]->value) == 0;
        if (!ok)
            return 0;
    }
    return 1;
}

/* empty: whether t would fit w with nothing else running there. */
static int ty_worker_fits_as(const ty_worker_t *w, const ty_task_t *t, int empty) {
    if (!w->up || w->known_only)
        return 0;
    double used_cpus = empty ? 0 : w->used_cpus;
    uint64_t used_mem = empty ? 0 : w->used_mem;
    int busy_gpus = empty ? 0 : ty_popcount64(w->gpu_busy);
    if (w->cpus - used_cpus + TY_EPS < ty_need_cpus(t))
        return 0;
    if (ty_need_mem(t) && w->mem_mb - used_mem < ty_need_mem(t))
        return 0;
    if ((int)w->gpus - busy_gpus < (int)ty_need_gpus(t))
        return 0;
    return ty_worker_labels_fit(w, t);
}

static int ty_worker_fits(const ty_worker_t *w, const ty_task_t *t) {
    return ty_worker_fits_as(w, t, 0);
}

/* Why t, at the head of the queue or skipped by it, was not placed (shown
 * by `trainyard status`, as Slurm's and Kubernetes' pending reasons): none
 * could hold it even when idle (what it needs against the most any worker
 * has; said wherever t is in the queue), or none has the room now.  Other
 * tasks behind the head wait their turn without a reason. */
static char *ty_wait_reason(ty_master_t *m, const ty_task_t *t) {
    ty_buf_t need = {0};
    ty_buf_printf(&need, "%g CPUs", ty_need_cpus(t));
    if (ty_need_mem(t))
        ty_buf_printf(&need, ", %llu MB", (unsigned long long)ty_need_mem(t));
    if (ty_need_gpus(t))
        ty_buf_printf(&need, ", %u GPUs", ty_need_gpus(t));
    if (t->spec->kind == TY_KIND_MPI)
        ty_buf_printf(&need, " (%u ranks)", t->spec->np);
    double cpus = 0;
    uint64_t mem = 0;
    uint32_t gpus = 0;
    int labelled = 0, fits_idle = 0;
    for (ty_worker_t *w = zhashx_first(m->workers); w; w = zhashx_next(m->workers)) {
        if (!w->up || w->known_only)
            continue;
        fits_idle = fits_idle || ty_worker_fits_as(w, t, 1);
        labelled = labelled || ty_worker_labels_fit(w, t);
        cpus = w->cpus > cpus ? w->cpus : cpus;
        mem = w->mem_mb > mem ? w->mem_mb : mem;
        gpus = w->gpus > gpus ? w->gpus : gpus;
    }
    char *why;
    if (fits_idle)
        why = ty_xasprintf(TY_WAIT_ROOM "it needs %s", need.data);
    else if (!labelled)
        why = ty_xasprintf(TY_WAIT_NONE "none has the labels it asks for (%s)", need.data);
    else
        why = ty_xasprintf(TY_WAIT_NONE "it needs %s; the largest worker has %g CPUs, %llu MB, "
                                        "%u GPUs",
                           need.data, cpus, (unsigned long long)mem, gpus);
    ty_buf_free(&need);
    return why;
}

/* Whether some worker that is up could hold t with nothing else running. */
static int ty_fits_an_idle_worker(ty_master_t *m, const ty_task_t *t) {
    for (ty_worker_t *w = zhashx_first(m->workers); w; w = zhashx_next(m->workers))
        if (ty_worker_fits_as(w, t, 1))
            return 1;
    return 0;
}

/* t's waiting reason becomes why (NULL: none), and status waiters hear of it. */
static void ty_tell_wait(ty_master_t *m, ty_task_t *t, char *why) {
    ty_set_reason(t, why);
    t->waiting_why = why != NULL;
    t->run->version++;
    ty_api_notify(m, t->run, 0);
}

/* Says why t waits, when that changed: status waiters see it at once, etcd
 * with the task's next write (as progress), so a full cluster costs no
 * extra writes; dispatch clears it.  A retry waits under the reason its
 * last attempt failed. */
static void ty_explain_wait(ty_master_t *m, ty_task_t *t) {
    if (t->reason && !t->waiting_why)
        return; /* a retry keeps its last attempt's reason ("exit code 3") */
    char *why = ty_wait_reason(m, t);
    if (t->waiting_why && t->reason && strcmp(t->reason, why) == 0) {
        free(why);
        return;
    }
    ty_tell_wait(m, t, why);
}

void ty_sched_charge(ty_master_t *m, ty_task_t *t, ty_worker_t *w) {
    (void)m;
    if (t->charged)
        return;
    t->charged = 1;
    t->charged_cpus = ty_need_cpus(t);
    t->charged_mem = ty_need_mem(t);
    t->charged_gpus = 0;
    for (size_t i = 0; i < t->n_gpu; i++)
        if (t->gpu_ids[i] < 64)
            t->charged_gpus |= 1ULL << t->gpu_ids[i];
    w->used_cpus += t->charged_cpus;
    w->used_mem += t->charged_mem;
    w->gpu_busy |= t->charged_gpus;
    w->running++;
}

void ty_sched_release(ty_master_t *m, ty_task_t *t) {
    if (!t->charged)
        return;
    t->charged = 0;
    ty_worker_t *w = t->worker ? zhashx_lookup(m->workers, t->worker) : NULL;
    if (!w)
        return;
    w->used_cpus -= t->charged_cpus;
    if (w->used_cpus < TY_EPS)
        w->used_cpus = 0;
    w->used_mem -= t->charged_mem;
    w->gpu_busy &= ~t->charged_gpus;
    if (w->running)
        w->running--;
    m->need_schedule = 1;
}

/* ---- placement ---- */

static void ty_dispatch(ty_master_t *m, ty_task_t *t, ty_worker_t *w) {
    ty_run_t *r = t->run;
    t->state = TY_TASK_RUNNING;
    t->attempt++;
    if (t->waiting_why) /* it waits no more (a failed attempt's reason stays) */
        ty_set_reason(t, NULL);
    t->waiting_why = 0;
    free(t->worker);
    t->worker = ty_xstrdup(w->id);
    t->started_ms = ty_now_ms();
    t->finished_ms = 0;
    t->exit_code = 0;
    t->term_signal = 0;
    t->progress = 0;
    free(t->gpu_ids);
    t->gpu_ids = NULL;
    t->n_gpu = 0;
    uint32_t need = ty_need_gpus(t);
    if (need) {
        t->gpu_ids = ty_xcalloc(need, sizeof *t->gpu_ids);
        for (uint32_t g = 0; g < w->gpus && t->n_gpu < need; g++)
            if (!(w->gpu_busy & (1ULL << g)))
                t->gpu_ids[t->n_gpu++] = g;
    }
    t->adopted = 1; /* dispatched by this master: nothing to wait for */
    ty_sched_charge(m, t, w);
    ty_state_mark_task(m, t);
    if (r->state == TY_RUN_PENDING) {
        r->state = TY_RUN_RUNNING;
        r->started_ms = t->started_ms;
        ty_state_mark_run(m, r);
    }
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = r->id;
    ref.task = t->spec->name;
    ref.attempt = t->attempt;
    ref.epoch = m->epoch;
    Ty__Dispatch d = TY__DISPATCH__INIT;
    d.ref = &ref;
    d.argv = t->spec->argv;
    d.n_argv = t->spec->n_argv;
    d.shell = t->spec->shell;
    d.env = t->spec->env;
    d.n_env = t->spec->n_env;
    d.timeout_s = t->spec->timeout_s;
    d.gpu_ids = t->gpu_ids;
    d.n_gpu_ids = t->n_gpu;
    d.kind = t->spec->kind;
    d.np = t->spec->np;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_DISPATCH;
    env.dispatch = &d;
    ty_state_send(m, m->wsock, w->identity, &env);
    m->dispatches++;
}

/* Best worker for t: the one with the most free CPUs among those that fit. */
static ty_worker_t *ty_pick(ty_master_t *m, const ty_task_t *t, int *any_room) {
    ty_worker_t *best = NULL;
    *any_room = 0;
    for (ty_worker_t *w = zhashx_first(m->workers); w; w = zhashx_next(m->workers)) {
        if (w->up && !w->known_only && w->cpus - w->used_cpus > TY_EPS)
            *any_room = 1;
        if (ty_worker_fits(w, t) &&
            (!best || w->cpus - w->used_cpus > best->cpus - best->used_cpus))
            best = w;
    }
    return best;
}

/* A worker came or went: every queued task that no worker could hold
 * says so (wherever it is in the queue), and one that now fits somewhere
 * drops that reason and waits its turn.  Once per change, not per pass. */
static void ty_recheck_waits(ty_master_t *m) {
    m->workers_changed = 0;
    for (size_t i = 0; i < m->nheap; i++) {
        ty_task_t *t = m->heap[i];
        if (!ty_fits_an_idle_worker(m, t)) {
            ty_explain_wait(m, t);
        } else if (t->waiting_why && strncmp(t->reason, TY_WAIT_NONE, strlen(TY_WAIT_NONE)) == 0) {
            ty_tell_wait(m, t, NULL);
        }
    }
}

void ty_sched_pass(ty_master_t *m) {
    m->need_schedule = 0;
    if (!m->serving || m->nheap == 0)
        return;
    if (m->workers_changed)
        ty_recheck_waits(m);
    ty_task_t **skipped = NULL;
    size_t nskipped = 0;
    while (m->nheap > 0) {
        ty_task_t *t = m->heap[0];
        int room;
        ty_worker_t *w = ty_pick(m, t, &room);
        if (!room) { /* every worker is full: the rest waits, the first says so */
            ty_explain_wait(m, t);
            break;
        }
        ty_heap_remove(m, t);
        if (w) {
            ty_dispatch(m, t, w);
        } else {
            ty_explain_wait(m, t);
            /* does not fit now; smaller tasks behind it may (backfill) */
            skipped = ty_xrealloc(skipped, (nskipped + 1) * sizeof *skipped);
            skipped[nskipped++] = t;
        }
    }
    for (size_t i = 0; i < nskipped; i++)
        ty_heap_push(m, skipped[i]);
    free(skipped);
}

/* ---- outcomes ---- */

void ty_sched_task_result(ty_master_t *m, ty_task_t *t, const Ty__TaskResult *res) {
    ty_sched_release(m, t);
    t->exit_code = res->exit_code;
    t->term_signal = res->term_signal;
    t->finished_ms = res->finished_ms ? res->finished_ms : ty_now_ms();
    if (res->started_ms)
        t->started_ms = res->started_ms;
    int ok = res->exit_code == 0 && res->term_signal == 0 && !res->timed_out && !res->cancelled &&
             !*res->error;
    if (ok) {
        t->state = TY_TASK_SUCCEEDED;
        ty_set_reason(t, NULL);
        t->progress = t->progress > 0 ? 1 : t->progress;
        ty_state_mark_task(m, t);
        ty_settle(m, t);
        return;
    }
    char *why;
    if (res->timed_out)
        why = ty_xasprintf("timed out after %gs", t->spec->timeout_s);
    else if (*res->error)
        why = ty_xstrdup(res->error);
    else if (res->term_signal)
        why = ty_xasprintf("killed by signal %d", res->term_signal);
    else
        why = ty_xasprintf("exit code %d", res->exit_code);
    t->failures++;
    ty_set_reason(t, why);
    if (t->failures <= t->spec->retries) {
        double d = t->spec->retry_backoff_s * pow(2.0, (double)(t->failures - 1));
        if (d > 3600)
            d = 3600;
        ty_info("task %s/%s attempt %u failed (%s); retry %u/%u in %.1fs", t->run->id,
                t->spec->name, t->attempt, why, t->failures, t->spec->retries, d);
        if (d > 0)
            ty_delay(m, t, (int64_t)(d * 1000));
        else
            ty_sched_enqueue(m, t);
        return;
    }
    ty_info("task %s/%s failed: %s", t->run->id, t->spec->name, why);
    t->state = TY_TASK_FAILED;
    ty_state_mark_task(m, t);
    ty_settle(m, t);
}

void ty_sched_requeue_lost(ty_master_t *m, ty_task_t *t, const char *why) {
    ty_sched_release(m, t);
    t->lost++;
    ty_set_reason(t, ty_xstrdup(why));
    if ((int64_t)t->lost >= m->o.lost_limit) {
        t->state = TY_TASK_FAILED;
        t->finished_ms = ty_now_ms();
        ty_state_mark_task(m, t);
        ty_settle(m, t);
        return;
    }
    ty_info("task %s/%s attempt %u re-queued: %s", t->run->id, t->spec->name, t->attempt, why);
    ty_sched_enqueue(m, t);
}

int ty_sched_cancel_run(ty_master_t *m, ty_run_t *r) {
    if (r->state != TY_RUN_PENDING && r->state != TY_RUN_RUNNING)
        return TY_ESTATE;
    int64_t now = ty_now_ms();
    for (size_t i = 0; i < r->ntasks; i++) {
        ty_task_t *t = &r->tasks[i];
        if (ty_task_state_terminal(t->state))
            continue;
        if (t->state == TY_TASK_RUNNING) {
            ty_workers_send_cancel(m, t);
            ty_sched_release(m, t);
        }
        ty_heap_remove(m, t);
        t->delayed = 0;
        t->state = TY_TASK_CANCELLED;
        t->finished_ms = now;
        ty_set_reason(t, ty_xstrdup("run cancelled"));
        r->nsettled++;
        ty_state_mark_task(m, t);
    }
    r->state = TY_RUN_CANCELLED;
    r->finished_ms = now;
    ty_state_mark_run(m, r);
    ty_info("run %s cancelled", r->id);
    return 0;
}

void ty_sched_recover(ty_master_t *m) {
    int64_t now = ty_now_ms();
    for (size_t k = 0; k < m->nruns; k++) {
        ty_run_t *r = m->order[k];
        if (r->state != TY_RUN_PENDING && r->state != TY_RUN_RUNNING)
            continue;
        for (size_t i = 0; i < r->ntasks; i++)
            if (ty_task_state_terminal(r->tasks[i].state))
                r->nsettled++;
        for (size_t i = 0; i < r->ntasks; i++) {
            ty_task_t *t = &r->tasks[i];
            if (t->state == TY_TASK_QUEUED) {
                if (t->not_before_ms > now) {
                    ty_delay(m, t, t->not_before_ms - now);
                } else {
                    t->ready_seq = (r->seq << 20) | i;
                    ty_heap_push(m, t);
                }
            } else if (t->state == TY_TASK_RUNNING) {
                t->adopted = 0; /* until its worker re-registers with it */
            } else if (t->state == TY_TASK_WAITING) {
                ty_evaluate(m, t); /* in case the settle of an upstream landed alone */
            }
        }
        if (r->nsettled == r->ntasks)
            ty_run_finish(m, r);
    }
    m->need_schedule = 1;
}
