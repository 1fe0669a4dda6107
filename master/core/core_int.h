/* The control core's state.  Readable by the request handler (master/api.c)
 * and by tests; changed only through ty_core_step(). */
#ifndef TY_MASTER_CORE_CORE_INT_H
#define TY_MASTER_CORE_CORE_INT_H

#include "master/core/core.h"

#include "common/dag.h"
#include "common/prom.h"
#include "common/util.h"

#include <czmq.h>

typedef struct ty_run ty_run_t;
typedef struct ty_task ty_task_t;

#define TY_CACHE_PARTS 5 /* command, env, kind/np/gpus, inputs, outputs */
typedef struct ty_worker ty_worker_t;
typedef struct ty_part ty_part_t;

typedef struct {
    char *name;
    double value;
    int64_t step;
} ty_metric_t;

struct ty_task {
    ty_run_t *run;
    Ty__TaskSpec *spec; /* owned by run->spec */
    unsigned state, attempt, failures, lost;
    char *worker; /* worker id of the current attempt, or NULL */
    int exit_code, term_signal;
    int64_t queued_ms, started_ms, finished_ms, not_before_ms;
    char *reason;
    int waiting_why;  /* reason says why it waits to be placed (not an outcome) */
    uint64_t why_gen; /* the workers' wgen when that reason was worked out */
    uint32_t *gpu_ids;
    size_t n_gpu;
    double progress;
    char *progress_text;
    ty_metric_t *metrics;
    size_t nmetrics;
    Ty__ArtifactRef **outputs; /* of the attempt that succeeded (deep copies) */
    size_t noutputs;
    Ty__KV **tags; /* `tag K V` lines: the latest value per key, at most 64 */
    size_t ntags;
    /* cache: true (cache.c): its key when it became ready, the digests of
     * the key's parts, why it hit or missed, and whether a hit's blobs are
     * being looked for (it stays waiting meanwhile) */
    char *cache_key;
    char *cache_parts[TY_CACHE_PARTS];
    char *cache_note;
    int cache_checking;
    /* while running: its worker, the resources charged there, and its place
     * in the worker's list of running attempts */
    ty_worker_t *w;
    ty_task_t *wnext, *wprev;
    double charged_cpus;
    uint64_t charged_mem;
    uint64_t charged_gpus; /* bitmask */
    int charged;
    int adopted;        /* after a rebuild: a worker re-registered with it */
    uint64_t sent_seq;  /* Envelope.seq of its Dispatch; 0 when dispatched before a restart */
    uint64_t ready_seq; /* heap tie-break: submit order */
    int heap_idx;       /* index in the ready heap, -1 when not in it */
    int delayed;        /* waiting for not_before_ms */
    int *children;      /* indexes of dependent tasks */
    size_t nchildren;
    int dirty;
    uint64_t mark; /* when it last changed (the order records are written in) */
    ty_task_t *dirty_next;
    int inflight; /* batches in flight that write this task */
    /* an MPI gang across workers (gang.c): part 0 is the task itself (w,
     * charged_*, gpu_ids), with ranks0 of its ranks; parts 1.. here */
    ty_part_t *parts;
    size_t nparts;
    uint32_t ranks0; /* 0: all of them (one worker) */
    int was_gang;    /* loaded running with parts on several workers */
    /* a part failed (or was lost: gang_lost): the gang ends with this
     * reason once mpirun, part 0, has ended (cancelled), so no two
     * attempts' mpiruns ever run at once */
    char *gang_why;
    int gang_lost;
    /* the parts of its last gang attempt across workers, kept once it ended
     * (its record and status say where it ran); owned copies */
    Ty__GangPart **ended_parts;
    size_t nended_parts;
};

/* One part past the first of a gang attempt: its ranks on its worker. */
struct ty_part {
    ty_task_t *t;
    unsigned index; /* 1.. */
    uint32_t ranks;
    ty_worker_t *w;
    ty_part_t *wnext, *wprev; /* in w->parts */
    double cpus;
    uint64_t mem;
    uint64_t gpus; /* bitmask */
    uint32_t *gpu_ids;
    size_t n_gpu;
    uint64_t sent_seq; /* Envelope.seq of its Dispatch */
    int charged;       /* 0 once its daemon ended or it was released */
};

