/* The HTTP API's decisions (http_route.h). */
#include "master/http_route.h"

#include "common/dag.h"
#include "common/err.h"
#include "common/json.h"
#include "common/render.h"
#include "common/wire.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define TY_HTTP_MAX_SEGS 16

char *ty_http_error_body(const char *msg) {
    json_t *o = json_object();
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--; /* the handler's messages may end as a terminal's line does */
    json_object_set_new(o, "error", json_stringn(msg, n));
    char *s = ty_json_text(o, 0);
    json_decref(o);
    return s;
}

int ty_http_error_status(int code) {
    switch (code) {
    case TY_EINVAL:
    case TY_EPARSE:
    case TY_ECYCLE:
    case TY_ETOOBIG:
    case TY_ENORES:
        return 400;
    case TY_EPERM:
        return 403;
    case TY_ENOENT:
        return 404;
    case TY_ESTATE:
    case TY_EEXIST:
        return 409;
    case TY_EUNAVAIL:
    case TY_EUNREACH:
    case TY_ETIMEOUT:
        return 503;
    default:
        return 500;
    }
}

static void ty_answer(ty_route_t *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ty_answer(ty_route_t *r, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = ty_xvasprintf(fmt, ap);
    va_end(ap);
    r->view = TY_VIEW_NONE;
    r->status = status;
    r->body = ty_http_error_body(msg);
    free(msg);
}

/* env (built on the stack) as an owned copy. */
static Ty__Envelope *ty_own(Ty__Envelope *env) {
    env->version = TY_WIRE_VERSION;
    size_t n = ty__envelope__get_packed_size(env);
    uint8_t *buf = ty_xmalloc(n ? n : 1);
    ty__envelope__pack(env, buf);
    Ty__Envelope *out = NULL;
    if (ty_wire_decode(buf, n, n + 1, &out) != 0)
        abort(); /* what was just packed reads back */
    free(buf);
    return out;
}

/* A numeric query argument in [lo, hi]; 0 when absent; -1 (answered) when bad. */
static int ty_num_arg(ty_route_t *r, ty_http_arg_fn arg, void *ctx, const char *name, int64_t lo,
                      int64_t hi, int64_t *out) {
    const char *v = arg(ctx, name);
    if (!v)
        return 0;
    if (ty_parse_i64(v, lo, hi, out) != 0) {
        ty_answer(r, 400, "%s needs an integer from %lld to %lld, got '%.64s'", name, (long long)lo,
                  (long long)hi, v);
        return -1;
    }
    return 1;
}

static void ty_route_runs(ty_route_t *r, ty_http_arg_fn arg, void *ctx, int64_t now_ms) {
    Ty__RunsRequest rr = TY__RUNS_REQUEST__INIT;
    const char *v;
    int64_t n = 0;
    if (ty_num_arg(r, arg, ctx, "limit", 1, UINT32_MAX, &n) < 0)
        return;
    rr.limit = (uint32_t)n;
    if ((v = arg(ctx, "state")) != NULL) {
        int ok = 0;
        for (unsigned s = 0; s < TY_RUN_NSTATES; s++)
            ok |= strcmp(v, ty_run_state_name(s)) == 0;
        if (!ok) {
            ty_answer(r, 400,
                      "state: no such run state '%.64s' (pending, running, succeeded, "
                      "failed, cancelled)",
                      v);
            return;
        }
        rr.state = (char *)v;
    }
    if ((v = arg(ctx, "since")) != NULL && ty_parse_since(v, now_ms, &rr.since_ms) != 0) {
        ty_answer(r, 400,
                  "since: want an age (30m, 2h, 7d) or a UTC time (2026-12-01T08:00:00Z), "
                  "got '%.64s'",
                  v);
        return;
    }
    if ((v = arg(ctx, "pipeline")) != NULL)
        rr.pipeline = (char *)v;
    if ((v = arg(ctx, "owner")) != NULL)
        rr.owner = (char *)v;
    if ((v = arg(ctx, "schedule")) != NULL)
        rr.schedule = (char *)v;
    if ((v = arg(ctx, "prefix")) != NULL)
        rr.id_prefix = (char *)v;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RUNS;
    env.runs = &rr;
    r->view = TY_VIEW_RUNS;
    r->req = ty_own(&env);
}

/* POST /api/v1/runs: {"yaml": TEXT, "filename": NAME, "params": {K: V}, "request_id": ID} */
static void ty_route_submit(ty_route_t *r, const char *body, size_t body_len) {
    json_error_t jerr;
    json_t *j = json_loadb(body ? body : "", body_len, 0, &jerr);
    if (!j || !json_is_object(j)) {
        ty_answer(r, 400, "the body must be a JSON object: %s",
                  j ? "it is not an object" : jerr.text);
        json_decref(j);
        return;
    }
    json_t *yaml = json_object_get(j, "yaml"), *fname = json_object_get(j, "filename");
    json_t *params = json_object_get(j, "params"), *rid = json_object_get(j, "request_id");
    const char *bad = !json_is_string(yaml)               ? "yaml must be a string"
                      : fname && !json_is_string(fname)   ? "filename must be a string"
                      : rid && !json_is_string(rid)       ? "request_id must be a string"
                      : params && !json_is_object(params) ? "params must be an object"
                                                          : NULL;
    size_t np = params ? json_object_size(params) : 0;
    Ty__KV *kvs = ty_xcalloc(np ? np : 1, sizeof *kvs);
    Ty__KV **kvp = ty_xcalloc(np ? np : 1, sizeof *kvp);
    char **vals = ty_xcalloc(np ? np : 1, sizeof *vals);
    size_t k = 0;
    const char *key;
    json_t *val;
    if (!bad && params)
        json_object_foreach(params, key, val) {
            ty__kv__init(&kvs[k]);
            kvs[k].key = (char *)key;
            if (json_is_string(val))
                vals[k] = ty_xstrdup(json_string_value(val));
            else if (json_is_number(val) || json_is_boolean(val))
                vals[k] = ty_json_text(val, 0); /* 3, 0.05, true: as the CLI's -p writes them */
            else {
                bad = "params' values must be strings, numbers or booleans";
                break;
            }
            kvs[k].value = vals[k];
            kvp[k] = &kvs[k];
            k++;
        }
    if (bad) {
        ty_answer(r, 400, "%s", bad);
    } else {
        Ty__SubmitRequest sr = TY__SUBMIT_REQUEST__INIT;
        sr.yaml = (char *)json_string_value(yaml);
        sr.filename = fname ? (char *)json_string_value(fname) : "api";
        sr.request_id = rid ? (char *)json_string_value(rid) : "";
        sr.params = kvp;
        sr.n_params = k;
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.body_case = TY__ENVELOPE__BODY_SUBMIT;
        env.submit = &sr;
        r->view = TY_VIEW_SUBMIT;
        r->write = 1;
        r->req = ty_own(&env);
    }
    for (size_t i = 0; i < k; i++)
        free(vals[i]);
    free(vals);
    free(kvs);
    free(kvp);
    json_decref(j);
}

/* GET /api/v1/runs/RUN/tasks/TASK/logs */
static void ty_route_logs(ty_route_t *r, const char *task, ty_http_arg_fn arg, void *ctx) {
    int64_t v = 0;
    if (ty_num_arg(r, arg, ctx, "attempt", 1, UINT32_MAX, &v) < 0)
        return;
    r->attempt = (uint32_t)v;
    v = 0;
    if (ty_num_arg(r, arg, ctx, "tail", 1, 100000, &v) < 0)
        return;
    r->tail = (uint32_t)v;
    const char *f = arg(ctx, "follow");
    r->follow = f && strcmp(f, "0") != 0 && strcmp(f, "false") != 0;
    const char *last = arg(ctx, "Last-Event-ID"); /* an EventSource reconnecting */
    if (last && r->follow) {
        unsigned a = 0;
        unsigned long long off = 0;
        char tail;
        if (sscanf(last, "%u:%llu%c", &a, &off, &tail) != 2 || a == 0) {
            ty_answer(r, 400, "Last-Event-ID: want ATTEMPT:OFFSET, got '%.64s'", last);
            return;
        }
        r->attempt = a;
        r->offset = off;
        r->tail = 0;
    }
    r->task = ty_xstrdup(task);
    r->view = TY_VIEW_LOGS;
}

void ty_http_route(const char *method, const char *path, ty_http_arg_fn arg, void *ctx,
                   const char *body, size_t body_len, int64_t now_ms, ty_route_t *out) {
    memset(out, 0, sizeof *out);
    static const char prefix[] = "/api/v1/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0) {
        ty_answer(out, 404, "no such path: %.200s (the API is under /api/v1/)", path);
        return;
    }
    char *copy = ty_xstrdup(path + sizeof prefix - 1), *seg[TY_HTTP_MAX_SEGS], *save = NULL;
    size_t n = 0;
    for (char *s = copy; s; s = save) { /* "a//b" and "a/" name nothing */
        save = strchr(s, '/');
        if (save)
            *save++ = '\0';
        if (n == TY_HTTP_MAX_SEGS || (!*s && (save || n == 0))) {
            n = TY_HTTP_MAX_SEGS + 1;
            break;
        }
        if (*s)
            seg[n++] = s;
    }
    if (n > TY_HTTP_MAX_SEGS) {
        ty_answer(out, 404, "no such path: %.200s", path);
        free(copy);
        return;
    }
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int post = strcmp(method, "POST") == 0;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    const char *want = "GET"; /* the method the path takes, when it was another */
    if (n == 1 && strcmp(seg[0], "runs") == 0 && get) {
        ty_route_runs(out, arg, ctx, now_ms);
    } else if (n == 1 && strcmp(seg[0], "runs") == 0 && post) {
        ty_route_submit(out, body, body_len);
    } else if (n == 1 && strcmp(seg[0], "runs") == 0) {
        want = "GET or POST";
        out->status = 405;
    } else if (n >= 2 && strcmp(seg[0], "runs") == 0) {
        out->run_id = ty_xstrdup(seg[1]);
        if (n >= 5 && strcmp(seg[2], "artifacts") == 0) { /* RUN/artifacts/TASK/NAME... */
            if (!get) {
                out->status = 405;
            } else {
                Ty__StatusRequest sr = TY__STATUS_REQUEST__INIT;
                sr.run_id = seg[1];
                env.body_case = TY__ENVELOPE__BODY_STATUS;
                env.status = &sr;
                out->view = TY_VIEW_ARTIFACT;
                out->task = ty_xstrdup(seg[3]);
                ty_buf_t nm = {0};
                for (size_t i = 4; i < n; i++)
                    ty_buf_printf(&nm, "%s%s", i > 4 ? "/" : "", seg[i]);
                out->name = nm.data;
                out->req = ty_own(&env);
            }
        } else if (n == 2 || (n == 3 && strcmp(seg[2], "artifacts") == 0)) {
            if (!get) {
                out->status = 405;
            } else {
                int64_t after = 0;
                if (ty_num_arg(out, arg, ctx, "wait_after", 0, INT64_MAX, &after) >= 0) {
                    Ty__StatusRequest sr = TY__STATUS_REQUEST__INIT;
                    sr.run_id = seg[1];
                    sr.wait_after = (uint64_t)after;
                    const char *spec = arg(ctx, "spec");
                    sr.with_spec = spec && strcmp(spec, "0") != 0 && strcmp(spec, "false") != 0;
                    env.body_case = TY__ENVELOPE__BODY_STATUS;
                    env.status = &sr;
                    out->view = n == 2 ? TY_VIEW_RUN : TY_VIEW_ARTIFACTS;
                    out->req = ty_own(&env);
                }
            }
        } else if (n == 3 && strcmp(seg[2], "cancel") == 0) {
            if (!post) {
                want = "POST";
                out->status = 405;
            } else {
                Ty__CancelRequest cr = TY__CANCEL_REQUEST__INIT;
                cr.run_id = seg[1];
                env.body_case = TY__ENVELOPE__BODY_CANCEL;
                env.cancel = &cr;
                out->view = TY_VIEW_CANCEL;
                out->write = 1;
                out->req = ty_own(&env);
            }
        } else if (n == 3 && strcmp(seg[2], "metrics") == 0) {
            if (!get) {
                out->status = 405;
            } else {
                Ty__MetricsRequest mr = TY__METRICS_REQUEST__INIT;
                mr.run_id = seg[1];
                const char *task = arg(ctx, "task");
                mr.task = task ? (char *)task : "";
                env.body_case = TY__ENVELOPE__BODY_METRICS;
                env.metrics = &mr;
                out->view = TY_VIEW_METRICS;
                out->req = ty_own(&env);
            }
        } else if (n == 5 && strcmp(seg[2], "tasks") == 0 && strcmp(seg[4], "logs") == 0) {
            if (!get)
                out->status = 405;
            else
                ty_route_logs(out, seg[3], arg, ctx);
        } else {
            ty_answer(out, 404, "no such path: %.200s", path);
        }
    } else if ((n == 1 || n == 2) && strcmp(seg[0], "schedules") == 0) {
        Ty__ScheduleRequest sq = TY__SCHEDULE_REQUEST__INIT;
        sq.op = n == 1 ? "list" : "show";
        sq.name = n == 2 ? seg[1] : "";
        env.body_case = TY__ENVELOPE__BODY_SCHEDULE;
        env.schedule = &sq;
        if (!get) {
            out->status = 405;
        } else {
            out->view = n == 1 ? TY_VIEW_SCHEDULES : TY_VIEW_SCHEDULE;
            out->req = ty_own(&env);
        }
    } else if ((n == 1 || n == 2 || (n == 3 && strcmp(seg[2], "history") == 0)) &&
               strcmp(seg[0], "models") == 0) {
        Ty__ModelRequest mq = TY__MODEL_REQUEST__INIT;
        mq.op = n == 3 ? "history" : "list";
        mq.name = n >= 2 ? seg[1] : "";
        env.body_case = TY__ENVELOPE__BODY_MODEL;
        env.model = &mq;
        if (!get) {
            out->status = 405;
        } else {
            out->view = n == 1 ? TY_VIEW_MODELS : n == 2 ? TY_VIEW_MODEL : TY_VIEW_MODEL_HISTORY;
            out->req = ty_own(&env);
        }
    } else if (n == 1 && (strcmp(seg[0], "workers") == 0 || strcmp(seg[0], "pipelines") == 0 ||
                          strcmp(seg[0], "info") == 0)) {
        Ty__WorkersRequest wr = TY__WORKERS_REQUEST__INIT;
        Ty__PipelinesRequest pr = TY__PIPELINES_REQUEST__INIT;
        Ty__InfoRequest ir = TY__INFO_REQUEST__INIT;
        int64_t limit = 0;
        if (!get) {
            out->status = 405;
        } else if (seg[0][0] == 'w') {
            env.body_case = TY__ENVELOPE__BODY_WORKERS;
            env.workers = &wr;
            out->view = TY_VIEW_WORKERS;
        } else if (seg[0][0] == 'i') {
            env.body_case = TY__ENVELOPE__BODY_INFO;
            env.info = &ir;
            out->view = TY_VIEW_INFO;
        } else if (ty_num_arg(out, arg, ctx, "limit", 1, UINT32_MAX, &limit) >= 0) {
            pr.limit = (uint32_t)limit;
            env.body_case = TY__ENVELOPE__BODY_PIPELINES;
            env.pipelines = &pr;
            out->view = TY_VIEW_PIPELINES;
        }
        if (out->view != TY_VIEW_NONE)
            out->req = ty_own(&env);
    } else {
        ty_answer(out, 404, "no such path: %.200s", path);
    }
    if (out->status == 405 && !out->body)
        ty_answer(out, 405, "%s takes %s, not %.16s", path, want, method);
    free(copy);
}

