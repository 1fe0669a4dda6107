/* The requests about the artifact store and the metric files: metric
 * histories, pins, lineage and garbage collection.  Lineage and gc read
 * every run back from etcd (one range over runs/, after one over pins/):
 * they are an operator's occasional commands, not a hot path. */
#include "master/api_int.h"
#include "master/catalog.h"
#include "master/metrics.h"

#include "common/digest.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* A run's metric histories, read from the files beside its logs (every
 * point; the task records keep only the latest). */
void ty_api_metrics(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                    const Ty__MetricsRequest *mr, ty_time_t now) {
    Ty__MetricsReply rep;
    int rc = ty_metrics_read(a->data_dir, mr->run_id, mr->task, &rep);
    if (rc == TY_ENOENT && ty_core_find_run(a->core, mr->run_id))
        rc = 0; /* a run that logged nothing yet */
    if (rc != 0) {
        char *msg = ty_xasprintf("no metric history for run '%s'", mr->run_id);
        ty_reply_error(a, peer, peer_len, req_id, TY_ENOENT, msg, now);
        free(msg);
        ty_metrics_clear(&rep);
        return;
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_METRICS_REPLY;
    env.metrics_reply = &rep;
    ty_reply(a, peer, peer_len, req_id, &env, now);
    ty_metrics_clear(&rep);
}

/* A scan: pins/, then runs/, then the answer (gc: after the pool's pass
 * over the blobs): a ty_fetch_t, so a handler that goes away drops it. */
static void ty_gc_done(void *arg, const Ty__GcReply *gr) {
    ty_fetch_t *f = arg;
    ty_api_t *a = f->a;
    if (a) {
        ty_info("gc: %llu blobs (%llu bytes) %s, %llu kept", (unsigned long long)gr->blobs_deleted,
                (unsigned long long)gr->bytes_freed, gr->dry_run ? "would go" : "deleted",
                (unsigned long long)gr->blobs_kept);
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.body_case = TY__ENVELOPE__BODY_GC_REPLY;
        env.gc_reply = (Ty__GcReply *)gr;
        ty_reply(a, f->peer, f->peer_len, f->req->req_id, &env, a->shell.now());
        if (!gr->dry_run && gr->n_deleted && a->core) { /* the step cache forgets them */
            ty_ev_t ev = {.kind = TY_EV_BLOBS_GONE, .shas = gr->deleted, .nshas = gr->n_deleted};
            ty_core_step(a->core, &ev, a->shell.now());
        }
        if (a->shell.effects)
            a->shell.effects(a->shell.arg);
    }
    ty_fetch_release(f);
}

static void ty_scan_runs(int status, const ty_store_kv_t *kvs, size_t n, void *arg) {
    ty_fetch_t *f = arg;
    ty_api_t *a = f->a;
    if (!a) {
        ty_fetch_release(f);
        return;
    }
    ty_time_t now = a->shell.now();
    uint64_t rq = f->req->req_id;
    if (status != 0) {
        ty_reply_error(a, f->peer, f->peer_len, rq, TY_EUNREACH,
                       "cannot read the runs from etcd; try again", now);
        ty_fetch_release(f);
        if (a->shell.effects)
            a->shell.effects(a->shell.arg);
        return;
    }
    ty_catalog_t cat;
    ty_catalog_load(&cat, kvs, n, NULL, 0);
    for (void *v = zhashx_first(f->pins); v; v = zhashx_next(f->pins))
        zhashx_update(cat.pinned, zhashx_cursor(f->pins), (void *)1);
    if (f->req->body_case == TY__ENVELOPE__BODY_LINEAGE) {
        Ty__LineageReply lr;
        ty_catalog_lineage(&cat, f->req->lineage->sha256_prefix, &lr);
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.body_case = TY__ENVELOPE__BODY_LINEAGE_REPLY;
        env.lineage_reply = &lr;
        ty_reply(a, f->peer, f->peer_len, rq, &env, now);
        ty_catalog_lineage_clear(&lr);
        ty_catalog_free(&cat);
        ty_fetch_release(f);
    } else { /* gc */
        const Ty__GcRequest *g = f->req->gc;
        int64_t cutoff = g->keep_days_set ? now.wall_ms - (int64_t)g->keep_days * 86400000 : 0;
        zhashx_t *keep = ty_catalog_referenced(&cat, cutoff);
        ty_catalog_free(&cat);
        ty_models_keep(a->core, keep); /* registered versions pin their blobs */
        ty_blobs_gc(a->shell.blobs, keep, a->shell.gc_grace_ms, g->dry_run, ty_gc_done, f);
    }
    if (a->shell.effects)
        a->shell.effects(a->shell.arg);
}

static void ty_scan_pins(int status, const ty_store_kv_t *kvs, size_t n, void *arg) {
    ty_fetch_t *f = arg;
    if (!f->a) {
        ty_fetch_release(f);
        return;
    }
    for (size_t i = 0; status == 0 && i < n; i++)
        if (kvs[i].len == 1 && kvs[i].val[0] == '1' && strncmp(kvs[i].key, "pins/", 5) == 0)
            zhashx_update(f->pins, kvs[i].key + 5, (void *)1);
    if (status != 0 || ty_store_range(f->a->shell.store, "runs/", ty_scan_runs, f) != 0)
        ty_scan_runs(status ? status : TY_EUNREACH, NULL, 0, f);
}

static void ty_scan(ty_api_t *a, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env) {
    ty_fetch_t *f = ty_fetch_new(a, peer, peer_len, env);
    f->pins = zhashx_new();
    if (ty_store_range(a->shell.store, "pins/", ty_scan_pins, f) != 0)
        ty_scan_pins(TY_EUNREACH, NULL, 0, f);
}

void ty_api_pin(ty_api_t *a, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                const Ty__PinRequest *pr, ty_time_t now) {
    ty_ev_t ev = {.kind = TY_EV_PIN,
                  .peer = peer,
                  .peer_len = peer_len,
                  .req_id = req_id,
                  .run_id = pr->run_id,
                  .status = !pr->unpin};
    ty_core_step(a->core, &ev, now);
}

int ty_api_store_request(ty_api_t *a, const uint8_t *peer, size_t peer_len, const Ty__Envelope *env,
                         ty_time_t now) {
    uint64_t rq = env->req_id;
    switch (env->body_case) {
    case TY__ENVELOPE__BODY_PIN:
        if (ty_core_find_run(a->core, env->pin->run_id))
            ty_api_pin(a, peer, peer_len, rq, env->pin, now);
        else
            ty_fetch(a, peer, peer_len, env, env->pin->run_id, now); /* does it exist? */
        return 1;
    case TY__ENVELOPE__BODY_LINEAGE: {
        const char *p = env->lineage->sha256_prefix;
        size_t n = strlen(p);
        if (n < 4 || n > 64 || strspn(p, "0123456789abcdef") != n) {
            ty_reply_error(a, peer, peer_len, rq, TY_EINVAL,
                           "lineage needs 4 to 64 lower-case hex digits of a sha256", now);
            return 1;
        }
        ty_scan(a, peer, peer_len, env);
        return 1;
    }
    case TY__ENVELOPE__BODY_GC:
        if (!a->shell.blobs) {
            ty_reply_error(a, peer, peer_len, rq, TY_ENOTSUP, "no artifact store here", now);
            return 1;
        }
        ty_scan(a, peer, peer_len, env);
        return 1;
    default:
        return 0;
    }
}
