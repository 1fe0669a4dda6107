/* The master's control core: runs, tasks, workers, the ready queue,
 * placement, retries and back-off, worker liveness and adoption, and the
 * write-ahead batching of every change, with no I/O at all.
 *
 * One entry point: ty_core_step() takes an event and the current wall and
 * monotonic time; what the core wants done comes out as effects, popped
 * with ty_core_fx_pop() in order: persist these records (a txn), send this
 * message to that peer, append these log bytes, tell the waiters of a run,
 * leadership is lost (fenced), drop old runs from the store (their index
 * `done/<finished, in seconds>/<run>` is written when a run ends).
 * ty_core_deadline() says when the next TICK
 * is due.  The core reads no clock, opens no socket or file, calls no
 * exit(), draws random numbers only from the seeded generator in its
 * options, and iterates workers in registration order: the same events at
 * the same times give the same effects (the simulator relies on it).
 *
 * Write-ahead: every message the core sends leaves (as a SEND effect) only
 * after every record changed before it is durable: changes of a loop
 * iteration are collected, FLUSH cuts them into batches of at most 120
 * records in the order they changed, each one TXN effect compared against
 * the leader key's epoch, and the messages queued meanwhile are released
 * when TXN_DONE reports the batches committed, in order.  Up to four txns
 * are out at once, provided no key is written by two of them.
 *
 * The txns form a chain: txn number seq commits only if txn seq - 1 did
 * (the store compares the version of its `leader.seq` key with seq - 1 and
 * puts it), so the store always holds a prefix of what the core wrote, even
 * when a txn fails, a later one was already sent, and the master dies before
 * the retry.  A store answers TXN_DONE with 0 when txn seq is in (committed
 * now or before: an answer lost on the way), TY_ESTALE when the epoch no
 * longer leads, TY_ECONFLICT when it overtook the one before it (sent again
 * at once while that one is on its way), another code when it failed (sent
 * again after retry_ms, with every txn behind it).  A master reads
 * `leader.seq` back (LOAD) and carries on from it.
 *
 * Threading: none; the caller owns the core and calls it from one thread. */
#ifndef TY_MASTER_CORE_CORE_H
#define TY_MASTER_CORE_CORE_H

#include "trainyard.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ty_core ty_core_t;

typedef struct {
    int64_t wall_ms; /* milliseconds since the epoch: record times, back-off */
    int64_t mono_ms; /* monotonic: liveness, batch retries */
} ty_time_t;

typedef struct {
    int64_t heartbeat_ms;    /* worker heartbeat interval */
    int64_t worker_lease_ms; /* a worker silent this long is lost */
    int64_t lost_limit;      /* a task lost with its worker this often fails */
    int64_t retry_ms;        /* a failed batch is sent again after this */
    uint64_t epoch;          /* leadership epoch: dispatches and the txn compare */
    uint64_t seed;           /* run ids */
    /* Finished runs leave memory once more than retain_runs of them, or of
     * their tasks more than retain_tasks, are kept, or when they ended over
     * retain_ms ago (oldest first, once their records are durable); the
     * request handler reads them back from the store. */
    int64_t retain_runs, retain_tasks, retain_ms;
    /* Finished runs are deleted from the store history_ms after they ended
     * (0: never), looked for every gc_every_ms: a DROP effect. */
    int64_t history_ms, gc_every_ms;
    /* A submit is refused (TY_EUNAVAIL, "nothing was stored") while a txn
     * has been out unanswered this long, or since one failed, or the shell
     * says etcd has been quiet this long (SUBMIT's quiet_since): a definite
     * answer during an etcd outage instead of a run that may appear later. */
    int64_t store_stall_ms;
    /* A queued task that does not fit lets smaller ones behind it run
     * (backfill) until it has waited this long; then nothing behind it is
     * placed until it is (0: backfill always). */
    int64_t backfill_ms;
} ty_core_opts_t;

/* A peer is opaque bytes the transport chose (a ZeroMQ routing id). */
typedef enum { TY_PEER_WORKER = 1, TY_PEER_CLIENT = 2 } ty_peer_kind_t;

typedef enum {
    TY_EV_TICK = 1,   /* deadlines due: back-off, worker liveness, batch retries */
    TY_EV_FLUSH,      /* end of a loop iteration: place, notify, start a batch */
    TY_EV_WORKER_MSG, /* a message from a worker peer (msg) */
    TY_EV_SUBMIT,     /* a validated, resolved pipeline (spec, params, raw spec) */
    TY_EV_CANCEL,     /* cancel run_id; the reply goes to peer */
    TY_EV_REPLY,      /* queue data for a client peer behind the pending writes */
    TY_EV_TXN_DONE,   /* a txn of batch `flight` answered: status 0, TY_ESTALE, other */
    TY_EV_LOAD,       /* a record read back from the store (key relative to the prefix) */
    TY_EV_SERVE,      /* loading is done: recover and start serving */
    TY_EV_PIN,        /* pin (status 1) or unpin (0) run_id: pins/<run>; the reply to peer */
    TY_EV_CHECKED,    /* a CHECK's answer for run_id/task: status 1 when every blob is there */
    TY_EV_BLOBS_GONE, /* gc deleted these blobs (shas): cache entries naming them go */
    TY_EV_SCHEDULE,   /* msg: a ScheduleRequest that changes one (add, pause, resume, rm) */
    TY_EV_REVOKED,    /* key: the worker whose key was revoked: lost now */
    TY_EV_DRAIN,      /* key: a worker; status 1 drain, 0 undo; the reply to peer */
    TY_EV_MODEL,      /* msg: a ModelRequest (register: its run in retry_of), alias, promote */
} ty_ev_kind_t;

