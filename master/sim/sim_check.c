/* The invariants the simulator checks (sim.c):
 *  - at most one current attempt of a task runs anywhere;
 *  - a task's result, and a run's end, is committed at most once (a stored
 *    record that is terminal never changes);
 *  - no run is lost or stuck: once the faults stop and every worker is back,
 *    every run the store holds ends;
 *  - resources charged to a worker never exceed it and equal the sum of what
 *    the core counts as running there; no GPU is given twice;
 *  - nothing leaves the outbox before it is durable (a dispatch's task record,
 *    an acknowledged submit's run record are in the store when they leave);
 *  - a run is finished exactly when all its tasks are settled. */
#include "master/sim/sim.h"

#include "common/cron.h"
#include <time.h>

#include "common/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sim_fail(sim_t *s, const char *fmt, ...) {
    if (s->violation)
        return; /* the first one is the one to look at */
    va_list ap;
    va_start(ap, fmt);
    char *msg = ty_xvasprintf(fmt, ap);
    va_end(ap);
    s->violation = ty_xasprintf("at %lld ms: %s", (long long)s->now, msg);
    free(msg);
}

static int sim_terminal_run(unsigned st) { return st != TY_RUN_PENDING && st != TY_RUN_RUNNING; }

static void sim_check_runs(sim_t *s) {
    ty_core_t *c = s->core;
    for (size_t i = 0; i < c->nruns; i++) {
        ty_run_t *r = c->order[i];
        if (!r)
            continue; /* let go of after its retention */
        size_t settled = 0;
        for (size_t k = 0; k < r->ntasks; k++) {
            ty_task_t *t = &r->tasks[k];
            settled += ty_task_state_terminal(t->state) != 0;
            if (t->state == TY_TASK_RUNNING && (!t->w || !t->worker || strcmp(t->w->id, t->worker)))
                sim_fail(s, "%s/%s (run %s) runs on %s, on no worker's list (%s)", r->id,
                         t->spec->name, ty_run_state_name(r->state),
                         t->worker ? t->worker : "no worker", t->w ? t->w->id : "none");
            if (t->state != TY_TASK_RUNNING && t->w)
                sim_fail(s, "%s/%s is %s but still on %s's list", r->id, t->spec->name,
                         ty_task_state_name(t->state), t->w->id);
        }
        int all = settled == r->ntasks;
        if (!sim_terminal_run(r->state) && r->nsettled != settled)
            sim_fail(s, "run %s counts %zu tasks settled; %zu are", r->id, r->nsettled, settled);
        if (sim_terminal_run(r->state) != all && r->state != TY_RUN_CANCELLED)
            sim_fail(s, "run %s is %s with %zu of %zu tasks settled", r->id,
                     ty_run_state_name(r->state), settled, r->ntasks);
        if (r->state == TY_RUN_CANCELLED && !all)
            sim_fail(s, "run %s was cancelled with tasks unsettled", r->id);
    }
}

static void sim_check_resources(sim_t *s) {
    ty_core_t *c = s->core;
    for (size_t i = 0; i < c->nworkers; i++) {
        ty_worker_t *w = c->wlist[i];
        double cpus = 0;
        unsigned running = 0;
        uint64_t gpus = 0;
        for (ty_task_t *t = w->tasks; t; t = t->wnext) {
            if (t->w != w)
                sim_fail(s, "%s's list holds a task of another worker", w->id);
            if (!t->charged)
                continue;
            cpus += t->charged_cpus;
            running++;
            if (gpus & t->charged_gpus)
                sim_fail(s, "a GPU of %s is given twice", w->id);
            gpus |= t->charged_gpus;
        }
        for (ty_part_t *pt = w->parts; pt; pt = pt->wnext) {
            if (pt->w != w || pt->t->state != TY_TASK_RUNNING)
                sim_fail(s, "%s's list holds a part of another worker or an ended attempt", w->id);
            if (!pt->charged)
                continue;
            cpus += pt->cpus;
            running++;
            if (gpus & pt->gpus)
                sim_fail(s, "a GPU of %s is given twice", w->id);
            gpus |= pt->gpus;
        }
        if (fabs(cpus - w->used_cpus) > 1e-6 || running != w->running || gpus != w->gpu_busy)
            sim_fail(s,
                     "%s charges %g CPUs, %u tasks, GPUs %llx; its attempts add up to %g, %u, "
                     "%llx",
                     w->id, w->used_cpus, w->running, (unsigned long long)w->gpu_busy, cpus,
                     running, (unsigned long long)gpus);
        if (w->used_cpus > w->cpus + 1e-6 || (w->gpus < 64 && (w->gpu_busy >> w->gpus)))
            sim_fail(s, "%s is charged past its size", w->id);
    }
}

