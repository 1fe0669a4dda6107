/* The protocol-neutral request handler (api.h). */
#include "master/api.h"
#include "master/api_int.h"

#include "master/core/core_int.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TY_WAIT_MAX_MS 5000 /* cli/main.c TY_HOLD_MS: clients notice a lost master soon */
#define TY_LOG_CHUNK_MAX (256 * 1024)

int ty_api_create(ty_api_t **out, ty_core_t *core, const char *data_dir, ty_api_info_t *info,
                  const ty_api_shell_t *shell) {
    if (!out || !core || !data_dir || !info || !shell || !shell->store || !shell->now)
        return TY_EINVAL;
    ty_api_t *a = ty_xcalloc(1, sizeof *a);
    a->core = core;
    a->data_dir = ty_xstrdup(data_dir);
    a->info = info;
    a->shell = *shell;
    a->waiting = zhashx_new();
    *out = a;
    return 0;
}

static void ty_waiter_free(ty_waiter_t *w) {
    free(w->peer);
    free(w->task);
    free(w->run);
    free(w);
}

/* w was answered: off the deadline queue, freed. */
static void ty_waiter_done(ty_api_t *a, ty_waiter_t *w) {
    if (w->qprev)
        w->qprev->qnext = w->qnext;
    else
        a->qhead = w->qnext;
    if (w->qnext)
        w->qnext->qprev = w->qprev;
    else
        a->qtail = w->qprev;
    a->nwaiters--;
    ty_waiter_free(w);
}

void ty_api_destroy(ty_api_t **ap) {
    if (!ap || !*ap)
        return;
    ty_api_t *a = *ap;
    for (ty_waiter_t *w = zhashx_first(a->waiting); w; w = zhashx_next(a->waiting))
        while (w) {
            ty_waiter_t *next = w->next;
            ty_waiter_free(w);
            w = next;
        }
    zhashx_destroy(&a->waiting);
    for (ty_fetch_t *f = a->fetches; f; f = f->next)
        f->a = NULL; /* its answer, if it still comes, is dropped */
    free(a->data_dir);
    free(a);
    *ap = NULL;
}

char *ty_api_log_path(const char *data_dir, const char *run, const char *task, unsigned attempt) {
    return ty_xasprintf("%s/logs/%s/%s.%u.log", data_dir, run, task, attempt);
}

void ty_reply(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id, Ty__Envelope *env,
              ty_time_t now) {
    env->req_id = req_id;
    env->version = 1;
    size_t len = ty__envelope__get_packed_size(env);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__envelope__pack(env, buf);
    ty_ev_t ev = {.kind = TY_EV_REPLY, .peer = peer, .peer_len = peer_len, .data = buf, .len = len};
    ty_core_step(a->core, &ev, now);
    free(buf);
}

void ty_reply_error(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id, int code,
                    const char *msg, ty_time_t now) {
    Ty__ErrorReply e = TY__ERROR_REPLY__INIT;
    e.code = code;
    e.message = (char *)msg;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_ERROR;
    env.error = &e;
    ty_reply(a, peer, peer_len, req_id, &env, now);
}

const char *ty_api_user(const ty_api_t *a) { return a->who && a->who->user ? a->who->user : ""; }

void ty_api_audit(const ty_api_t *a, const char *action, const char *target, const char *result) {
    const char *user = ty_api_user(a);
    ty_info("audit: user=%s%s from=%s %s %s: %s", *user ? user : "-",
            a->who && a->who->admin ? " (admin)" : "",
            a->who && a->who->addr && *a->who->addr ? a->who->addr : "-", action, target, result);
}

int ty_api_may(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
               const char *owner, const char *action, const char *target, ty_time_t now) {
    const char *user = ty_api_user(a);
    if (!owner || !*owner || !*user || strcmp(owner, user) == 0 || a->who->admin)
        return 1;
    char *msg = ty_xasprintf("%s belongs to %s: only %s or an admin (--admin-keys) may %s it",
                             target, owner, owner, action);
    ty_warn("audit: user=%s from=%s %s %s: refused (owned by %s)", user,
            a->who->addr && *a->who->addr ? a->who->addr : "-", action, target, owner);
    ty_reply_error(a, peer, peer_len, req_id, TY_EPERM, msg, now);
    free(msg);
    return 0;
}

