/* Model registry requests: list, show and history are answered from the
 * core's state; register (its run found in the core, or read back from
 * etcd), alias and promote go through the core, which answers once the
 * change is durable. */
#include "master/api_int.h"

#include "common/err.h"
#include "common/util.h"
#include "master/core/core_int.h"

#include <stdlib.h>
#include <string.h>

static void ty_models_send(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                           Ty__ModelReply *rep, ty_time_t now) {
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_MODEL_REPLY;
    env.model_reply = rep;
    ty_reply(a, peer, peer_len, req_id, &env, now);
}

/* list (every model, or NAME's versions), show (NAME, NAME@ALIAS,
 * NAME:VERSION: the latest when neither), history */
static void ty_models_view(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                           const Ty__ModelRequest *rq, ty_time_t now) {
    Ty__ModelReply rep = TY__MODEL_REPLY__INIT;
    if (strcmp(rq->op, "list") == 0 && !*rq->name) {
        Ty__ModelRecord **recs = NULL;
        rep.n_models = ty_models_list(a->core, &recs);
        rep.models = recs;
        ty_models_send(a, peer, peer_len, req_id, &rep, now);
        free(recs);
        return;
    }
    const Ty__ModelRecord *rec = NULL;
    Ty__ModelVersion *const *vs = NULL;
    Ty__AliasMove *const *hs = NULL;
    size_t nv = 0, nh = 0;
    if (ty_models_find(a->core, rq->name, &rec, &vs, &nv, &hs, &nh) != 0) {
        char *msg = ty_xasprintf("no model named '%.100s'", rq->name);
        ty_reply_error(a, peer, peer_len, req_id, TY_ENOENT, msg, now);
        free(msg);
        return;
    }
    Ty__ModelRecord *recp = (Ty__ModelRecord *)rec;
    rep.models = &recp;
    rep.n_models = 1;
    Ty__ModelVersion **list = ty_xcalloc(nv + 1, sizeof *list);
    if (strcmp(rq->op, "list") == 0) {
        for (size_t i = 0; i < nv; i++)
            if (vs[i])
                list[rep.n_versions++] = vs[i];
    } else if (strcmp(rq->op, "history") == 0) {
        rep.history = (Ty__AliasMove **)hs;
        rep.n_history = nh;
        while (rep.n_history > 0 && !rep.history[rep.n_history - 1])
            rep.n_history--;
        for (size_t i = 0; i < rep.n_history; i++)
            if (!rep.history[i]) { /* a hole: the history cannot be shown whole */
                rep.n_history = i;
                break;
            }
    } else { /* show */
        uint32_t v = rq->version;
        if (*rq->alias) {
            v = ty_models_alias(a->core, rq->name, rq->alias);
            if (!v) {
                char *msg = ty_xasprintf("model %s has no alias '%.80s'", rq->name, rq->alias);
                ty_reply_error(a, peer, peer_len, req_id, TY_ENOENT, msg, now);
                free(msg);
                free(list);
                return;
            }
        } else if (!v) {
            v = rec->last_version;
        }
        const Ty__ModelVersion *mv = ty_models_version(a->core, rq->name, v);
        if (!mv) {
            char *msg = ty_xasprintf("model %s has no version %u (its last is %u)", rq->name, v,
                                     rec->last_version);
            ty_reply_error(a, peer, peer_len, req_id, TY_ENOENT, msg, now);
            free(msg);
            free(list);
            return;
        }
        list[rep.n_versions++] = (Ty__ModelVersion *)mv;
    }
    rep.versions = list;
    ty_models_send(a, peer, peer_len, req_id, &rep, now);
    free(list);
}

void ty_api_model_register(ty_api_t *a, const uint8_t *peer, size_t peer_len,
                           const Ty__Envelope *env, const ty_run_t *r, ty_time_t now) {
    ty_ev_t ev = {.kind = TY_EV_MODEL,
                  .peer = peer,
                  .peer_len = peer_len,
                  .req_id = env->req_id,
                  .msg = env,
                  .retry_of = r,
                  .owner = ty_api_user(a)};
    ty_core_step(a->core, &ev, now);
}

void ty_api_model(ty_api_t *a, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env,
                  ty_time_t now) {
    const Ty__ModelRequest *rq = env->model;
    const char *op = rq->op;
    if (strcmp(op, "list") == 0 || strcmp(op, "show") == 0 || strcmp(op, "history") == 0) {
        ty_models_view(a, peer, peer_len, env->req_id, rq, now);
        return;
    }
    if (strcmp(op, "register") == 0) {
        const char *slash = strchr(rq->from, '/');
        char *run = slash ? ty_xstrndup(rq->from, (size_t)(slash - rq->from)) : NULL;
        const ty_run_t *r = run ? ty_core_find_run(a->core, run) : NULL;
        if (run && !r)
            ty_fetch(a, peer, peer_len, env, run, now); /* a run the core let go of */
        else
            ty_api_model_register(a, peer, peer_len, env, r, now);
        free(run);
        return;
    }
    /* alias, promote: anyone's (steps move aliases with the cluster's shared
     * tasks key, which cannot say whose run they are: docs/security.md) */
    ty_ev_t ev = {.kind = TY_EV_MODEL,
                  .peer = peer,
                  .peer_len = peer_len,
                  .req_id = env->req_id,
                  .msg = env,
                  .owner = ty_api_user(a)};
    ty_core_step(a->core, &ev, now);
}