typedef struct {
    ty_ev_kind_t kind;
    const uint8_t *peer; /* WORKER_MSG, SUBMIT, CANCEL, REPLY */
    size_t peer_len;
    uint64_t req_id;         /* SUBMIT, CANCEL: echoed in the reply */
    const Ty__Envelope *msg; /* WORKER_MSG */
    /* SUBMIT: ownership of spec and params passes to the core */
    Ty__PipelineSpec *spec; /* resolved */
    Ty__KV **params;
    size_t nparams;
    const uint8_t *raw_spec; /* SUBMIT: the spec as submitted, for pipelines/<name> */
    const char *request_id;  /* SUBMIT: the client's, or NULL (a repeat gets the same run) */
    const char *owner;       /* SUBMIT, SCHEDULE add, MODEL: the caller's user name, or NULL */
    int64_t quiet_since;     /* SUBMIT: monotonic ms since which etcd has not answered the
                                shell (its lease keep-alives), 0 when it does */
    /* SUBMIT of a retry: the old run (borrowed) and which of its tasks run
     * again (rerun[i]); the others are taken from it (ty_runs_rerun_set) */
    const struct ty_run *retry_of;
    const unsigned char *rerun;
    size_t raw_len;
    const char *run_id;  /* CANCEL, PIN, CHECKED */
    const char *task;    /* CHECKED */
    const uint8_t *data; /* REPLY payload; LOAD value */
    size_t len;
    const char *key;   /* LOAD */
    char *const *shas; /* BLOBS_GONE */
    size_t nshas;
    uint64_t flight; /* TXN_DONE */
    int status;      /* TXN_DONE */
} ty_ev_t;

typedef enum {
    TY_FX_SEND = 1, /* data to peer (a packed Ty__Envelope) */
    TY_FX_TXN,      /* puts, if the leader key's create revision is epoch */
    TY_FX_LOG,      /* append data to the log (or metric history) of run/task/attempt */
    TY_FX_NOTIFY,   /* run changed: its waiters may be answered */
    TY_FX_FENCED,   /* another master leads: stop */
    TY_FX_DROP,     /* delete from the store the runs indexed under done/ before `before` */
    TY_FX_CHECK,    /* are shas all in the artifact store? answer CHECKED for run/task */
    TY_FX_FORGET,   /* delete the keys in shas from the store, if epoch leads (not chained) */
} ty_fx_kind_t;

typedef struct {
    char *key; /* relative to the store's prefix */
    uint8_t *val;
    size_t len;
} ty_put_t;

/* An effect, owned by whoever popped it: release with ty_fx_clear(). */
typedef struct {
    ty_fx_kind_t kind;
    ty_peer_kind_t peer_kind; /* SEND */
    uint8_t *peer;
    size_t peer_len;
    uint8_t *data; /* SEND, LOG */
    size_t len;
    uint64_t flight; /* TXN: answer with TXN_DONE naming it */
    uint64_t epoch;  /* TXN */
    uint64_t seq;    /* TXN: its place in the chain of txns (see below) */
    ty_put_t *puts;  /* TXN */
    size_t nputs;
    char *run, *task; /* LOG, NOTIFY */
    uint32_t attempt; /* LOG */
    int series;   /* LOG: the attempt's metric history (lines "t step value name"), not its log */
    char *before; /* DROP: index keys done/<t>/<run> with <t> below this sort first */
    char **shas;  /* CHECK: the digests to look for; FORGET: the keys */
    size_t nshas;
} ty_fx_t;

void ty_core_opts_default(ty_core_opts_t *o);
int ty_core_create(ty_core_t **out, const ty_core_opts_t *o);
void ty_core_destroy(ty_core_t **c);

/* Handle one event at time now.  Returns 0, or for SUBMIT/CANCEL a
 * negative code (the error reply is already queued); TY_ESTALE once
 * fenced (nothing is done any more). */
int ty_core_step(ty_core_t *c, const ty_ev_t *ev, ty_time_t now);
/* Pop the oldest effect into *out (the caller owns it); 0 when none. */
int ty_core_fx_pop(ty_core_t *c, ty_fx_t *out);
void ty_fx_clear(ty_fx_t *fx);
/* Monotonic ms at which a TICK is next due, or 0 when nothing waits. */
int64_t ty_core_deadline(const ty_core_t *c);
/* Nothing changed and nothing in flight: a message would leave at once. */
int ty_core_idle(const ty_core_t *c);

/* Counters for `trainyard info`. */
typedef struct {
    uint64_t txns, ops, dispatches;
    uint64_t txns_behind;   /* answered TY_ECONFLICT: overtook an earlier one; sent again */
    uint64_t rejected_msgs; /* worker messages refused by validation */
    const char *last_reject;
    size_t runs, workers;
    size_t runs_finished, tasks_finished; /* finished and still in memory */
    uint64_t runs_released;               /* finished runs let go of */
} ty_core_stats_t;
void ty_core_stats(const ty_core_t *c, ty_core_stats_t *out);

#endif