void ty_route_clear(ty_route_t *r) {
    if (r->req)
        ty_wire_free(&r->req);
    free(r->body);
    free(r->run_id);
    free(r->task);
    free(r->name);
    memset(r, 0, sizeof *r);
}

static json_t *ty_submit_json(const Ty__SubmitReply *sr) {
    json_t *o = json_object(), *w = json_array();
    json_object_set_new(o, "run_id", json_string(sr->run_id));
    json_object_set_new(o, "state", json_string(ty_run_state_name(sr->state)));
    for (size_t i = 0; i < sr->n_warnings; i++)
        json_array_append_new(w, json_string(sr->warnings[i]));
    json_object_set_new(o, "warnings", w);
    return o;
}

int ty_http_render(const ty_route_t *r, const Ty__Envelope *rep, char **body) {
    json_t *j = NULL;
    int status = 200;
    if (rep->body_case == TY__ENVELOPE__BODY_ERROR) {
        *body = ty_http_error_body(rep->error->message);
        return ty_http_error_status(rep->error->code);
    }
    switch (r->view) {
    case TY_VIEW_RUNS:
        if (rep->body_case == TY__ENVELOPE__BODY_RUNS_REPLY)
            j = ty_render_runs(rep->runs_reply);
        break;
    case TY_VIEW_RUN:
    case TY_VIEW_ARTIFACTS:
        if (rep->body_case == TY__ENVELOPE__BODY_STATUS_REPLY && rep->status_reply->status &&
            rep->status_reply->status->run)
            j = r->view == TY_VIEW_RUN ? ty_render_status(rep->status_reply->status)
                                       : ty_render_artifacts(rep->status_reply->status);
        break;
    case TY_VIEW_METRICS:
        if (rep->body_case == TY__ENVELOPE__BODY_METRICS_REPLY)
            j = ty_render_metrics(rep->metrics_reply);
        break;
    case TY_VIEW_WORKERS:
        if (rep->body_case == TY__ENVELOPE__BODY_WORKERS_REPLY)
            j = ty_render_workers(rep->workers_reply);
        break;
    case TY_VIEW_PIPELINES:
        if (rep->body_case == TY__ENVELOPE__BODY_PIPELINES_REPLY)
            j = ty_render_pipelines(rep->pipelines_reply);
        break;
    case TY_VIEW_INFO:
        if (rep->body_case == TY__ENVELOPE__BODY_INFO_REPLY)
            j = ty_render_info(rep->info_reply);
        break;
    case TY_VIEW_SCHEDULES:
    case TY_VIEW_SCHEDULE:
        if (rep->body_case == TY__ENVELOPE__BODY_SCHEDULE_REPLY) {
            const Ty__ScheduleReply *sr = rep->schedule_reply;
            if (r->view == TY_VIEW_SCHEDULE) {
                j = sr->n_schedules ? ty_render_schedule(sr->schedules[0]) : NULL;
            } else {
                j = json_array();
                for (size_t i = 0; i < sr->n_schedules; i++)
                    json_array_append_new(j, ty_render_schedule(sr->schedules[i]));
            }
        }
        break;
    case TY_VIEW_MODELS:
    case TY_VIEW_MODEL:
    case TY_VIEW_MODEL_HISTORY:
        if (rep->body_case == TY__ENVELOPE__BODY_MODEL_REPLY) {
            const Ty__ModelReply *mr = rep->model_reply;
            const Ty__ModelRecord *rec = mr->n_models ? mr->models[0] : NULL;
            if (r->view == TY_VIEW_MODEL_HISTORY) {
                j = ty_render_model_history(mr);
            } else if (r->view == TY_VIEW_MODEL) {
                j = json_array();
                for (size_t i = 0; i < mr->n_versions; i++)
                    json_array_append_new(j, ty_render_model_version(mr->versions[i], rec));
            } else {
                j = json_array();
                for (size_t i = 0; i < mr->n_models; i++)
                    json_array_append_new(j, ty_render_model(mr->models[i]));
            }
        }
        break;
    case TY_VIEW_SUBMIT:
        if (rep->body_case == TY__ENVELOPE__BODY_SUBMIT_REPLY) {
            j = ty_submit_json(rep->submit_reply);
            status = 201;
        }
        break;
    case TY_VIEW_CANCEL:
        if (rep->body_case == TY__ENVELOPE__BODY_CANCEL_REPLY) {
            j = json_object();
            json_object_set_new(j, "run_id", json_string(r->run_id));
            json_object_set_new(j, "state",
                                json_string(ty_run_state_name(rep->cancel_reply->state)));
        }
        break;
    default:
        break;
    }
    if (!j) {
        *body = ty_http_error_body("the master answered with an unexpected reply");
        return 500;
    }
    *body = ty_json_text(j, 0);
    json_decref(j);
    return status;
}

