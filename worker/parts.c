/* MPI gangs across workers, the worker's side: see parts.h. */
#include "worker/parts.h"

#include "common/log.h"
#include "common/util.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a part > 0, waiting for its launch ---- */

struct ty_wpart {
    Ty__Dispatch *d; /* unpacked copy */
    ty_wpart_t *next;
};

static int ty_same_ref(const Ty__TaskRef *a, const Ty__TaskRef *b) {
    return a && b && a->attempt == b->attempt && strcmp(a->run_id, b->run_id) == 0 &&
           strcmp(a->task, b->task) == 0;
}

static Ty__Dispatch *ty_dispatch_dup(const Ty__Dispatch *d) {
    size_t len = ty__dispatch__get_packed_size(d);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__dispatch__pack(d, buf);
    Ty__Dispatch *out = ty__dispatch__unpack(NULL, len, buf);
    free(buf);
    return out;
}

static ty_wpart_t **ty_wpart_find(ty_wk_t *wk, const Ty__TaskRef *ref) {
    for (ty_wpart_t **pp = &wk->parts; *pp; pp = &(*pp)->next)
        if (ty_same_ref((*pp)->d->ref, ref))
            return pp;
    return NULL;
}

void ty_parts_dispatch(ty_wk_t *wk, const Ty__Dispatch *d) {
    ty_wpart_t *w = ty_xcalloc(1, sizeof *w);
    w->d = ty_dispatch_dup(d);
    if (!w->d) {
        free(w);
        return;
    }
    w->next = wk->parts;
    wk->parts = w;
    ty_info("task %s/%s#%u: part %u of %zu of its gang (%u ranks here): waiting for mpirun",
            d->ref->run_id, d->ref->task, d->ref->attempt, d->part, d->n_parts,
            d->parts[d->part]->ranks);
}

int ty_parts_has(ty_wk_t *wk, const Ty__TaskRef *ref) { return ty_wpart_find(wk, ref) != NULL; }

size_t ty_parts_refs(ty_wk_t *wk, Ty__TaskRef **out) {
    size_t n = 0;
    for (ty_wpart_t *w = wk->parts; w; w = w->next, n++)
        if (out)
            out[n] = w->d->ref;
    return n;
}

static void ty_wpart_free(ty_wpart_t *w) {
    ty__dispatch__free_unpacked(w->d, NULL);
    free(w);
}

/* A waiting part that ends before its launch: its result says why. */
static void ty_wpart_end(ty_wk_t *wk, ty_wpart_t **pp, int cancelled, int interrupted,
                         const char *why) {
    ty_wpart_t *w = *pp;
    *pp = w->next;
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = w->d->ref;
    res.cancelled = cancelled;
    res.interrupted = interrupted;
    res.error = interrupted ? (char *)why : (char *)"";
    res.started_ms = res.finished_ms = ty_now_ms();
    ty_info("task %s/%s#%u: part %u ends before its launch: %s", res.ref->run_id, res.ref->task,
            res.ref->attempt, w->d->part, why);
    ty_wk_result(wk, &res);
    ty_wpart_free(w);
}

int ty_parts_cancel(ty_wk_t *wk, const Ty__TaskRef *ref, const char *why) {
    ty_wpart_t **pp = ty_wpart_find(wk, ref);
    if (!pp)
        return 0;
    ty_wpart_end(wk, pp, 1, 0, why);
    return 1;
}

void ty_parts_stop_all(ty_wk_t *wk, const char *why) {
    while (wk->parts)
        ty_wpart_end(wk, &wk->parts, 0, 1, why);
}

