/* Task attempts as child process groups.  A task runs detached (setsid), so
 * its pid is its process group id and TERM/KILL reach every process it
 * started.  The attempt ends when the child has exited and both pipes are
 * drained; only then is the result sent, after every log chunk. */
#include "worker/worker.h"

#include "common/dag.h"
#include "common/err.h"
#include "common/log.h"
#include "common/report.h"
#include "common/util.h"
#include "worker/launch.h"
#include "worker/orphans.h"
#include "worker/parts.h"
#include "worker/shmdir.h"
#include "worker/tagout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ty_proc {
    ty_wk_t *wk;
    ty_proc_t *next;
    Ty__TaskRef ref; /* strings owned below */
    char *run_id, *task;
    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t timer; /* timeout, then the kill grace */
    uv_timer_t reap;  /* after exit: stop waiting for pipes held by escapees */
    uv_fs_event_t rep;
    int handles;
    int spawned, exited, out_open, err_open, finished, killing;
    int group_wait, group_polls; /* kind: mpi: after exit, until the group is gone */
    int64_t exit_status;
    int term_signal;
    int timed_out, cancelled, interrupted;
    char *error;
    double timeout_s;
    char *dir, *report;
    ty_shmdir_t *shm;    /* kind: mpi: the attempt's own directory (shmdir.h), or NULL */
    ty_rsh_t *rsh;       /* part 0 of a gang across workers: its rsh agent's relay (parts.h) */
    int tag;             /* kind: mpi: mpirun tags its ranks' lines; made "[rank N] " */
    ty_tagout_t tags[2]; /* stdout's and stderr's partial lines (tagout.h) */
    uint64_t rep_off;
    ty_buf_t rep_part;
    uint32_t bad;
    int64_t started_ms;
    char **outputs; /* declared (the Dispatch's) */
    size_t noutputs;
    Ty__ReportItem **arts; /* `artifact NAME PATH` lines */
    size_t narts;
    Ty__KV **regs; /* `register MODEL ARTIFACT` lines: sent with the result */
    size_t nregs;
};

static void ty_proc_closed(uv_handle_t *h) {
    ty_proc_t *p = h->data;
    if (--p->handles > 0)
        return;
    ty_rsh_close(&p->rsh);
    ty_tagout_free(&p->tags[0]);
    ty_tagout_free(&p->tags[1]);
    ty_shmdir_destroy(&p->shm);
    free(p->run_id);
    free(p->task);
    free(p->error);
    free(p->dir);
    free(p->report);
    ty_buf_free(&p->rep_part);
    for (size_t i = 0; i < p->noutputs; i++)
        free(p->outputs[i]);
    free(p->outputs);
    for (size_t i = 0; i < p->narts; i++) {
        ty_report_item_clear(p->arts[i]);
        free(p->arts[i]);
    }
    free(p->arts);
    ty_dag_kvs_free(p->regs, p->nregs);
    free(p);
}

static void ty_close(ty_proc_t *p, uv_handle_t *h) {
    if (!uv_is_closing(h))
        uv_close(h, ty_proc_closed);
}

/* Attempts that run, and those whose outputs are on their way. */
size_t ty_exec_running(const ty_wk_t *wk) {
    size_t n =
        ty_up_count(wk) + ty_fetch_refs((ty_wk_t *)wk, NULL) + ty_parts_refs((ty_wk_t *)wk, NULL);
    for (ty_proc_t *p = wk->procs; p; p = p->next)
        n++;
    return n;
}

Ty__TaskRef **ty_exec_refs(ty_wk_t *wk, size_t *n) {
    *n = ty_exec_running(wk);
    Ty__TaskRef **refs = ty_xcalloc(*n ? *n : 1, sizeof *refs);
    size_t i = ty_up_refs(wk, refs);
    i += ty_fetch_refs(wk, refs + i);
    i += ty_parts_refs(wk, refs + i);
    for (ty_proc_t *p = wk->procs; p; p = p->next)
        refs[i++] = &p->ref;
    return refs;
}

pid_t *ty_exec_sessions(ty_wk_t *wk, size_t *n) {
    *n = 0;
    for (ty_proc_t *p = wk->procs; p; p = p->next)
        (*n)++;
    pid_t *s = ty_xcalloc(*n ? *n : 1, sizeof *s);
    *n = 0;
    for (ty_proc_t *p = wk->procs; p; p = p->next)
        if (p->spawned && !p->exited)
            s[(*n)++] = p->proc.pid;
    return s;
}