int ty_http_artifact(const ty_route_t *r, const Ty__Envelope *rep, char **sha256, uint64_t *size,
                     char **body) {
    *sha256 = *body = NULL;
    if (rep->body_case == TY__ENVELOPE__BODY_ERROR || r->view != TY_VIEW_ARTIFACT)
        return ty_http_render(r, rep, body);
    const Ty__RunStatus *st =
        rep->body_case == TY__ENVELOPE__BODY_STATUS_REPLY ? rep->status_reply->status : NULL;
    for (size_t i = 0; st && i < st->n_tasks; i++) {
        const Ty__TaskRecord *t = st->tasks[i];
        if (strcmp(t->name, r->task) != 0)
            continue;
        for (size_t k = 0; k < t->n_outputs; k++)
            if (strcmp(t->outputs[k]->name, r->name) == 0) {
                *sha256 = ty_xstrdup(t->outputs[k]->sha256);
                *size = t->outputs[k]->size;
                return 200;
            }
    }
    char *msg = st ? ty_xasprintf("run %s has no output %s/%s", r->run_id, r->task, r->name)
                   : ty_xstrdup("the master answered with an unexpected reply");
    *body = ty_http_error_body(msg);
    free(msg);
    return st ? 404 : 500;
}

int ty_http_origin_ok(const char *origin, const char *host) {
    if (!origin)
        return 1;
    const char *o = strncmp(origin, "http://", 7) == 0    ? origin + 7
                    : strncmp(origin, "https://", 8) == 0 ? origin + 8
                                                          : NULL;
    return o && host && strcmp(o, host) == 0;
}

