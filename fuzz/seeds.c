/* Seed inputs for the harnesses (scripts/fuzz.sh writes them before a run):
 * well-formed messages of every kind the sockets take, so the fuzzers start
 * from deep inside the handlers.  usage: fuzz_seeds DIR */
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "master/tests/core_harness.h"

#include <stdio.h>
#include <sys/stat.h>

static const char *dir;
static int nseed;

static void put(const char *harness, const uint8_t *data, size_t len) {
    char *d = ty_xasprintf("%s/%s", dir, harness);
    mkdir(d, 0755);
    char *path = ty_xasprintf("%s/seed-%03d", d, nseed++);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len)
        abort();
    fclose(f);
    free(path);
    free(d);
}

static uint8_t *pack(Ty__Envelope *env, size_t *len) {
    env->version = TY_WIRE_VERSION;
    *len = ty__envelope__get_packed_size(env);
    uint8_t *b = ty_xmalloc(*len + 4);
    ty__envelope__pack(env, b);
    return b;
}

/* A client request: the envelope seed, and the client harness's (a user byte first). */
static void client(Ty__Envelope *env) {
    size_t len;
    uint8_t *b = pack(env, &len);
    put("envelope", b, len);
    uint8_t *c = ty_xmalloc(len + 1);
    c[0] = 0;
    memcpy(c + 1, b, len);
    put("client_msg", c, len + 1);
    free(c);
    free(b);
}

/* Worker messages: the envelope seeds, and one worker harness seed of all. */
static ty_buf_t worker_seq;
static void worker(Ty__Envelope *env) {
    size_t len;
    uint8_t *b = pack(env, &len);
    put("envelope", b, len);
    uint8_t hdr[3] = {(uint8_t)(len >> 8), (uint8_t)len, 0};
    ty_buf_append(&worker_seq, hdr, 3);
    ty_buf_append(&worker_seq, b, len);
    put("worker_msg", (const uint8_t *)worker_seq.data, worker_seq.len);
    free(b);
}