static ty_proc_t *ty_find(ty_wk_t *wk, const Ty__TaskRef *ref) {
    for (ty_proc_t *p = wk->procs; p; p = p->next)
        if (p->ref.attempt == ref->attempt && strcmp(p->run_id, ref->run_id) == 0 &&
            strcmp(p->task, ref->task) == 0)
            return p;
    return NULL;
}

/* ---- report lines ---- */

static void ty_report_lines(ty_proc_t *p, int final) {
    int fd = open(p->report, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[16384];
    ssize_t n;
    while ((n = pread(fd, buf, sizeof buf, (off_t)p->rep_off)) > 0) {
        ty_buf_append(&p->rep_part, buf, (size_t)n);
        p->rep_off += (uint64_t)n;
    }
    close(fd);
    Ty__ReportItem *items = NULL;
    size_t nitems = 0;
    for (;;) {
        char *nl = p->rep_part.len ? memchr(p->rep_part.data, '\n', p->rep_part.len) : NULL;
        size_t len = nl ? (size_t)(nl - p->rep_part.data) : p->rep_part.len;
        if (!nl && !(final && len > 0)) {
            if (len > TY_REPORT_LINE_MAX) { /* a runaway line: drop it */
                p->bad++;
                ty_buf_consume(&p->rep_part, len);
            }
            break;
        }
        items = ty_xrealloc(items, (nitems + 1) * sizeof *items);
        if (ty_report_parse(p->rep_part.data, len, &items[nitems]) == 0) {
            if (items[nitems].kind == TY_REPORT_ARTIFACT && p->narts < 4096) {
                Ty__ReportItem *a = ty_xmalloc(sizeof *a); /* uploaded when it ends */
                ty__report_item__init(a);
                a->kind = TY_REPORT_ARTIFACT;
                a->name = ty_xstrdup(items[nitems].name);
                a->text = ty_xstrdup(items[nitems].text);
                p->arts = ty_xrealloc(p->arts, (p->narts + 1) * sizeof *p->arts);
                p->arts[p->narts++] = a;
            } else if (items[nitems].kind == TY_REPORT_REGISTER && p->nregs < 64) {
                p->regs = ty_xrealloc(p->regs, (p->nregs + 1) * sizeof *p->regs);
                Ty__KV *kv = ty_xmalloc(sizeof *kv);
                ty__kv__init(kv);
                kv->key = ty_xstrdup(items[nitems].name);
                kv->value = ty_xstrdup(items[nitems].text);
                p->regs[p->nregs++] = kv;
            }
            nitems++;
        } else if (len > 0)
            p->bad++;
        ty_buf_consume(&p->rep_part, nl ? len + 1 : len);
    }
    if (nitems) {
        Ty__ReportItem **ptrs = ty_xcalloc(nitems, sizeof *ptrs);
        for (size_t i = 0; i < nitems; i++)
            ptrs[i] = &items[i];
        Ty__Report rep = TY__REPORT__INIT;
        rep.ref = &p->ref;
        rep.items = ptrs;
        rep.n_items = nitems;
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.body_case = TY__ENVELOPE__BODY_REPORT;
        env.report = &rep;
        ty_wk_send(p->wk, &env);
        free(ptrs);
    }
    for (size_t i = 0; i < nitems; i++)
        ty_report_item_clear(&items[i]);
    free(items);
}

static void ty_report_changed(uv_fs_event_t *h, const char *file, int events, int status) {
    (void)file;
    (void)events;
    if (status == 0)
        ty_report_lines(h->data, 0);
}

/* ---- lifecycle ---- */

static void ty_maybe_finish(ty_proc_t *p) {
    if (p->finished || !p->exited || p->out_open || p->err_open || p->group_wait)
        return;
    p->finished = 1;
    ty_rsh_close(&p->rsh); /* mpirun is gone: no more launches */
    ty_report_lines(p, 1);
    ty_wk_t *wk = p->wk;
    for (ty_proc_t **pp = &wk->procs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = &p->ref;
    res.exit_code = (int32_t)p->exit_status;
    res.term_signal = p->term_signal;
    res.timed_out = p->timed_out;
    res.cancelled = p->cancelled;
    res.error = p->error ? p->error : (char *)"";
    res.started_ms = p->started_ms;
    res.finished_ms = ty_now_ms();
    res.bad_report_lines = p->bad;
    res.interrupted = p->interrupted;
    res.registers = p->regs;
    res.n_registers = p->nregs;
    ty_info("task %s/%s#%u finished: exit %d signal %d%s%s", p->run_id, p->task, p->ref.attempt,
            res.exit_code, res.term_signal, p->timed_out ? " (timed out)" : "",
            p->cancelled ? " (cancelled)" : "");
    int ok = res.exit_code == 0 && res.term_signal == 0 && !res.timed_out && !res.cancelled &&
             !*res.error && !res.interrupted;
    if (ok && (p->noutputs || p->narts))
        ty_up_start(wk, p->dir, p->outputs, p->noutputs, (const Ty__ReportItem *const *)p->arts,
                    p->narts, &res);
    else
        ty_wk_result(wk, &res);
    ty_close(p, (uv_handle_t *)&p->timer);
    ty_close(p, (uv_handle_t *)&p->reap);
    ty_close(p, (uv_handle_t *)&p->rep);
    ty_close(p, (uv_handle_t *)&p->proc);
}

static void ty_pipe_done(ty_proc_t *p, uv_pipe_t *pipe) {
    if (pipe == &p->out)
        p->out_open = 0;
    else
        p->err_open = 0;
    ty_close(p, (uv_handle_t *)pipe);
    ty_maybe_finish(p);
}

static void ty_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    buf->base = ty_xmalloc(65536);
    buf->len = 65536;
}

static void ty_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    ty_proc_t *p = s->data;
    uint32_t stream = (uv_pipe_t *)s == &p->out ? 1 : 2;
    ty_buf_t tagged = {0};
    const char *data = buf->base;
    size_t len = nread > 0 ? (size_t)nread : 0;
    if (p->tag && nread != 0) { /* whole lines, with their rank (at the end, the rest) */
        ty_tagout_feed(&p->tags[stream - 1], len ? buf->base : "", len, nread < 0, &tagged);
        data = tagged.data;
        len = tagged.len;
    }
    if (len) {
        Ty__LogChunk lc = TY__LOG_CHUNK__INIT;
        lc.ref = &p->ref;
        lc.stream = stream;
        lc.data.data = (uint8_t *)data;
        lc.data.len = len;
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.body_case = TY__ENVELOPE__BODY_LOG;
        env.log = &lc;
        ty_wk_send(p->wk, &env);
    }
    ty_buf_free(&tagged);
    if (nread < 0)
        ty_pipe_done(p, (uv_pipe_t *)s);
    free(buf->base);
}