/* No task has two of its current attempt running. */
static void sim_check_attempts(sim_t *s) {
    zhashx_t *seen = zhashx_new();
    for (size_t i = 0; i < s->nworkers; i++) {
        sim_worker_t *w = &s->workers[i];
        for (sim_attempt_t *a = w->attempts; a; a = a->next) {
            ty_task_t *t = ty_core_find_task(s->core, a->run, a->task);
            if (!t || t->state != TY_TASK_RUNNING || t->attempt != a->attempt)
                continue;
            char key[320]; /* a gang's parts run the same attempt, one each */
            snprintf(key, sizeof key, "%s/%s part %u", a->run, a->task, a->part);
            if (zhashx_lookup(seen, key))
                sim_fail(s, "attempt %u of %s runs twice", a->attempt, key);
            zhashx_insert(seen, key, w);
        }
    }
    zhashx_destroy(&seen);
}

void sim_check(sim_t *s) {
    if (s->violation || !s->core)
        return;
    sim_check_runs(s);
    sim_check_resources(s);
    sim_check_attempts(s);
}

/* Every message leaves after what it reports is durable. */
void sim_check_send(sim_t *s, const ty_fx_t *fx) {
    Ty__Envelope *env = ty__envelope__unpack(NULL, fx->len, fx->data);
    if (!env) {
        sim_fail(s, "the core sent bytes that do not decode");
        return;
    }
    char key[600];
    if (env->body_case == TY__ENVELOPE__BODY_DISPATCH && env->dispatch->ref) {
        const Ty__TaskRef *ref = env->dispatch->ref;
        snprintf(key, sizeof key, "runs/%s/tasks/%s", ref->run_id, ref->task);
        zchunk_t *ch = zhashx_lookup(s->kv, key);
        Ty__TaskRecord *rec =
            ch ? ty__task_record__unpack(NULL, zchunk_size(ch), zchunk_data(ch)) : NULL;
        if (!rec || rec->attempt < ref->attempt)
            sim_fail(s, "dispatch of %s#%u left before its record was durable", key, ref->attempt);
        if (rec)
            ty__task_record__free_unpacked(rec, NULL);
    } else if (env->body_case == TY__ENVELOPE__BODY_SUBMIT_REPLY) {
        /* (a request id sent again long after: its run may have left the
         * history since, which a clock set forward hastens) */
        snprintf(key, sizeof key, "runs/%s", env->submit_reply->run_id);
        if (!zhashx_lookup(s->kv, key) &&
            !zhashx_lookup(s->dropped_runs, env->submit_reply->run_id))
            sim_fail(s, "submit of %s acknowledged before its run was durable",
                     env->submit_reply->run_id);
    }
    ty__envelope__free_unpacked(env, NULL);
}

/* A stored record that is terminal never changes: a result is committed
 * once, a run ends once. */
void sim_check_put(sim_t *s, const char *key, const uint8_t *val, size_t len) {
    zchunk_t *old = zhashx_lookup(s->kv, key);
    if (strncmp(key, "runs/cron-", 10) == 0 && !strchr(key + 5, '/')) { /* a fire's run */
        if (!old && zhashx_lookup(s->fire_runs, key + 5))
            sim_fail(s, "%s, the run of a fire, is created again after it was dropped", key);
        zhashx_update(s->fire_runs, key + 5, (void *)1);
    }
    if (!old || strncmp(key, "runs/", 5) != 0)
        return;
    if (strstr(key, "/tasks/")) {
        Ty__TaskRecord *a = ty__task_record__unpack(NULL, zchunk_size(old), zchunk_data(old));
        Ty__TaskRecord *b = ty__task_record__unpack(NULL, len, val);
        if (!a || !b)
            sim_fail(s, "%s does not decode", key);
        else if (ty_task_state_terminal(a->state) &&
                 (b->state != a->state || b->attempt != a->attempt))
            sim_fail(s, "%s was %s (attempt %u) and is written %s (attempt %u)", key,
                     ty_task_state_name(a->state), a->attempt, ty_task_state_name(b->state),
                     b->attempt);
        if (a)
            ty__task_record__free_unpacked(a, NULL);
        if (b)
            ty__task_record__free_unpacked(b, NULL);
        return;
    }
    Ty__RunRecord *a = ty__run_record__unpack(NULL, zchunk_size(old), zchunk_data(old));
    Ty__RunRecord *b = ty__run_record__unpack(NULL, len, val);
    if (!a || !b)
        sim_fail(s, "%s does not decode", key);
    else if (sim_terminal_run(a->state) && b->state != a->state)
        sim_fail(s, "%s ended %s and is written %s", key, ty_run_state_name(a->state),
                 ty_run_state_name(b->state));
    else if (a->created_ms != b->created_ms || a->seq != b->seq)
        sim_fail(s, "%s is created a second time (created at %lld, then at %lld)", key,
                 (long long)a->created_ms, (long long)b->created_ms);
    if (a)
        ty__run_record__free_unpacked(a, NULL);
    if (b)
        ty__run_record__free_unpacked(b, NULL);
}

