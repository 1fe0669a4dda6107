/* trainyard-sim: the real control core (master/core) driven with a virtual
 * clock against simulated workers, clients and a simulated store, with
 * faults: store answers delayed and reordered, txns that fail (some after
 * committing), leadership lost to another master, worker crashes and
 * silences, master crashes that rebuild from the store, and a wall clock
 * set forward (a cron schedule's fires fall due).  Everything comes
 * from one seed, so a seed replays a run exactly.  After every step the
 * invariants of the control plane are checked (sim_check.c); the first
 * violation prints the command that replays it.
 *
 *   trainyard-sim [--seed S] [--seeds N] [--workers W] [--runs R] [--ms T]
 *                 [--quiet] [--bench]
 *
 * --bench times the core alone instead (sim_bench.c). */
#include "master/sim/sim.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- randomness: splitmix64 ---- */

uint64_t sim_rand(sim_t *s) { return ty_splitmix64(&s->rng); }

int64_t sim_between(sim_t *s, int64_t lo, int64_t hi) {
    return lo + (int64_t)(sim_rand(s) % (uint64_t)(hi - lo + 1));
}

int sim_chance(sim_t *s, double p) { return (double)(sim_rand(s) >> 11) * 0x1p-53 < p; }

/* ---- messages between the master and workers, delivered in order ---- */

static void sim_msg_push(sim_t *s, sim_msg_t **q, sim_msg_t *m) {
    (void)s;
    while (*q)
        q = &(*q)->next;
    *q = m;
}

static sim_msg_t *sim_msg_new(sim_t *s, const uint8_t *data, size_t len, int64_t *last_at) {
    sim_msg_t *m = ty_xcalloc(1, sizeof *m);
    m->env = ty__envelope__unpack(NULL, len, data);
    int64_t at = s->now + sim_between(s, 0, 3);
    if (at < *last_at)
        at = *last_at; /* one connection keeps its order */
    *last_at = at;
    m->at = at;
    return m;
}

void sim_msg_free(sim_msg_t *m) {
    if (m->env)
        ty__envelope__free_unpacked(m->env, NULL);
    free(m);
}

/* A worker sends env to the master. */
void sim_worker_send(sim_t *s, sim_worker_t *w, Ty__Envelope *env) {
    if (w->silent_until > s->now || !w->alive)
        return; /* cut off: lost on the way */
    env->version = 1;
    size_t len = ty__envelope__get_packed_size(env);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__envelope__pack(env, buf);
    sim_msg_t *m = sim_msg_new(s, buf, len, &w->up_last);
    free(buf);
    m->w = w;
    sim_msg_push(s, &s->to_master, m);
}

/* ---- the master ---- */

static void sim_effects(sim_t *s) {
    /* SEND, TXN and FENCED matter here; LOG and NOTIFY are the shell's */
    ty_fx_t fx;
    while (ty_core_fx_pop(s->core, &fx)) {
        switch (fx.kind) {
        case TY_FX_SEND:
            sim_check_send(s, &fx);
            if (fx.peer_kind == TY_PEER_WORKER) {
                sim_worker_t *w = sim_worker_by_peer(s, fx.peer, fx.peer_len);
                if (w && w->alive && w->silent_until <= s->now) {
                    sim_msg_t *m = sim_msg_new(s, fx.data, fx.len, &w->down_last);
                    m->w = w;
                    sim_msg_push(s, &s->to_workers, m);
                }
            } else {
                sim_client_reply(s, fx.data, fx.len);
            }
            break;
        case TY_FX_TXN:
            sim_store_txn(s, &fx);
            break;
        case TY_FX_FENCED:
            s->fenced = 1;
            break;
        case TY_FX_DROP:
            sim_store_drop(s, fx.before);
            break;
        case TY_FX_CHECK: /* the simulated pipelines cache nothing */
        case TY_FX_FORGET:
        case TY_FX_LOG:
        case TY_FX_NOTIFY:
            break;
        }
        ty_fx_clear(&fx);
    }
}

void sim_core_step(sim_t *s, const ty_ev_t *ev) {
    ty_time_t now = {s->wall0 + s->now, s->now};
    ty_core_step(s->core, ev, now);
    sim_effects(s);
    sim_check(s);
}

