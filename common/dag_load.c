/* Pipeline loader: a bounded pre-scan of the YAML events (dag_scan.c),
 * libyaml's document, then one walk over it that builds the spec, and a
 * graph check in O(n log n).  Nothing here is quadratic in the input: mappings are
 * checked for duplicate keys by sorting, task names are looked up in a
 * sorted index, and the dependency graph is walked through adjacency
 * lists. */
#include "common/dag.h"
#include "common/cond.h"
#include "common/cron.h"
#include "common/dag_int.h"

#include "common/digest.h"
#include "common/err.h"
#include "common/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define TY_MAX_ERRORS 20

static void ty_dag_err_at(ty_dag_ctx_t *c, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ty_dag_verr(ty_dag_ctx_t *c, unsigned long line, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void ty_dag_verr(ty_dag_ctx_t *c, unsigned long line, const char *fmt, va_list ap) {
    if (c->nerr++ >= TY_MAX_ERRORS)
        return;
    char *s = ty_xvasprintf(fmt, ap);
    ty_buf_printf(&c->err, "%s:%lu: %s\n", c->file, line, s);
    free(s);
}

static void ty_dag_err_at(ty_dag_ctx_t *c, unsigned long line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ty_dag_verr(c, line, fmt, ap);
    va_end(ap);
}

void ty_dag_err(ty_dag_ctx_t *c, const yaml_node_t *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ty_dag_verr(c, n ? (unsigned long)n->start_mark.line + 1 : 1UL, fmt, ap);
    va_end(ap);
}

/* ---- the walk ---- */

yaml_node_t *ty_dag_node(ty_dag_ctx_t *c, int idx) { return yaml_document_get_node(c->doc, idx); }

static const char *ty_scalar(ty_dag_ctx_t *c, yaml_node_t *n, const char *what) {
    if (n->type != YAML_SCALAR_NODE) {
        ty_dag_err(c, n, "%s must be a scalar", what);
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

int ty_dag_sorted_cmp(const void *a, const void *b) {
    const ty_sorted_t *x = a, *y = b;
    int r = strcmp(x->s, y->s);
    return r ? r : (x->i > y->i) - (x->i < y->i);
}

/* A mapping's pairs, checked: keys must be scalars and distinct.  Returns a
 * heap array of n flags, set for the pairs to use (the first of duplicates
 * and non-scalar keys are reported and skipped). */
static unsigned char *ty_map_pairs(ty_dag_ctx_t *c, yaml_node_t *n, const char *what, size_t *np) {
    yaml_node_pair_t *pairs = n->data.mapping.pairs.start;
    size_t cnt = (size_t)(n->data.mapping.pairs.top - pairs);
    unsigned char *use = ty_xcalloc(cnt ? cnt : 1, 1);
    ty_sorted_t *keys = ty_xcalloc(cnt ? cnt : 1, sizeof *keys);
    size_t nk = 0;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *k = ty_dag_node(c, pairs[i].key);
        if (k->type != YAML_SCALAR_NODE) {
            ty_dag_err(c, k, "%s: keys must be scalars", what);
            continue;
        }
        keys[nk++] = (ty_sorted_t){(const char *)k->data.scalar.value, i};
        use[i] = 1;
    }
    qsort(keys, nk, sizeof *keys, ty_dag_sorted_cmp);
    for (size_t j = 1; j < nk; j++)
        if (strcmp(keys[j].s, keys[j - 1].s) == 0) {
            size_t first = keys[j - 1].i;
            while (j < nk && strcmp(keys[j].s, keys[j - 1].s) == 0) {
                yaml_node_t *k = ty_dag_node(c, pairs[keys[j].i].key);
                ty_dag_err(c, k, "duplicate key '%s' in %s (first at line %lu)", keys[j].s, what,
                           (unsigned long)ty_dag_node(c, pairs[first].key)->start_mark.line + 1);
                use[keys[j].i] = 0;
                j++;
            }
        }
    free(keys);
    *np = cnt;
    return use;
}

/* Integer in [lo, hi]; reports an error and returns -1 otherwise. */
static int ty_int_in(ty_dag_ctx_t *c, yaml_node_t *n, const char *what, long long lo, long long hi,
                     long long *out) {
    const char *s = ty_scalar(c, n, what);
    if (!s)
        return -1;
    int64_t v;
    if (ty_parse_i64(s, lo, hi, &v) != 0) {
        ty_dag_err(c, n, "%s must be an integer in %lld..%lld, got '%s'", what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int ty_num_in(ty_dag_ctx_t *c, yaml_node_t *n, const char *what, double lo, double hi,
                     int lo_open, double *out) {
    const char *s = ty_scalar(c, n, what);
    if (!s)
        return -1;
    if (ty_parse_f64(s, lo, hi, out) != 0 || (lo_open && *out <= lo)) {
        ty_dag_err(c, n, "%s must be a number %s %g (at most %g), got '%s'", what,
                   lo_open ? ">" : ">=", lo, hi, s);
        return -1;
    }
    return 0;
}

int ty_dag_valid_name(const char *s, int allow_upper) {
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || strstr(s, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (islower(ch) || isdigit(ch) || ch == '_' || ch == '-' || ch == '.')
            continue;
        if (allow_upper && isupper(ch))
            continue;
        return 0;
    }
    return 1;
}

/* A mapping of scalar -> scalar into a KV array. */
static void ty_parse_kvs(ty_dag_ctx_t *c, yaml_node_t *n, const char *what, Ty__KV ***out,
                         size_t *nout) {
    if (n->type != YAML_MAPPING_NODE) {
        ty_dag_err(c, n, "%s must be a mapping", what);
        return;
    }
    size_t cnt;
    unsigned char *use = ty_map_pairs(c, n, what, &cnt);
    *out = ty_xrealloc(*out, (*nout + cnt + 1) * sizeof **out);
    for (size_t i = 0; i < cnt; i++) {
        if (!use[i])
            continue;
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        const char *ks = ty_scalar(c, ty_dag_node(c, p->key), what);
        const char *vs = ty_scalar(c, ty_dag_node(c, p->value), what);
        if (ks && vs)
            (*out)[(*nout)++] = ty_dag_kv_new(ks, vs);
    }
    free(use);
}

/* A sequence of scalars (or one scalar when allow_scalar). */
static void ty_parse_strs(ty_dag_ctx_t *c, yaml_node_t *n, const char *what, int allow_scalar,
                          char ***out, size_t *nout) {
    if (n->type == YAML_SCALAR_NODE && allow_scalar) {
        *out = ty_xrealloc(*out, (*nout + 1) * sizeof **out);
        (*out)[(*nout)++] = ty_xstrdup((const char *)n->data.scalar.value);
        return;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        ty_dag_err(c, n, "%s must be a list", what);
        return;
    }
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    *out = ty_xrealloc(*out, (*nout + cnt + 1) * sizeof **out);
    for (size_t i = 0; i < cnt; i++) {
        const char *s = ty_scalar(c, ty_dag_node(c, n->data.sequence.items.start[i]), what);
        if (s)
            (*out)[(*nout)++] = ty_xstrdup(s);
    }
}

#define TY_MAX_OUTPUTS 256

static void ty_parse_bool(ty_dag_ctx_t *c, yaml_node_t *n, const char *what,
                          protobuf_c_boolean *out) {
    const char *s = ty_scalar(c, n, what);
    if (s && strcmp(s, "true") == 0)
        *out = 1;
    else if (s && strcmp(s, "false") == 0)
        *out = 0;
    else if (s)
        ty_dag_err(c, n, "%s must be true or false, got '%s'", what, s);
}

/* outputs: relative paths or globs inside the attempt directory, distinct. */
static void ty_parse_outputs(ty_dag_ctx_t *c, yaml_node_t *n, Ty__TaskSpec *t) {
    size_t before = t->n_outputs;
    ty_parse_strs(c, n, "outputs", 0, &t->outputs, &t->n_outputs);
    if (n->type != YAML_SEQUENCE_NODE)
        return;
    if (t->n_outputs > TY_MAX_OUTPUTS) {
        ty_dag_err(c, n, "at most %d outputs per task, got %zu", TY_MAX_OUTPUTS, t->n_outputs);
        return;
    }
    for (size_t i = before; i < t->n_outputs; i++) {
        yaml_node_t *item = ty_dag_node(c, n->data.sequence.items.start[i - before]);
        const char *why = ty_output_path_problem(t->outputs[i]);
        if (why)
            ty_dag_err(c, item, "output '%s' %s", t->outputs[i], why);
        for (size_t j = before; j < i && !why; j++)
            if (strcmp(t->outputs[i], t->outputs[j]) == 0) {
                ty_dag_err(c, item, "output '%s' is declared twice", t->outputs[i]);
                break;
            }
    }
}

/* Walk a mapping's distinct keys: for each usable pair, fn(c, key, k, v, arg). */
typedef void (*ty_pair_fn)(ty_dag_ctx_t *c, const char *key, yaml_node_t *k, yaml_node_t *v,
                           void *arg);

static void ty_each_pair(ty_dag_ctx_t *c, yaml_node_t *n, const char *what, ty_pair_fn fn,
                         void *arg) {
    size_t cnt;
    unsigned char *use = ty_map_pairs(c, n, what, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = ty_dag_node(c, p->key);
        if (use[i])
            fn(c, (const char *)k->data.scalar.value, k, ty_dag_node(c, p->value), arg);
    }
    free(use);
}

static void ty_resource_pair(ty_dag_ctx_t *c, const char *key, yaml_node_t *k, yaml_node_t *v,
                             void *arg) {
    Ty__Resources *r = arg;
    long long iv;
    if (strcmp(key, "cpus") == 0) {
        ty_num_in(c, v, "resources.cpus", 0, 4096, 1, &r->cpus);
    } else if (strcmp(key, "mem_mb") == 0) {
        if (ty_int_in(c, v, "resources.mem_mb", 0, 1LL << 40, &iv) == 0)
            r->mem_mb = (uint64_t)iv;
    } else if (strcmp(key, "gpus") == 0) {
        if (ty_int_in(c, v, "resources.gpus", 0, 64, &iv) == 0)
            r->gpus = (uint32_t)iv;
    } else if (strcmp(key, "labels") == 0) {
        ty_parse_kvs(c, v, "resources.labels", &r->labels, &r->n_labels);
    } else {
        ty_dag_err(c, k, "unknown key 'resources.%s' (expected cpus, mem_mb, gpus, labels)", key);
    }
}

static int ty_lookup(const char *const *names, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

typedef struct {
    Ty__TaskSpec *t;
    int have_cmd, have_name;
} ty_task_ctx_t;

/* A list of exit codes 1-255 (skip_exit_codes, fail_exit_codes). */
static void ty_parse_codes(ty_dag_ctx_t *c, yaml_node_t *v, const char *what, int32_t **out,
                           size_t *n) {
    if (v->type != YAML_SEQUENCE_NODE) {
        ty_dag_err(c, v, "%s must be a list of exit codes (1-255)", what);
        return;
    }
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        long long code;
        if (ty_int_in(c, ty_dag_node(c, *it), what, 1, 255, &code) != 0)
            continue;
        *out = ty_xrealloc(*out, (*n + 1) * sizeof **out);
        (*out)[(*n)++] = (int32_t)code;
    }
}

static void ty_task_pair(ty_dag_ctx_t *c, const char *key, yaml_node_t *k, yaml_node_t *v,
                         void *arg) {
    ty_task_ctx_t *tc = arg;
    Ty__TaskSpec *t = tc->t;
    long long iv;
    double dv;
    if (strcmp(key, "name") == 0) {
        tc->have_name = 1;
        const char *s = ty_scalar(c, v, "task name");
        if (s && !ty_dag_valid_name(s, 1))
            ty_dag_err(c, v,
                       "task name '%s' must match [A-Za-z0-9][A-Za-z0-9_.-]{0,62} without '..'", s);
        else if (s)
            t->name = ty_xstrdup(s);
    } else if (strcmp(key, "command") == 0) {
        tc->have_cmd = 1;
        if (v->type == YAML_SCALAR_NODE) {
            t->shell = ty_xstrdup((const char *)v->data.scalar.value);
            if (!*t->shell)
                ty_dag_err(c, v, "command must not be empty");
        } else {
            ty_parse_strs(c, v, "command", 0, &t->argv, &t->n_argv);
            if (t->n_argv == 0)
                ty_dag_err(c, v, "command must not be empty");
        }
    } else if (strcmp(key, "env") == 0) {
        ty_parse_kvs(c, v, "env", &t->env, &t->n_env);
    } else if (strcmp(key, "depends_on") == 0) {
        ty_parse_strs(c, v, "depends_on", 1, &t->depends_on, &t->n_depends_on);
    } else if (strcmp(key, "outputs") == 0) {
        ty_parse_outputs(c, v, t);
    } else if (strcmp(key, "cache") == 0) {
        ty_parse_bool(c, v, "cache", &t->cache);
    } else if (strcmp(key, "inputs") == 0) {
        ty_parse_kvs(c, v, "inputs", &t->inputs, &t->n_inputs);
    } else if (strcmp(key, "skip_exit_codes") == 0 || strcmp(key, "fail_exit_codes") == 0) {
        int skip = key[0] == 's';
        ty_parse_codes(c, v, key, skip ? &t->skip_exit_codes : &t->fail_exit_codes,
                       skip ? &t->n_skip_exit_codes : &t->n_fail_exit_codes);
    } else if (strcmp(key, "when") == 0) {
        const char *s = ty_scalar(c, v, "when");
        ty_cond_t *cond = NULL;
        char *why = NULL;
        if (s && ty_cond_parse(s, &cond, &why) != 0)
            ty_dag_err(c, v, "when: %s", why);
        else if (s)
            t->when = ty_xstrdup(s);
        free(why);
        ty_cond_destroy(&cond);
    } else if (strcmp(key, "metrics") == 0) {
        ty_parse_strs(c, v, "metrics", 0, &t->metrics, &t->n_metrics);
    } else if (strcmp(key, "kind") == 0) {
        static const char *const kinds[] = {"command", "mpi"};
        const char *s = ty_scalar(c, v, "kind");
        int k2 = s ? ty_lookup(kinds, 2, s) : -1;
        if (s && k2 < 0)
            ty_dag_err(c, v, "kind must be command or mpi, got '%s'", s);
        else if (s)
            t->kind = (uint32_t)k2;
    } else if (strcmp(key, "np") == 0) {
        if (ty_int_in(c, v, "np", 1, 4096, &iv) == 0)
            t->np = (uint32_t)iv;
    } else if (strcmp(key, "ranks_per_worker") == 0) {
        if (ty_int_in(c, v, "ranks_per_worker", 1, 4096, &iv) == 0)
            t->ranks_per_worker = (uint32_t)iv;
    } else if (strcmp(key, "max_ranks_per_worker") == 0) {
        if (ty_int_in(c, v, "max_ranks_per_worker", 1, 4096, &iv) == 0)
            t->max_ranks_per_worker = (uint32_t)iv;
    } else if (strcmp(key, "resources") == 0) {
        if (v->type != YAML_MAPPING_NODE)
            ty_dag_err(c, v, "resources must be a mapping");
        else
            ty_each_pair(c, v, "resources", ty_resource_pair, t->resources);
    } else if (strcmp(key, "retries") == 0) {
        if (ty_int_in(c, v, "retries", 0, 100, &iv) == 0)
            t->retries = (uint32_t)iv;
    } else if (strcmp(key, "retry_backoff_s") == 0) {
        if (ty_num_in(c, v, "retry_backoff_s", 0, 86400, 0, &dv) == 0)
            t->retry_backoff_s = dv;
    } else if (strcmp(key, "timeout_s") == 0) {
        if (ty_num_in(c, v, "timeout_s", 0, 30 * 86400, 1, &dv) == 0)
            t->timeout_s = dv;
    } else if (strcmp(key, "priority") == 0) {
        if (ty_int_in(c, v, "priority", -1000000, 1000000, &iv) == 0)
            t->priority = (int32_t)iv;
    } else if (strcmp(key, "trigger_rule") == 0) {
        const char *s = ty_scalar(c, v, "trigger_rule");
        int r = -1;
        for (int i = 0; s && i < 4; i++)
            if (strcmp(s, ty_trigger_name((unsigned)i)) == 0)
                r = i;
        if (s && r < 0)
            ty_dag_err(c, v,
                       "trigger_rule must be all_success, all_done, one_failed or "
                       "none_failed, got '%s'",
                       s);
        else if (s)
            t->trigger_rule = (uint32_t)r;
    } else {
        ty_dag_err(c, k,
                   "unknown task key '%s' (expected name, command, env, depends_on, kind, "
                   "np, ranks_per_worker, max_ranks_per_worker, resources, retries, "
                   "retry_backoff_s, timeout_s, priority, "
                   "trigger_rule, outputs, inputs, cache, skip_exit_codes, fail_exit_codes, "
                   "when, metrics)",
                   key);
    }
}

static Ty__TaskSpec *ty_parse_task(ty_dag_ctx_t *c, yaml_node_t *n) {
    if (n->type != YAML_MAPPING_NODE) {
        ty_dag_err(c, n, "each task must be a mapping");
        return NULL;
    }
    Ty__TaskSpec *t = ty_xmalloc(sizeof *t);
    ty__task_spec__init(t);
    t->line = (uint32_t)n->start_mark.line + 1;
    t->resources = ty_xmalloc(sizeof *t->resources);
    ty__resources__init(t->resources);
    t->resources->cpus = 1;
    t->np = 1;
    ty_task_ctx_t tc = {t, 0, 0};
    ty_each_pair(c, n, "task", ty_task_pair, &tc);
    if (!tc.have_name)
        ty_dag_err(c, n, "task has no name");
    if (!tc.have_cmd)
        ty_dag_err(c, n, "task '%s' has no command", *t->name ? t->name : "?");
    const char *nm = *t->name ? t->name : "?";
    if (t->np > 1 && t->kind != TY_KIND_MPI)
        ty_dag_err(c, n, "task '%s': np needs kind: mpi", nm);
    if ((t->ranks_per_worker || t->max_ranks_per_worker) && t->kind != TY_KIND_MPI)
        ty_dag_err(c, n, "task '%s': ranks_per_worker and max_ranks_per_worker need kind: mpi", nm);
    else if (t->ranks_per_worker && t->max_ranks_per_worker)
        ty_dag_err(c, n, "task '%s': give ranks_per_worker or max_ranks_per_worker, not both", nm);
    else if (t->ranks_per_worker && t->np % t->ranks_per_worker != 0)
        ty_dag_err(c, n, "task '%s': np (%u) is not a multiple of ranks_per_worker (%u)", nm, t->np,
                   t->ranks_per_worker);
    return t;
}

typedef struct {
    Ty__PipelineSpec *spec;
    yaml_node_t *tasks;
    protobuf_c_boolean cache; /* the default of the tasks' cache: */
} ty_root_ctx_t;

static int ty_map_has(ty_dag_ctx_t *c, yaml_node_t *map, const char *key) {
    if (!map || map->type != YAML_MAPPING_NODE)
        return 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = ty_dag_node(c, p->key);
        if (k && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, key) == 0)
            return 1;
    }
    return 0;
}

static void ty_schedule_pair(ty_dag_ctx_t *c, const char *key, yaml_node_t *k, yaml_node_t *v,
                             void *arg) {
    Ty__PipelineSpec *spec = arg;
    long long iv;
    const char *s = NULL;
    if (strcmp(key, "max_catchup") == 0) {
        if (ty_int_in(c, v, "schedule.max_catchup", 1, 1000, &iv) == 0)
            spec->schedule_max_catchup = (uint32_t)iv;
        return;
    }
    if (strcmp(key, "cron") != 0 && strcmp(key, "tz") != 0 && strcmp(key, "catchup") != 0 &&
        strcmp(key, "concurrency") != 0) {
        ty_dag_err(c, k,
                   "unknown key 'schedule.%s' (expected cron, tz, catchup, concurrency, "
                   "max_catchup)",
                   key);
        return;
    }
    if (!(s = ty_scalar(c, v, key)))
        return;
    char *why = NULL;
    if (strcmp(key, "cron") == 0) {
        spec->schedule = ty_xstrdup(s);
    } else if (strcmp(key, "tz") == 0) {
        if (ty_tz_check(s, &why) == 0)
            spec->schedule_tz = ty_xstrdup(s);
        else
            ty_dag_err(c, v, "schedule.tz: %s", why);
    } else if (strcmp(key, "catchup") == 0) {
        if (strcmp(s, "none") && strcmp(s, "latest") && strcmp(s, "all"))
            ty_dag_err(c, v, "schedule.catchup '%s' (want none, latest or all)", s);
        else
            spec->schedule_catchup = ty_xstrdup(s);
    } else if (strcmp(s, "forbid") && strcmp(s, "allow") && strcmp(s, "replace")) {
        ty_dag_err(c, v, "schedule.concurrency '%s' (want forbid, allow or replace)", s);
    } else {
        spec->schedule_concurrency = ty_xstrdup(s);
    }
    free(why);
}

static void ty_root_pair(ty_dag_ctx_t *c, const char *key, yaml_node_t *k, yaml_node_t *v,
                         void *arg) {
    ty_root_ctx_t *rc = arg;
    Ty__PipelineSpec *spec = rc->spec;
    if (strcmp(key, "name") == 0) {
        const char *s = ty_scalar(c, v, "name");
        if (s && !ty_dag_valid_name(s, 0))
            ty_dag_err(c, v, "pipeline name '%s' must match [a-z0-9][a-z0-9_.-]{0,62} without '..'",
                       s);
        else if (s)
            spec->name = ty_xstrdup(s);
    } else if (strcmp(key, "params") == 0) {
        ty_parse_kvs(c, v, "params", &spec->params, &spec->n_params);
    } else if (strcmp(key, "schedule") == 0) {
        if (v && v->type == YAML_MAPPING_NODE) {
            ty_each_pair(c, v, "schedule", ty_schedule_pair, spec);
            if (!ty_map_has(c, v, "cron"))
                ty_dag_err(c, v, "schedule needs cron (for example cron: \"0 3 * * *\")");
        } else {
            const char *s = ty_scalar(c, v, "schedule");
            if (s)
                spec->schedule = ty_xstrdup(s);
        }
        ty_cron_t *cron = NULL;
        char *why = NULL;
        if (spec->schedule && ty_cron_parse(spec->schedule, spec->schedule_tz, &cron, &why) != 0)
            ty_dag_err(c, v, "schedule: %s", why);
        free(why);
        ty_cron_destroy(&cron);
    } else if (strcmp(key, "description") == 0) {
        ty_scalar(c, v, "description");
    } else if (strcmp(key, "cache") == 0) {
        ty_parse_bool(c, v, "cache", &rc->cache);
    } else if (strcmp(key, "tasks") == 0) {
        if (v->type != YAML_SEQUENCE_NODE) {
            ty_dag_err(c, v, "tasks must be a list");
            return;
        }
        size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (c->lim->max_tasks && cnt > c->lim->max_tasks) {
            ty_dag_err(c, v, "%zu tasks, more than %u (limit max-pipeline-tasks)", cnt,
                       c->lim->max_tasks);
            c->toobig = 1;
            return;
        }
        rc->tasks = v;
        spec->tasks = ty_xcalloc(cnt ? cnt : 1, sizeof(void *));
        for (size_t i = 0; i < cnt; i++) {
            Ty__TaskSpec *t = ty_parse_task(c, ty_dag_node(c, v->data.sequence.items.start[i]));
            if (!t) {
                rc->tasks = NULL; /* positions no longer match */
                continue;
            }
            spec->tasks[spec->n_tasks++] = t;
        }
    } else {
        ty_dag_err(c, k,
                   "unknown key '%s' (expected name, params, schedule, description, cache, tasks)",
                   key);
    }
}

static Ty__PipelineSpec *ty_parse_root(ty_dag_ctx_t *c, yaml_node_t *root) {
    if (!root) {
        ty_dag_err(c, NULL, "empty pipeline file");
        return NULL;
    }
    if (root->type != YAML_MAPPING_NODE) {
        ty_dag_err(c, root, "a pipeline must be a mapping");
        return NULL;
    }
    Ty__PipelineSpec *spec = ty_xmalloc(sizeof *spec);
    ty__pipeline_spec__init(spec);
    ty_root_ctx_t rc = {spec, NULL, 0};
    ty_each_pair(c, root, "pipeline", ty_root_pair, &rc);
    for (size_t i = 0; rc.tasks && rc.cache && i < spec->n_tasks; i++) /* the pipeline's default */
        if (!ty_map_has(c, ty_dag_node(c, rc.tasks->data.sequence.items.start[i]), "cache"))
            spec->tasks[i]->cache = 1;
    if (!*spec->name && !c->nerr)
        ty_dag_err(c, root, "pipeline has no name");
    if (spec->n_tasks == 0 && !c->nerr)
        ty_dag_err(c, root, "pipeline has no tasks");
    if (!c->nerr && rc.tasks)
        ty_dag_validate_graph(c, spec, rc.tasks);
    return spec;
}

static int ty_dag_fail(ty_dag_ctx_t *c, int rc, char **errmsg) {
    if (c->nerr > TY_MAX_ERRORS)
        ty_buf_printf(&c->err, "%s: %d more errors\n", c->file, c->nerr - TY_MAX_ERRORS);
    if (errmsg)
        *errmsg = c->err.data;
    else
        ty_buf_free(&c->err);
    return rc;
}

int ty_dag_load_string_lim(const char *yaml, size_t len, const char *filename,
                           const ty_dag_limits_t *lim, Ty__PipelineSpec **out, char **errmsg) {
    ty_dag_limits_t use = TY_DAG_LIMITS_DEFAULT;
    if (lim) {
        use = *lim;
        if (!use.max_depth || use.max_depth > TY_DAG_MAX_DEPTH)
            use.max_depth = TY_DAG_MAX_DEPTH;
        if (!use.max_keys)
            use.max_keys = UINT32_MAX / 2;
    }
    ty_dag_ctx_t c = {.file = filename ? filename : "<input>", .lim = &use};
    *out = NULL;
    if (errmsg)
        *errmsg = NULL;
    if (c.lim->max_bytes && len > c.lim->max_bytes) {
        ty_dag_err_at(&c, 1, "%zu bytes, more than %zu (limit max-pipeline-bytes)", len,
                      c.lim->max_bytes);
        return ty_dag_fail(&c, TY_ETOOBIG, errmsg);
    }
    unsigned long line = 1;
    char *why = NULL;
    int rc = ty_dag_scan(yaml, len, c.lim, &line, &why);
    if (rc != 0) {
        ty_dag_err_at(&c, line, "%s", why);
        free(why);
        return ty_dag_fail(&c, rc, errmsg);
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        ty_dag_err_at(&c, (unsigned long)parser.problem_mark.line + 1, "YAML syntax error: %s%s%s",
                      parser.problem ? parser.problem : "invalid document",
                      parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return ty_dag_fail(&c, TY_EPARSE, errmsg);
    }
    c.doc = &doc;
    Ty__PipelineSpec *spec = ty_parse_root(&c, yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (c.nerr) {
        ty_dag_free(&spec);
        return ty_dag_fail(&c, c.toobig ? TY_ETOOBIG : TY_EINVAL, errmsg);
    }
    *out = spec;
    return 0;
}

int ty_dag_load_string(const char *yaml, size_t len, const char *filename, Ty__PipelineSpec **out,
                       char **errmsg) {
    return ty_dag_load_string_lim(yaml, len, filename, NULL, out, errmsg);
}

int ty_dag_load_file_lim(const char *path, const ty_dag_limits_t *lim, Ty__PipelineSpec **out,
                         char **errmsg) {
    ty_buf_t b = {0};
    *out = NULL;
    if (errmsg)
        *errmsg = NULL;
    int rc = ty_read_file(path, &b);
    if (rc != 0) {
        if (errmsg)
            *errmsg = ty_xasprintf("%s: %s\n", path, strerror(-rc));
        ty_buf_free(&b);
        return TY_EIO;
    }
    rc = ty_dag_load_string_lim(b.data, b.len, path, lim, out, errmsg);
    ty_buf_free(&b);
    return rc;
}

int ty_dag_load_file(const char *path, Ty__PipelineSpec **out, char **errmsg) {
    return ty_dag_load_file_lim(path, NULL, out, errmsg);
}