static void ty_reap_cb(uv_timer_t *h) {
    ty_proc_t *p = h->data;
    /* a process that left the group still holds the pipes: stop waiting */
    if (p->out_open)
        ty_pipe_done(p, &p->out);
    if (p->err_open)
        ty_pipe_done(p, &p->err);
}

/* Whether a process of group pgid still runs (zombies, which can do
 * nothing more, do not count). */
static int ty_group_lives(pid_t pgid) {
    if (kill(-pgid, 0) != 0 && errno == ESRCH)
        return 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int alive = 0;
    struct dirent *e;
    while (!alive && (e = readdir(d))) {
        char *end, path[64], buf[512];
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        const char *r = strrchr(buf, ')'); /* after the command's name */
        char state;
        int ppid, pgrp;
        if (r && sscanf(r + 1, " %c %d %d", &state, &ppid, &pgrp) == 3)
            alive = pgrp == pgid && state != 'Z';
    }
    closedir(d);
    return alive;
}

/* kind: mpi: mpirun can end, and its pipes close, while its ranks, killed
 * with the group, are still dying, and one still starting up can yet make
 * files in the attempt's directory; so the attempt ends, and the directory
 * goes, once no process of the group runs (polled: nothing signals it; at
 * most 5 s). */
static void ty_group_cb(uv_timer_t *h) {
    ty_proc_t *p = h->data;
    if (ty_group_lives(p->proc.pid) && ++p->group_polls < 250)
        return;
    uv_timer_stop(h);
    p->group_wait = 0;
    ty_maybe_finish(p);
}

