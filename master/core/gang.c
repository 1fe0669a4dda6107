/* MPI gangs across workers: a `kind: mpi` step with ranks_per_worker (each
 * part exactly that many ranks) or max_ranks_per_worker (at most that many)
 * is placed on several workers in one decision, all or nothing, so two
 * gangs never each hold half of what both need.  Part 0 is the task itself
 * (its worker, charge and GPUs); the other parts are ty_part_t, each in its
 * worker's list and charged there.  Any part lost, failed or cancelled
 * ends the whole attempt (runs.c through ty_runs_release). */
#include "master/core/core_int.h"

#include "common/log.h"
#include "common/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TY_EPS 1e-9

int ty_gang_spans(const Ty__TaskSpec *s) {
    return s->kind == TY_KIND_MPI && (s->ranks_per_worker || s->max_ranks_per_worker);
}

static uint32_t ty_gang_cap(const Ty__TaskSpec *s) {
    return s->ranks_per_worker ? s->ranks_per_worker : s->max_ranks_per_worker;
}

/* How many of t's ranks w can hold, now or (empty) with nothing else
 * running there; 0 or the exact count with ranks_per_worker. */
static uint32_t ty_gang_room(const ty_worker_t *w, const ty_task_t *t, int empty) {
    const Ty__TaskSpec *s = t->spec;
    if (!w->up || w->known_only || w->draining || !ty_queue_labels_fit(w, t))
        return 0;
    uint32_t room = ty_gang_cap(s);
    const Ty__Resources *r = s->resources;
    if (r->cpus > 0) {
        double free_cpus = w->cpus - (empty ? 0 : w->used_cpus) + TY_EPS;
        double k = floor(free_cpus / r->cpus);
        room = k < room ? (k < 0 ? 0 : (uint32_t)k) : room;
    }
    if (r->mem_mb) {
        uint64_t used = empty ? 0 : w->used_mem;
        uint64_t k = w->mem_mb > used ? (w->mem_mb - used) / r->mem_mb : 0;
        room = k < room ? (uint32_t)k : room;
    }
    if (r->gpus) {
        int busy = empty ? 0 : __builtin_popcountll(w->gpu_busy);
        uint32_t k = (int)w->gpus > busy ? ((uint32_t)((int)w->gpus - busy)) / r->gpus : 0;
        room = k < room ? k : room;
    }
    if (s->ranks_per_worker && room < s->ranks_per_worker)
        return 0;
    return room;
}

void ty_gang_plan_free(ty_plan_t *p) {
    free(p->w);
    free(p->ranks);
    memset(p, 0, sizeof *p);
}

/* Where t's ranks go: the workers with the most room first (registration
 * order on a tie), each taking what it can up to the cap, until all np
 * ranks are placed.  0 with *p filled (part 0 first), or -1 when they do
 * not fit (now, or with empty: ever, on the workers up). */
int ty_gang_plan(ty_core_t *c, const ty_task_t *t, int empty, ty_plan_t *p) {
    memset(p, 0, sizeof *p);
    size_t n = 0;
    ty_worker_t **ws = ty_xcalloc(c->nworkers ? c->nworkers : 1, sizeof *ws);
    uint32_t *room = ty_xcalloc(c->nworkers ? c->nworkers : 1, sizeof *room);
    for (size_t i = 0; i < c->nworkers; i++) {
        uint32_t k = ty_gang_room(c->wlist[i], t, empty);
        if (!k)
            continue;
        size_t j = n++; /* insertion: most room first, stable */
        while (j > 0 && room[j - 1] < k) {
            ws[j] = ws[j - 1];
            room[j] = room[j - 1];
            j--;
        }
        ws[j] = c->wlist[i];
        room[j] = k;
    }
    uint32_t left = t->spec->np;
    size_t used = 0;
    for (; used < n && left > 0; used++) {
        room[used] = room[used] < left ? room[used] : left;
        left -= room[used];
    }
    if (left > 0) {
        free(ws);
        free(room);
        return -1;
    }
    p->w = ws;
    p->ranks = room;
    p->n = used;
    return 0;
}

