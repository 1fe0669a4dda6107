/* Cron schedules.  schedules/<name> holds a ScheduleRecord: the pipeline
 * (validated, params not applied), the cron expression and zone, the
 * catch-up and concurrency policies, and last_fire_s, the last fire time
 * dealt with.  At each TICK the fires after last_fire_s and not after now
 * are due: catch-up `latest` starts a run for the newest of them only,
 * `all` for each (the newest max_catchup), `none` only for one that is at
 * most TY_SCHED_LATE_S late; the rest are skipped and counted.
 * Concurrency `forbid` skips a fire while a run of the schedule is
 * unfinished, `replace` cancels those runs first, `allow` just starts.
 *
 * Exactly once: the run of a fire is named from the schedule and the fire
 * time (<name>-YYYYMMDD-HHMM, UTC), and is written in the same batch as the
 * record that advances last_fire_s, before it in the chain of txns.  A
 * successor that finds last_fire_s behind finds the run too, and only
 * advances. */
#include "master/core/core_int.h"

#include "common/cron.h"
#include "common/dag.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TY_SCHED_LATE_S 60         /* catch-up none: a fire this late still starts */
#define TY_SCHED_LOOKBACK_S 604800 /* fires older than a week are counted, not listed */
#define TY_SCHED_MAX_CATCHUP 10    /* catch-up all: the default cap */

typedef struct {
    Ty__ScheduleRecord *rec;
    ty_cron_t *cron;
    int64_t next_s; /* the first fire after last_fire_s; -1: none */
    int dirty;      /* advanced: written at the flush, after every record of its runs */
} ty_sched_t;

static void ty_sched_free(void **item) {
    ty_sched_t *s = *item;
    if (!s)
        return;
    if (s->rec)
        ty__schedule_record__free_unpacked(s->rec, NULL);
    ty_cron_destroy(&s->cron);
    free(s);
    *item = NULL;
}

void ty_sched_init(ty_core_t *c) {
    c->scheds = zhashx_new();
    zhashx_set_destructor(c->scheds, ty_sched_free);
}

void ty_sched_fini(ty_core_t *c) { zhashx_destroy(&c->scheds); }

static void ty_sched_due_update(ty_core_t *c) {
    c->sched_due_ms = 0;
    for (ty_sched_t *s = zhashx_first(c->scheds); s; s = zhashx_next(c->scheds))
        if (!s->rec->paused && s->next_s >= 0 &&
            (!c->sched_due_ms || s->next_s * 1000 < c->sched_due_ms))
            c->sched_due_ms = s->next_s * 1000;
}

static void ty_sched_persist(ty_core_t *c, ty_sched_t *s) {
    size_t len = ty__schedule_record__get_packed_size(s->rec);
    uint8_t *val = ty_xmalloc(len ? len : 1);
    ty__schedule_record__pack(s->rec, val);
    ty_persist_put(c, ty_xasprintf("schedules/%s", s->rec->spec->name), val, len);
}

static void ty_set_note(Ty__ScheduleRecord *rec, char *note) {
    if (rec->note && *rec->note)
        free(rec->note);
    rec->note = note;
}

/* A record (from etcd, or an add) made live; NULL with *why when its cron
 * expression or zone no longer parse. */
static ty_sched_t *ty_sched_make(Ty__ScheduleRecord *rec, char **why) {
    ty_cron_t *cron = NULL;
    if (!rec->spec || !rec->spec->name || !rec->spec->pipeline ||
        ty_cron_parse(rec->spec->cron, rec->spec->tz, &cron, why) != 0) {
        if (!*why)
            *why = ty_xstrdup("incomplete record");
        return NULL;
    }
    ty_sched_t *s = ty_xcalloc(1, sizeof *s);
    s->rec = rec;
    s->cron = cron;
    s->next_s = ty_cron_next(cron, rec->last_fire_s);
    return s;
}

void ty_sched_load(ty_core_t *c, const char *name, const uint8_t *val, size_t len) {
    if (len == 0) /* removed */
        return;
    Ty__ScheduleRecord *rec = ty__schedule_record__unpack(NULL, len, val);
    char *why = NULL;
    ty_sched_t *s = rec ? ty_sched_make(rec, &why) : NULL;
    if (!s) {
        ty_warn("schedule %s in etcd skipped: %s", name, rec ? why : "not a schedule record");
        free(why);
        if (rec)
            ty__schedule_record__free_unpacked(rec, NULL);
        return;
    }
    zhashx_update(c->scheds, name, s);
    ty_sched_due_update(c);
}