static void text(const char *harness, const char *s) {
    put(harness, (const uint8_t *)s, strlen(s));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    dir = argv[1];
    ty_log_init("seeds", TY_LOG_ERROR);
    mkdir(dir, 0755);

    /* the worker harness's world: its run id, as the harness makes it */
    static h_t h;
    h_init(&h, 1);
    h_register(&h, "w1", 4, 2, "a");
    ty_run_t *r = h_submit(&h, "name: p\ntasks:\n  - {name: a, command: [t], outputs: [m.bin]}\n"
                               "  - {name: b, depends_on: [a], command: [t]}\n");
    char *run = ty_xstrdup(r->id);
    h_fini(&h);

    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = run;
    ref.task = "a";
    ref.attempt = 1;
    ref.epoch = 1;
    Ty__TaskRef *refs[1] = {&ref};
    Ty__Envelope e = TY__ENVELOPE__INIT;
    Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
    hb.running = 1;
    hb.listed = 1;
    hb.attempts = refs;
    hb.n_attempts = 1;
    e.body_case = TY__ENVELOPE__BODY_HEARTBEAT;
    e.heartbeat = &hb;
    worker(&e);
    Ty__ReportItem it[3] = {TY__REPORT_ITEM__INIT, TY__REPORT_ITEM__INIT, TY__REPORT_ITEM__INIT};
    it[0].kind = 1, it[0].name = "loss", it[0].value = 0.5, it[0].step = 1;
    it[1].kind = 2, it[1].value = 0.25, it[1].text = "epoch 1/4";
    it[2].kind = 3, it[2].name = "k", it[2].text = "v";
    Ty__ReportItem *its[3] = {&it[0], &it[1], &it[2]};
    Ty__Report rep = TY__REPORT__INIT;
    rep.ref = &ref;
    rep.items = its;
    rep.n_items = 3;
    e.body_case = TY__ENVELOPE__BODY_REPORT;
    e.report = &rep;
    worker(&e);
    Ty__LogChunk lc = TY__LOG_CHUNK__INIT;
    lc.ref = &ref;
    lc.stream = 1;
    lc.data.data = (uint8_t *)"hello\n";
    lc.data.len = 6;
    e.body_case = TY__ENVELOPE__BODY_LOG;
    e.log = &lc;
    worker(&e);
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = &ref;
    res.started_ms = 1700000000000;
    res.finished_ms = 1700000001000;
    e.body_case = TY__ENVELOPE__BODY_RESULT;
    e.result = &res;
    worker(&e);
    Ty__Resources total = TY__RESOURCES__INIT;
    total.cpus = 2;
    total.mem_mb = 100;
    total.gpus = 1;
    Ty__Register reg = TY__REGISTER__INIT;
    reg.worker_id = "w2";
    reg.total = &total;
    reg.hostname = "h2";
    reg.running = refs;
    reg.n_running = 1;
    e.body_case = TY__ENVELOPE__BODY_REGISTER;
    e.register_ = &reg;
    worker(&e);
    Ty__Deregister dr = TY__DEREGISTER__INIT;
    dr.reason = "stopping";
    e.body_case = TY__ENVELOPE__BODY_DEREGISTER;
    e.deregister = &dr;
    worker(&e);

    /* client requests */
    Ty__Envelope c = TY__ENVELOPE__INIT;
    Ty__SubmitRequest sr = TY__SUBMIT_REQUEST__INIT;
    sr.yaml = "name: s\nparams: {n: 1}\nschedule: '0 3 * * *'\ntasks:\n"
              "  - {name: a, command: 'echo {{ params.n }}', outputs: [o.txt]}\n"
              "  - {name: b, depends_on: [a], inputs: {o: a/o.txt}, command: [cat, "
              "'{{ inputs.o }}'], when: 'a.loss < 1'}\n";
    sr.filename = "s.yaml";
    c.body_case = TY__ENVELOPE__BODY_SUBMIT;
    c.submit = &sr;
    client(&c);
    Ty__RunsRequest rr = TY__RUNS_REQUEST__INIT;
    rr.limit = 5;
    c.body_case = TY__ENVELOPE__BODY_RUNS;
    c.runs = &rr;
    client(&c);
    Ty__StatusRequest st = TY__STATUS_REQUEST__INIT;
    st.run_id = "s-00000000";
    st.wait_after = 1;
    c.body_case = TY__ENVELOPE__BODY_STATUS;
    c.status = &st;
    client(&c);
    Ty__LogsRequest lr = TY__LOGS_REQUEST__INIT;
    lr.run_id = "s-00000000";
    lr.task = "a";
    lr.wait = 1;
    c.body_case = TY__ENVELOPE__BODY_LOGS;
    c.logs = &lr;
    client(&c);
    Ty__CancelRequest cr = TY__CANCEL_REQUEST__INIT;
    cr.run_id = "s-00000000";
    c.body_case = TY__ENVELOPE__BODY_CANCEL;
    c.cancel = &cr;
    client(&c);
    Ty__WorkersRequest wr = TY__WORKERS_REQUEST__INIT;
    c.body_case = TY__ENVELOPE__BODY_WORKERS;
    c.workers = &wr;
    client(&c);
    Ty__InfoRequest ir = TY__INFO_REQUEST__INIT;
    c.body_case = TY__ENVELOPE__BODY_INFO;
    c.info = &ir;
    client(&c);
    Ty__MetricsRequest mr = TY__METRICS_REQUEST__INIT;
    mr.run_id = "s-00000000";
    c.body_case = TY__ENVELOPE__BODY_METRICS;
    c.metrics = &mr;
    client(&c);
    Ty__RetryRequest rt = TY__RETRY_REQUEST__INIT;
    rt.run_id = "s-00000000";
    rt.from_task = "a";
    c.body_case = TY__ENVELOPE__BODY_RETRY;
    c.retry = &rt;
    client(&c);
    Ty__PinRequest pr = TY__PIN_REQUEST__INIT;
    pr.run_id = "s-00000000";
    c.body_case = TY__ENVELOPE__BODY_PIN;
    c.pin = &pr;
    client(&c);
    Ty__LineageRequest lin = TY__LINEAGE_REQUEST__INIT;
    lin.sha256_prefix = "ab";
    c.body_case = TY__ENVELOPE__BODY_LINEAGE;
    c.lineage = &lin;
    client(&c);
    Ty__ScheduleSpec ss = TY__SCHEDULE_SPEC__INIT;
    ss.name = "nightly";
    ss.cron = "0 3 * * *";
    ss.tz = "Europe/Berlin";
    Ty__ScheduleRequest sq = TY__SCHEDULE_REQUEST__INIT;
    sq.op = "add";
    sq.spec = &ss;
    sq.yaml = "name: n\ntasks:\n  - {name: a, command: [true]}\n";
    c.body_case = TY__ENVELOPE__BODY_SCHEDULE;
    c.schedule = &sq;
    client(&c);
    sq.op = "pause";
    sq.name = "nightly";
    sq.spec = NULL;
    client(&c);
    Ty__KV mkv = TY__KV__INIT;
    mkv.key = "accuracy";
    mkv.value = "0.9";
    Ty__KV *mkvs[1] = {&mkv};
    Ty__ModelRequest mq = TY__MODEL_REQUEST__INIT;
    mq.op = "register";
    mq.name = "m";
    mq.from = "s-00000000/a/o.txt";
    mq.metrics = mkvs;
    mq.n_metrics = 1;
    c.body_case = TY__ENVELOPE__BODY_MODEL;
    c.model = &mq;
    client(&c);
    mq.op = "promote";
    mq.alias = "champion";
    mq.version = 1;
    client(&c);

    /* text parsers */
    text("report", "metric loss 0.25 3");
    text("report", "progress 0.5 epoch 2/4");
    text("report", "tag model mlp");
    text("report", "artifact model.bin");
    text("report", "register fashion model.bin");
    text("cron", "*/15 9-17 * * 1-5\nEurope/Berlin");
    text("cron", "@daily\nAmerica/New_York");
    text("cron", "0 0 29 2 *\n");
    text("config", "# master\netcd = https://127.0.0.1:2379\nkey = /etc/trainyard/m.key\n");
    text("template", "echo \"{{ params.v }}\" '{{ params.v }}' $(f {{ params.v }})\0x'; y");
    text("template", "eval.accuracy >= 0.9 and drift.psi < 0.2");
    /* method byte, path, query lines, a blank line, the body */
    text("http", "\x00/api/v1/runs\nstate=failed\nsince=30m\nlimit=5\n\n");
    text("http", "\x01/api/v1/runs\n\n{\"yaml\": \"name: p\\n\", \"params\": {\"n\": 3}}");
    text("http", "\x00/api/v1/runs/p-1/tasks/t/logs\nfollow=1\nLast-Event-ID=2:17\n\n");
    text("http", "\x01/api/v1/runs/p-1/cancel");
    text("http", "alice 0123456789abcdef0123 admin\nbob fedcba9876543210fedc\n");
    free(run);
    ty_buf_free(&worker_seq);
    printf("%d seeds in %s\n", nseed, dir);
    return 0;
}
