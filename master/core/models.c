/* The model registry.  models/<name> (ModelRecord: the last version number,
 * the aliases, the count of alias moves), models/<name>/v/<8 digits>
 * (ModelVersion: the artifact by content with its lineage) and
 * models/<name>/h/<12 digits> (AliasMove, append-only).  Version numbers are
 * the core's to hand out, one after the other, never reused; every change
 * is written in the write-ahead batch and answered once durable.  A
 * promotion compares the candidate's metric with the alias's current
 * version's in the same step that moves the alias, so two promotions
 * cannot both win on a stale figure. */
#include "master/core/core_int.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Ty__ModelRecord *rec;
    Ty__ModelVersion **v; /* by version - 1; NULL where none was loaded */
    size_t nv;
    Ty__AliasMove **h; /* by seq - 1 */
    size_t nh;
} ty_model_t;

static void ty_model_free(void **item) {
    ty_model_t *m = *item;
    if (!m)
        return;
    if (m->rec)
        ty__model_record__free_unpacked(m->rec, NULL);
    for (size_t i = 0; i < m->nv; i++)
        if (m->v[i])
            ty__model_version__free_unpacked(m->v[i], NULL);
    for (size_t i = 0; i < m->nh; i++)
        if (m->h[i])
            ty__alias_move__free_unpacked(m->h[i], NULL);
    free(m->v);
    free(m->h);
    free(m);
    *item = NULL;
}

void ty_models_init(ty_core_t *c) {
    c->models = zhashx_new();
    zhashx_set_destructor(c->models, ty_model_free);
}

void ty_models_fini(ty_core_t *c) { zhashx_destroy(&c->models); }

/* Who asks: with keys their key's user, whatever the request says. */
static const char *ty_by(const ty_ev_t *ev, const Ty__ModelRequest *rq) {
    return ev->owner && *ev->owner ? ev->owner : *rq->by ? rq->by : "?";
}

/* make: a new one is owner's (NULL: no one's) */
static ty_model_t *ty_model_get(ty_core_t *c, const char *name, int make, const char *owner) {
    ty_model_t *m = zhashx_lookup(c->models, name);
    if (m || !make)
        return m;
    m = ty_xcalloc(1, sizeof *m);
    Ty__ModelRecord rec = TY__MODEL_RECORD__INIT;
    rec.name = (char *)name;
    rec.created_ms = c->now.wall_ms;
    rec.owner = (char *)(owner ? owner : "");
    m->rec = ty_pb_dup(&rec.base);
    zhashx_insert(c->models, name, m);
    return m;
}

static void ty_slot(void ***arr, size_t *n, size_t idx, void *item) {
    if (idx >= *n) {
        *arr = ty_xrealloc(*arr, (idx + 1) * sizeof **arr);
        memset(*arr + *n, 0, (idx + 1 - *n) * sizeof **arr);
        *n = idx + 1;
    }
    (*arr)[idx] = item;
}

/* ---- loading and writing ---- */

void ty_models_load(ty_core_t *c, const char *key, const uint8_t *val, size_t len) {
    const char *slash = strchr(key, '/');
    char *name = slash ? ty_xstrndup(key, (size_t)(slash - key)) : ty_xstrdup(key);
    ty_model_t *m = ty_model_get(c, name, 1, NULL);
    if (!slash) {
        Ty__ModelRecord *rec = ty__model_record__unpack(NULL, len, val);
        if (rec) {
            ty__model_record__free_unpacked(m->rec, NULL);
            m->rec = rec;
        }
    } else if (strncmp(slash, "/v/", 3) == 0) {
        Ty__ModelVersion *v = ty__model_version__unpack(NULL, len, val);
        if (v && v->version > 0 && v->version < 100000000)
            ty_slot((void ***)&m->v, &m->nv, v->version - 1, v);
        else if (v)
            ty__model_version__free_unpacked(v, NULL);
    } else if (strncmp(slash, "/h/", 3) == 0) {
        Ty__AliasMove *h = ty__alias_move__unpack(NULL, len, val);
        if (h && h->seq > 0 && h->seq < 100000000)
            ty_slot((void ***)&m->h, &m->nh, (size_t)h->seq - 1, h);
        else if (h)
            ty__alias_move__free_unpacked(h, NULL);
    }
    free(name);
}

static void ty_put_msg(ty_core_t *c, char *key, const ProtobufCMessage *msg) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *val = ty_xmalloc(len ? len : 1);
    protobuf_c_message_pack(msg, val);
    ty_persist_put(c, key, val, len);
}