/* A master (re)starts: a new epoch, every record read back, serving. */
static void sim_master_start(sim_t *s) {
    ty_core_destroy(&s->core);
    s->epoch = ++s->store_epoch;
    s->gen++;
    ty_core_opts_t o;
    ty_core_opts_default(&o);
    o.heartbeat_ms = SIM_HEARTBEAT_MS;
    o.worker_lease_ms = SIM_LEASE_MS;
    o.lost_limit = 5;
    o.epoch = s->epoch;
    o.retain_runs = SIM_RETAIN_RUNS; /* small: letting go of runs happens often */
    o.retain_tasks = 40;
    o.retain_ms = 5000;
    o.history_ms = 8000; /* runs leave the store too, after the retention */
    o.gc_every_ms = 1000;
    o.store_stall_ms = 40; /* txns take 1-20 ms: refusals follow failed ones */
    o.seed = sim_rand(s);
    if (ty_core_create(&s->core, &o) != 0)
        abort();
    s->fenced = 0;
    sim_store_load(s);
    ty_ev_t ev = {.kind = TY_EV_SERVE};
    sim_core_step(s, &ev);
    s->masters++;
}

/* ---- the world, one millisecond at a time ---- */

static void sim_deliver(sim_t *s) {
    while (s->to_master && s->to_master->at <= s->now) {
        sim_msg_t *m = s->to_master;
        s->to_master = m->next;
        if (m->env && !s->fenced) {
            char peer[32];
            int n = snprintf(peer, sizeof peer, "%s", m->w->id);
            ty_ev_t ev = {.kind = TY_EV_WORKER_MSG,
                          .peer = (const uint8_t *)peer,
                          .peer_len = (size_t)n,
                          .msg = m->env};
            sim_core_step(s, &ev);
        }
        sim_msg_free(m);
    }
    sim_msg_t **pp = &s->to_workers;
    while (*pp) {
        sim_msg_t *m = *pp;
        if (m->at > s->now) {
            pp = &m->next;
            continue;
        }
        *pp = m->next;
        if (m->env && m->w->alive && m->w->silent_until <= s->now)
            sim_worker_receive(s, m->w, m->env);
        sim_msg_free(m);
    }
}

static void sim_faults(sim_t *s) {
    if (!s->faults)
        return;
    if (sim_chance(s, s->p_master_crash)) {
        sim_store_crash(s); /* what the dead master had in flight */
        s->crashes++;
        sim_master_start(s);
        return;
    }
    if (sim_chance(s, s->p_takeover)) {
        s->store_epoch++; /* another master was elected: this one's writes fail */
        s->takeovers++;
    }
    if (sim_chance(s, s->p_clock_step)) { /* the wall clock set forward: fires fall due */
        s->wall0 += sim_between(s, 20000, 150000);
        s->clock_steps++;
    }
    if (s->nworkers && sim_chance(s, s->p_worker_crash))
        sim_worker_crash(s, &s->workers[sim_rand(s) % s->nworkers]);
    if (s->nworkers && sim_chance(s, s->p_worker_silence)) {
        sim_worker_t *w = &s->workers[sim_rand(s) % s->nworkers];
        w->silent_until = s->now + sim_between(s, 100, 3 * SIM_LEASE_MS);
    }
}

static void sim_tick(sim_t *s) {
    if (s->fenced) { /* the shell stops; a standby takes over */
        sim_store_crash(s);
        sim_master_start(s);
    }
    sim_faults(s);
    sim_store_deliver(s);
    sim_deliver(s);
    for (size_t i = 0; i < s->nworkers; i++)
        sim_worker_tick(s, &s->workers[i]);
    sim_client_tick(s);
    int64_t d = ty_core_deadline(s->core);
    if (d && d <= s->now) {
        ty_ev_t ev = {.kind = TY_EV_TICK};
        sim_core_step(s, &ev);
    }
    ty_ev_t flush = {.kind = TY_EV_FLUSH};
    sim_core_step(s, &flush);
}

static void sim_free(sim_t *s) {
    while (s->to_master) {
        sim_msg_t *m = s->to_master;
        s->to_master = m->next;
        sim_msg_free(m);
    }
    while (s->to_workers) {
        sim_msg_t *m = s->to_workers;
        s->to_workers = m->next;
        sim_msg_free(m);
    }
    for (size_t i = 0; i < s->nworkers; i++)
        sim_worker_free(&s->workers[i]);
    free(s->workers);
    sim_client_free(s);
    sim_store_free(s);
    ty_core_destroy(&s->core);
}

