/* The deterministic simulator's world (see sim.c). */
#ifndef TY_MASTER_SIM_SIM_H
#define TY_MASTER_SIM_SIM_H

#include "master/core/core_int.h"

#include <stddef.h>
#include <stdint.h>

#define SIM_HEARTBEAT_MS 100
#define SIM_LEASE_MS 500
#define SIM_SETTLE_MS 60000
#define SIM_RETAIN_RUNS 8

typedef struct {
    size_t workers, runs;
    int64_t ms;
    int quiet;
} sim_opts_t;

typedef struct sim_worker sim_worker_t;

typedef struct sim_msg {
    int64_t at;
    sim_worker_t *w; /* the worker it goes to or comes from */
    Ty__Envelope *env;
    struct sim_msg *next;
} sim_msg_t;

/* An attempt a simulated worker runs. */
typedef struct sim_attempt {
    char *run, *task;
    uint32_t attempt;
    uint32_t part; /* of an MPI gang across workers (0: the whole, or part 0) */
    uint64_t epoch;
    int64_t started_at, finish_at;
    int exit_code;
    struct sim_attempt *next;
} sim_attempt_t;

typedef struct sim_result {
    Ty__TaskResult *res; /* packed and unpacked copy */
    struct sim_result *next;
} sim_result_t;

struct sim_worker {
    char id[24];
    double cpus;
    uint32_t gpus;
    int alive;
    int64_t restart_at;   /* crashed: starts again then */
    int64_t silent_until; /* cut off from the master until then */
    int registered;
    uint64_t epoch;
    uint64_t seen_epoch, seen_seq; /* the newest master message */
    int64_t next_hb, last_master;
    int hb_unacked; /* heartbeats since an unacked result was last sent */
    sim_attempt_t *attempts;
    sim_result_t *unacked;
    int64_t up_last, down_last; /* per-direction order */
};

typedef struct sim_txn {
    uint64_t flight, epoch, seq;
    int gen;
    int64_t at;
    ty_put_t *puts;
    size_t nputs;
    struct sim_txn *next;
} sim_txn_t;

/* A client's submit: sent again with the same request id until a master
 * answers it with a run (the CLI's retries), also after a refusal. */
typedef struct sim_submit {
    char rid[24];
    char *yaml;
    int64_t resend_at;
    char *run_id; /* the answer */
    struct sim_submit *next;
} sim_submit_t;

typedef struct {
    sim_opts_t o;
    uint64_t seed, rng;
    int64_t now, wall0;
    ty_core_t *core;
    uint64_t epoch;       /* the current master's */
    uint64_t store_epoch; /* the leader key's: txns naming another fail */
    int gen, fenced;
    int faults, submitting;
    double p_master_crash, p_takeover, p_worker_crash, p_worker_silence, p_txn_fail,
        p_txn_ambiguous;
    /* the store: key -> zchunk_t*, and the version of leader.seq */
    zhashx_t *kv;
    uint64_t chain;
    sim_txn_t *txns;
    /* the world */
    sim_worker_t *workers;
    size_t nworkers;
    sim_msg_t *to_master, *to_workers;
    size_t nsubmitted, nfinished;
    int64_t next_submit;
    uint64_t req_ids;
    sim_submit_t *subs;
    zhashx_t *sub_by_req; /* "req_id" -> sim_submit_t* (borrowed) */
    /* a cron schedule ("* * * * *", catch-up all, concurrency allow) added
     * by a client until acknowledged; the wall clock is set forward now and
     * then (a fault), so that it fires often and across master crashes */
    uint64_t sched_req;
    int sched_acked;
    int64_t sched_resend_at;
    double p_clock_step;
    size_t clock_steps;
    zhashx_t *fire_runs;    /* the runs of its fires ever stored: id -> 1 */
    zhashx_t *dropped_runs; /* runs the history's drop deleted: id -> 1 */
    /* counters */
    uint64_t dispatches, replies;
    size_t masters, crashes, takeovers, worker_crashes, dropped, refused, resent;
    char *violation;
} sim_t;

uint64_t sim_rand(sim_t *s);
int64_t sim_between(sim_t *s, int64_t lo, int64_t hi);
int sim_chance(sim_t *s, double p);
void sim_msg_free(sim_msg_t *m);
/* One event into the core at the current time, its effects carried out,
 * then the invariants checked. */
void sim_core_step(sim_t *s, const ty_ev_t *ev);
void sim_worker_send(sim_t *s, sim_worker_t *w, Ty__Envelope *env);

/* sim_world.c: the store, workers and clients */
void sim_store_init(sim_t *s);
void sim_store_free(sim_t *s);
void sim_store_txn(sim_t *s, const ty_fx_t *fx);
void sim_store_deliver(sim_t *s);
void sim_store_crash(sim_t *s); /* the master dies: its txns in flight land or not */
void sim_store_load(sim_t *s);  /* feed every record to s->core */
/* As the master's shell does for a DROP effect: the runs indexed before. */
void sim_store_drop(sim_t *s, const char *before);
void sim_workers_init(sim_t *s);
void sim_worker_free(sim_worker_t *w);
void sim_worker_tick(sim_t *s, sim_worker_t *w);
void sim_worker_receive(sim_t *s, sim_worker_t *w, const Ty__Envelope *env);
void sim_worker_crash(sim_t *s, sim_worker_t *w);
sim_worker_t *sim_worker_by_peer(sim_t *s, const uint8_t *peer, size_t len);
void sim_client_init(sim_t *s);
void sim_client_free(sim_t *s);
/* The run stored with request id rid, or NULL (a copy). */
char *sim_stored_request(sim_t *s, const char *rid, const char *other_than);
void sim_client_tick(sim_t *s);
void sim_client_reply(sim_t *s, const uint8_t *data, size_t len);
int sim_all_done(sim_t *s);

/* sim_check.c: the invariants */
void sim_fail(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_check(sim_t *s);
void sim_check_send(sim_t *s, const ty_fx_t *fx);
void sim_check_put(sim_t *s, const char *key, const uint8_t *val, size_t len);
void sim_check_end(sim_t *s);

/* sim_bench.c */
int sim_bench(const sim_opts_t *o);

#endif