struct ty_logstream {
    char *run, *task;
    uint32_t attempt; /* the attempt being read (0: not known yet) */
    int latest;       /* follow the latest attempt on to the next */
    uint32_t tail;
    int follow;
    uint64_t offset;
    int ended;
    ty_buf_t partial; /* SSE: a line not yet ended */
};

ty_logstream_t *ty_logstream_new(const ty_route_t *r) {
    ty_logstream_t *s = ty_xcalloc(1, sizeof *s);
    s->run = ty_xstrdup(r->run_id);
    s->task = ty_xstrdup(r->task);
    s->attempt = r->attempt;
    s->latest = r->attempt == 0 || (r->follow && r->offset > 0);
    s->tail = r->tail;
    s->follow = r->follow;
    s->offset = r->offset;
    return s;
}

void ty_logstream_free(ty_logstream_t **sp) {
    if (!sp || !*sp)
        return;
    ty_logstream_t *s = *sp;
    free(s->run);
    free(s->task);
    ty_buf_free(&s->partial);
    free(s);
    *sp = NULL;
}

Ty__Envelope *ty_logstream_next(ty_logstream_t *s) {
    if (s->ended)
        return NULL;
    Ty__LogsRequest lr = TY__LOGS_REQUEST__INIT;
    lr.run_id = s->run;
    lr.task = s->task;
    lr.attempt = s->attempt;
    lr.offset = s->offset;
    lr.wait = s->follow;
    lr.latest = s->latest;
    lr.tail_lines = s->tail;
    s->tail = 0; /* then on from where that left off */
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_LOGS;
    env.logs = &lr;
    return ty_own(&env);
}

