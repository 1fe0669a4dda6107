#include "common/dag.h"
#include "common/dag_int.h"

#include "common/err.h"
#include "common/tmpl.h"
#include "common/util.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const ty_run_names[] = {"pending", "running", "succeeded", "failed",
                                           "cancelled"};
static const char *const ty_task_names[] = {"waiting",   "queued",    "running",
                                            "succeeded", "failed",    "upstream_failed",
                                            "skipped",   "cancelled", "cached"};
static const char *const ty_trigger_names[] = {"all_success", "all_done", "one_failed",
                                               "none_failed"};

const char *ty_run_state_name(unsigned s) { return s < TY_RUN_NSTATES ? ty_run_names[s] : "?"; }
const char *ty_task_state_name(unsigned s) { return s < TY_TASK_NSTATES ? ty_task_names[s] : "?"; }
const char *ty_trigger_name(unsigned t) { return t < 4 ? ty_trigger_names[t] : "?"; }
int ty_is_wait_reason(const char *reason) {
    return reason && (strncmp(reason, TY_WAIT_ROOM, strlen(TY_WAIT_ROOM)) == 0 ||
                      strncmp(reason, TY_WAIT_NONE, strlen(TY_WAIT_NONE)) == 0);
}

int ty_task_state_terminal(unsigned s) { return s >= TY_TASK_SUCCEEDED && s < TY_TASK_NSTATES; }

void ty_dag_free(Ty__PipelineSpec **spec) {
    if (spec && *spec) {
        /* Everything was allocated with malloc, as protobuf-c's unpacker does. */
        ty__pipeline_spec__free_unpacked(*spec, NULL);
        *spec = NULL;
    }
}

void ty_dag_kvs_free(Ty__KV **kvs, size_t n) {
    for (size_t i = 0; i < n; i++)
        ty__kv__free_unpacked(kvs[i], NULL);
    free(kvs);
}

int ty_dag_task_index(const Ty__PipelineSpec *spec, const char *name) {
    for (size_t i = 0; i < spec->n_tasks; i++)
        if (strcmp(spec->tasks[i]->name, name) == 0)
            return (int)i;
    return -1;
}

Ty__KV *ty_dag_kv_new(const char *k, const char *v) {
    Ty__KV *kv = ty_xmalloc(sizeof *kv);
    ty__kv__init(kv);
    kv->key = ty_xstrdup(k);
    kv->value = ty_xstrdup(v);
    return kv;
}

/* Params sorted by key (stable: the last of equal keys wins), so that a
 * template's lookup costs O(log n), not O(n). */
struct ty_dag_params {
    Ty__KV **kv;
    size_t n;
};

static int ty_kv_cmp(const void *a, const void *b) {
    const Ty__KV *x = *(Ty__KV *const *)a, *y = *(Ty__KV *const *)b;
    int r = strcmp(x->key, y->key);
    return r ? r : (x > y) - (x < y);
}

ty_dag_params_t *ty_dag_params_index(Ty__KV *const *params, size_t n) {
    ty_dag_params_t *ix = ty_xmalloc(sizeof *ix);
    ix->kv = ty_xcalloc(n ? n : 1, sizeof *ix->kv);
    if (n)
        memcpy(ix->kv, params, n * sizeof *params);
    ix->n = n;
    qsort(ix->kv, n, sizeof *ix->kv, ty_kv_cmp);
    return ix;
}

void ty_dag_params_free(ty_dag_params_t *ix) {
    if (ix) {
        free(ix->kv);
        free(ix);
    }
}

