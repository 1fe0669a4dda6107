/* The HTTP API's decisions: paths and queries made into the protocol's
 * requests (or refused with a status and a one-line error), replies into
 * JSON with their status, and a task's log as plain text or server-sent
 * events (lines with ids, a new attempt, a hold that brought nothing, the
 * end). */
#include "master/http_route.h"

#include "common/err.h"
#include "common/wire.h"
#include "common/tests/ty_test.h"

#include <jansson.h>
#include <string.h>

typedef struct {
    const char *k[4], *v[4];
} args_t;

static const char *arg(void *ctx, const char *name) {
    args_t *a = ctx;
    for (int i = 0; i < 4 && a->k[i]; i++)
        if (strcmp(a->k[i], name) == 0)
            return a->v[i];
    return NULL;
}

static ty_route_t r;

static void route(const char *method, const char *path, args_t *a, const char *body) {
    static args_t none;
    ty_route_clear(&r);
    ty_http_route(method, path, arg, a ? a : &none, body, body ? strlen(body) : 0, 1800000000000LL,
                  &r);
}

/* r was answered at once with status and an error naming what. */
static void refused(int status, const char *what) {
    CHECK_EQ_INT(r.view, TY_VIEW_NONE);
    CHECK_EQ_INT(r.status, status);
    CHECK_CONTAINS(r.body, "{\"error\":");
    CHECK_CONTAINS(r.body, what);
    CHECK(r.req == NULL);
}

