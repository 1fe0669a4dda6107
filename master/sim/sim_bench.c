/* trainyard-sim --bench: the core alone at scale, on one core of this
 * machine, with the store answering at once.
 *
 * 1. Scheduling decisions per second with W workers (default 10,000, 8 CPUs
 *    each) and 100,000 queued one-CPU tasks: the first pass places 80,000
 *    (the cluster fills), then results free one slot at a time and each
 *    FLUSH places the next queued task.  A decision's cost includes its
 *    records' encoding and its Dispatch message.
 * 2. Heartbeats: W workers, each running 8 attempts, heartbeating every
 *    second for 10 virtual seconds with the list of what they run; each
 *    heartbeat decoded from its bytes as the socket would hand it over,
 *    checked against the core's list and answered; CPU time per virtual
 *    second.  The sockets' own cost is not in it. */
#include "master/sim/sim.h"

#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double sim_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    ty_core_t *c;
    ty_time_t now;
    uint64_t dispatched;
} sim_b_t;

static void sim_b_drain(sim_b_t *b) {
    ty_fx_t fx;
    while (ty_core_fx_pop(b->c, &fx)) {
        if (fx.kind == TY_FX_TXN) {
            ty_ev_t ev = {.kind = TY_EV_TXN_DONE, .flight = fx.flight};
            ty_fx_clear(&fx);
            ty_core_step(b->c, &ev, b->now);
            continue;
        }
        ty_fx_clear(&fx);
    }
}

static void sim_b_step(sim_b_t *b, ty_ev_t ev) {
    ty_core_step(b->c, &ev, b->now);
    sim_b_drain(b);
}

static void sim_b_register(sim_b_t *b, const char *id, double cpus) {
    Ty__Resources res = TY__RESOURCES__INIT;
    res.cpus = cpus;
    res.mem_mb = 65536;
    Ty__Register reg = TY__REGISTER__INIT;
    reg.worker_id = (char *)id;
    reg.total = &res;
    reg.hostname = (char *)id;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    sim_b_step(b, (ty_ev_t){.kind = TY_EV_WORKER_MSG,
                            .peer = (const uint8_t *)id,
                            .peer_len = strlen(id),
                            .msg = &env});
}

static void sim_b_init(sim_b_t *b, size_t workers, double cpus) {
    memset(b, 0, sizeof *b);
    ty_core_opts_t o;
    ty_core_opts_default(&o);
    o.heartbeat_ms = 1000;
    o.worker_lease_ms = 5000;
    o.epoch = 1;
    if (ty_core_create(&b->c, &o) != 0)
        abort();
    b->now = (ty_time_t){1800000000000, 1};
    sim_b_step(b, (ty_ev_t){.kind = TY_EV_SERVE});
    for (size_t i = 0; i < workers; i++) {
        char id[32];
        snprintf(id, sizeof id, "w%05zu", i);
        sim_b_register(b, id, cpus);
    }
    sim_b_step(b, (ty_ev_t){.kind = TY_EV_FLUSH});
}

/* Queue ntasks one-CPU tasks in runs of 1,000 (no pass runs meanwhile). */
static void sim_b_submit(sim_b_t *b, size_t ntasks) {
    for (size_t done = 0; done < ntasks; done += 1000) {
        ty_buf_t y = {0};
        ty_buf_printf(&y, "name: bench\ntasks:\n");
        for (size_t i = 0; i < 1000 && done + i < ntasks; i++)
            ty_buf_printf(&y, "  - {name: t%zu, command: [\"true\"]}\n", i);
        Ty__PipelineSpec *spec = NULL, *res = NULL;
        char *err = NULL;
        if (ty_dag_load_string(y.data, y.len, "bench.yaml", &spec, &err) != 0)
            abort();
        Ty__KV **params = NULL;
        size_t np = 0;
        ty_dag_resolve(spec, NULL, 0, &res, &params, &np, &err);
        ty_dag_free(&spec);
        ty_buf_free(&y);
        ty_core_step(b->c,
                     &(ty_ev_t){.kind = TY_EV_SUBMIT,
                                .peer = (const uint8_t *)"c",
                                .peer_len = 1,
                                .spec = res,
                                .params = params,
                                .nparams = np},
                     b->now);
    }
}

/* The worker running t reports success. */
static void sim_b_finish(sim_b_t *b, ty_task_t *t) {
    Ty__TaskRef ref = TY__TASK_REF__INIT;
    ref.run_id = t->run->id;
    ref.task = t->spec->name;
    ref.attempt = t->attempt;
    Ty__TaskResult res = TY__TASK_RESULT__INIT;
    res.ref = &ref;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RESULT;
    env.result = &res;
    const char *wid = t->worker;
    sim_b_step(b, (ty_ev_t){.kind = TY_EV_WORKER_MSG,
                            .peer = (const uint8_t *)wid,
                            .peer_len = strlen(wid),
                            .msg = &env});
}

