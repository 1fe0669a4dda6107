/* trainyard-master internals.  One libuv loop thread owns everything here.
 *
 * Modules:
 *   state.c    socket I/O (receive with rejection counts, the outbox) and
 *              write-ahead persistence: per-tick batched, epoch-guarded etcd
 *              txns; the outbox of messages released only after the batch that
 *              precedes them is durable; rebuild from etcd.
 *   election.c the leader key, its lease and the fencing epoch.
 *   sched.c    runs and tasks: readiness, trigger rules, retries, ready queue,
 *              placement on workers, cancel.
 *   workers.c  the worker socket: registration, heartbeats, liveness, results,
 *              logs and report lines.
 *   api.c      the client socket: submit, runs, status, logs, cancel, workers, info. */
#ifndef TY_MASTER_MASTER_H
#define TY_MASTER_MASTER_H

#include "common/dag.h"
#include "common/etcd.h"
#include "common/wire.h"

#include <czmq.h>
#include <stdint.h>
#include <uv.h>

typedef struct ty_run ty_run_t;
typedef struct ty_task ty_task_t;
typedef struct ty_worker ty_worker_t;
typedef struct ty_master ty_master_t;
typedef struct ty_waiter ty_waiter_t;

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
    int waiting_why; /* reason says why it waits to be placed (not an outcome) */
    uint32_t *gpu_ids;
    size_t n_gpu;
    double progress;
    char *progress_text;
    ty_metric_t *metrics;
    size_t nmetrics;
    /* resources charged to `worker` while running */
    double charged_cpus;
    uint64_t charged_mem;
    uint64_t charged_gpus; /* bitmask */
    int charged;
    int adopted;        /* after a rebuild: a worker re-registered with it */
    uint64_t ready_seq; /* heap tie-break: submit order */
    int heap_idx;       /* index in the ready heap, -1 when not in it */
    int delayed;        /* waiting for not_before_ms */
    int *children;      /* indexes of dependent tasks */
    size_t nchildren;
    int dirty;
    ty_task_t *dirty_next;
    int inflight; /* batches in flight that write this task */
};

struct ty_run {
    char *id;
    Ty__PipelineSpec *spec;
    Ty__KV **params;
    size_t nparams;
    unsigned state;
    int64_t created_ms, started_ms, finished_ms;
    uint64_t seq;
    ty_task_t *tasks;
    size_t ntasks, nsettled;
    uint64_t version; /* bumped on every change; status long-polls wait on it */
    int dirty;
    ty_run_t *dirty_next;
    int inflight;
    ty_waiter_t *waiters;
};

struct ty_worker {
    char *id;
    char *hostname;
    zframe_t *identity; /* ROUTER routing id */
    double cpus;
    uint64_t mem_mb;
    uint32_t gpus;
    Ty__KV **labels;
    size_t nlabels;
    double used_cpus;
    uint64_t used_mem;
    uint64_t gpu_busy; /* bitmask */
    unsigned running;
    int64_t last_seen; /* monotonic ms */
    int up;
    int gone;       /* deregistered */
    int known_only; /* loaded from etcd, not yet re-registered */
};

/* A parked client request (status long-poll or logs follow). */
struct ty_waiter {
    zframe_t *identity;
    uint64_t req_id;
    int is_logs;
    uint64_t wait_after; /* status */
    char *task;          /* logs */
    uint32_t attempt;
    uint64_t offset;
    int64_t deadline; /* monotonic ms */
    ty_waiter_t *next;
};

typedef struct ty_outmsg {
    zsock_t *sock;
    zframe_t *identity;
    zframe_t *payload;
    struct ty_outmsg *next;
} ty_outmsg_t;

/* A batch of state changes committed as one (or, past 120 ops, a few) txns. */
typedef struct ty_batch {
    ty_run_t *runs;
    ty_task_t *tasks;
    char **raw_keys; /* extra puts (pipeline specs, worker records) */
    uint8_t **raw_vals;
    size_t *raw_lens;
    size_t nraw;
    ty_outmsg_t *out, **out_tail;
    size_t nops;
} ty_batch_t;

/* A batch being committed.  Its records are listed in arrays (the objects'
 * dirty links already serve the next open batch). */
typedef struct ty_flight {
    ty_master_t *m;
    ty_run_t **runs;
    ty_task_t **tasks;
    size_t nruns, ntasks;
    ty_batch_t raw; /* raw puts and the outbox */
    int pending;    /* txns not yet answered */
    int failed, done;
    struct ty_flight *next;
} ty_flight_t;

#define TY_MAX_FLIGHTS 4

typedef struct {
    char *node_id;
    char *etcd;
    char *prefix; /* "/trainyard/" */
    char *worker_ep, *client_ep;
    char *data_dir;
    size_t max_frame;
    int64_t heartbeat_ms, worker_lease_ms;
    int64_t leader_ttl_s;
    int64_t lost_limit;
} ty_master_opts_t;

