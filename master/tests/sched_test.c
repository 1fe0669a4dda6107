/* Cron schedules in the core, on the harness's virtual clock: a fire
 * starts one run named from the schedule and the fire time; forbid skips
 * while one runs, replace cancels it, allow runs both; catch-up latest
 * starts one run for the fires missed, all the newest max_catchup, none
 * none; pause and resume; rm; exactly once across a restart, including a
 * predecessor that stored the run but not the schedule's advance; a
 * record that does not parse is skipped at load. */
#include "master/tests/core_harness.h"

#include "common/dag.h"

#define T0 1767225720000LL /* 2026-01-01 00:02:00 UTC */

static void sched_op(h_t *h, const char *op, const char *name, const char *cron,
                     const char *catchup, const char *concurrency, uint32_t max_catchup) {
    Ty__PipelineSpec *spec = NULL;
    char *err = NULL;
    const char *y = "name: nightly\ntasks:\n  - {name: a, command: [t]}\n";
    CHECK_EQ_INT(ty_dag_load_string(y, strlen(y), "n.yaml", &spec, &err), 0);
    Ty__ScheduleSpec sp = TY__SCHEDULE_SPEC__INIT;
    sp.name = (char *)name;
    sp.cron = (char *)cron;
    sp.tz = "";
    sp.catchup = (char *)catchup;
    sp.concurrency = (char *)concurrency;
    sp.max_catchup = max_catchup;
    sp.pipeline = spec;
    Ty__ScheduleRequest rq = TY__SCHEDULE_REQUEST__INIT;
    rq.op = (char *)op;
    rq.name = (char *)name;
    rq.spec = &sp;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_SCHEDULE;
    env.schedule = &rq;
    h_step(h, (ty_ev_t){.kind = TY_EV_SCHEDULE,
                        .msg = &env,
                        .peer = (const uint8_t *)"cli",
                        .peer_len = 3,
                        .req_id = 1});
    h_flush(h);
    ty_dag_free(&spec);
}

/* A serving core whose workers stay alive without heartbeats for an hour. */
static void h_init_long(h_t *h, uint64_t epoch) {
    ty_core_opts_t o = h_opts(epoch);
    o.worker_lease_ms = 3600000;
    h_open(h, &o);
    h_step(h, (ty_ev_t){.kind = TY_EV_SERVE});
}

static size_t runs_of(h_t *h, const char *sched, size_t *running) {
    size_t n = 0;
    if (running)
        *running = 0;
    for (size_t i = 0; i < h->c->nruns; i++) {
        ty_run_t *r = h->c->order[i];
        if (r && r->schedule && strcmp(r->schedule, sched) == 0) {
            n++;
            if (running && r->state <= TY_RUN_RUNNING)
                (*running)++;
        }
    }
    return n;
}

/* The schedule's runs in the store (finished ones leave the core's memory). */
static size_t runs_stored(h_t *h, const char *sched) {
    char pre[128];
    snprintf(pre, sizeof pre, "runs/%s-", sched);
    size_t n = 0;
    for (void *v = zhashx_first(h->kv); v; v = zhashx_next(h->kv)) {
        const char *k = zhashx_cursor(h->kv);
        n += strncmp(k, pre, strlen(pre)) == 0 && !strchr(k + 5, '/');
    }
    return n;
}

static Ty__ScheduleRecord *stored(h_t *h, const char *name) {
    char key[128];
    snprintf(key, sizeof key, "schedules/%s", name);
    zchunk_t *ch = zhashx_lookup(h->kv, key);
    return ch && zchunk_size(ch)
               ? ty__schedule_record__unpack(NULL, zchunk_size(ch), zchunk_data(ch))
               : NULL;
}

/* to wall time w (ms), the ticks on the way delivered */
static void to_wall(h_t *h, int64_t w) { h_advance(h, w - h->now.wall_ms); }