/* One whole simulation; 0 when every invariant held. */
static int sim_run(const sim_opts_t *o, uint64_t seed) {
    sim_t s;
    memset(&s, 0, sizeof s);
    s.o = *o;
    s.seed = seed;
    s.rng = seed * 0x2545F4914F6CDD1DULL + 1;
    s.wall0 = 1800000000000;
    s.faults = 1;
    s.p_master_crash = 0.0005;
    s.p_takeover = 0.0003;
    s.p_worker_crash = 0.002;
    s.p_worker_silence = 0.002;
    s.p_txn_fail = 0.03;
    s.p_txn_ambiguous = 0.02;
    s.p_clock_step = 0.001;
    sim_store_init(&s);
    sim_client_init(&s);
    sim_workers_init(&s);
    sim_master_start(&s);
    for (s.now = 1; s.now <= o->ms && !s.violation; s.now++)
        sim_tick(&s);
    /* the storm ends: every worker comes back, the runs must all end */
    s.faults = 0;
    s.submitting = 0;
    for (size_t i = 0; i < s.nworkers; i++) {
        s.workers[i].silent_until = 0;
        if (!s.workers[i].alive)
            s.workers[i].restart_at = s.now;
    }
    int64_t end = s.now + SIM_SETTLE_MS;
    for (; s.now <= end && !s.violation && !sim_all_done(&s); s.now++)
        sim_tick(&s);
    if (!s.violation)
        sim_check_end(&s);
    int bad = s.violation != NULL;
    if (bad || !o->quiet)
        printf("seed %llu: %s%s; %zu runs submitted, %zu finished, %llu dispatches, %zu master "
               "starts (%zu crashes, %zu take-overs), %zu worker crashes, %zu runs dropped from "
               "the store, %zu submits refused, %zu sent again, %zu clock steps, %zu runs "
               "of cron fires, %lld ms\n",
               (unsigned long long)seed, bad ? "VIOLATION: " : "ok", bad ? s.violation : "",
               s.nsubmitted, s.nfinished, (unsigned long long)s.dispatches, s.masters, s.crashes,
               s.takeovers, s.worker_crashes, s.dropped, s.refused, s.resent, s.clock_steps,
               zhashx_size(s.fire_runs), (long long)s.now);
    if (bad)
        printf("replay: trainyard-sim --seed %llu --workers %zu --runs %zu --ms %lld\n",
               (unsigned long long)seed, o->workers, o->runs, (long long)o->ms);
    free(s.violation);
    sim_free(&s);
    return bad;
}

static void sim_usage(FILE *f) {
    fputs("usage: trainyard-sim [options]\n"
          "  --seed S      first seed (default 1)\n"
          "  --seeds N     how many seeds from S on (default 1)\n"
          "  --workers W   simulated workers (default 8)\n"
          "  --runs R      runs submitted over the simulation (default 40)\n"
          "  --ms T        virtual milliseconds of faults before the settling (default 20000)\n"
          "  --quiet       print only violations and the summary\n"
          "  --bench       time the core alone: placement and heartbeats at scale\n",
          f);
}

int main(int argc, char **argv) {
    sim_opts_t o = {.workers = 8, .runs = 40, .ms = 20000};
    uint64_t seed = 1, nseeds = 1;
    int bench = 0;
    static const struct option opts[] = {
        {"seed", 1, 0, 's'},  {"seeds", 1, 0, 'n'}, {"workers", 1, 0, 'w'},
        {"runs", 1, 0, 'r'},  {"ms", 1, 0, 't'},    {"quiet", 0, 0, 'q'},
        {"bench", 0, 0, 'b'}, {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int64_t v = 0;
        if (c == 'q' || c == 'b' || c == 'h' || c == '?') {
            if (c == 'q')
                o.quiet = 1;
            else if (c == 'b')
                bench = 1;
            else {
                sim_usage(c == 'h' ? stdout : stderr);
                return c == 'h' ? 0 : 2;
            }
            continue;
        }
        if (ty_parse_i64(optarg, 1, INT64_MAX / 2, &v) != 0) {
            fprintf(stderr, "trainyard-sim: --%s needs a positive integer, got '%s'\n",
                    c == 's'   ? "seed"
                    : c == 'n' ? "seeds"
                    : c == 'w' ? "workers"
                    : c == 'r' ? "runs"
                               : "ms",
                    optarg);
            return 2;
        }
        if (c == 's')
            seed = (uint64_t)v;
        else if (c == 'n')
            nseeds = (uint64_t)v;
        else if (c == 'w')
            o.workers = (size_t)v;
        else if (c == 'r')
            o.runs = (size_t)v;
        else if (c == 't')
            o.ms = v;
    }
    if (optind < argc) {
        fprintf(stderr, "trainyard-sim: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    ty_log_init("sim", getenv("SIM_LOG") ? TY_LOG_DEBUG : (ty_log_level_t)(TY_LOG_ERROR + 1));
    if (bench)
        return sim_bench(&o);
    int failed = 0;
    for (uint64_t k = 0; k < nseeds; k++)
        failed += sim_run(&o, seed + k);
    printf("%llu seed(s), %d with a violation\n", (unsigned long long)nseeds, failed);
    return failed ? 1 : 0;
}
