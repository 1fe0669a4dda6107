/* Listings of what the master holds in memory (the live runs and the last
 * --retain-runs finished ones): runs with filters, pipelines with their
 * last run, workers with what runs on them. */
#include "master/api_int.h"

#include "common/dag.h"
#include "common/util.h"
#include "master/core/core_int.h"

#include <stdlib.h>
#include <string.h>

/* Whether a run id, or its part after the last '-' (the hash), begins
 * with p. */
static int ty_id_has_prefix(const char *id, const char *p) {
    size_t n = strlen(p);
    const char *dash = strrchr(id, '-');
    return strncmp(id, p, n) == 0 || (dash && strncmp(dash + 1, p, n) == 0);
}

void ty_api_runs(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                 const Ty__RunsRequest *req, ty_time_t now) {
    ty_core_t *c = a->core;
    size_t limit = req->limit ? req->limit : 100, n = c->nlive < limit ? c->nlive : limit;
    const char *sched = req->schedule && *req->schedule ? req->schedule : NULL;
    const char *pipe = req->pipeline && *req->pipeline ? req->pipeline : NULL;
    const char *state = req->state && *req->state ? req->state : NULL;
    const char *owner = req->owner && *req->owner ? req->owner : NULL;
    const char *idp = req->id_prefix && *req->id_prefix ? req->id_prefix : NULL;
    Ty__RunRecord *recs = ty_xcalloc(n ? n : 1, sizeof *recs);
    Ty__RunStatus *sts = ty_xcalloc(n ? n : 1, sizeof *sts);
    Ty__RunStatus **ptrs = ty_xcalloc(n ? n : 1, sizeof *ptrs);
    size_t k = c->nruns, i = 0;
    while (i < n && k > 0) { /* newest first, those in memory */
        ty_run_t *r = c->order[--k];
        if (!r || (sched && (!r->schedule || strcmp(r->schedule, sched) != 0)) ||
            (pipe && strcmp(r->spec->name, pipe) != 0) ||
            (state && strcmp(ty_run_state_name(r->state), state) != 0) ||
            (req->since_ms && r->created_ms < req->since_ms) ||
            (owner && (!r->owner || strcmp(r->owner, owner) != 0)) ||
            (idp && !ty_id_has_prefix(r->id, idp)))
            continue;
        ty_persist_run_record(r, &recs[i], 0);
        ty__run_status__init(&sts[i]);
        sts[i].run = &recs[i];
        sts[i].version = r->version;
        ptrs[i] = &sts[i];
        i++;
    }
    n = i;
    Ty__RunsReply rr = TY__RUNS_REPLY__INIT;
    rr.runs = ptrs;
    rr.n_runs = n;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RUNS_REPLY;
    env.runs_reply = &rr;
    ty_reply(a, peer, peer_len, req_id, &env, now);
    free(recs);
    free(sts);
    free(ptrs);
}

void ty_api_pipelines(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                      const Ty__PipelinesRequest *req, ty_time_t now) {
    ty_core_t *c = a->core;
    size_t cap = c->nlive ? c->nlive : 1, n = 0; /* no more pipelines than runs */
    Ty__PipelineSummary *sums = ty_xcalloc(cap, sizeof *sums);
    Ty__PipelineSummary **ptrs = ty_xcalloc(cap, sizeof *ptrs);
    Ty__RunRecord *lasts = ty_xcalloc(cap, sizeof *lasts);
    zhashx_t *seen = zhashx_new();          /* name -> its summary */
    for (size_t k = c->nruns; k > 0; k--) { /* newest first: the first seen is the last run */
        ty_run_t *r = c->order[k - 1];
        if (!r)
            continue;
        Ty__PipelineSummary *p = zhashx_lookup(seen, r->spec->name);
        if (!p) {
            p = ptrs[n] = &sums[n];
            ty__pipeline_summary__init(p);
            p->name = r->spec->name;
            ty_persist_run_record(r, &lasts[n], 0);
            p->last = &lasts[n++];
            zhashx_insert(seen, r->spec->name, p);
        }
        p->runs++;
        p->succeeded += r->state == TY_RUN_SUCCEEDED;
        p->failed += r->state == TY_RUN_FAILED;
        p->active += r->state == TY_RUN_PENDING || r->state == TY_RUN_RUNNING;
    }
    zhashx_destroy(&seen);
    Ty__PipelinesReply pr = TY__PIPELINES_REPLY__INIT;
    pr.pipelines = ptrs;
    pr.n_pipelines = req->limit && n > req->limit ? req->limit : n;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_PIPELINES_REPLY;
    env.pipelines_reply = &pr;
    ty_reply(a, peer, peer_len, req_id, &env, now);
    free(lasts);
    free(ptrs);
    free(sums);
}

