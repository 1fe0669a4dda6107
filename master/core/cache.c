/* The step cache.  A task with cache: true that becomes ready gets a key:
 * the SHA-256 of the digests of five parts, its rendered command, its env,
 * its kind/np/gpus, the digests of its inputs (by key) and its declared
 * outputs.  A success stores cache/<key> (CacheRecord) with its outputs, in
 * the batch that marks it succeeded.  A later task with the same key is
 * not run: the core asks the shell whether the entry's blobs are still in
 * the store (a CHECK effect; the task waits), and on the CHECKED answer
 * takes the outputs (state cached) or, when some are gone, forgets the
 * entry and queues the task.  A miss says which parts changed against the
 * latest entry of the same pipeline and task. */
#include "master/core/core_int.h"

#include "common/digest.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static const char *const ty_part_names[TY_CACHE_PARTS] = {"command", "env", "kind/np/gpus",
                                                          "inputs", "outputs"};

typedef struct {
    char *key, *run, *task, *pipeline;
    Ty__ArtifactRef **outputs;
    size_t noutputs;
    char *parts[TY_CACHE_PARTS];
    int64_t created;
} ty_cache_entry_t;

static void ty_entry_free(void **item) {
    ty_cache_entry_t *e = *item;
    if (!e)
        return;
    free(e->key);
    free(e->run);
    free(e->task);
    free(e->pipeline);
    for (size_t i = 0; i < e->noutputs; i++) {
        free(e->outputs[i]->name);
        free(e->outputs[i]->sha256);
        free(e->outputs[i]);
    }
    free(e->outputs);
    for (int i = 0; i < TY_CACHE_PARTS; i++)
        free(e->parts[i]);
    free(e);
    *item = NULL;
}

void ty_cache_init(ty_core_t *c) {
    c->cache = zhashx_new();
    zhashx_set_destructor(c->cache, ty_entry_free);
    c->cache_last = zhashx_new();
    zhashx_set_destructor(c->cache_last, (zhashx_destructor_fn *)zstr_free);
    zhashx_set_duplicator(c->cache_last, (zhashx_duplicator_fn *)strdup);
}

void ty_cache_fini(ty_core_t *c) {
    zhashx_destroy(&c->cache);
    zhashx_destroy(&c->cache_last);
}

void ty_cache_task_clear(ty_task_t *t) {
    free(t->cache_key);
    t->cache_key = NULL;
    for (int i = 0; i < TY_CACHE_PARTS; i++) {
        free(t->cache_parts[i]);
        t->cache_parts[i] = NULL;
    }
    free(t->cache_note);
    t->cache_note = NULL;
    t->cache_checking = 0;
}

static int ty_str_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The digest of n strings, sorted first when sort is set. */
static char *ty_digest_strs(char **s, size_t n, int sort) {
    if (sort)
        qsort(s, n, sizeof *s, ty_str_cmp);
    ty_sha256_t *h;
    ty_sha256_create(&h);
    for (size_t i = 0; i < n; i++)
        ty_sha256_update(h, s[i], strlen(s[i]) + 1); /* with its NUL: no joins collide */
    char *hex = ty_xmalloc(TY_SHA256_HEX);
    ty_sha256_final(h, hex);
    ty_sha256_destroy(&h);
    return hex;
}