static Ty__KV *ty_param_find(const ty_dag_params_t *ix, const char *name, size_t nlen) {
    size_t lo = 0, hi = ix->n;
    while (lo < hi) { /* the first key not below name[0..nlen) */
        size_t mid = lo + (hi - lo) / 2;
        const char *k = ix->kv[mid]->key;
        int r = strncmp(k, name, nlen);
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* keys equal in their first nlen bytes sort shortest first */
    return lo < ix->n && strncmp(ix->kv[lo]->key, name, nlen) == 0 && !ix->kv[lo]->key[nlen]
               ? ix->kv[lo]
               : NULL;
}

static char *ty_param_value(const void *arg, const char *name, size_t len) {
    Ty__KV *kv = ty_param_find(arg, name, len);
    return kv && kv->value ? ty_xstrdup(kv->value) : NULL;
}

char *ty_dag_render_ix(const char *tmpl, int mode, const ty_dag_params_t *params, char **missing) {
    return ty_tmpl_render(tmpl, (ty_tmpl_mode_t)mode, "params.", ty_param_value, params, missing);
}

char *ty_dag_render(const char *tmpl, Ty__KV *const *params, size_t n, char **missing) {
    ty_dag_params_t *ix = ty_dag_params_index(params, n);
    char *r = ty_dag_render_ix(tmpl, TY_TMPL_RAW, ix, missing);
    ty_dag_params_free(ix);
    return r;
}

char *ty_dag_input_path(const char *key, const char *ref) {
    const char *base = strrchr(ref, '/');
    return ty_xasprintf("inputs/%s/%s", key, base ? base + 1 : ref);
}

int ty_dag_declares_output(const Ty__TaskSpec *t, const char *name) {
    if (strpbrk(name, "*?["))
        return 0; /* an input names one file */
    for (size_t i = 0; i < t->n_outputs; i++)
        if (strpbrk(t->outputs[i], "*?[") ? fnmatch(t->outputs[i], name, FNM_PATHNAME) == 0
                                          : strcmp(t->outputs[i], name) == 0)
            return 1;
    return 0;
}

static char *ty_input_value(const void *arg, const char *name, size_t len) {
    const Ty__TaskSpec *t = arg;
    for (size_t i = 0; i < t->n_inputs; i++)
        if (strlen(t->inputs[i]->key) == len && strncmp(t->inputs[i]->key, name, len) == 0)
            return ty_dag_input_path(t->inputs[i]->key, t->inputs[i]->value);
    return NULL;
}

char *ty_dag_render_inputs(const char *tmpl, int mode, const Ty__TaskSpec *t, char **missing) {
    return ty_tmpl_render(tmpl, (ty_tmpl_mode_t)mode, "inputs.", ty_input_value, t, missing);
}

/* A string of an unpacked message replaced: protobuf-c leaves an empty one
 * pointing at its static "", which is not to be freed. */
static void ty_str_replace(char **s, char *r) {
    if (*s != protobuf_c_empty_string)
        free(*s);
    *s = r;
}

static void ty_render_inputs_in_place(char **s, int mode, const Ty__TaskSpec *t) {
    char *missing = NULL;
    char *r = ty_dag_render_inputs(*s, mode, t, &missing);
    free(missing); /* validated at load time */
    ty_str_replace(s, r);
}

static void ty_render_in_place(char **s, int mode, const ty_dag_params_t *params) {
    char *missing = NULL;
    char *r = ty_dag_render_ix(*s, mode, params, &missing);
    free(missing); /* validated at load time */
    ty_str_replace(s, r);
}

int ty_dag_resolve(const Ty__PipelineSpec *spec, Ty__KV *const *overrides, size_t n,
                   Ty__PipelineSpec **out, Ty__KV ***params_out, size_t *nparams_out,
                   char **errmsg) {
    *errmsg = NULL;
    size_t np = spec->n_params;
    Ty__KV **params = ty_xcalloc(np ? np : 1, sizeof *params);
    for (size_t i = 0; i < np; i++)
        params[i] = ty_dag_kv_new(spec->params[i]->key, spec->params[i]->value);
    ty_dag_params_t *ix = ty_dag_params_index(params, np);
    for (size_t i = 0; i < n; i++) {
        Ty__KV *kv = ty_param_find(ix, overrides[i]->key, strlen(overrides[i]->key));
        if (!kv) {
            ty_buf_t b = {0};
            ty_buf_printf(&b, "unknown param '%s' (pipeline '%s' defines:", overrides[i]->key,
                          spec->name);
            for (size_t j = 0; j < spec->n_params && j < 50; j++)
                ty_buf_printf(&b, " %s", spec->params[j]->key);
            ty_buf_printf(&b, "%s)", spec->n_params > 50 ? " ..." : spec->n_params ? "" : " none");
            *errmsg = b.data;
            ty_dag_params_free(ix);
            ty_dag_kvs_free(params, np);
            return TY_EINVAL;
        }
        free(kv->value); /* the last of repeated overrides wins */
        kv->value = ty_xstrdup(overrides[i]->value);
    }
    /* Deep copy through the wire format. */
    size_t len = ty__pipeline_spec__get_packed_size(spec);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__pipeline_spec__pack(spec, buf);
    Ty__PipelineSpec *copy = ty__pipeline_spec__unpack(NULL, len, buf);
    free(buf);
    if (!copy)
        abort();
    for (size_t t = 0; t < copy->n_tasks; t++) {
        Ty__TaskSpec *ts = copy->tasks[t];
        /* a shell script's values are quoted where they stand; argv and
         * env get them as they are */
        for (size_t a = 0; a < ts->n_argv; a++)
            ty_render_in_place(&ts->argv[a], ty_tmpl_argv_is_shell(ts->argv, ts->n_argv, a), ix);
        if (ts->shell && *ts->shell)
            ty_render_in_place(&ts->shell, TY_TMPL_SHELL, ix);
        for (size_t e = 0; e < ts->n_env; e++)
            ty_render_in_place(&ts->env[e]->value, TY_TMPL_RAW, ix);
        if (!ts->n_inputs)
            continue;
        for (size_t a = 0; a < ts->n_argv; a++)
            ty_render_inputs_in_place(&ts->argv[a], ty_tmpl_argv_is_shell(ts->argv, ts->n_argv, a),
                                      ts);
        if (ts->shell && *ts->shell)
            ty_render_inputs_in_place(&ts->shell, TY_TMPL_SHELL, ts);
        for (size_t e = 0; e < ts->n_env; e++)
            ty_render_inputs_in_place(&ts->env[e]->value, TY_TMPL_RAW, ts);
    }
    ty_dag_params_free(ix);
    for (size_t i = 0; i < copy->n_params; i++)
        ty_str_replace(&copy->params[i]->value, ty_xstrdup(params[i]->value));
    *out = copy;
    *params_out = params;
    *nparams_out = np;
    return 0;
}
