/* The ready queue (a binary heap by priority, then submit order) and
 * placement onto workers by cpus, memory, GPUs and labels, with the reasons
 * a task waits (as Slurm's and Kubernetes' pending reasons). */
#include "master/core/core_int.h"

#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

#define TY_EPS 1e-9

/* ---- ready heap ---- */

static int ty_heap_before(const ty_task_t *a, const ty_task_t *b) {
    if (a->spec->priority != b->spec->priority)
        return a->spec->priority > b->spec->priority;
    return a->ready_seq < b->ready_seq;
}

static void ty_heap_swap(ty_core_t *c, size_t i, size_t j) {
    ty_task_t *t = c->heap[i];
    c->heap[i] = c->heap[j];
    c->heap[j] = t;
    c->heap[i]->heap_idx = (int)i;
    c->heap[j]->heap_idx = (int)j;
}

static void ty_heap_up(ty_core_t *c, size_t i) {
    while (i > 0 && ty_heap_before(c->heap[i], c->heap[(i - 1) / 2])) {
        ty_heap_swap(c, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void ty_heap_down(ty_core_t *c, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < c->nheap && ty_heap_before(c->heap[l], c->heap[best]))
            best = l;
        if (r < c->nheap && ty_heap_before(c->heap[r], c->heap[best]))
            best = r;
        if (best == i)
            return;
        ty_heap_swap(c, i, best);
        i = best;
    }
}

void ty_queue_push(ty_core_t *c, ty_task_t *t) {
    if (t->heap_idx >= 0)
        return;
    if (c->nheap == c->cap_heap) {
        c->cap_heap = c->cap_heap ? c->cap_heap * 2 : 64;
        c->heap = ty_xrealloc(c->heap, c->cap_heap * sizeof *c->heap);
    }
    c->heap[c->nheap] = t;
    t->heap_idx = (int)c->nheap++;
    ty_heap_up(c, c->nheap - 1);
}

void ty_queue_remove(ty_core_t *c, ty_task_t *t) {
    if (t->heap_idx < 0)
        return;
    size_t i = (size_t)t->heap_idx;
    t->heap_idx = -1;
    if (i == --c->nheap)
        return;
    c->heap[i] = c->heap[c->nheap];
    c->heap[i]->heap_idx = (int)i;
    ty_heap_down(c, i);
    ty_heap_up(c, i);
}

/* ---- the placement heap: workers that can take tasks, by free CPUs ---- */

static double ty_free_cpus(const ty_worker_t *w) { return w->cpus - w->used_cpus; }

/* a before b: more free CPUs, then earlier registration */
static int ty_w_before(const ty_worker_t *a, const ty_worker_t *b) {
    double fa = ty_free_cpus(a), fb = ty_free_cpus(b);
    if (fa > fb + TY_EPS || fa < fb - TY_EPS)
        return fa > fb;
    return a->order < b->order;
}

static void ty_p_swap(ty_core_t *c, size_t i, size_t j) {
    ty_worker_t *w = c->pheap[i];
    c->pheap[i] = c->pheap[j];
    c->pheap[j] = w;
    c->pheap[i]->pidx = (int)i;
    c->pheap[j]->pidx = (int)j;
}

static void ty_p_fix(ty_core_t *c, size_t i) {
    while (i > 0 && ty_w_before(c->pheap[i], c->pheap[(i - 1) / 2])) {
        ty_p_swap(c, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < c->npheap && ty_w_before(c->pheap[l], c->pheap[best]))
            best = l;
        if (r < c->npheap && ty_w_before(c->pheap[r], c->pheap[best]))
            best = r;
        if (best == i)
            return;
        ty_p_swap(c, i, best);
        i = best;
    }
}

void ty_queue_worker_gone(ty_core_t *c, ty_worker_t *w) {
    if (w->pidx < 0)
        return;
    size_t i = (size_t)w->pidx;
    w->pidx = -1;
    if (i == --c->npheap)
        return;
    c->pheap[i] = c->pheap[c->npheap];
    c->pheap[i]->pidx = (int)i;
    ty_p_fix(c, i);
}

void ty_queue_worker_changed(ty_core_t *c, ty_worker_t *w) {
    if (!w->up || w->known_only || w->draining) {
        ty_queue_worker_gone(c, w);
        return;
    }
    if (w->pidx < 0) {
        if (c->npheap == c->cap_pheap) {
            c->cap_pheap = c->cap_pheap ? c->cap_pheap * 2 : 16;
            c->pheap = ty_xrealloc(c->pheap, c->cap_pheap * sizeof *c->pheap);
        }
        c->pheap[c->npheap] = w;
        w->pidx = (int)c->npheap++;
    }
    ty_p_fix(c, (size_t)w->pidx);
}

/* ---- resources ---- */

static unsigned ty_ranks(const Ty__TaskSpec *s) { return s->kind == TY_KIND_MPI ? s->np : 1; }
double ty_queue_need_cpus(const Ty__TaskSpec *s) { return s->resources->cpus * ty_ranks(s); }
uint64_t ty_queue_need_mem(const Ty__TaskSpec *s) { return s->resources->mem_mb * ty_ranks(s); }
uint32_t ty_queue_need_gpus(const Ty__TaskSpec *s) { return s->resources->gpus * ty_ranks(s); }

/* Whether w's labels include every label t asks for. */
int ty_queue_labels_fit(const ty_worker_t *w, const ty_task_t *t) {
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
static int ty_fits_as(const ty_worker_t *w, const ty_task_t *t, int empty) {
    if (!w->up || w->known_only || w->draining)
        return 0;
    double used_cpus = empty ? 0 : w->used_cpus;
    uint64_t used_mem = empty ? 0 : w->used_mem;
    int busy_gpus = empty ? 0 : __builtin_popcountll(w->gpu_busy);
    if (w->cpus - used_cpus + TY_EPS < ty_queue_need_cpus(t->spec))
        return 0;
    uint64_t mem = ty_queue_need_mem(t->spec);
    if (mem && w->mem_mb - used_mem < mem)
        return 0;
    if ((int)w->gpus - busy_gpus < (int)ty_queue_need_gpus(t->spec))
        return 0;
    return ty_queue_labels_fit(w, t);
}

/* Whether some worker that is up could hold t with nothing else running
 * (a gang: the workers up, together). */
static int ty_fits_an_idle_worker(ty_core_t *c, const ty_task_t *t) {
    if (ty_gang_spans(t->spec)) {
        ty_plan_t p;
        if (ty_gang_plan(c, t, 1, &p) != 0)
            return 0;
        ty_gang_plan_free(&p);
        return 1;
    }
    for (size_t i = 0; i < c->nworkers; i++)
        if (ty_fits_as(c->wlist[i], t, 1))
            return 1;
    return 0;
}

/* Why t, at the head of the queue or skipped by it, was not placed: none
 * could hold it even when idle (what it needs against the most any worker
 * has; said wherever t is in the queue), or none has the room now.  Other
 * tasks behind the head wait their turn without a reason. */
static char *ty_wait_reason(ty_core_t *c, const ty_task_t *t) {
    const Ty__TaskSpec *s = t->spec;
    ty_buf_t need = {0};
    if (ty_gang_spans(s)) {
        ty_gang_describe(c, t, &need);
        const char *head = ty_fits_an_idle_worker(c, t) ? TY_WAIT_ROOM : TY_WAIT_NONE;
        char *why = ty_xasprintf("%sit needs %s", head, need.data);
        ty_buf_free(&need);
        return why;
    }
    ty_buf_printf(&need, "%g CPUs", ty_queue_need_cpus(s));
    if (ty_queue_need_mem(s))
        ty_buf_printf(&need, ", %llu MB", (unsigned long long)ty_queue_need_mem(s));
    if (ty_queue_need_gpus(s))
        ty_buf_printf(&need, ", %u GPUs", ty_queue_need_gpus(s));
    if (s->kind == TY_KIND_MPI)
        ty_buf_printf(&need, " (%u ranks)", s->np);
    double cpus = 0;
    uint64_t mem = 0;
    uint32_t gpus = 0;
    int labelled = 0, fits_idle = ty_fits_an_idle_worker(c, t);
    for (size_t i = 0; i < c->nworkers && !fits_idle; i++) { /* the largest, to say why not */
        ty_worker_t *w = c->wlist[i];
        if (!w->up || w->known_only)
            continue;
        labelled = labelled || ty_queue_labels_fit(w, t);
        cpus = w->cpus > cpus ? w->cpus : cpus;
        mem = w->mem_mb > mem ? w->mem_mb : mem;
        gpus = w->gpus > gpus ? w->gpus : gpus;
    }
    const char *drained = NULL; /* a worker that could run it, were it not draining */
    for (size_t i = 0; i < c->nworkers && !fits_idle && !drained; i++) {
        ty_worker_t *w = c->wlist[i];
        if (!w->draining)
            continue;
        w->draining = 0;
        if (ty_fits_as(w, t, 1))
            drained = w->id;
        w->draining = 1;
    }
    char *why;
    if (fits_idle)
        why = ty_xasprintf(TY_WAIT_ROOM "it needs %s", need.data);
    else if (drained)
        why = ty_xasprintf(TY_WAIT_ROOM "it needs %s; the workers that could run it drain (%s)",
                           need.data, drained);
    else if (!labelled)
        why = ty_xasprintf(TY_WAIT_NONE "none has the labels it asks for (%s)", need.data);
    else
        why = ty_xasprintf(TY_WAIT_NONE "it needs %s; the largest worker has %g CPUs, %llu MB, "
                                        "%u GPUs",
                           need.data, cpus, (unsigned long long)mem, gpus);
    ty_buf_free(&need);
    return why;
}

/* t's waiting reason becomes why (NULL: none), and status waiters hear of it. */
static void ty_tell_wait(ty_core_t *c, ty_task_t *t, char *why) {
    ty_runs_set_reason(t, why);
    t->waiting_why = why != NULL;
    t->run->version++;
    ty_core_notify(c, t->run);
}

/* Says why t waits, when that changed: status waiters see it at once, etcd
 * with the task's next write, so a full cluster costs no extra writes;
 * dispatch clears it.  A retry waits under the reason its last attempt
 * failed. */
static void ty_explain_wait(ty_core_t *c, ty_task_t *t) {
    if (t->reason && !t->waiting_why)
        return; /* a retry keeps its last attempt's reason ("exit code 3") */
    if (t->waiting_why && t->why_gen == c->wgen && !ty_gang_spans(t->spec))
        return; /* it depends on the workers alone, and none came or went (a
                 * gang's says what is free now: worked out again) */
    t->why_gen = c->wgen;
    char *why = ty_wait_reason(c, t);
    if (t->waiting_why && t->reason && strcmp(t->reason, why) == 0) {
        free(why);
        return;
    }
    ty_tell_wait(c, t, why);
}

char *ty_queue_never_fits(ty_core_t *c, const Ty__TaskSpec *s) {
    ty_task_t t = {.spec = (Ty__TaskSpec *)s};
    return ty_fits_an_idle_worker(c, &t) ? NULL : ty_wait_reason(c, &t);
}

void ty_queue_explain_new(ty_core_t *c, ty_task_t *t) {
    if (!ty_fits_an_idle_worker(c, t)) /* says so at once, not when it reaches the head */
        ty_explain_wait(c, t);
}

void ty_queue_charge(ty_core_t *c, ty_task_t *t, ty_worker_t *w) {
    ty_runs_attach(t, w);
    if (t->charged)
        return;
    t->charged = 1;
    double share = t->ranks0 ? (double)t->ranks0 / t->spec->np : 1; /* a gang's part 0 */
    t->charged_cpus = ty_queue_need_cpus(t->spec) * share;
    t->charged_mem = (uint64_t)(ty_queue_need_mem(t->spec) * share);
    t->charged_gpus = 0;
    for (size_t i = 0; i < t->n_gpu; i++)
        if (t->gpu_ids[i] < TY_WORKER_MAX_GPUS)
            t->charged_gpus |= 1ULL << t->gpu_ids[i];
    w->used_cpus += t->charged_cpus;
    w->used_mem += t->charged_mem;
    w->gpu_busy |= t->charged_gpus;
    w->running++;
    ty_queue_worker_changed(c, w);
}

/* ---- placement ---- */

/* t's Dispatch to w: the whole task, or part `part` of a gang (parts: all
 * of them, part 0 first). */
static void ty_send_dispatch(ty_core_t *c, ty_task_t *t, ty_worker_t *w, Ty__GangPart **parts,
                             size_t nparts, uint32_t part) {
    ty_run_t *r = t->run;
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = r->id;
    ref.task = t->spec->name;
    ref.attempt = t->attempt;
    ref.epoch = c->o.epoch;
    Ty__Dispatch d = TY__DISPATCH__INIT;
    d.ref = &ref;
    d.argv = t->spec->argv;
    d.n_argv = t->spec->n_argv;
    d.shell = t->spec->shell;
    d.env = t->spec->env;
    d.n_env = t->spec->n_env;
    d.timeout_s = t->spec->timeout_s;
    d.gpu_ids = part ? t->parts[part - 1].gpu_ids : t->gpu_ids;
    d.n_gpu_ids = part ? t->parts[part - 1].n_gpu : t->n_gpu;
    d.kind = t->spec->kind;
    d.np = t->spec->np;
    d.outputs = part ? NULL : t->spec->outputs; /* rank 0 writes them, on part 0 */
    d.n_outputs = part ? 0 : t->spec->n_outputs;
    d.parts = parts;
    d.n_parts = nparts;
    d.part = part;
    size_t ni = t->spec->n_inputs;
    Ty__InputRef *ins = ty_xcalloc(ni ? ni : 1, sizeof *ins);
    Ty__InputRef **inp = ty_xcalloc(ni ? ni : 1, sizeof *inp);
    for (size_t i = 0; i < ni; i++) { /* there: checked when it became ready */
        const Ty__KV *kv = t->spec->inputs[i];
        const Ty__ArtifactRef *a = ty_runs_find_output(r, kv->value);
        ty__input_ref__init(&ins[i]);
        ins[i].key = kv->key;
        ins[i].path = ty_dag_input_path(kv->key, kv->value);
        ins[i].sha256 = a ? a->sha256 : (char *)"";
        ins[i].size = a ? a->size : 0;
        ins[i].source = kv->value;
        inp[i] = &ins[i];
    }
    d.inputs = inp;
    d.n_inputs = ni;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_DISPATCH;
    env.dispatch = &d;
    ty_core_send_dispatch(c, t, w, &env);
    for (size_t i = 0; i < ni; i++)
        free(ins[i].path);
    free(ins);
    free(inp);
}

/* Every part of t's gang, for its Dispatches (free the two arrays). */
static Ty__GangPart **ty_gang_parts(const ty_task_t *t, Ty__GangPart **store) {
    size_t np = t->nparts + 1;
    Ty__GangPart *gp = ty_xcalloc(np, sizeof *gp);
    Ty__GangPart **gpp = ty_xcalloc(np, sizeof *gpp);
    for (size_t i = 0; i < np; i++) {
        const ty_worker_t *pw = i ? t->parts[i - 1].w : t->w;
        ty__gang_part__init(&gp[i]);
        gp[i].worker = pw->id;
        gp[i].address = pw->address ? pw->address : pw->hostname ? pw->hostname : (char *)"";
        gp[i].ranks = i ? t->parts[i - 1].ranks : t->ranks0;
        gp[i].gpu_ids = i ? t->parts[i - 1].gpu_ids : t->gpu_ids;
        gp[i].n_gpu_ids = i ? t->parts[i - 1].n_gpu : t->n_gpu;
        gpp[i] = &gp[i];
    }
    *store = gp;
    return gpp;
}

/* t's attempt starts on w, with its other parts on the rest of p (a gang
 * across workers), or all on w (p NULL or of one part). */
static void ty_dispatch(ty_core_t *c, ty_task_t *t, ty_worker_t *w, const ty_plan_t *p) {
    ty_run_t *r = t->run;
    t->state = TY_TASK_RUNNING;
    t->attempt++;
    if (t->waiting_why) /* it waits no more (a failed attempt's reason stays) */
        ty_runs_set_reason(t, NULL);
    t->waiting_why = 0;
    free(t->worker);
    t->worker = ty_xstrdup(w->id);
    if (t->queued_ms > 0)
        ty_hist_observe(&c->h_ready, (double)(c->now.wall_ms - t->queued_ms) / 1000.0);
    t->started_ms = c->now.wall_ms;
    t->finished_ms = 0;
    t->exit_code = 0;
    t->term_signal = 0;
    t->progress = 0;
    free(t->gpu_ids);
    t->gpu_ids = NULL;
    t->n_gpu = 0;
    ty_task_ended_parts_free(t); /* a new attempt: its own parts, if any */
    if (p && p->n > 1)
        ty_gang_attach(c, t, p); /* the other parts first: part 0's GPUs are on w */
    uint32_t need = t->ranks0 ? t->spec->resources->gpus * t->ranks0 : ty_queue_need_gpus(t->spec);
    if (need) {
        t->gpu_ids = ty_xcalloc(need, sizeof *t->gpu_ids);
        for (uint32_t g = 0; g < w->gpus && t->n_gpu < need; g++)
            if (!(w->gpu_busy & (1ULL << g)))
                t->gpu_ids[t->n_gpu++] = g;
    }
    t->adopted = 1; /* dispatched by this master: nothing to wait for */
    ty_queue_charge(c, t, w);
    ty_persist_task(c, t);
    if (r->state == TY_RUN_PENDING) {
        r->state = TY_RUN_RUNNING;
        r->started_ms = t->started_ms;
        ty_persist_run(c, r);
    }
    c->dispatches++;
    if (!t->nparts) {
        ty_send_dispatch(c, t, w, NULL, 0, 0);
        t->sent_seq = c->msg_seq;
        return;
    }
    Ty__GangPart *store;
    Ty__GangPart **gpp = ty_gang_parts(t, &store);
    ty_send_dispatch(c, t, w, gpp, t->nparts + 1, 0);
    t->sent_seq = c->msg_seq;
    for (size_t i = 0; i < t->nparts; i++) {
        ty_send_dispatch(c, t, t->parts[i].w, gpp, t->nparts + 1, (uint32_t)i + 1);
        t->parts[i].sent_seq = c->msg_seq;
    }
    free(store);
    free(gpp);
}

/* Best worker for t: the one with the most free CPUs among those that fit
 * (the first in registration order on a tie).  The placement heap's top
 * has the most free CPUs of all: when it fits, it is the answer, in
 * O(1); a task it does not fit (labels, GPUs, memory) looks at every
 * worker. */
static ty_worker_t *ty_pick(ty_core_t *c, const ty_task_t *t, int *any_room) {
    *any_room = c->npheap > 0 && ty_free_cpus(c->pheap[0]) > TY_EPS;
    if (!*any_room)
        return NULL;
    if (ty_fits_as(c->pheap[0], t, 0))
        return c->pheap[0];
    ty_worker_t *best = NULL;
    for (size_t i = 0; i < c->npheap; i++) {
        ty_worker_t *w = c->pheap[i];
        if (ty_fits_as(w, t, 0) && (!best || ty_w_before(w, best)))
            best = w;
    }
    return best;
}

/* A worker came or went: every queued task that no worker could hold
 * says so (wherever it is in the queue), and one that now fits somewhere
 * drops that reason and waits its turn.  Once per change, not per pass. */
static void ty_recheck_waits(ty_core_t *c) {
    c->workers_changed = 0;
    for (size_t i = 0; i < c->nheap; i++) {
        ty_task_t *t = c->heap[i];
        if (!ty_fits_an_idle_worker(c, t)) {
            ty_explain_wait(c, t);
        } else if (t->waiting_why && strncmp(t->reason, TY_WAIT_NONE, strlen(TY_WAIT_NONE)) == 0) {
            ty_tell_wait(c, t, NULL);
        }
    }
}

void ty_queue_pass(ty_core_t *c) {
    c->need_schedule = 0;
    if (!c->serving || c->nheap == 0)
        return;
    if (c->workers_changed)
        ty_recheck_waits(c);
    ty_task_t **skipped = NULL;
    size_t nskipped = 0;
    while (c->nheap > 0) {
        ty_task_t *t = c->heap[0];
        int room;
        ty_plan_t plan = {0};
        ty_worker_t *w = NULL;
        if (ty_gang_spans(t->spec)) { /* all its ranks, on several workers, or none */
            room = c->npheap > 0 && ty_free_cpus(c->pheap[0]) > TY_EPS;
            if (room && ty_gang_plan(c, t, 0, &plan) == 0)
                w = plan.w[0];
        } else {
            w = ty_pick(c, t, &room);
        }
        if (!room) { /* every worker is full: the rest waits, the first says so */
            ty_explain_wait(c, t);
            break;
        }
        ty_queue_remove(c, t);
        if (w) {
            ty_dispatch(c, t, w, &plan);
            ty_gang_plan_free(&plan);
        } else {
            ty_explain_wait(c, t);
            /* does not fit now; smaller tasks behind it may (backfill), until
             * it has waited the backfill window: then they wait for it */
            skipped = ty_xrealloc(skipped, (nskipped + 1) * sizeof *skipped);
            skipped[nskipped++] = t;
            if (c->o.backfill_ms && c->now.wall_ms - t->queued_ms >= c->o.backfill_ms &&
                ty_fits_an_idle_worker(c, t))
                break;
        }
    }
    for (size_t i = 0; i < nskipped; i++)
        ty_queue_push(c, skipped[i]);
    free(skipped);
}
