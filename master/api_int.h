/* The request handler's internals, shared by master/api.c (runs, status,
 * logs, submit, cancel, retry) and master/api_store.c (metrics, pins,
 * lineage, garbage collection). */
#ifndef TY_MASTER_API_INT_H
#define TY_MASTER_API_INT_H

#include "master/api.h"

/* A parked client request (status long-poll or logs follow). */
typedef struct ty_waiter {
    uint8_t *peer;
    size_t peer_len;
    uint64_t req_id;
    int is_logs;
    uint64_t wait_after; /* status */
    char *task;          /* logs */
    uint32_t attempt;
    int latest; /* a logs follower of the task's latest attempt */
    uint32_t tail_lines;
    uint64_t offset;
    int64_t deadline; /* monotonic ms */
    char *run;
    struct ty_waiter *next;          /* the run's waiters */
    struct ty_waiter *qprev, *qnext; /* every waiter, by deadline (park order) */
} ty_waiter_t;

/* A request about a run the core has let go of, waiting for the store. */
typedef struct ty_fetch {
    ty_api_t *a;
    uint8_t *peer;
    size_t peer_len;
    Ty__Envelope *req; /* an owned copy */
    char *run_id;
    char *user, *addr; /* who asked (copies of the ty_caller_t) */
    int admin;
    zhashx_t *pins; /* a scan's (api_store.c): pinned run ids */
    struct ty_fetch *next;
} ty_fetch_t;

struct ty_api {
    ty_core_t *core;
    char *data_dir;
    ty_api_info_t *info;
    ty_api_shell_t shell;
    zhashx_t *waiting; /* run id -> ty_waiter_t* (a list) */
    size_t nwaiters;
    ty_waiter_t *qhead, *qtail; /* all of them, earliest deadline first */
    ty_fetch_t *fetches;        /* reads in flight (the store answers later) */
    const ty_caller_t *who;     /* the request being handled: its caller, or NULL */
};

void ty_reply(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id, Ty__Envelope *env,
              ty_time_t now);
void ty_reply_error(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id, int code,
                    const char *msg, ty_time_t now);
/* api.c: a request waiting for the store: a copy of env and peer, in
 * a->fetches until released (which unlinks it while the handler lives). */
ty_fetch_t *ty_fetch_new(ty_api_t *a, const uint8_t *peer, size_t peer_len,
                         const Ty__Envelope *env);
void ty_fetch_release(ty_fetch_t *f);
/* api.c: a request about a run the core let go of, answered once the store
 * has read it back (status, logs, cancel, retry, pin). */
void ty_fetch(ty_api_t *a, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env,
              const char *run_id, ty_time_t now);
/* The caller's user name ("" when none: no keys). */
const char *ty_api_user(const ty_api_t *a);
/* An audit line in the master's log: who (user, admin, address) did what
 * to what, and how it went. */
void ty_api_audit(const ty_api_t *a, const char *action, const char *target, const char *result);
/* 1 when the caller may change a thing owner owns (no owner, no keys, its
 * owner, or an admin); else answers TY_EPERM with a one-line error, logs
 * an audit line of the refusal and returns 0. */
int ty_api_may(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
               const char *owner, const char *action, const char *target, ty_time_t now);
/* api_store.c */
void ty_api_pin(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                const Ty__PinRequest *pr, ty_time_t now);
void ty_api_metrics(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                    const Ty__MetricsRequest *mr, ty_time_t now);
/* Pin, Gc, Lineage: 1 when env is one of them (answered, perhaps later). */
int ty_api_store_request(ty_api_t *a, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env,
                         ty_time_t now);
/* api_models.c: the model registry */
void ty_api_model(ty_api_t *a, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env,
                  ty_time_t now);
void ty_api_model_register(ty_api_t *a, const uint8_t *peer, size_t peer_len,
                           const Ty__Envelope *env, const struct ty_run *r, ty_time_t now);
/* api_sched.c: schedules (list, show here; changes through the core) */
void ty_api_schedule(ty_api_t *a, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env,
                     ty_time_t now);
/* api_list.c: listings of what is in memory */
void ty_api_runs(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                 const Ty__RunsRequest *req, ty_time_t now);
void ty_api_workers(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                    ty_time_t now);
void ty_api_pipelines(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                      const Ty__PipelinesRequest *req, ty_time_t now);

#endif