/* ---- fires ---- */

static void ty_fire_id(const char *name, int64_t fire_s, char *out, size_t n) {
    time_t t = (time_t)fire_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y%m%d-%H%M", &tm);
    snprintf(out, n, "%s-%s", name, when);
}

/* The schedule's runs that have not finished. */
static size_t ty_sched_running(ty_core_t *c, const char *name, ty_run_t **out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < c->nruns; i++) {
        ty_run_t *r = c->order[i];
        if (r && r->schedule && strcmp(r->schedule, name) == 0 && r->state <= TY_RUN_RUNNING) {
            if (out && n < max)
                out[n] = r;
            n++;
        }
    }
    return n;
}

/* Start the run of one fire, as the policies say. */
static void ty_sched_fire(ty_core_t *c, ty_sched_t *s, int64_t fire_s) {
    Ty__ScheduleRecord *rec = s->rec;
    const Ty__ScheduleSpec *sp = rec->spec;
    char id[300];
    ty_fire_id(sp->name, fire_s, id, sizeof id);
    if (ty_core_find_run(c, id)) { /* a predecessor started it and died before advancing */
        ty_info("schedule %s: the run of fire %lld exists already (%s)", sp->name,
                (long long)fire_s, id);
        return;
    }
    ty_run_t *running[16];
    size_t nrun = ty_sched_running(c, sp->name, running, 16);
    if (nrun && strcmp(sp->concurrency, "allow") != 0 && strcmp(sp->concurrency, "replace") != 0) {
        rec->skipped++;
        ty_set_note(rec, ty_xasprintf("fire %s skipped: run %s is still running (concurrency "
                                      "forbid)",
                                      id + strlen(sp->name) + 1, running[0]->id));
        ty_info("schedule %s: %s", sp->name, rec->note);
        return;
    }
    if (nrun && strcmp(sp->concurrency, "replace") == 0)
        for (size_t i = 0; i < nrun && i < 16; i++) {
            ty_info("schedule %s: run %s cancelled for the fire %s (concurrency replace)", sp->name,
                    running[i]->id, id);
            ty_runs_cancel(c, running[i]);
        }
    Ty__PipelineSpec *spec = NULL;
    Ty__KV **params = NULL;
    size_t np = 0;
    char *err = NULL;
    if (ty_dag_resolve(sp->pipeline, sp->params, sp->n_params, &spec, &params, &np, &err) != 0) {
        rec->skipped++;
        ty_set_note(rec, ty_xasprintf("fire %s skipped: %s", id, err ? err : "bad params"));
        ty_warn("schedule %s: %s", sp->name, rec->note);
        free(err);
        return;
    }
    ty_run_t *r = ty_runs_new(id, spec, params, np);
    r->schedule = ty_xstrdup(sp->name);
    r->fire_s = fire_s;
    r->owner = rec->owner && *rec->owner ? ty_xstrdup(rec->owner) : NULL; /* the schedule's */
    ty_runs_start(c, r);
    if (rec->last_run && *rec->last_run)
        free(rec->last_run);
    rec->last_run = ty_xstrdup(id);
    rec->fired++;
    ty_info("schedule %s: run %s started", sp->name, id);
}

void ty_sched_each(const ty_core_t *c, void (*fn)(void *arg, const Ty__ScheduleRecord *rec),
                   void *arg) {
    for (ty_sched_t *s = zhashx_first(c->scheds); s; s = zhashx_next(c->scheds))
        fn(arg, s->rec);
}