struct ty_run {
    char *id;
    Ty__PipelineSpec *spec;
    Ty__KV **params;
    size_t nparams;
    unsigned state;
    int64_t created_ms, started_ms, finished_ms;
    char *request_id; /* the submit's, or NULL */
    char *retry_of;   /* the run a retry took its other tasks from, or NULL */
    char *schedule;   /* the schedule that started it (at fire_s), or NULL */
    char *owner;      /* the user whose key submitted it, or NULL (no keys) */
    int64_t fire_s;
    uint64_t seq;
    ty_task_t *tasks;
    uint32_t *by_name; /* task indexes sorted by name: lookups in O(log n) */
    size_t ntasks, nsettled;
    uint64_t version; /* bumped on every change; status long-polls wait on it */
    int dirty;
    uint64_t mark;
    ty_run_t *dirty_next;
    int inflight;
    int notify; /* its waiters are to be told at the next flush */
    ty_run_t *notify_next;
    size_t order_idx;    /* its place in core->order */
    ty_run_t *done_next; /* finished runs, oldest first (retention) */
};

#define TY_WORKER_MAX_GPUS 64 /* the GPU bitmask */

struct ty_worker {
    char *id;
    char *hostname;
    uint8_t *peer; /* transport routing id */
    size_t peer_len;
    double cpus;
    uint64_t mem_mb;
    uint32_t gpus;
    Ty__KV **labels;
    size_t nlabels;
    double used_cpus;
    uint64_t used_mem;
    uint64_t gpu_busy; /* bitmask */
    unsigned running;
    ty_task_t *tasks;  /* attempts the core considers running here */
    ty_part_t *parts;  /* and the parts of gangs whose part 0 is elsewhere */
    char *address;     /* where other hosts reach it (MPI gangs) */
    int64_t last_seen; /* monotonic ms */
    int up;
    int gone;        /* deregistered */
    int known_only;  /* loaded from etcd, not yet re-registered */
    int placeholder; /* only named by a running task's record */
    int draining;    /* takes no new attempts (TY_EV_DRAIN); kept in its record */
    /* what its last heartbeat said it uses (/metrics): its attempts'
     * processes, and the worker daemon */
    double attempts_cpu_s, self_cpu_s;
    uint64_t attempts_rss, self_rss;
    size_t order; /* registration order: the tie-break */
    int pidx;     /* index in the placement heap, -1 when not in it */
};

/* A submit's request id and the run it made. */
struct ty_request {
    char *id, *run_id;
    int64_t at; /* wall ms */
    struct ty_request *next;
};

typedef struct ty_outmsg {
    ty_peer_kind_t kind;
    uint8_t *peer;
    size_t peer_len;
    uint8_t *data;
    size_t len;
    char *run; /* a Dispatch: of this attempt (dropped if no longer current when it would leave) */
    uint32_t task_ix, attempt;
    struct ty_outmsg *next;
} ty_outmsg_t;

/* Changes collected since the last batch left, and the messages behind them. */
typedef struct {
    ty_run_t *runs;
    ty_task_t *tasks;
    ty_put_t *puts; /* keyed records (pipelines/, workers/), one per key */
    uint64_t *put_marks;
    size_t nputs;
    ty_outmsg_t *out, **out_tail;
    size_t nops;
} ty_batch_t;

/* One record of a batch: a run, a task or a keyed put (by index). */
typedef struct {
    uint64_t mark;
    ty_run_t *run;
    ty_task_t *task;
    size_t put;
} ty_item_t;

/* A batch being committed: one txn of at most 120 records, in the order
 * they last changed (the objects' dirty links already serve the next open
 * batch).  Records past 120 wait for the next flight; as the txns commit in
 * order, the store always holds the changes up to some point, and every
 * such prefix makes sense (a run ends after its tasks do; a task is queued
 * after the upstreams it waited for). */
typedef struct ty_flight {
    uint64_t id;
    uint64_t seq0;  /* the chain number of its txn, once sent */
    ty_put_t *snap; /* its txn's puts, encoded when it started */
    size_t nsnap;
    ty_item_t *items;
    size_t nitems;
    ty_batch_t raw; /* keyed puts and the outbox */
    int pending;    /* txns not yet answered */
    int64_t sent;   /* monotonic: when its txn was last sent */
    int failed, done;
    int behind; /* answered TY_ECONFLICT: an earlier txn was not in yet */
    struct ty_flight *next;
} ty_flight_t;

#define TY_MAX_FLIGHTS 4
#define TY_TXN_MAX_OPS 120 /* etcd's default cap is 128 per txn */