static uint32_t ty_alias_get(const ty_model_t *m, const char *alias) {
    for (size_t i = 0; i < m->rec->n_aliases; i++)
        if (strcmp(m->rec->aliases[i]->key, alias) == 0)
            return (uint32_t)strtoul(m->rec->aliases[i]->value, NULL, 10);
    return 0;
}

/* Point alias at version: the record updated, the move appended. */
static void ty_alias_set(ty_core_t *c, ty_model_t *m, const char *alias, uint32_t version,
                         const char *by, const char *note) {
    Ty__ModelRecord rec = *m->rec;
    uint32_t from = ty_alias_get(m, alias);
    Ty__KV **kvs = ty_xcalloc(m->rec->n_aliases + 1, sizeof *kvs);
    Ty__KV *fresh = ty_xcalloc(m->rec->n_aliases + 1, sizeof *fresh);
    char vbuf[16];
    snprintf(vbuf, sizeof vbuf, "%u", version);
    size_t n = 0;
    for (size_t i = 0; i < m->rec->n_aliases; i++)
        if (strcmp(m->rec->aliases[i]->key, alias) != 0)
            kvs[n++] = m->rec->aliases[i];
    ty__kv__init(&fresh[0]);
    fresh[0].key = (char *)alias;
    fresh[0].value = vbuf;
    kvs[n++] = &fresh[0];
    rec.aliases = kvs;
    rec.n_aliases = n;
    rec.moves = m->rec->moves + 1;
    Ty__ModelRecord *nrec = ty_pb_dup(&rec.base);
    free(kvs);
    free(fresh);
    ty__model_record__free_unpacked(m->rec, NULL);
    m->rec = nrec;
    Ty__AliasMove mv = TY__ALIAS_MOVE__INIT;
    mv.alias = (char *)alias;
    mv.from_version = from;
    mv.to_version = version;
    mv.by = (char *)(by ? by : "");
    mv.at_ms = c->now.wall_ms;
    mv.note = (char *)(note ? note : "");
    mv.seq = m->rec->moves;
    Ty__AliasMove *h = ty_pb_dup(&mv.base);
    ty_slot((void ***)&m->h, &m->nh, (size_t)h->seq - 1, h);
    ty_put_msg(c, ty_xasprintf("models/%s", m->rec->name), &m->rec->base);
    ty_put_msg(c, ty_xasprintf("models/%s/h/%012llu", m->rec->name, (unsigned long long)h->seq),
               &h->base);
    ty_info("model %s: %s -> version %u (was %u) by %s", m->rec->name, alias, version, from, mv.by);
}

/* A new version of name from the output out of task t (by: who). */
/* owner: whose the model is when this makes it */
static Ty__ModelVersion *ty_register(ty_core_t *c, const char *name, const ty_task_t *t,
                                     const Ty__ArtifactRef *out, Ty__KV *const *metrics,
                                     size_t nmetrics, Ty__KV *const *tags, size_t ntags,
                                     const char *by, const char *owner) {
    ty_model_t *m = ty_model_get(c, name, 1, owner);
    Ty__ModelVersion v = TY__MODEL_VERSION__INIT;
    v.name = (char *)name;
    v.version = m->rec->last_version + 1;
    v.artifact = out->name;
    v.sha256 = out->sha256;
    v.size = out->size;
    v.run_id = t->run->id;
    v.task = t->spec->name;
    v.pipeline = t->run->spec->name;
    v.params = t->run->params;
    v.n_params = t->run->nparams;
    Ty__Metric *ms = ty_xcalloc(t->nmetrics + nmetrics + 1, sizeof *ms);
    Ty__Metric **mp = ty_xcalloc(t->nmetrics + nmetrics + 1, sizeof *mp);
    size_t nm = 0;
    for (size_t i = 0; i < nmetrics; i++) { /* given at register: over the task's */
        ty__metric__init(&ms[nm]);
        ms[nm].name = metrics[i]->key;
        ms[nm].value = strtod(metrics[i]->value, NULL);
        mp[nm] = &ms[nm];
        nm++;
    }
    for (size_t i = 0; i < t->nmetrics; i++) {
        int given = 0;
        for (size_t k = 0; k < nmetrics; k++)
            given |= strcmp(metrics[k]->key, t->metrics[i].name) == 0;
        if (given)
            continue;
        ty__metric__init(&ms[nm]);
        ms[nm].name = t->metrics[i].name;
        ms[nm].value = t->metrics[i].value;
        ms[nm].step = t->metrics[i].step;
        mp[nm] = &ms[nm];
        nm++;
    }
    v.metrics = mp;
    v.n_metrics = nm;
    Ty__KV **tp = ty_xcalloc(t->ntags + ntags + 1, sizeof *tp);
    size_t nt = 0;
    for (size_t i = 0; i < t->ntags; i++)
        tp[nt++] = t->tags[i];
    for (size_t i = 0; i < ntags; i++)
        tp[nt++] = tags[i];
    v.tags = tp;
    v.n_tags = nt;
    v.created_ms = c->now.wall_ms;
    v.by = (char *)(by ? by : "");
    Ty__ModelVersion *nv = ty_pb_dup(&v.base);
    free(ms);
    free(mp);
    free(tp);
    ty_slot((void ***)&m->v, &m->nv, nv->version - 1, nv);
    Ty__ModelRecord rec = *m->rec;
    rec.last_version = nv->version;
    Ty__ModelRecord *nrec = ty_pb_dup(&rec.base);
    ty__model_record__free_unpacked(m->rec, NULL);
    m->rec = nrec;
    ty_put_msg(c, ty_xasprintf("models/%s", name), &m->rec->base);
    ty_put_msg(c, ty_xasprintf("models/%s/v/%08u", name, nv->version), &nv->base);
    ty_info("model %s: version %u registered from %s/%s (%s, %.12s...) by %s", name, nv->version,
            nv->run_id, nv->task, nv->artifact, nv->sha256, nv->by);
    return nv;
}