static void ty_exit_cb(uv_process_t *h, int64_t status, int sig) {
    ty_proc_t *p = h->data;
    p->exited = 1;
    p->exit_status = status;
    p->term_signal = sig;
    kill(-h->pid, SIGKILL); /* whatever else is left in its group */
    int left = p->shm ? ty_orphans_kill_attempt(p->wk->id, p->report) : 0; /* MPI ranks */
    if (left)
        ty_warn("task %s/%s#%u: killed %d process%s left after it ended (MPI ranks)", p->run_id,
                p->task, p->ref.attempt, left, left == 1 ? "" : "es");
    uv_timer_stop(&p->timer);
    uv_timer_start(&p->reap, ty_reap_cb, 2000, 0);
    if (p->shm) {
        p->group_wait = 1;
        uv_timer_start(&p->timer, ty_group_cb, 0, 20);
    }
    ty_maybe_finish(p);
}

static void ty_timer_cb(uv_timer_t *h) {
    ty_proc_t *p = h->data;
    if (p->exited)
        return;
    if (!p->killing) { /* the timeout */
        p->timed_out = 1;
        p->killing = 1;
        ty_info("task %s/%s#%u timed out after %gs: TERM", p->run_id, p->task, p->ref.attempt,
                p->timeout_s);
        kill(-p->proc.pid, SIGTERM);
        uv_timer_start(&p->timer, ty_timer_cb, (uint64_t)p->wk->kill_grace_ms, 0);
    } else {
        ty_info("task %s/%s#%u still alive after the grace period: KILL", p->run_id, p->task,
                p->ref.attempt);
        kill(-p->proc.pid, SIGKILL);
    }
}

static void ty_terminate(ty_proc_t *p) {
    if (p->exited || p->killing || !p->spawned)
        return;
    p->killing = 1;
    kill(-p->proc.pid, SIGTERM);
    uv_timer_start(&p->timer, ty_timer_cb, (uint64_t)p->wk->kill_grace_ms, 0);
}

void ty_exec_cancel(ty_wk_t *wk, const Ty__TaskRef *ref, const char *why) {
    ty_proc_t *p = ref ? ty_find(wk, ref) : NULL;
    if (!p) {
        if (ref && ty_fetch_cancel(wk, ref, "cancelled while its inputs were fetched"))
            return;
        if (ref && ty_parts_cancel(wk, ref, why))
            return;
        if (ref && ty_up_cancel(wk, ref))
            ty_info("cancelled the upload of %s/%s#%u: %s", ref->run_id, ref->task, ref->attempt,
                    why);
        return;
    }
    ty_info("cancelling %s/%s#%u: %s", p->run_id, p->task, p->ref.attempt, why);
    p->cancelled = 1;
    ty_terminate(p);
}

void ty_exec_kill_all(ty_wk_t *wk, const char *why) {
    for (ty_proc_t *p = wk->procs; p; p = p->next) {
        if (!p->error)
            p->error = ty_xstrdup(why);
        p->interrupted = 1;
        ty_terminate(p);
    }
    ty_up_stop_all(wk, why);
    ty_fetch_stop_all(wk, why);
    ty_parts_stop_all(wk, why);
}

static void ty_fail_now(ty_wk_t *wk, const Ty__TaskRef *ref, int code, const char *error) {
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = (Ty__TaskRef *)ref;
    res.exit_code = code;
    res.error = (char *)error;
    res.started_ms = res.finished_ms = ty_now_ms();
    ty_wk_result(wk, &res);
}