static void finish_all(h_t *h, const char *sched) {
    for (size_t i = 0; i < h->c->nruns; i++) {
        ty_run_t *r = h->c->order[i];
        if (r && r->schedule && strcmp(r->schedule, sched) == 0 && r->state <= TY_RUN_RUNNING) {
            h_flush(h);
            if (T(r, "a")->state == TY_TASK_RUNNING)
                h_finish(h, T(r, "a"), 0);
            h_flush(h);
        }
    }
}

static void test_fires_forbid_and_catchup(void) {
    h_t h;
    h_init_long(&h, 3);
    h.now.wall_ms = T0;
    h_register(&h, "w1", 8, 0, NULL);
    sched_op(&h, "add", "nightly", "*/5 * * * *", "latest", "forbid", 0);
    Ty__ScheduleRecord *rec = stored(&h, "nightly");
    CHECK(rec && rec->last_fire_s == T0 / 1000 && strcmp(rec->spec->cron, "*/5 * * * *") == 0);
    ty__schedule_record__free_unpacked(rec, NULL);
    to_wall(&h, T0 + 170000); /* 00:04:50: nothing due */
    CHECK_EQ_INT(runs_of(&h, "nightly", NULL), 0);
    to_wall(&h, T0 + 181000); /* 00:05:01 */
    CHECK_EQ_INT(runs_of(&h, "nightly", NULL), 1);
    ty_run_t *r = ty_core_find_run(h.c, "nightly-20260101-0005");
    CHECK(r && r->fire_s == T0 / 1000 + 180);
    rec = stored(&h, "nightly");
    CHECK(rec && rec->last_fire_s == T0 / 1000 + 180 && rec->fired == 1);
    CHECK(rec && strcmp(rec->last_run, "nightly-20260101-0005") == 0);
    ty__schedule_record__free_unpacked(rec, NULL);
    /* still running at 00:10: forbid skips the fire and says why */
    to_wall(&h, T0 + 481000);
    CHECK_EQ_INT(runs_of(&h, "nightly", NULL), 1);
    rec = stored(&h, "nightly");
    CHECK(rec && rec->skipped == 1 && strstr(rec->note, "still running") != NULL);
    ty__schedule_record__free_unpacked(rec, NULL);
    finish_all(&h, "nightly");
    /* the master away from 00:12 to 00:31: one run, for 00:30 */
    h_t b;
    h_restart(&h, &b, 4);
    h_register(&b, "w1", 8, 0, NULL);
    b.now.wall_ms = T0 + 29 * 60000 + 1000;
    h_step(&b, (ty_ev_t){.kind = TY_EV_TICK});
    h_flush(&b);
    CHECK_EQ_INT(runs_stored(&b, "nightly"), 2);
    CHECK(ty_core_find_run(b.c, "nightly-20260101-0030") != NULL);
    rec = stored(&b, "nightly");
    CHECK(rec && rec->skipped == 1 + 3 && strstr(rec->note, "3 missed fires skipped") != NULL);
    ty__schedule_record__free_unpacked(rec, NULL);

    /* exactly once: a predecessor that stored the run of 00:35 but died
     * before the schedule's advance was stored */
    zchunk_t *before = zchunk_dup(zhashx_lookup(b.kv, "schedules/nightly"));
    finish_all(&b, "nightly");
    to_wall(&b, T0 + 33 * 60000 + 1000);
    CHECK_EQ_INT(runs_stored(&b, "nightly"), 3);
    zhashx_update(b.kv, "schedules/nightly", before);
    h_t d;
    h_restart(&b, &d, 5);
    h_step(&d, (ty_ev_t){.kind = TY_EV_TICK});
    h_flush(&d);
    CHECK_EQ_INT(runs_stored(&d, "nightly"), 3); /* not a second run of 00:35 */
    rec = stored(&d, "nightly");
    CHECK(rec && rec->last_fire_s == T0 / 1000 + 33 * 60);
    ty__schedule_record__free_unpacked(rec, NULL);
    h_fini(&d);
    h_fini(&b);
    h_fini(&h);
}