const char *ty_models_name_problem(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 63 ||
        !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
        return "must match [a-z0-9][a-z0-9_.-]{0,62}";
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_' || name[i] == '.' || name[i] == '-'))
            return "must match [a-z0-9][a-z0-9_.-]{0,62}";
    if (strstr(name, ".."))
        return "must not contain '..'";
    return NULL;
}

/* ---- a step's register lines, with its result ---- */

char *ty_models_check_result(const ty_task_t *t, const Ty__TaskResult *res) {
    for (size_t i = 0; i < res->n_registers; i++) {
        const Ty__KV *kv = res->registers[i];
        const char *bad = ty_models_name_problem(kv->key);
        if (bad)
            return ty_xasprintf("register %.80s: the model name %s", kv->key, bad);
        size_t k = 0;
        while (k < res->n_outputs && strcmp(res->outputs[k]->name, kv->value) != 0)
            k++;
        if (k == res->n_outputs)
            return ty_xasprintf("register %s: %s is not an output of %s (declare it under "
                                "outputs:, or report it with an artifact line)",
                                kv->key, kv->value, t->spec->name);
    }
    return NULL;
}

void ty_models_from_result(ty_core_t *c, const ty_task_t *t, const Ty__TaskResult *res) {
    char *by = ty_xasprintf("%s/%s", t->run->id, t->spec->name);
    for (size_t i = 0; i < res->n_registers; i++)
        for (size_t k = 0; k < res->n_outputs; k++)
            if (strcmp(res->outputs[k]->name, res->registers[i]->value) == 0) {
                ty_register(c, res->registers[i]->key, t, res->outputs[k], NULL, 0, NULL, 0, by,
                            t->run->owner); /* a step's: its run's owner's */
                break;
            }
    free(by);
}

/* ---- requests ---- */

static void ty_models_reply(ty_core_t *c, const ty_ev_t *ev, Ty__ModelReply *rep) {
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.req_id = ev->req_id;
    env.body_case = TY__ENVELOPE__BODY_MODEL_REPLY;
    env.model_reply = rep;
    ty_core_send_env(c, TY_PEER_CLIENT, ev->peer, ev->peer_len, &env); /* once durable */
}

const Ty__ModelVersion *ty_models_version(ty_core_t *c, const char *name, uint32_t version) {
    ty_model_t *m = zhashx_lookup(c->models, name);
    return m && version > 0 && version <= m->nv ? m->v[version - 1] : NULL;
}

static double ty_metric_in(const Ty__ModelVersion *v, const char *metric, int *found) {
    for (size_t i = 0; i < v->n_metrics; i++)
        if (strcmp(v->metrics[i]->name, metric) == 0) {
            *found = 1;
            return v->metrics[i]->value;
        }
    *found = 0;
    return 0;
}

