/* GET /metrics: the master's figures in Prometheus' text format (names as
 * Prometheus' naming guide has them: trainyard_ prefix, base units, _total
 * counters; no label with a run's id).  Read from the core's state and
 * counters, the transport's and the artifact store's; a standby has only
 * trainyard_leader 0 and its own counters. */
#include "master/master.h"

#include "master/core/core_int.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name, *type, *help;
} ty_fam_t;

static void ty_one(ty_buf_t *out, const char *name, const char *type, const char *help, double v) {
    ty_prom_family(out, name, type, help);
    ty_prom_sample(out, name, NULL, v);
}

static void ty_by_state(ty_buf_t *out, const char *name, const char *type, const char *help,
                        const char *const *states, const double *v, size_t n) {
    ty_prom_family(out, name, type, help);
    for (size_t i = 0; i < n; i++) {
        const char *l[] = {"state", states[i], NULL};
        ty_prom_sample(out, name, l, v[i]);
    }
}

static void ty_sched_fires(void *arg, const Ty__ScheduleRecord *rec) {
    ty_buf_t *out = arg;
    const char *l[] = {"schedule", rec->spec ? rec->spec->name : "?", NULL};
    ty_prom_sample(out, "trainyard_schedule_fires_total", l, (double)rec->fired);
}

static void ty_sched_missed(void *arg, const Ty__ScheduleRecord *rec) {
    ty_buf_t *out = arg;
    const char *l[] = {"schedule", rec->spec ? rec->spec->name : "?", NULL};
    ty_prom_sample(out, "trainyard_schedule_missed_fires_total", l, (double)rec->skipped);
}

/* Workers: by state, then each one's resources (workers are few: their id
 * is a label). */
static void ty_expose_workers(ty_buf_t *out, const ty_core_t *c) {
    double by[3] = {0};
    for (size_t i = 0; i < c->nworkers; i++) {
        const ty_worker_t *w = c->wlist[i];
        if (w && !w->gone && !w->placeholder)
            by[!w->up ? 2 : w->draining ? 1 : 0]++;
    }
    static const char *const wstates[] = {"up", "draining", "lost"};
    ty_by_state(out, "trainyard_workers", "gauge", "Workers known to the leader, by state.",
                wstates, by, 3);
    static const struct {
        const char *name, *help;
    } per[] = {
        {"trainyard_worker_cpus", "CPUs a worker offers."},
        {"trainyard_worker_cpus_free", "CPUs of a worker no attempt holds."},
        {"trainyard_worker_gpus", "GPUs a worker offers."},
        {"trainyard_worker_gpus_free", "GPUs of a worker no attempt holds."},
        {"trainyard_worker_memory_bytes", "Memory a worker offers."},
        {"trainyard_worker_memory_free_bytes", "Memory of a worker no attempt holds."},
        {"trainyard_worker_running_attempts", "Attempts (and gang parts) running on a worker."},
        {"trainyard_worker_attempts_cpu_seconds",
         "CPU time the processes of a worker's running attempts have used so far."},
        {"trainyard_worker_attempts_resident_bytes",
         "Resident memory of the processes of a worker's running attempts."},
        {"trainyard_worker_process_cpu_seconds_total", "CPU time of the worker daemon itself."},
        {"trainyard_worker_process_resident_bytes", "Resident memory of the worker daemon."},
    };
    for (size_t k = 0; k < sizeof per / sizeof per[0]; k++) {
        ty_prom_family(out, per[k].name, strstr(per[k].name, "_total") ? "counter" : "gauge",
                       per[k].help);
        for (size_t i = 0; i < c->nworkers; i++) {
            const ty_worker_t *w = c->wlist[i];
            if (!w || w->gone || w->placeholder || !w->up)
                continue;
            unsigned busy = (unsigned)__builtin_popcountll(w->gpu_busy);
            double v[] = {w->cpus,
                          w->cpus - w->used_cpus,
                          w->gpus,
                          w->gpus > busy ? w->gpus - busy : 0,
                          (double)w->mem_mb * 1048576.0,
                          (double)(w->mem_mb > w->used_mem ? w->mem_mb - w->used_mem : 0) *
                              1048576.0,
                          w->running,
                          w->attempts_cpu_s,
                          (double)w->attempts_rss,
                          w->self_cpu_s,
                          (double)w->self_rss};
            const char *l[] = {"worker", w->id, NULL};
            ty_prom_sample(out, per[k].name, l, v[k]);
        }
    }
}

