/* The client protocol, apart from its transport: submit, runs, status (with
 * long-poll), logs (with follow), cancel, workers and info.  A transport
 * (the ZeroMQ client socket; an HTTP adapter later) hands each decoded
 * request in with the peer it came from; every reply goes out through the
 * core (a REPLY event), so it leaves only after what it reports is durable.
 * State changes are the core's (SUBMIT, CANCEL events); reads look at the
 * core's state; logs are read from <data_dir>/logs.  Parked requests
 * (status long-polls, log follows) are answered on the core's NOTIFY
 * effects or when they expire (ty_api_deadline). */
#ifndef TY_MASTER_API_H
#define TY_MASTER_API_H

#include "common/dag.h"
#include "master/blobs.h"
#include "master/core/core.h"
#include "master/store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ty_api ty_api_t;

/* Figures `info` reports that the transport and election own. */
typedef struct {
    uint64_t epoch;
    uint64_t rejected_size, rejected_decode;
    const char *node_id;
    int curve;                     /* the sockets require CURVE keys */
    uint64_t auth_refused;         /* handshakes the ZAP handler refused */
    const char *last_auth_refused; /* (points into the handler) */
    uint64_t peers_banned;         /* peers banned now (master/strikes.h) */
    uint64_t banned_dropped;       /* messages dropped from banned peers */
} ty_api_info_t;

/* What the handler needs from the shell for runs the core has let go of
 * (status, logs and cancel of an old run are read back from the store):
 * the store, the clock, and a call to carry out the core's effects after
 * it stepped the core from a store's callback. */
typedef struct {
    ty_store_t *store;
    ty_time_t (*now)(void);
    void (*effects)(void *arg);
    void *arg;
    ty_dag_limits_t limits; /* what a submitted pipeline may hold */
    ty_blobs_t *blobs;      /* the artifact store (gc), or NULL */
    int64_t gc_grace_ms;    /* gc keeps blobs younger than this (a result not yet committed) */
    /* monotonic ms since which etcd has not answered the shell, 0: it does */
    int64_t (*quiet_since)(void *arg);
} ty_api_shell_t;

/* core, info and the shell's store are borrowed and must outlive the
 * handler (it counts unexpected requests in info->rejected_decode). */
int ty_api_create(ty_api_t **out, ty_core_t *core, const char *data_dir, ty_api_info_t *info,
                  const ty_api_shell_t *shell);
void ty_api_destroy(ty_api_t **a);
/* Who sent a request: the user its key names (User-Id; "" without keys),
 * whether the key is in the admin set, and the peer's address. */
typedef struct {
    const char *user;
    const char *addr;
    int admin;
} ty_caller_t;

/* who: NULL when not known (tests); a user of "" (no keys) owns nothing
 * and may do anything. */
void ty_api_request(ty_api_t *a, const uint8_t *peer, size_t peer_len, const Ty__Envelope *req,
                    const ty_caller_t *who, ty_time_t now);
/* run_id changed (the core's NOTIFY effect), or only its logs grew
 * (logs_only: the log writer put bytes on disk). */
void ty_api_notify(ty_api_t *a, const char *run_id, int logs_only, ty_time_t now);
/* Answer parked requests whose time is up. */
void ty_api_expire(ty_api_t *a, ty_time_t now);
/* Monotonic ms of the earliest parked request's expiry, 0 when none. */
int64_t ty_api_deadline(const ty_api_t *a);
/* Path of one attempt's log (heap string). */
char *ty_api_log_path(const char *data_dir, const char *run, const char *task, unsigned attempt);

#endif