static void sim_bench_placement(size_t workers) {
    sim_b_t b;
    sim_b_init(&b, workers, 8);
    size_t queued = 100000;
    sim_b_submit(&b, queued);
    sim_b_drain(&b);
    uint64_t d0 = b.c->dispatches;
    double t0 = sim_cpu_s();
    sim_b_step(&b, (ty_ev_t){.kind = TY_EV_FLUSH});
    double t1 = sim_cpu_s();
    uint64_t first = b.c->dispatches - d0;
    printf("placement: %zu workers, %zu queued: first pass placed %llu in %.3f s "
           "(%.0f decisions/s), %zu left queued\n",
           workers, queued, (unsigned long long)first, t1 - t0, (double)first / (t1 - t0),
           b.c->nheap);
    /* the cluster is full: each result frees one slot for the next task */
    size_t n = 10000, k = 0;
    ty_task_t **running = ty_xcalloc(n, sizeof *running);
    for (size_t i = 0; i < b.c->nworkers && k < n; i++)
        if (b.c->wlist[i]->tasks)
            running[k++] = b.c->wlist[i]->tasks;
    d0 = b.c->dispatches;
    t0 = sim_cpu_s();
    for (size_t i = 0; i < k; i++) {
        sim_b_finish(&b, running[i]);
        sim_b_step(&b, (ty_ev_t){.kind = TY_EV_FLUSH});
    }
    t1 = sim_cpu_s();
    uint64_t more = b.c->dispatches - d0;
    printf("placement: full cluster, %zu results each followed by a pass: %llu placed in %.3f s "
           "(%.0f results+decisions/s, %zu still queued)\n",
           k, (unsigned long long)more, t1 - t0, (double)more / (t1 - t0), b.c->nheap);
    free(running);
    ty_core_destroy(&b.c);
}

/* A heartbeat of w listing what the core runs there, packed as a worker
 * would send it. */
static uint8_t *sim_b_heartbeat(ty_worker_t *w, size_t *len) {
    Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
    hb.listed = 1;
    size_t n = 0;
    for (ty_task_t *t = w->tasks; t; t = t->wnext)
        n++;
    Ty__TaskRef *refs = ty_xcalloc(n ? n : 1, sizeof *refs);
    hb.attempts = ty_xcalloc(n ? n : 1, sizeof *hb.attempts);
    for (ty_task_t *t = w->tasks; t; t = t->wnext) {
        Ty__TaskRef *r = &refs[hb.n_attempts];
        ty__task_ref__init(r);
        r->run_id = t->run->id;
        r->task = t->spec->name;
        r->attempt = t->attempt;
        hb.attempts[hb.n_attempts++] = r;
    }
    hb.running = (uint32_t)n;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.version = 1;
    env.body_case = TY__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    *len = ty__envelope__get_packed_size(&env);
    uint8_t *bytes = ty_xmalloc(*len);
    ty__envelope__pack(&env, bytes);
    free(refs);
    free(hb.attempts);
    return bytes;
}

static void sim_bench_heartbeats(size_t workers) {
    sim_b_t b;
    sim_b_init(&b, workers, 8);
    sim_b_submit(&b, workers * 8); /* every worker runs 8 attempts */
    sim_b_drain(&b);
    sim_b_step(&b, (ty_ev_t){.kind = TY_EV_FLUSH});
    uint8_t **bytes = ty_xcalloc(workers, sizeof *bytes);
    size_t *lens = ty_xcalloc(workers, sizeof *lens);
    for (size_t i = 0; i < workers; i++)
        bytes[i] = sim_b_heartbeat(b.c->wlist[i], &lens[i]);
    int seconds = 10;
    double t0 = sim_cpu_s();
    for (int s = 0; s < seconds; s++) {
        for (size_t i = 0; i < workers; i++) {
            b.now.mono_ms = 1 + (int64_t)(s + 1) * 1000 + (int64_t)(i * 1000 / workers);
            b.now.wall_ms = 1800000000000 + b.now.mono_ms;
            ty_worker_t *w = b.c->wlist[i];
            Ty__Envelope *in = ty__envelope__unpack(NULL, lens[i], bytes[i]);
            sim_b_step(&b, (ty_ev_t){.kind = TY_EV_WORKER_MSG,
                                     .peer = w->peer,
                                     .peer_len = w->peer_len,
                                     .msg = in});
            ty__envelope__free_unpacked(in, NULL);
            int64_t d = ty_core_deadline(b.c);
            if (d && d <= b.now.mono_ms)
                sim_b_step(&b, (ty_ev_t){.kind = TY_EV_TICK});
            if (i % 64 == 0) /* a loop iteration handles several messages */
                sim_b_step(&b, (ty_ev_t){.kind = TY_EV_FLUSH});
        }
    }
    double t1 = sim_cpu_s();
    size_t up = 0, running = 0;
    for (size_t i = 0; i < b.c->nworkers; i++) {
        up += b.c->wlist[i]->up;
        running += b.c->wlist[i]->running;
    }
    printf("heartbeats: %zu workers, each running 8 attempts and listing them, every second: "
           "%.1f%% of one core (%.2f us each); %zu up and %zu attempts running at the end\n",
           workers, 100.0 * (t1 - t0) / seconds, 1e6 * (t1 - t0) / ((double)seconds * workers), up,
           running);
    for (size_t i = 0; i < workers; i++)
        free(bytes[i]);
    free(bytes);
    free(lens);
    ty_core_destroy(&b.c);
}

int sim_bench(const sim_opts_t *o) {
    size_t workers = o->workers > 8 ? o->workers : 10000;
    sim_bench_placement(workers);
    sim_bench_heartbeats(workers);
    return 0;
}