static int ty_request_id_ok(const char *s) {
    size_t n = strlen(s);
    if (n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-'))
            return 0;
    return 1; /* empty: no request id */
}

static void ty_on_submit(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                         const Ty__SubmitRequest *req, ty_time_t now) {
    Ty__PipelineSpec *spec = NULL, *resolved = NULL;
    char *err = NULL;
    const char *fname = *req->filename ? req->filename : "<submitted>";
    if (!ty_request_id_ok(req->request_id)) {
        ty_reply_error(a, peer, peer_len, req_id, TY_EINVAL,
                       "bad request id (want 1 to 64 of A-Z a-z 0-9 _ . -)", now);
        return;
    }
    int rc =
        ty_dag_load_string_lim(req->yaml, strlen(req->yaml), fname, &a->shell.limits, &spec, &err);
    if (rc != 0) {
        ty_reply_error(a, peer, peer_len, req_id, rc, err ? err : ty_strerror(rc), now);
        free(err);
        return;
    }
    Ty__KV **params = NULL;
    size_t np = 0;
    rc = ty_dag_resolve(spec, req->params, req->n_params, &resolved, &params, &np, &err);
    if (rc != 0) {
        ty_reply_error(a, peer, peer_len, req_id, rc, err, now);
        free(err);
        ty_dag_free(&spec);
        return;
    }
    size_t len = ty__pipeline_spec__get_packed_size(spec);
    uint8_t *raw = ty_xmalloc(len ? len : 1);
    ty__pipeline_spec__pack(spec, raw);
    ty_dag_free(&spec);
    ty_ev_t ev = {.kind = TY_EV_SUBMIT,
                  .peer = peer,
                  .peer_len = peer_len,
                  .req_id = req_id,
                  .spec = resolved,
                  .params = params,
                  .nparams = np,
                  .raw_spec = raw,
                  .raw_len = len,
                  .request_id = req->request_id,
                  .owner = ty_api_user(a),
                  .quiet_since = a->shell.quiet_since ? a->shell.quiet_since(a->shell.arg) : 0};
    char *what = ty_xasprintf("pipeline %s", resolved->name);
    ty_api_audit(a, "submit", what, "accepted");
    free(what);
    ty_core_step(a->core, &ev, now);
    free(raw);
}

/* A retry of finished run old: a new run of its pipeline and params whose
 * tasks that do not run again are taken from old (ty_runs_rerun_set). */
static void ty_on_retry(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                        const ty_run_t *old, const Ty__RetryRequest *rq, ty_time_t now) {
    if (!ty_request_id_ok(rq->request_id)) {
        ty_reply_error(a, peer, peer_len, req_id, TY_EINVAL,
                       "bad request id (want 1 to 64 of A-Z a-z 0-9 _ . -)", now);
        return;
    }
    unsigned char *rerun = ty_xcalloc(old->ntasks ? old->ntasks : 1, 1);
    char *err = NULL;
    int rc = ty_runs_rerun_set(old, rq->from_task, rerun, &err);
    if (rc != 0) {
        ty_reply_error(a, peer, peer_len, req_id, rc, err, now);
        free(err);
        free(rerun);
        return;
    }
    size_t len = ty__pipeline_spec__get_packed_size(old->spec);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__pipeline_spec__pack(old->spec, buf);
    Ty__PipelineSpec *spec = ty__pipeline_spec__unpack(NULL, len, buf); /* the core's */
    free(buf);
    Ty__KV **params = ty_xcalloc(old->nparams ? old->nparams : 1, sizeof *params);
    for (size_t i = 0; i < old->nparams; i++) {
        params[i] = ty_xmalloc(sizeof *params[i]);
        ty__kv__init(params[i]);
        params[i]->key = ty_xstrdup(old->params[i]->key);
        params[i]->value = ty_xstrdup(old->params[i]->value);
    }
    ty_ev_t ev = {.kind = TY_EV_SUBMIT,
                  .peer = peer,
                  .peer_len = peer_len,
                  .req_id = req_id,
                  .spec = spec,
                  .params = params,
                  .nparams = old->nparams,
                  .request_id = rq->request_id,
                  .owner = ty_api_user(a),
                  .quiet_since = a->shell.quiet_since ? a->shell.quiet_since(a->shell.arg) : 0,
                  .retry_of = old,
                  .rerun = rerun};
    ty_core_step(a->core, &ev, now);
    free(rerun);
}

static void ty_send_status(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                           ty_run_t *r, int with_spec, ty_time_t now) {
    Ty__RunRecord rr;
    ty_persist_run_record(r, &rr, with_spec);
    Ty__TaskRecord *recs = ty_xcalloc(r->ntasks, sizeof *recs);
    Ty__TaskRecord **ptrs = ty_xcalloc(r->ntasks, sizeof *ptrs);
    for (size_t i = 0; i < r->ntasks; i++) {
        ty_persist_task_record(&r->tasks[i], &recs[i]);
        ptrs[i] = &recs[i];
    }
    Ty__RunStatus st = TY__RUN_STATUS__INIT;
    st.run = &rr;
    st.tasks = ptrs;
    st.n_tasks = r->ntasks;
    st.version = r->version;
    Ty__StatusReply sr = TY__STATUS_REPLY__INIT;
    sr.status = &st;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_STATUS_REPLY;
    env.status_reply = &sr;
    ty_reply(a, peer, peer_len, req_id, &env, now);
    for (size_t i = 0; i < r->ntasks; i++)
        ty_persist_task_record_clear(&recs[i]);
    free(recs);
    free(ptrs);
}

static int ty_run_done(const ty_run_t *r) {
    return r->state != TY_RUN_PENDING && r->state != TY_RUN_RUNNING;
}

/* Where the last n lines of a log of size bytes begin, looked for in its
 * last TY_TAIL_SPAN bytes (past those: the first whole line there). */
#define TY_TAIL_SPAN (64 * 1024)
static uint64_t ty_tail_offset(int fd, uint64_t size, uint32_t n) {
    size_t span = size < TY_TAIL_SPAN ? (size_t)size : TY_TAIL_SPAN;
    if (span == 0)
        return 0;
    char *buf = ty_xmalloc(span);
    ssize_t got = pread(fd, buf, span, (off_t)(size - span));
    size_t i = got > 0 ? (size_t)got : 0, len = i;
    if (i > 0 && buf[i - 1] == '\n') /* the last line's own newline */
        i--;
    uint32_t lines = 0;
    while (i > 0 && !(buf[i - 1] == '\n' && ++lines == n))
        i--;
    if (i == 0 && span < size) { /* a line cut at the span's start: from the next */
        char *nl = memchr(buf, '\n', len);
        i = nl ? (size_t)(nl - buf) + 1 : 0;
    }
    free(buf);
    return size - span + i;
}

/* A logs request as a waiter (its task not copied). */
static ty_waiter_t ty_logs_query(const Ty__LogsRequest *lr) {
    return (ty_waiter_t){.is_logs = 1,
                         .task = (char *)lr->task, /* read only */
                         .attempt = lr->attempt,
                         .offset = lr->offset,
                         .latest = lr->latest,
                         .tail_lines = lr->tail_lines};
}

/* Reply to a logs request if there is data or the attempt has ended;
 * returns 0 when the request should wait. */
static int ty_try_logs(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                       ty_run_t *r, const ty_waiter_t *q, int wait, ty_time_t now) {
    int ti = ty_runs_task_index(r, q->task);
    if (ti < 0) {
        ty_reply_error(a, peer, peer_len, req_id, TY_ENOENT, "no such task in this run", now);
        return 1;
    }
    ty_task_t *t = &r->tasks[ti];
    uint32_t attempt = q->attempt;
    uint64_t offset = q->offset;
    int latest = attempt == 0 || q->latest;
    if (attempt == 0)
        attempt = t->attempt;
    /* the latest attempt ends only with the task: a task queued again
     * after a lost attempt (a master's failover) runs another, which a
     * follower wants; a numbered attempt ends when a later one exists, or
     * the task is queued again */
    int ended = latest ? ty_task_state_terminal(t->state)
                       : attempt < t->attempt || ty_task_state_terminal(t->state) ||
                             t->state == TY_TASK_QUEUED;
    Ty__LogsReply lr = TY__LOGS_REPLY__INIT;
    uint8_t *data = NULL;
    size_t n = 0;
    if (attempt > 0) {
        char *path = ty_api_log_path(a->data_dir, r->id, q->task, attempt);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        free(path);
        if (fd >= 0) {
            struct stat st;
            if (fstat(fd, &st) == 0 && offset == 0 && q->tail_lines)
                offset = ty_tail_offset(fd, (uint64_t)st.st_size, q->tail_lines);
            if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > offset) {
                size_t want = (size_t)((uint64_t)st.st_size - offset);
                if (want > TY_LOG_CHUNK_MAX)
                    want = TY_LOG_CHUNK_MAX;
                data = ty_xmalloc(want);
                ssize_t got = pread(fd, data, want, (off_t)offset);
                n = got > 0 ? (size_t)got : 0;
            }
            close(fd);
        }
    }
    if (n == 0 && latest && attempt < t->attempt) { /* read to its end: on to the next */
        free(data);
        ty_waiter_t next = *q;
        next.attempt = attempt + 1;
        next.offset = 0;
        next.latest = 1;
        next.tail_lines = 0;
        return ty_try_logs(a, peer, peer_len, req_id, r, &next, wait, now);
    }
    if (n == 0 && !ended && wait) {
        free(data);
        return 0;
    }
    lr.data.data = data;
    lr.data.len = n;
    lr.next_offset = offset + n;
    lr.done = ended && n == 0;
    lr.attempt = attempt;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_LOGS_REPLY;
    env.logs_reply = &lr;
    ty_reply(a, peer, peer_len, req_id, &env, now);
    free(data);
    return 1;
}