struct ty_master {
    ty_master_opts_t o;
    uv_loop_t *loop;
    ty_etcd_t *etcd;
    zsock_t *wsock, *csock;
    ty_wire_poll_t *wpoll, *cpoll;
    uv_check_t check;     /* end of tick: schedule, then flush the batch */
    uv_timer_t sweep;     /* worker liveness, waiter deadlines */
    uv_timer_t delay;     /* retry back-off */
    uv_timer_t keepalive; /* leader lease */
    uv_timer_t retry;     /* etcd batch retry after a failure */
    uv_signal_t sigint, sigterm;

    /* election */
    void (*elected)(ty_master_t *m);
    int64_t lease_id;
    uint64_t epoch;
    ty_etcd_watch_t *leader_watch;
    int leader;
    int serving;
    int64_t grace_until; /* monotonic: re-registration grace after rebuild */

    /* state */
    zhashx_t *runs;   /* id -> ty_run_t* */
    ty_run_t **order; /* runs by submit order */
    size_t nruns, cap_runs;
    uint64_t next_seq;
    zhashx_t *workers; /* id -> ty_worker_t* */
    ty_task_t **heap;  /* ready queue */
    size_t nheap, cap_heap;
    ty_task_t **delayed;
    size_t ndelayed, cap_delayed;
    int need_schedule;
    int workers_changed; /* one came or went: queued tasks' reasons are rechecked */

    /* persistence */
    ty_batch_t open;      /* collecting this tick's changes */
    ty_flight_t *flights; /* committing, oldest first; outboxes leave in this order */
    size_t nflights;

    /* counters */
    uint64_t rejected_size, rejected_decode, txns, ops, dispatches;
};

/* state.c */
void ty_state_init(ty_master_t *m);
/* Drop what was never committed (shutdown). */
void ty_state_fini(ty_master_t *m);
void ty_state_mark_run(ty_master_t *m, ty_run_t *r);
void ty_state_mark_task(ty_master_t *m, ty_task_t *t);
/* Takes ownership of val. */
void ty_state_put_raw(ty_master_t *m, const char *key, uint8_t *val, size_t len);
/* Queue env for identity on sock, released once everything changed so far is durable. */
void ty_state_send(ty_master_t *m, zsock_t *sock, zframe_t *identity, Ty__Envelope *env);
void ty_state_flush(ty_master_t *m);
/* Receive one message from a ROUTER socket; counts and logs rejected ones.
 * Returns 0 with *id and *env (caller frees) or a negative code. */
int ty_state_recv(ty_master_t *m, zsock_t *sock, zframe_t **id, Ty__Envelope **env);
int ty_state_idle(const ty_master_t *m);
/* Load every run, task and worker record; calls done(m, status) when finished. */
void ty_state_rebuild(ty_master_t *m, void (*done)(ty_master_t *m, int status));
/* A record view of t / r pointing into them; clear frees only the view's arrays. */
void ty_state_task_record(const ty_task_t *t, Ty__TaskRecord *rec);
void ty_state_task_record_clear(Ty__TaskRecord *rec);
void ty_state_run_record(const ty_run_t *r, Ty__RunRecord *rec, int with_spec);
char *ty_state_key(const ty_master_t *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* election.c */
void ty_election_start(ty_master_t *m, void (*elected)(ty_master_t *m));
void ty_election_stop(ty_master_t *m);

/* sched.c */
ty_run_t *ty_sched_run_new(ty_master_t *m, const char *id, Ty__PipelineSpec *spec, Ty__KV **params,
                           size_t nparams);
void ty_sched_run_start(ty_master_t *m, ty_run_t *r);
void ty_sched_run_free(ty_run_t *r);
void ty_sched_index_run(ty_master_t *m, ty_run_t *r);
void ty_sched_enqueue(ty_master_t *m, ty_task_t *t);
void ty_sched_pass(ty_master_t *m);
/* Whether a task's reason says why it waits to be placed (the pass sets
 * such reasons; dispatch clears them). */
int ty_sched_is_wait_reason(const char *reason);
void ty_sched_task_result(ty_master_t *m, ty_task_t *t, const Ty__TaskResult *res);
void ty_sched_requeue_lost(ty_master_t *m, ty_task_t *t, const char *why);
int ty_sched_cancel_run(ty_master_t *m, ty_run_t *r);
void ty_sched_release(ty_master_t *m, ty_task_t *t);
void ty_sched_charge(ty_master_t *m, ty_task_t *t, ty_worker_t *w);
void ty_sched_delay_timer(ty_master_t *m);
/* After a rebuild: re-queue queued tasks, re-evaluate waiting ones, and leave
 * running ones to be adopted by their re-registering workers. */
void ty_sched_recover(ty_master_t *m);
ty_task_t *ty_sched_find_task(ty_master_t *m, const char *run_id, const char *task);
void ty_sched_touch(ty_master_t *m, ty_run_t *r);

/* workers.c */
void ty_workers_on_message(void *arg);
void ty_workers_sweep(ty_master_t *m);
void ty_workers_free(ty_worker_t *w);
void ty_workers_send_cancel(ty_master_t *m, ty_task_t *t);
/* Log file of one attempt (heap path). */
char *ty_workers_log_path(ty_master_t *m, const char *run, const char *task, unsigned attempt);

/* api.c */
void ty_api_on_message(void *arg);
void ty_api_notify(ty_master_t *m, ty_run_t *r, int logs_only);
void ty_api_expire_waiters(ty_master_t *m);

#endif