void ty_parts_launch(ty_wk_t *wk, const Ty__PartLaunch *pl) {
    ty_wpart_t **pp = pl && pl->ref ? ty_wpart_find(wk, pl->ref) : NULL;
    if (!pp || (*pp)->d->part != pl->part || !*pl->command) {
        ty_info("ignoring a launch of part %u of %s/%s#%u: not waiting here", pl ? pl->part : 0,
                pl && pl->ref ? pl->ref->run_id : "?", pl && pl->ref ? pl->ref->task : "?",
                pl && pl->ref ? pl->ref->attempt : 0);
        return;
    }
    ty_wpart_t *w = *pp;
    *pp = w->next;
    /* the part runs Open MPI's daemon as the attempt's command, as ssh
     * would: one shell command line, in the attempt's directory, group and
     * user, killed with it; its ranks inherit the attempt's environment */
    Ty__Dispatch d = *w->d; /* a view: what starts copies what it keeps */
    d.argv = NULL;
    d.n_argv = 0;
    d.shell = pl->command;
    d.kind = 0;
    ty_info("task %s/%s#%u: part %u launched by mpirun", d.ref->run_id, d.ref->task, d.ref->attempt,
            d.part);
    if (d.n_inputs)
        ty_fetch_start(wk, &d); /* then ty_exec_start */
    else
        ty_exec_start(wk, &d);
    ty_wpart_free(w);
}

/* ---- part 0: the rsh agent's relay ---- */

typedef struct {
    uv_pipe_t pipe;
    ty_rsh_t *r;
    ty_buf_t in;
} ty_rsh_conn_t;

struct ty_rsh {
    ty_wk_t *wk;
    uv_pipe_t server;
    char *path;
    Ty__TaskRef ref; /* strings owned below */
    char *run_id, *task;
    char **addrs; /* every part's address, part 0 first */
    size_t naddrs;
    int refs; /* open handles, and the owner until ty_rsh_close */
};

static void ty_rsh_unref(ty_rsh_t *r) {
    if (--r->refs > 0)
        return;
    for (size_t i = 0; i < r->naddrs; i++)
        free(r->addrs[i]);
    free(r->addrs);
    free(r->path);
    free(r->run_id);
    free(r->task);
    free(r);
}

static void ty_conn_closed(uv_handle_t *h) {
    ty_rsh_conn_t *k = h->data;
    ty_rsh_t *r = k->r;
    ty_buf_free(&k->in);
    free(k);
    ty_rsh_unref(r);
}

static void ty_conn_written(uv_write_t *req, int status) {
    (void)status;
    ty_rsh_conn_t *k = req->data;
    free(req);
    uv_close((uv_handle_t *)&k->pipe, ty_conn_closed);
}

static void ty_conn_reply(ty_rsh_conn_t *k, const char *msg) {
    uv_read_stop((uv_stream_t *)&k->pipe);
    size_t len = strlen(msg);
    uv_write_t *req = ty_xmalloc(sizeof *req + len);
    memcpy((char *)(req + 1), msg, len);
    req->data = k;
    uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)len);
    if (uv_write(req, (uv_stream_t *)&k->pipe, &b, 1, ty_conn_written) != 0) {
        free(req);
        uv_close((uv_handle_t *)&k->pipe, ty_conn_closed);
    }
}

/* "HOST\nCOMMAND": part N's daemon, through the master to its worker. */
static void ty_conn_request(ty_rsh_conn_t *k) {
    ty_rsh_t *r = k->r;
    char *s = k->in.data ? k->in.data : (char *)"";
    char *nl = strchr(s, '\n');
    if (!nl || !nl[1] || memchr(s, 0, k->in.len)) {
        ty_conn_reply(k, "error: want a host and a command\n");
        return;
    }
    *nl = '\0';
    size_t part = 0;
    for (size_t i = 1; i < r->naddrs && !part; i++)
        if (strcmp(r->addrs[i], s) == 0)
            part = i;
    if (!part) {
        char *msg = ty_xasprintf("error: no part of this gang is at host '%.200s'\n", s);
        ty_conn_reply(k, msg);
        free(msg);
        return;
    }
    Ty__PartLaunch pl = TY__PART_LAUNCH__INIT;
    pl.ref = &r->ref;
    pl.part = (uint32_t)part;
    pl.command = nl + 1;
    size_t cl = strlen(pl.command);
    if (cl && pl.command[cl - 1] == '\n')
        pl.command[cl - 1] = '\0';
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_PART_LAUNCH;
    env.part_launch = &pl;
    ty_wk_send(r->wk, &env);
    ty_info("task %s/%s#%u: mpirun starts part %zu at %s", r->run_id, r->task, r->ref.attempt, part,
            s);
    ty_conn_reply(k, "ok\n");
}