static void ty_park(ty_api_t *a, ty_run_t *r, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                    ty_waiter_t *tmpl, ty_time_t now) {
    ty_waiter_t *w = ty_xcalloc(1, sizeof *w);
    *w = *tmpl;
    w->peer = ty_xmalloc(peer_len ? peer_len : 1);
    memcpy(w->peer, peer, peer_len);
    w->peer_len = peer_len;
    w->req_id = req_id;
    w->deadline = now.mono_ms + TY_WAIT_MAX_MS; /* the same hold for all: park order */
    w->run = ty_xstrdup(r->id);
    w->next = zhashx_lookup(a->waiting, r->id);
    zhashx_update(a->waiting, r->id, w);
    w->qprev = a->qtail;
    if (a->qtail)
        a->qtail->qnext = w;
    else
        a->qhead = w;
    a->qtail = w;
    a->nwaiters++;
}

/* Answer the waiters of r that can be answered; expired ones are answered
 * with what there is. */
static void ty_notify(ty_api_t *a, ty_run_t *r, int logs_only, ty_time_t now) {
    ty_waiter_t *head = zhashx_lookup(a->waiting, r->id);
    if (!head)
        return;
    zhashx_delete(a->waiting, r->id); /* answering may park nothing new for r */
    ty_waiter_t *keep = NULL, **tail = &keep;
    while (head) {
        ty_waiter_t *w = head;
        head = w->next;
        int expired = now.mono_ms >= w->deadline;
        int done = 0;
        if (w->is_logs)
            done = ty_try_logs(a, w->peer, w->peer_len, w->req_id, r, w, !expired, now);
        else if ((!logs_only && (r->version > w->wait_after || ty_run_done(r))) || expired) {
            ty_send_status(a, w->peer, w->peer_len, w->req_id, r, 0, now);
            done = 1;
        }
        if (done) {
            ty_waiter_done(a, w);
        } else {
            w->next = NULL;
            *tail = w;
            tail = &w->next;
        }
    }
    if (keep)
        zhashx_insert(a->waiting, r->id, keep);
}

