/* trainyard-master's shell: the I/O around the control core (core/).
 *
 *   core/      the decisions, with no I/O (core/core.h)
 *   store*     persistence behind an interface; etcd in production
 *   api        the client protocol, apart from its transport
 *   logw       task logs written by a thread of their own
 *   election   the leader key, its lease and the fencing epoch; standing by
 *   drop       old runs leaving etcd and the data dir (the DROP effect)
 *   main       the libuv loop, the ZeroMQ sockets (the transport of workers
 *              and clients), the deadline timer, effects carried out
 *
 * One libuv loop thread owns everything here. */
#ifndef TY_MASTER_MASTER_H
#define TY_MASTER_MASTER_H

#include "common/log.h"
#include "common/prom.h"
#include "master/api.h"
#include "master/blobs.h"
#include "master/core/core.h"
#include "master/logw.h"
#include "master/store.h"

#include "common/etcd.h"
#include "common/wire.h"

#include <czmq.h>
#include <stdint.h>
#include <uv.h>

typedef struct ty_master ty_master_t;

typedef struct {
    char *node_id;
    char *etcd;
    char *prefix; /* "/trainyard/" */
    char *worker_ep, *client_ep;
    char *data_dir;
    size_t max_frame;
    int64_t heartbeat_ms, worker_lease_ms;
    int64_t leader_ttl_s;
    int64_t store_stall_ms; /* submits are refused while etcd is quiet this long */
    int64_t lost_limit;
    int64_t retain_runs, retain_tasks, retain_s; /* finished runs kept in memory */
    int64_t compact_every;                       /* etcd revisions between compactions */
    int64_t history_s;                           /* runs leave etcd this long after */
    int64_t backfill_s; /* a task that does not fit holds back those behind it after this */
    int64_t max_pl_bytes, max_pl_depth, max_pl_tasks, max_map_keys; /* pipeline limits */
    char *store_dir;                          /* the artifact store (default <data-dir>/store) */
    char *key;                                /* CURVE: the master's certificate (secret file) */
    char *client_keys, *worker_keys;          /* the public certificates allowed in */
    char *admin_keys;                         /* users who may change what others own, or NULL */
    char *etcd_cacert, *etcd_cert, *etcd_key; /* etcd over TLS, or NULL */
    int insecure;                             /* no keys: allowed on loopback only */
    int64_t max_artifact;                     /* bytes one artifact may have */
    int64_t max_run_artifacts;  /* bytes the outputs of one run may have (0: no limit) */
    int64_t gc_grace_s;         /* gc keeps blobs younger than this */
    char *http_bind;            /* HOST:PORT, "off", or NULL (the default, 127.0.0.1:7080) */
    char *http_tokens;          /* --http-tokens FILE, or NULL */
    char *http_cert, *http_key; /* HTTPS (PEM files), or NULL */
} ty_master_opts_t;

/* master/opts.c: the defaults, then the command line (and --config FILE),
 * checked.  -1 to go on (*lvl the log level), or the exit status (usage
 * or an error printed, the options freed). */
int ty_master_opts_parse(ty_master_opts_t *o, int argc, char **argv, ty_log_level_t *lvl);
/* The options' strings freed; returns rc. */
int ty_master_opts_free(ty_master_opts_t *o, int rc);

struct ty_master {
    ty_master_opts_t o;
    uv_loop_t *loop;
    ty_etcd_t *etcd;
    ty_store_t *store;
    ty_core_t *core;
    ty_api_t *api;
    ty_logw_t *logw;
    ty_blobs_t *blobs;
    ty_api_info_t info;
    zsock_t *wsock, *csock;
    struct ty_zap *zap;         /* CURVE: who may connect (master/zap.c) */
    struct ty_strikes *strikes; /* peers that sent malformed messages (master/strikes.c) */
    struct ty_http *http;       /* the HTTP server (master/http.c), or NULL */
    ty_hist_t etcd_txn;         /* etcd txns' latency (/metrics) */
    char wrong_id[2][200];      /* per socket (worker, client): the last peer not heard */
    int64_t wrong_logged[2];
    ty_wire_poll_t *wpoll, *cpoll;
    uv_check_t check;     /* end of tick: FLUSH */
    uv_prepare_t prepare; /* the same, for changes made by timers */
    uv_timer_t deadline;  /* the core's and the API's next deadline */
    uv_timer_t keepalive; /* leader lease */
    uv_timer_t stop;      /* shutdown grace */
    uv_signal_t sigint, sigterm, sighup;
    int exit_code;
    int stopping;   /* the teardown began: no callback takes or acts on leadership */
    int load_stage; /* rebuild: ranges read so far after leader.seq */

    /* election */
    void (*elected)(ty_master_t *m);
    int64_t lease_id;
    uint64_t epoch;
    ty_store_watch_t *leader_watch;
    int leader;
    uint64_t term;            /* bumped when leadership ends: older callbacks are dropped */
    char *holder;             /* standing by: the leader key's value */
    char election_error[160]; /* why the last election step failed; "" after one worked */
    int64_t lease_ok_mono;    /* when the lease was last confirmed alive */
    int64_t lease_ka_sent;    /* when the last keep-alive was sent */
    uv_timer_t stepdown;      /* leadership ended: tear down outside the callback that saw it */
    uv_timer_t retry;         /* election: try again */
};

/* expose.c: the figures of GET /metrics, in Prometheus' text format */
void ty_master_expose(ty_master_t *m, ty_buf_t *out);

/* election.c */
void ty_election_start(ty_master_t *m, void (*elected)(ty_master_t *m));
void ty_election_stop(ty_master_t *m);
/* Leadership is gone (fenced write, lease lost): stop serving, exit code 3. */
void ty_master_lost_lead(ty_master_t *m, const char *why);
/* main.c: send a packed envelope to a peer (fx: peer_kind, peer, data). */
void ty_master_send(ty_master_t *m, const ty_fx_t *fx);
/* main.c: pack env (req_id echoed) and send it to a client or worker peer. */
void ty_master_send_env(ty_master_t *m, int client, const uint8_t *peer, size_t peer_len,
                        uint64_t req_id, Ty__Envelope *env);
/* main.c: a worker's message into the core, when leading and serving. */
void ty_master_worker_msg(ty_master_t *m, const uint8_t *peer, size_t peer_len,
                          const Ty__Envelope *env);
/* main.c: an event into the core, when leading and serving. */
void ty_master_core_event(ty_master_t *m, const ty_ev_t *ev);
/* artifacts.c: a CHECK effect: look for its blobs, answer CHECKED. */
void ty_master_check_blobs(ty_master_t *m, const ty_fx_t *fx);
/* artifacts.c: create the artifact store from the options. */
int ty_master_blobs_start(ty_master_t *m);
/* artifacts.c: take an artifact message (uploads, reads) or a TaskResult
 * with outputs (checked in the store first; *env is taken).  1 when taken,
 * 0 when it is for the core or the API. */
int ty_master_artifact_msg(ty_master_t *m, int client, const uint8_t *peer, size_t peer_len,
                           Ty__Envelope **env);
/* drop.c: the DROP effect (runs that ended before fx->before leave etcd). */
void ty_master_drop_old(ty_master_t *m, const ty_fx_t *fx);
/* The leader key's value: node id, client and worker endpoints, one a line. */
char *ty_master_leader_value(const ty_master_t *m);

#endif