struct ty_core {
    ty_core_opts_t o;
    ty_time_t now;
    uint64_t rng;
    int serving, fenced;
    int64_t grace_until; /* monotonic: re-registration grace after a rebuild */
    int64_t next_sweep;  /* monotonic: worker liveness */
    int64_t next_gc;     /* monotonic: old runs dropped from the store */

    /* effects, oldest first */
    ty_fx_t *fx;
    size_t fx_head, fx_len, fx_cap;

    /* runs */
    zhashx_t *runs;   /* id -> ty_run_t* */
    ty_run_t **order; /* runs by submit order; NULL where one was let go */
    size_t nruns, cap_runs, nholes;
    size_t nlive;                     /* runs in memory */
    ty_run_t *done_head, **done_tail; /* finished runs in memory, in finish order */
    size_t ndone_runs, ndone_tasks;
    uint64_t released;
    uint64_t next_seq;
    ty_run_t *notify; /* runs whose waiters hear of a change at the next flush */

    /* workers, in registration order */
    zhashx_t *workers; /* id -> ty_worker_t* */
    ty_worker_t **wlist;
    size_t nworkers, cap_workers;
    /* workers that can take tasks, most free CPUs first (queue.c) */
    ty_worker_t **pheap;
    size_t npheap, cap_pheap;

    /* ready queue and back-off */
    ty_task_t **heap;
    size_t nheap, cap_heap;
    ty_task_t **delayed;
    size_t ndelayed, cap_delayed;
    int64_t next_delay; /* wall ms of the earliest back-off end, 0 none */
    int need_schedule;
    int workers_changed; /* one came or went: queued tasks' reasons are rechecked */
    uint64_t wgen;       /* bumped when one comes or goes */

    /* persistence */
    ty_batch_t open;
    ty_flight_t *flights; /* oldest first; outboxes leave in this order */
    size_t nflights;
    uint64_t next_flight;
    uint64_t seq;            /* the last txn number given out (leader.seq) */
    uint64_t mark;           /* changes so far: the order records are written in */
    zhashx_t *inflight_keys; /* keyed puts in flight -> count */
    int64_t retry_at;        /* monotonic: resend failed batches */
    int64_t failing_since;   /* monotonic: a txn failed and none committed since (0: none) */

    /* counters */
    uint64_t txns, ops, dispatches, rejected_msgs, behind;
    /* for /metrics (master/expose.c): a task's ready -> dispatched,
     * dispatched -> running (its process started, by its worker's clock)
     * and running -> done; tasks and runs that ended, by state */
    ty_hist_t h_ready, h_start, h_run;
    uint64_t tasks_ended[TY_TASK_NSTATES], runs_ended[TY_RUN_NSTATES];
    uint64_t msg_seq; /* the last Envelope.seq sent to a worker */

    /* submits' request ids of the last hour -> run id, oldest first */
    zhashx_t *requests;
    /* the step cache (cache.c): key -> entry, "pipeline/task" -> the key of
     * its latest entry (for saying why a key missed) */
    zhashx_t *cache, *cache_last;
    zhashx_t *scheds;     /* sched.c: name -> ty_sched_t* */
    zhashx_t *models;     /* models.c: name -> ty_model_t* */
    int64_t sched_due_ms; /* wall ms of the next fire of any schedule (0: none) */
    struct ty_request *req_head, **req_tail;
    size_t nrequests;
    const char *last_reject;
};

/* ---- core.c ---- */
#define TY_REQUEST_KEEP_MS (3600 * 1000) /* a repeated submit within this gets the same run */
#define TY_REQUEST_MAX 100000            /* ... and at most this many are remembered */
void ty_core_request_seen(ty_core_t *c, const char *request_id, const char *run_id,
                          int64_t at_wall_ms);
void ty_core_emit(ty_core_t *c, const ty_fx_t *fx); /* takes ownership of fx's buffers */
/* A deep copy of any message through its encoding, owned like an unpacked
 * one (free with its free_unpacked). */
void *ty_pb_dup(const ProtobufCMessage *m);
/* An ErrorReply to ev's client, once what is written before it is durable. */
void ty_core_reply_error(ty_core_t *c, const ty_ev_t *ev, int code, const char *msg);
void ty_core_notify(ty_core_t *c, ty_run_t *r);
ty_run_t *ty_core_find_run(const ty_core_t *c, const char *id);
ty_task_t *ty_core_find_task(const ty_core_t *c, const char *run_id, const char *task);
ty_worker_t *ty_core_find_worker(const ty_core_t *c, const char *id);
uint64_t ty_core_rand(ty_core_t *c);
/* Queue a packed envelope for peer behind the pending writes (takes data). */
void ty_core_send(ty_core_t *c, ty_peer_kind_t kind, const uint8_t *peer, size_t peer_len,
                  uint8_t *data, size_t len);