void ty_api_notify(ty_api_t *a, const char *run_id, int logs_only, ty_time_t now) {
    ty_run_t *r = ty_core_find_run(a->core, run_id);
    if (r) {
        ty_notify(a, r, logs_only, now);
        return;
    }
    /* let go of (its waiters were answered when it finished): none may stay */
    ty_waiter_t *w = zhashx_lookup(a->waiting, run_id);
    if (!w)
        return;
    zhashx_delete(a->waiting, run_id);
    while (w) {
        ty_waiter_t *next = w->next;
        ty_reply_error(a, w->peer, w->peer_len, w->req_id, TY_ENOENT,
                       "the run left the master's memory; ask again", now);
        ty_waiter_done(a, w);
        w = next;
    }
}

int64_t ty_api_deadline(const ty_api_t *a) { return a->qhead ? a->qhead->deadline : 0; }

void ty_api_expire(ty_api_t *a, ty_time_t now) {
    /* the runs of the waiters due, from the head of the queue */
    size_t n = 0, cap = 0;
    char **runs = NULL;
    for (ty_waiter_t *w = a->qhead; w && w->deadline <= now.mono_ms; w = w->qnext) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            runs = ty_xrealloc(runs, cap * sizeof *runs);
        }
        runs[n++] = ty_xstrdup(w->run);
    }
    for (size_t i = 0; i < n; i++) {
        ty_api_notify(a, runs[i], 0, now); /* answers those due (once per run) */
        free(runs[i]);
    }
    free(runs);
}

