/* The HTTP API's decisions, with no I/O (master/http.c does the I/O).
 *
 * A request (method, path, query, body) becomes the protocol's request
 * for the protocol-neutral handler (master/api.h), the one the ZeroMQ
 * clients' requests go to, so the CLI and the HTTP API always agree; its
 * reply becomes the JSON the CLI prints with -o json (common/render.h).
 * A task's log is a stream: one LogsRequest after another, shown as plain
 * text or, followed, as server-sent events (ty_logstream_t). */
#ifndef TY_MASTER_HTTP_ROUTE_H
#define TY_MASTER_HTTP_ROUTE_H

#include "common/util.h"
#include "trainyard.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TY_VIEW_NONE, /* answered at once: status and body */
    TY_VIEW_RUNS,
    TY_VIEW_RUN,
    TY_VIEW_ARTIFACTS,
    TY_VIEW_METRICS,
    TY_VIEW_WORKERS,
    TY_VIEW_PIPELINES,
    TY_VIEW_INFO,
    TY_VIEW_SUBMIT,
    TY_VIEW_CANCEL,
    TY_VIEW_SCHEDULES,
    TY_VIEW_SCHEDULE,
    TY_VIEW_MODELS,
    TY_VIEW_MODEL, /* a model's versions */
    TY_VIEW_MODEL_HISTORY,
    TY_VIEW_LOGS,     /* a task's log: a stream (ty_logstream_t) */
    TY_VIEW_ARTIFACT, /* one output's content (ty_http_artifact) */
} ty_view_t;

typedef struct {
    ty_view_t view;
    int write;         /* it changes something (a POST): it needs a user */
    int status;        /* VIEW_NONE: the HTTP status */
    char *body;        /* VIEW_NONE: the JSON body (heap) */
    Ty__Envelope *req; /* else: the request for the handler (owned) */
    char *run_id;      /* the run the path names, or NULL */
    char *task;        /* VIEW_LOGS, VIEW_ARTIFACT: the task */
    char *name;        /* VIEW_ARTIFACT: the output's name (a path: plots/a.png) */
    uint32_t attempt;  /* VIEW_LOGS: 0 for the latest (followed on to the next) */
    uint32_t tail;     /* VIEW_LOGS: only the last lines */
    int follow;        /* VIEW_LOGS: to the attempt's end, as server-sent events */
    uint64_t offset;   /* VIEW_LOGS: from this byte (a reconnecting follower's) */
} ty_route_t;

/* A query argument by name, or NULL. */
typedef const char *(*ty_http_arg_fn)(void *ctx, const char *name);

/* path without its query; arg reads the query (and Last-Event-ID for a
 * log follower reconnecting: "ATTEMPT:OFFSET"); now_ms for --since's ages. */
void ty_http_route(const char *method, const char *path, ty_http_arg_fn arg, void *ctx,
                   const char *body, size_t body_len, int64_t now_ms, ty_route_t *out);
void ty_route_clear(ty_route_t *r);

/* The reply to r's request as JSON (heap, in *body); returns the HTTP
 * status.  An ErrorReply: 400 (bad input), 403 (not yours), 404 (no such
 * thing), 503 (etcd not answering, or no leader), else 500. */
int ty_http_render(const ty_route_t *r, const Ty__Envelope *rep, char **body);
/* VIEW_ARTIFACT: the run's status reply made into the output's content
 * (*sha256, heap, and *size) and 200, or an error status and *body. */
int ty_http_artifact(const ty_route_t *r, const Ty__Envelope *rep, char **sha256, uint64_t *size,
                     char **body);
/* {"error": msg} (heap). */
char *ty_http_error_body(const char *msg);
/* The HTTP status of an ErrorReply's code. */
int ty_http_error_status(int code);

/* --http-tokens FILE: a line per token, "USER TOKEN [admin]" (a token of
 * 16 to 256 printable characters), '#' comments. */
typedef struct ty_http_tokens ty_http_tokens_t;
int ty_http_tokens_parse(const char *text, ty_http_tokens_t **out, char **why);
void ty_http_tokens_free(ty_http_tokens_t **t);
/* The user an "Authorization: Bearer TOKEN" header names (*admin: in the
 * admin set), or NULL (no header, or no such token; compared in constant
 * time). */
const char *ty_http_tokens_user(const ty_http_tokens_t *t, const char *authorization, int *admin);
/* Whether a request may go on: 0, or 401 and why.  known: its token named
 * a user; open_reads: the server is bound to loopback (reads need no
 * token there, and nothing else does off it); open_writes: the master runs
 * without keys (--insecure), so on loopback writes need none either. */
int ty_http_allow(int known, int write, int open_reads, int open_writes, const char **why);

/* Whether a request that changes something may come from the page that
 * sent it: browsers name a page's site in Origin; one of another site than
 * this server's (Host) is refused, so no other site's page can make a
 * browser submit or cancel (where no token is needed: --insecure).  No
 * Origin (curl, the CLI): fine. */
int ty_http_origin_ok(const char *origin, const char *host);

/* A task's log, shown as it comes: plain text (the attempt's log as far
 * as it goes) or server-sent events (each line a message with the id
 * ATTEMPT:OFFSET, `event: attempt` when a retry or failover runs the task
 * again, a comment every hold that brought nothing, `event: end` last). */
typedef struct ty_logstream ty_logstream_t;
ty_logstream_t *ty_logstream_new(const ty_route_t *r);
void ty_logstream_free(ty_logstream_t **s);
/* The next LogsRequest (owned by the caller), or NULL when it has ended. */
Ty__Envelope *ty_logstream_next(ty_logstream_t *s);
/* A LogsReply: what to send appended to out.  1 when the stream ends
 * with it (out then holds the last of it). */
int ty_logstream_feed(ty_logstream_t *s, const Ty__LogsReply *rep, ty_buf_t *out);

#endif