void ty_core_send_env(ty_core_t *c, ty_peer_kind_t kind, const uint8_t *peer, size_t peer_len,
                      Ty__Envelope *env);
/* A Dispatch of t's current attempt to w (its worker, or a part's). */
void ty_core_send_dispatch(ty_core_t *c, const ty_task_t *t, const ty_worker_t *w,
                           Ty__Envelope *env);

/* ---- runs.c: runs and tasks ---- */
ty_run_t *ty_runs_new(const char *id, Ty__PipelineSpec *spec, Ty__KV **params, size_t nparams);
void ty_runs_free(ty_run_t *r);
/* The index of r's task called name, or -1. */
int ty_runs_task_index(const ty_run_t *r, const char *name);
void ty_runs_index(ty_core_t *c, ty_run_t *r);
void ty_runs_start(ty_core_t *c, ty_run_t *r);
void ty_runs_enqueue(ty_core_t *c, ty_task_t *t);
void ty_runs_result(ty_core_t *c, ty_task_t *t, const Ty__TaskResult *res);
void ty_runs_requeue_lost(ty_core_t *c, ty_task_t *t, const char *why);
int ty_runs_cancel(ty_core_t *c, ty_run_t *r);
void ty_runs_due(ty_core_t *c);     /* back-off ends */
void ty_runs_recover(ty_core_t *c); /* after loading */
/* The index key of a run that ended at finished_ms (heap string). */
char *ty_runs_done_key(const char *run_id, int64_t finished_ms);
/* Let finished runs go past the retention (at the end of a tick). */
void ty_runs_retain(ty_core_t *c);
/* A condition (when:) on r's metrics: 1 true, 0 false (*why says so, with
 * the values), -1 undecided (*why: a name without a value). */
int ty_runs_when(const ty_run_t *r, const char *when, char **why);
void ty_runs_set_reason(ty_task_t *t, char *reason);
/* Which tasks of finished run old a retry runs again (rerun[i] set): from
 * and every task that depends on it, and every task that did not succeed
 * and what depends on those.  0, or TY_EINVAL / TY_ESTATE with *err. */
int ty_runs_rerun_set(const ty_run_t *old, const char *from, unsigned char *rerun, char **err);
/* A task settled (its children evaluated, the run maybe finished). */
void ty_runs_settle(ty_core_t *c, ty_task_t *t);

/* cache.c: the step cache */
void ty_cache_init(ty_core_t *c);
void ty_cache_fini(ty_core_t *c);
/* t (cache: true) is ready: 1 when the cache took it (a hit whose blobs
 * are being looked for: a CHECK effect; t stays waiting), 0 to queue it
 * (a miss; t->cache_key and cache_note set). */
int ty_cache_ready(ty_core_t *c, ty_task_t *t);
/* The shell's answer to a CHECK: reuse (t cached) or run it after all. */
void ty_cache_checked(ty_core_t *c, const char *run, const char *task, int ok);
/* t succeeded: cache/<key> with its outputs. */
void ty_cache_succeeded(ty_core_t *c, ty_task_t *t);
/* gc deleted these blobs: the entries whose outputs name one are
 * forgotten, here and (FORGET effects) in the store. */
/* ---- models.c: the model registry ---- */
void ty_models_init(ty_core_t *c);
void ty_models_fini(ty_core_t *c);
void ty_models_load(ty_core_t *c, const char *key, const uint8_t *val, size_t len); /* key
                                                                     relative to models/ */
/* register, alias, promote (ev->msg; a register's run in ev->retry_of) */
int ty_models_request(ty_core_t *c, const ty_ev_t *ev);
/* A result's `register` lines: a reason they cannot be (heap), or NULL;
 * then, once it succeeded, the versions they make. */
char *ty_models_check_result(const ty_task_t *t, const Ty__TaskResult *res);
void ty_models_from_result(ty_core_t *c, const ty_task_t *t, const Ty__TaskResult *res);
const char *ty_models_name_problem(const char *name); /* NULL: a good model name */
/* Views for the request handler (borrowed). */
size_t ty_models_list(ty_core_t *c, Ty__ModelRecord ***out); /* free *out only */
int ty_models_find(ty_core_t *c, const char *name, const Ty__ModelRecord **rec,
                   Ty__ModelVersion *const **versions, size_t *nv, Ty__AliasMove *const **moves,
                   size_t *nh);