/* Every fire of the cron schedule after it was first stored, up to the
 * last one it dealt with, started exactly one run (catch-up all, concurrency
 * allow: none is skipped), however the masters crashed and the clock moved. */
static void sim_check_fires(sim_t *s) {
    zchunk_t *ch = zhashx_lookup(s->kv, "schedules/cron");
    Ty__ScheduleRecord *rec =
        ch ? ty__schedule_record__unpack(NULL, zchunk_size(ch), zchunk_data(ch)) : NULL;
    if (!rec) {
        if (zhashx_size(s->fire_runs))
            sim_fail(s, "runs of cron fires were stored, but the schedule is not");
        return;
    }
    ty_cron_t *cron = NULL;
    char *why = NULL;
    if (ty_cron_parse(rec->spec->cron, rec->spec->tz, &cron, &why) != 0)
        abort();
    size_t want = 0;
    for (int64_t f = ty_cron_next(cron, rec->created_ms / 1000); f >= 0 && f <= rec->last_fire_s;
         f = ty_cron_next(cron, f)) {
        time_t t = (time_t)f;
        struct tm tm;
        gmtime_r(&t, &tm);
        char id[40];
        strftime(id, sizeof id, "cron-%Y%m%d-%H%M", &tm);
        if (!zhashx_lookup(s->fire_runs, id))
            sim_fail(s, "the fire at %lld (%s) started no run", (long long)f, id);
        want++;
    }
    if (zhashx_size(s->fire_runs) != want)
        sim_fail(s, "%zu fires of the cron schedule, %zu runs of fires stored", want,
                 zhashx_size(s->fire_runs));
    if (rec->skipped)
        sim_fail(s, "the cron schedule skipped %llu fires", (unsigned long long)rec->skipped);
    ty_cron_destroy(&cron);
    ty__schedule_record__free_unpacked(rec, NULL);
}

/* After the settling: every run the store holds has ended, in the store and
 * in the core. */
void sim_check_end(sim_t *s) {
    size_t stored = 0;
    zhashx_t *rids = zhashx_new(); /* request id -> the run stored with it */
    zhashx_set_destructor(rids, (zhashx_destructor_fn *)zstr_free);
    for (zchunk_t *ch = zhashx_first(s->kv); ch; ch = zhashx_next(s->kv)) {
        const char *key = zhashx_cursor(s->kv);
        if (strncmp(key, "runs/", 5) != 0 || strchr(key + 5, '/'))
            continue;
        stored++;
        Ty__RunRecord *r = ty__run_record__unpack(NULL, zchunk_size(ch), zchunk_data(ch));
        if (!r || !sim_terminal_run(r->state)) {
            /* say where it stands: its first unsettled task, in the master */
            ty_run_t *cr = r ? ty_core_find_run(s->core, r->run_id) : NULL;
            char where[512] = "";
            for (size_t i = 0; cr && i < cr->ntasks && !*where; i++) {
                ty_task_t *t = &cr->tasks[i];
                if (!ty_task_state_terminal(t->state))
                    snprintf(where, sizeof where, ": %s %s, attempt %u on %s (%s)%s%.300s",
                             t->spec->name, ty_task_state_name(t->state), t->attempt,
                             t->worker ? t->worker : "none",
                             t->w ? (t->w->up ? "up" : "not up") : "no list", t->reason ? ": " : "",
                             t->reason ? t->reason : "");
            }
            sim_fail(s, "%s is stuck %s after the faults stopped%s", key,
                     r ? ty_run_state_name(r->state) : "(undecodable)", where);
        }
        if (r && !sim_terminal_run(r->state) && !ty_core_find_run(s->core, r->run_id))
            sim_fail(s, "%s is stored unfinished but the master lost it", key);
        /* one run per request id, however often the client sent it */
        const char *twin = r && *r->request_id ? zhashx_lookup(rids, r->request_id) : NULL;
        if (twin)
            sim_fail(s, "request %s is stored as run %s and run %s", r->request_id, twin,
                     r->run_id);
        else if (r && *r->request_id)
            zhashx_insert(rids, r->request_id, ty_xstrdup(r->run_id));
        if (r)
            ty__run_record__free_unpacked(r, NULL);
    }
    zhashx_destroy(&rids);
    sim_check_fires(s);
    s->nfinished = stored;
    if (s->core->nlive > stored)
        sim_fail(s, "the master holds %zu runs, the store %zu", s->core->nlive, stored);
    ty_core_stats_t st;
    ty_core_stats(s->core, &st);
    if ((int64_t)st.runs_finished > SIM_RETAIN_RUNS)
        sim_fail(s, "%zu finished runs kept, past the retention of %d", st.runs_finished,
                 SIM_RETAIN_RUNS);
}