/* The free GPUs of w, need of them, into ids (w's bitmask marks them). */
static size_t ty_take_gpus(const ty_worker_t *w, uint32_t need, uint32_t *ids) {
    size_t n = 0;
    for (uint32_t g = 0; g < w->gpus && g < TY_WORKER_MAX_GPUS && n < need; g++)
        if (!(w->gpu_busy & (1ULL << g)))
            ids[n++] = g;
    return n;
}

static void ty_part_link(ty_part_t *pt, ty_worker_t *w) {
    pt->w = w;
    pt->wprev = NULL;
    pt->wnext = w->parts;
    if (w->parts)
        w->parts->wprev = pt;
    w->parts = pt;
}

static void ty_part_unlink(ty_part_t *pt) {
    ty_worker_t *w = pt->w;
    if (!w)
        return;
    if (pt->wprev)
        pt->wprev->wnext = pt->wnext;
    else
        w->parts = pt->wnext;
    if (pt->wnext)
        pt->wnext->wprev = pt->wprev;
    pt->w = NULL;
    pt->wnext = pt->wprev = NULL;
}

/* Part pt's resources go back to its worker (once). */
static void ty_part_uncharge(ty_core_t *c, ty_part_t *pt) {
    ty_worker_t *w = pt->w;
    if (!pt->charged || !w)
        return;
    pt->charged = 0;
    w->used_cpus -= pt->cpus;
    if (w->used_cpus < TY_EPS)
        w->used_cpus = 0;
    w->used_mem -= pt->mem;
    w->gpu_busy &= ~pt->gpus;
    if (w->running)
        w->running--;
    ty_queue_worker_changed(c, w);
    c->need_schedule = 1;
}

void ty_gang_attach(ty_core_t *c, ty_task_t *t, const ty_plan_t *p) {
    const Ty__Resources *r = t->spec->resources;
    t->ranks0 = p->ranks[0];
    t->nparts = p->n - 1;
    t->parts = ty_xcalloc(t->nparts ? t->nparts : 1, sizeof *t->parts);
    for (size_t i = 1; i < p->n; i++) {
        ty_part_t *pt = &t->parts[i - 1];
        ty_worker_t *w = p->w[i];
        pt->t = t;
        pt->index = (unsigned)i;
        pt->ranks = p->ranks[i];
        uint32_t need = r->gpus * pt->ranks;
        pt->gpu_ids = ty_xcalloc(need ? need : 1, sizeof *pt->gpu_ids);
        pt->n_gpu = ty_take_gpus(w, need, pt->gpu_ids);
        for (size_t g = 0; g < pt->n_gpu; g++)
            pt->gpus |= 1ULL << pt->gpu_ids[g];
        pt->cpus = r->cpus * pt->ranks;
        pt->mem = r->mem_mb * pt->ranks;
        pt->charged = 1;
        ty_part_link(pt, w);
        w->used_cpus += pt->cpus;
        w->used_mem += pt->mem;
        w->gpu_busy |= pt->gpus;
        w->running++;
        ty_queue_worker_changed(c, w);
    }
}

void ty_gang_release(ty_core_t *c, ty_task_t *t) {
    if (t->nparts && t->w) { /* where it ran, kept for its record and status */
        Ty__TaskRecord rec = TY__TASK_RECORD__INIT;
        ty_task_ended_parts_free(t);
        ty_persist_gang_parts(t, &rec);
        t->ended_parts = ty_xcalloc(rec.n_parts, sizeof *t->ended_parts);
        for (size_t i = 0; i < rec.n_parts; i++)
            t->ended_parts[i] = ty_pb_dup(&rec.parts[i]->base);
        t->nended_parts = rec.n_parts;
        ty_persist_task_record_clear(&rec);
    }
    for (size_t i = 0; i < t->nparts; i++) {
        ty_part_t *pt = &t->parts[i];
        if (pt->charged && pt->w && pt->w->up)
            ty_fleet_send_cancel_on(c, t, pt->w); /* its daemon and ranks end */
        ty_part_uncharge(c, pt);
        ty_part_unlink(pt);
        free(pt->gpu_ids);
    }
    free(t->parts);
    t->parts = NULL;
    t->nparts = 0;
    t->ranks0 = 0;
}