/* SSE: the lines of the partial buffer that are whole, each a message
 * whose id says where the next one starts; the rest kept.  A '\r' ends a
 * line too (a progress bar redrawn, as tqdm's): SSE data holds neither. */
static void ty_sse_lines(ty_logstream_t *s, ty_buf_t *out, uint64_t end_offset, int flush) {
    size_t start = 0;
    uint64_t base = end_offset - s->partial.len;
    const char *d = s->partial.data;
    for (size_t i = 0; i < s->partial.len; i++) {
        if (d[i] != '\n' && d[i] != '\r')
            continue;
        size_t next = i + 1 + (d[i] == '\r' && i + 1 < s->partial.len && d[i + 1] == '\n');
        ty_buf_printf(out, "id: %u:%llu\ndata: %.*s\n\n", s->attempt,
                      (unsigned long long)(base + next), (int)(i - start), d + start);
        i = next - 1;
        start = next;
    }
    if (flush && start < s->partial.len) {
        ty_buf_printf(out, "id: %u:%llu\ndata: %.*s\n\n", s->attempt,
                      (unsigned long long)end_offset, (int)(s->partial.len - start), d + start);
        start = s->partial.len;
    }
    ty_buf_consume(&s->partial, start);
}

int ty_logstream_feed(ty_logstream_t *s, const Ty__LogsReply *rep, ty_buf_t *out) {
    if (s->follow && rep->attempt && s->attempt && rep->attempt != s->attempt) {
        ty_sse_lines(s, out, s->offset, 1); /* the last attempt's unended line */
        ty_buf_printf(out, "event: attempt\ndata: %u\n\n", rep->attempt);
    }
    if (rep->attempt)
        s->attempt = rep->attempt;
    s->offset = rep->next_offset;
    if (!s->follow) {
        ty_buf_append(out, rep->data.data, rep->data.len);
        s->ended = rep->done || rep->data.len == 0;
        return s->ended;
    }
    if (rep->data.len) {
        /* the lines of the attempt's log, each event with the offset after
         * it: a log line (SSE data) holds no newline */
        ty_buf_append(&s->partial, rep->data.data, rep->data.len);
        ty_sse_lines(s, out, s->offset, rep->done);
    } else if (!rep->done) {
        ty_buf_printf(out, ": no news\n\n"); /* a hold expired; a gone client shows here */
    }
    if (rep->done) {
        ty_sse_lines(s, out, s->offset, 1);
        ty_buf_printf(out, "event: end\ndata: {\"attempt\":%u}\n\n", s->attempt);
        s->ended = 1;
    }
    return s->ended;
}