static void ty_strs_free(char **s, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

/* t's parts and key (its inputs' producers have stored them: t is ready). */
static void ty_key(const ty_task_t *t, char *parts[TY_CACHE_PARTS], char **key) {
    const Ty__TaskSpec *sp = t->spec;
    size_t n = sp->n_argv + 2;
    char **v = ty_xcalloc(n, sizeof *v);
    size_t k = 0;
    v[k++] = ty_xstrdup(*sp->shell ? "shell" : "argv");
    if (*sp->shell)
        v[k++] = ty_xstrdup(sp->shell);
    for (size_t i = 0; i < sp->n_argv; i++)
        v[k++] = ty_xstrdup(sp->argv[i]);
    parts[0] = ty_digest_strs(v, k, 0);
    ty_strs_free(v, k);
    v = ty_xcalloc(sp->n_env + 1, sizeof *v);
    for (size_t i = 0; i < sp->n_env; i++)
        v[i] = ty_xasprintf("%s=%s", sp->env[i]->key, sp->env[i]->value);
    parts[1] = ty_digest_strs(v, sp->n_env, 1);
    ty_strs_free(v, sp->n_env);
    v = ty_xcalloc(1, sizeof *v);
    v[0] = ty_xasprintf("%u %u %u", sp->kind, sp->np, sp->resources ? sp->resources->gpus : 0);
    parts[2] = ty_digest_strs(v, 1, 0);
    ty_strs_free(v, 1);
    v = ty_xcalloc(sp->n_inputs + 1, sizeof *v);
    for (size_t i = 0; i < sp->n_inputs; i++) {
        const Ty__ArtifactRef *a = ty_runs_find_output(t->run, sp->inputs[i]->value);
        v[i] = ty_xasprintf("%s=%s", sp->inputs[i]->key, a ? a->sha256 : "");
    }
    parts[3] = ty_digest_strs(v, sp->n_inputs, 1);
    ty_strs_free(v, sp->n_inputs);
    v = ty_xcalloc(sp->n_outputs + 1, sizeof *v);
    for (size_t i = 0; i < sp->n_outputs; i++)
        v[i] = ty_xstrdup(sp->outputs[i]);
    parts[4] = ty_digest_strs(v, sp->n_outputs, 1);
    ty_strs_free(v, sp->n_outputs);
    *key = ty_digest_strs(parts, TY_CACHE_PARTS, 0);
}

static char *ty_last_name(const char *pipeline, const char *task) {
    return ty_xasprintf("%s/%s", pipeline, task);
}

static void ty_set_note(ty_task_t *t, char *note) {
    free(t->cache_note);
    t->cache_note = note;
}

int ty_cache_ready(ty_core_t *c, ty_task_t *t) {
    if (t->cache_checking)
        return 1; /* asked already */
    ty_cache_task_clear(t);
    ty_key(t, t->cache_parts, &t->cache_key);
    ty_cache_entry_t *e = zhashx_lookup(c->cache, t->cache_key);
    if (e) {
        t->cache_checking = 1;
        ty_set_note(t, ty_xasprintf("cache hit: looking for run %s's outputs", e->run));
        ty_fx_t fx = {.kind = TY_FX_CHECK};
        fx.run = ty_xstrdup(t->run->id);
        fx.task = ty_xstrdup(t->spec->name);
        fx.shas = ty_xcalloc(e->noutputs ? e->noutputs : 1, sizeof *fx.shas);
        for (size_t i = 0; i < e->noutputs; i++)
            fx.shas[i] = ty_xstrdup(e->outputs[i]->sha256);
        fx.nshas = e->noutputs;
        ty_core_emit(c, &fx);
        ty_persist_task(c, t);
        return 1;
    }
    char *name = ty_last_name(t->run->spec->name, t->spec->name);
    const char *last = zhashx_lookup(c->cache_last, name);
    ty_cache_entry_t *le = last ? zhashx_lookup(c->cache, last) : NULL;
    free(name);
    if (!le) {
        ty_set_note(t, ty_xstrdup("cache miss: no earlier success of this task"));
        return 0;
    }
    ty_buf_t b = {0};
    ty_buf_printf(&b, "cache miss: since run %s,", le->run);
    int any = 0;
    for (int i = 0; i < TY_CACHE_PARTS; i++)
        if (!le->parts[i] || strcmp(le->parts[i], t->cache_parts[i]) != 0) {
            ty_buf_printf(&b, "%s %s", any ? "," : "", ty_part_names[i]);
            any = 1;
        }
    ty_buf_printf(&b, " changed");
    ty_set_note(t, b.data);
    return 0;
}

void ty_cache_checked(ty_core_t *c, const char *run, const char *task, int ok) {
    ty_task_t *t = ty_core_find_task(c, run, task);
    if (!t || !t->cache_checking || t->state != TY_TASK_WAITING)
        return; /* answered before, or the run was cancelled meanwhile */
    t->cache_checking = 0;
    ty_cache_entry_t *e = t->cache_key ? zhashx_lookup(c->cache, t->cache_key) : NULL;
    if (ok && e) {
        t->state = TY_TASK_CACHED;
        t->finished_ms = c->now.wall_ms;
        ty_runs_set_outputs(t, e->outputs, e->noutputs);
        ty_runs_set_reason(t, ty_xasprintf("cached: as in run %s", e->run));
        ty_set_note(t, ty_xasprintf("cache hit: run %s", e->run));
        ty_info("task %s/%s cached: its key's outputs are those of run %s", run, task, e->run);
        ty_persist_task(c, t);
        ty_runs_settle(c, t);
        return;
    }
    ty_set_note(
        t, ty_xasprintf("cache miss: run %s's outputs are no longer stored", e ? e->run : "?"));
    if (e)
        zhashx_delete(c->cache, t->cache_key); /* its record stays: checked again if loaded */
    ty_runs_enqueue(c, t);
}

#define TY_FORGET_PER_FX 100 /* keys per delete: etcd takes 128 operations a txn */

void ty_cache_blobs_gone(ty_core_t *c, char *const *shas, size_t n) {
    zhashx_t *gone = zhashx_new();
    for (size_t i = 0; i < n; i++)
        zhashx_update(gone, shas[i], (void *)1);
    zlistx_t *keys = zlistx_new();
    for (ty_cache_entry_t *e = zhashx_first(c->cache); e; e = zhashx_next(c->cache))
        for (size_t i = 0; i < e->noutputs; i++)
            if (zhashx_lookup(gone, e->outputs[i]->sha256)) {
                zlistx_add_end(keys, e->key);
                break;
            }
    ty_fx_t fx = {.kind = TY_FX_FORGET};
    for (char *k = zlistx_first(keys); k; k = zlistx_next(keys)) {
        if (!fx.shas)
            fx.shas = ty_xcalloc(TY_FORGET_PER_FX, sizeof *fx.shas);
        fx.shas[fx.nshas++] = ty_xasprintf("cache/%s", k);
        if (fx.nshas == TY_FORGET_PER_FX) {
            fx.epoch = c->o.epoch;
            ty_core_emit(c, &fx);
            memset(&fx, 0, sizeof fx);
            fx.kind = TY_FX_FORGET;
        }
    }
    if (fx.nshas) {
        fx.epoch = c->o.epoch;
        ty_core_emit(c, &fx);
    }
    size_t forgotten = zlistx_size(keys);
    char *k;
    while ((k = zlistx_first(keys))) {
        char *key = ty_xstrdup(k);
        zlistx_delete(keys, zlistx_cursor(keys));
        zhashx_delete(c->cache, key); /* frees the entry (and k with it) */
        free(key);
    }
    if (forgotten)
        ty_info("step cache: %zu entries forgotten, their outputs were collected", forgotten);
    zlistx_destroy(&keys);
    zhashx_destroy(&gone);
}

static ty_cache_entry_t *ty_entry_add(ty_core_t *c, ty_cache_entry_t *e) {
    char *name = ty_last_name(e->pipeline, e->task);
    const char *last = zhashx_lookup(c->cache_last, name);
    ty_cache_entry_t *le = last ? zhashx_lookup(c->cache, last) : NULL;
    if (!le || le->created <= e->created)
        zhashx_update(c->cache_last, name, e->key);
    free(name);
    zhashx_update(c->cache, e->key, e);
    return e;
}

void ty_cache_succeeded(ty_core_t *c, ty_task_t *t) {
    if (!t->spec->cache || !t->cache_key)
        return;
    ty_cache_entry_t *e = ty_xcalloc(1, sizeof *e);
    e->key = ty_xstrdup(t->cache_key);
    e->run = ty_xstrdup(t->run->id);
    e->task = ty_xstrdup(t->spec->name);
    e->pipeline = ty_xstrdup(t->run->spec->name);
    e->created = c->now.wall_ms;
    e->noutputs = t->noutputs;
    e->outputs = ty_xcalloc(t->noutputs ? t->noutputs : 1, sizeof *e->outputs);
    Ty__CacheRecord rec = TY__CACHE_RECORD__INIT;
    for (size_t i = 0; i < t->noutputs; i++) {
        Ty__ArtifactRef *a = ty_xmalloc(sizeof *a);
        ty__artifact_ref__init(a);
        a->name = ty_xstrdup(t->outputs[i]->name);
        a->sha256 = ty_xstrdup(t->outputs[i]->sha256);
        a->size = t->outputs[i]->size;
        e->outputs[i] = a;
    }
    for (int i = 0; i < TY_CACHE_PARTS; i++)
        e->parts[i] = ty_xstrdup(t->cache_parts[i]);
    rec.run_id = e->run;
    rec.task = e->task;
    rec.pipeline = e->pipeline;
    rec.outputs = e->outputs;
    rec.n_outputs = e->noutputs;
    rec.parts = e->parts;
    rec.n_parts = TY_CACHE_PARTS;
    rec.created_ms = e->created;
    size_t len = ty__cache_record__get_packed_size(&rec);
    uint8_t *val = ty_xmalloc(len ? len : 1);
    ty__cache_record__pack(&rec, val);
    ty_persist_put(c, ty_xasprintf("cache/%s", e->key), val, len);
    ty_entry_add(c, e);
}

void ty_cache_load(ty_core_t *c, const char *key, const uint8_t *val, size_t len) {
    Ty__CacheRecord *rec = ty__cache_record__unpack(NULL, len, val);
    if (!rec || !ty_sha256_hex_ok(key) || rec->n_parts != TY_CACHE_PARTS) {
        if (rec)
            ty__cache_record__free_unpacked(rec, NULL);
        return;
    }
    ty_cache_entry_t *e = ty_xcalloc(1, sizeof *e);
    e->key = ty_xstrdup(key);
    e->run = ty_xstrdup(rec->run_id);
    e->task = ty_xstrdup(rec->task);
    e->pipeline = ty_xstrdup(rec->pipeline);
    e->created = rec->created_ms;
    e->noutputs = rec->n_outputs;
    e->outputs = ty_xcalloc(rec->n_outputs ? rec->n_outputs : 1, sizeof *e->outputs);
    for (size_t i = 0; i < rec->n_outputs; i++) {
        Ty__ArtifactRef *a = ty_xmalloc(sizeof *a);
        ty__artifact_ref__init(a);
        a->name = ty_xstrdup(rec->outputs[i]->name);
        a->sha256 = ty_xstrdup(rec->outputs[i]->sha256);
        a->size = rec->outputs[i]->size;
        e->outputs[i] = a;
    }
    for (int i = 0; i < TY_CACHE_PARTS; i++)
        e->parts[i] = ty_xstrdup(rec->parts[i]);
    ty__cache_record__free_unpacked(rec, NULL);
    ty_entry_add(c, e);
}