const Ty__ModelVersion *ty_models_version(ty_core_t *c, const char *name, uint32_t version);
uint32_t ty_models_alias(ty_core_t *c, const char *name, const char *alias);
/* Every registered version's blob into keep (gc keeps them). */
void ty_models_keep(ty_core_t *c, zhashx_t *keep);

/* ---- sched.c: cron schedules ---- */
void ty_sched_init(ty_core_t *c);
void ty_sched_fini(ty_core_t *c);
void ty_sched_load(ty_core_t *c, const char *name, const uint8_t *val, size_t len);
/* Start the runs of the fires that are due (at TICK, serving). */
void ty_sched_tick(ty_core_t *c);
/* Each schedule's record (its fired and skipped counts), in no order. */
void ty_sched_each(const ty_core_t *c, void (*fn)(void *arg, const Ty__ScheduleRecord *rec),
                   void *arg);
/* add, pause, resume, rm (the shell validated an add); the reply once durable */
int ty_sched_request(ty_core_t *c, const ty_ev_t *ev);
void ty_sched_flush(ty_core_t *c);
/* One schedule's status (record borrowed; the next nfires fire times);
 * clear frees what it made.  Names: sorted copies to free. */
void ty_sched_status(ty_core_t *c, const char *name, Ty__ScheduleStatus *st, int nfires);
void ty_sched_status_clear(Ty__ScheduleStatus *st);
size_t ty_sched_names(ty_core_t *c, char ***out);
void ty_cache_blobs_gone(ty_core_t *c, char *const *shas, size_t n);
/* A cache/<key> record read back at load. */
void ty_cache_load(ty_core_t *c, const char *key, const uint8_t *val, size_t len);
/* Free t's cache fields. */
void ty_cache_task_clear(ty_task_t *t);

/* Replace t's tags with copies of n pairs. */
void ty_runs_set_tags(ty_task_t *t, Ty__KV *const *tags, size_t n);
/* Replace t's outputs with copies of n refs. */
void ty_runs_set_outputs(ty_task_t *t, Ty__ArtifactRef *const *refs, size_t n);
/* The first output t's spec declares that res does not carry (a path
 * missing, or a glob that matched nothing), or NULL. */
const char *ty_runs_missing_output(const ty_task_t *t, const Ty__TaskResult *res);
/* Whether an upload of size bytes named name fits run_id's budget (limit:
 * --max-run-artifact-bytes, 0 none): what its tasks stored plus size.  0,
 * or TY_ETOOBIG with *why naming the limit. */
int ty_runs_upload_fits(ty_core_t *c, const char *run_id, const char *name, uint64_t size,
                        uint64_t limit, char **why);
/* The stored output a "TASK/OUTPUT" reference names in run r, or NULL. */
const Ty__ArtifactRef *ty_runs_find_output(const ty_run_t *r, const char *ref);
/* t starts running on w (dispatch or adoption): linked into w's list. */
void ty_runs_attach(ty_task_t *t, ty_worker_t *w);
/* t no longer runs: its resources go back to its worker; unlinked. */
void ty_runs_release(ty_core_t *c, ty_task_t *t);

/* ---- queue.c: the ready heap and placement ---- */
void ty_queue_push(ty_core_t *c, ty_task_t *t);
void ty_queue_remove(ty_core_t *c, ty_task_t *t);
void ty_queue_pass(ty_core_t *c);
void ty_queue_charge(ty_core_t *c, ty_task_t *t, ty_worker_t *w);
/* A newly queued task that no worker could hold says so at once. */
void ty_queue_explain_new(ty_core_t *c, ty_task_t *t);
/* w's size, use, or whether it can take tasks changed: placement's index
 * follows. */
void ty_queue_worker_changed(ty_core_t *c, ty_worker_t *w);
void ty_queue_worker_gone(ty_core_t *c, ty_worker_t *w);
double ty_queue_need_cpus(const Ty__TaskSpec *s);
int ty_queue_labels_fit(const ty_worker_t *w, const ty_task_t *t);
/* Why no worker could ever hold a task of spec s (heap), or NULL. */
char *ty_queue_never_fits(ty_core_t *c, const Ty__TaskSpec *s);
uint64_t ty_queue_need_mem(const Ty__TaskSpec *s);
uint32_t ty_queue_need_gpus(const Ty__TaskSpec *s);

