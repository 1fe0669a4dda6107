/* The client socket: submit, runs, status (with long-poll), logs (with
 * follow), cancel, workers and info.  Replies go through the state outbox so a
 * client never sees a state that is not yet durable in etcd. */
#include "master/master.h"

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

static void ty_reply(ty_master_t *m, zframe_t *id, uint64_t req_id, Ty__Envelope *env) {
    env->req_id = req_id;
    ty_state_send(m, m->csock, id, env);
}

static void ty_reply_error(ty_master_t *m, zframe_t *id, uint64_t req_id, int code,
                           const char *msg) {
    Ty__ErrorReply e = TY__ERROR_REPLY__INIT;
    e.code = code;
    e.message = (char *)msg;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_ERROR;
    env.error = &e;
    ty_reply(m, id, req_id, &env);
}

static void ty_on_submit(ty_master_t *m, zframe_t *id, uint64_t req_id,
                         const Ty__SubmitRequest *req) {
    Ty__PipelineSpec *spec = NULL, *resolved = NULL;
    char *err = NULL;
    const char *fname = *req->filename ? req->filename : "<submitted>";
    int rc = ty_dag_load_string(req->yaml, strlen(req->yaml), fname, &spec, &err);
    if (rc != 0) {
        ty_reply_error(m, id, req_id, rc, err ? err : ty_strerror(rc));
        free(err);
        return;
    }
    Ty__KV **params = NULL;
    size_t np = 0;
    rc = ty_dag_resolve(spec, req->params, req->n_params, &resolved, &params, &np, &err);
    if (rc != 0) {
        ty_reply_error(m, id, req_id, rc, err);
        free(err);
        ty_dag_free(&spec);
        return;
    }
    /* the validated spec, as submitted, under pipelines/<name> */
    size_t len = ty__pipeline_spec__get_packed_size(spec);
    uint8_t *buf = ty_xmalloc(len);
    ty__pipeline_spec__pack(spec, buf);
    char *key = ty_state_key(m, "pipelines/%s", spec->name);
    ty_state_put_raw(m, key, buf, len);
    free(key);

    unsigned char rnd[4];
    ty_random_bytes(rnd, sizeof rnd);
    char *run_id = ty_xasprintf("%s-%02x%02x%02x%02x", spec->name, rnd[0], rnd[1], rnd[2], rnd[3]);
    ty_dag_free(&spec);
    ty_run_t *r = ty_sched_run_new(m, run_id, resolved, params, np);
    ty_sched_run_start(m, r);
    ty_info("run %s submitted (%zu tasks)", run_id, r->ntasks);
    Ty__SubmitReply sr = TY__SUBMIT_REPLY__INIT;
    sr.run_id = run_id;
    sr.state = r->state;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_SUBMIT_REPLY;
    env.submit_reply = &sr;
    ty_reply(m, id, req_id, &env);
    free(run_id);
}

