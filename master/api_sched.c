/* Schedule requests: list and show are answered from the core's state
 * (with the next fire times); add is validated here (the pipeline file,
 * its params, the cron expression and zone, the policies) and, like pause,
 * resume and rm, handed to the core, which answers once it is durable. */
#include "master/api_int.h"

#include "common/cron.h"
#include "common/dag.h"
#include "common/err.h"
#include "common/util.h"
#include "master/core/core_int.h"

#include <stdlib.h>
#include <string.h>

#define TY_SHOW_FIRES 5

static int ty_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-'))
            return 0;
    return 1;
}

static void ty_sched_list(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                          const char *only, ty_time_t now) {
    char **names = NULL;
    size_t n = only ? 1 : ty_sched_names(a->core, &names);
    Ty__ScheduleStatus *st = ty_xcalloc(n ? n : 1, sizeof *st);
    Ty__ScheduleStatus **ptrs = ty_xcalloc(n ? n : 1, sizeof *ptrs);
    for (size_t i = 0; i < n; i++) {
        ty_sched_status(a->core, only ? only : names[i], &st[i], only ? TY_SHOW_FIRES : 1);
        ptrs[i] = &st[i];
    }
    if (only && !st[0].record) {
        char *msg = ty_xasprintf("no schedule named '%.200s'", only);
        ty_reply_error(a, peer, peer_len, req_id, TY_ENOENT, msg, now);
        free(msg);
    } else {
        Ty__ScheduleReply rep = TY__SCHEDULE_REPLY__INIT;
        rep.schedules = ptrs;
        rep.n_schedules = n;
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.body_case = TY__ENVELOPE__BODY_SCHEDULE_REPLY;
        env.schedule_reply = &rep;
        ty_reply(a, peer, peer_len, req_id, &env, now);
    }
    for (size_t i = 0; i < n; i++)
        ty_sched_status_clear(&st[i]);
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    free(st);
    free(ptrs);
}

/* What is wrong with an add, or NULL (*pipeline then holds the parsed file). */
static char *ty_add_problem(ty_api_t *a, const Ty__ScheduleRequest *rq,
                            Ty__PipelineSpec **pipeline) {
    const Ty__ScheduleSpec *sp = rq->spec;
    char *err = NULL;
    if (!sp || !ty_name_ok(sp->name))
        return ty_xstrdup("bad schedule name (want 1 to 64 of A-Z a-z 0-9 _ . -)");
    const char *cu = sp->catchup, *cc = sp->concurrency;
    if (*cu && strcmp(cu, "none") != 0 && strcmp(cu, "latest") != 0 && strcmp(cu, "all") != 0)
        return ty_xasprintf("bad --catchup '%.40s' (want none, latest or all)", cu);
    if (*cc && strcmp(cc, "forbid") != 0 && strcmp(cc, "allow") != 0 && strcmp(cc, "replace") != 0)
        return ty_xasprintf("bad --concurrency '%.40s' (want forbid, allow or replace)", cc);
    if (sp->max_catchup > 1000)
        return ty_xstrdup("--max-catchup is at most 1000");
    ty_cron_t *cron = NULL;
    if (ty_cron_parse(sp->cron, sp->tz, &cron, &err) != 0)
        return err;
    ty_cron_destroy(&cron);
    const char *fname = *sp->file ? sp->file : "<schedule>";
    if (ty_dag_load_string_lim(rq->yaml, strlen(rq->yaml), fname, &a->shell.limits, pipeline,
                               &err) != 0)
        return err ? err : ty_xstrdup("bad pipeline");
    Ty__PipelineSpec *resolved = NULL;
    Ty__KV **params = NULL;
    size_t np = 0;
    if (ty_dag_resolve(*pipeline, sp->params, sp->n_params, &resolved, &params, &np, &err) != 0) {
        ty_dag_free(pipeline);
        return err;
    }
    ty_dag_free(&resolved);
    ty_dag_kvs_free(params, np);
    return NULL;
}

/* Whether the caller may change schedule name (its owner or an admin; a
 * new one is the caller's); the change audited either way. */
static int ty_sched_may(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                        const char *op, const char *name, ty_time_t now) {
    Ty__ScheduleStatus st = TY__SCHEDULE_STATUS__INIT;
    ty_sched_status(a->core, name ? name : "", &st, 0);
    const char *owner = st.record && st.record->owner ? st.record->owner : "";
    char *what = ty_xasprintf("schedule %.200s", name ? name : "");
    const char *verb = strcmp(op, "add") == 0 ? "change" : strcmp(op, "rm") == 0 ? "remove" : op;
    int may = ty_api_may(a, peer, peer_len, req_id, owner, verb, what, now);
    if (may)
        ty_api_audit(a, op, what, "allowed");
    free(what);
    ty_sched_status_clear(&st);
    return may;
}

void ty_api_schedule(ty_api_t *a, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env,
                     ty_time_t now) {
    const Ty__ScheduleRequest *rq = env->schedule;
    uint64_t req_id = env->req_id;
    if (strcmp(rq->op, "list") == 0) {
        ty_sched_list(a, peer, peer_len, req_id, NULL, now);
        return;
    }
    if (strcmp(rq->op, "show") == 0) {
        ty_sched_list(a, peer, peer_len, req_id, rq->name, now);
        return;
    }
    ty_ev_t ev = {.kind = TY_EV_SCHEDULE,
                  .peer = peer,
                  .peer_len = peer_len,
                  .req_id = req_id,
                  .msg = env,
                  .owner = ty_api_user(a)};
    const char *name = strcmp(rq->op, "add") == 0 ? (rq->spec ? rq->spec->name : "") : rq->name;
    if (!ty_sched_may(a, peer, peer_len, req_id, rq->op, name, now))
        return;
    if (strcmp(rq->op, "add") != 0) { /* pause, resume, rm; the core says if unknown */
        ty_core_step(a->core, &ev, now);
        return;
    }
    Ty__PipelineSpec *pipeline = NULL;
    char *why = ty_add_problem(a, rq, &pipeline);
    if (why) {
        ty_reply_error(a, peer, peer_len, req_id, TY_EINVAL, why, now);
        free(why);
        return;
    }
    /* the spec as the core keeps it: the pipeline parsed, defaults filled */
    Ty__ScheduleSpec sp = *rq->spec;
    sp.pipeline = pipeline;
    sp.catchup = *sp.catchup ? sp.catchup : "latest";
    sp.concurrency = *sp.concurrency ? sp.concurrency : "forbid";
    sp.max_catchup = sp.max_catchup ? sp.max_catchup : 10;
    sp.tz = *sp.tz ? sp.tz : "UTC";
    Ty__ScheduleRequest add = *rq;
    add.spec = &sp;
    add.yaml = "";
    Ty__Envelope e = *env;
    e.schedule = &add;
    ev.msg = &e;
    ty_core_step(a->core, &ev, now);
    ty_dag_free(&pipeline);
}