void ty_sched_tick(ty_core_t *c) {
    int64_t now_s = c->now.wall_ms / 1000;
    for (ty_sched_t *s = zhashx_first(c->scheds); s; s = zhashx_next(c->scheds)) {
        Ty__ScheduleRecord *rec = s->rec;
        if (rec->paused || s->next_s < 0 || s->next_s > now_s)
            continue;
        const Ty__ScheduleSpec *sp = rec->spec;
        int all = strcmp(sp->catchup, "all") == 0, none = strcmp(sp->catchup, "none") == 0;
        size_t cap = all ? (sp->max_catchup ? sp->max_catchup : TY_SCHED_MAX_CATCHUP) : 1;
        /* the due fires, the newest cap of them kept (a ring) */
        int64_t *ring = ty_xcalloc(cap, sizeof *ring);
        uint64_t count = 0, inring = 0;
        int64_t f = s->next_s, latest = -1;
        if (now_s - f > TY_SCHED_LOOKBACK_S) { /* down for long: the old ones only counted */
            int64_t from = now_s - TY_SCHED_LOOKBACK_S;
            for (; f >= 0 && f < from && count < 100000; f = ty_cron_next(s->cron, f))
                latest = f, count++;
            if (f >= 0 && f < from)
                f = ty_cron_next(s->cron, from - 1);
        }
        for (; f >= 0 && f <= now_s; f = ty_cron_next(s->cron, f))
            latest = ring[inring++ % cap] = f, count++;
        size_t take = inring < cap ? (size_t)inring : cap;
        if (none && (take == 0 || now_s - latest > TY_SCHED_LATE_S))
            take = 0;
        if (count > take) {
            rec->skipped += count - take;
            ty_set_note(rec, ty_xasprintf("%llu missed fires skipped (catch-up %s)",
                                          (unsigned long long)(count - take), sp->catchup));
            ty_info("schedule %s: %s", sp->name, rec->note);
        }
        for (size_t i = 0; i < take; i++)
            ty_sched_fire(c, s, ring[(inring - take + i) % cap]);
        free(ring);
        rec->last_fire_s = latest;
        rec->updated_ms = c->now.wall_ms;
        s->next_s = f;
        s->dirty = 1;
    }
    ty_sched_due_update(c);
}

/* Before the batch is cut: each advanced record is written after every
 * record of the runs it started (a later place in the chain of txns). */
void ty_sched_flush(ty_core_t *c) {
    for (ty_sched_t *s = zhashx_first(c->scheds); s; s = zhashx_next(c->scheds))
        if (s->dirty) {
            s->dirty = 0;
            ty_sched_persist(c, s);
        }
}

/* ---- requests ---- */

static void ty_sched_reply(ty_core_t *c, const ty_ev_t *ev, ty_sched_t *s, int created) {
    Ty__ScheduleReply rep = TY__SCHEDULE_REPLY__INIT;
    Ty__ScheduleStatus st = TY__SCHEDULE_STATUS__INIT, *pst = &st;
    ty_sched_status(c, s ? s->rec->spec->name : NULL, &st, 1);
    rep.schedules = &pst;
    rep.n_schedules = s ? 1 : 0;
    rep.created = created;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.req_id = ev->req_id;
    env.body_case = TY__ENVELOPE__BODY_SCHEDULE_REPLY;
    env.schedule_reply = &rep;
    ty_core_send_env(c, TY_PEER_CLIENT, ev->peer, ev->peer_len, &env); /* once durable */
    ty_sched_status_clear(&st);
}