/* What runs on w: its attempts, and the parts of gangs led elsewhere
 * (borrowed strings; the refs and their array are the caller's to free). */
static Ty__TaskRef *ty_ref_of(const ty_task_t *t) {
    Ty__TaskRef *r = ty_xmalloc(sizeof *r);
    ty__task_ref__init(r);
    r->run_id = t->run->id;
    r->task = t->spec->name;
    r->attempt = t->attempt;
    return r;
}

static Ty__TaskRef **ty_worker_attempts(const ty_worker_t *w, size_t *n) {
    /* w->running counts both lists (queue.c, gang.c) */
    Ty__TaskRef **refs = ty_xcalloc(w->running ? w->running : 1, sizeof *refs);
    *n = 0;
    for (const ty_task_t *t = w->tasks; t && *n < w->running; t = t->wnext)
        refs[(*n)++] = ty_ref_of(t);
    for (const ty_part_t *p = w->parts; p && *n < w->running; p = p->wnext)
        refs[(*n)++] = ty_ref_of(p->t);
    return refs;
}

void ty_api_workers(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                    ty_time_t now) {
    ty_core_t *c = a->core;
    size_t n = 0;
    for (size_t i = 0; i < c->nworkers; i++)
        n += !c->wlist[i]->placeholder;
    Ty__WorkerStatus *ws = ty_xcalloc(n ? n : 1, sizeof *ws);
    Ty__WorkerStatus **ptrs = ty_xcalloc(n ? n : 1, sizeof *ptrs);
    Ty__Resources *tot = ty_xcalloc(n ? n : 1, sizeof *tot),
                  *used = ty_xcalloc(n ? n : 1, sizeof *used);
    size_t i = 0;
    for (size_t k = 0; k < c->nworkers; k++) {
        ty_worker_t *w = c->wlist[k];
        if (w->placeholder)
            continue;
        ty__worker_status__init(&ws[i]);
        ty__resources__init(&tot[i]);
        ty__resources__init(&used[i]);
        ws[i].id = w->id;
        ws[i].state = w->up ? "up" : w->gone ? "gone" : "lost";
        ws[i].hostname = w->hostname ? w->hostname : "";
        ws[i].draining = w->draining;
        tot[i].cpus = w->cpus;
        tot[i].mem_mb = w->mem_mb;
        tot[i].gpus = w->gpus;
        tot[i].labels = w->labels;
        tot[i].n_labels = w->nlabels;
        used[i].cpus = w->used_cpus;
        used[i].mem_mb = w->used_mem;
        used[i].gpus = (uint32_t)__builtin_popcountll(w->gpu_busy);
        ws[i].total = &tot[i];
        ws[i].used = &used[i];
        ws[i].running = w->running;
        ws[i].attempts = ty_worker_attempts(w, &ws[i].n_attempts);
        ws[i].last_seen_ms = w->last_seen ? now.wall_ms - (now.mono_ms - w->last_seen) : 0;
        ptrs[i] = &ws[i];
        i++;
    }
    Ty__WorkersReply wr = TY__WORKERS_REPLY__INIT;
    wr.workers = ptrs;
    wr.n_workers = n;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_WORKERS_REPLY;
    env.workers_reply = &wr;
    ty_reply(a, peer, peer_len, req_id, &env, now);
    for (size_t k = 0; k < n; k++) {
        for (size_t r = 0; r < ws[k].n_attempts; r++)
            free(ws[k].attempts[r]);
        free(ws[k].attempts);
    }
    free(ws);
    free(ptrs);
    free(tot);
    free(used);
}