ty_part_t *ty_gang_part_on(const ty_task_t *t, const ty_worker_t *w) {
    for (size_t i = 0; i < t->nparts; i++)
        if (t->parts[i].w == w)
            return &t->parts[i];
    return NULL;
}

void ty_gang_part_result(ty_core_t *c, ty_task_t *t, ty_part_t *pt, const Ty__TaskResult *res) {
    int ok = res->exit_code == 0 && res->term_signal == 0 && !res->timed_out && !res->cancelled &&
             !*res->error && !res->interrupted;
    if (ok) { /* its daemon ended with the job: its share is free */
        ty_part_uncharge(c, pt);
        return;
    }
    if (t->gang_why) { /* ending already */
        ty_part_uncharge(c, pt);
        return;
    }
    char *why;
    if (*res->error)
        why = ty_xasprintf("part %u on worker %s: %s", pt->index, pt->w->id, res->error);
    else if (res->timed_out)
        why = ty_xasprintf("part %u on worker %s: timed out", pt->index, pt->w->id);
    else if (res->term_signal)
        why = ty_xasprintf("part %u on worker %s: killed by signal %d", pt->index, pt->w->id,
                           res->term_signal);
    else
        why = ty_xasprintf("part %u on worker %s: exit code %d", pt->index, pt->w->id,
                           res->exit_code);
    ty_gang_end(c, t, why, res->interrupted);
    free(why);
}

void ty_gang_end(ty_core_t *c, ty_task_t *t, const char *why, int lost) {
    if (t->gang_why)
        return;
    ty_info("task %s/%s#%u: %s: the gang ends", t->run->id, t->spec->name, t->attempt, why);
    t->gang_why = ty_xstrdup(why);
    t->gang_lost = lost;
    ty_gang_release(c, t);      /* the other parts' daemons end */
    ty_fleet_send_cancel(c, t); /* mpirun, with the ranks it started: its result ends it */
}

int ty_gang_settle(ty_core_t *c, ty_task_t *t, const Ty__TaskResult *res) {
    if (!t->gang_why)
        return 0;
    char *why = t->gang_why;
    t->gang_why = NULL;
    if (t->gang_lost) {
        ty_runs_requeue_lost(c, t, why);
    } else {
        Ty__TaskResult whole = *res;
        whole.error = why;
        whole.outputs = NULL;
        whole.n_outputs = 0;
        whole.registers = NULL;
        whole.n_registers = 0;
        ty_runs_result(c, t, &whole);
    }
    free(why);
    return 1;
}

void ty_gang_describe(ty_core_t *c, const ty_task_t *t, ty_buf_t *b) {
    const Ty__TaskSpec *s = t->spec;
    const Ty__Resources *r = s->resources;
    ty_buf_printf(b, "%u ranks of %g CPUs", s->np, r->cpus);
    if (r->mem_mb)
        ty_buf_printf(b, ", %llu MB", (unsigned long long)r->mem_mb);
    if (r->gpus)
        ty_buf_printf(b, ", %u GPUs", r->gpus);
    if (s->ranks_per_worker)
        ty_buf_printf(b, ", %u on each worker", s->ranks_per_worker);
    else
        ty_buf_printf(b, ", at most %u on each worker", s->max_ranks_per_worker);
    uint32_t now = 0, idle = 0;
    ty_buf_t free_now = {0};
    for (size_t i = 0; i < c->nworkers; i++) {
        const ty_worker_t *w = c->wlist[i];
        uint32_t k = ty_gang_room(w, t, 0);
        now += k;
        idle += ty_gang_room(w, t, 1);
        if (k)
            ty_buf_printf(&free_now, "%s%s %u", free_now.len ? ", " : "", w->id, k);
    }
    ty_buf_printf(b, "; the workers up hold %u of them when idle, %u now", idle, now);
    if (free_now.len)
        ty_buf_printf(b, " (%s)", free_now.data);
    ty_buf_free(&free_now);
}