static void test_policies(void) {
    h_t h;
    h_init_long(&h, 3);
    h.now.wall_ms = T0;
    h_register(&h, "w1", 8, 0, NULL);
    sched_op(&h, "add", "all", "* * * * *", "all", "allow", 2);
    sched_op(&h, "add", "none", "*/5 * * * *", "none", "allow", 0);
    sched_op(&h, "add", "repl", "*/2 * * * *", "latest", "replace", 0);
    /* a 10-minute jump: all starts the newest 2; none none (00:05 and
     * 00:10 are over a minute late) */
    h.now.wall_ms = T0 + 10 * 60000 + 5000;
    h.now.mono_ms += 10 * 60000 + 5000;
    h_step(&h, (ty_ev_t){.kind = TY_EV_TICK});
    h_flush(&h);
    CHECK_EQ_INT(runs_of(&h, "all", NULL), 2);
    CHECK(ty_core_find_run(h.c, "all-20260101-0012") && ty_core_find_run(h.c, "all-20260101-0011"));
    CHECK_EQ_INT(runs_of(&h, "none", NULL), 0);
    CHECK_EQ_INT(runs_of(&h, "repl", NULL), 1);
    /* allow lets runs overlap */
    to_wall(&h, T0 + 11 * 60000 + 2000);
    size_t running = 0;
    CHECK_EQ_INT(runs_of(&h, "all", &running), 3);
    CHECK_EQ_INT(running, 3);
    /* replace: the run of 00:12 is cancelled when 00:14 fires */
    to_wall(&h, T0 + 12 * 60000 + 2000);
    ty_run_t *old = ty_core_find_run(h.c, "repl-20260101-0012");
    CHECK(old && old->state == TY_RUN_CANCELLED);
    CHECK_EQ_INT(runs_of(&h, "repl", &running), 2);
    CHECK_EQ_INT(running, 1);
    /* none starts a fire on time (00:15) */
    to_wall(&h, T0 + 13 * 60000 + 2000);
    CHECK_EQ_INT(runs_of(&h, "none", NULL), 1);
    /* paused: no fire at 00:20; resumed: what was missed is not caught up */
    sched_op(&h, "pause", "none", NULL, NULL, NULL, 0);
    to_wall(&h, T0 + 19 * 60000 + 2000);
    CHECK_EQ_INT(runs_of(&h, "none", NULL), 1);
    sched_op(&h, "resume", "none", NULL, NULL, NULL, 0);
    h_step(&h, (ty_ev_t){.kind = TY_EV_TICK});
    h_flush(&h);
    CHECK_EQ_INT(runs_of(&h, "none", NULL), 1);
    to_wall(&h, T0 + 23 * 60000 + 2000); /* 00:25 */
    CHECK_EQ_INT(runs_of(&h, "none", NULL), 2);
    /* rm: gone from the store and no more fires; an unknown name is refused */
    sched_op(&h, "rm", "all", NULL, NULL, NULL, 0);
    CHECK(stored(&h, "all") == NULL);
    size_t na = runs_of(&h, "all", NULL);
    to_wall(&h, T0 + 26 * 60000 + 2000);
    CHECK_EQ_INT(runs_of(&h, "all", NULL), na);
    h_clear_sent(&h);
    sched_op(&h, "pause", "nope", NULL, NULL, NULL, 0);
    CHECK(h.nsent >= 1 && h.sent[h.nsent - 1].env->body_case == TY__ENVELOPE__BODY_ERROR);
    CHECK(strstr(h.sent[h.nsent - 1].env->error->message, "no schedule named 'nope'") != NULL);
    /* a record that does not parse is skipped at load, and the rest work */
    uint8_t junk[] = {0x0a, 0x03, 0x0a, 0x01, 'x'};
    zhashx_update(h.kv, "schedules/junk", zchunk_new(junk, sizeof junk));
    h_t b;
    h_restart(&h, &b, 4);
    CHECK_EQ_INT(zhashx_size(b.c->scheds), 2);
    h_fini(&b);
    h_fini(&h);
}

int main(void) {
    test_fires_forbid_and_catchup();
    test_policies();
    TEST_DONE();
}
