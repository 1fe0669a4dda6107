/* trainyard-worker internals.  One libuv loop thread owns everything.
 *   main.c     options, the DEALER socket, signals.
 *   session.c  registration, heartbeats, master loss, results kept until
 *              acknowledged.
 *   executor.c one child process group per task attempt (uv_spawn): pipes
 *              streamed as log chunks, TRAINYARD_REPORT tailed, timeout and
 *              cancel as TERM, grace, KILL of the whole group.
 *   probe.c    CPUs, memory and GPUs (NVML through dlopen).
 *   shmdir.c   an MPI attempt's own directory for Open MPI's shared memory
 *              and session files, removed with the attempt; sweeps what
 *              crashed workers left.
 *   orphans.c  at start, ends what an earlier run of this worker left
 *              running. */
#ifndef TY_WORKER_WORKER_H
#define TY_WORKER_WORKER_H

#include "common/dag.h"
#include "common/wire.h"

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

typedef struct ty_proc ty_proc_t;
typedef struct ty_up ty_up_t;
typedef struct ty_fetch ty_fetch_t;
typedef struct ty_wpart ty_wpart_t;
typedef struct ty_wk ty_wk_t;

typedef struct ty_unacked {
    Ty__TaskResult *res; /* unpacked copy (free with ty__task_result__free_unpacked) */
    int64_t sent_at;     /* monotonic ms; resent while no ack comes */
    struct ty_unacked *next;
} ty_unacked_t;

struct ty_wk {
    char *id, *master_ep, *workdir, *hostname; /* master_ep: the list given */
    char **eps;                                /* the masters' worker addresses */
    size_t neps, cur;
    char *connected; /* the one connected: one of eps, or where a standby sent us */
    int64_t switched_at;
    double cpus;
    uint64_t mem_mb;
    uint32_t gpus;
    Ty__KV **labels;
    size_t nlabels;
    int64_t kill_grace_ms;
    /* --run-as: tasks run as this user (the worker being root), with its
     * primary group and no other; run_user NULL: as the worker's own user */
    char *run_user, *run_home;
    uid_t run_uid;
    gid_t run_gid;

    uv_loop_t *loop;
    zsock_t *sock;
    ty_wire_poll_t *poll;
    uv_timer_t hb;
    uv_signal_t sigint, sigterm;
    int registered;
    uint64_t epoch;                /* highest master epoch seen */
    uint64_t seen_epoch, seen_seq; /* the newest master message (Envelope.epoch, .seq) */
    int64_t last_master;           /* monotonic ms of the last message from the master */
    int64_t heartbeat_ms, lease_ms;
    ty_proc_t *procs;
    ty_up_t *uploads;    /* attempts that exited 0, their outputs on the way */
    ty_fetch_t *fetches; /* attempts whose inputs are on their way */
    ty_wpart_t *parts;   /* parts > 0 of MPI gangs, waiting for mpirun (parts.c) */
    char *address;       /* where other hosts reach it (--address), or NULL */
    char *mpi_if;        /* the network interface of MPI and torch.distributed (--mpi-if) */
    char *rsh_path;      /* trainyard-rsh, beside this program */
    uint64_t next_req;   /* Envelope.req_id of the worker's own requests (BlobRead) */
    ty_unacked_t *unacked;
    int stopping;
};

/* executor.c */
void ty_exec_dispatch(ty_wk_t *wk, const Ty__Dispatch *d);
void ty_exec_cancel(ty_wk_t *wk, const Ty__TaskRef *ref, const char *why);
void ty_exec_kill_all(ty_wk_t *wk, const char *why);
size_t ty_exec_running(const ty_wk_t *wk);
/* The running attempts as refs (pointers into the procs; valid until the
 * next loop iteration). Caller frees the array. */
Ty__TaskRef **ty_exec_refs(ty_wk_t *wk, size_t *n);
/* The sessions (pids: an attempt runs detached) of its running attempts'
 * processes, n of them (heap). */
pid_t *ty_exec_sessions(ty_wk_t *wk, size_t *n);

/* upload.c: the outputs of an attempt that exited 0 go to the master's
 * artifact store, then its result (a copy of res) with them, or with the
 * reason they could not (a declared output missing, a path leaving dir). */
void ty_up_start(ty_wk_t *wk, const char *dir, char *const *declared, size_t ndeclared,
                 const Ty__ReportItem *const *reported, size_t nreported,
                 const Ty__TaskResult *res);
void ty_up_on_msg(ty_wk_t *wk, const Ty__Envelope *env); /* UploadReady, UploadAck */
void ty_up_tick(ty_wk_t *wk);                            /* ask a silent master again */
int ty_up_cancel(ty_wk_t *wk, const Ty__TaskRef *ref);   /* 1 when it was uploading */
int ty_up_has(const ty_wk_t *wk, const Ty__TaskRef *ref);
void ty_up_stop_all(ty_wk_t *wk, const char *why); /* results with interrupted set */
size_t ty_up_count(const ty_wk_t *wk);
size_t ty_up_refs(ty_wk_t *wk, Ty__TaskRef **out); /* fills out; returns how many */

/* fetch.c: an attempt's inputs into its directory (from the host's cache or
 * the master), then ty_exec_start; a failure is the attempt's result. */
void ty_fetch_start(ty_wk_t *wk, const Ty__Dispatch *d);
void ty_fetch_on_msg(ty_wk_t *wk, const Ty__Envelope *env); /* BlobData, ErrorReply */
void ty_fetch_tick(ty_wk_t *wk);
int ty_fetch_has(ty_wk_t *wk, const Ty__TaskRef *ref);
int ty_fetch_cancel(ty_wk_t *wk, const Ty__TaskRef *ref, const char *why);
void ty_fetch_stop_all(ty_wk_t *wk, const char *why);
size_t ty_fetch_refs(ty_wk_t *wk, Ty__TaskRef **out); /* out NULL: count only */
/* executor.c: start an attempt whose inputs are in place. */
void ty_exec_start(ty_wk_t *wk, const Ty__Dispatch *d);

/* session.c */
/* Connect to the first master of the list; 0 or TY_EINVAL (a bad address). */
int ty_wk_connect(ty_wk_t *wk);
void ty_wk_forget_masters(ty_wk_t *wk); /* frees the address list */
/* Start the socket poll and the heartbeat timer (which also registers). */
void ty_wk_start(ty_wk_t *wk);
void ty_wk_send(ty_wk_t *wk, Ty__Envelope *env);
/* Keep res until the master acknowledges it, and send it now. */
void ty_wk_result(ty_wk_t *wk, Ty__TaskResult *res);
void ty_wk_clear_unacked(ty_wk_t *wk);
/* Tell the master this worker leaves (graceful stop). */
void ty_wk_deregister(ty_wk_t *wk, const char *why);

/* probe.c */
typedef struct {
    double cpus;
    uint64_t mem_mb;
    uint32_t gpus;
    int nvml; /* 1 when the GPU count came from NVML */
} ty_probe_t;
void ty_probe(ty_probe_t *out);

#endif