static void ty_expose_core(ty_buf_t *out, const ty_core_t *c) {
    double runs[TY_RUN_NSTATES] = {0}, tasks[TY_TASK_NSTATES] = {0};
    for (size_t k = 0; k < c->nruns; k++) {
        const ty_run_t *r = c->order[k];
        if (!r || r->state > TY_RUN_RUNNING) /* finished runs: the _ended_total counters */
            continue;
        runs[r->state]++;
        for (size_t i = 0; i < r->ntasks; i++)
            if (r->tasks[i].state < TY_TASK_NSTATES)
                tasks[r->tasks[i].state]++;
    }
    const char *names[TY_TASK_NSTATES];
    for (unsigned s = 0; s < TY_TASK_NSTATES; s++)
        names[s] = ty_task_state_name(s);
    const char *rnames[TY_RUN_NSTATES];
    for (unsigned s = 0; s < TY_RUN_NSTATES; s++)
        rnames[s] = ty_run_state_name(s);
    /* live: pending and running runs; waiting, queued and running tasks */
    ty_by_state(out, "trainyard_runs", "gauge", "Runs not yet ended, by state.", rnames, runs, 2);
    ty_by_state(out, "trainyard_tasks", "gauge",
                "Tasks of the runs not yet ended that have not ended, by state.", names, tasks, 3);
    double ended[TY_TASK_NSTATES], rended[TY_RUN_NSTATES];
    for (unsigned s = 0; s < TY_TASK_NSTATES; s++)
        ended[s] = (double)c->tasks_ended[s];
    for (unsigned s = 0; s < TY_RUN_NSTATES; s++)
        rended[s] = (double)c->runs_ended[s];
    ty_by_state(out, "trainyard_tasks_ended_total", "counter",
                "Tasks that ended since this master began to lead, by state.", names + 3, ended + 3,
                TY_TASK_NSTATES - 3);
    ty_by_state(out, "trainyard_runs_ended_total", "counter",
                "Runs that ended since this master began to lead, by state.", rnames + 2,
                rended + 2, TY_RUN_NSTATES - 2);
    ty_one(out, "trainyard_queue_depth", "gauge",
           "Tasks ready to run that wait for a worker (or for their retry's back-off).",
           (double)(c->nheap + c->ndelayed));
    ty_one(out, "trainyard_dispatches_total", "counter", "Attempts sent to workers.",
           (double)c->dispatches);
    ty_expose_workers(out, c);
    static const ty_fam_t hists[] = {
        {"trainyard_task_ready_to_dispatch_seconds", "histogram",
         "From a task being ready to its attempt being sent to a worker."},
        {"trainyard_task_dispatch_to_start_seconds", "histogram",
         "From an attempt being sent to its process starting (the worker's clock)."},
        {"trainyard_task_run_seconds", "histogram",
         "From an attempt's process starting to its end."},
    };
    const ty_hist_t *h[] = {&c->h_ready, &c->h_start, &c->h_run};
    for (size_t i = 0; i < 3; i++) {
        ty_prom_family(out, hists[i].name, hists[i].type, hists[i].help);
        ty_prom_hist(out, hists[i].name, NULL, h[i]);
    }
    ty_one(out, "trainyard_etcd_txns_total", "counter", "Transactions committed to etcd.",
           (double)c->txns);
    ty_one(out, "trainyard_etcd_ops_total", "counter",
           "Records written to etcd by those transactions.", (double)c->ops);
    ty_one(out, "trainyard_worker_messages_rejected_total", "counter",
           "Worker messages that failed validation.", (double)c->rejected_msgs);
    ty_prom_family(out, "trainyard_schedule_fires_total", "counter", "Runs a schedule started.");
    ty_sched_each(c, ty_sched_fires, out);
    ty_prom_family(out, "trainyard_schedule_missed_fires_total", "counter",
                   "Fires a schedule skipped (catch-up, concurrency).");
    ty_sched_each(c, ty_sched_missed, out);
}

void ty_master_expose(ty_master_t *m, ty_buf_t *out) {
    ty_prom_family(out, "trainyard_build_info", "gauge", "The master's version.");
    const char *v[] = {"version", TY_VERSION, "node", m->o.node_id, NULL};
    ty_prom_sample(out, "trainyard_build_info", v, 1);
    int leads = m->leader && m->core;
    ty_one(out, "trainyard_leader", "gauge", "1 when this master leads, 0 when it stands by.",
           leads);
    if (leads)
        ty_expose_core(out, m->core);
    ty_prom_family(out, "trainyard_etcd_txn_seconds", "histogram",
                   "Latency of transactions to etcd, sent to answered.");
    ty_prom_hist(out, "trainyard_etcd_txn_seconds", NULL, &m->etcd_txn);
    ty_prom_family(out, "trainyard_frames_rejected_total", "counter",
                   "Messages refused before decoding, by reason.");
    const char *sz[] = {"reason", "size", NULL}, *dec[] = {"reason", "decode", NULL};
    ty_prom_sample(out, "trainyard_frames_rejected_total", sz, (double)m->info.rejected_size);
    ty_prom_sample(out, "trainyard_frames_rejected_total", dec, (double)m->info.rejected_decode);
    ty_one(out, "trainyard_auth_refused_total", "counter",
           "Handshakes refused: unknown keys, plaintext peers, wrong worker ids.",
           (double)m->info.auth_refused);
    ty_blobs_stats_t bs = {0};
    if (m->blobs)
        ty_blobs_stats(m->blobs, &bs);
    ty_prom_family(out, "trainyard_artifact_bytes_total", "counter",
                   "Artifact bytes received (uploads) and sent (downloads, inputs).");
    const char *in[] = {"direction", "in", NULL}, *o[] = {"direction", "out", NULL};
    ty_prom_sample(out, "trainyard_artifact_bytes_total", in, (double)bs.bytes_in);
    ty_prom_sample(out, "trainyard_artifact_bytes_total", o, (double)bs.bytes_out);
    ty_one(out, "trainyard_artifacts_stored_total", "counter", "Artifacts stored (new content).",
           (double)bs.stored);
    ty_one(out, "trainyard_artifacts_deduplicated_total", "counter",
           "Artifacts whose content was stored already.", (double)bs.deduplicated);
}