/* ---- gang.c: MPI gangs across workers ---- */
typedef struct {
    ty_worker_t **w; /* part 0 first */
    uint32_t *ranks;
    size_t n;
} ty_plan_t;
int ty_gang_spans(const Ty__TaskSpec *s); /* may span workers */
int ty_gang_plan(ty_core_t *c, const ty_task_t *t, int empty, ty_plan_t *p);
void ty_gang_plan_free(ty_plan_t *p);
/* t (placed on p->w[0]) gets its parts on the others, charged there. */
void ty_gang_attach(ty_core_t *c, ty_task_t *t, const ty_plan_t *p);
/* Every part's resources back, the parts still running cancelled. */
void ty_gang_release(ty_core_t *c, ty_task_t *t);
ty_part_t *ty_gang_part_on(const ty_task_t *t, const ty_worker_t *w);
/* A part's daemon ended: its share is free, or (failed) the gang ends. */
void ty_gang_part_result(ty_core_t *c, ty_task_t *t, ty_part_t *pt, const Ty__TaskResult *res);
/* A part failed or was lost (why): the other parts are cancelled now,
 * mpirun too, and its result ends the attempt with why. */
void ty_gang_end(ty_core_t *c, ty_task_t *t, const char *why, int lost);
/* Part 0's result res: 1 when an ending gang took it (failed or lost with
 * the part's reason), 0 otherwise. */
int ty_gang_settle(ty_core_t *c, ty_task_t *t, const Ty__TaskResult *res);
/* What t needs and what the workers hold of it, for a wait reason. */
void ty_gang_describe(ty_core_t *c, const ty_task_t *t, ty_buf_t *b);

/* ---- fleet.c: workers ---- */
void ty_fleet_message(ty_core_t *c, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env);
void ty_fleet_sweep(ty_core_t *c);
/* The worker whose key was revoked is lost now (TY_EV_REVOKED). */
void ty_fleet_revoke(ty_core_t *c, const char *id);
/* TY_EV_DRAIN: worker key drains (status 1) or takes attempts again (0). */
int ty_fleet_drain(ty_core_t *c, const ty_ev_t *ev);
void ty_fleet_free(ty_worker_t *w);
void ty_fleet_send_cancel(ty_core_t *c, ty_task_t *t);
void ty_fleet_send_cancel_on(ty_core_t *c, const ty_task_t *t, ty_worker_t *w);
/* The worker named id, made as a placeholder when unknown (rebuild). */
ty_worker_t *ty_fleet_get(ty_core_t *c, const char *id);
void ty_fleet_load(ty_core_t *c, const Ty__WorkerRecord *rec);

/* ---- persist.c: the write-ahead batches ---- */
void ty_persist_init(ty_core_t *c);
void ty_persist_fini(ty_core_t *c);
void ty_persist_run(ty_core_t *c, ty_run_t *r);
void ty_persist_task(ty_core_t *c, ty_task_t *t);
void ty_persist_put(ty_core_t *c, char *key, uint8_t *val, size_t len); /* takes key and val */
void ty_persist_queue(ty_core_t *c, ty_outmsg_t *o);
void ty_persist_flush(ty_core_t *c);
void ty_persist_done(ty_core_t *c, uint64_t flight, int status);
void ty_persist_retry(ty_core_t *c);
int ty_persist_idle(const ty_core_t *c);
/* How long the store has not confirmed a write: the oldest txn out
 * unanswered, or since a txn failed with none committed after it (0: fine). */
int64_t ty_persist_stalled_ms(const ty_core_t *c);
/* Record views pointing into t / r; clear frees only the view's arrays. */
void ty_persist_task_record(const ty_task_t *t, Ty__TaskRecord *rec);
void ty_persist_task_record_clear(Ty__TaskRecord *rec);
/* A gang's parts as its record has them, part 0 first (live: t's parts),
 * into rec; ty_persist_task_record_clear frees them. */
void ty_persist_gang_parts(const ty_task_t *t, Ty__TaskRecord *rec);
/* t's ended_parts freed. */
void ty_task_ended_parts_free(ty_task_t *t);
void ty_persist_run_record(const ty_run_t *r, Ty__RunRecord *rec, int with_spec);
/* Rebuild: one record read back. */
void ty_persist_load(ty_core_t *c, const char *key, const uint8_t *val, size_t len);
/* A run from its stored record, not indexed anywhere (free with
 * ty_runs_free), or NULL; then its tasks' records into it. */
ty_run_t *ty_persist_decode_run(const uint8_t *val, size_t len);
void ty_persist_decode_task(ty_run_t *r, const char *name, const uint8_t *val, size_t len);

#endif