int main(void) {
    /* runs with the CLI's filters */
    args_t q = {{"state", "since", "limit", "pipeline"}, {"failed", "30m", "5", "train"}};
    route("GET", "/api/v1/runs", &q, NULL);
    CHECK_EQ_INT(r.view, TY_VIEW_RUNS);
    CHECK_EQ_INT(r.write, 0);
    CHECK_EQ_INT(r.req->body_case, TY__ENVELOPE__BODY_RUNS);
    CHECK_STR(r.req->runs->state, "failed");
    CHECK_STR(r.req->runs->pipeline, "train");
    CHECK_EQ_INT(r.req->runs->limit, 5);
    CHECK_EQ_INT(r.req->runs->since_ms, 1800000000000LL - 1800000);
    args_t bad = {{"state"}, {"sleeping"}};
    route("GET", "/api/v1/runs", &bad, NULL);
    refused(400, "no such run state 'sleeping'");
    args_t badl = {{"limit"}, {"-1"}};
    route("GET", "/api/v1/runs", &badl, NULL);
    refused(400, "limit needs an integer");
    route("DELETE", "/api/v1/runs", NULL, NULL);
    refused(405, "takes GET or POST");

    /* a run, its artifacts (a long-poll with wait_after), metrics, cancel */
    args_t wa = {{"wait_after"}, {"7"}};
    route("GET", "/api/v1/runs/train-ab12", &wa, NULL);
    CHECK_EQ_INT(r.view, TY_VIEW_RUN);
    CHECK_STR(r.req->status->run_id, "train-ab12");
    CHECK_EQ_INT(r.req->status->wait_after, 7);
    route("GET", "/api/v1/runs/train-ab12/artifacts", NULL, NULL);
    CHECK_EQ_INT(r.view, TY_VIEW_ARTIFACTS);
    args_t mt = {{"task"}, {"fit"}};
    route("GET", "/api/v1/runs/train-ab12/metrics", &mt, NULL);
    CHECK_EQ_INT(r.req->body_case, TY__ENVELOPE__BODY_METRICS);
    CHECK_STR(r.req->metrics->task, "fit");
    route("POST", "/api/v1/runs/train-ab12/cancel", NULL, NULL);
    CHECK_EQ_INT(r.view, TY_VIEW_CANCEL);
    CHECK_EQ_INT(r.write, 1);
    CHECK_STR(r.req->cancel->run_id, "train-ab12");
    route("GET", "/api/v1/runs/train-ab12/cancel", NULL, NULL);
    refused(405, "takes POST");
    route("GET", "/api/v1/runs/train-ab12/nothing", NULL, NULL);
    refused(404, "no such path");
    route("POST", "/api/v1/runs//cancel", NULL, NULL);
    refused(404, "no such path");
    route("GET", "/api/v1/runs/", NULL, NULL); /* a slash at the end changes nothing */
    CHECK_EQ_INT(r.view, TY_VIEW_RUNS);
    route("GET", "/metricz", NULL, NULL);
    refused(404, "under /api/v1/");
    route("GET", "/api/v1/workers", NULL, NULL);
    CHECK_EQ_INT(r.req->body_case, TY__ENVELOPE__BODY_WORKERS);
    route("GET", "/api/v1/info", NULL, NULL);
    CHECK_EQ_INT(r.req->body_case, TY__ENVELOPE__BODY_INFO);
    route("GET", "/api/v1/schedules", NULL, NULL);
    CHECK_EQ_INT(r.view, TY_VIEW_SCHEDULES);
    CHECK_STR(r.req->schedule->op, "list");
    route("GET", "/api/v1/schedules/nightly", NULL, NULL);
    CHECK_EQ_INT(r.view, TY_VIEW_SCHEDULE);
    CHECK_STR(r.req->schedule->op, "show");
    CHECK_STR(r.req->schedule->name, "nightly");
    route("POST", "/api/v1/schedules", NULL, NULL);
    refused(405, "takes GET");
    route("GET", "/api/v1/models/fashion", NULL, NULL);
    CHECK_EQ_INT(r.view, TY_VIEW_MODEL);
    CHECK_STR(r.req->model->op, "list");
    CHECK_STR(r.req->model->name, "fashion");
    route("GET", "/api/v1/models/fashion/history", NULL, NULL);
    CHECK_EQ_INT(r.view, TY_VIEW_MODEL_HISTORY);
    CHECK_STR(r.req->model->op, "history");
    route("GET", "/api/v1/models/fashion/nothing", NULL, NULL);
    refused(404, "no such path");
    args_t pl = {{"limit"}, {"3"}};
    route("GET", "/api/v1/pipelines", &pl, NULL);
    CHECK_EQ_INT(r.req->pipelines->limit, 3);

    /* submit: a JSON body; params' numbers written as the CLI's -p would */
    route("POST", "/api/v1/runs", NULL,
          "{\"yaml\": \"name: p\\n\", \"filename\": \"p.yaml\", \"request_id\": \"r1\","
          " \"params\": {\"lr\": 0.05, \"who\": \"x; touch /tmp/pwned\", \"n\": 3}}");
    CHECK_EQ_INT(r.view, TY_VIEW_SUBMIT);
    CHECK_EQ_INT(r.write, 1);
    CHECK_STR(r.req->submit->yaml, "name: p\n");
    CHECK_STR(r.req->submit->request_id, "r1");
    CHECK_EQ_INT(r.req->submit->n_params, 3);
    CHECK_STR(r.req->submit->params[0]->value, "0.05");
    CHECK_STR(r.req->submit->params[1]->value, "x; touch /tmp/pwned");
    CHECK_STR(r.req->submit->params[2]->value, "3");
    route("POST", "/api/v1/runs", NULL, "name: p");
    refused(400, "the body must be a JSON object");
    route("POST", "/api/v1/runs", NULL, "{\"yaml\": 3}");
    refused(400, "yaml must be a string");
    route("POST", "/api/v1/runs", NULL, "{\"yaml\": \"x\", \"params\": {\"a\": [1]}}");
    refused(400, "params' values must be strings, numbers or booleans");

    /* replies as JSON, errors as their status */
    Ty__Envelope rep = TY__ENVELOPE__INIT;
    Ty__ErrorReply er = TY__ERROR_REPLY__INIT;
    er.code = TY_ENOENT;
    er.message = "no such run 'x'";
    rep.body_case = TY__ENVELOPE__BODY_ERROR;
    rep.error = &er;
    char *body = NULL;
    route("GET", "/api/v1/runs/x", NULL, NULL);
    CHECK_EQ_INT(ty_http_render(&r, &rep, &body), 404);
    CHECK_STR(body, "{\"error\":\"no such run 'x'\"}");
    free(body);
    er.code = TY_EPERM;
    CHECK_EQ_INT(ty_http_render(&r, &rep, &body), 403);
    free(body);
    er.code = TY_EUNAVAIL;
    CHECK_EQ_INT(ty_http_render(&r, &rep, &body), 503);
    free(body);
    Ty__CancelReply cr = TY__CANCEL_REPLY__INIT;
    cr.state = 4; /* cancelled */
    rep.body_case = TY__ENVELOPE__BODY_CANCEL_REPLY;
    rep.cancel_reply = &cr;
    route("POST", "/api/v1/runs/p-1/cancel", NULL, NULL);
    CHECK_EQ_INT(ty_http_render(&r, &rep, &body), 200);
    CHECK_STR(body, "{\"run_id\":\"p-1\",\"state\":\"cancelled\"}");
    free(body);
    Ty__SubmitReply sr = TY__SUBMIT_REPLY__INIT;
    sr.run_id = "p-2";
    rep.body_case = TY__ENVELOPE__BODY_SUBMIT_REPLY;
    rep.submit_reply = &sr;
    CHECK_EQ_INT(ty_http_render(&r, &rep, &body), 500); /* a cancel's route, a submit's reply */
    free(body);
    route("POST", "/api/v1/runs", NULL, "{\"yaml\": \"x\"}");
    CHECK_EQ_INT(ty_http_render(&r, &rep, &body), 201);
    CHECK_STR(body, "{\"run_id\":\"p-2\",\"state\":\"pending\",\"warnings\":[]}");
    free(body);

    /* an output's content: found in the run's status by task and name */
    route("GET", "/api/v1/runs/p-1/artifacts/fit/plots/a.png", NULL, NULL);
    CHECK_EQ_INT(r.view, TY_VIEW_ARTIFACT);
    CHECK_STR(r.task, "fit");
    CHECK_STR(r.name, "plots/a.png");
    Ty__ArtifactRef ar = TY__ARTIFACT_REF__INIT, *arp = &ar;
    ar.name = "plots/a.png";
    ar.sha256 = "ab12";
    ar.size = 5;
    Ty__TaskRecord tr = TY__TASK_RECORD__INIT, *trp = &tr;
    tr.name = "fit";
    tr.outputs = &arp;
    tr.n_outputs = 1;
    Ty__RunStatus rs = TY__RUN_STATUS__INIT;
    rs.tasks = &trp;
    rs.n_tasks = 1;
    Ty__StatusReply stp = TY__STATUS_REPLY__INIT;
    stp.status = &rs;
    Ty__Envelope srep = TY__ENVELOPE__INIT;
    srep.body_case = TY__ENVELOPE__BODY_STATUS_REPLY;
    srep.status_reply = &stp;
    char *sha = NULL;
    uint64_t size = 0;
    CHECK_EQ_INT(ty_http_artifact(&r, &srep, &sha, &size, &body), 200);
    CHECK_STR(sha, "ab12");
    CHECK_EQ_INT(size, 5);
    free(sha);
    route("GET", "/api/v1/runs/p-1/artifacts/fit/model.bin", NULL, NULL);
    CHECK_EQ_INT(ty_http_artifact(&r, &srep, &sha, &size, &body), 404);
    CHECK_CONTAINS(body, "run p-1 has no output fit/model.bin");
    CHECK(sha == NULL);
    free(body);

    /* a log, plain: the chunks until one comes back empty */
    args_t tl = {{"tail"}, {"20"}};
    route("GET", "/api/v1/runs/p-1/tasks/fit/logs", &tl, NULL);
    CHECK_EQ_INT(r.view, TY_VIEW_LOGS);
    ty_logstream_t *ls = ty_logstream_new(&r);
    Ty__Envelope *lq = ty_logstream_next(ls);
    CHECK_STR(lq->logs->run_id, "p-1");
    CHECK_STR(lq->logs->task, "fit");
    CHECK_EQ_INT(lq->logs->tail_lines, 20);
    CHECK_EQ_INT(lq->logs->wait, 0);
    CHECK_EQ_INT(lq->logs->latest, 1);
    ty_wire_free(&lq);
    ty_buf_t out = {0};
    Ty__LogsReply lr = TY__LOGS_REPLY__INIT;
    lr.data.data = (uint8_t *)"a\nb\n";
    lr.data.len = 4;
    lr.next_offset = 4;
    lr.attempt = 1;
    CHECK_EQ_INT(ty_logstream_feed(ls, &lr, &out), 0);
    lq = ty_logstream_next(ls);
    CHECK_EQ_INT(lq->logs->offset, 4);
    CHECK_EQ_INT(lq->logs->tail_lines, 0); /* then on from there */
    CHECK_EQ_INT(lq->logs->attempt, 1);
    ty_wire_free(&lq);
    lr.data.len = 0;
    CHECK_EQ_INT(ty_logstream_feed(ls, &lr, &out), 1);
    CHECK(ty_logstream_next(ls) == NULL);
    CHECK_EQ_INT(out.len, 4);
    CHECK(memcmp(out.data, "a\nb\n", 4) == 0);
    ty_logstream_free(&ls);
    ty_buf_free(&out);

    /* followed: server-sent events */
    args_t fo = {{"follow"}, {"1"}};
    route("GET", "/api/v1/runs/p-1/tasks/fit/logs", &fo, NULL);
    ls = ty_logstream_new(&r);
    lq = ty_logstream_next(ls);
    CHECK_EQ_INT(lq->logs->wait, 1);
    ty_wire_free(&lq);
    lr.data.data = (uint8_t *)"one\ntw";
    lr.data.len = 6;
    lr.next_offset = 6;
    CHECK_EQ_INT(ty_logstream_feed(ls, &lr, &out), 0);
    ty_buf_append(&out, "", 1);
    CHECK_STR(out.data, "id: 1:4\ndata: one\n\n"); /* "tw" waits for its end */
    out.len = 0;
    lr.data.data = (uint8_t *)"o\r\n10%\r20%\r";
    lr.data.len = 11;
    lr.next_offset = 17;
    ty_logstream_feed(ls, &lr, &out);
    ty_buf_append(&out, "", 1);
    CHECK_STR(out.data, "id: 1:9\ndata: two\n\nid: 1:13\ndata: 10%\n\nid: 1:17\ndata: 20%\n\n");
    out.len = 0;
    lr.data.len = 0; /* a hold that brought nothing */
    ty_logstream_feed(ls, &lr, &out);
    ty_buf_append(&out, "", 1);
    CHECK_STR(out.data, ": no news\n\n");
    out.len = 0;
    /* the task runs again: attempt 2, from its start, to its end */
    lr.attempt = 2;
    lr.data.data = (uint8_t *)"again";
    lr.data.len = 5;
    lr.next_offset = 5;
    lr.done = 1;
    CHECK_EQ_INT(ty_logstream_feed(ls, &lr, &out), 1);
    ty_buf_append(&out, "", 1);
    CHECK_STR(out.data, "event: attempt\ndata: 2\n\nid: 2:5\ndata: again\n\n"
                        "event: end\ndata: {\"attempt\":2}\n\n");
    ty_logstream_free(&ls);
    ty_buf_free(&out);

    /* an EventSource reconnecting goes on from its last event */
    args_t re = {{"follow", "Last-Event-ID"}, {"1", "2:5"}};
    route("GET", "/api/v1/runs/p-1/tasks/fit/logs", &re, NULL);
    ls = ty_logstream_new(&r);
    lq = ty_logstream_next(ls);
    CHECK_EQ_INT(lq->logs->attempt, 2);
    CHECK_EQ_INT(lq->logs->offset, 5);
    ty_wire_free(&lq);
    ty_logstream_free(&ls);
    args_t reb = {{"follow", "Last-Event-ID"}, {"1", "x"}};
    route("GET", "/api/v1/runs/p-1/tasks/fit/logs", &reb, NULL);
    refused(400, "Last-Event-ID");
    ty_route_clear(&r);

    /* tokens: USER TOKEN [admin]; a header names its user; who may do what */
    ty_http_tokens_t *tk = NULL;
    char *why = NULL;
    CHECK_EQ_INT(ty_http_tokens_parse("# users\nalice 0123456789abcdef0123 admin\n\n"
                                      "bob  fedcba9876543210fedc # the second\n",
                                      &tk, &why),
                 0);
    int admin = -1;
    CHECK_STR(ty_http_tokens_user(tk, "Bearer 0123456789abcdef0123", &admin), "alice");
    CHECK_EQ_INT(admin, 1);
    CHECK_STR(ty_http_tokens_user(tk, "Bearer fedcba9876543210fedc", &admin), "bob");
    CHECK_EQ_INT(admin, 0);
    CHECK(ty_http_tokens_user(tk, "Bearer fedcba9876543210fed", &admin) == NULL);
    CHECK(ty_http_tokens_user(tk, "Basic fedcba9876543210fedc", &admin) == NULL);
    CHECK(ty_http_tokens_user(tk, NULL, &admin) == NULL);
    ty_http_tokens_free(&tk);
    CHECK(tk == NULL);
    const char *bad_tokens[] = {"alice short", "alice 0123456789abcdef0123 root", "alice",
                                "# none"};
    const char *bad_why[] = {"16 to 256 characters", "USER TOKEN [admin]", "USER TOKEN [admin]",
                             "no tokens"};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(ty_http_tokens_parse(bad_tokens[i], &tk, &why), TY_EINVAL);
        CHECK_CONTAINS(why, bad_why[i]);
        CHECK(tk == NULL);
        free(why);
    }
    const char *w = NULL;
    CHECK_EQ_INT(ty_http_allow(1, 1, 0, 0, &w), 0);   /* a token: anything */
    CHECK_EQ_INT(ty_http_allow(0, 0, 1, 0, &w), 0);   /* a read on loopback */
    CHECK_EQ_INT(ty_http_allow(0, 1, 1, 0, &w), 401); /* a write with keys on */
    CHECK_CONTAINS(w, "needs a token");
    CHECK_EQ_INT(ty_http_allow(0, 1, 1, 1, &w), 0);   /* --insecure: loopback only anyway */
    CHECK_EQ_INT(ty_http_allow(0, 0, 0, 1, &w), 401); /* off loopback: every request */
    CHECK_CONTAINS(w, "not on loopback");
    CHECK_EQ_INT(ty_http_allow(0, 1, 0, 1, &w), 401);
    CHECK_CONTAINS(w, "not on loopback");
    /* a browser's page of another site may not change anything */
    CHECK(ty_http_origin_ok(NULL, "127.0.0.1:7080"));
    CHECK(ty_http_origin_ok("http://127.0.0.1:7080", "127.0.0.1:7080"));
    CHECK(!ty_http_origin_ok("http://evil.example", "127.0.0.1:7080"));
    CHECK(!ty_http_origin_ok("http://127.0.0.1:7081", "127.0.0.1:7080"));
    CHECK(!ty_http_origin_ok("null", "127.0.0.1:7080"));
    TEST_DONE();
}