static void ty_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    buf->base = ty_xmalloc(4096);
    buf->len = 4096;
}

#define TY_RSH_MAX 65536 /* an orted command line is a few hundred bytes */

static void ty_conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    ty_rsh_conn_t *k = s->data;
    if (n > 0)
        ty_buf_append(&k->in, buf->base, (size_t)n);
    free(buf->base);
    if (n > 0 && k->in.len > TY_RSH_MAX)
        ty_conn_reply(k, "error: request too long\n");
    else if (n == UV_EOF)
        ty_conn_request(k);
    else if (n < 0)
        uv_close((uv_handle_t *)&k->pipe, ty_conn_closed);
}

static void ty_rsh_accept(uv_stream_t *server, int status) {
    ty_rsh_t *r = server->data;
    if (status != 0)
        return;
    ty_rsh_conn_t *k = ty_xcalloc(1, sizeof *k);
    k->r = r;
    uv_pipe_init(r->wk->loop, &k->pipe, 0);
    k->pipe.data = k;
    r->refs++;
    if (uv_accept(server, (uv_stream_t *)&k->pipe) != 0) {
        uv_close((uv_handle_t *)&k->pipe, ty_conn_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&k->pipe, ty_conn_alloc, ty_conn_read);
}

static void ty_server_closed(uv_handle_t *h) { ty_rsh_unref(h->data); }

int ty_rsh_open(ty_rsh_t **out, ty_wk_t *wk, const Ty__Dispatch *d, const char *dir) {
    *out = NULL;
    ty_rsh_t *r = ty_xcalloc(1, sizeof *r);
    r->wk = wk;
    r->path = ty_xasprintf("%s/rsh", dir);
    r->run_id = ty_xstrdup(d->ref->run_id);
    r->task = ty_xstrdup(d->ref->task);
    ty__task_ref__init(&r->ref);
    r->ref.run_id = r->run_id;
    r->ref.task = r->task;
    r->ref.attempt = d->ref->attempt;
    r->ref.epoch = d->ref->epoch;
    r->naddrs = d->n_parts;
    r->addrs = ty_xcalloc(r->naddrs, sizeof *r->addrs);
    for (size_t i = 0; i < d->n_parts; i++)
        r->addrs[i] = ty_xstrdup(d->parts[i]->address);
    r->refs = 2; /* the server handle, and the owner */
    uv_pipe_init(wk->loop, &r->server, 0);
    r->server.data = r;
    unlink(r->path);
    int rc = uv_pipe_bind(&r->server, r->path);
    if (rc == 0 && wk->run_user && chown(r->path, wk->run_uid, wk->run_gid) != 0)
        rc = UV_EPERM;
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&r->server, 8, ty_rsh_accept);
    if (rc != 0) {
        ty_warn("cannot listen on %s for mpirun's launches: %s", r->path, uv_strerror(rc));
        uv_close((uv_handle_t *)&r->server, ty_server_closed);
        ty_rsh_unref(r);
        return rc;
    }
    *out = r;
    return 0;
}

const char *ty_rsh_path(const ty_rsh_t *r) { return r->path; }

void ty_rsh_close(ty_rsh_t **rp) {
    ty_rsh_t *r = *rp;
    if (!r)
        return;
    *rp = NULL;
    unlink(r->path);
    uv_close((uv_handle_t *)&r->server, ty_server_closed);
    ty_rsh_unref(r);
}
