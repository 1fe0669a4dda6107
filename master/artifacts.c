/* Between the master's sockets and its artifact store (master/blobs.c):
 * uploads and range reads go to the store and its answers straight back to
 * the peer (they depend on no state the core writes); a TaskResult that
 * names outputs reaches the core only once each is confirmed in the store,
 * and one whose outputs are not there fails with the reason. */
#include "master/master.h"

#include "master/core/core_int.h"

#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static void ty_blob_send(void *arg, int client, const uint8_t *peer, size_t peer_len,
                         uint64_t req_id, Ty__Envelope *env) {
    ty_master_send_env(arg, client, peer, peer_len, req_id, env);
}

int ty_master_blobs_start(ty_master_t *m) {
    ty_blobs_opts_t o;
    ty_blobs_opts_default(&o);
    o.dir = m->o.store_dir;
    o.max_artifact = (uint64_t)m->o.max_artifact;
    return ty_blobs_create(&m->blobs, m->loop, &o, ty_blob_send, m);
}

typedef struct {
    ty_master_t *m;
    uint64_t term;
    uint8_t *peer;
    size_t peer_len;
    Ty__Envelope *env;
} ty_pending_result_t;

static void ty_result_checked(void *arg, const char *missing) {
    ty_pending_result_t *p = arg;
    ty_master_t *m = p->m;
    Ty__TaskResult *res = p->env->result;
    char *unpacked_error = res->error, *why = NULL; /* protobuf-c's to free, or its "" */
    if (missing) {
        const char *name = "?";
        for (size_t i = 0; i < res->n_outputs; i++)
            if (strcmp(res->outputs[i]->sha256, missing) == 0)
                name = res->outputs[i]->name;
        ty_warn("result of %s/%s#%u names output %s (%.12s...), which is not in the store",
                res->ref->run_id, res->ref->task, res->ref->attempt, name, missing);
        why = ty_xasprintf("output %s was not stored", name);
        res->error = why;
    }
    if (p->term == m->term) /* still the leadership it arrived in */
        ty_master_worker_msg(m, p->peer, p->peer_len, p->env);
    res->error = unpacked_error;
    free(why);
    ty_wire_free(&p->env);
    free(p->peer);
    free(p);
}

/* What a run's outputs may add up to (--max-run-artifact-bytes): what its
 * tasks stored, and this upload.  Refused (the attempt fails) when over. */
static int ty_over_run_limit(ty_master_t *m, const uint8_t *peer, size_t peer_len,
                             const Ty__UploadBegin *ub) {
    char *why = NULL;
    if (!m->core || !ub->ref ||
        ty_runs_upload_fits(m->core, ub->ref->run_id, ub->name, ub->size,
                            (uint64_t)m->o.max_run_artifacts, &why) == 0)
        return 0;
    ty_blobs_refuse(m->blobs, peer, peer_len, ub->sha256, why);
    free(why);
    return 1;
}

int ty_master_artifact_msg(ty_master_t *m, int client, const uint8_t *peer, size_t peer_len,
                           Ty__Envelope **env) {
    Ty__Envelope *e = *env;
    switch (e->body_case) {
    case TY__ENVELOPE__BODY_REGISTER:
        if (!client) /* a new worker process: its predecessor's uploads are over */
            ty_blobs_drop_peer(m->blobs, peer, peer_len);
        return 0;
    case TY__ENVELOPE__BODY_UPLOAD_BEGIN:
        if (!client && ty_over_run_limit(m, peer, peer_len, e->upload_begin))
            return 1;
        ty_blobs_on_msg(m->blobs, client, peer, peer_len, e);
        return 1;
    case TY__ENVELOPE__BODY_UPLOAD_CHUNK:
    case TY__ENVELOPE__BODY_BLOB_READ:
        ty_blobs_on_msg(m->blobs, client, peer, peer_len, e);
        return 1;
    case TY__ENVELOPE__BODY_RESULT:
        break;
    default:
        return 0;
    }
    Ty__TaskResult *res = e->result;
    if (client || !res || res->n_outputs == 0 || !res->ref)
        return 0;
    char **shas = ty_xcalloc(res->n_outputs, sizeof *shas);
    for (size_t i = 0; i < res->n_outputs; i++)
        shas[i] = res->outputs[i]->sha256;
    ty_pending_result_t *p = ty_xcalloc(1, sizeof *p);
    p->m = m;
    p->term = m->term;
    p->peer = ty_xmalloc(peer_len ? peer_len : 1);
    memcpy(p->peer, peer, peer_len);
    p->peer_len = peer_len;
    p->env = e;
    *env = NULL; /* ours until checked */
    ty_blobs_check(m->blobs, shas, res->n_outputs, ty_result_checked, p);
    free(shas);
    return 1;
}

typedef struct {
    ty_master_t *m;
    uint64_t term;
    char *run, *task;
} ty_check_t;

static void ty_blobs_looked(void *arg, const char *missing) {
    ty_check_t *x = arg;
    if (x->term == x->m->term) { /* still the leadership that asked */
        ty_ev_t ev = {.kind = TY_EV_CHECKED, .run_id = x->run, .task = x->task, .status = !missing};
        ty_master_core_event(x->m, &ev);
    }
    free(x->run);
    free(x->task);
    free(x);
}

void ty_master_check_blobs(ty_master_t *m, const ty_fx_t *fx) {
    ty_check_t *x = ty_xcalloc(1, sizeof *x);
    x->m = m;
    x->term = m->term;
    x->run = ty_xstrdup(fx->run);
    x->task = ty_xstrdup(fx->task);
    ty_blobs_check(m->blobs, fx->shas, fx->nshas, ty_blobs_looked, x);
}