/* Drain or undrain a worker: the cluster's, so an admin's to do when the
 * master has keys. */
static void ty_on_drain(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t rq,
                        const Ty__DrainRequest *dr, ty_time_t now) {
    const char *verb = dr->undo ? "undrain" : "drain";
    char *what = ty_xasprintf("worker %.100s", dr->worker_id);
    if (*ty_api_user(a) && !a->who->admin) {
        ty_warn("audit: user=%s from=%s %s %s: refused (not an admin)", ty_api_user(a),
                a->who->addr && *a->who->addr ? a->who->addr : "-", verb, what);
        char *msg = ty_xasprintf("only an admin (--admin-keys) may %s a worker", verb);
        ty_reply_error(a, peer, peer_len, rq, TY_EPERM, msg, now);
        free(msg);
    } else {
        ty_api_audit(a, verb, what, "allowed");
        ty_ev_t ev = {.kind = TY_EV_DRAIN,
                      .peer = peer,
                      .peer_len = peer_len,
                      .req_id = rq,
                      .key = dr->worker_id,
                      .status = !dr->undo};
        ty_core_step(a->core, &ev, now);
    }
    free(what);
}

static void ty_on_info(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                       ty_time_t now) {
    ty_core_stats_t s;
    ty_core_stats(a->core, &s);
    Ty__InfoReply ir = TY__INFO_REPLY__INIT;
    ir.epoch = a->info->epoch;
    ir.frames_rejected_size = a->info->rejected_size;
    ir.frames_rejected_decode = a->info->rejected_decode;
    ir.etcd_txns = s.txns;
    ir.etcd_ops = s.ops;
    ir.dispatches = s.dispatches;
    ir.etcd_txns_behind = s.txns_behind;
    ir.runs_in_memory = s.runs;
    ir.runs_released = s.runs_released;
    ir.node_id = (char *)(a->info->node_id ? a->info->node_id : "");
    ir.messages_rejected = s.rejected_msgs;
    ir.pid = (uint32_t)getpid();
    ir.leader = 1;
    ir.leader_node = ir.node_id;
    ir.last_rejected = (char *)s.last_reject;
    int64_t quiet = ty_persist_stalled_ms(a->core);
    int64_t since = a->shell.quiet_since ? a->shell.quiet_since(a->shell.arg) : 0;
    if (since && now.mono_ms - since > quiet)
        quiet = now.mono_ms - since;
    ir.etcd_quiet_ms = quiet > 0 ? (uint64_t)quiet : 0;
    ir.curve = a->info->curve;
    ir.auth_refused = a->info->auth_refused;
    ir.peers_banned = a->info->peers_banned;
    ir.banned_dropped = a->info->banned_dropped;
    ir.last_auth_refused = (char *)(a->info->last_auth_refused ? a->info->last_auth_refused : "");
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_INFO_REPLY;
    env.info_reply = &ir;
    ty_reply(a, peer, peer_len, req_id, &env, now);
}

ty_fetch_t *ty_fetch_new(ty_api_t *a, const uint8_t *peer, size_t peer_len,
                         const Ty__Envelope *env) {
    ty_fetch_t *f = ty_xcalloc(1, sizeof *f);
    f->a = a;
    f->peer = ty_xmalloc(peer_len ? peer_len : 1);
    memcpy(f->peer, peer, peer_len);
    f->peer_len = peer_len;
    f->user = ty_xstrdup(ty_api_user(a));
    f->addr = ty_xstrdup(a->who && a->who->addr ? a->who->addr : "");
    f->admin = a->who && a->who->admin;
    size_t len = ty__envelope__get_packed_size(env);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__envelope__pack(env, buf);
    f->req = ty__envelope__unpack(NULL, len, buf);
    free(buf);
    f->next = a->fetches;
    a->fetches = f;
    return f;
}

void ty_fetch_release(ty_fetch_t *f) {
    if (f->a) /* still the handler's (it sets a to NULL when it goes) */
        for (ty_fetch_t **pp = &f->a->fetches; *pp; pp = &(*pp)->next)
            if (*pp == f) {
                *pp = f->next;
                break;
            }
    zhashx_destroy(&f->pins);
    free(f->peer);
    free(f->run_id);
    free(f->user);
    free(f->addr);
    if (f->req)
        ty__envelope__free_unpacked(f->req, NULL);
    free(f);
}