static void ty_send_status(ty_master_t *m, zframe_t *id, uint64_t req_id, ty_run_t *r) {
    Ty__RunRecord rr;
    ty_state_run_record(r, &rr, 0);
    Ty__TaskRecord *recs = ty_xcalloc(r->ntasks, sizeof *recs);
    Ty__TaskRecord **ptrs = ty_xcalloc(r->ntasks, sizeof *ptrs);
    for (size_t i = 0; i < r->ntasks; i++) {
        ty_state_task_record(&r->tasks[i], &recs[i]);
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
    ty_reply(m, id, req_id, &env);
    for (size_t i = 0; i < r->ntasks; i++)
        ty_state_task_record_clear(&recs[i]);
    free(recs);
    free(ptrs);
}

static int ty_run_done(const ty_run_t *r) {
    return r->state != TY_RUN_PENDING && r->state != TY_RUN_RUNNING;
}

/* Reply to a logs request if there is data or the attempt has ended;
 * returns 0 when the request should wait. */
static int ty_try_logs(ty_master_t *m, zframe_t *id, uint64_t req_id, ty_run_t *r, const char *task,
                       uint32_t attempt, uint64_t offset, int wait) {
    int ti = ty_dag_task_index(r->spec, task);
    if (ti < 0) {
        ty_reply_error(m, id, req_id, TY_ENOENT, "no such task in this run");
        return 1;
    }
    ty_task_t *t = &r->tasks[ti];
    if (attempt == 0)
        attempt = t->attempt;
    /* attempt 0: the task has not started yet; it ends only if it never will */
    int ended = attempt == 0 ? ty_task_state_terminal(t->state)
                             : attempt < t->attempt || ty_task_state_terminal(t->state) ||
                                   t->state == TY_TASK_QUEUED;
    Ty__LogsReply lr = TY__LOGS_REPLY__INIT;
    uint8_t *data = NULL;
    size_t n = 0;
    if (attempt > 0) {
        char *path = ty_workers_log_path(m, r->id, task, attempt);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        free(path);
        if (fd >= 0) {
            struct stat st;
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
    ty_reply(m, id, req_id, &env);
    free(data);
    return 1;
}

static void ty_park(ty_run_t *r, zframe_t *id, uint64_t req_id, ty_waiter_t *tmpl) {
    ty_waiter_t *w = ty_xcalloc(1, sizeof *w);
    *w = *tmpl;
    w->identity = zframe_dup(id);
    w->req_id = req_id;
    w->deadline = ty_mono_ms() + TY_WAIT_MAX_MS;
    w->next = r->waiters;
    r->waiters = w;
}

static void ty_waiter_free(ty_waiter_t *w) {
    zframe_destroy(&w->identity);
    free(w->task);
    free(w);
}

/* Answer the waiters of r that can be answered; force answers all. */
static void ty_notify(ty_master_t *m, ty_run_t *r, int logs_only, int force) {
    ty_waiter_t **pp = &r->waiters;
    int64_t now = ty_mono_ms();
    while (*pp) {
        ty_waiter_t *w = *pp;
        int expired = force || now >= w->deadline;
        int done = 0;
        if (w->is_logs)
            done =
                ty_try_logs(m, w->identity, w->req_id, r, w->task, w->attempt, w->offset, !expired);
        else if ((!logs_only && (r->version > w->wait_after || ty_run_done(r))) || expired) {
            ty_send_status(m, w->identity, w->req_id, r);
            done = 1;
        }
        if (done) {
            *pp = w->next;
            ty_waiter_free(w);
        } else {
            pp = &w->next;
        }
    }
}

void ty_api_notify(ty_master_t *m, ty_run_t *r, int logs_only) {
    if (r->waiters)
        ty_notify(m, r, logs_only, 0);
}

void ty_api_expire_waiters(ty_master_t *m) {
    int64_t now = ty_mono_ms();
    for (size_t k = 0; k < m->nruns; k++) {
        ty_run_t *r = m->order[k];
        for (ty_waiter_t *w = r->waiters; w; w = w->next)
            if (now >= w->deadline) {
                ty_notify(m, r, 0, 0);
                break;
            }
    }
}

static void ty_on_runs(ty_master_t *m, zframe_t *id, uint64_t req_id, const Ty__RunsRequest *req) {
    size_t limit = req->limit ? req->limit : 100, n = m->nruns < limit ? m->nruns : limit;
    Ty__RunRecord *recs = ty_xcalloc(n, sizeof *recs);
    Ty__RunStatus *sts = ty_xcalloc(n, sizeof *sts);
    Ty__RunStatus **ptrs = ty_xcalloc(n, sizeof *ptrs);
    for (size_t i = 0; i < n; i++) { /* newest first */
        ty_run_t *r = m->order[m->nruns - 1 - i];
        ty_state_run_record(r, &recs[i], 0);
        ty__run_status__init(&sts[i]);
        sts[i].run = &recs[i];
        sts[i].version = r->version;
        ptrs[i] = &sts[i];
    }
    Ty__RunsReply rr = TY__RUNS_REPLY__INIT;
    rr.runs = ptrs;
    rr.n_runs = n;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RUNS_REPLY;
    env.runs_reply = &rr;
    ty_reply(m, id, req_id, &env);
    free(recs);
    free(sts);
    free(ptrs);
}

static void ty_on_workers(ty_master_t *m, zframe_t *id, uint64_t req_id) {
    size_t n = zhashx_size(m->workers), i = 0;
    Ty__WorkerStatus *ws = ty_xcalloc(n, sizeof *ws);
    Ty__WorkerStatus **ptrs = ty_xcalloc(n, sizeof *ptrs);
    Ty__Resources *tot = ty_xcalloc(n, sizeof *tot), *used = ty_xcalloc(n, sizeof *used);
    int64_t now = ty_mono_ms();
    for (ty_worker_t *w = zhashx_first(m->workers); w; w = zhashx_next(m->workers), i++) {
        ty__worker_status__init(&ws[i]);
        ty__resources__init(&tot[i]);
        ty__resources__init(&used[i]);
        ws[i].id = w->id;
        ws[i].state = w->up ? "up" : w->gone ? "gone" : "lost";
        ws[i].hostname = w->hostname ? w->hostname : "";
        tot[i].cpus = w->cpus;
        tot[i].mem_mb = w->mem_mb;
        tot[i].gpus = w->gpus;
        tot[i].labels = w->labels;
        tot[i].n_labels = w->nlabels;
        used[i].cpus = w->used_cpus;
        used[i].mem_mb = w->used_mem;
        used[i].gpus = (uint32_t)__builtin_popcountll(w->gpu_busy);
        ws[i].total = &tot[i];
        ws[i].used = &used[i];
        ws[i].running = w->running;
        ws[i].last_seen_ms = w->last_seen ? ty_now_ms() - (now - w->last_seen) : 0;
        ptrs[i] = &ws[i];
    }
    Ty__WorkersReply wr = TY__WORKERS_REPLY__INIT;
    wr.workers = ptrs;
    wr.n_workers = n;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_WORKERS_REPLY;
    env.workers_reply = &wr;
    ty_reply(m, id, req_id, &env);
    free(ws);
    free(ptrs);
    free(tot);
    free(used);
}

static void ty_on_info(ty_master_t *m, zframe_t *id, uint64_t req_id) {
    Ty__InfoReply ir = TY__INFO_REPLY__INIT;
    ir.epoch = m->epoch;
    ir.frames_rejected_size = m->rejected_size;
    ir.frames_rejected_decode = m->rejected_decode;
    ir.etcd_txns = m->txns;
    ir.etcd_ops = m->ops;
    ir.dispatches = m->dispatches;
    ir.node_id = m->o.node_id;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_INFO_REPLY;
    env.info_reply = &ir;
    ty_reply(m, id, req_id, &env);
}

void ty_api_on_message(void *arg) {
    ty_master_t *m = arg;
    zframe_t *id = NULL;
    Ty__Envelope *env = NULL;
    if (ty_state_recv(m, m->csock, &id, &env) != 0)
        return;
    uint64_t rq = env->req_id;
    ty_run_t *r = NULL;
    switch (env->body_case) {
    case TY__ENVELOPE__BODY_SUBMIT:
        ty_on_submit(m, id, rq, env->submit);
        break;
    case TY__ENVELOPE__BODY_RUNS:
        ty_on_runs(m, id, rq, env->runs);
        break;
    case TY__ENVELOPE__BODY_STATUS:
        r = zhashx_lookup(m->runs, env->status->run_id);
        if (!r) {
            ty_reply_error(m, id, rq, TY_ENOENT, "no such run");
        } else if (env->status->wait_after && r->version <= env->status->wait_after &&
                   !ty_run_done(r)) {
            ty_waiter_t w = {.wait_after = env->status->wait_after};
            ty_park(r, id, rq, &w);
        } else {
            ty_send_status(m, id, rq, r);
        }
        break;
    case TY__ENVELOPE__BODY_LOGS:
        r = zhashx_lookup(m->runs, env->logs->run_id);
        if (!r) {
            ty_reply_error(m, id, rq, TY_ENOENT, "no such run");
        } else if (!ty_try_logs(m, id, rq, r, env->logs->task, env->logs->attempt,
                                env->logs->offset, env->logs->wait)) {
            ty_waiter_t w = {.is_logs = 1,
                             .task = ty_xstrdup(env->logs->task),
                             .attempt = env->logs->attempt,
                             .offset = env->logs->offset};
            ty_park(r, id, rq, &w);
        }
        break;
    case TY__ENVELOPE__BODY_CANCEL:
        r = zhashx_lookup(m->runs, env->cancel->run_id);
        if (!r) {
            ty_reply_error(m, id, rq, TY_ENOENT, "no such run");
        } else if (ty_sched_cancel_run(m, r) != 0) {
            char *msg = ty_xasprintf("run %s is already %s", r->id, ty_run_state_name(r->state));
            ty_reply_error(m, id, rq, TY_ESTATE, msg);
            free(msg);
        } else {
            Ty__CancelReply cr = TY__CANCEL_REPLY__INIT;
            cr.state = r->state;
            Ty__Envelope out = TY__ENVELOPE__INIT;
            out.body_case = TY__ENVELOPE__BODY_CANCEL_REPLY;
            out.cancel_reply = &cr;
            ty_reply(m, id, rq, &out);
        }
        break;
    case TY__ENVELOPE__BODY_WORKERS:
        ty_on_workers(m, id, rq);
        break;
    case TY__ENVELOPE__BODY_INFO:
        ty_on_info(m, id, rq);
        break;
    default:
        m->rejected_decode++;
        ty_reply_error(m, id, rq, TY_EPROTO, "unexpected message on the client socket");
        break;
    }
    ty_wire_free(&env);
    zframe_destroy(&id);
}