void ty_exec_dispatch(ty_wk_t *wk, const Ty__Dispatch *d) {
    const Ty__TaskRef *ref = d->ref;
    if (!ref || !*ref->run_id || !*ref->task || strchr(ref->run_id, '/') ||
        strchr(ref->task, '/') || ref->run_id[0] == '.' || ref->task[0] == '.')
        return;
    if (wk->stopping) {
        ty_info("stopping: not starting %s/%s#%u", ref->run_id, ref->task, ref->attempt);
        return;
    }
    if (ref->epoch < wk->epoch) {
        ty_warn("rejecting dispatch of %s/%s#%u from stale epoch %llu (current %llu)", ref->run_id,
                ref->task, ref->attempt, (unsigned long long)ref->epoch,
                (unsigned long long)wk->epoch);
        return;
    }
    wk->epoch = ref->epoch;
    if (ty_find(wk, ref) || ty_up_has(wk, ref) || ty_fetch_has(wk, ref) || ty_parts_has(wk, ref))
        return; /* a duplicate dispatch: already running */
    for (ty_unacked_t *u = wk->unacked; u; u = u->next)
        if (u->res->ref && u->res->ref->attempt == ref->attempt &&
            strcmp(u->res->ref->run_id, ref->run_id) == 0 &&
            strcmp(u->res->ref->task, ref->task) == 0)
            return; /* already ran; its result is on its way */

    if (d->n_parts > 1 && (d->part >= d->n_parts || d->kind != 1)) {
        ty_fail_now(wk, ref, 127, "a gang part the worker cannot make sense of");
        return;
    }
    if (d->n_parts > 1 && d->part > 0)
        ty_parts_dispatch(wk, d); /* until part 0's mpirun launches it */
    else if (d->n_inputs)
        ty_fetch_start(wk, d); /* then ty_exec_start */
    else
        ty_exec_start(wk, d);
}

/* An attempt that fails before it starts: msg (taken) to the master, p
 * freed through the close path. */
static void ty_fail_early(ty_wk_t *wk, ty_proc_t *p, char *msg) {
    ty_fail_now(wk, &p->ref, 127, msg);
    free(msg);
    uv_timer_init(wk->loop, &p->timer);
    p->timer.data = p;
    p->handles = 1;
    ty_close(p, (uv_handle_t *)&p->timer);
}