typedef struct {
    char *user, *token;
    int admin;
} ty_token_t;

struct ty_http_tokens {
    ty_token_t *t;
    size_t n;
};

void ty_http_tokens_free(ty_http_tokens_t **tp) {
    if (!tp || !*tp)
        return;
    for (size_t i = 0; i < (*tp)->n; i++) {
        free((*tp)->t[i].user);
        free((*tp)->t[i].token);
    }
    free((*tp)->t);
    free(*tp);
    *tp = NULL;
}

int ty_http_tokens_parse(const char *text, ty_http_tokens_t **out, char **why) {
    ty_http_tokens_t *ts = ty_xcalloc(1, sizeof *ts);
    char *copy = ty_xstrdup(text), *save = NULL;
    int lineno = 0;
    *why = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line && !*why;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++; /* (blank lines are skipped by strtok: numbers count lines with text) */
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *f[4], *s2 = NULL;
        int nf = 0;
        for (char *w = strtok_r(line, " \t\r", &s2); w && nf < 4; w = strtok_r(NULL, " \t\r", &s2))
            f[nf++] = w;
        if (nf == 0)
            continue;
        size_t tl = nf >= 2 ? strlen(f[1]) : 0;
        if (nf < 2 || nf > 3 || (nf == 3 && strcmp(f[2], "admin") != 0))
            *why = ty_xasprintf("entry %d: want USER TOKEN [admin]", lineno);
        else if (tl < 16 || tl > 256)
            *why = ty_xasprintf("entry %d: the token of %s must have 16 to 256 characters", lineno,
                                f[0]);
        else {
            ts->t = ty_xrealloc(ts->t, (ts->n + 1) * sizeof *ts->t);
            ts->t[ts->n++] = (ty_token_t){ty_xstrdup(f[0]), ty_xstrdup(f[1]), nf == 3};
        }
    }
    free(copy);
    if (!*why && ts->n == 0)
        *why = ty_xstrdup("no tokens in it");
    if (*why) {
        ty_http_tokens_free(&ts);
        return TY_EINVAL;
    }
    *out = ts;
    return 0;
}

/* a == b, in time that depends on their lengths only */
static int ty_same_secret(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned char d = na != nb;
    for (size_t i = 0; i < na && i < nb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

const char *ty_http_tokens_user(const ty_http_tokens_t *t, const char *authorization, int *admin) {
    static const char bearer[] = "Bearer ";
    *admin = 0;
    if (!t || !authorization || strncmp(authorization, bearer, sizeof bearer - 1) != 0)
        return NULL;
    const char *tok = authorization + sizeof bearer - 1, *who = NULL;
    for (size_t i = 0; i < t->n; i++) /* every entry compared: no early end */
        if (ty_same_secret(tok, t->t[i].token) && !who) {
            who = t->t[i].user;
            *admin = t->t[i].admin;
        }
    return who;
}

int ty_http_allow(int known, int write, int open_reads, int open_writes, const char **why) {
    *why = NULL;
    if (known)
        return 0;
    if (!open_reads)
        *why = "this server is not on loopback: every request needs a token (Authorization: "
               "Bearer TOKEN, one of the master's --http-tokens)";
    else if (write && !open_writes)
        *why = "this request changes something: it needs a token (Authorization: Bearer TOKEN, "
               "one of the master's --http-tokens)";
    return *why ? 401 : 0;
}