/* The records of a run the core let go of: answer from them. */
static void ty_fetched(int status, const ty_store_kv_t *kvs, size_t n, void *arg) {
    ty_fetch_t *f = arg;
    ty_api_t *a = f->a;
    if (!a) { /* the handler is gone */
        ty_fetch_release(f);
        return;
    }
    ty_time_t now = a->shell.now();
    size_t klen = strlen(f->run_id) + 5;
    ty_run_t *r = NULL;
    for (size_t i = 0; status == 0 && i < n; i++) /* runs/<id> sorts before its tasks */
        if (strlen(kvs[i].key) == klen && strncmp(kvs[i].key + 5, f->run_id, klen - 5) == 0)
            r = ty_persist_decode_run(kvs[i].val, kvs[i].len);
        else if (r && strncmp(kvs[i].key + 5, f->run_id, klen - 5) == 0 &&
                 strncmp(kvs[i].key + klen, "/tasks/", 7) == 0)
            ty_persist_decode_task(r, kvs[i].key + klen + 7, kvs[i].val, kvs[i].len);
    const Ty__Envelope *req = f->req;
    uint64_t rq = req->req_id;
    ty_caller_t who = {.user = f->user, .addr = f->addr, .admin = f->admin};
    a->who = &who; /* the caller of the request answered now */
    if (status != 0) {
        ty_reply_error(a, f->peer, f->peer_len, rq, TY_EUNREACH,
                       "cannot read the run back from etcd; try again", now);
    } else if (!r) {
        char *msg = ty_xasprintf("no such run '%.256s'", f->run_id);
        ty_reply_error(a, f->peer, f->peer_len, rq, TY_ENOENT, msg, now);
        free(msg);
    } else if (req->body_case == TY__ENVELOPE__BODY_STATUS) {
        ty_send_status(a, f->peer, f->peer_len, rq, r, req->status->with_spec, now);
    } else if (req->body_case == TY__ENVELOPE__BODY_PIN) {
        ty_api_pin(a, f->peer, f->peer_len, rq, req->pin, now);
    } else if (req->body_case == TY__ENVELOPE__BODY_RETRY) {
        ty_on_retry(a, f->peer, f->peer_len, rq, r, req->retry, now);
    } else if (req->body_case == TY__ENVELOPE__BODY_MODEL) {
        ty_api_model_register(a, f->peer, f->peer_len, req, r, now);
    } else if (req->body_case == TY__ENVELOPE__BODY_LOGS) {
        ty_waiter_t q = ty_logs_query(req->logs);
        ty_try_logs(a, f->peer, f->peer_len, rq, r, &q, 0, now);
    } else { /* cancel: only finished runs are let go of */
        char *msg = ty_xasprintf("run %s is already %s", r->id, ty_run_state_name(r->state));
        ty_reply_error(a, f->peer, f->peer_len, rq, TY_ESTATE, msg, now);
        free(msg);
    }
    a->who = NULL;
    ty_runs_free(r);
    ty_fetch_release(f);
    if (a->shell.effects)
        a->shell.effects(a->shell.arg);
}

/* run_id is not in the core's memory: a finished run it let go of, or
 * none; the store says which. */
void ty_fetch(ty_api_t *a, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env,
              const char *run_id, ty_time_t now) {
    if (!*run_id || strlen(run_id) > 256 || strchr(run_id, '/')) {
        char *msg = ty_xasprintf("no such run '%.64s'", run_id);
        ty_reply_error(a, peer, peer_len, env->req_id, TY_ENOENT, msg, now);
        free(msg);
        return;
    }
    ty_fetch_t *f = ty_fetch_new(a, peer, peer_len, env);
    f->run_id = ty_xstrdup(run_id);
    char *prefix = ty_xasprintf("runs/%s", run_id);
    if (ty_store_range(a->shell.store, prefix, ty_fetched, f) != 0)
        ty_fetched(TY_EUNREACH, NULL, 0, f);
    free(prefix);
}