static int ty_on_register(ty_core_t *c, const ty_ev_t *ev, const Ty__ModelRequest *rq) {
    /* from: RUN/TASK/ARTIFACT (the artifact's name may hold '/') */
    const char *s1 = strchr(rq->from, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    const ty_run_t *r = ev->retry_of;
    const ty_task_t *t = NULL;
    char *msg = NULL;
    if (!s2 || !r) {
        msg = ty_xasprintf("--from needs RUN/TASK/ARTIFACT, got '%.200s'", rq->from);
    } else {
        char *task = ty_xstrndup(s1 + 1, (size_t)(s2 - s1 - 1));
        for (size_t i = 0; i < r->ntasks && !t; i++)
            if (strcmp(r->tasks[i].spec->name, task) == 0)
                t = &r->tasks[i];
        if (!t)
            msg = ty_xasprintf("run %s has no task '%s'", r->id, task);
        else if (t->state != TY_TASK_SUCCEEDED && t->state != TY_TASK_CACHED)
            msg = ty_xasprintf("task %s/%s is %s: only a success's outputs can be registered",
                               r->id, task, ty_task_state_name(t->state));
        free(task);
    }
    const Ty__ArtifactRef *out = NULL;
    for (size_t k = 0; !msg && k < t->noutputs && !out; k++)
        if (strcmp(t->outputs[k]->name, s2 + 1) == 0)
            out = t->outputs[k];
    if (!msg && !out)
        msg = ty_xasprintf("task %s/%s has no output '%s' (see trainyard artifacts %s)", r->id,
                           t->spec->name, s2 + 1, r->id);
    if (msg) {
        ty_core_reply_error(c, ev, TY_ENOENT, msg);
        free(msg);
        return TY_ENOENT;
    }
    Ty__ModelVersion *v = ty_register(c, rq->name, t, out, rq->metrics, rq->n_metrics, rq->tags,
                                      rq->n_tags, ty_by(ev, rq), ev->owner);
    Ty__ModelReply rep = TY__MODEL_REPLY__INIT;
    rep.versions = &v;
    rep.n_versions = 1;
    ty_models_reply(c, ev, &rep);
    return 0;
}

static int ty_on_promote(ty_core_t *c, const ty_ev_t *ev, const Ty__ModelRequest *rq, ty_model_t *m,
                         const Ty__ModelVersion *cand) {
    int found = 0, cur_found = 0;
    double x = ty_metric_in(cand, rq->metric, &found);
    if (!found) {
        char *msg = ty_xasprintf("version %u of %s has no metric '%s' (it has %zu metrics; see "
                                 "trainyard models show %s:%u)",
                                 cand->version, cand->name, rq->metric, cand->n_metrics, cand->name,
                                 cand->version);
        ty_core_reply_error(c, ev, TY_EINVAL, msg);
        free(msg);
        return TY_EINVAL;
    }
    uint32_t curv = ty_alias_get(m, rq->alias);
    const Ty__ModelVersion *cur = ty_models_version(c, m->rec->name, curv);
    double y = cur ? ty_metric_in(cur, rq->metric, &cur_found) : 0;
    if (cur && rq->has_baseline) { /* measured on the same data as the candidate */
        y = rq->baseline;
        cur_found = 1;
    }
    Ty__ModelReply rep = TY__MODEL_REPLY__INIT;
    rep.candidate = x;
    rep.current = y;
    rep.current_version = curv;
    char *decision;
    const char *dir = rq->lower_is_better ? "lower" : "higher";
    if (!cur || !cur_found) {
        rep.promoted = 1;
        decision = cur ? ty_xasprintf("promoted: %s %g; version %u has no %s", rq->metric, x, curv,
                                      rq->metric)
                       : ty_xasprintf("promoted: %s %g; %s pointed at no version yet", rq->metric,
                                      x, rq->alias);
    } else if (curv == cand->version) {
        rep.promoted = 0;
        decision = ty_xasprintf("not promoted: version %u is %s already", curv, rq->alias);
    } else {
        double gain = rq->lower_is_better ? y - x : x - y;
        double need = rq->min_delta;
        if (rq->min_relative > 0 && rq->min_relative * fabs(y) > need)
            need = rq->min_relative * fabs(y);
        rep.promoted = gain > 0 && gain >= need;
        char margin[120] = "";
        size_t k = 0;
        if (need > 0)
            k = (size_t)snprintf(margin, sizeof margin, ", at least %g needed", need);
        if (rq->has_baseline)
            snprintf(margin + k, sizeof margin - k, "; version %u measured on the same data", curv);
        decision = ty_xasprintf("%s: %s %g against %g of version %u (%s is better; better by "
                                "%g%s)",
                                rep.promoted ? "promoted" : "not promoted", rq->metric, x, y, curv,
                                dir, gain, margin);
    }
    rep.decision = decision;
    if (rep.promoted)
        ty_alias_set(c, m, rq->alias, cand->version, ty_by(ev, rq), decision);
    ty_info("model %s version %u for %s: %s", m->rec->name, cand->version, rq->alias, decision);
    Ty__ModelRecord *recp = m->rec;
    rep.models = &recp;
    rep.n_models = 1;
    ty_models_reply(c, ev, &rep);
    free(decision);
    return 0;
}

int ty_models_request(ty_core_t *c, const ty_ev_t *ev) {
    const Ty__ModelRequest *rq =
        ev->msg && ev->msg->body_case == TY__ENVELOPE__BODY_MODEL ? ev->msg->model : NULL;
    const char *bad = rq ? ty_models_name_problem(rq->name) : "is missing";
    if (bad) {
        char *msg = ty_xasprintf("model name '%.80s' %s", rq ? rq->name : "", bad);
        ty_core_reply_error(c, ev, TY_EINVAL, msg);
        free(msg);
        return TY_EINVAL;
    }
    if (strcmp(rq->op, "register") == 0)
        return ty_on_register(c, ev, rq);
    ty_model_t *m = zhashx_lookup(c->models, rq->name);
    const Ty__ModelVersion *v = m ? ty_models_version(c, rq->name, rq->version) : NULL;
    if (!v) {
        char *msg = m ? ty_xasprintf("model %s has no version %u (its last is %u)", rq->name,
                                     rq->version, m->rec->last_version)
                      : ty_xasprintf("no model named '%s'", rq->name);
        ty_core_reply_error(c, ev, TY_ENOENT, msg);
        free(msg);
        return TY_ENOENT;
    }
    bad = ty_models_name_problem(rq->alias);
    if (bad || strspn(rq->alias, "0123456789") == strlen(rq->alias)) {
        char *msg = ty_xasprintf("alias '%.80s' %s", rq->alias,
                                 bad ? bad : "must not be a number (it would read as a version)");
        ty_core_reply_error(c, ev, TY_EINVAL, msg);
        free(msg);
        return TY_EINVAL;
    }
    if (strcmp(rq->op, "promote") == 0 && !*rq->metric) {
        ty_core_reply_error(c, ev, TY_EINVAL, "promote needs --metric NAME");
        return TY_EINVAL;
    }
    if (strcmp(rq->op, "promote") == 0)
        return ty_on_promote(c, ev, rq, m, v);
    if (strcmp(rq->op, "alias") != 0) {
        ty_core_reply_error(c, ev, TY_EINVAL, "unknown model operation");
        return TY_EINVAL;
    }
    ty_alias_set(c, m, rq->alias, v->version, ty_by(ev, rq), "set by hand");
    Ty__ModelReply rep = TY__MODEL_REPLY__INIT;
    Ty__ModelRecord *recp = m->rec;
    rep.models = &recp;
    rep.n_models = 1;
    ty_models_reply(c, ev, &rep);
    return 0;
}

/* ---- views ---- */

size_t ty_models_list(ty_core_t *c, Ty__ModelRecord ***out) {
    zlistx_t *keys = zhashx_keys(c->models);
    zlistx_set_comparator(keys, (zlistx_comparator_fn *)strcmp);
    zlistx_sort(keys);
    size_t n = 0;
    *out = ty_xcalloc(zlistx_size(keys) + 1, sizeof **out);
    for (char *k = zlistx_first(keys); k; k = zlistx_next(keys)) {
        ty_model_t *m = zhashx_lookup(c->models, k);
        if (m->rec->last_version)
            (*out)[n++] = m->rec;
    }
    zlistx_destroy(&keys);
    return n;
}

int ty_models_find(ty_core_t *c, const char *name, const Ty__ModelRecord **rec,
                   Ty__ModelVersion *const **versions, size_t *nv, Ty__AliasMove *const **moves,
                   size_t *nh) {
    ty_model_t *m = zhashx_lookup(c->models, name);
    if (!m || !m->rec->last_version)
        return TY_ENOENT;
    *rec = m->rec;
    *versions = m->v;
    *nv = m->nv;
    *moves = m->h;
    *nh = m->nh;
    return 0;
}

uint32_t ty_models_alias(ty_core_t *c, const char *name, const char *alias) {
    ty_model_t *m = zhashx_lookup(c->models, name);
    return m ? ty_alias_get(m, alias) : 0;
}

void ty_models_keep(ty_core_t *c, zhashx_t *keep) {
    for (ty_model_t *m = zhashx_first(c->models); m; m = zhashx_next(c->models))
        for (size_t i = 0; i < m->nv; i++)
            if (m->v[i])
                zhashx_update(keep, m->v[i]->sha256, (void *)1);
}