void ty_exec_start(ty_wk_t *wk, const Ty__Dispatch *d) {
    const Ty__TaskRef *ref = d->ref;
    ty_proc_t *p = ty_xcalloc(1, sizeof *p);
    p->wk = wk;
    p->run_id = ty_xstrdup(ref->run_id);
    p->task = ty_xstrdup(ref->task);
    ty__task_ref__init(&p->ref);
    p->ref.run_id = p->run_id;
    p->ref.task = p->task;
    p->ref.attempt = ref->attempt;
    p->ref.epoch = ref->epoch;
    p->timeout_s = d->timeout_s;
    p->tag = d->kind == 1;
    if (d->n_outputs) {
        p->outputs = ty_xcalloc(d->n_outputs, sizeof *p->outputs);
        for (size_t i = 0; i < d->n_outputs; i++)
            p->outputs[i] = ty_xstrdup(d->outputs[i]);
        p->noutputs = d->n_outputs;
    }
    p->dir = ty_xasprintf("%s/%s/%s/%u", wk->workdir, p->run_id, p->task, ref->attempt);
    p->report = ty_xasprintf("%s/.trainyard-report", p->dir);
    p->started_ms = ty_now_ms();
    int rc = ty_mkdirs(p->dir);
    int fd = rc == 0 ? open(p->report, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (fd < 0) {
        ty_fail_early(wk, p,
                      ty_xasprintf("cannot create work directory %s: %s", p->dir,
                                   strerror(rc ? -rc : errno)));
        return;
    }
    close(fd);
    /* the attempt's user owns its directory and report file, and the
     * task's directory above it (what attempts keep for the next one, such
     * as ../checkpoints), nothing else of the worker's (the inputs in the
     * attempt directory stay readable, not writable) */
    char *task_dir = ty_xasprintf("%s/%s/%s", wk->workdir, p->run_id, p->task);
    int given = !wk->run_user ||
                (chown(task_dir, wk->run_uid, wk->run_gid) == 0 &&
                 chown(p->dir, wk->run_uid, wk->run_gid) == 0 && chmod(p->dir, 0700) == 0 &&
                 chown(p->report, wk->run_uid, wk->run_gid) == 0);
    free(task_dir);
    if (!given) {
        ty_fail_early(
            wk, p,
            ty_xasprintf("cannot give %s to user %s: %s", p->dir, wk->run_user, strerror(errno)));
        return;
    }
    /* removed with the attempt, whatever its ranks leave there (a gang's
     * other parts run their ranks under Open MPI's daemon) */
    if (d->kind == 1 || d->n_parts > 1) {
        ty_shmdir_sweep("/dev/shm"); /* what crashed workers left */
        int src = ty_shmdir_create(&p->shm, "/dev/shm");
        if (src == 0 && wk->run_user &&
            chown(ty_shmdir_path(p->shm), wk->run_uid, wk->run_gid) != 0)
            ty_warn("task %s/%s#%u: cannot give %s to %s: %s", p->run_id, p->task, ref->attempt,
                    ty_shmdir_path(p->shm), wk->run_user, strerror(errno));
        if (src != 0) /* no /dev/shm: Open MPI's own default places */
            ty_debug("task %s/%s#%u: no directory in /dev/shm: %s", p->run_id, p->task,
                     ref->attempt, strerror(-src));
        if (d->n_parts > 1 && d->part == 0 && /* part 0 of a gang: its mpirun's way to the others */
            ty_rsh_open(&p->rsh, wk, d, p->shm ? ty_shmdir_path(p->shm) : p->dir) != 0) {
            ty_fail_early(wk, p, ty_xasprintf("cannot open the launch relay for mpirun"));
            return;
        }
    }

    uv_pipe_init(wk->loop, &p->out, 0);
    uv_pipe_init(wk->loop, &p->err, 0);
    uv_timer_init(wk->loop, &p->timer);
    uv_timer_init(wk->loop, &p->reap);
    uv_fs_event_init(wk->loop, &p->rep);
    p->out.data = p->err.data = p->timer.data = p->reap.data = p->rep.data = p->proc.data = p;
    p->handles = 6;

    ty_attempt_t a = {.run_id = p->run_id,
                      .task = p->task,
                      .attempt = ref->attempt,
                      .dir = p->dir,
                      .report = p->report,
                      .shm_dir = p->shm ? ty_shmdir_path(p->shm) : NULL,
                      .rsh_path = p->rsh ? ty_rsh_path(p->rsh) : NULL};
    char **argv = ty_build_argv(wk, d, &a), **env = ty_build_env(wk, &a, d);
    uv_stdio_container_t stdio[4];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&p->err;
    uv_process_options_t po;
    memset(&po, 0, sizeof po);
    po.file = argv[0];
    po.args = argv;
    po.env = env;
    po.cwd = p->dir;
    po.flags = UV_PROCESS_DETACHED; /* setsid: the task leads its own process group */
    if (wk->run_user) {             /* libuv also drops the supplementary groups (setgroups 0) */
        po.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
        po.uid = wk->run_uid;
        po.gid = wk->run_gid;
    }
    po.stdio_count = 3;
    if (p->shm) { /* mpirun holds the directory's lock too (fd 3), so a sweep
                   * after a worker crash leaves it while the job still runs;
                   * mpirun closes it in its ranks */
        stdio[3].flags = UV_INHERIT_FD;
        stdio[3].data.fd = ty_shmdir_fd(p->shm);
        po.stdio_count = 4;
    }
    po.stdio = stdio;
    po.exit_cb = ty_exit_cb;
    rc = uv_spawn(wk->loop, &p->proc, &po);
    ty_strv_free(argv);
    ty_strv_free(env);
    if (rc != 0) {
        char *msg = ty_xasprintf("cannot start %s: %s", *d->shell ? "/bin/sh" : d->argv[0],
                                 uv_strerror(rc));
        ty_warn("task %s/%s#%u: %s", p->run_id, p->task, ref->attempt, msg);
        ty_fail_now(wk, &p->ref, 127, msg);
        free(msg);
        ty_close(p, (uv_handle_t *)&p->out);
        ty_close(p, (uv_handle_t *)&p->err);
        ty_close(p, (uv_handle_t *)&p->timer);
        ty_close(p, (uv_handle_t *)&p->reap);
        ty_close(p, (uv_handle_t *)&p->rep);
        ty_close(p, (uv_handle_t *)&p->proc);
        return;
    }
    p->spawned = 1;
    p->out_open = p->err_open = 1;
    uv_read_start((uv_stream_t *)&p->out, ty_alloc, ty_read);
    uv_read_start((uv_stream_t *)&p->err, ty_alloc, ty_read);
    uv_fs_event_start(&p->rep, ty_report_changed, p->report, 0);
    if (p->timeout_s > 0)
        uv_timer_start(&p->timer, ty_timer_cb, (uint64_t)(p->timeout_s * 1000), 0);
    p->next = wk->procs;
    wk->procs = p;
    ty_info("task %s/%s#%u started: pid %d", p->run_id, p->task, ref->attempt, p->proc.pid);
}