static void ty_api_handle(ty_api_t *a, const uint8_t *peer, size_t peer_len,
                          const Ty__Envelope *env, ty_time_t now) {
    uint64_t rq = env->req_id;
    ty_run_t *r = NULL;
    switch (env->body_case) {
    case TY__ENVELOPE__BODY_SUBMIT:
        ty_on_submit(a, peer, peer_len, rq, env->submit, now);
        break;
    case TY__ENVELOPE__BODY_RUNS:
        ty_api_runs(a, peer, peer_len, rq, env->runs, now);
        break;
    case TY__ENVELOPE__BODY_STATUS:
        r = ty_core_find_run(a->core, env->status->run_id);
        if (!r) {
            ty_fetch(a, peer, peer_len, env, env->status->run_id, now);
        } else if (env->status->wait_after && r->version <= env->status->wait_after &&
                   !ty_run_done(r)) {
            ty_waiter_t w = {.wait_after = env->status->wait_after};
            ty_park(a, r, peer, peer_len, rq, &w, now);
        } else {
            ty_send_status(a, peer, peer_len, rq, r, env->status->with_spec, now);
        }
        break;
    case TY__ENVELOPE__BODY_LOGS:
        r = ty_core_find_run(a->core, env->logs->run_id);
        if (!r) {
            ty_fetch(a, peer, peer_len, env, env->logs->run_id, now);
        } else {
            ty_waiter_t w = ty_logs_query(env->logs);
            if (!ty_try_logs(a, peer, peer_len, rq, r, &w, env->logs->wait, now)) {
                w.task = ty_xstrdup(env->logs->task);
                ty_park(a, r, peer, peer_len, rq, &w, now);
            }
        }
        break;
    case TY__ENVELOPE__BODY_CANCEL: {
        r = ty_core_find_run(a->core, env->cancel->run_id);
        if (!r) {
            ty_fetch(a, peer, peer_len, env, env->cancel->run_id, now);
            break;
        }
        char *what = ty_xasprintf("run %s", r->id);
        int may = ty_api_may(a, peer, peer_len, rq, r->owner, "cancel", what, now);
        if (may && r->owner && *r->owner && strcmp(r->owner, ty_api_user(a)) != 0) {
            char *how = ty_xasprintf("allowed (an admin; owned by %s)", r->owner);
            ty_api_audit(a, "cancel", what, how);
            free(how);
        } else if (may) {
            ty_api_audit(a, "cancel", what, "allowed");
        }
        free(what);
        if (!may)
            break;
        ty_ev_t ev = {.kind = TY_EV_CANCEL,
                      .peer = peer,
                      .peer_len = peer_len,
                      .req_id = rq,
                      .run_id = env->cancel->run_id};
        ty_core_step(a->core, &ev, now);
        break;
    }
    case TY__ENVELOPE__BODY_PIPELINES:
        ty_api_pipelines(a, peer, peer_len, rq, env->pipelines, now);
        break;
    case TY__ENVELOPE__BODY_WORKERS:
        ty_api_workers(a, peer, peer_len, rq, now);
        break;
    case TY__ENVELOPE__BODY_DRAIN:
        ty_on_drain(a, peer, peer_len, rq, env->drain, now);
        break;
    case TY__ENVELOPE__BODY_SCHEDULE:
        ty_api_schedule(a, peer, peer_len, env, now);
        break;
    case TY__ENVELOPE__BODY_MODEL:
        ty_api_model(a, peer, peer_len, env, now);
        break;
    case TY__ENVELOPE__BODY_RETRY:
        r = ty_core_find_run(a->core, env->retry->run_id);
        if (!r)
            ty_fetch(a, peer, peer_len, env, env->retry->run_id, now);
        else
            ty_on_retry(a, peer, peer_len, rq, r, env->retry, now);
        break;
    case TY__ENVELOPE__BODY_METRICS:
        ty_api_metrics(a, peer, peer_len, rq, env->metrics, now);
        break;
    case TY__ENVELOPE__BODY_INFO:
        ty_on_info(a, peer, peer_len, rq, now);
        break;
    default:
        if (ty_api_store_request(a, peer, peer_len, env, now))
            break;
        a->info->rejected_decode++;
        ty_reply_error(a, peer, peer_len, rq, TY_EPROTO, "unexpected message on the client socket",
                       now);
        break;
    }
}

void ty_api_request(ty_api_t *a, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env,
                    const ty_caller_t *who, ty_time_t now) {
    a->who = who;
    ty_api_handle(a, peer, peer_len, env, now);
    a->who = NULL;
}