int ty_sched_request(ty_core_t *c, const ty_ev_t *ev) {
    const Ty__ScheduleRequest *rq =
        ev->msg && ev->msg->body_case == TY__ENVELOPE__BODY_SCHEDULE ? ev->msg->schedule : NULL;
    if (!rq) {
        ty_core_reply_error(c, ev, TY_EINVAL, "bad schedule request");
        return TY_EINVAL;
    }
    if (strcmp(rq->op, "add") == 0) {
        if (!rq->spec || !rq->spec->name || !*rq->spec->name || !rq->spec->pipeline) {
            ty_core_reply_error(c, ev, TY_EINVAL, "a schedule needs a name and a pipeline");
            return TY_EINVAL;
        }
        ty_sched_t *old = zhashx_lookup(c->scheds, rq->spec->name);
        /* the record as it will be read back from etcd: owned like an unpacked one */
        Ty__ScheduleRecord tmp = TY__SCHEDULE_RECORD__INIT;
        tmp.spec = rq->spec;
        tmp.created_ms = old ? old->rec->created_ms : c->now.wall_ms;
        tmp.updated_ms = c->now.wall_ms;
        tmp.last_fire_s = old ? old->rec->last_fire_s : c->now.wall_ms / 1000;
        tmp.paused = old ? old->rec->paused : 0;
        tmp.fired = old ? old->rec->fired : 0;
        tmp.skipped = old ? old->rec->skipped : 0;
        tmp.last_run = old && old->rec->last_run ? old->rec->last_run : (char *)"";
        /* an update keeps the owner (only they or an admin may make it) */
        tmp.owner = old && old->rec->owner && *old->rec->owner ? old->rec->owner
                    : ev->owner                                ? (char *)ev->owner
                                                               : (char *)"";
        Ty__ScheduleRecord *rec = ty_pb_dup(&tmp.base);
        char *why = NULL;
        ty_sched_t *s = rec ? ty_sched_make(rec, &why) : NULL;
        if (!s) {
            ty_core_reply_error(c, ev, TY_EINVAL, why ? why : "bad schedule");
            free(why);
            if (rec)
                ty__schedule_record__free_unpacked(rec, NULL);
            return TY_EINVAL;
        }
        zhashx_update(c->scheds, rec->spec->name, s); /* frees the old one */
        ty_sched_persist(c, s);
        ty_sched_due_update(c);
        ty_info("schedule %s %s: %s (%s)", rec->spec->name, old ? "updated" : "added",
                rec->spec->cron, *rec->spec->tz ? rec->spec->tz : "UTC");
        ty_sched_reply(c, ev, s, old == NULL);
        return 0;
    }
    ty_sched_t *s = rq->name ? zhashx_lookup(c->scheds, rq->name) : NULL;
    if (!s) {
        char *msg = ty_xasprintf("no schedule named '%.200s'", rq->name ? rq->name : "");
        ty_core_reply_error(c, ev, TY_ENOENT, msg);
        free(msg);
        return TY_ENOENT;
    }
    if (strcmp(rq->op, "pause") == 0 || strcmp(rq->op, "resume") == 0) {
        int pause = rq->op[0] == 'p';
        if (!pause && s->rec->paused) { /* the fires while paused are not caught up */
            s->rec->last_fire_s = c->now.wall_ms / 1000;
            s->next_s = ty_cron_next(s->cron, s->rec->last_fire_s);
        }
        s->rec->paused = pause;
        s->rec->updated_ms = c->now.wall_ms;
        ty_sched_persist(c, s);
        ty_sched_due_update(c);
        ty_info("schedule %s %s", rq->name, pause ? "paused" : "resumed");
        ty_sched_reply(c, ev, s, 0);
        return 0;
    }
    if (strcmp(rq->op, "rm") == 0) {
        ty_persist_put(c, ty_xasprintf("schedules/%s", rq->name), ty_xmalloc(1), 0); /* gone */
        ty_info("schedule %s removed", rq->name);
        zhashx_delete(c->scheds, rq->name);
        ty_sched_due_update(c);
        ty_sched_reply(c, ev, NULL, 0);
        return 0;
    }
    ty_core_reply_error(c, ev, TY_EINVAL, "unknown schedule operation");
    return TY_EINVAL;
}

/* ---- views (the request handler's list and show) ---- */

void ty_sched_status(ty_core_t *c, const char *name, Ty__ScheduleStatus *st, int nfires) {
    ty__schedule_status__init(st);
    ty_sched_t *s = name ? zhashx_lookup(c->scheds, name) : NULL;
    if (!s)
        return;
    st->record = s->rec; /* borrowed */
    if (!s->rec->paused && nfires > 0) {
        st->next_fires = ty_xcalloc((size_t)nfires, sizeof *st->next_fires);
        st->next_local = ty_xcalloc((size_t)nfires, sizeof *st->next_local);
        int64_t f = s->next_s;
        int64_t now_s = c->now.wall_ms / 1000;
        if (f >= 0 && f <= now_s) /* due now: the tick after this starts it */
            f = ty_cron_next(s->cron, now_s - 1);
        for (int i = 0; i < nfires && f >= 0; i++, f = ty_cron_next(s->cron, f)) {
            char buf[64];
            ty_tz_format(s->rec->spec->tz, f, buf, sizeof buf);
            st->next_fires[st->n_next_fires++] = f;
            st->next_local[st->n_next_local++] = ty_xstrdup(buf);
        }
    }
    ty_run_t *running[64];
    size_t n = ty_sched_running(c, name, running, 64);
    n = n < 64 ? n : 64;
    st->running = ty_xcalloc(n ? n : 1, sizeof *st->running);
    for (size_t i = 0; i < n; i++)
        st->running[st->n_running++] = running[i]->id; /* borrowed */
}

void ty_sched_status_clear(Ty__ScheduleStatus *st) {
    for (size_t i = 0; i < st->n_next_local; i++)
        free(st->next_local[i]);
    free(st->next_local);
    free(st->next_fires);
    free(st->running);
    ty__schedule_status__init(st);
}

size_t ty_sched_names(ty_core_t *c, char ***out) {
    zlistx_t *keys = zhashx_keys(c->scheds);
    zlistx_set_comparator(keys, (zlistx_comparator_fn *)strcmp);
    zlistx_sort(keys);
    size_t n = zlistx_size(keys), i = 0;
    *out = ty_xcalloc(n ? n : 1, sizeof **out);
    for (char *k = zlistx_first(keys); k; k = zlistx_next(keys))
        (*out)[i++] = ty_xstrdup(k);
    zlistx_destroy(&keys);
    return n;
}
